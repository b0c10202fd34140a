use super::*;
use crate::testing::{index, key};

const SNAP: &str = r#"
[[tenants]]
id = "acme"
[[tenants]]
id = "eu"
region = "eu"
[[api_keys]]
id = "k1"
tenant = "acme"
sha256 = "HASH"
[[upstreams]]
name = "a"
kind = "openai"
base_url = "http://127.0.0.1:9001"
region = "us"
[[upstreams]]
name = "b"
kind = "openai"
base_url = "http://127.0.0.1:9002"
region = "us"
[[upstreams]]
name = "c"
kind = "openai"
base_url = "http://127.0.0.1:9003"
region = "us"
[[provider_keys]]
id = "pk"
api_key_env = "PK"
[[routes]]
model = "spread"
targets = [
  { upstream = "a", provider_key = "pk", priority = 0, weight = 3 },
  { upstream = "b", provider_key = "pk", priority = 0, weight = 1 },
  { upstream = "c", provider_key = "pk", priority = 1 },
]
"#;

fn names(targets: &[RouteTarget], order: &[usize]) -> String {
    order.iter().map(|&i| &*targets[i].upstream.name).collect()
}

#[test]
fn a_route_gives_its_targets_and_unknown_models_are_refused() {
    let index = index(SNAP);
    let key = key(&index);
    assert_eq!(targets(&key.tenant, "spread").unwrap().len(), 3);
    let refused = targets(&key.tenant, "nope").unwrap_err();
    assert_eq!(refused.kind, ErrorKind::UnknownModel);
    assert!(refused.detail.unwrap().contains("`nope`"));
    let long = "m".repeat(1000);
    let refused = targets(&key.tenant, &long).unwrap_err();
    assert!(refused.detail.unwrap().len() < 300, "an echoed name is bounded");
}

#[test]
fn out_of_region_is_its_own_refusal() {
    let text = SNAP.replace("tenant = \"acme\"\nsha256", "tenant = \"eu\"\nsha256");
    let index = index(&text);
    let key = key(&index);
    assert_eq!(&*key.tenant.id, "eu");
    assert_eq!(
        targets(&key.tenant, "spread").unwrap_err().kind,
        ErrorKind::OutOfRegion
    );
}

#[test]
fn priorities_first_then_weights() {
    let index = index(SNAP);
    let t = targets(&key(&index).tenant, "spread").unwrap();
    let mut seq = sluice_contract_test_rng(7);
    let mut first_a = 0;
    let rounds = 4000;
    for _ in 0..rounds {
        let order = ordered(&t, &mut seq);
        let n = names(&t, &order);
        assert!(n == "abc" || n == "bac", "{n}");
        first_a += usize::from(n.starts_with('a'));
    }
    // Weights 3:1: `a` first in 3/4 of the orders, within a few percent.
    let share = first_a as f64 / rounds as f64;
    assert!((0.72..0.78).contains(&share), "{share}");
}

#[test]
fn a_lone_target_and_none() {
    let index = index(SNAP);
    let t = targets(&key(&index).tenant, "spread").unwrap();
    assert_eq!(ordered(&t[2..], || 0), vec![0]);
    assert!(ordered(&t[..0], || 0).is_empty());
    assert!(order(&t[..0], &Choice::default(), || 0).is_empty());
}

/// A xorshift sequence (the worker's generator in miniature).
fn sluice_contract_test_rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

const STRATEGIES: &str = r#"
[[tenants]]
id = "acme"
[[api_keys]]
id = "k1"
tenant = "acme"
sha256 = "HASH"
[[upstreams]]
name = "a"
kind = "openai"
base_url = "http://127.0.0.1:9001"
[[upstreams]]
name = "b"
kind = "openai"
base_url = "http://127.0.0.1:9002"
[[upstreams]]
name = "c"
kind = "openai"
base_url = "http://127.0.0.1:9003"
[[provider_keys]]
id = "pk"
api_key_env = "PK"
[[routes]]
model = "weighted"
strategy = "weighted"
targets = [
  { upstream = "a", provider_key = "pk", weight = 3 },
  { upstream = "b", provider_key = "pk", weight = 1 },
]
[[routes]]
model = "fast"
strategy = "least-latency"
targets = [
  { upstream = "a", provider_key = "pk" },
  { upstream = "b", provider_key = "pk" },
  { upstream = "c", provider_key = "pk" },
]
[[routes]]
model = "cheap"
strategy = "least-cost"
targets = [
  { upstream = "a", provider_key = "pk", model = "gpt-4o" },
  { upstream = "b", provider_key = "pk", model = "unpriced-model" },
  { upstream = "c", provider_key = "pk", model = "gpt-4o-mini" },
]
"#;

fn first_shares(t: &[RouteTarget], choice: &Choice, rounds: usize) -> Vec<f64> {
    let mut seq = sluice_contract_test_rng(11);
    let mut firsts = vec![0usize; t.len()];
    for _ in 0..rounds {
        let o = order(t, choice, &mut seq);
        assert_eq!(o.len(), t.len(), "every target once");
        firsts[o[0]] += 1;
    }
    firsts.iter().map(|&n| n as f64 / rounds as f64).collect()
}

#[test]
fn weighted_ignores_priority_and_follows_weights() {
    let index = index(STRATEGIES);
    let t = targets(&key(&index).tenant, "weighted").unwrap();
    assert!(t[0].priority < t[1].priority);
    let shares = first_shares(&t, &Choice::default(), 8000);
    assert!((0.72..0.78).contains(&shares[0]), "{shares:?}");
}

#[test]
fn least_latency_moves_traffic_off_a_slow_target() {
    let index = index(STRATEGIES);
    let t = targets(&key(&index).tenant, "fast").unwrap();
    let now = 1_000_000_000;
    t[0].health.observe_ttfb(now, 200_000);
    t[1].health.observe_ttfb(now, 2_000);
    t[2].health.observe_ttfb(now, 2_500);
    let choice = Choice {
        now,
        ..Choice::default()
    };
    let shares = first_shares(&t, &choice, 3000);
    assert_eq!(shares[0], 0.0, "the slow target never wins a pair: {shares:?}");
    // P2C: the fastest wins every pair it is drawn into (2 of 3 pairs).
    assert!((0.62..0.71).contains(&shares[1]), "{shares:?}");
    // Requests in flight weigh: a busy fast target loses to an idle one.
    for _ in 0..3 {
        t[1].health.start();
    }
    let shares = first_shares(&t, &choice, 3000);
    assert!(shares[2] > 0.6, "{shares:?}");
    // An ejected target is not among the two drawn.
    let policy = sluice_contract::health::EjectPolicy::default();
    for _ in 0..policy.after {
        t[2].health.failure(now, &policy, false);
    }
    let shares = first_shares(&t, &choice, 1000);
    assert!(shares[1] > 0.99, "{shares:?}");
    // Its backoff over, it is drawn again (so it can get its probe), and
    // wins against the busy target once its idle EWMA has decayed.
    let later = Choice {
        now: now + policy.base_ns,
        ..choice
    };
    assert_eq!(t[2].health.state(later.now), State::HalfOpen);
    let shares = first_shares(&t, &later, 3000);
    assert!(shares[2] > 0.3, "{shares:?}");
}

#[test]
fn least_cost_prefers_the_cheaper_model_and_puts_unpriced_last() {
    let index = index(STRATEGIES);
    let t = targets(&key(&index).tenant, "cheap").unwrap();
    let choice = Choice {
        now: 0,
        prompt_tokens: 1000,
        max_output: 500,
    };
    let o = order(&t, &choice, || 5);
    assert_eq!(names(&t, &o), "cab");
}

#[test]
fn ordered_is_the_default_strategy() {
    let index = index(SNAP);
    let t = targets(&key(&index).tenant, "spread").unwrap();
    let mut seq = sluice_contract_test_rng(3);
    for _ in 0..100 {
        let o = order(&t, &Choice::default(), &mut seq);
        assert_eq!(o[2], 2, "priority 1 after priority 0");
    }
}
