#![allow(missing_docs)] // criterion_group! generates undocumented items.
//! Policy library: extraction, full policy evaluation, PII scanning, token
//! counting.
//!
//! Run: `cargo bench -p sluice-benches --bench policy -- --warm-up-time 1 --measurement-time 3`

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use sluice_contract::dialect::Dialect;
use sluice_contract::policy::{self, tokens, CompiledPolicy, PiiAction, PiiConfig, PiiScanner};

/// The allow-list and cap.
const HEAD: &str = include_str!("../policy/head.toml");

/// Every detector on.
const PII: &str = include_str!("../policy/pii.toml");

/// Ten rules over every kind of condition.
const RULES: &str = include_str!("../policy/rules.toml");

/// About 2 KB of ordinary prompt text: prose, a little code, numbers.
fn prompt_2kb() -> String {
    let base = "Please review the following function and explain what it does, step by step. \
        The service handles about 1,200 requests per second at peak, with a p99 latency of 45 ms; \
        we deploy it on 3 nodes behind a load balancer. Version 2.4 added retries.\n\
        ```rust\nfn backoff(attempt: u32) -> Duration {\n    let base = Duration::from_millis(50);\n    \
        base * 2u32.saturating_pow(attempt.min(6))\n}\n```\n\
        Is the cap reasonable, and what would you change for a batch job that runs at night? ";
    let mut s = String::new();
    while s.len() < 2048 {
        s.push_str(base);
    }
    s.truncate(2048);
    s
}

fn body(prompt: &str) -> Vec<u8> {
    serde_json_body(&[
        ("system", "You are a careful senior engineer. Answer concisely."),
        ("user", prompt),
    ])
}

fn serde_json_body(messages: &[(&str, &str)]) -> Vec<u8> {
    let mut s = String::from(
        r#"{"model":"gpt-4o-mini","temperature":0.2,"max_tokens":1024,"stream":true,"stream_options":{"include_usage":true},"messages":["#,
    );
    for (i, (role, content)) in messages.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"role":"{role}","content":{}}}"#,
            json_string(content)
        ));
    }
    s.push_str("]}");
    s.into_bytes()
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn bench(c: &mut Criterion) {
    let policy = match CompiledPolicy::compile(&format!("{HEAD}{PII}{RULES}")) {
        Ok(p) => p,
        Err(e) => return eprintln!("policy does not compile: {e}"),
    };
    tokens::warm_up();
    let prompt = prompt_2kb();
    let clean = body(&prompt);
    let with_email = body(&format!("{} Reply to alice@example.com.", &prompt[..2000]));

    let mut g = c.benchmark_group("policy");
    g.throughput(Throughput::Bytes(clean.len() as u64));
    g.bench_function("extract_2kb", |b| {
        b.iter(|| policy::extract(Dialect::OpenAi, black_box(&clean)).map(|v| v.texts.len()))
    });
    g.bench_function("full_2kb_clean", |b| {
        b.iter(|| {
            policy::extract_and_evaluate(&policy, Dialect::OpenAi, "k1", black_box(&clean))
                .map(|(_, d)| d.allowed())
        })
    });
    // Each prompt new to the worker's memory of scanned texts (the cost of
    // a text seen for the first time, memory upkeep included); the runs
    // above repeat one prompt, which after the first is remembered.
    let mut n = 0u64;
    g.bench_function("full_2kb_clean_new_prompt", |b| {
        b.iter_batched(
            || {
                n += 1;
                body(&format!("{n:012} {}", &prompt[13..]))
            },
            |body| {
                policy::extract_and_evaluate(&policy, Dialect::OpenAi, "k1", &body).map(|(_, d)| d.allowed())
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("full_2kb_redact_one_email", |b| {
        b.iter(|| {
            policy::extract_and_evaluate(&policy, Dialect::OpenAi, "k1", black_box(&with_email))
                .map(|(_, d)| d.redacted_body.map(|b| b.len()))
        })
    });
    if let Ok(view) = policy::extract(Dialect::OpenAi, &clean) {
        g.bench_function("evaluate_only_2kb", |b| {
            b.iter(|| policy::evaluate(&policy, black_box(&view), "k1", &clean).allowed())
        });
        if let Ok(rules_only) = CompiledPolicy::compile(&format!("{HEAD}{RULES}")) {
            g.bench_function("rules_only_2kb", |b| {
                b.iter(|| policy::evaluate(&rules_only, black_box(&view), "k1", &clean).allowed())
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("pii");
    if let Ok(scanner) = PiiScanner::new(PiiConfig::all(PiiAction::Redact)) {
        g.throughput(Throughput::Bytes(prompt.len() as u64));
        g.bench_function("scan_2kb_prose", |b| {
            b.iter(|| scanner.scan(black_box(&prompt)).total())
        });
        let digits: String = (0..200u64)
            .map(|i| format!("{} ", 4_000_000_000 + i * 7_919))
            .collect();
        let digits = &digits[..2048.min(digits.len())];
        g.throughput(Throughput::Bytes(digits.len() as u64));
        g.bench_function("scan_2kb_digits", |b| {
            b.iter(|| scanner.scan(black_box(digits)).total())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("tokens");
    let kb = &prompt[..1024];
    g.throughput(Throughput::Bytes(1024));
    g.bench_function("o200k_count_1kb", |b| {
        b.iter(|| tokens::count(tokens::Encoding::O200kBase, black_box(kb)))
    });
    g.bench_function("cl100k_count_1kb", |b| {
        b.iter(|| tokens::count(tokens::Encoding::Cl100kBase, black_box(kb)))
    });
    let completion = prompt.repeat(32); // 64 KiB
    g.throughput(Throughput::Bytes(completion.len() as u64));
    g.bench_function("completion_counter_64kb_16b_deltas", |b| {
        b.iter(|| {
            let mut counter = tokens::CompletionCounter::new(tokens::Encoding::O200kBase);
            let mut rest = completion.as_str();
            while !rest.is_empty() {
                let mut cut = rest.len().min(16);
                while !rest.is_char_boundary(cut) {
                    cut += 1;
                }
                counter.push(&rest[..cut]);
                rest = &rest[cut..];
            }
            counter.finish()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
