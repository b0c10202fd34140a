//! Prometheus metrics. Each worker writes only its own cache-line-aligned
//! block of relaxed atomics (no contention, no locks); the admin listener sums
//! the blocks when scraped.

use sluice_contract::health::{State, TargetHealth};
use sluice_contract::record::ApiRoute;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;

const STATUSES: [u16; 16] = [
    200, 400, 401, 402, 403, 404, 405, 408, 413, 429, 431, 500, 502, 503, 504, 0,
];
const ROUTES: [ApiRoute; 14] = [
    ApiRoute::ChatCompletions,
    ApiRoute::Messages,
    ApiRoute::CountTokens,
    ApiRoute::Embeddings,
    ApiRoute::Responses,
    ApiRoute::GeminiGenerate,
    ApiRoute::GeminiStream,
    ApiRoute::GeminiCountTokens,
    ApiRoute::GeminiEmbed,
    ApiRoute::GeminiBatchEmbed,
    ApiRoute::Models,
    ApiRoute::Model,
    ApiRoute::Health,
    ApiRoute::Other,
];
/// Upper bounds of the upstream time-to-first-byte histogram, seconds.
const TTFB_BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Which I/O driver a worker's runtime got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// io_uring.
    IoUring,
    /// epoll (legacy driver).
    Epoll,
}

impl Driver {
    /// Name as logged and exported.
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::IoUring => "io_uring",
            Driver::Epoll => "epoll",
        }
    }
}

/// One worker's counters.
#[repr(align(128))]
#[derive(Default)]
pub struct WorkerMetrics {
    requests: [[AtomicU64; STATUSES.len()]; ROUTES.len()],
    active_connections: AtomicI64,
    active_streams: AtomicI64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    ttfb: [AtomicU64; TTFB_BOUNDS.len() + 1],
    ttfb_sum_us: AtomicU64,
    upstream_connects: AtomicU64,
    upstream_reuses: AtomicU64,
    upstream_fallbacks: AtomicU64,
    driver: AtomicU8,
}

impl WorkerMetrics {
    /// Counts a completed request.
    pub fn request(&self, route: ApiRoute, status: u16) {
        let r = ROUTES
            .iter()
            .position(|x| *x == route)
            .unwrap_or(ROUTES.len() - 1);
        let s = STATUSES
            .iter()
            .position(|x| *x == status)
            .unwrap_or(STATUSES.len() - 1);
        self.requests[r][s].fetch_add(1, Relaxed);
    }
    /// A client connection opened (+1) or closed (-1).
    pub fn connections(&self, delta: i64) {
        self.active_connections.fetch_add(delta, Relaxed);
    }
    /// A response stream started (+1) or ended (-1).
    pub fn streams(&self, delta: i64) {
        self.active_streams.fetch_add(delta, Relaxed);
    }
    /// Bytes from and to clients.
    pub fn bytes(&self, inbound: u64, outbound: u64) {
        self.bytes_in.fetch_add(inbound, Relaxed);
        self.bytes_out.fetch_add(outbound, Relaxed);
    }
    /// An upstream time to first byte.
    pub fn ttfb(&self, micros: u64) {
        let secs = micros as f64 / 1e6;
        let i = TTFB_BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(TTFB_BOUNDS.len());
        self.ttfb[i].fetch_add(1, Relaxed);
        self.ttfb_sum_us.fetch_add(micros, Relaxed);
    }
    /// An upstream connection: `reused` from the pool, or freshly dialled.
    pub fn upstream_conn(&self, reused: bool) {
        if reused {
            &self.upstream_reuses
        } else {
            &self.upstream_connects
        }
        .fetch_add(1, Relaxed);
    }
    /// A fallback to the next target.
    pub fn fallback(&self) {
        self.upstream_fallbacks.fetch_add(1, Relaxed);
    }
    /// Records which driver this worker got.
    pub fn set_driver(&self, driver: Driver) {
        self.driver.store(driver as u8 + 1, Relaxed);
    }
    /// Active client connections.
    pub fn active_connections(&self) -> i64 {
        self.active_connections.load(Relaxed)
    }
}

/// All workers' counters.
pub struct Metrics {
    workers: Box<[WorkerMetrics]>,
}

impl Metrics {
    /// Counters for `n` workers.
    pub fn new(n: usize) -> Self {
        Metrics {
            workers: (0..n).map(|_| WorkerMetrics::default()).collect(),
        }
    }

    /// Worker `i`'s block.
    pub fn worker(&self, i: usize) -> &WorkerMetrics {
        &self.workers[i.min(self.workers.len().saturating_sub(1))]
    }

    /// Prometheus text exposition of everything; `extra` is appended verbatim.
    pub fn render(&self, extra: &str) -> String {
        let mut out = String::with_capacity(8192);
        let sum = |f: &dyn Fn(&WorkerMetrics) -> u64| self.workers.iter().map(f).sum::<u64>();
        out.push_str("# HELP sluice_requests_total Requests completed, by route and status.\n# TYPE sluice_requests_total counter\n");
        for (ri, route) in ROUTES.iter().enumerate() {
            for (si, status) in STATUSES.iter().enumerate() {
                let n = sum(&|w| w.requests[ri][si].load(Relaxed));
                if n > 0 {
                    let status = if *status == 0 {
                        "other".to_string()
                    } else {
                        status.to_string()
                    };
                    let _ = writeln!(
                        out,
                        "sluice_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                        route.label()
                    );
                }
            }
        }
        let gauge = |out: &mut String, name: &str, help: &str, v: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        let active = |f: &dyn Fn(&WorkerMetrics) -> i64| self.workers.iter().map(f).sum::<i64>();
        gauge(
            &mut out,
            "sluice_active_connections",
            "Open client connections.",
            active(&|w| w.active_connections.load(Relaxed)),
        );
        gauge(
            &mut out,
            "sluice_active_streams",
            "Responses being relayed now.",
            active(&|w| w.active_streams.load(Relaxed)),
        );
        counter(
            &mut out,
            "sluice_client_received_bytes_total",
            "Bytes received from clients.",
            sum(&|w| w.bytes_in.load(Relaxed)),
        );
        counter(
            &mut out,
            "sluice_client_sent_bytes_total",
            "Bytes sent to clients.",
            sum(&|w| w.bytes_out.load(Relaxed)),
        );
        counter(
            &mut out,
            "sluice_upstream_connects_total",
            "Upstream connections dialled.",
            sum(&|w| w.upstream_connects.load(Relaxed)),
        );
        counter(
            &mut out,
            "sluice_upstream_reuses_total",
            "Upstream requests on pooled connections.",
            sum(&|w| w.upstream_reuses.load(Relaxed)),
        );
        counter(
            &mut out,
            "sluice_upstream_fallbacks_total",
            "Fallbacks to a next target.",
            sum(&|w| w.upstream_fallbacks.load(Relaxed)),
        );
        out.push_str("# HELP sluice_upstream_ttfb_seconds Time from request to the upstream's first response byte.\n# TYPE sluice_upstream_ttfb_seconds histogram\n");
        let mut cumulative = 0;
        for (i, bound) in TTFB_BOUNDS.iter().enumerate() {
            cumulative += sum(&|w| w.ttfb[i].load(Relaxed));
            let _ = writeln!(
                out,
                "sluice_upstream_ttfb_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += sum(&|w| w.ttfb[TTFB_BOUNDS.len()].load(Relaxed));
        let _ = writeln!(
            out,
            "sluice_upstream_ttfb_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "sluice_upstream_ttfb_seconds_sum {}",
            sum(&|w| w.ttfb_sum_us.load(Relaxed)) as f64 / 1e6
        );
        let _ = writeln!(out, "sluice_upstream_ttfb_seconds_count {cumulative}");
        out.push_str("# HELP sluice_worker_driver_info I/O driver of each worker (1 for the driver it got).\n# TYPE sluice_worker_driver_info gauge\n");
        for (i, w) in self.workers.iter().enumerate() {
            let driver = match w.driver.load(Relaxed) {
                1 => "io_uring",
                2 => "epoll",
                _ => "starting",
            };
            let _ = writeln!(
                out,
                "sluice_worker_driver_info{{worker=\"{i}\",driver=\"{driver}\"}} 1"
            );
        }
        out.push_str(extra);
        out
    }
}

/// A counter of a target: name, help, and how to read it.
type Counter = (&'static str, &'static str, fn(&TargetHealth) -> u64);

/// Appends each target's health (one series per upstream, key owner and
/// key id): its state, one-hot; ejections, cooldowns, probes, retries and
/// retry-budget refusals; its peak EWMA of time to first byte.
pub fn render_health(cells: &[(String, Arc<TargetHealth>)], now: u64, out: &mut String) {
    if cells.is_empty() {
        return;
    }
    let labels = |owner: &str, h: &TargetHealth| {
        format!(
            "upstream=\"{}\",tenant=\"{}\",key=\"{}\"",
            escape(&h.upstream),
            escape(owner),
            escape(&h.key)
        )
    };
    out.push_str("# HELP sluice_target_health Passive health of each target (upstream with provider key), 1 for its state.\n# TYPE sluice_target_health gauge\n");
    for (owner, h) in cells {
        let state = h.state(now);
        for s in [State::Healthy, State::Cooling, State::HalfOpen, State::Ejected] {
            let _ = writeln!(
                out,
                "sluice_target_health{{{},state=\"{}\"}} {}",
                labels(owner, h),
                s.label().0,
                u8::from(s == state)
            );
        }
    }
    let series: [Counter; 5] = [
        (
            "sluice_target_ejections_total",
            "Times the target was ejected.",
            |h| h.counts.ejections.load(Relaxed),
        ),
        (
            "sluice_target_cooldowns_total",
            "Times a Retry-After or reset hint cooled the target down.",
            |h| h.counts.cooldowns.load(Relaxed),
        ),
        (
            "sluice_target_probes_total",
            "Half-open probes let through to the target.",
            |h| h.counts.probes.load(Relaxed),
        ),
        (
            "sluice_target_retries_total",
            "Next targets tried after this target failed.",
            |h| h.counts.retries.load(Relaxed),
        ),
        (
            "sluice_target_retry_budget_refusals_total",
            "Retries refused by the upstream's budget after this target failed.",
            |h| h.counts.budget_refusals.load(Relaxed),
        ),
    ];
    for (name, help, get) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (owner, h) in cells {
            let _ = writeln!(out, "{name}{{{}}} {}", labels(owner, h), get(h));
        }
    }
    out.push_str("# HELP sluice_target_ttfb_ewma_seconds Peak EWMA of the target's time to first byte.\n# TYPE sluice_target_ttfb_ewma_seconds gauge\n");
    for (owner, h) in cells {
        let _ = writeln!(
            out,
            "sluice_target_ttfb_ewma_seconds{{{}}} {}",
            labels(owner, h),
            h.ttfb_ewma_us() as f64 / 1e6
        );
    }
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_sums_across_workers() {
        let m = Metrics::new(2);
        m.worker(0).request(ApiRoute::ChatCompletions, 200);
        m.worker(1).request(ApiRoute::ChatCompletions, 200);
        m.worker(1).request(ApiRoute::Messages, 418);
        m.worker(0).ttfb(700);
        m.worker(1).ttfb(20_000_000);
        m.worker(0).set_driver(Driver::IoUring);
        m.worker(1).set_driver(Driver::Epoll);
        let text = m.render("");
        assert!(text.contains("sluice_requests_total{route=\"chat_completions\",status=\"200\"} 2"));
        assert!(text.contains("sluice_requests_total{route=\"messages\",status=\"other\"} 1"));
        assert!(text.contains("sluice_upstream_ttfb_seconds_bucket{le=\"0.001\"} 1"));
        assert!(text.contains("sluice_upstream_ttfb_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("sluice_worker_driver_info{worker=\"1\",driver=\"epoll\"} 1"));
    }

    #[test]
    fn renders_target_health() {
        let a = Arc::new(TargetHealth::new("a".into(), "pk\"1".into()));
        let policy = sluice_contract::health::EjectPolicy::default();
        for _ in 0..policy.after {
            a.failure(0, &policy, false);
        }
        let b = Arc::new(TargetHealth::new("b".into(), "pk".into()));
        b.cool(0, 1_000_000_000);
        b.observe_ttfb(0, 250_000);
        let mut text = String::new();
        render_health(&[("acme".into(), a), (String::new(), b)], 1, &mut text);
        let a = "upstream=\"a\",tenant=\"acme\",key=\"pk\\\"1\"";
        assert!(
            text.contains(&format!("sluice_target_health{{{a},state=\"ejected\"}} 1")),
            "{text}"
        );
        assert!(text.contains(&format!("sluice_target_health{{{a},state=\"healthy\"}} 0")));
        assert!(text.contains(&format!("sluice_target_ejections_total{{{a}}} 1")));
        let b = "upstream=\"b\",tenant=\"\",key=\"pk\"";
        assert!(text.contains(&format!("sluice_target_health{{{b},state=\"cooling\"}} 1")));
        assert!(text.contains(&format!("sluice_target_cooldowns_total{{{b}}} 1")));
        assert!(text.contains(&format!("sluice_target_ttfb_ewma_seconds{{{b}}} 0.25")));
    }
}
