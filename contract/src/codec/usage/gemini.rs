//! Gemini's usage: `usageMetadata` of a `GenerateContentResponse` (a body,
//! or each event of a stream; the last event carries the final counts) and
//! its end (a candidate's `finishReason`, or a prompt blocked outright).
//!
//! Normalised as the other dialects are: input tokens are
//! `promptTokenCount` plus `toolUsePromptTokenCount` (the prompt count
//! includes cached content); cached input is `cachedContentTokenCount`;
//! output is `candidatesTokenCount` plus `thoughtsTokenCount` (thinking is
//! billed as output, and is not in the candidates' count); reasoning is
//! `thoughtsTokenCount`.

use super::Obj;
use crate::record::Usage;
use memchr::memmem::Finder;
use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

static USAGE_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"usageMetadata\""));
static FINISH_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"finishReason\""));
static BLOCK_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"blockReason\""));

/// What one Gemini response or event says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Read {
    /// Its usage, when it had some.
    pub(super) usage: Option<Usage>,
    /// It ends the response: a candidate finished, or the prompt was blocked.
    pub(super) finished: bool,
    /// It parsed as a JSON object.
    pub(super) parsed: bool,
}

/// Reads `data`; `None` when it names neither usage nor an end (inert).
pub(super) fn read(data: &[u8]) -> Option<Read> {
    let named = |f: &Finder<'_>| f.find(data).is_some();
    if !named(&USAGE_KEY) && !named(&FINISH_KEY) && !named(&BLOCK_KEY) {
        return None;
    }
    let Ok(Obj(r)) = serde_json::from_slice::<Obj<Response>>(data) else {
        return Some(Read::default());
    };
    let finished = r.candidates.is_some_and(|Finished(f)| f)
        || r.prompt_feedback.is_some_and(|Obj(p)| p.block_reason.is_some());
    let usage = r.usage_metadata.map(|Obj(u)| u.normalise());
    Some(Read {
        usage,
        finished,
        parsed: true,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Response {
    #[serde(default)]
    candidates: Option<Finished>,
    #[serde(default)]
    usage_metadata: Option<Obj<UsageMetadata>>,
    #[serde(default)]
    prompt_feedback: Option<Obj<PromptFeedback>>,
}

/// Whether any candidate has a (non-empty) `finishReason`, read without
/// collecting the candidates: an event is read without an allocation.
struct Finished(bool);

impl<'de> Deserialize<'de> for Finished {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Each;
        impl<'de> Visitor<'de> for Each {
            type Value = Finished;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of candidates")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Finished, A::Error> {
                let mut any = false;
                while let Some(Obj(c)) = seq.next_element::<Obj<Candidate<'de>>>()? {
                    any |= c.finish_reason.is_some_and(|f| !f.is_empty());
                }
                Ok(Finished(any))
            }
        }
        d.deserialize_seq(Each)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: Option<u64>,
    #[serde(default)]
    candidates_token_count: Option<u64>,
    #[serde(default)]
    cached_content_token_count: Option<u64>,
    #[serde(default)]
    thoughts_token_count: Option<u64>,
    #[serde(default)]
    tool_use_prompt_token_count: Option<u64>,
}

impl UsageMetadata {
    fn normalise(&self) -> Usage {
        let thoughts = self.thoughts_token_count.unwrap_or(0);
        Usage {
            input_tokens: self
                .prompt_token_count
                .unwrap_or(0)
                .saturating_add(self.tool_use_prompt_token_count.unwrap_or(0)),
            output_tokens: self.candidates_token_count.unwrap_or(0).saturating_add(thoughts),
            cached_input_tokens: self.cached_content_token_count.unwrap_or(0),
            cache_creation_tokens: 0,
            reasoning_tokens: thoughts,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::codec::delta::DeltaReader;
    use crate::codec::sse::SseEvent;
    use crate::codec::usage::UsageScanner;
    use crate::dialect::Dialect;
    use crate::record::Usage;

    /// A thinking model's stream, as Gemini sends it (abridged).
    const STREAM: [&str; 3] = [
        r#"{"candidates":[{"content":{"parts":[{"text":"Caf\u00e9 "}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":12,"totalTokenCount":12,"promptTokensDetails":[{"modality":"TEXT","tokenCount":12}]},"modelVersion":"gemini-2.5-flash","responseId":"r1"}"#,
        r#"{"candidates":[{"content":{"parts":[{"text":"au lait"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":3,"totalTokenCount":15},"modelVersion":"gemini-2.5-flash","responseId":"r1"}"#,
        r#"{"candidates":[{"content":{"parts":[{"text":"."}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":12,"candidatesTokenCount":4,"cachedContentTokenCount":8,"thoughtsTokenCount":20,"totalTokenCount":36},"modelVersion":"gemini-2.5-flash","responseId":"r1"}"#,
    ];

    const FINAL: Usage = Usage {
        input_tokens: 12,
        output_tokens: 24,
        cached_input_tokens: 8,
        cache_creation_tokens: 0,
        reasoning_tokens: 20,
    };

    #[test]
    fn a_stream_completes_at_its_finish_reason_with_the_last_usage() {
        let mut s = UsageScanner::new(Dialect::Gemini);
        let mut deltas = DeltaReader::default();
        let mut text = String::new();
        for (i, data) in STREAM.iter().enumerate() {
            let ev = SseEvent {
                event: b"",
                data: data.as_bytes(),
            };
            assert!(!s.on_event(&ev), "every event carries usage");
            deltas.for_each_text(Dialect::Gemini, &ev, |t| text.push_str(t));
            assert_eq!(s.completed(), i == 2);
        }
        assert_eq!(s.usage(), Some(FINAL));
        assert_eq!(text, "Café au lait.");
    }

    #[test]
    fn a_body_and_odd_events() {
        let mut s = UsageScanner::new(Dialect::Gemini);
        s.on_json_body(STREAM[2].as_bytes());
        assert!(s.completed());
        assert_eq!(s.usage(), Some(FINAL));
        // An embeddings answer: no usage, complete.
        let mut s = UsageScanner::new(Dialect::Gemini);
        s.on_json_body(br#"{"embeddings":[{"values":[0.1,0.2]}]}"#);
        assert!(s.completed());
        assert_eq!(s.usage(), None);
        // A blocked prompt ends the stream; a stray event is inert.
        let mut s = UsageScanner::new(Dialect::Gemini);
        let ev = |d: &'static [u8]| SseEvent { event: b"", data: d };
        assert!(s.on_event(&ev(br#"{"candidates":[{"content":{"parts":[{"text":"x"}]}}]}"#)));
        assert!(!s.completed());
        assert!(!s.on_event(&ev(
            br#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":3}}"#
        )));
        assert!(s.completed());
        assert_eq!(s.usage().map(|u| u.input_tokens), Some(3));
        // Usage of the wrong shape is not usage.
        let mut s = UsageScanner::new(Dialect::Gemini);
        s.on_event(&ev(br#"{"usageMetadata":[1,2]}"#));
        assert_eq!(s.usage(), None);
    }
}
