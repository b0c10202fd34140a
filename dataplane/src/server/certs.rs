//! The ingress TLS configuration: certificate and key files, the name each
//! handshake's SNI selects, and the reload on SIGHUP.
//!
//! Certificates come as pairs of PEM files (`--tls-cert FILE --tls-key FILE`,
//! repeatable, paired in order). Each certificate serves the DNS names in its
//! subjectAltName (`*.example.com` serves one label under `example.com`); a
//! name no certificate has, or a handshake without SNI, gets the first pair,
//! as a default server does. A name in two certificates goes to the first.
//!
//! The built `rustls::ServerConfig` sits in an [`ArcSwap`]; each handshake
//! takes the current one. [`Ingress::reload`] builds a new one from the same
//! files and swaps it in: handshakes after the swap use it, connections
//! already open keep the session they have (nothing is dropped), and a file
//! that does not load leaves the old configuration serving. Session tickets
//! are encrypted under one ticketer kept across reloads (it rotates its own
//! keys), and the session cache too, so a client resumes across a reload.

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{
    ClientHello, ProducesTickets, ResolvesServerCert, ServerSessionMemoryCache, StoresServerSessions,
};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// ALPN protocols offered, in the server's order of preference.
const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Sessions remembered for TLS 1.2 session-id resumption.
const SESSION_CACHE: usize = 4096;

/// One certificate chain and its private key, as files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertPair {
    /// PEM file: the leaf certificate first, then its intermediates.
    pub cert: PathBuf,
    /// PEM file: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The ingress TLS configuration the listeners read at each handshake.
pub struct Ingress {
    pairs: Vec<CertPair>,
    provider: Arc<CryptoProvider>,
    ticketer: Arc<dyn ProducesTickets>,
    cache: Arc<dyn StoresServerSessions>,
    current: ArcSwap<rustls::ServerConfig>,
}

impl std::fmt::Debug for Ingress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingress").field("pairs", &self.pairs).finish()
    }
}

impl Ingress {
    /// Loads every pair; an error names the file and what is wrong with it.
    pub fn load(pairs: Vec<CertPair>) -> Result<Ingress, String> {
        if pairs.is_empty() {
            return Err("TLS needs at least one --tls-cert and --tls-key".into());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| format!("session tickets: {e}"))?;
        let cache: Arc<dyn StoresServerSessions> = ServerSessionMemoryCache::new(SESSION_CACHE);
        let (config, _) = build(&pairs, &provider, &ticketer, &cache)?;
        Ok(Ingress {
            pairs,
            provider,
            ticketer,
            cache,
            current: ArcSwap::from_pointee(config),
        })
    }

    /// The configuration for the next handshake.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        self.current.load_full()
    }

    /// Reads the files again and swaps the new configuration in; on error
    /// the one serving now stays. Returns how many names the certificates
    /// serve.
    pub fn reload(&self) -> Result<usize, String> {
        let (config, names) = build(&self.pairs, &self.provider, &self.ticketer, &self.cache)?;
        self.current.store(Arc::new(config));
        Ok(names)
    }
}

fn build(
    pairs: &[CertPair],
    provider: &Arc<CryptoProvider>,
    ticketer: &Arc<dyn ProducesTickets>,
    cache: &Arc<dyn StoresServerSessions>,
) -> Result<(rustls::ServerConfig, usize), String> {
    let mut by_name = ByName::default();
    for pair in pairs {
        let key = load_pair(pair, provider)?;
        by_name.add(key, pair)?;
    }
    let names = by_name.exact.len() + by_name.wildcard.len();
    let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(by_name));
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    config.ticketer = ticketer.clone();
    config.session_storage = cache.clone();
    // A client that presents no session gets two tickets (TLS 1.3), so it
    // can resume twice, in parallel, without a full handshake.
    config.send_tls13_tickets = 2;
    Ok((config, names))
}

fn load_pair(pair: &CertPair, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, String> {
    let chain = CertificateDer::pem_file_iter(&pair.cert)
        .map_err(|e| format!("{}: {e}", pair.cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", pair.cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in the file", pair.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&pair.key).map_err(|e| format!("{}: {e}", pair.key.display()))?;
    CertifiedKey::from_der(chain, key, provider)
        .map(Arc::new)
        .map_err(|e| format!("{} with {}: {e}", pair.cert.display(), pair.key.display()))
}

/// Picks a certificate by the SNI name: exact, then one-label wildcard, then
/// the first pair.
#[derive(Debug, Default)]
struct ByName {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` under `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl ByName {
    fn add(&mut self, key: Arc<CertifiedKey>, pair: &CertPair) -> Result<(), String> {
        let leaf = key
            .end_entity_cert()
            .map_err(|e| format!("{}: {e}", pair.cert.display()))?;
        let parsed = webpki::EndEntityCert::try_from(leaf)
            .map_err(|e| format!("{}: not a usable certificate: {e}", pair.cert.display()))?;
        for name in parsed.valid_dns_names() {
            let name = name.to_ascii_lowercase();
            match name.strip_prefix("*.") {
                Some(parent) => {
                    self.wildcard
                        .entry(parent.to_owned())
                        .or_insert_with(|| key.clone());
                }
                None => {
                    self.exact.entry(name).or_insert_with(|| key.clone());
                }
            }
        }
        self.default.get_or_insert(key);
        Ok(())
    }

    fn find(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        let name = name.trim_end_matches('.');
        if let Some(key) = self.exact.get(name) {
            return Some(key);
        }
        let (_, parent) = name.split_once('.')?;
        self.wildcard.get(parent)
    }
}

impl ResolvesServerCert for ByName {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // rustls gives the SNI name lower-cased and checked as a DNS name.
        hello
            .server_name()
            .and_then(|name| self.find(name))
            .or(self.default.as_ref())
            .cloned()
    }
}

#[cfg(test)]
mod tests;
