//! Thin IO over the NIFCLOUD SDK for the controller: the volume and instance calls it makes, their
//! errors with context; the server list comes from `nifcloud-cloud`'s shared, coalescing [`InstanceView`].

use std::sync::Arc;
use std::time::Duration;

use nifcloud_cloud::InstanceView;
use nifcloud_sdk::types::{
    AttachVolumeRequest, CreateVolumeRequest, DeleteVolumeRequest, DescribeInstanceAttributeRequest,
    DescribeVolumesRequest, DetachVolumeRequest, ExtendVolumeSizeRequest, ModifyVolumeAttributeRequest,
};
use nifcloud_sdk::{Client, ErrorKind};

use crate::device::ScsiDevice;
use crate::disk::Disk;
use crate::params::{AccountingType, DiskType};
use crate::plan::Server;

/// An error of a cloud call or of waiting for a volume state.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// A NIFCLOUD call failed.
    #[error("{action} {target}: {source}")]
    Api {
        /// The API action, e.g. `AttachVolume`.
        action: &'static str,
        /// The volume or server it was about.
        target: String,
        /// The SDK error (code, message, request id).
        source: nifcloud_sdk::Error,
    },
    /// DescribeVolumes failed while polling.
    #[error("DescribeVolumes failed while waiting: {message}")]
    Describe {
        /// The error, as text (shared by every waiter of the poll).
        message: String,
        /// Its class.
        kind: ErrorKind,
    },
    /// The server list could not be read (DescribeInstances through the shared, cached view), or a node name
    /// matched several servers that differ only in case.
    #[error("finding servers: {message}")]
    Servers {
        /// The error, as text (shared by every caller of the cached view).
        message: String,
        /// Its class (`InvalidRequest` for an ambiguous node name).
        kind: ErrorKind,
    },
    /// A wait did not end in time.
    #[error("timed out after {waited:?} waiting for {what}; last seen: {last}")]
    WaitTimeout {
        /// What was awaited.
        what: String,
        /// The last observed state.
        last: String,
        /// How long.
        waited: Duration,
    },
    /// The poller stopped (the driver is shutting down).
    #[error("the volume poller stopped")]
    PollerGone,
}

impl CloudError {
    fn api(action: &'static str, target: &str, source: nifcloud_sdk::Error) -> Self {
        CloudError::Api {
            action,
            target: target.to_string(),
            source,
        }
    }

    /// The class of the underlying error (`Other` for waits).
    pub fn kind(&self) -> ErrorKind {
        match self {
            CloudError::Api { source, .. } => source.kind(),
            CloudError::Describe { kind, .. } | CloudError::Servers { kind, .. } => *kind,
            CloudError::WaitTimeout { .. } | CloudError::PollerGone => ErrorKind::Other,
        }
    }

    /// The NIFCLOUD error code, if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            CloudError::Api { source, .. } => source.code(),
            _ => None,
        }
    }

    /// Whether NIFCLOUD said the resource does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }
}

impl From<CloudError> for tonic::Status {
    fn from(e: CloudError) -> Self {
        let msg = e.to_string();
        match &e {
            CloudError::WaitTimeout { .. } => tonic::Status::deadline_exceeded(msg),
            CloudError::PollerGone => tonic::Status::unavailable(msg),
            _ => match e.kind() {
                ErrorKind::NotFound => tonic::Status::not_found(msg),
                ErrorKind::Duplicate => tonic::Status::already_exists(msg),
                ErrorKind::Inoperable => tonic::Status::failed_precondition(msg),
                ErrorKind::Busy | ErrorKind::Unavailable | ErrorKind::Transport => tonic::Status::unavailable(msg),
                ErrorKind::Auth => tonic::Status::permission_denied(msg),
                ErrorKind::InvalidRequest => tonic::Status::invalid_argument(msg),
                _ => tonic::Status::internal(msg),
            },
        }
    }
}

/// What CreateVolume sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDisk {
    /// `VolumeId`: the *creating* id ([`crate::disk::creating_id`]) of the CSI name.
    pub id: String,
    /// Size in GB.
    pub size_gb: i64,
    /// `DiskType`, sent as its code.
    pub disk_type: DiskType,
    /// `AccountingType`: how the disk is billed from the start.
    pub accounting_type: AccountingType,
    /// Description (the CSI name).
    pub description: String,
    /// The helper server it is created on.
    pub server: String,
}

fn server_of(i: &nifcloud_cloud::Instance) -> Server {
    Server {
        name: i.name.clone(),
        zone: i.zone.clone(),
        state: i.state.as_str().to_owned(),
    }
}

/// The controller's NIFCLOUD calls.
#[derive(Debug, Clone)]
pub struct Cloud {
    client: Client,
    /// The same endpoint without SDK retries, for ExtendVolumeSize: a "busy" reply there may
    /// mean an extension we cannot see yet, and a blind retry would grow the disk past its target.
    once: Client,
    instances: Arc<InstanceView>,
}

impl Cloud {
    /// Wraps `client`; the server list is cached for `server_ttl` (concurrent callers share one call).
    pub fn new(client: Client, server_ttl: Duration) -> Self {
        Self {
            once: client.with_retry(nifcloud_sdk::retry::RetryConfig::disabled()),
            instances: Arc::new(InstanceView::new(client.clone(), server_ttl)),
            client,
        }
    }

    /// The SDK client the calls go through (with the configured retries).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Every disk of the account.
    pub async fn list_disks(&self) -> Result<Vec<Disk>, CloudError> {
        let out = self
            .client
            .describe_volumes(DescribeVolumesRequest::default())
            .await
            .map_err(|e| CloudError::api("DescribeVolumes", "(all)", e))?;
        Ok(out.volume_set.iter().filter_map(Disk::from_api).collect())
    }

    /// One disk (`None` when it does not exist).
    pub async fn get_disk(&self, id: &str) -> Result<Option<Disk>, CloudError> {
        let req = DescribeVolumesRequest::default().volume_id([id.to_string()]);
        match self.client.describe_volumes(req).await {
            Ok(out) => Ok(out.volume_set.iter().filter_map(Disk::from_api).find(|d| d.id == id)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(CloudError::api("DescribeVolumes", id, e)),
        }
    }

    /// Every server of the account, from a cache at most `server_ttl` old (or fresh if `refresh`).
    pub async fn servers(&self, refresh: bool) -> Result<Arc<Vec<Server>>, CloudError> {
        let index = if refresh {
            self.instances.fresh_index().await
        } else {
            self.instances.index().await
        };
        let index = index.map_err(|e| CloudError::Servers {
            message: e.source.to_string(),
            kind: e.source.kind(),
        })?;
        let servers = index.instances().iter().map(server_of).collect();
        Ok(Arc::new(servers))
    }

    /// The server a node name means (looked up again when the cached list does not have it), `None` if unknown.
    ///
    /// Matched as the CCM matches nodes to servers ([`nifcloud_cloud::InstanceIndex::find`]): the exact server
    /// name, else the one server whose name differs only in case. The returned [`Server::name`] is the server's
    /// own, for API calls and for comparing with attachments.
    pub async fn server(&self, name: &str) -> Result<Option<Server>, CloudError> {
        for refresh in [false, true] {
            let index = if refresh {
                self.instances.fresh_index().await
            } else {
                self.instances.index().await
            }
            .map_err(|e| CloudError::Servers {
                message: e.source.to_string(),
                kind: e.source.kind(),
            })?;
            let node = nifcloud_cloud::NodeRef {
                name,
                ..Default::default()
            };
            match index.find(&node) {
                Ok(Some(i)) => return Ok(Some(server_of(i))),
                Ok(None) => {}
                Err(e) => {
                    return Err(CloudError::Servers {
                        message: e.to_string(),
                        kind: ErrorKind::InvalidRequest,
                    });
                }
            }
        }
        Ok(None)
    }

    /// CreateVolume, attached to `d.server`.
    pub async fn create_disk(&self, d: &NewDisk) -> Result<(), CloudError> {
        let req = CreateVolumeRequest::default()
            .size(d.size_gb)
            .volume_id(d.id.clone())
            .disk_type(d.disk_type.code().to_string())
            .accounting_type(d.accounting_type.code())
            .description(d.description.clone())
            .instance_id(d.server.clone());
        self.client
            .create_volume(req)
            .await
            .map(|_| ())
            .map_err(|e| CloudError::api("CreateVolume", &d.id, e))
    }

    /// AttachVolume of disk `id` to `server` (NIFCLOUD picks the SCSI unit); the attachment completes
    /// asynchronously.
    pub async fn attach(&self, id: &str, server: &str) -> Result<(), CloudError> {
        let req = AttachVolumeRequest::default().volume_id(id).instance_id(server);
        self.client
            .attach_volume(req)
            .await
            .map(|_| ())
            .map_err(|e| CloudError::api("AttachVolume", &format!("{id} to {server}"), e))
    }

    /// DetachVolume with `Agreement=true`.
    pub async fn detach(&self, id: &str, server: &str) -> Result<(), CloudError> {
        let req = DetachVolumeRequest::default()
            .volume_id(id)
            .instance_id(server)
            .agreement(true);
        self.client
            .detach_volume(req)
            .await
            .map(|_| ())
            .map_err(|e| CloudError::api("DetachVolume", &format!("{id} from {server}"), e))
    }

    /// DeleteVolume of disk `id`, which must be detached.
    pub async fn delete(&self, id: &str) -> Result<(), CloudError> {
        self.client
            .delete_volume(DeleteVolumeRequest::default().volume_id(id))
            .await
            .map(|_| ())
            .map_err(|e| CloudError::api("DeleteVolume", id, e))
    }

    /// ExtendVolumeSize (+100 GB) without rebooting the server.
    pub async fn extend(&self, id: &str) -> Result<(), CloudError> {
        let req = ExtendVolumeSizeRequest::default().volume_id(id).nifty_reboot("false");
        self.once
            .extend_volume_size(req)
            .await
            .map(|_| ())
            .map_err(|e| CloudError::api("ExtendVolumeSize", id, e))
    }

    /// Sets how a disk is billed from next month (ModifyVolumeAttribute accountingType).
    pub async fn set_accounting(&self, id: &str, accounting: AccountingType) -> Result<(), CloudError> {
        let req = ModifyVolumeAttributeRequest {
            volume_id: Some(id.into()),
            attribute: Some("accountingType".into()),
            value: Some(accounting.code().into()),
        };
        self.client
            .modify_volume_attribute(req)
            .await
            .map(|_| ())
            .map_err(|e| CloudError::api("ModifyVolumeAttribute", &format!("{id} accountingType"), e))
    }

    /// Renames a disk (ModifyVolumeAttribute volumeName).
    pub async fn rename(&self, id: &str, new_id: &str) -> Result<(), CloudError> {
        let req = ModifyVolumeAttributeRequest {
            volume_id: Some(id.into()),
            attribute: Some("volumeName".into()),
            value: Some(new_id.into()),
        };
        self.client
            .modify_volume_attribute(req)
            .await
            .map(|_| ())
            .map_err(|e| CloudError::api("ModifyVolumeAttribute", &format!("{id} -> {new_id}"), e))
    }

    /// The `SCSI (0:N)` name of disk `id` on `server`, from DescribeInstanceAttribute.
    pub async fn device_name(&self, server: &str, id: &str) -> Result<Option<String>, CloudError> {
        let req = DescribeInstanceAttributeRequest {
            instance_id: Some(server.into()),
            attribute: Some("blockDeviceMapping".into()),
        };
        let out = self
            .client
            .describe_instance_attribute(req)
            .await
            .map_err(|e| CloudError::api("DescribeInstanceAttribute", server, e))?;
        Ok(out
            .block_device_mapping
            .iter()
            .find(|m| m.ebs.as_ref().and_then(|e| e.volume_id.as_deref()) == Some(id))
            .and_then(|m| m.device_name.as_deref().map(String::from))
            .filter(|d| d.parse::<ScsiDevice>().is_ok()))
    }
}
