//! The CCM's own memory at scale, and its NIFCLOUD calls: the binary as its own process, against the
//! emulator binary in another process and the harness' real kube-apiserver (`../shared/harness`, started or
//! reused through `k8s_harness`), with 200 Nodes and 500 `type: LoadBalancer` Services that the bench creates
//! before the binary starts.
//!
//! `cargo bench -p nifcloud-cloud-controller-manager --bench ccm_memory`
//!
//! The bench builds the emulator with `cargo build --release -p nifcloud-emulator` (a no-op when it is up to
//! date). Without the harness it prints why and skips. Sizes and timings: `CCM_MEMORY_SERVICES` (500),
//! `CCM_MEMORY_NODES` (200), `CCM_MEMORY_RESYNC` (`--service-resync-period`, 30s), `CCM_MEMORY_ROUNDS`
//! (steady-state resync rounds measured, 2), `CCM_MEMORY_TIMEOUT` (seconds to wait for the initial sync, 600).
//!
//! The binary measured is the one the images ship: the bench builds it as `cargo xtask images` does (`--profile
//! image --target x86_64-unknown-linux-musl`, static, musl's allocator); where that build fails (no musl target or
//! C compiler for musl) it measures the glibc release build instead and says so. `CCM_MEMORY_BINARY` runs another
//! build of the binary instead (to profile it, a script that `exec`s `heaptrack` on an unstripped build, say: the
//! RSS then printed is the profiler's, and the bench kills only the process it started, so kill the profiled one
//! after).
//!
//! What it prints: for the initial sync (the binary starts with every object already there, as after a restart or
//! an upgrade, and it ends when every Service has `status.loadBalancer.ingress`) and for each steady-state resync
//! round (the binary's own `--service-resync-period`, every Service re-ensured in one round), the NIFCLOUD calls
//! by action (counted by the emulator's `/admin/calls`), the describe calls among them, the Services re-ensured
//! (counted from the binary's debug log), and the binary's peak RSS (`VmHWM` of `/proc/PID/status`) and current
//! RSS (`VmRSS`), against the 20 MiB target.
//!
//! The binary runs as deployed (`deploy/base/ccm`: leader election, `--concurrent-service-syncs=2`, the HTTPS
//! metrics server on) except: its lease has a name of its own; `--node-status-update-frequency=1h` keeps the
//! cloud-node controller's periodic address refresh (5 min by default, a DescribeInstances of its own) out of the
//! resync rounds measured; and the `cloud-node-lifecycle` controller is off, because on a shared API server it would
//! delete other suites' Nodes, which have no server in this emulator (it reads the Node informer the service
//! controller has anyway, so its memory is its loop). The Nodes look like a kubelet's: Ready, addresses, node info,
//! capacity and 30 container images, their providerID set (the binary initializes nothing).
//!
//! Like any cloud controller manager the binary serves every LoadBalancer Service and Node of the API server; on a
//! shared harness, objects of other suites add their own calls, and the bench says how many there are. Everything
//! it creates carries the label `app.kubernetes.io/managed-by=nifcloud-ccm-memory-bench` and is deleted at the end
//! (the Services' finalizers removed first), and both child processes are killed, also when the bench fails.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use nifcloud_emulator::{EmulatorConfig, InstanceConfig, VipRange};

const BENCH: &str = "ccm_memory";
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const OWNER: &str = "nifcloud-ccm-memory-bench";
const ZONES: [&str; 2] = ["east-11", "east-12"];
/// The target of the issue: a CCM pod that fits in 20 MiB.
const TARGET_MIB: f64 = 20.0;
/// Cluster IPs for the bench's Services (the harness' own range, a /24, holds too few), in a ServiceCIDR of the
/// bench's own.
const SERVICE_CIDR: &str = "10.96.0.0/20";
/// A resync round is over when no call came for this long.
const QUIET: Duration = Duration::from_secs(3);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// What the bench is asked to do.
#[derive(Clone, Debug)]
struct Sizes {
    services: usize,
    nodes: usize,
    resync: String,
    rounds: usize,
    timeout: Duration,
}

/// The child processes, killed (and reaped) when the bench ends, whatever happened.
#[derive(Default)]
struct Children(Mutex<Vec<(&'static str, Child)>>);

impl Children {
    fn add(&self, what: &'static str, child: Child) -> u32 {
        let pid = child.id();
        self.0.lock().unwrap().push((what, child));
        pid
    }

    fn kill_all(&self) {
        for (what, mut child) in self.0.lock().unwrap().drain(..) {
            if let Err(e) = child.kill() {
                eprintln!("{BENCH}: cannot kill the {what} (pid {}): {e}", child.id());
            }
            let _ = child.wait();
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// The fields `names` of `/proc/PID/status` of process `pid`, in KiB (0 when absent).
fn status_kib<const N: usize>(pid: u32, names: [&str; N]) -> [u64; N] {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    names.map(|name| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    })
}

/// `VmHWM` (peak) and `VmRSS` (now) of process `pid`, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let [peak, now] = status_kib(pid, ["VmHWM:", "VmRSS:"]);
    (peak, now)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// One HTTP/1.1 request to the emulator's admin API; the body of a 2xx answer.
fn admin(addr: SocketAddr, method: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect to the emulator");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    write!(
        stream,
        "{method} /admin/{path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send an admin request");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read an admin reply");
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    assert!(head.starts_with("HTTP/1.1 2"), "{method} /admin/{path}: {head}");
    body.to_owned()
}

/// The emulator's call counts by action since the last reset.
fn calls(emulator: SocketAddr) -> BTreeMap<String, u64> {
    serde_json::from_str(&admin(emulator, "GET", "calls")).expect("call counts")
}

fn describes(calls: &BTreeMap<String, u64>) -> u64 {
    calls
        .iter()
        .filter(|(a, _)| a.trim_start_matches("Nifty").starts_with("Describe"))
        .map(|(_, n)| n)
        .sum()
}

/// The node (and server) name of node `i`: 1-15 alphanumerics, as NIFCLOUD wants.
fn node_name(sfx: &str, i: usize) -> String {
    format!("m{sfx}n{i:03}")
}

fn unique_id(i: usize) -> String {
    format!("i-{:08x}", 0x0c0f_0000 + i)
}

fn ips(i: usize) -> (String, String) {
    let (hi, lo) = (i / 250, i % 250 + 1);
    (format!("203.0.{hi}.{lo}"), format!("10.1.{hi}.{lo}"))
}

/// The emulator's world: one running server per Node, and VIPs for every Service.
fn emulator_config(sfx: &str, nodes: usize) -> EmulatorConfig {
    let mut cfg = EmulatorConfig::default();
    for i in 0..nodes {
        let (public, private) = ips(i);
        let mut server = InstanceConfig::new(&node_name(sfx, i), ZONES[i % 2]).with_ips(&public, &private);
        server.unique_id = Some(unique_id(i));
        cfg.instances.push(server);
    }
    cfg.vip_range = VipRange {
        first: Ipv4Addr::new(10, 200, 0, 1),
        last: Ipv4Addr::new(10, 200, 63, 254),
    };
    cfg
}

/// The directory cargo puts release binaries in (this bench runs from its `deps/`).
fn release_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("target directory")
}

/// Builds the emulator binary (`cargo build --release -p nifcloud-emulator`) and returns its path.
fn emulator_binary() -> PathBuf {
    let path = release_dir().join("nifcloud-emulator");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = Command::new(&cargo)
        .args(["build", "--release", "--quiet", "-p", "nifcloud-emulator"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status();
    match built {
        Ok(s) if s.success() && path.is_file() => path,
        other => panic!(
            "the emulator binary is needed at {}: `cargo build --release -p nifcloud-emulator` ({other:?})",
            path.display()
        ),
    }
}

/// The binary measured and what it is: `CCM_MEMORY_BINARY` when set; else the images' build of it, `cargo build
/// --profile image --target x86_64-unknown-linux-musl` as `cargo xtask images` runs it (C compiler for musl:
/// `CC_x86_64_unknown_linux_musl`, else `musl-gcc`); else, when that build fails here (no musl target or C
/// compiler), the bench's own release build, with the reason.
fn ccm_binary() -> (PathBuf, String) {
    if let Some(path) = std::env::var_os("CCM_MEMORY_BINARY") {
        return (path.into(), "the binary CCM_MEMORY_BINARY names".into());
    }
    const TARGET: &str = "x86_64-unknown-linux-musl";
    let cc = std::env::var("CC_x86_64_unknown_linux_musl").unwrap_or_else(|_| "musl-gcc".into());
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("{BENCH}: cargo build --profile image --target {TARGET} -p nifcloud-cloud-controller-manager (CC={cc})");
    let built = Command::new(&cargo)
        .args(["build", "--profile", "image", "--locked", "--quiet", "--target", TARGET])
        .args(["-p", "nifcloud-cloud-controller-manager"])
        .env("CC_x86_64_unknown_linux_musl", &cc)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status();
    let path = release_dir()
        .parent()
        .expect("target directory")
        .join(TARGET)
        .join("image/nifcloud-cloud-controller-manager");
    match built {
        Ok(s) if s.success() && path.is_file() => (path, "the images' binary (musl, profile image)".into()),
        other => (
            env!("CARGO_BIN_EXE_nifcloud-cloud-controller-manager").into(),
            format!(
                "the glibc release binary, because the images' musl build failed here ({other:?}; it needs the musl \
                 target and a C compiler for musl)"
            ),
        ),
    }
}

/// Starts the emulator on a free port; returns its address.
fn start_emulator(children: &Children, config: &Path, log: &Path) -> SocketAddr {
    let mut child = Command::new(emulator_binary())
        .args(["--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(log).expect("emulator log")))
        .spawn()
        .expect("spawn the emulator");
    let stdout = child.stdout.take().expect("emulator stdout");
    children.add("emulator", child);
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    // Keep reading, so that the emulator never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let url = first
        .split_once("listening on ")
        .map(|(_, u)| u.trim())
        .unwrap_or_else(|| panic!("the emulator did not say where it listens: {first:?}"));
    let host = url.trim_start_matches("http://").split('/').next().unwrap_or_default();
    host.parse()
        .unwrap_or_else(|e| panic!("emulator address {host:?}: {e}"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A Node as a kubelet with `--cloud-provider=external` leaves it once the CCM initialized it.
fn node(sfx: &str, i: usize) -> (Node, serde_json::Value) {
    let name = node_name(sfx, i);
    let zone = ZONES[i % 2];
    let node: Node = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": name,
            "labels": {
                MANAGED_BY: OWNER,
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "e-large",
                "topology.kubernetes.io/region": "jp-east-1",
                "topology.kubernetes.io/zone": zone,
            },
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {"providerID": format!("nifcloud:///{zone}/{}", unique_id(i)), "podCIDR": format!("10.244.{i}.0/24")},
    }))
    .expect("node");
    let (public, private) = ips(i);
    let condition = |type_: &str, status: &str, reason: &str| {
        serde_json::json!({
            "type": type_, "status": status, "reason": reason, "message": format!("kubelet says {reason}"),
            "lastHeartbeatTime": "2025-01-01T00:00:00Z", "lastTransitionTime": "2025-01-01T00:00:00Z",
        })
    };
    let images: Vec<serde_json::Value> = (0..30)
        .map(|k| {
            serde_json::json!({
                "names": [
                    format!("registry.example.com/team{k}/app@sha256:{:064x}", k * 7919 + i),
                    format!("registry.example.com/team{k}/app:v1.{k}.0"),
                ],
                "sizeBytes": 50_000_000 + k * 1_000_000,
            })
        })
        .collect();
    let status = serde_json::json!({"status": {
        "addresses": [
            {"type": "InternalIP", "address": private},
            {"type": "ExternalIP", "address": public},
            {"type": "Hostname", "address": name},
        ],
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID"),
            condition("Ready", "True", "KubeletReady"),
        ],
        "capacity": {"cpu": "4", "memory": "16393492Ki", "pods": "110", "ephemeral-storage": "103080204Ki"},
        "allocatable": {"cpu": "4", "memory": "16291092Ki", "pods": "110", "ephemeral-storage": "94998715850"},
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": format!("{:032x}", i), "systemUUID": format!("{:08x}-0000-0000-0000-000000000000", i),
            "bootID": format!("{:08x}-1111-1111-1111-111111111111", i), "kernelVersion": "6.8.0-49-generic",
            "osImage": "Ubuntu 24.04.1 LTS", "containerRuntimeVersion": "containerd://1.7.24",
            "kubeletVersion": "v1.33.0", "kubeProxyVersion": "v1.33.0", "operatingSystem": "linux",
            "architecture": "amd64",
        },
        "images": images,
    }});
    (node, status)
}

fn service(i: usize) -> Service {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("lb{i:04}"), "labels": {MANAGED_BY: OWNER}},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": format!("app{i}")},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        },
    }))
    .expect("service")
}

/// Runs `f` over `items`, 16 at a time; panics naming `what` at the first failure.
async fn each<T, F, Fut>(what: &str, items: impl IntoIterator<Item = T>, f: F)
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = Result<(), kube::Error>>,
{
    futures::stream::iter(items)
        .map(f)
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
}

async fn create_objects(client: &Client, sfx: &str, namespace: &str, sizes: &Sizes) {
    let cidrs: Api<ServiceCIDR> = Api::all(client.clone());
    let cidr: ServiceCIDR = serde_json::from_value(serde_json::json!({
        "metadata": {"name": namespace, "labels": {MANAGED_BY: OWNER}},
        "spec": {"cidrs": [SERVICE_CIDR]},
    }))
    .expect("service CIDR");
    cidrs
        .create(&PostParams::default(), &cidr)
        .await
        .expect("create a ServiceCIDR for the Services' cluster IPs");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": namespace, "labels": {MANAGED_BY: OWNER}}
    }))
    .expect("namespace");
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("create the namespace");
    let nodes: Api<Node> = Api::all(client.clone());
    each("create Nodes", 0..sizes.nodes, |i| {
        let nodes = nodes.clone();
        async move {
            let (n, status) = node(sfx, i);
            nodes.create(&PostParams::default(), &n).await?;
            nodes
                .patch_status(&n.name_any(), &PatchParams::default(), &Patch::Merge(&status))
                .await
                .map(drop)
        }
    })
    .await;
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    each("create Services", 0..sizes.services, |i| {
        let services = services.clone();
        async move { services.create(&PostParams::default(), &service(i)).await.map(drop) }
    })
    .await;
}

/// Deletes what the bench created: Services (finalizers first, the binary is gone), the Namespace, the Nodes and
/// the ServiceCIDR (which goes once its last cluster IP is released).
async fn delete_objects(client: &Client, namespace: &str) {
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let mine = ListParams::default().labels(&format!("{MANAGED_BY}={OWNER}"));
    let names: Vec<String> = services
        .list_metadata(&mine)
        .await
        .map(|l| l.items.iter().map(ResourceExt::name_any).collect())
        .unwrap_or_default();
    let unfinalize = serde_json::json!({"metadata": {"finalizers": null}});
    futures::stream::iter(names)
        .for_each_concurrent(16, |name| {
            let services = services.clone();
            let unfinalize = &unfinalize;
            async move {
                let _ = services
                    .patch(&name, &PatchParams::default(), &Patch::Merge(unfinalize))
                    .await;
            }
        })
        .await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if let Err(e) = namespaces.delete(namespace, &DeleteParams::default()).await {
        eprintln!("{BENCH}: cleanup: cannot delete Namespace {namespace}: {e}");
    }
    let nodes: Api<Node> = Api::all(client.clone());
    if let Err(e) = nodes.delete_collection(&DeleteParams::default(), &mine).await {
        eprintln!("{BENCH}: cleanup: cannot delete the bench's Nodes: {e}");
    }
    let cidrs: Api<ServiceCIDR> = Api::all(client.clone());
    if let Err(e) = cidrs.delete(namespace, &DeleteParams::default()).await {
        eprintln!("{BENCH}: cleanup: cannot delete ServiceCIDR {namespace}: {e}");
    }
}

/// How many Services of `namespace` have an ingress address.
async fn with_ingress(services: &Api<Service>) -> usize {
    let list = services.list(&ListParams::default()).await.map(|l| l.items);
    list.unwrap_or_default()
        .iter()
        .filter(|s| {
            s.status
                .as_ref()
                .and_then(|st| st.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .is_some_and(|i| !i.is_empty())
        })
        .count()
}

/// Objects of the API server that the binary serves but the bench did not create.
async fn foreign_objects(client: &Client) -> (usize, usize) {
    let nodes: Api<Node> = Api::all(client.clone());
    let services: Api<Service> = Api::all(client.clone());
    let not_mine = ListParams::default().labels(&format!("{MANAGED_BY}!={OWNER}"));
    let n = nodes.list_metadata(&not_mine).await.map(|l| l.items.len()).unwrap_or(0);
    let s = services
        .list(&not_mine)
        .await
        .map(|l| {
            l.items
                .iter()
                .filter(|s| s.spec.as_ref().and_then(|sp| sp.type_.as_deref()) == Some("LoadBalancer"))
                .count()
        })
        .unwrap_or(0);
    (n, s)
}

/// How many Services the binary re-ensured for the resync period, from its debug log.
fn resync_ensures(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("service decision") && l.contains("reason: Resync"))
        .count()
}

/// One measured phase.
struct Phase {
    calls: BTreeMap<String, u64>,
    ensured: usize,
    elapsed: Duration,
    peak_kib: u64,
    now_kib: u64,
}

impl Phase {
    fn total(&self) -> u64 {
        self.calls.values().sum()
    }
}

/// Waits for the next resync round after the call counts were reset: from its first call (or re-ensured
/// Service) until every one of `services` was re-ensured and neither a call nor an ensure came for [`QUIET`].
async fn resync_round(emulator: SocketAddr, pid: u32, log: &Path, period: Duration, services: usize) -> Phase {
    let ensured_before = resync_ensures(log);
    let deadline = Instant::now() + 2 * period + Duration::from_secs(60);
    let (mut last_calls, mut last_ensured) = (0, 0);
    let mut since = Instant::now();
    let mut started = None;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let total: u64 = calls(emulator).values().sum();
        let ensured = resync_ensures(log) - ensured_before;
        if (total, ensured) != (last_calls, last_ensured) {
            (last_calls, last_ensured) = (total, ensured);
            since = Instant::now();
            started.get_or_insert(since);
        } else if let Some(start) = started
            && ensured >= services
            && since.elapsed() >= QUIET
        {
            let (peak_kib, now_kib) = rss_kib(pid);
            return Phase {
                calls: calls(emulator),
                ensured,
                elapsed: since - start,
                peak_kib,
                now_kib,
            };
        }
        assert!(
            Instant::now() < deadline,
            "no complete resync round ({ensured} of {services} Services re-ensured) within two periods ({period:?}) \
             and a minute: see {}",
            log.display()
        );
    }
}

async fn scenario(client: Client, kubeconfig: PathBuf, sizes: Sizes, sfx: String, children: Arc<Children>) {
    let (binary, which) = ccm_binary();
    let namespace = format!("ccm-memory-{sfx}");
    let dir = std::env::temp_dir().join(format!("{BENCH}-{sfx}"));
    std::fs::create_dir_all(&dir).expect("work directory");
    let config = dir.join("emulator.json");
    let emulator_cfg = emulator_config(&sfx, sizes.nodes);
    std::fs::write(&config, serde_json::to_vec(&emulator_cfg).expect("emulator config")).expect("write config");
    let emulator = start_emulator(&children, &config, &dir.join("emulator.log"));

    create_objects(&client, &sfx, &namespace, &sizes).await;
    let (foreign_nodes, foreign_services) = foreign_objects(&client).await;

    let period = cloudprovider::args::parse_duration(&sizes.resync).expect("CCM_MEMORY_RESYNC");
    let log = dir.join("ccm.log");
    let (key, secret) = emulator_cfg.credentials.iter().next().expect("credentials");
    admin(emulator, "DELETE", "calls");
    let started = Instant::now();
    let ccm = Command::new(&binary)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            format!("--nifcloud-endpoint=http://{emulator}/api/"),
            "--cluster-name=ccm-memory".into(),
            "--leader-elect=true".into(),
            format!("--leader-elect-resource-name=ccm-memory-{sfx}"),
            "--leader-elect-resource-namespace=default".into(),
            "--concurrent-service-syncs=2".into(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", free_port()),
            format!("--service-resync-period={}", sizes.resync),
            "--node-status-update-frequency=1h".into(),
            "--controllers=*,-cloud-node-lifecycle".into(),
        ])
        .env_clear()
        .env("NIFCLOUD_ACCESS_KEY_ID", key)
        .env("NIFCLOUD_SECRET_ACCESS_KEY", secret)
        .env("NIFCLOUD_REGION", &emulator_cfg.region)
        .env("RUST_LOG", "info,cloudprovider::service=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).expect("ccm log")))
        .spawn()
        .expect("spawn the binary");
    let pid = children.add("cloud-controller-manager", ccm);

    let services: Api<Service> = Api::namespaced(client.clone(), &namespace);
    let deadline = started + sizes.timeout;
    loop {
        if with_ingress(&services).await == sizes.services {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the initial sync did not finish within {:?}: see {}",
            sizes.timeout,
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (peak_kib, now_kib) = rss_kib(pid);
    let initial = Phase {
        calls: calls(emulator),
        ensured: sizes.services,
        elapsed: started.elapsed(),
        peak_kib,
        now_kib,
    };
    admin(emulator, "DELETE", "calls");
    let mut rounds = Vec::new();
    for _ in 0..sizes.rounds {
        rounds.push(resync_round(emulator, pid, &log, period, sizes.services).await);
        admin(emulator, "DELETE", "calls");
    }

    println!(
        "{BENCH}: {which}, against the emulator binary and the harness' kube-apiserver: {} Nodes, {} \
         LoadBalancer Services, --service-resync-period={}, --concurrent-service-syncs=2",
        sizes.nodes, sizes.services, sizes.resync
    );
    if foreign_nodes + foreign_services > 0 {
        println!(
            "note: the API server also holds {foreign_nodes} Nodes and {foreign_services} LoadBalancer Services of \
             others, which the binary serves too: their calls are in the counts"
        );
    }
    println!(
        "initial sync: {} Services, {} calls (describe {}), {:.1} s, peak RSS {:.1} MiB (now {:.1} MiB)",
        initial.ensured,
        initial.total(),
        describes(&initial.calls),
        initial.elapsed.as_secs_f64(),
        mib(initial.peak_kib),
        mib(initial.now_kib)
    );
    println!("    {:?}", initial.calls);
    for (i, round) in rounds.iter().enumerate() {
        println!(
            "steady-state resync {}: {} Services re-ensured, {} calls (describe {} per resync), {:.1} s, peak RSS \
             {:.1} MiB (now {:.1} MiB), target ≤ {TARGET_MIB} MiB",
            i + 1,
            round.ensured,
            round.total(),
            describes(&round.calls),
            round.elapsed.as_secs_f64(),
            mib(round.peak_kib),
            mib(round.now_kib)
        );
        println!("    {:?}", round.calls);
    }
    let peak = rounds.last().unwrap_or(&initial).peak_kib;
    println!(
        "peak RSS {:.1} MiB: {} the {TARGET_MIB} MiB target",
        mib(peak),
        if mib(peak) <= TARGET_MIB { "within" } else { "OVER" }
    );
    let [file, anon] = status_kib(pid, ["RssFile:", "RssAnon:"]);
    let size = std::fs::metadata(&binary).map_or(0, |m| m.len());
    println!(
        "    of the RSS now: {:.1} MiB mapped from the binary's file ({:.1} MiB on disk: code and read-only data), \
         {:.1} MiB anonymous (heap, stacks, relocated data)",
        mib(file),
        size as f64 / 1024.0 / 1024.0,
        mib(anon)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let sizes = Sizes {
        services: env_or("CCM_MEMORY_SERVICES", 500),
        nodes: env_or("CCM_MEMORY_NODES", 200),
        resync: env_or("CCM_MEMORY_RESYNC", "30s".to_owned()),
        rounds: env_or("CCM_MEMORY_ROUNDS", 2),
        timeout: Duration::from_secs(env_or("CCM_MEMORY_TIMEOUT", 600)),
    };
    let Some(harness) = k8s_harness::harness(BENCH, false) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let kubeconfig = kube::config::Kubeconfig::read_from(&harness.kubeconfig).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .expect("kube config");
        let client = Client::try_from(config).expect("kube client");
        let sfx = format!("{:06x}", std::process::id() & 0xff_ffff);
        let namespace = format!("ccm-memory-{sfx}");
        let children = Arc::new(Children::default());
        let outcome = tokio::spawn(scenario(
            client.clone(),
            harness.kubeconfig.clone(),
            sizes,
            sfx,
            children.clone(),
        ))
        .await;
        children.kill_all();
        delete_objects(&client, &namespace).await;
        if let Err(error) = outcome {
            match error.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(error) => panic!("{BENCH} did not finish: {error}"),
            }
        }
    });
}
