//! Metering conformance, on both drivers: for OpenAI chat completions and
//! Anthropic messages, streamed or not, with usage asked for or not, whole,
//! cut by the upstream, or abandoned by the client, the record's tokens and
//! cost equal what this test computes on its own from the golden fixture
//! (what the provider documents it sends, in `tests/fixtures/metering/`) and
//! the prices it sets in the snapshot. Cached and reasoning tokens are in
//! every fixture: OpenAI's `prompt_tokens_details.cached_tokens` (part of
//! `prompt_tokens`) and `completion_tokens_details.reasoning_tokens` (part of
//! `completion_tokens`); Anthropic's `cache_creation_input_tokens` and
//! `cache_read_input_tokens` (outside `input_tokens`) and `message_delta`'s
//! cumulative `output_tokens`, also the newer form that restates the input
//! figures there. OpenAI Responses (`usage.input_tokens_details.cached_tokens`,
//! `output_tokens_details.reasoning_tokens`, in the body or in
//! `response.completed`) and Gemini (`usageMetadata`: `cachedContentTokenCount`
//! part of `promptTokenCount`, `thoughtsTokenCount` outside
//! `candidatesTokenCount`, every streamed event carrying the counts so far,
//! CRLF-separated as Google sends them) likewise. No case that carried
//! tokens ends with cost 0.
//!
//! Each case has a route (and a scripted upstream) of its own, so that its
//! record is found by its model name.
//!
//! Translated routes too: an OpenAI chat client served by an Anthropic
//! upstream and an Anthropic client served by an OpenAI upstream are
//! metered from the upstream's own report, in its dialect, exactly as the
//! upstream's own clients are.

// Test code: a failed unwrap is a failed test. (clippy.toml's test allowances
// cover #[test] functions only, not the per-case functions they call.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use sluice_tests::fake::{Scripted, Step};
use sluice_tests::http::{Conn, Req};
use sluice_tests::metering::{credit, fire_concurrently, price, stated_balance_micros, status_histogram};
use sluice_tests::records::assert_shape;
use sluice_tests::stack::{
    self, base, ANTHROPIC_MODEL, GATEWAY_KEY, OPENAI_MODEL, PROVIDER_KEY, SHARED_MODEL, TENANT,
};
use sluice_tests::{both_drivers, metering, Driver, Gateway, GatewayOpts};
use std::time::Duration;

both_drivers!(conformance, concurrent_streams_never_overdraw);

const OPENAI_STREAM: &str = include_str!("../fixtures/metering/openai_chat_stream.sse");
const OPENAI_JSON: &str = include_str!("../fixtures/metering/openai_chat.json");
const ANTHROPIC_STREAM: &str = include_str!("../fixtures/metering/anthropic_messages_stream.sse");
const ANTHROPIC_STREAM_RESTATED: &str =
    include_str!("../fixtures/metering/anthropic_messages_stream_restated.sse");
const ANTHROPIC_JSON: &str = include_str!("../fixtures/metering/anthropic_messages.json");
const RESPONSES_STREAM: &str = include_str!("../fixtures/metering/openai_responses_stream.sse");
const RESPONSES_JSON: &str = include_str!("../fixtures/metering/openai_responses.json");
const GEMINI_STREAM: &str = include_str!("../fixtures/metering/gemini_generate_stream.sse");
const GEMINI_JSON: &str = include_str!("../fixtures/metering/gemini_generate.json");

/// Token figures, normalised as records carry them: `input` counts every
/// prompt token, cached and cache-written ones included; `output` counts
/// reasoning tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tokens {
    input: u64,
    cached: u64,
    written: u64,
    output: u64,
    reasoning: u64,
}

/// What the OpenAI fixtures report: 1317 prompt tokens of which 1280
/// cached, 203 completion tokens of which 192 reasoning.
const OPENAI_TOKENS: Tokens = Tokens {
    input: 1317,
    cached: 1280,
    written: 0,
    output: 203,
    reasoning: 192,
};

/// What the Anthropic fixtures report: 12 uncached input tokens, 2048 read
/// from the cache and 300 written to it, 41 output tokens in the end.
const ANTHROPIC_TOKENS: Tokens = Tokens {
    input: 12 + 2048 + 300,
    cached: 2048,
    written: 300,
    output: 41,
    reasoning: 0,
};

/// What the Gemini fixtures report in the end: 1317 prompt tokens of which
/// 1280 cached, 11 candidate tokens and 192 thought tokens (output 203).
const GEMINI_TOKENS: Tokens = OPENAI_TOKENS;

/// What the Gemini stream's first event reports (thinking done, no
/// candidate token counted yet), and its second (6 candidate tokens).
const GEMINI_FIRST_TOKENS: Tokens = Tokens {
    output: 192,
    ..GEMINI_TOKENS
};
const GEMINI_SECOND_TOKENS: Tokens = Tokens {
    output: 192 + 6,
    ..GEMINI_TOKENS
};

/// What Anthropic's `message_start` alone reports (output 1).
const ANTHROPIC_START_TOKENS: Tokens = Tokens {
    output: 1,
    ..ANTHROPIC_TOKENS
};

/// Prices in milli-dollars per million tokens (µ$ per thousand tokens):
/// input, cached input, cache write, output.
#[derive(Clone, Copy, Debug)]
struct Milli {
    input: u64,
    cached: u64,
    write: u64,
    output: u64,
}

const OPENAI_PRICE: Milli = Milli {
    input: 1100,
    cached: 550,
    write: 1100,
    output: 4400,
};

const GEMINI_PRICE: Milli = Milli {
    input: 300,
    cached: 30,
    write: 300,
    output: 2500,
};

const ANTHROPIC_PRICE: Milli = Milli {
    input: 3000,
    cached: 300,
    write: 3750,
    output: 15000,
};

impl Milli {
    fn section(&self, model: &str) -> String {
        let usd = |m: u64| m as f64 / 1000.0;
        format!(
            "[[prices]]\nmodel = {model:?}\ninput = {:?}\ncached_input = {:?}\ncache_write = {:?}\noutput = {:?}\n",
            usd(self.input),
            usd(self.cached),
            usd(self.write),
            usd(self.output)
        )
    }

    /// The cost of `t`, in µ$, rounded up: computed here, apart from the
    /// gateway's price code.
    fn cost(&self, t: Tokens) -> u64 {
        let plain = t.input - t.cached - t.written;
        let milli =
            plain * self.input + t.cached * self.cached + t.written * self.write + t.output * self.output;
        milli.div_ceil(1000)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Api {
    Chat,
    Messages,
    Responses,
    Gemini,
}

/// How the exchange ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// Whole.
    Whole,
    /// The upstream closes the connection before this marker's event.
    Cut(&'static str),
    /// The client reads the first events, then goes away while the upstream
    /// holds the rest (sent after this marker's event, much later).
    Abandon(&'static str),
}

struct Case {
    model: &'static str,
    /// The client's API.
    api: Api,
    /// The upstream's: the route translates when it differs.
    upstream: Api,
    stream: bool,
    ask_usage: bool,
    fixture: &'static str,
    end: End,
}

/// The byte offset of the start of the event (or line) holding `marker`.
fn event_start(body: &str, marker: &str) -> usize {
    let at = body
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} not in the fixture"));
    let lf = body[..at].rfind("\n\n").map(|i| i + 2);
    let crlf = body[..at].rfind("\r\n\r\n").map(|i| i + 4);
    lf.max(crlf).unwrap_or(0)
}

fn response_head(stream: bool, len: usize) -> String {
    let ct = if stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {ct}\r\nx-request-id: req_conf\r\ncontent-length: {len}\r\n\r\n"
    )
}

fn script(case: &Case) -> Vec<Step> {
    let body = case.fixture;
    let head = response_head(case.stream, body.len());
    match case.end {
        End::Whole => vec![Step::Send(format!("{head}{body}").into_bytes()), Step::Hold],
        End::Cut(marker) => {
            let cut = event_start(body, marker);
            vec![
                Step::Send(format!("{head}{}", &body[..cut]).into_bytes()),
                Step::Pause(Duration::from_millis(50)),
                Step::Close,
            ]
        }
        End::Abandon(marker) => {
            let cut = event_start(body, marker);
            vec![
                Step::Send(format!("{head}{}", &body[..cut]).into_bytes()),
                Step::Pause(Duration::from_secs(5)),
                Step::Send(body.as_bytes()[cut..].to_vec()),
                Step::Hold,
            ]
        }
    }
}

fn request(case: &Case) -> Req {
    match case.api {
        Api::Chat => {
            let mut body = json!({
                "model": case.model,
                "messages": [{"role": "user", "content": "Which part of the prompt was cached?"}],
                "stream": case.stream,
            });
            if case.ask_usage {
                body["stream_options"] = json!({"include_usage": true});
            }
            Req::chat(GATEWAY_KEY, &body)
        }
        Api::Responses => Req::post("/v1/responses").bearer(GATEWAY_KEY).json(&json!({
            "model": case.model,
            "input": "Which part of the prompt was cached?",
            "stream": case.stream,
        })),
        Api::Gemini => {
            let method = if case.stream {
                "streamGenerateContent?alt=sse"
            } else {
                "generateContent"
            };
            Req::post(&format!("/v1beta/models/{}:{method}", case.model))
                .header("x-goog-api-key", GATEWAY_KEY)
                .json(&json!({
                    "contents": [{"role": "user", "parts": [{"text": "Which part of the prompt was cached?"}]}],
                }))
        }
        Api::Messages => Req::messages(
            GATEWAY_KEY,
            &json!({
                "model": case.model,
                "max_tokens": 1024,
                "messages": [{"role": "user", "content": "Which part of the prompt was cached?"}],
                "stream": case.stream,
            }),
        ),
    }
}

fn cases() -> Vec<Case> {
    let chat = |model, stream, ask_usage, fixture, end| Case {
        model,
        api: Api::Chat,
        upstream: Api::Chat,
        stream,
        ask_usage,
        fixture,
        end,
    };
    let messages = |model, stream, fixture, end| Case {
        model,
        api: Api::Messages,
        upstream: Api::Messages,
        stream,
        ask_usage: false,
        fixture,
        end,
    };
    let other = |model, api, stream, fixture, end| Case {
        model,
        api,
        upstream: api,
        stream,
        ask_usage: false,
        fixture,
        end,
    };
    // OpenAI's usage chunk is the one with `"choices":[]`.
    const OPENAI_USAGE: &str = "\"choices\":[]";
    const OPENAI_SECOND_CHUNK: &str = "\" held most";
    vec![
        chat("o3-mini-conf-json", false, false, OPENAI_JSON, End::Whole),
        chat("o3-mini-conf-stream-asked", true, true, OPENAI_STREAM, End::Whole),
        chat(
            "o3-mini-conf-stream-unasked",
            true,
            false,
            OPENAI_STREAM,
            End::Whole,
        ),
        chat(
            "o3-mini-conf-cut-asked",
            true,
            true,
            OPENAI_STREAM,
            End::Cut(OPENAI_USAGE),
        ),
        chat(
            "o3-mini-conf-cut-unasked",
            true,
            false,
            OPENAI_STREAM,
            End::Cut(OPENAI_USAGE),
        ),
        chat(
            "o3-mini-conf-gone-asked",
            true,
            true,
            OPENAI_STREAM,
            End::Abandon(OPENAI_SECOND_CHUNK),
        ),
        chat(
            "o3-mini-conf-gone-unasked",
            true,
            false,
            OPENAI_STREAM,
            End::Abandon(OPENAI_SECOND_CHUNK),
        ),
        messages("claude-sonnet-4-conf-json", false, ANTHROPIC_JSON, End::Whole),
        messages("claude-sonnet-4-conf-stream", true, ANTHROPIC_STREAM, End::Whole),
        messages(
            "claude-sonnet-4-conf-restated",
            true,
            ANTHROPIC_STREAM_RESTATED,
            End::Whole,
        ),
        messages(
            "claude-sonnet-4-conf-cut",
            true,
            ANTHROPIC_STREAM,
            End::Cut("message_delta"),
        ),
        messages(
            "claude-sonnet-4-conf-gone",
            true,
            ANTHROPIC_STREAM,
            End::Abandon("\" held most"),
        ),
        other(
            "o3-mini-conf-responses-json",
            Api::Responses,
            false,
            RESPONSES_JSON,
            End::Whole,
        ),
        other(
            "o3-mini-conf-responses-stream",
            Api::Responses,
            true,
            RESPONSES_STREAM,
            End::Whole,
        ),
        other(
            "o3-mini-conf-responses-cut",
            Api::Responses,
            true,
            RESPONSES_STREAM,
            End::Cut("response.completed"),
        ),
        other(
            "o3-mini-conf-responses-gone",
            Api::Responses,
            true,
            RESPONSES_STREAM,
            End::Abandon("\" held most"),
        ),
        other(
            "gemini-2.5-flash-conf-json",
            Api::Gemini,
            false,
            GEMINI_JSON,
            End::Whole,
        ),
        other(
            "gemini-2.5-flash-conf-stream",
            Api::Gemini,
            true,
            GEMINI_STREAM,
            End::Whole,
        ),
        other(
            "gemini-2.5-flash-conf-cut",
            Api::Gemini,
            true,
            GEMINI_STREAM,
            End::Cut("finishReason"),
        ),
        other(
            "gemini-2.5-flash-conf-gone",
            Api::Gemini,
            true,
            GEMINI_STREAM,
            End::Abandon("\" held most"),
        ),
        // Translated: the client speaks one API, the upstream the other.
        Case {
            upstream: Api::Messages,
            ..chat(
                "claude-sonnet-4-conf-x-json",
                false,
                false,
                ANTHROPIC_JSON,
                End::Whole,
            )
        },
        Case {
            upstream: Api::Messages,
            ..chat(
                "claude-sonnet-4-conf-x-asked",
                true,
                true,
                ANTHROPIC_STREAM,
                End::Whole,
            )
        },
        Case {
            upstream: Api::Messages,
            ..chat(
                "claude-sonnet-4-conf-x-unasked",
                true,
                false,
                ANTHROPIC_STREAM,
                End::Whole,
            )
        },
        Case {
            upstream: Api::Messages,
            ..chat(
                "claude-sonnet-4-conf-x-cut",
                true,
                true,
                ANTHROPIC_STREAM,
                End::Cut("message_delta"),
            )
        },
        Case {
            upstream: Api::Messages,
            ..chat(
                "claude-sonnet-4-conf-x-gone",
                true,
                false,
                ANTHROPIC_STREAM,
                End::Abandon("\" held most"),
            )
        },
        Case {
            upstream: Api::Chat,
            ..messages("o3-mini-conf-x-json", false, OPENAI_JSON, End::Whole)
        },
        Case {
            upstream: Api::Chat,
            ..messages("o3-mini-conf-x-stream", true, OPENAI_STREAM, End::Whole)
        },
        Case {
            upstream: Api::Chat,
            ..messages("o3-mini-conf-x-cut", true, OPENAI_STREAM, End::Cut(OPENAI_USAGE))
        },
        Case {
            upstream: Api::Chat,
            ..messages(
                "o3-mini-conf-x-gone",
                true,
                OPENAI_STREAM,
                End::Abandon(OPENAI_SECOND_CHUNK),
            )
        },
    ]
}

fn usage_of(rec: &Value) -> Option<Tokens> {
    let u = &rec["usage"];
    if u.is_null() {
        return None;
    }
    let n = |k: &str| u[k].as_u64().unwrap_or_else(|| panic!("usage.{k}: {rec}"));
    Some(Tokens {
        input: n("input_tokens"),
        cached: n("cached_input_tokens"),
        written: n("cache_creation_tokens"),
        output: n("output_tokens"),
        reasoning: n("reasoning_tokens"),
    })
}

fn conformance(d: Driver) {
    let cases = cases();
    let upstreams: Vec<Scripted> = cases
        .iter()
        .map(|c| {
            let steps = script(c);
            Scripted::start(move |_| steps.clone())
        })
        .collect();
    let mut snapshot = base();
    let mut extra = Vec::new();
    for (case, up) in cases.iter().zip(&upstreams) {
        let kind = match case.upstream {
            Api::Chat | Api::Responses => "openai",
            Api::Messages => "anthropic",
            Api::Gemini => "gemini",
        };
        snapshot = snapshot.upstream(case.model, kind, &up.url(), None).route(
            Some(TENANT),
            case.model,
            &[(case.model, "pk")],
        );
        extra.push(match case.upstream {
            Api::Chat | Api::Responses => OPENAI_PRICE.section(case.model),
            Api::Messages => ANTHROPIC_PRICE.section(case.model),
            Api::Gemini => GEMINI_PRICE.section(case.model),
        });
    }
    let toml = metering::toml_with(&snapshot, &extra);
    let gw = Gateway::start_toml(d, &toml, GatewayOpts::default().env("MOCK_KEY", PROVIDER_KEY));

    for case in &cases {
        let what = case.model;
        let req = request(case);
        let client_body = match case.end {
            End::Abandon(_) => {
                let mut conn = Conn::connect(gw.addr);
                conn.send_req(&req);
                let head = conn.read_head();
                assert_eq!(head.status, 200, "{what}: {head:?}");
                // The first events arrive; then the client goes away.
                while conn.buffered().is_empty() {
                    assert!(!conn.read_once().is_empty(), "{what}: closed early");
                }
                conn.close();
                None
            }
            _ => {
                let r = gw.request(&req);
                assert_eq!(r.status(), 200, "{what}: {}", r.text());
                Some(r)
            }
        };
        let rec = gw.records().wait_for(what, |r| r["model"] == what);
        assert_shape(&rec);
        let (price, reported) = match case.upstream {
            Api::Chat | Api::Responses => (OPENAI_PRICE, OPENAI_TOKENS),
            Api::Messages => (ANTHROPIC_PRICE, ANTHROPIC_TOKENS),
            Api::Gemini => (GEMINI_PRICE, GEMINI_TOKENS),
        };
        let cost = rec["cost_micros"]
            .as_u64()
            .unwrap_or_else(|| panic!("{what}: no cost: {rec}"));
        assert!(cost > 0, "{what}: tokens were carried and cost 0: {rec}");
        let counted_out = rec["completion_tokens_counted"].as_u64();
        let counted_in = rec["prompt_tokens_counted"].as_u64();
        match case.end {
            End::Whole => {
                let r = client_body.unwrap();
                assert!(r.complete, "{what}");
                assert_eq!(rec["outcome"], "ok", "{what}: {rec}");
                assert_eq!(usage_of(&rec), Some(reported), "{what}: {rec}");
                assert_eq!(cost, price.cost(reported), "{what}: {rec}");
                // The usage event reaches only a client that asked for it.
                let translated = case.api != case.upstream;
                if case.api == Api::Chat && case.stream {
                    let text = String::from_utf8(r.body.clone()).unwrap();
                    assert_eq!(text.contains("\"usage\":{"), case.ask_usage, "{what}: {text}");
                    if case.ask_usage && !translated {
                        assert_eq!(text, case.fixture, "{what}: passed through as is");
                    }
                    if translated {
                        assert!(text.ends_with("data: [DONE]\n\n"), "{what}: {text}");
                    }
                }
                if translated {
                    // The client reads its own dialect, usage included.
                    let text = String::from_utf8(r.body.clone()).unwrap();
                    let (field, value) = match (case.api, case.stream) {
                        (Api::Chat, false) => ("\"prompt_tokens\":", reported.input),
                        (Api::Chat, true) if case.ask_usage => ("\"prompt_tokens\":", reported.input),
                        (Api::Chat, true) => ("\"object\":", 0),
                        (Api::Messages, _) => ("\"output_tokens\":", reported.output),
                        (Api::Responses | Api::Gemini, _) => panic!("{what}: these APIs are not translated"),
                    };
                    if value > 0 {
                        assert!(text.contains(&format!("{field}{value}")), "{what}: {text}");
                    }
                }
                if matches!(case.api, Api::Responses | Api::Gemini) {
                    assert_eq!(r.body, case.fixture.as_bytes(), "{what}: passed through as is");
                }
            }
            End::Cut(_) | End::Abandon(_) => {
                let outcome = if matches!(case.end, End::Cut(_)) {
                    "truncated"
                } else {
                    "cancelled"
                };
                assert_eq!(rec["outcome"], outcome, "{what}: {rec}");
                let out = counted_out.unwrap_or_else(|| panic!("{what}: output not counted: {rec}"));
                assert!(out > 0, "{what}: the streamed text counted no token: {rec}");
                let expect = match case.upstream {
                    // No usage before the cut: the gateway's own counts of
                    // the prompt and of the text that was streamed.
                    Api::Chat | Api::Responses => {
                        assert_eq!(usage_of(&rec), None, "{what}: {rec}");
                        let input = counted_in.unwrap_or_else(|| panic!("{what}: prompt not counted: {rec}"));
                        assert!(input > 0, "{what}: {rec}");
                        Tokens {
                            input,
                            cached: 0,
                            written: 0,
                            output: out,
                            reasoning: 0,
                        }
                    }
                    // message_start's figures (output 1 so far), with the
                    // output no less than what was streamed.
                    Api::Messages => {
                        assert_eq!(usage_of(&rec), Some(ANTHROPIC_START_TOKENS), "{what}: {rec}");
                        Tokens {
                            output: out.max(ANTHROPIC_START_TOKENS.output),
                            ..ANTHROPIC_START_TOKENS
                        }
                    }
                    // The counts of the last event that came (each carries
                    // the counts so far), the output no less than streamed.
                    Api::Gemini => {
                        let said = match case.end {
                            End::Cut(_) => GEMINI_SECOND_TOKENS,
                            _ => GEMINI_FIRST_TOKENS,
                        };
                        assert_eq!(usage_of(&rec), Some(said), "{what}: {rec}");
                        Tokens {
                            output: out.max(said.output),
                            ..said
                        }
                    }
                };
                assert_eq!(cost, price.cost(expect), "{what}: expected {expect:?}: {rec}");
            }
        }
    }
}

/// A small deterministic generator (xorshift64*), so that a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// In `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// Many concurrent requests of random shapes (either API, streamed or not,
/// usage asked or not, some cut by the upstream) against a balance that
/// covers about half of them: the balance never goes below zero, and what
/// the records charge is exactly what the balance lost. The second is
/// measured by spending what is left with probes of exact, known cost until
/// the balance refuses even the smallest: every price is a multiple of
/// 10 µ$ a token, so the balance then is 0, and granted = records' sum +
/// probes' sum.
fn concurrent_streams_never_overdraw(d: Driver) {
    const GRANTED: u64 = 25_000;
    const N: usize = 120;
    // The random phase: 10 µ$ a token in and out. The probes: output only.
    let extra = [
        price(OPENAI_MODEL, 10.0, 10.0),
        price(ANTHROPIC_MODEL, 10.0, 10.0),
        price(SHARED_MODEL, 0.0, 10.0),
        credit(TENANT, GRANTED as i64, None),
    ];
    let stack = metering::stack(d, GatewayOpts::default(), &extra, stack::snapshot);
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    let reqs: Vec<Req> = (0..N)
        .map(|_| {
            let stream = rng.range(0, 3) > 0;
            let max_tokens = rng.range(5, 50);
            let tokens = rng.range(1, 60).to_string();
            let itl = rng.range(0, 5).to_string();
            let mut req = if rng.range(0, 1) == 0 {
                let mut body = json!({
                    "model": OPENAI_MODEL,
                    "messages": [{"role": "user", "content": "Count, please."}],
                    "stream": stream,
                    "max_tokens": max_tokens,
                });
                if stream && rng.range(0, 1) == 0 {
                    body["stream_options"] = json!({"include_usage": true});
                }
                Req::chat(GATEWAY_KEY, &body)
            } else {
                Req::messages(
                    GATEWAY_KEY,
                    &json!({
                        "model": ANTHROPIC_MODEL,
                        "max_tokens": max_tokens,
                        "messages": [{"role": "user", "content": "Count, please."}],
                        "stream": stream,
                    }),
                )
            };
            req = req.header("x-mock-tokens", &tokens).header("x-mock-itl-ms", &itl);
            if stream && rng.range(0, 4) == 0 {
                req = req.header("x-mock-truncate-after", &rng.range(1, 8).to_string());
            }
            req
        })
        .collect();
    let responses = fire_concurrently(stack.gw.addr, reqs);
    let hist = status_histogram(&responses);
    let admitted = responses.iter().filter(|r| r.status() == 200).count();
    assert!(
        responses.iter().all(|r| r.status() == 200 || r.status() == 402),
        "statuses {hist:?}"
    );
    assert!(
        admitted > 0 && admitted < N,
        "the balance should cover some, not all: {hist:?}"
    );

    let records = stack.gw.records().wait_count(N);
    assert_eq!(records.len(), N, "{}", stack.gw.records().dump());
    let mut charged = 0;
    for r in &records {
        assert_shape(r);
        let cost = r["cost_micros"].as_u64().unwrap_or(0);
        match r["status"].as_u64() {
            Some(200) => {
                let carried = r["usage"]["input_tokens"].as_u64().unwrap_or(0)
                    + r["prompt_tokens_counted"].as_u64().unwrap_or(0);
                assert!(carried == 0 || cost > 0, "tokens carried, cost 0: {r}");
                assert_eq!(cost % 10, 0, "{r}");
            }
            Some(402) => assert_eq!(cost, 0, "a refused request was charged: {r}"),
            _ => panic!("unexpected record: {r}"),
        }
        charged += cost;
    }
    assert!(
        charged <= GRANTED,
        "records charge {charged} µ$ of {GRANTED} granted"
    );

    // Spend the rest with probes whose cost is exactly their worst case.
    let mut probed = 0;
    let mut probes = 0;
    let mut last_refusal = None;
    for m in [1000u64, 100, 10, 1] {
        loop {
            let body = json!({
                "model": SHARED_MODEL,
                "messages": [{"role": "user", "content": "Probe."}],
                "max_tokens": m,
            });
            let r = stack.chat(&body, &[("x-mock-tokens", &(m + 5).to_string())]);
            probes += 1;
            match r.status() {
                200 => probed += 10 * m,
                402 => {
                    last_refusal = Some(r.text());
                    break;
                }
                s => panic!("probe: status {s}: {}", r.text()),
            }
            assert!(
                charged + probed <= GRANTED,
                "overdrawn: {charged} + {probed} > {GRANTED}"
            );
        }
    }
    assert_eq!(
        charged + probed,
        GRANTED,
        "the records ({charged} µ$) and the probes ({probed} µ$) account for every micro-dollar granted"
    );
    let message = last_refusal.unwrap_or_default();
    if let Some(stated) = stated_balance_micros(&message) {
        assert_eq!(stated, 0, "{message}");
    }
    // The probes' records agree with what they were charged.
    let all = stack.gw.records().wait_count(N + probes);
    let probe_sum: u64 = all
        .iter()
        .filter(|r| r["model"] == SHARED_MODEL)
        .map(|r| r["cost_micros"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(probe_sum, probed, "{}", stack.gw.records().dump());
}
