//! The purges control runs: hourly from its own thread, and now when an
//! admin asks (`purge --now`). Each step is one admin operation through the
//! writer, so it is audited and never races another change.

use super::{PurgeReport, BUDGET};
use crate::app::App;
use crate::ops::AdminOp;
use crate::privacy::PrivacyOp;
use crate::store::StoreError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Purges until nothing is left; `rewrite` then rewrites the store file.
pub(crate) fn run(app: &App, by_admin: bool, rewrite: bool) -> Result<PurgeReport, StoreError> {
    let mut total = PurgeReport::default();
    loop {
        let slot = Arc::new(Mutex::new(None));
        let op = AdminOp::Privacy(PrivacyOp::Purge {
            now_ms: crate::clock::now_ms(),
            rollup_days: crate::privacy::rollup_retention_days(),
            budget: BUDGET,
            by_admin,
            rewrite,
            report: slot.clone(),
        });
        app.writer.admin(op)?;
        let r = slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .unwrap_or_default();
        total.add(&r);
        if !r.more {
            return Ok(total);
        }
    }
}

/// Starts the thread that purges now and then every `interval`.
pub(crate) fn start(app: Arc<App>, interval: Duration) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("retention".into())
        .spawn(move || loop {
            match run(&app, false, false) {
                Ok(r) if !r.is_empty() => tracing::info!(
                    records = r.records,
                    contents = r.contents,
                    rollups = r.rollups,
                    keys_destroyed = r.keys_destroyed,
                    "retention purge"
                ),
                Ok(_) => {}
                Err(StoreError::Unavailable) => return,
                Err(e) => tracing::warn!(error = %e, "retention purge failed"),
            }
            std::thread::sleep(interval);
        })
        .map(drop)
}
