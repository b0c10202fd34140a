//! Helpers for the metering, policy and quota tests: the snapshot sections
//! the [`Snapshot`] builder does not render (policies, rate limits, prices,
//! credits), a stack started with them, requests fired all at once, and the
//! mock's own arithmetic and per-response ids, so a test can predict exactly
//! what the mock reports and compare streams byte for byte.

use crate::gateway::{Driver, Gateway, GatewayOpts};
use crate::http::{Req, Response};
use crate::mock::{Mock, MockOpts};
use crate::records::Records;
use crate::snapshot::Snapshot;
use crate::stack::{Stack, PROVIDER_KEY};
use crate::WAIT;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

fn q(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// A `[[policies]]` section: `policy` is the tenant's policy TOML (it goes
/// into a TOML literal string, so it must not contain `'''`).
pub fn policy(tenant: &str, policy: &str) -> String {
    assert!(!policy.contains("'''"), "policy text cannot hold '''");
    format!(
        "[[policies]]\ntenant = {}\ntoml = '''\n{policy}\n'''\n",
        q(tenant)
    )
}

/// A `[[rate_limits]]` section for `tenant`, or for its gateway key `key`.
pub fn rate_limit(tenant: &str, key: Option<&str>, rpm: Option<u64>, tpm: Option<u64>) -> String {
    let mut out = format!("[[rate_limits]]\ntenant = {}\n", q(tenant));
    if let Some(k) = key {
        out.push_str(&format!("key = {}\n", q(k)));
    }
    if let Some(r) = rpm {
        out.push_str(&format!("rpm = {r}\n"));
    }
    if let Some(t) = tpm {
        out.push_str(&format!("tpm = {t}\n"));
    }
    out
}

/// A `[[prices]]` section: USD per million tokens.
pub fn price(model: &str, input: f64, output: f64) -> String {
    format!(
        "[[prices]]\nmodel = {}\ninput = {input:?}\noutput = {output:?}\n",
        q(model)
    )
}

/// A `[[credits]]` section: `granted` micro-dollars for `tenant`.
pub fn credit(tenant: &str, granted: i64, default_max_tokens: Option<u64>) -> String {
    let mut out = format!(
        "[[credits]]\ntenant = {}\ngranted_micros = {granted}\n",
        q(tenant)
    );
    if let Some(n) = default_max_tokens {
        out.push_str(&format!("default_max_tokens = {n}\n"));
    }
    out
}

/// `snapshot` rendered, with `extra` sections appended.
pub fn toml_with(snapshot: &Snapshot, extra: &[String]) -> String {
    let mut out = snapshot.to_toml();
    for section in extra {
        out.push('\n');
        out.push_str(section);
    }
    out
}

/// A mock (requiring [`PROVIDER_KEY`], recording its last request) and a
/// data plane on the snapshot `build` makes from the mock's URL, plus the
/// `extra` sections.
pub fn stack(
    driver: Driver,
    opts: GatewayOpts,
    extra: &[String],
    build: impl FnOnce(&str) -> Snapshot,
) -> Stack {
    let mock = Mock::start(MockOpts {
        require_key: Some(PROVIDER_KEY.into()),
        ..MockOpts::default()
    });
    let toml = toml_with(&build(&mock.url), extra);
    let gw = Gateway::start_toml(driver, &toml, opts.env("MOCK_KEY", PROVIDER_KEY));
    Stack { mock, gw }
}

/// Sends every request on its own connection, all released at the same
/// moment from their own threads; the responses come back in request order.
pub fn fire_concurrently(addr: SocketAddr, reqs: Vec<Req>) -> Vec<Response> {
    let barrier = Arc::new(Barrier::new(reqs.len()));
    let handles: Vec<_> = reqs
        .into_iter()
        .enumerate()
        .map(|(i, req)| {
            let barrier = barrier.clone();
            std::thread::Builder::new()
                .name(format!("client-{i}"))
                .stack_size(256 * 1024)
                .spawn(move || {
                    let mut c = crate::http::Conn::connect(addr);
                    barrier.wait();
                    c.roundtrip(&req)
                })
                .expect("spawning a client thread")
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("a client thread panicked"))
        .collect()
}

/// The prompt tokens the mock reports: bytes of the message texts / 4, at
/// least 1 (`loadtest/src/mock/prompt.rs`).
pub fn mock_prompt_tokens(texts: &[&str]) -> u64 {
    let bytes: usize = texts.iter().map(|t| t.len()).sum();
    (bytes as u64 / 4).max(1)
}

/// `body` with what varies per mock response made constant: the 16 hex
/// digits after `chatcmpl-mock`, `msg_mock` and `req_mock`, and every
/// `"created":<digits>` (`loadtest/src/mock/respond.rs` and `stream.rs`).
pub fn normalise_mock_ids(body: &[u8]) -> String {
    let text = std::str::from_utf8(body)
        .unwrap_or_else(|e| panic!("body is not UTF-8 ({e}): {:?}", String::from_utf8_lossy(body)));
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'outer: while !rest.is_empty() {
        for prefix in ["chatcmpl-mock", "msg_mock", "req_mock"] {
            if let Some(after) = rest.strip_prefix(prefix) {
                let hex = after.bytes().take(16).take_while(u8::is_ascii_hexdigit).count();
                if hex == 16 {
                    out.push_str(prefix);
                    out.push_str("<ID>");
                    rest = &after[16..];
                    continue 'outer;
                }
            }
        }
        if let Some(after) = rest.strip_prefix("\"created\":") {
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            out.push_str("\"created\":<T>");
            rest = &after[digits..];
            continue;
        }
        let ch = rest.chars().next().expect("rest is not empty");
        out.push(ch);
        rest = &rest[ch.len_utf8()..];
    }
    out
}

/// An OpenAI SSE body without its usage-only event (`"choices":[]` and a
/// `usage` object), as the gateway must show it to a client that did not
/// ask for usage. Panics unless exactly one such event was there.
pub fn without_usage_event(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut removed = 0;
    for event in body.split_inclusive("\n\n") {
        // Matched as text: bodies normalise_mock_ids rewrote are not JSON.
        let is_usage = event.starts_with("data: {")
            && event.contains("\"choices\":[],\"usage\":{")
            && !event.contains("\"delta\"");
        if is_usage {
            removed += 1;
        } else {
            out.push_str(event);
        }
    }
    assert_eq!(removed, 1, "expected one usage-only event in:\n{body}");
    out
}

/// Waits (up to [`WAIT`]) until at least `n` records match `pred`; returns
/// those that do.
#[track_caller]
pub fn wait_matching(records: &Records, n: usize, what: &str, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let hits: Vec<Value> = records.all().into_iter().filter(|r| pred(r)).collect();
        if hits.len() >= n {
            return hits;
        }
        if Instant::now() >= deadline {
            panic!(
                "expected {n} records {what} within {WAIT:?}, found {}; records:\n{}",
                hits.len(),
                records.dump()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The balance in micro-dollars a 402's message states (`... the balance is
/// $0.001234`), if the message says it in that form.
pub fn stated_balance_micros(message: &str) -> Option<i64> {
    let at = message.rfind("balance is $")? + "balance is $".len();
    let digits: String = message[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let (whole, frac) = digits.split_once('.').unwrap_or((&digits, ""));
    let frac = format!("{frac:0<6}");
    let whole: i64 = whole.parse().ok()?;
    let frac: i64 = frac.get(..6)?.parse().ok()?;
    Some(whole * 1_000_000 + frac)
}

/// Counts of each status in `responses`, sorted, for failure messages.
pub fn status_histogram(responses: &[Response]) -> Vec<(u16, usize)> {
    let mut counts = std::collections::BTreeMap::new();
    for r in responses {
        *counts.entry(r.status()).or_insert(0) += 1;
    }
    counts.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_ids_and_times() {
        let a = br#"data: {"id":"chatcmpl-mock00000000000000ab","created":1700000001,"x":"msg_mock0123456789abcdef"}"#;
        let b = br#"data: {"id":"chatcmpl-mock00000000000000ff","created":1700000002,"x":"msg_mock0123456789abcdee"}"#;
        assert_eq!(normalise_mock_ids(a), normalise_mock_ids(b));
        assert_ne!(normalise_mock_ids(b"chatcmpl-mockZZ"), "chatcmpl-mock<ID>");
    }

    #[test]
    fn removes_only_the_usage_event() {
        let body = "data: {\"choices\":[{\"delta\":{}}],\"usage\":null}\n\n\
                    data: {\"created\":<T>,\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n\
                    data: [DONE]\n\n";
        assert_eq!(
            without_usage_event(body),
            "data: {\"choices\":[{\"delta\":{}}],\"usage\":null}\n\ndata: [DONE]\n\n"
        );
    }

    #[test]
    fn reads_a_stated_balance() {
        let m = "insufficient credit: this request may cost up to $0.000200, the balance is $0.000090";
        assert_eq!(stated_balance_micros(m), Some(90));
        assert_eq!(stated_balance_micros("the balance is $1.5"), Some(1_500_000));
        assert_eq!(stated_balance_micros("no figure"), None);
    }

    #[test]
    fn mock_token_arithmetic() {
        assert_eq!(mock_prompt_tokens(&["abc"]), 1);
        assert_eq!(mock_prompt_tokens(&["abcdefgh", "ijkl"]), 3);
    }

    #[test]
    fn sections_render() {
        let t = toml_with(
            &Snapshot::new().tenant("acme", None),
            &[
                policy("acme", "max_tokens_cap = 5"),
                rate_limit("acme", Some("k1"), Some(3), None),
                price("m", 0.0, 1.5),
                credit("acme", 100, Some(7)),
            ],
        );
        for needle in [
            "[[policies]]",
            "toml = '''\nmax_tokens_cap = 5\n'''",
            "key = \"k1\"\nrpm = 3\n",
            "input = 0.0\noutput = 1.5\n",
            "granted_micros = 100\ndefault_max_tokens = 7\n",
        ] {
            assert!(t.contains(needle), "{needle} missing in\n{t}");
        }
    }
}
