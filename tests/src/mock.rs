//! The mock provider: `sluice-loadtest mock`.

use crate::http::{self, Req};
use crate::proc::Proc;
use crate::tmp::TempDir;
use crate::{bins, WAIT};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

/// How to start the mock.
#[derive(Clone, Debug)]
pub struct MockOpts {
    /// `--workers`.
    pub workers: usize,
    /// `--tls` (with `--cert-out`).
    pub tls: bool,
    /// `--require-key`.
    pub require_key: Option<String>,
    /// `--tokens`.
    pub tokens: Option<u32>,
    /// `--record` (keeps the last request for `GET /_mock/last`).
    pub record: bool,
    /// Further flags, e.g. `--status 503` to fail every request.
    pub args: Vec<String>,
}

impl Default for MockOpts {
    fn default() -> Self {
        MockOpts {
            workers: 1,
            tls: false,
            require_key: None,
            tokens: None,
            record: true,
            args: Vec::new(),
        }
    }
}

/// A running mock.
#[derive(Debug)]
pub struct Mock {
    /// The process.
    pub proc: Proc,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its base URL as printed (`http://ADDR` or `https://ADDR`).
    pub url: String,
    /// The PEM certificate it serves, with `--tls`.
    pub cert: Option<PathBuf>,
    dir: TempDir,
}

impl Mock {
    /// Starts a mock and waits until it listens.
    pub fn start(opts: MockOpts) -> Mock {
        let dir = TempDir::new("mock");
        let mut cmd = Command::new(bins::loadtest());
        cmd.arg("mock")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--workers")
            .arg(opts.workers.to_string());
        let cert = opts.tls.then(|| dir.join("cert.pem"));
        if let Some(cert) = &cert {
            cmd.arg("--tls").arg("--cert-out").arg(cert);
        }
        if let Some(key) = &opts.require_key {
            cmd.arg("--require-key").arg(key);
        }
        if let Some(n) = opts.tokens {
            cmd.arg("--tokens").arg(n.to_string());
        }
        if opts.record {
            cmd.arg("--record");
        }
        cmd.args(&opts.args);
        cmd.env_remove("MONOIO_FORCE_LEGACY_DRIVER")
            .env("RUST_LOG", "warn");
        let mut proc = Proc::spawn("mock", cmd, dir.join("mock.stderr"));
        let url = proc.wait_line("listening on ", WAIT);
        let addr: SocketAddr = url
            .rsplit("://")
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("mock printed an address that does not parse: {url:?}"));
        if let Some(cert) = &cert {
            assert!(cert.is_file(), "mock --tls did not write {}", cert.display());
        }
        Mock {
            proc,
            addr,
            url,
            cert,
            dir,
        }
    }

    /// The last request the mock received (`GET /_mock/last`), as JSON
    /// `{method, path, headers, body}`. Plain-HTTP mocks with `--record` only.
    pub fn last(&self) -> serde_json::Value {
        let r = http::request(self.addr, &Req::get("/_mock/last"));
        assert_eq!(r.status(), 200, "GET /_mock/last: {}", r.text());
        r.json()
    }

    /// Requests served so far (`GET /_mock/stats`).
    pub fn requests(&self) -> u64 {
        let r = http::request(self.addr, &Req::get("/_mock/stats"));
        assert_eq!(r.status(), 200, "GET /_mock/stats: {}", r.text());
        r.json()["requests"].as_u64().expect("requests is a number")
    }

    /// The mock's scratch directory.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}
