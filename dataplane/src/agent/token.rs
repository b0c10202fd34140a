//! The enrollment token: `sdp-<dataplane_id>-<64 hex>-<64 hex>`.
//!
//! The id matches `[a-z0-9_]{1,32}` (so it never contains `-`). The first
//! hex part is the bearer secret: `sdp-<id>-<bearer hex>` is the credential
//! sent to control on every sync request. The second is the data plane's key
//! secret: it derives the key provider keys are sealed under and the key
//! snapshots are authenticated under, and it never leaves this process (it
//! is not sent to control), so a captured bearer token opens nothing.
//! Neither secret is ever logged or formatted: `Debug` shows the id only.
//! A token of the older form without a key secret is refused: the data plane
//! must be re-enrolled.

use sluice_contract::crypto::{dataplane_seal_key, unhex, CryptoError, SealKey, SnapshotMac};
use std::sync::Arc;
use zeroize::Zeroizing;

/// A parsed enrollment token.
pub(crate) struct Enrollment {
    id: String,
    key_secret: Zeroizing<[u8; 32]>,
    bearer: Arc<Zeroizing<String>>,
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
        let (id, secrets) = rest.split_once('-')?;
        let (bearer_hex, key_hex) = secrets.split_once('-')?;
        let id_ok = (1..=32).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        let lower = |h: &str| !h.bytes().any(|b| b.is_ascii_uppercase());
        if !id_ok || !lower(bearer_hex) || !lower(key_hex) {
            return None;
        }
        unhex::<32>(bearer_hex)?;
        let key_secret = Zeroizing::new(unhex::<32>(key_hex)?);
        Some(Enrollment {
            id: id.to_string(),
            key_secret,
            bearer: Arc::new(Zeroizing::new(format!("sdp-{id}-{bearer_hex}"))),
        })
    }

    /// The data plane id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The bearer credential (`sdp-<id>-<bearer hex>`), for the
    /// `Authorization` header; it does not contain the key secret.
    pub(crate) fn token(&self) -> Arc<Zeroizing<String>> {
        self.bearer.clone()
    }

    /// The key the control plane seals this data plane's provider keys under.
    pub(crate) fn seal_key(&self) -> Result<SealKey, CryptoError> {
        dataplane_seal_key(&self.key_secret[..], &self.id)
    }

    /// The key this data plane's snapshots are authenticated under.
    pub(crate) fn snapshot_mac(&self) -> Result<SnapshotMac, CryptoError> {
        SnapshotMac::derive(&self.key_secret[..], &self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_part_carries_no_key_secret() {
        let (b, k) = ("ab".repeat(32), "cd".repeat(32));
        let e = Enrollment::parse(&format!("sdp-dp_1-{b}-{k}\n")).unwrap();
        assert_eq!(e.id(), "dp_1");
        assert_eq!(e.token().as_str(), format!("sdp-dp_1-{b}"));
        assert!(!e.token().contains(&k));
        assert!(!format!("{e:?}").contains(&b));
        // The older form, without a key secret, is refused: re-enroll.
        assert!(Enrollment::parse(&format!("sdp-dp_1-{b}")).is_none());
        assert!(Enrollment::parse(&format!("sdp-dp_1-{b}-{}", "CD".repeat(32))).is_none());
        assert!(Enrollment::parse(&format!("sdp-dp-1-{b}-{k}")).is_none());
        assert!(Enrollment::parse(&format!("sdp-dp_1-{b}-{k}-00")).is_none());
    }
}
