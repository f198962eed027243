//! The service controller: load balancers for `type: LoadBalancer` Services.
//!
//! Decisions live in the private `decide` module (pure functions, table-tested); this module does the IO
//! (patches, Events, provider calls). Semantics follow `k8s.io/cloud-provider/controllers/service`; the
//! differences are listed in the crate documentation.
//!
//! Beyond upstream, for a provider that [wants endpoint nodes](crate::LoadBalancer::wants_endpoint_nodes): the
//! controller reads the EndpointSlices of each `externalTrafficPolicy: Local` Service, marks every node it hands
//! over with whether it hosts a ready endpoint, and re-syncs the Service's backends (`update_load_balancer`) when
//! that set of nodes changes ([`endpoint_node_changes`] turns the slice watch into those requests).

mod decide;

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{LoadBalancerStatus, Node, ObjectReference, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{
    Action, Config as ControllerConfig, ReconcileReason, ReconcileRequest, applier, trigger_self,
};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::utils::CancelableJoinHandle;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use decide::{
    EXCLUDE_LB_LABEL, EnsureReason, LB_CLEANUP_FINALIZER, LbSpecView, NodeSetKey, ResyncRounds, SERVICE_NAME_LABEL,
    ServiceAction, SyncedState, TO_BE_DELETED_TAINT, decide_service, external_traffic_local, has_finalizer,
    mark_ready_endpoints, needs_cleanup, next_resync, node_is_lb_target, node_set_key, parse_go_bool,
    ready_endpoint_nodes, slice_service, target_nodes, wants_load_balancer,
};

use crate::backoff::KeyedBackoff;
use crate::events::EventSink;
use crate::metrics::Metrics;
use crate::provider::{CloudProvider, LoadBalancer, ProviderError, TargetNode};

const CONTROLLER: &str = "service";

/// A failure of one step of a Service sync. The step names the Kubernetes call that failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The provider failed.
    #[error("provider {operation} for service {service}")]
    Provider {
        /// `ensure`, `update`, `get` or `delete`.
        operation: &'static str,
        /// `namespace/name`.
        service: String,
        /// The provider's error.
        #[source]
        source: ProviderError,
    },
    /// A Kubernetes API call failed.
    #[error("{operation} for service {service}")]
    Kube {
        /// `add finalizer`, `remove finalizer` or `patch status`.
        operation: &'static str,
        /// `namespace/name`.
        service: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// Shared state of the service controller.
pub struct ServiceContext {
    client: kube::Client,
    provider: Arc<dyn CloudProvider>,
    cluster_name: String,
    nodes: Store<Node>,
    slices: Option<Store<EndpointSlice>>,
    events: EventSink,
    backoff: KeyedBackoff,
    synced: Mutex<HashMap<String, SyncedState>>,
    /// The node set last computed, shared by every [`SyncedState`] synced against it.
    node_set: Mutex<Arc<NodeSetKey>>,
    resync: Option<ResyncRounds>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for ServiceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceContext")
            .field("cluster_name", &self.cluster_name)
            .finish_non_exhaustive()
    }
}

impl ServiceContext {
    /// Builds the context. `nodes` must be a synced node store; `resync_period` of `None` turns drift repair off,
    /// otherwise every Service is re-ensured in rounds of that period from now ([`ResyncRounds`]).
    pub fn new(
        client: kube::Client,
        provider: Arc<dyn CloudProvider>,
        cluster_name: String,
        nodes: Store<Node>,
        events: EventSink,
        resync_period: Option<Duration>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            client,
            provider,
            cluster_name,
            nodes,
            slices: None,
            events,
            backoff: KeyedBackoff::service_default(),
            synced: Mutex::new(HashMap::new()),
            node_set: Mutex::new(Arc::default()),
            resync: resync_period.and_then(|period| ResyncRounds::new(Instant::now(), period)),
            metrics,
        }
    }

    /// Reads EndpointSlices from `slices` (a synced store of the slices labelled [`SERVICE_NAME_LABEL`]), so
    /// that the backends of `externalTrafficPolicy: Local` Services follow their endpoints for a provider that
    /// [wants endpoint nodes](crate::LoadBalancer::wants_endpoint_nodes). Without it, no node is marked.
    #[must_use]
    pub fn with_endpoint_slices(mut self, slices: Store<EndpointSlice>) -> Self {
        self.slices = Some(slices);
        self
    }

    /// Whether the backends of `svc` follow its endpoints: a slice store is wired, the Service is an
    /// `externalTrafficPolicy: Local` load balancer of ours, and the provider wants endpoint nodes for it.
    fn tracks_endpoints(&self, svc: &Service) -> bool {
        self.slices.is_some()
            && wants_load_balancer(svc)
            && external_traffic_local(svc)
            && self
                .provider
                .load_balancer()
                .is_some_and(|lb| lb.wants_endpoint_nodes(&self.cluster_name, svc))
    }

    /// The nodes hosting a ready endpoint of `svc`, if its backends follow its endpoints.
    fn ready_endpoint_nodes(&self, svc: &Service) -> Option<BTreeSet<String>> {
        let slices = self.slices.as_ref().filter(|_| self.tracks_endpoints(svc))?;
        let all = slices.state();
        let namespace = svc.namespace().unwrap_or_default();
        Some(ready_endpoint_nodes(
            all.iter().map(|s| s.as_ref()),
            &namespace,
            &svc.name_any(),
        ))
    }

    /// `key` as a shared value: the one last computed when it is the same (so every Service synced against one
    /// node set holds one copy of it), else `key`, which then becomes the one shared.
    fn shared_node_set(&self, key: NodeSetKey) -> Arc<NodeSetKey> {
        let mut last = self.node_set.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if **last != key {
            *last = Arc::new(key);
        }
        last.clone()
    }

    fn synced(&self, key: &str) -> Option<SyncedState> {
        self.synced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    fn set_synced(&self, key: &str, state: Option<SyncedState>) {
        let mut map = self.synced.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match state {
            Some(s) => map.insert(key.to_owned(), s),
            None => map.remove(key),
        };
    }
}

fn key_of(svc: &Service) -> String {
    format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any())
}

fn obj_ref(svc: &Service) -> ObjectReference {
    svc.object_ref(&())
}

/// Reconciles one Service and turns the outcome into the next requeue (never fails: failures become Events and
/// a backoff). This is the function the controller runs; tests call it directly.
pub async fn reconcile(svc: Arc<Service>, ctx: Arc<ServiceContext>) -> Result<Action, Infallible> {
    let start = Instant::now();
    let key = key_of(&svc);
    ctx.metrics.in_flight(CONTROLLER, 1);
    let result = sync(&svc, &ctx).await;
    ctx.metrics.in_flight(CONTROLLER, -1);
    let (label, action) = match result {
        Ok(action) => {
            ctx.backoff.reset(&key);
            ("ok", action)
        }
        Err(SyncError::Provider {
            source: ProviderError::RetryAfter { delay, message },
            ..
        }) => {
            tracing::info!(service = %key, ?delay, %message, "load balancer not ready, retrying");
            ctx.backoff.reset(&key);
            ("retry_after", Action::requeue(delay))
        }
        Err(SyncError::Provider {
            source: ProviderError::InvalidConfiguration { reason, message },
            ..
        }) => {
            tracing::warn!(service = %key, %reason, %message, "invalid load balancer configuration");
            ctx.events
                .warn(&obj_ref(&svc), &reason, "EnsureLoadBalancer", message)
                .await;
            ctx.backoff.reset(&key);
            ("invalid", Action::requeue(ctx.backoff.max()))
        }
        Err(error) => {
            let delay = ctx.backoff.fail(&key);
            tracing::warn!(service = %key, error = %crate::error_chain(&error), ?delay, "service sync failed");
            ("error", Action::requeue(delay))
        }
    };
    ctx.metrics.set_retrying(CONTROLLER, ctx.backoff.failing_keys());
    ctx.metrics.reconciled(CONTROLLER, label, start.elapsed());
    Ok(action)
}

/// The backends handed to the provider for one Service, and what identifies them for "did they really change".
struct Backends {
    /// The eligible nodes, marked with whether they host a ready endpoint when the Service tracks its endpoints.
    targets: Vec<TargetNode>,
    /// Names and providerIDs of `targets`.
    nodes: Arc<NodeSetKey>,
    /// The names of the `targets` hosting a ready endpoint, for a Service that tracks its endpoints.
    endpoint_nodes: Option<BTreeSet<String>>,
}

impl Backends {
    fn of(svc: &Service, ctx: &ServiceContext) -> Self {
        let nodes = ctx.nodes.state();
        let mut targets = target_nodes(nodes.iter().map(|n| n.as_ref()));
        let node_key = ctx.shared_node_set(node_set_key(&targets));
        let endpoint_nodes = ctx
            .ready_endpoint_nodes(svc)
            .map(|ready| mark_ready_endpoints(&mut targets, &ready));
        Self {
            targets,
            nodes: node_key,
            endpoint_nodes,
        }
    }
}

async fn sync(svc: &Service, ctx: &ServiceContext) -> Result<Action, SyncError> {
    let Some(lb) = ctx.provider.load_balancer() else {
        return Ok(Action::await_change());
    };
    let key = key_of(svc);
    let backends = Backends::of(svc, ctx);
    let synced = ctx.synced(&key);
    let now = Instant::now();
    let decision = decide_service(
        svc,
        synced.as_ref(),
        &backends.nodes,
        backends.endpoint_nodes.as_ref(),
        now,
        ctx.resync,
    );
    tracing::debug!(service = %key, ?decision, "service decision");
    match decision {
        ServiceAction::Skip(_) if !wants_load_balancer(svc) => {
            // Nothing of ours to remember for it (a Service that lost its LB, or never had one).
            ctx.set_synced(&key, None);
            Ok(Action::await_change())
        }
        ServiceAction::Skip(_) => Ok(idle_action(synced.as_ref(), now, ctx.resync)),
        ServiceAction::Cleanup => cleanup(svc, ctx, lb, &key).await,
        ServiceAction::Ensure { add_finalizer, reason } => {
            ensure(svc, ctx, lb, &key, backends, add_finalizer, reason).await
        }
        ServiceAction::UpdateHosts => update_hosts(svc, ctx, lb, &key, backends, synced).await,
    }
}

/// Errors whose Event (or absence of one) [`reconcile`] handles: no generic failure Event for them.
fn handled_by_reconcile(error: &ProviderError) -> bool {
    matches!(
        error,
        ProviderError::RetryAfter { .. } | ProviderError::InvalidConfiguration { .. }
    )
}

fn idle_action(synced: Option<&SyncedState>, now: Instant, resync: Option<ResyncRounds>) -> Action {
    match synced.and_then(|s| next_resync(s, now, resync)) {
        Some(left) => Action::requeue(left.max(Duration::from_secs(1))),
        None => Action::await_change(),
    }
}

async fn ensure(
    svc: &Service,
    ctx: &ServiceContext,
    lb: &dyn LoadBalancer,
    key: &str,
    backends: Backends,
    add_finalizer: bool,
    reason: EnsureReason,
) -> Result<Action, SyncError> {
    let targets = &backends.targets;
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &svc.namespace().unwrap_or_default());
    let name = svc.name_any();
    let reference = obj_ref(svc);
    let loud = reason != EnsureReason::Resync;
    if add_finalizer {
        let patch = json!({"metadata": {"finalizers": [LB_CLEANUP_FINALIZER]}});
        api.patch(&name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .map_err(|source| SyncError::Kube {
                operation: "add finalizer",
                service: key.to_owned(),
                source,
            })?;
    }
    if loud {
        ctx.events
            .normal(
                &reference,
                "EnsuringLoadBalancer",
                "EnsureLoadBalancer",
                "Ensuring load balancer".into(),
            )
            .await;
    }
    if targets.is_empty() {
        ctx.events
            .warn(
                &reference,
                "UnAvailableLoadBalancer",
                "EnsureLoadBalancer",
                "There are no available nodes for LoadBalancer".into(),
            )
            .await;
    }
    ctx.metrics.lb_synced();
    let status = match lb.ensure_load_balancer(&ctx.cluster_name, svc, targets).await {
        Ok(status) => status,
        Err(ProviderError::ImplementedElsewhere) => return Ok(Action::await_change()),
        Err(source) => {
            if !handled_by_reconcile(&source) {
                ctx.events
                    .warn(
                        &reference,
                        "SyncLoadBalancerFailed",
                        "EnsureLoadBalancer",
                        format!("Error syncing load balancer: {source}"),
                    )
                    .await;
            }
            return Err(SyncError::Provider {
                operation: "ensure",
                service: key.to_owned(),
                source,
            });
        }
    };
    let changed = patch_status_if_changed(&api, svc, key, status).await?;
    if loud || changed {
        ctx.events
            .normal(
                &reference,
                "EnsuredLoadBalancer",
                "EnsureLoadBalancer",
                "Ensured load balancer".into(),
            )
            .await;
    }
    let now = Instant::now();
    let state = SyncedState {
        spec: LbSpecView::of(svc),
        nodes: backends.nodes,
        endpoint_nodes: backends.endpoint_nodes,
        ensured_at: now,
    };
    let action = idle_action(Some(&state), now, ctx.resync);
    ctx.set_synced(key, Some(state));
    Ok(action)
}

/// Patches `status.loadBalancer` only when it differs; returns whether it patched.
async fn patch_status_if_changed(
    api: &Api<Service>,
    svc: &Service,
    key: &str,
    new: LoadBalancerStatus,
) -> Result<bool, SyncError> {
    let old = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.clone())
        .unwrap_or_default();
    if load_balancer_status_equal(&old, &new) {
        return Ok(false);
    }
    // Always name `ingress`: a JSON merge patch only clears a field set to null.
    let patch = json!({"status": {"loadBalancer": {"ingress": new.ingress}}});
    api.patch_status(&svc.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| SyncError::Kube {
            operation: "patch status",
            service: key.to_owned(),
            source,
        })?;
    Ok(true)
}

/// Whether two statuses are the same (an absent ingress list equals an empty one).
pub fn load_balancer_status_equal(a: &LoadBalancerStatus, b: &LoadBalancerStatus) -> bool {
    a.ingress.as_deref().unwrap_or_default() == b.ingress.as_deref().unwrap_or_default()
}

async fn update_hosts(
    svc: &Service,
    ctx: &ServiceContext,
    lb: &dyn LoadBalancer,
    key: &str,
    backends: Backends,
    synced: Option<SyncedState>,
) -> Result<Action, SyncError> {
    let targets = &backends.targets;
    let reference = obj_ref(svc);
    if targets.is_empty() {
        ctx.events
            .warn(
                &reference,
                "UnAvailableLoadBalancer",
                "UpdateLoadBalancer",
                "There are no available nodes for LoadBalancer".into(),
            )
            .await;
    }
    let start = Instant::now();
    ctx.metrics.lb_synced();
    let result = lb.update_load_balancer(&ctx.cluster_name, svc, targets).await;
    ctx.metrics.hosts_updated(start.elapsed(), result.is_err());
    match result {
        Ok(()) => {
            ctx.events
                .normal(
                    &reference,
                    "UpdatedLoadBalancer",
                    "UpdateLoadBalancer",
                    "Updated load balancer with new hosts".into(),
                )
                .await;
        }
        Err(ProviderError::ImplementedElsewhere) => {}
        Err(source) if handled_by_reconcile(&source) => {
            return Err(SyncError::Provider {
                operation: "update",
                service: key.to_owned(),
                source,
            });
        }
        Err(source) => {
            let names: Vec<&str> = targets.iter().take(10).map(|t| t.name.as_str()).collect();
            ctx.events
                .warn(
                    &reference,
                    "UpdateLoadBalancerFailed",
                    "UpdateLoadBalancer",
                    format!(
                        "Error updating load balancer with new hosts {names:?} [node names limited, total number of nodes: {}], error: {source}",
                        targets.len()
                    ),
                )
                .await;
            return Err(SyncError::Provider {
                operation: "update",
                service: key.to_owned(),
                source,
            });
        }
    }
    let now = Instant::now();
    let state = match synced {
        Some(s) => SyncedState {
            nodes: backends.nodes,
            endpoint_nodes: backends.endpoint_nodes,
            ..s
        },
        None => SyncedState {
            spec: LbSpecView::of(svc),
            nodes: backends.nodes,
            endpoint_nodes: backends.endpoint_nodes,
            ensured_at: now,
        },
    };
    let action = idle_action(Some(&state), now, ctx.resync);
    ctx.set_synced(key, Some(state));
    Ok(action)
}

async fn cleanup(svc: &Service, ctx: &ServiceContext, lb: &dyn LoadBalancer, key: &str) -> Result<Action, SyncError> {
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &svc.namespace().unwrap_or_default());
    let reference = obj_ref(svc);
    let fail = |operation, source: ProviderError| SyncError::Provider {
        operation,
        service: key.to_owned(),
        source,
    };
    let exists = match lb.get_load_balancer(&ctx.cluster_name, svc).await {
        Ok(status) => status.is_some(),
        Err(ProviderError::ImplementedElsewhere) => false,
        Err(source) if handled_by_reconcile(&source) => return Err(fail("get", source)),
        Err(source) => {
            ctx.events
                .warn(
                    &reference,
                    "DeleteLoadBalancerFailed",
                    "DeleteLoadBalancer",
                    format!("Error deleting load balancer: {source}"),
                )
                .await;
            return Err(fail("get", source));
        }
    };
    if exists {
        ctx.events
            .normal(
                &reference,
                "DeletingLoadBalancer",
                "DeleteLoadBalancer",
                "Deleting load balancer".into(),
            )
            .await;
        match lb.ensure_load_balancer_deleted(&ctx.cluster_name, svc).await {
            Ok(()) | Err(ProviderError::ImplementedElsewhere) => {}
            Err(source) => {
                if !handled_by_reconcile(&source) {
                    ctx.events
                        .warn(
                            &reference,
                            "DeleteLoadBalancerFailed",
                            "DeleteLoadBalancer",
                            format!("Error deleting load balancer: {source}"),
                        )
                        .await;
                }
                return Err(fail("delete", source));
            }
        }
    }
    if svc.metadata.deletion_timestamp.is_none() {
        patch_status_if_changed(&api, svc, key, LoadBalancerStatus::default()).await?;
    }
    let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [LB_CLEANUP_FINALIZER]}});
    api.patch(&svc.name_any(), &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .map_err(|source| SyncError::Kube {
            operation: "remove finalizer",
            service: key.to_owned(),
            source,
        })?;
    ctx.events
        .normal(
            &reference,
            "DeletedLoadBalancer",
            "DeleteLoadBalancer",
            "Deleted load balancer".into(),
        )
        .await;
    ctx.set_synced(key, None);
    Ok(Action::await_change())
}

/// Runs the service controller until `shutdown` fires. Every Service is reconciled when it changes; in addition:
/// - `node_changes` yields whenever the eligible node set (names and providerIDs) changed; every Service is then
///   reconciled, and only those whose set really changed call `update_load_balancer`;
/// - `slice_changes` yields every EndpointSlice the slice watch touched (applied or deleted, after the store given
///   to [`ServiceContext::with_endpoint_slices`] took the change in); only the Service whose set of nodes with a
///   ready endpoint really changed is reconciled ([`endpoint_node_changes`]).
pub async fn run(
    ctx: Arc<ServiceContext>,
    concurrency: u16,
    node_changes: impl futures::Stream<Item = ()> + Send + 'static,
    slice_changes: impl futures::Stream<Item = EndpointSlice> + Send + 'static,
    shutdown: CancellationToken,
) {
    // kube's `Controller` only takes per-object triggers from other streams behind an unstable feature; this is
    // what `Controller::run` does, with the endpoint requests added to the queue.
    let api: Api<Service> = Api::all(ctx.client.clone());
    let (services, writer) = reflector::store();
    let changed = reflector::reflector(writer, watcher(api, watcher::Config::default()).modify(slim_service))
        .default_backoff()
        .applied_objects();
    let own = trigger_self(changed, ());
    let everyone = services.clone();
    let bulk = node_changes.flat_map(move |()| {
        let requests: Vec<Result<ReconcileRequest<Service>, watcher::Error>> = everyone
            .state()
            .iter()
            .map(|svc| {
                Ok(ReconcileRequest {
                    obj_ref: ObjectRef::from_obj(svc.as_ref()),
                    reason: ReconcileReason::BulkReconcile,
                })
            })
            .collect();
        futures::stream::iter(requests)
    });
    let endpoints = endpoint_node_changes(ctx.clone(), services.clone(), slice_changes).map(|obj_ref| {
        Ok(ReconcileRequest {
            obj_ref,
            reason: ReconcileReason::Custom {
                reason: "nodes with a ready endpoint changed".into(),
            },
        })
    });
    let queue = futures::stream::select_all([own.boxed(), bulk.boxed(), endpoints.boxed()])
        .take_until(shutdown.cancelled_owned());
    applier(
        |svc, ctx| {
            CancelableJoinHandle::spawn(
                reconcile(svc, ctx).in_current_span(),
                &tokio::runtime::Handle::current(),
            )
        },
        |_svc, error: &Infallible, _ctx| match *error {},
        ctx,
        services,
        queue,
        ControllerConfig::default().concurrency(concurrency.max(1)),
    )
    .for_each(|result| async move {
        if let Err(error) = result {
            tracing::debug!(error = %crate::error_chain(&error), "service controller event");
        }
    })
    .await;
}

/// What neither the controller nor a provider reads of a Service, dropped before the store keeps it: the
/// field-manager records and the last `kubectl apply` (which would repeat the whole Service).
fn slim_service(svc: &mut Service) {
    svc.metadata.managed_fields = None;
    if let Some(annotations) = svc.metadata.annotations.as_mut() {
        annotations.remove(crate::runtime::LAST_APPLIED);
    }
}

/// Turns touched EndpointSlices into reconcile requests for their Service: one when the Service (as `services`
/// knows it) tracks its endpoints and its set of nodes with a ready endpoint differs from the one seen at the
/// previous touch (or none was seen since it started tracking). A slice change that leaves that set alone, or a
/// slice of any other Service, requests nothing.
pub fn endpoint_node_changes(
    ctx: Arc<ServiceContext>,
    services: Store<Service>,
    slice_changes: impl futures::Stream<Item = EndpointSlice> + Send + 'static,
) -> impl futures::Stream<Item = ObjectRef<Service>> + Send + 'static {
    let mut last: HashMap<(String, String), BTreeSet<String>> = HashMap::new();
    slice_changes.filter_map(move |slice| {
        let request = slice_service(&slice).and_then(|(namespace, name)| {
            let obj_ref = ObjectRef::<Service>::new(&name).within(&namespace);
            let key = (namespace, name);
            let now = services.get(&obj_ref).and_then(|svc| ctx.ready_endpoint_nodes(&svc));
            let Some(now) = now else {
                // Not tracked (now): forget, so that tracking starts again from a request.
                last.remove(&key);
                return None;
            };
            if last.get(&key) == Some(&now) {
                return None;
            }
            tracing::debug!(namespace = %key.0, service = %key.1, nodes = ?now, "nodes with a ready endpoint changed");
            last.insert(key, now);
            Some(obj_ref)
        });
        futures::future::ready(request)
    })
}

/// Turns a node watch into "the eligible node set changed" ticks: one per change of [`node_set_key`].
pub fn node_set_changes(
    nodes: Store<Node>,
    events: impl futures::Stream<Item = ()> + Send + 'static,
) -> impl futures::Stream<Item = ()> + Send + 'static {
    let mut last: Option<NodeSetKey> = None;
    events.filter_map(move |()| {
        let current = node_set_key(&target_nodes(nodes.state().iter().map(|n| n.as_ref())));
        let changed = last.as_ref() != Some(&current);
        let first = last.is_none();
        last = Some(current);
        // The first observation is the initial state: every Service is reconciled at start anyway.
        futures::future::ready((changed && !first).then_some(()))
    })
}

#[cfg(test)]
#[path = "controller_tests.rs"]
mod controller_tests;
