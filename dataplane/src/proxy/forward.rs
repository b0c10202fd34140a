//! Phase 6, the upstream request: the body rewrite, dialling or reusing a
//! pooled connection, the upstream request head with the provider key, and
//! fallback to the route's next target.
//!
//! A target is abandoned for the next on a connect error, a timeout, or a 429
//! or 5xx answer — always before a byte went to the client. A pooled
//! connection that turns out to be closed is retried once on a fresh one; that
//! is not a fallback.

use super::inspect::RequestInfo;
use super::Ctx;
use crate::io::client::FullRequest;
use crate::respond::{ErrorKind, Reject};
use crate::upstream::{dial, Conn, DialError};
use crate::worker::Worker;
use bytes::{Buf, Bytes, BytesMut};
use sluice_contract::codec::head::{self, Header, RequestHead, ResponseHead};
use sluice_contract::dialect::Dialect;
use sluice_contract::quota::price::PriceTable;
use sluice_contract::record::ApiRoute;
use sluice_contract::rewrite::{rewrite, Edits};
use sluice_contract::snapshot::{ProviderKind, RouteTarget, UpstreamEntry};
use std::io::Write;
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
pub async fn forward(
    w: &Worker,
    out: &Outgoing<'_>,
    targets: &[RouteTarget],
    ctx: &mut Ctx<'_>,
) -> Result<Answer, Reject> {
    let order = super::route::order(targets, || w.random());
    let mut last = ErrorKind::UpstreamUnreachable;
    for (i, &ti) in order.iter().enumerate() {
        let target = &targets[ti];
        if i > 0 {
            w.metrics().fallback();
        }
        ctx.record.attempts = ctx.record.attempts.saturating_add(1);
        ctx.record.upstream = Some(target.upstream.name.clone());
        match attempt(w, out, target, ctx).await {
            Ok(answer) => {
                let status = answer.head.status;
                let retryable = status == 429 || status >= 500;
                if retryable && i + 1 < order.len() {
                    tracing::debug!(upstream = %target.upstream.name, status, "falling back");
                    last = ErrorKind::UpstreamUnreachable;
                    continue;
                }
                return Ok(answer);
            }
            Err(kind) => {
                tracing::debug!(upstream = %target.upstream.name, error = kind.label(), "attempt failed");
                last = kind;
            }
        }
    }
    Err(last.into())
}

async fn attempt(
    w: &Worker,
    out_req: &Outgoing<'_>,
    target: &RouteTarget,
    ctx: &mut Ctx<'_>,
) -> Result<Answer, ErrorKind> {
    let Outgoing {
        head: client_head,
        headers: client_headers,
        req,
        body: original,
        info,
        api,
        prices,
    } = *out_req;
    let up = &target.upstream;
    let limits = &w.shared.limits;
    // Every OpenAI-dialect stream is metered from the provider's own usage.
    let strip_usage = info.stream
        && !info.include_usage
        && api == ApiRoute::ChatCompletions
        && up.kind.dialect() == Dialect::OpenAi;
    let model = target.model.as_deref().filter(|m| *m != info.model);
    let mut limit = None;
    if let Some(adm) = ctx.admission.as_mut() {
        // Cost is the served model's, never the alias's.
        adm.served(prices.lookup(target.model.as_deref().unwrap_or(&info.model)));
        limit = adm.limit;
    }
    let edits = Edits {
        model,
        ask_usage: strip_usage,
        limit,
    };
    let body = match rewrite(original, info.keys, &edits) {
        Ok(Some(body)) => Bytes::from(body),
        Ok(None) => original.clone(),
        Err(_) => return Err(ErrorKind::InvalidJson),
    };
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

        let deadline = Instant::now() + limits.upstream_head_timeout();
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

/// Writes the upstream request head: the client's end-to-end headers, with
/// the gateway's own authority, framing and the tenant's provider key.
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
) -> Result<(), ErrorKind> {
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(up.path_prefix.as_bytes());
    // The API's own path, whatever form the client used (a base URL
    // without `/v1`, a trailing slash), and the client's query.
    out.extend_from_slice(api.upstream_path().ok_or(ErrorKind::Internal)?.as_bytes());
    let client_target = client_head.target.of(&req.raw);
    if let Some(q) = memchr::memchr(b'?', client_target) {
        out.extend_from_slice(&client_target[q..]);
    }
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(up.authority.as_bytes());
    out.extend_from_slice(b"\r\ncontent-length: ");
    let _ = write!(out, "{body_len}");
    out.extend_from_slice(b"\r\naccept-encoding: identity\r\nconnection: keep-alive\r\n");
    let mut saw_version = false;
    // The client's header spans index into `req.raw`, which starts with its head.
    let options = head::ConnectionOptions::of(&req.raw, client_headers);
    let forwarded = |h: &&Header| {
        let name = h.name.of(&req.raw);
        forwarded(name) && !options.contains(name)
    };
    for h in client_headers.iter().filter(forwarded) {
        let (name, value) = (h.name.of(&req.raw), h.value.of(&req.raw));
        saw_version |= name.eq_ignore_ascii_case(b"anthropic-version");
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
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

/// Whether a client header is forwarded: all but hop-by-hop ones, the
/// client's own credentials, and those the gateway sets itself or undoes
/// (the body's `Content-Encoding`).
fn forwarded(name: &[u8]) -> bool {
    !(head::is_hop_by_hop(name)
        || name.eq_ignore_ascii_case(b"host")
        || name.eq_ignore_ascii_case(b"authorization")
        || name.eq_ignore_ascii_case(b"x-api-key")
        || name.eq_ignore_ascii_case(b"accept-encoding")
        // The body goes upstream decoded (see `inspect::decoded`).
        || name.eq_ignore_ascii_case(b"content-encoding")
        || name.eq_ignore_ascii_case(b"expect"))
}
