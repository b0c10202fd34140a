//! The metadata record: one per request, whatever its fate.
//!
//! A record never holds prompt or completion content. It is produced once, when
//! a request completes, and handed to a sink (the data plane's or the control plane's).

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::Arc;

mod gemini;

/// Which API a request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiRoute {
    /// `POST /v1/chat/completions` (OpenAI).
    ChatCompletions,
    /// `POST /v1/messages` (Anthropic).
    Messages,
    /// `POST /v1/messages/count_tokens` (Anthropic).
    CountTokens,
    /// `POST /v1/embeddings` (OpenAI).
    Embeddings,
    /// `POST /v1/responses` (OpenAI Responses).
    Responses,
    /// `POST /v1beta/models/{model}:generateContent` (Gemini; also `/v1/`).
    GeminiGenerate,
    /// `POST /v1beta/models/{model}:streamGenerateContent` (Gemini).
    GeminiStream,
    /// `POST /v1beta/models/{model}:countTokens` (Gemini).
    GeminiCountTokens,
    /// `POST /v1beta/models/{model}:embedContent` (Gemini).
    GeminiEmbed,
    /// `POST /v1beta/models/{model}:batchEmbedContents` (Gemini).
    GeminiBatchEmbed,
    /// `GET /v1/models`.
    Models,
    /// `GET /v1/models/{id}`.
    Model,
    /// `GET /healthz`.
    Health,
    /// Anything else (answered 404).
    Other,
}

impl ApiRoute {
    /// The dialect of the API's bodies; `None` for the gateway's own
    /// endpoints (models, health) and unknown paths.
    pub fn dialect(self) -> Option<crate::dialect::Dialect> {
        match self {
            ApiRoute::ChatCompletions => Some(crate::dialect::Dialect::OpenAi),
            ApiRoute::Messages | ApiRoute::CountTokens => Some(crate::dialect::Dialect::Anthropic),
            ApiRoute::Embeddings => Some(crate::dialect::Dialect::OpenAiEmbeddings),
            ApiRoute::Responses => Some(crate::dialect::Dialect::OpenAiResponses),
            ApiRoute::GeminiGenerate
            | ApiRoute::GeminiStream
            | ApiRoute::GeminiCountTokens
            | ApiRoute::GeminiEmbed
            | ApiRoute::GeminiBatchEmbed => Some(crate::dialect::Dialect::Gemini),
            ApiRoute::Models | ApiRoute::Model | ApiRoute::Health | ApiRoute::Other => None,
        }
    }

    /// The path an upstream serves this API at (after its base URL's
    /// prefix), whatever form the client used (`/chat/completions` from a
    /// base URL without `/v1`, a trailing slash); `None` for the gateway's
    /// own endpoints.
    pub fn upstream_path(self) -> Option<&'static str> {
        match self {
            ApiRoute::ChatCompletions => Some("/v1/chat/completions"),
            ApiRoute::Messages => Some("/v1/messages"),
            ApiRoute::CountTokens => Some("/v1/messages/count_tokens"),
            ApiRoute::Embeddings => Some("/v1/embeddings"),
            ApiRoute::Responses => Some("/v1/responses"),
            // Gemini's path names the model: see `gemini_method`.
            ApiRoute::GeminiGenerate
            | ApiRoute::GeminiStream
            | ApiRoute::GeminiCountTokens
            | ApiRoute::GeminiEmbed
            | ApiRoute::GeminiBatchEmbed => None,
            ApiRoute::Models | ApiRoute::Model | ApiRoute::Health | ApiRoute::Other => None,
        }
    }

    /// A short label, stable for metrics.
    pub fn label(self) -> &'static str {
        match self {
            ApiRoute::ChatCompletions => "chat_completions",
            ApiRoute::Messages => "messages",
            ApiRoute::CountTokens => "count_tokens",
            ApiRoute::Embeddings => "embeddings",
            ApiRoute::Responses => "responses",
            ApiRoute::GeminiGenerate => "gemini_generate",
            ApiRoute::GeminiStream => "gemini_stream",
            ApiRoute::GeminiCountTokens => "gemini_count_tokens",
            ApiRoute::GeminiEmbed => "gemini_embed",
            ApiRoute::GeminiBatchEmbed => "gemini_batch_embed",
            ApiRoute::Models => "models",
            ApiRoute::Model => "model",
            ApiRoute::Health => "healthz",
            ApiRoute::Other => "other",
        }
    }
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The response was delivered whole.
    Ok,
    /// The gateway refused the request (bad input, auth, policy, unknown model).
    Rejected,
    /// The upstream answered with an error status that was passed on.
    UpstreamError,
    /// No upstream could be reached or none answered in time.
    UpstreamUnavailable,
    /// The upstream died mid-response; the client saw a truncated stream.
    Truncated,
    /// The client went away before the response was complete.
    Cancelled,
}

impl Outcome {
    /// A short label, stable for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Rejected => "rejected",
            Outcome::UpstreamError => "upstream_error",
            Outcome::UpstreamUnavailable => "upstream_unavailable",
            Outcome::Truncated => "truncated",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// Token usage, normalised across providers.
///
/// `input_tokens` counts every prompt token exactly once, cached or not (OpenAI's
/// `prompt_tokens`; Anthropic's `input_tokens + cache_read + cache_creation`).
/// `cached_input_tokens` and `cache_creation_tokens` are subsets of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// All prompt tokens, including cached ones.
    pub input_tokens: u64,
    /// Completion tokens, including reasoning ones.
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's cache (subset of input).
    #[serde(default)]
    pub cached_input_tokens: u64,
    /// Prompt tokens written to the provider's cache (subset of input).
    #[serde(default)]
    pub cache_creation_tokens: u64,
    /// Reasoning tokens (subset of output).
    #[serde(default)]
    pub reasoning_tokens: u64,
}

/// One metadata record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Unix time in milliseconds when the request head was read.
    pub ts_ms: u64,
    /// Tenant id, when the caller authenticated.
    pub tenant: Option<Arc<str>>,
    /// Gateway key id (never the key), when the caller authenticated.
    pub key_id: Option<Arc<str>>,
    /// The API the request came in on.
    pub route: ApiRoute,
    /// Model asked for, when the body named one.
    pub model: Option<String>,
    /// Upstream that served the final attempt.
    pub upstream: Option<Arc<str>>,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// HTTP status sent to the client (0 if none was sent).
    pub status: u16,
    /// How the request ended.
    pub outcome: Outcome,
    /// Low-cardinality error label, when the gateway produced an error.
    pub error: Option<Cow<'static, str>>,
    /// Upstream attempts made (fallbacks included).
    pub attempts: u8,
    /// Request bytes received from the client (head and body).
    pub bytes_in: u64,
    /// Response bytes written to the client (head and body).
    pub bytes_out: u64,
    /// Time from request read to the first response byte from upstream, µs.
    pub ttfb_us: Option<u64>,
    /// Time from request read to the last byte written, µs.
    pub total_us: u64,
    /// SSE events seen in the response.
    pub events: u32,
    /// Usage as the provider reported it, when it did.
    pub usage: Option<Usage>,
    /// Prompt tokens counted by the gateway at admission.
    #[serde(default)]
    pub prompt_tokens_counted: Option<u64>,
    /// Completion tokens counted by the gateway as the response streamed.
    #[serde(default)]
    pub completion_tokens_counted: Option<u64>,
    /// The counts are estimates (a tokenizer other than the model's own).
    #[serde(default)]
    pub tokens_estimated: bool,
    /// Cost in micro-dollars: reported usage when present, else counted.
    #[serde(default)]
    pub cost_micros: Option<u64>,
    /// Policy verdict, when a policy was evaluated.
    #[serde(default)]
    pub verdict: Option<Verdict>,
    /// Every rule id that matched.
    #[serde(default)]
    pub rule_ids: Vec<String>,
    /// PII findings by detector (counts only, never values).
    #[serde(default)]
    pub pii: std::collections::BTreeMap<String, u32>,
    /// HMAC-SHA256 of the client IP under the day's salt.
    #[serde(default)]
    pub client_ip_hash: Option<String>,
    /// Opt-in content logging only: hex of `{"request":…,"response":…}`
    /// sealed under the tenant's content key (associated data
    /// `content/<tenant>/<ts_ms>`). Absent unless the tenant opted in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_sealed: Option<String>,
    /// The model that served had no price: the request used tokens but no
    /// cost could be given (`cost_micros` is null). Never silently free.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unpriced: bool,
    /// The part of the cost above what admission reserved that the credit
    /// could not cover (the balance stops at zero); the tenant is refused
    /// until a grant makes the balance positive again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrun_micros: Option<u64>,
    /// Each upstream attempt, in order (empty when none was made).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tries: Vec<Attempt>,
    /// The translation between the client's dialect and the serving
    /// upstream's (`openai_to_anthropic`, …); absent when none was needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub translation: Option<Cow<'static, str>>,
    /// Request fields the translation dropped (the route drops what has no
    /// equivalent, or a hint), as named in `x-sluice-dropped-fields`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_fields: Option<String>,
    /// The HTTP version the client spoke (`http/1.1`, `http/1.0`, `h2`);
    /// absent in records from before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Cow<'static, str>>,
    /// The TLS version of the client's connection (`TLSv1.3`, `TLSv1.2`);
    /// absent: plain TCP (or a record from before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Cow<'static, str>>,
    /// The response cache's part: a hit (served from memory: `usage` is
    /// the cached response's, its tokens not generated again), a miss
    /// (looked up, not found); absent when the cache was not consulted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<crate::cache::CacheUse>,
    /// A hit's saving: the cached response's cost at today's price minus
    /// what the hit was charged, micro-dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_micros: Option<u64>,
    /// Body bytes before compression for the client, when the gateway
    /// compressed the response (`bytes_out` counts what was sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_plain_bytes: Option<u64>,
    /// Body bytes after compression for the client, when it compressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_sent_bytes: Option<u64>,
}

/// One upstream attempt of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// Upstream name.
    pub upstream: Arc<str>,
    /// Provider key id (never the key).
    pub key_id: Arc<str>,
    /// The status the upstream answered with, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Low-cardinality label of what went wrong: a transport error, a
    /// timeout, or why an answer was not passed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Cow<'static, str>>,
    /// From the start of the attempt to its response head or failure, µs.
    pub us: u64,
    /// The attempt was the half-open probe of an ejected target.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub probe: bool,
    /// The translation this attempt's request went through, when the
    /// upstream speaks another dialect than the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub translation: Option<Cow<'static, str>>,
}

/// The policy's decision on a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// Forwarded.
    Allow,
    /// Refused.
    Block,
}

impl Record {
    /// A fresh record for a request that arrived at `ts_ms`.
    pub fn new(ts_ms: u64, route: ApiRoute) -> Self {
        Record {
            ts_ms,
            tenant: None,
            key_id: None,
            route,
            model: None,
            upstream: None,
            stream: false,
            status: 0,
            outcome: Outcome::Ok,
            error: None,
            attempts: 0,
            bytes_in: 0,
            bytes_out: 0,
            ttfb_us: None,
            total_us: 0,
            events: 0,
            usage: None,
            prompt_tokens_counted: None,
            completion_tokens_counted: None,
            tokens_estimated: false,
            cost_micros: None,
            verdict: None,
            rule_ids: Vec::new(),
            pii: std::collections::BTreeMap::new(),
            client_ip_hash: None,
            content_sealed: None,
            unpriced: false,
            overrun_micros: None,
            tries: Vec::new(),
            translation: None,
            dropped_fields: None,
            protocol: None,
            tls: None,
            cache: None,
            saved_micros: None,
            body_plain_bytes: None,
            body_sent_bytes: None,
        }
    }
}
