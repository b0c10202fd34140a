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
        let order = order(&t, &mut seq);
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
    assert_eq!(order(&t[2..], || 0), vec![0]);
    assert!(order(&t[..0], || 0).is_empty());
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
