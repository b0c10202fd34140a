//! Tenants and what belongs to them: gateway keys, provider keys, routes,
//! logs and usage.

use super::ApiError;
use super::{body, invalid, method_not_allowed, not_found, se, Reply};
use crate::app::App;
use crate::clock::now_ms;
use crate::http::{Request, Response};
use crate::names::{check_model, check_name};
use crate::ops::AdminOp;
use crate::store::query::LogQuery;
use crate::store::rows::{ApiKeyRow, ProviderKeyInfo, ProviderKeyRow, TenantRow};
use crate::time::parse_time;
use serde::{Deserialize, Deserializer, Serialize};
use sluice_contract::crypto::{hex, random_bytes, sha256};
use sluice_contract::snapshot::types::{ProviderKey, Route, Strategy, Target};
use std::sync::Arc;
use zeroize::Zeroizing;

/// Default and largest number of records `logs` returns.
const LOG_LIMIT: (usize, usize) = (100, 10_000);
/// Longest provider secret accepted.
const MAX_SECRET: usize = 8 * 1024;
/// Most targets in one route.
const MAX_TARGETS: usize = 32;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    region: Option<String>,
}

/// Absent: unchanged; `null`: cleared; a string: set.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantPatch {
    #[serde(default, deserialize_with = "present")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    region: Option<Option<String>>,
}

fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewApiKey {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// A gateway key as created: the only time the key itself is shown.
#[derive(Serialize)]
struct CreatedApiKey {
    #[serde(flatten)]
    row: ApiKeyRow,
    key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewProviderKey {
    id: String,
    secret: String,
    #[serde(default)]
    organization: Option<String>,
    #[serde(default)]
    project: Option<String>,
}

/// What the gateway sends upstream with a provider key besides the key
/// (OpenAI's `OpenAI-Organization` and `OpenAI-Project`).
struct KeyHeaders {
    organization: Option<String>,
    project: Option<String>,
}

impl KeyHeaders {
    /// Refuses a value that is not a plain header value.
    fn check(&self) -> Result<(), ApiError> {
        for (name, v) in [("organization", &self.organization), ("project", &self.project)] {
            if let Some(v) = v {
                if v.is_empty() || v.len() > 256 || !v.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(invalid(format!(
                        "{name} must be 1 to 256 visible ASCII characters"
                    )));
                }
            }
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderSecret {
    secret: String,
    #[serde(default)]
    organization: Option<String>,
    #[serde(default)]
    project: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteBody {
    model: String,
    targets: Vec<Target>,
    #[serde(default)]
    strategy: Strategy,
    #[serde(default)]
    first_byte_timeout_ms: Option<u64>,
    #[serde(default)]
    on_unsupported: sluice_contract::translate::OnUnsupported,
    #[serde(default)]
    retry_budget: Option<f64>,
    #[serde(default)]
    retry_min: Option<u32>,
    #[serde(default)]
    eject_after: Option<u32>,
    #[serde(default)]
    eject_ms: Option<u64>,
    #[serde(default)]
    eject_max_ms: Option<u64>,
    #[serde(default)]
    eject_failure_rate: Option<f64>,
    #[serde(default)]
    eject_min_requests: Option<u32>,
}

/// `/v1/tenants/...`.
pub(super) fn route(app: &Arc<App>, req: &Request, rest: &[&str]) -> Reply {
    let store = app.store().map_err(se)?;
    match (req.method.as_str(), rest) {
        ("POST", []) => create_tenant(app, req),
        ("GET", []) => Ok(Response::json(200, &store.tenants().map_err(se)?)),
        (_, []) => Err(method_not_allowed(req)),
        ("GET", [t]) => Ok(Response::json(200, &store.tenant(t).map_err(se)?)),
        ("PATCH", [t]) => update_tenant(app, req, t),
        ("DELETE", [t]) => {
            app.writer
                .admin(AdminOp::DeleteTenant((*t).to_owned()))
                .map_err(se)?;
            Ok(Response::json(200, &serde_json::json!({ "deleted": t })))
        }
        (_, [_]) => Err(method_not_allowed(req)),
        ("POST", [t, "api-keys"]) => create_api_key(app, req, t),
        ("GET", [t, "api-keys"]) => Ok(Response::json(200, &store.api_keys(t).map_err(se)?)),
        ("POST", [t, "api-keys", id, "revoke"]) => {
            let op = AdminOp::RevokeApiKey {
                tenant: (*t).to_owned(),
                id: (*id).to_owned(),
            };
            app.writer.admin(op).map_err(se)?;
            let rows = store.api_keys(t).map_err(se)?;
            let row = rows.into_iter().find(|r| r.id == *id);
            Ok(Response::json(200, &row))
        }
        ("POST", [t, "provider-keys"]) => {
            let b: NewProviderKey = body(req)?;
            let headers = KeyHeaders {
                organization: b.organization,
                project: b.project,
            };
            put_provider_key(app, t, &b.id, Zeroizing::new(b.secret), headers, true)
        }
        ("GET", [t, "provider-keys"]) => Ok(Response::json(200, &store.provider_keys(t).map_err(se)?)),
        ("PUT", [t, "provider-keys", id]) => {
            let b: ProviderSecret = body(req)?;
            let headers = KeyHeaders {
                organization: b.organization,
                project: b.project,
            };
            put_provider_key(app, t, id, Zeroizing::new(b.secret), headers, false)
        }
        ("DELETE", [t, "provider-keys", id]) => {
            let op = AdminOp::DeleteProviderKey {
                tenant: (*t).to_owned(),
                id: (*id).to_owned(),
            };
            app.writer.admin(op).map_err(se)?;
            Ok(Response::json(200, &serde_json::json!({ "deleted": id })))
        }
        ("PUT", [t, "routes"]) => set_route(app, req, t),
        ("GET", [t, "routes"]) => Ok(Response::json(200, &store.routes(t).map_err(se)?)),
        ("DELETE", [t, "routes", model]) => {
            let op = AdminOp::RemoveRoute {
                tenant: (*t).to_owned(),
                model: (*model).to_owned(),
            };
            app.writer.admin(op).map_err(se)?;
            Ok(Response::json(200, &serde_json::json!({ "deleted": model })))
        }
        ("GET", [t, "logs"]) => {
            let q = log_query(req)?;
            Ok(Response::json(200, &store.logs(t, q).map_err(se)?))
        }
        ("GET", [t, "usage"]) => Ok(Response::json(
            200,
            &crate::billing::meter::usage(&store, t).map_err(se)?,
        )),
        _ => Err(not_found(req)),
    }
}

fn check_label(what: &str, s: &str) -> Result<(), ApiError> {
    if s.is_empty() || s.len() > 200 || s.chars().any(char::is_control) {
        return Err(invalid(format!(
            "invalid {what} {s:?}: 1 to 200 characters, no control characters"
        )));
    }
    Ok(())
}

fn create_tenant(app: &App, req: &Request) -> Reply {
    let b: NewTenant = body(req)?;
    check_name("tenant id", &b.id).map_err(invalid)?;
    if let Some(n) = &b.name {
        check_label("tenant name", n)?;
    }
    if let Some(r) = &b.region {
        check_name("region", r).map_err(invalid)?;
    }
    let row = TenantRow {
        id: b.id,
        name: b.name,
        region: b.region,
        created_ms: now_ms(),
    };
    app.writer.admin(AdminOp::CreateTenant(row.clone())).map_err(se)?;
    Ok(Response::json(201, &row))
}

fn update_tenant(app: &App, req: &Request, id: &str) -> Reply {
    let b: TenantPatch = body(req)?;
    if let Some(Some(n)) = &b.name {
        check_label("tenant name", n)?;
    }
    if let Some(Some(r)) = &b.region {
        check_name("region", r).map_err(invalid)?;
    }
    let op = AdminOp::UpdateTenant {
        id: id.to_owned(),
        name: b.name,
        region: b.region,
    };
    app.writer.admin(op).map_err(se)?;
    Ok(Response::json(
        200,
        &app.store().map_err(se)?.tenant(id).map_err(se)?,
    ))
}

fn create_api_key(app: &App, req: &Request, tenant: &str) -> Reply {
    let b: NewApiKey = body(req)?;
    let rand = |n: usize| -> Result<String, ApiError> {
        let bytes = random_bytes::<32>().map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(hex(&bytes[..n]))
    };
    let id = match b.id {
        Some(id) => {
            check_name("key id", &id).map_err(invalid)?;
            id
        }
        None => rand(6)?,
    };
    if let Some(n) = &b.name {
        check_label("key name", n)?;
    }
    // 256 random bits; the key string exists only in this response.
    let key = format!("sk-sluice-{id}-{}", rand(32)?);
    let row = ApiKeyRow {
        id,
        tenant: tenant.to_owned(),
        name: b.name,
        sha256: hex(&sha256(key.as_bytes())),
        created_ms: now_ms(),
        revoked_ms: None,
    };
    app.writer.admin(AdminOp::CreateApiKey(row.clone())).map_err(se)?;
    Ok(Response::json(201, &CreatedApiKey { row, key }))
}

fn put_provider_key(
    app: &App,
    tenant: &str,
    id: &str,
    secret: Zeroizing<String>,
    headers: KeyHeaders,
    create: bool,
) -> Reply {
    check_name("provider key id", id).map_err(invalid)?;
    headers.check()?;
    let s = secret.trim();
    if s.is_empty() || s.len() > MAX_SECRET || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid(format!(
            "provider key secret must be 1 to {MAX_SECRET} characters without spaces or control characters"
        )));
    }
    let aad = ProviderKey {
        id: id.to_owned(),
        tenant: Some(tenant.to_owned()),
        api_key_env: None,
        sealed: None,
        ..ProviderKey::default()
    }
    .aad();
    let env = app
        .vault
        .seal_secret(&aad, s.as_bytes())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let now = now_ms();
    let row = ProviderKeyRow {
        id: id.to_owned(),
        tenant: tenant.to_owned(),
        wrapped_dek: hex(&env.wrapped_dek),
        sealed: hex(&env.sealed),
        created_ms: now,
        updated_ms: now,
        organization: headers.organization,
        project: headers.project,
    };
    app.writer
        .admin(AdminOp::PutProviderKey {
            row: row.clone(),
            create,
        })
        .map_err(se)?;
    let info = app
        .store()
        .map_err(se)?
        .provider_keys(tenant)
        .map_err(se)?
        .into_iter()
        .find(|k| k.id == id)
        .unwrap_or_else(|| ProviderKeyInfo::from(&row));
    Ok(Response::json(if create { 201 } else { 200 }, &info))
}

fn set_route(app: &App, req: &Request, tenant: &str) -> Reply {
    let b: RouteBody = body(req)?;
    check_model(&b.model).map_err(invalid)?;
    if b.targets.is_empty() || b.targets.len() > MAX_TARGETS {
        return Err(invalid(format!("a route needs 1 to {MAX_TARGETS} targets")));
    }
    for t in &b.targets {
        check_name("upstream", &t.upstream).map_err(invalid)?;
        check_name("provider key id", &t.provider_key).map_err(invalid)?;
        if let Some(m) = &t.model {
            check_model(m).map_err(invalid)?;
        }
    }
    let route = Route {
        tenant: Some(tenant.to_owned()),
        model: b.model,
        targets: b.targets,
        strategy: b.strategy,
        first_byte_timeout_ms: b.first_byte_timeout_ms,
        retry_budget: b.retry_budget,
        retry_min: b.retry_min,
        eject_after: b.eject_after,
        eject_ms: b.eject_ms,
        eject_max_ms: b.eject_max_ms,
        eject_failure_rate: b.eject_failure_rate,
        eject_min_requests: b.eject_min_requests,
        on_unsupported: b.on_unsupported,
    };
    sluice_contract::snapshot::index::check_route_settings(&route).map_err(|e| invalid(e.0))?;
    app.writer.admin(AdminOp::SetRoute(route.clone())).map_err(se)?;
    Ok(Response::json(200, &route))
}

pub(super) fn log_query(req: &Request) -> Result<LogQuery, ApiError> {
    let time = |name: &str| -> Result<Option<u64>, ApiError> {
        req.query_param(name)
            .map(|v| parse_time(&v).map_err(invalid))
            .transpose()
    };
    let limit = super::limit_param(req, LOG_LIMIT)?;
    Ok(LogQuery {
        since: time("since")?,
        until: time("until")?,
        limit,
    })
}
