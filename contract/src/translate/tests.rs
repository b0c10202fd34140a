//! Golden request translations (tests/fixtures/translate/<pair>/*.request.json
//! → *.expected.json; `SLUICE_BLESS=1` rewrites the expected files), refusals,
//! responses and errors.

use super::*;
use serde_json::Value;
use std::path::PathBuf;

pub(crate) fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/translate")
}

/// Compares `got` with the golden file `path` (or writes it when blessing).
pub(crate) fn golden(path: &std::path::Path, got: &[u8]) {
    if std::env::var_os("SLUICE_BLESS").is_some() {
        std::fs::write(path, got).unwrap();
        return;
    }
    let want =
        std::fs::read(path).unwrap_or_else(|_| panic!("{} missing: run with SLUICE_BLESS=1", path.display()));
    assert_eq!(
        String::from_utf8_lossy(got),
        String::from_utf8_lossy(&want),
        "{} differs",
        path.display()
    );
}

fn opts(on: OnUnsupported) -> Options<'static> {
    Options {
        model: "upstream-model",
        limit: None,
        on_unsupported: on,
    }
}

/// The translation's bytes as sent (raw values keep the client's spacing),
/// one line.
fn as_line(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    out.push(b'\n');
    out
}

#[test]
fn request_translations_match_their_golden_files() {
    let mut n = 0;
    for (pair, dir) in [
        (Pair::OpenAiToAnthropic, "openai_to_anthropic"),
        (Pair::AnthropicToOpenAi, "anthropic_to_openai"),
    ] {
        for entry in std::fs::read_dir(fixtures().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            let Some(stem) = name.strip_suffix(".request.json") else {
                continue;
            };
            let body = std::fs::read(&path).unwrap();
            let t = request(pair, &body, &opts(OnUnsupported::Refuse))
                .unwrap_or_else(|r| panic!("{dir}/{name}: {}", r.message()));
            let mut got = as_line(&t.body);
            got.extend_from_slice(format!("dropped: {:?}\n", t.dropped).as_bytes());
            golden(&path.with_file_name(format!("{stem}.expected.json")), &got);
            // Whatever was translated is valid JSON of the upstream's shape.
            let v: Value = serde_json::from_slice(&t.body).unwrap();
            assert_eq!(v["model"], "upstream-model");
            n += 1;
        }
    }
    assert!(n >= 4, "fixtures found: {n}");
}

#[test]
fn openai_to_anthropic_keeps_what_matters() {
    let body = std::fs::read(fixtures().join("openai_to_anthropic/full.request.json")).unwrap();
    let t = request(Pair::OpenAiToAnthropic, &body, &opts(OnUnsupported::Refuse)).unwrap();
    let v: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(v["system"][0]["text"], "You are terse.");
    assert_eq!(v["system"][1]["text"], "Use tools when asked.");
    assert_eq!(v["max_tokens"], 20000);
    assert_eq!(v["thinking"]["budget_tokens"], 4096);
    assert_eq!(
        v["tool_choice"],
        serde_json::json!({"type": "any", "disable_parallel_tool_use": true})
    );
    assert_eq!(v["stop_sequences"], serde_json::json!(["END", "STOP"]));
    let msgs = v["messages"].as_array().unwrap();
    // user, assistant (thinking + 2 tool_use), user (2 results + text).
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[0]["content"][1]["source"]["type"], "url");
    assert_eq!(msgs[0]["content"][2]["source"]["media_type"], "image/png");
    assert_eq!(msgs[1]["content"][0]["signature"], "EqQBCkYIARgCIkC");
    assert_eq!(msgs[1]["content"][1]["input"]["city"], "Paris");
    assert_eq!(msgs[2]["content"][0]["tool_use_id"], "toolu_01");
    assert_eq!(msgs[2]["content"][1]["content"][0]["text"], "4C");
    assert_eq!(msgs[2]["content"][2]["text"], "Summarise.");
    // The schema's key order is the client's (`unit` before `city`).
    let text = String::from_utf8(t.body).unwrap();
    assert!(
        text.contains(r#""properties": {"unit": {"type": "string"}, "city""#),
        "the schema's bytes as sent: {text}"
    );
    assert!(text.contains(r#""input":{"city":"Paris","unit":"c"}"#), "{text}");
}

#[test]
fn anthropic_requires_max_tokens_so_a_default_is_sent() {
    let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let t = request(Pair::OpenAiToAnthropic, body, &opts(OnUnsupported::Refuse)).unwrap();
    let v: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(v["max_tokens"], openai_to_anthropic::DEFAULT_MAX_TOKENS);
    // The gateway's limit wins over what the client asked.
    let o = Options {
        limit: Some(10),
        ..opts(OnUnsupported::Refuse)
    };
    let t = request(Pair::OpenAiToAnthropic, body, &o).unwrap();
    let v: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(v["max_tokens"], 10);
}

#[test]
fn fields_with_no_equivalent_are_refused_or_dropped_and_named() {
    let body = br#"{"model":"m","messages":[{"role":"user","content":"hi","name":"bob"}],"logit_bias":{"1":2},"seed":7,"frequency_penalty":0}"#;
    let r = request(Pair::OpenAiToAnthropic, body, &opts(OnUnsupported::Refuse)).unwrap_err();
    assert_eq!(r.field, "messages[].name");
    assert!(r.message().contains("no equivalent"), "{}", r.message());
    let t = request(Pair::OpenAiToAnthropic, body, &opts(OnUnsupported::Drop)).unwrap();
    assert_eq!(t.dropped, ["messages[].name", "logit_bias", "seed"]);
    assert_eq!(t.dropped_header().unwrap(), "messages[].name, logit_bias, seed");
    let v: Value = serde_json::from_slice(&t.body).unwrap();
    assert!(v.get("seed").is_none() && v.get("logit_bias").is_none());

    let body = br#"{"model":"m","max_tokens":5,"top_k":3,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = request(Pair::AnthropicToOpenAi, body, &opts(OnUnsupported::Refuse)).unwrap_err();
    assert_eq!(r.field, "top_k");
    // Out of Anthropic's temperature range.
    let body = br#"{"model":"m","temperature":1.5,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = request(Pair::OpenAiToAnthropic, body, &opts(OnUnsupported::Refuse)).unwrap_err();
    assert_eq!(r.field, "temperature");
    let t = request(Pair::OpenAiToAnthropic, body, &opts(OnUnsupported::Drop)).unwrap();
    assert_eq!(t.dropped, ["temperature"]);
}

#[test]
fn hints_are_always_dropped_and_named() {
    let body = std::fs::read(fixtures().join("anthropic_to_openai/full.request.json")).unwrap();
    let t = request(Pair::AnthropicToOpenAi, &body, &opts(OnUnsupported::Refuse)).unwrap();
    assert_eq!(t.dropped, ["cache_control", "messages[].content[].type=thinking"]);
}

#[test]
fn bad_bodies_are_refused_not_panicked_on() {
    for pair in [Pair::OpenAiToAnthropic, Pair::AnthropicToOpenAi] {
        for body in [
            &b"not json"[..],
            b"[]",
            b"{}",
            b"{\"messages\":7}",
            b"{\"messages\":[7]}",
            b"{\"messages\":[{\"role\":\"user\"}]}",
            b"{\"max_tokens\":-1,\"messages\":[]}",
            b"\xff\xfe",
        ] {
            assert!(
                request(pair, body, &opts(OnUnsupported::Drop)).is_err(),
                "{pair:?} {body:?}"
            );
        }
    }
}

#[test]
fn responses_translate_both_ways() {
    let anthropic = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[
        {"type":"thinking","thinking":"hmm","signature":"SIG"},
        {"type":"text","text":"Hi "},{"type":"text","text":"there"},
        {"type":"tool_use","id":"toolu_1","name":"f","input":{"b":1,"a":2}}],
        "stop_reason":"tool_use","stop_sequence":null,
        "usage":{"input_tokens":10,"output_tokens":5,"cache_read_input_tokens":20,"cache_creation_input_tokens":3}}"#;
    let out = response_body(Pair::OpenAiToAnthropic, anthropic, 1700).unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    let m = &v["choices"][0]["message"];
    assert_eq!(m["content"], "Hi there");
    assert_eq!(m["tool_calls"][0]["function"]["arguments"], r#"{"b":1,"a":2}"#);
    assert_eq!(m["thinking_blocks"][0]["signature"], "SIG");
    assert_eq!(m["reasoning_content"], "hmm");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(v["usage"]["prompt_tokens"], 33);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 20);
    assert_eq!(v["usage"]["total_tokens"], 38);
    assert_eq!(v["created"], 1700);

    let openai = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,
        "message":{"role":"assistant","content":"Hello","reasoning_content":"think","tool_calls":[
        {"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"b\":1,\"a\":2}"}}]},
        "finish_reason":"length"}],
        "usage":{"prompt_tokens":30,"completion_tokens":7,"total_tokens":37,"prompt_tokens_details":{"cached_tokens":12}}}"#;
    let out = response_body(Pair::AnthropicToOpenAi, openai, 0).unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"][0]["type"], "thinking");
    assert_eq!(v["content"][1]["text"], "Hello");
    assert_eq!(v["content"][2]["input"]["a"], 2);
    assert!(String::from_utf8_lossy(&out).contains(r#""input":{"b":1,"a":2}"#));
    assert_eq!(v["stop_reason"], "max_tokens");
    assert_eq!(v["usage"]["input_tokens"], 18);
    assert_eq!(v["usage"]["cache_read_input_tokens"], 12);
    assert_eq!(v["usage"]["output_tokens"], 7);

    assert!(response_body(Pair::AnthropicToOpenAi, b"{\"nope\":1}", 0).is_none());
    assert!(response_body(Pair::OpenAiToAnthropic, b"garbage", 0).is_none());
}

#[test]
fn errors_take_the_clients_shape() {
    let anthropic = br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#;
    let v: Value = serde_json::from_slice(&error_body(Pair::OpenAiToAnthropic, 429, anthropic)).unwrap();
    assert_eq!(v["error"]["message"], "slow down");
    assert_eq!(v["error"]["type"], "rate_limit_error");

    let openai =
        br#"{"error":{"message":"bad key","type":"invalid_request_error","code":"invalid_api_key"}}"#;
    let v: Value = serde_json::from_slice(&error_body(Pair::AnthropicToOpenAi, 401, openai)).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["message"], "bad key");
    let v: Value =
        serde_json::from_slice(&error_body(Pair::AnthropicToOpenAi, 529, b"<html>busy</html>")).unwrap();
    assert_eq!(v["error"]["type"], "overloaded_error");
    assert_eq!(v["error"]["message"], "<html>busy</html>");
}

#[test]
fn pairs_are_found_by_dialects() {
    assert_eq!(Pair::between(Dialect::OpenAi, Dialect::OpenAi), None);
    assert_eq!(
        Pair::between(Dialect::OpenAi, Dialect::Anthropic),
        Some(Pair::OpenAiToAnthropic)
    );
    assert_eq!(
        Pair::between(Dialect::Anthropic, Dialect::OpenAi),
        Some(Pair::AnthropicToOpenAi)
    );
    assert!(Pair::between(Dialect::OpenAiResponses, Dialect::Anthropic).is_none());
}
