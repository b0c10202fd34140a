//! Being written.

/// Arguments.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct CompareArgs {}

/// Entry point.
pub(crate) fn main(_args: CompareArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
