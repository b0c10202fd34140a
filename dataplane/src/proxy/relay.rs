//! Relaying the upstream's response to the client as it arrives.
//!
//! Every piece read from upstream is written to the client as the same
//! `Bytes` — chunk framing included — so plaintext responses are never copied.
//! Beside the pass-through, [`Scan`] de-chunks and frames SSE events to count
//! them and read the provider's usage. While the response flows, a read is kept
//! pending on the client socket: a client that goes away is noticed at once
//! and the upstream connection is closed (never pooled).
//!
//! The response head goes out at once, alone when nothing came with it, and
//! otherwise in the same write as the body bytes read with it (raw output:
//! one vectored write of both, see `relay/gather.rs`; re-framed output: the
//! head is put before the first events).
//!
//! Truncation is never repaired: if the upstream dies mid-body the client gets
//! exactly the bytes that arrived (no final zero-size chunk, no forged
//! `[DONE]`) and the connection is closed.

use super::forward::Answer;
use super::Ctx;
use crate::server::conn::{ClientIo, Next};
use crate::server::worker::Worker;
use bytes::{Buf, BytesMut};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncWriteRentExt, CancelableAsyncReadRent, Canceller};
use sluice_contract::codec::chunked::{write_chunk_size_before, ChunkedDecoder, CHUNK_SIZE_ROOM};
use sluice_contract::codec::delta::DeltaReader;
use sluice_contract::codec::head::{
    is_hop_by_hop, ConnectionOptions, Framing, Header, RequestHead, ResponseHead,
};
use sluice_contract::codec::sse::{SseEvent, SseFramer};
use sluice_contract::codec::usage::UsageScanner;
use sluice_contract::cut::{EventCut, EventReader};
use sluice_contract::dialect::Dialect;
use sluice_contract::policy::tokens::CompletionCounter;
use sluice_contract::record::Outcome;
use sluice_contract::snapshot::ProviderKind;
use std::ops::Range;

mod gather;

/// Bytes kept free in the upstream read buffer before each read.
const READ_CHUNK: usize = 16 * 1024;
/// Largest SSE event inspected (bigger ones pass through uninspected).
const MAX_EVENT: usize = sluice_contract::cut::MAX_HELD;
/// Largest non-streamed body kept aside for reading its usage.
const MAX_JSON_CAPTURE: usize = 4 * 1024 * 1024;

/// How the body reaches the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    /// The upstream's bytes as read, framing included (zero-copy).
    Raw,
    /// De-chunked payload, delimited by closing (HTTP/1.0 clients).
    Plain,
    /// Re-framed events with the usage-only one removed; chunked unless the
    /// client speaks HTTP/1.0.
    Events {
        /// Frame as chunks.
        chunked: bool,
    },
}

/// Room before the output in [`Scan::out`]: the chunk head is written
/// there when the output is sealed, so it goes out without being copied.
const ROOM: usize = CHUNK_SIZE_ROOM;

/// What the gateway reads from a response body while it passes through.
struct Scan {
    left: u64,
    framing: Framing,
    decoder: ChunkedDecoder,
    framer: Option<SseFramer>,
    usage: UsageScanner,
    json: Option<Vec<u8>>,
    output: Output,
    cut: EventCut,
    dialect: Dialect,
    /// Completion tokens counted from the text deltas as they pass.
    counter: Option<CompletionCounter>,
    /// Reads those deltas out of the events.
    deltas: DeltaReader,
    /// Opt-in content logging: the payload as relayed.
    capture: Option<super::content::Capture>,
    /// What to send instead of the raw bytes (`Plain` and `Events` output),
    /// after `room` bytes kept free for the chunk head (and, before the
    /// first send, the response head).
    out: Vec<u8>,
    /// Where the output starts in `out`.
    room: usize,
    /// Bytes at the start of `out` that are the response head, not sent
    /// yet: it goes out in one write with the first output.
    head: usize,
    /// Where the payload of the bytes last framed lies in them.
    pieces: Vec<Range<usize>>,
    done: bool,
}

impl Scan {
    /// Finds how many of `bytes` belong to this response (`Err` if the
    /// upstream's framing is broken) and where their payload lies; cheap, so
    /// that the bytes can go to the client before [`Scan::inspect`] looks
    /// at them.
    fn frame(&mut self, bytes: &[u8]) -> Result<usize, ()> {
        let Scan { pieces, .. } = self;
        pieces.clear();
        let base = bytes.as_ptr() as usize;
        // The decoder hands out sub-slices of `bytes`: their place in it is a
        // plain difference of addresses.
        let mut note = |piece: &[u8]| {
            let start = piece.as_ptr() as usize - base;
            pieces.push(start..start + piece.len());
        };
        match self.framing {
            Framing::Empty => {
                self.done = true;
                Ok(0)
            }
            Framing::Length(_) => {
                let take = (bytes.len() as u64).min(self.left) as usize;
                note(&bytes[..take]);
                self.left -= take as u64;
                self.done = self.left == 0;
                Ok(take)
            }
            Framing::Chunked => {
                let used = self.decoder.feed(bytes, note).map_err(|_| ())?;
                self.done = self.decoder.is_done();
                Ok(used)
            }
            Framing::UntilClose => {
                note(bytes);
                Ok(bytes.len())
            }
        }
    }

    /// Runs the payload found by the last [`Scan::frame`] of `bytes` through
    /// the SSE framer, the usage scanner, the token counter and the content
    /// capture, and (for re-framed output) builds what the client is sent.
    fn inspect(&mut self, bytes: &[u8]) {
        let (output, dialect) = (self.output, self.dialect);
        let Scan {
            framer,
            usage,
            json,
            cut,
            out,
            counter,
            deltas,
            capture,
            pieces,
            ..
        } = self;
        let mut texts = Texts {
            deltas,
            counter: counter.as_mut(),
            dialect,
        };
        if output != Output::Raw {
            // All of it may go out, with a held event and the last chunk.
            out.reserve(bytes.len() + cut.held() + b"\r\n0\r\n\r\n".len());
        }
        for range in pieces.iter() {
            let piece = &bytes[range.clone()];
            match (output, framer.as_mut()) {
                (Output::Events { .. }, Some(f)) => cut.feed(piece, f, usage, &mut texts, out),
                (Output::Plain, f) => {
                    out.extend_from_slice(piece);
                    if let Some(f) = f {
                        cut.read(piece, f, usage, &mut texts);
                    }
                }
                (_, Some(f)) => cut.read(piece, f, usage, &mut texts),
                (_, None) => {}
            }
            if let Some(c) = capture.as_mut() {
                c.push(piece);
            }
            if let Some(j) = json.as_mut() {
                if j.len() + piece.len() <= MAX_JSON_CAPTURE {
                    j.extend_from_slice(piece);
                }
            }
        }
    }

    /// Frames what is to be sent for the bytes fed so far, in place in
    /// `out`, and returns where it lies there (empty: nothing to send). A
    /// response head not sent yet is put right before it, and sent even
    /// when nothing else is.
    fn seal(&mut self, end: bool) -> Range<usize> {
        if end && matches!(self.output, Output::Events { .. }) {
            self.cut.finish(&mut self.out);
        }
        let (out, room) = (&mut self.out, self.room);
        let mut range = match self.output {
            // Nothing is framed: the raw bytes went out as they came.
            Output::Raw => 0..0,
            Output::Plain | Output::Events { chunked: false } => room..out.len(),
            Output::Events { chunked: true } => {
                let mut start = room;
                let payload = out.len() - room;
                if payload > 0 {
                    start = write_chunk_size_before(out, room, payload);
                    out.extend_from_slice(b"\r\n");
                }
                if end {
                    out.extend_from_slice(b"0\r\n\r\n");
                }
                start..out.len()
            }
        };
        let head = std::mem::take(&mut self.head);
        if head > 0 {
            // The chunk head takes at most ROOM bytes: the response head
            // fits between the start of `out` and the output.
            range.start -= head;
            out.copy_within(..head, range.start);
        }
        range
    }

    /// Sends what [`Scan::seal`] framed; `out` is then empty again.
    async fn send(
        &mut self,
        wr: &mut monoio::io::OwnedWriteHalf<monoio::net::TcpStream>,
        end: bool,
        limit: std::time::Duration,
    ) -> Result<usize, ClientGone> {
        let range = self.seal(end);
        if range.is_empty() {
            return Ok(0);
        }
        let out = monoio::buf::IoBuf::slice(std::mem::take(&mut self.out), range);
        let (res, back) = to_client(wr, out, limit).await;
        // An abandoned write keeps the buffer; the relay stops then anyway.
        if let Some(back) = back {
            self.out = back.into_inner();
            self.out.truncate(ROOM);
            self.room = ROOM;
        }
        res
    }
}

/// Hands the completion texts of events to the token counter, if tokens
/// are counted; finds what the event cut can learn either way.
struct Texts<'a> {
    deltas: &'a mut DeltaReader,
    counter: Option<&'a mut CompletionCounter>,
    dialect: Dialect,
}

impl EventReader for Texts<'_> {
    fn event(&mut self, ev: &SseEvent<'_>, learn: bool) -> Option<Range<usize>> {
        match self.counter.as_deref_mut() {
            Some(c) => self.deltas.for_each_text(self.dialect, ev, |text| c.push(text)),
            None if learn => self.deltas.one_text(self.dialect, ev),
            None => None,
        }
    }

    fn repeat(&mut self, ev: &SseEvent<'_>, text: Range<usize>, escaped: bool) {
        if let Some(c) = self.counter.as_deref_mut() {
            self.deltas
                .for_each_text_at(self.dialect, ev, text, escaped, |text| c.push(text));
        }
    }
}

/// Decrements the active-stream gauge however the relay ends.
struct StreamGuard<'a>(&'a Worker);

impl Drop for StreamGuard<'_> {
    fn drop(&mut self) {
        self.0.metrics().streams(-1);
    }
}

/// Relays `answer` to the client and completes the record.
pub async fn relay(
    w: &Worker,
    io: &mut ClientIo,
    client_head: &RequestHead,
    answer: Answer,
    ctx: &mut Ctx<'_>,
) -> Next {
    let Answer {
        mut conn,
        upstream,
        head: rh,
        headers,
        mut buf,
        strip_usage: answer_strip,
    } = answer;
    w.metrics().streams(1);
    let _guard = StreamGuard(w);
    ctx.record.status = rh.status;
    if rh.status >= 400 {
        ctx.record.outcome = Outcome::UpstreamError;
    }
    let is_sse = header(&buf, &headers, b"content-type")
        .is_some_and(|v| v.len() >= 17 && v[..17].eq_ignore_ascii_case(b"text/event-stream"));
    let dialect = match upstream.kind {
        ProviderKind::Anthropic => Dialect::Anthropic,
        ProviderKind::Openai | ProviderKind::Openrouter => Dialect::OpenAi,
    };
    let output = if answer_strip && is_sse {
        Output::Events {
            chunked: client_head.http11,
        }
    } else if rh.framing == Framing::Chunked && !client_head.http11 {
        Output::Plain
    } else {
        Output::Raw
    };
    let client_keep = client_head.keep_alive
        && match output {
            Output::Raw => rh.framing != Framing::UntilClose,
            Output::Plain | Output::Events { chunked: false } => false,
            Output::Events { chunked: true } => true,
        };
    write_client_head(&mut io.out, &buf, &headers, &rh, client_keep, output);
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

    let mut scan = Scan {
        left: if let Framing::Length(n) = rh.framing { n } else { 0 },
        framing: rh.framing,
        decoder: ChunkedDecoder::new(),
        framer: is_sse.then(|| SseFramer::new(MAX_EVENT)),
        usage: UsageScanner::new(dialect),
        json: (!is_sse).then(Vec::new),
        output,
        cut: EventCut::default(),
        dialect,
        capture: ctx.capture.take(),
        counter: match (&ctx.admission, is_sse) {
            (Some(adm), true) => adm.encoding.map(CompletionCounter::new),
            _ => None,
        },
        deltas: DeltaReader::default(),
        out: Vec::new(),
        room: ROOM,
        head: 0,
        pieces: w.spares.borrow_mut().ranges(),
        done: false,
    };
    if output == Output::Raw {
        if defer_head {
            raw_head = Some(std::mem::take(&mut io.out));
        }
    } else {
        scan.out = w.spares.borrow_mut().bytes();
        if defer_head {
            scan.out.extend_from_slice(&io.out);
            (scan.head, scan.room) = (io.out.len(), io.out.len() + ROOM);
            io.out.clear();
        }
        scan.out.resize(scan.room, 0);
    }

    let ClientIo {
        rd,
        wr,
        buf: client_buf,
        out: client_out,
        ..
    } = io;
    // Probe the client only when no pipelined request is already buffered
    // (its bytes must stay where they are).
    let mut probing = client_buf.is_empty();
    let mut probe_buf = if probing {
        std::mem::take(client_buf)
    } else {
        BytesMut::new()
    };
    if probing && probe_buf.capacity() < 1024 {
        probe_buf.reserve(4096);
    }
    let canceller = Canceller::new();
    let cap = probe_buf.capacity();
    let probe = rd.cancelable_read(probe_buf.slice_mut(0..cap), canceller.handle());
    let mut probe = std::pin::pin!(probe);
    let mut upstream_clean = true;
    let idle = w.shared.limits.upstream_idle_timeout();
    let send_limit = w.shared.limits.client_write_timeout();

    let outcome = loop {
        if !buf.is_empty() || scan.framing == Framing::Empty {
            let chunk = buf.split().freeze();
            let Ok(take) = scan.frame(&chunk) else {
                // Broken chunked framing: what came before it is relayed, and
                // that is all the client gets. Re-framed output also sends
                // the events of this read that came whole before the break
                // (and the head, if it still waits); raw output stops at the
                // last read that was whole.
                ctx.record.error = scan.decoder.error().map(|e| e.label().into());
                upstream_clean = false;
                if scan.output != Output::Raw {
                    scan.inspect(&chunk);
                    if let Ok(n) = scan.send(wr, false, send_limit).await {
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
            let written = if scan.output == Output::Raw {
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
                scan.inspect(&chunk);
                written
            } else {
                scan.inspect(&chunk);
                scan.send(wr, scan.done, send_limit).await
            };
            match written {
                Ok(n) => ctx.record.bytes_out += n as u64,
                Err(gone) => {
                    ctx.record.error = gone.reason().or(ctx.record.error.take());
                    break Outcome::Cancelled;
                }
            }
        }
        if scan.done {
            // Every read of it was sent and dropped: its memory can serve
            // the next request whole.
            w.spares.borrow_mut().put_read_buf(std::mem::take(&mut buf));
            break Outcome::Ok;
        }
        buf.reserve(READ_CHUNK);
        let read = monoio::time::timeout(idle, conn.read_into(buf));
        let mut read = std::pin::pin!(read);
        let result = if probing {
            monoio::select! {
                r = &mut read => r,
                p = &mut probe => {
                    probing = false;
                    match p {
                        (Ok(n), b) if n > 0 => {
                            // The client sent its next request early: keep it.
                            *client_buf = b.into_inner();
                            read.await
                        }
                        _ => {
                            // The client closed or reset: stop at once.
                            ctx.record.outcome = Outcome::Cancelled;
                            return finish(w, ctx, &mut scan, Next::Close);
                        }
                    }
                }
            }
        } else {
            read.await
        };
        match result {
            Ok((Ok(n), b)) if n > 0 => buf = b,
            Ok((Ok(_), b)) if scan.framing == Framing::UntilClose => {
                buf = b;
                scan.done = true;
                upstream_clean = false;
                if let Err(gone) = scan.send(wr, true, send_limit).await {
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
    if probing {
        canceller.cancel();
        match probe.await {
            (Ok(0), _) => next = Next::Close,
            (Ok(_), b) | (Err(_), b) => *client_buf = b.into_inner(),
        }
    }
    if outcome == Outcome::Ok {
        if let Some(json) = scan.json.as_ref().filter(|j| !j.is_empty()) {
            scan.usage.on_json_body(json);
        }
        // The response ended cleanly, but a successful stream that never
        // said it was done (`[DONE]`, `message_stop`) ended early at the
        // provider, typically after an error event: the record says so.
        if scan.framer.is_some() && rh.status < 300 && !scan.usage.completed() {
            ctx.record.error.get_or_insert("stream_incomplete".into());
        }
        if upstream_clean && rh.keep_alive {
            w.pool.borrow_mut().put(&upstream.pool_key, conn);
        }
    }
    if outcome != Outcome::Ok || ctx.record.outcome == Outcome::Ok {
        ctx.record.outcome = outcome;
    }
    finish(w, ctx, &mut scan, next)
}

/// Why a response could not be written to the client.
enum ClientGone {
    /// The connection failed or closed.
    Closed,
    /// The client accepted nothing for the whole write timeout.
    Stalled,
}

impl ClientGone {
    /// What the record says.
    fn reason(&self) -> Option<std::borrow::Cow<'static, str>> {
        match self {
            ClientGone::Closed => None,
            ClientGone::Stalled => Some("client_write_timeout".into()),
        }
    }
}

/// Writes `bytes` to the client, giving up when the write does not complete
/// within `limit`: a client that stopped reading must not pin an upstream
/// connection and its buffers for ever. The buffer comes back unless the
/// write was abandoned (then the connection is closed anyway).
async fn to_client<B: monoio::buf::IoBuf>(
    wr: &mut monoio::io::OwnedWriteHalf<monoio::net::TcpStream>,
    bytes: B,
    limit: std::time::Duration,
) -> (Result<usize, ClientGone>, Option<B>) {
    sent(monoio::time::timeout(limit, wr.write_all(bytes)).await)
}

/// [`to_client`] for the head and the first body bytes, in one write.
async fn to_client_gathered(
    wr: &mut monoio::io::OwnedWriteHalf<monoio::net::TcpStream>,
    both: gather::HeadAndBody,
    limit: std::time::Duration,
) -> (Result<usize, ClientGone>, Option<gather::HeadAndBody>) {
    sent(monoio::time::timeout(limit, gather::write_all(wr, both)).await)
}

/// What a client write bounded by a timeout came to, and its buffer back
/// unless the write was abandoned.
fn sent<B>(
    write: Result<monoio::BufResult<usize, B>, monoio::time::error::Elapsed>,
) -> (Result<usize, ClientGone>, Option<B>) {
    match write {
        Ok((Ok(n), back)) => (Ok(n), Some(back)),
        Ok((Err(_), back)) => (Err(ClientGone::Closed), Some(back)),
        Err(_) => (Err(ClientGone::Stalled), None),
    }
}

fn finish(w: &Worker, ctx: &mut Ctx<'_>, scan: &mut Scan, next: Next) -> Next {
    let mut spares = w.spares.borrow_mut();
    spares.put_bytes(std::mem::take(&mut scan.out));
    spares.put_ranges(std::mem::take(&mut scan.pieces));
    drop(spares);
    if let Some(f) = &scan.framer {
        ctx.record.events = f.events().min(u64::from(u32::MAX)) as u32;
    }
    if let Some(c) = scan.counter.as_mut() {
        ctx.record.completion_tokens_counted = Some(c.finish());
    }
    if let Some(capture) = scan.capture.take() {
        ctx.capture = Some(capture);
    }
    ctx.record.usage = scan.usage.usage();
    next
}

fn header<'a>(buf: &'a [u8], headers: &[Header], name: &[u8]) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.of(buf).eq_ignore_ascii_case(name))
        .map(|h| h.value.of(buf))
}

/// The response head sent to the client: the upstream's status and end-to-end
/// headers, with framing and connection headers of the gateway's own.
fn write_client_head(
    out: &mut Vec<u8>,
    buf: &[u8],
    headers: &[Header],
    rh: &ResponseHead,
    keep: bool,
    output: Output,
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
        if is_hop_by_hop(name) || options.contains(name) {
            continue;
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value.of(buf));
        out.extend_from_slice(b"\r\n");
    }
    match (output, rh.framing) {
        (Output::Events { chunked: true }, _) => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        (Output::Events { chunked: false } | Output::Plain, _) => {}
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
