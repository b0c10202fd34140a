//! `GET /v1/models` and `GET /v1/models/{id}`: the models the caller's key
//! may use, and one of them.
//!
//! One document serves both SDKs: OpenAI's list shape (`object`, `data[].id`,
//! `created`, `owned_by`) and Anthropic's (`data[].type`, `display_name`,
//! `created_at`, `has_more`, `first_id`, `last_id`). Each reads its own
//! fields; a single model is one item of that list. A Gemini caller
//! (`/v1beta/models`, or the `x-goog-api-key` header) gets Gemini's shape
//! (`models[].name` as `models/{id}`, `supportedGenerationMethods`), listing
//! the models routed to Gemini upstreams: the only ones its API can call.

use super::classify::{model_id, percent_decoded};
use super::Ctx;
use crate::io::client::{ClientIo, Next};
use crate::respond::{ErrorKind, Reject};
use sluice_contract::codec::head::{Method, RequestHead};
use sluice_contract::dialect::Dialect;
use sluice_contract::record::ApiRoute;
use sluice_contract::snapshot::index::RouteEntry;
use sluice_contract::snapshot::types::ProviderKind;
use sluice_contract::snapshot::KeyEntry;
use std::io::Write;

/// Writes the model list (or the one model asked for) for `key` and
/// completes the record.
pub async fn respond(
    io: &mut ClientIo,
    key: &KeyEntry,
    head: &RequestHead,
    ctx: &mut Ctx<'_>,
) -> Result<Next, Reject> {
    let gemini = ctx.dialect == Dialect::Gemini;
    // A Gemini caller can call only models routed to Gemini upstreams, and
    // the others only the rest (see `route::same_api`).
    let served = |name: &str| match key.tenant.routes.get(name) {
        Some(RouteEntry::Targets(targets)) => targets
            .iter()
            .all(|t| (t.upstream.kind == ProviderKind::Gemini) == gemini),
        _ => false,
    };
    let body = if ctx.record.route == ApiRoute::Model {
        let path = head.path(&io.buf);
        let raw = match gemini {
            true => super::classify::gemini::listed_model(path),
            false => model_id(path.strip_prefix(b"/v1").unwrap_or(path)),
        }
        .unwrap_or_default();
        let id = percent_decoded(raw)
            .map(|id| match id.strip_prefix("models/") {
                Some(bare) if gemini => bare.to_owned().into(),
                _ => id,
            })
            .filter(|id| served(id))
            .ok_or_else(|| unknown_model(raw))?;
        ctx.record.model = Some(id.clone().into_owned());
        let one = if gemini { gemini_item(&id) } else { item(&id) };
        serde_json::to_vec(&one).unwrap_or_default()
    } else {
        let mut names: Vec<&str> = key
            .tenant
            .routes
            .keys()
            .map(|n| &**n)
            .filter(|n| served(n))
            .collect();
        names.sort_unstable();
        if gemini {
            render_gemini(&names)
        } else {
            render(&names)
        }
    };
    let keep = head.keep_alive && io.reusable();
    let _ = write!(
        io.out,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}\r\n",
        body.len(),
        if keep {
            "connection: keep-alive\r\n"
        } else {
            "connection: close\r\n"
        }
    );
    if head.method != Method::Head {
        io.out.extend_from_slice(&body);
    }
    ctx.record.status = 200;
    ctx.record.bytes_out = io.out.len() as u64;
    Ok(if io.write_out().await && keep {
        Next::KeepAlive
    } else {
        Next::Close
    })
}

/// The refusal for a model id the key may not use (or that does not decode).
fn unknown_model(raw: &[u8]) -> Reject {
    let shown = String::from_utf8_lossy(raw);
    Reject::with(
        ErrorKind::UnknownModel,
        format!(
            "The model `{}` does not exist or you do not have access to it.",
            super::route::truncate(&shown)
        ),
    )
}

/// One model, in both SDKs' shapes.
fn item(name: &str) -> serde_json::Value {
    serde_json::json!({
        "id": name,
        "object": "model",
        "created": 0,
        "owned_by": "sluice",
        "type": "model",
        "display_name": name,
        "created_at": "1970-01-01T00:00:00Z",
    })
}

/// One model in Gemini's shape.
fn gemini_item(name: &str) -> serde_json::Value {
    serde_json::json!({
        "name": format!("models/{name}"),
        "baseModelId": name,
        "displayName": name,
        "supportedGenerationMethods": [
            "generateContent",
            "streamGenerateContent",
            "countTokens",
            "embedContent",
            "batchEmbedContents",
        ],
    })
}

/// Gemini's list: every model on one page (no `nextPageToken`).
fn render_gemini(names: &[&str]) -> Vec<u8> {
    let doc = serde_json::json!({ "models": names.iter().map(|n| gemini_item(n)).collect::<Vec<_>>() });
    serde_json::to_vec(&doc).unwrap_or_default()
}

fn render(names: &[&str]) -> Vec<u8> {
    let doc = serde_json::json!({
        "object": "list",
        "data": names.iter().map(|n| item(n)).collect::<Vec<_>>(),
        "has_more": false,
        "first_id": names.first(),
        "last_id": names.last(),
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}
#[cfg(test)]
mod tests {
    #[test]
    fn both_shapes() {
        let v: serde_json::Value = serde_json::from_slice(&super::render(&["a", "b"])).unwrap();
        assert_eq!(v["object"], "list");
        assert_eq!(v["data"][1]["id"], "b");
        assert_eq!(v["data"][0]["type"], "model");
        assert_eq!(v["last_id"], "b");
        assert_eq!(v["has_more"], false);
    }

    #[test]
    fn gemini_shape() {
        let v: serde_json::Value = serde_json::from_slice(&super::render_gemini(&["g"])).unwrap();
        assert_eq!(v["models"][0]["name"], "models/g");
        assert_eq!(v["models"][0]["supportedGenerationMethods"][0], "generateContent");
    }

    #[test]
    fn ids_are_percent_decoded() {
        use super::percent_decoded;
        assert_eq!(percent_decoded(b"gpt-4o").as_deref(), Some("gpt-4o"));
        assert_eq!(percent_decoded(b"ft%3Agpt%2F4o").as_deref(), Some("ft:gpt/4o"));
        assert_eq!(percent_decoded(b"%C3%A9").as_deref(), Some("é"));
        assert_eq!(percent_decoded(b"bad%2"), None);
        assert_eq!(percent_decoded(b"bad%zz"), None);
        assert_eq!(percent_decoded(b"%FF"), None);
    }
}
