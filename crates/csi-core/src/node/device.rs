//! Block-device facts from `stat` and sysfs: device numbers, kernel names, sizes, rescans.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Why a device fact could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// `path` is not a block device.
    #[error("{path} is not a block device")]
    NotBlockDevice {
        /// The path inspected.
        path: PathBuf,
    },
    /// A filesystem read or write failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A sysfs file did not hold what was expected.
    #[error("unexpected content in {path}: {content:?}")]
    Parse {
        /// The sysfs file.
        path: PathBuf,
        /// What it held.
        content: String,
    },
}

/// Splits a Linux `dev_t` into (major, minor) (glibc encoding).
pub fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

/// The (major, minor) of the block device node at `path` (symlinks followed).
pub fn block_dev_number(path: &Path) -> Result<(u32, u32), DeviceError> {
    let meta = std::fs::metadata(path).map_err(|source| DeviceError::Io {
        action: "stat",
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.file_type().is_block_device() {
        return Err(DeviceError::NotBlockDevice {
            path: path.to_path_buf(),
        });
    }
    Ok(split_dev(meta.rdev()))
}

/// Whether `path` is a block device node (following symlinks); false when it does not exist.
pub fn is_block_device(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
}

fn read_sys(path: PathBuf) -> Result<String, DeviceError> {
    std::fs::read_to_string(&path).map_err(|source| DeviceError::Io {
        action: "read",
        path,
        source,
    })
}

/// The kernel name (`sdb`, `loop3`) of device `major:minor`, from `<sys>/dev/block/M:m/uevent`.
pub fn kernel_name(sys_root: &Path, major: u32, minor: u32) -> Result<String, DeviceError> {
    let path = sys_root.join(format!("dev/block/{major}:{minor}/uevent"));
    let text = read_sys(path.clone())?;
    text.lines()
        .find_map(|l| l.strip_prefix("DEVNAME="))
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty() && !n.contains(".."))
        .ok_or(DeviceError::Parse { path, content: text })
}

/// The size in bytes of the block device called `name`, from `<sys>/class/block/<name>/size`.
pub fn size_bytes(sys_root: &Path, name: &str) -> Result<i64, DeviceError> {
    let path = sys_root.join(format!("class/block/{name}/size"));
    let text = read_sys(path.clone())?;
    text.trim()
        .parse::<i64>()
        .ok()
        .and_then(|sectors| sectors.checked_mul(512))
        .ok_or(DeviceError::Parse { path, content: text })
}

/// Asks the SCSI layer to re-read the capacity of `name` (writes `1` to
/// `<sys>/class/block/<name>/device/rescan`). Returns false when the device has no such file
/// (loop devices, virtio), which is not an error.
pub fn rescan(sys_root: &Path, name: &str) -> Result<bool, DeviceError> {
    let path = sys_root.join(format!("class/block/{name}/device/rescan"));
    if !path.exists() {
        return Ok(false);
    }
    std::fs::write(&path, b"1").map_err(|source| DeviceError::Io {
        action: "write",
        path,
        source,
    })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_split_table() {
        // makedev(8, 16) = 0x810; makedev(259, 1) = 0x10301; makedev(7, 300) = 0x1012c | ...
        assert_eq!(split_dev(0x810), (8, 16));
        assert_eq!(split_dev(0x10301), (259, 1));
        let dev = ((300u64 & 0xff) | ((300u64 & !0xff) << 12)) | (7u64 << 8);
        assert_eq!(split_dev(dev), (7, 300));
    }

    #[test]
    fn sysfs_reads_from_a_prepared_tree() {
        let root = tempfile::tempdir().unwrap();
        let sys = root.path();
        std::fs::create_dir_all(sys.join("dev/block/8:16")).unwrap();
        std::fs::write(
            sys.join("dev/block/8:16/uevent"),
            "MAJOR=8\nMINOR=16\nDEVNAME=sdb\nDEVTYPE=disk\n",
        )
        .unwrap();
        std::fs::create_dir_all(sys.join("class/block/sdb/device")).unwrap();
        std::fs::write(sys.join("class/block/sdb/size"), "2097152\n").unwrap();
        assert_eq!(kernel_name(sys, 8, 16).unwrap(), "sdb");
        assert_eq!(size_bytes(sys, "sdb").unwrap(), 1 << 30);
        assert!(!rescan(sys, "sdb").unwrap());
        std::fs::write(sys.join("class/block/sdb/device/rescan"), "").unwrap();
        assert!(rescan(sys, "sdb").unwrap());
        assert_eq!(
            std::fs::read_to_string(sys.join("class/block/sdb/device/rescan")).unwrap(),
            "1"
        );
        match kernel_name(sys, 9, 9) {
            Err(DeviceError::Io { action, path, source }) => {
                assert_eq!(action, "read");
                assert_eq!(path, sys.join("dev/block/9:9/uevent"));
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("expected the missing uevent file, got {other:?}"),
        }
    }
}
