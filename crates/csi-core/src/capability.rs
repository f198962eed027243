//! Volume capability validation shared by the controller and node sides.
//!
//! Pure functions: given the capabilities a CO asked for and what the plugin supports, decide
//! whether every one is acceptable and what it means (block device or mounted filesystem).

use crate::proto::VolumeCapability;
use crate::proto::volume_capability::AccessType;
use crate::proto::volume_capability::access_mode::Mode;

/// Why a capability was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapabilityError {
    /// The request carried no capability at all.
    #[error("volume capabilities are required")]
    Missing,
    /// A capability has no access mode.
    #[error("volume capability has no access mode")]
    MissingAccessMode,
    /// A capability has neither `block` nor `mount`.
    #[error("volume capability has neither block nor mount access type")]
    MissingAccessType,
    /// The access mode is not one the plugin supports.
    #[error("access mode {mode} is not supported (supported: {supported})")]
    UnsupportedAccessMode {
        /// The requested mode's name.
        mode: String,
        /// The supported modes' names.
        supported: String,
    },
    /// Raw block access is not supported.
    #[error("block access type is not supported")]
    BlockNotSupported,
    /// Filesystem access is not supported.
    #[error("mount access type is not supported")]
    MountNotSupported,
    /// The filesystem type is not one the plugin can create or mount.
    #[error("filesystem type {fs_type:?} is not supported (supported: {supported})")]
    UnsupportedFsType {
        /// The requested filesystem type.
        fs_type: String,
        /// The supported types.
        supported: String,
    },
}

impl From<CapabilityError> for tonic::Status {
    fn from(e: CapabilityError) -> Self {
        tonic::Status::invalid_argument(e.to_string())
    }
}

/// What a plugin accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilityPolicy {
    /// Access modes the plugin supports.
    pub access_modes: Vec<Mode>,
    /// Whether raw block volumes are supported.
    pub block: bool,
    /// Whether mounted filesystem volumes are supported.
    pub mount: bool,
    /// Filesystem types accepted in `mount.fs_type` (an empty `fs_type` always passes).
    pub fs_types: Vec<String>,
}

impl CapabilityPolicy {
    /// A disk that attaches to one node at a time: single-node modes, block and mount, ext2/3/4 and xfs.
    ///
    /// `SINGLE_NODE_MULTI_WRITER` and `SINGLE_NODE_SINGLE_WRITER` are included: several pods on one
    /// node may share the mounted filesystem (each publish is its own bind mount).
    pub fn single_node_disk() -> Self {
        Self {
            access_modes: vec![
                Mode::SingleNodeWriter,
                Mode::SingleNodeReaderOnly,
                Mode::SingleNodeSingleWriter,
                Mode::SingleNodeMultiWriter,
            ],
            block: true,
            mount: true,
            fs_types: ["ext2", "ext3", "ext4", "xfs"].map(String::from).to_vec(),
        }
    }
}

/// The access type a valid capability asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessKind {
    /// A raw block device.
    Block,
    /// A mounted filesystem.
    Mount {
        /// Requested filesystem type; empty means "plugin default".
        fs_type: String,
        /// Mount options to honour.
        mount_flags: Vec<String>,
    },
}

/// Validates one capability against `policy`.
pub fn validate_capability(cap: &VolumeCapability, policy: &CapabilityPolicy) -> Result<AccessKind, CapabilityError> {
    let mode = cap
        .access_mode
        .as_ref()
        .map(|m| Mode::try_from(m.mode).unwrap_or(Mode::Unknown))
        .ok_or(CapabilityError::MissingAccessMode)?;
    if mode == Mode::Unknown {
        return Err(CapabilityError::MissingAccessMode);
    }
    if !policy.access_modes.contains(&mode) {
        return Err(CapabilityError::UnsupportedAccessMode {
            mode: mode.as_str_name().to_string(),
            supported: policy
                .access_modes
                .iter()
                .map(|m| m.as_str_name())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    match cap.access_type.as_ref() {
        None => Err(CapabilityError::MissingAccessType),
        Some(AccessType::Block(_)) if !policy.block => Err(CapabilityError::BlockNotSupported),
        Some(AccessType::Block(_)) => Ok(AccessKind::Block),
        Some(AccessType::Mount(_)) if !policy.mount => Err(CapabilityError::MountNotSupported),
        Some(AccessType::Mount(m)) => {
            let fs_type = m.fs_type.trim().to_ascii_lowercase();
            if !fs_type.is_empty() && !policy.fs_types.contains(&fs_type) {
                return Err(CapabilityError::UnsupportedFsType {
                    fs_type,
                    supported: policy.fs_types.join(", "),
                });
            }
            Ok(AccessKind::Mount {
                fs_type,
                mount_flags: m.mount_flags.clone(),
            })
        }
    }
}

/// Validates a non-empty list of capabilities (CreateVolume, ValidateVolumeCapabilities).
pub fn validate_capabilities(
    caps: &[VolumeCapability],
    policy: &CapabilityPolicy,
) -> Result<Vec<AccessKind>, CapabilityError> {
    if caps.is_empty() {
        return Err(CapabilityError::Missing);
    }
    caps.iter().map(|c| validate_capability(c, policy)).collect()
}

/// Builds a capability (handy for tests and for the sanity suite).
pub fn mount_capability(fs_type: &str, mode: Mode) -> VolumeCapability {
    VolumeCapability {
        access_type: Some(AccessType::Mount(crate::proto::volume_capability::MountVolume {
            fs_type: fs_type.to_string(),
            ..Default::default()
        })),
        access_mode: Some(crate::proto::volume_capability::AccessMode { mode: mode as i32 }),
    }
}

/// Builds a raw block capability.
pub fn block_capability(mode: Mode) -> VolumeCapability {
    VolumeCapability {
        access_type: Some(AccessType::Block(crate::proto::volume_capability::BlockVolume {})),
        access_mode: Some(crate::proto::volume_capability::AccessMode { mode: mode as i32 }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_type(mode: Mode) -> VolumeCapability {
        VolumeCapability {
            access_type: None,
            access_mode: Some(crate::proto::volume_capability::AccessMode { mode: mode as i32 }),
        }
    }

    #[test]
    fn table() {
        let p = CapabilityPolicy::single_node_disk();
        let mut mount_only = p.clone();
        mount_only.block = false;
        let cases: Vec<(&str, VolumeCapability, &CapabilityPolicy, Result<AccessKind, CapabilityError>)> = vec![
            ("ext4 rwo", mount_capability("ext4", Mode::SingleNodeWriter), &p,
                Ok(AccessKind::Mount { fs_type: "ext4".into(), mount_flags: vec![] })),
            ("XFS upper-case", mount_capability("XFS", Mode::SingleNodeWriter), &p,
                Ok(AccessKind::Mount { fs_type: "xfs".into(), mount_flags: vec![] })),
            ("default fs", mount_capability("", Mode::SingleNodeMultiWriter), &p,
                Ok(AccessKind::Mount { fs_type: "".into(), mount_flags: vec![] })),
            ("block", block_capability(Mode::SingleNodeSingleWriter), &p, Ok(AccessKind::Block)),
            ("block refused", block_capability(Mode::SingleNodeWriter), &mount_only,
                Err(CapabilityError::BlockNotSupported)),
            ("btrfs", mount_capability("btrfs", Mode::SingleNodeWriter), &p,
                Err(CapabilityError::UnsupportedFsType { fs_type: "btrfs".into(), supported: "ext2, ext3, ext4, xfs".into() })),
            ("multi node", mount_capability("ext4", Mode::MultiNodeMultiWriter), &p,
                Err(CapabilityError::UnsupportedAccessMode { mode: "MULTI_NODE_MULTI_WRITER".into(),
                    supported: "SINGLE_NODE_WRITER, SINGLE_NODE_READER_ONLY, SINGLE_NODE_SINGLE_WRITER, SINGLE_NODE_MULTI_WRITER".into() })),
            ("unknown mode", mount_capability("ext4", Mode::Unknown), &p, Err(CapabilityError::MissingAccessMode)),
            ("no access type", no_type(Mode::SingleNodeWriter), &p, Err(CapabilityError::MissingAccessType)),
            ("no access mode", VolumeCapability { access_mode: None, ..mount_capability("ext4", Mode::SingleNodeWriter) }, &p,
                Err(CapabilityError::MissingAccessMode)),
        ];
        for (name, cap, policy, want) in cases {
            assert_eq!(validate_capability(&cap, policy), want, "case {name}");
        }
    }

    #[test]
    fn list_must_not_be_empty_and_all_must_pass() {
        let p = CapabilityPolicy::single_node_disk();
        assert_eq!(validate_capabilities(&[], &p), Err(CapabilityError::Missing));
        let mixed = [
            mount_capability("ext4", Mode::SingleNodeWriter),
            mount_capability("ext4", Mode::MultiNodeReaderOnly),
        ];
        assert!(validate_capabilities(&mixed, &p).is_err());
        let status: tonic::Status = CapabilityError::Missing.into();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }
}
