//! What one exchange came to, whichever protocol carried it: the
//! response's timings and verdict, and where its body goes.

use std::time::Instant;

use super::request::Api;
use super::sse_metrics::{json_usage, StreamMetrics, Tally};
use super::stats::ErrorKind;

/// Largest non-streamed body kept for parsing.
const MAX_JSON: usize = 8 << 20;

/// Nanoseconds since the run started, from one shared `Instant`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock(pub(crate) Instant);

impl Clock {
    pub(crate) fn now_ns(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// What came back for one request.
#[derive(Debug, Default)]
pub(crate) struct Response {
    pub(crate) head_ns: Option<u64>,
    pub(crate) end_ns: u64,
    pub(crate) error: Option<ErrorKind>,
    pub(crate) stream: Option<Tally>,
    pub(crate) json_tokens: Option<u64>,
    /// The connection may carry another request.
    pub(crate) reusable: bool,
}

/// The exchange failed before any byte of a response arrived on a reused
/// connection: the server had closed it while idle; retry on a new one.
#[derive(Debug)]
pub(crate) struct Stale;

/// Where a response body goes: the SSE metrics, a JSON buffer, or nowhere.
pub(crate) enum Sink {
    Stream(StreamMetrics),
    Json(Vec<u8>, bool),
    Discard,
}

impl Sink {
    /// The sink for a response of this status and kind.
    pub(crate) fn for_response(ok_status: bool, event_stream: bool, api: Api) -> Sink {
        if !ok_status {
            Sink::Discard
        } else if event_stream {
            Sink::Stream(StreamMetrics::new(api))
        } else {
            Sink::Json(Vec::new(), false)
        }
    }

    /// Body bytes that arrived at `now`.
    pub(crate) fn feed(&mut self, data: &[u8], now: u64) {
        match self {
            Sink::Stream(m) => m.feed(data, now),
            Sink::Json(buf, overflow) => {
                if buf.len() + data.len() > MAX_JSON {
                    *overflow = true;
                } else {
                    buf.extend_from_slice(data);
                }
            }
            Sink::Discard => {}
        }
    }

    /// What the body said, into `resp` (an error already there stays).
    pub(crate) fn finish(self, api: Api, resp: &mut Response) {
        match self {
            Sink::Stream(m) => {
                let t = m.tally;
                if resp.error.is_none() {
                    resp.error = if t.malformed {
                        Some(ErrorKind::Protocol)
                    } else if t.error_event {
                        Some(ErrorKind::StreamError)
                    } else if !t.done {
                        Some(ErrorKind::Truncated)
                    } else {
                        None
                    };
                }
                resp.stream = Some(t);
            }
            Sink::Json(bytes, overflow) => {
                if resp.error.is_none() {
                    match json_usage(api, &bytes) {
                        Ok(tokens) if !overflow => resp.json_tokens = tokens,
                        _ => resp.error = Some(ErrorKind::Protocol),
                    }
                }
            }
            Sink::Discard => {}
        }
    }
}

/// `resp` failed with `kind`, now.
pub(crate) fn fail(mut resp: Response, kind: ErrorKind, clock: Clock) -> Response {
    resp.error = Some(kind);
    resp.end_ns = clock.now_ns();
    resp.reusable = false;
    resp
}
