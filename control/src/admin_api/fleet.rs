//! Operator-wide things: upstreams and data planes.

use super::ApiError;
use super::{body, invalid, method_not_allowed, not_found, se, Reply};
use crate::app::App;
use crate::clock::now_ms;
use crate::http::{Request, Response};
use crate::names::{check_dataplane_id, check_name};
use crate::ops::AdminOp;
use crate::snapshot::dataplane_key_aad;
use crate::store::rows::{DataplaneInfo, SealedSecret};
use serde::{Deserialize, Serialize};
use sluice_contract::crypto::{hex, random_bytes, sha256};
use sluice_contract::snapshot::types::Upstream;
use std::sync::Arc;
use zeroize::Zeroizing;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDataplane {
    id: String,
}

/// An enrollment as created: the only time the token is shown.
#[derive(Serialize)]
struct Enrolled {
    id: String,
    token: String,
}

/// `/v1/upstreams/...`.
pub(super) fn upstreams(app: &Arc<App>, req: &Request, rest: &[&str]) -> Reply {
    match (req.method.as_str(), rest) {
        ("POST", []) => {
            let u: Upstream = body(req)?;
            check_name("upstream", &u.name).map_err(invalid)?;
            if let Some(r) = &u.region {
                check_name("region", r).map_err(invalid)?;
            }
            app.writer.admin(AdminOp::AddUpstream(u.clone())).map_err(se)?;
            Ok(Response::json(201, &u))
        }
        ("GET", []) => Ok(Response::json(
            200,
            &app.store().map_err(se)?.upstreams().map_err(se)?,
        )),
        ("DELETE", [name]) => {
            app.writer
                .admin(AdminOp::RemoveUpstream((*name).to_owned()))
                .map_err(se)?;
            Ok(Response::json(200, &serde_json::json!({ "deleted": name })))
        }
        (_, []) | (_, [_]) => Err(method_not_allowed(req)),
        _ => Err(not_found(req)),
    }
}

/// `/v1/dataplanes/...`.
pub(super) fn dataplanes(app: &Arc<App>, req: &Request, rest: &[&str]) -> Reply {
    match (req.method.as_str(), rest) {
        ("POST", []) => {
            let b: NewDataplane = body(req)?;
            check_dataplane_id(&b.id).map_err(invalid)?;
            let crypto = |e: sluice_contract::crypto::CryptoError| ApiError::Internal(e.to_string());
            // Two secrets: the bearer secret the data plane presents on every
            // sync request (only its hash is kept), and the key secret that
            // seals and authenticates its snapshots, which it never sends.
            let bearer = random_bytes::<32>().map_err(crypto)?;
            let key_secret = random_bytes::<32>().map_err(crypto)?;
            let presented = Zeroizing::new(format!("sdp-{}-{}", b.id, hex(&bearer[..])));
            let env = app
                .vault
                .seal_secret(&dataplane_key_aad(&b.id), &key_secret[..])
                .map_err(crypto)?;
            let op = AdminOp::EnrollDataplane {
                id: b.id.clone(),
                token_sha256: hex(&sha256(presented.as_bytes())),
                key: SealedSecret {
                    wrapped_dek: hex(&env.wrapped_dek),
                    sealed: hex(&env.sealed),
                },
                now_ms: now_ms(),
            };
            app.writer.admin(op).map_err(se)?;
            let token = format!("{}-{}", presented.as_str(), hex(&key_secret[..]));
            Ok(Response::json(201, &Enrolled { id: b.id, token }))
        }
        ("GET", []) => {
            let rows = app.store().map_err(se)?.dataplanes().map_err(se)?;
            let list: Vec<DataplaneInfo> = rows
                .into_iter()
                .map(|(row, records, max_seq)| {
                    let live = app.metrics.live(&row.id);
                    DataplaneInfo {
                        id: row.id,
                        created_ms: row.created_ms,
                        revoked_ms: row.revoked_ms,
                        last_seen_ms: live.map(|l| l.last_seen_ms),
                        snapshot_version: live.map(|l| l.version),
                        records,
                        max_seq,
                    }
                })
                .collect();
            Ok(Response::json(200, &list))
        }
        ("GET", ["health"]) => {
            let reports: Vec<serde_json::Value> = app
                .target_health
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .map(|(id, (at, targets))| {
                    serde_json::json!({ "dataplane": id, "reported_ms": at, "targets": targets })
                })
                .collect();
            Ok(Response::json(200, &reports))
        }
        ("POST", [id, "revoke"]) => {
            app.writer
                .admin(AdminOp::RevokeDataplane {
                    id: (*id).to_owned(),
                    now_ms: now_ms(),
                })
                .map_err(se)?;
            Ok(Response::json(200, &serde_json::json!({ "revoked": id })))
        }
        (_, []) => Err(method_not_allowed(req)),
        _ => Err(not_found(req)),
    }
}
