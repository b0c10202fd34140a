//! The visitors of the extraction pass: one seed per shape, sharing a
//! [`Cx`] that collects texts and notes the innermost field that failed.

use super::key::Key;
use super::{ExtractError, TextKind, TextRef};
use crate::dialect::Dialect;
use crate::policy::json::Json;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// State shared by the visitors of one pass.
pub(super) struct Cx<'de> {
    pub(super) api: Dialect,
    pub(super) texts: Vec<TextRef<'de>>,
    /// Embeddings: prompt tokens given as token ids rather than text.
    pub(super) token_ids: u64,
    /// Media parts seen (images, audio, files, documents).
    pub(super) media: u32,
    /// The innermost field whose value failed, noted on the way out.
    pub(super) err: Option<ExtractError>,
}

impl<'de> Cx<'de> {
    fn push(&mut self, kind: TextKind, text: Cow<'de, str>) {
        self.texts.push(TextRef { kind, text });
    }
}

/// Tracks which read keys an object has shown, to refuse duplicates.
#[derive(Default)]
pub(super) struct Seen(pub(super) u32);

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
pub(super) struct Top {
    pub(super) model: Option<String>,
    pub(super) stream: bool,
    pub(super) include_usage: bool,
    pub(super) max_tokens: Option<u64>,
    pub(super) max_completion_tokens: Option<u64>,
    pub(super) has_messages: bool,
    /// Embeddings, Responses: `input` was present.
    pub(super) has_input: bool,
    /// Responses: `max_output_tokens`.
    pub(super) max_output_tokens: Option<u64>,
    pub(super) n: Option<u64>,
    /// The top-level keys the gateway reads or writes that the body has.
    pub(super) seen: Seen,
}

pub(super) struct TopSeed<'c, 'de> {
    pub(super) cx: &'c mut Cx<'de>,
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
        let openai = cx.api.is_openai();
        let embeddings = cx.api == Dialect::OpenAiEmbeddings;
        let responses = cx.api == Dialect::OpenAiResponses;
        let mut top = Top::default();
        let mut seen = Seen::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::N if openai => top.n = read_plain!(map, cx, seen, key, Option<u64>),
                Key::Model => top.model = read_plain!(map, cx, seen, key, Option<String>),
                Key::Stream => top.stream = read_plain!(map, cx, seen, key, Option<bool>).unwrap_or(false),
                Key::MaxTokens => top.max_tokens = read_plain!(map, cx, seen, key, Option<u64>),
                Key::MaxCompletionTokens if openai => {
                    top.max_completion_tokens = read_plain!(map, cx, seen, key, Option<u64>)
                }
                Key::StreamOptions if openai => {
                    let o = read_plain!(map, cx, seen, key, Option<StreamOptions>);
                    top.include_usage = o.and_then(|o| o.include_usage).unwrap_or(false);
                }
                Key::Messages if !embeddings && !responses => {
                    top.has_messages = read!(map, cx, seen, key, SeqSeed::messages(&mut *cx));
                }
                Key::Input if embeddings => {
                    read!(
                        map,
                        cx,
                        seen,
                        key,
                        InputSeed {
                            cx: &mut *cx,
                            depth: 0
                        }
                    );
                    top.has_input = true;
                }
                Key::Input if responses => {
                    read!(map, cx, seen, key, ResponsesInputSeed { cx: &mut *cx });
                    top.has_input = true;
                }
                Key::Instructions if responses => {
                    read!(
                        map,
                        cx,
                        seen,
                        key,
                        StrSeed {
                            cx: &mut *cx,
                            kind: TextKind::System
                        }
                    );
                }
                Key::MaxOutputTokens if responses => {
                    top.max_output_tokens = read_plain!(map, cx, seen, key, Option<u64>)
                }
                Key::Tools => {
                    read!(map, cx, seen, key, SeqSeed::tools(&mut *cx));
                }
                // Legacy chat `functions`: chat's alone, as the redaction
                // walk reads it.
                Key::Functions if cx.api == Dialect::OpenAi => {
                    read!(map, cx, seen, key, SeqSeed::tools(&mut *cx));
                }
                Key::System if !openai => {
                    read!(
                        map,
                        cx,
                        seen,
                        key,
                        ContentSeed {
                            cx: &mut *cx,
                            kind: TextKind::System
                        }
                    );
                }
                Key::N
                | Key::StreamOptions
                | Key::MaxCompletionTokens
                | Key::MaxOutputTokens
                | Key::Functions
                | Key::System => {
                    // A key the gateway reads or writes in some dialect: a
                    // second copy is refused here too, since a rewrite (or a
                    // provider of another dialect) would act on it.
                    seen.first(cx, key)?;
                    map.next_value::<IgnoredAny>()?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        top.seen = seen;
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
    /// A Responses `input` item: a message (`content`), a
    /// `function_call` (`arguments`) or a `function_call_output` (`output`).
    Item,
}

/// An array (or null) of `Elem`s; yields whether it was present.
struct SeqSeed<'c, 'de> {
    cx: &'c mut Cx<'de>,
    elem: Elem,
}

impl<'c, 'de> SeqSeed<'c, 'de> {
    fn messages(cx: &'c mut Cx<'de>) -> Self {
        SeqSeed {
            cx,
            elem: Elem::Message,
        }
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
        while seq
            .next_element_seed(ObjSeed {
                cx: &mut *cx,
                elem: self.elem,
            })?
            .is_some()
        {}
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
                    read!(
                        map,
                        cx,
                        seen,
                        key,
                        ContentSeed {
                            cx: &mut *cx,
                            kind: TextKind::Message
                        }
                    )
                }
                (Elem::Message, Key::Name) => {
                    read!(
                        map,
                        cx,
                        seen,
                        key,
                        StrSeed {
                            cx: &mut *cx,
                            kind: TextKind::Name
                        }
                    )
                }
                (Elem::Message, Key::ToolCalls) => {
                    read!(
                        map,
                        cx,
                        seen,
                        key,
                        SeqSeed {
                            cx: &mut *cx,
                            elem: Elem::ToolCall
                        }
                    );
                }
                (Elem::Message, Key::FunctionCall) | (Elem::ToolCall, Key::Function) => {
                    read!(
                        map,
                        cx,
                        seen,
                        key,
                        ObjSeed {
                            cx: &mut *cx,
                            elem: Elem::ToolCall
                        }
                    )
                }
                (Elem::ToolCall, Key::Arguments) => {
                    read!(
                        map,
                        cx,
                        seen,
                        key,
                        StrSeed {
                            cx: &mut *cx,
                            kind: TextKind::ToolArguments
                        }
                    )
                }
                (Elem::Tool, Key::Description) => {
                    read!(
                        map,
                        cx,
                        seen,
                        key,
                        StrSeed {
                            cx: &mut *cx,
                            kind: TextKind::ToolDescription
                        }
                    )
                }
                (Elem::Tool, Key::Function) => {
                    read!(
                        map,
                        cx,
                        seen,
                        key,
                        ObjSeed {
                            cx: &mut *cx,
                            elem: Elem::Tool
                        }
                    )
                }
                (Elem::Item, Key::Content) => {
                    read!(
                        map,
                        cx,
                        seen,
                        key,
                        ContentSeed {
                            cx: &mut *cx,
                            kind: TextKind::Message
                        }
                    )
                }
                (Elem::Item, Key::Arguments) => {
                    read!(
                        map,
                        cx,
                        seen,
                        key,
                        StrSeed {
                            cx: &mut *cx,
                            kind: TextKind::ToolArguments
                        }
                    )
                }
                (Elem::Item, Key::Output) => {
                    read!(
                        map,
                        cx,
                        seen,
                        key,
                        ContentSeed {
                            cx: &mut *cx,
                            kind: TextKind::ToolResult
                        }
                    )
                }
                (Elem::Block(kind), Key::Text) => {
                    read!(map, cx, seen, key, StrSeed { cx: &mut *cx, kind })
                }
                (Elem::Block(_), Key::Content) => {
                    read!(
                        map,
                        cx,
                        seen,
                        key,
                        ContentSeed {
                            cx: &mut *cx,
                            kind: TextKind::ToolResult
                        }
                    )
                }
                (Elem::Block(_), Key::Media) => {
                    // Counted, not read; several media keys in one part
                    // (`file_id` beside `file_data`) are not duplicates.
                    cx.media = cx.media.saturating_add(1);
                    map.next_value::<IgnoredAny>()?;
                }
                (Elem::Block(_), Key::Input) => {
                    seen.first(cx, key)?;
                    let r = map.next_value::<Json>();
                    let input = noted(cx, key, r)?;
                    if input != Json::Null {
                        let text = serde_json::to_string(&input)
                            .map_err(|_| fail(cx, ExtractError::BadField("input")))?;
                        cx.push(TextKind::ToolInput, Cow::Owned(text));
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
        StrSeed {
            cx: self.cx,
            kind: self.kind,
        }
        .visit_borrowed_str(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        StrSeed {
            cx: self.cx,
            kind: self.kind,
        }
        .visit_str(v)
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        StrSeed {
            cx: self.cx,
            kind: self.kind,
        }
        .visit_string(v)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        SeqSeed {
            cx: self.cx,
            elem: Elem::Block(self.kind),
        }
        .visit_seq(seq)
        .map(|_| ())
    }
}

/// Embeddings `input`: a string, an array of strings, an array of token ids,
/// or an array of arrays of token ids. Strings are prompt texts; ids are
/// counted as the tokens they are.
struct InputSeed<'c, 'de> {
    cx: &'c mut Cx<'de>,
    /// 0 at the top, 1 inside the outer array, 2 inside an inner id array.
    depth: u8,
}

impl<'de> DeserializeSeed<'de> for InputSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for InputSeed<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, strings, or token ids")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        self.text(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.text(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.text(Cow::Owned(v))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        if self.depth == 0 {
            return Err(E::custom("input: a token id alone"));
        }
        self.cx.token_ids += 1;
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth >= 2 {
            return Err(de::Error::custom("input: arrays nest two deep at most"));
        }
        let cx = self.cx;
        while seq
            .next_element_seed(InputSeed {
                cx: &mut *cx,
                depth: self.depth + 1,
            })?
            .is_some()
        {}
        Ok(())
    }
}

impl<'de> InputSeed<'_, 'de> {
    fn text<E: de::Error>(self, text: Cow<'de, str>) -> Result<(), E> {
        if self.depth > 1 {
            return Err(E::custom("input: a string inside a token array"));
        }
        self.cx.push(TextKind::Message, text);
        Ok(())
    }
}

/// Responses `input`: a string (one user message), or an array of items
/// (see [`Elem::Item`]). Items of no known shape carry no text.
struct ResponsesInputSeed<'c, 'de> {
    cx: &'c mut Cx<'de>,
}

impl<'de> DeserializeSeed<'de> for ResponsesInputSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ResponsesInputSeed<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an array of input items")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        self.cx.push(TextKind::Message, Cow::Borrowed(v));
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.cx.push(TextKind::Message, Cow::Owned(v.to_owned()));
        Ok(())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.cx.push(TextKind::Message, Cow::Owned(v));
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        SeqSeed {
            cx: self.cx,
            elem: Elem::Item,
        }
        .visit_seq(seq)
        .map(|_| ())
    }
}
