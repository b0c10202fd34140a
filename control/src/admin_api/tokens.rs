//! `/v1/tokens`: named admin tokens (admin scope only, see [`super::auth`]).

use super::auth::{Scope, ROOT, TOKEN_PREFIX};
use super::ApiError;
use super::{body, invalid, method_not_allowed, not_found, se, Reply};
use crate::app::App;
use crate::clock::now_ms;
use crate::http::{Request, Response};
use crate::names::check_name;
use crate::ops::AdminOp;
use crate::store::rows::AdminTokenRow;
use serde::{Deserialize, Serialize};
use sluice_contract::crypto::{hex, random_bytes, sha256};
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    scope: String,
}

/// A token as created: the only time it is shown.
#[derive(Serialize)]
struct Created {
    name: String,
    scope: String,
    token: String,
}

/// A token as listed: never the token, never its hash.
#[derive(Serialize)]
struct Listed {
    name: String,
    scope: String,
    created_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_ms: Option<u64>,
}

/// `/v1/tokens/...`.
pub(super) fn route(app: &Arc<App>, req: &Request, rest: &[&str]) -> Reply {
    match (req.method.as_str(), rest) {
        ("POST", []) => {
            let b: NewToken = body(req)?;
            check_name("token", &b.name).map_err(invalid)?;
            if b.name == ROOT {
                return Err(invalid(format!("{ROOT:?} is the name of DATA/admin.token")));
            }
            let scope = Scope::parse(&b.scope).map_err(invalid)?;
            let secret = random_bytes::<32>().map_err(|e| ApiError::Internal(e.to_string()))?;
            let token = format!("{TOKEN_PREFIX}{}-{}", b.name, hex(&secret[..]));
            let row = AdminTokenRow {
                name: b.name.clone(),
                sha256: hex(&sha256(token.as_bytes())),
                scope: scope.to_string(),
                created_ms: now_ms(),
                revoked_ms: None,
            };
            app.writer.admin(AdminOp::CreateAdminToken(row)).map_err(se)?;
            Ok(Response::json(
                201,
                &Created {
                    name: b.name,
                    scope: scope.to_string(),
                    token,
                },
            ))
        }
        ("GET", []) => {
            let rows = app.store().map_err(se)?.admin_tokens().map_err(se)?;
            let list: Vec<Listed> = rows
                .into_iter()
                .map(|r| Listed {
                    name: r.name,
                    scope: r.scope,
                    created_ms: r.created_ms,
                    revoked_ms: r.revoked_ms,
                })
                .collect();
            Ok(Response::json(200, &list))
        }
        ("POST", [name, "revoke"]) => {
            app.writer
                .admin(AdminOp::RevokeAdminToken {
                    name: (*name).to_owned(),
                    now_ms: now_ms(),
                })
                .map_err(se)?;
            Ok(Response::json(200, &serde_json::json!({ "revoked": name })))
        }
        (_, []) => Err(method_not_allowed(req)),
        _ => Err(not_found(req)),
    }
}
