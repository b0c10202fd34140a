use super::*;
use crate::codec::chunked::ChunkedDecoder;
use crate::codec::sse::tests::{Rng, ANTHROPIC_STREAM, OPENAI_STREAM};
use crate::codec::sse::SseFramer;

/// What a scan ended with, plus `usage_only_event` after each event.
#[derive(Debug, PartialEq, Eq)]
struct Scan {
    usage: Option<Usage>,
    completed: bool,
    usage_only: Vec<bool>,
}

fn scan(dialect: Dialect, parts: &[&[u8]]) -> Scan {
    let mut framer = SseFramer::default();
    let mut scanner = UsageScanner::new(dialect);
    let mut usage_only = Vec::new();
    for p in parts {
        framer.feed(p, |ev| {
            scanner.on_event(ev);
            usage_only.push(scanner.usage_only_event());
        });
    }
    Scan {
        usage: scanner.usage(),
        completed: scanner.completed(),
        usage_only,
    }
}

fn check_splits(dialect: Dialect, stream: &[u8]) -> Scan {
    let expect = scan(dialect, &[stream]);
    for at in 0..=stream.len() {
        assert_eq!(
            scan(dialect, &[&stream[..at], &stream[at..]]),
            expect,
            "split at {at}"
        );
    }
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(scan(dialect, &bytes), expect);
    expect
}

const OPENAI_USAGE: Usage = Usage {
    input_tokens: 1117,
    output_tokens: 46,
    cached_input_tokens: 1024,
    cache_creation_tokens: 0,
    reasoning_tokens: 12,
};

const ANTHROPIC_USAGE: Usage = Usage {
    input_tokens: 25 + 2000 + 100,
    output_tokens: 15,
    cached_input_tokens: 2000,
    cache_creation_tokens: 100,
    reasoning_tokens: 0,
};

#[test]
fn openai_stream_at_every_split() {
    let got = check_splits(Dialect::OpenAi, OPENAI_STREAM.as_bytes());
    assert_eq!(got.usage, Some(OPENAI_USAGE));
    assert!(got.completed);
    // Only the usage-only chunk (fifth of six events) is flagged.
    assert_eq!(got.usage_only, [false, false, false, false, true, false]);
}

#[test]
fn anthropic_stream_at_every_split() {
    let got = check_splits(Dialect::Anthropic, ANTHROPIC_STREAM.as_bytes());
    assert_eq!(got.usage, Some(ANTHROPIC_USAGE));
    assert!(got.completed);
    assert!(got.usage_only.iter().all(|u| !u));
}

#[test]
fn truncated_streams_are_not_completed() {
    for (dialect, stream) in [
        (Dialect::OpenAi, OPENAI_STREAM),
        (Dialect::Anthropic, ANTHROPIC_STREAM),
    ] {
        let stream = stream.as_bytes();
        for end in 0..stream.len() {
            let got = scan(dialect, &[&stream[..end]]);
            assert!(
                !got.completed,
                "{dialect:?} completed after {end} of {} bytes",
                stream.len()
            );
        }
    }
    // Usage seen before the cut is still reported.
    let openai = OPENAI_STREAM.as_bytes();
    let got = scan(Dialect::OpenAi, &[&openai[..openai.len() - 3]]);
    assert_eq!(got.usage, Some(OPENAI_USAGE));
    let anthropic = ANTHROPIC_STREAM.as_bytes();
    let cut = ANTHROPIC_STREAM.find("event: message_delta").unwrap();
    let got = scan(Dialect::Anthropic, &[&anthropic[..cut]]);
    assert_eq!(
        got.usage.map(|u| (u.input_tokens, u.output_tokens)),
        Some((2125, 1))
    );
}

#[test]
fn dialects_do_not_mix() {
    let got = scan(Dialect::OpenAi, &[ANTHROPIC_STREAM.as_bytes()]);
    assert!(!got.completed);
    assert_eq!(got.usage, None);
    let got = scan(Dialect::Anthropic, &[OPENAI_STREAM.as_bytes()]);
    assert!(!got.completed);
    assert_eq!(got.usage, None);
}

fn event_scan(dialect: Dialect, events: &[(&str, &str)]) -> UsageScanner {
    let mut s = UsageScanner::new(dialect);
    for (event, data) in events {
        s.on_event(&SseEvent {
            event: event.as_bytes(),
            data: data.as_bytes(),
        });
    }
    s
}

#[test]
fn openai_usage_null_and_missing_fields() {
    let s = event_scan(
        Dialect::OpenAi,
        &[("", r#"{"choices":[{"index":0,"delta":{}}],"usage":null}"#)],
    );
    assert_eq!(s.usage(), None);
    assert!(!s.usage_only_event());
    let s = event_scan(
        Dialect::OpenAi,
        &[(
            "",
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#,
        )],
    );
    assert_eq!(
        s.usage(),
        Some(Usage {
            input_tokens: 3,
            output_tokens: 4,
            ..Usage::default()
        })
    );
    assert!(s.usage_only_event());
    // Null details, usage with choices (not usage-only), `usage` spaced out.
    let s = event_scan(
        Dialect::OpenAi,
        &[(
            "",
            r#"{"choices":[{"index":0}], "usage" : {"prompt_tokens":3,"prompt_tokens_details":null,"completion_tokens":4,"completion_tokens_details":{"reasoning_tokens":null}}}"#,
        )],
    );
    assert_eq!(
        s.usage(),
        Some(Usage {
            input_tokens: 3,
            output_tokens: 4,
            ..Usage::default()
        })
    );
    assert!(!s.usage_only_event());
    // A later null does not erase an earlier report; a later report replaces it.
    let s = event_scan(
        Dialect::OpenAi,
        &[
            (
                "",
                r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#,
            ),
            ("", r#"{"choices":[],"usage":null}"#),
        ],
    );
    assert_eq!(s.usage().map(|u| u.input_tokens), Some(1));
    assert!(!s.usage_only_event());
    let s = event_scan(
        Dialect::OpenAi,
        &[
            (
                "",
                r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#,
            ),
            (
                "",
                r#"{"choices":[],"usage":{"prompt_tokens":2,"completion_tokens":5}}"#,
            ),
        ],
    );
    assert_eq!(s.usage().map(|u| (u.input_tokens, u.output_tokens)), Some((2, 5)));
}

#[test]
fn usage_null_fast_path_is_not_fooled() {
    assert!(!has_usage(br#"{"a":1}"#));
    assert!(!has_usage(br#"{"usage":null}"#));
    assert!(!has_usage(b"{\"usage\" :\tnull }"));
    assert!(has_usage(br#"{"usage":{"prompt_tokens":1}}"#));
    // A nested null key first, the real report second.
    assert!(has_usage(br#"{"x":{"usage":null},"usage":{"prompt_tokens":1}}"#));
    assert!(has_usage(br#"{"content":"usage","usage":{}}"#));
    assert!(has_usage(br#"x"usage""#));
    let s = event_scan(
        Dialect::OpenAi,
        &[("", r#"{"x":{"usage":null},"usage":{"prompt_tokens":7}}"#)],
    );
    assert_eq!(s.usage().map(|u| u.input_tokens), Some(7));
    // Escaped quotes in content never look like the key.
    assert!(!has_usage(br#"{"content":"the \"usage\" field"}"#));
}

#[test]
fn anthropic_fields_replace_earlier_values() {
    let s = event_scan(
        Dialect::Anthropic,
        &[
            (
                "message_start",
                r#"{"type":"message_start","message":{"usage":{"input_tokens":10,"cache_creation_input_tokens":5,"cache_read_input_tokens":0,"output_tokens":1}}}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","usage":{"output_tokens":7}}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","usage":{"input_tokens":12,"cache_read_input_tokens":3,"cache_creation_input_tokens":null,"output_tokens":9,"server_tool_use":{"web_search_requests":1}}}"#,
            ),
        ],
    );
    assert_eq!(
        s.usage(),
        Some(Usage {
            input_tokens: 12 + 3 + 5,
            output_tokens: 9,
            cached_input_tokens: 3,
            cache_creation_tokens: 5,
            reasoning_tokens: 0,
        })
    );
    assert!(!s.completed());
}

#[test]
fn anthropic_message_stop_without_event_line() {
    let s = event_scan(Dialect::Anthropic, &[("", r#"{"type":"message_stop"}"#)]);
    assert!(s.completed());
    let s = event_scan(Dialect::Anthropic, &[("", r#"{"type":"message_\u0073top"}"#)]);
    assert!(!s.completed(), "no literal message_stop: not read");
    let s = event_scan(
        Dialect::Anthropic,
        &[("", r#"{"type":"ping","note":"message_stop"}"#)],
    );
    assert!(!s.completed());
    let s = event_scan(
        Dialect::Anthropic,
        &[("error", r#"{"type":"error","error":{"type":"overloaded_error"}}"#)],
    );
    assert!(!s.completed());
}

#[test]
fn sums_saturate() {
    let max = u64::MAX;
    let data = format!(
        r#"{{"message":{{"usage":{{"input_tokens":{max},"cache_read_input_tokens":{max},"cache_creation_input_tokens":1}}}}}}"#
    );
    let s = event_scan(Dialect::Anthropic, &[("message_start", &data)]);
    assert_eq!(s.usage().map(|u| u.input_tokens), Some(u64::MAX));
}

const GARBAGE: &[&str] = &[
    r#"{"usage": {"prompt_tokens": 5"#,
    r#"{"usage":{"prompt_tokens":-1,"input_tokens":-1}}"#,
    r#"{"usage":{"prompt_tokens":1.5,"input_tokens":1.5}}"#,
    r#"{"usage":{"prompt_tokens":"5","input_tokens":"5"}}"#,
    r#"{"usage":{"prompt_tokens_details":[1],"input_tokens":null,"output_tokens":{}}}"#,
    r#"{"usage":[1,2]}"#,
    r#"{"usage":"#,
    r#""usage""#,
    r#"[{"usage":{"prompt_tokens":1}}]"#,
    r#"{"choices":{},"message":5,"usage":{"prompt_tokens":1}}"#,
    r#"{"usage":{"input_tokens":99999999999999999999999,"prompt_tokens":99999999999999999999999}}"#,
    r#"{"message":"usage","usage":{"output_tokens":true,"completion_tokens":true}}"#,
    r#"{"message":{"usage":[1,2]},"usage":[1,2]}"#,
    "{\"usage\":{\"prompt_tokens\":1}}\u{0}trailing",
    "\u{ff}\u{fe}",
    "",
];

#[test]
fn garbage_json_is_ignored() {
    for dialect in [Dialect::OpenAi, Dialect::Anthropic] {
        for g in GARBAGE {
            let s = event_scan(dialect, &[("message_delta", g), ("", g)]);
            assert_eq!(s.usage(), None, "{dialect:?} {g:?}");
            assert!(!s.completed());
            assert!(!s.usage_only_event());
            let mut s = UsageScanner::new(dialect);
            s.on_json_body(g.as_bytes());
            assert_eq!(s.usage(), None, "{dialect:?} body {g:?}");
        }
    }
}

#[test]
fn non_streamed_bodies() {
    let openai = br#"{
      "id": "chatcmpl-abc123", "object": "chat.completion", "created": 1741570283, "model": "gpt-4o-2024-08-06",
      "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi \"usage\"", "refusal": null},
                   "logprobs": null, "finish_reason": "stop"}],
      "usage": {"prompt_tokens": 1117, "completion_tokens": 46, "total_tokens": 1163,
                "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 12, "audio_tokens": 0,
                   "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
      "service_tier": "default", "system_fingerprint": "fp_fc9f1d7035"
    }"#;
    let mut s = UsageScanner::new(Dialect::OpenAi);
    s.on_json_body(openai);
    assert_eq!(s.usage(), Some(OPENAI_USAGE));
    assert!(s.completed());
    assert!(!s.usage_only_event());

    let anthropic = br#"{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant",
      "content":[{"type":"text","text":"Hello!"}],"model":"claude-sonnet-4-20250514","stop_reason":"end_turn",
      "stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":100,
      "cache_read_input_tokens":2000,"cache_creation":{"ephemeral_5m_input_tokens":100,"ephemeral_1h_input_tokens":0},
      "output_tokens":15,"service_tier":"standard"}}"#;
    let mut s = UsageScanner::new(Dialect::Anthropic);
    s.on_json_body(anthropic);
    assert_eq!(s.usage(), Some(ANTHROPIC_USAGE));
    assert!(s.completed());

    // A whole object without usage (an error body) completes with no usage.
    for dialect in [Dialect::OpenAi, Dialect::Anthropic] {
        let mut s = UsageScanner::new(dialect);
        s.on_json_body(br#" {"error":{"message":"bad","type":"invalid_request_error","code":null}}"#);
        assert!(s.completed());
        assert_eq!(s.usage(), None);
        // Usage of an unexpected shape: still a whole object.
        let mut s = UsageScanner::new(dialect);
        s.on_json_body(br#"{"usage":"n/a"}"#);
        assert!(s.completed());
        assert_eq!(s.usage(), None);
    }
    // Truncated, not an object, or trailing garbage: not complete.
    for body in [&openai[..openai.len() - 2], b"[1,2]", b"null", b"{} x", b""] {
        let mut s = UsageScanner::new(Dialect::OpenAi);
        s.on_json_body(body);
        assert!(!s.completed(), "{:?}", String::from_utf8_lossy(body));
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng::new(11);
    let alphabet = br#"{}[]":,0123 -.nul"usage"prompt_tokens"input_tokens"choices"message\"#;
    for _ in 0..5000 {
        let len = rng.below(80);
        let data: Vec<u8> = (0..len).map(|_| alphabet[rng.below(alphabet.len())]).collect();
        for dialect in [Dialect::OpenAi, Dialect::Anthropic] {
            let mut s = UsageScanner::new(dialect);
            s.on_event(&SseEvent {
                event: b"",
                data: &data,
            });
            s.on_event(&SseEvent {
                event: b"message_start",
                data: &data,
            });
            s.on_json_body(&data);
            let _ = (s.usage(), s.completed(), s.usage_only_event(), s.dialect());
        }
    }
}

/// What the pipeline ended with: the scan, events framed, whether the
/// chunked body ended, and payload bytes decoded.
type Piped = (Scan, u64, bool, u64);

/// De-chunks, frames and scans `parts` of a chunked body, as the proxy does.
fn pipeline(dialect: Dialect, parts: &[&[u8]]) -> Piped {
    let mut dechunk = ChunkedDecoder::new();
    let mut framer = SseFramer::default();
    let mut scanner = UsageScanner::new(dialect);
    let mut usage_only = Vec::new();
    for p in parts {
        let fed = dechunk.feed(p, |payload| {
            framer.feed(&p[payload], |ev| {
                scanner.on_event(ev);
                usage_only.push(scanner.usage_only_event());
            })
        });
        assert!(fed.is_ok(), "{fed:?}");
    }
    let scan = Scan {
        usage: scanner.usage(),
        completed: scanner.completed(),
        usage_only,
    };
    (scan, framer.events(), dechunk.is_done(), dechunk.payload_len())
}

#[test]
fn chunked_streams_with_random_chunks_and_splits() {
    let mut rng = Rng::new(0xc0ffee);
    for (dialect, stream, usage, events) in [
        (Dialect::OpenAi, OPENAI_STREAM, OPENAI_USAGE, 6),
        (Dialect::Anthropic, ANTHROPIC_STREAM, ANTHROPIC_USAGE, 9),
    ] {
        // Line ends of every kind must make no difference.
        let variants = [
            stream.to_string(),
            stream.replace('\n', "\r\n"),
            stream.replace('\n', "\r"),
        ];
        for variant in &variants {
            for _ in 0..100 {
                let body = crate::codec::chunked::tests::encode_random(variant.as_bytes(), &mut rng);
                let (scan, n, done, _) = pipeline(dialect, &rng.split(&body, 12));
                assert_eq!(scan.usage, Some(usage));
                assert!(scan.completed && done);
                assert_eq!(n, events);
                if dialect == Dialect::OpenAi {
                    assert_eq!(scan.usage_only, [false, false, false, false, true, false]);
                }
                // Byte at a time too, now and then.
                if rng.below(20) == 0 {
                    let bytes: Vec<&[u8]> = body.chunks(1).collect();
                    assert_eq!(pipeline(dialect, &bytes).0, scan);
                }
            }
        }
    }
}

#[test]
fn chunked_stream_cut_short_is_truncated() {
    let mut rng = Rng::new(5);
    for (dialect, stream) in [
        (Dialect::OpenAi, OPENAI_STREAM),
        (Dialect::Anthropic, ANTHROPIC_STREAM),
    ] {
        let body = crate::codec::chunked::tests::encode_random(stream.as_bytes(), &mut rng);
        for end in 0..body.len() {
            let (scan, _, done, payload) = pipeline(dialect, &[&body[..end]]);
            // Complete only once the last event's blank line has been decoded;
            // the chunked body itself is never done before its last byte.
            assert_eq!(
                scan.completed,
                payload == stream.len() as u64,
                "{dialect:?} cut at {end}"
            );
            assert!(!done);
        }
    }
}

/// A Responses stream in the shape OpenAI sends (named events, each data's
/// `type` repeating the name, `sequence_number`s), abridged.
const RESPONSES_STREAM: &str = concat!(
    "event: response.created\n",
    "data: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_67c\",\"object\":\"response\",\"created_at\":1741290958,\"status\":\"in_progress\",\"error\":null,\"incomplete_details\":null,\"instructions\":\"You are helpful.\",\"max_output_tokens\":null,\"model\":\"gpt-4.1-2025-04-14\",\"output\":[],\"previous_response_id\":null,\"store\":true,\"usage\":null,\"metadata\":{}}}\n\n",
    "event: response.in_progress\n",
    "data: {\"type\":\"response.in_progress\",\"sequence_number\":1,\"response\":{\"id\":\"resp_67c\",\"status\":\"in_progress\",\"usage\":null}}\n\n",
    "event: response.output_item.added\n",
    "data: {\"type\":\"response.output_item.added\",\"sequence_number\":2,\"output_index\":0,\"item\":{\"id\":\"msg_67c\",\"type\":\"message\",\"status\":\"in_progress\",\"role\":\"assistant\",\"content\":[]}}\n\n",
    "event: response.content_part.added\n",
    "data: {\"type\":\"response.content_part.added\",\"sequence_number\":3,\"item_id\":\"msg_67c\",\"output_index\":0,\"content_index\":0,\"part\":{\"type\":\"output_text\",\"text\":\"\",\"annotations\":[]}}\n\n",
    "event: response.output_text.delta\n",
    "data: {\"type\":\"response.output_text.delta\",\"sequence_number\":4,\"item_id\":\"msg_67c\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hi\",\"logprobs\":[]}\n\n",
    "event: response.output_text.delta\n",
    "data: {\"type\":\"response.output_text.delta\",\"sequence_number\":5,\"item_id\":\"msg_67c\",\"output_index\":0,\"content_index\":0,\"delta\":\" th\\u00e9re \\\"usage\\\"\",\"logprobs\":[]}\n\n",
    "event: response.output_text.done\n",
    "data: {\"type\":\"response.output_text.done\",\"sequence_number\":6,\"item_id\":\"msg_67c\",\"output_index\":0,\"content_index\":0,\"text\":\"Hi th\\u00e9re \\\"usage\\\"\",\"logprobs\":[]}\n\n",
    "event: response.completed\n",
    "data: {\"type\":\"response.completed\",\"sequence_number\":7,\"response\":{\"id\":\"resp_67c\",\"object\":\"response\",\"status\":\"completed\",\"output\":[{\"id\":\"msg_67c\",\"type\":\"message\",\"status\":\"completed\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hi th\\u00e9re \\\"usage\\\"\",\"annotations\":[]}]}],\"store\":true,\"usage\":{\"input_tokens\":1117,\"input_tokens_details\":{\"cached_tokens\":1024},\"output_tokens\":46,\"output_tokens_details\":{\"reasoning_tokens\":12},\"total_tokens\":1163},\"metadata\":{}}}\n\n",
);

#[test]
fn responses_stream_at_every_split() {
    let got = check_splits(Dialect::OpenAiResponses, RESPONSES_STREAM.as_bytes());
    assert_eq!(got.usage, Some(OPENAI_USAGE));
    assert!(got.completed);
    assert!(got.usage_only.iter().all(|u| !u));
    // The completion text, read by the delta reader, at every split too.
    let deltas = |parts: &[&[u8]]| {
        let mut framer = SseFramer::default();
        let mut reader = crate::codec::delta::DeltaReader::default();
        let mut text = String::new();
        for p in parts {
            framer.feed(p, |ev| {
                reader.for_each_text(Dialect::OpenAiResponses, ev, |t| text.push_str(t));
            });
        }
        text
    };
    let stream = RESPONSES_STREAM.as_bytes();
    for at in 0..=stream.len() {
        assert_eq!(
            deltas(&[&stream[..at], &stream[at..]]),
            "Hi th\u{e9}re \"usage\"",
            "split at {at}"
        );
    }
    // Cut before its terminal event, the stream is not complete.
    let cut = RESPONSES_STREAM.find("event: response.completed").unwrap();
    let s = scan(Dialect::OpenAiResponses, &[&stream[..cut]]);
    assert_eq!((s.usage, s.completed), (None, false));
}

#[test]
fn responses_ends_that_are_not_completion() {
    for (name, why) in [
        ("response.failed", "response_failed"),
        ("response.incomplete", "response_incomplete"),
    ] {
        let data = format!(
            r#"{{"type":"{name}","sequence_number":9,"response":{{"status":"x","error":null,"usage":{{"input_tokens":5,"output_tokens":2}}}}}}"#
        );
        for event in [name, ""] {
            let s = event_scan(Dialect::OpenAiResponses, &[(event, &data)]);
            assert!(s.completed(), "{event}");
            assert_eq!(s.ended(), Some(why));
            assert_eq!(s.usage().map(|u| (u.input_tokens, u.output_tokens)), Some((5, 2)));
        }
    }
    // Without `event:` lines, the JSON `type` names the end.
    let done = r#"{"type":"response.completed","response":{"usage":{"input_tokens":3,"output_tokens":1}}}"#;
    let s = event_scan(Dialect::OpenAiResponses, &[("", done)]);
    assert!(s.completed() && s.ended().is_none());
    // A delta whose text names an end is not one.
    let delta = r#"{"type":"response.output_text.delta","delta":"response.failed"}"#;
    let s = event_scan(Dialect::OpenAiResponses, &[("", delta)]);
    assert!(!s.completed());
    // `response.created` carries `"usage":null`, and no end.
    let s = event_scan(
        Dialect::OpenAiResponses,
        &[("response.created", r#"{"response":{"usage":null}}"#)],
    );
    assert!(!s.completed() && s.usage().is_none());
}

#[test]
fn responses_non_streamed_body() {
    let body = br#"{"id":"resp_1","object":"response","status":"completed","output":[{"type":"message","content":[{"type":"output_text","text":"hi"}]}],"usage":{"input_tokens":1117,"input_tokens_details":{"cached_tokens":1024},"output_tokens":46,"output_tokens_details":{"reasoning_tokens":12},"total_tokens":1163}}"#;
    let mut s = UsageScanner::new(Dialect::OpenAiResponses);
    s.on_json_body(body);
    assert_eq!(s.usage(), Some(OPENAI_USAGE));
    assert!(s.completed());
    // Chat's field names are not Responses'.
    let mut s = UsageScanner::new(Dialect::OpenAiResponses);
    s.on_json_body(br#"{"usage":{"prompt_tokens":3,"completion_tokens":1}}"#);
    assert_eq!(s.usage(), None);
}
