//! A small in-memory CSI controller, written from the spec, for exercising the sanity suite.
//! Each volume gets a SCSI unit; ControllerPublishVolume returns it as `scsiUnit = N` ([`super::UNIT_KEY`]).
//! An optional [`Backing`] turns volumes into real loop devices.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use csi_core::capability::{CapabilityPolicy, validate_capabilities, validate_capability};
use csi_core::capacity::{CapacityPolicy, pick_capacity};
use csi_core::locks::InFlight;
use csi_core::pagination::paginate;
use csi_core::proto::controller_service_capability::rpc::Type as Cap;
use csi_core::proto::*;
use tonic::{Request, Response, Status};

/// Real devices behind volumes (loop-backed sanity runs).
pub trait Backing: Send + Sync + 'static {
    fn create(&self, unit: u32, bytes: i64);
    fn delete(&self, unit: u32);
    fn attach(&self, unit: u32);
    fn detach(&self, unit: u32);
    fn grow(&self, unit: u32, bytes: i64);
}

#[derive(Debug, Clone)]
struct Vol {
    id: String,
    name: String,
    capacity: i64,
    unit: u32,
    published: BTreeSet<String>,
}

#[derive(Default)]
struct State {
    volumes: BTreeMap<String, Vol>,
    next_unit: u32,
}

pub struct MemController {
    state: Mutex<State>,
    pub nodes: BTreeSet<String>,
    pub capacity: CapacityPolicy,
    pub policy: CapabilityPolicy,
    pub zone: String,
    pub backing: Option<Arc<dyn Backing>>,
    locks: InFlight,
    /// Deliberate bug for testing the suite: CreateVolume ignores existing names.
    pub bug_not_idempotent: bool,
}

impl MemController {
    pub fn new(nodes: &[&str], capacity: CapacityPolicy) -> Self {
        Self {
            state: Mutex::new(State {
                next_unit: 1,
                ..Default::default()
            }),
            nodes: nodes.iter().map(|s| s.to_string()).collect(),
            capacity,
            policy: CapabilityPolicy::single_node_disk(),
            zone: "east-11".into(),
            backing: None,
            locks: InFlight::new(),
            bug_not_idempotent: false,
        }
    }

    fn volume(&self, v: &Vol) -> Volume {
        Volume {
            capacity_bytes: v.capacity,
            volume_id: v.id.clone(),
            volume_context: HashMap::from([("mkfsOptions".to_string(), String::new())]),
            content_source: None,
            accessible_topology: vec![Topology {
                segments: HashMap::from([("topology.example.com/zone".to_string(), self.zone.clone())]),
            }],
        }
    }
}

fn cap(t: Cap) -> ControllerServiceCapability {
    ControllerServiceCapability {
        r#type: Some(controller_service_capability::Type::Rpc(
            controller_service_capability::Rpc { r#type: t as i32 },
        )),
    }
}

#[tonic::async_trait]
impl controller_server::Controller for MemController {
    async fn create_volume(
        &self,
        request: Request<CreateVolumeRequest>,
    ) -> Result<Response<CreateVolumeResponse>, Status> {
        let req = request.into_inner();
        if req.name.is_empty() {
            return Err(Status::invalid_argument("name is required"));
        }
        validate_capabilities(&req.volume_capabilities, &self.policy)?;
        let size = pick_capacity(req.capacity_range.as_ref(), &self.capacity)?;
        let _g = self.locks.try_lock(&req.name)?;
        let mut st = self.state.lock().unwrap();
        if !self.bug_not_idempotent
            && let Some(v) = st.volumes.values().find(|v| v.name == req.name)
        {
            let r = req.capacity_range.unwrap_or_default();
            if (r.required_bytes > 0 && v.capacity < r.required_bytes)
                || (r.limit_bytes > 0 && v.capacity > r.limit_bytes)
            {
                return Err(Status::already_exists(format!(
                    "volume {} exists with {} bytes",
                    req.name, v.capacity
                )));
            }
            return Ok(Response::new(CreateVolumeResponse {
                volume: Some(self.volume(v)),
            }));
        }
        let unit = st.next_unit;
        st.next_unit += 1;
        let id = format!("vol-{unit:04}");
        if let Some(b) = &self.backing {
            b.create(unit, size);
        }
        let v = Vol {
            id: id.clone(),
            name: req.name,
            capacity: size,
            unit,
            published: BTreeSet::new(),
        };
        let out = self.volume(&v);
        st.volumes.insert(id, v);
        Ok(Response::new(CreateVolumeResponse { volume: Some(out) }))
    }

    async fn delete_volume(
        &self,
        request: Request<DeleteVolumeRequest>,
    ) -> Result<Response<DeleteVolumeResponse>, Status> {
        let req = request.into_inner();
        if req.volume_id.is_empty() {
            return Err(Status::invalid_argument("volume_id is required"));
        }
        let _g = self.locks.try_lock(&req.volume_id)?;
        let mut st = self.state.lock().unwrap();
        if let Some(v) = st.volumes.get(&req.volume_id) {
            if !v.published.is_empty() {
                return Err(Status::failed_precondition("volume is published"));
            }
            let unit = v.unit;
            st.volumes.remove(&req.volume_id);
            if let Some(b) = &self.backing {
                b.delete(unit);
            }
        }
        Ok(Response::new(DeleteVolumeResponse {}))
    }

    async fn controller_publish_volume(
        &self,
        request: Request<ControllerPublishVolumeRequest>,
    ) -> Result<Response<ControllerPublishVolumeResponse>, Status> {
        let req = request.into_inner();
        if req.volume_id.is_empty() || req.node_id.is_empty() {
            return Err(Status::invalid_argument("volume_id and node_id are required"));
        }
        let c = req
            .volume_capability
            .ok_or_else(|| Status::invalid_argument("volume_capability is required"))?;
        validate_capability(&c, &self.policy)?;
        let _g = self.locks.try_lock(&req.volume_id)?;
        let mut st = self.state.lock().unwrap();
        let v = st
            .volumes
            .get_mut(&req.volume_id)
            .ok_or_else(|| Status::not_found("no such volume"))?;
        if !self.nodes.contains(&req.node_id) {
            return Err(Status::not_found("no such node"));
        }
        if let Some(other) = v.published.iter().find(|n| **n != req.node_id) {
            return Err(Status::failed_precondition(format!("attached to {other}")));
        }
        if v.published.insert(req.node_id)
            && let Some(b) = &self.backing
        {
            b.attach(v.unit);
        }
        Ok(Response::new(ControllerPublishVolumeResponse {
            publish_context: HashMap::from([(super::UNIT_KEY.to_string(), v.unit.to_string())]),
        }))
    }

    async fn controller_unpublish_volume(
        &self,
        request: Request<ControllerUnpublishVolumeRequest>,
    ) -> Result<Response<ControllerUnpublishVolumeResponse>, Status> {
        let req = request.into_inner();
        if req.volume_id.is_empty() {
            return Err(Status::invalid_argument("volume_id is required"));
        }
        let _g = self.locks.try_lock(&req.volume_id)?;
        let mut st = self.state.lock().unwrap();
        if let Some(v) = st.volumes.get_mut(&req.volume_id) {
            let was = !v.published.is_empty();
            if req.node_id.is_empty() {
                v.published.clear();
            } else {
                v.published.remove(&req.node_id);
            }
            if was
                && v.published.is_empty()
                && let Some(b) = &self.backing
            {
                b.detach(v.unit);
            }
        }
        Ok(Response::new(ControllerUnpublishVolumeResponse {}))
    }

    async fn validate_volume_capabilities(
        &self,
        request: Request<ValidateVolumeCapabilitiesRequest>,
    ) -> Result<Response<ValidateVolumeCapabilitiesResponse>, Status> {
        let req = request.into_inner();
        if req.volume_id.is_empty() {
            return Err(Status::invalid_argument("volume_id is required"));
        }
        if req.volume_capabilities.is_empty() {
            return Err(Status::invalid_argument("volume_capabilities are required"));
        }
        if !self.state.lock().unwrap().volumes.contains_key(&req.volume_id) {
            return Err(Status::not_found("no such volume"));
        }
        Ok(Response::new(
            match validate_capabilities(&req.volume_capabilities, &self.policy) {
                Ok(_) => ValidateVolumeCapabilitiesResponse {
                    confirmed: Some(validate_volume_capabilities_response::Confirmed {
                        volume_context: req.volume_context,
                        volume_capabilities: req.volume_capabilities,
                        parameters: req.parameters,
                        mutable_parameters: HashMap::new(),
                    }),
                    message: String::new(),
                },
                Err(e) => ValidateVolumeCapabilitiesResponse {
                    confirmed: None,
                    message: e.to_string(),
                },
            },
        ))
    }

    async fn list_volumes(
        &self,
        request: Request<ListVolumesRequest>,
    ) -> Result<Response<ListVolumesResponse>, Status> {
        let req = request.into_inner();
        let st = self.state.lock().unwrap();
        let vols: Vec<&Vol> = st.volumes.values().collect();
        let (page, next_token) = paginate(&vols, |v| v.id.as_str(), &req.starting_token, req.max_entries)?;
        Ok(Response::new(ListVolumesResponse {
            entries: page
                .iter()
                .map(|v| list_volumes_response::Entry {
                    volume: Some(self.volume(v)),
                    status: Some(list_volumes_response::VolumeStatus {
                        published_node_ids: v.published.iter().cloned().collect(),
                        volume_condition: None,
                    }),
                })
                .collect(),
            next_token,
        }))
    }

    async fn get_capacity(&self, _r: Request<GetCapacityRequest>) -> Result<Response<GetCapacityResponse>, Status> {
        Err(Status::unimplemented("GetCapacity is not supported"))
    }

    async fn controller_get_capabilities(
        &self,
        _r: Request<ControllerGetCapabilitiesRequest>,
    ) -> Result<Response<ControllerGetCapabilitiesResponse>, Status> {
        Ok(Response::new(ControllerGetCapabilitiesResponse {
            capabilities: vec![
                cap(Cap::CreateDeleteVolume),
                cap(Cap::PublishUnpublishVolume),
                cap(Cap::ListVolumes),
                cap(Cap::ListVolumesPublishedNodes),
                cap(Cap::ExpandVolume),
                cap(Cap::SingleNodeMultiWriter),
            ],
        }))
    }

    async fn create_snapshot(
        &self,
        _r: Request<CreateSnapshotRequest>,
    ) -> Result<Response<CreateSnapshotResponse>, Status> {
        Err(Status::unimplemented("snapshots are not supported"))
    }
    async fn delete_snapshot(
        &self,
        _r: Request<DeleteSnapshotRequest>,
    ) -> Result<Response<DeleteSnapshotResponse>, Status> {
        Err(Status::unimplemented("snapshots are not supported"))
    }
    async fn list_snapshots(
        &self,
        _r: Request<ListSnapshotsRequest>,
    ) -> Result<Response<ListSnapshotsResponse>, Status> {
        Err(Status::unimplemented("snapshots are not supported"))
    }
    async fn get_snapshot(&self, _r: Request<GetSnapshotRequest>) -> Result<Response<GetSnapshotResponse>, Status> {
        Err(Status::unimplemented("snapshots are not supported"))
    }

    async fn controller_expand_volume(
        &self,
        request: Request<ControllerExpandVolumeRequest>,
    ) -> Result<Response<ControllerExpandVolumeResponse>, Status> {
        let req = request.into_inner();
        if req.volume_id.is_empty() {
            return Err(Status::invalid_argument("volume_id is required"));
        }
        let range = req
            .capacity_range
            .ok_or_else(|| Status::invalid_argument("capacity_range is required"))?;
        let size = pick_capacity(Some(&range), &self.capacity)?;
        let _g = self.locks.try_lock(&req.volume_id)?;
        let mut st = self.state.lock().unwrap();
        let v = st
            .volumes
            .get_mut(&req.volume_id)
            .ok_or_else(|| Status::not_found("no such volume"))?;
        if size > v.capacity {
            v.capacity = size;
            if let Some(b) = &self.backing {
                b.grow(v.unit, size);
            }
        }
        Ok(Response::new(ControllerExpandVolumeResponse {
            capacity_bytes: v.capacity,
            node_expansion_required: true,
        }))
    }

    async fn controller_get_volume(
        &self,
        _r: Request<ControllerGetVolumeRequest>,
    ) -> Result<Response<ControllerGetVolumeResponse>, Status> {
        Err(Status::unimplemented("GET_VOLUME is not advertised"))
    }
    async fn controller_modify_volume(
        &self,
        _r: Request<ControllerModifyVolumeRequest>,
    ) -> Result<Response<ControllerModifyVolumeResponse>, Status> {
        Err(Status::unimplemented("MODIFY_VOLUME is not advertised"))
    }
}
