//! A worker's state: what its connection tasks share on its thread (pools,
//! spare buffers, record sink), and what all workers share. The threads and
//! the connection loop that use it are in [`crate::server`]; the request's
//! phases in [`crate::proxy`].

use crate::config::Limits;
use crate::current::SnapshotCell;
use crate::io::spares::Spares;
use crate::metrics::{Metrics, WorkerMetrics};
use crate::sink::WorkerSink;
use crate::upstream::pool::Pool;
use sluice_contract::record::Record;
use std::cell::{Cell, RefCell};
use std::sync::Arc;

/// What the workers share (read-only, or atomics).
pub struct Shared {
    /// Limits and timeouts.
    pub limits: Limits,
    /// The current snapshot.
    pub cell: Arc<SnapshotCell>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Client TLS config for upstreams.
    pub tls: Arc<rustls::ClientConfig>,
    /// Closed when the data plane starts shutting down.
    pub shutdown: async_channel::Receiver<()>,
    /// Hashes client addresses for records.
    pub ip_hasher: sluice_contract::iphash::IpHasher,
    /// The limit on the snapshot's age when control is away, if one is set.
    pub freshness: Option<crate::agent::Freshness>,
}

/// Everything one worker owns; shared by its connection tasks through `Rc`.
pub struct Worker {
    /// Worker index.
    pub id: usize,
    /// What all workers share.
    pub shared: Arc<Shared>,
    /// Where this worker's records go.
    pub sink: WorkerSink,
    /// This worker's idle upstream connections.
    pub pool: RefCell<Pool>,
    /// This worker's spare buffers.
    pub spares: RefCell<Spares>,
    /// TLS dialler for upstreams.
    pub tls: monoio_rustls::TlsConnector,
    rng: Cell<u64>,
}

impl Worker {
    /// A worker's state; `seed` (non-zero) starts its random sequence.
    pub fn new(
        id: usize,
        shared: Arc<Shared>,
        sink: WorkerSink,
        pool: RefCell<Pool>,
        tls: monoio_rustls::TlsConnector,
        seed: u64,
    ) -> Worker {
        Worker {
            id,
            shared,
            sink,
            pool,
            spares: RefCell::default(),
            tls,
            rng: Cell::new(seed | 1),
        }
    }

    /// This worker's counters.
    pub fn metrics(&self) -> &WorkerMetrics {
        self.shared.metrics.worker(self.id)
    }

    /// Hands a finished request's record to the sink.
    pub fn record(&self, record: Record) {
        self.sink.push(record);
    }

    /// A pseudo-random number (xorshift; for weighted target choice only).
    pub fn random(&self) -> u64 {
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        x
    }
}
