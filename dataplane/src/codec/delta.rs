//! The completion text carried by one streamed event, for counting tokens
//! while the stream flows.
//!
//! OpenAI: `choices[].delta.content`, `.reasoning_content` / `.reasoning`,
//! and `.tool_calls[].function.arguments`. Anthropic `content_block_delta`:
//! `text_delta.text`, `input_json_delta.partial_json`,
//! `thinking_delta.thinking`. Strings are borrowed from the event unless they
//! contain escapes. Anything else, malformed JSON included, carries no text.

use super::sse::SseEvent;
use super::usage::Dialect;
use serde::Deserialize;
use std::borrow::Cow;

#[derive(Deserialize)]
struct OpenAiChunk<'a> {
    #[serde(borrow, default)]
    choices: Vec<Choice<'a>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow)]
    delta: Option<Delta<'a>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Vec<ToolCall<'a>>,
}

#[derive(Deserialize)]
struct ToolCall<'a> {
    #[serde(borrow)]
    function: Option<Function<'a>>,
}

#[derive(Deserialize)]
struct Function<'a> {
    #[serde(borrow)]
    arguments: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct AnthropicEvent<'a> {
    #[serde(borrow)]
    delta: Option<AnthropicDelta<'a>>,
}

#[derive(Deserialize)]
struct AnthropicDelta<'a> {
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    partial_json: Option<Cow<'a, str>>,
    #[serde(borrow)]
    thinking: Option<Cow<'a, str>>,
}

/// Calls `text` with each piece of completion text in `ev`.
pub fn for_each_text(dialect: Dialect, ev: &SseEvent<'_>, mut text: impl FnMut(&str)) {
    match dialect {
        Dialect::OpenAi => {
            if ev.data.first() != Some(&b'{') {
                return;
            }
            let Ok(chunk) = serde_json::from_slice::<OpenAiChunk<'_>>(ev.data) else {
                return;
            };
            for choice in &chunk.choices {
                let Some(d) = &choice.delta else { continue };
                for piece in [&d.content, &d.reasoning_content, &d.reasoning]
                    .into_iter()
                    .flatten()
                {
                    text(piece);
                }
                for call in &d.tool_calls {
                    if let Some(args) = call.function.as_ref().and_then(|f| f.arguments.as_ref()) {
                        text(args);
                    }
                }
            }
        }
        Dialect::Anthropic => {
            if ev.event != b"content_block_delta" {
                return;
            }
            let Ok(e) = serde_json::from_slice::<AnthropicEvent<'_>>(ev.data) else {
                return;
            };
            if let Some(d) = &e.delta {
                for piece in [&d.text, &d.partial_json, &d.thinking].into_iter().flatten() {
                    text(piece);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(dialect: Dialect, event: &[u8], data: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for_each_text(dialect, &SseEvent { event, data }, |t| out.push(t.to_owned()));
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
    fn anthropic_deltas() {
        let t = br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#;
        assert_eq!(texts(Dialect::Anthropic, b"content_block_delta", t), ["Hi"]);
        let j = br#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"x\":"}}"#;
        assert_eq!(texts(Dialect::Anthropic, b"content_block_delta", j), ["{\"x\":"]);
        assert!(texts(Dialect::Anthropic, b"message_delta", t).is_empty());
    }
}
