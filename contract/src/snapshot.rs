//! The snapshot: everything a data plane needs to serve, as one immutable,
//! versioned value.
//!
//! [`types`] is the wire and file form (serde), produced by the control plane
//! or written by hand as TOML for standalone mode. [`index`] compiles it into
//! the hash maps the hot path reads (the data plane shares the compiled form
//! between its workers, which pick up a new one between requests).

pub mod index;
pub mod types;

pub use index::{
    Index, IndexError, KeyEntry, KeyMaterial, RouteEntry, RouteTarget, TenantEntry, UpstreamEntry,
};
pub use types::{
    ApiKey, KeySource, ProviderKey, ProviderKind, Route, Snapshot, Strategy, Target, Tenant, Upstream,
};
