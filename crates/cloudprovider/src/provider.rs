//! The traits a cloud provider implements, and the types that cross the boundary.
//!
//! A provider implements [`CloudProvider`] and, optionally, [`LoadBalancer`] and [`InstancesV2`]. The controllers
//! in this crate call them with the semantics of `k8s.io/cloud-provider`; see the crate documentation.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{LoadBalancerStatus, Node, NodeAddress, Service};

use crate::events::EventSink;

/// The error a provider returns. The variant tells the controller what to do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The operation is in progress (for example a load balancer still provisioning): the controller requeues the
    /// object after `delay` instead of using its exponential backoff, and does not count this as a failure.
    #[error("{message} (retry in {delay:?})")]
    RetryAfter {
        /// How long to wait before the next attempt.
        delay: Duration,
        /// Why the operation must be retried (logged and put in the Event).
        message: String,
    },
    /// This object is handled by something else (another controller): the controller does nothing.
    #[error("implemented elsewhere")]
    ImplementedElsewhere,
    /// The user asked for something the provider cannot do (a bad annotation, an unknown option). The controller
    /// emits a Warning Event with `reason` on the object and does not retry quickly: it waits for the object to
    /// change, or for the slowest backoff step (300 s).
    #[error("{reason}: {message}")]
    InvalidConfiguration {
        /// A CamelCase Event reason, for example `InvalidAnnotation`.
        reason: String,
        /// A message for the user, shown in the Event.
        message: String,
    },
    /// The provider does not implement this operation.
    #[error("not implemented: {operation}")]
    NotImplemented {
        /// Which operation is missing.
        operation: String,
    },
    /// Any other failure (cloud API error, timeout). The controller retries with exponential backoff.
    #[error("{message}")]
    Cloud {
        /// What failed, with context (which resource, which API call, which code).
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl ProviderError {
    /// Builds a [`ProviderError::Cloud`] from a message.
    pub fn cloud(message: impl Into<String>) -> Self {
        Self::Cloud {
            message: message.into(),
            source: None,
        }
    }

    /// Builds a [`ProviderError::Cloud`] from a message and an underlying error.
    pub fn cloud_with(message: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Cloud {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// Builds a [`ProviderError::RetryAfter`].
    pub fn retry_after(delay: Duration, message: impl Into<String>) -> Self {
        Self::RetryAfter {
            delay,
            message: message.into(),
        }
    }

    /// Builds a [`ProviderError::InvalidConfiguration`].
    pub fn invalid(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidConfiguration {
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// A node as seen by a load balancer: the fields a provider needs to pick backends.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TargetNode {
    /// The Node's name.
    pub name: String,
    /// `spec.providerID`, if set.
    pub provider_id: Option<String>,
    /// The Node's labels.
    pub labels: BTreeMap<String, String>,
    /// `status.addresses`.
    pub addresses: Vec<NodeAddress>,
    /// Whether the node hosts a ready endpoint of the Service being balanced. Set (`Some`) only for a Service with
    /// `externalTrafficPolicy: Local` whose provider asked for it ([`LoadBalancer::wants_endpoint_nodes`]): the
    /// controller reads the Service's EndpointSlices and calls `update_load_balancer` when the set of nodes marked
    /// `Some(true)` changes. `None` otherwise: every node is an equally good backend.
    pub has_ready_endpoint: Option<bool>,
}

impl TargetNode {
    /// Builds the slim view of a Node.
    pub fn from_node(node: &Node) -> Self {
        Self {
            name: node.metadata.name.clone().unwrap_or_default(),
            provider_id: node
                .spec
                .as_ref()
                .and_then(|s| s.provider_id.clone())
                .filter(|p| !p.is_empty()),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            addresses: node
                .status
                .as_ref()
                .and_then(|s| s.addresses.clone())
                .unwrap_or_default(),
            has_ready_endpoint: None,
        }
    }

    /// Whether traffic sent to this node can be served: `false` only for a node known to host no ready endpoint
    /// of an `externalTrafficPolicy: Local` Service (kube-proxy drops external traffic there).
    pub fn can_serve_local_traffic(&self) -> bool {
        self.has_ready_endpoint != Some(false)
    }
}

/// Load balancers for `type: LoadBalancer` Services.
///
/// Every method receives the cluster name (`--cluster-name`) so that a provider can tag what it creates.
/// Methods must be idempotent: the controller calls them again after any failure.
#[async_trait]
pub trait LoadBalancer: Send + Sync {
    /// Returns the load balancer's status if it exists, `None` if it does not.
    async fn get_load_balancer(
        &self,
        cluster_name: &str,
        service: &Service,
    ) -> Result<Option<LoadBalancerStatus>, ProviderError>;

    /// The cloud name of the Service's load balancer. The default is "a" + the Service UID without dashes, cut to
    /// 32 characters, as upstream does.
    fn load_balancer_name(&self, cluster_name: &str, service: &Service) -> String {
        let _ = cluster_name;
        default_load_balancer_name(service)
    }

    /// Whether this provider places the backends of `service` by where its endpoints run. When it returns `true`
    /// for a Service with `externalTrafficPolicy: Local`, the controller watches the Service's EndpointSlices,
    /// marks every node it hands over with [`TargetNode::has_ready_endpoint`], and calls `update_load_balancer`
    /// whenever the set of nodes hosting a ready endpoint changes. The default, `false`, suits a provider whose
    /// load balancer finds those nodes itself (an HTTP check of `healthCheckNodePort`, as upstream providers do).
    fn wants_endpoint_nodes(&self, cluster_name: &str, service: &Service) -> bool {
        let _ = (cluster_name, service);
        false
    }

    /// Creates the load balancer or brings it in line with the Service, and returns its status. `nodes` are the
    /// eligible backends (already filtered: see [`crate::service::node_is_lb_target`]); it may be empty. For an
    /// `externalTrafficPolicy: Local` Service of a provider that [wants endpoint
    /// nodes](LoadBalancer::wants_endpoint_nodes), each says whether it hosts a ready endpoint.
    async fn ensure_load_balancer(
        &self,
        cluster_name: &str,
        service: &Service,
        nodes: &[TargetNode],
    ) -> Result<LoadBalancerStatus, ProviderError>;

    /// Changes only the backends of an existing load balancer (the node set, or which nodes host a ready endpoint
    /// of a [`wants_endpoint_nodes`](LoadBalancer::wants_endpoint_nodes) Service, changed; the Service did not).
    async fn update_load_balancer(
        &self,
        cluster_name: &str,
        service: &Service,
        nodes: &[TargetNode],
    ) -> Result<(), ProviderError>;

    /// Deletes the load balancer if it exists. Succeeds when it is already gone.
    async fn ensure_load_balancer_deleted(&self, cluster_name: &str, service: &Service) -> Result<(), ProviderError>;
}

/// The upstream default load balancer name: "a" + UID without dashes, cut to 32 characters.
pub fn default_load_balancer_name(service: &Service) -> String {
    let uid = service.metadata.uid.as_deref().unwrap_or_default().replace('-', "");
    let mut name = format!("a{uid}");
    name.truncate(32);
    name
}

/// What the cloud knows about the instance behind a Node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InstanceMetadata {
    /// The provider ID, `<provider>://<id>`. Set on the Node only if the Node has none.
    pub provider_id: String,
    /// The instance type; empty means unknown (no label is set).
    pub instance_type: String,
    /// The addresses; empty means unknown (the Node's addresses are left alone).
    pub node_addresses: Vec<NodeAddress>,
    /// The zone; empty means unknown.
    pub zone: String,
    /// The region; empty means unknown.
    pub region: String,
    /// Extra labels. Keys under `kubernetes.io` or `k8s.io`, and keys already on the Node, are dropped.
    pub additional_labels: BTreeMap<String, String>,
}

/// Instance lookups for the node and node-lifecycle controllers.
#[async_trait]
pub trait InstancesV2: Send + Sync {
    /// Whether the Node's instance exists. Return `Ok(false)` **only** when the instance is definitely gone (a
    /// not-found from the cloud): the Node object is then deleted. Return an error for anything uncertain.
    async fn instance_exists(&self, node: &Node) -> Result<bool, ProviderError>;

    /// Whether the Node's instance is shut down (stopped, but still exists).
    async fn instance_shutdown(&self, node: &Node) -> Result<bool, ProviderError>;

    /// The instance's metadata, used to initialize the Node and to keep its addresses current.
    async fn instance_metadata(&self, node: &Node) -> Result<InstanceMetadata, ProviderError>;
}

/// What the framework hands to [`CloudProvider::initialize`].
#[derive(Clone)]
pub struct ProviderContext {
    /// A Kubernetes client (the same one the controllers use).
    pub client: kube::Client,
    /// `--cluster-name`: what the provider names and tags its cloud resources after, so that several clusters
    /// can share an account.
    pub cluster_name: String,
    /// Emits Events on behalf of the provider (reporting controller = the provider name).
    pub events: EventSink,
}

impl fmt::Debug for ProviderContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderContext")
            .field("cluster_name", &self.cluster_name)
            .finish_non_exhaustive()
    }
}

/// A cloud provider: the bundle of optional capabilities the controllers use.
#[async_trait]
pub trait CloudProvider: Send + Sync + 'static {
    /// A short name (`nifcloud`, `fake`): the providerID scheme and the reporting controller of its Events.
    fn provider_name(&self) -> &str;

    /// Load balancers, if supported. Without them the `service` controller does not start.
    fn load_balancer(&self) -> Option<&dyn LoadBalancer>;

    /// Instance lookups, if supported. Without them the `cloud-node` and `cloud-node-lifecycle` controllers do
    /// not start.
    fn instances_v2(&self) -> Option<&dyn InstancesV2>;

    /// Called once before any controller starts (and before leader election). Keep `ctx.events` to emit Events.
    async fn initialize(&self, ctx: ProviderContext) -> Result<(), ProviderError> {
        let _ = ctx;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn default_name_strips_dashes_and_truncates() {
        let svc = Service {
            metadata: ObjectMeta {
                uid: Some("0f3c1d2e-aaaa-bbbb-cccc-1234567890ab".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let name = default_load_balancer_name(&svc);
        assert_eq!(name, "a0f3c1d2eaaaabbbbcccc1234567890a");
        assert_eq!(name.len(), 32);
    }

    #[test]
    fn target_node_treats_empty_provider_id_as_none() {
        let mut node = Node::default();
        node.metadata.name = Some("n1".into());
        node.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
            provider_id: Some(String::new()),
            ..Default::default()
        });
        assert_eq!(TargetNode::from_node(&node).provider_id, None);
    }
}
