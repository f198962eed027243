//! The domain model of additional disks as DescribeVolumes shows them, and the naming scheme that
//! ties a CSI volume name to a disk.
//!
//! # Naming
//! The CSI name (`pvc-…`) is kept verbatim in the disk's `Description`, and the lookup is an exact
//! match. The disk's `VolumeId` (the API name, 1-32 alphanumerics, unique per account) is derived
//! from the CSI name:
//! - while the driver is still creating the disk (attached to a helper server): [`creating_id`],
//!   `csin` + 24 hex digits of SHA-256(name);
//! - once created and detached: [`final_id`], `csi` + the same 24 hex digits.
//!
//! The deterministic id makes NIFCLOUD itself refuse a duplicate create
//! (`Client.InvalidParameterDuplicate.Volume`), and the id tells a retry whether an attachment it
//! finds is the helper attachment of an interrupted create (safe to detach) or a real publish
//! (never touched by CreateVolume).

use sha2::{Digest, Sha256};

use crate::device::ScsiDevice;
use crate::params::{AccountingType, DiskType};

/// Bytes in one NIFCLOUD "GB": 2^30. NIFCLOUD runs on VMware, whose "GB" is a GiB; the original driver, its
/// 2024 successor and the article's `kubectl get pv` (a 10Gi claim shown as `100Gi`) all count it so.
pub const GIB: i64 = 1 << 30;
/// Smallest disk, in GB.
pub const MIN_SIZE_GB: i64 = 100;
/// Largest disk, in GB.
pub const MAX_SIZE_GB: i64 = 4000;
/// Size step, in GB (CreateVolume sizes and each ExtendVolumeSize).
pub const STEP_GB: i64 = 100;
/// Additional disks a server can hold (SCSI units 1-15 except 7).
pub const MAX_DISKS_PER_SERVER: usize = 14;

fn digest24(name: &str) -> String {
    let hash = Sha256::digest(name.as_bytes());
    hash.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// The VolumeId of a disk that is still being created for CSI volume `name`.
pub fn creating_id(name: &str) -> String {
    format!("csin{}", digest24(name))
}

/// The VolumeId of a finished disk for CSI volume `name`.
pub fn final_id(name: &str) -> String {
    format!("csi{}", digest24(name))
}

/// A disk's `status` in DescribeVolumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskStatus {
    /// `creating`: CreateVolume accepted, the disk not ready yet.
    Creating,
    /// `available`: attached to no server.
    Available,
    /// `in-use`: attached (in any phase) to a server.
    InUse,
    /// Anything else the API reports (kept for messages; treated as abnormal).
    Other(String),
}

impl DiskStatus {
    /// Reads the wire value.
    pub fn from_wire(s: &str) -> Self {
        match s {
            "creating" => DiskStatus::Creating,
            "available" => DiskStatus::Available,
            "in-use" => DiskStatus::InUse,
            other => DiskStatus::Other(other.to_string()),
        }
    }

    /// The wire value.
    pub fn as_str(&self) -> &str {
        match self {
            DiskStatus::Creating => "creating",
            DiskStatus::Available => "available",
            DiskStatus::InUse => "in-use",
            DiskStatus::Other(s) => s,
        }
    }
}

impl std::fmt::Display for DiskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The phase of an attachment (`attachmentSet/item/status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachState {
    /// `attaching`: AttachVolume (or the attach of CreateVolume) in progress.
    Attaching,
    /// `attached`: usable on the server.
    Attached,
    /// `detaching`: DetachVolume in progress.
    Detaching,
    /// Anything else the API reports.
    Other(String),
}

impl AttachState {
    /// Reads the wire value.
    pub fn from_wire(s: &str) -> Self {
        match s {
            "attaching" => AttachState::Attaching,
            "attached" => AttachState::Attached,
            "detaching" => AttachState::Detaching,
            other => AttachState::Other(other.to_string()),
        }
    }

    /// The wire value.
    pub fn as_str(&self) -> &str {
        match self {
            AttachState::Attaching => "attaching",
            AttachState::Attached => "attached",
            AttachState::Detaching => "detaching",
            AttachState::Other(s) => s,
        }
    }
}

impl std::fmt::Display for AttachState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One attachment of a disk to a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The server's name (`instanceId`, the Kubernetes node name).
    pub instance_id: String,
    /// Where it is attached, `SCSI (0:N)` ([`ScsiDevice`]), when the API sent a name of that form.
    pub device: Option<String>,
    /// Its phase.
    pub status: AttachState,
}

impl Attachment {
    /// Whether the attachment is complete.
    pub fn is_attached(&self) -> bool {
        self.status == AttachState::Attached
    }
}

/// An additional disk as one DescribeVolumes item shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// `volumeId` (the CSI volume id once created).
    pub id: String,
    /// `volumeUniqueId` (`vol-…`): immutable, unlike `id`, which the driver renames once the disk is created.
    pub unique_id: String,
    /// Size in GB (0 when the API sent none).
    pub size_gb: i64,
    /// Disk type, when recognised.
    pub disk_type: Option<DiskType>,
    /// The availability zone (`east-11`, …): the disk attaches only to servers of this zone.
    pub zone: String,
    /// Description (the CSI name for disks of this driver).
    pub description: String,
    /// `creating`, `available`, `in-use`, ...
    pub status: DiskStatus,
    /// How the disk is billed this month (`accountingType`), when the API says.
    pub accounting: Option<AccountingType>,
    /// How it will be billed from next month (`nextMonthAccountingType`): differs from [`Self::accounting`]
    /// while a change made with ModifyVolumeAttribute is pending.
    pub next_month_accounting: Option<AccountingType>,
    /// Attachments (NIFCLOUD disks have at most one).
    pub attachments: Vec<Attachment>,
}

impl Disk {
    /// Reads a DescribeVolumes item; `None` without a `volumeId`.
    pub fn from_api(v: &nifcloud_sdk::types::VolumeSet) -> Option<Disk> {
        let id = String::from(v.volume_id.as_deref().filter(|s| !s.is_empty())?);
        Some(Disk {
            id,
            unique_id: v.volume_unique_id.as_deref().unwrap_or_default().to_owned(),
            size_gb: v.size.as_deref().and_then(|s| s.trim().parse().ok()).unwrap_or(0),
            disk_type: v.disk_type.as_deref().and_then(DiskType::from_api),
            zone: v.availability_zone.as_deref().unwrap_or_default().to_owned(),
            description: v.description.as_deref().unwrap_or_default().to_owned(),
            status: DiskStatus::from_wire(v.status.as_deref().unwrap_or_default()),
            accounting: v.accounting_type.as_deref().and_then(AccountingType::parse),
            next_month_accounting: v.next_month_accounting_type.as_deref().and_then(AccountingType::parse),
            attachments: v
                .attachment_set
                .iter()
                .filter_map(|a| {
                    let instance_id = String::from(a.instance_id.as_deref().filter(|s| !s.is_empty())?);
                    Some(Attachment {
                        instance_id,
                        device: a
                            .device
                            .as_deref()
                            .filter(|d| d.parse::<ScsiDevice>().is_ok())
                            .map(String::from),
                        status: AttachState::from_wire(a.status.as_deref().unwrap_or_default()),
                    })
                })
                .collect(),
        })
    }

    /// The attachment to `instance`, if any.
    pub fn attachment_to(&self, instance: &str) -> Option<&Attachment> {
        self.attachments.iter().find(|a| a.instance_id == instance)
    }

    /// Whether the disk is attached (in any phase) to some server.
    pub fn is_attached(&self) -> bool {
        !self.attachments.is_empty()
    }

    /// Capacity in bytes.
    pub fn capacity_bytes(&self) -> i64 {
        self.size_gb.saturating_mul(GIB)
    }

    /// Whether this disk was created by this driver (or by the original Go driver, whose disks
    /// carry a `pvc-` name in the description and a random id).
    pub fn is_managed(&self) -> bool {
        !self.description.is_empty()
            && (self.id == final_id(&self.description)
                || self.id == creating_id(&self.description)
                || self.description.starts_with("pvc-"))
    }

    /// Whether this is a disk of this driver whose creation has not finished.
    pub fn is_creating(&self) -> bool {
        !self.description.is_empty() && self.id == creating_id(&self.description)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nifcloud_sdk::types::{AttachmentSet, VolumeSet};

    #[test]
    fn ids_are_deterministic_valid_and_distinct() {
        let name = "pvc-0a1b2c3d-1111-2222-3333-444455556666";
        let (c, f) = (creating_id(name), final_id(name));
        assert_eq!(c, creating_id(name));
        assert_ne!(c, f);
        assert_ne!(final_id("pvc-a"), final_id("pvc-ab"), "no prefix aliasing");
        for id in [&c, &f] {
            assert!(
                id.len() <= 32 && id.chars().all(|ch| ch.is_ascii_alphanumeric()),
                "{id}"
            );
        }
    }

    #[test]
    fn reads_api_items_and_classifies_ownership() {
        let item = VolumeSet {
            volume_id: Some(final_id("pvc-x").into()),
            volume_unique_id: Some("vol-1".into()),
            size: Some("200".into()),
            disk_type: Some("High-Speed Flash Storage B".into()),
            availability_zone: Some("east-11".into()),
            description: Some("pvc-x".into()),
            status: Some("in-use".into()),
            accounting_type: Some("2".into()),
            next_month_accounting_type: Some("1".into()),
            attachment_set: vec![AttachmentSet {
                instance_id: Some("node1".into()),
                device: Some("SCSI (0:2)".into()),
                status: Some("attached".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let d = Disk::from_api(&item).unwrap();
        assert_eq!((d.size_gb, d.capacity_bytes()), (200, 200 * GIB));
        assert_eq!(d.disk_type, Some(DiskType::HighSpeedFlashB));
        assert_eq!(
            (d.accounting, d.next_month_accounting),
            (Some(AccountingType::PayPerUse), Some(AccountingType::Monthly))
        );
        assert!(d.attachment_to("node1").unwrap().is_attached());
        assert!(d.is_managed() && !d.is_creating());
        let foreign = Disk {
            id: "data01".into(),
            description: "my database".into(),
            ..d.clone()
        };
        assert!(!foreign.is_managed());
        let original = Disk {
            id: "abcd1234".into(),
            description: "pvc-y".into(),
            ..d.clone()
        };
        assert!(original.is_managed() && !original.is_creating());
        let creating = Disk {
            id: creating_id("pvc-x"),
            ..d
        };
        assert!(creating.is_creating());
        assert!(Disk::from_api(&VolumeSet::default()).is_none());
    }
}
