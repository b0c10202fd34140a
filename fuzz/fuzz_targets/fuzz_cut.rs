//! The usage strip's event cut (with its repeat memo): never panics, reads
//! every event as the SSE framer alone reads the stream (the same usage,
//! completion, texts, event types and count), and its output does not depend
//! on how the stream is split (the first byte picks a split point; inputs of
//! at most 512 bytes are also fed one byte at a time). The second byte's low
//! bit picks the dialect.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_contract::codec::delta::DeltaReader;
use sluice_contract::codec::sse::{SseEvent, SseFramer};
use sluice_contract::codec::usage::UsageScanner;
use sluice_contract::dialect::Dialect;
use sluice_contract::cut::{EventCut, EventReader};
use std::ops::Range;

/// What a read of a stream found.
#[derive(Debug, Clone, PartialEq)]
struct Read {
    usage: Option<(u64, u64)>,
    completed: bool,
    texts: Vec<String>,
    kinds: Vec<Vec<u8>>,
    events: u64,
}

/// Collects texts and event types as the relay's counter reads them.
struct Collect {
    dialect: Dialect,
    deltas: DeltaReader,
    texts: Vec<String>,
    kinds: Vec<Vec<u8>>,
}

impl EventReader for Collect {
    fn event(&mut self, ev: &SseEvent<'_>, _: bool) -> Option<Range<usize>> {
        self.kinds.push(ev.event.to_vec());
        let texts = &mut self.texts;
        self.deltas.for_each_text(self.dialect, ev, |t| texts.push(t.to_owned()))
    }
    fn repeat(&mut self, ev: &SseEvent<'_>, text: Range<usize>, escaped: bool) {
        self.kinds.push(ev.event.to_vec());
        let texts = &mut self.texts;
        self.deltas
            .for_each_text_at(self.dialect, ev, text, escaped, |t| texts.push(t.to_owned()));
    }
}

fn usage_of(u: &UsageScanner) -> Option<(u64, u64)> {
    u.usage().map(|u| (u.input_tokens, u.output_tokens))
}

/// The cut over `parts`: what it read and output (`output`: `feed`), or what
/// it read alone (`read`, raw output: the output is left empty).
fn cut<'a>(dialect: Dialect, parts: impl IntoIterator<Item = &'a [u8]>, output: bool) -> (Read, Vec<u8>) {
    let mut cut = EventCut::default();
    let mut framer = SseFramer::new(1 << 16);
    let mut usage = UsageScanner::new(dialect);
    let mut reader = Collect {
        dialect,
        deltas: DeltaReader::default(),
        texts: Vec::new(),
        kinds: Vec::new(),
    };
    let mut out = Vec::new();
    for part in parts {
        if output {
            cut.feed(part, &mut framer, &mut usage, &mut reader, &mut out);
        } else {
            cut.read(part, &mut framer, &mut usage, &mut reader);
        }
    }
    if output {
        cut.finish(&mut out);
    }
    let read = Read {
        usage: usage_of(&usage),
        completed: usage.completed(),
        texts: reader.texts,
        kinds: reader.kinds,
        events: framer.events(),
    };
    (read, out)
}

fn reference(dialect: Dialect, stream: &[u8]) -> Read {
    let mut framer = SseFramer::new(1 << 16);
    let mut usage = UsageScanner::new(dialect);
    let mut deltas = DeltaReader::default();
    let (mut texts, mut kinds) = (Vec::new(), Vec::new());
    framer.feed(stream, |ev| {
        usage.on_event(ev);
        kinds.push(ev.event.to_vec());
        deltas.for_each_text(dialect, ev, |t| texts.push(t.to_owned()));
    });
    Read {
        usage: usage_of(&usage),
        completed: usage.completed(),
        texts,
        kinds,
        events: framer.events(),
    }
}

fuzz_target!(|data: &[u8]| {
    let [first, second, stream @ ..] = data else {
        return;
    };
    let dialect = if second & 1 == 0 { Dialect::OpenAi } else { Dialect::Anthropic };
    let (read, out) = cut(dialect, [stream], true);
    assert_eq!(read, reference(dialect, stream));
    let at = usize::from(*first) * stream.len() / 255;
    let (a, b) = stream.split_at(at);
    assert_eq!(cut(dialect, [a, b], true), (read.clone(), out.clone()), "split at {at}");
    assert_eq!(cut(dialect, [a, b], false).0, read, "read alone, split at {at}");
    if stream.len() <= 512 {
        assert_eq!(cut(dialect, stream.chunks(1), true).1, out, "byte at a time");
    }
});
