//! csi-core's CSI conformance suite against this driver over a real unix socket, backed by the
//! emulator: controller only, and (as root, on loop devices) controller + node with the full
//! lifecycle.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use csi_core::identity::{AlwaysReady, IdentityService};
use csi_core::metrics::CsiMetrics;
use csi_core::node::scsi::ScsiLocator;
use csi_core::node::{NodeConfig, NodeService};
use csi_core::proto::plugin_capability::service::Type as ServiceType;
use csi_core::sanity::{NodeSanityConfig, SanityConfig, run};
use csi_core::server::CsiServer;
use nifcloud_csi::node::NifcloudNode;
use nifcloud_emulator::{BlockDeviceConfig, Emulator, EmulatorConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_passes_the_sanity_suite() {
    let emu = emulator().await;
    let s = serve(controller(&emu)).await;
    let mut cfg = SanityConfig::new(&s.endpoint);
    cfg.node_id = Some("node2".into());
    let report = run(&cfg).await;
    eprintln!("{report}");
    assert!(report.all_passed(), "{report}");
    assert!(report.passed().len() >= 10, "{report}");
    // The suite deletes what it created.
    assert!(volumes(&emu).is_empty(), "{:?}", volumes(&emu));
    s.stop().await;
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_and_node_pass_the_full_lifecycle_on_loop_devices() {
    if let Some(reason) = nifcloud_emulator::blockdev::unsupported_reason() {
        eprintln!("skipping node sanity: {reason}");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let devs = work.path().join("servers");
    let fake_sys = work.path().join("sys");
    std::fs::create_dir_all(fake_sys.join("class/scsi_host")).unwrap();
    let mut ecfg = EmulatorConfig::sample();
    ecfg.block_devices = Some(BlockDeviceConfig {
        dir: devs.clone(),
        backing_dir: work.path().join("backing"),
    });
    let emu = Emulator::builder().config(ecfg).start().await.unwrap();
    let locator = ScsiLocator::with_roots(&fake_sys, devs.join("node1"), Duration::from_secs(10))
        .with_poll_interval(Duration::from_millis(20));
    let platform = NifcloudNode::new("node1".into(), "east-11".into(), locator, Some(sdk_client(&emu)));
    let identity = IdentityService::new(nifcloud_csi::DRIVER_NAME, "test", Arc::new(AlwaysReady))
        .unwrap()
        .with_service(ServiceType::ControllerService)
        .with_service(ServiceType::VolumeAccessibilityConstraints);
    let server = CsiServer::new(identity, Arc::new(CsiMetrics::new()))
        .with_controller(controller(&emu))
        .with_node(NodeService::new(Arc::new(platform), NodeConfig::default()));
    let endpoint = format!("unix://{}/csi.sock", work.path().display());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let ep = endpoint.clone();
    let task = tokio::spawn(async move {
        let _ = server
            .serve(&ep, async {
                let _ = rx.await;
            })
            .await;
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut cfg = SanityConfig::new(&endpoint);
    let (staging_root, target_root) = (work.path().join("stage"), work.path().join("target"));
    std::fs::create_dir_all(&staging_root).unwrap();
    std::fs::create_dir_all(&target_root).unwrap();
    cfg.node = Some(NodeSanityConfig {
        endpoint: endpoint.clone(),
        staging_root,
        target_root,
        full_lifecycle: true,
    });
    let report = run(&cfg).await;
    eprintln!("{report}");
    assert!(report.all_passed(), "{report}");
    assert!(volumes(&emu).is_empty(), "{:?}", volumes(&emu));
    let _ = tx.send(());
    let _ = task.await;
    emu.shutdown().await;
}
