//! The cloud node lifecycle controller: every `--node-monitor-period` it deletes Nodes whose instance is gone and
//! keeps the shutdown taint in line with the instance's power state.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, Preconditions};
use kube::runtime::reflector::Store;
use kube::{Api, Resource, ResourceExt};
use tokio_util::sync::CancellationToken;

use super::{NodeSyncError, edit_taints, has_taint, with_taint, without_taint};
use crate::events::EventSink;
use crate::metrics::Metrics;
use crate::provider::{CloudProvider, InstancesV2};

/// The taint on Nodes whose instance is shut down.
pub const SHUTDOWN_TAINT: &str = "node.cloudprovider.kubernetes.io/shutdown";

const CONTROLLER: &str = "cloud-node-lifecycle";

/// What the lifecycle controller does with one Node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LifecycleAction {
    /// Leave the Node as it is: it is Ready without the taint, or the cloud's answer changes nothing (or the
    /// cloud could not tell).
    None,
    /// Add the shutdown taint.
    AddShutdownTaint,
    /// Remove the shutdown taint.
    RemoveShutdownTaint,
    /// Delete the Node object: its instance is gone.
    DeleteNode,
}

/// Whether the Node's `Ready` condition is `True` (a missing condition counts as Unknown).
pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// What the cloud said about a not-Ready Node's instance. Errors are `None` (not known).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloudView {
    /// `instance_exists`, if it answered.
    pub exists: Option<bool>,
    /// `instance_shutdown`, if it was asked and answered.
    pub shutdown: Option<bool>,
}

/// Decides for one Node. Ready Nodes need no cloud call (`cloud` is ignored): they only lose the shutdown taint.
pub fn decide_lifecycle(node: &Node, cloud: CloudView) -> LifecycleAction {
    let tainted = has_taint(node, SHUTDOWN_TAINT);
    if is_ready(node) {
        return if tainted {
            LifecycleAction::RemoveShutdownTaint
        } else {
            LifecycleAction::None
        };
    }
    match (cloud.exists, cloud.shutdown) {
        (Some(false), _) => LifecycleAction::DeleteNode,
        (Some(true), Some(true)) if !tainted => LifecycleAction::AddShutdownTaint,
        (Some(true), Some(false)) if tainted => LifecycleAction::RemoveShutdownTaint,
        _ => LifecycleAction::None,
    }
}

/// The shutdown taint (NoSchedule).
pub fn shutdown_taint() -> Taint {
    Taint {
        key: SHUTDOWN_TAINT.into(),
        effect: "NoSchedule".into(),
        time_added: Some(Time(k8s_openapi::jiff::Timestamp::now())),
        value: None,
    }
}

async fn ask_cloud(instances: &dyn InstancesV2, node: &Node) -> CloudView {
    let name = node.name_any();
    let exists = match instances.instance_exists(node).await {
        Ok(e) => Some(e),
        Err(error) => {
            tracing::warn!(node = %name, error = %crate::error_chain(&error), "cannot check whether the instance exists");
            None
        }
    };
    let shutdown = if exists == Some(true) {
        match instances.instance_shutdown(node).await {
            Ok(s) => Some(s),
            Err(error) => {
                tracing::warn!(node = %name, error = %crate::error_chain(&error), "cannot check whether the instance is shut down");
                None
            }
        }
    } else {
        None
    };
    CloudView { exists, shutdown }
}

/// Checks one Node and acts. Errors are logged and returned (the next period retries).
pub async fn monitor_node(
    client: &kube::Client,
    instances: &dyn InstancesV2,
    events: &EventSink,
    node: &Node,
) -> Result<LifecycleAction, NodeSyncError> {
    let cloud = if is_ready(node) {
        CloudView {
            exists: None,
            shutdown: None,
        }
    } else {
        ask_cloud(instances, node).await
    };
    let action = decide_lifecycle(node, cloud);
    let api: Api<Node> = Api::all(client.clone());
    let name = node.name_any();
    match action {
        LifecycleAction::None => {}
        LifecycleAction::AddShutdownTaint => {
            let taint = shutdown_taint();
            edit_taints(&api, &name, "add shutdown taint", |n| with_taint(n, &taint)).await?;
        }
        LifecycleAction::RemoveShutdownTaint => {
            edit_taints(&api, &name, "remove shutdown taint", |n| {
                without_taint(n, SHUTDOWN_TAINT)
            })
            .await?;
        }
        LifecycleAction::DeleteNode => {
            let reference = node.object_ref(&());
            tracing::info!(node = %name, "deleting node: its instance no longer exists");
            events
                .normal(
                    &reference,
                    "DeletingNode",
                    "DeleteNode",
                    format!("Deleting node {name} because it does not exist in the cloud provider"),
                )
                .await;
            // The UID precondition keeps a re-registered Node with the same name.
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: node.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            if let Err(source) = api.delete(&name, &params).await {
                events
                    .warn(
                        &reference,
                        "DeletingNodeFailed",
                        "DeleteNode",
                        format!("Error deleting node {name}: {source}"),
                    )
                    .await;
                return Err(NodeSyncError::Kube {
                    operation: "delete node",
                    node: name,
                    source,
                });
            }
        }
    }
    Ok(action)
}

/// Runs the lifecycle loop over the Nodes in `nodes` every `period` until `shutdown` fires.
pub async fn run(
    client: kube::Client,
    provider: Arc<dyn CloudProvider>,
    nodes: Store<Node>,
    events: EventSink,
    period: Duration,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let Some(_) = provider.instances_v2() else { return };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(instances) = provider.instances_v2() else {
            return;
        };
        for node in nodes.state() {
            let start = std::time::Instant::now();
            let result = monitor_node(&client, instances, &events, &node).await;
            let label = match &result {
                Ok(_) => "ok",
                Err(error) => {
                    tracing::warn!(node = %node.name_any(), error = %crate::error_chain(error), "node lifecycle check failed");
                    "error"
                }
            };
            metrics.reconciled(CONTROLLER, label, start.elapsed());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus};

    fn node(ready: Option<&str>, tainted: bool) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some("w1".into());
        if tainted {
            n.spec = Some(NodeSpec {
                taints: Some(vec![shutdown_taint()]),
                ..Default::default()
            });
        }
        if let Some(status) = ready {
            n.status = Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: status.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            });
        }
        n
    }

    #[test]
    fn lifecycle_table() {
        use LifecycleAction as A;
        let v = |exists, shutdown| CloudView { exists, shutdown };
        let table = [
            ("ready, untainted", node(Some("True"), false), v(None, None), A::None),
            (
                "ready, tainted: remove, no cloud call needed",
                node(Some("True"), true),
                v(None, None),
                A::RemoveShutdownTaint,
            ),
            (
                "ready ignores cloud view",
                node(Some("True"), false),
                v(Some(false), None),
                A::None,
            ),
            (
                "not ready, gone",
                node(Some("False"), false),
                v(Some(false), None),
                A::DeleteNode,
            ),
            (
                "unknown, gone, tainted",
                node(Some("Unknown"), true),
                v(Some(false), None),
                A::DeleteNode,
            ),
            (
                "no condition counts as not ready",
                node(None, false),
                v(Some(false), None),
                A::DeleteNode,
            ),
            (
                "not ready, exists check failed",
                node(Some("False"), false),
                v(None, None),
                A::None,
            ),
            (
                "not ready, shut down",
                node(Some("False"), false),
                v(Some(true), Some(true)),
                A::AddShutdownTaint,
            ),
            (
                "not ready, shut down, already tainted",
                node(Some("False"), true),
                v(Some(true), Some(true)),
                A::None,
            ),
            (
                "not ready, running, tainted",
                node(Some("False"), true),
                v(Some(true), Some(false)),
                A::RemoveShutdownTaint,
            ),
            (
                "not ready, running, untainted",
                node(Some("False"), false),
                v(Some(true), Some(false)),
                A::None,
            ),
            (
                "not ready, shutdown check failed",
                node(Some("False"), true),
                v(Some(true), None),
                A::None,
            ),
        ];
        for (what, n, cloud, expected) in table {
            assert_eq!(decide_lifecycle(&n, cloud), expected, "{what}");
        }
    }
}
