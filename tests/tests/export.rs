//! Records exported to a real NATS JetStream (`nats-server -js`), exactly
//! once: NATS killed and restarted mid-load, control killed and restarted
//! too; every record arrives once (ids and count), in seq order per data
//! plane, with no sealed content, and the stalled-sink alert fires while
//! NATS is away. The stream's duplicate window is 1 s here, so a replay
//! after a control restart is caught by the publisher's own tail check.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use sluice_tests::control::{chat_req, Fleet, TENANT};
use sluice_tests::gateway::sample;
use sluice_tests::http::{self, Req};
use sluice_tests::nats::{read_stream, wait_messages, NatsServer};
use sluice_tests::{Driver, WAIT};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const STREAM: &str = "SLUICE";

/// Sends requests until `stop`, counting them (each makes one record).
fn load(
    addr: SocketAddr,
    key: String,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut i = 0u32;
        while !stop.load(Ordering::Relaxed) {
            let r = http::request(addr, &chat_req(&key, i.is_multiple_of(2), 3));
            assert_eq!(r.status(), 200, "{}", r.text());
            sent.fetch_add(1, Ordering::Relaxed);
            i += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
    })
}

fn control_metrics(f: &Fleet) -> String {
    http::request(f.control.admin, &Req::get("/metrics")).text()
}

/// Waits until `sent` grew by `n` since now.
fn more(sent: &AtomicU64, n: u64) {
    let from = sent.load(Ordering::Relaxed);
    let deadline = Instant::now() + WAIT;
    while sent.load(Ordering::Relaxed) < from + n {
        assert!(Instant::now() < deadline, "the load stalled");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_record_reaches_jetstream_once_in_order_across_nats_and_control_restarts() {
    let mut f = Fleet::start(Driver::Uring);
    let mut nats = NatsServer::start(f.dir());
    let url = nats.url();
    // Opted-in content: records carry it sealed; no sink may ever get it.
    f.control
        .ok(&["tenant", "update", TENANT, "--log-content", "on"], None);
    let out = f.control.ok(
        &[
            "sink",
            "add",
            "nats",
            "--url",
            &url,
            "--stream",
            STREAM,
            "--subject",
            "sluice.records.<tenant>",
            "--stall-alert-secs",
            "2",
            "--duplicate-window-secs",
            "1",
        ],
        None,
    );
    assert!(out.contains("added sink nats"), "{out}");
    // Bad input is refused with a message, and nothing is stored.
    let bad = f.control.fails(
        &[
            "sink",
            "add",
            "nats",
            "--name",
            "bad",
            "--url",
            "nats://u:p@127.0.0.1:1",
        ],
        None,
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no credentials in --url"));

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let client = load(f.dp.addr, f.key.clone(), stop.clone(), sent.clone());

    // Export flows.
    wait_messages(&url, STREAM, 10, WAIT);
    // NATS dies mid-load; records keep landing in control.
    nats.kill();
    more(&sent, 40);
    // A sink away longer than its limit (2 s here) raises an alert.
    let deadline = Instant::now() + WAIT;
    loop {
        let alerts = f.control.json(&["alerts"]);
        let stalled = alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["type"] == "sink_stalled" && a["sink"] == "nats");
        if stalled {
            break;
        }
        assert!(Instant::now() < deadline, "no sink_stalled alert: {alerts}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let m = control_metrics(&f);
    assert_eq!(
        sample(&m, "sluice_control_sink_up{sink=\"nats\"}"),
        Some(0.0),
        "{m}"
    );
    assert!(
        sample(
            &m,
            "sluice_control_sink_errors_total{sink=\"nats\",kind=\"connect\"}"
        )
        .unwrap_or(0.0)
            >= 1.0
            || sample(
                &m,
                "sluice_control_sink_errors_total{sink=\"nats\",kind=\"publish\"}"
            )
            .unwrap_or(0.0)
                >= 1.0,
        "{m}"
    );
    assert!(
        sample(&m, "sluice_control_sink_pending_records{sink=\"nats\"}").unwrap_or(0.0) >= 1.0,
        "{m}"
    );

    // Control is killed too (records spool at the data plane meanwhile), and
    // comes back while NATS is still away.
    f.control.kill();
    more(&sent, 20);
    f.control.restart();
    more(&sent, 150);
    // NATS comes back; while the backlog drains, control is killed again:
    // records acknowledged by JetStream but not yet past the cursor are
    // published again after the restart, later than the (1 s) duplicate
    // window, so only the publisher's tail check keeps them from arriving twice.
    nats.restart();
    let before = read_stream(&url, STREAM).len();
    let deadline = Instant::now() + WAIT;
    while read_stream(&url, STREAM).len() < before + 20 {
        assert!(Instant::now() < deadline, "export did not resume");
        std::thread::sleep(Duration::from_millis(10));
    }
    f.control.kill();
    std::thread::sleep(Duration::from_millis(1500));
    f.control.restart();
    more(&sent, 40);
    // Once more, NATS killed while the backlog drains.
    nats.kill();
    more(&sent, 20);
    nats.restart();
    more(&sent, 20);
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();

    let n = sent.load(Ordering::Relaxed) as usize;
    let logs = f.expect_records_exactly(n);
    assert!(
        logs.iter().any(|e| e["record"]["content_sealed"].is_string()),
        "no record carries sealed content: the no-content check below would prove nothing"
    );
    let msgs = wait_messages(&url, STREAM, n, Duration::from_secs(120));
    // Exactly once: the same (data plane, seq) set, each once.
    let stored: BTreeSet<String> = logs
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["dataplane"].as_str().unwrap(),
                e["seq"].as_u64().unwrap()
            )
        })
        .collect();
    let ids: Vec<String> = msgs
        .iter()
        .map(|m| {
            m.msg_id
                .clone()
                .unwrap_or_else(|| panic!("no Nats-Msg-Id: {m:?}"))
        })
        .collect();
    let unique: BTreeSet<String> = ids.iter().cloned().collect();
    let twice: Vec<&String> = ids
        .iter()
        .filter(|id| ids.iter().filter(|j| j == id).count() > 1)
        .collect();
    assert!(twice.is_empty(), "records arrived twice: {twice:?}");
    let extra: Vec<&Value> = msgs
        .iter()
        .filter(|m| !stored.contains(m.msg_id.as_deref().unwrap_or_default()))
        .map(|m| &m.body["msg_id"])
        .take(5)
        .collect();
    let missing: Vec<&String> = stored.difference(&unique).take(20).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "not in control: {extra:?}\nnot in the stream: {missing:?}\nids: {:?}",
        &ids[..ids.len().min(5)]
    );
    assert_eq!(
        msgs.len(),
        n,
        "the stream holds {} messages for {n} records",
        msgs.len()
    );
    // In seq order per data plane, and each message says what it is.
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for m in &msgs {
        let b = &m.body;
        assert_eq!(b["v"], 1, "{b}");
        let dp = b["dataplane"].as_str().unwrap().to_owned();
        let seq = b["seq"].as_u64().unwrap();
        assert_eq!(m.msg_id.as_deref(), Some(format!("{dp}:{seq}").as_str()));
        assert_eq!(b["msg_id"], Value::from(format!("{dp}:{seq}")));
        assert_eq!(b["tenant"], TENANT);
        assert_eq!(m.subject, format!("sluice.records.{TENANT}"));
        assert!(
            b.get("content_sealed").is_none(),
            "sealed content went to the sink: {b}"
        );
        assert!(b["ts_ms"].as_u64().is_some() && b["status"] == 200, "{b}");
        if let Some(prev) = last.insert(dp.clone(), seq) {
            assert!(
                seq > prev,
                "{dp}: seq {seq} after {prev} (stream seq {})",
                m.stream_seq
            );
        }
    }
    // Caught up: nothing pending, and the sink is up.
    let deadline = Instant::now() + WAIT;
    loop {
        let m = control_metrics(&f);
        if sample(&m, "sluice_control_sink_pending_records{sink=\"nats\"}") == Some(0.0)
            && sample(&m, "sluice_control_sink_up{sink=\"nats\"}") == Some(1.0)
        {
            break;
        }
        assert!(Instant::now() < deadline, "{m}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let list = f.control.json(&["sink", "list"]);
    assert_eq!(list[0]["name"], "nats", "{list}");
    assert_eq!(list[0]["status"]["connected"], true, "{list}");

    // Removing the sink stops publishing; the stream keeps what it has.
    f.control.ok(&["sink", "remove", "nats"], None);
    std::thread::sleep(Duration::from_secs(1));
    let r = f.chat(false, 3);
    assert_eq!(r.status(), 200);
    f.expect_records_exactly(n + 1);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(read_stream(&url, STREAM).len(), n);
}
