//! What the mock's workers share, and each worker's own view of it: kept
//! apart from the threads (`server.rs`) and the connections (`conn.rs`) that
//! use it, so neither has to import the other.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::split::Split;
use super::MockArgs;

/// State every worker shares, read-only on the request path except for the
/// worker's own counter slot and the opt-in record.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) tokens: u32,
    pub(super) ttft_ms: u64,
    pub(super) itl_ms: u64,
    pub(super) split: Option<Split>,
    pub(super) require_key: Option<Vec<u8>>,
    /// Status answered to every provider request (`--status`).
    pub(super) status: Option<u16>,
    /// `retry-after` seconds on 429/503/529 (`--retry-after`).
    pub(super) retry_after: u64,
    /// Silence before every head, ms (`--head-delay-ms`).
    pub(super) head_delay_ms: u64,
    /// The last request as JSON; `None` unless `--record`.
    pub(super) last: Option<Mutex<Option<String>>>,
    counters: Box<[Counter]>,
    /// TLS for the listener, when the mock serves https.
    pub(super) tls: Option<Arc<rustls::ServerConfig>>,
    /// Run on the epoll driver (`--epoll`).
    pub(super) epoll: bool,
}

/// A per-worker counter on its own cache lines, so workers never contend.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Counter(AtomicU64);

impl Shared {
    pub(super) fn new(args: &MockArgs, workers: usize, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        Self {
            tokens: args.tokens,
            ttft_ms: args.ttft_ms,
            itl_ms: args.itl_ms,
            split: args.split,
            require_key: args.require_key.as_ref().map(|k| k.as_bytes().to_vec()),
            status: args.status,
            retry_after: args.retry_after,
            head_delay_ms: args.head_delay_ms,
            last: args.record.then(|| Mutex::new(None)),
            counters: (0..workers).map(|_| Counter::default()).collect(),
            tls,
            epoll: args.epoll,
        }
    }

    /// Requests served by all workers (the mock's own endpoints excluded).
    pub(super) fn requests(&self) -> u64 {
        self.counters.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }
}

/// One worker's view: its slot in the shared state and its id sequence.
#[derive(Debug)]
pub(super) struct Worker {
    id: usize,
    pub(super) shared: Arc<Shared>,
    seq: Cell<u64>,
}

impl Worker {
    /// Worker `id`'s view of `shared`.
    pub(super) fn new(id: usize, shared: Arc<Shared>) -> Worker {
        Worker {
            id,
            shared,
            seq: Cell::new(0),
        }
    }

    /// A request id unique across workers: worker in the top 16 bits.
    pub(super) fn next_id(&self) -> u64 {
        let n = self.seq.get().wrapping_add(1);
        self.seq.set(n);
        ((self.id as u64) << 48) | (n & 0xffff_ffff_ffff)
    }

    /// Counts one request.
    pub(super) fn count(&self) {
        if let Some(c) = self.shared.counters.get(self.id) {
            c.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}
