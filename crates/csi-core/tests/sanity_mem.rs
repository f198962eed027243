//! The sanity suite against an in-memory controller served on a real unix socket.

mod common;

use std::sync::Arc;

use common::memctl::MemController;
use csi_core::capacity::{CapacityPolicy, GIB};
use csi_core::identity::{AlwaysReady, IdentityService};
use csi_core::metrics::CsiMetrics;
use csi_core::proto::plugin_capability::service::Type as PluginCap;
use csi_core::sanity::{Outcome, SanityConfig, run};
use csi_core::server::CsiServer;

const POLICY: CapacityPolicy = CapacityPolicy {
    step_bytes: GIB,
    min_bytes: GIB,
    max_bytes: 64 * GIB,
    default_bytes: GIB,
};

async fn serve(
    dir: &std::path::Path,
    ctl: MemController,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
    Arc<CsiMetrics>,
) {
    let metrics = Arc::new(CsiMetrics::new());
    let identity = IdentityService::new("mem.csi.example.com", "0.1.0", Arc::new(AlwaysReady))
        .unwrap()
        .with_service(PluginCap::ControllerService)
        .with_service(PluginCap::VolumeAccessibilityConstraints);
    let endpoint = format!("unix://{}", dir.join("ctl.sock").display());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = CsiServer::new(identity, Arc::clone(&metrics)).with_controller(ctl);
    let ep = endpoint.clone();
    let task = tokio::spawn(async move {
        server
            .serve(&ep, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    for _ in 0..100 {
        if dir.join("ctl.sock").exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    (endpoint, tx, task, metrics)
}

#[tokio::test]
async fn sanity_suite_passes_against_in_memory_controller() {
    let tmp = tempfile::tempdir().unwrap();
    let (endpoint, stop, task, metrics) = serve(tmp.path(), MemController::new(&["node-1"], POLICY)).await;
    let mut config = SanityConfig::new(&endpoint);
    config.node_id = Some("node-1".into());
    config.secrets.insert("token".into(), "never-logged".into());
    let report = run(&config).await;
    println!("{report}");
    assert!(report.all_passed(), "{report}");
    for name in [
        "identity/probe",
        "create/idempotent",
        "create/same-name-incompatible-size",
        "create/limit-honoured",
        "create/creates-volume",
        "publish/unknown-node",
        "publish/idempotent",
        "list/pagination-visits-every-volume",
        "list/invalid-token",
        "snapshot/create-unimplemented",
        "get-capacity/unimplemented-without-capability",
        "expand/grows-and-is-idempotent",
        "cleanup/delete-created-volumes",
    ] {
        assert_eq!(
            report.outcome(name),
            Some(&Outcome::Pass),
            "{name} did not pass:\n{report}"
        );
    }
    assert!(report.passed().len() >= 35, "{report}");
    assert!(metrics.count("CreateVolume", tonic::Code::Ok) >= 4);
    assert!(metrics.count("CreateVolume", tonic::Code::InvalidArgument) >= 2);
    stop.send(()).unwrap();
    task.await.unwrap();
    assert!(!tmp.path().join("ctl.sock").exists(), "socket removed on shutdown");
}

#[tokio::test]
async fn sanity_suite_catches_a_non_idempotent_create() {
    let tmp = tempfile::tempdir().unwrap();
    let mut ctl = MemController::new(&["node-1"], POLICY);
    ctl.bug_not_idempotent = true;
    let (endpoint, stop, task, _) = serve(tmp.path(), ctl).await;
    let mut config = SanityConfig::new(&endpoint);
    config.node_id = Some("node-1".into());
    let report = run(&config).await;
    assert!(!report.all_passed());
    assert!(
        matches!(report.outcome("create/idempotent"), Some(Outcome::Fail(_))),
        "{report}"
    );
    assert!(
        matches!(
            report.outcome("create/same-name-incompatible-size"),
            Some(Outcome::Fail(_))
        ),
        "{report}"
    );
    stop.send(()).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn sanity_reports_unreachable_endpoint() {
    let report = run(&SanityConfig::new("unix:///nonexistent/csi-sanity.sock")).await;
    assert!(!report.all_passed());
    assert!(matches!(report.outcome("connect"), Some(Outcome::Fail(_))), "{report}");
}
