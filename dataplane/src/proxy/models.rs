//! `GET /v1/models`: the models the caller's key may use.
//!
//! One document serves both SDKs: OpenAI's list shape (`object`, `data[].id`,
//! `created`, `owned_by`) and Anthropic's (`data[].type`, `display_name`,
//! `created_at`, `has_more`, `first_id`, `last_id`). Each reads its own fields.

use super::Ctx;
use crate::io::client::{ClientIo, Next};
use sluice_contract::codec::head::RequestHead;
use sluice_contract::snapshot::index::RouteEntry;
use sluice_contract::snapshot::KeyEntry;
use std::io::Write;

/// Writes the model list for `key` and completes the record.
pub async fn respond(io: &mut ClientIo, key: &KeyEntry, head: &RequestHead, ctx: &mut Ctx<'_>) -> Next {
    let mut names: Vec<&str> = key
        .tenant
        .routes
        .iter()
        .filter(|(_, r)| matches!(r, RouteEntry::Targets(_)))
        .map(|(name, _)| &**name)
        .collect();
    names.sort_unstable();
    let body = render(&names);
    let _ = write!(
        io.out,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}\r\n",
        body.len(),
        if head.keep_alive {
            "connection: keep-alive\r\n"
        } else {
            "connection: close\r\n"
        }
    );
    if head.method != sluice_contract::codec::head::Method::Head {
        io.out.extend_from_slice(&body);
    }
    ctx.record.status = 200;
    ctx.record.bytes_out = io.out.len() as u64;
    if io.write_out().await && head.keep_alive {
        Next::KeepAlive
    } else {
        Next::Close
    }
}

fn render(names: &[&str]) -> Vec<u8> {
    let item = |name: &str| {
        serde_json::json!({
            "id": name,
            "object": "model",
            "created": 0,
            "owned_by": "sluice",
            "type": "model",
            "display_name": name,
            "created_at": "1970-01-01T00:00:00Z",
        })
    };
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
}
