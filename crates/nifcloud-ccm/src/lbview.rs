//! A shared view of every load balancer of one kind, read with one coalesced describe call, plus per-name
//! overrides for the load balancers this process has just changed.
//!
//! Reconciling Service A reads the region-wide listing (cached for the TTL, shared by every Service). After A's
//! load balancer is changed, it is marked dirty; the next read of A alone is answered by a describe of that one
//! name, until a full listing that started after the change replaces it. So the cost of N Services is one listing
//! per TTL plus one targeted read per changed load balancer, not N listings.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use nifcloud_cloud::{CloudError, CoalescingCache};
use tokio::time::Instant;

/// A load balancer as listed: the view finds it in a listing by its name.
pub trait Named {
    /// Its name on NIFCLOUD (unique per kind in a region).
    fn name(&self) -> &str;
}

#[derive(Clone, Debug)]
enum Override<T> {
    Dirty(Instant),
    Known(Instant, Option<T>),
}

/// The shared view of every load balancer of one kind: one coalesced listing per TTL, plus targeted reads of the
/// ones this process changed since (see the module documentation).
pub struct LbView<T> {
    cache: CoalescingCache<Vec<T>, CloudError>,
    overrides: Mutex<HashMap<String, Override<T>>>,
}

impl<T> std::fmt::Debug for LbView<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LbView")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl<T: Clone + Named> LbView<T> {
    /// A view whose listing lives for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            cache: CoalescingCache::new(ttl),
            overrides: Mutex::new(HashMap::new()),
        }
    }

    /// How many full listings were made.
    pub fn listings(&self) -> u64 {
        self.cache.fetch_count()
    }

    /// Marks `name` as changed by this process.
    pub fn mark_dirty(&self, name: &str) {
        if let Ok(mut o) = self.overrides.lock() {
            o.insert(name.to_owned(), Override::Dirty(Instant::now()));
        }
    }

    /// The load balancer `name`: from the shared listing, or from a targeted read when this process changed it
    /// after the listing started.
    pub async fn get<L, LF, O, OF>(&self, name: &str, list: L, one: O) -> Result<Option<T>, CloudError>
    where
        L: FnOnce() -> LF,
        LF: Future<Output = Result<Vec<T>, CloudError>>,
        O: FnOnce() -> OF,
        OF: Future<Output = Result<Option<T>, CloudError>>,
    {
        let (all, started) = self.cache.get_stamped(list).await?;
        let current = self.overrides.lock().ok().and_then(|o| o.get(name).cloned());
        match current {
            Some(Override::Known(at, value)) if at >= started => Ok(value),
            Some(Override::Dirty(at)) if at >= started => {
                let read_at = Instant::now();
                let value = one().await?;
                if let Ok(mut o) = self.overrides.lock() {
                    // Keep a newer dirty mark set meanwhile.
                    let newer = matches!(o.get(name), Some(Override::Dirty(t)) if *t > at);
                    if !newer {
                        o.insert(name.to_owned(), Override::Known(read_at, value.clone()));
                    }
                }
                Ok(value)
            }
            stale => {
                if stale.is_some()
                    && let Ok(mut o) = self.overrides.lock()
                {
                    let older = match o.get(name) {
                        Some(Override::Dirty(t) | Override::Known(t, _)) => *t < started,
                        None => false,
                    };
                    if older {
                        o.remove(name);
                    }
                }
                Ok(all.iter().find(|x| x.name() == name).cloned())
            }
        }
    }
}
