//! An HTTP/2 connection (ALPN `h2` over TLS, or prior knowledge on the
//! plain listener): the `h2` crate's server over monoio's tokio
//! compatibility layer, on the worker that accepted the connection. Each
//! stream is a task of its own on that worker, so the streams of one
//! connection run concurrently; each is served by the same request phases
//! as an HTTP/1.1 request ([`crate::proxy::handle`]) through the stream
//! halves of [`crate::io::h2_stream`].
//!
//! Limits: concurrent streams (`h2_max_concurrent_streams`), the header
//! list (`max_head_bytes`, as for HTTP/1.1), the time to the client's
//! preface and SETTINGS (`header_timeout_ms`), an idle connection
//! (`idle_timeout_ms` with no stream open: GOAWAY). Against floods the `h2`
//! crate's own guards are set explicitly: streams the client resets before
//! they are accepted (rapid reset, CVE-2023-44487: past
//! [`MAX_PENDING_ACCEPT_RESET`] the connection ends with GOAWAY
//! ENHANCE_YOUR_CALM), streams the server had to reset for the client's
//! errors ([`MAX_LOCAL_ERROR_RESET`]), and a header block split into more
//! CONTINUATION frames than the header list limit needs (the crate ends the
//! connection, CVE-2024-27316's shape).

use super::begin::{head_refusal, unix_ms};
use crate::io::client::ClientIo;
use crate::io::h2_stream;
use crate::io::stream::{ClientRd, ClientWr};
use crate::proxy;
use crate::worker::Worker;
use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{Reason, RecvStream};
use sluice_contract::codec::head::{self, HeadLimits};
use sluice_contract::record::Outcome;
use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};

/// Streams a client may reset before the server accepted them.
pub const MAX_PENDING_ACCEPT_RESET: usize = 20;
/// Streams the server may reset for the client's protocol errors.
pub const MAX_LOCAL_ERROR_RESET: usize = 1024;
/// Response bytes buffered per stream beyond what the client's window took.
const SEND_BUFFER: usize = 256 * 1024;
/// Connection-level receive window: room for several streams' bodies.
const CONNECTION_WINDOW: u32 = 1024 * 1024;

/// A stream the client opened: its request and the handle to answer it.
type Opened = (http::Request<RecvStream>, SendResponse<Bytes>);

/// What woke the connection loop.
enum Event {
    Stream(Option<Result<Box<Opened>, h2::Error>>),
    Shutdown,
    Idle,
}

/// Serves an HTTP/2 connection on `io` until it closes. `tls`: the TLS
/// version, for the records.
pub async fn serve<T>(w: &Rc<Worker>, io: T, peer: SocketAddr, tls: Option<&'static str>)
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let limits = &w.shared.limits;
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(limits.max_head_bytes as u32)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESET)
        .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESET))
        .max_send_buffer_size(SEND_BUFFER)
        .initial_connection_window_size(CONNECTION_WINDOW);
    let handshake = builder.handshake::<T, Bytes>(io);
    let mut conn = match monoio::time::timeout(limits.header_timeout(), handshake).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            tracing::debug!(worker = w.id, error = %e, "HTTP/2 handshake failed");
            return;
        }
        Err(_) => return,
    };
    let open = Rc::new(Cell::new(0usize));
    let shutdown = w.shared.shutdown.clone();
    let mut closing = false;
    loop {
        let idle = limits.idle_timeout();
        // Polling `accept` also drives the connection: every stream's frames
        // go out and come in through it.
        let event = if closing {
            monoio::select! {
                next = conn.accept() => Event::Stream(next.map(|r| r.map(Box::new))),
                _ = monoio::time::sleep(idle) => Event::Idle,
            }
        } else {
            monoio::select! {
                next = conn.accept() => Event::Stream(next.map(|r| r.map(Box::new))),
                _ = shutdown.recv() => Event::Shutdown,
                _ = monoio::time::sleep(idle) => Event::Idle,
            }
        };
        match event {
            Event::Stream(Some(Ok(opened))) => {
                let (request, respond) = *opened;
                open.set(open.get() + 1);
                let task = stream(w.clone(), request, respond, peer, tls, open.clone());
                monoio::spawn(task);
            }
            Event::Stream(Some(Err(e))) => {
                // A connection error: the crate has sent GOAWAY with its code.
                tracing::debug!(worker = w.id, error = %e, "HTTP/2 connection error");
                break;
            }
            Event::Stream(None) => break,
            Event::Shutdown => {
                conn.graceful_shutdown();
                closing = true;
            }
            Event::Idle if open.get() == 0 => {
                if closing {
                    break;
                }
                conn.graceful_shutdown();
                closing = true;
            }
            Event::Idle => {}
        }
    }
}

/// Counts a stream open until its task ends.
struct Open(Rc<Cell<usize>>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// Serves one stream through the request phases.
async fn stream(
    w: Rc<Worker>,
    request: http::Request<RecvStream>,
    respond: SendResponse<Bytes>,
    peer: SocketAddr,
    tls: Option<&'static str>,
    open: Rc<Cell<usize>>,
) {
    let _open = Open(open);
    let started = Instant::now();
    let ts_ms = unix_ms();
    let (parts, body) = request.into_parts();
    let mut head_bytes = BytesMut::with_capacity(1024);
    let chunked = !body.is_end_stream() && !parts.headers.contains_key(http::header::CONTENT_LENGTH);
    write_head(&parts, chunked, &mut head_bytes);
    let (rd, wr) = h2_stream::halves(body, chunked, respond);
    let mut io = ClientIo::of(ClientRd::H2(rd), ClientWr::H2(wr), peer, tls);
    io.h2 = true;
    io.buf = head_bytes;
    let limits = HeadLimits {
        max_bytes: w.shared.limits.max_head_bytes,
        max_headers: w.shared.limits.max_headers,
    };
    match head::parse_request(&io.buf, &limits, &mut io.headers) {
        Ok(Some(mut head)) => {
            // Served as an HTTP/1.0 exchange would be: the response body is
            // not chunk-coded, the stream's end ends it, and there is no
            // interim 100 (the client sends its body when its window lets it).
            head.http11 = false;
            head.keep_alive = false;
            head.expect_continue = false;
            io.begin(&head);
            proxy::handle(&w, &mut io, head, started, ts_ms).await;
        }
        Ok(None) => {
            let refusal = proxy::HeadRefusal::new(crate::respond::ErrorKind::BadRequest, "h2_head");
            proxy::refuse_head(&w, &mut io, refusal, started, ts_ms).await;
        }
        Err(e) => proxy::refuse_head(&w, &mut io, head_refusal(e), started, ts_ms).await,
    }
    let reset = match io.last_outcome {
        Outcome::Truncated => Some(Reason::INTERNAL_ERROR),
        Outcome::Cancelled => Some(Reason::CANCEL),
        _ => None,
    };
    if let ClientWr::H2(wr) = &mut io.wr {
        wr.finish(reset);
    }
}

/// The stream's request as an HTTP/1.1 head: method, path, `host` from
/// `:authority` (or the client's `host`), the fields as sent, and
/// `transfer-encoding: chunked` when the body's length is not given. The
/// `http` crate has checked every name and value (no CR, LF or NUL).
fn write_head(parts: &http::request::Parts, chunked: bool, out: &mut BytesMut) {
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.extend_from_slice(b" ");
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let authority = parts.uri.authority();
    if let Some(authority) = authority {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(authority.as_str().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in &parts.headers {
        if authority.is_some() && name == http::header::HOST {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::write_head;
    use bytes::BytesMut;

    fn head_of(request: http::Request<()>, chunked: bool) -> String {
        let (parts, ()) = request.into_parts();
        let mut out = BytesMut::new();
        write_head(&parts, chunked, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn a_stream_becomes_an_http11_head() {
        let request = http::Request::post("https://gw.example:8443/v1/chat/completions?x=1")
            .header("authorization", "Bearer k")
            .header("host", "other.example")
            .header("content-type", "application/json")
            .body(())
            .unwrap();
        assert_eq!(
            head_of(request, true),
            "POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: gw.example:8443\r\nauthorization: Bearer k\r\n\
             content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        // No :authority: the client's host field is the host.
        let request = http::Request::get("/healthz")
            .header("host", "h.example")
            .body(())
            .unwrap();
        assert_eq!(
            head_of(request, false),
            "GET /healthz HTTP/1.1\r\nhost: h.example\r\n\r\n"
        );
    }
}
