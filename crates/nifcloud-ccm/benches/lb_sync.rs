//! Load-balancer sync economy against the emulator with 100 ms per-call latency: 200 nodes, 500 `LoadBalancer`
//! Services, driven through the provider's trait methods with bounded concurrency (like the framework's
//! `--concurrent-service-syncs` workers). Prints API calls per Service for the initial sync, a steady-state
//! resync and one node joining, the time each takes, the process's peak RSS (VmHWM), and the ratio to the
//! original CCM's describe pattern (one DescribeInstances and one DescribeLoadBalancers per Service per sync).
//!
//! `cargo bench -p nifcloud-ccm --bench lb_sync` (env `LB_SYNC_SERVICES`, `LB_SYNC_NODES`, `LB_SYNC_WORKERS`
//! override the sizes).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudprovider::LoadBalancer;
use cloudprovider::TargetNode;
use cloudprovider::k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use futures::StreamExt;
use nifcloud_ccm::{NifcloudArgs, NifcloudProvider, Settings};
use nifcloud_emulator::{Emulator, EmulatorConfig, InstanceConfig, LatencyConfig, VipRange};

const CLUSTER: &str = "bench";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn service(i: usize) -> Service {
    let mut s = Service::default();
    s.metadata.name = Some(format!("svc{i}"));
    s.metadata.namespace = Some("bench".into());
    s.metadata.uid = Some(format!("{i:08x}-aaaa-bbbb-cccc-000000000000"));
    s.spec = Some(ServiceSpec {
        type_: Some("LoadBalancer".into()),
        ports: Some(vec![ServicePort {
            port: 80,
            node_port: Some(30000 + i as i32),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        ..Default::default()
    });
    s
}

fn node_name(i: usize) -> String {
    format!("node{i:03}")
}

async fn targets(emu: &Emulator, n: usize) -> Vec<TargetNode> {
    let ids: BTreeMap<String, (String, String)> = emu.with_state(|st| {
        st.instances
            .values()
            .map(|i| (i.name.clone(), (i.zone.clone(), i.unique_id.clone())))
            .collect()
    });
    (1..=n)
        .map(|i| {
            let name = node_name(i);
            let (zone, uid) = ids.get(&name).cloned().unwrap_or_default();
            TargetNode {
                provider_id: Some(format!("nifcloud:///{zone}/{uid}")),
                name,
                ..Default::default()
            }
        })
        .collect()
}

struct Phase {
    name: &'static str,
    calls: BTreeMap<String, u64>,
    elapsed: Duration,
}

impl Phase {
    fn total(&self) -> u64 {
        self.calls.values().sum()
    }
    fn describes(&self) -> u64 {
        self.calls
            .iter()
            .filter(|(a, _)| a.trim_start_matches("Nifty").starts_with("Describe"))
            .map(|(_, n)| n)
            .sum()
    }
}

async fn run_phase(
    name: &'static str,
    emu: &Emulator,
    p: &Arc<NifcloudProvider>,
    services: usize,
    workers: usize,
    nodes: Arc<Vec<TargetNode>>,
    update: bool,
) -> Phase {
    emu.reset_calls();
    let start = Instant::now();
    let errors = futures::stream::iter(0..services)
        .map(|i| {
            let p = p.clone();
            let nodes = nodes.clone();
            async move {
                let svc = service(i);
                if update {
                    p.load_balancers()
                        .update_load_balancer(CLUSTER, &svc, &nodes)
                        .await
                        .map(drop)
                } else {
                    p.load_balancers()
                        .ensure_load_balancer(CLUSTER, &svc, &nodes)
                        .await
                        .map(drop)
                }
            }
        })
        .buffer_unordered(workers)
        .filter(|r| futures::future::ready(r.is_err()))
        .count()
        .await;
    let elapsed = start.elapsed();
    assert_eq!(errors, 0, "{name}: {errors} Services failed");
    Phase {
        name,
        calls: emu.calls(),
        elapsed,
    }
}

#[tokio::main]
async fn main() {
    let services = env_usize("LB_SYNC_SERVICES", 500);
    let node_count = env_usize("LB_SYNC_NODES", 200);
    let workers = env_usize("LB_SYNC_WORKERS", 20);
    let mut cfg = EmulatorConfig {
        instances: Vec::new(),
        ..EmulatorConfig::sample()
    };
    for i in 1..=node_count {
        let zone = if i % 2 == 0 { "east-12" } else { "east-11" };
        let (hi, lo) = ((i / 250) as u8, (i % 250) as u8 + 1);
        cfg.instances.push(
            InstanceConfig::new(&node_name(i), zone).with_ips(&format!("203.0.{hi}.{lo}"), &format!("10.1.{hi}.{lo}")),
        );
    }
    cfg.vip_range = VipRange {
        first: Ipv4Addr::new(10, 200, 0, 1),
        last: Ipv4Addr::new(10, 200, 15, 254),
    };
    cfg.latency = LatencyConfig {
        default_ms: 100,
        ..Default::default()
    };
    let emu = Emulator::builder().config(cfg).start().await.expect("emulator");
    let (k, s) = emu.credentials();
    let endpoint = emu.endpoint();
    let env = move |n: &str| match n {
        "NIFCLOUD_ACCESS_KEY_ID" => Some(k.clone()),
        "NIFCLOUD_SECRET_ACCESS_KEY" => Some(s.clone()),
        "NIFCLOUD_REGION" => Some("jp-east-1".into()),
        _ => None,
    };
    let settings = Settings::resolve(
        &NifcloudArgs {
            cloud_config: None,
            endpoint: Some(endpoint),
        },
        &env,
    )
    .expect("settings");
    let ttl = settings.cache_ttl;
    let p = Arc::new(NifcloudProvider::new(settings).expect("provider"));
    let hwm_before = vm_hwm_kib();
    let nodes = Arc::new(targets(&emu, node_count).await);

    let initial = run_phase("initial sync", &emu, &p, services, workers, nodes.clone(), false).await;
    // A resync comes long after the TTL (the framework's periods are minutes): wait it out.
    tokio::time::sleep(ttl + Duration::from_secs(1)).await;
    let resync = run_phase("steady-state resync", &emu, &p, services, workers, nodes.clone(), false).await;
    let joined = node_count + 1;
    emu.add_instance(&InstanceConfig::new(&node_name(joined), "east-11").with_ips("203.0.9.9", "10.1.9.9"))
        .expect("add node");
    tokio::time::sleep(ttl + Duration::from_secs(1)).await;
    let nodes_plus = Arc::new(targets(&emu, joined).await);
    let join = run_phase("one node joining", &emu, &p, services, workers, nodes_plus, true).await;
    let hwm = vm_hwm_kib();

    println!(
        "lb_sync: {node_count} nodes, {services} LoadBalancer Services, {workers} workers, 100 ms per call, cache TTL {ttl:?}"
    );
    println!(
        "{:<22} {:>8} {:>10} {:>10} {:>12} {:>10} {:>16}",
        "phase", "calls", "calls/svc", "describes", "orig.descr.", "ratio", "time to converge"
    );
    for ph in [&initial, &resync, &join] {
        let original = 2 * services as u64;
        println!(
            "{:<22} {:>8} {:>10.3} {:>10} {:>12} {:>10.4} {:>14.2}s",
            ph.name,
            ph.total(),
            ph.total() as f64 / services as f64,
            ph.describes(),
            original,
            ph.describes() as f64 / original as f64,
            ph.elapsed.as_secs_f64()
        );
        println!("    {:?}", ph.calls);
    }
    println!(
        "peak RSS (VmHWM, provider + in-process emulator): {} KiB ({} KiB before the syncs)",
        hwm, hwm_before
    );
    println!(
        "original CCM describe pattern: 1 DescribeInstances + 1 DescribeLoadBalancers per Service per sync = {} \
         describes per phase; ratio = ours / original",
        2 * services
    );
    emu.shutdown().await;
}
