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
    // `priced` is no OpenAI model: its count is an estimate, reserved with
    // a quarter more.
    assert!(record.tokens_estimated);
    let worst_prompt = worst_prompt + worst_prompt.div_ceil(4);
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
fn a_cut_stream_bills_no_less_output_than_was_streamed() {
    for (outcome, billed_out) in [
        (Outcome::Truncated, 10),
        (Outcome::Cancelled, 10),
        (Outcome::Ok, 1),
    ] {
        // A fresh index each time: the snapshot allows 2 requests a minute.
        let index = index(SNAP);
        let (admitted, mut record) = try_admit(&index, &body("priced", "hello", 1000));
        let (adm, _) = admitted.unwrap();
        record.status = 200;
        record.outcome = outcome;
        // Anthropic's message_start said 1 output token; 10 were streamed.
        record.usage = Some(Usage {
            input_tokens: 7,
            output_tokens: 1,
            ..Usage::default()
        });
        record.completion_tokens_counted = Some(10);
        settle(adm, &mut record);
        assert_eq!(record.cost_micros, Some(7 * 10 + billed_out * 20), "{outcome:?}");
        assert_eq!(
            record.usage.map(|u| u.output_tokens),
            Some(1),
            "the record keeps the provider's figure"
        );
    }
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

/// Credit of $1; `alias` routes to `priced`, `both` to `priced` and a
/// model without a price; a policy cap of 50 on `capped`'s tenant.
const ROUTED: &str = r#"
[[tenants]]
id = "acme"
[[api_keys]]
id = "k1"
tenant = "acme"
sha256 = "HASH"
[[credits]]
tenant = "acme"
granted_micros = 1000000
spent_micros = 0
[[prices]]
model = "priced"
input = 10.0
output = 20.0
max_output_tokens = 300
[[upstreams]]
name = "a"
kind = "openai"
base_url = "http://127.0.0.1:9001"
[[provider_keys]]
id = "pk"
api_key_env = "PK"
[[routes]]
model = "alias"
targets = [{ upstream = "a", provider_key = "pk", model = "priced" }]
[[routes]]
model = "both"
targets = [
  { upstream = "a", provider_key = "pk", model = "priced" },
  { upstream = "a", provider_key = "pk", model = "nobody-prices-me" },
]
"#;

fn no_limit(model: &str, extra: &str) -> Vec<u8> {
    format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hello"}}]{extra}}}"#).into_bytes()
}

fn reserved(index: &Index) -> i64 {
    1_000_000 - balance(index)
}

#[test]
fn an_alias_is_priced_by_its_target_and_no_limit_is_reserved_and_set() {
    let index = index(ROUTED);
    // `alias` has no price of its own: its target's model has.
    let (admitted, record) = try_admit(&index, &no_limit("alias", ""));
    let (adm, _) = admitted.unwrap();
    let prompt = record.prompt_tokens_counted.unwrap() + OVERHEAD_PER_REQUEST + OVERHEAD_PER_TEXT;
    let prompt = prompt + prompt.div_ceil(4);
    // No limit in the body: the model's cap (300, under the default 4096)
    // is reserved, and set upstream.
    assert_eq!(reserved(&index), (prompt * 10 + 300 * 20) as i64);
    assert_eq!(adm.limit, Some(("max_completion_tokens", 300)));
    drop(adm);
    // `n` choices: each may produce the limit.
    let (admitted, _) = try_admit(&index, &no_limit("alias", r#","n":3"#));
    let (adm, _) = admitted.unwrap();
    assert_eq!(reserved(&index), (prompt * 10 + 3 * 300 * 20) as i64);
    drop(adm);
    let (admitted, _) = try_admit(&index, &no_limit("alias", r#","n":129"#));
    assert_eq!(admitted.unwrap_err().kind, ErrorKind::InvalidField);
    // A route with a target nobody prices cannot be billed against credit.
    let (admitted, _) = try_admit(&index, &no_limit("both", ""));
    assert_eq!(admitted.unwrap_err().kind, ErrorKind::InsufficientCredit);
    assert_eq!(balance(&index), 1_000_000);
}

#[test]
fn settle_prices_by_the_served_model_and_flags_an_unpriced_one() {
    let index = index(
        ROUTED
            .replace(
                "[[credits]]\ntenant = \"acme\"\ngranted_micros = 1000000\nspent_micros = 0\n",
                "",
            )
            .as_str(),
    );
    let used = Usage {
        input_tokens: 10,
        output_tokens: 10,
        ..Usage::default()
    };
    let (admitted, mut record) = try_admit(&index, &no_limit("both", ""));
    let (mut adm, _) = admitted.unwrap();
    assert_eq!(adm.limit, None, "no credit and no cap: nothing to bound");
    adm.served(index.prices.lookup("priced"));
    record.status = 200;
    record.usage = Some(used);
    settle(adm, &mut record);
    assert_eq!((record.cost_micros, record.unpriced), (Some(300), false));
    // The other target served: no price, and the record says so.
    let (admitted, mut record) = try_admit(&index, &no_limit("both", ""));
    let (mut adm, _) = admitted.unwrap();
    adm.served(index.prices.lookup("nobody-prices-me"));
    record.status = 200;
    record.usage = Some(used);
    settle(adm, &mut record);
    assert_eq!((record.cost_micros, record.unpriced), (None, true));
    let json = serde_json::to_value(&record).unwrap();
    assert_eq!(json["unpriced"], true);
}

#[test]
fn the_policy_cap_is_set_when_the_body_gives_no_limit() {
    let snap = format!("{ROUTED}[[policies]]\ntenant = \"acme\"\ntoml = '''\nmax_tokens_cap = 50\n'''\n");
    let index = index(&snap);
    let (admitted, _) = try_admit(&index, &no_limit("alias", ""));
    let (adm, _) = admitted.unwrap();
    assert_eq!(adm.limit, Some(("max_completion_tokens", 50)));
    drop(adm);
    // Asking for more than the cap is blocked, as before.
    let (admitted, _) = try_admit(&index, &no_limit("alias", r#","max_tokens":51"#));
    assert_eq!(admitted.unwrap_err().kind, ErrorKind::PolicyBlocked);
}

#[test]
fn settle_never_takes_the_balance_below_zero() {
    let index = index(ROUTED);
    let (admitted, mut record) = try_admit(&index, &no_limit("alias", r#","max_tokens":10"#));
    let (adm, _) = admitted.unwrap();
    // A provider that reported far more than was reserved ($2 of output).
    record.status = 200;
    record.usage = Some(Usage {
        input_tokens: 0,
        output_tokens: 100_000,
        ..Usage::default()
    });
    settle(adm, &mut record);
    assert_eq!(record.cost_micros, Some(2_000_000));
    assert_eq!(balance(&index), 0, "never below zero");
    assert_eq!(record.overrun_micros, Some(1_000_000));
    // Stopped until a grant makes the balance positive.
    let (admitted, _) = try_admit(&index, &no_limit("alias", r#","max_tokens":1"#));
    assert_eq!(admitted.unwrap_err().kind, ErrorKind::InsufficientCredit);
}

#[test]
fn a_tenant_is_capped_in_requests_in_flight() {
    let snap = format!("{ROUTED}[[rate_limits]]\ntenant = \"acme\"\nconcurrency = 2\n");
    let index = index(&snap);
    let limited = |max: &str| try_admit(&index, &no_limit("alias", max)).0;
    let a = limited(r#","max_tokens":1"#).unwrap();
    let b = limited(r#","max_tokens":1"#).unwrap();
    let refused = limited(r#","max_tokens":1"#).unwrap_err();
    assert_eq!(refused.kind, ErrorKind::RateLimited);
    assert_eq!(refused.kind.status(), 429);
    // A settled request (a stream, once its last byte went) frees its place.
    let mut record = Record::new(0, ApiRoute::ChatCompletions);
    settle(a.0, &mut record);
    let c = limited(r#","max_tokens":1"#).unwrap();
    // A dropped one too; and nothing of the refused one was kept.
    drop(b);
    drop(c);
    assert_eq!(balance(&index), 1_000_000);
    let in_flight = key(&index).tenant.in_flight.clone().unwrap();
    assert_eq!(in_flight.count(), 0);
}

#[test]
fn a_route_is_reserved_by_its_dearest_target_for_this_request() {
    // `mixed` serves from a model dear in input and one dear in output; a
    // long prompt with one output token is worst on the first.
    let snap = format!(
        "{ROUTED}[[prices]]\nmodel = \"dear-input\"\ninput = 100.0\noutput = 1.0\n\
         [[routes]]\nmodel = \"mixed\"\ntargets = [\n\
         {{ upstream = \"a\", provider_key = \"pk\", model = \"priced\" }},\n\
         {{ upstream = \"a\", provider_key = \"pk\", model = \"dear-input\" }},\n]\n"
    );
    let index = index(&snap);
    let (admitted, record) = try_admit(&index, &no_limit("mixed", r#","max_tokens":1"#));
    let (adm, _) = admitted.unwrap();
    let prompt = record.prompt_tokens_counted.unwrap() + OVERHEAD_PER_REQUEST + OVERHEAD_PER_TEXT;
    let prompt = prompt + prompt.div_ceil(4);
    assert_eq!(reserved(&index), (prompt * 100 + 1) as i64);
    drop(adm);
}

#[test]
fn media_parts_are_reserved_for_conservatively() {
    let index = index(SNAP);
    let text = br#"{"model":"priced","messages":[{"role":"user","content":[{"type":"text","text":"what is this?"}]}],"max_tokens":10}"#;
    let (admitted, _) = try_admit(&index, text);
    let (adm, _) = admitted.unwrap();
    let plain = 1_000_000 - balance(&index);
    drop(adm);
    // The same prompt with an image: one media part, reserved at the most
    // a provider bills for one image, plus the inline payload's bytes.
    let image = format!(
        r#"{{"model":"priced","messages":[{{"role":"user","content":[{{"type":"text","text":"what is this?"}},{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{}"}}}}]}}],"max_tokens":10}}"#,
        "A".repeat(4000)
    );
    let (admitted, _) = try_admit(&index, image.as_bytes());
    let (adm, _) = admitted.unwrap();
    let with_image = 1_000_000 - balance(&index);
    drop(adm);
    // At $10 per million input tokens: at least 25,600 + 1,000 tokens more.
    assert!(
        with_image - plain >= (MEDIA_PART_TOKENS as i64 + 1_000) * 10,
        "{plain} → {with_image}"
    );
}
