//! Byte streams for the `h2` crate, which reads and writes through tokio's
//! poll-based `AsyncRead`/`AsyncWrite`: monoio's compatibility wrapper
//! (`monoio-compat`'s `StreamWrapper`) gives those over a monoio socket, and
//! [`TlsCompat`] runs a rustls session over that (in the manner of
//! tokio-rustls, whose stream cannot be built from a handshake already
//! done). [`Prefixed`] first yields bytes the connection read before it
//! knew it was HTTP/2 (the client preface).

use bytes::{Buf, Bytes};
use monoio::net::TcpStream;
use monoio_compat::StreamWrapper;
use rustls::ServerConnection;
use std::io::{self, BufRead, Write};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A plain socket for tokio's traits.
pub type TcpCompat = StreamWrapper<TcpStream>;

/// The wrapper's own buffers: reads and writes pass through them (its
/// default, 8 KiB, splits each 16 KiB DATA frame into two socket writes).
const COMPAT_READ_BUF: usize = 16 * 1024;
const COMPAT_WRITE_BUF: usize = 32 * 1024;

/// `tcp` for tokio's traits, with buffers sized for HTTP/2 frames.
pub fn tcp_compat(tcp: TcpStream) -> TcpCompat {
    StreamWrapper::new_with_buffer_size(tcp, COMPAT_READ_BUF, COMPAT_WRITE_BUF)
}

/// Ciphertext read per socket read (at most one record's worth of
/// plaintext, which rustls's received-plaintext limit always admits).
const READ_CHUNK: usize = 16 * 1024;

/// A rustls server session over a socket, for tokio's traits.
pub struct TlsCompat {
    io: TcpCompat,
    conn: ServerConnection,
    scratch: Box<[u8]>,
}

impl TlsCompat {
    /// The session `conn` (its handshake done) over `tcp`.
    pub fn new(tcp: TcpStream, conn: ServerConnection) -> TlsCompat {
        TlsCompat {
            io: tcp_compat(tcp),
            conn,
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
        }
    }

    /// Sends what the session holds; `Pending` until the socket took it all.
    fn poll_send_tls(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.conn.wants_write() {
            let mut sink = SyncWrite { io: &mut self.io, cx };
            match self.conn.write_tls(&mut sink) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// `std::io::Write` over a poll-based writer: `Pending` becomes `WouldBlock`
/// (the waker is registered by the poll).
struct SyncWrite<'a, 'b> {
    io: &'a mut TcpCompat,
    cx: &'a mut Context<'b>,
}

impl Write for SyncWrite<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write(self.cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match Pin::new(&mut *self.io).poll_flush(self.cx) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl AsyncRead for TlsCompat {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            // Copied straight from the session's plaintext into the
            // caller's (uninitialised) space: nothing is zeroed first.
            let mut reader = this.conn.reader();
            match reader.fill_buf() {
                Ok(chunk) => {
                    // Empty: close_notify, the end of the stream.
                    let n = chunk.len().min(buf.remaining());
                    buf.put_slice(&chunk[..n]);
                    reader.consume(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The TCP end without close_notify: an end all the same.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Poll::Ready(Ok(())),
                Err(e) => return Poll::Ready(Err(e)),
            }
            // Answers the session owes (a key update) go out as they can.
            if let Poll::Ready(Err(e)) = this.poll_send_tls(cx) {
                return Poll::Ready(Err(e));
            }
            let mut rb = ReadBuf::new(&mut this.scratch);
            match Pin::new(&mut this.io).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            let mut cipher = rb.filled();
            if cipher.is_empty() {
                return Poll::Ready(Ok(()));
            }
            while !cipher.is_empty() {
                if this.conn.read_tls(&mut cipher)? == 0 {
                    break;
                }
                if let Err(e) = this.conn.process_new_packets() {
                    // Let the alert out before the connection ends.
                    let _ = this.poll_send_tls(cx);
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
                }
            }
        }
    }
}

impl AsyncWrite for TlsCompat {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            let n = this.conn.writer().write(data)?;
            match this.poll_send_tls(cx) {
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                // The session's send buffer was full and is still: wait.
                Poll::Pending if n == 0 => return Poll::Pending,
                Poll::Ready(Ok(())) if n == 0 && !data.is_empty() => continue,
                _ => return Poll::Ready(Ok(n)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.poll_send_tls(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.io).poll_flush(cx),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.conn.send_close_notify();
        match this.poll_send_tls(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.io).poll_shutdown(cx),
            other => other,
        }
    }
}

/// A stream that first yields `prefix` (bytes already read from it).
pub struct Prefixed<T> {
    prefix: Bytes,
    inner: T,
}

impl<T> Prefixed<T> {
    /// `inner`, with `prefix` read first.
    pub fn new(prefix: Bytes, inner: T) -> Prefixed<T> {
        Prefixed { prefix, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.has_remaining() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
