//! Shared harness for tests (and examples) on real loop devices.
#![allow(dead_code, missing_docs)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use csi_core::identity::IdentityService;
use csi_core::metrics::CsiMetrics;
use csi_core::node::scsi::ScsiLocator;
use csi_core::node::{NodeConfig, NodePlatform, NodeService, PlatformError};
use csi_core::proto::node_client::NodeClient;
use csi_core::server::{CsiServer, connect};
use tonic::transport::Channel;

/// The publish-context key under which the test controller ([`memctl`]) hands the node a volume's SCSI unit:
/// these tests' own convention, as a cloud's driver has its own.
pub const UNIT_KEY: &str = "scsiUnit";

/// Why root-only tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if uid.as_deref().unwrap_or("") != "0" {
        return Some("not running as root".into());
    }
    for tool in [
        "losetup",
        "mkfs.ext4",
        "mkfs.xfs",
        "blkid",
        "mount",
        "umount",
        "resize2fs",
        "xfs_growfs",
    ] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            return Some(format!(
                "{tool} is not installed (apt-get install -y xfsprogs e2fsprogs util-linux)"
            ));
        }
    }
    if Command::new("losetup")
        .arg("-f")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        return Some("no free loop device (losetup -f failed; is /dev/loop-control available?)".into());
    }
    None
}

/// Returns true (after printing why) when the test must skip.
pub fn should_skip(test: &str) -> bool {
    if let Some(why) = skip_reason() {
        eprintln!("SKIP {test}: {why}");
        return true;
    }
    false
}

pub fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A loop device over a sparse file; detached on drop.
pub struct LoopDevice {
    pub backing: PathBuf,
    pub device: PathBuf,
}

impl LoopDevice {
    pub fn new(dir: &Path, name: &str, size_mib: u64) -> Self {
        let backing = dir.join(name);
        let f = std::fs::File::create(&backing).unwrap();
        f.set_len(size_mib << 20).unwrap();
        let device = PathBuf::from(sh("losetup", &["-f", "--show", backing.to_str().unwrap()]));
        Self { backing, device }
    }

    pub fn kernel_name(&self) -> String {
        self.device.file_name().unwrap().to_string_lossy().into_owned()
    }

    /// Grows the backing file and tells the loop driver (`losetup -c`).
    pub fn grow(&self, size_mib: u64) {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&self.backing)
            .unwrap()
            .set_len(size_mib << 20)
            .unwrap();
        sh("losetup", &["-c", self.device.to_str().unwrap()]);
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.device).output();
    }
}

/// A prepared `/sys` + `/dev` tree: SCSI unit N resolves to the loop device attached as unit N.
pub struct FakeScsiTree {
    pub sys: PathBuf,
    pub dev: PathBuf,
}

impl FakeScsiTree {
    pub fn new(root: &Path) -> Self {
        let sys = root.join("sys");
        let dev = root.join("dev");
        std::fs::create_dir_all(sys.join("class/scsi_host/host0")).unwrap();
        std::fs::write(sys.join("class/scsi_host/host0/scan"), "").unwrap();
        std::fs::create_dir_all(dev.join("disk/by-path")).unwrap();
        Self { sys, dev }
    }

    /// Makes `loopdev` appear as SCSI unit `unit`, with a `device/delete` file to observe cleanup.
    pub fn attach(&self, unit: u32, loopdev: &LoopDevice) {
        let link = self
            .dev
            .join(format!("disk/by-path/pci-0000:0b:00.0-scsi-0:0:{unit}:0"));
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&loopdev.device, link).unwrap();
        let del = self.sys.join("block").join(loopdev.kernel_name()).join("device");
        std::fs::create_dir_all(&del).unwrap();
        std::fs::write(del.join("delete"), "").unwrap();
    }

    pub fn detach(&self, unit: u32) {
        let _ = std::fs::remove_file(
            self.dev
                .join(format!("disk/by-path/pci-0000:0b:00.0-scsi-0:0:{unit}:0")),
        );
    }

    /// What was written to the fake `device/delete` of `loopdev` ("1" after cleanup).
    pub fn delete_written(&self, loopdev: &LoopDevice) -> String {
        std::fs::read_to_string(self.sys.join("block").join(loopdev.kernel_name()).join("device/delete"))
            .unwrap_or_default()
    }

    pub fn reset_delete(&self, loopdev: &LoopDevice) {
        std::fs::write(
            self.sys.join("block").join(loopdev.kernel_name()).join("device/delete"),
            "",
        )
        .unwrap();
    }
}

/// A platform using [`ScsiLocator`] over a fake tree: the device is the one at the unit named by [`UNIT_KEY`].
pub struct TestPlatform {
    pub node_id: String,
    pub locator: ScsiLocator,
    pub cleaned: Mutex<Vec<PathBuf>>,
    pub resolve_delay: Duration,
}

#[tonic::async_trait]
impl NodePlatform for TestPlatform {
    fn node_id(&self) -> String {
        self.node_id.clone()
    }
    fn accessible_topology(&self) -> HashMap<String, String> {
        HashMap::from([("topology.example.com/zone".to_string(), "east-11".to_string())])
    }
    async fn max_volumes_per_node(&self) -> Result<i64, PlatformError> {
        Ok(15 - self.locator.visible_units().len() as i64)
    }
    async fn resolve_device(&self, _volume_id: &str, ctx: &HashMap<String, String>) -> Result<PathBuf, PlatformError> {
        tokio::time::sleep(self.resolve_delay).await;
        let entry = ctx
            .get(UNIT_KEY)
            .ok_or_else(|| PlatformError::InvalidArgument(format!("publish context has no {UNIT_KEY:?} entry")))?;
        let unit = entry
            .parse()
            .map_err(|_| PlatformError::InvalidArgument(format!("{UNIT_KEY} {entry:?} is not a SCSI unit")))?;
        Ok(self.locator.locate_unit(unit).await?)
    }
    async fn cleanup_device(&self, _volume_id: &str, device: &Path) -> Result<(), PlatformError> {
        self.locator.remove(device)?;
        self.cleaned.lock().unwrap().push(device.to_path_buf());
        Ok(())
    }
}

/// A node service served on a unix socket, with a client.
pub struct NodeHarness {
    pub client: NodeClient<Channel>,
    pub platform: Arc<TestPlatform>,
    pub metrics: Arc<CsiMetrics>,
    pub endpoint: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl NodeHarness {
    pub async fn start(dir: &Path, node_id: &str, tree: &FakeScsiTree) -> Self {
        Self::start_with_delay(dir, node_id, tree, Duration::ZERO).await
    }

    pub async fn start_with_delay(dir: &Path, node_id: &str, tree: &FakeScsiTree, resolve_delay: Duration) -> Self {
        let platform = Arc::new(TestPlatform {
            node_id: node_id.to_string(),
            locator: ScsiLocator::with_roots(&tree.sys, &tree.dev, Duration::from_secs(3))
                .with_poll_interval(Duration::from_millis(20)),
            cleaned: Mutex::new(Vec::new()),
            resolve_delay,
        });
        let node = NodeService::new(Arc::clone(&platform), NodeConfig::default());
        let metrics = Arc::new(CsiMetrics::new());
        let identity = IdentityService::new("test.csi.example.com", "0.0.1", node.readiness()).unwrap();
        let endpoint = format!("unix://{}", dir.join(format!("{node_id}.sock")).display());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = CsiServer::new(identity, Arc::clone(&metrics)).with_node(node);
        let ep = endpoint.clone();
        let task = tokio::spawn(async move {
            server
                .serve(&ep, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        let mut client = None;
        for _ in 0..100 {
            if let Ok(ch) = connect(&endpoint).await {
                client = Some(NodeClient::new(ch));
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            client: client.expect("node server did not come up"),
            platform,
            metrics,
            endpoint,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

/// A temp dir that, when dropped (also on panic), lazily unmounts everything mounted under it
/// so a failed test leaves no mounts behind.
pub struct TestDir {
    dir: tempfile::TempDir,
}

impl TestDir {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let root = std::fs::canonicalize(self.dir.path()).unwrap_or_else(|_| self.dir.path().to_path_buf());
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mounts = csi_core::node::mountinfo::parse_mountinfo(&text);
        for m in mounts.iter().rev().filter(|m| m.mount_point.starts_with(&root)) {
            let _ = Command::new("umount").arg("-l").arg(&m.mount_point).output();
        }
    }
}

/// Whether this process may grow a mounted ext4 (the resize ioctl needs CAP_SYS_RESOURCE,
/// which a privileged Kubernetes node plugin has but some sandboxes drop).
pub fn has_cap_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 24) != 0)
}
pub mod memctl;
pub mod requests;
