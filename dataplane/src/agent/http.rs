//! The agent's HTTP client for its two conversations with the control plane
//! (the snapshot long poll and record shipping): ureq (3, rustls with ring),
//! one keep-alive connection per [`Client`], no proxy from the environment,
//! no redirects, a whole-exchange time limit per request.
//!
//! Both agent requests are safe to repeat (a snapshot GET is read-only; a
//! record batch is idempotent by `(dataplane, seq)`), so a failed exchange is
//! simply tried again by the loops that own the client.

use std::path::Path;
use std::time::Duration;
use zeroize::Zeroizing;

/// Largest response body accepted (a snapshot of many tenants stays far below).
const MAX_BODY: u64 = 256 * 1024 * 1024;
/// Largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// Where the control plane is: parsed once from `--control`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// `https://`.
    pub(crate) tls: bool,
    /// Host name or IP literal (without IPv6 brackets), for connecting and SNI.
    pub(crate) host: String,
    /// TCP port.
    pub(crate) port: u16,
    /// The `Host` header value.
    pub(crate) authority: String,
    /// Path prefix before `/v1/...`, without a trailing slash (usually empty).
    pub(crate) base_path: String,
}

impl Endpoint {
    /// Parses `http://host[:port][/prefix]` or `https://...`.
    pub(crate) fn parse(url: &str) -> Result<Endpoint, String> {
        let url = url.trim();
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("control url {url:?} must start with http:// or https://"));
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if path.contains(['?', '#']) {
            return Err(format!("control url {url:?} must not have a query or fragment"));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let Some(end) = v6.find(']') else {
                return Err(format!("control url {url:?}: bad IPv6 literal"));
            };
            let port = match &v6[end + 1..] {
                "" => default_port,
                p => p
                    .strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| format!("control url {url:?}: bad port"))?,
            };
            (&v6[..end], port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (
                    h,
                    p.parse().map_err(|_| format!("control url {url:?}: bad port"))?,
                ),
                None => (authority, default_port),
            }
        };
        if host.is_empty()
            || host
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b == b'@' || b.is_ascii_control())
        {
            return Err(format!("control url {url:?}: bad host"));
        }
        Ok(Endpoint {
            tls,
            host: host.to_string(),
            port,
            authority: authority.to_string(),
            base_path: path.trim_end_matches('/').to_string(),
        })
    }
}

impl Endpoint {
    /// Whether the host is this machine: `localhost` or a loopback address
    /// literal (127.0.0.0/8, ::1, or ::ffff:127.x.y.z). Decided from the text
    /// alone, before any name look-up, so DNS cannot make a remote host pass.
    pub(crate) fn is_loopback(&self) -> bool {
        let host = self.host.trim_end_matches('.');
        if host.eq_ignore_ascii_case("localhost") {
            return true;
        }
        host.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
    }
}

/// Why a request got no response.
#[derive(Debug)]
pub(crate) enum HttpError {
    /// No connection could be opened (refused, unreachable, no address).
    Connect(String),
    /// No complete response within the request's time limit.
    Timeout,
    /// Anything else: the connection failed mid-exchange, the answer was not
    /// valid HTTP/1.1 or too large, TLS failed.
    Exchange(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Connect(e) => write!(f, "connect: {e}"),
            HttpError::Timeout => f.write_str("timed out"),
            HttpError::Exchange(e) => f.write_str(e),
        }
    }
}

impl From<ureq::Error> for HttpError {
    fn from(e: ureq::Error) -> HttpError {
        match e {
            ureq::Error::Timeout(_) => HttpError::Timeout,
            ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => HttpError::Connect(e.to_string()),
            ureq::Error::Io(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) =>
            {
                HttpError::Timeout
            }
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                HttpError::Connect(io.to_string())
            }
            e => HttpError::Exchange(e.to_string()),
        }
    }
}

/// A response: status and whole body.
#[derive(Debug)]
pub(crate) struct Response {
    /// Status code.
    pub(crate) status: u16,
    /// Body, de-chunked.
    pub(crate) body: Vec<u8>,
    /// Control's own `x-sluice-*` headers (name in lower case, value).
    pub(crate) sluice_headers: Vec<(String, String)>,
}

impl Response {
    /// The value of control's header `name` (lower case, `x-sluice-…`).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.sluice_headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A request body and its content type.
pub(crate) struct Body<'a> {
    /// `Content-Type` value.
    pub(crate) content_type: &'a str,
    /// The bytes.
    pub(crate) bytes: &'a [u8],
}

/// The roots an `https://` control plane is checked against: the webpki
/// (Mozilla) roots, plus the certificates of `ca_file` (a private CA).
pub(crate) fn roots(ca_file: Option<&Path>) -> Result<ureq::tls::RootCerts, String> {
    let mut certs: Vec<ureq::tls::Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|c| ureq::tls::Certificate::from_der(c.as_ref()))
        .collect();
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let before = certs.len();
        for item in ureq::tls::parse_pem(&pem) {
            if let ureq::tls::PemItem::Certificate(c) =
                item.map_err(|e| format!("{}: {e}", path.display()))?
            {
                certs.push(c.to_owned());
            }
        }
        if certs.len() == before {
            return Err(format!("{}: no certificate found", path.display()));
        }
    }
    Ok(ureq::tls::RootCerts::new_with_certs(&certs))
}

/// A blocking HTTP/1.1 client for one endpoint, holding one keep-alive connection.
pub(crate) struct Client {
    agent: ureq::Agent,
    /// `scheme://authority/base_path`, without a trailing slash.
    base: String,
    /// `Bearer <enrollment token>`, wiped when dropped (ureq's own copy of
    /// the header is marked sensitive, so it never appears in a `Debug`).
    authorization: Zeroizing<String>,
}

impl Client {
    /// A client for `endpoint`; `roots` (see [`roots`]) must be set for an
    /// `https://` endpoint.
    pub(crate) fn new(
        endpoint: &Endpoint,
        roots: Option<ureq::tls::RootCerts>,
        token: &Zeroizing<String>,
        connect_timeout: Duration,
    ) -> Client {
        let mut tls = ureq::tls::TlsConfig::builder().provider(ureq::tls::TlsProvider::Rustls);
        if let Some(roots) = roots {
            tls = tls.root_certs(roots);
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .https_only(endpoint.tls)
            .tls_config(tls.build())
            .timeout_connect(Some(connect_timeout))
            .max_idle_connections(1)
            .max_idle_connections_per_host(1)
            .max_response_header_size(MAX_HEAD)
            .user_agent(concat!("sluice-dataplane/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let scheme = if endpoint.tls { "https" } else { "http" };
        let mut authorization = Zeroizing::new(String::with_capacity(7 + token.len()));
        authorization.push_str("Bearer ");
        authorization.push_str(token);
        Client {
            agent,
            base: format!("{scheme}://{}{}", endpoint.authority, endpoint.base_path),
            authorization,
        }
    }

    /// Sends one request to `base_path + path` and reads the whole response,
    /// all within `timeout` (connecting included).
    pub(crate) fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Body<'_>>,
        timeout: Duration,
    ) -> Result<Response, HttpError> {
        let mut auth = ureq::http::HeaderValue::from_str(&self.authorization)
            .map_err(|_| HttpError::Exchange("the enrollment token is not a valid header value".into()))?;
        auth.set_sensitive(true);
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(ureq::http::header::AUTHORIZATION, auth)
            .header(ureq::http::header::ACCEPT, "application/json");
        let mut resp = match body {
            Some(b) => {
                let req = req
                    .header(ureq::http::header::CONTENT_TYPE, b.content_type)
                    .body(b.bytes)
                    .map_err(|e| HttpError::Exchange(e.to_string()))?;
                let req = self
                    .agent
                    .configure_request(req)
                    .timeout_global(Some(timeout))
                    .build();
                self.agent.run(req)?
            }
            None => {
                let req = req.body(()).map_err(|e| HttpError::Exchange(e.to_string()))?;
                let req = self
                    .agent
                    .configure_request(req)
                    .timeout_global(Some(timeout))
                    .build();
                self.agent.run(req)?
            }
        };
        let status = resp.status().as_u16();
        let sluice_headers = resp
            .headers()
            .iter()
            .filter(|(name, _)| name.as_str().starts_with("x-sluice-"))
            .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
            .collect();
        let body = resp.body_mut().with_config().limit(MAX_BODY).read_to_vec()?;
        Ok(Response {
            status,
            body,
            sluice_headers,
        })
    }
}
