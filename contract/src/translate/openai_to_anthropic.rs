//! An OpenAI chat completions client, an Anthropic messages upstream.
//!
//! Request (chat completions → messages):
//! - `system` and `developer` messages become the top-level `system` (text
//!   blocks, in order); `user` content parts become blocks (`image_url`
//!   with a `data:` URL → a base64 `image`, any other URL → a `url` image;
//!   `file` with a PDF `file_data` → a base64 `document`); `assistant`
//!   messages become `thinking` blocks (from the [`thinking_blocks`
//!   carrier](#thinking-carrier)), `text` and `tool_use` (its `arguments`
//!   string parsed as the input); `tool` messages become `tool_result`
//!   blocks of one `user` message (parallel results together).
//! - `tools` → `tools` (`parameters` → `input_schema`, bytes kept);
//!   `tool_choice` `none`/`auto`/`required`/a function → `none`/`auto`/
//!   `any`/`tool`; `parallel_tool_calls: false` →
//!   `disable_parallel_tool_use`.
//! - `max_completion_tokens` (or `max_tokens`) → `max_tokens`, which
//!   Anthropic requires: absent, [`DEFAULT_MAX_TOKENS`] (the largest every
//!   Claude model accepts), or the thinking budget plus that when reasoning
//!   is asked for. `temperature` must be within Anthropic's 0–1;
//!   `top_p`; `stop` → `stop_sequences`; `user` → `metadata.user_id`.
//! - `reasoning_effort` → `thinking` with a budget: `minimal`/`low` 1024
//!   (Anthropic's least), `medium` 4096, `high` 16384 tokens, kept below
//!   `max_tokens`.
//! - `response_format` `json_schema` → `output_config.format` (the schema's
//!   bytes kept); `json_object` has no equivalent.
//! - Fields that ask for nothing (`n: 1`, penalties of 0, `logprobs:
//!   false`, `parallel_tool_calls: true`, `detail: "auto"`) are accepted.
//!
//! <a name="thinking-carrier"></a>Thinking carrier: Anthropic's thinking
//! blocks reach an OpenAI client as `message.reasoning_content` (the text)
//! and `message.thinking_blocks` (the blocks as Anthropic sent them,
//! `signature` or redacted `data` included: the LiteLLM convention). An
//! assistant message sent back with its `thinking_blocks` gives the next
//! turn its thinking blocks, signatures intact. Streamed, the text comes as
//! `delta.reasoning_content` and each whole block, once its signature has
//! come, as one `delta.thinking_blocks` entry.
//!
//! Response: text blocks join into `content`; `tool_use` → `tool_calls`
//! (input as the `arguments` string, bytes kept); `stop_reason` →
//! `finish_reason` (`end_turn`, `stop_sequence`, `pause_turn` → `stop`;
//! `max_tokens`, `model_context_window_exceeded` → `length`; `tool_use` →
//! `tool_calls`; `refusal` → `content_filter`); usage: `prompt_tokens` =
//! input + cache read + cache write, `cached_tokens` = cache read.

use super::json::{self, arr, bad, data_url, need, obj, read, string, take, Fields, Obj, J};
use super::{OnUnsupported, Options, Refusal, Translated};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// `max_tokens` when the client gave no limit: 4096, the largest output
/// every Claude model accepts.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;
/// Anthropic's least thinking budget.
pub const MIN_THINKING_BUDGET: u64 = 1024;

/// The thinking budget for an OpenAI `reasoning_effort`; `None` for none.
pub fn thinking_budget(effort: &str) -> Result<Option<u64>, Refusal> {
    match effort {
        "none" => Ok(None),
        "minimal" | "low" => Ok(Some(MIN_THINKING_BUDGET)),
        "medium" => Ok(Some(4096)),
        "high" => Ok(Some(16384)),
        _ => Err(bad(
            "reasoning_effort",
            "must be none, minimal, low, medium or high",
        )),
    }
}

/// Translates a chat completions request into a messages request.
pub fn request(body: &[u8], opts: &Options<'_>) -> Result<Translated, Refusal> {
    let text = std::str::from_utf8(body).map_err(|_| bad("body", "must be UTF-8"))?;
    let mut o: Obj<'_> = serde_json::from_str(text).map_err(|_| bad("body", "must be a JSON object"))?;
    let mut f = Fields::new(opts.on_unsupported);
    o.remove("model");
    let messages = need(&mut o, "messages", "messages")?;
    let (system, messages) = convert_messages(arr(messages, "messages")?, &mut f)?;

    let mut max = None;
    for key in ["max_completion_tokens", "max_tokens"] {
        if let Some(v) = take(&mut o, key) {
            let n: u64 = read(v, key, "must be a non-negative integer")?;
            max = Some(max.map_or(n, |m: u64| m.min(n)));
        }
    }
    let mut budget = None;
    if let Some(v) = take(&mut o, "reasoning_effort") {
        let effort = string(v, "reasoning_effort")?;
        budget = thinking_budget(&effort)?;
    }
    let mut max_tokens = match (max, budget) {
        (Some(m), _) => m,
        (None, Some(b)) => b + DEFAULT_MAX_TOKENS,
        (None, None) => DEFAULT_MAX_TOKENS,
    };
    if let Some(limit) = opts.limit {
        max_tokens = max_tokens.min(limit);
    }
    if let Some(b) = budget {
        // Anthropic wants the budget below max_tokens, and at least 1024.
        let b = b.min(max_tokens.saturating_sub(1));
        if b < MIN_THINKING_BUDGET {
            return Err(bad(
                "reasoning_effort",
                "needs max_completion_tokens above 1024 on an Anthropic upstream (its least thinking budget)",
            ));
        }
        budget = Some(b);
    }

    let mut out = J::obj([
        ("model", J::S(Cow::Owned(opts.model.to_owned()))),
        ("max_tokens", J::U(max_tokens)),
    ]);
    if !system.is_empty() {
        out.push("system", J::A(system));
    }
    out.push("messages", J::A(messages));

    let mut parallel = None;
    if let Some(v) = take(&mut o, "parallel_tool_calls") {
        parallel = Some(read::<bool>(v, "parallel_tool_calls", "must be a boolean")?);
    }
    if let Some(tools) = take(&mut o, "tools") {
        out.push("tools", J::A(convert_tools(arr(tools, "tools")?, &mut f)?));
    }
    let mut choice = match take(&mut o, "tool_choice") {
        Some(v) => Some(convert_tool_choice(v, &mut f)?),
        None => None,
    };
    if parallel == Some(false) {
        let c = choice.get_or_insert_with(|| J::obj([("type", J::s("auto"))]));
        if let J::O(fields) = c {
            let none = fields
                .iter()
                .any(|(k, v)| k == "type" && matches!(v, J::S(s) if s == "none"));
            if !none {
                c.push("disable_parallel_tool_use", J::Bool(true));
            }
        }
    }
    if let Some(c) = choice {
        out.push("tool_choice", c);
    }
    if let Some(v) = take(&mut o, "stop") {
        let stops: Vec<String> = match read::<String>(v, "stop", "") {
            Ok(s) => vec![s],
            Err(_) => read(v, "stop", "must be a string or an array of strings")?,
        };
        if !stops.is_empty() {
            out.push(
                "stop_sequences",
                J::A(stops.into_iter().map(|s| J::S(Cow::Owned(s))).collect()),
            );
        }
    }
    if let Some(v) = take(&mut o, "temperature") {
        let t: f64 = read(v, "temperature", "must be a number")?;
        if (0.0..=1.0).contains(&t) {
            out.push("temperature", J::Raw(v));
        } else {
            match opts.on_unsupported {
                OnUnsupported::Refuse => {
                    return Err(bad(
                        "temperature",
                        "must be within 0 and 1 on an Anthropic upstream",
                    ))
                }
                OnUnsupported::Drop => f.hint("temperature"),
            }
        }
    }
    if let Some(v) = take(&mut o, "top_p") {
        out.push("top_p", J::Raw(v));
    }
    if let Some(b) = budget {
        out.push(
            "thinking",
            J::obj([("type", J::s("enabled")), ("budget_tokens", J::U(b))]),
        );
    }
    if let Some(v) = take(&mut o, "response_format") {
        if let Some(format) = convert_response_format(v, &mut f)? {
            out.push("output_config", J::obj([("format", format)]));
        }
    }
    if let Some(v) = take(&mut o, "user") {
        out.push(
            "metadata",
            J::obj([("user_id", J::S(Cow::Owned(string(v, "user")?)))]),
        );
    }
    if let Some(v) = take(&mut o, "service_tier") {
        match string(v, "service_tier")?.as_str() {
            "auto" => out.push("service_tier", J::s("auto")),
            _ => f.unsupported("service_tier")?,
        }
    }
    let stream = match take(&mut o, "stream") {
        Some(v) => read::<bool>(v, "stream", "must be a boolean")?,
        None => false,
    };
    if let Some(v) = take(&mut o, "stream_options") {
        // The gateway answers `include_usage` itself (from the upstream's usage).
        let mut so = obj(v, "stream_options")?;
        so.remove("include_usage");
        f.rest(&so, "stream_options")?;
    }
    if stream {
        out.push("stream", J::Bool(true));
    }
    drop_noops(&mut o);
    f.rest(&o, "")?;
    Ok(Translated {
        body: out.to_vec(),
        dropped: f.dropped,
    })
}

/// Removes fields whose value asks for nothing (the API's default).
fn drop_noops(o: &mut Obj<'_>) {
    let noop = |k: &str, v: &str| match k {
        "n" => v == "1",
        "frequency_penalty" | "presence_penalty" => v.parse::<f64>() == Ok(0.0),
        "logprobs" | "store" => v == "false",
        _ => false,
    };
    o.retain(|k, v| !noop(k, v.get()));
}

/// The system blocks and the messages.
fn convert_messages<'a>(
    items: Vec<&'a RawValue>,
    f: &mut Fields,
) -> Result<(Vec<J<'a>>, Vec<J<'a>>), Refusal> {
    let mut system = Vec::new();
    // (role, blocks), consecutive same roles merged.
    let mut turns: Vec<(&'static str, Vec<J<'a>>)> = Vec::new();
    for raw in items {
        let mut m = obj(raw, "messages[]")?;
        let role = string(need(&mut m, "role", "messages[].role")?, "messages[].role")?;
        if take(&mut m, "name").is_some() {
            f.unsupported("messages[].name")?;
        }
        let (role, blocks) = match role.as_str() {
            "system" | "developer" => {
                let content = need(&mut m, "content", "messages[].content")?;
                system.extend(text_blocks(content, "messages[].content", f)?);
                f.rest(&m, "messages[]")?;
                continue;
            }
            "user" => {
                let content = need(&mut m, "content", "messages[].content")?;
                ("user", user_blocks(content, f)?)
            }
            "assistant" => ("assistant", assistant_blocks(&mut m, f)?),
            "tool" => {
                let id = need(&mut m, "tool_call_id", "messages[].tool_call_id")?;
                let content = need(&mut m, "content", "messages[].content")?;
                let content = match read::<String>(content, "", "") {
                    Ok(s) => J::S(Cow::Owned(s)),
                    Err(_) => J::A(text_blocks(content, "messages[].content", f)?),
                };
                let block = J::obj([
                    ("type", J::s("tool_result")),
                    ("tool_use_id", J::Raw(id)),
                    ("content", content),
                ]);
                ("user", vec![block])
            }
            _ => {
                return Err(bad(
                    "messages[].role",
                    "must be system, developer, user, assistant or tool",
                ))
            }
        };
        f.rest(&m, "messages[]")?;
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((r, b)) if *r == role => b.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let messages = turns
        .into_iter()
        .map(|(role, blocks)| J::obj([("role", J::s(role)), ("content", J::A(blocks))]))
        .collect();
    Ok((system, messages))
}

/// Text content (a string, or text parts) as text blocks.
fn text_blocks<'a>(content: &'a RawValue, field: &str, f: &mut Fields) -> Result<Vec<J<'a>>, Refusal> {
    if let Ok(s) = read::<String>(content, field, "") {
        return Ok(vec![text_block(s)]);
    }
    let mut blocks = Vec::new();
    for part in arr(content, field)? {
        let mut p = obj(part, field)?;
        let kind = string(
            take(&mut p, "type").ok_or_else(|| bad(field, "a part needs a type"))?,
            field,
        )?;
        if kind != "text" {
            f.unsupported(&format!("{field}[].type={kind}"))?;
            continue;
        }
        let text = string(
            take(&mut p, "text").ok_or_else(|| bad(field, "a text part needs text"))?,
            field,
        )?;
        blocks.push(text_block(text));
        f.rest(&p, &format!("{field}[]"))?;
    }
    Ok(blocks)
}

fn text_block(text: String) -> J<'static> {
    J::obj([("type", J::s("text")), ("text", J::S(Cow::Owned(text)))])
}

fn user_blocks<'a>(content: &'a RawValue, f: &mut Fields) -> Result<Vec<J<'a>>, Refusal> {
    const FIELD: &str = "messages[].content";
    if let Ok(s) = read::<String>(content, FIELD, "") {
        return Ok(vec![text_block(s)]);
    }
    let mut blocks = Vec::new();
    for part in arr(content, FIELD)? {
        let mut p = obj(part, FIELD)?;
        let kind = string(
            take(&mut p, "type").ok_or_else(|| bad(FIELD, "a part needs a type"))?,
            FIELD,
        )?;
        match kind.as_str() {
            "text" => {
                let text = string(
                    take(&mut p, "text").ok_or_else(|| bad(FIELD, "a text part needs text"))?,
                    FIELD,
                )?;
                blocks.push(text_block(text));
            }
            "image_url" => {
                let field = "messages[].content[].image_url";
                let mut iu = obj(need(&mut p, "image_url", field)?, field)?;
                let url = string(need(&mut iu, "url", "messages[].content[].image_url.url")?, field)?;
                if let Some(d) = take(&mut iu, "detail") {
                    if string(d, "messages[].content[].image_url.detail")? != "auto" {
                        f.unsupported("messages[].content[].image_url.detail")?;
                    }
                }
                f.rest(&iu, field)?;
                blocks.push(J::obj([("type", J::s("image")), ("source", source_of(url))]));
            }
            "file" => {
                let field = "messages[].content[].file";
                let mut file = obj(need(&mut p, "file", field)?, field)?;
                file.remove("filename");
                let Some(data) = take(&mut file, "file_data") else {
                    f.unsupported("messages[].content[].file.file_id")?;
                    continue;
                };
                let data = string(data, field)?;
                match data_url(&data) {
                    Some(("application/pdf", b64)) => blocks.push(J::obj([
                        ("type", J::s("document")),
                        (
                            "source",
                            J::obj([
                                ("type", J::s("base64")),
                                ("media_type", J::s("application/pdf")),
                                ("data", J::S(Cow::Owned(b64.to_owned()))),
                            ]),
                        ),
                    ])),
                    _ => f.unsupported("messages[].content[].file.file_data (other than a base64 PDF)")?,
                }
                f.rest(&file, field)?;
            }
            other => {
                f.unsupported(&format!("messages[].content[].type={other}"))?;
                continue;
            }
        }
        f.rest(&p, "messages[].content[]")?;
    }
    Ok(blocks)
}

/// An image source for an OpenAI image URL: a `data:` URL's bytes, or the URL.
fn source_of(url: String) -> J<'static> {
    match data_url(&url) {
        Some((media, b64)) => J::obj([
            ("type", J::s("base64")),
            ("media_type", J::S(Cow::Owned(media.to_owned()))),
            ("data", J::S(Cow::Owned(b64.to_owned()))),
        ]),
        None => J::obj([("type", J::s("url")), ("url", J::S(Cow::Owned(url)))]),
    }
}

fn assistant_blocks<'a>(m: &mut Obj<'a>, f: &mut Fields) -> Result<Vec<J<'a>>, Refusal> {
    let mut blocks = Vec::new();
    if let Some(tb) = take(m, "thinking_blocks") {
        for b in arr(tb, "messages[].thinking_blocks")? {
            let block = obj(b, "messages[].thinking_blocks[]")?;
            let kind = block.get("type").map(|t| t.get());
            if !matches!(kind, Some("\"thinking\"" | "\"redacted_thinking\"")) {
                return Err(bad(
                    "messages[].thinking_blocks[].type",
                    "must be thinking or redacted_thinking",
                ));
            }
            blocks.push(J::Raw(b));
        }
        // The text again, beside the blocks that carry it.
        m.remove("reasoning_content");
    } else if take(m, "reasoning_content").is_some() {
        // Reasoning text without its signature cannot go back to Anthropic;
        // the model does not need it.
        f.hint("messages[].reasoning_content");
    }
    if let Some(content) = take(m, "content") {
        if let Ok(s) = read::<String>(content, "", "") {
            if !s.is_empty() {
                blocks.push(text_block(s));
            }
        } else {
            for part in arr(content, "messages[].content")? {
                let mut p = obj(part, "messages[].content[]")?;
                let kind = take(&mut p, "type").map(|t| t.get());
                let text = match kind {
                    Some("\"text\"") => take(&mut p, "text"),
                    Some("\"refusal\"") => take(&mut p, "refusal"),
                    _ => return Err(bad("messages[].content[].type", "must be text or refusal")),
                };
                let text = text.ok_or_else(|| bad("messages[].content[]", "text required"))?;
                blocks.push(text_block(string(text, "messages[].content[].text")?));
                f.rest(&p, "messages[].content[]")?;
            }
        }
    }
    if let Some(r) = take(m, "refusal") {
        blocks.push(text_block(string(r, "messages[].refusal")?));
    }
    if let Some(calls) = take(m, "tool_calls") {
        for c in arr(calls, "messages[].tool_calls")? {
            let mut c = obj(c, "messages[].tool_calls[]")?;
            let id = need(&mut c, "id", "messages[].tool_calls[].id")?;
            c.remove("type");
            let field = "messages[].tool_calls[].function";
            let mut func = obj(need(&mut c, "function", field)?, field)?;
            let name = need(&mut func, "name", "messages[].tool_calls[].function.name")?;
            let args = match take(&mut func, "arguments") {
                Some(a) => string(a, "messages[].tool_calls[].function.arguments")?,
                None => String::new(),
            };
            let input = if args.trim().is_empty() {
                json::raw_of(&serde_json::Map::new())
            } else {
                match RawValue::from_string(args) {
                    Ok(r) if r.get().trim_start().starts_with('{') => J::RawOwned(r),
                    _ => {
                        return Err(bad(
                            "messages[].tool_calls[].function.arguments",
                            "must be a JSON object to go to an Anthropic upstream",
                        ))
                    }
                }
            };
            f.rest(&func, field)?;
            f.rest(&c, "messages[].tool_calls[]")?;
            blocks.push(J::obj([
                ("type", J::s("tool_use")),
                ("id", J::Raw(id)),
                ("name", J::Raw(name)),
                ("input", input),
            ]));
        }
    }
    Ok(blocks)
}

fn convert_tools<'a>(items: Vec<&'a RawValue>, f: &mut Fields) -> Result<Vec<J<'a>>, Refusal> {
    let mut tools = Vec::new();
    for t in items {
        let mut t = obj(t, "tools[]")?;
        let kind = take(&mut t, "type").map(|k| k.get());
        if kind.is_some_and(|k| k != "\"function\"") {
            f.unsupported("tools[].type")?;
            continue;
        }
        let field = "tools[].function";
        let mut func = obj(need(&mut t, "function", field)?, field)?;
        let name = need(&mut func, "name", "tools[].function.name")?;
        let mut tool = J::obj([("name", J::Raw(name))]);
        if let Some(d) = take(&mut func, "description") {
            tool.push("description", J::Raw(d));
        }
        let schema = match take(&mut func, "parameters") {
            Some(p) => J::Raw(p),
            None => json::raw_of(&serde_json::json!({"type": "object", "properties": {}})),
        };
        tool.push("input_schema", schema);
        if let Some(s) = take(&mut func, "strict") {
            if s.get() == "true" {
                f.unsupported("tools[].function.strict")?;
            }
        }
        f.rest(&func, field)?;
        f.rest(&t, "tools[]")?;
        tools.push(tool);
    }
    Ok(tools)
}

fn convert_tool_choice<'a>(v: &'a RawValue, f: &mut Fields) -> Result<J<'a>, Refusal> {
    if let Ok(s) = read::<String>(v, "", "") {
        let kind = match s.as_str() {
            "none" => "none",
            "auto" => "auto",
            "required" => "any",
            _ => return Err(bad("tool_choice", "must be none, auto, required or a function")),
        };
        return Ok(J::obj([("type", J::s(kind))]));
    }
    let mut c = obj(v, "tool_choice")?;
    match take(&mut c, "type").map(|t| t.get()) {
        Some("\"function\"") => {}
        _ => {
            f.unsupported("tool_choice.type")?;
            return Ok(J::obj([("type", J::s("auto"))]));
        }
    }
    let mut func = obj(
        need(&mut c, "function", "tool_choice.function")?,
        "tool_choice.function",
    )?;
    let name = need(&mut func, "name", "tool_choice.function.name")?;
    f.rest(&func, "tool_choice.function")?;
    f.rest(&c, "tool_choice")?;
    Ok(J::obj([("type", J::s("tool")), ("name", J::Raw(name))]))
}

fn convert_response_format<'a>(v: &'a RawValue, f: &mut Fields) -> Result<Option<J<'a>>, Refusal> {
    let mut rf = obj(v, "response_format")?;
    let kind = string(
        need(&mut rf, "type", "response_format.type")?,
        "response_format.type",
    )?;
    match kind.as_str() {
        "text" => Ok(None),
        "json_schema" => {
            let field = "response_format.json_schema";
            let mut js = obj(need(&mut rf, "json_schema", field)?, field)?;
            let schema = need(&mut js, "schema", "response_format.json_schema.schema")?;
            // The name and description label the schema for OpenAI; `strict`
            // is what Anthropic's structured output always does.
            js.remove("name");
            js.remove("description");
            js.remove("strict");
            f.rest(&js, field)?;
            Ok(Some(J::obj([
                ("type", J::s("json_schema")),
                ("schema", J::Raw(schema)),
            ])))
        }
        _ => {
            f.unsupported(&format!("response_format.type={kind}"))?;
            Ok(None)
        }
    }
}

/// A messages response body, as read.
#[derive(Deserialize)]
struct Message<'a> {
    id: String,
    model: String,
    #[serde(borrow)]
    content: Vec<Block<'a>>,
    stop_reason: Option<String>,
    #[serde(default)]
    usage: AnthropicUsage,
}

/// A content block, as read (each kind uses some of the fields).
#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
}

/// Anthropic's usage fields.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct AnthropicUsage {
    /// Prompt tokens neither read from nor written to the cache.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Prompt tokens read from the cache.
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    /// Prompt tokens written to the cache.
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// OpenAI's usage object for these figures.
    pub fn to_openai(self) -> J<'static> {
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        let prompt = self.input_tokens + cached + self.cache_creation_input_tokens.unwrap_or(0);
        J::obj([
            ("prompt_tokens", J::U(prompt)),
            ("completion_tokens", J::U(self.output_tokens)),
            ("total_tokens", J::U(prompt + self.output_tokens)),
            ("prompt_tokens_details", J::obj([("cached_tokens", J::U(cached))])),
        ])
    }
}

/// OpenAI's `finish_reason` for an Anthropic `stop_reason`.
pub fn finish_reason(stop: &str) -> &'static str {
    match stop {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// Translates a messages response into a chat completion.
pub fn response(body: &[u8], created: u64) -> Option<Vec<u8>> {
    let m: Message<'_> = serde_json::from_slice(body).ok()?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut thinking_blocks = Vec::new();
    let mut calls = Vec::new();
    let raw_blocks: Vec<&RawValue> = {
        #[derive(Deserialize)]
        struct Raw<'a> {
            #[serde(borrow)]
            content: Vec<&'a RawValue>,
        }
        serde_json::from_slice::<Raw<'_>>(body).ok()?.content
    };
    for (b, raw) in m.content.iter().zip(raw_blocks) {
        match b.kind.as_str() {
            "text" => text.push_str(b.text.as_deref().unwrap_or("")),
            "thinking" => {
                reasoning.push_str(b.thinking.as_deref().unwrap_or(""));
                thinking_blocks.push(J::Raw(raw));
            }
            "redacted_thinking" => thinking_blocks.push(J::Raw(raw)),
            "tool_use" => {
                let args = b.input.map_or("{}", |i| i.get());
                calls.push(J::obj([
                    ("id", J::S(Cow::Owned(b.id.clone().unwrap_or_default()))),
                    ("type", J::s("function")),
                    (
                        "function",
                        J::obj([
                            ("name", J::S(Cow::Owned(b.name.clone().unwrap_or_default()))),
                            ("arguments", J::S(Cow::Owned(args.to_owned()))),
                        ]),
                    ),
                ]));
            }
            _ => {}
        }
    }
    let content = if text.is_empty() && !calls.is_empty() {
        J::Null
    } else {
        J::S(Cow::Owned(text))
    };
    let mut message = J::obj([
        ("role", J::s("assistant")),
        ("content", content),
        ("refusal", J::Null),
    ]);
    if !calls.is_empty() {
        message.push("tool_calls", J::A(calls));
    }
    if !thinking_blocks.is_empty() {
        message.push("reasoning_content", J::S(Cow::Owned(reasoning)));
        message.push("thinking_blocks", J::A(thinking_blocks));
    }
    let finish = m
        .stop_reason
        .as_deref()
        .map_or(J::Null, |s| J::s(finish_reason(s)));
    let out = J::obj([
        ("id", J::S(Cow::Owned(m.id))),
        ("object", J::s("chat.completion")),
        ("created", J::U(created)),
        ("model", J::S(Cow::Owned(m.model))),
        (
            "choices",
            J::A(vec![J::obj([
                ("index", J::U(0)),
                ("message", message),
                ("logprobs", J::Null),
                ("finish_reason", finish),
            ])]),
        ),
        ("usage", m.usage.to_openai()),
    ]);
    Some(out.to_vec())
}
