//! `console link`: a one-time sign-in link for the web console.

use super::{method, Client, Noun};
use serde::Deserialize;

/// Console verbs.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum ConsoleCmd {
    /// Print a link that signs a browser in to the console once, within ten
    /// minutes, with this CLI token's scope. The code rides in the URL's
    /// fragment, which browsers never send to a server.
    Link,
}

#[derive(Deserialize)]
struct Issued {
    path: String,
    expires_ms: u64,
}

/// A sign-in link on `admin_url`, and the minutes it stays good.
pub(crate) fn sign_in_link(c: &Client, admin_url: &str) -> anyhow::Result<(String, u64)> {
    let issued: Issued = c.json(method::POST, "/v1/console/sign-in", None::<&()>)?;
    let minutes = issued
        .expires_ms
        .saturating_sub(crate::clock::now_ms())
        .div_ceil(60_000);
    Ok((
        format!("{}{}", admin_url.trim_end_matches('/'), issued.path),
        minutes,
    ))
}

/// Runs a console verb.
pub(crate) fn run(cmd: Noun<ConsoleCmd>) -> anyhow::Result<()> {
    let c = Client::new(&cmd.admin)?;
    match cmd.verb {
        ConsoleCmd::Link => {
            let (link, minutes) = sign_in_link(&c, &cmd.admin.admin_url)?;
            eprintln!("one use, within {minutes} minutes:");
            println!("{link}");
        }
    }
    Ok(())
}
