//! The original article's demo on real block devices: the emulator backs attached disks with
//! loop devices and shows them per server under `<dir>/<server>/disk/by-path/...-scsi-0:0:N:0`.
//!
//! CreateVolume -> ControllerPublish to node1 -> NodeStage/Publish (real mkfs + mount) -> write
//! a file -> NodeUnpublish/Unstage -> ControllerUnpublish -> ControllerPublish to node2 (same
//! zone) -> NodeStage/Publish there -> read the file back. Needs root, losetup and mkfs; says why
//! it skips otherwise.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use csi_core::identity::{AlwaysReady, IdentityService};
use csi_core::metrics::CsiMetrics;
use csi_core::node::scsi::ScsiLocator;
use csi_core::node::{NodeConfig, NodeService};
use csi_core::proto::node_client::NodeClient;
use csi_core::proto::{self as csi};
use csi_core::server::CsiServer;
use nifcloud_csi::node::NifcloudNode;
use nifcloud_emulator::{BlockDeviceConfig, Emulator, EmulatorConfig};
use tonic::transport::Channel;

/// One NIFCLOUD "GB": a GiB.
const GB: i64 = 1 << 30;

fn skip_reason() -> Option<String> {
    if let Some(r) = nifcloud_emulator::blockdev::unsupported_reason() {
        return Some(r);
    }
    for tool in ["mkfs.ext4", "blkid", "mount", "umount"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

struct NodePlugin {
    client: NodeClient<Channel>,
    _dir: tempfile::TempDir,
    stop: tokio::sync::oneshot::Sender<()>,
}

async fn node_plugin(emu: &Emulator, devs: &std::path::Path, fake_sys: &std::path::Path, name: &str) -> NodePlugin {
    // The locator sees this server's by-path view; its sysfs root is an empty tree so no real
    // SCSI host of the test machine is ever rescanned.
    let locator = ScsiLocator::with_roots(fake_sys, devs.join(name), Duration::from_secs(10))
        .with_poll_interval(Duration::from_millis(20));
    let platform = NifcloudNode::new(name.into(), "east-11".into(), locator, Some(sdk_client(emu)));
    let node = NodeService::new(Arc::new(platform), NodeConfig::default());
    let identity = IdentityService::new(nifcloud_csi::DRIVER_NAME, "test", Arc::new(AlwaysReady)).unwrap();
    let server = CsiServer::new(identity, Arc::new(CsiMetrics::new())).with_node(node);
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("unix://{}/node.sock", dir.path().display());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let ep = endpoint.clone();
    tokio::spawn(async move {
        let _ = server
            .serve(&ep, async {
                let _ = rx.await;
            })
            .await;
    });
    let mut channel = None;
    for _ in 0..100 {
        if let Ok(c) = csi_core::server::connect(&endpoint).await {
            channel = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    NodePlugin {
        client: NodeClient::new(channel.expect("node socket")),
        _dir: dir,
        stop: tx,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_on_one_node_read_on_another() {
    if let Some(reason) = skip_reason() {
        eprintln!("skipping node end-to-end test: {reason}");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let devs = work.path().join("servers");
    let fake_sys = work.path().join("sys");
    std::fs::create_dir_all(fake_sys.join("class/scsi_host")).unwrap();
    let mut cfg = EmulatorConfig::sample();
    cfg.block_devices = Some(BlockDeviceConfig {
        dir: devs.clone(),
        backing_dir: work.path().join("backing"),
    });
    let emu = Emulator::builder().config(cfg).start().await.unwrap();
    let mut ctl = serve(controller(&emu)).await;

    let vol = ctl
        .client
        .create_volume(create_req("pvc-demo", 10 * (1 << 30)))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(vol.capacity_bytes, 100 * GB);
    let id = vol.volume_id.clone();

    let stage_dir = work.path().join("staging");
    let target_dir = work.path().join("target");
    let stage_req = |ctx: &std::collections::HashMap<String, String>| csi::NodeStageVolumeRequest {
        volume_id: id.clone(),
        publish_context: ctx.clone(),
        staging_target_path: stage_dir.display().to_string(),
        volume_capability: Some(cap()),
        ..Default::default()
    };
    let publish = |ctx: &std::collections::HashMap<String, String>| csi::NodePublishVolumeRequest {
        volume_id: id.clone(),
        publish_context: ctx.clone(),
        staging_target_path: stage_dir.display().to_string(),
        target_path: target_dir.display().to_string(),
        volume_capability: Some(cap()),
        ..Default::default()
    };
    let unpublish = csi::NodeUnpublishVolumeRequest {
        volume_id: id.clone(),
        target_path: target_dir.display().to_string(),
    };
    let unstage = csi::NodeUnstageVolumeRequest {
        volume_id: id.clone(),
        staging_target_path: stage_dir.display().to_string(),
    };

    // node1: limits and topology, then the write.
    let mut n1 = node_plugin(&emu, &devs, &fake_sys, "node1").await;
    let info = n1
        .client
        .node_get_info(csi::NodeGetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.node_id, "node1");
    assert_eq!(info.max_volumes_per_node, 14);
    let seg = info.accessible_topology.unwrap().segments;
    assert_eq!(seg[nifcloud_csi::topology::ZONE_KEY], "east-11");
    assert_eq!(seg[nifcloud_csi::topology::DRIVER_ZONE_KEY], "east-11");

    let ctx = ctl
        .client
        .controller_publish_volume(publish_req(&id, "node1"))
        .await
        .unwrap()
        .into_inner()
        .publish_context;
    let t = Instant::now();
    n1.client.node_stage_volume(stage_req(&ctx)).await.unwrap();
    let stage_ms = t.elapsed().as_millis();
    n1.client.node_stage_volume(stage_req(&ctx)).await.unwrap();
    let t = Instant::now();
    n1.client.node_publish_volume(publish(&ctx)).await.unwrap();
    let publish_ms = t.elapsed().as_millis();
    n1.client.node_publish_volume(publish(&ctx)).await.unwrap();
    std::fs::write(target_dir.join("hello.txt"), b"written on node1\n").unwrap();
    n1.client.node_unpublish_volume(unpublish.clone()).await.unwrap();
    n1.client.node_unpublish_volume(unpublish.clone()).await.unwrap();
    n1.client.node_unstage_volume(unstage.clone()).await.unwrap();
    n1.client.node_unstage_volume(unstage.clone()).await.unwrap();
    ctl.client
        .controller_unpublish_volume(csi::ControllerUnpublishVolumeRequest {
            volume_id: id.clone(),
            node_id: "node1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let _ = n1.stop.send(());
    eprintln!("node1: stage (mkfs + mount) {stage_ms} ms, publish {publish_ms} ms");

    // node2 (same zone): the data is there; the disk is not formatted again.
    let mut n2 = node_plugin(&emu, &devs, &fake_sys, "node2").await;
    let ctx = ctl
        .client
        .controller_publish_volume(publish_req(&id, "node2"))
        .await
        .unwrap()
        .into_inner()
        .publish_context;
    n2.client.node_stage_volume(stage_req(&ctx)).await.unwrap();
    n2.client.node_publish_volume(publish(&ctx)).await.unwrap();
    let text = std::fs::read_to_string(target_dir.join("hello.txt")).unwrap();
    assert_eq!(text, "written on node1\n");

    n2.client.node_unpublish_volume(unpublish).await.unwrap();
    n2.client.node_unstage_volume(unstage).await.unwrap();
    ctl.client
        .controller_unpublish_volume(csi::ControllerUnpublishVolumeRequest {
            volume_id: id.clone(),
            node_id: "node2".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let _ = n2.stop.send(());
    ctl.client
        .delete_volume(csi::DeleteVolumeRequest {
            volume_id: id,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(volumes(&emu).is_empty());
    ctl.stop().await;
    emu.shutdown().await;
}

#[tokio::test]
async fn volume_limit_subtracts_disks_this_driver_does_not_manage() {
    let emu = emulator().await;
    let client = sdk_client(&emu);
    for i in 0..3 {
        client
            .create_volume(
                nifcloud_sdk::types::CreateVolumeRequest::default()
                    .size(100)
                    .instance_id("node3")
                    .description(format!("someone else's disk {i}")),
            )
            .await
            .unwrap();
    }
    // A disk of this driver attached to node3 does not lower the limit.
    let ctl = controller(&emu);
    let mut s = serve(ctl).await;
    let v = s
        .client
        .create_volume(create_req("pvc-mine", GB))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    s.client
        .controller_publish_volume(publish_req(&v.volume_id, "node3"))
        .await
        .unwrap();
    let units = nifcloud_csi::node::foreign_units_from_api(&client, "node3")
        .await
        .unwrap();
    assert_eq!(units.len(), 3, "{units:?}");
    assert_eq!(nifcloud_csi::node::volume_limit(&units), 11);
    let empty = tempfile::tempdir().unwrap();
    let locator = ScsiLocator::with_roots(empty.path(), empty.path(), Duration::from_secs(1));
    let platform = NifcloudNode::new("node3".into(), "east-11".into(), locator, Some(client));
    let limit = csi_core::node::NodePlatform::max_volumes_per_node(&platform)
        .await
        .unwrap();
    assert_eq!(limit, 11);
    s.stop().await;
}

/// Online expansion on a real filesystem: NIFCLOUD grows the disk by 100 GB steps while it is
/// attached, the node grows xfs (ext4 online growth needs CAP_SYS_RESOURCE, which this sandbox
/// lacks; csi-core's own tests cover ext4 where it is available).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_expansion_grows_the_filesystem() {
    if let Some(reason) = skip_reason() {
        eprintln!("skipping node expansion test: {reason}");
        return;
    }
    for tool in ["mkfs.xfs", "xfs_growfs"] {
        if !std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file())) {
            eprintln!("skipping node expansion test: {tool} is not installed");
            return;
        }
    }
    let work = tempfile::tempdir().unwrap();
    let devs = work.path().join("servers");
    let fake_sys = work.path().join("sys");
    std::fs::create_dir_all(fake_sys.join("class/scsi_host")).unwrap();
    let mut cfg = EmulatorConfig::sample();
    cfg.block_devices = Some(BlockDeviceConfig {
        dir: devs.clone(),
        backing_dir: work.path().join("backing"),
    });
    let emu = Emulator::builder().config(cfg).start().await.unwrap();
    let mut ctl = serve(controller(&emu)).await;
    let xfs = csi_core::capability::mount_capability(
        "xfs",
        csi_core::proto::volume_capability::access_mode::Mode::SingleNodeWriter,
    );
    let mut req = create_req("pvc-grow", 100 * GB);
    req.volume_capabilities = vec![xfs.clone()];
    let id = ctl
        .client
        .create_volume(req)
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap()
        .volume_id;
    let mut n = node_plugin(&emu, &devs, &fake_sys, "node3").await;
    let mut publish = publish_req(&id, "node3");
    publish.volume_capability = Some(xfs.clone());
    let ctx = ctl
        .client
        .controller_publish_volume(publish)
        .await
        .unwrap()
        .into_inner()
        .publish_context;
    let (stage_dir, target_dir) = (work.path().join("staging"), work.path().join("target"));
    n.client
        .node_stage_volume(csi::NodeStageVolumeRequest {
            volume_id: id.clone(),
            publish_context: ctx.clone(),
            staging_target_path: stage_dir.display().to_string(),
            volume_capability: Some(xfs.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    n.client
        .node_publish_volume(csi::NodePublishVolumeRequest {
            volume_id: id.clone(),
            publish_context: ctx,
            staging_target_path: stage_dir.display().to_string(),
            target_path: target_dir.display().to_string(),
            volume_capability: Some(xfs.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    std::fs::write(target_dir.join("keep.txt"), b"before growth\n").unwrap();
    let stats_req = csi::NodeGetVolumeStatsRequest {
        volume_id: id.clone(),
        volume_path: target_dir.display().to_string(),
        staging_target_path: stage_dir.display().to_string(),
    };
    let total = |r: csi::NodeGetVolumeStatsResponse| {
        r.usage
            .iter()
            .find(|u| u.unit == csi::volume_usage::Unit::Bytes as i32)
            .map(|u| u.total)
            .unwrap_or(0)
    };
    let before = total(
        n.client
            .node_get_volume_stats(stats_req.clone())
            .await
            .unwrap()
            .into_inner(),
    );
    let range = csi::CapacityRange {
        required_bytes: 300 * GB,
        limit_bytes: 0,
    };
    let grown = ctl
        .client
        .controller_expand_volume(csi::ControllerExpandVolumeRequest {
            volume_id: id.clone(),
            capacity_range: Some(range),
            volume_capability: Some(xfs.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((grown.capacity_bytes, grown.node_expansion_required), (300 * GB, true));
    assert_eq!(volumes_named(&emu, "pvc-grow")[0].size_gb, 300);
    let t = Instant::now();
    let node_grown = n
        .client
        .node_expand_volume(csi::NodeExpandVolumeRequest {
            volume_id: id.clone(),
            volume_path: target_dir.display().to_string(),
            capacity_range: Some(range),
            staging_target_path: stage_dir.display().to_string(),
            volume_capability: Some(xfs),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    eprintln!("node3: NodeExpandVolume (xfs_growfs) {} ms", t.elapsed().as_millis());
    assert!(node_grown.capacity_bytes >= 300 * GB, "{node_grown:?}");
    let after = total(n.client.node_get_volume_stats(stats_req).await.unwrap().into_inner());
    assert!(after > before + 150 * GB, "filesystem grew: {before} -> {after}");
    assert_eq!(
        std::fs::read_to_string(target_dir.join("keep.txt")).unwrap(),
        "before growth\n"
    );
    n.client
        .node_unpublish_volume(csi::NodeUnpublishVolumeRequest {
            volume_id: id.clone(),
            target_path: target_dir.display().to_string(),
        })
        .await
        .unwrap();
    n.client
        .node_unstage_volume(csi::NodeUnstageVolumeRequest {
            volume_id: id.clone(),
            staging_target_path: stage_dir.display().to_string(),
        })
        .await
        .unwrap();
    let _ = n.stop.send(());
    ctl.client
        .controller_unpublish_volume(csi::ControllerUnpublishVolumeRequest {
            volume_id: id.clone(),
            node_id: "node3".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    ctl.client
        .delete_volume(csi::DeleteVolumeRequest {
            volume_id: id,
            ..Default::default()
        })
        .await
        .unwrap();
    ctl.stop().await;
    emu.shutdown().await;
}

#[tokio::test]
async fn node_finds_its_server_in_one_call_or_by_name_without_case() {
    let emu = emulator().await;
    let client = sdk_client(&emu);
    emu.reset_calls();
    let found = nifcloud_csi::node::discover_server(&client, "node5").await.unwrap();
    assert_eq!(found, ("node5".to_string(), "east-12".to_string()));
    assert_eq!(
        emu.call_count("DescribeInstances"),
        1,
        "the exact name: one filtered call"
    );
    // Kubernetes lower-cases node names; a server named otherwise in case is found by the listing.
    let found = nifcloud_csi::node::discover_server(&client, "NODE2").await.unwrap();
    assert_eq!(found, ("node2".to_string(), "east-11".to_string()));
    let err = nifcloud_csi::node::discover_server(&client, "ghost").await.unwrap_err();
    assert!(err.to_string().contains("no server of that name"), "{err}");
    emu.shutdown().await;
}
