//! Upstream connections: dialling (plain or TLS), and each worker's pools.
//!
//! A worker owns its pools outright (no sharing, no locks). A connection goes
//! back to its pool only after a response was read to its exact end with
//! keep-alive; one that saw any error, or whose response was cut short, is
//! dropped, never reused.

pub mod pool;
pub mod tls;

use crate::io::read::read_append;
use bytes::BytesMut;
use monoio::buf::IoBuf;
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use monoio::BufResult;
use monoio_rustls::TlsConnector;
use nix::errno::Errno;
use nix::sys::socket::{recv, MsgFlags};
use rustls::pki_types::ServerName;
use sluice_contract::snapshot::UpstreamEntry;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// A connection to an upstream.
pub enum Conn {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP, and the TCP socket's descriptor (the TLS stream owns the
    /// socket, so the descriptor stays valid as long as the stream).
    Tls(Box<monoio_rustls::ClientTlsStream<TcpStream>>, RawFd),
}

impl Conn {
    /// Whether an idle connection can carry a new request: the upstream has
    /// neither closed it nor sent anything since the last response ended.
    /// One non-blocking `recv(MSG_PEEK)` on the socket; a TLS record waiting
    /// (a close_notify, most likely) counts as something sent.
    pub fn is_idle_clean(&self) -> bool {
        let fd = match self {
            Conn::Plain(s) => s.as_raw_fd(),
            Conn::Tls(_, fd) => *fd,
        };
        let mut byte = [0u8; 1];
        let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
        // Nothing to read yet is the one good answer; data, end of stream
        // and errors all mean the connection is not fit for a request.
        matches!(recv(fd, &mut byte, flags), Err(Errno::EAGAIN))
    }

    /// Reads into the spare capacity of `buf` (appending); `Ok(0)` is end of stream.
    pub async fn read_into(&mut self, buf: BytesMut) -> BufResult<usize, BytesMut> {
        match self {
            Conn::Plain(s) => read_append(s, buf).await,
            Conn::Tls(s, _) => read_append(&mut **s, buf).await,
        }
    }

    /// Writes all of `buf`.
    pub async fn write_all<T: IoBuf + 'static>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Conn::Plain(s) => s.write_all(buf).await,
            Conn::Tls(s, _) => s.write_all(buf).await,
        }
    }
}

/// Why an upstream could not be dialled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialError {
    /// No address for the host, or every address refused.
    Unreachable,
    /// Connecting or the TLS handshake took too long.
    Timeout,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
}

/// Dials `up`: TCP with TCP_NODELAY, then TLS when the upstream is `https`.
pub async fn dial(up: &UpstreamEntry, tls: &TlsConnector, timeout: Duration) -> Result<Conn, DialError> {
    match monoio::time::timeout(timeout, dial_inner(up, tls)).await {
        Ok(r) => r,
        Err(_) => Err(DialError::Timeout),
    }
}

async fn dial_inner(up: &UpstreamEntry, tls: &TlsConnector) -> Result<Conn, DialError> {
    let mut last = DialError::Unreachable;
    let addrs = up.addrs.load_full();
    for addr in addrs.iter() {
        match connect(*addr).await {
            Ok(tcp) => {
                if !up.tls {
                    return Ok(Conn::Plain(tcp));
                }
                let Ok(name) = ServerName::try_from(up.host.to_string()) else {
                    return Err(DialError::Tls);
                };
                let fd = tcp.as_raw_fd();
                return match tls.connect(name, tcp).await {
                    Ok(s) => Ok(Conn::Tls(Box::new(s), fd)),
                    Err(e) => {
                        tracing::debug!(upstream = %up.name, error = %e, "tls handshake failed");
                        Err(DialError::Tls)
                    }
                };
            }
            Err(e) => {
                tracing::debug!(upstream = %up.name, %addr, error = %e, "connect failed");
                last = DialError::Unreachable;
            }
        }
    }
    Err(last)
}

async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let tcp = TcpStream::connect_addr(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}
