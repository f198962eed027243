//! The NIFCLOUD side of the node service: who this node is, where it is, how many more disks it
//! can take, and where an attached disk shows up.
//!
//! - Node id: the server name (`instanceId`, also the Kubernetes node name), from `NODE_NAME`
//!   (or an explicit flag), else from VMware guestinfo
//!   (`vmtoolsd --cmd "info-get guestinfo.hostname"`).
//! - Zone: given (flag / `NIFCLOUD_ZONE`), else read from DescribeInstances.
//! - `max_volumes_per_node`: the 14 additional-disk slots (SCSI units 1-15 except 7; the boot
//!   disk sits at `SCSI (0:0)`, outside them) minus the slots held by disks this driver does not
//!   manage. With API access it is computed from DescribeInstanceAttribute(blockDeviceMapping)
//!   and the disks' descriptions ([`Disk::is_managed`]); without, from the SCSI units visible
//!   under `/dev/disk/by-path` at start-up (conservative: a driver disk still attached across a
//!   plugin restart is counted as foreign).
//! - Devices: `SCSI (0:N)` from the publish context becomes unit N ([`published_unit`]), which csi-core's
//!   [`ScsiLocator`] finds on the boot disk's SCSI host (rescan of that one host, bounded wait) and deletes
//!   after unstage.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use csi_core::node::scsi::ScsiLocator;
use csi_core::node::{NodePlatform, PlatformError};
use nifcloud_cloud::Instance;
use nifcloud_sdk::Client;
use nifcloud_sdk::types::{DescribeInstanceAttributeRequest, DescribeInstancesRequest, DescribeVolumesRequest};

use crate::device::{ScsiDevice, published_unit};
use crate::disk::{Disk, MAX_DISKS_PER_SERVER};

/// Errors of finding out who and where this node is.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Neither the environment nor VMware guestinfo named the node.
    #[error("cannot tell this node's server name: set NODE_NAME (or --node-id); vmtoolsd: {0}")]
    NoNodeId(String),
    /// The zone is not configured and the API could not tell.
    #[error("cannot tell the zone of server {node}: {reason}")]
    NoZone {
        /// The node's server name.
        node: String,
        /// Why neither the configuration nor DescribeInstances gave it.
        reason: String,
    },
}

/// Whether SCSI unit `n` is one of the 14 additional-disk slots.
pub fn is_additional_slot(n: u8) -> bool {
    (1..=15).contains(&n) && n != 7
}

/// Pure: the volume limit given the units held by disks this driver does not manage.
pub fn volume_limit(foreign_units: &[u8]) -> i64 {
    let mut units: Vec<u8> = foreign_units
        .iter()
        .copied()
        .filter(|n| is_additional_slot(*n))
        .collect();
    units.sort_unstable();
    units.dedup();
    (MAX_DISKS_PER_SERVER as i64 - units.len() as i64).max(0)
}

/// Reads the node name from `NODE_NAME`, else from VMware guestinfo.
pub async fn discover_node_id(explicit: Option<String>) -> Result<String, IdentityError> {
    if let Some(id) = explicit.filter(|s| !s.trim().is_empty()) {
        return Ok(id.trim().to_string());
    }
    if let Ok(id) = std::env::var("NODE_NAME")
        && !id.trim().is_empty()
    {
        return Ok(id.trim().to_string());
    }
    let args = vec!["--cmd".to_string(), "info-get guestinfo.hostname".to_string()];
    match csi_core::node::exec::run("vmtoolsd", &args, Duration::from_secs(10)).await {
        Ok(out) if !out.stdout.trim().is_empty() => Ok(out.stdout.trim().to_string()),
        Ok(_) => Err(IdentityError::NoNodeId("guestinfo.hostname is empty".into())),
        Err(e) => Err(IdentityError::NoNodeId(e.to_string())),
    }
}

/// The server a node name means, and its zone, from DescribeInstances: matched as the controller and the CCM
/// match it ([`nifcloud_cloud::InstanceIndex::find`]: the exact name, else the one name that differs only in
/// case). Returns `(server name, zone)`.
pub async fn discover_server(client: &Client, node: &str) -> Result<(String, String), IdentityError> {
    let no_zone = |reason: String| IdentityError::NoZone {
        node: node.to_string(),
        reason,
    };
    // The server of that exact name in one small call; the whole listing only when it is not there (a node name
    // that differs from its server's in case), so a node plugin's start does not list every server.
    let exact = DescribeInstancesRequest {
        instance_id: vec![node.into()],
        ..Default::default()
    };
    let out = match client.describe_instances(exact).await {
        Ok(out) if Instance::all_from_describe(&out).iter().any(|i| i.name == node) => out,
        Ok(_) => list_all(client).await.map_err(|e| no_zone(e.to_string()))?,
        Err(e) if e.is_not_found() => list_all(client).await.map_err(|e| no_zone(e.to_string()))?,
        Err(e) => return Err(no_zone(e.to_string())),
    };
    let index = nifcloud_cloud::InstanceIndex::new(Instance::all_from_describe(&out));
    let found = index
        .find(&nifcloud_cloud::NodeRef {
            name: node,
            ..Default::default()
        })
        .map_err(|e| no_zone(e.to_string()))?
        .ok_or_else(|| no_zone("DescribeInstances shows no server of that name".into()))?;
    if found.zone.is_empty() {
        return Err(no_zone(format!(
            "DescribeInstances shows no zone for server {}",
            found.name
        )));
    }
    Ok((found.name.clone(), found.zone.clone()))
}

async fn list_all(client: &Client) -> Result<nifcloud_sdk::types::DescribeInstancesResult, nifcloud_sdk::Error> {
    client.describe_instances(DescribeInstancesRequest::default()).await
}

/// The SCSI units on `node` held by disks this driver does not manage (API view).
pub async fn foreign_units_from_api(client: &Client, node: &str) -> Result<Vec<u8>, nifcloud_sdk::Error> {
    let req = DescribeInstanceAttributeRequest {
        instance_id: Some(node.into()),
        attribute: Some("blockDeviceMapping".into()),
    };
    let mapping = client.describe_instance_attribute(req).await?.block_device_mapping;
    let attached: Vec<(u8, String)> = mapping
        .iter()
        .filter_map(|m| {
            let unit = m.device_name.as_deref()?.parse::<ScsiDevice>().ok()?.unit;
            let id = String::from(m.ebs.as_ref()?.volume_id.as_deref().unwrap_or_default());
            Some((unit, id))
        })
        .collect();
    if attached.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = attached
        .iter()
        .map(|(_, id)| id.clone())
        .filter(|id| !id.is_empty())
        .collect();
    let disks: Vec<Disk> = if ids.is_empty() {
        Vec::new()
    } else {
        client
            .describe_volumes(DescribeVolumesRequest::default().volume_id(ids))
            .await?
            .volume_set
            .iter()
            .filter_map(Disk::from_api)
            .collect()
    };
    Ok(attached
        .into_iter()
        .filter(|(_, id)| !disks.iter().any(|d| &d.id == id && d.is_managed()))
        .map(|(unit, _)| unit)
        .collect())
}

/// The node platform for NIFCLOUD servers.
#[derive(Debug, Clone)]
pub struct NifcloudNode {
    node_id: String,
    server: String,
    zone: String,
    locator: ScsiLocator,
    client: Option<Client>,
    startup_units: Vec<u8>,
}

impl NifcloudNode {
    /// A platform for server `node_id` in `zone`. With `client`, the volume limit is computed from
    /// the API; without, from the SCSI units `locator` sees now.
    pub fn new(node_id: String, zone: String, locator: ScsiLocator, client: Option<Client>) -> Self {
        let startup_units = locator
            .visible_units()
            .into_iter()
            .filter_map(|u| u8::try_from(u).ok())
            .collect();
        Self {
            server: node_id.clone(),
            node_id,
            zone,
            locator,
            client,
            startup_units,
        }
    }

    /// The same platform, naming the server `server` in API calls when the node id differs from it (in case).
    pub fn with_server_name(mut self, server: String) -> Self {
        self.server = server;
        self
    }

    /// The availability zone of this node's server: its topology segment, and the only zone whose disks can
    /// attach here.
    pub fn zone(&self) -> &str {
        &self.zone
    }
}

#[tonic::async_trait]
impl NodePlatform for NifcloudNode {
    fn node_id(&self) -> String {
        self.node_id.clone()
    }

    fn accessible_topology(&self) -> HashMap<String, String> {
        crate::topology::zone_topology(&self.zone).segments
    }

    async fn max_volumes_per_node(&self) -> Result<i64, PlatformError> {
        let foreign = match &self.client {
            Some(client) => foreign_units_from_api(client, &self.server)
                .await
                .map_err(|e| PlatformError::Unavailable(format!("reading the disks of server {}: {e}", self.server)))?,
            None => self.startup_units.clone(),
        };
        let limit = volume_limit(&foreign);
        tracing::info!(node = %self.node_id, ?foreign, limit, "volume limit");
        Ok(limit)
    }

    async fn resolve_device(
        &self,
        _volume_id: &str,
        publish_context: &HashMap<String, String>,
    ) -> Result<PathBuf, PlatformError> {
        let unit = published_unit(publish_context)?;
        Ok(self.locator.locate_unit(u32::from(unit)).await?)
    }

    async fn cleanup_device(&self, _volume_id: &str, device: &Path) -> Result<(), PlatformError> {
        self.locator.remove(device)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_table() {
        assert_eq!(volume_limit(&[]), 14);
        assert_eq!(volume_limit(&[0]), 14, "the boot disk is outside the 14 slots");
        assert_eq!(volume_limit(&[0, 1, 2]), 12);
        assert_eq!(volume_limit(&[7]), 14, "unit 7 is the controller's");
        assert_eq!(volume_limit(&[1, 1, 3]), 12, "a unit counts once");
        let all: Vec<u8> = (0..=15).collect();
        assert_eq!(volume_limit(&all), 0);
    }

    #[tokio::test]
    async fn explicit_node_id_wins() {
        assert_eq!(discover_node_id(Some(" node7 ".into())).await.unwrap(), "node7");
    }
}
