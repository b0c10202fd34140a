//! The one rewrite of a Gemini body: an output limit
//! (`generationConfig.maxOutputTokens`) the body did not set. The model is
//! in the path, and Gemini streams always carry usage, so nothing else is
//! ever changed. The body keeps its key order and every other value.

use super::RewriteError;
use crate::policy::json::Json;

/// `body` with `generationConfig.maxOutputTokens` set to `limit` (an
/// existing `generationConfig` keeps its other fields; a limit under
/// either spelling is replaced).
pub fn set_gemini_limit(body: &[u8], limit: u64) -> Result<Vec<u8>, RewriteError> {
    let mut root: Json = serde_json::from_slice(body).map_err(|_| RewriteError::NotObject)?;
    let Json::Object(top) = &mut root else {
        return Err(RewriteError::NotObject);
    };
    let value = Json::Number(limit.into());
    let configs: Vec<usize> = (0..top.len())
        .filter(|&i| matches!(top[i].0.as_str(), "generationConfig" | "generation_config"))
        .collect();
    match configs.as_slice() {
        [] => top.insert(
            0,
            (
                "generationConfig".to_owned(),
                Json::Object(vec![("maxOutputTokens".to_owned(), value)]),
            ),
        ),
        [i] => match &mut top[*i].1 {
            Json::Object(fields) => {
                fields.retain(|(k, _)| k != "maxOutputTokens" && k != "max_output_tokens");
                fields.push(("maxOutputTokens".to_owned(), value));
            }
            v @ Json::Null => *v = Json::Object(vec![("maxOutputTokens".to_owned(), value)]),
            _ => return Err(RewriteError::Duplicate("generationConfig")),
        },
        _ => return Err(RewriteError::Duplicate("generationConfig")),
    }
    serde_json::to_vec(&root).map_err(|_| RewriteError::NotObject)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_the_limit_in_place() {
        let set = |b: &str| String::from_utf8(set_gemini_limit(b.as_bytes(), 7).unwrap()).unwrap();
        assert_eq!(
            set(r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#),
            r#"{"generationConfig":{"maxOutputTokens":7},"contents":[{"parts":[{"text":"hi"}]}]}"#
        );
        assert_eq!(
            set(r#"{"contents":[],"generationConfig":{"temperature":0.5,"max_output_tokens":900}}"#),
            r#"{"contents":[],"generationConfig":{"temperature":0.5,"maxOutputTokens":7}}"#
        );
        assert_eq!(
            set(r#"{"contents":[],"generation_config":null}"#),
            r#"{"contents":[],"generation_config":{"maxOutputTokens":7}}"#
        );
        assert!(set_gemini_limit(b"[]", 1).is_err());
        assert!(set_gemini_limit(br#"{"generationConfig":{},"generation_config":{}}"#, 1).is_err());
    }
}
