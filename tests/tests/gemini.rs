//! Gemini end to end, on both drivers: the Generative Language API as an
//! inbound API (`/v1beta/models/{model}:{method}` and `/v1/…`, the gateway
//! key in `x-goog-api-key` or `?key=`) and as an upstream kind (`kind =
//! "gemini"`: the provider key in `x-goog-api-key`, `?alt=sse` streams),
//! metered from `usageMetadata`, counted when absent, policed, limited, and
//! refused in Gemini's error shape.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use sluice_tests::http::{Req, Response};
use sluice_tests::metering::{self, credit, policy};
use sluice_tests::records::assert_shape;
use sluice_tests::snapshot::Snapshot;
use sluice_tests::stack::{self, GATEWAY_KEY, OPENAI_MODEL, PROVIDER_KEY, TENANT};
use sluice_tests::{both_drivers, sse, vocab, Driver, GatewayOpts};

both_drivers!(
    generate_content,
    stream_generate_content,
    a_stream_cut_short,
    count_tokens_and_embeddings,
    errors_in_gemini_shape,
    policed_and_limited,
);

const GEMINI_MODEL: &str = "gemini-2.5-flash";
const EMBED_MODEL: &str = "gemini-embedding-001";

/// The usual snapshot plus a Gemini upstream and its routes (`GEMINI_MODEL`
/// served as `gemini-2.5-flash-001` upstream).
fn snapshot(url: &str) -> Snapshot {
    stack::snapshot(url)
        .upstream("mock-gemini", "gemini", url, None)
        .route(Some(TENANT), GEMINI_MODEL, &[("mock-gemini", "pk")])
        .route(Some(TENANT), EMBED_MODEL, &[("mock-gemini", "pk")])
}

fn start(d: Driver) -> stack::Stack {
    metering::stack(d, GatewayOpts::default(), &[], snapshot)
}

fn body(text: &str) -> Value {
    json!({
        "contents": [{"role": "user", "parts": [{"text": text}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
    })
}

fn call(stack: &stack::Stack, path: &str, body: &Value, headers: &[(&str, &str)]) -> Response {
    let mut req = Req::post(path).header("x-goog-api-key", GATEWAY_KEY).json(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    stack.gw.request(&req)
}

/// The text of a Gemini stream (or body): every candidate part's text.
fn texts(v: &Value) -> String {
    let mut out = String::new();
    for c in v["candidates"].as_array().into_iter().flatten() {
        for p in c["content"]["parts"].as_array().into_iter().flatten() {
            out.push_str(p["text"].as_str().unwrap_or(""));
        }
    }
    out
}

/// Asserts a Gemini-shaped error; returns its `error` object.
#[track_caller]
fn gemini_error(r: &Response, status: u16, name: &str) -> Value {
    assert_eq!(r.status(), status, "{}", r.text());
    let v = r.json();
    let e = &v["error"];
    assert_eq!(e["code"], status, "{v}");
    assert_eq!(e["status"], name, "{v}");
    assert!(e["message"].is_string(), "{v}");
    e.clone()
}

/// `:generateContent` under `/v1beta/` and `/v1/`: forwarded byte for byte
/// to the Gemini upstream's `/v1beta/` path with the provider key, answered
/// as it came, recorded with Gemini's usage and priced.
fn generate_content(d: Driver) {
    let stack = start(d);
    let sent = r#"{"contents":[{"role":"user","parts":[{"text":"Say hello to the world."}]}],"generationConfig":{"temperature":0.5,"maxOutputTokens":64}}"#;
    for version in ["v1beta", "v1"] {
        let r = stack.gw.request(
            &Req::post(&format!("/{version}/models/{GEMINI_MODEL}:generateContent"))
                .header("x-goog-api-key", GATEWAY_KEY)
                .header("content-type", "application/json")
                .header("x-mock-tokens", "3")
                .body(sent.as_bytes().to_vec()),
        );
        assert_eq!(r.status(), 200, "{}", r.text());
        let v = r.json();
        assert_eq!(texts(&v), vocab::text(3), "{v}");
        assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 3, "{v}");
        let last = stack.mock.last();
        assert_eq!(
            last["path"],
            format!("/v1beta/models/{GEMINI_MODEL}:generateContent"),
            "{last}"
        );
        assert_eq!(last["headers"]["x-goog-api-key"], PROVIDER_KEY, "{last}");
        assert!(last["headers"].get("authorization").is_none(), "{last}");
        assert_eq!(last["body"].as_str().unwrap(), sent, "forwarded byte for byte");
    }
    let recs = stack.gw.records().wait_count(2);
    for rec in &recs {
        assert_shape(rec);
        assert_eq!(rec["route"], "gemini_generate", "{rec}");
        assert_eq!(rec["status"], 200, "{rec}");
        assert_eq!(rec["outcome"], "ok", "{rec}");
        assert_eq!(rec["model"], GEMINI_MODEL, "{rec}");
        assert_eq!(rec["upstream"], "mock-gemini", "{rec}");
        assert_eq!(rec["stream"], false, "{rec}");
        assert!(rec["usage"]["input_tokens"].as_u64().unwrap() > 0, "{rec}");
        assert_eq!(rec["usage"]["output_tokens"], 3, "{rec}");
        assert!(rec["cost_micros"].as_u64().unwrap() > 0, "{rec}");
        assert!(rec["prompt_tokens_counted"].as_u64().unwrap() > 0, "{rec}");
    }
}

/// `:streamGenerateContent?alt=sse` with the key in the query: the events
/// pass through whole (a character split across writes included), the key
/// never reaches the provider, usage comes from the last event.
fn stream_generate_content(d: Driver) {
    let stack = start(d);
    for (path, split, header) in [
        (
            format!("/v1beta/models/{GEMINI_MODEL}:streamGenerateContent?alt=sse"),
            "utf8",
            true,
        ),
        (
            format!("/v1/models/{GEMINI_MODEL}:streamGenerateContent?key={GATEWAY_KEY}&alt=sse"),
            "bytes:7",
            false,
        ),
    ] {
        let mut req = Req::post(&path)
            .json(&body("Stream a hello."))
            .header("x-mock-tokens", "9")
            .header("x-mock-split", split);
        if header {
            req = req.header("x-goog-api-key", GATEWAY_KEY);
        }
        let r = stack.gw.request(&req);
        assert_eq!(r.status(), 200, "{}", r.text());
        assert!(r.header("content-type").unwrap().starts_with("text/event-stream"));
        let events = sse::parse(&r.body);
        assert_eq!(events.len(), 10, "{events:?}");
        let text: String = events.iter().map(|e| texts(&e.json().unwrap())).collect();
        assert_eq!(text, vocab::text(9));
        let last = events.last().unwrap().json().unwrap();
        assert_eq!(last["candidates"][0]["finishReason"], "STOP", "{last}");
        let upstream = stack.mock.last();
        assert_eq!(
            upstream["path"],
            format!("/v1beta/models/{GEMINI_MODEL}:streamGenerateContent?alt=sse"),
            "the client's query (and its key) stay at the gateway: {upstream}"
        );
    }
    let recs = stack.gw.records().wait_count(2);
    for rec in &recs {
        assert_shape(rec);
        assert_eq!(rec["route"], "gemini_stream", "{rec}");
        assert_eq!(rec["stream"], true, "{rec}");
        assert_eq!(rec["outcome"], "ok", "{rec}");
        assert!(rec["error"].is_null(), "{rec}");
        assert_eq!(rec["usage"]["output_tokens"], 9, "{rec}");
        assert!(rec["completion_tokens_counted"].as_u64().unwrap() > 0, "{rec}");
        assert!(rec["cost_micros"].as_u64().unwrap() > 0, "{rec}");
    }
    let raw = String::from_utf8(stack.gw.records().raw()).unwrap();
    assert!(!raw.contains(GATEWAY_KEY), "no record holds the key");
}

/// A stream the provider cuts before its last event: recorded as
/// incomplete, and billed for no less than what was streamed.
fn a_stream_cut_short(d: Driver) {
    let stack = start(d);
    let mut c = stack.gw.connect();
    c.send_req(
        &Req::post(&format!(
            "/v1beta/models/{GEMINI_MODEL}:streamGenerateContent?alt=sse"
        ))
        .header("x-goog-api-key", GATEWAY_KEY)
        .json(&body("Talk."))
        .header("x-mock-tokens", "12")
        .header("x-mock-truncate-after", "6"),
    );
    let r = c.read_response();
    assert_eq!(r.status(), 200, "{}", r.text());
    assert!(!r.complete, "the client sees the cut");
    let events = sse::parse(&r.body);
    assert_eq!(events.len(), 6, "{}", r.text());
    assert!(events
        .iter()
        .all(|e| e.json().unwrap()["candidates"][0]["finishReason"].is_null()));
    let rec = stack
        .gw
        .records()
        .wait_for("cut", |r| r["route"] == "gemini_stream");
    assert_eq!(rec["outcome"], "truncated", "{rec}");
    let counted = rec["completion_tokens_counted"].as_u64().unwrap();
    assert!(counted > 0, "{rec}");
    // The record keeps what the provider said (the cumulative count of the
    // last event that came); the bill takes no less than what was streamed:
    // gemini-2.5-flash at $0.30 in, $2.50 out per million tokens.
    let said = rec["usage"]["output_tokens"].as_u64().unwrap();
    assert_eq!(said, 6, "{rec}");
    let input = rec["usage"]["input_tokens"].as_u64().unwrap();
    let want = (input * 300_000 + said.max(counted) * 2_500_000).div_ceil(1_000_000);
    assert_eq!(rec["cost_micros"], want, "{rec}");
}

/// `:countTokens` is free; `:embedContent` and `:batchEmbedContents`
/// report no usage, so their input is counted by the gateway and priced.
fn count_tokens_and_embeddings(d: Driver) {
    let stack = start(d);
    let r = call(
        &stack,
        &format!("/v1beta/models/{GEMINI_MODEL}:countTokens"),
        &json!({"contents": [{"parts": [{"text": "Count these tokens, please."}]}]}),
        &[],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    assert!(r.json()["totalTokens"].as_u64().unwrap() > 0);
    let one = json!({"content": {"parts": [{"text": "an embedding of this"}]}});
    let r = call(
        &stack,
        &format!("/v1beta/models/{EMBED_MODEL}:embedContent"),
        &one,
        &[],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.json()["embedding"]["values"].as_array().unwrap().len(), 8);
    let batch = json!({"requests": [
        {"model": format!("models/{EMBED_MODEL}"), "content": {"parts": [{"text": "first text"}]}},
        {"model": format!("models/{EMBED_MODEL}"), "content": {"parts": [{"text": "second text"}]}},
    ]});
    let r = call(
        &stack,
        &format!("/v1/models/{EMBED_MODEL}:batchEmbedContents"),
        &batch,
        &[],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.json()["embeddings"].as_array().unwrap().len(), 2);
    let recs = stack.gw.records().wait_count(3);
    let by = |route: &str| recs.iter().find(|r| r["route"] == route).unwrap().clone();
    let count = by("gemini_count_tokens");
    assert_eq!(count["status"], 200, "{count}");
    assert_eq!(count["cost_micros"], 0, "counting is free: {count}");
    for route in ["gemini_embed", "gemini_batch_embed"] {
        let rec = by(route);
        assert_shape(&rec);
        assert_eq!(rec["status"], 200, "{rec}");
        assert_eq!(rec["model"], EMBED_MODEL, "{rec}");
        let counted = rec["prompt_tokens_counted"].as_u64().unwrap();
        assert!(counted > 0, "{rec}");
        // Gemini reports no usage for embeddings: the gateway's count is
        // billed ($0.15 per million input tokens).
        assert!(rec["usage"].is_null(), "{rec}");
        assert_eq!(
            rec["cost_micros"],
            (counted * 150_000).div_ceil(1_000_000),
            "{rec}"
        );
    }
}

/// Every refusal to a Gemini caller is in Gemini's shape with the right
/// status; an upstream's own error passes through as it came.
fn errors_in_gemini_shape(d: Driver) {
    let stack = start(d);
    let path = format!("/v1beta/models/{GEMINI_MODEL}:generateContent");
    let r = stack.gw.request(&Req::post(&path).json(&body("hi")));
    gemini_error(&r, 401, "UNAUTHENTICATED");
    let r = stack
        .gw
        .request(&Req::post(&format!("{path}?key=sk-sluice-nope")).json(&body("hi")));
    gemini_error(&r, 401, "UNAUTHENTICATED");
    let r = call(
        &stack,
        "/v1beta/models/no-such-model:generateContent",
        &body("hi"),
        &[],
    );
    let e = gemini_error(&r, 404, "NOT_FOUND");
    assert!(e["message"].as_str().unwrap().contains("no-such-model"), "{e}");
    let r = stack.gw.request(
        &Req::post(&path)
            .header("x-goog-api-key", GATEWAY_KEY)
            .body(b"{not json".to_vec()),
    );
    gemini_error(&r, 400, "INVALID_ARGUMENT");
    let r = call(&stack, &path, &json!({"generationConfig": {}}), &[]);
    gemini_error(&r, 400, "INVALID_ARGUMENT");
    let r = stack
        .gw
        .request(&Req::get(&path).header("x-goog-api-key", GATEWAY_KEY));
    gemini_error(&r, 405, "INVALID_ARGUMENT");
    let r = call(&stack, "/v1beta/models/x:predictLongRunning", &body("hi"), &[]);
    gemini_error(&r, 404, "NOT_FOUND");
    // A Gemini body for a model routed to an OpenAI upstream.
    let r = call(
        &stack,
        &format!("/v1beta/models/{OPENAI_MODEL}:generateContent"),
        &body("hi"),
        &[],
    );
    gemini_error(&r, 400, "INVALID_ARGUMENT");
    assert_eq!(stack.mock.requests(), 0, "nothing above reached the provider");
    // The provider's own error, in its (Gemini's) shape, as it came.
    let r = call(&stack, &path, &body("hi"), &[("x-mock-status", "400")]);
    gemini_error(&r, 400, "INVALID_ARGUMENT");
    let recs = stack.gw.records().wait_count(9);
    assert!(
        recs.iter().all(|r| r["status"].as_u64().unwrap() >= 400),
        "{recs:?}"
    );
    let raw = String::from_utf8(stack.gw.records().raw()).unwrap();
    assert!(!raw.contains("sk-sluice-nope"), "no record holds a presented key");
}

/// The policy reads `contents` and `systemInstruction`; a credit-metered
/// request that set no output limit gets one in `generationConfig`.
fn policed_and_limited(d: Driver) {
    let rules =
        "[[rules]]\nid = \"no-zeus\"\naction = \"block\"\nwhen.prompt_contains = [\"project zeus\"]\n";
    let extra = [policy(TENANT, rules), credit(TENANT, 50_000_000, Some(300))];
    let stack = metering::stack(d, GatewayOpts::default(), &extra, snapshot);
    let path = format!("/v1beta/models/{GEMINI_MODEL}:generateContent");
    for b in [
        body("tell me about project zeus"),
        json!({"contents": [{"parts": [{"text": "hi"}]}], "system_instruction": {"parts": [{"text": "Mention project zeus."}]}}),
    ] {
        let r = call(&stack, &path, &b, &[]);
        let e = gemini_error(&r, 403, "PERMISSION_DENIED");
        assert!(e["message"].as_str().unwrap().contains("no-zeus"), "{b}: {e}");
    }
    assert_eq!(stack.mock.requests(), 0, "nothing blocked is forwarded");
    let r = call(
        &stack,
        &path,
        &json!({"contents": [{"parts": [{"text": "hello"}]}], "generationConfig": {"temperature": 0.1}}),
        &[("x-mock-tokens", "2")],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    let sent: Value = serde_json::from_str(stack.mock.last()["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent["generationConfig"]["maxOutputTokens"], 300, "{sent}");
    assert_eq!(sent["generationConfig"]["temperature"], 0.1, "{sent}");
    let recs = stack.gw.records().wait_count(3);
    assert_eq!(recs.iter().filter(|r| r["error"] == "policy_blocked").count(), 2);
    let ok = recs.iter().find(|r| r["status"] == 200).unwrap();
    assert_eq!(ok["usage"]["output_tokens"], 2, "{ok}");
    assert!(ok["cost_micros"].as_u64().unwrap() > 0, "{ok}");
}
