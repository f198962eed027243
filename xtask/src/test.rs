//! `cargo xtask test`: the README's test command.
//!
//! Makes sure the reference clients (the official NIFCLOUD Python SDK and CLI, pinned in
//! `tools/python-requirements.txt`) are installed in `.venv`, starts the real Kubernetes control plane of
//! `../shared/harness` when it is there (kube-apiserver, kube-controller-manager; the suites that need it
//! find it running, and it is stopped again afterwards if this command started it), then runs every test of
//! the workspace. Without the harness those suites say why they skip; under `NIFCLOUD_REQUIRE_HARNESS=1`
//! (CI) its absence is an error before anything runs.

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
    let started = start_harness()?;
    eprintln!("xtask test: {test:?}");
    let status = test.status().context("cannot run cargo test");
    if started {
        eprintln!("xtask test: stopping the Kubernetes harness this run started");
        if let Err(e) = k8s_harness::stop(true) {
            eprintln!("xtask test: {e}");
        }
    }
    let status = status?;
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    Ok(())
}

/// Starts the harness control plane when `../shared/harness` is there; returns whether this call started it.
fn start_harness() -> anyhow::Result<bool> {
    let dir = match k8s_harness::dir() {
        Ok(dir) => dir,
        Err(reason) if k8s_harness::required() => {
            bail!("{}=1 but {reason}", k8s_harness::REQUIRE_ENV)
        }
        Err(reason) => {
            eprintln!("xtask test: {reason}; the suites that need a real control plane will say why they skip");
            return Ok(false);
        }
    };
    if k8s_harness::running() {
        eprintln!(
            "xtask test: reusing the running Kubernetes harness of {}",
            dir.display()
        );
        return Ok(false);
    }
    eprintln!(
        "xtask test: starting the Kubernetes harness of {} (kube-apiserver, kube-controller-manager)",
        dir.display()
    );
    // A clean cluster: forget what an interrupted earlier run may have left in etcd.
    let _ = k8s_harness::stop(true);
    let harness = k8s_harness::start().map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!("xtask test: kubeconfig {}", harness.kubeconfig.display());
    Ok(true)
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
