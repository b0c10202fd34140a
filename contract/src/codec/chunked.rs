//! Incremental decoder for HTTP/1.1 chunked transfer coding (RFC 9112 §7.1).
//!
//! The decoder is fed the bytes of a message body as they arrive and hands out
//! each piece of chunk payload as the range of the bytes it was fed where it lies.
//!
//! Invariants:
//! - No I/O, no heap: the state is a few machine words, and payload is never
//!   copied; a feed costs one pass over the framing bytes plus one callback per
//!   payload piece.
//! - Never panics, whatever it is fed.
//! - Resumable at any byte boundary: feeding a body in any number of pieces
//!   yields the same payload bytes (possibly in more callbacks), the same
//!   error at the same byte and the same end as feeding it whole.
//! - Strict: `chunk-size` is `1*HEXDIG` with at most 16 significant digits;
//!   chunk extensions must follow the RFC grammar (they are then skipped) and
//!   the size line is bounded at [`MAX_SIZE_LINE`] bytes; every line ends in
//!   CRLF; chunk data is followed by exactly CRLF; the trailer section is
//!   skipped but bounded at [`MAX_TRAILER`] bytes, and each of its lines must
//!   be a field line (`field-name ":" field-value`, no control bytes): a
//!   request line after the last chunk is [`ChunkedError::InvalidTrailer`].
//! - [`ChunkedDecoder::announced_len`] counts a chunk's declared size as
//!   soon as its size line is read, so a caller can refuse a body over its
//!   limit before the chunk's bytes arrive.
//! - Errors are sticky: after the first error every later feed returns it.
//! - After the last chunk, the trailers and the final CRLF, the decoder reports
//!   how many bytes of the last feed belonged to the body; the rest belongs to
//!   the next message on the connection.

use std::fmt;
use std::ops::Range;

/// Longest chunk-size line accepted (size, extensions; not the CRLF).
pub const MAX_SIZE_LINE: u32 = 4096;
/// Largest trailer section accepted (field lines with their CRLFs).
pub const MAX_TRAILER: u32 = 16 * 1024;

/// Why a chunked body was rejected. The peer is always at fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkedError {
    /// The chunk-size line is malformed: no hex digit, a stray byte, or a
    /// chunk extension that does not follow the RFC grammar.
    InvalidSize,
    /// The chunk size has more than 16 significant hex digits (exceeds u64).
    SizeOverflow,
    /// A line ended in a bare LF or a bare CR.
    InvalidLineEnding,
    /// The chunk-size line is longer than [`MAX_SIZE_LINE`] bytes.
    ExtensionTooLong,
    /// The trailer section is larger than [`MAX_TRAILER`] bytes.
    TrailerTooLarge,
    /// Chunk data was not followed by exactly CRLF.
    InvalidChunkEnd,
    /// A trailer line is not a field line.
    InvalidTrailer,
}

impl ChunkedError {
    /// A short label, stable for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            ChunkedError::InvalidSize => "chunk_invalid_size",
            ChunkedError::SizeOverflow => "chunk_size_overflow",
            ChunkedError::InvalidLineEnding => "chunk_invalid_line_ending",
            ChunkedError::ExtensionTooLong => "chunk_extension_too_long",
            ChunkedError::TrailerTooLarge => "chunk_trailer_too_large",
            ChunkedError::InvalidChunkEnd => "chunk_invalid_end",
            ChunkedError::InvalidTrailer => "chunk_invalid_trailer",
        }
    }
}

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl std::error::Error for ChunkedError {}

/// Where the decoder is within the body. Each state names what the next byte
/// must be; the chunk-size line states follow the RFC grammar
/// `chunk-size *( BWS ";" BWS name [ BWS "=" BWS value ] ) CRLF`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// First byte of a chunk-size line: a hex digit.
    SizeStart,
    /// More hex digits, or what may follow the size.
    Size,
    /// Whitespace after the size or after an extension value: `;` must come.
    BwsBeforeSemi,
    /// After `;`: whitespace, then an extension name.
    BwsBeforeName,
    /// Inside an extension name.
    Name,
    /// Whitespace after an extension name: `=` or `;` must come.
    BwsAfterName,
    /// After `=`: whitespace, then a token or a quoted string.
    BwsBeforeValue,
    /// Inside a token value.
    ValueToken,
    /// Inside a quoted-string value.
    ValueQuoted,
    /// After a backslash inside a quoted string.
    ValueQuotedEscape,
    /// Right after the closing quote of a value.
    AfterQuoted,
    /// The size line's CR was seen; LF must come.
    SizeLf,
    /// Inside chunk data; `remaining` bytes are left.
    Data,
    /// Chunk data ended; CR must come.
    DataCr,
    /// Chunk data and CR ended; LF must come.
    DataLf,
    /// Start of a trailer field line, or the final CRLF.
    TrailerStart,
    /// Inside a trailer field name; `:` ends it.
    TrailerName,
    /// Inside a trailer field value.
    TrailerLine,
    /// A trailer line's CR was seen; LF must come.
    TrailerLf,
    /// The final CR was seen; LF must come.
    FinalLf,
    /// The whole body has been seen.
    Done,
    /// The body was rejected.
    Failed(ChunkedError),
}

/// Incremental chunked-body decoder. See the module docs for its invariants.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    /// The size being parsed, then the data bytes left in the current chunk.
    remaining: u64,
    /// Significant hex digits seen in the current size (leading zeros excluded).
    significant: u8,
    /// Bytes of the current chunk-size line so far.
    line_len: u32,
    /// Bytes of the trailer section so far.
    trailer_len: u32,
    /// Payload bytes decoded so far.
    payload: u64,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body.
    pub fn new() -> Self {
        ChunkedDecoder {
            state: State::SizeStart,
            remaining: 0,
            significant: 0,
            line_len: 0,
            trailer_len: 0,
            payload: 0,
        }
    }

    /// Payload bytes decoded so far plus what is left of the chunk being
    /// read: the body's length as far as the sender has declared it.
    pub fn announced_len(&self) -> u64 {
        match self.state {
            State::Data => self.payload.saturating_add(self.remaining),
            _ => self.payload,
        }
    }

    /// Whether the whole chunked body (last chunk, trailers, final CRLF) has
    /// been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Total payload bytes decoded so far.
    pub fn payload_len(&self) -> u64 {
        self.payload
    }

    /// The error the body was rejected with, if it was.
    pub fn error(&self) -> Option<ChunkedError> {
        match self.state {
            State::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// Feeds the next bytes of the message body. Calls `on_data` with each
    /// piece of chunk payload: where it lies in `input` (nothing is copied).
    ///
    /// Returns `Ok(consumed)`: `consumed == input.len()` unless the message
    /// ended (last chunk + trailers + final CRLF) inside `input`, in which case
    /// it is the number of bytes up to and including the final CRLF (bytes
    /// after it belong to the next message). Once done, a feed consumes
    /// nothing. After an error every later feed returns the same error.
    pub fn feed(
        &mut self,
        input: &[u8],
        mut on_data: impl FnMut(Range<usize>),
    ) -> Result<usize, ChunkedError> {
        let mut rest = input;
        loop {
            if let Some(n) = self.plain_size_line(rest) {
                rest = &rest[n..];
                continue;
            }
            match self.state {
                State::Failed(e) => return Err(e),
                State::Done => return Ok(input.len() - rest.len()),
                State::Data => {
                    if rest.is_empty() {
                        return Ok(input.len());
                    }
                    // Bounded by rest.len(), so the conversion back to usize is lossless.
                    let n = usize::try_from(self.remaining).map_or(rest.len(), |r| r.min(rest.len()));
                    let at = input.len() - rest.len();
                    on_data(at..at + n);
                    rest = &rest[n..];
                    self.remaining -= n as u64;
                    self.payload = self.payload.saturating_add(n as u64);
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                }
                State::TrailerLine => {
                    // Skip the line in one step: only CR and LF matter here.
                    let end = memchr::memchr2(b'\r', b'\n', rest);
                    let skipped = end.unwrap_or(rest.len());
                    // field-value: VCHAR, SP, HTAB and obs-text only.
                    if rest[..skipped]
                        .iter()
                        .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
                    {
                        return Err(self.fail(ChunkedError::InvalidTrailer));
                    }
                    let total = u64::from(self.trailer_len) + skipped as u64;
                    if total > u64::from(MAX_TRAILER) {
                        return Err(self.fail(ChunkedError::TrailerTooLarge));
                    }
                    // Fits: total <= MAX_TRAILER.
                    self.trailer_len = total as u32;
                    match end {
                        None => return Ok(input.len()),
                        Some(i) => {
                            let (_, tail) = rest.split_at(i);
                            rest = tail;
                            // The terminator byte itself is handled by `step`.
                            if let Some((&b, tail)) = rest.split_first() {
                                rest = tail;
                                self.step(b)?;
                            }
                        }
                    }
                }
                _ => match rest.split_first() {
                    None => return Ok(input.len()),
                    Some((&b, tail)) => {
                        rest = tail;
                        self.step(b)?;
                    }
                },
            }
        }
    }

    /// The common case in one step: at the end of a chunk's data (or the
    /// start of the body), its CRLF and a plain size line (`1*16HEXDIG
    /// CRLF`, no extensions) lie whole in `rest`. Returns the bytes taken,
    /// leaving the decoder where the byte-at-a-time path would; `None`
    /// leaves everything else, errors included, to that path.
    fn plain_size_line(&mut self, rest: &[u8]) -> Option<usize> {
        let start = match self.state {
            State::DataCr if rest.starts_with(b"\r\n") => 2,
            State::SizeStart if self.line_len == 0 && self.remaining == 0 => 0,
            _ => return None,
        };
        let line = rest.get(start..)?;
        let digits = line
            .iter()
            .take(17)
            .take_while(|&&b| hex_value(b).is_some())
            .count();
        if digits == 0 || digits > 16 || line.get(digits..digits + 2) != Some(b"\r\n") {
            return None;
        }
        let size = line[..digits]
            .iter()
            .fold(0u64, |n, &b| (n << 4) | u64::from(hex_value(b).unwrap_or(0)));
        self.remaining = size;
        self.significant = 0;
        self.line_len = 0;
        self.state = if size == 0 {
            State::TrailerStart
        } else {
            State::Data
        };
        Some(start + digits + 2)
    }

    fn fail(&mut self, e: ChunkedError) -> ChunkedError {
        self.state = State::Failed(e);
        e
    }

    /// Advances the byte-at-a-time states by one byte.
    fn step(&mut self, b: u8) -> Result<(), ChunkedError> {
        match self.next_state(b) {
            Ok(s) => {
                self.state = s;
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    fn next_state(&mut self, b: u8) -> Result<State, ChunkedError> {
        use State::*;
        if self.in_size_line() {
            if b == b'\n' {
                return Err(ChunkedError::InvalidLineEnding);
            }
            if b != b'\r' {
                self.line_len += 1;
                if self.line_len > MAX_SIZE_LINE {
                    return Err(ChunkedError::ExtensionTooLong);
                }
            }
        }
        let bad = ChunkedError::InvalidSize;
        Ok(match self.state {
            SizeStart | Size => match hex_value(b) {
                Some(d) => {
                    if self.remaining != 0 || d != 0 {
                        self.significant += 1;
                        if self.significant > 16 {
                            return Err(ChunkedError::SizeOverflow);
                        }
                    }
                    // At most 16 significant digits: the shift never loses bits.
                    self.remaining = (self.remaining << 4) | u64::from(d);
                    Size
                }
                None if self.state == SizeStart => return Err(bad),
                None => match b {
                    b'\r' => SizeLf,
                    b';' => BwsBeforeName,
                    b' ' | b'\t' => BwsBeforeSemi,
                    _ => return Err(bad),
                },
            },
            BwsBeforeSemi => match b {
                b' ' | b'\t' => BwsBeforeSemi,
                b';' => BwsBeforeName,
                _ => return Err(bad),
            },
            BwsBeforeName => match b {
                b' ' | b'\t' => BwsBeforeName,
                _ if is_tchar(b) => Name,
                _ => return Err(bad),
            },
            Name => match b {
                _ if is_tchar(b) => Name,
                b' ' | b'\t' => BwsAfterName,
                b'=' => BwsBeforeValue,
                b';' => BwsBeforeName,
                b'\r' => SizeLf,
                _ => return Err(bad),
            },
            BwsAfterName => match b {
                b' ' | b'\t' => BwsAfterName,
                b'=' => BwsBeforeValue,
                b';' => BwsBeforeName,
                _ => return Err(bad),
            },
            BwsBeforeValue => match b {
                b' ' | b'\t' => BwsBeforeValue,
                b'"' => ValueQuoted,
                _ if is_tchar(b) => ValueToken,
                _ => return Err(bad),
            },
            ValueToken => match b {
                _ if is_tchar(b) => ValueToken,
                b' ' | b'\t' => BwsBeforeSemi,
                b';' => BwsBeforeName,
                b'\r' => SizeLf,
                _ => return Err(bad),
            },
            ValueQuoted => match b {
                b'"' => AfterQuoted,
                b'\\' => ValueQuotedEscape,
                // qdtext: HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
                b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff => ValueQuoted,
                _ => return Err(bad),
            },
            ValueQuotedEscape => match b {
                // quoted-pair: "\" ( HTAB / SP / VCHAR / obs-text )
                b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff => ValueQuoted,
                _ => return Err(bad),
            },
            AfterQuoted => match b {
                b' ' | b'\t' => BwsBeforeSemi,
                b';' => BwsBeforeName,
                b'\r' => SizeLf,
                _ => return Err(bad),
            },
            SizeLf => {
                if b != b'\n' {
                    return Err(ChunkedError::InvalidLineEnding);
                }
                self.line_len = 0;
                self.significant = 0;
                if self.remaining == 0 {
                    TrailerStart
                } else {
                    Data
                }
            }
            DataCr if b == b'\r' => DataLf,
            DataLf if b == b'\n' => SizeStart,
            DataCr | DataLf => return Err(ChunkedError::InvalidChunkEnd),
            TrailerStart => match b {
                b'\r' => FinalLf,
                b'\n' => return Err(ChunkedError::InvalidLineEnding),
                _ if is_tchar(b) => {
                    self.trailer_len += 1;
                    TrailerName
                }
                _ => return Err(ChunkedError::InvalidTrailer),
            },
            TrailerName => {
                self.trailer_len += 1;
                if self.trailer_len > MAX_TRAILER {
                    return Err(ChunkedError::TrailerTooLarge);
                }
                match b {
                    b':' => TrailerLine,
                    _ if is_tchar(b) => TrailerName,
                    _ => return Err(ChunkedError::InvalidTrailer),
                }
            }
            TrailerLine => match b {
                b'\r' => TrailerLf,
                _ => return Err(ChunkedError::InvalidLineEnding),
            },
            TrailerLf | FinalLf if b != b'\n' => return Err(ChunkedError::InvalidLineEnding),
            TrailerLf => {
                // The CRLF counts towards the trailer bound.
                self.trailer_len += 2;
                if self.trailer_len > MAX_TRAILER {
                    return Err(ChunkedError::TrailerTooLarge);
                }
                TrailerStart
            }
            FinalLf => Done,
            // Handled by `feed` before it gets here; keep them where they are.
            s @ (Data | Done | Failed(_)) => s,
        })
    }

    fn in_size_line(&self) -> bool {
        use State::*;
        matches!(
            self.state,
            SizeStart
                | Size
                | BwsBeforeSemi
                | BwsBeforeName
                | Name
                | BwsAfterName
                | BwsBeforeValue
                | ValueToken
                | ValueQuoted
                | ValueQuotedEscape
                | AfterQuoted
        )
    }
}

/// Room the head of a chunk takes at most: a `usize` in hex and CRLF.
pub const CHUNK_SIZE_ROOM: usize = 2 * std::mem::size_of::<usize>() + 2;

/// Appends `n` in hex and CRLF: the head of a chunk of `n` bytes (`n` > 0),
/// without the formatting machinery.
pub fn write_chunk_size(out: &mut Vec<u8>, n: usize) {
    let mut head = [0u8; CHUNK_SIZE_ROOM];
    let at = write_chunk_size_before(&mut head, CHUNK_SIZE_ROOM, n);
    out.extend_from_slice(&head[at..]);
}

/// Writes the head of a chunk of `n` bytes (`n` > 0) so that it ends just
/// before `end` of `buf`, and returns where it starts: a chunk can then be
/// framed in place, its payload written after room left for its head.
/// `end` must be at least [`CHUNK_SIZE_ROOM`].
pub fn write_chunk_size_before(buf: &mut [u8], end: usize, n: usize) -> usize {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    buf[end - 2..end].copy_from_slice(b"\r\n");
    let mut at = end - 2;
    let mut n = n;
    loop {
        at -= 1;
        buf[at] = DIGITS[n & 0xf];
        n >>= 4;
        if n == 0 {
            return at;
        }
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
        | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

#[cfg(test)]
pub(crate) mod tests;
