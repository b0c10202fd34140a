//! What the running control process shares between its threads.

use crate::http::Response;
use crate::metrics::Metrics;
use crate::ops::writer::{Observer, Writer};
use crate::ops::Applied;
use crate::snapshot::Hub;
use crate::store::ingest::Ingested;
use crate::store::{Store, StoreError};
use crate::vault::Vault;
use sluice_contract::health::TargetView;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

/// Shared state of `serve`.
pub(crate) struct App {
    /// The store, handed out per request and taken away at shutdown so the
    /// database can close cleanly while idle connections linger.
    store: Mutex<Option<Arc<Store>>>,
    /// The writer thread.
    pub(crate) writer: Writer,
    /// The master key.
    pub(crate) vault: Vault,
    /// Snapshot versions and cached bodies.
    pub(crate) hub: Arc<Hub>,
    /// Counters.
    pub(crate) metrics: Arc<Metrics>,
    /// SHA-256 of the admin token.
    pub(crate) admin_token_sha256: [u8; 32],
    /// Wakes the alert webhook thread.
    pub(crate) billing: crate::billing::Runtime,
    /// The audit trail (set once at start).
    pub(crate) privacy: std::sync::OnceLock<Arc<crate::privacy::hooks::Hooks>>,
    /// Each data plane's last report of its targets' health, with when it
    /// came (kept in memory only: it is a live view, not history).
    pub(crate) target_health: Mutex<std::collections::BTreeMap<String, (u64, Vec<TargetView>)>>,
}

impl App {
    /// Assembles the shared state.
    pub(crate) fn new(
        store: Arc<Store>,
        writer: Writer,
        vault: Vault,
        hub: Arc<Hub>,
        metrics: Arc<Metrics>,
        admin_token: &Zeroizing<String>,
    ) -> App {
        App {
            store: Mutex::new(Some(store)),
            writer,
            vault,
            hub,
            metrics,
            admin_token_sha256: sluice_contract::crypto::sha256(admin_token.as_bytes()),
            billing: crate::billing::Runtime::default(),
            privacy: std::sync::OnceLock::new(),
            target_health: Mutex::default(),
        }
    }

    /// The store, unless shutting down.
    pub(crate) fn store(&self) -> Result<Arc<Store>, StoreError> {
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or(StoreError::Unavailable)
    }

    /// Takes the store away from request handlers (shutdown).
    pub(crate) fn take_store(&self) -> Option<Arc<Store>> {
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

/// Compares two secrets in constant time (by their SHA-256, so lengths leak nothing).
pub(crate) fn secret_eq(presented: &[u8], expected_sha256: &[u8; 32]) -> bool {
    let h = sluice_contract::crypto::sha256(presented);
    h.iter()
        .zip(expected_sha256)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// The response for a store error.
pub(crate) fn store_error(e: &StoreError) -> Response {
    let status = match e {
        StoreError::NotFound(_) => 404,
        StoreError::Conflict(_) => 409,
        StoreError::Invalid(_) => 400,
        StoreError::Unavailable => 503,
        StoreError::Internal(_) => 500,
    };
    if status == 500 {
        tracing::error!(error = %e, "store error");
    }
    Response::error(status, &e.to_string())
}

/// Tells the hub and the counters about commits.
pub(crate) struct Notify {
    /// Where new versions go.
    pub(crate) hub: Arc<Hub>,
    /// Where counts go.
    pub(crate) metrics: Arc<Metrics>,
    /// The audit trail and the rewrite after deletions.
    pub(crate) privacy: Option<Arc<crate::privacy::hooks::Hooks>>,
}

impl Observer for Notify {
    fn admin_committed(&self, applied: &Applied) {
        if applied.compiled.is_some() {
            self.hub.publish(applied.version, applied.compiled.clone());
        }
    }

    fn records_committed(&self, results: &[Ingested]) {
        let stored: u64 = results.iter().map(|r| r.stored).sum();
        self.metrics.records.fetch_add(stored, Ordering::Relaxed);
        self.metrics
            .batches
            .fetch_add(results.len() as u64, Ordering::Relaxed);
        self.metrics.ingest_commits.fetch_add(1, Ordering::Relaxed);
    }

    fn admin_applying(
        &self,
        txn: &redb::WriteTransaction,
        op: &crate::ops::AdminOp,
        actor: Option<&str>,
    ) -> Result<(), StoreError> {
        self.privacy
            .as_ref()
            .map_or(Ok(()), |p| p.applying(txn, op, actor))
    }

    fn admin_refused(
        &self,
        store: &Store,
        op: &crate::ops::AdminOp,
        error: &StoreError,
        actor: Option<&str>,
    ) {
        if let Some(p) = &self.privacy {
            p.refused(store, op, error, actor);
        }
    }

    fn admin_settled(&self, store: &Store, op: &crate::ops::AdminOp) -> Result<(), StoreError> {
        self.privacy.as_ref().map_or(Ok(()), |p| p.settled(store, op))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_eq_compares_whole_secrets() {
        let h = sluice_contract::crypto::sha256(b"token-abc");
        assert!(secret_eq(b"token-abc", &h));
        assert!(!secret_eq(b"token-abd", &h));
        assert!(!secret_eq(b"token-ab", &h));
        assert!(!secret_eq(b"", &h));
    }
}
