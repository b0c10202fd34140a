//! An Anthropic messages client, an OpenAI chat completions upstream.
//!
//! Request (messages → chat completions):
//! - `system` (a string or text blocks) → a leading `system` message;
//!   `user` blocks → content parts (`image` base64 → a `data:` URL,
//!   `image` url → its URL, `document` base64 PDF → a `file` part), its
//!   `tool_result` blocks → `tool` messages before the rest of the turn (so
//!   parallel results answer their calls in order); `assistant` blocks →
//!   `content` and `tool_calls` (the input's bytes as the `arguments`
//!   string).
//! - `tools` (custom ones: `input_schema` → `parameters`, bytes kept);
//!   `tool_choice` `auto`/`any`/`tool`/`none` → `auto`/`required`/a
//!   function/`none`; `disable_parallel_tool_use` → `parallel_tool_calls:
//!   false`.
//! - `max_tokens` → `max_completion_tokens`; `temperature`, `top_p`;
//!   `stop_sequences` → `stop` (at most 4, OpenAI's bound);
//!   `metadata.user_id` → `user`; `thinking` with a budget →
//!   `reasoning_effort` (below 4096 `low`, below 16384 `medium`, else
//!   `high`); `output_config.format` (or the beta `output_format`)
//!   `json_schema` → `response_format` `json_schema`; `stream` adds
//!   `stream_options.include_usage` (the stream's usage is Anthropic's
//!   `message_delta` usage, and the gateway meters from it).
//! - Always dropped and named (hints that change no output): `cache_control`
//!   (OpenAI caches prompts by itself) and `thinking` blocks of earlier
//!   turns (OpenAI chat takes no reasoning back; the model does not need
//!   it).
//!
//! Response: `content` → a `text` block, `reasoning_content` (or
//! `reasoning`, as OpenAI-compatible providers name it) → a `thinking` block
//! before it, `tool_calls` → `tool_use` blocks (arguments parsed as the
//! input); `finish_reason` → `stop_reason` (`stop` → `end_turn`, `length` →
//! `max_tokens`, `tool_calls`/`function_call` → `tool_use`,
//! `content_filter` → `refusal`); usage: `input_tokens` = prompt − cached,
//! `cache_read_input_tokens` = cached.

use super::json::{arr, bad, need, obj, read, string, take, Fields, Obj, J};
use super::{Options, Refusal, Translated};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// OpenAI's bound on stop sequences.
const MAX_STOPS: usize = 4;

/// The `reasoning_effort` for an Anthropic thinking budget.
pub fn reasoning_effort(budget: u64) -> &'static str {
    match budget {
        0..=4095 => "low",
        4096..=16383 => "medium",
        _ => "high",
    }
}

/// Translates a messages request into a chat completions request.
pub fn request(body: &[u8], opts: &Options<'_>) -> Result<Translated, Refusal> {
    let text = std::str::from_utf8(body).map_err(|_| bad("body", "must be UTF-8"))?;
    let mut o: Obj<'_> = serde_json::from_str(text).map_err(|_| bad("body", "must be a JSON object"))?;
    let mut f = Fields::new(opts.on_unsupported);
    o.remove("model");
    let mut messages = Vec::new();
    if let Some(system) = take(&mut o, "system") {
        let parts = text_parts(system, "system", &mut f)?;
        messages.push(J::obj([("role", J::s("system")), ("content", parts)]));
    }
    let items = need(&mut o, "messages", "messages")?;
    for m in arr(items, "messages")? {
        convert_message(m, &mut messages, &mut f)?;
    }
    let mut max: u64 = read(
        need(&mut o, "max_tokens", "max_tokens")?,
        "max_tokens",
        "must be a non-negative integer",
    )?;
    if let Some(limit) = opts.limit {
        max = max.min(limit);
    }
    let mut out = J::obj([
        ("model", J::S(Cow::Owned(opts.model.to_owned()))),
        ("messages", J::A(messages)),
        ("max_completion_tokens", J::U(max)),
    ]);
    if let Some(tools) = take(&mut o, "tools") {
        out.push("tools", J::A(convert_tools(arr(tools, "tools")?, &mut f)?));
    }
    if let Some(v) = take(&mut o, "tool_choice") {
        let mut c = obj(v, "tool_choice")?;
        let kind = string(need(&mut c, "type", "tool_choice.type")?, "tool_choice.type")?;
        let choice = match kind.as_str() {
            "auto" => J::s("auto"),
            "any" => J::s("required"),
            "none" => J::s("none"),
            "tool" => {
                let name = need(&mut c, "name", "tool_choice.name")?;
                J::obj([
                    ("type", J::s("function")),
                    ("function", J::obj([("name", J::Raw(name))])),
                ])
            }
            _ => return Err(bad("tool_choice.type", "must be auto, any, tool or none")),
        };
        if let Some(d) = take(&mut c, "disable_parallel_tool_use") {
            if read::<bool>(d, "tool_choice.disable_parallel_tool_use", "must be a boolean")?
                && kind != "none"
            {
                out.push("parallel_tool_calls", J::Bool(false));
            }
        }
        f.rest(&c, "tool_choice")?;
        out.push("tool_choice", choice);
    }
    if let Some(v) = take(&mut o, "stop_sequences") {
        let stops: Vec<String> = read(v, "stop_sequences", "must be an array of strings")?;
        if stops.len() > MAX_STOPS {
            f.unsupported("stop_sequences (more than 4)")?;
        } else if !stops.is_empty() {
            out.push(
                "stop",
                J::A(stops.into_iter().map(|s| J::S(Cow::Owned(s))).collect()),
            );
        }
    }
    for key in ["temperature", "top_p"] {
        if let Some(v) = take(&mut o, key) {
            out.push(key, J::Raw(v));
        }
    }
    if let Some(v) = take(&mut o, "thinking") {
        let mut t = obj(v, "thinking")?;
        let kind = string(need(&mut t, "type", "thinking.type")?, "thinking.type")?;
        match kind.as_str() {
            "enabled" => {
                let budget: u64 = read(
                    need(&mut t, "budget_tokens", "thinking.budget_tokens")?,
                    "thinking.budget_tokens",
                    "must be a non-negative integer",
                )?;
                out.push("reasoning_effort", J::s(reasoning_effort(budget)));
            }
            "disabled" => {}
            _ => f.unsupported(&format!("thinking.type={kind}"))?,
        }
        f.rest(&t, "thinking")?;
    }
    let format = match (take(&mut o, "output_config"), take(&mut o, "output_format")) {
        (Some(c), _) => {
            let mut c = obj(c, "output_config")?;
            let format = take(&mut c, "format");
            f.rest(&c, "output_config")?;
            format.map(|v| (v, "output_config.format"))
        }
        (None, Some(v)) => Some((v, "output_format")),
        (None, None) => None,
    };
    if let Some((v, field)) = format {
        let mut fo = obj(v, field)?;
        let kind = fo.remove("type").map(|t| t.get());
        if kind != Some("\"json_schema\"") {
            return Err(bad(format!("{field}.type"), "must be json_schema"));
        }
        let schema = need(&mut fo, "schema", format!("{field}.schema"))?;
        f.rest(&fo, field)?;
        out.push(
            "response_format",
            J::obj([
                ("type", J::s("json_schema")),
                (
                    "json_schema",
                    J::obj([
                        ("name", J::s("output")),
                        ("schema", J::Raw(schema)),
                        ("strict", J::Bool(true)),
                    ]),
                ),
            ]),
        );
    }
    if let Some(v) = take(&mut o, "metadata") {
        let mut md = obj(v, "metadata")?;
        if let Some(u) = take(&mut md, "user_id") {
            out.push("user", J::Raw(u));
        }
        f.rest(&md, "metadata")?;
    }
    if let Some(v) = take(&mut o, "service_tier") {
        match string(v, "service_tier")?.as_str() {
            "auto" => out.push("service_tier", J::s("auto")),
            _ => f.unsupported("service_tier")?,
        }
    }
    if let Some(v) = take(&mut o, "stream") {
        if read::<bool>(v, "stream", "must be a boolean")? {
            out.push("stream", J::Bool(true));
            out.push("stream_options", J::obj([("include_usage", J::Bool(true))]));
        }
    }
    f.rest(&o, "")?;
    Ok(Translated {
        body: out.to_vec(),
        dropped: f.dropped,
    })
}

/// A string, or text blocks joined as OpenAI text parts.
fn text_parts<'a>(v: &'a RawValue, field: &str, f: &mut Fields) -> Result<J<'a>, Refusal> {
    if let Ok(s) = read::<String>(v, field, "") {
        return Ok(J::S(Cow::Owned(s)));
    }
    let mut parts = Vec::new();
    for b in arr(v, field)? {
        let mut b = obj(b, field)?;
        if b.get("type").map(|t| t.get()) != Some("\"text\"") {
            f.unsupported(&format!("{field}[].type"))?;
            continue;
        }
        b.remove("type");
        let text = need(&mut b, "text", format!("{field}[].text"))?;
        parts.push(J::obj([("type", J::s("text")), ("text", J::Raw(text))]));
        block_rest(&mut b, field, f)?;
    }
    Ok(J::A(parts))
}

/// What is left of a block: `cache_control` is a hint, the rest has no
/// equivalent.
fn block_rest(b: &mut Obj<'_>, field: &str, f: &mut Fields) -> Result<(), Refusal> {
    if take(b, "cache_control").is_some() {
        f.hint("cache_control");
    }
    b.remove("citations");
    f.rest(b, &format!("{field}[]"))
}

fn convert_message<'a>(raw: &'a RawValue, out: &mut Vec<J<'a>>, f: &mut Fields) -> Result<(), Refusal> {
    let mut m = obj(raw, "messages[]")?;
    let role = string(need(&mut m, "role", "messages[].role")?, "messages[].role")?;
    let content = need(&mut m, "content", "messages[].content")?;
    f.rest(&m, "messages[]")?;
    const FIELD: &str = "messages[].content";
    let blocks = match read::<String>(content, FIELD, "") {
        Ok(s) => {
            let role = match role.as_str() {
                "user" => "user",
                "assistant" => "assistant",
                _ => return Err(bad("messages[].role", "must be user or assistant")),
            };
            out.push(J::obj([("role", J::s(role)), ("content", J::S(Cow::Owned(s)))]));
            return Ok(());
        }
        Err(_) => arr(content, FIELD)?,
    };
    match role.as_str() {
        "user" => {
            let mut parts = Vec::new();
            for b in blocks {
                let mut b = obj(b, FIELD)?;
                let kind = string(need(&mut b, "type", "messages[].content[].type")?, FIELD)?;
                match kind.as_str() {
                    "text" => {
                        let text = need(&mut b, "text", "messages[].content[].text")?;
                        parts.push(J::obj([("type", J::s("text")), ("text", J::Raw(text))]));
                    }
                    "image" => {
                        let src = need(&mut b, "source", "messages[].content[].source")?;
                        let url = image_url(src, f)?;
                        parts.push(J::obj([
                            ("type", J::s("image_url")),
                            ("image_url", J::obj([("url", url)])),
                        ]));
                    }
                    "document" => {
                        let src = need(&mut b, "source", "messages[].content[].source")?;
                        let mut s = obj(src, "messages[].content[].source")?;
                        let is_pdf = s.get("type").map(|t| t.get()) == Some("\"base64\"")
                            && s.get("media_type").map(|t| t.get()) == Some("\"application/pdf\"");
                        if !is_pdf {
                            f.unsupported(
                                "messages[].content[].source (a document other than a base64 PDF)",
                            )?;
                            continue;
                        }
                        let data = string(
                            need(&mut s, "data", "messages[].content[].source.data")?,
                            "messages[].content[].source.data",
                        )?;
                        let mut file = J::obj([(
                            "file_data",
                            J::S(Cow::Owned(format!("data:application/pdf;base64,{data}"))),
                        )]);
                        if let Some(t) = take(&mut b, "title") {
                            file.push("filename", J::Raw(t));
                        }
                        b.remove("context");
                        parts.push(J::obj([("type", J::s("file")), ("file", file)]));
                    }
                    "tool_result" => {
                        let id = need(&mut b, "tool_use_id", "messages[].content[].tool_use_id")?;
                        let content = match take(&mut b, "content") {
                            Some(c) => text_parts(c, "messages[].content[].content", f)?,
                            None => J::s(""),
                        };
                        if let Some(e) = take(&mut b, "is_error") {
                            if e.get() == "true" {
                                f.unsupported("messages[].content[].is_error")?;
                            }
                        }
                        // Tool results answer the previous turn's calls: they
                        // come first, as their own messages.
                        out.push(J::obj([
                            ("role", J::s("tool")),
                            ("tool_call_id", J::Raw(id)),
                            ("content", content),
                        ]));
                    }
                    other => {
                        f.unsupported(&format!("messages[].content[].type={other}"))?;
                        continue;
                    }
                }
                block_rest(&mut b, FIELD, f)?;
            }
            if !parts.is_empty() {
                out.push(J::obj([("role", J::s("user")), ("content", J::A(parts))]));
            }
        }
        "assistant" => {
            let mut text = String::new();
            let mut calls = Vec::new();
            for b in blocks {
                let mut b = obj(b, FIELD)?;
                let kind = string(need(&mut b, "type", "messages[].content[].type")?, FIELD)?;
                match kind.as_str() {
                    "text" => {
                        let t = need(&mut b, "text", "messages[].content[].text")?;
                        text.push_str(&string(t, "messages[].content[].text")?);
                    }
                    "thinking" | "redacted_thinking" => {
                        f.hint("messages[].content[].type=thinking");
                        continue;
                    }
                    "tool_use" => {
                        let id = need(&mut b, "id", "messages[].content[].id")?;
                        let name = need(&mut b, "name", "messages[].content[].name")?;
                        let input = take(&mut b, "input").map_or("{}", |i| i.get());
                        calls.push(J::obj([
                            ("id", J::Raw(id)),
                            ("type", J::s("function")),
                            (
                                "function",
                                J::obj([("name", J::Raw(name)), ("arguments", J::S(Cow::Borrowed(input)))]),
                            ),
                        ]));
                    }
                    other => {
                        f.unsupported(&format!("messages[].content[].type={other}"))?;
                        continue;
                    }
                }
                block_rest(&mut b, FIELD, f)?;
            }
            if text.is_empty() && calls.is_empty() {
                return Ok(());
            }
            let content = if text.is_empty() {
                J::Null
            } else {
                J::S(Cow::Owned(text))
            };
            let mut msg = J::obj([("role", J::s("assistant")), ("content", content)]);
            if !calls.is_empty() {
                msg.push("tool_calls", J::A(calls));
            }
            out.push(msg);
        }
        _ => return Err(bad("messages[].role", "must be user or assistant")),
    }
    Ok(())
}

fn image_url<'a>(src: &'a RawValue, f: &mut Fields) -> Result<J<'a>, Refusal> {
    const FIELD: &str = "messages[].content[].source";
    let mut s = obj(src, FIELD)?;
    let kind = string(need(&mut s, "type", "messages[].content[].source.type")?, FIELD)?;
    let url = match kind.as_str() {
        "base64" => {
            let media = string(
                need(&mut s, "media_type", "messages[].content[].source.media_type")?,
                FIELD,
            )?;
            let data = string(need(&mut s, "data", "messages[].content[].source.data")?, FIELD)?;
            J::S(Cow::Owned(format!("data:{media};base64,{data}")))
        }
        "url" => J::Raw(need(&mut s, "url", "messages[].content[].source.url")?),
        _ => return Err(bad("messages[].content[].source.type", "must be base64 or url")),
    };
    f.rest(&s, FIELD)?;
    Ok(url)
}

fn convert_tools<'a>(items: Vec<&'a RawValue>, f: &mut Fields) -> Result<Vec<J<'a>>, Refusal> {
    let mut tools = Vec::new();
    for t in items {
        let mut t = obj(t, "tools[]")?;
        if let Some(kind) = take(&mut t, "type") {
            if kind.get() != "\"custom\"" {
                f.unsupported(&format!("tools[].type={}", kind.get().trim_matches('"')))?;
                continue;
            }
        }
        let name = need(&mut t, "name", "tools[].name")?;
        let mut func = J::obj([("name", J::Raw(name))]);
        if let Some(d) = take(&mut t, "description") {
            func.push("description", J::Raw(d));
        }
        let schema = need(&mut t, "input_schema", "tools[].input_schema")?;
        func.push("parameters", J::Raw(schema));
        block_rest(&mut t, "tools", f)?;
        tools.push(J::obj([("type", J::s("function")), ("function", func)]));
    }
    Ok(tools)
}

/// A chat completion, as read.
#[derive(Deserialize)]
struct Completion {
    id: String,
    model: String,
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<OpenAiUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default, alias = "reasoning")]
    reasoning_content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ToolCall>,
}

#[derive(Deserialize)]
struct ToolCall {
    id: String,
    function: Function,
}

#[derive(Deserialize)]
struct Function {
    name: String,
    #[serde(default)]
    arguments: String,
}

/// OpenAI's usage fields.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct OpenAiUsage {
    /// Prompt tokens, cached included.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Completion tokens, reasoning included.
    #[serde(default)]
    pub completion_tokens: u64,
    /// The prompt's details.
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptDetails>,
}

/// OpenAI's `prompt_tokens_details`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct PromptDetails {
    /// Prompt tokens read from the cache.
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

impl OpenAiUsage {
    /// Prompt tokens read from the cache.
    pub fn cached(&self) -> u64 {
        self.prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
    }

    /// Anthropic's usage object for these figures.
    pub fn to_anthropic(self) -> J<'static> {
        let cached = self.cached();
        J::obj([
            ("input_tokens", J::U(self.prompt_tokens.saturating_sub(cached))),
            ("cache_creation_input_tokens", J::U(0)),
            ("cache_read_input_tokens", J::U(cached)),
            ("output_tokens", J::U(self.completion_tokens)),
        ])
    }
}

/// Anthropic's `stop_reason` for an OpenAI `finish_reason`.
pub fn stop_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// A tool call's arguments as a `tool_use` input: the object as sent, or,
/// when the model sent something else, the text under `arguments` (the
/// input must be an object).
pub fn tool_input(args: &str) -> J<'static> {
    if args.trim().is_empty() {
        return J::RawOwned(RawValue::from_string("{}".to_owned()).unwrap_or_else(|_| empty_raw()));
    }
    match RawValue::from_string(args.to_owned()) {
        Ok(r) if r.get().trim_start().starts_with('{') => J::RawOwned(r),
        _ => J::O(vec![(
            Cow::Borrowed("arguments"),
            J::S(Cow::Owned(args.to_owned())),
        )]),
    }
}

fn empty_raw() -> Box<RawValue> {
    serde_json::value::to_raw_value(&serde_json::Map::new()).unwrap_or_default()
}

/// Translates a chat completion into a messages response.
pub fn response(body: &[u8]) -> Option<Vec<u8>> {
    let c: Completion = serde_json::from_slice(body).ok()?;
    let choice = c.choices.into_iter().next();
    let mut content = Vec::new();
    let mut stop = None;
    if let Some(choice) = choice {
        let m = choice.message;
        if let Some(r) = m.reasoning_content.filter(|r| !r.is_empty()) {
            content.push(J::obj([
                ("type", J::s("thinking")),
                ("thinking", J::S(Cow::Owned(r))),
                ("signature", J::s("")),
            ]));
        }
        if let Some(t) = m.content.or(m.refusal).filter(|t| !t.is_empty()) {
            content.push(J::obj([("type", J::s("text")), ("text", J::S(Cow::Owned(t)))]));
        }
        for call in m.tool_calls {
            content.push(J::obj([
                ("type", J::s("tool_use")),
                ("id", J::S(Cow::Owned(call.id))),
                ("name", J::S(Cow::Owned(call.function.name))),
                ("input", tool_input(&call.function.arguments)),
            ]));
        }
        stop = choice.finish_reason;
    }
    let out = J::obj([
        ("id", J::S(Cow::Owned(c.id))),
        ("type", J::s("message")),
        ("role", J::s("assistant")),
        ("model", J::S(Cow::Owned(c.model))),
        ("content", J::A(content)),
        (
            "stop_reason",
            stop.as_deref().map_or(J::Null, |s| J::s(stop_reason(s))),
        ),
        ("stop_sequence", J::Null),
        ("usage", c.usage.unwrap_or_default().to_anthropic()),
    ]);
    Some(out.to_vec())
}
