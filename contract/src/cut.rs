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
//!
//! Most events of a stream repeat the one before with another text: those
//! are recognised whole by the [`repeat`] memo and skip the line search,
//! the framer and the usage search. Streams that pass as they came (raw
//! output) are read the same way, for the same saving, by
//! [`EventCut::read`], which outputs nothing (the relay has sent the bytes
//! already; an event that spans reads is held as the framer alone would
//! hold its partial line).

mod repeat;

use crate::codec::sse::{SseEvent, SseFramer};
use crate::codec::usage::UsageScanner;
use repeat::Repeat;
use std::ops::Range;

/// Most bytes of one event held back; the framer's bound in the relay.
pub const MAX_HELD: usize = 1 << 20;

/// Reads the events an [`EventCut`] passes on, beside the usage scanner.
pub trait EventReader {
    /// Reads a dispatched event. Returns where its one text lies in
    /// `ev.data` (its string token, quotes included) when it has exactly one
    /// that is looked at only as a string (see
    /// `DeltaReader::for_each_text`), so that the event can be learned.
    /// `learn` says whether the cut would learn the event (it is inert to
    /// the usage scanner, and the cut has not given up on this stream): a
    /// reader that reads only so that the cut can learn may skip the others.
    fn event(&mut self, ev: &SseEvent<'_>, learn: bool) -> Option<Range<usize>>;

    /// Reads an event that repeats one [`EventReader::event`] found a text
    /// in, with the string token at `text` in `ev.data` instead (`escaped`:
    /// it may hold escapes; its UTF-8 is not checked).
    fn repeat(&mut self, ev: &SseEvent<'_>, text: Range<usize>, escaped: bool);
}

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
    /// The last event learned, to recognise its repeats.
    repeat: Repeat,
    /// Events learned since one was last recognised: a stream whose events
    /// do not repeat the one before (several choices taking turns, say)
    /// stops being learned for good at [`EventCut::MAX_LEARNS`], so that it
    /// costs no more than before (the last event learned still serves).
    learns: u8,
}

impl EventCut {
    /// Events learned in a row, none recognised, before the cut gives up.
    const MAX_LEARNS: u8 = 16;

    /// Feeds decoded body bytes; appends what the client should see to `out`.
    /// `observe` reads every event too (for counting completion tokens).
    pub fn feed(
        &mut self,
        input: &[u8],
        framer: &mut SseFramer,
        usage: &mut UsageScanner,
        observe: &mut dyn EventReader,
        out: &mut Vec<u8>,
    ) {
        self.cut(input, framer, usage, observe, out);
    }

    /// Reads decoded body bytes as [`EventCut::feed`] does (the same events
    /// reach `framer`, `usage` and `observe`), for a stream whose bytes the
    /// relay passes on itself: nothing is output, nothing is removed.
    pub fn read(
        &mut self,
        input: &[u8],
        framer: &mut SseFramer,
        usage: &mut UsageScanner,
        observe: &mut dyn EventReader,
    ) {
        self.cut(input, framer, usage, observe, &mut Discard);
    }

    fn cut<O: Output>(
        &mut self,
        mut input: &[u8],
        framer: &mut SseFramer,
        usage: &mut UsageScanner,
        observe: &mut dyn EventReader,
        out: &mut O,
    ) {
        while !input.is_empty() {
            let between = self.pending.is_empty() && !self.passing;
            if between && self.after_cr && input[0] == b'\n' {
                // The LF of a CRLF that ended the previous event.
                if self.last_kept {
                    out.put(b"\n");
                }
                self.after_cr = false;
                input = &input[1..];
                continue;
            }
            if between && self.line_len == 0 {
                if let Some(fit) = self.repeat.fits(input) {
                    if framer.dispatch_repeat(fit.len) {
                        // Inert, so kept: it goes out as it is.
                        if self.learns < Self::MAX_LEARNS {
                            self.learns = 0;
                        }
                        usage.on_repeat();
                        observe.repeat(&fit.event(input), fit.text.clone(), fit.escaped);
                        out.put(&input[..fit.len]);
                        self.after_cr = false;
                        self.last_kept = true;
                        input = &input[fit.len..];
                        continue;
                    }
                }
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
    /// unless it is usage-only; learns it when it can be repeated.
    fn emit<O: Output>(
        &mut self,
        event: &[u8],
        framer: &mut SseFramer,
        usage: &mut UsageScanner,
        observe: &mut dyn EventReader,
        out: &mut O,
    ) {
        let before = framer.events();
        let (repeat, learns) = (&mut self.repeat, &mut self.learns);
        framer.feed(event, |ev| {
            let learn = usage.on_event(ev) && *learns < Self::MAX_LEARNS;
            if let (Some(text), true) = (observe.event(ev, learn), learn) {
                if repeat.learn(event, ev, text) {
                    *learns += 1;
                }
            }
        });
        let dispatched = framer.events() > before;
        self.last_kept = !(O::REMOVES && dispatched && usage.usage_only_event());
        if self.last_kept {
            out.put(event);
        } else {
            self.stripped += 1;
        }
    }
}

/// Where the events [`EventCut`] keeps go.
trait Output {
    /// Whether the usage-only event is removed (there is an output to
    /// remove it from).
    const REMOVES: bool;
    fn put(&mut self, bytes: &[u8]);
}

impl Output for Vec<u8> {
    const REMOVES: bool = true;
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// No output: [`EventCut::read`].
struct Discard;

impl Output for Discard {
    const REMOVES: bool = false;
    fn put(&mut self, _: &[u8]) {}
}

/// Hands `bytes` of an event that is not held to the framer and the client.
fn pass<O: Output>(
    bytes: &[u8],
    framer: &mut SseFramer,
    usage: &mut UsageScanner,
    observe: &mut dyn EventReader,
    out: &mut O,
) {
    framer.feed(bytes, |ev| {
        usage.on_event(ev);
        observe.event(ev, false);
    });
    out.put(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::delta::DeltaReader;
    use crate::dialect::Dialect;

    /// Reads nothing.
    struct Blind;

    impl EventReader for Blind {
        fn event(&mut self, _: &SseEvent<'_>, _: bool) -> Option<Range<usize>> {
            None
        }
        fn repeat(&mut self, _: &SseEvent<'_>, _: Range<usize>, _: bool) {}
    }

    /// Collects texts and event types as the relay's counter reads them.
    #[derive(Default)]
    struct Collect {
        dialect: Option<Dialect>,
        deltas: DeltaReader,
        texts: Vec<String>,
        kinds: Vec<Vec<u8>>,
        repeats: usize,
    }

    impl EventReader for Collect {
        fn event(&mut self, ev: &SseEvent<'_>, _: bool) -> Option<Range<usize>> {
            self.kinds.push(ev.event.to_vec());
            let texts = &mut self.texts;
            let dialect = self.dialect.unwrap_or(Dialect::OpenAi);
            self.deltas
                .for_each_text(dialect, ev, |t| texts.push(t.to_owned()))
        }
        fn repeat(&mut self, ev: &SseEvent<'_>, text: Range<usize>, escaped: bool) {
            self.kinds.push(ev.event.to_vec());
            self.repeats += 1;
            let texts = &mut self.texts;
            let dialect = self.dialect.unwrap_or(Dialect::OpenAi);
            self.deltas
                .for_each_text_at(dialect, ev, text, escaped, |t| texts.push(t.to_owned()));
        }
    }

    /// A stream whose text events mostly repeat each other, with every
    /// kind of token and interruption the memo must get right.
    fn repeating_openai() -> Vec<u8> {
        let chunk = |text: &str| {
            format!(
                "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{text}}},\"finish_reason\":null}}],\"usage\":null}}\n\n"
            )
            .into_bytes()
        };
        let mut s = b"data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"usage\":null}\n\n".to_vec();
        for text in [
            r#"" Hello""#,
            r#"" h\u00e9llo\n""#,
            r#""\"usage\":{\"prompt_tokens\":5}""#,
            r#""\"usage\""#,
            "\" 世界\"",
            r#""""#,
            r#"" \ud83d\ude80""#,
        ] {
            s.extend(chunk(text));
        }
        // Invalid UTF-8 in the token: the full parser's call (no text).
        s.extend(chunk("\"\u{1}\"").iter().map(|&b| if b == 1 { 0xff } else { b }));
        s.extend(chunk(r#"" again""#));
        s.extend(b": keep-alive\n\n");
        s.extend(chunk(r#"" after a comment""#));
        // The same event with CRLF line ends, then with a field between.
        s.extend(
            String::from_utf8(chunk(r#"" crlf""#))
                .unwrap()
                .replace('\n', "\r\n")
                .into_bytes(),
        );
        s.extend(chunk(r#"" back""#));
        s.extend(b"id: 7\n");
        s.extend(chunk(r#"" with an id""#));
        // Not a string, then two texts: read whole.
        s.extend(chunk("null"));
        s.extend(chunk(r#"" last""#));
        s.extend(b"data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n");
        s.extend(b"data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":9,\"total_tokens\":12}}\n\n");
        s.extend(b"data: [DONE]\n\n");
        s
    }

    fn anthropic_stream() -> Vec<u8> {
        let mut s = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":4,\"output_tokens\":1}}}\n\n".to_vec();
        for text in ["Hi", " there", " \\\"q\\\"", " message_stop", " \\u00e9"] {
            s.extend(format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{text}\"}}}}\n\n").bytes());
        }
        s.extend(
            b"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":6}}\n\n",
        );
        s.extend(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        s
    }

    /// What a read of a stream found.
    #[derive(Debug, PartialEq)]
    struct Read {
        usage: Option<crate::record::Usage>,
        completed: bool,
        texts: Vec<String>,
        kinds: Vec<Vec<u8>>,
        events: u64,
    }

    /// What the cut makes of `pieces`: what it read, its output, and how
    /// many repeats it recognised. Reading alone ([`EventCut::read`], raw
    /// output) must read the same, recognising as many.
    fn cut_all(dialect: Dialect, pieces: &[&[u8]]) -> (Read, Vec<u8>, usize) {
        let (read, out, repeats) = run_cut(dialect, pieces, true);
        let (alone, _, alone_repeats) = run_cut(dialect, pieces, false);
        assert_eq!(alone, read);
        assert_eq!(alone_repeats, repeats);
        (read, out, repeats)
    }

    /// `pieces` through [`EventCut::feed`] (`output`) or [`EventCut::read`]
    /// (the output is then left empty).
    fn run_cut(dialect: Dialect, pieces: &[&[u8]], output: bool) -> (Read, Vec<u8>, usize) {
        let mut cut = EventCut::default();
        let mut framer = SseFramer::new(1 << 20);
        let mut usage = UsageScanner::new(dialect);
        let mut reader = Collect {
            dialect: Some(dialect),
            ..Collect::default()
        };
        let mut out = Vec::new();
        for p in pieces {
            if output {
                cut.feed(p, &mut framer, &mut usage, &mut reader, &mut out);
            } else {
                cut.read(p, &mut framer, &mut usage, &mut reader);
            }
        }
        if output {
            cut.finish(&mut out);
        }
        let read = Read {
            usage: usage.usage(),
            completed: usage.completed(),
            texts: reader.texts,
            kinds: reader.kinds,
            events: framer.events(),
        };
        (read, out, reader.repeats)
    }

    /// The same read without the cut: the framer over the whole stream.
    fn reference(dialect: Dialect, stream: &[u8]) -> Read {
        let mut framer = SseFramer::new(1 << 20);
        let mut usage = UsageScanner::new(dialect);
        let mut deltas = DeltaReader::default();
        let (mut texts, mut kinds) = (Vec::new(), Vec::new());
        framer.feed(stream, |ev| {
            usage.on_event(ev);
            kinds.push(ev.event.to_vec());
            deltas.for_each_text(dialect, ev, |t| texts.push(t.to_owned()));
        });
        Read {
            usage: usage.usage(),
            completed: usage.completed(),
            texts,
            kinds,
            events: framer.events(),
        }
    }

    /// Streams built at random from events that mostly repeat each other,
    /// with hostile texts and interruptions, read in random pieces: the cut
    /// reads what the framer reads, and its output does not depend on the
    /// pieces.
    #[test]
    fn random_repeating_streams_read_as_the_framer_reads_them() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        const BYTES: &[&[u8]] = &[
            b"a",
            b" ",
            b"\\n",
            b"\\\"",
            b"\"",
            b"\\",
            b"\n",
            b"\r",
            b"\xc3\xa9",
            b"\xff",
            b"\xe4\xb8",
            b"\\u00e9",
            b"\\ud83d\\ude80",
            b"\\ud83d",
            b"usage",
            b"\"usage\":",
            b"[DONE]",
            b"\x01",
            b"\t",
        ];
        let mut repeats = 0;
        for round in 0..300 {
            let dialect = if round % 3 == 0 {
                Dialect::Anthropic
            } else {
                Dialect::OpenAi
            };
            let mut stream = Vec::new();
            for _ in 0..next(40) {
                let mut text = b"\"".to_vec();
                for _ in 0..next(4) {
                    text.extend_from_slice(BYTES[next(BYTES.len())]);
                }
                if next(8) > 0 {
                    text.push(b'"');
                }
                let event = match (dialect, next(12)) {
                    (_, 0) => b": ping\n\n".to_vec(),
                    (_, 1) => b"id: 1\n".to_vec(),
                    (Dialect::OpenAi, 2) => {
                        b"data: {\"choices\":[],\"usage\":{\"completion_tokens\":3}}\n\n".to_vec()
                    }
                    (Dialect::OpenAi, 3) => {
                        b"data: {\"choices\":[{\"delta\":{}}],\"usage\":null}\r\n\r\n".to_vec()
                    }
                    (Dialect::OpenAi, _) => {
                        let mut e = b"data: {\"id\":\"x\",\"choices\":[{\"delta\":{\"content\":".to_vec();
                        e.extend_from_slice(&text);
                        e.extend_from_slice(b"}}],\"usage\":null}\n\n");
                        e
                    }
                    (Dialect::Anthropic, 2) => {
                        b"event: message_delta\ndata: {\"usage\":{\"output_tokens\":2}}\n\n".to_vec()
                    }
                    (Dialect::Anthropic, 3) => b"data: {\"type\":\"message_stop\"}\n\n".to_vec(),
                    (
                        Dialect::Anthropic
                        | Dialect::OpenAiEmbeddings
                        | Dialect::OpenAiResponses
                        | Dialect::Gemini,
                        _,
                    ) => {
                        let mut e = b"event: content_block_delta\ndata: {\"delta\":{\"text\":".to_vec();
                        e.extend_from_slice(&text);
                        e.extend_from_slice(b"}}\n\n");
                        e
                    }
                };
                stream.extend_from_slice(&event);
            }
            let want = reference(dialect, &stream);
            let (read, out, n) = cut_all(dialect, &[&stream]);
            assert_eq!(read, want, "round {round}: {}", String::from_utf8_lossy(&stream));
            repeats += n;
            let (a, b) = (next(stream.len() + 1), next(stream.len() + 1));
            let (a, b) = (a.min(b), a.max(b));
            let (read, split_out, _) = cut_all(dialect, &[&stream[..a], &stream[a..b], &stream[b..]]);
            assert_eq!(read, want, "round {round} split at {a}, {b}");
            assert_eq!(split_out, out, "round {round} split at {a}, {b}");
        }
        assert!(repeats > 1000, "only {repeats} repeats recognised");
    }

    /// Two choices taking turns: no event repeats the one before, so after
    /// a few tries the cut stops asking for the reads it learns from, for
    /// good; the last event learned still recognises its own choice's.
    #[test]
    fn a_stream_that_never_repeats_stops_being_learned() {
        struct Learning {
            deltas: DeltaReader,
            asked: usize,
            repeats: usize,
        }
        impl EventReader for Learning {
            fn event(&mut self, ev: &SseEvent<'_>, learn: bool) -> Option<Range<usize>> {
                if !learn {
                    return None;
                }
                self.asked += 1;
                self.deltas.one_text(Dialect::OpenAi, ev)
            }
            fn repeat(&mut self, _: &SseEvent<'_>, _: Range<usize>, _: bool) {
                self.repeats += 1;
            }
        }
        let mut stream = Vec::new();
        for i in 0..100 {
            let event = format!(
                "data: {{\"choices\":[{{\"index\":{},\"delta\":{{\"content\":\"w{i}\"}}}}]}}\n\n",
                i % 2
            );
            stream.extend_from_slice(event.as_bytes());
        }
        let mut reader = Learning {
            deltas: DeltaReader::default(),
            asked: 0,
            repeats: 0,
        };
        let mut cut = EventCut::default();
        let mut framer = SseFramer::new(1 << 20);
        let mut usage = UsageScanner::new(Dialect::OpenAi);
        let mut out = Vec::new();
        cut.feed(&stream, &mut framer, &mut usage, &mut reader, &mut out);
        assert_eq!(out, stream);
        assert_eq!(framer.events(), 100);
        assert_eq!(reader.asked, usize::from(EventCut::MAX_LEARNS));
        // Learned last: event 15 (choice 1); choice 1's later events repeat it.
        assert_eq!(reader.repeats, (17..100).step_by(2).count());
    }

    #[test]
    fn repeated_events_read_as_the_framer_reads_them() {
        for (dialect, stream) in [
            (Dialect::OpenAi, repeating_openai()),
            (Dialect::Anthropic, anthropic_stream()),
        ] {
            let want = reference(dialect, &stream);
            assert!(want.completed && want.usage.is_some());
            let (read, out, repeats) = cut_all(dialect, &[&stream]);
            assert_eq!(read, want, "{dialect:?}");
            assert!(repeats >= 4, "{dialect:?}: only {repeats} repeats recognised");
            for at in 0..=stream.len() {
                let (read, split_out, _) = cut_all(dialect, &[&stream[..at], &stream[at..]]);
                assert_eq!(read, want, "{dialect:?} split at {at}");
                assert_eq!(split_out, out, "{dialect:?} split at {at}");
            }
            let bytes: Vec<&[u8]> = stream.chunks(7).collect();
            assert_eq!(cut_all(dialect, &bytes).0, want, "{dialect:?} in pieces of 7");
        }
        // Only the usage-only event was left out.
        let stream = repeating_openai();
        let text = String::from_utf8_lossy(&stream).into_owned();
        let usage_at = text.find("data: {\"id\":\"c1\",\"choices\":[],").unwrap();
        let done = text.find("data: [DONE]").unwrap();
        assert_eq!(
            cut_all(Dialect::OpenAi, &[&stream]).1,
            [&stream[..usage_at], &stream[done..]].concat()
        );
    }

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
            cut.feed(p, &mut framer, &mut usage, &mut Blind, &mut out);
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
            cut.feed(piece, &mut framer, &mut usage, &mut Blind, &mut out);
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
