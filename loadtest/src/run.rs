//! `sluice-loadtest run`: open- or closed-loop, streaming-aware HTTP load.
//!
//! Thread-per-core: each worker is a thread with its own monoio runtime, its
//! own slice of the arrival schedule and its own keep-alive connections;
//! their histograms are added up at the end. Latencies are measured from
//! each request's intended start (see [`stats`]). Metric definitions and the
//! JSON schema: `loadtest/LOADTEST.md` and [`report`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

mod cancel;
mod chunked;
mod client;
mod h2client;
mod http;
mod pace;
pub(crate) mod procstat;
mod progress;
pub(crate) mod report;
pub(crate) mod request;
mod response;
pub(crate) mod schedule;
mod sse;
pub(crate) mod sse_metrics;
pub(crate) mod stats;
mod worker;

use client::{Clock, Connector};
use report::{ConfigEcho, Report, Totals};
use request::{Api, RequestSpec, Requests, Target};
use schedule::Arrivals;
pub(crate) use worker::Load;
use worker::{Live, Plan};

/// Arguments of `sluice-loadtest run`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct RunArgs {
    /// Base URL: `http[s]://host:port`, optionally with a path prefix (a
    /// trailing `/v1` is accepted and ignored).
    #[arg(long)]
    pub(crate) url: String,
    /// API key; repeat to spread requests round-robin over several tenants.
    #[arg(long = "api-key", required = true)]
    pub(crate) api_keys: Vec<String>,
    /// API shape of the requests.
    #[arg(long, value_enum, default_value = "openai")]
    pub(crate) api: Api,
    /// Model; repeat to spread requests round-robin over several.
    #[arg(long = "model")]
    pub(crate) models: Vec<String>,
    /// A JSON request body to send instead of the generated one (`stream` is
    /// set from `--stream`, `model` from `--model` if given).
    #[arg(long)]
    pub(crate) body_file: Option<PathBuf>,
    /// The user message of the generated body.
    #[arg(long, default_value = "Write a haiku about load testing.")]
    pub(crate) prompt: String,
    /// `max_tokens` of the generated body.
    #[arg(long, default_value_t = 128)]
    pub(crate) max_tokens: u64,
    /// Extra request header `name: value` (repeatable), e.g. `x-mock-tokens: 50`.
    #[arg(long = "header")]
    pub(crate) headers: Vec<String>,
    /// Ask for a streamed (SSE) response.
    #[arg(long)]
    pub(crate) stream: bool,
    /// Open loop: requests per second, started on schedule whatever the
    /// responses do.
    #[arg(long, conflicts_with = "concurrency")]
    pub(crate) rate: Option<f64>,
    /// Open-loop arrival process.
    #[arg(long, value_enum, default_value = "constant")]
    pub(crate) arrivals: Arrivals,
    /// Seed of the Poisson schedule (same seed, same schedule).
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Closed loop: this many concurrent users, each sending its next
    /// request when its last one ends.
    #[arg(long)]
    pub(crate) concurrency: Option<usize>,
    /// Closed loop: start the users spread evenly over this long.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub(crate) ramp: Duration,
    /// Open loop: most requests in flight; a request due beyond it is not
    /// sent and counts as an `overload` error.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) max_inflight: usize,
    /// How long to issue requests (e.g. 10s, 500ms, 1m).
    #[arg(long, value_parser = parse_duration)]
    pub(crate) duration: Option<Duration>,
    /// How many requests to issue in all.
    #[arg(long)]
    pub(crate) requests: Option<u64>,
    /// Per-request limit, from sending to the end of the response.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub(crate) timeout: Duration,
    /// After the last request is issued, how long to wait for those in
    /// flight (default: --timeout); the rest count as `timeout`.
    #[arg(long, value_parser = parse_duration)]
    pub(crate) drain_timeout: Option<Duration>,
    /// Load workers (threads, each with its own runtime); default: one per core.
    #[arg(long)]
    pub(crate) workers: Option<usize>,
    /// Pin worker N to core N.
    #[arg(long)]
    pub(crate) pin: bool,
    /// Pace with the 1 ms timer wheel only (no helper thread): cheaper, but
    /// requests start up to 1 ms after their slot.
    #[arg(long)]
    pub(crate) coarse_timer: bool,
    /// PEM file of CA certificates to trust for https (instead of the system's).
    #[arg(long, visible_alias = "tls-ca")]
    pub(crate) ca_file: Option<PathBuf>,
    /// Speak HTTP/2: by ALPN over https, with prior knowledge over http.
    /// Each connection carries one request at a time, as with HTTP/1.1.
    #[arg(long)]
    pub(crate) http2: bool,
    /// Write the report as JSON to this file.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Exit with status 1 if any request failed.
    #[arg(long)]
    pub(crate) fail_on_error: bool,
    /// No progress line.
    #[arg(long, short)]
    pub(crate) quiet: bool,
}

/// Parses `10s`, `500ms`, `1m`, `1.5h`, `250us`; a bare number is seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1e3,
        "us" | "µs" => n / 1e6,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?} (use us, ms, s, m or h)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("bad duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A checked, ready-to-run configuration (also built by `compare`).
#[derive(Clone, Debug)]
pub(crate) struct RunConfig {
    pub(crate) url: String,
    pub(crate) spec: RequestSpec,
    pub(crate) load: Load,
    pub(crate) duration: Option<Duration>,
    pub(crate) requests: Option<u64>,
    pub(crate) max_inflight: usize,
    pub(crate) timeout: Duration,
    pub(crate) drain: Duration,
    pub(crate) workers: usize,
    pub(crate) pin: bool,
    pub(crate) precise: bool,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) http2: bool,
}

impl RunConfig {
    pub(crate) fn from_args(a: &RunArgs) -> anyhow::Result<Self> {
        let load = match (a.rate, a.concurrency) {
            (Some(rate), None) if rate > 0.0 && rate.is_finite() => Load::Open {
                rate,
                arrivals: a.arrivals,
                seed: a.seed,
            },
            (None, Some(c)) if c > 0 => Load::Closed {
                concurrency: c,
                ramp: a.ramp,
            },
            (None, None) => bail!("give --rate R (open loop) or --concurrency C (closed loop)"),
            _ => bail!("--rate must be > 0, --concurrency ≥ 1, and not both"),
        };
        if a.duration.is_none() && a.requests.is_none() {
            bail!("give --duration D and/or --requests N: every run is bounded");
        }
        let body = match &a.body_file {
            Some(f) => {
                let text = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
                Some(serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", f.display()))?)
            }
            None => None,
        };
        let headers = a
            .headers
            .iter()
            .map(|h| request::parse_header(h))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            url: a.url.clone(),
            spec: RequestSpec {
                api: Some(a.api),
                stream: a.stream,
                api_keys: a.api_keys.clone(),
                models: a.models.clone(),
                body,
                prompt: a.prompt.clone(),
                max_tokens: a.max_tokens,
                headers,
            },
            load,
            duration: a.duration,
            requests: a.requests,
            max_inflight: a.max_inflight.max(1),
            timeout: a.timeout,
            drain: a.drain_timeout.unwrap_or(a.timeout),
            workers: a.workers.unwrap_or_else(default_workers).max(1),
            pin: a.pin,
            precise: !a.coarse_timer,
            ca_file: a.ca_file.clone(),
            http2: a.http2,
        })
    }

    fn api(&self) -> Api {
        self.spec.api.unwrap_or(Api::Openai)
    }

    /// The settings as echoed in the report.
    pub(crate) fn echo(&self) -> ConfigEcho {
        let (mode, rate, arrivals, concurrency) = match &self.load {
            Load::Open { rate, arrivals, .. } => ("open", Some(*rate), Some(*arrivals), None),
            Load::Closed { concurrency, .. } => ("closed", None, None, Some(*concurrency as u64)),
        };
        let secret = |n: &str| {
            ["authorization", "x-api-key", "cookie"]
                .iter()
                .any(|s| n.eq_ignore_ascii_case(s))
        };
        ConfigEcho {
            url: self.url.clone(),
            api: self.api(),
            stream: self.spec.stream,
            mode: mode.into(),
            rate,
            arrivals,
            concurrency,
            duration_s: self.duration.map(|d| d.as_secs_f64()),
            requests: self.requests,
            workers: self.workers as u64,
            max_inflight: self.max_inflight as u64,
            timeout_s: self.timeout.as_secs_f64(),
            models: self.spec.models.clone(),
            api_keys: self.spec.api_keys.len() as u64,
            headers: self
                .spec
                .headers
                .iter()
                .map(|(n, v)| {
                    if secret(n) {
                        format!("{n}: <redacted>")
                    } else {
                        format!("{n}: {v}")
                    }
                })
                .collect(),
        }
    }
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs the load and returns what it measured. `progress`: print a line
/// every second on stderr.
pub(crate) fn execute(cfg: &RunConfig, progress: bool) -> anyhow::Result<Totals> {
    let target = Target::parse(&cfg.url)?;
    let addrs = target.resolve()?;
    // Fail fast, before any load, if nothing listens there.
    std::net::TcpStream::connect_timeout(&addrs[0], Duration::from_secs(5))
        .with_context(|| format!("cannot connect to {} ({})", cfg.url, addrs[0]))?;
    let tls = if target.tls {
        Some(client::tls_config(cfg.ca_file.as_deref(), cfg.http2)?)
    } else {
        None
    };
    let reqs = Arc::new(Requests::build(&target, &cfg.spec)?);
    let cores = if cfg.pin {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    };
    let live = Arc::new(Live::default());
    let (tx, rx) = crossbeam_channel::unbounded();
    let cpu0 = procstat::cpu_seconds(None).unwrap_or(0.0);
    let clock = Clock(Instant::now());
    let target2 = target.clone();
    let http2 = cfg.http2;
    let connector: Arc<dyn Fn() -> anyhow::Result<Connector> + Send + Sync> =
        Arc::new(move || Connector::new(&target2, addrs.clone(), tls.clone(), http2));
    let mut handles = Vec::with_capacity(cfg.workers);
    for index in 0..cfg.workers {
        let plan = Plan {
            index,
            workers: cfg.workers,
            load: cfg.load.clone(),
            duration: cfg.duration,
            requests: cfg.requests,
            max_inflight: cfg.max_inflight.div_ceil(cfg.workers),
            timeout: cfg.timeout,
            drain: cfg.drain,
            api: cfg.api(),
            stream: cfg.spec.stream,
            reqs: reqs.clone(),
            connector: connector.clone(),
            clock,
            precise: cfg.precise,
            pin: cores.get(index % cores.len().max(1)).copied(),
            live: live.clone(),
            tx: tx.clone(),
        };
        handles.push(worker::spawn(plan).context("starting a worker thread")?);
    }
    drop(tx);
    let done = progress::collect(&rx, cfg.workers, &live, clock, progress);
    for h in handles {
        let _ = h.join();
    }
    let done = done?;
    let cpu_s = procstat::cpu_seconds(None).unwrap_or(0.0) - cpu0;
    let mut totals = Totals {
        cpu_s,
        ..Default::default()
    };
    let mut dispatch_end_ns = 0;
    for d in &done {
        totals.stats.merge(&d.stats);
        dispatch_end_ns = dispatch_end_ns.max(d.dispatch_end_ns);
    }
    totals.window_s = match (&cfg.load, cfg.duration) {
        // The schedule's own span, not when the dispatcher happened to finish.
        (Load::Open { .. }, Some(d)) => d.as_secs_f64(),
        (Load::Open { rate, .. }, None) => cfg.requests.unwrap_or(0) as f64 / rate,
        (Load::Closed { .. }, _) => dispatch_end_ns as f64 / 1e9,
    };
    totals.elapsed_s = (totals.stats.last_end_ns.max(dispatch_end_ns)) as f64 / 1e9;
    Ok(totals)
}

/// Entry point of `sluice-loadtest run`.
pub(crate) fn main(args: RunArgs) -> anyhow::Result<()> {
    let cfg = RunConfig::from_args(&args)?;
    let totals = execute(&cfg, !args.quiet)?;
    let report = Report::new(cfg.echo(), &totals);
    print!("{}", report.table());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if args.fail_on_error && report.requests.errors > 0 {
        bail!(
            "{} of {} requests failed",
            report.requests.errors,
            report.requests.sent
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("s").is_err());
    }
}
