//! The record side: batching, shipping, spooling and replaying.
//!
//! Records move through three places, always in seq order:
//! the spool (oldest, on disk), `unsaved` (numbered batches that are neither
//! acked nor on disk: only while the disk fails), and `pending` (received, not
//! yet numbered). Shipping takes from the front only: the spool is replayed
//! first, and new batches go straight to control only while the spool is
//! drained; otherwise they are appended behind it. Going straight to control
//! is write-ahead too: each batch is appended (fsynced) first and the spool
//! emptied once control acks it, so a record is in memory only until its
//! batch is taken (at most [`super::BATCH_WAIT`] after it arrives) plus one
//! `fdatasync`, however slow control is.

use super::http::{Body, Client};
use super::spool::{Batch, Replay, Seqs, Spool};
use super::{AgentStats, Backoff, BATCH_RECORDS, BATCH_WAIT, MAX_BATCH, RECORDS_TIMEOUT};
use crate::sink::RecordRx;
use crossbeam_channel::{RecvTimeoutError, TryRecvError};
use serde::Deserialize;
use sluice_contract::record::Record;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest sleep while idle (keeps the loop's timers honest).
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// Pause after a disk failure (seq reservation or spool append) before retrying.
const DISK_RETRY: Duration = Duration::from_secs(1);
/// How long records are let gather after one arrives, before they are taken.
const LINGER: Duration = Duration::from_millis(5);

/// `POST /v1/records` answer.
#[derive(Deserialize)]
struct Ack {
    acked_through: u64,
}

/// The record shipping loop.
pub(super) struct Shipper {
    client: Client,
    rx: RecordRx,
    spool: Spool,
    seqs: Seqs,
    stats: Arc<AgentStats>,
    /// Received, not yet numbered.
    pending: Vec<Record>,
    /// When the oldest pending record arrived.
    first_wait: Option<Instant>,
    /// Numbered, neither acked nor on disk (the disk failed).
    unsaved: VecDeque<Batch>,
    /// Control is not asked before this (set by a failure).
    retry_at: Instant,
    backoff: Backoff,
    /// The disk is not retried before this.
    disk_retry_at: Instant,
    control_up: bool,
}

impl Shipper {
    pub(super) fn new(
        client: Client,
        rx: RecordRx,
        spool: Spool,
        seqs: Seqs,
        stats: Arc<AgentStats>,
    ) -> Self {
        let now = Instant::now();
        Shipper {
            client,
            rx,
            spool,
            seqs,
            stats,
            pending: Vec::with_capacity(BATCH_RECORDS),
            first_wait: None,
            unsaved: VecDeque::new(),
            retry_at: now,
            backoff: Backoff::new(),
            disk_retry_at: now,
            control_up: true,
        }
    }

    pub(super) fn run(mut self, poller: super::snapshots::PollerHandle) {
        loop {
            // Draining the queue comes first while it stays backed up.
            if !self.backed_up() && !self.spool.is_drained() && Instant::now() >= self.retry_at {
                self.replay_one();
            }
            let open = self.receive(self.wait_time());
            if !open {
                break;
            }
            if self.due() {
                self.flush(false);
            }
        }
        self.flush(true);
        // The disk or control may come back in a moment: a few more tries.
        for _ in 0..3 {
            if self.pending.is_empty() && self.unsaved.is_empty() {
                break;
            }
            std::thread::sleep(DISK_RETRY);
            self.disk_retry_at = Instant::now();
            self.retry_at = Instant::now();
            self.flush(true);
        }
        let lost: usize = self.pending.len() + self.unsaved.iter().map(Batch::len).sum::<usize>();
        if lost > 0 {
            tracing::error!(
                records = lost,
                "agent: shutting down with records neither acked nor spooled"
            );
        }
        tracing::info!(
            spooled = self.spool.pending(),
            next_seq = self.seqs.peek(),
            "agent: record shipper stopped"
        );
        poller.stop();
    }

    /// Whether the queue is at least half full: then drain into the spool
    /// before spending time on control (unless the disk is failing too).
    fn backed_up(&self) -> bool {
        Instant::now() >= self.disk_retry_at
            && self
                .rx
                .capacity()
                .is_some_and(|cap| self.rx.len().saturating_mul(2) >= cap.max(1))
    }

    /// How long to wait for the next record before something else is due.
    fn wait_time(&self) -> Duration {
        let now = Instant::now();
        let mut until = now + IDLE_WAIT;
        if let Some(first) = self.first_wait {
            until = until.min((first + BATCH_WAIT).max(self.disk_retry_at));
        }
        if !self.spool.is_drained() {
            until = until.min(self.retry_at.max(now));
        }
        if !self.unsaved.is_empty() {
            until = until.min(self.retry_at.max(self.disk_retry_at).max(now));
        }
        until.saturating_duration_since(now)
    }

    /// Waits up to `wait` for a record, then takes whatever else is queued, up
    /// to a full batch. Returns false once every sender is gone.
    fn receive(&mut self, wait: Duration) -> bool {
        if self.pending.len() >= MAX_BATCH {
            // Full and not flushed (the disk fails): wait instead of spinning.
            std::thread::sleep(wait);
            return true;
        }
        match self.rx.recv_timeout(wait) {
            Ok(r) => self.push(r),
            Err(RecvTimeoutError::Timeout) => return true,
            Err(RecvTimeoutError::Disconnected) => return false,
        }
        // Let the records that follow gather without waking this thread:
        // while it is parked on the channel, every request pays a futex wake.
        std::thread::sleep(LINGER.min(wait));
        while self.pending.len() < MAX_BATCH {
            match self.rx.try_recv() {
                Ok(r) => self.push(r),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
        true
    }

    fn push(&mut self, r: Record) {
        if self.pending.is_empty() {
            self.first_wait = Some(Instant::now());
        }
        self.pending.push(r);
    }

    fn due(&self) -> bool {
        let now = Instant::now();
        if now < self.disk_retry_at {
            return false;
        }
        let batch_due = self.pending.len() >= BATCH_RECORDS
            || self
                .first_wait
                .is_some_and(|t| now.duration_since(t) >= BATCH_WAIT);
        let retry_due = !self.unsaved.is_empty() && now >= self.retry_at;
        batch_due || retry_due
    }

    /// Numbers the pending records, then ships them (straight to control when
    /// nothing is spooled ahead and control is not in back-off) or spools them.
    fn flush(&mut self, closing: bool) {
        self.number_pending();
        let direct =
            self.spool.is_drained() && Instant::now() >= self.retry_at && (closing || !self.backed_up());
        if direct {
            while let Some(batch) = self.unsaved.front() {
                // Write-ahead: the batch is on disk before it is offered to
                // control, so how long control takes to ack does not widen
                // what a kill -9 or a power loss can take. (If the disk
                // fails, it is shipped from memory all the same.)
                let ahead = match self.spool.append(batch) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::error!(error = %e, "agent: spool append failed; shipping from memory");
                        self.disk_retry_at = Instant::now() + DISK_RETRY;
                        false
                    }
                };
                let n = batch.len() as u64;
                match post(&mut self.client, batch) {
                    Ok(()) => {
                        self.unsaved.pop_front();
                        if ahead {
                            // The spool was drained before this batch, so
                            // this batch is all it holds.
                            self.spool.ack_all();
                        }
                        self.stats.records_shipped.fetch_add(n, Ordering::Relaxed);
                        self.mark_up();
                    }
                    Err(e) => {
                        if ahead {
                            // Spooled already: replayed once control is back.
                            self.unsaved.pop_front();
                            self.stats.records_spooled.fetch_add(n, Ordering::Relaxed);
                            self.stats
                                .spool_pending
                                .store(self.spool.pending(), Ordering::Relaxed);
                        }
                        self.mark_down(&e);
                        break;
                    }
                }
            }
        }
        if Instant::now() < self.disk_retry_at {
            // The disk just failed (above, or before): not again at once.
            return;
        }
        while let Some(batch) = self.unsaved.front() {
            match self.spool.append(batch) {
                Ok(()) => {
                    let n = batch.len() as u64;
                    self.unsaved.pop_front();
                    self.stats.records_spooled.fetch_add(n, Ordering::Relaxed);
                    self.stats
                        .spool_pending
                        .store(self.spool.pending(), Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::error!(error = %e, "agent: spool append failed; records held in memory");
                    self.disk_retry_at = Instant::now() + DISK_RETRY;
                    break;
                }
            }
        }
    }

    /// Moves `pending` into numbered batches of at most [`MAX_BATCH`] in `unsaved`.
    fn number_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let first = match self.seqs.take(self.pending.len() as u64) {
            Ok(first) => first,
            Err(e) => {
                tracing::error!(error = %e, "agent: cannot reserve record seqs; records held in memory");
                self.disk_retry_at = Instant::now() + DISK_RETRY;
                return;
            }
        };
        let mut batch = Batch::default();
        for (seq, record) in (first..).zip(self.pending.drain(..)) {
            if batch.len() >= MAX_BATCH {
                self.unsaved.push_back(std::mem::take(&mut batch));
            }
            // Record has no map with non-string keys: serializing it cannot fail.
            if let Err(e) = batch.push(seq, &record) {
                tracing::error!(seq, error = %e, "agent: record does not serialize; skipped");
            }
        }
        if !batch.is_empty() {
            self.unsaved.push_back(batch);
        }
        self.first_wait = None;
    }

    /// Ships the oldest spooled records.
    fn replay_one(&mut self) {
        let replay: Replay = match self.spool.read(MAX_BATCH) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "agent: spool read failed");
                self.retry_at = Instant::now() + DISK_RETRY;
                return;
            }
        };
        if replay.skipped > 0 {
            tracing::warn!(lines = replay.skipped, "agent: skipped unreadable spool lines");
        }
        if !replay.batch.is_empty() {
            if let Err(e) = post(&mut self.client, &replay.batch) {
                self.mark_down(&e);
                return;
            }
            self.stats
                .records_shipped
                .fetch_add(replay.batch.len() as u64, Ordering::Relaxed);
            self.mark_up();
        }
        self.spool.ack(&replay);
        self.stats
            .spool_pending
            .store(self.spool.pending(), Ordering::Relaxed);
        if self.spool.is_drained() {
            tracing::info!("agent: spool replayed");
        }
    }

    fn mark_up(&mut self) {
        if !self.control_up {
            tracing::info!("agent: control acks records again");
        }
        self.control_up = true;
        self.stats.control_up.store(true, Ordering::Relaxed);
        self.backoff.reset();
        self.retry_at = Instant::now();
    }

    fn mark_down(&mut self, error: &str) {
        if self.control_up {
            tracing::warn!(error, "agent: records not acked; spooling and retrying");
        } else {
            tracing::debug!(error, "agent: records still not acked");
        }
        self.control_up = false;
        self.stats.control_up.store(false, Ordering::Relaxed);
        self.retry_at = Instant::now() + self.backoff.next();
    }
}

/// One `POST /v1/records`; `Ok` only for a 200 acking through the batch's last seq.
fn post(client: &mut Client, batch: &Batch) -> Result<(), String> {
    let body = batch.body();
    let body = Body {
        content_type: "application/json",
        bytes: &body,
    };
    let resp = client
        .request("POST", "/v1/records", Some(body), RECORDS_TIMEOUT)
        .map_err(|e| e.to_string())?;
    if resp.status != 200 {
        return Err(match resp.status {
            401 | 403 => "control refused the enrollment token".to_string(),
            s => format!("control answered {s}"),
        });
    }
    let ack: Ack = serde_json::from_slice(&resp.body).map_err(|e| format!("bad ack: {e}"))?;
    if ack.acked_through < batch.last_seq() {
        return Err(format!(
            "control acked through {} of a batch ending at {}",
            ack.acked_through,
            batch.last_seq()
        ));
    }
    Ok(())
}
