//! The connection loop: it owns the connection. It reads request heads,
//! hands each request to the phases ([`crate::proxy`]), and decides after
//! each whether the connection carries another (keep-alive, pipelining,
//! what stays in the read buffer: see [`ClientIo`]). The phases never touch
//! that bookkeeping.

use super::begin::head_refusal;
pub use super::begin::unix_ms;
use crate::io::client::{ClientIo, Next, READ_BUF};
use crate::io::h2_tls::{tcp_compat, Prefixed};
use crate::io::read::read_append;
use crate::proxy::{self, HeadRefusal};
use crate::respond::ErrorKind;
use crate::worker::Worker;
use bytes::BytesMut;
use monoio::net::TcpStream;
use sluice_contract::codec::head::{self, HeadLimits, RequestHead};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

/// Counts a connection in the gauge until it ends, however it ends.
pub(super) struct ConnGuard(Rc<Worker>);

impl ConnGuard {
    /// Counts one more connection.
    pub(super) fn new(w: &Rc<Worker>) -> ConnGuard {
        w.metrics().connections(1);
        ConnGuard(w.clone())
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.metrics().connections(-1);
    }
}

/// Serves one accepted connection until it closes.
pub async fn serve(w: Rc<Worker>, mut stream: TcpStream, peer: SocketAddr) {
    let _guard = ConnGuard::new(&w);
    let _ = stream.set_nodelay(true);
    let Some(first) = first_bytes(&w, &mut stream).await else {
        return;
    };
    if first.starts_with(H2_PREFACE) {
        // HTTP/2 with prior knowledge (RFC 9113 §3.3).
        let io = Prefixed::new(first.freeze(), tcp_compat(stream));
        return super::h2_conn::serve(&w, io, peer, None).await;
    }
    let mut io = ClientIo::new(stream, peer);
    io.buf = first;
    serve_io(&w, io).await;
}

/// The client connection preface of HTTP/2.
pub(super) const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads a connection's first bytes: enough to tell HTTP/2's preface from
/// an HTTP/1 request. `None`: the client left, stayed idle past the idle
/// timeout, or the data plane is shutting down.
async fn first_bytes(w: &Worker, stream: &mut TcpStream) -> Option<BytesMut> {
    let mut buf = BytesMut::with_capacity(READ_BUF);
    let shutdown = w.shared.shutdown.clone();
    // The first byte may take the idle timeout; the rest of a preface must
    // come within the header timeout (a client that sent part of one and
    // stalls is closed: it cannot be an HTTP/1 request).
    let mut wait = w.shared.limits.idle_timeout();
    let mut deadline: Option<Instant> = None;
    loop {
        let read = monoio::time::timeout(wait, read_append(stream, buf));
        monoio::select! {
            _ = shutdown.recv() => return None,
            r = read => match r {
                Ok((Ok(n), b)) if n > 0 => buf = b,
                _ => return None,
            },
        }
        let deadline = *deadline.get_or_insert_with(|| Instant::now() + w.shared.limits.header_timeout());
        wait = deadline.saturating_duration_since(Instant::now());
        // More of the preface may follow; anything else is HTTP/1.
        let seen = buf.len().min(H2_PREFACE.len());
        if buf.len() >= H2_PREFACE.len() || !H2_PREFACE.starts_with(&buf[..seen]) {
            return Some(buf);
        }
    }
}

/// Serves requests on a connection (plain, or TLS after its handshake)
/// until it closes; a TLS session ends with close_notify.
pub(super) async fn serve_io(w: &Rc<Worker>, mut io: ClientIo) {
    requests(w, &mut io).await;
    let _ = monoio::time::timeout(CLOSE_NOTIFY_WAIT, io.wr.close()).await;
}

/// How long a close_notify may wait for a client that stopped reading.
const CLOSE_NOTIFY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

async fn requests(w: &Rc<Worker>, io: &mut ClientIo) {
    let limits = HeadLimits {
        max_bytes: w.shared.limits.max_head_bytes,
        max_headers: w.shared.limits.max_headers,
    };
    let shutdown = w.shared.shutdown.clone();
    loop {
        // Idle: wait for the first byte of the next request.
        if io.buf.is_empty() {
            if shutdown.is_closed() {
                return;
            }
            if io.buf.capacity() < READ_BUF {
                io.buf.reserve(READ_BUF);
            }
            let buf = std::mem::take(&mut io.buf);
            let read = monoio::time::timeout(w.shared.limits.idle_timeout(), io.rd.read_append(buf));
            monoio::select! {
                _ = shutdown.recv() => return,
                r = read => match r {
                    Ok((Ok(n), buf)) if n > 0 => io.buf = buf,
                    _ => return,
                },
            }
        }
        let started = Instant::now();
        let ts_ms = unix_ms();
        let head = match read_head(w, io, &limits, started).await {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(refusal) => {
                // A head that cannot be read leaves nothing to resynchronise on.
                proxy::refuse_head(w, io, refusal, started, ts_ms).await;
                return;
            }
        };
        io.begin(&head);
        let next = proxy::handle(w, io, head, started, ts_ms).await;
        if !io.end_request() || next == Next::Close {
            return;
        }
    }
}

/// Reads until a whole head is buffered. `Ok(None)`: the client closed
/// cleanly before sending anything more.
async fn read_head(
    w: &Worker,
    io: &mut ClientIo,
    limits: &HeadLimits,
    started: Instant,
) -> Result<Option<RequestHead>, HeadRefusal> {
    let deadline = started + w.shared.limits.header_timeout();
    loop {
        match head::parse_request(&io.buf, limits, &mut io.headers) {
            Ok(Some(head)) => return Ok(Some(head)),
            Ok(None) => {}
            Err(e) => return Err(head_refusal(e)),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let buf = std::mem::take(&mut io.buf);
        match monoio::time::timeout(left, io.rd.read_append(buf)).await {
            Ok((Ok(n), buf)) if n > 0 => io.buf = buf,
            Ok((_, buf)) => {
                io.buf = buf;
                return Ok(None);
            }
            Err(_) => return Err(HeadRefusal::new(ErrorKind::RequestTimeout, "header_timeout")),
        }
    }
}
