//! The node service on real loop devices, over a real unix-socket gRPC connection:
//! lifecycle, move between nodes, expansion, stats. Needs root, losetup, mkfs.ext4/mkfs.xfs;
//! otherwise each test prints why it skips.

mod common;

use common::requests::*;
use common::*;
use csi_core::capability::mount_capability;
use csi_core::proto::volume_capability::access_mode::Mode;
use csi_core::proto::volume_usage::Unit;
use csi_core::proto::*;
use tonic::Code;

/// Full lifecycle for one filesystem type: format, stage, publish, write, unpublish, unstage,
/// restage and read back, then "move" to a second node and read there. Every RPC is repeated.
async fn lifecycle(fs: &str) {
    let tmp = TestDir::new();
    let dir = tmp.path();
    let tree = FakeScsiTree::new(dir);
    let disk = LoopDevice::new(dir, "disk.img", 400);
    tree.attach(3, &disk);
    let mut a = NodeHarness::start(dir, "node-a", &tree).await;
    let cap = mount_capability(fs, Mode::SingleNodeWriter);
    let staging = dir.join("a/staging/pv1");
    let target = dir.join("a/pods/p1/volumes/pv1/mount");

    a.client
        .node_stage_volume(stage_req("vol-1", 3, &staging, cap.clone()))
        .await
        .unwrap();
    assert_eq!(blkid_type(&disk.device), fs, "blank device was formatted as {fs}");
    a.client
        .node_stage_volume(stage_req("vol-1", 3, &staging, cap.clone()))
        .await
        .expect("repeated stage is harmless");
    a.client
        .node_publish_volume(publish_req("vol-1", 3, &staging, &target, cap.clone(), false))
        .await
        .unwrap();
    a.client
        .node_publish_volume(publish_req("vol-1", 3, &staging, &target, cap.clone(), false))
        .await
        .expect("repeated publish is harmless");
    let err = a
        .client
        .node_publish_volume(publish_req("vol-1", 3, &staging, &target, cap.clone(), true))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::AlreadyExists,
        "publish with other readonly flag: {err:?}"
    );
    std::fs::write(target.join("hello.txt"), b"data written on node-a").unwrap();

    a.client
        .node_unpublish_volume(unpublish_req("vol-1", &target))
        .await
        .unwrap();
    assert!(!target.exists(), "unpublish removes the mount point");
    a.client
        .node_unpublish_volume(unpublish_req("vol-1", &target))
        .await
        .expect("repeated unpublish is harmless");
    a.client
        .node_unstage_volume(unstage_req("vol-1", &staging))
        .await
        .unwrap();
    assert!(!is_mounted(&staging));
    assert_eq!(tree.delete_written(&disk), "1", "SCSI device deleted after unstage");
    assert_eq!(
        a.platform.cleaned.lock().unwrap().as_slice(),
        std::slice::from_ref(&disk.device)
    );
    a.client
        .node_unstage_volume(unstage_req("vol-1", &staging))
        .await
        .expect("repeated unstage is harmless");
    assert_eq!(
        a.platform.cleaned.lock().unwrap().len(),
        1,
        "no cleanup when nothing was staged"
    );

    // Restage on the same node: the data is still there (no reformat).
    tree.reset_delete(&disk);
    a.client
        .node_stage_volume(stage_req("vol-1", 3, &staging, cap.clone()))
        .await
        .unwrap();
    a.client
        .node_publish_volume(publish_req("vol-1", 3, &staging, &target, cap.clone(), true))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(target.join("hello.txt")).unwrap(),
        b"data written on node-a"
    );
    assert_eq!(
        std::fs::write(target.join("ro.txt"), b"x").unwrap_err().kind(),
        std::io::ErrorKind::ReadOnlyFilesystem,
        "read-only publish refuses writes"
    );
    a.client
        .node_unpublish_volume(unpublish_req("vol-1", &target))
        .await
        .unwrap();
    a.client
        .node_unstage_volume(unstage_req("vol-1", &staging))
        .await
        .unwrap();
    a.stop().await;

    // "Move" the disk to a second node: another service, another staging root, another unit.
    tree.detach(3);
    tree.attach(5, &disk);
    let mut b = NodeHarness::start(dir, "node-b", &tree).await;
    let staging_b = dir.join("b/staging/pv1");
    let target_b = dir.join("b/pods/p9/volumes/pv1/mount");
    b.client
        .node_stage_volume(stage_req("vol-1", 5, &staging_b, cap.clone()))
        .await
        .unwrap();
    b.client
        .node_publish_volume(publish_req("vol-1", 5, &staging_b, &target_b, cap.clone(), false))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(target_b.join("hello.txt")).unwrap(),
        b"data written on node-a"
    );
    std::fs::write(target_b.join("from-b.txt"), b"b").unwrap();
    b.client
        .node_unpublish_volume(unpublish_req("vol-1", &target_b))
        .await
        .unwrap();
    b.client
        .node_unstage_volume(unstage_req("vol-1", &staging_b))
        .await
        .unwrap();
    assert!(b.metrics.count("NodeStageVolume", Code::Ok) >= 1);
    b.stop().await;
}

#[tokio::test]
async fn lifecycle_ext4_stage_publish_restage_and_move() {
    if should_skip("lifecycle_ext4") {
        return;
    }
    lifecycle("ext4").await;
}

#[tokio::test]
async fn lifecycle_xfs_stage_publish_restage_and_move() {
    if should_skip("lifecycle_xfs") {
        return;
    }
    lifecycle("xfs").await;
}

async fn expansion(fs: &str) {
    let tmp = TestDir::new();
    let dir = tmp.path();
    let tree = FakeScsiTree::new(dir);
    let disk = LoopDevice::new(dir, "disk.img", 400);
    tree.attach(1, &disk);
    let mut n = NodeHarness::start(dir, "node-x", &tree).await;
    let cap = mount_capability(fs, Mode::SingleNodeWriter);
    let staging = dir.join("staging");
    let target = dir.join("target");
    n.client
        .node_stage_volume(stage_req("vol-x", 1, &staging, cap.clone()))
        .await
        .unwrap();
    n.client
        .node_publish_volume(publish_req("vol-x", 1, &staging, &target, cap.clone(), false))
        .await
        .unwrap();
    let before = usage(
        &n.client
            .node_get_volume_stats(stats_req("vol-x", &target))
            .await
            .unwrap()
            .into_inner(),
        Unit::Bytes,
    )
    .total;

    disk.grow(800);
    let req = NodeExpandVolumeRequest {
        volume_id: "vol-x".into(),
        volume_path: target.display().to_string(),
        capacity_range: Some(CapacityRange {
            required_bytes: 800 << 20,
            limit_bytes: 0,
        }),
        staging_target_path: staging.display().to_string(),
        volume_capability: Some(cap.clone()),
        ..Default::default()
    };
    let resp = n.client.node_expand_volume(req.clone()).await.unwrap().into_inner();
    assert_eq!(resp.capacity_bytes, 800 << 20);
    let after = usage(
        &n.client
            .node_get_volume_stats(stats_req("vol-x", &target))
            .await
            .unwrap()
            .into_inner(),
        Unit::Bytes,
    )
    .total;
    assert!(after > before + (300 << 20), "{fs} grew from {before} to {after}");
    n.client
        .node_expand_volume(req.clone())
        .await
        .expect("repeated expand is harmless");

    let mut too_big = req.clone();
    too_big.capacity_range = Some(CapacityRange {
        required_bytes: 2000 << 20,
        limit_bytes: 0,
    });
    assert_eq!(
        n.client.node_expand_volume(too_big).await.unwrap_err().code(),
        Code::Unavailable
    );

    n.client
        .node_unpublish_volume(unpublish_req("vol-x", &target))
        .await
        .unwrap();
    n.client
        .node_unstage_volume(unstage_req("vol-x", &staging))
        .await
        .unwrap();
    n.stop().await;
}

#[tokio::test]
async fn expansion_grows_ext4_online() {
    if should_skip("expansion_ext4") {
        return;
    }
    if !has_cap_sys_resource() {
        eprintln!("SKIP expansion_ext4: no CAP_SYS_RESOURCE here, which online ext4 resize (resize2fs ioctl) needs");
        return;
    }
    expansion("ext4").await;
}

#[tokio::test]
async fn expansion_grows_xfs_online() {
    if should_skip("expansion_xfs") {
        return;
    }
    expansion("xfs").await;
}

#[tokio::test]
async fn stats_and_volume_condition() {
    if should_skip("stats_and_volume_condition") {
        return;
    }
    let tmp = TestDir::new();
    let dir = tmp.path();
    let tree = FakeScsiTree::new(dir);
    let disk = LoopDevice::new(dir, "disk.img", 300);
    tree.attach(7, &disk);
    let mut n = NodeHarness::start(dir, "node-s", &tree).await;
    let cap = mount_capability("ext4", Mode::SingleNodeWriter);
    let staging = dir.join("staging");
    let target = dir.join("target");
    n.client
        .node_stage_volume(stage_req("vol-s", 7, &staging, cap.clone()))
        .await
        .unwrap();
    n.client
        .node_publish_volume(publish_req("vol-s", 7, &staging, &target, cap.clone(), false))
        .await
        .unwrap();

    let s = n
        .client
        .node_get_volume_stats(stats_req("vol-s", &target))
        .await
        .unwrap()
        .into_inner();
    let bytes = usage(&s, Unit::Bytes);
    let inodes = usage(&s, Unit::Inodes);
    assert!(
        bytes.total > 200 << 20 && bytes.available > 0 && bytes.used > 0,
        "{bytes:?}"
    );
    assert!(inodes.total > 0 && inodes.used > 0, "{inodes:?}");
    assert!(!s.volume_condition.unwrap().abnormal);

    std::fs::write(target.join("blob"), vec![7u8; 8 << 20]).unwrap();
    sh("sync", &[]);
    let s2 = n
        .client
        .node_get_volume_stats(stats_req("vol-s", &target))
        .await
        .unwrap()
        .into_inner();
    assert!(
        usage(&s2, Unit::Bytes).used >= bytes.used + (8 << 20) - (1 << 20),
        "usage grows with data"
    );

    sh("mount", &["-o", "remount,ro", staging.to_str().unwrap()]);
    let ro = n
        .client
        .node_get_volume_stats(stats_req("vol-s", &target))
        .await
        .unwrap()
        .into_inner();
    let cond = ro.volume_condition.unwrap();
    assert!(cond.abnormal && cond.message.contains("read-only"), "{cond:?}");
    sh("mount", &["-o", "remount,rw", staging.to_str().unwrap()]);
    assert!(
        !n.client
            .node_get_volume_stats(stats_req("vol-s", &target))
            .await
            .unwrap()
            .into_inner()
            .volume_condition
            .unwrap()
            .abnormal
    );

    let unmounted = dir.join("not-a-mount");
    std::fs::create_dir_all(&unmounted).unwrap();
    let s3 = n
        .client
        .node_get_volume_stats(stats_req("vol-s", &unmounted))
        .await
        .unwrap()
        .into_inner();
    assert!(s3.volume_condition.unwrap().abnormal);
    let err = n
        .client
        .node_get_volume_stats(stats_req("vol-s", &dir.join("missing")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    n.client
        .node_unpublish_volume(unpublish_req("vol-s", &target))
        .await
        .unwrap();
    n.client
        .node_unstage_volume(unstage_req("vol-s", &staging))
        .await
        .unwrap();
    n.stop().await;
}
