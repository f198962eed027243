//! The deploy IO against a wiremock API server: the exact server-side-apply requests, dry-run classification,
//! rollout waiting and deletion order.

use std::time::Duration;

use kube::Client;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::plan::{Change, Planned};
use super::*;

/// Answers a PATCH with the object it was sent (what an API server returns after apply, minus defaulting).
struct Echo;
impl Respond for Echo {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        ResponseTemplate::new(200)
            .set_body_bytes(req.body.clone())
            .insert_header("content-type", "application/json")
    }
}

fn not_found() -> ResponseTemplate {
    ResponseTemplate::new(404).set_body_json(json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"
    }))
}

fn client_for(server: &MockServer) -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = kube::Config::new(server.uri().parse().unwrap());
    Client::try_from(config).unwrap()
}

fn rendered(overlay: Overlay) -> Vec<Planned> {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    planned(
        &root,
        &RenderOptions {
            overlay,
            ..RenderOptions::default()
        },
    )
    .unwrap()
}

fn paths(reqs: &[Request], m: &str) -> Vec<String> {
    reqs.iter()
        .filter(|r| r.method.as_str() == m)
        .map(|r| r.url.path().to_owned())
        .collect()
}

#[tokio::test]
async fn apply_sends_one_forced_server_side_apply_per_object_in_order() {
    let server = MockServer::start().await;
    let planned = rendered(Overlay::Production);
    Mock::given(method("PATCH"))
        .and(query_param("fieldManager", FIELD_MANAGER))
        .and(query_param("force", "true"))
        .and(header("content-type", "application/apply-patch+yaml"))
        .respond_with(Echo)
        .expect(planned.len() as u64)
        .mount(&server)
        .await;
    let out = apply_all(&client_for(&server), &planned, false).await.unwrap();
    assert!(out.iter().all(Option::is_none));
    let reqs = server.received_requests().await.unwrap();
    assert!(
        reqs.iter().all(|r| !r.url.query().unwrap_or("").contains("dryRun")),
        "a real apply is not a dry run"
    );
    let sent = paths(&reqs, "PATCH");
    assert_eq!(sent.len(), planned.len());
    let pos = |p: &str| {
        sent.iter()
            .position(|s| s == p)
            .unwrap_or_else(|| panic!("{p} not applied: {sent:?}"))
    };
    let sa = pos("/api/v1/namespaces/kube-system/serviceaccounts/nifcloud-cloud-controller-manager");
    let cr = pos("/apis/rbac.authorization.k8s.io/v1/clusterroles/system:nifcloud-cloud-controller-manager");
    let driver = pos("/apis/storage.k8s.io/v1/csidrivers/additional-storage.csi.nifcloud.com");
    let sc = pos("/apis/storage.k8s.io/v1/storageclasses/nifcloud-standard-flash-a");
    let ccm = pos("/apis/apps/v1/namespaces/kube-system/deployments/nifcloud-cloud-controller-manager");
    let node = pos("/apis/apps/v1/namespaces/kube-system/daemonsets/nifcloud-csi-node");
    let pdb = pos("/apis/policy/v1/namespaces/kube-system/poddisruptionbudgets/nifcloud-csi-controller");
    assert!(
        sa < cr && cr < driver && driver < sc && sc < ccm && driver < node && ccm < pdb,
        "order: {sent:?}"
    );
    // the body is the rendered object
    let body: Value = serde_json::from_slice(
        &reqs
            .iter()
            .find(|r| {
                r.url
                    .path()
                    .ends_with("/csidrivers/additional-storage.csi.nifcloud.com")
            })
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(body["spec"]["attachRequired"], true);
}

#[tokio::test]
async fn dry_run_classifies_against_the_live_objects() {
    let server = MockServer::start().await;
    let planned = rendered(Overlay::Production);
    let sa = planned.iter().find(|p| p.kind.kind == "ServiceAccount").unwrap();
    let ccm = planned
        .iter()
        .find(|p| p.name == "nifcloud-cloud-controller-manager" && p.kind.kind == "Deployment")
        .unwrap();
    let mut live_sa = sa.object.clone();
    live_sa["metadata"]["resourceVersion"] = json!("7");
    live_sa["metadata"]["uid"] = json!("u-1");
    let mut live_ccm = ccm.object.clone();
    live_ccm["spec"]["replicas"] = json!(1);
    Mock::given(method("GET"))
        .and(path(
            "/api/v1/namespaces/kube-system/serviceaccounts/nifcloud-cloud-controller-manager",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(live_sa))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(
            "/apis/apps/v1/namespaces/kube-system/deployments/nifcloud-cloud-controller-manager",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(live_ccm))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(not_found())
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(query_param("dryRun", "All"))
        .and(query_param("fieldManager", FIELD_MANAGER))
        .respond_with(Echo)
        .expect(planned.len() as u64)
        .mount(&server)
        .await;
    let out = apply_all(&client_for(&server), &planned, true).await.unwrap();
    for (p, c) in planned.iter().zip(&out) {
        let want = if p.name == sa.name && p.kind.kind == "ServiceAccount" {
            Change::Unchanged
        } else if std::ptr::eq(p, ccm) {
            Change::Update(vec!["/spec/replicas".into()])
        } else {
            Change::Create
        };
        assert_eq!(c.as_ref(), Some(&want), "{}", p.label());
    }
}

fn ready_deployment(replicas: i64, available: i64) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "generation": 1},
           "spec": {"replicas": replicas, "selector": {}, "template": {}},
           "status": {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas, "availableReplicas": available}})
}

#[tokio::test]
async fn waits_for_rollouts_and_names_what_is_late() {
    let server = MockServer::start().await;
    let planned = rendered(Overlay::Production);
    Mock::given(method("GET"))
        .and(path_regex("/deployments/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(ready_deployment(2, 2)))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("/daemonsets/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "n", "generation": 3},
            "status": {"observedGeneration": 3, "desiredNumberScheduled": 3, "numberReady": 2, "updatedNumberScheduled": 3}})))
        .mount(&server)
        .await;
    let client = client_for(&server);
    let err = wait_for_rollouts(&client, &planned, Duration::from_millis(30), Duration::from_millis(10))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("DaemonSet kube-system/nifcloud-csi-node: 2/3 ready"),
        "{msg}"
    );
    assert!(!msg.contains("Deployment"), "ready Deployments are not named: {msg}");

    server.reset().await;
    Mock::given(method("GET"))
        .and(path_regex("/(deployments|daemonsets)/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "n", "generation": 1}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "desiredNumberScheduled": 2, "numberReady": 2, "updatedNumberScheduled": 2,
                       "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}})))
        .mount(&server)
        .await;
    wait_for_rollouts(&client, &planned, Duration::from_secs(5), Duration::from_millis(10))
        .await
        .unwrap();
}

#[tokio::test]
async fn delete_goes_in_reverse_order_and_tolerates_absent_objects() {
    let server = MockServer::start().await;
    let planned = rendered(Overlay::Emulator);
    Mock::given(method("DELETE"))
        .and(path_regex("/configmaps/"))
        .respond_with(not_found())
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 200}),
        ))
        .mount(&server)
        .await;
    delete_all(&client_for(&server), &planned).await.unwrap();
    let deleted = paths(&server.received_requests().await.unwrap(), "DELETE");
    assert_eq!(deleted.len(), planned.len());
    let pos = |suffix: &str| {
        deleted
            .iter()
            .position(|p| p.ends_with(suffix))
            .unwrap_or_else(|| panic!("{suffix} not deleted"))
    };
    assert!(pos("/daemonsets/nifcloud-csi-node") < pos("/csidrivers/additional-storage.csi.nifcloud.com"));
    assert!(
        pos("/deployments/nifcloud-cloud-controller-manager")
            < pos("/serviceaccounts/nifcloud-cloud-controller-manager")
    );
    assert!(
        !deleted.iter().any(|p| p.ends_with("/namespaces/kube-system")),
        "never deletes the namespace"
    );
}
