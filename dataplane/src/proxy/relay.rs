//! Relaying the upstream's response to the client as it arrives (the I/O
//! of phase 7; what is read and re-framed is [`super::filter`]'s).
//!
//! Every piece read from upstream is written to the client as the same
//! `Bytes` — chunk framing included — when the client's request asked for
//! what the provider sends (raw output). A stream whose usage event the
//! gateway asked for on the client's behalf, or one going to an HTTP/1.0
//! client, is re-framed by the filter instead. While the response flows, a
//! read is kept pending on the client socket ([`ClientWatch`]): a client
//! that goes away is noticed at once and the upstream connection is closed
//! (never pooled).
//!
//! The response head goes out at once, alone when nothing came with it, and
//! otherwise in the same write as the body bytes read with it (raw output:
//! one vectored write of both, see [`crate::io::gather`]; re-framed output:
//! the head is put before the first events).
//!
//! Truncation is never repaired: if the upstream dies mid-body the client gets
//! exactly the bytes that arrived (no final zero-size chunk, no forged
//! `[DONE]`) and the connection is closed.

use super::filter::{FilterSetup, Output, ResponseFilter, Translation};
use super::forward::Answer;
use super::Ctx;
use crate::io::client::{to_client, to_client_gathered, ClientGone, ClientIo, ClientWatch, Next, Seen};
use crate::io::gather;
use crate::io::stream::ClientWr;
use crate::worker::Worker;
use bytes::Buf;
use sluice_contract::codec::encoding;
use sluice_contract::codec::head::{
    self as head, is_hop_by_hop, ConnectionOptions, Framing, Header, RequestHead, ResponseHead,
};
use sluice_contract::dialect::Dialect;
use sluice_contract::record::{ApiRoute, Outcome};
use std::time::Duration;

/// Bytes kept free in the upstream read buffer before each read.
const READ_CHUNK: usize = 16 * 1024;

/// Decrements the active-stream gauge however the relay ends.
struct StreamGuard<'a>(&'a Worker);

impl Drop for StreamGuard<'_> {
    fn drop(&mut self) {
        self.0.metrics().streams(-1);
    }
}

/// How a response reaches the client, from its head and the client's; `None`
/// when the gateway could not read what it meters in it: an event stream
/// must come uncompressed (the gateway asks for `identity`), any other body
/// in a coding it knows.
pub fn setup(
    answer: &Answer,
    client_head: &RequestHead,
    counting: Option<sluice_contract::policy::tokens::Encoding>,
    api: ApiRoute,
    include_usage: bool,
    compress: Option<encoding::Coding>,
) -> Option<FilterSetup> {
    let rh = &answer.head;
    let is_sse = is_event_stream(answer);
    let codings = match head::find(&answer.buf, &answer.headers, b"content-encoding") {
        None => Vec::new(),
        Some(value) => encoding::codings(value).ok()?,
    };
    if is_sse && !codings.is_empty() {
        return None;
    }
    // The provider's dialect, but for an API of its own shapes (Responses:
    // named events, its own usage fields), read as that API.
    let dialect = match api.dialect() {
        Some(d @ (Dialect::OpenAiResponses | Dialect::Gemini)) => d,
        _ => answer.upstream.kind.dialect(),
    };
    let translation = answer.translation.map(|pair| {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Translation::new(pair, rh.status, is_sse, include_usage, created)
    });
    let output = if translation.is_some() {
        Output::Translated {
            chunked: client_head.http11,
        }
    } else if answer.strip_usage && is_sse {
        Output::Events {
            chunked: client_head.http11,
        }
    } else if let (Some(coding), false, true, true, Framing::Length(n)) = (
        compress,
        is_sse,
        codings.is_empty(),
        client_head.http11,
        rh.framing,
    ) {
        // A whole body the client accepts compressed, small enough to be
        // kept aside: compressed once it is all in (see PRIVACY.md: in
        // memory only).
        if (sluice_contract::codec::accept::MIN_COMPRESS as u64..=super::filter::MAX_JSON_CAPTURE as u64)
            .contains(&n)
        {
            Output::Compressed { coding }
        } else {
            Output::Raw
        }
    } else if rh.framing == Framing::Chunked && !client_head.http11 {
        Output::Plain
    } else {
        Output::Raw
    };
    Some(FilterSetup {
        framing: rh.framing,
        is_sse,
        dialect,
        output,
        counting,
        codings,
        translation,
    })
}

fn is_event_stream(answer: &Answer) -> bool {
    head::find(&answer.buf, &answer.headers, b"content-type")
        .is_some_and(|v| v.len() >= 17 && v[..17].eq_ignore_ascii_case(b"text/event-stream"))
}

/// Whether the client's connection can be kept after this response.
fn client_keep(client_head: &RequestHead, rh: &ResponseHead, output: Output) -> bool {
    client_head.keep_alive
        && match output {
            Output::Raw => rh.framing != Framing::UntilClose,
            Output::Plain | Output::Events { chunked: false } | Output::Translated { chunked: false } => {
                false
            }
            Output::Events { chunked: true }
            | Output::Translated { chunked: true }
            | Output::Compressed { .. } => true,
        }
}

/// Sends what the filter framed; `Ok(0)` when there was nothing.
async fn send(
    filter: &mut ResponseFilter,
    wr: &mut ClientWr,
    end: bool,
    limit: Duration,
) -> Result<usize, ClientGone> {
    let Some(out) = filter.take_sealed(end) else {
        return Ok(0);
    };
    let (res, back) = to_client(wr, out, limit).await;
    // An abandoned write keeps the buffer; the relay stops then anyway.
    if let Some(back) = back {
        filter.return_output(back.into_inner());
    }
    res
}

/// Relays `answer` to the client, as [`setup`] decided, and completes the
/// record.
pub async fn relay(
    w: &Worker,
    io: &mut ClientIo,
    client_head: &RequestHead,
    answer: Answer,
    setup: FilterSetup,
    ctx: &mut Ctx<'_>,
) -> Next {
    w.metrics().streams(1);
    let _guard = StreamGuard(w);
    let Answer {
        mut conn,
        upstream,
        head: rh,
        headers,
        mut buf,
        pass_account_headers,
        dropped,
        ..
    } = answer;
    ctx.record.status = rh.status;
    if rh.status >= 400 {
        ctx.record.outcome = Outcome::UpstreamError;
    }
    let output = setup.output;
    let client_keep = client_keep(client_head, &rh, output);
    let pass = Pass {
        account: pass_account_headers,
        cache: ctx.record.cache.map(|c| c.as_str()),
    };
    write_client_head(&mut io.out, &buf, &headers, &rh, client_keep, output, pass);
    if let Some(dropped) = &dropped {
        add_header(&mut io.out, sluice_contract::translate::DROPPED_HEADER, dropped);
    }
    buf.advance(rh.len);
    // When body bytes came with the head, the head goes out with them: one
    // write, one segment, one wake-up of the client. Alone and at once
    // otherwise.
    let defer_head = !buf.is_empty();
    // Raw output: the head waiting for the first body bytes.
    let mut raw_head = None;
    if !defer_head {
        ctx.record.bytes_out += io.out.len() as u64;
        if !io.write_out().await {
            ctx.record.outcome = Outcome::Cancelled;
            return Next::Close;
        }
    }

    let (out, pieces) = {
        let mut spares = w.spares.borrow_mut();
        let out = if output == Output::Raw {
            Vec::new()
        } else {
            spares.bytes()
        };
        (out, spares.ranges())
    };
    let mut filter = ResponseFilter::new(setup, ctx.capture.take(), out, pieces);
    super::cached::give_to_filter(ctx, &mut filter, upstream.kind.dialect());
    if defer_head {
        if output == Output::Raw {
            raw_head = Some(std::mem::take(&mut io.out));
        } else {
            filter.put_head_first(&io.out);
            io.out.clear();
        }
    }

    let ClientIo {
        rd,
        wr,
        buf: client_buf,
        out: client_out,
        ..
    } = io;
    let (mut watch, probe) = ClientWatch::start(rd, client_buf);
    let mut probe = std::pin::pin!(probe);
    let mut upstream_clean = true;
    let idle = w.shared.limits.upstream_idle_timeout();
    let send_limit = w.shared.limits.client_write_timeout();

    let outcome = loop {
        if !buf.is_empty() || filter.framing == Framing::Empty {
            let chunk = buf.split().freeze();
            let Ok(take) = filter.frame(&chunk) else {
                // Broken chunked framing: what came before it is relayed, and
                // that is all the client gets. Re-framed output also sends
                // the events of this read that came whole before the break
                // (and the head, if it still waits); raw output stops at the
                // last read that was whole.
                ctx.record.error = filter.decoder.error().map(|e| e.label().into());
                upstream_clean = false;
                if filter.output != Output::Raw {
                    filter.inspect(&chunk);
                    if let Ok(n) = send(&mut filter, wr, false, send_limit).await {
                        ctx.record.bytes_out += n as u64;
                    }
                } else if let Some(head) = raw_head.take() {
                    if let (Ok(n), _) = to_client(wr, head, send_limit).await {
                        ctx.record.bytes_out += n as u64;
                    }
                }
                break Outcome::Truncated;
            };
            if take < chunk.len() {
                // Bytes beyond the end of the response: the upstream is confused.
                upstream_clean = false;
            }
            let written = if filter.output == Output::Raw {
                // Pass-through: the bytes go first, and are inspected while
                // the client reads them (the first token must not wait for
                // the events that came in the same read).
                let written = match (raw_head.take(), take) {
                    (None, 0) => Ok(0),
                    (None, _) => to_client(wr, chunk.slice(..take), send_limit).await.0,
                    (Some(head), _) => {
                        let both = gather::HeadAndBody::new(head, chunk.slice(..take));
                        let (res, back) = to_client_gathered(wr, both, send_limit).await;
                        if let Some(back) = back {
                            // Its capacity serves the next response's head.
                            let mut head = back.into_head();
                            head.clear();
                            *client_out = head;
                        }
                        res
                    }
                };
                filter.inspect(&chunk);
                written
            } else {
                filter.inspect(&chunk);
                let end = filter.done;
                send(&mut filter, wr, end, send_limit).await
            };
            if let (Some(t), Some(f)) = (ctx.trace.as_mut(), filter.framer.as_ref()) {
                t.events(f.events());
            }
            match written {
                Ok(n) => ctx.record.bytes_out += n as u64,
                Err(gone) => {
                    ctx.record.error = gone.reason().or(ctx.record.error.take());
                    break Outcome::Cancelled;
                }
            }
        }
        if filter.done {
            // Every read of it was sent and dropped: its memory can serve
            // the next request whole.
            w.spares.borrow_mut().put_read_buf(std::mem::take(&mut buf));
            break Outcome::Ok;
        }
        buf.reserve(READ_CHUNK);
        let read = monoio::time::timeout(idle, conn.read_into(buf));
        let mut read = std::pin::pin!(read);
        let result = if watch.active() {
            monoio::select! {
                r = &mut read => r,
                p = &mut probe => {
                    match watch.seen(p, client_buf) {
                        // The client sent its next request early: it is kept.
                        Seen::Early => read.await,
                        Seen::Gone => {
                            // The client closed or reset: stop at once.
                            ctx.record.outcome = Outcome::Cancelled;
                            return finish(w, ctx, filter, Next::Close);
                        }
                    }
                }
            }
        } else {
            read.await
        };
        match result {
            Ok((Ok(n), b)) if n > 0 => buf = b,
            Ok((Ok(_), b)) if filter.framing == Framing::UntilClose => {
                buf = b;
                filter.done = true;
                upstream_clean = false;
                if let Err(gone) = send(&mut filter, wr, true, send_limit).await {
                    ctx.record.error = gone.reason().or(ctx.record.error.take());
                    break Outcome::Cancelled;
                }
            }
            Ok((_, _)) => {
                upstream_clean = false;
                break Outcome::Truncated;
            }
            Err(_) => {
                ctx.record.error = Some("upstream_idle_timeout".into());
                upstream_clean = false;
                break Outcome::Truncated;
            }
        }
    };

    let mut next = if client_keep && outcome == Outcome::Ok {
        Next::KeepAlive
    } else {
        Next::Close
    };
    if !watch.stop(probe.as_mut(), client_buf).await {
        next = Next::Close;
    }
    if outcome == Outcome::Ok {
        if !filter.read_json_usage() {
            ctx.record.error.get_or_insert("upstream_body_undecodable".into());
        }
        // The response ended cleanly, but a successful stream that never
        // said it was done (`[DONE]`, `message_stop`) ended early at the
        // provider, typically after an error event: the record says so.
        if filter.framer.is_some() && rh.status < 300 && !filter.usage.completed() {
            ctx.record.error.get_or_insert("stream_incomplete".into());
        }
        // A Responses stream that ended with `response.failed` or
        // `response.incomplete`: whole, but not a completion.
        if let Some(why) = filter.usage.ended() {
            ctx.record.error.get_or_insert(why.into());
        }
        if filter.translation.as_ref().is_some_and(|t| t.failed) {
            ctx.record.error.get_or_insert("translation_failed".into());
        }
        if upstream_clean && rh.keep_alive {
            w.pool.borrow_mut().put(&upstream.pool_key, conn);
        }
    }
    if outcome != Outcome::Ok || ctx.record.outcome == Outcome::Ok {
        ctx.record.outcome = outcome;
    }
    finish(w, ctx, filter, next)
}

/// Notes what the filter read in the record and gives its buffers back.
fn finish(w: &Worker, ctx: &mut Ctx<'_>, mut filter: ResponseFilter, next: Next) -> Next {
    super::cached::take_from_filter(ctx, &mut filter);
    if let Some((plain, sent)) = filter.compressed {
        (ctx.record.body_plain_bytes, ctx.record.body_sent_bytes) = (Some(plain), Some(sent));
    }
    if let Some(f) = &filter.framer {
        ctx.record.events = f.events().min(u64::from(u32::MAX)) as u32;
    }
    if let Some(c) = filter.counter.as_mut() {
        ctx.record.completion_tokens_counted = Some(c.finish());
    }
    if let Some(capture) = filter.capture.take() {
        ctx.capture = Some(capture);
    }
    ctx.record.usage = filter.usage.usage();
    let (out, pieces) = filter.into_buffers();
    let mut spares = w.spares.borrow_mut();
    spares.put_bytes(out);
    spares.put_ranges(pieces);
    next
}

/// Adds a header to a complete response head in `out` (before its blank line).
fn add_header(out: &mut Vec<u8>, name: &str, value: &str) {
    if out.ends_with(b"\r\n\r\n") {
        out.truncate(out.len() - 2);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        // Field names from the client's body: anything but visible ASCII
        // and spaces is left out, so the value stays one header line.
        out.extend(value.bytes().filter(|b| (0x20..0x7f).contains(b)));
        out.extend_from_slice(b"\r\n\r\n");
    }
}

/// The response head sent to the client: the upstream's status and end-to-end
/// headers, with framing and connection headers of the gateway's own.
/// Which of the upstream's end-to-end response headers reach the client.
#[derive(Clone, Copy, Debug)]
struct Pass {
    /// The provider account's headers: its rate-limit state and its
    /// organization and project (see [`is_account_header`]).
    account: bool,
    /// The `x-sluice-cache` value, when the response cache took part.
    cache: Option<&'static str>,
}

/// Response headers that never reach the client: a provider's cookies are
/// set for the gateway's session with it, not the client's.
fn is_cookie(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"set-cookie") || name.eq_ignore_ascii_case(b"set-cookie2")
}

/// A provider account's state: the rate limits (`x-ratelimit-*`,
/// `anthropic-ratelimit-*`) and the account's ids. From an operator-wide key
/// these describe every tenant's traffic together, so they reach a client
/// only when the snapshot says to pass them. `retry-after` (and
/// `retry-after-ms`) is about this request, and always passes.
fn is_account_header(name: &[u8]) -> bool {
    const PREFIXES: [&[u8]; 2] = [b"x-ratelimit-", b"anthropic-ratelimit-"];
    PREFIXES
        .iter()
        .any(|p| name.len() >= p.len() && name[..p.len()].eq_ignore_ascii_case(p))
        || name.eq_ignore_ascii_case(b"openai-organization")
        || name.eq_ignore_ascii_case(b"openai-project")
}

fn write_client_head(
    out: &mut Vec<u8>,
    buf: &[u8],
    headers: &[Header],
    rh: &ResponseHead,
    keep: bool,
    output: Output,
    pass: Pass,
) {
    // The status line ends at the head's first LF: a bare LF is a line end
    // too (RFC 9112 §2.2), and the search must not run on into the body.
    let head = buf.get(..rh.len).unwrap_or(buf);
    let line = match memchr::memchr(b'\n', head) {
        Some(end) => head[..end].strip_suffix(b"\r").unwrap_or(&head[..end]),
        None => &[],
    };
    // "HTTP/1.x SSS reason": keep status and reason, speak HTTP/1.1.
    let rest = line.get(9..).unwrap_or(b"502 Bad Gateway");
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(rest);
    out.extend_from_slice(b"\r\n");
    let options = ConnectionOptions::of(buf, headers);
    for h in headers {
        let name = h.name.of(buf);
        if is_hop_by_hop(name)
            || options.contains(name)
            || is_cookie(name)
            || (!pass.account && is_account_header(name))
        {
            continue;
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value.of(buf));
        out.extend_from_slice(b"\r\n");
    }
    if let Some(cache) = pass.cache {
        out.extend_from_slice(b"x-sluice-cache: ");
        out.extend_from_slice(cache.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match (output, rh.framing) {
        (Output::Compressed { coding }, _) => {
            out.extend_from_slice(b"content-encoding: ");
            out.extend_from_slice(sluice_contract::codec::accept::token(coding).as_bytes());
            out.extend_from_slice(b"\r\nvary: accept-encoding\r\ntransfer-encoding: chunked\r\n");
        }
        (o, _) if o.chunked() => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        (Output::Events { .. } | Output::Translated { .. } | Output::Plain, _) => {}
        (Output::Raw, Framing::Length(n)) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(n.to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        (Output::Raw, Framing::Chunked) => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        (Output::Raw, Framing::Empty)
            if !(100..200).contains(&rh.status) && rh.status != 204 && rh.status != 304 =>
        {
            out.extend_from_slice(b"content-length: 0\r\n");
        }
        _ => {}
    }
    out.extend_from_slice(if keep {
        b"connection: keep-alive\r\n\r\n"
    } else {
        b"connection: close\r\n\r\n"
    });
}

#[cfg(test)]
mod tests {
    use super::{is_account_header, is_cookie};

    #[test]
    fn cookies_and_account_headers_are_known() {
        assert!(is_cookie(b"Set-Cookie") && is_cookie(b"set-cookie2"));
        assert!(!is_cookie(b"cookie"));
        for name in [
            "x-ratelimit-remaining-requests",
            "X-RateLimit-Reset-Tokens",
            "anthropic-ratelimit-requests-remaining",
            "anthropic-ratelimit-unified-status",
            "openai-organization",
            "OpenAI-Project",
        ] {
            assert!(is_account_header(name.as_bytes()), "{name}");
        }
        for name in [
            "retry-after",
            "retry-after-ms",
            "x-request-id",
            "request-id",
            "content-type",
        ] {
            assert!(!is_account_header(name.as_bytes()), "{name}");
        }
    }
}
