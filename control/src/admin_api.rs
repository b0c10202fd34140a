//! The admin API: JSON over HTTP/1.1, used by the CLI.
//!
//! Every request but `GET /healthz` and `GET /metrics` carries
//! `Authorization: Bearer <admin token>`. Request bodies refuse unknown fields.
//! Errors are `{"error": "..."}` with 400 (bad input or a change the snapshot
//! validation refuses), 401, 404, 409 (exists / in use), 503 (shutting down).
//!
//! - `POST /v1/tenants`, `GET /v1/tenants`, `GET|PATCH|DELETE /v1/tenants/{t}`
//! - `POST|GET /v1/tenants/{t}/api-keys`, `POST /v1/tenants/{t}/api-keys/{id}/revoke`
//! - `POST|GET /v1/tenants/{t}/provider-keys`, `PUT|DELETE /v1/tenants/{t}/provider-keys/{id}`
//! - `PUT|GET /v1/tenants/{t}/routes`, `DELETE /v1/tenants/{t}/routes/{model, percent-encoded}`
//! - `GET /v1/tenants/{t}/logs?since=&until=&limit=`, `GET /v1/tenants/{t}/usage`
//! - `POST|GET /v1/upstreams`, `DELETE /v1/upstreams/{name}`
//! - `POST|GET /v1/dataplanes`, `POST /v1/dataplanes/{id}/revoke`,
//!   `GET /v1/dataplanes/health` (each data plane's last report of its
//!   targets' health)
//! - prices, policies, rate limits, credit and alerts: see `billing`
//! - privacy settings, content, export, purge and the audit trail: see `privacy`

mod billing;
mod fleet;
mod privacy;
mod tenants;

use crate::app::{secret_eq, store_error, App};
use crate::http::{Request, Response};
use crate::store::StoreError;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// Largest admin request body.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

/// Answers one admin request.
pub(crate) fn handle(app: &Arc<App>, req: &Request) -> Response {
    let Some(segs) = req.segments() else {
        return Response::error(400, "bad percent-encoding in path");
    };
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["healthz"]) => return Response::text(200, "text/plain", "ok\n".into()),
        ("GET", ["metrics"]) => return metrics(app),
        _ => {}
    }
    if !req
        .bearer()
        .is_some_and(|t| secret_eq(t.as_bytes(), &app.admin_token_sha256))
    {
        return Response::error(
            401,
            "missing or wrong admin token (Authorization: Bearer <DIR/admin.token>)",
        );
    }
    let result = match segs.as_slice() {
        ["v1", "tenants", _, "privacy" | "content" | "export", ..] | ["v1", "purge" | "audit", ..] => {
            privacy::route(app, req, &segs[1..])
        }
        ["v1", "tenants", rest @ ..] => tenants::route(app, req, rest),
        ["v1", "upstreams", rest @ ..] => fleet::upstreams(app, req, rest),
        ["v1", "dataplanes", rest @ ..] => fleet::dataplanes(app, req, rest),
        ["v1", "prices" | "policies" | "limits" | "credits" | "alerts", ..] => {
            billing::route(app, req, &segs[1..])
        }
        _ => Err(Response::error(
            404,
            &format!("no such admin endpoint: {} {}", req.method, req.path),
        )),
    };
    result.unwrap_or_else(|resp| resp)
}

fn metrics(app: &App) -> Response {
    let bytes = app.store().map(|s| s.file_size()).unwrap_or(0);
    let body = app.metrics.render(app.hub.current(), bytes);
    Response::text(200, "text/plain; version=0.0.4", body)
}

/// A handler's result: the error side is already a response.
type Reply = Result<Response, Response>;

/// Decodes a JSON body; unknown fields and bad types are a 400 naming them.
fn body<T: DeserializeOwned>(req: &Request) -> Result<T, Response> {
    if req.body.is_empty() {
        return Err(Response::error(400, "request body must be a JSON object"));
    }
    serde_json::from_slice(&req.body).map_err(|e| Response::error(400, &format!("bad request body: {e}")))
}

/// Maps a store error into its response.
fn se(e: StoreError) -> Response {
    store_error(&e)
}

/// Maps a validation message into a 400.
fn invalid(m: String) -> Response {
    Response::error(400, &m)
}

fn method_not_allowed(req: &Request) -> Response {
    Response::error(405, &format!("{} is not allowed on {}", req.method, req.path))
}

fn not_found(req: &Request) -> Response {
    Response::error(
        404,
        &format!("no such admin endpoint: {} {}", req.method, req.path),
    )
}
