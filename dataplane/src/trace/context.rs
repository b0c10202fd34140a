//! W3C Trace Context (`traceparent`) and the sampling decision.
//!
//! `traceparent: 00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>`.
//! A malformed header is ignored (a new trace is started), as the
//! recommendation says; an all-zero id is invalid.

/// The ids a request's spans belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace.
    pub trace_id: [u8; 16],
    /// The caller's span (all zero when the trace starts here).
    pub parent_span_id: [u8; 8],
    /// The caller asked for sampling (flag 01); false when there is no caller context.
    pub parent_sampled: bool,
    /// Whether a `traceparent` came from the client.
    pub remote: bool,
}

/// Parses a `traceparent` value; `None` when it is not a valid version-00
/// header (or a later version whose first 55 bytes do not parse).
pub fn parse(value: &[u8]) -> Option<TraceContext> {
    let value = trim(value);
    if value.len() < 55 || value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let version = hex_byte(&value[0..2])?;
    if version == 0xff
        || (version == 0 && value.len() != 55)
        || (version != 0 && value.len() > 55 && value[55] != b'-')
    {
        return None;
    }
    let mut trace_id = [0u8; 16];
    for (i, b) in trace_id.iter_mut().enumerate() {
        *b = hex_byte(&value[3 + 2 * i..5 + 2 * i])?;
    }
    let mut parent_span_id = [0u8; 8];
    for (i, b) in parent_span_id.iter_mut().enumerate() {
        *b = hex_byte(&value[36 + 2 * i..38 + 2 * i])?;
    }
    let flags = hex_byte(&value[53..55])?;
    if trace_id == [0; 16] || parent_span_id == [0; 8] {
        return None;
    }
    Some(TraceContext {
        trace_id,
        parent_span_id,
        parent_sampled: flags & 1 == 1,
        remote: true,
    })
}

/// `00-<trace>-<span>-<flags>`: the header sent upstream.
pub fn format(trace_id: &[u8; 16], span_id: &[u8; 8], sampled: bool) -> [u8; 55] {
    let mut out = [b'-'; 55];
    out[0] = b'0';
    out[1] = b'0';
    put_hex(&mut out[3..35], trace_id);
    put_hex(&mut out[36..52], span_id);
    out[53] = b'0';
    out[54] = if sampled { b'1' } else { b'0' };
    out
}

/// Parent-based ratio sampling: a caller's decision (its sampled flag) is
/// followed; a trace that starts here is sampled when its id's low 8 bytes,
/// as a number, fall below `ratio` of their range (OpenTelemetry's
/// TraceIdRatioBased), so every service sampling by id agrees.
pub fn sampled(ctx: &TraceContext, ratio: f64) -> bool {
    if ctx.remote {
        return ctx.parent_sampled;
    }
    if ratio >= 1.0 {
        return true;
    }
    if ratio <= 0.0 {
        return false;
    }
    let mut low = [0u8; 8];
    low.copy_from_slice(&ctx.trace_id[8..]);
    // Compared on 63 bits, as the reference implementation does.
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    (u64::from_be_bytes(low) >> 1) < bound
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &v[start..end]
}

fn hex_byte(two: &[u8]) -> Option<u8> {
    let d = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    Some(d(*two.first()?)? << 4 | d(*two.get(1)?)?)
}

fn put_hex(out: &mut [u8], bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 15)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_w3c_examples() {
        let v = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let c = parse(v).unwrap();
        assert!(c.parent_sampled && c.remote);
        assert_eq!(&format(&c.trace_id, &c.parent_span_id, true)[..], &v[..]);
        assert!(
            !parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
                .unwrap()
                .parent_sampled
        );
        for bad in [
            &b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            b"",
        ] {
            assert!(parse(bad).is_none(), "{}", String::from_utf8_lossy(bad));
        }
        // A later version may append fields after a dash.
        assert!(parse(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x").is_some());
    }

    #[test]
    fn ratio_sampling_follows_the_id_and_the_parent() {
        let mut c = TraceContext {
            trace_id: [0; 16],
            parent_span_id: [0; 8],
            parent_sampled: false,
            remote: false,
        };
        assert!(sampled(&c, 1.0) && !sampled(&c, 0.0));
        c.trace_id[8] = 0x7f; // just under half of the range
        assert!(sampled(&c, 0.5) && !sampled(&c, 0.49));
        c.remote = true;
        assert!(!sampled(&c, 1.0));
        c.parent_sampled = true;
        assert!(sampled(&c, 0.0));
    }
}
