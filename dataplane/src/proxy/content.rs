//! Opt-in content logging. Only for tenants that turned it on: the request
//! body and the response as relayed are sealed under the tenant's content
//! key before the record leaves the worker, so they never exist in plaintext
//! in the record queue, the spool or the control plane's store. Deleting the
//! tenant destroys the key, and with it every sealed copy.

use bytes::Bytes;
use sluice_contract::crypto::{hex, SealKey};
use sluice_contract::record::Record;
use std::sync::Arc;

/// Most response bytes captured (the rest is dropped and marked truncated).
pub const MAX_CAPTURE: usize = 1024 * 1024;

/// What is captured for one request.
pub struct Capture {
    key: Arc<SealKey>,
    request: Bytes,
    /// The response payload as relayed (de-chunked).
    pub response: Vec<u8>,
    /// More than [`MAX_CAPTURE`] bytes came.
    pub cut: bool,
}

impl Capture {
    /// Starts capturing a request whose body is `request`.
    pub fn new(key: Arc<SealKey>, request: Bytes) -> Self {
        Capture {
            key,
            request,
            response: Vec::new(),
            cut: false,
        }
    }

    /// Appends response payload, within the bound.
    pub fn push(&mut self, piece: &[u8]) {
        let room = MAX_CAPTURE.saturating_sub(self.response.len());
        self.cut |= piece.len() > room;
        self.response.extend_from_slice(&piece[..piece.len().min(room)]);
    }

    /// Seals what was captured into `record.content_sealed`.
    pub fn seal_into(self, record: &mut Record) {
        let doc = serde_json::json!({
            "request": String::from_utf8_lossy(&self.request),
            "response": String::from_utf8_lossy(&self.response),
            "response_truncated": self.cut,
        });
        let Ok(plain) = serde_json::to_vec(&doc).map(zeroize::Zeroizing::new) else {
            return;
        };
        let aad = format!(
            "content/{}/{}",
            record.tenant.as_deref().unwrap_or(""),
            record.ts_ms
        );
        if let Ok(sealed) = self.key.seal(&plain, aad.as_bytes()) {
            record.content_sealed = Some(hex(&sealed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_contract::record::ApiRoute;

    #[test]
    fn sealed_content_opens_only_with_the_key_and_binding() {
        let (key, _) = SealKey::generate().unwrap();
        let key = Arc::new(key);
        let mut c = Capture::new(key.clone(), Bytes::from_static(b"{\"prompt\":\"canary-123\"}"));
        c.push(b"data: hello\n\n");
        let mut r = Record::new(42, ApiRoute::ChatCompletions);
        r.tenant = Some("acme".into());
        c.seal_into(&mut r);
        let sealed = r.content_sealed.clone().unwrap();
        assert!(!sealed.contains("canary"));
        let bytes: Vec<u8> = (0..sealed.len() / 2)
            .map(|i| u8::from_str_radix(&sealed[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let plain = key.open(&bytes, b"content/acme/42").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        assert_eq!(v["response"], "data: hello\n\n");
        assert!(v["request"].as_str().unwrap().contains("canary-123"));
        assert!(key.open(&bytes, b"content/other/42").is_err());
    }

    #[test]
    fn capture_is_bounded() {
        let (key, _) = SealKey::generate().unwrap();
        let mut c = Capture::new(Arc::new(key), Bytes::new());
        c.push(&vec![b'a'; MAX_CAPTURE - 1]);
        c.push(b"bc");
        assert_eq!(c.response.len(), MAX_CAPTURE);
        assert!(c.cut);
    }
}
