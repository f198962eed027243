//! The built binary, configured only through its flags and environment, serving the controller
//! against the emulator: csi-core's sanity suite passes over its socket, /metrics answers, and
//! SIGTERM stops it cleanly (socket removed).

use std::process::{Command, Stdio};
use std::time::Duration;

use csi_core::sanity::{SanityConfig, run};
use nifcloud_emulator::{Emulator, EmulatorConfig};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(19809)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_binary_passes_sanity_and_stops_on_sigterm() {
    let emu = Emulator::builder()
        .config(EmulatorConfig::sample())
        .start()
        .await
        .unwrap();
    let (ak, sk) = emu.credentials();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("csi.sock");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nifcloud-csi-driver"))
        .args([
            "--mode",
            "controller",
            "--cluster-instances",
            "node*",
            "--poll-interval-ms",
            "100",
        ])
        .arg("--endpoint")
        .arg(format!("unix://{}", sock.display()))
        .arg("--metrics-address")
        .arg(format!("127.0.0.1:{port}"))
        .env_clear()
        .env("NIFCLOUD_ACCESS_KEY_ID", ak)
        .env("NIFCLOUD_SECRET_ACCESS_KEY", sk)
        .env("NIFCLOUD_DEFAULT_REGION", emu.region())
        .env("NIFCLOUD_ENDPOINT_URL", emu.endpoint())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start the driver");
    for _ in 0..200 {
        if sock.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(sock.exists(), "the driver did not create its socket");
    let mut cfg = SanityConfig::new(&format!("unix://{}", sock.display()));
    cfg.node_id = Some("node1".into());
    let report = run(&cfg).await;
    assert!(report.all_passed(), "{report}");

    let body = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok::<_, std::io::Error>(out)
    })
    .await
    .unwrap()
    .unwrap();
    assert!(body.contains("csi_rpc_requests_total"), "{body}");
    assert!(
        body.contains("nifcloud_api_calls_total{action=\"CreateVolume\",outcome=\"success\"}"),
        "{body}"
    );

    let pid = i32::try_from(child.id()).unwrap();
    // SIGTERM via kill(1): no unsafe code needed.
    let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(!sock.exists(), "socket removed on shutdown");
    emu.shutdown().await;
}

#[test]
fn controller_mode_refuses_to_start_without_cluster_membership() {
    let out = Command::new(env!("CARGO_BIN_EXE_nifcloud-csi-driver"))
        .args(["--mode", "controller", "--endpoint", "unix:///tmp/never.sock"])
        .env_clear()
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--cluster-instances"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one clear line, no backtrace: {err}");
}
