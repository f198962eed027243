//! End-to-end tests of the controllers against a real cluster, with the in-memory [`FakeProvider`] as the cloud.
//!
//! They run only when `NIFCLOUD_E2E_KUBECONFIG` names a kubeconfig; otherwise each test prints why it skips.
//!
//! Use a disposable cluster with **no other cloud controller manager** running (for example kind or k3s with
//! `--cloud-provider=external` on the kubelets and no CCM installed): the fake CCM started here reconciles every
//! `type: LoadBalancer` Service in the cluster. The controller test refuses to start if a LoadBalancer Service
//! exists outside its own namespace. Real Nodes are registered in the fake cloud with their current providerID
//! and addresses, so the fake never changes or deletes them; the tests create their own Node objects (no kubelet
//! behind them) to exercise initialization and deletion.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use cloudprovider::testing::{FakeInstance, FakeProvider};
use cloudprovider::{ControllerManagerArgs, InstanceMetadata};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, NodeAddress, NodeSpec, Service, ServicePort, ServiceSpec, Taint};
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

const FINALIZER: &str = "service.kubernetes.io/load-balancer-cleanup";
const UNINITIALIZED: &str = "node.cloudprovider.kubernetes.io/uninitialized";

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

async fn client() -> Option<Client> {
    let Ok(path) = std::env::var("NIFCLOUD_E2E_KUBECONFIG") else {
        eprintln!("skipping: NIFCLOUD_E2E_KUBECONFIG is not set (it must name a kubeconfig of a disposable cluster)");
        return None;
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("read NIFCLOUD_E2E_KUBECONFIG");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    Some(Client::try_from(config).expect("client"))
}

fn suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// Polls `check` every 500 ms until it returns `Some` or `timeout` passes.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn fake_node(name: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
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

/// Registers every real Node in the fake cloud exactly as it is, so the controllers leave it unchanged.
async fn register_real_nodes(nodes: &Api<Node>, provider: &FakeProvider) {
    for node in nodes.list(&Default::default()).await.expect("list nodes").items {
        let name = node.metadata.name.clone().unwrap_or_default();
        let metadata = InstanceMetadata {
            provider_id: node
                .spec
                .as_ref()
                .and_then(|s| s.provider_id.clone())
                .unwrap_or_else(|| format!("fake://{name}")),
            node_addresses: node
                .status
                .as_ref()
                .and_then(|s| s.addresses.clone())
                .unwrap_or_default(),
            ..InstanceMetadata::default()
        };
        provider.set_instance(
            &name,
            FakeInstance {
                metadata,
                shutdown: false,
            },
        );
    }
}

#[tokio::test]
async fn controllers_against_a_real_cluster() {
    let Some(client) = client().await else { return };
    let run_id = suffix();
    let ns_name = format!("ccm-e2e-{run_id}");
    let services_all: Api<Service> = Api::all(client.clone());
    let foreign_lbs: Vec<String> = services_all
        .list(&Default::default())
        .await
        .expect("list services")
        .items
        .into_iter()
        .filter(|s| s.spec.as_ref().and_then(|sp| sp.type_.as_deref()) == Some("LoadBalancer"))
        .map(|s| {
            format!(
                "{}/{}",
                s.metadata.namespace.unwrap_or_default(),
                s.metadata.name.unwrap_or_default()
            )
        })
        .collect();
    if !foreign_lbs.is_empty() {
        eprintln!("skipping: LoadBalancer Services already exist ({foreign_lbs:?}); the fake CCM would take them over");
        return;
    }

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
    let provider = Arc::new(FakeProvider::new());
    register_real_nodes(&nodes, &provider).await;
    let node_a = format!("e2e-a-{run_id}");
    let node_b = format!("e2e-b-{run_id}");
    provider.add_instance(&node_a, "10.250.0.1");
    provider.add_instance(&node_b, "10.250.0.2");

    let shutdown = CancellationToken::new();
    let ccm = tokio::spawn(cloudprovider::run_with_client(
        client.clone(),
        args(&["--leader-elect-resource-name", &format!("ccm-e2e-{run_id}")]),
        provider.clone(),
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
            let n = nodes.get(name).await.ok()?;
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
        let s = services.get("web").await.ok()?;
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
    let lb = provider.load_balancer_of(&key).expect("fake LB exists");
    assert!(lb.nodes.contains(&node_a) && lb.nodes.contains(&node_b), "{lb:?}");

    // 3. A port change updates the load balancer.
    let patch = serde_json::json!({"spec": {"ports": [{"port": 8080, "protocol": "TCP"}]}});
    services
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch port");
    eventually("LB port 8080", Duration::from_secs(60), || async {
        provider
            .load_balancer_of(&key)
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
        provider
            .load_balancer_of(&key)
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
    assert!(provider.load_balancer_of(&key).is_none(), "fake LB deleted");

    // 6. A Node whose instance is gone is deleted (fake nodes have no kubelet, so they are never Ready).
    provider.remove_instance(&node_a);
    eventually("node a deleted", Duration::from_secs(60), || async {
        matches!(nodes.get_opt(&node_a).await, Ok(None)).then_some(())
    })
    .await;

    // Clean up.
    provider.remove_instance(&node_b);
    eventually("node b deleted", Duration::from_secs(60), || async {
        matches!(nodes.get_opt(&node_b).await, Ok(None)).then_some(())
    })
    .await;
    shutdown.cancel();
    let result = ccm.await.expect("ccm task");
    assert!(result.is_ok(), "graceful shutdown: {result:?}");
    namespaces
        .delete(&ns_name, &DeleteParams::default())
        .await
        .expect("delete namespace");
    let leases: Api<Lease> = Api::namespaced(client, "kube-system");
    let _ = leases
        .delete(&format!("ccm-e2e-{run_id}"), &DeleteParams::default())
        .await;
}

async fn holder(leases: &Api<Lease>, name: &str) -> Option<String> {
    leases
        .get_opt(name)
        .await
        .ok()??
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

#[tokio::test]
async fn leader_election_hands_over_when_the_leader_dies() {
    let Some(client) = client().await else { return };
    let lease_name = format!("ccm-e2e-le-{}", suffix());
    let le = [
        "--leader-elect-resource-name",
        lease_name.as_str(),
        "--leader-elect-lease-duration=4s",
        "--leader-elect-renew-deadline=3s",
        "--leader-elect-retry-period=1s",
        "--controllers=-service,-cloud-node,-cloud-node-lifecycle",
    ];
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let provider = Arc::new(FakeProvider::new());

    let first = tokio::spawn(cloudprovider::run_with_client(
        client.clone(),
        args(&le),
        provider.clone(),
        CancellationToken::new(),
    ));
    let first_holder = eventually("first leader", Duration::from_secs(30), || async {
        holder(&leases, &lease_name).await
    })
    .await;
    let second_token = CancellationToken::new();
    let second = tokio::spawn(cloudprovider::run_with_client(
        client.clone(),
        args(&le),
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
    assert!(second.await.expect("second task").is_ok());
    let after = holder(&leases, &lease_name).await;
    assert_ne!(after, Some(new_holder), "released on shutdown");
    let _ = leases.delete(&lease_name, &DeleteParams::default()).await;
}

#[tokio::test]
async fn leader_that_loses_its_lease_stops_with_an_error() {
    let Some(client) = client().await else { return };
    let lease_name = format!("ccm-e2e-lost-{}", suffix());
    let le = [
        "--leader-elect-resource-name",
        lease_name.as_str(),
        "--leader-elect-lease-duration=4s",
        "--leader-elect-renew-deadline=3s",
        "--leader-elect-retry-period=1s",
        "--controllers=-service,-cloud-node,-cloud-node-lifecycle",
    ];
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let run = tokio::spawn(cloudprovider::run_with_client(
        client.clone(),
        args(&le),
        Arc::new(FakeProvider::new()),
        CancellationToken::new(),
    ));
    eventually("leader", Duration::from_secs(30), || async {
        holder(&leases, &lease_name).await
    })
    .await;
    // Someone else takes the lease and keeps renewing it: our leader can no longer renew.
    let thief = tokio::spawn({
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
    let result = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("leader stops in time")
        .expect("task");
    thief.abort();
    assert!(
        matches!(result, Err(cloudprovider::Error::LeadershipLost(_))),
        "{result:?}"
    );
    let _ = leases.delete(&lease_name, &DeleteParams::default()).await;
}
