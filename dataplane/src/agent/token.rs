//! The enrollment token: `sdp-<dataplane_id>-<64 hex chars>`.
//!
//! The id matches `[a-z0-9_]{1,32}` (so it never contains `-`); the hex part is
//! the 32-byte enrollment secret. The whole token is the bearer credential; the
//! secret also derives the key provider keys are sealed under for this data
//! plane. Neither is ever logged or formatted: `Debug` shows the id only.

use sluice_contract::crypto::{unhex, CryptoError, SealKey};
use std::sync::Arc;
use zeroize::Zeroizing;

/// HKDF salt of the snapshot sealing key (the info is the data plane id).
pub(crate) const SNAPSHOT_SEAL_SALT: &[u8] = b"sluice-snapshot-v1";

/// A parsed enrollment token.
pub(crate) struct Enrollment {
    id: String,
    secret: Zeroizing<[u8; 32]>,
    token: Arc<Zeroizing<String>>,
}

impl std::fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Enrollment({})", self.id)
    }
}

impl Enrollment {
    /// Parses `token` (surrounding whitespace, such as a file's trailing
    /// newline, is ignored); `None` if it is malformed.
    pub(crate) fn parse(token: &str) -> Option<Enrollment> {
        let token = token.trim();
        let rest = token.strip_prefix("sdp-")?;
        let (id, hex) = rest.split_once('-')?;
        let id_ok = (1..=32).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !id_ok || hex.len() != 64 {
            return None;
        }
        let secret = Zeroizing::new(unhex::<32>(hex)?);
        Some(Enrollment {
            id: id.to_string(),
            secret,
            token: Arc::new(Zeroizing::new(token.to_string())),
        })
    }

    /// The data plane id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The whole token, for the `Authorization` header.
    pub(crate) fn token(&self) -> Arc<Zeroizing<String>> {
        self.token.clone()
    }

    /// The key the control plane seals this data plane's provider keys under.
    pub(crate) fn seal_key(&self) -> Result<SealKey, CryptoError> {
        SealKey::derive(&self.secret[..], SNAPSHOT_SEAL_SALT, self.id.as_bytes())
    }
}
