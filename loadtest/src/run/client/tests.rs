//! `exchange` against a canned server on 127.0.0.1: one connection, one
//! scripted reply, then the server closes.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Instant;

use super::*;

const SSE_OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n\
1b\r\ndata: {\"choices\":[{\"delta\":\r\n9\r\n{\"content\r\n8\r\n\":\"hi\"}}\r\n4\r\n]}\n\n\r\ne\r\ndata: [DONE]\n\n\r\n0\r\n\r\n";

/// Serves `reply` to the first connection (after reading the request) and
/// closes it; returns the target and the server thread.
fn serve(reply: &'static [u8]) -> (Target, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                return;
            }
            got.extend_from_slice(&buf[..n]);
        }
        let _ = s.write_all(reply);
    });
    (Target::parse(&format!("http://127.0.0.1:{port}")).unwrap(), t)
}

fn exchange_once(reply: &'static [u8], stream: bool) -> Result<Response, Stale> {
    let (target, server) = serve(reply);
    let addrs = target.resolve().unwrap();
    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .unwrap();
    let out = rt.block_on(async move {
        let connector = Connector::new(&target, addrs, None, false).unwrap();
        let mut conn = connector.connect().await.unwrap();
        let req =
            Bytes::from_static(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        exchange(&mut conn, req, Api::Openai, stream, Clock(Instant::now())).await
    });
    server.join().unwrap();
    out
}

#[test]
fn complete_stream_split_across_chunks() {
    let r = exchange_once(SSE_OK, true).unwrap();
    assert_eq!(r.error, None);
    let t = r.stream.unwrap();
    assert!(t.done);
    assert_eq!(t.content_events, 1);
    assert!(r.reusable && r.head_ns.is_some());
}

#[test]
fn interim_head_in_the_same_read_is_skipped() {
    const REPLY: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 34\r\n\r\n{\"usage\":{\"completion_tokens\":4}}\n";
    let r = exchange_once(REPLY, false).unwrap();
    assert_eq!((r.error, r.json_tokens), (None, Some(4)));
}

#[test]
fn error_status_is_reported_and_body_drained() {
    const REPLY: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 2\r\n\r\n{}";
    let r = exchange_once(REPLY, true).unwrap();
    assert_eq!(r.error, Some(ErrorKind::Status(429)));
    assert!(r.reusable);
}

#[test]
fn stream_cut_mid_body_is_truncated() {
    const REPLY: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n\
1e\r\ndata: {\"choices\":[{\"delta\":{\r\n";
    let r = exchange_once(REPLY, true).unwrap();
    assert_eq!(r.error, Some(ErrorKind::Truncated));
    assert!(!r.reusable);
}

#[test]
fn clean_http_end_without_done_is_truncated() {
    const REPLY: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 47\r\n\r\n\
data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n";
    let r = exchange_once(REPLY, true).unwrap();
    assert_eq!(r.error, Some(ErrorKind::Truncated));
    assert_eq!(r.stream.unwrap().content_events, 1);
}

#[test]
fn garbage_is_a_protocol_error() {
    let r = exchange_once(b"SSH-2.0-OpenSSH\r\n\r\n", true).unwrap();
    assert_eq!(r.error, Some(ErrorKind::Protocol));
}

#[test]
fn close_before_any_byte_is_stale() {
    assert!(exchange_once(b"", true).is_err());
}
