//! `cargo xtask deploy` / `undeploy` (being written).

use std::path::Path;

/// Flags of `cargo xtask deploy`.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {}

/// Flags of `cargo xtask undeploy`.
#[derive(Debug, clap::Args)]
pub struct UndeployArgs {}

/// Entry point of deploy.
pub fn run(_root: &Path, _args: &DeployArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}

/// Entry point of undeploy.
pub fn run_undeploy(_root: &Path, _args: &UndeployArgs) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
