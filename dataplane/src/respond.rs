//! Every error the gateway itself produces becomes a response here, and only
//! here, in the shape of the API the caller speaks.
//!
//! OpenAI: `{"error":{"message","type","param","code"}}`.
//! Anthropic: `{"type":"error","error":{"type","message"}}`.
//! The official SDKs pick their exception class from the status code, so each
//! kind maps to the status those SDKs (and the providers) use for it.
//!
//! A phase that refuses a request returns a [`Reject`] (an [`ErrorKind`],
//! which says whose fault it is and whether the caller may retry, with an
//! optional message and headers); the pipeline renders it with
//! [`Reject::write`], the one error exit. `GET /healthz`, the gateway's one
//! answer of its own that is not an error, is written here too.

use sluice_contract::dialect::Dialect;
use std::io::Write;

pub mod gemini;

/// Every error the gateway answers by itself. Small and `Copy`: carried on the
/// hot path, turned into bytes once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The head or body is not valid HTTP/1.1 for us (detail says why).
    BadRequest,
    /// The body is not a JSON object.
    InvalidJson,
    /// The body lacks `model`.
    MissingModel,
    /// The body lacks `messages`.
    MissingMessages,
    /// A body field has the wrong type.
    InvalidField,
    /// No gateway key was presented.
    MissingKey,
    /// The gateway key is unknown or revoked.
    InvalidKey,
    /// Unknown path.
    UnknownPath,
    /// Known path, wrong method.
    MethodNotAllowed,
    /// No route for the model for this tenant.
    UnknownModel,
    /// The route's targets are all outside the tenant's region.
    OutOfRegion,
    /// A policy rule blocked the request (detail names the rule).
    PolicyBlocked,
    /// The tenant's prepaid balance cannot cover the request.
    InsufficientCredit,
    /// A rate limit was hit.
    RateLimited,
    /// The request body is larger than allowed (decoded, when it was compressed).
    BodyTooLarge,
    /// The request body's `Content-Encoding` is not one the gateway decodes.
    UnsupportedEncoding,
    /// The request head is larger than allowed.
    HeadTooLarge,
    /// The client was too slow sending the request.
    RequestTimeout,
    /// No upstream could be reached.
    UpstreamUnreachable,
    /// The upstream did not answer in time.
    UpstreamTimeout,
    /// The upstream answered with something that is not HTTP.
    UpstreamProtocol,
    /// The gateway is shutting down or has no snapshot.
    Unavailable,
    /// A bug or an unexpected local failure.
    Internal,
}

/// Whose fault an error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blame {
    /// The caller sent something the gateway cannot serve.
    Client,
    /// The tenant's own limits or balance (rate limits, credit, policy).
    Tenant,
    /// The provider failed or could not be reached.
    Upstream,
    /// The gateway itself (shutting down, a bug).
    Gateway,
}

/// A refusal by the gateway: what went wrong, a message replacing the
/// generic one (never request content), and extra response headers (rate
/// limit hints).
#[derive(Debug)]
pub struct Reject {
    /// What went wrong.
    pub kind: ErrorKind,
    /// A message replacing the generic one (never request content).
    pub detail: Option<String>,
    /// Extra response headers (rate-limit hints).
    pub headers: Vec<(&'static str, String)>,
}

impl From<ErrorKind> for Reject {
    fn from(kind: ErrorKind) -> Self {
        Reject {
            kind,
            detail: None,
            headers: Vec::new(),
        }
    }
}

impl Reject {
    /// A refusal with a specific message.
    pub fn with(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Reject {
            kind,
            detail: Some(detail.into()),
            headers: Vec::new(),
        }
    }

    /// Writes the response for this refusal into `out`.
    pub fn write(&self, out: &mut Vec<u8>, dialect: Dialect, keep_alive: bool) {
        let mut extra: [(&str, &str); 5] = [("", ""); 5];
        let n = self.headers.len().min(extra.len());
        for (slot, (name, value)) in extra.iter_mut().zip(&self.headers) {
            *slot = (name, value.as_str());
        }
        write_error(
            out,
            dialect,
            self.kind,
            self.detail.as_deref(),
            keep_alive,
            &extra[..n],
        );
    }
}

/// Writes the answer to `GET /healthz` (`HEAD` leaves the body out).
pub fn write_health(out: &mut Vec<u8>, with_body: bool, keep_alive: bool) {
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n");
    out.extend_from_slice(if keep_alive {
        b"connection: keep-alive\r\n\r\n"
    } else {
        b"connection: close\r\n\r\n"
    });
    if with_body {
        out.extend_from_slice(b"ok\n");
    }
}

struct Shape {
    status: u16,
    reason: &'static str,
    openai_type: &'static str,
    openai_code: Option<&'static str>,
    anthropic_type: &'static str,
    message: &'static str,
}

impl ErrorKind {
    fn shape(self) -> Shape {
        use ErrorKind::*;
        let (status, reason, openai_type, openai_code, anthropic_type, message) = match self {
            BadRequest => (
                400,
                "Bad Request",
                "invalid_request_error",
                None,
                "invalid_request_error",
                "malformed request",
            ),
            InvalidJson => (
                400,
                "Bad Request",
                "invalid_request_error",
                Some("invalid_json"),
                "invalid_request_error",
                "the request body is not a valid JSON object",
            ),
            MissingModel => (
                400,
                "Bad Request",
                "invalid_request_error",
                Some("missing_required_parameter"),
                "invalid_request_error",
                "model: field required",
            ),
            MissingMessages => (
                400,
                "Bad Request",
                "invalid_request_error",
                Some("missing_required_parameter"),
                "invalid_request_error",
                "messages: field required",
            ),
            InvalidField => (
                400,
                "Bad Request",
                "invalid_request_error",
                Some("invalid_type"),
                "invalid_request_error",
                "a request field has the wrong type",
            ),
            MissingKey => (
                401,
                "Unauthorized",
                "invalid_request_error",
                Some("missing_api_key"),
                "authentication_error",
                "no API key provided: send `Authorization: Bearer <key>` or `x-api-key: <key>`",
            ),
            InvalidKey => (
                401,
                "Unauthorized",
                "invalid_request_error",
                Some("invalid_api_key"),
                "authentication_error",
                "invalid API key",
            ),
            UnknownPath => (
                404,
                "Not Found",
                "invalid_request_error",
                Some("unknown_url"),
                "not_found_error",
                "unknown path",
            ),
            MethodNotAllowed => (
                405,
                "Method Not Allowed",
                "invalid_request_error",
                Some("method_not_allowed"),
                "invalid_request_error",
                "method not allowed on this path",
            ),
            UnknownModel => (
                404,
                "Not Found",
                "invalid_request_error",
                Some("model_not_found"),
                "not_found_error",
                "the model does not exist or you do not have access to it",
            ),
            OutOfRegion => (
                403,
                "Forbidden",
                "invalid_request_error",
                Some("region_unavailable"),
                "permission_error",
                "no upstream in the tenant's region serves this model",
            ),
            PolicyBlocked => (
                403,
                "Forbidden",
                "invalid_request_error",
                Some("policy_blocked"),
                "permission_error",
                "request blocked by policy",
            ),
            InsufficientCredit => (
                402,
                "Payment Required",
                "insufficient_quota",
                Some("insufficient_quota"),
                "billing_error",
                "insufficient credit balance for this request",
            ),
            RateLimited => (
                429,
                "Too Many Requests",
                "requests",
                Some("rate_limit_exceeded"),
                "rate_limit_error",
                "rate limit exceeded",
            ),
            BodyTooLarge => (
                413,
                "Payload Too Large",
                "invalid_request_error",
                Some("request_too_large"),
                "request_too_large",
                "request body too large",
            ),
            UnsupportedEncoding => (
                415,
                "Unsupported Media Type",
                "invalid_request_error",
                Some("unsupported_content_encoding"),
                "invalid_request_error",
                "unsupported Content-Encoding: send gzip, deflate, br, zstd or identity",
            ),
            HeadTooLarge => (
                431,
                "Request Header Fields Too Large",
                "invalid_request_error",
                Some("headers_too_large"),
                "invalid_request_error",
                "request head too large",
            ),
            RequestTimeout => (
                408,
                "Request Timeout",
                "invalid_request_error",
                Some("request_timeout"),
                "invalid_request_error",
                "the request was not received in time",
            ),
            UpstreamUnreachable => (
                502,
                "Bad Gateway",
                "api_error",
                Some("upstream_unreachable"),
                "api_error",
                "no upstream could be reached",
            ),
            UpstreamTimeout => (
                504,
                "Gateway Timeout",
                "api_error",
                Some("upstream_timeout"),
                "api_error",
                "the upstream did not answer in time",
            ),
            UpstreamProtocol => (
                502,
                "Bad Gateway",
                "api_error",
                Some("upstream_protocol_error"),
                "api_error",
                "the upstream sent an invalid response",
            ),
            Unavailable => (
                503,
                "Service Unavailable",
                "api_error",
                Some("unavailable"),
                "overloaded_error",
                "the gateway is not serving right now",
            ),
            Internal => (
                500,
                "Internal Server Error",
                "api_error",
                Some("internal_error"),
                "api_error",
                "internal gateway error",
            ),
        };
        Shape {
            status,
            reason,
            openai_type,
            openai_code,
            anthropic_type,
            message,
        }
    }

    /// The generic message for this kind.
    pub fn message(self) -> &'static str {
        self.shape().message
    }

    /// HTTP status.
    pub fn status(self) -> u16 {
        self.shape().status
    }

    /// Whose fault it is.
    pub fn blame(self) -> Blame {
        use ErrorKind::*;
        match self {
            BadRequest | InvalidJson | MissingModel | MissingMessages | InvalidField | MissingKey
            | InvalidKey | UnknownPath | MethodNotAllowed | UnknownModel | BodyTooLarge
            | UnsupportedEncoding | HeadTooLarge | RequestTimeout => Blame::Client,
            OutOfRegion | PolicyBlocked | InsufficientCredit | RateLimited => Blame::Tenant,
            UpstreamUnreachable | UpstreamTimeout | UpstreamProtocol => Blame::Upstream,
            Unavailable | Internal => Blame::Gateway,
        }
    }

    /// Whether the same request may succeed if the caller sends it again
    /// later (after `retry-after`, where given).
    pub fn retryable(self) -> bool {
        matches!(self.blame(), Blame::Upstream | Blame::Gateway) || self == ErrorKind::RateLimited
    }

    /// A short, stable label for metrics and records.
    pub fn label(self) -> &'static str {
        use ErrorKind::*;
        match self {
            BadRequest => "bad_request",
            InvalidJson => "invalid_json",
            MissingModel => "missing_model",
            MissingMessages => "missing_messages",
            InvalidField => "invalid_field",
            MissingKey => "missing_key",
            InvalidKey => "invalid_key",
            UnknownPath => "unknown_path",
            MethodNotAllowed => "method_not_allowed",
            UnknownModel => "unknown_model",
            OutOfRegion => "out_of_region",
            PolicyBlocked => "policy_blocked",
            InsufficientCredit => "insufficient_credit",
            RateLimited => "rate_limited",
            BodyTooLarge => "body_too_large",
            UnsupportedEncoding => "unsupported_encoding",
            HeadTooLarge => "head_too_large",
            RequestTimeout => "request_timeout",
            UpstreamUnreachable => "upstream_unreachable",
            UpstreamTimeout => "upstream_timeout",
            UpstreamProtocol => "upstream_protocol",
            Unavailable => "unavailable",
            Internal => "internal",
        }
    }
}

/// Writes a complete error response (head and JSON body) into `out`.
///
/// `detail`, when given, replaces the generic message; it must never carry
/// request content (model names and rule ids are fine, prompts are not).
/// `extra` headers are written as given (e.g. `retry-after`).
pub fn write_error(
    out: &mut Vec<u8>,
    dialect: Dialect,
    kind: ErrorKind,
    detail: Option<&str>,
    keep_alive: bool,
    extra: &[(&str, &str)],
) {
    let shape = kind.shape();
    let mut body = Vec::with_capacity(192);
    let message = detail.unwrap_or(shape.message);
    // Writing JSON into a Vec cannot fail; the results are ignored on purpose.
    match dialect {
        Dialect::OpenAi | Dialect::OpenAiEmbeddings | Dialect::OpenAiResponses => {
            body.extend_from_slice(b"{\"error\":{\"message\":");
            let _ = serde_json::to_writer(&mut body, message);
            let _ = write!(
                body,
                ",\"type\":\"{}\",\"param\":null,\"code\":",
                shape.openai_type
            );
            match shape.openai_code {
                Some(code) => {
                    let _ = write!(body, "\"{code}\"");
                }
                None => body.extend_from_slice(b"null"),
            }
            body.extend_from_slice(b"}}");
        }
        Dialect::Gemini => gemini::write_body(&mut body, shape.status, message),
        Dialect::Anthropic => {
            let _ = write!(
                body,
                "{{\"type\":\"error\",\"error\":{{\"type\":\"{}\",\"message\":",
                shape.anthropic_type
            );
            let _ = serde_json::to_writer(&mut body, message);
            body.extend_from_slice(b"}}");
        }
    }
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-sluice-error: {}\r\n",
        shape.status,
        shape.reason,
        body.len(),
        kind.label()
    );
    for (name, value) in extra {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    out.extend_from_slice(if keep_alive {
        b"connection: keep-alive\r\n\r\n"
    } else {
        b"connection: close\r\n\r\n"
    });
    out.extend_from_slice(&body);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(out: &[u8]) -> serde_json::Value {
        let at = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        serde_json::from_slice(&out[at..]).unwrap()
    }

    #[test]
    fn openai_shape() {
        let mut out = Vec::new();
        write_error(&mut out, Dialect::OpenAi, ErrorKind::InvalidKey, None, true, &[]);
        assert!(out.starts_with(b"HTTP/1.1 401 Unauthorized\r\n"));
        let v = body(&out);
        assert_eq!(v["error"]["code"], "invalid_api_key");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"].is_string());
    }

    #[test]
    fn anthropic_shape_and_escaping() {
        let mut out = Vec::new();
        let detail = "model \"x\\y\" not found";
        write_error(
            &mut out,
            Dialect::Anthropic,
            ErrorKind::UnknownModel,
            Some(detail),
            false,
            &[("retry-after", "1")],
        );
        assert!(out.starts_with(b"HTTP/1.1 404 Not Found\r\n"));
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("retry-after: 1\r\n") && text.contains("connection: close"));
        let v = body(&out);
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "not_found_error");
        assert_eq!(v["error"]["message"], detail);
    }

    #[test]
    fn every_kind_has_a_consistent_status() {
        use ErrorKind::*;
        for kind in [
            BadRequest,
            InvalidJson,
            MissingModel,
            MissingMessages,
            InvalidField,
            MissingKey,
            InvalidKey,
            UnknownPath,
            MethodNotAllowed,
            UnknownModel,
            OutOfRegion,
            PolicyBlocked,
            InsufficientCredit,
            RateLimited,
            BodyTooLarge,
            UnsupportedEncoding,
            HeadTooLarge,
            RequestTimeout,
            UpstreamUnreachable,
            UpstreamTimeout,
            UpstreamProtocol,
            Unavailable,
            Internal,
        ] {
            let mut out = Vec::new();
            write_error(&mut out, Dialect::OpenAi, kind, None, true, &[]);
            let status = format!("HTTP/1.1 {} ", kind.status());
            assert!(out.starts_with(status.as_bytes()), "{kind:?}");
            assert!(!kind.label().is_empty());
            // Blame and the status class agree: 5xx is never the caller's
            // fault, and what the caller may retry is 429 or 5xx.
            assert_eq!(
                kind.status() >= 500,
                matches!(kind.blame(), Blame::Upstream | Blame::Gateway),
                "{kind:?}"
            );
            assert_eq!(
                kind.retryable(),
                kind.status() == 429 || kind.status() >= 500,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn a_reject_carries_its_headers_and_message() {
        let mut r = Reject::with(ErrorKind::RateLimited, "slow down");
        r.headers = vec![
            ("retry-after", "2".into()),
            ("x-ratelimit-limit-requests", "10".into()),
        ];
        let mut out = Vec::new();
        r.write(&mut out, Dialect::Anthropic, true);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 429 "));
        assert!(text.contains("retry-after: 2\r\n") && text.contains("x-ratelimit-limit-requests: 10\r\n"));
        assert_eq!(body(&out)["error"]["message"], "slow down");
    }

    #[test]
    fn health_answer() {
        let mut out = Vec::new();
        write_health(&mut out, true, true);
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\nconnection: keep-alive\r\n\r\nok\n"
        );
        out.clear();
        write_health(&mut out, false, false);
        assert!(out.ends_with(b"connection: close\r\n\r\n"));
    }
}
