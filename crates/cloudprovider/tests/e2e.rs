//! End-to-end tests of the controllers against a real API server, with the in-memory [`FakeProvider`] as the cloud.
//!
//! The API server is the cluster named by `NIFCLOUD_E2E_KUBECONFIG` when that is set (a real, disposable cluster),
//! else the project's test harness (a real kube-apiserver and kube-controller-manager of Kubernetes 1.36, without
//! kubelets; `../shared/harness`), started or reused by [`k8s_harness::cluster`]. When neither is available each
//! test prints why it skips (and fails instead under `NIFCLOUD_REQUIRE_HARNESS=1`, as in CI).
//!
//! The API server is shared: by the tests of this file (they run in parallel), by the other suites of the
//! workspace, and on a real cluster by its own workloads. So every name carries a random suffix, every object a
//! test creates (Nodes, Namespace, Services, Leases) is deleted at the end, also when the test fails, and the fake
//! cloud knows only the test's own objects ([`Scoped`]): for any other Node it answers with an error, which the
//! node controllers treat as "unknown" (no initialization, no address change, no deletion), and for a Service
//! outside the test's namespace it answers `ImplementedElsewhere` (no load balancer, no status). The framework's
//! service controller still adds its cleanup finalizer to every LoadBalancer Service before asking the cloud, so
//! on a real cluster (use one with **no other cloud controller manager**, for example kind or k3s with
//! `--cloud-provider=external` on the kubelets) the controller test refuses to start if a LoadBalancer Service
//! exists outside its own namespace. On the harness, where such Services can only be other suites' test objects,
//! it runs anyway; another cloud controller manager serving the same API server at the same time (such as the
//! CCM binary's end-to-end suite, `bins/ccm/tests/e2e.rs`) would fight over the test's Service, so do not run the
//! two at once (cargo runs test binaries one after another). The test creates its own Node objects (no kubelet
//! behind them, so never Ready) to exercise initialization, load balancer targets and deletion.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use cloudprovider::testing::FakeProvider;
use cloudprovider::{
    CloudProvider, ControllerManagerArgs, InstanceMetadata, InstancesV2, LoadBalancer, ProviderError, TargetNode,
};
use k8s_harness::eventually;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    LoadBalancerStatus, Namespace, Node, NodeAddress, NodeSpec, Service, ServicePort, ServiceSpec, Taint,
};
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

const FINALIZER: &str = "service.kubernetes.io/load-balancer-cleanup";
const UNINITIALIZED: &str = "node.cloudprovider.kubernetes.io/uninitialized";
/// Label on every Node this suite creates.
const OWNER_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "cloudprovider-e2e");

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: ControllerManagerArgs,
}

fn args(extra: &[&str]) -> ControllerManagerArgs {
    let mut argv = vec!["e2e", "--metrics-bind-address=0", "--node-monitor-period=1s"];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv) {
        Ok(cli) => cli.args,
        Err(e) => panic!("bad test arguments: {e}"),
    }
}

/// A client of the cluster for `test` and whether it is a real cluster; `None` (after saying why) to skip.
async fn client(test: &str) -> Option<(Client, bool)> {
    let cluster = k8s_harness::cluster(test)?;
    let kubeconfig = kube::config::Kubeconfig::read_from(&cluster.kubeconfig)
        .unwrap_or_else(|e| panic!("read kubeconfig {}: {e}", cluster.kubeconfig.display()));
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    Some((Client::try_from(config).expect("client"), cluster.real))
}

fn suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// Runs `scenario` in a task, then `cleanup` whether the scenario passed or panicked, then passes the scenario's
/// panic on. The scenario's locals (controller tasks included) are dropped before the cleanup starts.
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

/// A spawned controller manager that is aborted when dropped (also when the test panics), so that it cannot
/// recreate what the cleanup deletes.
struct Running<T>(tokio::task::JoinHandle<T>);

impl<T> Running<T> {
    fn spawn(future: impl Future<Output = T> + Send + 'static) -> Self
    where
        T: Send + 'static,
    {
        Self(tokio::spawn(future))
    }

    /// Waits for it to finish.
    async fn join(mut self) -> T {
        (&mut self.0).await.expect("controller manager task")
    }

    fn abort(&self) {
        self.0.abort();
    }
}

impl<T> Drop for Running<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Polls until `get_opt` says the object is gone; `false` after `timeout` (cleanup reports, never panics).
async fn gone<K>(api: &Api<K>, name: &str, timeout: Duration) -> bool
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
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

/// Deletes the Lease `name` of kube-system (the controller manager under test created it).
async fn delete_lease(client: &Client, name: &str) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let _ = leases.delete(name, &DeleteParams::default()).await;
    if !gone(&leases, name, Duration::from_secs(10)).await {
        eprintln!("cleanup: Lease kube-system/{name} is still there");
    }
}

fn fake_node(name: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([(OWNER_LABEL.0.to_owned(), OWNER_LABEL.1.to_owned())].into()),
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

fn lb_service(name: &str, port: i32) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            selector: Some([("app".to_owned(), name.to_owned())].into()),
            ports: Some(vec![ServicePort {
                port,
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The fake cloud as one test sees it: its own Nodes and the Services of its own namespace are the
/// [`FakeProvider`]'s; every other Node gets an error (the controllers then leave it alone: no initialization,
/// no address or taint change, no deletion) and every other Service `ImplementedElsewhere` (no load balancer,
/// no status; `get_load_balancer` errs, so the controller never removes a finalizer it did not add). So the
/// controllers under test never change or delete the objects of other tests or a real cluster's own Nodes.
struct Scoped {
    fake: Arc<FakeProvider>,
    namespace: String,
    nodes: Vec<String>,
}

impl Scoped {
    fn node(&self, node: &Node) -> Result<(), ProviderError> {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        if self.nodes.iter().any(|n| n == name) {
            Ok(())
        } else {
            Err(ProviderError::cloud(format!("node {name} is not this test's")))
        }
    }

    fn owns(&self, service: &Service) -> bool {
        service.metadata.namespace.as_deref() == Some(self.namespace.as_str())
    }
}

#[cloudprovider::async_trait]
impl InstancesV2 for Scoped {
    async fn instance_exists(&self, node: &Node) -> Result<bool, ProviderError> {
        self.node(node)?;
        self.fake.instance_exists(node).await
    }

    async fn instance_shutdown(&self, node: &Node) -> Result<bool, ProviderError> {
        self.node(node)?;
        self.fake.instance_shutdown(node).await
    }

    async fn instance_metadata(&self, node: &Node) -> Result<InstanceMetadata, ProviderError> {
        self.node(node)?;
        self.fake.instance_metadata(node).await
    }
}

#[cloudprovider::async_trait]
impl LoadBalancer for Scoped {
    async fn get_load_balancer(
        &self,
        cluster: &str,
        service: &Service,
    ) -> Result<Option<LoadBalancerStatus>, ProviderError> {
        if !self.owns(service) {
            return Err(ProviderError::cloud("not this test's Service"));
        }
        self.fake.get_load_balancer(cluster, service).await
    }

    async fn ensure_load_balancer(
        &self,
        cluster: &str,
        service: &Service,
        nodes: &[TargetNode],
    ) -> Result<LoadBalancerStatus, ProviderError> {
        if !self.owns(service) {
            return Err(ProviderError::ImplementedElsewhere);
        }
        self.fake.ensure_load_balancer(cluster, service, nodes).await
    }

    async fn update_load_balancer(
        &self,
        cluster: &str,
        service: &Service,
        nodes: &[TargetNode],
    ) -> Result<(), ProviderError> {
        if !self.owns(service) {
            return Err(ProviderError::ImplementedElsewhere);
        }
        self.fake.update_load_balancer(cluster, service, nodes).await
    }

    async fn ensure_load_balancer_deleted(&self, cluster: &str, service: &Service) -> Result<(), ProviderError> {
        if !self.owns(service) {
            return Err(ProviderError::cloud("not this test's Service"));
        }
        self.fake.ensure_load_balancer_deleted(cluster, service).await
    }
}

#[cloudprovider::async_trait]
impl CloudProvider for Scoped {
    fn provider_name(&self) -> &str {
        self.fake.provider_name()
    }

    fn load_balancer(&self) -> Option<&dyn LoadBalancer> {
        Some(self)
    }

    fn instances_v2(&self) -> Option<&dyn InstancesV2> {
        Some(self)
    }
}

/// The LoadBalancer Services of `client`'s cluster outside `namespace`, as `namespace/name`.
async fn load_balancers_outside(client: &Client, namespace: &str) -> Vec<String> {
    let services: Api<Service> = Api::all(client.clone());
    services
        .list(&ListParams::default())
        .await
        .expect("list services")
        .items
        .into_iter()
        .filter(|s| s.spec.as_ref().and_then(|sp| sp.type_.as_deref()) == Some("LoadBalancer"))
        .filter(|s| s.metadata.namespace.as_deref() != Some(namespace))
        .map(|s| {
            format!(
                "{}/{}",
                s.metadata.namespace.unwrap_or_default(),
                s.metadata.name.unwrap_or_default()
            )
        })
        .collect()
}

#[tokio::test]
async fn controllers_against_a_real_cluster() {
    const TEST: &str = "controllers_against_a_real_cluster";
    let Some((client, real)) = client(TEST).await else {
        return;
    };
    let run_id = suffix();
    let ns_name = format!("ccm-e2e-{run_id}");
    if real {
        let foreign_lbs = load_balancers_outside(&client, &ns_name).await;
        if !foreign_lbs.is_empty() {
            k8s_harness::skip(
                TEST,
                &format!(
                    "LoadBalancer Services already exist ({foreign_lbs:?}); the fake CCM's service controller would add its finalizer to them"
                ),
            );
            return;
        }
    }
    // Node names are valid NIFCLOUD server names (alphanumerics, at most 15), so that the CCM binary's
    // end-to-end test, if it runs at the same time, can keep its controllers off them.
    let node_a = format!("e2ea{run_id}");
    let node_b = format!("e2eb{run_id}");
    let lease = format!("ccm-e2e-{run_id}");
    let scenario = controllers_scenario(
        client.clone(),
        ns_name.clone(),
        node_a.clone(),
        node_b.clone(),
        lease.clone(),
    );
    with_cleanup(scenario, async {
        let nodes: Api<Node> = Api::all(client.clone());
        for name in [&node_a, &node_b] {
            let _ = nodes.delete(name, &DeleteParams::default()).await;
            if !gone(&nodes, name, Duration::from_secs(30)).await {
                eprintln!("cleanup: Node {name} is still there");
            }
        }
        // The Service normally went away in the scenario; after a failure its finalizer may keep it.
        let services: Api<Service> = Api::namespaced(client.clone(), &ns_name);
        for s in services
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
        {
            let name = s.metadata.name.unwrap_or_default();
            let unfinalize = Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}}));
            let _ = services.patch(&name, &PatchParams::default(), &unfinalize).await;
        }
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let _ = namespaces.delete(&ns_name, &DeleteParams::default()).await;
        if !gone(&namespaces, &ns_name, Duration::from_secs(60)).await {
            eprintln!("cleanup: Namespace {ns_name} is still there");
        }
        delete_lease(&client, &lease).await;
    })
    .await;
}

async fn controllers_scenario(client: Client, ns_name: String, node_a: String, node_b: String, lease: String) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(ns_name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");

    let nodes: Api<Node> = Api::all(client.clone());
    let fake = Arc::new(FakeProvider::new());
    fake.add_instance(&node_a, "10.250.0.1");
    fake.add_instance(&node_b, "10.250.0.2");
    let provider = Arc::new(Scoped {
        fake: fake.clone(),
        namespace: ns_name.clone(),
        nodes: vec![node_a.clone(), node_b.clone()],
    });

    let shutdown = CancellationToken::new();
    let ccm = Running::spawn(cloudprovider::run_with_client(
        client.clone(),
        args(&["--leader-elect-resource-name", &lease]),
        provider,
        shutdown.clone(),
    ));

    // 1. Uninitialized nodes get providerID, labels, addresses, and lose the taint.
    for name in [&node_a, &node_b] {
        nodes
            .create(&PostParams::default(), &fake_node(name))
            .await
            .expect("create node");
    }
    for (name, ip) in [(&node_a, "10.250.0.1"), (&node_b, "10.250.0.2")] {
        let node = eventually("node initialized", Duration::from_secs(60), || async {
            let n = nodes.get(name).await.unwrap_or_else(|e| panic!("get node {name}: {e}"));
            let tainted = n
                .spec
                .as_ref()?
                .taints
                .as_ref()
                .is_some_and(|t| t.iter().any(|t| t.key == UNINITIALIZED));
            (!tainted).then_some(n)
        })
        .await;
        assert_eq!(
            node.spec.as_ref().and_then(|s| s.provider_id.as_deref()),
            Some(format!("fake://{name}").as_str())
        );
        let labels = node.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get("topology.kubernetes.io/zone").map(String::as_str),
            Some("fake-zone-1a")
        );
        assert_eq!(
            labels
                .get("failure-domain.beta.kubernetes.io/region")
                .map(String::as_str),
            Some("fake-region-1")
        );
        assert_eq!(
            labels.get("node.kubernetes.io/instance-type").map(String::as_str),
            Some("fake.small")
        );
        let addresses = node.status.and_then(|s| s.addresses).unwrap_or_default();
        assert!(
            addresses.contains(&NodeAddress {
                type_: "InternalIP".into(),
                address: ip.into()
            }),
            "{addresses:?}"
        );
    }

    // 2. A LoadBalancer Service gets its finalizer and ingress IP.
    let services: Api<Service> = Api::namespaced(client.clone(), &ns_name);
    services
        .create(&PostParams::default(), &lb_service("web", 80))
        .await
        .expect("create service");
    let key = format!("{ns_name}/web");
    let svc = eventually("ingress IP", Duration::from_secs(60), || async {
        let s = services.get("web").await.expect("get service web");
        let ip = s
            .status
            .as_ref()?
            .load_balancer
            .as_ref()?
            .ingress
            .as_ref()?
            .first()?
            .ip
            .clone()?;
        Some((s, ip))
    })
    .await;
    assert!(svc.1.starts_with("203.0.113."), "{}", svc.1);
    assert!(
        svc.0
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&FINALIZER.to_owned())
    );
    let lb = fake.load_balancer_of(&key).expect("fake LB exists");
    assert!(lb.nodes.contains(&node_a) && lb.nodes.contains(&node_b), "{lb:?}");

    // 3. A port change updates the load balancer.
    let patch = serde_json::json!({"spec": {"ports": [{"port": 8080, "protocol": "TCP"}]}});
    services
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch port");
    eventually("LB port 8080", Duration::from_secs(60), || async {
        fake.load_balancer_of(&key)
            .filter(|lb| lb.ports.iter().any(|p| p.0 == 8080))
            .map(|_| ())
    })
    .await;

    // 4. An excluded node is dropped from the targets.
    let label = serde_json::json!({"metadata": {"labels": {"node.kubernetes.io/exclude-from-external-load-balancers": "true"}}});
    nodes
        .patch(&node_b, &PatchParams::default(), &Patch::Merge(&label))
        .await
        .expect("label node");
    eventually("node b dropped from LB", Duration::from_secs(60), || async {
        fake.load_balancer_of(&key)
            .filter(|lb| !lb.nodes.contains(&node_b) && lb.nodes.contains(&node_a))
            .map(|_| ())
    })
    .await;

    // 5. Deletion deletes the LB and removes the finalizer, so the Service goes away.
    services
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete service");
    eventually("service gone", Duration::from_secs(60), || async {
        matches!(services.get_opt("web").await, Ok(None)).then_some(())
    })
    .await;
    assert!(fake.load_balancer_of(&key).is_none(), "fake LB deleted");

    // 6. A Node whose instance is gone is deleted (these nodes have no kubelet, so they are never Ready).
    fake.remove_instance(&node_a);
    eventually("node a deleted", Duration::from_secs(60), || async {
        matches!(nodes.get_opt(&node_a).await, Ok(None)).then_some(())
    })
    .await;
    assert!(
        nodes.get_opt(&node_b).await.expect("get node b").is_some(),
        "the node whose instance still exists is kept"
    );

    // The controller manager stops gracefully; the caller deletes what is left (node b, the namespace, the Lease).
    shutdown.cancel();
    let result = ccm.join().await;
    assert!(result.is_ok(), "graceful shutdown: {result:?}");
}

async fn holder(leases: &Api<Lease>, name: &str) -> Option<String> {
    leases
        .get_opt(name)
        .await
        .unwrap_or_else(|e| panic!("get Lease {name}: {e}"))?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

/// Leader election flags for Lease `lease_name`, with no controllers (the Lease is all these tests look at).
fn leader_args(lease_name: &str) -> ControllerManagerArgs {
    args(&[
        "--leader-elect-resource-name",
        lease_name,
        "--leader-elect-lease-duration=4s",
        "--leader-elect-renew-deadline=3s",
        "--leader-elect-retry-period=1s",
        "--controllers=-service,-cloud-node,-cloud-node-lifecycle",
    ])
}

#[tokio::test]
async fn leader_election_hands_over_when_the_leader_dies() {
    let Some((client, _)) = client("leader_election_hands_over_when_the_leader_dies").await else {
        return;
    };
    let lease_name = format!("ccm-e2e-le-{}", suffix());
    let scenario = handover_scenario(client.clone(), lease_name.clone());
    with_cleanup(scenario, delete_lease(&client, &lease_name)).await;
}

async fn handover_scenario(client: Client, lease_name: String) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let provider = Arc::new(FakeProvider::new());

    let first = Running::spawn(cloudprovider::run_with_client(
        client.clone(),
        leader_args(&lease_name),
        provider.clone(),
        CancellationToken::new(),
    ));
    let first_holder = eventually("first leader", Duration::from_secs(30), || async {
        holder(&leases, &lease_name).await
    })
    .await;
    let second_token = CancellationToken::new();
    let second = Running::spawn(cloudprovider::run_with_client(
        client.clone(),
        leader_args(&lease_name),
        provider.clone(),
        second_token.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        holder(&leases, &lease_name).await,
        Some(first_holder.clone()),
        "the live leader keeps the lease"
    );

    // The leader dies without releasing: the candidate takes over once the lease expires on its clock.
    first.abort();
    let new_holder = eventually("takeover", Duration::from_secs(30), || async {
        holder(&leases, &lease_name).await.filter(|h| *h != first_holder)
    })
    .await;
    let lease = leases.get(&lease_name).await.expect("lease");
    assert!(lease.spec.and_then(|s| s.lease_transitions).unwrap_or(0) >= 1);

    // Graceful shutdown releases the lease.
    second_token.cancel();
    assert!(second.join().await.is_ok());
    let after = holder(&leases, &lease_name).await;
    assert_ne!(after, Some(new_holder), "released on shutdown");
}

#[tokio::test]
async fn leader_that_loses_its_lease_stops_with_an_error() {
    let Some((client, _)) = client("leader_that_loses_its_lease_stops_with_an_error").await else {
        return;
    };
    let lease_name = format!("ccm-e2e-lost-{}", suffix());
    let scenario = lost_lease_scenario(client.clone(), lease_name.clone());
    with_cleanup(scenario, delete_lease(&client, &lease_name)).await;
}

async fn lost_lease_scenario(client: Client, lease_name: String) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let run = Running::spawn(cloudprovider::run_with_client(
        client.clone(),
        leader_args(&lease_name),
        Arc::new(FakeProvider::new()),
        CancellationToken::new(),
    ));
    eventually("leader", Duration::from_secs(30), || async {
        holder(&leases, &lease_name).await
    })
    .await;
    // Someone else takes the lease and keeps renewing it: our leader can no longer renew.
    let _thief = Running::spawn({
        let leases = leases.clone();
        let lease_name = lease_name.clone();
        async move {
            loop {
                let now =
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(k8s_openapi::jiff::Timestamp::now());
                let patch = serde_json::json!({"spec": {"holderIdentity": "thief", "renewTime": now, "leaseDurationSeconds": 60}});
                let _ = leases
                    .patch(&lease_name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });
    let result = tokio::time::timeout(Duration::from_secs(30), run.join())
        .await
        .expect("leader stops in time");
    assert!(
        matches!(result, Err(cloudprovider::Error::LeadershipLost(_))),
        "{result:?}"
    );
}

/// A repeated Event becomes a series on the real API server: one Event, its count raised, its first note kept (the
/// API server refuses a changed note), and a new Event for another reason.
#[tokio::test]
async fn repeated_events_become_one_series_on_the_real_api_server() {
    use cloudprovider::EventSink;
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::api::events::v1::Event;

    let Some((client, _)) = client("repeated_events_become_one_series_on_the_real_api_server").await else {
        return;
    };
    let namespace = format!("ccm-e2e-events-{}", suffix());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    namespaces.create(&PostParams::default(), &ns).await.expect("namespace");
    let scenario = {
        let (client, namespace) = (client.clone(), namespace.clone());
        async move {
            let sink = EventSink::new(client.clone(), "cloudprovider-e2e", Some("e2e-instance".into()));
            let regarding = ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Service".into()),
                namespace: Some(namespace.clone()),
                name: Some("web".into()),
                uid: Some("0b9c0000-5b0e-4d6f-8e0f-2a5b7c9d1e3f".into()),
                ..ObjectReference::default()
            };
            for attempt in 1..=3 {
                let note = format!("Error syncing load balancer: attempt {attempt}");
                sink.warn(&regarding, "SyncLoadBalancerFailed", "EnsureLoadBalancer", note)
                    .await;
            }
            sink.normal(
                &regarding,
                "EnsuredLoadBalancer",
                "EnsureLoadBalancer",
                "Ensured load balancer".into(),
            )
            .await;
            let events: Api<Event> = Api::namespaced(client, &namespace);
            let listed = events.list(&ListParams::default()).await.expect("list events").items;
            let failed: Vec<&Event> = listed
                .iter()
                .filter(|e| e.reason.as_deref() == Some("SyncLoadBalancerFailed"))
                .collect();
            assert_eq!(failed.len(), 1, "one Event for the three repeats: {listed:?}");
            let e = failed[0];
            assert_eq!(e.series.as_ref().map(|s| s.count), Some(3), "{e:?}");
            assert_eq!(e.note.as_deref(), Some("Error syncing load balancer: attempt 1"));
            assert_eq!(e.type_.as_deref(), Some("Warning"));
            assert_eq!(e.reporting_instance.as_deref(), Some("e2e-instance"));
            let ensured = listed
                .iter()
                .filter(|e| e.reason.as_deref() == Some("EnsuredLoadBalancer"))
                .count();
            assert_eq!(ensured, 1, "another reason is another Event");
        }
    };
    with_cleanup(scenario, async {
        let _ = namespaces.delete(&namespace, &DeleteParams::default()).await;
    })
    .await;
}
