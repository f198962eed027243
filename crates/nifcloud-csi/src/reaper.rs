//! Abandoned creations. A CreateVolume interrupted for good (its PVC deleted while the disk was
//! still attached to a helper server) leaves a disk under its *creating* id that nobody will ever
//! finish: it was never returned to Kubernetes, so it holds no data, but it holds a helper slot.
//! The reaper deletes such disks once they have been seen in the creating state, untouched by
//! this process, for longer than a grace period (far longer than a creation takes).
//!
//! Only disks of *this* cluster are considered: under this driver's creating id and attached to one of this
//! cluster's helper servers (the `--cluster-instances` membership). Another cluster sharing the account runs
//! its own driver, whose half-created disks sit on its own servers and are never touched here; a creating
//! disk attached to no server (a creation interrupted after its helper detach) cannot be told apart, so it is
//! left alone and logged: a retried CreateVolume of the same name finishes it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::cloud::CloudError;
use crate::controller::NifcloudController;
use crate::disk::Disk;

/// Pure: which creating disks are due, given when each was first seen.
pub fn due<'a>(
    creating: &[&'a Disk],
    first_seen: &HashMap<String, Instant>,
    now: Instant,
    grace: Duration,
) -> Vec<&'a Disk> {
    creating
        .iter()
        .filter(|d| {
            first_seen
                .get(&d.id)
                .is_some_and(|t| now.saturating_duration_since(*t) >= grace)
        })
        .copied()
        .collect()
}

/// Pure: whether a creating disk belongs to this cluster (attached to one of its helper servers).
pub fn ours(d: &Disk, members: &crate::plan::Membership) -> bool {
    d.attachments.iter().any(|a| members.contains(&a.instance_id))
}

/// Deletes abandoned creations; see the module docs.
#[derive(Debug)]
pub struct Reaper {
    ctl: NifcloudController,
    grace: Duration,
    first_seen: Mutex<HashMap<String, Instant>>,
}

impl Reaper {
    /// A reaper over `ctl`'s cloud, poller and locks.
    pub fn new(ctl: &NifcloudController, grace: Duration) -> Self {
        Self {
            ctl: ctl.clone(),
            grace,
            first_seen: Mutex::new(HashMap::new()),
        }
    }

    /// One pass; returns the ids of the disks it deleted.
    pub async fn pass(&self) -> Result<Vec<String>, CloudError> {
        let disks = self.ctl.watch.fresh().await?;
        let members = &self.ctl.config.membership;
        let creating: Vec<&Disk> = disks
            .iter()
            .filter(|d| d.is_creating())
            .filter(|d| {
                let ours = ours(d, members);
                if !ours && d.attachments.is_empty() {
                    tracing::debug!(disk = %d.id, name = %d.description, "half-created disk on no server: not reaped");
                }
                ours
            })
            .collect();
        let now = Instant::now();
        let due: Vec<Disk> = {
            let mut seen = self
                .first_seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            seen.retain(|id, _| creating.iter().any(|d| &d.id == id));
            for d in &creating {
                seen.entry(d.id.clone()).or_insert(now);
            }
            due(&creating, &seen, now, self.grace).into_iter().cloned().collect()
        };
        let mut deleted = Vec::new();
        for d in due {
            // An ongoing CreateVolume for this name holds the lock: leave it alone.
            let Ok(_lock) = self.ctl.locks.try_lock(&format!("name/{}", d.description)) else {
                continue;
            };
            if let Err(e) = self.remove(&d).await {
                tracing::warn!(disk = %d.id, name = %d.description, error = %e, "could not remove an abandoned creation");
                continue;
            }
            tracing::info!(disk = %d.id, name = %d.description, "removed an abandoned creation");
            self.first_seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&d.id);
            deleted.push(d.id.clone());
        }
        Ok(deleted)
    }

    async fn remove(&self, d: &Disk) -> Result<(), CloudError> {
        let cloud = &self.ctl.cloud;
        if let Some(a) = d.attachments.first() {
            if a.status != crate::disk::AttachState::Detaching {
                match cloud.detach(&d.id, &a.instance_id).await {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() || e.kind() == nifcloud_sdk::ErrorKind::Inoperable => {}
                    Err(e) => return Err(e),
                }
            }
            self.ctl
                .watch
                .wait_until(&d.id, &format!("abandoned disk {} to detach", d.id), |all| {
                    all.iter().find(|x| x.id == d.id).is_none_or(|x| !x.is_attached())
                })
                .await?;
        }
        match cloud.delete(&d.id).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Runs a pass every `every` until dropped.
    pub async fn run(self, every: Duration) {
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %e, "abandoned-creation pass failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A creating disk `id` attached to `server` (to none when empty).
    fn disk(id: &str, server: &str) -> Disk {
        Disk {
            id: id.into(),
            unique_id: String::new(),
            size_gb: 100,
            disk_type: None,
            zone: "east-11".into(),
            description: "pvc-x".into(),
            status: crate::disk::DiskStatus::InUse,
            accounting: None,
            next_month_accounting: None,
            attachments: (!server.is_empty())
                .then(|| crate::disk::Attachment {
                    instance_id: server.into(),
                    device: None,
                    status: crate::disk::AttachState::Attached,
                })
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn only_disks_seen_long_enough_are_due() {
        let (a, b, c) = (disk("a", ""), disk("b", ""), disk("c", ""));
        let now = Instant::now();
        let seen = HashMap::from([
            ("a".to_string(), now - Duration::from_secs(3600)),
            ("b".to_string(), now - Duration::from_secs(10)),
        ]);
        let got: Vec<&str> = due(&[&a, &b, &c], &seen, now, Duration::from_secs(900))
            .iter()
            .map(|d| d.id.as_str())
            .collect();
        assert_eq!(got, ["a"]);
    }

    #[test]
    fn only_disks_on_this_clusters_servers_are_ours() {
        let members = crate::plan::Membership::patterns(["k8sworker*"]);
        let on = |server: &str| disk("csinabc", server);
        assert!(ours(&on("k8sworker2"), &members));
        assert!(
            ours(&on("K8sWorker2"), &members),
            "server names match without regard to case"
        );
        assert!(
            !ours(&on("othercluster1"), &members),
            "another cluster's half-created disk"
        );
        assert!(!ours(&on(""), &members), "on no server: cannot tell whose");
    }
}
