use super::*;
use std::io::Write;

const BODY: &[u8] =
    br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"h\u00e9llo, wide world"}]}"#;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn br(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
    w.write_all(data).unwrap();
    drop(w);
    out
}

fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

#[test]
fn each_coding_round_trips() {
    for (name, coded) in [
        ("gzip", gzip(BODY)),
        ("deflate", zlib(BODY)),
        ("br", br(BODY)),
        ("zstd", zstd(BODY)),
    ] {
        let c = codings(name.as_bytes()).unwrap();
        assert_eq!(decode(&coded, &c, 1 << 20).unwrap(), BODY, "{name}");
    }
}

#[test]
fn codings_are_undone_last_first() {
    let coded = br(&gzip(BODY));
    let c = codings(b"gzip, br").unwrap();
    assert_eq!(c, [Coding::Gzip, Coding::Brotli]);
    assert_eq!(decode(&coded, &c, 1 << 20).unwrap(), BODY);
    // In the wrong order it is corrupt, not misread.
    assert_eq!(
        decode(&coded, &[Coding::Brotli, Coding::Gzip], 1 << 20),
        Err(DecodeError::Corrupt)
    );
}

#[test]
fn names() {
    assert_eq!(codings(b"identity").unwrap(), []);
    assert_eq!(codings(b" GZIP ").unwrap(), [Coding::Gzip]);
    assert_eq!(codings(b"x-gzip,identity").unwrap(), [Coding::Gzip]);
    assert_eq!(codings(b"compress"), Err(DecodeError::Unsupported));
    assert_eq!(codings(b"gzip, lz4"), Err(DecodeError::Unsupported));
    assert_eq!(decode(BODY, &[], 1 << 20).unwrap(), BODY);
}

#[test]
fn bombs_stop_at_the_limit() {
    let zeros = vec![0u8; 64 << 20];
    for (name, coded) in [("gzip", gzip(&zeros)), ("br", br(&zeros)), ("zstd", zstd(&zeros))] {
        assert!(coded.len() < 1 << 20, "{name}: {} bytes", coded.len());
        let c = codings(name.as_bytes()).unwrap();
        assert_eq!(decode(&coded, &c, 1 << 20), Err(DecodeError::TooLarge), "{name}");
        // Exactly at the limit is fine.
        let exact = vec![7u8; 4096];
        let c2 = codings(name.as_bytes()).unwrap();
        let coded = match name {
            "gzip" => gzip(&exact),
            "br" => br(&exact),
            _ => zstd(&exact),
        };
        assert_eq!(decode(&coded, &c2, 4096).unwrap().len(), 4096);
        assert_eq!(decode(&coded, &c2, 4095), Err(DecodeError::TooLarge));
    }
}

#[test]
fn garbage_is_corrupt() {
    for c in [Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd] {
        assert_eq!(
            decode(b"not compressed at all", &[c], 1 << 20),
            Err(DecodeError::Corrupt),
            "{c:?}"
        );
    }
    // A truncated stream too.
    let g = gzip(BODY);
    assert_eq!(
        decode(&g[..g.len() / 2], &[Coding::Gzip], 1 << 20),
        Err(DecodeError::Corrupt)
    );
}
