//! The mock's completion text and the small writers every renderer shares.

/// Token `i` of every completion is `VOCAB[i % VOCAB.len()]`; the text is
/// their concatenation. Most pieces carry multi-byte UTF-8 (2, 3 and 4-byte
/// characters) so that a stream cut inside a character is the common case,
/// and two need JSON escapes (a quote, a newline), so clients that reassemble
/// the text exercise both.
pub(crate) const VOCAB: &[&str] = &[
    " Hello",
    " héllo",
    " 世界",
    " 🚀",
    " naïve",
    " Ω",
    " stream",
    " café",
    " 日本語",
    ",",
    " über",
    " \"quoted\"",
    " ☃",
    " señor",
    " 💡",
    ".\n",
];

/// Token `i` of a completion.
pub(super) fn token(i: u32) -> &'static str {
    VOCAB[i as usize % VOCAB.len()]
}

/// The whole text of an `n`-token completion.
pub(super) fn completion(n: u32) -> impl Iterator<Item = &'static str> {
    (0..n).map(token)
}

/// Appends `s` as a JSON string literal (quotes included). Non-ASCII is kept
/// as raw UTF-8, as the providers send it.
pub(super) fn push_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    push_json_escaped(out, s);
    out.push(b'"');
}

/// Appends the inside of a JSON string literal holding `s`.
pub(super) fn push_json_escaped(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if esc.is_empty() {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ]);
        } else {
            out.extend_from_slice(esc);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends `n` in decimal.
pub(super) fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

/// Appends `n` in lowercase hex (an HTTP chunk size).
pub(super) fn push_hex(out: &mut Vec<u8>, mut n: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut tmp = [0u8; 16];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = HEX[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

/// Appends one HTTP/1.1 chunk holding `data`; nothing for empty data, which
/// would read as the end of the body.
pub(super) fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    push_hex(out, data.len());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The chunk that ends a chunked body.
pub(super) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";
