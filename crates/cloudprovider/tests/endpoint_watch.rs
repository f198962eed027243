//! The EndpointSlice watch → backend re-sync path, end to end inside the process: the real controller manager
//! (`run_with_client`, service controller only, no leader election) against a scripted API server (`tower_test`)
//! that answers the node, Service and EndpointSlice lists, holds their watches open, and delivers slice changes
//! as watch events when the test says so. The cloud is the in-memory `FakeProvider`, whose backends follow the
//! endpoints of `externalTrafficPolicy: Local` Services.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use cloudprovider::k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, Node, NodeSpec, Service, ServicePort, ServiceSpec, ServiceStatus,
};
use cloudprovider::k8s_openapi::api::discovery::v1::EndpointSlice;
use cloudprovider::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use cloudprovider::kube::client::Body;
use cloudprovider::service::LB_CLEANUP_FINALIZER;
use cloudprovider::testing::{Call, FakeProvider, endpoint_slice};
use cloudprovider::{ControllerManagerArgs, run_with_client};
use http::{Request, Response};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower_test::mock::{Handle, SendResponse};

const SLICES: &str = "/apis/discovery.k8s.io/v1/endpointslices";

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: ControllerManagerArgs,
}

fn node(name: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            resource_version: Some("1".into()),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            provider_id: Some(format!("fake://{name}")),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A LoadBalancer Service that already has its finalizer and the ingress `ip`.
fn service(name: &str, uid: &str, policy: &str, ip: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(uid.into()),
            resource_version: Some("1".into()),
            finalizers: Some(vec![LB_CLEANUP_FINALIZER.into()]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            external_traffic_policy: Some(policy.into()),
            health_check_node_port: (policy == "Local").then_some(32000),
            ports: Some(vec![ServicePort {
                port: 80,
                node_port: Some(30080),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![LoadBalancerIngress {
                    ip: Some(ip.into()),
                    ..Default::default()
                }]),
            }),
            ..Default::default()
        }),
    }
}

/// The slice `name` of Service `service` with one endpoint per (node, ready), at `resource_version`.
fn slice(name: &str, service: &str, endpoints: &[(&str, bool)], resource_version: u32) -> EndpointSlice {
    let mut slice = endpoint_slice(name, service, endpoints);
    slice.metadata.resource_version = Some(resource_version.to_string());
    slice
}

fn list(kind: &str, api_version: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})
}

fn respond(send: SendResponse<Response<Body>>, code: u16, body: &Value) {
    let response = Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap();
    send.send_response(response);
}

/// What the scripted API server saw and holds.
#[derive(Default)]
struct Seen {
    /// The pending EndpointSlice watch, answered by [`FakeApi::deliver`].
    slice_watch: Option<SendResponse<Response<Body>>>,
    /// How many EndpointSlice watch requests came (a new one means the previous events were consumed).
    slice_watches: usize,
    /// Node and Service watches, held open for the whole test.
    held: Vec<SendResponse<Response<Body>>>,
    /// Every request that is not a list or watch: (method, path, Event reason if any).
    writes: Vec<(String, String, Option<String>)>,
}

struct FakeApi {
    seen: Arc<Mutex<Seen>>,
}

impl FakeApi {
    /// Serves `handle` in the background: lists from the given objects, watches held, writes echoed.
    fn serve(
        mut handle: Handle<Request<Body>, Response<Body>>,
        nodes: Vec<Node>,
        services: Vec<Service>,
        slices: Vec<EndpointSlice>,
    ) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let state = seen.clone();
        let node_list = list("NodeList", "v1", nodes.iter().map(|n| json!(n)).collect());
        let service_list = list("ServiceList", "v1", services.iter().map(|s| json!(s)).collect());
        let slice_list = list(
            "EndpointSliceList",
            "discovery.k8s.io/v1",
            slices.iter().map(|s| json!(s)).collect(),
        );
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let path = parts.uri.path().to_owned();
                let query = parts.uri.query().unwrap_or_default().to_owned();
                let watch = query.contains("watch=true");
                let mut seen = state.lock().unwrap();
                match path.as_str() {
                    SLICES if watch => {
                        seen.slice_watches += 1;
                        seen.slice_watch = Some(send);
                    }
                    SLICES => {
                        assert!(
                            query.contains("labelSelector=kubernetes.io%2Fservice-name"),
                            "slices of Services only: {query}"
                        );
                        respond(send, 200, &slice_list);
                    }
                    "/api/v1/nodes" | "/api/v1/services" if watch => seen.held.push(send),
                    "/api/v1/nodes" => respond(send, 200, &node_list),
                    "/api/v1/services" => respond(send, 200, &service_list),
                    _ => {
                        drop(seen);
                        let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                        let reason = body["reason"].as_str().map(str::to_owned);
                        let mut seen = state.lock().unwrap();
                        seen.writes.push((parts.method.to_string(), path.clone(), reason));
                        let code = if parts.method == http::Method::POST { 201 } else { 200 };
                        respond(send, code, &body);
                    }
                }
            }
        });
        Self { seen }
    }

    fn writes(&self) -> Vec<(String, String, Option<String>)> {
        self.seen.lock().unwrap().writes.clone()
    }

    /// Answers the pending EndpointSlice watch with `MODIFIED` events for `slices`, then waits until the watcher
    /// asks again (it has consumed them).
    async fn deliver(&self, slices: &[EndpointSlice]) {
        let watches = {
            let seen = self.seen.clone();
            wait_for("an EndpointSlice watch", move || {
                seen.lock().unwrap().slice_watch.is_some()
            })
            .await;
            self.seen.lock().unwrap().slice_watches
        };
        let mut lines = Vec::new();
        for s in slices {
            lines.extend(serde_json::to_vec(&json!({"type": "MODIFIED", "object": s})).unwrap());
            lines.push(b'\n');
        }
        let send = self.seen.lock().unwrap().slice_watch.take().unwrap();
        let response = Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Body::from(lines))
            .unwrap();
        send.send_response(response);
        let seen = self.seen.clone();
        wait_for("the EndpointSlice watch to be renewed", move || {
            seen.lock().unwrap().slice_watches > watches
        })
        .await;
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[tokio::test]
async fn slice_changes_resync_local_services_only_when_their_endpoint_nodes_change() {
    let (mock, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = cloudprovider::kube::Client::new(mock, "default");
    let api = FakeApi::serve(
        handle,
        vec![node("a"), node("b"), node("c")],
        vec![
            service("web", "uid-web", "Local", "203.0.113.1"),
            service("plain", "uid-plain", "Cluster", "203.0.113.2"),
        ],
        vec![
            slice("web-1", "web", &[("a", true)], 1),
            slice("plain-1", "plain", &[("a", true)], 1),
        ],
    );
    let provider = Arc::new(FakeProvider::new());
    let args = Cli::try_parse_from([
        "ccm",
        "--leader-elect=false",
        "--metrics-bind-address=0",
        "--controllers=service",
    ])
    .unwrap()
    .args;
    let shutdown = CancellationToken::new();
    let run = tokio::spawn(run_with_client(client, args, provider.clone(), shutdown.clone()));

    // Start: both Services are ensured with every node; only the Local one has its endpoint nodes marked.
    let p = provider.clone();
    wait_for("both initial ensures", move || p.calls().len() == 2).await;
    let mut calls = provider.calls();
    calls.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(
        calls,
        vec![
            Call::EnsureLoadBalancer("default/plain".into(), strings(&["a", "b", "c"])),
            Call::EnsureLoadBalancer("default/web".into(), strings(&["a", "b", "c"])),
        ]
    );
    let web = provider.load_balancer_of("default/web").unwrap();
    assert_eq!(web.endpoint_nodes, Some(strings(&["a"])));
    assert_eq!(provider.load_balancer_of("default/plain").unwrap().endpoint_nodes, None);
    let api_writes = api.writes().len();

    // A slice change that keeps the Local Service's node set (another ready pod on a, an unready one on b), and
    // a Cluster Service's endpoint moving: no ensure, no update, no API write.
    api.deliver(&[
        slice("web-1", "web", &[("a", true), ("a", true), ("b", false)], 2),
        slice("plain-1", "plain", &[("c", true)], 3),
    ])
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(provider.calls().len(), 2, "{:?}", provider.calls());
    assert_eq!(api.writes().len(), api_writes, "{:?}", api.writes());

    // The Local Service's endpoint moves from a to b: exactly one re-sync of its backends.
    api.deliver(&[slice("web-1", "web", &[("a", false), ("b", true)], 4)])
        .await;
    let p = provider.clone();
    wait_for("the re-sync", move || p.calls().len() == 3).await;
    assert_eq!(
        provider.calls()[2],
        Call::UpdateLoadBalancer("default/web".into(), strings(&["a", "b", "c"]))
    );
    assert_eq!(
        provider.load_balancer_of("default/web").unwrap().endpoint_nodes,
        Some(strings(&["b"]))
    );
    let seen = api.seen.clone();
    wait_for("the UpdatedLoadBalancer Event", move || {
        seen.lock()
            .unwrap()
            .writes
            .iter()
            .any(|w| w.2.as_deref() == Some("UpdatedLoadBalancer"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(provider.calls().len(), 3, "exactly one: {:?}", provider.calls());

    shutdown.cancel();
    assert!(run.await.unwrap().is_ok());
}
