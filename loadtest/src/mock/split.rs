//! How a stream's SSE bytes are cut into HTTP chunks (`x-mock-split`).

use std::ops::Range;

/// A way to cut the SSE byte stream into HTTP chunks, each sent in its own
/// write so a reader really sees the cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Split {
    /// One chunk per SSE event.
    Event,
    /// Everything that is ready at once in one chunk.
    Coalesce,
    /// Chunks of N bytes, regardless of event boundaries.
    Bytes(usize),
    /// One chunk per event, except that an event holding a multi-byte UTF-8
    /// character is cut in the middle of its first one.
    Utf8,
}

impl Split {
    /// Parses `event`, `coalesce`, `bytes:N` (N ≥ 1) or `utf8`.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "event" => Some(Self::Event),
            "coalesce" => Some(Self::Coalesce),
            "utf8" => Some(Self::Utf8),
            other => {
                let n: usize = other.strip_prefix("bytes:")?.parse().ok()?;
                (n > 0).then_some(Self::Bytes(n))
            }
        }
    }

    /// [`Split::parse`] for clap.
    pub(crate) fn parse_arg(s: &str) -> Result<Self, String> {
        Self::parse(s).ok_or_else(|| format!("expected event, coalesce, bytes:N or utf8, got {s:?}"))
    }

    /// Appends to `out` the chunk ranges of `data`, a run of whole events
    /// whose end offsets are `ends` (ascending, the last is `data.len()`).
    pub(super) fn cut(self, data: &[u8], ends: &[usize], out: &mut Vec<Range<usize>>) {
        match self {
            Self::Coalesce => push(out, 0..data.len()),
            Self::Bytes(n) => {
                let mut at = 0;
                while at < data.len() {
                    let end = data.len().min(at.saturating_add(n));
                    out.push(at..end);
                    at = end;
                }
            }
            Self::Event | Self::Utf8 => {
                let mut start = 0;
                for &end in ends {
                    let cut = match self {
                        Self::Utf8 => mid_char(&data[start..end]).map(|i| start + i),
                        _ => None,
                    };
                    if let Some(cut) = cut {
                        push(out, start..cut);
                        push(out, cut..end);
                    } else {
                        push(out, start..end);
                    }
                    start = end;
                }
            }
        }
    }
}

fn push(out: &mut Vec<Range<usize>>, r: Range<usize>) {
    if !r.is_empty() {
        out.push(r);
    }
}

/// The offset just after the lead byte of the first multi-byte character.
fn mid_char(event: &[u8]) -> Option<usize> {
    event.iter().position(|&b| b >= 0xc0).map(|i| i + 1)
}
