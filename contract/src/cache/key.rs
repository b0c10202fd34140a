//! The cache key: SHA-256 over the tenant id, the rule's generation, the
//! API, the route's targets and a canonical form of the request body.
//!
//! A [`CacheKey`] can only come out of a [`KeyBuilder`], and a builder can
//! only be started from a non-empty tenant id: no key exists without a
//! tenant, so two tenants never share an entry (LiteLLM #29955 was a key
//! that forgot the team). Every part is length-prefixed, so no two
//! different sequences of parts hash the same bytes.

use ring::digest::{Context, SHA256};
use serde_json::Value;

/// Top-level request fields that do not change what the model answers,
/// left out of the key (a request differing only in them is the same
/// request to the cache):
/// - `stream`, `stream_options`: how the answer is delivered (a streamed
///   fill serves a non-streamed hit and the other way round; the usage
///   chunk is added or left out as the client asked);
/// - `user`, `safety_identifier`, `metadata`, `store`: about the caller or
///   the provider's bookkeeping of the request;
/// - `prompt_cache_key`: a hint for the provider's prompt cache.
///
/// Everything else — `model`, `messages`, `temperature`, `seed`, `tools`,
/// `response_format`, `max_tokens`, `n`, `service_tier`, unknown fields —
/// is in the key.
pub const EXCLUDED_FIELDS: [&str; 7] = [
    "stream",
    "stream_options",
    "user",
    "safety_identifier",
    "metadata",
    "store",
    "prompt_cache_key",
];

/// A cache entry's key: 32 bytes of SHA-256.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    /// The hash's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Builds a [`CacheKey`]; the only way to make one.
pub struct KeyBuilder(Context);

impl KeyBuilder {
    /// Starts a key for `tenant` under a rule of `generation`; `None` for an
    /// empty tenant id.
    pub fn new(tenant: &str, generation: u64) -> Option<KeyBuilder> {
        if tenant.is_empty() {
            return None;
        }
        let mut b = KeyBuilder(Context::new(&SHA256));
        b.part(b"sluice-cache-v1");
        b.part(tenant.as_bytes());
        b.part(&generation.to_be_bytes());
        Some(b)
    }

    /// Adds one part (length-prefixed).
    pub fn part(&mut self, bytes: &[u8]) -> &mut KeyBuilder {
        self.0.update(&(bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
        self
    }

    /// Adds the canonical form of a JSON request body; `false` (nothing
    /// added) when the body is not a JSON object.
    pub fn body(&mut self, body: &[u8]) -> bool {
        match canonical(body) {
            Some(c) => {
                self.part(&c);
                true
            }
            None => false,
        }
    }

    /// The key.
    pub fn finish(self) -> CacheKey {
        let d = self.0.finish();
        let mut k = [0u8; 32];
        k.copy_from_slice(d.as_ref());
        CacheKey(k)
    }
}

/// The canonical form of a JSON object body: [`EXCLUDED_FIELDS`] removed at
/// the top level, object keys sorted at every level, no insignificant
/// white space, strings in one escaping. `None` when `body` is not an
/// object.
pub fn canonical(body: &[u8]) -> Option<Vec<u8>> {
    let Value::Object(mut map) = serde_json::from_slice::<Value>(body).ok()? else {
        return None;
    };
    for f in EXCLUDED_FIELDS {
        map.remove(f);
    }
    let mut out = Vec::with_capacity(body.len());
    write(&Value::Object(map), &mut out);
    Some(out)
}

fn write(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(k, out);
                out.push(b':');
                if let Some(v) = m.get(k) {
                    write(v, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(v, out);
            }
            out.push(b']');
        }
        Value::String(s) => write_str(s, out),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Null => out.extend_from_slice(b"null"),
    }
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    // serde_json's escaping of a str cannot fail into a Vec.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests;
