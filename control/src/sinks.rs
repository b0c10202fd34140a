//! Record sinks: every ingested record published, exactly once, to a NATS
//! JetStream stream operators already run.
//!
//! - [`config`]: a sink as stored (`sink add nats ...`), its secret sealed
//!   under the master key. [`message`]: the JSON a record becomes (schema
//!   version 1, no content ever).
//! - [`cursor`]: the durable cursor per (sink, data plane) in redb, advanced
//!   only after JetStream acknowledged; what retention must keep for it.
//! - [`publisher`]: one task per sink. [`nats`]: connecting, the stream.
//! - [`stats`]: lag and error counters for `/metrics` and `sink list`.
//!
//! # Exactly once, in order
//! Records are keyed (data plane, seq) and reach control in seq order per
//! data plane. A publisher publishes the records past its cursor one at a
//! time, each with `Nats-Msg-Id: <data plane>:<seq>`, waiting for the
//! acknowledgment before the next, and commits the cursor after each batch.
//! A crash or a lost connection between an acknowledgment and the commit
//! replays at most one batch: the engine drops a replay within the stream's
//! duplicate window, and beyond it the publisher finds the batch in the
//! stream's tail (the ids of its last messages, read at every connect) and
//! skips it. This holds while Sluice is the only writer of the stream.
//! While the engine is away records keep landing in redb; retention keeps
//! every record some sink has not acknowledged (records of a deleted tenant
//! are erased all the same), and a sink behind for longer than its limit
//! raises a `sink_stalled` alert.

pub(crate) mod config;
pub(crate) mod cursor;
pub(crate) mod message;
pub(crate) mod nats;
pub(crate) mod publisher;
pub(crate) mod stats;

use crate::app::App;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The alert kind of a sink that stays behind.
pub(crate) const STALLED_ALERT: &str = "sink_stalled";
/// How often the sink list is reread (an added sink starts within this).
const RESCAN: Duration = Duration::from_millis(500);

/// Starts the thread that runs every sink's publisher on its own tokio
/// runtime, starting and stopping them as sinks are added and removed.
pub(crate) fn start(app: Arc<App>) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(4)
        .thread_name("sinks")
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("sinks".into())
        .spawn(move || rt.block_on(supervise(app)))
        .map(drop)
}

async fn supervise(app: Arc<App>) {
    // Sink name → (its row when started, its task).
    let mut running: BTreeMap<String, (config::SinkRow, tokio::task::JoinHandle<()>)> = BTreeMap::new();
    loop {
        let rows = match app.store().and_then(|s| cursor::sinks(&s.begin_read()?)) {
            Ok(rows) => rows,
            Err(crate::store::StoreError::Unavailable) => return,
            Err(e) => {
                tracing::warn!(error = %e, "reading sinks");
                tokio::time::sleep(RESCAN).await;
                continue;
            }
        };
        let wanted: BTreeMap<String, config::SinkRow> =
            rows.into_iter().map(|r| (r.name.clone(), r)).collect();
        running.retain(|name, (row, task)| {
            let keep = wanted.get(name) == Some(row);
            if !keep {
                task.abort();
                stats::remove(name);
                tracing::info!(sink = %name, "sink stopped");
            }
            keep
        });
        for (name, row) in wanted {
            if let std::collections::btree_map::Entry::Vacant(slot) = running.entry(name) {
                let task = tokio::spawn(publisher::run(app.clone(), row.clone()));
                slot.insert((row, task));
            }
        }
        tokio::time::sleep(RESCAN).await;
    }
}
