//! The data directory: foreign files, master keys, rotation.

use crate::support::{bearer, http, key_secret, temp_dir, Serve, BIN};
use sluice_contract::crypto::{dataplane_seal_key, SnapshotMac};
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

fn provider_secret(serve: &Serve, file: &str) -> Vec<u8> {
    let r = http(
        &serve.sync,
        "GET",
        "/v1/snapshot?after=0",
        Some(&bearer(file)),
        None,
    );
    let mac = SnapshotMac::derive(&key_secret(file), "dp1").unwrap();
    assert!(mac.verify(&r.body, r.header("x-sluice-snapshot-mac").unwrap()));
    let snap: Snapshot = serde_json::from_slice(&r.body).unwrap();
    let sealed = snap.provider_keys[0].sealed.clone().unwrap();
    let bytes: Vec<u8> = (0..sealed.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&sealed[i..i + 2], 16).unwrap())
        .collect();
    let key = dataplane_seal_key(&key_secret(file), "dp1").unwrap();
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
    let token = serve.enroll_full("dp1");
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

#[test]
fn enroll_out_writes_the_token_0600_and_never_over_a_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("enroll-out");
    let serve = Serve::start(&dir, &[]);
    let path = dir.join("dp1.token");
    let out = serve.cli(
        &["dataplane", "enroll", "dp1", "--out", path.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Shown nowhere else: not on stdout.
    assert!(!String::from_utf8_lossy(&out.stdout).contains("sdp-"));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let token = std::fs::read_to_string(&path).unwrap();
    assert!(token.starts_with("sdp-dp1-") && token.ends_with('\n'), "{token}");
    // The file's bearer part works on the sync API.
    let r = http(
        &serve.sync,
        "GET",
        "/v1/snapshot?after=0",
        Some(&bearer(token.trim())),
        None,
    );
    assert_eq!(r.status, 200);
    // An existing file is never overwritten (nor enrolled for).
    let again = serve.cli(
        &["dataplane", "enroll", "dp2", "--out", path.to_str().unwrap()],
        None,
    );
    assert!(!again.status.success());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), token);
    assert!(!serve.ok(&["dataplane", "list"], None).contains("dp2"));
    assert!(serve.stop());
}

#[test]
fn a_plaintext_sync_api_off_loopback_needs_insecure_plaintext() {
    let dir = temp_dir("plaintext-sync");
    let run = |extra: &[&str]| {
        Command::new(BIN)
            .args(["serve", "--admin", "127.0.0.1:0", "--sync", "0.0.0.0:0", "--data"])
            .arg(&dir)
            .args(extra)
            .env_remove("SLUICE_MASTER_KEY")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let refused = run(&[]).wait_with_output().unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("refusing a plain-HTTP sync API") && err.contains("--insecure-plaintext"),
        "{err}"
    );

    // Asked for: it serves, and says it is insecure.
    let mut child = run(&["--insecure-plaintext"]);
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    use std::io::BufRead;
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("admin listening on"), "{line}");
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("INSECURE"), "{err}");
}

#[test]
fn the_master_key_can_come_from_a_command_and_stays_out_of_the_data_directory() {
    let dir = temp_dir("key-cmd");
    let elsewhere = temp_dir("key-cmd-secret");
    let key_file = elsewhere.join("kek.hex");
    std::fs::write(&key_file, "cd".repeat(32)).unwrap();
    let cmd = format!("cat {}", key_file.display());
    let serve = Serve::start(&dir, &["--master-key-cmd", &cmd]);
    serve.ok(&["tenant", "create", "acme"], None);
    serve.ok(
        &["provider-key", "add", "--tenant", "acme", "k1"],
        Some("sk-secret-1"),
    );
    let token = serve.enroll_full("dp1");
    assert_eq!(provider_secret(&serve, &token), b"sk-secret-1");
    assert!(serve.stop());
    assert!(
        !dir.join("master.key").exists(),
        "a key was generated beside the store"
    );
    // Another key from the command is refused, as from a file.
    std::fs::write(&key_file, "ef".repeat(32)).unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--admin",
            "127.0.0.1:0",
            "--sync",
            "127.0.0.1:0",
            "--master-key-cmd",
            &cmd,
            "--data",
        ])
        .arg(&dir)
        .env_remove("SLUICE_MASTER_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
}
