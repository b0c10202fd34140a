//! The client side, for the CLI, the demo and the alert webhook: one request
//! per connection, over plain HTTP or TLS (rustls, webpki roots plus an
//! optional CA file, for an admin API served with `--admin-tls-cert`).

use rustls::pki_types::ServerName;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A response: status and whole body.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// Status code.
    pub(crate) status: u16,
    /// Body.
    pub(crate) body: Vec<u8>,
}

/// Where requests go: `http://HOST:PORT` or `https://HOST:PORT`.
#[derive(Clone)]
pub(crate) struct Endpoint {
    base: String,
    authority: String,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

impl Endpoint {
    /// Parses a base URL; `https://` trusts the webpki roots plus the
    /// certificates in `ca_file`.
    pub(crate) fn parse(base: &str, ca_file: Option<&Path>) -> Result<Endpoint, String> {
        let (https, rest) = match (base.strip_prefix("http://"), base.strip_prefix("https://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => {
                return Err(format!(
                    "{base:?}: expected http://HOST:PORT or https://HOST:PORT"
                ))
            }
        };
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains(['/', '@', '?', '#']) {
            return Err(format!("{base:?}: expected http[s]://HOST:PORT"));
        }
        let tls = if https {
            let host = match authority.rsplit_once(':') {
                Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
                _ => authority,
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let name = ServerName::try_from(host.to_owned()).map_err(|e| format!("{base:?}: {e}"))?;
            let config = crate::tls::client_config(ca_file)?;
            Some((config, name))
        } else {
            None
        };
        Ok(Endpoint {
            base: base.trim_end_matches('/').to_owned(),
            authority: authority.to_owned(),
            tls,
        })
    }

    /// Sends one request and reads the whole response.
    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Reply, String> {
        let (base, host) = (&self.base, &self.authority);
        let addr = host
            .to_socket_addrs()
            .map_err(|e| format!("{host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host}: no address"))?;
        let s = TcpStream::connect_timeout(&addr, timeout)
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
        let mut out = zeroize::Zeroizing::new(head.into_bytes());
        out.extend_from_slice(body.unwrap_or_default());
        let raw = match &self.tls {
            None => exchange(s, &out),
            Some((config, name)) => {
                let conn = rustls::ClientConnection::new(config.clone(), name.clone())
                    .map_err(|e| format!("TLS to {base}: {e}"))?;
                exchange(rustls::StreamOwned::new(conn, s), &out)
            }
        }
        .map_err(|e| format!("talking to {base}: {e}"))?;
        parse_reply(&raw).ok_or_else(|| format!("{base} sent a malformed HTTP response"))
    }
}

/// Writes `request` and reads until the server closes.
fn exchange(mut s: impl Read + Write, request: &[u8]) -> std::io::Result<Vec<u8>> {
    s.write_all(request)?;
    s.flush()?;
    let mut raw = Vec::new();
    match s.read_to_end(&mut raw) {
        Ok(_) => Ok(raw),
        // A TLS peer that closes without close_notify after a complete
        // response: what arrived is judged by `parse_reply`.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => Ok(raw),
        Err(e) => Err(e),
    }
}

/// Sends one request to a plain-HTTP or system-trusted `base`.
pub(crate) fn call(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<Reply, String> {
    Endpoint::parse(base, None)?.call(method, path, token, body, timeout)
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
        let e = Endpoint::parse("http://127.0.0.1:7071/", None).unwrap();
        assert_eq!(
            (e.base.as_str(), e.authority.as_str()),
            ("http://127.0.0.1:7071", "127.0.0.1:7071")
        );
        assert!(e.tls.is_none());
        assert!(Endpoint::parse("https://localhost:1", None)
            .unwrap()
            .tls
            .is_some());
        assert!(Endpoint::parse("ftp://x:1", None).is_err());
        assert!(Endpoint::parse("http://x:1/api", None).is_err());
        assert!(Endpoint::parse("http://u@x:1", None).is_err());
        let r = parse_reply(b"HTTP/1.1 409 Conflict\r\ncontent-length: 2\r\n\r\n{}extra").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (409, &b"{}"[..]));
        assert!(parse_reply(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab").is_none());
        assert!(parse_reply(b"garbage").is_none());
    }
}
