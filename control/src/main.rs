//! `sluice-control`: the Sluice control plane and its CLI.
//!
//! `serve` runs the control process (admin API, data plane sync API, the redb
//! writer); `demo` runs the whole stack on one machine; every other
//! subcommand is the CLI, talking to a running `serve` over the admin API.

mod admin_api;
mod app;
mod audit;
mod billing;
mod cache;
mod cli;
mod clock;
mod console;
mod demo;
mod export;
mod http;
mod metrics;
mod names;
mod ops;
mod privacy;
mod retention;
mod secret_file;
mod serve;
mod sinks;
mod snapshot;
mod store;
mod sync_api;
mod time;
mod tls;
mod vault;

use clap::{Parser, Subcommand};
use cli::fleet::{DataplaneCmd, UpstreamCmd};
use cli::keys::{ApikeyCmd, ProviderKeyCmd};
use cli::master_key::MasterKeyCmd;
use cli::records::{LogsArgs, UsageArgs};
use cli::route::RouteCmd;
use cli::tenant::TenantCmd;
use cli::Noun;

#[derive(Parser, Debug)]
#[command(name = "sluice-control", version, about = "Sluice control plane and CLI")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the control process: admin API, sync API, store.
    Serve(serve::ServeArgs),
    /// Run the whole stack on this machine: control, mock provider, data plane.
    Demo(demo::DemoArgs),
    /// Manage the master key (offline).
    #[command(subcommand)]
    MasterKey(MasterKeyCmd),
    /// Tenants.
    Tenant(Noun<TenantCmd>),
    /// Gateway keys (sk-sluice-...).
    Apikey(Noun<ApikeyCmd>),
    /// Tenants' provider keys (BYOK), sealed at rest.
    ProviderKey(Noun<ProviderKeyCmd>),
    /// Provider endpoints.
    Upstream(Noun<UpstreamCmd>),
    /// Model routes.
    Route(Noun<RouteCmd>),
    /// Data plane enrollment.
    Dataplane(Noun<DataplaneCmd>),
    /// A tenant's request records.
    Logs(LogsArgs),
    /// A tenant's usage by day and model.
    Usage(UsageArgs),
    /// Model prices (USD per million tokens).
    Price(Noun<cli::billing::PriceCmd>),
    /// Tenant policies (rules, model allow-list, PII).
    Policy(Noun<cli::policy::PolicyCmd>),
    /// Rate limits per tenant or gateway key.
    Limit(Noun<cli::billing::LimitCmd>),
    /// Low-balance alerts.
    Alerts(cli::billing::AlertsArgs),
    /// Remove what retention no longer allows, now.
    Purge(cli::privacy::PurgeArgs),
    /// Write everything stored of a tenant to one JSON file.
    Export(cli::privacy::ExportArgs),
    /// The audit trail of admin actions.
    Audit(Noun<cli::privacy::AuditCmd>),
    /// Named admin tokens with scopes (admin, read, tenant:<id>).
    Token(Noun<cli::tokens::TokenCmd>),
    /// The response cache: opt-in per tenant and model, with a TTL.
    Cache(Noun<cli::cache::CacheCmd>),
    /// The web console at /ui: a one-time sign-in link.
    Console(Noun<cli::console::ConsoleCmd>),
    /// Record sinks: every record published to NATS JetStream, exactly once.
    Sink(Noun<cli::sinks::SinkCmd>),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match Cli::parse().command {
        Command::Serve(a) => serve::main(a),
        Command::Demo(a) => demo::main(a),
        Command::MasterKey(c) => cli::master_key::run(c),
        Command::Tenant(c) => cli::tenant::run(c),
        Command::Apikey(c) => cli::keys::run_apikey(c),
        Command::ProviderKey(c) => cli::keys::run_provider_key(c),
        Command::Upstream(c) => cli::fleet::run_upstream(c),
        Command::Route(c) => cli::route::run(c),
        Command::Dataplane(c) => cli::fleet::run_dataplane(c),
        Command::Logs(a) => cli::records::logs(a),
        Command::Usage(a) => cli::records::usage(a),
        Command::Price(c) => cli::billing::run_price(c),
        Command::Policy(c) => cli::policy::run(c),
        Command::Limit(c) => cli::billing::run_limit(c),
        Command::Alerts(a) => cli::billing::alerts(a),
        Command::Purge(a) => cli::privacy::purge(a),
        Command::Export(a) => cli::privacy::export(a),
        Command::Audit(c) => cli::privacy::audit(c),
        Command::Token(c) => cli::tokens::run(c),
        Command::Cache(c) => cli::cache::run(c),
        Command::Console(c) => cli::console::run(c),
        Command::Sink(c) => cli::sinks::run(c),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
