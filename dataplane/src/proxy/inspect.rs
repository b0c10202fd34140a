//! Reads only what the gateway needs from a request body; everything else
//! passes through untouched, so new provider parameters keep working.

use crate::record::ApiRoute;
use crate::respond::ErrorKind;
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::borrow::Cow;

/// What the gateway learned from a request body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    /// Model asked for.
    pub model: String,
    /// Whether a stream was asked for.
    pub stream: bool,
    /// OpenAI: `stream_options.include_usage` was set by the client.
    pub include_usage: bool,
    /// `max_tokens` (or OpenAI's `max_completion_tokens`).
    pub max_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    stream: Option<bool>,
    messages: Option<IgnoredAny>,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// Inspects the body of a chat completions or messages request.
pub fn inspect(body: &[u8], api: ApiRoute) -> Result<RequestInfo, (ErrorKind, Option<&'static str>)> {
    let probe: Probe<'_> = match serde_json::from_slice(body) {
        Ok(p) => p,
        Err(e) if e.is_data() => return Err((ErrorKind::InvalidField, Some(field_hint(&e)))),
        Err(_) => return Err((ErrorKind::InvalidJson, None)),
    };
    let model = match probe.model {
        Some(m) if !m.is_empty() => m.into_owned(),
        _ => return Err((ErrorKind::MissingModel, None)),
    };
    if probe.messages.is_none() {
        return Err((ErrorKind::MissingMessages, None));
    }
    let max_tokens = probe.max_tokens.or(probe.max_completion_tokens);
    if api == ApiRoute::Messages && max_tokens.is_none() {
        return Err((ErrorKind::InvalidField, Some("max_tokens: field required")));
    }
    Ok(RequestInfo {
        model,
        stream: probe.stream.unwrap_or(false),
        include_usage: probe
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        max_tokens,
    })
}

fn field_hint(e: &serde_json::Error) -> &'static str {
    // serde's message names the offending type, not the field: say which
    // fields the gateway reads so the caller can find it.
    let text = e.to_string();
    if text.contains("expected a boolean") {
        "stream must be a boolean"
    } else if text.contains("expected u64") {
        "max_tokens must be a non-negative integer"
    } else if text.contains("expected a borrowed string") || text.contains("expected a string") {
        "model must be a string"
    } else if text.contains("expected struct") || text.contains("expected a map") {
        "the body and stream_options must be JSON objects"
    } else {
        "a request field has the wrong type"
    }
}

/// The body to send upstream: `model` replaced for route aliases whose
/// upstream name differs, and `stream_options.include_usage` set when
/// `ask_usage`. `None`: the body is to be sent unchanged.
///
/// The common case — asking for usage when the client sent no
/// `stream_options` — is a splice after the opening brace, not a re-encoding.
pub fn rewrite(body: &[u8], model: Option<&str>, ask_usage: bool) -> Option<Vec<u8>> {
    if model.is_none() && !ask_usage {
        return None;
    }
    let brace = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .filter(|&i| body[i] == b'{')?;
    if model.is_none() && memchr::memmem::find(body, b"\"stream_options\"").is_none() {
        const FIELD: &[u8] = b"\"stream_options\":{\"include_usage\":true}";
        let rest = &body[brace + 1..];
        let empty = rest.iter().all(|b| b.is_ascii_whitespace() || *b == b'}');
        let mut out = Vec::with_capacity(body.len() + FIELD.len() + 1);
        out.extend_from_slice(&body[..=brace]);
        out.extend_from_slice(FIELD);
        if !empty {
            out.push(b',');
        }
        out.extend_from_slice(rest);
        return Some(out);
    }
    let mut value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let obj = value.as_object_mut()?;
    if let Some(model) = model {
        obj.insert("model".into(), serde_json::Value::String(model.into()));
    }
    if ask_usage {
        let options = obj
            .entry("stream_options")
            .or_insert_with(|| serde_json::json!({}));
        if !options.is_object() {
            *options = serde_json::json!({});
        }
        if let Some(o) = options.as_object_mut() {
            o.insert("include_usage".into(), serde_json::Value::Bool(true));
        }
    }
    serde_json::to_vec(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_needs() {
        let b = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true},"temperature":0.2,"future_param":{"x":1}}"#;
        let info = inspect(b, ApiRoute::ChatCompletions).unwrap();
        assert_eq!(info.model, "gpt-4o");
        assert!(info.stream && info.include_usage);
        let escaped = br#"{"model":"gpt\u002d4o","messages":[]}"#;
        assert_eq!(
            inspect(escaped, ApiRoute::ChatCompletions).unwrap().model,
            "gpt-4o"
        );
    }

    #[test]
    fn bad_bodies() {
        let cases: &[(&[u8], ErrorKind)] = &[
            (b"", ErrorKind::InvalidJson),
            (b"{", ErrorKind::InvalidJson),
            (b"[1,2]", ErrorKind::InvalidField),
            (b"{\"messages\":[]}", ErrorKind::MissingModel),
            (b"{\"model\":\"\",\"messages\":[]}", ErrorKind::MissingModel),
            (b"{\"model\":\"m\"}", ErrorKind::MissingMessages),
            (b"{\"model\":\"m\",\"messages\":null}", ErrorKind::MissingMessages),
            (b"{\"model\":7,\"messages\":[]}", ErrorKind::InvalidField),
            (
                b"{\"model\":\"m\",\"messages\":[],\"stream\":\"yes\"}",
                ErrorKind::InvalidField,
            ),
            (
                b"{\"model\":\"m\",\"messages\":[]} trailing",
                ErrorKind::InvalidJson,
            ),
            (b"\xff\xfe", ErrorKind::InvalidJson),
        ];
        for (body, kind) in cases {
            assert_eq!(
                inspect(body, ApiRoute::ChatCompletions).unwrap_err().0,
                *kind,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let anthropic = br#"{"model":"claude","messages":[]}"#;
        assert_eq!(
            inspect(anthropic, ApiRoute::Messages).unwrap_err().0,
            ErrorKind::InvalidField
        );
    }

    #[test]
    fn model_rewrite_keeps_other_fields() {
        let out = rewrite(
            br#"{"model":"alias","messages":[1],"x":{"y":true}}"#,
            Some("real"),
            false,
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], "real");
        assert_eq!(v["x"]["y"], true);
        assert_eq!(v["messages"][0], 1);
        assert_eq!(rewrite(b"{}", None, false), None);
    }

    #[test]
    fn asking_for_usage() {
        let check = |body: &[u8]| {
            let out = rewrite(body, None, true).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(
                v["stream_options"]["include_usage"],
                true,
                "{}",
                String::from_utf8_lossy(&out)
            );
            v
        };
        let v = check(br#"  {"model":"m","messages":[],"stream":true}"#);
        assert_eq!(v["model"], "m");
        check(b"{}");
        check(b"{ }");
        let v = check(br#"{"model":"m","stream_options":{"include_usage":false,"other":1}}"#);
        assert_eq!(v["stream_options"]["other"], 1);
        check(br#"{"model":"m","stream_options":null}"#);
        let v = check(br#"{"model":"a","stream":true}"#);
        assert_eq!(v["stream"], true);
        assert_eq!(rewrite(b"[1]", None, true), None);
    }
}
