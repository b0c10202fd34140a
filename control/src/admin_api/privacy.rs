//! Privacy endpoints:
//!
//! - `GET|PATCH /v1/tenants/{t}/privacy`: content logging and retention
//!   (`{"log_content":bool,"retention_days":N,"content_retention_days":N}`).
//! - `GET /v1/tenants/{t}/content?since=&until=&limit=`: records with their
//!   content opened (audited as `content.read`).
//! - `GET /v1/tenants/{t}/export`: the export header (audited as
//!   `tenant.export`); `GET /v1/tenants/{t}/export/records?after=&limit=`: its records.
//! - `POST /v1/purge` (`{"rewrite":bool}`): purge now.
//! - `GET /v1/audit?after=&limit=`, `GET /v1/audit/verify`.

use super::ApiError;
use super::{body, invalid, method_not_allowed, not_found, se, Reply};
use crate::app::App;
use crate::http::{Request, Response};
use crate::ops::AdminOp;
use crate::privacy::content::{ContentEntry, Opener};
use crate::privacy::settings::{self, Change, PrivacyView};
use crate::privacy::PrivacyOp;
use crate::store::StoreError;
use serde::Deserialize;
use std::sync::Arc;

/// Default and largest number of audit entries listed.
const AUDIT_LIMIT: (usize, usize) = (100, 10_000);

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PurgeBody {
    #[serde(default)]
    rewrite: bool,
}

/// Routes `/v1/{rest}` for the endpoints above.
pub(super) fn route(app: &Arc<App>, req: &Request, rest: &[&str]) -> Reply {
    match (req.method.as_str(), rest) {
        ("GET", ["tenants", t, "privacy"]) => {
            let store = app.store().map_err(se)?;
            store.tenant(t).map_err(se)?;
            let r = store.begin_read().map_err(se)?;
            let row = settings::get_read(&r, t).map_err(se)?;
            Ok(Response::json(200, &PrivacyView::of(t, &row)))
        }
        ("PATCH", ["tenants", t, "privacy"]) => update(app, req, t),
        ("GET", ["tenants", t, "content"]) => content(app, req, t),
        ("GET", ["tenants", t, "export"]) => {
            note(app, "tenant.export", t)?;
            let store = app.store().map_err(se)?;
            let h = crate::export::header(&store, t, crate::clock::now_ms()).map_err(se)?;
            Ok(Response::json(200, &h))
        }
        ("GET", ["tenants", t, "export", "records"]) => {
            let limit = match req.query_param("limit") {
                None => 1000,
                Some(v) => v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=crate::export::MAX_PAGE).contains(n))
                    .ok_or_else(|| invalid(format!("limit must be 1 to {}", crate::export::MAX_PAGE)))?,
            };
            let store = app.store().map_err(se)?;
            let after = req.query_param("after");
            let page = crate::export::records_page(
                &store,
                &app.vault,
                t,
                after.as_deref(),
                limit,
                crate::clock::now_ms(),
            )
            .map_err(se)?;
            Ok(Response::json(200, &page))
        }
        ("POST", ["purge"]) => {
            let b: PurgeBody = if req.body.is_empty() {
                PurgeBody::default()
            } else {
                body(req)?
            };
            let report = crate::retention::run(app, true, b.rewrite).map_err(se)?;
            Ok(Response::json(200, &report))
        }
        ("GET", ["audit"]) => {
            let after = match req.query_param("after") {
                None => None,
                Some(v) => Some(
                    v.parse::<u64>()
                        .map_err(|_| invalid("after must be an entry seq".into()))?,
                ),
            };
            let limit = super::limit_param(req, AUDIT_LIMIT)?;
            let r = app.store().map_err(se)?.begin_read().map_err(se)?;
            Ok(Response::json(
                200,
                &crate::audit::list(&r, after, limit).map_err(se)?,
            ))
        }
        ("GET", ["audit", "verify"]) => {
            let hooks = app
                .privacy
                .get()
                .ok_or_else(|| ApiError::Unavailable("the audit trail is not loaded".into()))?;
            let r = app.store().map_err(se)?.begin_read().map_err(se)?;
            Ok(Response::json(200, &hooks.auditor.verify(&r).map_err(se)?))
        }
        (
            _,
            ["tenants", _, "privacy" | "content" | "export"] | ["purge"] | ["audit"] | ["audit", "verify"],
        ) => Err(method_not_allowed(req)),
        _ => Err(not_found(req)),
    }
}

fn update(app: &App, req: &Request, tenant: &str) -> Reply {
    let change: Change = body(req)?;
    change.check().map_err(invalid)?;
    let new_key = if change.log_content == Some(true) {
        Some(
            crate::privacy::content::new_key(&app.vault, tenant)
                .map_err(|e| ApiError::Internal(e.to_string()))?,
        )
    } else {
        None
    };
    let op = AdminOp::Privacy(PrivacyOp::Settings {
        tenant: tenant.to_owned(),
        change,
        new_key,
    });
    app.writer.admin(op).map_err(se)?;
    let store = app.store().map_err(se)?;
    let r = store.begin_read().map_err(se)?;
    let row = settings::get_read(&r, tenant).map_err(se)?;
    Ok(Response::json(200, &PrivacyView::of(tenant, &row)))
}

fn content(app: &App, req: &Request, tenant: &str) -> Reply {
    let q = super::tenants::log_query(req)?;
    let store = app.store().map_err(se)?;
    // Fails for an unknown tenant before anything is recorded.
    let entries = store.logs(tenant, q).map_err(se)?;
    note(app, "content.read", tenant)?;
    let r = store.begin_read().map_err(se)?;
    let row = settings::get_read(&r, tenant).map_err(se)?;
    let opener = Opener::new(&app.vault, tenant, &row, crate::clock::now_ms()).map_err(se)?;
    let out: Vec<ContentEntry> = entries
        .into_iter()
        .map(|mut e| {
            let content = opener.open(&e.record);
            e.record.content_sealed = None;
            ContentEntry { entry: e, content }
        })
        .collect();
    Ok(Response::json(200, &out))
}

/// Records an admin read of tenant data in the audit trail.
fn note(app: &App, action: &'static str, tenant: &str) -> Result<(), ApiError> {
    app.writer
        .admin(AdminOp::Privacy(PrivacyOp::Note {
            action,
            tenant: tenant.to_owned(),
        }))
        .map(drop)
        .map_err(|e: StoreError| se(e))
}
