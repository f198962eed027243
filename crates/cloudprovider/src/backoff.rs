//! Per-key exponential backoff, like client-go's `ItemExponentialFailureRateLimiter` (5 s → 300 s in the service
//! controller).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The delay after the `failures`-th consecutive failure (1-based): `base * 2^(failures-1)`, capped at `max`.
pub fn backoff_delay(failures: u32, base: Duration, max: Duration) -> Duration {
    let exponent = failures.saturating_sub(1).min(31);
    base.checked_mul(1u32 << exponent).map_or(max, |d| d.min(max))
}

/// Counts consecutive failures per key.
#[derive(Debug)]
pub struct KeyedBackoff {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl KeyedBackoff {
    /// A backoff from `base` doubling up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The service controller's schedule: 5 s doubling up to 300 s.
    pub fn service_default() -> Self {
        Self::new(Duration::from_secs(5), Duration::from_secs(300))
    }

    /// Records a failure of `key` and returns how long to wait before the next attempt.
    pub fn fail(&self, key: &str) -> Duration {
        let mut map = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = map.entry(key.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        backoff_delay(*n, self.base, self.max)
    }

    /// Forgets the failures of `key` (after a success).
    pub fn reset(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(key);
    }

    /// The slowest step (used for errors that should not be retried quickly).
    pub fn max(&self) -> Duration {
        self.max
    }

    /// How many keys are currently failing (waiting for a retry).
    pub fn failing_keys(&self) -> usize {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_doubles_from_5s_to_300s() {
        let base = Duration::from_secs(5);
        let max = Duration::from_secs(300);
        let table = [
            (1, 5),
            (2, 10),
            (3, 20),
            (4, 40),
            (5, 80),
            (6, 160),
            (7, 300),
            (8, 300),
            (40, 300),
            (u32::MAX, 300),
        ];
        for (failures, secs) in table {
            assert_eq!(
                backoff_delay(failures, base, max),
                Duration::from_secs(secs),
                "failures={failures}"
            );
        }
    }

    #[test]
    fn keys_are_independent_and_reset() {
        let b = KeyedBackoff::service_default();
        assert_eq!(b.fail("a"), Duration::from_secs(5));
        assert_eq!(b.fail("a"), Duration::from_secs(10));
        assert_eq!(b.fail("b"), Duration::from_secs(5));
        assert_eq!(b.failing_keys(), 2);
        b.reset("a");
        assert_eq!(b.fail("a"), Duration::from_secs(5));
        b.reset("a");
        b.reset("b");
        assert_eq!(b.failing_keys(), 0);
    }
}
