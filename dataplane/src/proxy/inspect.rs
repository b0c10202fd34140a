//! Phase 3, read body: what forwarding needs from a request body, taken
//! from the one reading of it ([`sluice_contract::policy::extract`], which
//! the policy and the meter use too); everything else passes through
//! untouched, so new provider parameters keep working.

use crate::io::client::BodyError;
use crate::respond::{ErrorKind, Reject};
use bytes::Bytes;
use sluice_contract::codec::encoding::{self, DecodeError};
use sluice_contract::policy::extract::TopKeys;
use sluice_contract::policy::{ExtractError, RequestView};
use sluice_contract::record::{ApiRoute, Outcome, Record};

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
    /// The top-level keys the gateway reads or writes that the body has:
    /// what the body rewrite decides from.
    pub keys: TopKeys,
}

/// Checks a chat completions or messages body as read, and keeps what
/// forwarding needs.
pub fn inspect(view: &RequestView<'_>, api: ApiRoute) -> Result<RequestInfo, Reject> {
    if api == ApiRoute::Messages && view.max_tokens.is_none() {
        return Err(Reject::with(
            ErrorKind::InvalidField,
            "max_tokens: field required",
        ));
    }
    Ok(RequestInfo {
        model: view.model.clone(),
        // Gemini streams by method, not by a body field.
        stream: view.stream || api == ApiRoute::GeminiStream,
        include_usage: view.include_usage,
        max_tokens: view.max_tokens,
        keys: view.keys,
    })
}

/// `body` with its `Content-Encoding` (`coding`, the header's value) undone
/// within `limit` bytes: unknown codings are refused with 415, a body that
/// decodes past the limit (a decompression bomb) with 413, bytes that are
/// not what they claim with 400.
pub fn decoded(coding: &[u8], body: &Bytes, limit: usize) -> Result<Bytes, Reject> {
    let refuse = |e: DecodeError| match e {
        DecodeError::Unsupported => Reject::from(ErrorKind::UnsupportedEncoding),
        DecodeError::TooLarge => Reject::from(ErrorKind::BodyTooLarge),
        DecodeError::Corrupt => Reject::with(
            ErrorKind::BadRequest,
            "the body does not decode as its Content-Encoding says",
        ),
    };
    let codings = encoding::codings(coding).map_err(refuse)?;
    if codings.is_empty() {
        return Ok(body.clone());
    }
    encoding::decode(body, &codings, limit)
        .map(Bytes::from)
        .map_err(refuse)
}

/// The refusal for a body that could not be received; a client that left
/// midway is recorded as such.
pub fn body_refusal(e: BodyError, record: &mut Record) -> Reject {
    match e {
        BodyError::TooLarge => ErrorKind::BodyTooLarge.into(),
        BodyError::BadChunked => Reject::with(ErrorKind::BadRequest, "invalid chunked body"),
        BodyError::Timeout => ErrorKind::RequestTimeout.into(),
        BodyError::Closed => {
            record.outcome = Outcome::Cancelled;
            ErrorKind::BadRequest.into()
        }
    }
}

/// The refusal for a body that could not be read.
pub fn refusal(e: ExtractError) -> Reject {
    match e {
        ExtractError::NotJson => ErrorKind::InvalidJson.into(),
        ExtractError::NotObject => {
            Reject::with(ErrorKind::InvalidField, "the request body must be a JSON object")
        }
        ExtractError::MissingModel => ErrorKind::MissingModel.into(),
        ExtractError::MissingMessages => ErrorKind::MissingMessages.into(),
        ExtractError::MissingInput => Reject::with(ErrorKind::InvalidField, "input: field required"),
        ExtractError::MissingContents => Reject::with(ErrorKind::InvalidField, "contents is not specified"),
        ExtractError::TooDeep | ExtractError::ModelTooLong => {
            Reject::with(ErrorKind::InvalidField, e.to_string())
        }
        ExtractError::BadField(field) => {
            let hint = match field {
                "model" => "model must be a string".into(),
                "stream" => "stream must be a boolean".into(),
                "max_tokens" | "max_completion_tokens" => format!("{field} must be a non-negative integer"),
                _ => e.to_string(),
            };
            Reject::with(ErrorKind::InvalidField, hint)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_contract::dialect::Dialect;
    use sluice_contract::policy::extract;

    fn check(body: &[u8], route: ApiRoute) -> Result<RequestInfo, (ErrorKind, Option<String>)> {
        let api = match route {
            ApiRoute::Messages => Dialect::Anthropic,
            _ => Dialect::OpenAi,
        };
        let refused = |r: Reject| (r.kind, r.detail);
        let view = extract(api, body).map_err(refusal).map_err(refused)?;
        inspect(&view, route).map_err(refused)
    }

    #[test]
    fn a_body_that_never_came_whole() {
        let mut record = Record::new(0, ApiRoute::ChatCompletions);
        assert_eq!(
            body_refusal(BodyError::TooLarge, &mut record).kind,
            ErrorKind::BodyTooLarge
        );
        assert_eq!(
            body_refusal(BodyError::Timeout, &mut record).kind,
            ErrorKind::RequestTimeout
        );
        assert_eq!(record.outcome, Outcome::Ok);
        assert_eq!(
            body_refusal(BodyError::Closed, &mut record).kind,
            ErrorKind::BadRequest
        );
        assert_eq!(
            record.outcome,
            Outcome::Cancelled,
            "a client that left is not a refusal"
        );
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
            (
                br#"{"model":"m","messages":[],"stream_options":{},"stream\u005foptions":{}}"#,
                ErrorKind::InvalidField,
            ),
            (
                br#"{"model":"m","messages":[],"n":1,"n":2}"#,
                ErrorKind::InvalidField,
            ),
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
}
