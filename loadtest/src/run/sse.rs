//! An incremental Server-Sent Events framer (the WHATWG event-stream format):
//! lines end in LF, CRLF or CR, even when split across reads; `:` lines are
//! comments; an empty line dispatches the event. Only `event` and `data`
//! fields matter here. Buffers are reused from event to event.

/// Frames SSE events from a byte stream fed in arbitrary pieces.
#[derive(Debug)]
pub(crate) struct SseFramer {
    /// A line that began in an earlier read and has not ended yet.
    partial: Vec<u8>,
    event: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    /// The last read ended in CR: an LF at the start of the next is its pair.
    skip_lf: bool,
    /// Lines and data longer than this are cut (and `overflowed` is set).
    max: usize,
    overflowed: bool,
}

impl SseFramer {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            partial: Vec::new(),
            event: Vec::new(),
            data: Vec::new(),
            has_data: false,
            skip_lf: false,
            max,
            overflowed: false,
        }
    }

    /// Whether some line or event exceeded the size limit.
    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Feeds bytes; calls `on_event(event_name, data)` for each complete event.
    pub(crate) fn feed(&mut self, mut input: &[u8], mut on_event: impl FnMut(&[u8], &[u8])) {
        if self.skip_lf {
            self.skip_lf = false;
            if let [b'\n', rest @ ..] = input {
                input = rest;
            }
        }
        while let Some(pos) = memchr::memchr2(b'\n', b'\r', input) {
            let is_cr = input[pos] == b'\r';
            // A CR at the very end of this read may be the first half of a CRLF.
            self.skip_lf = is_cr && pos + 1 == input.len();
            let next = if is_cr && input.get(pos + 1) == Some(&b'\n') {
                pos + 2
            } else {
                pos + 1
            };
            if self.partial.is_empty() {
                self.line(&input[..pos], &mut on_event);
            } else {
                self.push_partial(&input[..pos]);
                let line = std::mem::take(&mut self.partial);
                self.line(&line, &mut on_event);
                self.partial = line;
                self.partial.clear();
            }
            input = &input[next..];
        }
        self.push_partial(input);
    }

    fn push_partial(&mut self, bytes: &[u8]) {
        let room = self.max.saturating_sub(self.partial.len());
        if bytes.len() > room {
            self.overflowed = true;
        }
        self.partial.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn line(&mut self, line: &[u8], on_event: &mut impl FnMut(&[u8], &[u8])) {
        if line.is_empty() {
            if self.has_data || !self.event.is_empty() {
                on_event(&self.event, &self.data);
            }
            self.event.clear();
            self.data.clear();
            self.has_data = false;
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (name, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value);
            }
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.has_data = true;
                let room = self.max.saturating_sub(self.data.len());
                if value.len() > room {
                    self.overflowed = true;
                }
                self.data.extend_from_slice(&value[..value.len().min(room)]);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(pieces: &[&[u8]]) -> Vec<(String, String)> {
        let mut f = SseFramer::new(1 << 20);
        let mut out = Vec::new();
        for p in pieces {
            f.feed(p, |e, d| {
                out.push((
                    String::from_utf8_lossy(e).into(),
                    String::from_utf8_lossy(d).into(),
                ))
            });
        }
        out
    }

    #[test]
    fn every_line_ending_and_every_split() {
        let stream = b": keepalive\r\nevent: a\r\ndata: 1\r\ndata:2\r\n\r\ndata: x\n\nevent: b\rdata: y\r\r";
        let want = vec![
            ("a".to_string(), "1\n2".to_string()),
            (String::new(), "x".to_string()),
            ("b".to_string(), "y".to_string()),
        ];
        assert_eq!(frame(&[stream]), want);
        for split in 0..=stream.len() {
            assert_eq!(
                frame(&[&stream[..split], &stream[split..]]),
                want,
                "split {split}"
            );
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(frame(&bytes), want);
    }

    #[test]
    fn cr_then_lf_in_the_next_read_is_one_line_end() {
        assert_eq!(
            frame(&[b"data: a\r", b"\n\r", b"\n"]),
            vec![(String::new(), "a".to_string())]
        );
    }

    #[test]
    fn unterminated_event_is_not_dispatched() {
        assert!(frame(&[b"data: a\n"]).is_empty());
    }

    #[test]
    fn oversized_lines_are_cut_and_flagged() {
        let mut f = SseFramer::new(4);
        let mut got = Vec::new();
        f.feed(b"data: 123456789\n\n", |_, d| got.push(d.to_vec()));
        assert!(f.overflowed());
        assert_eq!(got, vec![b"1234".to_vec()]);
    }
}
