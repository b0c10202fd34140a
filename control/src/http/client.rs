//! The client side, for the CLI and the demo: one request per connection,
//! plain HTTP (the admin API listens on loopback).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// A response: status and whole body.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// Status code.
    pub(crate) status: u16,
    /// Body.
    pub(crate) body: Vec<u8>,
}

/// `host:port` of an `http://host:port[/]` base URL.
pub(crate) fn authority(base: &str) -> Result<&str, String> {
    let rest = base.strip_prefix("http://").ok_or_else(|| {
        format!("{base:?}: the admin URL must be http://HOST:PORT (the admin API is plain HTTP on a trusted address)")
    })?;
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') {
        return Err(format!("{base:?}: expected http://HOST:PORT"));
    }
    Ok(rest)
}

/// Sends one request to `base` and reads the whole response.
pub(crate) fn call(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<Reply, String> {
    let host = authority(base)?;
    let addr = host
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot reach {base} ({e}); is `sluice-control serve` running?"))?;
    s.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let _ = s.set_nodelay(true);
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("authorization: Bearer {t}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            b.len()
        ));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.unwrap_or_default());
    s.write_all(&out).map_err(|e| format!("sending to {base}: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("reading from {base}: {e}"))?;
    parse_reply(&raw).ok_or_else(|| format!("{base} sent a malformed HTTP response"))
}

/// Parses a whole HTTP/1.1 response (framed by Content-Length or by close).
pub(crate) fn parse_reply(raw: &[u8]) -> Option<Reply> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(n) = resp.parse(raw).ok()? else {
        return None;
    };
    let status = resp.code?;
    let len = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<usize>().ok());
    let rest = &raw[n..];
    let body = match len {
        Some(l) => rest.get(..l)?.to_vec(),
        None => rest.to_vec(),
    };
    Some(Reply { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_and_reply_parsing() {
        assert_eq!(authority("http://127.0.0.1:7071/"), Ok("127.0.0.1:7071"));
        assert!(authority("https://x:1").is_err());
        assert!(authority("http://x:1/api").is_err());
        let r = parse_reply(b"HTTP/1.1 409 Conflict\r\ncontent-length: 2\r\n\r\n{}extra").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (409, &b"{}"[..]));
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab").is_none());
        assert!(parse_reply(b"garbage").is_none());
    }
}
