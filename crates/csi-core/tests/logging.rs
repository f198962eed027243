//! Request logging at debug level shows requests but never secret values.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::memctl::MemController;
use csi_core::capability::mount_capability;
use csi_core::capacity::{CapacityPolicy, GIB};
use csi_core::identity::{AlwaysReady, IdentityService};
use csi_core::metrics::CsiMetrics;
use csi_core::proto::controller_client::ControllerClient;
use csi_core::proto::volume_capability::access_mode::Mode;
use csi_core::proto::{CreateVolumeRequest, DeleteVolumeRequest};
use csi_core::server::{CsiServer, connect};

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_never_reach_the_log() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let tmp = tempfile::tempdir().unwrap();
    let policy = CapacityPolicy {
        step_bytes: GIB,
        min_bytes: GIB,
        max_bytes: 8 * GIB,
        default_bytes: GIB,
    };
    let identity = IdentityService::new("log.csi.example.com", "1", Arc::new(AlwaysReady)).unwrap();
    let server =
        CsiServer::new(identity, Arc::new(CsiMetrics::new())).with_controller(MemController::new(&["n"], policy));
    let endpoint = format!("unix://{}", tmp.path().join("c.sock").display());
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
    let mut client = None;
    for _ in 0..100 {
        if let Ok(c) = connect(&endpoint).await {
            client = Some(ControllerClient::new(c));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut client = client.unwrap();
    let mut req = CreateVolumeRequest {
        name: "pvc-logged".into(),
        volume_capabilities: vec![mount_capability("ext4", Mode::SingleNodeWriter)],
        ..Default::default()
    };
    req.secrets.insert("accessKey".into(), "SUPER-SECRET-VALUE-1".into());
    let vol = client.create_volume(req).await.unwrap().into_inner().volume.unwrap();
    let mut del = DeleteVolumeRequest {
        volume_id: vol.volume_id,
        ..Default::default()
    };
    del.secrets.insert("accessKey".into(), "SUPER-SECRET-VALUE-2".into());
    client.delete_volume(del).await.unwrap();
    tx.send(()).unwrap();
    task.await.unwrap();

    let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("CreateVolume") && log.contains("pvc-logged"),
        "request logged:\n{log}"
    );
    assert!(log.contains("accessKey"), "secret keys are shown:\n{log}");
    assert!(!log.contains("SUPER-SECRET"), "secret value leaked:\n{log}");
}
