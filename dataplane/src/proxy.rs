//! The request's phases, over one context ([`Ctx`]), in the order a request
//! meets them:
//!
//! 1. **classify** ([`classify`]): method and path give the API and the
//!    dialect errors are written in, or a 404 in the caller's shape;
//! 2. **authenticate** ([`auth`]): the gateway key's SHA-256 in the snapshot;
//! 3. **read body** ([`inspect`]): within limits, parsed once into what the
//!    gateway needs;
//! 4. **admit** ([`meter::admit`]): policy, prompt tokens, rate limits, the
//!    credit reservation, held by a guard that refunds on drop;
//! 5. **route** ([`route`]): the model alias's targets, in the order to try;
//! 6. **upstream request** ([`forward`]): rewrite, provider key opened into
//!    a wiped buffer, sent on a pooled connection, the next target tried
//!    before any byte reached the client;
//! 7. **response filter** ([`filter`], driven by [`relay`]): the bytes go to
//!    the client first; framing, events, usage and counting read as they
//!    pass;
//! 8. **logging** ([`Ctx::finish`]): settle ([`meter::settle`]), seal opted-in
//!    content, one record.
//!
//! Each phase but the I/O of 6 and 7 is a function of plain inputs that the
//! unit tests call without a socket. A phase that refuses returns a
//! [`Reject`]; [`handle`] turns it into a response in one place (see
//! [`crate::respond`]). Every request, a refused head included, leaves
//! exactly one record, through [`Ctx::finish`] — also when its task is
//! dropped midway (the context finishes on drop). The connection's buffer
//! and keep-alive are the connection loop's ([`crate::server::conn`]).

pub mod auth;
pub mod cached;
pub mod classify;
pub mod content;
pub mod filter;
pub mod forward;
pub mod inspect;
pub mod meter;
pub mod models;
pub mod relay;
pub mod route;

use crate::io::client::{ClientIo, Next};
use crate::respond::{self, ErrorKind, Reject};
use crate::worker::Worker;
use sluice_contract::codec::head::{Framing, Method, RequestHead};
use sluice_contract::dialect::Dialect;
use sluice_contract::record::{ApiRoute, Outcome, Record};
use std::time::Instant;

/// Per-request context: the record being built and what the phases learned.
pub struct Ctx<'w> {
    worker: &'w Worker,
    /// The record; pushed exactly once.
    pub record: Record,
    /// When the request head was complete.
    pub started: Instant,
    /// The dialect errors are written in.
    pub dialect: Dialect,
    /// What admission reserved, settled when the record is finished.
    pub admission: Option<meter::Admission>,
    /// Opt-in content capture, sealed into the record when it is finished.
    pub capture: Option<content::Capture>,
    /// A response cache entry being filled from the response.
    pub fill: Option<cached::Fill>,
    /// The request's trace, when it is sampled (see [`crate::trace`]).
    pub trace: Option<crate::trace::span::Active>,
    done: bool,
}

impl Drop for Ctx<'_> {
    fn drop(&mut self) {
        if !self.done {
            // The task was dropped mid-request (shutdown after the grace period).
            self.record.outcome = Outcome::Cancelled;
            self.finish();
        }
    }
}

impl<'w> Ctx<'w> {
    fn new(worker: &'w Worker, api: ApiRoute, dialect: Dialect, started: Instant, ts_ms: u64) -> Ctx<'w> {
        Ctx {
            worker,
            record: Record::new(ts_ms, api),
            started,
            dialect,
            admission: None,
            capture: None,
            fill: None,
            trace: None,
            done: false,
        }
    }

    /// Phase 8, logging: settles the admission against what happened, seals
    /// opted-in content, and hands the record on. The one record exit.
    pub fn finish(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        if let Some(adm) = self.admission.take() {
            meter::settle(adm, &mut self.record);
        }
        if let Some(capture) = self.capture.take() {
            capture.seal_into(&mut self.record);
        }
        self.record.total_us = self.started.elapsed().as_micros() as u64;
        if let (Some(active), Some(tracer)) = (self.trace.take(), crate::trace::tracer()) {
            tracer.push(active.finish(&self.record));
        }
        let m = self.worker.metrics();
        m.request(self.record.route, self.record.status);
        m.bytes(self.record.bytes_in, self.record.bytes_out);
        self.worker.record(std::mem::replace(
            &mut self.record,
            Record::new(0, ApiRoute::Other),
        ));
    }

    /// The one error exit: writes the response for `reject`, notes it in the
    /// record. `keep`: the connection stays open after it.
    async fn refuse(&mut self, io: &mut ClientIo, reject: Reject, keep: bool) -> Next {
        reject.write(&mut io.out, self.dialect, keep);
        let kind = reject.kind;
        self.record.bytes_out += io.out.len() as u64;
        self.record.status = kind.status();
        self.record.error = Some(kind.label().into());
        if self.record.outcome == Outcome::Ok {
            self.record.outcome = match kind.blame() {
                respond::Blame::Upstream => Outcome::UpstreamUnavailable,
                _ => Outcome::Rejected,
            };
        }
        if io.write_out().await && keep {
            Next::KeepAlive
        } else {
            Next::Close
        }
    }
}

/// A request head that could not be read: why, and a label for the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadRefusal {
    kind: ErrorKind,
    label: &'static str,
}

impl HeadRefusal {
    /// A refusal of kind `kind`, labelled `label` in the message and record.
    pub fn new(kind: ErrorKind, label: &'static str) -> HeadRefusal {
        HeadRefusal { kind, label }
    }
}

/// Answers a head that could not be read, and records it; the connection
/// closes after it (nothing to resynchronise on).
pub async fn refuse_head(w: &Worker, io: &mut ClientIo, refusal: HeadRefusal, started: Instant, ts_ms: u64) {
    let mut ctx = Ctx::new(w, ApiRoute::Other, Dialect::OpenAi, started, ts_ms);
    ctx.record.tls = io.tls_version.map(Into::into);
    ctx.record.bytes_in = io.buf.len() as u64;
    let detail = format!("{}: {}", refusal.kind.message(), refusal.label);
    ctx.refuse(io, Reject::with(refusal.kind, detail), false).await;
    ctx.record.error = Some(refusal.label.into());
    ctx.finish();
}

/// Serves one request whose head is at the front of `io.buf`.
pub async fn handle(w: &Worker, io: &mut ClientIo, head: RequestHead, started: Instant, ts_ms: u64) -> Next {
    let anthropic_hint = io.header(b"anthropic-version").is_some() || io.header(b"x-api-key").is_some();
    let gemini_hint = io.header(b"x-goog-api-key").is_some();
    let class = classify::classify(head.method, head.path(&io.buf), anthropic_hint, gemini_hint);
    let mut ctx = Ctx::new(w, class.api, class.dialect, started, ts_ms);
    if let Some(tracer) = crate::trace::tracer() {
        ctx.trace = crate::trace::span::sample(tracer, io.header(b"traceparent"), started, || w.random());
    }
    ctx.record.bytes_in = head.len as u64;
    ctx.record.protocol = Some(match (io.h2, head.http11) {
        (true, _) => "h2".into(),
        (false, true) => "http/1.1".into(),
        (false, false) => "http/1.0".into(),
    });
    ctx.record.tls = io.tls_version.map(Into::into);
    ctx.record.client_ip_hash = Some(w.shared.ip_hasher.hash_remembered(io.peer.ip(), &mut io.ip_hash));
    let result = match class.refused {
        Some(kind) => Err(Reject::from(kind)),
        None if class.api == ApiRoute::Health => Ok(health(io, &head, &mut ctx).await),
        None => serve_api(w, io, &head, &mut ctx).await,
    };
    let next = match result {
        Ok(next) => next,
        Err(reject) => {
            let keep = head.keep_alive && io.reusable();
            ctx.refuse(io, reject, keep).await
        }
    };
    io.last_outcome = ctx.record.outcome;
    ctx.finish();
    next
}

/// `GET /healthz`: the data plane is up.
async fn health(io: &mut ClientIo, head: &RequestHead, ctx: &mut Ctx<'_>) -> Next {
    let keep = head.keep_alive && io.reusable();
    respond::write_health(&mut io.out, head.method != Method::Head, keep);
    ctx.record.status = 200;
    ctx.record.bytes_out = io.out.len() as u64;
    if io.write_out().await && keep {
        Next::KeepAlive
    } else {
        Next::Close
    }
}

async fn serve_api(
    w: &Worker,
    io: &mut ClientIo,
    head: &RequestHead,
    ctx: &mut Ctx<'_>,
) -> Result<Next, Reject> {
    // 2. authenticate
    let index = w.shared.cell.current();
    let mut key = auth::presented_key(io.header(b"authorization"), io.header(b"x-api-key"));
    if ctx.dialect == Dialect::Gemini && key.is_none() {
        let target = head.target.of(&io.buf);
        let query = memchr::memchr(b'?', target).map_or(&b""[..], |q| &target[q + 1..]);
        key = auth::presented_gemini_key(io.header(b"x-goog-api-key"), query);
    }
    let key = auth::authenticate(&index, key)?;
    ctx.record.tenant = Some(key.tenant.id.clone());
    ctx.record.key_id = Some(key.id.clone());
    if w.shared
        .freshness
        .as_ref()
        .is_some_and(|f| f.stale(ctx.record.ts_ms))
    {
        return Err(Reject::with(
            ErrorKind::Unavailable,
            "the gateway cannot confirm this tenant with its control plane: its snapshot is older than the configured maximum age",
        ));
    }

    if matches!(ctx.record.route, ApiRoute::Models | ApiRoute::Model) {
        if head.framing != Framing::Empty {
            return Err(Reject::with(
                ErrorKind::BadRequest,
                "GET /v1/models takes no body",
            ));
        }
        return models::respond(io, &key, head, ctx).await;
    }

    // 3. read body
    let limits = &w.shared.limits;
    let req = io
        .read_body(head, limits.max_body_bytes, limits.body_timeout())
        .await
        .map_err(|e| inspect::body_refusal(e, &mut ctx.record))?;
    ctx.record.bytes_in = req.raw.len() as u64;
    // A compressed body is read, policed and forwarded decoded.
    let req_body = match req.header(&io.headers, b"content-encoding") {
        Some(coding) => inspect::decoded(coding, &req.body, limits.max_body_bytes)?,
        None => req.body.clone(),
    };
    let dialect = ctx.record.route.dialect().unwrap_or(Dialect::OpenAi);
    let view = match dialect {
        // Gemini names the model in the path.
        Dialect::Gemini => {
            let model = classify::gemini::model(head.path(&req.raw)).ok_or_else(|| {
                Reject::with(ErrorKind::InvalidField, "the model name in the path is not valid")
            })?;
            sluice_contract::policy::extract::extract_gemini(&req_body, &model)
        }
        _ => sluice_contract::policy::extract(dialect, &req_body),
    }
    .map_err(inspect::refusal)?;
    let info = inspect::inspect(&view, ctx.record.route)?;
    ctx.record.model = Some(info.model.clone());
    ctx.record.stream = info.stream;

    // 4. admit, with the response cache's look-up (after the policy and
    // the rate limits, before any credit is reserved).
    let directives = cached::directives(req.header(&io.headers, b"cache-control"));
    let api = ctx.record.route;
    let mut probe = cached::Probe {
        cache: &w.shared.cell.cache,
        stream: info.stream,
        hit: None,
    };
    let mut plan = None;
    let (admission, redacted) = meter::admit_probing(
        &index,
        &key,
        &view,
        &req_body,
        limits.count_tokens,
        &mut ctx.record,
        |forwarded| {
            let p = cached::plan(&key, api, &info.model, forwarded, directives)?;
            let found = probe.look(&p);
            let share = p.policy().hit_share_ppm;
            plan = Some(p);
            let price = probe.hit.as_ref().and_then(|h| h.entry().price);
            found.then_some((share, price))
        },
    )?;
    ctx.admission = Some(admission);
    if plan.is_some() {
        ctx.record.cache = Some(sluice_contract::cache::CacheUse::Miss);
    }
    if let Some(t) = ctx.trace.as_mut() {
        t.admitted();
    }
    let body = match redacted {
        Some(b) => bytes::Bytes::from(b),
        None => req_body.clone(),
    };
    if let Some(content_key) = &key.tenant.content_key {
        // What is logged is what was forwarded: redacted values stay redacted.
        ctx.capture = Some(content::Capture::new(content_key.clone(), body.clone()));
    }
    if let Some(hit) = probe.hit.take() {
        let compress = sluice_contract::codec::accept::choose(req.header(&io.headers, b"accept-encoding"));
        return Ok(cached::serve_hit(io, head, hit, info.include_usage, compress, ctx).await);
    }
    ctx.fill = plan.and_then(|p| cached::Fill::new(p, info.stream));

    // 5. route
    let targets = route::targets(&key.tenant, &info.model)?;
    route::same_api(&targets, dialect, &info.model)?;

    // 6. upstream request
    let outgoing = forward::Outgoing {
        head,
        headers: &io.headers,
        req: &req,
        body: &body,
        info: &info,
        api: ctx.record.route,
        prices: &index.prices,
    };
    let answer = forward::forward(w, &outgoing, &targets, ctx).await?;
    let counting = ctx.admission.as_ref().and_then(|a| a.encoding);
    let compress = sluice_contract::codec::accept::choose(req.header(&io.headers, b"accept-encoding"));
    let Some(setup) = relay::setup(
        &answer,
        head,
        counting,
        ctx.record.route,
        info.include_usage,
        compress,
    ) else {
        // Asked for `identity`, the upstream compressed an event stream (or
        // used a coding the gateway does not know): its events cannot be
        // read, so it could not be billed. Refused before any byte went out.
        return Err(Reject::with(
            ErrorKind::UpstreamProtocol,
            "the provider sent a compressed response the gateway cannot meter",
        ));
    };

    let next = relay::relay(w, io, head, answer, setup, ctx).await;
    cached::complete_fill(&w.shared.cell.cache, ctx);
    Ok(next)
}
