//! StorageClass parameters of CreateVolume: disk type, accounting type, filesystem type.
//!
//! Pure parsing with table tests. Keys are matched case-insensitively (as the original driver
//! did); an unknown key is an error, except the keys the external-provisioner adds itself
//! (`csi.storage.k8s.io/pvc/name`, `.../pvc/namespace`, `.../pv/name` with
//! `--extra-create-metadata`, and any other `csi.storage.k8s.io/` key it may pass through).
//!
//! Default disk type: **standard-flash-a (code 6)**, the original driver's default, chosen
//! deterministically. The original picked A or B at random for `standard-flash`, `high-speed`
//! and `high-speed-flash`; here those short names always mean the A variant.

use std::collections::HashMap;

/// Key of the disk type parameter.
pub const KEY_TYPE: &str = "type";
/// Key of the accounting type parameter.
pub const KEY_ACCOUNTING_TYPE: &str = "accountingtype";
/// Key of the filesystem type parameter (also accepted without the prefix, deprecated).
pub const KEY_FSTYPE: &str = "csi.storage.k8s.io/fstype";
/// Key of the mkfs options parameter (lower-cased for matching), handed to the node in the volume context under
/// csi-core's `mkfsOptions` key: whitespace-separated arguments, passed to mkfs as an argument vector (no shell).
pub const KEY_MKFS_OPTIONS: &str = "mkfsoptions";
/// Prefix of the keys the Kubernetes sidecars add.
pub const SIDECAR_PREFIX: &str = "csi.storage.k8s.io/";

/// A NIFCLOUD additional-storage disk type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiskType {
    /// Standard Storage (code 2, legacy).
    Standard,
    /// High-Speed Storage A (code 3, legacy).
    HighSpeedA,
    /// High-Speed Storage B (code 4, legacy).
    HighSpeedB,
    /// Flash Storage (code 5, legacy).
    Flash,
    /// Standard Flash Storage A (code 6).
    StandardFlashA,
    /// Standard Flash Storage B (code 7).
    StandardFlashB,
    /// High-Speed Flash Storage A (code 8).
    HighSpeedFlashA,
    /// High-Speed Flash Storage B (code 9).
    HighSpeedFlashB,
}

impl DiskType {
    /// Every type, in code order.
    pub const ALL: [DiskType; 8] = [
        DiskType::Standard,
        DiskType::HighSpeedA,
        DiskType::HighSpeedB,
        DiskType::Flash,
        DiskType::StandardFlashA,
        DiskType::StandardFlashB,
        DiskType::HighSpeedFlashA,
        DiskType::HighSpeedFlashB,
    ];

    /// The default when the StorageClass names none.
    pub const DEFAULT: DiskType = DiskType::StandardFlashA;

    /// The numeric code CreateVolume's `DiskType` takes.
    pub fn code(self) -> u8 {
        match self {
            DiskType::Standard => 2,
            DiskType::HighSpeedA => 3,
            DiskType::HighSpeedB => 4,
            DiskType::Flash => 5,
            DiskType::StandardFlashA => 6,
            DiskType::StandardFlashB => 7,
            DiskType::HighSpeedFlashA => 8,
            DiskType::HighSpeedFlashB => 9,
        }
    }

    /// The English name DescribeVolumes returns.
    pub fn api_name(self) -> &'static str {
        match self {
            DiskType::Standard => "Standard Storage",
            DiskType::HighSpeedA => "High-Speed Storage A",
            DiskType::HighSpeedB => "High-Speed Storage B",
            DiskType::Flash => "Flash Storage",
            DiskType::StandardFlashA => "Standard Flash Storage A",
            DiskType::StandardFlashB => "Standard Flash Storage B",
            DiskType::HighSpeedFlashA => "High-Speed Flash Storage A",
            DiskType::HighSpeedFlashB => "High-Speed Flash Storage B",
        }
    }

    /// The name a StorageClass's `type` parameter uses for it (`standard-flash-a`, …).
    pub fn param_name(self) -> &'static str {
        match self {
            DiskType::Standard => "standard",
            DiskType::HighSpeedA => "high-speed-a",
            DiskType::HighSpeedB => "high-speed-b",
            DiskType::Flash => "flash",
            DiskType::StandardFlashA => "standard-flash-a",
            DiskType::StandardFlashB => "standard-flash-b",
            DiskType::HighSpeedFlashA => "high-speed-flash-a",
            DiskType::HighSpeedFlashB => "high-speed-flash-b",
        }
    }

    /// Parses a StorageClass value: a name, a short name (A variant) or a code 2-9.
    pub fn parse(value: &str) -> Option<DiskType> {
        let v = value.trim().to_ascii_lowercase();
        match v.as_str() {
            "high-speed" => return Some(DiskType::HighSpeedA),
            "standard-flash" => return Some(DiskType::StandardFlashA),
            "high-speed-flash" => return Some(DiskType::HighSpeedFlashA),
            _ => {}
        }
        Self::ALL
            .into_iter()
            .find(|t| t.param_name() == v || t.code().to_string() == v)
    }

    /// Reads the `diskType` of a DescribeVolumes reply (English name, or a code).
    pub fn from_api(value: &str) -> Option<DiskType> {
        let v = value.trim();
        Self::ALL
            .into_iter()
            .find(|t| t.api_name().eq_ignore_ascii_case(v) || t.code().to_string() == v)
    }
}

/// How the disk is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountingType {
    /// Monthly (code 1).
    Monthly,
    /// Pay per use (code 2); the default, as in the original driver.
    PayPerUse,
}

impl AccountingType {
    /// The name used in parameters and messages.
    pub fn name(self) -> &'static str {
        match self {
            AccountingType::Monthly => "monthly",
            AccountingType::PayPerUse => "pay-per-use",
        }
    }

    /// The code CreateVolume takes.
    pub fn code(self) -> &'static str {
        match self {
            AccountingType::Monthly => "1",
            AccountingType::PayPerUse => "2",
        }
    }

    /// Parses `monthly`, `pay-per-use` (also `hourly`, `payperuse`), `1` or `2`.
    pub fn parse(value: &str) -> Option<AccountingType> {
        match value.trim().to_ascii_lowercase().as_str() {
            "1" | "monthly" => Some(AccountingType::Monthly),
            "2" | "pay-per-use" | "payperuse" | "hourly" => Some(AccountingType::PayPerUse),
            _ => None,
        }
    }
}

/// The StorageClass parameters of a CreateVolume, validated (defaults filled in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeParams {
    /// `type`: the disk type (default [`DiskType::DEFAULT`], `standard-flash-a`).
    pub disk_type: DiskType,
    /// `accountingType`: how the disk is billed (default pay-per-use).
    pub accounting_type: AccountingType,
    /// Filesystem type from the parameters (lower-case), if given.
    pub fs_type: Option<String>,
    /// Extra mkfs arguments from the StorageClass (`mkfsOptions`), if given.
    pub mkfs_options: Option<String>,
}

impl Default for VolumeParams {
    fn default() -> Self {
        Self {
            disk_type: DiskType::DEFAULT,
            accounting_type: AccountingType::PayPerUse,
            fs_type: None,
            mkfs_options: None,
        }
    }
}

/// A parameter could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// The key is not one this driver knows.
    #[error("unknown parameter {key:?} (known: type, accountingType, csi.storage.k8s.io/fstype, mkfsOptions)")]
    UnknownKey {
        /// The key as sent.
        key: String,
    },
    /// The value of a known key is invalid.
    #[error("parameter {key:?} has invalid value {value:?}; expected one of {expected}")]
    BadValue {
        /// The key.
        key: &'static str,
        /// The value as sent.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
}

impl From<ParamError> for tonic::Status {
    fn from(e: ParamError) -> Self {
        tonic::Status::invalid_argument(e.to_string())
    }
}

/// Filesystem types a StorageClass may ask for: those whose mkfs and grow tools ship in the node image
/// (`mkfs.ext4`, `resize2fs`, `mkfs.xfs`, `xfs_growfs`; ext2 and ext3 tools do not). The driver's capability
/// policy takes its list from here.
pub const FS_TYPES: &[&str] = &["ext4", "xfs"];

/// A mutable parameter (VolumeAttributesClass) could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MutableParamError {
    /// A parameter that is fixed once the disk exists.
    #[error(
        "mutable parameter {key:?} cannot change on an existing disk: {why}; only accountingType can (monthly or \
         pay-per-use)"
    )]
    Immutable {
        /// The key as sent.
        key: String,
        /// Why it cannot change.
        why: &'static str,
    },
    /// A key this driver does not know.
    #[error(
        "unknown mutable parameter {key:?}: only accountingType (monthly or pay-per-use) can change on a live disk"
    )]
    UnknownKey {
        /// The key as sent.
        key: String,
    },
    /// `accountingType` with a value that is not one.
    #[error("mutable parameter \"accountingType\" has invalid value {value:?}; expected monthly, pay-per-use, 1 or 2")]
    BadValue {
        /// The value as sent.
        value: String,
    },
}

impl From<MutableParamError> for tonic::Status {
    fn from(e: MutableParamError) -> Self {
        tonic::Status::invalid_argument(e.to_string())
    }
}

/// The mutable parameters (a VolumeAttributesClass's, in CreateVolume's `mutable_parameters` and in
/// ControllerModifyVolume): only `accountingType`, which NIFCLOUD changes on a live disk from the next month
/// (ModifyVolumeAttribute). The disk type cannot change, nor anything else. Returns the accounting type asked
/// for, if any. Keys are matched case-insensitively, as in [`parse_params`].
pub fn parse_mutable_params(params: &HashMap<String, String>) -> Result<Option<AccountingType>, MutableParamError> {
    let mut out = None;
    for (key, value) in params {
        match key.to_ascii_lowercase().as_str() {
            KEY_ACCOUNTING_TYPE => {
                out = Some(
                    AccountingType::parse(value).ok_or_else(|| MutableParamError::BadValue { value: value.clone() })?,
                );
            }
            KEY_TYPE => {
                return Err(MutableParamError::Immutable {
                    key: key.clone(),
                    why: "NIFCLOUD cannot change a disk's type",
                });
            }
            KEY_FSTYPE | "fstype" | KEY_MKFS_OPTIONS => {
                return Err(MutableParamError::Immutable {
                    key: key.clone(),
                    why: "the filesystem is made once, when the disk is first staged",
                });
            }
            _ => return Err(MutableParamError::UnknownKey { key: key.clone() }),
        }
    }
    Ok(out)
}

/// Parses CreateVolume (or ValidateVolumeCapabilities) parameters.
pub fn parse_params(params: &HashMap<String, String>) -> Result<VolumeParams, ParamError> {
    let mut out = VolumeParams::default();
    for (key, value) in params {
        let k = key.to_ascii_lowercase();
        match k.as_str() {
            KEY_TYPE => {
                out.disk_type = DiskType::parse(value).ok_or_else(|| ParamError::BadValue {
                    key: "type",
                    value: value.clone(),
                    expected: "standard, high-speed-a, high-speed-b, flash, standard-flash-a, standard-flash-b, \
                               high-speed-flash-a, high-speed-flash-b (or high-speed, standard-flash, \
                               high-speed-flash for the A variant) or a code 2-9",
                })?;
            }
            KEY_ACCOUNTING_TYPE => {
                out.accounting_type = AccountingType::parse(value).ok_or_else(|| ParamError::BadValue {
                    key: "accountingType",
                    value: value.clone(),
                    expected: "monthly, pay-per-use, 1 or 2",
                })?;
            }
            KEY_FSTYPE | "fstype" => {
                let fs = value.trim().to_ascii_lowercase();
                if !fs.is_empty() {
                    if !FS_TYPES.contains(&fs.as_str()) {
                        return Err(ParamError::BadValue {
                            key: "csi.storage.k8s.io/fstype",
                            value: value.clone(),
                            expected: "ext4 or xfs (the filesystems whose tools the node image ships)",
                        });
                    }
                    if k == "fstype" {
                        tracing::warn!("parameter \"fstype\" is deprecated; use \"csi.storage.k8s.io/fstype\"");
                    }
                    out.fs_type = Some(fs);
                }
            }
            KEY_MKFS_OPTIONS => {
                let opts = value.split_whitespace().collect::<Vec<_>>().join(" ");
                if opts.chars().any(|c| c.is_control()) {
                    return Err(ParamError::BadValue {
                        key: "mkfsOptions",
                        value: value.clone(),
                        expected: "whitespace-separated mkfs arguments without control characters",
                    });
                }
                out.mkfs_options = (!opts.is_empty()).then_some(opts);
            }
            _ if k.starts_with(SIDECAR_PREFIX) => {}
            _ => return Err(ParamError::UnknownKey { key: key.clone() }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn disk_type_table() {
        let cases = [
            ("standard", Some(2)),
            ("high-speed-a", Some(3)),
            ("HIGH-SPEED-B", Some(4)),
            ("flash", Some(5)),
            ("standard-flash-a", Some(6)),
            ("standard-flash-b", Some(7)),
            ("high-speed-flash-a", Some(8)),
            ("high-speed-flash-b", Some(9)),
            ("high-speed", Some(3)),
            ("standard-flash", Some(6)),
            ("high-speed-flash", Some(8)),
            ("2", Some(2)),
            ("9", Some(9)),
            ("1", None),
            ("10", None),
            ("ssd", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(DiskType::parse(input).map(DiskType::code), want, "{input}");
        }
        for t in DiskType::ALL {
            assert_eq!(DiskType::from_api(t.api_name()), Some(t));
            assert_eq!(DiskType::parse(t.param_name()), Some(t));
        }
        assert_eq!(
            DiskType::from_api("standard flash storage a"),
            Some(DiskType::StandardFlashA)
        );
    }

    #[test]
    fn mutable_params_table() {
        let ok = |pairs: &[(&str, &str)]| parse_mutable_params(&p(pairs)).unwrap();
        assert_eq!(ok(&[]), None);
        assert_eq!(ok(&[("accountingType", "1")]), Some(AccountingType::Monthly));
        assert_eq!(ok(&[("AccountingType", "monthly")]), Some(AccountingType::Monthly));
        assert_eq!(
            ok(&[("accountingtype", "pay-per-use")]),
            Some(AccountingType::PayPerUse)
        );
        assert_eq!(ok(&[("accountingType", "2")]), Some(AccountingType::PayPerUse));
        let err = |pairs: &[(&str, &str)]| parse_mutable_params(&p(pairs)).unwrap_err();
        assert!(matches!(
            err(&[("accountingType", "3")]),
            MutableParamError::BadValue { .. }
        ));
        let e = err(&[("type", "high-speed-flash-a")]);
        assert!(matches!(e, MutableParamError::Immutable { .. }));
        assert!(e.to_string().contains("cannot change a disk's type"), "{e}");
        assert!(matches!(
            err(&[("csi.storage.k8s.io/fstype", "xfs")]),
            MutableParamError::Immutable { .. }
        ));
        assert!(matches!(err(&[("iops", "3000")]), MutableParamError::UnknownKey { .. }));
        assert_eq!(
            tonic::Status::from(err(&[("x", "y")])).code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(AccountingType::Monthly.name(), "monthly");
    }

    #[test]
    fn mkfs_options_are_normalised_and_checked() {
        let v = parse_params(&p(&[("mkfsOptions", "  -m 0   -E lazy_itable_init=0 ")])).unwrap();
        assert_eq!(v.mkfs_options.as_deref(), Some("-m 0 -E lazy_itable_init=0"));
        assert_eq!(parse_params(&p(&[("MKFSOPTIONS", " ")])).unwrap().mkfs_options, None);
        let err = parse_params(&p(&[("mkfsOptions", "-m\u{0}0")])).unwrap_err();
        assert!(matches!(err, ParamError::BadValue { key: "mkfsOptions", .. }), "{err}");
    }

    #[test]
    fn params_table() {
        let ok = |pairs: &[(&str, &str)]| parse_params(&p(pairs)).unwrap();
        assert_eq!(ok(&[]), VolumeParams::default());
        assert_eq!(ok(&[]).disk_type.code(), 6);
        let v = ok(&[
            ("type", "high-speed-flash-b"),
            ("accountingType", "monthly"),
            ("csi.storage.k8s.io/fstype", "XFS"),
            ("csi.storage.k8s.io/pvc/name", "data"),
            ("csi.storage.k8s.io/pvc/namespace", "default"),
            ("csi.storage.k8s.io/pv/name", "pvc-1"),
        ]);
        assert_eq!(v.disk_type, DiskType::HighSpeedFlashB);
        assert_eq!(v.accounting_type, AccountingType::Monthly);
        assert_eq!(v.fs_type.as_deref(), Some("xfs"));
        assert_eq!(
            ok(&[("accountingtype", "2")]).accounting_type,
            AccountingType::PayPerUse
        );
        assert_eq!(ok(&[("fstype", "ext4")]).fs_type.as_deref(), Some("ext4"));

        let err = |pairs: &[(&str, &str)]| parse_params(&p(pairs)).unwrap_err();
        for no_tools in ["ext2", "ext3"] {
            assert!(
                matches!(
                    err(&[("csi.storage.k8s.io/fstype", no_tools)]),
                    ParamError::BadValue { .. }
                ),
                "{no_tools}: its mkfs is not in the node image"
            );
        }
        assert!(matches!(err(&[("iops", "3000")]), ParamError::UnknownKey { .. }));
        assert!(matches!(
            err(&[("type", "gp3")]),
            ParamError::BadValue { key: "type", .. }
        ));
        assert!(matches!(err(&[("accountingType", "3")]), ParamError::BadValue { .. }));
        assert!(matches!(
            err(&[("csi.storage.k8s.io/fstype", "btrfs")]),
            ParamError::BadValue { .. }
        ));
        assert_eq!(
            tonic::Status::from(err(&[("x", "y")])).code(),
            tonic::Code::InvalidArgument
        );
    }
}
