//! The shared poller's schedule against a scripted DescribeVolumes, in paused Tokio time: when waiters
//! and readers finish, compared with per-request polling, and how many calls it costs.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::join_all;

use super::*;
use crate::disk::DiskStatus;

const INTERVAL: Duration = Duration::from_secs(1);
const LATENCY: Duration = Duration::from_millis(150);
const TIMEOUT: Duration = Duration::from_secs(120);

/// DescribeVolumes that takes [`LATENCY`] and shows each disk `creating` until its time, then its final
/// status (evaluated when the reply is made, as the service does).
#[derive(Debug, Default)]
struct Fake {
    disks: Mutex<BTreeMap<String, (Instant, DiskStatus)>>,
    failures: Mutex<VecDeque<ErrorKind>>,
    lists: AtomicUsize,
    gets: AtomicUsize,
}

impl Fake {
    fn with(disks: impl IntoIterator<Item = (String, Instant)>) -> Arc<Self> {
        let fake = Fake::default();
        fake.disks
            .lock()
            .unwrap()
            .extend(disks.into_iter().map(|(id, at)| (id, (at, DiskStatus::Available))));
        Arc::new(fake)
    }

    fn set(&self, id: &str, at: Instant, status: DiskStatus) {
        self.disks.lock().unwrap().insert(id.to_string(), (at, status));
    }

    fn fail_next(&self, kind: ErrorKind) {
        self.failures.lock().unwrap().push_back(kind);
    }

    fn lists(&self) -> usize {
        self.lists.load(Ordering::SeqCst)
    }

    fn gets(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }

    async fn reply(&self) -> Result<Vec<Disk>, CloudError> {
        tokio::time::sleep(LATENCY).await;
        if let Some(kind) = self.failures.lock().unwrap().pop_front() {
            return Err(CloudError::Describe {
                message: format!("injected {kind:?}"),
                kind,
            });
        }
        let now = Instant::now();
        Ok(self
            .disks
            .lock()
            .unwrap()
            .iter()
            .map(|(id, (at, status))| {
                disk(
                    id,
                    if now >= *at {
                        status.clone()
                    } else {
                        DiskStatus::Creating
                    },
                )
            })
            .collect())
    }
}

impl VolumeSource for Fake {
    fn list(&self) -> BoxFuture<'_, Result<Vec<Disk>, CloudError>> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        Box::pin(self.reply())
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<Disk>, CloudError>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move { Ok(self.reply().await?.into_iter().find(|d| d.id == id)) })
    }
}

fn disk(id: &str, status: DiskStatus) -> Disk {
    Disk {
        id: id.into(),
        unique_id: format!("vol-{id}"),
        size_gb: 100,
        disk_type: None,
        zone: "east-11".into(),
        description: String::new(),
        status,
        accounting: None,
        next_month_accounting: None,
        attachments: Vec::new(),
    }
}

fn watch(fake: &Arc<Fake>, mode: PollMode) -> VolumeWatch {
    VolumeWatch::with_source(Arc::clone(fake) as Arc<dyn VolumeSource>, mode, INTERVAL, TIMEOUT)
}

fn settled(id: &str) -> impl FnMut(&[Disk]) -> bool + '_ {
    move |d| d.iter().any(|x| x.id == id && x.status != DiskStatus::Creating)
}

fn ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("vol{i:03}")).collect()
}

/// `n` waiters registering together for disks that settle `after` from now, in `mode`: when the last one
/// ended (from the start) and how many DescribeVolumes calls they cost.
async fn cohort(mode: PollMode, n: usize, after: Duration) -> (Duration, usize) {
    let t0 = Instant::now();
    let names = ids(n);
    let fake = Fake::with(names.iter().map(|id| (id.clone(), t0 + after)));
    let w = watch(&fake, mode);
    let ends = join_all(names.iter().map(|id| {
        let w = &w;
        async move {
            w.wait_until(id, "settled", settled(id)).await.expect("settles");
            Instant::now()
        }
    }))
    .await;
    let last = ends.into_iter().max().expect("waiters") - t0;
    (last, fake.lists() + fake.gets())
}

#[tokio::test(start_paused = true)]
async fn shared_waits_end_no_later_than_per_request_ones_for_a_fraction_of_the_calls() {
    let n = 50;
    // Transitions from immediate (a rename) to several intervals (a creation), on and off the interval grid.
    let afters = [0.0, 0.1, 0.5, 1.0, 1.3, 1.5, 2.2, 3.9, 4.5].map(|k| INTERVAL.mul_f64(k));
    for after in afters {
        let (shared, shared_calls) = cohort(PollMode::Shared, n, after).await;
        let (per_request, per_request_calls) = cohort(PollMode::PerRequest, n, after).await;
        assert!(
            shared <= per_request,
            "transition of {after:?}: shared ended after {shared:?}, per-request after {per_request:?}"
        );
        // Per-request polling pays each waiter's looks; shared pays one waiter's, plus the look at once.
        assert_eq!(per_request_calls % n, 0);
        assert!(
            shared_calls <= per_request_calls / n + 1,
            "transition of {after:?}: {shared_calls} shared calls, {per_request_calls} per-request"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_change_made_at_once_is_seen_after_one_call_not_an_interval() {
    let (shared, calls) = cohort(PollMode::Shared, 10, Duration::ZERO).await;
    let gather = Schedule::new(INTERVAL).gather();
    assert_eq!(shared, gather + LATENCY, "one gathering time and one call");
    assert_eq!(calls, 1);
    let (per_request, _) = cohort(PollMode::PerRequest, 10, Duration::ZERO).await;
    assert_eq!(
        per_request,
        INTERVAL + LATENCY,
        "per-request polling sleeps an interval first"
    );
}

#[tokio::test(start_paused = true)]
async fn readers_arriving_together_share_one_call() {
    let fake = Fake::with(ids(3).into_iter().map(|id| (id, Instant::now())));
    let w = watch(&fake, PollMode::Shared);
    let t0 = Instant::now();
    let seen = join_all((0..100).map(|_| w.fresh())).await;
    assert!(seen.iter().all(|r| r.as_ref().is_ok_and(|d| d.len() == 3)));
    assert_eq!(fake.lists(), 1, "100 readers, one DescribeVolumes");
    assert_eq!(t0.elapsed(), Schedule::new(INTERVAL).gather() + LATENCY);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_is_served_early_by_a_call_made_for_another() {
    let t0 = Instant::now();
    let fake = Fake::with([("early".to_string(), t0 + INTERVAL * 100)]);
    let w = watch(&fake, PollMode::Shared);
    // The first waiter's own look falls at t0 + INTERVAL.
    let first = w.wait_until("early", "the first waiter", settled("early"));
    // The second registers half an interval later; its disk settles just before the first one's look.
    let t1 = t0 + INTERVAL / 2;
    fake.set("late", t0 + INTERVAL - Duration::from_millis(1), DiskStatus::Available);
    let second = async {
        tokio::time::sleep_until(t1).await;
        w.wait_until("late", "the second waiter", settled("late"))
            .await
            .unwrap();
        Instant::now()
    };
    let ended = tokio::select! {
        _ = first => panic!("the first disk never settles"),
        ended = second => ended,
    };
    assert_eq!(ended, t0 + INTERVAL + LATENCY, "served by the first waiter's own look");
    assert!(
        ended < t1 + INTERVAL + LATENCY,
        "before per-request polling's first look"
    );
}

#[tokio::test(start_paused = true)]
async fn waiters_out_of_step_cost_a_bounded_number_of_calls_and_none_once_dropped() {
    let t0 = Instant::now();
    let names = ids(40);
    let fake = Fake::with(names.iter().map(|id| (id.clone(), t0 + TIMEOUT * 10)));
    let w = watch(&fake, PollMode::Shared);
    let stagger = INTERVAL / 20;
    let run = INTERVAL * 4;
    let waits = join_all(names.iter().enumerate().map(|(i, id)| {
        let w = &w;
        async move {
            tokio::time::sleep(stagger * i as u32).await;
            w.wait_until(id, "never", settled(id)).await
        }
    }));
    tokio::time::timeout(run, waits).await.expect_err("nothing settles");
    let spacing = Schedule::new(INTERVAL).spacing();
    let bound = (run.as_secs_f64() / spacing.as_secs_f64()).ceil() as usize + 1;
    let calls = fake.lists();
    assert!(calls <= bound, "{calls} calls in {run:?}, at most one per {spacing:?}");
    // Each of the 40 would have looked on its own at least twice in that time.
    assert!(calls < 40 * 2, "{calls} calls");
    // The waiters were dropped with the timeout: their registrations are gone, and so are the calls.
    assert!(w.shared.schedule().is_empty());
    tokio::time::sleep(INTERVAL * 10).await;
    assert_eq!(fake.lists(), calls, "an idle poller makes no calls");
}

#[tokio::test(start_paused = true)]
async fn a_wait_gives_up_in_time_with_the_last_state_seen() {
    let t0 = Instant::now();
    let fake = Fake::with([("slow".to_string(), t0 + TIMEOUT)]);
    let w = watch(&fake, PollMode::Shared);
    let within = INTERVAL * 3;
    let err = w
        .wait_within("slow", "a slow disk", within, settled("slow"))
        .await
        .unwrap_err();
    let CloudError::WaitTimeout { what, last, waited } = &err else {
        panic!("{err}");
    };
    assert_eq!((what.as_str(), *waited), ("a slow disk", within));
    assert!(last.contains("status creating"), "{last}");
    assert!(w.shared.schedule().is_empty(), "the timed-out waiter withdrew");
}

#[tokio::test(start_paused = true)]
async fn retryable_errors_are_waited_out_and_others_end_every_wait_they_reach() {
    let t0 = Instant::now();
    let fake = Fake::with([
        ("a".to_string(), t0 + INTERVAL / 2),
        ("b".to_string(), t0 + INTERVAL / 2),
    ]);
    let w = watch(&fake, PollMode::Shared);
    // The look at once fails as busy: waited out; the next look (the waiters' own) sees both settled.
    fake.fail_next(ErrorKind::Busy);
    let ends = join_all(["a", "b"].map(|id| w.wait_until(id, id, settled(id)))).await;
    assert!(ends.iter().all(Result::is_ok), "{ends:?}");
    assert_eq!(fake.lists(), 2);
    assert_eq!(t0.elapsed(), INTERVAL + LATENCY);

    // An error that will not pass ends both waits at the call that returned it.
    fake.set("c", t0 + TIMEOUT, DiskStatus::Available);
    fake.set("d", t0 + TIMEOUT, DiskStatus::Available);
    fake.fail_next(ErrorKind::Auth);
    let ends = join_all(["c", "d"].map(|id| w.wait_until(id, id, settled(id)))).await;
    for end in ends {
        let err = end.unwrap_err();
        assert!(
            matches!(
                err,
                CloudError::Describe {
                    kind: ErrorKind::Auth,
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_disk_turning_to_an_error_state_reaches_its_waiter_at_the_next_look() {
    let t0 = Instant::now();
    let fake = Fake::default();
    fake.set("broken", t0 + INTERVAL * 2, DiskStatus::Other("error".into()));
    let fake = Arc::new(fake);
    let w = watch(&fake, PollMode::Shared);
    let seen = w
        .wait_until("broken", "broken", |d| {
            d.iter().any(|x| matches!(x.status, DiskStatus::Other(_)))
        })
        .await
        .unwrap();
    assert!(seen.iter().any(|x| x.status == DiskStatus::Other("error".into())));
    // Looks at once, at t0 + interval, then an interval after that reply: the second own look sees it.
    assert_eq!(t0.elapsed(), INTERVAL * 2 + LATENCY * 2);
}
