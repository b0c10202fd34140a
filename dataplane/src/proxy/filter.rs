//! Phase 7, the response filter: what the gateway reads from a response
//! body as it passes (framing, events, usage, completion tokens, opt-in
//! content), and what it sends instead of the raw bytes when it must
//! re-frame them (the usage-only event cut, HTTP/1.0 clients). No I/O: the
//! relay hands it the bytes it read and writes what it returns, so it is
//! tested with plain byte slices.

use super::content::Capture;
use sluice_contract::codec::chunked::{
    write_chunk_size_before, ChunkedDecoder, ChunkedError, CHUNK_SIZE_ROOM,
};
use sluice_contract::codec::delta::DeltaReader;
use sluice_contract::codec::encoding::{self, Coding};
use sluice_contract::codec::head::Framing;
use sluice_contract::codec::sse::{SseEvent, SseFramer};
use sluice_contract::codec::usage::UsageScanner;
use sluice_contract::cut::{EventCut, EventReader};
use sluice_contract::dialect::Dialect;
use sluice_contract::policy::tokens::{CompletionCounter, Encoding};
use sluice_contract::translate::stream::StreamTranslator;
use sluice_contract::translate::{self, Pair};
use std::ops::Range;

/// Largest SSE event inspected (bigger ones pass through uninspected).
const MAX_EVENT: usize = sluice_contract::cut::MAX_HELD;
/// Largest non-streamed body kept aside for reading its usage.
pub const MAX_JSON_CAPTURE: usize = 4 * 1024 * 1024;

/// How the body reaches the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The upstream's bytes as read, framing included (zero-copy).
    Raw,
    /// De-chunked payload, delimited by closing (HTTP/1.0 clients).
    Plain,
    /// Re-framed events with the usage-only one removed; chunked unless the
    /// client speaks HTTP/1.0.
    Events {
        /// Frame as chunks.
        chunked: bool,
    },
    /// Translated into the client's dialect (see [`Translation`]); chunked
    /// unless the client speaks HTTP/1.0.
    Translated {
        /// Frame as chunks.
        chunked: bool,
    },
    /// A whole (non-streamed, length-framed) body compressed for the
    /// client in `coding` once it is all in, sent as one chunk.
    Compressed {
        /// The content coding.
        coding: Coding,
    },
}

impl Output {
    /// Whether the output is framed as chunks by the gateway.
    pub fn chunked(self) -> bool {
        matches!(
            self,
            Output::Events { chunked: true }
                | Output::Translated { chunked: true }
                | Output::Compressed { .. }
        )
    }
}

/// A response translated into the client's dialect: a stream event by
/// event as it passes, any other body (a completion, an error) whole at
/// its end, from the bounded copy kept for its usage.
#[derive(Debug)]
pub struct Translation {
    /// The pair.
    pub pair: Pair,
    /// The upstream's status: an error body is translated as an error.
    pub status: u16,
    /// Unix seconds, for OpenAI's `created`.
    pub created: u64,
    /// The stream's translator (event streams only).
    pub stream: Option<StreamTranslator>,
    /// A body that could not be read as a response (or error) of the
    /// upstream's dialect was sent as an error.
    pub failed: bool,
}

impl Translation {
    /// For a response of `pair` with `status`; `include_usage`: the OpenAI
    /// client asked for the usage chunk.
    pub fn new(pair: Pair, status: u16, is_sse: bool, include_usage: bool, created: u64) -> Translation {
        Translation {
            pair,
            status,
            created,
            stream: is_sse.then(|| StreamTranslator::new(pair, include_usage, created)),
            failed: false,
        }
    }

    /// The translated whole body for `body` (non-streamed responses).
    fn body(&mut self, body: &[u8], out: &mut Vec<u8>) {
        if self.status < 300 {
            if let Some(t) = translate::response_body(self.pair, body, self.created) {
                out.extend_from_slice(&t);
                return;
            }
            self.failed = true;
        }
        out.extend_from_slice(&translate::error_body(self.pair, self.status.max(400), body));
    }
}

/// Room before the output in the filter's output buffer: the chunk head is written
/// there when the output is sealed, so it goes out without being copied.
const ROOM: usize = CHUNK_SIZE_ROOM;

/// What the gateway reads from a response body while it passes through,
/// and what it sends instead of the raw bytes when it re-frames them. One
/// type owns the SSE pipeline: de-chunking, framing, the usage cut, delta
/// reading, counting and content capture.
pub struct ResponseFilter {
    left: u64,
    /// How the upstream frames the body.
    pub framing: Framing,
    /// The upstream's chunked framing, when it is chunked.
    pub decoder: ChunkedDecoder,
    /// SSE framing, when the body is an event stream.
    pub framer: Option<SseFramer>,
    /// The provider's usage, as it passes.
    pub usage: UsageScanner,
    /// A non-streamed body kept aside (bounded) for its usage.
    pub json: Option<Vec<u8>>,
    /// How the body reaches the client.
    pub output: Output,
    cut: EventCut,
    dialect: Dialect,
    /// Completion tokens counted from the text deltas as they pass.
    pub counter: Option<CompletionCounter>,
    /// Reads those deltas out of the events.
    deltas: DeltaReader,
    /// Opt-in content logging: the payload as relayed.
    pub capture: Option<Capture>,
    /// What to send instead of the raw bytes (`Plain` and `Events` output),
    /// after `room` bytes kept free for the chunk head (and, before the
    /// first send, the response head).
    out: Vec<u8>,
    /// Where the output starts in `out`.
    room: usize,
    /// Bytes at the start of `out` that are the response head, not sent
    /// yet: it goes out in one write with the first output.
    head: usize,
    /// Where the payload of the bytes last framed lies in them.
    pieces: Vec<Range<usize>>,
    /// Whether the response's body has ended.
    pub done: bool,
    codings: Vec<Coding>,
    /// The translation into the client's dialect, when the upstream speaks another.
    pub translation: Option<Translation>,
    /// Body bytes before and after compression for the client.
    pub compressed: Option<(u64, u64)>,
    /// A streamed response cache fill: the events as they pass.
    pub fill: Option<(sluice_contract::cache::chat::EventsBuilder, std::time::Instant)>,
}

/// What a [`ResponseFilter`] reads and does, decided from the response head.
#[derive(Debug)]
pub struct FilterSetup {
    /// How the upstream frames the body.
    pub framing: Framing,
    /// Whether the body is an event stream.
    pub is_sse: bool,
    /// The dialect of the upstream's events.
    pub dialect: Dialect,
    /// How the body reaches the client.
    pub output: Output,
    /// Count completion tokens with this encoding.
    pub counting: Option<Encoding>,
    /// The body's content codings, when the upstream compressed it although
    /// asked for `identity` (its usage is read from the decoded copy).
    pub codings: Vec<Coding>,
    /// The translation into the client's dialect (with [`Output::Translated`]).
    pub translation: Option<Translation>,
}

impl ResponseFilter {
    /// A filter for a response set up by `setup`; `out` and `pieces` are
    /// (spare) buffers it uses, given back by [`ResponseFilter::into_buffers`].
    pub fn new(
        setup: FilterSetup,
        capture: Option<Capture>,
        out: Vec<u8>,
        pieces: Vec<Range<usize>>,
    ) -> ResponseFilter {
        let FilterSetup {
            framing,
            is_sse,
            dialect,
            output,
            counting,
            codings,
            translation,
        } = setup;
        let mut out = out;
        if output != Output::Raw {
            out.resize(ROOM, 0);
        }
        ResponseFilter {
            left: if let Framing::Length(n) = framing { n } else { 0 },
            framing,
            decoder: ChunkedDecoder::new(),
            framer: is_sse.then(|| SseFramer::new(MAX_EVENT)),
            usage: UsageScanner::new(dialect),
            json: (!is_sse).then(Vec::new),
            output,
            cut: EventCut::default(),
            dialect,
            counter: if is_sse {
                counting.map(CompletionCounter::new)
            } else {
                None
            },
            deltas: DeltaReader::default(),
            capture,
            out,
            room: ROOM,
            head: 0,
            pieces,
            done: false,
            codings,
            translation,
            compressed: None,
            fill: None,
        }
    }

    /// The non-streamed body kept aside, decoded; `None` when there is
    /// none or it did not decode (for a response cache fill).
    pub fn take_json(&mut self) -> Option<Vec<u8>> {
        let json = self.json.take().filter(|j| !j.is_empty())?;
        if self.codings.is_empty() {
            return Some(json);
        }
        encoding::decode(&json, &self.codings, MAX_JSON_CAPTURE).ok()
    }

    /// Reads the usage of a non-streamed body kept aside, decoding it first
    /// when the upstream compressed it. `false`: a compressed body that did
    /// not decode (within the capture bound), so its usage is unknown.
    pub fn read_json_usage(&mut self) -> bool {
        let Some(json) = self.json.as_ref().filter(|j| !j.is_empty()) else {
            return true;
        };
        if self.codings.is_empty() {
            self.usage.on_json_body(json);
            return true;
        }
        match encoding::decode(json, &self.codings, MAX_JSON_CAPTURE) {
            Ok(plain) => {
                self.usage.on_json_body(&plain);
                true
            }
            Err(_) => false,
        }
    }

    /// Puts the client's response head in front of the first output, so
    /// that both go out in one write (re-framed output only).
    pub fn put_head_first(&mut self, head: &[u8]) {
        debug_assert!(self.output != Output::Raw && self.out.len() == ROOM);
        self.out.clear();
        self.out.extend_from_slice(head);
        (self.head, self.room) = (head.len(), head.len() + ROOM);
        self.out.resize(self.room, 0);
    }

    /// The buffers it used, for the worker's spares.
    pub fn into_buffers(self) -> (Vec<u8>, Vec<Range<usize>>) {
        (self.out, self.pieces)
    }

    /// Finds how many of `bytes` belong to this response (`Err` if the
    /// upstream's framing is broken) and where their payload lies; cheap, so
    /// that the bytes can go to the client before [`ResponseFilter::inspect`] looks
    /// at them.
    pub fn frame(&mut self, bytes: &[u8]) -> Result<usize, ChunkedError> {
        let ResponseFilter { pieces, .. } = self;
        pieces.clear();
        let mut note = |piece: Range<usize>| pieces.push(piece);
        match self.framing {
            Framing::Empty => {
                self.done = true;
                Ok(0)
            }
            Framing::Length(_) => {
                let take = (bytes.len() as u64).min(self.left) as usize;
                note(0..take);
                self.left -= take as u64;
                self.done = self.left == 0;
                Ok(take)
            }
            Framing::Chunked => {
                let used = self.decoder.feed(bytes, note)?;
                self.done = self.decoder.is_done();
                Ok(used)
            }
            Framing::UntilClose => {
                note(0..bytes.len());
                Ok(bytes.len())
            }
        }
    }

    /// Runs the payload found by the last [`ResponseFilter::frame`] of `bytes` through
    /// the SSE framer, the usage scanner, the token counter and the content
    /// capture, and (for re-framed output) builds what the client is sent.
    pub fn inspect(&mut self, bytes: &[u8]) {
        let (output, dialect) = (self.output, self.dialect);
        let ResponseFilter {
            framer,
            usage,
            json,
            cut,
            out,
            counter,
            deltas,
            capture,
            pieces,
            translation,
            fill,
            ..
        } = self;
        let mut fill = fill.as_mut().map(|(b, t0)| (b, t0.elapsed().as_millis() as u32));
        let mut texts = Texts {
            deltas,
            counter: counter.as_mut(),
            dialect,
        };
        if output != Output::Raw {
            // All of it may go out, with a held event and the last chunk.
            out.reserve(bytes.len() + cut.held() + b"\r\n0\r\n\r\n".len());
        }
        for range in pieces.iter() {
            let piece = &bytes[range.clone()];
            match (output, framer.as_mut()) {
                (Output::Translated { .. }, Some(f)) => {
                    // Event by event: each upstream event is metered in the
                    // upstream's dialect, then written in the client's.
                    let stream = translation.as_mut().and_then(|t| t.stream.as_mut());
                    if let Some(stream) = stream {
                        let Texts { deltas, counter, .. } = &mut texts;
                        f.feed(piece, |ev| {
                            usage.on_event(ev);
                            if let Some(c) = counter.as_deref_mut() {
                                deltas.for_each_text(dialect, ev, |text| c.push(text));
                            }
                            stream.event(ev, out);
                        });
                    }
                }
                (Output::Translated { .. }, None) => {}
                (Output::Events { .. }, Some(f)) => cut.feed(piece, f, usage, &mut texts, out),
                (Output::Plain, f) => {
                    out.extend_from_slice(piece);
                    if let Some(f) = f {
                        cut.read(piece, f, usage, &mut texts);
                    }
                }
                (_, Some(f)) => cut.read(piece, f, usage, &mut texts),
                (_, None) => {}
            }
            if let Some(c) = capture.as_mut() {
                c.push(piece);
            }
            if let Some((b, at_ms)) = fill.as_mut() {
                b.push(piece, *at_ms);
            }
            if let Some(j) = json.as_mut() {
                if j.len() + piece.len() <= MAX_JSON_CAPTURE {
                    j.extend_from_slice(piece);
                }
            }
        }
    }

    /// Frames what is to be sent for the bytes fed so far, in place in
    /// `out`, and returns where it lies there (empty: nothing to send). A
    /// response head not sent yet is put right before it, and sent even
    /// when nothing else is.
    pub fn seal(&mut self, end: bool) -> Range<usize> {
        if end && matches!(self.output, Output::Events { .. }) {
            self.cut.finish(&mut self.out);
        }
        if end && self.framer.is_none() {
            // A whole body in the upstream's dialect: translated at its end.
            if let (Some(t), Some(json)) = (self.translation.as_mut(), self.json.as_ref()) {
                let body = match self.codings.is_empty() {
                    true => std::borrow::Cow::Borrowed(json.as_slice()),
                    false => std::borrow::Cow::Owned(
                        encoding::decode(json, &self.codings, MAX_JSON_CAPTURE).unwrap_or_default(),
                    ),
                };
                t.body(&body, &mut self.out);
            }
        }
        if let (true, Output::Compressed { coding }, Some(body)) = (end, self.output, self.json.as_ref()) {
            let packed = sluice_contract::codec::accept::compress(body, coding);
            self.compressed = Some((body.len() as u64, packed.len() as u64));
            self.out.extend_from_slice(&packed);
        }
        let (out, room) = (&mut self.out, self.room);
        let mut range = match self.output {
            // Nothing is framed: the raw bytes went out as they came.
            Output::Raw => 0..0,
            Output::Plain | Output::Events { chunked: false } | Output::Translated { chunked: false } => {
                room..out.len()
            }
            Output::Events { chunked: true }
            | Output::Translated { chunked: true }
            | Output::Compressed { .. } => {
                let mut start = room;
                let payload = out.len() - room;
                if payload > 0 {
                    start = write_chunk_size_before(out, room, payload);
                    out.extend_from_slice(b"\r\n");
                }
                if end {
                    out.extend_from_slice(b"0\r\n\r\n");
                }
                start..out.len()
            }
        };
        let head = std::mem::take(&mut self.head);
        if head > 0 {
            // The chunk head takes at most ROOM bytes: the response head
            // fits between the start of `out` and the output.
            range.start -= head;
            out.copy_within(..head, range.start);
        }
        range
    }

    /// Takes what [`ResponseFilter::seal`] framed, to be written; `None`
    /// when there is nothing to send.
    pub fn take_sealed(&mut self, end: bool) -> Option<monoio::buf::Slice<Vec<u8>>> {
        let range = self.seal(end);
        if range.is_empty() {
            return None;
        }
        Some(monoio::buf::IoBuf::slice(std::mem::take(&mut self.out), range))
    }

    /// Takes the output buffer back once what it held was written.
    pub fn return_output(&mut self, mut out: Vec<u8>) {
        out.truncate(ROOM);
        self.out = out;
        self.room = ROOM;
    }
}

/// Hands the completion texts of events to the token counter, if tokens
/// are counted; finds what the event cut can learn either way.
struct Texts<'a> {
    deltas: &'a mut DeltaReader,
    counter: Option<&'a mut CompletionCounter>,
    dialect: Dialect,
}

impl EventReader for Texts<'_> {
    fn event(&mut self, ev: &SseEvent<'_>, learn: bool) -> Option<Range<usize>> {
        match self.counter.as_deref_mut() {
            Some(c) => self.deltas.for_each_text(self.dialect, ev, |text| c.push(text)),
            None if learn => self.deltas.one_text(self.dialect, ev),
            None => None,
        }
    }

    fn repeat(&mut self, ev: &SseEvent<'_>, text: Range<usize>, escaped: bool) {
        if let Some(c) = self.counter.as_deref_mut() {
            self.deltas
                .for_each_text_at(self.dialect, ev, text, escaped, |text| c.push(text));
        }
    }
}

#[cfg(test)]
mod tests;
