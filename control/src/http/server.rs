//! The server side: an accept loop and a thread per connection, keep-alive,
//! bounded heads and bodies, optional TLS.

use super::{reason, Request, Response};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Most headers a request may carry.
const MAX_HEADERS: usize = 64;

/// What a server accepts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Largest request head, bytes.
    pub(crate) max_head: usize,
    /// Largest request body, bytes.
    pub(crate) max_body: usize,
    /// How long a connection may sit idle, or stall mid-request.
    pub(crate) idle: Duration,
    /// Most connections served at once; more get a 503.
    pub(crate) max_connections: usize,
}

/// Turns a request into a response. Runs on the connection's thread.
pub(crate) type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// Serves `listener` on a thread of its own until the process ends.
pub(crate) fn spawn(
    name: &'static str,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    handler: Handler,
) -> io::Result<()> {
    let active = Arc::new(AtomicUsize::new(0));
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
                if active.fetch_add(1, Ordering::AcqRel) >= limits.max_connections {
                    active.fetch_sub(1, Ordering::AcqRel);
                    let mut s = stream;
                    let _ = write_response(&mut s, &Response::error(503, "too many connections"), true);
                    continue;
                }
                let (handler, tls, active) = (handler.clone(), tls.clone(), active.clone());
                let spawned = std::thread::Builder::new()
                    .name(format!("{name}-conn"))
                    .spawn(move || {
                        connection(stream, tls, limits, handler.as_ref());
                        active.fetch_sub(1, Ordering::AcqRel);
                    });
                if let Err(e) = spawned {
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
    handler: &(dyn Fn(&Request) -> Response + Send + Sync),
) {
    let _ = stream.set_nodelay(true);
    if stream.set_read_timeout(Some(limits.idle)).is_err()
        || stream.set_write_timeout(Some(limits.idle)).is_err()
    {
        return;
    }
    match tls {
        None => serve(stream, limits, handler),
        Some(cfg) => match rustls::ServerConnection::new(cfg) {
            Ok(conn) => serve(rustls::StreamOwned::new(conn, stream), limits, handler),
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

fn serve<S: Read + Write>(mut s: S, limits: Limits, handler: &(dyn Fn(&Request) -> Response + Send + Sync)) {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    loop {
        match read_request(&mut s, &mut buf, &limits) {
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

/// Reads one request from `s`, using and leaving pipelined bytes in `buf`.
/// Returns the request and whether to close after answering it.
fn read_request<S: Read + Write>(
    s: &mut S,
    buf: &mut Vec<u8>,
    limits: &Limits,
) -> Result<(Request, bool), Stop> {
    let bad = |m: &str| Stop::Reply(Response::error(400, m));
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
                match fill(s, buf) {
                    Ok(0) | Err(_) => return Err(Stop::Quiet),
                    Ok(_) => {}
                }
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
                match fill(s, buf) {
                    Ok(0) | Err(_) => return Err(Stop::Quiet),
                    Ok(_) => {}
                }
            }
            if buf.len() == n {
                std::mem::take(buf)
            } else {
                buf.drain(..n).collect()
            }
        }
        Framing::Chunked => read_chunked(s, buf, limits)?,
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

fn read_chunked<S: Read>(s: &mut S, buf: &mut Vec<u8>, limits: &Limits) -> Result<Vec<u8>, Stop> {
    let bad = || Stop::Reply(Response::error(400, "malformed chunked body"));
    let mut body = Vec::new();
    loop {
        let line = read_line(s, buf, limits)?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad())?;
        if size == 0 {
            // Trailers, up to the empty line.
            while !read_line(s, buf, limits)?.is_empty() {}
            return Ok(body);
        }
        if body.len().saturating_add(size) > limits.max_body {
            return Err(too_large(limits));
        }
        while buf.len() < size + 2 {
            match fill(s, buf) {
                Ok(0) | Err(_) => return Err(Stop::Quiet),
                Ok(_) => {}
            }
        }
        if &buf[size..size + 2] != b"\r\n" {
            return Err(bad());
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}

fn read_line<S: Read>(s: &mut S, buf: &mut Vec<u8>, limits: &Limits) -> Result<String, Stop> {
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
        match fill(s, buf) {
            Ok(0) | Err(_) => return Err(Stop::Quiet),
            Ok(_) => {}
        }
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
