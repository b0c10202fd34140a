//! The fast path of [`super::DeltaReader`]: one hand-written pass over an
//! event that validates its JSON and notes where the completion texts lie,
//! without building anything.
//!
//! It answers exactly as the `serde_json` path does, or not at all: for any
//! input it either returns the spans (of valid UTF-8, starting and ending
//! at quotes) whose texts that path would emit, in the same order, or
//! [`Unsure`], and the caller then runs that path. It is `Unsure` about
//! everything off the happy path — a key with escapes, a repeated key it
//! reads, a value of an unexpected type, an escaped lone surrogate, a
//! control character or invalid UTF-8 in a string, nesting deeper than
//! [`MAX_DEPTH`], malformed JSON, trailing bytes — so that the rules of the
//! full parser (duplicate fields are errors, a struct may be read from an
//! array, which lone surrogates and invalid UTF-8 pass) need not be
//! repeated here. The differential tests in `tests.rs` hold the two paths
//! to the same answers.
//!
//! Why: every streamed delta of a metered request goes through here, and a
//! generic deserializer spent about 0.4 µs on an OpenAI chunk, most of a
//! request's metering cost.

mod shape;

use crate::dialect::Dialect;
use shape::Shape;
use std::ops::Range;

/// The event is not one this reader answers for; use the full parser.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Unsure;

type R<T> = Result<T, Unsure>;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Nesting past this is left to the full parser (which allows 128).
const MAX_DEPTH: u32 = 32;

/// The places texts are found at; after the event is read, the texts of
/// each OpenAI choice go out as content, reasoning content, reasoning, then
/// tool-call arguments — the order of the full parser.
#[derive(Debug, Default)]
pub(super) struct Spans {
    /// Spans of the JSON string tokens (quotes included) to emit, in order:
    /// valid UTF-8, except a text read by its shape (see `checked`).
    pub(super) texts: Vec<Range<usize>>,
    /// False when the texts are one read by its shape: its bytes were not
    /// checked for UTF-8, and a caller that finds them invalid must use the
    /// full parser.
    pub(super) checked: bool,
    /// Whether a text may hold escapes (false: each is its bytes as they
    /// are between the quotes).
    pub(super) escaped: bool,
    /// Tool-call arguments of the choice being read.
    calls: Vec<Range<usize>>,
    /// OpenAI: the bytes before `choices` of the last chunk read.
    prefix: Vec<u8>,
    /// The last event read whole with one text (see [`shape`]).
    shape: Shape,
}

impl Spans {
    /// A longer prefix is not kept.
    const MAX_PREFIX: usize = 512;

    /// Makes the one text at `at` (UTF-8 not checked) what the event holds.
    pub(super) fn set_one(&mut self, at: Range<usize>, escaped: bool) {
        self.texts.clear();
        self.texts.push(at);
        (self.checked, self.escaped) = (false, escaped);
    }
}

/// The JSON string token that opens at `data[open]` (a `"`): returns the
/// index just past its closing quote and whether it has escapes. `None`
/// when there is none there, or it holds a control character or a bad
/// escape. Its UTF-8 is not checked.
pub(super) fn string_token(data: &[u8], open: usize) -> Option<(usize, bool)> {
    if data.get(open) != Some(&b'"') {
        return None;
    }
    let mut c = Cursor { b: data, i: open };
    let (escaped, _) = c.string_unchecked().ok()?;
    Some((c.i, escaped))
}

/// One field read at most once per object, as the full parser insists.
#[derive(Default)]
struct Once {
    seen: bool,
    value: Option<Range<usize>>,
}

impl Once {
    fn first(&mut self) -> R<()> {
        if std::mem::replace(&mut self.seen, true) {
            return Err(Unsure);
        }
        Ok(())
    }

    /// Reads the field's value when it must be `null` or an object; the
    /// object's members go to `member`.
    fn object<'a>(
        &mut self,
        c: &mut Cursor<'a>,
        depth: u32,
        member: impl FnMut(&'a [u8], &mut Cursor<'a>) -> R<()>,
    ) -> R<()> {
        self.first()?;
        if c.null()? {
            return Ok(());
        }
        c.object(depth, member)
    }

    /// Reads the field's value (any JSON); keeps it when it is a string.
    fn read(&mut self, c: &mut Cursor<'_>, depth: u32) -> R<()> {
        self.first()?;
        let span = c.value(depth)?;
        if c.b[span.start] == b'"' {
            self.value = Some(span);
        }
        Ok(())
    }
}

/// Reads one event of a stream: as the last event of its shape with
/// another text when it is one (see [`shape`]), else whole.
pub(super) fn read(dialect: Dialect, data: &[u8], out: &mut Spans) -> R<()> {
    // Gemini's nested parts are read by the reference reader (which
    // allocates nothing for one candidate of one part).
    if dialect == Dialect::Gemini {
        return Err(Unsure);
    }
    if let Some(escaped) = out.shape.fits(dialect, data, &mut out.texts) {
        (out.checked, out.escaped) = (false, escaped);
        return Ok(());
    }
    (out.checked, out.escaped) = (true, true);
    match dialect {
        Dialect::OpenAi => openai(data, out)?,
        Dialect::Anthropic => anthropic(data, out)?,
        Dialect::OpenAiResponses => responses(data, out)?,
        Dialect::OpenAiEmbeddings | Dialect::Gemini => return Ok(()),
    }
    out.shape.learn(dialect, data, &out.texts);
    Ok(())
}

/// An OpenAI chat completion chunk: `choices[].delta.{content,
/// reasoning_content, reasoning, tool_calls[].function.arguments}`.
///
/// The chunks of one stream repeat everything before `choices` (id, object,
/// created, model, fingerprint) byte for byte: once a chunk is read, its
/// bytes up to the `[` of `choices` are kept, and a chunk that starts with
/// the same bytes is read from there on. Equal bytes leave the reader in the
/// same state, so this changes nothing but the time taken.
pub(super) fn openai(data: &[u8], out: &mut Spans) -> R<()> {
    out.texts.clear();
    out.calls.clear();
    let mut c = Cursor { b: data, i: 0 };
    let mut choices = Once::default();
    let mut choices_at = None;
    let known = out.prefix.len();
    let resumed = known > 0 && data.starts_with(&out.prefix);
    if resumed {
        choices.seen = true;
        c.i = known;
        c.elements(|c| choice(c, out))?;
        if c.more(b'}')? {
            c.members(&mut |key, c| top(key, c, out, &mut choices, &mut choices_at))?;
        }
    } else {
        c.ws();
        c.object(0, |key, c| top(key, c, out, &mut choices, &mut choices_at))?;
    }
    c.end()?;

    if let Some(at) = choices_at.filter(|&at| at <= Spans::MAX_PREFIX) {
        out.prefix.clear();
        out.prefix.extend_from_slice(&data[..at]);
    }
    Ok(())
}

/// A member of a chunk's top-level object; notes where the `choices` array
/// starts, for the prefix memo.
fn top(key: &[u8], c: &mut Cursor<'_>, out: &mut Spans, choices: &mut Once, at: &mut Option<usize>) -> R<()> {
    match key {
        b"choices" => {
            choices.first()?;
            if c.peek()? == b'[' {
                *at = Some(c.i + 1);
            }
            c.array(1, |c| choice(c, out))
        }
        _ => c.skip(1),
    }
}

fn choice(c: &mut Cursor<'_>, out: &mut Spans) -> R<()> {
    let mut delta = Once::default();
    c.object(2, |key, c| match key {
        b"delta" => {
            let (mut content, mut reasoning_content, mut reasoning) = Default::default();
            let mut calls = Once::default();
            delta.object(c, 3, |key, c| match key {
                b"content" => Once::read(&mut content, c, 4),
                b"reasoning_content" => Once::read(&mut reasoning_content, c, 4),
                b"reasoning" => Once::read(&mut reasoning, c, 4),
                b"tool_calls" => {
                    calls.first()?;
                    c.array(4, |c| tool_call(c, &mut out.calls))
                }
                _ => c.skip(4),
            })?;
            let found: [Once; 3] = [content, reasoning_content, reasoning];
            out.texts.extend(found.into_iter().filter_map(|f| f.value));
            out.texts.append(&mut out.calls);
            Ok(())
        }
        _ => c.skip(3),
    })
}

fn tool_call(c: &mut Cursor<'_>, calls: &mut Vec<Range<usize>>) -> R<()> {
    let mut function = Once::default();
    c.object(5, |key, c| match key {
        b"function" => {
            let mut arguments = Once::default();
            function.object(c, 6, |key, c| match key {
                b"arguments" => arguments.read(c, 7),
                _ => c.skip(7),
            })?;
            calls.extend(arguments.value);
            Ok(())
        }
        _ => c.skip(6),
    })
}

/// An Anthropic `content_block_delta` event's data: `delta.{text,
/// partial_json, thinking}`.
pub(super) fn anthropic(data: &[u8], out: &mut Spans) -> R<()> {
    out.texts.clear();
    let mut c = Cursor { b: data, i: 0 };
    c.ws();
    let mut delta = Once::default();
    c.object(0, |key, c| match key {
        b"delta" => {
            let (mut text, mut partial_json, mut thinking) = Default::default();
            delta.object(c, 1, |key, c| match key {
                b"text" => Once::read(&mut text, c, 2),
                b"partial_json" => Once::read(&mut partial_json, c, 2),
                b"thinking" => Once::read(&mut thinking, c, 2),
                _ => c.skip(2),
            })?;
            let found: [Once; 3] = [text, partial_json, thinking];
            out.texts.extend(found.into_iter().filter_map(|f| f.value));
            Ok(())
        }
        _ => c.skip(1),
    })?;
    c.end()
}

/// A Responses `response.output_text.delta` event: its top-level `delta`.
pub(super) fn responses(data: &[u8], out: &mut Spans) -> R<()> {
    out.texts.clear();
    let mut c = Cursor { b: data, i: 0 };
    c.ws();
    let mut delta = Once::default();
    c.object(0, |key, c| match key {
        b"delta" => Once::read(&mut delta, c, 1),
        _ => c.skip(1),
    })?;
    c.end()?;
    out.texts.extend(delta.value);
    Ok(())
}

/// A position in the event's bytes.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn peek(&self) -> R<u8> {
        self.b.get(self.i).copied().ok_or(Unsure)
    }

    /// Only whitespace is left.
    fn end(&mut self) -> R<()> {
        self.ws();
        if self.i == self.b.len() {
            Ok(())
        } else {
            Err(Unsure)
        }
    }

    /// Reads a `null` if one is here.
    fn null(&mut self) -> R<bool> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Calls `member` with each key of the object here; `member` reads the
    /// value. Keys with escapes are left to the full parser.
    fn object(&mut self, depth: u32, mut member: impl FnMut(&'a [u8], &mut Self) -> R<()>) -> R<()> {
        if depth > MAX_DEPTH || self.peek()? != b'{' {
            return Err(Unsure);
        }
        self.i += 1;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Ok(());
        }
        self.members(&mut member)
    }

    /// The members of an object from a key on, through the closing brace.
    fn members(&mut self, member: &mut impl FnMut(&'a [u8], &mut Self) -> R<()>) -> R<()> {
        loop {
            if self.peek()? != b'"' {
                return Err(Unsure);
            }
            let start = self.i + 1;
            if self.string()? {
                return Err(Unsure);
            }
            let key = &self.b[start..self.i - 1];
            self.ws();
            if self.peek()? != b':' {
                return Err(Unsure);
            }
            self.i += 1;
            self.ws();
            member(key, self)?;
            if !self.more(b'}')? {
                return Ok(());
            }
        }
    }

    /// Calls `element` with each element of the array here.
    fn array(&mut self, depth: u32, element: impl FnMut(&mut Self) -> R<()>) -> R<()> {
        if depth > MAX_DEPTH || self.peek()? != b'[' {
            return Err(Unsure);
        }
        self.i += 1;
        self.elements(element)
    }

    /// The elements of an array whose `[` was read, through the `]`.
    fn elements(&mut self, mut element: impl FnMut(&mut Self) -> R<()>) -> R<()> {
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
            return Ok(());
        }
        loop {
            element(self)?;
            if !self.more(b']')? {
                return Ok(());
            }
        }
    }

    /// After a value in an object or array: true at a comma (read, with
    /// the whitespace after it), false at `close` (read).
    fn more(&mut self, close: u8) -> R<bool> {
        self.ws();
        match self.peek()? {
            b',' => {
                self.i += 1;
                self.ws();
                Ok(true)
            }
            c if c == close => {
                self.i += 1;
                Ok(false)
            }
            _ => Err(Unsure),
        }
    }

    fn skip(&mut self, depth: u32) -> R<()> {
        self.value(depth).map(drop)
    }

    /// Reads any JSON value; returns where it lies.
    fn value(&mut self, depth: u32) -> R<Range<usize>> {
        let start = self.i;
        match self.peek()? {
            b'"' => {
                self.string()?;
            }
            b'{' => self.object(depth, |_, c| c.skip(depth + 1))?,
            b'[' => self.array(depth, |c| c.skip(depth + 1))?,
            b't' => self.literal(b"true")?,
            b'f' => self.literal(b"false")?,
            b'n' => self.literal(b"null")?,
            b'-' | b'0'..=b'9' => self.number()?,
            _ => return Err(Unsure),
        }
        Ok(start..self.i)
    }

    fn literal(&mut self, lit: &[u8]) -> R<()> {
        if self.b[self.i..].starts_with(lit) {
            self.i += lit.len();
            Ok(())
        } else {
            Err(Unsure)
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> R<()> {
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits(),
            _ => return Err(Unsure),
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            self.digits1()?;
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            self.digits1()?;
        }
        Ok(())
    }

    fn digits(&mut self) {
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
    }

    fn digits1(&mut self) -> R<()> {
        let from = self.i;
        self.digits();
        if self.i == from {
            return Err(Unsure);
        }
        Ok(())
    }

    /// Reads the string here (quotes included); returns whether it had
    /// escapes. Non-ASCII bytes in it must be valid UTF-8.
    fn string(&mut self) -> R<bool> {
        let start = self.i + 1;
        let (escaped, ascii) = self.string_unchecked()?;
        // Only strings may hold non-ASCII bytes; the full parser judges
        // invalid UTF-8 (it lets some through).
        if !ascii && std::str::from_utf8(&self.b[start..self.i - 1]).is_err() {
            return Err(Unsure);
        }
        Ok(escaped)
    }

    /// [`Cursor::string`] without the UTF-8 check; returns whether it had
    /// escapes and whether it is all ASCII. Eight bytes at a time to the
    /// next quote, backslash or control character.
    fn string_unchecked(&mut self) -> R<(bool, bool)> {
        let b = self.b;
        let mut i = self.i + 1;
        let mut escaped = false;
        // The OR of the bytes read: bit 7 of some byte set means non-ASCII.
        let mut high = 0u64;
        loop {
            if let Some(word) = b.get(i..i + 8) {
                let w = u64::from_le_bytes(word.try_into().unwrap_or_default());
                let found = special(w);
                if found == 0 {
                    high |= w;
                    i += 8;
                    continue;
                }
                let before = found.trailing_zeros() / 8;
                high |= w & ((1u64 << (before * 8)) - 1);
                i += before as usize;
            }
            match *b.get(i).ok_or(Unsure)? {
                b'"' => {
                    self.i = i + 1;
                    return Ok((escaped, high & HIGH == 0));
                }
                b'\\' => {
                    escaped = true;
                    i += match *b.get(i + 1).ok_or(Unsure)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
                        b'u' => match hex4(b, i + 2)? {
                            0xD800..=0xDBFF if b.get(i + 6..i + 8) == Some(b"\\u") => match hex4(b, i + 8)? {
                                0xDC00..=0xDFFF => 12,
                                _ => return Err(Unsure),
                            },
                            // Which lone surrogates pass is the full
                            // parser's call.
                            0xD800..=0xDFFF => return Err(Unsure),
                            _ => 6,
                        },
                        _ => return Err(Unsure),
                    };
                }
                0..=0x1F => return Err(Unsure),
                byte => {
                    high |= u64::from(byte);
                    i += 1;
                }
            }
        }
    }
}

/// The four hex digits at `at`.
fn hex4(b: &[u8], at: usize) -> R<u16> {
    let hex = b.get(at..at + 4).ok_or(Unsure)?;
    hex.iter().try_fold(0u16, |acc, &d| {
        let v = (d as char).to_digit(16).ok_or(Unsure)?;
        Ok(acc << 4 | v as u16)
    })
}

/// Marks the bytes of `w` that are `"`, `\` or below 0x20: the lowest
/// marked byte is the first such byte (bytes above it may be marked
/// falsely: the classic has-zero-byte test, on `w` and its xors).
fn special(w: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    zero(w ^ (ONES * b'"' as u64)) | zero(w ^ (ONES * b'\\' as u64)) | below_space
}

#[cfg(test)]
mod tests;
