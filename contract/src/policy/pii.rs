//! PII and secret detection, redaction, and the request body rewrite.
//!
//! Detectors (see [`Detector`]): e-mail addresses; phone numbers (E.164 with or
//! without separators, North American and trunk-0 national numbers with
//! separators — a bare run of digits is never a phone number, so card and
//! order numbers are not mistaken for one); payment cards (13–19 digits,
//! optional space/dash groups, Luhn-checked, issuer digit 2–6); IBANs
//! (registered country, exact length, mod-97); US SSNs (`AAA-GG-SSSS`, never-
//! issued ranges refused); IPv4 (octets ≤ 255); IPv6 (any form `std` parses,
//! compressed included); secrets (OpenAI/Anthropic `sk-…`, AWS `AKIA`/`ASIA`
//! key ids, GitHub `ghp_…`/`github_pat_…`, Google `AIza…`, Slack `xox?-…`,
//! Stripe live keys, PEM private keys).
//!
//! Choices worth knowing:
//! - A dotted quad such as `1.2.3.4` is reported as IPv4 even when the author
//!   meant a version: the two cannot be told apart. A longer dotted sequence
//!   (`1.2.3.4.5`, an OID) is not.
//! - Detectors are independent: a span may count under two of them (an
//!   IPv4-mapped IPv6 address counts as both). Within one detector overlapping
//!   candidates count once. Redaction replaces the union of overlapping spans
//!   with the placeholder of the highest-priority detector among them (order
//!   of [`Detector::ALL`]).
//! - Findings hold counts and positions, never the matched text.
//!
//! Cost: one [`regex::bytes::RegexSet`] pass over each text says which
//! patterns can match; only those are run for positions and validated. A
//! scanner with every detector off does nothing at all.

mod body;
mod detectors;

pub use body::{redact_body, redact_body_found};

use std::fmt;

/// One kind of sensitive data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Detector {
    /// API keys, access tokens and private keys.
    Secret,
    /// Payment card numbers.
    Card,
    /// International bank account numbers.
    Iban,
    /// US social security numbers.
    Ssn,
    /// E-mail addresses.
    Email,
    /// Phone numbers.
    Phone,
    /// IPv6 addresses.
    Ipv6,
    /// IPv4 addresses.
    Ipv4,
}

impl Detector {
    /// The number of detectors.
    pub const COUNT: usize = 8;

    /// Every detector, highest redaction priority first.
    pub const ALL: [Detector; Detector::COUNT] = [
        Detector::Secret,
        Detector::Card,
        Detector::Iban,
        Detector::Ssn,
        Detector::Email,
        Detector::Phone,
        Detector::Ipv6,
        Detector::Ipv4,
    ];

    /// Its name in policy TOML, records and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Detector::Secret => "secret",
            Detector::Card => "card",
            Detector::Iban => "iban",
            Detector::Ssn => "ssn",
            Detector::Email => "email",
            Detector::Phone => "phone",
            Detector::Ipv6 => "ipv6",
            Detector::Ipv4 => "ipv4",
        }
    }

    /// The detector called `name`, if any.
    pub fn from_name(name: &str) -> Option<Detector> {
        Detector::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The text a redacted match is replaced with.
    pub fn placeholder(self) -> &'static str {
        match self {
            Detector::Secret => "[REDACTED_SECRET]",
            Detector::Card => "[REDACTED_CARD]",
            Detector::Iban => "[REDACTED_IBAN]",
            Detector::Ssn => "[REDACTED_SSN]",
            Detector::Email => "[REDACTED_EMAIL]",
            Detector::Phone => "[REDACTED_PHONE]",
            Detector::Ipv6 => "[REDACTED_IPV6]",
            Detector::Ipv4 => "[REDACTED_IPV4]",
        }
    }

    /// The rule id a blocking finding of this detector is reported under.
    pub fn block_rule_id(self) -> &'static str {
        match self {
            Detector::Secret => "pii.secret",
            Detector::Card => "pii.card",
            Detector::Iban => "pii.iban",
            Detector::Ssn => "pii.ssn",
            Detector::Email => "pii.email",
            Detector::Phone => "pii.phone",
            Detector::Ipv6 => "pii.ipv6",
            Detector::Ipv4 => "pii.ipv4",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What to do when a detector finds something.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PiiAction {
    /// Do not look.
    #[default]
    Off,
    /// Replace each match with the detector's placeholder before forwarding.
    Redact,
    /// Refuse the request.
    Block,
}

/// The action of each detector; all off by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PiiConfig {
    actions: [PiiAction; Detector::COUNT],
}

impl PiiConfig {
    /// Every detector set to `action`.
    pub fn all(action: PiiAction) -> Self {
        PiiConfig {
            actions: [action; Detector::COUNT],
        }
    }

    /// This config with `detector` set to `action`.
    pub fn with(mut self, detector: Detector, action: PiiAction) -> Self {
        self.set(detector, action);
        self
    }

    /// Sets `detector` to `action`.
    pub fn set(&mut self, detector: Detector, action: PiiAction) {
        self.actions[detector.index()] = action;
    }

    /// The action of `detector`.
    pub fn action(&self, detector: Detector) -> PiiAction {
        self.actions[detector.index()]
    }
}

/// One validated match: which detector, in which text, where (byte offsets).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PiiMatch {
    /// What was found.
    pub detector: Detector,
    /// Index of the text it was found in (0 for [`PiiScanner::scan`]).
    pub text: usize,
    /// Byte offset of its start.
    pub start: usize,
    /// Byte offset just past its end.
    pub end: usize,
}

/// What a scan found: counts per detector and positions. Never the values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PiiFindings {
    counts: [u32; Detector::COUNT],
    /// Every match, ordered by text, then start.
    pub matches: Vec<PiiMatch>,
}

impl PiiFindings {
    /// How many matches `detector` had.
    pub fn count(&self, detector: Detector) -> u32 {
        self.counts[detector.index()]
    }

    /// Matches of all detectors together.
    pub fn total(&self) -> u32 {
        self.counts.iter().sum()
    }

    /// Adds the findings of a one-text scan ([`PiiScanner::scan`]) as those
    /// of text number `index`, which must come after every text added so far.
    pub fn append_text(&mut self, scan: &[PiiMatch], index: usize) {
        for &m in scan {
            self.counts[m.detector.index()] += 1;
            self.matches.push(PiiMatch { text: index, ..m });
        }
    }

    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        self.matches.is_empty()
    }

    /// `(detector, count)` for each detector that found something.
    pub fn counts(&self) -> impl Iterator<Item = (Detector, u32)> + '_ {
        Detector::ALL
            .into_iter()
            .map(|d| (d, self.count(d)))
            .filter(|&(_, n)| n > 0)
    }
}

/// The detector bank failed to compile (a bug: the tests compile it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PiiUnavailable;

impl fmt::Display for PiiUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the PII detector patterns failed to compile")
    }
}

impl std::error::Error for PiiUnavailable {}

/// Scans texts with the detectors a [`PiiConfig`] turns on. Cheap to build:
/// the patterns are compiled once per process and shared.
#[derive(Clone)]
pub struct PiiScanner {
    config: PiiConfig,
    bank: &'static detectors::Bank,
}

impl fmt::Debug for PiiScanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PiiScanner")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl PiiScanner {
    /// A scanner for `config`.
    pub fn new(config: PiiConfig) -> Result<Self, PiiUnavailable> {
        let bank = detectors::bank().ok_or(PiiUnavailable)?;
        Ok(PiiScanner { config, bank })
    }

    /// Its config.
    pub fn config(&self) -> &PiiConfig {
        &self.config
    }

    /// True when at least one detector is on.
    pub fn is_active(&self) -> bool {
        self.config.actions.iter().any(|&a| a != PiiAction::Off)
    }

    /// Scans one text.
    pub fn scan(&self, text: &str) -> PiiFindings {
        let mut out = PiiFindings::default();
        self.scan_into(text, 0, &mut out);
        out
    }

    /// Scans text number `index` of a request, adding to `out`.
    pub fn scan_into(&self, text: &str, index: usize, out: &mut PiiFindings) {
        if !self.is_active() || text.is_empty() {
            return;
        }
        let hay = text.as_bytes();
        let candidates = self.bank.set.matches(hay);
        if !candidates.matched_any() {
            return;
        }
        let first = out.matches.len();
        for i in candidates.iter() {
            let Some(entry) = self.bank.entries.get(i) else {
                continue;
            };
            if self.config.action(entry.detector) == PiiAction::Off {
                continue;
            }
            for m in entry.regex.find_iter(hay) {
                if let Some((start, end)) = (entry.validate)(hay, m.start(), m.end()) {
                    out.matches.push(PiiMatch {
                        detector: entry.detector,
                        text: index,
                        start,
                        end,
                    });
                }
            }
        }
        let new = &mut out.matches[first..];
        new.sort_unstable_by_key(|m| (m.start, std::cmp::Reverse(m.end), m.detector));
        // Within one detector, overlapping candidates (an E.164 number and the
        // national number inside it) are one finding: keep the first, longest.
        let mut last_end = [0usize; Detector::COUNT];
        let mut kept = first;
        for j in first..out.matches.len() {
            let m = out.matches[j];
            let d = m.detector.index();
            if m.start < last_end[d] {
                continue;
            }
            last_end[d] = m.end;
            out.counts[d] += 1;
            out.matches[kept] = m;
            kept += 1;
        }
        out.matches.truncate(kept);
    }

    /// The first detector (in [`Detector::ALL`] order) set to block that found
    /// something.
    pub fn blocked_by(&self, findings: &PiiFindings) -> Option<Detector> {
        Detector::ALL
            .into_iter()
            .find(|&d| self.config.action(d) == PiiAction::Block && findings.count(d) > 0)
    }

    /// True when something was found by a detector set to redact.
    pub fn wants_redaction(&self, findings: &PiiFindings) -> bool {
        findings
            .matches
            .iter()
            .any(|m| self.config.action(m.detector) == PiiAction::Redact)
    }

    /// `text` with every match of a redacting detector replaced by its
    /// placeholder; `None` when there was nothing to redact.
    pub fn redact(&self, text: &str) -> Option<String> {
        let findings = self.scan(text);
        self.redact_found(text, &findings.matches)
    }

    /// Redacts `text` given its matches (all from this text, ordered by start).
    pub fn redact_found(&self, text: &str, matches: &[PiiMatch]) -> Option<String> {
        let mut spans = matches
            .iter()
            .filter(|m| self.config.action(m.detector) == PiiAction::Redact);
        let first = spans.next()?;
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        let (mut start, mut end, mut det) = (first.start, first.end, first.detector);
        for m in spans {
            if m.start < end {
                end = end.max(m.end);
                det = det.min(m.detector);
                continue;
            }
            push_redacted(&mut out, text, &mut copied, (start, end), det);
            (start, end, det) = (m.start, m.end, m.detector);
        }
        push_redacted(&mut out, text, &mut copied, (start, end), det);
        out.push_str(text.get(copied..).unwrap_or(""));
        Some(out)
    }
}

/// Copies `text[copied..start]` and the placeholder for `start..end`. Spans
/// lie on character boundaries (see `detectors`); one that did not would be
/// skipped rather than panic.
fn push_redacted(out: &mut String, text: &str, copied: &mut usize, span: (usize, usize), d: Detector) {
    let (start, end) = span;
    if let Some(before) = text.get(*copied..start) {
        if text.is_char_boundary(end) {
            out.push_str(before);
            out.push_str(d.placeholder());
            *copied = end;
        }
    }
}

#[cfg(test)]
mod tests;
