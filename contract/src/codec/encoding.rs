//! Request bodies with `Content-Encoding` (RFC 9110 §8.4): gzip, deflate,
//! br and zstd, decoded within the body limit.
//!
//! Codings apply in the order listed, so they are undone in reverse. The
//! output is bounded as it is produced: a body that would decode past the
//! limit (a decompression bomb: a few KiB that expand to gigabytes) is
//! refused after at most `limit + 1` bytes of output, whatever its ratio.

use std::io::Read;

/// Why a body could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// A coding the gateway does not know (its name, for the message).
    Unsupported,
    /// The decoded body would be larger than the limit.
    TooLarge,
    /// The bytes are not valid for the coding they claim.
    Corrupt,
}

/// A content coding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    /// `gzip` (and its alias `x-gzip`).
    Gzip,
    /// `deflate`: zlib-wrapped deflate (RFC 9110 §8.4.1.2).
    Deflate,
    /// `br`.
    Brotli,
    /// `zstd`.
    Zstd,
}

impl Coding {
    fn parse(name: &[u8]) -> Option<Option<Coding>> {
        let name = name.trim_ascii();
        let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
        if is("identity") || name.is_empty() {
            Some(None)
        } else if is("gzip") || is("x-gzip") {
            Some(Some(Coding::Gzip))
        } else if is("deflate") {
            Some(Some(Coding::Deflate))
        } else if is("br") {
            Some(Some(Coding::Brotli))
        } else if is("zstd") {
            Some(Some(Coding::Zstd))
        } else {
            None
        }
    }

    /// The coding's name, for records and messages.
    pub fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
        }
    }
}

/// The codings of a `Content-Encoding` field value (or several, joined
/// with commas), in the order they were applied; `identity` is dropped.
pub fn codings(value: &[u8]) -> Result<Vec<Coding>, DecodeError> {
    let mut out = Vec::new();
    for name in value.split(|&b| b == b',') {
        match Coding::parse(name) {
            Some(Some(c)) => out.push(c),
            Some(None) => {}
            None => return Err(DecodeError::Unsupported),
        }
    }
    Ok(out)
}

/// `body` with `codings` undone (last applied first), refused past `limit`
/// bytes of output at any step.
pub fn decode(body: &[u8], codings: &[Coding], limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut current: Vec<u8> = Vec::new();
    for (i, coding) in codings.iter().rev().enumerate() {
        let input: &[u8] = if i == 0 { body } else { &current };
        let next = decode_one(input, *coding, limit)?;
        current = next;
    }
    if codings.is_empty() {
        current.extend_from_slice(body);
    }
    Ok(current)
}

fn decode_one(input: &[u8], coding: Coding, limit: usize) -> Result<Vec<u8>, DecodeError> {
    match coding {
        Coding::Gzip => bounded(flate2::read::MultiGzDecoder::new(input), limit),
        Coding::Deflate => bounded(flate2::read::ZlibDecoder::new(input), limit),
        Coding::Brotli => bounded(brotli_decompressor::Decompressor::new(input, 4096), limit),
        Coding::Zstd => {
            let decoder = ruzstd::decoding::StreamingDecoder::new(input).map_err(|_| DecodeError::Corrupt)?;
            bounded(decoder, limit)
        }
    }
}

/// Reads `r` to its end, or refuses once it gives more than `limit` bytes.
fn bounded(r: impl Read, limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    r.take(cap)
        .read_to_end(&mut out)
        .map_err(|_| DecodeError::Corrupt)?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
