//! `logs` and `usage`.

use super::{print_json, seg, table, AdminOpts, Client};
use crate::http::percent_encode;
use crate::store::rows::{LogEntry, UsageRow};

/// Options of `logs`.
#[derive(clap::Args, Debug)]
pub(crate) struct LogsArgs {
    /// How to reach the admin API.
    #[command(flatten)]
    pub(crate) admin: AdminOpts,
    /// Tenant.
    #[arg(long)]
    pub(crate) tenant: String,
    /// Earliest request time: RFC 3339 or unix milliseconds.
    #[arg(long)]
    pub(crate) since: Option<String>,
    /// Latest request time (exclusive): RFC 3339 or unix milliseconds.
    #[arg(long)]
    pub(crate) until: Option<String>,
    /// Most records (1 to 10000): the first after --since, else the latest.
    #[arg(long, default_value_t = 100)]
    pub(crate) limit: usize,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Open the logged request and response bodies (tenants with
    /// `--log-content on`); the access is recorded in the audit trail.
    #[arg(long)]
    pub(crate) content: bool,
}

/// Options of `usage`.
#[derive(clap::Args, Debug)]
pub(crate) struct UsageArgs {
    /// How to reach the admin API.
    #[command(flatten)]
    pub(crate) admin: AdminOpts,
    /// Tenant.
    #[arg(long)]
    pub(crate) tenant: String,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Runs `logs`.
pub(crate) fn logs(args: LogsArgs) -> anyhow::Result<()> {
    // Check times here too, so a typo is reported before any request.
    for t in [&args.since, &args.until].into_iter().flatten() {
        crate::time::parse_time(t).map_err(anyhow::Error::msg)?;
    }
    let mut path = format!("/v1/tenants/{}/logs?limit={}", seg(&args.tenant), args.limit);
    if let Some(s) = &args.since {
        path.push_str(&format!("&since={}", percent_encode(s)));
    }
    if let Some(u) = &args.until {
        path.push_str(&format!("&until={}", percent_encode(u)));
    }
    if args.content {
        let query = path.split_once('?').map_or("", |(_, q)| q);
        return super::privacy::logs_content(&args.admin, query, &args.tenant, args.json);
    }
    let list: Vec<LogEntry> = Client::new(&args.admin)?.get(&path)?;
    if args.json {
        return print_json(&list);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|e| {
            let r = &e.record;
            let u = r.usage.unwrap_or_default();
            vec![
                table::time(Some(r.ts_ms)),
                table::opt(r.key_id.as_deref()),
                table::opt(r.model.as_deref()),
                table::opt(r.upstream.as_deref()),
                r.status.to_string(),
                r.outcome.label().to_owned(),
                protocol(r),
                u.input_tokens.to_string(),
                u.output_tokens.to_string(),
                format!("{:.1}", r.total_us as f64 / 1000.0),
                r.cache.map_or("-", |c| c.as_str()).to_owned(),
                r.saved_micros.map_or("-".into(), |s| {
                    crate::billing::rows::usd(i64::try_from(s).unwrap_or(i64::MAX))
                }),
                super::cache_columns::ratio(r.body_plain_bytes.unwrap_or(0), r.body_sent_bytes.unwrap_or(0)),
            ]
        })
        .collect();
    table::print(
        &[
            "TIME",
            "KEY",
            "MODEL",
            "UPSTREAM",
            "STATUS",
            "OUTCOME",
            "PROTO",
            "IN",
            "OUT",
            "MS",
            "CACHE",
            "SAVED",
            "COMPRESSION",
        ],
        &rows,
    );
    Ok(())
}

/// What served the request: `h2/TLSv1.3`, `http/1.1`; `-` in records from
/// before the data plane kept it.
fn protocol(r: &sluice_contract::record::Record) -> String {
    match (r.protocol.as_deref(), r.tls.as_deref()) {
        (Some(p), Some(t)) => format!("{p}/{t}"),
        (Some(p), None) => p.to_owned(),
        (None, Some(t)) => t.to_owned(),
        (None, None) => "-".to_owned(),
    }
}

/// Runs `usage`.
pub(crate) fn usage(args: UsageArgs) -> anyhow::Result<()> {
    let list: Vec<UsageRow> =
        Client::new(&args.admin)?.get(&format!("/v1/tenants/{}/usage", seg(&args.tenant)))?;
    if args.json {
        return print_json(&list);
    }
    print_usage(&list);
    Ok(())
}

/// Prints usage rows as a table.
pub(crate) fn print_usage(list: &[UsageRow]) {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|u| {
            vec![
                u.day.clone(),
                if u.model.is_empty() {
                    "-".into()
                } else {
                    u.model.clone()
                },
                u.requests.to_string(),
                u.input_tokens.to_string(),
                u.output_tokens.to_string(),
                u.cached_input_tokens.to_string(),
                u.reasoning_tokens.to_string(),
                crate::billing::rows::usd(i64::try_from(u.cost_micros).unwrap_or(i64::MAX)),
                super::cache_columns::hit_rate(u.cache_hits, u.cache_lookups),
                crate::billing::rows::usd(i64::try_from(u.saved_micros).unwrap_or(i64::MAX)),
                super::cache_columns::ratio(u.body_plain_bytes, u.body_sent_bytes),
                u.unpriced_requests.to_string(),
            ]
        })
        .collect();
    table::print(
        &[
            "DAY",
            "MODEL",
            "REQUESTS",
            "INPUT TOKENS",
            "OUTPUT TOKENS",
            "CACHED",
            "REASONING",
            "COST",
            "CACHE HITS",
            "SAVED",
            "COMPRESSION",
            "UNPRICED",
        ],
        &rows,
    );
}
