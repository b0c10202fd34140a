//! `price`, `limit`, `tenant credit` and `alerts`.

use super::{method, print_json, seg, table, AdminOpts, Client, Noun};
use crate::billing::rows::{usd, AlertRow, CreditView, PriceView};
use anyhow::bail;
use serde_json::{json, Value};
use sluice_contract::snapshot::types::{ModelPrice, RateLimit};

/// Price verbs (USD per million tokens; overrides of the built-in defaults).
#[derive(clap::Subcommand, Debug)]
pub(crate) enum PriceCmd {
    /// Set a model's price (a model name, or a prefix of dated names).
    Set {
        /// Model.
        #[arg(long)]
        model: String,
        /// Uncached prompt tokens, USD per million.
        #[arg(long)]
        input: f64,
        /// Completion tokens, USD per million.
        #[arg(long)]
        output: f64,
        /// Cached prompt tokens, USD per million (default: --input).
        #[arg(long)]
        cached_input: Option<f64>,
        /// Prompt tokens written to cache, USD per million (default: --input).
        #[arg(long)]
        cache_write: Option<f64>,
        /// The most completion tokens the model produces for one choice: a
        /// request without a limit is reserved for, and capped at, no more.
        #[arg(long)]
        max_output_tokens: Option<u64>,
    },
    /// List prices: the built-in defaults merged with the overrides.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a price override.
    Remove {
        /// Model.
        #[arg(long)]
        model: String,
    },
}

/// Rate limit verbs.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum LimitCmd {
    /// Set requests and/or tokens per minute for a tenant, or one of its keys.
    Set {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Gateway key id (default: the tenant as a whole).
        #[arg(long)]
        key: Option<String>,
        /// Requests per minute.
        #[arg(long)]
        rpm: Option<u64>,
        /// Tokens (prompt plus completion) per minute.
        #[arg(long)]
        tpm: Option<u64>,
        /// Requests in flight at once (streams until their last byte);
        /// tenant-wide only.
        #[arg(long)]
        concurrency: Option<u32>,
    },
    /// List a tenant's limits.
    List {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a tenant's limit, or one key's.
    Remove {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Gateway key id (default: the tenant-wide limit).
        #[arg(long)]
        key: Option<String>,
    },
}

/// Credit verbs (`tenant credit ...`).
#[derive(clap::Subcommand, Debug)]
pub(crate) enum CreditCmd {
    /// Add prepaid credit; the tenant's spending is limited from then on.
    Add {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Amount in USD.
        #[arg(long, required_unless_present = "micros", conflicts_with = "micros")]
        usd: Option<f64>,
        /// Amount in micro-dollars.
        #[arg(long)]
        micros: Option<u64>,
    },
    /// Show the balance (added minus settled cost) and the data planes' leases.
    Show {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set the low-balance alert threshold.
    Threshold {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Threshold in USD.
        #[arg(
            long,
            alias = "low-balance-usd",
            required_unless_present = "clear",
            conflicts_with = "clear"
        )]
        usd: Option<f64>,
        /// Remove the threshold.
        #[arg(long)]
        clear: bool,
    },
    /// Set the completion tokens reserved for requests that set no max_tokens.
    DefaultMaxTokens {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Tokens.
        #[arg(long, required_unless_present = "clear", conflicts_with = "clear")]
        tokens: Option<u64>,
        /// Back to the data plane's default.
        #[arg(long)]
        clear: bool,
    },
}

/// Options of `alerts`.
#[derive(clap::Args, Debug)]
pub(crate) struct AlertsArgs {
    /// How to reach the admin API.
    #[command(flatten)]
    pub(crate) admin: AdminOpts,
    /// Only this tenant's alerts.
    #[arg(long)]
    pub(crate) tenant: Option<String>,
    /// Most alerts (the latest).
    #[arg(long, default_value_t = 100)]
    pub(crate) limit: usize,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Runs a price verb.
pub(crate) fn run_price(cmd: Noun<PriceCmd>) -> anyhow::Result<()> {
    let c = Client::new(&cmd.admin)?;
    match cmd.verb {
        PriceCmd::Set {
            model,
            input,
            output,
            cached_input,
            cache_write,
            max_output_tokens,
        } => {
            let body = json!({ "input": input, "output": output, "cached_input": cached_input,
                "cache_write": cache_write, "max_output_tokens": max_output_tokens });
            let p: ModelPrice = c.json(method::PUT, &format!("/v1/prices/{}", seg(&model)), Some(&body))?;
            println!(
                "price of {}: input ${} / cached input ${} / cache write ${} / output ${} per million tokens",
                p.model,
                p.input,
                p.cached_input.unwrap_or(p.input),
                p.cache_write.unwrap_or(p.input),
                p.output
            );
        }
        PriceCmd::List { json } => {
            let list: Vec<PriceView> = c.get("/v1/prices")?;
            if json {
                return print_json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|p| {
                    let source = if p.replaces_default {
                        "override (replaces default)".to_owned()
                    } else {
                        p.source.clone()
                    };
                    vec![
                        p.model.clone(),
                        p.input.to_string(),
                        p.cached_input.to_string(),
                        p.cache_write.to_string(),
                        p.output.to_string(),
                        source,
                    ]
                })
                .collect();
            table::print(
                &[
                    "MODEL",
                    "INPUT",
                    "CACHED INPUT",
                    "CACHE WRITE",
                    "OUTPUT",
                    "SOURCE",
                ],
                &rows,
            );
            println!("(USD per million tokens)");
        }
        PriceCmd::Remove { model } => {
            let _: Value = c.json(
                method::DELETE,
                &format!("/v1/prices/{}", seg(&model)),
                None::<&()>,
            )?;
            println!("removed the price override of {model}");
        }
    }
    Ok(())
}

/// Runs a limit verb.
pub(crate) fn run_limit(cmd: Noun<LimitCmd>) -> anyhow::Result<()> {
    let c = Client::new(&cmd.admin)?;
    match cmd.verb {
        LimitCmd::Set {
            tenant,
            key,
            rpm,
            tpm,
            concurrency,
        } => {
            if rpm.is_none() && tpm.is_none() && concurrency.is_none() {
                bail!("give --rpm, --tpm, --concurrency or several");
            }
            let l: RateLimit = c.json(
                method::PUT,
                &format!("/v1/limits/{}", seg(&tenant)),
                Some(&json!({ "key": key, "rpm": rpm, "tpm": tpm, "concurrency": concurrency })),
            )?;
            println!("limit set: {}", describe(&l));
        }
        LimitCmd::List { tenant, json } => {
            let list: Vec<RateLimit> = c.get(&format!("/v1/limits/{}", seg(&tenant)))?;
            if json {
                return print_json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|l| {
                    vec![
                        l.key.clone().unwrap_or_else(|| "(tenant)".into()),
                        l.rpm.map_or_else(|| "-".into(), |v| v.to_string()),
                        l.tpm.map_or_else(|| "-".into(), |v| v.to_string()),
                    ]
                })
                .collect();
            table::print(&["KEY", "RPM", "TPM"], &rows);
        }
        LimitCmd::Remove { tenant, key } => {
            let mut path = format!("/v1/limits/{}", seg(&tenant));
            if let Some(k) = &key {
                path.push_str(&format!("?key={}", seg(k)));
            }
            let _: Value = c.json(method::DELETE, &path, None::<&()>)?;
            match key {
                Some(k) => println!("removed the rate limit of key {tenant}/{k}"),
                None => println!("removed the tenant-wide rate limit of {tenant}"),
            }
        }
    }
    Ok(())
}

fn describe(l: &RateLimit) -> String {
    let who = match &l.key {
        Some(k) => format!("key {}/{k}", l.tenant),
        None => format!("tenant {}", l.tenant),
    };
    let rpm = l.rpm.map_or_else(|| "-".into(), |v| v.to_string());
    let tpm = l.tpm.map_or_else(|| "-".into(), |v| v.to_string());
    match l.concurrency {
        Some(n) => format!("{who}: {rpm} requests, {tpm} tokens per minute, {n} in flight"),
        None => format!("{who}: {rpm} requests, {tpm} tokens per minute"),
    }
}

/// USD as micro-dollars; `positive` refuses zero.
fn micros(usd: f64, positive: bool) -> anyhow::Result<u64> {
    let m = (usd * 1e6).round();
    if !usd.is_finite() || !(0.0..=1e18).contains(&m) || (positive && m < 1.0) {
        bail!(
            "{usd} is not an amount of USD (at least $0.000001{})",
            if positive { "" } else { ", or 0" }
        );
    }
    Ok(m as u64)
}

/// Runs a `tenant credit` verb.
pub(crate) fn run_credit(c: &Client, cmd: CreditCmd) -> anyhow::Result<()> {
    let path = |t: &str| format!("/v1/credits/{}", seg(t));
    match cmd {
        CreditCmd::Add {
            tenant,
            usd: dollars,
            micros: m,
        } => {
            let amount = match (dollars, m) {
                (Some(d), _) => micros(d, true)?,
                (None, Some(m)) => m,
                (None, None) => bail!("give --usd or --micros"),
            };
            let v: CreditView = c.json(method::POST, &path(&tenant), Some(&json!({ "micros": amount })))?;
            println!(
                "added {} to {tenant}: balance {}, added in all {}",
                usd(i64::try_from(amount).unwrap_or(i64::MAX)),
                usd(v.balance_micros),
                usd(i64::try_from(v.added_micros).unwrap_or(i64::MAX))
            );
        }
        CreditCmd::Show { tenant, json } => {
            let v: CreditView = c.get(&path(&tenant))?;
            if json {
                return print_json(&v);
            }
            print_credit(&v);
        }
        CreditCmd::Threshold {
            tenant,
            usd: dollars,
            clear,
        } => {
            let m = match (dollars, clear) {
                (Some(d), false) => Some(micros(d, false)?),
                _ => None,
            };
            let v: CreditView = c.json(
                method::PUT,
                &format!("{}/threshold", path(&tenant)),
                Some(&json!({ "micros": m })),
            )?;
            match v.low_balance_micros {
                Some(t) => println!(
                    "low-balance threshold of {tenant}: {} (balance {})",
                    usd(i64::try_from(t).unwrap_or(i64::MAX)),
                    usd(v.balance_micros)
                ),
                None => println!("low-balance threshold of {tenant} removed"),
            }
        }
        CreditCmd::DefaultMaxTokens {
            tenant,
            tokens,
            clear,
        } => {
            let t = if clear { None } else { tokens };
            let v: CreditView = c.json(
                method::PUT,
                &format!("{}/default-max-tokens", path(&tenant)),
                Some(&json!({ "tokens": t })),
            )?;
            match v.default_max_tokens {
                Some(n) => {
                    println!("{tenant}: requests without max_tokens reserve for {n} completion tokens")
                }
                None => println!("{tenant}: requests without max_tokens reserve the data plane's default"),
            }
        }
    }
    Ok(())
}

fn print_credit(v: &CreditView) {
    if !v.metered {
        println!(
            "tenant {} has no credit: its spending is not limited (add some with `tenant credit add`)",
            v.tenant
        );
        return;
    }
    let u = |m: u64| usd(i64::try_from(m).unwrap_or(i64::MAX));
    println!("tenant   {}", v.tenant);
    println!("added    {}", u(v.added_micros));
    println!("spent    {}", u(v.spent_micros));
    println!("balance  {}", usd(v.balance_micros));
    println!(
        "leased   {} (unleased {})",
        u(v.leased_micros),
        u(v.unleased_micros)
    );
    match v.low_balance_micros {
        Some(t) => println!(
            "alert    below {}{}",
            u(t),
            if v.below_threshold { " (below now)" } else { "" }
        ),
        None => println!("alert    -"),
    }
    if let Some(n) = v.default_max_tokens {
        println!("default max tokens {n}");
    }
    if !v.leases.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = v
            .leases
            .iter()
            .map(|l| {
                vec![
                    l.dataplane.clone(),
                    u(l.granted_micros),
                    u(l.spent_micros),
                    usd(l.remaining_micros),
                ]
            })
            .collect();
        table::print(&["DATAPLANE", "GRANTED", "SPENT", "REMAINING"], &rows);
    }
}

/// Runs `alerts`.
pub(crate) fn alerts(args: AlertsArgs) -> anyhow::Result<()> {
    let mut path = format!("/v1/alerts?limit={}", args.limit);
    if let Some(t) = &args.tenant {
        path.push_str(&format!("&tenant={}", seg(t)));
    }
    let list: Vec<AlertRow> = Client::new(&args.admin)?.get(&path)?;
    if args.json {
        return print_json(&list);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| {
            vec![
                a.id.to_string(),
                table::time(Some(a.ts_ms)),
                a.kind.clone(),
                a.tenant.clone(),
                usd(a.balance_micros),
                usd(i64::try_from(a.threshold_micros).unwrap_or(i64::MAX)),
                table::time(a.delivered_ms),
            ]
        })
        .collect();
    table::print(
        &[
            "ID",
            "TIME",
            "TYPE",
            "TENANT",
            "BALANCE",
            "THRESHOLD",
            "DELIVERED",
        ],
        &rows,
    );
    Ok(())
}
