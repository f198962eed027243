//! In-flight operation locks: a second request for a key already being worked on is refused
//! with `ABORTED` (the CSI spec's answer to concurrent calls for one volume).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

/// A key is already held by another in-flight request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an operation for {key} is already in progress")]
pub struct Busy {
    /// The contended key (for example a volume ID).
    pub key: String,
}

impl From<Busy> for tonic::Status {
    fn from(e: Busy) -> Self {
        tonic::Status::aborted(e.to_string())
    }
}

/// A set of keys currently in flight. Cheap to clone (shared state).
#[derive(Debug, Clone, Default)]
pub struct InFlight {
    keys: Arc<Mutex<HashSet<String>>>,
}

impl InFlight {
    /// A set with no operation in flight.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes `key`, or fails with [`Busy`]. The key is released when the guard drops.
    pub fn try_lock(&self, key: &str) -> Result<InFlightGuard, Busy> {
        self.try_lock_all(&[key])
    }

    /// Takes all `keys` at once (all or nothing).
    pub fn try_lock_all(&self, keys: &[&str]) -> Result<InFlightGuard, Busy> {
        let mut set = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(k) = keys.iter().find(|k| set.contains(**k)) {
            return Err(Busy { key: (*k).to_string() });
        }
        let owned: Vec<String> = keys.iter().map(|k| (*k).to_string()).collect();
        for k in &owned {
            set.insert(k.clone());
        }
        Ok(InFlightGuard {
            keys: owned,
            set: Arc::clone(&self.keys),
        })
    }

    /// Whether `key` is currently held.
    pub fn is_locked(&self, key: &str) -> bool {
        self.keys.lock().unwrap_or_else(PoisonError::into_inner).contains(key)
    }
}

/// Releases its keys on drop.
#[derive(Debug)]
pub struct InFlightGuard {
    keys: Vec<String>,
    set: Arc<Mutex<HashSet<String>>>,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut set = self.set.lock().unwrap_or_else(PoisonError::into_inner);
        for k in &self.keys {
            set.remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_until_guard_drops() {
        let locks = InFlight::new();
        let g = locks.try_lock("vol-1").unwrap();
        let err = locks.try_lock("vol-1").unwrap_err();
        assert_eq!(tonic::Status::from(err).code(), tonic::Code::Aborted);
        assert!(locks.try_lock("vol-2").is_ok());
        drop(g);
        assert!(!locks.is_locked("vol-1"));
        assert!(locks.try_lock("vol-1").is_ok());
    }

    #[test]
    fn multi_key_is_all_or_nothing() {
        let locks = InFlight::new();
        let _n = locks.try_lock("node-a").unwrap();
        assert_eq!(locks.try_lock_all(&["vol-1", "node-a"]).unwrap_err().key, "node-a");
        assert!(!locks.is_locked("vol-1"), "partial lock leaked");
        let clone = locks.clone();
        let _g = clone.try_lock_all(&["vol-1", "node-b"]).unwrap();
        assert!(locks.is_locked("node-b"));
    }
}
