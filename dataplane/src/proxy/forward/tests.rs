use super::*;
use crate::testing::{index, key};
use sluice_contract::health::{EjectPolicy, State};
use sluice_contract::snapshot::RouteEntry;

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
[[provider_keys]]
id = "pk"
api_key_env = "PK"
[[routes]]
model = "m"
eject_after = 2
eject_ms = 1000
targets = [
  { upstream = "a", provider_key = "pk" },
  { upstream = "b", provider_key = "pk" },
]
"#;

const S: u64 = 1_000_000_000;

fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
    pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()))
}

#[test]
fn statuses_are_judged() {
    let v = judge_status(429, headers(&[("Retry-After", "3")]));
    assert_eq!((v.effect, v.retry), (Effect::Cool(3 * S), true));
    let v = judge_status(529, headers(&[("retry-after", "3"), ("retry-after-ms", "1500")]));
    assert_eq!(v.effect, Effect::Cool(1_500_000_000), "the finer hint wins");
    let v = judge_status(
        429,
        headers(&[
            ("x-ratelimit-reset-requests", "2s"),
            ("x-ratelimit-reset-tokens", "7s"),
        ]),
    );
    assert_eq!(v.effect, Effect::Cool(7 * S), "the longer reset");
    assert_eq!(judge_status(429, headers(&[])).effect, Effect::Failure);
    assert_eq!(judge_status(529, headers(&[])).effect, Effect::Failure);
    for status in [408, 500, 502, 503, 504] {
        let v = judge_status(status, headers(&[("retry-after", "5")]));
        assert_eq!((v.effect, v.retry), (Effect::Failure, true), "{status}");
    }
    for status in [200, 400, 401, 404, 413] {
        let v = judge_status(status, headers(&[]));
        assert_eq!((v.effect, v.retry), (Effect::Success, false), "{status}");
    }
    let v = judge(&Err(ErrorKind::UpstreamTimeout));
    assert!(v.retry && v.latency && v.effect == Effect::Failure);
    let v = judge(&Err(ErrorKind::UpstreamUnreachable));
    assert!(v.retry && !v.latency);
    assert_eq!(judge(&Err(ErrorKind::Internal)).effect, Effect::Neutral);
}

fn route_targets(index: &sluice_contract::snapshot::Index) -> Arc<[RouteTarget]> {
    match key(index).tenant.routes.get("m") {
        Some(RouteEntry::Targets(t)) => t.clone(),
        _ => panic!("route m"),
    }
}

#[test]
fn ejected_targets_are_skipped_and_the_probe_goes_once() {
    let index = index(SNAP);
    let t = route_targets(&index);
    let order = [0, 1];
    let none = Tried::default();
    let eject = &t[0].policy.eject;
    assert_eq!(
        *eject,
        EjectPolicy {
            after: 2,
            base_ns: S,
            max_ns: 300 * S,
            ..EjectPolicy::default()
        }
    );
    assert_eq!(next_usable(&t, &order, &none, 0), Some((0, false)));
    t[0].health.failure(0, eject, false);
    t[0].health.failure(0, eject, false);
    assert_eq!(t[0].health.state(0), State::Ejected);
    assert_eq!(next_usable(&t, &order, &none, 0), Some((1, false)));
    // The backoff ends: the first request probes `a`, the others go to `b`.
    assert_eq!(next_usable(&t, &order, &none, S), Some((0, true)));
    assert_eq!(next_usable(&t, &order, &none, S), Some((1, false)));
    // Once tried, a target is not offered again to the same request.
    let mut tried = Tried::default();
    tried.add(1);
    assert_eq!(next_usable(&t, &order, &tried, S), None);
}

#[test]
fn with_none_usable_the_least_bad_is_chosen() {
    let index = index(SNAP);
    let t = route_targets(&index);
    let eject = t[0].policy.eject;
    t[0].health.cool(0, 30 * S);
    t[1].health.failure(0, &eject, false);
    t[1].health.failure(0, &eject, false);
    assert_eq!(next_usable(&t, &[0, 1], &Tried::default(), 0), None);
    assert_eq!(
        least_bad(&t, 0),
        Some(1),
        "ejected for 1 s beats cooling for 30 s"
    );
}

#[test]
fn a_dropped_attempt_ends_its_count_and_gives_back_its_probe() {
    let index = index(SNAP);
    let t = route_targets(&index);
    let h = &t[0].health;
    let eject = t[0].policy.eject;
    h.failure(0, &eject, false);
    h.failure(0, &eject, false);
    assert_eq!(h.pass(S), Pass::Probe);
    h.observe_ttfb(S, 1000);
    let idle = h.latency_cost(S);
    {
        let _in_flight = InFlight::start(h, true);
        assert_eq!(h.latency_cost(S), 2.0 * idle);
        assert_eq!(h.pass(S), Pass::No);
        // Dropped without reporting: the task went away mid-attempt.
    }
    assert_eq!(h.latency_cost(S), idle, "no request left counted in flight");
    assert_eq!(h.pass(S), Pass::Probe, "the probe slot is free again");
    InFlight::start(h, true).done();
    assert_eq!(
        h.pass(S),
        Pass::No,
        "a reported probe keeps its slot until its outcome lands"
    );
}

#[test]
fn only_allowlisted_client_headers_go_upstream() {
    for pass in [
        "Content-Type",
        "accept",
        "User-Agent",
        "anthropic-version",
        "Anthropic-Beta",
        "openai-beta",
        "Idempotency-Key",
        "traceparent",
        "tracestate",
        "X-Stainless-Lang",
        "x-stainless-retry-count",
        "x-mock-tokens",
    ] {
        assert!(super::forwarded(pass.as_bytes()), "{pass}");
    }
    for stop in [
        "authorization",
        "x-api-key",
        "cookie",
        "host",
        "connection",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "accept-encoding",
        "expect",
        "OpenAI-Organization",
        "openai-project",
        "x-forwarded-for",
        "x-custom",
        "x-stainless-",
        "x-mock-",
        "x-mockery",
    ] {
        assert!(!super::forwarded(stop.as_bytes()), "{stop}");
    }
}

#[test]
fn chat_and_messages_translate_into_each_other_only() {
    use sluice_contract::translate::Pair;
    assert_eq!(
        super::translation(ApiRoute::ChatCompletions, ProviderKind::Anthropic),
        Some(Pair::OpenAiToAnthropic)
    );
    assert_eq!(
        super::translation(ApiRoute::Messages, ProviderKind::Openrouter),
        Some(Pair::AnthropicToOpenAi)
    );
    assert_eq!(
        super::translation(ApiRoute::ChatCompletions, ProviderKind::Openai),
        None
    );
    assert_eq!(
        super::translation(ApiRoute::Messages, ProviderKind::Anthropic),
        None
    );
    assert_eq!(
        super::translation(ApiRoute::CountTokens, ProviderKind::Openai),
        None
    );
    assert_eq!(
        super::translation(ApiRoute::Responses, ProviderKind::Anthropic),
        None
    );
}
