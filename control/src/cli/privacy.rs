//! `purge`, `export`, `audit list|verify`, `logs --content`, and the privacy
//! options of `tenant update`.

use super::{method, print_json, seg, table, AdminOpts, Client};
use crate::audit::{AuditEntry, Verification};
use crate::export::{Header, Page};
use crate::http::percent_encode;
use crate::privacy::content::{ContentEntry, ContentView};
use crate::privacy::settings::PrivacyView;
use crate::retention::PurgeReport;
use anyhow::{bail, Context};
use serde_json::{json, Map, Value};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

/// Options of `purge`.
#[derive(clap::Args, Debug)]
pub(crate) struct PurgeArgs {
    /// How to reach the admin API.
    #[command(flatten)]
    pub(crate) admin: AdminOpts,
    /// Purge now what retention no longer allows (control also purges hourly).
    #[arg(long)]
    pub(crate) now: bool,
    /// Then rewrite the store file, so the purged bytes leave the disk too.
    #[arg(long)]
    pub(crate) rewrite: bool,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Options of `export`.
#[derive(clap::Args, Debug)]
pub(crate) struct ExportArgs {
    /// How to reach the admin API.
    #[command(flatten)]
    pub(crate) admin: AdminOpts,
    /// Tenant.
    #[arg(long)]
    pub(crate) tenant: String,
    /// File to write (mode 0600; replaced if it exists).
    #[arg(long)]
    pub(crate) out: PathBuf,
}

/// Audit trail verbs.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum AuditCmd {
    /// List entries (the latest, or those after --after).
    List {
        /// Entries after this seq, oldest first.
        #[arg(long)]
        after: Option<u64>,
        /// Most entries (1 to 10000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check the hash chain; fails naming the first entry altered, removed or reordered.
    Verify {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `purge`.
pub(crate) fn purge(args: PurgeArgs) -> anyhow::Result<()> {
    if !args.now {
        bail!("give --now to purge now (control purges on its own every hour)");
    }
    let c = Client::new(&args.admin)?;
    let r: PurgeReport = c.json(
        method::POST,
        "/v1/purge",
        Some(&json!({ "rewrite": args.rewrite })),
    )?;
    if args.json {
        return print_json(&r);
    }
    println!(
        "purged {} record(s), {} content(s), {} rollup row(s); {} content key(s) destroyed{}",
        r.records,
        r.contents,
        r.rollups,
        r.keys_destroyed,
        if args.rewrite { "; store rewritten" } else { "" }
    );
    Ok(())
}

/// Runs `export`: the header, then the records page by page, into a
/// temporary file renamed over `--out` once complete.
pub(crate) fn export(args: ExportArgs) -> anyhow::Result<()> {
    let c = Client::new(&args.admin)?;
    let base = format!("/v1/tenants/{}/export", seg(&args.tenant));
    let header: Header = c.get(&base)?;
    let Value::Object(fields) = serde_json::to_value(&header)? else {
        bail!("the export header is not a JSON object");
    };
    let tmp = {
        let mut name = args.out.as_os_str().to_owned();
        name.push(".partial");
        PathBuf::from(name)
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let written = (|| -> anyhow::Result<u64> {
        write_fields(&mut out, &fields)?;
        out.write_all(b",\n  \"records\": [")?;
        let mut after: Option<String> = None;
        let mut n = 0u64;
        loop {
            let mut path = format!("{base}/records?limit=1000");
            if let Some(a) = &after {
                path.push_str(&format!("&after={}", percent_encode(a)));
            }
            let page: Page = c.get(&path)?;
            for r in &page.records {
                out.write_all(if n == 0 { b"\n    " } else { b",\n    " })?;
                serde_json::to_writer(&mut out, r)?;
                n += 1;
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        out.write_all(if n == 0 { b"]\n}\n" } else { b"\n  ]\n}\n" })?;
        out.flush()?;
        out.get_ref().sync_all()?;
        Ok(n)
    })();
    let n = match written {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, &args.out).with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "exported tenant {} ({n} record(s)) to {}",
        args.tenant,
        args.out.display()
    );
    Ok(())
}

/// Writes `{` and the header's fields, two-space indented, without the closing brace.
fn write_fields(out: &mut impl Write, fields: &Map<String, Value>) -> anyhow::Result<()> {
    out.write_all(b"{")?;
    for (i, (k, v)) in fields.iter().enumerate() {
        out.write_all(if i == 0 { b"\n  " } else { b",\n  " })?;
        serde_json::to_writer(&mut *out, k)?;
        out.write_all(b": ")?;
        serde_json::to_writer(&mut *out, v)?;
    }
    Ok(())
}

/// Runs an audit verb.
pub(crate) fn audit(cmd: super::Noun<AuditCmd>) -> anyhow::Result<()> {
    let c = Client::new(&cmd.admin)?;
    match cmd.verb {
        AuditCmd::List { after, limit, json } => {
            let mut path = format!("/v1/audit?limit={limit}");
            if let Some(a) = after {
                path.push_str(&format!("&after={a}"));
            }
            let list: Vec<AuditEntry> = c.get(&path)?;
            if json {
                return print_json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|e| {
                    vec![
                        e.seq.to_string(),
                        table::time(Some(e.ts_ms)),
                        e.admin.clone(),
                        e.action.clone(),
                        match (&e.target, e.erased, &e.target_hash) {
                            (Some(t), _, _) => t.clone(),
                            (None, true, _) => "(erased)".into(),
                            (None, false, _) => "-".into(),
                        },
                        e.detail
                            .clone()
                            .filter(|d| !d.is_empty())
                            .unwrap_or_else(|| "-".into()),
                        e.outcome.clone(),
                    ]
                })
                .collect();
            table::print(
                &["SEQ", "TIME", "ADMIN", "ACTION", "TARGET", "DETAIL", "OUTCOME"],
                &rows,
            );
        }
        AuditCmd::Verify { json } => {
            let v: Verification = c.get("/v1/audit/verify")?;
            if json {
                print_json(&v)?;
            }
            if !v.ok {
                bail!(
                    "audit trail broken at entry {}: {}",
                    v.first_bad.unwrap_or(0),
                    v.problem.as_deref().unwrap_or("unknown problem")
                );
            }
            if !json {
                println!(
                    "audit trail intact: {} entries{}",
                    v.entries,
                    v.head.map(|h| format!(", head {h}")).unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

/// `logs --content`: the records with their content opened.
pub(crate) fn logs_content(admin: &AdminOpts, query: &str, tenant: &str, json: bool) -> anyhow::Result<()> {
    let list: Vec<ContentEntry> =
        Client::new(admin)?.get(&format!("/v1/tenants/{}/content?{query}", seg(tenant)))?;
    if json {
        return print_json(&list);
    }
    for e in &list {
        let r = &e.entry.record;
        println!(
            "== {} {} {} {} {}",
            table::time(Some(r.ts_ms)),
            table::opt(r.key_id.as_deref()),
            table::opt(r.model.as_deref()),
            r.status,
            r.outcome.label()
        );
        match &e.content {
            None => println!("(no content logged)"),
            Some(ContentView::Opened {
                request,
                response,
                response_truncated,
            }) => {
                println!("-- request:\n{request}");
                println!(
                    "-- response{}:\n{response}",
                    if *response_truncated { " (truncated)" } else { "" }
                );
            }
            Some(ContentView::Expired) => println!("(content expired: older than the content retention)"),
            Some(ContentView::KeyDestroyed) => {
                println!("(content key destroyed: logging was turned off and purged)")
            }
            Some(ContentView::Unreadable) => println!("(content does not open under the tenant's key)"),
        }
    }
    Ok(())
}

/// The privacy part of `tenant update`; returns whether there was any.
pub(crate) fn tenant_update(
    c: &Client,
    id: &str,
    log_content: Option<&str>,
    retention_days: Option<u32>,
    content_retention_days: Option<u32>,
) -> anyhow::Result<bool> {
    let mut patch = Map::new();
    if let Some(v) = log_content {
        patch.insert("log_content".into(), Value::Bool(v == "on"));
    }
    if let Some(d) = retention_days {
        patch.insert("retention_days".into(), json!(d));
    }
    if let Some(d) = content_retention_days {
        patch.insert("content_retention_days".into(), json!(d));
    }
    if patch.is_empty() {
        return Ok(false);
    }
    let v: PrivacyView = c.json(
        method::PATCH,
        &format!("/v1/tenants/{}/privacy", seg(id)),
        Some(&patch),
    )?;
    println!(
        "tenant {}: content logging {}, records kept {} days, content kept {} days",
        v.tenant,
        if v.log_content { "on" } else { "off" },
        v.retention_days,
        v.content_retention_days
    );
    Ok(true)
}
