//! Per-request outcomes and the histograms and counters they add up to.
//!
//! Latency is measured from a request's *intended* start (its slot in the
//! open-loop schedule), not from when the tester got round to sending it: a
//! tester that falls behind (because the server stalled it, or because it is
//! itself overloaded) cannot hide the delay. That delay is also reported on
//! its own, as schedule lag. A request sent a little early (the pacer may
//! wake up to tens of µs before its slot) is measured from when it was sent.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use super::sse_metrics::Tally;

/// Why a request failed. Labels are stable: they are JSON keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    /// A non-2xx response.
    Status(u16),
    /// The stream or body ended before its terminator.
    Truncated,
    /// The connection closed before any byte of the response (on a fresh
    /// connection, or on a pooled one and then on the fresh retry).
    Closed,
    /// No complete response within `--timeout` (or the drain deadline).
    Timeout,
    /// The connection (or TLS handshake) could not be made.
    Connect,
    /// The open loop hit `--max-inflight`, so the request was never sent.
    Overload,
    /// The response could not be parsed.
    Protocol,
    /// The stream carried an error event.
    StreamError,
}

impl ErrorKind {
    pub(crate) fn label(self) -> String {
        match self {
            ErrorKind::Status(code) => format!("status_{code}"),
            ErrorKind::Truncated => "truncated".into(),
            ErrorKind::Closed => "closed".into(),
            ErrorKind::Timeout => "timeout".into(),
            ErrorKind::Connect => "connect".into(),
            ErrorKind::Overload => "overload".into(),
            ErrorKind::Protocol => "protocol".into(),
            ErrorKind::StreamError => "stream_error".into(),
        }
    }
}

/// How one request went. Times are ns since the run started.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    pub(crate) intended_ns: u64,
    pub(crate) sent_ns: u64,
    /// When the response head arrived.
    pub(crate) head_ns: Option<u64>,
    pub(crate) end_ns: u64,
    pub(crate) error: Option<ErrorKind>,
    /// Streamed responses: what the event stream said.
    pub(crate) stream: Option<Tally>,
    /// Non-streamed responses: the usage the JSON body reported.
    pub(crate) json_tokens: Option<u64>,
}

impl Outcome {
    /// The instant latencies are measured from.
    pub(crate) fn origin_ns(&self) -> u64 {
        self.intended_ns.min(self.sent_ns)
    }

    /// How late the tester sent the request.
    pub(crate) fn lag_ns(&self) -> u64 {
        self.sent_ns.saturating_sub(self.intended_ns)
    }
}

/// µs, 3 significant digits, up to an hour.
pub(crate) fn histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, 3_600_000_000, 3) {
        Ok(h) => h,
        // The bounds are constants that hdrhistogram accepts.
        Err(e) => unreachable!("histogram bounds: {e:?}"),
    }
}

fn us(ns: u64) -> u64 {
    ns / 1000
}

/// Everything measured by one worker (or, merged, by all).
#[derive(Debug, Clone)]
pub(crate) struct Stats {
    /// Requests issued, including those refused for overload.
    pub(crate) sent: u64,
    pub(crate) ok: u64,
    pub(crate) errors: BTreeMap<String, u64>,
    /// Streams that ended with their terminator (ok or not).
    pub(crate) completed_streams: u64,
    /// Content events counted in ok responses.
    pub(crate) tokens_counted: u64,
    /// Usage reported by ok responses that reported it.
    pub(crate) tokens_reported: u64,
    pub(crate) responses_with_usage: u64,
    /// Per ok request: reported usage if any, else counted events.
    pub(crate) output_tokens: u64,
    pub(crate) ttfb: Histogram<u64>,
    pub(crate) ttft: Histogram<u64>,
    pub(crate) itl: Histogram<u64>,
    pub(crate) tpot: Histogram<u64>,
    pub(crate) e2e: Histogram<u64>,
    pub(crate) lag: Histogram<u64>,
    /// End of the last response, ns since the start.
    pub(crate) last_end_ns: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            sent: 0,
            ok: 0,
            errors: BTreeMap::new(),
            completed_streams: 0,
            tokens_counted: 0,
            tokens_reported: 0,
            responses_with_usage: 0,
            output_tokens: 0,
            ttfb: histogram(),
            ttft: histogram(),
            itl: histogram(),
            tpot: histogram(),
            e2e: histogram(),
            lag: histogram(),
            last_end_ns: 0,
        }
    }
}

impl Stats {
    pub(crate) fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    pub(crate) fn error(&mut self, kind: ErrorKind) {
        *self.errors.entry(kind.label()).or_default() += 1;
    }

    /// A request that could not start (`--max-inflight` reached).
    pub(crate) fn overload(&mut self) {
        self.sent += 1;
        self.error(ErrorKind::Overload);
    }

    pub(crate) fn record(&mut self, o: &Outcome) {
        self.sent += 1;
        self.lag.saturating_record(us(o.lag_ns()));
        self.last_end_ns = self.last_end_ns.max(o.end_ns);
        if o.stream.as_ref().is_some_and(|t| t.done) {
            self.completed_streams += 1;
        }
        if let Some(kind) = o.error {
            self.error(kind);
            return;
        }
        self.ok += 1;
        let origin = o.origin_ns();
        if let Some(head) = o.head_ns {
            self.ttfb.saturating_record(us(head.saturating_sub(origin)));
        }
        self.e2e.saturating_record(us(o.end_ns.saturating_sub(origin)));
        let (counted, reported) = match &o.stream {
            Some(t) => {
                if let Some(first) = t.first_content_ns {
                    self.ttft.saturating_record(us(first.saturating_sub(origin)));
                }
                for &gap in &t.itl_ns {
                    self.itl.saturating_record(us(gap));
                }
                (t.content_events, t.reported_tokens)
            }
            None => (0, o.json_tokens),
        };
        self.tokens_counted += counted;
        if let Some(r) = reported {
            self.tokens_reported += r;
            self.responses_with_usage += 1;
        }
        let tokens = reported.unwrap_or(counted);
        self.output_tokens += tokens;
        // TPOT: decode time per token after the first (vLLM's definition).
        if let (Some(t), true) = (&o.stream, tokens >= 2) {
            if let Some(first) = t.first_content_ns {
                self.tpot
                    .saturating_record(us(o.end_ns.saturating_sub(first) / (tokens - 1)));
            }
        }
    }

    pub(crate) fn merge(&mut self, other: &Stats) {
        self.sent += other.sent;
        self.ok += other.ok;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.completed_streams += other.completed_streams;
        self.tokens_counted += other.tokens_counted;
        self.tokens_reported += other.tokens_reported;
        self.responses_with_usage += other.responses_with_usage;
        self.output_tokens += other.output_tokens;
        for (mine, theirs) in [
            (&mut self.ttfb, &other.ttfb),
            (&mut self.ttft, &other.ttft),
            (&mut self.itl, &other.itl),
            (&mut self.tpot, &other.tpot),
            (&mut self.e2e, &other.e2e),
            (&mut self.lag, &other.lag),
        ] {
            // Same bounds on both sides, so adding cannot fail.
            let _ = mine.add(theirs);
        }
        self.last_end_ns = self.last_end_ns.max(other.last_end_ns);
    }
}

#[cfg(test)]
mod tests;
