//! Runs the official NIFCLOUD Python SDK and CLI (nifcloud==1.17.0, nifcloud-cli==1.17.0) against
//! an in-process emulator and checks that every check passed and every emulated action was called.
//!
//! Python comes from `NIFCLOUD_PYTHON`, else `<workspace>/.venv/bin/python`. Without one the test
//! prints why and passes, unless `NIFCLOUD_REQUIRE_PYTHON=1`, in which case it fails.

use std::path::{Path, PathBuf};

use nifcloud_emulator::{DelayConfig, Emulator, EmulatorConfig};

fn find_python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NIFCLOUD_PYTHON")
        && !p.is_empty()
    {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    venv.exists().then_some(venv)
}

fn python_has_sdk(python: &Path) -> bool {
    std::process::Command::new(python)
        .args(["-c", "import nifcloud, botocore"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_and_cli_agree_with_the_emulator() {
    let required = std::env::var("NIFCLOUD_REQUIRE_PYTHON").is_ok_and(|v| v == "1");
    let python = match find_python() {
        Some(p) if python_has_sdk(&p) => p,
        other => {
            let why = match other {
                Some(p) => format!("{} cannot import nifcloud/botocore", p.display()),
                None => "no NIFCLOUD_PYTHON and no <workspace>/.venv/bin/python".to_owned(),
            };
            assert!(!required, "NIFCLOUD_REQUIRE_PYTHON=1 but {why}");
            eprintln!("skipping official client conformance: {why}");
            return;
        }
    };
    let cli = python.parent().map(|d| d.join("nifcloud")).filter(|p| p.exists());
    let mut cfg = EmulatorConfig::sample();
    cfg.delays = DelayConfig::uniform(200);
    let emu = Emulator::builder().config(cfg).start().await.expect("emulator starts");
    let (ak, sk) = emu.credentials();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/official_client.py");
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg(&script)
        .args([
            "--endpoint",
            &emu.base_url(),
            "--access-key",
            &ak,
            "--secret-key",
            &sk,
            "--region",
            &emu.region(),
        ])
        .env("HOME", std::env::temp_dir())
        .env_remove("NIFCLOUD_ACCESS_KEY_ID")
        .env_remove("NIFCLOUD_SECRET_ACCESS_KEY");
    if let Some(cli) = &cli {
        cmd.args(["--cli", &cli.to_string_lossy()]);
    }
    let out = tokio::time::timeout(std::time::Duration::from_secs(300), cmd.output())
        .await
        .expect("script finishes within 5 minutes")
        .expect("script runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON summary; stderr:\n{stderr}"));
    let summary: serde_json::Value = serde_json::from_str(line).expect("summary is JSON");
    let passed = summary["passed"].as_u64().unwrap_or(0);
    let failed = summary["failed"].as_u64().unwrap_or(u64::MAX);
    eprintln!("official client conformance: {passed} checks passed, {failed} failed");
    assert_eq!(failed, 0, "failures: {:#}", summary["failures"]);
    assert!(passed >= 100, "only {passed} checks ran");
    let missing: Vec<&str> = nifcloud_emulator::api::action_names()
        .into_iter()
        .filter(|a| emu.call_count(a) == 0)
        .collect();
    assert!(
        missing.is_empty(),
        "actions never called by the official client: {missing:?}"
    );
    emu.shutdown().await;
}
