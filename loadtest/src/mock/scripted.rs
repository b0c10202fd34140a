//! `x-mock-scenario: thinking-tools`: an agent turn as each provider
//! documents it, for testing translation with the real SDKs.
//!
//! A request without tool results is answered with reasoning, a short text
//! and two parallel `get_weather` calls (Paris, Oslo); one that carries
//! tool results is answered with the final text. Anthropic's answer has a
//! `thinking` block with a signature; a later request that sends a
//! thinking block back must carry that very text and signature, or it is
//! refused as Anthropic refuses a tampered block (400). OpenAI's answer
//! carries its reasoning as `reasoning_content`, as OpenAI-compatible
//! providers stream it. Streams and bodies follow each provider's
//! documented shapes; usage is reported as each provider reports it.

use std::io;

use monoio::io::AsyncWriteRent;
use serde_json::{json, Value};

use super::io::flush;
use super::respond::{push_error, push_full, push_head, Api, ApiError, Meta};
use super::text::{push_chunk, LAST_CHUNK};

/// The thinking the scenario sends, and the signature that vouches for it.
pub(super) const THINKING: &str = "Two cities: two calls.";
/// The signature of [`THINKING`].
pub(super) const SIGNATURE: &str = "sig-mock-ErUBCkYIBRgCIkB";
/// Output tokens the scenario reports.
const OUTPUT_TOKENS: u64 = 31;
/// Prompt tokens read from the cache (reported as the provider reports it).
const CACHED: u64 = 8;

/// Answers the scenario for `body` (already checked as the API's body).
pub(super) async fn send<S: AsyncWriteRent>(
    io: &mut S,
    out: &mut Vec<u8>,
    tmp: &mut Vec<u8>,
    meta: &Meta,
    body: &[u8],
    prompt_tokens: u64,
    created: u64,
) -> io::Result<bool> {
    let req: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if meta.api == Api::Gemini {
        let e = ApiError::invalid(
            "the thinking-tools scenario is served over OpenAI and Anthropic only",
            None,
        );
        push_error(out, tmp, &e, meta);
        flush(io, out).await?;
        return Ok(meta.keep_alive);
    }
    if meta.api == Api::Anthropic {
        if let Err(e) = check_thinking(&req) {
            push_error(out, tmp, &e, meta);
            flush(io, out).await?;
            return Ok(meta.keep_alive);
        }
    }
    let last_turn = has_tool_results(&req);
    let stream = req["stream"].as_bool().unwrap_or(false);
    let include_usage = req["stream_options"]["include_usage"].as_bool().unwrap_or(false);
    let model = req["model"].as_str().unwrap_or("mock").to_owned();
    let prompt = prompt_tokens.max(CACHED + 1);
    let id = format!("{:016x}", meta.id);
    if !stream {
        let body = match meta.api {
            Api::Anthropic => anthropic_message(&id, &model, last_turn, prompt),
            // (Gemini was answered above.)
            Api::OpenAi | Api::Gemini => openai_completion(&id, &model, last_turn, prompt, created),
        };
        push_full(out, 200, "application/json", body.to_string().as_bytes(), meta);
        flush(io, out).await?;
        return Ok(meta.keep_alive);
    }
    push_head(out, 200, "text/event-stream; charset=utf-8", None, meta);
    flush(io, out).await?;
    let events = match meta.api {
        Api::Anthropic => anthropic_events(&id, &model, last_turn, prompt),
        Api::OpenAi | Api::Gemini => openai_chunks(&id, &model, last_turn, prompt, created, include_usage),
    };
    for ev in events {
        push_chunk(out, ev.as_bytes());
        // One write per event, as a provider generating them sends them.
        flush(io, out).await?;
    }
    out.extend_from_slice(LAST_CHUNK);
    flush(io, out).await?;
    Ok(meta.keep_alive)
}

fn messages(req: &Value) -> &[Value] {
    req["messages"].as_array().map_or(&[], Vec::as_slice)
}

fn has_tool_results(req: &Value) -> bool {
    messages(req).iter().any(|m| {
        m["role"] == "tool"
            || m["content"]
                .as_array()
                .is_some_and(|c| c.iter().any(|b| b["type"] == "tool_result"))
    })
}

/// A thinking block sent back must be the one the scenario gave, signature
/// and all (Anthropic verifies signatures).
fn check_thinking(req: &Value) -> Result<(), ApiError> {
    for (i, m) in messages(req).iter().enumerate() {
        for (j, b) in m["content"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .enumerate()
        {
            if b["type"] == "thinking" && (b["signature"] != SIGNATURE || b["thinking"] != THINKING) {
                return Err(ApiError::invalid(
                    format!("messages.{i}.content.{j}: Invalid `signature` in `thinking` block"),
                    None,
                ));
            }
        }
    }
    Ok(())
}

fn text(last_turn: bool) -> &'static str {
    if last_turn {
        "It is 18C in Paris and 4C in Oslo."
    } else {
        "Checking both – “now”."
    }
}

fn calls() -> [(&'static str, &'static str, &'static str); 2] {
    [
        ("call_mock_paris", "{\"city\": \"Paris\"}", "{\"city\": \"Pa"),
        ("call_mock_oslo", "{\"city\": \"Oslo\"}", "{\"city\": \"Os"),
    ]
}

fn anthropic_usage(prompt: u64) -> Value {
    json!({"input_tokens": prompt - CACHED, "cache_creation_input_tokens": 0,
           "cache_read_input_tokens": CACHED, "output_tokens": OUTPUT_TOKENS})
}

fn openai_usage(prompt: u64) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": OUTPUT_TOKENS,
           "total_tokens": prompt + OUTPUT_TOKENS,
           "prompt_tokens_details": {"cached_tokens": CACHED, "audio_tokens": 0},
           "completion_tokens_details": {"reasoning_tokens": 7, "audio_tokens": 0}})
}

fn anthropic_message(id: &str, model: &str, last_turn: bool, prompt: u64) -> Value {
    let mut content = vec![json!({"type": "thinking", "thinking": THINKING, "signature": SIGNATURE})];
    content.push(json!({"type": "text", "text": text(last_turn)}));
    if !last_turn {
        for (cid, args, _) in calls() {
            let input: Value = serde_json::from_str(args).unwrap_or(Value::Null);
            content.push(json!({"type": "tool_use", "id": cid, "name": "get_weather", "input": input}));
        }
    }
    json!({"id": format!("msg_mock{id}"), "type": "message", "role": "assistant", "model": model,
           "content": content, "stop_reason": if last_turn { "end_turn" } else { "tool_use" },
           "stop_sequence": null, "usage": anthropic_usage(prompt)})
}

fn openai_completion(id: &str, model: &str, last_turn: bool, prompt: u64, created: u64) -> Value {
    let mut message = json!({"role": "assistant", "content": text(last_turn), "refusal": null,
                             "reasoning_content": THINKING});
    if !last_turn {
        let calls: Vec<Value> = calls()
            .iter()
            .map(|(cid, args, _)| json!({"id": cid, "type": "function", "function": {"name": "get_weather", "arguments": args}}))
            .collect();
        message["tool_calls"] = Value::Array(calls);
    }
    json!({"id": format!("chatcmpl-mock{id}"), "object": "chat.completion", "created": created, "model": model,
           "choices": [{"index": 0, "message": message, "logprobs": null,
                        "finish_reason": if last_turn { "stop" } else { "tool_calls" }}],
           "usage": openai_usage(prompt), "system_fingerprint": "fp_mock"})
}

fn named(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

fn block_delta(index: usize, delta: Value) -> String {
    named(
        "content_block_delta",
        json!({"type": "content_block_delta", "index": index, "delta": delta}),
    )
}

fn block_stop(index: usize) -> String {
    named(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": index}),
    )
}

fn anthropic_events(id: &str, model: &str, last_turn: bool, prompt: u64) -> Vec<String> {
    let mut start_usage = anthropic_usage(prompt);
    start_usage["output_tokens"] = json!(1);
    let mut ev = vec![
        named(
            "message_start",
            json!({"type": "message_start", "message": {"id": format!("msg_mock{id}"),
            "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": null,
            "stop_sequence": null, "usage": start_usage}}),
        ),
        named(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        ),
        named("ping", json!({"type": "ping"})),
    ];
    let (a, b) = THINKING.split_at(11);
    for part in [a, b] {
        ev.push(block_delta(
            0,
            json!({"type": "thinking_delta", "thinking": part}),
        ));
    }
    ev.push(block_delta(
        0,
        json!({"type": "signature_delta", "signature": SIGNATURE}),
    ));
    ev.push(block_stop(0));
    ev.push(named(
        "content_block_start",
        json!({"type": "content_block_start", "index": 1,
        "content_block": {"type": "text", "text": ""}}),
    ));
    for word in text(last_turn).split_inclusive(' ') {
        ev.push(block_delta(1, json!({"type": "text_delta", "text": word})));
    }
    ev.push(block_stop(1));
    if !last_turn {
        for (k, (cid, args, head)) in calls().iter().enumerate() {
            let index = k + 2;
            ev.push(named(
                "content_block_start",
                json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "tool_use", "id": cid, "name": "get_weather", "input": {}}}),
            ));
            for part in [&args[..0], &args[..head.len()], &args[head.len()..]] {
                ev.push(block_delta(
                    index,
                    json!({"type": "input_json_delta", "partial_json": part}),
                ));
            }
            ev.push(block_stop(index));
        }
    }
    ev.push(named(
        "message_delta",
        json!({"type": "message_delta",
        "delta": {"stop_reason": if last_turn { "end_turn" } else { "tool_use" }, "stop_sequence": null},
        "usage": {"output_tokens": OUTPUT_TOKENS}}),
    ));
    ev.push(named("message_stop", json!({"type": "message_stop"})));
    ev
}

fn openai_chunks(
    id: &str,
    model: &str,
    last_turn: bool,
    prompt: u64,
    created: u64,
    include_usage: bool,
) -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        let mut c = json!({"id": format!("chatcmpl-mock{id}"), "object": "chat.completion.chunk",
            "created": created, "model": model, "system_fingerprint": "fp_mock",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        if include_usage {
            c["usage"] = Value::Null;
        }
        format!("data: {c}\n\n")
    };
    let mut ev = vec![chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        Value::Null,
    )];
    let (a, b) = THINKING.split_at(11);
    for part in [a, b] {
        ev.push(chunk(json!({"reasoning_content": part}), Value::Null));
    }
    for word in text(last_turn).split_inclusive(' ') {
        ev.push(chunk(json!({"content": word}), Value::Null));
    }
    if !last_turn {
        for (k, (cid, args, head)) in calls().iter().enumerate() {
            ev.push(chunk(
                json!({"tool_calls": [{"index": k, "id": cid, "type": "function",
                "function": {"name": "get_weather", "arguments": ""}}]}),
                Value::Null,
            ));
            for part in [&args[..head.len()], &args[head.len()..]] {
                ev.push(chunk(
                    json!({"tool_calls": [{"index": k, "function": {"arguments": part}}]}),
                    Value::Null,
                ));
            }
        }
    }
    ev.push(chunk(
        json!({}),
        json!(if last_turn { "stop" } else { "tool_calls" }),
    ));
    if include_usage {
        let u = json!({"id": format!("chatcmpl-mock{id}"), "object": "chat.completion.chunk",
            "created": created, "model": model, "system_fingerprint": "fp_mock", "choices": [],
            "usage": openai_usage(prompt)});
        ev.push(format!("data: {u}\n\n"));
    }
    ev.push("data: [DONE]\n\n".to_owned());
    ev
}
