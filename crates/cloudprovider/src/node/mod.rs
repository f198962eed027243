//! The cloud node controller: initializes Nodes tainted `node.cloudprovider.kubernetes.io/uninitialized` and keeps
//! their addresses current every `--node-status-update-frequency`.

mod decide;
pub mod lifecycle;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, NodeAddress};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, applier, trigger_self};
use kube::runtime::reflector::Store;
use kube::runtime::utils::CancelableJoinHandle;
use kube::{Api, Resource, ResourceExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use decide::{
    LABEL_INSTANCE_TYPE, LABEL_INSTANCE_TYPE_BETA, LABEL_PAIRS, LABEL_REGION, LABEL_REGION_BETA, LABEL_ZONE,
    LABEL_ZONE_BETA, NodeDecisionError, NodeInitPlan, PROVIDED_NODE_IP_ANNOTATION, UNINITIALIZED_TAINT,
    beta_label_sync, has_taint, init_patch, is_restricted_label, is_uninitialized, plan_addresses, plan_initialization,
    same_addresses, taints_patch, with_taint, without_taint,
};

use crate::backoff::KeyedBackoff;
use crate::events::EventSink;
use crate::metrics::Metrics;
use crate::provider::{CloudProvider, ProviderError};

const CONTROLLER: &str = "cloud-node";

/// A failure while syncing one Node.
#[derive(Debug, thiserror::Error)]
pub enum NodeSyncError {
    /// The provider failed.
    #[error("instance metadata for node {node}")]
    Provider {
        /// Node name.
        node: String,
        /// The provider's error.
        #[source]
        source: ProviderError,
    },
    /// The metadata cannot be applied.
    #[error(transparent)]
    Decision(#[from] NodeDecisionError),
    /// A Kubernetes API call failed.
    #[error("{operation} on node {node}")]
    Kube {
        /// What was patched.
        operation: &'static str,
        /// Node name.
        node: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// Shared state of the cloud node controller.
pub struct NodeContext {
    client: kube::Client,
    provider: Arc<dyn CloudProvider>,
    events: EventSink,
    status_update_frequency: Duration,
    backoff: KeyedBackoff,
    last_sync: Mutex<HashMap<String, Instant>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for NodeContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeContext")
            .field("status_update_frequency", &self.status_update_frequency)
            .finish_non_exhaustive()
    }
}

impl NodeContext {
    /// Builds the context.
    pub fn new(
        client: kube::Client,
        provider: Arc<dyn CloudProvider>,
        events: EventSink,
        status_update_frequency: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            client,
            provider,
            events,
            status_update_frequency,
            backoff: KeyedBackoff::new(Duration::from_secs(1), Duration::from_secs(300)),
            last_sync: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    fn last_sync(&self, node: &str) -> Option<Instant> {
        self.last_sync
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(node)
            .copied()
    }

    fn mark_synced(&self, node: &str) {
        self.last_sync
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(node.to_owned(), Instant::now());
    }
}

/// How many times a write refused for a stale resourceVersion is retried with a fresh read (client-go's
/// `RetryOnConflict` does 20 in the node controller; conflicts on one Node are short-lived).
pub(crate) const CONFLICT_RETRIES: usize = 5;

/// Applies a JSON merge patch to a Node.
pub(crate) async fn patch_node(
    api: &Api<Node>,
    node: &str,
    patch: &Value,
    operation: &'static str,
) -> Result<Node, NodeSyncError> {
    api.patch(node, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(|source| NodeSyncError::Kube {
            operation,
            node: node.to_owned(),
            source,
        })
}

/// Reads a Node fresh from the API server.
pub(crate) async fn get_node(api: &Api<Node>, node: &str) -> Result<Node, NodeSyncError> {
    api.get(node).await.map_err(|source| NodeSyncError::Kube {
        operation: "get",
        node: node.to_owned(),
        source,
    })
}

/// Whether the error is a 409 Conflict (the Node changed since it was read).
pub(crate) fn is_conflict(error: &NodeSyncError) -> bool {
    matches!(error, NodeSyncError::Kube { source: kube::Error::Api(status), .. } if status.is_conflict())
}

/// Sets a Node's taints with `edit` (which returns `None` when nothing must change) on a fresh read, retrying on
/// conflicts. Returns whether it wrote.
pub(crate) async fn edit_taints(
    api: &Api<Node>,
    node: &str,
    operation: &'static str,
    edit: impl Fn(&Node) -> Option<Vec<k8s_openapi::api::core::v1::Taint>>,
) -> Result<bool, NodeSyncError> {
    let mut attempt = 0;
    loop {
        let fresh = get_node(api, node).await?;
        let Some(new) = edit(&fresh) else { return Ok(false) };
        match patch_node(api, node, &taints_patch(&fresh, &new), operation).await {
            Ok(_) => return Ok(true),
            Err(e) if is_conflict(&e) && attempt + 1 < CONFLICT_RETRIES => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

async fn patch_addresses(api: &Api<Node>, node: &str, addresses: &[NodeAddress]) -> Result<Node, NodeSyncError> {
    let patch = json!({"status": {"addresses": addresses}});
    api.patch_status(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| NodeSyncError::Kube {
            operation: "patch addresses",
            node: node.to_owned(),
            source,
        })
}

/// Applies the cloud's metadata to an uninitialized Node: addresses first (so the Node is not schedulable before
/// it has them), then labels, providerID and the taint removal in one write guarded by the resourceVersion;
/// a conflict re-reads the Node and plans again.
async fn initialize(
    api: &Api<Node>,
    name: &str,
    meta: &crate::provider::InstanceMetadata,
) -> Result<NodeInitPlan, NodeSyncError> {
    let mut attempt = 0;
    loop {
        let mut fresh = get_node(api, name).await?;
        let plan = plan_initialization(&fresh, meta)?;
        if !is_uninitialized(&fresh) {
            return Ok(plan);
        }
        if let Some(addresses) = &plan.addresses {
            fresh = patch_addresses(api, name, addresses).await?;
        }
        match patch_node(api, name, &init_patch(&fresh, &plan), "initialize").await {
            Ok(_) => return Ok(plan),
            Err(e) if is_conflict(&e) && attempt + 1 < CONFLICT_RETRIES => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Reconciles one Node (never fails: failures become a backoff). Tests call it directly.
pub async fn reconcile(node: Arc<Node>, ctx: Arc<NodeContext>) -> Result<Action, Infallible> {
    let start = Instant::now();
    let name = node.name_any();
    ctx.metrics.in_flight(CONTROLLER, 1);
    let result = sync(&node, &ctx).await;
    ctx.metrics.in_flight(CONTROLLER, -1);
    let (label, action) = match result {
        Ok(action) => {
            ctx.backoff.reset(&name);
            ("ok", action)
        }
        Err(NodeSyncError::Provider {
            source: ProviderError::RetryAfter { delay, .. },
            ..
        }) => ("retry_after", Action::requeue(delay)),
        Err(error) => {
            let delay = ctx.backoff.fail(&name);
            tracing::warn!(node = %name, error = %crate::error_chain(&error), ?delay, "node sync failed");
            ("error", Action::requeue(delay))
        }
    };
    ctx.metrics.set_retrying(CONTROLLER, ctx.backoff.failing_keys());
    ctx.metrics.reconciled(CONTROLLER, label, start.elapsed());
    Ok(action)
}

async fn sync(node: &Node, ctx: &NodeContext) -> Result<Action, NodeSyncError> {
    let Some(instances) = ctx.provider.instances_v2() else {
        return Ok(Action::await_change());
    };
    let name = node.name_any();
    let api: Api<Node> = Api::all(ctx.client.clone());
    let freq = ctx.status_update_frequency;
    if is_uninitialized(node) {
        let meta = instances
            .instance_metadata(node)
            .await
            .map_err(|source| NodeSyncError::Provider {
                node: name.clone(),
                source,
            })?;
        let plan = initialize(&api, &name, &meta).await?;
        tracing::info!(node = %name, provider_id = ?plan.provider_id, labels = ?plan.labels, "node initialized");
        ctx.events
            .normal(
                &node.object_ref(&()),
                "Synced",
                "InitializeNode",
                "Node synced successfully".into(),
            )
            .await;
        ctx.mark_synced(&name);
        return Ok(Action::requeue(freq));
    }
    if let Some(last) = ctx.last_sync(&name) {
        let age = last.elapsed();
        if age < freq {
            return Ok(Action::requeue(freq.saturating_sub(age).max(Duration::from_secs(1))));
        }
    }
    let meta = instances
        .instance_metadata(node)
        .await
        .map_err(|source| NodeSyncError::Provider {
            node: name.clone(),
            source,
        })?;
    if let Some(addresses) = plan_addresses(node, &meta.node_addresses)? {
        tracing::info!(node = %name, ?addresses, "node addresses changed");
        patch_addresses(&api, &name, &addresses).await?;
    }
    let beta = beta_label_sync(node);
    if !beta.is_empty() {
        patch_node(&api, &name, &json!({"metadata": {"labels": beta}}), "sync beta labels").await?;
    }
    ctx.mark_synced(&name);
    Ok(Action::requeue(freq))
}

/// Runs the cloud node controller until `shutdown` fires, over the Nodes of `nodes` (the runtime's one Node
/// informer, shared with the service and lifecycle controllers): every Node that `changes` yields (each one the
/// informer touched, after its store took the change in) is reconciled.
pub async fn run(
    ctx: Arc<NodeContext>,
    nodes: Store<Node>,
    changes: impl futures::Stream<Item = Node> + Send + 'static,
    shutdown: CancellationToken,
) {
    // What `Controller::run` does, over a store the controller does not own.
    let queue = trigger_self(changes.map(Ok::<_, Infallible>), ()).take_until(shutdown.cancelled_owned());
    applier(
        |node, ctx| {
            CancelableJoinHandle::spawn(
                reconcile(node, ctx).in_current_span(),
                &tokio::runtime::Handle::current(),
            )
        },
        |_node, error: &Infallible, _ctx| match *error {},
        ctx,
        nodes,
        queue,
        ControllerConfig::default().concurrency(4),
    )
    .for_each(|result| async move {
        if let Err(error) = result {
            tracing::debug!(error = %crate::error_chain(&error), "node controller event");
        }
    })
    .await;
}

#[cfg(test)]
#[path = "controller_tests.rs"]
mod controller_tests;
