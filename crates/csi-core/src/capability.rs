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
    /// A disk that attaches to one node at a time: every single-node mode, block and mount, ext4 and xfs (the
    /// filesystems whose tools [`crate::node::NodeConfig`] checks for by default).
    ///
    /// `SINGLE_NODE_MULTI_WRITER` (Kubernetes' ReadWriteOnce once the capability is advertised: several pods on
    /// one node share the staged filesystem, each publish is its own bind mount) and `SINGLE_NODE_SINGLE_WRITER`
    /// (ReadWriteOncePod: the node refuses a second target path) are both accepted, so
    /// [`Self::single_node_multi_writer`] is true and the plugin advertises the capability that makes the CO
    /// send them.
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
            fs_types: ["ext4", "xfs"].map(String::from).to_vec(),
        }
    }

    /// Whether the plugin must advertise the `SINGLE_NODE_MULTI_WRITER` controller and node capabilities.
    ///
    /// The capability tells the CO to use the two modes it introduced: with it, Kubernetes sends
    /// `SINGLE_NODE_MULTI_WRITER` for ReadWriteOnce and `SINGLE_NODE_SINGLE_WRITER` for ReadWriteOncePod; without
    /// it, `SINGLE_NODE_WRITER` for both. So it is advertised exactly when the policy accepts both modes: derive
    /// the advertised capabilities from here, never list them by hand.
    pub fn single_node_multi_writer(&self) -> bool {
        self.access_modes.contains(&Mode::SingleNodeMultiWriter)
            && self.access_modes.contains(&Mode::SingleNodeSingleWriter)
    }

    /// The access mode Kubernetes' sidecars send for a claim access mode (`ReadWriteOnce`, `ReadWriteOncePod`,
    /// `ReadOnlyMany`, `ReadWriteMany`) to a plugin with this policy, as Kubernetes' sidecars and kubelet map
    /// them (a fact of the CO, restated here so tests can check a policy against what it will really be asked);
    /// `None` for an unknown claim mode.
    pub fn co_mode_for(&self, pv_access_mode: &str) -> Option<Mode> {
        let multi = self.single_node_multi_writer();
        match pv_access_mode {
            "ReadWriteOnce" if multi => Some(Mode::SingleNodeMultiWriter),
            "ReadWriteOnce" => Some(Mode::SingleNodeWriter),
            "ReadWriteOncePod" if multi => Some(Mode::SingleNodeSingleWriter),
            "ReadWriteOncePod" => Some(Mode::SingleNodeWriter),
            "ReadOnlyMany" => Some(Mode::MultiNodeReaderOnly),
            "ReadWriteMany" => Some(Mode::MultiNodeMultiWriter),
            _ => None,
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

/// The access mode of a capability (`Unknown` when it has none).
pub fn access_mode(cap: &VolumeCapability) -> Mode {
    cap.access_mode
        .as_ref()
        .and_then(|m| Mode::try_from(m.mode).ok())
        .unwrap_or(Mode::Unknown)
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
                Err(CapabilityError::UnsupportedFsType { fs_type: "btrfs".into(), supported: "ext4, xfs".into() })),
            ("ext3 (no mkfs.ext3 checked for)", mount_capability("ext3", Mode::SingleNodeWriter), &p,
                Err(CapabilityError::UnsupportedFsType { fs_type: "ext3".into(), supported: "ext4, xfs".into() })),
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
        let supported =
            "SINGLE_NODE_WRITER, SINGLE_NODE_READER_ONLY, SINGLE_NODE_SINGLE_WRITER, SINGLE_NODE_MULTI_WRITER";
        assert_eq!(
            validate_capabilities(&mixed, &p),
            Err(CapabilityError::UnsupportedAccessMode {
                mode: "MULTI_NODE_READER_ONLY".into(),
                supported: supported.into()
            })
        );
        let status: tonic::Status = CapabilityError::Missing.into();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }

    #[test]
    fn what_the_co_sends_is_what_the_policy_accepts() {
        let p = CapabilityPolicy::single_node_disk();
        assert!(p.single_node_multi_writer());
        for (claim, want) in [
            ("ReadWriteOnce", Some(Mode::SingleNodeMultiWriter)),
            ("ReadWriteOncePod", Some(Mode::SingleNodeSingleWriter)),
        ] {
            let mode = p.co_mode_for(claim);
            assert_eq!(mode, want, "{claim}");
            for cap in [mount_capability("", mode.unwrap()), block_capability(mode.unwrap())] {
                assert!(
                    validate_capability(&cap, &p).is_ok(),
                    "{claim} must be accepted as it is sent"
                );
            }
        }
        for (claim, sent) in [
            ("ReadOnlyMany", "MULTI_NODE_READER_ONLY"),
            ("ReadWriteMany", "MULTI_NODE_MULTI_WRITER"),
        ] {
            let mode = p.co_mode_for(claim).unwrap();
            assert_eq!(
                validate_capability(&mount_capability("", mode), &p),
                Err(CapabilityError::UnsupportedAccessMode {
                    mode: sent.into(),
                    supported: "SINGLE_NODE_WRITER, SINGLE_NODE_READER_ONLY, SINGLE_NODE_SINGLE_WRITER, \
                                SINGLE_NODE_MULTI_WRITER"
                        .into()
                }),
                "{claim}"
            );
        }
        // A policy without the two newer modes advertises nothing, and ReadWriteOnce arrives as SINGLE_NODE_WRITER.
        let old = CapabilityPolicy {
            access_modes: vec![Mode::SingleNodeWriter],
            ..p.clone()
        };
        assert!(!old.single_node_multi_writer());
        assert_eq!(old.co_mode_for("ReadWriteOnce"), Some(Mode::SingleNodeWriter));
        assert_eq!(old.co_mode_for("ReadWriteOncePod"), Some(Mode::SingleNodeWriter));
        assert_eq!(old.co_mode_for("ReadWriteSometimes"), None);
        // Half of the pair is not enough to advertise the capability.
        let half = CapabilityPolicy {
            access_modes: vec![Mode::SingleNodeWriter, Mode::SingleNodeMultiWriter],
            ..p
        };
        assert!(!half.single_node_multi_writer());
    }
}
