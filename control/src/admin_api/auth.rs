//! Who may call the admin API, and what each may do.
//!
//! - The token in `DATA/admin.token`, made by the first `serve`, is `root`:
//!   full admin, always.
//! - Named tokens, `sat-<name>-<64 hex>`, are created and revoked by an
//!   admin (`token create|list|revoke`); the store keeps only their SHA-256
//!   and scope, and the token is shown once. Scopes:
//!   - `admin`: everything, as root;
//!   - `read`: `GET` only, so nothing can be changed;
//!   - `tenant:<id>`: that tenant's own paths (`/v1/tenants/<id>` and below),
//!     except deleting the tenant; nothing operator-wide, nothing of another
//!     tenant, not the tenant list.
//! - The audit trail records the acting token's name.

use super::ApiError;
use crate::app::{secret_eq, App};
use crate::http::Request;
use crate::names::check_name;
use sluice_contract::crypto::unhex;

/// The name the bootstrap token (`DATA/admin.token`) acts under.
pub(crate) const ROOT: &str = "root";
/// Prefix of named admin tokens.
pub(crate) const TOKEN_PREFIX: &str = "sat-";

/// What a token may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Everything.
    Admin,
    /// Read only.
    Read,
    /// One tenant's own paths.
    Tenant(String),
}

impl Scope {
    /// Parses `admin`, `read` or `tenant:<id>`.
    pub(crate) fn parse(s: &str) -> Result<Scope, String> {
        match s {
            "admin" => Ok(Scope::Admin),
            "read" => Ok(Scope::Read),
            _ => match s.strip_prefix("tenant:") {
                Some(t) => {
                    check_name("tenant", t)?;
                    Ok(Scope::Tenant(t.to_owned()))
                }
                None => Err(format!("invalid scope {s:?}: use admin, read or tenant:<id>")),
            },
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Admin => f.write_str("admin"),
            Scope::Read => f.write_str("read"),
            Scope::Tenant(t) => write!(f, "tenant:{t}"),
        }
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Principal {
    /// The token's name (`root` for `DATA/admin.token`).
    pub(crate) name: String,
    /// What it may do.
    pub(crate) scope: Scope,
}

impl crate::console::session::Named for Principal {
    fn token_name(&self) -> &str {
        &self.name
    }
}

/// The name in a named token, `sat-<name>-<64 hex>`.
fn token_name(presented: &str) -> Option<&str> {
    let rest = presented.strip_prefix(TOKEN_PREFIX)?;
    let (name, hex) = rest.rsplit_once('-')?;
    (unhex::<32>(hex).is_some()
        && !hex.bytes().any(|b| b.is_ascii_uppercase())
        && check_name("token", name).is_ok())
    .then_some(name)
}

/// The caller behind `req`'s bearer token, or the 401.
pub(crate) fn authenticate(app: &App, req: &Request) -> Result<Principal, ApiError> {
    let deny = || {
        ApiError::Unauthorized("missing, wrong or revoked admin token (Authorization: Bearer <DIR/admin.token or a token from `token create`>)".into())
    };
    let presented = req.bearer().ok_or_else(deny)?;
    principal_of(app, presented).map_err(|e| match e {
        ApiError::Unauthorized(_) => deny(),
        other => other,
    })
}

/// The caller behind the admin token `presented`, or the 401.
pub(crate) fn principal_of(app: &App, presented: &str) -> Result<Principal, ApiError> {
    let deny = || ApiError::Unauthorized("missing, wrong or revoked admin token".into());
    if secret_eq(presented.as_bytes(), &app.admin_token_sha256) {
        return Ok(Principal {
            name: ROOT.to_owned(),
            scope: Scope::Admin,
        });
    }
    let name = token_name(presented).ok_or_else(deny)?;
    let store = app.store()?;
    let row = store.admin_token(name)?.ok_or_else(deny)?;
    let expected = unhex::<32>(&row.sha256).ok_or_else(deny)?;
    if row.revoked_ms.is_some() || !secret_eq(presented.as_bytes(), &expected) {
        return Err(deny());
    }
    let scope = Scope::parse(&row.scope).map_err(|_| deny())?;
    Ok(Principal {
        name: row.name,
        scope,
    })
}

/// Whether the token `p` authenticated with still stands (root always does;
/// a named token until it is revoked): a console session lasts no longer.
pub(crate) fn still_valid(app: &App, p: &Principal) -> bool {
    if p.name == ROOT {
        return true;
    }
    let Ok(store) = app.store() else { return false };
    matches!(store.admin_token(&p.name), Ok(Some(row))
        if row.revoked_ms.is_none() && Scope::parse(&row.scope).as_ref() == Ok(&p.scope))
}

/// Whether `p` may call `method` on the path `segs` (after `/`); the 403 if not.
pub(crate) fn authorize(p: &Principal, method: &str, segs: &[&str]) -> Result<(), ApiError> {
    let allowed = match &p.scope {
        Scope::Admin => true,
        Scope::Read => matches!(method, "GET" | "HEAD"),
        Scope::Tenant(t) => match segs {
            ["v1", "tenants", id] => id == t && method != "DELETE",
            ["v1", "tenants", id, _, ..] => id == t,
            _ => false,
        },
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "admin token {:?} (scope {}) may not {method} /{}",
            p.name,
            p.scope,
            segs.join("/")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(scope: Scope) -> Principal {
        Principal {
            name: "t".into(),
            scope,
        }
    }

    #[test]
    fn scopes_parse_and_print() {
        for s in ["admin", "read", "tenant:acme"] {
            assert_eq!(Scope::parse(s).unwrap().to_string(), s);
        }
        assert!(Scope::parse("tenant:").is_err());
        assert!(Scope::parse("tenant:A/B").is_err());
        assert!(Scope::parse("root").is_err());
    }

    #[test]
    fn read_only_reads_and_a_tenant_token_stays_in_its_tenant() {
        let read = p(Scope::Read);
        assert!(authorize(&read, "GET", &["v1", "tenants"]).is_ok());
        assert!(authorize(&read, "GET", &["v1", "audit", "verify"]).is_ok());
        for m in ["POST", "PUT", "PATCH", "DELETE"] {
            assert!(
                matches!(
                    authorize(&read, m, &["v1", "tenants"]),
                    Err(ApiError::Forbidden(_))
                ),
                "{m}"
            );
        }
        let acme = p(Scope::Tenant("acme".into()));
        assert!(authorize(&acme, "GET", &["v1", "tenants", "acme"]).is_ok());
        assert!(authorize(&acme, "PATCH", &["v1", "tenants", "acme"]).is_ok());
        assert!(authorize(&acme, "POST", &["v1", "tenants", "acme", "api-keys"]).is_ok());
        assert!(authorize(&acme, "DELETE", &["v1", "tenants", "acme"]).is_err());
        assert!(authorize(&acme, "GET", &["v1", "tenants"]).is_err());
        assert!(authorize(&acme, "GET", &["v1", "tenants", "beta", "logs"]).is_err());
        assert!(authorize(&acme, "GET", &["v1", "upstreams"]).is_err());
        assert!(authorize(&acme, "POST", &["v1", "tokens"]).is_err());
        assert!(authorize(&p(Scope::Admin), "DELETE", &["v1", "tenants", "acme"]).is_ok());
    }

    #[test]
    fn token_names_are_read_from_well_formed_tokens_only() {
        let hex = "ab".repeat(32);
        assert_eq!(token_name(&format!("sat-ops-ro-{hex}")), Some("ops-ro"));
        assert_eq!(token_name(&format!("sat-ops-{}", "AB".repeat(32))), None);
        assert_eq!(token_name(&format!("sat--{hex}")), None);
        assert_eq!(token_name(&format!("sdp-ops-{hex}")), None);
        assert_eq!(token_name("sat-ops-abcd"), None);
    }
}
