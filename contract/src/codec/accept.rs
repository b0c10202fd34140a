//! Choosing a response content coding from `Accept-Encoding` (RFC 9110
//! §12.5.3), and compressing a whole body with it.
//!
//! The parse is small and total: a comma-separated list of codings, each
//! with an optional `;q=` weight (0 to 1, three decimals); `*` stands for
//! any coding not named; `q=0` refuses. Among the codings the gateway can
//! write (zstd, br, gzip) the highest weight wins; on a tie, that order.
//! Nothing acceptable (or no header): the body goes as it is.

use super::encoding::Coding;
use std::io::Write;

/// Bodies shorter than this are not worth compressing.
pub const MIN_COMPRESS: usize = 256;

/// The codings the gateway writes, in order of preference on a tie.
const OFFERED: [(Coding, &str); 3] = [
    (Coding::Zstd, "zstd"),
    (Coding::Brotli, "br"),
    (Coding::Gzip, "gzip"),
];

/// The weight `q` as thousandths; `None` when it is not a valid qvalue.
fn qvalue(v: &[u8]) -> Option<u16> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole = match int {
        "0" => 0u16,
        "1" => 1000,
        _ => return None,
    };
    let mut f = 0u16;
    for (i, b) in frac.bytes().enumerate() {
        f += u16::from(b - b'0') * [100, 10, 1][i];
    }
    (whole + f <= 1000).then_some(whole + f)
}

/// The coding to send a response in, given the request's `Accept-Encoding`.
pub fn choose(accept: Option<&[u8]>) -> Option<Coding> {
    let accept = accept?;
    let mut weights: [Option<u16>; 3] = [None; 3];
    let mut star: Option<u16> = None;
    for item in accept.split(|&b| b == b',') {
        let mut parts = item.split(|&b| b == b';');
        let name = parts.next().unwrap_or_default().trim_ascii();
        if name.is_empty() {
            continue;
        }
        let mut q = Some(1000);
        for p in parts {
            let p = p.trim_ascii();
            if p.len() >= 2 && p[..2].eq_ignore_ascii_case(b"q=") {
                q = qvalue(&p[2..]);
            }
        }
        let Some(q) = q else { continue };
        if name == b"*" {
            star = Some(q);
        } else if let Some(i) = OFFERED
            .iter()
            .position(|(_, n)| name.eq_ignore_ascii_case(n.as_bytes()))
        {
            weights[i] = Some(q);
        } else if name.eq_ignore_ascii_case(b"x-gzip") {
            weights[2] = weights[2].or(Some(q));
        }
    }
    let mut best: Option<(u16, Coding)> = None;
    for (i, (coding, _)) in OFFERED.iter().enumerate() {
        let q = weights[i].or(star).unwrap_or(0);
        if q > 0 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, *coding));
        }
    }
    best.map(|(_, c)| c)
}

/// The token for `coding` in `Content-Encoding`.
pub fn token(coding: Coding) -> &'static str {
    match coding {
        Coding::Gzip => "gzip",
        Coding::Deflate => "deflate",
        Coding::Brotli => "br",
        Coding::Zstd => "zstd",
    }
}

/// `body` compressed with `coding` (at a fast level: this runs per
/// response).
pub fn compress(body: &[u8], coding: Coding) -> Vec<u8> {
    match coding {
        Coding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 2),
                flate2::Compression::fast(),
            );
            // Writing into a Vec cannot fail.
            let _ = e.write_all(body);
            e.finish().unwrap_or_default()
        }
        Coding::Deflate => {
            let mut e = flate2::write::ZlibEncoder::new(
                Vec::with_capacity(body.len() / 2),
                flate2::Compression::fast(),
            );
            let _ = e.write_all(body);
            e.finish().unwrap_or_default()
        }
        Coding::Brotli => {
            let mut out = Vec::with_capacity(body.len() / 2);
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 4, 22);
                let _ = w.write_all(body);
            }
            out
        }
        Coding::Zstd => ruzstd::encoding::compress_to_vec(body, ruzstd::encoding::CompressionLevel::Fastest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encoding::decode;

    #[test]
    fn the_highest_weight_wins_and_ties_go_zstd_br_gzip() {
        assert_eq!(choose(None), None);
        assert_eq!(choose(Some(b"identity")), None);
        assert_eq!(choose(Some(b"gzip")), Some(Coding::Gzip));
        assert_eq!(choose(Some(b"gzip, deflate, br, zstd")), Some(Coding::Zstd));
        assert_eq!(choose(Some(b"gzip;q=1.0, br;q=0.5")), Some(Coding::Gzip));
        assert_eq!(choose(Some(b"*;q=0.1, gzip;q=0")), Some(Coding::Zstd));
        assert_eq!(choose(Some(b"br;q=0, zstd;q=0, *")), Some(Coding::Gzip));
        assert_eq!(choose(Some(b"*;q=0")), None);
        assert_eq!(choose(Some(b"GZIP ; Q=0.3")), Some(Coding::Gzip));
        // An invalid weight drops the item, not the header.
        assert_eq!(choose(Some(b"br;q=2, gzip")), Some(Coding::Gzip));
        assert_eq!(choose(Some(b"x-gzip")), Some(Coding::Gzip));
    }

    #[test]
    fn compressed_bodies_decode_back() {
        let body = br#"{"id":"x","choices":[{"message":{"content":"hello hello hello hello"}}]}"#.repeat(20);
        for c in [Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd] {
            let packed = compress(&body, c);
            assert!(packed.len() < body.len(), "{c:?}");
            assert_eq!(decode(&packed, &[c], 1 << 20).unwrap(), body, "{c:?}");
        }
    }
}
