//! The OTLP/HTTP protobuf encoding of finished traces ([`super::proto`]):
//! the spans a [`Trace`] becomes, with the GenAI semantic conventions.
//!
//! Spans of one request: the server span (`{operation} {model}`, kind
//! SERVER, child of the caller's span when it sent `traceparent`), and its
//! children: `admission` (head read → admitted), one CLIENT span per
//! upstream attempt (`{operation} {model}`, its id sent upstream as the
//! parent), and `stream` (the answering attempt's response head → last byte,
//! with a `gen_ai.first_token` event and `gen_ai.response.time_to_first_chunk`).

use super::proto::*;
use super::span::Trace;
use prost::Message;
use sluice_contract::record::ApiRoute;

const KIND_INTERNAL: i32 = 1;
const KIND_SERVER: i32 = 2;
const KIND_CLIENT: i32 = 3;
const STATUS_ERROR: i32 = 2;

fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(v) }),
    }
}

fn s(key: &str, v: &str) -> KeyValue {
    kv(key, Value::StringValue(v.to_owned()))
}

fn i(key: &str, v: u64) -> KeyValue {
    kv(key, Value::IntValue(i64::try_from(v).unwrap_or(i64::MAX)))
}

/// `gen_ai.provider.name` of a provider kind.
pub fn provider(kind: sluice_contract::snapshot::types::ProviderKind) -> &'static str {
    use sluice_contract::snapshot::types::ProviderKind;
    match kind {
        ProviderKind::Openai => "openai",
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::Openrouter => "openrouter",
        // The Gemini API (AI Studio), as the GenAI conventions name it.
        ProviderKind::Gemini => "gcp.gemini",
    }
}

/// `gen_ai.operation.name` of an API.
pub fn operation(route: ApiRoute) -> &'static str {
    match route {
        ApiRoute::ChatCompletions | ApiRoute::Messages | ApiRoute::Responses => "chat",
        ApiRoute::GeminiGenerate | ApiRoute::GeminiStream => "generate_content",
        ApiRoute::Embeddings | ApiRoute::GeminiEmbed | ApiRoute::GeminiBatchEmbed => "embeddings",
        ApiRoute::CountTokens | ApiRoute::GeminiCountTokens => "count_tokens",
        ApiRoute::Models | ApiRoute::Model => "list_models",
        ApiRoute::Health | ApiRoute::Other => "other",
    }
}

/// The request body of one export: `traces` as spans of one resource.
pub fn encode(traces: &[Trace], service: &str) -> Vec<u8> {
    let mut spans = Vec::with_capacity(traces.len() * 4);
    for t in traces {
        push_spans(t, &mut spans);
    }
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![s("service.name", service)],
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "sluice-dataplane".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                }),
                spans,
            }],
        }],
    };
    req.encode_to_vec()
}

fn next_id(seed: &mut u64) -> Vec<u8> {
    let mut x = *seed;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *seed = x;
    x.max(1).to_be_bytes().to_vec()
}

fn push_spans(t: &Trace, out: &mut Vec<Span>) {
    let op = operation(t.route);
    let model = t.request_model.as_deref().unwrap_or("");
    let name = if model.is_empty() {
        op.to_owned()
    } else {
        format!("{op} {model}")
    };
    let trace_id = t.trace_id.to_vec();
    let root = t.root.to_vec();
    let mut ids = t.ids;
    let error_type = t
        .error
        .as_deref()
        .or((t.status >= 400 || t.outcome != "ok").then_some(t.outcome));
    let status = |err: Option<&str>| {
        err.map(|e| Status {
            message: e.to_owned(),
            code: STATUS_ERROR,
        })
    };
    let mut attrs = vec![
        s("gen_ai.operation.name", op),
        i("http.response.status_code", u64::from(t.status)),
        s("sluice.outcome", t.outcome),
        kv("sluice.stream", Value::BoolValue(t.stream)),
    ];
    if !model.is_empty() {
        attrs.push(s("gen_ai.request.model", model));
    }
    if let Some(a) = t.attempts.last() {
        attrs.push(s("gen_ai.provider.name", a.provider));
        attrs.push(s("gen_ai.response.model", &a.model));
        attrs.push(s("server.address", &a.address));
    }
    if let Some(n) = t.input_tokens {
        attrs.push(i("gen_ai.usage.input_tokens", n));
    }
    if let Some(n) = t.output_tokens {
        attrs.push(i("gen_ai.usage.output_tokens", n));
    }
    if let Some(tenant) = &t.tenant {
        attrs.push(s("sluice.tenant", tenant));
    }
    if let Some(e) = error_type {
        attrs.push(s("error.type", e));
    }
    out.push(Span {
        trace_id: trace_id.clone(),
        span_id: root.clone(),
        parent_span_id: t.parent.map(|p| p.to_vec()).unwrap_or_default(),
        name: name.clone(),
        kind: KIND_SERVER,
        start_time_unix_nano: t.start_ns,
        end_time_unix_nano: t.end_ns,
        attributes: attrs,
        events: Vec::new(),
        status: status(error_type),
        flags: 1,
    });
    let first_attempt = t.attempts.first().map(|a| a.start_ns);
    let admitted = t.admitted_ns.or(first_attempt).unwrap_or(t.end_ns);
    out.push(Span {
        trace_id: trace_id.clone(),
        span_id: next_id(&mut ids),
        parent_span_id: root.clone(),
        name: "admission".into(),
        kind: KIND_INTERNAL,
        start_time_unix_nano: t.start_ns,
        end_time_unix_nano: admitted,
        attributes: vec![kv("sluice.admitted", Value::BoolValue(t.admitted_ns.is_some()))],
        events: Vec::new(),
        status: None,
        flags: 1,
    });
    for a in &t.attempts {
        let mut attrs = vec![
            s("gen_ai.operation.name", op),
            s("gen_ai.provider.name", a.provider),
            s("gen_ai.request.model", &a.model),
            s("server.address", &a.address),
            s("sluice.upstream", &a.upstream),
        ];
        if let Some(st) = a.status {
            attrs.push(i("http.response.status_code", u64::from(st)));
        }
        let err = a
            .error
            .as_deref()
            .or(a.status.filter(|&st| st >= 400).map(|_| "http_error"));
        if let Some(e) = err {
            attrs.push(s("error.type", e));
        }
        out.push(Span {
            trace_id: trace_id.clone(),
            span_id: a.span_id.to_vec(),
            parent_span_id: root.clone(),
            name: format!("{op} {}", a.model),
            kind: KIND_CLIENT,
            start_time_unix_nano: a.start_ns,
            end_time_unix_nano: if a.end_ns == 0 { t.end_ns } else { a.end_ns },
            attributes: attrs,
            events: Vec::new(),
            status: status(err),
            flags: 1,
        });
    }
    if let Some(start) = t.stream_start_ns {
        let mut attrs = vec![kv("sluice.stream", Value::BoolValue(t.stream))];
        let mut events = Vec::new();
        if let Some(first) = t.first_event_ns {
            let ttft = first.saturating_sub(t.start_ns) as f64 / 1e9;
            attrs.push(kv(
                "gen_ai.response.time_to_first_chunk",
                Value::DoubleValue(ttft),
            ));
            events.push(Event {
                time_unix_nano: first,
                name: "gen_ai.first_token".into(),
                attributes: Vec::new(),
            });
        }
        if let Some(n) = t.output_tokens {
            attrs.push(i("gen_ai.usage.output_tokens", n));
        }
        out.push(Span {
            trace_id,
            span_id: next_id(&mut ids),
            parent_span_id: root,
            name: "stream".into(),
            kind: KIND_INTERNAL,
            start_time_unix_nano: start,
            end_time_unix_nano: t.end_ns.max(start),
            attributes: attrs,
            events,
            status: None,
            flags: 1,
        });
    }
}
