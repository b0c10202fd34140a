//! The OpenAI Responses and Gemini streams.
//!
//! - Responses: a content event is `response.output_text.delta` with a
//!   non-empty `delta`; usage is `response.usage.output_tokens` of the
//!   terminal event; the terminator is `response.completed` (or
//!   `.incomplete`, `.failed`); `error` is a stream error.
//! - Gemini: every event is a `GenerateContentResponse`; a content event
//!   has non-empty `candidates[].content.parts[].text`; usage is the last
//!   `usageMetadata.candidatesTokenCount` (+ `thoughtsTokenCount`); the end
//!   is a candidate's `finishReason`; an `error` object is a stream error.

use std::borrow::Cow;

use serde::Deserialize;

use super::{event_name, Tally};

impl Tally {
    pub(super) fn responses(&mut self, event: &[u8], data: &[u8], now_ns: u64) {
        let Some(kind) = event_name(event, data) else {
            self.malformed = true;
            return;
        };
        let kind = &*kind;
        match kind {
            b"response.output_text.delta" => match serde_json::from_slice::<Delta<'_>>(data) {
                Ok(d) if d.delta.as_deref().is_some_and(|t| !t.is_empty()) => self.content(now_ns),
                Ok(_) => {}
                Err(_) => self.malformed = true,
            },
            b"response.completed" | b"response.incomplete" | b"response.failed" => {
                match serde_json::from_slice::<Terminal>(data) {
                    Ok(t) => {
                        if let Some(n) = t.response.and_then(|r| r.usage).and_then(|u| u.output_tokens) {
                            self.reported_tokens = Some(n);
                        }
                    }
                    Err(_) => self.malformed = true,
                }
                self.error_event |= kind == b"response.failed";
                self.done = true;
            }
            b"error" => self.error_event = true,
            _ => {}
        }
    }

    pub(super) fn gemini(&mut self, data: &[u8], now_ns: u64) {
        let Ok(chunk) = serde_json::from_slice::<GeminiChunk<'_>>(data) else {
            self.malformed = true;
            return;
        };
        if chunk.error.is_some() {
            self.error_event = true;
            self.done = true;
        }
        let texts = chunk
            .candidates
            .iter()
            .filter_map(|c| c.content.as_ref())
            .flat_map(|c| c.parts.iter())
            .any(|p| p.text.as_deref().is_some_and(|t| !t.is_empty()));
        if texts {
            self.content(now_ns);
        }
        if let Some(n) = chunk.usage_metadata.and_then(|u| u.output()) {
            self.reported_tokens = Some(n);
        }
        if chunk.candidates.iter().any(|c| c.finish_reason.is_some()) {
            self.done = true;
        }
    }
}

/// A non-streamed Gemini answer's output tokens.
pub(super) fn gemini_json_usage(body: &[u8]) -> Result<Option<u64>, ()> {
    let chunk: GeminiChunk<'_> = serde_json::from_slice(body).map_err(|_| ())?;
    Ok(chunk.usage_metadata.and_then(|u| u.output()))
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    delta: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Terminal {
    #[serde(default)]
    response: Option<TerminalResponse>,
}

#[derive(Deserialize)]
struct TerminalResponse {
    #[serde(default)]
    usage: Option<super::Usage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiChunk<'a> {
    #[serde(default, borrow)]
    candidates: Vec<Candidate<'a>>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    #[serde(default, borrow)]
    content: Option<Content<'a>>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Content<'a> {
    #[serde(default, borrow)]
    parts: Vec<Part<'a>>,
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    candidates_token_count: Option<u64>,
    #[serde(default)]
    thoughts_token_count: Option<u64>,
}

impl UsageMetadata {
    fn output(&self) -> Option<u64> {
        match (self.candidates_token_count, self.thoughts_token_count) {
            (None, None) => None,
            (c, t) => Some(c.unwrap_or(0) + t.unwrap_or(0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Api, StreamMetrics};

    #[test]
    fn responses_and_gemini_streams() {
        let mut m = StreamMetrics::new(Api::Responses);
        m.feed(
            b"event: response.created\ndata: {\"type\":\"response.created\"}\n\n",
            1,
        );
        m.feed(b"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n", 5);
        m.feed(b"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"output_tokens\":3}}}\n\n", 9);
        assert_eq!(
            (m.tally.first_content_ns, m.tally.reported_tokens, m.tally.done),
            (Some(5), Some(3), true)
        );

        let mut m = StreamMetrics::new(Api::Gemini);
        m.feed(b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"\"}]}}],\"usageMetadata\":{\"promptTokenCount\":2}}\r\n\r\n", 2);
        m.feed(
            b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"caf\xc3\xa9\"}]}}]}\r\n\r\n",
            4,
        );
        m.feed(b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\".\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"candidatesTokenCount\":2,\"thoughtsTokenCount\":5}}\r\n\r\n", 7);
        let t = &m.tally;
        assert_eq!(
            (t.first_content_ns, t.content_events, t.reported_tokens, t.done),
            (Some(4), 2, Some(7), true)
        );
        assert_eq!(
            super::gemini_json_usage(b"{\"usageMetadata\":{\"candidatesTokenCount\":4}}"),
            Ok(Some(4))
        );
    }
}
