//! The sync API (--tls-cert / --tls-key) and the admin API
//! (--admin-tls-cert / --admin-tls-key) over TLS.

use crate::support::{temp_dir, Serve};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;

/// A self-signed certificate for localhost, written as PEM files.
fn self_signed(dir: &std::path::Path) -> (rcgen::CertifiedKey<rcgen::KeyPair>, PathBuf, PathBuf) {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (ck, cert, key)
}

#[test]
fn admin_api_serves_the_cli_over_tls() {
    let dir = temp_dir("admin-tls");
    let (_ck, cert, key) = self_signed(&dir);
    let serve = Serve::start(
        &dir.join("data"),
        &[
            "--admin-tls-cert",
            cert.to_str().unwrap(),
            "--admin-tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(serve.admin_url().starts_with("https://localhost:"));
    let ca = cert.to_str().unwrap();
    serve.ok(&["tenant", "create", "acme", "--admin-ca-file", ca], None);
    let list = serve.ok(&["tenant", "list", "--json", "--admin-ca-file", ca], None);
    assert!(list.contains("\"acme\""), "{list}");

    // Without the CA the certificate is not trusted, and nothing is sent.
    let err = serve.fails(&["tenant", "create", "globex"], None);
    assert!(err.contains("certificate"), "{err}");
    let list = serve.ok(&["tenant", "list", "--json", "--admin-ca-file", ca], None);
    assert!(!list.contains("globex"), "{list}");

    // Plain HTTP to the TLS port gets no answer.
    let mut plain = TcpStream::connect(&serve.admin).unwrap();
    plain.write_all(b"GET /v1/tenants HTTP/1.1\r\n\r\n").unwrap();
    let mut junk = Vec::new();
    let _ = plain.read_to_end(&mut junk);
    assert!(!String::from_utf8_lossy(&junk).contains("HTTP/1.1"));
}

#[test]
fn sync_api_serves_over_tls() {
    let dir = temp_dir("tls");
    let (ck, cert, key) = self_signed(&dir);
    let data = dir.join("data");
    let serve = Serve::start(
        &data,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let token = serve.enroll("dp1");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, TcpStream::connect(&serve.sync).unwrap());
    let req = format!(
        "GET /v1/snapshot?after=0 HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
    );
    tls.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"version\":"), "{text}");

    // Plain HTTP to the TLS port gets nothing useful.
    let mut plain = TcpStream::connect(&serve.sync).unwrap();
    plain.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").unwrap();
    let mut junk = Vec::new();
    let _ = plain.read_to_end(&mut junk);
    assert!(!String::from_utf8_lossy(&junk).contains("200 OK"));
}
