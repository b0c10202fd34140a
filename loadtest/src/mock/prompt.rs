//! Reading a completion request's JSON body: only the fields the mock acts
//! on, with the message texts summed as they are parsed (never collected).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::respond::ApiError;

/// What a completion request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Ask {
    pub(super) model: String,
    pub(super) stream: bool,
    /// OpenAI `stream_options.include_usage`.
    pub(super) include_usage: bool,
    /// The smallest output cap the body gives.
    pub(super) max_tokens: Option<u64>,
    /// Bytes of text in messages (and Anthropic's `system`) / 4, at least 1.
    pub(super) prompt_tokens: u64,
}

#[derive(Deserialize)]
struct OpenAiBody<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    messages: Option<TextLen>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct AnthropicBody<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    messages: Option<TextLen>,
    system: Option<TextLen>,
    stream: Option<bool>,
    max_tokens: Option<u64>,
}

/// Parses a `/v1/chat/completions` body.
pub(super) fn openai(body: &[u8]) -> Result<Ask, ApiError> {
    let b: OpenAiBody<'_> = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(
            format!("We could not parse the JSON body of your request. (HINT: {e})"),
            None,
        )
    })?;
    let model = b
        .model
        .ok_or_else(|| ApiError::invalid("you must provide a model parameter", None))?;
    let messages = b.messages.ok_or_else(|| ApiError {
        code: Some("missing_required_parameter"),
        ..ApiError::invalid("Missing required parameter: 'messages'.", Some("messages"))
    })?;
    let max_tokens = match (b.max_tokens, b.max_completion_tokens) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if max_tokens == Some(0) {
        return Err(ApiError::invalid(
            "max_tokens must be at least 1",
            Some("max_tokens"),
        ));
    }
    Ok(Ask {
        model: model.into_owned(),
        stream: b.stream.unwrap_or(false),
        include_usage: b.stream_options.and_then(|o| o.include_usage).unwrap_or(false),
        max_tokens,
        prompt_tokens: tokens(messages.0),
    })
}

/// Parses a `/v1/messages` body.
pub(super) fn anthropic(body: &[u8]) -> Result<Ask, ApiError> {
    let b: AnthropicBody<'_> = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}"), None))?;
    let model = b
        .model
        .ok_or_else(|| ApiError::invalid("model: Field required", None))?;
    let messages = b
        .messages
        .ok_or_else(|| ApiError::invalid("messages: Field required", None))?;
    let max_tokens = b
        .max_tokens
        .ok_or_else(|| ApiError::invalid("max_tokens: Field required", None))?;
    if max_tokens == 0 {
        return Err(ApiError::invalid(
            "max_tokens: Input should be greater than or equal to 1",
            None,
        ));
    }
    Ok(Ask {
        model: model.into_owned(),
        stream: b.stream.unwrap_or(false),
        include_usage: false,
        max_tokens: Some(max_tokens),
        prompt_tokens: tokens(messages.0 + b.system.map_or(0, |s| s.0)),
    })
}

/// Parses a `/v1/responses` body: `input` (a string or items) and
/// `instructions` are the prompt; `max_output_tokens` the cap.
pub(super) fn responses(body: &[u8]) -> Result<Ask, ApiError> {
    /// Bytes of the texts of input items, wherever they are.
    fn text_len(v: &serde_json::Value) -> usize {
        match v {
            serde_json::Value::String(s) => s.len(),
            serde_json::Value::Array(items) => items.iter().map(text_len).sum(),
            serde_json::Value::Object(m) => ["content", "text", "output", "arguments"]
                .iter()
                .filter_map(|k| m.get(*k))
                .map(text_len)
                .sum(),
            _ => 0,
        }
    }
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}"), None))?;
    let model = v["model"]
        .as_str()
        .ok_or_else(|| ApiError::invalid("Missing required parameter: 'model'.", Some("model")))?;
    let input = match &v["input"] {
        i @ (serde_json::Value::String(_) | serde_json::Value::Array(_)) => i,
        _ => {
            return Err(ApiError::invalid(
                "Missing required parameter: 'input'.",
                Some("input"),
            ))
        }
    };
    let max_tokens = match v.get("max_output_tokens") {
        None | Some(serde_json::Value::Null) => None,
        Some(m) => match m.as_u64() {
            Some(m) if m >= 16 => Some(m),
            _ => {
                return Err(ApiError::invalid(
                    "Invalid 'max_output_tokens': integer below minimum value 16.",
                    Some("max_output_tokens"),
                ))
            }
        },
    };
    let instructions = v["instructions"].as_str().map_or(0, str::len);
    Ok(Ask {
        model: model.to_owned(),
        stream: v["stream"].as_bool().unwrap_or(false),
        include_usage: false,
        max_tokens,
        prompt_tokens: tokens(text_len(input) + instructions),
    })
}

/// What an embeddings request asks for.
pub(super) struct EmbeddingsAsk {
    pub(super) model: String,
    /// One per input.
    pub(super) inputs: usize,
    /// Prompt tokens, billed the mock's way (bytes / 4, or the ids given).
    pub(super) prompt_tokens: u64,
    /// `encoding_format: "base64"` (the openai SDK's default).
    pub(super) base64: bool,
}

/// Parses a `/v1/embeddings` body.
pub(super) fn embeddings(body: &[u8]) -> Result<EmbeddingsAsk, ApiError> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}"), None))?;
    let model = v["model"]
        .as_str()
        .ok_or_else(|| ApiError::invalid("you must provide a model parameter", Some("model")))?;
    let (inputs, prompt_tokens) = match &v["input"] {
        serde_json::Value::String(s) => (1, tokens(s.len())),
        serde_json::Value::Array(items) if !items.is_empty() => {
            let mut n = 0;
            let mut all_ids = true;
            for item in items {
                match item {
                    serde_json::Value::String(s) => {
                        n += tokens(s.len());
                        all_ids = false;
                    }
                    serde_json::Value::Number(_) => n += 1,
                    serde_json::Value::Array(ids) => n += ids.len() as u64,
                    _ => return Err(ApiError::invalid("invalid input", Some("input"))),
                }
            }
            let inputs = if all_ids && items.iter().all(|i| i.is_number()) {
                1
            } else {
                items.len()
            };
            (inputs, n)
        }
        _ => return Err(ApiError::invalid("'input' is a required property", Some("input"))),
    };
    let base64 = match v.get("encoding_format") {
        None => false,
        Some(serde_json::Value::String(f)) if f == "float" => false,
        Some(serde_json::Value::String(f)) if f == "base64" => true,
        Some(_) => {
            return Err(ApiError::invalid(
                "encoding_format: float or base64",
                Some("encoding_format"),
            ))
        }
    };
    Ok(EmbeddingsAsk {
        model: model.to_owned(),
        inputs,
        prompt_tokens,
        base64,
    })
}

/// Parses a `/v1/messages/count_tokens` body (a messages body without
/// `max_tokens`) and counts its prompt tokens the way the mock bills them.
pub(super) fn anthropic_count(body: &[u8]) -> Result<u64, ApiError> {
    let b: AnthropicBody<'_> = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}"), None))?;
    if b.model.is_none() {
        return Err(ApiError::invalid("model: Field required", None));
    }
    let messages = b
        .messages
        .ok_or_else(|| ApiError::invalid("messages: Field required", None))?;
    Ok(tokens(messages.0 + b.system.map_or(0, |s| s.0)))
}

pub(super) fn tokens(text_bytes: usize) -> u64 {
    (text_bytes as u64 / 4).max(1)
}

/// The bytes of text in a JSON value: a string counts whole; in arrays every
/// element counts; in objects only the `text` and `content` members count, so
/// message lists, content-part arrays and nested tool results all sum their
/// texts and nothing else (roles, types, ids).
struct TextLen(usize);

impl<'de> Deserialize<'de> for TextLen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextLenVisitor)
    }
}

struct TextLenVisitor;

impl<'de> Visitor<'de> for TextLenVisitor {
    type Value = TextLen;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<TextLen, E> {
        Ok(TextLen(v.len()))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<TextLen, E> {
        Ok(TextLen(0))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<TextLen, E> {
        Ok(TextLen(0))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<TextLen, E> {
        Ok(TextLen(0))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<TextLen, E> {
        Ok(TextLen(0))
    }

    fn visit_unit<E: de::Error>(self) -> Result<TextLen, E> {
        Ok(TextLen(0))
    }

    fn visit_none<E: de::Error>(self) -> Result<TextLen, E> {
        Ok(TextLen(0))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TextLen, A::Error> {
        let mut n = 0;
        while let Some(TextLen(m)) = seq.next_element()? {
            n += m;
        }
        Ok(TextLen(n))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TextLen, A::Error> {
        let mut n = 0;
        while let Some(key) = map.next_key::<Key>()? {
            if key.0 {
                n += map.next_value::<TextLen>()?.0;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(TextLen(n))
    }
}

/// An object key; `true` for the members whose text counts.
struct Key(bool);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(matches!(v, "text" | "content")))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}
