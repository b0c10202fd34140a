//! `sluice-dataplane`: the Sluice data plane binary.
//!
//! Standalone: `--snapshot FILE` (TOML) and `--records FILE` (JSON lines);
//! SIGHUP reloads the snapshot. With a control plane: `--control URL
//! --token-file F --spool-dir DIR`. SIGTERM or SIGINT: stop accepting, let
//! requests in flight finish within the grace period, flush records, exit.
//! With `--listen-tls ADDR --tls-cert FILE --tls-key FILE` (pairs repeat,
//! one per certificate, chosen by SNI), a TLS listener runs beside the plain
//! one; SIGHUP also reloads its certificate files.

use clap::Parser;
use sluice_contract::snapshot::{Index, KeyMaterial, Snapshot};
use sluice_dataplane::agent::{Agent, AgentConfig};
use sluice_dataplane::config::{FileConfig, Limits};
use sluice_dataplane::current::{self, SnapshotCell};
use sluice_dataplane::metrics::Metrics;
use sluice_dataplane::server::certs::{CertPair, Ingress};
use sluice_dataplane::server::{self, admin, ServerConfig, TlsListen};
use sluice_dataplane::sink;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// Exit status for bad configuration (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

#[derive(Parser, Debug)]
#[command(
    name = "sluice-dataplane",
    version,
    about = "Sluice data plane: thread-per-core LLM API gateway"
)]
struct Args {
    /// TOML file with any of these options (flags win).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Client listener [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<String>,
    /// TLS client listener (needs --tls-cert and --tls-key).
    #[arg(long)]
    listen_tls: Option<String>,
    /// Certificate chain (PEM, leaf first) for the TLS listener; repeat it,
    /// each with its --tls-key, for more names (picked by SNI; the first
    /// pair serves a name no certificate has).
    #[arg(long)]
    tls_cert: Vec<PathBuf>,
    /// Private key (PEM) of the --tls-cert at the same position.
    #[arg(long)]
    tls_key: Vec<PathBuf>,
    /// Time allowed for a client's TLS handshake, ms.
    #[arg(long)]
    tls_handshake_timeout_ms: Option<u64>,
    /// Admin listener for /metrics and /healthz [default: 127.0.0.1:9090].
    #[arg(long)]
    admin: Option<String>,
    /// Worker threads [default: the cores available].
    #[arg(long)]
    workers: Option<usize>,
    /// Standalone mode: snapshot file (TOML).
    #[arg(long)]
    snapshot: Option<PathBuf>,
    /// Standalone mode: append records here as JSON lines [default: sluice-records.jsonl].
    #[arg(long)]
    records: Option<PathBuf>,
    /// Control plane sync URL.
    #[arg(long)]
    control: Option<String>,
    /// File holding this data plane's enrollment token (mode 0600: a file
    /// that group or others may read is refused).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Allow a plain http:// control URL whose host is not this machine
    /// (the bearer token then crosses the network in the clear; warned at
    /// every start). Without it, such a URL is refused.
    #[arg(long)]
    insecure_plaintext: bool,
    /// Refuse every tenant (503) once control has not confirmed the snapshot
    /// for this many seconds (a partition). Off by default: a longer control
    /// outage then stops all traffic, in exchange for never serving a revoked
    /// key or a spent balance longer than this.
    #[arg(long)]
    max_snapshot_age_secs: Option<u64>,
    /// Directory for the record spool and the snapshot cache.
    #[arg(long)]
    spool_dir: Option<PathBuf>,
    /// Extra CA certificates (PEM) to trust for upstreams and control.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Do not pin workers to cores.
    #[arg(long)]
    no_pin: bool,
    /// Largest request body, bytes.
    #[arg(long)]
    max_body_bytes: Option<usize>,
    /// Upstream response head timeout, ms.
    #[arg(long)]
    upstream_head_timeout_ms: Option<u64>,
    /// Upstream body idle timeout, ms.
    #[arg(long)]
    upstream_idle_timeout_ms: Option<u64>,
    /// Upstream connect timeout, ms.
    #[arg(long)]
    upstream_connect_timeout_ms: Option<u64>,
    /// Longest time a client may take to accept one write of a response, ms.
    #[arg(long)]
    client_write_timeout_ms: Option<u64>,
    /// Grace period for requests in flight at shutdown, ms.
    #[arg(long)]
    shutdown_grace_ms: Option<u64>,
    /// Do not count tokens locally (records keep the provider's usage only).
    #[arg(long)]
    no_token_count: bool,
    /// Export OpenTelemetry traces over OTLP/HTTP (protobuf) to this
    /// collector URL (`/v1/traces` is appended unless given).
    #[arg(long)]
    otlp_endpoint: Option<String>,
    /// Fraction of new traces sampled, 0 to 1 [default: 1]; a client's
    /// `traceparent` sampled flag is followed.
    #[arg(long)]
    trace_sample: Option<f64>,
}

/// Bad configuration: reported in one line, exit 64.
struct ConfigError(String);

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice-dataplane: {}", one_line(&e.0));
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

enum Mode {
    Standalone { snapshot: PathBuf, records: PathBuf },
    Control(AgentConfig, Option<std::time::Duration>),
}

fn run(args: Args) -> Result<(), ConfigError> {
    let file = match &args.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
            toml::from_str::<FileConfig>(&text)
                .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?
        }
        None => FileConfig::default(),
    };
    let mut limits: Limits = file.limits.clone();
    macro_rules! set {
        ($($field:ident),*) => { $( if let Some(v) = args.$field { limits.$field = v; } )* };
    }
    set!(
        max_body_bytes,
        upstream_head_timeout_ms,
        upstream_idle_timeout_ms,
        upstream_connect_timeout_ms,
        client_write_timeout_ms,
        shutdown_grace_ms,
        tls_handshake_timeout_ms
    );
    if args.no_token_count {
        limits.count_tokens = false;
    }

    let listen = parse_addr(
        args.listen.or(file.listen).as_deref().unwrap_or("127.0.0.1:8080"),
        "--listen",
    )?;
    let listen_tls = tls_listen(
        args.listen_tls.or(file.listen_tls),
        if args.tls_cert.is_empty() {
            file.tls_cert
        } else {
            args.tls_cert
        },
        if args.tls_key.is_empty() {
            file.tls_key
        } else {
            args.tls_key
        },
    )?;
    let admin_addr = parse_addr(
        args.admin.or(file.admin).as_deref().unwrap_or("127.0.0.1:9090"),
        "--admin",
    )?;
    let workers = args
        .workers
        .or(file.workers)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let ca_file = args.ca_file.or(file.ca_file);
    if let Some(endpoint) = args.otlp_endpoint.or(file.otlp_endpoint) {
        let ratio = args.trace_sample.or(file.trace_sample).unwrap_or(1.0);
        sluice_dataplane::trace::start(&endpoint, ratio, "sluice-dataplane").map_err(ConfigError)?;
    }
    let mode = match (args.snapshot.or(file.snapshot), args.control.or(file.control)) {
        (Some(snapshot), None) => Mode::Standalone {
            snapshot,
            records: args
                .records
                .or(file.records)
                .unwrap_or_else(|| PathBuf::from("sluice-records.jsonl")),
        },
        (None, Some(control_url)) => {
            let token_file = args
                .token_file
                .or(file.token_file)
                .ok_or_else(|| ConfigError("--control needs --token-file".into()))?;
            let token = sluice_dataplane::agent::read_token_file(&token_file).map_err(ConfigError)?;
            let spool_dir = args
                .spool_dir
                .or(file.spool_dir)
                .ok_or_else(|| ConfigError("--control needs --spool-dir".into()))?;
            sluice_dataplane::agent::private_dir(&spool_dir)
                .map_err(|e| ConfigError(format!("{}: {e}", spool_dir.display())))?;
            Mode::Control(
                AgentConfig {
                    control_url,
                    token,
                    spool_dir,
                    ca_file: ca_file.clone(),
                    insecure_plaintext: args.insecure_plaintext || file.insecure_plaintext,
                },
                args.max_snapshot_age_secs
                    .or(file.max_snapshot_age_secs)
                    .map(std::time::Duration::from_secs),
            )
        }
        (Some(_), Some(_)) => {
            return Err(ConfigError(
                "give either --snapshot or --control, not both".into(),
            ))
        }
        (None, None) => {
            return Err(ConfigError(
                "give --snapshot FILE (standalone) or --control URL".into(),
            ))
        }
    };

    raise_fd_limit();
    // Build the tokenizer tables now rather than on a worker's first request.
    let tokenizer_start = std::time::Instant::now();
    if limits.count_tokens {
        sluice_contract::policy::tokens::warm_up();
    }
    tracing::debug!(
        ms = tokenizer_start.elapsed().as_millis() as u64,
        "tokenizers ready"
    );
    let tls = sluice_dataplane::upstream::tls::client_config(ca_file.as_deref()).map_err(ConfigError)?;
    let (records_tx, records_rx) = sink::channel(64 * 1024);
    let metrics = Arc::new(Metrics::new(workers));

    type Started = (
        Arc<SnapshotCell>,
        std::thread::JoinHandle<()>,
        admin::Extra,
        Option<PathBuf>,
        Option<sluice_dataplane::agent::Freshness>,
    );
    let (cell, consumer, extra, reload_from, freshness): Started = match mode {
        Mode::Standalone { snapshot, records } => {
            let index = load_snapshot(&snapshot, None).map_err(ConfigError)?;
            let cell = Arc::new(SnapshotCell::with_cache(index, limits.cache_max_bytes));
            let writer = sink::spawn_jsonl_writer(records.clone(), records_rx)
                .map_err(|e| ConfigError(format!("{}: {e}", records.display())))?;
            (cell, writer, Arc::new(String::new), Some(snapshot), None)
        }
        Mode::Control(cfg, max_age) => {
            let (agent, index) = Agent::bootstrap(cfg).map_err(|e| ConfigError(e.to_string()))?;
            let stats = agent.stats();
            let freshness = max_age.map(|age| sluice_dataplane::agent::Freshness::new(stats.clone(), age));
            let cell = Arc::new(SnapshotCell::with_cache(index, limits.cache_max_bytes));
            let handle = agent
                .spawn(cell.clone(), records_rx)
                .map_err(|e| ConfigError(format!("agent thread: {e}")))?;
            let extra: admin::Extra = Arc::new(move || render_agent_stats(&stats));
            (cell, handle, extra, None, freshness)
        }
    };

    let extra: admin::Extra = {
        let cell = cell.clone();
        Arc::new(move || {
            let mut text = extra();
            let cells = cell.current().health_cells();
            let now = sluice_contract::quota::now_ns();
            sluice_dataplane::metrics::render_health(&cells, now, &mut text);
            cell.cache.render(&mut text);
            if let Some(t) = sluice_dataplane::trace::tracer() {
                t.render(&mut text);
            }
            text
        })
    };
    current::spawn_address_refresher(cell.clone(), limits.dns_refresh())
        .map_err(|e| ConfigError(format!("dns refresh thread: {e}")))?;
    let config = ServerConfig {
        listen,
        workers,
        pin: !args.no_pin,
        tls: listen_tls.clone(),
    };
    let server = server::start(
        &config,
        limits,
        cell.clone(),
        metrics.clone(),
        tls,
        records_tx,
        freshness,
    )
    .map_err(|e| ConfigError(format!("listen {listen}: {e}")))?;
    let admin_bound = admin::spawn(admin_addr, metrics, extra)
        .map_err(|e| ConfigError(format!("admin {admin_addr}: {e}")))?;
    tracing::info!(listen = %server.local_addr(), admin = %admin_bound, workers, "sluice data plane serving");
    // Tests and scripts read these two lines to find the ports.
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "listening on http://{}", server.local_addr());
    let _ = writeln!(stdout, "admin on http://{admin_bound}");
    if let Some(tls_addr) = server.tls_addr() {
        tracing::info!(listen_tls = %tls_addr, "TLS listener serving");
        let _ = writeln!(stdout, "tls listening on https://{tls_addr}");
    }
    let _ = stdout.flush();

    let ingress = listen_tls.map(|t| t.ingress);
    wait_for_signals(reload_from.as_deref(), &cell, ingress.as_deref());
    tracing::info!("shutting down: no new connections; finishing requests in flight");
    server.shutdown();
    // Every sender is gone once the workers ended: the consumer drains and stops.
    if consumer.join().is_err() {
        tracing::error!("record consumer thread panicked");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The TLS listener from its flags: an address and as many certificate
/// files as key files, all loadable; or none when no address is given.
fn tls_listen(
    addr: Option<String>,
    certs: Vec<PathBuf>,
    keys: Vec<PathBuf>,
) -> Result<Option<TlsListen>, ConfigError> {
    let Some(addr) = addr else {
        if certs.is_empty() && keys.is_empty() {
            return Ok(None);
        }
        return Err(ConfigError("--tls-cert and --tls-key need --listen-tls".into()));
    };
    let addr = parse_addr(&addr, "--listen-tls")?;
    if certs.len() != keys.len() {
        return Err(ConfigError(format!(
            "--listen-tls: {} --tls-cert but {} --tls-key (give them in pairs)",
            certs.len(),
            keys.len()
        )));
    }
    let pairs = certs
        .into_iter()
        .zip(keys)
        .map(|(cert, key)| CertPair { cert, key })
        .collect();
    let ingress = Ingress::load(pairs).map_err(ConfigError)?;
    Ok(Some(TlsListen {
        addr,
        ingress: Arc::new(ingress),
    }))
}

fn wait_for_signals(reload_from: Option<&Path>, cell: &SnapshotCell, ingress: Option<&Ingress>) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGHUP, SIGINT, SIGTERM]) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install signal handlers; running until killed");
            loop {
                std::thread::park();
            }
        }
    };
    for signal in signals.forever() {
        if let (SIGHUP, Some(ingress)) = (signal, ingress) {
            match ingress.reload() {
                Ok(names) => tracing::info!(names, "TLS certificates reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "TLS certificate reload failed; still serving the previous ones")
                }
            }
        }
        match (signal, reload_from) {
            (SIGHUP, Some(snapshot)) => match load_snapshot(snapshot, Some(&cell.current())) {
                Ok(index) => {
                    tracing::info!(
                        version = index.version,
                        keys = index.key_count(),
                        "snapshot reloaded"
                    );
                    cell.publish(index);
                }
                Err(e) => {
                    tracing::error!(error = %e, "snapshot reload failed; still serving the previous one")
                }
            },
            (SIGHUP, None) => tracing::info!("SIGHUP ignored: snapshots come from the control plane"),
            _ => return,
        }
    }
}

fn render_agent_stats(stats: &sluice_dataplane::agent::AgentStats) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    format!(
        "# HELP sluice_snapshot_version Snapshot version being served.\n# TYPE sluice_snapshot_version gauge\nsluice_snapshot_version {}\n\
         # HELP sluice_records_shipped_total Records acknowledged by the control plane.\n# TYPE sluice_records_shipped_total counter\nsluice_records_shipped_total {}\n\
         # HELP sluice_records_spooled_total Records written to the spool.\n# TYPE sluice_records_spooled_total counter\nsluice_records_spooled_total {}\n\
         # HELP sluice_spool_pending Records in the spool awaiting acknowledgement.\n# TYPE sluice_spool_pending gauge\nsluice_spool_pending {}\n\
         # HELP sluice_control_up Whether the control plane answered the last call.\n# TYPE sluice_control_up gauge\nsluice_control_up {}\n",
        stats.snapshot_version.load(Relaxed),
        stats.records_shipped.load(Relaxed),
        stats.records_spooled.load(Relaxed),
        stats.spool_pending.load(Relaxed),
        u8::from(stats.control_up.load(Relaxed)),
    )
}

/// Loads and compiles a snapshot file; with `prev`, quota state carries over.
fn load_snapshot(path: &Path, prev: Option<&Index>) -> Result<Index, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let snap: Snapshot = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let env = |name: &str| std::env::var(name).ok();
    current::compile(&snap, KeyMaterial::Env(&env), prev).map_err(|e| format!("{}: {e}", path.display()))
}

/// Folds a multi-line message (TOML errors quote the offending source with a
/// caret) into one line: the message lines, without the excerpt.
fn one_line(message: &str) -> String {
    let is_excerpt = |l: &str| {
        l.starts_with('|')
            || l.starts_with('^')
            || l.split_once('|')
                .is_some_and(|(n, _)| n.trim().parse::<u64>().is_ok())
    };
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !is_excerpt(l))
        .collect::<Vec<_>>()
        .join(": ")
}

fn parse_addr(s: &str, flag: &str) -> Result<SocketAddr, ConfigError> {
    s.parse()
        .map_err(|_| ConfigError(format!("{flag}: {s:?} is not an address like 127.0.0.1:8080")))
}

/// Each client stream also holds an upstream socket: take every descriptor
/// the hard limit allows.
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(nofile = n, "file descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the file descriptor limit"),
    }
}
