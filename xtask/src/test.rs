//! `cargo xtask test`: the README's test command.
//!
//! Makes sure the reference clients (the official NIFCLOUD Python SDK and CLI, pinned in
//! `tools/python-requirements.txt`) are installed in `.venv`, then runs every test of the workspace with them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// Options of `cargo xtask test`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Skip the Python venv (the conformance tests against the official SDK then say why they skip).
    #[arg(long)]
    pub no_python: bool,
    /// Extra arguments for `cargo test` (after `--`), for example a test name filter.
    #[arg(last = true)]
    pub cargo_args: Vec<String>,
}

/// Runs the test suite.
pub fn run(root: &Path, args: &Args) -> anyhow::Result<()> {
    let mut test = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    test.current_dir(root)
        .args(["test", "--workspace", "--all-features"])
        .args(&args.cargo_args);
    if !args.no_python {
        let python = ensure_venv(root)?;
        test.env("NIFCLOUD_PYTHON", &python);
    }
    eprintln!("xtask test: {test:?}");
    let status = test.status().context("cannot run cargo test")?;
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    Ok(())
}

/// Creates `.venv` with the pinned reference clients unless it already has them; returns its python.
pub fn ensure_venv(root: &Path) -> anyhow::Result<PathBuf> {
    let venv = root.join(".venv");
    let python = venv.join("bin").join("python");
    let requirements = root.join("tools").join("python-requirements.txt");
    let stamp = venv.join(".requirements-installed");
    let wanted =
        std::fs::read_to_string(&requirements).with_context(|| format!("cannot read {}", requirements.display()))?;
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(python);
    }
    if !python.exists() {
        eprintln!("xtask test: creating {}", venv.display());
        run_checked(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        )?;
    }
    eprintln!(
        "xtask test: installing the official NIFCLOUD SDK and CLI into {}",
        venv.display()
    );
    run_checked(
        Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements),
        "pip install",
    )?;
    std::fs::write(&stamp, wanted).with_context(|| format!("cannot write {}", stamp.display()))?;
    Ok(python)
}

fn run_checked(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("cannot start {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}
