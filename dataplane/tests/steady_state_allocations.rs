//! The response path allocates nothing per chunk or per event once a stream
//! is under way: what the relay runs on every piece read from upstream (the
//! chunked decoder, the SSE framer, the usage scanner, the delta reader,
//! and the usage-event cut) is driven here over long streams under a
//! counting allocator, cut into pieces of many sizes. Token counting is the
//! one part that allocates: inside the BPE library, when a few hundred bytes of
//! text are counted at once, never when a delta is appended.

// Test code: a failed unwrap is a failed test. Counting allocations takes
// a global allocator, whose trait is unsafe; it only forwards to `System`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, unsafe_code)]

use sluice_contract::codec::chunked::ChunkedDecoder;
use sluice_contract::codec::delta::DeltaReader;
use sluice_contract::codec::sse::{SseEvent, SseFramer};
use sluice_contract::codec::usage::UsageScanner;
use sluice_contract::cut::{EventCut, EventReader};
use sluice_contract::dialect::Dialect;
use sluice_contract::policy::tokens::{CompletionCounter, Encoding};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ops::Range;

/// Counts this thread's allocations (tests run on several threads).
struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// count is a thread-local `Cell` with const initialisation, which never
// allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

/// Words with escapes, multi-byte characters and emoji, as real completions
/// have them.
const WORDS: [&str; 8] = [
    "Hello",
    " h\\u00e9llo",
    " 世界",
    " \\\"quoted\\\"",
    " line\\nbreak",
    " 🚀",
    " tab\\tbed",
    " café",
];

/// A chunked OpenAI stream of `n` content events, then usage and `[DONE]`.
fn openai_stream(n: usize) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(b"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n");
    for i in 0..n {
        let w = WORDS[i % WORDS.len()];
        body.extend_from_slice(
            format!("data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{w}\"}},\"finish_reason\":null}}],\"usage\":null}}\n\n").as_bytes(),
        );
    }
    body.extend_from_slice(b"data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":4000,\"total_tokens\":4009}}\n\ndata: [DONE]\n\n");
    chunked(&body, 97)
}

/// A chunked Anthropic stream of `n` text deltas between start and stop.
fn anthropic_stream(n: usize) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n");
    for i in 0..n {
        let w = WORDS[i % WORDS.len()];
        body.extend_from_slice(
            format!("event: content_block_delta\r\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{w}\"}}}}\r\n\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":4000}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    chunked(&body, 131)
}

/// `body` in chunks of `size` bytes, as an upstream frames it.
fn chunked(body: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(size) {
        out.extend_from_slice(format!("{:x};ext=1\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// What the relay keeps per stream.
struct Pipeline {
    dialect: Dialect,
    decoder: ChunkedDecoder,
    framer: SseFramer,
    usage: UsageScanner,
    deltas: DeltaReader,
    cut: Option<EventCut>,
    counter: Option<CompletionCounter>,
    out: Vec<u8>,
    text_bytes: usize,
}

impl Pipeline {
    fn new(dialect: Dialect, strip: bool, count: bool) -> Pipeline {
        Pipeline {
            dialect,
            decoder: ChunkedDecoder::new(),
            framer: SseFramer::new(1 << 20),
            usage: UsageScanner::new(dialect),
            deltas: DeltaReader::default(),
            cut: strip.then(EventCut::default),
            counter: count.then(|| CompletionCounter::new(Encoding::O200kBase)),
            out: Vec::with_capacity(64 * 1024),
            text_bytes: 0,
        }
    }

    /// One read from upstream, as `relay::Scan::feed` handles it.
    fn feed(&mut self, piece: &[u8]) {
        let Pipeline {
            dialect,
            decoder,
            framer,
            usage,
            deltas,
            cut,
            counter,
            out,
            text_bytes,
        } = self;
        let mut observe = Observe {
            dialect: *dialect,
            deltas,
            texts: Texts {
                counter: counter.as_mut(),
                bytes: text_bytes,
            },
        };
        decoder
            .feed(piece, |data| match cut.as_mut() {
                Some(cut) => cut.feed(&piece[data], framer, usage, &mut observe, out),
                None => framer.feed(&piece[data], |ev| {
                    usage.on_event(ev);
                    observe.event(ev, false);
                }),
            })
            .unwrap();
        // What was to be sent went to the client; its buffer is reused.
        out.clear();
    }
}

/// The relay's reader of texts: the delta reader and what takes the texts.
struct Observe<'a> {
    dialect: Dialect,
    deltas: &'a mut DeltaReader,
    texts: Texts<'a>,
}

/// Where the texts go: their bytes are summed, and counted when counting.
struct Texts<'a> {
    counter: Option<&'a mut CompletionCounter>,
    bytes: &'a mut usize,
}

impl Texts<'_> {
    fn take(&mut self, t: &str) {
        *self.bytes += t.len();
        if let Some(c) = self.counter.as_deref_mut() {
            c.push(t);
        }
    }
}

impl EventReader for Observe<'_> {
    fn event(&mut self, ev: &SseEvent<'_>, _: bool) -> Option<Range<usize>> {
        let texts = &mut self.texts;
        self.deltas.for_each_text(self.dialect, ev, |t| texts.take(t))
    }

    fn repeat(&mut self, ev: &SseEvent<'_>, text: Range<usize>, escaped: bool) {
        let texts = &mut self.texts;
        self.deltas
            .for_each_text_at(self.dialect, ev, text, escaped, |t| texts.take(t));
    }
}

/// Runs `stream` through `p` in pieces of `piece` bytes; returns the
/// allocations made after the first tenth of the stream (the warm-up, in
/// which buffers reach their working size).
fn steady_allocations(p: &mut Pipeline, stream: &[u8], piece: usize) -> u64 {
    let warm = stream.len() / 10;
    let (head, rest) = stream.split_at(warm);
    for c in head.chunks(piece) {
        p.feed(c);
    }
    let before = allocs();
    for c in rest.chunks(piece) {
        p.feed(c);
    }
    allocs() - before
}

#[test]
fn framing_usage_and_deltas_allocate_nothing_per_event() {
    const EVENTS: usize = 4000;
    for (dialect, stream) in [
        (Dialect::OpenAi, openai_stream(EVENTS)),
        (Dialect::Anthropic, anthropic_stream(EVENTS)),
    ] {
        for piece in [1, 7, 64, 1500, 16 * 1024] {
            for strip in [false, true] {
                let mut p = Pipeline::new(dialect, strip, false);
                let n = steady_allocations(&mut p, &stream, piece);
                assert!(
                    p.decoder.is_done(),
                    "{dialect:?} piece {piece}: stream not finished"
                );
                assert!(p.text_bytes > EVENTS * 4, "{dialect:?}: the deltas were not read");
                let usage = p.usage.usage().expect("usage read");
                assert_eq!(usage.output_tokens, 4000, "{dialect:?}");
                assert_eq!(
                    n,
                    0,
                    "{dialect:?}, pieces of {piece} bytes, strip {strip}: {n} allocations over {} events",
                    EVENTS * 9 / 10
                );
            }
        }
    }
}

/// Token counting is the exception: the BPE library allocates while it counts.
/// This pins down that it happens per flush of the pending text, not per
/// delta: the same text fed one character at a time (six times the deltas)
/// costs no more allocations than fed a word at a time, and gives the same
/// count.
#[test]
fn token_counting_allocates_per_flush_not_per_delta() {
    sluice_contract::policy::tokens::warm_up();
    let text: String = (0..4000).map(|i| WORDS[i % 3]).collect::<Vec<_>>().concat();
    let text = text.replace("\\u00e9", "é");
    let feed = |pieces: &mut dyn Iterator<Item = &str>| {
        let mut c = CompletionCounter::new(Encoding::O200kBase);
        let before = allocs();
        let mut deltas = 0u64;
        for p in pieces {
            c.push(p);
            deltas += 1;
        }
        let n = c.finish();
        (allocs() - before, deltas, n)
    };
    let (by_word, words, n1) = feed(&mut text.split_inclusive(' '));
    let mut chars = text.char_indices().map(|(i, ch)| &text[i..i + ch.len_utf8()]);
    let (by_char, chars, n2) = feed(&mut chars);
    assert_eq!(n1, n2, "the count depends on how the text was cut");
    assert!(chars > 4 * words);
    assert!(
        by_char <= by_word + by_word / 10 + 16,
        "{by_char} allocations for {chars} one-character deltas, {by_word} for {words} words"
    );
}
