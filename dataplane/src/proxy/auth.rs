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

/// The key a Gemini caller presents: `x-goog-api-key`, else the `key`
/// query parameter (Google's older form; percent-escapes are not undone,
/// gateway keys have none). The query is never forwarded as sent, nor
/// logged: see [`super::forward`].
pub fn presented_gemini_key<'a>(x_goog_api_key: Option<&'a [u8]>, query: &'a [u8]) -> Option<&'a [u8]> {
    x_goog_api_key
        .map(<[u8]>::trim_ascii)
        .filter(|k| !k.is_empty())
        .or_else(|| {
            query
                .split(|&b| b == b'&')
                .find_map(|pair| pair.strip_prefix(b"key="))
                .filter(|k| !k.is_empty())
        })
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
        assert_eq!(presented_gemini_key(Some(b" g "), b"key=q"), Some(&b"g"[..]));
        assert_eq!(presented_gemini_key(None, b"alt=sse&key=q"), Some(&b"q"[..]));
        assert_eq!(presented_gemini_key(None, b"alt=sse&akey=q&key="), None);
    }
}
