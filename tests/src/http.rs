//! A raw HTTP/1.1 client over `std::net::TcpStream`.
//!
//! It sends whatever bytes it is given (valid requests from [`Req`], or any
//! garbage), and reads responses strictly: 1xx interim responses are kept
//! apart, chunked bodies are de-chunked while noting whether the terminating
//! zero-size chunk arrived, and a body cut short by a close is reported as
//! incomplete rather than hidden.

use crate::WAIT;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A request to build; [`Req::to_bytes`] renders it.
#[derive(Clone, Debug)]
pub struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    chunks: Option<Vec<Vec<u8>>>,
}

impl Req {
    /// A request with `method` on `path`, with a `host` header.
    pub fn new(method: &str, path: &str) -> Req {
        Req {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: vec![("host".into(), "127.0.0.1".into())],
            body: Vec::new(),
            chunks: None,
        }
    }

    /// `GET path`.
    pub fn get(path: &str) -> Req {
        Req::new("GET", path)
    }

    /// `POST path`.
    pub fn post(path: &str) -> Req {
        Req::new("POST", path)
    }

    /// `POST /v1/chat/completions` with `body` as JSON and a bearer key.
    pub fn chat(key: &str, body: &serde_json::Value) -> Req {
        Req::post("/v1/chat/completions").bearer(key).json(body)
    }

    /// `POST /v1/messages` with `body` as JSON, an `x-api-key` and an
    /// `anthropic-version`, as the Anthropic SDK sends them.
    pub fn messages(key: &str, body: &serde_json::Value) -> Req {
        Req::post("/v1/messages")
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .json(body)
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Removes every header called `name`.
    pub fn without(mut self, name: &str) -> Req {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    /// Adds `authorization: Bearer key`.
    pub fn bearer(self, key: &str) -> Req {
        self.header("authorization", &format!("Bearer {key}"))
    }

    /// Sets a JSON body (and its content type).
    pub fn json(self, body: &serde_json::Value) -> Req {
        self.header("content-type", "application/json")
            .body(serde_json::to_vec(body).expect("JSON"))
    }

    /// Sets the body bytes as they are.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Req {
        self.body = body.into();
        self
    }

    /// Sends the body with `transfer-encoding: chunked`, cut into `n` pieces.
    pub fn chunked(mut self, n: usize) -> Req {
        let n = n.max(1);
        let size = self.body.len().div_ceil(n).max(1);
        self.chunks = Some(self.body.chunks(size).map(<[u8]>::to_vec).collect());
        self
    }

    fn has(&self, name: &str) -> bool {
        self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// The head alone (for tests that send the body later).
    pub fn head_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.path).into_bytes();
        for (name, value) in &self.headers {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        if self.chunks.is_some() {
            if !self.has("transfer-encoding") {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            }
        } else if !self.has("content-length")
            && !self.has("transfer-encoding")
            && (!self.body.is_empty() || self.method == "POST")
        {
            out.extend_from_slice(format!("content-length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// The body as it goes on the wire (chunk framing included).
    pub fn body_bytes(&self) -> Vec<u8> {
        match &self.chunks {
            None => self.body.clone(),
            Some(chunks) => {
                let mut out = Vec::new();
                for c in chunks {
                    out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                    out.extend_from_slice(c);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
                out
            }
        }
    }

    /// The whole request.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.head_bytes();
        out.extend_from_slice(&self.body_bytes());
        out
    }
}

/// A response head.
#[derive(Clone, Debug)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the body is chunked.
    pub fn is_chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    }

    /// Whether the server said it will close the connection.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// A whole response.
#[derive(Clone, Debug)]
pub struct Response {
    /// The final head.
    pub head: Head,
    /// Statuses of 1xx interim responses that came before it.
    pub interim: Vec<u16>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// Whether the body ended as its framing says (all `content-length`
    /// bytes, or the zero-size chunk), not by the connection closing early.
    pub complete: bool,
    /// HTTP chunks the body came in (0 if not chunked).
    pub chunks: usize,
}

impl Response {
    /// Status code.
    pub fn status(&self) -> u16 {
        self.head.status
    }

    /// First value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    /// The body as JSON (panics with the body if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {:?}", self.text()))
    }

    /// The body as text (lossy), for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the status and that the body is an OpenAI-shaped error
    /// (`{"error":{"message","type","param","code"}}`); returns the error object.
    #[track_caller]
    pub fn assert_openai_error(&self, status: u16) -> serde_json::Value {
        assert_eq!(self.status(), status, "status; body: {}", self.text());
        let v = self.json();
        let e = &v["error"];
        assert!(e.is_object(), "no error object: {v}");
        assert!(e["message"].is_string(), "error.message: {v}");
        assert!(e["type"].is_string(), "error.type: {v}");
        assert!(e.get("param").is_some(), "error.param missing: {v}");
        assert!(e.get("code").is_some(), "error.code missing: {v}");
        e.clone()
    }

    /// Asserts the status and that the body is an Anthropic-shaped error
    /// (`{"type":"error","error":{"type","message"}}`); returns the error object.
    #[track_caller]
    pub fn assert_anthropic_error(&self, status: u16) -> serde_json::Value {
        assert_eq!(self.status(), status, "status; body: {}", self.text());
        let v = self.json();
        assert_eq!(v["type"], "error", "top-level type: {v}");
        let e = &v["error"];
        assert!(e["type"].is_string(), "error.type: {v}");
        assert!(e["message"].is_string(), "error.message: {v}");
        e.clone()
    }
}

/// One piece of a chunked body, as [`Conn::read_chunk`] returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// A data chunk.
    Data(Vec<u8>),
    /// The terminating zero-size chunk (trailers consumed).
    Last,
    /// The connection closed before the next whole chunk.
    Closed,
}

/// A client connection.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    eof: bool,
}

impl Conn {
    /// Connects to `addr`; reads time out after [`WAIT`].
    pub fn connect(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
        stream.set_read_timeout(Some(WAIT)).expect("set_read_timeout");
        stream.set_write_timeout(Some(WAIT)).expect("set_write_timeout");
        let _ = stream.set_nodelay(true);
        Conn {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Sends `bytes`.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("sending {} bytes: {e}", bytes.len()));
    }

    /// Sends `bytes`; `false` if the peer is gone (for tests that expect it may be).
    pub fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    /// Sends a request.
    pub fn send_req(&mut self, req: &Req) {
        self.send(&req.to_bytes());
    }

    /// Sends `req` and reads its response.
    pub fn roundtrip(&mut self, req: &Req) -> Response {
        self.send_req(req);
        self.read_response()
    }

    /// Closes both directions (the client going away).
    pub fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Reads more bytes into the buffer; 0 at end of stream. A reset counts
    /// as end of stream; a read timeout panics.
    fn fill(&mut self) -> usize {
        if self.eof {
            return 0;
        }
        let mut tmp = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut tmp) {
                Ok(0) => {
                    self.eof = true;
                    return 0;
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return n;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!(
                        "timed out reading from the server; {} bytes buffered: {:?}",
                        self.buf.len(),
                        String::from_utf8_lossy(&self.buf)
                    )
                }
                Err(_) => {
                    self.eof = true;
                    return 0;
                }
            }
        }
    }

    /// Reads from the socket once and returns all that is buffered, which
    /// stays buffered for the readers below: what one write of the server
    /// brought, when nothing was buffered before.
    pub fn read_once(&mut self) -> &[u8] {
        self.fill();
        &self.buf
    }

    /// Reads one response head (interim or final); `None` if the connection
    /// closed first.
    pub fn try_read_head(&mut self) -> Option<Head> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let raw: Vec<u8> = self.buf.drain(..end + 4).collect();
                return Some(parse_head(&raw));
            }
            if self.fill() == 0 {
                return None;
            }
        }
    }

    /// Reads one response head; panics if the connection closed first.
    pub fn read_head(&mut self) -> Head {
        match self.try_read_head() {
            Some(h) => h,
            None => panic!(
                "connection closed before a response head; got {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// Reads the next piece of a chunked body.
    pub fn read_chunk(&mut self) -> Chunk {
        let line_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n") {
                break i;
            }
            if self.fill() == 0 {
                return Chunk::Closed;
            }
        };
        let line = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .unwrap_or_else(|_| panic!("bad chunk size line from the server: {line:?}"));
        if size == 0 {
            // Trailers, then the empty line.
            let mut at = line_end + 2;
            loop {
                match find(&self.buf[at..], b"\r\n") {
                    Some(0) => {
                        self.buf.drain(..at + 2);
                        return Chunk::Last;
                    }
                    Some(i) => at += i + 2,
                    None => {
                        if self.fill() == 0 {
                            return Chunk::Closed;
                        }
                    }
                }
            }
        }
        let need = line_end + 2 + size + 2;
        while self.buf.len() < need {
            if self.fill() == 0 {
                return Chunk::Closed;
            }
        }
        assert_eq!(
            &self.buf[need - 2..need],
            b"\r\n",
            "chunk data not followed by CRLF"
        );
        let data = self.buf[line_end + 2..need - 2].to_vec();
        self.buf.drain(..need);
        Chunk::Data(data)
    }

    /// Reads the body that follows `head` (`head_request`: the request was HEAD).
    pub fn read_body(&mut self, head: &Head, head_request: bool) -> (Vec<u8>, bool, usize) {
        if head_request || head.status < 200 || head.status == 204 || head.status == 304 {
            return (Vec::new(), true, 0);
        }
        if head.is_chunked() {
            let mut body = Vec::new();
            let mut chunks = 0;
            loop {
                match self.read_chunk() {
                    Chunk::Data(d) => {
                        chunks += 1;
                        body.extend_from_slice(&d);
                    }
                    Chunk::Last => return (body, true, chunks),
                    Chunk::Closed => {
                        // Whatever partial chunk arrived is not body.
                        return (body, false, chunks);
                    }
                }
            }
        }
        if let Some(len) = head.header("content-length") {
            let len: usize = len
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("bad content-length {len:?}"));
            while self.buf.len() < len {
                if self.fill() == 0 {
                    let body = std::mem::take(&mut self.buf);
                    return (body, false, 0);
                }
            }
            let body = self.buf.drain(..len).collect();
            return (body, true, 0);
        }
        // Delimited by the close.
        while self.fill() > 0 {}
        (std::mem::take(&mut self.buf), true, 0)
    }

    /// Reads a whole response, skipping (and noting) 1xx interim responses.
    pub fn read_response(&mut self) -> Response {
        self.try_read_response().unwrap_or_else(|| {
            panic!(
                "connection closed before a response; got {:?}",
                String::from_utf8_lossy(&self.buf)
            )
        })
    }

    /// [`Conn::read_response`], or `None` if the connection closed before a head.
    pub fn try_read_response(&mut self) -> Option<Response> {
        let mut interim = Vec::new();
        loop {
            let head = self.try_read_head()?;
            if (100..200).contains(&head.status) {
                interim.push(head.status);
                continue;
            }
            let (body, complete, chunks) = self.read_body(&head, false);
            return Some(Response {
                head,
                interim,
                body,
                complete,
                chunks,
            });
        }
    }

    /// Whether the server closes the connection within `timeout` (reading
    /// and discarding anything it still sends). A reset counts as closed.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        if self.eof {
            return true;
        }
        let deadline = Instant::now() + timeout;
        let mut tmp = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let _ = self.stream.set_read_timeout(Some(WAIT));
                return false;
            }
            let _ = self.stream.set_read_timeout(Some(left));
            match self.stream.read(&mut tmp) {
                Ok(0) => {
                    self.eof = true;
                    return true;
                }
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    let _ = self.stream.set_read_timeout(Some(WAIT));
                    return false;
                }
                Err(_) => {
                    self.eof = true;
                    return true;
                }
            }
        }
    }

    /// Bytes received but not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// The underlying stream (to change timeouts and the like).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

/// Sends `req` on a fresh connection and reads the response.
pub fn request(addr: SocketAddr, req: &Req) -> Response {
    Conn::connect(addr).roundtrip(req)
}

/// Sends raw `bytes` on a fresh connection and reads one response; the
/// connection is handed back to check what happens to it next.
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> (Response, Conn) {
    let mut c = Conn::connect(addr);
    c.send(bytes);
    let r = c.read_response();
    (r, c)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_head(raw: &[u8]) -> Head {
    let text = String::from_utf8_lossy(raw);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    assert!(
        version.starts_with("HTTP/1."),
        "not an HTTP/1.x status line: {status_line:?}"
    );
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let reason = parts.next().unwrap_or("").to_owned();
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("bad header line {line:?}"));
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    Head {
        status,
        reason,
        headers,
    }
}
