use super::*;
use sluice_contract::policy::tokens::encoding_for;

const CONTENT: &str = r#"data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"héllo wörld"},"finish_reason":null}],"usage":null}

"#;
const STOP: &str = r#"data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}

"#;
const USAGE: &str = r#"data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":3,"total_tokens":14}}

"#;
const DONE: &str = "data: [DONE]\n\n";

fn stream() -> String {
    [CONTENT, STOP, USAGE, DONE].concat()
}

/// `body` in chunks of `size` bytes, as an upstream would frame it.
fn chunked(body: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in body.chunks(size) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn dechunk(wire: &[u8]) -> Vec<u8> {
    let mut d = ChunkedDecoder::new();
    let mut out = Vec::new();
    let used = d.feed(wire, |p| out.extend_from_slice(&wire[p])).unwrap();
    assert!(
        d.is_done() && used == wire.len(),
        "the output is whole chunked framing"
    );
    out
}

fn filter(framing: Framing, output: Output, counting: bool) -> ResponseFilter {
    let setup = FilterSetup {
        framing,
        is_sse: true,
        dialect: Dialect::OpenAi,
        output,
        counting: counting.then(|| encoding_for("gpt-4o").0),
        codings: Vec::new(),
        translation: None,
    };
    ResponseFilter::new(setup, None, Vec::new(), Vec::new())
}

/// Feeds `wire` in reads of `read` bytes; returns what was sent.
fn run(f: &mut ResponseFilter, wire: &[u8], read: usize) -> Vec<u8> {
    let mut sent = Vec::new();
    for piece in wire.chunks(read) {
        let take = f.frame(piece).unwrap();
        assert_eq!(take, piece.len());
        f.inspect(piece);
        let end = f.done;
        if let Some(out) = f.take_sealed(end) {
            sent.extend_from_slice(&out.get_ref()[out.begin()..out.end()]);
            f.return_output(out.into_inner());
        }
    }
    sent
}

#[test]
fn the_usage_event_the_gateway_asked_for_is_cut_and_read() {
    let wire = chunked(stream().as_bytes(), 37);
    for read in [1, 7, 64, wire.len()] {
        let mut f = filter(Framing::Chunked, Output::Events { chunked: true }, true);
        let sent = run(&mut f, &wire, read);
        assert!(f.done);
        assert_eq!(
            String::from_utf8(dechunk(&sent)).unwrap(),
            [CONTENT, STOP, DONE].concat(),
            "read size {read}"
        );
        let usage = f.usage.usage().unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (11, 3));
        assert!(f.usage.completed());
        assert_eq!(f.framer.as_ref().unwrap().events(), 4);
        assert!(f.counter.as_mut().unwrap().finish() > 0);
    }
}

#[test]
fn the_head_goes_out_with_the_first_events() {
    let wire = chunked(stream().as_bytes(), 1000);
    let mut f = filter(Framing::Chunked, Output::Events { chunked: true }, false);
    f.put_head_first(b"HTTP/1.1 200 OK\r\n\r\n");
    let sent = run(&mut f, &wire, wire.len());
    let body = sent.strip_prefix(b"HTTP/1.1 200 OK\r\n\r\n").expect("head first");
    assert_eq!(dechunk(body), [CONTENT, STOP, DONE].concat().as_bytes());
}

#[test]
fn raw_output_sends_nothing_of_its_own_and_reads_everything() {
    let wire = chunked(stream().as_bytes(), 50);
    let mut f = filter(Framing::Chunked, Output::Raw, true);
    let sent = run(&mut f, &wire, 13);
    assert!(sent.is_empty(), "the relay sends the upstream's bytes itself");
    assert!(f.done);
    assert_eq!(f.usage.usage().unwrap().output_tokens, 3);
    assert_eq!(f.framer.as_ref().unwrap().events(), 4);
}

#[test]
fn an_http10_client_gets_the_payload_without_chunks() {
    let body = stream();
    let wire = chunked(body.as_bytes(), 20);
    let mut f = filter(Framing::Chunked, Output::Plain, false);
    let sent = run(&mut f, &wire, 9);
    assert_eq!(sent, body.as_bytes());
}

#[test]
fn a_length_framed_body_ends_at_its_length() {
    let body = stream();
    let mut f = filter(Framing::Length(body.len() as u64), Output::Raw, false);
    let mut wire = body.clone().into_bytes();
    wire.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    // Bytes past the end are not the response's.
    assert_eq!(f.frame(&wire).unwrap(), body.len());
    f.inspect(&wire);
    assert!(f.done);
    assert_eq!(f.usage.usage().unwrap().input_tokens, 11);
}

#[test]
fn broken_chunk_framing_is_an_error() {
    let mut f = filter(Framing::Chunked, Output::Raw, false);
    assert!(f.frame(b"zz\r\nhello").is_err());
    assert!(f.decoder.error().is_some());
}

#[test]
fn a_json_body_is_kept_for_its_usage() {
    let body =
        br#"{"id":"x","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}"#;
    let setup = FilterSetup {
        framing: Framing::Length(body.len() as u64),
        is_sse: false,
        dialect: Dialect::OpenAi,
        output: Output::Raw,
        counting: None,
        codings: Vec::new(),
        translation: None,
    };
    let mut f = ResponseFilter::new(setup, None, Vec::new(), Vec::new());
    for piece in body.chunks(10) {
        f.frame(piece).unwrap();
        f.inspect(piece);
    }
    assert!(f.done && f.framer.is_none());
    assert!(f.read_json_usage());
    assert_eq!(f.usage.usage().unwrap().output_tokens, 2);
}

#[test]
fn a_compressed_json_body_is_decoded_for_its_usage() {
    use std::io::Write;
    let body =
        br#"{"id":"x","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}"#;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(body).unwrap();
    let gz = e.finish().unwrap();
    let setup = |codings| FilterSetup {
        framing: Framing::Length(gz.len() as u64),
        is_sse: false,
        dialect: Dialect::OpenAi,
        output: Output::Raw,
        counting: None,
        codings,
        translation: None,
    };
    let mut f = ResponseFilter::new(setup(vec![Coding::Gzip]), None, Vec::new(), Vec::new());
    f.frame(&gz).unwrap();
    f.inspect(&gz);
    assert!(f.read_json_usage());
    assert_eq!(f.usage.usage().unwrap().input_tokens, 4);
    // Claimed brotli, is gzip: its usage is unknown, and says so.
    let mut f = ResponseFilter::new(setup(vec![Coding::Brotli]), None, Vec::new(), Vec::new());
    f.frame(&gz).unwrap();
    f.inspect(&gz);
    assert!(!f.read_json_usage());
    assert!(f.usage.usage().is_none());
}

/// An OpenAI upstream's stream to an Anthropic client: translated event by
/// event whatever the reads, metered in the upstream's dialect, counted.
#[test]
fn a_translated_stream_is_the_same_whatever_the_reads() {
    let pair = Pair::AnthropicToOpenAi;
    let wire = chunked(stream().as_bytes(), 29);
    let mut want = None;
    for read in [1, 5, 64, wire.len()] {
        let setup = FilterSetup {
            framing: Framing::Chunked,
            is_sse: true,
            dialect: Dialect::OpenAi,
            output: Output::Translated { chunked: true },
            counting: Some(encoding_for("gpt-4o").0),
            codings: Vec::new(),
            translation: Some(Translation::new(pair, 200, true, false, 7)),
        };
        let mut f = ResponseFilter::new(setup, None, Vec::new(), Vec::new());
        let sent = String::from_utf8(dechunk(&run(&mut f, &wire, read))).unwrap();
        assert!(f.done);
        assert!(sent.starts_with("event: message_start\n"), "{sent}");
        assert!(sent.contains("\"text\":\"héllo wörld\""), "{sent}");
        assert!(
            sent.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
            "{sent}"
        );
        assert!(
            sent.contains("\"input_tokens\":11") && sent.contains("\"output_tokens\":3"),
            "{sent}"
        );
        let usage = f.usage.usage().unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (11, 3));
        assert!(f.counter.as_mut().unwrap().finish() > 0);
        match &want {
            None => want = Some(sent),
            Some(w) => assert_eq!(&sent, w, "read size {read}"),
        }
    }
}

/// A non-streamed body is translated whole at its end; an error body into
/// the client's error shape.
#[test]
fn a_translated_body_goes_out_at_its_end() {
    let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}"#;
    for (status, body, want) in [
        (200, &body[..], "\"content\":\"hi\""),
        (
            429,
            &br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}"#[..],
            "\"message\":\"slow\",\"param\":null,\"type\":\"rate_limit_error\"",
        ),
    ] {
        let setup = FilterSetup {
            framing: Framing::Length(body.len() as u64),
            is_sse: false,
            dialect: Dialect::Anthropic,
            output: Output::Translated { chunked: false },
            counting: None,
            codings: Vec::new(),
            translation: Some(Translation::new(Pair::OpenAiToAnthropic, status, false, false, 7)),
        };
        let mut f = ResponseFilter::new(setup, None, Vec::new(), Vec::new());
        let (a, b) = body.split_at(10);
        let mut sent = run(&mut f, a, a.len());
        assert!(sent.is_empty(), "nothing before the body is whole");
        sent.extend(run(&mut f, b, b.len()));
        let text = String::from_utf8(sent).unwrap();
        assert!(text.contains(want), "{text}");
        assert!(f.done && f.read_json_usage());
    }
}
