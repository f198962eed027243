//! A short-lived, request-coalescing cache of one describe call.
//!
//! NIFCLOUD's `DescribeInstances`, `DescribeLoadBalancers` and `DescribeVolumes` take no filters worth using and
//! have no paging: one call returns the whole region. [`CoalescingCache`] keeps the last reply for a short TTL and
//! makes concurrent callers share one call:
//!
//! - a value younger than the TTL is returned without a call;
//! - otherwise one caller fetches while the others wait for it, and every caller that asked **before that fetch
//!   started** takes its result, value or error (so a burst of N callers costs one call, and an error is not
//!   retried N times in a row);
//! - [`CoalescingCache::get_fresh`] ignores the TTL: it returns the result of a fetch that started after the call
//!   (for decisions that must not rest on stale data, such as "this instance is gone");
//! - [`CoalescingCache::invalidate`] drops the value, for use after a mutation.
//!
//! Ages are measured from the **start** of the fetch that produced a value.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// The default TTL: long enough to absorb a burst of reconciles, short enough that drift is seen quickly.
pub const DEFAULT_TTL: Duration = Duration::from_secs(8);

struct Entry<T, E> {
    started: Instant,
    result: Result<Arc<T>, E>,
}

/// A cache of one value of type `T`, filled by a fetch that can fail with `E`. See the module documentation.
pub struct CoalescingCache<T, E> {
    ttl: Duration,
    slot: Mutex<Option<Entry<T, E>>>,
    fetches: std::sync::atomic::AtomicU64,
}

impl<T, E> std::fmt::Debug for CoalescingCache<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoalescingCache")
            .field("ttl", &self.ttl)
            .field("fetches", &self.fetch_count())
            .finish_non_exhaustive()
    }
}

impl<T, E> CoalescingCache<T, E> {
    /// How many fetches this cache has started.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl<T, E: Clone> CoalescingCache<T, E> {
    /// An empty cache whose values live for `ttl` (zero disables reuse across requests, not coalescing).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            slot: Mutex::new(None),
            fetches: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How long a fetched value is served before the next caller fetches again.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The cached value if younger than the TTL, else the result of a (shared) fetch.
    pub async fn get<F, Fut>(&self, fetch: F) -> Result<Arc<T>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.get_inner(Instant::now(), true, fetch).await.map(|(v, _)| v)
    }

    /// The result of a fetch that started no earlier than this call (shared with concurrent callers).
    pub async fn get_fresh<F, Fut>(&self, fetch: F) -> Result<Arc<T>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.get_inner(Instant::now(), false, fetch).await.map(|(v, _)| v)
    }

    /// Like [`get`](Self::get), with the instant the fetch that produced the value started.
    pub async fn get_stamped<F, Fut>(&self, fetch: F) -> Result<(Arc<T>, Instant), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.get_inner(Instant::now(), true, fetch).await
    }

    /// The result of a fetch that started no earlier than `asked` (an instant taken by the caller earlier, for
    /// example before a first [`get`](Self::get) whose answer it wants to double-check).
    pub async fn get_since<F, Fut>(&self, asked: Instant, fetch: F) -> Result<Arc<T>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.get_inner(asked, false, fetch).await.map(|(v, _)| v)
    }

    /// Drops the cached value: the next [`get`](Self::get) fetches.
    pub async fn invalidate(&self) {
        *self.slot.lock().await = None;
    }

    /// The cached value, if any and younger than the TTL, without fetching.
    pub async fn peek(&self) -> Option<Arc<T>> {
        let slot = self.slot.lock().await;
        match slot.as_ref() {
            Some(Entry { started, result: Ok(v) }) if started.elapsed() < self.ttl => Some(v.clone()),
            _ => None,
        }
    }

    async fn get_inner<F, Fut>(&self, asked: Instant, allow_ttl: bool, fetch: F) -> Result<(Arc<T>, Instant), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        // Holding the lock across the fetch is what coalesces: the others queue on the lock and then find the
        // result of a fetch that started after they asked.
        let mut slot = self.slot.lock().await;
        if let Some(entry) = slot.as_ref() {
            let fresh_for_caller = entry.started >= asked;
            let within_ttl = allow_ttl && entry.result.is_ok() && entry.started.elapsed() < self.ttl;
            if fresh_for_caller || within_ttl {
                return entry.result.clone().map(|v| (v, entry.started));
            }
        }
        let started = Instant::now();
        self.fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let result = fetch().await.map(Arc::new);
        *slot = Some(Entry {
            started,
            result: result.clone(),
        });
        result.map(|v| (v, started))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_fetch() {
        let cache: Arc<CoalescingCache<u32, String>> = Arc::new(CoalescingCache::new(Duration::from_secs(5)));
        let calls = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let cache = cache.clone();
            let calls = calls.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .get(|| async {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok::<u32, String>(calls.fetch_add(1, Ordering::SeqCst) + 1)
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(*t.await.unwrap().unwrap(), 1);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(cache.fetch_count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn ttl_expiry_and_invalidate_refetch() {
        let cache: CoalescingCache<u32, String> = CoalescingCache::new(Duration::from_secs(5));
        let n = AtomicU32::new(0);
        let fetch = || async { Ok::<u32, String>(n.fetch_add(1, Ordering::SeqCst)) };
        assert_eq!(*cache.get(fetch).await.unwrap(), 0);
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(*cache.get(fetch).await.unwrap(), 0, "within the TTL");
        assert_eq!(cache.peek().await.as_deref(), Some(&0));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(cache.peek().await, None);
        assert_eq!(*cache.get(fetch).await.unwrap(), 1, "after the TTL");
        cache.invalidate().await;
        assert_eq!(*cache.get(fetch).await.unwrap(), 2, "after invalidate");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(*cache.get_fresh(fetch).await.unwrap(), 3, "fresh ignores the TTL");
    }

    #[tokio::test(start_paused = true)]
    async fn stamps_and_since() {
        let cache: CoalescingCache<u32, String> = CoalescingCache::new(Duration::from_secs(5));
        let t0 = Instant::now();
        let (v, started) = cache.get_stamped(|| async { Ok::<u32, String>(1) }).await.unwrap();
        assert_eq!((*v, started), (1, t0));
        tokio::time::advance(Duration::from_secs(1)).await;
        let (_, again) = cache.get_stamped(|| async { Ok::<u32, String>(2) }).await.unwrap();
        assert_eq!(again, t0, "served from the cache with the original stamp");
        // A listing that started at t0 satisfies a question asked at t0, not one asked later.
        assert_eq!(
            *cache.get_since(t0, || async { Ok::<u32, String>(3) }).await.unwrap(),
            1
        );
        let later = Instant::now();
        assert_eq!(
            *cache.get_since(later, || async { Ok::<u32, String>(4) }).await.unwrap(),
            4
        );
    }

    #[tokio::test(start_paused = true)]
    async fn errors_are_shared_with_waiters_but_not_cached() {
        let cache: Arc<CoalescingCache<u32, String>> = Arc::new(CoalescingCache::new(Duration::from_secs(5)));
        let calls = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let cache = cache.clone();
            let calls = calls.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .get(|| async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Err::<u32, String>("busy".into())
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap_err(), "busy");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one failing call for the burst");
        // A later caller does not get the old error.
        let v = cache.get(|| async { Ok::<u32, String>(7) }).await.unwrap();
        assert_eq!(*v, 7);
    }
}
