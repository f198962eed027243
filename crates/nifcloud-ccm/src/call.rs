//! The answers of NIFCLOUD calls that change something: an error that means "already done" (what a call adds is
//! already there, what it removes is already gone) counts as success, so every change can be repeated safely.

use nifcloud_cloud::{CloudError, Disposition};

use crate::backend::Outcome;

/// Which error answers of a call mean that its change is already in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlreadyDone {
    /// None: every error is a failure.
    Never,
    /// A not-found: what the call removes is already gone.
    IfNotFound,
    /// A duplicate: what the call adds is already there.
    IfExists,
    /// This error code.
    IfCode(&'static str),
}

/// The answer of a call: `Some` with the reply, `None` when the API answered that the change is already in
/// place, or the error with the `operation` and the `resource`.
pub fn answer<T>(
    operation: &'static str,
    resource: &str,
    result: Result<T, nifcloud_sdk::Error>,
    already: AlreadyDone,
) -> Result<Option<T>, CloudError> {
    match result {
        Ok(reply) => Ok(Some(reply)),
        Err(e) => {
            let done = match already {
                AlreadyDone::Never => false,
                AlreadyDone::IfNotFound => e.is_not_found(),
                AlreadyDone::IfExists => Disposition::of(&e) == Disposition::AlreadyExists,
                AlreadyDone::IfCode(code) => e.has_code(code),
            };
            if done {
                Ok(None)
            } else {
                Err(CloudError::new(operation, resource, e))
            }
        }
    }
}

/// The outcome of a call that changes something: [`Outcome::Applied`] for a success or an "already done"
/// answer, else the error with the `operation` and the `resource`.
pub fn applied<T>(
    operation: &'static str,
    resource: &str,
    result: Result<T, nifcloud_sdk::Error>,
    already: AlreadyDone,
) -> Result<Outcome, CloudError> {
    answer(operation, resource, result, already).map(|_| Outcome::Applied)
}
