//! Test helpers for providers and controllers (feature `testing`).
//!
//! - [`FakeProvider`]: an in-memory cloud with load balancers and instances, a call log, and knobs to inject
//!   failures. Its backends follow the endpoints of `externalTrafficPolicy: Local` Services
//!   ([`LoadBalancer::wants_endpoint_nodes`]). The end-to-end tests run the real controllers with it; a provider
//!   crate can use it to test code that sits on top of the traits.
//! - [`mock`]: a scripted fake Kubernetes API server on kube's `tower_test` idiom.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, Node, NodeAddress, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};

use crate::provider::{CloudProvider, InstanceMetadata, InstancesV2, LoadBalancer, ProviderError, TargetNode};

/// An EndpointSlice `name` of Service `service` in namespace `default`, with one IPv4 endpoint per
/// `(node name, ready)`, as the EndpointSlice controller writes them.
pub fn endpoint_slice(name: &str, service: &str, endpoints: &[(&str, bool)]) -> EndpointSlice {
    EndpointSlice {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            labels: Some([(crate::service::SERVICE_NAME_LABEL.to_owned(), service.to_owned())].into()),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: endpoints
            .iter()
            .enumerate()
            .map(|(i, (node, ready))| Endpoint {
                addresses: vec![format!("10.244.0.{}", i + 1)],
                node_name: Some((*node).into()),
                conditions: Some(EndpointConditions {
                    ready: Some(*ready),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// One call the fake received, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `get_load_balancer(service key)`.
    GetLoadBalancer(String),
    /// `ensure_load_balancer(service key, node names)`.
    EnsureLoadBalancer(String, Vec<String>),
    /// `update_load_balancer(service key, node names)`.
    UpdateLoadBalancer(String, Vec<String>),
    /// `ensure_load_balancer_deleted(service key)`.
    EnsureLoadBalancerDeleted(String),
    /// `instance_exists(node name)`.
    InstanceExists(String),
    /// `instance_shutdown(node name)`.
    InstanceShutdown(String),
    /// `instance_metadata(node name)`.
    InstanceMetadata(String),
}

/// A load balancer in the fake cloud.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeLoadBalancer {
    /// The ingress IP handed out.
    pub ip: String,
    /// `(port, nodePort, protocol)` of the Service when last ensured.
    pub ports: Vec<(i32, Option<i32>, String)>,
    /// Backend node names.
    pub nodes: Vec<String>,
    /// The backends marked as hosting a ready endpoint of the Service; `None` when no node was marked (the
    /// Service's backends do not follow its endpoints).
    pub endpoint_nodes: Option<Vec<String>>,
}

/// An instance in the fake cloud.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FakeInstance {
    /// The metadata returned for it.
    pub metadata: InstanceMetadata,
    /// Whether it is shut down.
    pub shutdown: bool,
}

#[derive(Default)]
struct State {
    lbs: BTreeMap<String, FakeLoadBalancer>,
    instances: HashMap<String, FakeInstance>,
    calls: Vec<Call>,
    ensure_errors: VecDeque<ProviderError>,
    next_ip: u8,
}

/// An in-memory cloud. Load balancers are keyed by Service `namespace/name`; instances by Node name. An unknown
/// Node name is a definite not-found (`instance_exists` returns `false`).
#[derive(Default)]
pub struct FakeProvider {
    state: Mutex<State>,
    without_load_balancers: bool,
}

impl std::fmt::Debug for FakeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeProvider").finish_non_exhaustive()
    }
}

fn key(service: &Service) -> String {
    format!(
        "{}/{}",
        service.metadata.namespace.as_deref().unwrap_or_default(),
        service.metadata.name.as_deref().unwrap_or_default()
    )
}

fn node_name(node: &Node) -> String {
    node.metadata.name.clone().unwrap_or_default()
}

impl FakeProvider {
    /// A cloud with no instances and no load balancers yet (add them with its other methods).
    pub fn new() -> Self {
        Self::default()
    }

    /// A cloud without load balancer support (`load_balancer()` is `None`).
    pub fn without_load_balancers() -> Self {
        Self {
            without_load_balancers: true,
            ..Self::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds an instance for Node `name` with `provider_id` `fake://<name>`, two addresses and zone/region labels.
    pub fn add_instance(&self, name: &str, internal_ip: &str) {
        let metadata = InstanceMetadata {
            provider_id: format!("fake://{name}"),
            instance_type: "fake.small".into(),
            node_addresses: vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: internal_ip.into(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: name.into(),
                },
            ],
            zone: "fake-zone-1a".into(),
            region: "fake-region-1".into(),
            additional_labels: BTreeMap::new(),
        };
        self.set_instance(
            name,
            FakeInstance {
                metadata,
                shutdown: false,
            },
        );
    }

    /// Sets an instance.
    pub fn set_instance(&self, name: &str, instance: FakeInstance) {
        self.lock().instances.insert(name.to_owned(), instance);
    }

    /// Removes an instance (its Node should then be deleted by the lifecycle controller).
    pub fn remove_instance(&self, name: &str) {
        self.lock().instances.remove(name);
    }

    /// Marks an instance shut down or running.
    pub fn set_shutdown(&self, name: &str, shutdown: bool) {
        if let Some(i) = self.lock().instances.get_mut(name) {
            i.shutdown = shutdown;
        }
    }

    /// Makes the next `ensure_load_balancer` calls fail with these errors, in order.
    pub fn fail_next_ensure(&self, error: ProviderError) {
        self.lock().ensure_errors.push_back(error);
    }

    /// The load balancer of Service `namespace/name`.
    pub fn load_balancer_of(&self, service_key: &str) -> Option<FakeLoadBalancer> {
        self.lock().lbs.get(service_key).cloned()
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    fn record(&self, call: Call) {
        self.lock().calls.push(call);
    }
}

fn names(nodes: &[TargetNode]) -> Vec<String> {
    nodes.iter().map(|n| n.name.clone()).collect()
}

fn endpoint_names(nodes: &[TargetNode]) -> Option<Vec<String>> {
    nodes.iter().any(|n| n.has_ready_endpoint.is_some()).then(|| {
        let ready = nodes.iter().filter(|n| n.has_ready_endpoint == Some(true));
        ready.map(|n| n.name.clone()).collect()
    })
}

#[async_trait]
impl LoadBalancer for FakeProvider {
    fn wants_endpoint_nodes(&self, _cluster: &str, _service: &Service) -> bool {
        true
    }

    async fn get_load_balancer(
        &self,
        _cluster: &str,
        service: &Service,
    ) -> Result<Option<LoadBalancerStatus>, ProviderError> {
        self.record(Call::GetLoadBalancer(key(service)));
        Ok(self.lock().lbs.get(&key(service)).map(|lb| status(&lb.ip)))
    }

    async fn ensure_load_balancer(
        &self,
        _cluster: &str,
        service: &Service,
        nodes: &[TargetNode],
    ) -> Result<LoadBalancerStatus, ProviderError> {
        self.record(Call::EnsureLoadBalancer(key(service), names(nodes)));
        let mut state = self.lock();
        if let Some(error) = state.ensure_errors.pop_front() {
            return Err(error);
        }
        let ports = service
            .spec
            .as_ref()
            .and_then(|s| s.ports.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.port, p.node_port, p.protocol.unwrap_or_else(|| "TCP".into())))
            .collect();
        let ip = match state.lbs.get(&key(service)) {
            Some(lb) => lb.ip.clone(),
            None => {
                state.next_ip = state.next_ip.wrapping_add(1);
                format!("203.0.113.{}", state.next_ip)
            }
        };
        state.lbs.insert(
            key(service),
            FakeLoadBalancer {
                ip: ip.clone(),
                ports,
                nodes: names(nodes),
                endpoint_nodes: endpoint_names(nodes),
            },
        );
        Ok(status(&ip))
    }

    async fn update_load_balancer(
        &self,
        _cluster: &str,
        service: &Service,
        nodes: &[TargetNode],
    ) -> Result<(), ProviderError> {
        self.record(Call::UpdateLoadBalancer(key(service), names(nodes)));
        match self.lock().lbs.get_mut(&key(service)) {
            Some(lb) => {
                lb.nodes = names(nodes);
                lb.endpoint_nodes = endpoint_names(nodes);
                Ok(())
            }
            None => Err(ProviderError::cloud(format!("no load balancer for {}", key(service)))),
        }
    }

    async fn ensure_load_balancer_deleted(&self, _cluster: &str, service: &Service) -> Result<(), ProviderError> {
        self.record(Call::EnsureLoadBalancerDeleted(key(service)));
        self.lock().lbs.remove(&key(service));
        Ok(())
    }
}

fn status(ip: &str) -> LoadBalancerStatus {
    LoadBalancerStatus {
        ingress: Some(vec![LoadBalancerIngress {
            ip: Some(ip.into()),
            ..Default::default()
        }]),
    }
}

#[async_trait]
impl InstancesV2 for FakeProvider {
    async fn instance_exists(&self, node: &Node) -> Result<bool, ProviderError> {
        self.record(Call::InstanceExists(node_name(node)));
        Ok(self.lock().instances.contains_key(&node_name(node)))
    }

    async fn instance_shutdown(&self, node: &Node) -> Result<bool, ProviderError> {
        self.record(Call::InstanceShutdown(node_name(node)));
        self.lock()
            .instances
            .get(&node_name(node))
            .map(|i| i.shutdown)
            .ok_or_else(|| ProviderError::cloud(format!("no instance {}", node_name(node))))
    }

    async fn instance_metadata(&self, node: &Node) -> Result<InstanceMetadata, ProviderError> {
        self.record(Call::InstanceMetadata(node_name(node)));
        self.lock()
            .instances
            .get(&node_name(node))
            .map(|i| i.metadata.clone())
            .ok_or_else(|| ProviderError::cloud(format!("no instance {}", node_name(node))))
    }
}

#[async_trait]
impl CloudProvider for FakeProvider {
    fn provider_name(&self) -> &str {
        "fake"
    }

    fn load_balancer(&self) -> Option<&dyn LoadBalancer> {
        if self.without_load_balancers { None } else { Some(self) }
    }

    fn instances_v2(&self) -> Option<&dyn InstancesV2> {
        Some(self)
    }
}

/// A scripted fake API server: the test awaits each request the code makes, asserts it, and answers.
pub mod mock {
    use std::time::Duration;

    use http::{Request, Response};
    use http_body_util::BodyExt;
    use kube::client::Body;
    use tower_test::mock::{Handle, SendResponse};

    /// The test's end of the fake API server.
    pub struct ApiMock {
        handle: Handle<Request<Body>, Response<Body>>,
        pending: Option<SendResponse<Response<Body>>>,
    }

    impl std::fmt::Debug for ApiMock {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("ApiMock")
        }
    }

    impl ApiMock {
        /// A client wired to a new fake server (default namespace `default`).
        pub fn new() -> (kube::Client, Self) {
            let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
            (kube::Client::new(service, "default"), Self { handle, pending: None })
        }

        /// Waits (up to 10 s) for the next request; returns it without its body, and the body as JSON
        /// (`Null` when empty or not JSON). Panics if none comes or the previous one was not answered.
        pub async fn next(&mut self) -> (Request<()>, serde_json::Value) {
            match self.try_next(Duration::from_secs(10)).await {
                Some(r) => r,
                None => panic!("expected a request to the API server, none came"),
            }
        }

        /// Like [`ApiMock::next`] but returns `None` after `timeout`.
        pub async fn try_next(&mut self, timeout: Duration) -> Option<(Request<()>, serde_json::Value)> {
            assert!(self.pending.is_none(), "the previous request was not answered");
            let (request, send) = tokio::time::timeout(timeout, self.handle.next_request()).await.ok()??;
            let (parts, body) = request.into_parts();
            let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            self.pending = Some(send);
            Some((Request::from_parts(parts, ()), json))
        }

        /// Answers the request returned by the last [`ApiMock::next`].
        pub fn respond(&mut self, response: Response<Body>) {
            match self.pending.take() {
                Some(send) => send.send_response(response),
                None => panic!("respond() without a pending request"),
            }
        }

        /// Asserts that no request arrives within 200 ms.
        pub async fn assert_idle(&mut self) {
            if let Some((req, body)) = self.try_next(Duration::from_millis(200)).await {
                panic!("unexpected request {} {} {body}", req.method(), req.uri());
            }
        }
    }

    /// A JSON response.
    pub fn json_response(code: u16, body: &serde_json::Value) -> Response<Body> {
        Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap_or_default()))
            .unwrap_or_else(|_| Response::new(Body::empty()))
    }

    /// A ready store holding `objects`, and its writer (to change it later with
    /// `writer.apply_watcher_event(&Event::Apply(obj))`).
    pub fn store_with<K>(
        objects: Vec<K>,
    ) -> (
        kube::runtime::reflector::Store<K>,
        kube::runtime::reflector::store::Writer<K>,
    )
    where
        K: kube::Resource<DynamicType = ()> + Clone + 'static,
    {
        use kube::runtime::watcher::Event;
        let (store, mut writer) = kube::runtime::reflector::store();
        writer.apply_watcher_event(&Event::Init);
        for o in objects {
            writer.apply_watcher_event(&Event::InitApply(o));
        }
        writer.apply_watcher_event(&Event::InitDone);
        (store, writer)
    }

    /// A `metav1.Status` failure response (`reason` such as `NotFound`, `Conflict`).
    pub fn status_response(code: u16, reason: &str) -> Response<Body> {
        json_response(
            code,
            &serde_json::json!({
                "apiVersion": "v1", "kind": "Status", "status": "Failure",
                "message": format!("fake {reason}"), "reason": reason, "code": code
            }),
        )
    }
}
