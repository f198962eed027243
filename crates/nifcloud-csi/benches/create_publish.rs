//! 100 concurrent CreateVolume + ControllerPublishVolume against the emulator with realistic
//! delays, once with the shared poller (one DescribeVolumes per tick for everyone) and once with
//! per-request polling; prints API calls per action and wall time, and the ratio.
//! Then the node plugin's idle RSS (when the `nifcloud-csi-driver` binary sits next to this
//! benchmark, e.g. after `cargo build --release -p nifcloud-csi-driver`).
//!
//! `cargo bench -p nifcloud-csi --bench create_publish [-- --volumes N]`

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use csi_core::capability::mount_capability;
use csi_core::proto::controller_server::Controller;
use csi_core::proto::volume_capability::access_mode::Mode;
use csi_core::proto::{self as csi};
use nifcloud_csi::driver::{DriverOptions, build_controller};
use nifcloud_csi::plan::Membership;
use nifcloud_csi::poller::PollMode;
use nifcloud_emulator::{DelayConfig, Emulator, EmulatorConfig, InstanceConfig, LatencyConfig};
use nifcloud_sdk::{Client, Config, Credentials};
use tonic::Request;

const SERVERS: usize = 20;

fn world() -> EmulatorConfig {
    let mut cfg = EmulatorConfig::default();
    for i in 1..=SERVERS {
        cfg.instances
            .push(InstanceConfig::new(&format!("node{i:02}"), "east-11"));
    }
    // Realistic: seconds for disk transitions, tens of milliseconds per API call.
    cfg.delays = DelayConfig {
        volume_create_ms: 3000,
        volume_attach_ms: 1500,
        volume_detach_ms: 1500,
        volume_extend_ms: 3000,
        ..DelayConfig::default()
    };
    cfg.latency = LatencyConfig {
        default_ms: 60,
        per_action: BTreeMap::from([("DescribeVolumes".to_string(), 150)]),
    };
    cfg
}

fn client(emu: &Emulator) -> Client {
    let (ak, sk) = emu.credentials();
    let cfg = Config::builder()
        .endpoint(emu.endpoint())
        .region_name(&emu.region())
        .credentials(Credentials::new(ak, sk))
        .build()
        .expect("config");
    Client::new(cfg).expect("client")
}

struct Run {
    wall: Duration,
    calls: BTreeMap<String, u64>,
    failures: usize,
}

async fn run(mode: PollMode, volumes: usize) -> Run {
    let emu = Emulator::builder().config(world()).start().await.expect("emulator");
    let opts = DriverOptions {
        membership: Membership::patterns(["node*"]),
        poll_interval: Duration::from_secs(1),
        wait_timeout: Duration::from_secs(120),
        server_cache_ttl: Duration::from_secs(10),
        ..DriverOptions::default()
    };
    let ctl = build_controller(client(&emu), &opts, mode);
    emu.reset_calls();
    let started = Instant::now();
    let tasks: Vec<_> = (0..volumes)
        .map(|i| {
            let ctl = ctl.clone();
            tokio::spawn(async move {
                let cap = mount_capability("ext4", Mode::SingleNodeWriter);
                let vol = ctl
                    .create_volume(Request::new(csi::CreateVolumeRequest {
                        name: format!("pvc-bench-{i:04}"),
                        capacity_range: Some(csi::CapacityRange {
                            required_bytes: 10 << 30,
                            limit_bytes: 0,
                        }),
                        volume_capabilities: vec![cap.clone()],
                        ..Default::default()
                    }))
                    .await?
                    .into_inner()
                    .volume
                    .unwrap_or_default();
                ctl.controller_publish_volume(Request::new(csi::ControllerPublishVolumeRequest {
                    volume_id: vol.volume_id,
                    node_id: format!("node{:02}", 1 + i % SERVERS),
                    volume_capability: Some(cap),
                    ..Default::default()
                }))
                .await?;
                Ok::<(), tonic::Status>(())
            })
        })
        .collect();
    let mut failures = 0;
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                failures += 1;
                eprintln!("  failed: {e}");
            }
            Err(e) => {
                failures += 1;
                eprintln!("  task: {e}");
            }
        }
    }
    let wall = started.elapsed();
    let calls = emu.calls();
    let attached = emu.with_state(|st| st.volumes.values().filter(|v| v.attachment.is_some()).count());
    assert_eq!(attached + failures, volumes, "every published volume is attached");
    drop(ctl);
    emu.shutdown().await;
    Run { wall, calls, failures }
}

fn print_run(label: &str, r: &Run, volumes: usize) {
    let total: u64 = r.calls.values().sum();
    println!(
        "{label}: wall {:.1} s, {total} API calls ({:.2} per volume), {} failed",
        r.wall.as_secs_f64(),
        total as f64 / volumes as f64,
        r.failures
    );
    for (action, n) in &r.calls {
        println!("  {action:<28} {n:>6}  ({:.2} per volume)", *n as f64 / volumes as f64);
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn node_idle_rss() {
    // CSI_DRIVER_BIN names the binary to measure; else the one built next to this benchmark.
    let bin = match std::env::var_os("CSI_DRIVER_BIN") {
        Some(p) => std::path::PathBuf::from(p),
        None => match std::env::current_exe()
            .ok()
            .and_then(|p| p.parent()?.parent().map(|d| d.to_path_buf()))
        {
            Some(dir) => dir.join("nifcloud-csi-driver"),
            None => return,
        },
    };
    if !bin.is_file() {
        println!(
            "node idle RSS: skipped ({} not built; run `cargo build --release -p nifcloud-csi-driver` first)",
            bin.display()
        );
        return;
    }
    let tmp = std::env::temp_dir().join(format!("csi-rss-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&tmp);
    let child = std::process::Command::new(&bin)
        .args([
            "--mode",
            "node",
            "--node-local-limits",
            "--zone",
            "east-11",
            "--node-id",
            "node01",
        ])
        .arg("--endpoint")
        .arg(format!("unix://{}/csi.sock", tmp.display()))
        .env("RUST_LOG", "warn")
        .spawn();
    let Ok(mut child) = child else {
        println!("node idle RSS: could not start {}", bin.display());
        return;
    };
    std::thread::sleep(Duration::from_secs(2));
    match rss_kib(child.id()) {
        Some(kib) => println!(
            "node plugin idle RSS: {kib} KiB ({:.1} MiB), {}",
            kib as f64 / 1024.0,
            bin.display()
        ),
        None => println!("node idle RSS: process exited early"),
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&tmp);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let volumes = args
        .iter()
        .position(|a| a == "--volumes")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(100usize);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "{volumes} concurrent CreateVolume + ControllerPublishVolume; {SERVERS} servers; delays create 3 s, \
         attach 1.5 s, detach 1.5 s; latency 60 ms (DescribeVolumes 150 ms); poll interval 1 s"
    );
    let shared = rt.block_on(run(PollMode::Shared, volumes));
    print_run("shared poller", &shared, volumes);
    let naive = rt.block_on(run(PollMode::PerRequest, volumes));
    print_run("per-request polling", &naive, volumes);
    let dv = |r: &Run| r.calls.get("DescribeVolumes").copied().unwrap_or(0).max(1) as f64;
    let total = |r: &Run| r.calls.values().sum::<u64>().max(1) as f64;
    println!(
        "ratio per-request / shared: DescribeVolumes {:.1}x, all calls {:.1}x, wall time {:.2}x",
        dv(&naive) / dv(&shared),
        total(&naive) / total(&shared),
        naive.wall.as_secs_f64() / shared.wall.as_secs_f64()
    );
    node_idle_rss();
}
