//! The snapshot: everything a data plane needs to serve, as one immutable,
//! versioned value.
//!
//! [`types`] is the wire and file form (serde), produced by the control plane
//! or written by hand as TOML for standalone mode. [`index`] compiles it into
//! the hash maps the hot path reads; workers share the compiled form through
//! [`SnapshotCell`] and pick up a new one between requests.

pub mod index;
pub mod types;

pub use index::{
    Index, IndexError, KeyEntry, KeyMaterial, RouteEntry, RouteTarget, TenantEntry, UpstreamEntry,
};
pub use types::{ApiKey, KeySource, ProviderKey, ProviderKind, Route, Snapshot, Target, Tenant, Upstream};

use arc_swap::ArcSwap;
use std::sync::Arc;

/// The current compiled snapshot, shared by all workers of a data plane.
///
/// Readers take one `Arc` per request (`load_full`): lock-free, and a request
/// keeps the snapshot it started on until it completes.
pub struct SnapshotCell {
    current: ArcSwap<Index>,
}

impl SnapshotCell {
    /// A cell holding `index`.
    pub fn new(index: Index) -> Self {
        SnapshotCell {
            current: ArcSwap::from_pointee(index),
        }
    }

    /// The snapshot to serve the next request with.
    pub fn current(&self) -> Arc<Index> {
        self.current.load_full()
    }

    /// Publishes `index`; requests already running finish on the old one.
    pub fn publish(&self, index: Index) {
        self.current.store(Arc::new(index));
    }
}

/// Starts the thread that re-resolves upstream host names every `every`
/// (see [`Index::refresh_addresses`]); it lives as long as the process.
pub fn spawn_address_refresher(cell: Arc<SnapshotCell>, every: std::time::Duration) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("dns-refresh".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            cell.current().refresh_addresses();
        })
        .map(drop)
}
