//! `cargo xtask deploy` end to end against a mocked API server (wiremock): the binary reads a kubeconfig that
//! points at the mock, server-side applies every object and waits for the rollouts. The mock answers as a cluster
//! with one control-plane node and as one with three would: with one, the CCM's second replica cannot be
//! scheduled (both replicas use the node's port 10258), and the deploy must still finish.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const NS: &str = "kube-system";
const CCM: &str = "nifcloud-cloud-controller-manager";
const CCM_LABELS: &str = "app.kubernetes.io/name=nifcloud-cloud-controller-manager";
/// What the scheduler says about a second hostNetwork replica on a single control-plane node.
const NO_FREE_PORT: &str = "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports. \
                            preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.";

/// Answers a PATCH with the object it was sent (what an API server returns after apply, minus defaulting).
struct Echo;
impl Respond for Echo {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        ResponseTemplate::new(200)
            .set_body_bytes(req.body.clone())
            .insert_header("content-type", "application/json")
    }
}

/// A Deployment as the API reports it after the controller has observed it.
fn deployment(name: &str, replicas: i64, available: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": name, "namespace": NS, "generation": 1},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app.kubernetes.io/name": name}}, "template": {}},
           "status": {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
                      "readyReplicas": available, "availableReplicas": available}})
}

fn pod(name: &str, node: Option<&str>, phase: &str, conditions: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": NS, "labels": {"app.kubernetes.io/name": CCM}},
           "spec": {"nodeName": node, "containers": [{"name": "cloud-controller-manager"}]},
           "status": {"phase": phase, "conditions": conditions}})
}

fn running(name: &str, node: &str, ready: bool) -> Value {
    let ready = if ready { "True" } else { "False" };
    pod(
        name,
        Some(node),
        "Running",
        json!([{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": ready}]),
    )
}

fn unschedulable(name: &str) -> Value {
    pod(
        name,
        None,
        "Pending",
        json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": NO_FREE_PORT}]),
    )
}

/// The cluster the mock plays.
struct Cluster {
    /// Control-plane nodes (where the CCM runs) and workers (with them, where the CSI node plugin runs).
    control_plane: i64,
    workers: i64,
    /// The CCM's available replicas and its pods.
    ccm_available: i64,
    ccm_pods: Vec<Value>,
}

impl Cluster {
    /// One control-plane node: the first replica runs, the second cannot be scheduled.
    fn one_control_plane_node() -> Self {
        Self {
            control_plane: 1,
            workers: 2,
            ccm_available: 1,
            ccm_pods: vec![running("ccm-a", "cp1", true), unschedulable("ccm-b")],
        }
    }

    /// Three control-plane nodes: both replicas run, on different nodes.
    fn three_control_plane_nodes() -> Self {
        Self {
            control_plane: 3,
            workers: 2,
            ccm_available: 2,
            ccm_pods: vec![running("ccm-a", "cp1", true), running("ccm-b", "cp2", true)],
        }
    }

    async fn serve(&self) -> MockServer {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path(format!("/api/v1/namespaces/{NS}/secrets/nifcloud-credentials")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "nifcloud-credentials", "namespace": NS}})))
            .mount(&server)
            .await;
        Mock::given(method("PATCH")).respond_with(Echo).mount(&server).await;
        Mock::given(method("GET"))
            .and(path(format!("/apis/apps/v1/namespaces/{NS}/deployments/{CCM}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(deployment(CCM, 2, self.ccm_available)))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(format!(
                "/apis/apps/v1/namespaces/{NS}/deployments/nifcloud-csi-controller"
            )))
            .respond_with(ResponseTemplate::new(200).set_body_json(deployment("nifcloud-csi-controller", 2, 2)))
            .mount(&server)
            .await;
        let nodes = self.control_plane + self.workers;
        Mock::given(method("GET"))
            .and(path(format!("/apis/apps/v1/namespaces/{NS}/daemonsets/nifcloud-csi-node")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "nifcloud-csi-node", "generation": 1},
                "status": {"observedGeneration": 1, "desiredNumberScheduled": nodes, "numberReady": nodes,
                           "updatedNumberScheduled": nodes}})))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(format!("/api/v1/namespaces/{NS}/pods")))
            .and(query_param("labelSelector", CCM_LABELS))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": self.ccm_pods})))
            .mount(&server)
            .await;
        server
    }
}

struct Run {
    success: bool,
    stdout: String,
    stderr: String,
    requests: Vec<Request>,
}

/// Runs `cargo xtask deploy` (the built binary) with `args` against `server`.
async fn deploy(server: &MockServer, args: &[&str]) -> Run {
    deploy_with_env(server, args, &[]).await
}

/// [`deploy`] with extra environment variables.
async fn deploy_with_env(server: &MockServer, args: &[&str], env: &[(&str, &str)]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: mock\n  cluster: {{server: '{}'}}\nusers:\n- name: u\n  \
             user: {{}}\ncontexts:\n- name: mock\n  context: {{cluster: mock, user: u}}\ncurrent-context: mock\n",
            server.uri()
        ),
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("deploy")
        .args(args)
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", dir.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("NO_PROXY", "*")
        .env("no_proxy", "*")
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("cargo xtask deploy did not finish in 120 s")
        .unwrap();
    Run {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        requests: server.received_requests().await.unwrap(),
    }
}

impl Run {
    fn ok(&self) -> &Self {
        assert!(self.success, "deploy failed:\n{}\n{}", self.stdout, self.stderr);
        self
    }

    /// The body of the (last) apply to `url_path`.
    fn applied(&self, url_path: &str) -> Value {
        let req = self
            .requests
            .iter()
            .rfind(|r| r.method.as_str() == "PATCH" && r.url.path() == url_path)
            .unwrap_or_else(|| panic!("{url_path} not applied"));
        serde_json::from_slice(&req.body).unwrap()
    }

    fn position(&self, m: &str, url_path: &str) -> usize {
        self.requests
            .iter()
            .position(|r| r.method.as_str() == m && r.url.path() == url_path)
            .unwrap_or_else(|| panic!("no {m} {url_path}"))
    }

    fn listed_pods(&self) -> bool {
        self.requests.iter().any(|r| r.url.path().ends_with("/pods"))
    }
}

const PRODUCTION: &[&str] = &["--cluster-instances", "k8s*", "--timeout", "30"];

fn ccm_path(kind_path: &str, name: &str) -> String {
    format!("/{kind_path}/namespaces/{NS}/{name}")
}

#[tokio::test(flavor = "multi_thread")]
async fn one_control_plane_node_rolls_out_with_one_ccm_replica_running() {
    let server = Cluster::one_control_plane_node().serve().await;
    let run = deploy(&server, PRODUCTION).await;
    run.ok();
    assert!(
        run.stdout.contains(&format!(
            "ready    Deployment {NS}/{CCM}: 1/2 available, 2/2 updated, 1 unschedulable ({NO_FREE_PORT})"
        )),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("all 3 workloads rolled out"), "{}", run.stdout);
    assert!(run.listed_pods(), "the unschedulable replica is found through the pods");

    // what was applied: two replicas, Recreate, a budget that never blocks, the cloud config before the Deployment
    let dep = run.applied(&ccm_path("apis/apps/v1", &format!("deployments/{CCM}")));
    assert_eq!(dep["spec"]["replicas"], 2);
    assert_eq!(dep["spec"]["strategy"]["type"], "Recreate");
    let pdb = run.applied(&ccm_path("apis/policy/v1", &format!("poddisruptionbudgets/{CCM}")));
    assert_eq!(pdb["spec"]["maxUnavailable"], "100%");
    let cm = ccm_path("api/v1", "configmaps/nifcloud-cloud-config");
    assert!(
        run.position("PATCH", &cm) < run.position("PATCH", &ccm_path("apis/apps/v1", &format!("deployments/{CCM}")))
    );
    let args = dep["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains("--cloud-config=/etc/nifcloud/cloud.yaml"), "{args}");
    assert!(!args.contains("--security-group"), "{args}");
}

#[tokio::test(flavor = "multi_thread")]
async fn three_control_plane_nodes_roll_out_with_both_ccm_replicas_available() {
    let server = Cluster::three_control_plane_nodes().serve().await;
    let run = deploy(&server, PRODUCTION).await;
    run.ok();
    assert!(
        run.stdout
            .contains(&format!("ready    Deployment {NS}/{CCM}: 2/2 available, 2/2 updated\n")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!(
            "ready    DaemonSet {NS}/nifcloud-csi-node: 5/5 ready, 5/5 updated"
        )),
        "{}",
        run.stdout
    );
    assert!(!run.listed_pods(), "a fully available CCM needs no look at its pods");
}

/// With three nodes a replica that is scheduled but never becomes available is a failure, not "unschedulable".
#[tokio::test(flavor = "multi_thread")]
async fn three_control_plane_nodes_wait_for_a_scheduled_replica_and_time_out_naming_it() {
    let mut cluster = Cluster::three_control_plane_nodes();
    cluster.ccm_available = 1;
    cluster.ccm_pods = vec![running("ccm-a", "cp1", true), running("ccm-b", "cp2", false)];
    let server = cluster.serve().await;
    let run = deploy(&server, &["--cluster-instances", "k8s*", "--timeout", "1"]).await;
    assert!(!run.success, "{}", run.stdout);
    assert!(
        run.stderr.contains(&format!(
            "timed out after 1s waiting for: Deployment {NS}/{CCM}: 1/2 available, 2/2 updated"
        )),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("nifcloud-csi"),
        "only the CCM is late: {}",
        run.stderr
    );
}

/// A rollout that cannot finish fails with the one line that says why, also under `RUST_BACKTRACE=1` (common on
/// developer machines), where an error returned from `main` would end in a backtrace of the program.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_deploy_says_why_in_one_line_whatever_rust_backtrace_says() {
    let mut cluster = Cluster::three_control_plane_nodes();
    cluster.ccm_available = 1;
    cluster.ccm_pods = vec![running("ccm-a", "cp1", true), running("ccm-b", "cp2", false)];
    let server = cluster.serve().await;
    let backtraces = [("RUST_BACKTRACE", "1"), ("RUST_LIB_BACKTRACE", "1")];
    let run = deploy_with_env(&server, &["--cluster-instances", "k8s*", "--timeout", "1"], &backtraces).await;
    assert!(!run.success, "{}", run.stdout);
    assert_eq!(
        run.stderr,
        format!("error: timed out after 1s waiting for: Deployment {NS}/{CCM}: 1/2 available, 2/2 updated\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn security_group_rules_are_switched_on_by_a_deploy_flag() {
    let server = Cluster::three_control_plane_nodes().serve().await;
    let mut args = PRODUCTION.to_vec();
    args.extend(["--security-group-rules", "--security-group-name", "k8snodes"]);
    let run = deploy(&server, &args).await;
    run.ok();
    let dep = run.applied(&ccm_path("apis/apps/v1", &format!("deployments/{CCM}")));
    let args: Vec<&str> = dep["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(args.contains(&"--security-group-rules=true"), "{args:?}");
    assert!(args.contains(&"--security-group-name=k8snodes"), "{args:?}");
}
