//! The shared text matchers: every rule's `prompt_contains` strings in one
//! Aho-Corasick automaton, every rule's regexes together; each run once per
//! request over the prompt texts, yielding the set of rules whose text
//! condition holds.
//!
//! Measured on a 2 KB prompt (criterion, this project's 2-core VM), which
//! shaped this:
//! - An overlapping Aho-Corasick search cannot use a prefilter and costs
//!   ~5 µs; an ASCII-case-insensitive automaton loses its prefilter too
//!   (~5.7 µs). A leftmost search of a case-sensitive automaton over the
//!   text lowercased into a reused buffer costs ~0.4 µs. So: lowercase, ask
//!   the fast automaton whether anything matches, and only when something
//!   does, run the overlapping one to learn every string that occurs.
//! - A `RegexSet` runs a lazy DFA over every byte with no literal prefilter
//!   and no early exit (~6–8 µs for 4 regexes), where separate regexes'
//!   `is_match` use their literal prefilters and stop at the first match
//!   (~0.1–0.7 µs each). So: separate regexes up to [`SET_ABOVE`] distinct
//!   ones, one `RegexSet` beyond, where the set's single pass wins.

use super::{Bits, PolicyError, REGEX_SIZE_LIMIT};
use aho_corasick::{AhoCorasick, MatchKind};
use regex::{Regex, RegexSet, RegexSetBuilder};

/// Above this many distinct regexes, one `RegexSet` is used.
pub(super) const SET_ABOVE: usize = 16;

/// Marks in `out` the rules of pattern `p`.
pub(super) fn mark(rules: &[Box<[u32]>], p: usize, out: &mut Bits) {
    if let Some(rs) = rules.get(p) {
        rs.iter().for_each(|&r| out.set(r as usize));
    }
}

/// True when some rule using pattern `p` is still a candidate.
fn wanted(rules: &[Box<[u32]>], p: usize, candidates: &[bool]) -> bool {
    rules
        .get(p)
        .is_some_and(|rs| rs.iter().any(|&r| candidates.get(r as usize) == Some(&true)))
}

/// All `prompt_contains` strings (ASCII-lowercased, deduplicated).
#[derive(Debug)]
pub(super) struct Phrases {
    quick: AhoCorasick,
    all: AhoCorasick,
    rules: Vec<Box<[u32]>>,
}

impl Phrases {
    /// `patterns` are lowercased already; `rules[p]` uses pattern `p`.
    pub(super) fn build(patterns: &[String], rules: Vec<Vec<u32>>) -> Result<Option<Phrases>, PolicyError> {
        if patterns.is_empty() {
            return Ok(None);
        }
        let internal = |e: aho_corasick::BuildError| PolicyError::Internal(e.to_string());
        let quick = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(patterns)
            .map_err(internal)?;
        let all = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(patterns)
            .map_err(internal)?;
        let rules = rules.into_iter().map(Vec::into_boxed_slice).collect();
        Ok(Some(Phrases { quick, all, rules }))
    }

    /// The rules of each pattern (`rules[p]`).
    pub(super) fn rules(&self) -> &[Box<[u32]>] {
        &self.rules
    }

    /// Appends to `out` every pattern that occurs in `text` (each once);
    /// `lower` is a reused buffer.
    pub(super) fn patterns_in(&self, text: &str, lower: &mut Vec<u8>, out: &mut Vec<u32>) {
        lower.clear();
        lower.extend(text.bytes().map(|b| b.to_ascii_lowercase()));
        if !self.quick.is_match(&**lower) {
            return;
        }
        let first = out.len();
        for m in self.all.find_overlapping_iter(&**lower) {
            let p = m.pattern().as_u32();
            if !out[first..].contains(&p) {
                out.push(p);
            }
        }
    }

    /// Marks in `out` every rule one of whose strings occurs in a text.
    pub(super) fn hits(&self, texts: &[&str], out: &mut Bits) {
        if texts.is_empty() {
            return;
        }
        let mut seen = vec![false; self.rules.len()];
        let mut left = seen.len();
        let mut lower = Vec::new();
        for t in texts {
            lower.clear();
            lower.extend(t.bytes().map(|b| b.to_ascii_lowercase()));
            if !self.quick.is_match(&lower) {
                continue;
            }
            for m in self.all.find_overlapping_iter(&lower) {
                let p = m.pattern().as_usize();
                if let Some(s) = seen.get_mut(p).filter(|s| !**s) {
                    *s = true;
                    mark(&self.rules, p, out);
                    left -= 1;
                    if left == 0 {
                        return;
                    }
                }
            }
        }
    }
}

/// All `prompt_regex` patterns (deduplicated).
#[derive(Debug)]
pub(super) struct Regexes {
    engine: Engine,
    rules: Vec<Box<[u32]>>,
}

#[derive(Debug)]
enum Engine {
    Each(Vec<Regex>),
    Set(RegexSet),
}

impl Regexes {
    /// `compiled[p]` is `patterns[p]` compiled; `rules[p]` uses pattern `p`.
    pub(super) fn build(
        patterns: &[String],
        compiled: Vec<Regex>,
        rules: Vec<Vec<u32>>,
    ) -> Result<Option<Regexes>, PolicyError> {
        if patterns.is_empty() {
            return Ok(None);
        }
        let engine = if patterns.len() <= SET_ABOVE {
            Engine::Each(compiled)
        } else {
            let limit = REGEX_SIZE_LIMIT * 16;
            let set = RegexSetBuilder::new(patterns)
                .size_limit(limit)
                .build()
                .map_err(|_| PolicyError::TooLarge {
                    what: "regex bytes once compiled",
                    limit,
                })?;
            Engine::Set(set)
        };
        let rules = rules.into_iter().map(Vec::into_boxed_slice).collect();
        Ok(Some(Regexes { engine, rules }))
    }

    /// True when the regexes run as one `RegexSet`.
    #[cfg(test)]
    pub(super) fn is_set(&self) -> bool {
        matches!(self.engine, Engine::Set(_))
    }

    /// The rules of each pattern (`rules[p]`).
    pub(super) fn rules(&self) -> &[Box<[u32]>] {
        &self.rules
    }

    /// Appends to `out` every pattern that matches `text`.
    pub(super) fn patterns_in(&self, text: &str, out: &mut Vec<u32>) {
        match &self.engine {
            Engine::Each(regexes) => out.extend(
                (0u32..)
                    .zip(regexes)
                    .filter(|(_, re)| re.is_match(text))
                    .map(|(p, _)| p),
            ),
            Engine::Set(set) => out.extend(set.matches(text).iter().map(|p| p as u32)),
        }
    }

    /// Marks in `out` every rule one of whose regexes matches a text; skips
    /// regexes no `candidates` rule uses.
    pub(super) fn hits(&self, texts: &[&str], candidates: &[bool], out: &mut Bits) {
        if texts.is_empty() {
            return;
        }
        match &self.engine {
            Engine::Each(regexes) => {
                for (p, re) in regexes.iter().enumerate() {
                    if wanted(&self.rules, p, candidates) && texts.iter().any(|t| re.is_match(t)) {
                        mark(&self.rules, p, out);
                    }
                }
            }
            Engine::Set(set) => {
                let mut seen = vec![false; self.rules.len()];
                let mut left = seen.len();
                for t in texts {
                    for p in set.matches(t).iter() {
                        if let Some(s) = seen.get_mut(p).filter(|s| !**s) {
                            *s = true;
                            mark(&self.rules, p, out);
                            left -= 1;
                        }
                    }
                    if left == 0 {
                        return;
                    }
                }
            }
        }
    }
}
