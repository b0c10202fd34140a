use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A scratch directory for this test's files.
fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "sluice-certs-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A self-signed certificate for `names`, written as a pair of PEM files.
fn pair(dir: &std::path::Path, file: &str, names: &[&str]) -> CertPair {
    let ck =
        rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let cert = dir.join(format!("{file}.pem"));
    let key = dir.join(format!("{file}.key"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    CertPair { cert, key }
}

fn leaf_of(key: &CertifiedKey) -> Vec<u8> {
    key.end_entity_cert().unwrap().to_vec()
}

#[test]
fn names_pick_certificates_and_the_first_is_the_default() {
    let dir = scratch("sni");
    let a = pair(&dir, "a", &["a.test", "localhost"]);
    let b = pair(&dir, "b", &["*.b.test"]);
    let provider = rustls::crypto::ring::default_provider();
    let mut by_name = ByName::default();
    let ka = load_pair(&a, &provider).unwrap();
    let kb = load_pair(&b, &provider).unwrap();
    by_name.add(ka.clone(), &a).unwrap();
    by_name.add(kb.clone(), &b).unwrap();
    let found = |name: &str| by_name.find(name).map(|k| leaf_of(k));
    assert_eq!(found("a.test"), Some(leaf_of(&ka)));
    assert_eq!(found("localhost"), Some(leaf_of(&ka)));
    assert_eq!(found("api.b.test"), Some(leaf_of(&kb)));
    assert_eq!(
        found("api.b.test."),
        Some(leaf_of(&kb)),
        "a trailing dot is the same name"
    );
    assert_eq!(found("x.y.b.test"), None, "a wildcard covers one label");
    assert_eq!(found("b.test"), None);
    assert_eq!(found("c.test"), None);
    assert_eq!(by_name.default.as_ref().map(|k| leaf_of(k)), Some(leaf_of(&ka)));
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused() {
    let dir = scratch("mismatch");
    let a = pair(&dir, "a", &["a.test"]);
    let b = pair(&dir, "b", &["b.test"]);
    let crossed = CertPair {
        cert: a.cert.clone(),
        key: b.key.clone(),
    };
    let err = Ingress::load(vec![crossed]).unwrap_err();
    assert!(err.contains("a.pem"), "{err}");
    assert!(Ingress::load(Vec::new()).is_err());
}

#[test]
fn a_reload_swaps_and_a_bad_file_keeps_the_old() {
    let dir = scratch("reload");
    let a = pair(&dir, "a", &["a.test"]);
    let ingress = Ingress::load(vec![a.clone()]).unwrap();
    let first = ingress.current();
    // New files in place: the next handshake gets a new configuration.
    let fresh = pair(&dir, "fresh", &["a.test"]);
    std::fs::rename(&fresh.cert, &a.cert).unwrap();
    std::fs::rename(&fresh.key, &a.key).unwrap();
    assert_eq!(ingress.reload().unwrap(), 1);
    let second = ingress.current();
    assert!(!Arc::ptr_eq(&first, &second));
    // A broken file: the reload fails, the configuration serving stays.
    std::fs::write(&a.cert, "not a certificate\n").unwrap();
    assert!(ingress.reload().is_err());
    assert!(Arc::ptr_eq(&second, &ingress.current()));
    // Resumption state is the same across reloads.
    assert!(Arc::ptr_eq(&first.ticketer, &second.ticketer));
}
