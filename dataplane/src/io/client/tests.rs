use super::*;
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpListener;
use sluice_contract::codec::head::{parse_request, HeadLimits};

const LIMITS: HeadLimits = HeadLimits {
    max_bytes: 16 * 1024,
    max_headers: 64,
};

/// A connection whose client has sent `bytes` (and keeps its end open).
async fn connection(bytes: &'static [u8]) -> (ClientIo, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut client = TcpStream::connect(addr).await.unwrap();
    let (server, peer) = listener.accept().await.unwrap();
    let (res, _) = client.write_all(bytes).await;
    res.unwrap();
    let mut io = ClientIo::new(server, peer);
    while io.buf.len() < bytes.len() {
        let buf = std::mem::take(&mut io.buf);
        let (res, buf) = io.rd.read_append(buf).await;
        assert!(res.unwrap() > 0);
        io.buf = buf;
    }
    (io, client)
}

fn head(io: &mut ClientIo) -> RequestHead {
    parse_request(&io.buf, &LIMITS, &mut io.headers).unwrap().unwrap()
}

#[monoio::test_all(timer_enabled = true)]
async fn pipelined_requests_stay_in_place() {
    let (mut io, _client) = connection(
        b"POST /v1/x HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\n\r\nhelloGET /healthz HTTP/1.1\r\nhost: t\r\n\r\nPOST /v1/y HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .await;
    let first = head(&mut io);
    io.begin(&first);
    assert!(!io.reusable(), "a body not read yet");
    let req = io.read_body(&first, 1024, Duration::from_secs(5)).await.unwrap();
    assert_eq!(&req.body[..], b"hello");
    assert!(io.reusable());
    assert!(io.end_request());
    // The next request is untouched at the front of the buffer.
    let second = head(&mut io);
    assert!(io.buf.starts_with(b"GET /healthz"));
    io.begin(&second);
    // Answered without reading a body (it has none): its head is dropped.
    assert!(io.end_request());
    let third = head(&mut io);
    io.begin(&third);
    let req = io.read_body(&third, 1024, Duration::from_secs(5)).await.unwrap();
    assert_eq!(&req.body[..], b"abc");
    assert!(io.end_request());
    assert!(io.buf.is_empty());
}

#[monoio::test_all(timer_enabled = true)]
async fn an_unread_body_closes_the_connection() {
    let (mut io, _client) = connection(
        b"POST /v1/x HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nhost: t\r\n\r\n",
    )
    .await;
    let first = head(&mut io);
    io.begin(&first);
    // Refused before its body was read: its bytes cannot be told from the
    // next request's, so the connection ends and the buffer is dropped.
    assert!(!io.end_request());
    assert!(io.buf.is_empty());
}

#[monoio::test_all(timer_enabled = true)]
async fn a_body_over_the_limit_is_refused() {
    let (mut io, _client) =
        connection(b"POST /v1/x HTTP/1.1\r\nhost: t\r\ncontent-length: 5000\r\n\r\n").await;
    let first = head(&mut io);
    io.begin(&first);
    let refused = io.read_body(&first, 1024, Duration::from_secs(5)).await;
    assert_eq!(refused.err(), Some(BodyError::TooLarge));
    assert!(!io.end_request());
}

#[monoio::test_all(timer_enabled = true)]
async fn the_watch_keeps_early_bytes_and_sees_a_client_leave() {
    let (mut io, mut client) = connection(b"GET /a HTTP/1.1\r\nhost: t\r\n\r\n").await;
    let first = head(&mut io);
    io.begin(&first);
    assert!(io.end_request());
    assert!(io.buf.is_empty());
    let ClientIo { rd, buf, .. } = &mut io;
    let (mut watch, read) = ClientWatch::start(rd, buf);
    let mut read = std::pin::pin!(read);
    assert!(watch.active());
    client
        .write_all(b"GET /b HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .0
        .unwrap();
    let seen = watch.seen((&mut read).await, buf);
    assert_eq!(seen, Seen::Early);
    assert!(buf.starts_with(b"GET /b"), "the early request is kept");
    assert!(watch.stop(read.as_mut(), buf).await);
}

#[monoio::test_all(timer_enabled = true)]
async fn the_watch_sees_a_client_leave() {
    let (mut io, client) = connection(b"GET /a HTTP/1.1\r\nhost: t\r\n\r\n").await;
    let first = head(&mut io);
    io.begin(&first);
    assert!(io.end_request());
    let ClientIo { rd, buf, .. } = &mut io;
    let (mut watch, read) = ClientWatch::start(rd, buf);
    let mut read = std::pin::pin!(read);
    drop(client);
    assert_eq!(watch.seen((&mut read).await, buf), Seen::Gone);
    assert!(!watch.active());
}

#[monoio::test_all(timer_enabled = true)]
async fn a_stopped_watch_keeps_the_connection() {
    let (mut io, _client) = connection(b"GET /a HTTP/1.1\r\nhost: t\r\n\r\n").await;
    let first = head(&mut io);
    io.begin(&first);
    assert!(io.end_request());
    let ClientIo { rd, buf, .. } = &mut io;
    let (watch, read) = ClientWatch::start(rd, buf);
    let mut read = std::pin::pin!(read);
    assert!(watch.stop(read.as_mut(), buf).await, "cancelled, not closed");
}
