//! The whole path with a real data plane and the mock provider: a tenant
//! with a little credit is served until its leases are used up, then refused
//! with 402 `insufficient_quota`, and what control says was spent is exactly
//! the sum of the costs the data plane recorded.

use crate::support::{http, temp_dir, Serve, BIN};
use crate::util::json;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A sibling binary of `sluice-control` in the same target directory.
fn sibling(name: &str) -> PathBuf {
    let path = std::path::Path::new(BIN).with_file_name(name);
    assert!(
        path.is_file(),
        "{} not found: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// Child processes, killed when the test ends.
struct Kids(Vec<Child>);

impl Drop for Kids {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `cmd`, returns the address of its `listening on http://ADDR` line.
fn spawn(kids: &mut Kids, mut cmd: Command) -> String {
    let mut child = cmd
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    kids.0.push(child);
    loop {
        let line = lines.next().expect("exited before listening").unwrap();
        if let Some(addr) = line.strip_prefix("listening on http://") {
            let addr = addr.trim().to_owned();
            // Keep draining so the child never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return addr;
        }
    }
}

fn admin(serve: &Serve, method: &str, path: &str, body: Value) -> Value {
    let token = serve.admin_token();
    let b = body.to_string();
    let r = http(&serve.admin, method, path, Some(&token), Some(b.as_bytes()));
    assert!((200..300).contains(&r.status), "{method} {path}: {}", r.text());
    r.json()
}

/// Waits until control stored `records` records of acme and the data plane
/// was served the current snapshot version.
fn wait_synced(serve: &Serve, records: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let logs = json(serve, &["logs", "--tenant", "acme", "--limit", "10000", "--json"]);
        let stored = logs.as_array().unwrap().len();
        let metrics = http(&serve.admin, "GET", "/metrics", None, None).text();
        let current: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("sluice_control_snapshot_version "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let dps = json(serve, &["dataplane", "list", "--json"]);
        let held = dps[0]["snapshot_version"].as_u64().unwrap_or(0);
        if stored == records && held >= current {
            // The data plane compiles what it was served off its request path.
            std::thread::sleep(Duration::from_millis(200));
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not synced: {stored} of {records} records, snapshot {held} of {current}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn credit_runs_out_at_the_gateway_with_402_and_costs_add_up() {
    let dataplane = sibling("sluice-dataplane");
    let loadtest = sibling("sluice-loadtest");
    let dir = temp_dir("billing-e2e");
    let serve = Serve::start(&dir, &[]);
    let mut kids = Kids(Vec::new());

    let mut mock = Command::new(loadtest);
    mock.args(["mock", "--listen", "127.0.0.1:0"]);
    let mock_addr = spawn(&mut kids, mock);

    admin(&serve, "POST", "/v1/tenants", serde_json::json!({ "id": "acme" }));
    let key = admin(
        &serve,
        "POST",
        "/v1/tenants/acme/api-keys",
        serde_json::json!({ "id": "k1" }),
    )["key"]
        .as_str()
        .unwrap()
        .to_owned();
    admin(
        &serve,
        "POST",
        "/v1/upstreams",
        serde_json::json!({ "name": "mock", "kind": "openai", "base_url": format!("http://{mock_addr}") }),
    );
    admin(
        &serve,
        "POST",
        "/v1/tenants/acme/provider-keys",
        serde_json::json!({ "id": "pk", "secret": "sk-mock-e2e" }),
    );
    admin(
        &serve,
        "PUT",
        "/v1/tenants/acme/routes",
        serde_json::json!({ "model": "gpt-4o-mini", "targets": [{ "upstream": "mock", "provider_key": "pk" }] }),
    );
    // $10 per million tokens: a request costs a few hundred micro-dollars.
    serve.ok(
        &[
            "price",
            "set",
            "--model",
            "gpt-4o-mini",
            "--input",
            "10",
            "--output",
            "10",
        ],
        None,
    );
    let added = 30_000i64;
    serve.ok(
        &[
            "tenant",
            "credit",
            "add",
            "--tenant",
            "acme",
            "--micros",
            &added.to_string(),
        ],
        None,
    );

    let token = serve.enroll_full("edge1");
    let token_file = dir.join("edge1.token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut dp = Command::new(dataplane);
    dp.args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .arg("--control")
        .arg(format!("http://{}", serve.sync))
        .arg("--token-file")
        .arg(&token_file)
        .arg("--spool-dir")
        .arg(dir.join("spool"))
        .args(["--workers", "2"]);
    let gateway = spawn(&mut kids, dp);

    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "max_tokens": 16,
        "messages": [{ "role": "user", "content": "Say hello to Sluice." }],
    })
    .to_string();
    let mut sent = 0usize;
    let mut admitted = 0usize;
    let mut refusal: Option<Value> = None;
    let mut last_was_refused_after_sync = false;
    for _ in 0..5_000 {
        let r = http(
            &gateway,
            "POST",
            "/v1/chat/completions",
            Some(&key),
            Some(body.as_bytes()),
        );
        sent += 1;
        match r.status {
            200 => {
                admitted += 1;
                last_was_refused_after_sync = false;
            }
            402 => {
                refusal.get_or_insert(r.json());
                if last_was_refused_after_sync {
                    break;
                }
                // Let control see the spend and top the lease up, if it can.
                wait_synced(&serve, sent);
                let v = json(
                    &serve,
                    &["tenant", "credit", "show", "--tenant", "acme", "--json"],
                );
                last_was_refused_after_sync = v["unleased_micros"].as_i64() == Some(0);
            }
            s => panic!("unexpected {s}: {}", r.text()),
        }
    }
    assert!(
        last_was_refused_after_sync,
        "the credit never ran out ({sent} requests)"
    );
    eprintln!("e2e: {sent} requests, {admitted} admitted");
    assert!(admitted > 1, "{admitted} requests admitted");
    let refusal = refusal.unwrap();
    assert_eq!(refusal["error"]["type"], "insufficient_quota", "{refusal}");
    assert_eq!(refusal["error"]["code"], "insufficient_quota", "{refusal}");

    wait_synced(&serve, sent);
    let logs = json(
        &serve,
        &["logs", "--tenant", "acme", "--limit", "10000", "--json"],
    );
    let logs = logs.as_array().unwrap();
    assert_eq!(logs.len(), sent);
    let ok = logs.iter().filter(|e| e["record"]["status"] == 200).count();
    assert_eq!(ok, admitted);
    let costs: i64 = logs
        .iter()
        .map(|e| e["record"]["cost_micros"].as_i64().unwrap_or(0))
        .sum();
    assert!(costs > 0);
    let v = json(
        &serve,
        &["tenant", "credit", "show", "--tenant", "acme", "--json"],
    );
    assert_eq!(v["spent_micros"].as_i64(), Some(costs), "{v}");
    assert_eq!(v["balance_micros"].as_i64(), Some(added - costs), "{v}");
    assert!(costs <= added, "overdraft: spent {costs} of {added}");
    assert_eq!(v["leased_micros"].as_i64(), Some(added), "{v}");
    let lease = &v["leases"][0];
    assert_eq!(lease["dataplane"], "edge1");
    assert_eq!(lease["spent_micros"].as_i64(), Some(costs));
    let usage = json(&serve, &["usage", "--tenant", "acme", "--json"]);
    let cost_in_usage: i64 = usage
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["cost_micros"].as_i64().unwrap())
        .sum();
    assert_eq!(cost_in_usage, costs);
}
