//! Serves Identity + Node on a unix socket, answers a few calls, idles, then prints the
//! process's resident memory (VmRSS from /proc/self/status).
//! `cargo run --release -p csi-core --example node_idle_rss`

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use csi_core::identity::IdentityService;
use csi_core::metrics::CsiMetrics;
use csi_core::node::scsi::ScsiLocator;
use csi_core::node::{NodeConfig, NodePlatform, NodeService, PlatformError};
use csi_core::proto::node_client::NodeClient;
use csi_core::proto::{NodeGetCapabilitiesRequest, NodeGetInfoRequest};
use csi_core::server::{CsiServer, connect};

struct Platform(ScsiLocator);

#[tonic::async_trait]
impl NodePlatform for Platform {
    fn node_id(&self) -> String {
        "idle-node".into()
    }
    fn accessible_topology(&self) -> HashMap<String, String> {
        HashMap::new()
    }
    async fn max_volumes_per_node(&self) -> Result<i64, PlatformError> {
        Ok(14)
    }
    async fn resolve_device(&self, _v: &str, ctx: &HashMap<String, String>) -> Result<PathBuf, PlatformError> {
        let unit = ctx
            .get("scsiUnit")
            .and_then(|u| u.parse().ok())
            .ok_or_else(|| PlatformError::InvalidArgument("no scsiUnit".into()))?;
        Ok(self.0.locate_unit(unit).await?)
    }
    async fn cleanup_device(&self, _v: &str, device: &Path) -> Result<(), PlatformError> {
        self.0.remove(device)?;
        Ok(())
    }
}

fn status_kib(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l.trim_start_matches(field).trim().to_string())
        .unwrap_or_default()
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("unix://{}", dir.path().join("csi.sock").display());
    let node = NodeService::new(
        Arc::new(Platform(ScsiLocator::new(Duration::from_secs(60)))),
        NodeConfig::default(),
    );
    let identity = IdentityService::new("idle.csi.example.com", "0", node.readiness()).unwrap();
    let (metrics, _registry) = CsiMetrics::with_registry();
    let server = CsiServer::new(identity, Arc::new(metrics)).with_node(node);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let ep = endpoint.clone();
    let task = tokio::spawn(async move {
        server
            .serve(&ep, async {
                let _ = rx.await;
            })
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    {
        let mut c = NodeClient::new(connect(&endpoint).await.unwrap());
        for _ in 0..10 {
            c.node_get_info(NodeGetInfoRequest {}).await.unwrap();
            c.node_get_capabilities(NodeGetCapabilitiesRequest {}).await.unwrap();
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "idle node plugin: VmRSS {} (peak VmHWM {}), threads {}",
        status_kib("VmRSS:"),
        status_kib("VmHWM:"),
        status_kib("Threads:")
    );
    tx.send(()).unwrap();
    task.await.unwrap();
}
