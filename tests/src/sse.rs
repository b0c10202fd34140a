//! Server-Sent Events as a client reads them, and the completion text and
//! usage the OpenAI and Anthropic streams carry.

use serde_json::Value;

/// One event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field, if any.
    pub name: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

impl Event {
    /// The data as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.data).ok()
    }
}

/// Parses a whole SSE body (LF, CRLF or CR line ends; comments ignored).
/// Panics if the body is not UTF-8: a stream must never be corrupted.
pub fn parse(body: &[u8]) -> Vec<Event> {
    let text = std::str::from_utf8(body)
        .unwrap_or_else(|e| panic!("SSE body is not UTF-8 ({e}): {:?}", String::from_utf8_lossy(body)));
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut events = Vec::new();
    let mut name = None;
    let mut data: Option<String> = None;
    for line in text.split('\n') {
        if line.is_empty() {
            if let Some(d) = data.take() {
                events.push(Event {
                    name: name.take(),
                    data: d,
                });
            }
            name = None;
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => name = Some(value.to_owned()),
            "data" => match data.as_mut() {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_owned()),
            },
            _ => {}
        }
    }
    events
}

/// The text of an OpenAI chat completion stream (`choices[0].delta.content`).
pub fn openai_text(events: &[Event]) -> String {
    let mut out = String::new();
    for e in events {
        if let Some(v) = e.json() {
            if let Some(s) = v["choices"][0]["delta"]["content"].as_str() {
                out.push_str(s);
            }
        }
    }
    out
}

/// `(prompt_tokens, completion_tokens)` of the last usage chunk of an
/// OpenAI stream, if one was sent.
pub fn openai_usage(events: &[Event]) -> Option<(u64, u64)> {
    events
        .iter()
        .filter_map(Event::json)
        .rfind(|v| v["usage"].is_object())
        .map(|v| {
            (
                v["usage"]["prompt_tokens"].as_u64().unwrap_or(0),
                v["usage"]["completion_tokens"].as_u64().unwrap_or(0),
            )
        })
}

/// Whether the stream ends with `data: [DONE]`.
pub fn openai_done(events: &[Event]) -> bool {
    events.last().is_some_and(|e| e.data == "[DONE]")
}

/// The text of an Anthropic messages stream (`content_block_delta` text).
pub fn anthropic_text(events: &[Event]) -> String {
    let mut out = String::new();
    for e in events {
        if let Some(v) = e.json() {
            if v["type"] == "content_block_delta" {
                if let Some(s) = v["delta"]["text"].as_str() {
                    out.push_str(s);
                }
            }
        }
    }
    out
}

/// `(input_tokens, output_tokens)` as an Anthropic stream reports them
/// (`message_start` for input, the last `message_delta` for output).
pub fn anthropic_usage(events: &[Event]) -> Option<(u64, u64)> {
    let mut input = None;
    let mut output = None;
    for v in events.iter().filter_map(Event::json) {
        match v["type"].as_str() {
            Some("message_start") => input = v["message"]["usage"]["input_tokens"].as_u64(),
            Some("message_delta") => output = v["usage"]["output_tokens"].as_u64().or(output),
            _ => {}
        }
    }
    Some((input?, output?))
}

/// Whether the stream ends with the `message_stop` event.
pub fn anthropic_done(events: &[Event]) -> bool {
    events
        .last()
        .is_some_and(|e| e.name.as_deref() == Some("message_stop"))
}
