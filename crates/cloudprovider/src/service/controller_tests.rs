//! The service controller against a scripted API server: each test asserts the exact requests, in order.

use super::*;
use crate::testing::mock::{ApiMock, json_response, store_with};
use crate::testing::{Call, FakeProvider, endpoint_slice as slice};
use http::Method;
use k8s_openapi::api::core::v1::{LoadBalancerIngress, NodeSpec, ServicePort, ServiceSpec, ServiceStatus};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;

const SVC_PATH: &str = "/api/v1/namespaces/default/services/web";
const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

fn node(name: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            provider_id: Some(format!("fake://{name}")),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn svc() -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("0000-1111".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ports: Some(vec![ServicePort {
                port: 80,
                node_port: Some(30080),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn with_finalizer(mut s: Service) -> Service {
    s.metadata.finalizers = Some(vec![LB_CLEANUP_FINALIZER.into()]);
    s
}

fn with_ingress(mut s: Service, ip: &str) -> Service {
    s.status = Some(ServiceStatus {
        load_balancer: Some(LoadBalancerStatus {
            ingress: Some(vec![LoadBalancerIngress {
                ip: Some(ip.into()),
                ..Default::default()
            }]),
        }),
        ..Default::default()
    });
    s
}

struct Harness {
    mock: ApiMock,
    provider: Arc<FakeProvider>,
    ctx: Arc<ServiceContext>,
    nodes: Writer<Node>,
    slices: Writer<EndpointSlice>,
}

fn harness(nodes: Vec<Node>, resync: Option<Duration>) -> Harness {
    harness_with_slices(nodes, None, resync)
}

/// With `slices`, the context reads EndpointSlices from a store holding them.
fn harness_with_slices(nodes: Vec<Node>, slices: Option<Vec<EndpointSlice>>, resync: Option<Duration>) -> Harness {
    let (client, mock) = ApiMock::new();
    let provider = Arc::new(FakeProvider::new());
    let (store, writer) = store_with(nodes);
    let events = EventSink::new(client.clone(), "cloud-controller-manager", None);
    let mut ctx = ServiceContext::new(
        client,
        provider.clone(),
        "kubernetes".into(),
        store,
        events,
        resync,
        Arc::new(Metrics::default()),
    );
    let (slice_store, slice_writer) = store_with(slices.clone().unwrap_or_default());
    if slices.is_some() {
        ctx = ctx.with_endpoint_slices(slice_store);
    }
    Harness {
        mock,
        provider,
        ctx: Arc::new(ctx),
        nodes: writer,
        slices: slice_writer,
    }
}

impl Harness {
    fn start(&self, s: Service) -> tokio::task::JoinHandle<Action> {
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            match reconcile(Arc::new(s), ctx).await {
                Ok(action) => action,
                Err(never) => match never {},
            }
        })
    }

    async fn expect_event(&mut self, type_: &str, reason: &str) -> serde_json::Value {
        let (req, body) = self.mock.next().await;
        // The first occurrence is created; a repeat updates the event series.
        let path = req.uri().path();
        let ok = (req.method() == Method::POST && path == EVENTS_PATH)
            || (req.method() == Method::PATCH && path.starts_with(&format!("{EVENTS_PATH}/web.")));
        assert!(ok, "expected event {reason}, got {} {path}: {body}", req.method());
        assert_eq!(body["reason"], reason, "{body}");
        assert_eq!(body["type"], type_, "{body}");
        assert_eq!(body["regarding"]["name"], "web");
        self.mock.respond(json_response(201, &body));
        body
    }

    async fn expect_patch(&mut self, path: &str, content_type: &str, reply: &Service) -> serde_json::Value {
        let (req, body) = self.mock.next().await;
        assert_eq!((req.method(), req.uri().path()), (&Method::PATCH, path), "{body}");
        assert_eq!(req.headers()["content-type"], content_type);
        self.mock
            .respond(json_response(200, &serde_json::to_value(reply).unwrap()));
        body
    }
}

#[tokio::test]
async fn new_service_finalizer_before_ensure_then_status_and_events() {
    let mut h = harness(vec![node("b"), node("a")], None);
    let task = h.start(svc());

    let (req, body) = h.mock.next().await;
    assert_eq!((req.method(), req.uri().path()), (&Method::PATCH, SVC_PATH));
    assert_eq!(req.headers()["content-type"], "application/strategic-merge-patch+json");
    assert_eq!(
        body,
        serde_json::json!({"metadata": {"finalizers": [LB_CLEANUP_FINALIZER]}})
    );
    assert!(
        h.provider.calls().is_empty(),
        "the finalizer is written before the provider is called"
    );
    h.mock.respond(json_response(
        200,
        &serde_json::to_value(with_finalizer(svc())).unwrap(),
    ));

    h.expect_event("Normal", "EnsuringLoadBalancer").await;
    let status = h
        .expect_patch(&format!("{SVC_PATH}/status"), "application/merge-patch+json", &svc())
        .await;
    assert_eq!(
        status,
        serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.1"}]}}})
    );
    h.expect_event("Normal", "EnsuredLoadBalancer").await;
    assert_eq!(task.await.unwrap(), Action::await_change());
    assert_eq!(
        h.provider.calls(),
        vec![Call::EnsureLoadBalancer(
            "default/web".into(),
            vec!["a".into(), "b".into()]
        )]
    );
    h.mock.assert_idle().await;
}

#[tokio::test]
async fn status_not_patched_when_unchanged() {
    let mut h = harness(vec![node("a")], None);
    let task = h.start(with_ingress(with_finalizer(svc()), "203.0.113.1"));
    h.expect_event("Normal", "EnsuringLoadBalancer").await;
    // No finalizer patch (present) and no status patch (same ingress): straight to the Ensured event.
    h.expect_event("Normal", "EnsuredLoadBalancer").await;
    assert_eq!(task.await.unwrap(), Action::await_change());
    h.mock.assert_idle().await;
}

#[tokio::test]
async fn node_set_change_updates_only_when_really_changed() {
    let mut h = harness(vec![node("a")], None);
    let synced = with_ingress(with_finalizer(svc()), "203.0.113.1");
    let task = h.start(synced.clone());
    h.expect_event("Normal", "EnsuringLoadBalancer").await;
    h.expect_event("Normal", "EnsuredLoadBalancer").await;
    task.await.unwrap();

    // Same Service, same nodes: nothing at all.
    assert_eq!(h.start(synced.clone()).await.unwrap(), Action::await_change());
    h.mock.assert_idle().await;

    // A node that is excluded joins: the eligible set is unchanged, still nothing.
    let mut excluded = node("x");
    excluded.metadata.labels = Some([(EXCLUDE_LB_LABEL.to_owned(), "true".to_owned())].into());
    h.nodes.apply_watcher_event(&Event::Apply(excluded));
    h.start(synced.clone()).await.unwrap();
    h.mock.assert_idle().await;

    // A real node joins: update_load_balancer (not ensure) with the new set.
    h.nodes.apply_watcher_event(&Event::Apply(node("c")));
    let task = h.start(synced.clone());
    h.expect_event("Normal", "UpdatedLoadBalancer").await;
    task.await.unwrap();
    assert_eq!(
        h.provider.calls(),
        vec![
            Call::EnsureLoadBalancer("default/web".into(), vec!["a".into()]),
            Call::UpdateLoadBalancer("default/web".into(), vec!["a".into(), "c".into()]),
        ]
    );
    assert_eq!(
        h.provider.load_balancer_of("default/web").unwrap().nodes,
        vec!["a", "c"]
    );
}

#[tokio::test]
async fn port_change_re_ensures() {
    let mut h = harness(vec![node("a")], None);
    let synced = with_ingress(with_finalizer(svc()), "203.0.113.1");
    let task = h.start(synced.clone());
    h.expect_event("Normal", "EnsuringLoadBalancer").await;
    h.expect_event("Normal", "EnsuredLoadBalancer").await;
    task.await.unwrap();
    let mut changed = synced;
    changed.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].port = 8080;
    let task = h.start(changed);
    h.expect_event("Normal", "EnsuringLoadBalancer").await;
    h.expect_event("Normal", "EnsuredLoadBalancer").await;
    task.await.unwrap();
    assert_eq!(h.provider.load_balancer_of("default/web").unwrap().ports[0].0, 8080);
}

#[tokio::test]
async fn deletion_deletes_lb_then_removes_finalizer() {
    let mut h = harness(vec![node("a")], None);
    h.provider
        .ensure_load_balancer("kubernetes", &svc(), &[])
        .await
        .unwrap();
    let mut deleting = with_ingress(with_finalizer(svc()), "203.0.113.1");
    deleting.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
    let task = h.start(deleting);
    h.expect_event("Normal", "DeletingLoadBalancer").await;
    let body = h
        .expect_patch(SVC_PATH, "application/strategic-merge-patch+json", &svc())
        .await;
    assert_eq!(
        body,
        serde_json::json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [LB_CLEANUP_FINALIZER]}})
    );
    assert!(
        h.provider.load_balancer_of("default/web").is_none(),
        "the LB is gone before the finalizer goes"
    );
    h.expect_event("Normal", "DeletedLoadBalancer").await;
    assert_eq!(task.await.unwrap(), Action::await_change());
    h.mock.assert_idle().await;
    let calls = h.provider.calls();
    assert_eq!(
        calls[1..],
        [
            Call::GetLoadBalancer("default/web".into()),
            Call::EnsureLoadBalancerDeleted("default/web".into())
        ]
    );
}

#[tokio::test]
async fn type_change_clears_status_then_removes_finalizer() {
    let mut h = harness(vec![node("a")], None);
    h.provider
        .ensure_load_balancer("kubernetes", &svc(), &[])
        .await
        .unwrap();
    let mut clusterip = with_ingress(with_finalizer(svc()), "203.0.113.1");
    clusterip.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    let task = h.start(clusterip);
    h.expect_event("Normal", "DeletingLoadBalancer").await;
    let status = h
        .expect_patch(&format!("{SVC_PATH}/status"), "application/merge-patch+json", &svc())
        .await;
    assert_eq!(
        status,
        serde_json::json!({"status": {"loadBalancer": {"ingress": null}}})
    );
    let fin = h
        .expect_patch(SVC_PATH, "application/strategic-merge-patch+json", &svc())
        .await;
    assert!(fin["metadata"]["$deleteFromPrimitiveList/finalizers"].is_array());
    h.expect_event("Normal", "DeletedLoadBalancer").await;
    task.await.unwrap();
}

#[tokio::test]
async fn load_balancer_class_is_left_alone() {
    let mut h = harness(vec![node("a")], None);
    let mut classy = svc();
    classy.spec.as_mut().unwrap().load_balancer_class = Some("example.com/other".into());
    assert_eq!(h.start(classy).await.unwrap(), Action::await_change());
    h.mock.assert_idle().await;
    assert!(h.provider.calls().is_empty());
}

#[tokio::test]
async fn retry_after_requeues_at_the_given_delay_without_failure_event() {
    let mut h = harness(vec![node("a")], None);
    h.provider.fail_next_ensure(ProviderError::retry_after(
        Duration::from_secs(15),
        "still provisioning",
    ));
    let task = h.start(with_finalizer(svc()));
    h.expect_event("Normal", "EnsuringLoadBalancer").await;
    assert_eq!(task.await.unwrap(), Action::requeue(Duration::from_secs(15)));
    h.mock.assert_idle().await;
}

#[tokio::test]
async fn failures_back_off_5s_10s_and_reset_on_success() {
    let mut h = harness(vec![node("a")], None);
    for expected in [5, 10] {
        h.provider.fail_next_ensure(ProviderError::cloud("api down"));
        let task = h.start(with_finalizer(svc()));
        h.expect_event("Normal", "EnsuringLoadBalancer").await;
        let ev = h.expect_event("Warning", "SyncLoadBalancerFailed").await;
        assert!(ev["note"].as_str().unwrap().contains("api down"), "{ev}");
        assert_eq!(task.await.unwrap(), Action::requeue(Duration::from_secs(expected)));
    }
    let task = h.start(with_ingress(with_finalizer(svc()), "203.0.113.1"));
    h.expect_event("Normal", "EnsuringLoadBalancer").await;
    h.expect_event("Normal", "EnsuredLoadBalancer").await;
    task.await.unwrap();
    assert_eq!(h.ctx.backoff.failing_keys(), 0);
}

#[tokio::test]
async fn invalid_configuration_is_a_warning_with_the_provider_reason_and_a_slow_retry() {
    let mut h = harness(vec![node("a")], None);
    h.provider.fail_next_ensure(ProviderError::invalid(
        "InvalidAnnotation",
        "bad value for example.com/lb-size",
    ));
    let task = h.start(with_finalizer(svc()));
    h.expect_event("Normal", "EnsuringLoadBalancer").await;
    let ev = h.expect_event("Warning", "InvalidAnnotation").await;
    assert_eq!(ev["note"], "bad value for example.com/lb-size");
    assert_eq!(task.await.unwrap(), Action::requeue(Duration::from_secs(300)));
    h.mock.assert_idle().await;
}

#[tokio::test]
async fn no_eligible_nodes_warns_unavailable() {
    let mut excluded = node("a");
    excluded.metadata.labels = Some([(EXCLUDE_LB_LABEL.to_owned(), "garbage".to_owned())].into());
    let mut h = harness(vec![excluded], None);
    let task = h.start(with_ingress(with_finalizer(svc()), "203.0.113.1"));
    h.expect_event("Normal", "EnsuringLoadBalancer").await;
    h.expect_event("Warning", "UnAvailableLoadBalancer").await;
    h.expect_event("Normal", "EnsuredLoadBalancer").await;
    task.await.unwrap();
    assert_eq!(
        h.provider.calls(),
        vec![Call::EnsureLoadBalancer("default/web".into(), vec![])]
    );
}

#[tokio::test]
async fn resync_period_requeues_and_re_ensures_quietly() {
    tokio::time::pause();
    let mut h = harness(vec![node("a")], Some(Duration::from_secs(600)));
    let rounds = h.ctx.resync.unwrap();
    // The requeue after an ensure: until the next round starts (within one period).
    let until_next_round = |h: &Harness| {
        let ensured_at = h.ctx.synced("default/web").unwrap().ensured_at;
        let left = rounds.next_after(ensured_at) - ensured_at;
        assert!(left <= Duration::from_secs(600), "{left:?}");
        Action::requeue(left.max(Duration::from_secs(1)))
    };
    let synced = with_ingress(with_finalizer(svc()), "203.0.113.1");
    let task = h.start(synced.clone());
    h.expect_event("Normal", "EnsuringLoadBalancer").await;
    h.expect_event("Normal", "EnsuredLoadBalancer").await;
    assert_eq!(task.await.unwrap(), until_next_round(&h));
    // Pretend the last ensure was before the current round started: the next reconcile re-ensures without Events
    // (status unchanged).
    {
        let mut map = h.ctx.synced.lock().unwrap();
        let s = map.get_mut("default/web").unwrap();
        s.ensured_at = s
            .ensured_at
            .checked_sub(Duration::from_secs(601))
            .unwrap_or(s.ensured_at);
    }
    let action = h.start(synced).await.unwrap();
    assert_eq!(action, until_next_round(&h));
    h.mock.assert_idle().await;
    assert_eq!(h.provider.calls().len(), 2);
}

#[tokio::test]
async fn services_synced_against_one_node_set_hold_one_copy_of_it() {
    let mut h = harness(vec![node("a"), node("b")], None);
    let synced = with_ingress(with_finalizer(svc()), "203.0.113.1");
    let task = h.start(synced);
    h.expect_event("Normal", "EnsuringLoadBalancer").await;
    h.expect_event("Normal", "EnsuredLoadBalancer").await;
    task.await.unwrap();
    let held = h.ctx.synced("default/web").unwrap().nodes;
    let key = |names: &[&str]| -> NodeSetKey {
        names
            .iter()
            .map(|n| ((*n).to_owned(), Some(format!("fake://{n}"))))
            .collect()
    };
    assert_eq!(*held, key(&["a", "b"]));
    // Another Service's sync against the same nodes gets the very same allocation; a new node set replaces it.
    assert!(Arc::ptr_eq(&held, &h.ctx.shared_node_set(key(&["a", "b"]))));
    let grown = h.ctx.shared_node_set(key(&["a", "b", "c"]));
    assert!(!Arc::ptr_eq(&held, &grown));
    assert!(Arc::ptr_eq(&grown, &h.ctx.shared_node_set(key(&["a", "b", "c"]))));
    assert_eq!(*held, key(&["a", "b"]), "what a Service holds does not change");
}

#[tokio::test]
async fn node_set_changes_ticks_only_on_real_changes() {
    use futures::FutureExt;
    let (store, mut writer) = store_with(vec![node("a")]);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let ticks = futures::stream::poll_fn({
        let mut rx = rx;
        move |cx| rx.poll_recv(cx)
    });
    let mut changes = Box::pin(node_set_changes(store, ticks));
    let mut step = || {
        tx.send(()).unwrap();
        changes.next().now_or_never().is_some()
    };
    assert!(!step(), "initial observation: no tick");
    writer.apply_watcher_event(&Event::Apply(node("b")));
    assert!(step(), "b joined");
    let mut heartbeat = node("b");
    heartbeat.metadata.resource_version = Some("2".into());
    writer.apply_watcher_event(&Event::Apply(heartbeat));
    assert!(!step(), "status-only change");
    let mut excluded = node("b");
    excluded.metadata.labels = Some([(EXCLUDE_LB_LABEL.to_owned(), "true".to_owned())].into());
    writer.apply_watcher_event(&Event::Apply(excluded));
    assert!(step(), "b excluded");
    writer.apply_watcher_event(&Event::Delete(node("a")));
    assert!(step(), "a left");
}

fn local(mut s: Service) -> Service {
    let spec = s.spec.as_mut().unwrap();
    spec.external_traffic_policy = Some("Local".into());
    spec.health_check_node_port = Some(32000);
    s
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[tokio::test]
async fn local_service_backends_follow_ready_endpoints() {
    let nodes = vec![node("a"), node("b"), node("c")];
    let mut h = harness_with_slices(nodes, Some(vec![slice("web-1", "web", &[("a", true)])]), None);
    let synced = with_ingress(with_finalizer(local(svc())), "203.0.113.1");
    let task = h.start(synced.clone());
    h.expect_event("Normal", "EnsuringLoadBalancer").await;
    h.expect_event("Normal", "EnsuredLoadBalancer").await;
    task.await.unwrap();
    let lb = h.provider.load_balancer_of("default/web").unwrap();
    assert_eq!(
        lb.nodes,
        strings(&["a", "b", "c"]),
        "every eligible node is handed over"
    );
    assert_eq!(
        lb.endpoint_nodes,
        Some(strings(&["a"])),
        "marked: the node with the ready endpoint"
    );

    // A second ready pod on a, an unready one on b: same node set, nothing at all.
    let same = slice("web-1", "web", &[("a", true), ("a", true), ("b", false)]);
    h.slices.apply_watcher_event(&Event::Apply(same));
    assert_eq!(h.start(synced.clone()).await.unwrap(), Action::await_change());
    h.mock.assert_idle().await;
    assert_eq!(h.provider.calls().len(), 1);

    // The endpoint moves to b (a new slice; a's pod is gone): the backends are updated once.
    h.slices
        .apply_watcher_event(&Event::Apply(slice("web-1", "web", &[("a", false)])));
    h.slices
        .apply_watcher_event(&Event::Apply(slice("web-2", "web", &[("b", true)])));
    let task = h.start(synced.clone());
    h.expect_event("Normal", "UpdatedLoadBalancer").await;
    task.await.unwrap();
    assert_eq!(
        h.provider.calls()[1..],
        [Call::UpdateLoadBalancer(
            "default/web".into(),
            strings(&["a", "b", "c"])
        )]
    );
    assert_eq!(
        h.provider.load_balancer_of("default/web").unwrap().endpoint_nodes,
        Some(strings(&["b"]))
    );

    // No ready endpoint left: every node is marked false (the provider decides what that means).
    h.slices.apply_watcher_event(&Event::Delete(slice("web-2", "web", &[])));
    let task = h.start(synced.clone());
    h.expect_event("Normal", "UpdatedLoadBalancer").await;
    task.await.unwrap();
    assert_eq!(
        h.provider.load_balancer_of("default/web").unwrap().endpoint_nodes,
        Some(vec![])
    );
    assert_eq!(h.provider.calls().len(), 3);
    h.mock.assert_idle().await;
}

#[tokio::test]
async fn cluster_policy_services_ignore_endpoints() {
    let mut h = harness_with_slices(
        vec![node("a"), node("b")],
        Some(vec![slice("web-1", "web", &[("a", true)])]),
        None,
    );
    let synced = with_ingress(with_finalizer(svc()), "203.0.113.1");
    let task = h.start(synced.clone());
    h.expect_event("Normal", "EnsuringLoadBalancer").await;
    h.expect_event("Normal", "EnsuredLoadBalancer").await;
    task.await.unwrap();
    let lb = h.provider.load_balancer_of("default/web").unwrap();
    assert_eq!((lb.nodes, lb.endpoint_nodes), (strings(&["a", "b"]), None));
    h.slices
        .apply_watcher_event(&Event::Apply(slice("web-1", "web", &[("b", true)])));
    h.start(synced).await.unwrap();
    h.mock.assert_idle().await;
    assert_eq!(
        h.provider.calls().len(),
        1,
        "no re-sync for an externalTrafficPolicy: Cluster Service"
    );
}

#[tokio::test]
async fn without_a_slice_store_local_services_are_not_marked() {
    let mut h = harness(vec![node("a")], None);
    let task = h.start(with_ingress(with_finalizer(local(svc())), "203.0.113.1"));
    h.expect_event("Normal", "EnsuringLoadBalancer").await;
    h.expect_event("Normal", "EnsuredLoadBalancer").await;
    task.await.unwrap();
    assert_eq!(h.provider.load_balancer_of("default/web").unwrap().endpoint_nodes, None);
}

#[tokio::test]
async fn endpoint_node_changes_request_only_real_changes_of_tracked_services() {
    use futures::FutureExt;
    let h = harness_with_slices(vec![node("a"), node("b")], Some(vec![]), None);
    let mut slices = h.slices;
    let mut api = local(svc());
    api.metadata.name = Some("api".into());
    let (services, mut service_writer) = store_with(vec![local(svc()), svc_named("plain")]);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<EndpointSlice>();
    let touched = futures::stream::poll_fn({
        let mut rx = rx;
        move |cx| rx.poll_recv(cx)
    });
    let mut requests = Box::pin(endpoint_node_changes(h.ctx.clone(), services, touched));
    // Apply to the store first, as the reflector does, then hand the touched slice over.
    let mut touch = |slice: EndpointSlice, deleted: bool| {
        let event = if deleted {
            Event::Delete(slice.clone())
        } else {
            Event::Apply(slice.clone())
        };
        slices.apply_watcher_event(&event);
        tx.send(slice).unwrap();
        requests.next().now_or_never().map(|r| r.map(|r| r.name))
    };
    assert_eq!(
        touch(slice("web-1", "web", &[("a", true)]), false),
        Some(Some("web".into())),
        "first seen"
    );
    assert_eq!(
        touch(slice("web-1", "web", &[("a", true), ("a", true)]), false),
        None,
        "same nodes"
    );
    assert_eq!(
        touch(slice("web-2", "web", &[("a", true), ("b", false)]), false),
        None,
        "same nodes"
    );
    assert_eq!(
        touch(slice("web-2", "web", &[("b", true)]), false),
        Some(Some("web".into())),
        "b joined"
    );
    assert_eq!(
        touch(slice("web-1", "web", &[]), true),
        Some(Some("web".into())),
        "a left"
    );
    assert_eq!(
        touch(slice("plain-1", "plain", &[("a", true)]), false),
        None,
        "a Cluster Service"
    );
    assert_eq!(
        touch(slice("api-1", "api", &[("a", true)]), false),
        None,
        "a Service not (yet) known"
    );
    service_writer.apply_watcher_event(&Event::Apply(api));
    assert_eq!(
        touch(slice("api-1", "api", &[("b", true)]), false),
        Some(Some("api".into())),
        "now known"
    );
    assert_eq!(
        touch(slice("web-2", "web", &[]), true),
        Some(Some("web".into())),
        "none left"
    );
    assert_eq!(touch(slice("web-3", "web", &[("a", false)]), false), None, "still none");
}

fn svc_named(name: &str) -> Service {
    let mut s = svc();
    s.metadata.name = Some(name.into());
    s
}
