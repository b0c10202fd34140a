//! The interleaved latency comparison and the max-rate search.

use std::time::{Duration, Instant};

use crate::run::report::{Report, Totals};
use crate::run::request::RequestSpec;
use crate::run::{execute, RunConfig};

use super::output::{AtRates, Compared, SideResult, Step};
use super::procs::Server;
use super::{CompareArgs, RateSpec, Side};

/// The run configuration for one side at one rate.
pub(crate) fn load_config(
    args: &CompareArgs,
    side: &Side,
    load: crate::run::Load,
    duration: Duration,
) -> RunConfig {
    let mut headers = vec![("x-mock-tokens".to_string(), args.tokens.to_string())];
    if args.ttft_ms > 0 {
        headers.push(("x-mock-ttft-ms".into(), args.ttft_ms.to_string()));
    }
    if args.itl_ms > 0 {
        headers.push(("x-mock-itl-ms".into(), args.itl_ms.to_string()));
    }
    RunConfig {
        url: side.url.clone(),
        spec: RequestSpec {
            api: Some(args.api),
            stream: !args.no_stream,
            api_keys: vec![side.key.clone()],
            models: vec![args.api.default_model().into()],
            body: None,
            prompt: "Write a haiku about load testing.".into(),
            // The mock caps its output at max_tokens.
            max_tokens: args.tokens.max(1),
            headers,
        },
        load,
        duration: Some(duration),
        requests: None,
        max_inflight: 10_000,
        timeout: Duration::from_secs(30),
        drain: Duration::from_secs(10),
        workers: args.load_workers.max(1),
        pin: false,
        precise: true,
        ca_file: side.ca_file.clone(),
        http2: false,
    }
}

fn open(args: &CompareArgs, rate: f64) -> crate::run::Load {
    crate::run::Load::Open {
        rate,
        arrivals: args.arrivals,
        seed: 1,
    }
}

/// Totals of one side over its rounds, with the CPU its servers used.
#[derive(Default)]
struct Acc {
    totals: Totals,
    wall_s: f64,
    proxy_cpu_s: f64,
    mock_cpu_s: f64,
}

/// One measured run of one side, accounting the servers' CPU.
fn measure(cfg: &RunConfig, side: &mut Side, mock: &mut Server, acc: &mut Acc) -> anyhow::Result<Totals> {
    mock.check_alive()?;
    if let Some(p) = side.proxy.as_mut() {
        p.check_alive()?;
    }
    let proxy0 = side.proxy.as_ref().map_or(0.0, Server::cpu_s);
    let mock0 = mock.cpu_s();
    let t0 = Instant::now();
    let totals = execute(cfg, false)?;
    acc.wall_s += t0.elapsed().as_secs_f64();
    acc.proxy_cpu_s += side.proxy.as_ref().map_or(0.0, Server::cpu_s) - proxy0;
    acc.mock_cpu_s += mock.cpu_s() - mock0;
    acc.totals.add(&totals);
    Ok(totals)
}

fn result(args: &CompareArgs, side: &Side, acc: &Acc, rate: f64) -> SideResult {
    let cfg = load_config(args, side, open(args, rate), args.duration);
    let pct = |s: f64| {
        if acc.wall_s > 0.0 {
            (s / acc.wall_s * 1000.0).round() / 10.0
        } else {
            0.0
        }
    };
    SideResult {
        name: side.name.clone(),
        url: side.url.clone(),
        report: Report::new(cfg.echo(), &acc.totals),
        proxy_cpu_percent: side.proxy.as_ref().map(|_| pct(acc.proxy_cpu_s)),
        mock_cpu_percent: pct(acc.mock_cpu_s),
    }
}

/// Interleaved rounds at `--rate`.
pub(crate) fn latency(args: &CompareArgs, sides: &mut [Side], mock: &mut Server) -> anyhow::Result<Compared> {
    if !args.warmup.is_zero() {
        for side in sides.iter_mut() {
            let cfg = load_config(args, side, open(args, args.rate), args.warmup);
            measure(&cfg, side, mock, &mut Acc::default())?;
        }
    }
    let mut accs: Vec<Acc> = sides.iter().map(|_| Acc::default()).collect();
    // Each side's TTFT p99 in each round.
    let mut round_p99: Vec<Vec<u64>> = sides.iter().map(|_| Vec::new()).collect();
    for round in 1..=args.rounds.max(1) {
        let mut line = format!("round {round}/{}:", args.rounds.max(1));
        for ((side, acc), p99s) in sides.iter_mut().zip(&mut accs).zip(&mut round_p99) {
            let cfg = load_config(args, side, open(args, args.rate), args.duration);
            let t = measure(&cfg, side, mock, acc)?;
            let r = Report::new(cfg.echo(), &t);
            let p99 = r
                .latency_us
                .ttft
                .as_ref()
                .or(r.latency_us.e2e.as_ref())
                .map_or(0, |s| s.p99);
            p99s.push(p99);
            line += &format!(
                "  {} ok {} err {} p99 {}",
                side.name,
                r.requests.ok,
                r.requests.errors,
                crate::run::report::fmt_us(p99)
            );
        }
        eprintln!("{line}");
    }
    let results = sides
        .iter()
        .zip(&accs)
        .map(|(s, a)| result(args, s, a, args.rate))
        .collect();
    Ok(Compared::latency(args, results, &round_p99))
}

/// The latency comparison at each of `--rates`; a percentage is of the
/// lowest highest-sustained rate among the proxies, searched first.
pub(crate) fn at_rates(args: &CompareArgs, sides: &mut [Side], mock: &mut Server) -> anyhow::Result<AtRates> {
    let mut out = AtRates {
        schema: "sluice-loadtest.compare-rates.v1",
        ..AtRates::default()
    };
    if args.rates.iter().any(|r| matches!(r, RateSpec::OfMax(_))) {
        let searched = search(args, sides, mock)?;
        eprint!("{}", searched.table());
        out.highest_sustained = searched
            .max_rate
            .iter()
            .filter(|m| m.name != "direct")
            .map(|m| m.highest_sustained.unwrap_or(0.0))
            .reduce(f64::min);
        out.search = Some(searched);
    }
    for spec in &args.rates {
        let Some(rate) = spec.resolve(out.highest_sustained) else {
            anyhow::bail!("no highest sustained rate to take {spec:?} of");
        };
        eprintln!("== latency at {rate} req/s");
        let at = CompareArgs { rate, ..args.clone() };
        out.rates.push(latency(&at, sides, mock)?);
    }
    Ok(out)
}

/// Steps the rate up for every side until it stops keeping up.
pub(crate) fn search(args: &CompareArgs, sides: &mut [Side], mock: &mut Server) -> anyhow::Result<Compared> {
    let bound_us = (args.p99_bound_ms * 1000.0) as u64;
    let mut steps: Vec<Vec<Step>> = sides.iter().map(|_| Vec::new()).collect();
    // Per side: the highest rate sustained and the lowest that was not.
    let mut lo: Vec<Option<f64>> = vec![None; sides.len()];
    let mut hi: Vec<Option<f64>> = vec![None; sides.len()];
    let mut rate = args.start_rate;
    // Coarse: step up, all sides in turn, until each fails.
    while rate <= args.max_rate && hi.iter().any(Option::is_none) {
        for (i, side) in sides.iter_mut().enumerate() {
            if hi[i].is_none() {
                // A failure must repeat: one noisy run on a shared machine
                // should not end a target's search.
                let ok = try_rate(args, side, mock, rate, bound_us, &mut steps[i])?
                    || try_rate(args, side, mock, rate, bound_us, &mut steps[i])?;
                *if ok { &mut lo[i] } else { &mut hi[i] } = Some(rate);
            }
        }
        rate *= args.step.max(1.01);
    }
    // Fine: bisect between the last rate sustained and the first that wasn't.
    for _ in 0..args.refine {
        for (i, side) in sides.iter_mut().enumerate() {
            if let (Some(l), Some(h)) = (lo[i], hi[i]) {
                let mid = ((l + h) / 2.0).round();
                let ok = try_rate(args, side, mock, mid, bound_us, &mut steps[i])?
                    || try_rate(args, side, mock, mid, bound_us, &mut steps[i])?;
                *if ok { &mut lo[i] } else { &mut hi[i] } = Some(mid);
            }
        }
    }
    Ok(Compared::search(args, sides, steps))
}

/// One run at `rate`; records the step and says whether it was sustained.
fn try_rate(
    args: &CompareArgs,
    side: &mut Side,
    mock: &mut Server,
    rate: f64,
    bound_us: u64,
    steps: &mut Vec<Step>,
) -> anyhow::Result<bool> {
    let cfg = load_config(args, side, open(args, rate), args.duration);
    let mut acc = Acc::default();
    let t = measure(&cfg, side, mock, &mut acc)?;
    let r = Report::new(cfg.echo(), &t);
    let verdict = verdict(&r, rate, bound_us);
    let step = Step {
        rate,
        ok_rate: r.rate.ok,
        errors: r.requests.errors,
        p99_us: latency_p99(&r),
        lag_p99_us: r.latency_us.schedule_lag.as_ref().map_or(0, |s| s.p99),
        tester_cpu_percent: r.tester.cpu_percent,
        proxy_cpu_percent: side
            .proxy
            .as_ref()
            .map(|_| (acc.proxy_cpu_s / acc.wall_s.max(1e-9) * 1000.0).round() / 10.0),
        failed: verdict.clone().err(),
    };
    eprintln!(
        "{:<13} {:>9.0}/s  ok {:>9.1}/s  errors {:>5}  p99 {:>8}  {}",
        side.name,
        rate,
        step.ok_rate,
        step.errors,
        crate::run::report::fmt_us(step.p99_us),
        step.failed.as_deref().unwrap_or("sustained")
    );
    steps.push(step);
    Ok(verdict.is_ok())
}

fn latency_p99(r: &Report) -> u64 {
    r.latency_us
        .ttft
        .as_ref()
        .or(r.latency_us.e2e.as_ref())
        .map_or(u64::MAX, |s| s.p99)
}

/// Whether a run sustained `rate`: errors ≤ 0.1%, p99 TTFT within the
/// bound, and (nearly) every scheduled request served.
fn verdict(r: &Report, rate: f64, bound_us: u64) -> Result<(), String> {
    let sent = r.requests.sent.max(1) as f64;
    if r.requests.errors as f64 / sent > 0.001 {
        return Err(format!("errors {:.2}%", r.requests.errors as f64 * 100.0 / sent));
    }
    let p99 = latency_p99(r);
    if p99 > bound_us {
        let lag = r.latency_us.schedule_lag.as_ref().map_or(0, |s| s.p99);
        // Latency counts from the intended start, so a lagging load
        // generator shows up in p99 too: say so, the CPU is shared.
        let note = if lag > bound_us / 2 {
            format!(
                " (the load generator lagged too: p99 {})",
                crate::run::report::fmt_us(lag)
            )
        } else {
            String::new()
        };
        return Err(format!(
            "p99 {} over the bound{note}",
            crate::run::report::fmt_us(p99)
        ));
    }
    if r.rate.ok < 0.97 * rate {
        return Err(format!("served only {:.0}/s", r.rate.ok));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::stats::{ErrorKind, Outcome};

    fn report(ok: u64, errors: u64, ttft_us: u64, lag_us: u64) -> Report {
        let mut t = Totals {
            window_s: 1.0,
            elapsed_s: 1.0,
            ..Default::default()
        };
        for i in 0..ok {
            let start = i * 1_000_000;
            t.stats.record(&Outcome {
                intended_ns: start,
                sent_ns: start + lag_us * 1000,
                head_ns: Some(start + ttft_us * 1000),
                end_ns: start + ttft_us * 1000,
                stream: Some(crate::run::sse_metrics::Tally {
                    first_content_ns: Some(start + ttft_us * 1000),
                    content_events: 1,
                    done: true,
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        for _ in 0..errors {
            t.stats.record(&Outcome {
                error: Some(ErrorKind::Status(502)),
                ..Default::default()
            });
        }
        let side = Side {
            name: "x".into(),
            url: "http://127.0.0.1:1".into(),
            key: "k".into(),
            proxy: None,
            ca_file: None,
        };
        let args = <CompareArgs as clap::FromArgMatches>::from_arg_matches(
            &<CompareArgs as clap::Args>::augment_args(clap::Command::new("t")).get_matches_from(["t"]),
        )
        .unwrap();
        Report::new(
            load_config(&args, &side, open(&args, 1000.0), Duration::from_secs(1)).echo(),
            &t,
        )
    }

    #[test]
    fn sustained_only_within_every_bound() {
        assert_eq!(verdict(&report(1000, 0, 500, 0), 1000.0, 50_000), Ok(()));
        assert_eq!(verdict(&report(1000, 1, 500, 0), 1000.0, 50_000), Ok(()));
        assert!(verdict(&report(1000, 2, 500, 0), 1000.0, 50_000)
            .unwrap_err()
            .starts_with("errors"));
        assert!(verdict(&report(1000, 0, 60_000, 0), 1000.0, 50_000)
            .unwrap_err()
            .starts_with("p99"));
        let lagging = verdict(&report(1000, 0, 60_000, 40_000), 1000.0, 50_000).unwrap_err();
        assert!(lagging.contains("load generator"), "{lagging}");
        assert!(verdict(&report(900, 0, 500, 0), 1000.0, 50_000)
            .unwrap_err()
            .starts_with("served only"));
    }
}
