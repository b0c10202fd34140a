//! An incremental `Transfer-Encoding: chunked` decoder for response bodies.
//!
//! It keeps only a few integers between reads, so a body split anywhere
//! (inside a size line, between CR and LF, inside the trailer) decodes the
//! same. Payload bytes are handed out as slices of the input: no copy.

/// Why a chunked body is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkedError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size { digits: u8 },
    /// After the size: extensions or whitespace until LF.
    SizeLine,
    /// Inside chunk data, with this many bytes left.
    Data(u64),
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// In the trailer section, at the start of a line.
    TrailerLineStart,
    /// In the trailer section, inside a header line.
    TrailerLine,
    /// The last-chunk's final CRLF was read.
    Done,
}

/// Decoder state; feed it every byte of the body in order.
#[derive(Debug, Clone)]
pub(crate) struct ChunkedDecoder {
    state: State,
    size: u64,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    pub(crate) fn new() -> Self {
        Self {
            state: State::Size { digits: 0 },
            size: 0,
        }
    }

    /// Whether the terminating zero-size chunk and trailer have been read.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes `input`, calling `on_data` with each run of payload bytes.
    /// Returns how many bytes of `input` were consumed: all of them, unless
    /// the body ended inside `input` (the rest belongs to the next message).
    pub(crate) fn feed(
        &mut self,
        input: &[u8],
        mut on_data: impl FnMut(&[u8]),
    ) -> Result<usize, ChunkedError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Size { digits } => {
                    if let Some(v) = hex_value(b) {
                        // 15 hex digits is more than any body could be.
                        if digits >= 15 {
                            return Err(ChunkedError);
                        }
                        self.size = self.size << 4 | u64::from(v);
                        self.state = State::Size { digits: digits + 1 };
                    } else if digits == 0 {
                        return Err(ChunkedError);
                    } else {
                        self.state = State::SizeLine;
                        continue;
                    }
                    i += 1;
                }
                State::SizeLine => {
                    if b == b'\n' {
                        self.state = if self.size == 0 {
                            State::TrailerLineStart
                        } else {
                            State::Data(self.size)
                        };
                        self.size = 0;
                    }
                    i += 1;
                }
                State::Data(left) => {
                    let n = (input.len() - i).min(usize::try_from(left).unwrap_or(usize::MAX));
                    on_data(&input[i..i + n]);
                    i += n;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data(left)
                    };
                }
                State::DataCr => {
                    // Tolerate a bare LF, as most servers' parsers do.
                    self.state = match b {
                        b'\r' => State::DataLf,
                        b'\n' => State::Size { digits: 0 },
                        _ => return Err(ChunkedError),
                    };
                    i += 1;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkedError);
                    }
                    self.state = State::Size { digits: 0 };
                    i += 1;
                }
                State::TrailerLineStart => {
                    self.state = match b {
                        b'\n' => State::Done,
                        b'\r' => State::TrailerLineStart,
                        _ => State::TrailerLine,
                    };
                    i += 1;
                    if self.state == State::Done {
                        return Ok(i);
                    }
                }
                State::TrailerLine => {
                    if b == b'\n' {
                        self.state = State::TrailerLineStart;
                    }
                    i += 1;
                }
                State::Done => return Ok(i),
            }
        }
        Ok(i)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_split(body: &[u8], split: usize) -> (Vec<u8>, bool, usize) {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let a = d.feed(&body[..split], |p| out.extend_from_slice(p)).unwrap();
        let mut used = a;
        if !d.is_done() {
            used += d.feed(&body[split..], |p| out.extend_from_slice(p)).unwrap();
        }
        (out, d.is_done(), used)
    }

    #[test]
    fn decodes_split_at_every_byte() {
        let body = b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-t: 1\r\n\r\nNEXT";
        for split in 0..=body.len() {
            let (out, done, used) = decode_split(body, split);
            assert_eq!(out, b"helloabcdefghijklmnopqrstuvwxyz", "split {split}");
            assert!(done, "split {split}");
            assert_eq!(&body[used..], b"NEXT", "split {split}");
        }
    }

    #[test]
    fn byte_by_byte_without_trailer() {
        let body = b"3\r\nabc\r\n0\r\n\r\n";
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        for b in body.chunks(1) {
            assert_eq!(d.feed(b, |p| out.extend_from_slice(p)).unwrap(), 1);
        }
        assert_eq!(out, b"abc");
        assert!(d.is_done());
    }

    #[test]
    fn unfinished_body_is_not_done() {
        let mut d = ChunkedDecoder::new();
        d.feed(b"3\r\nab", |_| {}).unwrap();
        assert!(!d.is_done());
    }

    #[test]
    fn rejects_garbage() {
        for bad in [&b"zz\r\n"[..], b"\r\n", b"3\r\nabcX", b"ffffffffffffffff1\r\n"] {
            assert!(ChunkedDecoder::new().feed(bad, |_| {}).is_err(), "{bad:?}");
        }
    }
}
