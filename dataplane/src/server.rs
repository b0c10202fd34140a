//! Workers and listeners.
//!
//! Each worker is a thread pinned to a core, running its own monoio runtime
//! (io_uring, or epoll where io_uring is unavailable) with its own
//! SO_REUSEPORT listener (and, with TLS, a second one for TLS), upstream
//! pools and record sink handle. A request never changes thread. [`start`]
//! returns once every listener is bound.

pub mod admin;
mod begin;
pub mod certs;
pub mod conn;
pub mod h2_conn;
mod thread;
pub mod tls_conn;

use crate::config::Limits;
use crate::current::SnapshotCell;
use crate::metrics::Metrics;
use crate::sink::RecordTx;
use crate::worker::Shared;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

/// How to run the workers.
pub struct ServerConfig {
    /// Client listener address (port 0 picks one).
    pub listen: SocketAddr,
    /// Worker threads.
    pub workers: usize,
    /// Pin worker `i` to core `i` (modulo the cores available).
    pub pin: bool,
    /// The TLS listener, if any.
    pub tls: Option<TlsListen>,
}

/// A TLS listener beside the plain one.
#[derive(Clone, Debug)]
pub struct TlsListen {
    /// Address (port 0 picks one).
    pub addr: SocketAddr,
    /// Certificates, reloadable.
    pub ingress: Arc<certs::Ingress>,
}

/// Running workers.
pub struct Server {
    local_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    shutdown: async_channel::Sender<()>,
    workers: Vec<JoinHandle<()>>,
}

impl Server {
    /// The address the listeners are bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address the TLS listeners are bound to, if any.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// Stops accepting, lets requests in flight finish within the grace
    /// period, and waits for every worker to end.
    pub fn shutdown(self) {
        self.shutdown.close();
        for w in self.workers {
            let _ = w.join();
        }
    }
}

/// Starts the workers; returns once all listeners are bound.
pub fn start(
    config: &ServerConfig,
    limits: Limits,
    cell: Arc<SnapshotCell>,
    metrics: Arc<Metrics>,
    tls: Arc<rustls::ClientConfig>,
    records: RecordTx,
    freshness: Option<crate::agent::Freshness>,
) -> std::io::Result<Server> {
    let (shutdown_tx, shutdown_rx) = async_channel::bounded::<()>(1);
    let shared = Arc::new(Shared {
        limits,
        cell,
        metrics,
        tls,
        shutdown: shutdown_rx,
        ip_hasher: sluice_contract::iphash::IpHasher::default(),
        freshness,
    });
    let cores = if config.pin {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut addr = config.listen;
    let mut tls = config.tls.clone();
    let mut workers = Vec::with_capacity(config.workers);
    for id in 0..config.workers.max(1) {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let shared = shared.clone();
        let core = (!cores.is_empty()).then(|| cores[id % cores.len()]);
        let records = records.clone();
        let listen = thread::Listen {
            addr,
            tls: tls.clone(),
        };
        let handle = std::thread::Builder::new()
            .name(format!("sluice-worker-{id}"))
            .spawn(move || thread::run(id, core, listen, shared, records, ready_tx))?;
        // Worker 0 learns the ports when asked for port 0; the others share them.
        match ready_rx.recv() {
            Ok(Ok((bound, tls_bound))) => {
                addr = bound;
                if let (Some(t), Some(b)) = (tls.as_mut(), tls_bound) {
                    t.addr = b;
                }
            }
            Ok(Err(e)) => {
                shutdown_tx.close();
                return Err(e);
            }
            Err(_) => {
                shutdown_tx.close();
                return Err(std::io::Error::other("worker died while starting"));
            }
        }
        workers.push(handle);
    }
    Ok(Server {
        local_addr: addr,
        tls_addr: tls.map(|t| t.addr),
        shutdown: shutdown_tx,
        workers,
    })
}
