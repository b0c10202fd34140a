//! The client side, for the CLI, the demo and the alert webhook: ureq (3,
//! rustls with ring), one request at a time, over plain HTTP or TLS (the
//! webpki roots, or the certificates of a CA file for an admin API served
//! with `--admin-tls-cert` behind a private CA).

use std::path::Path;
use std::time::Duration;

/// Largest response body read.
const MAX_REPLY: u64 = 1 << 30;

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
    tls: bool,
    roots: ureq::tls::RootCerts,
}

impl Endpoint {
    /// Parses a base URL; `https://` trusts the webpki roots, or instead the
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
        let roots = match ca_file {
            Some(path) if https => ca_roots(path)?,
            _ => ureq::tls::RootCerts::WebPki,
        };
        Ok(Endpoint {
            base: base.trim_end_matches('/').to_owned(),
            tls: https,
            roots,
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
        let base = &self.base;
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(self.roots.clone())
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .https_only(self.tls)
            .tls_config(tls)
            .build()
            .into();
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{base}{path}"));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let sent = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(b)
                .map_err(|e| e.to_string())
                .map(|r| agent.run(r)),
            None => req.body(()).map_err(|e| e.to_string()).map(|r| agent.run(r)),
        }?;
        let mut resp = sent.map_err(|e| match e {
            ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
                format!("cannot reach {base} ({e}); is `sluice-control serve` running?")
            }
            e => format!("talking to {base}: {e}"),
        })?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_REPLY)
            .read_to_vec()
            .map_err(|e| format!("talking to {base}: {e}"))?;
        Ok(Reply { status, body })
    }
}

/// The certificates of a PEM file, as the only roots trusted.
fn ca_roots(path: &Path) -> Result<ureq::tls::RootCerts, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let ureq::tls::PemItem::Certificate(c) = item.map_err(|e| format!("{}: {e}", path.display()))? {
            certs.push(c);
        }
    }
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", path.display()));
    }
    Ok(ureq::tls::RootCerts::new_with_certs(&certs))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        let e = Endpoint::parse("http://127.0.0.1:7071/", None).unwrap();
        assert_eq!(e.base.as_str(), "http://127.0.0.1:7071");
        assert!(!e.tls);
        assert!(Endpoint::parse("https://localhost:1", None).unwrap().tls);
        assert!(Endpoint::parse("ftp://x:1", None).is_err());
        assert!(Endpoint::parse("http://x:1/api", None).is_err());
        assert!(Endpoint::parse("http://u@x:1", None).is_err());
        let missing = Path::new("/nonexistent/ca.pem");
        assert!(Endpoint::parse("https://localhost:1", Some(missing)).is_err());
    }
}
