//! The sinks thread: one tokio runtime running every sink's publisher,
//! started and stopped as sinks are added and removed.

use crate::app::App;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::{config, cursor, publisher, stats};

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
