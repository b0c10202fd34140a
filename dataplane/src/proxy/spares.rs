//! Each worker's spare relay buffers.
//!
//! A relay that frames its output (the usage strip, HTTP/1.0 clients) needs
//! a buffer for what it sends and a list of where the payload lies in each
//! read. Grown from empty for every response, they cost a dozen
//! reallocations a request; kept per worker and handed from one response to
//! the next, none once the worker is warm. Bounded in count and in the
//! capacity kept, so that a burst of large responses leaves no large
//! memory behind. No lock: each worker has its own.

use std::ops::Range;

/// Buffers kept, of each kind.
const KEEP: usize = 64;
/// A buffer that grew past this is let go rather than kept.
const MAX_KEPT_BYTES: usize = 64 * 1024;
/// A range list that grew past this many entries is let go.
const MAX_KEPT_RANGES: usize = 4096;

/// Spare buffers of one worker.
#[derive(Debug, Default)]
pub struct Spares {
    bytes: Vec<Vec<u8>>,
    ranges: Vec<Vec<Range<usize>>>,
}

impl Spares {
    /// An empty byte buffer, with the capacity a previous response left.
    pub fn bytes(&mut self) -> Vec<u8> {
        self.bytes.pop().unwrap_or_default()
    }

    /// An empty range list, likewise.
    pub fn ranges(&mut self) -> Vec<Range<usize>> {
        self.ranges.pop().unwrap_or_default()
    }

    /// Takes `buf` back for a later response (or drops it).
    pub fn put_bytes(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() > 0 && buf.capacity() <= MAX_KEPT_BYTES && self.bytes.len() < KEEP {
            buf.clear();
            self.bytes.push(buf);
        }
    }

    /// Takes `list` back for a later response (or drops it).
    pub fn put_ranges(&mut self, mut list: Vec<Range<usize>>) {
        if list.capacity() > 0 && list.capacity() <= MAX_KEPT_RANGES && self.ranges.len() < KEEP {
            list.clear();
            self.ranges.push(list);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_empty_with_their_capacity() {
        let mut s = Spares::default();
        assert_eq!(s.bytes().capacity(), 0);
        let mut b = Vec::with_capacity(1000);
        b.extend_from_slice(b"secret text");
        s.put_bytes(b);
        let again = s.bytes();
        assert!(again.is_empty() && again.capacity() >= 1000);
        let mut r = Vec::with_capacity(10);
        r.push(0..4);
        s.put_ranges(r);
        let again = s.ranges();
        assert!(again.is_empty() && again.capacity() >= 10);
    }

    #[test]
    fn what_is_kept_is_bounded() {
        let mut s = Spares::default();
        s.put_bytes(Vec::with_capacity(MAX_KEPT_BYTES + 1));
        assert_eq!(s.bytes().capacity(), 0, "an outgrown buffer is let go");
        s.put_ranges(Vec::with_capacity(MAX_KEPT_RANGES + 1));
        assert_eq!(s.ranges().capacity(), 0);
        for _ in 0..KEEP + 10 {
            s.put_bytes(Vec::with_capacity(16));
        }
        assert_eq!(s.bytes.len(), KEEP);
    }
}
