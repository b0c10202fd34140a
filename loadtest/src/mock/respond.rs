//! Response heads, errors in each provider's shape, and the non-streamed
//! JSON bodies. Everything is written straight into byte buffers: no
//! `serde_json::Value` on the request path.

use std::borrow::Cow;

use super::text::{completion, push_json_escaped, push_json_str, push_u64};

/// Which provider's wire format a response uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Api {
    /// OpenAI.
    OpenAi,
    /// Anthropic.
    Anthropic,
    /// Gemini (Generative Language API).
    Gemini,
}

/// What every response head of one request shares.
#[derive(Debug, Clone, Copy)]
pub(super) struct Meta {
    pub(super) api: Api,
    /// Unique per request across workers; suffix of every id the response carries.
    pub(super) id: u64,
    pub(super) keep_alive: bool,
    /// Reported as `openai-processing-ms`.
    pub(super) processing_ms: u64,
    /// Seconds sent as `retry-after` on 429, 503 and 529.
    pub(super) retry_after: u64,
}

/// An error answered in the provider's shape.
#[derive(Debug, Clone)]
pub(super) struct ApiError {
    pub(super) status: u16,
    /// Replaces the status's usual error type (`x-mock-error-type`).
    pub(super) kind: Option<String>,
    pub(super) message: Cow<'static, str>,
    /// OpenAI's `param`.
    pub(super) param: Option<&'static str>,
    /// OpenAI's `code`; `None` uses the status's usual code.
    pub(super) code: Option<&'static str>,
}

impl ApiError {
    /// An error with the status's usual type and code.
    pub(super) fn new(status: u16, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            kind: None,
            message: message.into(),
            param: None,
            code: None,
        }
    }

    /// A 400 about a missing or invalid body field.
    pub(super) fn invalid(message: impl Into<Cow<'static, str>>, param: Option<&'static str>) -> Self {
        Self {
            param,
            ..Self::new(400, message)
        }
    }
}

/// Appends `{16 hex digits}`: the id suffix shared by every id of a request.
pub(super) fn push_id(out: &mut Vec<u8>, id: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..16).rev() {
        out.push(HEX[((id >> (shift * 4)) & 15) as usize]);
    }
}

/// Appends a response head. `body_len: None` means a chunked event stream.
pub(super) fn push_head(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    body_len: Option<usize>,
    m: &Meta,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_u64(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: ");
    out.extend_from_slice(content_type.as_bytes());
    match body_len {
        Some(n) => {
            out.extend_from_slice(b"\r\ncontent-length: ");
            push_u64(out, n as u64);
        }
        None => out.extend_from_slice(b"\r\ntransfer-encoding: chunked\r\ncache-control: no-cache"),
    }
    out.extend_from_slice(if m.keep_alive {
        b"\r\nconnection: keep-alive"
    } else {
        b"\r\nconnection: close"
    });
    match m.api {
        Api::OpenAi => {
            out.extend_from_slice(b"\r\nx-request-id: req_mock");
            push_id(out, m.id);
            out.extend_from_slice(b"\r\nopenai-organization: mock-org\r\nopenai-version: 2020-10-01");
            out.extend_from_slice(b"\r\nopenai-processing-ms: ");
            push_u64(out, m.processing_ms);
        }
        Api::Anthropic => {
            out.extend_from_slice(b"\r\nrequest-id: req_mock");
            push_id(out, m.id);
            out.extend_from_slice(b"\r\nanthropic-organization-id: 00000000-0000-4000-8000-000000000000");
        }
        Api::Gemini => {
            out.extend_from_slice(b"\r\nserver: scaffolding on HTTPServer2\r\nx-goog-request-id: mock");
            push_id(out, m.id);
        }
    }
    if matches!(status, 429 | 503 | 529) {
        out.extend_from_slice(b"\r\nretry-after: ");
        push_u64(out, m.retry_after);
    }
    out.extend_from_slice(b"\r\n\r\n");
}

/// Appends a whole response with a `Content-Length` body.
pub(super) fn push_full(out: &mut Vec<u8>, status: u16, content_type: &str, body: &[u8], m: &Meta) {
    push_head(out, status, content_type, Some(body.len()), m);
    out.extend_from_slice(body);
}

/// Appends a whole error response; `tmp` is scratch for the body.
pub(super) fn push_error(out: &mut Vec<u8>, tmp: &mut Vec<u8>, e: &ApiError, m: &Meta) {
    tmp.clear();
    let (kind, code) = usual_error(m.api, e.status);
    let kind = e.kind.as_deref().unwrap_or(kind);
    match m.api {
        Api::OpenAi => {
            tmp.extend_from_slice(b"{\"error\":{\"message\":");
            push_json_str(tmp, &e.message);
            tmp.extend_from_slice(b",\"type\":");
            push_json_str(tmp, kind);
            tmp.extend_from_slice(b",\"param\":");
            push_opt_str(tmp, e.param);
            tmp.extend_from_slice(b",\"code\":");
            push_opt_str(tmp, e.code.or(code));
            tmp.extend_from_slice(b"}}");
        }
        Api::Gemini => push_gemini_error(tmp, e),
        Api::Anthropic => {
            tmp.extend_from_slice(b"{\"type\":\"error\",\"error\":{\"type\":");
            push_json_str(tmp, kind);
            tmp.extend_from_slice(b",\"message\":");
            push_json_str(tmp, &e.message);
            tmp.extend_from_slice(b"}}");
        }
    }
    push_full(out, e.status, "application/json", tmp, m);
}

/// Appends Gemini's error body.
fn push_gemini_error(out: &mut Vec<u8>, e: &ApiError) {
    out.extend_from_slice(b"{\"error\":{\"code\":");
    push_u64(out, u64::from(e.status));
    out.extend_from_slice(b",\"message\":");
    push_json_str(out, &e.message);
    out.extend_from_slice(b",\"status\":");
    let status = e.kind.as_deref().unwrap_or(match e.status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ if e.status >= 500 => "INTERNAL",
        _ => "FAILED_PRECONDITION",
    });
    push_json_str(out, status);
    out.extend_from_slice(b"}}");
}

fn push_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => push_json_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// The error type (and OpenAI code) each provider documents for a status.
fn usual_error(api: Api, status: u16) -> (&'static str, Option<&'static str>) {
    match api {
        Api::OpenAi => match status {
            401 => ("invalid_request_error", Some("invalid_api_key")),
            429 => ("requests", Some("rate_limit_exceeded")),
            500..=599 => ("server_error", None),
            _ => ("invalid_request_error", None),
        },
        Api::Gemini => ("", None),
        Api::Anthropic => (
            match status {
                401 => "authentication_error",
                402 => "billing_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                504 => "timeout_error",
                529 => "overloaded_error",
                500..=599 => "api_error",
                _ => "invalid_request_error",
            },
            None,
        ),
    }
}

/// The message an error from `x-mock-status` carries.
pub(super) fn default_message(status: u16) -> &'static str {
    match status {
        400 => "Invalid request (mock)",
        401 => "Invalid authentication (mock)",
        403 => "Permission denied (mock)",
        404 => "Not found (mock)",
        408 => "Request timed out (mock)",
        413 => "Request too large (mock)",
        429 => "Rate limit reached (mock)",
        500 => "The server had an error while processing your request (mock)",
        502 => "Bad gateway (mock)",
        503 => "The service is temporarily unavailable (mock)",
        504 => "Gateway timeout (mock)",
        529 => "Overloaded (mock)",
        _ => "Mock error",
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        529 => "Overloaded",
        _ => "Unknown",
    }
}

/// A completion's numbers and how it ended.
#[derive(Debug, Clone, Copy)]
pub(super) struct Usage {
    pub(super) prompt: u64,
    pub(super) completion: u32,
    /// `max_tokens` cut the completion short.
    pub(super) capped: bool,
}

impl Usage {
    /// OpenAI's `finish_reason`.
    pub(super) fn finish_reason(&self) -> &'static str {
        if self.capped {
            "length"
        } else {
            "stop"
        }
    }

    /// Anthropic's `stop_reason`.
    pub(super) fn stop_reason(&self) -> &'static str {
        if self.capped {
            "max_tokens"
        } else {
            "end_turn"
        }
    }
}

/// Appends OpenAI's `usage` object.
pub(super) fn push_openai_usage(out: &mut Vec<u8>, u: &Usage) {
    out.extend_from_slice(b"{\"prompt_tokens\":");
    push_u64(out, u.prompt);
    out.extend_from_slice(b",\"completion_tokens\":");
    push_u64(out, u64::from(u.completion));
    out.extend_from_slice(b",\"total_tokens\":");
    push_u64(out, u.prompt + u64::from(u.completion));
    out.extend_from_slice(
        b",\"prompt_tokens_details\":{\"cached_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0}}",
    );
}

/// Appends a `chat.completion` object.
pub(super) fn push_openai_completion(out: &mut Vec<u8>, id: u64, created: u64, model: &str, u: &Usage) {
    out.extend_from_slice(b"{\"id\":\"chatcmpl-mock");
    push_id(out, id);
    out.extend_from_slice(b"\",\"object\":\"chat.completion\",\"created\":");
    push_u64(out, created);
    out.extend_from_slice(b",\"model\":");
    push_json_str(out, model);
    out.extend_from_slice(b",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    push_text(out, u.completion);
    out.extend_from_slice(b",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"");
    out.extend_from_slice(u.finish_reason().as_bytes());
    out.extend_from_slice(b"\"}],\"usage\":");
    push_openai_usage(out, u);
    out.extend_from_slice(b",\"system_fingerprint\":\"fp_mock\"}");
}

/// Appends an OpenAI Responses `response` object: `status` with, when
/// `whole`, its output message and usage (else empty output, null usage).
pub(super) fn push_response(out: &mut Vec<u8>, id: u64, created: u64, model: &str, u: &Usage, whole: bool) {
    out.extend_from_slice(b"{\"id\":\"resp_mock");
    push_id(out, id);
    out.extend_from_slice(b"\",\"object\":\"response\",\"created_at\":");
    push_u64(out, created);
    out.extend_from_slice(b",\"status\":\"");
    out.extend_from_slice(match (whole, u.capped) {
        (false, _) => b"in_progress".as_slice(),
        (true, false) => b"completed",
        (true, true) => b"incomplete",
    });
    out.extend_from_slice(b"\",\"error\":null,\"incomplete_details\":");
    if whole && u.capped {
        out.extend_from_slice(b"{\"reason\":\"max_output_tokens\"}");
    } else {
        out.extend_from_slice(b"null");
    }
    out.extend_from_slice(b",\"instructions\":null,\"max_output_tokens\":null,\"model\":");
    push_json_str(out, model);
    out.extend_from_slice(b",\"output\":[");
    if whole {
        push_response_message(out, id, u, true);
    }
    out.extend_from_slice(b"],\"parallel_tool_calls\":true,\"previous_response_id\":null,\"store\":true,\"temperature\":1.0,\"text\":{\"format\":{\"type\":\"text\"}},\"tool_choice\":\"auto\",\"tools\":[],\"top_p\":1.0,\"truncation\":\"disabled\",\"usage\":");
    if whole {
        push_responses_usage(out, u);
    } else {
        out.extend_from_slice(b"null");
    }
    out.extend_from_slice(b",\"metadata\":{}}");
}

/// Appends the Responses output message (`whole`: with its text, else empty).
pub(super) fn push_response_message(out: &mut Vec<u8>, id: u64, u: &Usage, whole: bool) {
    out.extend_from_slice(b"{\"id\":\"msg_mock");
    push_id(out, id);
    out.extend_from_slice(b"\",\"type\":\"message\",\"status\":\"");
    out.extend_from_slice(if whole {
        b"completed".as_slice()
    } else {
        b"in_progress"
    });
    out.extend_from_slice(b"\",\"role\":\"assistant\",\"content\":[");
    if whole {
        out.extend_from_slice(b"{\"type\":\"output_text\",\"text\":");
        push_text(out, u.completion);
        out.extend_from_slice(b",\"annotations\":[],\"logprobs\":[]}");
    }
    out.extend_from_slice(b"]}");
}

/// Appends the Responses `usage` object.
pub(super) fn push_responses_usage(out: &mut Vec<u8>, u: &Usage) {
    out.extend_from_slice(b"{\"input_tokens\":");
    push_u64(out, u.prompt);
    out.extend_from_slice(b",\"input_tokens_details\":{\"cached_tokens\":0},\"output_tokens\":");
    push_u64(out, u64::from(u.completion));
    out.extend_from_slice(b",\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":");
    push_u64(out, u.prompt + u64::from(u.completion));
    out.push(b'}');
}

/// Appends an Anthropic `message` object.
pub(super) fn push_anthropic_message(out: &mut Vec<u8>, id: u64, model: &str, u: &Usage) {
    out.extend_from_slice(b"{\"id\":\"msg_mock");
    push_id(out, id);
    out.extend_from_slice(b"\",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    push_json_str(out, model);
    out.extend_from_slice(b",\"content\":[{\"type\":\"text\",\"text\":");
    push_text(out, u.completion);
    out.extend_from_slice(b"}],\"stop_reason\":\"");
    out.extend_from_slice(u.stop_reason().as_bytes());
    out.extend_from_slice(b"\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":");
    push_u64(out, u.prompt);
    out.extend_from_slice(b",\"output_tokens\":");
    push_u64(out, u64::from(u.completion));
    out.extend_from_slice(b",\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0}}");
}

/// Appends the whole `n`-token text as one JSON string.
pub(super) fn push_text(out: &mut Vec<u8>, n: u32) {
    out.push(b'"');
    for piece in completion(n) {
        push_json_escaped(out, piece);
    }
    out.push(b'"');
}

/// Models the mock lists, as (id, created, Anthropic display name).
const MODELS: &[(&str, u64, &str)] = &[
    ("gpt-4o-mini", 1_721_172_741, "GPT-4o mini"),
    ("gpt-4o", 1_715_367_049, "GPT-4o"),
    ("claude-sonnet-4-5", 1_759_104_000, "Claude Sonnet 4.5"),
    ("claude-3-5-haiku-latest", 1_729_555_200, "Claude Haiku 3.5"),
    ("mock-model", 1_700_000_000, "Mock Model"),
];

/// Dimensions of the mock's embeddings.
const EMBEDDING_DIMS: usize = 8;

/// Appends an OpenAI embeddings response for `inputs` inputs of `model`:
/// one deterministic vector per input, as floats or (`base64`) as base64 of
/// little-endian f32s, and the usage.
pub(super) fn push_embeddings(
    out: &mut Vec<u8>,
    model: &str,
    inputs: usize,
    prompt_tokens: u64,
    base64: bool,
) {
    out.extend_from_slice(b"{\"object\":\"list\",\"data\":[");
    for i in 0..inputs {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"object\":\"embedding\",\"index\":");
        push_u64(out, i as u64);
        out.extend_from_slice(b",\"embedding\":");
        let values: Vec<f32> = (0..EMBEDDING_DIMS)
            .map(|d| ((i + d) % 7) as f32 / 8.0 - 0.375)
            .collect();
        if base64 {
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            out.push(b'"');
            push_base64(out, &bytes);
            out.push(b'"');
        } else {
            out.push(b'[');
            for (d, v) in values.iter().enumerate() {
                if d > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(format!("{v}").as_bytes());
            }
            out.push(b']');
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"model\":");
    push_json_str(out, model);
    out.extend_from_slice(b",\"usage\":{\"prompt_tokens\":");
    push_u64(out, prompt_tokens);
    out.extend_from_slice(b",\"total_tokens\":");
    push_u64(out, prompt_tokens);
    out.extend_from_slice(b"}}");
}

/// Standard base64 with padding (RFC 4648 §4).
fn push_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        let emit = chunk.len() + 1;
        for k in 0..4 {
            if k < emit {
                out.push(ALPHABET[((n >> (18 - 6 * k)) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

/// Appends the model list in the provider's shape.
pub(super) fn push_models(out: &mut Vec<u8>, api: Api) {
    match api {
        Api::OpenAi | Api::Gemini => {
            out.extend_from_slice(b"{\"object\":\"list\",\"data\":[");
            for (i, (id, created, _)) in MODELS.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"id\":");
                push_json_str(out, id);
                out.extend_from_slice(b",\"object\":\"model\",\"created\":");
                push_u64(out, *created);
                out.extend_from_slice(b",\"owned_by\":\"system\"}");
            }
            out.extend_from_slice(b"]}");
        }
        Api::Anthropic => {
            out.extend_from_slice(b"{\"data\":[");
            for (i, (id, _, name)) in MODELS.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"type\":\"model\",\"id\":");
                push_json_str(out, id);
                out.extend_from_slice(b",\"display_name\":");
                push_json_str(out, name);
                out.extend_from_slice(b",\"created_at\":\"2025-01-01T00:00:00Z\"}");
            }
            out.extend_from_slice(b"],\"has_more\":false,\"first_id\":");
            push_json_str(out, MODELS[0].0);
            out.extend_from_slice(b",\"last_id\":");
            push_json_str(out, MODELS[MODELS.len() - 1].0);
            out.push(b'}');
        }
    }
}
