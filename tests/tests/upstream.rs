//! Upstream trouble, on both drivers: unreachable and slow upstreams,
//! fallback between targets, errors passed through, streams cut short by
//! the upstream or abandoned by the client, and provider key injection.

// Test code: a failed unwrap is a failed test. (clippy.toml's test allowances
// cover #[test] functions only, not the per-case functions they call.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sluice_tests::fake::{dead_addr, Canned};
use sluice_tests::http::{Chunk, Req};
use sluice_tests::mock::{Mock, MockOpts};
use sluice_tests::stack::{
    anthropic_body, base, openai_body, Stack, ANTHROPIC_MODEL, GATEWAY_KEY, OPENAI_MODEL, TENANT,
};
use sluice_tests::{both_drivers, sse, vocab, Driver, Gateway, GatewayOpts, WAIT};

both_drivers!(
    upstream_unreachable,
    upstream_head_timeout,
    upstream_idle_timeout,
    fallback_when_first_unreachable,
    fallback_on_5xx_and_429,
    no_fallback_on_4xx,
    errors_pass_through,
    errors_pass_through_after_fallback,
    truncated_stream,
    truncated_non_streamed,
    client_disconnect_cancels,
    client_that_stops_reading_is_cut_off,
    provider_key_injection,
    region_filters_targets,
);

fn upstream_unreachable(d: Driver) {
    let dead = format!("http://{}", dead_addr());
    let stack = Stack::custom(d, GatewayOpts::default(), |_| {
        base()
            .upstream("dead", "openai", &dead, None)
            .upstream("dead-anthropic", "anthropic", &dead, None)
            .route(Some(TENANT), OPENAI_MODEL, &[("dead", "pk")])
            .route(Some(TENANT), ANTHROPIC_MODEL, &[("dead-anthropic", "pk")])
    });
    let e = stack
        .chat(&openai_body(OPENAI_MODEL, true), &[])
        .assert_openai_error(502);
    assert!(!e["message"].as_str().unwrap().is_empty());
    stack
        .messages(&anthropic_body(ANTHROPIC_MODEL, true), &[])
        .assert_anthropic_error(502);
    let rec = stack
        .gw
        .records()
        .wait_for("502 on chat", |r| r["route"] == "chat_completions");
    sluice_tests::records::assert_shape(&rec);
    assert_eq!(rec["status"], 502, "{rec}");
    assert_eq!(rec["outcome"], "upstream_unavailable", "{rec}");
    assert_eq!(rec["attempts"], 1, "{rec}");
    assert_eq!(rec["upstream"], "dead", "{rec}");
    assert_eq!(rec["tenant"], TENANT, "{rec}");
    assert!(
        rec["error"].is_string(),
        "an unreachable upstream needs an error label: {rec}"
    );
    let rec = stack
        .gw
        .records()
        .wait_for("502 on messages", |r| r["route"] == "messages");
    assert_eq!(rec["status"], 502, "{rec}");
    assert_eq!(rec["outcome"], "upstream_unavailable", "{rec}");
}

fn upstream_head_timeout(d: Driver) {
    let opts = GatewayOpts::default().arg("--upstream-head-timeout-ms", Some("500"));
    let stack = Stack::with(d, opts);
    let e = stack
        .chat(
            &openai_body(OPENAI_MODEL, true),
            &[("x-mock-head-delay-ms", "20000")],
        )
        .assert_openai_error(504);
    assert!(e["type"].is_string());
    stack
        .messages(
            &anthropic_body(ANTHROPIC_MODEL, false),
            &[("x-mock-head-delay-ms", "20000")],
        )
        .assert_anthropic_error(504);
    let rec = stack
        .gw
        .records()
        .wait_for("504", |r| r["route"] == "chat_completions");
    assert_eq!(rec["status"], 504, "{rec}");
    assert_eq!(rec["outcome"], "upstream_unavailable", "{rec}");
    assert_eq!(rec["upstream"], "mock", "{rec}");
    // A prompt answer is still fine.
    let r = stack.chat(&openai_body(OPENAI_MODEL, false), &[("x-mock-tokens", "2")]);
    assert_eq!(r.status(), 200, "{}", r.text());
}

fn upstream_idle_timeout(d: Driver) {
    let opts = GatewayOpts::default().arg("--upstream-idle-timeout-ms", Some("500"));
    let stack = Stack::with(d, opts);
    let r = stack.chat(
        &openai_body(OPENAI_MODEL, true),
        &[("x-mock-tokens", "4"), ("x-mock-itl-ms", "20000")],
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    assert!(
        !r.complete,
        "a stream whose upstream went silent was completed: {}",
        r.text()
    );
    let text = sse::openai_text(&sse::parse(&r.body));
    assert!(vocab::text(4).starts_with(&text), "{text:?}");
    let rec = stack
        .gw
        .records()
        .wait_for("truncated", |r| r["route"] == "chat_completions");
    assert_eq!(rec["outcome"], "truncated", "{rec}");
    assert_eq!(rec["status"], 200, "{rec}");
}

fn fallback_when_first_unreachable(d: Driver) {
    let dead = format!("http://{}", dead_addr());
    let stack = Stack::custom(d, GatewayOpts::default(), |url| {
        base()
            .upstream("dead", "openai", &dead, None)
            .upstream("mock", "openai", url, None)
            .upstream("dead-anthropic", "anthropic", &dead, None)
            .upstream("mock-anthropic", "anthropic", url, None)
            .route(Some(TENANT), OPENAI_MODEL, &[("dead", "pk"), ("mock", "pk")])
            .route(
                Some(TENANT),
                ANTHROPIC_MODEL,
                &[("dead-anthropic", "pk"), ("mock-anthropic", "pk")],
            )
    });
    let r = stack.chat(&openai_body(OPENAI_MODEL, true), &[("x-mock-tokens", "12")]);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(sse::openai_text(&sse::parse(&r.body)), vocab::text(12));
    let rec = stack
        .gw
        .records()
        .wait_for("chat", |r| r["route"] == "chat_completions");
    assert_eq!(rec["attempts"], 2, "{rec}");
    assert_eq!(rec["upstream"], "mock", "{rec}");
    assert_eq!(rec["outcome"], "ok", "{rec}");
    assert_eq!(rec["status"], 200, "{rec}");

    let r = stack.messages(&anthropic_body(ANTHROPIC_MODEL, false), &[("x-mock-tokens", "5")]);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.json()["content"][0]["text"], vocab::text(5));
    let rec = stack
        .gw
        .records()
        .wait_for("messages", |r| r["route"] == "messages");
    assert_eq!(rec["attempts"], 2, "{rec}");
    assert_eq!(rec["upstream"], "mock-anthropic", "{rec}");
    stack.gw.wait_metric("sluice_upstream_fallbacks_total", 2.0);
}

fn fallback_on_5xx_and_429(d: Driver) {
    let busy = Canned::json("503 Service Unavailable", "{}");
    let limited = Canned::json("429 Too Many Requests", "{}");
    let stack = Stack::custom(d, GatewayOpts::default(), |url| {
        base()
            .upstream("busy", "openai", &busy.url(), None)
            .upstream("limited", "anthropic", &limited.url(), None)
            .upstream("mock", "openai", url, None)
            .upstream("mock-anthropic", "anthropic", url, None)
            .route(Some(TENANT), OPENAI_MODEL, &[("busy", "pk"), ("mock", "pk")])
            .route(
                Some(TENANT),
                ANTHROPIC_MODEL,
                &[("limited", "pk"), ("mock-anthropic", "pk")],
            )
    });
    let r = stack.chat(&openai_body(OPENAI_MODEL, true), &[("x-mock-tokens", "7")]);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(sse::openai_text(&sse::parse(&r.body)), vocab::text(7));
    assert_eq!(busy.hits(), 1, "the first target was not tried");
    let rec = stack
        .gw
        .records()
        .wait_for("chat", |r| r["route"] == "chat_completions");
    assert_eq!(rec["attempts"], 2, "{rec}");
    assert_eq!(rec["upstream"], "mock", "{rec}");
    assert_eq!(rec["outcome"], "ok", "{rec}");

    let r = stack.messages(&anthropic_body(ANTHROPIC_MODEL, true), &[("x-mock-tokens", "7")]);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(sse::anthropic_text(&sse::parse(&r.body)), vocab::text(7));
    assert_eq!(limited.hits(), 1);
    let rec = stack
        .gw
        .records()
        .wait_for("messages", |r| r["route"] == "messages");
    assert_eq!(rec["attempts"], 2, "{rec}");
    assert_eq!(rec["upstream"], "mock-anthropic", "{rec}");
}

fn no_fallback_on_4xx(d: Driver) {
    let bad = Canned::json(
        "400 Bad Request",
        r#"{"error":{"message":"canned","type":"x","param":null,"code":"canned"}}"#,
    );
    let stack = Stack::custom(d, GatewayOpts::default(), |url| {
        base()
            .upstream("bad", "openai", &bad.url(), None)
            .upstream("mock", "openai", url, None)
            .route(Some(TENANT), OPENAI_MODEL, &[("bad", "pk"), ("mock", "pk")])
    });
    let r = stack.chat(&openai_body(OPENAI_MODEL, false), &[]);
    assert_eq!(r.status(), 400, "{}", r.text());
    assert_eq!(
        r.json()["error"]["message"],
        "canned",
        "the upstream's body must pass through"
    );
    assert_eq!(stack.mock.requests(), 0, "a 400 must not fall back");
    let rec = stack
        .gw
        .records()
        .wait_for("400", |r| r["route"] == "chat_completions");
    assert_eq!(rec["attempts"], 1, "{rec}");
    assert_eq!(rec["outcome"], "upstream_error", "{rec}");
    assert_eq!(rec["status"], 400, "{rec}");
    assert_eq!(rec["upstream"], "bad", "{rec}");
}

fn errors_pass_through(d: Driver) {
    let stack = Stack::start(d);
    // OpenAI: the mock's own error bodies reach the client untouched.
    for (status, message) in [
        (429, "Rate limit reached (mock)"),
        (400, "Invalid request (mock)"),
        (
            500,
            "The server had an error while processing your request (mock)",
        ),
    ] {
        let s = status.to_string();
        let r = stack.chat(&openai_body(OPENAI_MODEL, true), &[("x-mock-status", s.as_str())]);
        let e = r.assert_openai_error(status);
        assert_eq!(e["message"], message, "{}", r.text());
    }
    let r = stack.chat(&openai_body(OPENAI_MODEL, false), &[("x-mock-status", "429")]);
    assert_eq!(r.assert_openai_error(429)["code"], "rate_limit_exceeded");
    // Anthropic.
    for (status, kind) in [
        (429, "rate_limit_error"),
        (400, "invalid_request_error"),
        (500, "api_error"),
        (529, "overloaded_error"),
    ] {
        let s = status.to_string();
        let r = stack.messages(
            &anthropic_body(ANTHROPIC_MODEL, true),
            &[("x-mock-status", s.as_str())],
        );
        let e = r.assert_anthropic_error(status);
        assert_eq!(e["type"], kind, "{}", r.text());
    }
    let recs = stack.gw.records().wait_count(8);
    for r in &recs {
        assert_eq!(r["outcome"], "upstream_error", "{r}");
        assert_eq!(r["attempts"], 1, "{r}");
        assert!(r["status"].as_u64().unwrap() >= 400, "{r}");
    }
    assert!(
        recs.iter()
            .any(|r| r["status"] == 429 && r["route"] == "chat_completions"),
        "{recs:?}"
    );
    assert!(
        recs.iter()
            .any(|r| r["status"] == 529 && r["route"] == "messages"),
        "{recs:?}"
    );
}

fn errors_pass_through_after_fallback(d: Driver) {
    let stack = Stack::custom(d, GatewayOpts::default(), |url| {
        base()
            .upstream("mock-a", "openai", url, None)
            .upstream("mock-b", "openai", url, None)
            .route(Some(TENANT), OPENAI_MODEL, &[("mock-a", "pk"), ("mock-b", "pk")])
    });
    let r = stack.chat(&openai_body(OPENAI_MODEL, true), &[("x-mock-status", "429")]);
    let e = r.assert_openai_error(429);
    assert_eq!(e["message"], "Rate limit reached (mock)");
    assert_eq!(stack.mock.requests(), 2, "both targets should have been tried");
    let rec = stack
        .gw
        .records()
        .wait_for("429", |r| r["route"] == "chat_completions");
    assert_eq!(rec["attempts"], 2, "{rec}");
    assert_eq!(rec["upstream"], "mock-b", "{rec}");
    assert_eq!(rec["status"], 429, "{rec}");
    assert_eq!(rec["outcome"], "upstream_error", "{rec}");
}

fn truncated_stream(d: Driver) {
    let stack = Stack::start(d);
    let mut c = stack.gw.connect();
    c.send_req(
        &Req::chat(GATEWAY_KEY, &openai_body(OPENAI_MODEL, true))
            .header("x-mock-tokens", "20")
            .header("x-mock-truncate-after", "3"),
    );
    let r = c.read_response();
    assert_eq!(r.status(), 200, "{}", r.text());
    assert!(
        !r.complete,
        "the client must not see a terminating chunk after a truncation"
    );
    assert!(
        c.closed_within(WAIT),
        "connection left open after a truncated stream"
    );
    let events = sse::parse(&r.body);
    assert_eq!(events.len(), 3, "{}", r.text());
    assert!(!sse::openai_done(&events), "a [DONE] was forged");
    assert_eq!(sse::openai_text(&events), vocab::text(2));
    let rec = stack
        .gw
        .records()
        .wait_for("truncated chat", |r| r["route"] == "chat_completions");
    assert_eq!(rec["outcome"], "truncated", "{rec}");
    assert_eq!(rec["status"], 200, "{rec}");
    assert_eq!(rec["events"], 3, "{rec}");

    let mut c = stack.gw.connect();
    c.send_req(
        &Req::messages(GATEWAY_KEY, &anthropic_body(ANTHROPIC_MODEL, true))
            .header("x-mock-tokens", "20")
            .header("x-mock-truncate-after", "5"),
    );
    let r = c.read_response();
    assert_eq!(r.status(), 200, "{}", r.text());
    assert!(!r.complete);
    assert!(c.closed_within(WAIT));
    let events = sse::parse(&r.body);
    assert!(!sse::anthropic_done(&events));
    assert_eq!(sse::anthropic_text(&events), vocab::text(2));
    let rec = stack
        .gw
        .records()
        .wait_for("truncated messages", |r| r["route"] == "messages");
    assert_eq!(rec["outcome"], "truncated", "{rec}");

    // The gateway itself is fine.
    let r = stack.chat(&openai_body(OPENAI_MODEL, true), &[("x-mock-tokens", "3")]);
    assert_eq!(r.status(), 200);
    assert!(r.complete);
}

fn truncated_non_streamed(d: Driver) {
    let stack = Stack::start(d);
    let mut c = stack.gw.connect();
    c.send_req(
        &Req::chat(GATEWAY_KEY, &openai_body(OPENAI_MODEL, false))
            .header("x-mock-tokens", "20")
            .header("x-mock-truncate-after", "40"),
    );
    let r = c.read_response();
    assert_eq!(r.status(), 200);
    assert!(!r.complete, "fewer bytes than content-length must stay fewer");
    assert_eq!(r.body.len(), 40);
    assert!(c.closed_within(WAIT));
    let rec = stack
        .gw
        .records()
        .wait_for("truncated", |r| r["route"] == "chat_completions");
    assert_eq!(rec["outcome"], "truncated", "{rec}");
}

fn client_disconnect_cancels(d: Driver) {
    let stack = Stack::start(d);
    let mut c = stack.gw.connect();
    c.send_req(
        &Req::chat(GATEWAY_KEY, &openai_body(OPENAI_MODEL, true))
            .header("x-mock-tokens", "500")
            .header("x-mock-itl-ms", "200"),
    );
    let head = c.read_head();
    assert_eq!(head.status, 200);
    let first = c.read_chunk();
    assert!(matches!(first, Chunk::Data(_)), "{first:?}");
    stack.gw.wait_metric("sluice_active_streams", 1.0);
    c.close();

    // 500 tokens at 200 ms would take 100 s: a record before WAIT (30 s)
    // means the gateway noticed the client leaving.
    let rec = stack
        .gw
        .records()
        .wait_for("cancelled", |r| r["route"] == "chat_completions");
    assert_eq!(rec["outcome"], "cancelled", "{rec}");
    assert_eq!(rec["status"], 200, "{rec}");
    stack.gw.wait_metric("sluice_active_streams", 0.0);

    // Anthropic, the same.
    let mut c = stack.gw.connect();
    c.send_req(
        &Req::messages(GATEWAY_KEY, &anthropic_body(ANTHROPIC_MODEL, true))
            .header("x-mock-tokens", "500")
            .header("x-mock-itl-ms", "200"),
    );
    assert_eq!(c.read_head().status, 200);
    assert!(matches!(c.read_chunk(), Chunk::Data(_)));
    c.close();
    let rec = stack
        .gw
        .records()
        .wait_for("cancelled", |r| r["route"] == "messages");
    assert_eq!(rec["outcome"], "cancelled", "{rec}");
    stack.gw.wait_metric("sluice_active_streams", 0.0);

    let r = stack.chat(&openai_body(OPENAI_MODEL, true), &[("x-mock-tokens", "3")]);
    assert_eq!(r.status(), 200);
    assert_eq!(sse::openai_text(&sse::parse(&r.body)), vocab::text(3));
}

fn client_that_stops_reading_is_cut_off(d: Driver) {
    let opts = GatewayOpts::default().arg("--client-write-timeout-ms", Some("300"));
    let stack = Stack::with(d, opts);
    let mut c = stack.gw.connect();
    // A million tokens with no delay: far more than the socket buffers hold.
    c.send_req(&Req::chat(GATEWAY_KEY, &openai_body(OPENAI_MODEL, true)).header("x-mock-tokens", "1000000"));
    assert_eq!(c.read_head().status, 200);
    // ... and then the client reads nothing more, yet keeps the connection.
    let rec = stack
        .gw
        .records()
        .wait_for("the stalled stream", |r| r["route"] == "chat_completions");
    assert_eq!(rec["outcome"], "cancelled", "{rec}");
    assert_eq!(rec["error"], "client_write_timeout", "{rec}");
    stack.gw.wait_metric("sluice_active_streams", 0.0);

    // Others are served as usual meanwhile.
    let r = stack.chat(&openai_body(OPENAI_MODEL, true), &[("x-mock-tokens", "3")]);
    assert_eq!(r.status(), 200);
    assert_eq!(sse::openai_text(&sse::parse(&r.body)), vocab::text(3));
    drop(c);
}

fn provider_key_injection(d: Driver) {
    const SECRET: &str = "sk-upstream-secret-4471";
    let snapshot = |url: &str| {
        base()
            .upstream("mock", "openai", url, None)
            .upstream("mock-anthropic", "anthropic", url, None)
            .route(Some(TENANT), OPENAI_MODEL, &[("mock", "pk")])
            .route(Some(TENANT), ANTHROPIC_MODEL, &[("mock-anthropic", "pk")])
    };
    // The right key: 200, and the mock saw exactly it.
    let mock = Mock::start(MockOpts {
        require_key: Some(SECRET.into()),
        ..MockOpts::default()
    });
    let gw = Gateway::start(
        d,
        &snapshot(&mock.url),
        GatewayOpts::default().env("MOCK_KEY", SECRET),
    );
    let r = gw.request(&Req::chat(GATEWAY_KEY, &openai_body(OPENAI_MODEL, false)));
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(
        mock.last()["headers"]["authorization"],
        format!("Bearer {SECRET}")
    );
    let r = gw.request(&Req::messages(
        GATEWAY_KEY,
        &anthropic_body(ANTHROPIC_MODEL, false),
    ));
    assert_eq!(r.status(), 200, "{}", r.text());
    let last = mock.last();
    assert_eq!(last["headers"]["x-api-key"], SECRET, "{last}");
    assert!(last["headers"].get("authorization").is_none(), "{last}");
    drop(gw);

    // The wrong key: the mock's 401 passes through, in each provider's shape.
    let gw = Gateway::start(
        d,
        &snapshot(&mock.url),
        GatewayOpts::default().env("MOCK_KEY", "sk-wrong-provider-key"),
    );
    let r = gw.request(&Req::chat(GATEWAY_KEY, &openai_body(OPENAI_MODEL, true)));
    let e = r.assert_openai_error(401);
    assert_eq!(e["message"], "Incorrect API key provided.", "{}", r.text());
    let r = gw.request(&Req::messages(
        GATEWAY_KEY,
        &anthropic_body(ANTHROPIC_MODEL, true),
    ));
    let e = r.assert_anthropic_error(401);
    assert_eq!(e["message"], "invalid x-api-key", "{}", r.text());
    let rec = gw.records().wait_for("401", |r| r["route"] == "chat_completions");
    assert_eq!(rec["status"], 401, "{rec}");
    assert_eq!(rec["outcome"], "upstream_error", "{rec}");
    assert_eq!(rec["tenant"], TENANT, "{rec}");
}

fn region_filters_targets(d: Driver) {
    let dead = format!("http://{}", dead_addr());
    let stack = Stack::custom(d, GatewayOpts::default(), |url| {
        base()
            .tenant("eu-co", Some("eu"))
            .key("k-eu", "eu-co", "sk-sluice-eu-tenant")
            .provider_key("pk-eu", Some("eu-co"), "MOCK_KEY")
            .upstream("us-only", "openai", &dead, Some("us"))
            .upstream("eu-mock", "openai", url, Some("eu"))
            .route(
                Some("eu-co"),
                OPENAI_MODEL,
                &[("us-only", "pk-eu"), ("eu-mock", "pk-eu")],
            )
            .route(Some("eu-co"), "us-model", &[("us-only", "pk-eu")])
    });
    let r = stack.gw.request(&Req::chat(
        "sk-sluice-eu-tenant",
        &openai_body(OPENAI_MODEL, false),
    ));
    assert_eq!(r.status(), 200, "{}", r.text());
    let rec = stack
        .gw
        .records()
        .wait_for("eu chat", |r| r["route"] == "chat_completions");
    assert_eq!(rec["upstream"], "eu-mock", "{rec}");
    assert_eq!(
        rec["attempts"], 1,
        "an upstream outside the tenant's region was tried: {rec}"
    );
    // A model only served outside the region is refused, never sent there.
    let r = stack
        .gw
        .request(&Req::chat("sk-sluice-eu-tenant", &openai_body("us-model", false)));
    assert!(
        r.status() == 403 || r.status() == 404,
        "{} {}",
        r.status(),
        r.text()
    );
    r.assert_openai_error(r.status());
    let listed = stack
        .gw
        .request(&Req::get("/v1/models").bearer("sk-sluice-eu-tenant"))
        .json();
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![OPENAI_MODEL], "{listed}");
}
