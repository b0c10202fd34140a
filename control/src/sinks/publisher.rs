//! One sink's publisher: reads what is past its cursor, publishes each record
//! and waits for JetStream's acknowledgment before the next one (so records
//! of a data plane reach the stream in seq order even across failures),
//! then advances the cursor in redb. After any failure it reconnects and
//! reads the stream's tail, so a record acknowledged but not yet past the
//! cursor is not published twice.

use super::config::{subject_for, SinkRow};
use super::cursor::{self, Backlog, SinkOp};
use super::nats::{self, Session};
use super::stats::{ErrorKind, SinkStats};
use crate::app::App;
use crate::ops::AdminOp;
use crate::store::StoreError;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Records read and published between two cursor commits.
const BATCH: usize = 512;
/// How long an idle publisher waits before looking for new records.
const IDLE: Duration = Duration::from_millis(100);
/// How often the pending records are counted.
const COUNT_EVERY: Duration = Duration::from_secs(1);
/// Retry delays after a failure.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Runs sink `row` until the task is aborted (the sink was removed).
pub(crate) async fn run(app: Arc<App>, row: SinkRow) {
    let stats = super::stats::of(&row.name);
    let mut p = Publisher {
        app,
        row,
        stats,
        progress_ms: crate::clock::now_ms(),
        alerted: false,
        counted: None,
    };
    let mut backoff = BACKOFF_MIN;
    loop {
        match p.session().await {
            Ok(mut s) => match p.drain(&mut s).await {
                Ok(()) => backoff = BACKOFF_MIN,
                Err((kind, e)) => p.failed(kind, e),
            },
            Err(e) => p.failed(ErrorKind::Connect, e),
        }
        p.stats.connected.store(false, Ordering::Relaxed);
        if let Err(e) = p.observe(true).await {
            p.failed(ErrorKind::Store, e);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

struct Publisher {
    app: Arc<App>,
    row: SinkRow,
    stats: Arc<SinkStats>,
    /// Since when the sink is behind without progress, unix ms.
    progress_ms: u64,
    /// The stalled alert was raised for this stretch.
    alerted: bool,
    counted: Option<Instant>,
}

type Failure = (ErrorKind, String);

impl Publisher {
    async fn session(&self) -> Result<(Session, HashSet<String>), String> {
        let secret = cursor::open_secret(&self.app.vault, &self.row)
            .map_err(|e| format!("opening the secret: {e}"))?;
        let mut s = nats::connect(&self.row, secret).await?;
        let tail = nats::tail_ids(&mut s, BATCH as u64 + 1).await?;
        self.stats.connected.store(true, Ordering::Relaxed);
        tracing::info!(sink = %self.row.name, url = %self.row.url, stream = %self.row.stream, "sink connected");
        Ok((s, tail))
    }

    /// Publishes until something fails.
    async fn drain(&mut self, (s, tail): &mut (Session, HashSet<String>)) -> Result<(), Failure> {
        loop {
            let backlog = self.observe(false).await.map_err(|e| (ErrorKind::Store, e))?;
            if backlog.records.is_empty() {
                tokio::time::sleep(IDLE).await;
                continue;
            }
            // Data plane → next seq, for what the engine acknowledged.
            let mut acked: BTreeMap<u32, u64> = BTreeMap::new();
            let mut failure = None;
            for r in backlog.records {
                let duplicate = if tail.contains(&r.msg_id) {
                    true
                } else {
                    match nats::publish(s, subject_for(&self.row.subject, &r.tenant), &r.msg_id, r.payload)
                        .await
                    {
                        Ok(d) => d,
                        Err(e) => {
                            failure = Some((ErrorKind::Publish, e));
                            break;
                        }
                    }
                };
                let counter = if duplicate {
                    &self.stats.duplicates
                } else {
                    &self.stats.published
                };
                counter.fetch_add(1, Ordering::Relaxed);
                acked.insert(r.dp, r.seq + 1);
            }
            if !acked.is_empty() {
                self.advance(acked).await.map_err(|e| (ErrorKind::Store, e))?;
                // Everything the tail could have saved us from is past the cursor now.
                tail.clear();
            }
            if let Some(f) = failure {
                return Err(f);
            }
        }
    }

    async fn advance(&mut self, acked: BTreeMap<u32, u64>) -> Result<(), String> {
        let op = AdminOp::Sink(SinkOp::Advance {
            name: self.row.name.clone(),
            next: acked.into_iter().collect(),
        });
        let app = self.app.clone();
        blocking(move || app.writer.admin(op).map(drop)).await?;
        let now = crate::clock::now_ms();
        self.stats.last_ack_ms.store(now, Ordering::Relaxed);
        self.progress_ms = now;
        self.alerted = false;
        Ok(())
    }

    /// Reads the backlog (counting it now and then, or when `count`), keeps
    /// the gauges current and raises the stalled alert when due.
    async fn observe(&mut self, count: bool) -> Result<Backlog, String> {
        let count = count || self.counted.is_none_or(|t| t.elapsed() >= COUNT_EVERY);
        let limit = if count && !self.stats.connected.load(Ordering::Relaxed) {
            0
        } else {
            BATCH
        };
        let store = self.app.store().map_err(|e| e.to_string())?;
        let row = self.row.clone();
        let backlog = blocking(move || cursor::backlog(&store, &row, limit, count)).await?;
        let now = crate::clock::now_ms();
        if count {
            self.counted = Some(Instant::now());
            self.stats.pending.store(backlog.pending, Ordering::Relaxed);
            self.stats
                .oldest_pending_ms
                .store(backlog.oldest_ms.unwrap_or(0), Ordering::Relaxed);
        } else if backlog.records.is_empty() {
            self.stats.pending.store(0, Ordering::Relaxed);
            self.stats.oldest_pending_ms.store(0, Ordering::Relaxed);
        }
        if backlog.oldest_ms.is_none() && backlog.records.is_empty() {
            // Caught up: a later stretch of lag starts counting from now.
            self.progress_ms = now;
            self.alerted = false;
        } else if !self.alerted && now.saturating_sub(self.progress_ms) >= self.row.stall_alert_secs * 1000 {
            self.alerted = true;
            let op = AdminOp::Sink(SinkOp::Stalled {
                name: self.row.name.clone(),
                now_ms: now,
            });
            let app = self.app.clone();
            blocking(move || {
                app.writer.admin(op)?;
                app.billing.kick();
                Ok(())
            })
            .await?;
        }
        Ok(backlog)
    }

    fn failed(&self, kind: ErrorKind, e: String) {
        tracing::warn!(sink = %self.row.name, error = %e, "sink");
        self.stats.error(kind, e);
    }
}

/// Runs `f` on tokio's blocking pool (redb reads, the writer's queue).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("store task: {e}")),
    }
}
