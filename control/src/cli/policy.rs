//! `policy set|show|remove|check`: a tenant's policy TOML, validated by the
//! data plane's own policy compiler (on the server, and offline by `check`).

use super::{method, print_json, seg, Client, Noun};
use crate::billing::rows::PolicyRow;
use anyhow::Context;
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Policy verbs.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum PolicyCmd {
    /// Set (or replace) a tenant's policy from a TOML file.
    Set {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// The policy TOML ("-" reads standard input).
        #[arg(long)]
        file: PathBuf,
    },
    /// Print a tenant's policy TOML.
    Show {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Print JSON (tenant, toml, updated_ms).
        #[arg(long)]
        json: bool,
    },
    /// Remove a tenant's policy.
    Remove {
        /// Tenant.
        #[arg(long)]
        tenant: String,
    },
    /// Validate a policy file here, without a server.
    Check {
        /// The policy TOML ("-" reads standard input).
        #[arg(long)]
        file: PathBuf,
    },
}

fn read(file: &Path) -> anyhow::Result<String> {
    if file == Path::new("-") {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the policy from standard input")?;
        return Ok(s);
    }
    std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
}

/// Runs a policy verb.
pub(crate) fn run(cmd: Noun<PolicyCmd>) -> anyhow::Result<()> {
    if let PolicyCmd::Check { file } = &cmd.verb {
        let text = read(file)?;
        sluice_contract::policy::CompiledPolicy::compile(&text)
            .map_err(|e| anyhow::anyhow!("policy refused: {e}"))?;
        println!("{} is a valid policy", file.display());
        return Ok(());
    }
    let c = Client::new(&cmd.admin)?;
    match cmd.verb {
        PolicyCmd::Set { tenant, file } => {
            let text = read(&file)?;
            let _: PolicyRow = c.json(
                method::PUT,
                &format!("/v1/policies/{}", seg(&tenant)),
                Some(&json!({ "toml": text })),
            )?;
            println!("policy of {tenant} set");
        }
        PolicyCmd::Show { tenant, json } => {
            let p: PolicyRow = c.get(&format!("/v1/policies/{}", seg(&tenant)))?;
            if json {
                return print_json(&p);
            }
            print!("{}", p.toml);
            if !p.toml.ends_with('\n') {
                println!();
            }
        }
        PolicyCmd::Remove { tenant } => {
            let _: Value = c.json(
                method::DELETE,
                &format!("/v1/policies/{}", seg(&tenant)),
                None::<&()>,
            )?;
            println!("policy of {tenant} removed");
        }
        PolicyCmd::Check { .. } => {}
    }
    Ok(())
}
