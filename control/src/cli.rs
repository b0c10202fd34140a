//! The CLI: every subcommand but `serve`, `demo` and `master-key` talks to a
//! running `serve` over the admin API.
//!
//! The admin URL comes from `--admin` (default `http://127.0.0.1:7071`); the
//! token from `--token-file`, else `$SLUICE_ADMIN_TOKEN`, else
//! `DATA/admin.token` with `--data` / `$SLUICE_DATA`.

pub(crate) mod billing;
pub(crate) mod cache;
pub(crate) mod cache_columns;
pub(crate) mod console;
pub(crate) mod fleet;
pub(crate) mod keys;
pub(crate) mod master_key;
pub(crate) mod policy;
pub(crate) mod privacy;
pub(crate) mod records;
pub(crate) mod route;
pub(crate) mod sinks;
pub(crate) mod table;
pub(crate) mod tenant;
pub(crate) mod tokens;

use crate::http::client::{Endpoint, Reply};
use anyhow::{anyhow, bail, Context};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// Default admin API URL.
pub(crate) const DEFAULT_ADMIN_URL: &str = "http://127.0.0.1:7071";
/// How long one admin call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the admin API is and how to authenticate to it.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct AdminOpts {
    /// Admin API URL of a running `sluice-control serve`.
    #[arg(long = "admin", global = true, env = "SLUICE_ADMIN_URL", default_value = DEFAULT_ADMIN_URL)]
    pub(crate) admin_url: String,
    /// Data directory of that serve; its admin.token authenticates the CLI.
    #[arg(long, global = true, env = "SLUICE_DATA")]
    pub(crate) data: Option<PathBuf>,
    /// File holding the admin token (instead of DATA/admin.token).
    #[arg(long, global = true)]
    pub(crate) token_file: Option<PathBuf>,
    /// PEM CA certificates to trust for an `https://` admin URL, instead of
    /// the webpki roots (for a serve started with `--admin-tls-cert` behind
    /// a private CA).
    #[arg(long, global = true, env = "SLUICE_ADMIN_CA_FILE")]
    pub(crate) admin_ca_file: Option<PathBuf>,
}

/// A noun with its verbs, e.g. `tenant create`.
#[derive(clap::Args, Debug)]
pub(crate) struct Noun<C: clap::Subcommand> {
    /// How to reach the admin API.
    #[command(flatten)]
    pub(crate) admin: AdminOpts,
    /// The verb.
    #[command(subcommand)]
    pub(crate) verb: C,
}

/// A connection to the admin API.
pub(crate) struct Client {
    endpoint: Endpoint,
    token: zeroize::Zeroizing<String>,
}

impl Client {
    /// Resolves the admin URL and token from `opts` and the environment.
    pub(crate) fn new(opts: &AdminOpts) -> anyhow::Result<Client> {
        let token = if let Some(f) = &opts.token_file {
            crate::secret_file::read(f).map_err(|e| anyhow!(e))?
        } else if let Ok(t) = std::env::var("SLUICE_ADMIN_TOKEN") {
            zeroize::Zeroizing::new(t.trim().to_owned())
        } else if let Some(d) = &opts.data {
            let path = d.join(crate::serve::ADMIN_TOKEN_FILE);
            crate::secret_file::read(&path)
                .map_err(|e| anyhow!(e))
                .context("reading the admin token (is --data the directory `serve` uses?)")?
        } else {
            bail!("no admin token: pass --data DIR (or set SLUICE_DATA), --token-file F, or set SLUICE_ADMIN_TOKEN");
        };
        let endpoint = Endpoint::parse(&opts.admin_url, opts.admin_ca_file.as_deref())
            .map_err(|e| anyhow!("--admin: {e}"))?;
        Ok(Client::with_token(endpoint, token))
    }

    /// A client with a known token.
    pub(crate) fn with_token(endpoint: Endpoint, token: zeroize::Zeroizing<String>) -> Client {
        Client { endpoint, token }
    }

    fn send(&self, method: &str, path: &str, body: Option<&[u8]>) -> anyhow::Result<Reply> {
        let reply = self
            .endpoint
            .call(method, path, Some(&self.token), body, CALL_TIMEOUT)
            .map_err(|e| anyhow!(e))?;
        if !(200..300).contains(&reply.status) {
            let msg = serde_json::from_slice::<serde_json::Value>(&reply.body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&reply.body).trim().to_owned());
            bail!("{msg} (HTTP {})", reply.status);
        }
        Ok(reply)
    }

    /// Calls `method path` with an optional JSON body and decodes the JSON reply.
    pub(crate) fn json<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> anyhow::Result<T> {
        let bytes = body.map(serde_json::to_vec).transpose()?;
        let reply = self.send(method, path, bytes.as_deref())?;
        serde_json::from_slice(&reply.body).with_context(|| format!("decoding the reply to {method} {path}"))
    }

    /// `GET path`, decoded.
    pub(crate) fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.json(method::GET, path, None::<&()>)
    }
}

/// HTTP method names.
pub(crate) mod method {
    /// GET.
    pub(crate) const GET: &str = "GET";
    /// POST.
    pub(crate) const POST: &str = "POST";
    /// PUT.
    pub(crate) const PUT: &str = "PUT";
    /// PATCH.
    pub(crate) const PATCH: &str = "PATCH";
    /// DELETE.
    pub(crate) const DELETE: &str = "DELETE";
}

/// Prints `value` as pretty JSON.
pub(crate) fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A path segment, percent-encoded.
pub(crate) fn seg(s: &str) -> String {
    crate::http::percent_encode(s)
}
