//! Helpers for the privacy tests (`tests/tests/privacy.rs`): an upstream
//! whose completions carry a canary, `serve` started with its clock moved,
//! and byte scans.

use crate::control::{cli_at, control_bin, Logged};
use crate::WAIT;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The header that picks what [`Scripted`] answers.
pub const SCRIPT_HEADER: &str = "x-mock-script";

/// An OpenAI-dialect upstream whose every completion is a canary, so a test
/// can look for completion text where it must not be. What it answers
/// depends on the request's [`SCRIPT_HEADER`]:
///
/// - absent or `json`: a 200 chat completion whose content is the canary;
/// - `sse-cut`: a 200 event stream with one delta holding the canary, then
///   the connection closes (no terminating chunk, no `[DONE]`);
/// - `401`: `401 Unauthorized` whose error message echoes the `Authorization`
///   header it got (the provider key) and the canary, as some providers
///   echo a rejected key; then it closes.
#[derive(Debug)]
pub struct Scripted {
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Scripted {
    /// Starts answering with completion text `canary`.
    pub fn start(canary: &str) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the scripted upstream");
        let addr = listener.local_addr().expect("local_addr");
        let canary = canary.to_owned();
        std::thread::Builder::new()
            .name("scripted-upstream".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    let Ok(conn) = conn else { continue };
                    let canary = canary.clone();
                    let _ = std::thread::Builder::new().spawn(move || serve(conn, &canary));
                }
            })
            .expect("spawning the scripted upstream");
        Scripted { addr }
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Reads one whole request (head and body) off `conn`; returns its head, or
/// `None` when the connection closed first.
fn read_request(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    let mut tmp = [0u8; 8192];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let lower = head.to_ascii_lowercase();
            let body_end = if lower.contains("transfer-encoding: chunked") {
                buf[end + 4..]
                    .windows(5)
                    .position(|w| w == b"0\r\n\r\n")
                    .map(|p| end + 4 + p + 5)
            } else {
                let len: usize = lower
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                (buf.len() >= end + 4 + len).then_some(end + 4 + len)
            };
            if let Some(e) = body_end {
                buf.drain(..e);
                return Some(head);
            }
        }
        match conn.read(&mut tmp) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn serve(mut conn: TcpStream, canary: &str) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let mut buf = Vec::new();
    while let Some(head) = read_request(&mut conn, &mut buf) {
        let script = header(&head, SCRIPT_HEADER).unwrap_or("json").to_owned();
        let ok = match script.as_str() {
            "sse-cut" => {
                let event = serde_json::json!({
                    "id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 1,
                    "model": "scripted-model",
                    "choices": [{"index": 0, "delta": {"role": "assistant", "content": canary}, "finish_reason": null}],
                });
                let data = format!("data: {event}\n\n");
                let out = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{data}\r\n",
                    data.len()
                );
                let _ = conn.write_all(out.as_bytes());
                let _ = conn.flush();
                false
            }
            "401" => {
                let auth = header(&head, "authorization").unwrap_or("").to_owned();
                let body = serde_json::json!({"error": {
                    "message": format!("Incorrect API key provided: {auth}. {canary}"),
                    "type": "invalid_request_error", "param": null, "code": "invalid_api_key",
                }})
                .to_string();
                let out = format!(
                    "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(out.as_bytes());
                false
            }
            _ => {
                let body = serde_json::json!({
                    "id": "chatcmpl-scripted", "object": "chat.completion", "created": 1,
                    "model": "scripted-model",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": canary}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
                })
                .to_string();
                let out = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                conn.write_all(out.as_bytes()).is_ok()
            }
        };
        if !ok {
            let _ = conn.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// `sluice-control serve` with its clock moved by `--test-only-clock-offset-days`, on
/// an existing data directory (the usual [`crate::control::Control`] cannot
/// move its clock).
#[derive(Debug)]
pub struct Clocked {
    /// The process.
    pub proc: Logged,
    /// Admin API.
    pub admin: SocketAddr,
    data: PathBuf,
}

fn parse_addr(text: &str) -> SocketAddr {
    text.split_whitespace()
        .next()
        .and_then(|a| a.rsplit("://").next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("serve printed an address that does not parse: {text:?}"))
}

impl Clocked {
    /// Starts `serve` on `data` (sync on `sync`), its clock `days` ahead, logs in `logs`.
    pub fn start(data: &Path, logs: &Path, sync: SocketAddr, days: i64) -> Clocked {
        let mut cmd = Command::new(control_bin());
        cmd.args([
            "serve",
            "--admin",
            "127.0.0.1:0",
            "--sync",
            &sync.to_string(),
            "--data",
        ])
        .arg(data)
        .arg("--test-only-clock-offset-days")
        .arg(days.to_string())
        .env_remove("SLUICE_MASTER_KEY")
        .env_remove("SLUICE_DATA")
        .env_remove("SLUICE_CLOCK_OFFSET_DAYS")
        .env("RUST_LOG", "info")
        .env_remove("RUST_BACKTRACE");
        let mut proc = Logged::spawn("control-clocked", cmd, logs);
        let admin = parse_addr(&proc.wait_line("admin listening on ", WAIT));
        proc.wait_line("sync listening on ", WAIT);
        Clocked {
            proc,
            admin,
            data: data.to_owned(),
        }
    }

    /// Runs the CLI against it.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli_at(self.admin, &self.data, args, None)
    }

    /// Runs the CLI and insists that it succeeds; returns stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "sluice-control {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("CLI stdout is UTF-8")
    }

    /// Runs a CLI command with `--json` and parses its stdout.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} --json printed no JSON ({e}): {out}"))
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        self.proc.kill();
    }
}

/// Offsets of every occurrence of `needle` in `hay`.
pub fn occurrences(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return Vec::new();
    }
    hay.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

/// Whether `hay` holds `needle`.
pub fn contains(hay: &[u8], needle: &str) -> bool {
    !occurrences(hay, needle.as_bytes()).is_empty()
}

/// The bytes of `path` (empty when it does not exist).
pub fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

/// Lower-case hex SHA-256 of `s`.
pub fn sha256_hex(s: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, s.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_occurrence() {
        assert_eq!(occurrences(b"abcabca", b"a"), [0, 3, 6]);
        assert!(occurrences(b"ab", b"abc").is_empty());
        assert!(contains(b"xx127.0.0.1:80", "127.0.0.1"));
        assert_eq!(sha256_hex("abc").len(), 64);
    }
}
