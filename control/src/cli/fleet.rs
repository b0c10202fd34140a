//! `upstream add|list|remove` and `dataplane enroll|list|revoke`.

use super::{method, print_json, seg, table, Client, Noun};
use crate::store::rows::DataplaneInfo;
use anyhow::Context;
use serde::Deserialize;
use serde_json::Value;
use sluice_contract::snapshot::types::{ProviderKind, Upstream};

/// Wire dialects, as the CLI spells them.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(crate) enum Kind {
    /// OpenAI.
    Openai,
    /// Anthropic.
    Anthropic,
    /// OpenRouter (OpenAI dialect).
    Openrouter,
    /// Google's Generative Language API (Gemini).
    Gemini,
}

impl From<Kind> for ProviderKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Openai => ProviderKind::Openai,
            Kind::Anthropic => ProviderKind::Anthropic,
            Kind::Openrouter => ProviderKind::Openrouter,
            Kind::Gemini => ProviderKind::Gemini,
        }
    }
}

/// Upstream verbs.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum UpstreamCmd {
    /// Add a provider endpoint.
    Add {
        /// Upstream name.
        name: String,
        /// Wire dialect.
        #[arg(long, value_enum)]
        kind: Kind,
        /// Base URL up to (not including) /v1, e.g. https://api.openai.com.
        #[arg(long)]
        base_url: String,
        /// Region it serves from.
        #[arg(long)]
        region: Option<String>,
    },
    /// List upstreams.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove an upstream that no route uses.
    Remove {
        /// Upstream name.
        name: String,
    },
}

/// Runs an upstream verb.
pub(crate) fn run_upstream(cmd: Noun<UpstreamCmd>) -> anyhow::Result<()> {
    let c = Client::new(&cmd.admin)?;
    match cmd.verb {
        UpstreamCmd::Add {
            name,
            kind,
            base_url,
            region,
        } => {
            let u = Upstream {
                name,
                kind: kind.into(),
                base_url,
                region,
            };
            let u: Upstream = c.json(method::POST, "/v1/upstreams", Some(&u))?;
            println!("added upstream {} ({}, {})", u.name, u.kind.as_str(), u.base_url);
        }
        UpstreamCmd::List { json } => {
            let list: Vec<Upstream> = c.get("/v1/upstreams")?;
            if json {
                return print_json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|u| {
                    vec![
                        u.name.clone(),
                        u.kind.as_str().to_owned(),
                        u.base_url.clone(),
                        table::opt(u.region.as_deref()),
                    ]
                })
                .collect();
            table::print(&["NAME", "KIND", "BASE URL", "REGION"], &rows);
        }
        UpstreamCmd::Remove { name } => {
            let _: Value = c.json(
                method::DELETE,
                &format!("/v1/upstreams/{}", seg(&name)),
                None::<&()>,
            )?;
            println!("removed upstream {name}");
        }
    }
    Ok(())
}

/// Data plane verbs.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum DataplaneCmd {
    /// Enroll a data plane; its token is shown once: written to --out FILE
    /// (mode 0600; give it to the data plane with --token-file), else printed.
    Enroll {
        /// Data plane id: [a-z0-9_]{1,32}.
        id: String,
        /// Write the token to this new file, mode 0600 (refused if it exists),
        /// instead of printing it: a shell redirect would leave it readable
        /// by others, and the data plane refuses such a file.
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// List data planes: last seen, snapshot version, records received.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Each data plane's view of its route targets' health (reported with
    /// every snapshot poll, so at most ~25 s old).
    Health {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a data plane's token (re-enroll to issue a new one).
    Revoke {
        /// Data plane id.
        id: String,
    },
}

/// One data plane's health report, as `GET /v1/dataplanes/health` lists it.
#[derive(Deserialize, serde::Serialize)]
struct HealthReport {
    dataplane: String,
    reported_ms: u64,
    targets: Vec<sluice_contract::health::TargetView>,
}

#[derive(Deserialize)]
struct Enrolled {
    id: String,
    token: String,
}

/// Runs a data plane verb.
pub(crate) fn run_dataplane(cmd: Noun<DataplaneCmd>) -> anyhow::Result<()> {
    let c = Client::new(&cmd.admin)?;
    match cmd.verb {
        DataplaneCmd::Enroll { id, out } => {
            if let Some(path) = &out {
                if path.exists() {
                    anyhow::bail!("{} exists; the token goes to a new file", path.display());
                }
            }
            let e: Enrolled = c.json(
                method::POST,
                "/v1/dataplanes",
                Some(&serde_json::json!({ "id": id })),
            )?;
            let token = zeroize::Zeroizing::new(e.token);
            match out {
                Some(path) => {
                    crate::secret_file::write_new(&path, format!("{}\n", token.as_str()).as_bytes())
                        .and_then(|()| crate::secret_file::sync_dir(&path))
                        .with_context(|| {
                            format!(
                                "writing {} (data plane {} is enrolled: revoke and re-enroll)",
                                path.display(),
                                e.id
                            )
                        })?;
                    eprintln!(
                        "enrolled data plane {}; its token is in {} (mode 0600), shown nowhere else",
                        e.id,
                        path.display()
                    );
                }
                None => {
                    eprintln!(
                        "enrolled data plane {}; its token is shown only this once \
                         (store it with mode 0600, or use --out FILE):",
                        e.id
                    );
                    println!("{}", token.as_str());
                }
            }
        }
        DataplaneCmd::List { json } => {
            let list: Vec<DataplaneInfo> = c.get("/v1/dataplanes")?;
            if json {
                return print_json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|d| {
                    vec![
                        d.id.clone(),
                        if d.revoked_ms.is_some() {
                            "revoked".into()
                        } else {
                            "active".into()
                        },
                        table::time(d.last_seen_ms),
                        d.snapshot_version
                            .map(|v| v.to_string())
                            .unwrap_or_else(|| "-".into()),
                        d.records.to_string(),
                    ]
                })
                .collect();
            table::print(&["ID", "STATE", "LAST SEEN", "SNAPSHOT", "RECORDS"], &rows);
        }
        DataplaneCmd::Health { json } => {
            let list: Vec<HealthReport> = c.get("/v1/dataplanes/health")?;
            if json {
                return print_json(&list);
            }
            let mut rows = Vec::new();
            for r in &list {
                for t in &r.targets {
                    rows.push(vec![
                        r.dataplane.clone(),
                        t.upstream.clone(),
                        if t.tenant.is_empty() {
                            "-".into()
                        } else {
                            t.tenant.clone()
                        },
                        t.key.clone(),
                        t.state.clone(),
                        t.wait_ms.to_string(),
                        t.ejections.to_string(),
                        t.cooldowns.to_string(),
                        t.retries.to_string(),
                        t.budget_refusals.to_string(),
                        format!("{:.1}", t.ttfb_ewma_us as f64 / 1000.0),
                        table::time(Some(r.reported_ms)),
                    ]);
                }
            }
            table::print(
                &[
                    "DATAPLANE",
                    "UPSTREAM",
                    "TENANT",
                    "KEY",
                    "STATE",
                    "WAIT MS",
                    "EJECTIONS",
                    "COOLDOWNS",
                    "RETRIES",
                    "REFUSED",
                    "TTFB MS",
                    "REPORTED",
                ],
                &rows,
            );
        }
        DataplaneCmd::Revoke { id } => {
            let _: Value = c.json(
                method::POST,
                &format!("/v1/dataplanes/{}/revoke", seg(&id)),
                None::<&()>,
            )?;
            println!("revoked data plane {id}");
        }
    }
    Ok(())
}
