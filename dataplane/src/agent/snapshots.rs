//! The snapshot side: fetching, compiling, caching, and the long-poll thread.

use super::http::{Client, HttpError};
use super::spool::write_atomic;
use super::{AgentStats, Backoff, BOOTSTRAP_TIMEOUT, POLL_TIMEOUT, SNAPSHOT_CACHE_FILE};
use crate::current::{self, SnapshotCell};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use sluice_contract::crypto::{SealKey, SnapshotMac, SNAPSHOT_MAC_HEADER as MAC_HEADER};
use sluice_contract::snapshot::{Index, IndexError, KeyMaterial, Snapshot};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// How long a health report to control may take.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A 204 that comes back faster than this means control did not hold the
/// poll; pause [`FAST_POLL_PAUSE`] so a misbehaving server cannot make us spin.
const FAST_POLL: Duration = Duration::from_secs(1);
const FAST_POLL_PAUSE: Duration = Duration::from_millis(250);

/// What one `GET /v1/snapshot` gave.
pub(super) enum Fetched {
    /// A snapshot newer than asked for, and its raw JSON.
    New(Box<Snapshot>, Vec<u8>),
    /// Nothing newer (204).
    NotModified,
}

/// Why a fetch gave nothing usable.
pub(super) enum FetchError {
    /// No HTTP exchange.
    Http(HttpError),
    /// Control answered with another status.
    Status(u16),
    /// A 200 whose body is not a snapshot.
    Parse(serde_json::Error),
    /// A 200 whose MAC is missing or does not match: altered on the way, or
    /// not from our control plane.
    Unauthenticated,
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Http(e) => e.fmt(f),
            FetchError::Status(401 | 403) => f.write_str("control refused the enrollment token"),
            FetchError::Status(s) => write!(f, "control answered {s}"),
            FetchError::Parse(e) => write!(f, "snapshot is not valid JSON: {e}"),
            FetchError::Unauthenticated => f.write_str(
                "snapshot refused: its MAC is missing or wrong (altered in transit, or not from our control plane)",
            ),
        }
    }
}

pub(super) fn fetch(
    client: &mut Client,
    mac: &SnapshotMac,
    after: u64,
    timeout: Duration,
) -> Result<Fetched, FetchError> {
    let path = format!("/v1/snapshot?after={after}");
    let resp = client
        .request("GET", &path, None, timeout)
        .map_err(FetchError::Http)?;
    match resp.status {
        200 => {
            // Checked before the body is even parsed, let alone used or cached.
            let tag = resp.header(MAC_HEADER).ok_or(FetchError::Unauthenticated)?;
            if !mac.verify(&resp.body, tag) {
                return Err(FetchError::Unauthenticated);
            }
            let snap: Snapshot = serde_json::from_slice(&resp.body).map_err(FetchError::Parse)?;
            let mut cached = format!("{}\n", tag.trim()).into_bytes();
            cached.extend_from_slice(&resp.body);
            Ok(Fetched::New(Box::new(snap), cached))
        }
        204 => Ok(Fetched::NotModified),
        s => Err(FetchError::Status(s)),
    }
}

fn compile(snap: &Snapshot, seal: &Arc<SealKey>) -> Result<Index, IndexError> {
    current::compile(snap, KeyMaterial::Sealed(seal.clone()), None)
}

/// Caches `raw` (its MAC line, then the body sealed as received) as the
/// last good snapshot.
fn store_cache(dir: &Path, raw: &[u8], version: u64) {
    if let Err(e) = write_atomic(dir, SNAPSHOT_CACHE_FILE, raw) {
        tracing::warn!(version, error = %e, "agent: could not cache the snapshot");
    }
}

/// The bootstrap fetch: a compiled snapshot from control, cached, or why not.
pub(super) fn bootstrap_fetch(
    client: &mut Client,
    seal: &Arc<SealKey>,
    mac: &SnapshotMac,
    dir: &Path,
    stats: &AgentStats,
) -> Result<Index, String> {
    match fetch(client, mac, 0, BOOTSTRAP_TIMEOUT) {
        Ok(Fetched::New(snap, raw)) => {
            stats.control_up.store(true, Ordering::Relaxed);
            stats.confirmed_ms.store(super::unix_ms(), Ordering::Relaxed);
            let index = compile(&snap, seal)
                .map_err(|e| format!("snapshot v{} does not compile: {e}", snap.version))?;
            store_cache(dir, &raw, snap.version);
            Ok(index)
        }
        Ok(Fetched::NotModified) => {
            stats.control_up.store(true, Ordering::Relaxed);
            Err("control has no snapshot yet".into())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The cached snapshot, its MAC checked, compiled.
pub(super) fn load_cache(dir: &Path, seal: &Arc<SealKey>, mac: &SnapshotMac) -> Result<Index, String> {
    let path = dir.join(SNAPSHOT_CACHE_FILE);
    let raw = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (tag, body) = match raw.iter().position(|&b| b == b'\n') {
        Some(i) => (std::str::from_utf8(&raw[..i]).unwrap_or(""), &raw[i + 1..]),
        None => ("", &raw[..]),
    };
    if !mac.verify(body, tag) {
        return Err(format!(
            "{}: its MAC does not match (altered, or made for another key); refused",
            path.display()
        ));
    }
    let snap: Snapshot = serde_json::from_slice(body).map_err(|e| format!("{}: {e}", path.display()))?;
    compile(&snap, seal).map_err(|e| format!("{}: v{} does not compile: {e}", path.display(), snap.version))
}

/// The long-poll loop.
pub(super) struct Poller {
    client: Client,
    seal: Arc<SealKey>,
    mac: Arc<SnapshotMac>,
    dir: PathBuf,
    stats: Arc<AgentStats>,
    /// The newest version seen (served, or refused as not compiling).
    after: u64,
    cell: Arc<SnapshotCell>,
    stop: Receiver<()>,
}

impl Poller {
    /// `keys`: what provider keys are sealed under, and what snapshots are
    /// authenticated under.
    pub(super) fn new(
        client: Client,
        keys: (Arc<SealKey>, Arc<SnapshotMac>),
        dir: PathBuf,
        stats: Arc<AgentStats>,
        after: u64,
        cell: Arc<SnapshotCell>,
        stop: Receiver<()>,
    ) -> Self {
        let (seal, mac) = keys;
        Poller {
            client,
            seal,
            mac,
            dir,
            stats,
            after,
            cell,
            stop,
        }
    }

    /// Whether the handle asked this loop to stop.
    fn stopped(&self) -> bool {
        matches!(
            self.stop.try_recv(),
            Err(crossbeam_channel::TryRecvError::Disconnected)
        )
    }

    /// Sleeps `d` or until stopped; returns whether to go on.
    fn pause(&self, d: Duration) -> bool {
        matches!(self.stop.recv_timeout(d), Err(RecvTimeoutError::Timeout))
    }

    pub(super) fn run(mut self) {
        let mut backoff = Backoff::new();
        let mut was_up = true;
        loop {
            if was_up {
                self.report_health();
            }
            let started = Instant::now();
            let outcome = fetch(&mut self.client, &self.mac, self.after, POLL_TIMEOUT);
            let ok = outcome.is_ok();
            self.stats.control_up.store(ok, Ordering::Relaxed);
            if matches!(outcome, Ok(Fetched::NotModified)) {
                // Control says the snapshot in use is still current.
                self.stats.confirmed_ms.store(super::unix_ms(), Ordering::Relaxed);
            }
            let wait = match outcome {
                Ok(Fetched::New(snap, raw)) => self.take(&snap, &raw),
                Ok(Fetched::NotModified) => (started.elapsed() < FAST_POLL).then_some(FAST_POLL_PAUSE),
                Err(_) if self.stopped() => return,
                Err(e) => {
                    if was_up {
                        tracing::warn!(error = %e, "agent: snapshot poll failed; retrying");
                    } else {
                        tracing::debug!(error = %e, "agent: snapshot poll failed");
                    }
                    Some(backoff.next())
                }
            };
            if ok {
                if !was_up {
                    tracing::info!("agent: snapshot poll reconnected");
                }
                backoff.reset();
            }
            was_up = ok;
            if let Some(d) = wait {
                if !self.pause(d) {
                    return;
                }
            } else if self.stopped() {
                return;
            }
        }
    }

    /// Tells control how this data plane sees its targets' health, once per
    /// poll (so at most every long-poll period). Best effort: a control
    /// that does not take it (older, or down) costs one request, logged
    /// at debug.
    fn report_health(&mut self) {
        let now = sluice_contract::quota::now_ns();
        let targets: Vec<_> = self
            .cell
            .current()
            .health_cells()
            .iter()
            .map(|(owner, h)| h.view(owner, now))
            .collect();
        let Ok(json) = serde_json::to_vec(&serde_json::json!({ "targets": targets })) else {
            return;
        };
        let body = super::http::Body {
            content_type: "application/json",
            bytes: &json,
        };
        match self
            .client
            .request("POST", "/v1/health", Some(body), HEALTH_TIMEOUT)
        {
            Ok(r) if r.status == 204 || r.status == 200 => {}
            Ok(r) => tracing::debug!(status = r.status, "agent: control did not take the health report"),
            Err(e) => tracing::debug!(error = %e, "agent: health report failed"),
        }
    }

    /// Compiles and publishes `snap`; returns how long to pause before the next poll.
    fn take(&mut self, snap: &Snapshot, raw: &[u8]) -> Option<Duration> {
        let version = snap.version;
        if version <= self.after {
            tracing::debug!(version, after = self.after, "agent: control sent an old snapshot");
            return Some(FAST_POLL_PAUSE);
        }
        // Either way, do not ask for this version again: a snapshot that does
        // not compile is reported once and the current one keeps serving.
        self.after = version;
        // Rate-limit and credit state carries over from the snapshot in use.
        let prev = self.cell.current();
        match current::compile(snap, KeyMaterial::Sealed(self.seal.clone()), Some(&prev)) {
            Ok(index) => {
                self.cell.publish(index);
                self.stats.confirmed_ms.store(super::unix_ms(), Ordering::Relaxed);
                self.stats.snapshot_version.store(version, Ordering::Relaxed);
                tracing::info!(version, "agent: snapshot published");
                store_cache(&self.dir, raw, version);
            }
            Err(e) => {
                tracing::warn!(version, error = %e, "agent: snapshot does not compile; keeping the current one");
            }
        }
        None
    }
}

/// How long [`PollerHandle::stop`] waits for the poll thread. A long poll in
/// flight holds it until control answers (up to the poll's time limit); the
/// thread only reads, so at shutdown it is left to end on its own rather
/// than holding the process.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// The shipper's handle on the poll thread. Dropping it stops the thread
/// without waiting; [`PollerHandle::stop`] also waits a little for it.
pub(super) struct PollerHandle {
    stop: Option<Sender<()>>,
    done: Receiver<()>,
    join: Option<JoinHandle<()>>,
}

impl PollerHandle {
    /// `done` disconnects when the thread's loop has returned.
    pub(super) fn new(stop: Sender<()>, done: Receiver<()>, join: JoinHandle<()>) -> Self {
        PollerHandle {
            stop: Some(stop),
            done,
            join: Some(join),
        }
    }

    /// Stops the poll thread, and waits for it unless a long poll is in
    /// flight past [`STOP_WAIT`].
    pub(super) fn stop(mut self) {
        self.stop = None;
        match self.done.recv_timeout(STOP_WAIT) {
            Err(RecvTimeoutError::Disconnected) => {
                if let Some(join) = self.join.take() {
                    if join.join().is_err() {
                        tracing::error!("agent: snapshot thread panicked");
                    }
                }
            }
            _ => tracing::debug!("agent: snapshot poll still in flight at shutdown; not waiting for it"),
        }
    }
}

impl Drop for PollerHandle {
    fn drop(&mut self) {
        self.stop = None;
    }
}
