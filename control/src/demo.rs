//! `sluice-control demo`.

/// Options of `demo`.
#[derive(clap::Args, Debug)]
pub(crate) struct DemoArgs {
    /// Data directory (default: a new temporary directory).
    #[arg(long)]
    pub(crate) data: Option<std::path::PathBuf>,
    /// First of the consecutive ports to use (default: free ports).
    #[arg(long)]
    pub(crate) port_base: Option<u16>,
}

/// Runs the demo.
pub(crate) fn main(_args: DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
