//! Worker threads: one monoio runtime, one listener and its connections each.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use monoio::net::{ListenerOpts, TcpListener};

use super::conn;
use super::state::{Shared, Worker};

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
        let worker = Rc::new(Worker::new(id, shared));
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
