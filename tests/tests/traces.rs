//! OpenTelemetry traces from the data plane: a small OTLP/HTTP receiver
//! here decodes what `--otlp-endpoint` sends with the official OTLP types
//! (opentelemetry-proto) and checks the spans' GenAI attributes, their
//! parentage (the client's `traceparent` included), that no content is in
//! any span, that an unsampled request is not exported, and what the
//! upstream receives as `traceparent`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;
use sluice_tests::gateway::{Gateway, GatewayOpts};
use sluice_tests::http::Req;
use sluice_tests::stack::{snapshot, Stack, GATEWAY_KEY, OPENAI_MODEL, PROVIDER_KEY};
use sluice_tests::{Driver, WAIT};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A minimal OTLP/HTTP collector: every `POST /v1/traces` body is decoded
/// and its spans kept.
struct Receiver {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<Span>>>,
}

/// Reads one HTTP/1.1 request (head and content-length body) from `r`.
fn read_request(r: &mut BufReader<std::net::TcpStream>) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let end = line == "\r\n";
        head.push_str(&line);
        if end {
            break;
        }
    }
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((head, body))
}

/// Serves HTTP/1.1 on a fresh port: each request (head, body) goes to
/// `answer`, whose bytes are written back; connections are kept alive.
fn serve_http(answer: impl Fn(String, Vec<u8>) -> Vec<u8> + Send + Sync + 'static) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { continue };
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut w = conn.try_clone().unwrap();
                let mut r = BufReader::new(conn);
                while let Some((head, body)) = read_request(&mut r) {
                    let _ = w.write_all(&answer(head, body));
                }
            });
        }
    });
    addr
}

impl Receiver {
    fn start() -> Receiver {
        let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
        let keep = spans.clone();
        let addr = serve_http(move |head, body| {
            assert!(head.starts_with("POST /v1/traces "), "{head}");
            assert!(
                head.to_ascii_lowercase()
                    .contains("content-type: application/x-protobuf"),
                "{head}"
            );
            let req = ExportTraceServiceRequest::decode(&body[..])
                .unwrap_or_else(|e| panic!("not an OTLP ExportTraceServiceRequest: {e}"));
            for rs in req.resource_spans {
                let service = rs
                    .resource
                    .as_ref()
                    .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name").cloned());
                assert!(service.is_some(), "no service.name");
                for ss in rs.scope_spans {
                    keep.lock().unwrap().extend(ss.spans);
                }
            }
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n".to_vec()
        });
        Receiver { addr, spans }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The spans of trace `id` once there are at least `n`.
    fn wait_trace(&self, id: &[u8], n: usize) -> Vec<Span> {
        let deadline = Instant::now() + WAIT;
        loop {
            let got: Vec<Span> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.trace_id == id)
                .cloned()
                .collect();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "trace {} has {} spans",
                hex(id),
                got.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn traces(&self) -> Vec<Vec<u8>> {
        let mut ids: Vec<Vec<u8>> = self
            .spans
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.trace_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn attr<'a>(s: &'a Span, key: &str) -> Option<&'a Value> {
    s.attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn str_attr<'a>(s: &'a Span, key: &str) -> &'a str {
    match attr(s, key) {
        Some(Value::StringValue(v)) => v,
        other => panic!("span {:?}: {key} is {other:?}", s.name),
    }
}

fn int_attr(s: &Span, key: &str) -> i64 {
    match attr(s, key) {
        Some(Value::IntValue(v)) => *v,
        other => panic!("span {:?}: {key} is {other:?}", s.name),
    }
}

fn one<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    let found: Vec<&Span> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(
        found.len(),
        1,
        "spans named {name:?}: {:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    found[0]
}

/// Every string anywhere in `spans`' attributes and events.
fn strings(spans: &[Span]) -> Vec<String> {
    let mut out = Vec::new();
    for s in spans {
        out.push(s.name.clone());
        for a in s
            .attributes
            .iter()
            .chain(s.events.iter().flat_map(|e| e.attributes.iter()))
        {
            if let Some(Value::StringValue(v)) = a.value.as_ref().and_then(|v| v.value.as_ref()) {
                out.push(v.clone());
            }
        }
    }
    out
}

const CANARY: &str = "trace-canary-prompt-7d1f";

fn body(stream: bool) -> serde_json::Value {
    json!({
        "model": OPENAI_MODEL,
        "stream": stream,
        "messages": [{"role": "user", "content": CANARY}],
    })
}

#[test]
fn spans_carry_genai_attributes_parentage_and_no_content() {
    let rx = Receiver::start();
    let stack = Stack::with(
        Driver::Uring,
        GatewayOpts::default()
            .arg("--otlp-endpoint", Some(&rx.url()))
            .arg("--trace-sample", Some("1")),
    );
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    // A streamed request under the client's trace.
    let r = stack.gw.request(
        &Req::chat(GATEWAY_KEY, &body(true))
            .header("traceparent", &format!("00-{trace_id}-{parent}-01"))
            .header("x-mock-tokens", "5"),
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    // The client said "not sampled": followed, nothing exported.
    let unsampled = "11111111111111111111111111111111";
    let r = stack.gw.request(
        &Req::chat(GATEWAY_KEY, &body(false)).header("traceparent", &format!("00-{unsampled}-{parent}-00")),
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    // No client context: a new trace. The upstream fails: error.type.
    let r = stack
        .gw
        .request(&Req::chat(GATEWAY_KEY, &body(false)).header("x-mock-status", "500"));
    assert_eq!(r.status(), 500, "{}", r.text());

    let spans = rx.wait_trace(&unhex(trace_id), 4);
    let servers: Vec<&Span> = spans.iter().filter(|s| s.kind == 2).collect();
    assert_eq!(servers.len(), 1, "one SERVER span");
    let server = servers[0];
    assert_eq!(server.name, format!("chat {OPENAI_MODEL}"));
    assert_eq!(
        hex(&server.parent_span_id),
        parent,
        "the client's span is the parent"
    );
    assert_eq!(str_attr(server, "gen_ai.operation.name"), "chat");
    assert_eq!(str_attr(server, "gen_ai.request.model"), OPENAI_MODEL);
    assert_eq!(str_attr(server, "gen_ai.response.model"), OPENAI_MODEL);
    assert_eq!(str_attr(server, "gen_ai.provider.name"), "openai");
    assert_eq!(str_attr(server, "server.address"), "127.0.0.1");
    assert!(int_attr(server, "gen_ai.usage.input_tokens") > 0);
    assert_eq!(int_attr(server, "gen_ai.usage.output_tokens"), 5);
    assert_eq!(int_attr(server, "http.response.status_code"), 200);
    assert!(attr(server, "error.type").is_none());
    let children: Vec<&Span> = spans.iter().filter(|s| s.span_id != server.span_id).collect();
    for c in &children {
        assert_eq!(
            c.parent_span_id, server.span_id,
            "{} is not the request span's child",
            c.name
        );
        assert!(
            c.start_time_unix_nano >= server.start_time_unix_nano
                && c.end_time_unix_nano <= server.end_time_unix_nano + 1_000_000
        );
    }
    let admission = one(&spans, "admission");
    let attempt = spans
        .iter()
        .find(|s| s.kind == 3)
        .expect("a CLIENT span per attempt");
    assert_eq!(attempt.name, format!("chat {OPENAI_MODEL}"));
    assert_eq!(str_attr(attempt, "gen_ai.provider.name"), "openai");
    assert_eq!(str_attr(attempt, "server.address"), "127.0.0.1");
    assert_eq!(int_attr(attempt, "http.response.status_code"), 200);
    assert!(admission.end_time_unix_nano <= attempt.start_time_unix_nano);
    let stream = one(&spans, "stream");
    assert!(stream.start_time_unix_nano >= attempt.end_time_unix_nano);
    let first = stream
        .events
        .iter()
        .find(|e| e.name == "gen_ai.first_token")
        .expect("first token event");
    assert!(
        first.time_unix_nano >= stream.start_time_unix_nano
            && first.time_unix_nano <= stream.end_time_unix_nano
    );
    match attr(stream, "gen_ai.response.time_to_first_chunk") {
        Some(Value::DoubleValue(t)) => assert!(*t > 0.0 && *t < 30.0, "{t}"),
        other => panic!("time to first chunk: {other:?}"),
    }

    // The failed request: its own trace, no parent, error.type on both spans.
    let deadline = Instant::now() + WAIT;
    let failed = loop {
        let all = rx.spans.lock().unwrap().clone();
        let found: Vec<Span> = all
            .iter()
            .filter(|s| s.kind == 2 && s.trace_id != unhex(trace_id))
            .cloned()
            .collect();
        if let Some(root) = found.first() {
            break all
                .into_iter()
                .filter(|s| s.trace_id == root.trace_id)
                .collect::<Vec<Span>>();
        }
        assert!(Instant::now() < deadline, "the failed request's trace never came");
        std::thread::sleep(Duration::from_millis(50));
    };
    let root = failed.iter().find(|s| s.kind == 2).unwrap();
    assert!(root.parent_span_id.is_empty(), "a new trace has no parent");
    assert!(attr(root, "error.type").is_some());
    assert_eq!(root.status.as_ref().map(|s| s.code), Some(2));
    let attempt = failed.iter().find(|s| s.kind == 3).unwrap();
    assert_eq!(int_attr(attempt, "http.response.status_code"), 500);
    assert!(attr(attempt, "error.type").is_some());

    // The unsampled one was not exported, and no span holds any content.
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        !rx.traces().contains(&unhex(unsampled)),
        "an unsampled trace was exported"
    );
    let all = rx.spans.lock().unwrap().clone();
    assert!(
        strings(&all).iter().all(|s| !s.contains(CANARY)),
        "content in a span"
    );
    assert_eq!(stack.gw.metric("sluice_traces_dropped_total"), Some(0.0));
    assert_eq!(stack.gw.metric("sluice_traces_queued_total"), Some(2.0));
}

/// An upstream that records each request head and answers a fixed chat completion.
fn capturing_upstream() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let heads: Arc<Mutex<Vec<String>>> = Arc::default();
    let keep = heads.clone();
    let addr = serve_http(move |head, _| {
        keep.lock().unwrap().push(head);
        let body = json!({
            "id": "c1", "object": "chat.completion", "created": 1, "model": OPENAI_MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
        })
        .to_string();
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    });
    (addr, heads)
}

fn traceparent_of(head: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("traceparent").then(|| v.trim().to_owned())
    })
}

/// A data plane tracing at `ratio` into a fresh receiver, in front of a capturing upstream.
fn capturing_gateway(ratio: &str) -> (Receiver, Gateway, Arc<Mutex<Vec<String>>>) {
    let rx = Receiver::start();
    let (up, heads) = capturing_upstream();
    let gw = Gateway::start(
        Driver::Uring,
        &snapshot(&format!("http://{up}")),
        GatewayOpts::default()
            .env("MOCK_KEY", PROVIDER_KEY)
            .arg("--otlp-endpoint", Some(&rx.url()))
            .arg("--trace-sample", Some(ratio)),
    );
    (rx, gw, heads)
}

#[test]
fn traceparent_goes_upstream_with_the_attempts_span() {
    let (rx, gw, heads) = capturing_gateway("1");
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let parent = "b7ad6b7169203331";
    let r = gw.request(
        &Req::chat(GATEWAY_KEY, &body(false)).header("traceparent", &format!("00-{trace_id}-{parent}-01")),
    );
    assert_eq!(r.status(), 200, "{}", r.text());
    let spans = rx.wait_trace(&unhex(trace_id), 3);
    let attempt = spans.iter().find(|s| s.kind == 3).expect("attempt span");
    let sent = traceparent_of(&heads.lock().unwrap()[0]).expect("no traceparent upstream");
    assert_eq!(
        sent,
        format!("00-{trace_id}-{}-01", hex(&attempt.span_id)),
        "upstream's parent is the attempt"
    );
    // Not sampled: the client's header passes on unchanged.
    let theirs = format!("00-{trace_id}-{parent}-00");
    let r = gw.request(&Req::chat(GATEWAY_KEY, &body(false)).header("traceparent", &theirs));
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(
        traceparent_of(&heads.lock().unwrap()[1]).as_deref(),
        Some(theirs.as_str())
    );
    // No client context, sampled: a new trace starts here and goes upstream.
    let r = gw.request(&Req::chat(GATEWAY_KEY, &body(false)));
    assert_eq!(r.status(), 200, "{}", r.text());
    let sent = traceparent_of(&heads.lock().unwrap()[2]).expect("a new traceparent upstream");
    assert!(
        sent.starts_with("00-") && sent.ends_with("-01") && !sent.contains(trace_id),
        "{sent}"
    );
}

#[test]
fn ratio_zero_exports_nothing_and_sends_no_traceparent() {
    let (rx, gw, heads) = capturing_gateway("0");
    for _ in 0..5 {
        let r = gw.request(&Req::chat(GATEWAY_KEY, &body(false)));
        assert_eq!(r.status(), 200, "{}", r.text());
    }
    std::thread::sleep(Duration::from_millis(800));
    assert!(rx.spans.lock().unwrap().is_empty());
    assert!(heads.lock().unwrap().iter().all(|h| traceparent_of(h).is_none()));
    assert_eq!(gw.metric("sluice_traces_queued_total"), Some(0.0));
    // A bad ratio is a configuration error.
    let (status, err) = Gateway::run_to_exit(
        Driver::Uring,
        "",
        GatewayOpts::default()
            .arg("--otlp-endpoint", Some(&rx.url()))
            .arg("--trace-sample", Some("1.5")),
    );
    assert_eq!(status.code(), Some(64), "{err}");
    assert!(err.contains("--trace-sample"), "{err}");
}
