//! HTTP/1.1 message heads (RFC 9112), parsed with httparse into offsets.
//!
//! The parser borrows the connection's read buffer and returns [`Span`]s into
//! it, so a header is never copied. Framing is decided here, once, and strictly:
//! a request that could be read two ways (Content-Length beside
//! Transfer-Encoding, differing Content-Lengths, a transfer coding other than
//! chunked, obs-fold) is refused, because a proxy that guesses differently from
//! the next hop is a request-smuggling vector.

use std::mem::MaybeUninit;
use std::ops::Range;

/// Most header fields any configuration may allow (the stack array's size).
pub const MAX_HEADERS_CAP: usize = 256;

/// A byte range of the buffer a head was parsed from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The bytes this span covers in `buf` (empty if `buf` is not the parse buffer).
    pub fn of<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.start as usize..self.end as usize).unwrap_or(&[])
    }

    /// As a range.
    pub fn range(&self) -> Range<usize> {
        self.start as usize..self.end as usize
    }

    fn within(buf: &[u8], part: &[u8]) -> Span {
        // Both slices come from the same buffer: the offset is a plain difference.
        let start = (part.as_ptr() as usize).saturating_sub(buf.as_ptr() as usize);
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }
}

/// One header field, as spans of the parse buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Field name.
    pub name: Span,
    /// Field value (without surrounding whitespace).
    pub value: Span,
}

/// The value of the first field of `headers` called `name`
/// (case-insensitive); the spans index into `buf`.
pub fn find<'a>(buf: &'a [u8], headers: &[Header], name: &[u8]) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.of(buf).eq_ignore_ascii_case(name))
        .map(|h| h.value.of(buf))
}

/// How a message body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the connection closes (responses only).
    UntilClose,
}

/// Why a head was refused. Requests: 431 for size, 400 otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// The head is larger than allowed.
    TooLarge,
    /// More header fields than allowed.
    TooManyHeaders,
    /// Not HTTP/1.x syntax (includes obs-fold and bare CR).
    Malformed,
    /// Content-Length together with Transfer-Encoding, or differing lengths.
    ConflictingLength,
    /// A Content-Length that is not a decimal number.
    BadContentLength,
    /// A transfer coding other than a single `chunked`.
    UnsupportedTransferEncoding,
    /// HTTP/1.1 request without exactly one Host header.
    BadHost,
}

impl HeadError {
    /// The status a request refused for this reason gets.
    pub fn status(self) -> u16 {
        match self {
            HeadError::TooLarge | HeadError::TooManyHeaders => 431,
            _ => 400,
        }
    }

    /// A short, stable label (metrics, records).
    pub fn label(self) -> &'static str {
        match self {
            HeadError::TooLarge => "head_too_large",
            HeadError::TooManyHeaders => "too_many_headers",
            HeadError::Malformed => "malformed_head",
            HeadError::ConflictingLength => "conflicting_length",
            HeadError::BadContentLength => "bad_content_length",
            HeadError::UnsupportedTransferEncoding => "unsupported_transfer_encoding",
            HeadError::BadHost => "bad_host",
        }
    }
}

/// Request method, as far as the gateway cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// Anything else.
    Other,
}

/// A parsed request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// Method.
    pub method: Method,
    /// Request target (path and query).
    pub target: Span,
    /// HTTP/1.1 (else 1.0).
    pub http11: bool,
    /// Bytes the head takes, final CRLF included.
    pub len: usize,
    /// How the body is delimited (never `UntilClose`).
    pub framing: Framing,
    /// Whether the client wants the connection kept.
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
}

impl RequestHead {
    /// The path, without query.
    pub fn path<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        let t = self.target.of(buf);
        match memchr::memchr(b'?', t) {
            Some(i) => &t[..i],
            None => t,
        }
    }
}

/// The path-and-query of a request target. A server must accept the
/// absolute form (`http://host/path?q`, RFC 9112 §3.2.2), which proxies and
/// some clients send; only its path and query matter to the gateway (and to
/// the upstream, which gets origin form). An absolute target without a path
/// names no resource here.
fn origin_form(target: &[u8]) -> Result<&[u8], HeadError> {
    if target.first() == Some(&b'/') {
        return Ok(target);
    }
    let rest = match target.iter().position(|&b| b == b':') {
        Some(i)
            if target[..i].eq_ignore_ascii_case(b"http") || target[..i].eq_ignore_ascii_case(b"https") =>
        {
            target[i + 1..].strip_prefix(b"//").ok_or(HeadError::Malformed)?
        }
        // `*` (OPTIONS) and anything else: kept as sent, matched by nothing.
        _ => return Ok(target),
    };
    match memchr::memchr(b'/', rest) {
        Some(i) => Ok(&rest[i..]),
        None => Err(HeadError::Malformed),
    }
}

/// Size limits for parsing a request head.
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    /// Most bytes.
    pub max_bytes: usize,
    /// Most header fields (at most [`MAX_HEADERS_CAP`]).
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_bytes: 16 * 1024,
            max_headers: 100,
        }
    }
}

/// Parses a request head at the start of `buf`. `Ok(None)`: more bytes needed.
/// On success `headers` holds every field, in order.
pub fn parse_request(
    buf: &[u8],
    limits: &HeadLimits,
    headers: &mut Vec<Header>,
) -> Result<Option<RequestHead>, HeadError> {
    // Left uninitialised: httparse writes only the fields it finds, and
    // filling 256 empty ones (8 KiB) cost more than parsing a small head.
    let mut raw = [const { MaybeUninit::uninit() }; MAX_HEADERS_CAP];
    let max = limits.max_headers.clamp(1, MAX_HEADERS_CAP);
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut raw[..max]) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() >= limits.max_bytes {
                Err(HeadError::TooLarge)
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(_) => return Err(HeadError::Malformed),
    };
    if len > limits.max_bytes {
        return Err(HeadError::TooLarge);
    }
    let method = match req.method {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        Some("POST") => Method::Post,
        _ => Method::Other,
    };
    let http11 = req.version == Some(1);
    let target = Span::within(buf, origin_form(req.path.unwrap_or("").as_bytes())?);
    let fields = collect(buf, req.headers, headers);
    let mut hosts = 0;
    for h in headers.iter() {
        if h.name.of(buf).eq_ignore_ascii_case(b"host") {
            hosts += 1;
        }
    }
    if http11 && hosts != 1 {
        return Err(HeadError::BadHost);
    }
    let framing = match (fields.content_length, fields.chunked) {
        (Some(_), Some(_)) => return Err(HeadError::ConflictingLength),
        (None, Some(true)) if http11 => Framing::Chunked,
        (None, Some(_)) => return Err(HeadError::UnsupportedTransferEncoding),
        (Some(n), None) if n > 0 => Framing::Length(n),
        _ => Framing::Empty,
    };
    fields.error.map_or(Ok(()), Err)?;
    let keep_alive = if http11 {
        !fields.close
    } else {
        fields.keep_alive && !fields.close
    };
    Ok(Some(RequestHead {
        method,
        target,
        http11,
        len,
        framing,
        keep_alive,
        expect_continue: fields.expect_continue && http11,
    }))
}

/// A parsed response head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// Bytes the head takes.
    pub len: usize,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the server keeps the connection open afterwards.
    pub keep_alive: bool,
}

/// Parses a response head at the start of `buf`; `request_was_head` says the
/// request was HEAD (no body follows whatever the headers say).
pub fn parse_response(
    buf: &[u8],
    request_was_head: bool,
    max_bytes: usize,
    headers: &mut Vec<Header>,
) -> Result<Option<ResponseHead>, HeadError> {
    let mut raw = [const { MaybeUninit::uninit() }; MAX_HEADERS_CAP];
    let mut res = httparse::Response::new(&mut []);
    let len =
        match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut res, buf, &mut raw) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                return if buf.len() >= max_bytes {
                    Err(HeadError::TooLarge)
                } else {
                    Ok(None)
                };
            }
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
            Err(_) => return Err(HeadError::Malformed),
        };
    if len > max_bytes {
        return Err(HeadError::TooLarge);
    }
    let status = res.code.unwrap_or(0);
    let http11 = res.version == Some(1);
    let fields = collect(buf, res.headers, headers);
    let framing = if request_was_head || (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Empty
    } else {
        match (fields.chunked, fields.content_length) {
            // Transfer-Encoding in an HTTP/1.0 message is faulty framing
            // (RFC 9112 §6.1), whatever else the head says.
            (Some(_), _) if !http11 => return Err(HeadError::UnsupportedTransferEncoding),
            (Some(_), Some(_)) => return Err(HeadError::ConflictingLength),
            (Some(true), None) => Framing::Chunked,
            // The gateway sends no TE, so only chunked may come (RFC 9112
            // §7.4); a body in another coding cannot be relayed as it is.
            (Some(false), None) => return Err(HeadError::UnsupportedTransferEncoding),
            (None, Some(0)) => Framing::Empty,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::UntilClose,
        }
    };
    fields.error.map_or(Ok(()), Err)?;
    let keep_alive = framing != Framing::UntilClose
        && if http11 {
            !fields.close
        } else {
            fields.keep_alive && !fields.close
        };
    Ok(Some(ResponseHead {
        status,
        len,
        framing,
        keep_alive,
    }))
}

/// What the framing-relevant fields said.
#[derive(Default)]
struct Fields {
    content_length: Option<u64>,
    /// `Some(true)`: exactly `chunked`; `Some(false)`: any other coding.
    chunked: Option<bool>,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
    error: Option<HeadError>,
}

fn collect(buf: &[u8], raw: &[httparse::Header<'_>], out: &mut Vec<Header>) -> Fields {
    out.clear();
    let mut f = Fields::default();
    for h in raw {
        let value = trim(h.value);
        out.push(Header {
            name: Span::within(buf, h.name.as_bytes()),
            value: Span::within(buf, value),
        });
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            // A list of identical values is allowed (RFC 9110 §8.6); anything else is not.
            for part in value.split(|&b| b == b',') {
                match parse_decimal(trim(part)) {
                    Some(n) if f.content_length.is_none_or(|m| m == n) => f.content_length = Some(n),
                    Some(_) => f.error = f.error.or(Some(HeadError::ConflictingLength)),
                    None => f.error = f.error.or(Some(HeadError::BadContentLength)),
                }
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let only_chunked = value.eq_ignore_ascii_case(b"chunked") && f.chunked.is_none();
            f.chunked = Some(only_chunked);
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',') {
                let token = trim(token);
                f.close |= token.eq_ignore_ascii_case(b"close");
                f.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            f.expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
        }
    }
    f
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &v[start..end]
}

fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

/// Whether `name` is a connection option of one of the Connection fields
/// among `headers` (spans into `buf`): such a field is hop-by-hop too and is
/// not forwarded (RFC 9110 §7.6.1). Scans every field: to check all of a
/// head's fields, read its [`ConnectionOptions`] once instead.
pub fn is_connection_option(buf: &[u8], headers: &[Header], name: &[u8]) -> bool {
    connection_options(buf, headers).any(|option| option.eq_ignore_ascii_case(name))
}

/// The options named by the Connection fields among `headers`.
fn connection_options<'a>(buf: &'a [u8], headers: &'a [Header]) -> impl Iterator<Item = &'a [u8]> {
    headers
        .iter()
        .filter(|h| h.name.of(buf).eq_ignore_ascii_case(b"connection"))
        .flat_map(|h| h.value.of(buf).split(|&b| b == b','))
        .map(trim)
        .filter(|option| !option.is_empty())
}

/// A head's connection options, read once: checking each of its fields
/// against them then costs a comparison per option, not a scan of the head
/// per field (which was quadratic in the fields).
pub struct ConnectionOptions<'a> {
    names: [&'a [u8]; OPTIONS_HELD],
    len: usize,
    /// More options than `names` holds: checks fall back to scanning.
    spill: Option<(&'a [u8], &'a [Header])>,
}

/// Options a [`ConnectionOptions`] holds; heads name one or two.
const OPTIONS_HELD: usize = 8;

impl<'a> ConnectionOptions<'a> {
    /// The options of the head whose fields are `headers` (spans into `buf`).
    pub fn of(buf: &'a [u8], headers: &'a [Header]) -> Self {
        let mut options = ConnectionOptions {
            names: [&[]; OPTIONS_HELD],
            len: 0,
            spill: None,
        };
        for name in connection_options(buf, headers) {
            if options.len == OPTIONS_HELD {
                options.spill = Some((buf, headers));
                break;
            }
            options.names[options.len] = name;
            options.len += 1;
        }
        options
    }

    /// Whether a field called `name` is one of them (so hop-by-hop).
    pub fn contains(&self, name: &[u8]) -> bool {
        match self.spill {
            Some((buf, headers)) => is_connection_option(buf, headers, name),
            None => self.names[..self.len]
                .iter()
                .any(|o| o.eq_ignore_ascii_case(name)),
        }
    }
}

/// Whether a header is hop-by-hop (RFC 9110 §7.6.1) or one the gateway sets
/// itself, so that it must not be forwarded as received.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 10] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
    ];
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests;
