//! The repeat memo: most events of a stream are the previous one with
//! another text.
//!
//! A provider's text deltas differ only in the text: OpenAI repeats `data: `,
//! id, model, index and the nulls after the delta in every chunk, Anthropic
//! its `event:` line, type and index. So when an event was cut, framed and
//! read whole, changed nothing for the usage scanner and carried exactly one
//! text, its bytes are kept with the places of its data, its type and that
//! text's string token. An event that starts with the same bytes up to the
//! token's opening quote, has a string token there and the same bytes after
//! its closing quote is that event with one string replaced by another:
//!
//! - its lines are the same lines (a string token holds no line end), so the
//!   framer would dispatch it with the same type and its data at the same
//!   place, ending as the kept one did;
//! - its JSON has the same keys and structure, so it is inert to the usage
//!   scanner too (a string deep in a delta carries no usage and does not
//!   end a stream);
//! - the delta reader looks at that token only to see that it is a string,
//!   so its text is the new token.
//!
//! Such an event costs two comparisons and one string scan instead of the
//! line search, framing, usage search and JSON reading. (The delta reader's
//! shape memo, `codec/delta/skim/shape.rs`, does the same for the JSON alone,
//! for the events this memo does not keep.) Only events with LF
//! line ends are kept (a CR would make the cut's line state matter), and
//! only those whose type and data lie in the event's own bytes, each before
//! and around the token as the framer found them.

use super::SseEvent;
use crate::codec::delta::token_replaced;
use std::ops::Range;

/// The last event learned; empty until one is.
#[derive(Debug, Default)]
pub(super) struct Repeat {
    /// The event's bytes, through its blank line.
    bytes: Vec<u8>,
    /// Where its text's string token lies (quotes included).
    text: Range<usize>,
    /// Where its data starts, and how many bytes follow the data's end.
    data_start: usize,
    data_tail: usize,
    /// Where its type lies (empty: none).
    kind: Range<usize>,
}

/// An event at the start of the input that repeats the learned one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fit {
    /// Its length, through its blank line.
    pub(super) len: usize,
    /// Where its data and its type lie in it.
    pub(super) data: Range<usize>,
    pub(super) kind: Range<usize>,
    /// Where its text's string token lies in the data, and whether the
    /// token has escapes.
    pub(super) text: Range<usize>,
    pub(super) escaped: bool,
}

impl Fit {
    /// The event as the framer would dispatch it from `input`.
    pub(super) fn event<'a>(&self, input: &'a [u8]) -> SseEvent<'a> {
        SseEvent {
            event: &input[self.kind.clone()],
            data: &input[self.data.clone()],
        }
    }
}

impl Repeat {
    /// Longer events are not kept.
    pub(super) const MAX: usize = 2048;

    /// The event at the start of `input`, if it repeats the learned one and
    /// lies whole in `input`.
    pub(super) fn fits(&self, input: &[u8]) -> Option<Fit> {
        if self.bytes.is_empty() {
            return None;
        }
        let (close, escaped) = token_replaced(&self.bytes, self.text.clone(), input)?;
        let open = self.text.start;
        let len = close + (self.bytes.len() - self.text.end);
        Some(Fit {
            len,
            data: self.data_start..len - self.data_tail,
            kind: self.kind.clone(),
            text: open - self.data_start..close - self.data_start,
            escaped,
        })
    }

    /// Keeps `event` (its whole bytes), which the framer dispatched as `ev`
    /// and which has one text at `text` in `ev.data`, when it can be
    /// repeated (see the module docs). Returns whether it was kept.
    pub(super) fn learn(&mut self, event: &[u8], ev: &SseEvent<'_>, text: Range<usize>) -> bool {
        if event.len() > Self::MAX || !event.ends_with(b"\n\n") || memchr::memchr(b'\r', event).is_some() {
            return false;
        }
        let Some(data) = within(event, ev.data) else {
            return false;
        };
        let kind = match ev.event {
            [] => 0..0,
            kind => match within(event, kind) {
                Some(k) => k,
                None => return false,
            },
        };
        let token = data.start + text.start..data.start + text.end;
        // The token inside the data, the type before it.
        if text.end > ev.data.len() || kind.end > token.start {
            return false;
        }
        self.bytes.clear();
        self.bytes.extend_from_slice(event);
        self.text = token;
        self.data_start = data.start;
        self.data_tail = event.len() - data.end;
        self.kind = kind;
        true
    }
}

/// Where `part` lies in `whole`, if it is a slice of it.
fn within(whole: &[u8], part: &[u8]) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= whole.len()).then_some(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &[u8] =
        b"data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n";

    fn learned() -> Repeat {
        let mut r = Repeat::default();
        let data = &EVENT[6..EVENT.len() - 2];
        let ev = SseEvent { event: b"", data };
        let at = memchr::memmem::find(data, b"\"Hi\"").unwrap();
        assert!(r.learn(EVENT, &ev, at..at + 4));
        r
    }

    #[test]
    fn an_event_with_another_text_fits() {
        let r = learned();
        let next = b"data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\" there\\n\"}}],\"usage\":null}\n\ndata: [DONE]\n\n";
        let fit = r.fits(next).unwrap();
        let ev = fit.event(next);
        assert_eq!(&next[..fit.len], &next[..next.len() - 14]);
        assert_eq!(ev.event, b"");
        assert_eq!(ev.data, &next[6..fit.len - 2]);
        assert_eq!(&ev.data[fit.text.clone()], b"\" there\\n\"");
        assert!(fit.escaped);
    }

    #[test]
    fn anything_else_does_not() {
        let r = learned();
        for other in [
            &b"data: {\"id\":\"d\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n"[..],
            b"data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":{}}\n\n",
            b"data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"a\nb\"}}],\"usage\":null}\n\n",
            b"data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"a\\qb\"}}],\"usage\":null}\n\n",
            b"data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":null}}],\"usage\":null}\n\n",
            b"data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n",
            b"data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\r\n\r\n",
            b"data: {\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"",
        ] {
            assert_eq!(r.fits(other), None, "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn only_plain_events_are_learned() {
        let mut r = Repeat::default();
        let crlf = b"data: {\"c\":\"x\"}\r\n\r\n";
        let ev = SseEvent {
            event: b"",
            data: &crlf[6..crlf.len() - 4],
        };
        assert!(!r.learn(crlf, &ev, 5..8));
        // Data the framer copied (two data lines) is not in the event.
        let two = b"data: {\"c\":\ndata: \"x\"}\n\n";
        let joined = b"{\"c\":\n\"x\"}".to_vec();
        let ev = SseEvent {
            event: b"",
            data: &joined,
        };
        assert!(!r.learn(two, &ev, 6..9));
        assert_eq!(r.fits(b"data: {\"c\":\"y\"}\n\n"), None);
    }

    #[test]
    fn the_type_comes_along() {
        let mut r = Repeat::default();
        let event = b"event: content_block_delta\ndata: {\"delta\":{\"text\":\"a\"}}\n\n";
        let data = &event[33..event.len() - 2];
        let ev = SseEvent {
            event: &event[7..26],
            data,
        };
        assert!(r.learn(event, &ev, 17..20));
        let next = b"event: content_block_delta\ndata: {\"delta\":{\"text\":\"bcd\"}}\n\n";
        let fit = r.fits(next).unwrap();
        let ev = fit.event(next);
        assert_eq!(ev.event, b"content_block_delta");
        assert_eq!(ev.data, b"{\"delta\":{\"text\":\"bcd\"}}");
        assert_eq!(&ev.data[fit.text], b"\"bcd\"");
    }
}
