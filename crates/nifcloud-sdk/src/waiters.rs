//! Waiters: poll a describe call until a resource reaches a state, with an interval and a timeout.
//!
//! A waiter is a future: dropping it (a timeout around it, a `select!` on a shutdown signal) stops it at once,
//! including in the middle of a sleep. Retryable errors of the describe call (busy, throttled, transport) are
//! waited out like a pending state; any other error ends the wait.

use std::future::Future;
use std::time::Duration;

use crate::error::Error;
use crate::types::{
    DescribeInstancesRequest, DescribeLoadBalancersRequest, DescribeVolumesRequest,
    NiftyDescribeElasticLoadBalancersRequest,
};
use crate::{Client, CompactString};

/// How often to poll and how long to wait in all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitOptions {
    /// Time between two polls.
    pub interval: Duration,
    /// Time after which the waiter gives up.
    pub timeout: Duration,
}

impl Default for WaitOptions {
    /// Every 5 s for up to 10 minutes (the official waiters poll every 20 s, which is slow for controllers).
    fn default() -> Self {
        WaitOptions {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(600),
        }
    }
}

/// One observation of a waited-for resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation<T> {
    /// The awaited state, with what was observed.
    Done(T),
    /// Not there yet; the state observed, for messages.
    Pending(String),
    /// A state from which the awaited one cannot be reached.
    Failed(String),
}

/// Polls `probe` every `options.interval` until it reports [`Observation::Done`], fails, or `options.timeout`
/// passes. `what` names the wait in errors (for example `volume vol01 available`).
pub async fn wait_until<T, F, Fut>(what: &str, options: WaitOptions, mut probe: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Observation<T>, Error>>,
{
    let started = tokio::time::Instant::now();
    loop {
        let last = match probe().await {
            Ok(Observation::Done(value)) => return Ok(value),
            Ok(Observation::Failed(state)) => {
                return Err(Error::WaitFailed {
                    what: what.to_owned(),
                    state,
                });
            }
            Ok(Observation::Pending(state)) => state,
            Err(e) if e.kind().is_retryable() => format!("error: {e}"),
            Err(e) => return Err(e),
        };
        let waited = started.elapsed();
        if waited + options.interval > options.timeout {
            return Err(Error::WaitTimeout {
                what: what.to_owned(),
                last_state: last,
                waited,
            });
        }
        tracing::trace!(what, state = %last, "waiting");
        tokio::time::sleep(options.interval).await;
    }
}

/// The volume states a waiter can wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolumeState {
    /// `available`: detached and ready.
    Available,
    /// `in-use`: attached to a server.
    InUse,
    /// Every attachment is `attached` (after an attach or an extension).
    Attached,
    /// The volume no longer exists.
    Deleted,
}

/// The instance states a waiter can wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceState {
    /// `running` (state code 16): the server is up.
    Running,
    /// `stopped` (state code 80): the server is shut down, its disks still attached.
    Stopped,
}

impl Client {
    /// Waits until volume `volume_id` is in `state`.
    pub async fn wait_for_volume(
        &self,
        volume_id: &str,
        state: VolumeState,
        options: WaitOptions,
    ) -> Result<(), Error> {
        let what = format!("volume {volume_id} {state:?}");
        wait_until(&what, options, || async {
            let req = DescribeVolumesRequest {
                volume_id: vec![volume_id.into()],
            };
            let out = match self.describe_volumes(req).await {
                Ok(out) => out,
                Err(e) if e.is_not_found() && state == VolumeState::Deleted => return Ok(Observation::Done(())),
                Err(e) => return Err(e),
            };
            let Some(vol) = out.volume_set.first() else {
                return Ok(if state == VolumeState::Deleted {
                    Observation::Done(())
                } else {
                    Observation::Pending("absent".into())
                });
            };
            let status = vol.status.clone().unwrap_or_default();
            let attachments: Vec<&str> = vol
                .attachment_set
                .iter()
                .map(|a| a.status.as_deref().unwrap_or(""))
                .collect();
            let done = match state {
                VolumeState::Available => status == "available",
                VolumeState::InUse => status == "in-use",
                VolumeState::Attached => !attachments.is_empty() && attachments.iter().all(|s| *s == "attached"),
                VolumeState::Deleted => false,
            };
            Ok(if done {
                Observation::Done(())
            } else if status == "error" {
                Observation::Failed(status.into())
            } else {
                Observation::Pending(format!("status {status}, attachments {attachments:?}"))
            })
        })
        .await
    }

    /// Waits until instance `instance_id` is in `state`.
    pub async fn wait_for_instance(
        &self,
        instance_id: &str,
        state: InstanceState,
        options: WaitOptions,
    ) -> Result<(), Error> {
        let want = match state {
            InstanceState::Running => "running",
            InstanceState::Stopped => "stopped",
        };
        let what = format!("instance {instance_id} {want}");
        wait_until(&what, options, || async {
            let req = DescribeInstancesRequest {
                instance_id: vec![instance_id.into()],
                ..Default::default()
            };
            let out = self.describe_instances(req).await?;
            let names: Vec<CompactString> = out
                .reservation_set
                .iter()
                .flat_map(|r| r.instances_set.iter())
                .map(|i| {
                    i.instance_state
                        .as_ref()
                        .and_then(|s| s.name.clone())
                        .unwrap_or_default()
                })
                .collect();
            Ok(if !names.is_empty() && names.iter().all(|n| n == want) {
                Observation::Done(())
            } else if names.iter().any(|n| n == "terminated" || n == "import_error") {
                Observation::Failed(names.join(","))
            } else {
                Observation::Pending(names.join(","))
            })
        })
        .await
    }

    /// Waits until every registered instance of L4 load balancer `name` is `InService`.
    pub async fn wait_for_load_balancer_in_service(&self, name: &str, options: WaitOptions) -> Result<(), Error> {
        let what = format!("load balancer {name} InService");
        wait_until(&what, options, || async {
            let req = DescribeLoadBalancersRequest {
                load_balancer_names: vec![crate::types::RequestLoadBalancerNames {
                    load_balancer_name: Some(name.into()),
                    ..Default::default()
                }],
                ..Default::default()
            };
            let out = self.describe_load_balancers(req).await?;
            let states: Vec<CompactString> = out
                .describe_load_balancers_result
                .iter()
                .flat_map(|r| r.load_balancer_descriptions.iter())
                .flat_map(|d| d.health_check.iter().flat_map(|h| h.instance_states.iter()))
                .map(|s| s.state.clone().unwrap_or_default())
                .collect();
            Ok(if !states.is_empty() && states.iter().all(|s| s == "InService") {
                Observation::Done(())
            } else {
                Observation::Pending(states.join(","))
            })
        })
        .await
    }

    /// Waits until elastic load balancer `name` reports `State` `available`.
    pub async fn wait_for_elastic_load_balancer(&self, name: &str, options: WaitOptions) -> Result<(), Error> {
        let what = format!("elastic load balancer {name} available");
        wait_until(&what, options, || async {
            let req = NiftyDescribeElasticLoadBalancersRequest {
                elastic_load_balancers: Some(crate::types::RequestElasticLoadBalancers {
                    elastic_load_balancer_name: vec![name.into()],
                    ..Default::default()
                }),
                ..Default::default()
            };
            let out = self.nifty_describe_elastic_load_balancers(req).await?;
            let states: Vec<CompactString> = out
                .nifty_describe_elastic_load_balancers_result
                .iter()
                .flat_map(|r| r.elastic_load_balancer_descriptions.iter())
                .map(|d| d.state.clone().unwrap_or_default())
                .collect();
            Ok(if !states.is_empty() && states.iter().all(|s| s == "available") {
                Observation::Done(())
            } else {
                Observation::Pending(states.join(","))
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn busy() -> Error {
        Error::Api(ApiError {
            action: "DescribeVolumes".into(),
            code: "Server.ResourceIncorrectState.Volume.Processing".into(),
            message: String::new(),
            request_id: None,
            status: 400,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn waits_through_pending_and_busy_until_done() {
        let calls = AtomicU32::new(0);
        let opts = WaitOptions {
            interval: Duration::from_secs(3),
            timeout: Duration::from_secs(60),
        };
        let started = tokio::time::Instant::now();
        let got = wait_until("thing ready", opts, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Ok(Observation::Pending("creating".into())),
                1 => Err(busy()),
                _ => Ok(Observation::Done(7)),
            }
        })
        .await
        .unwrap();
        assert_eq!(got, 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(started.elapsed(), Duration::from_secs(6));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_at_the_timeout_with_the_last_state() {
        let opts = WaitOptions {
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(35),
        };
        let err = wait_until::<(), _, _>("volume v available", opts, || async {
            Ok(Observation::Pending("in-use".into()))
        })
        .await
        .unwrap_err();
        match err {
            Error::WaitTimeout {
                what,
                last_state,
                waited,
            } => {
                assert_eq!(what, "volume v available");
                assert_eq!(last_state, "in-use");
                assert_eq!(waited, Duration::from_secs(30));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failure_states_and_hard_errors_end_the_wait_at_once() {
        let opts = WaitOptions::default();
        let e = wait_until::<(), _, _>("x", opts, || async { Ok(Observation::Failed("error".into())) })
            .await
            .unwrap_err();
        assert!(matches!(e, Error::WaitFailed { .. }));
        let calls = AtomicU32::new(0);
        let e = wait_until::<(), _, _>("x", opts, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Error::Api(ApiError {
                action: "DescribeVolumes".into(),
                code: "Client.InvalidParameterNotFound.Volume".into(),
                message: String::new(),
                request_id: None,
                status: 400,
            }))
        })
        .await
        .unwrap_err();
        assert!(e.is_not_found());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_waiter_stops_it_mid_sleep() {
        let calls = AtomicU32::new(0);
        let opts = WaitOptions {
            interval: Duration::from_secs(100),
            timeout: Duration::from_secs(10_000),
        };
        let wait = wait_until::<(), _, _>("x", opts, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(Observation::Pending("p".into()))
        });
        let r = tokio::time::timeout(Duration::from_secs(150), wait).await;
        r.expect_err("the caller's 150 s timeout ends the wait, not the waiter's own 10 000 s");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "polled at 0 s and 100 s, then dropped during the sleep"
        );
    }
}
