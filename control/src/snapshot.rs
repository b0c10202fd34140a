//! Serving snapshots to data planes.
//!
//! The writer publishes each new version here after it commits; long-polling
//! sync requests wait on a condition variable for it. The compiled snapshot is
//! cached per version, and the body sealed for each data plane per (version,
//! token), so a fleet polling the same version costs one compile and one seal
//! per data plane.

use crate::names::EnrollToken;
use crate::store::compile::Compiled;
use crate::store::{Store, StoreError};
use crate::vault::Vault;
use sluice_contract::crypto::{hex, SealKey};
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// HKDF salt of the key a snapshot's provider keys are sealed under; the info
/// is the data plane id, the secret the 32 bytes of its enrollment token.
pub(crate) const SEAL_SALT: &[u8] = b"sluice-snapshot-v1";

/// The key the provider keys of `token`'s snapshots are sealed under.
pub(crate) fn dataplane_key(token: &EnrollToken) -> Result<SealKey, StoreError> {
    Ok(SealKey::derive(
        &token.secret[..],
        SEAL_SALT,
        token.dataplane.as_bytes(),
    )?)
}

/// A snapshot version and its JSON body, sealed for one data plane.
type Sealed = (u64, Arc<Vec<u8>>);

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

    /// The snapshot for the data plane holding `token` (whose hash is
    /// `token_sha256`): its version and JSON body with provider keys sealed
    /// for that data plane.
    pub(crate) fn body_for(
        &self,
        store: &Store,
        vault: &Vault,
        token: &EnrollToken,
        token_sha256: &str,
    ) -> Result<(u64, Arc<Vec<u8>>), StoreError> {
        let compiled = self.compiled(store)?;
        let version = compiled.snapshot.version;
        if let Some((v, body)) = lock(&self.bodies).get(token_sha256) {
            if *v == version {
                return Ok((version, body.clone()));
            }
        }
        let body = Arc::new(seal_for(&compiled, vault, token)?);
        lock(&self.bodies).insert(token_sha256.to_owned(), (version, body.clone()));
        Ok((version, body))
    }

    /// The compiled snapshot of at least the published version.
    fn compiled(&self, store: &Store) -> Result<Arc<Compiled>, StoreError> {
        let current = self.current();
        if let Some(c) = lock(&self.compiled).as_ref() {
            if c.snapshot.version >= current {
                return Ok(c.clone());
            }
        }
        let fresh = Arc::new(store.compile_current()?);
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

/// `compiled` as JSON, each provider key opened from its envelope and sealed
/// under the data plane's derived key with the key's `tenant/id` as associated data.
pub(crate) fn seal_for(
    compiled: &Compiled,
    vault: &Vault,
    token: &EnrollToken,
) -> Result<Vec<u8>, StoreError> {
    let key = dataplane_key(token)?;
    let mut snap = compiled.snapshot.clone();
    snap.credits = compiled.credits.for_dataplane(&token.dataplane);
    for (pk, env) in snap.provider_keys.iter_mut().zip(&compiled.envelopes) {
        let aad = pk.aad();
        let plain = vault.open_secret(&aad, env)?;
        pk.sealed = Some(hex(&key.seal(&plain, aad.as_bytes())?));
        pk.api_key_env = None;
    }
    crate::privacy::content::seal_for_dataplane(compiled, vault, &key, &mut snap)?;
    Ok(serde_json::to_vec(&snap)?)
}
