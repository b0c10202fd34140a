//! The detector bank: candidate patterns and their validators.
//!
//! Every pattern is compiled once per process, byte-oriented and ASCII-only
//! (`unicode(false)`: `\b` is an ASCII word boundary, classes are ASCII), which
//! keeps the lazy DFA small and fast. A pattern finds candidates; its
//! validator decides, and may narrow the span (a card number glued to a
//! neighbouring group, an IBAN followed by an upper-case word).
//!
//! Since every pattern matches ASCII only at its ends, a validated span starts
//! and ends on a character boundary of the `&str` it came from.

use super::Detector;
use regex::bytes::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use std::net::Ipv6Addr;
use std::sync::OnceLock;

/// Decides whether `hay[start..end]` is a finding, and returns its span.
type Validate = fn(hay: &[u8], start: usize, end: usize) -> Option<(usize, usize)>;

struct Spec {
    detector: Detector,
    pattern: &'static str,
    validate: Validate,
}

const SPECS: &[Spec] = &[
    // OpenAI `sk-`, `sk-proj-`, `sk-svcacct-`; Anthropic `sk-ant-api03-`; Sluice's own
    // gateway keys `sk-sluice-` (a gateway key in a prompt is a leaked secret too).
    spec(Detector::Secret, r"\bsk-[A-Za-z0-9_\-]{20,}", token_end),
    spec(Detector::Secret, r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", any),
    spec(Detector::Secret, r"\bgh[pousr]_[A-Za-z0-9]{36,}\b", any),
    spec(Detector::Secret, r"\bgithub_pat_[A-Za-z0-9_]{22,}", any),
    spec(Detector::Secret, r"\bAIza[0-9A-Za-z_\-]{35}", token_end),
    spec(Detector::Secret, r"\bxox[abposr]-[A-Za-z0-9\-]{10,}", any),
    spec(Detector::Secret, r"\b[rs]k_live_[A-Za-z0-9]{20,}", any),
    // A whole PEM block when its END line is there, else the header and the
    // base64 body that follows it.
    spec(
        Detector::Secret,
        r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----(?:[\x00-\xFF]*?-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----|[A-Za-z0-9+/=\s]*)",
        trim_trailing_space,
    ),
    spec(Detector::Card, r"\b[0-9](?:[ \-]?[0-9]){12,18}\b", card),
    spec(Detector::Iban, r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}\b", iban),
    spec(Detector::Ssn, r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b", ssn),
    spec(
        Detector::Email,
        r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}",
        any,
    ),
    // E.164 with or without separators: +14155552671, +44 20 7946 0958, +49 (0)30 1234567.
    spec(
        Detector::Phone,
        r"\+[1-9][0-9]{0,3}(?:[ .\-]?(?:\([0-9]{1,4}\)|[0-9]{1,6})){1,7}",
        phone_intl,
    ),
    // North American with separators: (415) 555-2671, 415-555-2671, 415.555.2671.
    spec(
        Detector::Phone,
        r"(?:\([2-9][0-9]{2}\) ?|\b[2-9][0-9]{2}[ .\-])[2-9][0-9]{2}[ .\-][0-9]{4}\b",
        phone_nanp,
    ),
    // National with a trunk 0 and separators: 020 7946 0958, 06 12 34 56 78, 030/1234567.
    spec(
        Detector::Phone,
        r"\b0[1-9][0-9]{0,4}(?:[ .\-/][0-9]{2,8}){1,4}\b",
        phone_national,
    ),
    spec(
        Detector::Ipv6,
        r"[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:]*(?:\.[0-9]{1,3}){0,3}",
        ipv6,
    ),
    spec(
        Detector::Ipv4,
        r"\b(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\b",
        ipv4,
    ),
];

const fn spec(detector: Detector, pattern: &'static str, validate: Validate) -> Spec {
    Spec {
        detector,
        pattern,
        validate,
    }
}

/// One compiled pattern.
pub(super) struct Entry {
    pub(super) detector: Detector,
    pub(super) regex: Regex,
    pub(super) validate: Validate,
}

/// All patterns: a set to learn which can match, then each one for positions.
pub(super) struct Bank {
    pub(super) set: RegexSet,
    pub(super) entries: Vec<Entry>,
}

/// The bank, compiled on first use. `None` only if a pattern above failed to
/// compile, which the tests rule out.
pub(super) fn bank() -> Option<&'static Bank> {
    static BANK: OnceLock<Option<Bank>> = OnceLock::new();
    BANK.get_or_init(|| compile().ok()).as_ref()
}

pub(super) fn compile() -> Result<Bank, regex::Error> {
    let set = RegexSetBuilder::new(SPECS.iter().map(|s| s.pattern))
        .unicode(false)
        .dfa_size_limit(8 << 20)
        .build()?;
    let mut entries = Vec::with_capacity(SPECS.len());
    for s in SPECS {
        let regex = RegexBuilder::new(s.pattern).unicode(false).build()?;
        entries.push(Entry {
            detector: s.detector,
            regex,
            validate: s.validate,
        });
    }
    Ok(Bank { set, entries })
}

fn any(_: &[u8], s: usize, e: usize) -> Option<(usize, usize)> {
    Some((s, e))
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// A fixed-length token must not run on into more token characters.
fn token_end(hay: &[u8], s: usize, e: usize) -> Option<(usize, usize)> {
    match hay.get(e) {
        Some(&b) if is_token_byte(b) => None,
        _ => Some((s, e)),
    }
}

fn trim_trailing_space(hay: &[u8], s: usize, mut e: usize) -> Option<(usize, usize)> {
    while e > s && hay[e - 1].is_ascii_whitespace() {
        e -= 1;
    }
    Some((s, e))
}

/// True when the span is glued to a longer dotted or dashed number
/// (`1.2.3.4.5`, `1-555-555-5555-1`): then it is part of something else.
fn glued(hay: &[u8], s: usize, e: usize, seps: &[u8]) -> bool {
    let before = s >= 2 && seps.contains(&hay[s - 1]) && hay[s - 2].is_ascii_digit();
    let after =
        matches!((hay.get(e), hay.get(e + 1)), (Some(c), Some(d)) if seps.contains(c) && d.is_ascii_digit());
    before || after
}

/// Luhn check over the digits of `span` (separators skipped).
fn luhn(span: &[u8]) -> bool {
    let mut sum = 0u32;
    let mut double = false;
    for &b in span.iter().rev().filter(|b| b.is_ascii_digit()) {
        let mut d = u32::from(b - b'0');
        if double {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        double = !double;
    }
    sum.is_multiple_of(10)
}

/// Payment card: 13–19 digits, Luhn-valid, starting with 2–6 (every major
/// network: Mastercard 2/5, Amex and Diners 3, Visa 4, Discover and UnionPay
/// 6), which keeps order and account numbers starting 0, 1, 7, 8, 9 out. The
/// candidate may carry neighbouring digit groups (`order 12 4111 1111 1111
/// 1111`), so every run of whole groups is tried, longest and leftmost first.
fn card(hay: &[u8], s: usize, e: usize) -> Option<(usize, usize)> {
    if glued(hay, s, e, b".-") {
        return None;
    }
    // The regex allows at most 19 digits, so at most 19 groups.
    let mut groups = [(0usize, 0usize); 19];
    let mut n = 0;
    let mut i = s;
    while i < e && n < groups.len() {
        let start = i;
        while i < e && hay[i].is_ascii_digit() {
            i += 1;
        }
        groups[n] = (start, i);
        n += 1;
        i += 1; // the separator
    }
    let groups = &groups[..n];
    for first in 0..n {
        for last in (first..n).rev() {
            let (gs, ge) = (groups[first].0, groups[last].1);
            let span = &hay[gs..ge];
            let digits = span.iter().filter(|b| b.is_ascii_digit()).count();
            if (13..=19).contains(&digits)
                && span.first().is_some_and(|b| (b'2'..=b'6').contains(b))
                && luhn(span)
            {
                return Some((gs, ge));
            }
        }
    }
    None
}

/// IBAN lengths by country (SWIFT IBAN registry).
#[rustfmt::skip]
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24), (b"AE", 23), (b"AL", 28), (b"AT", 20), (b"AZ", 28), (b"BA", 20), (b"BE", 16),
    (b"BG", 22), (b"BH", 22), (b"BI", 27), (b"BR", 29), (b"BY", 28), (b"CH", 21), (b"CR", 22),
    (b"CY", 28), (b"CZ", 24), (b"DE", 22), (b"DJ", 27), (b"DK", 18), (b"DO", 28), (b"EE", 20),
    (b"EG", 29), (b"ES", 24), (b"FI", 18), (b"FK", 18), (b"FO", 18), (b"FR", 27), (b"GB", 22),
    (b"GE", 22), (b"GI", 23), (b"GL", 18), (b"GR", 27), (b"GT", 28), (b"HN", 28), (b"HR", 21),
    (b"HU", 28), (b"IE", 22), (b"IL", 23), (b"IQ", 23), (b"IS", 26), (b"IT", 27), (b"JO", 30),
    (b"KW", 30), (b"KZ", 20), (b"LB", 28), (b"LC", 32), (b"LI", 21), (b"LT", 20), (b"LU", 20),
    (b"LV", 21), (b"LY", 25), (b"MC", 27), (b"MD", 24), (b"ME", 22), (b"MK", 19), (b"MN", 20),
    (b"MR", 27), (b"MT", 31), (b"MU", 30), (b"NI", 28), (b"NL", 18), (b"NO", 15), (b"OM", 23),
    (b"PK", 24), (b"PL", 28), (b"PS", 29), (b"PT", 25), (b"QA", 29), (b"RO", 24), (b"RS", 22),
    (b"RU", 33), (b"SA", 24), (b"SC", 31), (b"SD", 18), (b"SE", 24), (b"SI", 19), (b"SK", 24),
    (b"SM", 27), (b"SO", 23), (b"ST", 25), (b"SV", 28), (b"TL", 23), (b"TN", 24), (b"TR", 26),
    (b"UA", 29), (b"VA", 22), (b"VG", 24), (b"XK", 20), (b"YE", 30),
];

/// IBAN: a registered country, its exact length (the candidate is cut there,
/// at a space), and the ISO 7064 mod-97 check.
fn iban(hay: &[u8], s: usize, e: usize) -> Option<(usize, usize)> {
    let cc = hay.get(s..s + 2)?;
    let len = IBAN_LENGTHS.iter().find(|(c, _)| c.as_slice() == cc)?.1;
    let mut chars = [0u8; 34];
    let mut n = 0;
    let mut end = s;
    for (i, &b) in hay[s..e].iter().enumerate() {
        if b == b' ' {
            continue;
        }
        chars[n] = b;
        n += 1;
        end = s + i + 1;
        if n == len {
            // Either the candidate ends here or a space follows.
            if end < e && hay[end] != b' ' {
                return None;
            }
            break;
        }
    }
    if n != len {
        return None;
    }
    let (head, tail) = chars[..n].split_at(4);
    let mut rem = 0u32;
    for &b in tail.iter().chain(head) {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return None,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    (rem == 1).then_some((s, end))
}

/// US SSN `AAA-GG-SSSS`: area not 000, 666 or 9xx; group not 00; serial not
/// 0000 (the SSA never issues those).
fn ssn(hay: &[u8], s: usize, e: usize) -> Option<(usize, usize)> {
    let d = &hay[s..e];
    let bad =
        d[0] == b'9' || &d[..3] == b"000" || &d[..3] == b"666" || &d[4..6] == b"00" || &d[7..] == b"0000";
    (!bad && !glued(hay, s, e, b"-")).then_some((s, e))
}

fn digit_count(span: &[u8]) -> usize {
    span.iter().filter(|b| b.is_ascii_digit()).count()
}

/// The separators (non-digits) of a span are all the same byte.
fn one_separator(span: &[u8]) -> bool {
    let mut seps = span.iter().filter(|b| !b.is_ascii_digit());
    match seps.next() {
        None => true,
        Some(first) => seps.all(|b| b == first),
    }
}

fn phone_intl(hay: &[u8], s: usize, e: usize) -> Option<(usize, usize)> {
    if s > 0 && (hay[s - 1].is_ascii_alphanumeric() || hay[s - 1] == b'+') {
        return None;
    }
    if hay.get(e).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    (8..=15).contains(&digit_count(&hay[s..e])).then_some((s, e))
}

fn phone_nanp(hay: &[u8], s: usize, e: usize) -> Option<(usize, usize)> {
    let span = &hay[s..e];
    if span[0] != b'(' && span[3] != span[7] {
        return None; // 415-555.2671: mixed separators, not a phone number
    }
    if glued(hay, s, e, b".-") || (s > 0 && hay[s - 1] == b'+') {
        return None;
    }
    Some((s, e))
}

fn phone_national(hay: &[u8], s: usize, e: usize) -> Option<(usize, usize)> {
    let span = &hay[s..e];
    // The tail of a longer run of digit groups (an IBAN written in groups of
    // four: `DE89 3704 0044 0532 0130 00`) is no phone number, nor is the
    // shape of a US SSN (`078-05-1120`).
    let sep = span.iter().copied().find(|b| !b.is_ascii_digit()).unwrap_or(b'-');
    let ssn_shape = span.len() == 11 && span[3] == b'-' && span[6] == b'-';
    let ok = (9..=12).contains(&digit_count(span))
        && one_separator(span)
        && !glued(hay, s, e, b".-/")
        && !glued(hay, s, e, &[sep])
        && !ssn_shape;
    ok.then_some((s, e))
}

fn ipv4(hay: &[u8], s: usize, e: usize) -> Option<(usize, usize)> {
    (!glued(hay, s, e, b".")).then_some((s, e))
}

/// IPv6, as `std` parses it, standing alone, with at least two non-empty
/// groups and one decimal digit: `a::b` in C++ or `std::io` in Rust are not
/// addresses, nor is `::1` worth reporting.
fn ipv6(hay: &[u8], s: usize, mut e: usize) -> Option<(usize, usize)> {
    let before_ok = s == 0 || !(hay[s - 1].is_ascii_alphanumeric() || b":._".contains(&hay[s - 1]));
    let after_ok = hay
        .get(e)
        .is_none_or(|&b| !(b.is_ascii_alphanumeric() || b == b'_'));
    if !before_ok || !after_ok {
        return None;
    }
    // A sentence may end an address with a colon: `at fe80::1: it ...`.
    if e - s > 2 && hay[e - 1] == b':' && hay[e - 2] != b':' {
        e -= 1;
    }
    let span = &hay[s..e];
    let text = std::str::from_utf8(span).ok()?;
    text.parse::<Ipv6Addr>().ok()?;
    let groups = text.split(':').filter(|g| !g.is_empty()).count();
    (groups >= 2 && span.iter().any(u8::is_ascii_digit)).then_some((s, e))
}
