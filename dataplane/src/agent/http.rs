//! A small blocking HTTP/1.1 client for the agent's two conversations with the
//! control plane (the snapshot long poll and record shipping).
//!
//! One [`Client`] owns at most one keep-alive connection, plain TCP or rustls.
//! A request on a reused connection that fails before any response byte
//! arrives is retried once on a fresh connection: the server may have closed
//! the idle connection, and both agent requests are safe to repeat (a snapshot
//! GET is read-only; a record batch is idempotent by `(dataplane, seq)`).
//!
//! Bodies are read by `Content-Length`, chunked transfer coding, or to the end
//! of the connection. The request head, which carries the enrollment token, is
//! built in a buffer that is wiped when dropped.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest response body accepted (a snapshot of many tenants stays far below).
const MAX_BODY: usize = 256 * 1024 * 1024;
/// Largest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;
/// Read buffer size.
const READ_CHUNK: usize = 64 * 1024;

/// Where the control plane is: parsed once from `--control`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `https://`.
    pub(crate) tls: bool,
    /// Host name or IP literal (without IPv6 brackets), for connecting and SNI.
    pub(crate) host: String,
    /// TCP port.
    pub(crate) port: u16,
    /// The `Host` header value.
    pub(crate) authority: String,
    /// Path prefix before `/v1/...`, without a trailing slash (usually empty).
    pub(crate) base_path: String,
}

impl Endpoint {
    /// Parses `http://host[:port][/prefix]` or `https://...`.
    pub(crate) fn parse(url: &str) -> Result<Endpoint, String> {
        let url = url.trim();
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("control url {url:?} must start with http:// or https://"));
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if path.contains(['?', '#']) {
            return Err(format!("control url {url:?} must not have a query or fragment"));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let Some(end) = v6.find(']') else {
                return Err(format!("control url {url:?}: bad IPv6 literal"));
            };
            let port = match &v6[end + 1..] {
                "" => default_port,
                p => p
                    .strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| format!("control url {url:?}: bad port"))?,
            };
            (&v6[..end], port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (
                    h,
                    p.parse().map_err(|_| format!("control url {url:?}: bad port"))?,
                ),
                None => (authority, default_port),
            }
        };
        if host.is_empty()
            || host
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b == b'@' || b.is_ascii_control())
        {
            return Err(format!("control url {url:?}: bad host"));
        }
        Ok(Endpoint {
            tls,
            host: host.to_string(),
            port,
            authority: authority.to_string(),
            base_path: path.trim_end_matches('/').to_string(),
        })
    }
}

impl Endpoint {
    /// Whether the host is this machine: `localhost` or a loopback address
    /// literal (127.0.0.0/8, ::1, or ::ffff:127.x.y.z). Decided from the text
    /// alone, before any name look-up, so DNS cannot make a remote host pass.
    pub(crate) fn is_loopback(&self) -> bool {
        let host = self.host.trim_end_matches('.');
        if host.eq_ignore_ascii_case("localhost") {
            return true;
        }
        host.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
    }
}

/// Why a request got no response.
#[derive(Debug)]
pub(crate) enum HttpError {
    /// No connection could be opened.
    Connect(io::Error),
    /// The connection failed or closed mid-exchange.
    Io(io::Error),
    /// No complete response within the request's time limit.
    Timeout,
    /// The server's answer was not valid HTTP/1.1, or too large.
    Protocol(&'static str),
    /// TLS could not be set up (bad server name).
    Tls(String),
    /// [`Abort::abort`] was called.
    Aborted,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Connect(e) => write!(f, "connect: {e}"),
            HttpError::Io(e) => write!(f, "i/o: {e}"),
            HttpError::Timeout => f.write_str("timed out"),
            HttpError::Protocol(m) => write!(f, "bad response: {m}"),
            HttpError::Tls(m) => write!(f, "tls: {m}"),
            HttpError::Aborted => f.write_str("aborted"),
        }
    }
}

impl HttpError {
    fn from_io(e: io::Error) -> HttpError {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => HttpError::Timeout,
            _ => HttpError::Io(e),
        }
    }
}

/// Lets another thread break a client out of a blocking read: used to stop the
/// long poll at shutdown without waiting up to its read timeout.
#[derive(Default)]
pub(crate) struct Abort {
    stopped: AtomicBool,
    sock: Mutex<Option<TcpStream>>,
}

impl Abort {
    /// Stops the client: its current socket is shut down and no new one opens.
    pub(crate) fn abort(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let guard = self.sock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = guard.as_ref() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Whether [`Abort::abort`] was called.
    pub(crate) fn is_aborted(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Registers `sock` as the one to shut down; fails if already aborted.
    /// The flag is read after the registration, under the same lock `abort`
    /// takes, so a socket is either registered in time or refused.
    fn register(&self, sock: &TcpStream) -> Result<(), HttpError> {
        let mut guard = self.sock.lock().unwrap_or_else(|e| e.into_inner());
        *guard = sock.try_clone().ok();
        if self.stopped.load(Ordering::SeqCst) {
            return Err(HttpError::Aborted);
        }
        Ok(())
    }
}

/// A response: status and whole body.
#[derive(Debug)]
pub(crate) struct Response {
    /// Status code.
    pub(crate) status: u16,
    /// Body, de-chunked.
    pub(crate) body: Vec<u8>,
    /// Control's own `x-sluice-*` headers (name in lower case, value).
    pub(crate) sluice_headers: Vec<(String, String)>,
}

impl Response {
    /// The value of control's header `name` (lower case, `x-sluice-…`).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.sluice_headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A request body and its content type.
pub(crate) struct Body<'a> {
    /// `Content-Type` value.
    pub(crate) content_type: &'a str,
    /// The bytes.
    pub(crate) bytes: &'a [u8],
}

/// A blocking HTTP/1.1 client for one endpoint, holding one keep-alive connection.
pub(crate) struct Client {
    endpoint: Arc<Endpoint>,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The enrollment token, sent as a bearer token.
    token: Arc<Zeroizing<String>>,
    connect_timeout: Duration,
    conn: Option<Conn>,
    abort: Option<Arc<Abort>>,
}

impl Client {
    /// A client for `endpoint`; `tls` must be set for an `https://` endpoint.
    pub(crate) fn new(
        endpoint: Arc<Endpoint>,
        tls: Option<Arc<rustls::ClientConfig>>,
        token: Arc<Zeroizing<String>>,
        connect_timeout: Duration,
    ) -> Client {
        Client {
            endpoint,
            tls,
            token,
            connect_timeout,
            conn: None,
            abort: None,
        }
    }

    /// Makes this client stoppable from another thread through `abort`.
    pub(crate) fn with_abort(mut self, abort: Arc<Abort>) -> Client {
        // A connection kept alive from earlier requests was never registered
        // with this abort, so it could not be broken at shutdown: drop it, and
        // the next request opens (and registers) a fresh one.
        self.conn = None;
        self.abort = Some(abort);
        self
    }

    /// Whether this client was stopped through its [`Abort`].
    pub(crate) fn is_aborted(&self) -> bool {
        self.abort.as_ref().is_some_and(|a| a.is_aborted())
    }

    /// Sends one request to `base_path + path` and reads the whole response,
    /// all within `timeout` (connecting included).
    pub(crate) fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Body<'_>>,
        timeout: Duration,
    ) -> Result<Response, HttpError> {
        let deadline = Instant::now() + timeout;
        let head = self.head(method, path, body.as_ref());
        if let Some(conn) = self.conn.as_mut() {
            match conn.exchange(&head, body.as_ref(), deadline) {
                Ok((resp, keep)) => {
                    if !keep {
                        self.conn = None;
                    }
                    return Ok(resp);
                }
                // The server closed the idle connection: retry once, fresh.
                Err(HttpError::Io(_)) if !conn.received => self.conn = None,
                Err(e) => {
                    self.conn = None;
                    return Err(e);
                }
            }
        }
        let mut conn = self.connect(deadline)?;
        let (resp, keep) = conn.exchange(&head, body.as_ref(), deadline)?;
        if keep {
            self.conn = Some(conn);
        }
        Ok(resp)
    }

    fn head(&self, method: &str, path: &str, body: Option<&Body<'_>>) -> Zeroizing<Vec<u8>> {
        let mut h = Zeroizing::new(Vec::with_capacity(256 + self.token.len()));
        let ep = &self.endpoint;
        let default_port = if ep.tls { 443 } else { 80 };
        // Write to a Vec cannot fail.
        let _ = write!(h, "{method} {}{path} HTTP/1.1\r\nHost: ", ep.base_path);
        if ep.port == default_port {
            if ep.authority.starts_with('[') {
                let _ = write!(h, "[{}]", ep.host);
            } else {
                h.extend_from_slice(ep.host.as_bytes());
            }
        } else {
            h.extend_from_slice(ep.authority.as_bytes());
        }
        h.extend_from_slice(b"\r\nAuthorization: Bearer ");
        h.extend_from_slice(self.token.as_bytes());
        let _ = write!(
            h,
            "\r\nUser-Agent: sluice-dataplane/{}\r\nAccept: application/json\r\nConnection: keep-alive\r\n",
            env!("CARGO_PKG_VERSION")
        );
        match body {
            Some(b) => {
                let _ = write!(
                    h,
                    "Content-Type: {}\r\nContent-Length: {}\r\n\r\n",
                    b.content_type,
                    b.bytes.len()
                );
            }
            None => h.extend_from_slice(b"\r\n"),
        }
        h
    }

    fn connect(&mut self, deadline: Instant) -> Result<Conn, HttpError> {
        if self.abort.as_ref().is_some_and(|a| a.is_aborted()) {
            return Err(HttpError::Aborted);
        }
        let ep = &self.endpoint;
        let addrs: Vec<SocketAddr> = match ep.host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, ep.port)],
            Err(_) => (ep.host.as_str(), ep.port)
                .to_socket_addrs()
                .map_err(HttpError::Connect)?
                .collect(),
        };
        let mut last = io::Error::new(io::ErrorKind::NotFound, "control host resolved to no address");
        let mut sock = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.connect_timeout.min(remaining(deadline)?)) {
                Ok(s) => {
                    sock = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let Some(sock) = sock else {
            return Err(HttpError::Connect(last));
        };
        sock.set_nodelay(true).map_err(HttpError::Connect)?;
        if let Some(abort) = &self.abort {
            abort.register(&sock)?;
        }
        let stream = match (&self.tls, ep.tls) {
            (Some(config), true) => {
                let name = rustls_pki_types::ServerName::try_from(ep.host.clone())
                    .map_err(|e| HttpError::Tls(e.to_string()))?;
                let conn = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(|e| HttpError::Tls(e.to_string()))?;
                Stream::Tls(Box::new(rustls::StreamOwned::new(conn, sock)))
            }
            (None, true) => {
                return Err(HttpError::Tls(
                    "no TLS configuration for an https endpoint".into(),
                ))
            }
            (_, false) => Stream::Plain(sock),
        };
        Ok(Conn {
            stream,
            buf: vec![0; READ_CHUNK],
            pos: 0,
            end: 0,
            received: false,
            deadline: Instant::now(),
        })
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// One connection and its read buffer (`buf[pos..end]` is unread).
struct Conn {
    stream: Stream,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// Whether any byte of the current response arrived.
    received: bool,
    deadline: Instant,
}

/// What the head says about the body.
enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

impl Conn {
    /// Writes one request and reads its response; the flag says whether the
    /// connection may be reused.
    fn exchange(
        &mut self,
        head: &[u8],
        body: Option<&Body<'_>>,
        deadline: Instant,
    ) -> Result<(Response, bool), HttpError> {
        self.received = false;
        self.deadline = deadline;
        let left = remaining(deadline)?;
        // A TLS write may also read (handshake): both directions are bounded.
        self.stream
            .tcp()
            .set_read_timeout(Some(left))
            .map_err(HttpError::Io)?;
        self.stream
            .tcp()
            .set_write_timeout(Some(left))
            .map_err(HttpError::Io)?;
        self.stream.write_all(head).map_err(HttpError::from_io)?;
        if let Some(b) = body {
            self.stream.write_all(b.bytes).map_err(HttpError::from_io)?;
        }
        self.stream.flush().map_err(HttpError::from_io)?;
        self.read_response()
    }

    fn read_response(&mut self) -> Result<(Response, bool), HttpError> {
        loop {
            let (status, framing, keep, consumed, sluice_headers) = self.read_head()?;
            self.pos += consumed;
            if (100..200).contains(&status) {
                if status == 101 {
                    return Err(HttpError::Protocol("unexpected 101 Switching Protocols"));
                }
                continue;
            }
            let body = match framing {
                Framing::None => Vec::new(),
                Framing::Length(n) => self.read_exact_body(n)?,
                Framing::Chunked => self.read_chunked()?,
                Framing::UntilClose => self.read_to_close()?,
            };
            let keep = keep && !matches!(framing, Framing::UntilClose);
            return Ok((
                Response {
                    status,
                    body,
                    sluice_headers,
                },
                keep,
            ));
        }
    }

    /// Parses the head at `buf[pos..]`, reading more as needed. Returns the
    /// status, the body framing, keep-alive, the head's length and control's
    /// `x-sluice-*` headers.
    #[allow(clippy::type_complexity)]
    fn read_head(&mut self) -> Result<(u16, Framing, bool, usize, Vec<(String, String)>), HttpError> {
        loop {
            if self.end > self.pos {
                let mut headers = [httparse::EMPTY_HEADER; 64];
                let mut resp = httparse::Response::new(&mut headers);
                match resp.parse(&self.buf[self.pos..self.end]) {
                    Ok(httparse::Status::Complete(n)) => {
                        let status = resp.code.unwrap_or(0);
                        let http10 = resp.version == Some(0);
                        let mut length: Option<usize> = None;
                        let mut chunked = false;
                        let mut close = http10;
                        let mut sluice = Vec::new();
                        for h in resp.headers.iter() {
                            if h.name
                                .get(..9)
                                .is_some_and(|p| p.eq_ignore_ascii_case("x-sluice-"))
                            {
                                if let Ok(v) = std::str::from_utf8(h.value) {
                                    sluice.push((h.name.to_ascii_lowercase(), v.trim().to_owned()));
                                }
                            }
                            if h.name.eq_ignore_ascii_case("content-length") {
                                let v = std::str::from_utf8(h.value)
                                    .ok()
                                    .and_then(|v| v.trim().parse::<usize>().ok())
                                    .ok_or(HttpError::Protocol("bad Content-Length"))?;
                                if length.is_some_and(|l| l != v) {
                                    return Err(HttpError::Protocol("conflicting Content-Length"));
                                }
                                length = Some(v);
                            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                                let v = std::str::from_utf8(h.value).unwrap_or("");
                                chunked = v
                                    .rsplit(',')
                                    .next()
                                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
                                if !chunked {
                                    return Err(HttpError::Protocol("unsupported Transfer-Encoding"));
                                }
                            } else if h.name.eq_ignore_ascii_case("connection") {
                                let v = std::str::from_utf8(h.value).unwrap_or("");
                                for token in v.split(',') {
                                    let token = token.trim();
                                    if token.eq_ignore_ascii_case("close") {
                                        close = true;
                                    } else if token.eq_ignore_ascii_case("keep-alive") && http10 {
                                        close = false;
                                    }
                                }
                            }
                        }
                        let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
                            Framing::None
                        } else if chunked {
                            if length.is_some() {
                                return Err(HttpError::Protocol("both Content-Length and chunked"));
                            }
                            Framing::Chunked
                        } else if let Some(l) = length {
                            if l > MAX_BODY {
                                return Err(HttpError::Protocol("body too large"));
                            }
                            Framing::Length(l)
                        } else {
                            Framing::UntilClose
                        };
                        return Ok((status, framing, !close, n, sluice));
                    }
                    Ok(httparse::Status::Partial) => {
                        if self.end - self.pos >= MAX_HEAD {
                            return Err(HttpError::Protocol("response head too large"));
                        }
                    }
                    Err(_) => return Err(HttpError::Protocol("malformed response head")),
                }
            }
            if self.fill()? == 0 {
                return Err(HttpError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before a complete response head",
                )));
            }
        }
    }

    /// Reads more bytes after `buf[..end]`, compacting or growing the buffer;
    /// returns how many arrived (0 at end of stream).
    fn fill(&mut self) -> Result<usize, HttpError> {
        let left = remaining(self.deadline)?;
        // Each read may only wait for what is left of the request's time.
        self.stream
            .tcp()
            .set_read_timeout(Some(left))
            .map_err(HttpError::Io)?;
        if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
        } else if self.pos > 0 && self.end == self.buf.len() {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.end == self.buf.len() {
            let grown = self.buf.len() * 2;
            self.buf.resize(grown, 0);
        }
        let n = loop {
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(HttpError::from_io(e)),
            }
        };
        if n > 0 {
            self.received = true;
        }
        self.end += n;
        Ok(n)
    }

    fn read_exact_body(&mut self, n: usize) -> Result<Vec<u8>, HttpError> {
        let mut out = Vec::with_capacity(n.min(READ_CHUNK * 16));
        self.copy_into(&mut out, n)?;
        Ok(out)
    }

    /// Appends exactly `n` bytes of the stream to `out`.
    fn copy_into(&mut self, out: &mut Vec<u8>, mut n: usize) -> Result<(), HttpError> {
        while n > 0 {
            if self.pos == self.end && self.fill()? == 0 {
                return Err(HttpError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "body cut short",
                )));
            }
            let take = n.min(self.end - self.pos);
            out.extend_from_slice(&self.buf[self.pos..self.pos + take]);
            self.pos += take;
            n -= take;
        }
        Ok(())
    }

    /// One CRLF- (or LF-) terminated line, without its terminator.
    fn read_line(&mut self) -> Result<Vec<u8>, HttpError> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.pos..self.end]) {
                let mut line = &self.buf[self.pos..self.pos + i];
                if let [rest @ .., b'\r'] = line {
                    line = rest;
                }
                let line = line.to_vec();
                self.pos += i + 1;
                return Ok(line);
            }
            if self.end - self.pos > MAX_LINE {
                return Err(HttpError::Protocol("chunk line too long"));
            }
            if self.fill()? == 0 {
                return Err(HttpError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "chunked body cut short",
                )));
            }
        }
    }

    fn read_chunked(&mut self) -> Result<Vec<u8>, HttpError> {
        let mut out = Vec::new();
        loop {
            let line = self.read_line()?;
            let size = parse_chunk_size(&line).ok_or(HttpError::Protocol("bad chunk size"))?;
            if size == 0 {
                // Trailer fields, ignored, up to the empty line.
                while !self.read_line()?.is_empty() {}
                return Ok(out);
            }
            if out.len().saturating_add(size) > MAX_BODY {
                return Err(HttpError::Protocol("body too large"));
            }
            self.copy_into(&mut out, size)?;
            if !self.read_line()?.is_empty() {
                return Err(HttpError::Protocol("chunk not followed by CRLF"));
            }
        }
    }

    fn read_to_close(&mut self) -> Result<Vec<u8>, HttpError> {
        let mut out = Vec::new();
        loop {
            out.extend_from_slice(&self.buf[self.pos..self.end]);
            self.pos = self.end;
            if out.len() > MAX_BODY {
                return Err(HttpError::Protocol("body too large"));
            }
            match self.fill() {
                Ok(0) => return Ok(out),
                Ok(_) => {}
                // A TLS peer that closes without close_notify still ends the body.
                Err(HttpError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(out),
                Err(e) => return Err(e),
            }
        }
    }
}

/// Time left before `deadline`; an error once none is.
fn remaining(deadline: Instant) -> Result<Duration, HttpError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(HttpError::Timeout);
    }
    Ok(left)
}

/// The size in a chunk-size line (`hex[;ext]`), refusing empty, non-hex and
/// overflowing values.
pub(crate) fn parse_chunk_size(line: &[u8]) -> Option<usize> {
    let digits = match memchr::memchr(b';', line) {
        Some(i) => &line[..i],
        None => line,
    };
    let digits = digits.trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    let mut n = 0usize;
    for &d in digits {
        n = n * 16 + (d as char).to_digit(16)? as usize;
    }
    Some(n)
}
