//! The data directory: foreign files, master keys, rotation.

use crate::support::{http, temp_dir, Serve, BIN};
use sluice_contract::crypto::{unhex, SealKey};
use sluice_contract::snapshot::types::Snapshot;
use std::process::Command;

#[test]
fn a_foreign_store_file_is_refused_untouched() {
    let dir = temp_dir("foreign");
    let path = dir.join("control.redb");
    let junk: Vec<u8> = (0..10_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &junk).unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--admin",
            "127.0.0.1:0",
            "--sync",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a redb database"), "{err}");
    assert!(
        std::fs::read(&path).unwrap() == junk,
        "the foreign file was modified"
    );
}

fn provider_secret(serve: &Serve, token: &str) -> Vec<u8> {
    let r = http(&serve.sync, "GET", "/v1/snapshot?after=0", Some(token), None);
    let snap: Snapshot = serde_json::from_slice(&r.body).unwrap();
    let sealed = snap.provider_keys[0].sealed.clone().unwrap();
    let bytes: Vec<u8> = (0..sealed.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&sealed[i..i + 2], 16).unwrap())
        .collect();
    let secret = unhex::<32>(token.rsplit('-').next().unwrap()).unwrap();
    let key = SealKey::derive(&secret, b"sluice-snapshot-v1", b"dp1").unwrap();
    key.open(&bytes, b"acme/k1").unwrap().to_vec()
}

#[test]
fn master_key_rotation_keeps_secrets_and_wrong_keys_are_refused() {
    let dir = temp_dir("rotate");
    let serve = Serve::start(&dir, &[]);
    serve.ok(&["tenant", "create", "acme"], None);
    serve.ok(
        &["provider-key", "add", "--tenant", "acme", "k1"],
        Some("sk-secret-1"),
    );
    let token = serve.ok(&["dataplane", "enroll", "dp1"], None).trim().to_owned();
    assert_eq!(provider_secret(&serve, &token), b"sk-secret-1");

    // While serve runs, the store is locked.
    let out = Command::new(BIN)
        .args(["master-key", "rotate", "--data"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(serve.stop());

    let old_key = std::fs::read_to_string(dir.join("master.key")).unwrap();
    let out = Command::new(BIN)
        .args(["master-key", "rotate", "--data"])
        .arg(&dir)
        .env_remove("SLUICE_MASTER_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 provider key(s) re-wrapped"));
    let new_key = std::fs::read_to_string(dir.join("master.key")).unwrap();
    assert_ne!(old_key, new_key);
    assert!(!dir.join("master.key.new").exists());

    let serve = Serve::start(&dir, &[]);
    assert_eq!(provider_secret(&serve, &token), b"sk-secret-1");
    assert!(serve.stop());

    // The old key no longer fits: a clear refusal.
    let out = Command::new(BIN)
        .args([
            "serve",
            "--admin",
            "127.0.0.1:0",
            "--sync",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(&dir)
        .env("SLUICE_MASTER_KEY", old_key.trim())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not match"), "{err}");
}
