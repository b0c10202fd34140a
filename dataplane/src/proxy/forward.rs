//! Phase 6, the upstream request: the body rewrite, dialling or reusing a
//! pooled connection, the upstream request head with the provider key, and
//! fallback to the route's next target.
//!
//! A target is abandoned for the next on a connect error, a reset, a
//! timeout (the route's first-byte limit), or a 408, 429, 5xx or 529
//! answer — always before a byte went to the client, and only while the
//! failing upstream's retry budget allows. Ejected and cooling targets are
//! skipped (see [`sluice_contract::health`]). A pooled connection that turns
//! out to be closed is retried once on a fresh one; that is not a fallback.

pub mod gemini;

use super::inspect::RequestInfo;
use super::Ctx;
use crate::io::client::FullRequest;
use crate::respond::{ErrorKind, Reject};
use crate::upstream::{dial, Conn, DialError};
use crate::worker::Worker;
use bytes::{Buf, Bytes, BytesMut};
use sluice_contract::codec::head::{self, Header, RequestHead, ResponseHead};
use sluice_contract::dialect::Dialect;
use sluice_contract::health::{wait_hint, Pass, TargetHealth};
use sluice_contract::quota::now_ns;
use sluice_contract::quota::price::PriceTable;
use sluice_contract::record::{ApiRoute, Attempt};
use sluice_contract::rewrite::{rewrite, Edits};
use sluice_contract::snapshot::{ProviderKind, RouteTarget, UpstreamEntry};
use sluice_contract::translate::{self, Pair};
use std::borrow::Cow;
use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;
use zeroize::Zeroize;

/// Bodies up to this size go out in the same write as the head.
const COALESCE_BODY: usize = 16 * 1024;
/// Largest upstream response head accepted.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Anthropic requires a version; used when the client sent none.
const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// An upstream's answer whose head has been read.
pub struct Answer {
    /// The connection, positioned after the bytes in `buf`.
    pub conn: Conn,
    /// Which upstream answered.
    pub upstream: Arc<UpstreamEntry>,
    /// The parsed head.
    pub head: ResponseHead,
    /// Header spans into `buf`.
    pub headers: Vec<Header>,
    /// The head, and whatever body bytes arrived with it.
    pub buf: BytesMut,
    /// The gateway asked for usage the client did not: strip that event.
    pub strip_usage: bool,
    /// The provider key's account-wide response headers may reach the
    /// client (see [`sluice_contract::snapshot::index::SealedProviderKey`]).
    pub pass_account_headers: bool,
    /// The translation the response goes through to reach the client.
    pub translation: Option<Pair>,
    /// The fields the request's translation dropped (the header's value).
    pub dropped: Option<String>,
}

impl Answer {
    /// The response's headers as (name, value) pairs.
    pub fn header_pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.headers
            .iter()
            .map(|h| (h.name.of(&self.buf), h.value.of(&self.buf)))
    }
}

/// The request as it goes upstream.
pub struct Outgoing<'a> {
    /// The client's request head.
    pub head: &'a RequestHead,
    /// Its header spans (into `req.raw`).
    pub headers: &'a [Header],
    /// The request as received.
    pub req: &'a FullRequest,
    /// The body to send (redacted when the policy said so).
    pub body: &'a Bytes,
    /// What the gateway read from the body.
    pub info: &'a RequestInfo,
    /// The API called: it names the upstream path.
    pub api: ApiRoute,
    /// The prices the request is settled by.
    pub prices: &'a PriceTable,
}

/// Forwards the request to the first target that answers acceptably.
///
/// Targets come in the route strategy's order; ejected and cooling ones are
/// skipped, and a half-open one is tried only by the request that wins its
/// probe. When no target is usable, the least bad (the one with the least
/// to wait) is tried rather than failing outright. A failed attempt (see
/// [`judge`]) moves on to the next usable target while the failing
/// upstream's retry budget allows; otherwise its answer or error stands.
/// Every attempt's outcome feeds the target's health, and the record.
pub async fn forward(
    w: &Worker,
    out: &Outgoing<'_>,
    targets: &[RouteTarget],
    ctx: &mut Ctx<'_>,
) -> Result<Answer, Reject> {
    let now = now_ns();
    let choice = super::route::Choice {
        now,
        prompt_tokens: ctx.record.prompt_tokens_counted.unwrap_or(0),
        max_output: out.info.max_tokens.unwrap_or(0),
    };
    let order = super::route::order(targets, &choice, || w.random());
    let mut tried = Tried::default();
    let (mut ti, mut probe) = match next_usable(targets, &order, &tried, now) {
        Some(next) => next,
        None => match least_bad(targets, now) {
            Some(ti) => (ti, false),
            None => return Err(ErrorKind::UpstreamUnreachable.into()),
        },
    };
    targets[ti].budget.deposit(now);
    let mut i = 0;
    loop {
        let target = &targets[ti];
        tried.add(ti);
        let pair = translation(out.api, target.upstream.kind);
        let prepared = match prepare(out, target, pair, ctx) {
            Ok(p) => p,
            Err(reject) => {
                // Nothing was sent: this target cannot take the request as
                // its dialect would need it. The next may; else the refusal
                // is the answer.
                ctx.record.tries.push(Attempt {
                    upstream: target.upstream.name.clone(),
                    key_id: target.key.id.clone(),
                    status: None,
                    error: Some(Cow::Borrowed("translation_refused")),
                    us: 0,
                    probe,
                    translation: pair.map(|p| Cow::Borrowed(p.label())),
                });
                if probe {
                    target.health.release_probe();
                }
                match next_usable(targets, &order, &tried, now_ns()) {
                    Some(next) => {
                        (ti, probe) = next;
                        continue;
                    }
                    None => return Err(reject),
                }
            }
        };
        if i > 0 {
            w.metrics().fallback();
        }
        i += 1;
        ctx.record.attempts = ctx.record.attempts.saturating_add(1);
        ctx.record.upstream = Some(target.upstream.name.clone());
        ctx.record.translation = pair.map(|p| Cow::Borrowed(p.label()));
        ctx.record.dropped_fields = prepared.dropped.clone();
        let began = Instant::now();
        let in_flight = InFlight::start(&target.health, probe);
        let traceparent = ctx.trace.as_mut().map(|t| {
            let model = target
                .model
                .clone()
                .unwrap_or_else(|| out.info.model.as_str().into());
            t.attempt(
                crate::trace::otlp::provider(target.upstream.kind),
                target.upstream.host.as_ref().into(),
                target.upstream.name.clone(),
                model,
            )
        });
        let result = attempt(w, out, target, prepared, ctx, traceparent.as_ref()).await;
        in_flight.done();
        if let Some(t) = ctx.trace.as_mut() {
            t.attempt_done(
                result.as_ref().ok().map(|a| a.head.status),
                result.as_ref().err().map(|k| k.label()),
            );
        }
        let us = began.elapsed().as_micros() as u64;
        let at = now_ns();
        let verdict = judge(&result);
        let health = &target.health;
        let eject = &target.policy.eject;
        match verdict.effect {
            Effect::Success => {
                health.success();
                health.tally(at, false, eject);
            }
            Effect::Failure => {
                if health.failure(at, eject, probe) || health.tally(at, true, eject) {
                    tracing::info!(upstream = %target.upstream.name, key = %target.key.id, "target ejected");
                }
            }
            Effect::Cool(wait) => health.cool(at, wait),
            Effect::Neutral => {
                if probe {
                    health.release_probe();
                }
            }
        }
        if verdict.latency {
            health.observe_ttfb(at, us);
        }
        ctx.record.tries.push(Attempt {
            upstream: target.upstream.name.clone(),
            key_id: target.key.id.clone(),
            status: result.as_ref().ok().map(|a| a.head.status),
            error: result.as_ref().err().map(|k| Cow::Borrowed(k.label())),
            us,
            probe,
            translation: pair.map(|p| Cow::Borrowed(p.label())),
        });
        if !verdict.retry {
            return result.map_err(Reject::from);
        }
        let Some((next, next_probe)) = next_usable(targets, &order, &tried, at) else {
            return result.map_err(Reject::from);
        };
        let policy = &target.policy;
        if !target.budget.withdraw(at, policy.retry_ratio, policy.retry_min) {
            if next_probe {
                targets[next].health.release_probe();
            }
            health.counts.budget_refusals.fetch_add(1, Relaxed);
            tracing::debug!(upstream = %target.upstream.name, "retry budget spent");
            return result.map_err(Reject::from);
        }
        health.counts.retries.fetch_add(1, Relaxed);
        tracing::debug!(
            upstream = %target.upstream.name,
            status = result.as_ref().ok().map(|a| a.head.status),
            error = result.as_ref().err().map(|k| k.label()),
            "trying the next target"
        );
        (ti, probe) = (next, next_probe);
    }
}

/// An attempt in flight on a target: counted for least-latency's load term
/// until it ends, also when the request's task is dropped midway (client
/// gone, shutdown), which then gives back a probe slot it held rather than
/// leaving the target half-open with no probe until the slot goes stale.
struct InFlight<'a> {
    health: &'a TargetHealth,
    probe: bool,
}

impl<'a> InFlight<'a> {
    fn start(health: &'a TargetHealth, probe: bool) -> InFlight<'a> {
        health.start();
        InFlight { health, probe }
    }

    /// The attempt reported: its outcome, not the drop, settles the probe.
    fn done(mut self) {
        self.probe = false;
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.health.end();
        if self.probe {
            self.health.release_probe();
        }
    }
}

/// Targets already tried by this request: a bit per index (a route has at
/// most [`sluice_contract::snapshot::index::MAX_ROUTE_TARGETS`] = 64, which
/// the compile step enforces).
#[derive(Default)]
struct Tried(u64);

impl Tried {
    fn add(&mut self, i: usize) {
        if i < 64 {
            self.0 |= 1 << i;
        }
    }

    fn has(&self, i: usize) -> bool {
        i < 64 && self.0 & (1 << i) != 0
    }
}

/// The first target in `order` not yet tried that may take a request now:
/// healthy, or half-open with the probe slot won (then `true`).
fn next_usable(targets: &[RouteTarget], order: &[usize], tried: &Tried, now: u64) -> Option<(usize, bool)> {
    order
        .iter()
        .filter(|&&i| !tried.has(i))
        .find_map(|&i| match targets[i].health.pass(now) {
            Pass::Yes => Some((i, false)),
            Pass::Probe => Some((i, true)),
            Pass::No => None,
        })
}

/// When no target is usable: the one that will be usable soonest.
fn least_bad(targets: &[RouteTarget], now: u64) -> Option<usize> {
    (0..targets.len()).min_by_key(|&i| targets[i].health.wait_ns(now))
}

/// What one attempt's outcome means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// What it does to the target's health.
    pub effect: Effect,
    /// Worth trying the next target (nothing reached the client yet).
    pub retry: bool,
    /// Its duration is a time to first byte (an answer, or a timeout).
    pub latency: bool,
}

/// What an attempt does to its target's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The target works (any answer but the ones below).
    Success,
    /// A transport error, a timeout, 408, 5xx, or 429/529 without a hint.
    Failure,
    /// A 429/529 that said how long to wait, ns: cool the key down.
    Cool(u64),
    /// Nothing: the attempt failed on the gateway's side.
    Neutral,
}

/// Judges an attempt: transport errors, timeouts, 408, 429, 5xx and 529
/// are retried; a 429/529 with `Retry-After` (or kin) cools the target down
/// instead of counting as a failure.
pub fn judge(result: &Result<Answer, ErrorKind>) -> Verdict {
    match result {
        Err(ErrorKind::InvalidJson | ErrorKind::Internal) => Verdict {
            // The gateway's own trouble: says nothing of the target.
            effect: Effect::Neutral,
            retry: false,
            latency: false,
        },
        Err(kind) => Verdict {
            effect: Effect::Failure,
            retry: true,
            latency: *kind == ErrorKind::UpstreamTimeout,
        },
        Ok(answer) => judge_status(answer.head.status, answer.header_pairs()),
    }
}

/// [`judge`] for an answer's status and headers.
pub fn judge_status<'a>(status: u16, headers: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Verdict {
    let retry = status == 408 || status == 429 || status >= 500;
    let effect = if status == 429 || status == 529 {
        match wait_of(headers) {
            Some(wait) => Effect::Cool(wait),
            None => Effect::Failure,
        }
    } else if retry {
        Effect::Failure
    } else {
        Effect::Success
    };
    Verdict {
        effect,
        retry,
        latency: true,
    }
}

/// How long the provider asked to wait: `retry-after-ms` over
/// `retry-after`, either over the rate-limit reset headers (the longest).
/// Only a 429/529 asks, so the wall clock is read only then.
fn wait_of<'a>(headers: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Option<u64> {
    let now_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let (mut ms, mut s, mut reset) = (None, None, None::<u64>);
    for (name, value) in headers {
        let Some(wait) = wait_hint(name, value, now_unix_ms) else {
            continue;
        };
        if name.eq_ignore_ascii_case(b"retry-after-ms") {
            ms = Some(wait);
        } else if name.eq_ignore_ascii_case(b"retry-after") {
            s = Some(wait);
        } else {
            reset = Some(reset.map_or(wait, |r| r.max(wait)));
        }
    }
    ms.or(s).or(reset)
}

/// The translation a request to an upstream of `kind` needs: chat
/// completions and messages translate into each other; other APIs go as
/// they came.
pub fn translation(api: ApiRoute, kind: ProviderKind) -> Option<Pair> {
    let client = match api {
        ApiRoute::ChatCompletions => Dialect::OpenAi,
        ApiRoute::Messages => Dialect::Anthropic,
        _ => return None,
    };
    Pair::between(client, kind.dialect())
}

/// The request as one target is sent it: its body (rewritten, or
/// translated into the target's dialect) and what the response needs.
pub struct Prepared {
    body: Result<Bytes, ErrorKind>,
    pair: Option<Pair>,
    strip_usage: bool,
    /// The fields the translation dropped, as the response header names them.
    pub dropped: Option<String>,
}

/// Prepares the body for `target`: the model alias, the usage request and
/// the admission's output limit written in, or the whole body translated
/// for an upstream of another dialect. `Err`: the translation refused a
/// field (400, the client's fault).
fn prepare(
    out: &Outgoing<'_>,
    target: &RouteTarget,
    pair: Option<Pair>,
    ctx: &mut Ctx<'_>,
) -> Result<Prepared, Reject> {
    let info = out.info;
    let up = &target.upstream;
    let mut limit = None;
    if let Some(adm) = ctx.admission.as_mut() {
        // Cost is the served model's, never the alias's.
        adm.served(out.prices.lookup(target.model.as_deref().unwrap_or(&info.model)));
        limit = adm.limit;
    }
    if let Some(pair) = pair {
        let opts = translate::Options {
            model: target.model.as_deref().unwrap_or(&info.model),
            limit: limit.map(|(_, tokens)| tokens),
            on_unsupported: target.policy.on_unsupported,
        };
        let t = translate::request(pair, out.body, &opts)
            .map_err(|r| Reject::with(ErrorKind::InvalidField, r.message()))?;
        let dropped = t.dropped_header();
        return Ok(Prepared {
            body: Ok(Bytes::from(t.body)),
            pair: Some(pair),
            strip_usage: false,
            dropped,
        });
    }
    let same_family = out
        .api
        .dialect()
        .is_none_or(|d| d.is_openai() == (up.kind.dialect() == Dialect::OpenAi));
    if !same_family {
        // Only chat completions and messages translate into each other.
        return Err(Reject::with(
            ErrorKind::BadRequest,
            format!(
                "{}: this API is not translated, and the route sends it to a provider of another kind",
                out.api.label()
            ),
        ));
    }
    // Every OpenAI-dialect stream is metered from the provider's own usage.
    let strip_usage = info.stream
        && !info.include_usage
        && out.api == ApiRoute::ChatCompletions
        && up.kind.dialect() == Dialect::OpenAi;
    let model = target.model.as_deref().filter(|m| *m != info.model);
    let edits = Edits {
        model,
        ask_usage: strip_usage,
        limit,
    };
    let gemini = out.api.gemini_method().is_some();
    let rewritten = match limit {
        // Gemini's model is in the path; its one body edit is the limit.
        Some((_, n)) if gemini => sluice_contract::rewrite::set_gemini_limit(out.body, n).map(Some),
        _ if gemini => Ok(None),
        _ => rewrite(out.body, info.keys, &edits),
    };
    let body = match rewritten {
        Ok(Some(body)) => Ok(Bytes::from(body)),
        Ok(None) => Ok(out.body.clone()),
        Err(_) => Err(ErrorKind::InvalidJson),
    };
    Ok(Prepared {
        body,
        pair: None,
        strip_usage,
        dropped: None,
    })
}

async fn attempt(
    w: &Worker,
    out_req: &Outgoing<'_>,
    target: &RouteTarget,
    prepared: Prepared,
    ctx: &mut Ctx<'_>,
    traceparent: Option<&[u8; 55]>,
) -> Result<Answer, ErrorKind> {
    let Outgoing {
        head: client_head,
        headers: client_headers,
        req,
        api,
        ..
    } = *out_req;
    let up = &target.upstream;
    let limits = &w.shared.limits;
    let Prepared {
        body,
        pair,
        strip_usage,
        dropped,
    } = prepared;
    let body = body?;
    // A translated request goes to the API of the upstream's dialect.
    let api = match pair.map(Pair::upstream) {
        Some(Dialect::Anthropic) => ApiRoute::Messages,
        Some(_) => ApiRoute::ChatCompletions,
        None => api,
    };
    let mut dropped = dropped;
    let mut use_pool = true;
    loop {
        let pooled = if use_pool {
            take_pooled(w, &up.pool_key)
        } else {
            None
        };
        let reused = pooled.is_some();
        let mut conn = match pooled {
            Some(c) => c,
            None => dial(up, &w.tls, limits.upstream_connect_timeout())
                .await
                .map_err(|e| match e {
                    DialError::Timeout => ErrorKind::UpstreamTimeout,
                    DialError::Unreachable | DialError::Tls => ErrorKind::UpstreamUnreachable,
                })?,
        };
        w.metrics().upstream_conn(reused);

        let mut out = w.spares.borrow_mut().bytes();
        out.reserve(1024 + body.len().min(COALESCE_BODY));
        write_head(
            &mut out,
            up,
            target,
            api,
            client_head,
            client_headers,
            req,
            body.len(),
            target.model.as_deref().unwrap_or(&out_req.info.model),
            pair.is_some(),
            traceparent,
        )?;
        let coalesce = body.len() <= COALESCE_BODY;
        if coalesce {
            out.extend_from_slice(&body);
        }
        let (res, mut out) = conn.write_all(out).await;
        // The head held the opened provider key: wipe it now.
        out.zeroize();
        w.spares.borrow_mut().put_bytes(out);
        let mut sent = res.is_ok();
        if sent && !coalesce {
            sent = conn.write_all(body.clone()).await.0.is_ok();
        }
        if !sent {
            if reused {
                use_pool = false;
                continue;
            }
            return Err(ErrorKind::UpstreamUnreachable);
        }

        let first_byte = target.policy.first_byte_timeout;
        let deadline = Instant::now() + first_byte.unwrap_or(limits.upstream_head_timeout());
        let mut buf = w.spares.borrow_mut().read_buf(16 * 1024);
        let mut headers = Vec::with_capacity(32);
        loop {
            match head::parse_response(&buf, false, MAX_RESPONSE_HEAD, &mut headers) {
                Ok(Some(h)) if h.status == 101 => {
                    // The gateway never asks to upgrade (Upgrade is hop-by-hop
                    // and not forwarded): what follows a 101 is not HTTP/1.1
                    // (RFC 9110 §15.2.2), so it is no answer to relay.
                    return Err(ErrorKind::UpstreamProtocol);
                }
                Ok(Some(h)) if (100..200).contains(&h.status) => {
                    // Interim responses (100 Continue, 103 Early Hints) are not relayed.
                    buf.advance(h.len);
                    continue;
                }
                Ok(Some(h)) => {
                    return Ok(Answer {
                        conn,
                        upstream: up.clone(),
                        head: h,
                        headers,
                        buf,
                        strip_usage,
                        pass_account_headers: target.key.pass_account_headers,
                        translation: pair,
                        dropped: dropped.take(),
                    });
                }
                Ok(None) => {}
                Err(_) => return Err(ErrorKind::UpstreamProtocol),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match monoio::time::timeout(left, conn.read_into(buf)).await {
                Ok((Ok(n), b)) if n > 0 => {
                    if ctx.record.ttfb_us.is_none() {
                        let ttfb = ctx.started.elapsed().as_micros() as u64;
                        ctx.record.ttfb_us = Some(ttfb);
                        w.metrics().ttfb(ttfb);
                    }
                    buf = b;
                }
                Ok((_, b)) => {
                    if reused && b.is_empty() {
                        // The pooled connection had been closed by the upstream.
                        use_pool = false;
                        break;
                    }
                    return Err(ErrorKind::UpstreamUnreachable);
                }
                Err(_) => return Err(ErrorKind::UpstreamTimeout),
            }
        }
    }
}

/// An idle pooled connection to `key` that can carry a request. One the
/// upstream closed meanwhile, or on which it sent anything while idle, is
/// dropped: such bytes answer no request, and taking them for the answer to
/// the next one would hand a client someone else's response (RFC 9112 §6.3:
/// extra data after a response must never be forwarded as a response).
/// Checking before sending means a stale connection costs no retry of a
/// request that may have been acted on.
fn take_pooled(w: &Worker, key: &str) -> Option<Conn> {
    let mut pool = w.pool.borrow_mut();
    while let Some(conn) = pool.take(key) {
        if conn.is_idle_clean() {
            return Some(conn);
        }
        tracing::debug!(
            upstream = key,
            "dropping a pooled connection that closed or sent data while idle"
        );
    }
    None
}

/// Writes the upstream request head: the client's headers on the allowlist
/// (see [`forwarded`]), with the gateway's own authority, framing, the
/// tenant's provider key and, for OpenAI, the key's organization and project.
#[allow(clippy::too_many_arguments)]
fn write_head(
    out: &mut Vec<u8>,
    up: &UpstreamEntry,
    target: &RouteTarget,
    api: ApiRoute,
    client_head: &RequestHead,
    client_headers: &[Header],
    req: &FullRequest,
    body_len: usize,
    model: &str,
    translated: bool,
    traceparent: Option<&[u8; 55]>,
) -> Result<(), ErrorKind> {
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(up.path_prefix.as_bytes());
    if api.gemini_method().is_some() {
        gemini::write_path(out, api, model)?;
    } else {
        // The API's own path, whatever form the client used (a base URL
        // without `/v1`, a trailing slash), and the client's query; a
        // translated request goes to another API, so the client's query
        // (the Anthropic SDK's `?beta=true`, say) stays behind.
        out.extend_from_slice(api.upstream_path().ok_or(ErrorKind::Internal)?.as_bytes());
        let client_target = client_head.target.of(&req.raw);
        if let Some(q) = memchr::memchr(b'?', client_target).filter(|_| !translated) {
            out.extend_from_slice(&client_target[q..]);
        }
    }
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(up.authority.as_bytes());
    out.extend_from_slice(b"\r\ncontent-length: ");
    let _ = write!(out, "{body_len}");
    out.extend_from_slice(b"\r\naccept-encoding: identity\r\nconnection: keep-alive\r\n");
    let mut saw_version = false;
    // The client's header spans index into `req.raw`, which starts with its head.
    let options = head::ConnectionOptions::of(&req.raw, client_headers);
    // A sampled request's attempt is the upstream's parent: its own
    // `traceparent` replaces the client's.
    let forwarded = |h: &&Header| {
        let name = h.name.of(&req.raw);
        let dialects = translated && is_dialect_header(name);
        let replaced = traceparent.is_some() && name.eq_ignore_ascii_case(b"traceparent");
        forwarded(name) && !options.contains(name) && !dialects && !replaced
    };
    for h in client_headers.iter().filter(forwarded) {
        let (name, value) = (h.name.of(&req.raw), h.value.of(&req.raw));
        saw_version |= name.eq_ignore_ascii_case(b"anthropic-version");
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(tp) = traceparent {
        out.extend_from_slice(b"traceparent: ");
        out.extend_from_slice(tp);
        out.extend_from_slice(b"\r\n");
    }
    let key = target.key.open().map_err(|_| ErrorKind::Internal)?;
    if key.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(ErrorKind::Internal);
    }
    match up.kind {
        ProviderKind::Openai | ProviderKind::Openrouter => {
            out.extend_from_slice(b"authorization: Bearer ");
            out.extend_from_slice(&key);
            if up.kind == ProviderKind::Openai {
                // Checked printable at compile time (snapshot index).
                if let Some(org) = &target.key.organization {
                    out.extend_from_slice(b"\r\nopenai-organization: ");
                    out.extend_from_slice(org.as_bytes());
                }
                if let Some(project) = &target.key.project {
                    out.extend_from_slice(b"\r\nopenai-project: ");
                    out.extend_from_slice(project.as_bytes());
                }
            }
        }
        ProviderKind::Gemini => {
            out.extend_from_slice(b"x-goog-api-key: ");
            out.extend_from_slice(&key);
        }
        ProviderKind::Anthropic => {
            out.extend_from_slice(b"x-api-key: ");
            out.extend_from_slice(&key);
            if !saw_version {
                out.extend_from_slice(b"\r\nanthropic-version: ");
                out.extend_from_slice(DEFAULT_ANTHROPIC_VERSION.as_bytes());
            }
        }
    }
    out.extend_from_slice(b"\r\n\r\n");
    Ok(())
}

/// Client headers that go upstream, by exact name (case-insensitive).
/// Everything else stays at the gateway: cookies, the client's own
/// credentials and `OpenAI-Organization`/`OpenAI-Project` (those come from
/// the provider key), proxies' and CDNs' headers, anything unknown.
const FORWARDED: &[&[u8]] = &[
    b"content-type",
    b"accept",
    b"user-agent",
    b"anthropic-version",
    b"anthropic-beta",
    b"openai-beta",
    b"x-goog-api-client",
    b"idempotency-key",
    b"traceparent",
    b"tracestate",
];

/// Client headers that go upstream, by prefix: the provider SDKs' telemetry
/// (`x-stainless-*`) and the mock provider's test knobs (`x-mock-*`, which
/// real providers ignore).
const FORWARDED_PREFIXES: &[&[u8]] = &[b"x-stainless-", b"x-mock-"];

/// The client's headers about its own API's version and betas: they mean
/// nothing (or something else) to an upstream of another dialect.
fn is_dialect_header(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"anthropic-version")
        || name.eq_ignore_ascii_case(b"anthropic-beta")
        || name.eq_ignore_ascii_case(b"openai-beta")
}

/// Whether a client header goes upstream: only those on the allowlist
/// ([`FORWARDED`], [`FORWARDED_PREFIXES`]); hop-by-hop fields, the client's
/// credentials and the headers the gateway sets itself never are.
fn forwarded(name: &[u8]) -> bool {
    FORWARDED.iter().any(|f| name.eq_ignore_ascii_case(f))
        || FORWARDED_PREFIXES
            .iter()
            .any(|p| name.len() > p.len() && name[..p.len()].eq_ignore_ascii_case(p))
}

#[cfg(test)]
mod tests;
