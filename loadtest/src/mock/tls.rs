//! The mock's self-signed certificate.

use std::sync::Arc;

use anyhow::Context as _;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// A server config with a fresh self-signed certificate for `localhost` and
/// `127.0.0.1`, and the certificate's PEM for clients to trust.
pub(super) fn self_signed() -> anyhow::Result<(Arc<rustls::ServerConfig>, String)> {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let ck = rcgen::generate_simple_self_signed(names).context("generating a self-signed certificate")?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let mut cfg =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(vec![ck.cert.der().clone()], key)
            .context("TLS certificate")?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(cfg), ck.cert.pem()))
}
