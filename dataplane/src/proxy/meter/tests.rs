use super::*;
use crate::testing::{index, key};
use sluice_contract::dialect::Dialect;
use sluice_contract::policy::extract;
use sluice_contract::record::ApiRoute;

/// One tenant with a request limit of 2/min, a token limit, a credit of
/// $1 and a price of $10 in / $20 out per million tokens, and a policy.
const SNAP: &str = r#"
[[tenants]]
id = "acme"
[[api_keys]]
id = "k1"
tenant = "acme"
sha256 = "HASH"
[[rate_limits]]
tenant = "acme"
rpm = 2
tpm = 100000
[[credits]]
tenant = "acme"
granted_micros = 1000000
spent_micros = 0
[[prices]]
model = "priced"
input = 10.0
output = 20.0
[[policies]]
tenant = "acme"
toml = '''
[[rules]]
id = "no-zeus"
action = "block"
when.prompt_contains = ["zeus"]
'''
"#;

fn body(model: &str, prompt: &str, max_tokens: u64) -> Vec<u8> {
    format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"{prompt}"}}],"max_tokens":{max_tokens}}}"#)
        .into_bytes()
}

/// What [`admit`] returns.
type Admitted = Result<(Admission, Option<Vec<u8>>), Reject>;

fn try_admit(index: &Index, body: &[u8]) -> (Admitted, Record) {
    let key = key(index);
    let view = extract(Dialect::OpenAi, body).unwrap();
    let mut record = Record::new(0, ApiRoute::ChatCompletions);
    let admitted = admit(index, &key, &view, body, true, &mut record);
    (admitted, record)
}

fn balance(index: &Index) -> i64 {
    key(index).tenant.credit.as_ref().unwrap().balance()
}

fn rpm_left(index: &Index) -> u64 {
    key(index).tenant.rpm.as_ref().unwrap().remaining(now_ns())
}

#[test]
fn admission_reserves_the_worst_case_and_settle_charges_the_real_cost() {
    let index = index(SNAP);
    let (admitted, mut record) = try_admit(&index, &body("priced", "hello", 1000));
    let (adm, redacted) = admitted.unwrap();
    assert!(redacted.is_none());
    let prompt = record.prompt_tokens_counted.unwrap();
    assert!(prompt > 0);
    // Reserved: the counted prompt with its overhead at the input price,
    // and the whole max_tokens at the output price.
    let reserved = 1_000_000 - balance(&index);
    let worst_prompt = prompt + OVERHEAD_PER_REQUEST + OVERHEAD_PER_TEXT;
    assert_eq!(reserved, (worst_prompt * 10 + 1000 * 20) as i64);
    record.status = 200;
    record.usage = Some(Usage {
        input_tokens: 9,
        output_tokens: 100,
        ..Usage::default()
    });
    settle(adm, &mut record);
    // $10/M × 9 + $20/M × 100 = 90 + 2000 micro-dollars.
    assert_eq!(record.cost_micros, Some(2090));
    assert_eq!(balance(&index), 1_000_000 - 2090);
}

#[test]
fn a_failed_request_costs_nothing() {
    let index = index(SNAP);
    let (admitted, mut record) = try_admit(&index, &body("priced", "hello", 1000));
    let (adm, _) = admitted.unwrap();
    record.status = 502;
    record.outcome = Outcome::UpstreamUnavailable;
    settle(adm, &mut record);
    assert_eq!(record.cost_micros, Some(0));
    assert_eq!(balance(&index), 1_000_000);
}

#[test]
fn without_usage_the_counted_tokens_are_billed() {
    let index = index(SNAP);
    let (admitted, mut record) = try_admit(&index, &body("priced", "hello", 1000));
    let (adm, _) = admitted.unwrap();
    record.status = 200;
    record.completion_tokens_counted = Some(10);
    let prompt = record.prompt_tokens_counted.unwrap();
    settle(adm, &mut record);
    assert_eq!(record.cost_micros, Some(prompt * 10 + 10 * 20));
}

#[test]
fn a_refusal_part_way_through_gives_everything_back() {
    let index = index(SNAP);
    // More output than the balance can cover ($1.20 at $20/M): refused at
    // the credit step,
    // after the request and token limiters were taken from.
    let before = rpm_left(&index);
    let (admitted, _) = try_admit(&index, &body("priced", "hello", 60_000));
    let refused = admitted.unwrap_err();
    assert_eq!(refused.kind, ErrorKind::InsufficientCredit);
    assert_eq!(rpm_left(&index), before, "the request limiter was refunded");
    assert_eq!(balance(&index), 1_000_000);
    // A model with no price cannot be billed against credit.
    let (admitted, _) = try_admit(&index, &body("unpriced", "hello", 10));
    assert_eq!(admitted.unwrap_err().kind, ErrorKind::InsufficientCredit);
    assert_eq!(rpm_left(&index), before);
}

#[test]
fn an_admission_dropped_unsettled_gives_everything_back() {
    let index = index(SNAP);
    let before = rpm_left(&index);
    let (admitted, _) = try_admit(&index, &body("priced", "hello", 1000));
    let (adm, _) = admitted.unwrap();
    assert!(balance(&index) < 1_000_000);
    assert_eq!(rpm_left(&index), before - 1);
    drop(adm);
    assert_eq!(balance(&index), 1_000_000);
    assert_eq!(rpm_left(&index), before);
}

#[test]
fn the_request_limit_refuses_with_its_headers() {
    let index = index(SNAP);
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(try_admit(&index, &body("priced", "hi", 10)).0.unwrap());
    }
    let refused = try_admit(&index, &body("priced", "hi", 10)).0.unwrap_err();
    assert_eq!(refused.kind, ErrorKind::RateLimited);
    let names: Vec<&str> = refused.headers.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "retry-after",
            "retry-after-ms",
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests"
        ]
    );
}

#[test]
fn the_policy_blocks_before_anything_is_taken() {
    let index = index(SNAP);
    let before = rpm_left(&index);
    let (admitted, record) = try_admit(&index, &body("priced", "about zeus", 10));
    let refused = admitted.unwrap_err();
    assert_eq!(refused.kind, ErrorKind::PolicyBlocked);
    assert!(refused.detail.unwrap().contains("no-zeus"));
    assert_eq!(record.rule_ids, ["no-zeus"]);
    assert_eq!(record.verdict, Some(record::Verdict::Block));
    assert_eq!(rpm_left(&index), before);
    assert_eq!(balance(&index), 1_000_000);
}
