//! `cache set|off|show`: a tenant's response cache rules (off by default).

use super::{method, print_json, seg, table, Client, Noun};
use crate::http::percent_encode;
use serde_json::{json, Value};
use sluice_contract::cache::{CacheRule, Replay};

/// Cache verbs.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum CacheCmd {
    /// Cache a tenant's responses (all its models, or one) for a TTL.
    Set {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Model alias (default: every model of the tenant); with --ttl 0,
        /// an exception to the tenant-wide rule.
        #[arg(long)]
        model: Option<String>,
        /// Seconds an entry lives.
        #[arg(long)]
        ttl: u64,
        /// How streamed hits are replayed: instant, or paced like the original.
        #[arg(long, value_parser = parse_replay, default_value = "instant")]
        replay: Replay,
        /// Share of the original cost charged for a hit, 0 to 1.
        #[arg(long, default_value_t = 0.0)]
        hit_price: f64,
    },
    /// Turn a tenant's cache off (for one model, or its tenant-wide rule).
    Off {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Model alias (default: the tenant-wide rule).
        #[arg(long)]
        model: Option<String>,
    },
    /// List cache rules.
    Show {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn parse_replay(s: &str) -> Result<Replay, String> {
    match s {
        "instant" => Ok(Replay::Instant),
        "paced" => Ok(Replay::Paced),
        _ => Err("instant or paced".into()),
    }
}

/// Runs a cache verb.
pub(crate) fn run(cmd: Noun<CacheCmd>) -> anyhow::Result<()> {
    let c = Client::new(&cmd.admin)?;
    match cmd.verb {
        CacheCmd::Set {
            tenant,
            model,
            ttl,
            replay,
            hit_price,
        } => {
            let r: CacheRule = c.json(
                method::PUT,
                &format!("/v1/caches/{}", seg(&tenant)),
                Some(&json!({ "model": model, "ttl_s": ttl, "replay": replay, "hit_price": hit_price })),
            )?;
            println!(
                "cache of {tenant} for {} set: ttl {}s, {} replay, hit price {}",
                r.model.as_deref().unwrap_or("every model"),
                r.ttl_s,
                r.replay.as_str(),
                r.hit_price
            );
        }
        CacheCmd::Off { tenant, model } => {
            let mut path = format!("/v1/caches/{}", seg(&tenant));
            if let Some(m) = &model {
                path.push_str(&format!("?model={}", percent_encode(m)));
            }
            let _: Value = c.json(method::DELETE, &path, None::<&()>)?;
            println!(
                "cache of {tenant} for {} off",
                model.as_deref().unwrap_or("every model")
            );
        }
        CacheCmd::Show { tenant, json } => {
            let path = match &tenant {
                Some(t) => format!("/v1/caches?tenant={}", percent_encode(t)),
                None => "/v1/caches".to_owned(),
            };
            let list: Vec<CacheRule> = c.get(&path)?;
            if json {
                return print_json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|r| {
                    vec![
                        r.tenant.clone(),
                        r.model.clone().unwrap_or_else(|| "*".into()),
                        if r.ttl_s == 0 {
                            "off".into()
                        } else {
                            r.ttl_s.to_string()
                        },
                        r.replay.as_str().to_owned(),
                        r.hit_price.to_string(),
                        table::time(Some(r.since_ms)),
                    ]
                })
                .collect();
            table::print(
                &["TENANT", "MODEL", "TTL S", "REPLAY", "HIT PRICE", "SINCE"],
                &rows,
            );
        }
    }
    Ok(())
}
