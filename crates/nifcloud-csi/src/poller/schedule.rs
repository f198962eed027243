//! When the shared poller calls DescribeVolumes: a pure function of who is registered and when each
//! wants a look. No IO and no clock: every time comes in as an argument, so the rules are tested with
//! plain values.
//!
//! - A **reader** wants one look, as soon as possible.
//! - A **waiter** wants a look as soon as it registers (it has just made its change, so a change NIFCLOUD
//!   makes at once, such as a rename, is seen after one call), then one `interval` after it registered and
//!   again `interval` after each of its own looks ended: the schedule of per-request polling, which sleeps
//!   `interval` before each call. So a wait sees each state no later than per-request polling would, but
//!   for the holds below (at most [`MAX_GATHER`], or the spacing when calls would come closer).
//! - A call serves every registration made before it started. For a waiter whose own look was not yet due
//!   it is a free extra look, and its schedule stays as it was (moving it would shift its looks away from
//!   the per-request schedule).
//! - The call is made when the earliest look is due, held back by at most [`MAX_GATHER`] while others
//!   fall due, so that readers and waiters arriving together share it; calls start at least
//!   `interval / MAX_CALLS_PER_INTERVAL` apart, so waiters whose schedules differ cost at most
//!   [`MAX_CALLS_PER_INTERVAL`] calls per interval between them, and one call is in flight at a time.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

/// Most DescribeVolumes calls per interval, however many waiters' schedules differ.
pub const MAX_CALLS_PER_INTERVAL: u32 = 8;

/// Longest a call is held back for others falling due, so that registrations arriving together share it.
pub const MAX_GATHER: Duration = Duration::from_millis(10);

/// What a registration wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// One look (a reader).
    Once,
    /// Looks until withdrawn (a waiter): one at once, then one `interval` after each of its own.
    Repeated,
}

/// A registration's number, and the first call whose result it may use (one started after it registered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// The registration, for [`Schedule::withdraw`].
    pub id: u64,
    /// The first call number whose result is fresh enough for it.
    pub first_call: u64,
}

#[derive(Debug)]
struct Entry {
    /// A look wanted as soon as possible, from this time (registration plus the gathering time).
    look: Option<Instant>,
    /// A waiter's own next look.
    due: Option<Instant>,
    /// Registered before the call in flight started: its result serves this entry.
    served: bool,
}

impl Entry {
    fn ready(&self) -> Option<Instant> {
        match (self.look, self.due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Who wants a look and when; see the module documentation for the rules.
#[derive(Debug)]
pub struct Schedule {
    interval: Duration,
    spacing: Duration,
    gather: Duration,
    entries: BTreeMap<u64, Entry>,
    next_id: u64,
    calls: u64,
    last_start: Option<Instant>,
}

impl Schedule {
    /// An empty schedule for waiters that look every `interval`.
    pub fn new(interval: Duration) -> Self {
        let spacing = interval / MAX_CALLS_PER_INTERVAL;
        Self {
            interval,
            spacing,
            gather: MAX_GATHER.min(spacing),
            entries: BTreeMap::new(),
            next_id: 0,
            calls: 0,
            last_start: None,
        }
    }

    /// The shortest time between the starts of two calls.
    pub fn spacing(&self) -> Duration {
        self.spacing
    }

    /// How long a look wanted at once may wait for others to share its call.
    pub fn gather(&self) -> Duration {
        self.gather
    }

    /// Registers a reader or a waiter at `now`.
    pub fn register(&mut self, want: Want, now: Instant) -> Ticket {
        self.next_id += 1;
        let id = self.next_id;
        self.entries.insert(
            id,
            Entry {
                look: Some(now + self.gather),
                due: (want == Want::Repeated).then(|| now + self.interval),
                served: false,
            },
        );
        Ticket {
            id,
            first_call: self.calls + 1,
        }
    }

    /// Withdraws a registration (its reader or waiter is done or gone).
    pub fn withdraw(&mut self, id: u64) {
        self.entries.remove(&id);
    }

    /// Registrations, done or not.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nobody is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// When to start the next call (`None`: nobody wants one). The caller makes one call at a time, so it
    /// asks only between calls.
    pub fn next_call(&self) -> Option<Instant> {
        let earliest = self.entries.values().filter_map(Entry::ready).min()?;
        let batch = self
            .entries
            .values()
            .filter_map(Entry::ready)
            .filter(|t| *t <= earliest + self.gather)
            .max()
            .unwrap_or(earliest);
        Some(match self.last_start {
            Some(last) => batch.max(last + self.spacing),
            None => batch,
        })
    }

    /// A call starts at `now`: every registration so far is served by it. Returns its number.
    pub fn start(&mut self, now: Instant) -> u64 {
        self.calls += 1;
        self.last_start = Some(now);
        for e in self.entries.values_mut() {
            e.served = true;
        }
        self.calls
    }

    /// The call that started at `started` ended at `now`: the registrations it served have had their
    /// look, and waiters whose own look it was look again `interval` from now.
    pub fn finish(&mut self, started: Instant, now: Instant) {
        for e in self.entries.values_mut().filter(|e| e.served) {
            e.served = false;
            e.look = None;
            if e.due.is_some_and(|d| d <= started) {
                e.due = Some(now + self.interval);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nobody_registered_means_no_call() {
        let mut s = Schedule::new(SEC);
        assert_eq!(s.next_call(), None);
        let t0 = Instant::now();
        let r = s.register(Want::Repeated, t0);
        s.withdraw(r.id);
        assert_eq!(s.next_call(), None, "a withdrawn waiter costs no call");
    }

    #[test]
    fn a_reader_gets_one_call_after_the_gathering_time_and_then_costs_nothing() {
        let mut s = Schedule::new(SEC);
        let t0 = Instant::now();
        let r = s.register(Want::Once, t0);
        assert_eq!(r.first_call, 1);
        let at = s.next_call().expect("a reader wants a look");
        assert_eq!(at, t0 + s.gather());
        assert!(s.gather() <= MAX_GATHER && s.gather() > Duration::ZERO);
        let n = s.start(at);
        s.finish(at, at + ms(150));
        assert_eq!(n, r.first_call, "the call is fresh enough for the reader");
        assert_eq!(s.next_call(), None, "served, the reader wants nothing more");
    }

    #[test]
    fn a_waiter_looks_at_once_then_on_the_per_request_schedule() {
        let interval = SEC;
        let latency = ms(150);
        let mut s = Schedule::new(interval);
        let t0 = Instant::now();
        s.register(Want::Repeated, t0);
        // The look right after the caller's change.
        let first = s.next_call().unwrap();
        assert_eq!(first, t0 + s.gather());
        s.start(first);
        s.finish(first, first + latency);
        // That extra look does not move its own schedule: per-request polling's first call is at t0 +
        // interval.
        let second = s.next_call().unwrap();
        assert_eq!(second, t0 + interval);
        s.start(second);
        s.finish(second, second + latency);
        // Then interval after its own look ended, as per-request polling sleeps after each reply.
        assert_eq!(s.next_call().unwrap(), second + latency + interval);
    }

    #[test]
    fn a_call_for_one_waiter_is_an_extra_look_for_another_whose_schedule_stays() {
        let interval = SEC;
        let mut s = Schedule::new(interval);
        let t0 = Instant::now();
        s.register(Want::Repeated, t0);
        let first = s.next_call().unwrap();
        s.start(first);
        s.finish(first, first + ms(100));
        // A second waiter registers half an interval later and has its own immediate look.
        let t1 = t0 + interval / 2;
        s.register(Want::Repeated, t1);
        let look = s.next_call().unwrap();
        assert_eq!(look, t1 + s.gather());
        s.start(look);
        s.finish(look, look + ms(100));
        // The first waiter's own look is still due at t0 + interval: the second's look did not move it.
        let own = s.next_call().unwrap();
        assert_eq!(own, t0 + interval);
        s.start(own);
        s.finish(own, own + ms(100));
        // The second waiter's own look (t1 + interval) is still ahead; the first one's was re-planned.
        assert_eq!(s.next_call().unwrap(), t1 + interval);
    }

    #[test]
    fn looks_falling_due_within_the_gathering_time_share_one_call_at_the_latest_of_them() {
        let mut s = Schedule::new(SEC);
        let g = s.gather();
        let t0 = Instant::now();
        s.register(Want::Once, t0);
        s.register(Want::Once, t0 + g / 2);
        s.register(Want::Once, t0 + g);
        // Beyond the window: not waited for.
        s.register(Want::Once, t0 + g * 3);
        assert_eq!(
            s.next_call().unwrap(),
            t0 + g * 2,
            "held for the look due at t0 + 2g, not for t0 + 4g"
        );
    }

    #[test]
    fn calls_start_at_least_the_spacing_apart() {
        let interval = SEC;
        let mut s = Schedule::new(interval);
        assert_eq!(s.spacing(), interval / MAX_CALLS_PER_INTERVAL);
        let t0 = Instant::now();
        s.register(Want::Once, t0);
        let at = s.next_call().unwrap();
        s.start(at);
        s.finish(at, at + ms(1));
        s.register(Want::Once, at + ms(2));
        assert_eq!(s.next_call().unwrap(), at + s.spacing(), "held back to the spacing");
    }

    #[test]
    fn a_registration_during_a_call_is_not_served_by_it() {
        let mut s = Schedule::new(SEC);
        let t0 = Instant::now();
        s.register(Want::Once, t0);
        let at = s.next_call().unwrap();
        let n = s.start(at);
        let late = s.register(Want::Once, at + ms(1));
        assert_eq!(late.first_call, n + 1, "only a later call is fresh enough for it");
        s.finish(at, at + ms(150));
        let next = s.next_call().expect("the late reader still wants its look");
        assert_eq!(next, (at + s.spacing()).max(at + ms(1) + s.gather()));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn waiters_registered_together_stay_together() {
        let interval = SEC;
        let mut s = Schedule::new(interval);
        let t0 = Instant::now();
        for i in 0..100 {
            s.register(Want::Repeated, t0 + Duration::from_micros(i * 30));
        }
        let mut calls = 0;
        let mut now = t0;
        while now < t0 + interval * 5 {
            let at = s.next_call().unwrap();
            s.start(at);
            now = at + ms(150);
            s.finish(at, now);
            calls += 1;
        }
        // One look at once, then one call per own look: not one per waiter.
        let per_waiter = (now - t0).as_secs_f64() / (interval + ms(150)).as_secs_f64();
        assert!(
            f64::from(calls) <= per_waiter.ceil() + 1.0,
            "{calls} calls for 100 waiters over {:?}",
            now - t0
        );
    }
}
