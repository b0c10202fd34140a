//! `compare --tls`: a throwaway self-signed certificate for `localhost`,
//! written where Sluice and nginx read it and the load tester trusts it.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The certificate and key files of `compare --tls`.
#[derive(Clone, Debug)]
pub(crate) struct TlsFiles {
    /// PEM certificate (also the load tester's trust anchor).
    pub(crate) cert: PathBuf,
    /// PEM private key (PKCS#8).
    pub(crate) key: PathBuf,
}

/// Makes the certificate in `dir`.
pub(crate) fn make(dir: &Path) -> anyhow::Result<TlsFiles> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .context("generating a self-signed certificate")?;
    let files = TlsFiles {
        cert: dir.join("tls-cert.pem"),
        key: dir.join("tls-key.pem"),
    };
    std::fs::write(&files.cert, ck.cert.pem()).context("writing the certificate")?;
    std::fs::write(&files.key, ck.signing_key.serialize_pem()).context("writing the key")?;
    Ok(files)
}
