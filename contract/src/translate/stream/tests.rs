//! Streams replayed from fixtures of each provider's documented event
//! sequence (tests/fixtures/translate/streams/*.sse), split at every byte
//! offset: the client's stream is the same however the upstream's bytes
//! were cut, and matches its golden file (*.sse.expected).

use super::StreamTranslator;
use crate::codec::sse::SseFramer;
use crate::translate::tests::{fixtures, golden};
use crate::translate::Pair;

fn translate(pair: Pair, pieces: &[&[u8]], include_usage: bool) -> (Vec<u8>, bool) {
    let mut framer = SseFramer::default();
    let mut t = StreamTranslator::new(pair, include_usage, 1_700_000_000);
    let mut out = Vec::new();
    for piece in pieces {
        framer.feed(piece, |ev| t.event(ev, &mut out));
    }
    (out, t.ended())
}

fn check(name: &str, pair: Pair, include_usage: bool) -> Vec<u8> {
    let path = fixtures().join("streams").join(name);
    let input = std::fs::read(&path).unwrap();
    let (whole, _) = translate(pair, &[&input], include_usage);
    for cut in 0..=input.len() {
        let (a, b) = input.split_at(cut);
        let (split, _) = translate(pair, &[a, b], include_usage);
        assert_eq!(split, whole, "{name} cut at {cut}");
    }
    // Three pieces too, at a spread of offsets.
    for i in (0..input.len()).step_by(7) {
        for j in (i..input.len()).step_by(13) {
            let (split, _) = translate(pair, &[&input[..i], &input[i..j], &input[j..]], include_usage);
            assert_eq!(split, whole, "{name} cut at {i} and {j}");
        }
    }
    let suffix = if include_usage {
        ".usage.expected"
    } else {
        ".expected"
    };
    golden(&path.with_file_name(format!("{name}{suffix}")), &whole);
    whole
}

fn data_lines(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8(out.to_vec())
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[test]
fn anthropic_stream_becomes_openai_chunks() {
    let out = check("anthropic_thinking_tools.sse", Pair::OpenAiToAnthropic, true);
    let chunks = data_lines(&out);
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let reasoning: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["reasoning_content"].as_str())
        .collect();
    assert_eq!(reasoning, "Two cities, two calls.");
    let block = chunks
        .iter()
        .find_map(|c| c["choices"][0]["delta"]["thinking_blocks"].get(0).cloned())
        .unwrap();
    assert_eq!(block["thinking"], "Two cities, two calls.");
    assert_eq!(block["signature"], "EqQBCgIYAhIM1gbcDa9GJwZA2b3h");
    let args = |i: u64| -> String {
        chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
            .filter(|t| t["index"] == i)
            .filter_map(|t| t["function"]["arguments"].as_str())
            .collect()
    };
    assert_eq!(args(0), "{\"city\": \"Paris\"}");
    assert_eq!(args(1), "{\"city\": \"Oslo\"}");
    let finish = chunks
        .iter()
        .find_map(|c| c["choices"][0]["finish_reason"].as_str())
        .unwrap();
    assert_eq!(finish, "tool_calls");
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["prompt_tokens"], 582);
    assert_eq!(usage["completion_tokens"], 89);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 100);
    // Without include_usage, no usage chunk.
    let out = check("anthropic_thinking_tools.sse", Pair::OpenAiToAnthropic, false);
    assert!(data_lines(&out).iter().all(|c| c.get("usage").is_none()));
}

#[test]
fn anthropic_error_event_becomes_an_openai_error_and_no_done() {
    let out = check("anthropic_error.sse", Pair::OpenAiToAnthropic, true);
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(!text.contains("[DONE]"));
    let last = data_lines(&out).pop().unwrap();
    assert_eq!(last["error"]["message"], "Overloaded");
}

#[test]
fn openai_stream_becomes_anthropic_events() {
    let out = check("openai_reasoning_tools.sse", Pair::AnthropicToOpenAi, false);
    let text = String::from_utf8(out.clone()).unwrap();
    let events: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(
        events,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    let data = data_lines(&out);
    let delta = &data[14];
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["input_tokens"], 56);
    assert_eq!(delta["usage"]["cache_read_input_tokens"], 64);
    assert_eq!(delta["usage"]["output_tokens"], 40);
    assert_eq!(data[7]["content_block"]["id"], "call_A");
    assert_eq!(data[11]["content_block"]["id"], "call_B");
    assert_eq!(data[11]["index"], 3);
}

#[test]
fn openai_error_chunk_becomes_an_error_event_and_no_stop() {
    let out = check("openai_error.sse", Pair::AnthropicToOpenAi, false);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("event: error\n"));
    assert!(!text.contains("message_stop"));
}

#[test]
fn a_truncated_stream_gets_no_forged_end() {
    let path = fixtures().join("streams/anthropic_thinking_tools.sse");
    let input = std::fs::read(path).unwrap();
    let (out, ended) = translate(Pair::OpenAiToAnthropic, &[&input[..input.len() / 2]], true);
    assert!(!ended);
    assert!(!String::from_utf8(out).unwrap().contains("[DONE]"));
}

/// Compact delta events take the copying path, others the parsing path:
/// the client reads the same values either way, escapes and all.
#[test]
fn the_copying_path_and_the_parsing_path_agree() {
    let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n\
        event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n";
    let texts = [r#"a\"b\\c\n\u00e9\ud83d\ude80 “q” /"#, "plain", r#"\t"#];
    let compact = |kind: &str, field: &str, t: &str| {
        format!("data: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"{kind}\",\"{field}\":\"{t}\"}}}}\n\n")
    };
    let spaced = |kind: &str, field: &str, t: &str| {
        format!("data: {{\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {{\"type\": \"{kind}\", \"{field}\": \"{t}\"}}}}\n\n")
    };
    let stop = "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n";
    let run = |shape: &dyn Fn(&str, &str, &str) -> String| {
        let mut input = start.to_owned();
        for t in texts {
            input += &shape("thinking_delta", "thinking", t);
        }
        input += stop;
        for t in texts {
            input += &shape("text_delta", "text", t);
        }
        let (out, _) = translate(Pair::OpenAiToAnthropic, &[input.as_bytes()], false);
        data_lines(&out)
    };
    let (fast, slow) = (run(&compact), run(&spaced));
    assert_eq!(fast, slow);
    assert_eq!(fast.len(), 1 + 3 + 1 + 3);
    let block = &fast[4]["choices"][0]["delta"]["thinking_blocks"][0]["thinking"];
    assert_eq!(block.as_str().unwrap(), "a\"b\\c\né🚀 “q” /plain\t");
    // Not a whole valid token: parsed (and then dropped when it is not JSON).
    for bad in [r#"a"b"#, r#"a\x"#, "a\u{1}", r#"a\u12"#] {
        let input = format!("{start}{}", compact("text_delta", "text", bad));
        let (out, _) = translate(Pair::OpenAiToAnthropic, &[input.as_bytes()], false);
        assert_eq!(data_lines(&out).len(), 1, "{bad:?}");
    }
}

/// A provider that repeats the call's id and name on every delta still
/// makes one `tool_use` block per call.
#[test]
fn repeated_call_ids_make_one_block() {
    let chunk = |delta: &str| {
        format!("data: {{\"id\":\"c\",\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"finish_reason\":null}}]}}\n\n")
    };
    let mut input = String::new();
    for args in ["{\\\"a\\\"", ":1}"] {
        input += &chunk(&format!(
            "{{\"tool_calls\":[{{\"index\":0,\"id\":\"call_1\",\"function\":{{\"name\":\"f\",\"arguments\":\"{args}\"}}}}]}}"
        ));
    }
    input += "data: [DONE]\n\n";
    let (out, ended) = translate(Pair::AnthropicToOpenAi, &[input.as_bytes()], false);
    let text = String::from_utf8(out).unwrap();
    assert!(ended);
    assert_eq!(text.matches("content_block_start").count(), 2, "{text}");
    assert_eq!(text.matches("\"type\":\"tool_use\"").count(), 1, "{text}");
    let args: String = data_lines(text.as_bytes())
        .iter()
        .filter_map(|d| d["delta"]["partial_json"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(args, "{\"a\":1}");
}
