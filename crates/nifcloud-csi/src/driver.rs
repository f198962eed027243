//! Assembling the driver: which services to serve, built from plain options, on a CSI socket.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use csi_core::identity::{AlwaysReady, IdentityService, Readiness};
use csi_core::metrics::CsiMetrics;
use csi_core::node::scsi::ScsiLocator;
use csi_core::node::{NodeConfig, NodeService};
use csi_core::proto::plugin_capability::{service::Type as ServiceType, volume_expansion::Type as ExpansionType};
use csi_core::server::CsiServer;
use nifcloud_sdk::Client;

use crate::cloud::Cloud;
use crate::controller::{ControllerConfig, NifcloudController};
use crate::node::{NifcloudNode, discover_node_id, discover_server};
use crate::plan::Membership;
use crate::poller::{PollMode, VolumeWatch};

/// Which services this process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Identity + Controller.
    Controller,
    /// Identity + Node.
    Node,
    /// Identity + Controller + Node in one process (a single-node setup, tests).
    All,
}

impl Mode {
    fn controller(self) -> bool {
        matches!(self, Mode::Controller | Mode::All)
    }

    fn node(self) -> bool {
        matches!(self, Mode::Node | Mode::All)
    }
}

/// Everything the driver needs to start.
#[derive(Debug, Clone)]
pub struct DriverOptions {
    /// Services to serve.
    pub mode: Mode,
    /// `unix:///path/csi.sock`.
    pub endpoint: String,
    /// Version reported by GetPluginInfo.
    pub version: String,
    /// Node: the server name (else `NODE_NAME`, else VMware guestinfo).
    pub node_id: Option<String>,
    /// Node: the zone (else DescribeInstances).
    pub zone: Option<String>,
    /// Node: compute the volume limit from the API (needs credentials) instead of local devices.
    pub node_api_limits: bool,
    /// Node: sysfs root.
    pub sys_root: PathBuf,
    /// Node: /dev root (the emulator's per-instance directory in tests).
    pub dev_root: PathBuf,
    /// Node: how long to wait for an attached disk to appear.
    pub device_timeout: Duration,
    /// Controller: servers of this cluster (patterns on server names).
    pub membership: Membership,
    /// Controller: how long a waiter goes between two looks of its own (the shared poller also looks
    /// right after each change, and calls DescribeVolumes at most
    /// [`crate::poller::schedule::MAX_CALLS_PER_INTERVAL`] times per interval).
    pub poll_interval: Duration,
    /// Controller: longest wait for one volume state change.
    pub wait_timeout: Duration,
    /// Controller: age of the cached server list.
    pub server_cache_ttl: Duration,
    /// Controller: delete disks left in the creating state (never returned to Kubernetes) after
    /// this long (`None`: never).
    pub reap_abandoned_after: Option<Duration>,
    /// Where to serve Prometheus metrics (`None`: not served).
    pub metrics_address: Option<std::net::SocketAddr>,
}

impl Default for DriverOptions {
    fn default() -> Self {
        Self {
            mode: Mode::All,
            endpoint: "unix:///csi/csi.sock".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            node_id: None,
            zone: None,
            node_api_limits: true,
            sys_root: PathBuf::from("/sys"),
            dev_root: PathBuf::from("/dev"),
            device_timeout: Duration::from_secs(60),
            membership: Membership::default(),
            poll_interval: Duration::from_secs(2),
            wait_timeout: Duration::from_secs(300),
            server_cache_ttl: Duration::from_secs(10),
            reap_abandoned_after: Some(Duration::from_secs(1800)),
            metrics_address: None,
        }
    }
}

/// Why the driver could not start, or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The controller needs NIFCLOUD credentials.
    #[error("controller mode needs a NIFCLOUD client (credentials, region)")]
    NoClient,
    /// Node identity could not be established.
    #[error(transparent)]
    Identity(#[from] crate::node::IdentityError),
    /// The plugin name is invalid.
    #[error(transparent)]
    Name(#[from] csi_core::identity::InvalidPluginName),
    /// The CSI socket could not be bound, or the gRPC server failed.
    #[error(transparent)]
    Server(#[from] csi_core::server::ServerError),
}

/// The controller service built from `opts` over `client`.
pub fn build_controller(client: Client, opts: &DriverOptions, mode: PollMode) -> NifcloudController {
    let cloud = Cloud::new(client, opts.server_cache_ttl);
    let watch = VolumeWatch::new(cloud.clone(), mode, opts.poll_interval, opts.wait_timeout);
    NifcloudController::new(
        cloud,
        watch,
        ControllerConfig {
            membership: opts.membership.clone(),
        },
    )
}

/// The node platform built from `opts` (discovering node id and zone as needed).
pub async fn build_node(client: Option<Client>, opts: &DriverOptions) -> Result<NifcloudNode, DriverError> {
    let node_id = discover_node_id(opts.node_id.clone()).await?;
    let mut server = node_id.clone();
    let zone = match (&opts.zone, &client) {
        (Some(z), _) if !z.is_empty() => z.clone(),
        (_, Some(c)) => {
            let (name, zone) = discover_server(c, &node_id).await?;
            server = name;
            zone
        }
        _ => {
            return Err(crate::node::IdentityError::NoZone {
                node: node_id,
                reason: "no --zone/NIFCLOUD_ZONE and no API credentials".into(),
            }
            .into());
        }
    };
    let locator = ScsiLocator::with_roots(&opts.sys_root, &opts.dev_root, opts.device_timeout);
    let api = if opts.node_api_limits { client } else { None };
    Ok(NifcloudNode::new(node_id, zone, locator, api).with_server_name(server))
}

/// Serves the driver until `shutdown` completes.
pub async fn run(
    opts: DriverOptions,
    client: Option<Client>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), DriverError> {
    let metrics = Arc::new(CsiMetrics::new());
    let api_metrics = Arc::new(crate::metrics::ApiMetrics::default());
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    api_metrics.register(&mut registry);
    let client = client.map(|c| crate::metrics::instrument_client(&c, api_metrics.clone()));
    let _metrics_task = opts.metrics_address.map(|addr| {
        let registry = Arc::new(registry);
        AbortOnDrop(tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve_metrics(addr, registry).await {
                tracing::error!(%addr, error = %e, "metrics server failed");
            }
        }))
    });
    let mut readiness: Arc<dyn Readiness> = Arc::new(AlwaysReady);
    let node = if opts.mode.node() {
        let platform = Arc::new(build_node(client.clone(), &opts).await?);
        tracing::info!(node = %platform.node_id_str(), zone = platform.zone(), "node identity");
        let config = NodeConfig {
            sys_root: opts.sys_root.clone(),
            policy: crate::controller::capability_policy(),
            ..NodeConfig::default()
        };
        let service = NodeService::new(platform, config);
        readiness = service.readiness();
        Some(service)
    } else {
        None
    };
    let mut identity = IdentityService::new(crate::DRIVER_NAME, &opts.version, readiness)?
        .with_service(ServiceType::VolumeAccessibilityConstraints)
        .with_expansion(ExpansionType::Online);
    if opts.mode.controller() {
        identity = identity.with_service(ServiceType::ControllerService);
    }
    let mut server = CsiServer::new(identity, metrics);
    let mut reaper_task = None;
    if opts.mode.controller() {
        let client = client.ok_or(DriverError::NoClient)?;
        let controller = build_controller(client, &opts, PollMode::Shared);
        if let Some(grace) = opts.reap_abandoned_after {
            let reaper = crate::reaper::Reaper::new(&controller, grace);
            reaper_task = Some(AbortOnDrop(tokio::spawn(
                reaper.run((grace / 6).max(Duration::from_secs(10))),
            )));
        }
        server = server.with_controller(controller);
    }
    if let Some(node) = node {
        server = server.with_node(node);
    }
    server.serve(&opts.endpoint, shutdown).await?;
    drop(reaper_task);
    Ok(())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl NifcloudNode {
    fn node_id_str(&self) -> String {
        csi_core::node::NodePlatform::node_id(self)
    }
}
