//! Pure decisions of the service controller: which Services get a load balancer, which nodes are backends, and
//! what to do on each reconcile.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::provider::TargetNode;

/// The finalizer that keeps a Service until its load balancer is gone.
pub const LB_CLEANUP_FINALIZER: &str = "service.kubernetes.io/load-balancer-cleanup";
/// Nodes with this label set to true (or to a value that is not a boolean) are not backends.
pub const EXCLUDE_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
/// Nodes with this taint (cluster-autoscaler is removing them) are not backends.
pub const TO_BE_DELETED_TAINT: &str = "ToBeDeletedByClusterAutoscaler";

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Whether a node is a load-balancer backend (upstream `stableNodeSetPredicates`). Readiness is not used.
pub fn node_is_lb_target(node: &Node) -> bool {
    if node.metadata.deletion_timestamp.is_some() {
        return false;
    }
    if let Some(value) = node.metadata.labels.as_ref().and_then(|l| l.get(EXCLUDE_LB_LABEL)) {
        // A true value, or a value that does not parse, excludes the node.
        if parse_go_bool(value) != Some(false) {
            return false;
        }
    }
    let tainted = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|taints| taints.iter().any(|t| t.key == TO_BE_DELETED_TAINT));
    !tainted
}

/// The eligible backends, sorted by name.
pub fn target_nodes<'a>(nodes: impl IntoIterator<Item = &'a Node>) -> Vec<TargetNode> {
    let mut out: Vec<TargetNode> = nodes
        .into_iter()
        .filter(|n| node_is_lb_target(n))
        .map(TargetNode::from_node)
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// What identifies a node set for "did it really change": each eligible node's name and providerID.
pub type NodeSetKey = Vec<(String, Option<String>)>;

/// The [`NodeSetKey`] of a list of targets.
pub fn node_set_key(targets: &[TargetNode]) -> NodeSetKey {
    let mut key: NodeSetKey = targets
        .iter()
        .map(|t| (t.name.clone(), t.provider_id.clone()))
        .collect();
    key.sort();
    key
}

/// The label that ties an EndpointSlice to its Service (in the same namespace).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Whether a Service sends external traffic only to endpoints on the node it reaches:
/// `externalTrafficPolicy: Local`.
pub fn external_traffic_local(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.external_traffic_policy.as_deref()) == Some("Local")
}

/// The Service an EndpointSlice belongs to, as (namespace, name), from its [`SERVICE_NAME_LABEL`].
pub fn slice_service(slice: &EndpointSlice) -> Option<(String, String)> {
    let namespace = slice.metadata.namespace.clone()?;
    let name = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?.clone();
    Some((namespace, name))
}

/// The nodes hosting a ready endpoint of the Service `namespace/name`, from its EndpointSlices: endpoints that name
/// a node and whose `conditions.ready` is not false (unset means ready, as the API defines it; a terminating
/// endpoint is not ready). The same node set kube-proxy answers `healthCheckNodePort` with 200 for.
pub fn ready_endpoint_nodes<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    namespace: &str,
    name: &str,
) -> BTreeSet<String> {
    let ours = |s: &&EndpointSlice| slice_service(s).is_some_and(|(ns, svc)| ns == namespace && svc == name);
    slices
        .into_iter()
        .filter(ours)
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
        .filter_map(|e| e.node_name.clone().filter(|n| !n.is_empty()))
        .collect()
}

/// Marks each target with whether it hosts a ready endpoint (`ready` from [`ready_endpoint_nodes`]), and returns
/// the names of those that do: the endpoint part of what identifies the backends of a Service (nodes with an
/// endpoint that are not eligible backends do not count).
pub fn mark_ready_endpoints(targets: &mut [TargetNode], ready: &BTreeSet<String>) -> BTreeSet<String> {
    let mut marked = BTreeSet::new();
    for t in targets {
        let has = ready.contains(&t.name);
        t.has_ready_endpoint = Some(has);
        if has {
            marked.insert(t.name.clone());
        }
    }
    marked
}

/// (name, protocol, port, nodePort, targetPort, appProtocol) of a Service port.
type PortView = (
    Option<String>,
    Option<String>,
    i32,
    Option<i32>,
    Option<String>,
    Option<String>,
);

/// The Service fields whose change makes upstream re-ensure the load balancer (`needsUpdate`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LbSpecView {
    type_: Option<String>,
    source_ranges: Option<Vec<String>>,
    /// (name, protocol, port, nodePort, targetPort, appProtocol)
    ports: Vec<PortView>,
    session_affinity: Option<String>,
    load_balancer_ip: Option<String>,
    external_ips: Option<Vec<String>>,
    annotations: BTreeMap<String, String>,
    uid: Option<String>,
    external_traffic_policy: Option<String>,
    health_check_node_port: Option<i32>,
    ip_families: usize,
}

impl LbSpecView {
    /// Extracts the relevant fields.
    pub fn of(service: &Service) -> Self {
        let spec = service.spec.clone().unwrap_or_default();
        let ports = spec
            .ports
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                let target = p.target_port.map(|t| match t {
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => i.to_string(),
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s,
                });
                (p.name, p.protocol, p.port, p.node_port, target, p.app_protocol)
            })
            .collect();
        Self {
            type_: spec.type_,
            source_ranges: spec.load_balancer_source_ranges,
            ports,
            session_affinity: spec.session_affinity,
            load_balancer_ip: spec.load_balancer_ip,
            external_ips: spec.external_ips,
            annotations: service.metadata.annotations.clone().unwrap_or_default(),
            uid: service.metadata.uid.clone(),
            external_traffic_policy: spec.external_traffic_policy,
            health_check_node_port: spec.health_check_node_port,
            ip_families: spec.ip_families.map_or(0, |f| f.len()),
        }
    }
}

/// A Service wants a load balancer from us: `type: LoadBalancer` and no `spec.loadBalancerClass`.
pub fn wants_load_balancer(service: &Service) -> bool {
    let Some(spec) = service.spec.as_ref() else {
        return false;
    };
    spec.type_.as_deref() == Some("LoadBalancer") && spec.load_balancer_class.is_none()
}

/// Whether the Service carries our finalizer.
pub fn has_finalizer(service: &Service) -> bool {
    service
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == LB_CLEANUP_FINALIZER))
}

/// Upstream `needsCleanup`: our finalizer is present and the Service is being deleted or no longer a LoadBalancer.
pub fn needs_cleanup(service: &Service) -> bool {
    if !has_finalizer(service) {
        return false;
    }
    service.metadata.deletion_timestamp.is_some()
        || service.spec.as_ref().and_then(|s| s.type_.as_deref()) != Some("LoadBalancer")
}

/// What the controller last did successfully for a Service (kept in memory; lost on restart, which makes the
/// first reconcile after a restart an ensure, as upstream).
#[derive(Clone, Debug)]
pub struct SyncedState {
    /// The Service fields at the last ensure.
    pub spec: LbSpecView,
    /// The backends at the last ensure or update. Shared: every Service synced against the same node set holds
    /// the same one (with hundreds of Services and nodes, a copy each would be megabytes).
    pub nodes: Arc<NodeSetKey>,
    /// For a Service whose backends follow its endpoints (see
    /// [`LoadBalancer::wants_endpoint_nodes`](crate::LoadBalancer::wants_endpoint_nodes)), the backends hosting a
    /// ready endpoint at the last ensure or update; `None` for other Services.
    pub endpoint_nodes: Option<BTreeSet<String>>,
    /// When the load balancer was last ensured.
    pub ensured_at: Instant,
}

/// Why the load balancer is ensured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnsureReason {
    /// Never ensured by this process (new Service, or a restart).
    NotSynced,
    /// A relevant Service field changed.
    SpecChanged,
    /// The periodic drift repair (`--service-resync-period`) is due.
    Resync,
}

/// The service controller's decision for one Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceAction {
    /// Nothing to do.
    Skip(&'static str),
    /// Delete the load balancer (if it exists), clear the status, remove the finalizer.
    Cleanup,
    /// Add the finalizer if missing, then ensure the load balancer.
    Ensure {
        /// Whether the finalizer must be added first.
        add_finalizer: bool,
        /// Why.
        reason: EnsureReason,
    },
    /// Only the node set, or which nodes host a ready endpoint, changed: call `update_load_balancer`.
    UpdateHosts,
}

/// Decides what to do with a Service whose eligible backends are `nodes` and, if its backends follow its endpoints,
/// of which `endpoint_nodes` host a ready endpoint.
pub fn decide_service(
    service: &Service,
    synced: Option<&SyncedState>,
    nodes: &NodeSetKey,
    endpoint_nodes: Option<&BTreeSet<String>>,
    now: Instant,
    resync: Option<ResyncRounds>,
) -> ServiceAction {
    if needs_cleanup(service) || (!wants_load_balancer(service) && has_finalizer(service)) {
        return ServiceAction::Cleanup;
    }
    if service.metadata.deletion_timestamp.is_some() {
        return ServiceAction::Skip("being deleted and has no load-balancer finalizer");
    }
    if !wants_load_balancer(service) {
        let has_class = service.spec.as_ref().is_some_and(|s| s.load_balancer_class.is_some());
        return ServiceAction::Skip(if has_class {
            "spec.loadBalancerClass is set: another controller owns it"
        } else {
            "not type LoadBalancer"
        });
    }
    let add_finalizer = !has_finalizer(service);
    let Some(synced) = synced else {
        return ServiceAction::Ensure {
            add_finalizer,
            reason: EnsureReason::NotSynced,
        };
    };
    if add_finalizer {
        // Someone removed the finalizer: put it back and re-ensure.
        return ServiceAction::Ensure {
            add_finalizer,
            reason: EnsureReason::NotSynced,
        };
    }
    if synced.spec != LbSpecView::of(service) {
        return ServiceAction::Ensure {
            add_finalizer,
            reason: EnsureReason::SpecChanged,
        };
    }
    if let Some(rounds) = resync
        && rounds.due(synced.ensured_at, now)
    {
        return ServiceAction::Ensure {
            add_finalizer,
            reason: EnsureReason::Resync,
        };
    }
    if *synced.nodes != *nodes || synced.endpoint_nodes.as_ref() != endpoint_nodes {
        return ServiceAction::UpdateHosts;
    }
    ServiceAction::Skip("in sync")
}

/// The periodic drift repair (`--service-resync-period`) in rounds: a round starts at every `epoch + k × period`
/// (k = 0, 1, …), and a Service is due once a round has started since its last ensure. So every Service falls due
/// at the same instant and one round re-ensures them back to back, which a provider can serve from one cached
/// listing of its cloud. (A timer per Service, `period` after its own last ensure, would keep the spread of the
/// initial sync in every later round: one listing per cache lifetime of that spread.) The next round always starts
/// within `period` of any ensure, so no Service goes longer than that without one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResyncRounds {
    /// When round 0 starts (the controller's start).
    pub epoch: Instant,
    /// The time between two rounds; not zero.
    pub period: Duration,
}

impl ResyncRounds {
    /// Rounds every `period` from `epoch`; `None` when `period` is zero (resync off).
    pub fn new(epoch: Instant, period: Duration) -> Option<Self> {
        (!period.is_zero()).then_some(Self { epoch, period })
    }

    /// The start of the first round after `t` (strictly).
    pub fn next_after(&self, t: Instant) -> Instant {
        let Some(since) = t.checked_duration_since(self.epoch) else {
            return self.epoch;
        };
        let into_round = since.as_nanos() % self.period.as_nanos();
        let into_round = Duration::from_nanos(u64::try_from(into_round).unwrap_or(u64::MAX));
        t + (self.period - into_round)
    }

    /// Whether a Service last ensured at `ensured_at` is due at `now`: a round started after its last ensure.
    pub fn due(&self, ensured_at: Instant, now: Instant) -> bool {
        self.next_after(ensured_at) <= now
    }
}

/// When the next periodic drift repair is due for a synced Service, if resync is on: the start of the round after
/// its last ensure.
pub fn next_resync(synced: &SyncedState, now: Instant, resync: Option<ResyncRounds>) -> Option<Duration> {
    Some(resync?.next_after(synced.ensured_at).saturating_duration_since(now))
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
