//! A sink as stored: where it publishes, how it authenticates, its limits.

use crate::names::check_name;
use crate::store::rows::SealedSecret;
use serde::{Deserialize, Serialize};

/// The alert kind of a sink that stays behind.
pub(crate) const STALLED_ALERT: &str = "sink_stalled";
/// The placeholder a subject template replaces with the record's tenant.
pub(crate) const TENANT_PLACEHOLDER: &str = "<tenant>";
/// The subject token for records of unauthenticated requests (no tenant).
pub(crate) const NO_TENANT: &str = "_";
/// Default JetStream duplicate window, seconds: a replay within it is dropped
/// by the engine itself (the publisher also checks the stream's tail).
pub(crate) const DEFAULT_DUPLICATE_WINDOW_SECS: u64 = 600;
/// Default: a sink that has not acknowledged pending records for this long raises an alert.
pub(crate) const DEFAULT_STALL_ALERT_SECS: u64 = 900;

/// How a sink authenticates to NATS; the secret itself is sealed in [`SinkRow::secret`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Auth {
    /// No credentials.
    None,
    /// A NATS `.creds` file (user JWT and nkey seed).
    Creds,
    /// `user` with a password.
    Password,
    /// A token.
    Token,
}

/// One sink (`sink add nats ...`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct SinkRow {
    /// Sink name.
    pub(crate) name: String,
    /// Engine: `nats` (JetStream).
    pub(crate) kind: String,
    /// Server URL(s), comma-separated: `nats://host:4222` or `tls://host:4222`.
    pub(crate) url: String,
    /// JetStream stream name (created when absent).
    pub(crate) stream: String,
    /// Subject template; [`TENANT_PLACEHOLDER`] becomes the record's tenant.
    pub(crate) subject: String,
    /// The stream's duplicate window when Sluice creates it, seconds.
    pub(crate) duplicate_window_secs: u64,
    /// Pending records unacknowledged this long raise a `sink_stalled` alert, seconds.
    pub(crate) stall_alert_secs: u64,
    /// PEM CA certificates to trust (TLS is then required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tls_ca_pem: Option<String>,
    /// Require TLS even without a private CA (webpki roots).
    #[serde(default)]
    pub(crate) tls: bool,
    /// How it authenticates.
    pub(crate) auth: Auth,
    /// User name for [`Auth::Password`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user: Option<String>,
    /// The creds file, password or token, sealed under the master key with
    /// [`secret_aad`] as associated data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) secret: Option<SealedSecret>,
    /// When it was added, unix ms.
    pub(crate) created_ms: u64,
}

/// The associated data a sink's secret is sealed with.
pub(crate) fn secret_aad(name: &str) -> String {
    format!("sink/{name}")
}

/// The subject a record of `tenant` goes to.
pub(crate) fn subject_for(template: &str, tenant: &str) -> String {
    let t = if tenant.is_empty() { NO_TENANT } else { tenant };
    template.replace(TENANT_PLACEHOLDER, t)
}

/// The subjects the stream must capture: the template with `*` for the tenant.
pub(crate) fn stream_subject(template: &str) -> String {
    template.replace(TENANT_PLACEHOLDER, "*")
}

/// Checks what an operator gives for a new sink; the message says what is wrong.
pub(crate) fn validate(row: &SinkRow) -> Result<(), String> {
    check_name("sink", &row.name)?;
    if row.kind != "nats" {
        return Err(format!(
            "unknown sink kind {:?}: only \"nats\" (JetStream)",
            row.kind
        ));
    }
    check_url(&row.url)?;
    let stream_ok = !row.stream.is_empty()
        && row.stream.len() <= 64
        && row
            .stream
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !stream_ok {
        return Err(format!(
            "invalid stream name {:?}: 1 to 64 of A-Z, a-z, 0-9, '_' and '-'",
            row.stream
        ));
    }
    check_subject(&row.subject)?;
    if row.duplicate_window_secs == 0 {
        return Err("the duplicate window must be at least 1 second".into());
    }
    if row.stall_alert_secs == 0 {
        return Err("the stall alert limit must be at least 1 second".into());
    }
    match (row.auth, &row.user, &row.secret) {
        (Auth::None, None, None) => {}
        (Auth::Password, Some(u), Some(_)) if !u.is_empty() => {}
        (Auth::Creds | Auth::Token, None, Some(_)) => {}
        _ => return Err("give one of: --creds FILE, --user U with --password-file F, --token-file F".into()),
    }
    Ok(())
}

/// A URL list whose parts are `nats://`, `tls://` or bare `host:port`, with
/// no credentials in them (those go in files, sealed at rest).
fn check_url(url: &str) -> Result<(), String> {
    if url.trim().is_empty() {
        return Err("--url is empty".into());
    }
    for part in url.split(',') {
        let part = part.trim();
        let rest = part
            .strip_prefix("nats://")
            .or_else(|| part.strip_prefix("tls://"))
            .unwrap_or(part);
        if rest.contains('@') {
            return Err(
                "put no credentials in --url (they would be shown and logged): use --creds, --user with \
                 --password-file, or --token-file"
                    .into(),
            );
        }
        if rest.is_empty() || rest.contains("://") || rest.contains(char::is_whitespace) {
            return Err(format!(
                "bad NATS URL {part:?}: nats://HOST:PORT or tls://HOST:PORT"
            ));
        }
    }
    Ok(())
}

/// A subject of dot-separated tokens, no wildcards, at most one
/// [`TENANT_PLACEHOLDER`] token.
fn check_subject(s: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "invalid subject {s:?}: dot-separated tokens of [A-Za-z0-9_-], no wildcards, with \
             at most one token {TENANT_PLACEHOLDER} (e.g. sluice.records.{TENANT_PLACEHOLDER})"
        )
    };
    let mut placeholders = 0;
    for token in s.split('.') {
        if token == TENANT_PLACEHOLDER {
            placeholders += 1;
            continue;
        }
        let ok = !token.is_empty()
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return Err(bad());
        }
    }
    if placeholders > 1 || s.len() > 200 {
        return Err(bad());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> SinkRow {
        SinkRow {
            name: "lake".into(),
            kind: "nats".into(),
            url: "nats://127.0.0.1:4222".into(),
            stream: "SLUICE".into(),
            subject: "sluice.records.<tenant>".into(),
            duplicate_window_secs: 600,
            stall_alert_secs: 900,
            tls_ca_pem: None,
            tls: false,
            auth: Auth::None,
            user: None,
            secret: None,
            created_ms: 0,
        }
    }

    #[test]
    fn subjects_and_urls_are_checked() {
        assert!(validate(&row()).is_ok());
        assert_eq!(
            subject_for("sluice.records.<tenant>", "acme"),
            "sluice.records.acme"
        );
        assert_eq!(subject_for("sluice.records.<tenant>", ""), "sluice.records._");
        assert_eq!(stream_subject("sluice.records.<tenant>"), "sluice.records.*");
        for bad in ["a..b", "a.*", "a.>", "a.<tenant>.<tenant>", "a b", ""] {
            assert!(
                validate(&SinkRow {
                    subject: bad.into(),
                    ..row()
                })
                .is_err(),
                "{bad}"
            );
        }
        for bad in ["nats://u:p@h:4222", "http://h:1", "", "nats://"] {
            assert!(
                validate(&SinkRow {
                    url: bad.into(),
                    ..row()
                })
                .is_err(),
                "{bad}"
            );
        }
        assert!(validate(&SinkRow {
            url: "nats://a:1, tls://b:2".into(),
            ..row()
        })
        .is_ok());
        assert!(validate(&SinkRow {
            stream: "A.B".into(),
            ..row()
        })
        .is_err());
        assert!(validate(&SinkRow {
            auth: Auth::Token,
            ..row()
        })
        .is_err());
    }
}
