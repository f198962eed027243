//! Error injection and the seeded random generator behind every random choice.
//!
//! Rules are checked in order for each authenticated request; the first rule that fires turns the
//! request into its error without touching state. A rule with `remaining: Some(n)` fires for the
//! next `n` matching calls only ("fail the next N calls of X"); `rate` below 1.0 draws from the
//! seeded generator, so the same seed and the same call sequence give the same failures.

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// All fault rules.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Rules, checked in order.
    pub rules: Vec<FaultRule>,
}

impl FaultConfig {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// Adds a rule (builder style).
    pub fn with(mut self, rule: FaultRule) -> Self {
        self.rules.push(rule);
        self
    }
}

/// One fault rule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FaultRule {
    /// Action the rule applies to; `None` means every action.
    pub action: Option<String>,
    /// Probability in 0.0..=1.0 that a matching call fails.
    pub rate: f64,
    /// Error code to send.
    pub code: String,
    /// Error message to send.
    pub message: String,
    /// HTTP status to send.
    pub status: u16,
    /// How many more matching calls may fail; `None` = unlimited.
    pub remaining: Option<u64>,
}

impl Default for FaultRule {
    fn default() -> Self {
        Self {
            action: None,
            rate: 1.0,
            code: "Server.ServiceUnavailable".into(),
            message: "injected fault".into(),
            status: 503,
            remaining: None,
        }
    }
}

impl FaultRule {
    /// Fails the next `n` calls of `action` with `code` and `status`.
    pub fn fail_next(action: &str, n: u64, code: &str, status: u16) -> Self {
        Self {
            action: Some(action.into()),
            code: code.into(),
            status,
            remaining: Some(n),
            ..Self::default()
        }
    }

    /// Fails every call of `action` with `code` (status from the code prefix: Client 400, else 500).
    pub fn always(action: &str, code: &str) -> Self {
        let status = if code.starts_with("Client.") { 400 } else { 500 };
        Self {
            action: Some(action.into()),
            code: code.into(),
            status,
            ..Self::default()
        }
    }

    /// Fails a fraction `rate` of all calls with HTTP 503 `Server.ServiceUnavailable`.
    pub fn random(rate: f64) -> Self {
        Self {
            rate,
            ..Self::default()
        }
    }

    /// Fails a fraction `rate` of all calls with HTTP 429 `Client.RequestLimitExceeded`.
    pub fn throttle(rate: f64) -> Self {
        Self {
            rate,
            code: "Client.RequestLimitExceeded".into(),
            status: 429,
            ..Self::default()
        }
    }
}

/// SplitMix64: small, fast, deterministic and serialisable.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float in `0.0..1.0`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `n` random characters from `alphabet`.
    pub fn string(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| alphabet[(self.next_u64() % alphabet.len() as u64) as usize] as char)
            .collect()
    }
}

/// Lower-case hex digits.
pub const HEX_LOWER: &[u8] = b"0123456789abcdef";
/// Lower-case letters and digits.
pub const ALNUM_LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Decides whether `action` fails now; updates `remaining` counters and draws from `rng`.
pub fn evaluate(faults: &mut FaultConfig, action: &str, rng: &mut Rng) -> Option<ApiError> {
    for rule in &mut faults.rules {
        if rule.action.as_deref().is_some_and(|a| a != action) {
            continue;
        }
        if rule.remaining == Some(0) {
            continue;
        }
        let fires = if rule.rate >= 1.0 {
            true
        } else if rule.rate <= 0.0 {
            false
        } else {
            rng.next_f64() < rule.rate
        };
        if fires {
            if let Some(n) = rule.remaining.as_mut() {
                *n -= 1;
            }
            return Some(ApiError::with_status(
                rule.code.clone(),
                rule.message.clone(),
                rule.status,
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_next_counts_down_and_only_matches_its_action() {
        let mut f = FaultConfig::none().with(FaultRule::fail_next("DescribeVolumes", 2, "Server.X", 503));
        let mut rng = Rng::new(1);
        assert!(evaluate(&mut f, "DescribeInstances", &mut rng).is_none());
        assert_eq!(evaluate(&mut f, "DescribeVolumes", &mut rng).unwrap().status, 503);
        assert!(evaluate(&mut f, "DescribeVolumes", &mut rng).is_some());
        assert!(evaluate(&mut f, "DescribeVolumes", &mut rng).is_none());
    }

    #[test]
    fn random_rate_is_deterministic_per_seed_and_roughly_right() {
        let run = |seed| {
            let mut f = FaultConfig::none().with(FaultRule::random(0.3));
            let mut rng = Rng::new(seed);
            (0..1000)
                .map(|_| evaluate(&mut f, "A", &mut rng).is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let hits = run(7).iter().filter(|b| **b).count();
        assert!((200..400).contains(&hits), "{hits}");
    }
}
