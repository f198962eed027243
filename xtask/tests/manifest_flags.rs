//! The flags and literal env the rendered manifests give our binaries are accepted by those binaries.
//!
//! Runs each binary with the container's args followed by `--version`: clap parses (and validates) everything
//! before `--version` and then exits 0, so an unknown flag or a bad value fails the test. The binaries are
//! looked up next to the xtask binary (target/debug); a binary that is not built there is skipped with a message
//! (build them with `cargo build -p nifcloud-cloud-controller-manager -p nifcloud-csi-driver -p nifcloud-emulator`).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn render(overlay: &str) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["render", "--overlay", overlay])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "xtask render: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    // as kustomize reads YAML: only true/false are booleans
    serde_saphyr::from_multiple_with_options(&text, serde_saphyr::options! { strict_booleans: true }).unwrap()
}

#[test]
fn rendered_args_are_accepted_by_the_binaries() {
    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_xtask"))
        .parent()
        .unwrap()
        .to_path_buf();
    let mut checked = 0;
    for overlay in ["production", "emulator"] {
        for obj in render(overlay) {
            let containers = obj
                .pointer("/spec/template/spec/containers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for c in containers {
                let Some(command) = c
                    .get("command")
                    .and_then(Value::as_array)
                    .and_then(|a| a.first())
                    .and_then(Value::as_str)
                else {
                    continue;
                };
                let Some(name) = command.strip_prefix("/usr/local/bin/") else {
                    continue;
                };
                let bin = bin_dir.join(name);
                if !bin.exists() {
                    eprintln!("skipping {name}: not built in {}", bin_dir.display());
                    continue;
                }
                let args: Vec<String> = c
                    .get("args")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str().map(str::to_owned))
                    .collect();
                let mut cmd = Command::new(&bin);
                cmd.args(&args).arg("--version").env_clear();
                for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
                    if let (Some(k), Some(v)) = (
                        e.get("name").and_then(Value::as_str),
                        e.get("value").and_then(Value::as_str),
                    ) {
                        cmd.env(k, v);
                    }
                }
                let out = cmd.output().unwrap();
                assert!(
                    out.status.success(),
                    "{overlay}: {name} {args:?} rejected: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                checked += 1;
            }
        }
    }
    eprintln!("checked {checked} containers' flags against their binaries");
}
