//! One connection: read requests (keep-alive), answer each, until the peer
//! closes, a request asks to close, or a fault knob ends the connection.

use std::io;
use std::rc::Rc;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent};

use super::gemini;
use super::io::flush;
use super::prompt;
use super::request::{decode_chunked, parse_head, BadRequest, Framing, Head, Route, MAX_BODY};
use super::respond::{
    default_message, push_anthropic_message, push_embeddings, push_error, push_full, push_head, push_models,
    push_openai_completion, push_response, Api, ApiError, Meta, Usage,
};
use super::state::Worker;
use super::stream::{self, Events, Pace, Scratch};
use super::text::push_u64;

/// Initial capacity of a connection's read buffer (a typical request); small,
/// since thousands of idle keep-alive connections each hold one.
const READ_BUF: usize = 4 * 1024;
/// Spare room always offered to a read.
const MIN_READ: usize = 1024;
/// Buffers grown past this by one large request are shrunk back afterwards.
const KEEP_BUF: usize = 64 * 1024;

/// Serves one accepted connection (plain or TLS) until it ends.
pub(super) async fn serve<S: AsyncReadRent + AsyncWriteRent>(mut io: S, worker: Rc<Worker>) {
    if let Err(e) = run(&mut io, &worker).await {
        tracing::trace!(error = %e, "mock connection ended");
    }
}

/// The scratch buffers a connection reuses for every response.
#[derive(Debug, Default)]
struct Bufs {
    /// What goes out next.
    out: Vec<u8>,
    /// Response bodies before their head is written.
    tmp: Vec<u8>,
    stream: Scratch,
}

async fn run<S: AsyncReadRent + AsyncWriteRent>(io: &mut S, w: &Worker) -> io::Result<()> {
    let mut read = Vec::with_capacity(READ_BUF);
    let mut decoded = Vec::new();
    let mut bufs = Bufs {
        out: Vec::with_capacity(READ_BUF),
        ..Bufs::default()
    };
    let key = w.shared.require_key.as_deref();
    let record = w.shared.last.is_some();
    loop {
        let head = loop {
            if !read.is_empty() {
                match parse_head(&read, key, record) {
                    Ok(Some(h)) => break h,
                    Ok(None) => {}
                    Err(bad) => return reject(io, &mut bufs, bad).await,
                }
            }
            if read_more(io, &mut read).await? == 0 {
                return Ok(());
            }
        };
        let mut continued = false;
        let (in_read, used) = match head.framing {
            Framing::Length(n) => {
                let need = head.len + n;
                if read.len() < need {
                    read.reserve(need - read.len());
                }
                while read.len() < need {
                    continue_once(io, &mut bufs.out, &head, &mut continued).await?;
                    if read_more(io, &mut read).await? == 0 {
                        return Ok(());
                    }
                }
                (true, need)
            }
            Framing::Chunked => loop {
                match decode_chunked(&read[head.len..], &mut decoded) {
                    Ok(Some(n)) => break (false, head.len + n),
                    Ok(None) if read.len() > head.len + 2 * MAX_BODY => {
                        return reject(io, &mut bufs, BadRequest::BodyTooLarge).await
                    }
                    Ok(None) => {
                        continue_once(io, &mut bufs.out, &head, &mut continued).await?;
                        if read_more(io, &mut read).await? == 0 {
                            return Ok(());
                        }
                    }
                    Err(bad) => return reject(io, &mut bufs, bad).await,
                }
            },
        };
        let body = if in_read {
            &read[head.len..used]
        } else {
            &decoded[..]
        };
        let keep_alive = respond(io, w, &head, body, &mut bufs).await?;
        read.drain(..used);
        if !keep_alive {
            return Ok(());
        }
        for buf in [&mut read, &mut decoded, &mut bufs.tmp] {
            if buf.capacity() > KEEP_BUF {
                buf.shrink_to(READ_BUF.max(buf.len()));
            }
        }
    }
}

/// Reads more bytes onto the end of `buf`; 0 means the peer closed.
async fn read_more<S: AsyncReadRent>(io: &mut S, buf: &mut Vec<u8>) -> io::Result<usize> {
    if buf.capacity() - buf.len() < MIN_READ {
        buf.reserve(MIN_READ);
    }
    let len = buf.len();
    let (res, slice) = io.read(std::mem::take(buf).slice_mut(len..)).await;
    *buf = slice.into_inner();
    res
}

/// Answers `Expect: 100-continue` before the first wait for body bytes.
async fn continue_once<S: AsyncWriteRent>(
    io: &mut S,
    out: &mut Vec<u8>,
    head: &Head,
    sent: &mut bool,
) -> io::Result<()> {
    if head.expect_continue && !*sent {
        *sent = true;
        out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        flush(io, out).await?;
    }
    Ok(())
}

/// Answers a request whose framing cannot be trusted, then closes.
async fn reject<S: AsyncWriteRent>(io: &mut S, b: &mut Bufs, bad: BadRequest) -> io::Result<()> {
    let e = match bad {
        BadRequest::Malformed(why) => ApiError::new(400, why),
        BadRequest::HeadTooLarge => ApiError::new(431, "request head too large"),
        BadRequest::BodyTooLarge => ApiError::new(413, "request body too large"),
    };
    let meta = Meta {
        api: Api::OpenAi,
        id: 0,
        keep_alive: false,
        processing_ms: 0,
        retry_after: 1,
    };
    push_error(&mut b.out, &mut b.tmp, &e, &meta);
    flush(io, &mut b.out).await
}

/// Answers one request; returns whether the connection stays open.
async fn respond<S: AsyncWriteRent>(
    io: &mut S,
    w: &Worker,
    head: &Head,
    body: &[u8],
    b: &mut Bufs,
) -> io::Result<bool> {
    let shared = &*w.shared;
    if head.route.is_traffic() {
        w.count();
        if let Some(last) = &shared.last {
            record(last, head, body);
        }
    }
    let api = if matches!(head.route, Route::Gemini(_)) {
        Api::Gemini
    } else if matches!(head.route, Route::Messages | Route::CountTokens) || head.anthropic {
        Api::Anthropic
    } else {
        Api::OpenAi
    };
    let meta = Meta {
        api,
        id: w.next_id(),
        keep_alive: head.keep_alive,
        processing_ms: 0,
        retry_after: w.shared.retry_after,
    };
    match head.route {
        Route::Chat
        | Route::Messages
        | Route::CountTokens
        | Route::Embeddings
        | Route::Responses
        | Route::Gemini(_)
        | Route::Models => return provider(io, w, head, body, b, meta).await,
        _ if !head.is_get && head.route != Route::Unknown => {
            let e = ApiError::new(
                405,
                format!("Method {} not allowed on {}", head.method, head.path),
            );
            push_error(&mut b.out, &mut b.tmp, &e, &meta);
        }
        Route::Healthz => push_full(&mut b.out, 200, "text/plain", b"ok", &meta),
        Route::MockStats => {
            b.tmp.clear();
            b.tmp.extend_from_slice(b"{\"requests\":");
            push_u64(&mut b.tmp, shared.requests());
            b.tmp.push(b'}');
            push_full(&mut b.out, 200, "application/json", &b.tmp, &meta);
        }
        Route::MockLast => {
            let last = shared
                .last
                .as_ref()
                .and_then(|l| l.lock().unwrap_or_else(PoisonError::into_inner).clone());
            match last {
                Some(json) => push_full(&mut b.out, 200, "application/json", json.as_bytes(), &meta),
                None => {
                    let why = if shared.last.is_some() {
                        "no request recorded yet"
                    } else {
                        "recording is off: start the mock with --record"
                    };
                    push_error(&mut b.out, &mut b.tmp, &ApiError::new(404, why), &meta);
                }
            }
        }
        Route::Unknown => {
            let message = match api {
                Api::OpenAi | Api::Gemini => format!("Invalid URL ({} {})", head.method, head.path),
                Api::Anthropic => "Not Found".to_owned(),
            };
            push_error(&mut b.out, &mut b.tmp, &ApiError::new(404, message), &meta);
        }
    }
    flush(io, &mut b.out).await?;
    Ok(head.keep_alive)
}

/// Answers a provider endpoint: models, chat completions, messages.
async fn provider<S: AsyncWriteRent>(
    io: &mut S,
    w: &Worker,
    head: &Head,
    body: &[u8],
    b: &mut Bufs,
    mut meta: Meta,
) -> io::Result<bool> {
    let shared = &*w.shared;
    let k = &head.knobs;
    let head_delay = k.head_delay_ms.unwrap_or(shared.head_delay_ms);
    meta.processing_ms = head_delay;
    if head_delay > 0 {
        monoio::time::sleep(Duration::from_millis(head_delay)).await;
    }
    let ask = match check(head, body, meta.api, shared.status) {
        Ok(ask) => ask,
        Err(e) => {
            push_error(&mut b.out, &mut b.tmp, &e, &meta);
            flush(io, &mut b.out).await?;
            return Ok(head.keep_alive);
        }
    };
    let Some(ask) = ask else {
        b.tmp.clear();
        if let Route::Gemini(method) = head.route {
            if let Err(e) = gemini_plain(&mut b.tmp, method, body) {
                push_error(&mut b.out, &mut b.tmp, &e, &meta);
                flush(io, &mut b.out).await?;
                return Ok(head.keep_alive);
            }
        } else if head.route == Route::Embeddings {
            match prompt::embeddings(body) {
                Ok(ask) => push_embeddings(&mut b.tmp, &ask.model, ask.inputs, ask.prompt_tokens, ask.base64),
                Err(e) => {
                    push_error(&mut b.out, &mut b.tmp, &e, &meta);
                    flush(io, &mut b.out).await?;
                    return Ok(head.keep_alive);
                }
            }
        } else if head.route == Route::CountTokens {
            match prompt::anthropic_count(body) {
                Ok(n) => b
                    .tmp
                    .extend_from_slice(format!("{{\"input_tokens\":{n}}}").as_bytes()),
                Err(e) => {
                    push_error(&mut b.out, &mut b.tmp, &e, &meta);
                    flush(io, &mut b.out).await?;
                    return Ok(head.keep_alive);
                }
            }
        } else {
            push_models(&mut b.tmp, meta.api);
        }
        push_full(&mut b.out, 200, "application/json", &b.tmp, &meta);
        flush(io, &mut b.out).await?;
        return Ok(head.keep_alive);
    };
    if k.scenario && head.route != Route::Responses {
        let created = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        return super::scripted::send(
            io,
            &mut b.out,
            &mut b.tmp,
            &meta,
            body,
            ask.prompt_tokens,
            created,
        )
        .await;
    }
    let want = k.tokens.unwrap_or(shared.tokens);
    let n = ask
        .max_tokens
        .map_or(want, |m| u32::try_from(m).unwrap_or(u32::MAX).min(want));
    let usage = Usage {
        prompt: ask.prompt_tokens,
        completion: n,
        capped: n < want,
    };
    let ttft = Duration::from_millis(k.ttft_ms.unwrap_or(shared.ttft_ms));
    let itl = Duration::from_millis(k.itl_ms.unwrap_or(shared.itl_ms));
    // A reset is sent as a plain close: SO_LINGER=0 needs a raw descriptor,
    // which monoio only yields through unsafe code (forbidden in this crate).
    let cut = match (k.truncate_after, k.reset_after) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let created = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if ask.stream {
        push_head(&mut b.out, 200, "text/event-stream; charset=utf-8", None, &meta);
        let events = Events {
            api: meta.api,
            id: meta.id,
            created,
            model: &ask.model,
            usage,
            include_usage: ask.include_usage,
            responses: head.route == Route::Responses,
        };
        let pace = Pace {
            ttft,
            itl,
            split: k.split.or(shared.split),
            cut,
        };
        stream::send(io, &mut b.out, &events, pace, &mut b.stream).await?;
    } else {
        // A provider sends nothing until the whole completion is generated.
        let wait = ttft + itl * n.saturating_sub(1);
        meta.processing_ms += u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        if !wait.is_zero() {
            monoio::time::sleep(wait).await;
        }
        b.tmp.clear();
        match meta.api {
            Api::OpenAi if head.route == Route::Responses => {
                push_response(&mut b.tmp, meta.id, created, &ask.model, &usage, true)
            }
            Api::OpenAi => push_openai_completion(&mut b.tmp, meta.id, created, &ask.model, &usage),
            Api::Anthropic => push_anthropic_message(&mut b.tmp, meta.id, &ask.model, &usage),
            Api::Gemini => gemini::push_response(&mut b.tmp, meta.id, &ask.model, &usage),
        }
        push_head(&mut b.out, 200, "application/json", Some(b.tmp.len()), &meta);
        // Truncated: the head promises the whole body, fewer bytes follow.
        let sent = cut.map_or(b.tmp.len(), |k| k.min(b.tmp.len()));
        b.out.extend_from_slice(&b.tmp[..sent]);
        flush(io, &mut b.out).await?;
    }
    Ok(cut.is_none() && head.keep_alive)
}

/// The checks a provider makes before answering, in its order: method,
/// key, the mock's error knobs, then the body. `Ok(None)`: a model listing.
fn check(head: &Head, body: &[u8], api: Api, status: Option<u16>) -> Result<Option<prompt::Ask>, ApiError> {
    let allowed = if head.route == Route::Models {
        head.is_get
    } else {
        head.is_post
    };
    if !allowed {
        return Err(ApiError::new(
            405,
            format!("Method {} not allowed on {}", head.method, head.path),
        ));
    }
    // Anthropic takes its key as `x-api-key` or, from newer SDKs, as a
    // bearer token.
    let authorized = match api {
        Api::OpenAi => head.bearer_ok,
        Api::Anthropic => head.api_key_ok || head.bearer_ok,
        Api::Gemini => head.goog_key_ok,
    };
    if !authorized {
        return Err(ApiError::new(
            401,
            match api {
                Api::OpenAi => "Incorrect API key provided.",
                Api::Anthropic => "invalid x-api-key",
                Api::Gemini => "API key not valid. Please pass a valid API key.",
            },
        ));
    }
    let k = &head.knobs;
    if let Some(name) = k.bad {
        return Err(ApiError::invalid(format!("invalid value in header {name}"), None));
    }
    if let Some(status) = k.status.or(status) {
        return Err(ApiError {
            kind: k.error_type.clone(),
            ..ApiError::new(status, default_message(status))
        });
    }
    match head.route {
        Route::Chat => prompt::openai(body).map(Some),
        Route::Messages => prompt::anthropic(body).map(Some),
        Route::Responses => prompt::responses(body).map(Some),
        Route::Gemini(method @ (gemini::Method::Generate | gemini::Method::Stream)) => {
            let path = head.path.split_once('?').map_or(head.path.as_str(), |(p, _)| p);
            let model = gemini::route(path).map_or("", |(_, m)| m);
            gemini::generate(body, model, method == gemini::Method::Stream).map(Some)
        }
        _ => Ok(None),
    }
}

/// Answers Gemini's methods that generate nothing (counting, embeddings)
/// into `out`.
fn gemini_plain(out: &mut Vec<u8>, method: gemini::Method, body: &[u8]) -> Result<(), ApiError> {
    match method {
        gemini::Method::CountTokens => gemini::count(body).map(|n| gemini::push_count(out, n)),
        gemini::Method::Embed | gemini::Method::BatchEmbed => {
            let batch = method == gemini::Method::BatchEmbed;
            gemini::embed_inputs(body, batch).map(|n| gemini::push_embeddings(out, n, batch))
        }
        // Generation is answered by `provider`.
        gemini::Method::Generate | gemini::Method::Stream => Ok(()),
    }
}

/// Keeps `head` and `body` as the last request, for `GET /_mock/last`.
fn record(last: &Mutex<Option<String>>, head: &Head, body: &[u8]) {
    let mut headers = serde_json::Map::new();
    for (name, value) in head.headers.iter().flatten() {
        let merged = match headers.remove(name) {
            Some(serde_json::Value::String(prev)) => format!("{prev}, {value}"),
            _ => value.clone(),
        };
        headers.insert(name.clone(), serde_json::Value::String(merged));
    }
    let json = serde_json::json!({
        "method": head.method,
        "path": head.path,
        "headers": headers,
        "body": String::from_utf8_lossy(body),
    });
    *last.lock().unwrap_or_else(PoisonError::into_inner) = Some(json.to_string());
}
