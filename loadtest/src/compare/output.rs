//! The comparison's results: a JSON document (`--json FILE`, schema
//! `sluice-loadtest.compare.v1`, described in `loadtest/LOADTEST.md`) and
//! the side-by-side table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::run::report::{fmt_us, Report};

use super::{CompareArgs, Side};

/// One target's measurement in latency mode.
#[derive(Debug, Serialize)]
pub(crate) struct SideResult {
    pub(crate) name: String,
    pub(crate) url: String,
    /// The run report of all its rounds added together.
    pub(crate) report: Report,
    /// CPU of the proxy process (all its processes for nginx), percent of
    /// one core over the target's rounds; `null` for direct.
    pub(crate) proxy_cpu_percent: Option<f64>,
    pub(crate) mock_cpu_percent: f64,
}

/// One rate tried by the max-rate search.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Step {
    pub(crate) rate: f64,
    pub(crate) ok_rate: f64,
    pub(crate) errors: u64,
    /// p99 TTFT (e2e when not streamed), µs.
    pub(crate) p99_us: u64,
    pub(crate) lag_p99_us: u64,
    pub(crate) tester_cpu_percent: f64,
    pub(crate) proxy_cpu_percent: Option<f64>,
    /// Why this rate was not sustained; `null` if it was.
    pub(crate) failed: Option<String>,
}

/// One target's max-rate search.
#[derive(Debug, Serialize)]
pub(crate) struct MaxRate {
    pub(crate) name: String,
    /// The highest rate that passed; `null` if even the first failed.
    pub(crate) highest_sustained: Option<f64>,
    pub(crate) steps: Vec<Step>,
}

/// One target's open-streams measurement.
#[derive(Debug, Serialize)]
pub(crate) struct StreamsResult {
    pub(crate) name: String,
    pub(crate) streams: u64,
    pub(crate) proxy_idle_rss_kib: Option<u64>,
    pub(crate) proxy_peak_rss_kib: Option<u64>,
    /// (peak − idle) / streams.
    pub(crate) proxy_bytes_per_stream: Option<u64>,
    pub(crate) proxy_peak_fds: Option<u64>,
    pub(crate) mock_idle_rss_kib: u64,
    pub(crate) mock_peak_rss_kib: u64,
    /// Errors by kind, without the streams dropped at the end.
    pub(crate) errors: BTreeMap<String, u64>,
}

/// A target's added latency over direct: same percentile, minus direct's.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Added {
    pub(crate) ttft_p50_us: i64,
    pub(crate) ttft_p99_us: i64,
}

/// One target against another, round by round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RoundsWon {
    /// Rounds where the first's added p99 was no higher than the second's.
    won: usize,
    of: usize,
    /// Each one's median added p99 over the rounds, µs.
    median: (i64, i64),
}

impl RoundsWon {
    /// `a`'s added p99s against `b`'s, round by round (`None` unless both
    /// cover the same rounds, at least one).
    fn of(a: &[i64], b: &[i64]) -> Option<RoundsWon> {
        if a.is_empty() || a.len() != b.len() {
            return None;
        }
        let median = |v: &[i64]| {
            let mut v = v.to_vec();
            v.sort_unstable();
            let n = v.len();
            if n % 2 == 1 {
                v[n / 2]
            } else {
                (v[n / 2 - 1] + v[n / 2]) / 2
            }
        };
        Some(RoundsWon {
            won: a.iter().zip(b).filter(|(x, y)| x <= y).count(),
            of: a.len(),
            median: (median(a), median(b)),
        })
    }
}

/// A pass/fail line for one of the targets.
#[derive(Debug, Serialize)]
pub(crate) struct Check {
    pub(crate) what: String,
    pub(crate) passed: bool,
}

/// The workload, as run.
#[derive(Debug, Serialize)]
pub(crate) struct Workload {
    pub(crate) rate: f64,
    pub(crate) arrivals: crate::run::schedule::Arrivals,
    pub(crate) round_s: f64,
    pub(crate) rounds: usize,
    pub(crate) tokens: u64,
    pub(crate) ttft_ms: u64,
    pub(crate) itl_ms: u64,
    pub(crate) stream: bool,
    pub(crate) server_workers: usize,
    pub(crate) mock_workers: usize,
    pub(crate) load_workers: usize,
}

/// Everything `compare` found.
#[derive(Debug, Serialize)]
pub(crate) struct Compared {
    pub(crate) schema: &'static str,
    /// `latency`, `max_rate` or `open_streams`.
    pub(crate) mode: &'static str,
    pub(crate) workload: Workload,
    pub(crate) sides: Vec<SideResult>,
    pub(crate) added_over_direct: BTreeMap<String, Added>,
    /// Latency mode: each target's TTFT p99 added over direct's in the same
    /// round, round by round (a pooled p99 can hang on a few stalls of the
    /// machine in one round; these show how often a result holds).
    pub(crate) added_p99_by_round: BTreeMap<String, Vec<i64>>,
    pub(crate) max_rate: Vec<MaxRate>,
    pub(crate) open_streams: Vec<StreamsResult>,
    /// Named ratios, e.g. `sluice_over_nginx_added_ttft_p99`.
    pub(crate) ratios: BTreeMap<String, f64>,
    pub(crate) checks: Vec<Check>,
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0 && a.is_finite()).then(|| (a / b * 1000.0).round() / 1000.0)
}

impl Compared {
    fn new(args: &CompareArgs, mode: &'static str) -> Self {
        Self {
            schema: "sluice-loadtest.compare.v1",
            mode,
            workload: Workload {
                rate: args.rate,
                arrivals: args.arrivals,
                round_s: args.duration.as_secs_f64(),
                rounds: args.rounds,
                tokens: args.tokens,
                ttft_ms: args.ttft_ms,
                itl_ms: args.itl_ms,
                stream: !args.no_stream,
                server_workers: args.workers,
                mock_workers: args.mock_workers.unwrap_or(args.workers),
                load_workers: args.load_workers,
            },
            sides: Vec::new(),
            added_over_direct: BTreeMap::new(),
            added_p99_by_round: BTreeMap::new(),
            max_rate: Vec::new(),
            open_streams: Vec::new(),
            ratios: BTreeMap::new(),
            checks: Vec::new(),
        }
    }

    /// `round_p99`: each side's TTFT p99 in each round, in `sides`' order.
    pub(crate) fn latency(args: &CompareArgs, sides: Vec<SideResult>, round_p99: &[Vec<u64>]) -> Self {
        let mut c = Self::new(args, "latency");
        let direct = sides.iter().position(|s| s.name == "direct");
        if let Some(d) = direct.and_then(|d| round_p99.get(d)) {
            for (s, p99s) in sides.iter().zip(round_p99).filter(|(s, _)| s.name != "direct") {
                let added = p99s.iter().zip(d).map(|(&p, &d)| p as i64 - d as i64).collect();
                c.added_p99_by_round.insert(s.name.clone(), added);
            }
        }
        let ttft = |s: &SideResult| {
            s.report
                .latency_us
                .ttft
                .as_ref()
                .or(s.report.latency_us.e2e.as_ref())
                .map(|l| (l.p50 as i64, l.p99 as i64))
        };
        if let Some((d50, d99)) = sides.iter().find(|s| s.name == "direct").and_then(ttft) {
            for s in sides.iter().filter(|s| s.name != "direct") {
                if let Some((p50, p99)) = ttft(s) {
                    c.added_over_direct.insert(
                        s.name.clone(),
                        Added {
                            ttft_p50_us: p50 - d50,
                            ttft_p99_us: p99 - d99,
                        },
                    );
                }
            }
        }
        let added = |n: &str| c.added_over_direct.get(n).copied();
        if let (Some(s), Some(n)) = (added("sluice"), added("nginx")) {
            for (key, a, b) in [
                ("sluice_over_nginx_added_ttft_p50", s.ttft_p50_us, n.ttft_p50_us),
                ("sluice_over_nginx_added_ttft_p99", s.ttft_p99_us, n.ttft_p99_us),
            ] {
                if let Some(r) = ratio(a as f64, b as f64) {
                    c.ratios.insert(key.into(), r);
                }
            }
            if let Some(r) = c
                .rounds("sluice", "nginx")
                .and_then(|r| ratio(r.median.0 as f64, r.median.1 as f64))
            {
                c.ratios
                    .insert("sluice_over_nginx_added_ttft_p99_round_median".into(), r);
            }
            c.checks.push(Check {
                what: format!(
                    "Sluice's added TTFT p99 over direct ({}) is no higher than nginx's ({})",
                    signed_us(s.ttft_p99_us),
                    signed_us(n.ttft_p99_us)
                ),
                passed: s.ttft_p99_us <= n.ttft_p99_us,
            });
        }
        c.sides = sides;
        c
    }

    /// `a` against `b` round by round: the rounds where `a`'s added p99 was
    /// no higher, and each one's median added p99.
    fn rounds(&self, a: &str, b: &str) -> Option<RoundsWon> {
        RoundsWon::of(self.added_p99_by_round.get(a)?, self.added_p99_by_round.get(b)?)
    }

    pub(crate) fn search(args: &CompareArgs, sides: &[Side], steps: Vec<Vec<Step>>) -> Self {
        let mut c = Self::new(args, "max_rate");
        for (side, steps) in sides.iter().zip(steps) {
            let highest = steps
                .iter()
                .filter(|s| s.failed.is_none())
                .map(|s| s.rate)
                .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))));
            c.max_rate.push(MaxRate {
                name: side.name.clone(),
                highest_sustained: highest,
                steps,
            });
        }
        let best = |n: &str| {
            c.max_rate
                .iter()
                .find(|m| m.name == n)
                .and_then(|m| m.highest_sustained)
        };
        let pairs = [
            ("max_rate_sluice_over_nginx", "sluice", "nginx"),
            ("max_rate_uring_over_epoll", "sluice", "sluice-epoll"),
            ("max_rate_sluice_over_direct", "sluice", "direct"),
        ];
        let mut found = Vec::new();
        for (key, a, b) in pairs {
            if let (Some(x), Some(y)) = (best(a), best(b)) {
                if let Some(r) = ratio(x, y) {
                    found.push((key, r));
                }
            }
        }
        for (key, r) in found {
            c.ratios.insert(key.into(), r);
            if key == "max_rate_sluice_over_nginx" {
                c.checks.push(Check {
                    what: format!(
                        "Sluice's highest sustained streaming rate is at least nginx's (ratio {r:.2})"
                    ),
                    passed: r >= 1.0,
                });
            }
        }
        c
    }

    pub(crate) fn streams(args: &CompareArgs, results: Vec<StreamsResult>) -> Self {
        let mut c = Self::new(args, "open_streams");
        for r in results.iter().filter(|r| r.name.starts_with("sluice")) {
            if let Some(peak) = r.proxy_peak_rss_kib {
                c.checks.push(Check {
                    what: format!(
                        "{} RSS with {} open streams ({:.1} MiB) is at most 300 MiB",
                        r.name,
                        r.streams,
                        peak as f64 / 1024.0
                    ),
                    passed: peak <= 300 * 1024,
                });
            }
        }
        c.open_streams = results;
        c
    }

    /// The human-readable result.
    pub(crate) fn table(&self) -> String {
        let mut out = String::new();
        let w = &self.workload;
        let _ = writeln!(
            out,
            "\nworkload: {} tokens/response{}, ttft {} ms, itl {} ms; servers {} worker(s), mock {}, load {}",
            w.tokens,
            if w.stream { " streamed" } else { " not streamed" },
            w.ttft_ms,
            w.itl_ms,
            w.server_workers,
            w.mock_workers,
            w.load_workers
        );
        match self.mode {
            "latency" => self.latency_table(&mut out),
            "max_rate" => self.search_table(&mut out),
            _ => self.streams_table(&mut out),
        }
        for (k, v) in &self.ratios {
            let _ = writeln!(out, "ratio {k}: {v:.3}");
        }
        for c in &self.checks {
            let _ = writeln!(out, "{}: {}", if c.passed { "PASS" } else { "FAIL" }, c.what);
        }
        out
    }

    fn latency_table(&self, out: &mut String) {
        let w = &self.workload;
        let arrivals = match w.arrivals {
            crate::run::schedule::Arrivals::Constant => "constant",
            crate::run::schedule::Arrivals::Poisson => "poisson",
        };
        let _ = writeln!(
            out,
            "{} rounds of {:.1}s per target at {}/s ({arrivals}), interleaved",
            w.rounds, w.round_s, w.rate
        );
        let _ = writeln!(
            out,
            "{:<13}{:>8}{:>8}{:>6}{:>9}{:>10}{:>10}{:>10}{:>10}{:>10}{:>9}{:>9}{:>9}",
            "target",
            "sent",
            "ok",
            "err",
            "ok/s",
            "ttft p50",
            "ttft p99",
            "e2e p99",
            "+p50",
            "+p99",
            "cpu srv",
            "cpu mock",
            "cpu load"
        );
        for s in &self.sides {
            let r = &s.report;
            let l = &r.latency_us;
            let p = |x: &Option<crate::run::report::Summary>, f: fn(&crate::run::report::Summary) -> u64| {
                x.as_ref().map_or("-".into(), |s| fmt_us(f(s)))
            };
            let added = self.added_over_direct.get(&s.name);
            let _ = writeln!(
                out,
                "{:<13}{:>8}{:>8}{:>6}{:>9.1}{:>10}{:>10}{:>10}{:>10}{:>10}{:>9}{:>9}{:>9}",
                s.name,
                r.requests.sent,
                r.requests.ok,
                r.requests.errors,
                r.rate.ok,
                p(&l.ttft, |s| s.p50),
                p(&l.ttft, |s| s.p99),
                p(&l.e2e, |s| s.p99),
                added.map_or("-".into(), |a| signed_us(a.ttft_p50_us)),
                added.map_or("-".into(), |a| signed_us(a.ttft_p99_us)),
                s.proxy_cpu_percent.map_or("-".into(), |c| format!("{c:.1}%")),
                format!("{:.1}%", s.mock_cpu_percent),
                format!("{:.1}%", r.tester.cpu_percent),
            );
        }
        let _ = writeln!(out, "+p50/+p99: TTFT added over direct (the target's percentile minus direct's); cpu: percent of one core");
        if let Some(r) = self.rounds("sluice", "nginx") {
            let _ = writeln!(
                out,
                "round by round: Sluice's added TTFT p99 no higher than nginx's in {} of {} rounds; median over the rounds {} vs {}",
                r.won,
                r.of,
                signed_us(r.median.0),
                signed_us(r.median.1)
            );
        }
    }

    fn search_table(&self, out: &mut String) {
        let _ = writeln!(out, "{:<13}{:>20}  then", "target", "highest sustained");
        for m in &self.max_rate {
            // The lowest rate above the best that was not sustained, and why.
            let best_rate = m.highest_sustained.unwrap_or(0.0);
            let stop = m
                .steps
                .iter()
                .filter(|s| s.failed.is_some() && s.rate > best_rate)
                .min_by(|a, b| a.rate.total_cmp(&b.rate))
                .and_then(|s| s.failed.as_ref().map(|f| format!("{:.0}/s: {f}", s.rate)))
                .unwrap_or_else(|| "reached --max-rate".into());
            let best = m.highest_sustained.map_or("-".into(), |r| format!("{r:.0}/s"));
            let _ = writeln!(out, "{:<13}{:>20}  {stop}", m.name, best);
        }
    }

    fn streams_table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "{:<13}{:>8}{:>11}{:>11}{:>12}{:>9}{:>12}  errors",
            "target", "streams", "idle rss", "peak rss", "per stream", "fds", "mock peak"
        );
        let mib = |k: u64| format!("{:.1}MiB", k as f64 / 1024.0);
        for r in &self.open_streams {
            let errors: Vec<String> = r.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            let _ = writeln!(
                out,
                "{:<13}{:>8}{:>11}{:>11}{:>12}{:>9}{:>12}  {}",
                r.name,
                r.streams,
                r.proxy_idle_rss_kib.map_or("-".into(), mib),
                r.proxy_peak_rss_kib.map_or("-".into(), mib),
                r.proxy_bytes_per_stream
                    .map_or("-".into(), |b| format!("{:.1}KiB", b as f64 / 1024.0)),
                r.proxy_peak_fds.map_or("-".into(), |f| f.to_string()),
                mib(r.mock_peak_rss_kib),
                if errors.is_empty() {
                    "none".into()
                } else {
                    errors.join(", ")
                }
            );
        }
    }
}

/// Signed µs: `+25µs`, `-1.20ms`.
/// `--rates`: the latency comparison at each rate, and the search that
/// found the highest sustained rate when a rate was a percentage of it.
#[derive(Debug, Default, Serialize)]
pub(crate) struct AtRates {
    pub(crate) schema: &'static str,
    /// The lowest highest-sustained rate among the proxies.
    pub(crate) highest_sustained: Option<f64>,
    pub(crate) search: Option<Compared>,
    pub(crate) rates: Vec<Compared>,
}

impl AtRates {
    /// Every rate's table, then one summary: each proxy's added TTFT p50
    /// and p99 over direct at each rate.
    pub(crate) fn table(&self) -> String {
        let mut out = String::new();
        for c in &self.rates {
            let _ = write!(out, "\n== at {} req/s", c.workload.rate);
            out += &c.table();
        }
        let mut names: Vec<&String> = self
            .rates
            .iter()
            .flat_map(|c| c.added_over_direct.keys())
            .collect();
        names.sort();
        names.dedup();
        let _ = writeln!(out, "\nadded TTFT over direct, p50 / p99, by rate:");
        let _ = write!(out, "{:>10}", "req/s");
        for n in &names {
            let _ = write!(out, " {:>24}", n);
        }
        out.push('\n');
        for c in &self.rates {
            let _ = write!(out, "{:>10}", c.workload.rate);
            for n in &names {
                let cell = c.added_over_direct.get(*n).map_or("-".to_owned(), |a| {
                    format!("{} / {}", signed_us(a.ttft_p50_us), signed_us(a.ttft_p99_us))
                });
                let _ = write!(out, " {cell:>24}");
            }
            let verdict = match (
                c.added_over_direct.get("sluice"),
                c.added_over_direct.get("nginx"),
            ) {
                (Some(s), Some(n)) => format!(
                    "  p50 {}, p99 {}",
                    if s.ttft_p50_us <= n.ttft_p50_us {
                        "<= nginx"
                    } else {
                        "> nginx"
                    },
                    if s.ttft_p99_us <= n.ttft_p99_us {
                        "<= nginx"
                    } else {
                        "> nginx"
                    }
                ),
                _ => String::new(),
            };
            let _ = writeln!(out, "{verdict}");
        }
        out
    }
}

fn signed_us(us: i64) -> String {
    let sign = if us < 0 { "-" } else { "+" };
    format!("{sign}{}", fmt_us(us.unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::RoundsWon;

    #[test]
    fn rounds_won_counts_ties_and_takes_medians() {
        let r = RoundsWon::of(&[100, 300, 200], &[150, 250, 200]).unwrap();
        assert_eq!(
            r,
            RoundsWon {
                won: 2,
                of: 3,
                median: (200, 200)
            }
        );
        // An even count: the mean of the middle two; negative values too.
        let r = RoundsWon::of(&[-10, 40, 10, 20], &[0, 0, 0, 0]).unwrap();
        assert_eq!((r.won, r.median), (1, (15, 0)));
        assert_eq!(RoundsWon::of(&[], &[]), None);
        assert_eq!(RoundsWon::of(&[1, 2], &[1]), None);
    }
}
