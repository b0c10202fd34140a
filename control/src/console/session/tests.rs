use super::*;

/// A principal as the admin API has one: a token name and its scope.
#[derive(Clone, Debug, PartialEq)]
struct Principal {
    name: String,
    scope: &'static str,
}

impl Named for Principal {
    fn token_name(&self) -> &str {
        &self.name
    }
}

fn root() -> Principal {
    Principal {
        name: "root".into(),
        scope: "admin",
    }
}

fn sessions(idle_ms: u64) -> Sessions<Principal> {
    Sessions::new(Config {
        idle_ms,
        secure: false,
    })
}

#[test]
fn a_session_is_resumed_by_its_id_only_and_ends_when_idle() {
    let s = sessions(1_000);
    let (id, opened) = s.open(root(), 10_000).unwrap();
    assert_eq!(id.len(), 64);
    assert_ne!(id, opened.csrf, "the id and the CSRF token are separate secrets");
    assert_eq!(s.resume(&id, 10_500).unwrap().principal, root());
    // Each request restarts the idle clock.
    assert!(s.resume(&id, 11_400).is_ok());
    assert!(s.resume(&id, 12_300).is_ok());
    assert_eq!(s.resume(&id, 13_300).unwrap_err(), Refusal::NoSession);
    // Gone for good, not only refused once.
    assert_eq!(s.resume(&id, 13_301).unwrap_err(), Refusal::NoSession);
    let mut wrong = id.clone();
    wrong.replace_range(0..1, if id.starts_with('0') { "1" } else { "0" });
    let (id2, _) = s.open(root(), 20_000).unwrap();
    assert_eq!(s.resume(&wrong, 20_001).unwrap_err(), Refusal::NoSession);
    assert_ne!(id, id2, "ids are random");
}

#[test]
fn a_session_ends_at_its_maximum_age_however_busy() {
    let s = sessions(MAX_AGE_MS);
    let (id, _) = s.open(root(), 0).unwrap();
    let mut t = 0;
    while t + 60_000 < MAX_AGE_MS {
        t += 60_000;
        assert!(s.resume(&id, t).is_ok());
    }
    assert!(s.resume(&id, MAX_AGE_MS).is_err());
}

#[test]
fn sign_out_and_revocation_end_sessions() {
    let s = sessions(60_000);
    let (a, _) = s.open(root(), 0).unwrap();
    let ops = Principal {
        name: "ops".into(),
        scope: "read",
    };
    let (b, _) = s.open(ops.clone(), 0).unwrap();
    let (c, _) = s.open(ops, 0).unwrap();
    s.close(&a);
    assert!(s.resume(&a, 1).is_err());
    s.close_all_of("ops");
    assert!(s.resume(&b, 1).is_err());
    assert!(s.resume(&c, 1).is_err());
}

#[test]
fn a_sign_in_code_works_once_and_not_after_it_expires() {
    let s = sessions(60_000);
    let (code, expires) = s.issue_code(root(), 1_000).unwrap();
    assert_eq!(expires, 1_000 + CODE_TTL_MS);
    assert_eq!(s.redeem(&code, 2_000), Some(root()));
    assert_eq!(s.redeem(&code, 2_001), None, "one use");
    let (late, _) = s.issue_code(root(), 0).unwrap();
    assert_eq!(s.redeem(&late, CODE_TTL_MS), None);
    assert_eq!(s.redeem(&late, 1), None, "an expired code is used up too");
    assert_eq!(s.redeem("", 0), None);
}

#[test]
fn the_cookie_is_http_only_strict_and_secure_under_tls() {
    let c = set_cookie("abc", false);
    assert_eq!(c, "sluice_console=abc; Path=/ui; HttpOnly; SameSite=Strict");
    assert!(set_cookie("abc", true).ends_with("; Secure"));
    assert!(clear_cookie(false).contains("Max-Age=0"));
    assert!(
        !c.contains("Max-Age"),
        "a session cookie: the browser forgets it on exit"
    );
}

#[test]
fn the_session_id_is_read_from_cookie_headers() {
    let id = "ab".repeat(32);
    let h = format!("theme=dark; {COOKIE}={id}; other=1");
    assert_eq!(cookie_id([h.as_str()]), Some(id.as_str()));
    let split = format!("{COOKIE}={id}");
    assert_eq!(cookie_id(["a=b", split.as_str()]), Some(id.as_str()));
    assert_eq!(cookie_id(["sluice_console_x=ab"]), None);
    assert_eq!(cookie_id([format!("{COOKIE}=").as_str()]), None);
    assert_eq!(cookie_id([format!("{COOKIE}=not hex!").as_str()]), None);
    assert_eq!(cookie_id([]), None);
}

#[test]
fn changes_need_the_csrf_token_and_the_own_origin() {
    let s = sessions(60_000);
    let (_, session) = s.open(root(), 0).unwrap();
    assert!(check_change(&session, Some(&session.csrf)).is_ok());
    assert_eq!(check_change(&session, None), Err(Refusal::Csrf));
    assert_eq!(check_change(&session, Some("")), Err(Refusal::Csrf));
    let mut near = session.csrf.clone();
    near.push('0');
    assert_eq!(check_change(&session, Some(&near)), Err(Refusal::Csrf));

    let host = Some("127.0.0.1:7071");
    assert!(check_origin(Some("http://127.0.0.1:7071"), Some("same-origin"), host, false).is_ok());
    assert!(check_origin(Some("http://127.0.0.1:7071"), None, host, false).is_ok());
    for (origin, site, secure) in [
        (None, None, false),
        (Some("null"), None, false),
        (Some("http://evil.example"), None, false),
        (Some("http://127.0.0.1:7072"), None, false),
        (Some("http://127.0.0.1:7071"), None, true),
        (Some("http://127.0.0.1:7071"), Some("cross-site"), false),
        (Some("http://127.0.0.1:7071"), Some("same-site"), false),
    ] {
        assert_eq!(
            check_origin(origin, site, host, secure),
            Err(Refusal::Origin),
            "{origin:?} {site:?} {secure}"
        );
    }
    assert!(check_origin(Some("https://h:1"), None, Some("h:1"), true).is_ok());
    assert_eq!(
        check_origin(Some("http://h"), None, None, false),
        Err(Refusal::Origin)
    );
    assert!(changes_state("POST") && changes_state("DELETE") && changes_state("PATCH"));
    assert!(!changes_state("GET") && !changes_state("HEAD"));
}

#[test]
fn sessions_are_bounded() {
    let s = sessions(u64::MAX);
    let (first, _) = s.open(root(), 0).unwrap();
    for i in 0..MAX_SESSIONS as u64 {
        s.open(root(), 1 + i).unwrap();
    }
    assert!(lock(&s.sessions).len() <= MAX_SESSIONS);
    assert!(
        s.resume(&first, MAX_SESSIONS as u64 + 1).is_err(),
        "the least recent went first"
    );
}
