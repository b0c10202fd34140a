//! Metering and policy through the whole fleet, configured the way an
//! operator would: the `sluice-control` CLI sets prices, policies and
//! credit; `serve` compiles them into snapshots and leases credit to the
//! data planes; the data planes enforce them against the mock provider and
//! ship their records back; control charges the records to the tenant's
//! credit, raises low-balance alerts and posts them to a webhook (a tiny
//! HTTP listener in this test).
//!
//! Waits poll under generous deadlines; no assertion is about timing.

// Test code: a failed unwrap is a failed test. (clippy.toml's test allowances
// cover #[test] functions only, not the per-case functions they call.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use sluice_tests::control::{
    bearer, control_bin, parse_key, write_secret, Dataplane, DataplaneOpts, Logged, ANTHROPIC_MODEL,
    OPENAI_MODEL, TENANT,
};
use sluice_tests::http::{self, Req, Response};
use sluice_tests::metering::{fire_concurrently, status_histogram};
use sluice_tests::mock::{Mock, MockOpts};
use sluice_tests::tmp::TempDir;
use sluice_tests::{both_drivers, sse, vocab, Driver, WAIT};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

both_drivers!(
    prices_policies_pii_and_limits_through_control,
    credit_leases_two_dataplanes,
    restart_keeps_what_was_spent,
    rate_limits_shared_by_two_dataplanes,
    random_shapes_on_two_dataplanes_never_overdraw,
);

/// The provider key the mock requires.
const PROVIDER_KEY: &str = "sk-provider-billing-fleet";

// ---- the fleet ----------------------------------------------------------

/// `sluice-control serve` with its CLI (started here rather than with
/// `sluice_tests::control::Control` so that `--alert-webhook` can be given).
struct Ctl {
    _proc: Logged,
    admin: SocketAddr,
    sync: SocketAddr,
    data: PathBuf,
}

/// The address in `127.0.0.1:7070` or `http://127.0.0.1:7070 (TLS)`.
fn addr_of(text: &str) -> SocketAddr {
    text.split_whitespace()
        .next()
        .and_then(|a| a.rsplit("://").next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("not an address: {text:?}"))
}

impl Ctl {
    fn start(dir: &Path, extra: &[&str]) -> Ctl {
        let data = dir.join("control");
        let mut cmd = Command::new(control_bin());
        cmd.args([
            "serve",
            "--admin",
            "127.0.0.1:0",
            "--sync",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(&data)
        .args(extra)
        .env_remove("SLUICE_MASTER_KEY")
        .env_remove("SLUICE_DATA")
        .env("RUST_LOG", "warn");
        let mut proc = Logged::spawn("control", cmd, dir);
        let admin = addr_of(&proc.wait_line("admin listening on ", WAIT));
        let sync = addr_of(&proc.wait_line("sync listening on ", WAIT));
        Ctl {
            _proc: proc,
            admin,
            sync,
            data,
        }
    }

    fn cli(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(control_bin())
            .args(args)
            .arg("--admin")
            .arg(format!("http://{}", self.admin))
            .arg("--data")
            .arg(&self.data)
            .env_remove("SLUICE_ADMIN_TOKEN")
            .env_remove("SLUICE_ADMIN_URL")
            .env_remove("SLUICE_DATA")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(mut input) = child.stdin.take() {
            let _ = input.write_all(stdin.unwrap_or("").as_bytes());
        }
        child.wait_with_output().unwrap()
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        self.ok_in(args, None)
    }

    #[track_caller]
    fn ok_in(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.cli(args, stdin);
        assert!(
            out.status.success(),
            "sluice-control {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs the CLI, insists that it fails; returns stderr and stdout.
    #[track_caller]
    fn fails(&self, args: &[&str]) -> String {
        let out = self.cli(args, None);
        assert!(
            !out.status.success(),
            "sluice-control {args:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        )
    }

    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    }

    /// The records of the tenant, as `logs --json` lists them.
    fn records(&self) -> Vec<Value> {
        let logs = self.json(&["logs", "--tenant", TENANT, "--limit", "10000"]);
        logs.as_array()
            .unwrap()
            .iter()
            .map(|e| e["record"].clone())
            .collect()
    }

    /// Polls until control holds exactly `n` records of the tenant.
    #[track_caller]
    fn wait_records(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let list = self.records();
            assert!(list.len() <= n, "{} records, expected {n}", list.len());
            if list.len() == n {
                return list;
            }
            assert!(Instant::now() < deadline, "{} of {n} records arrived", list.len());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The snapshot version the sync API reports to the holder of `token`.
    fn version(&self, token: &str) -> u64 {
        let r = http::request(self.sync, &Req::get("/v1/snapshot").bearer(&bearer(token)));
        assert_eq!(r.status(), 200, "{}", r.text());
        r.header("x-sluice-version").unwrap().parse().unwrap()
    }

    /// `tenant credit add` of `micros` for [`TENANT`]; returns what it printed.
    fn add_credit(&self, micros: u64) -> String {
        self.ok(&[
            "tenant",
            "credit",
            "add",
            "--tenant",
            TENANT,
            "--micros",
            &micros.to_string(),
        ])
    }

    fn credit(&self) -> Value {
        self.json(&["tenant", "credit", "show", "--tenant", TENANT])
    }
}

/// A data plane of the fleet, with its enrollment token.
struct Edge {
    dp: Dataplane,
    token: String,
    opts: DataplaneOpts,
}

impl Edge {
    fn start(ctl: &Ctl, dir: &Path, id: &str, driver: Driver) -> Edge {
        let token = parse_key(&ctl.ok(&["dataplane", "enroll", id]), "sdp-");
        let token_file = dir.join(format!("{id}.token"));
        write_secret(&token_file, &format!("{token}\n"));
        let opts = DataplaneOpts {
            control_url: format!("http://{}", ctl.sync),
            token_file,
            spool_dir: dir.join(format!("{id}-spool")),
            logs: dir.to_owned(),
            log: "warn".into(),
            extra_args: Vec::new(),
        };
        Edge {
            dp: Dataplane::start(driver, &opts),
            token,
            opts,
        }
    }

    /// `kill -9`, then a start on the same token and spool directory.
    fn restart(&mut self) {
        self.dp.kill();
        self.dp = Dataplane::start(self.dp.driver, &self.opts);
    }

    /// Waits until this data plane serves control's current snapshot.
    fn wait_current(&self, ctl: &Ctl) {
        let want = ctl.version(&self.token) as f64;
        self.dp
            .wait_metric("sluice_snapshot_version", &format!(">= {want}"), |v| v >= want);
    }
}

/// Tenant, gateway key, both upstreams, the provider key and both routes,
/// with the CLI; returns the gateway key.
fn configure(ctl: &Ctl, mock_url: &str) -> String {
    ctl.ok(&["tenant", "create", TENANT]);
    let key = parse_key(
        &ctl.ok(&["apikey", "create", "--tenant", TENANT, "--id", "k1"]),
        "sk-sluice-",
    );
    for (name, kind) in [("mock", "openai"), ("mock-anthropic", "anthropic")] {
        ctl.ok(&["upstream", "add", name, "--kind", kind, "--base-url", mock_url]);
    }
    ctl.ok_in(
        &["provider-key", "add", "--tenant", TENANT, "pk"],
        Some(PROVIDER_KEY),
    );
    for (model, upstream) in [(OPENAI_MODEL, "mock"), (ANTHROPIC_MODEL, "mock-anthropic")] {
        let target = format!("upstream={upstream},key=pk");
        ctl.ok(&[
            "route", "set", "--tenant", TENANT, "--model", model, "--target", &target,
        ]);
    }
    key
}

fn mock() -> Mock {
    Mock::start(MockOpts {
        require_key: Some(PROVIDER_KEY.into()),
        ..MockOpts::default()
    })
}

fn chat(key: &str, text: &str, stream: bool, max_tokens: Option<u64>, tokens: u32) -> Req {
    let mut body = json!({
        "model": OPENAI_MODEL,
        "messages": [{"role": "user", "content": text}],
        "stream": stream,
    });
    if let Some(n) = max_tokens {
        body["max_tokens"] = json!(n);
    }
    Req::chat(key, &body).header("x-mock-tokens", &tokens.to_string())
}

fn messages(key: &str, text: &str, stream: bool, max_tokens: u64, tokens: u32) -> Req {
    let body = json!({
        "model": ANTHROPIC_MODEL,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": text}],
        "stream": stream,
    });
    Req::messages(key, &body).header("x-mock-tokens", &tokens.to_string())
}

/// `usage.field` of a record.
fn usage(r: &Value, field: &str) -> u64 {
    r["usage"][field]
        .as_u64()
        .unwrap_or_else(|| panic!("no usage.{field}: {r}"))
}

/// The cost of `r`'s usage at `input` and `output` micro-dollars per
/// million tokens, rounded up (nothing cached in these tests).
fn expected_cost(r: &Value, input: u64, output: u64) -> u64 {
    assert_eq!(r["usage"]["cached_input_tokens"].as_u64().unwrap_or(0), 0, "{r}");
    (usage(r, "input_tokens") * input + usage(r, "output_tokens") * output).div_ceil(1_000_000)
}

// ---- 1. prices, policies, PII and rate limits ------------------------------

const POLICY: &str = r#"
model_allow = ["gpt-4o*", "claude-*"]

[[rules]]
id = "greeting-ok"
action = "allow"
when.prompt_contains = ["hello"]

[[rules]]
id = "no-zeus"
action = "block"
when.prompt_contains = ["project zeus"]
"#;

const BAD_POLICY: &str = r#"
[[rules]]
id = "broken"
action = "block"
when.prompt_regex = ["(unclosed"]
"#;

fn prices_policies_pii_and_limits_through_control(d: Driver) {
    let dir = TempDir::new("billing-fleet-prices");
    let mock = mock();
    let ctl = Ctl::start(dir.path(), &[]);
    let key = configure(&ctl, &mock.url);
    let edge = Edge::start(&ctl, dir.path(), "edge1", d);
    let mut sent = 0;

    // Built-in defaults: gpt-4o-mini at $0.15 / $0.60, claude-sonnet-4-5 by
    // the claude-sonnet-4 prefix at $3 / $15 per million tokens.
    let prices = ctl.json(&["price", "list"]);
    let find = |m: &str| {
        prices
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["model"] == m)
            .unwrap_or_else(|| panic!("no default price for {m}: {prices}"))
            .clone()
    };
    for m in [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "o3",
        "claude-sonnet-4",
        "claude-3-5-haiku",
    ] {
        assert_eq!(find(m)["source"], "default", "{m}");
    }
    assert_eq!(find("gpt-4o-mini")["input"].as_f64(), Some(0.15));
    let r = edge
        .dp
        .request(&chat(&key, "What does a gateway do?", false, None, 7));
    assert_eq!(r.status(), 200, "{}", r.text());
    let r = edge
        .dp
        .request(&messages(&key, "What does a gateway do?", true, 64, 9));
    assert_eq!(r.status(), 200, "{}", r.text());
    sent += 2;
    let recs = ctl.wait_records(sent);
    let (o, a) = (&recs[0], &recs[1]);
    assert_eq!(usage(o, "output_tokens"), 7, "{o}");
    assert_eq!(
        o["cost_micros"].as_u64(),
        Some(expected_cost(o, 150_000, 600_000)),
        "{o}"
    );
    assert_eq!(usage(a, "output_tokens"), 9, "{a}");
    assert_eq!(
        a["cost_micros"].as_u64(),
        Some(expected_cost(a, 3_000_000, 15_000_000)),
        "{a}"
    );

    // `price set` changes what the next record costs.
    ctl.ok(&[
        "price",
        "set",
        "--model",
        OPENAI_MODEL,
        "--input",
        "10",
        "--output",
        "20",
    ]);
    edge.wait_current(&ctl);
    let r = edge.dp.request(&chat(&key, "And now?", true, None, 11));
    assert_eq!(r.status(), 200, "{}", r.text());
    sent += 1;
    let rec = ctl.wait_records(sent).pop().unwrap();
    assert_eq!(usage(&rec, "output_tokens"), 11, "{rec}");
    let cost = rec["cost_micros"].as_u64().unwrap();
    assert_eq!(cost, expected_cost(&rec, 10_000_000, 20_000_000), "{rec}");
    assert_eq!(
        cost,
        usage(&rec, "input_tokens") * 10 + 11 * 20,
        "whole micro-dollars: {rec}"
    );
    let listed = ctl.json(&["price", "list"]);
    let mini = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["model"] == OPENAI_MODEL)
        .unwrap();
    assert_eq!(mini["source"], "override", "{mini}");
    assert_eq!(mini["replaces_default"], true, "{mini}");

    // A policy that does not compile is refused with the compiler's
    // message, and nothing changes.
    let before = ctl.version(&edge.token);
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, BAD_POLICY).unwrap();
    let err = ctl.fails(&[
        "policy",
        "set",
        "--tenant",
        TENANT,
        "--file",
        bad.to_str().unwrap(),
    ]);
    assert!(err.contains("policy refused"), "{err}");
    assert!(err.contains("broken"), "the message names the rule: {err}");
    assert!(err.contains("(unclosed"), "the message shows the regex: {err}");
    assert_eq!(
        ctl.version(&edge.token),
        before,
        "a refused policy changed the snapshot"
    );
    assert!(ctl
        .fails(&["policy", "show", "--tenant", TENANT])
        .contains("has no policy"));

    // A good one is enforced by the data plane: BLOCK is a 403 naming the
    // rule, in each API's shape; the rule ids reach control's records.
    let good = dir.join("policy.toml");
    std::fs::write(&good, POLICY).unwrap();
    ctl.ok(&[
        "policy",
        "set",
        "--tenant",
        TENANT,
        "--file",
        good.to_str().unwrap(),
    ]);
    assert!(ctl.version(&edge.token) > before);
    edge.wait_current(&ctl);
    let forwarded = mock.requests();
    let r = edge
        .dp
        .request(&chat(&key, "Tell me about Project Zeus.", false, None, 3));
    let e = r.assert_openai_error(403);
    assert!(e["message"].as_str().unwrap().contains("no-zeus"), "{e}");
    let r = edge
        .dp
        .request(&messages(&key, "Tell me about project zeus.", true, 64, 3));
    let e = r.assert_anthropic_error(403);
    assert_eq!(e["type"], "permission_error", "{e}");
    assert!(e["message"].as_str().unwrap().contains("no-zeus"), "{e}");
    assert_eq!(
        mock.requests(),
        forwarded,
        "a blocked request reached the upstream"
    );
    let r = edge.dp.request(&chat(&key, "hello there", false, None, 3));
    assert_eq!(r.status(), 200, "{}", r.text());
    sent += 3;
    let recs = ctl.wait_records(sent);
    let ids = |r: &Value| -> Vec<String> {
        r["rule_ids"]
            .as_array()
            .unwrap_or_else(|| panic!("no rule_ids: {r}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let tail = &recs[sent - 3..];
    for r in &tail[..2] {
        assert_eq!(r["verdict"], "BLOCK", "{r}");
        assert_eq!(r["status"], 403, "{r}");
        assert_eq!(r["error"], "policy_blocked", "{r}");
        assert_eq!(ids(r), ["no-zeus"], "{r}");
    }
    assert_eq!(tail[2]["verdict"], "ALLOW", "{}", tail[2]);
    assert_eq!(ids(&tail[2]), ["greeting-ok"], "{}", tail[2]);
    for r in &recs[..sent - 3] {
        assert!(r["verdict"].is_null(), "no policy yet, no verdict: {r}");
    }

    // Every PII detector redacting: the upstream never receives a value,
    // the record counts each type and holds none of them.
    let pii = dir.join("pii.toml");
    std::fs::write(&pii, format!("{POLICY}\n{PII_ALL_REDACT}")).unwrap();
    ctl.ok(&[
        "policy",
        "set",
        "--tenant",
        TENANT,
        "--file",
        pii.to_str().unwrap(),
    ]);
    edge.wait_current(&ctl);
    let text = format!("Please file this: {}.", PII_VALUES.map(|(_, v)| v).join(" / "));
    let r = edge.dp.request(&chat(&key, &text, true, None, 2));
    assert_eq!(r.status(), 200, "{}", r.text());
    let last = mock.last();
    let received = last["body"].as_str().unwrap();
    let forwarded: Value = serde_json::from_str(received).unwrap();
    let content = forwarded["messages"][0]["content"].as_str().unwrap();
    for (kind, value) in PII_VALUES {
        assert!(
            !received.contains(value),
            "the upstream received the {kind} {value:?}: {received}"
        );
        let placeholder = format!("[REDACTED_{}]", kind.to_uppercase());
        assert!(content.contains(&placeholder), "no {placeholder}: {content}");
    }
    sent += 1;
    let rec = ctl.wait_records(sent).pop().unwrap();
    let counts: Value = PII_VALUES
        .iter()
        .map(|(k, _)| ((*k).to_owned(), json!(1)))
        .collect();
    assert_eq!(rec["pii"], counts, "{rec}");
    assert_eq!(rec["verdict"], "ALLOW", "{rec}");
    let raw = serde_json::to_string(&ctl.records()).unwrap();
    for (kind, value) in PII_VALUES {
        assert!(
            !raw.contains(value),
            "control's records hold the {kind} {value:?}"
        );
    }

    // `limit set`: two requests a minute for the key; the third is a 429
    // with the headers the SDKs read, in each API's shape.
    ctl.ok(&["limit", "set", "--tenant", TENANT, "--key", "k1", "--rpm", "2"]);
    edge.wait_current(&ctl);
    let started = Instant::now();
    for _ in 0..2 {
        let r = edge.dp.request(&chat(&key, "hello again", false, None, 1));
        assert_eq!(r.status(), 200, "{}", r.text());
    }
    let limited = [
        edge.dp.request(&chat(&key, "hello again", false, None, 1)),
        edge.dp.request(&messages(&key, "hello again", false, 16, 1)),
    ];
    sent += 4;
    // One request is let through every 30 s: only a very slow machine sees it.
    if started.elapsed() < Duration::from_secs(30) {
        for (i, r) in limited.iter().enumerate() {
            let e = if i == 0 {
                let e = r.assert_openai_error(429);
                assert_eq!(e["code"], "rate_limit_exceeded", "{e}");
                e
            } else {
                let e = r.assert_anthropic_error(429);
                assert_eq!(e["type"], "rate_limit_error", "{e}");
                e
            };
            assert!(e["message"].as_str().unwrap().contains("requests"), "{e}");
            assert!(r.header("retry-after").is_some(), "{:?}", r.head);
            assert_eq!(r.header("x-ratelimit-limit-requests"), Some("2"), "{:?}", r.head);
            assert!(
                r.header("x-ratelimit-remaining-requests").is_some(),
                "{:?}",
                r.head
            );
            assert!(r.header("x-ratelimit-reset-requests").is_some(), "{:?}", r.head);
        }
        let recs = ctl.wait_records(sent);
        for r in &recs[sent - 2..] {
            assert_eq!(r["status"], 429, "{r}");
            assert_eq!(r["error"], "rate_limited", "{r}");
        }
    }
}

/// One value for each PII detector, by its name in policies and records.
const PII_VALUES: [(&str, &str); 8] = [
    ("email", "alice.smith@example.com"),
    ("phone", "+1 415 555 2671"),
    ("card", "4111-1111-1111-1111"),
    ("iban", "DE89 3704 0044 0532 0130 00"),
    ("ssn", "078-05-1120"),
    ("ipv4", "192.168.17.42"),
    ("ipv6", "2001:db8::8:800:200c:417a"),
    ("secret", "AKIAIOSFODNN7EXAMPLE"),
];

const PII_ALL_REDACT: &str = r#"
[pii]
email = "redact"
phone = "redact"
card = "redact"
iban = "redact"
ssn = "redact"
ipv4 = "redact"
ipv6 = "redact"
secret = "redact"
"#;

// ---- 2. credit, leases, alerts --------------------------------------------

/// A webhook receiver on 127.0.0.1: every request's path and JSON body.
fn webhook() -> (SocketAddr, Receiver<(String, Value)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let method_path: Vec<&str> = line.split(' ').collect();
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some((n, v)) = h.split_once(':') {
                    if n.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            let _ = conn.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
            let what = format!("{} {}", method_path[0], method_path.get(1).unwrap_or(&""));
            let Ok(v) = serde_json::from_slice(&body) else {
                continue;
            };
            if tx.send((what, v)).is_err() {
                return;
            }
        }
    });
    (addr, rx)
}

/// Every admitted request costs exactly this: prompts are free, 10 µ$ a
/// completion token, max_tokens 20 and the mock asked for more.
const MAX_TOKENS: u64 = 20;
const COST: u64 = MAX_TOKENS * 10;
/// Credit for 100 requests.
const CREDIT: u64 = 100 * COST;

/// A request that costs exactly [`COST`], alternately OpenAI and Anthropic;
/// `slow` streams take a while so that concurrent ones overlap.
fn costly(key: &str, i: usize, slow: bool) -> Req {
    let req = if i.is_multiple_of(2) {
        chat(key, "Count.", true, Some(MAX_TOKENS), 30)
    } else {
        messages(key, "Count.", true, MAX_TOKENS, 30)
    };
    if slow {
        req.header("x-mock-itl-ms", "20")
    } else {
        req
    }
}

/// Asserts the 402 of request `i` in its API's shape.
#[track_caller]
fn assert_402(r: &Response, i: usize) {
    if i.is_multiple_of(2) {
        let e = r.assert_openai_error(402);
        assert_eq!(e["type"], "insufficient_quota", "{}", r.text());
        assert_eq!(e["code"], "insufficient_quota", "{}", r.text());
    } else {
        let e = r.assert_anthropic_error(402);
        assert_eq!(e["type"], "billing_error", "{}", r.text());
    }
}

/// Asserts that control's account adds up: what was spent is the sum of
/// the recorded costs, never more than was added, and the grants never
/// exceed the credit. Returns the credit view.
#[track_caller]
fn assert_books(ctl: &Ctl, records: &[Value], added: u64) -> Value {
    let costs: u64 = records
        .iter()
        .map(|r| r["cost_micros"].as_u64().unwrap_or(0))
        .sum();
    let v = ctl.credit();
    assert_eq!(v["spent_micros"].as_u64(), Some(costs), "{v}");
    assert_eq!(v["added_micros"].as_u64(), Some(added), "{v}");
    let balance = v["balance_micros"].as_i64().unwrap();
    assert!(balance >= 0, "overdrawn: {v}");
    assert_eq!(balance, added as i64 - costs as i64, "{v}");
    let leased = v["leased_micros"].as_u64().unwrap();
    assert!(leased <= added, "leased more than the credit: {v}");
    let granted: u64 = v["leases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["granted_micros"].as_u64().unwrap())
        .sum();
    assert_eq!(granted, leased, "{v}");
    for l in v["leases"].as_array().unwrap() {
        assert!(
            l["remaining_micros"].as_i64().unwrap() >= 0,
            "a data plane spent more than its lease: {v}"
        );
    }
    v
}

/// Sends [`costly`] requests one at a time to `edge` until it admits
/// `want` more or control has nothing left to lease; after each refusal,
/// waits for control to have every record and for the data plane to serve
/// the current snapshot (a top-up, if one is due). Returns (admitted, sent).
fn drain(ctl: &Ctl, edge: &Edge, key: &str, sent: &mut usize, want: usize) -> usize {
    let mut admitted = 0;
    let mut refused_in_a_row = 0;
    while admitted < want {
        let i = *sent;
        let r = edge.dp.request(&costly(key, i, false));
        *sent += 1;
        match r.status() {
            200 => {
                admitted += 1;
                refused_in_a_row = 0;
            }
            402 => {
                assert_402(&r, i);
                refused_in_a_row += 1;
                ctl.wait_records(*sent);
                edge.wait_current(ctl);
                let v = ctl.credit();
                if refused_in_a_row >= 2 && v["unleased_micros"].as_u64() == Some(0) {
                    break;
                }
                assert!(refused_in_a_row < 10, "refused although credit is left: {v}");
            }
            s => panic!("request {i}: unexpected {s}: {}", r.text()),
        }
    }
    admitted
}

/// One tenant's `rpm` across two data planes: control gives each a share and
/// the shares sum to the limit, so the fleet admits the limit, not twice it.
fn rate_limits_shared_by_two_dataplanes(d: Driver) {
    const RPM: usize = 40;
    let dir = TempDir::new("billing-fleet-rpm");
    let mock = mock();
    let ctl = Ctl::start(dir.path(), &[]);
    let key = configure(&ctl, &mock.url);
    ctl.ok(&["limit", "set", "--tenant", TENANT, "--rpm", &RPM.to_string()]);
    let edges = [
        Edge::start(&ctl, dir.path(), "edge1", d),
        Edge::start(&ctl, dir.path(), "edge2", d),
    ];
    // The second one's first poll rebalanced the limit between the two.
    for edge in &edges {
        edge.wait_current(&ctl);
    }
    // Twice the limit at once on each: whole limits would admit 2 × RPM.
    let batches: Vec<_> = edges
        .iter()
        .map(|edge| {
            let reqs: Vec<Req> = (0..2 * RPM)
                .map(|i| chat(&key, &format!("r{i}"), false, Some(4), 2))
                .collect();
            let addr = edge.dp.addr;
            std::thread::spawn(move || fire_concurrently(addr, reqs))
        })
        .collect();
    let mut admitted = [0usize; 2];
    for (n, h) in batches.into_iter().enumerate() {
        for r in h.join().unwrap() {
            match r.status() {
                200 => admitted[n] += 1,
                429 => assert!(r.header("retry-after").is_some(), "429 without retry-after"),
                s => panic!("unexpected {s}: {}", r.text()),
            }
        }
    }
    let total = admitted[0] + admitted[1];
    // The limit, plus what refills (RPM a minute) while the requests run.
    assert!(
        (RPM - 2..=RPM + 4).contains(&total),
        "admitted {admitted:?} of a fleet-wide {RPM} rpm"
    );
    assert!(
        admitted.iter().all(|&a| a >= RPM / 8),
        "each keeps at least its floor share: {admitted:?}"
    );
    // Every request, refused ones included, has its record.
    ctl.wait_records(4 * RPM);
}

/// Many concurrent requests of random shapes (either API, streamed or not,
/// usage asked or not, some cut by the upstream) on two data planes that
/// share one tenant's small credit: the balance never goes below zero, and
/// what the records charge is exactly what the balance lost.
fn random_shapes_on_two_dataplanes_never_overdraw(d: Driver) {
    const ADDED: u64 = 20_000;
    const PER_EDGE: usize = 60;
    let dir = TempDir::new("billing-fleet-random");
    let mock = mock();
    let ctl = Ctl::start(dir.path(), &[]);
    let key = configure(&ctl, &mock.url);
    for model in [OPENAI_MODEL, ANTHROPIC_MODEL] {
        ctl.ok(&[
            "price", "set", "--model", model, "--input", "10", "--output", "10",
        ]);
    }
    ctl.add_credit(ADDED);
    let edges = [
        Edge::start(&ctl, dir.path(), "edge1", d),
        Edge::start(&ctl, dir.path(), "edge2", d),
    ];
    // xorshift64*: the same shapes every run.
    let mut state = 0x5eed_f1ee_7000_0002u64;
    let mut rng = move |lo: u64, hi: u64| {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        lo + state.wrapping_mul(0x2545_F491_4F6C_DD1D) % (hi - lo + 1)
    };
    let batches: Vec<_> = edges
        .iter()
        .map(|edge| {
            let reqs: Vec<Req> = (0..PER_EDGE)
                .map(|i| {
                    let stream = rng(0, 3) > 0;
                    let max_tokens = rng(5, 50);
                    let tokens = rng(1, 60) as u32;
                    let mut req = if rng(0, 1) == 0 {
                        let mut r = chat(&key, &format!("Count {i}."), stream, Some(max_tokens), tokens);
                        if stream && rng(0, 1) == 0 {
                            let body = json!({
                                "model": OPENAI_MODEL,
                                "messages": [{"role": "user", "content": format!("Count {i}.")}],
                                "stream": true,
                                "stream_options": {"include_usage": true},
                                "max_tokens": max_tokens,
                            });
                            r = Req::chat(&key, &body).header("x-mock-tokens", &tokens.to_string());
                        }
                        r
                    } else {
                        messages(&key, &format!("Count {i}."), stream, max_tokens, tokens)
                    };
                    req = req.header("x-mock-itl-ms", &rng(0, 5).to_string());
                    if stream && rng(0, 4) == 0 {
                        req = req.header("x-mock-truncate-after", &rng(1, 8).to_string());
                    }
                    req
                })
                .collect();
            let addr = edge.dp.addr;
            std::thread::spawn(move || fire_concurrently(addr, reqs))
        })
        .collect();
    let mut admitted = 0;
    for h in batches {
        for r in h.join().unwrap() {
            match r.status() {
                200 => admitted += 1,
                402 => {}
                s => panic!("unexpected {s}: {}", r.text()),
            }
        }
    }
    assert!(
        admitted > 0 && admitted < 2 * PER_EDGE,
        "the credit should cover some, not all: {admitted}"
    );
    let records = ctl.wait_records(2 * PER_EDGE);
    for r in &records {
        let cost = r["cost_micros"].as_u64().unwrap_or(0);
        match r["status"].as_u64() {
            Some(200) => {
                let carried = r["usage"]["input_tokens"].as_u64().unwrap_or(0)
                    + r["prompt_tokens_counted"].as_u64().unwrap_or(0);
                assert!(carried == 0 || cost > 0, "tokens carried, cost 0: {r}");
            }
            Some(402) => assert_eq!(cost, 0, "a refused request was charged: {r}"),
            _ => panic!("unexpected record: {r}"),
        }
    }
    // Balance ≥ 0, spent = the records' sum, grants within the credit.
    assert_books(&ctl, &records, ADDED);
}

fn credit_leases_two_dataplanes(d: Driver) {
    let dir = TempDir::new("billing-fleet-credit");
    let mock = mock();
    let (hook, hooked) = webhook();
    let url = format!("http://{hook}/hooks/low-balance");
    let ctl = Ctl::start(dir.path(), &["--alert-webhook", &url]);
    let key = configure(&ctl, &mock.url);
    for model in [OPENAI_MODEL, ANTHROPIC_MODEL] {
        ctl.ok(&["price", "set", "--model", model, "--input", "0", "--output", "10"]);
    }
    let out = ctl.add_credit(CREDIT);
    assert!(out.contains("$0.020000"), "{out}");
    ctl.ok(&[
        "tenant",
        "credit",
        "threshold",
        "--tenant",
        TENANT,
        "--usd",
        "0.015",
    ]);
    assert!(ctl.json(&["alerts"]).as_array().unwrap().is_empty());
    let edges = [
        Edge::start(&ctl, dir.path(), "edge1", d),
        Edge::start(&ctl, dir.path(), "edge2", d),
    ];
    // Each got its first slice before it served.
    let v = ctl.credit();
    assert_eq!(v["leases"].as_array().unwrap().len(), 2, "{v}");

    // 200 concurrent requests, 100 on each data plane, against credit for
    // 100: at most 100 admitted, whatever the leases and their top-ups.
    let batches: Vec<_> = edges
        .iter()
        .map(|edge| {
            let reqs: Vec<Req> = (0..100).map(|i| costly(&key, i, true)).collect();
            let addr = edge.dp.addr;
            std::thread::spawn(move || fire_concurrently(addr, reqs))
        })
        .collect();
    let responses: Vec<Vec<Response>> = batches.into_iter().map(|h| h.join().unwrap()).collect();
    let mut admitted = 0;
    for batch in &responses {
        for (i, r) in batch.iter().enumerate() {
            match r.status() {
                200 => {
                    assert!(r.complete, "incomplete stream");
                    let events = sse::parse(&r.body);
                    let text = if i.is_multiple_of(2) {
                        sse::openai_text(&events)
                    } else {
                        sse::anthropic_text(&events)
                    };
                    assert_eq!(text, vocab::text(MAX_TOKENS as usize));
                    admitted += 1;
                }
                402 => assert_402(r, i),
                s => panic!("unexpected {s}: {}", r.text()),
            }
        }
    }
    let hist: Vec<_> = responses.iter().map(|b| status_histogram(b)).collect();
    eprintln!("burst: {admitted} of 200 admitted; statuses per data plane {hist:?}");
    assert!(
        admitted <= 100,
        "{admitted} admitted against credit for 100: {hist:?}"
    );
    assert!(admitted > 0, "{hist:?}");
    assert_eq!(
        mock.requests(),
        admitted as u64,
        "only admitted requests reach the upstream"
    );
    let mut sent = 200;
    let records = ctl.wait_records(sent);
    for r in &records {
        match r["status"].as_u64() {
            Some(200) => assert_eq!(r["cost_micros"].as_u64(), Some(COST), "{r}"),
            Some(402) => {
                assert_eq!(r["error"], "insufficient_credit", "{r}");
                assert_eq!(r["cost_micros"].as_u64().unwrap_or(0), 0, "{r}");
            }
            _ => panic!("unexpected record: {r}"),
        }
    }
    assert_books(&ctl, &records, CREDIT);

    // Spend what is left, one data plane after the other: every micro-dollar
    // of the credit is spendable, and not one more.
    for edge in &edges {
        admitted += drain(&ctl, edge, &key, &mut sent, usize::MAX);
    }
    let records = ctl.wait_records(sent);
    let v = assert_books(&ctl, &records, CREDIT);
    assert_eq!(admitted, 100, "the whole credit, exactly: {v}");
    assert_eq!(v["balance_micros"].as_i64(), Some(0), "{v}");
    for edge in &edges {
        let r = edge.dp.request(&costly(&key, 1, false));
        assert_402(&r, 1);
        sent += 1;
    }

    // The balance went below the $0.015 threshold once: one alert, listed
    // and posted to the webhook.
    let alerts = ctl.json(&["alerts", "--tenant", TENANT]);
    let alerts = alerts.as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["type"], "low_balance");
    assert_eq!(alerts[0]["threshold_micros"].as_u64(), Some(15_000));
    let at = alerts[0]["balance_micros"].as_i64().unwrap();
    assert!((0..15_000).contains(&at), "{alerts:?}");
    let table = ctl.ok(&["alerts"]);
    assert!(table.contains("low_balance") && table.contains(TENANT), "{table}");
    let (what, body) = hooked.recv_timeout(WAIT).expect("the webhook got no alert");
    assert_eq!(what, "POST /hooks/low-balance");
    assert_eq!(body["type"], "low_balance", "{body}");
    assert_eq!(body["tenant"], TENANT, "{body}");
    assert_eq!(body["balance_micros"].as_i64(), Some(at), "{body}");
    assert_eq!(body["threshold_micros"].as_u64(), Some(15_000), "{body}");
    assert_eq!(body["id"], alerts[0]["id"], "{body}");

    // More credit: the leases are refilled as they are spent. With $1 on
    // the account a slice is $0.10 (500 requests), so edge1 admitting 600
    // means it was topped up after it spent its first slice.
    let more = 1_000_000;
    ctl.add_credit(more);
    assert_eq!(
        ctl.credit()["below_threshold"],
        false,
        "re-armed above the threshold"
    );
    edges[0].wait_current(&ctl);
    let first = ctl.credit()["leases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["dataplane"] == "edge1")
        .unwrap()["granted_micros"]
        .as_u64()
        .unwrap();
    let extra = drain(&ctl, &edges[0], &key, &mut sent, 600);
    assert_eq!(extra, 600, "edge1 was not topped up as it spent");
    eprintln!("edge1 admitted {extra} more after the credit was added ({sent} requests in all)");
    let records = ctl.wait_records(sent);
    let v = assert_books(&ctl, &records, CREDIT + more);
    let edge1 = v["leases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["dataplane"] == "edge1")
        .unwrap()
        .clone();
    assert!(
        edge1["granted_micros"].as_u64().unwrap() > first,
        "no top-up after the spend: {v}"
    );
    let ok = records.iter().filter(|r| r["status"] == 200).count() as u64;
    assert_eq!(
        edge1["spent_micros"].as_u64().unwrap() + spent_by(&v, "edge2"),
        ok * COST,
        "{v}"
    );
}

/// What `dataplane` spent according to the credit view `v`.
fn spent_by(v: &Value, dataplane: &str) -> u64 {
    v["leases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["dataplane"] == dataplane)
        .map_or(0, |l| l["spent_micros"].as_u64().unwrap())
}

// ---- 3. a restarted data plane --------------------------------------------

/// A data plane that spent its whole lease and is restarted (kill -9, same
/// token and spool) must not spend it again: the lease is cumulative, so the
/// restarted process learns from control what was already spent on it.
fn restart_keeps_what_was_spent(d: Driver) {
    let dir = TempDir::new("billing-fleet-restart");
    let mock = mock();
    let ctl = Ctl::start(dir.path(), &[]);
    let key = configure(&ctl, &mock.url);
    for model in [OPENAI_MODEL, ANTHROPIC_MODEL] {
        ctl.ok(&["price", "set", "--model", model, "--input", "0", "--output", "10"]);
    }
    // Credit for 50 requests: below the smallest slice, leased whole.
    let credit = 50 * COST;
    ctl.add_credit(credit);
    let mut edge = Edge::start(&ctl, dir.path(), "edge1", d);
    let mut sent = 0;
    assert_eq!(drain(&ctl, &edge, &key, &mut sent, usize::MAX), 50);
    let records = ctl.wait_records(sent);
    edge.dp.wait_metric("sluice_spool_pending", "0", |v| v == 0.0);
    let v = assert_books(&ctl, &records, credit);
    assert_eq!(v["balance_micros"].as_i64(), Some(0), "{v}");

    for round in 0..2 {
        edge.restart();
        for i in 0..2 {
            let r = edge.dp.request(&costly(&key, i, false));
            assert_402(&r, i);
            sent += 1;
        }
        let records = ctl.wait_records(sent);
        let v = assert_books(&ctl, &records, credit);
        assert_eq!(v["spent_micros"].as_u64(), Some(credit), "restart {round}: {v}");
        assert_eq!(
            mock.requests(),
            50,
            "restart {round}: the restarted data plane spent again"
        );
    }

    // More credit reaches the restarted data plane, and only that much.
    ctl.add_credit(credit);
    edge.wait_current(&ctl);
    assert_eq!(drain(&ctl, &edge, &key, &mut sent, usize::MAX), 50);
    let records = ctl.wait_records(sent);
    let v = assert_books(&ctl, &records, 2 * credit);
    assert_eq!(v["balance_micros"].as_i64(), Some(0), "{v}");
    assert_eq!(mock.requests(), 100);
}
