//! `sluice-loadtest`: the bundled load tester and mock LLM provider.
//!
//! - `mock`: an OpenAI/Anthropic-compatible upstream with knobs for timing,
//!   framing and faults (the baseline for benchmarks and the fixture for tests).
//! - `run`: open- or closed-loop, streaming-aware load against any endpoint.
//! - `compare`: the same workload against the mock directly, Sluice and nginx,
//!   interleaved in one run.

use clap::{Parser, Subcommand};

mod compare;
mod mock;
mod run;

#[derive(Parser, Debug)]
#[command(
    name = "sluice-loadtest",
    version,
    about = "Sluice load tester and mock LLM provider"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve a mock OpenAI/Anthropic provider.
    Mock(mock::MockArgs),
    /// Drive load against an endpoint and report latency and throughput.
    Run(run::RunArgs),
    /// Compare direct, Sluice and nginx under the same workload, in one run.
    Compare(compare::CompareArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Mock(args) => mock::main(args),
        Command::Run(args) => run::main(args),
        Command::Compare(args) => compare::main(args),
    }
}
