//! One client connection: read a request head, hand it to the proxy phases,
//! repeat while keep-alive holds.
//!
//! The connection owns one read buffer for its lifetime. Head parsing borrows
//! it; the body is read into the same buffer; a finished request is split off
//! as a `Bytes` so that pipelined bytes behind it stay in place.

use super::worker::Worker;
use crate::respond::{write_error, ErrorKind};
use crate::upstream::read_append;
use bytes::{Bytes, BytesMut};
use monoio::io::{AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use sluice_contract::codec::chunked::ChunkedDecoder;
use sluice_contract::codec::head::{self, Framing, HeadLimits, Header, RequestHead};
use sluice_contract::dialect::Dialect;
use sluice_contract::record::{ApiRoute, Outcome, Record};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

/// Initial read buffer per connection; grows for large bodies.
const READ_BUF: usize = 16 * 1024;

/// The client side of a connection.
pub struct ClientIo {
    /// Read half.
    pub rd: OwnedReadHalf<TcpStream>,
    /// Write half.
    pub wr: OwnedWriteHalf<TcpStream>,
    /// Bytes read and not yet consumed.
    pub buf: BytesMut,
    /// Scratch for heads and small responses the gateway writes itself.
    pub out: Vec<u8>,
    /// Header spans of the current request head.
    pub headers: Vec<Header>,
    /// Peer address.
    pub peer: SocketAddr,
    /// The peer's IP hash, for the records of its requests.
    pub ip_hash: sluice_contract::iphash::IpHashMemo,
}

/// What happens to the connection after a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Read the next request.
    KeepAlive,
    /// Close the connection.
    Close,
}

/// A request whose body has been read completely.
pub struct FullRequest {
    /// Head and raw body bytes as received; header spans index into this.
    pub raw: Bytes,
    /// The body, de-chunked.
    pub body: Bytes,
}

/// Why a body could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Larger than the limit.
    TooLarge,
    /// Invalid chunked coding.
    BadChunked,
    /// Not received within the body timeout.
    Timeout,
    /// The client closed or reset the connection.
    Closed,
}

impl ClientIo {
    /// Writes `out` to the client; `false` if the client is gone.
    pub async fn write_out(&mut self) -> bool {
        let out = std::mem::take(&mut self.out);
        let (res, mut out) = self.wr.write_all(out).await;
        out.clear();
        self.out = out;
        res.is_ok()
    }

    /// Value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.of(&self.buf).eq_ignore_ascii_case(name))
            .map(|h| h.value.of(&self.buf))
    }

    /// Reads the body of `head` completely, within the limits, answering
    /// `Expect: 100-continue` first.
    pub async fn read_body(
        &mut self,
        head: &RequestHead,
        max_body: usize,
        timeout: Duration,
    ) -> Result<FullRequest, BodyError> {
        let deadline = Instant::now() + timeout;
        if head.expect_continue && head.framing != Framing::Empty && self.buf.len() == head.len {
            self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            if !self.write_out().await {
                return Err(BodyError::Closed);
            }
        }
        match head.framing {
            Framing::Empty | Framing::UntilClose => {
                let raw = self.buf.split_to(head.len).freeze();
                Ok(FullRequest {
                    raw,
                    body: Bytes::new(),
                })
            }
            Framing::Length(n) => {
                if n > max_body as u64 {
                    return Err(BodyError::TooLarge);
                }
                let total = head.len + n as usize;
                if self.buf.capacity() < total {
                    self.buf.reserve(total - self.buf.len());
                }
                while self.buf.len() < total {
                    self.fill(deadline).await?;
                }
                let raw = self.buf.split_to(total).freeze();
                let body = raw.slice(head.len..);
                Ok(FullRequest { raw, body })
            }
            Framing::Chunked => {
                let mut decoder = ChunkedDecoder::new();
                let mut body = BytesMut::new();
                let mut at = head.len;
                // Chunk framing may add overhead, but not without bound.
                let max_raw = max_body.saturating_mul(2).saturating_add(64 * 1024);
                loop {
                    let mut too_large = false;
                    let used = decoder
                        .feed(&self.buf[at..], |piece| {
                            if body.len() + piece.len() > max_body {
                                too_large = true;
                            } else {
                                body.extend_from_slice(piece);
                            }
                        })
                        .map_err(|_| BodyError::BadChunked)?;
                    if too_large {
                        return Err(BodyError::TooLarge);
                    }
                    at += used;
                    if decoder.is_done() {
                        break;
                    }
                    if self.buf.len() - head.len > max_raw {
                        return Err(BodyError::TooLarge);
                    }
                    self.fill(deadline).await?;
                }
                let raw = self.buf.split_to(at).freeze();
                Ok(FullRequest {
                    raw,
                    body: body.freeze(),
                })
            }
        }
    }

    /// Reads more bytes before `deadline`.
    async fn fill(&mut self, deadline: Instant) -> Result<(), BodyError> {
        let left = deadline.saturating_duration_since(Instant::now());
        let buf = std::mem::take(&mut self.buf);
        match monoio::time::timeout(left, read_append(&mut self.rd, buf)).await {
            Ok((Ok(n), buf)) => {
                self.buf = buf;
                if n == 0 {
                    Err(BodyError::Closed)
                } else {
                    Ok(())
                }
            }
            Ok((Err(_), buf)) => {
                self.buf = buf;
                Err(BodyError::Closed)
            }
            Err(_) => Err(BodyError::Timeout),
        }
    }
}

/// Decrements the connection gauge however the connection ends.
struct ConnGuard(Rc<Worker>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.metrics().connections(-1);
    }
}

/// Serves one accepted connection until it closes.
pub async fn serve(w: Rc<Worker>, stream: TcpStream, peer: SocketAddr) {
    w.metrics().connections(1);
    let _guard = ConnGuard(w.clone());
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let mut io = ClientIo {
        rd,
        wr,
        buf: BytesMut::with_capacity(READ_BUF),
        out: Vec::with_capacity(1024),
        headers: Vec::with_capacity(32),
        peer,
        ip_hash: Default::default(),
    };
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
            let read = monoio::time::timeout(w.shared.limits.idle_timeout(), read_append(&mut io.rd, buf));
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
        let head = match read_head(&w, &mut io, &limits, started).await {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err((kind, label)) => {
                let mut record = Record::new(ts_ms, ApiRoute::Other);
                record.bytes_in = io.buf.len() as u64;
                let detail = format!("{}: {label}", kind.message());
                write_error(&mut io.out, Dialect::OpenAi, kind, Some(&detail), false, &[]);
                record.bytes_out = io.out.len() as u64;
                let _ = io.write_out().await;
                record.status = kind.status();
                record.outcome = Outcome::Rejected;
                record.error = Some(label.into());
                record.total_us = started.elapsed().as_micros() as u64;
                w.metrics().request(ApiRoute::Other, record.status);
                w.metrics().bytes(record.bytes_in, record.bytes_out);
                w.record(record);
                return;
            }
        };
        let next = crate::proxy::handle(&w, &mut io, head, started, ts_ms).await;
        if next == Next::Close {
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
) -> Result<Option<RequestHead>, (ErrorKind, &'static str)> {
    let deadline = started + w.shared.limits.header_timeout();
    loop {
        match head::parse_request(&io.buf, limits, &mut io.headers) {
            Ok(Some(head)) => return Ok(Some(head)),
            Ok(None) => {}
            Err(e) if e.status() == 431 => return Err((ErrorKind::HeadTooLarge, e.label())),
            Err(e) => return Err((ErrorKind::BadRequest, e.label())),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let buf = std::mem::take(&mut io.buf);
        match monoio::time::timeout(left, read_append(&mut io.rd, buf)).await {
            Ok((Ok(n), buf)) if n > 0 => io.buf = buf,
            Ok((_, buf)) => {
                io.buf = buf;
                return Ok(None);
            }
            Err(_) => return Err((ErrorKind::RequestTimeout, "header_timeout")),
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
