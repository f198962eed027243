//! Shared test harness: an emulator, a controller served over a real unix socket, a client.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use csi_core::capability::mount_capability;
use csi_core::identity::{AlwaysReady, IdentityService};
use csi_core::metrics::CsiMetrics;
use csi_core::proto::controller_client::ControllerClient;
use csi_core::proto::plugin_capability::service::Type as ServiceType;
use csi_core::proto::volume_capability::access_mode::Mode;
use csi_core::proto::{self as csi};
use csi_core::server::CsiServer;
use nifcloud_csi::controller::NifcloudController;
use nifcloud_csi::driver::{DriverOptions, build_controller};
use nifcloud_csi::plan::Membership;
use nifcloud_csi::poller::PollMode;
use nifcloud_emulator::{Emulator, EmulatorConfig};
use nifcloud_sdk::{Client, Config, Credentials};
use tonic::transport::Channel;

/// An SDK client for the emulator (SDK retries with short backoff).
pub fn sdk_client(emu: &Emulator) -> Client {
    let (ak, sk) = emu.credentials();
    let cfg = Config::builder()
        .endpoint(emu.endpoint())
        .region_name(&emu.region())
        .credentials(Credentials::new(ak, sk))
        .retry(nifcloud_sdk::retry::RetryConfig {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
        })
        .build()
        .expect("config");
    Client::new(cfg).expect("client")
}

/// Driver options for tests: fast polls, bounded waits, nodes `node*` are the cluster.
pub fn options() -> DriverOptions {
    DriverOptions {
        membership: Membership::patterns(["node*"]),
        poll_interval: Duration::from_millis(20),
        wait_timeout: Duration::from_secs(20),
        server_cache_ttl: Duration::from_millis(200),
        ..DriverOptions::default()
    }
}

/// A controller instance over `emu` (a fresh "process": no shared state with others).
pub fn controller(emu: &Emulator) -> NifcloudController {
    build_controller(sdk_client(emu), &options(), PollMode::Shared)
}

/// A running driver process: controller served on a unix socket in a temp dir.
pub struct Served {
    pub dir: tempfile::TempDir,
    pub endpoint: String,
    pub client: ControllerClient<Channel>,
    pub channel: Channel,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Served {
    /// Stops the server.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Serves `controller` (Identity + Controller) on a fresh socket and connects to it.
pub async fn serve(controller: NifcloudController) -> Served {
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = format!("unix://{}/csi.sock", dir.path().display());
    let identity = IdentityService::new(nifcloud_csi::DRIVER_NAME, "test", Arc::new(AlwaysReady))
        .expect("identity")
        .with_service(ServiceType::ControllerService)
        .with_service(ServiceType::VolumeAccessibilityConstraints);
    let server = CsiServer::new(identity, Arc::new(CsiMetrics::new())).with_controller(controller);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let ep = endpoint.clone();
    let task = tokio::spawn(async move {
        server
            .serve(&ep, async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
    });
    let mut channel = None;
    for _ in 0..100 {
        if let Ok(c) = csi_core::server::connect(&endpoint).await {
            channel = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let channel = channel.expect("connect to the served socket");
    Served {
        dir,
        endpoint,
        client: ControllerClient::new(channel.clone()),
        channel,
        stop: Some(tx),
        task,
    }
}

/// The emulator's sample world (node1-4 in east-11, node5-6 in east-12).
pub async fn emulator() -> Emulator {
    Emulator::builder()
        .config(EmulatorConfig::sample())
        .start()
        .await
        .expect("emulator")
}

/// A mount capability (ext4, single-node writer).
pub fn cap() -> csi::VolumeCapability {
    mount_capability("ext4", Mode::SingleNodeWriter)
}

/// A CreateVolume request.
pub fn create_req(name: &str, required_bytes: i64) -> csi::CreateVolumeRequest {
    csi::CreateVolumeRequest {
        name: name.into(),
        capacity_range: Some(csi::CapacityRange {
            required_bytes,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![cap()],
        ..Default::default()
    }
}

/// A ControllerPublishVolume request.
pub fn publish_req(volume: &str, node: &str) -> csi::ControllerPublishVolumeRequest {
    csi::ControllerPublishVolumeRequest {
        volume_id: volume.into(),
        node_id: node.into(),
        volume_capability: Some(cap()),
        ..Default::default()
    }
}

/// Facts about one emulated volume: (name, description, size, attached instance, phase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolFact {
    pub name: String,
    pub description: String,
    pub size_gb: u32,
    pub attached_to: Option<String>,
}

/// Every volume in the emulator.
pub fn volumes(emu: &Emulator) -> Vec<VolFact> {
    emu.with_state(|st| {
        st.volumes
            .values()
            .map(|v| VolFact {
                name: v.name.clone(),
                description: v.description.clone(),
                size_gb: v.size_gb,
                attached_to: v.attachment.as_ref().map(|a| st.instance_name(&a.instance_unique_id)),
            })
            .collect()
    })
}

/// Volumes whose description is `name`.
pub fn volumes_named(emu: &Emulator, name: &str) -> Vec<VolFact> {
    volumes(emu).into_iter().filter(|v| v.description == name).collect()
}
