//! The cost of choosing a target, per request: the route strategy's order
//! over three targets, then the health check of each candidate until one
//! passes (what `proxy::forward` does before its first attempt), and the
//! bookkeeping after an attempt (health report, budget deposit, EWMA).
//!
//! Run: `cargo bench -p sluice-benches --bench routing`.
#![allow(missing_docs)] // criterion_group! generates undocumented items.
#![allow(clippy::expect_used, clippy::panic)] // bench setup: a failure is a broken bench.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use sluice_benches::Rng;
use sluice_contract::crypto::{hex, sha256};
use sluice_contract::health::Pass;
use sluice_contract::quota::now_ns;
use sluice_contract::snapshot::{Index, KeyMaterial, RouteEntry, RouteTarget, Snapshot};
use sluice_dataplane::proxy::route::{order, ordered, Choice};
use std::sync::Arc;

const KEY: &[u8] = b"sk-sluice-bench";

const SNAP: &str = r#"
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
"#;

fn targets(strategy: &str) -> Arc<[RouteTarget]> {
    let text = format!(
        "{SNAP}\n[[routes]]\nmodel = \"m\"\nstrategy = \"{strategy}\"\ntargets = [\n\
         {{ upstream = \"a\", provider_key = \"pk\", model = \"gpt-4o\", weight = 3 }},\n\
         {{ upstream = \"b\", provider_key = \"pk\", model = \"gpt-4o-mini\", weight = 2, priority = 0 }},\n\
         {{ upstream = \"c\", provider_key = \"pk\", model = \"gpt-4.1\", weight = 1, priority = 1 }},\n]\n"
    );
    let text = text.replace("HASH", &hex(&sha256(KEY)));
    let snap: Snapshot = toml::from_str(&text).expect("bench snapshot parses");
    let env = |_: &str| Some("sk-bench".to_string());
    let index = Index::build(&snap, KeyMaterial::Env(&env)).expect("bench snapshot compiles");
    let key = index.key(&sha256(KEY)).expect("bench key");
    match key.tenant.routes.get("m") {
        Some(RouteEntry::Targets(t)) => t.clone(),
        _ => panic!("route m"),
    }
}

fn choose(t: &[RouteTarget], choice: &Choice, rng: &mut Rng) -> Option<usize> {
    let order = order(t, choice, || rng.below(u64::MAX));
    order
        .iter()
        .copied()
        .find(|&i| t[i].health.pass(choice.now) != Pass::No)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("routing");
    let now = now_ns();
    let choice = Choice {
        now,
        prompt_tokens: 1200,
        max_output: 400,
    };
    for strategy in ["ordered", "weighted", "least-latency", "least-cost"] {
        let t = targets(strategy);
        for (i, target) in t.iter().enumerate() {
            target.health.observe_ttfb(now, 1000 * (i as u64 + 1));
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        g.bench_function(format!("choose_{strategy}_3_targets"), |b| {
            b.iter(|| choose(black_box(&t), black_box(&choice), &mut rng))
        });
    }
    let t = targets("ordered");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // What the data plane did before health: the priority and weight order only.
    g.bench_function("order_only_before_health_3_targets", |b| {
        b.iter(|| ordered(black_box(&t), || rng.below(u64::MAX)))
    });
    g.bench_function("report_success_deposit_ewma", |b| {
        b.iter(|| {
            let target = &t[0];
            target.budget.deposit(now);
            target.health.start();
            target.health.end();
            target.health.success();
            target.health.observe_ttfb(now, black_box(1500));
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
