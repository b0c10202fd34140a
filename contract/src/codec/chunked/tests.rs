use super::*;
use crate::codec::sse::tests::Rng;

/// Everything a run of feeds produced.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    payload: Vec<u8>,
    /// Total bytes consumed, or the error.
    result: Result<usize, ChunkedError>,
    done: bool,
    payload_len: u64,
}

/// Feeds `parts` in order, stopping at the first error or once the body ended.
fn run(parts: &[&[u8]]) -> Outcome {
    let mut d = ChunkedDecoder::new();
    let mut payload = Vec::new();
    let mut total = 0;
    let mut result = Ok(0);
    for part in parts {
        match d.feed(part, |p| payload.extend_from_slice(&part[p])) {
            Ok(n) => {
                total += n;
                result = Ok(total);
                if n < part.len() {
                    assert!(d.is_done(), "short consume without being done");
                    break;
                }
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    Outcome {
        payload,
        result,
        done: d.is_done(),
        payload_len: d.payload_len(),
    }
}

fn whole(body: &[u8]) -> Outcome {
    run(&[body])
}

/// Checks that every two-way split and the one-byte-at-a-time feed of `body`
/// give the same outcome as feeding it whole, and returns that outcome.
fn check_splits(body: &[u8]) -> Outcome {
    let expect = whole(body);
    for at in 0..=body.len() {
        let (a, b) = body.split_at(at);
        assert_eq!(
            run(&[a, b]),
            expect,
            "split at {at} of {:?}",
            String::from_utf8_lossy(body)
        );
    }
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(
        run(&bytes),
        expect,
        "byte at a time: {:?}",
        String::from_utf8_lossy(body)
    );
    expect
}

const VALID: &[(&str, &str)] = &[
    ("5\r\nhello\r\n0\r\n\r\n", "hello"),
    ("0\r\n\r\n", ""),
    ("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world"),
    ("A\r\n0123456789\r\n0\r\n\r\n", "0123456789"),
    ("a\r\n0123456789\r\n000\r\n\r\n", "0123456789"),
    ("00000000000000000000005\r\nhello\r\n0\r\n\r\n", "hello"),
    ("5;name=value\r\nhello\r\n0;last\r\n\r\n", "hello"),
    ("5 ; a = b ; c\t;d=\"q \\\" ;=\"\r\nhello\r\n0\r\n\r\n", "hello"),
    ("5;a=\"\"\r\nhello\r\n0\r\n\r\n", "hello"),
    ("5;a=\"x\" ;b=y\r\nhello\r\n0\r\n\r\n", "hello"),
    ("3\r\n\r\n\r\r\n0\r\n\r\n", "\r\n\r"),
    ("5\r\nhello\r\n0\r\nX-Trailer: one\r\nY: two\r\n\r\n", "hello"),
    ("0\r\nChecksum: abc\r\n\r\n", ""),
];

#[test]
fn valid_bodies_at_every_split() {
    for (body, payload) in VALID {
        let out = check_splits(body.as_bytes());
        assert_eq!(out.payload, payload.as_bytes(), "{body:?}");
        assert_eq!(out.result, Ok(body.len()), "{body:?}");
        assert!(out.done, "{body:?}");
        assert_eq!(out.payload_len, payload.len() as u64);
    }
}

#[test]
fn bytes_after_the_body_are_not_consumed() {
    for (body, payload) in VALID {
        let mut input = body.as_bytes().to_vec();
        input.extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\n");
        let out = check_splits(&input);
        assert_eq!(out.result, Ok(body.len()), "{body:?}");
        assert_eq!(out.payload, payload.as_bytes());
        assert!(out.done);
    }
}

#[test]
fn feed_after_done_consumes_nothing() {
    let mut d = ChunkedDecoder::default();
    assert_eq!(d.feed(b"0\r\n\r\n", |_| {}), Ok(5));
    assert!(d.is_done());
    assert_eq!(
        d.feed(b"5\r\nhello\r\n", |_| panic!("no data after the end")),
        Ok(0)
    );
    assert_eq!(d.feed(b"", |_| {}), Ok(0));
    assert!(d.is_done());
}

#[test]
fn partial_body_is_not_done() {
    let body = b"5\r\nhello\r\n0\r\n\r\n";
    for end in 0..body.len() {
        let out = whole(&body[..end]);
        assert_eq!(out.result, Ok(end));
        assert!(!out.done, "done after {end} bytes");
    }
}

#[test]
fn data_is_a_range_of_the_input() {
    let input = b"b\r\nhello world\r\n0\r\n\r\n";
    let mut d = ChunkedDecoder::new();
    let mut calls = 0;
    d.feed(input, |p| {
        calls += 1;
        assert_eq!(p, 3..14);
        assert_eq!(&input[p], b"hello world");
    })
    .unwrap();
    assert_eq!(calls, 1);
}

#[test]
fn empty_feed_is_a_no_op() {
    let mut d = ChunkedDecoder::new();
    assert_eq!(d.feed(b"", |_| {}), Ok(0));
    assert_eq!(d.feed(b"3\r\nab", |_| {}), Ok(5));
    assert_eq!(d.feed(b"", |_| {}), Ok(0));
    assert_eq!(d.feed(b"c\r\n0\r\n\r\n", |_| {}), Ok(8));
    assert!(d.is_done());
    assert_eq!(d.payload_len(), 3);
}

const MALFORMED: &[(&str, ChunkedError)] = &[
    ("\r\n", ChunkedError::InvalidSize),
    ("g\r\n", ChunkedError::InvalidSize),
    (" 5\r\nhello\r\n0\r\n\r\n", ChunkedError::InvalidSize),
    ("5 \r\nhello\r\n0\r\n\r\n", ChunkedError::InvalidSize),
    ("5;\r\nhello\r\n", ChunkedError::InvalidSize),
    ("5;a=\r\nhello\r\n", ChunkedError::InvalidSize),
    ("5;=a\r\nhello\r\n", ChunkedError::InvalidSize),
    ("5;a b\r\nhello\r\n", ChunkedError::InvalidSize),
    ("5;a=\"x\r\nhello\r\n", ChunkedError::InvalidSize),
    ("5;a=\"x\"y\r\nhello\r\n", ChunkedError::InvalidSize),
    ("5;a=b \r\nhello\r\n", ChunkedError::InvalidSize),
    ("5;a@b\r\nhello\r\n", ChunkedError::InvalidSize),
    ("5;a=\"\x01\"\r\nhello\r\n", ChunkedError::InvalidSize),
    ("0x5\r\nhello\r\n", ChunkedError::InvalidSize),
    ("-1\r\n", ChunkedError::InvalidSize),
    ("+5\r\nhello\r\n", ChunkedError::InvalidSize),
    ("5\r\nhello\r\n\r\n", ChunkedError::InvalidSize),
    ("10000000000000000\r\n", ChunkedError::SizeOverflow),
    ("FFFFFFFFFFFFFFFFF\r\n", ChunkedError::SizeOverflow),
    ("5\nhello\r\n0\r\n\r\n", ChunkedError::InvalidLineEnding),
    ("5\rhello\r\n0\r\n\r\n", ChunkedError::InvalidLineEnding),
    ("5;a\nhello\r\n0\r\n\r\n", ChunkedError::InvalidLineEnding),
    ("5;a=\"x\ny\"\r\n", ChunkedError::InvalidLineEnding),
    ("\n", ChunkedError::InvalidLineEnding),
    ("0\r\n\n", ChunkedError::InvalidLineEnding),
    ("0\r\n\rX", ChunkedError::InvalidLineEnding),
    ("0\r\nX: y\nZ: w\r\n\r\n", ChunkedError::InvalidLineEnding),
    ("0\r\nX: y\rZ: w\r\n\r\n", ChunkedError::InvalidLineEnding),
    ("5\r\nhelloX\r\n0\r\n\r\n", ChunkedError::InvalidChunkEnd),
    ("5\r\nhello\n0\r\n\r\n", ChunkedError::InvalidChunkEnd),
    ("5\r\nhello\rX0\r\n\r\n", ChunkedError::InvalidChunkEnd),
    ("5\r\nhello world\r\n0\r\n\r\n", ChunkedError::InvalidChunkEnd),
];

#[test]
fn malformed_bodies_fail_at_every_split() {
    for (body, err) in MALFORMED {
        let out = check_splits(body.as_bytes());
        assert_eq!(out.result, Err(*err), "{body:?}");
        assert!(!out.done);
    }
}

#[test]
fn sixteen_significant_digits_are_accepted() {
    let mut d = ChunkedDecoder::new();
    assert_eq!(d.feed(b"0000FFFFFFFFFFFFFFFF\r\nabc", |_| {}), Ok(25));
    assert_eq!(d.payload_len(), 3);
    assert_eq!(d.remaining, u64::MAX - 3);
    let mut d = ChunkedDecoder::new();
    assert_eq!(
        d.feed(b"ffffffffffffffff0", |_| {}),
        Err(ChunkedError::SizeOverflow)
    );
}

#[test]
fn long_size_line_is_rejected() {
    let mut line = String::from("1;");
    line.push_str(&"a".repeat(MAX_SIZE_LINE as usize - 2));
    let ok = format!("{line}\r\nx\r\n0\r\n\r\n");
    assert_eq!(whole(ok.as_bytes()).result, Ok(ok.len()));
    let bad = format!("{line}a\r\nx\r\n0\r\n\r\n");
    let out = check_splits(bad.as_bytes());
    assert_eq!(out.result, Err(ChunkedError::ExtensionTooLong));
    // Leading zeros count towards the line too.
    let zeros = format!("{}1\r\nx\r\n", "0".repeat(MAX_SIZE_LINE as usize));
    assert_eq!(
        whole(zeros.as_bytes()).result,
        Err(ChunkedError::ExtensionTooLong)
    );
}

#[test]
fn large_trailers_are_rejected() {
    // Exactly at the bound: 16 KiB of field lines including their CRLFs.
    let line = format!("X-Pad: {}\r\n", "p".repeat(1015));
    assert_eq!(line.len(), 1024);
    let ok = format!("0\r\n{}\r\n", line.repeat(16));
    assert_eq!(whole(ok.as_bytes()).result, Ok(ok.len()));
    let over = format!("0\r\n{}Y: z\r\n\r\n", line.repeat(16));
    let out = check_splits(over.as_bytes());
    assert_eq!(out.result, Err(ChunkedError::TrailerTooLarge));
    // One line with no end at all is cut off at the bound too.
    let endless = format!("0\r\nX: {}", "a".repeat(MAX_TRAILER as usize));
    assert_eq!(
        whole(endless.as_bytes()).result,
        Err(ChunkedError::TrailerTooLarge)
    );
}

#[test]
fn trailers_must_be_field_lines() {
    for bad in [
        &b"0\r\nGET / HTTP/1.1\r\n\r\n"[..],
        b"0\r\n: no name\r\n\r\n",
        b"0\r\nNoColon\r\n\r\n",
        b"0\r\nX :y\r\n\r\n",
        b"0\r\nX: a\x00b\r\n\r\n",
    ] {
        let out = check_splits(bad);
        assert_eq!(
            out.result,
            Err(ChunkedError::InvalidTrailer),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    let ok = b"0\r\nX-Sum:abc\r\nY: \t v w \r\n\r\n";
    assert_eq!(check_splits(ok).result, Ok(ok.len()));
}

#[test]
fn a_chunk_size_is_announced_before_its_bytes() {
    let mut d = ChunkedDecoder::new();
    assert_eq!(d.feed(b"3\r\nabc\r\n", |_| {}), Ok(8));
    assert_eq!(d.announced_len(), 3);
    // Only the size line of a huge chunk has come.
    assert_eq!(d.feed(b"ffffffff\r\nxy", |_| {}), Ok(12));
    assert_eq!(d.announced_len(), 3 + 0xffff_ffff);
    assert_eq!(d.payload_len(), 5);
}

#[test]
fn errors_are_sticky() {
    let mut d = ChunkedDecoder::new();
    assert_eq!(d.feed(b"5\r\nhelloX", |_| {}), Err(ChunkedError::InvalidChunkEnd));
    assert_eq!(d.error(), Some(ChunkedError::InvalidChunkEnd));
    for _ in 0..3 {
        assert_eq!(
            d.feed(b"\r\n0\r\n\r\n", |_| panic!("no data after an error")),
            Err(ChunkedError::InvalidChunkEnd)
        );
        assert_eq!(d.feed(b"", |_| {}), Err(ChunkedError::InvalidChunkEnd));
    }
    assert!(!d.is_done());
    assert_eq!(d.payload_len(), 5);
}

#[test]
fn labels_are_distinct() {
    let all = [
        ChunkedError::InvalidSize,
        ChunkedError::SizeOverflow,
        ChunkedError::InvalidLineEnding,
        ChunkedError::ExtensionTooLong,
        ChunkedError::TrailerTooLarge,
        ChunkedError::InvalidChunkEnd,
        ChunkedError::InvalidTrailer,
    ];
    for (i, a) in all.iter().enumerate() {
        assert_eq!(a.to_string(), a.label());
        for b in &all[i + 1..] {
            assert_ne!(a.label(), b.label());
        }
    }
}

/// Encodes `payload` as a chunked body with chunks of random sizes, random
/// hex spellings, random extensions and random trailers.
pub(crate) fn encode_random(payload: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        let n = 1 + rng.below(rest.len().min(300));
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        push_size_line(&mut out, n, rng);
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    push_size_line(&mut out, 0, rng);
    for _ in 0..rng.below(3) {
        out.extend_from_slice(format!("X-T{}: v{}\r\n", rng.below(100), rng.below(1000)).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn push_size_line(out: &mut Vec<u8>, n: usize, rng: &mut Rng) {
    out.extend_from_slice("0".repeat(rng.below(2) * rng.below(4)).as_bytes());
    let hex = if rng.below(2) == 0 {
        format!("{n:x}")
    } else {
        format!("{n:X}")
    };
    out.extend_from_slice(hex.as_bytes());
    match rng.below(6) {
        0 => out.extend_from_slice(b";ext"),
        1 => out.extend_from_slice(b" ; name = \"v\\\"al\" ;x=y"),
        _ => {}
    }
    out.extend_from_slice(b"\r\n");
}

#[test]
fn random_bodies_at_random_splits() {
    let mut rng = Rng::new(0x5eed_c0de);
    for _ in 0..300 {
        let len = rng.below(2000);
        let payload: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
        let body = encode_random(&payload, &mut rng);
        let mut input = body.clone();
        input.extend_from_slice(b"next");
        // Random cut points, sorted, possibly repeated (empty feeds).
        let mut cuts: Vec<usize> = (0..rng.below(12)).map(|_| rng.below(input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut parts = Vec::new();
        let mut prev = 0;
        for c in cuts {
            parts.push(&input[prev..c]);
            prev = c;
        }
        parts.push(&input[prev..]);
        let out = run(&parts);
        assert_eq!(out.payload, payload);
        assert_eq!(out.result, Ok(body.len()));
        assert!(out.done);
        assert_eq!(out.payload_len, payload.len() as u64);
    }
}

#[test]
fn random_corruption_never_panics_and_splits_agree() {
    let mut rng = Rng::new(7);
    for _ in 0..2000 {
        let payload: Vec<u8> = (0..rng.below(200)).map(|_| b'a' + rng.below(26) as u8).collect();
        let mut body = encode_random(&payload, &mut rng);
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(body.len());
            body[at] = rng.below(256) as u8;
        }
        let expect = whole(&body);
        let at = rng.below(body.len() + 1);
        assert_eq!(run(&[&body[..at], &body[at..]]), expect);
        // One byte at a time no plain size line is ever whole in a feed:
        // the byte-at-a-time path alone must agree with the fast one.
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(run(&bytes), expect, "{:?}", String::from_utf8_lossy(&body));
    }
}

#[test]
fn chunk_sizes_are_written_in_hex() {
    for n in [1usize, 9, 10, 15, 16, 255, 4096, 0xdead_beef, usize::MAX] {
        let mut out = b"x".to_vec();
        write_chunk_size(&mut out, n);
        assert_eq!(out, format!("x{n:x}\r\n").into_bytes());
    }
}

#[test]
fn chunk_sizes_are_written_in_place_before_their_payload() {
    for n in [1usize, 15, 16, 4096, usize::MAX] {
        let mut buf = vec![b'.'; CHUNK_SIZE_ROOM];
        buf.extend_from_slice(b"payload");
        let at = write_chunk_size_before(&mut buf, CHUNK_SIZE_ROOM, n);
        assert_eq!(buf[at..], *format!("{n:x}\r\npayload").as_bytes());
        assert!(
            buf[..at].iter().all(|&b| b == b'.'),
            "nothing written before the head"
        );
    }
}
