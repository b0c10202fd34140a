//! Where records go: workers push, one consumer thread drains.
//!
//! Workers never block on the sink. Each worker owns a [`WorkerSink`]; when the
//! bounded queue is full the record waits in that worker's backlog and is sent
//! ahead of the next one, so no record is dropped and none overtakes another
//! from the same worker. The consumer is either the JSON-lines writer
//! ([`spawn_jsonl_writer`], standalone mode) or the control-plane agent.

use crossbeam_channel::{Receiver, Sender, TrySendError};
use sluice_contract::record::Record;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// The consuming end of the record queue.
pub type RecordRx = Receiver<Record>;

/// The producing end; clone one per worker into a [`WorkerSink`].
#[derive(Clone)]
pub struct RecordTx {
    tx: Sender<Record>,
}

/// A bounded record queue.
pub fn channel(capacity: usize) -> (RecordTx, RecordRx) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    (RecordTx { tx }, rx)
}

/// A worker's handle on the queue. Not `Sync`: one per worker thread.
pub struct WorkerSink {
    tx: RecordTx,
    backlog: RefCell<VecDeque<Record>>,
}

impl WorkerSink {
    /// A sink for one worker.
    pub fn new(tx: RecordTx) -> Self {
        WorkerSink {
            tx,
            backlog: RefCell::new(VecDeque::new()),
        }
    }

    /// Queues `record` without blocking.
    pub fn push(&self, record: Record) {
        let mut backlog = self.backlog.borrow_mut();
        backlog.push_back(record);
        while let Some(r) = backlog.pop_front() {
            match self.tx.tx.try_send(r) {
                Ok(()) => {}
                Err(TrySendError::Full(r)) | Err(TrySendError::Disconnected(r)) => {
                    backlog.push_front(r);
                    break;
                }
            }
        }
    }

    /// Records waiting in this worker's backlog.
    pub fn backlog_len(&self) -> usize {
        self.backlog.borrow().len()
    }

    /// Hands the backlog over, waiting up to `timeout` per record; called once
    /// when the worker stops. Returns how many could not be delivered.
    pub fn flush_blocking(&self, timeout: Duration) -> usize {
        let mut backlog = self.backlog.borrow_mut();
        while let Some(r) = backlog.pop_front() {
            if let Err(e) = self.tx.tx.send_timeout(r, timeout) {
                backlog.push_front(e.into_inner());
                break;
            }
        }
        backlog.len()
    }
}

/// How long the records writer lets records gather while they keep coming.
const LINGER: Duration = Duration::from_millis(5);

/// Standalone mode: appends each record as one JSON line to `path`, flushing
/// whenever the queue runs dry (at most every [`LINGER`] under load), and
/// fsyncs in group commits on a thread of its own (see [`spawn_syncer`]).
/// Ends when every sender is gone, after writing and fsyncing what they
/// sent.
pub fn spawn_jsonl_writer(path: PathBuf, rx: RecordRx) -> std::io::Result<std::thread::JoinHandle<()>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    let syncer = spawn_syncer(file.try_clone()?, path.clone())?;
    std::thread::Builder::new()
        .name("sluice-records".into())
        .spawn(move || {
            let mut out = std::io::BufWriter::with_capacity(64 * 1024, file);
            let mut line = Vec::with_capacity(512);
            // Under load, wake on a timer and take what queued meanwhile: a
            // writer parked on the channel costs every request a futex wake
            // (and this thread a write per record). Idle, it parks.
            let mut busy = false;
            loop {
                let first = if busy {
                    std::thread::sleep(LINGER);
                    match rx.try_recv() {
                        Ok(r) => r,
                        Err(crossbeam_channel::TryRecvError::Empty) => {
                            busy = false;
                            continue;
                        }
                        Err(crossbeam_channel::TryRecvError::Disconnected) => break,
                    }
                } else {
                    match rx.recv() {
                        Ok(r) => r,
                        Err(_) => break,
                    }
                };
                busy = true;
                let mut next = Some(first);
                while let Some(record) = next {
                    line.clear();
                    if serde_json::to_writer(&mut line, &record).is_ok() {
                        line.push(b'\n');
                        if let Err(e) = out.write_all(&line) {
                            tracing::error!(error = %e, path = %path.display(), "record write failed");
                        }
                    }
                    next = rx.try_recv().ok();
                }
                // In the kernel now: a kill -9 cannot lose it. The fsync
                // (power loss) is the syncer's, so a slow disk never holds
                // records back in this process's memory.
                if let Err(e) = out.flush() {
                    tracing::error!(error = %e, path = %path.display(), "record flush failed");
                }
                syncer.dirty();
            }
            syncer.finish();
        })
}

/// The fsyncing side of the records file: one thread that, whenever the
/// writer says it wrote, fsyncs once for everything written since its last
/// fsync began (a group commit: one `fdatasync` covers every record of every
/// batch written meanwhile), at most once per [`LINGER`].
struct Syncer {
    dirty: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<()>,
}

impl Syncer {
    /// New bytes were written: fsync them soon.
    fn dirty(&self) {
        self.dirty.store(true, std::sync::atomic::Ordering::Release);
        self.handle.thread().unpark();
    }

    /// Waits for the last fsync.
    fn finish(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        self.handle.thread().unpark();
        let _ = self.handle.join();
    }
}

fn spawn_syncer(file: std::fs::File, path: PathBuf) -> std::io::Result<Syncer> {
    use std::sync::atomic::Ordering;
    let dirty = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (d, st) = (dirty.clone(), stop.clone());
    let handle = std::thread::Builder::new()
        .name("sluice-records-sync".into())
        .spawn(move || loop {
            let stopping = st.load(Ordering::Acquire);
            if d.swap(false, Ordering::AcqRel) {
                if let Err(e) = file.sync_data() {
                    tracing::error!(error = %e, path = %path.display(), "record fsync failed");
                }
                // At most one fsync per LINGER: under load each covers more.
                if !stopping {
                    std::thread::sleep(LINGER);
                }
                continue;
            }
            if stopping {
                break;
            }
            // An unpark before this park is not lost: park returns at once.
            std::thread::park();
        })?;
    Ok(Syncer { dirty, stop, handle })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_contract::record::ApiRoute;

    #[test]
    fn full_queue_keeps_records_in_order() {
        let (tx, rx) = channel(2);
        let sink = WorkerSink::new(tx);
        for i in 0..5 {
            sink.push(Record::new(i, ApiRoute::Other));
        }
        assert_eq!(sink.backlog_len(), 3);
        let got: Vec<u64> = (0..2).map(|_| rx.recv().unwrap().ts_ms).collect();
        assert_eq!(got, [0, 1]);
        sink.push(Record::new(5, ApiRoute::Other));
        let got: Vec<u64> = (0..2).map(|_| rx.recv().unwrap().ts_ms).collect();
        assert_eq!(got, [2, 3]);
        assert_eq!(sink.flush_blocking(Duration::from_millis(10)), 0);
        let got: Vec<u64> = (0..2).map(|_| rx.recv().unwrap().ts_ms).collect();
        assert_eq!(got, [4, 5]);
        sink.push(Record::new(6, ApiRoute::Other));
        sink.push(Record::new(7, ApiRoute::Other));
        sink.push(Record::new(8, ApiRoute::Other));
        assert_eq!(sink.flush_blocking(Duration::from_millis(10)), 1);
    }
}
