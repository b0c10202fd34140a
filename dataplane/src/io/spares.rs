//! Each worker's spare request buffers.
//!
//! Every forwarded request needs a buffer for the head it sends upstream
//! and one to read the answer into (16 KiB: past the allocator's fast
//! path), and a relay that frames its output (the usage strip, HTTP/1.0
//! clients) needs a buffer for what it sends and a list of where the
//! payload lies in each read. Allocated, and grown from empty, for every
//! request, they cost a dozen allocations a request and most of the
//! allocator's time; kept per worker and handed from one request to the
//! next, none once the worker is warm. Bounded in count and in the capacity
//! kept, so that a burst of large responses leaves little memory behind.
//! Buffers come back cleared; no lock: each worker has its own.

use bytes::BytesMut;
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
    reads: Vec<BytesMut>,
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

    /// An empty read buffer with room for `want` bytes. A kept one takes
    /// back its whole allocation when nothing else holds a part of it any
    /// more (the relay's reads were frozen and sent), else grows.
    pub fn read_buf(&mut self, want: usize) -> BytesMut {
        match self.reads.pop() {
            Some(mut buf) => {
                buf.reserve(want);
                buf
            }
            None => BytesMut::with_capacity(want),
        }
    }

    /// Takes a read buffer back for a later request (or drops it).
    pub fn put_read_buf(&mut self, mut buf: BytesMut) {
        if buf.capacity() <= MAX_KEPT_BYTES && self.reads.len() < KEEP {
            buf.clear();
            self.reads.push(buf);
        }
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
            s.put_read_buf(BytesMut::with_capacity(16));
        }
        assert_eq!(s.bytes.len(), KEEP);
        assert_eq!(s.reads.len(), KEEP);
    }

    #[test]
    fn a_read_buffer_takes_its_memory_back_once_its_reads_are_gone() {
        let mut s = Spares::default();
        let mut buf = s.read_buf(16 * 1024);
        let start = buf.as_ptr();
        buf.extend_from_slice(&[7; 10_000]);
        drop(buf.split().freeze());
        s.put_read_buf(buf);
        // Nothing else holds it: the same memory, from its start.
        let mut buf = s.read_buf(16 * 1024);
        assert_eq!(buf.as_ptr(), start);
        assert!(buf.is_empty() && buf.capacity() >= 16 * 1024);
        // A read still held elsewhere keeps its bytes; the buffer grows
        // into new memory instead.
        buf.extend_from_slice(&[7; 10_000]);
        let read = buf.split().freeze();
        s.put_read_buf(buf);
        let mut buf = s.read_buf(16 * 1024);
        buf.extend_from_slice(&[9; 16 * 1024]);
        assert!(read.iter().all(|&b| b == 7));
    }
}
