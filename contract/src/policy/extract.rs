//! Reads what the gateway needs from a request body, and nothing else.
//!
//! One streaming pass of `serde_json` over the body with hand-written visitors:
//! fields the gateway does not read are skipped without being built
//! ([`serde::de::IgnoredAny`]), and prompt strings without escapes are borrowed from the
//! body rather than copied.
//!
//! Invariants:
//! - Never panics on any input; the body must be one JSON object and nothing
//!   after it (trailing garbage is [`ExtractError::NotJson`]).
//! - A field the gateway reads may appear once per object: a duplicate is
//!   [`ExtractError::BadField`], because parsers disagree on which copy wins
//!   and the policy must see the copy the provider will use.
//! - Every key the gateway reads or writes at the top level (see
//!   [`TopKeys`]) may appear once, whatever dialect reads it, and is
//!   matched after JSON unescaping (`"stream\u005foptions"` is
//!   `stream_options`): the body rewrites act on what a provider's parser
//!   will see.
//! - Nesting deeper than [`MAX_DEPTH`] anywhere, pass-through fields
//!   included, is [`ExtractError::TooDeep`]; a `model` longer than
//!   [`MAX_MODEL_LEN`] bytes is [`ExtractError::ModelTooLong`].
//! - Every prompt text the caller controls is collected, in body order (see
//!   [`TextKind`]). A content block's `text`, `content` and `input` are
//!   collected whatever its `type` says: an unknown block type that carries
//!   text is still text the policy must see. [`crate::policy::pii`]'s body
//!   rewrite walks exactly the same fields.

mod gemini;
mod key;
mod visit;

pub use gemini::extract_gemini;
pub(crate) use gemini::walk as walk_gemini;

use crate::dialect::Dialect;
use key::Key;
use serde::de::DeserializeSeed;
use std::borrow::Cow;
use std::fmt;
use visit::{Cx, TopSeed};

/// Deepest nesting of arrays and objects accepted anywhere in a body.
pub const MAX_DEPTH: usize = 128;
/// Longest `model` accepted, in bytes.
pub const MAX_MODEL_LEN: usize = 256;

/// The top-level keys a body has among those the gateway reads or writes
/// (`model`, `stream`, `stream_options`, `max_tokens`,
/// `max_completion_tokens`, `max_output_tokens`, `messages`, `n`, `tools`,
/// `functions`, `system`, `input`, `instructions`), as decoded: an escaped
/// key counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TopKeys(u32);

impl TopKeys {
    /// Whether the body has top-level key `name`; always false for a key
    /// the gateway neither reads nor writes.
    pub fn contains(self, name: &str) -> bool {
        let k = Key::of(name);
        k != Key::Other && self.0 & (1u32 << (k as u32)) != 0
    }
}

/// Where in the request a prompt text came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TextKind {
    /// Anthropic top-level `system` (string or text blocks); Responses
    /// `instructions`.
    System,
    /// A message's `content` string, or a content block's `text`; a
    /// Responses `input` string.
    Message,
    /// An OpenAI message's `name`.
    Name,
    /// An OpenAI assistant message's `tool_calls[].function.arguments` (or
    /// legacy `function_call.arguments`): JSON text, as sent.
    ToolArguments,
    /// A tool's `description` (`tools[].function.description`, legacy
    /// `functions[].description`, Anthropic `tools[].description`).
    ToolDescription,
    /// Text inside a content block's `content` (Anthropic `tool_result`);
    /// a Responses `function_call_output` item's `output`.
    ToolResult,
    /// A content block's `input` (Anthropic `tool_use`), re-serialised as
    /// compact JSON text in body key order.
    ToolInput,
}

/// One prompt text, borrowed from the body when it had no JSON escapes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextRef<'a> {
    /// Where it came from.
    pub kind: TextKind,
    /// The decoded text.
    pub text: Cow<'a, str>,
}

/// What the gateway reads from a request body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestView<'a> {
    /// The dialect the body was read as.
    pub api: Dialect,
    /// `model`, never empty.
    pub model: String,
    /// `stream` (absent or null: false).
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`; always false for Anthropic.
    pub include_usage: bool,
    /// `max_tokens`; for OpenAI the larger of `max_tokens` and
    /// `max_completion_tokens` when both are given, so a cap cannot be dodged
    /// by setting the one the gateway does not look at.
    pub max_tokens: Option<u64>,
    /// OpenAI `n`, the number of choices asked for.
    pub n: Option<u64>,
    /// The top-level keys the gateway reads or writes that the body has.
    pub keys: TopKeys,
    /// Every prompt text the caller controls, in body order.
    pub texts: Vec<TextRef<'a>>,
    /// Embeddings: prompt tokens given as token ids (not in `texts`).
    pub token_ids: u64,
    /// Media parts: images, audio, files and documents (OpenAI's
    /// `image_url`, `input_audio`, `file`, `file_data`; Anthropic's
    /// `source`; Gemini's `inlineData`, `fileData`). Not counted as text:
    /// the credit reservation prices them conservatively.
    pub media: u32,
}

/// Why a body could not be read. Small and `Copy`: the caller turns it into a
/// 400 in the caller's API shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExtractError {
    /// Not valid JSON (or trailing bytes after it).
    NotJson,
    /// Valid JSON, but not an object.
    NotObject,
    /// `model` is absent, null or empty.
    MissingModel,
    /// `messages` is absent or null.
    MissingMessages,
    /// Embeddings, Responses: `input` is absent.
    MissingInput,
    /// Gemini: none of `contents`, `content`, `requests`,
    /// `generateContentRequest`.
    MissingContents,
    /// A field the gateway reads has the wrong type or appears twice.
    BadField(&'static str),
    /// Arrays and objects nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// `model` longer than [`MAX_MODEL_LEN`] bytes.
    ModelTooLong,
}

impl ExtractError {
    /// A short label, stable for metrics.
    pub fn label(self) -> &'static str {
        match self {
            ExtractError::NotJson => "not_json",
            ExtractError::NotObject => "not_object",
            ExtractError::MissingModel => "missing_model",
            ExtractError::MissingMessages => "missing_messages",
            ExtractError::MissingInput => "missing_input",
            ExtractError::MissingContents => "missing_contents",
            ExtractError::BadField(_) => "bad_field",
            ExtractError::TooDeep => "too_deep",
            ExtractError::ModelTooLong => "model_too_long",
        }
    }
}

impl fmt::Display for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtractError::NotJson => f.write_str("request body is not valid JSON"),
            ExtractError::NotObject => f.write_str("request body is not a JSON object"),
            ExtractError::MissingModel => f.write_str("`model` is required"),
            ExtractError::MissingMessages => f.write_str("`messages` is required"),
            ExtractError::MissingInput => f.write_str("`input` is required"),
            ExtractError::MissingContents => f.write_str("`contents` is required"),
            ExtractError::BadField(name) => write!(f, "`{name}` has the wrong type or is repeated"),
            ExtractError::TooDeep => write!(f, "the request body nests deeper than {MAX_DEPTH} levels"),
            ExtractError::ModelTooLong => write!(f, "`model` is longer than {MAX_MODEL_LEN} bytes"),
        }
    }
}

impl std::error::Error for ExtractError {}

/// Reads `body` as a request of dialect `api`.
/// Gemini's model is in the path: see [`extract_gemini`], which this
/// calls with an empty model for the caller to fill in.
pub fn extract(api: Dialect, body: &[u8]) -> Result<RequestView<'_>, ExtractError> {
    if api == Dialect::Gemini {
        return extract_gemini(body, "");
    }
    if too_deep(body) {
        return Err(ExtractError::TooDeep);
    }
    let mut cx = Cx {
        api,
        texts: Vec::new(),
        token_ids: 0,
        media: 0,
        err: None,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = TopSeed { cx: &mut cx }
        .deserialize(&mut de)
        .and_then(|top| de.end().map(|()| top));
    let top = match parsed {
        Ok(top) => top,
        Err(e) => return Err(classify(&e, cx.err, body)),
    };
    let model = match top.model {
        Some(m) if m.len() > MAX_MODEL_LEN => return Err(ExtractError::ModelTooLong),
        Some(m) if !m.is_empty() => m,
        _ => return Err(ExtractError::MissingModel),
    };
    if matches!(api, Dialect::OpenAiEmbeddings | Dialect::OpenAiResponses) {
        if !top.has_input {
            return Err(ExtractError::MissingInput);
        }
    } else if !top.has_messages {
        return Err(ExtractError::MissingMessages);
    }
    let max_tokens = match (top.max_tokens, top.max_completion_tokens) {
        // Responses: `max_output_tokens` is the one output limit.
        _ if api == Dialect::OpenAiResponses => top.max_output_tokens,
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    Ok(RequestView {
        api,
        model,
        stream: top.stream,
        include_usage: top.include_usage,
        max_tokens,
        n: top.n,
        keys: TopKeys(top.seen.0),
        texts: cx.texts,
        token_ids: cx.token_ids,
        media: cx.media,
    })
}

/// Whether arrays and objects nest deeper than [`MAX_DEPTH`] anywhere in
/// `body`. Brackets inside strings do not count; string contents are
/// skipped with `memchr`, so a prompt-heavy body costs little. Run before
/// parsing, on any bytes: invalid JSON is the parser's to refuse.
fn too_deep(body: &[u8]) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                // Skip to the closing quote, stepping over escapes.
                i += 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', &body[i.min(body.len())..]) {
                        None => return false,
                        Some(j) if body[i + j] == b'"' => {
                            i += j;
                            break;
                        }
                        Some(j) => i += j + 2,
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    false
}

/// Syntax errors are `NotJson` whatever a visitor noted; data errors carry the
/// field a visitor noted, or mean the top level was not an object.
fn classify(e: &serde_json::Error, noted: Option<ExtractError>, body: &[u8]) -> ExtractError {
    if !e.is_data() {
        return ExtractError::NotJson;
    }
    if let Some(noted) = noted {
        return noted;
    }
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => ExtractError::NotJson,
        _ => ExtractError::NotObject,
    }
}

#[cfg(test)]
mod tests;
