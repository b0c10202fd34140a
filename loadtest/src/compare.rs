//! `sluice-loadtest compare`: the same workload against the mock directly,
//! Sluice in front of it and nginx in front of it, in one run.
//!
//! It starts everything on loopback (the mock: this binary; Sluice: the
//! `sluice-dataplane` next to it, standalone mode with a generated snapshot;
//! nginx: a config rendered from `benches/nginx/nginx.conf.tmpl`) and then,
//! in one of three modes:
//!
//! - latency (default): short rounds, interleaved round-robin (direct,
//!   sluice, nginx, direct, ...), so drift on the machine hits every target
//!   alike; results are added up per target over the rounds;
//! - `--rates 1000,3000,70%`: the latency comparison at each rate in turn
//!   (a percentage is of the lowest highest-sustained rate among the
//!   proxies, found first by a max-rate search), with the added p50 and
//!   p99 of each proxy at every rate in one summary;
//! - `--max-rate-search`: the rate steps up (×`--step`) for every target
//!   until p99 TTFT exceeds `--p99-bound-ms` or errors exceed 0.1%;
//! - `--open-streams N`: N streams held open (closed loop, one token a
//!   second), sampling each server's RSS.
//!
//! Nothing is pinned: the load, the mock and the proxies share the cores
//! under the kernel's scheduler (see `loadtest/LOADTEST.md`).
//!
//! With `--tls`, Sluice and nginx serve their clients over TLS (HTTP/1.1,
//! a throwaway self-signed certificate for `localhost` that the load tester
//! trusts); the mock, and so the direct target, stays plain.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::run::parse_duration;
use crate::run::schedule::Arrivals;

mod cert;
mod nginx;
mod output;
mod procs;
mod rounds;
mod streams;

/// Which servers to measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Which {
    /// The mock, directly.
    Direct,
    /// Sluice in front of the mock.
    Sluice,
    /// nginx in front of the mock.
    Nginx,
}

/// Arguments of `sluice-loadtest compare`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct CompareArgs {
    /// Requests per second (open loop), the same for every target.
    #[arg(long, default_value_t = 1000.0)]
    pub(crate) rate: f64,
    /// Open-loop arrival process.
    #[arg(long, value_enum, default_value = "constant")]
    pub(crate) arrivals: Arrivals,
    /// Length of one round against one target.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub(crate) duration: Duration,
    /// The API the load speaks (the snapshot routes each API's default
    /// model: `gpt-4o-mini` for OpenAI chat and Responses,
    /// `claude-3-5-haiku-latest`, `gemini-2.5-flash` to a Gemini upstream).
    #[arg(long, value_enum, default_value = "openai")]
    pub(crate) api: crate::run::request::Api,
    /// Rounds; each visits every target once, in turn.
    #[arg(long, default_value_t = 5)]
    pub(crate) rounds: usize,
    /// Unmeasured warm-up against each target before the rounds.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub(crate) warmup: Duration,
    /// Output tokens per response (sent as `x-mock-tokens`).
    #[arg(long, default_value_t = 50)]
    pub(crate) tokens: u64,
    /// Mock delay before the first token, ms (`x-mock-ttft-ms`).
    #[arg(long, default_value_t = 0)]
    pub(crate) ttft_ms: u64,
    /// Mock delay between tokens, ms (`x-mock-itl-ms`).
    #[arg(long, default_value_t = 0)]
    pub(crate) itl_ms: u64,
    /// Ask for non-streamed responses (streaming is the default).
    #[arg(long)]
    pub(crate) no_stream: bool,
    /// Worker threads/processes of each server (Sluice, nginx).
    #[arg(long, default_value_t = 1)]
    pub(crate) workers: usize,
    /// Worker threads of the mock (default: --workers).
    #[arg(long)]
    pub(crate) mock_workers: Option<usize>,
    /// Worker threads of the load generator.
    #[arg(long, default_value_t = 1)]
    pub(crate) load_workers: usize,
    /// Targets to measure, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "direct,sluice,nginx"
    )]
    pub(crate) targets: Vec<Which>,
    /// Run Sluice twice: on io_uring and on epoll (MONOIO_FORCE_LEGACY_DRIVER=1).
    #[arg(long)]
    pub(crate) drivers: bool,
    /// Compare latency at each of these rates instead of at --rate: req/s,
    /// or a percentage of the highest rate every proxy sustains (searched
    /// first), e.g. `1000,3000,70%`.
    #[arg(long, value_delimiter = ',', value_parser = parse_rate, conflicts_with_all = ["open_streams", "max_rate_search"])]
    pub(crate) rates: Vec<RateSpec>,
    /// Find each target's highest sustained rate instead of comparing at --rate.
    #[arg(long, conflicts_with = "open_streams")]
    pub(crate) max_rate_search: bool,
    /// Max-rate search: the p99 TTFT (e2e if not streamed) a sustained rate must stay under.
    #[arg(long, default_value_t = 50.0)]
    pub(crate) p99_bound_ms: f64,
    /// Max-rate search: the first rate tried.
    #[arg(long, default_value_t = 1000.0)]
    pub(crate) start_rate: f64,
    /// Max-rate search: the factor from one rate to the next.
    #[arg(long, default_value_t = 1.25)]
    pub(crate) step: f64,
    /// Max-rate search: bisection steps between the last rate sustained and
    /// the first that was not.
    #[arg(long, default_value_t = 2)]
    pub(crate) refine: usize,
    /// Max-rate search: stop here even if every target keeps up.
    #[arg(long, default_value_t = 200_000.0)]
    pub(crate) max_rate: f64,
    /// Hold this many streams open (the mock sends one token a second) and
    /// sample each server's memory. The fd limit here (20,000 per process,
    /// two per proxied stream) makes ~9,500 the most a proxy can hold.
    #[arg(long)]
    pub(crate) open_streams: Option<usize>,
    /// Open streams: how long to hold them once all are open.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub(crate) hold: Duration,
    /// Open streams: spread the opening over this long.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub(crate) ramp: Duration,
    /// The sluice-dataplane binary (default: next to this one).
    #[arg(long)]
    pub(crate) sluice: Option<PathBuf>,
    /// The nginx binary (default: from PATH or /usr/sbin).
    #[arg(long)]
    pub(crate) nginx: Option<PathBuf>,
    /// Install nginx-light with apt-get if nginx is missing.
    #[arg(long)]
    pub(crate) install_nginx: bool,
    /// Write the results as JSON to this file.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Keep the temporary directory (configs, logs, records) for inspection.
    #[arg(long)]
    pub(crate) keep_dir: bool,
    /// Sluice and nginx serve clients over TLS (the mock stays plain).
    #[arg(long)]
    pub(crate) tls: bool,
}

/// A rate of `--rates`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum RateSpec {
    /// Requests per second.
    Fixed(f64),
    /// This fraction of the highest rate every proxy sustains.
    OfMax(f64),
}

impl RateSpec {
    /// The rate in req/s, given the highest rate every proxy sustains.
    pub(crate) fn resolve(self, max: Option<f64>) -> Option<f64> {
        match self {
            RateSpec::Fixed(r) => Some(r),
            RateSpec::OfMax(f) => max.map(|m| (m * f).round()),
        }
    }
}

fn parse_rate(s: &str) -> Result<RateSpec, String> {
    let bad = || {
        format!("{s:?}: expected req/s (e.g. 3000) or a percentage of the highest sustained rate (e.g. 70%)")
    };
    match s.trim().strip_suffix('%') {
        Some(p) => {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            if p > 0.0 && p <= 100.0 {
                Ok(RateSpec::OfMax(p / 100.0))
            } else {
                Err(bad())
            }
        }
        None => {
            let r: f64 = s.trim().parse().map_err(|_| bad())?;
            if r > 0.0 && r.is_finite() {
                Ok(RateSpec::Fixed(r))
            } else {
                Err(bad())
            }
        }
    }
}

/// One measured target: where the load goes and the proxy process, if any.
pub(crate) struct Side {
    pub(crate) name: String,
    pub(crate) url: String,
    pub(crate) key: String,
    pub(crate) proxy: Option<procs::Server>,
    /// The certificate the load tester trusts for this side (`--tls`).
    pub(crate) ca_file: Option<PathBuf>,
}

/// Entry point of `sluice-loadtest compare`.
pub(crate) fn main(args: CompareArgs) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("sluice-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = compare(&args, &dir);
    if args.keep_dir {
        eprintln!("configs and logs kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn compare(args: &CompareArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    let mut mock = procs::start_mock(args.mock_workers.unwrap_or(args.workers), dir)?;
    let tls = if args.tls { Some(cert::make(dir)?) } else { None };
    let ca_file = tls.as_ref().map(|t| t.cert.clone());
    let mut sides = Vec::new();
    let want = |w: Which| args.targets.contains(&w);
    if want(Which::Direct) {
        sides.push(Side {
            name: "direct".into(),
            url: mock.url.clone(),
            key: "sk-direct".into(),
            proxy: None,
            ca_file: None,
        });
    }
    if want(Which::Sluice) {
        let bin = procs::sluice_bin(args.sluice.as_deref())?;
        let drivers: &[bool] = if args.drivers { &[false, true] } else { &[false] };
        for &epoll in drivers {
            let s = procs::start_sluice(&bin, &mock.url, args.workers, dir, epoll, tls.as_ref())?;
            sides.push(Side {
                name: s.name.clone(),
                url: s.url.clone(),
                key: procs::GATEWAY_KEY.into(),
                proxy: Some(s),
                ca_file: ca_file.clone(),
            });
        }
    }
    if want(Which::Nginx) {
        if let Some(bin) = procs::find_nginx(args.nginx.as_deref(), args.install_nginx)? {
            let s = procs::start_nginx(&bin, &mock.url, args.workers, dir, tls.as_ref())?;
            sides.push(Side {
                name: "nginx".into(),
                url: s.url.clone(),
                key: "sk-direct".into(),
                proxy: Some(s),
                ca_file: ca_file.clone(),
            });
        }
    }
    if sides.is_empty() {
        anyhow::bail!("no target to measure");
    }
    eprintln!(
        "targets: {} (mock at {}; load workers {}, server workers {}; nothing pinned)",
        sides
            .iter()
            .map(|s| format!("{} {}", s.name, s.url))
            .collect::<Vec<_>>()
            .join(", "),
        mock.url,
        args.load_workers,
        args.workers
    );
    if !args.rates.is_empty() {
        let out = rounds::at_rates(args, &mut sides, &mut mock)?;
        print!("{}", out.table());
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_string_pretty(&out)? + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
        }
        return Ok(());
    }
    let out = if let Some(n) = args.open_streams {
        streams::run(args, &mut sides, &mut mock, n)?
    } else if args.max_rate_search {
        rounds::search(args, &mut sides, &mut mock)?
    } else {
        rounds::latency(args, &mut sides, &mut mock)?
    };
    print!("{}", out.table());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&out)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("3000"), Ok(RateSpec::Fixed(3000.0)));
        assert_eq!(parse_rate(" 70% "), Ok(RateSpec::OfMax(0.7)));
        for bad in ["", "0", "-5", "x", "0%", "150%", "inf"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(RateSpec::OfMax(0.7).resolve(Some(10_000.0)), Some(7000.0));
        assert_eq!(RateSpec::OfMax(0.7).resolve(None), None);
        assert_eq!(RateSpec::Fixed(1000.0).resolve(None), Some(1000.0));
    }
}
