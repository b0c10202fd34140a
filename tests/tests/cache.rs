//! The response cache end to end: `sluice-control serve`, a data plane in
//! control mode and the mock provider, configured with the CLI. A hit is
//! proven by the mock's request counter (it did not move) and by the
//! completion id (the mock gives every answer a new one): a hit returns
//! the id of the answer that filled the entry.
//!
//! Waits poll under generous deadlines; no assertion is about how long
//! something took.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use sluice_tests::control::{Fleet, OPENAI_MODEL, TENANT};
use sluice_tests::http::{Req, Response};
use sluice_tests::sse;
use sluice_tests::{both_drivers, Driver};

both_drivers!(
    hits_misses_and_directives,
    cross_form_hits,
    off_or_deleted_tenant_empties_its_entries,
    responses_are_compressed_as_the_client_accepts
);

fn sync_dp(f: &Fleet) {
    let v = f.control.snapshot_version(&f.dp_token) as f64;
    f.dp.wait_metric("sluice_snapshot_version", "control's version", |x| x >= v);
}

fn body(prompt: &str, stream: bool) -> Value {
    json!({
        "model": OPENAI_MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "stream": stream,
    })
}

/// Responses the cache stored or declined to store so far.
fn settled(f: &Fleet) -> f64 {
    ["sluice_cache_fills_total", "sluice_cache_skipped_total"]
        .iter()
        .map(|m| f.dp.metric(m).unwrap_or(0.0))
        .sum()
}

/// Sends a chat request; after a miss that may fill, waits until the data
/// plane has stored (or declined) it: the client has the last byte a
/// moment before the entry is in, and the next request may be served by
/// another worker.
fn send(f: &Fleet, key: &str, body: &Value, headers: &[(&str, &str)]) -> Response {
    let mut req = Req::chat(key, body).header("x-mock-tokens", "12");
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let before = settled(f);
    let r = f.dp.request(&req);
    assert_eq!(r.status(), 200, "{}", r.text());
    let stores = !headers
        .iter()
        .any(|(k, v)| *k == "cache-control" && v.contains("no-store"));
    if cache_header(&r) == Some("miss") && stores {
        let deadline = std::time::Instant::now() + sluice_tests::WAIT;
        while settled(f) <= before {
            assert!(
                std::time::Instant::now() < deadline,
                "the miss was never stored nor declined"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    r
}

fn cache_header(r: &Response) -> Option<&str> {
    r.header("x-sluice-cache")
}

fn id_of(r: &Response) -> String {
    if r.header("content-type")
        .is_some_and(|c| c.starts_with("text/event-stream"))
    {
        let events = sse::parse(&r.body);
        return events[0].json().unwrap()["id"].as_str().unwrap().to_owned();
    }
    r.json()["id"].as_str().unwrap().to_owned()
}

fn hits_misses_and_directives(d: Driver) {
    let f = Fleet::start(d);
    // Off by default: no header, every request goes upstream.
    let r = send(&f, &f.key, &body("p0", false), &[]);
    assert_eq!(cache_header(&r), None);
    let before = f.mock.requests();
    send(&f, &f.key, &body("p0", false), &[]);
    assert_eq!(f.mock.requests(), before + 1);

    f.control
        .ok(&["cache", "set", "--tenant", TENANT, "--ttl", "300"], None);
    sync_dp(&f);

    // Miss, then hit: same bytes, same id, upstream untouched.
    let miss = send(&f, &f.key, &body("p1", false), &[]);
    assert_eq!(cache_header(&miss), Some("miss"));
    let n = f.mock.requests();
    let hit = send(&f, &f.key, &body("p1", false), &[("cache-control", "max-age=0")]);
    assert_eq!(cache_header(&hit), Some("hit"));
    assert_eq!(f.mock.requests(), n);
    assert_eq!(hit.body, miss.body);
    // Fields that do not change the answer are not in the key.
    let mut with_user = body("p1", false);
    with_user["user"] = json!("someone");
    with_user["metadata"] = json!({"trace": "x"});
    assert_eq!(cache_header(&send(&f, &f.key, &with_user, &[])), Some("hit"));
    // One that does is.
    let mut hotter = body("p1", false);
    hotter["temperature"] = json!(1.5);
    assert_eq!(cache_header(&send(&f, &f.key, &hotter, &[])), Some("miss"));

    // no-cache: not answered from the cache, but the answer fills it.
    let fresh = send(&f, &f.key, &body("p1", false), &[("cache-control", "no-cache")]);
    assert_eq!(cache_header(&fresh), Some("miss"));
    assert_ne!(id_of(&fresh), id_of(&miss));
    let again = send(&f, &f.key, &body("p1", false), &[]);
    assert_eq!(cache_header(&again), Some("hit"));
    assert_eq!(id_of(&again), id_of(&fresh));

    // no-store: answered, not kept.
    let first = send(&f, &f.key, &body("p2", false), &[("cache-control", "no-store")]);
    assert_eq!(cache_header(&first), Some("miss"));
    let second = send(&f, &f.key, &body("p2", false), &[]);
    assert_eq!(cache_header(&second), Some("miss"));
    assert_ne!(id_of(&first), id_of(&second));
    assert_eq!(
        cache_header(&send(&f, &f.key, &body("p2", false), &[])),
        Some("hit")
    );

    // An upstream error is never stored.
    let err =
        f.dp.request(&Req::chat(&f.key, &body("p-err", false)).header("x-mock-status", "500"));
    assert_eq!(err.status(), 500);
    assert_eq!(
        cache_header(&send(&f, &f.key, &body("p-err", false), &[])),
        Some("miss")
    );

    // Another tenant sending the same request does not get acme's entry.
    let beta = f.add_tenant("beta", None, "kb");
    f.control
        .ok(&["cache", "set", "--tenant", "beta", "--ttl", "300"], None);
    sync_dp(&f);
    let theirs = send(&f, &beta, &body("p1", false), &[]);
    assert_eq!(cache_header(&theirs), Some("miss"));
    assert_ne!(id_of(&theirs), id_of(&fresh));

    // Records: hits say so, reached no upstream, cost nothing and saved
    // the cost of the answer they repeat.
    let logs = f.control.wait_logs(TENANT, 13);
    let hits: Vec<&Value> = logs.iter().filter(|e| e["record"]["cache"] == "hit").collect();
    assert_eq!(hits.len(), 4, "{logs:?}");
    for h in &hits {
        let r = &h["record"];
        assert!(r["tries"].as_array().is_none_or(|t| t.is_empty()), "{r}");
        assert_eq!(r["cost_micros"], 0, "{r}");
        assert!(r["saved_micros"].as_u64().unwrap() > 0, "{r}");
        assert!(r["usage"]["output_tokens"].as_u64().unwrap() > 0, "{r}");
    }
    let usage = f.control.usage(TENANT);
    let row = usage.iter().find(|u| u["model"] == OPENAI_MODEL).unwrap();
    assert_eq!(row["cache_hits"], 4, "{row}");
    assert_eq!(row["cache_lookups"], 11, "{row}");
    assert!(row["saved_micros"].as_u64().unwrap() > 0);
    let table = f.control.ok(&["usage", "--tenant", TENANT], None);
    assert!(table.contains("4/11 (36%)"), "{table}");

    // The rule is listed and audited.
    let show = f.control.ok(&["cache", "show"], None);
    assert!(show.contains("acme") && show.contains("300"), "{show}");
    let audit = f.control.ok(&["audit", "list"], None);
    assert!(audit.contains("cache.set"), "{audit}");
    let metrics = f.dp.metrics();
    assert!(metrics.contains("sluice_cache_hits_total 4"), "{metrics}");
}

fn cross_form_hits(d: Driver) {
    let f = Fleet::start(d);
    f.control.ok(
        &[
            "cache", "set", "--tenant", TENANT, "--ttl", "300", "--replay", "paced",
        ],
        None,
    );
    sync_dp(&f);

    // A streamed fill serves a streamed hit with the same events.
    let miss = send(&f, &f.key, &body("s1", true), &[("x-mock-itl-ms", "5")]);
    assert_eq!(cache_header(&miss), Some("miss"));
    let n = f.mock.requests();
    let hit = send(&f, &f.key, &body("s1", true), &[]);
    assert_eq!(cache_header(&hit), Some("hit"));
    assert_eq!(f.mock.requests(), n);
    let (a, b) = (sse::parse(&miss.body), sse::parse(&hit.body));
    assert_eq!(a, b);
    assert!(sse::openai_done(&b));
    // ... and a non-streamed one, as one message.
    let json_hit = send(&f, &f.key, &body("s1", false), &[]);
    assert_eq!(cache_header(&json_hit), Some("hit"));
    let v = json_hit.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["id"].as_str().unwrap(), id_of(&miss));
    assert_eq!(
        v["choices"][0]["message"]["content"].as_str().unwrap(),
        sse::openai_text(&a)
    );
    assert_eq!(f.mock.requests(), n);

    // A non-streamed fill serves a streamed hit: the same text, [DONE],
    // the usage chunk only when asked for.
    let plain = send(&f, &f.key, &body("s2", false), &[]);
    assert_eq!(cache_header(&plain), Some("miss"));
    let text = plain.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    let streamed = send(&f, &f.key, &body("s2", true), &[]);
    assert_eq!(cache_header(&streamed), Some("hit"));
    let ev = sse::parse(&streamed.body);
    assert_eq!(sse::openai_text(&ev), text);
    assert!(sse::openai_done(&ev));
    assert_eq!(sse::openai_usage(&ev), None);
    let mut asks = body("s2", true);
    asks["stream_options"] = json!({"include_usage": true});
    let with_usage = send(&f, &f.key, &asks, &[]);
    assert_eq!(cache_header(&with_usage), Some("hit"));
    let u = plain.json()["usage"].clone();
    assert_eq!(
        sse::openai_usage(&sse::parse(&with_usage.body)),
        Some((
            u["prompt_tokens"].as_u64().unwrap(),
            u["completion_tokens"].as_u64().unwrap()
        ))
    );
}

fn off_or_deleted_tenant_empties_its_entries(d: Driver) {
    let f = Fleet::start(d);
    let beta = f.add_tenant("beta", None, "kb");
    f.control
        .ok(&["cache", "set", "--tenant", TENANT, "--ttl", "300"], None);
    f.control
        .ok(&["cache", "set", "--tenant", "beta", "--ttl", "300"], None);
    sync_dp(&f);
    for p in ["a", "b", "c"] {
        send(&f, &f.key, &body(p, false), &[]);
        send(&f, &beta, &body(p, true), &[]);
    }
    assert_eq!(
        cache_header(&send(&f, &f.key, &body("a", false), &[])),
        Some("hit")
    );
    f.dp.wait_metric("sluice_cache_entries", "6", |v| v == 6.0);

    // Off for acme: its entries are gone at once, beta's stay.
    f.control.ok(&["cache", "off", "--tenant", TENANT], None);
    sync_dp(&f);
    assert_eq!(f.dp.metric("sluice_cache_entries"), Some(3.0));
    assert_eq!(cache_header(&send(&f, &f.key, &body("a", false), &[])), None);
    // Turned on again: nothing from before comes back.
    f.control
        .ok(&["cache", "set", "--tenant", TENANT, "--ttl", "300"], None);
    sync_dp(&f);
    assert_eq!(
        cache_header(&send(&f, &f.key, &body("a", false), &[])),
        Some("miss")
    );
    assert_eq!(cache_header(&send(&f, &beta, &body("a", true), &[])), Some("hit"));

    // beta deleted: its entries are gone.
    f.control.ok(&["tenant", "delete", "beta"], None);
    sync_dp(&f);
    assert_eq!(f.dp.metric("sluice_cache_entries"), Some(1.0));
    assert!(f
        .control
        .ok(&["cache", "show"], None)
        .lines()
        .all(|l| !l.starts_with("beta")));
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b).read_to_end(&mut out).unwrap();
    out
}

fn responses_are_compressed_as_the_client_accepts(d: Driver) {
    let f = Fleet::start(d);
    f.control
        .ok(&["cache", "set", "--tenant", TENANT, "--ttl", "300"], None);
    sync_dp(&f);
    let gz = [("accept-encoding", "br;q=0.5, gzip")];
    // A relayed (miss) answer, compressed.
    let miss = send(&f, &f.key, &body("z1", false), &gz);
    assert_eq!(miss.header("content-encoding"), Some("gzip"));
    assert_eq!(miss.header("vary"), Some("accept-encoding"));
    let plain: Value = serde_json::from_slice(&gunzip(&miss.body)).unwrap();
    assert_eq!(plain["object"], "chat.completion");
    // The hit, compressed too, the same answer.
    let hit = send(&f, &f.key, &body("z1", false), &gz);
    assert_eq!(cache_header(&hit), Some("hit"));
    assert_eq!(hit.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&hit.body), gunzip(&miss.body));
    // A client that accepts nothing gets the plain bytes; a stream stays plain.
    let ident = send(&f, &f.key, &body("z1", false), &[]);
    assert_eq!(ident.header("content-encoding"), None);
    assert_eq!(ident.json(), plain);
    let stream = send(&f, &f.key, &body("z2", true), &gz);
    assert_eq!(stream.header("content-encoding"), None);
    assert!(sse::openai_done(&sse::parse(&stream.body)));
    // Records carry both sizes; usage shows the ratio.
    let logs = f.control.wait_logs(TENANT, 4);
    let compressed: Vec<&Value> = logs
        .iter()
        .filter(|e| e["record"]["body_sent_bytes"].is_u64())
        .collect();
    assert_eq!(compressed.len(), 2, "{logs:?}");
    for e in compressed {
        let r = &e["record"];
        assert!(
            r["body_sent_bytes"].as_u64().unwrap() < r["body_plain_bytes"].as_u64().unwrap(),
            "{r}"
        );
    }
    let table = f.control.ok(&["usage", "--tenant", TENANT], None);
    assert!(
        table.lines().any(|l| l.contains(OPENAI_MODEL)
            && l.split_whitespace()
                .any(|w| w.strip_suffix('x').is_some_and(|r| r.parse::<f64>().is_ok()))),
        "{table}"
    );
}
