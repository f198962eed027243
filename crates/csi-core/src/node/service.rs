//! [`NodeService`]: the CSI Node gRPC service (IO around the pure decisions in `node`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use super::fs::{self as fsops, FormatDecision, FsType};
use super::mountinfo::{self, MountEntry};
use super::{
    BLOCK_DEVICE_FILE, MKFS_OPTIONS_KEY, NodeError, NodePlatform, StageStep, decide_stage, device, mount,
    per_mount_flags, stage_mount_options, stats,
};
use crate::capability::{AccessKind, CapabilityPolicy, access_mode, validate_capability};
use crate::identity::Readiness;
use crate::locks::InFlight;
use crate::proto;
use crate::proto::node_service_capability::rpc::Type as NodeCap;
use crate::proto::volume_capability::access_mode::Mode;

/// Tunables of the node service.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Limit for quick commands (blkid, mount, umount, resize).
    pub command_timeout: Duration,
    /// Limit for mkfs.
    pub format_timeout: Duration,
    /// sysfs root (normally `/sys`).
    pub sys_root: PathBuf,
    /// mountinfo file (normally `/proc/self/mountinfo`).
    pub mountinfo: PathBuf,
    /// Filesystem used when the capability names none.
    pub default_fs: FsType,
    /// Capabilities accepted; the node's advertised capabilities and the tools Probe checks for
    /// ([`Self::required_tools`]) derive from it.
    pub policy: CapabilityPolicy,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            command_timeout: Duration::from_secs(60),
            format_timeout: Duration::from_secs(600),
            sys_root: PathBuf::from("/sys"),
            mountinfo: PathBuf::from("/proc/self/mountinfo"),
            default_fs: FsType::Ext4,
            policy: CapabilityPolicy::single_node_disk(),
        }
    }
}

impl NodeConfig {
    /// The programs the node runs: blkid, mount and umount, and for every filesystem type the policy accepts
    /// (and the default one) its mkfs and grow programs. Probe fails while one is missing from `PATH`.
    pub fn required_tools(&self) -> Vec<&'static str> {
        let mut tools = vec!["blkid", "mount", "umount"];
        let types = self
            .policy
            .fs_types
            .iter()
            .filter_map(|t| FsType::parse(t, self.default_fs))
            .chain([self.default_fs]);
        for fs in types {
            for tool in [fs.mkfs_program(), fs.grow_program()] {
                if !tools.contains(&tool) {
                    tools.push(tool);
                }
            }
        }
        tools
    }
}

/// The CSI Node service.
pub struct NodeService<P: NodePlatform> {
    platform: Arc<P>,
    config: Arc<NodeConfig>,
    locks: InFlight,
}

impl<P: NodePlatform> Clone for NodeService<P> {
    fn clone(&self) -> Self {
        Self {
            platform: Arc::clone(&self.platform),
            config: Arc::clone(&self.config),
            locks: self.locks.clone(),
        }
    }
}

impl<P: NodePlatform> std::fmt::Debug for NodeService<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeService")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn require<'a>(value: &'a str, field: &str) -> Result<&'a str, NodeError> {
    if value.is_empty() {
        Err(NodeError::InvalidArgument(format!("{field} is required")))
    } else {
        Ok(value)
    }
}

fn require_path(value: &str, field: &str) -> Result<PathBuf, NodeError> {
    require(value, field)?;
    if !value.starts_with('/') {
        return Err(NodeError::InvalidArgument(format!(
            "{field} must be an absolute path, got {value:?}"
        )));
    }
    Ok(PathBuf::from(value))
}

/// A `volume_path` of NodeGetVolumeStats or NodeExpandVolume: required, and NotFound unless it is an absolute
/// path that exists (a relative path names no place a CO publishes to, so no volume is there).
fn existing_volume_path(value: &str) -> Result<PathBuf, NodeError> {
    require(value, "volume_path")?;
    let path = PathBuf::from(value);
    if !path.is_absolute() || !path.exists() {
        return Err(NodeError::NotFound(format!(
            "no volume at volume_path {value:?}: the path does not exist"
        )));
    }
    Ok(path)
}

/// Where else a staged volume is published: mount points other than `exclude` that show the staged filesystem
/// (`staged` is its mount at the staging path), or, for a raw block volume (`block_dev` set), the same device
/// node bind-mounted (`staged` is then the mount of the device node at the staging file).
fn other_publishes(
    mounts: &[MountEntry],
    staged: &MountEntry,
    block_dev: Option<(u32, u32)>,
    exclude: &[PathBuf],
) -> Vec<PathBuf> {
    mountinfo::mounts_of_device(mounts, staged.major, staged.minor)
        .into_iter()
        .filter(|m| !exclude.contains(&m.mount_point))
        .filter(|m| block_dev.is_none_or(|want| device::block_dev_number(&m.mount_point).is_ok_and(|n| n == want)))
        .map(|m| m.mount_point.clone())
        .collect()
}

/// The path with symlinks resolved when it exists (mountinfo lists resolved paths).
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn tool_in_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

impl<P: NodePlatform> NodeService<P> {
    /// A node service on `platform` with `config`.
    pub fn new(platform: Arc<P>, config: NodeConfig) -> Self {
        Self {
            platform,
            config: Arc::new(config),
            locks: InFlight::new(),
        }
    }

    /// A [`Readiness`] for the Identity service's Probe: the platform is ready and every
    /// required tool is in `PATH`.
    pub fn readiness(&self) -> Arc<dyn Readiness> {
        Arc::new(NodeReadiness {
            platform: Arc::clone(&self.platform),
            config: Arc::clone(&self.config),
        })
    }

    fn io(volume_id: &str, action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> NodeError {
        let (volume_id, path) = (volume_id.to_string(), path.to_path_buf());
        move |source| NodeError::Io {
            volume_id,
            action,
            path,
            source,
        }
    }

    fn cmd(volume_id: &str, step: &'static str) -> impl FnOnce(super::exec::ExecError) -> NodeError {
        let volume_id = volume_id.to_string();
        move |source| NodeError::Command {
            volume_id,
            step,
            source,
        }
    }

    fn dev(volume_id: &str) -> impl FnOnce(device::DeviceError) -> NodeError {
        let volume_id = volume_id.to_string();
        move |source| NodeError::Device { volume_id, source }
    }

    async fn mounts(&self, volume_id: &str) -> Result<Vec<MountEntry>, NodeError> {
        mountinfo::read_mountinfo(&self.config.mountinfo)
            .await
            .map_err(Self::io(volume_id, "read", &self.config.mountinfo))
    }

    fn access_kind(&self, cap: Option<&proto::VolumeCapability>) -> Result<AccessKind, NodeError> {
        let cap = cap.ok_or_else(|| NodeError::InvalidArgument("volume_capability is required".into()))?;
        validate_capability(cap, &self.config.policy).map_err(|e| NodeError::InvalidArgument(e.to_string()))
    }

    fn fs_type(&self, requested: &str) -> Result<FsType, NodeError> {
        FsType::parse(requested, self.config.default_fs)
            .ok_or_else(|| NodeError::InvalidArgument(format!("filesystem type {requested:?} is not supported")))
    }

    async fn resolve(
        &self,
        volume_id: &str,
        ctx: &HashMap<String, String>,
    ) -> Result<(PathBuf, (u32, u32)), NodeError> {
        let dev = self
            .platform
            .resolve_device(volume_id, ctx)
            .await
            .map_err(|source| NodeError::Platform {
                volume_id: volume_id.to_string(),
                source,
            })?;
        let num = device::block_dev_number(&dev).map_err(Self::dev(volume_id))?;
        Ok((dev, num))
    }

    /// The kernel device path (`/dev/<name>`) for `major:minor`.
    fn device_path(&self, volume_id: &str, num: (u32, u32)) -> Result<(String, PathBuf), NodeError> {
        let name = device::kernel_name(&self.config.sys_root, num.0, num.1).map_err(Self::dev(volume_id))?;
        let path = PathBuf::from("/dev").join(&name);
        Ok((name, path))
    }

    async fn stage(&self, req: proto::NodeStageVolumeRequest) -> Result<(), NodeError> {
        let volume_id = require(&req.volume_id, "volume_id")?;
        let staging = require_path(&req.staging_target_path, "staging_target_path")?;
        let kind = self.access_kind(req.volume_capability.as_ref())?;
        let _guard = self
            .locks
            .try_lock(volume_id)
            .map_err(|_| NodeError::Busy(volume_id.to_string()))?;
        std::fs::create_dir_all(&staging).map_err(Self::io(volume_id, "create", &staging))?;
        let (dev, num) = self.resolve(volume_id, &req.publish_context).await?;
        let mounts = self.mounts(volume_id).await?;
        match kind {
            AccessKind::Block => {
                let file = staging.join(BLOCK_DEVICE_FILE);
                if mountinfo::mount_at(&mounts, &canonical(&file)).is_some() {
                    let staged = device::block_dev_number(&file).map_err(Self::dev(volume_id))?;
                    return match decide_stage(Some((staged.0, staged.1, "")), num, "") {
                        StageStep::AlreadyStaged | StageStep::Proceed => Ok(()),
                        StageStep::Conflict(m) => Err(NodeError::AlreadyExists(m)),
                    };
                }
                if !file.exists() {
                    std::fs::File::create(&file).map_err(Self::io(volume_id, "create", &file))?;
                }
                mount::bind(&dev, &file, false, &[], self.config.command_timeout)
                    .await
                    .map_err(Self::cmd(volume_id, "bind-mount block device for staging"))
            }
            AccessKind::Mount { fs_type, mount_flags } => {
                let fs = self.fs_type(&fs_type)?;
                let existing = mountinfo::mount_at(&mounts, &canonical(&staging));
                match decide_stage(
                    existing.map(|m| (m.major, m.minor, m.fs_type.as_str())),
                    num,
                    fs.as_str(),
                ) {
                    StageStep::AlreadyStaged => return Ok(()),
                    StageStep::Conflict(m) => return Err(NodeError::AlreadyExists(m)),
                    StageStep::Proceed => {}
                }
                let probe = fsops::probe(&dev, self.config.command_timeout)
                    .await
                    .map_err(Self::cmd(volume_id, "probe device with blkid"))?;
                let decision = fsops::decide_format(&probe, fs).map_err(|refusal| {
                    NodeError::FailedPrecondition(format!("volume {volume_id} on {}: {refusal}", dev.display()))
                })?;
                if decision == FormatDecision::Format {
                    let opts = req
                        .volume_context
                        .get(MKFS_OPTIONS_KEY)
                        .map(|s| fsops::split_mkfs_options(s))
                        .unwrap_or_default();
                    tracing::info!(volume_id, device = %dev.display(), fs = fs.as_str(), "formatting blank device");
                    fsops::mkfs(&dev, fs, &opts, self.config.format_timeout)
                        .await
                        .map_err(Self::cmd(volume_id, "create filesystem"))?;
                }
                let options = stage_mount_options(&mount_flags);
                mount::mount_fs(&dev, &staging, fs.as_str(), &options, self.config.command_timeout)
                    .await
                    .map_err(Self::cmd(volume_id, "mount device at staging path"))
            }
        }
    }

    async fn unstage(&self, req: proto::NodeUnstageVolumeRequest) -> Result<(), NodeError> {
        let volume_id = require(&req.volume_id, "volume_id")?;
        let staging = require_path(&req.staging_target_path, "staging_target_path")?;
        let _guard = self
            .locks
            .try_lock(volume_id)
            .map_err(|_| NodeError::Busy(volume_id.to_string()))?;
        if !staging.exists() {
            return Ok(());
        }
        let mounts = self.mounts(volume_id).await?;
        let file = staging.join(BLOCK_DEVICE_FILE);
        let staged_device = if mountinfo::mount_at(&mounts, &canonical(&file)).is_some() {
            let num = device::block_dev_number(&file).map_err(Self::dev(volume_id))?;
            let (_, path) = self.device_path(volume_id, num)?;
            self.unmount_all(volume_id, &file).await?;
            std::fs::remove_file(&file).map_err(Self::io(volume_id, "remove", &file))?;
            Some(path)
        } else if let Some(m) = mountinfo::mount_at(&mounts, &canonical(&staging)) {
            let num = (m.major, m.minor);
            let staging_canon = canonical(&staging);
            let others: Vec<String> = mountinfo::mounts_of_device(&mounts, num.0, num.1)
                .into_iter()
                .filter(|o| o.mount_point != staging_canon)
                .map(|o| o.mount_point.display().to_string())
                .collect();
            if !others.is_empty() {
                return Err(NodeError::FailedPrecondition(format!(
                    "volume {volume_id} is still mounted at {others:?}; unpublish it first"
                )));
            }
            let (_, path) = self.device_path(volume_id, num)?;
            self.unmount_all(volume_id, &staging).await?;
            Some(path)
        } else {
            if file.exists() && std::fs::metadata(&file).is_ok_and(|m| m.len() == 0) {
                std::fs::remove_file(&file).map_err(Self::io(volume_id, "remove", &file))?;
            }
            None
        };
        if let Some(dev) = staged_device {
            self.platform
                .cleanup_device(volume_id, &dev)
                .await
                .map_err(|source| NodeError::Platform {
                    volume_id: volume_id.to_string(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Unmounts `path` until nothing is mounted there (stacked mounts), at most 8 times.
    async fn unmount_all(&self, volume_id: &str, path: &Path) -> Result<(), NodeError> {
        let canon = canonical(path);
        for _ in 0..8 {
            let mounts = self.mounts(volume_id).await?;
            if mountinfo::mount_at(&mounts, &canon).is_none() {
                return Ok(());
            }
            mount::unmount(path, self.config.command_timeout)
                .await
                .map_err(Self::cmd(volume_id, "unmount"))?;
        }
        Err(NodeError::FailedPrecondition(format!(
            "{} is still mounted after 8 unmounts",
            path.display()
        )))
    }

    async fn publish(&self, req: proto::NodePublishVolumeRequest) -> Result<(), NodeError> {
        let volume_id = require(&req.volume_id, "volume_id")?;
        let target = require_path(&req.target_path, "target_path")?;
        let staging = require_path(&req.staging_target_path, "staging_target_path")?;
        let kind = self.access_kind(req.volume_capability.as_ref())?;
        let single_writer = req
            .volume_capability
            .as_ref()
            .is_some_and(|c| access_mode(c) == Mode::SingleNodeSingleWriter);
        let _guard = self
            .locks
            .try_lock(volume_id)
            .map_err(|_| NodeError::Busy(volume_id.to_string()))?;
        let mounts = self.mounts(volume_id).await?;
        let not_staged =
            || NodeError::FailedPrecondition(format!("volume {volume_id} is not staged at {}", staging.display()));
        // SINGLE_NODE_SINGLE_WRITER (ReadWriteOncePod): one target path at a time. Other publishes are looked for
        // (a stat per candidate mount for raw block) only for such volumes.
        let refuse_second_target = |staged: &MountEntry, block_dev: Option<(u32, u32)>, exclude: &[PathBuf]| {
            if !single_writer {
                return Ok(());
            }
            let others = other_publishes(&mounts, staged, block_dev, exclude);
            if others.is_empty() {
                return Ok(());
            }
            Err(NodeError::FailedPrecondition(format!(
                "volume {volume_id} has access mode SINGLE_NODE_SINGLE_WRITER (ReadWriteOncePod) and is already \
                 published at {}; unpublish it there first",
                others
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        };
        match kind {
            AccessKind::Block => {
                let source = staging.join(BLOCK_DEVICE_FILE);
                let source_canon = canonical(&source);
                let staged = mountinfo::mount_at(&mounts, &source_canon).ok_or_else(not_staged)?;
                let src_num = device::block_dev_number(&source).map_err(Self::dev(volume_id))?;
                if let Some(m) = mountinfo::mount_at(&mounts, &canonical(&target)) {
                    let num = device::block_dev_number(&target).map_err(Self::dev(volume_id))?;
                    return Self::check_published(volume_id, num == src_num, m.mount_read_only(), req.readonly);
                }
                refuse_second_target(staged, Some(src_num), &[source_canon, canonical(&target)])?;
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(Self::io(volume_id, "create", parent))?;
                }
                if !target.exists() {
                    std::fs::File::create(&target).map_err(Self::io(volume_id, "create", &target))?;
                }
                mount::bind(&source, &target, req.readonly, &[], self.config.command_timeout)
                    .await
                    .map_err(Self::cmd(volume_id, "bind-mount block device to target"))
            }
            AccessKind::Mount { mount_flags, .. } => {
                let staged = mountinfo::mount_at(&mounts, &canonical(&staging)).ok_or_else(not_staged)?;
                let src_num = (staged.major, staged.minor);
                if let Some(m) = mountinfo::mount_at(&mounts, &canonical(&target)) {
                    return Self::check_published(
                        volume_id,
                        (m.major, m.minor) == src_num,
                        m.mount_read_only(),
                        req.readonly,
                    );
                }
                refuse_second_target(staged, None, &[canonical(&staging), canonical(&target)])?;
                // Created only once the publish is allowed: a refused one leaves nothing behind.
                std::fs::create_dir_all(&target).map_err(Self::io(volume_id, "create", &target))?;
                mount::bind(
                    &staging,
                    &target,
                    req.readonly,
                    &per_mount_flags(&mount_flags),
                    self.config.command_timeout,
                )
                .await
                .map_err(Self::cmd(volume_id, "bind-mount staging path to target"))
            }
        }
    }

    fn check_published(volume_id: &str, same_device: bool, is_ro: bool, want_ro: bool) -> Result<(), NodeError> {
        match (same_device, is_ro == want_ro) {
            (true, true) => Ok(()),
            (true, false) => Err(NodeError::AlreadyExists(format!(
                "volume {volume_id} is already published there with readonly={is_ro}, not {want_ro}"
            ))),
            (false, _) => Err(NodeError::AlreadyExists(format!(
                "another device is already mounted at the target path of volume {volume_id}"
            ))),
        }
    }

    async fn unpublish(&self, req: proto::NodeUnpublishVolumeRequest) -> Result<(), NodeError> {
        let volume_id = require(&req.volume_id, "volume_id")?;
        let target = require_path(&req.target_path, "target_path")?;
        let _guard = self
            .locks
            .try_lock(volume_id)
            .map_err(|_| NodeError::Busy(volume_id.to_string()))?;
        let meta = match std::fs::symlink_metadata(&target) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Self::io(volume_id, "inspect", &target)(e)),
        };
        self.unmount_all(volume_id, &target).await?;
        // Only the empty mount point we created is removed: never anything recursively.
        if meta.is_dir() {
            std::fs::remove_dir(&target).map_err(Self::io(volume_id, "remove directory", &target))?;
        } else {
            std::fs::remove_file(&target).map_err(Self::io(volume_id, "remove", &target))?;
        }
        Ok(())
    }

    async fn expand(&self, req: proto::NodeExpandVolumeRequest) -> Result<i64, NodeError> {
        let volume_id = require(&req.volume_id, "volume_id")?;
        let path = existing_volume_path(&req.volume_path)?;
        let _guard = self
            .locks
            .try_lock(volume_id)
            .map_err(|_| NodeError::Busy(volume_id.to_string()))?;
        let required = req.capacity_range.as_ref().map_or(0, |r| r.required_bytes);
        if device::is_block_device(&path) {
            let num = device::block_dev_number(&path).map_err(Self::dev(volume_id))?;
            let (name, _) = self.device_path(volume_id, num)?;
            device::rescan(&self.config.sys_root, &name).map_err(Self::dev(volume_id))?;
            let size = device::size_bytes(&self.config.sys_root, &name).map_err(Self::dev(volume_id))?;
            return Self::check_size(volume_id, size, required);
        }
        let mounts = self.mounts(volume_id).await?;
        let m = mountinfo::mount_at(&mounts, &canonical(&path))
            .ok_or_else(|| NodeError::NotFound(format!("volume path {} is not mounted", path.display())))?;
        let fs = FsType::parse(&m.fs_type, self.config.default_fs)
            .ok_or_else(|| NodeError::InvalidArgument(format!("cannot grow a {} filesystem", m.fs_type)))?;
        let (name, dev) = self.device_path(volume_id, (m.major, m.minor))?;
        device::rescan(&self.config.sys_root, &name).map_err(Self::dev(volume_id))?;
        let size = device::size_bytes(&self.config.sys_root, &name).map_err(Self::dev(volume_id))?;
        Self::check_size(volume_id, size, required)?;
        fsops::grow(fs, &dev, &path, self.config.command_timeout)
            .await
            .map_err(Self::cmd(volume_id, "grow filesystem"))?;
        Ok(size)
    }

    fn check_size(volume_id: &str, size: i64, required: i64) -> Result<i64, NodeError> {
        if required > 0 && size < required {
            return Err(NodeError::Unavailable(format!(
                "volume {volume_id}: device is {size} bytes after rescan, {required} required; the controller resize may not have reached this node yet"
            )));
        }
        Ok(size)
    }

    async fn volume_stats(
        &self,
        req: proto::NodeGetVolumeStatsRequest,
    ) -> Result<proto::NodeGetVolumeStatsResponse, NodeError> {
        let volume_id = require(&req.volume_id, "volume_id")?;
        let path = existing_volume_path(&req.volume_path)?;
        if device::is_block_device(&path) {
            let num = device::block_dev_number(&path).map_err(Self::dev(volume_id))?;
            let (name, _) = self.device_path(volume_id, num)?;
            let size = device::size_bytes(&self.config.sys_root, &name).map_err(Self::dev(volume_id))?;
            return Ok(proto::NodeGetVolumeStatsResponse {
                usage: vec![proto::VolumeUsage {
                    unit: proto::volume_usage::Unit::Bytes as i32,
                    total: size,
                    ..Default::default()
                }],
                volume_condition: Some(proto::VolumeCondition {
                    abnormal: false,
                    message: "block device present".into(),
                }),
            });
        }
        let mounts = self.mounts(volume_id).await?;
        let m = mountinfo::mount_at(&mounts, &canonical(&path));
        let device_present = m.is_some_and(|m| device::kernel_name(&self.config.sys_root, m.major, m.minor).is_ok());
        let condition = stats::mount_condition(m, device_present);
        let usage = if m.is_some() {
            let s =
                stats::statvfs(&path).map_err(|e| Self::io(volume_id, "statvfs", &path)(std::io::Error::from(e)))?;
            stats::usage_from_stats(&s)
        } else {
            Vec::new()
        };
        Ok(proto::NodeGetVolumeStatsResponse {
            usage,
            volume_condition: Some(condition),
        })
    }
}

struct NodeReadiness<P: NodePlatform> {
    platform: Arc<P>,
    config: Arc<NodeConfig>,
}

#[tonic::async_trait]
impl<P: NodePlatform> Readiness for NodeReadiness<P> {
    async fn ready(&self) -> Result<bool, String> {
        let missing: Vec<&str> = self
            .config
            .required_tools()
            .into_iter()
            .filter(|t| !tool_in_path(t))
            .collect();
        if !missing.is_empty() {
            return Err(format!("node tools missing from PATH: {}", missing.join(", ")));
        }
        if !self.config.mountinfo.exists() {
            return Err(format!("{} is not readable", self.config.mountinfo.display()));
        }
        self.platform.ready().await
    }
}

fn node_cap(t: NodeCap) -> proto::NodeServiceCapability {
    proto::NodeServiceCapability {
        r#type: Some(proto::node_service_capability::Type::Rpc(
            proto::node_service_capability::Rpc { r#type: t as i32 },
        )),
    }
}

#[tonic::async_trait]
impl<P: NodePlatform> proto::node_server::Node for NodeService<P> {
    async fn node_stage_volume(
        &self,
        request: Request<proto::NodeStageVolumeRequest>,
    ) -> Result<Response<proto::NodeStageVolumeResponse>, Status> {
        self.stage(request.into_inner()).await?;
        Ok(Response::new(proto::NodeStageVolumeResponse {}))
    }

    async fn node_unstage_volume(
        &self,
        request: Request<proto::NodeUnstageVolumeRequest>,
    ) -> Result<Response<proto::NodeUnstageVolumeResponse>, Status> {
        self.unstage(request.into_inner()).await?;
        Ok(Response::new(proto::NodeUnstageVolumeResponse {}))
    }

    async fn node_publish_volume(
        &self,
        request: Request<proto::NodePublishVolumeRequest>,
    ) -> Result<Response<proto::NodePublishVolumeResponse>, Status> {
        self.publish(request.into_inner()).await?;
        Ok(Response::new(proto::NodePublishVolumeResponse {}))
    }

    async fn node_unpublish_volume(
        &self,
        request: Request<proto::NodeUnpublishVolumeRequest>,
    ) -> Result<Response<proto::NodeUnpublishVolumeResponse>, Status> {
        self.unpublish(request.into_inner()).await?;
        Ok(Response::new(proto::NodeUnpublishVolumeResponse {}))
    }

    async fn node_get_volume_stats(
        &self,
        request: Request<proto::NodeGetVolumeStatsRequest>,
    ) -> Result<Response<proto::NodeGetVolumeStatsResponse>, Status> {
        Ok(Response::new(self.volume_stats(request.into_inner()).await?))
    }

    async fn node_expand_volume(
        &self,
        request: Request<proto::NodeExpandVolumeRequest>,
    ) -> Result<Response<proto::NodeExpandVolumeResponse>, Status> {
        let capacity_bytes = self.expand(request.into_inner()).await?;
        Ok(Response::new(proto::NodeExpandVolumeResponse { capacity_bytes }))
    }

    async fn node_get_capabilities(
        &self,
        _request: Request<proto::NodeGetCapabilitiesRequest>,
    ) -> Result<Response<proto::NodeGetCapabilitiesResponse>, Status> {
        let mut caps = vec![
            node_cap(NodeCap::StageUnstageVolume),
            node_cap(NodeCap::ExpandVolume),
            node_cap(NodeCap::GetVolumeStats),
            node_cap(NodeCap::VolumeCondition),
        ];
        if self.config.policy.single_node_multi_writer() {
            caps.push(node_cap(NodeCap::SingleNodeMultiWriter));
        }
        Ok(Response::new(proto::NodeGetCapabilitiesResponse { capabilities: caps }))
    }

    async fn node_get_info(
        &self,
        _request: Request<proto::NodeGetInfoRequest>,
    ) -> Result<Response<proto::NodeGetInfoResponse>, Status> {
        let max = self.platform.max_volumes_per_node().await?;
        let segments = self.platform.accessible_topology();
        Ok(Response::new(proto::NodeGetInfoResponse {
            node_id: self.platform.node_id(),
            max_volumes_per_node: max.max(0),
            accessible_topology: (!segments.is_empty()).then_some(proto::Topology { segments }),
        }))
    }
}
