//! Lease-based leader election (`coordination.k8s.io/v1`), with client-go's semantics:
//!
//! - a candidate takes the Lease only when the holder has not renewed it for `leaseDurationSeconds`, measured
//!   on the candidate's own clock from the moment it last *saw the record change* (no clock-skew trust);
//! - the leader renews every retry period; if it cannot renew within the renew deadline it has lost: its
//!   controllers stop and [`crate::run`] returns an error (the process exits non-zero);
//! - every write is a `replace` carrying the `resourceVersion` read just before, so two candidates cannot both win.
//!
//! The decisions are pure functions ([`decide`], [`renew_verdict`], [`Observer`]); [`LeaderElector`] does the IO.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use rand::Rng;
use tokio_util::sync::CancellationToken;

/// Leader election failures.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The leader could not renew within the renew deadline, or another candidate took the Lease.
    #[error("lost the leader lease {namespace}/{name}: {why}")]
    Lost {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// What happened.
        why: String,
    },
}

/// Which Lease to compete for, as whom, and the client-go timings (lease duration, renew deadline, retry period).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElectionConfig {
    /// Lease namespace.
    pub namespace: String,
    /// Lease name.
    pub name: String,
    /// This candidate's identity (hostname + random suffix).
    pub identity: String,
    /// How long a Lease stays valid after a renewal.
    pub lease_duration: Duration,
    /// The leader gives up if it cannot renew for this long.
    pub renew_deadline: Duration,
    /// How often to try.
    pub retry_period: Duration,
}

/// The next step of a candidate or leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// There is no Lease: create it, holding it.
    Create,
    /// We hold it: renew (keep acquireTime and transitions).
    Renew,
    /// It is free or expired: take it (new acquireTime, transitions + 1).
    TakeOver,
    /// Someone else holds a valid Lease: wait.
    Wait,
}

/// Remembers when the Lease record last changed, on the local clock.
#[derive(Clone, Debug, Default)]
pub struct Observer {
    record: Option<LeaseSpec>,
    at: Option<Instant>,
}

impl Observer {
    /// Records what was read at `now`; the observation time moves only when the record changed.
    pub fn observe(&mut self, spec: Option<&LeaseSpec>, now: Instant) {
        if self.record.as_ref() != spec || self.at.is_none() {
            self.record = spec.cloned();
            self.at = Some(now);
        }
    }

    /// When the record was last seen to change.
    pub fn observed_at(&self) -> Option<Instant> {
        self.at
    }
}

/// client-go's `tryAcquireOrRenew` decision.
pub fn decide(
    spec: Option<&LeaseSpec>,
    observed_at: Instant,
    now: Instant,
    identity: &str,
    default_duration: Duration,
) -> Decision {
    let Some(spec) = spec else { return Decision::Create };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder == identity {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::TakeOver;
    }
    let duration = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(default_duration, Duration::from_secs);
    if now.saturating_duration_since(observed_at) >= duration {
        Decision::TakeOver
    } else {
        Decision::Wait
    }
}

/// Whether a leader still leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenewVerdict {
    /// Keep leading (retry renewing at the next retry period).
    Keep,
    /// Stop: the renew deadline passed since the last successful renewal.
    Lost,
}

/// A leader that has not renewed successfully for `renew_deadline` has lost.
pub fn renew_verdict(last_success: Instant, now: Instant, renew_deadline: Duration) -> RenewVerdict {
    if now.saturating_duration_since(last_success) >= renew_deadline {
        RenewVerdict::Lost
    } else {
        RenewVerdict::Keep
    }
}

/// The Lease spec to write for `decision`.
pub fn next_spec(
    decision: Decision,
    old: Option<&LeaseSpec>,
    identity: &str,
    duration: Duration,
    now: Timestamp,
) -> LeaseSpec {
    let seconds = i32::try_from(duration.as_secs()).unwrap_or(i32::MAX).max(1);
    let transitions = old.and_then(|s| s.lease_transitions).unwrap_or(0);
    let base = LeaseSpec {
        holder_identity: Some(identity.to_owned()),
        lease_duration_seconds: Some(seconds),
        renew_time: Some(MicroTime(now)),
        acquire_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    };
    match decision {
        Decision::Renew => LeaseSpec {
            acquire_time: old.and_then(|s| s.acquire_time.clone()).or(base.acquire_time.clone()),
            ..base
        },
        Decision::TakeOver => LeaseSpec {
            lease_transitions: Some(transitions.saturating_add(1)),
            ..base
        },
        Decision::Create | Decision::Wait => base,
    }
}

/// The default identity: hostname + `_` + a random suffix.
pub fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    let suffix: u64 = rand::rng().random();
    format!("{host}_{suffix:016x}")
}

/// The current instant on tokio's clock (so paused-time tests drive the deadlines).
fn now_instant() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Runs leader election against one Lease.
#[derive(Debug)]
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaderElectionConfig,
    observer: Observer,
}

impl LeaderElector {
    /// An elector using `client`.
    pub fn new(client: kube::Client, config: LeaderElectionConfig) -> Self {
        let api = Api::namespaced(client, &config.namespace);
        Self {
            api,
            config,
            observer: Observer::default(),
        }
    }

    /// The Lease this elector competes for, its identity and its timings.
    pub fn config(&self) -> &LeaderElectionConfig {
        &self.config
    }

    /// One attempt: returns whether we hold the Lease afterwards. API errors and write conflicts are `false`.
    pub async fn try_acquire_or_renew(&mut self) -> bool {
        let now = now_instant();
        let name = self.config.name.clone();
        let current = match self.api.get_opt(&name).await {
            Ok(l) => l,
            Err(error) => {
                tracing::warn!(lease = %name, %error, "cannot read leader lease");
                return false;
            }
        };
        let spec = current.as_ref().and_then(|l| l.spec.as_ref());
        self.observer.observe(spec, now);
        let observed_at = self.observer.observed_at().unwrap_or(now);
        let decision = decide(
            spec,
            observed_at,
            now,
            &self.config.identity,
            self.config.lease_duration,
        );
        if decision == Decision::Wait {
            return false;
        }
        let new_spec = next_spec(
            decision,
            spec,
            &self.config.identity,
            self.config.lease_duration,
            Timestamp::now(),
        );
        let result = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(new_spec.clone()),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                // `lease.metadata.resourceVersion` is what we read: the server refuses the write if it moved.
                lease.spec = Some(new_spec.clone());
                self.api.replace(&name, &PostParams::default(), &lease).await
            }
        };
        match result {
            Ok(written) => {
                self.observer.observe(written.spec.as_ref(), now_instant());
                if decision != Decision::Renew {
                    tracing::info!(lease = %name, identity = %self.config.identity, ?decision, "acquired leader lease");
                }
                true
            }
            Err(error) => {
                tracing::info!(lease = %name, %error, ?decision, "leader lease write refused");
                false
            }
        }
    }

    /// Waits until this candidate leads (`true`) or `shutdown` fires (`false`).
    pub async fn acquire(&mut self, shutdown: &CancellationToken) -> bool {
        loop {
            if self.try_acquire_or_renew().await {
                return true;
            }
            // client-go jitters the acquire loop by up to 1.2 × the retry period.
            let jitter = self.config.retry_period.mul_f64(rand::rng().random_range(0.0..1.2));
            tokio::select! {
                () = shutdown.cancelled() => return false,
                () = tokio::time::sleep(self.config.retry_period + jitter) => {}
            }
        }
    }

    /// Renews until `shutdown` fires (`Ok`) or leadership is lost (`Err`).
    pub async fn hold(&mut self, shutdown: &CancellationToken) -> Result<(), LeaderError> {
        let mut last_success = now_instant();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(self.config.retry_period) => {}
            }
            let renewed = tokio::time::timeout(self.config.renew_deadline, self.try_acquire_or_renew()).await;
            if renewed == Ok(true) {
                last_success = now_instant();
                continue;
            }
            if renew_verdict(last_success, now_instant(), self.config.renew_deadline) == RenewVerdict::Lost {
                return Err(LeaderError::Lost {
                    namespace: self.config.namespace.clone(),
                    name: self.config.name.clone(),
                    why: format!("no successful renewal for {:?}", self.config.renew_deadline),
                });
            }
        }
    }

    /// Gives the Lease up (graceful shutdown) so another candidate can take it at once. Best effort.
    pub async fn release(&mut self) {
        let name = self.config.name.clone();
        let Ok(Some(mut lease)) = self.api.get_opt(&name).await else {
            return;
        };
        let holds =
            lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(self.config.identity.as_str());
        if !holds {
            return;
        }
        let now = MicroTime(Timestamp::now());
        let transitions = lease.spec.as_ref().and_then(|s| s.lease_transitions);
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_transitions: transitions,
            ..LeaseSpec::default()
        });
        match self.api.replace(&name, &PostParams::default(), &lease).await {
            Ok(_) => tracing::info!(lease = %name, "released leader lease"),
            Err(error) => tracing::warn!(lease = %name, %error, "cannot release leader lease"),
        }
    }
}

#[cfg(test)]
#[path = "leader_tests.rs"]
mod tests;
