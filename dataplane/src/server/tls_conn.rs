//! A connection on the TLS listener: the handshake, bounded by its timeout,
//! then the same connection loop as plain TCP ([`super::conn`]), or the
//! HTTP/2 one ([`super::h2_conn`]) when the client chose `h2` by ALPN.

use super::certs::Ingress;
use super::conn::{serve_io, ConnGuard};
use crate::io::client::ClientIo;
use crate::io::h2_tls::{Prefixed, TlsCompat};
use crate::io::tls;
use crate::worker::Worker;
use monoio::net::TcpStream;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

/// Serves one connection accepted on the TLS listener until it closes. A
/// handshake that fails or does not finish in time closes it (no record: no
/// request was read).
pub async fn serve(w: Rc<Worker>, stream: TcpStream, peer: SocketAddr, ingress: Arc<Ingress>) {
    let _guard = ConnGuard::new(&w);
    let _ = stream.set_nodelay(true);
    let handshake = tls::accept(stream, ingress.current());
    let accepted = monoio::time::timeout(w.shared.limits.tls_handshake_timeout(), handshake).await;
    match accepted {
        Ok(Ok(mut accepted)) if accepted.negotiated.h2 => {
            let version = accepted.negotiated.version;
            let early = std::mem::take(&mut accepted.early).freeze();
            let (tcp, conn) = accepted.into_parts();
            let io = Prefixed::new(early, TlsCompat::new(tcp, conn));
            super::h2_conn::serve(&w, io, peer, Some(version)).await;
        }
        Ok(Ok(accepted)) => serve_io(&w, ClientIo::tls(accepted, peer)).await,
        Ok(Err(e)) => {
            tracing::debug!(worker = w.id, error = %e, "TLS handshake failed");
        }
        Err(_) => {
            tracing::debug!(worker = w.id, "TLS handshake timed out");
        }
    }
}
