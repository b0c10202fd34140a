use super::*;

fn req(raw: &[u8]) -> Result<Option<RequestHead>, HeadError> {
    let mut h = Vec::new();
    parse_request(raw, &HeadLimits::default(), &mut h)
}

const GOOD: &[u8] = b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer k\r\nContent-Length: 12\r\n\r\n{\"model\":1}\n";

#[test]
fn parses_a_request_and_spans_point_into_the_buffer() {
    let mut hs = Vec::new();
    let head = parse_request(GOOD, &HeadLimits::default(), &mut hs)
        .unwrap()
        .unwrap();
    assert_eq!(head.method, Method::Post);
    assert_eq!(head.path(GOOD), b"/v1/chat/completions");
    assert_eq!(head.target.of(GOOD), b"/v1/chat/completions?x=1");
    assert_eq!(head.framing, Framing::Length(12));
    assert!(head.keep_alive && head.http11 && !head.expect_continue);
    assert_eq!(&GOOD[head.len..], b"{\"model\":1}\n");
    assert_eq!(hs.len(), 3);
    assert_eq!(hs[1].name.of(GOOD), b"Authorization");
    assert_eq!(hs[1].value.of(GOOD), b"Bearer k");
}

#[test]
fn every_split_is_incomplete_until_the_last_byte() {
    let head_len = GOOD.len() - 12;
    for cut in 0..head_len {
        assert_eq!(req(&GOOD[..cut]), Ok(None), "cut at {cut}");
    }
    for cut in head_len..=GOOD.len() {
        assert!(req(&GOOD[..cut]).unwrap().is_some(), "cut at {cut}");
    }
}

#[test]
fn framing_ambiguities_are_refused() {
    let cases: &[(&[u8], HeadError)] = &[
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            HeadError::ConflictingLength,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            HeadError::ConflictingLength,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\n",
            HeadError::ConflictingLength,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -3\r\n\r\n",
            HeadError::BadContentLength,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n",
            HeadError::BadContentLength,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
            HeadError::BadContentLength,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            HeadError::UnsupportedTransferEncoding,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
            HeadError::UnsupportedTransferEncoding,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            HeadError::UnsupportedTransferEncoding,
        ),
        (
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            HeadError::UnsupportedTransferEncoding,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
            HeadError::Malformed,
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\n",
            HeadError::BadHost,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            HeadError::BadHost,
        ),
        (b"GARBAGE\r\n\r\n", HeadError::Malformed),
        (b"POST / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", HeadError::Malformed),
    ];
    for (raw, want) in cases {
        assert_eq!(req(raw), Err(*want), "{}", String::from_utf8_lossy(raw));
    }
    let same = req(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(same.framing, Framing::Length(3));
    let chunked = req(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(chunked.framing, Framing::Chunked);
}

#[test]
fn size_limits_give_431() {
    let limits = HeadLimits {
        max_bytes: 64,
        max_headers: 2,
    };
    let mut hs = Vec::new();
    let big = [b"GET / HTTP/1.1\r\nHost: a\r\nX: ".as_slice(), &[b'a'; 100]].concat();
    assert_eq!(parse_request(&big, &limits, &mut hs), Err(HeadError::TooLarge));
    let many = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
    assert_eq!(
        parse_request(many, &limits, &mut hs),
        Err(HeadError::TooManyHeaders)
    );
    assert_eq!(HeadError::TooLarge.status(), 431);
    assert_eq!(HeadError::Malformed.status(), 400);
}

#[test]
fn connection_semantics() {
    let h = req(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
    assert!(!h.keep_alive);
    let h = req(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(h.keep_alive);
    let h = req(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(!h.keep_alive);
    let h = req(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(h.expect_continue);
}

#[test]
fn response_framing() {
    let mut hs = Vec::new();
    let parse = |raw: &[u8], head: bool, hs: &mut Vec<Header>| parse_response(raw, head, 16384, hs);
    let r = parse(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        false,
        &mut hs,
    )
    .unwrap()
    .unwrap();
    assert_eq!((r.status, r.framing, r.keep_alive), (200, Framing::Chunked, true));
    let r = parse(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
        false,
        &mut hs,
    )
    .unwrap()
    .unwrap();
    assert_eq!((r.framing, r.keep_alive), (Framing::Length(5), false));
    let r = parse(b"HTTP/1.1 200 OK\r\n\r\n", false, &mut hs)
        .unwrap()
        .unwrap();
    assert_eq!((r.framing, r.keep_alive), (Framing::UntilClose, false));
    let r = parse(b"HTTP/1.1 204 No Content\r\n\r\n", false, &mut hs)
        .unwrap()
        .unwrap();
    assert_eq!(r.framing, Framing::Empty);
    let r = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true, &mut hs)
        .unwrap()
        .unwrap();
    assert_eq!(r.framing, Framing::Empty);
    assert_eq!(parse(b"HTTP/1.1 200 OK\r\nContent-Le", false, &mut hs), Ok(None));
    assert!(parse(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        false,
        &mut hs
    )
    .is_err());
}

#[test]
fn response_transfer_codings_other_than_chunked_are_refused() {
    let mut hs = Vec::new();
    let mut parse = |raw: &[u8]| parse_response(raw, false, 16384, &mut hs);
    for raw in [
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        // HTTP/1.0 with Transfer-Encoding is faulty framing (RFC 9112 §6.1).
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
    ] {
        assert_eq!(
            parse(raw),
            Err(HeadError::UnsupportedTransferEncoding),
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
    let r = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(r.framing, Framing::Chunked);
    // No body, so no framing to get wrong.
    let r = parse(b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: gzip\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(r.framing, Framing::Empty);
}

#[test]
fn response_head_over_the_bound_is_refused_even_when_complete() {
    let mut hs = Vec::new();
    let raw = format!("HTTP/1.1 200 OK\r\nx-big: {}\r\n\r\n", "a".repeat(200));
    assert_eq!(
        parse_response(raw.as_bytes(), false, 100, &mut hs),
        Err(HeadError::TooLarge)
    );
    assert!(parse_response(raw.as_bytes(), false, raw.len(), &mut hs).is_ok());
}

/// The header array is left uninitialised: every field up to the cap is
/// read, in order, and one more is refused (requests and responses).
#[test]
fn header_fields_up_to_the_cap() {
    let fields = |n: usize| (0..n).map(|i| format!("x-f{i}: v{i}\r\n")).collect::<String>();
    let mut hs = Vec::new();
    let full = format!(
        "HTTP/1.1 200 OK\r\n{}content-length: 0\r\n\r\n",
        fields(MAX_HEADERS_CAP - 1)
    );
    let head = parse_response(full.as_bytes(), false, 1 << 20, &mut hs)
        .unwrap()
        .unwrap();
    assert_eq!(head.framing, Framing::Empty);
    assert_eq!(hs.len(), MAX_HEADERS_CAP);
    assert_eq!(hs[7].name.of(full.as_bytes()), b"x-f7");
    assert_eq!(hs[7].value.of(full.as_bytes()), b"v7");
    let over = format!("HTTP/1.1 200 OK\r\n{}\r\n", fields(MAX_HEADERS_CAP + 1));
    assert_eq!(
        parse_response(over.as_bytes(), false, 1 << 20, &mut hs),
        Err(HeadError::TooManyHeaders)
    );
    let limits = HeadLimits {
        max_bytes: 1 << 20,
        max_headers: MAX_HEADERS_CAP,
    };
    let full = format!("GET / HTTP/1.1\r\nhost: a\r\n{}\r\n", fields(MAX_HEADERS_CAP - 1));
    parse_request(full.as_bytes(), &limits, &mut hs).unwrap().unwrap();
    assert_eq!(hs.len(), MAX_HEADERS_CAP);
    assert_eq!(
        hs[MAX_HEADERS_CAP - 1].name.of(full.as_bytes()),
        format!("x-f{}", MAX_HEADERS_CAP - 2).as_bytes()
    );
    let over = format!("GET / HTTP/1.1\r\nhost: a\r\n{}\r\n", fields(MAX_HEADERS_CAP));
    assert_eq!(
        parse_request(over.as_bytes(), &limits, &mut hs),
        Err(HeadError::TooManyHeaders)
    );
}

#[test]
fn connection_options_are_hop_by_hop() {
    let raw =
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Foo\r\nconnection:x-bar ,close\r\nX-Foo: 1\r\n\r\n";
    let mut hs = Vec::new();
    parse_response(raw, false, 16384, &mut hs).unwrap().unwrap();
    assert!(is_connection_option(raw, &hs, b"x-foo"));
    assert!(is_connection_option(raw, &hs, b"X-BAR"));
    assert!(is_connection_option(raw, &hs, b"keep-alive"));
    assert!(!is_connection_option(raw, &hs, b"x-fo"));
    assert!(!is_connection_option(raw, &hs, b"content-type"));
}

#[test]
fn connection_options_read_once_agree_with_the_scan() {
    let many: String = (0..20).map(|i| format!("x-o{i}, ")).collect();
    let heads = [
        "HTTP/1.1 200 OK\r\nX-Foo: 1\r\n\r\n".to_string(),
        "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Foo\r\nconnection:x-bar ,close\r\nX-Foo: 1\r\n\r\n"
            .into(),
        "HTTP/1.1 200 OK\r\nConnection: ,, x-a ,\t\r\nConnection: x-b\r\n\r\n".into(),
        // More options than are held: the spill scans.
        format!("HTTP/1.1 200 OK\r\nConnection: {many}\r\nConnection: x-last\r\n\r\n"),
    ];
    let names: [&[u8]; 12] = [
        b"x-foo",
        b"X-BAR",
        b"keep-alive",
        b"close",
        b"x-fo",
        b"content-type",
        b"x-a",
        b"x-b",
        b"x-o0",
        b"X-O19",
        b"x-last",
        b"x-o20",
    ];
    for raw in &heads {
        let mut hs = Vec::new();
        parse_response(raw.as_bytes(), false, 16384, &mut hs)
            .unwrap()
            .unwrap();
        let options = ConnectionOptions::of(raw.as_bytes(), &hs);
        for name in names {
            assert_eq!(
                options.contains(name),
                is_connection_option(raw.as_bytes(), &hs, name),
                "{raw:?} {:?}",
                String::from_utf8_lossy(name)
            );
        }
    }
    let mut hs = Vec::new();
    let raw = heads[3].as_bytes();
    parse_response(raw, false, 16384, &mut hs).unwrap().unwrap();
    let options = ConnectionOptions::of(raw, &hs);
    assert!(options.contains(b"x-o19") && options.contains(b"x-last") && !options.contains(b"x-o20"));
}

#[test]
fn hop_by_hop_names() {
    assert!(is_hop_by_hop(b"Connection"));
    assert!(is_hop_by_hop(b"TRANSFER-ENCODING"));
    assert!(!is_hop_by_hop(b"content-type"));
}

#[test]
fn absolute_form_targets_are_reduced_to_their_path_and_query() {
    let parse = |raw: &'static [u8]| {
        let mut hs = Vec::new();
        parse_request(raw, &HeadLimits::default(), &mut hs).map(|h| h.map(|h| h.target.of(raw)))
    };
    let raw = b"POST http://gw.example:8080/v1/chat/completions?x=1 HTTP/1.1\r\nHost: gw.example\r\n\r\n";
    assert_eq!(parse(raw).unwrap(), Some(&b"/v1/chat/completions?x=1"[..]));
    let raw = b"GET HTTPS://gw/v1/models HTTP/1.1\r\nHost: gw\r\n\r\n";
    assert_eq!(parse(raw).unwrap(), Some(&b"/v1/models"[..]));
    let raw = b"GET http://gw HTTP/1.1\r\nHost: gw\r\n\r\n";
    assert_eq!(parse(raw), Err(HeadError::Malformed));
    let raw = b"GET http:/v1/models HTTP/1.1\r\nHost: gw\r\n\r\n";
    assert_eq!(parse(raw), Err(HeadError::Malformed));
    let raw = b"OPTIONS * HTTP/1.1\r\nHost: gw\r\n\r\n";
    assert_eq!(parse(raw).unwrap(), Some(&b"*"[..]));
}
