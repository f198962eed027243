//! Finding the disk at a SCSI unit (target id) on the node's SCSI host, and removing it again.
//!
//! A cloud attaches a disk at some SCSI unit U and says so in its own words; its node platform turns those
//! words into U (csi-core knows no cloud's device naming) and hands it to [`ScsiLocator::locate_unit`]. On the
//! node the disk appears as `<dev>/disk/by-path/<bus address>-scsi-0:0:U:0` (channel 0, target U, LUN 0) once
//! the SCSI host has been rescanned. The locator works on the host that serves the disks already visible
//! (normally the boot disk, at unit 0), so it serves platforms that attach disks to the boot disk's adapter: it
//! rescans only that host, waits with a bounded timeout for the by-path link, and [`ScsiLocator::remove`]
//! deletes the SCSI device after unstage so the detach is clean.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Errors of locating or removing a SCSI disk.
#[derive(Debug, thiserror::Error)]
pub enum ScsiError {
    /// The disk did not appear in time.
    #[error("no disk at SCSI unit {unit} appeared under {dir} within {timeout:?}")]
    Timeout {
        /// The SCSI unit.
        unit: u32,
        /// The by-path directory watched.
        dir: PathBuf,
        /// How long we waited.
        timeout: Duration,
    },
    /// Several by-path entries match and none is on the host of the disks already visible.
    #[error("several disks match SCSI unit {unit}: {candidates:?}")]
    Ambiguous {
        /// The SCSI unit.
        unit: u32,
        /// The matching by-path link names.
        candidates: Vec<String>,
    },
    /// The wait was cancelled (shutdown).
    #[error("waiting for SCSI unit {0} was cancelled")]
    Cancelled(u32),
    /// A sysfs or /dev operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// If the by-path name is `<prefix>-scsi-0:0:U:0` (not a partition), returns (prefix, U).
pub fn parse_by_path_name(name: &str) -> Option<(&str, u32)> {
    let (prefix, scsi) = name.rsplit_once("-scsi-")?;
    let parts: Vec<&str> = scsi.split(':').collect();
    match parts.as_slice() {
        ["0", "0", unit, "0"] => Some((prefix, unit.parse().ok()?)),
        _ => None,
    }
}

/// Pure choice among by-path names for `unit`: when several match, the one on the bus `anchor_prefix` (where
/// the disks already visible live).
pub fn choose_by_path(names: &[String], unit: u32, anchor_prefix: Option<&str>) -> Result<Option<String>, ScsiError> {
    let matching: Vec<&String> = names
        .iter()
        .filter(|n| parse_by_path_name(n).is_some_and(|(_, u)| u == unit))
        .collect();
    match matching.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some((*one).clone())),
        many => {
            let anchored: Vec<&&String> = many
                .iter()
                .filter(|n| anchor_prefix.is_some_and(|a| parse_by_path_name(n).is_some_and(|(p, _)| p == a)))
                .collect();
            match anchored.as_slice() {
                [one] => Ok(Some((**one).clone())),
                _ => Err(ScsiError::Ambiguous {
                    unit,
                    candidates: many.iter().map(|s| (*s).clone()).collect(),
                }),
            }
        }
    }
}

/// Extracts `N` from a sysfs device path containing `/hostN/`.
pub fn host_number(sysfs_device_path: &Path) -> Option<u32> {
    sysfs_device_path
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .find_map(|c| c.strip_prefix("host").and_then(|n| n.parse().ok()))
}

/// Finds and removes SCSI disks under configurable sysfs and /dev roots.
#[derive(Debug, Clone)]
pub struct ScsiLocator {
    sys_root: PathBuf,
    dev_root: PathBuf,
    timeout: Duration,
    poll: Duration,
    cancel: CancellationToken,
}

impl ScsiLocator {
    /// A locator on the real `/sys` and `/dev`, waiting at most `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self::with_roots("/sys", "/dev", timeout)
    }

    /// A locator on other roots (tests point these at a prepared tree).
    pub fn with_roots(sys_root: impl Into<PathBuf>, dev_root: impl Into<PathBuf>, timeout: Duration) -> Self {
        Self {
            sys_root: sys_root.into(),
            dev_root: dev_root.into(),
            timeout,
            poll: Duration::from_millis(200),
            cancel: CancellationToken::new(),
        }
    }

    /// Sets the polling interval.
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Waits end early (with [`ScsiError::Cancelled`]) when `token` is cancelled (shutdown).
    pub fn with_cancellation(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    fn by_path_dir(&self) -> PathBuf {
        self.dev_root.join("disk/by-path")
    }

    fn by_path_names(&self) -> Vec<String> {
        std::fs::read_dir(self.by_path_dir())
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The SCSI units of every `…-scsi-0:0:U:0` disk now under `<dev>/disk/by-path`, ascending, each once (for
    /// computing free attachment slots).
    pub fn visible_units(&self) -> Vec<u32> {
        let mut units: Vec<u32> = self
            .by_path_names()
            .iter()
            .filter_map(|n| parse_by_path_name(n).map(|(_, u)| u))
            .collect();
        units.sort_unstable();
        units.dedup();
        units
    }

    /// The SCSI host number and by-path bus prefix of the first visible disk whose sysfs device names its
    /// host (normally the boot disk at unit 0).
    fn anchor(&self) -> Option<(u32, String)> {
        let dir = self.by_path_dir();
        for name in self.by_path_names() {
            let Some((prefix, _)) = parse_by_path_name(&name) else {
                continue;
            };
            let Ok(dev) = std::fs::canonicalize(dir.join(&name)) else {
                continue;
            };
            let Some(kname) = dev.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Ok(sys_dev) = std::fs::canonicalize(self.sys_root.join("block").join(kname).join("device")) else {
                continue;
            };
            if let Some(host) = host_number(&sys_dev) {
                return Some((host, prefix.to_string()));
            }
        }
        None
    }

    /// Writes `- - -` to the scan file of the host serving the disks already visible, or, when none is
    /// visible yet, to every `<sys>/class/scsi_host/host*/scan` (never walking /sys/devices). Returns the
    /// scan files written.
    pub fn rescan(&self) -> Result<Vec<PathBuf>, ScsiError> {
        let hosts_dir = self.sys_root.join("class/scsi_host");
        let targets: Vec<PathBuf> = match self.anchor() {
            Some((host, _)) => vec![hosts_dir.join(format!("host{host}/scan"))],
            None => std::fs::read_dir(&hosts_dir)
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .map(|e| e.path().join("scan"))
                        .filter(|p| p.exists())
                        .collect()
                })
                .unwrap_or_default(),
        };
        for scan in &targets {
            std::fs::write(scan, b"- - -").map_err(|source| ScsiError::Io {
                action: "write",
                path: scan.clone(),
                source,
            })?;
        }
        Ok(targets)
    }

    /// The device node of the disk at SCSI unit `unit` on the host serving the disks already visible,
    /// rescanning that host once if it is not visible yet and then polling until the timeout.
    pub async fn locate_unit(&self, unit: u32) -> Result<PathBuf, ScsiError> {
        let dir = self.by_path_dir();
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut rescanned = false;
        loop {
            let anchor = self.anchor().map(|(_, p)| p);
            if let Some(name) = choose_by_path(&self.by_path_names(), unit, anchor.as_deref())? {
                let link = dir.join(&name);
                return std::fs::canonicalize(&link).map_err(|source| ScsiError::Io {
                    action: "resolve",
                    path: link,
                    source,
                });
            }
            if !rescanned {
                let hosts = self.rescan()?;
                tracing::info!(unit, hosts = ?hosts, "rescanned SCSI host for new disk");
                rescanned = true;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ScsiError::Timeout {
                    unit,
                    dir,
                    timeout: self.timeout,
                });
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return Err(ScsiError::Cancelled(unit)),
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
    }

    /// After unstage: deletes the SCSI device behind `device` (`1` into
    /// `<sys>/block/<name>/device/delete`) when that file exists. Returns whether it did.
    pub fn remove(&self, device: &Path) -> Result<bool, ScsiError> {
        let Some(name) = device.file_name() else {
            return Ok(false);
        };
        let delete = self.sys_root.join("block").join(name).join("device/delete");
        if !delete.exists() {
            return Ok(false);
        }
        std::fs::write(&delete, b"1").map_err(|source| ScsiError::Io {
            action: "write",
            path: delete,
            source,
        })?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_path_table() {
        assert_eq!(
            parse_by_path_name("pci-0000:03:00.0-scsi-0:0:3:0"),
            Some(("pci-0000:03:00.0", 3))
        );
        assert_eq!(
            parse_by_path_name("pci-0000:0b:00.0-scsi-0:0:12:0"),
            Some(("pci-0000:0b:00.0", 12))
        );
        assert_eq!(parse_by_path_name("pci-0000:03:00.0-scsi-0:0:3:0-part1"), None);
        assert_eq!(parse_by_path_name("pci-0000:03:00.0-scsi-0:1:3:0"), None);
        assert_eq!(parse_by_path_name("pci-0000:00:07.1-ata-1"), None);
        let names: Vec<String> = [
            "pci-0000:03:00.0-scsi-0:0:3:0",
            "pci-0000:03:00.0-scsi-0:0:3:0-part1",
            "pci-0000:0b:00.0-scsi-0:0:3:0",
        ]
        .map(String::from)
        .to_vec();
        assert!(matches!(
            choose_by_path(&names, 3, None),
            Err(ScsiError::Ambiguous { .. })
        ));
        assert_eq!(
            choose_by_path(&names, 3, Some("pci-0000:0b:00.0")).unwrap().unwrap(),
            "pci-0000:0b:00.0-scsi-0:0:3:0"
        );
        assert_eq!(choose_by_path(&names, 4, None).unwrap(), None);
        assert_eq!(
            host_number(Path::new(
                "/sys/devices/pci0000:00/0000:00:15.0/0000:03:00.0/host2/target2:0:3/2:0:3:0"
            )),
            Some(2)
        );
    }

    fn tree() -> (tempfile::TempDir, ScsiLocator) {
        let root = tempfile::tempdir().unwrap();
        let sys = root.path().join("sys");
        let dev = root.path().join("dev");
        // boot disk sda on host2, unit 0
        std::fs::create_dir_all(sys.join("devices/pci/host2/target2:0:0/2:0:0:0")).unwrap();
        std::fs::create_dir_all(sys.join("block/sda")).unwrap();
        std::os::unix::fs::symlink(
            sys.join("devices/pci/host2/target2:0:0/2:0:0:0"),
            sys.join("block/sda/device"),
        )
        .unwrap();
        for h in ["host0", "host1", "host2"] {
            std::fs::create_dir_all(sys.join("class/scsi_host").join(h)).unwrap();
            std::fs::write(sys.join("class/scsi_host").join(h).join("scan"), "").unwrap();
        }
        std::fs::create_dir_all(dev.join("disk/by-path")).unwrap();
        std::fs::write(dev.join("sda"), "").unwrap();
        std::os::unix::fs::symlink("../../sda", dev.join("disk/by-path/pci-0000:0b:00.0-scsi-0:0:0:0")).unwrap();
        let loc =
            ScsiLocator::with_roots(sys, dev, Duration::from_millis(600)).with_poll_interval(Duration::from_millis(20));
        (root, loc)
    }

    #[tokio::test]
    async fn rescans_only_the_anchor_host_then_finds_the_disk() {
        let (root, loc) = tree();
        let dev = root.path().join("dev");
        let sys = root.path().join("sys");
        let appear = {
            let dev = dev.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                std::fs::write(dev.join("sdb"), "").unwrap();
                std::os::unix::fs::symlink("../../sdb", dev.join("disk/by-path/pci-0000:0b:00.0-scsi-0:0:3:0"))
                    .unwrap();
            })
        };
        let found = loc.locate_unit(3).await.unwrap();
        appear.await.unwrap();
        assert_eq!(found, std::fs::canonicalize(dev.join("sdb")).unwrap());
        assert_eq!(
            std::fs::read_to_string(sys.join("class/scsi_host/host2/scan")).unwrap(),
            "- - -"
        );
        assert_eq!(
            std::fs::read_to_string(sys.join("class/scsi_host/host0/scan")).unwrap(),
            ""
        );
        assert_eq!(loc.visible_units(), vec![0, 3]);
    }

    #[tokio::test]
    async fn times_out_and_cancels() {
        let (_root, loc) = tree();
        let err = loc.locate_unit(5).await.unwrap_err();
        assert!(matches!(err, ScsiError::Timeout { unit: 5, .. }), "{err}");
        let token = CancellationToken::new();
        let loc = loc.with_cancellation(token.clone());
        token.cancel();
        assert!(matches!(loc.locate_unit(5).await.unwrap_err(), ScsiError::Cancelled(5)));
    }

    #[test]
    fn remove_writes_delete_when_present() {
        let (root, loc) = tree();
        let sys = root.path().join("sys");
        assert!(!loc.remove(Path::new("/dev/sdz")).unwrap());
        std::fs::create_dir_all(sys.join("block/sdc/device")).unwrap();
        std::fs::write(sys.join("block/sdc/device/delete"), "").unwrap();
        assert!(loc.remove(Path::new("/dev/sdc")).unwrap());
        assert_eq!(
            std::fs::read_to_string(sys.join("block/sdc/device/delete")).unwrap(),
            "1"
        );
    }
}
