//! `--open-streams N`: hold N slow streams open through each target and
//! sample the servers' memory.
//!
//! A closed loop of N users opens the streams over `--ramp`; the mock sends
//! one token a second and enough tokens that no stream ends before the hold
//! does, so exactly N stay open. At the end the load generator drops them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::run::procstat;
use crate::run::report::Report;
use crate::run::{execute, Load};

use super::output::{Compared, StreamsResult};
use super::procs::Server;
use super::rounds::load_config;
use super::{CompareArgs, Side};

/// Peak values seen by the sampler.
#[derive(Default, Clone, Copy)]
struct Peak {
    proxy_rss_kib: u64,
    mock_rss_kib: u64,
    proxy_fds: usize,
}

pub(crate) fn run(
    args: &CompareArgs,
    sides: &mut [Side],
    mock: &mut Server,
    n: usize,
) -> anyhow::Result<Compared> {
    let span = args.ramp + args.hold;
    let mut a = args.clone();
    a.itl_ms = 1000;
    // Longer than the run: no stream ends on its own.
    a.tokens = span.as_secs() + 30;
    let mut results = Vec::new();
    for side in sides.iter_mut() {
        mock.check_alive()?;
        if let Some(p) = side.proxy.as_mut() {
            p.check_alive()?;
        }
        let proxy_pid = side.proxy.as_ref().map(Server::pid);
        let idle_proxy = proxy_pid.and_then(procstat::tree_rss_kib);
        let idle_mock = mock.rss_kib();
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let stop = stop.clone();
            let mock_pid = mock.pid();
            std::thread::spawn(move || {
                let mut peak = Peak::default();
                while !stop.load(Ordering::Relaxed) {
                    if let Some(p) = proxy_pid {
                        peak.proxy_rss_kib = peak.proxy_rss_kib.max(procstat::tree_rss_kib(p).unwrap_or(0));
                        let fds: usize = std::iter::once(p)
                            .chain(procstat::descendants(p))
                            .map(|p| std::fs::read_dir(format!("/proc/{p}/fd")).map_or(0, |d| d.count()))
                            .sum();
                        peak.proxy_fds = peak.proxy_fds.max(fds);
                    }
                    peak.mock_rss_kib = peak
                        .mock_rss_kib
                        .max(procstat::tree_rss_kib(mock_pid).unwrap_or(0));
                    std::thread::sleep(Duration::from_millis(250));
                }
                peak
            })
        };
        let mut cfg = load_config(
            &a,
            side,
            Load::Closed {
                concurrency: n,
                ramp: args.ramp,
            },
            span,
        );
        cfg.timeout = span + Duration::from_secs(120);
        // Streams still open at the end are dropped, not waited for.
        cfg.drain = Duration::from_secs(1);
        eprintln!(
            "{}: opening {n} streams over {:?}, holding {:?}",
            side.name, args.ramp, args.hold
        );
        let totals = execute(&cfg, true);
        stop.store(true, Ordering::Relaxed);
        let peak = sampler.join().unwrap_or_default();
        let totals = totals?;
        let report = Report::new(cfg.echo(), &totals);
        // The streams dropped at the end count as timeouts: not failures here.
        let mut errors = report.requests.error_kinds.clone();
        errors.remove("timeout");
        let per_stream = |idle: Option<u64>, peak: u64| {
            idle.map(|i| ((peak.saturating_sub(i)) as f64 * 1024.0 / n.max(1) as f64).round() as u64)
        };
        results.push(StreamsResult {
            name: side.name.clone(),
            streams: n as u64,
            proxy_idle_rss_kib: idle_proxy,
            proxy_peak_rss_kib: proxy_pid.map(|_| peak.proxy_rss_kib),
            proxy_bytes_per_stream: proxy_pid.and_then(|_| per_stream(idle_proxy, peak.proxy_rss_kib)),
            proxy_peak_fds: proxy_pid.map(|_| peak.proxy_fds as u64),
            mock_idle_rss_kib: idle_mock,
            mock_peak_rss_kib: peak.mock_rss_kib,
            errors,
        });
        // Let the servers notice the dropped streams before the next side.
        std::thread::sleep(Duration::from_secs(2));
    }
    Ok(Compared::streams(&a, results))
}
