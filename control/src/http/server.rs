//! The server side: hyper 1 (HTTP/1.1, keep-alive) under an axum router on
//! a tokio runtime, optional TLS through tokio-rustls.
//!
//! Against a hostile client: a request's head must arrive whole within
//! `head_timeout` of its first byte ([`deadline`]) and its body within
//! `body_timeout` ([`bridge`]) — total deadlines, not per read, so trickling
//! a byte at a time does not hold a slot; each request is admitted on its
//! head alone (see [`Admit`]: authentication and the route's body limit)
//! before any of its body is read; and one peer address holds at most
//! `max_per_peer` connections. The handlers are blocking (redb) and run on
//! tokio's blocking pool.

mod bridge;
mod deadline;

use super::{reason, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tower::ServiceExt;

/// Most headers a request may carry.
const MAX_HEADERS: usize = 64;
/// Blocking threads: one per held snapshot poll and per request in flight.
const MAX_BLOCKING_THREADS: usize = 1280;

/// What a server accepts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Largest request head, bytes.
    pub(crate) max_head: usize,
    /// Largest request body, bytes.
    pub(crate) max_body: usize,
    /// How long a connection may sit idle between requests.
    pub(crate) idle: Duration,
    /// The whole head must arrive within this of its first byte.
    pub(crate) head_timeout: Duration,
    /// The whole body must arrive within this of the request's admission.
    pub(crate) body_timeout: Duration,
    /// Most connections served at once; more get a 503.
    pub(crate) max_connections: usize,
    /// Most connections from one peer address; more get a 503.
    pub(crate) max_per_peer: usize,
}

/// Turns a request into a response. Blocking; runs on the blocking pool.
pub(crate) type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// Admits a request on its head alone (its body is still empty): the most
/// body bytes it may send (at most [`Limits::max_body`]), or the answer to
/// give at once, such as a 401, without reading any of its body.
pub(crate) type Admit = Arc<dyn Fn(&Request) -> Result<usize, Response> + Send + Sync>;

/// The runtime the listeners run on, and how to stop them.
pub(crate) struct Servers {
    runtime: tokio::runtime::Runtime,
    stop: watch::Sender<bool>,
    /// Connections open, over all listeners.
    open: Arc<AtomicUsize>,
}

impl Servers {
    /// A runtime for the listeners, with no listener yet.
    pub(crate) fn new() -> io::Result<Servers> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(MAX_BLOCKING_THREADS)
            .thread_name("control-http")
            .enable_all()
            .build()?;
        Ok(Servers {
            runtime,
            stop: watch::channel(false).0,
            open: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Serves `listener` until [`Servers::shutdown`].
    pub(crate) fn spawn(
        &self,
        name: &'static str,
        listener: std::net::TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        limits: Limits,
        admit: Admit,
        handler: Handler,
    ) -> io::Result<()> {
        listener.set_nonblocking(true)?;
        let listener = {
            let _in = self.runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let site = Arc::new(bridge::Site {
            limits,
            admit,
            handler,
        });
        let accept = Accept {
            name,
            router: bridge::router(site),
            tls: tls.map(tokio_rustls::TlsAcceptor::from),
            limits,
            active: Arc::new(AtomicUsize::new(0)),
            peers: Arc::new(Peers::default()),
            open: self.open.clone(),
            stop: self.stop.subscribe(),
        };
        self.runtime.spawn(accept.run(listener));
        Ok(())
    }

    /// Stops accepting, lets each connection finish the request it is
    /// answering (idle ones close at once), waits up to `grace` for them,
    /// then drops whatever is left.
    pub(crate) fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        let deadline = Instant::now() + grace;
        while self.open.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.runtime.shutdown_timeout(Duration::from_millis(100));
    }
}

/// One listener's accept loop and what its connections share.
struct Accept {
    name: &'static str,
    router: axum::Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    active: Arc<AtomicUsize>,
    peers: Arc<Peers>,
    open: Arc<AtomicUsize>,
    stop: watch::Receiver<bool>,
}

impl Accept {
    async fn run(mut self, listener: tokio::net::TcpListener) {
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = self.stop.changed() => return,
            };
            let (stream, addr) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(server = self.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let peer = addr.ip().to_canonical();
            if !self.peers.enter(peer, self.limits.max_per_peer) {
                tokio::spawn(refuse(stream, "too many connections from this address"));
                continue;
            }
            let slot = Slot {
                peer,
                peers: self.peers.clone(),
                active: self.active.clone(),
                open: self.open.clone(),
            };
            self.open.fetch_add(1, Ordering::AcqRel);
            if self.active.fetch_add(1, Ordering::AcqRel) >= self.limits.max_connections {
                drop(slot);
                tokio::spawn(refuse(stream, "too many connections"));
                continue;
            }
            let _ = stream.set_nodelay(true);
            let (router, limits, stop) = (self.router.clone(), self.limits, self.stop.clone());
            match self.tls.clone() {
                None => {
                    tokio::spawn(async move {
                        connection(stream, router, limits, stop).await;
                        drop(slot);
                    });
                }
                Some(acceptor) => {
                    tokio::spawn(async move {
                        match tokio::time::timeout(limits.head_timeout, acceptor.accept(stream)).await {
                            Ok(Ok(tls)) => connection(tls, router, limits, stop).await,
                            Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                            Err(_) => tracing::debug!("TLS handshake not done in time"),
                        }
                        drop(slot);
                    });
                }
            }
        }
    }
}

/// Serves one connection: keep-alive, one request at a time.
async fn connection<S>(io: S, router: axum::Router, limits: Limits, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let phase = Arc::new(deadline::Phase::default());
    let io = deadline::Deadlines::new(io, phase.clone(), limits.idle, limits.head_timeout);
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        phase.answering();
        let (router, phase) = (router.clone(), phase.clone());
        async move {
            let resp = router.oneshot(req.map(axum::body::Body::new)).await;
            phase.waiting();
            resp
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true)
        .half_close(true)
        .max_headers(MAX_HEADERS)
        .max_buf_size(limits.max_head.max(8192));
    let conn = http.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let done = tokio::select! {
        r = conn.as_mut() => Some(r),
        _ = stop.changed() => None,
    };
    let result = match done {
        Some(r) => r,
        None => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Answers a connection over the limits with a 503 and closes it.
async fn refuse(mut stream: tokio::net::TcpStream, why: &'static str) {
    let bytes = raw_response(503, why);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    })
    .await;
}

/// A whole `{"error": message}` response that closes the connection, for
/// answers given below hyper.
fn raw_response(status: u16, message: &str) -> Vec<u8> {
    let body = Response::error(status, message).body;
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        reason(status),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// A connection's place in the counts; given back when dropped.
struct Slot {
    peer: IpAddr,
    peers: Arc<Peers>,
    active: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.peers.leave(self.peer);
    }
}

/// Connections per peer address.
#[derive(Default)]
struct Peers(Mutex<HashMap<IpAddr, usize>>);

impl Peers {
    /// Counts a connection from `ip` unless it has `max` already.
    fn enter(&self, ip: IpAddr, max: usize) -> bool {
        let mut m = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = m.entry(ip).or_insert(0);
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    fn leave(&self, ip: IpAddr) {
        let mut m = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = m.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests;
