//! Bounded retries with exponential backoff and full jitter.
//!
//! Which failures are retried depends on whether the operation changes anything. A read (`Describe*`) is retried
//! on every retryable failure. A mutating call is retried only when the server certainly did not act on it: the
//! connection was never made, the server said it is busy (`*.Processing`) or throttled the call (HTTP 429/503).
//! An ambiguous failure of a mutating call (a timeout after sending, HTTP 502/504) is returned to the caller, which
//! re-reads the state before acting again: retrying blindly could create a second disk.

use std::time::Duration;

use rand::Rng;

use crate::error::{Error, ErrorKind};

/// How often and how patiently to retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryConfig {
    /// Attempts in total, including the first (1 disables retries).
    pub max_attempts: u32,
    /// The backoff ceiling of the first retry; it doubles on each attempt.
    pub initial_backoff: Duration,
    /// The cap on the doubling backoff ceiling; each wait is drawn between half the ceiling and the ceiling.
    pub max_backoff: Duration,
}

impl Default for RetryConfig {
    /// Five attempts, as the official SDK's retry rules for the computing API, from 500 ms up to 20 s.
    fn default() -> Self {
        RetryConfig {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(20),
        }
    }
}

impl RetryConfig {
    /// No retries at all.
    pub fn disabled() -> Self {
        RetryConfig {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The ceiling of the backoff before attempt `attempt + 1` (attempt counts from 1).
    pub fn backoff_ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16));
        self.initial_backoff.saturating_mul(factor).min(self.max_backoff)
    }

    /// A random backoff in `[ceiling / 2, ceiling]` ("equal jitter"): spread out, never zero.
    pub fn backoff(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.backoff_ceiling(attempt);
        let half = ceiling / 2;
        half + Duration::from_nanos(rng.random_range(0..=half.as_nanos().min(u64::MAX as u128) as u64))
    }
}

/// Whether an action only reads state, so that repeating it is always safe.
pub fn is_read_only(action: &str) -> bool {
    let name = action.strip_prefix("Nifty").unwrap_or(action);
    name.starts_with("Describe") || name.starts_with("Get") || name.starts_with("List")
}

/// Whether `error` of `action` may be retried without risk of acting twice.
pub fn should_retry(action: &str, error: &Error) -> bool {
    match error {
        Error::Transport { source, .. } => is_read_only(action) || source.is_connect(),
        Error::Api(api) => match api.kind() {
            ErrorKind::Busy => true,
            ErrorKind::Unavailable => is_read_only(action) || matches!(api.status, 429 | 503),
            _ => false,
        },
        Error::Parse { status, .. } => is_read_only(action) && matches!(status, 502..=504),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;

    fn api(code: &str, status: u16) -> Error {
        Error::Api(ApiError {
            action: "X".into(),
            code: code.into(),
            message: String::new(),
            request_id: None,
            status,
        })
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let c = RetryConfig {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        let ceilings: Vec<u128> = (1..=6).map(|a| c.backoff_ceiling(a).as_millis()).collect();
        assert_eq!(ceilings, vec![100, 200, 400, 800, 1000, 1000]);
        let mut rng = rand::rng();
        for attempt in 1..=6 {
            for _ in 0..100 {
                let b = c.backoff(attempt, &mut rng);
                assert!(
                    b >= c.backoff_ceiling(attempt) / 2 && b <= c.backoff_ceiling(attempt),
                    "{b:?}"
                );
            }
        }
        assert_eq!(c.backoff_ceiling(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn reads_and_mutations_are_told_apart() {
        for a in [
            "DescribeVolumes",
            "NiftyDescribeElasticLoadBalancers",
            "DescribeInstanceAttribute",
        ] {
            assert!(is_read_only(a), "{a}");
        }
        for a in [
            "CreateVolume",
            "NiftyCreateElasticLoadBalancer",
            "AttachVolume",
            "ExtendVolumeSize",
        ] {
            assert!(!is_read_only(a), "{a}");
        }
    }

    #[test]
    fn mutations_retry_only_when_the_server_certainly_did_nothing() {
        let busy = api("Server.ResourceIncorrectState.SecurityGroup.Processing", 400);
        assert!(should_retry("AuthorizeSecurityGroupIngress", &busy));
        assert!(should_retry("CreateVolume", &api("Server.Unavailable", 503)));
        assert!(should_retry("CreateVolume", &api("Client.Throttled", 429)));
        assert!(!should_retry("CreateVolume", &api("Server.GatewayTimeout", 504)));
        assert!(should_retry("DescribeVolumes", &api("Server.GatewayTimeout", 504)));
        assert!(!should_retry(
            "DescribeVolumes",
            &api("Client.InvalidParameterNotFound.Volume", 400)
        ));
        assert!(!should_retry("DescribeVolumes", &api("Server.InternalError", 500)));
    }
}
