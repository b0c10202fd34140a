//! Bad admin input is refused with a clear message and changes nothing.

use crate::support::{http, temp_dir, Serve};

/// The current snapshot version, as the metrics report it.
fn version(serve: &Serve) -> String {
    let m = http(&serve.admin, "GET", "/metrics", None, None).text();
    m.lines()
        .find_map(|l| l.strip_prefix("sluice_control_snapshot_version "))
        .unwrap()
        .to_owned()
}

#[test]
fn bad_admin_input_is_refused_and_changes_nothing() {
    let dir = temp_dir("refusals");
    let serve = Serve::start(&dir, &[]);
    let token = serve.admin_token();
    serve.ok(&["tenant", "create", "acme"], None);
    serve.ok(
        &[
            "upstream",
            "add",
            "mock",
            "--kind",
            "openai",
            "--base-url",
            "http://127.0.0.1:9",
        ],
        None,
    );
    serve.ok(&["provider-key", "add", "--tenant", "acme", "k1"], Some("sk-x"));
    let before = version(&serve);
    let tenants_before = serve.ok(&["tenant", "list", "--json"], None);

    // Unknown JSON field.
    let r = http(
        &serve.admin,
        "POST",
        "/v1/tenants",
        Some(&token),
        Some(br#"{"id":"beta","colour":"red"}"#),
    );
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{}",
        r.text()
    );
    // Not JSON at all.
    let r = http(&serve.admin, "POST", "/v1/tenants", Some(&token), Some(b"{nope"));
    assert_eq!(r.status, 400);
    // No token, wrong token.
    assert_eq!(http(&serve.admin, "GET", "/v1/tenants", None, None).status, 401);
    assert_eq!(
        http(&serve.admin, "GET", "/v1/tenants", Some("wrong"), None).status,
        401
    );
    // Unknown endpoint.
    assert_eq!(
        http(&serve.admin, "GET", "/v1/nothing", Some(&token), None).status,
        404
    );

    // Duplicate tenant.
    let e = serve.fails(&["tenant", "create", "acme"], None);
    assert!(e.contains("tenant \"acme\" already exists"), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "one line on stderr: {e}");
    // Invalid names.
    let e = serve.fails(&["tenant", "create", "Bad Name"], None);
    assert!(e.contains("invalid tenant id"), "{e}");
    let e = serve.fails(
        &[
            "upstream",
            "add",
            "x/y",
            "--kind",
            "openai",
            "--base-url",
            "http://h",
        ],
        None,
    );
    assert!(e.contains("invalid upstream"), "{e}");
    let e = serve.fails(
        &[
            "upstream",
            "add",
            "ftp",
            "--kind",
            "openai",
            "--base-url",
            "ftp://h",
        ],
        None,
    );
    assert!(e.contains("http://"), "{e}");
    // Route to a missing upstream or key.
    let e = serve.fails(
        &[
            "route",
            "set",
            "--tenant",
            "acme",
            "--model",
            "gpt-4o",
            "--target",
            "upstream=nope,key=k1",
        ],
        None,
    );
    assert!(e.contains("unknown upstream \"nope\""), "{e}");
    let e = serve.fails(
        &[
            "route",
            "set",
            "--tenant",
            "acme",
            "--model",
            "gpt-4o",
            "--target",
            "upstream=mock,key=k9",
        ],
        None,
    );
    assert!(e.contains("unknown provider key \"k9\""), "{e}");
    let e = serve.fails(
        &[
            "route",
            "set",
            "--tenant",
            "ghost",
            "--model",
            "m",
            "--target",
            "upstream=mock,key=k1",
        ],
        None,
    );
    assert!(e.contains("tenant \"ghost\" does not exist"), "{e}");
    // An empty secret never leaves the CLI.
    let e = serve.fails(&["provider-key", "add", "--tenant", "acme", "k2"], Some(""));
    assert!(e.contains("no secret"), "{e}");

    assert_eq!(version(&serve), before);
    assert_eq!(serve.ok(&["tenant", "list", "--json"], None), tenants_before);
    assert_eq!(
        serve
            .ok(&["route", "list", "--tenant", "acme", "--json"], None)
            .trim(),
        "[]"
    );

    // In use: refused, named.
    serve.ok(
        &[
            "route",
            "set",
            "--tenant",
            "acme",
            "--model",
            "gpt-4o",
            "--target",
            "upstream=mock,key=k1",
        ],
        None,
    );
    let e = serve.fails(&["upstream", "remove", "mock"], None);
    assert!(e.contains("used by route acme/gpt-4o"), "{e}");
    let e = serve.fails(&["provider-key", "delete", "--tenant", "acme", "k1"], None);
    assert!(e.contains("used by route acme/gpt-4o"), "{e}");

    // Deleting the tenant takes its keys and routes along; the upstream is then free.
    serve.ok(&["tenant", "delete", "acme"], None);
    serve.ok(&["upstream", "remove", "mock"], None);
    assert!(serve
        .fails(&["route", "list", "--tenant", "acme"], None)
        .contains("does not exist"));
    // Without a token source the CLI says how to give one.
    let out = std::process::Command::new(crate::support::BIN)
        .args(["tenant", "list", "--admin", &serve.admin_url()])
        .env_remove("SLUICE_DATA")
        .env_remove("SLUICE_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no admin token"));
}
