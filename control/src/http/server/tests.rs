use super::*;
use std::io::Cursor;

/// Input from a byte string; output collected.
struct Mock {
    input: Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl Read for Mock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Hand out small pieces, so requests split across reads.
        let n = buf.len().min(7);
        self.input.read(&mut buf[..n])
    }
}

impl Write for Mock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const LIMITS: Limits = Limits {
    max_head: 1024,
    max_body: 64,
    idle: Duration::from_secs(1),
    max_connections: 1,
};

/// Serves `input` with an echo handler; returns the raw output.
fn run(input: &[u8]) -> String {
    let mut m = Mock {
        input: Cursor::new(input.to_vec()),
        output: Vec::new(),
    };
    let echo = |r: &Request| {
        Response::text(
            200,
            "text/plain",
            format!("{} {} {}", r.method, r.path, String::from_utf8_lossy(&r.body)),
        )
    };
    serve(&mut m, LIMITS, &echo);
    String::from_utf8(m.output).unwrap()
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
    assert!(out.contains("connection: close"));
}

#[test]
fn bad_requests_get_4xx_and_close() {
    for (input, status) in [
        (&b"garbage\r\n\r\n"[..], "400"),
        (
            b"POST /a HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab",
            "400",
        ),
        (
            b"POST /a HTTP/1.1\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n",
            "400",
        ),
        (b"POST /a HTTP/1.1\r\ncontent-length: -1\r\n\r\n", "400"),
        (b"POST /a HTTP/1.1\r\ncontent-length: 65\r\n\r\n", "413"),
        (b"POST /a HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n", "501"),
        (
            b"POST /a HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            "400",
        ),
        (
            b"POST /a HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n41\r\n",
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
        assert_eq!(out.matches("HTTP/1.1").count(), 1);
    }
    let huge = format!("GET / HTTP/1.1\r\nx: {}\r\n\r\n", "a".repeat(2000));
    assert!(run(huge.as_bytes()).starts_with("HTTP/1.1 431"));
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
    let mut out = Vec::new();
    write_response(
        &mut out,
        &Response::empty(204).with_header("x-sluice-version", "3".into()),
        false,
    )
    .unwrap();
    let s = String::from_utf8(out).unwrap();
    assert_eq!(s, "HTTP/1.1 204 No Content\r\nx-sluice-version: 3\r\n\r\n");
}
