//! Gemini's paths: `/{version}/models/{model}:{method}`, the version
//! `v1beta` (the SDK's default), `v1` or `v1alpha`. The `google-genai` SDK
//! given a base URL calls `/v1beta/models/…` or `/v1/models/…` by its
//! `api_version`; `/v1/models/{id}` without a Gemini method stays OpenAI's
//! model detail (OpenAI ids may hold `:` too: `ft:gpt-4o:org::id`).

use sluice_contract::record::ApiRoute;

/// The Gemini method and the model (still percent-encoded) a path names.
pub fn route(path: &[u8]) -> Option<(ApiRoute, &[u8])> {
    let rest = [&b"/v1beta/models/"[..], b"/v1/models/", b"/v1alpha/models/"]
        .iter()
        .find_map(|p| path.strip_prefix(*p))?;
    let colon = memchr::memrchr(b':', rest)?;
    let (model, method) = (&rest[..colon], &rest[colon + 1..]);
    let api = ApiRoute::of_gemini_method(method)?;
    (!model.is_empty()).then_some((api, model))
}

/// Gemini's own model list and detail, `GET /v1beta/models` and
/// `GET /v1beta/models/{model}` (also `v1alpha`). Under `/v1/` the same
/// paths are OpenAI's, answered in Gemini's shape only to a Gemini caller
/// (see the classifier's hint).
pub fn listing(path: &[u8]) -> Option<ApiRoute> {
    let rest = [&b"/v1beta/models"[..], b"/v1alpha/models"]
        .iter()
        .find_map(|p| path.strip_prefix(*p))?;
    match rest {
        b"" => Some(ApiRoute::Models),
        // A `:` names a method (an unknown one: known ones are routed
        // above); Gemini's model names have none.
        [b'/', id @ ..] if !id.is_empty() && !id.contains(&b':') => Some(ApiRoute::Model),
        _ => None,
    }
}

/// The model (still percent-encoded) of a Gemini model-detail path, under
/// any of its versions.
pub fn listed_model(path: &[u8]) -> Option<&[u8]> {
    [&b"/v1beta/models/"[..], b"/v1alpha/models/", b"/v1/models/"]
        .iter()
        .find_map(|p| path.strip_prefix(*p))
        .filter(|id| !id.is_empty())
}

/// The model a Gemini request's path names, decoded: percent-escapes
/// undone, a `models/` prefix dropped (the SDK sends a bare name, REST
/// callers may repeat it); `None` when it is not UTF-8 or holds bytes no
/// model name has (controls, `/`, `?`, `#`, spaces), which are refused.
pub fn model(path: &[u8]) -> Option<String> {
    let (_, raw) = route(path)?;
    let name = super::percent_decoded(raw)?;
    let name = name.strip_prefix("models/").unwrap_or(&name).to_owned();
    let fine = |c: char| !c.is_control() && !matches!(c, '/' | '?' | '#' | ' ' | '\\' | '%');
    (!name.is_empty() && name.chars().all(fine)).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            route(b"/v1beta/models/gemini-2.5-flash:generateContent"),
            Some((ApiRoute::GeminiGenerate, &b"gemini-2.5-flash"[..]))
        );
        assert_eq!(
            route(b"/v1/models/gemini-2.5-flash:streamGenerateContent").map(|r| r.0),
            Some(ApiRoute::GeminiStream)
        );
        assert_eq!(
            route(b"/v1beta/models/text-embedding-004:batchEmbedContents").map(|r| r.0),
            Some(ApiRoute::GeminiBatchEmbed)
        );
        assert_eq!(route(b"/v1/models/ft:gpt-4o:org::id"), None);
        assert_eq!(route(b"/v1/models/gpt-4o"), None);
        assert_eq!(route(b"/v1beta/models/:generateContent"), None);
        assert_eq!(route(b"/v2/models/m:generateContent"), None);
        assert_eq!(
            model(b"/v1beta/models/gemini%2D2.5:countTokens").as_deref(),
            Some("gemini-2.5")
        );
        assert_eq!(
            model(b"/v1beta/models/models/g:countTokens").as_deref(),
            Some("g")
        );
        assert_eq!(model(b"/v1beta/models/a%2Fb:countTokens"), None);
        assert_eq!(listing(b"/v1beta/models"), Some(ApiRoute::Models));
        assert_eq!(
            listing(b"/v1alpha/models/gemini-2.5-flash"),
            Some(ApiRoute::Model)
        );
        assert_eq!(listing(b"/v1beta/models/"), None);
        assert_eq!(listing(b"/v1beta/models/g:predict"), None);
        assert_eq!(listing(b"/v1beta/modelsx"), None);
        assert_eq!(listing(b"/v1/models"), None);
        assert_eq!(listed_model(b"/v1/models/g"), Some(&b"g"[..]));
        assert_eq!(model(b"/v1beta/models/a%ZZ:countTokens"), None);
        assert_eq!(model(b"/v1beta/models/%FF:countTokens"), None);
    }
}
