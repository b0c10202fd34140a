//! The endpoints beside chat and messages, on both drivers: OpenAI paths
//! without `/v1` (a base URL given without it), `POST /v1/embeddings`,
//! `GET /v1/models/{id}`, and
//! Anthropic's `POST /v1/messages/count_tokens`, request bodies with a
//! `Content-Encoding` — each answered in the caller's shape and recorded
//! like every other request.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use sluice_tests::http::Req;
use sluice_tests::metering::{self, credit, policy};
use sluice_tests::records::assert_shape;
use sluice_tests::stack::{self, openai_body, Stack, ANTHROPIC_MODEL, GATEWAY_KEY, OPENAI_MODEL, TENANT};
use sluice_tests::{both_drivers, sse, vocab, Driver, GatewayOpts};
use std::io::Write;

both_drivers!(
    a_base_url_without_v1,
    one_model,
    count_tokens,
    count_tokens_needs_a_route,
    compressed_bodies,
    compressed_body_refusals,
    compressed_body_with_pii_is_redacted,
    embeddings,
    responses,
    responses_policed_and_limited,
);

/// `/chat/completions` (the openai SDK given `http://host` as base URL)
/// reaches the provider at its real path, the query kept.
fn a_base_url_without_v1(d: Driver) {
    let stack = Stack::start(d);
    let r = stack.gw.request(
        &Req::post("/chat/completions?trace=1")
            .bearer(GATEWAY_KEY)
            .json(&openai_body(OPENAI_MODEL, true))
            .header("x-mock-tokens", "3"),
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(sse::openai_text(&sse::parse(&r.body)), vocab::text(3));
    let last = stack.mock.last();
    assert_eq!(last["path"], "/v1/chat/completions?trace=1", "{last}");
    let rec = stack
        .gw
        .records()
        .wait_for("chat", |r| r["route"] == "chat_completions");
    assert_eq!(rec["status"], 200, "{rec}");
    assert_shape(&rec);
    // `/models` likewise.
    let r = stack.gw.request(&Req::get("/models").bearer(GATEWAY_KEY));
    assert_eq!(r.status(), 200, "{}", r.text());
}

/// `GET /v1/models/{id}`: the model when the key may use it, else 404 in
/// the caller's shape; never forwarded.
fn one_model(d: Driver) {
    let stack = Stack::start(d);
    for path in [
        format!("/v1/models/{OPENAI_MODEL}"),
        format!("/models/{OPENAI_MODEL}"),
    ] {
        let r = stack.gw.request(&Req::get(&path).bearer(GATEWAY_KEY));
        assert_eq!(r.status(), 200, "{}", r.text());
        let v = r.json();
        assert_eq!(v["id"], OPENAI_MODEL, "{v}");
        assert_eq!(v["object"], "model", "{v}");
        assert_eq!(v["type"], "model", "{v}");
    }
    // Percent-encoded ids decode.
    let encoded = OPENAI_MODEL.replace('-', "%2D");
    let r = stack
        .gw
        .request(&Req::get(&format!("/v1/models/{encoded}")).bearer(GATEWAY_KEY));
    assert_eq!(r.json()["id"], OPENAI_MODEL);
    let r = stack
        .gw
        .request(&Req::get("/v1/models/no-such-model").bearer(GATEWAY_KEY));
    let err = r.assert_openai_error(404);
    assert!(
        err["message"].as_str().unwrap().contains("no-such-model"),
        "{err}"
    );
    let r = stack.gw.request(
        &Req::get("/v1/models/no-such-model")
            .header("x-api-key", GATEWAY_KEY)
            .header("anthropic-version", "2023-06-01"),
    );
    r.assert_anthropic_error(404);
    // Unauthenticated: 401, whatever the model.
    stack
        .gw
        .request(&Req::get(&format!("/v1/models/{OPENAI_MODEL}")))
        .assert_openai_error(401);
    assert_eq!(stack.mock.requests(), 0, "model details are the gateway's own");
    let recs = stack.gw.records().wait_count(6);
    let ok: Vec<_> = recs
        .iter()
        .filter(|r| r["route"] == "model" && r["status"] == 200)
        .collect();
    assert_eq!(ok.len(), 3, "{recs:?}");
    assert!(ok
        .iter()
        .all(|r| r["model"] == OPENAI_MODEL && r["tenant"] == TENANT));
}

/// `POST /v1/messages/count_tokens` goes to the model's Anthropic upstream;
/// it is recorded with the tokens counted and costs nothing.
fn count_tokens(d: Driver) {
    let stack = Stack::start(d);
    let body = json!({
        "model": ANTHROPIC_MODEL,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "Count the tokens of this sentence, please."}],
    });
    let r = stack.gw.request(
        &Req::post("/v1/messages/count_tokens")
            .header("x-api-key", GATEWAY_KEY)
            .header("anthropic-version", "2023-06-01")
            .json(&body),
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    let n = r.json()["input_tokens"].as_u64().unwrap();
    assert!(n > 0);
    let last = stack.mock.last();
    assert_eq!(last["path"], "/v1/messages/count_tokens", "{last}");
    let rec = stack
        .gw
        .records()
        .wait_for("count_tokens", |r| r["route"] == "count_tokens");
    assert_shape(&rec);
    assert_eq!(rec["status"], 200, "{rec}");
    assert_eq!(rec["outcome"], "ok", "{rec}");
    assert_eq!(rec["model"], ANTHROPIC_MODEL, "{rec}");
    assert!(rec["prompt_tokens_counted"].as_u64().unwrap() > 0, "{rec}");
    assert_eq!(rec["cost_micros"], 0, "counting tokens is free: {rec}");
}

/// A model without a route is refused like any other, in Anthropic's shape.
fn count_tokens_needs_a_route(d: Driver) {
    let stack = Stack::start(d);
    let r = stack.gw.request(
        &Req::post("/v1/messages/count_tokens")
            .header("x-api-key", GATEWAY_KEY)
            .json(&json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]})),
    );
    r.assert_anthropic_error(404);
    let r = stack.gw.request(
        &Req::post("/v1/messages/count_tokens")
            .header("x-api-key", GATEWAY_KEY)
            .json(&json!({"model": ANTHROPIC_MODEL})),
    );
    r.assert_anthropic_error(400);
    assert_eq!(stack.mock.requests(), 0);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn br(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
    w.write_all(data).unwrap();
    drop(w);
    out
}

fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

/// A body sent with `Content-Encoding` is read, policed and metered
/// decoded, and reaches the provider decoded, without the header.
fn compressed_bodies(d: Driver) {
    let stack = Stack::start(d);
    let plain = serde_json::to_vec(&openai_body(OPENAI_MODEL, false)).unwrap();
    for (coding, body) in [
        ("gzip", gzip(&plain)),
        ("br", br(&plain)),
        ("zstd", zstd(&plain)),
        ("gzip, br", br(&gzip(&plain))),
        ("identity", plain.clone()),
    ] {
        let r = stack.gw.request(
            &Req::post("/v1/chat/completions")
                .bearer(GATEWAY_KEY)
                .header("content-type", "application/json")
                .header("content-encoding", coding)
                .header("x-mock-tokens", "2")
                .body(body),
        );
        assert_eq!(r.status(), 200, "{coding}: {}", r.text());
        assert_eq!(
            r.json()["choices"][0]["message"]["content"],
            vocab::text(2),
            "{coding}"
        );
        let last = stack.mock.last();
        assert_eq!(last["body"].as_str().unwrap().as_bytes(), &plain[..], "{coding}");
        assert!(
            last["headers"].get("content-encoding").is_none(),
            "{coding}: {last}"
        );
    }
    let recs = stack.gw.records().wait_count(5);
    assert!(
        recs.iter()
            .all(|r| r["status"] == 200 && r["prompt_tokens_counted"].as_u64().unwrap() > 0),
        "{recs:?}"
    );
}

/// Unknown codings, corrupt bytes and decompression bombs are refused in
/// the caller's shape, and nothing is forwarded.
fn compressed_body_refusals(d: Driver) {
    let stack = Stack::start(d);
    let plain = serde_json::to_vec(&openai_body(OPENAI_MODEL, false)).unwrap();
    let send = |coding: &str, body: Vec<u8>| {
        stack.gw.request(
            &Req::post("/v1/chat/completions")
                .bearer(GATEWAY_KEY)
                .header("content-encoding", coding)
                .body(body),
        )
    };
    send("compress", plain.clone()).assert_openai_error(415);
    send("gzip", plain.clone()).assert_openai_error(400);
    // 64 MiB of zeros in ~64 KiB of gzip: past the 8 MiB body limit once
    // decoded, refused without decoding it all.
    let bomb = gzip(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 1 << 20);
    send("gzip", bomb).assert_openai_error(413);
    // In Anthropic's shape on its API.
    let r = stack.gw.request(
        &Req::post("/v1/messages")
            .header("x-api-key", GATEWAY_KEY)
            .header("anthropic-version", "2023-06-01")
            .header("content-encoding", "lz4")
            .body(plain),
    );
    r.assert_anthropic_error(415);
    assert_eq!(stack.mock.requests(), 0);
    // Records arrive in the order the workers finish them.
    let recs = stack.gw.records().wait_count(4);
    let mut statuses: Vec<u64> = recs.iter().map(|r| r["status"].as_u64().unwrap()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [400, 413, 415, 415]);
}

/// `POST /v1/embeddings` in each input form: forwarded as sent, metered
/// from the provider's usage and priced as input only; a body without
/// `input` is refused in OpenAI's shape.
fn embeddings(d: Driver) {
    let stack = Stack::start(d);
    let cases = [
        (json!("hello there, world"), 1),
        (json!(["first text", "second text"]), 2),
        (json!([[1, 2, 3], [4, 5]]), 2),
    ];
    for (input, n) in &cases {
        let body = json!({"model": OPENAI_MODEL, "input": input, "encoding_format": "float"});
        let r = stack
            .gw
            .request(&Req::post("/v1/embeddings").bearer(GATEWAY_KEY).json(&body));
        assert_eq!(r.status(), 200, "{}", r.text());
        let v = r.json();
        assert_eq!(v["data"].as_array().unwrap().len(), *n, "{v}");
        assert!(v["data"][0]["embedding"].is_array(), "{v}");
        let last = stack.mock.last();
        assert_eq!(last["path"], "/v1/embeddings");
        let sent: serde_json::Value = serde_json::from_str(last["body"].as_str().unwrap()).unwrap();
        assert_eq!(sent, body, "forwarded as sent");
    }
    let r = stack.gw.request(
        &Req::post("/v1/embeddings")
            .bearer(GATEWAY_KEY)
            .json(&json!({"model": OPENAI_MODEL})),
    );
    let err = r.assert_openai_error(400);
    assert!(err["message"].as_str().unwrap().contains("input"), "{err}");
    // Records arrive in the order the workers finish them.
    let recs = stack.gw.records().wait_count(4);
    let (ok, refused): (Vec<_>, Vec<_>) = recs.iter().partition(|r| r["status"] == 200);
    assert_eq!((ok.len(), refused.len()), (3, 1), "{recs:?}");
    for rec in &ok {
        assert_shape(rec);
        assert_eq!(rec["route"], "embeddings", "{rec}");
        assert_eq!(rec["status"], 200, "{rec}");
        let usage = &rec["usage"];
        assert!(usage["input_tokens"].as_u64().unwrap() > 0, "{rec}");
        assert_eq!(usage["output_tokens"], 0, "{rec}");
        assert!(rec["cost_micros"].as_u64().is_some(), "{rec}");
        assert!(rec["prompt_tokens_counted"].as_u64().unwrap() > 0, "{rec}");
    }
    // Token ids count as themselves (the only record with no text).
    assert!(ok.iter().any(|r| r["prompt_tokens_counted"] == 5), "{ok:?}");
    assert_eq!(refused[0]["status"], 400);
}

/// The policy reads, and redacts, the decoded body: PII in a gzip body is
/// redacted before it goes upstream, like in a plain one.
fn compressed_body_with_pii_is_redacted(d: Driver) {
    let extra = [sluice_tests::metering::policy(
        sluice_tests::stack::TENANT,
        "[pii]\nemail = \"redact\"\n",
    )];
    let stack = sluice_tests::metering::stack(
        d,
        sluice_tests::GatewayOpts::default(),
        &extra,
        sluice_tests::stack::snapshot,
    );
    let body = json!({
        "model": OPENAI_MODEL,
        "messages": [{"role": "user", "content": "Write to alice.smith@example.com today."}],
    });
    let r = stack.gw.request(
        &Req::post("/v1/chat/completions")
            .bearer(GATEWAY_KEY)
            .header("content-encoding", "gzip")
            .header("x-mock-tokens", "2")
            .body(gzip(&serde_json::to_vec(&body).unwrap())),
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    let last = stack.mock.last();
    let sent: serde_json::Value = serde_json::from_str(last["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        sent["messages"][0]["content"], "Write to [REDACTED_EMAIL] today.",
        "{sent}"
    );
}

/// The text of a Responses stream: its `response.output_text.delta`s.
fn responses_text(events: &[sse::Event]) -> String {
    events
        .iter()
        .filter(|e| e.name.as_deref() == Some("response.output_text.delta"))
        .map(|e| e.json().unwrap()["delta"].as_str().unwrap().to_owned())
        .collect()
}

/// `POST /v1/responses` (and `/responses`), streamed and not: forwarded
/// byte for byte (`store`, `previous_response_id` untouched), the stream
/// passed through whole, each metered from the provider's usage, counted
/// and priced; a capped stream ends `response.incomplete` and the record
/// says so.
fn responses(d: Driver) {
    let stack = Stack::start(d);
    let body = format!(
        r#"{{"model":"{OPENAI_MODEL}","instructions":"Be brief.","input":[{{"role":"user","content":[{{"type":"input_text","text":"Say hello to the world."}}]}}],"store":false,"previous_response_id":"resp_prev1"}}"#
    );
    let r = stack.gw.request(
        &Req::post("/v1/responses")
            .bearer(GATEWAY_KEY)
            .header("content-type", "application/json")
            .header("x-mock-tokens", "3")
            .body(body.clone().into_bytes()),
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "response", "{v}");
    assert_eq!(v["output"][0]["content"][0]["text"], vocab::text(3), "{v}");
    assert_eq!(v["usage"]["output_tokens"], 3, "{v}");
    let last = stack.mock.last();
    assert_eq!(last["path"], "/v1/responses", "{last}");
    assert_eq!(last["body"].as_str().unwrap(), body, "forwarded byte for byte");

    let streamed = json!({"model": OPENAI_MODEL, "input": "Say hello.", "stream": true});
    for path in ["/v1/responses", "/responses"] {
        let r = stack.gw.request(
            &Req::post(path)
                .bearer(GATEWAY_KEY)
                .json(&streamed)
                .header("x-mock-tokens", "4"),
        );
        assert_eq!(r.status(), 200, "{}", r.text());
        let events = sse::parse(&r.body);
        assert_eq!(responses_text(&events), vocab::text(4));
        let last_event = events.last().unwrap();
        assert_eq!(
            last_event.name.as_deref(),
            Some("response.completed"),
            "{events:?}"
        );
        let usage = &last_event.json().unwrap()["response"]["usage"];
        assert_eq!(
            usage["output_tokens"], 4,
            "the usage event is the client's: {usage}"
        );
        assert_eq!(stack.mock.last()["path"], "/v1/responses");
    }
    // Capped by `max_output_tokens`: the stream ends `response.incomplete`.
    let capped = json!({"model": OPENAI_MODEL, "input": "Talk.", "stream": true, "max_output_tokens": 16});
    let r = stack.gw.request(
        &Req::post("/v1/responses")
            .bearer(GATEWAY_KEY)
            .json(&capped)
            .header("x-mock-tokens", "20"),
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    let events = sse::parse(&r.body);
    assert_eq!(
        events.last().unwrap().name.as_deref(),
        Some("response.incomplete")
    );
    assert_eq!(responses_text(&events), vocab::text(16));

    let recs = stack.gw.records().wait_count(4);
    for rec in &recs {
        assert_shape(rec);
        assert_eq!(rec["route"], "responses", "{rec}");
        assert_eq!(rec["status"], 200, "{rec}");
        assert_eq!(rec["outcome"], "ok", "{rec}");
        assert_eq!(rec["model"], OPENAI_MODEL, "{rec}");
        assert!(rec["usage"]["input_tokens"].as_u64().unwrap() > 0, "{rec}");
        assert!(rec["cost_micros"].as_u64().unwrap() > 0, "{rec}");
        assert!(rec["prompt_tokens_counted"].as_u64().unwrap() > 0, "{rec}");
    }
    let outputs = |stream: bool| -> Vec<u64> {
        let mut v: Vec<u64> = recs
            .iter()
            .filter(|r| r["stream"] == stream)
            .map(|r| r["usage"]["output_tokens"].as_u64().unwrap())
            .collect();
        v.sort_unstable();
        v
    };
    assert_eq!(outputs(false), [3]);
    assert_eq!(outputs(true), [4, 4, 16]);
    for rec in recs.iter().filter(|r| r["stream"] == true) {
        assert!(rec["completion_tokens_counted"].as_u64().unwrap() > 0, "{rec}");
        let capped = rec["usage"]["output_tokens"] == 16;
        let want = if capped {
            json!("response_incomplete")
        } else {
            serde_json::Value::Null
        };
        assert_eq!(rec["error"], want, "{rec}");
    }
}

/// The policy reads Responses' `input` (each item form) and
/// `instructions`; with credit and no `max_output_tokens`, the reserved
/// limit is set upstream as `max_output_tokens`.
fn responses_policed_and_limited(d: Driver) {
    let rules =
        "[[rules]]\nid = \"no-zeus\"\naction = \"block\"\nwhen.prompt_contains = [\"project zeus\"]\n";
    let extra = [policy(TENANT, rules), credit(TENANT, 50_000_000, Some(300))];
    let stack = metering::stack(d, GatewayOpts::default(), &extra, stack::snapshot);
    for body in [
        json!({"model": OPENAI_MODEL, "input": "tell me about project zeus"}),
        json!({"model": OPENAI_MODEL, "input": [{"role": "user", "content": [{"type": "input_text", "text": "project zeus?"}]}]}),
        json!({"model": OPENAI_MODEL, "input": [{"type": "function_call_output", "call_id": "c1", "output": "project zeus files"}]}),
        json!({"model": OPENAI_MODEL, "input": [{"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{\"q\":\"project zeus\"}"}]}),
        json!({"model": OPENAI_MODEL, "instructions": "Mention project zeus.", "input": "hi", "stream": true}),
    ] {
        let r = stack
            .gw
            .request(&Req::post("/v1/responses").bearer(GATEWAY_KEY).json(&body));
        let e = r.assert_openai_error(403);
        assert!(e["message"].as_str().unwrap().contains("no-zeus"), "{body}: {e}");
    }
    assert_eq!(stack.mock.requests(), 0, "nothing blocked is forwarded");
    let r = stack.gw.request(
        &Req::post("/v1/responses")
            .bearer(GATEWAY_KEY)
            .json(&json!({"model": OPENAI_MODEL, "input": "hello"}))
            .header("x-mock-tokens", "2"),
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    let sent: serde_json::Value = serde_json::from_str(stack.mock.last()["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent["max_output_tokens"], 300, "{sent}");
    assert_eq!(sent["input"], "hello", "{sent}");
    let recs = stack.gw.records().wait_count(6);
    let blocked = recs.iter().filter(|r| r["error"] == "policy_blocked").count();
    assert_eq!(blocked, 5, "{recs:?}");
    let ok: Vec<_> = recs.iter().filter(|r| r["status"] == 200).collect();
    assert_eq!(ok.len(), 1, "{recs:?}");
    assert_eq!(ok[0]["usage"]["output_tokens"], 2, "{:?}", ok[0]);
    assert!(ok[0]["cost_micros"].as_u64().unwrap() > 0, "{:?}", ok[0]);
}
