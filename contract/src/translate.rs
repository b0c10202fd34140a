//! Translation between API dialects: a client speaking one provider's API
//! served by an upstream of another kind.
//!
//! One module per pair, named from the client's side: [`openai_to_anthropic`]
//! (an OpenAI chat completions client, an Anthropic messages upstream) and
//! [`anthropic_to_openai`] (the reverse). Each has the request translation
//! and the non-streamed response translation; [`stream`] has the streamed
//! event translators, fed one SSE event at a time (the first token goes to
//! the client when the provider sends it: nothing is buffered beyond the
//! event being translated). Errors are translated by [`error_body`]. All of
//! it is I/O-free and tested with byte slices; a Gemini pair is one more
//! module of each kind.
//!
//! Fields with no equivalent on the other side are refused (400 naming the
//! field) or dropped and named, by the route's [`OnUnsupported`]. A few
//! hints that change no output are always dropped and named, whatever the
//! route says (see each pair's module docs).
//!
//! JSON is read into maps of raw values ([`json::Obj`]) and written with
//! [`json::J`], so that what passes through opaque (JSON schemas, tool
//! inputs) keeps its bytes and key order.

pub mod anthropic_to_openai;
pub mod json;
pub mod openai_to_anthropic;
pub mod stream;

use crate::dialect::Dialect;
use serde::{Deserialize, Serialize};

/// A translation between a client's dialect and an upstream's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pair {
    /// OpenAI chat completions client, Anthropic messages upstream.
    OpenAiToAnthropic,
    /// Anthropic messages client, OpenAI chat completions upstream.
    AnthropicToOpenAi,
}

impl Pair {
    /// The translation from a client speaking `client` to an upstream
    /// speaking `upstream`; `None` when they are the same dialect or no
    /// translation exists between them.
    pub fn between(client: Dialect, upstream: Dialect) -> Option<Pair> {
        match (client, upstream) {
            (Dialect::OpenAi, Dialect::Anthropic) => Some(Pair::OpenAiToAnthropic),
            (Dialect::Anthropic, Dialect::OpenAi) => Some(Pair::AnthropicToOpenAi),
            _ => None,
        }
    }

    /// A stable label, for records and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Pair::OpenAiToAnthropic => "openai_to_anthropic",
            Pair::AnthropicToOpenAi => "anthropic_to_openai",
        }
    }

    /// The client's dialect.
    pub fn client(self) -> Dialect {
        match self {
            Pair::OpenAiToAnthropic => Dialect::OpenAi,
            Pair::AnthropicToOpenAi => Dialect::Anthropic,
        }
    }

    /// The upstream's dialect.
    pub fn upstream(self) -> Dialect {
        match self {
            Pair::OpenAiToAnthropic => Dialect::Anthropic,
            Pair::AnthropicToOpenAi => Dialect::OpenAi,
        }
    }
}

/// What a route does with a request field that has no equivalent in the
/// upstream's dialect.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnUnsupported {
    /// Refuse the request with 400 naming the field (the default: nothing
    /// the client asked for is lost without its knowing).
    #[default]
    Refuse,
    /// Drop the field and name it in the `x-sluice-dropped-fields`
    /// response header.
    Drop,
}

impl OnUnsupported {
    /// Whether this is the default (left out of serialized snapshots).
    pub fn is_refuse(&self) -> bool {
        *self == OnUnsupported::Refuse
    }

    /// The name used in config and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            OnUnsupported::Refuse => "refuse",
            OnUnsupported::Drop => "drop",
        }
    }
}

/// The response header that names the fields a translation dropped.
pub const DROPPED_HEADER: &str = "x-sluice-dropped-fields";

/// Why a request could not be translated: always the client's (400).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The field, as a path in the client's body (`messages[].name`).
    pub field: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl Refusal {
    /// The message the client reads.
    pub fn message(&self) -> String {
        format!("{}: {}", self.field, self.why)
    }
}

/// What has no equivalent: not on the upstream's side
/// ([`Refusal`]'s `why` for a refused field).
pub const NO_EQUIVALENT: &str = "has no equivalent on the upstream this route sends to";

/// A translated request.
#[derive(Clone, Debug, PartialEq)]
pub struct Translated {
    /// The body in the upstream's dialect.
    pub body: Vec<u8>,
    /// Fields dropped (named in the response header), in the order met, each once.
    pub dropped: Vec<String>,
}

impl Translated {
    /// The value of [`DROPPED_HEADER`]: the dropped fields, comma-separated;
    /// `None` when nothing was dropped.
    pub fn dropped_header(&self) -> Option<String> {
        (!self.dropped.is_empty()).then(|| self.dropped.join(", "))
    }
}

/// What a request translation is given besides the body.
#[derive(Clone, Copy, Debug)]
pub struct Options<'a> {
    /// The model to send upstream.
    pub model: &'a str,
    /// The most output tokens the gateway allows (the admission's limit),
    /// applied over what the client asked for.
    pub limit: Option<u64>,
    /// The route's choice for fields with no equivalent.
    pub on_unsupported: OnUnsupported,
}

/// Translates a request body for `pair`.
pub fn request(pair: Pair, body: &[u8], opts: &Options<'_>) -> Result<Translated, Refusal> {
    match pair {
        Pair::OpenAiToAnthropic => openai_to_anthropic::request(body, opts),
        Pair::AnthropicToOpenAi => anthropic_to_openai::request(body, opts),
    }
}

/// Translates a non-streamed, successful response body for `pair` (the
/// upstream's body in, the client's out); `created` is the Unix time in
/// seconds (OpenAI's `created`). `None`: the body is not what the upstream's
/// dialect answers (then it is passed as an error, see [`error_body`]).
pub fn response_body(pair: Pair, body: &[u8], created: u64) -> Option<Vec<u8>> {
    match pair {
        Pair::OpenAiToAnthropic => openai_to_anthropic::response(body, created),
        Pair::AnthropicToOpenAi => anthropic_to_openai::response(body),
    }
}

/// An error response body from the upstream, in the client's shape. The
/// status stays the upstream's. A body that is not the upstream's error
/// shape keeps its text as the message.
pub fn error_body(pair: Pair, status: u16, body: &[u8]) -> Vec<u8> {
    #[derive(Deserialize)]
    struct Outer {
        error: Option<Inner>,
    }
    #[derive(Deserialize)]
    struct Inner {
        #[serde(rename = "type")]
        kind: Option<String>,
        message: Option<String>,
        code: Option<serde_json::Value>,
    }
    let parsed = serde_json::from_slice::<Outer>(body).ok().and_then(|o| o.error);
    let (kind, message, code) = match parsed {
        Some(e) => (e.kind, e.message, e.code),
        None => (None, None, None),
    };
    let message = message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text: String = text.chars().take(1024).collect();
        if text.trim().is_empty() {
            format!("the upstream answered {status}")
        } else {
            text
        }
    });
    let out = match pair.client() {
        Dialect::Anthropic => {
            let kind = anthropic_error_type(status, kind.as_deref());
            serde_json::json!({"type": "error", "error": {"type": kind, "message": message}})
        }
        _ => {
            let kind = openai_error_type(status, kind.as_deref());
            let code = code.unwrap_or(serde_json::Value::Null);
            serde_json::json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
        }
    };
    serde_json::to_vec(&out).unwrap_or_default()
}

/// Anthropic's error type for an upstream error of `status` (Anthropic's
/// documented status → type table), or the upstream's own type where it is
/// one of Anthropic's.
pub fn anthropic_error_type(status: u16, upstream: Option<&str>) -> &'static str {
    const KNOWN: [&str; 9] = [
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
        "rate_limit_error",
        "api_error",
        "overloaded_error",
        "billing_error",
    ];
    if let Some(k) = upstream.and_then(|u| KNOWN.iter().find(|k| **k == u)) {
        return k;
    }
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// OpenAI's error type for an upstream error of `status`.
pub fn openai_error_type(status: u16, upstream: Option<&str>) -> &'static str {
    match (status, upstream) {
        (_, Some("invalid_request_error")) => "invalid_request_error",
        (401, _) | (_, Some("authentication_error")) => "authentication_error",
        (403, _) | (_, Some("permission_error")) => "permission_error",
        (404, _) | (_, Some("not_found_error")) => "not_found_error",
        (429, _) | (_, Some("rate_limit_error")) => "rate_limit_error",
        (400..=499, _) => "invalid_request_error",
        _ => "server_error",
    }
}

#[cfg(test)]
mod tests;
