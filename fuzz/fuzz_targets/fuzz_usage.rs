//! Usage scanning: never panics on any event data or body, and a stream
//! framed in two pieces (split where the first input byte says) gives the
//! same usage, completion and usage-only flags as the whole stream, in both
//! dialects.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_contract::codec::sse::{SseEvent, SseFramer};
use sluice_contract::codec::usage::UsageScanner;
use sluice_contract::dialect::Dialect;
use sluice_contract::record::Usage;

fn scan<'a>(dialect: Dialect, parts: impl IntoIterator<Item = &'a [u8]>) -> (Option<Usage>, bool, Vec<bool>) {
    let mut framer = SseFramer::new(1 << 16);
    let mut scanner = UsageScanner::new(dialect);
    let mut flags = Vec::new();
    for part in parts {
        framer.feed(part, |ev| {
            scanner.on_event(ev);
            flags.push(scanner.usage_only_event());
        });
    }
    (scanner.usage(), scanner.completed(), flags)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let at = usize::from(first) * stream.len() / 255;
    let (a, b) = stream.split_at(at);
    for dialect in [Dialect::OpenAi, Dialect::Anthropic] {
        assert_eq!(scan(dialect, [a, b]), scan(dialect, [stream]), "split at {at}");
        // The raw bytes as one event's data and as a whole JSON body.
        let mut s = UsageScanner::new(dialect);
        s.on_event(&SseEvent {
            event: b"",
            data: stream,
        });
        s.on_event(&SseEvent {
            event: b"message_delta",
            data: stream,
        });
        s.on_json_body(stream);
        let _ = (s.usage(), s.completed(), s.usage_only_event());
    }
});
