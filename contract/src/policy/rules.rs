//! The tenant policy: model allow-list, token cap, PII actions and ordered
//! allow/block rules, compiled once per snapshot and evaluated per request.
//!
//! ```toml
//! model_allow = ["gpt-4o*", "claude-*"]   # globs; absent = every model
//! max_tokens_cap = 4096                   # a request asking for more is blocked
//! [pii]
//! email = "redact"                        # redact | block | off (default)
//! card = "block"
//! [[rules]]
//! id = "no-codenames"
//! action = "block"                        # or "allow"
//! when.prompt_contains = ["project zeus"] # ASCII case-insensitive, any of
//! when.prompt_regex = ["(?i)ignore (all|previous) instructions"]
//! when.model = ["gpt-4o*"]                # globs, any of
//! when.key = ["k1"]                       # gateway key ids, any of
//! when.max_tokens_above = 1000            # max_tokens given and above this
//! when.stream = true
//! ```
//!
//! Semantics. A rule matches when all its given conditions hold (a rule with
//! none matches every request). Every rule is evaluated and every matching
//! id recorded, in order. The verdict is the first block among, in this order:
//! the model allow-list (`model_allow`), the token cap (`max_tokens_cap`, only
//! when the request states `max_tokens`), the first matching rule when its
//! action is block, and a PII detector set to block (`pii.<detector>`). An
//! allow rule that matches first stops later rules from blocking, but not
//! the allow-list, the cap or PII blocking: those are the tenant's hard limits.
//! Otherwise the verdict is allow, and if a redacting detector found
//! something the rewritten body comes with it.
//!
//! Cost. All rules' `prompt_contains` strings form one Aho-Corasick automaton
//! and all their regexes one matcher (see `matchers` for why it is one
//! `RegexSet` only beyond 16 regexes); each runs once over the prompt texts,
//! only if some rule whose other conditions hold needs it, and the per-rule
//! checks are then bit tests.

mod build;
mod config;
mod glob;
mod matchers;
mod memo;

pub use config::{PolicyError, RuleAction};

use crate::policy::extract::RequestView;
use crate::policy::pii::{redact_body_found, Detector, PiiConfig, PiiFindings, PiiScanner};
use build::{globs, Builder};
use config::{PolicyToml, MAX_TOKENS_CAP_ID, MODEL_ALLOW_ID, REDACT_FAILED_ID};
use glob::Glob;
use matchers::{mark, Phrases, Regexes};
use memo::TextScan;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// At most this many rules.
pub const MAX_RULES: usize = 1024;
/// At most this many `prompt_contains` strings and regexes, each, in all.
pub const MAX_PATTERNS: usize = 4096;
/// Compiled size limit of one regex, and (times 16) of the set.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// What a request is checked with.
#[derive(Clone, Copy, Debug)]
pub struct RequestContext<'a> {
    /// What was read from the body.
    pub view: &'a RequestView<'a>,
    /// The id of the gateway key that authenticated the request.
    pub key_id: &'a str,
    /// The raw body, rewritten when redaction is needed.
    pub body: &'a [u8],
}

/// Allow, or block with the id of the rule that decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Forward the request.
    Allow,
    /// Refuse it.
    Block {
        /// A rule id, or `model_allow`, `max_tokens_cap`, `pii.<detector>`,
        /// `pii.redact_failed`.
        rule_id: Arc<str>,
    },
}

/// The outcome of evaluating a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Allow or block.
    pub verdict: Verdict,
    /// Every matching rule id in policy order, engine checks included
    /// (`model_allow`, `max_tokens_cap`, `pii.<detector>` when they block).
    pub matched: Vec<Arc<str>>,
    /// PII found in the prompt texts (counts go into the record).
    pub pii: PiiFindings,
    /// The body to forward instead of the original, when something was
    /// redacted (only with an allow verdict).
    pub redacted_body: Option<Vec<u8>>,
}

impl Decision {
    /// True when the verdict is allow.
    pub fn allowed(&self) -> bool {
        self.verdict == Verdict::Allow
    }
}

/// One compiled rule.
#[derive(Debug)]
struct Rule {
    id: Arc<str>,
    action: RuleAction,
    contains: bool,
    regex: bool,
    models: Option<Vec<Glob>>,
    keys: Option<Vec<Box<str>>>,
    max_tokens_above: Option<u64>,
    stream: Option<bool>,
}

impl Rule {
    /// The conditions that do not need the prompt texts.
    fn cheap_match(&self, view: &RequestView<'_>, key_id: &str) -> bool {
        let model = self
            .models
            .as_ref()
            .is_none_or(|gs| gs.iter().any(|g| g.matches(&view.model)));
        let key = self
            .keys
            .as_ref()
            .is_none_or(|ks| ks.iter().any(|k| **k == *key_id));
        let tokens = self
            .max_tokens_above
            .is_none_or(|n| view.max_tokens.is_some_and(|m| m > n));
        let stream = self.stream.is_none_or(|s| view.stream == s);
        model && key && tokens && stream
    }
}

/// Records `id` as matched and, if nothing decided yet, as the blocking rule.
fn block(id: &Arc<str>, matched: &mut Vec<Arc<str>>, verdict: &mut Option<Arc<str>>) {
    matched.push(id.clone());
    verdict.get_or_insert_with(|| id.clone());
}

/// A set of rule indices.
#[derive(Clone, Debug, Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }
    fn get(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
}

/// A tenant policy, compiled. Immutable and shareable (`Arc`) across workers.
#[derive(Debug)]
pub struct CompiledPolicy {
    model_allow: Option<Vec<Glob>>,
    max_tokens_cap: Option<u64>,
    pii: PiiScanner,
    rules: Vec<Rule>,
    /// All rules' `prompt_contains` strings.
    contains: Option<Phrases>,
    /// All rules' regexes.
    regexes: Option<Regexes>,
    builtin: [Arc<str>; 3],
    pii_ids: [Arc<str>; Detector::COUNT],
    /// Unique per compiled policy: what [`memo`] remembers is per policy.
    id: u64,
}

impl CompiledPolicy {
    /// Parses, validates and compiles a policy. The control plane calls this
    /// to validate a policy before accepting it.
    pub fn compile(text: &str) -> Result<CompiledPolicy, PolicyError> {
        let doc: PolicyToml =
            toml::from_str(text).map_err(|e| PolicyError::Toml(config::toml_message(&e, text)))?;
        let model_allow = doc
            .model_allow
            .as_deref()
            .map(|g| globs(g, || MODEL_ALLOW_ID.to_owned()))
            .transpose()?;
        let p = &doc.pii;
        let mut pii = PiiConfig::default();
        for (d, a) in [
            (Detector::Email, p.email),
            (Detector::Phone, p.phone),
            (Detector::Card, p.card),
            (Detector::Iban, p.iban),
            (Detector::Ssn, p.ssn),
            (Detector::Ipv4, p.ipv4),
            (Detector::Ipv6, p.ipv6),
            (Detector::Secret, p.secret),
        ] {
            pii.set(d, a.unwrap_or_default());
        }
        let pii = PiiScanner::new(pii).map_err(|e| PolicyError::Internal(e.to_string()))?;
        if doc.rules.len() > MAX_RULES {
            return Err(PolicyError::TooLarge {
                what: "rules",
                limit: MAX_RULES,
            });
        }
        let mut b = Builder::default();
        for (i, raw) in doc.rules.into_iter().enumerate() {
            b.rule(i, raw)?;
        }
        let contains = Phrases::build(&b.contains, b.contains_rules)?;
        let regexes = Regexes::build(&b.regexes, b.compiled, b.regex_rules)?;
        Ok(CompiledPolicy {
            model_allow,
            max_tokens_cap: doc.max_tokens_cap,
            pii,
            rules: b.rules,
            contains,
            regexes,
            builtin: [
                MODEL_ALLOW_ID.into(),
                MAX_TOKENS_CAP_ID.into(),
                REDACT_FAILED_ID.into(),
            ],
            pii_ids: Detector::ALL.map(|d| Arc::from(d.block_rule_id())),
            id: {
                static NEXT: AtomicU64 = AtomicU64::new(0);
                NEXT.fetch_add(1, Ordering::Relaxed)
            },
        })
    }

    /// `max_tokens_cap`: the most completion tokens a request may ask for;
    /// a request that asks for none is given this limit.
    pub fn max_tokens_cap(&self) -> Option<u64> {
        self.max_tokens_cap
    }

    /// The PII scanner this policy configures.
    pub fn pii(&self) -> &PiiScanner {
        &self.pii
    }

    /// The rule ids, in order.
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.rules.iter().map(|r| &*r.id)
    }

    /// Evaluates a request; see the module docs for the semantics.
    pub fn evaluate(&self, req: &RequestContext<'_>) -> Decision {
        self.evaluate_with(req, true)
    }

    /// [`CompiledPolicy::evaluate`], with or without the [`memo`] (the
    /// tests hold the two to the same decisions).
    fn evaluate_with(&self, req: &RequestContext<'_>, remember: bool) -> Decision {
        let view = req.view;
        let mut matched = Vec::new();
        let mut verdict: Option<Arc<str>> = None;
        if let Some(globs) = &self.model_allow {
            if !globs.iter().any(|g| g.matches(&view.model)) {
                block(&self.builtin[0], &mut matched, &mut verdict);
            }
        }
        if let (Some(cap), Some(asked)) = (self.max_tokens_cap, view.max_tokens) {
            if asked > cap {
                block(&self.builtin[1], &mut matched, &mut verdict);
            }
        }
        let cheap = self.rules.iter().map(|r| r.cheap_match(view, req.key_id));
        let cheap: Vec<bool> = cheap.collect();
        let mut pii = PiiFindings::default();
        let (contains_hits, regex_hits) = self.scan_texts(view, &cheap, remember, &mut pii);
        let mut decided = false;
        for (i, rule) in self.rules.iter().enumerate() {
            let hit =
                cheap[i] && (!rule.contains || contains_hits.get(i)) && (!rule.regex || regex_hits.get(i));
            if !hit {
                continue;
            }
            match (decided, rule.action) {
                (false, RuleAction::Block) => block(&rule.id, &mut matched, &mut verdict),
                _ => matched.push(rule.id.clone()),
            }
            decided = true;
        }
        if let Some(d) = self.pii.blocked_by(&pii) {
            block(&self.pii_ids[d as usize], &mut matched, &mut verdict);
        }
        let mut redacted_body = None;
        if verdict.is_none() && self.pii.wants_redaction(&pii) {
            match redact_body_found(&self.pii, view.api, req.body, &view.texts, &pii) {
                Ok(body) => redacted_body = body,
                // Never forward what should have been redacted.
                Err(_) => block(&self.builtin[2], &mut matched, &mut verdict),
            }
        }
        let verdict = match verdict {
            Some(rule_id) => Verdict::Block { rule_id },
            None => Verdict::Allow,
        };
        Decision {
            verdict,
            matched,
            pii,
            redacted_body,
        }
    }

    /// Runs the text matchers over the texts: PII into `pii`; phrases and
    /// regexes, each only if a rule whose cheap conditions hold needs it,
    /// returning the rules hit. Texts the [`memo`] keeps (with `remember`)
    /// are scanned fully at their second sighting and then remembered.
    fn scan_texts(
        &self,
        view: &RequestView<'_>,
        cheap: &[bool],
        remember: bool,
        pii: &mut PiiFindings,
    ) -> (Bits, Bits) {
        let n = self.rules.len();
        let wanted = |f: fn(&Rule) -> bool| self.rules.iter().zip(cheap).any(|(r, &c)| c && f(r));
        let phrases = self.contains.as_ref().filter(|_| wanted(|r| r.contains));
        let regexes = self.regexes.as_ref().filter(|_| wanted(|r| r.regex));
        let mut contains_hits = Bits::new(n);
        let mut regex_hits = Bits::new(n);
        let mut fresh = Vec::new();
        for (i, t) in view.texts.iter().enumerate() {
            let remembered = (remember && (memo::MIN_TEXT..=memo::MAX_TEXT).contains(&t.text.len()))
                .then(|| memo::scan(self.id, &t.text, || self.scan_text(&t.text)))
                .flatten();
            if let Some(found) = remembered {
                if let Some(p) = phrases {
                    found
                        .phrases
                        .iter()
                        .for_each(|&x| mark(p.rules(), x as usize, &mut contains_hits));
                }
                if let Some(r) = regexes {
                    found
                        .regexes
                        .iter()
                        .for_each(|&x| mark(r.rules(), x as usize, &mut regex_hits));
                }
                pii.append_text(&found.pii, i);
            } else {
                fresh.push(t.text.as_ref());
                self.pii.scan_into(&t.text, i, pii);
            }
        }
        if let Some(p) = phrases {
            p.hits(&fresh, &mut contains_hits);
        }
        if let Some(r) = regexes {
            r.hits(&fresh, cheap, &mut regex_hits);
        }
        (contains_hits, regex_hits)
    }

    /// Everything every matcher finds in `text`.
    fn scan_text(&self, text: &str) -> TextScan {
        let mut found = TextScan::default();
        if let Some(p) = &self.contains {
            p.patterns_in(text, &mut Vec::new(), &mut found.phrases);
        }
        if let Some(r) = &self.regexes {
            r.patterns_in(text, &mut found.regexes);
        }
        found.pii = self.pii.scan(text).matches;
        found
    }
}

#[cfg(test)]
mod tests;
