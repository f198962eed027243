//! [`NifcloudProvider`]: the cloud provider the framework drives.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use cloudprovider::k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, Node, NodeAddress, ObjectReference, Service,
};
use cloudprovider::{
    CloudProvider, InstanceMetadata, InstancesV2, LoadBalancer, ProviderContext, ProviderError, TargetNode, async_trait,
};
use nifcloud_cloud::{AddressKind, CloudError, Instance, InstanceView, LookupError, NodeRef, PROVIDER_NAME};
use nifcloud_sdk::Client;

use crate::annotations::{self, LbKind, LbOptions};
use crate::config::Settings;
use crate::elb::{self, ObservedElb};
use crate::l4::{self, plan::ObservedL4};
use crate::lbview::LbView;
use crate::naming::{self, Ownership};
use crate::spec::{self, ServiceLb};
use crate::{reconcile, sg};

/// State shared by the load-balancer and instance halves.
pub struct Shared {
    /// The SDK client.
    pub client: Client,
    /// The settings.
    pub settings: Settings,
    /// Every server, one coalesced `DescribeInstances` per TTL.
    pub instances: InstanceView,
    /// Every L4 load balancer, one coalesced `DescribeLoadBalancers` per TTL.
    pub l4: LbView<ObservedL4>,
    /// Every elastic load balancer, one coalesced `NiftyDescribeElasticLoadBalancers` per TTL.
    pub elb: LbView<ObservedElb>,
    ctx: OnceLock<ProviderContext>,
    created: Mutex<HashSet<String>>,
    /// Nodes that matched no server in a fresh listing, and when: not re-checked for a TTL.
    unmatched: Mutex<std::collections::HashMap<String, tokio::time::Instant>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("region", &self.settings.region)
            .finish_non_exhaustive()
    }
}

/// The NIFCLOUD cloud provider.
#[derive(Debug)]
pub struct NifcloudProvider {
    lbs: LoadBalancers,
    instances: Instances,
}

/// The load-balancer half.
#[derive(Debug, Clone)]
pub struct LoadBalancers {
    shared: Arc<Shared>,
}

/// The instance half.
#[derive(Debug, Clone)]
pub struct Instances {
    shared: Arc<Shared>,
}

/// Why the provider could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The SDK configuration is invalid.
    #[error("NIFCLOUD SDK configuration")]
    Sdk(#[from] nifcloud_sdk::config::ConfigError),
    /// The SDK client could not be built.
    #[error("NIFCLOUD SDK client")]
    Client(#[from] nifcloud_sdk::Error),
}

impl NifcloudProvider {
    /// A provider for `settings`.
    pub fn new(settings: Settings) -> Result<Self, BuildError> {
        let client = Client::new(settings.sdk_config()?)?;
        Ok(Self::with_client(settings, client))
    }

    /// A provider using `client` (for tests and tools).
    pub fn with_client(settings: Settings, client: Client) -> Self {
        let ttl = settings.cache_ttl;
        let shared = Arc::new(Shared {
            instances: InstanceView::new(client.clone(), ttl),
            l4: LbView::new(ttl),
            elb: LbView::new(ttl),
            client,
            settings,
            ctx: OnceLock::new(),
            created: Mutex::new(HashSet::new()),
            unmatched: Mutex::new(std::collections::HashMap::new()),
        });
        Self {
            lbs: LoadBalancers { shared: shared.clone() },
            instances: Instances { shared },
        }
    }

    /// The load-balancer half (its trait methods can be called directly).
    pub fn load_balancers(&self) -> &LoadBalancers {
        &self.lbs
    }

    /// The instance half.
    pub fn instances(&self) -> &Instances {
        &self.instances
    }

    /// The shared state (views and counters).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.lbs.shared
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
        let _ = self.lbs.shared.ctx.set(ctx);
        Ok(())
    }
}

/// A provider error for a failed call.
pub fn cloud_error(e: CloudError) -> ProviderError {
    let message = format!("{e}: {}", e.source);
    ProviderError::cloud_with(message, e)
}

fn lookup_error(e: LookupError) -> ProviderError {
    match e {
        LookupError::Cloud(c) => cloud_error(c),
        other => ProviderError::cloud(cloudprovider::error_chain(&other)),
    }
}

/// An ObjectReference to a Service, for Events.
pub fn service_ref(svc: &Service) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        name: svc.metadata.name.clone(),
        namespace: svc.metadata.namespace.clone(),
        uid: svc.metadata.uid.clone(),
        resource_version: svc.metadata.resource_version.clone(),
        ..Default::default()
    }
}

fn svc_key(svc: &Service) -> String {
    format!(
        "{}/{}",
        svc.metadata.namespace.as_deref().unwrap_or_default(),
        svc.metadata.name.as_deref().unwrap_or_default()
    )
}

impl Shared {
    /// Emits a Warning Event on the Service (and logs it).
    pub async fn warn(&self, svc: &Service, reason: &str, note: String) {
        tracing::warn!(service = %svc_key(svc), reason, "{note}");
        if let Some(ctx) = self.ctx.get() {
            ctx.events
                .warn(&service_ref(svc), reason, "EnsureLoadBalancer", note)
                .await;
        }
    }

    /// The name of the Service's load balancer: the annotation, else the generated one.
    pub fn lb_name(&self, cluster: &str, svc: &Service, options: Option<&LbOptions>) -> Result<String, ProviderError> {
        if let Some(n) = options.and_then(|o| o.name.clone()) {
            return Ok(n);
        }
        let uid = svc.metadata.uid.as_deref().unwrap_or_default();
        naming::generated_name(cluster, uid)
            .ok_or_else(|| ProviderError::cloud(format!("service {} has no UID yet", svc_key(svc))))
    }

    /// Whether this cluster owns the load balancer `name` of `svc`.
    pub fn ownership(&self, cluster: &str, svc: &Service, name: &str, marked: bool) -> Ownership {
        let ann = svc
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(annotations::OWNER))
            .map(String::as_str);
        let here = self.created.lock().map(|c| c.contains(name)).unwrap_or(false);
        naming::ownership(
            cluster,
            svc.metadata.uid.as_deref().unwrap_or_default(),
            name,
            ann,
            marked,
            here,
        )
    }

    /// Records that this cluster created `name` for `svc`: in memory and, when a Kubernetes client is available,
    /// in the Service's owner annotation.
    pub async fn record_created(&self, cluster: &str, svc: &Service, name: &str) {
        if let Ok(mut c) = self.created.lock() {
            c.insert(name.to_owned());
        }
        let uid = svc.metadata.uid.as_deref().unwrap_or_default();
        if naming::generated_name(cluster, uid).as_deref() == Some(name) {
            return;
        }
        let Some(ctx) = self.ctx.get() else { return };
        let (Some(ns), Some(svc_name)) = (svc.metadata.namespace.as_deref(), svc.metadata.name.as_deref()) else {
            return;
        };
        let api: kube::Api<Service> = kube::Api::namespaced(ctx.client.clone(), ns);
        let patch =
            serde_json::json!({"metadata": {"annotations": {annotations::OWNER: naming::owner_record(cluster, name)}}});
        if let Err(error) = api
            .patch(
                svc_name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
        {
            tracing::warn!(%error, service = %svc_key(svc), "cannot record load balancer ownership on the Service");
        }
    }

    /// The L4 load balancer `name`.
    pub async fn get_l4(&self, name: &str) -> Result<Option<ObservedL4>, ProviderError> {
        self.l4
            .get(name, || l4::list(&self.client), || l4::describe(&self.client, name))
            .await
            .map_err(cloud_error)
    }

    /// The elastic load balancer `name`.
    pub async fn get_elb(&self, name: &str) -> Result<Option<ObservedElb>, ProviderError> {
        self.elb
            .get(name, || elb::list(&self.client), || elb::describe(&self.client, name))
            .await
            .map_err(cloud_error)
    }

    /// The servers behind `nodes`. Nodes that match no server are skipped (and logged), so one odd node does
    /// not block every Service. A miss in the cached listing is re-checked in a fresh one, at most once per TTL
    /// per node (a node that is not a NIFCLOUD server does not cost a call per Service).
    pub async fn members(&self, nodes: &[TargetNode]) -> Result<Vec<Instance>, ProviderError> {
        let asked = tokio::time::Instant::now();
        let mut index = self.instances.index().await.map_err(cloud_error)?;
        let mut retried = false;
        let mut out: Vec<Instance> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut i = 0;
        while i < nodes.len() {
            let n = &nodes[i];
            let addrs = node_ips(&n.addresses);
            let r = NodeRef {
                provider_id: n.provider_id.as_deref(),
                name: &n.name,
                addresses: &addrs,
            };
            match index.find(&r) {
                Ok(Some(inst)) => {
                    if seen.insert(inst.unique_id.clone()) {
                        out.push(inst.clone());
                    }
                    i += 1;
                }
                Ok(None) if !retried && !self.recently_unmatched(&n.name) => {
                    retried = true;
                    index = self.instances.fresh_since(asked).await.map_err(cloud_error)?;
                }
                Ok(None) => {
                    if retried && let Ok(mut u) = self.unmatched.lock() {
                        u.insert(n.name.clone(), tokio::time::Instant::now());
                    }
                    tracing::warn!(node = %n.name, "no NIFCLOUD server matches this node; not a load balancer backend");
                    i += 1;
                }
                Err(e) => {
                    tracing::warn!(node = %n.name, error = %cloudprovider::error_chain(&e), "node skipped");
                    i += 1;
                }
            }
        }
        Ok(out)
    }
}

impl Shared {
    fn recently_unmatched(&self, node: &str) -> bool {
        let ttl = self.settings.cache_ttl;
        self.unmatched
            .lock()
            .map(|u| u.get(node).is_some_and(|t| t.elapsed() < ttl))
            .unwrap_or(false)
    }
}

fn node_ips(addresses: &[NodeAddress]) -> Vec<IpAddr> {
    addresses
        .iter()
        .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect()
}

fn status(vip: &str) -> LoadBalancerStatus {
    LoadBalancerStatus {
        ingress: Some(vec![LoadBalancerIngress {
            ip: Some(vip.to_owned()),
            ..Default::default()
        }]),
    }
}

impl LoadBalancers {
    fn parse(&self, svc: &Service) -> Result<ServiceLb, ProviderError> {
        spec::service_lb(svc, &self.shared.settings.lb_defaults)
            .map_err(|problems| ProviderError::invalid("InvalidLoadBalancerConfiguration", problems.join("; ")))
    }

    /// The name and kind used to look a Service's load balancer up, even when its annotations are invalid.
    fn lookup_name(&self, cluster: &str, svc: &Service) -> Result<(String, LbKind), ProviderError> {
        let ann = svc.metadata.annotations.clone().unwrap_or_default();
        let kind = ann
            .get(annotations::TYPE)
            .and_then(|t| LbKind::parse(t))
            .unwrap_or(self.shared.settings.lb_defaults.kind);
        let name = ann
            .get(annotations::NAME)
            .map(|n| n.trim().to_owned())
            .filter(|n| annotations::valid_lb_name(n));
        match name {
            Some(n) => Ok((n, kind)),
            None => Ok((self.shared.lb_name(cluster, svc, None)?, kind)),
        }
    }

    async fn ensure(
        &self,
        cluster: &str,
        svc: &Service,
        nodes: &[TargetNode],
    ) -> Result<LoadBalancerStatus, ProviderError> {
        let sh = &self.shared;
        let lb = self.parse(svc)?;
        for w in &lb.warnings {
            sh.warn(svc, "LoadBalancerSourceRanges", w.clone()).await;
        }
        let name = sh.lb_name(cluster, svc, Some(&lb.options))?;
        let members = sh.members(nodes).await?;
        let vip = match lb.options.kind {
            LbKind::L4 => reconcile::ensure_l4(sh, cluster, svc, &name, &lb, &members).await?,
            LbKind::Elastic => elb::ensure(sh, cluster, svc, &name, &lb, &members).await?,
        };
        // A Service that switched type leaves the other kind behind: remove it once the new one works.
        match lb.options.kind {
            LbKind::L4 => elb::delete_if_owned(sh, cluster, svc, &name, false).await?,
            LbKind::Elastic => reconcile::delete_l4_if_owned(sh, cluster, svc, &name, false).await?,
        }
        if sh.settings.security_group.is_some() {
            sg::ensure_rules(sh, svc, &name, &lb, &members, &vip).await?;
        }
        Ok(status(&vip))
    }
}

#[async_trait]
impl LoadBalancer for LoadBalancers {
    async fn get_load_balancer(
        &self,
        cluster_name: &str,
        service: &Service,
    ) -> Result<Option<LoadBalancerStatus>, ProviderError> {
        let sh = &self.shared;
        let (name, kind) = self.lookup_name(cluster_name, service)?;
        let vip = match kind {
            LbKind::L4 => sh
                .get_l4(&name)
                .await?
                .filter(|_| sh.ownership(cluster_name, service, &name, false).is_owned())
                .map(|o| o.vip),
            LbKind::Elastic => sh
                .get_elb(&name)
                .await?
                .filter(|o| {
                    sh.ownership(cluster_name, service, &name, o.marked(cluster_name))
                        .is_owned()
                })
                .map(|o| o.vip),
        };
        Ok(vip.filter(|v| !v.is_empty()).map(|v| status(&v)))
    }

    fn load_balancer_name(&self, cluster_name: &str, service: &Service) -> String {
        self.lookup_name(cluster_name, service)
            .map(|(n, _)| n)
            .unwrap_or_else(|_| cloudprovider::default_load_balancer_name(service))
    }

    async fn ensure_load_balancer(
        &self,
        cluster_name: &str,
        service: &Service,
        nodes: &[TargetNode],
    ) -> Result<LoadBalancerStatus, ProviderError> {
        self.ensure(cluster_name, service, nodes).await
    }

    async fn update_load_balancer(
        &self,
        cluster_name: &str,
        service: &Service,
        nodes: &[TargetNode],
    ) -> Result<(), ProviderError> {
        self.ensure(cluster_name, service, nodes).await.map(drop)
    }

    async fn ensure_load_balancer_deleted(&self, cluster_name: &str, service: &Service) -> Result<(), ProviderError> {
        let sh = &self.shared;
        let (name, _) = self.lookup_name(cluster_name, service)?;
        reconcile::delete_l4_if_owned(sh, cluster_name, service, &name, true).await?;
        elb::delete_if_owned(sh, cluster_name, service, &name, true).await?;
        if sh.settings.security_group.is_some() {
            sg::remove_rules(sh, &name).await?;
        }
        Ok(())
    }
}

impl Instances {
    async fn find(&self, node: &Node) -> Result<Option<Instance>, ProviderError> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let pid = node
            .spec
            .as_ref()
            .and_then(|s| s.provider_id.clone())
            .filter(|p| !p.is_empty());
        let addrs = node_ips(
            node.status
                .as_ref()
                .and_then(|s| s.addresses.as_deref())
                .unwrap_or_default(),
        );
        let r = NodeRef {
            provider_id: pid.as_deref(),
            name: &name,
            addresses: &addrs,
        };
        self.shared.instances.find(&r).await.map_err(lookup_error)
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

#[async_trait]
impl InstancesV2 for Instances {
    async fn instance_exists(&self, node: &Node) -> Result<bool, ProviderError> {
        Ok(self.find(node).await?.is_some())
    }

    async fn instance_shutdown(&self, node: &Node) -> Result<bool, ProviderError> {
        Ok(self.find(node).await?.is_some_and(|i| i.state.is_shut_down()))
    }

    async fn instance_metadata(&self, node: &Node) -> Result<InstanceMetadata, ProviderError> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let inst = self.find(node).await?.ok_or_else(|| {
            ProviderError::cloud(format!(
                "no NIFCLOUD server matches node {name} (by providerID, name or address)"
            ))
        })?;
        Ok(InstanceMetadata {
            provider_id: inst.provider_id().to_string(),
            instance_type: inst.instance_type.clone(),
            node_addresses: node_addresses(&inst, &name),
            zone: inst.zone.clone(),
            region: self.shared.settings.region.clone(),
            additional_labels: Default::default(),
        })
    }
}

/// How long to wait before retrying when a load balancer is not visible yet.
pub const NOT_VISIBLE_RETRY: Duration = Duration::from_secs(10);

/// The set of names in `members`.
pub fn member_names(members: &[Instance]) -> BTreeSet<String> {
    members.iter().map(|m| m.name.clone()).collect()
}
