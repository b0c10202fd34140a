//! Prices, policies and rate limits: set, listed, shipped in the snapshot,
//! removed; bad input refused with nothing changed.

use crate::support::{temp_dir, Serve};
use crate::util::{json, snapshot, version};
use sluice_contract::policy::CompiledPolicy;

#[test]
fn prices_round_trip_into_the_snapshot() {
    let dir = temp_dir("billing-prices");
    let serve = Serve::start(&dir, &[]);
    let token = serve.enroll("dp1");
    assert!(snapshot(&serve, &token).prices.is_empty());

    serve.ok(
        &[
            "price",
            "set",
            "--model",
            "acme/model-1",
            "--input",
            "1.5",
            "--output",
            "6",
        ],
        None,
    );
    serve.ok(
        &[
            "price",
            "set",
            "--model",
            "gpt-4o",
            "--input",
            "3",
            "--output",
            "12",
            "--cached-input",
            "1",
        ],
        None,
    );
    let list = json(&serve, &["price", "list", "--json"]);
    let find = |m: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["model"] == m)
            .unwrap_or_else(|| panic!("{m} not listed: {list}"))
            .clone()
    };
    let mine = find("acme/model-1");
    assert_eq!(
        (mine["source"].as_str(), mine["replaces_default"].as_bool()),
        (Some("override"), Some(false))
    );
    assert_eq!(
        (mine["input"].as_f64(), mine["cached_input"].as_f64()),
        (Some(1.5), Some(1.5))
    );
    let gpt = find("gpt-4o");
    assert_eq!(
        (gpt["source"].as_str(), gpt["replaces_default"].as_bool()),
        (Some("override"), Some(true))
    );
    assert_eq!(
        (gpt["cached_input"].as_f64(), gpt["output"].as_f64()),
        (Some(1.0), Some(12.0))
    );
    let mini = find("gpt-4o-mini");
    assert_eq!(
        (mini["source"].as_str(), mini["input"].as_f64()),
        (Some("default"), Some(0.15))
    );
    let table = serve.ok(&["price", "list"], None);
    assert!(table.contains("override (replaces default)"), "{table}");

    let snap = snapshot(&serve, &token);
    assert_eq!(snap.prices.len(), 2, "{:?}", snap.prices);
    let p = snap.prices.iter().find(|p| p.model == "gpt-4o").unwrap();
    assert_eq!(
        (p.input, p.cached_input, p.cache_write, p.output),
        (3.0, Some(1.0), None, 12.0)
    );

    // Refused: nothing changes.
    let before = snap.version;
    let err = serve.fails(
        &["price", "set", "--model", "m", "--input=-1", "--output", "1"],
        None,
    );
    assert!(err.contains("not a price"), "{err}");
    let err = serve.fails(
        &[
            "price",
            "set",
            "--model",
            "bad model",
            "--input",
            "1",
            "--output",
            "1",
        ],
        None,
    );
    assert!(err.contains("invalid model"), "{err}");
    assert_eq!(version(&serve, &token), before);

    serve.ok(&["price", "remove", "--model", "acme/model-1"], None);
    let snap = snapshot(&serve, &token);
    assert_eq!(
        snap.prices.iter().map(|p| p.model.as_str()).collect::<Vec<_>>(),
        vec!["gpt-4o"]
    );
    let err = serve.fails(&["price", "remove", "--model", "acme/model-1"], None);
    assert!(err.contains("no price override"), "{err}");
    let err = serve.fails(&["price", "remove", "--model", "gpt-4o-mini"], None);
    assert!(err.contains("no price override"), "{err}");
}

const GOOD_POLICY: &str = r#"
model_allow = ["gpt-4o*"]
max_tokens_cap = 4096
[pii]
email = "redact"
[[rules]]
id = "no-codenames"
action = "block"
when.prompt_contains = ["project zeus"]
"#;

#[test]
fn policies_are_validated_by_the_data_plane_compiler() {
    let dir = temp_dir("billing-policies");
    let serve = Serve::start(&dir, &[]);
    serve.ok(&["tenant", "create", "acme"], None);
    let token = serve.enroll("dp1");
    let file = dir.join("policy.toml");
    std::fs::write(&file, GOOD_POLICY).unwrap();
    let f = file.to_str().unwrap();
    serve.ok(&["policy", "check", "--file", f], None);
    serve.ok(&["policy", "set", "--tenant", "acme", "--file", f], None);
    let snap = snapshot(&serve, &token);
    assert_eq!(snap.policies.len(), 1);
    assert_eq!(
        (snap.policies[0].tenant.as_str(), snap.policies[0].toml.as_str()),
        ("acme", GOOD_POLICY)
    );
    assert_eq!(
        serve.ok(&["policy", "show", "--tenant", "acme"], None),
        GOOD_POLICY
    );
    let shown = json(&serve, &["policy", "show", "--tenant", "acme", "--json"]);
    assert_eq!(shown["toml"], GOOD_POLICY);

    let bad = [
        (
            "bad-regex",
            "[[rules]]\nid = \"r1\"\naction = \"block\"\nwhen.prompt_regex = [\"(unclosed\"]\n",
            "does not compile",
        ),
        (
            "unknown-field",
            "model_allow = [\"gpt-4o\"]\nmodel_deny = [\"x\"]\n",
            "unknown field",
        ),
        (
            "duplicate-id",
            "[[rules]]\nid = \"same\"\naction = \"block\"\n[[rules]]\nid = \"same\"\naction = \"allow\"\n",
            "\"same\" is used by more than one rule",
        ),
    ];
    let before = snap.version;
    for (name, text, gist) in bad {
        let expected = CompiledPolicy::compile(text).unwrap_err().to_string();
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        let p = path.to_str().unwrap();
        let err = serve.fails(&["policy", "set", "--tenant", "acme", "--file", p], None);
        assert!(
            err.contains(&format!("policy refused: {expected}")),
            "{name}: {err}"
        );
        assert!(err.contains(gist), "{name}: {err}");
        let err = serve.fails(&["policy", "check", "--file", p], None);
        assert!(err.contains(&expected), "{name}: {err}");
        let after = snapshot(&serve, &token);
        assert_eq!(after.version, before, "{name} changed the snapshot");
        assert_eq!(after.policies[0].toml, GOOD_POLICY);
    }

    let err = serve.fails(&["policy", "set", "--tenant", "nobody", "--file", f], None);
    assert!(err.contains("does not exist"), "{err}");
    serve.ok(&["policy", "remove", "--tenant", "acme"], None);
    assert!(snapshot(&serve, &token).policies.is_empty());
    assert!(serve
        .fails(&["policy", "show", "--tenant", "acme"], None)
        .contains("has no policy"));

    // A tenant's policy goes with the tenant.
    serve.ok(&["policy", "set", "--tenant", "acme", "--file", f], None);
    serve.ok(&["tenant", "delete", "acme"], None);
    assert!(snapshot(&serve, &token).policies.is_empty());
}

#[test]
fn rate_limits_reach_the_snapshot() {
    let dir = temp_dir("billing-limits");
    let serve = Serve::start(&dir, &[]);
    serve.ok(&["tenant", "create", "acme"], None);
    serve.ok(&["apikey", "create", "--tenant", "acme", "--id", "k1"], None);
    let token = serve.enroll("dp1");

    serve.ok(&["limit", "set", "--tenant", "acme", "--rpm", "60"], None);
    serve.ok(
        &[
            "limit", "set", "--tenant", "acme", "--key", "k1", "--rpm", "10", "--tpm", "5000",
        ],
        None,
    );
    let snap = snapshot(&serve, &token);
    let mut limits: Vec<(Option<String>, Option<u64>, Option<u64>)> = snap
        .rate_limits
        .iter()
        .map(|l| (l.key.clone(), l.rpm, l.tpm))
        .collect();
    limits.sort();
    assert_eq!(
        limits,
        vec![(None, Some(60), None), (Some("k1".into()), Some(10), Some(5000))]
    );
    let listed = json(&serve, &["limit", "list", "--tenant", "acme", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(serve
        .ok(&["limit", "list", "--tenant", "acme"], None)
        .contains("(tenant)"));

    // Refused: nothing changes.
    let before = snap.version;
    for (args, why) in [
        (vec!["--rpm", "0"], "would refuse everything"),
        (vec!["--key", "nokey", "--rpm", "5"], "does not exist"),
        (vec![], "--rpm, --tpm, --concurrency or several"),
        (vec!["--concurrency", "0"], "would refuse everything"),
        (vec!["--key", "k1", "--concurrency", "2"], "applies to a tenant"),
    ] {
        let mut full = vec!["limit", "set", "--tenant", "acme"];
        full.extend(args);
        let err = serve.fails(&full, None);
        assert!(err.contains(why), "{full:?}: {err}");
    }
    assert_eq!(version(&serve, &token), before);

    // A concurrency cap reaches the snapshot with the tenant's row.
    serve.ok(
        &[
            "limit",
            "set",
            "--tenant",
            "acme",
            "--rpm",
            "60",
            "--concurrency",
            "3",
        ],
        None,
    );
    let snap = snapshot(&serve, &token);
    let row = snap.rate_limits.iter().find(|l| l.key.is_none()).unwrap();
    assert_eq!((row.rpm, row.concurrency), (Some(60), Some(3)));

    serve.ok(&["limit", "remove", "--tenant", "acme", "--key", "k1"], None);
    let snap = snapshot(&serve, &token);
    assert_eq!(snap.rate_limits.len(), 1);
    assert_eq!(snap.rate_limits[0].key, None);
    assert!(serve
        .fails(&["limit", "remove", "--tenant", "acme", "--key", "k1"], None)
        .contains("has no rate limit"));
    serve.ok(&["limit", "remove", "--tenant", "acme"], None);
    assert!(snapshot(&serve, &token).rate_limits.is_empty());
}
