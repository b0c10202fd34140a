//! The control plane and a data plane together, as real processes: the CLI
//! configures `serve`, the data plane syncs from it and ships its records
//! back; then either side is killed and restarted, and every record must
//! arrive exactly once, secrets must stay sealed, revocations must reach the
//! gateway, and bad admin input must change nothing.
//!
//! Every test with a data plane runs on both drivers. Waits poll under
//! generous deadlines; no assertion is about how long something took.

// Test code: a failed unwrap is a failed test. (clippy.toml's test allowances
// cover #[test] functions only, not the per-case functions they call.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use sluice_tests::control::{
    canary, chat_req, configure, enroll, parse_key, Control, Dataplane, Fleet, ANTHROPIC_MODEL, DATAPLANE_ID,
    KEY_ID, OPENAI_MODEL, TENANT,
};
use sluice_tests::http::{self, Req};
use sluice_tests::stack::anthropic_body;
use sluice_tests::tmp::TempDir;
use sluice_tests::{both_drivers, sse, vocab, Driver};
use std::time::{Duration, Instant};

both_drivers!(
    cli_to_gateway_end_to_end,
    serve_killed_while_streaming,
    dataplane_killed_with_spooled_records,
    dataplane_killed_while_control_stalls,
    dataplane_starts_from_cached_snapshot,
    secrets_never_written_in_plaintext,
    revoked_key_stops_working,
);

/// How long a revocation may take to reach the gateway. Control answers a
/// held long poll as soon as the change commits, so this is one snapshot
/// round trip plus a loaded machine's scheduling; it stays well below the
/// 25 s a poll is held, so a revocation that only arrived with the next
/// poll cycle would fail.
const REVOKE_DEADLINE: Duration = Duration::from_secs(15);

/// A streamed response that completed whole with the mock's `n` tokens.
#[track_caller]
fn assert_full_stream(r: &http::Response, n: usize) {
    assert_eq!(r.status(), 200, "{}", r.text());
    assert!(r.complete, "stream cut short: {}", r.text());
    let events = sse::parse(&r.body);
    assert_eq!(sse::openai_text(&events), vocab::text(n));
    assert!(sse::openai_done(&events), "no [DONE]: {}", r.text());
}

/// A non-streamed chat completion with the mock's `n` tokens.
#[track_caller]
fn assert_full_json(r: &http::Response, n: usize) {
    assert_eq!(r.status(), 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["choices"][0]["message"]["content"], vocab::text(n), "{v}");
}

/// The records of `logs` whose record matches `pred`.
fn count(logs: &[Value], pred: impl Fn(&Value) -> bool) -> usize {
    logs.iter().filter(|e| pred(&e["record"])).count()
}

fn output_tokens(r: &Value) -> u64 {
    r["usage"]["output_tokens"].as_u64().unwrap_or(u64::MAX)
}

// ---- 1. the CLI, serve, the data plane and the mock, end to end -----------

fn cli_to_gateway_end_to_end(d: Driver) {
    let f = Fleet::start(d);
    let c = &f.control;

    // The CLI lists what it made, and never a secret.
    let tenants = c.json(&["tenant", "list"]);
    assert_eq!(tenants[0]["id"], TENANT, "{tenants}");
    let routes = c.json(&["route", "list", "--tenant", TENANT]);
    assert_eq!(routes.as_array().map(Vec::len), Some(2), "{routes}");
    let keys = c.ok(&["provider-key", "list", "--tenant", TENANT, "--json"], None);
    assert!(keys.contains("\"pk\""), "{keys}");
    assert!(
        !keys.contains(&f.provider_key),
        "provider-key list shows the secret: {keys}"
    );
    let apikeys = c.ok(&["apikey", "list", "--tenant", TENANT, "--json"], None);
    assert!(!apikeys.contains(&f.key), "apikey list shows the key: {apikeys}");

    // The data plane reports how it sees its targets; the CLI shows it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let report = loop {
        let health = c.json(&["dataplane", "health"]);
        let found = health
            .as_array()
            .and_then(|a| a.iter().find(|r| r["dataplane"] == DATAPLANE_ID).cloned());
        if let Some(r) = found {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "no health report from the data plane: {health}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let targets = report["targets"].as_array().unwrap();
    let mock = targets
        .iter()
        .find(|t| t["upstream"] == "mock" && t["key"] == "pk")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(mock["state"], "healthy", "{report}");
    assert_eq!(mock["tenant"], TENANT, "{report}");
    let table = c.ok(&["dataplane", "health"], None);
    assert!(
        table.contains("healthy") && table.contains(DATAPLANE_ID),
        "{table}"
    );

    // A streamed and a non-streamed request, and an Anthropic stream. The
    // mock requires the provider key, so a 200 also proves the data plane
    // opened the sealed key it was sent.
    assert_full_stream(&f.chat(true, 17), 17);
    assert_full_json(&f.chat(false, 9), 9);
    let r = f
        .dp
        .request(&Req::messages(&f.key, &anthropic_body(ANTHROPIC_MODEL, true)).header("x-mock-tokens", "5"));
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(sse::anthropic_text(&sse::parse(&r.body)), vocab::text(5));

    // Their records, read back with the CLI.
    let logs = f.expect_records_exactly(3);
    for e in &logs {
        let r = &e["record"];
        assert_eq!(e["dataplane"], DATAPLANE_ID, "{e}");
        assert_eq!(r["tenant"], TENANT, "{e}");
        assert_eq!(r["key_id"], KEY_ID, "{e}");
        assert_eq!(
            (r["status"].as_u64(), r["outcome"].as_str()),
            (Some(200), Some("ok")),
            "{e}"
        );
    }
    let chat = |stream: bool, n: u64| {
        move |r: &Value| {
            r["route"] == "chat_completions"
                && r["model"] == OPENAI_MODEL
                && r["stream"] == stream
                && output_tokens(r) == n
        }
    };
    assert_eq!(count(&logs, chat(true, 17)), 1, "the stream's record: {logs:?}");
    assert_eq!(
        count(&logs, chat(false, 9)),
        1,
        "the non-streamed record: {logs:?}"
    );
    assert_eq!(
        count(&logs, |r| r["route"] == "messages"
            && r["model"] == ANTHROPIC_MODEL
            && output_tokens(r) == 5),
        1,
        "the Anthropic record: {logs:?}"
    );

    // Usage counts them, by model.
    let usage = c.usage(TENANT);
    let sum = |field: &str| usage.iter().map(|u| u[field].as_u64().unwrap()).sum::<u64>();
    assert_eq!(sum("requests"), 3, "{usage:?}");
    assert_eq!(sum("output_tokens"), 17 + 9 + 5, "{usage:?}");
    let gpt = usage
        .iter()
        .find(|u| u["model"] == OPENAI_MODEL)
        .expect("a usage row for gpt-4o-mini");
    assert_eq!(gpt["requests"], 2, "{usage:?}");

    // The fleet view: the data plane, its records and its snapshot.
    let list = c.json(&["dataplane", "list"]);
    let edge = list
        .as_array()
        .and_then(|l| l.iter().find(|d| d["id"] == DATAPLANE_ID))
        .unwrap_or_else(|| panic!("edge1 not listed: {list}"));
    assert_eq!(edge["records"], 3, "{edge}");
    assert_eq!(
        edge["snapshot_version"].as_f64(),
        f.dp.metric("sluice_snapshot_version"),
        "{edge}"
    );
}

// ---- 2. serve killed while long streams run -------------------------------

fn serve_killed_while_streaming(d: Driver) {
    let mut f = Fleet::start(d);
    assert_full_json(&f.chat(false, 3), 3);
    f.control.wait_logs(TENANT, 1);
    let version = f.dp.metric("sluice_snapshot_version").unwrap();

    // Three streams of 20 tokens, 200 ms apart: 4 s each, in flight when
    // control dies.
    let streams: Vec<_> = (0..3)
        .map(|_| {
            let mut conn = f.dp.connect();
            conn.send_req(&chat_req(&f.key, true, 20).header("x-mock-itl-ms", "200"));
            let head = conn.read_head();
            assert_eq!(head.status, 200);
            (conn, head)
        })
        .collect();
    f.control.kill();

    for (mut conn, head) in streams {
        let (body, complete, _) = conn.read_body(&head, false);
        assert!(complete, "a stream was cut when control died");
        let events = sse::parse(&body);
        assert_eq!(sse::openai_text(&events), vocab::text(20));
        assert!(sse::openai_done(&events));
    }
    // New requests are served on the last snapshot.
    for _ in 0..3 {
        assert_full_json(&f.chat(false, 4), 4);
    }
    assert_full_stream(&f.chat(true, 6), 6);
    let made = 1 + 3 + 3 + 1;

    // Their records wait on disk.
    f.dp.wait_metric("sluice_records_spooled_total", "> 0", |v| v > 0.0);
    let spool = f.spool_dir().join("spool.jsonl");
    let len = std::fs::metadata(&spool).map_or(0, |m| m.len());
    assert!(len > 0, "records spooled, yet {} is empty", spool.display());
    f.dp.wait_metric("sluice_control_up", "0", |v| v == 0.0);
    assert_eq!(f.dp.metric("sluice_snapshot_version"), Some(version));
    f.dp.assert_alive();

    // serve again, on the same data and sync port: each record once.
    f.control.restart();
    let logs = f.expect_records_exactly(made);
    assert_eq!(
        count(&logs, |r| r["stream"] == true
            && output_tokens(r) == 20
            && r["outcome"] == "ok"),
        3,
        "the long streams' records: {logs:?}"
    );
    f.dp.wait_metric("sluice_control_up", "1", |v| v == 1.0);
    // And new records go straight through again.
    assert_full_json(&f.chat(false, 2), 2);
    f.expect_records_exactly(made + 1);
}

// ---- 3. the data plane killed while records wait in its spool -------------

fn dataplane_killed_with_spooled_records(d: Driver) {
    let mut f = Fleet::start(d);
    for _ in 0..2 {
        assert_full_json(&f.chat(false, 2), 2);
    }
    f.control.wait_logs(TENANT, 2);
    f.control.stop();

    // Five records that cannot ship: spooled, fsynced.
    for i in 0..5 {
        let r = f.chat(i % 2 == 0, 3);
        assert_eq!(r.status(), 200, "{}", r.text());
    }
    f.dp.wait_metric("sluice_spool_pending", ">= 5", |v| v >= 5.0);
    f.dp.kill();
    let spool = std::fs::read_to_string(f.spool_dir().join("spool.jsonl")).unwrap();
    assert_eq!(spool.lines().count(), 5, "spool after kill -9:\n{spool}");
    assert!(spool.ends_with('\n'), "torn spool line:\n{spool}");

    // Back up with control still down: the spool is found, new records queue
    // behind it.
    f.restart_dataplane();
    assert_eq!(f.dp.metric("sluice_spool_pending"), Some(5.0));
    for _ in 0..2 {
        assert_full_json(&f.chat(false, 2), 2);
    }
    f.dp.wait_metric("sluice_records_spooled_total", ">= 2", |v| v >= 2.0);

    f.control.restart();
    let logs = f.expect_records_exactly(2 + 5 + 2);
    assert_eq!(count(&logs, |r| output_tokens(r) == 3), 5, "{logs:?}");
}

/// Sends signal `sig` to control (`STOP` freezes it: its listener still
/// accepts connections, and nothing answers).
fn signal_control(c: &Control, sig: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(c.proc.pid().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{sig} control: {status}");
}

/// Write-ahead records: with control frozen mid-exchange, the batch being
/// offered to it is already fsynced in the spool (and nothing has failed
/// over to the spool yet), so a kill -9 of the data plane then loses none.
fn dataplane_killed_while_control_stalls(d: Driver) {
    let mut f = Fleet::start(d);
    assert_full_json(&f.chat(false, 2), 2);
    f.control.wait_logs(TENANT, 1);
    signal_control(&f.control, "STOP");
    for _ in 0..3 {
        assert_full_json(&f.chat(false, 3), 3);
    }
    let spool = f.spool_dir().join("spool.jsonl");
    let deadline = Instant::now() + sluice_tests::WAIT;
    let lines = loop {
        let n = std::fs::read_to_string(&spool).map_or(0, |t| t.lines().count());
        if n >= 3 || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(lines, 3, "the batch in flight is not in the spool");
    assert_eq!(
        f.dp.metric("sluice_records_spooled_total"),
        Some(0.0),
        "spooled by a failed exchange, not ahead of it"
    );
    f.dp.kill();
    signal_control(&f.control, "CONT");
    f.restart_dataplane();
    let logs = f.expect_records_exactly(1 + 3);
    assert_eq!(count(&logs, |r| output_tokens(r) == 3), 3, "{logs:?}");
}

// ---- 4. the data plane starts on its cached snapshot -----------------------

/// A new spool directory (0700) holding only `from`'s snapshot cache.
fn private_spool_copy(from: &std::path::Path, to: &std::path::Path) {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(to).unwrap();
    std::fs::copy(from.join("snapshot.cache"), to.join("snapshot.cache")).unwrap();
}

fn dataplane_starts_from_cached_snapshot(d: Driver) {
    let mut f = Fleet::start(d);
    assert_full_json(&f.chat(false, 2), 2);
    f.control.wait_logs(TENANT, 1);
    let version = f.dp.metric("sluice_snapshot_version").unwrap();
    let cache = f.spool_dir().join("snapshot.cache");
    // A MAC line, then the snapshot as control sent it.
    let raw = std::fs::read(&cache).unwrap();
    let nl = raw.iter().position(|&b| b == b'\n').unwrap();
    let cached: Value = serde_json::from_slice(&raw[nl + 1..]).unwrap();
    assert_eq!(cached["version"].as_f64(), Some(version), "{}", cache.display());

    f.dp.kill();
    f.control.kill();

    // Without a cache there is nothing to serve: it refuses to start.
    let mut bare = f.dataplane_opts().clone();
    bare.spool_dir = f.dir().join("empty-spool");
    let (status, stderr) = Dataplane::run_to_exit(d, &bare);
    assert_eq!(status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("no snapshot to serve"), "{stderr}");

    // A token file that others may read is refused (exit 64, and says why).
    let mut open = f.dataplane_opts().clone();
    open.token_file = f.dir().join("open.token");
    std::fs::copy(&f.dataplane_opts().token_file, &open.token_file).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&open.token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let (status, stderr) = Dataplane::run_to_exit(d, &open);
    assert_eq!(status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");

    // Plain http:// to a host that is not this machine is refused before
    // any connection, unless asked for (a TEST-NET address: nothing answers).
    let mut remote = f.dataplane_opts().clone();
    remote.control_url = "http://192.0.2.1:7070".into();
    let (status, stderr) = Dataplane::run_to_exit(d, &remote);
    assert_eq!(status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("refusing plain http://") && stderr.contains("--insecure-plaintext"),
        "{stderr}"
    );

    // With a maximum snapshot age: a cached snapshot older than it is not
    // trusted for any tenant (503 in the caller's shape); one within it serves.
    let strict_spool = f.dir().join("strict-spool");
    private_spool_copy(f.spool_dir(), &strict_spool);
    std::thread::sleep(Duration::from_millis(1100));
    let mut strict = f.dataplane_opts().clone();
    strict.spool_dir = strict_spool.clone();
    strict.extra_args = vec!["--max-snapshot-age-secs".into(), "1".into()];
    let mut dp = Dataplane::start(d, &strict);
    let err = dp.request(&chat_req(&f.key, false, 2)).assert_openai_error(503);
    assert!(err.to_string().contains("cannot confirm"), "{err}");
    dp.kill();
    strict.extra_args = vec!["--max-snapshot-age-secs".into(), "3600".into()];
    let mut dp = Dataplane::start(d, &strict);
    assert_full_json(&dp.request(&chat_req(&f.key, false, 2)), 2);
    dp.kill();

    // With it, it serves.
    f.restart_dataplane();
    let log = String::from_utf8_lossy(&f.dp.proc.stderr()).into_owned();
    assert!(log.contains("serving the cached snapshot"), "{log}");
    assert_eq!(f.dp.metric("sluice_snapshot_version"), Some(version));
    assert_eq!(f.dp.metric("sluice_control_up"), Some(0.0));
    assert_full_stream(&f.chat(true, 5), 5);
    assert_full_json(&f.chat(false, 3), 3);
    f.dp.wait_metric("sluice_spool_pending", ">= 2", |v| v >= 2.0);

    // Control back: the records made meanwhile arrive.
    f.control.restart();
    f.expect_records_exactly(3);
    f.dp.wait_metric("sluice_control_up", "1", |v| v == 1.0);
}

// ---- 5. canaries: no plaintext secret on disk or in a log -----------------

fn secrets_never_written_in_plaintext(d: Driver) {
    let mut f = Fleet::start_with(d, "debug");
    // Traffic of every kind, so every path that could log gets exercised.
    assert_full_stream(&f.chat(true, 4), 4);
    assert_full_json(&f.chat(false, 4), 4);
    let r = f.dp.request(
        &Req::messages(&f.key, &anthropic_body(ANTHROPIC_MODEL, false)).header("x-mock-tokens", "3"),
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    // A key that is not in the snapshot, with the shape of a real one.
    let wrong = canary("sk-sluice-k1-");
    f.dp.request(&chat_req(&wrong, false, 2)).assert_openai_error(401);
    f.control.wait_logs(TENANT, 3);
    // A provider key rotation through the CLI, to the same secret.
    f.control.ok(
        &["provider-key", "rotate", "--tenant", TENANT, "pk"],
        Some(&f.provider_key),
    );
    // Records spooled while control is gone.
    f.control.kill();
    assert_full_json(&f.chat(false, 2), 2);
    f.dp.wait_metric("sluice_spool_pending", ">= 1", |v| v >= 1.0);

    let secret = f.key.rsplit('-').next().unwrap().to_owned();
    assert!(
        secret.len() >= 32,
        "gateway key secret too short to test: {}",
        f.key
    );
    let canaries = [
        ("the provider key", f.provider_key.clone()),
        ("the gateway key", f.key.clone()),
        ("the gateway key's secret", secret),
        ("a refused gateway key", wrong),
    ];
    f.assert_no_plaintext(&canaries, "with records spooled", true);

    // Replayed into the store: still nothing.
    f.control.restart();
    f.expect_records_exactly(4);
    f.assert_no_plaintext(&canaries, "after the replay", false);
}

// ---- 6. a revoked key stops working within a snapshot round trip ----------

fn revoked_key_stops_working(d: Driver) {
    let f = Fleet::start(d);
    let c = &f.control;
    let other = parse_key(
        &c.ok(&["apikey", "create", "--tenant", TENANT, "--id", "k2"], None),
        "sk-sluice-",
    );
    let deadline = Instant::now() + sluice_tests::WAIT;
    while f.dp.request(&chat_req(&other, false, 1)).status() != 200 {
        assert!(Instant::now() < deadline, "the second key never worked");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_full_json(&f.chat(false, 2), 2);
    let before = f.dp.metric("sluice_snapshot_version").unwrap();

    let out = c.ok(&["apikey", "revoke", "--tenant", TENANT, KEY_ID], None);
    assert!(out.contains("revoked"), "{out}");
    let start = Instant::now();
    let last = loop {
        let r = f.chat(false, 2);
        if r.status() != 200 {
            break r;
        }
        assert!(
            start.elapsed() < REVOKE_DEADLINE,
            "the revoked key still works after {REVOKE_DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    last.assert_openai_error(401);
    let after = f.dp.metric("sluice_snapshot_version").unwrap();
    assert!(after > before, "snapshot version {before} -> {after}");
    // Anthropic callers get 401 too, in their shape; the other key still works.
    f.dp.request(&Req::messages(&f.key, &anthropic_body(ANTHROPIC_MODEL, false)))
        .assert_anthropic_error(401);
    assert_full_json(&f.dp.request(&chat_req(&other, false, 3)), 3);
    let keys = c.json(&["apikey", "list", "--tenant", TENANT]);
    let k1 = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == KEY_ID)
        .unwrap();
    assert!(k1["revoked_ms"].is_u64(), "{keys}");
}

// ---- 7. bad admin input changes nothing ------------------------------------

/// Runs the CLI expecting a refusal: non-zero exit, nothing on stdout, one
/// line on stderr that contains `expect`.
#[track_caller]
fn refused(c: &Control, args: &[&str], expect: &str) {
    let out = c.fails(args, None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(stdout.trim().is_empty(), "{args:?} printed on stdout: {stdout}");
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "{args:?}: not one line:\n{stderr}"
    );
    assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    assert!(
        stderr.contains(expect),
        "{args:?}: expected {expect:?} in {stderr}"
    );
}

/// Everything the CLI lists.
fn state(c: &Control) -> Vec<Value> {
    vec![
        c.json(&["tenant", "list"]),
        c.json(&["upstream", "list"]),
        c.json(&["route", "list", "--tenant", TENANT]),
        c.json(&["apikey", "list", "--tenant", TENANT]),
        c.json(&["provider-key", "list", "--tenant", TENANT]),
    ]
}

#[test]
fn bad_admin_input_changes_nothing() {
    let dir = TempDir::new("refusals");
    let c = Control::start(&dir.join("control"), dir.path(), "info");
    configure(&c, "http://127.0.0.1:9", "sk-provider-refusals");
    let token = enroll(&c, DATAPLANE_ID);
    let before = c.snapshot_version(&token);
    let state_before = state(&c);
    let admin_token = c.admin_token();

    // Unknown fields, straight at the admin API (the CLI cannot send them).
    let post = |method: &str, path: &str, body: Value| {
        http::request(c.admin, &Req::new(method, path).bearer(&admin_token).json(&body))
    };
    for (method, path, body, field) in [
        (
            "POST",
            "/v1/tenants",
            json!({"id": "beta", "colour": "red"}),
            "colour",
        ),
        (
            "POST",
            "/v1/upstreams",
            json!({"name": "u2", "kind": "openai", "base_url": "http://127.0.0.1:9", "tls": false}),
            "tls",
        ),
        (
            "PUT",
            "/v1/tenants/acme/routes",
            json!({"model": "m2", "targets": [{"upstream": "mock", "provider_key": "pk", "colour": 1}]}),
            "colour",
        ),
    ] {
        let r = post(method, path, body);
        assert_eq!(r.status(), 400, "{method} {path}: {}", r.text());
        let msg = r.json()["error"].as_str().unwrap_or_default().to_owned();
        assert!(
            msg.contains(&format!("unknown field `{field}`")),
            "{method} {path}: {msg}"
        );
        assert!(!msg.contains('\n'), "{method} {path}: not one line: {msg}");
    }

    // Through the CLI.
    refused(
        &c,
        &["tenant", "create", TENANT],
        "tenant \"acme\" already exists",
    );
    refused(&c, &["tenant", "create", "Bad Name"], "invalid tenant id");
    refused(
        &c,
        &[
            "upstream",
            "add",
            "mock",
            "--kind",
            "openai",
            "--base-url",
            "http://127.0.0.1:9",
        ],
        "already exists",
    );
    refused(
        &c,
        &[
            "upstream",
            "add",
            "Not/Valid",
            "--kind",
            "openai",
            "--base-url",
            "http://127.0.0.1:9",
        ],
        "invalid upstream",
    );
    refused(
        &c,
        &["apikey", "create", "--tenant", TENANT, "--id", KEY_ID],
        "already exists",
    );
    for (target, expect) in [
        ("upstream=nope,key=pk", "unknown upstream \"nope\""),
        ("upstream=mock,key=nope", "unknown provider key \"nope\""),
    ] {
        refused(
            &c,
            &[
                "route",
                "set",
                "--tenant",
                TENANT,
                "--model",
                OPENAI_MODEL,
                "--target",
                target,
            ],
            expect,
        );
    }
    refused(
        &c,
        &[
            "route",
            "set",
            "--tenant",
            "ghost",
            "--model",
            "m",
            "--target",
            "upstream=mock,key=pk",
        ],
        "tenant \"ghost\" does not exist",
    );
    refused(&c, &["apikey", "revoke", "--tenant", TENANT, "nope"], "nope");
    refused(&c, &["upstream", "remove", "mock"], "used by route");

    assert_eq!(
        c.snapshot_version(&token),
        before,
        "a refused change moved the snapshot"
    );
    let list = c.json(&["dataplane", "list"]);
    assert_eq!(list[0]["snapshot_version"].as_u64(), Some(before), "{list}");
    assert_eq!(state(&c), state_before);

    // The check can fail: an accepted change moves the version.
    c.ok(&["tenant", "create", "beta"], None);
    assert_eq!(c.snapshot_version(&token), before + 1);
}

#[test]
fn route_settings_through_the_cli() {
    let dir = TempDir::new("route-settings");
    let c = Control::start(&dir.join("control"), dir.path(), "info");
    configure(&c, "http://127.0.0.1:9", "sk-provider-route-settings");
    let set = |extra: &[&str]| {
        let mut args = vec![
            "route",
            "set",
            "--tenant",
            TENANT,
            "--model",
            "spread",
            "--target",
            "upstream=mock,key=pk,weight=3",
            "--target",
            "upstream=mock,key=pk,weight=1,priority=0",
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let args = set(&[
        "--strategy",
        "least-latency",
        "--first-byte-timeout-ms",
        "1500",
        "--retry-budget",
        "0.3",
        "--eject-after",
        "2",
        "--eject-ms",
        "1000",
    ]);
    let out = c.ok(&args.iter().map(String::as_str).collect::<Vec<_>>(), None);
    assert!(out.contains("least-latency"), "{out}");
    let routes = c.json(&["route", "list", "--tenant", TENANT]);
    let route = routes
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == "spread")
        .unwrap_or_else(|| panic!("{routes}"));
    assert_eq!(route["strategy"], "least-latency", "{route}");
    assert_eq!(route["first_byte_timeout_ms"], 1500, "{route}");
    assert_eq!(route["retry_budget"], 0.3, "{route}");
    assert_eq!(route["eject_after"], 2, "{route}");
    assert_eq!(route["eject_ms"], 1000, "{route}");
    for (extra, expect) in [
        (&["--retry-budget", "11"][..], "retry_budget"),
        (&["--eject-after", "0"][..], "eject_after"),
        (&["--strategy", "fastest"][..], "fastest"),
    ] {
        let args = set(extra);
        refused(&c, &args.iter().map(String::as_str).collect::<Vec<_>>(), expect);
    }
}
