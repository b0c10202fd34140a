//! Gateway key authentication: SHA-256 of the presented key, looked up in the
//! snapshot's hash map. The key itself is never stored, logged or echoed.

use crate::respond::ErrorKind;
use sluice_contract::crypto::sha256;
use sluice_contract::snapshot::{Index, KeyEntry};

/// The key presented in `authorization: Bearer <key>` or `x-api-key: <key>`.
pub fn presented_key<'a>(authorization: Option<&'a [u8]>, x_api_key: Option<&'a [u8]>) -> Option<&'a [u8]> {
    if let Some(value) = authorization {
        if value.len() > 7 && value[..7].eq_ignore_ascii_case(b"bearer ") {
            let key = value[7..].trim_ascii();
            if !key.is_empty() {
                return Some(key);
            }
        }
    }
    x_api_key.map(<[u8]>::trim_ascii).filter(|k| !k.is_empty())
}

/// Looks the presented key up.
pub fn authenticate(index: &Index, key: Option<&[u8]>) -> Result<KeyEntry, ErrorKind> {
    let key = key.ok_or(ErrorKind::MissingKey)?;
    index.key(&sha256(key)).cloned().ok_or(ErrorKind::InvalidKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_then_x_api_key() {
        assert_eq!(presented_key(Some(b"Bearer abc"), None), Some(&b"abc"[..]));
        assert_eq!(presented_key(Some(b"bearer  abc "), None), Some(&b"abc"[..]));
        assert_eq!(presented_key(Some(b"Basic abc"), Some(b"k2")), Some(&b"k2"[..]));
        assert_eq!(presented_key(Some(b"Bearer "), None), None);
        assert_eq!(presented_key(None, Some(b" ")), None);
        assert_eq!(presented_key(None, None), None);
    }
}
