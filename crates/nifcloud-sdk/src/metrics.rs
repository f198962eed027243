//! A hook through which callers count API calls by action and outcome (for Prometheus or anything else).

use std::time::Duration;

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// The call succeeded.
    Success,
    /// The API answered with this error code.
    ApiError(&'a str),
    /// The call failed before an error document was read (transport, unreadable reply).
    Failure,
}

impl Outcome<'_> {
    /// A short label: `success`, the error code, or `failure`.
    pub fn label(&self) -> &str {
        match self {
            Outcome::Success => "success",
            Outcome::ApiError(code) => code,
            Outcome::Failure => "failure",
        }
    }
}

/// Receives one record per finished call (after its retries).
pub trait MetricsHook: Send + Sync + 'static {
    /// Records a finished call: the action, how it ended, the number of attempts and the total latency.
    fn record(&self, action: &str, outcome: Outcome<'_>, attempts: u32, latency: Duration);
}
