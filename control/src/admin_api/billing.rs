//! Prices, policies, rate limits, credit and alerts (see `crate::billing`).
//!
//! - `GET /v1/prices` (defaults merged with overrides), `PUT|DELETE /v1/prices/{model}`
//!   (`PUT` body `{"input","output","cached_input"?,"cache_write"?}`, USD per million tokens)
//! - `GET|PUT|DELETE /v1/policies/{tenant}` (`PUT` body `{"toml": "..."}`,
//!   refused with the policy compiler's message when it does not compile)
//! - `GET|PUT /v1/limits/{tenant}` (`PUT` body `{"key"?,"rpm"?,"tpm"?}`),
//!   `DELETE /v1/limits/{tenant}[?key=K]`
//! - `GET|POST /v1/credits/{tenant}` (`POST` body `{"micros": N}` adds credit),
//!   `PUT /v1/credits/{tenant}/threshold` `{"micros": N|null}`,
//!   `PUT /v1/credits/{tenant}/default-max-tokens` `{"tokens": N|null}`
//! - `GET /v1/alerts?tenant=&limit=`

use super::ApiError;
use super::{body, invalid, method_not_allowed, not_found, se, Reply};
use crate::app::App;
use crate::billing::ops::BillingOp;
use crate::billing::rows::PolicyRow;
use crate::clock::now_ms;
use crate::http::{Request, Response};
use crate::names::{check_model, check_name};
use crate::ops::AdminOp;
use serde::Deserialize;
use sluice_contract::policy::CompiledPolicy;
use sluice_contract::snapshot::types::{ModelPrice, RateLimit};
use std::sync::Arc;

/// Default and largest number of alerts listed.
const ALERT_LIMIT: (usize, usize) = (100, 10_000);
/// Highest price accepted, USD per million tokens (as the data plane checks).
const MAX_PRICE: f64 = 1e6;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceBody {
    input: f64,
    output: f64,
    #[serde(default)]
    cached_input: Option<f64>,
    #[serde(default)]
    cache_write: Option<f64>,
    #[serde(default)]
    max_output_tokens: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    toml: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitBody {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    rpm: Option<u64>,
    #[serde(default)]
    tpm: Option<u64>,
    #[serde(default)]
    concurrency: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreditBody {
    micros: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThresholdBody {
    micros: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaxTokensBody {
    tokens: Option<u64>,
}

/// `/v1/{prices,policies,limits,credits,alerts}/...`; `segs` starts at the noun.
pub(super) fn route(app: &Arc<App>, req: &Request, segs: &[&str]) -> Reply {
    let store = app.store().map_err(se)?;
    let apply = |op: BillingOp| app.writer.admin(AdminOp::Billing(op)).map_err(se);
    match (req.method.as_str(), segs) {
        ("GET", ["prices"]) => Ok(Response::json(200, &store.prices().map_err(se)?)),
        ("PUT", ["prices", model]) => {
            let price = price(req, model)?;
            apply(BillingOp::SetPrice(price.clone()))?;
            Ok(Response::json(200, &price))
        }
        ("DELETE", ["prices", model]) => {
            apply(BillingOp::RemovePrice((*model).to_owned()))?;
            Ok(Response::json(200, &serde_json::json!({ "deleted": model })))
        }
        ("GET", ["policies", t]) => match store.policy(t).map_err(se)? {
            Some(p) => Ok(Response::json(200, &p)),
            None => Err(ApiError::NotFound(format!("tenant {t:?} has no policy"))),
        },
        ("PUT", ["policies", t]) => {
            let b: PolicyBody = body(req)?;
            // The data plane's own compiler: what it accepts here it will enforce.
            CompiledPolicy::compile(&b.toml).map_err(|e| invalid(format!("policy refused: {e}")))?;
            let row = PolicyRow {
                tenant: (*t).to_owned(),
                toml: b.toml,
                updated_ms: now_ms(),
            };
            apply(BillingOp::SetPolicy(row.clone()))?;
            Ok(Response::json(200, &row))
        }
        ("DELETE", ["policies", t]) => {
            apply(BillingOp::RemovePolicy((*t).to_owned()))?;
            Ok(Response::json(200, &serde_json::json!({ "deleted": t })))
        }
        ("GET", ["limits", t]) => Ok(Response::json(200, &store.limits(t).map_err(se)?)),
        ("PUT", ["limits", t]) => {
            let b: LimitBody = body(req)?;
            if let Some(k) = &b.key {
                check_name("key id", k).map_err(invalid)?;
            }
            if b.rpm.is_none() && b.tpm.is_none() && b.concurrency.is_none() {
                return Err(invalid("give rpm, tpm, concurrency or several".into()));
            }
            if b.concurrency.is_some() && b.key.is_some() {
                return Err(invalid(
                    "a concurrency limit applies to a tenant, not a key".into(),
                ));
            }
            if b.rpm == Some(0) || b.tpm == Some(0) || b.concurrency == Some(0) {
                return Err(invalid(
                    "a limit of 0 would refuse everything; remove the limit instead".into(),
                ));
            }
            let limit = RateLimit {
                tenant: (*t).to_owned(),
                key: b.key,
                rpm: b.rpm,
                tpm: b.tpm,
                concurrency: b.concurrency,
            };
            apply(BillingOp::SetLimit(limit.clone()))?;
            Ok(Response::json(200, &limit))
        }
        ("DELETE", ["limits", t]) => {
            let key = req.query_param("key");
            apply(BillingOp::RemoveLimit {
                tenant: (*t).to_owned(),
                key: key.clone(),
            })?;
            Ok(Response::json(
                200,
                &serde_json::json!({ "deleted": { "tenant": t, "key": key } }),
            ))
        }
        ("GET", ["credits", t]) => Ok(Response::json(200, &store.credit(t).map_err(se)?)),
        ("POST", ["credits", t]) => {
            let b: CreditBody = body(req)?;
            apply(BillingOp::AddCredit {
                tenant: (*t).to_owned(),
                micros: b.micros,
                now_ms: now_ms(),
            })?;
            Ok(Response::json(200, &store.credit(t).map_err(se)?))
        }
        ("PUT", ["credits", t, "threshold"]) => {
            let b: ThresholdBody = body(req)?;
            apply(BillingOp::SetThreshold {
                tenant: (*t).to_owned(),
                micros: b.micros,
                now_ms: now_ms(),
            })?;
            app.billing.kick();
            Ok(Response::json(200, &store.credit(t).map_err(se)?))
        }
        ("PUT", ["credits", t, "default-max-tokens"]) => {
            let b: MaxTokensBody = body(req)?;
            apply(BillingOp::SetDefaultMaxTokens {
                tenant: (*t).to_owned(),
                tokens: b.tokens,
                now_ms: now_ms(),
            })?;
            Ok(Response::json(200, &store.credit(t).map_err(se)?))
        }
        ("GET", ["alerts"]) => {
            let limit = super::limit_param(req, ALERT_LIMIT)?;
            let tenant = req.query_param("tenant");
            Ok(Response::json(
                200,
                &store.alerts(tenant.as_deref(), limit).map_err(se)?,
            ))
        }
        (_, ["prices" | "alerts"] | ["prices" | "policies" | "limits" | "credits", _]) => {
            Err(method_not_allowed(req))
        }
        _ => Err(not_found(req)),
    }
}

/// The price in `req`'s body for `model`, checked as the data plane will.
fn price(req: &Request, model: &str) -> Result<ModelPrice, ApiError> {
    check_model(model).map_err(invalid)?;
    let b: PriceBody = body(req)?;
    let check = |what: &str, v: f64| -> Result<f64, ApiError> {
        if v.is_finite() && (0.0..=MAX_PRICE).contains(&v) {
            Ok(v)
        } else {
            Err(invalid(format!(
                "{what} price {v} is not a price in USD per million tokens (0 to {MAX_PRICE})"
            )))
        }
    };
    Ok(ModelPrice {
        model: model.to_owned(),
        input: check("input", b.input)?,
        output: check("output", b.output)?,
        cached_input: b.cached_input.map(|v| check("cached input", v)).transpose()?,
        cache_write: b.cache_write.map(|v| check("cache write", v)).transpose()?,
        max_output_tokens: b.max_output_tokens,
    })
}
