//! The run report: a JSON document (`--json FILE`) and a human table.
//!
//! JSON schema `sluice-loadtest.run.v1` (all latencies in µs; a latency
//! summary is `null` when nothing was measured; definitions in
//! `loadtest/LOADTEST.md`):
//!
//! ```text
//! {
//!   "schema": "sluice-loadtest.run.v1",
//!   "config": {
//!     "url": str, "api": "openai"|"anthropic", "stream": bool,
//!     "mode": "open"|"closed",
//!     "rate": f64|null, "arrivals": "constant"|"poisson"|null,
//!     "concurrency": u64|null,
//!     "duration_s": f64|null, "requests": u64|null,
//!     "workers": u64, "max_inflight": u64, "timeout_s": f64,
//!     "models": [str], "api_keys": u64, "headers": [str]
//!   },
//!   "window_s": f64,       // the load window: --duration, or until the last request was issued
//!   "elapsed_s": f64,      // start to the end of the last response
//!   "requests": {
//!     "sent": u64, "ok": u64, "errors": u64,
//!     "error_kinds": { "status_429": u64, "truncated": u64, ... },
//!     "completed_streams": u64
//!   },
//!   "rate": { "asked": f64|null, "sent": f64, "ok": f64 },   // per second of window_s
//!   "tokens": {
//!     "output": u64, "counted": u64, "reported": u64,
//!     "responses_with_usage": u64, "output_per_s": f64     // output / elapsed_s
//!   },
//!   "latency_us": {
//!     "ttfb": S, "ttft": S, "itl": S, "tpot": S, "e2e": S, "schedule_lag": S
//!   },
//!   "tester": { "workers": u64, "cpu_percent": f64 }        // percent of one core
//! }
//! S = { "count": u64, "mean": f64, "min": u64, "p50": u64, "p90": u64,
//!       "p99": u64, "p999": u64, "max": u64 } | null
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::stats::Stats;

/// The `schema` value of this version.
pub(crate) const SCHEMA: &str = "sluice-loadtest.run.v1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Report {
    pub(crate) schema: String,
    pub(crate) config: ConfigEcho,
    pub(crate) window_s: f64,
    pub(crate) elapsed_s: f64,
    pub(crate) requests: Requests,
    pub(crate) rate: Rates,
    pub(crate) tokens: Tokens,
    pub(crate) latency_us: Latencies,
    pub(crate) tester: Tester,
}

/// The run's settings, without secrets (API keys are only counted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ConfigEcho {
    pub(crate) url: String,
    pub(crate) api: super::request::Api,
    pub(crate) stream: bool,
    pub(crate) mode: String,
    pub(crate) rate: Option<f64>,
    pub(crate) arrivals: Option<super::schedule::Arrivals>,
    pub(crate) concurrency: Option<u64>,
    pub(crate) duration_s: Option<f64>,
    pub(crate) requests: Option<u64>,
    pub(crate) workers: u64,
    pub(crate) max_inflight: u64,
    pub(crate) timeout_s: f64,
    pub(crate) models: Vec<String>,
    pub(crate) api_keys: u64,
    pub(crate) headers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Requests {
    pub(crate) sent: u64,
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) error_kinds: BTreeMap<String, u64>,
    pub(crate) completed_streams: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Rates {
    pub(crate) asked: Option<f64>,
    pub(crate) sent: f64,
    pub(crate) ok: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Tokens {
    pub(crate) output: u64,
    pub(crate) counted: u64,
    pub(crate) reported: u64,
    pub(crate) responses_with_usage: u64,
    pub(crate) output_per_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Latencies {
    pub(crate) ttfb: Option<Summary>,
    pub(crate) ttft: Option<Summary>,
    pub(crate) itl: Option<Summary>,
    pub(crate) tpot: Option<Summary>,
    pub(crate) e2e: Option<Summary>,
    pub(crate) schedule_lag: Option<Summary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Summary {
    pub(crate) count: u64,
    pub(crate) mean: f64,
    pub(crate) min: u64,
    pub(crate) p50: u64,
    pub(crate) p90: u64,
    pub(crate) p99: u64,
    pub(crate) p999: u64,
    pub(crate) max: u64,
}

impl Summary {
    pub(crate) fn of(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let q = |q: f64| h.highest_equivalent(h.value_at_quantile(q));
        Some(Self {
            count: h.len(),
            mean: (h.mean() * 10.0).round() / 10.0,
            min: h.min(),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: h.highest_equivalent(h.max()),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Tester {
    pub(crate) workers: u64,
    pub(crate) cpu_percent: f64,
}

/// Measured totals of a run (or of several runs added together).
#[derive(Debug, Clone, Default)]
pub(crate) struct Totals {
    pub(crate) stats: Stats,
    pub(crate) window_s: f64,
    pub(crate) elapsed_s: f64,
    /// CPU seconds the tester used.
    pub(crate) cpu_s: f64,
}

impl Totals {
    pub(crate) fn add(&mut self, other: &Totals) {
        self.stats.merge(&other.stats);
        self.window_s += other.window_s;
        self.elapsed_s += other.elapsed_s;
        self.cpu_s += other.cpu_s;
    }
}

fn per_s(n: u64, s: f64) -> f64 {
    if s > 0.0 {
        (n as f64 / s * 10.0).round() / 10.0
    } else {
        0.0
    }
}

impl Report {
    pub(crate) fn new(config: ConfigEcho, t: &Totals) -> Self {
        let s = &t.stats;
        let overload = s.errors.get("overload").copied().unwrap_or(0);
        Self {
            schema: SCHEMA.into(),
            window_s: round3(t.window_s),
            elapsed_s: round3(t.elapsed_s),
            requests: Requests {
                sent: s.sent,
                ok: s.ok,
                errors: s.errors_total(),
                error_kinds: s.errors.clone(),
                completed_streams: s.completed_streams,
            },
            rate: Rates {
                asked: config.rate,
                sent: per_s(s.sent - overload, t.window_s),
                ok: per_s(s.ok, t.window_s),
            },
            tokens: Tokens {
                output: s.output_tokens,
                counted: s.tokens_counted,
                reported: s.tokens_reported,
                responses_with_usage: s.responses_with_usage,
                output_per_s: per_s(s.output_tokens, t.elapsed_s),
            },
            latency_us: Latencies {
                ttfb: Summary::of(&s.ttfb),
                ttft: Summary::of(&s.ttft),
                itl: Summary::of(&s.itl),
                tpot: Summary::of(&s.tpot),
                e2e: Summary::of(&s.e2e),
                schedule_lag: Summary::of(&s.lag),
            },
            tester: Tester {
                workers: config.workers,
                cpu_percent: if t.elapsed_s > 0.0 {
                    (t.cpu_s / t.elapsed_s * 1000.0).round() / 10.0
                } else {
                    0.0
                },
            },
            config,
        }
    }

    /// The human-readable table printed at the end of a run.
    pub(crate) fn table(&self) -> String {
        let c = &self.config;
        let mut out = String::new();
        let load = match (c.rate, c.concurrency) {
            (Some(r), _) => format!(
                "open loop {r}/s {}",
                c.arrivals
                    .map_or("", |a| if a == super::schedule::Arrivals::Poisson {
                        "poisson"
                    } else {
                        "constant"
                    })
            ),
            (None, Some(n)) => format!("closed loop, {n} concurrent"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{} ({}, {}), {load}, {} workers",
            c.url,
            match c.api {
                super::request::Api::Openai => "openai",
                super::request::Api::Anthropic => "anthropic",
                super::request::Api::Responses => "responses",
                super::request::Api::Gemini => "gemini",
            },
            if c.stream { "streamed" } else { "not streamed" },
            c.workers
        );
        let r = &self.requests;
        let kinds: Vec<String> = r.error_kinds.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let _ = writeln!(
            out,
            "requests   sent {}  ok {}  errors {}{}  completed streams {}",
            r.sent,
            r.ok,
            r.errors,
            if kinds.is_empty() {
                String::new()
            } else {
                format!(" ({})", kinds.join(", "))
            },
            r.completed_streams
        );
        let asked = self.rate.asked.map_or("-".to_string(), |a| format!("{a:.1}/s"));
        let _ = writeln!(
            out,
            "rate       asked {asked}  sent {:.1}/s  ok {:.1}/s  over {:.2}s (elapsed {:.2}s)",
            self.rate.sent, self.rate.ok, self.window_s, self.elapsed_s
        );
        let t = &self.tokens;
        let _ = writeln!(
            out,
            "tokens     output {} (counted {}, reported {} by {} responses)  {:.1} tokens/s",
            t.output, t.counted, t.reported, t.responses_with_usage, t.output_per_s
        );
        let _ = writeln!(
            out,
            "{:<11}{:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency", "p50", "p90", "p99", "p99.9", "max", "mean", "count"
        );
        let l = &self.latency_us;
        for (name, s) in [
            ("ttfb", &l.ttfb),
            ("ttft", &l.ttft),
            ("itl", &l.itl),
            ("tpot", &l.tpot),
            ("e2e", &l.e2e),
            ("sched lag", &l.schedule_lag),
        ] {
            match s {
                Some(s) => {
                    let _ = writeln!(
                        out,
                        "{name:<11}{:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                        fmt_us(s.p50),
                        fmt_us(s.p90),
                        fmt_us(s.p99),
                        fmt_us(s.p999),
                        fmt_us(s.max),
                        fmt_us(s.mean as u64),
                        s.count
                    );
                }
                None => {
                    let _ = writeln!(out, "{name:<11}{:>9}", "-");
                }
            }
        }
        let _ = writeln!(out, "tester cpu {:.1}% of one core", self.tester.cpu_percent);
        out
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// µs as a short human string: `850µs`, `1.23ms`, `4.56s`.
pub(crate) fn fmt_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 10_000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests;
