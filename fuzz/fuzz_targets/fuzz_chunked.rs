//! Chunked decoding: never panics, and feeding the body in two pieces (split
//! where the first input byte says) or byte by byte gives exactly what
//! feeding it whole gives.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_contract::codec::chunked::{ChunkedDecoder, ChunkedError};

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    payload: Vec<u8>,
    result: Result<usize, ChunkedError>,
    done: bool,
    payload_len: u64,
}

fn run<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut d = ChunkedDecoder::new();
    let mut payload = Vec::new();
    let mut total = 0;
    let mut result = Ok(0);
    for part in parts {
        match d.feed(part, |p| payload.extend_from_slice(&part[p])) {
            Ok(n) => {
                assert!(n <= part.len());
                total += n;
                result = Ok(total);
                if n < part.len() {
                    assert!(d.is_done(), "short consume without being done");
                    break;
                }
            }
            Err(e) => {
                result = Err(e);
                // Errors are sticky.
                assert_eq!(d.feed(b"0\r\n\r\n", |_| panic!("data after an error")), Err(e));
                break;
            }
        }
    }
    assert_eq!(d.payload_len(), payload.len() as u64);
    Outcome {
        payload,
        result,
        done: d.is_done(),
        payload_len: d.payload_len(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let at = usize::from(first) * body.len() / 255;
    let whole = run([body]);
    let (a, b) = body.split_at(at);
    assert_eq!(run([a, b]), whole, "split at {at}");
    if body.len() <= 512 {
        assert_eq!(run(body.chunks(1)), whole, "byte at a time");
    }
});
