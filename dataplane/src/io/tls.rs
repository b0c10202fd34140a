//! Ingress TLS on monoio's owned-buffer I/O: a thin adapter over rustls's
//! [`ServerConnection`], split into a read half and a write half like a
//! plain socket.
//!
//! Why not monoio-rustls's stream: the connection loop keeps a read pending
//! on the client while a response streams ([`super::client::ClientWatch`])
//! and cancels it when the response ends; monoio-rustls's stream has no
//! cancelable read. Here the halves own the TCP halves, so the read half
//! uses the socket's own cancelable read, and the TLS session between them
//! is an `Rc<RefCell<_>>` borrowed only between awaits (one thread, never
//! across an await, so a borrow cannot collide).
//!
//! Each half keeps one ciphertext buffer for the life of the connection;
//! plaintext is appended straight into the connection's read buffer (one
//! copy, out of rustls's decrypted records) and written into rustls from
//! the response buffers (one copy, into its record encryption).
//!
//! TLS messages the read half gets that need an answer (a TLS 1.3 key
//! update) wait in the session until the write half next writes: on HTTP/1.1
//! every request is answered, so that is soon.

use bytes::BytesMut;
use monoio::io::{
    AsyncWriteRentExt, CancelHandle, CancelableAsyncReadRent, OwnedReadHalf, OwnedWriteHalf, Splitable,
};
use monoio::net::TcpStream;
use monoio::BufResult;
use rustls::ServerConnection;
use std::cell::RefCell;
use std::io::{self, BufRead, Write};
use std::rc::Rc;
use std::sync::Arc;

/// One TLS record's worth of ciphertext (16 KiB of plaintext plus overhead).
const CIPHER_BUF: usize = 17 * 1024 + 512;

type Session = Rc<RefCell<ServerConnection>>;

/// The read half of a TLS connection: decrypts into the caller's buffer.
pub struct TlsRead {
    tcp: OwnedReadHalf<TcpStream>,
    session: Session,
    cipher: BytesMut,
}

/// The write half of a TLS connection: encrypts and sends.
pub struct TlsWrite {
    tcp: OwnedWriteHalf<TcpStream>,
    session: Session,
    cipher: Vec<u8>,
}

/// What the handshake settled, for the records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: &'static str,
    /// The client chose HTTP/2 by ALPN.
    pub h2: bool,
}

/// A finished handshake: the socket and its session, what was negotiated,
/// and any plaintext that arrived with the client's last handshake flight.
pub struct Accepted {
    tcp: TcpStream,
    conn: ServerConnection,
    cipher: BytesMut,
    out: Vec<u8>,
    /// Version and protocol.
    pub negotiated: Negotiated,
    /// Application bytes already decrypted (the start of the first request).
    pub early: BytesMut,
}

impl Accepted {
    /// The two halves, for HTTP/1.1.
    pub fn into_halves(self) -> (TlsRead, TlsWrite) {
        let session = Rc::new(RefCell::new(self.conn));
        let (rd, wr) = self.tcp.into_split();
        (
            TlsRead {
                tcp: rd,
                session: session.clone(),
                cipher: self.cipher,
            },
            TlsWrite {
                tcp: wr,
                session,
                cipher: self.out,
            },
        )
    }

    /// The socket and its session whole, for HTTP/2 (see [`super::h2_tls`]).
    pub fn into_parts(self) -> (TcpStream, ServerConnection) {
        (self.tcp, self.conn)
    }
}

fn invalid(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Runs the server side of a handshake on `tcp` with `config`. The caller
/// bounds it with the handshake timeout. A failed handshake sends rustls's
/// alert before it returns the error.
pub async fn accept(mut tcp: TcpStream, config: Arc<rustls::ServerConfig>) -> io::Result<Accepted> {
    let mut conn = ServerConnection::new(config).map_err(invalid)?;
    let mut cipher = BytesMut::with_capacity(CIPHER_BUF);
    let mut out = Vec::with_capacity(4096);
    let mut early = BytesMut::new();
    loop {
        if conn.wants_write() {
            out.clear();
            while conn.wants_write() {
                conn.write_tls(&mut out)?;
            }
            let (res, back) = tcp.write_all(out).await;
            out = back;
            res?;
            continue;
        }
        if !conn.is_handshaking() {
            break;
        }
        cipher.clear();
        let (res, back) = super::read::read_append(&mut tcp, cipher).await;
        cipher = back;
        if res? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if let Err(e) = feed(&mut conn, &cipher, &mut early) {
            // The alert rustls queued tells the client why.
            out.clear();
            while conn.wants_write() && conn.write_tls(&mut out).is_ok() {}
            let _ = tcp.write_all(out).await;
            return Err(e);
        }
    }
    let negotiated = Negotiated {
        version: match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "TLSv1.3",
        },
        h2: conn.alpn_protocol() == Some(b"h2"),
    };
    out.clear();
    Ok(Accepted {
        tcp,
        conn,
        cipher,
        out,
        negotiated,
        early,
    })
}

/// Hands `bytes` (ciphertext) to the session, appending what decrypts to
/// `plain` as it goes (rustls holds only a bounded amount of plaintext).
/// Returns the bytes appended and whether the peer closed the TLS session.
fn feed(conn: &mut ServerConnection, mut bytes: &[u8], plain: &mut BytesMut) -> io::Result<(usize, bool)> {
    let mut got = 0;
    let mut closed = false;
    while !bytes.is_empty() {
        if conn.read_tls(&mut bytes)? == 0 {
            break;
        }
        conn.process_new_packets().map_err(invalid)?;
        let (n, c) = drain(conn, plain)?;
        got += n;
        closed |= c;
    }
    Ok((got, closed))
}

/// Moves the session's decrypted bytes to `plain`. Returns how many, and
/// whether the peer closed the session (close_notify).
fn drain(conn: &mut ServerConnection, plain: &mut BytesMut) -> io::Result<(usize, bool)> {
    let mut got = 0;
    let mut reader = conn.reader();
    loop {
        match reader.fill_buf() {
            Ok([]) => return Ok((got, true)),
            Ok(chunk) => {
                let n = chunk.len();
                plain.extend_from_slice(chunk);
                reader.consume(n);
                got += n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok((got, false)),
            Err(e) => return Err(e),
        }
    }
}

impl TlsRead {
    /// Appends at least one decrypted byte to `buf`; `Ok(0)`: the client
    /// closed (close_notify or TCP end). With `cancel`, the socket read can
    /// be cancelled (it then ends with an error, `buf` intact).
    pub async fn read_append(
        &mut self,
        mut buf: BytesMut,
        cancel: Option<CancelHandle>,
    ) -> BufResult<usize, BytesMut> {
        loop {
            let drained = drain(&mut self.session.borrow_mut(), &mut buf);
            match drained {
                Ok((n, _)) if n > 0 => return (Ok(n), buf),
                Ok((_, true)) => return (Ok(0), buf),
                Ok(_) => {}
                Err(e) => return (Err(e), buf),
            }
            let mut cipher = std::mem::take(&mut self.cipher);
            cipher.clear();
            let cap = cipher.capacity().max(CIPHER_BUF);
            cipher.reserve(cap);
            let slice = monoio::buf::IoBufMut::slice_mut(cipher, 0..cap);
            let (res, slice) = match &cancel {
                Some(c) => self.tcp.cancelable_read(slice, c.clone()).await,
                None => monoio::io::AsyncReadRent::read(&mut self.tcp, slice).await,
            };
            self.cipher = slice.into_inner();
            match res {
                Ok(0) => return (Ok(0), buf),
                Ok(_) => {}
                Err(e) => return (Err(e), buf),
            }
            let fed = feed(&mut self.session.borrow_mut(), &self.cipher, &mut buf);
            match fed {
                Ok((n, _)) if n > 0 => return (Ok(n), buf),
                Ok((_, true)) => return (Ok(0), buf),
                Ok(_) => {}
                Err(e) => return (Err(e), buf),
            }
        }
    }
}

impl TlsWrite {
    /// Encrypts and sends `parts` in order, in as few socket writes as the
    /// session's buffer allows (one, for a response head and its first
    /// events). Returns the plaintext bytes sent.
    pub async fn write_parts(&mut self, parts: &[&[u8]]) -> io::Result<usize> {
        let mut total = 0;
        for part in parts {
            let mut at = 0;
            while at < part.len() {
                let n = self.session.borrow_mut().writer().write(&part[at..])?;
                at += n;
                if n == 0 {
                    // The session's send buffer is full: send it, then go on.
                    self.flush().await?;
                }
            }
            total += part.len();
        }
        self.flush().await?;
        Ok(total)
    }

    /// Sends every TLS record the session holds.
    pub async fn flush(&mut self) -> io::Result<()> {
        let mut out = std::mem::take(&mut self.cipher);
        out.clear();
        {
            let mut conn = self.session.borrow_mut();
            while conn.wants_write() {
                conn.write_tls(&mut out)?;
            }
        }
        if out.is_empty() {
            self.cipher = out;
            return Ok(());
        }
        let (res, back) = self.tcp.write_all(out).await;
        self.cipher = back;
        res.map(|_| ())
    }

    /// Sends close_notify (best effort; the connection is ending).
    pub async fn close(&mut self) {
        self.session.borrow_mut().send_close_notify();
        let _ = self.flush().await;
    }
}
