//! `/v1/sinks`: record sinks (admin scope to change, read scope to list).

use super::{body, invalid, method_not_allowed, not_found, se, Reply};
use crate::app::App;
use crate::http::{Request, Response};
use crate::ops::AdminOp;
use crate::sinks::config::{self, Auth, SinkRow};
use crate::sinks::cursor::SinkOp;
use crate::sinks::stats::{self, StatsView};
use crate::store::rows::SealedSecret;
use serde::{Deserialize, Serialize};
use sluice_contract::crypto::hex;
use std::sync::Arc;
use zeroize::Zeroizing;

/// A new sink as the CLI sends it; at most one secret, read by the CLI
/// from a file (never from the command line).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSink {
    name: String,
    kind: String,
    url: String,
    stream: String,
    subject: String,
    #[serde(default)]
    duplicate_window_secs: Option<u64>,
    #[serde(default)]
    stall_alert_secs: Option<u64>,
    #[serde(default)]
    tls_ca_pem: Option<String>,
    #[serde(default)]
    tls: bool,
    #[serde(default)]
    creds: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    token: Option<String>,
}

/// A sink as listed: never its secret.
#[derive(Serialize)]
struct Listed {
    name: String,
    kind: String,
    url: String,
    stream: String,
    subject: String,
    duplicate_window_secs: u64,
    stall_alert_secs: u64,
    tls: bool,
    auth: Auth,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    created_ms: u64,
    status: StatsView,
}

/// `/v1/sinks/...`.
pub(super) fn route(app: &Arc<App>, req: &Request, rest: &[&str]) -> Reply {
    match (req.method.as_str(), rest) {
        ("POST", []) => {
            let b: NewSink = body(req)?;
            let row = new_row(app, b)?;
            app.writer
                .admin(AdminOp::Sink(SinkOp::Add(Box::new(row.clone()))))
                .map_err(se)?;
            Ok(Response::json(201, &listed(row)))
        }
        ("GET", []) => {
            let store = app.store().map_err(se)?;
            let rows = crate::sinks::cursor::sinks(&store.begin_read().map_err(se)?).map_err(se)?;
            let list: Vec<Listed> = rows.into_iter().map(listed).collect();
            Ok(Response::json(200, &list))
        }
        ("DELETE", [name]) => {
            app.writer
                .admin(AdminOp::Sink(SinkOp::Remove((*name).to_owned())))
                .map_err(se)?;
            Ok(Response::json(200, &serde_json::json!({ "removed": name })))
        }
        (_, [] | [_]) => Err(method_not_allowed(req)),
        _ => Err(not_found(req)),
    }
}

fn new_row(app: &App, b: NewSink) -> Result<SinkRow, super::ApiError> {
    let (auth, secret) = match (
        b.creds.map(Zeroizing::new),
        b.password.map(Zeroizing::new),
        b.token.map(Zeroizing::new),
    ) {
        (None, None, None) => (Auth::None, None),
        (Some(c), None, None) => (Auth::Creds, Some(c)),
        (None, Some(p), None) => (Auth::Password, Some(p)),
        (None, None, Some(t)) => (Auth::Token, Some(t)),
        _ => return Err(invalid("give at most one of creds, password, token".into())),
    };
    if let Some(pem) = &b.tls_ca_pem {
        crate::sinks::nats::check_ca(pem).map_err(invalid)?;
    }
    let sealed = match &secret {
        Some(s) if s.trim().is_empty() => return Err(invalid("the secret file is empty".into())),
        Some(s) => {
            let env = app
                .vault
                .seal_secret(&config::secret_aad(&b.name), s.as_bytes())
                .map_err(|e| super::ApiError::Internal(e.to_string()))?;
            Some(SealedSecret {
                wrapped_dek: hex(&env.wrapped_dek),
                sealed: hex(&env.sealed),
            })
        }
        None => None,
    };
    let row = SinkRow {
        name: b.name,
        kind: b.kind,
        url: b.url,
        stream: b.stream,
        subject: b.subject,
        duplicate_window_secs: b
            .duplicate_window_secs
            .unwrap_or(config::DEFAULT_DUPLICATE_WINDOW_SECS),
        stall_alert_secs: b.stall_alert_secs.unwrap_or(config::DEFAULT_STALL_ALERT_SECS),
        tls: b.tls || b.tls_ca_pem.is_some(),
        tls_ca_pem: b.tls_ca_pem,
        auth,
        user: b.user,
        secret: sealed,
        created_ms: crate::clock::now_ms(),
    };
    config::validate(&row).map_err(invalid)?;
    Ok(row)
}

fn listed(row: SinkRow) -> Listed {
    let status = stats::get(&row.name).map(|s| s.view()).unwrap_or_default();
    Listed {
        name: row.name,
        kind: row.kind,
        url: row.url,
        stream: row.stream,
        subject: row.subject,
        duplicate_window_secs: row.duplicate_window_secs,
        stall_alert_secs: row.stall_alert_secs,
        tls: row.tls,
        auth: row.auth,
        user: row.user,
        created_ms: row.created_ms,
        status,
    }
}
