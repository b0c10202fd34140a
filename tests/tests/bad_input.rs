//! Bad input, on both drivers: every refusal the contract names, with its
//! exact status, the caller's error shape, a record, and (for framing
//! errors) the connection closed; then a barrage of garbage after which the
//! process must still be alive and serving.

// Test code: a failed unwrap is a failed test. (clippy.toml's test allowances
// cover #[test] functions only, not the per-case functions they call.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use sluice_tests::http::{self, Conn, Req};
use sluice_tests::stack::{
    anthropic_body, openai_body, Stack, ANTHROPIC_MODEL, GATEWAY_KEY, OPENAI_MODEL, WRONG_KEY,
};
use sluice_tests::{both_drivers, sse, vocab, Driver, Gateway, GatewayOpts, WAIT};
use std::time::Duration;

both_drivers!(
    missing_key,
    wrong_key,
    malformed_json,
    missing_model_and_messages,
    unknown_model,
    unknown_path,
    body_too_large,
    head_too_large,
    framing_errors_close,
    garbage_barrage,
    slow_head_times_out,
    bad_config_exits_64,
);

fn missing_key(d: Driver) {
    let stack = Stack::start(d);
    let r = stack
        .gw
        .request(&Req::chat(GATEWAY_KEY, &openai_body(OPENAI_MODEL, false)).without("authorization"));
    let e = r.assert_openai_error(401);
    assert!(!e["message"].as_str().unwrap().is_empty());
    let r = stack
        .gw
        .request(&Req::messages(GATEWAY_KEY, &anthropic_body(ANTHROPIC_MODEL, false)).without("x-api-key"));
    let e = r.assert_anthropic_error(401);
    assert_eq!(e["type"], "authentication_error", "{e}");
    // A bearer with nothing after it is no key either.
    let r = stack.gw.request(
        &Req::chat(GATEWAY_KEY, &openai_body(OPENAI_MODEL, false))
            .without("authorization")
            .header("authorization", "Bearer "),
    );
    r.assert_openai_error(401);

    let rec = stack.gw.records().wait_for("401 on chat", |r| {
        r["status"] == 401 && r["route"] == "chat_completions"
    });
    sluice_tests::records::assert_shape(&rec);
    assert_eq!(rec["outcome"], "rejected", "{rec}");
    assert!(rec["tenant"].is_null() && rec["key_id"].is_null(), "{rec}");
    assert!(rec["upstream"].is_null(), "{rec}");
    assert_eq!(rec["attempts"], 0, "{rec}");
    assert_eq!(
        stack.mock.requests(),
        0,
        "a request without a key reached the upstream"
    );
}

fn wrong_key(d: Driver) {
    let stack = Stack::start(d);
    let r = stack
        .gw
        .request(&Req::chat(WRONG_KEY, &openai_body(OPENAI_MODEL, false)));
    r.assert_openai_error(401);
    let r = stack
        .gw
        .request(&Req::messages(WRONG_KEY, &anthropic_body(ANTHROPIC_MODEL, false)));
    let e = r.assert_anthropic_error(401);
    assert_eq!(e["type"], "authentication_error", "{e}");
    // The right key in the wrong case is a different key.
    let r = stack.gw.request(&Req::chat(
        &GATEWAY_KEY.to_uppercase(),
        &openai_body(OPENAI_MODEL, false),
    ));
    r.assert_openai_error(401);
    let rec = stack.gw.records().wait_for("401 on messages", |r| {
        r["status"] == 401 && r["route"] == "messages"
    });
    assert_eq!(rec["outcome"], "rejected", "{rec}");
    assert_eq!(stack.mock.requests(), 0);
}

fn malformed_json(d: Driver) {
    let stack = Stack::start(d);
    for body in [
        &b"{not json"[..],
        b"",
        b"[1,2,3]",
        b"{\"model\":\"gpt-4o-mini\",\"messages\":[]} trailing",
    ] {
        let r = stack
            .gw
            .request(&Req::chat(GATEWAY_KEY, &json!({})).body(body.to_vec()));
        r.assert_openai_error(400);
        let r = stack
            .gw
            .request(&Req::messages(GATEWAY_KEY, &json!({})).body(body.to_vec()));
        let e = r.assert_anthropic_error(400);
        assert_eq!(e["type"], "invalid_request_error", "{e}");
    }
    // Nesting past 128 in a pass-through field, a model over 256 bytes, a
    // repeated (escaped) key the gateway rewrites: 400 in the caller's shape.
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let long_model = "m".repeat(300);
    for (openai, anthropic) in [
        (
            format!(r#"{{"model":"{OPENAI_MODEL}","messages":[],"x":{deep}}}"#),
            format!(r#"{{"model":"{ANTHROPIC_MODEL}","max_tokens":5,"messages":[],"x":{deep}}}"#),
        ),
        (
            format!(r#"{{"model":"{long_model}","messages":[]}}"#),
            format!(r#"{{"model":"{long_model}","max_tokens":5,"messages":[]}}"#),
        ),
        (
            format!(
                r#"{{"model":"{OPENAI_MODEL}","messages":[],"stream":true,"stream_options":{{}},"stream\u005foptions":{{"include_usage":false}}}}"#
            ),
            format!(r#"{{"model":"{ANTHROPIC_MODEL}","max_tokens":5,"max_tokens":9,"messages":[]}}"#),
        ),
    ] {
        let r = stack
            .gw
            .request(&Req::chat(GATEWAY_KEY, &json!({})).body(openai.into_bytes()));
        r.assert_openai_error(400);
        let r = stack
            .gw
            .request(&Req::messages(GATEWAY_KEY, &json!({})).body(anthropic.into_bytes()));
        let e = r.assert_anthropic_error(400);
        assert_eq!(e["type"], "invalid_request_error", "{e}");
    }
    let rec = stack.gw.records().wait_for("400 on chat", |r| {
        r["status"] == 400 && r["route"] == "chat_completions"
    });
    assert_eq!(rec["outcome"], "rejected", "{rec}");
    assert_eq!(rec["tenant"], "acme", "{rec}");
    assert_eq!(stack.mock.requests(), 0);
}

fn missing_model_and_messages(d: Driver) {
    let stack = Stack::start(d);
    let no_model = json!({"messages": [{"role": "user", "content": "hi"}]});
    let no_messages = json!({"model": OPENAI_MODEL});
    stack
        .gw
        .request(&Req::chat(GATEWAY_KEY, &no_model))
        .assert_openai_error(400);
    stack
        .gw
        .request(&Req::chat(GATEWAY_KEY, &no_messages))
        .assert_openai_error(400);
    let no_model = json!({"max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let no_messages = json!({"model": ANTHROPIC_MODEL, "max_tokens": 10});
    stack
        .gw
        .request(&Req::messages(GATEWAY_KEY, &no_model))
        .assert_anthropic_error(400);
    stack
        .gw
        .request(&Req::messages(GATEWAY_KEY, &no_messages))
        .assert_anthropic_error(400);
    let recs = stack.gw.records().wait_count(4);
    assert!(
        recs.iter()
            .all(|r| r["status"] == 400 && r["outcome"] == "rejected"),
        "{recs:?}"
    );
    assert_eq!(stack.mock.requests(), 0);
}

fn unknown_model(d: Driver) {
    let stack = Stack::start(d);
    let r = stack
        .gw
        .request(&Req::chat(GATEWAY_KEY, &openai_body("gpt-no-such-model", false)));
    r.assert_openai_error(404);
    let r = stack.gw.request(&Req::messages(
        GATEWAY_KEY,
        &anthropic_body("claude-no-such-model", true),
    ));
    let e = r.assert_anthropic_error(404);
    assert_eq!(e["type"], "not_found_error", "{e}");
    // Another tenant's route is unknown to this one.
    let r = stack.gw.request(&Req::chat(
        GATEWAY_KEY,
        &openai_body(sluice_tests::stack::OTHER_TENANT_MODEL, false),
    ));
    r.assert_openai_error(404);
    let rec = stack
        .gw
        .records()
        .wait_for("404", |r| r["status"] == 404 && r["route"] == "messages");
    assert_eq!(rec["outcome"], "rejected", "{rec}");
    assert_eq!(rec["model"], "claude-no-such-model", "{rec}");
    assert_eq!(rec["stream"], true, "{rec}");
    assert_eq!(stack.mock.requests(), 0);
}

fn unknown_path(d: Driver) {
    let stack = Stack::start(d);
    stack
        .gw
        .request(&Req::get("/v1/nothing-here").bearer(GATEWAY_KEY))
        .assert_openai_error(404);
    stack
        .gw
        .request(&Req::post("/v2/chat/completions").bearer(GATEWAY_KEY).body("{}"))
        .assert_openai_error(404);
    stack.gw.request(&Req::get("/")).assert_openai_error(404);
    let r = stack.gw.request(
        &Req::post("/v1/complete")
            .header("x-api-key", GATEWAY_KEY)
            .header("anthropic-version", "2023-06-01")
            .body("{}"),
    );
    let e = r.assert_anthropic_error(404);
    assert_eq!(e["type"], "not_found_error", "{e}");
    let rec = stack
        .gw
        .records()
        .wait_for("404 on other", |r| r["status"] == 404 && r["route"] == "other");
    assert_eq!(rec["outcome"], "rejected", "{rec}");
}

fn body_too_large(d: Driver) {
    let stack = Stack::with(d, GatewayOpts::default().arg("--max-body-bytes", Some("4096")));
    let mut body = openai_body(OPENAI_MODEL, false);
    body["messages"][0]["content"] = json!("x".repeat(8000));
    stack
        .gw
        .request(&Req::chat(GATEWAY_KEY, &body))
        .assert_openai_error(413);
    let mut abody = anthropic_body(ANTHROPIC_MODEL, false);
    abody["messages"][0]["content"] = json!("x".repeat(8000));
    let e = stack
        .gw
        .request(&Req::messages(GATEWAY_KEY, &abody))
        .assert_anthropic_error(413);
    assert!(e["type"].is_string());
    // Chunked, where the size is only known while reading.
    stack
        .gw
        .request(&Req::chat(GATEWAY_KEY, &body).chunked(4))
        .assert_openai_error(413);
    // A chunk declared past the limit: 413 at once, without its bytes.
    let mut c = Conn::connect(stack.gw.addr);
    c.send(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {GATEWAY_KEY}\r\ntransfer-encoding: chunked\r\n\r\n100000\r\n{{\"model\""
        )
        .as_bytes(),
    );
    let asked = std::time::Instant::now();
    let r = c.try_read_response().expect("413 before the chunk came");
    r.assert_openai_error(413);
    assert!(asked.elapsed() < Duration::from_secs(5), "{:?}", asked.elapsed());
    assert!(c.closed_within(WAIT), "connection left open after 413");
    // Just under the limit still works.
    let r = stack.chat(&openai_body(OPENAI_MODEL, false), &[("x-mock-tokens", "2")]);
    assert_eq!(r.status(), 200, "{}", r.text());
    let rec = stack.gw.records().wait_for("413", |r| r["status"] == 413);
    assert_eq!(rec["outcome"], "rejected", "{rec}");
    assert_eq!(
        stack.mock.requests(),
        1,
        "only the small request reached the upstream"
    );
}

fn head_too_large(d: Driver) {
    let stack = Stack::start(d);
    let big = "a".repeat(20 * 1024);
    let req = Req::chat(GATEWAY_KEY, &openai_body(OPENAI_MODEL, false)).header("x-big", &big);
    let (r, mut c) = http::raw(stack.gw.addr, &req.to_bytes());
    r.assert_openai_error(431);
    assert!(c.closed_within(WAIT), "connection left open after 431");

    let mut req = Req::chat(GATEWAY_KEY, &openai_body(OPENAI_MODEL, false));
    for i in 0..150 {
        req = req.header(&format!("x-h{i}"), "v");
    }
    let (r, _) = http::raw(stack.gw.addr, &req.to_bytes());
    r.assert_openai_error(431);
    let rec = stack.gw.records().wait_for("431", |r| r["status"] == 431);
    assert_eq!(rec["outcome"], "rejected", "{rec}");
    assert_eq!(stack.mock.requests(), 0);
}

/// Sends `wire` and expects 400 in OpenAI's shape, then the connection closed.
#[track_caller]
fn expect_400_close(gw: &Gateway, what: &str, wire: &[u8]) {
    let mut c = Conn::connect(gw.addr);
    c.send(wire);
    let r = c
        .try_read_response()
        .unwrap_or_else(|| panic!("{what}: closed without a response"));
    assert_eq!(r.status(), 400, "{what}: {}", r.text());
    r.assert_openai_error(400);
    assert!(c.closed_within(WAIT), "{what}: the connection was left open");
}

fn framing_errors_close(d: Driver) {
    let stack = Stack::start(d);
    let gw = &stack.gw;
    let body = serde_json::to_string(&openai_body(OPENAI_MODEL, false)).unwrap();
    let head = |extra: &str| {
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {GATEWAY_KEY}\r\ncontent-type: application/json\r\n{extra}\r\n"
        )
    };
    let n = body.len();
    expect_400_close(
        gw,
        "content-length with transfer-encoding",
        format!(
            "{}{:x}\r\n{body}\r\n0\r\n\r\n",
            head(&format!("content-length: {n}\r\ntransfer-encoding: chunked\r\n")),
            n
        )
        .as_bytes(),
    );
    expect_400_close(
        gw,
        "transfer-encoding then content-length",
        format!(
            "{}{:x}\r\n{body}\r\n0\r\n\r\n",
            head(&format!("transfer-encoding: chunked\r\ncontent-length: {n}\r\n")),
            n
        )
        .as_bytes(),
    );
    expect_400_close(
        gw,
        "differing duplicate content-length",
        format!(
            "{}{body}",
            head(&format!("content-length: {n}\r\ncontent-length: {}\r\n", n + 1))
        )
        .as_bytes(),
    );
    expect_400_close(
        gw,
        "content-length list with differing values",
        format!("{}{body}", head(&format!("content-length: {n}, {}\r\n", n + 1))).as_bytes(),
    );
    expect_400_close(
        gw,
        "non-numeric content-length",
        format!("{}{body}", head("content-length: 12abc\r\n")).as_bytes(),
    );
    expect_400_close(
        gw,
        "bad chunk size",
        format!(
            "{}zz\r\n{body}\r\n0\r\n\r\n",
            head("transfer-encoding: chunked\r\n")
        )
        .as_bytes(),
    );
    expect_400_close(
        gw,
        "chunk data not followed by CRLF",
        format!("{}2\r\nabcd\r\n0\r\n\r\n", head("transfer-encoding: chunked\r\n")).as_bytes(),
    );
    expect_400_close(
        gw,
        "obs-fold",
        format!(
            "{}{body}",
            head(&format!(
                "x-folded: first\r\n second line\r\ncontent-length: {n}\r\n"
            ))
        )
        .as_bytes(),
    );
    expect_400_close(
        gw,
        "transfer-encoding gzip",
        format!(
            "{}{body}",
            head(&format!("transfer-encoding: gzip\r\ncontent-length: {n}\r\n"))
        )
        .as_bytes(),
    );
    expect_400_close(
        gw,
        "transfer-encoding gzip alone",
        format!("{}{body}", head("transfer-encoding: gzip\r\n")).as_bytes(),
    );
    expect_400_close(
        gw,
        "transfer-encoding gzip, chunked",
        format!(
            "{}{:x}\r\n{body}\r\n0\r\n\r\n",
            head("transfer-encoding: gzip, chunked\r\n"),
            n
        )
        .as_bytes(),
    );
    expect_400_close(
        gw,
        "a request line in the trailer section",
        format!(
            "{}{:x}\r\n{body}\r\n0\r\nGET / HTTP/1.1\r\n\r\n",
            head("transfer-encoding: chunked\r\n"),
            n
        )
        .as_bytes(),
    );
    // After all that the gateway still serves, on a fresh connection.
    let r = stack.chat(&openai_body(OPENAI_MODEL, true), &[("x-mock-tokens", "4")]);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(sse::openai_text(&sse::parse(&r.body)), vocab::text(4));
    assert_eq!(stack.mock.requests(), 1, "a refused request reached the upstream");
    let recs = stack.gw.records().wait_count(13);
    assert_eq!(
        recs.iter()
            .filter(|r| r["status"] == 400 && r["outcome"] == "rejected")
            .count(),
        12,
        "{recs:?}"
    );
}

/// A small deterministic generator (xorshift), so a failure is repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Sends `wire` (maybe in pieces), half-closes, and reads whatever comes
/// back until the gateway closes. Only the gateway staying up matters here.
fn throw(gw: &Gateway, wire: &[u8], pieces: usize) {
    let mut c = Conn::connect(gw.addr);
    let size = wire.len().div_ceil(pieces.max(1)).max(1);
    for piece in wire.chunks(size) {
        if !c.try_send(piece) {
            return;
        }
    }
    let _ = c.stream().shutdown(std::net::Shutdown::Write);
    // The gateway answers (400, 431, 408, ...) or just closes; either is fine.
    assert!(
        c.closed_within(WAIT),
        "the gateway neither answered nor closed: {:?}",
        String::from_utf8_lossy(c.buffered())
    );
}

fn garbage_barrage(d: Driver) {
    let mut stack = Stack::start(d);
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let valid = Req::chat(GATEWAY_KEY, &openai_body(OPENAI_MODEL, false))
        .header("x-mock-tokens", "2")
        .to_bytes();
    for i in 0..40 {
        let n = 1 + (rng.next() % 4096) as usize;
        throw(&stack.gw, &rng.bytes(n), 1 + i % 3);
    }
    // Truncated heads: a valid request cut anywhere, then closed.
    for _ in 0..30 {
        let cut = (rng.next() as usize) % valid.len();
        let mut c = Conn::connect(stack.gw.addr);
        c.try_send(&valid[..cut]);
        c.close();
    }
    // A valid head followed by random bytes in place of the body.
    for _ in 0..10 {
        let mut wire = Req::chat(GATEWAY_KEY, &json!({}))
            .header("content-length", "300")
            .body(Vec::new())
            .head_bytes();
        wire.extend(rng.bytes(300));
        throw(&stack.gw, &wire, 2);
    }
    let oddities: Vec<Vec<u8>> = vec![
        b"GET / HTTP/9.9\r\nhost: x\r\n\r\n".to_vec(),
        b"\r\n\r\n\r\n\r\n".to_vec(),
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 99999999999999999999999\r\n\r\n".to_vec(),
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: -1\r\n\r\n".to_vec(),
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffffffff\r\n".to_vec(),
        b"GET /v1/models HTTP/1.1\r\nhost: x\r\nhost: y\r\n\r\n".to_vec(),
        b"GET /v1/models HTTP/1.1\r\n\r\n".to_vec(),
        b"GET\0/ HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\nhost: x\n\n".to_vec(),
        b"GET / HTTP/1.1\rhost: x\r\r".to_vec(),
        format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(64 * 1024)).into_bytes(),
        format!("GET / HTTP/1.1\r\nhost: x\r\nx-huge: {}\r\n\r\n", "b".repeat(200 * 1024)).into_bytes(),
        [&b"GET / HTTP/1.1\r\nhost: x\r\nx-bin: "[..], &[0xff, 0xfe, 0x80, 0x00], b"\r\n\r\n"].concat(),
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
    ];
    for wire in &oddities {
        throw(&stack.gw, wire, 1);
        throw(&stack.gw, wire, 7);
    }
    // Many requests pipelined on one connection, the last one garbage.
    let mut wire = Vec::new();
    for _ in 0..5 {
        wire.extend_from_slice(&valid);
    }
    wire.extend_from_slice(b"\x00\x01garbage\r\n\r\n");
    let mut c = Conn::connect(stack.gw.addr);
    c.send(&wire);
    for i in 0..5 {
        let r = c.read_response();
        assert_eq!(r.status(), 200, "pipelined request {i}: {}", r.text());
        assert_eq!(r.json()["choices"][0]["message"]["content"], vocab::text(2));
    }
    let last = c.try_read_response();
    if let Some(r) = last {
        assert_eq!(r.status(), 400, "{}", r.text());
    }
    assert!(c.closed_within(WAIT));

    stack.gw.assert_alive();
    let r = stack.chat(&openai_body(OPENAI_MODEL, true), &[("x-mock-tokens", "6")]);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(sse::openai_text(&sse::parse(&r.body)), vocab::text(6));
    assert_eq!(stack.gw.request(&Req::get("/healthz")).status(), 200);
    stack.gw.wait_metric("sluice_active_streams", 0.0);
    let stderr = String::from_utf8_lossy(&stack.gw.proc.stderr()).into_owned();
    assert!(!stderr.contains("panicked"), "the data plane panicked:\n{stderr}");
}

fn slow_head_times_out(d: Driver) {
    let config = "[limits]\nheader_timeout_ms = 1000\nbody_timeout_ms = 1000\n";
    let stack = Stack::with(
        d,
        GatewayOpts {
            config: Some(config.into()),
            ..GatewayOpts::default()
        },
    );
    // A head that never ends, one byte now and then well within the limit.
    let mut c = Conn::connect(stack.gw.addr);
    c.send(b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n");
    let mut trickled = 0;
    let closed = loop {
        if c.closed_within(Duration::from_millis(200)) {
            break true;
        }
        if !c.try_send(b"x") {
            break true;
        }
        trickled += 1;
        if trickled > 150 {
            break false;
        }
    };
    assert!(closed, "a head trickled for 30 s was never timed out");
    let got = String::from_utf8_lossy(c.buffered()).into_owned();
    assert!(
        got.is_empty() || got.starts_with("HTTP/1.1 408"),
        "expected 408 or a bare close, got {got:?}"
    );

    // A body that stops halfway.
    let req = Req::chat(GATEWAY_KEY, &openai_body(OPENAI_MODEL, false));
    let wire = req.to_bytes();
    let mut c = Conn::connect(stack.gw.addr);
    c.send(&wire[..wire.len() - 10]);
    let r = c.try_read_response();
    if let Some(r) = r {
        assert_eq!(r.status(), 408, "{}", r.text());
    }
    assert!(c.closed_within(WAIT));
    // Still serving.
    let r = stack.chat(&openai_body(OPENAI_MODEL, false), &[("x-mock-tokens", "2")]);
    assert_eq!(r.status(), 200, "{}", r.text());
}

fn bad_config_exits_64(d: Driver) {
    let mut failures = Vec::new();
    let mut check = |what: &str, snapshot: &str, opts: GatewayOpts| {
        let (status, stderr) = Gateway::run_to_exit(d, snapshot, opts);
        let lines = stderr.lines().filter(|l| !l.trim().is_empty()).count();
        if status.code() != Some(64) || lines != 1 {
            failures.push(format!(
                "{what}: exit {status}, {lines} stderr lines (want 64 and one line):\n{stderr}"
            ));
        }
    };
    check(
        "snapshot is not TOML",
        "this is [not toml",
        GatewayOpts::default(),
    );
    check(
        "unknown field in the snapshot",
        "[[tenants]]\nid = \"a\"\ncolour = \"red\"\n",
        GatewayOpts::default(),
    );
    let unknown_upstream = "[[tenants]]\nid = \"a\"\n[[provider_keys]]\nid = \"pk\"\ntenant = \"a\"\napi_key_env = \"SLUICE_TEST_KEY\"\n[[routes]]\nmodel = \"m\"\ntargets = [{ upstream = \"nope\", provider_key = \"pk\" }]\n";
    check(
        "route to an unknown upstream",
        unknown_upstream,
        GatewayOpts::default().env("SLUICE_TEST_KEY", "x"),
    );
    let missing_env = "[[tenants]]\nid = \"a\"\n[[upstreams]]\nname = \"u\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9\"\n[[provider_keys]]\nid = \"pk\"\ntenant = \"a\"\napi_key_env = \"SLUICE_TEST_SURELY_UNSET_VAR\"\n[[routes]]\ntenant = \"a\"\nmodel = \"m\"\ntargets = [{ upstream = \"u\", provider_key = \"pk\" }]\n";
    check("provider key env var unset", missing_env, GatewayOpts::default());
    check(
        "unknown option in --config",
        "",
        GatewayOpts {
            config: Some("no_such_option = 1\n".into()),
            ..GatewayOpts::default()
        },
    );
    assert!(
        failures.is_empty(),
        "bad configuration must exit 64 with one line on stderr:\n{}",
        failures.join("\n---\n")
    );
}
