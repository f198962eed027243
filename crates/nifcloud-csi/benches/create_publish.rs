//! 100 concurrent CreateVolume + ControllerPublishVolume against the emulator with realistic
//! delays, with the shared poller (one DescribeVolumes serves every waiter due at the time) and
//! with per-request polling, alternately, five runs each; prints each run, the API calls per
//! action (medians), the median wall times side by side with their ratio, the median
//! DescribeVolumes counts with theirs, and whether the goals hold: shared no slower than
//! per-request, and at least 20 times fewer DescribeVolumes.
//! Then the node plugin's idle RSS (when the `nifcloud-csi-driver` binary sits next to this
//! benchmark, e.g. after `cargo build --release -p nifcloud-csi-driver`).
//!
//! `cargo bench -p nifcloud-csi --bench create_publish [-- --volumes N] [--runs N]`

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
/// The poll interval: how long a waiter goes between two looks of its own.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// At least this many times fewer DescribeVolumes with the shared poller than per request.
const FEWER_CALLS_GOAL: f64 = 20.0;

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
        poll_interval: POLL_INTERVAL,
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

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn describes(r: &Run) -> u64 {
    r.calls.get("DescribeVolumes").copied().unwrap_or(0)
}

/// The medians of one mode's runs.
struct Summary {
    wall: f64,
    describes: f64,
    calls: BTreeMap<String, f64>,
    failures: usize,
}

fn summarize(runs: &[Run]) -> Summary {
    let actions: std::collections::BTreeSet<&String> = runs.iter().flat_map(|r| r.calls.keys()).collect();
    let calls = actions
        .into_iter()
        .map(|a| {
            let mut v: Vec<f64> = runs
                .iter()
                .map(|r| r.calls.get(a).copied().unwrap_or(0) as f64)
                .collect();
            (a.clone(), median(&mut v))
        })
        .collect();
    Summary {
        wall: median(&mut runs.iter().map(|r| r.wall.as_secs_f64()).collect::<Vec<_>>()),
        describes: median(&mut runs.iter().map(|r| describes(r) as f64).collect::<Vec<_>>()),
        calls,
        failures: runs.iter().map(|r| r.failures).sum(),
    }
}

fn print_summary(label: &str, s: &Summary, runs: usize, volumes: usize) {
    let total: f64 = s.calls.values().sum();
    println!(
        "{label}: median of {runs}: wall {:.2} s, {total:.0} API calls ({:.2} per volume), {} failed in all",
        s.wall,
        total / volumes as f64,
        s.failures
    );
    for (action, n) in &s.calls {
        println!("  {action:<28} {n:>8.1}  ({:.2} per volume)", n / volumes as f64);
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

fn flag(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let volumes = flag(&args, "--volumes", 100);
    let runs = flag(&args, "--runs", 5).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let w = world();
    println!(
        "{volumes} concurrent CreateVolume + ControllerPublishVolume; {SERVERS} servers; delays create {:.1} s, \
         attach {:.1} s, detach {:.1} s; latency {} ms (DescribeVolumes {} ms); poll interval {:.1} s; \
         {runs} run(s) of each mode, alternating",
        w.delays.volume_create_ms as f64 / 1000.0,
        w.delays.volume_attach_ms as f64 / 1000.0,
        w.delays.volume_detach_ms as f64 / 1000.0,
        w.latency.default_ms,
        w.latency.for_action("DescribeVolumes"),
        POLL_INTERVAL.as_secs_f64(),
    );
    let (mut shared, mut naive) = (Vec::new(), Vec::new());
    for i in 1..=runs {
        for (mode, label, out) in [
            (PollMode::Shared, "shared     ", &mut shared),
            (PollMode::PerRequest, "per-request", &mut naive),
        ] {
            let r = rt.block_on(run(mode, volumes));
            println!(
                "run {i}/{runs} {label}: wall {:.2} s, DescribeVolumes {}, {} failed",
                r.wall.as_secs_f64(),
                describes(&r),
                r.failures
            );
            out.push(r);
        }
    }
    let (s, n) = (summarize(&shared), summarize(&naive));
    print_summary("shared poller", &s, runs, volumes);
    print_summary("per-request polling", &n, runs, volumes);
    let fewer = n.describes / s.describes.max(1.0);
    println!(
        "median wall time:       shared {:.2} s | per-request {:.2} s | shared / per-request {:.3}",
        s.wall,
        n.wall,
        s.wall / n.wall
    );
    println!(
        "median DescribeVolumes: shared {:.0} | per-request {:.0} | {fewer:.1}x fewer with the shared poller; \
         all calls {:.1}x fewer",
        s.describes,
        n.describes,
        n.calls.values().sum::<f64>() / s.calls.values().sum::<f64>().max(1.0)
    );
    let verdict = |ok: bool| if ok { "yes" } else { "NO" };
    println!(
        "goals: shared median <= per-request median: {}; DescribeVolumes >= {FEWER_CALLS_GOAL:.0}x fewer: {}",
        verdict(s.wall <= n.wall),
        verdict(fewer >= FEWER_CALLS_GOAL)
    );
    node_idle_rss();
}
