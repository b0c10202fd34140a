//! Agent tests against a fake control plane on 127.0.0.1.

use super::spool::{SEQ_FILE, SPOOL_FILE};
use super::*;
use crate::sink::{channel, WorkerSink};
use serde::Deserialize;
use sluice_contract::crypto::{dataplane_seal_key, hex, sha256, SealKey, SnapshotMac};
use sluice_contract::record::{ApiRoute, Record};
use sluice_contract::snapshot::types::{
    ApiKey, ProviderKey, ProviderKind, Route, Snapshot, Target, Tenant, Upstream,
};
use sluice_contract::snapshot::RouteEntry;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

/// The bearer secret (sent to control) and the key secret (never sent).
const SECRET: [u8; 32] = [0x5a; 32];
const KEY_SECRET: [u8; 32] = [0x3c; 32];
const DP_ID: &str = "dp_test";
const CANARY: &[u8] = b"sk-canary-PLAINTEXT-provider-key-0123456789";
const GATEWAY_KEY: &[u8] = b"sk-sluice-test-gateway-key";
/// How long the fake holds a long poll (control holds 25 s; tests need less).
const HOLD: Duration = Duration::from_millis(500);

/// The token file's contents.
fn token() -> String {
    format!("sdp-{DP_ID}-{}-{}", hex(&SECRET), hex(&KEY_SECRET))
}

/// What the data plane must present: the token without its key part.
fn bearer() -> String {
    format!("sdp-{DP_ID}-{}", hex(&SECRET))
}

fn seal_key() -> SealKey {
    dataplane_seal_key(&KEY_SECRET, DP_ID).unwrap()
}

fn snapshot_mac(body: &[u8]) -> String {
    SnapshotMac::derive(&KEY_SECRET, DP_ID).unwrap().sign(body)
}

/// The cached snapshot, after its MAC line.
fn cached_snapshot(dir: &Path) -> Option<Snapshot> {
    let raw = std::fs::read(dir.join(SNAPSHOT_CACHE_FILE)).ok()?;
    let nl = raw.iter().position(|&b| b == b'\n')?;
    serde_json::from_slice(&raw[nl + 1..]).ok()
}

fn snapshot(version: u64) -> Snapshot {
    let mut pk = ProviderKey {
        id: "pk1".into(),
        tenant: Some("acme".into()),
        api_key_env: None,
        sealed: None,
        ..ProviderKey::default()
    };
    pk.sealed = Some(hex(&seal_key().seal(CANARY, pk.aad().as_bytes()).unwrap()));
    Snapshot {
        version,
        tenants: vec![Tenant {
            id: "acme".into(),
            ..Tenant::default()
        }],
        api_keys: vec![ApiKey {
            id: "k1".into(),
            tenant: "acme".into(),
            sha256: hex(&sha256(GATEWAY_KEY)),
        }],
        upstreams: vec![Upstream {
            name: "mock".into(),
            kind: ProviderKind::Openai,
            base_url: "http://127.0.0.1:9".into(),
            region: None,
        }],
        provider_keys: vec![pk],
        routes: vec![Route {
            tenant: Some("acme".into()),
            model: "gpt".into(),
            targets: vec![Target {
                upstream: "mock".into(),
                provider_key: "pk1".into(),
                model: None,
                priority: None,
                weight: 1,
            }],
            ..Route::default()
        }],
        ..Snapshot::default()
    }
}

/// A snapshot whose route names a missing upstream: it does not compile.
fn broken_snapshot(version: u64) -> Snapshot {
    let mut s = snapshot(version);
    s.routes[0].targets[0].upstream = "nowhere".into();
    s
}

/// The provider key behind the test route, opened through the index.
fn open_canary(index: &Index) -> Vec<u8> {
    let key = index.key(&sha256(GATEWAY_KEY)).expect("gateway key");
    let Some(RouteEntry::Targets(targets)) = key.tenant.routes.get("gpt") else {
        panic!("no route")
    };
    targets[0].key.open().unwrap().to_vec()
}

fn record(ts: u64) -> Record {
    let mut r = Record::new(ts, ApiRoute::ChatCompletions);
    r.tenant = Some("acme".into());
    r.model = Some("gpt".into());
    r
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p = std::env::temp_dir().join(format!("sluice-agent-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(url: &str, dir: &Path) -> AgentConfig {
    AgentConfig {
        control_url: url.to_string(),
        token: Zeroizing::new(token()),
        spool_dir: dir.to_path_buf(),
        ca_file: None,
        insecure_plaintext: false,
    }
}

/// Polls `f` until it holds; fails the test after a generous limit.
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn spool_lines(dir: &Path) -> Vec<(u64, Record)> {
    #[derive(Deserialize)]
    struct Line {
        seq: u64,
        record: Record,
    }
    let raw = std::fs::read(dir.join(SPOOL_FILE)).unwrap_or_default();
    raw.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let l: Line = serde_json::from_slice(l).unwrap();
            (l.seq, l.record)
        })
        .collect()
}

fn dead_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

// ---------------------------------------------------------------------------
// The fake control plane.

#[derive(Default)]
struct Control {
    /// Current snapshot version and raw JSON.
    snap: Mutex<Option<(u64, Vec<u8>)>>,
    changed: Condvar,
    /// Records stored, in arrival order.
    records: Mutex<Vec<(u64, Record)>>,
    /// The `after` of every snapshot request.
    polls: Mutex<Vec<u64>>,
    /// Refuse everything: drop new connections, close open ones.
    down: AtomicBool,
    stop: AtomicBool,
    /// Close each connection silently after one answer (as a server whose
    /// keep-alive timer fired would), without `Connection: close`.
    one_shot: AtomicBool,
    /// Alter one byte of each snapshot after its MAC was computed (an
    /// attacker on the path).
    tamper: AtomicBool,
}

struct Fake {
    addr: SocketAddr,
    state: Arc<Control>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl Fake {
    fn start(tls: Option<Arc<rustls::ServerConfig>>) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Control::default());
        let st = state.clone();
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(sock) = conn else { continue };
                if st.down.load(Ordering::SeqCst) {
                    drop(sock);
                    continue;
                }
                sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                let st = st.clone();
                let tls = tls.clone();
                std::thread::spawn(move || match tls {
                    Some(cfg) => {
                        let conn = rustls::ServerConnection::new(cfg).unwrap();
                        serve(rustls::StreamOwned::new(conn, sock), &st)
                    }
                    None => serve(sock, &st),
                });
            }
        });
        Fake {
            addr,
            state,
            accept: Some(accept),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set_snapshot(&self, snap: &Snapshot) {
        *self.state.snap.lock().unwrap() = Some((snap.version, serde_json::to_vec(snap).unwrap()));
        self.state.changed.notify_all();
    }

    fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
        self.state.changed.notify_all();
    }

    fn records(&self) -> Vec<(u64, Record)> {
        self.state.records.lock().unwrap().clone()
    }

    fn record_count(&self) -> usize {
        self.state.records.lock().unwrap().len()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        self.state.changed.notify_all();
        let _ = TcpStream::connect(self.addr);
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
    }
}

fn serve(mut s: impl Read + Write, st: &Control) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 16 * 1024];
    loop {
        let parsed = {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let find = |name: &str| {
                        req.headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case(name))
                            .map(|h| String::from_utf8_lossy(h.value).into_owned())
                    };
                    let len: usize = find("content-length").map(|v| v.parse().unwrap()).unwrap_or(0);
                    (buf.len() >= n + len).then(|| {
                        (
                            req.method.unwrap_or("").to_string(),
                            req.path.unwrap_or("").to_string(),
                            find("authorization"),
                            n,
                            len,
                        )
                    })
                }
                Ok(httparse::Status::Partial) => None,
                Err(_) => return,
            }
        };
        if let Some((method, path, auth, n, len)) = parsed {
            let body = buf[n..n + len].to_vec();
            buf.drain(..n + len);
            let Some(resp) = handle(st, &method, &path, auth.as_deref(), &body) else {
                return;
            };
            if s.write_all(&resp).and_then(|()| s.flush()).is_err() || st.one_shot.load(Ordering::SeqCst) {
                return;
            }
            continue;
        }
        if st.stop.load(Ordering::SeqCst) || st.down.load(Ordering::SeqCst) {
            return;
        }
        match s.read(&mut tmp) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

fn response(status: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// A 200 with `body` in two chunks (one with an extension), to exercise the
/// client's chunked reader.
fn chunked(body: &[u8], mac: &str) -> Vec<u8> {
    let (a, b) = body.split_at(body.len() / 2);
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Sluice-Snapshot-Mac: {mac}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    out.extend_from_slice(format!("{:x};x=y\r\n", a.len()).as_bytes());
    out.extend_from_slice(a);
    out.extend_from_slice(format!("\r\n{:X}\r\n", b.len()).as_bytes());
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n0\r\n\r\n");
    out
}

/// Answers one request; `None` closes the connection without an answer.
fn handle(st: &Control, method: &str, path: &str, auth: Option<&str>, body: &[u8]) -> Option<Vec<u8>> {
    if st.down.load(Ordering::SeqCst) {
        return None;
    }
    // Exactly the bearer part: the key secret never reaches control.
    if auth != Some(format!("Bearer {}", bearer()).as_str()) {
        return Some(response("401 Unauthorized", b"{}"));
    }
    if let (Some(after), "GET") = (path.strip_prefix("/v1/snapshot?after="), method) {
        let after: u64 = after.parse().ok()?;
        st.polls.lock().unwrap().push(after);
        let deadline = Instant::now() + HOLD;
        let mut snap = st.snap.lock().unwrap();
        loop {
            if st.down.load(Ordering::SeqCst) || st.stop.load(Ordering::SeqCst) {
                return None;
            }
            if let Some((v, raw)) = &*snap {
                if *v > after {
                    let mac = snapshot_mac(raw);
                    if st.tamper.load(Ordering::SeqCst) {
                        // `"version":N` becomes `"version":N` with one more digit.
                        let mut altered = raw.clone();
                        let at = find(&altered, b"\"version\":").unwrap() + 10;
                        altered.insert(at, b'1');
                        return Some(chunked(&altered, &mac));
                    }
                    return Some(chunked(raw, &mac));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Some(b"HTTP/1.1 204 No Content\r\n\r\n".to_vec());
            }
            snap = st
                .changed
                .wait_timeout(snap, left.min(Duration::from_millis(50)))
                .unwrap()
                .0;
        }
    }
    if method == "POST" && path == "/v1/records" {
        #[derive(Deserialize)]
        struct Item {
            seq: u64,
            record: Record,
        }
        #[derive(Deserialize)]
        struct Batch {
            batch: Vec<Item>,
        }
        let Ok(b) = serde_json::from_slice::<Batch>(body) else {
            return Some(response("400 Bad Request", b"{}"));
        };
        let last = b.batch.last().map_or(0, |i| i.seq);
        let n = b.batch.len();
        st.records
            .lock()
            .unwrap()
            .extend(b.batch.into_iter().map(|i| (i.seq, i.record)));
        return Some(response(
            "200 OK",
            format!(r#"{{"acked_through":{last},"stored":{n}}}"#).as_bytes(),
        ));
    }
    Some(response("404 Not Found", b"{}"))
}

/// Asserts the records carry strictly increasing seqs and the given timestamps, in order.
fn assert_in_order(got: &[(u64, Record)], ts: impl IntoIterator<Item = u64>) {
    let ts: Vec<u64> = ts.into_iter().collect();
    assert_eq!(
        got.iter().map(|(_, r)| r.ts_ms).collect::<Vec<_>>(),
        ts,
        "records out of order or duplicated"
    );
    assert!(
        got.windows(2).all(|w| w[0].0 < w[1].0),
        "seqs not strictly increasing"
    );
}

// ---------------------------------------------------------------------------
// Tests.

#[test]
fn bad_tokens_are_refused() {
    let dir = TempDir::new("token");
    let good_hex = hex(&SECRET);
    let key = hex(&KEY_SECRET);
    let bad = [
        String::new(),
        "nope".into(),
        format!("sdp--{good_hex}-{key}"),
        format!("sdp-Upper-{good_hex}-{key}"),
        format!("sdp-dp-x-{good_hex}-{key}"),
        format!("sdp-{}-{good_hex}-{key}", "a".repeat(33)),
        format!("sdp-{DP_ID}-{}-{key}", &good_hex[..63]),
        format!("sdp-{DP_ID}-{good_hex}00-{key}"),
        format!("sdp-{DP_ID}-{}zz-{key}", &good_hex[..62]),
        format!("xdp-{DP_ID}-{good_hex}-{key}"),
        // The older form, whose secret also derived the sealing key: re-enroll.
        format!("sdp-{DP_ID}-{good_hex}"),
        format!("sdp-{DP_ID}-{good_hex}-{}", &key[..62]),
    ];
    for t in bad {
        let mut cfg = config(&dead_url(), dir.path());
        cfg.token = Zeroizing::new(t.clone());
        let err = Agent::bootstrap(cfg).unwrap_err();
        assert!(matches!(err, AgentError::BadToken), "{t:?} gave {err:?}");
        assert!(t.is_empty() || !err.to_string().contains(&t));
    }
    // The good token with a trailing newline (as read from a file) parses.
    assert!(token::Enrollment::parse(&format!("{}\n", token())).is_some());
    let ok = token::Enrollment::parse(&format!("sdp-{}-{good_hex}-{key}", "a_9".repeat(10))).unwrap();
    assert!(!format!("{ok:?}").contains(&good_hex));
    assert!(!format!("{ok:?}").contains(&key));
}

#[test]
fn bootstrap_from_control_caches_sealed_snapshot() {
    let fake = Fake::start(None);
    fake.set_snapshot(&snapshot(7));
    let dir = TempDir::new("boot");
    let (agent, index) = Agent::bootstrap(config(&fake.url(), dir.path())).unwrap();
    assert_eq!(index.version, 7);
    assert_eq!(open_canary(&index), CANARY);
    let stats = agent.stats();
    assert_eq!(stats.snapshot_version.load(Ordering::Relaxed), 7);
    assert!(stats.control_up.load(Ordering::Relaxed));
    assert_eq!(*fake.state.polls.lock().unwrap(), [0]);

    let cached = std::fs::read(dir.path().join(SNAPSHOT_CACHE_FILE)).unwrap();
    assert_eq!(cached_snapshot(dir.path()).unwrap().version, 7);
    assert!(
        !cached.windows(CANARY.len()).any(|w| w == CANARY),
        "plaintext provider key in the cache"
    );
    assert!(!cached
        .windows(CANARY.len() * 2)
        .any(|w| w == hex(CANARY).as_bytes()));
}

#[test]
fn bootstrap_falls_back_to_cache_then_fails_without_one() {
    let dir = TempDir::new("cache");
    {
        let fake = Fake::start(None);
        fake.set_snapshot(&snapshot(3));
        let (_agent, index) = Agent::bootstrap(config(&fake.url(), dir.path())).unwrap();
        assert_eq!(index.version, 3);
    }
    // Control is gone: the cached snapshot serves, and its key still opens.
    let (agent, index) = Agent::bootstrap(config(&dead_url(), dir.path())).unwrap();
    assert_eq!(index.version, 3);
    assert_eq!(open_canary(&index), CANARY);
    assert!(!agent.stats().control_up.load(Ordering::Relaxed));
    let cached = std::fs::read(dir.path().join(SNAPSHOT_CACHE_FILE)).unwrap();
    assert!(!cached.windows(CANARY.len()).any(|w| w == CANARY));

    // Control refuses the token (another bearer secret): the cache serves too.
    let fake = Fake::start(None);
    fake.set_snapshot(&snapshot(4));
    let mut cfg = config(&fake.url(), dir.path());
    cfg.token = Zeroizing::new(format!("sdp-{DP_ID}-{}-{}", "00".repeat(32), hex(&KEY_SECRET)));
    let (_agent, index) = Agent::bootstrap(cfg).unwrap();
    assert_eq!(index.version, 3);

    // Another key secret (or another id) derives another MAC key: the cache
    // was not made for it and is refused, not served.
    for other in [
        format!("sdp-{DP_ID}-{}-{}", hex(&SECRET), "11".repeat(32)),
        format!("sdp-other-{}-{}", hex(&SECRET), hex(&KEY_SECRET)),
    ] {
        let mut cfg = config(&dead_url(), dir.path());
        cfg.token = Zeroizing::new(other);
        let err = Agent::bootstrap(cfg).unwrap_err();
        assert!(err.to_string().contains("MAC does not match"), "{err}");
    }

    // Neither control nor a cache.
    let empty = TempDir::new("nocache");
    let err = Agent::bootstrap(config(&dead_url(), empty.path())).unwrap_err();
    assert!(matches!(err, AgentError::NoSnapshot(_)), "{err:?}");
}

#[test]
fn new_versions_are_published_and_bad_ones_skipped() {
    let fake = Fake::start(None);
    fake.set_snapshot(&snapshot(1));
    let dir = TempDir::new("publish");
    let (agent, index) = Agent::bootstrap(config(&fake.url(), dir.path())).unwrap();
    let stats = agent.stats();
    let cell = Arc::new(SnapshotCell::new(index));
    let (tx, rx) = channel(1024);
    let handle = agent.spawn(cell.clone(), rx).unwrap();

    fake.set_snapshot(&snapshot(2));
    wait_for("v2 published", || cell.current().version == 2);
    assert_eq!(stats.snapshot_version.load(Ordering::Relaxed), 2);
    assert_eq!(open_canary(&cell.current()), CANARY);
    wait_for("v2 cached", || {
        cached_snapshot(dir.path()).is_some_and(|s| s.version == 2)
    });

    // v3 does not compile: v2 keeps serving, and v3 is not asked for again.
    fake.set_snapshot(&broken_snapshot(3));
    wait_for("a poll after v3", || {
        fake.state.polls.lock().unwrap().contains(&3)
    });
    assert_eq!(cell.current().version, 2);
    assert_eq!(stats.snapshot_version.load(Ordering::Relaxed), 2);
    assert_eq!(cached_snapshot(dir.path()).unwrap().version, 2);

    fake.set_snapshot(&snapshot(4));
    wait_for("v4 published", || cell.current().version == 4);

    drop(tx);
    handle.join().unwrap();
}

#[test]
fn records_ship_in_order_with_increasing_seqs() {
    let fake = Fake::start(None);
    fake.set_snapshot(&snapshot(1));
    let dir = TempDir::new("ship");
    let (agent, index) = Agent::bootstrap(config(&fake.url(), dir.path())).unwrap();
    let stats = agent.stats();
    let (tx, rx) = channel(4096);
    let handle = agent.spawn(Arc::new(SnapshotCell::new(index)), rx).unwrap();
    let sink = WorkerSink::new(tx);
    for i in 0..2500 {
        sink.push(record(i));
    }
    wait_for("2500 records", || fake.record_count() >= 2500);
    assert_in_order(&fake.records(), 0..2500);
    assert_eq!(fake.records()[0].0, 1);
    wait_for("2500 counted", || {
        stats.records_shipped.load(Ordering::Relaxed) == 2500
    });
    assert_eq!(stats.records_spooled.load(Ordering::Relaxed), 0);

    // Shutdown ships what is still queued.
    for i in 2500..2510 {
        sink.push(record(i));
    }
    drop(sink);
    handle.join().unwrap();
    assert_in_order(&fake.records(), 0..2510);
    let reserved: u64 = std::fs::read_to_string(dir.path().join(SEQ_FILE))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(reserved > fake.records().last().unwrap().0);
}

#[test]
fn control_down_spools_then_replays_exactly_once() {
    let fake = Fake::start(None);
    fake.set_snapshot(&snapshot(1));
    let dir = TempDir::new("spool");
    let (agent, index) = Agent::bootstrap(config(&fake.url(), dir.path())).unwrap();
    let stats = agent.stats();
    let (tx, rx) = channel(4096);
    let handle = agent.spawn(Arc::new(SnapshotCell::new(index)), rx).unwrap();
    let sink = WorkerSink::new(tx);

    fake.set_down(true);
    for i in 0..1500 {
        sink.push(record(i));
    }
    wait_for("1500 spooled", || {
        stats.records_spooled.load(Ordering::Relaxed) >= 1500
    });
    let spooled = spool_lines(dir.path());
    assert_in_order(&spooled, 0..1500);
    wait_for("1500 pending", || {
        stats.spool_pending.load(Ordering::Relaxed) == 1500
    });
    assert!(!stats.control_up.load(Ordering::Relaxed));
    assert_eq!(fake.record_count(), 0);

    // While the spool is not empty, new records queue behind it.
    for i in 1500..1600 {
        sink.push(record(i));
    }
    wait_for("1600 spooled", || {
        stats.records_spooled.load(Ordering::Relaxed) >= 1600
    });

    fake.set_down(false);
    wait_for("replay", || fake.record_count() >= 1600);
    wait_for("spool drained", || {
        stats.spool_pending.load(Ordering::Relaxed) == 0
    });
    let got = fake.records();
    assert_in_order(&got, 0..1600);
    assert_eq!(&got[..1500], &spooled[..]);
    wait_for("spool truncated", || {
        std::fs::metadata(dir.path().join(SPOOL_FILE)).unwrap().len() == 0
    });
    assert_eq!(stats.records_shipped.load(Ordering::Relaxed), 1600);

    // Then records go straight to control again.
    for i in 1600..1610 {
        sink.push(record(i));
    }
    wait_for("direct", || fake.record_count() >= 1610);
    assert_in_order(&fake.records(), 0..1610);
    assert_eq!(stats.records_spooled.load(Ordering::Relaxed), 1600);
    drop(sink);
    handle.join().unwrap();
}

#[test]
fn a_backed_up_queue_keeps_draining_without_loss() {
    let fake = Fake::start(None);
    fake.set_snapshot(&snapshot(1));
    let dir = TempDir::new("backlog");
    let (agent, index) = Agent::bootstrap(config(&fake.url(), dir.path())).unwrap();
    let (tx, rx) = channel(64);
    let handle = agent.spawn(Arc::new(SnapshotCell::new(index)), rx).unwrap();
    let sink = WorkerSink::new(tx);
    for i in 0..5000 {
        sink.push(record(i));
    }
    assert_eq!(sink.flush_blocking(Duration::from_secs(60)), 0);
    drop(sink);
    handle.join().unwrap();
    // Whatever was spooled at shutdown is on disk; the rest reached control.
    let mut all = fake.records();
    all.extend(spool_lines(dir.path()));
    assert_in_order(&all, 0..5000);
}

#[test]
fn restart_replays_the_spool_and_continues_above_its_seqs() {
    let fake = Fake::start(None);
    fake.set_snapshot(&snapshot(1));
    let dir = TempDir::new("restart");
    {
        let (agent, index) = Agent::bootstrap(config(&fake.url(), dir.path())).unwrap();
        let (tx, rx) = channel(1024);
        let handle = agent.spawn(Arc::new(SnapshotCell::new(index)), rx).unwrap();
        fake.set_down(true);
        let sink = WorkerSink::new(tx);
        for i in 0..5 {
            sink.push(record(i));
        }
        drop(sink);
        handle.join().unwrap();
    }
    let spooled = spool_lines(dir.path());
    assert_in_order(&spooled, 0..5);
    assert_eq!(fake.record_count(), 0);

    fake.set_down(false);
    let (agent, index) = Agent::bootstrap(config(&fake.url(), dir.path())).unwrap();
    let stats = agent.stats();
    assert_eq!(stats.spool_pending.load(Ordering::Relaxed), 5);
    let (tx, rx) = channel(1024);
    let handle = agent.spawn(Arc::new(SnapshotCell::new(index)), rx).unwrap();
    let sink = WorkerSink::new(tx);
    for i in 5..8 {
        sink.push(record(i));
    }
    wait_for("8 records", || fake.record_count() >= 8);
    let got = fake.records();
    assert_in_order(&got, 0..8);
    assert_eq!(&got[..5], &spooled[..]);
    // Seqs of the first run were reserved in a block the second run skips.
    assert!(got[5].0 > spool::SEQ_BLOCK);
    drop(sink);
    handle.join().unwrap();
    assert_eq!(stats.spool_pending.load(Ordering::Relaxed), 0);
}

#[test]
fn a_keep_alive_connection_closed_by_control_is_retried_fresh() {
    let fake = Fake::start(None);
    fake.set_snapshot(&snapshot(1));
    let dir = TempDir::new("stale");
    let (agent, index) = Agent::bootstrap(config(&fake.url(), dir.path())).unwrap();
    let stats = agent.stats();
    let (tx, rx) = channel(1024);
    let handle = agent.spawn(Arc::new(SnapshotCell::new(index)), rx).unwrap();
    fake.state.one_shot.store(true, Ordering::SeqCst);
    let sink = WorkerSink::new(tx);
    for round in 0..4u64 {
        sink.push(record(round));
        wait_for("a round", || fake.record_count() as u64 > round);
    }
    assert_in_order(&fake.records(), 0..4);
    // Each stale connection was retried at once, not treated as control down.
    assert_eq!(stats.records_spooled.load(Ordering::Relaxed), 0);
    drop(sink);
    handle.join().unwrap();
}

#[test]
fn a_torn_last_spool_line_is_skipped() {
    let dir = TempDir::new("torn");
    let mut raw = Vec::new();
    for seq in 1..=3 {
        raw.extend_from_slice(
            serde_json::to_string(&serde_json::json!({"seq": seq, "record": record(seq * 10)}))
                .unwrap()
                .as_bytes(),
        );
        raw.push(b'\n');
    }
    raw.extend_from_slice(br#"{"seq":4,"record":{"ts_ms":40,"ten"#);
    std::fs::write(dir.path().join(SPOOL_FILE), &raw).unwrap();

    let fake = Fake::start(None);
    fake.set_snapshot(&snapshot(1));
    let (agent, index) = Agent::bootstrap(config(&fake.url(), dir.path())).unwrap();
    let stats = agent.stats();
    assert_eq!(stats.spool_pending.load(Ordering::Relaxed), 3);
    let (tx, rx) = channel(1024);
    let handle = agent.spawn(Arc::new(SnapshotCell::new(index)), rx).unwrap();
    wait_for("3 replayed", || fake.record_count() >= 3);
    wait_for("spool truncated", || {
        std::fs::metadata(dir.path().join(SPOOL_FILE)).unwrap().len() == 0
    });
    let sink = WorkerSink::new(tx);
    sink.push(record(50));
    wait_for("4 records", || fake.record_count() >= 4);
    let got = fake.records();
    assert_in_order(&got, [10, 20, 30, 50]);
    assert_eq!(got.iter().map(|(s, _)| *s).take(3).collect::<Vec<_>>(), [1, 2, 3]);
    drop(sink);
    handle.join().unwrap();
}

#[test]
fn https_control_with_a_private_ca() {
    let certs: Vec<_> = rustls_pemfile::certs(&mut &include_bytes!("testdata/localhost.pem")[..])
        .collect::<Result<_, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut &include_bytes!("testdata/localhost.key")[..])
        .unwrap()
        .unwrap();
    let server =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
    let fake = Fake::start(Some(Arc::new(server)));
    fake.set_snapshot(&snapshot(5));
    let dir = TempDir::new("tls");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, include_bytes!("testdata/ca.pem")).unwrap();

    // Without the CA the server is not trusted, and there is no cache.
    let url = format!("https://localhost:{}", fake.addr.port());
    let err = Agent::bootstrap(config(&url, dir.path())).unwrap_err();
    assert!(matches!(err, AgentError::NoSnapshot(_)), "{err:?}");

    let mut cfg = config(&url, dir.path());
    cfg.ca_file = Some(ca);
    let (agent, index) = Agent::bootstrap(cfg).unwrap();
    assert_eq!(index.version, 5);
    let (tx, rx) = channel(1024);
    let handle = agent.spawn(Arc::new(SnapshotCell::new(index)), rx).unwrap();
    let sink = WorkerSink::new(tx);
    for i in 0..3 {
        sink.push(record(i));
    }
    wait_for("3 records over TLS", || fake.record_count() >= 3);
    assert_in_order(&fake.records(), 0..3);
    drop(sink);
    handle.join().unwrap();
}

#[test]
fn endpoint_parsing() {
    let e = http::Endpoint::parse("https://control.example:8443/sluice/").unwrap();
    assert!(e.tls);
    assert_eq!(
        (e.host.as_str(), e.port, e.base_path.as_str()),
        ("control.example", 8443, "/sluice")
    );
    let e = http::Endpoint::parse("http://[::1]").unwrap();
    assert_eq!(
        (e.host.as_str(), e.port, e.authority.as_str()),
        ("::1", 80, "[::1]")
    );
    for bad in [
        "ftp://x",
        "http://",
        "http://h:99999",
        "http://a b",
        "http://h/?q=1",
    ] {
        assert!(http::Endpoint::parse(bad).is_err(), "{bad}");
    }
}

// ---------------------------------------------------------------------------
// Secure across hosts: authenticated snapshots, plaintext, files.

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn a_tampered_snapshot_is_refused_and_not_cached() {
    let fake = Fake::start(None);
    fake.set_snapshot(&snapshot(5));
    fake.state.tamper.store(true, Ordering::SeqCst);
    let dir = TempDir::new("tamper-boot");
    // At bootstrap: refused, nothing cached, nothing to serve.
    let err = Agent::bootstrap(config(&fake.url(), dir.path())).unwrap_err();
    assert!(err.to_string().contains("MAC is missing or wrong"), "{err}");
    assert!(!dir.path().join(SNAPSHOT_CACHE_FILE).exists());

    // While serving: v6 altered on the way is neither published nor cached.
    fake.state.tamper.store(false, Ordering::SeqCst);
    let (agent, index) = Agent::bootstrap(config(&fake.url(), dir.path())).unwrap();
    assert_eq!(index.version, 5);
    let cell = Arc::new(SnapshotCell::new(index));
    let (tx, rx) = channel(16);
    let handle = agent.spawn(cell.clone(), rx).unwrap();
    fake.state.tamper.store(true, Ordering::SeqCst);
    fake.set_snapshot(&snapshot(6));
    wait_for("a few polls after v6", || {
        fake.state
            .polls
            .lock()
            .unwrap()
            .iter()
            .filter(|&&a| a == 5)
            .count()
            >= 3
    });
    assert_eq!(cell.current().version, 5);
    assert_eq!(cached_snapshot(dir.path()).unwrap().version, 5);
    // Once it arrives whole, it is taken.
    fake.state.tamper.store(false, Ordering::SeqCst);
    wait_for("v6 published", || cell.current().version == 6);
    drop(tx);
    handle.join().unwrap();
}

#[test]
fn a_tampered_cache_is_refused() {
    let dir = TempDir::new("tamper-cache");
    {
        let fake = Fake::start(None);
        fake.set_snapshot(&snapshot(3));
        Agent::bootstrap(config(&fake.url(), dir.path())).unwrap();
    }
    let path = dir.path().join(SNAPSHOT_CACHE_FILE);
    let mut raw = std::fs::read(&path).unwrap();
    let at = find(&raw, b"\"version\":3").unwrap() + 10;
    raw[at] = b'9';
    std::fs::write(&path, &raw).unwrap();
    let err = Agent::bootstrap(config(&dead_url(), dir.path())).unwrap_err();
    assert!(matches!(err, AgentError::NoSnapshot(_)), "{err:?}");
    assert!(err.to_string().contains("MAC does not match"), "{err}");
}

#[test]
fn plain_http_to_another_host_is_refused_before_any_connection() {
    let dir = TempDir::new("plaintext");
    for url in [
        "http://10.255.255.1:7070",
        "http://control.example:7070",
        "http://localhost.example",
    ] {
        let started = Instant::now();
        let err = Agent::bootstrap(config(url, dir.path())).unwrap_err();
        assert!(matches!(err, AgentError::Plaintext(_)), "{url}: {err:?}");
        assert!(err.to_string().contains("--insecure-plaintext"), "{err}");
        // Refused from the text alone: no look-up, no 5 s connect timeout.
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    for url in [
        "http://127.0.0.1:9",
        "http://127.9.0.1",
        "http://localhost:9",
        "http://LOCALHOST.",
        "http://[::1]:9",
    ] {
        let e = Endpoint::parse(url).unwrap();
        assert!(plaintext_check(&e, false).is_ok(), "{url}");
    }
    let remote = Endpoint::parse("http://10.255.255.1:7070").unwrap();
    assert!(plaintext_check(&remote, true).is_ok());
    assert!(plaintext_check(&Endpoint::parse("https://10.255.255.1").unwrap(), false).is_ok());
}

#[test]
fn a_token_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("tokenfile");
    let path = dir.path().join("dp.token");
    std::fs::write(&path, format!("{}\n", token())).unwrap();
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = read_token_file(&path).unwrap_err();
        assert!(err.contains("chmod 600"), "{err}");
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(read_token_file(&path).unwrap().as_str(), token());
}

#[test]
fn the_spool_directory_is_private_from_creation() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("private");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let nested = dir.path().join("a/b/spool");
    private_dir(&nested).unwrap();
    assert_eq!(mode(&nested), 0o700);
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    private_dir(&open).unwrap();
    assert_eq!(mode(&open), 0o700);
    // A shared directory (sticky, like /tmp) is refused, not narrowed.
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    assert!(private_dir(&shared).is_err());
    assert_eq!(
        std::fs::metadata(&shared).unwrap().permissions().mode() & 0o7777,
        0o1777
    );
}
