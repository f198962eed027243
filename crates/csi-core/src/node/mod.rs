//! The CSI Node service on real Linux block devices, generic over a cloud's [`NodePlatform`].
//!
//! - NodeStageVolume formats a device only when `blkid -p` finds nothing on it, then mounts it
//!   at the staging path (raw block volumes: the device node is bind-mounted onto
//!   `<staging>/block-device`, so the staged device is visible in mountinfo after a restart).
//! - NodePublishVolume bind-mounts the staging mount (or the staged device) onto the target,
//!   read-only when asked.
//! - Unpublish/Unstage unmount whatever is mounted and succeed when nothing is; after unstage
//!   the platform cleans the device up (for SCSI: delete it from the kernel).
//! - NodeExpandVolume rescans the device and grows ext2/3/4 (resize2fs) or xfs (xfs_growfs).
//! - NodeGetVolumeStats reports bytes/inodes and a VolumeCondition.
//!
//! mkfs options come from the volume context key [`MKFS_OPTIONS_KEY`] (`mkfsOptions`), a
//! whitespace-separated list passed to mkfs before the device (no shell).

pub mod device;
pub mod exec;
pub mod fs;
pub mod mount;
pub mod mountinfo;
pub mod scsi;
mod service;
pub mod stats;

pub use service::{NodeConfig, NodeService};

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Volume-context key holding extra mkfs arguments (whitespace separated).
pub const MKFS_OPTIONS_KEY: &str = "mkfsOptions";

/// File inside a block volume's staging directory onto which the device is bind-mounted.
pub const BLOCK_DEVICE_FILE: &str = "block-device";

/// A cloud-side failure, with the gRPC code it should surface as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// The volume or device does not exist (NOT_FOUND).
    #[error("{0}")]
    NotFound(String),
    /// The publish context or volume ID is unusable (INVALID_ARGUMENT).
    #[error("{0}")]
    InvalidArgument(String),
    /// The device did not show up in time (DEADLINE_EXCEEDED; the CO retries).
    #[error("{0}")]
    Timeout(String),
    /// A transient failure (UNAVAILABLE; the CO retries).
    #[error("{0}")]
    Unavailable(String),
    /// Anything else (INTERNAL).
    #[error("{0}")]
    Internal(String),
}

impl From<PlatformError> for tonic::Status {
    fn from(e: PlatformError) -> Self {
        match e {
            PlatformError::NotFound(m) => tonic::Status::not_found(m),
            PlatformError::InvalidArgument(m) => tonic::Status::invalid_argument(m),
            PlatformError::Timeout(m) => tonic::Status::deadline_exceeded(m),
            PlatformError::Unavailable(m) => tonic::Status::unavailable(m),
            PlatformError::Internal(m) => tonic::Status::internal(m),
        }
    }
}

impl From<scsi::ScsiError> for PlatformError {
    fn from(e: scsi::ScsiError) -> Self {
        use scsi::ScsiError as S;
        match e {
            S::Timeout { .. } => PlatformError::Timeout(e.to_string()),
            S::Cancelled(_) => PlatformError::Unavailable(e.to_string()),
            S::Ambiguous { .. } | S::Io { .. } => PlatformError::Internal(e.to_string()),
        }
    }
}

/// What the node service needs from the cloud it runs on.
#[tonic::async_trait]
pub trait NodePlatform: Send + Sync + 'static {
    /// This node's ID as the controller understands it.
    fn node_id(&self) -> String;

    /// Topology segments of this node (empty when the plugin has no topology).
    fn accessible_topology(&self) -> HashMap<String, String>;

    /// How many more volumes the controller may attach here in total (computed, e.g. from free
    /// slots); 0 lets the CO decide.
    async fn max_volumes_per_node(&self) -> Result<i64, PlatformError>;

    /// The device node of `volume_id`, waiting (bounded) for it to appear.
    async fn resolve_device(
        &self,
        volume_id: &str,
        publish_context: &HashMap<String, String>,
    ) -> Result<PathBuf, PlatformError>;

    /// Called after the volume's last mount on this node is gone (NodeUnstageVolume).
    async fn cleanup_device(&self, volume_id: &str, device: &Path) -> Result<(), PlatformError>;

    /// Whether the platform side is ready (Probe).
    async fn ready(&self) -> Result<bool, String> {
        Ok(true)
    }
}

/// Errors of the node service, each mapped to the gRPC code the CSI spec asks for.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A required field is missing or malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// The path given does not exist / is not a volume.
    #[error("{0}")]
    NotFound(String),
    /// The volume is staged/published in an incompatible way.
    #[error("{0}")]
    AlreadyExists(String),
    /// The volume is not in the state the call needs (not staged, still in use, refusing to
    /// format a device that holds data).
    #[error("{0}")]
    FailedPrecondition(String),
    /// Another call for this volume is in flight (ABORTED; the CO retries).
    #[error("an operation for volume {0} is already in progress")]
    Busy(String),
    /// A transient condition (UNAVAILABLE; the CO retries).
    #[error("{0}")]
    Unavailable(String),
    /// An external command failed.
    #[error("volume {volume_id}: {step}: {source}")]
    Command {
        /// The volume.
        volume_id: String,
        /// What was being done.
        step: &'static str,
        /// The failure, with the tool's stderr.
        source: exec::ExecError,
    },
    /// A device fact could not be read.
    #[error("volume {volume_id}: {source}")]
    Device {
        /// The volume.
        volume_id: String,
        /// The failure.
        source: device::DeviceError,
    },
    /// A filesystem operation failed.
    #[error("volume {volume_id}: {action} {path}: {source}")]
    Io {
        /// The volume.
        volume_id: String,
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The platform failed.
    #[error("volume {volume_id}: {source}")]
    Platform {
        /// The volume.
        volume_id: String,
        /// The failure.
        source: PlatformError,
    },
}

impl From<NodeError> for tonic::Status {
    fn from(e: NodeError) -> Self {
        let msg = e.to_string();
        match e {
            NodeError::InvalidArgument(_) => tonic::Status::invalid_argument(msg),
            NodeError::NotFound(_) => tonic::Status::not_found(msg),
            NodeError::AlreadyExists(_) => tonic::Status::already_exists(msg),
            NodeError::FailedPrecondition(_) => tonic::Status::failed_precondition(msg),
            NodeError::Busy(_) => tonic::Status::aborted(msg),
            NodeError::Unavailable(_) => tonic::Status::unavailable(msg),
            NodeError::Platform { source, .. } => {
                let code = tonic::Status::from(source).code();
                tonic::Status::new(code, msg)
            }
            NodeError::Command {
                source: exec::ExecError::Timeout { .. },
                ..
            } => tonic::Status::deadline_exceeded(msg),
            _ => tonic::Status::internal(msg),
        }
    }
}

/// What NodeStageVolume should do, given what is already mounted at the staging path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageStep {
    /// Nothing there yet: probe, maybe format, mount.
    Proceed,
    /// The same device is already staged with the same filesystem: nothing to do.
    AlreadyStaged,
    /// Something incompatible is staged there.
    Conflict(String),
}

/// Pure stage decision. `existing` is (major, minor, fs type) of the mount at the staging path.
pub fn decide_stage(existing: Option<(u32, u32, &str)>, device: (u32, u32), fs_type: &str) -> StageStep {
    match existing {
        None => StageStep::Proceed,
        Some((ma, mi, _)) if (ma, mi) != device => StageStep::Conflict(format!(
            "staging path already holds device {ma}:{mi}, not the volume's device {}:{}",
            device.0, device.1
        )),
        Some((_, _, fs)) if fs != fs_type => {
            StageStep::Conflict(format!("volume is already staged with filesystem {fs}, not {fs_type}"))
        }
        Some(_) => StageStep::AlreadyStaged,
    }
}

/// Mount options allowed on the publish bind mount (per-mount flags only; filesystem options
/// are applied when staging).
pub fn per_mount_flags(flags: &[String]) -> Vec<String> {
    const PER_MOUNT: [&str; 7] = [
        "nosuid",
        "nodev",
        "noexec",
        "noatime",
        "nodiratime",
        "relatime",
        "strictatime",
    ];
    flags
        .iter()
        .flat_map(|f| f.split(','))
        .map(str::trim)
        .filter(|f| PER_MOUNT.contains(f))
        .map(String::from)
        .collect()
}

/// Splits capability mount flags (each may itself hold commas) into single options, dropping
/// `ro`/`rw` (read-only is decided by the publish call) and empty entries.
pub fn stage_mount_options(flags: &[String]) -> Vec<String> {
    flags
        .iter()
        .flat_map(|f| f.split(','))
        .map(str::trim)
        .filter(|f| !f.is_empty() && *f != "ro" && *f != "rw")
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_decision_table() {
        assert_eq!(decide_stage(None, (8, 16), "ext4"), StageStep::Proceed);
        assert_eq!(
            decide_stage(Some((8, 16, "ext4")), (8, 16), "ext4"),
            StageStep::AlreadyStaged
        );
        assert!(matches!(
            decide_stage(Some((8, 32, "ext4")), (8, 16), "ext4"),
            StageStep::Conflict(_)
        ));
        assert!(matches!(
            decide_stage(Some((8, 16, "xfs")), (8, 16), "ext4"),
            StageStep::Conflict(_)
        ));
    }

    #[test]
    fn option_filters() {
        let flags = vec!["noatime,discard".to_string(), "ro".into(), " nosuid ".into(), "".into()];
        assert_eq!(stage_mount_options(&flags), ["noatime", "discard", "nosuid"]);
        assert_eq!(per_mount_flags(&flags), ["noatime", "nosuid"]);
    }

    #[test]
    fn error_codes() {
        use tonic::Code;
        let code = |e: NodeError| tonic::Status::from(e).code();
        assert_eq!(code(NodeError::InvalidArgument("x".into())), Code::InvalidArgument);
        assert_eq!(code(NodeError::AlreadyExists("x".into())), Code::AlreadyExists);
        assert_eq!(
            code(NodeError::Platform {
                volume_id: "v".into(),
                source: PlatformError::Timeout("t".into())
            }),
            Code::DeadlineExceeded
        );
        let scsi: PlatformError = scsi::ScsiError::Cancelled(3).into();
        assert_eq!(tonic::Status::from(scsi).code(), Code::Unavailable);
    }
}
