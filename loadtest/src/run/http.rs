//! HTTP/1.1 response heads and body framing, with no I/O.

use super::chunked::ChunkedDecoder;

/// Heads larger than this are a protocol error.
pub(crate) const MAX_HEAD: usize = 64 * 1024;

/// What the client needs from a response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) status: u16,
    /// Bytes of the buffer the head took.
    pub(crate) len: usize,
    pub(crate) framing: Framing,
    /// Whether the connection may carry another request afterwards.
    pub(crate) keep_alive: bool,
    /// `Content-Type: text/event-stream`.
    pub(crate) event_stream: bool,
}

/// How the end of the body is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(u64),
    Chunked,
    /// No length: the body runs until the server closes the connection.
    UntilClose,
}

/// The head could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeadError;

/// Parses a response head at the start of `buf`. `Ok(None)`: need more bytes.
/// Interim `1xx` heads are returned like any other (the caller skips them).
pub(crate) fn parse_head(buf: &[u8]) -> Result<Option<Head>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(None),
        _ => return Err(HeadError),
    };
    let status = resp.code.ok_or(HeadError)?;
    let http10 = resp.version == Some(0);
    let mut length = None;
    let mut chunked = false;
    let mut keep_alive = !http10;
    let mut event_stream = false;
    for h in resp.headers.iter() {
        let v = h.value;
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or(HeadError)?;
            if length.is_some_and(|l| l != n) {
                return Err(HeadError);
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = last_token(v).eq_ignore_ascii_case(b"chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in v.split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        } else if h.name.eq_ignore_ascii_case("content-type") {
            event_stream =
                v.trim_ascii().len() >= 17 && v.trim_ascii()[..17].eq_ignore_ascii_case(b"text/event-stream");
        }
    }
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    if framing == Framing::UntilClose {
        keep_alive = false;
    }
    Ok(Some(Head {
        status,
        len,
        framing,
        keep_alive,
        event_stream,
    }))
}

fn last_token(v: &[u8]) -> &[u8] {
    v.rsplit(|&b| b == b',').next().unwrap_or(v).trim_ascii()
}

/// Decodes a body according to its framing.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
}

/// The body is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BodyError;

impl Body {
    pub(crate) fn new(framing: Framing) -> Self {
        match framing {
            Framing::Length(n) => Body::Length(n),
            Framing::Chunked => Body::Chunked(ChunkedDecoder::new()),
            Framing::UntilClose => Body::UntilClose,
        }
    }

    /// Whether the whole body has been read (never, for `UntilClose`: its end
    /// is the end of the connection).
    pub(crate) fn is_done(&self) -> bool {
        match self {
            Body::Length(n) => *n == 0,
            Body::Chunked(d) => d.is_done(),
            Body::UntilClose => false,
        }
    }

    /// Feeds body bytes; returns how many were part of this body.
    pub(crate) fn feed(&mut self, input: &[u8], mut on_data: impl FnMut(&[u8])) -> Result<usize, BodyError> {
        match self {
            Body::Length(left) => {
                let n = (input.len() as u64).min(*left) as usize;
                if n > 0 {
                    on_data(&input[..n]);
                }
                *left -= n as u64;
                Ok(n)
            }
            Body::Chunked(d) => d.feed(input, on_data).map_err(|_| BodyError),
            Body::UntilClose => {
                if !input.is_empty() {
                    on_data(input);
                }
                Ok(input.len())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_streaming_head() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\ndata";
        let h = parse_head(raw).unwrap().unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(&raw[h.len..], b"data");
        assert_eq!(h.framing, Framing::Chunked);
        assert!(h.keep_alive && h.event_stream);
    }

    #[test]
    fn partial_and_bad_heads() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le"), Ok(None));
        assert_eq!(parse_head(b"NOPE 200\r\n\r\n"), Err(HeadError));
        let dup = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(parse_head(dup), Err(HeadError));
    }

    #[test]
    fn connection_semantics() {
        let h = parse_head(b"HTTP/1.1 429 Too Many\r\nConnection: close\r\nContent-Length: 2\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.status, h.keep_alive, h.framing),
            (429, false, Framing::Length(2))
        );
        let h = parse_head(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        let h = parse_head(b"HTTP/1.1 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        let h = parse_head(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap().unwrap();
        assert_eq!(h.framing, Framing::Length(0));
    }

    #[test]
    fn length_body_stops_at_its_end() {
        let mut b = Body::new(Framing::Length(3));
        let mut out = Vec::new();
        assert_eq!(b.feed(b"ab", |p| out.extend_from_slice(p)), Ok(2));
        assert!(!b.is_done());
        assert_eq!(b.feed(b"cde", |p| out.extend_from_slice(p)), Ok(1));
        assert!(b.is_done());
        assert_eq!(out, b"abc");
    }
}
