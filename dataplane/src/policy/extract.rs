//! Reads what the gateway needs from a request body, and nothing else.
//!
//! One streaming pass of `serde_json` over the body with hand-written visitors:
//! fields the gateway does not read are skipped without being built
//! ([`IgnoredAny`]), and prompt strings without escapes are borrowed from the
//! body rather than copied.
//!
//! Invariants:
//! - Never panics on any input; the body must be one JSON object and nothing
//!   after it (trailing garbage is [`ExtractError::NotJson`]).
//! - A field the gateway reads may appear once per object: a duplicate is
//!   [`ExtractError::BadField`], because parsers disagree on which copy wins
//!   and the policy must see the copy the provider will use.
//! - Every prompt text the caller controls is collected, in body order (see
//!   [`TextKind`]). A content block's `text`, `content` and `input` are
//!   collected whatever its `type` says: an unknown block type that carries
//!   text is still text the policy must see. [`crate::policy::pii`]'s body
//!   rewrite walks exactly the same fields.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// The API dialect of a request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Api {
    /// OpenAI Chat Completions (`POST /v1/chat/completions`).
    OpenAi,
    /// Anthropic Messages (`POST /v1/messages`).
    Anthropic,
}

/// Where in the request a prompt text came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TextKind {
    /// Anthropic top-level `system` (string or text blocks).
    System,
    /// A message's `content` string, or a content block's `text`.
    Message,
    /// An OpenAI message's `name`.
    Name,
    /// An OpenAI assistant message's `tool_calls[].function.arguments` (or
    /// legacy `function_call.arguments`): JSON text, as sent.
    ToolArguments,
    /// A tool's `description` (`tools[].function.description`, legacy
    /// `functions[].description`, Anthropic `tools[].description`).
    ToolDescription,
    /// Text inside a content block's `content` (Anthropic `tool_result`).
    ToolResult,
    /// A content block's `input` (Anthropic `tool_use`), re-serialised as
    /// compact JSON text.
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
    pub api: Api,
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
    /// Every prompt text the caller controls, in body order.
    pub texts: Vec<TextRef<'a>>,
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
    /// A field the gateway reads has the wrong type or appears twice.
    BadField(&'static str),
}

impl ExtractError {
    /// A short label, stable for metrics.
    pub fn label(self) -> &'static str {
        match self {
            ExtractError::NotJson => "not_json",
            ExtractError::NotObject => "not_object",
            ExtractError::MissingModel => "missing_model",
            ExtractError::MissingMessages => "missing_messages",
            ExtractError::BadField(_) => "bad_field",
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
            ExtractError::BadField(name) => write!(f, "`{name}` has the wrong type or is repeated"),
        }
    }
}

impl std::error::Error for ExtractError {}

/// Reads `body` as a request of dialect `api`.
pub fn extract(api: Api, body: &[u8]) -> Result<RequestView<'_>, ExtractError> {
    let mut cx = Cx { api, texts: Vec::new(), err: None };
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = TopSeed { cx: &mut cx }.deserialize(&mut de).and_then(|top| de.end().map(|()| top));
    let top = match parsed {
        Ok(top) => top,
        Err(e) => return Err(classify(&e, cx.err, body)),
    };
    let model = match top.model {
        Some(m) if !m.is_empty() => m,
        _ => return Err(ExtractError::MissingModel),
    };
    if !top.has_messages {
        return Err(ExtractError::MissingMessages);
    }
    let max_tokens = match (top.max_tokens, top.max_completion_tokens) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    Ok(RequestView {
        api,
        model,
        stream: top.stream,
        include_usage: top.include_usage,
        max_tokens,
        texts: cx.texts,
    })
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

/// State shared by the visitors of one pass.
struct Cx<'de> {
    api: Api,
    texts: Vec<TextRef<'de>>,
    /// The innermost field whose value failed, noted on the way out.
    err: Option<ExtractError>,
}

impl<'de> Cx<'de> {
    fn push(&mut self, kind: TextKind, text: Cow<'de, str>) {
        self.texts.push(TextRef { kind, text });
    }
}

/// Every object key the gateway reads, at any level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Model,
    Stream,
    StreamOptions,
    IncludeUsage,
    MaxTokens,
    MaxCompletionTokens,
    Messages,
    Tools,
    Functions,
    System,
    Content,
    Name,
    ToolCalls,
    FunctionCall,
    Function,
    Arguments,
    Description,
    Text,
    Input,
    Other,
}

impl Key {
    fn of(s: &str) -> Key {
        match s {
            "model" => Key::Model,
            "stream" => Key::Stream,
            "stream_options" => Key::StreamOptions,
            "include_usage" => Key::IncludeUsage,
            "max_tokens" => Key::MaxTokens,
            "max_completion_tokens" => Key::MaxCompletionTokens,
            "messages" => Key::Messages,
            "tools" => Key::Tools,
            "functions" => Key::Functions,
            "system" => Key::System,
            "content" => Key::Content,
            "name" => Key::Name,
            "tool_calls" => Key::ToolCalls,
            "function_call" => Key::FunctionCall,
            "function" => Key::Function,
            "arguments" => Key::Arguments,
            "description" => Key::Description,
            "text" => Key::Text,
            "input" => Key::Input,
            _ => Key::Other,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Key::Model => "model",
            Key::Stream => "stream",
            Key::StreamOptions => "stream_options",
            Key::IncludeUsage => "include_usage",
            Key::MaxTokens => "max_tokens",
            Key::MaxCompletionTokens => "max_completion_tokens",
            Key::Messages => "messages",
            Key::Tools => "tools",
            Key::Functions => "functions",
            Key::System => "system",
            Key::Content => "content",
            Key::Name => "name",
            Key::ToolCalls => "tool_calls",
            Key::FunctionCall => "function_call",
            Key::Function => "function",
            Key::Arguments => "arguments",
            Key::Description => "description",
            Key::Text => "text",
            Key::Input => "input",
            Key::Other => "other",
        }
    }
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key::of(v))
            }
        }
        d.deserialize_identifier(V)
    }
}

/// Tracks which read keys an object has shown, to refuse duplicates.
#[derive(Default)]
struct Seen(u32);

impl Seen {
    /// Notes `key`; an error (noted in `cx`) when it was already there.
    fn first<E: de::Error>(&mut self, cx: &mut Cx<'_>, key: Key) -> Result<(), E> {
        let bit = 1u32 << (key as u32);
        if self.0 & bit != 0 {
            return Err(fail(cx, ExtractError::BadField(key.name())));
        }
        self.0 |= bit;
        Ok(())
    }
}

fn fail<E: de::Error>(cx: &mut Cx<'_>, e: ExtractError) -> E {
    cx.err.get_or_insert(e);
    E::custom(e)
}

/// Notes `key` as the culprit if reading its value failed and nothing deeper
/// was noted already.
fn noted<T, E>(cx: &mut Cx<'_>, key: Key, r: Result<T, E>) -> Result<T, E> {
    if r.is_err() {
        cx.err.get_or_insert(ExtractError::BadField(key.name()));
    }
    r
}

/// Reads the value of `key` with `seed`, refusing a repeated key and noting
/// the culprit on failure.
macro_rules! read {
    ($map:expr, $cx:expr, $seen:expr, $key:expr, $seed:expr) => {{
        $seen.first($cx, $key)?;
        let r = $map.next_value_seed($seed);
        noted($cx, $key, r)?
    }};
}

/// Reads a plain value (no texts inside) of `key`.
macro_rules! read_plain {
    ($map:expr, $cx:expr, $seen:expr, $key:expr, $ty:ty) => {{
        $seen.first($cx, $key)?;
        let r = $map.next_value::<$ty>();
        noted($cx, $key, r)?
    }};
}

#[derive(Default)]
struct Top {
    model: Option<String>,
    stream: bool,
    include_usage: bool,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    has_messages: bool,
}

struct TopSeed<'c, 'de> {
    cx: &'c mut Cx<'de>,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_, 'de> {
    type Value = Top;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Top, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_, 'de> {
    type Value = Top;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        let cx = self.cx;
        let openai = cx.api == Api::OpenAi;
        let mut top = Top::default();
        let mut seen = Seen::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Model => top.model = read_plain!(map, cx, seen, key, Option<String>),
                Key::Stream => {
                    top.stream = read_plain!(map, cx, seen, key, Option<bool>).unwrap_or(false)
                }
                Key::MaxTokens => top.max_tokens = read_plain!(map, cx, seen, key, Option<u64>),
                Key::MaxCompletionTokens if openai => {
                    top.max_completion_tokens = read_plain!(map, cx, seen, key, Option<u64>)
                }
                Key::StreamOptions if openai => {
                    let o = read_plain!(map, cx, seen, key, Option<StreamOptions>);
                    top.include_usage = o.and_then(|o| o.include_usage).unwrap_or(false);
                }
                Key::Messages => {
                    top.has_messages = read!(map, cx, seen, key, SeqSeed::messages(&mut *cx));
                }
                Key::Tools => {
                    read!(map, cx, seen, key, SeqSeed::tools(&mut *cx));
                }
                Key::Functions if openai => {
                    read!(map, cx, seen, key, SeqSeed::tools(&mut *cx));
                }
                Key::System if !openai => {
                    read!(map, cx, seen, key, ContentSeed { cx: &mut *cx, kind: TextKind::System });
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(top)
    }
}

#[derive(serde::Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// What the elements of an array are.
#[derive(Clone, Copy)]
enum Elem {
    Message,
    Tool,
    ToolCall,
    Block(TextKind),
}

/// An array (or null) of `Elem`s; yields whether it was present.
struct SeqSeed<'c, 'de> {
    cx: &'c mut Cx<'de>,
    elem: Elem,
}

impl<'c, 'de> SeqSeed<'c, 'de> {
    fn messages(cx: &'c mut Cx<'de>) -> Self {
        SeqSeed { cx, elem: Elem::Message }
    }
    fn tools(cx: &'c mut Cx<'de>) -> Self {
        SeqSeed { cx, elem: Elem::Tool }
    }
}

impl<'de> DeserializeSeed<'de> for SeqSeed<'_, 'de> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SeqSeed<'_, 'de> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let cx = self.cx;
        while seq.next_element_seed(ObjSeed { cx: &mut *cx, elem: self.elem })?.is_some() {}
        Ok(true)
    }
}

/// One object of an array (or null, skipped).
struct ObjSeed<'c, 'de> {
    cx: &'c mut Cx<'de>,
    elem: Elem,
}

impl<'de> DeserializeSeed<'de> for ObjSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ObjSeed<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let cx = self.cx;
        let mut seen = Seen::default();
        while let Some(key) = map.next_key::<Key>()? {
            match (self.elem, key) {
                (Elem::Message, Key::Content) => {
                    read!(map, cx, seen, key, ContentSeed { cx: &mut *cx, kind: TextKind::Message })
                }
                (Elem::Message, Key::Name) => {
                    read!(map, cx, seen, key, StrSeed { cx: &mut *cx, kind: TextKind::Name })
                }
                (Elem::Message, Key::ToolCalls) => {
                    read!(map, cx, seen, key, SeqSeed { cx: &mut *cx, elem: Elem::ToolCall });
                }
                (Elem::Message, Key::FunctionCall) | (Elem::ToolCall, Key::Function) => {
                    read!(map, cx, seen, key, ObjSeed { cx: &mut *cx, elem: Elem::ToolCall })
                }
                (Elem::ToolCall, Key::Arguments) => {
                    read!(map, cx, seen, key, StrSeed { cx: &mut *cx, kind: TextKind::ToolArguments })
                }
                (Elem::Tool, Key::Description) => {
                    read!(map, cx, seen, key, StrSeed { cx: &mut *cx, kind: TextKind::ToolDescription })
                }
                (Elem::Tool, Key::Function) => {
                    read!(map, cx, seen, key, ObjSeed { cx: &mut *cx, elem: Elem::Tool })
                }
                (Elem::Block(kind), Key::Text) => {
                    read!(map, cx, seen, key, StrSeed { cx: &mut *cx, kind })
                }
                (Elem::Block(_), Key::Content) => {
                    read!(map, cx, seen, key, ContentSeed { cx: &mut *cx, kind: TextKind::ToolResult })
                }
                (Elem::Block(_), Key::Input) => {
                    seen.first(cx, key)?;
                    let r = map.next_value::<serde_json::Value>();
                    let input = noted(cx, key, r)?;
                    if !input.is_null() {
                        cx.push(TextKind::ToolInput, Cow::Owned(input.to_string()));
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A string (or null) pushed as a text of `kind`.
struct StrSeed<'c, 'de> {
    cx: &'c mut Cx<'de>,
    kind: TextKind,
}

impl<'de> DeserializeSeed<'de> for StrSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrSeed<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        self.cx.push(self.kind, Cow::Borrowed(v));
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.cx.push(self.kind, Cow::Owned(v.to_owned()));
        Ok(())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.cx.push(self.kind, Cow::Owned(v));
        Ok(())
    }
}

/// Message content: a string, an array of blocks, or null.
struct ContentSeed<'c, 'de> {
    cx: &'c mut Cx<'de>,
    kind: TextKind,
}

impl<'de> DeserializeSeed<'de> for ContentSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ContentSeed<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an array of content blocks")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        StrSeed { cx: self.cx, kind: self.kind }.visit_borrowed_str(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        StrSeed { cx: self.cx, kind: self.kind }.visit_str(v)
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        StrSeed { cx: self.cx, kind: self.kind }.visit_string(v)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        SeqSeed { cx: self.cx, elem: Elem::Block(self.kind) }.visit_seq(seq).map(|_| ())
    }
}

#[cfg(test)]
mod tests;
