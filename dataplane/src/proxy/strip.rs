//! Removing the usage-only event from an OpenAI stream.
//!
//! The gateway asks OpenAI for usage (`stream_options.include_usage`) even
//! when the client did not, so that every stream is metered from the
//! provider's own figures. The client must then not see the extra event. In
//! this mode the relay re-frames the stream: events are cut at their blank
//! line, each is framed and scanned, and every event except the usage-only
//! one is passed on. An incomplete event is held until its end arrives (a
//! client cannot use half an event anyway); nothing else is delayed. An
//! event that grows past [`MAX_HELD`] cannot be the usage event (the framer
//! does not even dispatch it): it stops being held and passes through as it
//! arrives, so an upstream cannot make the gateway buffer without bound.
//!
//! This is the one path that copies response bytes: kept events into the
//! client's buffer (reused for the whole stream), and an event that spans
//! reads into a holding buffer until it is whole; plain pass-through stays
//! zero-copy.

use crate::codec::sse::{SseEvent, SseFramer};
use crate::codec::usage::UsageScanner;

/// Most bytes of one event held back; the framer's bound in the relay.
pub const MAX_HELD: usize = 1 << 20;

/// Cuts an SSE byte stream into events and keeps all but usage-only ones.
#[derive(Debug, Default)]
pub struct EventCut {
    /// Bytes of the event being assembled.
    pending: Vec<u8>,
    /// The current event outgrew [`MAX_HELD`]: its bytes pass straight on
    /// until its end.
    passing: bool,
    /// Length of the current line so far (0: at a line start).
    line_len: usize,
    /// The previous byte was a CR (a following LF belongs to it).
    after_cr: bool,
    /// Events removed.
    stripped: u32,
    /// Whether the last event emitted was kept (its CR-ended blank line may
    /// still be followed by an LF, which shares its fate).
    last_kept: bool,
}

impl EventCut {
    /// Feeds decoded body bytes; appends what the client should see to `out`.
    /// `observe` sees every event too (for counting completion tokens).
    pub fn feed(
        &mut self,
        mut input: &[u8],
        framer: &mut SseFramer,
        usage: &mut UsageScanner,
        observe: &mut dyn FnMut(&SseEvent<'_>),
        out: &mut Vec<u8>,
    ) {
        while !input.is_empty() {
            if self.pending.is_empty() && !self.passing && self.after_cr && input[0] == b'\n' {
                // The LF of a CRLF that ended the previous event.
                if self.last_kept {
                    out.push(b'\n');
                }
                self.after_cr = false;
                input = &input[1..];
                continue;
            }
            match self.find_end(input) {
                Some(end) if self.passing => {
                    pass(&input[..end], framer, usage, observe, out);
                    input = &input[end..];
                    self.passing = false;
                    self.last_kept = true;
                }
                Some(end) if self.pending.is_empty() => {
                    // The whole event is in this read: framed where it lies.
                    self.emit(&input[..end], framer, usage, observe, out);
                    input = &input[end..];
                }
                Some(end) => {
                    let mut event = std::mem::take(&mut self.pending);
                    event.extend_from_slice(&input[..end]);
                    input = &input[end..];
                    self.emit(&event, framer, usage, observe, out);
                    event.clear();
                    self.pending = event;
                }
                None if self.passing => {
                    pass(input, framer, usage, observe, out);
                    return;
                }
                None => {
                    self.pending.extend_from_slice(input);
                    if self.pending.len() > MAX_HELD {
                        // Too big to be the usage event: stop holding it
                        // (and give its memory back; this is rare).
                        pass(&std::mem::take(&mut self.pending), framer, usage, observe, out);
                        self.passing = true;
                    }
                    return;
                }
            }
        }
    }

    /// End of stream: an unterminated last event is passed on as it is (the
    /// framer will never dispatch it, and neither would a client).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.pending);
    }

    /// Bytes of an incomplete event held back: they go out with the rest
    /// of their event.
    pub fn held(&self) -> usize {
        self.pending.len()
    }

    /// Usage-only events removed so far.
    pub fn stripped(&self) -> u32 {
        self.stripped
    }

    /// Index just past the blank line that ends the current event, if `input`
    /// holds it. Tracks line state across calls.
    fn find_end(&mut self, input: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < input.len() {
            // Jump over the rest of the line to its end.
            let Some(off) = memchr::memchr2(b'\n', b'\r', &input[i..]) else {
                self.line_len += input.len() - i;
                self.after_cr = false;
                return None;
            };
            if off > 0 {
                self.line_len += off;
                self.after_cr = false;
            }
            let at = i + off;
            let b = input[at];
            i = at + 1;
            if b == b'\n' && self.after_cr {
                // The LF of a CRLF: the line already ended at its CR.
                self.after_cr = false;
                continue;
            }
            let blank = self.line_len == 0;
            self.line_len = 0;
            self.after_cr = b == b'\r';
            if blank {
                return Some(i);
            }
        }
        None
    }

    /// Frames one whole `event` (through its blank line) and keeps it
    /// unless it is usage-only.
    fn emit(
        &mut self,
        event: &[u8],
        framer: &mut SseFramer,
        usage: &mut UsageScanner,
        observe: &mut dyn FnMut(&SseEvent<'_>),
        out: &mut Vec<u8>,
    ) {
        let before = framer.events();
        framer.feed(event, |ev| {
            usage.on_event(ev);
            observe(ev);
        });
        let dispatched = framer.events() > before;
        self.last_kept = !(dispatched && usage.usage_only_event());
        if self.last_kept {
            out.extend_from_slice(event);
        } else {
            self.stripped += 1;
        }
    }
}

/// Hands `bytes` of an event that is not held to the framer and the client.
fn pass(
    bytes: &[u8],
    framer: &mut SseFramer,
    usage: &mut UsageScanner,
    observe: &mut dyn FnMut(&SseEvent<'_>),
    out: &mut Vec<u8>,
) {
    framer.feed(bytes, |ev| {
        usage.on_event(ev);
        observe(ev);
    });
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::usage::Dialect;

    const STREAM: &[u8] = b"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"h\xc3\xa9\"}}],\"usage\":null}\n\n\
: keep-alive\n\n\
data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\r\n\r\n\
data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\"total_tokens\":9}}\n\n\
data: [DONE]\n\n";

    fn run(pieces: &[&[u8]]) -> (Vec<u8>, UsageScanner, u32) {
        let mut cut = EventCut::default();
        let mut framer = SseFramer::new(1 << 20);
        let mut usage = UsageScanner::new(Dialect::OpenAi);
        let mut out = Vec::new();
        for p in pieces {
            cut.feed(p, &mut framer, &mut usage, &mut |_| {}, &mut out);
        }
        cut.finish(&mut out);
        let stripped = cut.stripped();
        (out, usage, stripped)
    }

    fn expected() -> Vec<u8> {
        let text = std::str::from_utf8(STREAM).unwrap();
        let usage_event = text.find("data: {\"id\":\"c\",\"choices\":[],").unwrap();
        let done = text.find("data: [DONE]").unwrap();
        [&STREAM[..usage_event], &STREAM[done..]].concat()
    }

    #[test]
    fn strips_only_the_usage_event() {
        let (out, usage, stripped) = run(&[STREAM]);
        assert_eq!(out, expected());
        assert_eq!(stripped, 1);
        let u = usage.usage().unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (7, 2));
        assert!(usage.completed());
    }

    #[test]
    fn every_split_gives_the_same_result() {
        for at in 0..=STREAM.len() {
            let (out, usage, stripped) = run(&[&STREAM[..at], &STREAM[at..]]);
            assert_eq!(out, expected(), "split at {at}");
            assert_eq!(stripped, 1, "split at {at}");
            assert!(usage.completed());
        }
        let bytes: Vec<&[u8]> = STREAM.chunks(1).collect();
        assert_eq!(run(&bytes).0, expected());
    }

    #[test]
    fn streams_without_usage_pass_unchanged() {
        let plain = b"data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\ndata: [DONE]\n\npartial";
        let (out, _, stripped) = run(&[plain]);
        assert_eq!(out, plain);
        assert_eq!(stripped, 0);
    }

    #[test]
    fn a_huge_event_is_not_held_whole() {
        let mut big = b"data: ".to_vec();
        big.resize(3 * MAX_HELD, b'x');
        big.extend_from_slice(b"\r\n\r\n");
        let stream = [&big[..], STREAM].concat();
        let mut cut = EventCut::default();
        let mut framer = SseFramer::new(MAX_HELD);
        let mut usage = UsageScanner::new(Dialect::OpenAi);
        let mut out = Vec::new();
        let mut most_held = 0;
        for piece in stream.chunks(16 * 1024) {
            cut.feed(piece, &mut framer, &mut usage, &mut |_| {}, &mut out);
            most_held = most_held.max(cut.pending.len());
        }
        cut.finish(&mut out);
        assert!(most_held <= MAX_HELD + 16 * 1024, "held {most_held} bytes");
        // Everything passed, the big event whole, and the usage event after
        // it was still found and removed.
        assert_eq!(out, [&big[..], &expected()].concat());
        assert_eq!(cut.stripped(), 1);
        assert_eq!(usage.usage().unwrap().output_tokens, 2);
    }
}
