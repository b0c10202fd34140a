//! The CLI builds a configuration; the sync API serves it sealed; nothing
//! secret reaches the store file.

use crate::support::{bearer, http, key_secret, temp_dir, Serve};
use sluice_contract::crypto::{dataplane_seal_key, hex, sha256, unhex, SealKey, SnapshotMac};
use sluice_contract::snapshot::types::{ProviderKind, Snapshot};

const PROVIDER_SECRET: &str = "sk-provider-PLAINTEXT-4f1d2c";

#[test]
fn cli_round_trip_into_a_sealed_snapshot() {
    let dir = temp_dir("round-trip");
    let serve = Serve::start(&dir, &[]);
    serve.ok(
        &["tenant", "create", "acme", "--name", "Acme Inc", "--region", "eu"],
        None,
    );
    serve.ok(&["tenant", "update", "acme", "--clear-region"], None);
    let shown = serve.ok(&["tenant", "show", "acme", "--json"], None);
    let t: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(t["name"], "Acme Inc");
    assert!(t.get("region").is_none());

    let key = serve
        .ok(&["apikey", "create", "--tenant", "acme", "--id", "web"], None)
        .trim()
        .to_owned();
    assert!(key.starts_with("sk-sluice-web-"), "{key}");
    let secret_part = key.rsplit('-').next().unwrap();
    assert_eq!(secret_part.len(), 64);
    assert!(unhex::<32>(secret_part).is_some());
    let listed = serve.ok(&["apikey", "list", "--tenant", "acme", "--json"], None);
    assert!(!listed.contains(secret_part), "apikey list shows the secret");
    assert!(listed.contains(&hex(&sha256(key.as_bytes()))));

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
    serve.ok(
        &[
            "upstream",
            "add",
            "claude",
            "--kind",
            "anthropic",
            "--base-url",
            "http://127.0.0.1:9",
        ],
        None,
    );
    serve.ok(
        &["provider-key", "add", "--tenant", "acme", "k1"],
        Some(&format!("{PROVIDER_SECRET}\n")),
    );
    let pk = serve.ok(&["provider-key", "list", "--tenant", "acme", "--json"], None);
    assert!(pk.contains("\"k1\"") && !pk.contains(PROVIDER_SECRET));
    serve.ok(
        &[
            "route",
            "set",
            "--tenant",
            "acme",
            "--model",
            "gpt-4o",
            "--target",
            "upstream=mock,key=k1,priority=0,weight=1",
            "--target",
            "upstream=claude,key=k1,priority=1,model=claude-3-5-haiku",
        ],
        None,
    );
    let routes = serve.ok(&["route", "list", "--tenant", "acme"], None);
    assert!(
        routes.contains("gpt-4o") && routes.contains("claude-3-5-haiku"),
        "{routes}"
    );
    let file = serve.enroll_full("dp_1");
    assert!(
        file.starts_with("sdp-dp_1-") && file.len() == "sdp-dp_1-".len() + 64 + 1 + 64,
        "{file}"
    );
    let token = bearer(&file);
    let key_part = key_secret(&file);
    // The whole token file is not a credential: only its bearer part is.
    assert_eq!(
        http(&serve.sync, "GET", "/v1/snapshot?after=0", Some(&file), None).status,
        401
    );

    let r = http(&serve.sync, "GET", "/v1/snapshot?after=0", Some(&token), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let snap: Snapshot = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        r.header("x-sluice-version"),
        Some(snap.version.to_string().as_str())
    );
    // The whole body is authenticated under the key secret, never sent.
    let mac = SnapshotMac::derive(&key_part, "dp_1").unwrap();
    assert!(mac.verify(&r.body, r.header("x-sluice-snapshot-mac").unwrap()));
    let mut altered = r.body.clone();
    altered[0] = b' ';
    assert!(!mac.verify(&altered, r.header("x-sluice-snapshot-mac").unwrap()));
    assert_eq!(snap.tenants.len(), 1);
    assert_eq!(snap.tenants[0].id, "acme");
    assert_eq!(snap.api_keys.len(), 1);
    assert_eq!(snap.api_keys[0].sha256, hex(&sha256(key.as_bytes())));
    assert_eq!(snap.upstreams.len(), 2);
    assert_eq!(
        snap.upstreams.iter().find(|u| u.name == "claude").unwrap().kind,
        ProviderKind::Anthropic
    );
    assert_eq!(snap.routes.len(), 1);
    assert_eq!(snap.routes[0].targets.len(), 2);
    assert_eq!(snap.provider_keys.len(), 1);
    let pk = &snap.provider_keys[0];
    assert_eq!(pk.api_key_env, None);
    let sealed = pk.sealed.as_deref().unwrap();
    assert!(!r.text().contains(PROVIDER_SECRET));
    let sealed_bytes: Vec<u8> = (0..sealed.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&sealed[i..i + 2], 16).unwrap())
        .collect();
    // A captured bearer token opens nothing: neither the old derivation from
    // it nor the new one with it in place of the key secret.
    let captured = unhex::<32>(token.rsplit('-').next().unwrap()).unwrap();
    for wrong in [
        SealKey::derive(&captured, b"sluice-snapshot-v1", b"dp_1").unwrap(),
        dataplane_seal_key(&captured, "dp_1").unwrap(),
    ] {
        assert!(wrong.open(&sealed_bytes, pk.aad().as_bytes()).is_err());
    }
    let opener = dataplane_seal_key(&key_part, "dp_1").unwrap();
    assert_eq!(pk.aad(), "acme/k1");
    let plain = opener.open(&sealed_bytes, pk.aad().as_bytes()).unwrap();
    assert_eq!(&plain[..], PROVIDER_SECRET.as_bytes());
    assert!(opener.open(&sealed_bytes, b"acme/k2").is_err());
    // The snapshot is exactly what the data plane's own index accepts.
    sluice_contract::snapshot::index::Index::build(
        &snap,
        sluice_contract::snapshot::index::KeyMaterial::Sealed(std::sync::Arc::new(opener)),
    )
    .unwrap();

    // Rotation replaces the secret in the next snapshot.
    serve.ok(
        &["provider-key", "rotate", "--tenant", "acme", "k1"],
        Some("sk-provider-rotated"),
    );
    let r2 = http(
        &serve.sync,
        "GET",
        &format!("/v1/snapshot?after={}", snap.version),
        Some(&token),
        None,
    );
    assert_eq!(r2.status, 200);

    assert!(serve.stop(), "serve did not exit cleanly on SIGTERM");
    let bytes = std::fs::read(dir.join("control.redb")).unwrap();
    for needle in [
        PROVIDER_SECRET,
        "sk-provider-rotated",
        key.as_str(),
        secret_part,
        token.as_str(),
        file.rsplit('-').next().unwrap(),
    ] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle:?} found in control.redb"
        );
    }

    // Restarted, the same store serves the same configuration.
    let serve = Serve::start(&dir, &[]);
    let r3 = http(&serve.sync, "GET", "/v1/snapshot?after=0", Some(&token), None);
    let snap3: Snapshot = serde_json::from_slice(&r3.body).unwrap();
    assert_eq!(snap3.version, snap.version + 1);
    let sealed3 = snap3.provider_keys[0].sealed.as_deref().unwrap();
    let sealed3: Vec<u8> = (0..sealed3.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&sealed3[i..i + 2], 16).unwrap())
        .collect();
    let opener = dataplane_seal_key(&key_part, "dp_1").unwrap();
    assert_eq!(
        &opener.open(&sealed3, b"acme/k1").unwrap()[..],
        b"sk-provider-rotated"
    );
}
