//! The admin API: JSON over HTTP/1.1, used by the CLI.
//!
//! Every request but `GET /healthz` and `GET /metrics` carries
//! `Authorization: Bearer <admin token>`: `DATA/admin.token` (root) or a named
//! token with a scope (see [`auth`]). Request bodies refuse unknown fields.
//! Errors are `{"error": "..."}` with 400 (bad input or a change the snapshot
//! validation refuses), 401, 403 (outside the token's scope), 404, 409
//! (exists / in use), 503 (shutting down).
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
//! - response cache rules: see `cache`
//! - privacy settings, content, export, purge and the audit trail: see `privacy`
//! - `POST|GET /v1/tokens`, `POST /v1/tokens/{name}/revoke`: named admin tokens
//! - for the console (see `console_api`): `GET /v1/stats`,
//!   `GET /v1/tenants/{t}/stats`, `GET /v1/tenants/{t}/records`,
//!   `GET /v1/snapshot`; `POST /v1/console/sign-in` is answered by the
//!   console itself, which holds the sign-in codes
//!
//! The web console (`crate::console`) serves `/ui` on the same listener
//! (`serve` sends it those paths) and calls these same handlers through
//! [`answer_as`].
//! - `POST|GET /v1/sinks`, `DELETE /v1/sinks/{name}`: record sinks (NATS JetStream)

pub(crate) mod auth;
mod billing;
mod cache;
mod console_api;
mod error;
mod fleet;
mod privacy;
mod sinks;
mod tenants;
mod tokens;

use crate::app::App;
use crate::http::{Request, Response};
use crate::store::StoreError;
pub(crate) use error::ApiError;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// Largest admin request body.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

/// Admits an admin request on its head (see [`crate::http::server::Admit`]):
/// health and metrics take no body; anything else must carry a valid token
/// before a byte of its body is read.
pub(crate) fn admit(app: &Arc<App>, req: &Request) -> Result<usize, Response> {
    if req.method == "GET" && matches!(req.path.as_str(), "/healthz" | "/metrics") {
        return Ok(0);
    }
    auth::authenticate(app, req)
        .map(|_| MAX_BODY)
        .map_err(Response::from)
}

/// Answers one admin request.
pub(crate) fn handle(app: &Arc<App>, req: &Request) -> Response {
    let Some(segs) = req.segments() else {
        return ApiError::Invalid("bad percent-encoding in path".into()).into();
    };
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["healthz"]) => return Response::text(200, "text/plain", "ok\n".into()),
        ("GET", ["metrics"]) => return metrics(app),
        _ => {}
    }
    let principal = match auth::authenticate(app, req) {
        Ok(p) => p,
        Err(e) => return e.into(),
    };
    answer_as(app, req, &principal, &principal.name, &segs)
}

/// Answers `req` (its path split into `segs`) for `principal`, within its
/// scope; every change is recorded in the audit trail under `actor`.
pub(crate) fn answer_as(
    app: &Arc<App>,
    req: &Request,
    principal: &auth::Principal,
    actor: &str,
    segs: &[&str],
) -> Response {
    if let Err(e) = auth::authorize(principal, &req.method, segs) {
        return e.into();
    }
    crate::ops::writer::acting_as(actor, || dispatch(app, req, segs))
}

fn dispatch(app: &Arc<App>, req: &Request, segs: &[&str]) -> Response {
    let result = match segs {
        ["v1", "stats" | "snapshot"] | ["v1", "tenants", _, "stats" | "records"] => {
            console_api::route(app, req, &segs[1..])
        }
        ["v1", "tenants", _, "privacy" | "content" | "export", ..] | ["v1", "purge" | "audit", ..] => {
            privacy::route(app, req, &segs[1..])
        }
        ["v1", "tenants", rest @ ..] => tenants::route(app, req, rest),
        ["v1", "upstreams", rest @ ..] => fleet::upstreams(app, req, rest),
        ["v1", "dataplanes", rest @ ..] => fleet::dataplanes(app, req, rest),
        ["v1", "tokens", rest @ ..] => tokens::route(app, req, rest),
        ["v1", "caches", ..] => cache::route(app, req, &segs[1..]),
        ["v1", "sinks", rest @ ..] => sinks::route(app, req, rest),
        ["v1", "prices" | "policies" | "limits" | "credits" | "alerts", ..] => {
            billing::route(app, req, &segs[1..])
        }
        _ => Err(not_found(req)),
    };
    result.unwrap_or_else(Response::from)
}

fn metrics(app: &App) -> Response {
    let bytes = app.store().map(|s| s.file_size()).unwrap_or(0);
    let body = app.metrics.render(app.hub.current(), bytes);
    Response::text(200, "text/plain; version=0.0.4", body)
}

/// A handler's result; the error becomes a response in [`error`] alone.
type Reply = Result<Response, ApiError>;

/// Decodes a JSON body; unknown fields and bad types are a 400 naming them.
fn body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    if req.body.is_empty() {
        return Err(ApiError::Invalid("request body must be a JSON object".into()));
    }
    serde_json::from_slice(&req.body).map_err(|e| ApiError::Invalid(format!("bad request body: {e}")))
}

/// The `limit` query parameter: `bounds.0` when absent, else 1 to `bounds.1`.
fn limit_param(req: &Request, bounds: (usize, usize)) -> Result<usize, ApiError> {
    match req.query_param("limit") {
        None => Ok(bounds.0),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=bounds.1).contains(n))
            .ok_or_else(|| invalid(format!("limit must be 1 to {}", bounds.1))),
    }
}

/// A store error as an API error.
fn se(e: StoreError) -> ApiError {
    ApiError::from(e)
}

/// A validation message as a 400.
fn invalid(m: String) -> ApiError {
    ApiError::Invalid(m)
}

fn method_not_allowed(req: &Request) -> ApiError {
    ApiError::MethodNotAllowed(format!("{} is not allowed on {}", req.method, req.path))
}

fn not_found(req: &Request) -> ApiError {
    ApiError::NotFound(format!("no such admin endpoint: {} {}", req.method, req.path))
}
