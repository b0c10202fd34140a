#![allow(missing_docs)] // criterion_group! generates undocumented items.
//! Hot primitives of the request path other than the body codecs: request
//! head parsing, gateway key lookup, provider key opening.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sluice_contract::codec::head::{parse_request, HeadLimits};
use sluice_contract::crypto::{hex, sha256, SealKey};
use sluice_contract::snapshot::{Index, KeyMaterial, Snapshot};

/// A head as the official OpenAI Python SDK sends it.
const SDK_HEAD: &[u8] = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\nAccept: application/json\r\nContent-Type: application/json\r\nUser-Agent: OpenAI/Python 1.54.0\r\nX-Stainless-Lang: python\r\nX-Stainless-Package-Version: 1.54.0\r\nX-Stainless-OS: Linux\r\nX-Stainless-Arch: x64\r\nX-Stainless-Runtime: CPython\r\nX-Stainless-Runtime-Version: 3.11.7\r\nAuthorization: Bearer sk-sluice-k1-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\nX-Stainless-Async: false\r\nx-stainless-retry-count: 0\r\nContent-Length: 123\r\n\r\n";

fn head_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("head");
    g.throughput(Throughput::Bytes(SDK_HEAD.len() as u64));
    let limits = HeadLimits::default();
    let mut headers = Vec::with_capacity(32);
    g.bench_function("parse_sdk_request_head", |b| {
        b.iter(|| {
            parse_request(black_box(SDK_HEAD), &limits, &mut headers)
                .ok()
                .flatten()
                .map(|h| h.len)
        })
    });
    g.finish();
}

fn snapshot_with_keys(n: usize) -> Snapshot {
    let mut text = String::from("[[tenants]]\nid = \"t\"\n");
    for i in 0..n {
        text.push_str(&format!(
            "[[api_keys]]\nid = \"k{i}\"\ntenant = \"t\"\nsha256 = \"{}\"\n",
            hex(&sha256(format!("sk-sluice-k{i}-secret").as_bytes()))
        ));
    }
    toml::from_str(&text).unwrap_or_default()
}

fn key_lookup(c: &mut Criterion) {
    let env = |_: &str| None;
    let snap = snapshot_with_keys(100_000);
    let Ok(index) = Index::build(&snap, KeyMaterial::Env(&env)) else {
        return;
    };
    let presented = b"sk-sluice-k77777-secret";
    c.bench_function("auth/sha256_and_lookup_100k_keys", |b| {
        b.iter(|| index.key(&sha256(black_box(presented))).map(|k| k.id.len()))
    });
}

fn key_open(c: &mut Criterion) {
    let Ok((key, _)) = SealKey::generate() else { return };
    let Ok(sealed) = key.seal(
        b"sk-proj-0123456789abcdef0123456789abcdef0123456789ab",
        b"tenant/key",
    ) else {
        return;
    };
    c.bench_function("crypto/open_provider_key_aes256gcm", |b| {
        b.iter(|| key.open(black_box(&sealed), b"tenant/key").map(|k| k.len()))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = head_parse, key_lookup, key_open
}
criterion_main!(benches);
