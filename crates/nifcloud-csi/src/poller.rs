//! One DescribeVolumes per poll tick for every operation that reads or waits on volume state.
//!
//! DescribeVolumes has no filter worth using (it lists every disk of the account), so a hundred
//! operations each polling their own disk would cost a hundred calls per tick. Instead, readers
//! and waiters register interest; one background task describes all disks when there is
//! interest (at most once per `interval`) and publishes the snapshot to all of them.
//!
//! Freshness: a caller only accepts a snapshot whose DescribeVolumes *started after* the caller
//! registered, so a waiter never decides on state older than its own last action.
//!
//! Waits are bounded (`timeout`) and cancellation-aware: dropping a waiter's future withdraws
//! its interest at once; the task idles (no calls) while nobody is interested.
//!
//! [`PollMode::PerRequest`] is the naive alternative (each waiter describes its own disk each
//! interval); it exists so the benchmark can show the difference.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use nifcloud_sdk::ErrorKind;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::cloud::{Cloud, CloudError};
use crate::disk::Disk;

/// How volume state is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollMode {
    /// One shared DescribeVolumes per tick for everyone (the default).
    Shared,
    /// Each reader and waiter calls DescribeVolumes itself (for comparison only).
    PerRequest,
}

/// One DescribeVolumes result.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Sequence number of the poll that produced it (0 = none yet).
    pub tick: u64,
    /// The disks, or the error as text and its class.
    pub disks: Result<Arc<Vec<Disk>>, (String, ErrorKind)>,
}

#[derive(Debug)]
struct Shared {
    interest: AtomicUsize,
    started: AtomicU64,
    wake: Notify,
    tx: watch::Sender<Arc<Snapshot>>,
}

#[derive(Debug)]
struct TaskGuard(JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The shared volume poller. Cheap to clone; the task stops when the last clone drops.
#[derive(Debug, Clone)]
pub struct VolumeWatch {
    cloud: Cloud,
    mode: PollMode,
    interval: Duration,
    timeout: Duration,
    shared: Arc<Shared>,
    _task: Option<Arc<TaskGuard>>,
}

struct Interest<'a>(&'a Shared);

impl<'a> Interest<'a> {
    fn register(shared: &'a Shared) -> Self {
        shared.interest.fetch_add(1, Ordering::SeqCst);
        shared.wake.notify_one();
        Interest(shared)
    }
}

impl Drop for Interest<'_> {
    fn drop(&mut self) {
        self.0.interest.fetch_sub(1, Ordering::SeqCst);
    }
}

impl VolumeWatch {
    /// A poller over `cloud` that describes at most once per `interval`; waits give up after
    /// `timeout`. Must be called inside a Tokio runtime (it spawns the polling task).
    pub fn new(cloud: Cloud, mode: PollMode, interval: Duration, timeout: Duration) -> Self {
        let (tx, _) = watch::channel(Arc::new(Snapshot {
            tick: 0,
            disks: Ok(Arc::new(Vec::new())),
        }));
        let shared = Arc::new(Shared {
            interest: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            wake: Notify::new(),
            tx,
        });
        let task = (mode == PollMode::Shared).then(|| {
            Arc::new(TaskGuard(tokio::spawn(poll_loop(
                cloud.clone(),
                Arc::clone(&shared),
                interval,
            ))))
        });
        Self {
            cloud,
            mode,
            interval,
            timeout,
            shared,
            _task: task,
        }
    }

    /// How long [`Self::wait_until`] waits for a state change before giving up with
    /// [`CloudError::WaitTimeout`].
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    async fn next_snapshot(&self) -> Result<Arc<Snapshot>, CloudError> {
        let min_tick = self.shared.started.load(Ordering::SeqCst) + 1;
        let mut rx = self.shared.tx.subscribe();
        let _interest = Interest::register(&self.shared);
        loop {
            {
                let snap = rx.borrow_and_update();
                if snap.tick >= min_tick {
                    return Ok(Arc::clone(&snap));
                }
            }
            rx.changed().await.map_err(|_| CloudError::PollerGone)?;
        }
    }

    /// Every disk, as seen by a DescribeVolumes that started after this call.
    pub async fn fresh(&self) -> Result<Arc<Vec<Disk>>, CloudError> {
        match self.mode {
            PollMode::PerRequest => Ok(Arc::new(self.cloud.list_disks().await?)),
            PollMode::Shared => {
                let snap = self.next_snapshot().await?;
                snap.disks
                    .clone()
                    .map_err(|(message, kind)| CloudError::Describe { message, kind })
            }
        }
    }

    /// Polls until `done` accepts the disks seen (or the timeout passes) and returns them.
    /// `id` names the disk of interest (per-request mode describes only it); `what` names the wait
    /// in errors. Retryable DescribeVolumes errors are waited out; others end the wait.
    pub async fn wait_until(
        &self,
        id: &str,
        what: &str,
        done: impl FnMut(&[Disk]) -> bool,
    ) -> Result<Arc<Vec<Disk>>, CloudError> {
        self.wait_within(id, what, self.timeout, done).await
    }

    /// How often DescribeVolumes is called while someone waits.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// [`Self::wait_until`] with its own limit `within` instead of the configured timeout.
    pub async fn wait_within(
        &self,
        id: &str,
        what: &str,
        within: Duration,
        mut done: impl FnMut(&[Disk]) -> bool,
    ) -> Result<Arc<Vec<Disk>>, CloudError> {
        let started = tokio::time::Instant::now();
        let mut last = String::from("nothing observed yet");
        let wait = async {
            loop {
                let seen = match self.mode {
                    PollMode::Shared => {
                        let snap = self.next_snapshot().await?;
                        snap.disks
                            .clone()
                            .map_err(|(message, kind)| CloudError::Describe { message, kind })
                    }
                    PollMode::PerRequest => {
                        tokio::time::sleep(self.interval).await;
                        self.cloud.get_disk(id).await.map(|d| Arc::new(d.into_iter().collect()))
                    }
                };
                match seen {
                    Ok(disks) => {
                        if done(&disks) {
                            return Ok(disks);
                        }
                        last = describe_state(disks.iter().find(|d| d.id == id));
                    }
                    Err(e) if e.kind().is_retryable() => last = format!("error: {e}"),
                    Err(e) => return Err(e),
                }
            }
        };
        match tokio::time::timeout(within, wait).await {
            Ok(result) => result,
            Err(_) => Err(CloudError::WaitTimeout {
                what: what.to_string(),
                last,
                waited: started.elapsed(),
            }),
        }
    }
}

fn describe_state(d: Option<&Disk>) -> String {
    match d {
        None => "absent".into(),
        Some(d) => format!(
            "{} GB, status {}, attachments {:?}",
            d.size_gb,
            d.status,
            d.attachments
                .iter()
                .map(|a| format!("{}:{}", a.instance_id, a.status))
                .collect::<Vec<_>>()
        ),
    }
}

async fn poll_loop(cloud: Cloud, shared: Arc<Shared>, interval: Duration) {
    loop {
        loop {
            let notified = shared.wake.notified();
            if shared.interest.load(Ordering::SeqCst) > 0 {
                break;
            }
            notified.await;
        }
        let tick = shared.started.fetch_add(1, Ordering::SeqCst) + 1;
        let disks = match cloud.list_disks().await {
            Ok(d) => Ok(Arc::new(d)),
            Err(e) => {
                tracing::warn!(error = %e, "DescribeVolumes poll failed");
                Err((e.to_string(), e.kind()))
            }
        };
        shared.tx.send_replace(Arc::new(Snapshot { tick, disks }));
        tokio::time::sleep(interval).await;
    }
}
