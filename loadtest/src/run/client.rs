//! One HTTP/1.1 exchange on a keep-alive connection (plain TCP or rustls),
//! timing the response as it arrives; or, with `--http2`, one HTTP/2
//! stream at a time ([`super::h2client`]).

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use monoio_rustls::{ClientTlsStream, TlsConnector};
use rustls::pki_types::ServerName;

use super::h2client::H2Conn;
use super::http::{parse_head, Body, MAX_HEAD};
use super::request::{Api, Target};
use super::response::{fail, Sink};
pub(crate) use super::response::{Clock, Response, Stale};
use super::stats::ErrorKind;

/// Read buffer per connection; also the largest response head accepted.
const BUF: usize = MAX_HEAD;

enum Io {
    Plain(TcpStream),
    Tls(Box<ClientTlsStream<TcpStream>>),
    H2(Box<H2Conn>),
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
            Io::H2(_) => return Err(io::ErrorKind::Unsupported.into()),
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
            Io::H2(_) => (Err(io::ErrorKind::Unsupported.into()), slice),
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
    /// Speak HTTP/2 (`--http2`).
    http2: Option<Target>,
    /// TLS for HTTP/2, poll-based over the socket (see [`super::h2client`]).
    h2_tls: Option<tokio_rustls::TlsConnector>,
}

impl Connector {
    pub(crate) fn new(
        target: &Target,
        addrs: Vec<SocketAddr>,
        tls: Option<Arc<rustls::ClientConfig>>,
        http2: bool,
    ) -> anyhow::Result<Self> {
        let h2_tls = tls.clone().map(tokio_rustls::TlsConnector::from);
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
            http2: http2.then(|| target.clone()),
            h2_tls,
        })
    }

    pub(crate) async fn connect(&self) -> io::Result<Conn> {
        let i = self.next.get();
        self.next.set(i.wrapping_add(1));
        let addr = self.addrs[i % self.addrs.len()];
        let tcp = TcpStream::connect_addr(addr).await?;
        tcp.set_nodelay(true)?;
        let io = match (&self.tls, &self.http2) {
            (None, None) => Io::Plain(tcp),
            (Some((connector, name)), None) => Io::Tls(Box::new(connector.connect(name.clone(), tcp).await?)),
            (None, Some(target)) => {
                let compat = monoio_compat::StreamWrapper::new(tcp);
                Io::H2(Box::new(H2Conn::handshake(compat, target).await?))
            }
            (Some((_, name)), Some(target)) => {
                let compat = monoio_compat::StreamWrapper::new(tcp);
                let connector = self.h2_tls.as_ref().ok_or(io::ErrorKind::Unsupported)?;
                let tls = connector.connect(name.clone(), compat).await?;
                Io::H2(Box::new(H2Conn::handshake(tls, target).await?))
            }
        };
        Ok(Conn {
            io,
            buf: Vec::with_capacity(BUF),
        })
    }
}

/// The TLS client configuration: system roots (or only `ca_file`'s, if given).
pub(crate) fn tls_config(
    ca_file: Option<&std::path::Path>,
    http2: bool,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
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
    cfg.alpn_protocols = vec![if http2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    Ok(Arc::new(cfg))
}

/// Sends `req` and reads the whole response.
pub(crate) async fn exchange(
    conn: &mut Conn,
    req: Bytes,
    api: Api,
    stream: bool,
    clock: Clock,
) -> Result<Response, Stale> {
    if let Io::H2(h2) = &mut conn.io {
        return super::h2client::exchange(h2, &req, api, stream, clock).await;
    }
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
    let mut sink = Sink::for_response(ok_status, stream && head.event_stream, api);
    let mut body = Body::new(head.framing);
    let mut start = head.len;
    let mut clean_end = true;
    let mut now = now;
    loop {
        let input = &conn.buf[start..];
        let used = match body.feed(input, |data| sink.feed(data, now)) {
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
    sink.finish(api, &mut resp);
    Ok(resp)
}

#[cfg(test)]
mod tests;
