//! Measures NodeStage/Publish/Unpublish/Unstage latency over a unix socket on loop devices.
//! Run as root: `cargo run --release -p csi-core --example node_latency [iterations]`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use csi_core::capability::mount_capability;
use csi_core::proto::volume_capability::access_mode::Mode;
use csi_core::proto::*;

fn summary(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pick = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{name:<28} n={:<3} min {:>7.2} ms  median {:>7.2} ms  p90 {:>7.2} ms  max {:>7.2} ms",
        v.len(),
        ms(v[0]),
        ms(pick(0.5)),
        ms(pick(0.9)),
        ms(v[v.len() - 1])
    );
}

#[tokio::main]
async fn main() {
    if should_skip("node_latency") {
        return;
    }
    let iterations: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    for fs in ["ext4", "xfs"] {
        let tmp = TestDir::new();
        let dir = tmp.path();
        let tree = FakeScsiTree::new(dir);
        let disk = LoopDevice::new(dir, "disk.img", 1024);
        tree.attach(3, &disk);
        let mut n = NodeHarness::start(dir, "bench", &tree).await;
        let cap = mount_capability(fs, Mode::SingleNodeWriter);
        let staging = dir.join("staging");
        let target = dir.join("target");
        let ctx = requests::ctx(3);
        let stage = NodeStageVolumeRequest {
            volume_id: "vol-bench".into(),
            publish_context: ctx.clone(),
            staging_target_path: staging.display().to_string(),
            volume_capability: Some(cap.clone()),
            ..Default::default()
        };
        let publish = NodePublishVolumeRequest {
            volume_id: "vol-bench".into(),
            publish_context: ctx,
            staging_target_path: staging.display().to_string(),
            target_path: target.display().to_string(),
            volume_capability: Some(cap.clone()),
            ..Default::default()
        };
        let unpublish = NodeUnpublishVolumeRequest {
            volume_id: "vol-bench".into(),
            target_path: target.display().to_string(),
        };
        let unstage = NodeUnstageVolumeRequest {
            volume_id: "vol-bench".into(),
            staging_target_path: staging.display().to_string(),
        };

        let t = Instant::now();
        n.client.node_stage_volume(stage.clone()).await.unwrap();
        let first = t.elapsed();
        n.client.node_unstage_volume(unstage.clone()).await.unwrap();
        println!(
            "{fs}: first NodeStageVolume on a blank 1 GiB loop device (blkid + mkfs + mount): {:.1} ms",
            first.as_secs_f64() * 1000.0
        );

        let (mut st, mut pb, mut upb, mut ust, mut again) = (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..iterations {
            let t = Instant::now();
            n.client.node_stage_volume(stage.clone()).await.unwrap();
            st.push(t.elapsed());
            let t = Instant::now();
            n.client.node_stage_volume(stage.clone()).await.unwrap();
            again.push(t.elapsed());
            let t = Instant::now();
            n.client.node_publish_volume(publish.clone()).await.unwrap();
            pb.push(t.elapsed());
            let t = Instant::now();
            n.client.node_unpublish_volume(unpublish.clone()).await.unwrap();
            upb.push(t.elapsed());
            let t = Instant::now();
            n.client.node_unstage_volume(unstage.clone()).await.unwrap();
            ust.push(t.elapsed());
        }
        summary(&format!("{fs} stage (existing fs)"), st);
        summary(&format!("{fs} stage (already staged)"), again);
        summary(&format!("{fs} publish"), pb);
        summary(&format!("{fs} unpublish"), upb);
        summary(&format!("{fs} unstage"), ust);
        n.stop().await;
    }
}
