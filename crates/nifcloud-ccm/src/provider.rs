//! [`NifcloudProvider`]: the adapter the framework drives. It implements the `cloudprovider` traits over
//! [`Balancers`] and [`Context`], turns their [`Error`] into what the framework acts on, and builds the framework's
//! types (load-balancer status, instance metadata). Nothing else in the crate imports it.

use std::sync::Arc;
use std::time::Duration;

use cloudprovider::k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, Node, NodeAddress, Service};
use cloudprovider::{
    CloudProvider, InstanceMetadata, InstancesV2, LoadBalancer, ProviderContext, ProviderError, TargetNode, async_trait,
};
use nifcloud_cloud::{AddressKind, Instance, PROVIDER_NAME};
use nifcloud_sdk::Client;

use crate::config::Settings;
use crate::context::Context;
use crate::error::Error;
use crate::lb::Balancers;

/// How long the framework waits before retrying a Service whose load balancer is not visible or has no VIP yet.
pub const NOT_VISIBLE_RETRY: Duration = Duration::from_secs(10);

/// The NIFCLOUD cloud provider: build it with [`NifcloudProvider::new`] (or [`crate::startup`]) and hand it to
/// `cloudprovider::run`.
#[derive(Debug)]
pub struct NifcloudProvider {
    lbs: LoadBalancers,
    instances: Instances,
}

/// The load-balancer half: the framework's [`LoadBalancer`] over [`Balancers`].
#[derive(Debug, Clone)]
pub struct LoadBalancers {
    balancers: Arc<Balancers>,
}

/// The instance half: the framework's [`InstancesV2`] over the shared server view.
#[derive(Debug, Clone)]
pub struct Instances {
    context: Arc<Context>,
}

impl NifcloudProvider {
    /// A provider for `settings`, with an SDK client built from them.
    pub fn new(settings: Settings) -> Result<Self, Error> {
        let config = settings.sdk_config().map_err(|source| Error::ConfigureSdk { source })?;
        let client = Client::new(config).map_err(|source| Error::BuildClient { source })?;
        Ok(Self::with_client(settings, client))
    }

    /// A provider calling through `client` (tests and tools that already have one).
    pub fn with_client(settings: Settings, client: Client) -> Self {
        let context = Arc::new(Context::new(settings, client));
        Self {
            lbs: LoadBalancers {
                balancers: Arc::new(Balancers::new(context.clone())),
            },
            instances: Instances { context },
        }
    }

    /// The load-balancer half (its trait methods can be called directly).
    pub fn load_balancers(&self) -> &LoadBalancers {
        &self.lbs
    }

    /// The instance half (its trait methods can be called directly).
    pub fn instances(&self) -> &Instances {
        &self.instances
    }

    /// What both halves share (the server view, for tests that need a fresh listing).
    pub fn context(&self) -> &Arc<Context> {
        &self.instances.context
    }
}

#[async_trait]
impl CloudProvider for NifcloudProvider {
    fn provider_name(&self) -> &str {
        PROVIDER_NAME
    }

    fn load_balancer(&self) -> Option<&dyn LoadBalancer> {
        Some(&self.lbs)
    }

    fn instances_v2(&self) -> Option<&dyn InstancesV2> {
        Some(&self.instances)
    }

    async fn initialize(&self, ctx: ProviderContext) -> Result<(), ProviderError> {
        self.instances.context.attach(ctx);
        // Before competing for the lease: what another leader did meanwhile is looked at again.
        self.lbs.balancers.forget_cleared();
        Ok(())
    }
}

/// What the framework does with an error: a Service it cannot serve as asked gets a Warning Event and waits for a
/// change; a load balancer still appearing is retried soon; anything else is retried with backoff, the message
/// carrying the whole chain (the Event shows only the message).
fn provider_error(e: Error) -> ProviderError {
    match e {
        Error::InvalidService { problems } => {
            ProviderError::invalid("InvalidLoadBalancerConfiguration", problems.join("; "))
        }
        e @ Error::NotOwned { .. } => ProviderError::invalid("LoadBalancerNotOwned", e.to_string()),
        e @ (Error::NotVisibleYet { .. } | Error::NoVipYet { .. }) => {
            ProviderError::retry_after(NOT_VISIBLE_RETRY, e.to_string())
        }
        e => ProviderError::cloud_with(cloudprovider::error_chain(&e), e),
    }
}

fn status(vip: &str) -> LoadBalancerStatus {
    LoadBalancerStatus {
        ingress: Some(vec![LoadBalancerIngress {
            ip: Some(vip.to_owned()),
            ..Default::default()
        }]),
    }
}

#[async_trait]
impl LoadBalancer for LoadBalancers {
    fn wants_endpoint_nodes(&self, cluster_name: &str, service: &Service) -> bool {
        self.balancers.wants_endpoint_nodes(cluster_name, service)
    }

    async fn get_load_balancer(
        &self,
        cluster_name: &str,
        service: &Service,
    ) -> Result<Option<LoadBalancerStatus>, ProviderError> {
        let vip = self
            .balancers
            .vip(cluster_name, service)
            .await
            .map_err(provider_error)?;
        Ok(vip.as_deref().map(status))
    }

    fn load_balancer_name(&self, cluster_name: &str, service: &Service) -> String {
        self.balancers
            .context
            .lookup(cluster_name, service)
            .map(|(n, _)| n)
            .unwrap_or_else(|_| cloudprovider::default_load_balancer_name(service))
    }

    async fn ensure_load_balancer(
        &self,
        cluster_name: &str,
        service: &Service,
        nodes: &[TargetNode],
    ) -> Result<LoadBalancerStatus, ProviderError> {
        let vip = self.balancers.ensure(cluster_name, service, nodes).await;
        vip.map(|v| status(&v)).map_err(provider_error)
    }

    async fn update_load_balancer(
        &self,
        cluster_name: &str,
        service: &Service,
        nodes: &[TargetNode],
    ) -> Result<(), ProviderError> {
        let vip = self.balancers.ensure(cluster_name, service, nodes).await;
        vip.map(drop).map_err(provider_error)
    }

    async fn ensure_load_balancer_deleted(&self, cluster_name: &str, service: &Service) -> Result<(), ProviderError> {
        self.balancers
            .delete(cluster_name, service)
            .await
            .map_err(provider_error)
    }
}

/// The node addresses of a server: InternalIP (private IPv4, then IPv6), ExternalIP (public IPv4, then IPv6),
/// Hostname (the node name).
pub fn node_addresses(inst: &Instance, node_name: &str) -> Vec<NodeAddress> {
    let mut out = Vec::new();
    let mut add = |type_: &str, kind: AddressKind| {
        for ip in inst.addresses_of(kind) {
            out.push(NodeAddress {
                type_: type_.to_owned(),
                address: ip.to_string(),
            });
        }
    };
    add("InternalIP", AddressKind::PrivateV4);
    add("InternalIP", AddressKind::PrivateV6);
    add("ExternalIP", AddressKind::PublicV4);
    add("ExternalIP", AddressKind::PublicV6);
    if !node_name.is_empty() {
        out.push(NodeAddress {
            type_: "Hostname".into(),
            address: node_name.to_owned(),
        });
    }
    out
}

impl Instances {
    async fn server_of(&self, node: &Node) -> Result<Option<Instance>, ProviderError> {
        self.context.server_of(node).await.map_err(provider_error)
    }
}

#[async_trait]
impl InstancesV2 for Instances {
    async fn instance_exists(&self, node: &Node) -> Result<bool, ProviderError> {
        Ok(self.server_of(node).await?.is_some())
    }

    async fn instance_shutdown(&self, node: &Node) -> Result<bool, ProviderError> {
        Ok(self.server_of(node).await?.is_some_and(|i| i.state.is_shut_down()))
    }

    async fn instance_metadata(&self, node: &Node) -> Result<InstanceMetadata, ProviderError> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let Some(inst) = self.server_of(node).await? else {
            return Err(provider_error(Error::NoServer { node: name }));
        };
        Ok(InstanceMetadata {
            provider_id: inst.provider_id().to_string(),
            instance_type: inst.instance_type.clone(),
            node_addresses: node_addresses(&inst, &name),
            zone: inst.zone.clone(),
            region: self.context.settings.region.clone(),
            additional_labels: Default::default(),
        })
    }
}
