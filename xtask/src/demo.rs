//! `cargo xtask demo`: the README's first command.
//!
//! Replays the 2019 article locally, with no NIFCLOUD account and no cluster, against the embedded emulator:
//! a 10Gi claim becomes a 100 GB disk in a zone, is attached to node A, formatted and mounted (on loop devices when
//! run as root), a file is written, the volume moves to node B of the same zone and the file is read back. Then the
//! CCM's side: the article's nginx `type: LoadBalancer` Service gets a NIFCLOUD L4 load balancer with the zone's
//! nodes behind it. Everything goes through the real code paths: the CSI driver served on unix sockets and called
//! over gRPC, the CCM provider's load-balancer logic, the SDK, and the emulator's wire protocol.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use csi_core::capability::mount_capability;
use csi_core::proto::controller_client::ControllerClient;
use csi_core::proto::node_client::NodeClient;
use csi_core::proto::volume_capability::access_mode::Mode;
use csi_core::proto::{self as csi};
use nifcloud_csi::driver::{DriverOptions, Mode as DriverMode};
use nifcloud_csi::plan::Membership;
use nifcloud_emulator::{BlockDeviceConfig, Emulator, EmulatorConfig};
use nifcloud_sdk::types::DescribeVolumesRequest;
use nifcloud_sdk::{Client, Config, Credentials};
use tokio::sync::watch;
use tonic::transport::Channel;

mod cluster;
mod lb;

/// Options of `cargo xtask demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Skip the block-device part even when running as root (controller side only).
    #[arg(long)]
    pub no_block_devices: bool,
    /// Keep the work directory (sockets, mounts are always cleaned up) for inspection.
    #[arg(long)]
    pub keep: bool,
}

/// Runs the demo.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(demo(args))
}

/// Prints one numbered step of the walk-through.
fn step(n: &mut u32, text: &str) {
    *n += 1;
    println!("\n[{n}] {text}");
}

fn say(text: impl AsRef<str>) {
    println!("    {}", text.as_ref());
}

const ZONE: &str = "east-11";
const NODE_A: &str = "node1";
const NODE_B: &str = "node2";
const GIB: i64 = 1 << 30;

async fn demo(args: &Args) -> anyhow::Result<()> {
    let started = Instant::now();
    let work = tempfile::Builder::new()
        .prefix("nifcloud-demo-")
        .tempdir()
        .context("work directory")?;
    let mut n = 0;

    step(
        &mut n,
        "Starting the embedded NIFCLOUD emulator (jp-east-1; signed API on 127.0.0.1)",
    );
    let block_reason = if args.no_block_devices {
        Some("--no-block-devices was given".to_owned())
    } else {
        nifcloud_emulator::blockdev::unsupported_reason().or_else(|| missing_tool("mkfs.ext4"))
    };
    let mut config = EmulatorConfig::sample();
    if block_reason.is_none() {
        config.block_devices = Some(BlockDeviceConfig {
            dir: work.path().join("vm-dev"),
            backing_dir: work.path().join("disks"),
        });
    }
    let emu = Emulator::builder()
        .config(config)
        .start()
        .await
        .context("start the emulator")?;
    let client = sdk_client(&emu)?;
    say(format!("endpoint {}", emu.endpoint()));
    let servers = emu.with_state(|st| {
        let mut v: Vec<(String, String)> = st
            .instances
            .values()
            .map(|i| (i.name.clone(), i.zone.clone()))
            .collect();
        v.sort();
        v
    });
    say(format!(
        "servers: {}",
        servers
            .iter()
            .map(|(n, z)| format!("{n} ({z})"))
            .collect::<Vec<_>>()
            .join(", ")
    ));

    let result = async {
        storage(&mut n, &emu, &client, work.path(), block_reason.as_deref()).await?;
        say_calls("API calls of the storage part", &emu);
        emu.reset_calls();
        let on_cluster = std::env::var_os("KUBECONFIG").is_some() && cluster::nginx_on_cluster(&mut n).await?;
        if on_cluster {
            Ok(())
        } else {
            lb::load_balancer(&mut n, &emu, &client).await
        }
    }
    .await;

    // After a failure mid-way, nothing may stay mounted (a mount would keep its loop device alive).
    unmount_below(work.path());
    emu.shutdown().await;
    if args.keep {
        let kept = work.keep();
        println!("\nwork directory kept at {}", kept.display());
    }
    result?;
    println!("demo finished in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Unmounts every mount point below `dir`, deepest first (best effort: the demo's own temporary mounts only).
fn unmount_below(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let status = std::process::Command::new("umount").arg(point).status();
        eprintln!("cleanup: umount {point}: {status:?}");
    }
}

/// Prints the emulator's per-action call counts since the last reset.
fn say_calls(what: &str, emu: &Emulator) {
    let calls = emu.calls();
    say(format!(
        "{what}: {}",
        calls
            .iter()
            .map(|(a, c)| format!("{a}={c}"))
            .collect::<Vec<_>>()
            .join(" ")
    ));
}

fn missing_tool(tool: &str) -> Option<String> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).exists()))
        .unwrap_or(false);
    (!found).then(|| format!("{tool} is not installed"))
}

fn sdk_client(emu: &Emulator) -> anyhow::Result<Client> {
    let (access_key, secret_key) = emu.credentials();
    let config = Config::builder()
        .endpoint(emu.endpoint())
        .region_name(&emu.region())
        .credentials(Credentials::new(access_key, secret_key))
        .build()?;
    Ok(Client::new(config)?)
}

/// A driver process served on a unix socket in `dir`, stopped when dropped.
struct Plugin {
    channel: Channel,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), nifcloud_csi::driver::DriverError>>,
}

impl Plugin {
    async fn start(opts: DriverOptions, client: Client) -> anyhow::Result<Plugin> {
        let endpoint = opts.endpoint.clone();
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(nifcloud_csi::driver::run(opts, Some(client), async move {
            let _ = stopped.changed().await;
        }));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if task.is_finished() {
                let outcome = task.await.context("driver task")?;
                bail!("the CSI driver at {endpoint} stopped at start: {outcome:?}");
            }
            if let Ok(channel) = csi_core::server::connect(&endpoint).await {
                return Ok(Plugin { channel, stop, task });
            }
            if Instant::now() > deadline {
                bail!("the CSI driver did not listen on {endpoint}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn driver_options(mode: DriverMode, socket: &Path) -> DriverOptions {
    DriverOptions {
        mode,
        endpoint: format!("unix://{}", socket.display()),
        membership: Membership::patterns(["node*"]),
        poll_interval: Duration::from_millis(100),
        wait_timeout: Duration::from_secs(60),
        device_timeout: Duration::from_secs(20),
        server_cache_ttl: Duration::from_secs(2),
        ..DriverOptions::default()
    }
}

fn node_options(work: &Path, node: &str) -> DriverOptions {
    DriverOptions {
        node_id: Some(node.into()),
        zone: Some(ZONE.into()),
        // The emulator exposes each server's disks as /dev/disk/by-path links to loop devices; device facts come
        // from the real /sys, where those loop devices live.
        dev_root: work.join("vm-dev").join(node),
        ..driver_options(DriverMode::Node, &work.join(format!("{node}.sock")))
    }
}

/// The capability Kubernetes sends for the article's ReadWriteOnce claim to this driver (it advertises
/// SINGLE_NODE_MULTI_WRITER, so ReadWriteOnce arrives as that mode).
fn capability() -> csi::VolumeCapability {
    let mode = nifcloud_csi::controller::capability_policy()
        .co_mode_for("ReadWriteOnce")
        .unwrap_or(Mode::SingleNodeWriter);
    mount_capability("ext4", mode)
}

async fn storage(
    n: &mut u32,
    emu: &Emulator,
    client: &Client,
    work: &Path,
    block_reason: Option<&str>,
) -> anyhow::Result<()> {
    step(
        n,
        "Starting the CSI driver's controller (additional-storage.csi.nifcloud.com) on a unix socket",
    );
    let controller = Plugin::start(
        driver_options(DriverMode::Controller, &work.join("controller.sock")),
        client.clone(),
    )
    .await?;
    let mut ctl = ControllerClient::new(controller.channel.clone());

    step(
        n,
        "PVC `nginx-data`, 10Gi, StorageClass type standard-flash-a, zone east-11 -> CreateVolume",
    );
    let pv_name = format!("pvc-demo-{}", std::process::id());
    let created = ctl
        .create_volume(csi::CreateVolumeRequest {
            name: pv_name.clone(),
            capacity_range: Some(csi::CapacityRange {
                required_bytes: 10 * GIB,
                limit_bytes: 0,
            }),
            volume_capabilities: vec![capability()],
            parameters: [("type".to_owned(), "standard-flash-a".to_owned())].into(),
            accessibility_requirements: Some(csi::TopologyRequirement {
                requisite: vec![zone_topology()],
                preferred: vec![zone_topology()],
            }),
            ..Default::default()
        })
        .await
        .context("CreateVolume")?
        .into_inner();
    let volume = created.volume.context("CreateVolume returned no volume")?;
    let disk = describe(client, &volume.volume_id).await?;
    say(format!(
        "volume {} : {} GB {} in {} ({} bytes reported to Kubernetes: {}Gi, a NIFCLOUD GB being a GiB)",
        volume.volume_id,
        disk.size,
        disk.disk_type,
        disk.zone,
        volume.capacity_bytes,
        volume.capacity_bytes >> 30
    ));
    say(format!(
        "topology: {:?}",
        volume
            .accessible_topology
            .iter()
            .map(|t| &t.segments)
            .collect::<Vec<_>>()
    ));

    let result = match block_reason {
        None => move_between_nodes(n, &mut ctl, client, work, &volume.volume_id).await,
        Some(reason) => {
            step(n, "Attach to node A and back (formatting and mounting skipped)");
            say(format!(
                "block devices unavailable: {reason}; run as root with losetup and mkfs.ext4 for the full demo"
            ));
            publish(&mut ctl, &volume.volume_id, NODE_A).await?;
            let disk = describe(client, &volume.volume_id).await?;
            say(format!("attached to {} as {}", NODE_A, disk.device));
            unpublish(&mut ctl, &volume.volume_id, NODE_A).await
        }
    };
    let deleted = async {
        step(n, "PVC deleted -> DeleteVolume");
        ctl.delete_volume(csi::DeleteVolumeRequest {
            volume_id: volume.volume_id.clone(),
            ..Default::default()
        })
        .await
        .context("DeleteVolume")?;
        say(format!(
            "disks left in the account: {}",
            emu.with_state(|st| st.volumes.len())
        ));
        anyhow::Ok(())
    }
    .await;
    controller.stop().await;
    result.and(deleted)
}

fn zone_topology() -> csi::Topology {
    csi::Topology {
        segments: [("topology.kubernetes.io/zone".to_owned(), ZONE.to_owned())].into(),
    }
}

/// What DescribeVolumes says about one disk.
struct DiskFacts {
    size: String,
    disk_type: String,
    zone: String,
    device: String,
}

async fn describe(client: &Client, volume_id: &str) -> anyhow::Result<DiskFacts> {
    let out = client
        .describe_volumes(DescribeVolumesRequest {
            volume_id: vec![volume_id.into()],
        })
        .await?;
    let v = out.volume_set.first().context("DescribeVolumes returned nothing")?;
    Ok(DiskFacts {
        size: v.size.as_deref().unwrap_or_default().to_owned(),
        disk_type: v.disk_type.as_deref().unwrap_or_default().to_owned(),
        zone: v.availability_zone.as_deref().unwrap_or_default().to_owned(),
        device: v
            .attachment_set
            .first()
            .and_then(|a| a.device.as_deref().map(String::from))
            .unwrap_or_default(),
    })
}

async fn publish(
    ctl: &mut ControllerClient<Channel>,
    volume_id: &str,
    node: &str,
) -> anyhow::Result<csi::ControllerPublishVolumeResponse> {
    Ok(ctl
        .controller_publish_volume(csi::ControllerPublishVolumeRequest {
            volume_id: volume_id.into(),
            node_id: node.into(),
            volume_capability: Some(capability()),
            ..Default::default()
        })
        .await
        .with_context(|| format!("ControllerPublishVolume to {node}"))?
        .into_inner())
}

async fn unpublish(ctl: &mut ControllerClient<Channel>, volume_id: &str, node: &str) -> anyhow::Result<()> {
    ctl.controller_unpublish_volume(csi::ControllerUnpublishVolumeRequest {
        volume_id: volume_id.into(),
        node_id: node.into(),
        ..Default::default()
    })
    .await
    .with_context(|| format!("ControllerUnpublishVolume from {node}"))?;
    Ok(())
}

/// The kubelet's paths for one pod on one node.
struct PodPaths {
    staging: PathBuf,
    target: PathBuf,
}

impl PodPaths {
    fn new(work: &Path, node: &str, volume_id: &str) -> anyhow::Result<PodPaths> {
        let kubelet = work.join(format!("kubelet-{node}"));
        let staging = kubelet
            .join("plugins/kubernetes.io/csi/additional-storage.csi.nifcloud.com")
            .join(volume_id)
            .join("globalmount");
        let target = kubelet.join("pods/nginx/volumes/kubernetes.io~csi/nginx-data/mount");
        std::fs::create_dir_all(&staging)?;
        std::fs::create_dir_all(target.parent().context("target has a parent")?)?;
        Ok(PodPaths { staging, target })
    }
}

/// ControllerPublish + NodeStage + NodePublish on `node`; returns the pod's mount path.
async fn mount_on(
    ctl: &mut ControllerClient<Channel>,
    node: &mut NodeClient<Channel>,
    paths: &PodPaths,
    volume_id: &str,
    node_name: &str,
) -> anyhow::Result<()> {
    let published = publish(ctl, volume_id, node_name).await?;
    say(format!(
        "attached to {node_name}: publish context {:?}",
        published.publish_context
    ));
    node.node_stage_volume(csi::NodeStageVolumeRequest {
        volume_id: volume_id.into(),
        publish_context: published.publish_context.clone(),
        staging_target_path: paths.staging.display().to_string(),
        volume_capability: Some(capability()),
        ..Default::default()
    })
    .await
    .context("NodeStageVolume")?;
    say(format!(
        "staged at {} (formatted only if blank)",
        paths.staging.display()
    ));
    node.node_publish_volume(csi::NodePublishVolumeRequest {
        volume_id: volume_id.into(),
        publish_context: published.publish_context,
        staging_target_path: paths.staging.display().to_string(),
        target_path: paths.target.display().to_string(),
        volume_capability: Some(capability()),
        readonly: false,
        ..Default::default()
    })
    .await
    .context("NodePublishVolume")?;
    say(format!("mounted into the pod at {}", paths.target.display()));
    Ok(())
}

/// NodeUnpublish + NodeUnstage + ControllerUnpublish on `node`.
async fn unmount_from(
    ctl: &mut ControllerClient<Channel>,
    node: &mut NodeClient<Channel>,
    paths: &PodPaths,
    volume_id: &str,
    node_name: &str,
) -> anyhow::Result<()> {
    node.node_unpublish_volume(csi::NodeUnpublishVolumeRequest {
        volume_id: volume_id.into(),
        target_path: paths.target.display().to_string(),
    })
    .await
    .context("NodeUnpublishVolume")?;
    node.node_unstage_volume(csi::NodeUnstageVolumeRequest {
        volume_id: volume_id.into(),
        staging_target_path: paths.staging.display().to_string(),
    })
    .await
    .context("NodeUnstageVolume")?;
    unpublish(ctl, volume_id, node_name).await?;
    say(format!("unmounted and detached from {node_name}"));
    Ok(())
}

async fn move_between_nodes(
    n: &mut u32,
    ctl: &mut ControllerClient<Channel>,
    client: &Client,
    work: &Path,
    volume_id: &str,
) -> anyhow::Result<()> {
    step(
        n,
        "Starting the CSI node plugins of node A (node1) and node B (node2), zone east-11",
    );
    let plugin_a = Plugin::start(node_options(work, NODE_A), client.clone()).await?;
    let plugin_b = Plugin::start(node_options(work, NODE_B), client.clone()).await?;
    let mut node_a = NodeClient::new(plugin_a.channel.clone());
    let mut node_b = NodeClient::new(plugin_b.channel.clone());
    let info = node_a.node_get_info(csi::NodeGetInfoRequest {}).await?.into_inner();
    say(format!(
        "node A: id {}, max volumes {}, topology {:?}",
        info.node_id,
        info.max_volumes_per_node,
        info.accessible_topology.map(|t| t.segments)
    ));

    let result = async {
        step(
            n,
            "The nginx pod starts on node A: attach, format, mount, write index.html",
        );
        let paths_a = PodPaths::new(work, NODE_A, volume_id)?;
        mount_on(ctl, &mut node_a, &paths_a, volume_id, NODE_A).await?;
        let written = format!(
            "Hello from the article's nginx, written on {NODE_A} at {}\n",
            time_now()
        );
        std::fs::write(paths_a.target.join("index.html"), &written).context("write index.html")?;
        say(format!("wrote index.html ({} bytes)", written.len()));

        step(
            n,
            "The pod is deleted and rescheduled on node B: unmount and detach from A, attach to B",
        );
        unmount_from(ctl, &mut node_a, &paths_a, volume_id, NODE_A).await?;
        let paths_b = PodPaths::new(work, NODE_B, volume_id)?;
        mount_on(ctl, &mut node_b, &paths_b, volume_id, NODE_B).await?;
        let read = std::fs::read_to_string(paths_b.target.join("index.html")).context("read index.html on node B")?;
        if read != written {
            bail!("node B read {read:?}, node A wrote {written:?}");
        }
        say(format!("read index.html on {NODE_B}: {}", read.trim()));
        say("the data survived the pod's restart and moved with it within the zone");
        unmount_from(ctl, &mut node_b, &paths_b, volume_id, NODE_B).await
    }
    .await;
    plugin_a.stop().await;
    plugin_b.stop().await;
    result
}

fn time_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("unix time {secs}")
}
