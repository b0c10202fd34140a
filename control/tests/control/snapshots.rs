//! Snapshot versions, long-polls and revocation.

use crate::support::{http, temp_dir, Serve};
use sluice_contract::snapshot::types::Snapshot;

#[test]
fn long_poll_wakes_on_commit_and_revoked_keys_leave() {
    let dir = temp_dir("long-poll");
    // A long hold: if the commit did not wake the poll, the client's 60 s read
    // timeout would fail the test.
    let serve = Serve::start(&dir, &["--long-poll-secs", "300"]);
    serve.ok(&["tenant", "create", "acme"], None);
    let key_a = serve.ok(&["apikey", "create", "--tenant", "acme", "--id", "a"], None);
    serve.ok(&["apikey", "create", "--tenant", "acme", "--id", "b"], None);
    assert!(!key_a.trim().is_empty());
    let token = serve.enroll("dp1");
    let first = http(&serve.sync, "GET", "/v1/snapshot?after=0", Some(&token), None);
    let snap: Snapshot = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(snap.api_keys.len(), 2);

    let sync = serve.sync.clone();
    let path = format!("/v1/snapshot?after={}", snap.version);
    let t = token.clone();
    let poll = std::thread::spawn(move || http(&sync, "GET", &path, Some(&t), None));
    std::thread::sleep(std::time::Duration::from_millis(300));
    serve.ok(&["apikey", "revoke", "--tenant", "acme", "a"], None);
    let r = poll.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let next: Snapshot = serde_json::from_slice(&r.body).unwrap();
    assert!(next.version > snap.version);
    assert_eq!(
        next.api_keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(),
        vec!["b"]
    );
    let listed = serve.ok(&["apikey", "list", "--tenant", "acme", "--json"], None);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert!(listed[0]["revoked_ms"].is_u64());

    // Bad tokens are refused; the data plane shows as seen.
    let forged = format!("sdp-dp1-{}", "ab".repeat(32));
    assert_eq!(
        http(&serve.sync, "GET", "/v1/snapshot?after=0", Some(&forged), None).status,
        401
    );
    assert_eq!(
        http(&serve.sync, "GET", "/v1/snapshot?after=0", Some("garbage"), None).status,
        401
    );
    assert_eq!(
        http(&serve.sync, "GET", "/v1/snapshot?after=x", Some(&token), None).status,
        400
    );
    assert_eq!(http(&serve.sync, "GET", "/healthz", None, None).status, 200);
    let dps = serve.ok(&["dataplane", "list"], None);
    assert!(
        dps.contains("dp1") && dps.contains(&next.version.to_string()),
        "{dps}"
    );
}

#[test]
fn an_up_to_date_poll_times_out_with_204() {
    let dir = temp_dir("no-content");
    let serve = Serve::start(&dir, &["--long-poll-secs", "1"]);
    let token = serve.enroll("dp1");
    let r = http(&serve.sync, "GET", "/v1/snapshot?after=0", Some(&token), None);
    assert_eq!(r.status, 200);
    let v = r.header("x-sluice-version").unwrap().to_owned();
    let r = http(
        &serve.sync,
        "GET",
        &format!("/v1/snapshot?after={v}"),
        Some(&token),
        None,
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.header("x-sluice-version"), Some(v.as_str()));
    assert!(r.body.is_empty());
}
