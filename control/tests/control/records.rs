//! Records from data planes: idempotent ingest, logs and usage.

use crate::support::{http, record, temp_dir, Serve};

#[test]
fn replayed_batches_are_stored_once_and_listed() {
    let dir = temp_dir("records");
    let serve = Serve::start(&dir, &[]);
    serve.ok(&["tenant", "create", "acme"], None);
    let token = serve.enroll("edge1");
    let t0 = 1_714_564_800_000u64;
    let body = serde_json::json!({ "batch": [
        { "seq": 1, "record": record(t0, "acme", "gpt-4o") },
        { "seq": 2, "record": record(t0 + 1, "acme", "gpt-4o") },
        { "seq": 3, "record": record(t0 + 2, "acme", "claude-3-5-haiku") },
    ]})
    .to_string();
    let r = http(
        &serve.sync,
        "POST",
        "/v1/records",
        Some(&token),
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), serde_json::json!({ "acked_through": 3, "stored": 3 }));
    let r = http(
        &serve.sync,
        "POST",
        "/v1/records",
        Some(&token),
        Some(body.as_bytes()),
    );
    assert_eq!(r.json(), serde_json::json!({ "acked_through": 3, "stored": 0 }));

    // Bad token, bad body, oversized batch: refused, nothing stored.
    let forged = format!("sdp-edge1-{}", "0".repeat(64));
    assert_eq!(
        http(
            &serve.sync,
            "POST",
            "/v1/records",
            Some(&forged),
            Some(body.as_bytes())
        )
        .status,
        401
    );
    assert_eq!(
        http(&serve.sync, "POST", "/v1/records", None, Some(body.as_bytes())).status,
        401
    );
    let r = http(
        &serve.sync,
        "POST",
        "/v1/records",
        Some(&token),
        Some(br#"{"batch":[{"seq":9}]}"#),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let big: Vec<serde_json::Value> = (0..10_001)
        .map(|i| serde_json::json!({ "seq": 100 + i, "record": record(t0, "acme", "m") }))
        .collect();
    let big = serde_json::json!({ "batch": big }).to_string();
    assert_eq!(
        http(
            &serve.sync,
            "POST",
            "/v1/records",
            Some(&token),
            Some(big.as_bytes())
        )
        .status,
        413
    );

    let logs: serde_json::Value =
        serde_json::from_str(&serve.ok(&["logs", "--tenant", "acme", "--json"], None)).unwrap();
    let logs = logs.as_array().unwrap();
    assert_eq!(logs.len(), 3);
    assert_eq!(logs[0]["dataplane"], "edge1");
    assert_eq!(logs[0]["seq"], 1);
    assert_eq!(logs[2]["record"]["model"], "claude-3-5-haiku");
    let window = serve.ok(
        &[
            "logs",
            "--tenant",
            "acme",
            "--since",
            "2024-05-01T12:00:00.001Z",
            "--until",
            &(t0 + 2).to_string(),
            "--json",
        ],
        None,
    );
    let window: serde_json::Value = serde_json::from_str(&window).unwrap();
    assert_eq!(window.as_array().unwrap().len(), 1);
    assert!(serve
        .fails(&["logs", "--tenant", "acme", "--since", "yesterday"], None)
        .contains("bad time"));
    let table = serve.ok(&["logs", "--tenant", "acme"], None);
    assert_eq!(table.lines().count(), 4, "{table}");

    let usage: serde_json::Value =
        serde_json::from_str(&serve.ok(&["usage", "--tenant", "acme", "--json"], None)).unwrap();
    let gpt = usage
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["model"] == "gpt-4o")
        .unwrap();
    assert_eq!(
        (gpt["day"].as_str(), gpt["requests"].as_u64()),
        (Some("2024-05-01"), Some(2))
    );
    assert_eq!(
        (gpt["input_tokens"].as_u64(), gpt["output_tokens"].as_u64()),
        (Some(14), Some(22))
    );

    let dps: serde_json::Value =
        serde_json::from_str(&serve.ok(&["dataplane", "list", "--json"], None)).unwrap();
    assert_eq!(dps[0]["records"], 3);
    let metrics = http(&serve.admin, "GET", "/metrics", None, None).text();
    assert!(
        metrics.contains("sluice_control_records_ingested_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sluice_control_records_replayed_total 3"),
        "{metrics}"
    );

    // Revoked data planes are shut out.
    serve.ok(&["dataplane", "revoke", "edge1"], None);
    assert_eq!(
        http(
            &serve.sync,
            "POST",
            "/v1/records",
            Some(&token),
            Some(body.as_bytes())
        )
        .status,
        401
    );

    // Deleting the tenant deletes its records and usage.
    serve.ok(&["tenant", "delete", "acme"], None);
    serve.ok(&["tenant", "create", "acme"], None);
    assert_eq!(
        serve.ok(&["logs", "--tenant", "acme", "--json"], None).trim(),
        "[]"
    );
    assert_eq!(
        serve.ok(&["usage", "--tenant", "acme", "--json"], None).trim(),
        "[]"
    );
}
