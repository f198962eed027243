//! Pure decisions of the cloud node controller: what an uninitialized Node gets, and when addresses change.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, NodeAddress, Taint};

use crate::provider::InstanceMetadata;

/// The taint kubelet sets with `--cloud-provider=external`; removed once the Node is initialized.
pub const UNINITIALIZED_TAINT: &str = "node.cloudprovider.kubernetes.io/uninitialized";
/// The annotation kubelet sets from `--node-ip`.
pub const PROVIDED_NODE_IP_ANNOTATION: &str = "alpha.kubernetes.io/provided-node-ip";
/// Zone label (GA).
pub const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
/// Region label (GA).
pub const LABEL_REGION: &str = "topology.kubernetes.io/region";
/// Instance type label (GA).
pub const LABEL_INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";
/// Zone label (beta).
pub const LABEL_ZONE_BETA: &str = "failure-domain.beta.kubernetes.io/zone";
/// Region label (beta).
pub const LABEL_REGION_BETA: &str = "failure-domain.beta.kubernetes.io/region";
/// Instance type label (beta).
pub const LABEL_INSTANCE_TYPE_BETA: &str = "beta.kubernetes.io/instance-type";

/// (GA, beta) label pairs kept in sync.
pub const LABEL_PAIRS: [(&str, &str); 3] = [
    (LABEL_ZONE, LABEL_ZONE_BETA),
    (LABEL_REGION, LABEL_REGION_BETA),
    (LABEL_INSTANCE_TYPE, LABEL_INSTANCE_TYPE_BETA),
];

/// Why a Node cannot be initialized or its addresses cannot be computed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NodeDecisionError {
    /// Neither the Node nor the cloud has a providerID.
    #[error("node {node}: the cloud returned no providerID and the node has none")]
    NoProviderId {
        /// Node name.
        node: String,
    },
    /// The provided-node-ip annotation does not hold IPs.
    #[error("node {node}: annotation {PROVIDED_NODE_IP_ANNOTATION}={value:?} is not a list of IPs")]
    InvalidProvidedNodeIp {
        /// Node name.
        node: String,
        /// The annotation value.
        value: String,
    },
    /// The provided node IP is not among the cloud's addresses.
    #[error("node {node}: no address from the cloud provider matches the provided node IP {ip}")]
    ProvidedNodeIpNotFound {
        /// Node name.
        node: String,
        /// The IP kubelet was told to use.
        ip: String,
    },
}

/// Whether the Node carries the uninitialized taint.
pub fn is_uninitialized(node: &Node) -> bool {
    taints(node).iter().any(|t| t.key == UNINITIALIZED_TAINT)
}

fn taints(node: &Node) -> &[Taint] {
    node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default()
}

fn name(node: &Node) -> String {
    node.metadata.name.clone().unwrap_or_default()
}

/// A label key the cloud may not set through `additional_labels`: its prefix is `kubernetes.io` or `k8s.io`, or
/// a subdomain of either.
pub fn is_restricted_label(key: &str) -> bool {
    let Some((prefix, _)) = key.split_once('/') else {
        return false;
    };
    let prefix = prefix.to_ascii_lowercase();
    ["kubernetes.io", "k8s.io"]
        .iter()
        .any(|d| prefix == *d || prefix.ends_with(&format!(".{d}")))
}

/// What initializing a Node changes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeInitPlan {
    /// The providerID to set (only when the Node has none).
    pub provider_id: Option<String>,
    /// Labels to set.
    pub labels: BTreeMap<String, String>,
    /// New `status.addresses`, if they change.
    pub addresses: Option<Vec<NodeAddress>>,
}

/// Plans the initialization of an uninitialized Node from the cloud's metadata.
pub fn plan_initialization(node: &Node, meta: &InstanceMetadata) -> Result<NodeInitPlan, NodeDecisionError> {
    let existing_pid = node
        .spec
        .as_ref()
        .and_then(|s| s.provider_id.as_deref())
        .unwrap_or_default();
    let provider_id = if existing_pid.is_empty() {
        if meta.provider_id.is_empty() {
            return Err(NodeDecisionError::NoProviderId { node: name(node) });
        }
        Some(meta.provider_id.clone())
    } else {
        None
    };
    let current = node.metadata.labels.clone().unwrap_or_default();
    let mut labels = BTreeMap::new();
    for (value, ga, beta) in [
        (&meta.instance_type, LABEL_INSTANCE_TYPE, LABEL_INSTANCE_TYPE_BETA),
        (&meta.zone, LABEL_ZONE, LABEL_ZONE_BETA),
        (&meta.region, LABEL_REGION, LABEL_REGION_BETA),
    ] {
        if !value.is_empty() {
            labels.insert(ga.to_owned(), value.clone());
            labels.insert(beta.to_owned(), value.clone());
        }
    }
    for (k, v) in &meta.additional_labels {
        if is_restricted_label(k) || current.contains_key(k) || labels.contains_key(k) {
            continue;
        }
        labels.insert(k.clone(), v.clone());
    }
    labels.retain(|k, v| current.get(k) != Some(v));
    let addresses = plan_addresses(node, &meta.node_addresses)?;
    Ok(NodeInitPlan {
        provider_id,
        labels,
        addresses,
    })
}

fn parse_provided_ips(node: &Node) -> Result<Vec<IpAddr>, NodeDecisionError> {
    let Some(value) = node
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PROVIDED_NODE_IP_ANNOTATION))
    else {
        return Ok(Vec::new());
    };
    let invalid = || NodeDecisionError::InvalidProvidedNodeIp {
        node: name(node),
        value: value.clone(),
    };
    let ips: Vec<IpAddr> = value
        .split(',')
        .map(|s| s.trim().parse::<IpAddr>())
        .collect::<Result<_, _>>()
        .map_err(|_| invalid())?;
    if ips.is_empty() || ips.len() > 2 {
        return Err(invalid());
    }
    Ok(ips)
}

/// The addresses a Node should have given the cloud's: the provided node IPs first (each must be among the cloud
/// addresses; other addresses of the same type are dropped), then the rest in cloud order, without duplicates,
/// keeping kubelet's Hostname when the cloud has none. Returns `None` when nothing changes (order-insensitive) or
/// when the cloud returned no addresses.
pub fn plan_addresses(node: &Node, cloud: &[NodeAddress]) -> Result<Option<Vec<NodeAddress>>, NodeDecisionError> {
    if cloud.is_empty() {
        return Ok(None);
    }
    let provided = parse_provided_ips(node)?;
    let mut out: Vec<NodeAddress> = Vec::new();
    let mut enforced_types: Vec<String> = Vec::new();
    for ip in &provided {
        let found = cloud
            .iter()
            .find(|a| a.address.parse::<IpAddr>().ok().as_ref() == Some(ip))
            .ok_or_else(|| NodeDecisionError::ProvidedNodeIpNotFound {
                node: name(node),
                ip: ip.to_string(),
            })?;
        out.push(found.clone());
        enforced_types.push(found.type_.clone());
    }
    for addr in cloud {
        let same_type_as_enforced = enforced_types.contains(&addr.type_) && addr.type_ != "Hostname";
        if same_type_as_enforced || out.contains(addr) {
            continue;
        }
        out.push(addr.clone());
    }
    let current = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.clone())
        .unwrap_or_default();
    if !out.iter().any(|a| a.type_ == "Hostname") {
        out.extend(current.iter().filter(|a| a.type_ == "Hostname").cloned());
    }
    if same_addresses(&current, &out) {
        Ok(None)
    } else {
        Ok(Some(out))
    }
}

/// Order-insensitive comparison of address lists.
pub fn same_addresses(a: &[NodeAddress], b: &[NodeAddress]) -> bool {
    let key = |l: &[NodeAddress]| {
        let mut v: Vec<(String, String)> = l.iter().map(|x| (x.type_.clone(), x.address.clone())).collect();
        v.sort();
        v.dedup();
        v
    };
    key(a) == key(b)
}

/// Beta labels to set so they match their GA twins (upstream `reconcileNodeLabels`).
pub fn beta_label_sync(node: &Node) -> BTreeMap<String, String> {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let mut out = BTreeMap::new();
    for (ga, beta) in LABEL_PAIRS {
        if let Some(v) = labels.get(ga)
            && labels.get(beta) != Some(v)
        {
            out.insert(beta.to_owned(), v.clone());
        }
    }
    out
}

// `spec.taints` is an atomic list (no strategic merge by key): every write carries the whole list, and the
// `resourceVersion` it was computed from, so a concurrent change makes the write fail with a conflict (then the
// caller reads the Node again) instead of being lost.

/// The JSON merge patch that initializes `node` (as just read): labels, providerID, and its taints without the
/// uninitialized taint, guarded by its resourceVersion.
pub fn init_patch(node: &Node, plan: &NodeInitPlan) -> serde_json::Value {
    let remaining: Vec<&Taint> = taints(node).iter().filter(|t| t.key != UNINITIALIZED_TAINT).collect();
    let mut spec = serde_json::json!({"taints": remaining});
    if let Some(pid) = &plan.provider_id {
        spec["providerID"] = serde_json::Value::String(pid.clone());
    }
    let mut metadata = serde_json::json!({"resourceVersion": node.metadata.resource_version});
    if !plan.labels.is_empty() {
        metadata["labels"] = serde_json::json!(plan.labels);
    }
    serde_json::json!({"metadata": metadata, "spec": spec})
}

/// The JSON merge patch that sets `node`'s taints to `new`, guarded by its resourceVersion.
pub fn taints_patch(node: &Node, new: &[Taint]) -> serde_json::Value {
    serde_json::json!({"metadata": {"resourceVersion": node.metadata.resource_version}, "spec": {"taints": new}})
}

/// The Node's taints plus `taint`, or `None` if a taint with that key is already there.
pub fn with_taint(node: &Node, taint: &Taint) -> Option<Vec<Taint>> {
    if has_taint(node, &taint.key) {
        return None;
    }
    let mut out = taints(node).to_vec();
    out.push(taint.clone());
    Some(out)
}

/// The Node's taints without `key`, or `None` if there is no such taint.
pub fn without_taint(node: &Node, key: &str) -> Option<Vec<Taint>> {
    has_taint(node, key).then(|| taints(node).iter().filter(|t| t.key != key).cloned().collect())
}

/// Whether the Node has a taint with `key`.
pub fn has_taint(node: &Node, key: &str) -> bool {
    taints(node).iter().any(|t| t.key == key)
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
