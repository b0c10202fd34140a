use super::*;
use crate::run::request::Api;
use crate::run::schedule::Arrivals;
use crate::run::sse_metrics::Tally;
use crate::run::stats::{ErrorKind, Outcome};

fn config() -> ConfigEcho {
    ConfigEcho {
        url: "http://127.0.0.1:1".into(),
        api: Api::Openai,
        stream: true,
        mode: "open".into(),
        rate: Some(100.0),
        arrivals: Some(Arrivals::Poisson),
        concurrency: None,
        duration_s: Some(2.0),
        requests: None,
        workers: 2,
        max_inflight: 10_000,
        timeout_s: 60.0,
        models: vec!["m".into()],
        api_keys: 1,
        headers: vec!["x-mock-tokens: 5".into()],
    }
}

fn totals() -> Totals {
    let mut t = Totals {
        window_s: 2.0,
        elapsed_s: 2.5,
        cpu_s: 0.25,
        ..Default::default()
    };
    for i in 0..200u64 {
        let start = i * 10_000_000;
        t.stats.record(&Outcome {
            intended_ns: start,
            sent_ns: start + 5_000,
            head_ns: Some(start + 400_000),
            end_ns: start + 2_000_000,
            stream: Some(Tally {
                first_content_ns: Some(start + 500_000),
                last_content_ns: Some(start + 2_000_000),
                content_events: 5,
                reported_tokens: Some(5),
                itl_ns: vec![375_000; 4],
                done: true,
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    t.stats.record(&Outcome {
        error: Some(ErrorKind::Status(503)),
        ..Default::default()
    });
    t
}

#[test]
fn json_round_trip() {
    let r = Report::new(config(), &totals());
    let text = serde_json::to_string_pretty(&r).unwrap();
    let back: Report = serde_json::from_str(&text).unwrap();
    assert_eq!(back, r);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["schema"], SCHEMA);
    assert_eq!(v["requests"]["error_kinds"]["status_503"], 1);
    assert_eq!(v["requests"]["ok"], 200);
    assert_eq!(v["tokens"]["output"], 1000);
    assert_eq!(v["rate"]["ok"], 100.0);
    assert_eq!(v["tokens"]["output_per_s"], 400.0);
    assert_eq!(v["tester"]["cpu_percent"], 10.0);
    let ttft = &v["latency_us"]["ttft"];
    assert_eq!(ttft["count"], 200);
    assert!((499..=501).contains(&ttft["p50"].as_u64().unwrap()), "{ttft}");
    assert!((374..=376).contains(&v["latency_us"]["tpot"]["p99"].as_u64().unwrap()));
    assert!(v["config"].get("api_keys").unwrap().is_u64());
}

#[test]
fn empty_summaries_are_null() {
    let r = Report::new(config(), &Totals::default());
    let v = serde_json::to_value(&r).unwrap();
    assert!(v["latency_us"]["ttft"].is_null());
    assert_eq!(v["rate"]["sent"], 0.0);
}

#[test]
fn table_has_every_metric() {
    let table = Report::new(config(), &totals()).table();
    for word in [
        "ttfb",
        "ttft",
        "itl",
        "tpot",
        "e2e",
        "sched lag",
        "status_503: 1",
        "tokens/s",
        "tester cpu",
    ] {
        assert!(table.contains(word), "{word} missing from\n{table}");
    }
}

#[test]
fn human_durations() {
    assert_eq!(fmt_us(850), "850µs");
    assert_eq!(fmt_us(1_234), "1.23ms");
    assert_eq!(fmt_us(45_600), "45.6ms");
    assert_eq!(fmt_us(4_560_000), "4.56s");
}
