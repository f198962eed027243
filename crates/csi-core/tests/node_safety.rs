//! Node-service safety on real loop devices: never reformatting data, refusing unsafe
//! unstage, raw block volumes, in-flight locks, argument validation.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::requests::*;
use common::*;
use csi_core::capability::{block_capability, mount_capability};
use csi_core::proto::volume_capability::access_mode::Mode;
use csi_core::proto::volume_usage::Unit;
use csi_core::proto::*;
use tonic::Code;

#[tokio::test]
async fn device_with_data_is_never_reformatted() {
    if should_skip("device_with_data_is_never_reformatted") {
        return;
    }
    let tmp = TestDir::new();
    let dir = tmp.path();
    let tree = FakeScsiTree::new(dir);
    let mut n = NodeHarness::start(dir, "node-d", &tree).await;

    // 1. An ext4 disk that already holds a file: staged as ext4, the file survives.
    let ext4 = LoopDevice::new(dir, "ext4.img", 300);
    sh("mkfs.ext4", &["-q", ext4.device.to_str().unwrap()]);
    let m = dir.join("manual");
    std::fs::create_dir_all(&m).unwrap();
    sh("mount", &[ext4.device.to_str().unwrap(), m.to_str().unwrap()]);
    std::fs::write(m.join("precious"), b"keep").unwrap();
    sh("umount", &[m.to_str().unwrap()]);
    let uuid_before = sh(
        "blkid",
        &["-p", "-o", "value", "-s", "UUID", ext4.device.to_str().unwrap()],
    );
    tree.attach(2, &ext4);
    let staging = dir.join("s-ext4");
    let target = dir.join("t-ext4");
    let cap = mount_capability("ext4", Mode::SingleNodeWriter);
    n.client
        .node_stage_volume(stage_req("vol-e", 2, &staging, cap.clone()))
        .await
        .unwrap();
    n.client
        .node_publish_volume(publish_req("vol-e", 2, &staging, &target, cap.clone(), false))
        .await
        .unwrap();
    assert_eq!(std::fs::read(target.join("precious")).unwrap(), b"keep");
    n.client
        .node_unpublish_volume(unpublish_req("vol-e", &target))
        .await
        .unwrap();
    n.client
        .node_unstage_volume(unstage_req("vol-e", &staging))
        .await
        .unwrap();
    assert_eq!(
        sh(
            "blkid",
            &["-p", "-o", "value", "-s", "UUID", ext4.device.to_str().unwrap()]
        ),
        uuid_before
    );

    // 2. An xfs disk requested as ext4: refused, untouched.
    let xfs = LoopDevice::new(dir, "xfs.img", 400);
    sh("mkfs.xfs", &["-q", xfs.device.to_str().unwrap()]);
    let xfs_uuid = sh(
        "blkid",
        &["-p", "-o", "value", "-s", "UUID", xfs.device.to_str().unwrap()],
    );
    tree.attach(4, &xfs);
    let err = n
        .client
        .node_stage_volume(stage_req("vol-f", 4, &dir.join("s-xfs"), cap.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("xfs") && err.message().contains("ext4"),
        "{}",
        err.message()
    );
    assert_eq!(
        sh(
            "blkid",
            &["-p", "-o", "value", "-s", "UUID", xfs.device.to_str().unwrap()]
        ),
        xfs_uuid
    );
    assert!(!is_mounted(&dir.join("s-xfs")));

    // 3. A partitioned disk: refused, partition table intact.
    let parted = LoopDevice::new(dir, "parted.img", 64);
    write_dos_partition_table(&parted.backing);
    tree.attach(6, &parted);
    let err = n
        .client
        .node_stage_volume(stage_req("vol-p", 6, &dir.join("s-pt"), cap.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("partition"), "{}", err.message());
    assert_eq!(
        sh(
            "blkid",
            &["-p", "-o", "value", "-s", "PTTYPE", parted.device.to_str().unwrap()]
        ),
        "dos"
    );
    n.stop().await;
}

fn write_dos_partition_table(backing: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    let mut mbr = [0u8; 512];
    // one Linux partition starting at sector 2048, 65536 sectors
    mbr[446] = 0x00;
    mbr[450] = 0x83;
    mbr[454..458].copy_from_slice(&2048u32.to_le_bytes());
    mbr[458..462].copy_from_slice(&65536u32.to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    let mut f = std::fs::OpenOptions::new().write(true).open(backing).unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(&mbr).unwrap();
    f.sync_all().unwrap();
}

#[tokio::test]
async fn block_volume_stage_publish_and_io() {
    if should_skip("block_volume_stage_publish_and_io") {
        return;
    }
    let tmp = TestDir::new();
    let dir = tmp.path();
    let tree = FakeScsiTree::new(dir);
    let disk = LoopDevice::new(dir, "disk.img", 64);
    tree.attach(9, &disk);
    let mut n = NodeHarness::start(dir, "node-blk", &tree).await;
    let cap = block_capability(Mode::SingleNodeWriter);
    let staging = dir.join("staging/pv-b");
    let target: PathBuf = dir.join("pods/p/volumeDevices/pv-b");
    for _ in 0..2 {
        n.client
            .node_stage_volume(stage_req("vol-b", 9, &staging, cap.clone()))
            .await
            .unwrap();
    }
    assert_eq!(blkid_type(&disk.device), "", "block staging must not format");
    for _ in 0..2 {
        n.client
            .node_publish_volume(publish_req("vol-b", 9, &staging, &target, cap.clone(), false))
            .await
            .unwrap();
    }
    {
        use std::io::{Read, Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&target)
            .unwrap();
        f.seek(SeekFrom::Start(1 << 20)).unwrap();
        f.write_all(b"raw block payload").unwrap();
        f.sync_all().unwrap();
        let mut d = std::fs::File::open(&disk.device).unwrap();
        d.seek(SeekFrom::Start(1 << 20)).unwrap();
        let mut buf = [0u8; 17];
        d.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"raw block payload");
    }
    let s = n
        .client
        .node_get_volume_stats(stats_req("vol-b", &target))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(usage(&s, Unit::Bytes).total, 64 << 20);
    disk.grow(128);
    let grown = n
        .client
        .node_expand_volume(NodeExpandVolumeRequest {
            volume_id: "vol-b".into(),
            volume_path: target.display().to_string(),
            volume_capability: Some(cap.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(grown.capacity_bytes, 128 << 20);
    for _ in 0..2 {
        n.client
            .node_unpublish_volume(unpublish_req("vol-b", &target))
            .await
            .unwrap();
    }
    assert!(!target.exists());
    for _ in 0..2 {
        n.client
            .node_unstage_volume(unstage_req("vol-b", &staging))
            .await
            .unwrap();
    }
    assert_eq!(tree.delete_written(&disk), "1");
    assert!(!staging.join(csi_core::node::BLOCK_DEVICE_FILE).exists());
    n.stop().await;
}

#[tokio::test]
async fn unstage_refuses_while_still_published_and_wrong_device_conflicts() {
    if should_skip("unstage_refuses_while_still_published") {
        return;
    }
    let tmp = TestDir::new();
    let dir = tmp.path();
    let tree = FakeScsiTree::new(dir);
    let d1 = LoopDevice::new(dir, "d1.img", 300);
    let d2 = LoopDevice::new(dir, "d2.img", 300);
    tree.attach(1, &d1);
    tree.attach(2, &d2);
    let mut n = NodeHarness::start(dir, "node-c", &tree).await;
    let cap = mount_capability("ext4", Mode::SingleNodeWriter);
    let staging = dir.join("staging");
    let target = dir.join("target");
    n.client
        .node_stage_volume(stage_req("vol-1", 1, &staging, cap.clone()))
        .await
        .unwrap();
    let err = n
        .client
        .node_stage_volume(stage_req("vol-1", 2, &staging, cap.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    n.client
        .node_publish_volume(publish_req("vol-1", 1, &staging, &target, cap.clone(), false))
        .await
        .unwrap();
    let err = n
        .client
        .node_unstage_volume(unstage_req("vol-1", &staging))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(is_mounted(&staging) && is_mounted(&target));
    assert_eq!(tree.delete_written(&d1), "", "device not deleted while in use");
    n.client
        .node_unpublish_volume(unpublish_req("vol-1", &target))
        .await
        .unwrap();
    n.client
        .node_unstage_volume(unstage_req("vol-1", &staging))
        .await
        .unwrap();
    n.stop().await;
}

#[tokio::test]
async fn concurrent_calls_for_one_volume_are_aborted() {
    // No root needed: the platform delays device resolution, so the first call holds the lock.
    let tmp = TestDir::new();
    let dir = tmp.path();
    let tree = FakeScsiTree::new(dir);
    let n = NodeHarness::start_with_delay(dir, "node-l", &tree, Duration::from_millis(400)).await;
    let cap = mount_capability("ext4", Mode::SingleNodeWriter);
    let mut c1 = n.client.clone();
    let mut c2 = n.client.clone();
    let s1 = dir.join("s");
    let s2 = s1.clone();
    let (cap1, cap2) = (cap.clone(), cap.clone());
    let first = tokio::spawn(async move { c1.node_stage_volume(stage_req("vol-l", 1, &s1, cap1)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = c2
        .node_stage_volume(stage_req("vol-l", 1, &s2, cap2))
        .await
        .unwrap_err();
    assert_eq!(second.code(), Code::Aborted, "{second:?}");
    // The first call finds no device for unit 1 and fails on its own terms, not Aborted.
    let first = first.await.unwrap().unwrap_err();
    assert_ne!(first.code(), Code::Aborted);
    assert_eq!(n.metrics.count("NodeStageVolume", Code::Aborted), 1);
    n.stop().await;
}

#[tokio::test]
async fn required_arguments_are_invalid_argument() {
    let tmp = TestDir::new();
    let dir = tmp.path();
    let tree = FakeScsiTree::new(dir);
    let mut n = NodeHarness::start(dir, "node-v", &tree).await;
    let cap = mount_capability("ext4", Mode::SingleNodeWriter);
    let s = dir.join("s");
    let t = dir.join("t");
    let cases: Vec<(&str, tonic::Status)> = vec![
        (
            "stage no id",
            n.client
                .node_stage_volume(stage_req("", 1, &s, cap.clone()))
                .await
                .unwrap_err(),
        ),
        (
            "stage no path",
            n.client
                .node_stage_volume(NodeStageVolumeRequest {
                    staging_target_path: String::new(),
                    ..stage_req("v", 1, &s, cap.clone())
                })
                .await
                .unwrap_err(),
        ),
        (
            "stage relative path",
            n.client
                .node_stage_volume(NodeStageVolumeRequest {
                    staging_target_path: "rel".into(),
                    ..stage_req("v", 1, &s, cap.clone())
                })
                .await
                .unwrap_err(),
        ),
        (
            "stage no cap",
            n.client
                .node_stage_volume(NodeStageVolumeRequest {
                    volume_capability: None,
                    ..stage_req("v", 1, &s, cap.clone())
                })
                .await
                .unwrap_err(),
        ),
        (
            "stage multi-node",
            n.client
                .node_stage_volume(stage_req(
                    "v",
                    1,
                    &s,
                    mount_capability("ext4", Mode::MultiNodeMultiWriter),
                ))
                .await
                .unwrap_err(),
        ),
        (
            "stage btrfs",
            n.client
                .node_stage_volume(stage_req("v", 1, &s, mount_capability("btrfs", Mode::SingleNodeWriter)))
                .await
                .unwrap_err(),
        ),
        (
            "publish no target",
            n.client
                .node_publish_volume(publish_req("v", 1, &s, Path::new(""), cap.clone(), false))
                .await
                .unwrap_err(),
        ),
        (
            "publish no staging",
            n.client
                .node_publish_volume(publish_req("v", 1, Path::new(""), &t, cap.clone(), false))
                .await
                .unwrap_err(),
        ),
        (
            "unpublish no id",
            n.client.node_unpublish_volume(unpublish_req("", &t)).await.unwrap_err(),
        ),
        (
            "unstage no path",
            n.client
                .node_unstage_volume(unstage_req("v", Path::new("")))
                .await
                .unwrap_err(),
        ),
        (
            "stats no path",
            n.client
                .node_get_volume_stats(stats_req("v", Path::new("")))
                .await
                .unwrap_err(),
        ),
        (
            "expand no id",
            n.client
                .node_expand_volume(NodeExpandVolumeRequest {
                    volume_path: "/x".into(),
                    ..Default::default()
                })
                .await
                .unwrap_err(),
        ),
    ];
    for (name, status) in cases {
        assert_eq!(status.code(), Code::InvalidArgument, "{name}: {status:?}");
    }
    let err = n
        .client
        .node_stage_volume(NodeStageVolumeRequest {
            publish_context: HashMap::new(),
            ..stage_req("v", 1, &s, cap.clone())
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "missing {UNIT_KEY}: {err:?}");
    assert_eq!(
        err.message(),
        format!("volume v: publish context has no {UNIT_KEY:?} entry")
    );
    let info = n
        .client
        .node_get_info(NodeGetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.node_id, "node-v");
    assert_eq!(info.max_volumes_per_node, 15);
    assert_eq!(
        info.accessible_topology.unwrap().segments["topology.example.com/zone"],
        "east-11"
    );
    let caps = n
        .client
        .node_get_capabilities(NodeGetCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(caps.capabilities.len(), 5);
    // A volume path that is not there (relative: no place a CO publishes to) holds no volume: NotFound.
    for missing in [Path::new("some/path"), &dir.join("never-published")] {
        let status = n
            .client
            .node_get_volume_stats(stats_req("v", missing))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "stats {}: {status:?}", missing.display());
        let status = n
            .client
            .node_expand_volume(NodeExpandVolumeRequest {
                volume_id: "v".into(),
                volume_path: missing.display().to_string(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::NotFound,
            "expand {}: {status:?}",
            missing.display()
        );
    }
    n.stop().await;
}

/// ReadWriteOncePod arrives as SINGLE_NODE_SINGLE_WRITER: the node publishes it at one target path only
/// (FailedPrecondition for a second, nothing left behind there); ReadWriteOnce (SINGLE_NODE_MULTI_WRITER) serves
/// several pods of the node.
#[tokio::test]
async fn single_writer_volumes_are_published_at_one_target_only() {
    if should_skip("single_writer_volumes_are_published_at_one_target_only") {
        return;
    }
    let tmp = TestDir::new();
    let dir = tmp.path();
    let tree = FakeScsiTree::new(dir);
    let (fs_disk, blk_disk) = (LoopDevice::new(dir, "fs.img", 64), LoopDevice::new(dir, "blk.img", 64));
    tree.attach(3, &fs_disk);
    tree.attach(4, &blk_disk);
    let mut n = NodeHarness::start(dir, "node-rwop", &tree).await;
    let cases = [
        (
            "vol-fs",
            3,
            mount_capability("ext4", Mode::SingleNodeSingleWriter),
            mount_capability("ext4", Mode::SingleNodeMultiWriter),
        ),
        (
            "vol-blk",
            4,
            block_capability(Mode::SingleNodeSingleWriter),
            block_capability(Mode::SingleNodeMultiWriter),
        ),
    ];
    for (vol, unit, single, multi) in cases {
        let staging = dir.join(format!("staging/{vol}"));
        let first = dir.join(format!("pods/a/{vol}"));
        let second = dir.join(format!("pods/b/{vol}"));
        n.client
            .node_stage_volume(stage_req(vol, unit, &staging, single.clone()))
            .await
            .unwrap();
        for _ in 0..2 {
            n.client
                .node_publish_volume(publish_req(vol, unit, &staging, &first, single.clone(), false))
                .await
                .expect("the first target, and again (idempotent)");
        }
        let err = n
            .client
            .node_publish_volume(publish_req(vol, unit, &staging, &second, single.clone(), false))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{vol}: {err:?}");
        assert!(err.message().contains("SINGLE_NODE_SINGLE_WRITER"), "{err:?}");
        assert!(!second.exists(), "{vol}: a refused publish leaves no target behind");
        // Once the first pod is gone, the next one may have it.
        n.client
            .node_unpublish_volume(unpublish_req(vol, &first))
            .await
            .unwrap();
        n.client
            .node_publish_volume(publish_req(vol, unit, &staging, &second, single.clone(), false))
            .await
            .unwrap();
        n.client
            .node_unpublish_volume(unpublish_req(vol, &second))
            .await
            .unwrap();
        // ReadWriteOnce: two pods of this node at once.
        for target in [&first, &second] {
            n.client
                .node_publish_volume(publish_req(vol, unit, &staging, target, multi.clone(), false))
                .await
                .unwrap();
        }
        for target in [&first, &second] {
            n.client
                .node_unpublish_volume(unpublish_req(vol, target))
                .await
                .unwrap();
        }
        n.client.node_unstage_volume(unstage_req(vol, &staging)).await.unwrap();
    }
    n.stop().await;
}
