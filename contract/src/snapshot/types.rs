//! Snapshot wire and file types.
//!
//! Unknown fields are refused so that a typo in a hand-written snapshot is an
//! error, not a silently ignored setting.

use serde::{Deserialize, Serialize};

/// A complete, versioned description of what a data plane serves.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Monotonic version; every change in the control plane bumps it.
    #[serde(default)]
    pub version: u64,
    /// Tenants.
    #[serde(default)]
    pub tenants: Vec<Tenant>,
    /// Gateway keys, as SHA-256 hashes.
    #[serde(default)]
    pub api_keys: Vec<ApiKey>,
    /// Provider endpoints.
    #[serde(default)]
    pub upstreams: Vec<Upstream>,
    /// Tenants' provider keys (BYOK).
    #[serde(default)]
    pub provider_keys: Vec<ProviderKey>,
    /// Model routes.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Tenant policies (rules, allow-list, PII), as TOML text.
    #[serde(default)]
    pub policies: Vec<PolicyDoc>,
    /// Rate limits per tenant or per gateway key.
    #[serde(default)]
    pub rate_limits: Vec<RateLimit>,
    /// Model prices replacing the built-in defaults.
    #[serde(default)]
    pub prices: Vec<ModelPrice>,
    /// Prepaid credit granted to this data plane, per tenant.
    #[serde(default)]
    pub credits: Vec<CreditGrant>,
    /// Response cache rules per tenant (off for a tenant without one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caches: Vec<crate::cache::CacheRule>,
}

/// A tenant's policy document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    /// Tenant id.
    pub tenant: String,
    /// The policy, TOML (see [`crate::policy::CompiledPolicy::compile`]).
    pub toml: String,
}

/// Requests and tokens per minute for a tenant, or for one of its keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Tenant id.
    pub tenant: String,
    /// Gateway key id; absent for the tenant as a whole.
    #[serde(default)]
    pub key: Option<String>,
    /// Requests per minute.
    #[serde(default)]
    pub rpm: Option<u64>,
    /// Tokens (prompt plus completion) per minute.
    #[serde(default)]
    pub tpm: Option<u64>,
    /// Requests (streams included, until their last byte) in flight at
    /// once on one data plane; tenant-wide only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
}

/// A model's price in USD per million tokens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Model name, or a prefix of dated names (longest match wins).
    pub model: String,
    /// Uncached prompt tokens.
    pub input: f64,
    /// Cached prompt tokens; defaults to `input`.
    #[serde(default)]
    pub cached_input: Option<f64>,
    /// Prompt tokens written to cache; defaults to `input`.
    #[serde(default)]
    pub cache_write: Option<f64>,
    /// Completion tokens.
    pub output: f64,
    /// The most completion tokens the model produces for one choice; a
    /// request that sets no limit is reserved for (and capped at) no more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
}

/// Credit a tenant may spend on this data plane: the cumulative total granted
/// (a lease from the control plane), in micro-dollars.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditGrant {
    /// Tenant id.
    pub tenant: String,
    /// Cumulative micro-dollars granted.
    pub granted_micros: i64,
    /// Settled cost of this data plane's records that the control plane had
    /// stored when it made the snapshot: what a restarted data plane already
    /// spent of `granted_micros` (see [`crate::quota::credit`]).
    #[serde(default)]
    pub spent_micros: i64,
    /// Completion tokens assumed for the reservation when a request sets no
    /// `max_tokens`.
    #[serde(default)]
    pub default_max_tokens: Option<u64>,
}

/// A tenant.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    /// Stable id.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Region the tenant's traffic must stay in, if any.
    #[serde(default)]
    pub region: Option<String>,
    /// Opt-in content logging: the tenant's content key, sealed for this data
    /// plane (hex; associated data `content/<tenant id>`). Request and
    /// response bodies are sealed under it before they leave the worker.
    #[serde(default)]
    pub content_key: Option<String>,
}

/// A gateway key: only its SHA-256 is ever known to the data plane.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// Key id (appears in records; not secret).
    pub id: String,
    /// Owning tenant id.
    pub tenant: String,
    /// Lower-case hex SHA-256 of the full key string.
    pub sha256: String,
}

/// The wire dialect of an upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI (`Authorization: Bearer`).
    Openai,
    /// Anthropic (`x-api-key`, `anthropic-version`).
    Anthropic,
    /// OpenRouter (OpenAI dialect).
    Openrouter,
    /// Google's Generative Language API (`x-goog-api-key`).
    Gemini,
}

impl ProviderKind {
    /// The dialect the provider speaks.
    pub fn dialect(self) -> crate::dialect::Dialect {
        match self {
            ProviderKind::Openai | ProviderKind::Openrouter => crate::dialect::Dialect::OpenAi,
            ProviderKind::Anthropic => crate::dialect::Dialect::Anthropic,
            ProviderKind::Gemini => crate::dialect::Dialect::Gemini,
        }
    }

    /// The name used in config and records.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Openrouter => "openrouter",
            ProviderKind::Gemini => "gemini",
        }
    }
}

/// A provider endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Unique name.
    pub name: String,
    /// Wire dialect.
    pub kind: ProviderKind,
    /// Base URL, `http://` or `https://`, including any path prefix up to
    /// (not including) `/v1`, e.g. `https://api.openai.com`.
    pub base_url: String,
    /// Region this upstream serves from.
    #[serde(default)]
    pub region: Option<String>,
}

/// Where a provider key's secret comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// Standalone mode: the name of an environment variable holding the key.
    Env(String),
    /// Control mode: hex of the key sealed for this data plane (see
    /// [`crate::crypto::SealKey::seal`]), with `tenant/id` as associated data.
    Sealed(String),
}

/// A tenant's provider key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderKey {
    /// Key id, unique within its tenant.
    pub id: String,
    /// Owning tenant id; absent for an operator-wide key usable by any route.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Standalone mode: environment variable that holds the key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Control mode: the sealed key, hex.
    #[serde(default)]
    pub sealed: Option<String>,
    /// OpenAI: the `OpenAI-Organization` the gateway sends with this key.
    /// A client's own `OpenAI-Organization` never goes upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// OpenAI: the `OpenAI-Project` the gateway sends with this key. A
    /// client's own `OpenAI-Project` never goes upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// An operator-wide key's account-wide response headers (the
    /// provider's rate-limit state, `x-ratelimit-*` and
    /// `anthropic-ratelimit-*`, and the account's `openai-organization` /
    /// `openai-project`) reach clients only when this is set. A tenant's
    /// own key always passes them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pass_rate_limit_headers: bool,
}

impl ProviderKey {
    /// The associated data a sealed copy of this key is bound to.
    pub fn aad(&self) -> String {
        format!("{}/{}", self.tenant.as_deref().unwrap_or(""), self.id)
    }
}

/// A model alias and the targets that can serve it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Tenant the route belongs to; absent for a route every tenant may use.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The model name clients ask for.
    pub model: String,
    /// Targets, tried by ascending priority, weighted within a priority.
    pub targets: Vec<Target>,
    /// How the first target is chosen among the healthy ones.
    #[serde(default, skip_serializing_if = "Strategy::is_ordered")]
    pub strategy: Strategy,
    /// Time allowed for an upstream's first response byte before the next
    /// target is tried, ms (default: the data plane's head timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_byte_timeout_ms: Option<u64>,
    /// Retries allowed per upstream, as a share of the requests it received
    /// over the last 10–20 s (default 0.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<f64>,
    /// Retries allowed per upstream per 10 s however few its requests
    /// (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_min: Option<u32>,
    /// Consecutive failures that eject a target (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eject_after: Option<u32>,
    /// First ejection, ms (default 5000); doubled while the target keeps
    /// failing its probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eject_ms: Option<u64>,
    /// Longest ejection, ms (default 300000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eject_max_ms: Option<u64>,
    /// Share of a target's attempts over 10 s that, failing, ejects it even
    /// without a run of consecutive failures (default: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eject_failure_rate: Option<f64>,
    /// Attempts in the 10 s window before the failure rate counts (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eject_min_requests: Option<u32>,
    /// What a translated request does with a field that has no equivalent
    /// on the target's side: refused with 400 (default) or dropped and
    /// named in `x-sluice-dropped-fields`.
    #[serde(default, skip_serializing_if = "crate::translate::OnUnsupported::is_refuse")]
    pub on_unsupported: crate::translate::OnUnsupported,
}

/// How a route chooses among its healthy targets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// By priority; weighted random within a priority.
    #[default]
    Ordered,
    /// Weighted random over all targets, priorities ignored.
    Weighted,
    /// Power of two choices over each target's peak EWMA of time to first
    /// byte times its requests in flight.
    LeastLatency,
    /// The lowest estimated cost: the target model's price for the counted
    /// prompt tokens and the requested completion tokens.
    LeastCost,
}

impl Strategy {
    /// Whether this is the default (left out of serialized snapshots).
    pub fn is_ordered(&self) -> bool {
        *self == Strategy::Ordered
    }

    /// The name used in config.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Ordered => "ordered",
            Strategy::Weighted => "weighted",
            Strategy::LeastLatency => "least-latency",
            Strategy::LeastCost => "least-cost",
        }
    }
}

/// One place a route can send a request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Upstream name.
    pub upstream: String,
    /// Provider key id (of the route's tenant, or operator-wide).
    pub provider_key: String,
    /// Model name to send upstream, when it differs from the alias.
    #[serde(default)]
    pub model: Option<String>,
    /// Lower is tried first; defaults to the target's position.
    #[serde(default)]
    pub priority: Option<u32>,
    /// Share of traffic among targets of equal priority.
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}
