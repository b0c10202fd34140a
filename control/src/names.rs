//! Validation of the identifiers operators and data planes hand us.
//!
//! Names end up in redb keys, URLs, record fields and the snapshot, so they are
//! kept to a small alphabet; a bad one is refused with a message that says
//! what is allowed.

use sluice_contract::crypto::unhex;

/// Longest tenant, key, upstream or region name.
const NAME_MAX: usize = 64;
/// Longest data plane id.
const DATAPLANE_MAX: usize = 32;
/// Longest model alias.
const MODEL_MAX: usize = 128;

/// Checks a tenant, key, upstream or region name: `[a-z0-9][a-z0-9_-]{0,63}`.
pub(crate) fn check_name(what: &str, s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= NAME_MAX
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} {s:?}: use 1 to {NAME_MAX} of a-z, 0-9, '_' and '-', starting with a letter or digit"
        ))
    }
}

/// Checks a data plane id: `[a-z0-9_]{1,32}` (no '-', so a token splits unambiguously).
pub(crate) fn check_dataplane_id(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= DATAPLANE_MAX
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid data plane id {s:?}: use 1 to {DATAPLANE_MAX} of a-z, 0-9 and '_'"
        ))
    }
}

/// Checks a model alias. Provider model names carry dots, colons and slashes
/// (`anthropic/claude-3.5-sonnet`, `gpt-4o:free`), so the alphabet is wider.
pub(crate) fn check_model(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= MODEL_MAX
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:/@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid model {s:?}: use 1 to {MODEL_MAX} of A-Z, a-z, 0-9 and . _ : / @ -"
        ))
    }
}

/// The bearer credential a data plane presents, `sdp-<dataplane_id>-<64 hex>`
/// (its token file without the key part).
pub(crate) struct EnrollToken {
    /// The data plane it enrolls.
    pub(crate) dataplane: String,
}

impl EnrollToken {
    /// Parses a presented token; `None` for anything malformed.
    pub(crate) fn parse(token: &str) -> Option<EnrollToken> {
        let rest = token.strip_prefix("sdp-")?;
        let (id, hex) = rest.split_once('-')?;
        check_dataplane_id(id).ok()?;
        if hex.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        // The bearer secret: 32 bytes. The data plane's key secret (the
        // token file's last part) is never presented, so a token that carries
        // it is malformed here.
        unhex::<32>(hex)?;
        Some(EnrollToken {
            dataplane: id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("tenant", "acme").is_ok());
        assert!(check_name("tenant", "a-b_c9").is_ok());
        assert!(check_name("tenant", &"a".repeat(64)).is_ok());
        assert!(check_name("tenant", &"a".repeat(65)).is_err());
        assert!(check_name("tenant", "").is_err());
        assert!(check_name("tenant", "-a").is_err());
        assert!(check_name("tenant", "Acme").is_err());
        assert!(check_name("tenant", "a/b").is_err());
        assert!(check_name("tenant", "a b").is_err());
    }

    #[test]
    fn dataplane_ids_and_models() {
        assert!(check_dataplane_id("dp_1").is_ok());
        assert!(check_dataplane_id("dp-1").is_err());
        assert!(check_dataplane_id(&"a".repeat(33)).is_err());
        assert!(check_model("anthropic/claude-3.5-sonnet").is_ok());
        assert!(check_model("gpt 4").is_err());
        assert!(check_model("").is_err());
    }

    #[test]
    fn tokens() {
        let hex = "ab".repeat(32);
        let t = EnrollToken::parse(&format!("sdp-dp_1-{hex}")).unwrap();
        assert_eq!(t.dataplane, "dp_1");
        assert!(EnrollToken::parse(&format!("sdp-dp_1-{hex}-{hex}")).is_none());
        assert!(EnrollToken::parse(&format!("sdp-dp-1-{hex}")).is_none());
        assert!(EnrollToken::parse(&format!("sdp-dp_1-{}", "AB".repeat(32))).is_none());
        assert!(EnrollToken::parse(&format!("sk-dp_1-{hex}")).is_none());
        assert!(EnrollToken::parse("sdp-dp_1-abcd").is_none());
    }
}
