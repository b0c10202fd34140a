//! The one thread that writes to the store.
//!
//! Work arrives over a channel. Admin changes run one per transaction (so a
//! refused change aborts only itself); record batches that are waiting
//! together share one transaction, committed with immediate durability before
//! any of them is acknowledged.

use super::{self as admin_ops, AdminOp, Applied};
use crate::store::ingest::{self, Batch, Ingested};
use crate::store::{Store, StoreError};
use crossbeam_channel::{bounded, Receiver, Sender};
use redb::WriteTransaction;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Most record batches grouped into one transaction.
const MAX_GROUP_BATCHES: usize = 64;
/// Most records grouped into one transaction.
const MAX_GROUP_RECORDS: usize = 100_000;
/// Jobs that may wait for the writer before submitters block.
const QUEUE: usize = 256;

/// Told about every commit, on the writer thread, after it is durable.
pub(crate) trait Observer: Send + Sync {
    /// An admin change committed.
    fn admin_committed(&self, applied: &Applied);
    /// Record batches committed in one transaction.
    fn records_committed(&self, results: &[Ingested]);
    /// Inside an admin change's transaction, after it applied and before it
    /// commits (the audit trail appends here); an error aborts the change.
    /// `actor` names who asked (see [`acting_as`]).
    fn admin_applying(
        &self,
        _txn: &WriteTransaction,
        _op: &AdminOp,
        _actor: Option<&str>,
    ) -> Result<(), StoreError> {
        Ok(())
    }
    /// An admin change was refused; its transaction was aborted.
    fn admin_refused(&self, _store: &Store, _op: &AdminOp, _error: &StoreError, _actor: Option<&str>) {}
    /// After an admin change committed, before it is answered (the rewrite
    /// that takes a deleted tenant's bytes out of the file); an error is the answer.
    fn admin_settled(&self, _store: &Store, _op: &AdminOp) -> Result<(), StoreError> {
        Ok(())
    }
}

thread_local! {
    /// Who the admin changes submitted from this thread are made for.
    static ACTOR: std::cell::RefCell<Option<Arc<str>>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f` with `actor` (an admin token's name) as the one asking for every
/// admin change `f` submits from this thread, for the audit trail; the
/// handlers in between need not carry it.
pub(crate) fn acting_as<R>(actor: &str, f: impl FnOnce() -> R) -> R {
    let previous = ACTOR.with(|a| a.replace(Some(Arc::from(actor))));
    let out = f();
    ACTOR.with(|a| *a.borrow_mut() = previous);
    out
}

enum Job {
    Admin(AdminOp, Option<Arc<str>>, Sender<Result<Applied, StoreError>>),
    Ingest(Batch, Sender<Result<Ingested, StoreError>>),
    Stop,
}

/// Handle to the writer thread.
pub(crate) struct Writer {
    tx: Sender<Job>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    /// Starts the writer over `store`.
    pub(crate) fn spawn(store: Arc<Store>, observer: Arc<dyn Observer>) -> std::io::Result<Writer> {
        let (tx, rx) = bounded(QUEUE);
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(&store, &rx, observer.as_ref()))?;
        Ok(Writer {
            tx,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Applies an admin change and waits until it is durable (or refused).
    pub(crate) fn admin(&self, op: AdminOp) -> Result<Applied, StoreError> {
        let (tx, rx) = bounded(1);
        self.tx
            .send(Job::Admin(op, ACTOR.with(|a| a.borrow().clone()), tx))
            .map_err(|_| StoreError::Unavailable)?;
        rx.recv().map_err(|_| StoreError::Unavailable)?
    }

    /// Stores a record batch and waits until it is durable.
    pub(crate) fn ingest(&self, batch: Batch) -> Result<Ingested, StoreError> {
        let (tx, rx) = bounded(1);
        self.tx
            .send(Job::Ingest(batch, tx))
            .map_err(|_| StoreError::Unavailable)?;
        rx.recv().map_err(|_| StoreError::Unavailable)?
    }

    /// Finishes the work queued so far, then stops the thread; later work is refused.
    pub(crate) fn stop(&self) {
        let _ = self.tx.send(Job::Stop);
        let thread = self.thread.lock().map(|mut t| t.take()).unwrap_or(None);
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

fn run(store: &Store, rx: &Receiver<Job>, observer: &dyn Observer) {
    let mut held: Option<Job> = None;
    loop {
        let job = match held.take() {
            Some(j) => j,
            None => match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            },
        };
        match job {
            Job::Stop => return,
            Job::Admin(op, actor, reply) => {
                let actor = actor.as_deref();
                let result = run_admin(store, &op, actor, observer);
                match &result {
                    Ok(applied) => observer.admin_committed(applied),
                    Err(e) => {
                        tracing::info!(error = %e, "admin change refused");
                        observer.admin_refused(store, &op, e, actor);
                    }
                }
                let result = result.and_then(|a| observer.admin_settled(store, &op).map(|()| a));
                let _ = reply.send(result);
            }
            Job::Ingest(batch, reply) => {
                let mut records = batch.records.len();
                let mut group = vec![(batch, reply)];
                while group.len() < MAX_GROUP_BATCHES && records < MAX_GROUP_RECORDS {
                    match rx.try_recv() {
                        Ok(Job::Ingest(b, r)) => {
                            records += b.records.len();
                            group.push((b, r));
                        }
                        Ok(other) => {
                            held = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let (batches, replies): (Vec<Batch>, Vec<_>) = group.into_iter().unzip();
                match run_ingest(store, &batches) {
                    Ok(results) => {
                        observer.records_committed(&results);
                        for (reply, r) in replies.into_iter().zip(results) {
                            let _ = reply.send(Ok(r));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, batches = batches.len(), "storing records failed");
                        for reply in replies {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                }
            }
        }
    }
}

fn run_admin(
    store: &Store,
    op: &AdminOp,
    actor: Option<&str>,
    observer: &dyn Observer,
) -> Result<Applied, StoreError> {
    let txn = store.begin_write()?;
    match admin_ops::apply(&txn, op).and_then(|a| observer.admin_applying(&txn, op, actor).map(|()| a)) {
        Ok(applied) => {
            txn.commit()?;
            Ok(applied)
        }
        Err(e) => {
            txn.abort()?;
            Err(e)
        }
    }
}

fn run_ingest(store: &Store, batches: &[Batch]) -> Result<Vec<Ingested>, StoreError> {
    let start = std::time::Instant::now();
    let txn = store.begin_write()?;
    match ingest::apply(&txn, batches, crate::billing::meter::apply) {
        Ok(results) => {
            let applied = start.elapsed();
            txn.commit()?;
            tracing::debug!(
                batches = batches.len(),
                records = batches.iter().map(|b| b.records.len()).sum::<usize>(),
                apply_us = applied.as_micros() as u64,
                commit_us = (start.elapsed() - applied).as_micros() as u64,
                "records committed"
            );
            Ok(results)
        }
        Err(e) => {
            txn.abort()?;
            Err(e)
        }
    }
}
