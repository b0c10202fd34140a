//! Per-request streaming metrics read from the SSE body: when the first and
//! each later content event arrived, how many there were, the usage the
//! server reported, and whether the stream ended with its terminator.
//!
//! - OpenAI: a content event is a `chat.completion.chunk` whose
//!   `choices[0].delta` carries non-empty `content` (or `reasoning_content`,
//!   or `tool_calls`); usage comes from the final chunk's
//!   `usage.completion_tokens`; the terminator is `data: [DONE]`; a
//!   `{"error":..}` payload is a stream error.
//! - Anthropic: a content event is `content_block_delta`; usage is the
//!   `usage.output_tokens` of `message_delta` (cumulative: the last wins);
//!   the terminator is `message_stop`; `event: error` is a stream error.
//! - Responses and Gemini: see [`newer`].

use std::borrow::Cow;

use serde::Deserialize;

use super::request::Api;
use super::sse::SseFramer;

/// Longest SSE line or event data kept, bytes.
const MAX_EVENT: usize = 1 << 20;

/// What one streamed response told us. Times are ns since the run started.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) first_content_ns: Option<u64>,
    pub(crate) last_content_ns: Option<u64>,
    pub(crate) content_events: u64,
    pub(crate) reported_tokens: Option<u64>,
    /// Gaps between successive content events, ns.
    pub(crate) itl_ns: Vec<u64>,
    /// The terminator was seen.
    pub(crate) done: bool,
    pub(crate) error_event: bool,
    /// An event's payload was not the JSON it should be.
    pub(crate) malformed: bool,
}

impl Tally {
    fn content(&mut self, now_ns: u64) {
        if let Some(last) = self.last_content_ns {
            self.itl_ns.push(now_ns.saturating_sub(last));
        } else {
            self.first_content_ns = Some(now_ns);
        }
        self.last_content_ns = Some(now_ns);
        self.content_events += 1;
    }

    fn on_event(&mut self, api: Api, event: &[u8], data: &[u8], now_ns: u64) {
        if self.done {
            return;
        }
        match api {
            Api::Openai => self.openai(data, now_ns),
            Api::Anthropic => self.anthropic(event, data, now_ns),
            Api::Responses => self.responses(event, data, now_ns),
            Api::Gemini => self.gemini(data, now_ns),
        }
    }

    fn openai(&mut self, data: &[u8], now_ns: u64) {
        if data.trim_ascii() == b"[DONE]" {
            self.done = true;
            return;
        }
        let Ok(chunk) = serde_json::from_slice::<OaChunk<'_>>(data) else {
            self.malformed = true;
            return;
        };
        if chunk.error.is_some() {
            self.error_event = true;
        }
        if let Some(delta) = chunk.choices.first().and_then(|c| c.delta.as_ref()) {
            let text = |s: &Option<Cow<'_, str>>| s.as_deref().is_some_and(|s| !s.is_empty());
            if text(&delta.content) || text(&delta.reasoning_content) || delta.tool_calls.is_some() {
                self.content(now_ns);
            }
        }
        if let Some(n) = chunk.usage.and_then(|u| u.completion_tokens) {
            self.reported_tokens = Some(n);
        }
    }

    fn anthropic(&mut self, event: &[u8], data: &[u8], now_ns: u64) {
        let Some(kind) = event_name(event, data) else {
            self.malformed = true;
            return;
        };
        match &*kind {
            b"content_block_delta" => self.content(now_ns),
            b"message_delta" => match serde_json::from_slice::<AnMessageDelta>(data) {
                Ok(d) => {
                    if let Some(n) = d.usage.and_then(|u| u.output_tokens) {
                        self.reported_tokens = Some(n);
                    }
                }
                Err(_) => self.malformed = true,
            },
            b"message_stop" => self.done = true,
            b"error" => self.error_event = true,
            _ => {}
        }
    }
}

/// An event's name: its `event:` line, else (the line is optional on the
/// wire) its payload's `type`; `None` when neither can be read.
fn event_name<'a>(event: &'a [u8], data: &'a [u8]) -> Option<Cow<'a, [u8]>> {
    if !event.is_empty() {
        return Some(Cow::Borrowed(event));
    }
    Some(match serde_json::from_slice::<TypeOnly<'_>>(data).ok()?.kind {
        Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
    })
}

/// Frames and tallies one streamed response body.
#[derive(Debug)]
pub(crate) struct StreamMetrics {
    api: Api,
    framer: SseFramer,
    pub(crate) tally: Tally,
}

impl StreamMetrics {
    pub(crate) fn new(api: Api) -> Self {
        Self {
            api,
            framer: SseFramer::new(MAX_EVENT),
            tally: Tally::default(),
        }
    }

    /// Feeds decoded body bytes that arrived at `now_ns`.
    pub(crate) fn feed(&mut self, bytes: &[u8], now_ns: u64) {
        let (api, tally) = (self.api, &mut self.tally);
        self.framer
            .feed(bytes, |event, data| tally.on_event(api, event, data, now_ns));
        if self.framer.overflowed() {
            self.tally.malformed = true;
        }
    }
}

/// The output tokens a non-streamed JSON response reports; `Err` if the body
/// is not JSON, `Ok(None)` if it carries no usage.
pub(crate) fn json_usage(api: Api, body: &[u8]) -> Result<Option<u64>, ()> {
    if api == Api::Gemini {
        return newer::gemini_json_usage(body);
    }
    let body: JsonBody = serde_json::from_slice(body).map_err(|_| ())?;
    Ok(body.usage.and_then(|u| match api {
        Api::Openai => u.completion_tokens,
        Api::Anthropic | Api::Responses | Api::Gemini => u.output_tokens,
    }))
}

#[derive(Deserialize)]
struct OaChunk<'a> {
    #[serde(default, borrow)]
    choices: Vec<OaChoice<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct OaChoice<'a> {
    #[serde(default, borrow)]
    delta: Option<OaDelta<'a>>,
}

#[derive(Deserialize)]
struct OaDelta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct TypeOnly<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
}

#[derive(Deserialize)]
struct AnMessageDelta {
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct JsonBody {
    #[serde(default)]
    usage: Option<Usage>,
}

mod newer;

#[cfg(test)]
mod tests;
