//! The response cache on a request's way: whether it is consulted and
//! under which key ([`plan`]), the look-up inside admission ([`Probe`]),
//! serving a hit ([`serve_hit`]), and filling an entry from a response
//! that passed ([`Fill`], completed by [`complete_fill`]).
//!
//! Only OpenAI chat completions served by an OpenAI-dialect upstream are
//! cached, and only for a tenant whose rules cache the model. The key is
//! the tenant id, the rule's generation, the API, the route's targets
//! (upstream and model sent, in order) and the canonical body as it is
//! forwarded (after redaction), less the fields that do not change the
//! answer ([`sluice_contract::cache::EXCLUDED_FIELDS`]).
//!
//! `cache-control: no-cache` from the client skips the look-up (the answer
//! still fills the entry), `no-store` skips the fill; either way the
//! response says `x-sluice-cache: miss`. Only a complete 200 response is
//! stored: a stream that ended with `[DONE]` and nothing wrong, or a whole
//! JSON body.

use super::Ctx;
use crate::cache::{Entry, ResponseCache, Stored};
use crate::io::client::{ClientIo, Next};
use bytes::Bytes;
use sluice_contract::cache::chat::{self, Events, EventsBuilder};
use sluice_contract::cache::{CacheKey, CachePolicy, CacheUse, KeyBuilder, Replay};
use sluice_contract::codec::accept;
use sluice_contract::codec::head::RequestHead;
use sluice_contract::record::ApiRoute;
use sluice_contract::snapshot::{KeyEntry, RouteEntry};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The cache's part in one request, decided before admission.
#[derive(Debug)]
pub struct Plan {
    key: CacheKey,
    policy: CachePolicy,
    tenant: Arc<str>,
    lookup: bool,
    store: bool,
}

/// What `cache-control` asks of the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Directives {
    /// `no-cache`: do not answer from the cache.
    pub no_cache: bool,
    /// `no-store`: do not keep this answer.
    pub no_store: bool,
}

/// Reads the request's `cache-control` value (RFC 9111 §5.2.1: directives
/// are case-insensitive tokens, comma-separated, some with `=value`).
pub fn directives(value: Option<&[u8]>) -> Directives {
    let mut d = Directives::default();
    for part in value.unwrap_or_default().split(|&b| b == b',') {
        let name = part.split(|&b| b == b'=').next().unwrap_or_default().trim_ascii();
        d.no_cache |= name.eq_ignore_ascii_case(b"no-cache");
        d.no_store |= name.eq_ignore_ascii_case(b"no-store");
    }
    d
}

/// Whether and how the cache takes part in a request to `model` through
/// `key` with `body` (as it will be forwarded); `None` when it does not.
pub fn plan(key: &KeyEntry, api: ApiRoute, model: &str, body: &[u8], d: Directives) -> Option<Plan> {
    if api != ApiRoute::ChatCompletions {
        return None;
    }
    let policy = *key.tenant.cache.as_ref()?.for_model(model)?;
    let Some(RouteEntry::Targets(targets)) = key.tenant.routes.get(model) else {
        return None;
    };
    let mut b = KeyBuilder::new(&key.tenant.id, policy.generation)?;
    b.part(api.label().as_bytes());
    for t in targets.iter() {
        b.part(t.upstream.name.as_bytes());
        b.part(t.model.as_deref().unwrap_or(model).as_bytes());
    }
    if !b.body(body) {
        return None;
    }
    Some(Plan {
        key: b.finish(),
        policy,
        tenant: key.tenant.id.clone(),
        lookup: !d.no_cache,
        store: !d.no_store,
    })
}

/// A hit, in the form the client asked for.
#[derive(Debug)]
pub struct Hit {
    entry: Arc<Entry>,
    form: Form,
    replay: Replay,
}

#[derive(Debug)]
enum Form {
    /// The stored JSON, or one converted from stored events.
    Json(Bytes),
    /// Stored events, or ones converted from a stored JSON body.
    Events(Arc<Events>),
}

impl Hit {
    /// The entry served.
    pub fn entry(&self) -> &Entry {
        &self.entry
    }
}

/// The look-up, run by admission after the policy and the rate limits and
/// before any credit is reserved (a hit reserves none).
pub struct Probe<'a> {
    /// The data plane's cache.
    pub cache: &'a ResponseCache,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// What was found.
    pub hit: Option<Hit>,
}

impl Probe<'_> {
    /// Looks `plan` up; `true` for a hit that can be served in the form
    /// asked for.
    pub fn look(&mut self, plan: &Plan) -> bool {
        if !plan.lookup {
            return false;
        }
        let Some(entry) = self.cache.get(&plan.key) else {
            return false;
        };
        let form = if self.stream {
            entry.body.events.clone().map(Form::Events)
        } else {
            entry.body.json.clone().map(Form::Json)
        };
        let Some(form) = form else {
            // Stored in a form that does not convert (tool calls): a miss.
            // (`get` counted it a hit; the record says miss.)
            return false;
        };
        self.hit = Some(Hit {
            entry,
            form,
            replay: plan.policy.replay,
        });
        true
    }
}

/// Writes `hit` to the client and notes it in the record.
pub async fn serve_hit(
    io: &mut ClientIo,
    head: &RequestHead,
    hit: Hit,
    include_usage: bool,
    compress: Option<sluice_contract::codec::encoding::Coding>,
    ctx: &mut Ctx<'_>,
) -> Next {
    let keep = head.keep_alive && io.reusable();
    ctx.record.status = 200;
    ctx.record.cache = Some(CacheUse::Hit);
    ctx.record.usage = hit.entry.usage;
    let conn: &[u8] = if keep {
        b"connection: keep-alive\r\n\r\n"
    } else {
        b"connection: close\r\n\r\n"
    };
    let out = &mut io.out;
    out.extend_from_slice(b"HTTP/1.1 200 OK\r\nx-sluice-cache: hit\r\n");
    let ok = match hit.form {
        Form::Json(body) => {
            out.extend_from_slice(b"content-type: application/json\r\n");
            let body = match compress.filter(|_| body.len() >= accept::MIN_COMPRESS) {
                Some(coding) => {
                    let packed = accept::compress(&body, coding);
                    ctx.record.body_plain_bytes = Some(body.len() as u64);
                    ctx.record.body_sent_bytes = Some(packed.len() as u64);
                    out.extend_from_slice(b"content-encoding: ");
                    out.extend_from_slice(accept::token(coding).as_bytes());
                    out.extend_from_slice(b"\r\nvary: accept-encoding\r\n");
                    Bytes::from(packed)
                }
                None => body,
            };
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(body.len().to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(conn);
            out.extend_from_slice(&body);
            ctx.record.ttfb_us = Some(ctx.started.elapsed().as_micros() as u64);
            ctx.record.bytes_out += out.len() as u64;
            io.write_out().await
        }
        Form::Events(events) => {
            // HTTP/1.0 has no chunks: the body ends when the connection does.
            let chunked = head.http11;
            out.extend_from_slice(b"content-type: text/event-stream\r\ncache-control: no-cache\r\n");
            if chunked {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                out.extend_from_slice(conn);
            } else {
                out.extend_from_slice(b"connection: close\r\n\r\n");
            }
            replay(io, &events, hit.replay, include_usage, chunked, ctx).await
        }
    };
    if ok && keep && (head.http11 || !ctx.record.stream) {
        Next::KeepAlive
    } else {
        Next::Close
    }
}

/// Writes the events (after the head already in `io.out`), at once or
/// paced as first sent.
async fn replay(
    io: &mut ClientIo,
    events: &Events,
    replay: Replay,
    include_usage: bool,
    chunked: bool,
    ctx: &mut Ctx<'_>,
) -> bool {
    let start = Instant::now();
    let mut body = Vec::new();
    let mut sent = 0u32;
    let mut first = true;
    let mut iter = events
        .iter()
        .filter(|(_, e)| include_usage || !e.usage_only)
        .peekable();
    while let Some((data, ev)) = iter.next() {
        Events::write_event(data, &mut body);
        sent += 1;
        let next_at = iter.peek().map(|(_, e)| e.at_ms);
        // Instant: everything in one write. Paced: each write when the
        // next event came later than this one.
        let flush = match (replay, next_at) {
            (_, None) => true,
            (Replay::Paced, Some(at)) => at > ev.at_ms,
            (Replay::Instant, Some(_)) => false,
        };
        if !flush {
            continue;
        }
        if replay == Replay::Paced {
            let due = start + Duration::from_millis(u64::from(ev.at_ms));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                monoio::time::sleep(wait).await;
            }
        }
        frame(&mut io.out, &body, chunked);
        body.clear();
        if next_at.is_none() && chunked {
            io.out.extend_from_slice(b"0\r\n\r\n");
        }
        if first {
            ctx.record.ttfb_us = Some(ctx.started.elapsed().as_micros() as u64);
            first = false;
        }
        ctx.record.bytes_out += io.out.len() as u64;
        if !io.write_out().await {
            ctx.record.outcome = sluice_contract::record::Outcome::Cancelled;
            ctx.record.events = sent;
            return false;
        }
    }
    ctx.record.events = sent;
    true
}

fn frame(out: &mut Vec<u8>, payload: &[u8], chunked: bool) {
    if chunked {
        out.extend_from_slice(format!("{:x}\r\n", payload.len()).as_bytes());
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(payload);
    }
}

/// A response being kept as it passes, for the entry of its plan.
#[derive(Debug)]
pub struct Fill {
    plan: Plan,
    /// A stream's events, collected by the response filter.
    pub events: Option<EventsBuilder>,
    /// A non-streamed body, decoded, once the relay ended.
    pub json: Option<Vec<u8>>,
}

impl Fill {
    /// A fill for `plan`, when it may store; `None` otherwise.
    pub fn new(plan: Plan, stream: bool) -> Option<Fill> {
        plan.store.then(|| Fill {
            plan,
            events: stream.then(|| EventsBuilder::new(crate::cache::MAX_ENTRY_BYTES)),
            json: None,
        })
    }
}

/// Stores what `ctx`'s fill collected, if the response was complete and
/// successful.
pub fn complete_fill(cache: &ResponseCache, ctx: &mut Ctx<'_>) {
    let Some(fill) = ctx.fill.take() else {
        return;
    };
    let r = &ctx.record;
    let whole = r.status == 200
        && r.outcome == sluice_contract::record::Outcome::Ok
        && r.error.is_none()
        && r.usage.is_some();
    // The other form is made here, once, off the client's way (its answer
    // is out): a hit in either form then only clones an `Arc`.
    let body = match (whole, fill.events, fill.json) {
        (false, _, _) => None,
        (true, Some(b), _) => b.finish().map(|e| Stored {
            json: chat::events_to_json(&e).map(Bytes::from),
            events: Some(Arc::new(e)),
        }),
        (true, None, Some(j)) => serde_json::from_slice::<serde::de::IgnoredAny>(&j)
            .ok()
            .map(|_| Stored {
                events: chat::json_to_events(&j).map(Arc::new),
                json: Some(Bytes::from(j)),
            }),
        (true, None, None) => None,
    };
    let Some(body) = body else {
        cache.skipped();
        return;
    };
    cache.insert(
        fill.plan.key,
        Entry {
            tenant: fill.plan.tenant,
            ttl: fill.plan.policy.ttl,
            body,
            usage: r.usage,
            price: ctx.admission.as_ref().and_then(|a| a.price()),
            stored_at: Instant::now(),
        },
    );
}

impl Plan {
    /// The rule it runs under.
    pub fn policy(&self) -> CachePolicy {
        self.policy
    }
}

/// Hands a streamed fill's event collector to the response filter, when
/// the response can fill the entry: an OpenAI-dialect event stream.
pub fn give_to_filter(
    ctx: &mut Ctx<'_>,
    filter: &mut super::filter::ResponseFilter,
    upstream: sluice_contract::dialect::Dialect,
) {
    let Some(fill) = ctx.fill.as_mut() else {
        return;
    };
    if upstream != sluice_contract::dialect::Dialect::OpenAi {
        ctx.fill = None;
        return;
    }
    if filter.framer.is_some() {
        if let Some(b) = fill.events.take() {
            // Times count from the first body byte: a paced hit starts at once.
            filter.fill = Some((b, Instant::now()));
        }
    }
}

/// Takes back from the filter what it kept for a fill.
pub fn take_from_filter(ctx: &mut Ctx<'_>, filter: &mut super::filter::ResponseFilter) {
    let Some(fill) = ctx.fill.as_mut() else {
        return;
    };
    match filter.fill.take() {
        Some((b, _)) => fill.events = Some(b),
        None if fill.events.is_none() => fill.json = filter.take_json(),
        // A stream was asked for and something else came.
        None => fill.events = None,
    }
}

#[cfg(test)]
mod tests {
    use super::directives;

    #[test]
    fn cache_control_directives_are_read_as_tokens() {
        assert!(directives(Some(b"No-Cache")).no_cache);
        assert!(directives(Some(b"max-age=0, no-store")).no_store);
        assert!(!directives(Some(b"no-cache")).no_store);
        assert_eq!(directives(Some(b"no-transform")), Default::default());
        assert_eq!(directives(None), Default::default());
    }
}
