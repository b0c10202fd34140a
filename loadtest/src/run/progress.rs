//! The main thread's side of a run: collect the workers' results and print a
//! progress line every second on stderr.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::client::Clock;
use super::report::fmt_us;
use super::stats::histogram;
use super::worker::{Done, Live, Msg};

/// Waits for every worker's `Done`; fails if a worker could not start.
pub(crate) fn collect(
    rx: &crossbeam_channel::Receiver<Msg>,
    workers: usize,
    live: &Live,
    clock: Clock,
    show: bool,
) -> anyhow::Result<Vec<Done>> {
    let mut done = Vec::with_capacity(workers);
    let mut ttft = histogram();
    let mut next_tick = Duration::from_secs(1);
    let mut last_sent = 0;
    let mut failure = None;
    while done.len() + usize::from(failure.is_some()) < workers {
        let wait = next_tick.saturating_sub(clock.0.elapsed());
        match rx.recv_timeout(wait) {
            Ok(Msg::Ttft(h)) => {
                let _ = ttft.add(&*h);
            }
            Ok(Msg::Done(d)) => done.push(*d),
            Ok(Msg::Failed(e)) => {
                failure.get_or_insert(e);
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                let sent = live.sent.load(Ordering::Relaxed);
                if show {
                    let p99 = if ttft.is_empty() {
                        "-".to_string()
                    } else {
                        fmt_us(ttft.value_at_quantile(0.99))
                    };
                    eprintln!(
                        "[{:>5.1}s] done {sent} ({}/s)  ok {}  errors {}  in flight {}  ttft p99 {p99}",
                        clock.0.elapsed().as_secs_f64(),
                        sent - last_sent,
                        live.ok.load(Ordering::Relaxed),
                        live.errors.load(Ordering::Relaxed),
                        live.inflight.load(Ordering::Relaxed),
                    );
                }
                last_sent = sent;
                next_tick += Duration::from_secs(1);
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
    }
    match failure {
        Some(e) => anyhow::bail!("a load worker failed: {e}"),
        None if done.len() < workers => anyhow::bail!("a load worker stopped without a result"),
        None => Ok(done),
    }
}
