//! OpenTelemetry traces of sampled requests, exported over OTLP/HTTP
//! (protobuf) to a collector (`--otlp-endpoint URL --trace-sample RATIO`).
//!
//! Off the request path: a request decides once, at its start, whether it is
//! sampled ([`context::sampled`]: the caller's `traceparent` flag, else the
//! ratio on the trace id); an unsampled request costs a header look-up and
//! nothing more. A sampled one notes a few timestamps as it goes
//! ([`span::Active`]), and at `Ctx::finish` its [`span::Trace`] (plain
//! values from the record, never content) is pushed into a bounded
//! lock-free queue. When the queue is full the trace is dropped and
//! counted (`sluice_traces_dropped_total`): traces may be lost, records
//! never are. One thread ([`export`]) drains the queue in batches and posts
//! them with a blocking HTTP client.
//!
//! Propagation: a valid client `traceparent` is the parent of the request's
//! span; upstream, each attempt sends `traceparent` with its own span id when
//! sampled (a new trace when the client sent none). An unsampled request
//! passes the client's `traceparent` on unchanged (and sends none when the
//! client sent none).

pub mod context;
pub mod export;
pub mod otlp;
pub mod proto;
pub mod span;

use crossbeam_queue::ArrayQueue;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Traces that may wait for the exporter; more are dropped.
pub const QUEUE: usize = 8192;

/// The process's tracer, set once at start when `--otlp-endpoint` is given.
static TRACER: OnceLock<Arc<Tracer>> = OnceLock::new();

/// The tracer, when tracing is on.
pub fn tracer() -> Option<&'static Arc<Tracer>> {
    TRACER.get()
}

/// Sampling, the queue, and its counters.
pub struct Tracer {
    /// Fraction of new traces sampled, 0..=1.
    pub ratio: f64,
    queue: ArrayQueue<span::Trace>,
    /// Traces dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Spans the collector accepted.
    pub exported: AtomicU64,
    /// Export requests that failed (after their retry).
    pub failed: AtomicU64,
    /// Traces queued.
    pub queued: AtomicU64,
}

impl Tracer {
    /// Queues a finished trace; counts it dropped when the queue is full.
    pub fn push(&self, t: span::Trace) {
        if self.queue.push(t).is_ok() {
            self.queued.fetch_add(1, Ordering::Relaxed);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Prometheus text of the counters.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        for (name, help, v) in [
            (
                "sluice_traces_queued_total",
                "Sampled request traces queued for export.",
                &self.queued,
            ),
            (
                "sluice_traces_dropped_total",
                "Sampled request traces dropped because the export queue was full.",
                &self.dropped,
            ),
            (
                "sluice_trace_spans_exported_total",
                "Spans the OTLP collector accepted.",
                &self.exported,
            ),
            (
                "sluice_trace_export_failures_total",
                "OTLP export requests that failed after their retry.",
                &self.failed,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
    }
}

/// Starts tracing: sets the process's tracer and the exporter thread.
pub fn start(endpoint: &str, ratio: f64, service: &str) -> Result<(), String> {
    if !(0.0..=1.0).contains(&ratio) || ratio.is_nan() {
        return Err(format!("--trace-sample must be between 0 and 1, not {ratio}"));
    }
    let url = export::traces_url(endpoint)?;
    let tracer = Arc::new(Tracer {
        ratio,
        queue: ArrayQueue::new(QUEUE),
        dropped: AtomicU64::new(0),
        exported: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        queued: AtomicU64::new(0),
    });
    TRACER
        .set(tracer.clone())
        .map_err(|_| "tracing was started twice".to_owned())?;
    export::spawn(tracer, url, service.to_owned()).map_err(|e| format!("starting the trace exporter: {e}"))
}

/// Pops up to `max` queued traces (the exporter's side).
fn drain(t: &Tracer, max: usize, into: &mut Vec<span::Trace>) {
    while into.len() < max {
        match t.queue.pop() {
            Some(x) => into.push(x),
            None => break,
        }
    }
}
