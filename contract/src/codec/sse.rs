//! Incremental Server-Sent Events framer (WHATWG HTML, "event stream
//! interpretation").
//!
//! The framer is fed the decoded bytes of a `text/event-stream` body as they
//! arrive and calls back once per dispatched event with its type and data.
//!
//! Invariants:
//! - No I/O, never panics, and bytes are bytes: nothing is assumed to be
//!   UTF-8, and a line is only interpreted once it is whole, so a character
//!   (or a CRLF) split across feeds is handled like any other byte.
//! - Split invariance: feeding a stream in any number of pieces dispatches the
//!   same events, in the same order, as feeding it whole.
//! - Lines end in CRLF, LF or CR; a CR ending one feed and an LF starting the
//!   next are one line end. One leading UTF-8 BOM is skipped. `:` lines are
//!   comments. `data` lines are joined by `\n`; `event` sets the type; `id`,
//!   `retry` and unknown fields are ignored (the gateway has no use for them).
//!   A blank line dispatches the event if it has data, and resets it either
//!   way. An unfinished event is held until more input arrives.
//! - Memory is bounded by `max_event_bytes`: the carried partial line, the
//!   joined data and the event type each stay within it (capacity included).
//!   A non-comment line longer than the bound, or data growing past it, drops
//!   the whole event; it is counted in [`SseFramer::oversized`] at its blank
//!   line, and framing carries on with the next event.
//! - No allocation per feed in steady state: three buffers (partial line,
//!   data, event type) are reused with their capacity. An event whose data is
//!   a single line lying wholly inside one `input` is handed out as a slice of
//!   that input and not copied at all (the common case for OpenAI and
//!   Anthropic streams read in kilobyte-sized pieces).

use std::mem;

/// The UTF-8 byte order mark, skipped once at the start of a stream.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The bound used by [`SseFramer::default`].
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

/// One dispatched event, borrowed from the framer or from the fed input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The event type; empty when no `event:` field was given.
    pub event: &'a [u8],
    /// The `data` lines joined by `\n`, without a final `\n`.
    pub data: &'a [u8],
}

/// Where a field value of the current event lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    /// Nothing yet.
    Empty,
    /// `input[start..end]` of the current feed.
    Input { start: usize, end: usize },
    /// The framer's own buffer.
    Buf,
}

/// Incremental SSE framer. See the module docs for its invariants.
#[derive(Clone, Debug)]
pub struct SseFramer {
    max: usize,
    /// The unfinished line carried over from earlier feeds.
    carry: Vec<u8>,
    /// The current event's data when it does not lie in the current input.
    data: Vec<u8>,
    /// The current event's type when it does not lie in the current input.
    event: Vec<u8>,
    data_src: Held,
    event_src: Held,
    /// The current event went over the bound and will be dropped.
    poisoned: bool,
    /// The rest of the current line is skipped (it went over the bound).
    discarding: bool,
    /// The last feed ended in CR: an LF starting the next one is part of it.
    pending_cr: bool,
    /// Nothing but (part of) a BOM has been seen yet.
    at_start: bool,
    /// BOM bytes matched so far while `at_start`.
    bom_matched: usize,
    events: u64,
    oversized: u64,
}

impl Default for SseFramer {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseFramer {
    /// A framer for a new stream. `max_event_bytes` bounds one line and one
    /// event's joined data. Nothing is allocated until input needs it.
    pub fn new(max_event_bytes: usize) -> Self {
        SseFramer {
            max: max_event_bytes,
            carry: Vec::new(),
            data: Vec::new(),
            event: Vec::new(),
            data_src: Held::Empty,
            event_src: Held::Empty,
            poisoned: false,
            discarding: false,
            pending_cr: false,
            at_start: true,
            bom_matched: 0,
            events: 0,
            oversized: 0,
        }
    }

    /// Events dispatched so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Events dropped so far because they exceeded the bound.
    pub fn oversized(&self) -> u64 {
        self.oversized
    }

    /// Whether an unfinished line or event is held (the stream so far does
    /// not end on an event boundary).
    pub fn has_pending(&self) -> bool {
        !self.carry.is_empty()
            || self.discarding
            || self.poisoned
            || self.data_src != Held::Empty
            || self.event_src != Held::Empty
            || self.bom_matched != 0
    }

    /// Counts an event its caller dispatched without feeding it: a whole
    /// event of `len` bytes, at a line start, that repeats one this framer
    /// dispatched with other bytes in place of one JSON string token (no
    /// line ends in it). Feeding it would leave the framer as it leaves it
    /// now, one event further on. Returns false, counting nothing, when the
    /// framer is not between events (mid-line, mid-event, still at the
    /// stream's start) or the event is over the bound; the caller then feeds
    /// it.
    pub fn dispatch_repeat(&mut self, len: usize) -> bool {
        if self.at_start || self.has_pending() || len > self.max {
            return false;
        }
        // A CR that ended the last feed only matters to an LF after it, and
        // a repeated event does not start with one.
        self.pending_cr = false;
        self.events += 1;
        true
    }

    /// Makes the framer ready for the next stream, keeping its buffers'
    /// capacity. The counters start again from zero.
    pub fn reset(&mut self) {
        self.carry.clear();
        self.clear_event();
        self.discarding = false;
        self.pending_cr = false;
        self.at_start = true;
        self.bom_matched = 0;
        self.events = 0;
        self.oversized = 0;
    }

    /// Feeds decoded body bytes; calls `on_event` for every event dispatched.
    pub fn feed(&mut self, input: &[u8], mut on_event: impl FnMut(&SseEvent<'_>)) {
        let Some(&first) = input.first() else { return };
        let mut pos = 0;
        if mem::take(&mut self.pending_cr) && first == b'\n' {
            pos = 1;
        }
        if self.at_start {
            let want = BOM.get(self.bom_matched..).unwrap_or_default();
            let n = want.iter().zip(input).take_while(|(a, b)| a == b).count();
            if n == want.len() {
                pos = n;
            } else if n == input.len() {
                // All of it may still be a BOM: wait for the next byte.
                self.bom_matched += n;
                return;
            } else {
                // Not a BOM after all: what was held starts the first line.
                let held = BOM.get(..self.bom_matched).unwrap_or_default();
                self.append_partial(held);
            }
            self.at_start = false;
            self.bom_matched = 0;
        }
        while let Some(rest) = input.get(pos..).filter(|r| !r.is_empty()) {
            let Some(i) = memchr::memchr2(b'\n', b'\r', rest) else {
                self.append_partial(rest);
                break;
            };
            let end = pos + i;
            let mut next = end + 1;
            if rest.get(i) == Some(&b'\r') {
                match input.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.pending_cr = true,
                }
            }
            self.end_line(input, pos, end, &mut on_event);
            pos = next;
        }
        // The input is about to go away: copy what the current event keeps of it.
        self.materialize_data(input);
        if let Held::Input { start, end } = self.event_src {
            self.event.clear();
            let value = input.get(start..end).unwrap_or_default();
            extend_bounded(&mut self.event, value, self.max);
            self.event_src = Held::Buf;
        }
    }

    /// A line ended at `input[end]`; it started at `input[start]`, after
    /// whatever is carried.
    fn end_line<F: FnMut(&SseEvent<'_>)>(
        &mut self,
        input: &[u8],
        start: usize,
        end: usize,
        on_event: &mut F,
    ) {
        let tail = input.get(start..end).unwrap_or_default();
        if mem::take(&mut self.discarding) {
            return;
        }
        if self.carry.is_empty() {
            if tail.len() > self.max {
                self.oversized_line(tail.first().copied());
            } else {
                self.process_line(input, tail, Some(start), on_event);
            }
            return;
        }
        if self.carry.len() + tail.len() > self.max {
            let first = self.carry.first().copied();
            self.carry.clear();
            self.oversized_line(first);
            return;
        }
        // Taken out so the line can be read while the event is updated; the
        // buffer (and its capacity) goes back afterwards.
        let mut line = mem::take(&mut self.carry);
        extend_bounded(&mut line, tail, self.max);
        self.process_line(input, &line, None, on_event);
        line.clear();
        self.carry = line;
    }

    /// Interprets one whole line. `at` is its offset in `input` when it lies
    /// there, so values can be held without copying.
    fn process_line<F: FnMut(&SseEvent<'_>)>(
        &mut self,
        input: &[u8],
        line: &[u8],
        at: Option<usize>,
        on_event: &mut F,
    ) {
        let (name, value_start) = match memchr::memchr(b':', line) {
            Some(0) => return, // a comment
            Some(c) => (
                line.get(..c).unwrap_or_default(),
                c + 1 + usize::from(line.get(c + 1) == Some(&b' ')),
            ),
            None if line.is_empty() => return self.dispatch(input, on_event),
            None => (line, line.len()),
        };
        let value = line.get(value_start..).unwrap_or_default();
        let at = at.map(|a| a + value_start);
        match name {
            b"data" => self.push_data(input, value, at),
            b"event" => match at {
                Some(start) => {
                    self.event_src = Held::Input {
                        start,
                        end: start + value.len(),
                    }
                }
                None => {
                    self.event.clear();
                    extend_bounded(&mut self.event, value, self.max);
                    self.event_src = Held::Buf;
                }
            },
            // `id`, `retry` and unknown fields change nothing the gateway reads.
            _ => {}
        }
    }

    fn push_data(&mut self, input: &[u8], value: &[u8], at: Option<usize>) {
        if self.poisoned {
            return;
        }
        if let (Held::Empty, Some(start)) = (self.data_src, at) {
            // The line is within the bound, so the held data is too.
            self.data_src = Held::Input {
                start,
                end: start + value.len(),
            };
            return;
        }
        self.materialize_data(input);
        let sep = usize::from(self.data_src != Held::Empty);
        if self.data.len() + sep + value.len() > self.max {
            return self.poison();
        }
        if sep == 1 {
            extend_bounded(&mut self.data, b"\n", self.max);
        }
        extend_bounded(&mut self.data, value, self.max);
        self.data_src = Held::Buf;
    }

    fn materialize_data(&mut self, input: &[u8]) {
        if let Held::Input { start, end } = self.data_src {
            self.data.clear();
            extend_bounded(
                &mut self.data,
                input.get(start..end).unwrap_or_default(),
                self.max,
            );
            self.data_src = Held::Buf;
        }
    }

    fn dispatch<F: FnMut(&SseEvent<'_>)>(&mut self, input: &[u8], on_event: &mut F) {
        if self.poisoned {
            self.oversized += 1;
        } else if self.data_src != Held::Empty {
            self.events += 1;
            let ev = SseEvent {
                event: held(self.event_src, &self.event, input),
                data: held(self.data_src, &self.data, input),
            };
            on_event(&ev);
        }
        self.clear_event();
    }

    /// Appends an unfinished line's bytes to the carry, or starts discarding
    /// the line once it is over the bound.
    fn append_partial(&mut self, bytes: &[u8]) {
        if self.discarding || bytes.is_empty() {
            return;
        }
        if self.carry.len() + bytes.len() > self.max {
            let first = self.carry.first().or(bytes.first()).copied();
            self.carry.clear();
            self.discarding = true;
            self.oversized_line(first);
            return;
        }
        extend_bounded(&mut self.carry, bytes, self.max);
    }

    /// A line went over the bound. A comment is simply skipped; any other
    /// line may have been a field the event needs, so the event is dropped.
    fn oversized_line(&mut self, first: Option<u8>) {
        if first != Some(b':') {
            self.poison();
        }
    }

    fn poison(&mut self) {
        self.poisoned = true;
        self.data.clear();
        self.data_src = Held::Empty;
    }

    fn clear_event(&mut self) {
        self.data.clear();
        self.event.clear();
        self.data_src = Held::Empty;
        self.event_src = Held::Empty;
        self.poisoned = false;
    }
}

fn held<'a>(h: Held, buf: &'a [u8], input: &'a [u8]) -> &'a [u8] {
    match h {
        Held::Empty => &[],
        Held::Input { start, end } => input.get(start..end).unwrap_or_default(),
        Held::Buf => buf,
    }
}

/// Appends `bytes`, growing the capacity geometrically but never past `max`
/// (unless the contents themselves need more, which callers rule out).
fn extend_bounded(buf: &mut Vec<u8>, bytes: &[u8], max: usize) {
    let need = buf.len() + bytes.len();
    if need > buf.capacity() {
        let target = buf
            .capacity()
            .saturating_mul(2)
            .max(need)
            .min(max.max(need))
            .max(64.min(max));
        buf.reserve_exact(target.saturating_sub(buf.len()));
    }
    buf.extend_from_slice(bytes);
}

#[cfg(test)]
pub(crate) mod tests;
