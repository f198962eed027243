//! Additional disks: CreateVolume, AttachVolume, DetachVolume, DeleteVolume, ExtendVolumeSize,
//! ModifyVolumeAttribute, DescribeVolumes.
//!
//! Rules (emulator choices are marked *):
//! - Size 100..=4000 GB in steps of 100; ExtendVolumeSize adds 100 GB per call up to 4000.
//! - DiskType is a code 2..=9 on input (default 2*) and its English name on output.
//! - SCSI slots: the boot disk is `SCSI (0:0)`; unit 7 is the controller's* (as on VMware), so
//!   additional disks get the lowest free N in 1..=15 except 7, i.e. at most 14 per instance.
//!   A 15th disk gets `Client.Inoperable.Instance.VolumeLimitExceeded`*.
//! - A volume in a transition (creating, attaching, detaching, extending) rejects other changes with
//!   `Server.ResourceIncorrectState.Volume.Processing`*.
//! - DeleteVolume of an attached volume: `Client.Inoperable.Volume.InUse`*.

use serde::{Deserialize, Serialize};

use super::{State, after, jst, valid_name};
use crate::error::ApiError;
use crate::wire::Params;
use crate::xml::Xml;

/// Smallest volume size in GB.
pub const MIN_SIZE_GB: u32 = 100;
/// Largest volume size in GB.
pub const MAX_SIZE_GB: u32 = 4000;
/// Additional disks an instance can hold.
pub const MAX_DISKS_PER_INSTANCE: usize = 14;

/// The English name of a DiskType code.
pub fn disk_type_name(code: u8) -> Option<&'static str> {
    Some(match code {
        2 => "Standard Storage",
        3 => "High-Speed Storage A",
        4 => "High-Speed Storage B",
        5 => "Flash Storage",
        6 => "Standard Flash Storage A",
        7 => "Standard Flash Storage B",
        8 => "High-Speed Flash Storage A",
        9 => "High-Speed Flash Storage B",
        _ => return None,
    })
}

/// `SCSI (0:N)`.
pub fn device_name(n: u8) -> String {
    format!("SCSI (0:{n})")
}

/// The SCSI units additional disks may use, in allocation order.
pub fn scsi_units() -> impl Iterator<Item = u8> {
    (1..=15u8).filter(|n| *n != 7)
}

/// Phase of an attachment.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AttachPhase {
    /// `attaching` until `until`.
    Attaching,
    /// `attached`.
    Attached,
    /// `detaching` until `until`, then gone.
    Detaching,
}

/// A volume's attachment to an instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Attachment {
    /// `instanceUniqueId` of the server it is attached to.
    pub instance_unique_id: String,
    /// The SCSI unit N of the device name `SCSI (0:N)`: 1-15 except 7.
    pub device_index: u8,
    /// Where the attachment is in its life; `until` ends a transition.
    pub phase: AttachPhase,
    /// End of the current phase (epoch ms).
    pub until: i64,
    /// When the attach started (epoch ms).
    pub attach_time: i64,
}

/// One additional disk.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Volume {
    /// Name (`volumeId`), renameable.
    pub name: String,
    /// `volumeUniqueId` (`vol-…`).
    pub unique_id: String,
    /// Size in GB.
    pub size_gb: u32,
    /// `DiskType` code, 2-9 (reported by its English name, [`disk_type_name`]).
    pub disk_type: u8,
    /// The availability zone: the one of the server it was created attached to.
    pub zone: String,
    /// `Description`, free text (the CSI driver keeps the volume's CSI name here).
    pub description: String,
    /// `AccountingType` in force: `1` monthly, `2` pay-per-use.
    pub accounting_type: String,
    /// `NextMonthAccountingType`: what `accounting_type` becomes next month (`1` or `2`).
    pub next_month_accounting_type: String,
    /// Creation time (epoch ms).
    pub create_time: i64,
    /// `creating` until this time (epoch ms).
    pub creating_until: i64,
    /// The server it is attached to, in whatever phase (a volume attaches to one server at a time).
    pub attachment: Option<Attachment>,
    /// An ExtendVolumeSize in progress finishes at this time.
    pub extend_until: Option<i64>,
}

impl Volume {
    /// `status`: creating, in-use or available.
    pub fn status(&self, now: i64) -> &'static str {
        if now < self.creating_until {
            "creating"
        } else if self.attachment.is_some() {
            "in-use"
        } else {
            "available"
        }
    }

    /// Attachment `status` (empty if none): attaching, attached or detaching; `attaching` while extending.
    pub fn attachment_status(&self, _now: i64) -> &'static str {
        match &self.attachment {
            None => "",
            Some(a) => match a.phase {
                AttachPhase::Attaching => "attaching",
                AttachPhase::Detaching => "detaching",
                AttachPhase::Attached if self.extend_until.is_some() => "attaching",
                AttachPhase::Attached => "attached",
            },
        }
    }

    fn busy(&self, now: i64) -> bool {
        now < self.creating_until
            || self.extend_until.is_some()
            || self
                .attachment
                .as_ref()
                .is_some_and(|a| a.phase != AttachPhase::Attached)
    }
}

pub(super) fn settle(st: &mut State, now: i64) {
    for vol in st.volumes.values_mut() {
        if let Some(t) = vol.extend_until
            && t <= now
        {
            vol.extend_until = None;
            vol.size_gb = (vol.size_gb + 100).min(MAX_SIZE_GB);
            if let Some(block) = st.block.as_mut() {
                block.resize(&vol.unique_id, vol.size_gb);
            }
        }
        let Some(a) = vol.attachment.as_mut() else { continue };
        if a.until > now {
            continue;
        }
        match a.phase {
            AttachPhase::Attaching => a.phase = AttachPhase::Attached,
            AttachPhase::Detaching => vol.attachment = None,
            AttachPhase::Attached => {}
        }
    }
}

fn volume<'a>(st: &'a State, name: &str) -> Result<&'a Volume, ApiError> {
    st.volumes.get(name).ok_or_else(|| ApiError::not_found("Volume", name))
}

/// The lowest free SCSI unit of an instance, or the per-instance limit error.
fn free_unit(st: &State, instance_uid: &str, instance_name: &str) -> Result<u8, ApiError> {
    let used: Vec<u8> = st
        .volumes
        .values()
        .filter_map(|v| v.attachment.as_ref())
        .filter(|a| a.instance_unique_id == instance_uid)
        .map(|a| a.device_index)
        .collect();
    scsi_units().find(|n| !used.contains(n)).ok_or_else(|| {
        ApiError::new(
            "Client.Inoperable.Instance.VolumeLimitExceeded",
            format!("The instance {instance_name:?} already has {MAX_DISKS_PER_INSTANCE} disks."),
        )
    })
}

fn check_size(size: i64) -> Result<u32, ApiError> {
    if (i64::from(MIN_SIZE_GB)..=i64::from(MAX_SIZE_GB)).contains(&size) && size % 100 == 0 {
        Ok(size as u32)
    } else {
        Err(ApiError::invalid("Size", &size.to_string()))
    }
}

fn accounting(p: &Params, key: &str) -> Result<Option<String>, ApiError> {
    match p.opt(key) {
        None => Ok(None),
        Some(v @ ("1" | "2")) => Ok(Some(v.to_owned())),
        Some(v) => Err(ApiError::invalid(key, v)),
    }
}

/// `CreateVolume`: Size, InstanceId or InstanceUniqueId, optional VolumeId, DiskType, AccountingType, Description.
pub fn create_volume(st: &mut State, p: &Params, x: &mut Xml, now: i64) -> Result<(), ApiError> {
    let size = check_size(p.req_int("Size")?)?;
    let disk_type = match p.opt("DiskType") {
        None => 2,
        Some(v) => v
            .parse::<u8>()
            .ok()
            .filter(|c| disk_type_name(*c).is_some())
            .ok_or_else(|| ApiError::invalid("DiskType", v))?,
    };
    let acct = accounting(p, "AccountingType")?.unwrap_or_else(|| "1".into());
    let inst = match (p.opt("InstanceId"), p.opt("InstanceUniqueId")) {
        (Some(name), _) => st.instance(name)?,
        (None, Some(uid)) => st
            .instance_by_uid(uid)
            .ok_or_else(|| ApiError::not_found("Instance", uid))?,
        (None, None) => return Err(ApiError::missing("InstanceId")),
    };
    if !inst.accepts_disks() {
        return Err(ApiError::processing("Instance", &inst.name));
    }
    let (inst_name, inst_uid, zone) = (inst.name.clone(), inst.unique_id.clone(), inst.zone.clone());
    let name = match p.opt("VolumeId") {
        Some(n) if !valid_name(n, 32) => return Err(ApiError::invalid("VolumeId", n)),
        Some(n) if st.volumes.contains_key(n) => return Err(ApiError::duplicate("Volume", n)),
        Some(n) => n.to_owned(),
        None => loop {
            let n = st.new_name();
            if !st.volumes.contains_key(&n) {
                break n;
            }
        },
    };
    let unit = free_unit(st, &inst_uid, &inst_name)?;
    let unique_id = st.new_id("vol");
    if let Some(block) = st.block.as_mut() {
        block.attach(&unique_id, &inst_name, unit, size)?;
    }
    let creating_until = after(now, st.delays.volume_create_ms);
    let vol = Volume {
        name: name.clone(),
        unique_id,
        size_gb: size,
        disk_type,
        zone,
        description: p.opt("Description").unwrap_or("").to_owned(),
        accounting_type: acct.clone(),
        next_month_accounting_type: acct,
        create_time: now,
        creating_until,
        attachment: Some(Attachment {
            instance_unique_id: inst_uid,
            device_index: unit,
            phase: AttachPhase::Attaching,
            until: after(creating_until, st.delays.volume_attach_ms),
            attach_time: now,
        }),
        extend_until: None,
    };
    x.leaf("volumeId", &vol.name)
        .leaf("volumeUniqueId", &vol.unique_id)
        .leaf("size", vol.size_gb)
        .leaf("diskType", disk_type_name(vol.disk_type).unwrap_or(""))
        .leaf("snapshotId", "")
        .leaf("availabilityZone", &vol.zone)
        .leaf("status", vol.status(now))
        .leaf("createTime", jst(vol.create_time))
        .leaf("accountingType", &vol.accounting_type)
        .leaf("description", &vol.description);
    st.volumes.insert(name, vol);
    Ok(())
}

fn attach_reply(x: &mut Xml, vol: &Volume, inst_name: &str, status: &str) {
    let a = vol.attachment.as_ref();
    x.leaf("volumeId", &vol.name)
        .leaf("volumeUniqueId", &vol.unique_id)
        .leaf("instanceId", inst_name)
        .leaf(
            "instanceUniqueId",
            a.map(|a| a.instance_unique_id.as_str()).unwrap_or(""),
        )
        .leaf("device", a.map(|a| device_name(a.device_index)).unwrap_or_default())
        .leaf("status", status)
        .leaf("attachTime", a.map(|a| jst(a.attach_time)).unwrap_or_default());
}

/// `AttachVolume`: VolumeId, InstanceId (`Device` is ignored: the lowest free SCSI unit is used).
pub fn attach_volume(st: &mut State, p: &Params, x: &mut Xml, now: i64) -> Result<(), ApiError> {
    let vname = p.req("VolumeId")?;
    let iname = p.req("InstanceId")?;
    let vol = volume(st, vname)?;
    let inst = st.instance(iname)?;
    if let Some(a) = &vol.attachment {
        if a.phase == AttachPhase::Detaching {
            return Err(ApiError::processing("Volume", vname));
        }
        return Err(ApiError::inoperable(
            "Server.Inoperable.Volume.AlreadyAttached",
            format!(
                "The volume {vname:?} is already attached to {:?}.",
                st.instance_name(&a.instance_unique_id)
            ),
        ));
    }
    if vol.busy(now) {
        return Err(ApiError::processing("Volume", vname));
    }
    if vol.zone != inst.zone {
        return Err(ApiError::inoperable(
            "Client.Inoperable.Volume.DifferentAvailabilityZone",
            format!(
                "The volume {vname:?} is in {} but the instance {iname:?} is in {}.",
                vol.zone, inst.zone
            ),
        ));
    }
    if !inst.accepts_disks() {
        return Err(ApiError::processing("Instance", iname));
    }
    let (inst_uid, inst_name) = (inst.unique_id.clone(), inst.name.clone());
    let unit = free_unit(st, &inst_uid, &inst_name)?;
    let (vuid, size) = (vol.unique_id.clone(), vol.size_gb);
    if let Some(block) = st.block.as_mut() {
        block.attach(&vuid, &inst_name, unit, size)?;
    }
    let delay = st.delays.volume_attach_ms;
    let Some(vol) = st.volumes.get_mut(vname) else {
        return Err(ApiError::not_found("Volume", vname));
    };
    vol.attachment = Some(Attachment {
        instance_unique_id: inst_uid,
        device_index: unit,
        phase: if delay == 0 {
            AttachPhase::Attached
        } else {
            AttachPhase::Attaching
        },
        until: after(now, delay),
        attach_time: now,
    });
    let status = vol.attachment_status(now);
    attach_reply(x, vol, &inst_name, status);
    Ok(())
}

/// `DetachVolume`: VolumeId, `Agreement=true` required, optional InstanceId (must match).
pub fn detach_volume(st: &mut State, p: &Params, x: &mut Xml, now: i64) -> Result<(), ApiError> {
    let vname = p.req("VolumeId")?;
    let vol = volume(st, vname)?;
    if p.bool("Agreement")? != Some(true) {
        return Err(ApiError::new(
            "Client.InvalidParameter.Agreement",
            "DetachVolume needs Agreement=true.",
        ));
    }
    p.bool("Force")?;
    let Some(a) = &vol.attachment else {
        return Err(ApiError::inoperable(
            "Client.Inoperable.Volume.DetachedFromInstance",
            format!("The volume {vname:?} is not attached."),
        ));
    };
    let attached_to = st.instance_name(&a.instance_unique_id);
    if let Some(iname) = p.opt("InstanceId") {
        st.instance(iname)?;
        if iname != attached_to {
            return Err(ApiError::inoperable(
                "Client.Inoperable.Volume.DetachedFromInstance",
                format!("The volume {vname:?} is not attached to {iname:?}."),
            ));
        }
    }
    if vol.busy(now) {
        return Err(ApiError::processing("Volume", vname));
    }
    let delay = st.delays.volume_detach_ms;
    let (vuid, unit) = (vol.unique_id.clone(), a.device_index);
    if let Some(block) = st.block.as_mut() {
        block.detach(&vuid, &attached_to, unit);
    }
    let Some(vol) = st.volumes.get_mut(vname) else {
        return Err(ApiError::not_found("Volume", vname));
    };
    if let Some(a) = vol.attachment.as_mut() {
        a.phase = AttachPhase::Detaching;
        a.until = after(now, delay);
    }
    attach_reply(x, vol, &attached_to, "detaching");
    if delay == 0 {
        vol.attachment = None;
    }
    Ok(())
}

/// `DeleteVolume`: only an available (detached, settled) volume.
pub fn delete_volume(st: &mut State, p: &Params, x: &mut Xml, now: i64) -> Result<(), ApiError> {
    let vname = p.req("VolumeId")?;
    let vol = volume(st, vname)?;
    if vol.attachment.is_some() {
        return Err(ApiError::inoperable(
            "Client.Inoperable.Volume.InUse",
            format!("The volume {vname:?} is attached."),
        ));
    }
    if vol.busy(now) {
        return Err(ApiError::processing("Volume", vname));
    }
    let uid = vol.unique_id.clone();
    if let Some(block) = st.block.as_mut() {
        block.delete(&uid);
    }
    st.volumes.remove(vname);
    x.leaf("return", "true");
    Ok(())
}

/// `ExtendVolumeSize`: +100 GB; while it runs the attachment shows `attaching`.
pub fn extend_volume_size(st: &mut State, p: &Params, x: &mut Xml, now: i64) -> Result<(), ApiError> {
    let vname = p.req("VolumeId")?;
    if let Some(r) = p.opt("NiftyReboot")
        && !matches!(r, "force" | "true" | "false")
    {
        return Err(ApiError::invalid("NiftyReboot", r));
    }
    let vol = volume(st, vname)?;
    if vol.busy(now) {
        return Err(ApiError::processing("Volume", vname));
    }
    if vol.size_gb + 100 > MAX_SIZE_GB {
        return Err(ApiError::new(
            "Client.InvalidParameter.Size",
            format!("The volume {vname:?} is already {MAX_SIZE_GB} GB."),
        ));
    }
    let delay = st.delays.volume_extend_ms;
    let Some(vol) = st.volumes.get_mut(vname) else {
        return Err(ApiError::not_found("Volume", vname));
    };
    vol.extend_until = Some(after(now, delay));
    if delay == 0 {
        vol.extend_until = None;
        vol.size_gb += 100;
        if let Some(block) = st.block.as_mut() {
            block.resize(&vol.unique_id, vol.size_gb);
        }
    }
    x.leaf("return", "true");
    Ok(())
}

/// `ModifyVolumeAttribute`: Attribute accountingType | volumeName | description, Value.
pub fn modify_volume_attribute(st: &mut State, p: &Params, x: &mut Xml, _now: i64) -> Result<(), ApiError> {
    let vname = p.req("VolumeId")?;
    volume(st, vname)?;
    let attr = p.req("Attribute")?;
    let value = p.get("Value").unwrap_or("");
    match attr {
        "accountingType" => {
            if !matches!(value, "1" | "2") {
                return Err(ApiError::invalid("Value", value));
            }
            if let Some(v) = st.volumes.get_mut(vname) {
                v.next_month_accounting_type = value.to_owned();
            }
        }
        "description" => {
            if let Some(v) = st.volumes.get_mut(vname) {
                v.description = value.to_owned();
            }
        }
        "volumeName" => {
            if !valid_name(value, 32) {
                return Err(ApiError::invalid("Value", value));
            }
            if value != vname {
                if st.volumes.contains_key(value) {
                    return Err(ApiError::duplicate("Volume", value));
                }
                if let Some(mut v) = st.volumes.remove(vname) {
                    v.name = value.to_owned();
                    st.volumes.insert(value.to_owned(), v);
                }
            }
        }
        other => return Err(ApiError::invalid("Attribute", other)),
    }
    x.leaf("return", "true");
    Ok(())
}

/// `DescribeVolumes`: `VolumeId.N` (unknown -> `Client.InvalidParameterNotFound.Volume`).
pub fn describe_volumes(st: &mut State, p: &Params, x: &mut Xml, now: i64) -> Result<(), ApiError> {
    let names = p.list("VolumeId");
    let vols: Vec<&Volume> = if names.is_empty() {
        st.volumes.values().collect()
    } else {
        names.iter().map(|n| volume(st, n)).collect::<Result<_, _>>()?
    };
    let names: std::collections::HashMap<&str, &str> = st
        .instances
        .values()
        .map(|i| (i.unique_id.as_str(), i.name.as_str()))
        .collect();
    x.list("volumeSet", "item", vols, |x, v| {
        x.leaf("volumeId", &v.name)
            .leaf("volumeUniqueId", &v.unique_id)
            .leaf("size", v.size_gb)
            .leaf("diskType", disk_type_name(v.disk_type).unwrap_or(""))
            .leaf("snapshotId", "")
            .leaf("availabilityZone", &v.zone)
            .leaf("status", v.status(now))
            .leaf("createTime", jst(v.create_time))
            .leaf("accountingType", &v.accounting_type)
            .leaf("nextMonthAccountingType", &v.next_month_accounting_type)
            .leaf("description", &v.description);
        x.list("attachmentSet", "item", v.attachment.iter(), |x, a| {
            x.leaf("volumeId", &v.name)
                .leaf("volumeUniqueId", &v.unique_id)
                .leaf(
                    "instanceId",
                    names.get(a.instance_unique_id.as_str()).copied().unwrap_or(""),
                )
                .leaf("instanceUniqueId", &a.instance_unique_id)
                .leaf("device", device_name(a.device_index))
                .leaf("status", v.attachment_status(now))
                .leaf("attachTime", jst(a.attach_time))
                .leaf("deleteOnTermination", "false");
        });
    });
    Ok(())
}
