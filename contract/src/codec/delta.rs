//! The completion text carried by one streamed event, for counting tokens
//! while the stream flows.
//!
//! OpenAI: `choices[].delta.content`, `.reasoning_content` / `.reasoning`,
//! and `.tool_calls[].function.arguments`. Anthropic `content_block_delta`:
//! `text_delta.text`, `input_json_delta.partial_json`,
//! `thinking_delta.thinking`. OpenAI Responses
//! `response.output_text.delta`: `delta`. Strings are borrowed from the event unless they
//! contain escapes. Anything else, malformed JSON included, carries no text.

mod skim;

use super::sse::SseEvent;
use crate::dialect::Dialect;
use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;

#[derive(serde::Deserialize)]
struct OpenAiChunk<'a> {
    #[serde(borrow, default)]
    choices: Few<Choice<'a>>,
}

#[derive(serde::Deserialize)]
struct Choice<'a> {
    #[serde(borrow)]
    delta: Option<Delta<'a>>,
}

#[derive(serde::Deserialize)]
struct Delta<'a> {
    #[serde(borrow)]
    content: Option<&'a RawValue>,
    #[serde(borrow)]
    reasoning_content: Option<&'a RawValue>,
    #[serde(borrow)]
    reasoning: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_calls: Few<ToolCall<'a>>,
}

#[derive(serde::Deserialize)]
struct ToolCall<'a> {
    #[serde(borrow)]
    function: Option<Function<'a>>,
}

#[derive(serde::Deserialize)]
struct Function<'a> {
    #[serde(borrow)]
    arguments: Option<&'a RawValue>,
}

#[derive(serde::Deserialize)]
struct AnthropicEvent<'a> {
    #[serde(borrow)]
    delta: Option<AnthropicDelta<'a>>,
}

#[derive(serde::Deserialize)]
struct ResponsesDelta<'a> {
    #[serde(borrow)]
    delta: Option<&'a RawValue>,
}

/// A Gemini `GenerateContentResponse` event: `candidates[].content.parts[].text`
/// (thought summaries included: thinking is output too).
#[derive(serde::Deserialize)]
struct GeminiChunk<'a> {
    #[serde(borrow, default)]
    candidates: Few<GeminiCandidate<'a>>,
}

#[derive(serde::Deserialize)]
struct GeminiCandidate<'a> {
    #[serde(borrow)]
    content: Option<GeminiContent<'a>>,
}

#[derive(serde::Deserialize)]
struct GeminiContent<'a> {
    #[serde(borrow, default)]
    parts: Few<GeminiPart<'a>>,
}

#[derive(serde::Deserialize)]
struct GeminiPart<'a> {
    #[serde(borrow)]
    text: Option<&'a RawValue>,
}

#[derive(serde::Deserialize)]
struct AnthropicDelta<'a> {
    #[serde(borrow)]
    text: Option<&'a RawValue>,
    #[serde(borrow)]
    partial_json: Option<&'a RawValue>,
    #[serde(borrow)]
    thinking: Option<&'a RawValue>,
}

/// A JSON array that nearly always holds one element (`choices` without
/// `n`, one tool call per delta): the first is kept inline, so that reading
/// an event allocates nothing; only further elements go to the heap.
struct Few<T> {
    first: Option<T>,
    rest: Vec<T>,
}

impl<T> Default for Few<T> {
    fn default() -> Self {
        Few {
            first: None,
            rest: Vec::new(),
        }
    }
}

impl<T> Few<T> {
    fn iter(&self) -> impl Iterator<Item = &T> {
        self.first.iter().chain(&self.rest)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Few<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Seq<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Seq<T> {
            type Value = Few<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Few<T>, A::Error> {
                let mut few = Few {
                    first: seq.next_element()?,
                    rest: Vec::new(),
                };
                while let Some(x) = seq.next_element()? {
                    few.rest.push(x);
                }
                Ok(few)
            }
        }
        d.deserialize_seq(Seq(PhantomData))
    }
}

/// Reads the completion text out of streamed events. Strings are handed on
/// as borrowed from the event; one with escapes is decoded into a buffer the
/// reader keeps, so a stream is read without an allocation per event.
///
/// Each event is read by [`skim`]'s one-pass reader first; what it is unsure
/// of (malformed or unusual JSON) goes to `serde_json`, whose answer is the
/// reference.
#[derive(Debug, Default)]
pub struct DeltaReader {
    scratch: String,
    spans: skim::Spans,
}

impl DeltaReader {
    /// Calls `text` with each piece of completion text in `ev`. Returns
    /// where the event's text lies in `ev.data` (its string token, quotes
    /// included) when it has exactly one, read where only a string is
    /// looked at (see [`DeltaReader::for_each_text_at`]).
    pub fn for_each_text(
        &mut self,
        dialect: Dialect,
        ev: &SseEvent<'_>,
        mut text: impl FnMut(&str),
    ) -> Option<Range<usize>> {
        if !wanted(dialect, ev) {
            return None;
        }
        let DeltaReader { scratch, spans } = self;
        let fast =
            skim::read(dialect, ev.data, spans).and_then(|()| emit(ev.data, spans, scratch, &mut text));
        if fast.is_err() {
            parsed(dialect, ev.data, scratch, text);
            return None;
        }
        one(spans)
    }

    /// What [`DeltaReader::for_each_text`] returns for `ev`, without
    /// handing on its texts.
    pub fn one_text(&mut self, dialect: Dialect, ev: &SseEvent<'_>) -> Option<Range<usize>> {
        if !wanted(dialect, ev) {
            return None;
        }
        skim::read(dialect, ev.data, &mut self.spans).ok()?;
        one(&self.spans)
    }

    /// Calls `text` with the completion text of `ev`, known to be an event
    /// that [`DeltaReader::for_each_text`] found one text in, with the
    /// string token at `at` in `ev.data` in place of that text (found by
    /// [`token_replaced`], which says whether it holds `escaped`
    /// characters). The reader looks at that token only to see that it is
    /// a string, so its reading is the same but for the text; the token's
    /// UTF-8 is checked here.
    pub fn for_each_text_at(
        &mut self,
        dialect: Dialect,
        ev: &SseEvent<'_>,
        at: Range<usize>,
        escaped: bool,
        mut text: impl FnMut(&str),
    ) {
        let DeltaReader { scratch, spans } = self;
        spans.set_one(at, escaped);
        if emit(ev.data, spans, scratch, &mut text).is_err() {
            parsed(dialect, ev.data, scratch, text);
        }
    }
}

/// Whether `ev` may carry completion text at all.
fn wanted(dialect: Dialect, ev: &SseEvent<'_>) -> bool {
    match dialect {
        Dialect::OpenAi => ev.data.first() == Some(&b'{'),
        Dialect::Anthropic => ev.event == b"content_block_delta",
        // Embeddings are never streamed: nothing is completion text.
        Dialect::OpenAiEmbeddings => false,
        Dialect::OpenAiResponses => ev.event == b"response.output_text.delta",
        // Data-only events, each a JSON object.
        Dialect::Gemini => ev.data.trim_ascii_start().first() == Some(&b'{'),
    }
}

/// The one text of the event just read, if it had exactly one.
fn one(spans: &skim::Spans) -> Option<Range<usize>> {
    match spans.texts.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// Whether `input` starts with `kept` with another JSON string token in
/// place of the one at `kept[token]` (quotes included): the same bytes up
/// to its opening quote, a string token (no control character, no bad
/// escape; UTF-8 not checked), then the same bytes as after the kept one's
/// closing quote. Returns the index in `input` just past the new token's
/// closing quote, and whether the token has escapes. What follows the
/// match in `input` is not looked at.
pub fn token_replaced(kept: &[u8], token: Range<usize>, input: &[u8]) -> Option<(usize, bool)> {
    let open = token.start;
    let tail = kept.get(token.end..)?;
    // The shortest string token is `""`.
    if input.len() < open + 2 + tail.len() || kept.get(..=open)? != &input[..=open] {
        return None;
    }
    let (close, escaped) = skim::string_token(input, open)?;
    (input.get(close..close + tail.len())? == tail).then_some((close, escaped))
}

/// Hands on the texts [`skim`] found in `data`; `Unsure` (before any is
/// handed on) when the one text read by its shape is not valid UTF-8, which
/// the full parser judges.
fn emit(
    data: &[u8],
    spans: &skim::Spans,
    scratch: &mut String,
    mut text: impl FnMut(&str),
) -> Result<(), skim::Unsure> {
    for span in &spans.texts {
        let Ok(raw) = std::str::from_utf8(&data[span.clone()]) else {
            if spans.checked {
                continue; // cannot happen: checked spans are valid
            }
            return Err(skim::Unsure);
        };
        let s = if spans.escaped {
            json_str(raw, scratch)
        } else {
            raw.strip_prefix('"').and_then(|r| r.strip_suffix('"'))
        };
        if let Some(s) = s {
            text(s);
        }
    }
    Ok(())
}

/// The reference reader: the event deserialised by `serde_json`.
fn parsed(dialect: Dialect, data: &[u8], scratch: &mut String, mut text: impl FnMut(&str)) {
    let mut emit = |raw: Option<&RawValue>| {
        if let Some(s) = raw.and_then(|r| json_str(r.get(), scratch)) {
            text(s);
        }
    };
    match dialect {
        Dialect::OpenAiEmbeddings => {}
        Dialect::Gemini => {
            let Ok(chunk) = serde_json::from_slice::<GeminiChunk<'_>>(data) else {
                return;
            };
            for c in chunk.candidates.iter().filter_map(|c| c.content.as_ref()) {
                for part in c.parts.iter() {
                    emit(part.text);
                }
            }
        }
        Dialect::OpenAiResponses => {
            if let Ok(e) = serde_json::from_slice::<ResponsesDelta<'_>>(data) {
                emit(e.delta);
            }
        }
        Dialect::OpenAi => {
            let Ok(chunk) = serde_json::from_slice::<OpenAiChunk<'_>>(data) else {
                return;
            };
            for d in chunk.choices.iter().filter_map(|c| c.delta.as_ref()) {
                emit(d.content);
                emit(d.reasoning_content);
                emit(d.reasoning);
                for call in d.tool_calls.iter() {
                    emit(call.function.as_ref().and_then(|f| f.arguments));
                }
            }
        }
        Dialect::Anthropic => {
            let Ok(e) = serde_json::from_slice::<AnthropicEvent<'_>>(data) else {
                return;
            };
            if let Some(d) = &e.delta {
                emit(d.text);
                emit(d.partial_json);
                emit(d.thinking);
            }
        }
    }
}

/// The text of a JSON string token (`"..."`, already validated by the
/// parser): borrowed when it has no escapes, else decoded into `scratch`.
/// Anything but a string (a number, say) carries no text.
fn json_str<'s>(raw: &'s str, scratch: &'s mut String) -> Option<&'s str> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if memchr::memchr(b'\\', inner.as_bytes()).is_none() {
        return Some(inner);
    }
    scratch.clear();
    unescape(inner, scratch);
    Some(scratch)
}

/// Decodes JSON string escapes; a lone surrogate becomes U+FFFD, as
/// Python's and JavaScript's decoders leave something in its place.
fn unescape(s: &str, out: &mut String) {
    let b = s.as_bytes();
    let (mut at, mut from) = (0, 0);
    while let Some(off) = memchr::memchr(b'\\', &b[at..]) {
        let i = at + off;
        out.push_str(&s[from..i]);
        let (c, len) = match b.get(i + 1) {
            Some(b'n') => ('\n', 2),
            Some(b't') => ('\t', 2),
            Some(b'r') => ('\r', 2),
            Some(b'b') => ('\u{8}', 2),
            Some(b'f') => ('\u{c}', 2),
            Some(b'u') => match hex4(b, i + 2) {
                Some(hi @ 0xD800..=0xDBFF) if b.get(i + 6..i + 8) == Some(b"\\u") => match hex4(b, i + 8) {
                    Some(lo @ 0xDC00..=0xDFFF) => {
                        let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                        (char::from_u32(c).unwrap_or('\u{FFFD}'), 12)
                    }
                    _ => ('\u{FFFD}', 6),
                },
                Some(u) => (char::from_u32(u).unwrap_or('\u{FFFD}'), 6),
                None => ('\u{FFFD}', 2),
            },
            // `\"`, `\\`, `\/`: the character itself.
            Some(&c) if c.is_ascii() => (char::from(c), 2),
            _ => break,
        };
        out.push(c);
        at = (i + len).min(b.len());
        from = at;
    }
    out.push_str(&s[from..]);
}

/// Four hex digits at `at`.
fn hex4(b: &[u8], at: usize) -> Option<u32> {
    let digits = std::str::from_utf8(b.get(at..at + 4)?).ok()?;
    u32::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(dialect: Dialect, event: &[u8], data: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        DeltaReader::default().for_each_text(dialect, &SseEvent { event, data }, |t| out.push(t.to_owned()));
        out
    }

    #[test]
    fn openai_deltas() {
        let d = br#"{"choices":[{"index":0,"delta":{"content":"h\u00e9 ","reasoning_content":"think","tool_calls":[{"index":0,"function":{"arguments":"{\"a\":1}"}}]}}],"usage":null}"#;
        assert_eq!(texts(Dialect::OpenAi, b"", d), ["hé ", "think", "{\"a\":1}"]);
        assert!(texts(Dialect::OpenAi, b"", b"[DONE]").is_empty());
        assert!(texts(
            Dialect::OpenAi,
            b"",
            br#"{"choices":[],"usage":{"prompt_tokens":1}}"#
        )
        .is_empty());
        assert!(texts(Dialect::OpenAi, b"", b"{garbage").is_empty());
    }

    #[test]
    fn escapes_are_decoded_and_plain_strings_borrowed() {
        let ev = |content: &str| format!(r#"{{"choices":[{{"delta":{{"content":{content}}}}}]}}"#);
        for (json, text) in [
            (r#""a\nb""#, "a\nb"),
            (r#""say \"hi\" \\ \/""#, "say \"hi\" \\ /"),
            (r#""\t\r\b\f""#, "\t\r\u{8}\u{c}"),
            (r#""caf\u00e9 \ud83d\ude80!""#, "café 🚀!"),
            (r#""lone \ud800 x""#, "lone \u{FFFD} x"),
            (r#""lone \udc00""#, "lone \u{FFFD}"),
            (r#""世界 plain""#, "世界 plain"),
        ] {
            assert_eq!(texts(Dialect::OpenAi, b"", ev(json).as_bytes()), [text], "{json}");
        }
        // Not a string: no text.
        assert!(texts(Dialect::OpenAi, b"", ev("12").as_bytes()).is_empty());
        assert!(texts(Dialect::OpenAi, b"", ev("null").as_bytes()).is_empty());
    }

    /// Differential check of the unescaper against serde_json on strings
    /// built from every kind of escape, plain text and multi-byte characters.
    #[test]
    fn unescaping_agrees_with_serde_json() {
        let parts = [
            "a",
            " ",
            "é",
            "世",
            "🚀",
            "\\n",
            "\\t",
            "\\r",
            "\\b",
            "\\f",
            "\\/",
            "\\\\",
            "\\\"",
            "\\u0041",
            "\\u00e9",
            "\\u4e16",
            "\\ud83d\\ude80",
            "\\u0000",
            "\\u001f",
            "\\uFFFF",
        ];
        let mut next = crate::testing::xorshift(0x2545_f491_4f6c_dd1du64);
        let mut scratch = String::new();
        for _ in 0..20_000 {
            let n = (next() % 12) as usize;
            let body: String = (0..n)
                .map(|_| parts[(next() % parts.len() as u64) as usize])
                .collect();
            let raw = format!("\"{body}\"");
            let want: String = serde_json::from_str(&raw).unwrap();
            assert_eq!(json_str(&raw, &mut scratch), Some(want.as_str()), "{raw}");
        }
    }

    #[test]
    fn every_choice_and_tool_call_is_read() {
        let d = br#"{"choices":[{"delta":{"content":"a"}},{"delta":{"content":"b"}},{"delta":{"tool_calls":[{"function":{"arguments":"x"}},{"function":{"arguments":"y"}}]}}]}"#;
        assert_eq!(texts(Dialect::OpenAi, b"", d), ["a", "b", "x", "y"]);
        assert!(texts(Dialect::OpenAi, b"", br#"{"choices":{"delta":1}}"#).is_empty());
    }

    #[test]
    fn anthropic_deltas() {
        let t = br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#;
        assert_eq!(texts(Dialect::Anthropic, b"content_block_delta", t), ["Hi"]);
        let j = br#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"x\":"}}"#;
        assert_eq!(texts(Dialect::Anthropic, b"content_block_delta", j), ["{\"x\":"]);
        assert!(texts(Dialect::Anthropic, b"message_delta", t).is_empty());
    }

    #[test]
    fn responses_deltas() {
        let d = br#"{"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"caf\u00e9 ","logprobs":[]}"#;
        let name = b"response.output_text.delta";
        assert_eq!(texts(Dialect::OpenAiResponses, name, d), ["café "]);
        let plain = br#"{"type":"response.output_text.delta","delta":"Hi"}"#;
        assert_eq!(texts(Dialect::OpenAiResponses, name, plain), ["Hi"]);
        assert!(texts(Dialect::OpenAiResponses, b"response.output_text.done", plain).is_empty());
        assert!(texts(Dialect::OpenAiResponses, name, br#"{"delta":3}"#).is_empty());
        assert!(texts(Dialect::OpenAiResponses, name, b"{bad").is_empty());
    }
}
