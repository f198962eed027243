//! Optional loop-device backing of attached volumes (Linux, root, `losetup` present).
//!
//! Each volume has a sparse file `<backing_dir>/<volumeUniqueId>.img` (1 GB = 2^30 bytes: NIFCLOUD runs on
//! VMware, whose "GB" is a GiB). While it is attached, a loop device shows it and a symlink
//! `<dir>/<instanceId>/disk/by-path/pci-0000:0b:00.0-scsi-0:0:N:0` points at the loop device, as
//! `/dev/disk/by-path` does on a NIFCLOUD VM. Detach removes loop device and symlink (the file and
//! its data stay), extend grows the file and runs `losetup -c`, delete removes the file.
//! Devices appear and disappear when the request is accepted (not when a configured attach or
//! detach delay ends); an extend takes effect when it completes. Shutdown detaches every device.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::BlockDeviceConfig;
use crate::error::ApiError;

/// Bytes per GB as the API counts them: a GiB (NIFCLOUD runs on VMware).
const GB: u64 = 1 << 30;

/// Why loop-device backing cannot run here, or `None` if it can.
pub fn unsupported_reason() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return Some("not Linux".into());
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid0 = status
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !uid0 {
        return Some("not running as root".into());
    }
    match Command::new("losetup").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => return Some("losetup is not available".into()),
    }
    if !Path::new("/dev/loop-control").exists() {
        return Some("/dev/loop-control is missing".into());
    }
    None
}

/// The `/dev/disk/by-path` style name of SCSI unit `n`.
pub fn by_path_name(n: u8) -> String {
    format!("pci-0000:0b:00.0-scsi-0:0:{n}:0")
}

/// Live loop devices of attached volumes.
#[derive(Debug, Clone)]
pub struct BlockBackend {
    cfg: BlockDeviceConfig,
    /// volumeUniqueId -> (loop device, symlink).
    loops: BTreeMap<String, (String, PathBuf)>,
}

fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new("losetup")
        .args(args)
        .output()
        .map_err(|e| format!("losetup {args:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "losetup {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn internal(msg: String) -> ApiError {
    ApiError::new("Server.InternalError.BlockDevice", msg)
}

impl BlockBackend {
    /// A backend with no devices yet.
    pub fn new(cfg: BlockDeviceConfig) -> Self {
        Self {
            cfg,
            loops: BTreeMap::new(),
        }
    }

    /// The backing file of a volume.
    pub fn file(&self, volume_uid: &str) -> PathBuf {
        self.cfg.backing_dir.join(format!("{volume_uid}.img"))
    }

    /// The symlink an attached volume gets on `instance` at SCSI unit `n`.
    pub fn link(&self, instance: &str, n: u8) -> PathBuf {
        self.cfg
            .dir
            .join(instance)
            .join("disk")
            .join("by-path")
            .join(by_path_name(n))
    }

    /// The loop device currently showing a volume.
    pub fn loop_device(&self, volume_uid: &str) -> Option<&str> {
        self.loops.get(volume_uid).map(|(d, _)| d.as_str())
    }

    /// Creates the file if needed, attaches a loop device and links it.
    pub fn attach(&mut self, volume_uid: &str, instance: &str, n: u8, size_gb: u32) -> Result<(), ApiError> {
        let file = self.file(volume_uid);
        std::fs::create_dir_all(&self.cfg.backing_dir)
            .map_err(|e| internal(format!("{}: {e}", self.cfg.backing_dir.display())))?;
        if !file.exists() {
            let f = std::fs::File::create(&file).map_err(|e| internal(format!("{}: {e}", file.display())))?;
            f.set_len(u64::from(size_gb) * GB)
                .map_err(|e| internal(format!("{}: {e}", file.display())))?;
        }
        let file_s = file.to_string_lossy().into_owned();
        let dev = run(&["--find", "--show", &file_s]).map_err(internal)?;
        let link = self.link(instance, n);
        let linked = link
            .parent()
            .map(std::fs::create_dir_all)
            .unwrap_or(Ok(()))
            .and_then(|()| {
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink(&dev, &link)
            });
        if let Err(e) = linked {
            let _ = run(&["-d", &dev]);
            return Err(internal(format!("{}: {e}", link.display())));
        }
        self.loops.insert(volume_uid.to_owned(), (dev, link));
        Ok(())
    }

    /// Removes the loop device and symlink (errors are logged; the file stays).
    pub fn detach(&mut self, volume_uid: &str, _instance: &str, _n: u8) {
        if let Some((dev, link)) = self.loops.remove(volume_uid) {
            if let Err(e) = run(&["-d", &dev]) {
                tracing::warn!(volume = volume_uid, error = %e, "detaching loop device");
            }
            let _ = std::fs::remove_file(&link);
        }
    }

    /// Grows the file to `size_gb` and refreshes the loop device's capacity.
    pub fn resize(&mut self, volume_uid: &str, size_gb: u32) {
        let file = self.file(volume_uid);
        let grown = std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_len(u64::from(size_gb) * GB));
        if let Err(e) = grown {
            tracing::warn!(volume = volume_uid, error = %e, "growing backing file");
        }
        if let Some((dev, _)) = self.loops.get(volume_uid)
            && let Err(e) = run(&["-c", dev])
        {
            tracing::warn!(volume = volume_uid, error = %e, "refreshing loop capacity");
        }
    }

    /// Deletes the backing file.
    pub fn delete(&mut self, volume_uid: &str) {
        self.detach(volume_uid, "", 0);
        let _ = std::fs::remove_file(self.file(volume_uid));
    }

    /// Detaches every loop device (on shutdown).
    pub fn detach_all(&mut self) {
        let uids: Vec<String> = self.loops.keys().cloned().collect();
        for u in uids {
            self.detach(&u, "", 0);
        }
    }
}
