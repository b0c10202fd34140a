//! One worker's thread: pinned to its core, its runtime, its listeners, its
//! accept loop.

use crate::metrics::Driver;
use crate::sink::{RecordTx, WorkerSink};
use crate::upstream::pool::Pool;
use crate::worker::Shared;
use crate::worker::Worker;
use monoio::net::{ListenerOpts, TcpListener, TcpStream};

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a worker listens.
pub(super) struct Listen {
    /// Plain TCP.
    pub(super) addr: SocketAddr,
    /// TLS, if configured.
    pub(super) tls: Option<super::TlsListen>,
}

/// The bound addresses (plain, TLS), or why binding failed.
pub(super) type Ready = std::io::Result<(SocketAddr, Option<SocketAddr>)>;

/// Thread body of worker `id`.
pub(super) fn run(
    id: usize,
    core: Option<core_affinity::CoreId>,
    listen: Listen,
    shared: Arc<Shared>,
    records: RecordTx,
    ready: Sender<Ready>,
) {
    if let Some(core) = core {
        if !core_affinity::set_for_current(core) {
            tracing::warn!(worker = id, core = core.id, "could not pin worker to core");
        }
    }
    let runtime = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build();
    let mut runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let driver = match &runtime {
        monoio::FusionRuntime::Uring(_) => Driver::IoUring,
        monoio::FusionRuntime::Legacy(_) => Driver::Epoll,
    };
    shared.metrics.worker(id).set_driver(driver);
    tracing::info!(
        worker = id,
        driver = driver.as_str(),
        core = core.map(|c| c.id),
        "worker starting"
    );
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let seed = (clock ^ (id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1;
    let pool = Pool::new(shared.limits.pool_max_idle, shared.limits.pool_idle_timeout());
    let tls = monoio_rustls::TlsConnector::from(shared.tls.clone());
    let worker = Rc::new(Worker::new(
        id,
        shared,
        WorkerSink::new(records),
        RefCell::new(pool),
        tls,
        seed,
    ));
    runtime.block_on(accept_loop(worker.clone(), listen, ready));
    // Dropping the runtime drops any task still running; each pushes its
    // record on drop. Hand those over before the thread ends.
    drop(runtime);
    let undelivered = worker.sink.flush_blocking(Duration::from_secs(5));
    if undelivered > 0 {
        tracing::error!(
            worker = id,
            records = undelivered,
            "records could not be handed to the sink"
        );
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let opts = ListenerOpts::new()
        .reuse_port(true)
        .reuse_addr(true)
        .backlog(4096);
    let listener = TcpListener::bind_with_config(addr, &opts)?;
    let bound = listener.local_addr().unwrap_or(addr);
    Ok((listener, bound))
}

/// Accepts on `listener`; without one, never completes.
async fn accept_on(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn accept_loop(w: Rc<Worker>, listen: Listen, ready: Sender<Ready>) {
    let (listener, bound) = match bind(listen.addr) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let (tls_listener, ingress, tls_bound) = match &listen.tls {
        None => (None, None, None),
        Some(t) => match bind(t.addr) {
            Ok((l, b)) => (Some(l), Some(t.ingress.clone()), Some(b)),
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        },
    };
    let _ = ready.send(Ok((bound, tls_bound)));
    let shutdown = w.shared.shutdown.clone();
    loop {
        let accepted = monoio::select! {
            _ = shutdown.recv() => break,
            accepted = listener.accept() => accepted.map(|(s, p)| (s, p, false)),
            accepted = accept_on(tls_listener.as_ref()) => accepted.map(|(s, p)| (s, p, true)),
        };
        match (accepted, &ingress) {
            (Ok((stream, peer, true)), Some(ingress)) => {
                monoio::spawn(super::tls_conn::serve(w.clone(), stream, peer, ingress.clone()));
            }
            (Ok((stream, peer, _)), _) => {
                monoio::spawn(super::conn::serve(w.clone(), stream, peer));
            }
            (Err(e), _) => {
                // Out of descriptors, most likely: back off instead of spinning.
                tracing::warn!(worker = w.id, error = %e, "accept failed");
                monoio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    drop(listener);
    drop(tls_listener);
    let deadline = Instant::now() + w.shared.limits.shutdown_grace();
    while w.metrics().active_connections() > 0 && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = w.metrics().active_connections();
    if left > 0 {
        tracing::warn!(
            worker = w.id,
            connections = left,
            "grace period over; closing connections"
        );
    }
    tracing::info!(worker = w.id, "worker stopped");
}
