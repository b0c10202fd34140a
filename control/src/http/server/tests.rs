use super::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

/// A server with an echo handler, short deadlines and a 64-byte body limit;
/// answers `input` sent on one connection, all that comes back until the
/// server closes or goes quiet for a second.
fn run(input: &[u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let servers = Servers::new().unwrap();
    let limits = Limits {
        max_head: 1024,
        max_body: 64,
        idle: Duration::from_secs(5),
        head_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(1),
        max_connections: 4,
        max_per_peer: 4,
    };
    servers
        .spawn(
            "test",
            listener,
            None,
            limits,
            Arc::new(|_: &Request| Ok(usize::MAX)),
            Arc::new(|r: &Request| {
                Response::text(
                    200,
                    "text/plain",
                    format!("{} {} {}", r.method, r.path, String::from_utf8_lossy(&r.body)),
                )
            }),
        )
        .unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(input).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    servers.shutdown(Duration::from_millis(100));
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn keep_alive_and_pipelining() {
    let out = run(b"POST /a HTTP/1.1\r\ncontent-length: 3\r\n\r\nabcGET /b?x=1 HTTP/1.1\r\n\r\n");
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 2, "{out}");
    assert!(out.contains("POST /a abc") && out.contains("GET /b "), "{out}");
}

#[test]
fn chunked_bodies_are_decoded() {
    let out =
        run(b"POST /c HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n");
    assert!(out.contains("POST /c abcde"), "{out}");
}

#[test]
fn connection_close_is_honoured() {
    let out = run(b"GET /a HTTP/1.1\r\nconnection: close\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
    assert_eq!(out.matches("HTTP/1.1 200").count(), 1, "{out}");
    assert!(out.contains("connection: close"), "{out}");
}

#[test]
fn bad_requests_get_4xx_and_close() {
    for (input, status) in [
        (&b"garbage\r\n\r\n"[..], "400"),
        (
            b"POST /a HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab",
            "400",
        ),
        (b"POST /a HTTP/1.1\r\ncontent-length: -1\r\n\r\n", "400"),
        (b"POST /a HTTP/1.1\r\ncontent-length: 65\r\n\r\n", "413"),
        // hyper refuses a transfer-coding it cannot frame with a 400.
        (b"POST /a HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n", "400"),
        (
            b"POST /a HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            "400",
        ),
        (
            b"POST /a HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n41\r\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
            "413",
        ),
        (b"GET http://x/ HTTP/1.1\r\n\r\n", "400"),
    ] {
        let out = run(input);
        assert!(
            out.starts_with(&format!("HTTP/1.1 {status}")),
            "{}: {out}",
            String::from_utf8_lossy(input)
        );
        assert_eq!(out.matches("HTTP/1.1").count(), 1, "{out}");
    }
    let huge = format!("GET / HTTP/1.1\r\nx: {}\r\n\r\n", "a".repeat(9000));
    let out = run(huge.as_bytes());
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
}

#[test]
fn length_and_chunked_together_are_read_as_chunked_and_end_the_connection() {
    // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length, and the
    // connection is closed after the answer, so nothing can be smuggled
    // behind the body.
    let out = run(
        b"POST /a HTTP/1.1\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
    );
    assert_eq!(out.matches("HTTP/1.1 200").count(), 1, "{out}");
    assert!(out.contains("POST /a xy"), "{out}");
}

#[test]
fn expect_continue_gets_100_first() {
    let out = run(b"POST /e HTTP/1.1\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\nhi");
    assert!(
        out.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200"),
        "{out}"
    );
}

#[test]
fn no_content_has_no_body_headers() {
    use axum::response::IntoResponse;
    let r = Response::empty(204)
        .with_header("x-sluice-version", "3".into())
        .into_response();
    assert_eq!(r.status(), 204);
    assert!(r.headers().get("content-type").is_none());
    assert_eq!(r.headers()["x-sluice-version"], "3");
}

// ---- Against a hostile client, on a real socket ----------------------------

/// A server on 127.0.0.1 with short deadlines whose admission wants
/// `authorization: ok`; returns its address and how many requests reached
/// the handler.
fn hostile_server(max_connections: usize, max_per_peer: usize) -> (SocketAddr, Arc<AtomicUsize>, Servers) {
    hostile_server_on("127.0.0.1:0", max_connections, max_per_peer)
}

fn hostile_server_on(
    bind: &str,
    max_connections: usize,
    max_per_peer: usize,
) -> (SocketAddr, Arc<AtomicUsize>, Servers) {
    let listener = TcpListener::bind(bind).unwrap();
    let addr = listener.local_addr().unwrap();
    let handled = Arc::new(AtomicUsize::new(0));
    let h = handled.clone();
    let limits = Limits {
        max_head: 16 * 1024,
        max_body: 64 * 1024 * 1024,
        idle: Duration::from_secs(30),
        head_timeout: Duration::from_millis(400),
        body_timeout: Duration::from_millis(400),
        max_connections,
        max_per_peer,
    };
    let servers = Servers::new().unwrap();
    servers
        .spawn(
            "test",
            listener,
            None,
            limits,
            Arc::new(|r: &Request| match r.header("authorization") {
                Some("ok") => Ok(usize::MAX),
                _ => Err(Response::error(401, "who are you")),
            }),
            Arc::new(move |r: &Request| {
                h.fetch_add(1, Ordering::SeqCst);
                Response::text(200, "text/plain", format!("{} bytes", r.body.len()))
            }),
        )
        .unwrap();
    (addr, handled, servers)
}

/// Everything the server sends until it closes (or 5 s pass).
fn read_all(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_trickling_client_is_cut_at_the_deadline() {
    let (addr, handled, _servers) = hostile_server(8, 8);
    for (head, then) in [
        // The head, a byte at a time, well within any per-read timeout.
        (
            "GET /slow HTTP/1.1\r\nauthorization: ok\r\nx-pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
            "",
        ),
        // A whole head, then the body a byte at a time.
        (
            "",
            "POST /slow HTTP/1.1\r\nauthorization: ok\r\ncontent-length: 1000\r\n\r\n",
        ),
    ] {
        let mut s = TcpStream::connect(addr).unwrap();
        let started = Instant::now();
        s.write_all(then.as_bytes()).unwrap();
        let trickle = if head.is_empty() {
            "b".repeat(1000)
        } else {
            head.to_owned()
        };
        for b in trickle.bytes() {
            if s.write_all(&[b]).is_err() || started.elapsed() > Duration::from_secs(3) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = read_all(&mut s);
        assert!(out.starts_with("HTTP/1.1 408"), "{out}");
        // Cut at the 400 ms deadline, not after the whole trickle (3 s).
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(handled.load(Ordering::SeqCst), 0);
}

#[test]
fn a_large_unauthenticated_body_is_refused_before_it_is_read() {
    let (addr, handled, _servers) = hostile_server(8, 8);
    let mut s = TcpStream::connect(addr).unwrap();
    // 60 MiB announced; not a byte of it is sent, yet the answer comes: the
    // server did not wait for (or read) the body.
    s.write_all(b"POST /v1/records HTTP/1.1\r\ncontent-length: 62914560\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let out = read_all(&mut s);
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(handled.load(Ordering::SeqCst), 0);
    // Over the listener's cap too: still the 401, admission comes first.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"POST /v1/records HTTP/1.1\r\ncontent-length: 104857600\r\n\r\n")
        .unwrap();
    let out = read_all(&mut s);
    assert!(
        out.starts_with("HTTP/1.1 401") && out.ends_with(r#"{"error":"who are you"}"#),
        "{out}"
    );
    // Authenticated and over the cap: a 413 with the JSON body, unread.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"POST /v1/records HTTP/1.1\r\nauthorization: ok\r\ncontent-length: 104857600\r\n\r\n")
        .unwrap();
    let out = read_all(&mut s);
    assert!(
        out.starts_with("HTTP/1.1 413") && out.contains(r#"{"error":"request body larger"#),
        "{out}"
    );
    assert_eq!(handled.load(Ordering::SeqCst), 0);
    // The same, authenticated, is read and handled.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(
        b"POST /x HTTP/1.1\r\nauthorization: ok\r\ncontent-length: 3\r\nconnection: close\r\n\r\nabc",
    )
    .unwrap();
    assert!(read_all(&mut s).contains("3 bytes"));
}

#[test]
fn one_peer_cannot_take_every_slot() {
    // Dual-stack, so that 127.0.0.1 and ::1 are two peers of one server.
    let (addr, _, _servers) = hostile_server_on("[::]:0", 8, 2);
    let v4: SocketAddr = format!("127.0.0.1:{}", addr.port()).parse().unwrap();
    let v6: SocketAddr = format!("[::1]:{}", addr.port()).parse().unwrap();
    // 127.0.0.1 holds its two connections open...
    let held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(v4).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut third = TcpStream::connect(v4).unwrap();
    assert!(read_all(&mut third).starts_with("HTTP/1.1 503"));
    // ...and another address still gets in.
    let mut other = TcpStream::connect(v6).unwrap();
    other
        .write_all(b"GET /x HTTP/1.1\r\nauthorization: ok\r\nconnection: close\r\n\r\n")
        .unwrap();
    assert!(read_all(&mut other).starts_with("HTTP/1.1 200"));
    // Once it lets one go, it may connect again.
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let mut again = TcpStream::connect(v4).unwrap();
    again
        .write_all(b"GET /x HTTP/1.1\r\nauthorization: ok\r\nconnection: close\r\n\r\n")
        .unwrap();
    assert!(read_all(&mut again).starts_with("HTTP/1.1 200"));
}

#[test]
fn a_refused_request_gets_no_100_continue() {
    let (addr, handled, _servers) = hostile_server(8, 8);
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"POST /x HTTP/1.1\r\nexpect: 100-continue\r\ncontent-length: 10\r\n\r\n")
        .unwrap();
    let out = read_all(&mut s);
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
    assert!(!out.contains("100 Continue"), "{out}");
    assert_eq!(handled.load(Ordering::SeqCst), 0);
}

#[test]
fn shutdown_lets_a_request_in_flight_finish_and_closes_idle_connections() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let servers = Servers::new().unwrap();
    let limits = Limits {
        max_head: 16 * 1024,
        max_body: 1024,
        idle: Duration::from_secs(30),
        head_timeout: Duration::from_secs(5),
        body_timeout: Duration::from_secs(5),
        max_connections: 8,
        max_per_peer: 8,
    };
    servers
        .spawn(
            "test",
            listener,
            None,
            limits,
            Arc::new(|_: &Request| Ok(usize::MAX)),
            Arc::new(|_: &Request| {
                std::thread::sleep(Duration::from_millis(300));
                Response::text(200, "text/plain", "done".into())
            }),
        )
        .unwrap();
    // An idle keep-alive connection, after one answered request.
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.write_all(b"GET /a HTTP/1.1\r\n\r\n").unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    // A request still being answered when the shutdown starts.
    let mut busy = TcpStream::connect(addr).unwrap();
    busy.write_all(b"GET /b HTTP/1.1\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    servers.shutdown(Duration::from_secs(3));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let out = read_all(&mut busy);
    assert!(out.starts_with("HTTP/1.1 200") && out.ends_with("done"), "{out}");
    let rest = read_all(&mut idle);
    assert!(!rest.contains("HTTP/1.1"), "{rest}");
    // Nothing listens any more.
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn an_idle_connection_is_closed_and_a_busy_one_is_not() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let servers = Servers::new().unwrap();
    let limits = Limits {
        max_head: 16 * 1024,
        max_body: 1024,
        idle: Duration::from_millis(300),
        head_timeout: Duration::from_secs(5),
        body_timeout: Duration::from_secs(5),
        max_connections: 8,
        max_per_peer: 8,
    };
    servers
        .spawn(
            "test",
            listener,
            None,
            limits,
            Arc::new(|_: &Request| Ok(usize::MAX)),
            Arc::new(|_: &Request| Response::text(200, "text/plain", "ok".into())),
        )
        .unwrap();
    // Requests 200 ms apart: each wait is under the idle limit, their sum is not.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for _ in 0..5 {
        s.write_all(b"GET /a HTTP/1.1\r\n\r\n").unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Then quiet: closed soon after the idle limit.
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
