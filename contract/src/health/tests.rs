use super::*;

const S: u64 = 1_000_000_000;

fn cell() -> TargetHealth {
    TargetHealth::new("up".into(), "pk".into())
}

fn policy() -> EjectPolicy {
    EjectPolicy {
        after: 3,
        base_ns: 10 * S,
        max_ns: 35 * S,
        ..EjectPolicy::default()
    }
}

#[test]
fn consecutive_failures_eject_and_a_success_resets_the_count() {
    let h = cell();
    let p = policy();
    assert!(!h.failure(S, &p, false));
    assert!(!h.failure(S, &p, false));
    h.success();
    assert!(!h.failure(S, &p, false));
    assert!(!h.failure(S, &p, false));
    assert_eq!(h.state(S), State::Healthy);
    assert!(h.failure(S, &p, false), "the third in a row ejects");
    assert_eq!(h.state(S), State::Ejected);
    assert_eq!(h.pass(S), Pass::No);
    assert_eq!(h.wait_ns(S), 10 * S);
    // Late failures of requests sent before the ejection change nothing.
    assert!(!h.failure(2 * S, &p, false));
    assert_eq!(h.wait_ns(S), 10 * S);
    assert_eq!(h.counts.ejections.load(Relaxed), 1);
}

#[test]
fn half_open_lets_exactly_one_probe_through() {
    let h = cell();
    let p = policy();
    for _ in 0..3 {
        h.failure(0, &p, false);
    }
    assert_eq!(h.pass(10 * S - 1), Pass::No);
    assert_eq!(h.state(10 * S), State::HalfOpen);
    assert_eq!(h.pass(10 * S), Pass::Probe);
    for _ in 0..100 {
        assert_eq!(h.pass(11 * S), Pass::No, "one probe at a time");
    }
    // A probe that never reports is presumed lost after a while.
    assert_eq!(h.pass(10 * S + PROBE_STALE_NS), Pass::Probe);
    assert_eq!(h.counts.probes.load(Relaxed), 2);
    // A slot won but not used is given back.
    h.release_probe();
    assert_eq!(h.pass(10 * S + PROBE_STALE_NS), Pass::Probe);
}

#[test]
fn a_failed_probe_doubles_the_backoff_up_to_the_cap_and_a_good_one_heals() {
    let h = cell();
    let p = policy();
    for _ in 0..3 {
        h.failure(0, &p, false);
    }
    let mut now = 0;
    let mut backoffs = Vec::new();
    for _ in 0..4 {
        now += h.wait_ns(now);
        assert_eq!(h.pass(now), Pass::Probe);
        assert!(h.failure(now, &p, true));
        backoffs.push(h.wait_ns(now) / S);
    }
    assert_eq!(backoffs, vec![20, 35, 35, 35], "10 s, doubled, capped at 35 s");
    now += h.wait_ns(now);
    assert_eq!(h.pass(now), Pass::Probe);
    h.success();
    assert_eq!(h.state(now), State::Healthy);
    assert_eq!(h.pass(now), Pass::Yes);
    // Healed: the next ejection starts from the base again.
    for _ in 0..3 {
        h.failure(now, &p, false);
    }
    assert_eq!(h.wait_ns(now), 10 * S);
}

#[test]
fn retry_after_cools_the_target_without_ejecting_it() {
    let h = cell();
    let wait = wait_hint(b"Retry-After", b"7", 0).unwrap();
    h.cool(S, wait);
    assert_eq!(h.state(S), State::Cooling);
    assert_eq!(h.pass(S), Pass::No);
    assert_eq!(h.wait_ns(S), 7 * S);
    assert_eq!(h.pass(8 * S), Pass::Yes);
    // A shorter hint does not shorten a longer cooldown.
    h.cool(8 * S, 5 * S);
    h.cool(8 * S, S);
    assert_eq!(h.wait_ns(8 * S), 5 * S);
    assert_eq!(h.counts.cooldowns.load(Relaxed), 2);
    assert_eq!(h.counts.ejections.load(Relaxed), 0);
}

#[test]
fn wait_hints_in_each_providers_shape() {
    let hint = |n: &str, v: &str| wait_hint(n.as_bytes(), v.as_bytes(), 0);
    assert_eq!(hint("retry-after", "2"), Some(2 * S));
    assert_eq!(hint("retry-after", "1.5"), Some(1_500_000_000));
    assert_eq!(hint("retry-after-ms", "250"), Some(250_000_000));
    assert_eq!(hint("x-ratelimit-reset-requests", "6m0s"), Some(360 * S));
    assert_eq!(hint("x-ratelimit-reset-tokens", "20ms"), Some(20_000_000));
    assert_eq!(hint("x-ratelimit-reset-tokens", "1h"), Some(MAX_COOLDOWN_NS));
    assert_eq!(hint("retry-after", "-1"), None);
    assert_eq!(hint("x-ratelimit-reset-tokens", "5x"), None);
    assert_eq!(hint("content-type", "1"), None);
    // Dates, against a wall clock of 2015-10-21T07:28:00Z.
    let now = 1_445_412_480_000;
    let at = |n: &str, v: &str| wait_hint(n.as_bytes(), v.as_bytes(), now);
    assert_eq!(at("retry-after", "Wed, 21 Oct 2015 07:28:30 GMT"), Some(30 * S));
    assert_eq!(
        at("retry-after", "Wed, 21 Oct 2015 07:27:00 GMT"),
        Some(0),
        "past: no wait"
    );
    assert_eq!(at("retry-after", "Wed, 21 Oct 2015 07:28:30 PST"), None);
    assert_eq!(
        at("anthropic-ratelimit-requests-reset", "2015-10-21T07:28:12Z"),
        Some(12 * S)
    );
    assert_eq!(
        at(
            "Anthropic-RateLimit-Output-Tokens-Reset",
            "2015-10-21T07:28:01.250Z"
        ),
        Some(1_250_000_000)
    );
    assert_eq!(
        at("anthropic-ratelimit-tokens-reset", "2015-10-21T09:28:05+02:00"),
        Some(5 * S),
        "an offset is applied"
    );
    assert_eq!(at("anthropic-ratelimit-tokens-reset", "2015-10-21 junk"), None);
    for hostile in [
        "2015-10-21T07:28:12+0é:0",
        "2015-10-21T07:28:12.é",
        "2015-10-21T07:2é:12Z",
        "é",
    ] {
        assert_eq!(at("anthropic-ratelimit-tokens-reset", hostile), None, "{hostile}");
        assert_eq!(at("retry-after", hostile), None, "{hostile}");
    }
    assert_eq!(
        at("anthropic-ratelimit-tokens-remaining", "2015-10-21T07:28:12Z"),
        None
    );
}

#[test]
fn the_retry_budget_caps_retries_at_a_share_of_requests() {
    let b = RetryBudget::default();
    let now = 3 * BUDGET_WINDOW_NS;
    for _ in 0..100 {
        b.deposit(now);
    }
    let granted = (0..100).filter(|_| b.withdraw(now, 0.2, 3)).count();
    assert_eq!(granted, 23, "3 + 20% of 100");
    // The previous window still counts; two windows later it is forgotten.
    let next = now + BUDGET_WINDOW_NS;
    assert!(!b.withdraw(next, 0.2, 3));
    let later = now + 3 * BUDGET_WINDOW_NS;
    assert_eq!((0..10).filter(|_| b.withdraw(later, 0.2, 3)).count(), 3);
}

#[test]
fn peak_ewma_jumps_up_and_decays_down() {
    let h = cell();
    h.observe_ttfb(0, 1000);
    h.observe_ttfb(S / 10, 100_000);
    assert_eq!(h.ttfb_ewma_us(), 100_000, "a slow sample is taken at once");
    h.observe_ttfb(S / 5, 1000);
    assert!(
        h.ttfb_ewma_us() > 90_000,
        "a fast one right after moves it little"
    );
    h.observe_ttfb(60 * S, 1000);
    assert!(h.ttfb_ewma_us() < 2000, "after a long gap it moves it far");
    h.start();
    h.start();
    let busy = h.latency_cost(60 * S);
    h.end();
    h.end();
    h.end();
    assert!(busy > 2.9 * h.latency_cost(60 * S), "in-flight requests weigh");
}

#[test]
fn health_outlives_a_reload_and_leaves_with_its_route() {
    use crate::snapshot::{Index, KeyMaterial, RouteEntry, Snapshot};
    let text = |model: &str| {
        format!(
            r#"
[[tenants]]
id = "acme"
[[api_keys]]
id = "k1"
tenant = "acme"
sha256 = "{}"
[[upstreams]]
name = "a"
kind = "openai"
base_url = "http://127.0.0.1:9001"
[[upstreams]]
name = "b"
kind = "openai"
base_url = "http://127.0.0.1:9002"
[[provider_keys]]
id = "pk"
api_key_env = "PK"
[[routes]]
model = "m"
targets = [{{ upstream = "a", provider_key = "pk" }}]
[[routes]]
model = "{model}"
targets = [{{ upstream = "b", provider_key = "pk" }}]
"#,
            "0".repeat(64)
        )
    };
    let env = |_: &str| Some("sk".to_string());
    let build = |model: &str, prev: Option<&Index>| {
        let snap: Snapshot = toml::from_str(&text(model)).unwrap();
        match prev {
            Some(p) => Index::rebuild(&snap, KeyMaterial::Env(&env), p).unwrap(),
            None => Index::build(&snap, KeyMaterial::Env(&env)).unwrap(),
        }
    };
    let first = build("n", None);
    assert_eq!(first.health_cells().len(), 2);
    let cell = |index: &Index| {
        let key = index.key(&[0; 32]).unwrap();
        match key.tenant.routes.get("m") {
            Some(RouteEntry::Targets(t)) => t[0].health.clone(),
            _ => panic!("route m"),
        }
    };
    cell(&first).cool(0, S);
    let second = build("n", Some(&first));
    assert!(
        Arc::ptr_eq(&cell(&first), &cell(&second)),
        "a reload keeps the state"
    );
    // Route `n` now goes to `a` too: `b`'s cell leaves the registry.
    let third = text("n").replace("upstream = \"b\"", "upstream = \"a\"");
    let snap: Snapshot = toml::from_str(&third).unwrap();
    let third = Index::rebuild(&snap, KeyMaterial::Env(&env), &second).unwrap();
    let cells = third.health_cells();
    assert_eq!(cells.len(), 1);
    assert_eq!(&*cells[0].1.upstream, "a");
}

#[test]
fn a_failure_rate_over_the_window_ejects_without_a_streak() {
    let h = cell();
    let p = EjectPolicy {
        after: 100,
        rate_permille: 500,
        rate_min: 10,
        ..EjectPolicy::default()
    };
    // Alternating: never two failures in a row, but half of all attempts.
    let now = 5 * RATE_WINDOW_NS;
    let mut ejected_at = None;
    for i in 0..20 {
        let failed = i % 2 == 1;
        if failed {
            h.failure(now, &p, false);
        } else {
            h.success();
        }
        if h.tally(now, failed, &p) {
            ejected_at = Some(i);
            break;
        }
    }
    assert_eq!(ejected_at, Some(9), "at the tenth attempt, 5 of 10 failed");
    assert_eq!(h.state(now), State::Ejected);
    // Below the rate, or below the minimum of attempts: no ejection.
    let h = cell();
    let later = now + RATE_WINDOW_NS;
    for i in 0..30 {
        assert!(!h.tally(later, i % 3 == 0, &p), "a third fail: under half");
    }
    let h = cell();
    for _ in 0..9 {
        assert!(!h.tally(later, true, &p), "fewer than 10 attempts");
    }
    // Off by default: nothing counted.
    assert!(!h.tally(later, true, &EjectPolicy::default()));
}
