//! Build-time tasks: SDK code generation, images, manifests, deploy, demo.
//!
//! Run as `cargo xtask <command>`; each command lives in its own module and adds one variant to [`Command`].

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod codegen;
mod demo;
mod deploy;
mod images;
mod oci;
mod render;
mod test;

/// Command-line entry point of the build-time tasks.
#[derive(Debug, Parser)]
#[command(name = "xtask", about = "Build-time tasks for the NIFCLOUD Kubernetes workspace")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// One task. Add a variant (and a module) per new task.
#[derive(Debug, Subcommand)]
enum Command {
    /// Regenerate the SDK's typed operations from the vendored API model (`--check` only compares).
    Codegen(codegen::Args),
    /// Run every test of the workspace, with the official NIFCLOUD Python SDK and CLI installed in `.venv`.
    Test(test::Args),
    /// Replay the 2019 article locally against the embedded emulator (the README's first command).
    Demo(demo::Args),
    /// Build static binaries and OCI images of ccm, csi and emulator (layouts + archives); `--push` uploads them.
    Images(images::Args),
    /// Print the deploy/ manifests with substitutions (plain Rust, no kubectl needed).
    Render(render::RenderOptions),
    /// Server-side apply the manifests to the cluster in KUBECONFIG and wait for the rollouts.
    Deploy(deploy::DeployArgs),
    /// Delete what `deploy` created.
    Undeploy(deploy::UndeployArgs),
}

/// The workspace root (the parent of this crate's directory).
fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Codegen(args) => codegen::run(&workspace_root(), &args),
        Command::Test(args) => test::run(&workspace_root(), &args),
        Command::Demo(args) => demo::run(&args),
        Command::Images(args) => images::run(&workspace_root(), &args),
        Command::Render(args) => render::run(&workspace_root(), &args),
        Command::Deploy(args) => deploy::run(&workspace_root(), &args),
        Command::Undeploy(args) => deploy::run_undeploy(&workspace_root(), &args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }
}
