//! Counters and gauges of the control process, rendered as Prometheus text.

use crate::clock::now_ms;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A data plane counts as connected when it polled within this window (the
/// long-poll holds 25 s, so a live one polls at least that often).
const CONNECTED_WINDOW_MS: u64 = 60_000;

/// What a data plane last did, since this process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Live {
    /// Last sync request, unix ms.
    pub(crate) last_seen_ms: u64,
    /// Snapshot version it reported having or was last served.
    pub(crate) version: u64,
}

/// Process-wide counters.
#[derive(Default)]
pub(crate) struct Metrics {
    /// Records newly stored.
    pub(crate) records: AtomicU64,
    /// Records skipped as replays.
    pub(crate) replayed: AtomicU64,
    /// Record batches committed.
    pub(crate) batches: AtomicU64,
    /// Write transactions that stored records.
    pub(crate) ingest_commits: AtomicU64,
    /// Snapshots sent to data planes.
    pub(crate) snapshots_served: AtomicU64,
    /// Sync requests refused for their token.
    pub(crate) unauthorized: AtomicU64,
    live: Mutex<BTreeMap<String, Live>>,
}

impl Metrics {
    /// Notes a sync request from `dataplane` that holds (or was served) `version`.
    pub(crate) fn seen(&self, dataplane: &str, version: Option<u64>) {
        let mut live = self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = live.entry(dataplane.to_owned()).or_default();
        entry.last_seen_ms = now_ms();
        if let Some(v) = version {
            entry.version = entry.version.max(v);
        }
    }

    /// What `dataplane` last did.
    pub(crate) fn live(&self, dataplane: &str) -> Option<Live> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(dataplane)
            .copied()
    }

    /// Prometheus text exposition.
    pub(crate) fn render(&self, snapshot_version: u64, store_bytes: u64) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        };
        counter(
            &mut out,
            "sluice_control_records_ingested_total",
            "Records stored.",
            &self.records,
        );
        counter(
            &mut out,
            "sluice_control_records_replayed_total",
            "Records skipped as already stored.",
            &self.replayed,
        );
        counter(
            &mut out,
            "sluice_control_record_batches_total",
            "Record batches stored.",
            &self.batches,
        );
        counter(
            &mut out,
            "sluice_control_ingest_commits_total",
            "Write transactions that stored records.",
            &self.ingest_commits,
        );
        counter(
            &mut out,
            "sluice_control_snapshots_served_total",
            "Snapshots sent to data planes.",
            &self.snapshots_served,
        );
        counter(
            &mut out,
            "sluice_control_sync_unauthorized_total",
            "Sync requests refused for their token.",
            &self.unauthorized,
        );
        let _ = writeln!(
            out,
            "# HELP sluice_control_store_bytes Size of control.redb.\n# TYPE sluice_control_store_bytes gauge\nsluice_control_store_bytes {store_bytes}"
        );
        let _ = writeln!(
            out,
            "# HELP sluice_control_snapshot_version Current snapshot version.\n# TYPE sluice_control_snapshot_version gauge\nsluice_control_snapshot_version {snapshot_version}"
        );
        let now = now_ms();
        let live = self
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let connected: Vec<(&String, &Live)> = live
            .iter()
            .filter(|(_, l)| now.saturating_sub(l.last_seen_ms) <= CONNECTED_WINDOW_MS)
            .collect();
        let _ = writeln!(
            out,
            "# HELP sluice_control_dataplanes_connected Data planes that polled in the last 60 s.\n# TYPE sluice_control_dataplanes_connected gauge\nsluice_control_dataplanes_connected {}",
            connected.len()
        );
        let _ = writeln!(
            out,
            "# HELP sluice_control_dataplane_snapshot_version Snapshot version a data plane holds.\n# TYPE sluice_control_dataplane_snapshot_version gauge"
        );
        for (id, l) in &connected {
            let _ = writeln!(
                out,
                "sluice_control_dataplane_snapshot_version{{dataplane=\"{id}\"}} {}",
                l.version
            );
        }
        let _ = writeln!(
            out,
            "# HELP sluice_control_dataplane_last_seen_timestamp_seconds Unix time of a data plane's last sync request.\n# TYPE sluice_control_dataplane_last_seen_timestamp_seconds gauge"
        );
        for (id, l) in live.iter() {
            let at = l.last_seen_ms as f64 / 1000.0;
            let _ = writeln!(
                out,
                "sluice_control_dataplane_last_seen_timestamp_seconds{{dataplane=\"{id}\"}} {at:.3}"
            );
        }
        drop(live);
        crate::sinks::stats::render(&mut out);
        out
    }
}
