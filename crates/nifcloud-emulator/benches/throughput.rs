//! Request throughput of the emulator: DescribeVolumes with 1,000 volumes, and mixed mutating
//! traffic from many concurrent clients. Prints figures; asserts nothing about speed.
//!
//! `cargo bench -p nifcloud-emulator --bench throughput` (env `BENCH_SECS`, default 5 per phase;
//! `BENCH_CLIENTS`, default 16).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nifcloud_emulator::wire::{Params, SignatureMethod, encode_body, sign_params};
use nifcloud_emulator::{Emulator, EmulatorConfig, InstanceConfig};

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    endpoint: String,
    host: String,
    ak: String,
    sk: String,
}

impl Client {
    async fn call(&self, pairs: &[(&str, &str)]) -> (u16, usize) {
        let mut p = Params::from_pairs(pairs.iter().copied());
        p.insert("Version", "3.0");
        sign_params(
            &mut p,
            &self.host,
            &self.ak,
            &self.sk,
            SignatureMethod::HmacSha256,
            time::OffsetDateTime::now_utc(),
        );
        let r = self
            .http
            .post(&self.endpoint)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode_body(&p))
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        let n = r.bytes().await.map(|b| b.len()).unwrap_or(0);
        (status, n)
    }
}

struct Stats {
    latencies_us: Vec<u64>,
    bytes: u64,
    errors: u64,
}

fn report(name: &str, clients: usize, elapsed: Duration, mut all: Vec<Stats>) {
    let mut lat: Vec<u64> = all.iter_mut().flat_map(|s| s.latencies_us.drain(..)).collect();
    lat.sort_unstable();
    let n = lat.len().max(1);
    let pct = |p: f64| lat.get(((n as f64 * p) as usize).min(n - 1)).copied().unwrap_or(0) as f64 / 1000.0;
    let bytes: u64 = all.iter().map(|s| s.bytes).sum();
    let errors: u64 = all.iter().map(|s| s.errors).sum();
    let secs = elapsed.as_secs_f64();
    println!(
        "{name}: {clients} clients, {} requests in {secs:.1}s = {:.0} req/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {:.1} MB/s of replies; {errors} unexpected errors",
        lat.len(),
        lat.len() as f64 / secs,
        pct(0.50),
        pct(0.99),
        pct(1.0),
        bytes as f64 / secs / 1e6,
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let clients: usize = std::env::var("BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let mut cfg = EmulatorConfig::sample();
    for i in 0..72 {
        cfg.instances.push(InstanceConfig::new(&format!("bench{i}"), "east-11"));
    }
    for i in 0..clients {
        cfg.instances.push(InstanceConfig::new(&format!("mix{i}"), "east-12"));
    }
    let emu = Emulator::builder().config(cfg).start().await.expect("emulator");
    let (ak, sk) = emu.credentials();
    let client = Client {
        http: reqwest::Client::new(),
        endpoint: emu.endpoint(),
        host: emu.addr().to_string(),
        ak,
        sk,
    };

    // Seed 1,000 volumes (14 per bench instance).
    let t = Instant::now();
    let mut made = 0;
    'seed: for i in 0..72 {
        for _ in 0..14 {
            if made == 1000 {
                break 'seed;
            }
            let inst = format!("bench{i}");
            let (s, _) = client
                .call(&[
                    ("Action", "CreateVolume"),
                    ("Size", "100"),
                    ("DiskType", "6"),
                    ("InstanceId", &inst),
                ])
                .await;
            assert_eq!(s, 200);
            made += 1;
        }
    }
    println!(
        "seeded {made} volumes in {:.2}s (sequential CreateVolume)",
        t.elapsed().as_secs_f64()
    );
    let (_, size) = client.call(&[("Action", "DescribeVolumes")]).await;
    println!(
        "one DescribeVolumes reply with {made} volumes is {:.0} KB",
        size as f64 / 1024.0
    );

    // Phase 1: DescribeVolumes of everything.
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move {
                let mut s = Stats {
                    latencies_us: Vec::new(),
                    bytes: 0,
                    errors: 0,
                };
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let (status, n) = c.call(&[("Action", "DescribeVolumes")]).await;
                    s.latencies_us.push(t.elapsed().as_micros() as u64);
                    s.bytes += n as u64;
                    s.errors += u64::from(status != 200);
                }
                s
            })
        })
        .collect();
    let stats: Vec<Stats> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    report("DescribeVolumes (1,000 volumes)", clients, start.elapsed(), stats);

    // Phase 2: mixed mutating traffic; each client owns one instance and cycles a volume through
    // create -> describe -> modify -> extend -> detach -> delete, plus a full DescribeVolumes every
    // 10th cycle and a DescribeInstances every 5th.
    let cycles = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let c = client.clone();
            let cycles = cycles.clone();
            tokio::spawn(async move {
                let mut s = Stats {
                    latencies_us: Vec::new(),
                    bytes: 0,
                    errors: 0,
                };
                let inst = format!("mix{i}");
                let mut k = 0u64;
                while Instant::now() < deadline {
                    let vol = format!("m{i}x{k}");
                    let steps: Vec<Vec<(&str, &str)>> = vec![
                        vec![
                            ("Action", "CreateVolume"),
                            ("Size", "100"),
                            ("InstanceId", &inst),
                            ("VolumeId", &vol),
                        ],
                        vec![("Action", "DescribeVolumes"), ("VolumeId.1", &vol)],
                        vec![
                            ("Action", "ModifyVolumeAttribute"),
                            ("VolumeId", &vol),
                            ("Attribute", "description"),
                            ("Value", "bench"),
                        ],
                        vec![("Action", "ExtendVolumeSize"), ("VolumeId", &vol)],
                        vec![("Action", "DetachVolume"), ("VolumeId", &vol), ("Agreement", "true")],
                        vec![("Action", "DeleteVolume"), ("VolumeId", &vol)],
                    ];
                    for step in &steps {
                        let t = Instant::now();
                        let (status, n) = c.call(step).await;
                        s.latencies_us.push(t.elapsed().as_micros() as u64);
                        s.bytes += n as u64;
                        s.errors += u64::from(status != 200);
                    }
                    if k.is_multiple_of(5) {
                        let t = Instant::now();
                        let (status, n) = c.call(&[("Action", "DescribeInstances")]).await;
                        s.latencies_us.push(t.elapsed().as_micros() as u64);
                        s.bytes += n as u64;
                        s.errors += u64::from(status != 200);
                    }
                    if k.is_multiple_of(10) {
                        let t = Instant::now();
                        let (status, n) = c.call(&[("Action", "DescribeVolumes")]).await;
                        s.latencies_us.push(t.elapsed().as_micros() as u64);
                        s.bytes += n as u64;
                        s.errors += u64::from(status != 200);
                    }
                    k += 1;
                    cycles.fetch_add(1, Ordering::Relaxed);
                }
                s
            })
        })
        .collect();
    let stats: Vec<Stats> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    let elapsed = start.elapsed();
    report("mixed mutating traffic", clients, elapsed, stats);
    println!(
        "  = {:.0} full volume lifecycles/s",
        cycles.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64()
    );

    // Phase 3: small reads only (single-volume DescribeVolumes), to show per-request overhead.
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move {
                let mut s = Stats {
                    latencies_us: Vec::new(),
                    bytes: 0,
                    errors: 0,
                };
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let (status, n) = c.call(&[("Action", "DescribeRegions")]).await;
                    s.latencies_us.push(t.elapsed().as_micros() as u64);
                    s.bytes += n as u64;
                    s.errors += u64::from(status != 200);
                }
                s
            })
        })
        .collect();
    let stats: Vec<Stats> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    report("DescribeRegions (tiny reply)", clients, start.elapsed(), stats);
    emu.shutdown().await;
}
