//! Token counting with OpenAI's BPE encodings (GitHub's `bpe-openai`).
//!
//! - [`encoding_for`] maps a model name to its encoding: `o200k_base` for
//!   gpt-4o, gpt-4.1, gpt-4.5, gpt-5, o1/o3/o4 and gpt-oss; `cl100k_base` for
//!   gpt-4 (not 4o/4.1/4.5), gpt-3.5 and text-embedding-*. Any other model
//!   (Claude, Gemini, unknown) is counted with `o200k_base` and marked as an
//!   estimate. A provider prefix (`openai/gpt-4o`) is looked through.
//! - [`count`] is the ordinary encoder (special tokens are plain text), equal
//!   to Python `tiktoken`'s `encode_ordinary` (see the parity test).
//! - Each encoding is loaded once, lazily, on first use, so the binary calls
//!   [`warm_up`] at start, off the request path.
//! - Why not tiktoken-rs: `bpe-openai` gives the same counts (the parity
//!   test, and 30,000 adversarial strings compared when it was chosen) at
//!   2.5 times the speed, counts without building the token vector, and
//!   stays linear on long runs where tiktoken's merge loop is quadratic
//!   (100 KB of one letter: 0.8 ms against 16 ms).
//!
//! Long whitespace: tiktoken's pre-split regex gives up (it panics, in Rust
//! and in Python) on a run of about a million whitespace characters, so
//! Python's counts are undefined there. [`count`] cuts whitespace runs longer
//! than [`MAX_WS_RUN`] bytes and counts the pieces apart (off by about one
//! token per cut, only for such runs), and stays panic-free even if the
//! library panics on some other input: it then falls back to one token per
//! four bytes.

use bpe_openai::byte_pair_encoding::BytePairEncoding;
use bpe_openai::Tokenizer;
use foldhash::HashMap;
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

/// A BPE encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// `o200k_base`.
    O200kBase,
    /// `cl100k_base`.
    Cl100kBase,
}

impl Encoding {
    /// Its tiktoken name.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::O200kBase => "o200k_base",
            Encoding::Cl100kBase => "cl100k_base",
        }
    }
}

/// Whitespace runs longer than this (bytes) are cut before encoding.
pub const MAX_WS_RUN: usize = 64 * 1024;

/// The encoding for `model`, and whether counts with it are only an estimate
/// (the model is not a known OpenAI one).
pub fn encoding_for(model: &str) -> (Encoding, bool) {
    let (prefix, name) = match model.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, model),
    };
    let foreign = prefix.is_some_and(|p| p != "openai");
    // `o1` is a family, `o1x` is not.
    let family = |f: &str| {
        name.strip_prefix(f)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
    };
    let o200k = ["gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "gpt-oss"]
        .iter()
        .any(|p| name.starts_with(p))
        || ["o1", "o3", "o4"].iter().any(|f| family(f));
    if o200k {
        return (Encoding::O200kBase, foreign);
    }
    let cl100k = family("gpt-4")
        || ["gpt-3.5", "gpt-35", "text-embedding-"]
            .iter()
            .any(|p| name.starts_with(p));
    if cl100k {
        return (Encoding::Cl100kBase, foreign);
    }
    (Encoding::O200kBase, true)
}

fn bpe(enc: Encoding) -> Option<&'static Tokenizer> {
    static O200K: OnceLock<Option<&'static Tokenizer>> = OnceLock::new();
    static CL100K: OnceLock<Option<&'static Tokenizer>> = OnceLock::new();
    // Loading deserialises tables bundled in the binary; it cannot fail on
    // input, but a panic there must not take a worker down either.
    let load = |f: fn() -> &'static Tokenizer| catch_unwind(f).ok();
    match enc {
        Encoding::O200kBase => *O200K.get_or_init(|| load(bpe_openai::o200k_base)),
        Encoding::Cl100kBase => *CL100K.get_or_init(|| load(bpe_openai::cl100k_base)),
    }
}

/// Loads `o200k_base` now (about 70 MB of tables), so that no request pays
/// for it: it counts every current OpenAI model and estimates all others.
/// `cl100k_base` (another 30 MB) is loaded by [`prepare`] when a snapshot
/// routes a model that uses it, or else on first use. Returns false if the
/// tables could not be loaded (counts then fall back to an estimate of one
/// token per four bytes).
pub fn warm_up() -> bool {
    prepare(Encoding::O200kBase)
}

/// Loads `enc`'s tables now, if they are not loaded yet.
pub fn prepare(enc: Encoding) -> bool {
    bpe(enc).is_some()
}

/// Tokens in `text` with `enc`, special tokens counted as plain text.
pub fn count(enc: Encoding, text: &str) -> usize {
    let Some(bpe) = bpe(enc) else {
        return estimate(text);
    };
    if text.len() <= MAX_WS_RUN {
        return encode_len(enc, bpe, text);
    }
    let mut total = 0;
    let mut seg = 0;
    let mut run: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if !c.is_whitespace() {
            run = None;
            continue;
        }
        let start = *run.get_or_insert(i);
        let end = i + c.len_utf8();
        if end - start >= MAX_WS_RUN {
            total += encode_len(enc, bpe, &text[seg..end]);
            seg = end;
            run = Some(end);
        }
    }
    total + encode_len(enc, bpe, &text[seg..])
}

/// Sum of [`count`] over several texts: the texts of a prompt. Long ones
/// are remembered per worker, whole: applications send the same system
/// prompt with every request, and a conversation resends its history with
/// every turn.
pub fn count_all<'a>(enc: Encoding, texts: impl IntoIterator<Item = &'a str>) -> u64 {
    texts
        .into_iter()
        .map(|t| {
            if !(TextCache::MIN_TEXT..=TextCache::MAX_TEXT).contains(&t.len()) {
                return count(enc, t) as u64;
            }
            TEXTS.with_borrow_mut(|cache| cache[enc as usize].count(enc, t)) as u64
        })
        .sum()
}

fn encode_len(enc: Encoding, bpe: &Tokenizer, text: &str) -> usize {
    if text.is_empty() {
        return 0;
    }
    // A panic in the library must not take the worker down.
    catch_unwind(AssertUnwindSafe(|| {
        PIECES.with_borrow_mut(|cache| {
            let memo = &mut cache[enc as usize];
            segments(text).map(|seg| memo.segment(bpe, seg)).sum()
        })
    }))
    .unwrap_or_else(|_| estimate(text))
}

/// `text` cut at its *safe cuts*: every U+0020 SPACE whose preceding
/// character is not whitespace.
///
/// Counts add up over these segments: `count(a + b) == count(a) + count(b)`
/// when `b` starts at a safe cut. Both encodings' pre-split regexes can put
/// a space inside a piece only at the piece's start or inside an
/// all-whitespace piece, have no look-behind, and their look-ahead `(?!\S)`
/// accepts a space as it accepts the end of text; so the pieces of `a + b`,
/// cut there, are the pieces of `a` followed by those of `b`, and BPE works
/// per piece. (Checked against the encoder on the parity corpus and on
/// generated text rich in whitespace, in `tests.rs`.)
fn segments(text: &str) -> impl Iterator<Item = &str> {
    let mut from = 0;
    let mut spaces = memchr::memchr_iter(b' ', text.as_bytes());
    std::iter::from_fn(move || {
        if from == text.len() {
            return None;
        }
        let seg_start = from;
        let cut = spaces.by_ref().find(|&i| i > seg_start && is_safe_cut(text, i));
        from = cut.unwrap_or(text.len());
        Some(&text[seg_start..from])
    })
}

/// Whether the space at byte `i` of `text` is a safe cut (see [`segments`]):
/// a character precedes it and is not whitespace.
fn is_safe_cut(text: &str, i: usize) -> bool {
    text.as_bytes().get(i) == Some(&b' ') && text[..i].chars().next_back().is_some_and(|c| !c.is_whitespace())
}

/// Token counts of whole prompt texts, per thread (no lock); exact, keyed
/// by the text itself. Bounded by the bytes it holds (each text's, and
/// [`TextCache::ENTRY_COST`] for its entry): when full, it starts over.
#[derive(Default)]
struct TextCache {
    map: HashMap<Box<str>, u32>,
    bytes: usize,
}

impl TextCache {
    /// Shorter texts are counted each time: an empty one is no work. (A
    /// short system prompt still costs a few segment lookups and a pass of
    /// the safe-cut search; remembered whole it is one lookup.)
    const MIN_TEXT: usize = 1;
    /// Longer texts are counted each time.
    const MAX_TEXT: usize = MAX_WS_RUN;
    /// Bytes held before the cache starts over.
    const MAX_BYTES: usize = 1 << 20;
    /// What an entry costs beside its text (the key's box and its slot), so
    /// that many short texts stay bounded too.
    const ENTRY_COST: usize = 64;

    fn count(&mut self, enc: Encoding, text: &str) -> usize {
        if let Some(&n) = self.map.get(text) {
            return n as usize;
        }
        let n = count(enc, text);
        let cost = text.len() + Self::ENTRY_COST;
        if self.bytes + cost > Self::MAX_BYTES {
            self.map.clear();
            self.bytes = 0;
        }
        self.bytes += cost;
        self.map.insert(Box::from(text), n as u32);
        n
    }
}

thread_local! {
    /// Each worker's counts of recently seen prompt texts, per encoding.
    static TEXTS: RefCell<[TextCache; 2]> = RefCell::new(Default::default());
    /// Each worker's counts of recently seen pieces, per encoding.
    static PIECES: RefCell<[PieceCache; 2]> = RefCell::new(Default::default());
}

/// Token counts of segments (see [`segments`]) and of pre-tokenised pieces,
/// per thread (no lock).
///
/// Language is repetitive: most words of a prompt or a completion were seen
/// moments ago. A segment (a word with its leading space and trailing
/// punctuation, mostly) seen before costs one hash lookup; a new one is
/// split into pieces by the encoding's regex, and each piece is encoded on
/// its own (a piece's count never depends on its neighbours), a piece seen
/// before again costing a lookup rather than a run of the encoder (which
/// also allocates). Bounded: each map, when full, starts over.
#[derive(Default)]
struct PieceCache {
    map: HashMap<Box<[u8]>, u32>,
    segments: HashMap<Box<[u8]>, u32>,
}

impl PieceCache {
    /// Entries of each map before it starts over (about 1 MiB each).
    const MAX_ENTRIES: usize = 16 * 1024;
    /// Longer pieces (rare: long numbers are cut at three digits, long words
    /// are few) are always encoded.
    const MAX_PIECE: usize = 24;
    /// Longer segments are split each time (their pieces are remembered).
    const MAX_SEGMENT: usize = 32;

    fn segment(&mut self, bpe: &Tokenizer, seg: &str) -> usize {
        let bytes = seg.as_bytes();
        if bytes.len() > Self::MAX_SEGMENT {
            return self.pieces(bpe, seg);
        }
        if let Some(&n) = self.segments.get(bytes) {
            return n as usize;
        }
        let n = self.pieces(bpe, seg);
        if self.segments.len() >= Self::MAX_ENTRIES {
            self.segments.clear();
        }
        self.segments.insert(Box::from(bytes), n as u32);
        n
    }

    fn pieces(&mut self, bpe: &Tokenizer, text: &str) -> usize {
        bpe.split(text).map(|p| self.count(&bpe.bpe, p)).sum()
    }

    fn count(&mut self, bpe: &BytePairEncoding, piece: &str) -> usize {
        let bytes = piece.as_bytes();
        if bytes.len() > Self::MAX_PIECE {
            return bpe.count(bytes);
        }
        if let Some(&n) = self.map.get(bytes) {
            return n as usize;
        }
        let n = bpe.count(bytes);
        if self.map.len() >= Self::MAX_ENTRIES {
            self.map.clear();
        }
        self.map.insert(Box::from(bytes), n as u32);
        n
    }
}

fn estimate(text: &str) -> usize {
    text.len().div_ceil(4)
}

/// Counts completion tokens of a streamed response as its text deltas
/// arrive, without holding anything back.
///
/// Method: deltas are appended to a pending buffer; once it holds at least
/// [`CompletionCounter::FLUSH_AT`] bytes, everything before its last safe
/// cut (see [`segments`]) is counted and dropped: counts add up across safe
/// cuts, so the total is exactly the count of the whole text. Text with no
/// such position for [`CompletionCounter::FORCE_AT`] bytes (CJK, minified
/// code) is cut at a character boundary anyway, which can be off by a token
/// or two per 4 KiB.
///
/// The pending buffer keeps its capacity, and deltas are only appended to
/// it. The count itself runs once per flush, in the BPE library, which
/// allocates as it works (about one small allocation per pre-tokenised
/// piece); `dataplane/tests/steady_state_allocations.rs` pins down that this
/// happens per flush, never per delta.
#[derive(Clone, Debug)]
pub struct CompletionCounter {
    enc: Encoding,
    pending: String,
    /// Bytes of `pending` already searched for a cut.
    scanned: usize,
    /// The last safe cut found in `pending[..scanned]`, 0 if none.
    cut: usize,
    counted: u64,
}

impl CompletionCounter {
    /// Pending bytes that trigger a count at the last safe cut.
    pub const FLUSH_AT: usize = 256;
    /// Pending bytes without a safe cut that trigger a forced one.
    pub const FORCE_AT: usize = 4096;

    /// A counter for a completion of a model using `enc`.
    pub fn new(enc: Encoding) -> Self {
        CompletionCounter {
            enc,
            // A flush leaves at most a word behind: one allocation a stream.
            pending: String::with_capacity(Self::FLUSH_AT * 2),
            scanned: 0,
            cut: 0,
            counted: 0,
        }
    }

    /// Feeds the next text delta.
    pub fn push(&mut self, delta: &str) {
        self.pending.push_str(delta);
        if self.pending.len() < Self::FLUSH_AT {
            return;
        }
        // Search what arrived since the last search, once, backwards: the
        // last safe cut is all a flush needs. A cut needs a character
        // before it.
        let from = self.scanned.max(1).min(self.pending.len());
        let spaces = memchr::memchr_iter(b' ', &self.pending.as_bytes()[from..]);
        if let Some(i) = spaces
            .rev()
            .map(|i| from + i)
            .find(|&i| is_safe_cut(&self.pending, i))
        {
            self.cut = i;
        }
        self.scanned = self.pending.len();
        let cut = if self.cut > 0 {
            self.cut
        } else if self.pending.len() >= Self::FORCE_AT {
            self.pending.len()
        } else {
            return;
        };
        self.counted += count(self.enc, &self.pending[..cut]) as u64;
        self.pending.drain(..cut);
        self.scanned = self.pending.len();
        self.cut = 0;
    }

    /// Tokens so far: counted exactly up to the last cut, estimated (four
    /// bytes a token) after it.
    pub fn tokens(&self) -> u64 {
        self.counted + estimate(&self.pending) as u64
    }

    /// Counts what is pending and returns the total. The counter can go on
    /// being fed afterwards.
    pub fn finish(&mut self) -> u64 {
        self.counted += count(self.enc, &self.pending) as u64;
        self.pending.clear();
        self.scanned = 0;
        self.cut = 0;
        self.counted
    }
}

#[cfg(test)]
mod tests;
