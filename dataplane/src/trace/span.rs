//! What a sampled request's trace is made of: the few timestamps the
//! request path notes while it runs ([`Active`], in the request context),
//! and the finished trace ([`Trace`]), built once at `Ctx::finish` from
//! those and from the record, with plain values only (no content: models,
//! upstreams, counts, statuses, error labels).

use super::context::TraceContext;
use sluice_contract::record::{ApiRoute, Record};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// One upstream attempt as the trace sees it.
#[derive(Clone, Debug)]
pub struct AttemptSpan {
    /// Its span id (also the parent id sent upstream in `traceparent`).
    pub span_id: [u8; 8],
    /// Start, unix ns.
    pub start_ns: u64,
    /// End (response head or failure), unix ns; 0 until known.
    pub end_ns: u64,
    /// `gen_ai.provider.name`.
    pub provider: &'static str,
    /// `server.address`.
    pub address: Arc<str>,
    /// The model asked of the provider.
    pub model: Arc<str>,
    /// Upstream name.
    pub upstream: Arc<str>,
    /// Response status, when it answered.
    pub status: Option<u16>,
    /// Error label, when it failed.
    pub error: Option<Cow<'static, str>>,
}

/// A sampled request in flight.
#[derive(Debug)]
pub struct Active {
    /// Ids of the trace and the caller's span.
    pub ctx: TraceContext,
    /// The request's own (server) span.
    pub root: [u8; 8],
    /// Unix ns of `anchor`.
    anchor_ns: u64,
    anchor: Instant,
    admitted_ns: Option<u64>,
    /// Attempts so far.
    pub attempts: Vec<AttemptSpan>,
    first_event_ns: Option<u64>,
    ids: u64,
}

impl Active {
    /// A sampled request whose head was complete at `started`; `seed` makes its span ids.
    pub fn new(ctx: TraceContext, started: Instant, seed: u64) -> Active {
        let now = Instant::now();
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut a = Active {
            ctx,
            root: [0; 8],
            anchor_ns: unix.saturating_sub(now.saturating_duration_since(started).as_nanos() as u64),
            anchor: started,
            admitted_ns: None,
            attempts: Vec::new(),
            first_event_ns: None,
            ids: seed | 1,
        };
        a.root = a.next_id();
        a
    }

    /// A fresh non-zero span id (xorshift from the request's seed).
    pub fn next_id(&mut self) -> [u8; 8] {
        let mut x = self.ids;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.ids = x;
        x.max(1).to_be_bytes()
    }

    /// Unix ns of `at`.
    fn ns(&self, at: Instant) -> u64 {
        self.anchor_ns + at.saturating_duration_since(self.anchor).as_nanos() as u64
    }

    /// Admission is done.
    pub fn admitted(&mut self) {
        self.admitted_ns = Some(self.ns(Instant::now()));
    }

    /// An attempt starts; returns the `traceparent` to send with it.
    pub fn attempt(
        &mut self,
        provider: &'static str,
        address: Arc<str>,
        upstream: Arc<str>,
        model: Arc<str>,
    ) -> [u8; 55] {
        let span_id = self.next_id();
        self.attempts.push(AttemptSpan {
            span_id,
            start_ns: self.ns(Instant::now()),
            end_ns: 0,
            provider,
            address,
            model,
            upstream,
            status: None,
            error: None,
        });
        super::context::format(&self.ctx.trace_id, &span_id, true)
    }

    /// The current attempt ended with `status` or `error`.
    pub fn attempt_done(&mut self, status: Option<u16>, error: Option<&'static str>) {
        let now = self.ns(Instant::now());
        if let Some(a) = self.attempts.last_mut() {
            a.end_ns = now;
            a.status = status;
            a.error = error.map(Cow::Borrowed);
        }
    }

    /// The response filter has read `events` events so far.
    pub fn events(&mut self, events: u64) {
        if events > 0 && self.first_event_ns.is_none() {
            self.first_event_ns = Some(self.ns(Instant::now()));
        }
    }

    /// The finished trace of `record`.
    pub fn finish(self, record: &Record) -> Trace {
        let end_ns = self.anchor_ns + record.total_us * 1000;
        let stream_start = self
            .attempts
            .last()
            .filter(|a| a.status.is_some())
            .map(|a| a.end_ns);
        Trace {
            trace_id: self.ctx.trace_id,
            parent: self.ctx.remote.then_some(self.ctx.parent_span_id),
            root: self.root,
            start_ns: self.anchor_ns,
            end_ns,
            admitted_ns: self.admitted_ns,
            attempts: self.attempts,
            stream_start_ns: stream_start,
            first_event_ns: self.first_event_ns,
            ids: self.ids,
            route: record.route,
            stream: record.stream,
            request_model: record.model.clone(),
            status: record.status,
            error: record.error.clone(),
            outcome: record.outcome.label(),
            input_tokens: record
                .usage
                .map(|u| u.input_tokens)
                .or(record.prompt_tokens_counted),
            output_tokens: record
                .usage
                .map(|u| u.output_tokens)
                .or(record.completion_tokens_counted),
            tenant: record.tenant.clone(),
        }
    }
}

/// A finished trace, waiting in the export queue.
#[derive(Debug, Clone)]
pub struct Trace {
    /// Trace id.
    pub trace_id: [u8; 16],
    /// The caller's span, when it sent `traceparent`.
    pub parent: Option<[u8; 8]>,
    /// The request's span.
    pub root: [u8; 8],
    /// Request head complete, unix ns.
    pub start_ns: u64,
    /// Last byte written, unix ns.
    pub end_ns: u64,
    /// Admission done, unix ns (absent when refused before it ended).
    pub admitted_ns: Option<u64>,
    /// Upstream attempts.
    pub attempts: Vec<AttemptSpan>,
    /// Response head of the answering attempt, unix ns (start of the stream span).
    pub stream_start_ns: Option<u64>,
    /// First event read from the upstream's stream, unix ns.
    pub first_event_ns: Option<u64>,
    /// Id seed for the spans built at export.
    pub ids: u64,
    /// The API.
    pub route: ApiRoute,
    /// The client asked for a stream.
    pub stream: bool,
    /// Model asked for.
    pub request_model: Option<String>,
    /// Status sent to the client.
    pub status: u16,
    /// Error label.
    pub error: Option<Cow<'static, str>>,
    /// Outcome label.
    pub outcome: &'static str,
    /// Input tokens (reported, else counted).
    pub input_tokens: Option<u64>,
    /// Output tokens (reported, else counted).
    pub output_tokens: Option<u64>,
    /// Tenant id.
    pub tenant: Option<Arc<str>>,
}

/// The sampling decision for a request whose head was complete at
/// `started`: an [`Active`] trace when it is sampled. `traceparent` is the
/// client's header, if any; `random` draws the ids of a new trace.
pub fn sample(
    tracer: &super::Tracer,
    traceparent: Option<&[u8]>,
    started: Instant,
    mut random: impl FnMut() -> u64,
) -> Option<Active> {
    let ctx = match traceparent.and_then(super::context::parse) {
        Some(c) => c,
        None => {
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&random().to_be_bytes());
            trace_id[8..].copy_from_slice(&random().to_be_bytes());
            TraceContext {
                trace_id,
                parent_span_id: [0; 8],
                parent_sampled: false,
                remote: false,
            }
        }
    };
    if !super::context::sampled(&ctx, tracer.ratio) {
        return None;
    }
    Some(Active::new(ctx, started, random()))
}
