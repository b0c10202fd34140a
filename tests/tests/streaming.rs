//! The happy paths, on both drivers: streamed and non-streamed OpenAI and
//! Anthropic requests through the data plane to the mock, with the text
//! reassembled by a client and the record checked field by field.

// Test code: a failed unwrap is a failed test. (clippy.toml's test allowances
// cover #[test] functions only, not the per-case functions they call.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use sluice_tests::http::Req;
use sluice_tests::records::assert_shape;
use sluice_tests::stack::{
    anthropic_body, openai_body, Stack, ANTHROPIC_MODEL, GATEWAY_KEY, KEY_ID, OPENAI_MODEL,
    OTHER_TENANT_MODEL, PROVIDER_KEY, SHARED_MODEL, TENANT,
};
use sluice_tests::{both_drivers, sse, vocab, Driver};

both_drivers!(
    openai_stream_with_usage,
    openai_stream_without_usage,
    anthropic_stream,
    openai_non_streamed,
    anthropic_non_streamed,
    split_bytes_1,
    split_utf8,
    keep_alive,
    chunked_request_body,
    expect_100_continue,
    models_list,
    metrics,
    healthz,
    absolute_form_target,
);

/// The record of the one request a test made on `route`.
fn record_for(stack: &Stack, route: &str) -> Value {
    let r = stack
        .gw
        .records()
        .wait_for(&format!("for route {route}"), |r| r["route"] == route);
    assert_shape(&r);
    r
}

/// Checks what every successful record shares.
#[track_caller]
fn assert_ok_record(r: &Value, route: &str, model: &str, upstream: &str, stream: bool) {
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["outcome"], "ok", "{r}");
    assert_eq!(r["route"], route, "{r}");
    assert_eq!(r["tenant"], TENANT, "{r}");
    assert_eq!(r["key_id"], KEY_ID, "{r}");
    assert_eq!(r["model"], model, "{r}");
    assert_eq!(r["upstream"], upstream, "{r}");
    assert_eq!(r["stream"], stream, "{r}");
    assert_eq!(r["attempts"], 1, "{r}");
    assert!(r["error"].is_null(), "{r}");
    assert!(r["bytes_in"].as_u64().unwrap() > 0, "{r}");
    assert!(r["bytes_out"].as_u64().unwrap() > 0, "{r}");
    assert!(r["ttfb_us"].is_u64(), "{r}");
}

/// Checks that the mock got the tenant's provider key and not the caller's
/// gateway key, in the header the provider's dialect uses.
#[track_caller]
fn assert_key_injected(stack: &Stack, anthropic: bool) {
    let last = stack.mock.last();
    let headers = &last["headers"];
    if anthropic {
        assert_eq!(headers["x-api-key"], PROVIDER_KEY, "{last}");
        assert!(headers["anthropic-version"].is_string(), "{last}");
    } else {
        assert_eq!(
            headers["authorization"],
            format!("Bearer {PROVIDER_KEY}"),
            "{last}"
        );
    }
    assert!(
        !last.to_string().contains(GATEWAY_KEY),
        "the gateway key reached the upstream: {last}"
    );
}

fn openai_stream_with_usage(d: Driver) {
    let stack = Stack::start(d);
    let mut body = openai_body(OPENAI_MODEL, true);
    body["stream_options"] = json!({"include_usage": true});
    let r = stack.chat(&body, &[("x-mock-tokens", "24")]);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("text/event-stream"),
        "{:?}",
        r.head
    );
    assert!(r.head.is_chunked(), "{:?}", r.head);
    assert!(r.complete, "stream ended without its zero-size chunk");
    let events = sse::parse(&r.body);
    assert_eq!(sse::openai_text(&events), vocab::text(24));
    assert!(sse::openai_done(&events), "no [DONE] at the end");
    let (prompt, completion) = sse::openai_usage(&events).expect("a usage chunk");
    assert_eq!(completion, 24);

    let rec = record_for(&stack, "chat_completions");
    assert_ok_record(&rec, "chat_completions", OPENAI_MODEL, "mock", true);
    assert_eq!(
        rec["events"],
        events.len() as u64,
        "events counted by the gateway: {rec}"
    );
    assert_eq!(rec["usage"]["input_tokens"], prompt, "{rec}");
    assert_eq!(rec["usage"]["output_tokens"], completion, "{rec}");
    assert_key_injected(&stack, false);
}

fn openai_stream_without_usage(d: Driver) {
    let stack = Stack::start(d);
    let r = stack.chat(&openai_body(OPENAI_MODEL, true), &[("x-mock-tokens", "10")]);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert!(r.complete);
    let events = sse::parse(&r.body);
    assert_eq!(sse::openai_text(&events), vocab::text(10));
    assert!(sse::openai_done(&events));
    // The gateway may ask the provider for usage to meter the stream, but
    // the client must not see a usage report it did not ask for.
    assert_eq!(
        sse::openai_usage(&events),
        None,
        "a usage chunk appeared: {}",
        r.text()
    );

    let rec = record_for(&stack, "chat_completions");
    assert_ok_record(&rec, "chat_completions", OPENAI_MODEL, "mock", true);
    assert!(rec["events"].as_u64().unwrap() > 0, "{rec}");
    // The gateway meters the stream all the same (it asks the provider for
    // usage and hides that event from a client that did not ask).
    assert_eq!(rec["usage"]["output_tokens"], 10, "{rec}");
    assert!(rec["usage"]["input_tokens"].as_u64().unwrap() > 0, "{rec}");
}

fn anthropic_stream(d: Driver) {
    let stack = Stack::start(d);
    let r = stack.messages(&anthropic_body(ANTHROPIC_MODEL, true), &[("x-mock-tokens", "20")]);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("text/event-stream"),
        "{:?}",
        r.head
    );
    assert!(r.complete);
    let events = sse::parse(&r.body);
    assert_eq!(sse::anthropic_text(&events), vocab::text(20));
    assert!(sse::anthropic_done(&events), "no message_stop at the end");
    let (input, output) = sse::anthropic_usage(&events).expect("usage in message_start and message_delta");
    assert_eq!(output, 20);

    let rec = record_for(&stack, "messages");
    assert_ok_record(&rec, "messages", ANTHROPIC_MODEL, "mock-anthropic", true);
    assert_eq!(rec["events"], events.len() as u64, "{rec}");
    assert_eq!(rec["usage"]["input_tokens"], input, "{rec}");
    assert_eq!(rec["usage"]["output_tokens"], output, "{rec}");
    assert_key_injected(&stack, true);
}

fn openai_non_streamed(d: Driver) {
    let stack = Stack::start(d);
    let r = stack.chat(&openai_body(OPENAI_MODEL, false), &[("x-mock-tokens", "17")]);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert!(r.complete);
    let v = r.json();
    assert_eq!(v["object"], "chat.completion", "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], vocab::text(17), "{v}");
    assert_eq!(v["usage"]["completion_tokens"], 17, "{v}");

    let rec = record_for(&stack, "chat_completions");
    assert_ok_record(&rec, "chat_completions", OPENAI_MODEL, "mock", false);
    assert_eq!(rec["usage"]["input_tokens"], v["usage"]["prompt_tokens"], "{rec}");
    assert_eq!(rec["usage"]["output_tokens"], 17, "{rec}");
    assert_key_injected(&stack, false);
}

fn anthropic_non_streamed(d: Driver) {
    let stack = Stack::start(d);
    let r = stack.messages(&anthropic_body(ANTHROPIC_MODEL, false), &[("x-mock-tokens", "9")]);
    assert_eq!(r.status(), 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "message", "{v}");
    assert_eq!(v["content"][0]["text"], vocab::text(9), "{v}");

    let rec = record_for(&stack, "messages");
    assert_ok_record(&rec, "messages", ANTHROPIC_MODEL, "mock-anthropic", false);
    assert_eq!(rec["usage"]["input_tokens"], v["usage"]["input_tokens"], "{rec}");
    assert_eq!(rec["usage"]["output_tokens"], 9, "{rec}");
}

fn split_bytes_1(d: Driver) {
    let stack = Stack::start(d);
    let mut body = openai_body(OPENAI_MODEL, true);
    body["stream_options"] = json!({"include_usage": true});
    let r = stack.chat(&body, &[("x-mock-tokens", "20"), ("x-mock-split", "bytes:1")]);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert!(r.complete);
    // Passed through byte for byte: the mock's one-byte chunks arrive as such.
    assert_eq!(r.chunks, r.body.len(), "chunk framing was not passed through");
    let events = sse::parse(&r.body);
    assert_eq!(sse::openai_text(&events), vocab::text(20));
    let (prompt, completion) = sse::openai_usage(&events).expect("usage chunk");
    let rec = record_for(&stack, "chat_completions");
    assert_ok_record(&rec, "chat_completions", OPENAI_MODEL, "mock", true);
    assert_eq!(rec["events"], events.len() as u64, "{rec}");
    assert_eq!(rec["usage"]["input_tokens"], prompt, "{rec}");
    assert_eq!(rec["usage"]["output_tokens"], completion, "{rec}");

    let r = stack.messages(
        &anthropic_body(ANTHROPIC_MODEL, true),
        &[("x-mock-tokens", "20"), ("x-mock-split", "bytes:1")],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.chunks, r.body.len());
    let events = sse::parse(&r.body);
    assert_eq!(sse::anthropic_text(&events), vocab::text(20));
    let rec = record_for(&stack, "messages");
    assert_eq!(rec["usage"]["output_tokens"], 20, "{rec}");
}

fn split_utf8(d: Driver) {
    let stack = Stack::start(d);
    let mut body = openai_body(OPENAI_MODEL, true);
    body["stream_options"] = json!({"include_usage": true});
    let r = stack.chat(&body, &[("x-mock-tokens", "32"), ("x-mock-split", "utf8")]);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert!(r.complete);
    let events = sse::parse(&r.body);
    assert_eq!(sse::openai_text(&events), vocab::text(32));
    let rec = record_for(&stack, "chat_completions");
    assert_eq!(rec["usage"]["output_tokens"], 32, "{rec}");
    assert_eq!(rec["events"], events.len() as u64, "{rec}");

    let r = stack.messages(
        &anthropic_body(ANTHROPIC_MODEL, true),
        &[("x-mock-tokens", "32"), ("x-mock-split", "utf8")],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    let events = sse::parse(&r.body);
    assert_eq!(sse::anthropic_text(&events), vocab::text(32));
    let rec = record_for(&stack, "messages");
    assert_eq!(rec["usage"]["output_tokens"], 32, "{rec}");
}

fn keep_alive(d: Driver) {
    let stack = Stack::start(d);
    let mut c = stack.gw.connect();
    let check = |r: &sluice_tests::Response, what: &str| {
        assert_eq!(r.status(), 200, "{what}: {}", r.text());
        assert!(r.complete, "{what}: incomplete");
        assert!(
            !r.head.closes(),
            "{what}: the gateway closed a keep-alive connection: {:?}",
            r.head
        );
    };
    let r =
        c.roundtrip(&Req::chat(GATEWAY_KEY, &openai_body(OPENAI_MODEL, false)).header("x-mock-tokens", "3"));
    check(&r, "non-streamed chat");
    assert_eq!(r.json()["choices"][0]["message"]["content"], vocab::text(3));
    let r =
        c.roundtrip(&Req::chat(GATEWAY_KEY, &openai_body(OPENAI_MODEL, true)).header("x-mock-tokens", "5"));
    check(&r, "streamed chat");
    assert_eq!(sse::openai_text(&sse::parse(&r.body)), vocab::text(5));
    let r =
        c.roundtrip(&Req::chat(GATEWAY_KEY, &openai_body(OPENAI_MODEL, false)).header("x-mock-tokens", "4"));
    check(&r, "chat after a stream");
    assert_eq!(r.json()["choices"][0]["message"]["content"], vocab::text(4));
    let r = c.roundtrip(&Req::get("/v1/models").bearer(GATEWAY_KEY));
    check(&r, "models");
    let r = c.roundtrip(
        &Req::messages(GATEWAY_KEY, &anthropic_body(ANTHROPIC_MODEL, true)).header("x-mock-tokens", "6"),
    );
    check(&r, "streamed messages");
    assert_eq!(sse::anthropic_text(&sse::parse(&r.body)), vocab::text(6));
    let r = c.roundtrip(
        &Req::messages(GATEWAY_KEY, &anthropic_body(ANTHROPIC_MODEL, false)).header("x-mock-tokens", "2"),
    );
    check(&r, "messages after a stream");
    assert_eq!(r.json()["content"][0]["text"], vocab::text(2));
    // A gateway error on a keep-alive connection whose body was read keeps it open too.
    let r = c.roundtrip(&Req::chat(GATEWAY_KEY, &openai_body("no-such-model", false)));
    assert_eq!(r.status(), 404, "{}", r.text());
    let r =
        c.roundtrip(&Req::chat(GATEWAY_KEY, &openai_body(OPENAI_MODEL, true)).header("x-mock-tokens", "7"));
    check(&r, "stream after an error");
    assert_eq!(sse::openai_text(&sse::parse(&r.body)), vocab::text(7));

    let recs = stack.gw.records().wait_count(8);
    assert_eq!(
        recs.iter()
            .filter(|r| r["status"] == 200 && r["outcome"] == "ok")
            .count(),
        7,
        "{recs:?}"
    );
}

fn chunked_request_body(d: Driver) {
    let stack = Stack::start(d);
    // Non-streamed, so the gateway has no reason to touch the body.
    let body = openai_body(OPENAI_MODEL, false);
    let req = Req::chat(GATEWAY_KEY, &body)
        .header("x-mock-tokens", "8")
        .chunked(7);
    let r = stack.gw.request(&req);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.json()["choices"][0]["message"]["content"], vocab::text(8));
    let last = stack.mock.last();
    let forwarded: Value =
        serde_json::from_str(last["body"].as_str().unwrap()).expect("forwarded body is JSON");
    assert_eq!(forwarded, body, "the de-chunked body reached the upstream intact");
    assert!(last["headers"].get("transfer-encoding").is_none(), "{last}");
    let rec = record_for(&stack, "chat_completions");
    assert_ok_record(&rec, "chat_completions", OPENAI_MODEL, "mock", false);

    // Streamed, chunked.
    let req = Req::chat(GATEWAY_KEY, &openai_body(OPENAI_MODEL, true))
        .header("x-mock-tokens", "6")
        .chunked(3);
    let r = stack.gw.request(&req);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(sse::openai_text(&sse::parse(&r.body)), vocab::text(6));

    // The same with a body cut into one-byte chunks and chunk extensions.
    let raw_body = serde_json::to_vec(&openai_body(OPENAI_MODEL, false)).unwrap();
    let mut wire = Req::chat(GATEWAY_KEY, &openai_body(OPENAI_MODEL, false))
        .header("x-mock-tokens", "2")
        .without("content-length")
        .header("transfer-encoding", "chunked")
        .body(Vec::new())
        .head_bytes();
    for (i, b) in raw_body.iter().enumerate() {
        if i % 5 == 0 {
            wire.extend_from_slice(b"1;ext=1\r\n");
        } else {
            wire.extend_from_slice(b"1\r\n");
        }
        wire.push(*b);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    let mut c = stack.gw.connect();
    c.send(&wire);
    let r = c.read_response();
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.json()["choices"][0]["message"]["content"], vocab::text(2));
}

fn expect_100_continue(d: Driver) {
    let stack = Stack::start(d);
    let req = Req::chat(GATEWAY_KEY, &openai_body(OPENAI_MODEL, true))
        .header("x-mock-tokens", "5")
        .header("expect", "100-continue");
    let mut c = stack.gw.connect();
    c.send(&req.head_bytes());
    let interim = c.read_head();
    assert_eq!(
        interim.status, 100,
        "expected `HTTP/1.1 100 Continue` before the body was sent: {interim:?}"
    );
    c.send(&req.body_bytes());
    let r = c.read_response();
    assert_eq!(r.status(), 200, "{}", r.text());
    assert!(r.interim.is_empty(), "a second interim response: {:?}", r.interim);
    assert_eq!(sse::openai_text(&sse::parse(&r.body)), vocab::text(5));
    let last = stack.mock.last();
    assert!(
        last["headers"].get("expect").is_none(),
        "Expect was forwarded upstream: {last}"
    );
    record_for(&stack, "chat_completions");
}

fn models_list(d: Driver) {
    let stack = Stack::start(d);
    let ids = |v: &Value| -> Vec<String> {
        let mut ids: Vec<String> = v["data"]
            .as_array()
            .expect("data is a list")
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let mut want = vec![
        ANTHROPIC_MODEL.to_owned(),
        OPENAI_MODEL.to_owned(),
        SHARED_MODEL.to_owned(),
    ];
    want.sort();

    let r = stack.gw.request(&Req::get("/v1/models").bearer(GATEWAY_KEY));
    assert_eq!(r.status(), 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "list", "{v}");
    assert_eq!(ids(&v), want, "{v}");
    assert!(
        !r.text().contains(OTHER_TENANT_MODEL),
        "another tenant's route is listed: {v}"
    );

    // As the Anthropic SDK asks for it.
    let r = stack.gw.request(
        &Req::get("/v1/models")
            .header("x-api-key", GATEWAY_KEY)
            .header("anthropic-version", "2023-06-01"),
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    let v = r.json();
    assert_eq!(ids(&v), want, "{v}");
    assert_eq!(v["has_more"], false, "{v}");

    // The other tenant sees its own route and the shared one.
    let r = stack
        .gw
        .request(&Req::get("/v1/models").bearer("sk-sluice-other-tenant"));
    assert_eq!(r.status(), 200, "{}", r.text());
    let mut other = vec![OTHER_TENANT_MODEL.to_owned(), SHARED_MODEL.to_owned()];
    other.sort();
    assert_eq!(ids(&r.json()), other);

    // Without a key: 401.
    let r = stack.gw.request(&Req::get("/v1/models"));
    r.assert_openai_error(401);

    let rec = stack.gw.records().wait_for("for models, 200", |r| {
        r["route"] == "models" && r["status"] == 200
    });
    assert_eq!(rec["tenant"], TENANT, "{rec}");
}

fn metrics(d: Driver) {
    let stack = Stack::start(d);
    let r = stack.chat(&openai_body(OPENAI_MODEL, true), &[("x-mock-tokens", "3")]);
    assert_eq!(r.status(), 200, "{}", r.text());
    let r = stack
        .gw
        .request(&Req::chat("sk-sluice-nope", &openai_body(OPENAI_MODEL, true)));
    assert_eq!(r.status(), 401);
    let r = stack.messages(&anthropic_body(ANTHROPIC_MODEL, false), &[]);
    assert_eq!(r.status(), 200, "{}", r.text());
    stack.gw.records().wait_count(3);

    stack.gw.wait_metric(
        "sluice_requests_total{route=\"chat_completions\",status=\"200\"}",
        1.0,
    );
    let text = stack.gw.metrics();
    let get = |s: &str| sluice_tests::gateway::sample(&text, s);
    assert_eq!(
        get("sluice_requests_total{route=\"chat_completions\",status=\"401\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        get("sluice_requests_total{route=\"messages\",status=\"200\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(get("sluice_active_streams"), Some(0.0), "{text}");
    assert!(
        get("sluice_client_received_bytes_total").unwrap_or(0.0) > 0.0,
        "{text}"
    );
    assert!(
        text.contains("# TYPE sluice_upstream_ttfb_seconds histogram"),
        "{text}"
    );
    assert!(
        get("sluice_upstream_ttfb_seconds_count").unwrap_or(0.0) >= 2.0,
        "{text}"
    );

    // One driver line per worker (the stack runs two).
    for worker in 0..2 {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("sluice_worker_driver_info{{worker=\"{worker}\"")))
            .unwrap_or_else(|| panic!("no driver line for worker {worker}:\n{text}"));
        match d {
            Driver::Epoll => assert!(line.contains("driver=\"epoll\""), "{line}"),
            // io_uring where the kernel allows it, epoll otherwise; never unknown.
            Driver::Uring => assert!(
                line.contains("driver=\"io_uring\"") || line.contains("driver=\"epoll\""),
                "{line}"
            ),
        }
    }
}

/// `/healthz` answers on both listeners; on the client listener it leaves a
/// record like every other request, `HEAD` gets no body, and the
/// connection carries the next request.
fn healthz(d: Driver) {
    let stack = Stack::start(d);
    let r = stack.gw.request(&Req::get("/healthz"));
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.text(), "ok\n");
    let rec = stack.gw.records().wait_for("healthz", |r| r["route"] == "health");
    assert_eq!(rec["status"], 200, "{rec}");
    assert_eq!(rec["outcome"], "ok", "{rec}");
    assert_shape(&rec);
    let mut c = sluice_tests::http::Conn::connect(stack.gw.addr);
    c.send(b"HEAD /healthz HTTP/1.1\r\nhost: gw\r\n\r\nGET /healthz HTTP/1.1\r\nhost: gw\r\n\r\n");
    let head = c.read_head();
    assert_eq!(head.status, 200);
    let (body, _, _) = c.read_body(&head, true);
    assert!(body.is_empty(), "HEAD has no body");
    let r = c.read_response();
    assert_eq!((r.status(), r.text()), (200, "ok\n".to_string()));
    let r = sluice_tests::http::request(stack.gw.admin, &Req::get("/healthz"));
    assert_eq!(r.status(), 200, "{}", r.text());
}

/// RFC 9112 §3.2.2: a server must accept a request target in absolute form;
/// the upstream gets origin form.
fn absolute_form_target(d: Driver) {
    let stack = Stack::start(d);
    let url = format!("http://{}/v1/chat/completions", stack.gw.addr);
    let r = stack.gw.request(
        &Req::new("POST", &url)
            .bearer(GATEWAY_KEY)
            .json(&openai_body(OPENAI_MODEL, true))
            .header("x-mock-tokens", "4"),
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(sse::openai_text(&sse::parse(&r.body)), vocab::text(4));
    let r = stack
        .gw
        .request(&Req::get("http://gw/v1/models").bearer(GATEWAY_KEY));
    assert_eq!(r.status(), 200, "{}", r.text());
    // Absolute form without a path names nothing.
    assert_eq!(
        stack
            .gw
            .request(&Req::get("http://gw").bearer(GATEWAY_KEY))
            .status(),
        400
    );
}
