//! Phase 1, classify: the method and path give the API, and the dialect
//! errors are written in; anything else is a 404 in the caller's shape.

use crate::respond::ErrorKind;
use sluice_contract::codec::head::Method;
use sluice_contract::dialect::Dialect;
use sluice_contract::record::ApiRoute;

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
/// paths both SDKs use are written in Anthropic's shape.
pub fn classify(method: Method, path: &[u8], anthropic_hint: bool) -> Class {
    let hinted = if anthropic_hint {
        Dialect::Anthropic
    } else {
        Dialect::OpenAi
    };
    let path = path.strip_suffix(b"/").filter(|p| !p.is_empty()).unwrap_or(path);
    let (api, want, dialect) = match path {
        b"/v1/chat/completions" | b"/chat/completions" => {
            (ApiRoute::ChatCompletions, Method::Post, Dialect::OpenAi)
        }
        b"/v1/messages" => (ApiRoute::Messages, Method::Post, Dialect::Anthropic),
        b"/v1/models" | b"/models" => (ApiRoute::Models, Method::Get, hinted),
        b"/healthz" => (ApiRoute::Health, Method::Get, hinted),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let c = |m, p: &[u8], hint| {
            let c = classify(m, p, hint);
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
    }
}
