//! `tenant create|list|show|update|delete`.

use super::{method, print_json, seg, table, Client, Noun};
use crate::store::rows::TenantRow;
use serde_json::{json, Map, Value};

/// Tenant verbs.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum TenantCmd {
    /// Create a tenant.
    Create {
        /// Tenant id: [a-z0-9][a-z0-9_-]{0,63}.
        id: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Region the tenant's traffic must stay in.
        #[arg(long)]
        region: Option<String>,
    },
    /// List tenants.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one tenant.
    Show {
        /// Tenant id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a tenant's name or region.
    Update {
        /// Tenant id.
        id: String,
        /// New display name.
        #[arg(long, conflicts_with = "clear_name")]
        name: Option<String>,
        /// Remove the display name.
        #[arg(long)]
        clear_name: bool,
        /// New region.
        #[arg(long, conflicts_with = "clear_region")]
        region: Option<String>,
        /// Remove the region pin.
        #[arg(long)]
        clear_region: bool,
        /// Log request and response bodies, sealed under the tenant's own key.
        #[arg(long, value_parser = ["on", "off"])]
        log_content: Option<String>,
        /// Days the tenant's records are kept (default 30).
        #[arg(long)]
        retention_days: Option<u32>,
        /// Days logged content is kept (default 30, at most --retention-days).
        #[arg(long)]
        content_retention_days: Option<u32>,
    },
    /// Delete a tenant with its keys, provider keys, routes, records and usage.
    Delete {
        /// Tenant id.
        id: String,
    },
    /// Prepaid credit: add, show, alert threshold.
    #[command(subcommand)]
    Credit(super::billing::CreditCmd),
}

/// Runs a tenant verb.
pub(crate) fn run(cmd: Noun<TenantCmd>) -> anyhow::Result<()> {
    let c = Client::new(&cmd.admin)?;
    match cmd.verb {
        TenantCmd::Create { id, name, region } => {
            let t: TenantRow = c.json(
                method::POST,
                "/v1/tenants",
                Some(&json!({ "id": id, "name": name, "region": region })),
            )?;
            println!("created tenant {}", t.id);
        }
        TenantCmd::List { json } => {
            let list: Vec<TenantRow> = c.get("/v1/tenants")?;
            if json {
                return print_json(&list);
            }
            let rows: Vec<Vec<String>> = list.iter().map(row).collect();
            table::print(&["ID", "NAME", "REGION", "CREATED"], &rows);
        }
        TenantCmd::Show { id, json } => {
            let t: TenantRow = c.get(&format!("/v1/tenants/{}", seg(&id)))?;
            if json {
                return print_json(&t);
            }
            table::print(&["ID", "NAME", "REGION", "CREATED"], &[row(&t)]);
        }
        TenantCmd::Update {
            id,
            name,
            clear_name,
            region,
            clear_region,
            log_content,
            retention_days,
            content_retention_days,
        } => {
            let privacy = super::privacy::tenant_update(
                &c,
                &id,
                log_content.as_deref(),
                retention_days,
                content_retention_days,
            )?;
            let mut patch = Map::new();
            if let Some(n) = name {
                patch.insert("name".into(), Value::String(n));
            } else if clear_name {
                patch.insert("name".into(), Value::Null);
            }
            if let Some(r) = region {
                patch.insert("region".into(), Value::String(r));
            } else if clear_region {
                patch.insert("region".into(), Value::Null);
            }
            if patch.is_empty() {
                if privacy {
                    return Ok(());
                }
                anyhow::bail!("nothing to change: give --name, --clear-name, --region, --clear-region, --log-content, --retention-days or --content-retention-days");
            }
            let t: TenantRow = c.json(method::PATCH, &format!("/v1/tenants/{}", seg(&id)), Some(&patch))?;
            println!("updated tenant {}", t.id);
        }
        TenantCmd::Delete { id } => {
            let _: Value = c.json(method::DELETE, &format!("/v1/tenants/{}", seg(&id)), None::<&()>)?;
            println!("deleted tenant {id} and its keys, provider keys, routes and records");
        }
        TenantCmd::Credit(verb) => super::billing::run_credit(&c, verb)?,
    }
    Ok(())
}

fn row(t: &TenantRow) -> Vec<String> {
    vec![
        t.id.clone(),
        table::opt(t.name.as_deref()),
        table::opt(t.region.as_deref()),
        table::time(Some(t.created_ms)),
    ]
}
