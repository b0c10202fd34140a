//! Hostile and unusual upstreams, on both drivers: what the client gets, what
//! the record says, and that the gateway keeps serving afterwards.
//!
//! Each case puts a [`Scripted`] upstream (raw bytes on demand) behind the
//! data plane on routes of its own (`fake-gpt`, OpenAI; `fake-claude`,
//! Anthropic), next to the usual mock on the usual routes. The rules are the
//! protocols': RFC 9112 framing, RFC 9110 §7.6.1 hop-by-hop fields, the SSE
//! spec, and the contract of issue 2 (a bad or unreachable upstream is a 502
//! in the caller's format; truncation is never repaired). After every hostile
//! case a normal request through the same gateway must succeed.
//!
//! "Not pooled" is observed from the upstream's side: the scripted upstream
//! holds the connection open after its hostile answer, so it only sees the
//! connection close if the gateway closed it; and a later request arriving on
//! a new connection shows the old one was not reused.

// Test code: a failed unwrap is a failed test. (clippy.toml's test allowances
// cover #[test] functions only, not the per-case functions they call.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use sluice_tests::fake::{Scripted, Step};
use sluice_tests::http::{Chunk, Req, Response};
use sluice_tests::stack::{
    anthropic_body, base, openai_body, Stack, ANTHROPIC_MODEL, GATEWAY_KEY, OPENAI_MODEL, PROVIDER_KEY,
    TENANT,
};
use sluice_tests::{both_drivers, sse, vocab, Driver, Gateway, GatewayOpts, Mock, MockOpts, WAIT};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

both_drivers!(
    garbage_response_head,
    closes_before_or_inside_head,
    content_length_with_chunked,
    conflicting_content_lengths,
    unsupported_transfer_codings,
    bad_chunk_mid_stream,
    bad_chunk_with_the_head,
    head_comes_with_the_first_events,
    chunk_extensions_and_trailers,
    interim_responses_are_not_final,
    oversized_response_head,
    http10_body_until_close,
    extra_bytes_after_response,
    late_bytes_on_idle_connection,
    stale_pooled_connection,
    stalled_non_streamed_body,
    odd_but_valid_sse,
    errors_inside_200,
    hop_by_hop_headers,
    operator_key_header_policy,
    tls_pooled_connection_is_reused,
    lf_only_and_bare_status_lines,
    compressed_answers_despite_identity,
);

/// The OpenAI route served by the scripted upstream.
const FAKE_GPT: &str = "fake-gpt";
/// The Anthropic route served by the scripted upstream.
const FAKE_CLAUDE: &str = "fake-claude";

/// A data plane (one worker, so that every request sees the same pool) in
/// front of the mock and a scripted upstream.
struct Rig {
    stack: Stack,
    fake: Scripted,
}

fn rig(d: Driver, script: impl Fn(usize) -> Vec<Step> + Send + Sync + 'static) -> Rig {
    rig_with(d, GatewayOpts::default(), script)
}

fn rig_with(
    d: Driver,
    opts: GatewayOpts,
    script: impl Fn(usize) -> Vec<Step> + Send + Sync + 'static,
) -> Rig {
    let fake = Scripted::start(script);
    let fake_url = fake.url();
    let opts = GatewayOpts { workers: 1, ..opts };
    let stack = Stack::custom(d, opts, |url| {
        base()
            .upstream("mock", "openai", url, None)
            .upstream("mock-anthropic", "anthropic", url, None)
            .upstream("fake", "openai", &fake_url, None)
            .upstream("fake-anthropic", "anthropic", &fake_url, None)
            .route(Some(TENANT), OPENAI_MODEL, &[("mock", "pk")])
            .route(Some(TENANT), ANTHROPIC_MODEL, &[("mock-anthropic", "pk")])
            .route(Some(TENANT), FAKE_GPT, &[("fake", "pk")])
            .route(Some(TENANT), FAKE_CLAUDE, &[("fake-anthropic", "pk")])
    });
    Rig { stack, fake }
}

impl Rig {
    fn chat_req(stream: bool) -> Req {
        Req::chat(GATEWAY_KEY, &openai_body(FAKE_GPT, stream))
    }

    fn messages_req(stream: bool) -> Req {
        Req::messages(GATEWAY_KEY, &anthropic_body(FAKE_CLAUDE, stream))
    }

    /// A chat completion from the scripted upstream, on a fresh connection.
    fn chat(&self, stream: bool) -> Response {
        self.stack.gw.request(&Rig::chat_req(stream))
    }

    /// A message from the scripted upstream, on a fresh connection.
    fn messages(&self, stream: bool) -> Response {
        self.stack.gw.request(&Rig::messages_req(stream))
    }

    /// The first `n` records of requests to the scripted upstream, in order.
    #[track_caller]
    fn records(&self, n: usize) -> Vec<Value> {
        let fake = |r: &Value| r["model"] == FAKE_GPT || r["model"] == FAKE_CLAUDE;
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let all: Vec<Value> = self.stack.gw.records().all().into_iter().filter(fake).collect();
            if all.len() >= n {
                for r in &all {
                    sluice_tests::records::assert_shape(r);
                }
                return all;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "expected {n} records of the scripted upstream; got:\n{}",
                self.stack.gw.records().dump()
            );
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
    }

    /// The `i`th record of requests to the scripted upstream.
    #[track_caller]
    fn record(&self, i: usize) -> Value {
        self.records(i + 1)[i].clone()
    }

    /// The gateway is alive and serves normal requests on both APIs.
    #[track_caller]
    fn assert_healthy(&mut self) {
        self.stack.gw.assert_alive();
        let r = self
            .stack
            .chat(&openai_body(OPENAI_MODEL, true), &[("x-mock-tokens", "5")]);
        assert_eq!(r.status(), 200, "{}", r.text());
        assert!(r.complete);
        assert_eq!(sse::openai_text(&sse::parse(&r.body)), vocab::text(5));
        let r = self
            .stack
            .messages(&anthropic_body(ANTHROPIC_MODEL, false), &[("x-mock-tokens", "3")]);
        assert_eq!(r.status(), 200, "{}", r.text());
        assert_eq!(r.json()["content"][0]["text"], vocab::text(3));
        self.stack.gw.wait_metric("sluice_active_streams", 0.0);
        self.stack.gw.assert_alive();
    }

    /// The gateway closed `n` upstream connections (it held none of them open).
    #[track_caller]
    fn wait_upstream_closed(&self, n: usize) {
        self.fake
            .wait(&format!("{n} connections closed by the gateway"), |f| {
                f.peer_closed() >= n
            });
    }
}

// ---------------------------------------------------------------------------
// What the scripted upstream says.

/// The body of a well-formed non-streamed chat completion saying `content`.
fn completion_json(content: &str) -> String {
    format!(
        concat!(
            r#"{{"id":"chatcmpl-fake","object":"chat.completion","created":1,"model":"fake-gpt","#,
            r#""choices":[{{"index":0,"message":{{"role":"assistant","content":"{}"}},"finish_reason":"stop"}}],"#,
            r#""usage":{{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}}}"#
        ),
        content
    )
}

/// A whole keep-alive `200` with a JSON body.
fn json_response(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A good non-streamed answer saying `content`.
fn ok(content: &str) -> Step {
    Step::Send(json_response(&completion_json(content)))
}

/// `pieces` in chunked framing, with the last chunk.
fn chunked(pieces: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in pieces {
        out.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// One chunk (without the last chunk).
fn chunk(p: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", p.len()).into_bytes();
    out.extend_from_slice(p);
    out.extend_from_slice(b"\r\n");
    out
}

const SSE_HEAD: &str =
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";

fn openai_chunk(content: &str) -> String {
    format!(
        "data: {{\"id\":\"chatcmpl-fake\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"fake-gpt\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}},\"finish_reason\":null}}]}}\n\n"
    )
}

/// The usage-only chunk OpenAI sends when asked (the gateway always asks, and
/// strips it when the client did not).
const OPENAI_USAGE: &str = "data: {\"id\":\"chatcmpl-fake\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"fake-gpt\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}\n\n";

/// An OpenAI stream saying `texts`: (what the upstream sends, what a client
/// that did not ask for usage must get).
fn openai_stream(texts: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let mut client = String::new();
    for t in texts {
        client.push_str(&openai_chunk(t));
    }
    let sent = format!("{client}{OPENAI_USAGE}data: [DONE]\n\n");
    client.push_str("data: [DONE]\n\n");
    (sent.into_bytes(), client.into_bytes())
}

/// An Anthropic stream saying `texts`, reporting 25 input and `out` output tokens.
fn anthropic_stream(texts: &[&str], out: u64) -> Vec<u8> {
    let mut s = String::from(concat!(
        "event: message_start\n",
        r#"data: {"type":"message_start","message":{"id":"msg_fake","type":"message","role":"assistant","content":[],"model":"fake-claude","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1}}}"#,
        "\n\n",
        "event: content_block_start\n",
        r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        "\n\n"
    ));
    for t in texts {
        s.push_str(&format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{t}\"}}}}\n\n"
        ));
    }
    s.push_str(&format!(
        concat!(
            "event: content_block_stop\n",
            r#"data: {{"type":"content_block_stop","index":0}}"#,
            "\n\n",
            "event: message_delta\n",
            r#"data: {{"type":"message_delta","delta":{{"stop_reason":"end_turn","stop_sequence":null}},"usage":{{"output_tokens":{}}}}}"#,
            "\n\n",
            "event: message_stop\n",
            r#"data: {{"type":"message_stop"}}"#,
            "\n\n"
        ),
        out
    ));
    s.into_bytes()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn send(s: &str) -> Step {
    Step::Send(s.as_bytes().to_vec())
}

// ---------------------------------------------------------------------------
// Cases.

/// Not HTTP/1.x at all: a 502 in the caller's format, the connection closed
/// (never pooled), and a later request served on a new connection.
fn garbage_response_head(d: Driver) {
    let bad: Vec<Vec<u8>> = vec![
        b"this is not http at all\r\n\r\n".to_vec(),
        // An HTTP/2 server preface: a SETTINGS frame.
        b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64".to_vec(),
        b"HTTP/2 200\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}".to_vec(),
        b"HTTP/1.1 OK\r\ncontent-length: 2\r\n\r\n{}".to_vec(),
        b"HTTP/1.1 200 OK\r\nbad header line\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-nul: a\x00b\r\n\r\n{}".to_vec(),
        // A switch to another protocol nobody asked for (RFC 9110 §15.2.2):
        // whatever follows is not an HTTP/1.1 answer, however it looks.
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\nconnection: upgrade\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}".to_vec(),
    ];
    let n_bad = bad.len();
    let mut rig = rig(d, move |n| match bad.get(n) {
        Some(b) => vec![Step::Send(b.clone()), Step::Hold],
        None => vec![ok("fine")],
    });
    for i in 0..n_bad {
        // Alternate the APIs: each error comes in its caller's format.
        if i % 2 == 0 {
            let e = rig.chat(i % 4 == 0).assert_openai_error(502);
            assert!(!e["message"].as_str().unwrap().is_empty());
        } else {
            rig.messages(i % 4 == 1).assert_anthropic_error(502);
        }
        rig.wait_upstream_closed(i + 1);
        let rec = rig.record(i);
        assert_eq!(rec["status"], 502, "{rec}");
        assert_eq!(rec["outcome"], "upstream_unavailable", "{rec}");
        assert_eq!(rec["error"], "upstream_protocol", "{rec}");
        assert_eq!(rec["attempts"], 1, "{rec}");
    }
    let r = rig.chat(false);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.json()["choices"][0]["message"]["content"], "fine");
    assert_eq!(
        rig.fake.connections(),
        n_bad + 1,
        "a connection that carried garbage was reused"
    );
    rig.assert_healthy();
}

/// The upstream closes before sending a byte, or inside the head: 502.
fn closes_before_or_inside_head(d: Driver) {
    let mut rig = rig(d, |n| match n {
        0 | 2 => vec![Step::Close],
        1 | 3 => vec![send("HTTP/1.1 200 OK\r\ncontent-type: text/event-s"), Step::Close],
        _ => vec![ok("fine")],
    });
    rig.chat(true).assert_openai_error(502);
    rig.chat(false).assert_openai_error(502);
    rig.messages(true).assert_anthropic_error(502);
    rig.messages(false).assert_anthropic_error(502);
    for rec in rig.records(4) {
        assert_eq!(rec["status"], 502, "{rec}");
        assert_eq!(rec["outcome"], "upstream_unavailable", "{rec}");
        assert!(rec["error"].is_string(), "{rec}");
        assert_eq!(rec["events"], 0, "{rec}");
        assert!(rec["usage"].is_null(), "{rec}");
    }
    let r = rig.chat(false);
    assert_eq!(r.status(), 200, "{}", r.text());
    rig.assert_healthy();
}

/// Content-Length beside Transfer-Encoding: chunked (RFC 9112 §6.3 item 3):
/// the message is handled as an error (a 502), or, if forwarded, with the
/// Transfer-Encoding's framing and without the Content-Length. Either way the
/// connection to the upstream is closed and the client's own connection
/// stays in step: its next request gets its own answer.
fn content_length_with_chunked(d: Driver) {
    // Read by its Content-Length (2 bytes) the body would be `{}` and a
    // smuggled second response would follow.
    let smuggled = "HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nSMUGGLED";
    let payload = format!("{{}}\r\n\r\n{smuggled}");
    let body = chunked(&[payload.as_bytes()]);
    let mut response = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
    response.extend_from_slice(&body);
    let response2 = response.clone();
    let mut rig = rig(d, move |n| match n {
        0 => vec![Step::Send(response2.clone()), Step::Hold],
        // TE listed first this time.
        1 => vec![
            Step::Send(
                String::from_utf8_lossy(&response2)
                    .replace(
                        "content-length: 2\r\ntransfer-encoding: chunked",
                        "transfer-encoding: chunked\r\ncontent-length: 2",
                    )
                    .into_bytes(),
            ),
            Step::Hold,
        ],
        _ => vec![ok("fine")],
    });
    let mut c = rig.stack.gw.connect();
    for i in 0..2 {
        let r = c.roundtrip(&Rig::chat_req(false));
        if r.status() == 502 {
            r.assert_openai_error(502);
        } else {
            assert_eq!(r.status(), 200, "{}", r.text());
            assert!(r.complete);
            assert!(r.head.is_chunked(), "{:?}", r.head);
            assert!(
                r.header("content-length").is_none(),
                "Content-Length forwarded beside Transfer-Encoding: {:?}",
                r.head
            );
            assert_eq!(r.body, payload.as_bytes());
        }
        rig.wait_upstream_closed(i + 1);
        // The client's connection is still in step (if the gateway kept it).
        if !r.head.closes() {
            let next = c.roundtrip(
                &Req::chat(GATEWAY_KEY, &openai_body(OPENAI_MODEL, false)).header("x-mock-tokens", "2"),
            );
            assert_eq!(next.status(), 200, "{}", next.text());
            assert_eq!(next.json()["choices"][0]["message"]["content"], vocab::text(2));
        } else {
            assert!(c.closed_within(WAIT));
            c = rig.stack.gw.connect();
        }
    }
    drop(c);
    let r = rig.chat(false);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.json()["choices"][0]["message"]["content"], "fine");
    assert_eq!(rig.fake.connections(), 3, "a smuggling connection was reused");
    rig.assert_healthy();
}

/// Differing Content-Lengths (RFC 9110 §8.6, RFC 9112 §6.3 item 5): 502.
/// A list of identical values is valid and passes.
fn conflicting_content_lengths(d: Driver) {
    let body = completion_json("twice");
    let len = body.len();
    let bad: Vec<String> = vec![
        format!("content-length: {len}\r\ncontent-length: {}", len + 1),
        format!("content-length: {len}, {}", len - 1),
        "content-length: -1".into(),
        "content-length: 0x10".into(),
        format!("content-length: {len}abc"),
    ];
    let n_bad = bad.len();
    let body2 = body.clone();
    let mut rig = rig(d, move |n| {
        match bad.get(n) {
        Some(cl) => vec![
            Step::Send(format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{cl}\r\n\r\n{body2}").into_bytes()),
            Step::Hold,
        ],
        None => vec![Step::Send(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len}\r\ncontent-length: {len}, {len}\r\n\r\n{body2}"
            )
            .into_bytes(),
        )],
    }
    });
    for i in 0..n_bad {
        if i % 2 == 0 {
            rig.chat(false).assert_openai_error(502);
        } else {
            rig.messages(false).assert_anthropic_error(502);
        }
        rig.wait_upstream_closed(i + 1);
        let rec = rig.record(i);
        assert_eq!(rec["status"], 502, "{rec}");
        assert_eq!(rec["error"], "upstream_protocol", "{rec}");
    }
    let r = rig.chat(false);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.body, body.as_bytes());
    assert_eq!(r.header("content-length"), Some(len.to_string().as_str()));
    assert_eq!(
        r.head
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .count(),
        1,
        "{:?}",
        r.head
    );
    rig.assert_healthy();
}

/// Transfer codings the gateway never asked for (it sends no TE, so only
/// chunked may come: RFC 9112 §7.4), and Transfer-Encoding in an HTTP/1.0
/// response (faulty framing: RFC 9112 §6.1): the body cannot be relayed
/// faithfully, so 502, and the connection is closed.
fn unsupported_transfer_codings(d: Driver) {
    let payload = completion_json("coded");
    let body = chunked(&[payload.as_bytes()]);
    let bad: Vec<Vec<u8>> = vec![
        cat(&[
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
            &body,
        ]),
        cat(&[
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n",
            &body,
        ]),
        cat(&[
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: identity\r\n\r\n",
            payload.as_bytes(),
        ]),
        cat(&[
            b"HTTP/1.0 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
            &body,
        ]),
    ];
    let n_bad = bad.len();
    let good = cat(&[
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: Chunked\r\n\r\n",
        &body,
    ]);
    let mut rig = rig(d, move |n| match bad.get(n) {
        Some(b) => vec![Step::Send(b.clone()), Step::Hold],
        None => vec![Step::Send(good.clone())],
    });
    for i in 0..n_bad {
        let r = rig.chat(false);
        assert_ne!(
            r.body, body,
            "the chunk framing reached the client as payload: {:?}",
            r.head
        );
        r.assert_openai_error(502);
        rig.wait_upstream_closed(i + 1);
        let rec = rig.record(i);
        assert_eq!(rec["error"], "upstream_protocol", "{rec}");
    }
    // `Chunked` in any letter case is chunked.
    let r = rig.chat(false);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert!(r.complete);
    assert_eq!(r.body, payload.as_bytes());
    rig.assert_healthy();
}

/// An invalid chunk size after some good events: the client keeps what came
/// (no final chunk, no forged [DONE]), the connection is closed, the record
/// says truncated, and the upstream connection is closed too.
fn bad_chunk_mid_stream(d: Driver) {
    let anth = anthropic_stream(&["Hello", " world"], 2);
    let go = Arc::new(AtomicBool::new(false));
    let go2 = go.clone();
    // The first two events, then garbage where a chunk size belongs.
    let oa_two = openai_chunk("Hello") + &openai_chunk(" world");
    let anth_cut = anth.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
    let anth_two = anth[..anth_cut].to_vec();
    let anth_two2 = anth_two.clone();
    let mut rig = rig(d, move |n| {
        let first = match n {
            0 => chunk(oa_two.as_bytes()),
            1 => chunk(&anth_two2),
            _ => return vec![ok("fine")],
        };
        vec![
            Step::Send(cat(&[SSE_HEAD.as_bytes(), &first])),
            Step::Wait(go2.clone()),
            send("zz\r\nthis is not a chunk\r\n"),
            Step::Hold,
        ]
    });

    let mut c = rig.stack.gw.connect();
    c.send_req(&Rig::chat_req(true));
    let head = c.read_head();
    assert_eq!(head.status, 200);
    let mut got = Vec::new();
    while sse::parse(&got).len() < 2 {
        match c.read_chunk() {
            Chunk::Data(d) => got.extend_from_slice(&d),
            other => panic!("stream ended early: {other:?}"),
        }
    }
    go.store(true, Ordering::SeqCst);
    loop {
        match c.read_chunk() {
            Chunk::Data(d) => got.extend_from_slice(&d),
            Chunk::Last => panic!("a final chunk was forged after the upstream's framing broke"),
            Chunk::Closed => break,
        }
    }
    assert!(c.closed_within(WAIT));
    let events = sse::parse(&got);
    assert_eq!(sse::openai_text(&events), "Hello world");
    assert!(!sse::openai_done(&events), "a [DONE] was forged");
    rig.wait_upstream_closed(1);
    let rec = rig.record(0);
    assert_eq!(rec["status"], 200, "{rec}");
    assert_eq!(rec["outcome"], "truncated", "{rec}");
    assert_eq!(rec["events"], 2, "{rec}");
    assert!(
        rec["error"].is_string(),
        "a broken framing deserves a label: {rec}"
    );

    // Anthropic: relayed as the upstream framed it.
    go.store(false, Ordering::SeqCst);
    let mut c = rig.stack.gw.connect();
    c.send_req(&Rig::messages_req(true));
    assert_eq!(c.read_head().status, 200);
    let mut got = Vec::new();
    while got.len() < anth_two.len() {
        match c.read_chunk() {
            Chunk::Data(d) => got.extend_from_slice(&d),
            other => panic!("stream ended early: {other:?}"),
        }
    }
    go.store(true, Ordering::SeqCst);
    loop {
        match c.read_chunk() {
            Chunk::Data(d) => got.extend_from_slice(&d),
            Chunk::Last => panic!("a final chunk was forged after the upstream's framing broke"),
            Chunk::Closed => break,
        }
    }
    assert_eq!(got, anth_two);
    assert!(c.closed_within(WAIT));
    rig.wait_upstream_closed(2);
    let rec = rig.record(1);
    assert_eq!(rec["outcome"], "truncated", "{rec}");
    assert_eq!(rec["events"], 1, "{rec}");

    let r = rig.chat(false);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(rig.fake.connections(), 3);
    rig.assert_healthy();
}

/// Broken framing in the same read as the head (which the gateway sends
/// together with the first events when they come with it): the client still
/// gets the head, then the connection closes; nothing is forged.
fn bad_chunk_with_the_head(d: Driver) {
    let mut rig = rig(d, move |n| match n {
        0 => vec![
            Step::Send(cat(&[
                SSE_HEAD.as_bytes(),
                &chunk(openai_chunk("Hello").as_bytes()),
                b"zz\r\nthis is not a chunk\r\n",
            ])),
            Step::Hold,
        ],
        1 | 2 => vec![
            Step::Send(cat(&[SSE_HEAD.as_bytes(), b"zz\r\nnot a chunk either\r\n"])),
            Step::Hold,
        ],
        _ => vec![ok("fine")],
    });
    // The third passes as it came (Anthropic): its head also waits for the
    // bytes read with it, and still goes out when they turn out broken.
    let reqs = [Rig::chat_req(true), Rig::chat_req(true), Rig::messages_req(true)];
    for (i, text) in ["Hello", "", ""].into_iter().enumerate() {
        let mut c = rig.stack.gw.connect();
        c.send_req(&reqs[i]);
        let head = c.read_head();
        assert_eq!(head.status, 200, "request {i}");
        let mut got = Vec::new();
        loop {
            match c.read_chunk() {
                Chunk::Data(d) => got.extend_from_slice(&d),
                Chunk::Last => panic!("request {i}: a final chunk was forged"),
                Chunk::Closed => break,
            }
        }
        let events = sse::parse(&got);
        assert_eq!(sse::openai_text(&events), text, "request {i}");
        assert!(!sse::openai_done(&events), "request {i}: a [DONE] was forged");
        assert!(i < 2 || got.is_empty(), "request {i}: {got:?}");
        rig.wait_upstream_closed(i + 1);
        let rec = rig.record(i);
        assert_eq!(rec["outcome"], "truncated", "{rec}");
        assert!(rec["bytes_out"].as_u64().unwrap() > 0, "the head was sent: {rec}");
    }
    let r = rig.chat(false);
    assert_eq!(r.status(), 200, "{}", r.text());
    rig.assert_healthy();
}

/// The head and the first events come in one upstream write: the client gets
/// them in one write too (one read here, with the rest of the stream held
/// back meanwhile), whether the bytes pass as they came (Anthropic) or are
/// re-framed (OpenAI without `include_usage`); and then the rest, whole.
fn head_comes_with_the_first_events(d: Driver) {
    let anth = anthropic_stream(&["Hello", " world"], 2);
    let anth_cut = anth.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
    let (oa, oa_client) = openai_stream(&["Hello", " world"]);
    let oa_cut = oa.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
    let flags = [Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false))];
    let (anth2, oa2, flags2) = (anth.clone(), oa.clone(), flags.clone());
    let mut rig = rig(d, move |n| {
        let (body, cut) = match n {
            0 => (&anth2, anth_cut),
            1 => (&oa2, oa_cut),
            _ => return vec![ok("fine")],
        };
        vec![
            Step::Send(cat(&[SSE_HEAD.as_bytes(), &chunk(&body[..cut])])),
            Step::Wait(flags2[n].clone()),
            Step::Send(cat(&[&chunk(&body[cut..]), b"0\r\n\r\n"])),
        ]
    });
    let cases = [
        (Rig::messages_req(true), &anth[..anth_cut], anth.clone()),
        (Rig::chat_req(true), &oa[..oa_cut], oa_client),
    ];
    for (i, (req, first, whole)) in cases.into_iter().enumerate() {
        let mut c = rig.stack.gw.connect();
        c.send_req(&req);
        let got = c.read_once().to_vec();
        let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| {
            panic!(
                "request {i}: the first read lacks a whole head: {:?}",
                String::from_utf8_lossy(&got)
            )
        });
        assert!(
            got[head_end..].windows(first.len()).any(|w| w == first),
            "request {i}: the first event did not come with the head: {:?}",
            String::from_utf8_lossy(&got)
        );
        flags[i].store(true, Ordering::SeqCst);
        let r = c.read_response();
        assert_eq!(r.status(), 200, "request {i}");
        assert!(r.complete, "request {i}: {}", r.text());
        assert_eq!(r.body, whole, "request {i}");
        let rec = rig.record(i);
        assert_eq!(rec["outcome"], "ok", "{rec}");
    }
    rig.assert_healthy();
}

/// Chunk extensions and trailers are valid (RFC 9112 §7.1.1, §7.1.2): the
/// stream passes whole, and the connection is clean enough to reuse.
fn chunk_extensions_and_trailers(d: Driver) {
    let (oa_sent, oa_client) = openai_stream(&["Hello", " world"]);
    let anth = anthropic_stream(&["Hello", " world"], 2);
    let framed = |body: &[u8]| -> Vec<u8> {
        let (a, b) = body.split_at(body.len() / 3);
        let mut out = SSE_HEAD.as_bytes().to_vec();
        out.extend_from_slice(format!("{:x};foo=bar;quoted=\"a \\\" b\"\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(format!("{:X} ; ext\r\n", b.len()).as_bytes());
        out.extend_from_slice(b);
        out.extend_from_slice(b"\r\n0;last=1\r\nx-trailer: yes\r\nx-checksum: abc\r\n\r\n");
        out
    };
    let (oa, an) = (framed(&oa_sent), framed(&anth));
    let mut rig = rig(d, move |n| match n {
        0 => vec![Step::Send(oa.clone())],
        1 => vec![Step::Send(an.clone())],
        _ => vec![ok("fine")],
    });
    let r = rig.chat(true);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert!(r.complete, "{}", r.text());
    assert_eq!(r.body, oa_client);
    let r = rig.messages(true);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert!(r.complete, "{}", r.text());
    assert_eq!(r.body, anth);
    let oa_rec = rig.record(0);
    assert_eq!(oa_rec["outcome"], "ok", "{oa_rec}");
    assert_eq!(oa_rec["events"], 4, "{oa_rec}");
    assert_eq!(oa_rec["usage"]["output_tokens"], 2, "{oa_rec}");
    let an_rec = rig.record(1);
    assert_eq!(an_rec["outcome"], "ok", "{an_rec}");
    assert_eq!(an_rec["events"], 7, "{an_rec}");
    assert_eq!(an_rec["usage"]["input_tokens"], 25, "{an_rec}");
    assert_eq!(an_rec["usage"]["output_tokens"], 2, "{an_rec}");
    let r = rig.chat(false);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(rig.fake.connections(), 1, "a clean connection was not reused");
    rig.assert_healthy();
}

/// 1xx interim responses (100, 103 with headers) before the real answer:
/// never taken for the final response, and their fields stay theirs.
fn interim_responses_are_not_final(d: Driver) {
    let anth = anthropic_stream(&["early"], 1);
    let interim = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload\r\nx-early: 1\r\n\r\n";
    let go = Arc::new(AtomicBool::new(false));
    let go2 = go.clone();
    let anth2 = anth.clone();
    let mut rig = rig(d, move |n| match n {
        0 => vec![Step::Send(cat(&[
            interim.as_bytes(),
            &json_response(&completion_json("after hints")),
        ]))],
        // Interim responses in their own writes, the stream after a pause.
        1 => vec![
            send("HTTP/1.1 103 Early Hints\r\nlink: </a>; rel=preload\r\n\r\n"),
            Step::Wait(go2.clone()),
            send("HTTP/1.1 100 Continue\r\n\r\n"),
            Step::Send(cat(&[SSE_HEAD.as_bytes(), &chunked(&[&anth2])])),
        ],
        _ => vec![ok("fine")],
    });
    let r = rig.chat(false);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert!(r.interim.iter().all(|s| (100..200).contains(s)));
    assert!(
        r.header("link").is_none() && r.header("x-early").is_none(),
        "{:?}",
        r.head
    );
    assert_eq!(r.json()["choices"][0]["message"]["content"], "after hints");
    let mut c = rig.stack.gw.connect();
    c.send_req(&Rig::messages_req(true));
    rig.fake.wait("the second request", |f| f.requests() >= 2);
    go.store(true, Ordering::SeqCst);
    let r = c.read_response();
    assert_eq!(r.status(), 200, "{}", r.text());
    assert!(r.complete);
    assert!(r.header("link").is_none(), "{:?}", r.head);
    assert_eq!(r.body, anth);
    let rec = rig.record(1);
    assert_eq!(rec["status"], 200, "{rec}");
    assert_eq!(rec["outcome"], "ok", "{rec}");
    let r = rig.chat(false);
    assert_eq!(r.status(), 200, "{}", r.text());
    rig.assert_healthy();
}

/// A response head beyond the gateway's bound (64 KiB), or with more fields
/// than it parses: 502, connection closed.
fn oversized_response_head(d: Driver) {
    let huge = format!(
        "HTTP/1.1 200 OK\r\nx-big: {}\r\ncontent-length: 2\r\n\r\n{{}}",
        "a".repeat(100 * 1024)
    );
    let mut many = String::from("HTTP/1.1 200 OK\r\n");
    for i in 0..300 {
        many.push_str(&format!("x-h{i}: {i}\r\n"));
    }
    many.push_str("content-length: 2\r\n\r\n{}");
    // Just over the bound, complete in one write.
    let just_over = format!(
        "HTTP/1.1 200 OK\r\nx-big: {}\r\ncontent-length: 2\r\n\r\n{{}}",
        "b".repeat(64 * 1024)
    );
    let bad = [huge, many, just_over];
    let mut rig = rig(d, move |n| match bad.get(n) {
        Some(b) => vec![send(b), Step::Hold],
        None => vec![ok("fine")],
    });
    rig.chat(false).assert_openai_error(502);
    rig.wait_upstream_closed(1);
    rig.messages(true).assert_anthropic_error(502);
    rig.wait_upstream_closed(2);
    rig.chat(true).assert_openai_error(502);
    rig.wait_upstream_closed(3);
    for rec in rig.records(3) {
        assert_eq!(rec["status"], 502, "{rec}");
        assert_eq!(rec["error"], "upstream_protocol", "{rec}");
    }
    let r = rig.chat(false);
    assert_eq!(r.status(), 200, "{}", r.text());
    rig.assert_healthy();
}

/// An HTTP/1.0 upstream streaming SSE with no length (the body ends at the
/// close, RFC 9112 §6.3 item 8): the HTTP/1.1 client gets every byte in a
/// framing it can read (chunked, or close-delimited with the connection
/// closed), and the record says ok.
fn http10_body_until_close(d: Driver) {
    let (oa_sent, oa_client) = openai_stream(&["Hello", " from", " 1.0"]);
    let anth = anthropic_stream(&["Hello", " from", " 1.0"], 3);
    let head = "HTTP/1.0 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\r\n";
    let (oa2, an2) = (oa_sent.clone(), anth.clone());
    let mut rig = rig(d, move |n| match n {
        0 => {
            let (a, b) = oa2.split_at(oa2.len() / 2);
            vec![
                Step::Send(cat(&[head.as_bytes(), a])),
                Step::Pause(std::time::Duration::from_millis(20)),
                Step::Send(b.to_vec()),
                Step::Close,
            ]
        }
        1 => vec![Step::Send(cat(&[head.as_bytes(), &an2])), Step::Close],
        _ => vec![ok("fine")],
    });
    let check_framing = |r: &Response| {
        assert_eq!(r.status(), 200, "{}", r.text());
        assert!(r.complete, "{}", r.text());
        assert!(r.header("content-length").is_none(), "{:?}", r.head);
        assert!(
            r.head.is_chunked() || r.head.closes(),
            "neither chunked nor closing: an HTTP/1.1 client cannot find the end: {:?}",
            r.head
        );
        assert_eq!(r.header("cache-control"), Some("no-cache"));
    };
    let mut c = rig.stack.gw.connect();
    let r = c.roundtrip(&Rig::chat_req(true));
    check_framing(&r);
    assert_eq!(r.body, oa_client);
    if r.head.is_chunked() && !r.head.closes() {
        // Kept alive: the connection must still work.
        let next = c.roundtrip(&Req::chat(GATEWAY_KEY, &openai_body(OPENAI_MODEL, false)));
        assert_eq!(next.status(), 200, "{}", next.text());
    } else {
        assert!(c.closed_within(WAIT));
    }
    let r = rig.messages(true);
    check_framing(&r);
    assert_eq!(r.body, anth);
    let rec = rig.record(0);
    assert_eq!(rec["outcome"], "ok", "{rec}");
    assert_eq!(rec["events"], 5, "{rec}");
    assert_eq!(rec["usage"]["output_tokens"], 2, "{rec}");
    let rec = rig.record(1);
    assert_eq!(rec["outcome"], "ok", "{rec}");
    assert_eq!(rec["events"], 8, "{rec}");
    assert_eq!(rec["usage"]["output_tokens"], 3, "{rec}");
    let r = rig.chat(false);
    assert_eq!(r.status(), 200, "{}", r.text());
    rig.assert_healthy();
}

/// Bytes beyond the end of a response, in the same write (an upstream out of
/// step with itself): the client gets exactly the response, and the
/// connection is not reused.
fn extra_bytes_after_response(d: Driver) {
    let evil = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 17\r\n\r\n{\"evil\":\"answer\"}";
    let payload = completion_json("first");
    let mut rig = rig(d, move |n| match n {
        0 => vec![Step::Send(cat(&[
            &json_response(&completion_json("first")),
            evil.as_bytes(),
        ]))],
        1 => vec![Step::Send(cat(&[
            SSE_HEAD.as_bytes(),
            &chunked(&[&anthropic_stream(&["second"], 1)]),
            evil.as_bytes(),
        ]))],
        n => vec![ok(&format!("answer {n}"))],
    });
    let r = rig.chat(false);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.body, payload.as_bytes());
    let r = rig.messages(true);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert!(r.complete);
    assert_eq!(sse::anthropic_text(&sse::parse(&r.body)), "second");
    for i in 2..4 {
        let r = rig.chat(false);
        assert_eq!(r.status(), 200, "{}", r.text());
        assert_eq!(
            r.json()["choices"][0]["message"]["content"],
            format!("answer {i}"),
            "a response meant for another request: {}",
            r.text()
        );
    }
    assert_eq!(
        rig.fake.connections(),
        3,
        "connections that sent extra bytes must not be reused (the last one may be)"
    );
    let rec = rig.record(0);
    assert_eq!(rec["outcome"], "ok", "{rec}");
    rig.assert_healthy();
}

/// Bytes that arrive on a pooled connection while it is idle: the upstream
/// is out of step, and whatever it sent must never be taken for the answer
/// to the next request (a response meant for no one, perhaps for another
/// tenant). The next request gets its own answer, on a fresh connection.
fn late_bytes_on_idle_connection(d: Driver) {
    let evil = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 17\r\n\r\n{\"evil\":\"answer\"}";
    let go = Arc::new(AtomicBool::new(false));
    let go2 = go.clone();
    let mut rig = rig(d, move |n| match n {
        0 => vec![ok("first"), Step::Wait(go2.clone()), send(evil)],
        n => vec![ok(&format!("answer {n}"))],
    });
    let r = rig.chat(false);
    assert_eq!(r.json()["choices"][0]["message"]["content"], "first");
    go.store(true, Ordering::SeqCst);
    rig.fake.wait("the late bytes sent", |f| f.scripts_done() >= 1);
    // Loopback delivers a write before it returns; give the gateway's socket
    // a moment all the same (an ordering aid, not a timed assertion).
    std::thread::sleep(std::time::Duration::from_millis(50));
    let r = rig.chat(false);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(
        r.json()["choices"][0]["message"]["content"],
        "answer 1",
        "bytes an idle upstream connection received were taken for the next answer: {}",
        r.text()
    );
    let r = rig.messages(false);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(r.json()["choices"][0]["message"]["content"], "answer 2");
    rig.wait_upstream_closed(1);
    assert_eq!(rig.fake.connections(), 2);
    rig.assert_healthy();
}

/// A pooled connection the upstream closed while it sat idle: the next
/// request still succeeds, on a fresh connection (nothing was answered on
/// the stale one, so nothing is lost).
fn stale_pooled_connection(d: Driver) {
    let mut rig = rig(d, |n| match n {
        0 | 2 => vec![ok(&format!("answer {n}")), Step::Close],
        n => vec![ok(&format!("answer {n}"))],
    });
    for i in 0..4 {
        if i == 1 || i == 3 {
            rig.fake.wait("the upstream closing its idle connection", |f| {
                f.scripts_done() >= i
            });
        }
        let r = if i % 2 == 0 {
            rig.chat(false)
        } else {
            rig.messages(false)
        };
        assert_eq!(r.status(), 200, "request {i}: {}", r.text());
        assert_eq!(
            r.json()["choices"][0]["message"]["content"],
            format!("answer {i}")
        );
        let rec = rig.record(i);
        assert_eq!(rec["outcome"], "ok", "{rec}");
        assert_eq!(rec["attempts"], 1, "a reconnect is not a fallback: {rec}");
    }
    assert_eq!(rig.fake.requests(), 4, "a request was sent twice");
    // 0 on the first; 1 and 2 on the second; 3 on the third.
    assert_eq!(rig.fake.connections(), 3);
    rig.assert_healthy();
}

/// The upstream sends part of a non-streamed body, then nothing, keeping
/// the connection: cut off at the idle timeout, truncated, not repaired.
fn stalled_non_streamed_body(d: Driver) {
    let body = completion_json("stalled");
    let half = body.len() / 2;
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let first = cat(&[head.as_bytes(), &body.as_bytes()[..half]]);
    let opts = GatewayOpts::default().arg("--upstream-idle-timeout-ms", Some("300"));
    let mut rig = rig_with(d, opts, move |n| match n {
        0 => vec![Step::Send(first.clone()), Step::Hold],
        _ => vec![ok("fine")],
    });
    let mut c = rig.stack.gw.connect();
    let r = c.roundtrip(&Rig::chat_req(false));
    assert_eq!(r.status(), 200);
    assert!(!r.complete, "a body cut short was completed");
    assert_eq!(r.body, &body.as_bytes()[..half]);
    assert!(c.closed_within(WAIT));
    rig.wait_upstream_closed(1);
    let rec = rig.record(0);
    assert_eq!(rec["outcome"], "truncated", "{rec}");
    assert_eq!(rec["error"], "upstream_idle_timeout", "{rec}");
    assert!(rec["usage"].is_null(), "{rec}");
    let r = rig.chat(false);
    assert_eq!(r.status(), 200, "{}", r.text());
    rig.assert_healthy();
}

/// Unusual but valid event streams pass byte for byte: an event larger than
/// the framer's bound (1 MiB), invalid UTF-8 inside data, a BOM, CR-only and
/// mixed line ends. The record counts what it could frame.
fn odd_but_valid_sse(d: Driver) {
    let big = format!(
        "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n",
        "x".repeat(1_200_000)
    );
    let mut invalid_utf8 = openai_chunk("ok").into_bytes();
    // A stray continuation byte and a truncated sequence inside the JSON string.
    let at = invalid_utf8.windows(4).position(|w| w == b"\"ok\"").unwrap() + 1;
    invalid_utf8.splice(at..at, b"\x80\xE2\x82".iter().copied());
    let (oa_sent, oa_client) = openai_stream(&["Hello", " world"]);
    let split_at = oa_client.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
    // OpenAI: BOM, event 1, the big event, invalid UTF-8, event 2, usage, [DONE].
    let assemble = |parts: &[&[u8]]| -> Vec<u8> { parts.concat() };
    let oa_rest_sent = &oa_sent[split_at..];
    let oa_rest_client = &oa_client[split_at..];
    let oa_up = assemble(&[
        b"\xEF\xBB\xBF",
        &oa_sent[..split_at],
        big.as_bytes(),
        &invalid_utf8,
        oa_rest_sent,
    ]);
    let oa_down = assemble(&[
        b"\xEF\xBB\xBF",
        &oa_client[..split_at],
        big.as_bytes(),
        &invalid_utf8,
        oa_rest_client,
    ]);
    // CR-only line ends throughout, the usage-only event included.
    let cr_up: Vec<u8> = oa_sent
        .iter()
        .map(|&b| if b == b'\n' { b'\r' } else { b })
        .collect();
    let cr_down: Vec<u8> = oa_client
        .iter()
        .map(|&b| if b == b'\n' { b'\r' } else { b })
        .collect();
    // Anthropic: BOM, CRLF line ends, the big event in the middle, invalid UTF-8.
    let anth = anthropic_stream(&["Hello", " world"], 2);
    let anth_crlf = String::from_utf8(anth.clone()).unwrap().replace('\n', "\r\n");
    let cut = anth_crlf.find("event: content_block_stop").unwrap();
    let anth_up = assemble(&[
        b"\xEF\xBB\xBF",
        &anth_crlf.as_bytes()[..cut],
        big.as_bytes(),
        b"event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\xFF\xFE\"}}\r\n\r\n",
        &anth_crlf.as_bytes()[cut..],
    ]);
    // Sent in 64 KiB chunks, so the big event spans many reads.
    let frame = |body: &[u8]| -> Vec<u8> {
        let pieces: Vec<&[u8]> = body.chunks(64 * 1024).collect();
        cat(&[SSE_HEAD.as_bytes(), &chunked(&pieces)])
    };
    let scripts = [frame(&oa_up), frame(&cr_up), frame(&anth_up)];
    let mut rig = rig(d, move |n| match scripts.get(n) {
        Some(s) => vec![Step::Send(s.clone())],
        None => vec![ok("fine")],
    });

    let r = rig.chat(true);
    assert_eq!(r.status(), 200);
    assert!(r.complete);
    assert!(
        r.body == oa_down,
        "the OpenAI stream was altered ({} bytes, {} expected)",
        r.body.len(),
        oa_down.len()
    );
    let r = rig.chat(true);
    assert_eq!(r.status(), 200);
    assert!(r.complete);
    assert_eq!(
        String::from_utf8_lossy(&r.body),
        String::from_utf8_lossy(&cr_down),
        "CR-only line ends"
    );
    let r = rig.messages(true);
    assert_eq!(r.status(), 200);
    assert!(r.complete);
    assert!(
        r.body == anth_up,
        "the Anthropic stream was altered ({} bytes, {} expected)",
        r.body.len(),
        anth_up.len()
    );

    let recs = rig.records(3);
    // Role-less chunks: Hello, (big: over the bound, not framed), invalid
    // UTF-8, world, usage, [DONE].
    assert_eq!(recs[0]["outcome"], "ok", "{}", recs[0]);
    assert_eq!(recs[0]["events"], 5, "{}", recs[0]);
    assert_eq!(recs[0]["usage"]["output_tokens"], 2, "{}", recs[0]);
    assert_eq!(recs[1]["outcome"], "ok", "{}", recs[1]);
    assert_eq!(recs[1]["events"], 4, "{}", recs[1]);
    assert_eq!(recs[1]["usage"]["output_tokens"], 2, "{}", recs[1]);
    assert_eq!(recs[2]["outcome"], "ok", "{}", recs[2]);
    assert_eq!(recs[2]["events"], 8, "{}", recs[2]);
    assert_eq!(recs[2]["usage"]["input_tokens"], 25, "{}", recs[2]);
    assert_eq!(recs[2]["usage"]["output_tokens"], 2, "{}", recs[2]);
    let r = rig.chat(false);
    assert_eq!(r.status(), 200, "{}", r.text());
    assert_eq!(
        rig.fake.connections(),
        1,
        "valid streams should leave the connection reusable"
    );
    rig.assert_healthy();
}

/// A 200 that carries an error (a JSON error body; an error event inside a
/// stream): passed through untouched, and the record claims no usage the
/// upstream did not report.
fn errors_inside_200(d: Driver) {
    let json_error =
        r#"{"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}"#;
    let oa_stream = format!(
        "{}data: {{\"error\":{{\"message\":\"The server had an error\",\"type\":\"server_error\",\"param\":null,\"code\":null}}}}\n\n",
        openai_chunk("Hel")
    );
    let anth = anthropic_stream(&["Hel"], 9);
    let cut = String::from_utf8_lossy(&anth)
        .find("event: content_block_stop")
        .unwrap();
    let anth_err = cat(&[
        &anth[..cut],
        b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
    ]);
    let (s1, s2) = (oa_stream.clone(), anth_err.clone());
    let mut rig = rig(d, move |n| match n {
        0 => vec![Step::Send(json_response(json_error))],
        1 => vec![Step::Send(cat(&[
            SSE_HEAD.as_bytes(),
            &chunked(&[s1.as_bytes()]),
        ]))],
        2 => vec![Step::Send(cat(&[SSE_HEAD.as_bytes(), &chunked(&[&s2])]))],
        _ => vec![ok("fine")],
    });
    let r = rig.chat(false);
    assert_eq!(r.status(), 200);
    assert_eq!(r.body, json_error.as_bytes());
    let r = rig.chat(true);
    assert_eq!(r.status(), 200);
    assert!(r.complete);
    assert_eq!(r.body, oa_stream.as_bytes());
    let r = rig.messages(true);
    assert_eq!(r.status(), 200);
    assert!(r.complete);
    assert_eq!(r.body, anth_err);
    let recs = rig.records(3);
    for rec in &recs {
        assert_eq!(rec["status"], 200, "{rec}");
        assert_ne!(rec["outcome"], "truncated", "{rec}");
    }
    assert!(
        recs[0]["usage"].is_null(),
        "usage invented for an error body: {}",
        recs[0]
    );
    assert!(
        recs[1]["usage"].is_null(),
        "usage invented for a failed stream: {}",
        recs[1]
    );
    assert_eq!(recs[1]["events"], 2, "{}", recs[1]);
    // The streams ended without their terminator: not truncated (the
    // framing was whole) but incomplete, and the record says which.
    assert_eq!(recs[0]["error"], Value::Null, "{}", recs[0]);
    assert_eq!(recs[1]["error"], "stream_incomplete", "{}", recs[1]);
    assert_eq!(recs[2]["error"], "stream_incomplete", "{}", recs[2]);
    // Anthropic reported 25 in, 1 out at message_start, and nothing after.
    assert_eq!(recs[2]["usage"]["input_tokens"], 25, "{}", recs[2]);
    assert_eq!(recs[2]["usage"]["output_tokens"], 1, "{}", recs[2]);
    assert_eq!(recs[2]["events"], 4, "{}", recs[2]);
    let r = rig.chat(false);
    assert_eq!(r.status(), 200, "{}", r.text());
    rig.assert_healthy();
}

/// Hop-by-hop fields (RFC 9110 §7.6.1) stop at the gateway, in both
/// directions, including those the Connection field names. Upstream, only
/// the allowlisted client fields go; back, providers' request ids and (from
/// a tenant's own key) rate-limit fields pass, cookies never.
fn hop_by_hop_headers(d: Driver) {
    let body = completion_json("headers");
    let response = format!(
        concat!(
            "HTTP/1.1 200 OK\r\n",
            "content-type: application/json\r\n",
            "Connection: keep-alive, X-Foo\r\n",
            "connection: x-bar\r\n",
            "X-Foo: secret-foo\r\n",
            "X-Bar: secret-bar\r\n",
            "Keep-Alive: timeout=5, max=100\r\n",
            "Upgrade: h2c\r\n",
            "Proxy-Authenticate: Basic realm=\"up\"\r\n",
            "Proxy-Connection: keep-alive\r\n",
            "Set-Cookie: a=1; Path=/\r\n",
            "Set-Cookie: b=2; Path=/\r\n",
            "x-request-id: req_fake_123\r\n",
            "openai-processing-ms: 42\r\n",
            "openai-organization: org-fake\r\n",
            "x-ratelimit-remaining-requests: 99\r\n",
            "anthropic-ratelimit-requests-remaining: 49\r\n",
            "request-id: req_anthropic_1\r\n",
            "content-length: {}\r\n",
            "\r\n",
            "{}"
        ),
        body.len(),
        body
    );
    let mut rig = rig(d, move |_| vec![send(&response)]);
    for (i, req) in [Rig::chat_req(false), Rig::messages_req(false)]
        .into_iter()
        .enumerate()
    {
        let req = req
            .header("Connection", "keep-alive, X-Client-Hop")
            .header("X-Client-Hop", "client-secret")
            .header("x-client-e2e", "stays")
            .header("Cookie", "session=client")
            .header("OpenAI-Organization", "org-client")
            .header("X-Stainless-Lang", "rust")
            .header(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            );
        let r = rig.stack.gw.request(&req);
        assert_eq!(r.status(), 200, "{}", r.text());
        assert_eq!(r.body, body.as_bytes());
        for hop in [
            "x-foo",
            "x-bar",
            "keep-alive",
            "upgrade",
            "proxy-authenticate",
            "proxy-connection",
        ] {
            assert!(
                r.header(hop).is_none(),
                "hop-by-hop {hop} forwarded: {:?}",
                r.head
            );
        }
        let conn: Vec<&str> = r
            .head
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(conn.len(), 1, "{:?}", r.head);
        assert!(!conn[0].to_ascii_lowercase().contains("x-"), "{:?}", r.head);
        let cookies: Vec<&str> = r
            .head
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert!(cookies.is_empty(), "{:?}", r.head);
        for (name, value) in [
            ("x-request-id", "req_fake_123"),
            ("openai-processing-ms", "42"),
            ("openai-organization", "org-fake"),
            ("x-ratelimit-remaining-requests", "99"),
            ("anthropic-ratelimit-requests-remaining", "49"),
            ("request-id", "req_anthropic_1"),
        ] {
            assert_eq!(r.header(name), Some(value), "{:?}", r.head);
        }
        let up = rig.fake.head(i).to_ascii_lowercase();
        assert!(
            !up.contains("x-client-hop"),
            "the client's hop-by-hop field went upstream:\n{up}"
        );
        for stays in ["x-client-e2e", "cookie", "openai-organization"] {
            assert!(!up.contains(stays), "{stays} went upstream:\n{up}");
        }
        assert!(up.contains("x-stainless-lang: rust"), "{up}");
        assert!(
            up.contains("traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            "{up}"
        );
    }
    rig.assert_healthy();
}

/// An operator-wide provider key (no tenant): the gateway sends the key's
/// `OpenAI-Organization`/`OpenAI-Project`, never the client's; back to the
/// client go neither cookies nor the account's rate-limit state and ids,
/// unless the key says `pass_rate_limit_headers`; `retry-after` always does.
fn operator_key_header_policy(d: Driver) {
    let body = completion_json("policy");
    let response = format!(
        concat!(
            "HTTP/1.1 200 OK\r\n",
            "content-type: application/json\r\n",
            "Set-Cookie: __cf_bm=abc; Path=/\r\n",
            "set-cookie2: old=1\r\n",
            "x-request-id: req_fake_9\r\n",
            "openai-organization: org-operator\r\n",
            "openai-project: proj-operator\r\n",
            "x-ratelimit-remaining-requests: 99\r\n",
            "X-RateLimit-Limit-Tokens: 30000000\r\n",
            "anthropic-ratelimit-requests-remaining: 49\r\n",
            "anthropic-ratelimit-tokens-reset: 2026-01-01T00:00:00Z\r\n",
            "retry-after: 3\r\n",
            "content-length: {}\r\n",
            "\r\n",
            "{}"
        ),
        body.len(),
        body
    );
    let fake = Scripted::start(move |_| vec![send(&response)]);
    let fake_url = fake.url();
    let opts = GatewayOpts {
        workers: 1,
        ..GatewayOpts::default()
    };
    let stack = Stack::custom(d, opts, |url| {
        base()
            .provider_key("op", None, "MOCK_KEY")
            .provider_key_settings("organization = \"org-op\"\nproject = \"proj_op\"")
            .provider_key("op-pass", None, "MOCK_KEY")
            .provider_key_settings("pass_rate_limit_headers = true")
            .upstream("mock", "openai", url, None)
            .upstream("fake", "openai", &fake_url, None)
            .upstream("fake-anthropic", "anthropic", &fake_url, None)
            .route(Some(TENANT), OPENAI_MODEL, &[("mock", "op")])
            .route(Some(TENANT), FAKE_GPT, &[("fake", "op")])
            .route(Some(TENANT), FAKE_CLAUDE, &[("fake-anthropic", "op")])
            .route(Some(TENANT), "fake-gpt-pass", &[("fake", "op-pass")])
    });
    let account = [
        "openai-organization",
        "openai-project",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-limit-tokens",
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-tokens-reset",
    ];
    let client = |req: Req| {
        req.header("OpenAI-Organization", "org-client")
            .header("OpenAI-Project", "proj-client")
            .header("Cookie", "session=client")
            .header("x-forwarded-for", "10.0.0.1")
            .header("X-Stainless-Package-Version", "1.2.3")
            .header("Idempotency-Key", "idem-1")
    };
    let reqs = [
        Req::chat(GATEWAY_KEY, &openai_body(FAKE_GPT, false)),
        Req::messages(GATEWAY_KEY, &anthropic_body(FAKE_CLAUDE, false)),
    ];
    for (i, req) in reqs.into_iter().enumerate() {
        let r = stack.gw.request(&client(req));
        assert_eq!(r.status(), 200, "{}", r.text());
        assert_eq!(r.body, body.as_bytes());
        for gone in account.iter().chain(&["set-cookie", "set-cookie2"]) {
            assert!(
                r.header(gone).is_none(),
                "{gone} reached the client: {:?}",
                r.head
            );
        }
        assert_eq!(r.header("retry-after"), Some("3"), "{:?}", r.head);
        assert_eq!(r.header("x-request-id"), Some("req_fake_9"), "{:?}", r.head);
        let up = fake.head(i).to_ascii_lowercase();
        for stays in ["org-client", "proj-client", "cookie", "x-forwarded-for"] {
            assert!(!up.contains(stays), "{stays} went upstream:\n{up}");
        }
        assert!(up.contains("x-stainless-package-version: 1.2.3"), "{up}");
        assert!(up.contains("idempotency-key: idem-1"), "{up}");
        // The key's organization and project go to OpenAI only.
        assert_eq!(up.contains("openai-organization: org-op"), i == 0, "{up}");
        assert_eq!(up.contains("openai-project: proj_op"), i == 0, "{up}");
    }
    // The snapshot lets this operator-wide key's account headers through.
    let r = stack.gw.request(&client(Req::chat(
        GATEWAY_KEY,
        &openai_body("fake-gpt-pass", false),
    )));
    assert_eq!(r.status(), 200, "{}", r.text());
    assert!(r.header("set-cookie").is_none(), "{:?}", r.head);
    assert_eq!(
        r.header("x-ratelimit-remaining-requests"),
        Some("99"),
        "{:?}",
        r.head
    );
    assert_eq!(
        r.header("anthropic-ratelimit-requests-remaining"),
        Some("49"),
        "{:?}",
        r.head
    );
    assert_eq!(
        r.header("openai-organization"),
        Some("org-operator"),
        "{:?}",
        r.head
    );
    let up = fake.head(2).to_ascii_lowercase();
    assert!(!up.contains("openai-organization"), "{up}");
    // The mock sees what a provider would: the allowlist, the key's ids.
    let r = stack.gw.request(&client(
        Req::chat(GATEWAY_KEY, &openai_body(OPENAI_MODEL, false)).header("x-mock-tokens", "3"),
    ));
    assert_eq!(r.status(), 200, "{}", r.text());
    let last = stack.mock.last();
    let headers = last["headers"].as_object().unwrap();
    let names: Vec<String> = headers.keys().map(|k| k.to_ascii_lowercase()).collect();
    let bearer = format!("Bearer {PROVIDER_KEY}");
    for (name, value) in [
        ("openai-organization", "org-op"),
        ("openai-project", "proj_op"),
        ("idempotency-key", "idem-1"),
        ("x-stainless-package-version", "1.2.3"),
        ("x-mock-tokens", "3"),
        ("authorization", bearer.as_str()),
    ] {
        let got = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str().unwrap_or_default().to_owned());
        assert_eq!(got.as_deref(), Some(value), "{name}: {names:?}");
    }
    for stays in ["cookie", "x-forwarded-for"] {
        assert!(!names.iter().any(|n| n == stays), "{stays}: {names:?}");
    }
}

/// The idle check before reuse must not turn healthy pooled connections
/// away: over TLS (where session tickets and alerts travel in records of
/// their own) a second and third request reuse the first connection.
fn tls_pooled_connection_is_reused(d: Driver) {
    let mock = Mock::start(MockOpts {
        tls: true,
        require_key: Some(PROVIDER_KEY.into()),
        ..MockOpts::default()
    });
    let cert = mock.cert.clone().expect("a certificate");
    let snap = base()
        .upstream(
            "tls",
            "openai",
            &format!("https://localhost:{}", mock.addr.port()),
            None,
        )
        .route(Some(TENANT), OPENAI_MODEL, &[("tls", "pk")]);
    let opts = GatewayOpts {
        workers: 1,
        ..GatewayOpts::default()
    }
    .env("MOCK_KEY", PROVIDER_KEY)
    .arg("--ca-file", Some(cert.to_str().unwrap()));
    let gw = Gateway::start(d, &snap, opts);
    for stream in [true, false, true] {
        let r = gw.request(
            &Req::chat(GATEWAY_KEY, &openai_body(OPENAI_MODEL, stream)).header("x-mock-tokens", "4"),
        );
        assert_eq!(r.status(), 200, "{}", r.text());
        assert!(r.complete);
    }
    gw.records().wait_count(3);
    assert_eq!(
        gw.metric("sluice_upstream_connects_total"),
        Some(1.0),
        "{}",
        gw.metrics()
    );
    assert_eq!(
        gw.metric("sluice_upstream_reuses_total"),
        Some(2.0),
        "{}",
        gw.metrics()
    );
}

/// Heads whose lines end in a bare LF (a recipient MAY accept them, RFC 9112
/// §2.2), and a status line without a reason phrase: accepted, the status
/// kept, and the client gets a well-formed CRLF head of the gateway's own.
fn lf_only_and_bare_status_lines(d: Driver) {
    let payload = completion_json("lf");
    let body = chunked(&[payload.as_bytes()]);
    let responses: Vec<Vec<u8>> = vec![
        cat(&[
            b"HTTP/1.1 200 OK\ncontent-type: application/json\ntransfer-encoding: chunked\n\n",
            &body,
        ]),
        format!(
            "HTTP/1.1 200 OK\ncontent-type: application/json\ncontent-length: {}\n\n{payload}",
            payload.len()
        )
        .into_bytes(),
        format!(
            "HTTP/1.1 201\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{payload}",
            payload.len()
        )
        .into_bytes(),
    ];
    let mut rig = rig(d, move |n| match responses.get(n) {
        Some(r) => vec![Step::Send(r.clone())],
        None => vec![ok("fine")],
    });
    for (status, reason) in [(200, "OK"), (200, "OK"), (201, "")] {
        let r = rig.chat(false);
        assert_eq!(r.status(), status, "{:?} {}", r.head, r.text());
        assert_eq!(r.head.reason, reason, "{:?}", r.head);
        assert!(r.complete);
        assert_eq!(r.header("content-type"), Some("application/json"), "{:?}", r.head);
        assert_eq!(r.body, payload.as_bytes());
    }
    let r = rig.chat(false);
    assert_eq!(r.status(), 200, "{}", r.text());
    rig.assert_healthy();
}

/// The gateway asks for `identity`; an upstream that compresses anyway is
/// still metered: a JSON body passes on as sent (the client reads its
/// `content-encoding`) and its usage is read from a decoded copy, while an
/// event stream it could not read (nor bill) is refused with 502 before any
/// byte of it reaches the client.
fn compressed_answers_despite_identity(d: Driver) {
    use std::io::Write;
    let json = r#"{"id":"c1","object":"chat.completion","model":"fake-gpt","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}"#;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(json.as_bytes()).unwrap();
    let gz = e.finish().unwrap();
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\ncontent-length: {}\r\n\r\n",
        gz.len()
    );
    let json_answer = cat(&[head.as_bytes(), &gz]);
    let sse_answer = cat(&[
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n",
        &chunked(&[&gz]),
    ]);
    let rig = rig(d, move |n| match n {
        0 => vec![Step::Send(json_answer.clone())],
        _ => vec![Step::Send(sse_answer.clone())],
    });
    let r = rig.chat(false);
    assert_eq!(r.status(), 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.body, gz, "passed on as the provider sent it");
    let r = rig.chat(true);
    r.assert_openai_error(502);
    let recs = rig.records(2);
    assert_eq!(recs[0]["usage"]["input_tokens"], 7, "{}", recs[0]);
    assert_eq!(recs[0]["usage"]["output_tokens"], 3, "{}", recs[0]);
    assert_eq!(recs[1]["status"], 502, "{}", recs[1]);
    assert_eq!(recs[1]["outcome"], "upstream_unavailable", "{}", recs[1]);
}
