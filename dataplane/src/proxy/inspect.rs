//! What forwarding needs from a request body, taken from the one reading
//! of it ([`crate::policy::extract`], which the policy and the meter use
//! too); everything else passes through untouched, so new provider
//! parameters keep working.

use crate::policy::{ExtractError, RequestView};
use crate::record::ApiRoute;
use crate::respond::ErrorKind;

/// What the gateway learned from a request body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestInfo {
    /// Model asked for.
    pub model: String,
    /// Whether a stream was asked for.
    pub stream: bool,
    /// OpenAI: `stream_options.include_usage` was set by the client.
    pub include_usage: bool,
    /// `max_tokens` (OpenAI: the larger of it and `max_completion_tokens`).
    pub max_tokens: Option<u64>,
}

/// Checks a chat completions or messages body as read, and keeps what
/// forwarding needs.
pub fn inspect(view: &RequestView<'_>, api: ApiRoute) -> Result<RequestInfo, (ErrorKind, Option<String>)> {
    if api == ApiRoute::Messages && view.max_tokens.is_none() {
        return Err((ErrorKind::InvalidField, Some("max_tokens: field required".into())));
    }
    Ok(RequestInfo {
        model: view.model.clone(),
        stream: view.stream,
        include_usage: view.include_usage,
        max_tokens: view.max_tokens,
    })
}

/// The refusal for a body that could not be read.
pub fn refusal(e: ExtractError) -> (ErrorKind, Option<String>) {
    match e {
        ExtractError::NotJson => (ErrorKind::InvalidJson, None),
        ExtractError::NotObject => (
            ErrorKind::InvalidField,
            Some("the request body must be a JSON object".into()),
        ),
        ExtractError::MissingModel => (ErrorKind::MissingModel, None),
        ExtractError::MissingMessages => (ErrorKind::MissingMessages, None),
        ExtractError::BadField(field) => {
            let hint = match field {
                "model" => "model must be a string".into(),
                "stream" => "stream must be a boolean".into(),
                "max_tokens" | "max_completion_tokens" => format!("{field} must be a non-negative integer"),
                _ => e.to_string(),
            };
            (ErrorKind::InvalidField, Some(hint))
        }
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
    use crate::policy::{extract, Api};

    fn check(body: &[u8], route: ApiRoute) -> Result<RequestInfo, (ErrorKind, Option<String>)> {
        let api = match route {
            ApiRoute::Messages => Api::Anthropic,
            _ => Api::OpenAi,
        };
        let view = extract(api, body).map_err(refusal)?;
        inspect(&view, route)
    }

    #[test]
    fn reads_what_it_needs() {
        let b = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true},"temperature":0.2,"future_param":{"x":1}}"#;
        let info = check(b, ApiRoute::ChatCompletions).unwrap();
        assert_eq!(info.model, "gpt-4o");
        assert!(info.stream && info.include_usage);
        let escaped = br#"{"model":"gpt\u002d4o","messages":[]}"#;
        assert_eq!(check(escaped, ApiRoute::ChatCompletions).unwrap().model, "gpt-4o");
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
                check(body, ApiRoute::ChatCompletions).unwrap_err().0,
                *kind,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let (kind, hint) = check(
            br#"{"model":"m","messages":[],"stream":1}"#,
            ApiRoute::ChatCompletions,
        )
        .unwrap_err();
        assert_eq!(
            (kind, hint.as_deref()),
            (ErrorKind::InvalidField, Some("stream must be a boolean"))
        );
        let anthropic = br#"{"model":"claude","messages":[]}"#;
        assert_eq!(
            check(anthropic, ApiRoute::Messages).unwrap_err(),
            (ErrorKind::InvalidField, Some("max_tokens: field required".into()))
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
