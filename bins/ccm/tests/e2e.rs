//! End-to-end: the real binary against a real API server and an in-process NIFCLOUD emulator.
//!
//! The API server is the cluster named by `NIFCLOUD_E2E_KUBECONFIG` when that is set (a real, disposable cluster
//! whose nodes run with `--cloud-provider=external`), else the project's test harness (a real kube-apiserver and
//! kube-controller-manager of Kubernetes 1.36, without kubelets; `../shared/harness`), started or reused by
//! [`k8s_harness::cluster`]. When neither is available the test prints why it skips (and fails instead under
//! `NIFCLOUD_REQUIRE_HARNESS=1`, as in CI).
//!
//! The test creates three Nodes of its own (with the uninitialized taint, an InternalIP in their status and no
//! kubelet, so never Ready) and one emulated server per Node whose private IP is the Node's InternalIP. Server
//! names differ from Node names on purpose: the provider has to match them by address. Every other Node of the
//! cluster is covered by emulated servers too, those present before the binary starts and those that appear
//! while it runs, because the binary's node lifecycle controller deletes a not-Ready Node whose server does not
//! exist:
//!
//! - on a real cluster, as before, each gets one server the provider matches (its providerID's, else one with
//!   its InternalIP, else one named like it), so the binary initializes it and registers it behind the load
//!   balancer like the test's own Nodes;
//! - on the harness, where other Nodes are other suites' test objects, each gets servers that make the match
//!   ambiguous (two named like the Node but for letter case, else two with its InternalIP): the provider then
//!   reports an error for that Node and the binary leaves it alone (no initialization, no address or taint
//!   change, no deletion, not a load balancer backend). A Node that already has a NIFCLOUD providerID cannot be
//!   made ambiguous: it gets a server with that id and its InternalIP, so it is kept and becomes a backend (the
//!   binary may add its Hostname address and beta zone labels, as on any initialized Node). A Node with another
//!   provider's providerID needs nothing: the provider reports an error for it.
//!
//! A Node with none of providerID, InternalIP and a server-like name cannot be covered (the test says so) and
//! would be deleted. A Node that appears while the binary runs is covered as soon as the test's watch sees it
//! (milliseconds); the binary's lifecycle pass, every 2 s, would have to fall in between to see it first. Like
//! any cloud controller manager the binary serves every LoadBalancer Service of the cluster: on a shared API
//! server, do not run it at the same time as another one (such as `crates/cloudprovider`'s end-to-end suite;
//! cargo runs test binaries one after another). Leftover LoadBalancer Services of other runs do not disturb the
//! checks, which look only at this test's load balancer.
//!
//! Checks: the Nodes are initialized (their server's providerID, zone, region, instance type, addresses); the
//! original article's nginx Service gets an external IP with every node registered; annotation and port changes
//! reach the load balancer; deleting the Service deletes the load balancer; the Node of a terminated server is
//! deleted. Names carry a random suffix, and every object the test creates (Nodes, a Namespace holding the
//! Service) is deleted at the end, also when the test fails.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::hash::BuildHasher;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_harness::eventually;
use k8s_openapi::api::core::v1::{Namespace, Node, NodeAddress, NodeSpec, Service, Taint};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use nifcloud_cloud::ProviderId;
use nifcloud_emulator::{Emulator, EmulatorConfig, InstanceConfig, NetworkInterfaceConfig};

const TEST: &str = "e2e_against_a_cluster";
const SVC: &str = "nginx-e2e";
const ZONE: &str = "east-11";
const UNINITIALIZED: &str = "node.cloudprovider.kubernetes.io/uninitialized";
/// Label on every Node and Namespace this test creates.
const OWNER_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "nifcloud-ccm-e2e");
/// How many Nodes (and servers behind them) the test creates.
const OWN_NODES: usize = 3;

struct Ccm(Child);

impl Drop for Ccm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Aborts a spawned task when dropped (also when the test panics).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The name of the load balancer whose VIP is `vip`.
fn lb_with_vip(emu: &Emulator, vip: &str) -> Option<String> {
    emu.with_state(|st| {
        st.load_balancers
            .values()
            .find(|lb| lb.vip == vip)
            .map(|lb| lb.name.clone())
    })
}

/// `(port, balancing type, network volume, server names registered)` of each port of load balancer `name`. Only
/// this one: on a shared API server the binary also serves other LoadBalancer Services (leftovers of other runs).
fn lb_ports(emu: &Emulator, name: &str) -> Vec<(i64, i64, i64, BTreeSet<String>)> {
    emu.with_state(|st| {
        st.load_balancers
            .get(name)
            .map(|lb| {
                lb.ports
                    .iter()
                    .map(|p| {
                        let names = st
                            .instances
                            .values()
                            .filter(|i| p.instances.contains(&i.unique_id))
                            .map(|i| i.name.clone())
                            .collect();
                        (p.lb_port, p.balancing_type, lb.network_volume, names)
                    })
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// What the test expects of a Node the provider matches to a server: that server, and the providerID the Node
/// must end up with.
#[derive(Clone, Debug)]
struct Backend {
    server: String,
    provider_id: String,
}

/// Node name -> its server, for every Node whose server the provider finds (the test's own and, on a real
/// cluster, the cluster's); the other Nodes are never load balancer backends.
type Backends = Arc<Mutex<BTreeMap<String, Backend>>>;

/// The names the test uses: a random suffix keeps runs apart on a shared API server.
struct Names {
    /// Namespace of the Service.
    namespace: String,
    /// The test's Nodes, valid NIFCLOUD server names (so that a concurrent run can cover them by name).
    nodes: Vec<String>,
    /// The server behind each of the test's Nodes (same order).
    servers: Vec<String>,
    /// The server that is terminated, and the name of its Node.
    ghost: String,
    /// Prefix of the servers that cover other Nodes.
    cover_prefix: String,
    /// InternalIP of each of the test's Nodes (same order).
    ips: Vec<String>,
}

impl Names {
    fn new() -> Self {
        let random = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
        let sfx = format!("{:06x}", random & 0xff_ffff);
        let (a, b) = (128 + (random >> 24) % 64, (random >> 32) % 256);
        Self {
            namespace: format!("nifcloud-ccm-e2e-{sfx}"),
            nodes: (0..OWN_NODES).map(|i| format!("c{sfx}n{i}")).collect(),
            servers: (0..OWN_NODES).map(|i| format!("c{sfx}s{i}")).collect(),
            ghost: format!("c{sfx}g"),
            cover_prefix: format!("c{sfx}f"),
            ips: (0..OWN_NODES).map(|i| format!("10.{a}.{b}.{}", 10 + i)).collect(),
        }
    }

    /// Every Node the test creates.
    fn own_nodes(&self) -> BTreeSet<String> {
        self.nodes.iter().chain([&self.ghost]).cloned().collect()
    }
}

fn owner_labels() -> BTreeMap<String, String> {
    [(OWNER_LABEL.0.to_owned(), OWNER_LABEL.1.to_owned())].into()
}

/// Runs `scenario` in a task, then `cleanup` whether the scenario passed or panicked, then passes the scenario's
/// panic on. The scenario's locals (the binary and the emulator) are dropped before the cleanup starts.
async fn with_cleanup(scenario: impl Future<Output = ()> + Send + 'static, cleanup: impl Future<Output = ()>) {
    let outcome = tokio::spawn(scenario).await;
    cleanup.await;
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("test scenario did not finish: {error}"),
        }
    }
}

/// Polls until `get_opt` says the object is gone; `false` after `timeout` (cleanup reports, never panics).
async fn gone<K>(api: &Api<K>, name: &str, timeout: Duration) -> bool
where
    K: kube::Resource + Clone + k8s_openapi::serde::de::DeserializeOwned + std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if matches!(api.get_opt(name).await, Ok(None)) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn e2e_against_a_cluster() {
    let Some(cluster) = k8s_harness::cluster(TEST) else {
        return;
    };
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&cluster.kubeconfig).expect("kubeconfig"),
        &Default::default(),
    )
    .await
    .expect("kube config");
    let client = kube::Client::try_from(config).expect("client");
    let names = Arc::new(Names::new());
    let scenario = scenario(client.clone(), cluster.kubeconfig, cluster.real, names.clone());
    with_cleanup(scenario, async {
        let nodes: Api<Node> = Api::all(client.clone());
        for name in names.own_nodes() {
            let _ = nodes.delete(&name, &DeleteParams::default()).await;
            if !gone(&nodes, &name, Duration::from_secs(30)).await {
                eprintln!("cleanup: Node {name} is still there");
            }
        }
        // The Service normally went away in the scenario; after a failure its finalizer may keep it.
        let services: Api<Service> = Api::namespaced(client.clone(), &names.namespace);
        for s in services
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
        {
            let unfinalize = Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}}));
            let _ = services
                .patch(&s.name_any(), &PatchParams::default(), &unfinalize)
                .await;
        }
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let _ = namespaces.delete(&names.namespace, &DeleteParams::default()).await;
        if !gone(&namespaces, &names.namespace, Duration::from_secs(60)).await {
            eprintln!("cleanup: Namespace {} is still there", names.namespace);
        }
    })
    .await;
}

/// One of the test's Nodes: tainted uninitialized, like a kubelet with `--cloud-provider=external` registers it.
fn own_node(name: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(owner_labels()),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: Some(vec![Taint {
                key: UNINITIALIZED.into(),
                effect: "NoSchedule".into(),
                value: Some("true".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn internal_ipv4(node: &Node) -> Option<String> {
    node.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .filter(|a| a.type_ == "InternalIP")
        .find(|a| a.address.parse::<std::net::Ipv4Addr>().is_ok())
        .map(|a| a.address.clone())
}

fn private_server(name: &str, zone: &str, private_ip: Option<&str>) -> InstanceConfig {
    let mut server = InstanceConfig::new(name, zone);
    if let Some(ip) = private_ip {
        server.network_interfaces.push(NetworkInterfaceConfig {
            network_id: "net-COMMON_PRIVATE".into(),
            private_ip: Some(ip.into()),
            ..NetworkInterfaceConfig::default()
        });
    }
    server
}

/// Whether `name` can be a NIFCLOUD server name (1-15 alphanumerics).
fn is_server_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 15 && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Two spellings of `name` that differ from it, and from each other, only in letter case (Node names are lower
/// case), if it is a valid server name with two letters or more.
fn case_variants(name: &str) -> Option<[String; 2]> {
    let letters = name.bytes().filter(u8::is_ascii_alphabetic).count();
    if !is_server_name(name) || letters < 2 {
        return None;
    }
    let first = name.find(|c: char| c.is_ascii_alphabetic())?;
    let mut one = name.to_owned();
    one[first..=first].make_ascii_uppercase();
    Some([name.to_ascii_uppercase(), one])
}

/// What covering a Node achieved.
enum Cover {
    /// The provider matches the Node to a server: it is a load balancer backend.
    Backend(Backend),
    /// The provider reports an error for the Node, so the binary leaves it alone.
    LeftAlone,
    /// Nothing to cover it with yet (no providerID, no InternalIP, no server-like name): the binary would delete
    /// it. Tried again when the Node changes.
    Uncovered,
}

/// Covers `node`, a Node the test did not create, with emulated servers so that the binary never deletes it
/// (see the module documentation): `manage` (a real cluster) gives it a server the provider matches, otherwise
/// the match is made ambiguous.
fn cover(emu: &Emulator, node: &Node, fresh: &mut dyn FnMut() -> String, manage: bool) -> Cover {
    let name = node.name_any();
    let ip = internal_ipv4(node);
    let add = |server: &InstanceConfig| {
        emu.add_instance(server)
            .inspect_err(|e| eprintln!("cannot add a server covering node {name}: {e}"))
            .ok()
    };
    if let Some(pid) = node
        .spec
        .as_ref()
        .and_then(|s| s.provider_id.clone())
        .filter(|p| !p.trim().is_empty())
    {
        // Another provider's or a malformed providerID: the provider reports an error and leaves the Node alone.
        let Ok(id) = ProviderId::parse(&pid) else {
            return Cover::LeftAlone;
        };
        let zone = id
            .zone
            .filter(|z| z == "east-11" || z == "east-12")
            .unwrap_or_else(|| ZONE.into());
        let mut server = private_server(&fresh(), &zone, ip.as_deref());
        server.unique_id = Some(id.unique_id);
        return match add(&server) {
            Some(_) => Cover::Backend(Backend {
                server: server.name,
                provider_id: pid,
            }),
            None => Cover::LeftAlone,
        };
    }
    let uncovered = || {
        eprintln!("node {name} has no providerID, no InternalIP and no server-like name: the binary may delete it");
        Cover::Uncovered
    };
    if manage {
        let server = match &ip {
            Some(ip) => private_server(&fresh(), ZONE, Some(ip)),
            None if is_server_name(&name) => private_server(&name, ZONE, None),
            None => return uncovered(),
        };
        return match add(&server) {
            Some(uid) => Cover::Backend(Backend {
                server: server.name,
                provider_id: format!("nifcloud:///{ZONE}/{uid}"),
            }),
            None => Cover::LeftAlone,
        };
    }
    let servers = match (case_variants(&name), &ip) {
        (Some(variants), _) => variants.map(|v| private_server(&v, ZONE, None)),
        (None, Some(ip)) => [(); 2].map(|()| private_server(&fresh(), ZONE, Some(ip))),
        (None, None) => return uncovered(),
    };
    for server in &servers {
        add(server);
    }
    Cover::LeftAlone
}

/// Covers every Node the test did not create: those present (then `ready` fires), then each one that appears.
async fn cover_nodes(
    api: Api<Node>,
    emu: Arc<Emulator>,
    names: Arc<Names>,
    manage: bool,
    backends: Backends,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let own = names.own_nodes();
    let mut covered = BTreeSet::new();
    let mut ready = Some(ready);
    let mut seq = 0u32;
    let mut fresh = || {
        seq += 1;
        format!("{}{seq}", names.cover_prefix)
    };
    let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::InitApply(node) | watcher::Event::Apply(node)) => {
                let name = node.name_any();
                if own.contains(&name) || covered.contains(&name) {
                    continue;
                }
                match cover(&emu, &node, &mut fresh, manage) {
                    Cover::Backend(backend) => {
                        backends.lock().expect("backends").insert(name.clone(), backend);
                    }
                    Cover::LeftAlone => {}
                    Cover::Uncovered => continue,
                }
                covered.insert(name);
            }
            Ok(watcher::Event::InitDone) => {
                if let Some(tx) = ready.take() {
                    let _ = tx.send(());
                }
            }
            Ok(_) => {}
            Err(e) => eprintln!("node watch: {e}"),
        }
    }
}

/// The servers the load balancer must have: those of every current Node that is a load balancer target and
/// whose server the provider finds.
async fn expected_members(nodes: &Api<Node>, backends: &Backends) -> Option<BTreeSet<String>> {
    let list = nodes.list(&ListParams::default()).await.ok()?.items;
    let backends = backends.lock().expect("backends");
    Some(
        list.iter()
            .filter(|n| cloudprovider::service::node_is_lb_target(n))
            .filter_map(|n| backends.get(&n.name_any()))
            .map(|b| b.server.clone())
            .collect(),
    )
}

async fn scenario(client: kube::Client, kubeconfig: PathBuf, real: bool, names: Arc<Names>) {
    let nodes: Api<Node> = Api::all(client.clone());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(names.namespace.clone()),
                    labels: Some(owner_labels()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("create namespace");

    // The emulated cloud: one server per Node of the test (public and private IP; the private one is the
    // Node's InternalIP), plus one to terminate.
    let mut cfg = EmulatorConfig::sample();
    cfg.instances = (0..OWN_NODES)
        .map(|i| InstanceConfig::new(&names.servers[i], ZONE).with_ips(&format!("203.0.113.{}", 10 + i), &names.ips[i]))
        .collect();
    cfg.instances.push(InstanceConfig::new(&names.ghost, ZONE));
    let emu = Arc::new(Emulator::builder().config(cfg).start().await.expect("emulator"));
    let uid = |server: &str| emu.with_state(|st| st.instances[server].unique_id.clone());
    let backends: Backends = Arc::default();
    for i in 0..OWN_NODES {
        backends.lock().expect("backends").insert(
            names.nodes[i].clone(),
            Backend {
                server: names.servers[i].clone(),
                provider_id: format!("nifcloud:///{ZONE}/{}", uid(&names.servers[i])),
            },
        );
    }

    // The test's Nodes, with their InternalIP (a create ignores status: it is written separately), before the
    // binary starts.
    for (name, ip) in names.nodes.iter().zip(&names.ips) {
        nodes
            .create(&PostParams::default(), &own_node(name))
            .await
            .expect("create node");
        let status = serde_json::json!({"status": {"addresses": [{"type": "InternalIP", "address": ip}]}});
        nodes
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .expect("set node addresses");
    }

    // Every other Node gets its servers before the binary starts, and as it appears.
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    let watch = AbortOnDrop(tokio::spawn(cover_nodes(
        nodes.clone(),
        emu.clone(),
        names.clone(),
        real,
        backends.clone(),
        ready_tx,
    )));
    tokio::time::timeout(Duration::from_secs(60), ready)
        .await
        .expect("initial node list in time")
        .expect("node watch running");
    let managed: BTreeMap<String, Backend> = backends
        .lock()
        .expect("backends")
        .iter()
        .filter(|(n, _)| !names.nodes.contains(n))
        .map(|(n, b)| (n.clone(), b.clone()))
        .collect();

    let (k, s) = emu.credentials();
    let ccm = Ccm(Command::new(env!("CARGO_BIN_EXE_nifcloud-cloud-controller-manager"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "--nifcloud-endpoint",
            &emu.endpoint(),
            "--cluster-name",
            "e2e",
            "--leader-elect=false",
            "--metrics-bind-address",
            "0",
            "--node-monitor-period",
            "2s",
        ])
        .env("NIFCLOUD_ACCESS_KEY_ID", k)
        .env("NIFCLOUD_SECRET_ACCESS_KEY", s)
        .env("NIFCLOUD_REGION", "jp-east-1")
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the binary"));

    // 1. Nodes initialized: the test's own, matched by address (providerID of their server, labels, addresses,
    // no taint), and on a real cluster the cluster's nodes too.
    for (i, name) in names.nodes.iter().enumerate() {
        let expected_pid = format!("nifcloud:///{ZONE}/{}", uid(&names.servers[i]));
        let node = eventually(
            &format!("node {name} initialized"),
            Duration::from_secs(120),
            || async {
                let n = nodes.get(name).await.ok()?;
                let spec = n.spec.as_ref()?;
                let tainted = spec.taints.iter().flatten().any(|t| t.key == UNINITIALIZED);
                (!tainted && spec.provider_id.as_deref() == Some(expected_pid.as_str())).then_some(n)
            },
        )
        .await;
        let labels = node.metadata.labels.clone().unwrap_or_default();
        let label = |key: &str| labels.get(key).map(String::as_str);
        assert_eq!(label("topology.kubernetes.io/zone"), Some(ZONE), "{labels:?}");
        assert_eq!(label("topology.kubernetes.io/region"), Some("jp-east-1"), "{labels:?}");
        assert_eq!(label("node.kubernetes.io/instance-type"), Some("e-large"), "{labels:?}");
        let addresses = node.status.and_then(|s| s.addresses).unwrap_or_default();
        for (type_, address) in [
            ("InternalIP", names.ips[i].clone()),
            ("ExternalIP", format!("203.0.113.{}", 10 + i)),
        ] {
            assert!(
                addresses.contains(&NodeAddress {
                    type_: type_.into(),
                    address
                }),
                "{name}: {addresses:?}"
            );
        }
    }
    if real {
        for (name, backend) in &managed {
            eventually(
                &format!("node {name} initialized"),
                Duration::from_secs(120),
                || async {
                    let n = nodes.get(name).await.ok()?;
                    let pid = n.spec.as_ref()?.provider_id.clone()?;
                    let labels = n.metadata.labels.unwrap_or_default();
                    (pid == backend.provider_id
                        && labels.contains_key("topology.kubernetes.io/zone")
                        && labels.contains_key("node.kubernetes.io/instance-type"))
                    .then_some(())
                },
            )
            .await;
        }
    }

    // 2. The article's nginx Service gets an external IP with every node registered.
    let services: Api<Service> = Api::namespaced(client.clone(), &names.namespace);
    let svc: Service = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": SVC},
        "spec": {"type": "LoadBalancer", "selector": {"app": "nginx"}, "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}]}
    }))
    .expect("service");
    services
        .create(&PostParams::default(), &svc)
        .await
        .expect("create service");
    let ip = eventually("external IP", Duration::from_secs(120), || async {
        let s = services.get(SVC).await.ok()?;
        s.status?.load_balancer?.ingress?.first()?.ip.clone()
    })
    .await;
    let lb = eventually(
        "load balancer with the external IP",
        Duration::from_secs(60),
        || async { lb_with_vip(&emu, &ip) },
    )
    .await;
    // Other suites' Nodes may come and go meanwhile: the members must settle on the servers of the current ones.
    let ports = eventually("every node registered", Duration::from_secs(120), || async {
        let expected = expected_members(&nodes, &backends).await?;
        let ports = lb_ports(&emu, &lb);
        (ports.len() == 1 && ports[0].3 == expected).then_some(ports)
    })
    .await;
    for server in &names.servers {
        assert!(
            ports[0].3.contains(server),
            "{server} registered behind {lb} ({ip}): {ports:?}"
        );
    }

    // 3. Annotation and port changes are applied.
    let patch = serde_json::json!({
        "metadata": {"annotations": {
            "service.beta.kubernetes.io/nifcloud-load-balancer-network-volume": "100",
            "service.beta.kubernetes.io/nifcloud-load-balancer-balancing-type": "2"}},
        "spec": {"ports": [{"port": 8080, "targetPort": 80, "protocol": "TCP"}]}
    });
    services
        .patch(SVC, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch service");
    eventually("annotation and port change applied", Duration::from_secs(120), || {
        let p = lb_ports(&emu, &lb);
        async move { (p.len() == 1 && p[0].0 == 8080 && p[0].1 == 2 && p[0].2 == 100).then_some(()) }
    })
    .await;

    // 4. Deleting the Service deletes the load balancer.
    services
        .delete(SVC, &DeleteParams::default())
        .await
        .expect("delete service");
    eventually("load balancer deleted", Duration::from_secs(120), || async {
        let deleted = emu.with_state(|st| !st.load_balancers.contains_key(&lb));
        (deleted && services.get_opt(SVC).await.ok()?.is_none()).then_some(())
    })
    .await;

    // 5. The Node of a terminated server is deleted (a Node object without a kubelet is never Ready), and only it.
    let ghost = Node {
        metadata: ObjectMeta {
            name: Some(names.ghost.clone()),
            labels: Some(owner_labels()),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            provider_id: Some(format!("nifcloud:///{ZONE}/{}", uid(&names.ghost))),
            ..Default::default()
        }),
        ..Default::default()
    };
    nodes
        .create(&PostParams::default(), &ghost)
        .await
        .expect("create ghost node");
    emu.terminate_instance(&names.ghost).expect("terminate");
    eventually(
        "node of the terminated server deleted",
        Duration::from_secs(120),
        || async { nodes.get_opt(&names.ghost).await.ok()?.is_none().then_some(()) },
    )
    .await;
    for name in &names.nodes {
        assert!(
            nodes.get_opt(name).await.expect("get node").is_some(),
            "node {name}, whose server exists, is kept"
        );
    }

    drop(ccm);
    drop(watch);
    // The caller deletes the test's Nodes and Namespace; the emulator stops when its last handle goes.
    if let Ok(emu) = Arc::try_unwrap(emu) {
        emu.shutdown().await;
    }
}
