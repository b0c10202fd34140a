//! The admin listener: `GET /metrics` (Prometheus text) and `GET /healthz`.
//!
//! Scrapes are rare and never on the request path, so this is a plain
//! blocking server on its own thread.

use crate::metrics::Metrics;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// Extra exposition text appended to `/metrics` (e.g. the agent's counters).
pub type Extra = Arc<dyn Fn() -> String + Send + Sync>;

/// Binds `addr` and serves on a background thread; returns the bound address.
pub fn spawn(addr: SocketAddr, metrics: Arc<Metrics>, extra: Extra) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new()
        .name("sluice-admin".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let (metrics, extra) = (metrics.clone(), extra.clone());
                let _ = std::thread::Builder::new()
                    .name("sluice-admin-conn".into())
                    .spawn(move || serve(stream, &metrics, &extra));
            }
        })?;
    Ok(bound)
}

fn serve(mut stream: TcpStream, metrics: &Metrics, extra: &Extra) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf = [0u8; 8192];
    let mut len = 0;
    let path = loop {
        match stream.read(&mut buf[len..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => len += n,
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => break req.path.unwrap_or("/").to_owned(),
            Ok(httparse::Status::Partial) if len < buf.len() => continue,
            _ => {
                let _ = stream
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                return;
            }
        }
    };
    let (status, ctype, body) = match path.split('?').next().unwrap_or("") {
        "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics.render(&extra())),
        "/healthz" => ("200 OK", "text/plain", "ok\n".to_string()),
        _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.write_all(body.as_bytes()));
}
