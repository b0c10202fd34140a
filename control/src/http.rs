//! HTTP for the admin and sync APIs: the server (axum / hyper 1 on tokio,
//! see [`server`]), a small blocking client for the CLI, and the request and
//! response types the handlers use.
//!
//! Neither API is on the request hot path; what matters is that bad input
//! cannot hurt: the head, the body and the number of connections are
//! bounded, and garbage gets a 4xx.

pub(crate) mod client;
pub(crate) mod server;

use serde::Serialize;

/// A parsed request with its whole body.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// Method, e.g. `GET`.
    pub(crate) method: String,
    /// Path without the query, still percent-encoded.
    pub(crate) path: String,
    /// The raw query string, if any.
    pub(crate) query: Option<String>,
    /// Headers, names lower-cased.
    pub(crate) headers: Vec<(String, String)>,
    /// Body.
    pub(crate) body: Vec<u8>,
}

impl Request {
    /// The first header named `name` (lower-case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The token of `Authorization: Bearer <token>`.
    pub(crate) fn bearer(&self) -> Option<&str> {
        let v = self.header("authorization")?;
        let (scheme, token) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    }

    /// A query parameter, percent-decoded.
    pub(crate) fn query_param(&self, name: &str) -> Option<String> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k)? == name).then(|| percent_decode(v)).flatten()
        })
    }

    /// Path segments, percent-decoded; `None` if one does not decode.
    pub(crate) fn segments(&self) -> Option<Vec<String>> {
        self.path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect()
    }
}

/// A response.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    /// Status code.
    pub(crate) status: u16,
    /// Content type of the body.
    pub(crate) content_type: &'static str,
    /// Extra headers.
    pub(crate) headers: Vec<(&'static str, String)>,
    /// Body.
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// `value` as JSON.
    pub(crate) fn json(status: u16, value: &impl Serialize) -> Response {
        match serde_json::to_vec(value) {
            Ok(body) => Response {
                status,
                content_type: "application/json",
                headers: Vec::new(),
                body,
            },
            Err(e) => Response::error(500, &format!("encoding response: {e}")),
        }
    }

    /// `{"error": message}`.
    pub(crate) fn error(status: u16, message: &str) -> Response {
        let body = serde_json::json!({ "error": message }).to_string().into_bytes();
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body,
        }
    }

    /// A plain-text body.
    pub(crate) fn text(status: u16, content_type: &'static str, body: String) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into_bytes(),
        }
    }

    /// No body.
    pub(crate) fn empty(status: u16) -> Response {
        Response {
            status,
            content_type: "text/plain",
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header.
    pub(crate) fn with_header(mut self, name: &'static str, value: String) -> Response {
        self.headers.push((name, value));
        self
    }
}

/// The reason phrase of `status`.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Decodes `%XX` escapes (and nothing else); `None` on a bad escape or bad UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Encodes everything but unreserved characters (RFC 3986) as `%XX`.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_round_trip() {
        let s = "anthropic/claude-3.5:free";
        assert_eq!(percent_encode(s), "anthropic%2Fclaude-3.5%3Afree");
        assert_eq!(percent_decode(&percent_encode(s)).as_deref(), Some(s));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
    }

    #[test]
    fn query_and_bearer() {
        let r = Request {
            method: "GET".into(),
            path: "/v1/tenants/a%2Fb".into(),
            query: Some("after=7&x=%41".into()),
            headers: vec![("authorization".into(), "Bearer  tok ".into())],
            body: Vec::new(),
        };
        assert_eq!(r.query_param("after").as_deref(), Some("7"));
        assert_eq!(r.query_param("x").as_deref(), Some("A"));
        assert_eq!(r.query_param("y"), None);
        assert_eq!(r.bearer(), Some("tok"));
        assert_eq!(r.segments().unwrap(), vec!["v1", "tenants", "a/b"]);
    }
}
