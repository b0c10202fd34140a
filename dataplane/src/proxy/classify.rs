//! Phase 1, classify: the method and path give the API, and the dialect
//! errors are written in; anything else is a 404 in the caller's shape.

pub mod gemini;

use crate::respond::ErrorKind;
use sluice_contract::codec::head::Method;
use sluice_contract::dialect::Dialect;
use sluice_contract::record::ApiRoute;
use std::borrow::Cow;

/// What a request is, from its method, path and headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Class {
    /// The API it calls.
    pub api: ApiRoute,
    /// The shape its errors are written in.
    pub dialect: Dialect,
    /// Why it is refused already (unknown path, wrong method).
    pub refused: Option<ErrorKind>,
}

/// Classifies a request. `anthropic_hint`: the request carries an
/// Anthropic header (`anthropic-version`, `x-api-key`), so that errors on
/// paths both SDKs use are written in Anthropic's shape; `gemini_hint`
/// likewise for Gemini's (`x-goog-api-key`, or a `/v1beta/` path).
pub fn classify(method: Method, path: &[u8], anthropic_hint: bool, gemini_hint: bool) -> Class {
    let hinted = if gemini_hint || path.starts_with(b"/v1beta/") {
        Dialect::Gemini
    } else if anthropic_hint {
        Dialect::Anthropic
    } else {
        Dialect::OpenAi
    };
    let path = path.strip_suffix(b"/").filter(|p| !p.is_empty()).unwrap_or(path);
    if let Some((api, _)) = gemini::route(path) {
        return Class {
            api,
            dialect: Dialect::Gemini,
            refused: (method != Method::Post).then_some(ErrorKind::MethodNotAllowed),
        };
    }
    if let Some(api) = gemini::listing(path) {
        let get = matches!(method, Method::Get | Method::Head);
        return Class {
            api,
            dialect: Dialect::Gemini,
            refused: (!get).then_some(ErrorKind::MethodNotAllowed),
        };
    }
    // OpenAI's SDKs are given a base URL with or without `/v1`.
    let openai = path.strip_prefix(b"/v1").unwrap_or(path);
    let (api, want, dialect) = match (path, openai) {
        (_, b"/chat/completions") => (ApiRoute::ChatCompletions, Method::Post, Dialect::OpenAi),
        (_, b"/embeddings") => (ApiRoute::Embeddings, Method::Post, Dialect::OpenAi),
        (_, b"/responses") => (ApiRoute::Responses, Method::Post, Dialect::OpenAi),
        (b"/v1/messages", _) => (ApiRoute::Messages, Method::Post, Dialect::Anthropic),
        (b"/v1/messages/count_tokens", _) => (ApiRoute::CountTokens, Method::Post, Dialect::Anthropic),
        (_, b"/models") => (ApiRoute::Models, Method::Get, hinted),
        (_, id) if model_id(id).is_some() => (ApiRoute::Model, Method::Get, hinted),
        (b"/healthz", _) => (ApiRoute::Health, Method::Get, hinted),
        _ => {
            return Class {
                api: ApiRoute::Other,
                dialect: hinted,
                refused: Some(ErrorKind::UnknownPath),
            }
        }
    };
    let wrong = method != want && !(method == Method::Head && want == Method::Get);
    Class {
        api,
        dialect,
        refused: wrong.then_some(ErrorKind::MethodNotAllowed),
    }
}

/// The model id of a `/models/{id}` path (without its `/v1`), still
/// percent-encoded; ids may hold `/` (`openai/gpt-4o`) and `:`
/// (`ft:gpt-4o:org::id`).
pub fn model_id(path: &[u8]) -> Option<&[u8]> {
    path.strip_prefix(b"/models/").filter(|id| !id.is_empty())
}

/// `raw` with its percent-escapes decoded (RFC 3986 §2.1); `None` when an
/// escape is malformed or the result is not UTF-8.
pub fn percent_decoded(raw: &[u8]) -> Option<Cow<'_, str>> {
    if !raw.contains(&b'%') {
        return std::str::from_utf8(raw).ok().map(Cow::Borrowed);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let c = |m, p: &[u8], hint| {
            let c = classify(m, p, hint, false);
            (c.api, c.dialect, c.refused)
        };
        assert_eq!(
            c(Method::Post, b"/v1/chat/completions", true),
            (ApiRoute::ChatCompletions, Dialect::OpenAi, None)
        );
        assert_eq!(
            c(Method::Post, b"/v1/messages", false),
            (ApiRoute::Messages, Dialect::Anthropic, None)
        );
        assert_eq!(
            c(Method::Get, b"/v1/messages", false).2,
            Some(ErrorKind::MethodNotAllowed)
        );
        assert_eq!(
            c(Method::Get, b"/v1/models/", true),
            (ApiRoute::Models, Dialect::Anthropic, None)
        );
        assert_eq!(
            c(Method::Head, b"/healthz", false),
            (ApiRoute::Health, Dialect::OpenAi, None)
        );
        assert_eq!(
            c(Method::Post, b"/v2/x", true),
            (ApiRoute::Other, Dialect::Anthropic, Some(ErrorKind::UnknownPath))
        );
        assert_eq!(
            c(Method::Get, b"/", false),
            (ApiRoute::Other, Dialect::OpenAi, Some(ErrorKind::UnknownPath))
        );
        // A base URL without `/v1`, and the other endpoints.
        assert_eq!(
            c(Method::Post, b"/chat/completions", false),
            (ApiRoute::ChatCompletions, Dialect::OpenAi, None)
        );
        for path in [&b"/v1/responses"[..], b"/responses", b"/responses/"] {
            assert_eq!(
                c(Method::Post, path, true),
                (ApiRoute::Responses, Dialect::OpenAi, None)
            );
        }
        for path in [&b"/v1/embeddings"[..], b"/embeddings", b"/embeddings/"] {
            assert_eq!(
                c(Method::Post, path, true),
                (ApiRoute::Embeddings, Dialect::OpenAi, None)
            );
        }
        assert_eq!(
            c(Method::Post, b"/v1/messages/count_tokens", false),
            (ApiRoute::CountTokens, Dialect::Anthropic, None)
        );
        assert_eq!(
            c(Method::Post, b"/messages", false).2,
            Some(ErrorKind::UnknownPath)
        );
        for path in [
            &b"/v1/models/gpt-4o"[..],
            b"/models/gpt-4o",
            b"/v1/models/openai/gpt-4o",
        ] {
            assert_eq!(
                c(Method::Get, path, true),
                (ApiRoute::Model, Dialect::Anthropic, None)
            );
        }
        assert_eq!(
            c(Method::Other, b"/v1/models/x", false).2,
            Some(ErrorKind::MethodNotAllowed)
        );
        assert_eq!(model_id(b"/models/a/b"), Some(&b"a/b"[..]));
        // Gemini's methods, under `/v1beta/` and `/v1/`; model details stay.
        assert_eq!(
            c(
                Method::Post,
                b"/v1/models/gemini-2.5-flash:generateContent",
                false
            ),
            (ApiRoute::GeminiGenerate, Dialect::Gemini, None)
        );
        assert_eq!(
            c(Method::Get, b"/v1beta/models/g:countTokens", false),
            (
                ApiRoute::GeminiCountTokens,
                Dialect::Gemini,
                Some(ErrorKind::MethodNotAllowed)
            )
        );
        assert_eq!(
            c(Method::Get, b"/v1/models/ft:gpt-4o:org::id", false),
            (ApiRoute::Model, Dialect::OpenAi, None)
        );
        let unknown = classify(Method::Post, b"/v1beta/models/g:predict", false, false);
        assert_eq!((unknown.api, unknown.dialect), (ApiRoute::Other, Dialect::Gemini));
        let hinted = classify(Method::Post, b"/v1/nothing", false, true);
        assert_eq!(hinted.dialect, Dialect::Gemini);
        assert_eq!(model_id(b"/models/"), None);
    }
}
