//! Volume usage (statvfs) and health (VolumeCondition) for NodeGetVolumeStats.

use std::path::Path;

use super::mountinfo::MountEntry;
use crate::proto::{VolumeCondition, VolumeUsage, volume_usage::Unit};

/// Raw statvfs figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsStats {
    /// Fragment size in bytes.
    pub fragment_size: u64,
    /// Total blocks (fragments).
    pub blocks: u64,
    /// Free blocks (fragments), including those reserved for root.
    pub blocks_free: u64,
    /// Free blocks (fragments) unprivileged users may use: what is reported as available.
    pub blocks_available: u64,
    /// Total inodes (0 on filesystems without a fixed inode table).
    pub files: u64,
    /// Free inodes.
    pub files_free: u64,
}

/// Reads statvfs of `path`.
pub fn statvfs(path: &Path) -> Result<FsStats, nix::Error> {
    let s = nix::sys::statvfs::statvfs(path)?;
    Ok(FsStats {
        fragment_size: s.fragment_size() as u64,
        blocks: s.blocks() as u64,
        blocks_free: s.blocks_free() as u64,
        blocks_available: s.blocks_available() as u64,
        files: s.files() as u64,
        files_free: s.files_free() as u64,
    })
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Bytes and inodes usage from statvfs figures.
pub fn usage_from_stats(s: &FsStats) -> Vec<VolumeUsage> {
    let bytes = |n: u64| clamp(n.saturating_mul(s.fragment_size));
    vec![
        VolumeUsage {
            unit: Unit::Bytes as i32,
            total: bytes(s.blocks),
            available: bytes(s.blocks_available),
            used: bytes(s.blocks.saturating_sub(s.blocks_free)),
        },
        VolumeUsage {
            unit: Unit::Inodes as i32,
            total: clamp(s.files),
            available: clamp(s.files_free),
            used: clamp(s.files.saturating_sub(s.files_free)),
        },
    ]
}

/// Pure health decision for a mounted volume path.
pub fn mount_condition(mount: Option<&MountEntry>, device_present: bool) -> VolumeCondition {
    let abnormal = |message: String| VolumeCondition {
        abnormal: true,
        message,
    };
    match mount {
        None => abnormal("volume path is not mounted".into()),
        Some(m) if !device_present => abnormal(format!("the device {}:{} behind the mount is gone", m.major, m.minor)),
        Some(m) if m.filesystem_read_only() => abnormal(format!(
            "the {} filesystem on {} has turned read-only",
            m.fs_type, m.source
        )),
        Some(_) => VolumeCondition {
            abnormal: false,
            message: "volume is healthy".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::mountinfo::parse_mountinfo;

    #[test]
    fn usage_math() {
        let s = FsStats {
            fragment_size: 4096,
            blocks: 100,
            blocks_free: 40,
            blocks_available: 30,
            files: 64,
            files_free: 60,
        };
        let u = usage_from_stats(&s);
        assert_eq!((u[0].total, u[0].available, u[0].used), (409600, 122880, 245760));
        assert_eq!((u[1].total, u[1].available, u[1].used), (64, 60, 4));
        assert_eq!(u[0].unit, Unit::Bytes as i32);
    }

    #[test]
    fn condition_table() {
        let m = parse_mountinfo(
            "1 0 7:3 / /a rw - ext4 /dev/loop3 rw\n2 0 7:3 / /b ro - ext4 /dev/loop3 ro\n3 0 7:3 / /c ro - ext4 /dev/loop3 rw\n",
        );
        assert!(!mount_condition(Some(&m[0]), true).abnormal);
        assert!(mount_condition(Some(&m[1]), true).abnormal, "read-only filesystem");
        assert!(
            !mount_condition(Some(&m[2]), true).abnormal,
            "a read-only publish is not a fault"
        );
        assert!(mount_condition(Some(&m[0]), false).abnormal);
        assert!(mount_condition(None, true).abnormal);
    }
}
