//! The exporter thread: batches queued traces and posts them to the
//! collector's `/v1/traces` as `application/x-protobuf`.

use super::{drain, otlp, Tracer};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most traces in one export request.
const BATCH: usize = 512;
/// A batch goes out at least this often while traces wait.
const LINGER: Duration = Duration::from_millis(500);
/// How long one export request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// `endpoint` + `/v1/traces` unless it already names that path.
pub fn traces_url(endpoint: &str) -> Result<String, String> {
    let e = endpoint.trim();
    if !(e.starts_with("http://") || e.starts_with("https://")) {
        return Err(format!(
            "--otlp-endpoint must be an http:// or https:// URL, not {e:?}"
        ));
    }
    if e.ends_with("/v1/traces") {
        return Ok(e.to_owned());
    }
    Ok(format!("{}/v1/traces", e.trim_end_matches('/')))
}

/// Starts the thread.
pub fn spawn(tracer: Arc<Tracer>, url: String, service: String) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("sluice-otlp".into())
        .spawn(move || run(&tracer, &url, &service))
        .map(drop)
}

fn run(tracer: &Tracer, url: &str, service: &str) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    let mut batch = Vec::with_capacity(BATCH);
    let mut since = Instant::now();
    loop {
        drain(tracer, BATCH, &mut batch);
        if batch.is_empty() || (batch.len() < BATCH && since.elapsed() < LINGER) {
            std::thread::sleep(Duration::from_millis(20));
            if batch.is_empty() {
                since = Instant::now();
            }
            continue;
        }
        let spans: usize = batch
            .iter()
            .map(|t| 2 + t.attempts.len() + usize::from(t.stream_start_ns.is_some()))
            .sum();
        let body = otlp::encode(&batch, service);
        batch.clear();
        since = Instant::now();
        // One retry: a collector restarting is common, a long outage is
        // what the drop counter is for.
        let ok = (0..2).any(|try_| {
            if try_ > 0 {
                std::thread::sleep(Duration::from_millis(500));
            }
            match agent
                .post(url)
                .header("content-type", "application/x-protobuf")
                .send(&body[..])
            {
                Ok(r) if r.status().is_success() => true,
                Ok(r) => {
                    tracing::debug!(status = r.status().as_u16(), "OTLP export refused");
                    false
                }
                Err(e) => {
                    tracing::debug!(error = %e, "OTLP export failed");
                    false
                }
            }
        });
        if ok {
            tracer.exported.fetch_add(spans as u64, Ordering::Relaxed);
        } else {
            tracer.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}
