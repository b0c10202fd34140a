//! Named admin tokens with scopes, created and revoked by the CLI.

use crate::support::{http, temp_dir, Serve};
use serde_json::Value;

/// The audit trail as JSON.
fn audit(serve: &Serve) -> Vec<Value> {
    let out = serve.ok(&["audit", "list", "--json", "--limit", "1000"], None);
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn tenants(serve: &Serve) -> Value {
    serde_json::from_str(&serve.ok(&["tenant", "list", "--json"], None)).unwrap()
}

#[test]
fn a_read_only_token_cannot_change_anything() {
    let dir = temp_dir("token-read");
    let serve = Serve::start(&dir, &[]);
    serve.ok(&["tenant", "create", "acme"], None);
    let ro = serve
        .ok(&["token", "create", "ro", "--scope", "read"], None)
        .trim()
        .to_owned();
    assert!(ro.starts_with("sat-ro-"), "{ro}");
    let before = (tenants(&serve), audit(&serve).len());

    // It reads.
    let r = http(&serve.admin, "GET", "/v1/tenants", Some(&ro), None);
    assert_eq!(r.status, 200, "{}", r.text());
    // Every kind of change is refused before its body is even looked at.
    let changes: [(&str, &str, &str); 10] = [
        ("POST", "/v1/tenants", r#"{"id":"evil"}"#),
        ("PATCH", "/v1/tenants/acme", r#"{"name":"x"}"#),
        ("DELETE", "/v1/tenants/acme", ""),
        ("POST", "/v1/tenants/acme/api-keys", r#"{}"#),
        (
            "POST",
            "/v1/upstreams",
            r#"{"name":"u","kind":"openai","base_url":"http://127.0.0.1:9"}"#,
        ),
        ("POST", "/v1/dataplanes", r#"{"id":"dp9"}"#),
        ("POST", "/v1/tokens", r#"{"name":"mine","scope":"admin"}"#),
        ("POST", "/v1/tokens/ro/revoke", ""),
        ("POST", "/v1/purge", r#"{}"#),
        ("PUT", "/v1/tenants/acme/routes", r#"{}"#),
    ];
    for (method, path, body) in changes {
        let b = (!body.is_empty()).then_some(body.as_bytes());
        let r = http(&serve.admin, method, path, Some(&ro), b);
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
    }
    // Nothing changed, not even the trail.
    assert_eq!((tenants(&serve), audit(&serve).len()), before);
    assert!(!serve.ok(&["dataplane", "list"], None).contains("dp9"));

    // Revoked, it gets nothing at all; a forged one neither.
    serve.ok(&["token", "revoke", "ro"], None);
    assert_eq!(
        http(&serve.admin, "GET", "/v1/tenants", Some(&ro), None).status,
        401
    );
    let forged = format!("sat-ro-{}", "ab".repeat(32));
    assert_eq!(
        http(&serve.admin, "GET", "/v1/tenants", Some(&forged), None).status,
        401
    );
    // Names are never reused.
    assert!(serve
        .fails(&["token", "create", "ro", "--scope", "admin"], None)
        .contains("exists"));
    assert!(serve.stop());
}

#[test]
fn a_tenant_token_stays_in_its_tenant_and_the_trail_names_each_token() {
    let dir = temp_dir("token-tenant");
    let serve = Serve::start(&dir, &[]);
    serve.ok(&["tenant", "create", "acme"], None);
    serve.ok(&["tenant", "create", "beta"], None);
    let acme = serve
        .ok(&["token", "create", "acme-team", "--scope", "tenant:acme"], None)
        .trim()
        .to_owned();
    let ops = serve
        .ok(&["token", "create", "ops", "--scope", "admin"], None)
        .trim()
        .to_owned();

    let ok = http(
        &serve.admin,
        "POST",
        "/v1/tenants/acme/api-keys",
        Some(&acme),
        Some(br#"{"id":"k1"}"#),
    );
    assert_eq!(ok.status, 201, "{}", ok.text());
    assert_eq!(
        http(&serve.admin, "GET", "/v1/tenants/acme", Some(&acme), None).status,
        200
    );
    for (method, path) in [
        ("GET", "/v1/tenants"),
        ("GET", "/v1/tenants/beta"),
        ("POST", "/v1/tenants/beta/api-keys"),
        ("DELETE", "/v1/tenants/acme"),
        ("GET", "/v1/upstreams"),
        ("GET", "/v1/tokens"),
        ("GET", "/v1/audit"),
    ] {
        let r = http(&serve.admin, method, path, Some(&acme), Some(b"{}"));
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
    }
    // An admin-scope token may do what root may.
    let r = http(
        &serve.admin,
        "POST",
        "/v1/tenants",
        Some(&ops),
        Some(br#"{"id":"gamma"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.text());

    // The trail says which token acted.
    let entries = audit(&serve);
    let by = |action: &str, target: &str| -> String {
        entries
            .iter()
            .find(|e| e["action"] == action && e["target"].as_str().is_some_and(|t| t.contains(target)))
            .unwrap_or_else(|| panic!("no {action} {target}: {entries:?}"))["admin"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(by("apikey.create", "acme/k1"), "acme-team");
    assert_eq!(by("tenant.create", "gamma"), "ops");
    assert_eq!(by("tenant.create", "beta"), "root");
    assert_eq!(by("token.create", "acme-team"), "root");

    // Listing shows names and scopes, never a token or its hash.
    let list = serve.ok(&["token", "list", "--json"], None);
    assert!(list.contains("tenant:acme") && list.contains("\"ops\""), "{list}");
    for t in [&acme, &ops] {
        let secret = t.rsplit('-').next().unwrap();
        assert!(!list.contains(secret), "{list}");
    }
    assert!(serve.stop());
}
