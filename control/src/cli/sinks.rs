//! `sink add|list|remove`: record sinks (NATS JetStream).

use super::{method, print_json, seg, table, Client, Noun};
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Sink verbs (parsed once: the size of `Add` does not matter).
#[allow(clippy::large_enum_variant)]
#[derive(clap::Subcommand, Debug)]
pub(crate) enum SinkCmd {
    /// Add a sink: every record (present and future, never content) is
    /// published to it once, in seq order per data plane.
    Add {
        /// Engine: `nats` (JetStream).
        kind: String,
        /// Sink name: [a-z0-9_-].
        #[arg(long)]
        name: Option<String>,
        /// NATS server URL(s), comma-separated: nats://HOST:4222 or tls://HOST:4222
        /// (no credentials in it: see --creds, --user, --token-file).
        #[arg(long)]
        url: String,
        /// JetStream stream (created with the subject wildcard when absent).
        #[arg(long, default_value = "SLUICE")]
        stream: String,
        /// Subject; `<tenant>` becomes each record's tenant (`_` when none).
        #[arg(long, default_value = "sluice.records.<tenant>")]
        subject: String,
        /// Duplicate window of a stream Sluice creates, seconds.
        #[arg(long)]
        duplicate_window_secs: Option<u64>,
        /// Raise a `sink_stalled` alert when records wait unacknowledged this long, seconds.
        #[arg(long)]
        stall_alert_secs: Option<u64>,
        /// NATS credentials file (user JWT and nkey seed); sealed at rest.
        #[arg(long, conflicts_with_all = ["user", "token_file"])]
        creds: Option<PathBuf>,
        /// User name (with --password-file).
        #[arg(long, requires = "password_file")]
        user: Option<String>,
        /// File holding the password for --user; sealed at rest.
        #[arg(long, requires = "user")]
        password_file: Option<PathBuf>,
        /// File holding an auth token; sealed at rest.
        #[arg(long, conflicts_with = "user")]
        token_file: Option<PathBuf>,
        /// PEM CA certificates to trust (TLS is then required).
        #[arg(long)]
        tls_ca: Option<PathBuf>,
        /// Require TLS (webpki roots unless --tls-ca).
        #[arg(long)]
        tls: bool,
    },
    /// List sinks with their live state (connected, pending, lag, errors).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a sink (retention stops waiting for it).
    Remove {
        /// Sink name.
        name: String,
    },
}

fn read(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if text.trim().is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(text)
}

/// Runs a sink verb.
pub(crate) fn run(cmd: Noun<SinkCmd>) -> anyhow::Result<()> {
    let c = Client::new(&cmd.admin)?;
    match cmd.verb {
        SinkCmd::Add {
            kind,
            name,
            url,
            stream,
            subject,
            duplicate_window_secs,
            stall_alert_secs,
            creds,
            user,
            password_file,
            token_file,
            tls_ca,
            tls,
        } => {
            let name = name.unwrap_or_else(|| kind.clone());
            let secret = |p: Option<PathBuf>| {
                p.as_deref()
                    .map(read)
                    .transpose()
                    .map(|o| o.map(zeroize::Zeroizing::new))
            };
            let creds = secret(creds)?;
            let password = secret(password_file)?;
            let token = secret(token_file)?;
            let tls_ca_pem = tls_ca.as_deref().map(read).transpose()?;
            let body = json!({
                "name": name,
                "kind": kind,
                "url": url,
                "stream": stream,
                "subject": subject,
                "duplicate_window_secs": duplicate_window_secs,
                "stall_alert_secs": stall_alert_secs,
                "tls_ca_pem": tls_ca_pem,
                "tls": tls,
                "creds": creds.as_deref().map(String::as_str),
                "user": user,
                "password": password.as_deref().map(|p| p.trim_end_matches(['\r', '\n'])),
                "token": token.as_deref().map(|t| t.trim()),
            });
            let v: Value = c.json(method::POST, "/v1/sinks", Some(&body))?;
            println!(
                "added sink {} ({} stream {} subject {})",
                v["name"].as_str().unwrap_or_default(),
                v["url"].as_str().unwrap_or_default(),
                v["stream"].as_str().unwrap_or_default(),
                v["subject"].as_str().unwrap_or_default()
            );
        }
        SinkCmd::List { json } => {
            let list: Vec<Value> = c.get("/v1/sinks")?;
            if json {
                return print_json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|s| {
                    let st = &s["status"];
                    vec![
                        s["name"].as_str().unwrap_or_default().to_owned(),
                        s["url"].as_str().unwrap_or_default().to_owned(),
                        format!(
                            "{} {}",
                            s["stream"].as_str().unwrap_or_default(),
                            s["subject"].as_str().unwrap_or_default()
                        ),
                        if st["connected"].as_bool().unwrap_or(false) {
                            "up"
                        } else {
                            "down"
                        }
                        .to_owned(),
                        st["pending"].as_u64().unwrap_or(0).to_string(),
                        format!("{:.1}s", st["lag_seconds"].as_f64().unwrap_or(0.0)),
                        st["published"].as_u64().unwrap_or(0).to_string(),
                        table::opt(st["last_error"].as_str()),
                    ]
                })
                .collect();
            table::print(
                &[
                    "NAME",
                    "URL",
                    "STREAM SUBJECT",
                    "STATE",
                    "PENDING",
                    "LAG",
                    "PUBLISHED",
                    "LAST ERROR",
                ],
                &rows,
            );
        }
        SinkCmd::Remove { name } => {
            let _: Value = c.json(method::DELETE, &format!("/v1/sinks/{}", seg(&name)), None::<&()>)?;
            println!("removed sink {name}");
        }
    }
    Ok(())
}
