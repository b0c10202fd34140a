//! Request heads and bodies: parsing only, no I/O.
//!
//! `parse_head` reads what the mock needs out of one httparse pass (route,
//! framing, keep-alive, `x-mock-*` knobs, key checks) into an owned [`Head`],
//! so the read buffer is free again once the body is in.

use super::split::Split;

/// Largest request head accepted.
pub(super) const MAX_HEAD: usize = 16 * 1024;
/// Largest request body accepted.
pub(super) const MAX_BODY: usize = 8 * 1024 * 1024;
/// Most headers in one request.
const MAX_HEADERS: usize = 100;

/// The endpoints the mock serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// `/v1/chat/completions` (OpenAI).
    Chat,
    /// `/v1/messages` (Anthropic).
    Messages,
    /// `/v1/messages/count_tokens` (Anthropic).
    CountTokens,
    /// `/v1/embeddings` (OpenAI).
    Embeddings,
    /// `/v1/responses` (OpenAI Responses).
    Responses,
    /// `/v1/models`.
    Models,
    /// Gemini's `/v1beta/models/{model}:{method}`.
    Gemini(super::gemini::Method),
    /// `/healthz`.
    Healthz,
    /// `/_mock/last`.
    MockLast,
    /// `/_mock/stats`.
    MockStats,
    /// Anything else.
    Unknown,
}

impl Route {
    fn of(path: &str) -> Self {
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        if let Some((method, _)) = super::gemini::route(path) {
            return Self::Gemini(method);
        }
        match path {
            "/v1/chat/completions" => Self::Chat,
            "/v1/messages" => Self::Messages,
            "/v1/messages/count_tokens" => Self::CountTokens,
            "/v1/embeddings" => Self::Embeddings,
            "/v1/responses" => Self::Responses,
            "/v1/models" => Self::Models,
            "/healthz" => Self::Healthz,
            "/_mock/last" => Self::MockLast,
            "/_mock/stats" => Self::MockStats,
            _ => Self::Unknown,
        }
    }

    /// Whether requests to it are counted and recorded (the mock's own
    /// endpoints are not, so inspecting does not disturb what is inspected).
    pub(super) fn is_traffic(self) -> bool {
        !matches!(self, Self::Healthz | Self::MockLast | Self::MockStats)
    }
}

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// `Content-Length` bytes (0 when absent).
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Per-request overrides from `x-mock-*` headers.
#[derive(Debug, Default, Clone)]
pub(super) struct Knobs {
    pub(super) tokens: Option<u32>,
    pub(super) ttft_ms: Option<u64>,
    pub(super) itl_ms: Option<u64>,
    pub(super) split: Option<Split>,
    pub(super) status: Option<u16>,
    pub(super) error_type: Option<String>,
    pub(super) truncate_after: Option<usize>,
    pub(super) reset_after: Option<usize>,
    pub(super) head_delay_ms: Option<u64>,
    /// `x-mock-scenario: thinking-tools`: a scripted agent turn (see `scripted`).
    pub(super) scenario: bool,
    /// The first knob header whose value did not parse.
    pub(super) bad: Option<&'static str>,
}

/// What the mock keeps of a request head.
#[derive(Debug)]
pub(super) struct Head {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) route: Route,
    pub(super) is_get: bool,
    pub(super) is_post: bool,
    pub(super) keep_alive: bool,
    pub(super) framing: Framing,
    pub(super) expect_continue: bool,
    pub(super) knobs: Knobs,
    /// `Authorization: Bearer KEY` matched the required key (or none is required).
    pub(super) bearer_ok: bool,
    /// `x-api-key: KEY` matched the required key (or none is required).
    pub(super) api_key_ok: bool,
    /// Gemini's key: `x-goog-api-key` or `?key=`.
    pub(super) goog_key_ok: bool,
    /// The request carried `anthropic-version`: answer in Anthropic's shape.
    pub(super) anthropic: bool,
    /// Every header (lowercase name, value), kept only when recording.
    pub(super) headers: Option<Vec<(String, String)>>,
    /// Bytes of the head, CRLFCRLF included.
    pub(super) len: usize,
}

/// Why a head was rejected; every case answers 400 (or 431) and closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BadRequest {
    /// Unparseable head or framing.
    Malformed(&'static str),
    /// Head over [`MAX_HEAD`] or over [`MAX_HEADERS`] headers.
    HeadTooLarge,
    /// Body over [`MAX_BODY`].
    BodyTooLarge,
}

/// Parses a head from the start of `buf`. `Ok(None)`: not all of it is here.
pub(super) fn parse_head(
    buf: &[u8],
    require_key: Option<&[u8]>,
    record: bool,
) -> Result<Option<Head>, BadRequest> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(BadRequest::HeadTooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(BadRequest::HeadTooLarge),
        Err(_) => return Err(BadRequest::Malformed("malformed request head")),
    };
    if len > MAX_HEAD {
        return Err(BadRequest::HeadTooLarge);
    }
    let method = req.method.unwrap_or_default();
    let path = req.path.unwrap_or_default();
    let mut head = Head {
        method: method.to_owned(),
        path: path.to_owned(),
        route: Route::of(path),
        is_get: method == "GET",
        is_post: method == "POST",
        keep_alive: req.version == Some(1),
        framing: Framing::Length(0),
        expect_continue: false,
        knobs: Knobs::default(),
        bearer_ok: require_key.is_none(),
        api_key_ok: require_key.is_none(),
        goog_key_ok: require_key.is_none_or(|k| super::gemini::query_key_ok(path, k)),
        anthropic: false,
        headers: record.then(Vec::new),
        len,
    };
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    for h in req.headers.iter() {
        let name = h.name;
        let value = trim(h.value);
        if let Some(all) = head.headers.as_mut() {
            all.push((
                name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            ));
        }
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_num(value).ok_or(BadRequest::Malformed("invalid content-length"))?;
            if content_length.is_some_and(|c| c as u64 != n) {
                return Err(BadRequest::Malformed("conflicting content-length headers"));
            }
            content_length = Some(usize::try_from(n).map_err(|_| BadRequest::BodyTooLarge)?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if chunked || !value.eq_ignore_ascii_case(b"chunked") {
                return Err(BadRequest::Malformed("unsupported transfer-encoding"));
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|&b| b == b',').map(trim) {
                if token.eq_ignore_ascii_case(b"close") {
                    head.keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    head.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            head.expect_continue = value.eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case("authorization") {
            if let Some(key) = require_key {
                head.bearer_ok = value.len() == 7 + key.len()
                    && value[..7].eq_ignore_ascii_case(b"bearer ")
                    && &value[7..] == key;
            }
        } else if name.eq_ignore_ascii_case("x-api-key") {
            if let Some(key) = require_key {
                head.api_key_ok = value == key;
            }
        } else if name.eq_ignore_ascii_case("x-goog-api-key") {
            if let Some(key) = require_key {
                head.goog_key_ok |= value == key;
            }
        } else if name.eq_ignore_ascii_case("anthropic-version") {
            head.anthropic = true;
        } else if name.len() > 7 && name[..7].eq_ignore_ascii_case("x-mock-") {
            knob(&mut head.knobs, &name[7..], value);
        }
    }
    head.framing = match (chunked, content_length) {
        (true, Some(_)) => return Err(BadRequest::Malformed("both content-length and transfer-encoding")),
        (true, None) => Framing::Chunked,
        (false, n) => Framing::Length(n.unwrap_or(0)),
    };
    if matches!(head.framing, Framing::Length(n) if n > MAX_BODY) {
        return Err(BadRequest::BodyTooLarge);
    }
    Ok(Some(head))
}

/// Reads one `x-mock-*` header (`name` without the prefix) into `knobs`.
fn knob(knobs: &mut Knobs, name: &str, value: &[u8]) {
    let name = name.to_ascii_lowercase();
    let ok = match name.as_str() {
        "tokens" => set(
            &mut knobs.tokens,
            parse_num(value).and_then(|n| u32::try_from(n).ok()),
        ),
        "ttft-ms" => set(&mut knobs.ttft_ms, parse_num(value)),
        "itl-ms" => set(&mut knobs.itl_ms, parse_num(value)),
        "head-delay-ms" => set(&mut knobs.head_delay_ms, parse_num(value)),
        "truncate-after" => set(&mut knobs.truncate_after, parse_num(value).map(saturate)),
        "reset-after" => set(&mut knobs.reset_after, parse_num(value).map(saturate)),
        "status" => set(
            &mut knobs.status,
            parse_num(value)
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| (400..=599).contains(n)),
        ),
        "split" => set(
            &mut knobs.split,
            std::str::from_utf8(value).ok().and_then(Split::parse),
        ),
        "scenario" => {
            knobs.scenario = value.eq_ignore_ascii_case(b"thinking-tools");
            knobs.scenario
        }
        "error-type" => set(
            &mut knobs.error_type,
            std::str::from_utf8(value).ok().map(str::to_owned),
        ),
        _ => true,
    };
    if !ok && knobs.bad.is_none() {
        knobs.bad = Some(match name.as_str() {
            "tokens" => "x-mock-tokens",
            "ttft-ms" => "x-mock-ttft-ms",
            "itl-ms" => "x-mock-itl-ms",
            "head-delay-ms" => "x-mock-head-delay-ms",
            "truncate-after" => "x-mock-truncate-after",
            "reset-after" => "x-mock-reset-after",
            "status" => "x-mock-status",
            "split" => "x-mock-split",
            "scenario" => "x-mock-scenario",
            _ => "x-mock-error-type",
        });
    }
}

fn set<T>(slot: &mut Option<T>, value: Option<T>) -> bool {
    let ok = value.is_some();
    *slot = value;
    ok
}

fn saturate(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// A decimal number of at most 18 digits (no sign, no spaces).
fn parse_num(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &v[start..end]
}

/// Decodes a whole chunked body from `src` into `out`. `Ok(Some(n))`: done,
/// `n` bytes of `src` used (trailers included); `Ok(None)`: incomplete.
pub(super) fn decode_chunked(src: &[u8], out: &mut Vec<u8>) -> Result<Option<usize>, BadRequest> {
    out.clear();
    let mut pos = 0;
    loop {
        let (data_at, size) = match httparse::parse_chunk_size(&src[pos..]) {
            Ok(httparse::Status::Complete((i, size))) => (pos + i, size),
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(BadRequest::Malformed("invalid chunk size")),
        };
        if size == 0 {
            return Ok(skip_trailers(src, data_at));
        }
        let size = usize::try_from(size).map_err(|_| BadRequest::BodyTooLarge)?;
        if size > MAX_BODY || out.len() + size > MAX_BODY {
            return Err(BadRequest::BodyTooLarge);
        }
        let end = data_at + size;
        if src.len() < end + 2 {
            return Ok(None);
        }
        if &src[end..end + 2] != b"\r\n" {
            return Err(BadRequest::Malformed("chunk data not followed by CRLF"));
        }
        out.extend_from_slice(&src[data_at..end]);
        pos = end + 2;
    }
}

/// Skips trailer lines up to the empty line that ends the body.
fn skip_trailers(src: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let nl = memchr::memchr(b'\n', &src[pos..])?;
        let line_end = pos + nl + 1;
        if src[pos..line_end].iter().all(|&b| b == b'\r' || b == b'\n') {
            return Some(line_end);
        }
        pos = line_end;
    }
}
