//! The binary reports a start-up error in one line (every configuration problem in it) and exits with 1.

use std::process::{Command, Output};

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nifcloud-cloud-controller-manager"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn missing_settings_are_reported_together() {
    let out = run(
        &[
            "--cloud-config",
            "/nonexistent/cloud.yaml",
            "--leader-elect-lease-duration",
            "1s",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "NIFCLOUD_ACCESS_KEY_ID",
        "NIFCLOUD_SECRET_ACCESS_KEY",
        "region",
        "/nonexistent/cloud.yaml",
        "leader election needs lease-duration > renew-deadline",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

#[test]
fn a_start_up_error_is_one_line_whatever_rust_backtrace_says() {
    let backtrace = [("RUST_BACKTRACE", "1"), ("RUST_LIB_BACKTRACE", "1")];
    // A flag value the framework refuses (a lease shorter than its renew deadline), with a complete configuration
    // otherwise; then a configuration with nothing in it.
    let bad_flag = run(
        &["--leader-elect-lease-duration", "1s"],
        &[
            backtrace[0],
            backtrace[1],
            ("NIFCLOUD_ACCESS_KEY_ID", "AK"),
            ("NIFCLOUD_SECRET_ACCESS_KEY", "SK"),
            ("NIFCLOUD_REGION", "jp-east-1"),
        ],
    );
    let missing = run(&[], &backtrace);
    let cases = [
        (
            bad_flag,
            "nifcloud-cloud-controller-manager: invalid configuration: leader election needs lease-duration > \
             renew-deadline > retry-period > 0 (got 1s, 10s, 2s)\n",
        ),
        (
            missing,
            "nifcloud-cloud-controller-manager: invalid configuration: NIFCLOUD_ACCESS_KEY_ID is not set; \
             NIFCLOUD_SECRET_ACCESS_KEY is not set; no region: set NIFCLOUD_REGION or `region` in the cloud config\n",
        ),
    ];
    for (out, want) in cases {
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), want);
        assert!(out.stdout.is_empty(), "{out:?}");
    }
}

#[test]
fn help_names_the_provider_flags() {
    let out = Command::new(env!("CARGO_BIN_EXE_nifcloud-cloud-controller-manager"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("--cloud-config") && text.contains("--nifcloud-endpoint") && text.contains("--cluster-name"));
}
