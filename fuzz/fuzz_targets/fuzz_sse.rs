//! SSE framing: never panics, never holds more than the bound, and feeding
//! the stream in two pieces (split where the first input byte says) or byte
//! by byte dispatches exactly what feeding it whole dispatches. The second
//! byte picks the bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_contract::codec::sse::SseFramer;

type Events = Vec<(Vec<u8>, Vec<u8>)>;

fn run<'a>(max: usize, parts: impl IntoIterator<Item = &'a [u8]>) -> (Events, u64, u64, bool) {
    let mut f = SseFramer::new(max);
    let mut events = Vec::new();
    for part in parts {
        f.feed(part, |e| {
            assert!(e.data.len() <= max && e.event.len() <= max);
            events.push((e.event.to_vec(), e.data.to_vec()));
        });
    }
    assert_eq!(f.events(), events.len() as u64);
    (events, f.events(), f.oversized(), f.has_pending())
}

fuzz_target!(|data: &[u8]| {
    let [first, second, stream @ ..] = data else {
        return;
    };
    let max = [0, 1, 7, 16, 64, 256, 4096, 1 << 20][usize::from(second % 8)];
    let at = usize::from(*first) * stream.len() / 255;
    let whole = run(max, [stream]);
    let (a, b) = stream.split_at(at);
    assert_eq!(run(max, [a, b]), whole, "split at {at}");
    if stream.len() <= 512 {
        assert_eq!(run(max, stream.chunks(1)), whole, "byte at a time");
    }
});
