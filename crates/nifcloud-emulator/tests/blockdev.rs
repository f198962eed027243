//! Loop-device backing of attached volumes. Runs only as root with `losetup` and
//! `/dev/loop-control`; otherwise prints why it skips.

mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use common::Client;
use nifcloud_emulator::blockdev::{by_path_name, unsupported_reason};
use nifcloud_emulator::{BlockDeviceConfig, Emulator, EmulatorConfig};

fn link(dir: &Path, instance: &str, n: u8) -> PathBuf {
    dir.join(instance).join("disk/by-path").join(by_path_name(n))
}

fn sectors(dev: &Path) -> u64 {
    let name = dev.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
    std::fs::read_to_string(format!("/sys/block/{name}/size"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn attached_volumes_are_loop_devices_that_keep_their_data() {
    if let Some(why) = unsupported_reason() {
        eprintln!("skipping loop-device test: {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dev");
    let backing = tmp.path().join("backing");
    let mut cfg = EmulatorConfig::sample();
    cfg.block_devices = Some(BlockDeviceConfig {
        dir: dir.clone(),
        backing_dir: backing.clone(),
    });
    let emu = Emulator::builder().config(cfg).start().await.unwrap();
    let c = Client::new(&emu);

    let r = c
        .call(&[
            ("Action", "CreateVolume"),
            ("Size", "100"),
            ("InstanceId", "node1"),
            ("VolumeId", "blk1"),
        ])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let uid = r.first("volumeUniqueId").unwrap();
    let file = backing.join(format!("{uid}.img"));
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 100 << 30);
    let l1 = link(&dir, "node1", 1);
    let dev1 = std::fs::read_link(&l1).expect("by-path symlink on node1");
    assert!(dev1.to_string_lossy().starts_with("/dev/loop"), "{dev1:?}");
    assert_eq!(sectors(&dev1) * 512, 100 << 30);
    {
        let mut f = std::fs::OpenOptions::new().write(true).open(&l1).unwrap();
        f.seek(SeekFrom::Start(4096)).unwrap();
        f.write_all(b"data survives a move").unwrap();
        f.sync_all().unwrap();
    }

    let r = c
        .call(&[("Action", "DetachVolume"), ("VolumeId", "blk1"), ("Agreement", "true")])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        std::fs::symlink_metadata(&l1).unwrap_err().kind(),
        std::io::ErrorKind::NotFound,
        "symlink removed on detach"
    );
    assert!(file.exists(), "backing file kept on detach");

    // Occupy node2's first slot so the volume lands on SCSI (0:2) there.
    let r = c
        .call(&[
            ("Action", "CreateVolume"),
            ("Size", "100"),
            ("InstanceId", "node2"),
            ("VolumeId", "blk2"),
        ])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .call(&[
            ("Action", "AttachVolume"),
            ("VolumeId", "blk1"),
            ("InstanceId", "node2"),
        ])
        .await;
    assert_eq!(r.first("device").as_deref(), Some("SCSI (0:2)"), "{}", r.body);
    let l2 = link(&dir, "node2", 2);
    let mut buf = [0u8; 20];
    {
        let mut f = std::fs::File::open(&l2).unwrap();
        f.seek(SeekFrom::Start(4096)).unwrap();
        f.read_exact(&mut buf).unwrap();
    }
    assert_eq!(&buf, b"data survives a move");

    let r = c.call(&[("Action", "ExtendVolumeSize"), ("VolumeId", "blk1")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The extend finishes on the next request (zero delay), which grows file and loop device.
    c.call(&[("Action", "DescribeVolumes"), ("VolumeId.1", "blk1")]).await;
    let dev2 = std::fs::read_link(&l2).unwrap();
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 200 << 30);
    assert_eq!(sectors(&dev2) * 512, 200 << 30);

    for v in ["blk1", "blk2"] {
        assert_eq!(
            c.call(&[("Action", "DetachVolume"), ("VolumeId", v), ("Agreement", "true")])
                .await
                .status,
            200
        );
        assert_eq!(c.call(&[("Action", "DeleteVolume"), ("VolumeId", v)]).await.status, 200);
    }
    assert!(!file.exists(), "backing file removed on delete");
    assert_eq!(
        std::fs::symlink_metadata(&l2).unwrap_err().kind(),
        std::io::ErrorKind::NotFound,
        "symlink removed on delete"
    );
    emu.shutdown().await;
}
