//! The binary reports every configuration problem at once and exits non-zero.

use std::process::Command;

#[test]
fn missing_settings_are_reported_together() {
    let out = Command::new(env!("CARGO_BIN_EXE_nifcloud-cloud-controller-manager"))
        .args([
            "--cloud-config",
            "/nonexistent/cloud.yaml",
            "--leader-elect-lease-duration",
            "1s",
        ])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "NIFCLOUD_ACCESS_KEY_ID",
        "NIFCLOUD_SECRET_ACCESS_KEY",
        "region",
        "/nonexistent/cloud.yaml",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
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
