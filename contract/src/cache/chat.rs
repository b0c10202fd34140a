//! OpenAI chat completions as the cache stores and serves them.
//!
//! A non-streamed fill is kept as the provider's JSON body; a streamed fill
//! as its events ([`Events`]: each event's data, when it came relative to
//! the first, and whether it is the usage-only chunk). The other form is
//! made once, when the entry is filled: [`events_to_json`] joins the deltas
//! into one message, [`json_to_events`] splits a message into the chunks
//! OpenAI sends (role, content, finish, usage, `[DONE]`). A streamed hit
//! replays the events one by one, the usage-only chunk left out unless the
//! client asked for it.
//!
//! Only what converts faithfully is converted: one choice, text content,
//! no tool calls, no function call, no refusal, no logprobs. Anything else
//! (tool calls included) is served only in the form it was filled in; a
//! request in the other form misses, and its own fill replaces the entry.

use crate::codec::sse::{SseEvent, SseFramer};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

/// Largest event kept by a streamed fill.
const MAX_EVENT: usize = 1 << 20;

/// One stored event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    /// Where its data ends in [`Events::data`] (it starts where the one
    /// before ends).
    pub end: u32,
    /// When it arrived, ms after the first byte of the body.
    pub at_ms: u32,
    /// The chunk OpenAI sends last with `stream_options.include_usage`:
    /// no choices, only usage.
    pub usage_only: bool,
}

/// A stream's events, as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Events {
    /// Every event's data, one after another.
    pub data: Vec<u8>,
    /// The events, in order.
    pub events: Vec<StoredEvent>,
}

impl Events {
    /// Each event's data with its [`StoredEvent`].
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], StoredEvent)> + '_ {
        let mut start = 0usize;
        self.events.iter().map(move |e| {
            let end = e.end as usize;
            let d = self.data.get(start..end).unwrap_or_default();
            start = end;
            (d, *e)
        })
    }

    /// Bytes held.
    pub fn weight(&self) -> usize {
        self.data.len() + self.events.len() * std::mem::size_of::<StoredEvent>()
    }

    fn push(&mut self, data: &[u8], at_ms: u32) {
        self.data.extend_from_slice(data);
        self.events.push(StoredEvent {
            end: self.data.len() as u32,
            at_ms,
            usage_only: is_usage_only(data),
        });
    }

    /// Writes event `data` as an SSE event (`data:` lines, blank line).
    pub fn write_event(data: &[u8], out: &mut Vec<u8>) {
        for line in data.split(|&b| b == b'\n') {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        out.push(b'\n');
    }
}

/// Collects a stream's events as its body passes (a streamed fill).
#[derive(Debug)]
pub struct EventsBuilder {
    framer: SseFramer,
    events: Events,
    limit: usize,
    over: bool,
}

impl EventsBuilder {
    /// A builder that gives up past `limit` bytes of event data.
    pub fn new(limit: usize) -> EventsBuilder {
        EventsBuilder {
            framer: SseFramer::new(MAX_EVENT),
            events: Events::default(),
            limit,
            over: false,
        }
    }

    /// Feeds decoded body bytes that arrived `at_ms` after the first.
    pub fn push(&mut self, piece: &[u8], at_ms: u32) {
        if self.over {
            return;
        }
        let EventsBuilder {
            framer,
            events,
            limit,
            over,
        } = self;
        framer.feed(piece, |ev: &SseEvent<'_>| {
            if !ev.event.is_empty() || events.data.len() + ev.data.len() > *limit {
                // Chat completions send unnamed events only.
                *over = true;
                return;
            }
            events.push(ev.data, at_ms);
        });
        if self.framer.oversized() > 0 {
            self.over = true;
        }
    }

    /// The events, unless the stream was too large, named its events, or
    /// ended mid-event.
    pub fn finish(self) -> Option<Events> {
        (!self.over && !self.framer.has_pending() && !self.events.events.is_empty()).then_some(self.events)
    }
}

/// Whether event `data` is the usage-only chunk (`"choices": []` and a
/// usage). Read only when both appear in it (OpenAI sends `"usage":null`
/// in every chunk of a stream that asked for usage).
pub fn is_usage_only(data: &[u8]) -> bool {
    if memchr::memmem::find(data, b"\"usage\"").is_none() || memchr::memmem::find(data, b"[]").is_none() {
        return false;
    }
    match serde_json::from_slice::<Chunk<'_>>(data) {
        Ok(c) => c.choices.is_some_and(|v| v.is_empty()) && c.usage.is_some(),
        Err(_) => false,
    }
}

fn non_null(m: &Map<String, Value>, k: &str) -> bool {
    m.get(k).is_some_and(|v| !v.is_null())
}

/// The fields of a chunk or completion kept as they are.
const KEPT: [&str; 5] = ["id", "created", "model", "system_fingerprint", "service_tier"];

/// One chunk as read for joining (borrowed; `null` reads as `None`).
#[derive(serde::Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    created: Option<&'a RawValue>,
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    system_fingerprint: Option<&'a RawValue>,
    #[serde(borrow, default)]
    service_tier: Option<&'a RawValue>,
    #[serde(borrow, default)]
    choices: Option<Vec<ChoiceDelta<'a>>>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
}

#[derive(serde::Deserialize)]
struct ChoiceDelta<'a> {
    #[serde(default)]
    index: u64,
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<&'a RawValue>,
    #[serde(borrow, default)]
    logprobs: Option<&'a RawValue>,
}

#[derive(serde::Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    content: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<&'a RawValue>,
    #[serde(borrow, default)]
    function_call: Option<&'a RawValue>,
    #[serde(borrow, default)]
    refusal: Option<&'a RawValue>,
}

fn value(raw: &RawValue) -> Option<Value> {
    serde_json::from_str(raw.get()).ok()
}

/// The non-streamed body a stream of `events` stands for; `None` when it
/// does not convert faithfully (see the module docs).
pub fn events_to_json(events: &Events) -> Option<Vec<u8>> {
    let mut head: Option<Map<String, Value>> = None;
    let mut text = String::new();
    let mut finish: Option<Value> = None;
    let mut usage: Option<Value> = None;
    for (data, _) in events.iter() {
        if data == b"[DONE]" {
            break;
        }
        let chunk: Chunk<'_> = serde_json::from_slice(data).ok()?;
        if head.is_none() {
            let mut h = Map::new();
            let kept = [
                chunk.id,
                chunk.created,
                chunk.model,
                chunk.system_fingerprint,
                chunk.service_tier,
            ];
            for (k, v) in KEPT.iter().zip(kept) {
                if let Some(v) = v {
                    h.insert((*k).into(), value(v)?);
                }
            }
            head = Some(h);
        }
        if let Some(u) = chunk.usage {
            usage = Some(value(u)?);
        }
        for c in chunk.choices? {
            if c.index != 0 || c.logprobs.is_some() {
                return None;
            }
            if let Some(d) = c.delta {
                if d.tool_calls.is_some() || d.function_call.is_some() || d.refusal.is_some() {
                    return None;
                }
                if let Some(t) = d.content {
                    text.push_str(&t);
                }
            }
            if let Some(f) = c.finish_reason {
                finish = Some(value(f)?);
            }
        }
    }
    let mut body = head?;
    body.insert("object".into(), Value::from("chat.completion"));
    body.insert(
        "choices".into(),
        json!([{
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": null},
            "logprobs": null,
            "finish_reason": finish?,
        }]),
    );
    if let Some(u) = usage {
        body.insert("usage".into(), u);
    }
    serde_json::to_vec(&Value::Object(body)).ok()
}

/// The stream a non-streamed `json` body stands for: role, content and
/// finish chunks, the usage chunk (marked usage-only), `[DONE]`, all at
/// 0 ms; `None` when it does not convert faithfully.
pub fn json_to_events(json: &[u8]) -> Option<Events> {
    let Value::Object(body) = serde_json::from_slice::<Value>(json).ok()? else {
        return None;
    };
    let Some(Value::Array(choices)) = body.get("choices") else {
        return None;
    };
    let [choice] = choices.as_slice() else {
        return None;
    };
    let c = choice.as_object()?;
    if non_null(c, "logprobs") {
        return None;
    }
    let m = c.get("message")?.as_object()?;
    if ["tool_calls", "function_call", "refusal", "audio"]
        .iter()
        .any(|k| non_null(m, k))
    {
        return None;
    }
    let text = match m.get("content") {
        Some(Value::String(s)) => s.as_str(),
        None | Some(Value::Null) => "",
        Some(_) => return None,
    };
    let finish = c.get("finish_reason").filter(|f| !f.is_null())?.clone();
    let mut head = Map::new();
    for k in KEPT {
        if let Some(v) = body.get(k) {
            head.insert(k.into(), v.clone());
        }
    }
    head.insert("object".into(), Value::from("chat.completion.chunk"));
    let chunk = |choices: Value, usage: Option<&Value>| {
        let mut h = head.clone();
        h.insert("choices".into(), choices);
        if let Some(u) = usage {
            h.insert("usage".into(), u.clone());
        }
        serde_json::to_vec(&Value::Object(h)).unwrap_or_default()
    };
    let mut ev = Events::default();
    let delta = |d: Value, f: Value| json!([{"index": 0, "delta": d, "logprobs": null, "finish_reason": f}]);
    ev.push(
        &chunk(
            delta(json!({"role": "assistant", "content": ""}), Value::Null),
            None,
        ),
        0,
    );
    if !text.is_empty() {
        ev.push(&chunk(delta(json!({"content": text}), Value::Null), None), 0);
    }
    ev.push(&chunk(delta(json!({}), finish), None), 0);
    if let Some(u) = body.get("usage").filter(|u| !u.is_null()) {
        ev.push(&chunk(json!([]), Some(u)), 0);
    }
    ev.push(b"[DONE]", 0);
    Some(ev)
}

#[cfg(test)]
mod tests;
