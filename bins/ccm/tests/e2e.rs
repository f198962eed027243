//! End-to-end: the real binary against a real cluster (`NIFCLOUD_E2E_KUBECONFIG`) and an in-process emulator
//! whose servers are named after the cluster's nodes. Skips (with a message) when the variable is unset.
//!
//! Checks: nodes initialized (providerID, zone, instance type); the original article's nginx Service gets an
//! external IP with every node registered; annotation and port changes reach the load balancer; deleting the
//! Service deletes the load balancer; the Node of a terminated server is deleted.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, NodeSpec, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use nifcloud_emulator::{Emulator, EmulatorConfig, InstanceConfig};

const NS: &str = "default";
const SVC: &str = "nginx-e2e";

struct Ccm(Child);

impl Drop for Ccm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn lb_members(emu: &Emulator) -> Vec<(String, i64, i64, i64, BTreeSet<String>)> {
    emu.with_state(|st| {
        st.load_balancers
            .values()
            .flat_map(|lb| {
                lb.ports.iter().map(|p| {
                    let names = st
                        .instances
                        .values()
                        .filter(|i| p.instances.contains(&i.unique_id))
                        .map(|i| i.name.clone())
                        .collect();
                    (lb.name.clone(), p.lb_port, p.balancing_type, lb.network_volume, names)
                })
            })
            .collect()
    })
}

#[tokio::test]
async fn e2e_against_a_cluster() {
    let Ok(kubeconfig) = std::env::var("NIFCLOUD_E2E_KUBECONFIG") else {
        eprintln!(
            "skipping e2e_against_a_cluster: NIFCLOUD_E2E_KUBECONFIG is not set (a kubeconfig of a cluster whose nodes run with --cloud-provider=external)"
        );
        return;
    };
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig).expect("kubeconfig"),
        &Default::default(),
    )
    .await
    .expect("kube config");
    let client = kube::Client::try_from(config).expect("client");
    let nodes: Api<Node> = Api::all(client.clone());
    let cluster_nodes = nodes.list(&ListParams::default()).await.expect("list nodes").items;
    let node_names: Vec<String> = cluster_nodes.iter().filter_map(|n| n.metadata.name.clone()).collect();
    // The emulated cloud has one server per node (plus one to terminate). Server names differ from node
    // names on purpose: the provider matches the nodes by their InternalIP, which the servers carry.
    let mut cfg = EmulatorConfig::sample();
    let mut server_names = BTreeSet::new();
    cfg.instances = cluster_nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let ip = n
                .status
                .as_ref()
                .and_then(|s| s.addresses.as_ref())
                .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
                .map(|a| a.address.clone())
                .unwrap_or_else(|| format!("10.0.0.{}", 10 + i));
            let server = format!("e2enode{i}");
            server_names.insert(server.clone());
            InstanceConfig::new(&server, "east-11").with_ips(&format!("203.0.113.{}", 10 + i), &ip)
        })
        .collect();
    cfg.instances.push(InstanceConfig::new("e2eghost", "east-11"));
    let emu = Emulator::builder().config(cfg).start().await.expect("emulator");
    let (k, s) = emu.credentials();
    let _ccm = Ccm(Command::new(env!("CARGO_BIN_EXE_nifcloud-cloud-controller-manager"))
        .args([
            "--kubeconfig",
            &kubeconfig,
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

    // 1. Nodes initialized.
    for name in &node_names {
        let api = nodes.clone();
        eventually(&format!("node {name} initialized"), Duration::from_secs(120), || {
            let api = api.clone();
            async move {
                let n = api.get(name).await.ok()?;
                let pid = n.spec.as_ref()?.provider_id.clone()?;
                let labels = n.metadata.labels.unwrap_or_default();
                (pid.starts_with("nifcloud:///east-11/")
                    && labels.get("topology.kubernetes.io/zone").map(String::as_str) == Some("east-11")
                    && labels.contains_key("node.kubernetes.io/instance-type"))
                .then_some(())
            }
        })
        .await;
    }

    // 2. The article's nginx Service gets an external IP with every node registered.
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    let _ = services.delete(SVC, &DeleteParams::default()).await;
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
    let ip = eventually("external IP", Duration::from_secs(120), || {
        let services = services.clone();
        async move {
            let s = services.get(SVC).await.ok()?;
            s.status?.load_balancer?.ingress?.first()?.ip.clone()
        }
    })
    .await;
    let members = lb_members(&emu);
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0].4, server_names, "every node registered behind {ip}");

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
        let m = lb_members(&emu);
        async move { (m.len() == 1 && m[0].1 == 8080 && m[0].2 == 2 && m[0].3 == 100).then_some(()) }
    })
    .await;

    // 4. Deleting the Service deletes the load balancer.
    services
        .delete(SVC, &DeleteParams::default())
        .await
        .expect("delete service");
    eventually("load balancer deleted", Duration::from_secs(120), || {
        let empty = emu.with_state(|st| st.load_balancers.is_empty());
        let services = services.clone();
        async move { (empty && services.get_opt(SVC).await.ok()?.is_none()).then_some(()) }
    })
    .await;

    // 5. The Node of a terminated server is deleted (a Node object without a kubelet is never Ready).
    let uid = emu.with_state(|st| st.instances["e2eghost"].unique_id.clone());
    let ghost = Node {
        metadata: kube::api::ObjectMeta {
            name: Some("e2eghost".into()),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            provider_id: Some(format!("nifcloud:///east-11/{uid}")),
            ..Default::default()
        }),
        ..Default::default()
    };
    nodes
        .create(&PostParams::default(), &ghost)
        .await
        .expect("create ghost node");
    emu.terminate_instance("e2eghost").expect("terminate");
    eventually(
        "node of the terminated server deleted",
        Duration::from_secs(120),
        || {
            let nodes = nodes.clone();
            async move { nodes.get_opt("e2eghost").await.ok()?.is_none().then_some(()) }
        },
    )
    .await;
    emu.shutdown().await;
}
