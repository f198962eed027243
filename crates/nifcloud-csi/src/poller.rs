//! Volume state for every operation that reads or waits on it, from few DescribeVolumes calls, and
//! no later than each operation polling on its own would see it.
//!
//! DescribeVolumes has no filter worth using (it lists every disk of the account), so a hundred
//! operations each polling their own disk would cost a hundred calls per interval. Instead, readers
//! and waiters register with one background task, which describes all disks when the earliest of
//! them wants a look and publishes the snapshot to all of them.
//!
//! When it calls is decided by [`schedule::Schedule`], a pure function of the registrations:
//! a reader ([`VolumeWatch::fresh`]) wants one look at once; a waiter ([`VolumeWatch::wait_until`])
//! wants one at once (right after the caller's change returned, so a change NIFCLOUD makes at once,
//! such as a rename, is seen after one call), then one `interval` after it registered and again
//! `interval` after each of its own looks ended — the schedule of per-request polling, so a wait
//! sees each state no later than there, but for the short holds that follow. Registrations falling
//! due together share one call (held back at most [`schedule::MAX_GATHER`]); every call serves
//! everyone registered before it started, a free extra look for those not yet due; calls start at
//! least `interval /` [`schedule::MAX_CALLS_PER_INTERVAL`] apart, one at a time.
//!
//! Freshness: a caller only accepts a snapshot whose DescribeVolumes *started after* the caller
//! registered, so a waiter never decides on state older than its own last action.
//!
//! Waits are bounded (`timeout`) and cancellation-aware: dropping a waiter's future withdraws
//! its registration at once; the task idles (no calls) while nobody is registered.
//!
//! [`PollMode::PerRequest`] is the naive alternative (each waiter describes its own disk each
//! interval); it exists so the benchmark can show the difference.

pub mod schedule;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use nifcloud_sdk::ErrorKind;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::cloud::{Cloud, CloudError};
use crate::disk::Disk;
use schedule::{Schedule, Ticket, Want};

/// How volume state is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollMode {
    /// One shared DescribeVolumes serves every reader and waiter due at the time (the default).
    Shared,
    /// Each reader and waiter calls DescribeVolumes itself (for comparison only).
    PerRequest,
}

/// One DescribeVolumes result.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Sequence number of the call that produced it (0 = none yet).
    pub tick: u64,
    /// The disks, or the error as text and its class.
    pub disks: Result<Arc<Vec<Disk>>, (String, ErrorKind)>,
}

/// Where volume state is read: the cloud, or a scripted fake in tests.
pub(crate) trait VolumeSource: Send + Sync + std::fmt::Debug + 'static {
    /// Every disk (DescribeVolumes without a filter).
    fn list(&self) -> BoxFuture<'_, Result<Vec<Disk>, CloudError>>;
    /// One disk (DescribeVolumes of its id), `None` when it does not exist.
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Disk>, CloudError>>;
}

impl VolumeSource for Cloud {
    fn list(&self) -> BoxFuture<'_, Result<Vec<Disk>, CloudError>> {
        Box::pin(self.list_disks())
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Disk>, CloudError>> {
        Box::pin(self.get_disk(id))
    }
}

#[derive(Debug)]
struct Shared {
    schedule: Mutex<Schedule>,
    wake: Notify,
    tx: watch::Sender<Arc<Snapshot>>,
}

impl Shared {
    fn schedule(&self) -> MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(PoisonError::into_inner)
    }
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
    source: Arc<dyn VolumeSource>,
    mode: PollMode,
    interval: Duration,
    timeout: Duration,
    shared: Arc<Shared>,
    _task: Option<Arc<TaskGuard>>,
}

/// A reader's or waiter's place in the schedule; withdrawn on drop.
struct Registration<'a> {
    shared: &'a Shared,
    ticket: Ticket,
    rx: watch::Receiver<Arc<Snapshot>>,
}

impl<'a> Registration<'a> {
    fn new(shared: &'a Shared, want: Want) -> Self {
        let ticket = shared.schedule().register(want, Instant::now());
        shared.wake.notify_one();
        Registration {
            shared,
            ticket,
            rx: shared.tx.subscribe(),
        }
    }

    /// The next snapshot of a call that started after registering, and after the previous one returned.
    async fn next(&mut self) -> Result<Arc<Snapshot>, CloudError> {
        loop {
            {
                let snap = self.rx.borrow_and_update();
                if snap.tick >= self.ticket.first_call {
                    self.ticket.first_call = snap.tick + 1;
                    return Ok(Arc::clone(&snap));
                }
            }
            self.rx.changed().await.map_err(|_| CloudError::PollerGone)?;
        }
    }

    async fn next_disks(&mut self) -> Result<Arc<Vec<Disk>>, CloudError> {
        let snap = self.next().await?;
        snap.disks
            .clone()
            .map_err(|(message, kind)| CloudError::Describe { message, kind })
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.shared.schedule().withdraw(self.ticket.id);
    }
}

impl VolumeWatch {
    /// A poller over `cloud` whose waiters look every `interval` (see the module documentation);
    /// waits give up after `timeout`. Must be called inside a Tokio runtime (it spawns the polling task).
    pub fn new(cloud: Cloud, mode: PollMode, interval: Duration, timeout: Duration) -> Self {
        Self::with_source(Arc::new(cloud), mode, interval, timeout)
    }

    pub(crate) fn with_source(
        source: Arc<dyn VolumeSource>,
        mode: PollMode,
        interval: Duration,
        timeout: Duration,
    ) -> Self {
        let (tx, _) = watch::channel(Arc::new(Snapshot {
            tick: 0,
            disks: Ok(Arc::new(Vec::new())),
        }));
        let shared = Arc::new(Shared {
            schedule: Mutex::new(Schedule::new(interval)),
            wake: Notify::new(),
            tx,
        });
        let task = (mode == PollMode::Shared).then(|| {
            Arc::new(TaskGuard(tokio::spawn(poll_loop(
                Arc::clone(&source),
                Arc::clone(&shared),
            ))))
        });
        Self {
            source,
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

    /// Every disk, as seen by a DescribeVolumes that started after this call.
    pub async fn fresh(&self) -> Result<Arc<Vec<Disk>>, CloudError> {
        match self.mode {
            PollMode::PerRequest => Ok(Arc::new(self.source.list().await?)),
            PollMode::Shared => Registration::new(&self.shared, Want::Once).next_disks().await,
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

    /// How long a waiter goes between two looks of its own (per-request polling's sleep).
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
        let started = Instant::now();
        let mut last = String::from("nothing observed yet");
        let wait = async {
            let mut registration =
                (self.mode == PollMode::Shared).then(|| Registration::new(&self.shared, Want::Repeated));
            loop {
                let seen = match registration.as_mut() {
                    Some(r) => r.next_disks().await,
                    None => {
                        tokio::time::sleep(self.interval).await;
                        self.source.get(id).await.map(|d| Arc::new(d.into_iter().collect()))
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

async fn poll_loop(source: Arc<dyn VolumeSource>, shared: Arc<Shared>) {
    loop {
        let next = shared.schedule().next_call();
        match next {
            None => {
                shared.wake.notified().await;
                continue;
            }
            Some(at) if at > Instant::now() => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = shared.wake.notified() => {}
                }
                continue;
            }
            Some(_) => {}
        }
        let started = Instant::now();
        let tick = shared.schedule().start(started);
        let disks = match source.list().await {
            Ok(d) => Ok(Arc::new(d)),
            Err(e) => {
                tracing::warn!(error = %e, "DescribeVolumes poll failed");
                Err((e.to_string(), e.kind()))
            }
        };
        let mut schedule = shared.schedule();
        schedule.finish(started, Instant::now());
        shared.tx.send_replace(Arc::new(Snapshot { tick, disks }));
    }
}

#[cfg(test)]
mod tests;
