//! Helpers of the billing tests: snapshots over the sync API, JSON from the
//! CLI, and a webhook receiver.

use crate::support::{http, Serve};
use serde_json::Value;
use sluice_contract::snapshot::types::Snapshot;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc::{channel, Receiver};

/// The current snapshot as data plane `token` gets it.
pub(crate) fn snapshot(serve: &Serve, token: &str) -> Snapshot {
    let r = http(&serve.sync, "GET", "/v1/snapshot", Some(token), None);
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_slice(&r.body).unwrap()
}

/// The current snapshot version, without waiting.
pub(crate) fn version(serve: &Serve, token: &str) -> u64 {
    snapshot(serve, token).version
}

/// The grant of `tenant` in `snap`.
pub(crate) fn granted(snap: &Snapshot, tenant: &str) -> i64 {
    snap.credits
        .iter()
        .find(|c| c.tenant == tenant)
        .unwrap_or_else(|| panic!("no credit for {tenant} in {:?}", snap.credits))
        .granted_micros
}

/// Runs the CLI, insists on success, parses stdout as JSON.
pub(crate) fn json(serve: &Serve, args: &[&str]) -> Value {
    let out = serve.ok(args, None);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// Posts `records` (with seqs from `first_seq`) from data plane `token`.
pub(crate) fn post_records(serve: &Serve, token: &str, first_seq: u64, records: &[Value]) -> Value {
    let batch: Vec<Value> = records
        .iter()
        .enumerate()
        .map(|(i, r)| serde_json::json!({ "seq": first_seq + i as u64, "record": r }))
        .collect();
    let body = serde_json::json!({ "batch": batch }).to_string();
    let r = http(
        &serve.sync,
        "POST",
        "/v1/records",
        Some(token),
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// A record of `tenant` that cost `cost` micro-dollars.
pub(crate) fn costly(ts_ms: u64, tenant: &str, cost: u64) -> Value {
    let mut r = crate::support::record(ts_ms, tenant, "gpt-4o");
    r["cost_micros"] = cost.into();
    r["usage"]["cached_input_tokens"] = 2.into();
    r["usage"]["reasoning_tokens"] = 3.into();
    r
}

/// A webhook receiver on 127.0.0.1: answers `fail_first` requests with 500,
/// then 200; every body (JSON) comes out of the receiver.
pub(crate) fn webhook(fail_first: usize) -> (String, Receiver<(String, Value)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut seen = 0usize;
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let target = line.split(' ').nth(1).unwrap_or("").to_owned();
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some((n, v)) = h.split_once(':') {
                    if n.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            seen += 1;
            let status = if seen <= fail_first {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = conn.write_all(
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes(),
            );
            if seen > fail_first && tx.send((target, serde_json::from_slice(&body).unwrap())).is_err() {
                return;
            }
        }
    });
    (addr, rx)
}
