//! Request and response head parsing: never panics; every span lies inside
//! the input; a head that parses keeps parsing the same way with any bytes
//! appended; and a prefix of it is either incomplete or the same head.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_contract::codec::head::{parse_request, parse_response, HeadLimits};

fuzz_target!(|data: &[u8]| {
    let limits = HeadLimits::default();
    let mut headers = Vec::new();
    if let Ok(Some(head)) = parse_request(data, &limits, &mut headers) {
        assert!(head.len <= data.len());
        assert!(head.target.range().end <= head.len);
        for h in &headers {
            assert!(h.name.range().end <= head.len && h.value.range().end <= head.len);
        }
        let mut longer = data.to_vec();
        longer.extend_from_slice(b"trailing bytes of a body");
        let again = parse_request(&longer, &limits, &mut Vec::new());
        assert_eq!(again, Ok(Some(head.clone())));
        // Every prefix is incomplete (never a different head, never an error
        // that the whole did not have).
        let cut = data.len().min(head.len.saturating_sub(1));
        assert_eq!(parse_request(&data[..cut], &limits, &mut Vec::new()), Ok(None));
    }
    let mut headers = Vec::new();
    if let Ok(Some(head)) = parse_response(data, false, 64 * 1024, &mut headers) {
        assert!(head.len <= data.len());
        for h in &headers {
            assert!(h.value.range().end <= head.len);
        }
    }
});
