//! The node and lifecycle controllers against a scripted API server.

use super::lifecycle::{LifecycleAction, SHUTDOWN_TAINT, monitor_node, shutdown_taint};
use super::*;
use crate::testing::mock::{ApiMock, json_response};
use crate::testing::{Call, FakeProvider};
use http::Method;
use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

const NODE_PATH: &str = "/api/v1/nodes/w1";
const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

fn addr(t: &str, a: &str) -> NodeAddress {
    NodeAddress {
        type_: t.into(),
        address: a.into(),
    }
}

fn node(taints: Vec<Taint>, ready: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some("w1".into()),
            uid: Some("uid-w1".into()),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: Some(taints),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            addresses: Some(vec![addr("Hostname", "w1")]),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: ready.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

fn other_taint() -> Taint {
    Taint {
        key: "dedicated".into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    }
}

fn versioned(mut n: Node, rv: &str) -> Node {
    n.metadata.resource_version = Some(rv.into());
    n
}

async fn expect_get(mock: &mut ApiMock, n: &Node) {
    let (req, _) = mock.next().await;
    assert_eq!((req.method(), req.uri().path()), (&Method::GET, NODE_PATH));
    mock.respond(reply(n));
}

fn uninit_taint() -> Taint {
    Taint {
        key: UNINITIALIZED_TAINT.into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    }
}

fn make_ctx(client: kube::Client, provider: Arc<FakeProvider>) -> Arc<NodeContext> {
    let events = EventSink::new(client.clone(), "cloud-controller-manager", None);
    Arc::new(NodeContext::new(
        client,
        provider,
        events,
        Duration::from_secs(300),
        Arc::new(Metrics::default()),
    ))
}

fn start(n: Node, ctx: &Arc<NodeContext>) -> tokio::task::JoinHandle<Action> {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        match reconcile(Arc::new(n), ctx).await {
            Ok(a) => a,
            Err(never) => match never {},
        }
    })
}

fn reply(n: &Node) -> http::Response<kube::client::Body> {
    json_response(200, &serde_json::to_value(n).unwrap())
}

#[tokio::test]
async fn uninitialized_node_gets_addresses_then_labels_provider_id_and_loses_taint() {
    let (client, mut mock) = ApiMock::new();
    let provider = Arc::new(FakeProvider::new());
    provider.add_instance("w1", "10.0.0.7");
    let ctx = make_ctx(client, provider.clone());
    let n = versioned(node(vec![uninit_taint(), other_taint()], "True"), "5");
    let task = start(n.clone(), &ctx);

    expect_get(&mut mock, &n).await;
    let (req, body) = mock.next().await;
    assert_eq!(
        (req.method(), req.uri().path()),
        (&Method::PATCH, "/api/v1/nodes/w1/status")
    );
    assert_eq!(
        body,
        serde_json::json!({"status": {"addresses": [
            {"type": "InternalIP", "address": "10.0.0.7"}, {"type": "Hostname", "address": "w1"}
        ]}})
    );
    mock.respond(reply(&versioned(n.clone(), "6")));

    let (req, body) = mock.next().await;
    assert_eq!((req.method(), req.uri().path()), (&Method::PATCH, NODE_PATH));
    assert_eq!(req.headers()["content-type"], "application/merge-patch+json");
    assert_eq!(
        body["metadata"]["resourceVersion"], "6",
        "guarded by the version after the status write"
    );
    assert_eq!(body["spec"]["providerID"], "fake://w1");
    assert_eq!(
        body["spec"]["taints"],
        serde_json::json!([{"key": "dedicated", "effect": "NoSchedule"}])
    );
    let labels = &body["metadata"]["labels"];
    for (k, v) in [
        (LABEL_ZONE, "fake-zone-1a"),
        (LABEL_ZONE_BETA, "fake-zone-1a"),
        (LABEL_REGION, "fake-region-1"),
        (LABEL_REGION_BETA, "fake-region-1"),
        (LABEL_INSTANCE_TYPE, "fake.small"),
        (LABEL_INSTANCE_TYPE_BETA, "fake.small"),
    ] {
        assert_eq!(labels[k], v, "{k}");
    }
    mock.respond(reply(&n));

    let (req, body) = mock.next().await;
    assert_eq!((req.method(), req.uri().path()), (&Method::POST, EVENTS_PATH));
    assert_eq!(body["reason"], "Synced");
    mock.respond(json_response(201, &body));
    assert_eq!(task.await.unwrap(), Action::requeue(Duration::from_secs(300)));
    assert_eq!(provider.calls(), vec![Call::InstanceMetadata("w1".into())]);
    mock.assert_idle().await;
}

#[tokio::test]
async fn initialized_node_addresses_patched_only_when_different_and_at_most_once_per_period() {
    let (client, mut mock) = ApiMock::new();
    let provider = Arc::new(FakeProvider::new());
    provider.add_instance("w1", "10.0.0.7");
    let ctx = make_ctx(client, provider.clone());
    let mut n = node(vec![], "True");
    n.status.as_mut().unwrap().addresses = Some(vec![addr("Hostname", "w1"), addr("InternalIP", "10.0.0.7")]);

    // Same addresses (other order): no request.
    assert_eq!(
        start(n.clone(), &ctx).await.unwrap(),
        Action::requeue(Duration::from_secs(300))
    );
    mock.assert_idle().await;
    // Within the period: not even a cloud call.
    let again = start(n.clone(), &ctx).await.unwrap();
    assert_ne!(again, Action::requeue(Duration::from_secs(300)));
    assert_eq!(provider.calls().len(), 1);

    // A fresh controller (period elapsed) with a changed cloud address: one status patch.
    provider.add_instance("w1", "10.0.0.8");
    let (client, mut mock) = ApiMock::new();
    let ctx2 = make_ctx(client, provider.clone());
    let task = start(n.clone(), &ctx2);
    let (req, body) = mock.next().await;
    assert_eq!(
        (req.method(), req.uri().path()),
        (&Method::PATCH, "/api/v1/nodes/w1/status")
    );
    assert_eq!(body["status"]["addresses"][0]["address"], "10.0.0.8");
    mock.respond(reply(&n));
    task.await.unwrap();
    mock.assert_idle().await;
}

#[tokio::test]
async fn metadata_failure_backs_off_without_writes() {
    let (client, mut mock) = ApiMock::new();
    let provider = Arc::new(FakeProvider::new()); // no instance: metadata fails
    let ctx = make_ctx(client, provider);
    assert_eq!(
        start(node(vec![uninit_taint()], "True"), &ctx).await.unwrap(),
        Action::requeue(Duration::from_secs(1))
    );
    assert_eq!(
        start(node(vec![uninit_taint()], "True"), &ctx).await.unwrap(),
        Action::requeue(Duration::from_secs(2))
    );
    mock.assert_idle().await;
}

#[tokio::test]
async fn provided_node_ip_not_in_cloud_blocks_initialization() {
    let (client, mut mock) = ApiMock::new();
    let provider = Arc::new(FakeProvider::new());
    provider.add_instance("w1", "10.0.0.7");
    let ctx = make_ctx(client, provider);
    let mut n = node(vec![uninit_taint()], "True");
    n.metadata.annotations = Some([(PROVIDED_NODE_IP_ANNOTATION.to_owned(), "10.9.9.9".to_owned())].into());
    let task = start(n.clone(), &ctx);
    expect_get(&mut mock, &n).await;
    assert_eq!(task.await.unwrap(), Action::requeue(Duration::from_secs(1)));
    mock.assert_idle().await;
}

async fn monitor(
    n: Node,
    provider: &Arc<FakeProvider>,
    client: kube::Client,
) -> tokio::task::JoinHandle<LifecycleAction> {
    let provider = provider.clone();
    tokio::spawn(async move {
        let events = EventSink::new(client.clone(), "cloud-controller-manager", None);
        monitor_node(&client, provider.as_ref(), &events, &n).await.unwrap()
    })
}

#[tokio::test]
async fn lifecycle_ready_node_loses_shutdown_taint_without_cloud_call() {
    let (client, mut mock) = ApiMock::new();
    let provider = Arc::new(FakeProvider::new());
    let n = versioned(node(vec![shutdown_taint(), other_taint()], "True"), "9");
    let task = monitor(n.clone(), &provider, client).await;
    expect_get(&mut mock, &n).await;
    let (req, body) = mock.next().await;
    assert_eq!((req.method(), req.uri().path()), (&Method::PATCH, NODE_PATH));
    assert_eq!(req.headers()["content-type"], "application/merge-patch+json");
    let expected = serde_json::json!({
        "metadata": {"resourceVersion": "9"},
        "spec": {"taints": [{"key": "dedicated", "effect": "NoSchedule"}]}
    });
    assert_eq!(
        body, expected,
        "the whole (atomic) taint list, guarded by resourceVersion"
    );
    mock.respond(reply(&n));
    assert_eq!(task.await.unwrap(), LifecycleAction::RemoveShutdownTaint);
    assert!(provider.calls().is_empty());
}

#[tokio::test]
async fn lifecycle_gone_instance_deletes_node_with_uid_precondition() {
    let (client, mut mock) = ApiMock::new();
    let provider = Arc::new(FakeProvider::new());
    let n = node(vec![], "Unknown");
    let task = monitor(n.clone(), &provider, client).await;
    let (req, body) = mock.next().await;
    assert_eq!((req.method(), req.uri().path()), (&Method::POST, EVENTS_PATH));
    assert_eq!(body["reason"], "DeletingNode");
    mock.respond(json_response(201, &body));
    let (req, body) = mock.next().await;
    assert_eq!((req.method(), req.uri().path()), (&Method::DELETE, NODE_PATH));
    assert_eq!(body["preconditions"]["uid"], "uid-w1");
    mock.respond(reply(&n));
    assert_eq!(task.await.unwrap(), LifecycleAction::DeleteNode);
    assert_eq!(provider.calls(), vec![Call::InstanceExists("w1".into())]);
}

#[tokio::test]
async fn lifecycle_shut_down_instance_gets_taint_and_running_one_loses_it() {
    let (client, mut mock) = ApiMock::new();
    let provider = Arc::new(FakeProvider::new());
    provider.add_instance("w1", "10.0.0.7");
    provider.set_shutdown("w1", true);
    let n = node(vec![], "False");
    let task = monitor(n.clone(), &provider, client.clone()).await;
    expect_get(&mut mock, &n).await;
    let (req, body) = mock.next().await;
    assert_eq!((req.method(), req.uri().path()), (&Method::PATCH, NODE_PATH));
    assert_eq!(body["spec"]["taints"][0]["key"], SHUTDOWN_TAINT);
    assert_eq!(body["spec"]["taints"][0]["effect"], "NoSchedule");
    mock.respond(reply(&n));
    assert_eq!(task.await.unwrap(), LifecycleAction::AddShutdownTaint);

    provider.set_shutdown("w1", false);
    let tainted = node(vec![shutdown_taint()], "False");
    let task = monitor(tainted.clone(), &provider, client).await;
    expect_get(&mut mock, &tainted).await;
    let (req, body) = mock.next().await;
    assert_eq!(req.method(), Method::PATCH);
    assert_eq!(body["spec"]["taints"], serde_json::json!([]));
    mock.respond(reply(&tainted));
    assert_eq!(task.await.unwrap(), LifecycleAction::RemoveShutdownTaint);
    mock.assert_idle().await;
}

#[tokio::test]
async fn initialization_conflict_rereads_and_retries() {
    let (client, mut mock) = ApiMock::new();
    let provider = Arc::new(FakeProvider::new());
    let mut meta = crate::provider::InstanceMetadata {
        provider_id: "fake://w1".into(),
        ..Default::default()
    };
    meta.zone = "z".into();
    provider.set_instance(
        "w1",
        crate::testing::FakeInstance {
            metadata: meta,
            shutdown: false,
        },
    );
    let ctx = make_ctx(client, provider);
    let n = versioned(node(vec![uninit_taint()], "True"), "1");
    let task = start(n.clone(), &ctx);
    expect_get(&mut mock, &n).await;
    let (req, body) = mock.next().await;
    assert_eq!(req.method(), Method::PATCH);
    assert_eq!(body["metadata"]["resourceVersion"], "1");
    mock.respond(crate::testing::mock::status_response(409, "Conflict"));
    // Someone added a taint meanwhile: it is kept.
    let newer = versioned(node(vec![uninit_taint(), other_taint()], "True"), "2");
    expect_get(&mut mock, &newer).await;
    let (_, body) = mock.next().await;
    assert_eq!(body["metadata"]["resourceVersion"], "2");
    assert_eq!(
        body["spec"]["taints"],
        serde_json::json!([{"key": "dedicated", "effect": "NoSchedule"}])
    );
    mock.respond(reply(&newer));
    let (req, body) = mock.next().await;
    assert_eq!(body["reason"], "Synced");
    assert_eq!(req.method(), Method::POST);
    mock.respond(json_response(201, &body));
    assert_eq!(task.await.unwrap(), Action::requeue(Duration::from_secs(300)));
}
