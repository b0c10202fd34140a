//! Gemini (Generative Language API) in the mock: the paths
//! (`/v1beta/models/{model}:{method}`, also under `/v1/`), the key
//! (`x-goog-api-key` or `?key=`), the request bodies, the JSON answers and
//! the streamed events (`?alt=sse`: data-only events, each a whole
//! `GenerateContentResponse`, separated by CRLF CRLF as Google sends them;
//! the last with `finishReason` and the final `usageMetadata`).

use super::prompt::{tokens, Ask};
use super::respond::{push_id, push_text, ApiError, Usage};
use super::text::{push_json_escaped, push_json_str, push_u64, token};

/// Gemini's methods the mock answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    Generate,
    Stream,
    CountTokens,
    Embed,
    BatchEmbed,
}

/// The method and model of a Gemini path (query stripped already).
pub(super) fn route(path: &str) -> Option<(Method, &str)> {
    let rest = ["/v1beta/models/", "/v1/models/", "/v1alpha/models/"]
        .iter()
        .find_map(|p| path.strip_prefix(p))?;
    let (model, method) = rest.rsplit_once(':')?;
    let method = match method {
        "generateContent" => Method::Generate,
        "streamGenerateContent" => Method::Stream,
        "countTokens" => Method::CountTokens,
        "embedContent" => Method::Embed,
        "batchEmbedContents" => Method::BatchEmbed,
        _ => return None,
    };
    (!model.is_empty()).then_some((method, model))
}

/// Whether the path's query has `key=` equal to `key`.
pub(super) fn query_key_ok(path: &str, key: &[u8]) -> bool {
    path.split_once('?').is_some_and(|(_, q)| {
        q.split('&')
            .any(|pair| pair.strip_prefix("key=").is_some_and(|k| k.as_bytes() == key))
    })
}

/// Bytes of every `parts[].text` in `v`, wherever it is.
fn text_len(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(items) => items.iter().map(text_len).sum(),
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, v)| match (k.as_str(), v) {
                ("text", serde_json::Value::String(s)) => s.len(),
                _ => text_len(v),
            })
            .sum(),
        _ => 0,
    }
}

fn parse(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("Invalid JSON payload received. {e}"), None))?;
    if !v.is_object() {
        return Err(ApiError::invalid("Invalid JSON payload received.", None));
    }
    Ok(v)
}

/// A `generateContent` / `streamGenerateContent` body.
pub(super) fn generate(body: &[u8], model: &str, stream: bool) -> Result<Ask, ApiError> {
    let v = parse(body)?;
    let contents = v.get("contents").filter(|c| c.is_array());
    let Some(contents) = contents else {
        return Err(ApiError::invalid(
            "* GenerateContentRequest.contents: contents is not specified\n",
            None,
        ));
    };
    let system = v.get("systemInstruction").map_or(0, text_len);
    let max_tokens = match v.pointer("/generationConfig/maxOutputTokens") {
        None | Some(serde_json::Value::Null) => None,
        Some(m) => Some(m.as_u64().ok_or_else(|| {
            ApiError::invalid("Invalid value at 'generation_config.max_output_tokens'", None)
        })?),
    };
    Ok(Ask {
        model: model.to_owned(),
        stream,
        include_usage: false,
        max_tokens,
        prompt_tokens: tokens(text_len(contents) + system),
    })
}

/// A `countTokens` body: its prompt tokens, the mock's way.
pub(super) fn count(body: &[u8]) -> Result<u64, ApiError> {
    let v = parse(body)?;
    match (v.get("contents"), v.get("generateContentRequest")) {
        (Some(c), _) => Ok(tokens(text_len(c))),
        (None, Some(r)) => Ok(tokens(text_len(r))),
        (None, None) => Err(ApiError::invalid("contents is not specified", None)),
    }
}

/// An `embedContent` (one `content`) or `batchEmbedContents` (`requests`)
/// body: how many embeddings to answer.
pub(super) fn embed_inputs(body: &[u8], batch: bool) -> Result<usize, ApiError> {
    let v = parse(body)?;
    if batch {
        match v.get("requests").and_then(|r| r.as_array()) {
            Some(r) if !r.is_empty() => Ok(r.len()),
            _ => Err(ApiError::invalid(
                "* BatchEmbedContentsRequest.requests: at least one request is required",
                None,
            )),
        }
    } else {
        match v.get("content") {
            Some(c) if c.is_object() => Ok(1),
            _ => Err(ApiError::invalid(
                "* EmbedContentRequest.content: content is not specified",
                None,
            )),
        }
    }
}

fn finish_reason(u: &Usage) -> &'static [u8] {
    if u.capped {
        b"MAX_TOKENS"
    } else {
        b"STOP"
    }
}

/// `usageMetadata` after `candidates` tokens of the completion.
fn push_usage(out: &mut Vec<u8>, u: &Usage, candidates: u32) {
    out.extend_from_slice(b"\"usageMetadata\":{\"promptTokenCount\":");
    push_u64(out, u.prompt);
    if candidates > 0 {
        out.extend_from_slice(b",\"candidatesTokenCount\":");
        push_u64(out, u64::from(candidates));
    }
    out.extend_from_slice(b",\"totalTokenCount\":");
    push_u64(out, u.prompt + u64::from(candidates));
    out.extend_from_slice(b",\"promptTokensDetails\":[{\"modality\":\"TEXT\",\"tokenCount\":");
    push_u64(out, u.prompt);
    out.extend_from_slice(b"}]}");
}

fn push_tail(out: &mut Vec<u8>, model: &str, id: u64) {
    out.extend_from_slice(b",\"modelVersion\":");
    push_json_str(out, model);
    out.extend_from_slice(b",\"responseId\":\"mock");
    push_id(out, id);
    out.extend_from_slice(b"\"}");
}

/// Appends a whole `GenerateContentResponse`.
pub(super) fn push_response(out: &mut Vec<u8>, id: u64, model: &str, u: &Usage) {
    out.extend_from_slice(b"{\"candidates\":[{\"content\":{\"parts\":[{\"text\":");
    push_text(out, u.completion);
    out.extend_from_slice(b"}],\"role\":\"model\"},\"finishReason\":\"");
    out.extend_from_slice(finish_reason(u));
    out.extend_from_slice(b"\",\"index\":0}],");
    push_usage(out, u, u.completion);
    push_tail(out, model, id);
}

/// Events of a stream: one per token, then the finish.
pub(super) fn event_count(u: &Usage) -> usize {
    u.completion as usize + 1
}

/// Appends stream event `ev` (token `ev`, or the finish after the last).
pub(super) fn push_event(out: &mut Vec<u8>, ev: usize, id: u64, model: &str, u: &Usage) {
    out.extend_from_slice(b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"");
    let n = u.completion as usize;
    if ev < n {
        push_json_escaped(out, token(ev as u32));
        out.extend_from_slice(b"\"}],\"role\":\"model\"},\"index\":0}],");
        push_usage(out, u, ev as u32 + 1);
    } else {
        out.extend_from_slice(b"\"}],\"role\":\"model\"},\"finishReason\":\"");
        out.extend_from_slice(finish_reason(u));
        out.extend_from_slice(b"\",\"index\":0}],");
        push_usage(out, u, u.completion);
    }
    push_tail(out, model, id);
    out.extend_from_slice(b"\r\n\r\n");
}

/// Appends `countTokens`' answer.
pub(super) fn push_count(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(b"{\"totalTokens\":");
    push_u64(out, n);
    out.extend_from_slice(b",\"promptTokensDetails\":[{\"modality\":\"TEXT\",\"tokenCount\":");
    push_u64(out, n);
    out.extend_from_slice(b"}]}");
}

/// Appends `embedContent`'s (`batch`: `batchEmbedContents`') answer.
pub(super) fn push_embeddings(out: &mut Vec<u8>, inputs: usize, batch: bool) {
    let values = |out: &mut Vec<u8>, i: usize| {
        out.extend_from_slice(b"{\"values\":[");
        for d in 0..8usize {
            if d > 0 {
                out.push(b',');
            }
            let v = ((i + d) % 7) as f32 / 8.0 - 0.375;
            out.extend_from_slice(format!("{v}").as_bytes());
        }
        out.extend_from_slice(b"]}");
    };
    if batch {
        out.extend_from_slice(b"{\"embeddings\":[");
        for i in 0..inputs {
            if i > 0 {
                out.push(b',');
            }
            values(out, i);
        }
        out.extend_from_slice(b"]}");
    } else {
        out.extend_from_slice(b"{\"embedding\":");
        values(out, 0);
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_keys() {
        assert_eq!(
            route("/v1beta/models/g-1:streamGenerateContent"),
            Some((Method::Stream, "g-1"))
        );
        assert_eq!(
            route("/v1/models/e:batchEmbedContents"),
            Some((Method::BatchEmbed, "e"))
        );
        assert_eq!(route("/v1/models/gpt-4o"), None);
        assert!(query_key_ok("/x?alt=sse&key=k", b"k"));
        assert!(!query_key_ok("/x?alt=sse&key=kk", b"k"));
    }

    #[test]
    fn a_stream_reads_back() {
        let u = Usage {
            prompt: 3,
            completion: 2,
            capped: false,
        };
        let mut out = Vec::new();
        for ev in 0..event_count(&u) {
            push_event(&mut out, ev, 1, "g", &u);
        }
        let text = String::from_utf8(out).unwrap();
        let events: Vec<serde_json::Value> = text
            .split("\r\n\r\n")
            .filter(|e| !e.is_empty())
            .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
            .collect();
        assert_eq!(events.len(), 3);
        assert_eq!(events[2]["candidates"][0]["finishReason"], "STOP");
        assert_eq!(events[2]["usageMetadata"]["candidatesTokenCount"], 2);
        let mut body = Vec::new();
        push_response(&mut body, 1, "g", &u);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["usageMetadata"]["totalTokenCount"], 5);
    }
}
