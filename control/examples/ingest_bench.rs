//! Records/s through the real ingest path: sync API (HTTP, JSON) → writer
//! thread → redb commit with immediate durability.
//!
//! ```text
//! cargo build --release -p sluice-control --examples --bins
//! target/release/examples/ingest_bench [--records 200000] [--batch 10000] [--connections 2]
//! ```
//!
//! Starts `sluice-control serve` (the binary beside this example's directory,
//! or `--bin PATH`) on a temporary data directory, enrolls a data plane, and
//! posts pre-built batches over keep-alive connections. Prints one line.
//!
//! With `--nats PATH` (a `nats-server` binary), it then measures export: it
//! starts `nats-server -js` on a free port, adds a sink (`POST /v1/sinks`,
//! stream `BENCH`), and times until control reports every stored record
//! acknowledged by JetStream (`sluice_control_sink_published_records_total`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{anyhow, Context};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn bin() -> anyhow::Result<PathBuf> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(p) = args
        .iter()
        .position(|a| a == "--bin")
        .and_then(|i| args.get(i + 1))
    {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().context("current exe")?;
    Ok(exe
        .parent()
        .and_then(|d| d.parent())
        .context("target dir")?
        .join("sluice-control"))
}

/// Sends one request on a keep-alive connection; returns (status, body).
fn roundtrip(
    s: &mut TcpStream,
    method: &str,
    path: &str,
    token: &str,
    body: &[u8],
) -> anyhow::Result<(u16, Vec<u8>)> {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: bench\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).context("write")?;
    s.write_all(body).context("write")?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = s.read(&mut chunk).context("read")?;
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let status: u16 = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .context("status")?;
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = s.read(&mut chunk).context("read")?;
                assert!(n > 0, "connection closed");
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok((status, buf[end + 4..end + 4 + len].to_vec()));
        }
    }
}

fn main() -> anyhow::Result<()> {
    let records = arg("--records", 200_000);
    let batch = arg("--batch", 10_000).clamp(1, 10_000);
    let connections = arg("--connections", 2).max(1);
    let dir = std::env::temp_dir().join(format!("sluice-ingest-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = Command::new(bin()?)
        .args([
            "serve",
            "--admin",
            "127.0.0.1:0",
            "--sync",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(&dir)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .spawn()
        .context("starting sluice-control serve (build it first, or pass --bin)")?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let mut addr = || -> anyhow::Result<String> {
        let line = lines.next().context("serve line")??;
        Ok(line.rsplit(' ').next().context("addr")?.to_owned())
    };
    let (admin, sync) = (addr()?, addr()?);
    let admin_token = std::fs::read_to_string(dir.join("admin.token"))
        .context("admin token")?
        .trim()
        .to_owned();

    let mut a = TcpStream::connect(&admin).context("admin")?;
    let (st, _) = roundtrip(&mut a, "POST", "/v1/tenants", &admin_token, br#"{"id":"bench"}"#)?;
    assert_eq!(st, 201);
    let (st, body) = roundtrip(
        &mut a,
        "POST",
        "/v1/dataplanes",
        &admin_token,
        br#"{"id":"bench_dp"}"#,
    )?;
    assert_eq!(st, 201);
    let enrolled: serde_json::Value = serde_json::from_slice(&body).context("json")?;
    let token = enrolled["token"].as_str().context("token")?.to_owned();

    // Pre-built bodies, so the clock measures the control plane, not the client.
    let t0 = 1_714_564_800_000u64;
    let models = ["gpt-4o-mini", "gpt-4o", "claude-3-5-haiku"];
    let batches = (0..records.div_ceil(batch))
        .map(|b| {
            let items: Vec<serde_json::Value> = (0..batch)
                .map(|i| {
                    let seq = (b * batch + i) as u64 + 1;
                    serde_json::json!({ "seq": seq, "record": {
                        "ts_ms": t0 + seq, "tenant": "bench", "key_id": "k1", "route": "chat_completions",
                        "model": models[(seq % 3) as usize], "upstream": "mock", "stream": true, "status": 200,
                        "outcome": "ok", "error": null, "attempts": 1, "bytes_in": 512, "bytes_out": 2048,
                        "ttfb_us": 1500, "total_us": 9000, "events": 24,
                        "usage": { "input_tokens": 120, "output_tokens": 80 } } })
                })
                .collect();
            serde_json::to_vec(&serde_json::json!({ "batch": items })).context("json")
        })
        .collect::<anyhow::Result<Vec<Vec<u8>>>>()?;
    let body_bytes: usize = batches.iter().map(Vec::len).sum();

    let start = Instant::now();
    let per_conn: Vec<Vec<Vec<u8>>> = (0..connections)
        .map(|c| batches.iter().skip(c).step_by(connections).cloned().collect())
        .collect();
    let handles: Vec<_> = per_conn
        .into_iter()
        .map(|mine| {
            let (sync, token) = (sync.clone(), token.clone());
            std::thread::spawn(move || -> anyhow::Result<u64> {
                let mut s = TcpStream::connect(&sync).context("sync")?;
                s.set_nodelay(true).context("nodelay")?;
                let mut stored = 0u64;
                for body in mine {
                    let (st, reply) = roundtrip(&mut s, "POST", "/v1/records", &token, &body)?;
                    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&reply));
                    let ack: serde_json::Value = serde_json::from_slice(&reply).context("ack")?;
                    stored += ack["stored"].as_u64().context("stored")?;
                }
                Ok(stored)
            })
        })
        .collect();
    let mut stored = 0u64;
    for h in handles {
        stored += h.join().map_err(|_| anyhow!("client thread panicked"))??;
    }
    let secs = start.elapsed().as_secs_f64();
    let size = std::fs::metadata(dir.join("control.redb"))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "ingest: {:.0} records/s ({stored} records in {} batches of {batch}, {connections} connections, {:.2} s, {:.1} MB JSON, store {:.1} MB)",
        stored as f64 / secs,
        batches.len(),
        secs,
        body_bytes as f64 / 1e6,
        size as f64 / 1e6
    );
    if let Some(nats) = flag("--nats") {
        export(&nats, &dir, &admin, &admin_token, stored)?;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn flag(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// Export throughput: a sink added over `stored` records already in redb.
fn export(nats: &str, dir: &std::path::Path, admin: &str, token: &str, stored: u64) -> anyhow::Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut server = Command::new(nats)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.join("nats"))
        .stderr(Stdio::null())
        .spawn()
        .context("starting nats-server")?;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mut a = TcpStream::connect(admin).context("admin")?;
    let body = format!(
        r#"{{"name":"bench","kind":"nats","url":"nats://127.0.0.1:{port}","stream":"BENCH","subject":"bench.records.<tenant>"}}"#
    );
    let start = Instant::now();
    let (st, reply) = roundtrip(&mut a, "POST", "/v1/sinks", token, body.as_bytes())?;
    assert_eq!(st, 201, "{}", String::from_utf8_lossy(&reply));
    let published = loop {
        let (_, m) = roundtrip(&mut a, "GET", "/metrics", token, b"")?;
        let text = String::from_utf8_lossy(&m).into_owned();
        let n = text
            .lines()
            .find_map(|l| l.strip_prefix("sluice_control_sink_published_records_total{sink=\"bench\"} "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if n >= stored {
            break n;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let secs = start.elapsed().as_secs_f64();
    println!(
        "export: {:.0} records/s into JetStream ({published} records, {secs:.2} s from `sink add` to the last PubAck counted; nats-server -js on loopback, file storage)",
        published as f64 / secs
    );
    let _ = server.kill();
    let _ = server.wait();
    Ok(())
}
