//! Live counters of each sink's publisher, in memory (the process's view),
//! rendered into control's `/metrics` and shown by `sink list`.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Why a publisher's step failed: the `kind` label of the error counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// Connecting, or creating or reading the stream.
    Connect,
    /// A publish was not acknowledged.
    Publish,
    /// Reading records or advancing the cursor in redb.
    Store,
}

impl ErrorKind {
    fn label(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Publish => "publish",
            ErrorKind::Store => "store",
        }
    }
}

/// One sink's counters.
#[derive(Default)]
pub(crate) struct SinkStats {
    /// Records the engine acknowledged as newly stored.
    pub(crate) published: AtomicU64,
    /// Records the engine (or the tail check) reported as already stored.
    pub(crate) duplicates: AtomicU64,
    errors: [AtomicU64; 3],
    /// Connected to the engine with the stream ready.
    pub(crate) connected: AtomicBool,
    /// Pending records (as of the last count).
    pub(crate) pending: AtomicU64,
    /// Arrival time of the oldest pending record, unix ms (0: none pending).
    pub(crate) oldest_pending_ms: AtomicU64,
    /// Last acknowledgment, unix ms (0: none since start).
    pub(crate) last_ack_ms: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl SinkStats {
    /// Counts a failure and keeps its message for `sink list`.
    pub(crate) fn error(&self, kind: ErrorKind, message: String) {
        self.errors[kind as usize].fetch_add(1, Ordering::Relaxed);
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(message);
    }

    /// A view for `sink list`.
    pub(crate) fn view(&self) -> StatsView {
        let now = crate::clock::now_ms();
        let oldest = self.oldest_pending_ms.load(Ordering::Relaxed);
        StatsView {
            connected: self.connected.load(Ordering::Relaxed),
            published: self.published.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            errors: self.errors.iter().map(|e| e.load(Ordering::Relaxed)).sum(),
            pending: self.pending.load(Ordering::Relaxed),
            lag_seconds: if oldest == 0 {
                0.0
            } else {
                now.saturating_sub(oldest) as f64 / 1000.0
            },
            last_ack_ms: Some(self.last_ack_ms.load(Ordering::Relaxed)).filter(|&t| t != 0),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        }
    }
}

/// A sink's live state as `sink list` shows it.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub(crate) struct StatsView {
    /// Connected with the stream ready.
    pub(crate) connected: bool,
    /// Records newly stored by the engine since start.
    pub(crate) published: u64,
    /// Replays the engine dropped since start.
    pub(crate) duplicates: u64,
    /// Failures since start.
    pub(crate) errors: u64,
    /// Records not yet acknowledged.
    pub(crate) pending: u64,
    /// Age of the oldest pending record, seconds.
    pub(crate) lag_seconds: f64,
    /// Last acknowledgment, unix ms.
    pub(crate) last_ack_ms: Option<u64>,
    /// The last failure.
    pub(crate) last_error: Option<String>,
}

fn registry() -> &'static Mutex<BTreeMap<String, Arc<SinkStats>>> {
    static REGISTRY: OnceLock<Mutex<BTreeMap<String, Arc<SinkStats>>>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

/// The counters of sink `name`, created on first use.
pub(crate) fn of(name: &str) -> Arc<SinkStats> {
    registry()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(name.to_owned())
        .or_default()
        .clone()
}

/// The counters of sink `name`, if its publisher ran.
pub(crate) fn get(name: &str) -> Option<Arc<SinkStats>> {
    registry()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(name)
        .cloned()
}

/// Forgets a removed sink.
pub(crate) fn remove(name: &str) {
    registry()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(name);
}

/// Appends every sink's series to a Prometheus text exposition.
pub(crate) fn render(out: &mut String) {
    let all: Vec<(String, Arc<SinkStats>)> = registry()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let now = crate::clock::now_ms();
    let mut family = |name: &str, kind: &str, help: &str, value: &dyn Fn(&SinkStats) -> String| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (sink, s) in &all {
            let _ = writeln!(out, "{name}{{sink=\"{sink}\"}} {}", value(s));
        }
    };
    family(
        "sluice_control_sink_published_records_total",
        "counter",
        "Records the sink's engine acknowledged as newly stored.",
        &|s| s.published.load(Ordering::Relaxed).to_string(),
    );
    family(
        "sluice_control_sink_duplicate_records_total",
        "counter",
        "Replayed records the engine already held (dropped by its duplicate window or the tail check).",
        &|s| s.duplicates.load(Ordering::Relaxed).to_string(),
    );
    family(
        "sluice_control_sink_pending_records",
        "gauge",
        "Records stored in control and not yet acknowledged by the sink.",
        &|s| s.pending.load(Ordering::Relaxed).to_string(),
    );
    family(
        "sluice_control_sink_lag_seconds",
        "gauge",
        "Age of the oldest record not yet acknowledged by the sink (0 when none).",
        &|s| {
            let o = s.oldest_pending_ms.load(Ordering::Relaxed);
            let age = if o == 0 { 0 } else { now.saturating_sub(o) };
            format!("{:.3}", age as f64 / 1000.0)
        },
    );
    family(
        "sluice_control_sink_up",
        "gauge",
        "1 while the sink is connected with its stream ready.",
        &|s| u8::from(s.connected.load(Ordering::Relaxed)).to_string(),
    );
    family(
        "sluice_control_sink_last_ack_timestamp_seconds",
        "gauge",
        "Unix time of the sink's last acknowledgment (0: none since start).",
        &|s| format!("{:.3}", s.last_ack_ms.load(Ordering::Relaxed) as f64 / 1000.0),
    );
    let name = "sluice_control_sink_errors_total";
    let _ = writeln!(
        out,
        "# HELP {name} Sink failures by kind (connect, publish, store).\n# TYPE {name} counter"
    );
    for (sink, s) in &all {
        for kind in [ErrorKind::Connect, ErrorKind::Publish, ErrorKind::Store] {
            let _ = writeln!(
                out,
                "{name}{{sink=\"{sink}\",kind=\"{}\"}} {}",
                kind.label(),
                s.errors[kind as usize].load(Ordering::Relaxed)
            );
        }
    }
}
