//! The server side: an accept loop and a thread per connection, keep-alive,
//! bounded heads and bodies, optional TLS.
//!
//! Against a hostile client: a request's head must arrive whole within
//! `head_timeout` of its first byte and its body within `body_timeout`
//! (total deadlines, not per read, so trickling a byte at a time does not
//! hold a slot); each request is admitted on its head alone (see [`Admit`]:
//! authentication and the route's body limit) before any of its body is
//! read; and one peer address holds at most `max_per_peer` connections.

use super::{reason, Request, Response};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most headers a request may carry.
const MAX_HEADERS: usize = 64;

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
    /// The whole body must arrive within this of the end of the head.
    pub(crate) body_timeout: Duration,
    /// Most connections served at once; more get a 503.
    pub(crate) max_connections: usize,
    /// Most connections from one peer address; more get a 503.
    pub(crate) max_per_peer: usize,
}

/// Turns a request into a response. Runs on the connection's thread.
pub(crate) type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// Admits a request on its head alone (its body is still empty): the most
/// body bytes it may send (at most [`Limits::max_body`]), or the answer to
/// give at once, such as a 401, without reading any of its body.
pub(crate) type Admit = Arc<dyn Fn(&Request) -> Result<usize, Response> + Send + Sync>;

/// A connection whose reads can be given a time limit.
pub(crate) trait Conn: Read + Write {
    /// Sets the limit of each following read.
    fn read_limit(&mut self, d: Duration) -> io::Result<()>;
}

impl Conn for TcpStream {
    fn read_limit(&mut self, d: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(d))
    }
}

impl Conn for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn read_limit(&mut self, d: Duration) -> io::Result<()> {
        self.sock.set_read_timeout(Some(d))
    }
}

impl<T: Conn + ?Sized> Conn for &mut T {
    fn read_limit(&mut self, d: Duration) -> io::Result<()> {
        (**self).read_limit(d)
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

/// Serves `listener` on a thread of its own until the process ends.
pub(crate) fn spawn(
    name: &'static str,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    admit: Admit,
    handler: Handler,
) -> io::Result<()> {
    let active = Arc::new(AtomicUsize::new(0));
    let peers = Arc::new(Peers::default());
    std::thread::Builder::new()
        .name(format!("{name}-accept"))
        .spawn(move || {
            for stream in listener.incoming() {
                let stream = match stream {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(server = name, error = %e, "accept failed");
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                };
                let Ok(peer) = stream.peer_addr().map(|a| a.ip().to_canonical()) else {
                    continue;
                };
                let refuse = |mut s: TcpStream, why: &str| {
                    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
                    let _ = write_response(&mut s, &Response::error(503, why), true);
                };
                if !peers.enter(peer, limits.max_per_peer) {
                    refuse(stream, "too many connections from this address");
                    continue;
                }
                if active.fetch_add(1, Ordering::AcqRel) >= limits.max_connections {
                    active.fetch_sub(1, Ordering::AcqRel);
                    peers.leave(peer);
                    refuse(stream, "too many connections");
                    continue;
                }
                let (admit, handler, tls) = (admit.clone(), handler.clone(), tls.clone());
                let (active2, peers2) = (active.clone(), peers.clone());
                let spawned = std::thread::Builder::new()
                    .name(format!("{name}-conn"))
                    .spawn(move || {
                        connection(stream, tls, limits, admit.as_ref(), handler.as_ref());
                        active2.fetch_sub(1, Ordering::AcqRel);
                        peers2.leave(peer);
                    });
                if let Err(e) = spawned {
                    active.fetch_sub(1, Ordering::AcqRel);
                    peers.leave(peer);
                    tracing::warn!(server = name, error = %e, "could not start a connection thread");
                }
            }
        })?;
    Ok(())
}

fn connection(
    stream: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    admit: &(dyn Fn(&Request) -> Result<usize, Response> + Send + Sync),
    handler: &(dyn Fn(&Request) -> Response + Send + Sync),
) {
    let _ = stream.set_nodelay(true);
    if stream.set_read_timeout(Some(limits.idle)).is_err()
        || stream.set_write_timeout(Some(limits.idle)).is_err()
    {
        return;
    }
    match tls {
        None => serve(stream, limits, admit, handler),
        Some(cfg) => match rustls::ServerConnection::new(cfg) {
            Ok(conn) => serve(rustls::StreamOwned::new(conn, stream), limits, admit, handler),
            Err(e) => tracing::warn!(error = %e, "TLS session setup failed"),
        },
    }
}

/// Why a connection stops reading requests.
enum Stop {
    /// The peer closed or went quiet between requests.
    Quiet,
    /// The request was bad: answer this and close.
    Reply(Response),
}

fn serve<S: Conn>(
    mut s: S,
    limits: Limits,
    admit: &(dyn Fn(&Request) -> Result<usize, Response> + Send + Sync),
    handler: &(dyn Fn(&Request) -> Response + Send + Sync),
) {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    loop {
        match read_request(&mut s, &mut buf, &limits, admit) {
            Ok((req, close)) => {
                let resp = handler(&req);
                if write_response(&mut s, &resp, close).is_err() || close {
                    return;
                }
            }
            Err(Stop::Quiet) => return,
            Err(Stop::Reply(resp)) => {
                let _ = write_response(&mut s, &resp, true);
                return;
            }
        }
    }
}

/// Reads more bytes into `buf`; `Ok(0)` at end of stream.
fn fill<S: Read>(s: &mut S, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 64 * 1024];
    let n = s.read(&mut chunk)?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// Reads more bytes into `buf` before `deadline`: past it, a 408 that ends
/// the connection (`what` names the part that was late).
fn fill_by<S: Conn>(s: &mut S, buf: &mut Vec<u8>, deadline: Instant, what: &str) -> Result<(), Stop> {
    let late = || {
        Stop::Reply(Response::error(
            408,
            &format!("request {what} not received in time"),
        ))
    };
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(late());
    }
    s.read_limit(left).map_err(|_| Stop::Quiet)?;
    match fill(s, buf) {
        Ok(0) => Err(Stop::Quiet),
        Ok(_) => Ok(()),
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => Err(late()),
        Err(_) => Err(Stop::Quiet),
    }
}

/// Reads one request from `s`, using and leaving pipelined bytes in `buf`.
/// Returns the request and whether to close after answering it.
fn read_request<S: Conn>(
    s: &mut S,
    buf: &mut Vec<u8>,
    limits: &Limits,
    admit: &(dyn Fn(&Request) -> Result<usize, Response> + Send + Sync),
) -> Result<(Request, bool), Stop> {
    let bad = |m: &str| Stop::Reply(Response::error(400, m));
    // Between requests the connection may idle; the head's deadline runs
    // from its first byte.
    if buf.is_empty() {
        s.read_limit(limits.idle).map_err(|_| Stop::Quiet)?;
        match fill(s, buf) {
            Ok(0) | Err(_) => return Err(Stop::Quiet),
            Ok(_) => {}
        }
    }
    let head_deadline = Instant::now() + limits.head_timeout;
    let (head_len, mut req, close, framing) = loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(buf) {
            Ok(httparse::Status::Complete(n)) => {
                let (req, close, framing) = head_of(&parsed)?;
                break (n, req, close, framing);
            }
            Ok(httparse::Status::Partial) => {
                if buf.len() > limits.max_head {
                    return Err(Stop::Reply(Response::error(431, "request head too large")));
                }
                fill_by(s, buf, head_deadline, "head")?;
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Stop::Reply(Response::error(431, "too many request headers")))
            }
            Err(e) => return Err(bad(&format!("malformed request: {e}"))),
        }
    };
    if head_len > limits.max_head {
        return Err(Stop::Reply(Response::error(431, "request head too large")));
    }
    buf.drain(..head_len);
    // Admitted (authenticated, and the route's limit known) before any of
    // the body is read: a refused request's body is never taken in.
    let max_body = admit(&req).map_err(Stop::Reply)?.min(limits.max_body);
    let limits = &Limits { max_body, ..*limits };
    let body_deadline = Instant::now() + limits.body_timeout;
    if req
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
        && framing != Framing::None
    {
        if let Framing::Length(n) = framing {
            if n > limits.max_body {
                return Err(too_large(limits));
            }
        }
        let _ = s
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .and_then(|_| s.flush());
    }
    req.body = match framing {
        Framing::None => Vec::new(),
        Framing::Length(n) => {
            if n > limits.max_body {
                return Err(too_large(limits));
            }
            buf.reserve(n.saturating_sub(buf.len()));
            while buf.len() < n {
                fill_by(s, buf, body_deadline, "body")?;
            }
            if buf.len() == n {
                std::mem::take(buf)
            } else {
                buf.drain(..n).collect()
            }
        }
        Framing::Chunked => read_chunked(s, buf, limits, body_deadline)?,
    };
    Ok((req, close))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(usize),
    Chunked,
}

fn too_large(limits: &Limits) -> Stop {
    Stop::Reply(Response::error(
        413,
        &format!("request body larger than {} bytes", limits.max_body),
    ))
}

fn head_of(parsed: &httparse::Request<'_, '_>) -> Result<(Request, bool, Framing), Stop> {
    let bad = |m: &str| Stop::Reply(Response::error(400, m));
    let method = parsed.method.ok_or_else(|| bad("no method"))?.to_owned();
    let target = parsed.path.ok_or_else(|| bad("no path"))?;
    if !target.starts_with('/') {
        return Err(bad("request target must be a path"));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.to_owned(), None),
    };
    let mut headers = Vec::with_capacity(parsed.headers.len());
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for h in parsed.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let value = std::str::from_utf8(h.value)
            .map_err(|_| bad("header value is not UTF-8"))?
            .trim()
            .to_owned();
        if name == "content-length" {
            let n: usize = value
                .parse()
                .ok()
                .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| bad("bad Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(bad("conflicting Content-Length headers"));
            }
            length = Some(n);
        } else if name == "transfer-encoding" {
            if !value.eq_ignore_ascii_case("chunked") {
                return Err(Stop::Reply(Response::error(
                    501,
                    "only chunked transfer-encoding is supported",
                )));
            }
            chunked = true;
        }
        headers.push((name, value));
    }
    let framing = match (length, chunked) {
        (Some(_), true) => return Err(bad("both Content-Length and Transfer-Encoding")),
        (Some(n), false) => Framing::Length(n),
        (None, true) => Framing::Chunked,
        (None, false) => Framing::None,
    };
    let conn = headers
        .iter()
        .find(|(n, _)| n == "connection")
        .map(|(_, v)| v.to_ascii_lowercase());
    let close = match parsed.version {
        Some(1) => conn.as_deref().is_some_and(|c| c.contains("close")),
        _ => !conn.as_deref().is_some_and(|c| c.contains("keep-alive")),
    };
    Ok((
        Request {
            method,
            path,
            query,
            headers,
            body: Vec::new(),
        },
        close,
        framing,
    ))
}

fn read_chunked<S: Conn>(
    s: &mut S,
    buf: &mut Vec<u8>,
    limits: &Limits,
    deadline: Instant,
) -> Result<Vec<u8>, Stop> {
    let bad = || Stop::Reply(Response::error(400, "malformed chunked body"));
    let mut body = Vec::new();
    loop {
        let line = read_line(s, buf, limits, deadline)?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad())?;
        if size == 0 {
            // Trailers, up to the empty line.
            while !read_line(s, buf, limits, deadline)?.is_empty() {}
            return Ok(body);
        }
        if body.len().saturating_add(size) > limits.max_body {
            return Err(too_large(limits));
        }
        while buf.len() < size + 2 {
            fill_by(s, buf, deadline, "body")?;
        }
        if &buf[size..size + 2] != b"\r\n" {
            return Err(bad());
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}

fn read_line<S: Conn>(
    s: &mut S,
    buf: &mut Vec<u8>,
    limits: &Limits,
    deadline: Instant,
) -> Result<String, Stop> {
    loop {
        if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8(buf[..i].to_vec())
                .map_err(|_| Stop::Reply(Response::error(400, "malformed chunked body")))?;
            buf.drain(..i + 2);
            return Ok(line);
        }
        if buf.len() > limits.max_head {
            return Err(Stop::Reply(Response::error(400, "chunk header too long")));
        }
        fill_by(s, buf, deadline, "body")?;
    }
}

/// Writes `resp`; `close` adds `connection: close`.
pub(crate) fn write_response<S: Write>(s: &mut S, resp: &Response, close: bool) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    if resp.status != 204 {
        head.push_str(&format!(
            "content-type: {}\r\ncontent-length: {}\r\n",
            resp.content_type,
            resp.body.len()
        ));
    }
    for (n, v) in &resp.headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    if close {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if resp.status != 204 {
        out.extend_from_slice(&resp.body);
    }
    s.write_all(&out)?;
    s.flush()
}

#[cfg(test)]
mod tests;
