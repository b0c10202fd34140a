//! Provider usage and stream completion, read from SSE events or from a
//! non-streamed JSON body.
//!
//! Invariants:
//! - No I/O, never panics, never an error: JSON that is malformed or has an
//!   unexpected shape is ignored (the event simply carries no usage).
//! - Cheap per event: JSON is only deserialized when the data contains the
//!   bytes `"usage"` (one SIMD substring search), and not even then when the
//!   only such key is followed by `null` (OpenAI sends `"usage":null` in
//!   every chunk when `stream_options.include_usage` is set). Deserializing
//!   uses borrowed structs and `IgnoredAny`: no `Value` trees, and no heap
//!   except for a `"type"` string with escapes in it.
//! - Normalisation follows [`Usage`]: `input_tokens` counts every prompt token
//!   once, cached or not.
//!   - OpenAI: `input = prompt_tokens` (already includes cached),
//!     `cached_input = prompt_tokens_details.cached_tokens`,
//!     `output = completion_tokens`,
//!     `reasoning = completion_tokens_details.reasoning_tokens`. A later
//!     non-null `usage` replaces an earlier one.
//!   - Anthropic: `message_start` carries `message.usage`, `message_delta`
//!     carries `usage` (cumulative `output_tokens`, possibly input and cache
//!     fields); each field present replaces the earlier value.
//!     `input = input_tokens + cache_read_input_tokens +
//!     cache_creation_input_tokens` (Anthropic's `input_tokens` excludes
//!     both), `cached_input = cache_read_input_tokens`,
//!     `cache_creation = cache_creation_input_tokens`.
//!   - OpenAI Responses: `usage` (top level of a body; `response.usage` of
//!     the stream's terminal event) with `input_tokens` (cached included),
//!     `output_tokens` (reasoning included),
//!     `input_tokens_details.cached_tokens`,
//!     `output_tokens_details.reasoning_tokens`.
//! - Completion: OpenAI streams complete with `data: [DONE]`, Anthropic
//!   streams with the `message_stop` event, Responses streams with
//!   `response.completed`, `response.failed` or `response.incomplete` (the
//!   latter two noted, see [`UsageScanner::ended`]); a non-streamed body
//!   completes when it parses as a JSON object.

use crate::codec::sse::SseEvent;
use crate::dialect::Dialect;
use crate::record::Usage;
use memchr::memmem::Finder;
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::LazyLock;

/// The key every usage report is under; built once per process.
static USAGE_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"usage\""));

/// Reads usage and completion from one response. See the module docs.
#[derive(Clone, Debug)]
pub struct UsageScanner {
    dialect: Dialect,
    /// OpenAI: the last non-null usage seen.
    openai: Option<Usage>,
    /// Anthropic: the latest value of each usage field.
    anthropic: AnthropicUsage,
    saw_anthropic: bool,
    completed: bool,
    usage_only: bool,
    /// Responses: the stream ended with `response.failed` or
    /// `response.incomplete`.
    ended: Option<&'static str>,
}

impl UsageScanner {
    /// A scanner for one response in `dialect`.
    pub fn new(dialect: Dialect) -> Self {
        UsageScanner {
            dialect,
            openai: None,
            anthropic: AnthropicUsage::default(),
            saw_anthropic: false,
            completed: false,
            usage_only: false,
            ended: None,
        }
    }

    /// The dialect this scanner reads.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Reads one streamed event. Returns true when the event was *inert*:
    /// it neither completed the stream nor could carry usage, so reading it
    /// changed nothing but [`UsageScanner::usage_only_event`].
    pub fn on_event(&mut self, ev: &SseEvent<'_>) -> bool {
        self.usage_only = false;
        match self.dialect {
            Dialect::OpenAi | Dialect::OpenAiEmbeddings => {
                if ev.data.trim_ascii() == b"[DONE]" {
                    self.completed = true;
                } else if has_usage(ev.data) {
                    self.openai_json(ev.data);
                } else {
                    return true;
                }
            }
            Dialect::Anthropic => {
                if ev.event == b"message_stop" || (ev.event.is_empty() && is_message_stop(ev.data)) {
                    self.completed = true;
                } else if has_usage(ev.data) {
                    self.anthropic_json(ev.data);
                } else {
                    return true;
                }
            }
            Dialect::Gemini => {
                // Every event may carry usage (the last the final counts);
                // the stream ends with a candidate's `finishReason`.
                let Some(read) = gemini::read(ev.data) else {
                    return true;
                };
                self.gemini(read);
            }
            Dialect::OpenAiResponses => {
                let end = match ev.event {
                    b"" => responses_end_typed(ev.data),
                    name => responses_end(name),
                };
                let Some(end) = end else {
                    // Only a terminal event carries usage (`response.created`
                    // has `"usage":null`); no other is read.
                    return true;
                };
                self.completed = true;
                self.ended = end;
                if has_usage(ev.data) {
                    self.responses_json(ev.data);
                }
            }
        }
        false
    }

    /// Responses: why a stream ended other than `response.completed`
    /// (`response_failed`, `response_incomplete`); `None` otherwise.
    pub fn ended(&self) -> Option<&'static str> {
        self.ended
    }

    /// Reads an event that repeats an inert one (see
    /// [`UsageScanner::on_event`]) with another JSON string in place of a
    /// text deep in it: the same keys and structure, so it is inert too,
    /// and need not be searched.
    pub fn on_repeat(&mut self) {
        self.usage_only = false;
    }

    /// Reads a non-streamed JSON response body.
    pub fn on_json_body(&mut self, body: &[u8]) {
        self.usage_only = false;
        if body.trim_ascii_start().first() != Some(&b'{') {
            return;
        }
        if self.dialect == Dialect::Gemini {
            let read = gemini::read(body).unwrap_or_default();
            self.gemini(read);
            if read.parsed || serde_json::from_slice::<IgnoredAny>(body).is_ok() {
                self.completed = true;
            }
            return;
        }
        let parsed = has_usage(body)
            && match self.dialect {
                Dialect::OpenAi | Dialect::OpenAiEmbeddings => self.openai_json(body),
                Dialect::Anthropic => self.anthropic_json(body),
                Dialect::OpenAiResponses => self.responses_json(body),
                Dialect::Gemini => false,
            };
        // Without usage (or with usage of an unexpected shape) the body may
        // still be a whole JSON object, and then the response is complete.
        if parsed || serde_json::from_slice::<IgnoredAny>(body).is_ok() {
            self.completed = true;
        }
    }

    /// The usage reported so far, normalised; `None` when none was reported.
    pub fn usage(&self) -> Option<Usage> {
        match self.dialect {
            Dialect::OpenAi | Dialect::OpenAiEmbeddings | Dialect::OpenAiResponses | Dialect::Gemini => {
                self.openai
            }
            Dialect::Anthropic if self.saw_anthropic => Some(self.anthropic.normalise()),
            Dialect::Anthropic => None,
        }
    }

    /// Whether the response completed: OpenAI streams saw `data: [DONE]`,
    /// Anthropic streams saw `message_stop`, a non-streamed body parsed as a
    /// JSON object.
    pub fn completed(&self) -> bool {
        self.completed
    }

    /// Whether the last event fed was an OpenAI usage-only chunk
    /// (`"choices":[]` with a non-null `usage`), which the gateway strips when
    /// the client did not ask for usage.
    pub fn usage_only_event(&self) -> bool {
        self.usage_only
    }

    /// Notes what a Gemini body or event said: its usage replaces the last
    /// (each carries the counts so far).
    fn gemini(&mut self, read: gemini::Read) {
        if let Some(u) = read.usage {
            self.openai = Some(u);
        }
        self.completed |= read.finished;
    }

    /// Parses an OpenAI chunk or body; returns whether it parsed.
    fn openai_json(&mut self, json: &[u8]) -> bool {
        let Ok(chunk) = serde_json::from_slice::<Obj<OpenAiChunk>>(json) else {
            return false;
        };
        let chunk = chunk.0;
        // A usage object with neither count is not OpenAI's (nor useful).
        let usage = chunk
            .usage
            .filter(|u| u.0.prompt_tokens.is_some() || u.0.completion_tokens.is_some());
        if let Some(Obj(u)) = usage {
            self.openai = Some(Usage {
                input_tokens: u.prompt_tokens.unwrap_or(0),
                output_tokens: u.completion_tokens.unwrap_or(0),
                cached_input_tokens: u
                    .prompt_tokens_details
                    .and_then(|d| d.0.cached_tokens)
                    .unwrap_or(0),
                cache_creation_tokens: 0,
                reasoning_tokens: u
                    .completion_tokens_details
                    .and_then(|d| d.0.reasoning_tokens)
                    .unwrap_or(0),
            });
            self.usage_only = chunk.choices.is_some_and(|c| c.0 == 0);
        }
        true
    }

    /// Parses a Responses body (`usage`) or terminal event
    /// (`response.usage`); returns whether it parsed.
    fn responses_json(&mut self, json: &[u8]) -> bool {
        let Ok(Obj(r)) = serde_json::from_slice::<Obj<ResponsesJson>>(json) else {
            return false;
        };
        let usage = r.response.and_then(|Obj(b)| b.usage).or(r.usage);
        if let Some(Obj(u)) = usage.filter(|u| u.0.input_tokens.is_some() || u.0.output_tokens.is_some()) {
            self.openai = Some(Usage {
                input_tokens: u.input_tokens.unwrap_or(0),
                output_tokens: u.output_tokens.unwrap_or(0),
                cached_input_tokens: u
                    .input_tokens_details
                    .and_then(|d| d.0.cached_tokens)
                    .unwrap_or(0),
                cache_creation_tokens: 0,
                reasoning_tokens: u
                    .output_tokens_details
                    .and_then(|d| d.0.reasoning_tokens)
                    .unwrap_or(0),
            });
        }
        true
    }

    /// Parses an Anthropic event or body; returns whether it parsed.
    fn anthropic_json(&mut self, json: &[u8]) -> bool {
        let Ok(ev) = serde_json::from_slice::<Obj<AnthropicJson>>(json) else {
            return false;
        };
        let ev = ev.0;
        for Obj(u) in [ev.message.and_then(|m| m.0.usage), ev.usage]
            .into_iter()
            .flatten()
        {
            if u.any() {
                self.anthropic.merge(u);
                self.saw_anthropic = true;
            }
        }
        true
    }
}

/// Whether `data` may carry a usage report worth deserializing: it contains
/// `"usage"`, and not only as one key whose value is `null`.
fn has_usage(data: &[u8]) -> bool {
    let Some(at) = USAGE_KEY.find(data) else {
        return false;
    };
    let after = data.get(at + 7..).unwrap_or_default();
    let Some(value) = after.trim_ascii_start().strip_prefix(b":") else {
        return true;
    };
    if !value.trim_ascii_start().starts_with(b"null") {
        return true;
    }
    // One `"usage": null` key; any other occurrence might be the real one.
    USAGE_KEY.find(after).is_some()
}

/// Whether an event without an `event:` line is Anthropic's `message_stop`
/// (some relays drop the `event:` lines; the JSON `type` says the same).
fn is_message_stop(data: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Typed<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<Cow<'a, str>>,
    }
    memchr::memmem::find(data, b"message_stop").is_some()
        && serde_json::from_slice::<Typed<'_>>(data).is_ok_and(|t| t.kind.as_deref() == Some("message_stop"))
}

/// A Responses stream's terminal event by its name: `Some(None)` for
/// `response.completed`, `Some(Some(why))` for the ends that are not.
fn responses_end(name: &[u8]) -> Option<Option<&'static str>> {
    match name {
        b"response.completed" => Some(None),
        b"response.failed" => Some(Some("response_failed")),
        b"response.incomplete" => Some(Some("response_incomplete")),
        _ => None,
    }
}

/// [`responses_end`] for an event without an `event:` line, by its JSON
/// `type` (looked for only when the data names a terminal type at all).
fn responses_end_typed(data: &[u8]) -> Option<Option<&'static str>> {
    #[derive(Deserialize)]
    struct Typed<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<Cow<'a, str>>,
    }
    static END: LazyLock<[Finder<'static>; 3]> = LazyLock::new(|| {
        [
            Finder::new(b"response.completed"),
            Finder::new(b"response.failed"),
            Finder::new(b"response.incomplete"),
        ]
    });
    if !END.iter().any(|f| f.find(data).is_some()) {
        return None;
    }
    let typed = serde_json::from_slice::<Typed<'_>>(data).ok()?;
    responses_end(typed.kind?.as_bytes())
}

#[derive(Deserialize)]
struct ResponsesJson {
    #[serde(default)]
    response: Option<Obj<ResponsesBody>>,
    #[serde(default)]
    usage: Option<Obj<ResponsesUsage>>,
}

#[derive(Deserialize)]
struct ResponsesBody {
    #[serde(default)]
    usage: Option<Obj<ResponsesUsage>>,
}

#[derive(Deserialize)]
struct ResponsesUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    input_tokens_details: Option<Obj<OpenAiDetails>>,
    #[serde(default)]
    output_tokens_details: Option<Obj<OpenAiDetails>>,
}

#[derive(Deserialize)]
struct OpenAiChunk {
    #[serde(default)]
    choices: Option<SeqLen>,
    #[serde(default)]
    usage: Option<Obj<OpenAiUsage>>,
}

#[derive(Deserialize)]
struct OpenAiUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<Obj<OpenAiDetails>>,
    #[serde(default)]
    completion_tokens_details: Option<Obj<OpenAiDetails>>,
}

/// `prompt_tokens_details` holds `cached_tokens`;
/// `completion_tokens_details` holds `reasoning_tokens`.
#[derive(Deserialize)]
struct OpenAiDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct AnthropicJson {
    #[serde(default)]
    message: Option<Obj<AnthropicMessage>>,
    #[serde(default)]
    usage: Option<Obj<AnthropicUsage>>,
}

#[derive(Deserialize)]
struct AnthropicMessage {
    #[serde(default)]
    usage: Option<Obj<AnthropicUsage>>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
struct AnthropicUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// Later values replace earlier ones, field by field.
    fn merge(&mut self, later: AnthropicUsage) {
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
        self.cache_creation_input_tokens = later
            .cache_creation_input_tokens
            .or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens = later.cache_read_input_tokens.or(self.cache_read_input_tokens);
    }

    /// Whether any known field is present.
    fn any(&self) -> bool {
        self.input_tokens.is_some()
            || self.output_tokens.is_some()
            || self.cache_creation_input_tokens.is_some()
            || self.cache_read_input_tokens.is_some()
    }

    fn normalise(&self) -> Usage {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let creation = self.cache_creation_input_tokens.unwrap_or(0);
        Usage {
            input_tokens: self
                .input_tokens
                .unwrap_or(0)
                .saturating_add(read)
                .saturating_add(creation),
            output_tokens: self.output_tokens.unwrap_or(0),
            cached_input_tokens: read,
            cache_creation_tokens: creation,
            reasoning_tokens: 0,
        }
    }
}

/// The length of a JSON array, read without building it.
struct SeqLen(usize);

impl<'de> Deserialize<'de> for SeqLen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Count;
        impl<'de> Visitor<'de> for Count {
            type Value = SeqLen;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SeqLen, A::Error> {
                let mut n = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(SeqLen(n))
            }
        }
        d.deserialize_seq(Count)
    }
}

/// A struct read only from a JSON object. Derived struct impls also accept
/// an array of the fields in order, which would let `[1,2]` pass for usage.
struct Obj<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Map<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Map<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Obj)
            }
        }
        d.deserialize_map(Map(PhantomData))
    }
}

mod gemini;

#[cfg(test)]
mod tests;
