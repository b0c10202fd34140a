//! Serving snapshots to data planes.
//!
//! The writer publishes each new version here after it commits; long-polling
//! sync requests wait on a condition variable for it. The compiled snapshot is
//! cached per version, and the body sealed for each data plane per (version,
//! token), so a fleet polling the same version costs one compile and one seal
//! per data plane.

use crate::store::compile::{unhex_vec, Compiled};
use crate::store::rows::DataplaneRow;
use crate::store::{Store, StoreError};
use crate::vault::{Envelope, Vault};
use sluice_contract::crypto::{dataplane_seal_key, hex, SealKey, SnapshotMac};
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Associated data of a data plane's key secret sealed under the master key.
pub(crate) fn dataplane_key_aad(id: &str) -> String {
    format!("dataplane-key:{id}")
}

/// The keys of `row`'s snapshots: the one its provider keys are sealed under
/// and the one the whole body is authenticated under, both from the data
/// plane's key secret (opened from the store with the master key). The
/// bearer token it presents has no part in them.
pub(crate) fn dataplane_keys(
    row: &DataplaneRow,
    vault: &Vault,
) -> Result<(SealKey, SnapshotMac), StoreError> {
    let Some(sealed) = &row.key else {
        return Err(StoreError::Conflict(format!(
            "data plane {:?} was enrolled before snapshots were sealed to a key of its own; \
             revoke and re-enroll it",
            row.id
        )));
    };
    let bad = || {
        StoreError::Internal(format!(
            "data plane {:?}: its sealed key is not valid hex",
            row.id
        ))
    };
    let env = Envelope {
        wrapped_dek: unhex_vec(&sealed.wrapped_dek).ok_or_else(bad)?,
        sealed: unhex_vec(&sealed.sealed).ok_or_else(bad)?,
    };
    let secret = vault.open_secret(&dataplane_key_aad(&row.id), &env)?;
    Ok((
        dataplane_seal_key(&secret, &row.id)?,
        SnapshotMac::derive(&secret, &row.id)?,
    ))
}

/// A snapshot version, its JSON body sealed for one data plane, and the
/// body's MAC.
#[derive(Clone)]
pub(crate) struct Sealed {
    /// Snapshot version.
    pub(crate) version: u64,
    /// The JSON body.
    pub(crate) body: Arc<Vec<u8>>,
    /// [`SnapshotMac::sign`] of the body (hex).
    pub(crate) mac: Arc<str>,
}

struct State {
    version: u64,
    closed: bool,
}

/// The current snapshot version and what has been built for it.
pub(crate) struct Hub {
    state: Mutex<State>,
    changed: Condvar,
    compiled: Mutex<Option<Arc<Compiled>>>,
    /// Token SHA-256 → the body last sealed for it.
    bodies: Mutex<HashMap<String, Sealed>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Hub {
    /// A hub at the store's current `version`.
    pub(crate) fn new(version: u64) -> Hub {
        Hub {
            state: Mutex::new(State {
                version,
                closed: false,
            }),
            changed: Condvar::new(),
            compiled: Mutex::new(None),
            bodies: Mutex::new(HashMap::new()),
        }
    }

    /// Records a committed version (and its snapshot, when the writer has it)
    /// and wakes every waiting poll.
    pub(crate) fn publish(&self, version: u64, compiled: Option<Compiled>) {
        if let Some(c) = compiled {
            let mut slot = lock(&self.compiled);
            if slot.as_ref().is_none_or(|old| old.snapshot.version < version) {
                *slot = Some(Arc::new(c));
            }
        }
        let mut s = lock(&self.state);
        if version > s.version {
            s.version = version;
            self.changed.notify_all();
        }
    }

    /// The latest committed version.
    pub(crate) fn current(&self) -> u64 {
        lock(&self.state).version
    }

    /// Waits up to `timeout` for a version newer than `after`; returns the
    /// current version (not newer on timeout or shutdown).
    pub(crate) fn wait_newer(&self, after: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut s = lock(&self.state);
        while s.version <= after && !s.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            s = match self.changed.wait_timeout(s, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        s.version
    }

    /// Wakes every poll for shutdown.
    pub(crate) fn close(&self) {
        lock(&self.state).closed = true;
        self.changed.notify_all();
    }

    /// The snapshot for data plane `row`: its version, JSON body with
    /// provider keys sealed for that data plane, and the body's MAC.
    pub(crate) fn body_for(
        &self,
        store: &Store,
        vault: &Vault,
        row: &DataplaneRow,
    ) -> Result<Sealed, StoreError> {
        let compiled = self.compiled(store)?;
        let version = compiled.snapshot.version;
        // Keyed by the token's hash: a re-enrolled data plane gets a fresh body.
        if let Some(s) = lock(&self.bodies).get(&row.token_sha256) {
            if s.version == version {
                return Ok(s.clone());
            }
        }
        let (seal, mac) = dataplane_keys(row, vault)?;
        let body = seal_for(&compiled, vault, &seal, &row.id)?;
        let sealed = Sealed {
            version,
            mac: mac.sign(&body).into(),
            body: Arc::new(body),
        };
        lock(&self.bodies).insert(row.token_sha256.clone(), sealed.clone());
        Ok(sealed)
    }

    /// The compiled snapshot of at least the published version.
    fn compiled(&self, store: &Store) -> Result<Arc<Compiled>, StoreError> {
        let current = self.current();
        if let Some(c) = lock(&self.compiled).as_ref() {
            if c.snapshot.version >= current {
                return Ok(c.clone());
            }
        }
        let fresh = Arc::new(crate::ops::compile_current(store)?);
        let mut slot = lock(&self.compiled);
        if slot
            .as_ref()
            .is_none_or(|old| old.snapshot.version < fresh.snapshot.version)
        {
            *slot = Some(fresh.clone());
        }
        Ok(fresh)
    }
}

/// `compiled` as JSON for data plane `dataplane`, each provider key opened
/// from its envelope and sealed under `key` (the data plane's) with the key's
/// `tenant/id` as associated data.
pub(crate) fn seal_for(
    compiled: &Compiled,
    vault: &Vault,
    key: &SealKey,
    dataplane: &str,
) -> Result<Vec<u8>, StoreError> {
    let mut snap = compiled.snapshot.clone();
    snap.credits = compiled.credits.for_dataplane(dataplane);
    compiled.rate_shares.apply(dataplane, &mut snap.rate_limits);
    for (pk, env) in snap.provider_keys.iter_mut().zip(&compiled.envelopes) {
        let aad = pk.aad();
        let plain = vault.open_secret(&aad, env)?;
        pk.sealed = Some(hex(&key.seal(&plain, aad.as_bytes())?));
        pk.api_key_env = None;
    }
    crate::privacy::content::seal_for_dataplane(compiled, vault, key, &mut snap)?;
    Ok(serde_json::to_vec(&snap)?)
}
