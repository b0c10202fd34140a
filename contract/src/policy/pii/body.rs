//! Redaction of a whole request body.
//!
//! Walks exactly the fields [`crate::policy::extract`] reads (keep the two in
//! step: `tests.rs` checks that every extracted text is rewritten), redacts
//! those strings, and re-serialises the body only if one changed. Everything
//! else keeps its value, its key order and its repeated keys; only
//! insignificant whitespace and number spelling (`1.0e2` becomes `100.0`) may
//! change. Inside a tool-use `input`, every string is redacted, keys included.
//!
//! The walk meets the read strings in the order extraction returned them, so
//! [`redact_body_found`] reuses the spans of the scan the policy already did
//! instead of scanning each string again; a string is only redacted from
//! those spans after checking it is the text they were found in (else it is
//! scanned afresh), so a walk that ever drifted from extraction would cost
//! time, never a wrong redaction.

use super::{PiiFindings, PiiMatch, PiiScanner};
use crate::dialect::Dialect;
use crate::policy::extract::{ExtractError, TextRef};
use crate::policy::json::Json;

/// The body with every redactable match replaced; `Ok(None)` when nothing in
/// it needed redacting.
pub fn redact_body(scanner: &PiiScanner, api: Dialect, body: &[u8]) -> Result<Option<Vec<u8>>, ExtractError> {
    rewrite(scanner, api, body, None)
}

/// Like [`redact_body`], reusing `findings`: the scan of `texts` (the texts
/// extraction read from this very body) by this scanner.
pub fn redact_body_found(
    scanner: &PiiScanner,
    api: Dialect,
    body: &[u8],
    texts: &[TextRef<'_>],
    findings: &PiiFindings,
) -> Result<Option<Vec<u8>>, ExtractError> {
    rewrite(
        scanner,
        api,
        body,
        Some(Known {
            texts,
            matches: &findings.matches,
        }),
    )
}

/// A previous scan of the extracted texts.
struct Known<'k> {
    texts: &'k [TextRef<'k>],
    /// Ordered by text index, then start.
    matches: &'k [PiiMatch],
}

impl Known<'_> {
    fn matches_of(&self, text: usize) -> &[PiiMatch] {
        let from = self.matches.partition_point(|m| m.text < text);
        let to = self.matches.partition_point(|m| m.text <= text);
        self.matches.get(from..to).unwrap_or(&[])
    }
}

fn rewrite(
    scanner: &PiiScanner,
    api: Dialect,
    body: &[u8],
    known: Option<Known<'_>>,
) -> Result<Option<Vec<u8>>, ExtractError> {
    let mut root: Json = serde_json::from_slice(body).map_err(|_| ExtractError::NotJson)?;
    if !matches!(root, Json::Object(_)) {
        return Err(ExtractError::NotObject);
    }
    let mut w = Rewriter {
        scanner,
        changed: false,
        known,
        cursor: 0,
    };
    if api == Dialect::Gemini {
        crate::policy::extract::walk_gemini(&mut root, &mut |_, s| w.read_string(s));
    }
    let entries = match &mut root {
        Json::Object(entries) if api != Dialect::Gemini => entries.as_mut_slice(),
        _ => &mut [],
    };
    for (k, v) in entries.iter_mut() {
        match (api, k.as_str()) {
            // Extraction reads no `messages` of an embeddings body (its
            // texts are `input`): the walk keeps in step with it.
            (Dialect::OpenAi | Dialect::Anthropic, "messages") => w.each(v, Rewriter::message),
            (_, "tools") | (Dialect::OpenAi, "functions") => w.each(v, Rewriter::tool),
            (Dialect::Anthropic, "system") => w.content(v),
            (Dialect::OpenAiEmbeddings, "input") => w.embeddings_input(v),
            (Dialect::OpenAiResponses, "input") => w.responses_input(v),
            (Dialect::OpenAiResponses, "instructions") => w.text(v),
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
    known: Option<Known<'s>>,
    /// Index of the next extracted text the walk will meet.
    cursor: usize,
}

impl Rewriter<'_> {
    /// A string extraction did not return as such (inside a tool input).
    fn string(&mut self, s: &mut String) {
        if let Some(r) = self.scanner.redact(s) {
            *s = r;
            self.changed = true;
        }
    }

    /// A string extraction returned as the next text.
    fn read_string(&mut self, s: &mut String) {
        let index = self.cursor;
        self.cursor += 1;
        let found = match &self.known {
            Some(k) if k.texts.get(index).is_some_and(|t| t.text == s.as_str()) => {
                self.scanner.redact_found(s, k.matches_of(index))
            }
            _ => self.scanner.redact(s),
        };
        if let Some(r) = found {
            *s = r;
            self.changed = true;
        }
    }

    /// Embeddings `input`: its strings, at the top or in the outer array,
    /// are the extracted texts (token ids are not text).
    fn embeddings_input(&mut self, v: &mut Json) {
        match v {
            Json::String(s) => self.read_string(s),
            Json::Array(items) => {
                for item in items {
                    if let Json::String(s) = item {
                        self.read_string(s);
                    }
                }
            }
            _ => {}
        }
    }

    /// Responses `input`: a string, or items whose `content` (a string or
    /// parts), `arguments` and `output` extraction read.
    fn responses_input(&mut self, v: &mut Json) {
        match v {
            Json::String(s) => self.read_string(s),
            Json::Array(_) => self.each(v, |w, item| {
                w.fields(item, |w, k, v| match k {
                    "content" | "output" => w.content(v),
                    "arguments" => w.text(v),
                    _ => {}
                })
            }),
            _ => {}
        }
    }

    fn text(&mut self, v: &mut Json) {
        if let Json::String(s) = v {
            self.read_string(s);
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
            Json::String(s) => self.read_string(s),
            Json::Array(_) => self.each(v, Rewriter::block),
            _ => {}
        }
    }

    fn block(&mut self, v: &mut Json) {
        self.fields(v, |w, k, v| match k {
            "text" => w.text(v),
            "content" => w.content(v),
            "input" => w.input(v),
            _ => {}
        });
    }

    /// Extraction returned a tool input as one JSON text: its strings are
    /// scanned one by one here.
    fn input(&mut self, v: &mut Json) {
        if *v != Json::Null {
            self.cursor += 1;
            self.everything(v);
        }
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
