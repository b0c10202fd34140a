//! OpenAI chat completion chunks as Anthropic message events.
//!
//! The first chunk → `message_start` (its id and model; usage comes at the
//! end, as OpenAI sends it); `reasoning_content` (or `reasoning`) deltas →
//! a `thinking` block's `thinking_delta`s; `content` (and `refusal`)
//! deltas → a `text` block's `text_delta`s; each tool call → a `tool_use`
//! block (opened by the delta that names it, its `arguments` deltas as
//! `input_json_delta`s). A block is stopped when another kind begins or
//! the choice finishes. The usage chunk and `[DONE]` → `message_delta`
//! (stop reason and usage: input, cache read, output) and `message_stop`.
//! An error object → an `error` event. Choices other than the first are
//! not translated (Anthropic has one).

use super::super::anthropic_to_openai::{stop_reason, OpenAiUsage};
use super::{json_str, num, StreamError};
use crate::codec::sse::SseEvent;
use serde::Deserialize;
use std::borrow::Cow;

/// The block open now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    /// A tool call, by its OpenAI index.
    Tool(u64),
}

/// The translator's state for one stream.
#[derive(Debug, Default)]
pub struct ToEvents {
    started: bool,
    open: Option<Open>,
    /// The next block's index.
    next: u64,
    finish: Option<&'static str>,
    usage: Option<OpenAiUsage>,
    ended: bool,
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    choices: Vec<Choice<'a>>,
    #[serde(default)]
    usage: Option<OpenAiUsage>,
    #[serde(default, borrow)]
    error: Option<StreamError<'a>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default)]
    index: u64,
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    refusal: Option<Cow<'a, str>>,
    #[serde(default, borrow, alias = "reasoning")]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    tool_calls: Vec<ToolDelta<'a>>,
}

#[derive(Deserialize)]
struct ToolDelta<'a> {
    #[serde(default)]
    index: u64,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct FunctionDelta<'a> {
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    arguments: Option<Cow<'a, str>>,
}

impl ToEvents {
    /// Whether `message_stop` was written.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Appends the client's events for one upstream chunk.
    pub fn event(&mut self, ev: &SseEvent<'_>, out: &mut Vec<u8>) {
        if ev.data == b"[DONE]" {
            self.done(out);
            return;
        }
        let Ok(c) = serde_json::from_slice::<Chunk<'_>>(ev.data) else {
            return;
        };
        if let Some(e) = c.error {
            let kind = super::super::anthropic_error_type(500, e.kind.as_deref());
            out.extend_from_slice(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"");
            out.extend_from_slice(kind.as_bytes());
            out.extend_from_slice(b"\",\"message\":");
            json_str(out, e.message.as_deref().unwrap_or("the upstream stream failed"));
            out.extend_from_slice(b"}}\n\n");
            return;
        }
        if !self.started {
            self.started = true;
            out.extend_from_slice(
                b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":",
            );
            json_str(out, c.id.as_deref().unwrap_or(""));
            out.extend_from_slice(b",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
            json_str(out, c.model.as_deref().unwrap_or(""));
            out.extend_from_slice(b",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}}\n\n");
        }
        if c.usage.is_some() {
            self.usage = c.usage;
        }
        for choice in c.choices.into_iter().filter(|ch| ch.index == 0) {
            if let Some(d) = choice.delta {
                if let Some(r) = d.reasoning_content.filter(|r| !r.is_empty()) {
                    self.ensure(out, Open::Thinking);
                    self.delta(out, b"thinking_delta\",\"thinking\":", &r);
                }
                for t in [d.content, d.refusal]
                    .into_iter()
                    .flatten()
                    .filter(|t| !t.is_empty())
                {
                    self.ensure(out, Open::Text);
                    self.delta(out, b"text_delta\",\"text\":", &t);
                }
                for call in d.tool_calls {
                    let (name, args) = match call.function {
                        Some(f) => (f.name, f.arguments),
                        None => (None, None),
                    };
                    // A call's block opens with its first delta; some
                    // providers repeat the id on every delta of one call.
                    let open = Open::Tool(call.index);
                    if self.open != Some(open) {
                        self.close(out);
                        self.start_tool(
                            out,
                            call.index,
                            call.id.as_deref().unwrap_or(""),
                            name.as_deref().unwrap_or(""),
                        );
                    }
                    if let Some(a) = args.filter(|a| !a.is_empty()) {
                        self.delta(out, b"input_json_delta\",\"partial_json\":", &a);
                    }
                }
            }
            if let Some(f) = choice.finish_reason {
                self.finish = Some(stop_reason(&f));
                self.close(out);
            }
        }
    }

    fn ensure(&mut self, out: &mut Vec<u8>, kind: Open) {
        if self.open == Some(kind) {
            return;
        }
        self.close(out);
        out.extend_from_slice(
            b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":",
        );
        num(out, self.next);
        out.extend_from_slice(match kind {
            Open::Thinking => {
                b",\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}\n\n"
                    .as_slice()
            }
            _ => b",\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n".as_slice(),
        });
        self.open = Some(kind);
    }

    fn start_tool(&mut self, out: &mut Vec<u8>, index: u64, id: &str, name: &str) {
        out.extend_from_slice(
            b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":",
        );
        num(out, self.next);
        out.extend_from_slice(b",\"content_block\":{\"type\":\"tool_use\",\"id\":");
        json_str(out, id);
        out.extend_from_slice(b",\"name\":");
        json_str(out, name);
        out.extend_from_slice(b",\"input\":{}}}\n\n");
        self.open = Some(Open::Tool(index));
    }

    /// A `content_block_delta` of the open block; `kind` ends with the
    /// field's name and its colon.
    fn delta(&mut self, out: &mut Vec<u8>, kind: &[u8], text: &str) {
        out.extend_from_slice(
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":",
        );
        num(out, self.next);
        out.extend_from_slice(b",\"delta\":{\"type\":\"");
        out.extend_from_slice(kind);
        json_str(out, text);
        out.extend_from_slice(b"}}\n\n");
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if self.open.take().is_none() {
            return;
        }
        out.extend_from_slice(
            b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":",
        );
        num(out, self.next);
        out.extend_from_slice(b"}\n\n");
        self.next += 1;
    }

    fn done(&mut self, out: &mut Vec<u8>) {
        if !self.started || self.ended {
            return;
        }
        self.close(out);
        let u = self.usage.unwrap_or_default();
        let cached = u.cached();
        out.extend_from_slice(
            b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"",
        );
        out.extend_from_slice(self.finish.unwrap_or("end_turn").as_bytes());
        out.extend_from_slice(b"\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":");
        num(out, u.prompt_tokens.saturating_sub(cached));
        out.extend_from_slice(b",\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":");
        num(out, cached);
        out.extend_from_slice(b",\"output_tokens\":");
        num(out, u.completion_tokens);
        out.extend_from_slice(b"}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        self.ended = true;
    }
}
