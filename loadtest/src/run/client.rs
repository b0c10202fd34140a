//! One HTTP/1.1 exchange on a keep-alive connection (plain TCP or rustls),
//! timing the response as it arrives.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use monoio_rustls::{ClientTlsStream, TlsConnector};
use rustls::pki_types::ServerName;

use super::http::{parse_head, Body, MAX_HEAD};
use super::request::{Api, Target};
use super::sse_metrics::{json_usage, StreamMetrics, Tally};
use super::stats::ErrorKind;

/// Read buffer per connection; also the largest response head accepted.
const BUF: usize = MAX_HEAD;
/// Largest non-streamed body kept for parsing.
const MAX_JSON: usize = 8 << 20;

/// Nanoseconds since the run started, from one shared `Instant`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock(pub(crate) Instant);

impl Clock {
    pub(crate) fn now_ns(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

enum Io {
    Plain(TcpStream),
    Tls(Box<ClientTlsStream<TcpStream>>),
}

/// A connection and its read buffer.
pub(crate) struct Conn {
    io: Io,
    buf: Vec<u8>,
}

impl Conn {
    async fn write_all(&mut self, req: Bytes) -> io::Result<()> {
        let (res, _) = match &mut self.io {
            Io::Plain(s) => s.write_all(req).await,
            Io::Tls(s) => s.write_all(req).await,
        };
        res.map(|_| ())
    }

    /// Appends what arrives to the buffer; returns the byte count (0 at EOF).
    async fn read_more(&mut self) -> io::Result<usize> {
        let buf = std::mem::take(&mut self.buf);
        let len = buf.len();
        let slice = buf.slice_mut(len..);
        let (res, slice) = match &mut self.io {
            Io::Plain(s) => s.read(slice).await,
            Io::Tls(s) => s.read(slice).await,
        };
        self.buf = slice.into_inner();
        res
    }

    /// Replaces the buffer's content with what arrives next.
    async fn read_fresh(&mut self) -> io::Result<usize> {
        self.buf.clear();
        self.read_more().await
    }
}

/// Opens connections to the target, round-robin over its addresses.
pub(crate) struct Connector {
    addrs: Vec<SocketAddr>,
    next: Cell<usize>,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl Connector {
    pub(crate) fn new(
        target: &Target,
        addrs: Vec<SocketAddr>,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> anyhow::Result<Self> {
        let tls = match tls {
            Some(cfg) => {
                let name = ServerName::try_from(target.host.clone()).context("bad TLS server name")?;
                Some((TlsConnector::from(cfg), name))
            }
            None => None,
        };
        Ok(Self {
            addrs,
            next: Cell::new(0),
            tls,
        })
    }

    pub(crate) async fn connect(&self) -> io::Result<Conn> {
        let i = self.next.get();
        self.next.set(i.wrapping_add(1));
        let addr = self.addrs[i % self.addrs.len()];
        let tcp = TcpStream::connect_addr(addr).await?;
        tcp.set_nodelay(true)?;
        let io = match &self.tls {
            None => Io::Plain(tcp),
            Some((connector, name)) => Io::Tls(Box::new(connector.connect(name.clone(), tcp).await?)),
        };
        Ok(Conn {
            io,
            buf: Vec::with_capacity(BUF),
        })
    }
}

/// The TLS client configuration: system roots (or only `ca_file`'s, if given).
pub(crate) fn tls_config(ca_file: Option<&std::path::Path>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    let files: Vec<std::path::PathBuf> = match ca_file {
        Some(f) => vec![f.to_path_buf()],
        None => [
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/pki/tls/certs/ca-bundle.crt",
            "/etc/ssl/cert.pem",
        ]
        .iter()
        .map(Into::into)
        .filter(|p: &std::path::PathBuf| p.exists())
        .take(1)
        .collect(),
    };
    for f in &files {
        let pem = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            // A bundle may hold certificates this rustls cannot use: skip them.
            let _ = roots.add(cert.with_context(|| format!("bad PEM in {}", f.display()))?);
        }
    }
    if roots.is_empty() {
        anyhow::bail!("no trusted CA certificates: pass --ca-file");
    }
    let mut cfg =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// What came back for one request.
#[derive(Debug, Default)]
pub(crate) struct Response {
    pub(crate) head_ns: Option<u64>,
    pub(crate) end_ns: u64,
    pub(crate) error: Option<ErrorKind>,
    pub(crate) stream: Option<Tally>,
    pub(crate) json_tokens: Option<u64>,
    /// The connection may carry another request.
    pub(crate) reusable: bool,
}

/// The exchange failed before any byte of a response arrived on a reused
/// connection: the server had closed it while idle; retry on a new one.
#[derive(Debug)]
pub(crate) struct Stale;

enum Sink {
    Stream(StreamMetrics),
    Json(Vec<u8>, bool),
    Discard,
}

/// Sends `req` and reads the whole response.
pub(crate) async fn exchange(
    conn: &mut Conn,
    req: Bytes,
    api: Api,
    stream: bool,
    clock: Clock,
) -> Result<Response, Stale> {
    let mut resp = Response::default();
    conn.buf.clear();
    if conn.write_all(req).await.is_err() {
        return Err(Stale);
    }
    // The head (skipping any interim 1xx heads).
    let mut got_any = false;
    let head = loop {
        match parse_head(&conn.buf) {
            Ok(None) => {}
            Err(_) => return Ok(fail(resp, ErrorKind::Protocol, clock)),
            Ok(Some(h)) if (100..200).contains(&h.status) => {
                conn.buf.drain(..h.len);
                continue;
            }
            Ok(Some(h)) => break h,
        }
        if conn.buf.len() == conn.buf.capacity() {
            return Ok(fail(resp, ErrorKind::Protocol, clock));
        }
        match conn.read_more().await {
            Ok(0) | Err(_) if !got_any => return Err(Stale),
            Ok(0) | Err(_) => return Ok(fail(resp, ErrorKind::Truncated, clock)),
            Ok(_) => got_any = true,
        }
    };
    let now = clock.now_ns();
    resp.head_ns = Some(now);
    let ok_status = (200..300).contains(&head.status);
    let mut sink = if !ok_status {
        Sink::Discard
    } else if stream && head.event_stream {
        Sink::Stream(StreamMetrics::new(api))
    } else {
        Sink::Json(Vec::new(), false)
    };
    let mut body = Body::new(head.framing);
    let mut start = head.len;
    let mut clean_end = true;
    let mut now = now;
    loop {
        let input = &conn.buf[start..];
        let used = match body.feed(input, |data| feed(&mut sink, data, now)) {
            Ok(n) => n,
            Err(_) => return Ok(fail(resp, ErrorKind::Protocol, clock)),
        };
        if body.is_done() {
            // Bytes past the body: the server is confused; don't reuse.
            resp.reusable = head.keep_alive && used == input.len();
            break;
        }
        match conn.read_fresh().await {
            Ok(n) if n > 0 => {}
            result => {
                // Only a body delimited by the close ends cleanly here.
                clean_end = matches!(body, Body::UntilClose) && result.is_ok();
                break;
            }
        }
        now = clock.now_ns();
        start = 0;
    }
    resp.end_ns = now;
    if !ok_status {
        resp.error = Some(ErrorKind::Status(head.status));
        return Ok(resp);
    }
    if !clean_end {
        resp.error = Some(ErrorKind::Truncated);
    }
    match sink {
        Sink::Stream(m) => {
            let t = m.tally;
            if resp.error.is_none() {
                resp.error = if t.malformed {
                    Some(ErrorKind::Protocol)
                } else if t.error_event {
                    Some(ErrorKind::StreamError)
                } else if !t.done {
                    Some(ErrorKind::Truncated)
                } else {
                    None
                };
            }
            resp.stream = Some(t);
        }
        Sink::Json(bytes, overflow) => {
            if resp.error.is_none() {
                match json_usage(api, &bytes) {
                    Ok(tokens) if !overflow => resp.json_tokens = tokens,
                    _ => resp.error = Some(ErrorKind::Protocol),
                }
            }
        }
        Sink::Discard => {}
    }
    Ok(resp)
}

fn feed(sink: &mut Sink, data: &[u8], now: u64) {
    match sink {
        Sink::Stream(m) => m.feed(data, now),
        Sink::Json(buf, overflow) => {
            if buf.len() + data.len() > MAX_JSON {
                *overflow = true;
            } else {
                buf.extend_from_slice(data);
            }
        }
        Sink::Discard => {}
    }
}

fn fail(mut resp: Response, kind: ErrorKind, clock: Clock) -> Response {
    resp.error = Some(kind);
    resp.end_ns = clock.now_ns();
    resp.reusable = false;
    resp
}

#[cfg(test)]
mod tests;
