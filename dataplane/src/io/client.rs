//! The client side of one connection: its socket halves, its read buffer,
//! and what stays in that buffer from one request to the next.
//!
//! The connection owns one read buffer for its lifetime. Head parsing borrows
//! it; the body is read into the same buffer; a finished request is split off
//! as a `Bytes` so that pipelined bytes behind it stay in place. Which bytes
//! of the buffer belong to the current request is kept here, not by the
//! request's phases: [`ClientIo::begin`] notes a parsed head,
//! [`ClientIo::read_body`] takes the request out, and
//! [`ClientIo::end_request`] drops what is left of it and says whether the
//! connection can carry another request.

use super::gather;
use super::stream::{ClientRd, ClientWr, OutBytes};
use super::tls::Accepted;
use bytes::{Buf, Bytes, BytesMut};
use monoio::io::Canceller;
use monoio::net::TcpStream;
use monoio::BufResult;
use sluice_contract::codec::chunked::ChunkedDecoder;
use sluice_contract::codec::head::{Framing, Header, RequestHead};
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Initial read buffer per connection; grows for large bodies.
pub const READ_BUF: usize = 16 * 1024;

/// The client side of a connection.
pub struct ClientIo {
    /// Read half.
    pub rd: ClientRd,
    /// Write half.
    pub wr: ClientWr,
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
    /// The TLS version the connection negotiated (`TLSv1.3`, `TLSv1.2`);
    /// `None`: plain TCP. For the records.
    pub tls_version: Option<&'static str>,
    /// The connection is one HTTP/2 stream (for the records).
    pub h2: bool,
    /// How the last request ended ([`crate::proxy::handle`] notes it): an
    /// HTTP/2 stream ends with END_STREAM or RST_STREAM by it.
    pub last_outcome: sluice_contract::record::Outcome,
    /// The current request's bytes at the front of `buf`, until they are
    /// taken out by [`ClientIo::read_body`] or dropped by
    /// [`ClientIo::end_request`].
    pending: Option<Pending>,
}

/// A request head at the front of the read buffer, its body not read yet.
#[derive(Clone, Copy, Debug)]
struct Pending {
    head_len: usize,
    framing: Framing,
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

impl FullRequest {
    /// Value of the first of `headers` (the request's spans) called `name`.
    pub fn header<'a>(&'a self, headers: &[Header], name: &[u8]) -> Option<&'a [u8]> {
        sluice_contract::codec::head::find(&self.raw, headers, name)
    }
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
    /// The client side of an accepted connection.
    pub fn new(stream: TcpStream, peer: SocketAddr) -> ClientIo {
        let (rd, wr) = monoio::io::Splitable::into_split(stream);
        ClientIo::of(ClientRd::Plain(rd), ClientWr::Plain(wr), peer, None)
    }

    /// The client side of a connection whose TLS handshake is done; the
    /// bytes that came with the handshake start the read buffer.
    pub fn tls(mut accepted: Accepted, peer: SocketAddr) -> ClientIo {
        let version = accepted.negotiated.version;
        let early = std::mem::take(&mut accepted.early);
        let (rd, wr) = accepted.into_halves();
        let mut io = ClientIo::of(ClientRd::Tls(rd), ClientWr::Tls(wr), peer, Some(version));
        io.buf.extend_from_slice(&early);
        io
    }

    /// Sets up the client side of one connection from its halves.
    pub fn of(rd: ClientRd, wr: ClientWr, peer: SocketAddr, tls_version: Option<&'static str>) -> ClientIo {
        ClientIo {
            rd,
            wr,
            buf: BytesMut::with_capacity(READ_BUF),
            out: Vec::with_capacity(1024),
            headers: Vec::with_capacity(32),
            peer,
            ip_hash: Default::default(),
            tls_version,
            h2: false,
            last_outcome: sluice_contract::record::Outcome::Ok,
            pending: None,
        }
    }

    /// Notes that a request with `head` starts at the front of the buffer.
    pub fn begin(&mut self, head: &RequestHead) {
        self.pending = Some(Pending {
            head_len: head.len,
            framing: head.framing,
        });
    }

    /// Whether the connection can carry another request once this one is
    /// answered: its body was read, or it has none. (A body left unread
    /// cannot be told apart from the next request.)
    pub fn reusable(&self) -> bool {
        self.pending.is_none_or(|p| p.framing == Framing::Empty)
    }

    /// Ends the current request: drops its bytes from the buffer if they are
    /// still there, and says whether the connection can carry another.
    pub fn end_request(&mut self) -> bool {
        let reusable = self.reusable();
        if let Some(p) = self.pending.take() {
            if reusable {
                self.buf.advance(p.head_len);
            } else {
                self.buf.clear();
            }
        }
        reusable
    }

    /// Writes `out` to the client; `false` if the client is gone.
    pub async fn write_out(&mut self) -> bool {
        let out = std::mem::take(&mut self.out);
        let (res, mut out) = self.wr.write_all(out).await;
        out.clear();
        self.out = out;
        res.is_ok()
    }

    /// Value of the first header of the current request called `name`
    /// (case-insensitive), while its head is in the buffer: before
    /// [`ClientIo::read_body`] takes it out (then see [`FullRequest::header`]).
    pub fn header(&self, name: &[u8]) -> Option<&[u8]> {
        sluice_contract::codec::head::find(&self.buf, &self.headers, name)
    }

    /// Reads the body of `head` completely, within the limits, answering
    /// `Expect: 100-continue` first, and takes the request (head and body)
    /// out of the read buffer: what follows it stays for the next request.
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
        let request = self.read_request(head, max_body, deadline).await?;
        self.pending = None;
        Ok(request)
    }

    async fn read_request(
        &mut self,
        head: &RequestHead,
        max_body: usize,
        deadline: Instant,
    ) -> Result<FullRequest, BodyError> {
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
                    let unread = &self.buf[at..];
                    let used = decoder
                        .feed(unread, |piece| {
                            if body.len() + piece.len() > max_body {
                                too_large = true;
                            } else {
                                body.extend_from_slice(&unread[piece]);
                            }
                        })
                        .map_err(|_| BodyError::BadChunked)?;
                    // A chunk declared past the limit is refused as soon as
                    // its size line is read, not after its bytes came.
                    if too_large || decoder.announced_len() > max_body as u64 {
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
        match monoio::time::timeout(left, self.rd.read_append(buf)).await {
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

/// Why a response could not be written to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientGone {
    /// The connection failed or closed.
    Closed,
    /// The client accepted nothing for the whole write timeout.
    Stalled,
}

impl ClientGone {
    /// What the record says.
    pub fn reason(self) -> Option<std::borrow::Cow<'static, str>> {
        match self {
            ClientGone::Closed => None,
            ClientGone::Stalled => Some("client_write_timeout".into()),
        }
    }
}

/// Writes `bytes` to the client, giving up when the write does not complete
/// within `limit`: a client that stopped reading must not pin an upstream
/// connection and its buffers for ever. The buffer comes back unless the
/// write was abandoned (then the connection is closed anyway).
pub async fn to_client<B: OutBytes>(
    wr: &mut ClientWr,
    bytes: B,
    limit: Duration,
) -> (Result<usize, ClientGone>, Option<B>) {
    sent(monoio::time::timeout(limit, wr.write_all(bytes)).await)
}

/// [`to_client`] for a head and the first body bytes, in one write.
pub async fn to_client_gathered(
    wr: &mut ClientWr,
    both: gather::HeadAndBody,
    limit: Duration,
) -> (Result<usize, ClientGone>, Option<gather::HeadAndBody>) {
    sent(monoio::time::timeout(limit, wr.write_gathered(both)).await)
}

/// What a client write bounded by a timeout came to, and its buffer back
/// unless the write was abandoned.
fn sent<B>(
    write: Result<BufResult<usize, B>, monoio::time::error::Elapsed>,
) -> (Result<usize, ClientGone>, Option<B>) {
    match write {
        Ok((Ok(n), back)) => (Ok(n), Some(back)),
        Ok((Err(_), back)) => (Err(ClientGone::Closed), Some(back)),
        Err(_) => (Err(ClientGone::Stalled), None),
    }
}

/// A read kept pending on the client while a response streams, so that a
/// client that goes away is noticed at once (and its upstream request
/// cancelled). It reads into the connection's own buffer, and only when that
/// buffer is empty: bytes of a pipelined request already there must stay
/// where they are, and bytes the client sends early are kept for the next
/// request.
pub struct ClientWatch {
    probing: bool,
    /// The read is dropped, not cancelled, when the watch stops (an HTTP/2
    /// stream's watch: it holds no buffer the kernel writes into).
    drop_on_stop: bool,
    canceller: Canceller,
}

/// What the watch saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// The client sent its next request early; it is in the read buffer and
    /// the watch has stopped.
    Early,
    /// The client closed or reset the connection.
    Gone,
}

/// The read a [`ClientWatch`] keeps pending.
pub type WatchRead = BufResult<usize, BytesMut>;

impl ClientWatch {
    /// Starts watching `rd`, reading into `buf` when it is empty. Poll the
    /// returned future beside the response (while [`ClientWatch::active`]),
    /// hand its result to [`ClientWatch::seen`], and end with
    /// [`ClientWatch::stop`].
    pub fn start<'a>(
        rd: &'a mut ClientRd,
        buf: &mut BytesMut,
    ) -> (ClientWatch, impl Future<Output = WatchRead> + 'a) {
        let probing = buf.is_empty();
        let mut probe = if probing {
            std::mem::take(buf)
        } else {
            BytesMut::new()
        };
        if probing && probe.capacity() < 1024 {
            probe.reserve(4096);
        }
        let canceller = Canceller::new();
        let drop_on_stop = matches!(rd, ClientRd::H2(_));
        let read = rd.cancelable_read_append(probe, canceller.handle());
        (
            ClientWatch {
                probing,
                drop_on_stop,
                canceller,
            },
            read,
        )
    }

    /// Whether the read is still pending (poll it).
    pub fn active(&self) -> bool {
        self.probing
    }

    /// Takes the watch's read result: early bytes go back into `buf`.
    pub fn seen(&mut self, read: WatchRead, buf: &mut BytesMut) -> Seen {
        self.probing = false;
        match read {
            (Ok(n), b) if n > 0 => {
                *buf = b;
                Seen::Early
            }
            _ => Seen::Gone,
        }
    }

    /// Cancels a pending read and waits for it to end, keeping whatever it
    /// read in `buf`. `false`: the client closed meanwhile.
    pub async fn stop<F: Future<Output = WatchRead>>(
        self,
        read: std::pin::Pin<&mut F>,
        buf: &mut BytesMut,
    ) -> bool {
        if !self.probing || self.drop_on_stop {
            return true;
        }
        self.canceller.cancel();
        match read.await {
            (Ok(0), _) => false,
            (Ok(_), b) | (Err(_), b) => {
                *buf = b;
                true
            }
        }
    }
}

#[cfg(test)]
mod tests;
