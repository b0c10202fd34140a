//! Credit: leases to data planes, top-ups as records show spend, the
//! balance, low-balance alerts and their webhook.

use crate::support::{http, temp_dir, Serve};
use crate::util::{costly, granted, json, post_records, snapshot, webhook};
use std::time::Duration;

const T0: u64 = 1_714_564_800_000;

#[test]
fn leases_top_up_as_spend_arrives_and_never_exceed_the_credit() {
    let dir = temp_dir("billing-credit");
    let (hook, hooked) = webhook(1);
    let url = format!("http://{hook}/hooks/sluice");
    let serve = Serve::start(&dir, &["--alert-webhook", &url]);
    serve.ok(&["tenant", "create", "acme"], None);
    serve.ok(&["tenant", "create", "free"], None);
    let shown = json(
        &serve,
        &["tenant", "credit", "show", "--tenant", "acme", "--json"],
    );
    assert_eq!(shown["metered"], false);
    serve.ok(
        &["tenant", "credit", "add", "--tenant", "acme", "--usd", "1"],
        None,
    );
    serve.ok(
        &[
            "tenant",
            "credit",
            "threshold",
            "--tenant",
            "acme",
            "--usd",
            "0.95",
        ],
        None,
    );
    let dp1 = serve.enroll("dp1");
    let dp2 = serve.enroll("dp2");

    // Each data plane gets a first slice when it asks; an unmetered tenant gets no entry.
    let s1 = snapshot(&serve, &dp1);
    let s2 = snapshot(&serve, &dp2);
    let (g1, g2) = (granted(&s1, "acme"), granted(&s2, "acme"));
    assert!(g1 > 0 && g2 > 0, "{g1} {g2}");
    assert!(g1 + g2 <= 1_000_000);
    assert!(s1.credits.iter().all(|c| c.tenant != "free"));
    let v = json(
        &serve,
        &["tenant", "credit", "show", "--tenant", "acme", "--json"],
    );
    assert_eq!(v["leased_micros"].as_i64(), Some(g1 + g2));
    assert_eq!(v["leases"].as_array().unwrap().len(), 2);

    // dp1 spends most of its lease: its next snapshot carries a larger grant.
    let spend = g1 * 6 / 10;
    let recs: Vec<_> = (0..3).map(|i| costly(T0 + i, "acme", spend as u64 / 3)).collect();
    post_records(&serve, &dp1, 1, &recs);
    let spent = (spend / 3) * 3;
    let poll = http(
        &serve.sync,
        "GET",
        &format!("/v1/snapshot?after={}", s1.version),
        Some(&dp1),
        None,
    );
    assert_eq!(poll.status, 200, "a top-up must wake the poll: {}", poll.text());
    let s1b: sluice_contract::snapshot::types::Snapshot = serde_json::from_slice(&poll.body).unwrap();
    let g1b = granted(&s1b, "acme");
    assert!(g1b > g1, "{g1b} <= {g1}");
    assert!(g1b + granted(&snapshot(&serve, &dp2), "acme") <= 1_000_000);

    // A replayed batch is charged once.
    post_records(&serve, &dp1, 1, &recs);
    let v = json(
        &serve,
        &["tenant", "credit", "show", "--tenant", "acme", "--json"],
    );
    assert_eq!(v["spent_micros"].as_i64(), Some(spent));
    assert_eq!(v["balance_micros"].as_i64(), Some(1_000_000 - spent));
    assert!(v["leased_micros"].as_i64().unwrap() <= 1_000_000);
    let table = serve.ok(&["tenant", "credit", "show", "--tenant", "acme"], None);
    assert!(table.contains("dp1") && table.contains("$1.000000"), "{table}");

    // The cost reached usage too.
    let usage = json(&serve, &["usage", "--tenant", "acme", "--json"]);
    assert_eq!(usage[0]["cost_micros"].as_i64(), Some(spent));
    assert_eq!(usage[0]["cached_input_tokens"].as_i64(), Some(6));
    assert_eq!(usage[0]["reasoning_tokens"].as_i64(), Some(9));

    // The balance crossed below $0.95 once: one alert, posted to the webhook
    // (whose first answer was a 500: the retry delivered it).
    let alerts = json(&serve, &["alerts", "--tenant", "acme", "--json"]);
    let alerts = alerts.as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["type"], "low_balance");
    assert_eq!(alerts[0]["balance_micros"].as_i64(), Some(1_000_000 - spent));
    assert_eq!(alerts[0]["threshold_micros"].as_i64(), Some(950_000));
    let (path, body) = hooked
        .recv_timeout(Duration::from_secs(60))
        .expect("the webhook got no alert");
    assert_eq!(path, "/hooks/sluice");
    assert_eq!(body["type"], "low_balance");
    assert_eq!(body["tenant"], "acme");
    assert_eq!(body["balance_micros"].as_i64(), Some(1_000_000 - spent));
    assert_eq!(body["threshold_micros"].as_i64(), Some(950_000));
    assert!(body["ts_ms"].as_u64().unwrap() > T0);

    // Spending on both data planes until nothing is left: every grant is
    // used, and the grants never add up to more than the credit.
    let mut seq = [10u64, 1];
    let mut spent_on = [spent, 0i64];
    let tokens = [&dp1, &dp2];
    for round in 0..500 {
        let mut moved = false;
        for d in 0..2 {
            let snap = snapshot(&serve, tokens[d]);
            let g = granted(&snap, "acme");
            let total: i64 = tokens.iter().map(|t| granted(&snapshot(&serve, t), "acme")).sum();
            assert!(
                total <= 1_000_000,
                "round {round}: grants {total} exceed the credit"
            );
            let left = g - spent_on[d];
            if left > 0 {
                post_records(
                    &serve,
                    tokens[d],
                    seq[d],
                    &[costly(T0 + 100 + round, "acme", left as u64)],
                );
                seq[d] += 1;
                spent_on[d] += left;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    let v = json(
        &serve,
        &["tenant", "credit", "show", "--tenant", "acme", "--json"],
    );
    assert_eq!(
        v["spent_micros"].as_i64(),
        Some(1_000_000),
        "all credit is spendable: {v}"
    );
    assert_eq!(
        (v["leased_micros"].as_i64(), v["unleased_micros"].as_i64()),
        (Some(1_000_000), Some(0))
    );
    assert_eq!(v["balance_micros"].as_i64(), Some(0));
    assert_eq!(spent_on[0] + spent_on[1], 1_000_000);
    assert_eq!(
        json(&serve, &["alerts", "--json"]).as_array().unwrap().len(),
        1,
        "one alert per crossing"
    );

    // More credit tops up the data planes that hold leases, at once.
    let before = snapshot(&serve, &dp1).version;
    serve.ok(
        &[
            "tenant", "credit", "add", "--tenant", "acme", "--micros", "1000000",
        ],
        None,
    );
    let after = snapshot(&serve, &dp1);
    assert!(after.version > before);
    assert!(granted(&after, "acme") > spent_on[0]);
    let v = json(
        &serve,
        &["tenant", "credit", "show", "--tenant", "acme", "--json"],
    );
    assert!(v["leased_micros"].as_i64().unwrap() <= 2_000_000);
    assert_eq!(v["below_threshold"], false, "re-armed above the threshold");

    // Refusals.
    assert!(serve
        .fails(
            &["tenant", "credit", "add", "--tenant", "acme", "--usd", "0"],
            None
        )
        .contains("not an amount"));
    assert!(serve
        .fails(
            &["tenant", "credit", "threshold", "--tenant", "free", "--usd", "1"],
            None
        )
        .contains("has no credit"));
    assert!(serve
        .fails(
            &["tenant", "credit", "add", "--tenant", "nobody", "--usd", "1"],
            None
        )
        .contains("does not exist"));

    // default_max_tokens travels with the grant.
    serve.ok(
        &[
            "tenant",
            "credit",
            "default-max-tokens",
            "--tenant",
            "acme",
            "--tokens",
            "256",
        ],
        None,
    );
    let snap = snapshot(&serve, &dp2);
    let c = snap.credits.iter().find(|c| c.tenant == "acme").unwrap();
    assert_eq!(c.default_max_tokens, Some(256));

    // Deleting the tenant removes its credit and its entry in every snapshot.
    serve.ok(&["tenant", "delete", "acme"], None);
    assert!(snapshot(&serve, &dp1).credits.is_empty());
    assert!(json(&serve, &["alerts", "--json"]).as_array().unwrap().is_empty());
}

#[test]
fn small_balances_are_granted_whole_and_a_new_threshold_can_alert() {
    let dir = temp_dir("billing-zero");
    let serve = Serve::start(&dir, &[]);
    serve.ok(&["tenant", "create", "acme"], None);
    let dp = serve.enroll("dp1");
    let s = snapshot(&serve, &dp);
    assert!(s.credits.is_empty(), "no account: not metered");
    // A threshold crossing raised by the threshold itself.
    serve.ok(
        &["tenant", "credit", "add", "--tenant", "acme", "--micros", "5000"],
        None,
    );
    serve.ok(
        &["tenant", "credit", "threshold", "--tenant", "acme", "--usd", "1"],
        None,
    );
    let alerts = json(&serve, &["alerts", "--json"]);
    assert_eq!(alerts.as_array().unwrap().len(), 1);
    let s = snapshot(&serve, &dp);
    // A balance below the minimum slice is granted whole.
    assert_eq!(granted(&s, "acme"), 5000);
    let out = serve.ok(&["alerts"], None);
    assert!(out.contains("low_balance") && out.contains("acme"), "{out}");

    // Spend that brings no grant leaves the snapshot as it was; a data plane
    // that starts (after=0) gets a new one carrying what was spent on its
    // lease, so that it does not spend it again.
    post_records(&serve, &dp, 1, &[costly(T0, "acme", 3000)]);
    let same = snapshot(&serve, &dp);
    assert_eq!(same.version, s.version, "no grant, no new snapshot");
    let spent = |snap: &sluice_contract::snapshot::types::Snapshot| {
        snap.credits
            .iter()
            .find(|c| c.tenant == "acme")
            .unwrap()
            .spent_micros
    };
    assert_eq!(spent(&same), 0);
    let r = http(&serve.sync, "GET", "/v1/snapshot?after=0", Some(&dp), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let fresh: sluice_contract::snapshot::types::Snapshot = serde_json::from_slice(&r.body).unwrap();
    assert!(fresh.version > s.version);
    assert_eq!((granted(&fresh, "acme"), spent(&fresh)), (5000, 3000));
    // Another data plane's start does not bump it: nothing was spent on it.
    let other = serve.enroll("dp2");
    let r = http(&serve.sync, "GET", "/v1/snapshot?after=0", Some(&other), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let theirs: sluice_contract::snapshot::types::Snapshot = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(theirs.version, fresh.version);
    assert_eq!((granted(&theirs, "acme"), spent(&theirs)), (0, 0));
}
