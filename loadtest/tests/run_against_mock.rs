//! `sluice-loadtest run` against `sluice-loadtest mock`, both started as
//! processes on 127.0.0.1: every request succeeds and the token counts match
//! what the mock was told to send, for both API shapes, streamed and not.

// The helpers below are test code too: a failure should stop the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

const BIN: &str = env!("CARGO_BIN_EXE_sluice-loadtest");
const TOKENS: u64 = 9;

struct Mock {
    child: Child,
    url: String,
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_mock() -> Mock {
    let mut child = Command::new(BIN)
        .args(["mock", "--listen", "127.0.0.1:0", "--workers", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .expect(&line)
        .to_string();
    Mock { child, url }
}

fn run(url: &str, extra: &[&str]) -> serde_json::Value {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("sluice-run-test-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("report.json");
    let header = format!("x-mock-tokens: {TOKENS}");
    let out = Command::new(BIN)
        .args([
            "run",
            "--url",
            url,
            "--api-key",
            "k1",
            "--api-key",
            "k2",
            "--requests",
            "50",
        ])
        .args(["--workers", "2", "--timeout", "20s", "--quiet", "--fail-on-error"])
        .args(["--header", &header, "--json"])
        .arg(&json)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "run {extra:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    report
}

#[test]
fn every_request_ok_and_tokens_match() {
    let mock = start_mock();
    for api in ["openai", "anthropic"] {
        for (load, stream) in [
            (["--rate", "500"], true),
            (["--concurrency", "5"], true),
            (["--concurrency", "5"], false),
        ] {
            let mut extra = vec!["--api", api];
            extra.extend(load);
            if stream {
                extra.push("--stream");
            }
            let r = run(&mock.url, &extra);
            let what = format!("{extra:?}: {r:#}");
            assert_eq!(r["schema"], "sluice-loadtest.run.v1");
            assert_eq!(r["requests"]["sent"], 50, "{what}");
            assert_eq!(r["requests"]["ok"], 50, "{what}");
            assert_eq!(r["requests"]["errors"], 0, "{what}");
            assert_eq!(r["tokens"]["output"], 50 * TOKENS, "{what}");
            assert_eq!(r["tokens"]["reported"], 50 * TOKENS, "{what}");
            assert_eq!(r["tokens"]["responses_with_usage"], 50, "{what}");
            if stream {
                assert_eq!(r["requests"]["completed_streams"], 50, "{what}");
                assert_eq!(r["tokens"]["counted"], 50 * TOKENS, "{what}");
                assert_eq!(r["latency_us"]["ttft"]["count"], 50, "{what}");
                assert_eq!(r["latency_us"]["itl"]["count"], 50 * (TOKENS - 1), "{what}");
            } else {
                assert!(r["latency_us"]["ttft"].is_null(), "{what}");
            }
            assert_eq!(r["latency_us"]["e2e"]["count"], 50, "{what}");
        }
    }
}

#[test]
fn unreachable_target_fails_to_start() {
    // Bind and drop to find a port where nothing listens.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(BIN)
        .args([
            "run",
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--api-key",
            "k",
            "--requests",
            "1",
            "--rate",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = Command::new(BIN)
        .args([
            "run",
            "--url",
            "ftp://x",
            "--api-key",
            "k",
            "--requests",
            "1",
            "--rate",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// `compare` with only the direct target needs nothing but the mock: its
/// rounds add up and the JSON has the documented shape.
#[test]
fn compare_direct_only() {
    let dir = std::env::temp_dir().join(format!("sluice-compare-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("compare.json");
    let out = Command::new(BIN)
        .args([
            "compare",
            "--targets",
            "direct",
            "--rate",
            "100",
            "--duration",
            "300ms",
            "--rounds",
            "2",
        ])
        .args(["--warmup", "0s", "--tokens", "4", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(v["schema"], "sluice-loadtest.compare.v1");
    assert_eq!(v["mode"], "latency");
    let side = &v["sides"][0];
    assert_eq!(side["name"], "direct");
    assert_eq!(side["report"]["requests"]["ok"], 60, "{v:#}");
    assert_eq!(side["report"]["tokens"]["output"], 240);
    assert!(side["proxy_cpu_percent"].is_null());
    assert!(String::from_utf8_lossy(&out.stdout).contains("direct"));
}
