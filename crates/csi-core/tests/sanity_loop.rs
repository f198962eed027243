//! The whole sanity suite (controller + node, full lifecycle) against one plugin whose
//! in-memory controller hands out real loop devices through a fake SCSI tree and whose node
//! side is the real `NodeService`. Needs root; otherwise prints why it skips.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::memctl::{Backing, MemController};
use common::*;
use csi_core::capacity::CapacityPolicy;
use csi_core::identity::IdentityService;
use csi_core::metrics::CsiMetrics;
use csi_core::node::scsi::ScsiLocator;
use csi_core::node::{NodeConfig, NodeService};
use csi_core::proto::plugin_capability::service::Type as PluginCap;
use csi_core::sanity::{NodeSanityConfig, Outcome, SanityConfig, run};
use csi_core::server::CsiServer;

const MIB: i64 = 1 << 20;

struct LoopBacking {
    dir: PathBuf,
    tree: FakeScsiTree,
    disks: Mutex<HashMap<u32, LoopDevice>>,
}

impl Backing for LoopBacking {
    fn create(&self, unit: u32, bytes: i64) {
        let d = LoopDevice::new(&self.dir, &format!("unit{unit}.img"), (bytes / MIB) as u64);
        self.disks.lock().unwrap().insert(unit, d);
    }
    fn delete(&self, unit: u32) {
        self.tree.detach(unit);
        self.disks.lock().unwrap().remove(&unit);
    }
    fn attach(&self, unit: u32) {
        if let Some(d) = self.disks.lock().unwrap().get(&unit) {
            self.tree.attach(unit, d);
        }
    }
    fn detach(&self, unit: u32) {
        self.tree.detach(unit);
    }
    fn grow(&self, unit: u32, bytes: i64) {
        if let Some(d) = self.disks.lock().unwrap().get(&unit) {
            d.grow((bytes / MIB) as u64);
        }
    }
}

#[tokio::test]
async fn full_sanity_with_real_node_service_on_loop_devices() {
    if should_skip("full_sanity_with_real_node_service_on_loop_devices") {
        return;
    }
    let tmp = TestDir::new();
    let dir = tmp.path().to_path_buf();
    let backing = Arc::new(LoopBacking {
        dir: dir.clone(),
        tree: FakeScsiTree::new(&dir),
        disks: Mutex::new(HashMap::new()),
    });
    let mut ctl = MemController::new(
        &["node-1"],
        CapacityPolicy {
            step_bytes: 16 * MIB,
            min_bytes: 64 * MIB,
            max_bytes: 1024 * MIB,
            default_bytes: 64 * MIB,
        },
    );
    ctl.backing = Some(backing.clone());
    let platform = Arc::new(TestPlatform {
        node_id: "node-1".into(),
        locator: ScsiLocator::with_roots(&backing.tree.sys, &backing.tree.dev, Duration::from_secs(3))
            .with_poll_interval(Duration::from_millis(20)),
        cleaned: Mutex::new(Vec::new()),
        resolve_delay: Duration::ZERO,
    });
    let node = NodeService::new(Arc::clone(&platform), NodeConfig::default());
    let identity = IdentityService::new("loop.csi.example.com", "0.1.0", node.readiness())
        .unwrap()
        .with_service(PluginCap::ControllerService)
        .with_service(PluginCap::VolumeAccessibilityConstraints);
    let endpoint = format!("unix://{}", dir.join("plugin.sock").display());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = CsiServer::new(identity, Arc::new(CsiMetrics::new()))
        .with_controller(ctl)
        .with_node(node);
    let ep = endpoint.clone();
    let task = tokio::spawn(async move {
        server
            .serve(&ep, async {
                let _ = rx.await;
            })
            .await
            .unwrap()
    });
    for _ in 0..100 {
        if dir.join("plugin.sock").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let mut config = SanityConfig::new(&endpoint);
    config.volume_size_bytes = 64 * MIB;
    config.node = Some(NodeSanityConfig {
        endpoint: endpoint.clone(),
        staging_root: dir.join("staging"),
        target_root: dir.join("targets"),
        full_lifecycle: true,
    });
    let report = run(&config).await;
    println!("{report}");
    assert!(report.all_passed(), "{report}");
    for name in [
        "node/get-info",
        "node/lifecycle-is-idempotent",
        "node/unstage-when-not-staged",
        "publish/idempotent",
    ] {
        assert_eq!(report.outcome(name), Some(&Outcome::Pass), "{name}:\n{report}");
    }
    assert_eq!(
        platform.cleaned.lock().unwrap().len(),
        1,
        "device cleaned up once after unstage"
    );
    tx.send(()).unwrap();
    task.await.unwrap();
}
