//! The sync API data planes talk to (its own listener).
//!
//! - Auth: `Authorization: Bearer sdp-<dataplane_id>-<64 hex>`; the store keeps
//!   only SHA-256 of the whole token. Unknown, malformed or revoked: 401.
//! - `GET /v1/snapshot?after=V`: 200 with the snapshot JSON when the current
//!   version is newer than V (or V is absent); otherwise held up to 25 s,
//!   answered early when a newer version commits, else 204. Both carry
//!   `x-sluice-version: <current>`. Provider keys arrive sealed for the data
//!   plane, and the 200 carries `x-sluice-snapshot-mac`, the MAC of the whole
//!   body (see [`crate::snapshot::dataplane_keys`]): both keys come from the
//!   data plane's key secret, which is never sent here.
//! - `POST /v1/records` `{"batch":[{"seq":u64,"record":Record},...]}` (at most
//!   10,000 records, body at most 64 MiB): stored in one transaction keyed by
//!   (data plane, seq), replays skipped; 200 `{"acked_through":max_seq,"stored":n}`.
//! - `POST /v1/health` `{"targets":[TargetView,...]}` (at most
//!   [`MAX_HEALTH_TARGETS`]): the data plane's view of its route targets'
//!   health, kept in memory for `GET /v1/dataplanes/health`; 204.
//! - `GET /healthz`.

use crate::app::{secret_eq, store_error, App};
use crate::http::{Request, Response};
use crate::names::EnrollToken;
use crate::store::ingest::{Batch, Prepared};
use crate::store::rows::DataplaneRow;
use serde::{Deserialize, Serialize};
use sluice_contract::crypto::{unhex, SNAPSHOT_MAC_HEADER};
use sluice_contract::record::Record;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Largest records body.
pub(crate) const MAX_BODY: usize = 64 * 1024 * 1024;
/// Most records in one batch.
pub(crate) const MAX_BATCH: usize = 10_000;
/// Most targets in one health report.
pub(crate) const MAX_HEALTH_TARGETS: usize = 10_000;
/// How long a snapshot poll is held before a 204.
pub(crate) const LONG_POLL: Duration = Duration::from_secs(25);
/// Header carrying the current snapshot version.
pub(crate) const VERSION_HEADER: &str = "x-sluice-version";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordsBody {
    batch: Vec<Item>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Item {
    seq: u64,
    record: Record,
}

#[derive(Serialize)]
struct Ack {
    acked_through: u64,
    stored: u64,
}

/// Most bytes of a body on a sync route other than `POST /v1/records` and
/// `POST /v1/health`.
const SMALL_BODY: usize = 64 * 1024;

/// Most bytes of a health report: [`MAX_HEALTH_TARGETS`] targets of a few
/// hundred bytes each.
const HEALTH_BODY: usize = 4 * 1024 * 1024;

/// Admits a sync request on its head (see [`crate::http::server::Admit`]):
/// a data plane's token is checked before any of its body is read, and only
/// `POST /v1/records` may send a large one.
pub(crate) fn admit(app: &Arc<App>, req: &Request) -> Result<usize, Response> {
    match req.path.as_str() {
        "/v1/records" => authenticate(app, req).map(|_| MAX_BODY),
        "/v1/snapshot" => authenticate(app, req).map(|_| SMALL_BODY),
        "/v1/health" => authenticate(app, req).map(|_| HEALTH_BODY),
        _ => Ok(0),
    }
}

/// Answers one sync request.
pub(crate) fn handle(app: &Arc<App>, req: &Request, long_poll: Duration) -> Response {
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/healthz") => return Response::text(200, "text/plain", "ok\n".into()),
        (_, "/v1/snapshot" | "/v1/records" | "/v1/health") => {}
        _ => {
            return Response::error(
                404,
                &format!("no such sync endpoint: {} {}", req.method, req.path),
            )
        }
    }
    let (token, row) = match authenticate(app, req) {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/v1/snapshot") => snapshot(app, req, &row, long_poll),
        ("POST", "/v1/records") => records(app, req, &token, &row),
        ("POST", "/v1/health") => health(app, req, &row),
        _ => Response::error(405, &format!("{} is not allowed on {}", req.method, req.path)),
    }
}

fn authenticate(app: &App, req: &Request) -> Result<(EnrollToken, DataplaneRow), Response> {
    let deny = || {
        app.metrics.unauthorized.fetch_add(1, Ordering::Relaxed);
        Response::error(401, "unknown or revoked data plane token")
    };
    let presented = req.bearer().ok_or_else(deny)?;
    let token = EnrollToken::parse(presented).ok_or_else(deny)?;
    let store = app.store().map_err(|e| store_error(&e))?;
    let row = store
        .dataplane(&token.dataplane)
        .map_err(|e| store_error(&e))?
        .ok_or_else(deny)?;
    let expected = unhex::<32>(&row.token_sha256).ok_or_else(deny)?;
    if row.revoked_ms.is_some() || !secret_eq(presented.as_bytes(), &expected) {
        return Err(deny());
    }
    Ok((token, row))
}

fn snapshot(app: &App, req: &Request, row: &DataplaneRow, long_poll: Duration) -> Response {
    let after = match req.query_param("after").map(|v| v.parse::<u64>()) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => return Response::error(400, "after must be a snapshot version (u64)"),
    };
    app.metrics.seen(&row.id, after);
    crate::billing::ensure_leases(app, row, after == Some(0));
    let current = match after {
        Some(v) => app.hub.wait_newer(v, long_poll),
        None => app.hub.current(),
    };
    if after.is_some_and(|v| current <= v) {
        return Response::empty(204).with_header(VERSION_HEADER, current.to_string());
    }
    let store = match app.store() {
        Ok(s) => s,
        Err(e) => return store_error(&e),
    };
    match app.hub.body_for(&store, &app.vault, row) {
        Ok(sealed) => {
            let version = sealed.version;
            app.metrics.seen(&row.id, Some(version));
            app.metrics.snapshots_served.fetch_add(1, Ordering::Relaxed);
            Response {
                status: 200,
                content_type: "application/json",
                headers: Vec::new(),
                body: sealed.body.to_vec(),
            }
            .with_header(VERSION_HEADER, version.to_string())
            .with_header(SNAPSHOT_MAC_HEADER, sealed.mac.to_string())
        }
        Err(e) => store_error(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthBody {
    targets: Vec<sluice_contract::health::TargetView>,
}

fn health(app: &App, req: &Request, row: &DataplaneRow) -> Response {
    let parsed: HealthBody = match serde_json::from_slice(&req.body) {
        Ok(b) => b,
        Err(e) => return Response::error(400, &format!("bad health body: {e}")),
    };
    if parsed.targets.len() > MAX_HEALTH_TARGETS {
        return Response::error(400, &format!("at most {MAX_HEALTH_TARGETS} targets in a report"));
    }
    app.target_health
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(row.id.clone(), (crate::clock::now_ms(), parsed.targets));
    Response::empty(204)
}

fn records(app: &App, req: &Request, token: &EnrollToken, row: &DataplaneRow) -> Response {
    app.metrics.seen(&token.dataplane, None);
    let start = std::time::Instant::now();
    let parsed: RecordsBody = match serde_json::from_slice(&req.body) {
        Ok(b) => b,
        Err(e) => return Response::error(400, &format!("bad records body: {e}")),
    };
    if parsed.batch.len() > MAX_BATCH {
        return Response::error(413, &format!("at most {MAX_BATCH} records per batch"));
    }
    let mut prepared = Vec::with_capacity(parsed.batch.len());
    for item in &parsed.batch {
        match Prepared::new(item.seq, &item.record) {
            Ok(p) => prepared.push(p),
            Err(e) => return store_error(&e),
        }
    }
    let total = prepared.len() as u64;
    tracing::debug!(
        records = total,
        parse_us = start.elapsed().as_micros() as u64,
        "records batch decoded"
    );
    if total == 0 {
        return Response::json(
            200,
            &Ack {
                acked_through: 0,
                stored: 0,
            },
        );
    }
    match app.writer.ingest(Batch {
        dataplane: row.num,
        records: prepared,
    }) {
        Ok(done) => {
            crate::billing::after_ingest(app, row, parsed.batch.iter().map(|i| &i.record));
            app.metrics
                .replayed
                .fetch_add(total - done.stored, Ordering::Relaxed);
            Response::json(
                200,
                &Ack {
                    acked_through: done.acked_through,
                    stored: done.stored,
                },
            )
        }
        Err(e) => store_error(&e),
    }
}
