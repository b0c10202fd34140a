//! The fast reader against the reference (`serde_json`) reader: on every
//! event where the fast one answers, both answer the same.

use super::super::{parsed, DeltaReader};
use super::*;
use crate::codec::sse::SseEvent;
use crate::dialect::Dialect;

/// The reference reader's texts.
fn reference(dialect: Dialect, data: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut scratch = String::new();
    if dialect == Dialect::OpenAi && data.first() != Some(&b'{') {
        return out;
    }
    parsed(dialect, data, &mut scratch, |t| out.push(t.to_owned()));
    out
}

/// The fast reader's texts, `None` when it is unsure.
fn fast(dialect: Dialect, data: &[u8]) -> Option<Vec<String>> {
    fast_with(dialect, data, &mut Spans::default())
}

/// [`fast`] with the reader's state of one stream.
fn fast_with(dialect: Dialect, data: &[u8], spans: &mut Spans) -> Option<Vec<String>> {
    if dialect == Dialect::OpenAi && data.first() != Some(&b'{') {
        return Some(Vec::new()); // the reader's guard, as in `reference`
    }
    read(dialect, data, spans).ok()?;
    let mut texts = Vec::new();
    super::super::emit(data, spans, &mut String::new(), |t| texts.push(t.to_owned())).ok()?;
    Some(texts)
}

/// What the proxy's reader gives (fast, else reference).
fn reader(dialect: Dialect, data: &[u8]) -> Vec<String> {
    let event: &[u8] = match dialect {
        Dialect::OpenAi | Dialect::OpenAiEmbeddings | Dialect::Gemini => b"",
        Dialect::Anthropic => b"content_block_delta",
        Dialect::OpenAiResponses => b"response.output_text.delta",
    };
    let mut out = Vec::new();
    DeltaReader::default().for_each_text(dialect, &SseEvent { event, data }, |t| out.push(t.to_owned()));
    out
}

const OPENAI: &[&str] = &[
    r#"{"id":"chatcmpl-mock1","object":"chat.completion.chunk","created":1741570283,"model":"gpt-4o-mini","system_fingerprint":"fp_mock","choices":[{"index":0,"delta":{"content":" hello"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]}"#,
    r#"{"choices":[{"index":0,"delta":{"content":"caf\u00e9 \"q\" \\ \n","reasoning_content":"think","reasoning":"more"}}]}"#,
    r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get","arguments":"{\"a\":1}"}},{"function":{"arguments":"x"}}]}}]}"#,
    r#"{"choices":[{"delta":{"content":"a"}},{"delta":{"content":"b","tool_calls":[{"function":{"arguments":"y"}}]}},{"delta":null}]}"#,
    r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":1117,"completion_tokens":900,"total_tokens":2017,"prompt_tokens_details":{"cached_tokens":1024},"completion_tokens_details":{"reasoning_tokens":0}}}"#,
    r#"{"choices":[{"delta":{"content":12,"reasoning":null,"tool_calls":[{"function":null},{"function":{"arguments":[1,{"x":-0.5e+3}]}}]}}],"x":[true,false,null,"s",{}]}"#,
    r#"{ "choices" : [ { "delta" : { "content" : "spaced \u4e16\ud83d\ude80" } } ] }  "#,
    r#"{"choices":[{"delta":{"content":"世界 🚀 plain"},"finish_reason":"stop"}]}"#,
];

const ANTHROPIC: &[&str] = &[
    r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi there"}}"#,
    r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"x\":"}}"#,
    r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm\n"}}"#,
    r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM"}}"#,
    r#"{"type":"content_block_delta","delta":null}"#,
    r#"{"delta":{"text":1,"thinking":"t","partial_json":"p"}}"#,
];

const RESPONSES: &[&str] = &[
    r#"{"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hello","logprobs":[]}"#,
    r#"{"type":"response.output_text.delta","delta":"caf\u00e9 \"q\" \n"}"#,
    r#"{"delta":null,"x":[1,{"delta":"inner"}]}"#,
    r#"{ "delta" : "spaced \u4e16\ud83d\ude80" }  "#,
    r#"{"delta":12}"#,
];

#[test]
fn answers_the_usual_events_itself_and_as_the_reference() {
    for (dialect, events) in [
        (Dialect::OpenAi, OPENAI),
        (Dialect::Anthropic, ANTHROPIC),
        (Dialect::OpenAiResponses, RESPONSES),
    ] {
        for ev in events {
            let want = reference(dialect, ev.as_bytes());
            assert_eq!(fast(dialect, ev.as_bytes()).as_ref(), Some(&want), "{ev}");
            assert_eq!(reader(dialect, ev.as_bytes()), want, "{ev}");
        }
    }
    // The order of the reference: content, reasoning content, reasoning,
    // tool-call arguments, choice by choice, whatever the key order.
    let reordered = br#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"t"}}],"reasoning":"r","content":"c"}},{"delta":{"content":"d"}}]}"#;
    assert_eq!(fast(Dialect::OpenAi, reordered).unwrap(), ["c", "r", "t", "d"]);
}

#[test]
fn leaves_the_unusual_to_the_reference() {
    let unsure: &[&[u8]] = &[
        br#"{"choices":[{"delta":{"content":"a","content":"b"}}]}"#,
        br#"{"choices":[],"choices":[]}"#,
        br#"{"choices":[{"delta":{},"delta":{}}]}"#,
        br#"{"ch\u006fices":[{"delta":{"content":"a"}}]}"#,
        br#"{"choices":[{"delta":{"content":"\ud83d x"}}]}"#,
        br#"{"choices":[{"delta":{"content":"\ude80"}}]}"#,
        br#"{"choices":[{"delta":{"content":"\ud83d\u0041"}}]}"#,
        b"{\"choices\":[{\"delta\":{\"content\":\"a\x01\"}}]}",
        br#"{"choices":[{"delta":{"content":"a"}}]} x"#,
        br#"{"choices":[{"delta":{"content":"a"}}]"#,
        br#"{"choices":null}"#,
        br#"{"choices":[["a"]]}"#,
        br#"{"choices":[{"delta":["a"]}]}"#,
        br#"{"x":01}"#,
        br#"{"x":1.}"#,
        br#"{"x":-}"#,
        br#"{"x":tru}"#,
        br#"{"x":"\x"}"#,
        br#"{"x":"\u12g4"}"#,
        br#"{"x":"\u+123"}"#,
        br#"{"x":1,}"#,
        br#"{,}"#,
        b"{\"id\":\"\xff\",\"choices\":[{\"delta\":{\"content\":\"a\"}}]}",
        b"{\"choices\":[{\"delta\":{\"content\":\"abcdefgh\xe4\xb8\"}}]}",
        b"{\"choices\":[{\"delta\":{\"content\":\"\xe4\xb8\x96\xe4\"}}]}",
    ];
    for ev in unsure {
        assert_eq!(fast(Dialect::OpenAi, ev), None, "{}", String::from_utf8_lossy(ev));
        // ...and the reader still answers as the reference.
        assert_eq!(
            reader(Dialect::OpenAi, ev),
            reference(Dialect::OpenAi, ev),
            "{}",
            String::from_utf8_lossy(ev)
        );
    }
    let deep = format!("{{\"x\":{}1{}}}", "[".repeat(40), "]".repeat(40));
    assert_eq!(fast(Dialect::OpenAi, deep.as_bytes()), None);
    assert_eq!(
        fast(Dialect::Anthropic, br#"{"delta":{"text":"a","text":"b"}}"#),
        None
    );
}

#[test]
fn special_bytes_are_found_first_in_every_lane() {
    for lane in 0..8 {
        for b in [b'"', b'\\', 0u8, 0x1F] {
            for after in [b'a', b'"', 0x00, 0x1F, 0x20, 0xFF] {
                let mut w = [b'a'; 8];
                w[lane] = b;
                w[lane + 1..].fill(after);
                let found = special(u64::from_le_bytes(w));
                assert_eq!(
                    found.trailing_zeros() / 8,
                    lane as u32,
                    "{b:#x} in lane {lane}, then {after:#x}"
                );
            }
        }
        for b in [b' ', b'!', b'#', b'[', b']', 0x7F, 0x80, 0xA0, 0xDC, 0xE4, 0xFF] {
            let mut w = [b'a'; 8];
            w[lane] = b;
            assert_eq!(special(u64::from_le_bytes(w)), 0, "{b:#x} in lane {lane}");
        }
    }
}

/// Events mutated at random (bytes dropped, inserted, swapped; slices
/// repeated; cut short): wherever the fast reader answers, it agrees with
/// the reference, and the proxy's reader always does. `SLUICE_SKIM_CASES`
/// runs more.
#[test]
fn agrees_with_the_reference_on_mutated_events() {
    let cases: usize = std::env::var("SLUICE_SKIM_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40_000);
    let mut next = crate::testing::xorshift(0x9E37_79B9_7F4A_7C15u64);
    const INSERTS: &[u8] = b"{}[]\":,\\ 0-1.eE+tnu\x01\xC3\xA9a";
    let (mut answered, mut total) = (0, 0);
    for case in 0..cases {
        let dialect = if case % 3 == 0 {
            Dialect::Anthropic
        } else {
            Dialect::OpenAi
        };
        let bases = if dialect == Dialect::OpenAi {
            OPENAI
        } else {
            ANTHROPIC
        };
        let mut ev = bases[(next() % bases.len() as u64) as usize].as_bytes().to_vec();
        for _ in 0..1 + next() % 3 {
            let at = (next() % (ev.len() as u64 + 1)) as usize;
            match next() % 6 {
                0 if at < ev.len() => {
                    ev.remove(at);
                }
                1 => ev.insert(at, INSERTS[(next() % INSERTS.len() as u64) as usize]),
                2 if at + 1 < ev.len() => ev.swap(at, at + 1),
                3 => {
                    let len = (next() % 24) as usize;
                    let end = (at + len).min(ev.len());
                    let copy = ev[at..end].to_vec();
                    ev.splice(at..at, copy);
                }
                4 => ev.truncate(at),
                _ => {}
            }
        }
        let want = reference(dialect, &ev);
        total += 1;
        if let Some(got) = fast(dialect, &ev) {
            answered += 1;
            assert_eq!(got, want, "{}", String::from_utf8_lossy(&ev));
        }
        assert_eq!(reader(dialect, &ev), want, "{}", String::from_utf8_lossy(&ev));
    }
    // The mutations leave many events valid: the fast reader must answer
    // a good share of them itself.
    assert!(
        answered * 5 > total,
        "fast reader answered only {answered} of {total}"
    );
}

/// Streams of chunks sharing their bytes before `choices` (as a provider's
/// do), some mutated, read by one reader: the prefix memo changes no answer.
#[test]
fn the_prefix_memo_agrees_with_the_reference_along_a_stream() {
    let mut next = crate::testing::xorshift(0x2545_F491_4F6C_DD1Du64);
    const PREFIXES: &[&str] = &[
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":["#,
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o", "choices" : [ "#,
        r#"{"choices":["#,
    ];
    const TAILS: &[&str] = &[
        r#"{"index":0,"delta":{"content":" hi"},"finish_reason":null}]}"#,
        r#"{"index":0,"delta":{"content":"a\"b"}}],"usage":null}"#,
        r#"],"usage":{"prompt_tokens":3}}"#,
        r#"{"delta":{"tool_calls":[{"function":{"arguments":"{}"}}]}}]}"#,
        r#"{"delta":{"content":"x"}}],"choices":[]}"#,
        r#"{"delta":{"content":"y"}}]} trailing"#,
        r#"{"delta":{"content":"z"}}"#,
    ];
    const INSERTS: &[u8] = b"{}[]\":,\\ 0a\xC3";
    let mut answered = 0;
    for _ in 0..5_000 {
        let mut spans = Spans::default();
        let prefix = PREFIXES[(next() % PREFIXES.len() as u64) as usize];
        for _ in 0..8 {
            let tail = TAILS[(next() % TAILS.len() as u64) as usize];
            let mut ev = format!("{prefix}{tail}").into_bytes();
            if next().is_multiple_of(3) {
                let at = (next() % ev.len() as u64) as usize;
                match next() % 3 {
                    0 => {
                        ev.remove(at);
                    }
                    1 => ev.insert(at, INSERTS[(next() % INSERTS.len() as u64) as usize]),
                    _ => ev.truncate(at),
                }
            }
            let want = reference(Dialect::OpenAi, &ev);
            if let Some(got) = fast_with(Dialect::OpenAi, &ev, &mut spans) {
                answered += 1;
                assert_eq!(got, want, "{}", String::from_utf8_lossy(&ev));
            }
        }
        assert!(spans.prefix.len() <= Spans::MAX_PREFIX);
    }
    assert!(answered > 10_000, "fast reader answered only {answered}");
}

#[test]
fn the_prefix_is_kept_and_used() {
    let mut spans = Spans::default();
    let first = OPENAI[0].as_bytes();
    assert!(fast_with(Dialect::OpenAi, first, &mut spans).is_some());
    let at = first.windows(11).position(|w| w == b"\"choices\":[").unwrap() + 11;
    assert_eq!(spans.prefix, &first[..at]);
    // The next chunk with that prefix is read from there on, and keeps it.
    let mut next = spans.prefix.clone();
    next.extend_from_slice(br#"{"delta":{"content":"ok"}}]}"#);
    assert_eq!(fast_with(Dialect::OpenAi, &next, &mut spans).unwrap(), ["ok"]);
    assert_eq!(spans.prefix, &first[..at]);
    // A different prefix is read whole and replaces it.
    let other = br#"{"id":"other","choices":[{"delta":{"content":"b"}}]}"#;
    assert_eq!(fast_with(Dialect::OpenAi, other, &mut spans).unwrap(), ["b"]);
    assert_eq!(spans.prefix, br#"{"id":"other","choices":["#);
}

/// Streams whose events differ only in their text (as a provider's do),
/// the texts drawn from escapes, multi-byte and invalid UTF-8, quotes and
/// control bytes, read by one reader: the shape memo changes no answer.
#[test]
fn the_shape_memo_agrees_with_the_reference_along_a_stream() {
    let mut next = crate::testing::xorshift(0x51_7CC1_B727_220Au64);
    const AROUND: &[(Dialect, &str, &str)] = &[
        (
            Dialect::OpenAi,
            r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"#,
            r#"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        ),
        (
            Dialect::OpenAi,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"#,
            r#"}}]}}]}"#,
        ),
        (
            Dialect::OpenAi,
            r#"{"choices":[{"delta":{"content":"a","reasoning":"#,
            r#"}}]}"#,
        ),
        (
            Dialect::Anthropic,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"#,
            r#"}}"#,
        ),
        (
            Dialect::Anthropic,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"#,
            r#","text":"twice"}}"#,
        ),
    ];
    const PIECES: &[&[u8]] = &[
        b" word",
        b"x",
        br#"\""#,
        br"\\",
        br"\n",
        br"\u00e9",
        br"\ud83d\ude80",
        br"\ud800",
        br"\u12",
        br"\q",
        "café 世".as_bytes(),
        b"\xC3",
        b"\x01",
        b"\"",
        b"\\",
        br#""},{"x":""#,
        b"1",
    ];
    let (mut answered, mut total) = (0, 0);
    for _ in 0..3_000 {
        let (dialect, head, tail) = AROUND[(next() % AROUND.len() as u64) as usize];
        let mut spans = Spans::default();
        for _ in 0..10 {
            let mut ev = head.as_bytes().to_vec();
            // Mostly a string token; now and then something else.
            let quoted = !next().is_multiple_of(8);
            if quoted {
                ev.push(b'"');
            }
            for _ in 0..next() % 4 {
                ev.extend_from_slice(PIECES[(next() % PIECES.len() as u64) as usize]);
            }
            if quoted {
                ev.push(b'"');
            }
            ev.extend_from_slice(tail.as_bytes());
            let want = reference(dialect, &ev);
            total += 1;
            if let Some(got) = fast_with(dialect, &ev, &mut spans) {
                answered += 1;
                assert_eq!(got, want, "{}", String::from_utf8_lossy(&ev));
            }
        }
    }
    // A third of the texts are valid strings the fast reader takes.
    assert!(
        answered * 4 > total,
        "fast reader answered only {answered} of {total}"
    );
}

#[test]
fn the_shape_is_kept_and_used() {
    let mut spans = Spans::default();
    let first = OPENAI[0].as_bytes();
    assert_eq!(fast_with(Dialect::OpenAi, first, &mut spans).unwrap(), [" hello"]);
    assert_eq!(spans.shape.kept(), first);
    // The next delta fits that shape: read without a whole read (which
    // would have kept it instead).
    let second = OPENAI[0].replace(" hello", r"caf\u00e9!").into_bytes();
    assert_eq!(
        fast_with(Dialect::OpenAi, &second, &mut spans).unwrap(),
        ["café!"]
    );
    assert_eq!(spans.shape.kept(), first);
    // An event of another shape is read whole; with one text it is kept.
    let other = br#"{"choices":[{"delta":{"content":"b"}}]}"#;
    assert_eq!(fast_with(Dialect::OpenAi, other, &mut spans).unwrap(), ["b"]);
    assert_eq!(spans.shape.kept(), other);
    // Without a text, it is read whole and the shape stays.
    let none = br#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#;
    assert!(fast_with(Dialect::OpenAi, none, &mut spans).unwrap().is_empty());
    assert_eq!(spans.shape.kept(), other);
    // The same bytes read by the other dialect's reader are not its shape.
    assert!(fast_with(Dialect::Anthropic, other, &mut spans)
        .unwrap()
        .is_empty());
}
