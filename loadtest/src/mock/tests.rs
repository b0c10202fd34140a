//! The mock over real sockets: raw HTTP/1.1 from a std `TcpStream` (and
//! rustls for TLS), checked against the providers' documented formats.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde_json::Value;

use super::split::Split;
use super::text::push_json_str;
use super::text::VOCAB;
use super::{spawn, MockArgs, MockServer};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: MockArgs,
}

fn start(extra: &[&str]) -> MockServer {
    let mut argv = vec!["mock", "--listen", "127.0.0.1:0"];
    if !extra.contains(&"--workers") {
        argv.extend(["--workers", "1"]);
    }
    argv.extend_from_slice(extra);
    spawn(&Cli::try_parse_from(argv).expect("mock flags").args).expect("start the mock")
}

/// Both drivers: the default (io_uring here) and epoll.
const DRIVERS: [&[&str]; 2] = [&[], &["--epoll"]];

fn text(n: usize) -> String {
    (0..n).map(|i| VOCAB[i % VOCAB.len()]).collect()
}

/// A response as read off the wire.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    /// The de-chunked body.
    body: Vec<u8>,
    /// Each HTTP chunk's data, in order.
    chunks: Vec<Vec<u8>>,
    /// The body ended properly (terminating chunk, or all Content-Length bytes).
    complete: bool,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }
}

/// A raw HTTP/1.1 client over any byte stream.
struct Client<S> {
    s: S,
    buf: Vec<u8>,
    eof: bool,
}

impl Client<TcpStream> {
    fn connect(addr: SocketAddr) -> Self {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        Client::new(s)
    }
}

impl<S: Read + Write> Client<S> {
    fn new(s: S) -> Self {
        Self {
            s,
            buf: Vec::new(),
            eof: false,
        }
    }

    fn send(&mut self, raw: &[u8]) {
        self.s.write_all(raw).expect("send");
        self.s.flush().expect("flush");
    }

    fn roundtrip(&mut self, raw: &[u8]) -> Resp {
        self.send(raw);
        self.read_response()
    }

    /// Reads more; false at end of stream (a reset counts as the end).
    fn fill(&mut self) -> bool {
        let mut tmp = [0u8; 4096];
        match self.s.read(&mut tmp) {
            Ok(0) => {
                self.eof = true;
                false
            }
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                self.eof = true;
                false
            }
            Err(e) => panic!("read failed: {e}"),
        }
    }

    /// Whether the server closed the connection (after what was read).
    fn closed(&mut self) -> bool {
        self.buf.is_empty() && !self.fill()
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        self.buf.drain(..n).collect()
    }

    fn read_response(&mut self) -> Resp {
        loop {
            let (status, headers, len) = loop {
                let mut hs = [httparse::EMPTY_HEADER; 64];
                let mut r = httparse::Response::new(&mut hs);
                if let httparse::Status::Complete(n) = r.parse(&self.buf).expect("response head") {
                    let headers = r
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_ascii_lowercase(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect::<Vec<_>>();
                    break (r.code.expect("status"), headers, n);
                }
                assert!(self.fill(), "connection closed before a response head");
            };
            self.take(len);
            if status == 100 {
                continue;
            }
            let mut resp = Resp {
                status,
                headers,
                body: Vec::new(),
                chunks: Vec::new(),
                complete: false,
            };
            if resp
                .header("transfer-encoding")
                .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
            {
                self.read_chunked(&mut resp);
            } else {
                let n: usize = resp
                    .header("content-length")
                    .expect("content-length")
                    .parse()
                    .expect("length");
                while self.buf.len() < n && self.fill() {}
                let got = n.min(self.buf.len());
                resp.body = self.take(got);
                resp.complete = got == n;
            }
            return resp;
        }
    }

    fn read_chunked(&mut self, resp: &mut Resp) {
        loop {
            let (at, size) = loop {
                match httparse::parse_chunk_size(&self.buf).expect("chunk size") {
                    httparse::Status::Complete((at, size)) => break (at, size as usize),
                    httparse::Status::Partial if self.fill() => {}
                    httparse::Status::Partial => return,
                }
            };
            if size == 0 {
                while !self.buf[at..].starts_with(b"\r\n") {
                    assert!(self.fill(), "closed inside the last chunk");
                }
                self.take(at + 2);
                resp.complete = true;
                return;
            }
            while self.buf.len() < at + size + 2 {
                if !self.fill() {
                    return;
                }
            }
            assert_eq!(
                &self.buf[at + size..at + size + 2],
                b"\r\n",
                "chunk data ends with CRLF"
            );
            let data = self.buf[at..at + size].to_vec();
            self.take(at + size + 2);
            resp.body.extend_from_slice(&data);
            resp.chunks.push(data);
        }
    }
}

fn post(path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut raw = format!("POST {path} HTTP/1.1\r\nhost: mock\r\ncontent-type: application/json\r\n");
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    raw.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    raw.into_bytes()
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: mock\r\n\r\n").into_bytes()
}

/// 40 bytes of message text: 10 prompt tokens.
const PROMPT: &str = "Say hello to the mock, please. Thank you";

fn chat(stream: bool, include_usage: bool) -> String {
    let mut v = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": &PROMPT[..20]},
            {"role": "user", "content": [{"type": "text", "text": &PROMPT[20..]}]},
        ],
        "stream": stream,
    });
    if include_usage {
        v["stream_options"] = serde_json::json!({"include_usage": true});
    }
    v.to_string()
}

fn messages(stream: bool) -> String {
    serde_json::json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": &PROMPT[..20],
        "messages": [{"role": "user", "content": [{"type": "text", "text": &PROMPT[20..]}]}],
        "stream": stream,
    })
    .to_string()
}

/// SSE events of a body: (event name, data) in order; each must end in a blank line.
fn sse(body: &[u8]) -> Vec<(Option<String>, String)> {
    let s = std::str::from_utf8(body).expect("UTF-8 stream");
    assert!(s.ends_with("\n\n"), "stream ends with a blank line");
    s.split_terminator("\n\n")
        .map(|ev| {
            let mut name = None;
            let mut data = None;
            for line in ev.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    assert!(data.is_none(), "one data line per event");
                    data = Some(v.to_owned());
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            (name, data.expect("data line"))
        })
        .collect()
}

/// Checks an OpenAI stream and returns its reassembled text.
fn check_openai_stream(r: &Resp, include_usage: bool, tokens: usize) -> String {
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream; charset=utf-8"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert!(r.header("x-request-id").is_some_and(|v| v.starts_with("req_")));
    assert!(r.complete, "terminating chunk");
    let events = sse(&r.body);
    assert_eq!(events.len(), tokens + 3 + usize::from(include_usage));
    assert_eq!(events.last().map(|e| e.1.as_str()), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|(name, data)| {
            assert!(name.is_none());
            serde_json::from_str(data).expect("chunk JSON")
        })
        .collect();
    let id = chunks[0]["id"].as_str().expect("id");
    assert!(id.starts_with("chatcmpl-mock"));
    for c in &chunks {
        assert_eq!(c["id"], id);
        assert_eq!(c["object"], "chat.completion.chunk");
        assert!(c["created"].as_u64().is_some());
        assert_eq!(c["model"], "gpt-4o-mini");
        assert_eq!(
            c.get("usage").is_some(),
            include_usage,
            "usage key only with include_usage"
        );
    }
    let with_choices = if include_usage {
        &chunks[..chunks.len() - 1]
    } else {
        &chunks[..]
    };
    for c in with_choices {
        assert_eq!(c["choices"].as_array().map(Vec::len), Some(1));
        assert_eq!(c["choices"][0]["index"], 0);
        if include_usage {
            assert!(c["usage"].is_null());
        }
    }
    assert_eq!(
        with_choices[0]["choices"][0]["delta"],
        serde_json::json!({"role": "assistant", "content": "", "refusal": null})
    );
    let mut text = String::new();
    for c in &with_choices[1..with_choices.len() - 1] {
        assert!(c["choices"][0]["finish_reason"].is_null());
        let delta = c["choices"][0]["delta"].as_object().expect("delta");
        assert_eq!(delta.len(), 1);
        text.push_str(delta["content"].as_str().expect("content"));
    }
    let last = &with_choices[with_choices.len() - 1]["choices"][0];
    assert_eq!(last["delta"], serde_json::json!({}));
    assert_eq!(last["finish_reason"], "stop");
    if include_usage {
        let u = &chunks[chunks.len() - 1];
        assert_eq!(u["choices"], serde_json::json!([]));
        assert_eq!(
            u["usage"],
            serde_json::json!({
                "prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": 10 + tokens,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            })
        );
    }
    text
}

#[test]
fn openai_stream_with_and_without_usage() {
    for flags in DRIVERS {
        let m = start(flags);
        let mut c = Client::connect(m.addr);
        for include_usage in [false, true] {
            let r = c.roundtrip(&post("/v1/chat/completions", &[], &chat(true, include_usage)));
            assert_eq!(check_openai_stream(&r, include_usage, 16), text(16));
            // The default framing: one HTTP chunk per event.
            assert_eq!(r.chunks.len(), 16 + 3 + usize::from(include_usage));
            assert!(r
                .chunks
                .iter()
                .all(|c| c.starts_with(b"data: ") && c.ends_with(b"\n\n")));
        }
    }
}

/// Checks an Anthropic stream and returns its reassembled text.
fn check_anthropic_stream(r: &Resp, tokens: usize) -> String {
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream; charset=utf-8"));
    assert!(r.header("request-id").is_some_and(|v| v.starts_with("req_")));
    assert!(r.complete);
    let events = sse(&r.body);
    let mut names = vec!["message_start", "content_block_start", "ping"];
    names.resize(3 + tokens, "content_block_delta");
    names.extend(["content_block_stop", "message_delta", "message_stop"]);
    let got: Vec<&str> = events
        .iter()
        .map(|(n, _)| n.as_deref().expect("event name"))
        .collect();
    assert_eq!(got, names);
    let data: Vec<Value> = events
        .iter()
        .map(|(_, d)| serde_json::from_str(d).expect("data JSON"))
        .collect();
    for (name, d) in names.iter().zip(&data) {
        assert_eq!(d["type"], *name);
    }
    let msg = &data[0]["message"];
    assert!(msg["id"].as_str().is_some_and(|id| id.starts_with("msg_mock")));
    assert_eq!(msg["type"], "message");
    assert_eq!(msg["role"], "assistant");
    assert_eq!(msg["model"], "claude-sonnet-4-5");
    assert_eq!(msg["content"], serde_json::json!([]));
    assert!(msg["stop_reason"].is_null());
    assert_eq!(msg["usage"]["input_tokens"], 10);
    assert_eq!(msg["usage"]["output_tokens"], 1);
    assert_eq!(data[1]["index"], 0);
    assert_eq!(
        data[1]["content_block"],
        serde_json::json!({"type": "text", "text": ""})
    );
    let mut text = String::new();
    for d in &data[3..3 + tokens] {
        assert_eq!(d["index"], 0);
        assert_eq!(d["delta"]["type"], "text_delta");
        text.push_str(d["delta"]["text"].as_str().expect("text"));
    }
    assert_eq!(data[3 + tokens]["index"], 0);
    let delta = &data[4 + tokens];
    assert_eq!(
        delta["delta"],
        serde_json::json!({"stop_reason": "end_turn", "stop_sequence": null})
    );
    assert_eq!(delta["usage"], serde_json::json!({"output_tokens": tokens}));
    text
}

#[test]
fn anthropic_stream_event_sequence() {
    for flags in DRIVERS {
        let m = start(flags);
        let mut c = Client::connect(m.addr);
        let r = c.roundtrip(&post(
            "/v1/messages",
            &[("anthropic-version", "2023-06-01")],
            &messages(true),
        ));
        assert_eq!(check_anthropic_stream(&r, 16), text(16));
        assert_eq!(r.chunks.len(), 16 + 6);
    }
}

#[test]
fn non_stream_bodies_and_usage() {
    let m = start(&["--tokens", "20"]);
    let mut c = Client::connect(m.addr);
    let r = c.roundtrip(&post("/v1/chat/completions", &[], &chat(false, false)));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("openai-processing-ms").is_some());
    let v = r.json();
    assert!(v["id"].as_str().is_some_and(|id| id.starts_with("chatcmpl-mock")));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-4o-mini");
    assert_eq!(v["system_fingerprint"], "fp_mock");
    assert_eq!(
        v["choices"],
        serde_json::json!([{
            "index": 0,
            "message": {"role": "assistant", "content": text(20), "refusal": null},
            "logprobs": null,
            "finish_reason": "stop",
        }])
    );
    assert_eq!(v["usage"]["prompt_tokens"], 10);
    assert_eq!(v["usage"]["completion_tokens"], 20);
    assert_eq!(v["usage"]["total_tokens"], 30);

    let r = c.roundtrip(&post("/v1/messages", &[], &messages(false)));
    assert_eq!(r.status, 200);
    assert!(r.header("request-id").is_some());
    let v = r.json();
    assert!(v["id"].as_str().is_some_and(|id| id.starts_with("msg_mock")));
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-sonnet-4-5");
    assert_eq!(
        v["content"],
        serde_json::json!([{"type": "text", "text": text(20)}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert!(v["stop_sequence"].is_null());
    assert_eq!(
        v["usage"],
        serde_json::json!({
            "input_tokens": 10, "output_tokens": 20,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
        })
    );
}

#[test]
fn max_tokens_and_token_knob() {
    let m = start(&[]);
    let mut c = Client::connect(m.addr);
    let body = serde_json::json!({"model": "m", "messages": [], "max_completion_tokens": 3}).to_string();
    let v = c.roundtrip(&post("/v1/chat/completions", &[], &body)).json();
    assert_eq!(v["choices"][0]["message"]["content"], text(3));
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["prompt_tokens"], 1, "at least one prompt token");
    let r = c.roundtrip(&post(
        "/v1/chat/completions",
        &[("x-mock-tokens", "40")],
        &chat(true, true),
    ));
    assert_eq!(check_openai_stream(&r, true, 40), text(40));
    let r = c.roundtrip(&post(
        "/v1/chat/completions",
        &[("x-mock-tokens", "0")],
        &chat(true, false),
    ));
    assert_eq!(check_openai_stream(&r, false, 0), "");
    let body = serde_json::json!({"model": "c", "max_tokens": 5, "messages": []}).to_string();
    let v = c.roundtrip(&post("/v1/messages", &[], &body)).json();
    assert_eq!(v["content"][0]["text"], text(5));
    assert_eq!(v["stop_reason"], "max_tokens");
}

#[test]
fn split_modes_keep_the_payload() {
    for flags in DRIVERS {
        let m = start(flags);
        let mut c = Client::connect(m.addr);
        let reference = c.roundtrip(&post("/v1/messages", &[], &messages(true)));
        let payload = reference.body.clone();
        check_anthropic_stream(&reference, 16);
        for (split, itl) in [
            ("event", "0"),
            ("coalesce", "0"),
            ("bytes:1", "0"),
            ("bytes:7", "0"),
            ("utf8", "0"),
            ("event", "1"),
            ("bytes:5", "1"),
            ("utf8", "1"),
            ("coalesce", "1"),
        ] {
            let r = c.roundtrip(&post(
                "/v1/messages",
                &[("x-mock-split", split), ("x-mock-itl-ms", itl)],
                &messages(true),
            ));
            let ids = |b: &[u8]| String::from_utf8_lossy(b).replace(|c: char| c.is_ascii_hexdigit(), "");
            assert_eq!(ids(&r.body), ids(&payload), "split {split} itl {itl}");
            assert_eq!(check_anthropic_stream(&r, 16), text(16));
            match (split, itl) {
                ("coalesce", "0") => assert_eq!(r.chunks.len(), 1),
                // With a delay between tokens, each token is its own burst.
                ("coalesce", _) => assert_eq!(r.chunks.len(), 16),
                ("event", _) => assert_eq!(r.chunks.len(), 22),
                ("bytes:1", _) => assert!(r.chunks.iter().all(|c| c.len() == 1)),
                ("bytes:7", _) => assert!(r.chunks.iter().rev().skip(1).all(|c| c.len() == 7)),
                ("bytes:5", _) => assert!(r.chunks.iter().all(|c| c.len() <= 5)),
                _ => {
                    // utf8: every token event with a multi-byte character is
                    // cut inside it, so its first piece is not valid UTF-8.
                    let multibyte = (0..16).filter(|&i| !VOCAB[i].is_ascii()).count();
                    let broken = r
                        .chunks
                        .iter()
                        .filter(|c| std::str::from_utf8(c).is_err())
                        .count();
                    assert_eq!(broken, 2 * multibyte);
                    assert_eq!(r.chunks.len(), 22 + multibyte);
                }
            }
        }
    }
}

#[test]
fn pacing_knobs_keep_the_payload() {
    let m = start(&["--ttft-ms", "1", "--itl-ms", "1"]);
    let mut c = Client::connect(m.addr);
    let r = c.roundtrip(&post(
        "/v1/chat/completions",
        &[("x-mock-head-delay-ms", "1")],
        &chat(true, true),
    ));
    assert_eq!(check_openai_stream(&r, true, 16), text(16));
    let r = c.roundtrip(&post(
        "/v1/chat/completions",
        &[("x-mock-ttft-ms", "0")],
        &chat(false, false),
    ));
    assert_eq!(r.json()["choices"][0]["message"]["content"], text(16));
}

#[test]
fn truncate_and_reset_end_the_stream_without_the_last_chunk() {
    let m = start(&[]);
    for knob in ["x-mock-truncate-after", "x-mock-reset-after"] {
        let mut c = Client::connect(m.addr);
        let r = c.roundtrip(&post("/v1/chat/completions", &[(knob, "3")], &chat(true, false)));
        assert_eq!(r.status, 200);
        assert!(!r.complete, "{knob}: no terminating chunk");
        assert!(c.eof, "{knob}: connection closed");
        assert_eq!(
            r.body.iter().filter(|&&b| b == b'\n').count(),
            6,
            "{knob}: three events"
        );
        assert!(!String::from_utf8_lossy(&r.body).contains("[DONE]"));
    }
    // Non-streamed: the head promises more body than follows.
    let mut c = Client::connect(m.addr);
    let r = c.roundtrip(&post(
        "/v1/chat/completions",
        &[("x-mock-truncate-after", "10")],
        &chat(false, false),
    ));
    assert_eq!(r.body.len(), 10);
    assert!(!r.complete && c.eof);
}

#[test]
fn status_knob_answers_in_the_provider_shape() {
    let m = start(&[]);
    let mut c = Client::connect(m.addr);
    let r = c.roundtrip(&post(
        "/v1/chat/completions",
        &[("x-mock-status", "429")],
        &chat(true, false),
    ));
    assert_eq!(r.status, 429);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("retry-after"), Some("1"));
    let e = &r.json()["error"];
    assert_eq!(e["type"], "requests");
    assert_eq!(e["code"], "rate_limit_exceeded");
    assert!(e["param"].is_null());
    assert!(e["message"].is_string());
    let r = c.roundtrip(&post(
        "/v1/chat/completions",
        &[("x-mock-status", "500"), ("x-mock-error-type", "custom_error")],
        &chat(false, false),
    ));
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"]["type"], "custom_error");
    let r = c.roundtrip(&post(
        "/v1/messages",
        &[("x-mock-status", "529")],
        &messages(true),
    ));
    assert_eq!(r.status, 529);
    let v = r.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "overloaded_error");
    assert!(v["error"]["message"].is_string());
    let r = c.roundtrip(&post(
        "/v1/messages",
        &[("x-mock-status", "oops")],
        &messages(true),
    ));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
}

#[test]
fn a_mock_can_fail_every_request_by_flag() {
    let m = start(&["--status", "429", "--retry-after", "7", "--head-delay-ms", "150"]);
    let mut c = Client::connect(m.addr);
    let t = std::time::Instant::now();
    let r = c.roundtrip(&post("/v1/chat/completions", &[], &chat(false, false)));
    assert!(t.elapsed() >= Duration::from_millis(150), "the head waits");
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    // A header still overrides the flag, for one request.
    let r = c.roundtrip(&post(
        "/v1/chat/completions",
        &[("x-mock-status", "503"), ("x-mock-head-delay-ms", "0")],
        &chat(false, false),
    ));
    assert_eq!(r.status, 503);
}

#[test]
fn body_validation_errors() {
    let m = start(&[]);
    let mut c = Client::connect(m.addr);
    let body = serde_json::json!({"model": "c", "messages": []}).to_string();
    let r = c.roundtrip(&post("/v1/messages", &[], &body));
    assert_eq!(r.status, 400);
    let v = r.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("max_tokens")));
    let r = c.roundtrip(&post("/v1/chat/completions", &[], "{not json"));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    let r = c.roundtrip(&post("/v1/chat/completions", &[], r#"{"model":"m"}"#));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "messages");
    let r = c.roundtrip(&post("/v1/nope", &[], "{}"));
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["message"], "Invalid URL (POST /v1/nope)");
    let r = c.roundtrip(&get("/v1/chat/completions"));
    assert_eq!(r.status, 405);
}

#[test]
fn require_key_answers_401_in_the_provider_shape() {
    let m = start(&["--require-key", "sk-upstream"]);
    let mut c = Client::connect(m.addr);
    let r = c.roundtrip(&post("/v1/chat/completions", &[], &chat(false, false)));
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["code"], "invalid_api_key");
    let r = c.roundtrip(&post(
        "/v1/chat/completions",
        &[("authorization", "Bearer sk-wrong")],
        &chat(false, false),
    ));
    assert_eq!(r.status, 401);
    let r = c.roundtrip(&post(
        "/v1/chat/completions",
        &[("Authorization", "Bearer sk-upstream")],
        &chat(false, false),
    ));
    assert_eq!(r.status, 200);
    let r = c.roundtrip(&post(
        "/v1/messages",
        &[("x-api-key", "sk-wrong")],
        &messages(false),
    ));
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["type"], "authentication_error");
    let r = c.roundtrip(&post(
        "/v1/messages",
        &[("x-api-key", "sk-upstream")],
        &messages(false),
    ));
    assert_eq!(r.status, 200);
    // Newer Anthropic SDKs send the key as a bearer token.
    let r = c.roundtrip(&post(
        "/v1/messages",
        &[("authorization", "Bearer sk-upstream")],
        &messages(false),
    ));
    assert_eq!(r.status, 200);
    // The mock's own endpoints need no key.
    assert_eq!(c.roundtrip(&get("/healthz")).status, 200);
}

#[test]
fn keep_alive_chunked_bodies_and_continue() {
    for flags in DRIVERS {
        let m = start(flags);
        let mut c = Client::connect(m.addr);
        let r = c.roundtrip(&post("/v1/chat/completions", &[], &chat(true, false)));
        check_openai_stream(&r, false, 16);
        let r = c.roundtrip(&post("/v1/chat/completions", &[], &chat(false, false)));
        assert_eq!(r.status, 200);
        // A chunked request body, cut anywhere.
        let body = chat(false, false);
        let (a, b) = body.split_at(17);
        let raw = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: m\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\nx-trailer: 1\r\n\r\n",
            a.len(),
            b.len()
        );
        let r = c.roundtrip(raw.as_bytes());
        assert_eq!(r.json()["usage"]["prompt_tokens"], 10);
        // Expect: 100-continue gets its interim answer before the body is sent.
        let body = chat(false, false);
        c.send(
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\nhost: m\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        while !c.buf.windows(4).any(|w| w == b"\r\n\r\n") {
            assert!(c.fill());
        }
        assert!(c.buf.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"));
        let r = c.roundtrip(body.as_bytes());
        assert_eq!(r.status, 200);
        // Two requests in one write (pipelined).
        let mut two = get("/healthz");
        two.extend_from_slice(&get("/v1/models"));
        c.send(&two);
        assert_eq!(c.read_response().text(), "ok");
        let models = c.read_response().json();
        assert_eq!(models["object"], "list");
        assert!(models["data"]
            .as_array()
            .is_some_and(|d| d.iter().all(|m| m["object"] == "model")));
        // Connection: close is honoured.
        let r = c.roundtrip(b"GET /healthz HTTP/1.1\r\nconnection: close\r\n\r\n");
        assert_eq!(r.header("connection"), Some("close"));
        assert!(c.closed());
    }
}

#[test]
fn garbage_gets_400_and_close() {
    let m = start(&[]);
    let mut c = Client::connect(m.addr);
    let r = c.roundtrip(b"HELLO THERE\x01\r\n\r\n");
    assert_eq!(r.status, 400);
    assert!(c.closed());
    let mut c = Client::connect(m.addr);
    let r =
        c.roundtrip(b"POST /v1/messages HTTP/1.1\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n");
    assert_eq!(r.status, 400);
    assert!(c.closed());
}

#[test]
fn record_and_stats() {
    let m = start(&["--record"]);
    let mut c = Client::connect(m.addr);
    assert_eq!(c.roundtrip(&get("/_mock/last")).status, 404);
    c.roundtrip(&post(
        "/v1/chat/completions",
        &[("X-Custom", "a b")],
        &chat(false, false),
    ));
    c.roundtrip(&get("/healthz"));
    let last = c.roundtrip(&get("/_mock/last")).json();
    assert_eq!(last["method"], "POST");
    assert_eq!(last["path"], "/v1/chat/completions");
    assert_eq!(last["headers"]["x-custom"], "a b");
    assert_eq!(last["body"], chat(false, false));
    assert_eq!(
        c.roundtrip(&get("/_mock/stats")).json(),
        serde_json::json!({"requests": 1})
    );
    // Without --record the last request is not kept.
    let m = start(&[]);
    let mut c = Client::connect(m.addr);
    c.roundtrip(&post("/v1/chat/completions", &[], &chat(false, false)));
    assert_eq!(c.roundtrip(&get("/_mock/last")).status, 404);
}

#[test]
fn several_workers_share_one_port() {
    let m = start(&["--workers", "3"]);
    for _ in 0..12 {
        let mut c = Client::connect(m.addr);
        let r = c.roundtrip(&post("/v1/messages", &[], &messages(true)));
        check_anthropic_stream(&r, 16);
    }
    let mut c = Client::connect(m.addr);
    assert_eq!(
        c.roundtrip(&get("/_mock/stats")).json(),
        serde_json::json!({"requests": 12})
    );
}

#[test]
fn tls_with_the_written_certificate() {
    use rustls_pki_types::pem::PemObject as _;
    let path = std::env::temp_dir().join(format!("sluice-mock-cert-{}.pem", std::process::id()));
    let path_s = path.to_str().expect("path");
    let m = start(&["--tls", "--cert-out", path_s]);
    assert!(std::fs::read_to_string(&path).is_ok_and(|pem| pem.starts_with("-----BEGIN CERTIFICATE-----")));
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(&path).expect("read cert") {
        roots.add(cert.expect("cert")).expect("trust cert");
    }
    std::fs::remove_file(&path).ok();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    for name in ["localhost", "127.0.0.1"] {
        let server_name = rustls_pki_types::ServerName::try_from(name)
            .expect("name")
            .to_owned();
        let conn = rustls::ClientConnection::new(Arc::new(cfg.clone()), server_name).expect("client");
        let tcp = TcpStream::connect(m.addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut c = Client::new(rustls::StreamOwned::new(conn, tcp));
        let r = c.roundtrip(&post("/v1/chat/completions", &[], &chat(true, true)));
        assert_eq!(check_openai_stream(&r, true, 16), text(16));
        let r = c.roundtrip(&post(
            "/v1/messages",
            &[("x-mock-split", "bytes:3")],
            &messages(true),
        ));
        assert_eq!(check_anthropic_stream(&r, 16), text(16));
    }
}

#[test]
fn json_strings_match_serde() {
    for s in VOCAB
        .iter()
        .copied()
        .chain(["", "a\"b\\c\u{1}\u{1f}\t\r\n", "plain"])
    {
        let mut out = Vec::new();
        push_json_str(&mut out, s);
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            serde_json::to_string(s).expect("json")
        );
    }
}

#[test]
fn vocab_has_multibyte_pieces() {
    assert!(VOCAB.len() >= 16);
    assert!(VOCAB.iter().filter(|t| !t.is_ascii()).count() >= VOCAB.len() / 2);
    assert!(VOCAB.iter().any(|t| t.chars().any(|c| c.len_utf8() == 4)));
}

#[test]
fn split_cuts() {
    let data = "aé|bc|".as_bytes();
    let ends = [4, 7];
    let cut = |s: Split| {
        let mut out = Vec::new();
        s.cut(data, &ends, &mut out);
        out
    };
    assert_eq!(cut(Split::Event), vec![0..4, 4..7]);
    assert_eq!(cut(Split::Coalesce), vec![0..7]);
    assert_eq!(cut(Split::Bytes(3)), vec![0..3, 3..6, 6..7]);
    assert_eq!(cut(Split::Utf8), vec![0..2, 2..4, 4..7]);
    assert_eq!(Split::parse("bytes:0"), None);
    assert_eq!(Split::parse("bytes:12"), Some(Split::Bytes(12)));
    assert_eq!(Split::parse("words"), None);
}
