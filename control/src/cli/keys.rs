//! `apikey create|list|revoke` and `provider-key add|list|rotate|delete`.

use super::{method, print_json, seg, table, Client, Noun};
use crate::store::rows::{ApiKeyRow, ProviderKeyInfo};
use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::{json, Value};
use std::io::{IsTerminal, Read};
use zeroize::Zeroizing;

/// Gateway key verbs.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum ApikeyCmd {
    /// Create a gateway key; it is printed once, on stdout, and never stored.
    Create {
        /// Owning tenant.
        #[arg(long)]
        tenant: String,
        /// Key id (default: random).
        #[arg(long)]
        id: Option<String>,
        /// Label.
        #[arg(long)]
        name: Option<String>,
        /// Print JSON (including the key).
        #[arg(long)]
        json: bool,
    },
    /// List a tenant's gateway keys (ids and hashes only).
    List {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a gateway key: it stops working with the next snapshot.
    Revoke {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Key id.
        id: String,
    },
}

#[derive(Deserialize, serde::Serialize)]
struct Created {
    #[serde(flatten)]
    row: ApiKeyRow,
    key: String,
}

/// Runs a gateway key verb.
pub(crate) fn run_apikey(cmd: Noun<ApikeyCmd>) -> anyhow::Result<()> {
    let c = Client::new(&cmd.admin)?;
    match cmd.verb {
        ApikeyCmd::Create {
            tenant,
            id,
            name,
            json,
        } => {
            let path = format!("/v1/tenants/{}/api-keys", seg(&tenant));
            let created: Created = c.json(method::POST, &path, Some(&json!({ "id": id, "name": name })))?;
            if json {
                return print_json(&created);
            }
            eprintln!(
                "created gateway key {} for tenant {}; it is shown only this once:",
                created.row.id, created.row.tenant
            );
            println!("{}", created.key);
        }
        ApikeyCmd::List { tenant, json } => {
            let list: Vec<ApiKeyRow> = c.get(&format!("/v1/tenants/{}/api-keys", seg(&tenant)))?;
            if json {
                return print_json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|k| {
                    vec![
                        k.id.clone(),
                        table::opt(k.name.as_deref()),
                        k.sha256[..16].to_owned() + "…",
                        table::time(Some(k.created_ms)),
                        table::time(k.revoked_ms),
                    ]
                })
                .collect();
            table::print(&["ID", "NAME", "SHA256", "CREATED", "REVOKED"], &rows);
        }
        ApikeyCmd::Revoke { tenant, id } => {
            let path = format!("/v1/tenants/{}/api-keys/{}/revoke", seg(&tenant), seg(&id));
            let _: Value = c.json(method::POST, &path, None::<&()>)?;
            println!("revoked gateway key {id} of tenant {tenant}");
        }
    }
    Ok(())
}

/// Provider key verbs. Secrets are read from stdin (or a prompt on a
/// terminal), never from the command line.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum ProviderKeyCmd {
    /// Add a tenant's provider key (secret from stdin or a prompt).
    Add {
        /// Owning tenant.
        #[arg(long)]
        tenant: String,
        /// Key id, as routes name it.
        id: String,
        /// OpenAI: the `OpenAI-Organization` sent with this key (a client's
        /// own never goes upstream).
        #[arg(long)]
        organization: Option<String>,
        /// OpenAI: the `OpenAI-Project` sent with this key.
        #[arg(long)]
        project: Option<String>,
    },
    /// List a tenant's provider keys (never the secrets).
    List {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replace a provider key's secret (new secret from stdin or a prompt).
    Rotate {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Key id.
        id: String,
        /// A new `OpenAI-Organization` (the old one stays when not given).
        #[arg(long)]
        organization: Option<String>,
        /// A new `OpenAI-Project` (the old one stays when not given).
        #[arg(long)]
        project: Option<String>,
    },
    /// Delete a provider key that no route uses.
    Delete {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Key id.
        id: String,
    },
}

/// A provider key body; borrows the secret so no extra copy lingers.
#[derive(serde::Serialize)]
struct SecretBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    secret: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    organization: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    project: Option<&'a str>,
}

/// Runs a provider key verb.
pub(crate) fn run_provider_key(cmd: Noun<ProviderKeyCmd>) -> anyhow::Result<()> {
    let c = Client::new(&cmd.admin)?;
    match cmd.verb {
        ProviderKeyCmd::Add {
            tenant,
            id,
            organization,
            project,
        } => {
            let secret = read_secret(&format!("provider key secret for {tenant}/{id}: "))?;
            let body = SecretBody {
                id: Some(&id),
                secret: &secret,
                organization: organization.as_deref(),
                project: project.as_deref(),
            };
            let _: ProviderKeyInfo = c.json(
                method::POST,
                &format!("/v1/tenants/{}/provider-keys", seg(&tenant)),
                Some(&body),
            )?;
            println!("added provider key {id} for tenant {tenant}");
        }
        ProviderKeyCmd::List { tenant, json } => {
            let list: Vec<ProviderKeyInfo> = c.get(&format!("/v1/tenants/{}/provider-keys", seg(&tenant)))?;
            if json {
                return print_json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|k| {
                    vec![
                        k.id.clone(),
                        table::time(Some(k.created_ms)),
                        table::time(Some(k.updated_ms)),
                    ]
                })
                .collect();
            table::print(&["ID", "CREATED", "ROTATED"], &rows);
        }
        ProviderKeyCmd::Rotate {
            tenant,
            id,
            organization,
            project,
        } => {
            let secret = read_secret(&format!("new provider key secret for {tenant}/{id}: "))?;
            let body = SecretBody {
                id: None,
                secret: &secret,
                organization: organization.as_deref(),
                project: project.as_deref(),
            };
            let path = format!("/v1/tenants/{}/provider-keys/{}", seg(&tenant), seg(&id));
            let _: ProviderKeyInfo = c.json(method::PUT, &path, Some(&body))?;
            println!("rotated provider key {id} of tenant {tenant}");
        }
        ProviderKeyCmd::Delete { tenant, id } => {
            let path = format!("/v1/tenants/{}/provider-keys/{}", seg(&tenant), seg(&id));
            let _: Value = c.json(method::DELETE, &path, None::<&()>)?;
            println!("deleted provider key {id} of tenant {tenant}");
        }
    }
    Ok(())
}

/// Reads a secret: a hidden prompt on a terminal, else all of stdin (trimmed).
fn read_secret(prompt: &str) -> anyhow::Result<Zeroizing<String>> {
    let secret = if std::io::stdin().is_terminal() {
        Zeroizing::new(rpassword::prompt_password(prompt).context("reading the secret from the terminal")?)
    } else {
        let mut s = Zeroizing::new(String::new());
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the secret from stdin")?;
        s
    };
    let trimmed = Zeroizing::new(secret.trim().to_owned());
    if trimmed.is_empty() {
        bail!("no secret given: pipe it on stdin (e.g. `printf %s \"$KEY\" | sluice-control provider-key add ...`)");
    }
    Ok(trimmed)
}
