//! Build-time tasks: SDK code generation, images, manifests, deploy, demo.
//!
//! Run as `cargo xtask <command>`; each command lives in its own module and adds one variant to [`Command`].

use std::path::PathBuf;
use std::process::ExitCode;

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

/// An error as the one line `cargo xtask` prints: the cause chain (`outer: inner: ...`), each message's lines
/// joined, a cause left out when the message before it already says it (some libraries' errors repeat their
/// source), and never a backtrace, whatever `RUST_BACKTRACE` / `RUST_LIB_BACKTRACE` say (a failed command is not a
/// bug; the message says what to do).
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let msg = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if msg.is_empty() || parts.last().is_some_and(|p| p.contains(&msg)) {
            continue;
        }
        parts.push(msg);
    }
    parts.join(": ")
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
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

    #[test]
    fn errors_are_one_line_with_their_causes_and_no_backtrace() {
        // (that no backtrace follows, even under RUST_BACKTRACE=1, is checked on the binary in tests/deploy_cli.rs)
        let e = anyhow::anyhow!("connection refused\n  (os error 111)")
            .context("apply ServiceAccount kube-system/x")
            .context("deploy");
        assert_eq!(
            one_line(&e),
            "deploy: apply ServiceAccount kube-system/x: connection refused (os error 111)"
        );
        let plain = anyhow::anyhow!("timed out after 1s waiting for: Deployment kube-system/a: 0/1 available");
        assert_eq!(
            one_line(&plain),
            "timed out after 1s waiting for: Deployment kube-system/a: 0/1 available"
        );
        // a library error that repeats its source in its own message says it once
        #[derive(Debug)]
        struct Repeats(std::io::Error);
        impl std::fmt::Display for Repeats {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "failed to read kubeconfig: {}", self.0)
            }
        }
        impl std::error::Error for Repeats {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::new(Repeats(io)).context("connect to the cluster");
        assert_eq!(
            one_line(&e),
            "connect to the cluster: failed to read kubeconfig: no such file"
        );
    }
}
