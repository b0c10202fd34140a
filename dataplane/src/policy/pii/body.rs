//! Redaction of a whole request body.
//!
//! Walks exactly the fields [`crate::policy::extract`] reads (keep the two in
//! step: `tests.rs` checks that every extracted text is rewritten), redacts
//! those strings, and re-serialises the body only if one changed. Everything
//! else keeps its value, its key order and its repeated keys; only
//! insignificant whitespace and number spelling (`1.0e2` becomes `100.0`) may
//! change. Inside a tool-use `input`, every string is redacted, keys included.

use super::PiiScanner;
use crate::policy::extract::{Api, ExtractError};
use crate::policy::json::Json;

/// The body with every redactable match replaced; `Ok(None)` when nothing in
/// it needed redacting.
pub fn redact_body(scanner: &PiiScanner, api: Api, body: &[u8]) -> Result<Option<Vec<u8>>, ExtractError> {
    let mut root: Json = serde_json::from_slice(body).map_err(|_| ExtractError::NotJson)?;
    let Json::Object(entries) = &mut root else {
        return Err(ExtractError::NotObject);
    };
    let mut w = Rewriter {
        scanner,
        changed: false,
    };
    for (k, v) in entries.iter_mut() {
        match (api, k.as_str()) {
            (_, "messages") => w.each(v, Rewriter::message),
            (_, "tools") | (Api::OpenAi, "functions") => w.each(v, Rewriter::tool),
            (Api::Anthropic, "system") => w.content(v),
            _ => {}
        }
    }
    if !w.changed {
        return Ok(None);
    }
    serde_json::to_vec(&root)
        .map(Some)
        .map_err(|_| ExtractError::NotJson)
}

struct Rewriter<'s> {
    scanner: &'s PiiScanner,
    changed: bool,
}

impl Rewriter<'_> {
    fn string(&mut self, s: &mut String) {
        if let Some(r) = self.scanner.redact(s) {
            *s = r;
            self.changed = true;
        }
    }

    fn text(&mut self, v: &mut Json) {
        if let Json::String(s) = v {
            self.string(s);
        }
    }

    fn each(&mut self, v: &mut Json, f: fn(&mut Self, &mut Json)) {
        if let Json::Array(items) = v {
            for item in items {
                f(self, item);
            }
        }
    }

    fn fields(&mut self, v: &mut Json, f: fn(&mut Self, &str, &mut Json)) {
        if let Json::Object(entries) = v {
            for (k, v) in entries {
                f(self, k, v);
            }
        }
    }

    fn message(&mut self, v: &mut Json) {
        self.fields(v, |w, k, v| match k {
            "content" => w.content(v),
            "name" => w.text(v),
            "tool_calls" => w.each(v, Rewriter::tool_call),
            "function_call" => w.tool_call(v),
            _ => {}
        });
    }

    fn tool_call(&mut self, v: &mut Json) {
        self.fields(v, |w, k, v| match k {
            "function" => w.tool_call(v),
            "arguments" => w.text(v),
            _ => {}
        });
    }

    fn tool(&mut self, v: &mut Json) {
        self.fields(v, |w, k, v| match k {
            "description" => w.text(v),
            "function" => w.tool(v),
            _ => {}
        });
    }

    fn content(&mut self, v: &mut Json) {
        match v {
            Json::String(s) => self.string(s),
            Json::Array(_) => self.each(v, Rewriter::block),
            _ => {}
        }
    }

    fn block(&mut self, v: &mut Json) {
        self.fields(v, |w, k, v| match k {
            "text" => w.text(v),
            "content" => w.content(v),
            "input" => w.everything(v),
            _ => {}
        });
    }

    fn everything(&mut self, v: &mut Json) {
        match v {
            Json::String(s) => self.string(s),
            Json::Array(items) => items.iter_mut().for_each(|v| self.everything(v)),
            Json::Object(entries) => {
                for (k, v) in entries {
                    self.string(k);
                    self.everything(v);
                }
            }
            _ => {}
        }
    }
}
