//! [`Context`]: what every part of the provider shares, at the bottom of the crate: the SDK client, the settings,
//! the shared server view, Events, load-balancer ownership records and the matching of Nodes to servers.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};

use cloudprovider::k8s_openapi::api::core::v1::{Node, NodeAddress, ObjectReference, Service};
use cloudprovider::{ProviderContext, TargetNode};
use nifcloud_cloud::{Instance, InstanceView, NodeRef};
use nifcloud_sdk::Client;
use tokio::time::Instant;

use crate::annotations::{self, LbKind, LbOptions};
use crate::config::Settings;
use crate::error::Error;
use crate::naming::{self, Ownership};

/// See the module documentation. One per provider, shared by the load-balancer and instance halves.
pub struct Context {
    /// The SDK client every call goes through.
    pub client: Client,
    /// The resolved settings (region, cache TTL, Service defaults, security-group rules, ELB wait).
    pub settings: Settings,
    /// Every server, one coalesced `DescribeInstances` per cache TTL.
    pub instances: InstanceView,
    /// The framework's Kubernetes client and Event sink, once the framework has initialized the provider.
    kube: OnceLock<ProviderContext>,
    /// Load-balancer names this process created (ownership until the Service's owner annotation comes back).
    created: Mutex<HashSet<String>>,
    /// Nodes that matched no server in a fresh listing, and when: not re-checked for a TTL.
    unmatched: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("region", &self.settings.region)
            .finish_non_exhaustive()
    }
}

/// The server behind an eligible node, as [`Context::servers`] found it.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeServer {
    /// The server.
    pub server: Instance,
    /// Whether the node hosts a ready endpoint of the Service ([`TargetNode::has_ready_endpoint`]): `None` when
    /// the Service's backends do not follow its endpoints. Should two nodes match one server, it hosts one if
    /// either does.
    pub has_ready_endpoint: Option<bool>,
}

/// `namespace/name` of a Service, for logs and messages.
pub fn service_key(svc: &Service) -> String {
    format!(
        "{}/{}",
        svc.metadata.namespace.as_deref().unwrap_or_default(),
        svc.metadata.name.as_deref().unwrap_or_default()
    )
}

fn service_ref(svc: &Service) -> ObjectReference {
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

/// The addresses of a Node usable to match it to a server: its InternalIP and ExternalIP ones.
fn node_ips(addresses: &[NodeAddress]) -> Vec<IpAddr> {
    addresses
        .iter()
        .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect()
}

impl Context {
    /// A context for `settings` calling through `client`.
    pub fn new(settings: Settings, client: Client) -> Self {
        Self {
            instances: InstanceView::new(client.clone(), settings.cache_ttl),
            client,
            settings,
            kube: OnceLock::new(),
            created: Mutex::new(HashSet::new()),
            unmatched: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps the framework's Kubernetes client and Event sink (the first call wins).
    pub fn attach(&self, kube: ProviderContext) {
        let _ = self.kube.set(kube);
    }

    /// Emits a Warning Event with `reason` on the Service (and logs it). Without a Kubernetes client (tests,
    /// tools), only logs.
    pub async fn warn(&self, svc: &Service, reason: &str, note: String) {
        tracing::warn!(service = %service_key(svc), reason, "{note}");
        if let Some(kube) = self.kube.get() {
            kube.events
                .warn(&service_ref(svc), reason, "EnsureLoadBalancer", note)
                .await;
        }
    }

    /// The name of the Service's load balancer: the name annotation of the validated `options`, else the one
    /// generated from the cluster name and the Service UID.
    pub fn lb_name(&self, cluster: &str, svc: &Service, options: Option<&LbOptions>) -> Result<String, Error> {
        if let Some(n) = options.and_then(|o| o.name.clone()) {
            return Ok(n);
        }
        let uid = svc.metadata.uid.as_deref().unwrap_or_default();
        naming::generated_name(cluster, uid).ok_or_else(|| Error::ServiceWithoutUid {
            service: service_key(svc),
        })
    }

    /// The name and kind to look a Service's load balancer up by, even when its annotations are invalid (so that
    /// a Service can be deleted or shown whatever it says): a valid name and type annotation are used, anything
    /// else falls back to the generated name and the default kind.
    pub fn lookup(&self, cluster: &str, svc: &Service) -> Result<(String, LbKind), Error> {
        let ann = svc.metadata.annotations.clone().unwrap_or_default();
        let kind = ann
            .get(annotations::TYPE)
            .and_then(|t| LbKind::parse(t))
            .unwrap_or(self.settings.lb_defaults.kind);
        let name = ann
            .get(annotations::NAME)
            .map(|n| n.trim().to_owned())
            .filter(|n| annotations::valid_lb_name(n));
        match name {
            Some(n) => Ok((n, kind)),
            None => Ok((self.lb_name(cluster, svc, None)?, kind)),
        }
    }

    /// Whether this cluster owns the load balancer `name` of `svc`; `marked`: the load balancer carries this
    /// cluster's marker (elastic listeners' descriptions).
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

    /// Records that this cluster created `name` for `svc`: in memory and, for an overridden name when a
    /// Kubernetes client is available, in the Service's owner annotation.
    pub async fn record_created(&self, cluster: &str, svc: &Service, name: &str) {
        if let Ok(mut c) = self.created.lock() {
            c.insert(name.to_owned());
        }
        let uid = svc.metadata.uid.as_deref().unwrap_or_default();
        if naming::generated_name(cluster, uid).as_deref() == Some(name) {
            return;
        }
        let Some(kube) = self.kube.get() else { return };
        let (Some(ns), Some(svc_name)) = (svc.metadata.namespace.as_deref(), svc.metadata.name.as_deref()) else {
            return;
        };
        let api: kube::Api<Service> = kube::Api::namespaced(kube.client.clone(), ns);
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
            tracing::warn!(%error, service = %service_key(svc), "cannot record load balancer ownership on the Service");
        }
    }

    /// The servers behind `nodes`, each once, in the order of the nodes. Nodes that match no server are skipped
    /// (and logged), so one odd node does not block every Service. A miss in the cached listing is re-checked in a
    /// fresh one, at most once per TTL per node (a node that is not a NIFCLOUD server does not cost a call per
    /// Service).
    pub async fn servers(&self, nodes: &[TargetNode]) -> Result<Vec<NodeServer>, Error> {
        let list_failed = |source| Error::ListServers { source };
        let asked = Instant::now();
        let mut index = self.instances.index().await.map_err(list_failed)?;
        let mut retried = false;
        let mut out: Vec<NodeServer> = Vec::new();
        let mut position: HashMap<String, usize> = HashMap::new();
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
                    match position.get(&inst.unique_id) {
                        Some(&at) => {
                            let m = &mut out[at];
                            m.has_ready_endpoint = match (m.has_ready_endpoint, n.has_ready_endpoint) {
                                (Some(a), Some(b)) => Some(a || b),
                                (a, b) => a.or(b),
                            }
                        }
                        None => {
                            position.insert(inst.unique_id.clone(), out.len());
                            out.push(NodeServer {
                                server: inst.clone(),
                                has_ready_endpoint: n.has_ready_endpoint,
                            });
                        }
                    }
                    i += 1;
                }
                Ok(None) if !retried && !self.recently_unmatched(&n.name) => {
                    retried = true;
                    index = self.instances.fresh_since(asked).await.map_err(list_failed)?;
                }
                Ok(None) => {
                    if retried && let Ok(mut u) = self.unmatched.lock() {
                        u.insert(n.name.clone(), Instant::now());
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

    fn recently_unmatched(&self, node: &str) -> bool {
        let ttl = self.settings.cache_ttl;
        self.unmatched
            .lock()
            .map(|u| u.get(node).is_some_and(|t| t.elapsed() < ttl))
            .unwrap_or(false)
    }

    /// The server behind `node`, matched by providerID, then name, then address; `None` only when a listing
    /// newer than the question has none.
    pub async fn server_of(&self, node: &Node) -> Result<Option<Instance>, Error> {
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
        self.instances
            .find(&r)
            .await
            .map_err(|source| Error::FindServer { node: name, source })
    }
}
