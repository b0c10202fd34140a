//! Routing that survives providers, on both drivers: a fault matrix of two
//! targets, one healthy mock and one started with a fault applied to every
//! request (`--status`, `--retry-after`, `--head-delay-ms`). Each case
//! checks which target every request used (the record's `tries`), how often
//! the faulty target was hit, and that the client got its answer exactly
//! once.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use sluice_tests::fake::{Scripted, Step};
use sluice_tests::mock::{Mock, MockOpts};
use sluice_tests::stack::{base, openai_body, Stack, OPENAI_MODEL, TENANT};
use sluice_tests::{both_drivers, sse, vocab, Driver, GatewayOpts};
use std::thread::sleep;
use std::time::{Duration, Instant};

both_drivers!(
    burst_of_503_ejects_then_one_probe,
    retry_after_cools_the_key_down,
    silence_past_the_first_byte_limit,
    the_retry_budget_caps_extra_load,
    with_every_target_down_the_least_bad_is_tried,
    weighted_shares_follow_the_weights,
    least_latency_moves_off_a_slow_target,
    three_targets_529_and_a_reset_after_accept,
    a_slow_first_byte_under_the_limit_is_served,
);

/// A mock failing every request with `flags`, and a stack whose route tries
/// it first (`bad`), then the stack's healthy mock (`good`), with `settings`.
fn matrix(d: Driver, flags: &[&str], settings: &str) -> (Mock, Stack) {
    let bad = Mock::start(MockOpts {
        args: flags.iter().map(|s| (*s).to_string()).collect(),
        ..MockOpts::default()
    });
    let bad_url = bad.url.clone();
    let opts = GatewayOpts {
        workers: 1,
        ..GatewayOpts::default()
    };
    let stack = Stack::custom(d, opts, |url| {
        base()
            .upstream("bad", "openai", &bad_url, None)
            .upstream("good", "openai", url, None)
            .route(Some(TENANT), OPENAI_MODEL, &[("bad", "pk"), ("good", "pk")])
            .route_settings(settings)
    });
    (bad, stack)
}

/// Sends one streamed chat request; checks the client got the whole text
/// exactly once; returns the request's record's tries as
/// `upstream:status-or-error`, `*` marking a probe.
fn request(stack: &Stack, n: &mut usize) -> (u16, Vec<String>) {
    let r = stack.chat(&openai_body(OPENAI_MODEL, true), &[("x-mock-tokens", "6")]);
    let status = r.status();
    if status == 200 {
        assert_eq!(
            sse::openai_text(&sse::parse(&r.body)),
            vocab::text(6),
            "the client got its text once, whole"
        );
    }
    *n += 1;
    let rec = stack.gw.records().wait_count(*n).pop().unwrap();
    let tries = rec["tries"]
        .as_array()
        .unwrap_or_else(|| panic!("no tries: {rec}"))
        .iter()
        .map(|t| {
            let what = match &t["status"] {
                Value::Number(s) => s.to_string(),
                _ => t["error"].as_str().unwrap_or("?").to_string(),
            };
            let probe = if t["probe"] == true { "*" } else { "" };
            format!("{}:{what}{probe}", t["upstream"].as_str().unwrap())
        })
        .collect();
    assert_eq!(rec["attempts"], rec["tries"].as_array().unwrap().len(), "{rec}");
    (status, tries)
}

fn series(name: &str) -> String {
    format!("{name}{{upstream=\"bad\",tenant=\"{TENANT}\",key=\"pk\"}}")
}

fn burst_of_503_ejects_then_one_probe(d: Driver) {
    let (bad, stack) = matrix(d, &["--status", "503"], "eject_after = 2\neject_ms = 1500");
    let mut n = 0;
    for _ in 0..2 {
        assert_eq!(
            request(&stack, &mut n),
            (200, vec!["bad:503".into(), "good:200".into()])
        );
    }
    let ejected = Instant::now();
    // Ejected: no traffic to `bad` while the backoff lasts.
    for _ in 0..5 {
        assert_eq!(request(&stack, &mut n), (200, vec!["good:200".into()]));
    }
    assert!(
        ejected.elapsed() < Duration::from_millis(1500),
        "the batch outlasted the backoff"
    );
    assert_eq!(bad.requests(), 2);
    stack.gw.wait_metric(
        &format!("sluice_target_health{{upstream=\"bad\",tenant=\"{TENANT}\",key=\"pk\",state=\"ejected\"}}"),
        1.0,
    );
    // The backoff ends: exactly one probe, which fails and ejects `bad` again
    // (for twice as long); the requests after it do not touch it.
    sleep(Duration::from_millis(1600).saturating_sub(ejected.elapsed()));
    assert_eq!(
        request(&stack, &mut n),
        (200, vec!["bad:503*".into(), "good:200".into()])
    );
    for _ in 0..3 {
        assert_eq!(request(&stack, &mut n), (200, vec!["good:200".into()]));
    }
    assert_eq!(bad.requests(), 3, "one probe, no more");
    assert_eq!(
        stack.gw.metric(&series("sluice_target_ejections_total")),
        Some(2.0)
    );
    assert_eq!(stack.gw.metric(&series("sluice_target_probes_total")), Some(1.0));
    assert_eq!(stack.gw.metric(&series("sluice_target_retries_total")), Some(3.0));
}

fn retry_after_cools_the_key_down(d: Driver) {
    // Cooling is not failing: even eject_after = 1 does not eject on a 429
    // that says when to come back.
    let (bad, stack) = matrix(d, &["--status", "429", "--retry-after", "2"], "eject_after = 1");
    let mut n = 0;
    assert_eq!(
        request(&stack, &mut n),
        (200, vec!["bad:429".into(), "good:200".into()])
    );
    let cooled = Instant::now();
    for _ in 0..4 {
        assert_eq!(request(&stack, &mut n), (200, vec!["good:200".into()]));
    }
    assert!(
        cooled.elapsed() < Duration::from_secs(2),
        "the batch outlasted the cooldown"
    );
    assert_eq!(bad.requests(), 1);
    sleep(Duration::from_millis(2100).saturating_sub(cooled.elapsed()));
    // Cooled, not ejected: no probe, plain traffic again.
    assert_eq!(
        request(&stack, &mut n),
        (200, vec!["bad:429".into(), "good:200".into()])
    );
    assert_eq!(bad.requests(), 2);
    assert_eq!(
        stack.gw.metric(&series("sluice_target_cooldowns_total")),
        Some(2.0)
    );
    assert_eq!(
        stack.gw.metric(&series("sluice_target_ejections_total")),
        Some(0.0)
    );
}

fn silence_past_the_first_byte_limit(d: Driver) {
    let (bad, stack) = matrix(
        d,
        &["--head-delay-ms", "5000"],
        "first_byte_timeout_ms = 300\neject_after = 1\neject_ms = 60000",
    );
    let mut n = 0;
    let t = Instant::now();
    assert_eq!(
        request(&stack, &mut n),
        (200, vec!["bad:upstream_timeout".into(), "good:200".into()])
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let t = Instant::now();
    assert_eq!(request(&stack, &mut n), (200, vec!["good:200".into()]));
    assert!(t.elapsed() < Duration::from_millis(250), "{:?}", t.elapsed());
    assert!(bad.requests() <= 1);
}

fn the_retry_budget_caps_extra_load(d: Driver) {
    // Never ejected; retries: 3 plus none per request.
    let (bad, stack) = matrix(
        d,
        &["--status", "503"],
        "eject_after = 1000\nretry_budget = 0.0\nretry_min = 3",
    );
    let mut n = 0;
    for _ in 0..3 {
        assert_eq!(
            request(&stack, &mut n),
            (200, vec!["bad:503".into(), "good:200".into()])
        );
    }
    for _ in 0..4 {
        // The budget is spent: the 503 is passed on rather than retried.
        assert_eq!(request(&stack, &mut n), (503, vec!["bad:503".into()]));
    }
    assert_eq!(bad.requests(), 7);
    assert_eq!(
        stack.mock.requests(),
        3,
        "extra load on the other target capped at 3"
    );
    assert_eq!(
        stack
            .gw
            .metric(&series("sluice_target_retry_budget_refusals_total")),
        Some(4.0)
    );
}

fn with_every_target_down_the_least_bad_is_tried(d: Driver) {
    let bad = Mock::start(MockOpts {
        args: vec!["--status".into(), "503".into()],
        ..MockOpts::default()
    });
    let bad_url = bad.url.clone();
    let opts = GatewayOpts {
        workers: 1,
        ..GatewayOpts::default()
    };
    let stack = Stack::custom(d, opts, |_| {
        base()
            .upstream("bad", "openai", &bad_url, None)
            .upstream("worse", "openai", &bad_url, None)
            .route(Some(TENANT), OPENAI_MODEL, &[("bad", "pk"), ("worse", "pk")])
            .route_settings("eject_after = 1\neject_ms = 60000")
    });
    let mut n = 0;
    assert_eq!(
        request(&stack, &mut n),
        (503, vec!["bad:503".into(), "worse:503".into()])
    );
    // Both ejected: rather than refusing, the one back soonest is tried.
    assert_eq!(request(&stack, &mut n), (503, vec!["bad:503".into()]));
    assert_eq!(bad.requests(), 3);
}

/// Two healthy mocks, `a` (the stack's) and `b`, on a route with `settings`
/// and `weights`.
fn pair(d: Driver, settings: &str, weights: &[u32], b_flags: &[&str]) -> (Mock, Stack) {
    let b = Mock::start(MockOpts {
        args: b_flags.iter().map(|s| (*s).to_string()).collect(),
        ..MockOpts::default()
    });
    let b_url = b.url.clone();
    let opts = GatewayOpts {
        workers: 1,
        ..GatewayOpts::default()
    };
    let stack = Stack::custom(d, opts, |url| {
        base()
            .upstream("a", "openai", url, None)
            .upstream("b", "openai", &b_url, None)
            .route(Some(TENANT), OPENAI_MODEL, &[("a", "pk"), ("b", "pk")])
            .route_weights(weights)
            .route_settings(settings)
    });
    (b, stack)
}

fn weighted_shares_follow_the_weights(d: Driver) {
    let (b, stack) = pair(d, "strategy = \"weighted\"", &[3, 1], &[]);
    let rounds = 200;
    for _ in 0..rounds {
        let r = stack.chat(&openai_body(OPENAI_MODEL, false), &[]);
        assert_eq!(r.status(), 200, "{}", r.text());
    }
    let a = stack.mock.requests() as f64;
    assert_eq!(a as u64 + b.requests(), rounds);
    // 3:1 → 75%; 200 draws: one standard deviation is about 3%.
    let share = a / rounds as f64;
    assert!((0.65..0.85).contains(&share), "{share}");
}

fn least_latency_moves_off_a_slow_target(d: Driver) {
    let (b, stack) = pair(
        d,
        "strategy = \"least-latency\"",
        &[],
        &["--head-delay-ms", "150"],
    );
    let rounds = 20;
    for _ in 0..rounds {
        let r = stack.chat(&openai_body(OPENAI_MODEL, false), &[]);
        assert_eq!(r.status(), 200, "{}", r.text());
    }
    // Each target is measured once at most before the slow one loses every
    // draw: at most two requests reach it.
    assert!(
        b.requests() <= 2,
        "{} of {rounds} went to the slow target",
        b.requests()
    );
    assert_eq!(stack.mock.requests() + b.requests(), rounds);
}

fn three_targets_529_and_a_reset_after_accept(d: Driver) {
    // `overloaded`: Anthropic's 529 with retry-after 1 s (cooled, not
    // ejected); `resets`: reads the request and closes (a failure, ejected
    // at once); `good`: the stack's mock.
    let overloaded = Mock::start(MockOpts {
        args: vec!["--status".into(), "529".into()],
        ..MockOpts::default()
    });
    let resets = Scripted::start(|_| vec![Step::Close]);
    let (o_url, r_url) = (overloaded.url.clone(), resets.url());
    let opts = GatewayOpts {
        workers: 1,
        ..GatewayOpts::default()
    };
    let stack = Stack::custom(d, opts, |url| {
        base()
            .upstream("overloaded", "openai", &o_url, None)
            .upstream("resets", "openai", &r_url, None)
            .upstream("good", "openai", url, None)
            .route(
                Some(TENANT),
                OPENAI_MODEL,
                &[("overloaded", "pk"), ("resets", "pk"), ("good", "pk")],
            )
            .route_settings("eject_after = 1\neject_ms = 60000")
    });
    let mut n = 0;
    assert_eq!(
        request(&stack, &mut n),
        (
            200,
            vec![
                "overloaded:529".into(),
                "resets:upstream_unreachable".into(),
                "good:200".into()
            ]
        )
    );
    for _ in 0..5 {
        assert_eq!(request(&stack, &mut n), (200, vec!["good:200".into()]));
    }
    assert_eq!(overloaded.requests(), 1);
    assert_eq!(resets.requests(), 1);
    let health = |up: &str, state: &str| {
        stack.gw.metric(&format!(
            "sluice_target_health{{upstream=\"{up}\",tenant=\"{TENANT}\",key=\"pk\",state=\"{state}\"}}"
        ))
    };
    assert_eq!(health("resets", "ejected"), Some(1.0));
    assert_eq!(health("good", "healthy"), Some(1.0));
}

fn a_slow_first_byte_under_the_limit_is_served(d: Driver) {
    // Slow is not failing: 150 ms under a 1 s first-byte limit is served by
    // the first target, with no retry and no mark against its health.
    let (slow, stack) = matrix(
        d,
        &["--head-delay-ms", "150"],
        "first_byte_timeout_ms = 1000\neject_after = 1",
    );
    let mut n = 0;
    for _ in 0..3 {
        assert_eq!(request(&stack, &mut n), (200, vec!["bad:200".into()]));
    }
    assert_eq!(slow.requests(), 3);
    assert_eq!(stack.mock.requests(), 0);
    let ewma = stack
        .gw
        .metric(&series("sluice_target_ttfb_ewma_seconds"))
        .unwrap();
    assert!(ewma >= 0.15, "{ewma}");
    assert_eq!(
        stack.gw.metric(&series("sluice_target_ejections_total")),
        Some(0.0)
    );
}
