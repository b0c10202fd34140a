//! One worker's thread: pinned to its core, its runtime, its listener, its
//! accept loop.

use crate::metrics::Driver;
use crate::sink::{RecordTx, WorkerSink};
use crate::upstream::pool::Pool;
use crate::worker::Shared;
use crate::worker::Worker;
use monoio::net::{ListenerOpts, TcpListener};

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Thread body of worker `id`.
pub(super) fn run(
    id: usize,
    core: Option<core_affinity::CoreId>,
    addr: SocketAddr,
    shared: Arc<Shared>,
    records: RecordTx,
    ready: Sender<std::io::Result<SocketAddr>>,
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
    runtime.block_on(accept_loop(worker.clone(), addr, ready));
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

async fn accept_loop(w: Rc<Worker>, addr: SocketAddr, ready: Sender<std::io::Result<SocketAddr>>) {
    let opts = ListenerOpts::new()
        .reuse_port(true)
        .reuse_addr(true)
        .backlog(4096);
    let listener = match TcpListener::bind_with_config(addr, &opts) {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let bound = listener.local_addr().unwrap_or(addr);
    let _ = ready.send(Ok(bound));
    let shutdown = w.shared.shutdown.clone();
    loop {
        monoio::select! {
            _ = shutdown.recv() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    monoio::spawn(super::conn::serve(w.clone(), stream, peer));
                }
                Err(e) => {
                    // Out of descriptors, most likely: back off instead of spinning.
                    tracing::warn!(worker = w.id, error = %e, "accept failed");
                    monoio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
    drop(listener);
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
