//! Per-worker memory of what the text matchers found in recent prompt texts.
//!
//! Applications resend the same system prompt with every request, and a
//! conversation resends its whole history with every turn: without memory,
//! the policy scans each of those texts again on every request (a few µs
//! per KB; a long conversation pays for all of it each turn; and a short
//! system prompt still pays each matcher's fixed cost, a few µs in all).
//! A text of up to [`MAX_TEXT`] bytes is scanned fully once per worker and
//! policy — every phrase, every regex, every PII detector — and what was
//! found is kept, keyed by the policy's id and the text's bytes (exact, no
//! hash is trusted). Only from a text's second sighting: the first is
//! scanned as usual and leaves a 64-bit hash behind, so that texts seen
//! once (most of a conversation's newest turn) cost no more than without
//! memory. The verdict is then made from what was found as from a fresh
//! scan: the rule conditions are applied afterwards, so one scan serves
//! requests whatever their model, key or flags.
//!
//! Bounded by the bytes it holds, each text's plus [`ENTRY_COST`] for its
//! entry ([`MAX_BYTES`] per worker): when full, it starts over. No lock: each worker has its own. Nothing here leaves the
//! process, and it holds nothing the request did not already carry.

use crate::policy::pii::PiiMatch;
use foldhash::{HashMap, HashSet};
use std::cell::RefCell;
use std::hash::BuildHasher;
use std::rc::Rc;

/// Shorter texts are scanned each time: an empty one has nothing to find.
pub(super) const MIN_TEXT: usize = 1;
/// Longer texts are scanned each time (and not held).
pub(super) const MAX_TEXT: usize = 64 * 1024;
/// Bytes held per worker before the memory starts over.
pub(super) const MAX_BYTES: usize = 1 << 20;
/// What an entry costs beside its text's bytes (the key's box, the shared
/// scan and its map slot), so that many short texts stay bounded too.
pub(super) const ENTRY_COST: usize = 128;

/// What the matchers found in one text.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct TextScan {
    /// `prompt_contains` patterns that occur in it.
    pub(super) phrases: Vec<u32>,
    /// `prompt_regex` patterns that match it.
    pub(super) regexes: Vec<u32>,
    /// PII found in it (as text 0), as [`crate::policy::PiiScanner::scan`]
    /// leaves them.
    pub(super) pii: Vec<PiiMatch>,
}

#[derive(Default)]
struct Memo {
    /// Per policy id: text → what was found.
    policies: HashMap<u64, HashMap<Box<str>, Rc<TextScan>>>,
    bytes: usize,
    /// Hashes of (policy, text) seen once; a collision only means a text
    /// is remembered from its first sighting.
    seen: HashSet<u64>,
    hasher: foldhash::fast::RandomState,
}

/// Hashes of texts seen once, kept before that set starts over.
const MAX_SEEN: usize = 64 * 1024;

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(Memo::default());
}

/// What was found in `text` under policy `policy`: remembered, or found by
/// `scan` and remembered; `None` the first time `text` is seen (the caller
/// scans it as it would without memory).
pub(super) fn scan(policy: u64, text: &str, scan: impl FnOnce() -> TextScan) -> Option<Rc<TextScan>> {
    let known = MEMO.with_borrow_mut(|m| {
        if let Some(found) = m.policies.get(&policy).and_then(|t| t.get(text)) {
            return Ok(found.clone());
        }
        let hash = m.hasher.hash_one((policy, text));
        if m.seen.len() >= MAX_SEEN {
            m.seen.clear();
        }
        Err(!m.seen.insert(hash))
    });
    match known {
        Ok(found) => return Some(found),
        Err(false) => return None,
        Err(true) => {}
    }
    let found = Rc::new(scan());
    MEMO.with_borrow_mut(|m| {
        let cost = text.len() + ENTRY_COST;
        if m.bytes + cost > MAX_BYTES {
            m.policies.clear();
            m.bytes = 0;
        }
        m.bytes += cost;
        m.policies
            .entry(policy)
            .or_default()
            .insert(Box::from(text), found.clone());
    });
    Some(found)
}

/// Bytes held by this worker's memory (texts and entries).
#[cfg(test)]
pub(super) fn held() -> usize {
    MEMO.with_borrow(|m| m.bytes)
}
