//! The agent: the data plane's link to the control plane, off the hot path.
//!
//! It fetches snapshots (long poll), compiles and publishes them to the
//! workers, and ships the workers' metadata records in acked batches. It uses
//! plain std threads and blocking std::net I/O: two of them after
//! [`Agent::spawn`], because a long poll that blocks for 25 s cannot share a
//! thread with a 100 ms batch timer.
//! - `sluice-agent-snap` long-polls `GET /v1/snapshot?after=V`, checks the
//!   MAC control sent with it (`x-sluice-snapshot-mac`, under a key derived
//!   from the token file's key secret, which never crosses the wire), compiles
//!   what arrives with [`crate::current::compile`], publishes it into the [`SnapshotCell`]
//!   and caches its raw (sealed) JSON with its MAC on disk. A snapshot whose
//!   MAC does not match is neither used nor cached.
//! - `sluice-agent` drains the [`RecordRx`], numbers records, ships them with
//!   `POST /v1/records`, spools them to disk when control does not ack, and
//!   replays the spool when it answers again. Its [`JoinHandle`] is the one
//!   [`Agent::spawn`] returns; it stops the snapshot thread when it ends.
//!
//! # Durability invariants
//! - **A record is safe once it is acked or fsynced to the spool**, and the
//!   agent does nothing that could lose a safe record: the spool is truncated
//!   only after every line in it was acked, and a torn last line (a crash
//!   mid-append) is cut off and never replayed. Until then a record lives in
//!   memory (the queue, or the agent's pending batch) and a crash loses it.
//! - **Records reach control in seq order**, each seq used once: seqs come
//!   from a counter in the spool directory that is reserved durably, in blocks
//!   of [`spool::SEQ_BLOCK`], before any seq of the block is used. A restart
//!   continues above the last reservation (and above any seq in the spool).
//! - **Order is kept across the spool**: while any spooled record is unacked,
//!   new records are appended behind it rather than shipped past it.
//! - **Replays are harmless**: a batch is resent whole after any failure,
//!   including a crash between control's ack and the spool's truncation;
//!   control keys records by `(dataplane id, seq)` and stores each once.
//! - **Workers never wait for the agent**: it keeps draining the queue into
//!   memory and, when control is slow or down or the queue stays backed up,
//!   into the spool. If the disk fails as well, records stay in memory and
//!   both are retried; only a shutdown in that state loses them (logged).
//! - **Plaintext provider keys never reach the disk**: the snapshot cache is
//!   the JSON exactly as control sent it, with keys sealed for this data plane.
//! - **Only authenticated snapshots are served**: from control or from the
//!   cache, a snapshot is checked against its MAC before it is parsed.
//!
//! # On-disk layout (`--spool-dir`, created 0700; files 0600)
//! - `snapshot.cache`: the last snapshot that compiled: a first line with its
//!   MAC (64 hex digits), then the raw response body; replaced atomically
//!   (tmp, fsync, rename, fsync of the directory).
//! - `spool.jsonl`: unacked records, one `{"seq":N,"record":{...}}` per line.
//! - `seq`: decimal text, the first seq not yet reserved; replaced atomically.

pub(crate) mod http;
mod records;
mod snapshots;
pub(crate) mod spool;
mod token;

use crate::current::SnapshotCell;
use crate::sink::RecordRx;
use http::{Client, Endpoint};
use sluice_contract::crypto::{CryptoError, SealKey, SnapshotMac};
use sluice_contract::snapshot::Index;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use zeroize::Zeroizing;

/// Ship a batch once this many records are waiting.
pub const BATCH_RECORDS: usize = 1_000;
/// Ship a batch once its first record has waited this long.
pub const BATCH_WAIT: Duration = Duration::from_millis(100);
/// Most records in one `POST /v1/records` (and in one spool replay).
pub const MAX_BATCH: usize = 10_000;
/// First retry delay after control failed; doubled per failure up to [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// TCP connect timeout to control.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time limit of the snapshot fetch at bootstrap.
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(5);
/// Time limit of one long poll (control holds it up to 25 s).
const POLL_TIMEOUT: Duration = Duration::from_secs(35);
/// Time limit of one record batch exchange. The batch is in the spool
/// already (write-ahead), so a timeout costs only a replay; while an exchange
/// is in flight, new records wait in memory, so this bounds that wait.
const RECORDS_TIMEOUT: Duration = Duration::from_secs(5);
/// File name of the snapshot cache in the spool directory.
pub const SNAPSHOT_CACHE_FILE: &str = "snapshot.cache";

/// How the agent reaches the control plane.
pub struct AgentConfig {
    /// Control plane sync URL, `http://host:port` or `https://...`.
    pub control_url: String,
    /// Enrollment token, `sdp-<dataplane_id>-<64 hex>` (read from `--token-file`).
    pub token: Zeroizing<String>,
    /// Where the spool, the seq counter and the snapshot cache live.
    pub spool_dir: PathBuf,
    /// Extra CA certificates (PEM) trusted for an `https://` control URL.
    pub ca_file: Option<PathBuf>,
    /// Allow a plain `http://` control URL to a host other than this machine
    /// (`--insecure-plaintext`): the bearer token then crosses the network in
    /// the clear (snapshots stay authenticated and their keys sealed).
    pub insecure_plaintext: bool,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("control_url", &self.control_url)
            .field("token", &"<redacted>")
            .field("spool_dir", &self.spool_dir)
            .field("ca_file", &self.ca_file)
            .field("insecure_plaintext", &self.insecure_plaintext)
            .finish()
    }
}

/// Why the agent could not start.
#[derive(Debug)]
pub enum AgentError {
    /// The enrollment token is malformed (its text is never shown).
    BadToken,
    /// A plain `http://` control URL names a host that is not this machine.
    Plaintext(String),
    /// The control URL is malformed.
    BadUrl(String),
    /// The TLS setup failed (the CA file, usually).
    Tls(String),
    /// The sealing key could not be derived.
    Crypto(CryptoError),
    /// Neither control nor the cache could supply a snapshot that compiles.
    NoSnapshot(String),
    /// The spool directory or a file in it failed.
    Io(std::io::Error),
}

impl std::fmt::Display for AgentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AgentError::BadToken => f.write_str(
                "malformed enrollment token (expected sdp-<dataplane_id>-<64 hex digits>-<64 hex digits>; \
                 a token without its key part predates sealed snapshots: re-enroll the data plane)",
            ),
            AgentError::Plaintext(m) => f.write_str(m),
            AgentError::BadUrl(m) => f.write_str(m),
            AgentError::Tls(m) => f.write_str(m),
            AgentError::Crypto(e) => write!(f, "deriving the snapshot key: {e}"),
            AgentError::NoSnapshot(m) => write!(f, "no snapshot to serve: {m}"),
            AgentError::Io(e) => write!(f, "spool directory: {e}"),
        }
    }
}

impl std::error::Error for AgentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AgentError::Io(e) => Some(e),
            AgentError::Crypto(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for AgentError {
    fn from(e: std::io::Error) -> Self {
        AgentError::Io(e)
    }
}

/// Agent counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct AgentStats {
    /// Version of the snapshot being served.
    pub snapshot_version: AtomicU64,
    /// Records acked by control (directly or from the spool).
    pub records_shipped: AtomicU64,
    /// Records appended to the spool.
    pub records_spooled: AtomicU64,
    /// Records in the spool not yet acked.
    pub spool_pending: AtomicU64,
    /// Whether the last exchange with control succeeded.
    pub control_up: AtomicBool,
    /// Unix ms when control last confirmed the snapshot in use (a 200 or a
    /// 204 to a poll); at a start from the cache, the cache file's time.
    pub confirmed_ms: AtomicU64,
}

/// Unix milliseconds now.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The optional limit on how long a data plane cut off from control keeps
/// serving (`--max-snapshot-age-secs`). Past it, every tenant is refused
/// with 503: none can be confirmed (a revoked key or an emptied balance
/// may not have arrived). The trade-off is availability: a control plane
/// outage longer than the limit stops all traffic, so it is off by default.
#[derive(Debug, Clone)]
pub struct Freshness {
    stats: Arc<AgentStats>,
    max_age_ms: u64,
}

impl Freshness {
    /// The limit `max_age` over the agent's confirmations.
    pub fn new(stats: Arc<AgentStats>, max_age: Duration) -> Freshness {
        Freshness {
            stats,
            max_age_ms: max_age.as_millis() as u64,
        }
    }

    /// Whether, at unix ms `now_ms`, the snapshot was last confirmed longer ago than the limit.
    pub fn stale(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.stats.confirmed_ms.load(Ordering::Relaxed)) > self.max_age_ms
    }
}

/// The agent before [`Agent::spawn`]: enrolled, spool opened, first snapshot loaded.
pub struct Agent {
    id: String,
    endpoint: Arc<Endpoint>,
    roots: Option<ureq::tls::RootCerts>,
    token: Arc<Zeroizing<String>>,
    seal: Arc<SealKey>,
    mac: Arc<SnapshotMac>,
    spool_dir: PathBuf,
    spool: spool::Spool,
    seqs: spool::Seqs,
    stats: Arc<AgentStats>,
    version: u64,
    poll: Client,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("id", &self.id)
            .field("control", &self.endpoint.authority)
            .field("spool_dir", &self.spool_dir)
            .field("version", &self.version)
            .finish()
    }
}

impl Agent {
    /// Blocking, once, before the workers start: enrolls, opens the spool, and
    /// fetches the current snapshot from control (`after=0`, 5 s limit). If
    /// control is unreachable or its snapshot does not compile, the cached one
    /// in `spool_dir` is used; with neither, [`AgentError::NoSnapshot`].
    pub fn bootstrap(cfg: AgentConfig) -> Result<(Agent, Index), AgentError> {
        let enrollment = token::Enrollment::parse(&cfg.token).ok_or(AgentError::BadToken)?;
        let endpoint = Arc::new(Endpoint::parse(&cfg.control_url).map_err(AgentError::BadUrl)?);
        plaintext_check(&endpoint, cfg.insecure_plaintext)?;
        let roots = match endpoint.tls {
            true => Some(http::roots(cfg.ca_file.as_deref()).map_err(AgentError::Tls)?),
            false => None,
        };
        let seal = Arc::new(enrollment.seal_key().map_err(AgentError::Crypto)?);
        let mac = Arc::new(enrollment.snapshot_mac().map_err(AgentError::Crypto)?);
        private_dir(&cfg.spool_dir)?;
        let (spool, max_seq) = spool::Spool::open(&cfg.spool_dir)?;
        let seqs = spool::Seqs::open(&cfg.spool_dir, max_seq.saturating_add(1))?;
        let stats = Arc::new(AgentStats::default());
        stats.spool_pending.store(spool.pending(), Ordering::Relaxed);
        if spool.pending() > 0 {
            tracing::info!(
                records = spool.pending(),
                "agent: spooled records will be replayed"
            );
        }

        let mut poll = Client::new(&endpoint, roots.clone(), &enrollment.token(), CONNECT_TIMEOUT);
        let fresh = snapshots::bootstrap_fetch(&mut poll, &seal, &mac, &cfg.spool_dir, &stats);
        let index = match fresh {
            Ok(index) => index,
            Err(reason) => {
                tracing::warn!(control = %endpoint.authority, reason = %reason, "agent: serving the cached snapshot");
                let index = snapshots::load_cache(&cfg.spool_dir, &seal, &mac)
                    .map_err(|cache| AgentError::NoSnapshot(format!("control: {reason}; cache: {cache}")))?;
                // Confirmed no later than when it was cached.
                let cached_at = std::fs::metadata(cfg.spool_dir.join(SNAPSHOT_CACHE_FILE))
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_millis() as u64);
                stats.confirmed_ms.store(cached_at, Ordering::Relaxed);
                index
            }
        };
        stats.snapshot_version.store(index.version, Ordering::Relaxed);
        tracing::info!(
            dataplane = enrollment.id(),
            version = index.version,
            "agent: snapshot loaded"
        );
        let agent = Agent {
            id: enrollment.id().to_string(),
            endpoint,
            roots,
            token: enrollment.token(),
            seal,
            mac,
            spool_dir: cfg.spool_dir,
            spool,
            seqs,
            stats,
            version: index.version,
            poll,
        };
        Ok((agent, index))
    }

    /// The agent's counters; take them before [`Agent::spawn`].
    pub fn stats(&self) -> Arc<AgentStats> {
        self.stats.clone()
    }

    /// The data plane id from the enrollment token.
    pub fn dataplane_id(&self) -> &str {
        &self.id
    }

    /// Starts the agent's threads: the snapshot long poll publishing into
    /// `cell`, and the record shipper draining `records`. When every sender of
    /// `records` is gone, the shipper ships or spools (fsynced) everything
    /// still queued, stops the snapshot thread, and ends; the returned handle
    /// is the shipper's.
    pub fn spawn(self, cell: Arc<SnapshotCell>, records: RecordRx) -> std::io::Result<JoinHandle<()>> {
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
        let poller = snapshots::Poller::new(
            self.poll,
            (self.seal, self.mac),
            self.spool_dir,
            self.stats.clone(),
            self.version,
            cell,
            stop_rx,
        );
        let join = std::thread::Builder::new()
            .name("sluice-agent-snap".into())
            .spawn(move || {
                poller.run();
                drop(done_tx);
            })?;
        let poller = snapshots::PollerHandle::new(stop_tx, done_rx, join);
        let client = Client::new(&self.endpoint, self.roots, &self.token, CONNECT_TIMEOUT);
        let shipper = records::Shipper::new(client, records, self.spool, self.seqs, self.stats);
        // If this spawn fails, dropping the closure drops `poller`, which stops it.
        std::thread::Builder::new()
            .name("sluice-agent".into())
            .spawn(move || shipper.run(poller))
    }
}

/// Creates `dir` (and missing parents) with mode 0700 from the start, so it
/// is never open to others, not even for a moment. An existing directory
/// that group or others may enter is narrowed to 0700 when it is ours and
/// not a shared one (sticky, like /tmp); otherwise it is refused.
pub fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = std::fs::metadata(dir)?;
    let mode = meta.permissions().mode();
    if mode & 0o077 == 0 {
        return Ok(());
    }
    // /proc/self belongs to this process's effective user.
    let ours = std::fs::metadata("/proc/self").is_ok_and(|me| me.uid() == meta.uid());
    if !ours || mode & 0o1000 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "mode {:o} lets others in, and it is shared or not ours to narrow; give the data plane a private directory",
                mode & 0o7777
            ),
        ));
    }
    tracing::warn!(dir = %dir.display(), mode = format!("{:o}", mode & 0o777), "narrowing the spool directory to 0700");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Reads the enrollment token file, trimmed. Refuses a file that group or
/// others may read: the token is the data plane's credential and the secret
/// its provider keys are sealed to.
pub fn read_token_file(path: &std::path::Path) -> Result<Zeroizing<String>, String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{}: mode {:o} lets other users read the enrollment token; run `chmod 600 {}` \
             (`sluice-control dataplane enroll ID --out FILE` writes it 0600)",
            path.display(),
            mode & 0o777,
            path.display()
        ));
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?);
    Ok(Zeroizing::new(text.trim().to_owned()))
}

/// Refuses plain `http://` to a host that is not this machine unless asked
/// for; warns (at every start) when it is asked for. Runs before any name
/// look-up or connection.
fn plaintext_check(endpoint: &Endpoint, insecure_plaintext: bool) -> Result<(), AgentError> {
    if endpoint.tls || endpoint.is_loopback() {
        return Ok(());
    }
    if !insecure_plaintext {
        return Err(AgentError::Plaintext(format!(
            "refusing plain http:// to {}: it is not this machine, and the bearer token would cross the \
             network in the clear; use https:// (with --ca-file for a private CA), or pass \
             --insecure-plaintext on a network you trust",
            endpoint.authority
        )));
    }
    tracing::warn!(
        control = %endpoint.authority,
        "INSECURE: plain http:// to a remote control plane (--insecure-plaintext): the bearer token crosses the network in the clear"
    );
    Ok(())
}

/// Retry delay state shared by both loops' logic.
#[derive(Debug, Clone, Copy)]
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Backoff(BACKOFF_MIN)
    }

    /// The delay to wait now; the next one is doubled.
    fn next(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(BACKOFF_MAX);
        d
    }

    fn reset(&mut self) {
        self.0 = BACKOFF_MIN;
    }
}

#[cfg(test)]
mod tests;
