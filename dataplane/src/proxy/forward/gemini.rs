//! Gemini upstream requests: the path names the model the target serves
//! and the method (`/v1beta/models/{model}:{method}`, streams with
//! `?alt=sse`), the provider key goes in `x-goog-api-key`. The client's
//! query string is never forwarded: it may hold the gateway key (`?key=`).

use crate::respond::ErrorKind;
use sluice_contract::record::ApiRoute;

/// The output limit a Gemini body is given (see
/// [`sluice_contract::rewrite::set_gemini_limit`]); a label, not a key.
pub const LIMIT: &str = "generationConfig.maxOutputTokens";

/// Writes the request path of `api` (a Gemini route) for `model`.
pub fn write_path(out: &mut Vec<u8>, api: ApiRoute, model: &str) -> Result<(), ErrorKind> {
    let method = api.gemini_method().ok_or(ErrorKind::Internal)?;
    // A model name goes into the request line as it is: one that could
    // break it (or the path) is refused. Routes are configured, and the
    // client's own name was checked when the path was read.
    let fine = |b: u8| b.is_ascii_graphic() && !matches!(b, b'/' | b'?' | b'#' | b'%' | b'\\');
    if model.is_empty() || !model.bytes().all(fine) {
        return Err(ErrorKind::Internal);
    }
    out.extend_from_slice(b"/v1beta/models/");
    out.extend_from_slice(model.as_bytes());
    out.push(b':');
    out.extend_from_slice(method.as_bytes());
    if api == ApiRoute::GeminiStream {
        out.extend_from_slice(b"?alt=sse");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let path = |api, model| {
            let mut out = Vec::new();
            write_path(&mut out, api, model).map(|()| String::from_utf8(out).unwrap())
        };
        assert_eq!(
            path(ApiRoute::GeminiStream, "gemini-2.5-flash").unwrap(),
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(
            path(ApiRoute::GeminiBatchEmbed, "text-embedding-004").unwrap(),
            "/v1beta/models/text-embedding-004:batchEmbedContents"
        );
        assert_eq!(path(ApiRoute::GeminiGenerate, "a b"), Err(ErrorKind::Internal));
        assert_eq!(path(ApiRoute::GeminiGenerate, "a\r\nx"), Err(ErrorKind::Internal));
        assert_eq!(path(ApiRoute::ChatCompletions, "m"), Err(ErrorKind::Internal));
    }
}
