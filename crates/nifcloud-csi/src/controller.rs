//! The CSI Controller service for NIFCLOUD additional storage.
//!
//! Every RPC follows one pattern: validate, take the in-flight lock, observe (a fresh shared
//! DescribeVolumes), decide with a pure function from [`crate::plan`], act, wait for the change
//! to be visible, decide again. Nothing is remembered between calls, so a retry (or a new
//! process after a crash) resumes from what NIFCLOUD shows.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use csi_core::capability::{AccessKind, CapabilityPolicy, validate_capabilities, validate_capability};
use csi_core::capacity::{CapacityPolicy, pick_capacity};
use csi_core::locks::InFlight;
use csi_core::pagination::paginate;
use csi_core::proto::controller_server::Controller;
use csi_core::proto::controller_service_capability::rpc::Type as Cap;
use csi_core::proto::{self as csi};
use tonic::{Request, Response, Status};

use crate::cloud::{Cloud, CloudError, NewDisk};
use crate::device::DEVICE_PATH_KEY;
use crate::disk::{AttachState, Disk, DiskStatus, GIB, MAX_SIZE_GB, MIN_SIZE_GB, STEP_GB, creating_id, final_id};
use crate::params::{AccountingType, parse_mutable_params, parse_params};
use crate::plan::{
    self, CreateSpec, CreateStep, ExpandStep, Membership, ModifyStep, PublishStep, attached_count, find_by_name,
    next_create_step, next_expand_step, next_modify_step, next_publish_step, transient_count,
};
use crate::poller::VolumeWatch;
use crate::topology::{creation_zones, zone_allowed, zone_topology};

/// Poll intervals to wait for an extension to show after ExtendVolumeSize said "busy".
const BUSY_POLLS: u32 = 10;

/// CreateVolume calls one CreateVolume RPC may make before giving up (each on fresh state).
const MAX_CREATE_ATTEMPTS: u32 = 5;

/// Volume-context key of the disk type.
pub const CONTEXT_DISK_TYPE: &str = "type";
/// Volume-context key (ListVolumes, ControllerGetVolume) of how the disk is billed this month.
pub const CONTEXT_ACCOUNTING: &str = "accountingType";
/// Volume-context key (ListVolumes, ControllerGetVolume) of how it is billed from next month.
pub const CONTEXT_NEXT_MONTH_ACCOUNTING: &str = "nextMonthAccountingType";

/// The capacity rule: 100 GB steps from 100 to 4000 GB, where a NIFCLOUD GB is a GiB ([`GIB`]); 100 GB when
/// unspecified. So a 10Gi claim gets a 100 GB disk of exactly 100Gi, and a 100Gi claim a 100 GB disk.
pub fn capacity_policy() -> CapacityPolicy {
    CapacityPolicy {
        step_bytes: STEP_GB * GIB,
        min_bytes: MIN_SIZE_GB * GIB,
        max_bytes: MAX_SIZE_GB * GIB,
        default_bytes: MIN_SIZE_GB * GIB,
    }
}

/// The one policy of access modes, access types and filesystems: the controller and the node validate every
/// request with it, and both advertise `SINGLE_NODE_MULTI_WRITER` from it
/// ([`CapabilityPolicy::single_node_multi_writer`]), so what is advertised is always accepted.
///
/// Every single-node mode (ReadWriteOnce arrives as `SINGLE_NODE_MULTI_WRITER`, ReadWriteOncePod as
/// `SINGLE_NODE_SINGLE_WRITER`, enforced by the node); block and mount; the filesystems of
/// [`crate::params::FS_TYPES`], whose tools the node image ships.
pub fn capability_policy() -> CapabilityPolicy {
    CapabilityPolicy {
        fs_types: crate::params::FS_TYPES.iter().map(|s| s.to_string()).collect(),
        ..CapabilityPolicy::single_node_disk()
    }
}

/// How the controller behaves.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Servers that may host a new disk while it is being created.
    pub membership: Membership,
}

/// The CSI Controller service for NIFCLOUD additional disks (see the module documentation for the pattern
/// every RPC follows). Clones share the cloud client, the volume poller and the in-flight locks.
#[derive(Debug, Clone)]
pub struct NifcloudController {
    pub(crate) cloud: Cloud,
    pub(crate) watch: VolumeWatch,
    pub(crate) locks: InFlight,
    helpers: HelperSlots,
    pub(crate) config: ControllerConfig,
}

/// Helper-server slots this process is using for creations in flight.
#[derive(Debug, Clone, Default)]
struct HelperSlots(Arc<Mutex<BTreeMap<String, usize>>>);

/// Gives a reserved helper slot back on drop.
#[derive(Debug)]
struct SlotGuard {
    slots: HelperSlots,
    server: String,
}

impl HelperSlots {
    fn snapshot(&self) -> BTreeMap<String, usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn reserve(&self, server: &str) -> SlotGuard {
        *self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(server.to_string())
            .or_insert(0) += 1;
        SlotGuard {
            slots: self.clone(),
            server: server.to_string(),
        }
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut map = self.slots.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.server) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.server);
            }
        }
    }
}

fn required<'a>(value: &'a str, what: &str) -> Result<&'a str, Status> {
    if value.is_empty() {
        Err(Status::invalid_argument(format!("{what} is required")))
    } else {
        Ok(value)
    }
}

/// How a disk is billed, for messages: `pay-per-use`, or `pay-per-use (monthly from next month)`.
fn accounting_text(d: &Disk) -> String {
    let name = |a: Option<AccountingType>| a.map_or("unknown", AccountingType::name);
    match d.next_month_accounting {
        Some(next) if Some(next) != d.accounting => {
            format!("{} ({} from next month)", name(d.accounting), next.name())
        }
        _ => name(d.accounting).to_string(),
    }
}

fn condition(d: &Disk) -> csi::VolumeCondition {
    let abnormal = matches!(d.status, DiskStatus::Other(_)) || d.attachments.len() > 1;
    csi::VolumeCondition {
        abnormal,
        message: format!(
            "disk {} status {:?}, billed {}, {} attachment(s){}",
            d.id,
            d.status,
            accounting_text(d),
            d.attachments.len(),
            d.attachments
                .iter()
                .map(|a| format!(", {} {}", a.instance_id, a.status))
                .collect::<String>()
        ),
    }
}

/// A volume as ListVolumes and ControllerGetVolume show it: [`to_volume`] plus the accounting types now and
/// from next month (not in CreateVolume's context, which Kubernetes keeps in the PV for good).
fn to_listed_volume(d: &Disk) -> csi::Volume {
    let mut v = to_volume(d);
    let billing = [
        (CONTEXT_ACCOUNTING, d.accounting),
        (CONTEXT_NEXT_MONTH_ACCOUNTING, d.next_month_accounting),
    ];
    for (key, value) in billing {
        if let Some(a) = value {
            v.volume_context.insert(key.to_string(), a.name().to_string());
        }
    }
    v
}

fn to_volume(d: &Disk) -> csi::Volume {
    let mut context = HashMap::new();
    if let Some(t) = d.disk_type {
        context.insert(CONTEXT_DISK_TYPE.to_string(), t.param_name().to_string());
    }
    csi::Volume {
        capacity_bytes: d.capacity_bytes(),
        volume_id: d.id.clone(),
        volume_context: context,
        content_source: None,
        accessible_topology: if d.zone.is_empty() {
            vec![]
        } else {
            vec![zone_topology(&d.zone)]
        },
    }
}

fn published_nodes(d: &Disk) -> Vec<String> {
    d.attachments.iter().map(|a| a.instance_id.clone()).collect()
}

impl NifcloudController {
    /// A controller over `cloud`, reading volume state through `watch`.
    pub fn new(cloud: Cloud, watch: VolumeWatch, config: ControllerConfig) -> Self {
        Self {
            cloud,
            watch,
            locks: InFlight::new(),
            helpers: HelperSlots::default(),
            config,
        }
    }

    async fn create(&self, req: &csi::CreateVolumeRequest) -> Result<Disk, Status> {
        let name = required(&req.name, "name")?;
        validate_capabilities(&req.volume_capabilities, &capability_policy())?;
        let params = parse_params(&req.parameters)?;
        // A VolumeAttributesClass's parameters take precedence over the StorageClass's (CSI spec).
        let accounting_type = parse_mutable_params(&req.mutable_parameters)?.unwrap_or(params.accounting_type);
        if req.volume_content_source.is_some() {
            return Err(Status::unimplemented(
                "volume content sources (snapshots, clones) are not supported: NIFCLOUD has no volume snapshot API",
            ));
        }
        let size_gb = pick_capacity(req.capacity_range.as_ref(), &capacity_policy())? / GIB;
        let (required_b, limit_b) = req
            .capacity_range
            .as_ref()
            .map_or((0, 0), |r| (r.required_bytes, r.limit_bytes));
        let spec = CreateSpec {
            name: name.to_string(),
            size_gb,
            min_gb: required_b.saturating_add(GIB - 1) / GIB,
            max_gb: if limit_b > 0 { limit_b / GIB } else { i64::MAX },
            disk_type: params.disk_type,
        };
        let topo = req.accessibility_requirements.as_ref();
        let zones = creation_zones(topo)?;
        let pinned = topo.is_some_and(|t| !t.preferred.is_empty()) && zones.len() == 1;
        let _lock = self.locks.try_lock(&format!("name/{name}"))?;
        let creating = creating_id(name);
        let mut disks = self.watch.fresh().await?;
        let mut create_attempts = 0u32;
        let mut helper_slot: Option<SlotGuard> = None;
        loop {
            let found = find_by_name(&disks, name);
            if let Some(d) = found
                && !d.zone.is_empty()
                && !zone_allowed(topo, &d.zone)?
            {
                return Err(Status::already_exists(format!(
                    "volume {name:?} exists as disk {} in zone {}, outside the requested topology",
                    d.id, d.zone
                )));
            }
            let step = next_create_step(found, &spec);
            tracing::debug!(name, ?step, "create step");
            match step {
                CreateStep::Done(d) => {
                    drop(helper_slot);
                    return Ok(d);
                }
                CreateStep::Incompatible(msg) => return Err(Status::already_exists(msg)),
                CreateStep::Create => {
                    create_attempts += 1;
                    if create_attempts > MAX_CREATE_ATTEMPTS {
                        return Err(Status::unavailable(format!(
                            "volume {name:?}: CreateVolume was refused {MAX_CREATE_ATTEMPTS} times; giving up for now"
                        )));
                    }
                    let servers = self.cloud.servers(false).await?;
                    let reserved = self.helpers.snapshot();
                    let zone = plan::pick_zone(&zones, &servers, &disks, &self.config.membership, &reserved)
                        .ok_or_else(|| {
                        Status::resource_exhausted(format!(
                            "no server of this cluster (patterns {:?}) that accepts disks and has a free slot in {}; \
                             NIFCLOUD creates a disk attached to a server, so one is needed there",
                            self.config.membership,
                            match zones.as_slice() {
                                [] => "any zone".to_string(),
                                [zone] if pinned => format!(
                                    "zone {zone}, the first preferred zone (the selected node's: a disk in another \
                                     zone could never be attached to it)"
                                ),
                                _ => format!("zone(s) {}", zones.join(", ")),
                            }
                        ))
                    })?;
                    let server = plan::pick_server(&servers, &disks, &zone, &self.config.membership, name, &reserved)
                        .map(|s| s.name.clone())
                        .ok_or_else(|| Status::resource_exhausted(format!("no helper server in zone {zone}")))?;
                    helper_slot = Some(self.helpers.reserve(&server));
                    let new = NewDisk {
                        id: creating.clone(),
                        size_gb,
                        disk_type: params.disk_type,
                        accounting_type,
                        description: name.to_string(),
                        server: server.clone(),
                    };
                    tracing::info!(name, disk = %new.id, size_gb, %zone, %server, "creating disk on helper server");
                    match self.cloud.create_disk(&new).await {
                        Ok(()) => {}
                        // An earlier attempt's disk, not yet visible, or another server filled up.
                        Err(e) if e.kind() == nifcloud_sdk::ErrorKind::Duplicate => {}
                        Err(e) if e.kind().is_retryable() || e.kind() == nifcloud_sdk::ErrorKind::Inoperable => {
                            tracing::warn!(name, error = %e, "CreateVolume refused; looking again");
                            self.cloud.servers(true).await?;
                        }
                        Err(e) => return Err(e.into()),
                    }
                    disks = self
                        .watch
                        .wait_until(&creating, &format!("disk {creating} of {name} to be created"), |d| {
                            !matches!(next_create_step(find_by_name(d, name), &spec), CreateStep::WaitAttached)
                        })
                        .await?;
                }
                CreateStep::WaitAttached | CreateStep::WaitAvailable => {
                    disks = self
                        .watch
                        .wait_until(&creating, &format!("disk {creating} of {name} to settle"), |d| {
                            next_create_step(find_by_name(d, name), &spec) != step
                        })
                        .await?;
                }
                CreateStep::Detach(server) => {
                    match self.cloud.detach(&creating, &server).await {
                        Ok(()) => {}
                        Err(e)
                            if e.kind() == nifcloud_sdk::ErrorKind::Inoperable
                                || e.kind().is_retryable()
                                || e.is_not_found() =>
                        {
                            tracing::debug!(name, error = %e, "DetachVolume refused; looking again");
                        }
                        Err(e) => return Err(e.into()),
                    }
                    disks = self
                        .watch
                        .wait_until(
                            &creating,
                            &format!("disk {creating} of {name} to detach from {server}"),
                            |d| {
                                !matches!(
                                    next_create_step(find_by_name(d, name), &spec),
                                    CreateStep::WaitAvailable | CreateStep::Detach(_)
                                )
                            },
                        )
                        .await?;
                }
                CreateStep::Finish => {
                    let done = final_id(name);
                    match self.cloud.rename(&creating, &done).await {
                        Ok(()) => {}
                        Err(e) if e.is_not_found() || e.kind().is_retryable() => {}
                        Err(e) => return Err(e.into()),
                    }
                    disks = self
                        .watch
                        .wait_until(&done, &format!("disk {creating} of {name} to become {done}"), |d| {
                            !matches!(next_create_step(find_by_name(d, name), &spec), CreateStep::Finish)
                        })
                        .await?;
                }
            }
        }
    }

    async fn find(&self, id: &str) -> Result<Option<(Disk, std::sync::Arc<Vec<Disk>>)>, Status> {
        let disks = self.watch.fresh().await?;
        Ok(disks.iter().find(|d| d.id == id).cloned().map(|d| (d, disks.clone())))
    }

    async fn publish(&self, req: &csi::ControllerPublishVolumeRequest) -> Result<String, Status> {
        let id = required(&req.volume_id, "volume_id")?;
        let node_id = required(&req.node_id, "node_id")?;
        let cap = req
            .volume_capability
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("volume_capability is required"))?;
        validate_capability(cap, &capability_policy())?;
        let _lock = self.locks.try_lock(&format!("volume/{id}"))?;
        let node =
            self.cloud.server(node_id).await?.ok_or_else(|| {
                Status::not_found(format!("node {node_id:?} is not a NIFCLOUD server of this account"))
            })?;
        // The server's own name from here on (a node name may differ from it in case).
        let node_id = node.name.as_str();
        let (_, mut disks) = self
            .find(id)
            .await?
            .ok_or_else(|| Status::not_found(format!("volume {id:?} does not exist")))?;
        loop {
            let disk = disks
                .iter()
                .find(|d| d.id == id)
                .ok_or_else(|| Status::not_found(format!("volume {id:?} no longer exists")))?;
            let step = next_publish_step(
                disk,
                &node,
                attached_count(&disks, node_id),
                transient_count(&disks, node_id),
            );
            tracing::debug!(volume = id, node = node_id, ?step, "publish step");
            match step {
                PublishStep::Done(Some(device)) => return Ok(device),
                PublishStep::Done(None) => {
                    return self.cloud.device_name(node_id, id).await?.ok_or_else(|| {
                        Status::internal(format!(
                            "volume {id} is attached to {node_id} but has no SCSI device name"
                        ))
                    });
                }
                PublishStep::AttachedElsewhere(other) => {
                    return Err(Status::failed_precondition(format!(
                        "volume {id} is attached to {other}; it attaches to one node at a time"
                    )));
                }
                PublishStep::NodeFull => {
                    return Err(Status::resource_exhausted(format!(
                        "node {node_id} already has the maximum of {} disks",
                        crate::disk::MAX_DISKS_PER_SERVER
                    )));
                }
                PublishStep::WrongZone(zone) => {
                    return Err(Status::failed_precondition(format!(
                        "volume {id} is in zone {zone} but node {node_id} is in {}",
                        node.zone
                    )));
                }
                PublishStep::Attach => match self.cloud.attach(id, node_id).await {
                    Ok(()) => {}
                    Err(e) if e.code() == Some("Client.Inoperable.Instance.VolumeLimitExceeded") => {
                        return Err(Status::resource_exhausted(e.to_string()));
                    }
                    Err(e) if e.is_not_found() => return Err(Status::not_found(e.to_string())),
                    Err(e) if e.kind() == nifcloud_sdk::ErrorKind::Inoperable || e.kind().is_retryable() => {
                        tracing::debug!(volume = id, error = %e, "AttachVolume refused; looking again");
                    }
                    Err(e) => return Err(e.into()),
                },
                PublishStep::Wait => {}
            }
            disks = self
                .watch
                .wait_until(id, &format!("volume {id} to attach to {node_id}"), |d| {
                    d.iter().find(|x| x.id == id).is_none_or(|x| {
                        !matches!(
                            next_publish_step(x, &node, attached_count(d, node_id), transient_count(d, node_id)),
                            PublishStep::Wait | PublishStep::Attach
                        )
                    })
                })
                .await?;
        }
    }

    async fn unpublish(&self, req: &csi::ControllerUnpublishVolumeRequest) -> Result<(), Status> {
        let id = required(&req.volume_id, "volume_id")?;
        let _lock = self.locks.try_lock(&format!("volume/{id}"))?;
        let Some((_, mut disks)) = self.find(id).await? else {
            return Ok(());
        };
        loop {
            let Some(disk) = disks.iter().find(|d| d.id == id) else {
                return Ok(());
            };
            let target = disk
                .attachments
                .iter()
                .find(|a| req.node_id.is_empty() || a.instance_id.eq_ignore_ascii_case(&req.node_id))
                .cloned();
            let Some(att) = target else { return Ok(()) };
            if att.status != AttachState::Detaching {
                match self.cloud.detach(id, &att.instance_id).await {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => return Ok(()),
                    Err(e) if e.kind() == nifcloud_sdk::ErrorKind::Inoperable || e.kind().is_retryable() => {
                        tracing::debug!(volume = id, error = %e, "DetachVolume refused; looking again");
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            let node = att.instance_id.clone();
            disks = self
                .watch
                .wait_until(id, &format!("volume {id} to detach from {node}"), |d| {
                    d.iter().find(|x| x.id == id).is_none_or(|x| {
                        x.attachment_to(&node)
                            .is_none_or(|a| !matches!(a.status, AttachState::Detaching | AttachState::Attached))
                    })
                })
                .await?;
        }
    }

    async fn modify(&self, req: &csi::ControllerModifyVolumeRequest) -> Result<(), Status> {
        let id = required(&req.volume_id, "volume_id")?;
        let wanted = parse_mutable_params(&req.mutable_parameters)?;
        let _lock = self.locks.try_lock(&format!("volume/{id}"))?;
        let (disk, _) = self
            .find(id)
            .await?
            .ok_or_else(|| Status::not_found(format!("volume {id:?} does not exist")))?;
        let Some(wanted) = wanted else { return Ok(()) };
        if !disk.is_managed() {
            return Err(Status::failed_precondition(format!(
                "disk {id} (description {:?}) was not created by this driver; refusing to change its billing",
                disk.description
            )));
        }
        match next_modify_step(&disk, wanted) {
            ModifyStep::Done => return Ok(()),
            ModifyStep::Pending => {
                tracing::info!(
                    volume = id,
                    accounting = wanted.name(),
                    "accounting type change already pending for next month; not repeated"
                );
                return Ok(());
            }
            ModifyStep::Modify => {}
        }
        match self.cloud.set_accounting(id, wanted).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => return Err(Status::not_found(e.to_string())),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(
            volume = id,
            from = %accounting_text(&disk),
            to = wanted.name(),
            "accounting type changed from next month"
        );
        self.watch
            .wait_until(
                id,
                &format!("volume {id} to be billed {} from next month", wanted.name()),
                |d| {
                    d.iter()
                        .find(|x| x.id == id)
                        .is_none_or(|x| next_modify_step(x, wanted) != ModifyStep::Modify)
                },
            )
            .await?;
        Ok(())
    }

    async fn expand(&self, req: &csi::ControllerExpandVolumeRequest) -> Result<(i64, bool), Status> {
        let id = required(&req.volume_id, "volume_id")?;
        let range = req
            .capacity_range
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("capacity_range is required"))?;
        let target_gb = pick_capacity(Some(range), &capacity_policy())? / GIB;
        let block = req
            .volume_capability
            .as_ref()
            .map(|c| validate_capability(c, &capability_policy()))
            .transpose()?
            .is_some_and(|k| k == AccessKind::Block);
        let _lock = self.locks.try_lock(&format!("volume/{id}"))?;
        let (_, mut disks) = self
            .find(id)
            .await?
            .ok_or_else(|| Status::not_found(format!("volume {id:?} does not exist")))?;
        loop {
            let disk = disks
                .iter()
                .find(|d| d.id == id)
                .ok_or_else(|| Status::not_found(format!("volume {id:?} no longer exists")))?;
            let step = next_expand_step(disk, target_gb);
            tracing::debug!(volume = id, size_gb = disk.size_gb, target_gb, ?step, "expand step");
            let before = disk.size_gb;
            match step {
                ExpandStep::Done => return Ok((disk.capacity_bytes(), !block)),
                ExpandStep::Wait => {
                    disks = self
                        .watch
                        .wait_until(id, &format!("volume {id} to be idle"), |d| {
                            d.iter()
                                .find(|x| x.id == id)
                                .is_none_or(|x| next_expand_step(x, target_gb) != ExpandStep::Wait)
                        })
                        .await?;
                }
                ExpandStep::Extend => {
                    match self.cloud.extend(id).await {
                        Ok(()) => {
                            tracing::info!(volume = id, from_gb = before, target_gb, "extended by 100 GB");
                        }
                        Err(e) if e.is_not_found() => return Err(Status::not_found(e.to_string())),
                        Err(e) if e.kind().is_retryable() => {
                            // Busy: possibly an extension we cannot see (a detached disk shows no
                            // progress). Give it a while to show up before deciding again; while
                            // it runs, NIFCLOUD refuses another extension, so deciding again is
                            // safe.
                            tracing::debug!(volume = id, error = %e, "ExtendVolumeSize refused; looking again");
                            let window = (self.watch.interval() * BUSY_POLLS).min(self.watch.timeout());
                            let grown = self
                                .watch
                                .wait_within(id, &format!("volume {id} to grow beyond {before} GB"), window, |d| {
                                    d.iter().find(|x| x.id == id).is_none_or(|x| x.size_gb > before)
                                })
                                .await;
                            disks = match grown {
                                Ok(d) => d,
                                Err(CloudError::WaitTimeout { .. }) => self.watch.fresh().await?,
                                Err(e) => return Err(e.into()),
                            };
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    }
                    disks = self
                        .watch
                        .wait_until(id, &format!("volume {id} to grow beyond {before} GB"), |d| {
                            d.iter().find(|x| x.id == id).is_none_or(|x| {
                                x.size_gb > before && next_expand_step(x, target_gb) != ExpandStep::Wait
                            })
                        })
                        .await?;
                }
            }
        }
    }
}

fn status_from(e: CloudError) -> Status {
    e.into()
}

#[tonic::async_trait]
impl Controller for NifcloudController {
    async fn create_volume(
        &self,
        request: Request<csi::CreateVolumeRequest>,
    ) -> Result<Response<csi::CreateVolumeResponse>, Status> {
        let d = self.create(request.get_ref()).await?;
        let mut volume = to_volume(&d);
        // Validated by `create`; the node formats with these arguments (csi-core reads them from the context).
        if let Some(opts) = parse_params(&request.get_ref().parameters)
            .ok()
            .and_then(|p| p.mkfs_options)
        {
            volume
                .volume_context
                .insert(csi_core::node::MKFS_OPTIONS_KEY.to_string(), opts);
        }
        Ok(Response::new(csi::CreateVolumeResponse { volume: Some(volume) }))
    }

    async fn delete_volume(
        &self,
        request: Request<csi::DeleteVolumeRequest>,
    ) -> Result<Response<csi::DeleteVolumeResponse>, Status> {
        let id = required(&request.get_ref().volume_id, "volume_id")?;
        let _lock = self.locks.try_lock(&format!("volume/{id}"))?;
        let Some((disk, _)) = self.find(id).await? else {
            return Ok(Response::new(csi::DeleteVolumeResponse {}));
        };
        if let Some(a) = disk.attachments.first() {
            return Err(Status::failed_precondition(format!(
                "volume {id} is attached to {} ({}); unpublish it first",
                a.instance_id, a.status
            )));
        }
        if !disk.is_managed() {
            return Err(Status::failed_precondition(format!(
                "disk {id} (description {:?}) was not created by this driver; refusing to delete it",
                disk.description
            )));
        }
        match self.cloud.delete(id).await {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(status_from(e)),
        }
        tracing::info!(volume = id, "deleted");
        Ok(Response::new(csi::DeleteVolumeResponse {}))
    }

    async fn controller_publish_volume(
        &self,
        request: Request<csi::ControllerPublishVolumeRequest>,
    ) -> Result<Response<csi::ControllerPublishVolumeResponse>, Status> {
        let device = self.publish(request.get_ref()).await?;
        Ok(Response::new(csi::ControllerPublishVolumeResponse {
            publish_context: HashMap::from([(DEVICE_PATH_KEY.to_string(), device)]),
        }))
    }

    async fn controller_unpublish_volume(
        &self,
        request: Request<csi::ControllerUnpublishVolumeRequest>,
    ) -> Result<Response<csi::ControllerUnpublishVolumeResponse>, Status> {
        self.unpublish(request.get_ref()).await?;
        Ok(Response::new(csi::ControllerUnpublishVolumeResponse {}))
    }

    async fn validate_volume_capabilities(
        &self,
        request: Request<csi::ValidateVolumeCapabilitiesRequest>,
    ) -> Result<Response<csi::ValidateVolumeCapabilitiesResponse>, Status> {
        let req = request.get_ref();
        let id = required(&req.volume_id, "volume_id")?;
        if req.volume_capabilities.is_empty() {
            return Err(Status::invalid_argument("volume_capabilities is required"));
        }
        if self.find(id).await?.is_none() {
            return Err(Status::not_found(format!("volume {id:?} does not exist")));
        }
        let unconfirmed = |message: String| {
            Ok(Response::new(csi::ValidateVolumeCapabilitiesResponse {
                confirmed: None,
                message,
            }))
        };
        if let Err(e) = parse_params(&req.parameters) {
            return unconfirmed(e.to_string());
        }
        if let Err(e) = parse_mutable_params(&req.mutable_parameters) {
            return unconfirmed(e.to_string());
        }
        if let Err(e) = validate_capabilities(&req.volume_capabilities, &capability_policy()) {
            return unconfirmed(e.to_string());
        }
        Ok(Response::new(csi::ValidateVolumeCapabilitiesResponse {
            confirmed: Some(csi::validate_volume_capabilities_response::Confirmed {
                volume_context: req.volume_context.clone(),
                volume_capabilities: req.volume_capabilities.clone(),
                parameters: req.parameters.clone(),
                mutable_parameters: req.mutable_parameters.clone(),
            }),
            message: String::new(),
        }))
    }

    async fn list_volumes(
        &self,
        request: Request<csi::ListVolumesRequest>,
    ) -> Result<Response<csi::ListVolumesResponse>, Status> {
        let req = request.get_ref();
        let disks = self.watch.fresh().await?;
        let mut ours: Vec<&Disk> = disks.iter().filter(|d| d.is_managed() && !d.is_creating()).collect();
        ours.sort_by(|a, b| a.id.cmp(&b.id));
        let (page, next) = paginate(&ours, |d| d.id.as_str(), &req.starting_token, req.max_entries)?;
        let entries = page
            .iter()
            .map(|d| csi::list_volumes_response::Entry {
                volume: Some(to_listed_volume(d)),
                status: Some(csi::list_volumes_response::VolumeStatus {
                    published_node_ids: published_nodes(d),
                    volume_condition: Some(condition(d)),
                }),
            })
            .collect();
        Ok(Response::new(csi::ListVolumesResponse {
            entries,
            next_token: next,
        }))
    }

    async fn get_capacity(
        &self,
        _request: Request<csi::GetCapacityRequest>,
    ) -> Result<Response<csi::GetCapacityResponse>, Status> {
        Err(Status::unimplemented(
            "GetCapacity: NIFCLOUD reports no storage capacity per zone",
        ))
    }

    async fn controller_get_capabilities(
        &self,
        _request: Request<csi::ControllerGetCapabilitiesRequest>,
    ) -> Result<Response<csi::ControllerGetCapabilitiesResponse>, Status> {
        let caps = [
            Cap::CreateDeleteVolume,
            Cap::PublishUnpublishVolume,
            Cap::ListVolumes,
            Cap::ListVolumesPublishedNodes,
            Cap::ExpandVolume,
            Cap::GetVolume,
            Cap::VolumeCondition,
            Cap::ModifyVolume,
        ];
        let multi_writer = capability_policy()
            .single_node_multi_writer()
            .then_some(Cap::SingleNodeMultiWriter);
        Ok(Response::new(csi::ControllerGetCapabilitiesResponse {
            capabilities: caps
                .into_iter()
                .chain(multi_writer)
                .map(|t| csi::ControllerServiceCapability {
                    r#type: Some(csi::controller_service_capability::Type::Rpc(
                        csi::controller_service_capability::Rpc { r#type: t as i32 },
                    )),
                })
                .collect(),
        }))
    }

    async fn create_snapshot(
        &self,
        _request: Request<csi::CreateSnapshotRequest>,
    ) -> Result<Response<csi::CreateSnapshotResponse>, Status> {
        Err(Status::unimplemented("NIFCLOUD has no volume snapshot API"))
    }

    async fn delete_snapshot(
        &self,
        _request: Request<csi::DeleteSnapshotRequest>,
    ) -> Result<Response<csi::DeleteSnapshotResponse>, Status> {
        Err(Status::unimplemented("NIFCLOUD has no volume snapshot API"))
    }

    async fn list_snapshots(
        &self,
        _request: Request<csi::ListSnapshotsRequest>,
    ) -> Result<Response<csi::ListSnapshotsResponse>, Status> {
        Err(Status::unimplemented("NIFCLOUD has no volume snapshot API"))
    }

    async fn get_snapshot(
        &self,
        _request: Request<csi::GetSnapshotRequest>,
    ) -> Result<Response<csi::GetSnapshotResponse>, Status> {
        Err(Status::unimplemented("NIFCLOUD has no volume snapshot API"))
    }

    async fn controller_expand_volume(
        &self,
        request: Request<csi::ControllerExpandVolumeRequest>,
    ) -> Result<Response<csi::ControllerExpandVolumeResponse>, Status> {
        let (capacity_bytes, node_expansion_required) = self.expand(request.get_ref()).await?;
        Ok(Response::new(csi::ControllerExpandVolumeResponse {
            capacity_bytes,
            node_expansion_required,
        }))
    }

    async fn controller_get_volume(
        &self,
        request: Request<csi::ControllerGetVolumeRequest>,
    ) -> Result<Response<csi::ControllerGetVolumeResponse>, Status> {
        let id = required(&request.get_ref().volume_id, "volume_id")?;
        let (d, _) = self
            .find(id)
            .await?
            .ok_or_else(|| Status::not_found(format!("volume {id:?} does not exist")))?;
        Ok(Response::new(csi::ControllerGetVolumeResponse {
            volume: Some(to_listed_volume(&d)),
            status: Some(csi::controller_get_volume_response::VolumeStatus {
                published_node_ids: published_nodes(&d),
                volume_condition: Some(condition(&d)),
            }),
        }))
    }

    async fn controller_modify_volume(
        &self,
        request: Request<csi::ControllerModifyVolumeRequest>,
    ) -> Result<Response<csi::ControllerModifyVolumeResponse>, Status> {
        self.modify(request.get_ref()).await?;
        Ok(Response::new(csi::ControllerModifyVolumeResponse {}))
    }
}
