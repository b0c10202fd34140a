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

/// One thing a [`Scripted`] upstream does after reading a request.
#[derive(Clone, Debug)]
pub enum Step {
    /// Writes these bytes (in one write).
    Send(Vec<u8>),
    /// Waits this long before the next step.
    Pause(Duration),
    /// Closes the connection (FIN in both directions) and stops serving it.
    Close,
    /// Keeps the connection open without answering anything more, until the
    /// peer closes it.
    Hold,
    /// Waits until the test sets this flag (to order the upstream's next
    /// bytes after something the client saw, without sleeping).
    Wait(Arc<AtomicBool>),
}

/// What a [`Scripted`] upstream has seen.
#[derive(Debug, Default)]
struct Seen {
    /// Connections accepted.
    connections: usize,
    /// Requests read (all connections).
    requests: usize,
    /// Scripts run to their end.
    scripts_done: usize,
    /// Connections the peer (the gateway) closed.
    peer_closed: usize,
    /// Each request head, as received.
    heads: Vec<String>,
}

/// A server that answers the `n`th request it reads (counting from 0 over
/// all connections) by running the steps `script(n)` returns: hostile or
/// unusual upstream behaviour on demand. After the steps it reads the next
/// request on the same connection, unless a step closed or held it.
pub struct Scripted {
    /// Where it listens.
    pub addr: SocketAddr,
    seen: Arc<std::sync::Mutex<Seen>>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Scripted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripted").field("addr", &self.addr).finish()
    }
}

type Script = dyn Fn(usize) -> Vec<Step> + Send + Sync;

impl Scripted {
    /// Starts serving with `script`.
    pub fn start(script: impl Fn(usize) -> Vec<Step> + Send + Sync + 'static) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a scripted upstream");
        let addr = listener.local_addr().expect("local_addr");
        let seen = Arc::new(std::sync::Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        let (seen2, stop2) = (seen.clone(), stop.clone());
        std::thread::Builder::new()
            .name("scripted-upstream".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    seen2.lock().unwrap().connections += 1;
                    let (seen, script) = (seen2.clone(), script.clone());
                    let _ = std::thread::Builder::new().spawn(move || run_script(conn, &seen, &*script));
                }
            })
            .expect("spawning a scripted upstream");
        Scripted { addr, seen, stop }
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.seen.lock().unwrap().connections
    }

    /// Requests read so far.
    pub fn requests(&self) -> usize {
        self.seen.lock().unwrap().requests
    }

    /// Scripts that ran to their last step so far.
    pub fn scripts_done(&self) -> usize {
        self.seen.lock().unwrap().scripts_done
    }

    /// Connections the gateway closed so far.
    pub fn peer_closed(&self) -> usize {
        self.seen.lock().unwrap().peer_closed
    }

    /// The head of the `n`th request (as received).
    pub fn head(&self, n: usize) -> String {
        self.seen.lock().unwrap().heads[n].clone()
    }

    /// Polls until `cond` holds; panics after [`crate::WAIT`].
    #[track_caller]
    pub fn wait(&self, what: &str, cond: impl Fn(&Scripted) -> bool) {
        let deadline = std::time::Instant::now() + crate::WAIT;
        while !cond(self) {
            if std::time::Instant::now() >= deadline {
                panic!(
                    "scripted upstream: {what} did not happen within {:?} ({} connections, {} requests, {} closed by the gateway)",
                    crate::WAIT,
                    self.connections(),
                    self.requests(),
                    self.peer_closed()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn run_script(mut conn: TcpStream, seen: &std::sync::Mutex<Seen>, script: &Script) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(120)));
    let _ = conn.set_nodelay(true);
    let mut buf = Vec::new();
    let mut tmp = [0u8; 16 * 1024];
    let peer_closed = || seen.lock().unwrap().peer_closed += 1;
    loop {
        // Read one whole request (head and content-length body).
        let n = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let len: usize = head
                    .to_ascii_lowercase()
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    buf.drain(..end + 4 + len);
                    let mut s = seen.lock().unwrap();
                    s.heads.push(head);
                    s.requests += 1;
                    break s.requests - 1;
                }
            }
            match conn.read(&mut tmp) {
                Ok(0) | Err(_) => {
                    peer_closed();
                    return;
                }
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        for step in script(n) {
            match step {
                Step::Send(bytes) => {
                    if conn.write_all(&bytes).is_err() {
                        peer_closed();
                        return;
                    }
                }
                Step::Pause(d) => std::thread::sleep(d),
                Step::Wait(flag) => {
                    let deadline = std::time::Instant::now() + crate::WAIT;
                    while !flag.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                Step::Close => {
                    let _ = conn.shutdown(std::net::Shutdown::Both);
                    seen.lock().unwrap().scripts_done += 1;
                    return;
                }
                Step::Hold => {
                    seen.lock().unwrap().scripts_done += 1;
                    while matches!(conn.read(&mut tmp), Ok(n) if n > 0) {}
                    peer_closed();
                    return;
                }
            }
        }
        seen.lock().unwrap().scripts_done += 1;
    }
}
