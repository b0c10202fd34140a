//! `sluice-control serve`: the control process.
//!
//! Opens the store, resolves the master key and the admin token, starts the
//! writer thread and the two listeners, prints `admin listening on ADDR` and
//! `sync listening on ADDR` on stdout, and runs until SIGINT or SIGTERM, when
//! it finishes queued writes and closes the database cleanly.

use crate::app::{App, Notify};
use crate::http::server::{Limits, Servers};
use crate::metrics::Metrics;
use crate::ops::writer::Writer;
use crate::snapshot::Hub;
use crate::store::{OpenError, Store};
use crate::vault::{KekSource, Vault, MASTER_KEY_ENV, MASTER_KEY_FILE};
use crate::{admin_api, secret_file, store, sync_api};
use anyhow::{anyhow, Context};
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Name of the admin token file in the data directory.
pub(crate) const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Options of `serve`.
#[derive(clap::Args, Debug)]
pub(crate) struct ServeArgs {
    /// Data directory (holds control.redb, admin.token and, by default, master.key).
    #[arg(long, env = "SLUICE_DATA")]
    pub(crate) data: PathBuf,
    /// Admin API address (the CLI talks to it; keep it on a trusted address).
    #[arg(long, default_value = "127.0.0.1:7071")]
    pub(crate) admin: String,
    /// Sync API address (data planes poll snapshots and send records here).
    #[arg(long, default_value = "127.0.0.1:7070")]
    pub(crate) sync: String,
    /// Master key file (64 hex digits, mode 0600). Default: $SLUICE_MASTER_KEY,
    /// else DATA/master.key, generated on first start (with a warning at
    /// every start: keep the key away from the data it protects).
    #[arg(long)]
    pub(crate) master_key_file: Option<PathBuf>,
    /// Command whose standard output is the master key (64 hex digits), run
    /// with `sh -c` at start: a secret manager or KMS client.
    #[arg(long, conflicts_with = "master_key_file")]
    pub(crate) master_key_cmd: Option<String>,
    /// PEM certificate chain: serve the admin API over TLS (with
    /// --admin-tls-key); the CLI then takes `--admin https://…` and, for a
    /// private CA, `--admin-ca-file`.
    #[arg(long, requires = "admin_tls_key")]
    pub(crate) admin_tls_cert: Option<PathBuf>,
    /// PEM private key for --admin-tls-cert.
    #[arg(long, requires = "admin_tls_cert")]
    pub(crate) admin_tls_key: Option<PathBuf>,
    /// PEM certificate chain: serve the sync API over TLS (with --tls-key).
    #[arg(long, requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// How long a snapshot poll is held, in seconds.
    #[arg(long, default_value_t = sync_api::LONG_POLL.as_secs(), hide = true)]
    pub(crate) long_poll_secs: u64,
    /// POST low-balance alerts as JSON to this http:// URL (5 s timeout, retried).
    #[arg(long)]
    pub(crate) alert_webhook: Option<String>,
    /// Serve the sync API in plain HTTP on an address that is not loopback
    /// (data planes' bearer tokens then cross the network in the clear;
    /// warned at every start). Without it, give --tls-cert/--tls-key there.
    #[arg(long)]
    pub(crate) insecure_plaintext: bool,
    /// The web console (at /ui on the admin listener) signs a browser out
    /// after this many seconds without a request.
    #[arg(long, default_value_t = 1800)]
    pub(crate) console_idle_secs: u64,
    /// Retention and the clock.
    #[command(flatten)]
    pub(crate) privacy: crate::privacy::ServeOpts,
}

/// Refuses a plain-HTTP sync listener on an address other than loopback
/// unless `--insecure-plaintext` was given, and warns when it was.
pub(crate) fn check_sync_plaintext(
    addr: std::net::SocketAddr,
    tls: bool,
    insecure: bool,
) -> anyhow::Result<()> {
    if tls || addr.ip().to_canonical().is_loopback() {
        return Ok(());
    }
    if !insecure {
        return Err(anyhow!(
            "refusing a plain-HTTP sync API on {addr}: it is not a loopback address, so data planes' \
             bearer tokens would cross the network in the clear; give --tls-cert and --tls-key, or \
             --insecure-plaintext on a network you trust"
        ));
    }
    tracing::warn!(
        %addr,
        "INSECURE: the sync API is plain HTTP on a non-loopback address (--insecure-plaintext)"
    );
    Ok(())
}

/// Creates the data directory (mode 0700) if needed.
pub(crate) fn ensure_data_dir(data: &Path) -> anyhow::Result<()> {
    if !data.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data)
            .with_context(|| format!("creating data directory {}", data.display()))?;
    }
    Ok(())
}

/// Reads the master key from the environment, if set.
pub(crate) fn master_key_env() -> Option<Zeroizing<String>> {
    std::env::var(MASTER_KEY_ENV).ok().map(Zeroizing::new)
}

/// Opens the store and binds the master key to it. A rotation interrupted
/// after its commit (the store verifies with `KEY.new`) is finished here.
pub(crate) fn open(
    data: &Path,
    master_key_file: Option<&Path>,
    master_key_cmd: Option<&str>,
) -> anyhow::Result<(Store, Vault, KekSource)> {
    ensure_data_dir(data)?;
    let store = Store::open(&data.join(store::FILE_NAME))?;
    let (vault, source) = match master_key_cmd {
        Some(cmd) => (
            Vault::from_command(cmd).map_err(|e| anyhow!(e))?,
            KekSource::Command(cmd.to_owned()),
        ),
        None => Vault::load(data, master_key_file, master_key_env()).map_err(|e| anyhow!(e))?,
    };
    match store.bind_master_key(&vault, &source) {
        Ok(()) => Ok((store, vault, source)),
        Err(OpenError::WrongKey(msg)) => {
            let pending = match &source {
                KekSource::File(p) => secret_file::sibling(p, ".new"),
                KekSource::Env | KekSource::Command(_) => {
                    secret_file::sibling(&data.join(MASTER_KEY_FILE), ".new")
                }
            };
            let Ok(new) = Vault::from_file(&pending) else {
                return Err(anyhow!(msg));
            };
            store
                .bind_master_key(&new, &source)
                .map_err(|_| anyhow!(msg.clone()))?;
            let dest = match &source {
                KekSource::File(p) => p.clone(),
                KekSource::Env | KekSource::Command(_) => {
                    return Err(anyhow!("{msg}; {} holds the rotated key", pending.display()))
                }
            };
            std::fs::rename(&pending, &dest)
                .with_context(|| format!("finishing rotation to {}", dest.display()))?;
            secret_file::sync_dir(&dest)?;
            tracing::warn!(key = %dest.display(), "finished an interrupted master key rotation");
            Ok((store, new, source))
        }
        Err(e) => Err(e.into()),
    }
}

fn admin_token(data: &Path) -> anyhow::Result<Zeroizing<String>> {
    let path = data.join(ADMIN_TOKEN_FILE);
    if path.exists() {
        return secret_file::read(&path).map_err(|e| anyhow!(e));
    }
    let raw = sluice_contract::crypto::random_bytes::<32>().map_err(|e| anyhow!(e))?;
    let token = Zeroizing::new(sluice_contract::crypto::hex(&raw[..]));
    secret_file::write_atomic(&path, format!("{}\n", token.as_str()).as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(token)
}

/// Runs the control process until SIGINT or SIGTERM.
pub(crate) fn main(args: ServeArgs) -> anyhow::Result<()> {
    let webhook = args
        .alert_webhook
        .as_deref()
        .map(crate::billing::webhook::Target::parse)
        .transpose()?;
    let (store, vault, source) = open(
        &args.data,
        args.master_key_file.as_deref(),
        args.master_key_cmd.as_deref(),
    )?;
    if Vault::lies_in(&source, &args.data) {
        tracing::warn!(
            key = %source,
            "the master key lies in the data directory, beside control.redb: one copy of the directory \
             (a backup) holds both; keep it elsewhere (--master-key-file), in SLUICE_MASTER_KEY, \
             or behind --master-key-cmd"
        );
    }
    let token = admin_token(&args.data)?;
    let privacy = crate::privacy::startup(&args.privacy, &store, &vault, &token)?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(crate::tls::server_config(c, k)?),
        _ => None,
    };
    let admin_tls = match (&args.admin_tls_cert, &args.admin_tls_key) {
        (Some(c), Some(k)) => Some(crate::tls::server_config(c, k)?),
        _ => None,
    };
    let store = Arc::new(store);
    let hub = Arc::new(Hub::new(store.snapshot_version()?));
    let metrics = Arc::new(Metrics::default());
    let writer = Writer::spawn(
        store.clone(),
        Arc::new(Notify {
            hub: hub.clone(),
            metrics: metrics.clone(),
            privacy: Some(privacy.clone()),
        }),
    )
    .context("starting the writer thread")?;
    let app = Arc::new(App::new(store, writer, vault, hub, metrics, &token));
    drop(token);
    let _ = app.privacy.set(privacy);
    if let Some(target) = webhook {
        crate::billing::webhook::start(&app, target).context("starting the alert webhook thread")?;
    }
    let every = Duration::from_secs(args.privacy.purge_interval_secs.max(1));
    crate::retention::start(app.clone(), every).context("starting the retention thread")?;
    crate::sinks::supervisor::start(app.clone()).context("starting the sinks thread")?;

    let admin =
        TcpListener::bind(&args.admin).with_context(|| format!("binding admin API to {}", args.admin))?;
    let sync = TcpListener::bind(&args.sync).with_context(|| format!("binding sync API to {}", args.sync))?;
    let (admin_addr, sync_addr) = (admin.local_addr()?, sync.local_addr()?);
    check_sync_plaintext(sync_addr, tls.is_some(), args.insecure_plaintext)?;
    if admin_tls.is_none() && !admin_addr.ip().to_canonical().is_loopback() {
        tracing::warn!(
            %admin_addr,
            "INSECURE: the admin API is plain HTTP on a non-loopback address: admin tokens and new data plane \
             tokens cross the network in the clear; give --admin-tls-cert and --admin-tls-key"
        );
    }

    let a = app.clone();
    let admin_limits = Limits {
        max_head: 16 * 1024,
        max_body: admin_api::MAX_BODY,
        idle: Duration::from_secs(30),
        head_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(30),
        max_connections: 64,
        max_per_peer: 16,
    };
    let admin_tls_note = if admin_tls.is_some() { " (TLS)" } else { "" };
    let aa = app.clone();
    // Console sessions live in this process's memory only.
    let cs = Arc::new(crate::console::session::Sessions::new(
        crate::console::session::Config {
            idle_ms: args.console_idle_secs.max(1).saturating_mul(1000),
            secure: admin_tls.is_some(),
        },
    ));
    let ca = cs.clone();
    let servers = Servers::new().context("starting the HTTP runtime")?;
    servers.spawn(
        "admin",
        admin,
        admin_tls,
        admin_limits,
        // The web console shares the admin listener (`/ui`, and the
        // sign-in codes of `POST /v1/console/sign-in`).
        Arc::new(move |req| match crate::console::owns(&req.path) {
            true => crate::console::admit(&aa, &ca, req),
            false => admin_api::admit(&aa, req),
        }),
        Arc::new(move |req| match crate::console::owns(&req.path) {
            true => crate::console::handle(&a, &cs, req),
            false => admin_api::handle(&a, req),
        }),
    )?;
    let s = app.clone();
    let long_poll = Duration::from_secs(args.long_poll_secs);
    let sync_limits = Limits {
        max_head: 16 * 1024,
        max_body: sync_api::MAX_BODY,
        idle: Duration::from_secs(90),
        head_timeout: Duration::from_secs(10),
        // 64 MiB of records at a slow 1 MiB/s, with room.
        body_timeout: Duration::from_secs(120),
        max_connections: 1024,
        // A data plane holds two (its poll and its records); many share a NAT.
        max_per_peer: 128,
    };
    let tls_note = if tls.is_some() { " (TLS)" } else { "" };
    let sa = app.clone();
    servers.spawn(
        "sync",
        sync,
        tls,
        sync_limits,
        Arc::new(move |req| sync_api::admit(&sa, req)),
        Arc::new(move |req| sync_api::handle(&s, req, long_poll)),
    )?;

    let mut out = std::io::stdout().lock();
    writeln!(out, "admin listening on {admin_addr}{admin_tls_note}")?;
    writeln!(out, "sync listening on {sync_addr}{tls_note}")?;
    let scheme = if admin_tls_note.is_empty() {
        "http"
    } else {
        "https"
    };
    out.flush()?;
    // After the two lines callers wait for, and not fatal: a caller that
    // stops reading after them has closed the pipe.
    let _ = writeln!(
        out,
        "console at {scheme}://{admin_addr}{}/",
        crate::console::PREFIX
    )
    .and_then(|()| out.flush());
    drop(out);
    tracing::info!(%admin_addr, %sync_addr, data = %args.data.display(), "control plane serving");

    wait_for_signal()?;
    // Held snapshot polls answer now; requests in flight finish (bounded),
    // then the writer drains and the store closes.
    app.hub.close();
    servers.shutdown(Duration::from_secs(3));
    shutdown(&app);
    Ok(())
}

fn wait_for_signal() -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).context("installing signal handlers")?;
    if let Some(sig) = signals.forever().next() {
        tracing::info!(signal = sig, "shutting down");
    }
    Ok(())
}

/// Stops taking work, lets the writer finish, and closes the store cleanly
/// once in-flight requests have let go of it (bounded wait).
fn shutdown(app: &App) {
    app.hub.close();
    let store = app.take_store();
    app.writer.stop();
    let Some(mut store) = store else { return };
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match Arc::try_unwrap(store) {
            Ok(s) => {
                if let Err(e) = s.close() {
                    tracing::warn!(error = %e, "closing the store");
                }
                return;
            }
            Err(shared) if Instant::now() < deadline => {
                store = shared;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => {
                tracing::warn!("requests still hold the store; exiting without a clean close");
                return;
            }
        }
    }
}
