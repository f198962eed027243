//! [`InstanceView`]: the shared, short-lived view of every server in the region, and node-to-server matching.
//!
//! Matching a Kubernetes node to a server ([`InstanceIndex::find`]):
//! 1. a node with a NIFCLOUD providerID is matched by `instanceUniqueId` only. A server with the node's name but
//!    another unique id is a *different* server (deleted and re-created under the same name), so the node's own
//!    server is reported missing;
//! 2. otherwise by server name, exactly, then case-insensitively when that is unambiguous;
//! 3. otherwise by one of the node's IP addresses, when exactly one server has it.
//!
//! So node names need not equal server names. "Not found" from [`InstanceView::find`] is definite: it comes from
//! a listing that started after the question was asked (a cached listing is re-read before saying no).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use nifcloud_sdk::Client;
use nifcloud_sdk::types::{DescribeInstancesRequest, ReservationSet};

use crate::cache::CoalescingCache;
use crate::error::CloudError;
use crate::instance::Instance;
use crate::provider_id::{ProviderId, ProviderIdError};

/// What identifies a node: its providerID (if set), its name, its addresses.
#[derive(Clone, Copy, Debug, Default)]
pub struct NodeRef<'a> {
    /// `spec.providerID`, if set and non-empty.
    pub provider_id: Option<&'a str>,
    /// The node name.
    pub name: &'a str,
    /// The node's addresses (from `status.addresses`), used as the last resort.
    pub addresses: &'a [IpAddr],
}

/// Why a node could not be matched to a server.
#[derive(Clone, Debug, thiserror::Error)]
pub enum LookupError {
    /// Listing the servers failed.
    #[error("cannot list NIFCLOUD servers")]
    Cloud(#[from] CloudError),
    /// The node's providerID is not a NIFCLOUD one.
    #[error("node {node}")]
    ProviderId {
        /// The node.
        node: String,
        /// What is wrong with its providerID.
        #[source]
        source: ProviderIdError,
    },
    /// Several servers match and none is preferred.
    #[error("node {node} matches several NIFCLOUD servers by {by}: {candidates:?}")]
    Ambiguous {
        /// The node.
        node: String,
        /// `name` or `address`.
        by: &'static str,
        /// The matching server names.
        candidates: Vec<String>,
    },
}

/// An index of every server in one `DescribeInstances` reply.
#[derive(Clone, Debug, Default)]
pub struct InstanceIndex {
    instances: Vec<Instance>,
    by_unique_id: HashMap<String, usize>,
    by_name: HashMap<String, usize>,
    by_lower_name: HashMap<String, Vec<usize>>,
    by_ip: HashMap<IpAddr, Vec<usize>>,
}

impl InstanceIndex {
    /// Indexes `instances` by unique id, by name (exactly and without regard to case) and by address.
    pub fn new(instances: Vec<Instance>) -> Self {
        let mut index = Self::default();
        for (i, inst) in instances.iter().enumerate() {
            index.by_unique_id.insert(inst.unique_id.clone(), i);
            index.by_name.insert(inst.name.clone(), i);
            index
                .by_lower_name
                .entry(inst.name.to_ascii_lowercase())
                .or_default()
                .push(i);
            for a in &inst.addresses {
                index.by_ip.entry(a.ip).or_default().push(i);
            }
        }
        index.instances = instances;
        index
    }

    /// Every server of the account, in DescribeInstances order.
    pub fn instances(&self) -> &[Instance] {
        &self.instances
    }

    /// The server with this `instanceUniqueId`.
    pub fn by_unique_id(&self, unique_id: &str) -> Option<&Instance> {
        self.by_unique_id.get(unique_id).map(|&i| &self.instances[i])
    }

    /// The server with this exact name.
    pub fn by_name(&self, name: &str) -> Option<&Instance> {
        self.by_name.get(name).map(|&i| &self.instances[i])
    }

    /// Matches a node to a server (see the module documentation). `Ok(None)` means no server matches.
    pub fn find(&self, node: &NodeRef<'_>) -> Result<Option<&Instance>, LookupError> {
        if let Some(raw) = node.provider_id.filter(|p| !p.trim().is_empty()) {
            let id = ProviderId::parse(raw).map_err(|source| LookupError::ProviderId {
                node: node.name.to_owned(),
                source,
            })?;
            return Ok(self.by_unique_id(&id.unique_id));
        }
        if let Some(inst) = self.by_name(node.name) {
            return Ok(Some(inst));
        }
        let ambiguous = |by, idx: &[usize]| LookupError::Ambiguous {
            node: node.name.to_owned(),
            by,
            candidates: idx.iter().map(|&i| self.instances[i].name.clone()).collect(),
        };
        match self
            .by_lower_name
            .get(&node.name.to_ascii_lowercase())
            .map(Vec::as_slice)
        {
            Some([one]) => return Ok(Some(&self.instances[*one])),
            Some(many @ [_, _, ..]) => return Err(ambiguous("name", many)),
            _ => {}
        }
        let mut hits: Vec<usize> = node
            .addresses
            .iter()
            .filter_map(|ip| self.by_ip.get(ip))
            .flatten()
            .copied()
            .collect();
        hits.sort_unstable();
        hits.dedup();
        match hits.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(&self.instances[*one])),
            many => Err(ambiguous("address", many)),
        }
    }
}

/// The shared view of every server: one coalesced, cached `DescribeInstances` for all callers.
#[derive(Debug)]
pub struct InstanceView {
    client: Client,
    cache: CoalescingCache<InstanceIndex, CloudError>,
}

impl InstanceView {
    /// A view that reuses a listing for `ttl` (see [`crate::cache::DEFAULT_TTL`]).
    pub fn new(client: Client, ttl: Duration) -> Self {
        Self {
            client,
            cache: CoalescingCache::new(ttl),
        }
    }

    /// The SDK client the view's DescribeInstances calls go through.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// How many `DescribeInstances` calls this view has made.
    pub fn fetch_count(&self) -> u64 {
        self.cache.fetch_count()
    }

    /// The current index (cached up to the TTL).
    pub async fn index(&self) -> Result<Arc<InstanceIndex>, CloudError> {
        self.cache.get(|| self.list()).await
    }

    /// An index from a listing that started after this call.
    pub async fn fresh_index(&self) -> Result<Arc<InstanceIndex>, CloudError> {
        self.cache.get_fresh(|| self.list()).await
    }

    /// An index from a listing that started no earlier than `asked`.
    pub async fn fresh_since(&self, asked: tokio::time::Instant) -> Result<Arc<InstanceIndex>, CloudError> {
        self.cache.get_since(asked, || self.list()).await
    }

    /// Forgets the cached listing.
    pub async fn invalidate(&self) {
        self.cache.invalidate().await;
    }

    async fn list(&self) -> Result<InstanceIndex, CloudError> {
        // Read reservation by reservation as the reply arrives, keeping only the servers' summaries.
        let servers = self
            .client
            .send_folded(
                &DescribeInstancesRequest::default(),
                &["reservationSet"],
                Vec::new,
                |all: &mut Vec<Instance>, r: ReservationSet| all.extend(Instance::from_reservation(&r)),
            )
            .await
            .map_err(CloudError::wrap("DescribeInstances", "all servers"))?;
        Ok(InstanceIndex::new(servers))
    }

    /// The server behind `node`; `Ok(None)` only when a listing fresher than this call has no match.
    pub async fn find(&self, node: &NodeRef<'_>) -> Result<Option<Instance>, LookupError> {
        let asked = tokio::time::Instant::now();
        let index = self.index().await?;
        if let Some(found) = index.find(node)? {
            return Ok(Some(found.clone()));
        }
        let fresh = self.cache.get_since(asked, || self.list()).await?;
        Ok(fresh.find(node)?.cloned())
    }

    /// Whether the server behind `node` exists: `false` only on a definite not-found.
    pub async fn exists(&self, node: &NodeRef<'_>) -> Result<bool, LookupError> {
        Ok(self.find(node).await?.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::{AddressKind, InstanceAddress, InstanceState};

    fn inst(name: &str, uid: &str, ip: &str) -> Instance {
        Instance {
            name: name.into(),
            unique_id: uid.into(),
            zone: "east-11".into(),
            instance_type: "e-large".into(),
            state: InstanceState::Running,
            addresses: vec![InstanceAddress {
                kind: AddressKind::PrivateV4,
                ip: ip.parse().unwrap(),
                network_id: None,
            }],
            security_groups: vec![],
        }
    }

    #[test]
    fn matching_rules() {
        let index = InstanceIndex::new(vec![
            inst("web1", "i-1", "10.0.0.1"),
            inst("Web2", "i-2", "10.0.0.2"),
            inst("dupA", "i-3", "10.0.0.9"),
            inst("DUPa", "i-4", "10.0.0.9"),
        ]);
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let ips_1 = [ip("10.0.0.1")];
        let ips_2 = [ip("10.0.0.2")];
        let ips_9 = [ip("10.0.0.9")];
        let ips_none = [ip("10.9.9.9")];
        // (provider id, name, addresses) -> expected unique id, or None for not found.
        type Case<'a> = (Option<&'a str>, &'a str, &'a [IpAddr], Option<&'a str>);
        let found: [Case<'_>; 9] = [
            (Some("nifcloud:///east-11/i-1"), "anything", &[], Some("i-1")),
            (Some("nifcloud:////i-2"), "x", &[], Some("i-2")),
            (Some("i-2"), "x", &[], Some("i-2")),
            // providerID wins: a server named like the node but with another unique id is not it.
            (Some("nifcloud:///east-11/i-gone"), "web1", &ips_1, None),
            (None, "web1", &[], Some("i-1")),
            (None, "web2", &[], Some("i-2")),
            (None, "k8s-node-a", &ips_2, Some("i-2")),
            (None, "k8s-node-b", &ips_none, None),
            (Some(""), "web1", &[], Some("i-1")),
        ];
        for (pid, name, addrs, want) in found {
            let node = NodeRef {
                provider_id: pid,
                name,
                addresses: addrs,
            };
            let got = index.find(&node).unwrap().map(|i| i.unique_id.as_str());
            assert_eq!(got, want, "{pid:?} {name}");
        }
        let err = |pid: Option<&str>, name: &str, addrs: &[IpAddr]| {
            index
                .find(&NodeRef {
                    provider_id: pid,
                    name,
                    addresses: addrs,
                })
                .unwrap_err()
                .to_string()
        };
        assert!(err(None, "dupa", &[]).contains("by name"));
        assert!(err(None, "other", &ips_9).contains("by address"));
        assert!(err(Some("aws:///x/i-1"), "n", &[]).contains("node n"));
    }
}
