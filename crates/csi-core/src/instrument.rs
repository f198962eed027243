//! Request logging (secrets redacted) and metrics around any CSI service.
//!
//! [`Instrumented`] wraps an implementation of a generated CSI service trait and implements the
//! same trait: each call is logged at `info` (method, code, latency) and at `debug` with the
//! request and response bodies. Request `Debug` impls print secret keys only (see
//! [`crate::proto`]), so secrets never reach the log.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tonic::{Request, Response, Status};

use crate::metrics::CsiMetrics;
use crate::proto;

/// A CSI service wrapped with logging and metrics.
#[derive(Debug, Clone)]
pub struct Instrumented<S> {
    inner: S,
    metrics: Arc<CsiMetrics>,
}

impl<S> Instrumented<S> {
    /// Wraps `inner`, recording into `metrics`.
    pub fn new(inner: S, metrics: Arc<CsiMetrics>) -> Self {
        Self { inner, metrics }
    }

    /// The wrapped service.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

/// Records `Cancelled` if the call future is dropped before it finishes.
struct CallGuard<'a> {
    metrics: &'a CsiMetrics,
    method: &'static str,
    start: Instant,
    done: bool,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            let elapsed = self.start.elapsed();
            tracing::info!(
                method = self.method,
                elapsed_ms = elapsed.as_millis() as u64,
                "CSI call cancelled"
            );
            self.metrics.observe(self.method, tonic::Code::Cancelled, elapsed);
        }
    }
}

/// Read-only calls that sidecars make every few seconds: successful ones are logged at `debug`.
const QUIET: [&str; 6] = [
    "Probe",
    "GetPluginInfo",
    "GetPluginCapabilities",
    "ControllerGetCapabilities",
    "NodeGetCapabilities",
    "NodeGetVolumeStats",
];

async fn observe<Req, Resp, Fut>(
    metrics: &CsiMetrics,
    method: &'static str,
    request: Request<Req>,
    call: impl FnOnce(Request<Req>) -> Fut,
) -> Result<Response<Resp>, Status>
where
    Req: Debug,
    Resp: Debug,
    Fut: Future<Output = Result<Response<Resp>, Status>>,
{
    let mut guard = CallGuard {
        metrics,
        method,
        start: Instant::now(),
        done: false,
    };
    tracing::debug!(method, request = ?request.get_ref(), "CSI request");
    let result = call(request).await;
    let elapsed = guard.start.elapsed();
    guard.done = true;
    let elapsed_ms = elapsed.as_millis() as u64;
    match &result {
        Ok(resp) => {
            if QUIET.contains(&method) {
                tracing::debug!(method, code = "Ok", elapsed_ms, "CSI call");
            } else {
                tracing::info!(method, code = "Ok", elapsed_ms, "CSI call");
            }
            tracing::debug!(method, response = ?resp.get_ref(), "CSI response");
            metrics.observe(method, tonic::Code::Ok, elapsed);
        }
        Err(status) => {
            tracing::warn!(method, code = ?status.code(), message = status.message(), elapsed_ms, "CSI call failed");
            metrics.observe(method, status.code(), elapsed);
        }
    }
    result
}

macro_rules! instrument_service {
    ($trait:path; $( $method:ident => $name:literal ($req:ty) -> $resp:ty; )*) => {
        #[tonic::async_trait]
        impl<S: $trait> $trait for Instrumented<S> {
            $(
                async fn $method(&self, request: Request<$req>) -> Result<Response<$resp>, Status> {
                    observe(&self.metrics, $name, request, |r| self.inner.$method(r)).await
                }
            )*
        }
    };
}

instrument_service! { proto::identity_server::Identity;
    get_plugin_info => "GetPluginInfo" (proto::GetPluginInfoRequest) -> proto::GetPluginInfoResponse;
    get_plugin_capabilities => "GetPluginCapabilities" (proto::GetPluginCapabilitiesRequest) -> proto::GetPluginCapabilitiesResponse;
    probe => "Probe" (proto::ProbeRequest) -> proto::ProbeResponse;
}

instrument_service! { proto::controller_server::Controller;
    create_volume => "CreateVolume" (proto::CreateVolumeRequest) -> proto::CreateVolumeResponse;
    delete_volume => "DeleteVolume" (proto::DeleteVolumeRequest) -> proto::DeleteVolumeResponse;
    controller_publish_volume => "ControllerPublishVolume" (proto::ControllerPublishVolumeRequest) -> proto::ControllerPublishVolumeResponse;
    controller_unpublish_volume => "ControllerUnpublishVolume" (proto::ControllerUnpublishVolumeRequest) -> proto::ControllerUnpublishVolumeResponse;
    validate_volume_capabilities => "ValidateVolumeCapabilities" (proto::ValidateVolumeCapabilitiesRequest) -> proto::ValidateVolumeCapabilitiesResponse;
    list_volumes => "ListVolumes" (proto::ListVolumesRequest) -> proto::ListVolumesResponse;
    get_capacity => "GetCapacity" (proto::GetCapacityRequest) -> proto::GetCapacityResponse;
    controller_get_capabilities => "ControllerGetCapabilities" (proto::ControllerGetCapabilitiesRequest) -> proto::ControllerGetCapabilitiesResponse;
    create_snapshot => "CreateSnapshot" (proto::CreateSnapshotRequest) -> proto::CreateSnapshotResponse;
    delete_snapshot => "DeleteSnapshot" (proto::DeleteSnapshotRequest) -> proto::DeleteSnapshotResponse;
    list_snapshots => "ListSnapshots" (proto::ListSnapshotsRequest) -> proto::ListSnapshotsResponse;
    get_snapshot => "GetSnapshot" (proto::GetSnapshotRequest) -> proto::GetSnapshotResponse;
    controller_expand_volume => "ControllerExpandVolume" (proto::ControllerExpandVolumeRequest) -> proto::ControllerExpandVolumeResponse;
    controller_get_volume => "ControllerGetVolume" (proto::ControllerGetVolumeRequest) -> proto::ControllerGetVolumeResponse;
    controller_modify_volume => "ControllerModifyVolume" (proto::ControllerModifyVolumeRequest) -> proto::ControllerModifyVolumeResponse;
}

instrument_service! { proto::node_server::Node;
    node_stage_volume => "NodeStageVolume" (proto::NodeStageVolumeRequest) -> proto::NodeStageVolumeResponse;
    node_unstage_volume => "NodeUnstageVolume" (proto::NodeUnstageVolumeRequest) -> proto::NodeUnstageVolumeResponse;
    node_publish_volume => "NodePublishVolume" (proto::NodePublishVolumeRequest) -> proto::NodePublishVolumeResponse;
    node_unpublish_volume => "NodeUnpublishVolume" (proto::NodeUnpublishVolumeRequest) -> proto::NodeUnpublishVolumeResponse;
    node_get_volume_stats => "NodeGetVolumeStats" (proto::NodeGetVolumeStatsRequest) -> proto::NodeGetVolumeStatsResponse;
    node_expand_volume => "NodeExpandVolume" (proto::NodeExpandVolumeRequest) -> proto::NodeExpandVolumeResponse;
    node_get_capabilities => "NodeGetCapabilities" (proto::NodeGetCapabilitiesRequest) -> proto::NodeGetCapabilitiesResponse;
    node_get_info => "NodeGetInfo" (proto::NodeGetInfoRequest) -> proto::NodeGetInfoResponse;
}

instrument_service! { proto::group_controller_server::GroupController;
    group_controller_get_capabilities => "GroupControllerGetCapabilities" (proto::GroupControllerGetCapabilitiesRequest) -> proto::GroupControllerGetCapabilitiesResponse;
    create_volume_group_snapshot => "CreateVolumeGroupSnapshot" (proto::CreateVolumeGroupSnapshotRequest) -> proto::CreateVolumeGroupSnapshotResponse;
    delete_volume_group_snapshot => "DeleteVolumeGroupSnapshot" (proto::DeleteVolumeGroupSnapshotRequest) -> proto::DeleteVolumeGroupSnapshotResponse;
    get_volume_group_snapshot => "GetVolumeGroupSnapshot" (proto::GetVolumeGroupSnapshotRequest) -> proto::GetVolumeGroupSnapshotResponse;
}
