//! Streamed responses, translated one SSE event at a time.
//!
//! The relay's SSE framer hands each upstream event to a
//! [`StreamTranslator`], which appends the client's events for it (zero or
//! more, whole) to the output buffer; nothing is held beyond the event in
//! hand, so the first token reaches the client in the same read it arrived
//! in. Text and argument deltas are written straight into the output (their
//! strings are borrowed from the event when they have no escapes): no
//! allocation per event but a thinking block's text, kept to give the
//! OpenAI client the whole block with its signature.
//!
//! A stream that ends without its end event (`[DONE]`, `message_stop`)
//! gets no forged end: a truncated upstream stays visibly truncated.

pub mod anthropic_events;
pub mod openai_chunks;

use super::Pair;
use crate::codec::sse::SseEvent;

/// Translates one response stream for a pair.
#[derive(Debug)]
pub enum StreamTranslator {
    /// Anthropic events to an OpenAI client.
    AnthropicEvents(anthropic_events::ToChunks),
    /// OpenAI chunks to an Anthropic client.
    OpenAiChunks(openai_chunks::ToEvents),
}

impl StreamTranslator {
    /// A translator for a stream of `pair`; `include_usage`: the OpenAI
    /// client asked for the usage chunk; `created`: Unix seconds.
    pub fn new(pair: Pair, include_usage: bool, created: u64) -> StreamTranslator {
        match pair {
            Pair::OpenAiToAnthropic => {
                StreamTranslator::AnthropicEvents(anthropic_events::ToChunks::new(include_usage, created))
            }
            Pair::AnthropicToOpenAi => StreamTranslator::OpenAiChunks(openai_chunks::ToEvents::default()),
        }
    }

    /// Appends the client's events for one upstream event to `out`.
    pub fn event(&mut self, ev: &SseEvent<'_>, out: &mut Vec<u8>) {
        match self {
            StreamTranslator::AnthropicEvents(t) => t.event(ev, out),
            StreamTranslator::OpenAiChunks(t) => t.event(ev, out),
        }
    }

    /// Whether the stream's end event was translated.
    pub fn ended(&self) -> bool {
        match self {
            StreamTranslator::AnthropicEvents(t) => t.ended(),
            StreamTranslator::OpenAiChunks(t) => t.ended(),
        }
    }
}

/// An error object in a stream (either dialect's: `type` and `message`).
#[derive(serde::Deserialize)]
pub(crate) struct StreamError<'a> {
    #[serde(rename = "type", default, borrow)]
    pub(crate) kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) message: Option<std::borrow::Cow<'a, str>>,
}

/// Writes `s` as a JSON string.
pub(crate) fn json_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Writes a number.
pub(crate) fn num(out: &mut Vec<u8>, n: u64) {
    use std::io::Write;
    let _ = write!(out, "{n}");
}

#[cfg(test)]
mod tests;
