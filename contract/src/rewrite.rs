//! Body rewrites: what the gateway changes in a request body before it goes
//! upstream (the model name of a route alias, the usage request of a stream,
//! an output limit the body did not set).
//!
//! Every decision is taken from the parsed body, never from a byte search:
//! which keys a body has comes from the extraction pass
//! ([`crate::policy::extract`], [`TopKeys`]), which decodes escaped keys
//! (`"stream\u005foptions"` is `stream_options`) and refuses a second copy of
//! any key the gateway reads or writes. A rewrite that adds only keys the
//! body does not have is a splice after the opening brace; one that changes
//! a key the body has walks the top level once more, keeping every other
//! value's bytes as sent, and refuses a duplicate of a key it writes itself.

use crate::policy::extract::TopKeys;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;
use std::io::Write;

/// What to change in a body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Edits<'a> {
    /// Replace `model` with this name.
    pub model: Option<&'a str>,
    /// Set `stream_options.include_usage` to true, keeping the other options.
    pub ask_usage: bool,
    /// Set the output limit field `.0` to `.1` (the caller sets it only when
    /// the body gave no limit, or to lower one).
    pub limit: Option<(&'static str, u64)>,
}

impl Edits<'_> {
    fn is_empty(&self) -> bool {
        self.model.is_none() && !self.ask_usage && self.limit.is_none()
    }
}

/// Why a body could not be rewritten. The extraction pass refuses these
/// bodies first; this is the rewrite's own guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RewriteError {
    /// Not one JSON object.
    NotObject,
    /// A key the rewrite writes appears twice.
    Duplicate(&'static str),
}

const USAGE: &[u8] = br#"{"include_usage":true}"#;

/// The body to send upstream with `edits` applied; `keys` are the top-level
/// keys the extraction pass found in `body`. `Ok(None)`: send it unchanged.
pub fn rewrite(body: &[u8], keys: TopKeys, edits: &Edits<'_>) -> Result<Option<Vec<u8>>, RewriteError> {
    if edits.is_empty() {
        return Ok(None);
    }
    let touches_present = edits.model.is_some()
        || (edits.ask_usage && keys.contains("stream_options"))
        || edits.limit.is_some_and(|(name, _)| keys.contains(name));
    if touches_present {
        return walk(body, edits).map(Some);
    }
    splice(body, edits).map(Some)
}

/// Adds keys the body does not have, right after its opening brace.
fn splice(body: &[u8], edits: &Edits<'_>) -> Result<Vec<u8>, RewriteError> {
    let brace = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .filter(|&i| body[i] == b'{')
        .ok_or(RewriteError::NotObject)?;
    let rest = &body[brace + 1..];
    let empty = rest.iter().all(|b| b.is_ascii_whitespace() || *b == b'}');
    let mut out = Vec::with_capacity(body.len() + 64);
    out.extend_from_slice(&body[..=brace]);
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        if !std::mem::replace(&mut first, false) {
            out.push(b',');
        }
    };
    if edits.ask_usage {
        sep(&mut out);
        out.extend_from_slice(b"\"stream_options\":");
        out.extend_from_slice(USAGE);
    }
    if let Some((name, value)) = edits.limit {
        sep(&mut out);
        let _ = write!(out, "\"{name}\":{value}");
    }
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    Ok(out)
}

/// Re-writes the top level: keys re-encoded, every value not edited copied
/// byte for byte, edited ones replaced, missing ones appended.
fn walk(body: &[u8], edits: &Edits<'_>) -> Result<Vec<u8>, RewriteError> {
    let entries = entries(body).ok_or(RewriteError::NotObject)?;
    let mut out = Vec::with_capacity(body.len() + 64);
    out.push(b'{');
    let (mut model_done, mut usage_done, mut limit_done) = (false, false, false);
    for (i, (key, value)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        put_str(&mut out, key);
        out.push(b':');
        let raw = value.get().as_bytes();
        match key.as_str() {
            "model" if edits.model.is_some() => {
                once(&mut model_done, "model")?;
                put_str(&mut out, edits.model.unwrap_or_default());
            }
            "stream_options" if edits.ask_usage => {
                once(&mut usage_done, "stream_options")?;
                usage_options(&mut out, raw)?;
            }
            k if edits.limit.is_some_and(|(name, _)| name == k) => {
                once(&mut limit_done, "max_tokens")?;
                if let Some((_, v)) = edits.limit {
                    let _ = write!(out, "{v}");
                }
            }
            _ => out.extend_from_slice(raw),
        }
    }
    let mut comma = !entries.is_empty();
    let mut sep = |out: &mut Vec<u8>| {
        if std::mem::replace(&mut comma, true) {
            out.push(b',');
        }
    };
    if let (Some(model), false) = (edits.model, model_done) {
        sep(&mut out);
        out.extend_from_slice(b"\"model\":");
        put_str(&mut out, model);
    }
    if edits.ask_usage && !usage_done {
        sep(&mut out);
        out.extend_from_slice(b"\"stream_options\":");
        out.extend_from_slice(USAGE);
    }
    if let (Some((name, v)), false) = (edits.limit, limit_done) {
        sep(&mut out);
        let _ = write!(out, "\"{name}\":{v}");
    }
    out.push(b'}');
    Ok(out)
}

fn once(done: &mut bool, name: &'static str) -> Result<(), RewriteError> {
    if std::mem::replace(done, true) {
        return Err(RewriteError::Duplicate(name));
    }
    Ok(())
}

/// `stream_options` with `include_usage` true and every other option kept;
/// a null (or any non-object) value becomes `{"include_usage":true}`.
fn usage_options(out: &mut Vec<u8>, raw: &[u8]) -> Result<(), RewriteError> {
    let Some(options) = entries(raw) else {
        out.extend_from_slice(USAGE);
        return Ok(());
    };
    out.push(b'{');
    for (key, value) in options.iter().filter(|(k, _)| k != "include_usage") {
        put_str(out, key);
        out.push(b':');
        out.extend_from_slice(value.get().as_bytes());
        out.push(b',');
    }
    out.extend_from_slice(b"\"include_usage\":true}");
    Ok(())
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Writing a string to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

type Entries<'a> = Vec<(String, &'a RawValue)>;

/// The members of a JSON object in order, keys decoded, values as sent;
/// `None` when `json` is not one object.
fn entries(json: &[u8]) -> Option<Entries<'_>> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Entries<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<'de>, A::Error> {
            let mut v = Vec::new();
            while let Some(k) = map.next_key::<String>()? {
                v.push((k, map.next_value::<&'de RawValue>()?));
            }
            Ok(v)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    let v = (&mut de).deserialize_map(V).ok()?;
    de.end().ok()?;
    Some(v)
}

mod gemini;

pub use gemini::set_gemini_limit;

#[cfg(test)]
mod tests;
