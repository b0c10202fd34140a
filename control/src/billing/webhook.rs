//! Posting alerts to the operator's webhook (`serve --alert-webhook URL`).
//!
//! One thread, woken after ingest (and every [`SCAN_EVERY`] regardless),
//! reads the alerts it has not handled yet and posts each, in order, as
//! `{"type":"low_balance","tenant":..,"balance_micros":..,"threshold_micros":..,"ts_ms":..,"id":..}`.
//! An attempt has [`TIMEOUT`]; a failed one is retried after 1, 2, 4, 8 and
//! 16 s, then the alert is given up (it stays listed by `alerts`). A 2xx
//! marks it delivered in the store, so after a restart only the alerts of the
//! last [`REDELIVER_WITHIN_MS`] that were never delivered are posted again.
//! Nothing here runs on the ingest path: ingest only wakes the thread.

use crate::app::App;
use crate::billing::ops::BillingOp;
use crate::billing::rows::AlertRow;
use crate::ops::AdminOp;
use anyhow::bail;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Time limit of one delivery attempt (connect, send, answer).
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);
/// Delays before the retries of a failed delivery.
const RETRIES: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
];
/// The thread looks for new alerts at least this often.
const SCAN_EVERY: Duration = Duration::from_secs(10);
/// At start, undelivered alerts younger than this are posted again.
const REDELIVER_WITHIN_MS: u64 = 24 * 3600 * 1000;
/// Alerts read per scan.
const SCAN_BATCH: usize = 256;

/// Where alerts go: an `http://` URL split into base and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    base: String,
    path: String,
}

impl Target {
    /// Parses `http://HOST:PORT[/PATH]`.
    pub(crate) fn parse(url: &str) -> anyhow::Result<Target> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("--alert-webhook {url:?}: only http:// URLs are supported");
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        if authority.is_empty() || authority.contains('@') || path.chars().any(|c| c.is_control() || c == ' ')
        {
            bail!("--alert-webhook {url:?}: expected http://HOST:PORT[/PATH]");
        }
        Ok(Target {
            base: format!("http://{authority}"),
            path,
        })
    }
}

/// Starts the webhook thread.
pub(crate) fn start(app: &Arc<App>, target: Target) -> std::io::Result<()> {
    let weak = Arc::downgrade(app);
    let rx = app.billing.rx.clone();
    std::thread::Builder::new()
        .name("alert-webhook".into())
        .spawn(move || run(&weak, &rx, &target))
        .map(drop)
}

fn run(app: &Weak<App>, rx: &Receiver<()>, target: &Target) {
    // Highest alert id handled; `None` until the first scan.
    let mut cursor: Option<u64> = None;
    loop {
        let pending = match scan(app, cursor) {
            Some(p) => p,
            None => return,
        };
        let full = pending.len() == SCAN_BATCH;
        for alert in pending {
            cursor = Some(alert.id);
            if alert.delivered_ms.is_some() {
                continue;
            }
            if too_old(&alert) {
                continue;
            }
            if deliver(target, &alert) {
                let Some(a) = app.upgrade() else { return };
                let op = AdminOp::Billing(BillingOp::AlertDelivered {
                    id: alert.id,
                    now_ms: crate::clock::now_ms(),
                });
                if let Err(e) = a.writer.admin(op) {
                    tracing::warn!(alert = alert.id, error = %e, "could not mark the alert delivered");
                }
            }
        }
        if full {
            continue;
        }
        match rx.recv_timeout(SCAN_EVERY) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Alerts after `cursor` (from the start when `None`); `None` when the
/// process is shutting down.
fn scan(app: &Weak<App>, cursor: Option<u64>) -> Option<Vec<AlertRow>> {
    let a = app.upgrade()?;
    let store = a.store().ok()?;
    match store.alerts_after(cursor.unwrap_or(0), SCAN_BATCH) {
        Ok(list) => Some(list),
        Err(e) => {
            tracing::warn!(error = %e, "reading alerts for the webhook failed");
            Some(Vec::new())
        }
    }
}

/// An alert too old to post (after a restart, or a long outage).
fn too_old(alert: &AlertRow) -> bool {
    crate::clock::now_ms().saturating_sub(alert.ts_ms) > REDELIVER_WITHIN_MS
}

/// The JSON body posted for `alert`.
pub(crate) fn body(alert: &AlertRow) -> Vec<u8> {
    let mut body = serde_json::json!({
        "type": alert.kind,
        "tenant": alert.tenant,
        "balance_micros": alert.balance_micros,
        "threshold_micros": alert.threshold_micros,
        "ts_ms": alert.ts_ms,
        "id": alert.id,
    });
    if let Some(sink) = &alert.sink {
        body["sink"] = serde_json::Value::from(sink.as_str());
    }
    body.to_string().into_bytes()
}

/// Posts `alert`, retrying with backoff; true once a 2xx came back.
fn deliver(target: &Target, alert: &AlertRow) -> bool {
    let body = body(alert);
    for (attempt, delay) in std::iter::once(Duration::ZERO).chain(RETRIES).enumerate() {
        std::thread::sleep(delay);
        match crate::http::client::call(&target.base, "POST", &target.path, None, Some(&body), TIMEOUT) {
            Ok(r) if (200..300).contains(&r.status) => return true,
            Ok(r) => {
                tracing::warn!(
                    alert = alert.id,
                    attempt,
                    status = r.status,
                    "alert webhook refused the alert"
                )
            }
            Err(e) => tracing::warn!(alert = alert.id, attempt, error = %e, "alert webhook unreachable"),
        }
    }
    tracing::warn!(alert = alert.id, tenant = %alert.tenant, "giving up on posting the alert");
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        let t = Target::parse("http://127.0.0.1:9000/hooks/sluice?x=1").unwrap();
        assert_eq!(
            (t.base.as_str(), t.path.as_str()),
            ("http://127.0.0.1:9000", "/hooks/sluice?x=1")
        );
        assert_eq!(Target::parse("http://h:1").unwrap().path, "/");
        assert_eq!(Target::parse("http://h:1?a").unwrap().path, "/?a");
        assert!(Target::parse("https://h:1/x").is_err());
        assert!(Target::parse("http:///x").is_err());
        assert!(Target::parse("http://u@h:1/").is_err());
    }

    #[test]
    fn body_has_the_documented_fields() {
        let a = AlertRow {
            id: 3,
            kind: "low_balance".into(),
            tenant: "acme".into(),
            balance_micros: -5,
            threshold_micros: 100,
            ts_ms: 9,
            delivered_ms: None,
            sink: None,
        };
        let v: serde_json::Value = serde_json::from_slice(&body(&a)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"low_balance","tenant":"acme","balance_micros":-5,
                "threshold_micros":100,"ts_ms":9,"id":3})
        );
    }
}
