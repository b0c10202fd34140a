//! Gemini request bodies (`generateContent`, `streamGenerateContent`,
//! `countTokens`, `embedContent`, `batchEmbedContents`): the model is in the
//! path, the texts are `contents[].parts[].text`, `systemInstruction`'s
//! parts, `content`'s parts (embeddings), and the same inside `requests[]`
//! (batch embeddings) and `generateContentRequest` (counting), and the
//! tools' `functionDeclarations[].description`.
//!
//! Google's JSON parser takes a field by its proto name as well as its JSON
//! name (`system_instruction` as `systemInstruction`), so both are read:
//! a policy must see what the provider will. The one walk ([`walk`]) serves
//! extraction and the PII rewrite alike, so the two read the same strings
//! in the same order by construction.

use super::{ExtractError, RequestView, TextKind, TextRef, TopKeys, MAX_MODEL_LEN};
use crate::dialect::Dialect;
use crate::policy::json::Json;
use std::borrow::Cow;

/// Reads a Gemini body sent to `model` (from the path; may be empty when
/// the caller fills it in later).
pub fn extract_gemini<'a>(body: &'a [u8], model: &str) -> Result<RequestView<'a>, ExtractError> {
    if super::too_deep(body) {
        return Err(ExtractError::TooDeep);
    }
    if model.len() > MAX_MODEL_LEN {
        return Err(ExtractError::ModelTooLong);
    }
    let mut root: Json = serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            ExtractError::NotObject
        } else {
            ExtractError::NotJson
        }
    })?;
    let Json::Object(top) = &root else {
        return Err(ExtractError::NotObject);
    };
    let has_contents = top.iter().any(|(k, _)| {
        matches!(
            k.as_str(),
            "contents" | "content" | "requests" | "generateContentRequest" | "generate_content_request"
        )
    });
    if !has_contents {
        return Err(ExtractError::MissingContents);
    }
    let (max_tokens, n) = limits(top)?;
    let mut texts = Vec::new();
    walk(&mut root, &mut |kind, s| {
        texts.push(TextRef {
            kind,
            text: Cow::Owned(std::mem::take(s)),
        })
    });
    Ok(RequestView {
        api: Dialect::Gemini,
        model: model.to_owned(),
        stream: false,
        include_usage: false,
        max_tokens,
        n,
        keys: TopKeys::default(),
        media: media_parts(&root),
        texts,
        token_ids: 0,
    })
}

/// Parts holding media (`inlineData`, `fileData`, either spelling), anywhere.
fn media_parts(v: &Json) -> u32 {
    match v {
        Json::Object(fields) => fields
            .iter()
            .map(|(k, v)| {
                let own = matches!(
                    k.as_str(),
                    "inlineData" | "inline_data" | "fileData" | "file_data"
                );
                u32::from(own).saturating_add(media_parts(v))
            })
            .fold(0, u32::saturating_add),
        Json::Array(items) => items.iter().map(media_parts).fold(0, u32::saturating_add),
        _ => 0,
    }
}

/// `generationConfig.maxOutputTokens` and `.candidateCount` (either
/// spelling; of repeated ones the largest, so a cap cannot be dodged).
fn limits(top: &[(String, Json)]) -> Result<(Option<u64>, Option<u64>), ExtractError> {
    let (mut max, mut n) = (None::<u64>, None::<u64>);
    let configs = top
        .iter()
        .filter(|(k, _)| k == "generationConfig" || k == "generation_config");
    for (_, config) in configs {
        let Json::Object(fields) = config else {
            if *config == Json::Null {
                continue;
            }
            return Err(ExtractError::BadField("generationConfig"));
        };
        for (k, v) in fields {
            let (slot, name) = match k.as_str() {
                "maxOutputTokens" | "max_output_tokens" => (&mut max, "maxOutputTokens"),
                "candidateCount" | "candidate_count" => (&mut n, "candidateCount"),
                _ => continue,
            };
            let value = match v {
                Json::Null => continue,
                Json::Number(x) => x.as_u64().ok_or(ExtractError::BadField(name))?,
                _ => return Err(ExtractError::BadField(name)),
            };
            *slot = Some(slot.map_or(value, |s| s.max(value)));
        }
    }
    Ok((max, n))
}

/// Calls `f` with every prompt text of a Gemini body, in body order.
pub(crate) fn walk(root: &mut Json, f: &mut dyn FnMut(TextKind, &mut String)) {
    let Json::Object(top) = root else {
        return;
    };
    for (k, v) in top.iter_mut() {
        match k.as_str() {
            "contents" => each(v, |c| content(c, TextKind::Message, f)),
            "systemInstruction" | "system_instruction" => content(v, TextKind::System, f),
            "content" => content(v, TextKind::Message, f),
            "requests" => each(v, |r| walk(r, f)),
            "generateContentRequest" | "generate_content_request" => walk(v, f),
            "tools" => each(v, |tool| declarations(tool, f)),
            _ => {}
        }
    }
}

fn each(v: &mut Json, mut f: impl FnMut(&mut Json)) {
    if let Json::Array(items) = v {
        items.iter_mut().for_each(&mut f);
    }
}

/// A `Tool`: its `functionDeclarations[].description`.
fn declarations(v: &mut Json, f: &mut dyn FnMut(TextKind, &mut String)) {
    let Json::Object(fields) = v else {
        return;
    };
    for (k, list) in fields.iter_mut() {
        if k == "functionDeclarations" || k == "function_declarations" {
            each(list, |decl| {
                if let Json::Object(decl) = decl {
                    for (k, d) in decl.iter_mut() {
                        if let (true, Json::String(s)) = (k == "description", d) {
                            f(TextKind::ToolDescription, s);
                        }
                    }
                }
            });
        }
    }
}

/// A `Content`: its `parts[].text`.
fn content(v: &mut Json, kind: TextKind, f: &mut dyn FnMut(TextKind, &mut String)) {
    let Json::Object(fields) = v else {
        return;
    };
    for (k, parts) in fields.iter_mut() {
        if k == "parts" {
            each(parts, |part| {
                if let Json::Object(part) = part {
                    for (k, text) in part.iter_mut() {
                        if let (true, Json::String(s)) = (k == "text", text) {
                            f(kind, s);
                        }
                    }
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(body: &str) -> Vec<(TextKind, String)> {
        extract_gemini(body.as_bytes(), "gemini-2.5-flash")
            .unwrap()
            .texts
            .into_iter()
            .map(|t| (t.kind, t.text.into_owned()))
            .collect()
    }

    #[test]
    fn reads_every_method_body() {
        let generate = r#"{"systemInstruction":{"parts":[{"text":"be brief"}]},"contents":[{"role":"user","parts":[{"text":"hi"},{"inlineData":{"mimeType":"image/png","data":"AA=="}},{"text":"caf\u00e9"}]},{"role":"model","parts":[{"text":"hello"}]}],"generationConfig":{"maxOutputTokens":64,"candidateCount":2}}"#;
        assert_eq!(
            texts(generate),
            [
                (TextKind::System, "be brief".into()),
                (TextKind::Message, "hi".into()),
                (TextKind::Message, "café".into()),
                (TextKind::Message, "hello".into()),
            ]
        );
        let view = extract_gemini(generate.as_bytes(), "m").unwrap();
        assert_eq!(
            (view.max_tokens, view.n, view.model.as_str()),
            (Some(64), Some(2), "m")
        );
        let snake = r#"{"contents":[{"parts":[{"text":"a"}]}],"system_instruction":{"parts":[{"text":"s"}]},"generation_config":{"max_output_tokens":5}}"#;
        assert_eq!(texts(snake).len(), 2);
        assert_eq!(extract_gemini(snake.as_bytes(), "m").unwrap().max_tokens, Some(5));
        let embed = r#"{"content":{"parts":[{"text":"e"}]},"taskType":"RETRIEVAL_QUERY"}"#;
        assert_eq!(texts(embed), [(TextKind::Message, "e".into())]);
        let batch = r#"{"requests":[{"model":"models/x","content":{"parts":[{"text":"one"}]}},{"model":"models/x","content":{"parts":[{"text":"two"}]}}]}"#;
        assert_eq!(texts(batch).len(), 2);
        let tools = r#"{"contents":[],"tools":[{"functionDeclarations":[{"name":"f","description":"looks up a card","parameters":{"type":"OBJECT"}}]},{"googleSearch":{}}]}"#;
        assert_eq!(
            texts(tools),
            [(TextKind::ToolDescription, "looks up a card".into())]
        );
        let count = r#"{"generateContentRequest":{"model":"models/x","contents":[{"parts":[{"text":"c"}]}],"systemInstruction":{"parts":[{"text":"s"}]}}}"#;
        assert_eq!(texts(count).len(), 2);
    }

    #[test]
    fn refuses_what_gemini_would() {
        let e = |b: &str| extract_gemini(b.as_bytes(), "m").unwrap_err();
        assert_eq!(e("{"), ExtractError::NotJson);
        assert_eq!(e("[]"), ExtractError::NotObject);
        assert_eq!(e(r#"{"generationConfig":{}}"#), ExtractError::MissingContents);
        assert_eq!(
            e(r#"{"contents":[],"generationConfig":{"maxOutputTokens":-1}}"#),
            ExtractError::BadField("maxOutputTokens")
        );
        assert_eq!(
            e(r#"{"contents":[],"generationConfig":[]}"#),
            ExtractError::BadField("generationConfig")
        );
        let deep = format!("{{\"contents\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert_eq!(e(&deep), ExtractError::TooDeep);
        let long = "m".repeat(MAX_MODEL_LEN + 1);
        assert_eq!(
            extract_gemini(b"{\"contents\":[]}", &long).unwrap_err(),
            ExtractError::ModelTooLong
        );
        // Repeated limits: the largest stands.
        let twice = r#"{"contents":[],"generationConfig":{"maxOutputTokens":5},"generationConfig":{"maxOutputTokens":500}}"#;
        assert_eq!(
            extract_gemini(twice.as_bytes(), "m").unwrap().max_tokens,
            Some(500)
        );
    }
}
