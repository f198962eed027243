//! Filesystems: probing a device with `blkid -p`, deciding whether it may be formatted,
//! `mkfs`, and online growth.
//!
//! Safety rule: a device is formatted only when `blkid -p` finds *no* signature at all (no
//! filesystem, no partition table, nothing ambiguous). Anything else is used as-is or refused.

use std::path::Path;
use std::time::Duration;

use super::exec::args;
use super::exec::{self, ExecError};

/// Filesystems the node service can create, mount and grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsType {
    /// ext2.
    Ext2,
    /// ext3.
    Ext3,
    /// ext4 (the default).
    Ext4,
    /// XFS.
    Xfs,
}

impl FsType {
    /// Parses a CSI `fs_type` (case-insensitive); empty means `default`.
    pub fn parse(s: &str, default: FsType) -> Option<FsType> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" => Some(default),
            "ext2" => Some(FsType::Ext2),
            "ext3" => Some(FsType::Ext3),
            "ext4" => Some(FsType::Ext4),
            "xfs" => Some(FsType::Xfs),
            _ => None,
        }
    }

    /// The name blkid and mount use.
    pub fn as_str(self) -> &'static str {
        match self {
            FsType::Ext2 => "ext2",
            FsType::Ext3 => "ext3",
            FsType::Ext4 => "ext4",
            FsType::Xfs => "xfs",
        }
    }

    /// The program that creates this filesystem on a blank device (`mkfs.ext4`, `mkfs.xfs`, …).
    pub fn mkfs_program(self) -> &'static str {
        match self {
            FsType::Ext2 => "mkfs.ext2",
            FsType::Ext3 => "mkfs.ext3",
            FsType::Ext4 => "mkfs.ext4",
            FsType::Xfs => "mkfs.xfs",
        }
    }

    /// The program that grows a mounted filesystem of this type.
    pub fn grow_program(self) -> &'static str {
        match self {
            FsType::Ext2 | FsType::Ext3 | FsType::Ext4 => "resize2fs",
            FsType::Xfs => "xfs_growfs",
        }
    }
}

/// What `blkid -p` says is on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// No signature at all.
    Blank,
    /// A filesystem (or other content: swap, LVM member, crypto_LUKS, ...) of this type.
    Filesystem(String),
    /// A partition table of this type (`gpt`, `dos`).
    PartitionTable(String),
}

/// Parses `blkid -p -o export` output.
pub fn parse_blkid_export(stdout: &str) -> Probe {
    let mut fs = None;
    let mut pt = None;
    for line in stdout.lines() {
        if let Some(v) = line.strip_prefix("TYPE=") {
            fs = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("PTTYPE=") {
            pt = Some(v.trim().to_string());
        }
    }
    match (pt, fs) {
        (Some(pt), _) => Probe::PartitionTable(pt),
        (None, Some(fs)) => Probe::Filesystem(fs),
        // blkid said "found" but named nothing we understand: treat as occupied.
        (None, None) => Probe::Filesystem("unknown".to_string()),
    }
}

/// What to do with a device before mounting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatDecision {
    /// The device is blank: create the requested filesystem.
    Format,
    /// The device already holds the requested filesystem: mount it as it is.
    UseExisting,
}

/// Why a device must not be used for the requested filesystem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatRefusal {
    /// The device holds another filesystem type.
    #[error(
        "device holds a {found} filesystem but {requested} was requested; refusing to format a device that holds data"
    )]
    OtherFilesystem {
        /// What blkid found.
        found: String,
        /// What the capability asked for.
        requested: String,
    },
    /// The device has a partition table.
    #[error("device has a {0} partition table; refusing to format a partitioned device")]
    Partitioned(String),
}

/// Pure decision: format only a blank device; reuse a matching filesystem; refuse anything else.
pub fn decide_format(probe: &Probe, requested: FsType) -> Result<FormatDecision, FormatRefusal> {
    match probe {
        Probe::Blank => Ok(FormatDecision::Format),
        Probe::Filesystem(t) if t == requested.as_str() => Ok(FormatDecision::UseExisting),
        Probe::Filesystem(t) => Err(FormatRefusal::OtherFilesystem {
            found: t.clone(),
            requested: requested.as_str().to_string(),
        }),
        Probe::PartitionTable(t) => Err(FormatRefusal::Partitioned(t.clone())),
    }
}

/// Probes `device` with `blkid -p -o export` (low-level probe, bypassing the blkid cache).
/// Exit code 2 means "nothing found" (blank); any other failure is an error, never "blank".
pub async fn probe(device: &Path, timeout: Duration) -> Result<Probe, ExecError> {
    let argv = args!["-p", "-o", "export", device.display()];
    let out = exec::run_raw("blkid", &argv, timeout).await?;
    match out.code {
        Some(0) => Ok(parse_blkid_export(&out.stdout)),
        Some(2) if out.stdout.trim().is_empty() => Ok(Probe::Blank),
        code => Err(ExecError::Failed {
            command: exec::display_command("blkid", &argv),
            code,
            stderr: format!("{} {}", out.stderr.trim(), out.stdout.trim())
                .trim()
                .to_string(),
        }),
    }
}

/// Splits a user-supplied mkfs option string on whitespace (no shell, no quoting).
pub fn split_mkfs_options(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

/// Creates `fs` on `device` with extra `options` (placed before the device). No force flag is
/// added: mkfs itself refuses to overwrite an existing signature, a second guard behind blkid.
pub async fn mkfs(device: &Path, fs: FsType, options: &[String], timeout: Duration) -> Result<(), ExecError> {
    let mut argv: Vec<String> = options.to_vec();
    argv.push(device.display().to_string());
    exec::run(fs.mkfs_program(), &argv, timeout).await.map(|_| ())
}

/// Grows the mounted filesystem on `device` (mounted at `mount_point`) to fill the device.
pub async fn grow(fs: FsType, device: &Path, mount_point: &Path, timeout: Duration) -> Result<(), ExecError> {
    match fs {
        FsType::Xfs => exec::run("xfs_growfs", &args![mount_point.display()], timeout).await?,
        _ => exec::run("resize2fs", &args![device.display()], timeout).await?,
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blkid_table() {
        let cases = [
            (
                "DEVNAME=/dev/sdb\nUUID=x\nTYPE=ext4\nUSAGE=filesystem\n",
                Probe::Filesystem("ext4".into()),
            ),
            ("DEVNAME=/dev/sdb\nTYPE=xfs\n", Probe::Filesystem("xfs".into())),
            (
                "DEVNAME=/dev/sdb\nPTUUID=x\nPTTYPE=gpt\n",
                Probe::PartitionTable("gpt".into()),
            ),
            (
                "DEVNAME=/dev/sdb\nPTTYPE=dos\nTYPE=vfat\n",
                Probe::PartitionTable("dos".into()),
            ),
            (
                "DEVNAME=/dev/sdb\nTYPE=crypto_LUKS\n",
                Probe::Filesystem("crypto_LUKS".into()),
            ),
            ("DEVNAME=/dev/sdb\n", Probe::Filesystem("unknown".into())),
        ];
        for (text, want) in cases {
            assert_eq!(parse_blkid_export(text), want, "{text}");
        }
    }

    #[test]
    fn format_decision_table() {
        use FormatDecision::*;
        assert_eq!(decide_format(&Probe::Blank, FsType::Xfs), Ok(Format));
        assert_eq!(
            decide_format(&Probe::Filesystem("ext4".into()), FsType::Ext4),
            Ok(UseExisting)
        );
        assert!(matches!(
            decide_format(&Probe::Filesystem("xfs".into()), FsType::Ext4),
            Err(FormatRefusal::OtherFilesystem { .. })
        ));
        assert!(matches!(
            decide_format(&Probe::Filesystem("unknown".into()), FsType::Ext4),
            Err(FormatRefusal::OtherFilesystem { .. })
        ));
        assert!(matches!(
            decide_format(&Probe::PartitionTable("gpt".into()), FsType::Ext4),
            Err(FormatRefusal::Partitioned(_))
        ));
    }

    #[test]
    fn fs_type_and_options() {
        assert_eq!(FsType::parse("", FsType::Ext4), Some(FsType::Ext4));
        assert_eq!(FsType::parse("XFS", FsType::Ext4), Some(FsType::Xfs));
        assert_eq!(FsType::parse("btrfs", FsType::Ext4), None);
        assert_eq!(
            split_mkfs_options("  -m 0 -E  lazy_itable_init=0 "),
            ["-m", "0", "-E", "lazy_itable_init=0"]
        );
        assert!(split_mkfs_options("   ").is_empty());
    }
}
