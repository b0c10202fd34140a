//! Response cache rules (see `crate::cache`).
//!
//! - `GET /v1/caches[?tenant=T]`: the rules
//! - `PUT /v1/caches/{tenant}` body `{"model"?, "ttl_s", "replay"?, "hit_price"?}`:
//!   set (or replace) the tenant's rule for one model or for all
//! - `DELETE /v1/caches/{tenant}[?model=M]`: turn it off (the data planes
//!   drop the tenant's entries when the snapshot reaches them)

use super::{body, invalid, not_found, se, Reply};
use crate::app::App;
use crate::cache::CacheOp;
use crate::clock::now_ms;
use crate::http::{Request, Response};
use crate::names::check_model;
use crate::ops::AdminOp;
use serde::Deserialize;
use sluice_contract::cache::{CacheRule, Replay};
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleBody {
    #[serde(default)]
    model: Option<String>,
    ttl_s: u64,
    #[serde(default)]
    replay: Replay,
    #[serde(default)]
    hit_price: f64,
}

/// `/v1/caches/...`; `segs` starts at the noun.
pub(super) fn route(app: &Arc<App>, req: &Request, segs: &[&str]) -> Reply {
    let store = app.store().map_err(se)?;
    let apply = |op: CacheOp| app.writer.admin(AdminOp::Cache(op)).map_err(se);
    match (req.method.as_str(), segs) {
        ("GET", ["caches"]) => {
            let tenant = req.query_param("tenant");
            Ok(Response::json(
                200,
                &store.cache_rules(tenant.as_deref()).map_err(se)?,
            ))
        }
        ("PUT", ["caches", t]) => {
            let b: RuleBody = body(req)?;
            if let Some(m) = &b.model {
                check_model(m).map_err(invalid)?;
            }
            let rule = CacheRule {
                tenant: (*t).to_owned(),
                model: b.model,
                ttl_s: b.ttl_s,
                replay: b.replay,
                hit_price: b.hit_price,
                since_ms: now_ms(),
            };
            rule.check().map_err(invalid)?;
            apply(CacheOp::Set(rule.clone()))?;
            Ok(Response::json(200, &rule))
        }
        ("DELETE", ["caches", t]) => {
            let model = req.query_param("model");
            apply(CacheOp::Off {
                tenant: (*t).to_owned(),
                model: model.clone(),
            })?;
            Ok(Response::json(
                200,
                &serde_json::json!({ "off": { "tenant": t, "model": model } }),
            ))
        }
        _ => Err(not_found(req)),
    }
}
