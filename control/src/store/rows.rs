//! The values stored in the tables of [`super::schema`], and what the admin
//! API shows of them.
//!
//! Rows are serialized as compact JSON: readable with any redb tool, and new
//! optional fields can be added without a migration.

use serde::{Deserialize, Serialize};

/// A tenant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct TenantRow {
    /// Stable id.
    pub(crate) id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    /// Region the tenant's traffic must stay in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) region: Option<String>,
    /// Creation time, unix ms.
    pub(crate) created_ms: u64,
}

/// A gateway key: only the SHA-256 of the full key string is kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ApiKeyRow {
    /// Key id (the `<id>` in `sk-sluice-<id>-<secret>`).
    pub(crate) id: String,
    /// Owning tenant.
    pub(crate) tenant: String,
    /// Optional label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    /// Lower-case hex SHA-256 of the full key string.
    pub(crate) sha256: String,
    /// Creation time, unix ms.
    pub(crate) created_ms: u64,
    /// When it was revoked; a revoked key leaves the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) revoked_ms: Option<u64>,
}

/// A tenant's provider key, envelope-encrypted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ProviderKeyRow {
    /// Key id, unique within the tenant.
    pub(crate) id: String,
    /// Owning tenant.
    pub(crate) tenant: String,
    /// The secret's data key, sealed under the master key (hex).
    pub(crate) wrapped_dek: String,
    /// The secret, sealed under the data key with `tenant/id` as associated data (hex).
    pub(crate) sealed: String,
    /// Creation time, unix ms.
    pub(crate) created_ms: u64,
    /// Last rotation, unix ms.
    pub(crate) updated_ms: u64,
    /// OpenAI: the `OpenAI-Organization` sent with this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) organization: Option<String>,
    /// OpenAI: the `OpenAI-Project` sent with this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) project: Option<String>,
}

/// What the admin API shows of a provider key: never the secret, sealed or not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct ProviderKeyInfo {
    /// Key id.
    pub(crate) id: String,
    /// Owning tenant.
    pub(crate) tenant: String,
    /// Creation time, unix ms.
    pub(crate) created_ms: u64,
    /// Last rotation, unix ms.
    pub(crate) updated_ms: u64,
    /// The `OpenAI-Organization` sent with it (not a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) organization: Option<String>,
    /// The `OpenAI-Project` sent with it (not a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) project: Option<String>,
}

impl From<&ProviderKeyRow> for ProviderKeyInfo {
    fn from(r: &ProviderKeyRow) -> Self {
        ProviderKeyInfo {
            id: r.id.clone(),
            tenant: r.tenant.clone(),
            created_ms: r.created_ms,
            updated_ms: r.updated_ms,
            organization: r.organization.clone(),
            project: r.project.clone(),
        }
    }
}

/// An enrolled data plane.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct DataplaneRow {
    /// Data plane id.
    pub(crate) id: String,
    /// Its number in record keys.
    pub(crate) num: u32,
    /// Lower-case hex SHA-256 of the whole enrollment token.
    pub(crate) token_sha256: String,
    /// Enrollment time, unix ms.
    pub(crate) created_ms: u64,
    /// When it was revoked; a revoked token gets 401.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) revoked_ms: Option<u64>,
    /// Its key secret (snapshots are sealed to it and authenticated under
    /// it), sealed under the master key; absent for a data plane enrolled
    /// before snapshots were sealed this way (it must be re-enrolled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<SealedSecret>,
}

/// A named admin token: only its hash is kept; it is shown once at creation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AdminTokenRow {
    /// Token name (unique, never reused).
    pub(crate) name: String,
    /// Lower-case hex SHA-256 of the whole token.
    pub(crate) sha256: String,
    /// `admin`, `read` or `tenant:<id>`.
    pub(crate) scope: String,
    /// Creation time, unix ms.
    pub(crate) created_ms: u64,
    /// When it was revoked; a revoked token gets 401.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) revoked_ms: Option<u64>,
}

/// A secret sealed like a provider key's: the secret under its own data key,
/// the data key under the master key (hex each).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SealedSecret {
    /// The data key, sealed under the master key.
    pub(crate) wrapped_dek: String,
    /// The secret, sealed under the data key.
    pub(crate) sealed: String,
}

/// A data plane as `dataplane list` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct DataplaneInfo {
    /// Data plane id.
    pub(crate) id: String,
    /// Enrollment time, unix ms.
    pub(crate) created_ms: u64,
    /// When it was revoked.
    #[serde(default)]
    pub(crate) revoked_ms: Option<u64>,
    /// Last sync request since this control process started, unix ms.
    #[serde(default)]
    pub(crate) last_seen_ms: Option<u64>,
    /// Snapshot version it last reported or was served.
    #[serde(default)]
    pub(crate) snapshot_version: Option<u64>,
    /// Records stored from it, all time.
    pub(crate) records: u64,
    /// Highest record sequence stored from it.
    pub(crate) max_seq: u64,
}

/// One stored record, as `logs` returns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct LogEntry {
    /// Data plane that sent it.
    pub(crate) dataplane: String,
    /// Its sequence number there.
    pub(crate) seq: u64,
    /// The record.
    pub(crate) record: sluice_contract::record::Record,
}

/// One row of `usage`: a tenant's requests for one model on one UTC day.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct UsageRow {
    /// `YYYY-MM-DD` (UTC).
    pub(crate) day: String,
    /// Model asked for ("" when the request named none).
    pub(crate) model: String,
    /// Requests.
    pub(crate) requests: u64,
    /// Input tokens.
    pub(crate) input_tokens: u64,
    /// Output tokens.
    pub(crate) output_tokens: u64,
    /// Settled cost, micro-dollars (sum of the records' `cost_micros`).
    #[serde(default)]
    pub(crate) cost_micros: u64,
    /// Prompt tokens read from the provider's cache (part of input).
    #[serde(default)]
    pub(crate) cached_input_tokens: u64,
    /// Prompt tokens written to the provider's cache (part of input).
    #[serde(default)]
    pub(crate) cache_creation_tokens: u64,
    /// Reasoning tokens (part of output).
    #[serde(default)]
    pub(crate) reasoning_tokens: u64,
    /// Requests the response cache took part in (hits and misses).
    #[serde(default)]
    pub(crate) cache_lookups: u64,
    /// Requests served from the response cache.
    #[serde(default)]
    pub(crate) cache_hits: u64,
    /// What cache hits saved, micro-dollars.
    #[serde(default)]
    pub(crate) saved_micros: u64,
    /// Response body bytes before compression (compressed responses).
    #[serde(default)]
    pub(crate) body_plain_bytes: u64,
    /// Response body bytes after compression.
    #[serde(default)]
    pub(crate) body_sent_bytes: u64,
    /// Requests whose model had no price: their cost is unknown (not in
    /// `cost_micros`), never silently zero.
    #[serde(default)]
    pub(crate) unpriced_requests: u64,
}
