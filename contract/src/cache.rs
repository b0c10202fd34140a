//! The exact response cache's I/O-free half: the per-tenant rules carried
//! in the snapshot ([`rule`]), the key ([`key`]: a hash that cannot be made
//! without a tenant id), and the OpenAI chat forms an entry is stored in
//! and served from ([`chat`]: a streamed fill serves a non-streamed hit and
//! the other way round). The store itself (memory only, bounded in bytes)
//! is the data plane's.

pub mod chat;
pub mod key;
pub mod rule;

pub use key::{CacheKey, KeyBuilder, EXCLUDED_FIELDS};
pub use rule::{CachePolicy, CacheRule, Replay, TenantCache};

/// What the response cache did for a request (see `Record::cache`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheUse {
    /// Served from the cache.
    Hit,
    /// Looked up and not found (the response may have filled it).
    Miss,
}

impl CacheUse {
    /// The `x-sluice-cache` value and record label.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheUse::Hit => "hit",
            CacheUse::Miss => "miss",
        }
    }
}
