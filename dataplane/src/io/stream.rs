//! A client connection's two halves, plain TCP, TLS or one HTTP/2 stream,
//! behind one type each, so the connection loop and the request phases are
//! the same code for all. The plain halves are monoio's own; the TLS ones
//! are [`super::tls`]'s, the HTTP/2 ones [`super::h2_stream`]'s. Dispatch is
//! one `match` per read or write.

use super::gather::{self, HeadAndBody};
use super::h2_stream::{H2Read, H2Write};
use super::read::read_append;
use super::tls::{TlsRead, TlsWrite};
use bytes::{Bytes, BytesMut};
use monoio::buf::{IoBuf, IoBufMut, Slice};
use monoio::io::{AsyncWriteRentExt, CancelHandle, CancelableAsyncReadRent, OwnedReadHalf, OwnedWriteHalf};
use monoio::net::TcpStream;
use monoio::BufResult;

/// The read half of a client connection.
pub enum ClientRd {
    /// Plain TCP.
    Plain(OwnedReadHalf<TcpStream>),
    /// TLS.
    Tls(TlsRead),
    /// An HTTP/2 stream's request body.
    H2(H2Read),
}

/// The write half of a client connection.
pub enum ClientWr {
    /// Plain TCP.
    Plain(OwnedWriteHalf<TcpStream>),
    /// TLS.
    Tls(TlsWrite),
    /// An HTTP/2 stream's response.
    H2(H2Write),
}

/// An owned buffer of bytes to send whose contents a TLS session can read
/// (a plain socket takes it as it is).
pub trait OutBytes: IoBuf {
    /// The bytes to send.
    fn bytes(&self) -> &[u8];
}

impl OutBytes for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

impl OutBytes for Bytes {
    fn bytes(&self) -> &[u8] {
        self
    }
}

impl OutBytes for Slice<Vec<u8>> {
    fn bytes(&self) -> &[u8] {
        self.get_ref().get(self.begin()..self.end()).unwrap_or(&[])
    }
}

impl ClientRd {
    /// Appends what arrives to `buf`; `Ok(0)`: the client closed.
    pub async fn read_append(&mut self, buf: BytesMut) -> BufResult<usize, BytesMut> {
        match self {
            ClientRd::Plain(rd) => read_append(rd, buf).await,
            ClientRd::Tls(rd) => rd.read_append(buf, None).await,
            ClientRd::H2(rd) => rd.read_append(buf).await,
        }
    }

    /// [`ClientRd::read_append`] that `cancel` can end early (with an
    /// error; `buf` comes back with whatever it held). On an HTTP/2 stream,
    /// a read that ends only when the client resets the stream.
    pub async fn cancelable_read_append(
        &mut self,
        buf: BytesMut,
        cancel: CancelHandle,
    ) -> BufResult<usize, BytesMut> {
        match self {
            ClientRd::Plain(rd) => {
                let mut buf = buf;
                if buf.capacity() == buf.len() {
                    buf.reserve(4096);
                }
                let (len, cap) = (buf.len(), buf.capacity());
                let (res, slice) = rd.cancelable_read(buf.slice_mut(len..cap), cancel).await;
                (res, slice.into_inner())
            }
            ClientRd::Tls(rd) => rd.read_append(buf, Some(cancel)).await,
            // A stream has nothing more to read once its body is: what is
            // watched is a reset (this read is dropped, not cancelled).
            ClientRd::H2(rd) => rd.watch(buf).await,
        }
    }
}

impl ClientWr {
    /// Writes all of `buf`.
    pub async fn write_all<B: OutBytes>(&mut self, buf: B) -> BufResult<usize, B> {
        match self {
            ClientWr::Plain(wr) => wr.write_all(buf).await,
            ClientWr::Tls(wr) => {
                let res = wr.write_parts(&[buf.bytes()]).await;
                (res, buf)
            }
            ClientWr::H2(wr) => {
                let res = wr.write_parts(&[buf.bytes()]).await;
                (res, buf)
            }
        }
    }

    /// Writes a head and the first body bytes together (one vectored write
    /// on a plain socket; one flush of TLS records on a TLS one).
    pub async fn write_gathered(&mut self, both: HeadAndBody) -> BufResult<usize, HeadAndBody> {
        match self {
            ClientWr::Plain(wr) => gather::write_all(wr, both).await,
            ClientWr::Tls(wr) => {
                let (head, body) = both.parts();
                let res = wr.write_parts(&[head, body]).await;
                (res, both)
            }
            ClientWr::H2(wr) => {
                let (head, body) = both.parts();
                let res = wr.write_parts(&[head, body]).await;
                (res, both)
            }
        }
    }

    /// Ends a TLS session with close_notify; nothing for plain TCP or an
    /// HTTP/2 stream (its connection ends it).
    pub async fn close(&mut self) {
        if let ClientWr::Tls(wr) = self {
            wr.close().await;
        }
    }
}
