use super::*;
use crate::dialect::Dialect;
use crate::policy::extract::extract;

mod body;

fn only(d: Detector) -> PiiScanner {
    PiiScanner::new(PiiConfig::default().with(d, PiiAction::Redact)).unwrap()
}

/// The matched substrings of `d` alone in `text`.
fn found(d: Detector, text: &str) -> Vec<&str> {
    let f = only(d).scan(text);
    assert!(f.matches.iter().all(|m| m.detector == d));
    assert_eq!(f.count(d) as usize, f.matches.len());
    f.matches.iter().map(|m| &text[m.start..m.end]).collect()
}

/// Each of `positives` is found whole, embedded in a sentence; none of
/// `negatives` yields anything.
fn check(d: Detector, positives: &[&str], negatives: &[&str]) {
    for p in positives {
        let text = format!("see {p}, thanks");
        assert_eq!(found(d, &text), [*p], "{d:?} should find {p:?}");
        assert_eq!(found(d, p), [*p], "{d:?} should find {p:?} alone");
    }
    for n in negatives {
        let text = format!("see {n}, thanks");
        assert_eq!(
            found(d, &text),
            Vec::<&str>::new(),
            "{d:?} should not find anything in {n:?}"
        );
    }
}

#[test]
fn the_bank_compiles() {
    let bank = detectors::compile().unwrap();
    assert_eq!(bank.entries.len(), bank.set.len());
    for d in Detector::ALL {
        assert!(
            bank.entries.iter().any(|e| e.detector == d),
            "{d:?} has no pattern"
        );
        assert_eq!(Detector::from_name(d.name()), Some(d));
        assert!(d.placeholder().starts_with("[REDACTED_") && d.block_rule_id().starts_with("pii."));
    }
}

#[test]
fn email() {
    check(
        Detector::Email,
        &[
            "alice@example.com",
            "first.last+tag@sub.domain.co.uk",
            "x_y%z@ex-ample.io",
            "BOB@EXAMPLE.ORG",
        ],
        &[
            "alice@localhost",
            "@handle",
            "a@b",
            "mailto:",
            "user at example dot com",
        ],
    );
}

#[test]
fn phone() {
    check(
        Detector::Phone,
        &[
            "+14155552671",
            "+1 415 555 2671",
            "+1 (415) 555-2671",
            "+44 20 7946 0958",
            "+33 6 12 34 56 78",
            "+49 (0)30 1234567",
            "+91-98765-43210",
            "(415) 555-2671",
            "415-555-2671",
            "415.555.2671",
            "415 555 2671",
            "020 7946 0958",
            "06 12 34 56 78",
            "030/1234567",
        ],
        &[
            "4155552671",
            "order 123456789012",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "5500 0000 0000 0004",
            "2024-01-02",
            "01.02.2024",
            "01.02.2024 12:30",
            "12:30:45",
            "+1 2",
            "415-555.2671",
            "3.14159",
            "1-415-555-2671-99",
            "ISBN 978-3-16-148410-0",
            // An SSN, and an IBAN in groups of four, are not phone numbers.
            "078-05-1120",
            "DE89 3704 0044 0532 0130 00",
            "GB82 WEST 1234 5698 7654 32",
        ],
    );
}

#[test]
fn card() {
    check(
        Detector::Card,
        &[
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "5500 0000 0000 0004",
            "378282246310005",
            "3782 822463 10005",
            "6011111111111117",
            "2223003122003222",
            "4222222222222",
            "3530111333300000",
            "30569309025904",
        ],
        &[
            "4111111111111112",        // Luhn-invalid
            "4111 1111 1111 1112",     // Luhn-invalid, grouped
            "1234567812345670",        // Luhn-valid, but no network starts with 1
            "9876543210123452",        // Luhn-valid order number starting with 9
            "7000000000000005",        // Luhn-valid, starts with 7
            "12345678901234567890123", // too long
            "411111111111",            // too short
            "2024-01-02",
            "1.2.3.4",
            "4111.1111.1111.1111", // dots are not card separators
        ],
    );
    // A neighbouring number is left out of the span.
    assert_eq!(
        found(Detector::Card, "order 12 4111 1111 1111 1111"),
        ["4111 1111 1111 1111"]
    );
    assert_eq!(
        found(Detector::Card, "4111111111111111 23 units"),
        ["4111111111111111"]
    );
}

#[test]
fn iban() {
    check(
        Detector::Iban,
        &[
            "DE89 3704 0044 0532 0130 00",
            "DE89370400440532013000",
            "GB82 WEST 1234 5698 7654 32",
            "FR14 2004 1010 0505 0001 3M02 606",
            "NL91ABNA0417164300",
            "NO9386011117947",
            "CH9300762011623852957",
        ],
        &[
            "DE89 3704 0044 0532 0130 01", // check digits wrong
            "XX89370400440532013000",      // no such country
            "DE8937040044053201300",       // one short for DE
            "DE893704004405320130000",     // one long for DE
            "ABCD EFGH IJKL MNOP",
        ],
    );
    // An upper-case word after it is not swallowed.
    assert_eq!(
        found(Detector::Iban, "DE89 3704 0044 0532 0130 00 EUR"),
        ["DE89 3704 0044 0532 0130 00"]
    );
}

#[test]
fn ssn() {
    check(
        Detector::Ssn,
        &["123-45-6789", "078-05-1120", "899-99-9999"],
        &[
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "987-65-4321",
            "123-00-4567",
            "123-45-0000",
            "123-45-67890",
            "1-123-45-6789",
            "123 45 6789",
            "123456789",
        ],
    );
}

#[test]
fn ipv4() {
    // `1.2.3.4` is reported: a dotted quad cannot be told from a version.
    check(
        Detector::Ipv4,
        &[
            "192.168.1.1",
            "10.0.0.255",
            "255.255.255.255",
            "8.8.8.8",
            "0.0.0.0",
            "1.2.3.4",
        ],
        &[
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "v1.2.3.4",
            "192.168.1",
            "1.2.3.256",
            "10.0.0.1a",
        ],
    );
}

#[test]
fn ipv6() {
    check(
        Detector::Ipv6,
        &[
            "2001:db8::1",
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            "fe80::1ff:fe23:4567:890a",
            "::ffff:192.168.1.1",
            "2001:db8:0:0:1:0:0:1",
            "2001:DB8::8:800:200C:417A",
        ],
        &[
            "std::io::Read",
            "a::b",
            "dead::beef",
            "12:30:45",
            "00:1a:2b:3c:4d:5e",
            "::1",
            "::",
            "note: this",
            "key:value:x",
        ],
    );
    assert_eq!(
        found(Detector::Ipv6, "http://[2001:db8::1]:443/"),
        ["2001:db8::1"]
    );
    assert_eq!(found(Detector::Ipv6, "at fe80::1:2: done"), ["fe80::1:2"]);
}

#[test]
fn secrets() {
    let sk_proj = format!("sk-proj-{}", "aB3_dE6-gH9".repeat(5));
    let sk_ant = format!("sk-ant-api03-{}", "Zx9Yw8Vu7T".repeat(9));
    let sk_legacy = format!("sk-{}", "A1b2C3d4E5f6".repeat(4));
    let ghp = format!("ghp_{}", "a1B2c3D4e5F6".repeat(3));
    let pat = format!("github_pat_{}", "11ABCDEFG0_".repeat(4));
    let aiza = format!("AIza{}", "SyA-bc_DEf1234567890abcdefghijklmnopqrs");
    let aiza = &aiza[..39];
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7x\nabc+/=\n-----END RSA PRIVATE KEY-----";
    let pem_cut = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nAbCd";
    let positives = [
        sk_proj.as_str(),
        &sk_ant,
        &sk_legacy,
        "AKIAIOSFODNN7EXAMPLE",
        "ASIAIOSFODNN7EXAMPLE",
        &ghp,
        &pat,
        aiza,
        "xoxb-123456789012-abcdefABCDEF",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        pem,
        pem_cut,
    ];
    let aiza_long = format!("{aiza}X");
    let negatives = [
        "sk-short",
        "task-force-alpha-bravo-charlie-delta",
        "AKIA1234",
        "AKIAIOSFODNN7EXAMPLEX",
        "ghp_short",
        &aiza[..38],
        &aiza_long,
        "-----BEGIN PUBLIC KEY-----",
    ];
    check(Detector::Secret, &positives, &negatives);
}

#[test]
fn redaction_replaces_with_typed_placeholders() {
    let s = PiiScanner::new(PiiConfig::all(PiiAction::Redact)).unwrap();
    let text = "名前: alice@example.com, tel +1 415 555 2671, card 4111-1111-1111-1111 — ok";
    assert_eq!(
        s.redact(text).unwrap(),
        "名前: [REDACTED_EMAIL], tel [REDACTED_PHONE], card [REDACTED_CARD] — ok"
    );
    assert_eq!(s.redact("nothing to see here"), None);
    assert_eq!(s.redact(""), None);
    // Overlapping findings of two detectors: one placeholder, the higher priority.
    let f = s.scan("mapped ::ffff:192.168.1.1 here");
    assert_eq!((f.count(Detector::Ipv6), f.count(Detector::Ipv4)), (1, 1));
    assert_eq!(
        s.redact("mapped ::ffff:192.168.1.1 here").unwrap(),
        "mapped [REDACTED_IPV6] here"
    );
    // Within a detector, an E.164 number and the national number inside it count once.
    let f = s.scan("+1 415-555-2671");
    assert_eq!(f.count(Detector::Phone), 1);
}

#[test]
fn actions_are_per_detector() {
    let cfg = PiiConfig::default()
        .with(Detector::Card, PiiAction::Block)
        .with(Detector::Email, PiiAction::Redact);
    let s = PiiScanner::new(cfg).unwrap();
    let text = "card 4111111111111111 mail a@b.co ip 10.0.0.1";
    let f = s.scan(text);
    assert_eq!(f.count(Detector::Card), 1);
    assert_eq!(f.count(Detector::Email), 1);
    assert_eq!(f.count(Detector::Ipv4), 0, "off detectors do not look");
    assert_eq!(f.total(), 2);
    assert_eq!(
        f.counts().collect::<Vec<_>>(),
        [(Detector::Card, 1), (Detector::Email, 1)]
    );
    assert_eq!(s.blocked_by(&f), Some(Detector::Card));
    assert!(s.wants_redaction(&f));
    // Blocking detectors are not redacted: the request is refused instead.
    assert_eq!(
        s.redact(text).unwrap(),
        "card 4111111111111111 mail [REDACTED_EMAIL] ip 10.0.0.1"
    );

    let off = PiiScanner::new(PiiConfig::default()).unwrap();
    assert!(!off.is_active());
    assert!(off.scan(text).is_empty());
    assert_eq!(off.redact(text), None);
}

#[test]
fn findings_never_hold_values() {
    let s = PiiScanner::new(PiiConfig::all(PiiAction::Block)).unwrap();
    let f = s.scan("alice@example.com");
    let debug = format!("{f:?}");
    assert!(!debug.contains("alice"), "{debug}");
}

#[test]
fn texts_are_indexed_in_request_findings() {
    let s = only(Detector::Email);
    let mut f = PiiFindings::default();
    s.scan_into("a@b.co", 0, &mut f);
    s.scan_into("none", 1, &mut f);
    s.scan_into("x c@d.io", 2, &mut f);
    assert_eq!(
        f.matches.iter().map(|m| (m.text, m.start)).collect::<Vec<_>>(),
        [(0, 0), (2, 2)]
    );
    assert_eq!(f.count(Detector::Email), 2);
}

#[test]
fn digit_heavy_text_stays_correct() {
    // Many candidates at once: every number is checked on its own.
    fn luhn_ok(n: u64) -> bool {
        let digits = n.to_string();
        let sum: u32 = digits
            .bytes()
            .rev()
            .enumerate()
            .map(|(i, b)| {
                let d = u32::from(b - b'0') * if i % 2 == 1 { 2 } else { 1 };
                if d > 9 {
                    d - 9
                } else {
                    d
                }
            })
            .sum();
        sum.is_multiple_of(10)
    }
    let numbers: Vec<u64> = (0..500).map(|i| 4_000_000_000_000_000 + i * 7919).collect();
    let text = numbers.iter().map(u64::to_string).collect::<Vec<_>>().join(" ");
    let s = PiiScanner::new(PiiConfig::all(PiiAction::Redact)).unwrap();
    let f = s.scan(&text);
    let valid = numbers.iter().filter(|&&n| luhn_ok(n)).count();
    assert!(valid > 10 && valid < 100, "{valid}");
    assert_eq!(f.count(Detector::Card) as usize, valid);
    assert_eq!(f.total() as usize, valid, "nothing else in plain numbers");
}

#[test]
fn random_text_never_panics_and_redaction_removes_every_finding() {
    let alphabet: Vec<char> = "0123456789 .-+()@:/_ABCDEFZskabcdef\n\té中👍".chars().collect();
    let s = PiiScanner::new(PiiConfig::all(PiiAction::Redact)).unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..300 {
        let len = (x % 200) as usize;
        let text: String = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                alphabet[(x % alphabet.len() as u64) as usize]
            })
            .collect();
        let f = s.scan(&text);
        for m in &f.matches {
            assert!(text.is_char_boundary(m.start) && text.is_char_boundary(m.end) && m.start < m.end);
        }
        if let Some(r) = s.redact(&text) {
            assert!(!f.is_empty());
            // Placeholders contain nothing any detector finds.
            assert!(s.scan(&r).is_empty(), "{text:?} -> {r:?}");
        }
    }
}
