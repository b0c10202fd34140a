//! `token create|list|revoke`: named admin tokens with scopes.

use super::{method, print_json, seg, table, Client, Noun};
use serde::Deserialize;
use serde_json::Value;

/// Admin token verbs (an admin-scope token is needed for each).
#[derive(clap::Subcommand, Debug)]
pub(crate) enum TokenCmd {
    /// Create a named token; it is printed once, and only its hash is kept.
    /// Use it with --token-file F (mode 0600) or $SLUICE_ADMIN_TOKEN.
    Create {
        /// Token name: [a-z0-9_-], unique, never reused.
        name: String,
        /// `admin` (everything), `read` (GET only: changes nothing) or
        /// `tenant:<id>` (that tenant's own paths only).
        #[arg(long)]
        scope: String,
    },
    /// List named tokens: name, scope, created, revoked (never the token).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a named token: it gets 401 from now on.
    Revoke {
        /// Token name.
        name: String,
    },
}

#[derive(Deserialize)]
struct Created {
    name: String,
    scope: String,
    token: String,
}

#[derive(Deserialize, serde::Serialize)]
struct Listed {
    name: String,
    scope: String,
    created_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked_ms: Option<u64>,
}

/// Runs a token verb.
pub(crate) fn run(cmd: Noun<TokenCmd>) -> anyhow::Result<()> {
    let c = Client::new(&cmd.admin)?;
    match cmd.verb {
        TokenCmd::Create { name, scope } => {
            let t: Created = c.json(
                method::POST,
                "/v1/tokens",
                Some(&serde_json::json!({ "name": name, "scope": scope })),
            )?;
            let token = zeroize::Zeroizing::new(t.token);
            eprintln!(
                "created admin token {} (scope {}); it is shown only this once:",
                t.name, t.scope
            );
            println!("{}", token.as_str());
        }
        TokenCmd::List { json } => {
            let list: Vec<Listed> = c.get("/v1/tokens")?;
            if json {
                return print_json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        t.scope.clone(),
                        table::time(Some(t.created_ms)),
                        if t.revoked_ms.is_some() {
                            "revoked".into()
                        } else {
                            "active".into()
                        },
                    ]
                })
                .collect();
            table::print(&["NAME", "SCOPE", "CREATED", "STATE"], &rows);
        }
        TokenCmd::Revoke { name } => {
            let _: Value = c.json(
                method::POST,
                &format!("/v1/tokens/{}/revoke", seg(&name)),
                None::<&()>,
            )?;
            println!("revoked admin token {name}");
        }
    }
    Ok(())
}
