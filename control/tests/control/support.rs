//! Starting `serve`, running the CLI, and raw HTTP against both APIs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_sluice-control");

/// A fresh directory under the system temp dir.
pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-control-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running `sluice-control serve`.
/// The bearer part of a whole token (`sdp-ID-BEARER-KEY` → `sdp-ID-BEARER`).
pub(crate) fn bearer(full: &str) -> String {
    full.rsplit_once('-')
        .map(|(b, _)| b.to_owned())
        .unwrap_or_default()
}

/// The key secret of a whole token (its last part), never sent to control.
#[allow(dead_code)]
pub(crate) fn key_secret(full: &str) -> [u8; 32] {
    sluice_contract::crypto::unhex::<32>(full.rsplit('-').next().unwrap()).unwrap()
}

pub(crate) struct Serve {
    child: Option<Child>,
    pub(crate) admin: String,
    admin_tls: bool,
    pub(crate) sync: String,
    pub(crate) data: PathBuf,
}

impl Serve {
    pub(crate) fn start(data: &Path, extra: &[&str]) -> Serve {
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--admin",
                "127.0.0.1:0",
                "--sync",
                "127.0.0.1:0",
                "--data",
            ])
            .arg(data)
            .args(extra)
            .env_remove("SLUICE_MASTER_KEY")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // "admin listening on ADDR[ (TLS)]"
        let mut addr = |prefix: &str| -> (String, bool) {
            let line = lines.next().expect("serve exited early").unwrap();
            let rest = line
                .strip_prefix(prefix)
                .unwrap_or_else(|| panic!("unexpected line {line:?}"));
            let addr = rest.split_whitespace().next().unwrap().to_owned();
            (addr, rest.ends_with("(TLS)"))
        };
        let (admin, admin_tls) = addr("admin listening on ");
        let (sync, _) = addr("sync listening on ");
        Serve {
            child: Some(child),
            admin,
            admin_tls,
            sync,
            data: data.to_owned(),
        }
    }

    /// The URL the CLI is given: https with the certificate's name when
    /// the admin API serves TLS.
    pub(crate) fn admin_url(&self) -> String {
        match self.admin_tls {
            false => format!("http://{}", self.admin),
            true => format!("https://localhost:{}", self.admin.rsplit(':').next().unwrap()),
        }
    }

    /// Runs the CLI against this serve, feeding `stdin`.
    pub(crate) fn cli(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .arg("--admin")
            .arg(self.admin_url())
            .env("SLUICE_DATA", &self.data)
            .env_remove("SLUICE_ADMIN_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        drop(input);
        child.wait_with_output().unwrap()
    }

    /// `dataplane enroll ID`: the whole token (the data plane's token file).
    #[allow(dead_code)]
    pub(crate) fn enroll_full(&self, id: &str) -> String {
        self.ok(&["dataplane", "enroll", id], None).trim().to_owned()
    }

    /// `dataplane enroll ID`: the bearer part, what a data plane presents.
    #[allow(dead_code)]
    pub(crate) fn enroll(&self, id: &str) -> String {
        bearer(&self.enroll_full(id))
    }

    /// Runs the CLI and insists that it succeeds; returns stdout.
    pub(crate) fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.cli(args, stdin);
        assert!(
            out.status.success(),
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs the CLI and insists that it fails; returns stderr.
    pub(crate) fn fails(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.cli(args, stdin);
        assert!(
            !out.status.success(),
            "{args:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    pub(crate) fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data.join("admin.token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Stops with SIGTERM and waits; returns whether it exited cleanly.
    pub(crate) fn stop(mut self) -> bool {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        child.wait().unwrap().success()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A raw HTTP response.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request on its own connection.
pub(crate) fn http(addr: &str, method: &str, path: &str, token: Option<&str>, body: Option<&[u8]>) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("authorization: Bearer {t}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    if let Some(b) = body {
        s.write_all(b).unwrap();
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .expect("reading the response (timed out?)");
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no response head")
        + 4;
    let head = String::from_utf8(raw[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: raw[end..].to_vec(),
    }
}

/// A minimal valid record as the data plane would send it.
pub(crate) fn record(ts_ms: u64, tenant: &str, model: &str) -> serde_json::Value {
    serde_json::json!({
        "ts_ms": ts_ms, "tenant": tenant, "key_id": "k", "route": "chat_completions",
        "model": model, "upstream": "mock", "stream": true, "status": 200, "outcome": "ok",
        "error": null, "attempts": 1, "bytes_in": 100, "bytes_out": 200, "ttfb_us": 1000,
        "total_us": 2000, "events": 3,
        "usage": { "input_tokens": 7, "output_tokens": 11 }
    })
}
