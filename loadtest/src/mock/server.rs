//! Worker threads: one monoio runtime, one listener and its connections each.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use monoio::net::{ListenerOpts, TcpListener};

use super::split::Split;
use super::{conn, MockArgs};

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
    tls: Option<Arc<rustls::ServerConfig>>,
    epoll: bool,
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

/// Runs worker `id`: binds `addr`, reports the bound address on `ready`, then
/// serves until the process ends. Returns only when it failed to start.
pub(super) fn worker(
    id: usize,
    addr: SocketAddr,
    core: Option<usize>,
    shared: Arc<Shared>,
    ready: SyncSender<anyhow::Result<SocketAddr>>,
) -> anyhow::Result<()> {
    if let Some(core) = core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
            tracing::warn!(worker = id, core, "could not pin mock worker");
        }
    }
    let runtime = if shared.epoll {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .map(Into::into)
    } else {
        monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
    };
    let mut runtime = match runtime.context("building the monoio runtime") {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e));
            return Ok(());
        }
    };
    runtime.block_on(async move {
        let opts = ListenerOpts::new().reuse_port(true).backlog(4096);
        let bound = TcpListener::bind_with_config(addr, &opts)
            .and_then(|l| Ok((l.local_addr()?, l)))
            .with_context(|| format!("binding {addr}"));
        let listener = match bound {
            Ok((local, l)) => {
                let _ = ready.send(Ok(local));
                l
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return Ok(());
            }
        };
        let tls = shared.tls.clone().map(monoio_rustls::TlsAcceptor::from);
        let worker = Rc::new(Worker {
            id,
            shared,
            seq: Cell::new(0),
        });
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of descriptors and the like: back off, keep serving.
                    tracing::warn!(worker = id, error = %e, "mock accept failed");
                    monoio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let worker = worker.clone();
            match tls.clone() {
                None => {
                    monoio::spawn(conn::serve(stream, worker));
                }
                Some(acceptor) => {
                    monoio::spawn(async move {
                        match acceptor.accept(stream).await {
                            Ok(tls) => conn::serve(tls, worker).await,
                            Err(e) => tracing::debug!(error = %e, "mock TLS handshake failed"),
                        }
                    });
                }
            }
        }
    })
}
