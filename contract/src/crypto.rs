//! Sealing and opening secrets with AES-256-GCM (ring).
//!
//! A sealed secret is `nonce (12 bytes) || ciphertext || tag (16 bytes)`; the
//! associated data binds it to its owner (tenant id and key id), so a sealed
//! value moved to another owner fails to open. Nonces are random 96-bit values
//! from [`ring::rand::SystemRandom`].

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{hkdf, hmac};
use zeroize::Zeroizing;

/// Bytes a sealed value carries beyond its plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + 16;

/// Why a secret could not be sealed or opened. Deliberately says nothing else:
/// the caller must not learn which byte was wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CryptoError {
    /// The sealed value was altered, belongs to another owner, or the key is wrong.
    Open,
    /// The system random source failed.
    Random,
    /// A key had the wrong length.
    KeyLength,
}

impl std::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CryptoError::Open => "sealed secret failed to open (altered, wrong owner or wrong key)",
            CryptoError::Random => "system random source failed",
            CryptoError::KeyLength => "key must be 32 bytes",
        })
    }
}

impl std::error::Error for CryptoError {}

/// An AES-256-GCM key that seals and opens secrets.
pub struct SealKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

impl SealKey {
    /// A key from 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| CryptoError::KeyLength)?;
        Ok(SealKey {
            key: LessSafeKey::new(unbound),
        })
    }

    /// A fresh random key; its raw bytes are returned so the caller can keep them.
    pub fn generate() -> Result<(Self, Zeroizing<[u8; 32]>), CryptoError> {
        let raw = random_bytes::<32>()?;
        Ok((SealKey::from_bytes(&raw[..])?, raw))
    }

    /// A key derived with HKDF-SHA256 from `secret`, for the purpose `info`.
    pub fn derive(secret: &[u8], salt: &[u8], info: &[u8]) -> Result<Self, CryptoError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(secret);
        let info = [info];
        let okm = prk
            .expand(&info, &AES_256_GCM)
            .map_err(|_| CryptoError::KeyLength)?;
        Ok(SealKey {
            key: LessSafeKey::new(UnboundKey::from(okm)),
        })
    }

    /// Seals `plaintext` bound to `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce = random_bytes::<NONCE_LEN>()?;
        let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
        out.extend_from_slice(&nonce[..]);
        out.extend_from_slice(plaintext);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                &mut out[NONCE_LEN..],
            )
            .map_err(|_| CryptoError::Open)?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Opens a value made by [`SealKey::seal`] with the same `aad`, into a
    /// buffer that is wiped when dropped.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(CryptoError::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Open)?;
        let mut buf = Zeroizing::new(body.to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buf[..])
            .map_err(|_| CryptoError::Open)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

/// HKDF salt of the key a data plane's provider keys are sealed under.
pub const DATAPLANE_SEAL_SALT: &[u8] = b"sluice-dataplane-seal-v2";
/// HKDF salt of the key a data plane's snapshots are authenticated under.
pub const DATAPLANE_MAC_SALT: &[u8] = b"sluice-dataplane-mac-v2";

/// The key a data plane's provider keys are sealed under: HKDF-SHA256 of
/// the 32-byte key secret made at enrollment, info the data plane id.
///
/// That secret sits in the data plane's token file and, sealed under the
/// master key, in control's store; it never crosses the sync API (the bearer
/// credential is another secret). So whoever captures the bearer token or a
/// snapshot on the wire can neither open a provider key nor forge a snapshot
/// (see [`SnapshotMac`]).
pub fn dataplane_seal_key(secret: &[u8], dataplane: &str) -> Result<SealKey, CryptoError> {
    SealKey::derive(secret, DATAPLANE_SEAL_SALT, dataplane.as_bytes())
}

/// Response header of `GET /v1/snapshot` carrying [`SnapshotMac::sign`] of
/// the body.
pub const SNAPSHOT_MAC_HEADER: &str = "x-sluice-snapshot-mac";

/// The HMAC-SHA256 key a data plane's snapshots are authenticated under,
/// derived like [`dataplane_seal_key`] under its own salt.
pub struct SnapshotMac(hmac::Key);

impl std::fmt::Debug for SnapshotMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SnapshotMac(..)")
    }
}

impl SnapshotMac {
    /// The key of data plane `dataplane` whose key secret is `secret`.
    pub fn derive(secret: &[u8], dataplane: &str) -> Result<Self, CryptoError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, DATAPLANE_MAC_SALT).extract(secret);
        let info = [dataplane.as_bytes()];
        let okm = prk
            .expand(&info, hmac::HMAC_SHA256)
            .map_err(|_| CryptoError::KeyLength)?;
        Ok(SnapshotMac(hmac::Key::from(okm)))
    }

    /// The MAC of a whole snapshot body, lower-case hex.
    pub fn sign(&self, body: &[u8]) -> String {
        hex(hmac::sign(&self.0, body).as_ref())
    }

    /// Whether `mac_hex` is the MAC of `body` (compared in constant time).
    pub fn verify(&self, body: &[u8], mac_hex: &str) -> bool {
        match unhex::<32>(mac_hex.trim()) {
            Some(tag) => hmac::verify(&self.0, body, &tag).is_ok(),
            None => false,
        }
    }
}

/// `N` bytes from the system random source, wiped when dropped.
pub fn random_bytes<const N: usize>() -> Result<Zeroizing<[u8; N]>, CryptoError> {
    let mut out = Zeroizing::new([0u8; N]);
    SystemRandom::new()
        .fill(&mut out[..])
        .map_err(|_| CryptoError::Random)?;
    Ok(out)
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Parses lower- or upper-case hex into exactly `N` bytes.
pub fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.as_bytes();
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let (key, _) = SealKey::generate().unwrap();
        let sealed = key.seal(b"sk-provider-secret", b"tenant-a/key-1").unwrap();
        assert_eq!(
            &key.open(&sealed, b"tenant-a/key-1").unwrap()[..],
            b"sk-provider-secret"
        );
        assert_eq!(key.open(&sealed, b"tenant-b/key-1"), Err(CryptoError::Open));
        let mut altered = sealed.clone();
        altered[NONCE_LEN] ^= 1;
        assert_eq!(key.open(&altered, b"tenant-a/key-1"), Err(CryptoError::Open));
        assert_eq!(key.open(&sealed[..10], b"tenant-a/key-1"), Err(CryptoError::Open));
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
    }

    #[test]
    fn derived_keys_differ_by_info() {
        let a = SealKey::derive(b"enroll", b"salt", b"a").unwrap();
        let b = SealKey::derive(b"enroll", b"salt", b"b").unwrap();
        let sealed = a.seal(b"x", b"").unwrap();
        assert!(b.open(&sealed, b"").is_err());
        assert!(a.open(&sealed, b"").is_ok());
    }

    #[test]
    fn snapshot_macs_and_seal_keys_differ_by_id_and_secret() {
        let body = br#"{"version":1}"#;
        let k = SnapshotMac::derive(&[1u8; 32], "dp1").unwrap();
        let mac = k.sign(body);
        assert!(k.verify(body, &mac));
        assert!(!k.verify(br#"{"version":2}"#, &mac));
        assert!(!k.verify(body, "00"));
        assert!(!SnapshotMac::derive(&[1u8; 32], "dp2").unwrap().verify(body, &mac));
        assert!(!SnapshotMac::derive(&[2u8; 32], "dp1").unwrap().verify(body, &mac));
        let seal = dataplane_seal_key(&[1u8; 32], "dp1").unwrap();
        let sealed = seal.seal(b"sk-x", b"t/k").unwrap();
        assert_eq!(&seal.open(&sealed, b"t/k").unwrap()[..], b"sk-x");
        let other = dataplane_seal_key(&[2u8; 32], "dp1").unwrap();
        assert!(other.open(&sealed, b"t/k").is_err());
    }

    #[test]
    fn hex_round_trip() {
        let h = sha256(b"abc");
        assert_eq!(
            hex(&h),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(unhex::<32>(&hex(&h)), Some(h));
        assert_eq!(unhex::<2>("zz00"), None);
    }
}
