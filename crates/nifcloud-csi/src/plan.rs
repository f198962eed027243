//! Pure decisions of the controller: from what DescribeVolumes and DescribeInstances show to the
//! next action. The IO in [`crate::controller`] loops: observe, decide, act, until done, so a
//! retry after a crash or an error always resumes from the observed state.

use std::collections::BTreeMap;

use crate::disk::{AttachState, Disk, DiskStatus, MAX_DISKS_PER_SERVER, creating_id};
use crate::params::{AccountingType, DiskType};

/// A server as the controller needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// `instanceId` (the Kubernetes node name).
    pub name: String,
    /// Its availability zone: disks are created in and attached within it.
    pub zone: String,
    /// `instanceState/name`.
    pub state: String,
}

impl Server {
    /// Whether NIFCLOUD lets disks be created on or attached to it (running or stopped).
    pub fn accepts_disks(&self) -> bool {
        matches!(self.state.as_str(), "running" | "stopped")
    }
}

/// Which servers belong to this cluster: shell-style patterns (`*` and `?`) on server names, matched without
/// regard to case (as `nifcloud-cloud` matches node names to server names: a node `k8sworker1` is the server
/// `K8sWorker1`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Membership {
    patterns: Vec<String>,
}

impl Membership {
    /// Servers whose names match one of `patterns` (an empty list matches none).
    pub fn patterns<I: IntoIterator<Item = S>, S: Into<String>>(patterns: I) -> Self {
        Self {
            patterns: patterns
                .into_iter()
                .map(Into::into)
                .filter(|p: &String| !p.is_empty())
                .collect(),
        }
    }

    /// Whether no server can ever match.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether server `name` is a member.
    pub fn contains(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.patterns.iter().any(|p| glob_match(&p.to_ascii_lowercase(), &name))
    }
}

/// Matches `*` (any run) and `?` (one character); everything else literally.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Number of disks attached (in any phase) to `server` according to `disks`.
pub fn attached_count(disks: &[Disk], server: &str) -> usize {
    disks.iter().filter(|d| d.attachment_to(server).is_some()).count()
}

/// A stable pseudo-random rank of `server` for volume `volume` (rendezvous hashing), so that
/// many concurrent creations spread over the helper servers instead of all picking the same one.
fn rank(volume: &str, server: &str) -> u64 {
    // FNV-1a: stable across processes and versions (unlike std's RandomState).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in volume.bytes().chain([0u8]).chain(server.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Picks the helper server for creating disk `volume` in `zone`: a cluster member that accepts
/// disks and has a free slot; among those with the fewest attached disks, the one that ranks
/// first for this volume.
///
/// `reserved` counts slots this process is about to use on each server (creations in flight that
/// DescribeVolumes may not show yet).
pub fn pick_server<'a>(
    servers: &'a [Server],
    disks: &[Disk],
    zone: &str,
    members: &Membership,
    volume: &str,
    reserved: &BTreeMap<String, usize>,
) -> Option<&'a Server> {
    servers
        .iter()
        .filter(|s| s.zone == zone && s.accepts_disks() && members.contains(&s.name))
        .map(|s| {
            (
                attached_count(disks, &s.name) + reserved.get(&s.name).copied().unwrap_or(0),
                s,
            )
        })
        .filter(|(n, _)| *n < MAX_DISKS_PER_SERVER)
        .min_by_key(|(n, s)| (*n, rank(volume, &s.name), s.name.clone()))
        .map(|(_, s)| s)
}

/// Picks the zone: the first candidate that has a helper server; without candidates, the first
/// zone (by name) that has one.
pub fn pick_zone(
    candidates: &[String],
    servers: &[Server],
    disks: &[Disk],
    members: &Membership,
    reserved: &BTreeMap<String, usize>,
) -> Option<String> {
    let has_helper = |z: &str| pick_server(servers, disks, z, members, "", reserved).is_some();
    if candidates.is_empty() {
        let mut zones: Vec<&str> = servers.iter().map(|s| s.zone.as_str()).collect();
        zones.sort_unstable();
        zones.dedup();
        return zones.into_iter().find(|z| has_helper(z)).map(str::to_string);
    }
    candidates.iter().find(|z| has_helper(z)).cloned()
}

/// What a CreateVolume asks for, as far as matching an existing disk goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSpec {
    /// The CSI volume name (`pvc-…`), kept as the disk's description.
    pub name: String,
    /// Chosen size in GB.
    pub size_gb: i64,
    /// Smallest acceptable size in GB (from required_bytes).
    pub min_gb: i64,
    /// Largest acceptable size in GB (from limit_bytes; `i64::MAX` when unlimited).
    pub max_gb: i64,
    /// The disk type asked for: an existing disk of another type is a conflict (ALREADY_EXISTS).
    pub disk_type: DiskType,
}

/// The next step of a CreateVolume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateStep {
    /// No disk yet: create one (attached to a helper server).
    Create,
    /// The disk is being created or attached: wait until its attachment is complete.
    WaitAttached,
    /// The helper attachment is complete: detach it from this server.
    Detach(String),
    /// The helper attachment is going away: wait until the disk is available.
    WaitAvailable,
    /// Detached: rename it to its final id.
    Finish,
    /// The disk is finished: reply with it.
    Done(Disk),
    /// A disk with this name exists but does not fit the request.
    Incompatible(String),
}

/// Finds the disk of CSI volume `name`: `Description` equal to `name` (never a prefix). When
/// several match (a bug elsewhere), the finished id wins, then the creating id, then the lowest id.
pub fn find_by_name<'a>(disks: &'a [Disk], name: &str) -> Option<&'a Disk> {
    let mut matches: Vec<&Disk> = disks.iter().filter(|d| d.description == name).collect();
    let final_id = crate::disk::final_id(name);
    let creating = creating_id(name);
    matches.sort_by_key(|d| (d.id != final_id, d.id != creating, d.id.clone()));
    matches.into_iter().next()
}

/// Decides the next CreateVolume step from the disk found by name.
pub fn next_create_step(found: Option<&Disk>, spec: &CreateSpec) -> CreateStep {
    let Some(d) = found else { return CreateStep::Create };
    if d.size_gb < spec.min_gb || d.size_gb > spec.max_gb {
        return CreateStep::Incompatible(format!(
            "volume {:?} exists as disk {} of {} GB, which is outside the requested {}..{} GB",
            spec.name,
            d.id,
            d.size_gb,
            spec.min_gb,
            if spec.max_gb == i64::MAX {
                "∞".to_string()
            } else {
                spec.max_gb.to_string()
            }
        ));
    }
    if let Some(t) = d.disk_type
        && t != spec.disk_type
    {
        return CreateStep::Incompatible(format!(
            "volume {:?} exists as disk {} of type {}, but {} was requested",
            spec.name,
            d.id,
            t.param_name(),
            spec.disk_type.param_name()
        ));
    }
    if d.id != creating_id(&spec.name) {
        return CreateStep::Done(d.clone());
    }
    match d.attachments.first() {
        Some(a) if a.status == AttachState::Detaching => CreateStep::WaitAvailable,
        Some(a) if a.is_attached() && d.status == DiskStatus::InUse => CreateStep::Detach(a.instance_id.clone()),
        Some(_) => CreateStep::WaitAttached,
        None if d.status == DiskStatus::Available => CreateStep::Finish,
        None if d.status == DiskStatus::Creating => CreateStep::WaitAttached,
        None => CreateStep::WaitAvailable,
    }
}

/// The next step of a ControllerPublishVolume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishStep {
    /// Attach to the node.
    Attach,
    /// The attachment to the node is in progress (or the disk is busy): wait.
    Wait,
    /// Attached to the node with this device name (`None`: ask DescribeInstanceAttribute).
    Done(Option<String>),
    /// Attached to another server.
    AttachedElsewhere(String),
    /// The node has no free slot.
    NodeFull,
    /// The disk is in another zone than the node.
    WrongZone(String),
}

/// Number of disks on `server` that are only there while this driver creates them (they leave
/// within seconds).
pub fn transient_count(disks: &[Disk], server: &str) -> usize {
    disks
        .iter()
        .filter(|d| d.is_creating() && d.attachment_to(server).is_some())
        .count()
}

/// Decides the next ControllerPublishVolume step. `node_disks` counts every disk on the node,
/// `node_transient` those only there while being created (a full node waits for them to leave).
pub fn next_publish_step(disk: &Disk, node: &Server, node_disks: usize, node_transient: usize) -> PublishStep {
    if let Some(a) = disk.attachment_to(&node.name) {
        return if a.is_attached() {
            PublishStep::Done(a.device.clone())
        } else {
            PublishStep::Wait
        };
    }
    if let Some(a) = disk.attachments.first() {
        return PublishStep::AttachedElsewhere(a.instance_id.clone());
    }
    if !disk.zone.is_empty() && !node.zone.is_empty() && disk.zone != node.zone {
        return PublishStep::WrongZone(disk.zone.clone());
    }
    if disk.status == DiskStatus::Creating {
        return PublishStep::Wait;
    }
    if node_disks >= MAX_DISKS_PER_SERVER {
        return if node_transient > 0 {
            PublishStep::Wait
        } else {
            PublishStep::NodeFull
        };
    }
    PublishStep::Attach
}

/// The next step of a ControllerExpandVolume towards `target_gb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpandStep {
    /// Large enough: done.
    Done,
    /// An operation on the disk is in progress: wait and look again.
    Wait,
    /// Call ExtendVolumeSize once (+100 GB).
    Extend,
}

/// Decides the next expansion step. Extends only while the observed size is below the target, so
/// the disk never grows past it, whether attached or not.
pub fn next_expand_step(disk: &Disk, target_gb: i64) -> ExpandStep {
    if disk.size_gb >= target_gb {
        ExpandStep::Done
    } else if disk.attachments.iter().any(|a| !a.is_attached()) || disk.status == DiskStatus::Creating {
        ExpandStep::Wait
    } else {
        ExpandStep::Extend
    }
}

/// The next step of a ControllerModifyVolume towards accounting type `wanted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModifyStep {
    /// The disk is billed `wanted` now and next month: nothing to do.
    Done,
    /// The change to `wanted` is already pending for next month (NIFCLOUD changes billing at the month's
    /// turn): reported, not repeated.
    Pending,
    /// Call ModifyVolumeAttribute(accountingType = wanted).
    Modify,
}

/// Decides the next modify step from what DescribeVolumes shows. Next month's accounting type is what a change
/// sets, so only it decides: a pending change to something else (or back to this month's type) is overridden.
pub fn next_modify_step(disk: &Disk, wanted: AccountingType) -> ModifyStep {
    let next = disk.next_month_accounting.or(disk.accounting);
    match (next == Some(wanted), disk.accounting == Some(wanted)) {
        (true, true) => ModifyStep::Done,
        (true, false) => ModifyStep::Pending,
        (false, _) => ModifyStep::Modify,
    }
}

#[cfg(test)]
mod tests;
