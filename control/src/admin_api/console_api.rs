//! Endpoints the web console needs beyond the CLI's (any admin client may
//! use them):
//!
//! - `GET /v1/stats?since=&until=&bucket=&tenant=`: time series of requests,
//!   errors, tokens, cost and TTFT p50/p99, in total and by tenant, model
//!   and key (`bucket` in seconds; see `crate::console::stats`). A tenant
//!   token reads its own through `GET /v1/tenants/{t}/stats`.
//! - `GET /v1/tenants/{t}/records?limit=&before=&since=&model=&key=&errors=1`:
//!   records newest first, metadata only (`has_content` marks stored
//!   content, opened only by `GET /v1/tenants/{t}/content`), with a
//!   `next` cursor for the following page.
//! - `GET /v1/snapshot`: the current snapshot version.
//!
//! (`POST /v1/console/sign-in`, a one-time sign-in code, is the console's:
//! see `crate::console`.)

use super::{invalid, method_not_allowed, not_found, se, ApiError, Reply};
use crate::app::App;
use crate::clock::now_ms;
use crate::console::stats::{window, Aggregator};
use crate::http::{Request, Response};
use crate::store::browse::{parse_cursor, Filter};
use crate::time::parse_time;
use std::sync::Arc;

/// Default and largest page of records.
const PAGE: (usize, usize) = (50, 1000);

/// Routes `/v1/{rest}` for the endpoints above.
pub(super) fn route(app: &Arc<App>, req: &Request, rest: &[&str]) -> Reply {
    match (req.method.as_str(), rest) {
        ("GET", ["stats"]) => stats(app, req, req.query_param("tenant")),
        ("GET", ["tenants", t, "stats"]) => stats(app, req, Some((*t).to_owned())),
        ("GET", ["tenants", t, "records"]) => records(app, req, t),
        ("GET", ["snapshot"]) => Ok(Response::json(
            200,
            &serde_json::json!({ "version": app.hub.current() }),
        )),
        (_, ["stats" | "snapshot"] | ["tenants", _, "stats" | "records"]) => Err(method_not_allowed(req)),
        _ => Err(not_found(req)),
    }
}

fn time_param(req: &Request, name: &str) -> Result<Option<u64>, ApiError> {
    req.query_param(name)
        .filter(|v| !v.is_empty())
        .map(|v| parse_time(&v).map_err(invalid))
        .transpose()
}

fn stats(app: &App, req: &Request, tenant: Option<String>) -> Reply {
    let bucket = match req.query_param("bucket") {
        None => None,
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| invalid("bucket must be whole seconds".into()))?,
        ),
    };
    let (since, until, bucket_ms) = window(
        time_param(req, "since")?,
        time_param(req, "until")?,
        bucket,
        now_ms(),
    )
    .map_err(invalid)?;
    let store = app.store().map_err(se)?;
    let tenants: Vec<String> = match tenant.filter(|t| !t.is_empty()) {
        Some(t) => vec![store.tenant(&t).map_err(se)?.id],
        // Every tenant, and the requests no key was found for.
        None => std::iter::once(String::new())
            .chain(store.tenants().map_err(se)?.into_iter().map(|t| t.id))
            .collect(),
    };
    let mut agg = Aggregator::new(since, until, bucket_ms);
    let truncated = store
        .scan_window(&tenants, since, until, |r| agg.add(r))
        .map_err(se)?;
    Ok(Response::json(200, &agg.finish(truncated)))
}

fn records(app: &App, req: &Request, tenant: &str) -> Reply {
    let limit = super::limit_param(req, PAGE)?;
    let before = match req.query_param("before").filter(|v| !v.is_empty()) {
        None => None,
        Some(c) => {
            Some(parse_cursor(&c).ok_or_else(|| invalid("before must be a cursor from `next`".into()))?)
        }
    };
    let nonempty = |name: &str| req.query_param(name).filter(|v| !v.is_empty());
    let filter = Filter {
        model: nonempty("model"),
        key: nonempty("key"),
        errors_only: matches!(nonempty("errors").as_deref(), Some("1" | "true")),
        since: time_param(req, "since")?,
    };
    let store = app.store().map_err(se)?;
    Ok(Response::json(
        200,
        &store.browse(tenant, &filter, before, limit).map_err(se)?,
    ))
}
