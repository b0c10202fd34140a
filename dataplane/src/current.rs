//! The snapshot being served: compiled, its upstream names resolved, and
//! published to every worker.
//!
//! The contract's compile step does no I/O (the control plane runs it inside
//! a write transaction); names are resolved here, before an index is
//! published and then periodically, always off the hot path.

use arc_swap::ArcSwap;
use sluice_contract::snapshot::{Index, IndexError, KeyMaterial, Snapshot};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

/// The current compiled snapshot, shared by all workers of a data plane.
///
/// Readers take one `Arc` per request (`load_full`): lock-free, and a request
/// keeps the snapshot it started on until it completes.
pub struct SnapshotCell {
    current: ArcSwap<Index>,
    /// The response cache, whose entries follow the snapshot's rules.
    pub cache: crate::cache::ResponseCache,
}

impl SnapshotCell {
    /// A cell holding `index`, with a response cache of the default size.
    pub fn new(index: Index) -> Self {
        SnapshotCell::with_cache(index, crate::cache::DEFAULT_MAX_BYTES)
    }

    /// A cell holding `index`, with a response cache of `cache_bytes`.
    pub fn with_cache(index: Index, cache_bytes: u64) -> Self {
        SnapshotCell {
            current: ArcSwap::from_pointee(index),
            cache: crate::cache::ResponseCache::new(cache_bytes),
        }
    }

    /// The snapshot to serve the next request with.
    pub fn current(&self) -> Arc<Index> {
        self.current.load_full()
    }

    /// Publishes `index`; requests already running finish on the old one.
    /// Entries of tenants whose cache the new snapshot turned off (or
    /// deleted) are dropped before this returns.
    pub fn publish(&self, index: Index) {
        let old = self.current.swap(Arc::new(index));
        self.cache.on_publish(&old, &self.current.load());
    }
}

/// Compiles `snap` (carrying quota state over from `prev`) and resolves its
/// upstreams' names, so that the index is ready to serve when published.
/// Blocks on name resolution: call it off the hot path.
pub fn compile(
    snap: &Snapshot,
    material: KeyMaterial<'_>,
    prev: Option<&Index>,
) -> Result<Index, IndexError> {
    let index = match prev {
        Some(prev) => Index::rebuild(snap, material, prev)?,
        None => Index::build(snap, material)?,
    };
    index.refresh_addresses(&resolve);
    Ok(index)
}

/// Starts the thread that re-resolves upstream host names every `every`
/// (see [`Index::refresh_addresses`]); it lives as long as the process.
pub fn spawn_address_refresher(cell: Arc<SnapshotCell>, every: std::time::Duration) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("dns-refresh".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            cell.current().refresh_addresses(&resolve);
        })
        .map(drop)
}

/// The system resolver's addresses for `host`; none when it fails (logged).
fn resolve(host: &str, port: u16) -> Box<[SocketAddr]> {
    match (host, port).to_socket_addrs() {
        Ok(addrs) => addrs.collect(),
        Err(e) => {
            tracing::warn!(host, error = %e, "upstream name did not resolve");
            Box::new([])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_resolves_to_loopback() {
        let addrs = resolve("localhost", 9000);
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 9000));
        assert!(resolve("no-such-host.invalid", 1).is_empty());
    }
}
