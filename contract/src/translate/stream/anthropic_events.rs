//! Anthropic's message events as OpenAI chat completion chunks.
//!
//! `message_start` → the first chunk (`role: assistant`); a `text` block's
//! deltas → `content` deltas; a `tool_use` block → a `tool_calls` entry
//! (its id and name on the block's start, then each `input_json_delta` as
//! an `arguments` delta, by the call's index among the message's calls);
//! `thinking` deltas → `reasoning_content` deltas, and at the block's end
//! the whole block with its signature as one `thinking_blocks` delta
//! (redacted blocks as they come); `message_delta` → the chunk with the
//! `finish_reason`; `message_stop` → the usage chunk (`choices: []`) when
//! the client asked for it, then `[DONE]`; `error` → an OpenAI error
//! object (and no `[DONE]`: the stream failed). `ping` is dropped.

use super::super::openai_to_anthropic::{finish_reason, AnthropicUsage};
use super::{json_str, num, StreamError};
use crate::codec::sse::SseEvent;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// What a content block is, by its index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    Tool(u32),
    Thinking,
    Other,
}

/// The translator's state for one stream.
#[derive(Debug)]
pub struct ToChunks {
    include_usage: bool,
    created: u64,
    /// `data: {"id":…,"object":…,"created":…,"model":…,"choices":[{"index":0,"delta":`
    prefix: Vec<u8>,
    /// Made from the same fields, for the usage chunk.
    head: Vec<u8>,
    blocks: Vec<Kind>,
    tools: u32,
    /// The thinking block's text so far, JSON-escaped (no quotes).
    thinking: Vec<u8>,
    signature: String,
    usage: AnthropicUsage,
    ended: bool,
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    index: Option<usize>,
    #[serde(default, borrow)]
    message: Option<Start<'a>>,
    #[serde(default, borrow)]
    content_block: Option<&'a RawValue>,
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default)]
    usage: Option<UsagePatch>,
    #[serde(default, borrow)]
    error: Option<StreamError<'a>>,
}

#[derive(Deserialize)]
struct Start<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    model: Cow<'a, str>,
    #[serde(default)]
    usage: Option<UsagePatch>,
}

#[derive(Deserialize)]
struct BlockStart<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    thinking: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    partial_json: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    thinking: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    signature: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    stop_reason: Option<Cow<'a, str>>,
}

/// Usage fields as an event carries them: each present one replaces.
#[derive(Deserialize, Default)]
struct UsagePatch {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
}

const TAIL: &[u8] = b",\"logprobs\":null,\"finish_reason\":null}]}\n\n";

impl ToChunks {
    /// For a client that asked (`include_usage`) or not for the usage chunk.
    pub fn new(include_usage: bool, created: u64) -> ToChunks {
        ToChunks {
            include_usage,
            created,
            prefix: Vec::new(),
            head: Vec::new(),
            blocks: Vec::new(),
            tools: 0,
            thinking: Vec::new(),
            signature: String::new(),
            usage: AnthropicUsage::default(),
            ended: false,
        }
    }

    /// Whether `message_stop` was translated.
    pub fn ended(&self) -> bool {
        self.ended
    }

    fn apply(&mut self, u: &UsagePatch) {
        let a = &mut self.usage;
        a.input_tokens = u.input_tokens.unwrap_or(a.input_tokens);
        a.output_tokens = u.output_tokens.unwrap_or(a.output_tokens);
        a.cache_read_input_tokens = u.cache_read_input_tokens.or(a.cache_read_input_tokens);
        a.cache_creation_input_tokens = u.cache_creation_input_tokens.or(a.cache_creation_input_tokens);
    }

    /// Opens a chunk: `data: {…,"delta":`.
    fn open(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.prefix);
    }

    /// Appends the client's chunks for one upstream event.
    pub fn event(&mut self, ev: &SseEvent<'_>, out: &mut Vec<u8>) {
        if !self.prefix.is_empty() && self.fast_delta(ev.data, out) {
            return;
        }
        let Ok(e) = serde_json::from_slice::<Event<'_>>(ev.data) else {
            return;
        };
        let kind = e.kind.as_ref();
        if self.prefix.is_empty() && kind != "message_start" && kind != "error" {
            // Nothing can be said before the message has begun.
            return;
        }
        match kind {
            "message_start" => {
                let Some(m) = e.message else { return };
                if let Some(u) = &m.usage {
                    self.apply(u);
                }
                let mut head = b"{\"id\":".to_vec();
                json_str(&mut head, &m.id);
                head.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
                num(&mut head, self.created);
                head.extend_from_slice(b",\"model\":");
                json_str(&mut head, &m.model);
                self.prefix.clear();
                self.prefix.extend_from_slice(b"data: ");
                self.prefix.extend_from_slice(&head);
                self.prefix
                    .extend_from_slice(b",\"choices\":[{\"index\":0,\"delta\":");
                self.head = head;
                self.open(out);
                out.extend_from_slice(b"{\"role\":\"assistant\",\"content\":\"\"}");
                out.extend_from_slice(TAIL);
            }
            "content_block_start" => {
                let Some(raw) = e.content_block else { return };
                let Ok(b) = serde_json::from_str::<BlockStart<'_>>(raw.get()) else {
                    return;
                };
                let kind = match b.kind.as_ref() {
                    "text" => {
                        if let Some(t) = b.text.filter(|t| !t.is_empty()) {
                            self.content(out, &t);
                        }
                        Kind::Text
                    }
                    "tool_use" => {
                        let k = self.tools;
                        self.tools += 1;
                        self.open(out);
                        out.extend_from_slice(b"{\"tool_calls\":[{\"index\":");
                        num(out, u64::from(k));
                        out.extend_from_slice(b",\"id\":");
                        json_str(out, b.id.as_deref().unwrap_or(""));
                        out.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
                        json_str(out, b.name.as_deref().unwrap_or(""));
                        out.extend_from_slice(b",\"arguments\":\"\"}}]}");
                        out.extend_from_slice(TAIL);
                        Kind::Tool(k)
                    }
                    "thinking" => {
                        self.thinking.clear();
                        self.signature.clear();
                        if let Some(t) = b.thinking.filter(|t| !t.is_empty()) {
                            self.reasoning(out, &t);
                        }
                        Kind::Thinking
                    }
                    "redacted_thinking" => {
                        self.open(out);
                        out.extend_from_slice(b"{\"thinking_blocks\":[");
                        out.extend_from_slice(raw.get().as_bytes());
                        out.extend_from_slice(b"]}");
                        out.extend_from_slice(TAIL);
                        Kind::Other
                    }
                    _ => Kind::Other,
                };
                let i = e.index.unwrap_or(self.blocks.len());
                if self.blocks.len() <= i {
                    self.blocks.resize(i + 1, Kind::Other);
                }
                self.blocks[i] = kind;
            }
            "content_block_delta" => {
                let Some(d) = e.delta else { return };
                let kind = e
                    .index
                    .and_then(|i| self.blocks.get(i).copied())
                    .unwrap_or(Kind::Other);
                match d.kind.as_deref() {
                    Some("text_delta") => {
                        if let Some(t) = d.text {
                            self.content(out, &t);
                        }
                    }
                    Some("input_json_delta") => {
                        let (Kind::Tool(k), Some(p)) = (kind, d.partial_json) else {
                            return;
                        };
                        if p.is_empty() {
                            return;
                        }
                        self.open(out);
                        out.extend_from_slice(b"{\"tool_calls\":[{\"index\":");
                        num(out, u64::from(k));
                        out.extend_from_slice(b",\"function\":{\"arguments\":");
                        json_str(out, &p);
                        out.extend_from_slice(b"}}]}");
                        out.extend_from_slice(TAIL);
                    }
                    Some("thinking_delta") => {
                        if let Some(t) = d.thinking {
                            self.reasoning(out, &t);
                        }
                    }
                    Some("signature_delta") => {
                        if let Some(s) = d.signature {
                            self.signature.push_str(&s);
                        }
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                let kind = e.index.and_then(|i| self.blocks.get(i).copied());
                if kind == Some(Kind::Thinking) {
                    self.open(out);
                    out.extend_from_slice(b"{\"thinking_blocks\":[{\"type\":\"thinking\",\"thinking\":\"");
                    out.extend_from_slice(&self.thinking);
                    out.extend_from_slice(b"\",\"signature\":");
                    json_str(out, &self.signature);
                    out.extend_from_slice(b"}]}");
                    out.extend_from_slice(TAIL);
                }
            }
            "message_delta" => {
                if let Some(u) = &e.usage {
                    self.apply(u);
                }
                if let Some(stop) = e.delta.and_then(|d| d.stop_reason) {
                    self.open(out);
                    out.extend_from_slice(b"{},\"logprobs\":null,\"finish_reason\":\"");
                    out.extend_from_slice(finish_reason(&stop).as_bytes());
                    out.extend_from_slice(b"\"}]}\n\n");
                }
            }
            "message_stop" => {
                if self.include_usage {
                    out.extend_from_slice(b"data: ");
                    out.extend_from_slice(&self.head);
                    out.extend_from_slice(b",\"choices\":[],\"usage\":");
                    let _ = serde_json::to_writer(&mut *out, &self.usage.to_openai());
                    out.extend_from_slice(b"}\n\n");
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
                self.ended = true;
            }
            "error" => {
                let (kind, message) = match &e.error {
                    Some(err) => (err.kind.as_deref(), err.message.as_deref()),
                    None => (None, None),
                };
                let status = match kind {
                    Some("overloaded_error") => 529,
                    Some("rate_limit_error") => 429,
                    _ => 500,
                };
                out.extend_from_slice(b"data: {\"error\":{\"message\":");
                json_str(out, message.unwrap_or("the upstream stream failed"));
                out.extend_from_slice(b",\"type\":\"");
                out.extend_from_slice(super::super::openai_error_type(status, kind).as_bytes());
                out.extend_from_slice(b"\",\"param\":null,\"code\":");
                match kind {
                    Some(k) => json_str(out, k),
                    None => out.extend_from_slice(b"null"),
                }
                out.extend_from_slice(b"}}\n\n");
            }
            _ => {}
        }
    }

    fn content(&mut self, out: &mut Vec<u8>, text: &str) {
        self.open(out);
        out.extend_from_slice(b"{\"content\":");
        json_str(out, text);
        out.push(b'}');
        out.extend_from_slice(TAIL);
    }

    fn reasoning(&mut self, out: &mut Vec<u8>, text: &str) {
        self.open(out);
        out.extend_from_slice(b"{\"reasoning_content\":");
        let quoted = out.len();
        json_str(out, text);
        // The escaped text, without its quotes, joins the block's.
        let escaped = out
            .get(quoted + 1..out.len().saturating_sub(1))
            .unwrap_or_default();
        self.thinking.extend_from_slice(escaped);
        out.push(b'}');
        out.extend_from_slice(TAIL);
    }

    /// The common delta events, in the compact shape Anthropic sends them
    /// (`{"type":"content_block_delta","index":N,"delta":{"type":"text_delta","text":"…"}}`),
    /// translated without parsing: the text's JSON string token is copied
    /// as it is (it is checked to be one whole, valid token first). `false`:
    /// not such an event; the parsing path takes it.
    fn fast_delta(&mut self, data: &[u8], out: &mut Vec<u8>) -> bool {
        let Some((kind, index, token)) = split_delta(data) else {
            return false;
        };
        match kind {
            FastKind::Text => {
                self.open(out);
                out.extend_from_slice(b"{\"content\":\"");
                out.extend_from_slice(token);
                out.extend_from_slice(b"\"}");
                out.extend_from_slice(TAIL);
            }
            FastKind::Thinking => {
                self.thinking.extend_from_slice(token);
                self.open(out);
                out.extend_from_slice(b"{\"reasoning_content\":\"");
                out.extend_from_slice(token);
                out.extend_from_slice(b"\"}");
                out.extend_from_slice(TAIL);
            }
            FastKind::Json => {
                let Some(Kind::Tool(k)) = self.blocks.get(index).copied() else {
                    return false;
                };
                if !token.is_empty() {
                    self.open(out);
                    out.extend_from_slice(b"{\"tool_calls\":[{\"index\":");
                    num(out, u64::from(k));
                    out.extend_from_slice(b",\"function\":{\"arguments\":\"");
                    out.extend_from_slice(token);
                    out.extend_from_slice(b"\"}}]}");
                    out.extend_from_slice(TAIL);
                }
            }
        }
        true
    }
}

/// Which delta [`split_delta`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FastKind {
    Text,
    Thinking,
    Json,
}

/// A compact delta event's kind, block index and string token contents
/// (still escaped), when `data` is exactly one.
fn split_delta(data: &[u8]) -> Option<(FastKind, usize, &[u8])> {
    let rest = data.strip_prefix(b"{\"type\":\"content_block_delta\",\"index\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 6 {
        return None;
    }
    let index = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let rest = rest[digits..].strip_prefix(b",\"delta\":{\"type\":\"")?;
    let (kind, rest) = if let Some(r) = rest.strip_prefix(b"text_delta\",\"text\":\"") {
        (FastKind::Text, r)
    } else if let Some(r) = rest.strip_prefix(b"thinking_delta\",\"thinking\":\"") {
        (FastKind::Thinking, r)
    } else if let Some(r) = rest.strip_prefix(b"input_json_delta\",\"partial_json\":\"") {
        (FastKind::Json, r)
    } else {
        return None;
    };
    let token = rest.strip_suffix(b"\"}}")?;
    string_contents(token).then_some((kind, index, token))
}

/// Whether `s` is the inside of one valid JSON string token: UTF-8, no
/// control character, no unescaped quote, only valid escapes.
fn string_contents(s: &[u8]) -> bool {
    if std::str::from_utf8(s).is_err() {
        return false;
    }
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        match b {
            b'"' | 0..=0x1f => return false,
            b'\\' => match s.get(i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                Some(b'u') => {
                    let hex = s.get(i + 2..i + 6);
                    if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                        return false;
                    }
                    i += 6;
                }
                _ => return false,
            },
            _ => i += 1,
        }
    }
    true
}
