//! Stand-ins for broken upstreams: an address nobody listens on, and a tiny
//! server that answers every request with the same canned response.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A loopback address with nothing listening (connections are refused).
///
/// Port 1 lies outside the ephemeral range, so no process another test
/// starts can take it meanwhile (a port freed just now could be handed out
/// again); only if something does listen there, fall back to one.
pub fn dead_addr() -> SocketAddr {
    let one = SocketAddr::from(([127, 0, 0, 1], 1));
    if TcpStream::connect_timeout(&one, Duration::from_secs(1)).is_err() {
        return one;
    }
    let l = TcpListener::bind("127.0.0.1:0").expect("binding a probe port");
    l.local_addr().expect("local_addr")
}

/// A server that reads each request head (and its content-length body) and
/// answers with fixed bytes, keeping the connection open afterwards.
#[derive(Debug)]
pub struct Canned {
    /// Where it listens.
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Canned {
    /// Starts answering every request with `response`.
    pub fn start(response: &[u8]) -> Canned {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a canned upstream");
        let addr = listener.local_addr().expect("local_addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let response = response.to_vec();
        let (h, s) = (hits.clone(), stop.clone());
        std::thread::Builder::new()
            .name("canned-upstream".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (h, response) = (h.clone(), response.clone());
                    let _ = std::thread::Builder::new().spawn(move || serve(conn, &h, &response));
                }
            })
            .expect("spawning a canned upstream");
        Canned { addr, hits, stop }
    }

    /// Starts answering every request with `status` (e.g. `503 Service
    /// Unavailable`) and the JSON `body`.
    pub fn json(status: &str, body: &str) -> Canned {
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        Canned::start(response.as_bytes())
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests answered so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Canned {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(mut conn: TcpStream, hits: &AtomicUsize, response: &[u8]) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        // Answer every whole request in the buffer.
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() < end + 4 + len {
                break;
            }
            buf.drain(..end + 4 + len);
            hits.fetch_add(1, Ordering::SeqCst);
            if conn.write_all(response).is_err() {
                return;
            }
        }
        match conn.read(&mut tmp) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
}
