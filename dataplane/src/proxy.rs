//! The request's phases, over one context: classify → authenticate → read
//! body → inspect → route → forward → relay → record.
//!
//! Phases return `Result<_, Reject>`; [`handle`] is the one place a `Reject`
//! becomes a response (see [`crate::respond`]). Every request that reaches
//! here produces exactly one record, also when its task is dropped midway
//! (the [`Ctx`] pushes it on drop).

pub mod auth;
pub mod content;
pub mod forward;
pub mod inspect;
pub mod meter;
pub mod models;
pub mod relay;
pub mod spares;
pub mod strip;

use crate::codec::head::{Framing, Method, RequestHead};
use crate::policy::Api;
use crate::record::{ApiRoute, Outcome, Record};
use crate::respond::{write_error, ErrorKind, Flavor};
use crate::server::conn::{BodyError, ClientIo, Next};
use crate::server::worker::Worker;
use crate::snapshot::index::RouteEntry;
use bytes::Buf;
use std::time::Instant;

/// A refusal by the gateway, turned into a response by [`handle`].
#[derive(Debug)]
pub struct Reject {
    /// What went wrong.
    pub kind: ErrorKind,
    /// A message replacing the generic one (never request content).
    pub detail: Option<String>,
    /// Extra response headers (rate-limit hints).
    pub headers: Vec<(&'static str, String)>,
}

impl From<ErrorKind> for Reject {
    fn from(kind: ErrorKind) -> Self {
        Reject {
            kind,
            detail: None,
            headers: Vec::new(),
        }
    }
}

impl Reject {
    /// A refusal with a specific message.
    pub fn with(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Reject {
            kind,
            detail: Some(detail.into()),
            headers: Vec::new(),
        }
    }
}

/// Per-request context: the record being built and what the phases learned.
pub struct Ctx<'w> {
    worker: &'w Worker,
    /// The record; pushed exactly once.
    pub record: Record,
    /// When the request head was complete.
    pub started: Instant,
    /// The caller's API dialect.
    pub flavor: Flavor,
    /// Whether the request body has been read whole (keep-alive is possible).
    pub body_read: bool,
    /// Whether the request's bytes have been taken out of the read buffer.
    pub consumed: bool,
    /// What admission reserved, settled when the record is finished.
    pub admission: Option<meter::Admission>,
    /// Opt-in content capture, sealed into the record when it is finished.
    pub capture: Option<content::Capture>,
    done: bool,
}

impl Drop for Ctx<'_> {
    fn drop(&mut self) {
        if !self.done {
            // The task was dropped mid-request (shutdown after the grace period).
            self.record.outcome = Outcome::Cancelled;
            self.finish_record();
        }
    }
}

impl Ctx<'_> {
    fn finish_record(&mut self) {
        self.done = true;
        if let Some(adm) = self.admission.take() {
            meter::settle(adm, &mut self.record);
        }
        if let Some(capture) = self.capture.take() {
            capture.seal_into(&mut self.record);
        }
        self.record.total_us = self.started.elapsed().as_micros() as u64;
        let m = self.worker.metrics();
        m.request(self.record.route, self.record.status);
        m.bytes(self.record.bytes_in, self.record.bytes_out);
        self.worker.record(std::mem::replace(
            &mut self.record,
            Record::new(0, ApiRoute::Other),
        ));
    }
}

/// Decides the API and the error dialect from method, path and headers.
fn classify(method: Method, path: &[u8], anthropic_hint: bool) -> (ApiRoute, Flavor, Option<ErrorKind>) {
    let flavor = if anthropic_hint {
        Flavor::Anthropic
    } else {
        Flavor::OpenAi
    };
    let path = path.strip_suffix(b"/").filter(|p| !p.is_empty()).unwrap_or(path);
    let (api, want, flavor) = match path {
        b"/v1/chat/completions" | b"/chat/completions" => {
            (ApiRoute::ChatCompletions, Method::Post, Flavor::OpenAi)
        }
        b"/v1/messages" => (ApiRoute::Messages, Method::Post, Flavor::Anthropic),
        b"/v1/models" | b"/models" => (ApiRoute::Models, Method::Get, flavor),
        b"/healthz" => (ApiRoute::Health, Method::Get, flavor),
        _ => return (ApiRoute::Other, flavor, Some(ErrorKind::UnknownPath)),
    };
    let wrong = method != want && !(method == Method::Head && want == Method::Get);
    (api, flavor, wrong.then_some(ErrorKind::MethodNotAllowed))
}

/// Serves one request whose head is in `io.buf`.
pub async fn handle(w: &Worker, io: &mut ClientIo, head: RequestHead, started: Instant, ts_ms: u64) -> Next {
    let anthropic_hint = io.header(b"anthropic-version").is_some() || io.header(b"x-api-key").is_some();
    let (api, flavor, refused) = classify(head.method, head.path(&io.buf), anthropic_hint);
    if api == ApiRoute::Health && refused.is_none() {
        io.out.extend_from_slice(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\nok\n",
        );
        let keep = head.keep_alive && head.framing == Framing::Empty;
        io.buf.advance(head.len);
        let ok = io.write_out().await;
        return if keep && ok { Next::KeepAlive } else { Next::Close };
    }
    let mut ctx = Ctx {
        worker: w,
        record: Record::new(ts_ms, api),
        started,
        flavor,
        body_read: head.framing == Framing::Empty,
        consumed: false,
        admission: None,
        capture: None,
        done: false,
    };
    ctx.record.bytes_in = head.len as u64;
    ctx.record.client_ip_hash = Some(w.shared.ip_hasher.hash_remembered(io.peer.ip(), &mut io.ip_hash));
    let result = match refused {
        Some(kind) => Err(Reject::from(kind)),
        None => serve_api(w, io, &head, &mut ctx).await,
    };
    let next = match result {
        Ok(next) => next,
        Err(reject) => {
            let keep = head.keep_alive && ctx.body_read;
            if !ctx.body_read {
                // The body was never read: the connection cannot be reused.
                io.buf.clear();
            } else if !ctx.consumed {
                io.buf.advance(head.len);
            }
            let extra: Vec<(&str, &str)> = reject.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            write_error(
                &mut io.out,
                ctx.flavor,
                reject.kind,
                reject.detail.as_deref(),
                keep,
                &extra,
            );
            ctx.record.bytes_out += io.out.len() as u64;
            ctx.record.status = reject.kind.status();
            ctx.record.error = Some(reject.kind.label().into());
            if ctx.record.outcome == Outcome::Ok {
                ctx.record.outcome = match reject.kind {
                    ErrorKind::UpstreamUnreachable
                    | ErrorKind::UpstreamTimeout
                    | ErrorKind::UpstreamProtocol => Outcome::UpstreamUnavailable,
                    _ => Outcome::Rejected,
                };
            }
            if io.write_out().await && keep {
                Next::KeepAlive
            } else {
                Next::Close
            }
        }
    };
    ctx.finish_record();
    next
}

async fn serve_api(
    w: &Worker,
    io: &mut ClientIo,
    head: &RequestHead,
    ctx: &mut Ctx<'_>,
) -> Result<Next, Reject> {
    let index = w.shared.cell.current();
    let key = auth::presented_key(io.header(b"authorization"), io.header(b"x-api-key"));
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

    if ctx.record.route == ApiRoute::Models {
        if head.framing != Framing::Empty {
            return Err(Reject::with(
                ErrorKind::BadRequest,
                "GET /v1/models takes no body",
            ));
        }
        io.buf.advance(head.len);
        ctx.consumed = true;
        return Ok(models::respond(io, &key, head, ctx).await);
    }

    let limits = &w.shared.limits;
    let req = match io
        .read_body(head, limits.max_body_bytes, limits.body_timeout())
        .await
    {
        Ok(req) => req,
        Err(BodyError::TooLarge) => return Err(ErrorKind::BodyTooLarge.into()),
        Err(BodyError::BadChunked) => {
            return Err(Reject::with(ErrorKind::BadRequest, "invalid chunked body"))
        }
        Err(BodyError::Timeout) => return Err(ErrorKind::RequestTimeout.into()),
        Err(BodyError::Closed) => {
            ctx.body_read = false;
            ctx.record.outcome = Outcome::Cancelled;
            return Err(ErrorKind::BadRequest.into());
        }
    };
    ctx.body_read = true;
    ctx.consumed = true;
    ctx.record.bytes_in = req.raw.len() as u64;

    // The body is read once: what forwarding, the policy and the meter need.
    let api = if ctx.record.route == ApiRoute::Messages {
        Api::Anthropic
    } else {
        Api::OpenAi
    };
    let refuse = |(kind, detail)| Reject {
        kind,
        detail,
        headers: Vec::new(),
    };
    let view = crate::policy::extract(api, &req.body)
        .map_err(inspect::refusal)
        .map_err(refuse)?;
    let info = inspect::inspect(&view, ctx.record.route).map_err(refuse)?;
    ctx.record.model = Some(info.model.clone());
    ctx.record.stream = info.stream;
    let (admission, redacted) =
        meter::admit(&index, &key, &view, &req.body, w.shared.limits.count_tokens, ctx)?;
    ctx.admission = Some(admission);
    let body = match redacted {
        Some(b) => bytes::Bytes::from(b),
        None => req.body.clone(),
    };
    if let Some(content_key) = &key.tenant.content_key {
        // What is logged is what was forwarded: redacted values stay redacted.
        ctx.capture = Some(content::Capture::new(content_key.clone(), body.clone()));
    }

    let targets = match key.tenant.routes.get(info.model.as_str()) {
        Some(RouteEntry::Targets(t)) => t.clone(),
        Some(RouteEntry::OutOfRegion) => {
            let region = key.tenant.region.as_deref().unwrap_or("");
            return Err(Reject::with(
                ErrorKind::OutOfRegion,
                format!(
                    "no upstream in region {region:?} serves model {:?}",
                    truncate(&info.model)
                ),
            ));
        }
        None => {
            return Err(Reject::with(
                ErrorKind::UnknownModel,
                format!(
                    "The model `{}` does not exist or you do not have access to it.",
                    truncate(&info.model)
                ),
            ))
        }
    };
    let outgoing = forward::Outgoing {
        head,
        headers: &io.headers,
        req: &req,
        body: &body,
        info: &info,
    };
    let answer = forward::forward(w, &outgoing, &targets, ctx).await?;
    Ok(relay::relay(w, io, head, answer, ctx).await)
}

/// Bounds a client-supplied name echoed in an error message.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(128) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let c = |m, p: &[u8], hint| {
            let (api, flavor, err) = classify(m, p, hint);
            (api, flavor, err)
        };
        assert_eq!(
            c(Method::Post, b"/v1/chat/completions", true),
            (ApiRoute::ChatCompletions, Flavor::OpenAi, None)
        );
        assert_eq!(
            c(Method::Post, b"/v1/messages", false),
            (ApiRoute::Messages, Flavor::Anthropic, None)
        );
        assert_eq!(
            c(Method::Get, b"/v1/messages", false).2,
            Some(ErrorKind::MethodNotAllowed)
        );
        assert_eq!(
            c(Method::Get, b"/v1/models/", true),
            (ApiRoute::Models, Flavor::Anthropic, None)
        );
        assert_eq!(
            c(Method::Post, b"/v2/x", true),
            (ApiRoute::Other, Flavor::Anthropic, Some(ErrorKind::UnknownPath))
        );
        assert_eq!(
            c(Method::Get, b"/", false),
            (ApiRoute::Other, Flavor::OpenAi, Some(ErrorKind::UnknownPath))
        );
    }

    #[test]
    fn truncates_on_char_boundaries() {
        let long = "é".repeat(300);
        assert_eq!(truncate(&long).chars().count(), 128);
        assert_eq!(truncate("gpt"), "gpt");
    }
}
