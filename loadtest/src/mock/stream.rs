//! Streamed completions: the SSE events of each provider, rendered one at a
//! time into reused buffers, and the paced, split writes that send them.

use std::io;
use std::ops::Range;
use std::time::Duration;

use monoio::io::AsyncWriteRent;

use super::io::flush;
use super::respond::{
    push_id, push_openai_usage, push_response, push_response_message, push_text, Api, Usage,
};
use super::split::Split;
use super::text::{push_chunk, push_json_escaped, push_json_str, push_u64, token, LAST_CHUNK};

/// One streamed completion's events.
#[derive(Debug)]
pub(super) struct Events<'a> {
    pub(super) api: Api,
    pub(super) id: u64,
    pub(super) created: u64,
    pub(super) model: &'a str,
    pub(super) usage: Usage,
    /// OpenAI `stream_options.include_usage`.
    pub(super) include_usage: bool,
    /// OpenAI Responses: its named events rather than chat chunks.
    pub(super) responses: bool,
}

/// Events before the first token.
fn lead(api: Api, responses: bool) -> usize {
    match api {
        // response.created, .in_progress, .output_item.added, .content_part.added
        Api::OpenAi if responses => 4,
        Api::OpenAi => 1,
        Api::Anthropic => 3,
        Api::Gemini => 0,
    }
}

impl Events<'_> {
    /// How many events the stream has.
    pub(super) fn count(&self) -> usize {
        let n = self.usage.completion as usize;
        match self.api {
            // the lead, tokens, output_text.done, content_part.done,
            // output_item.done, response.completed
            Api::OpenAi if self.responses => n + 8,
            // role, tokens, finish, [usage], [DONE]
            Api::OpenAi => n + 3 + usize::from(self.include_usage),
            // message_start, content_block_start, ping, tokens,
            // content_block_stop, message_delta, message_stop
            Api::Anthropic => n + 6,
            // a token each, the finish
            Api::Gemini => super::gemini::event_count(&self.usage),
        }
    }

    /// The token event `ev` carries, if it carries one.
    fn token_of(&self, ev: usize) -> Option<u32> {
        let i = ev.checked_sub(lead(self.api, self.responses))?;
        (i < self.usage.completion as usize).then_some(i as u32)
    }

    /// Renders OpenAI's per-event prefix (everything up to the choices).
    pub(super) fn openai_prefix(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"data: {\"id\":\"chatcmpl-mock");
        push_id(out, self.id);
        out.extend_from_slice(b"\",\"object\":\"chat.completion.chunk\",\"created\":");
        push_u64(out, self.created);
        out.extend_from_slice(b",\"model\":");
        push_json_str(out, self.model);
        out.extend_from_slice(b",\"system_fingerprint\":\"fp_mock\",\"choices\":[");
    }

    /// Appends event `ev` (`prefix` from [`Events::openai_prefix`]).
    fn render(&self, ev: usize, prefix: &[u8], out: &mut Vec<u8>) {
        match self.api {
            Api::OpenAi if self.responses => self.render_responses(ev, out),
            Api::OpenAi => self.render_openai(ev, prefix, out),
            Api::Anthropic => self.render_anthropic(ev, out),
            Api::Gemini => super::gemini::push_event(out, ev, self.id, self.model, &self.usage),
        }
    }

    fn render_openai(&self, ev: usize, prefix: &[u8], out: &mut Vec<u8>) {
        let n = self.usage.completion as usize;
        if ev == n + 2 + usize::from(self.include_usage) {
            out.extend_from_slice(b"data: [DONE]\n\n");
            return;
        }
        out.extend_from_slice(prefix);
        if ev == 0 {
            out.extend_from_slice(b"{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}]");
        } else if let Some(t) = self.token_of(ev) {
            out.extend_from_slice(b"{\"index\":0,\"delta\":{\"content\":\"");
            push_json_escaped(out, token(t));
            out.extend_from_slice(b"\"},\"logprobs\":null,\"finish_reason\":null}]");
        } else if ev == n + 1 {
            out.extend_from_slice(b"{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"");
            out.extend_from_slice(self.usage.finish_reason().as_bytes());
            out.extend_from_slice(b"\"}]");
        } else {
            // The usage chunk: no choices, the real usage.
            out.extend_from_slice(b"],\"usage\":");
            push_openai_usage(out, &self.usage);
            out.extend_from_slice(b"}\n\n");
            return;
        }
        if self.include_usage {
            out.extend_from_slice(b",\"usage\":null");
        }
        out.extend_from_slice(b"}\n\n");
    }

    /// One Responses event, `event:` line first, as OpenAI sends them.
    fn render_responses(&self, ev: usize, out: &mut Vec<u8>) {
        let n = self.usage.completion as usize;
        let named = |out: &mut Vec<u8>, name: &[u8]| {
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(name);
            out.extend_from_slice(b"\ndata: {\"type\":\"");
            out.extend_from_slice(name);
            out.extend_from_slice(b"\",\"sequence_number\":");
            push_u64(out, ev as u64);
        };
        let item = |out: &mut Vec<u8>| {
            out.extend_from_slice(b",\"item_id\":\"msg_mock");
            push_id(out, self.id);
            out.extend_from_slice(b"\",\"output_index\":0,\"content_index\":0");
        };
        if let Some(t) = self.token_of(ev) {
            named(out, b"response.output_text.delta");
            item(out);
            out.extend_from_slice(b",\"delta\":\"");
            push_json_escaped(out, token(t));
            out.extend_from_slice(b"\",\"logprobs\":[]}\n\n");
            return;
        }
        match ev {
            0 | 1 => {
                named(
                    out,
                    if ev == 0 {
                        b"response.created".as_slice()
                    } else {
                        b"response.in_progress"
                    },
                );
                out.extend_from_slice(b",\"response\":");
                push_response(out, self.id, self.created, self.model, &self.usage, false);
            }
            2 => {
                named(out, b"response.output_item.added");
                out.extend_from_slice(b",\"output_index\":0,\"item\":");
                push_response_message(out, self.id, &self.usage, false);
            }
            3 => {
                named(out, b"response.content_part.added");
                item(out);
                out.extend_from_slice(
                    b",\"part\":{\"type\":\"output_text\",\"text\":\"\",\"annotations\":[],\"logprobs\":[]}",
                );
            }
            _ if ev == n + 4 => {
                named(out, b"response.output_text.done");
                item(out);
                out.extend_from_slice(b",\"text\":");
                push_text(out, self.usage.completion);
                out.extend_from_slice(b",\"logprobs\":[]");
            }
            _ if ev == n + 5 => {
                named(out, b"response.content_part.done");
                item(out);
                out.extend_from_slice(b",\"part\":{\"type\":\"output_text\",\"text\":");
                push_text(out, self.usage.completion);
                out.extend_from_slice(b",\"annotations\":[],\"logprobs\":[]}");
            }
            _ if ev == n + 6 => {
                named(out, b"response.output_item.done");
                out.extend_from_slice(b",\"output_index\":0,\"item\":");
                push_response_message(out, self.id, &self.usage, true);
            }
            _ => {
                // A capped completion ends `response.incomplete`, as OpenAI's.
                let name = if self.usage.capped {
                    b"response.incomplete".as_slice()
                } else {
                    b"response.completed"
                };
                named(out, name);
                out.extend_from_slice(b",\"response\":");
                push_response(out, self.id, self.created, self.model, &self.usage, true);
            }
        }
        out.extend_from_slice(b"}\n\n");
    }

    fn render_anthropic(&self, ev: usize, out: &mut Vec<u8>) {
        let n = self.usage.completion as usize;
        if let Some(t) = self.token_of(ev) {
            out.extend_from_slice(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"");
            push_json_escaped(out, token(t));
            out.extend_from_slice(b"\"}}\n\n");
            return;
        }
        match ev {
            0 => {
                out.extend_from_slice(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_mock");
                push_id(out, self.id);
                out.extend_from_slice(b"\",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
                push_json_str(out, self.model);
                out.extend_from_slice(b",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":");
                push_u64(out, self.usage.prompt);
                out.extend_from_slice(b",\"output_tokens\":1,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0}}}\n\n");
            }
            1 => out.extend_from_slice(b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"),
            2 => out.extend_from_slice(b"event: ping\ndata: {\"type\":\"ping\"}\n\n"),
            _ if ev == n + 3 => out.extend_from_slice(b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"),
            _ if ev == n + 4 => {
                out.extend_from_slice(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"");
                out.extend_from_slice(self.usage.stop_reason().as_bytes());
                out.extend_from_slice(b"\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":");
                push_u64(out, u64::from(self.usage.completion));
                out.extend_from_slice(b"}}\n\n");
            }
            _ => out.extend_from_slice(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
        }
    }
}

/// How a stream goes out.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pace {
    pub(super) ttft: Duration,
    pub(super) itl: Duration,
    /// `None`: one chunk per event, events that are ready together in one write.
    pub(super) split: Option<Split>,
    /// Send only this many events and no terminating chunk.
    pub(super) cut: Option<usize>,
}

/// Reused per-connection buffers for rendering streams.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    /// OpenAI's per-event prefix.
    prefix: Vec<u8>,
    /// The events of the current slot.
    events: Vec<u8>,
    /// End offsets of those events in `events`.
    ends: Vec<usize>,
    /// Chunk ranges of `events`.
    chunks: Vec<Range<usize>>,
}

/// Sends the events after the head already in `out`.
///
/// Events go out in slots: with no inter-token delay all events form one
/// slot; otherwise each token after the first starts a new slot, a delay
/// before it (the lead events go with the first token, the closing events
/// with the last). Within a slot the split mode cuts the bytes into chunks;
/// without one, the whole slot is one write.
pub(super) async fn send<S: AsyncWriteRent>(
    io: &mut S,
    out: &mut Vec<u8>,
    ev: &Events<'_>,
    pace: Pace,
    s: &mut Scratch,
) -> io::Result<()> {
    s.prefix.clear();
    if ev.api == Api::OpenAi && !ev.responses {
        ev.openai_prefix(&mut s.prefix);
    }
    let total = ev.count();
    let limit = pace.cut.map_or(total, |k| k.min(total));
    if !pace.ttft.is_zero() {
        flush(io, out).await?;
        monoio::time::sleep(pace.ttft).await;
    }
    let mut at = 0;
    while at < limit {
        let end = if pace.itl.is_zero() {
            limit
        } else {
            if at > 0 {
                flush(io, out).await?;
                monoio::time::sleep(pace.itl).await;
            }
            (at + 1..limit)
                .find(|&e| ev.token_of(e).is_some_and(|t| t > 0))
                .unwrap_or(limit)
        };
        s.events.clear();
        s.ends.clear();
        for e in at..end {
            ev.render(e, &s.prefix, &mut s.events);
            s.ends.push(s.events.len());
        }
        match pace.split {
            None => {
                let mut start = 0;
                for &e in &s.ends {
                    push_chunk(out, &s.events[start..e]);
                    start = e;
                }
            }
            Some(split) => {
                s.chunks.clear();
                split.cut(&s.events, &s.ends, &mut s.chunks);
                for r in &s.chunks {
                    push_chunk(out, &s.events[r.clone()]);
                    flush(io, out).await?;
                }
            }
        }
        at = end;
    }
    if pace.cut.is_none() {
        out.extend_from_slice(LAST_CHUNK);
    }
    flush(io, out).await
}
