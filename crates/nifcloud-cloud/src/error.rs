//! Errors of NIFCLOUD calls made through this crate, and how callers should treat an SDK error.

use std::sync::Arc;

use nifcloud_sdk::ErrorKind;

/// A failed NIFCLOUD call, with the operation and the resource it was about. Cheap to clone (shared by every
/// caller of a coalesced describe).
#[derive(Clone, Debug, thiserror::Error)]
#[error("{operation} {resource}")]
pub struct CloudError {
    /// The API operation, for example `DescribeInstances`.
    pub operation: &'static str,
    /// The resource, for example `load balancer k8sab12cd34ef56` or `all instances`.
    pub resource: String,
    /// The SDK error.
    #[source]
    pub source: Arc<nifcloud_sdk::Error>,
}

impl CloudError {
    /// Wraps an SDK error with context.
    pub fn new(operation: &'static str, resource: impl Into<String>, source: nifcloud_sdk::Error) -> Self {
        Self {
            operation,
            resource: resource.into(),
            source: Arc::new(source),
        }
    }

    /// A closure for `map_err`.
    pub fn wrap(operation: &'static str, resource: impl Into<String>) -> impl FnOnce(nifcloud_sdk::Error) -> Self {
        let resource = resource.into();
        move |e| Self::new(operation, resource, e)
    }

    /// How a caller should treat this error.
    pub fn disposition(&self) -> Disposition {
        Disposition::of(&self.source)
    }

    /// Whether the resource definitely does not exist.
    pub fn is_not_found(&self) -> bool {
        self.source.is_not_found()
    }

    /// The API error code, if the server sent one.
    pub fn code(&self) -> Option<&str> {
        self.source.code()
    }
}

/// What a controller should do about an SDK error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// The resource is gone: a definite answer, not a failure.
    NotFound,
    /// The resource already exists: usually success for an idempotent create.
    AlreadyExists,
    /// Transient (busy, throttled, unavailable, network): retry soon.
    Retry,
    /// The request can never succeed as sent (invalid parameter, permission, state conflict): report it; retrying
    /// the same request is pointless until something changes.
    Permanent,
}

impl Disposition {
    /// Classifies an SDK error.
    pub fn of(error: &nifcloud_sdk::Error) -> Self {
        match error.kind() {
            ErrorKind::NotFound => Self::NotFound,
            ErrorKind::Duplicate => Self::AlreadyExists,
            ErrorKind::Busy | ErrorKind::Unavailable | ErrorKind::Transport | ErrorKind::Protocol => Self::Retry,
            ErrorKind::Other => match error.api().map(|a| a.status) {
                Some(s) if s >= 500 => Self::Retry,
                _ => Self::Permanent,
            },
            _ => Self::Permanent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nifcloud_sdk::error::ApiError;

    fn api(code: &str, status: u16) -> nifcloud_sdk::Error {
        nifcloud_sdk::Error::Api(ApiError {
            action: "X".into(),
            code: code.into(),
            message: "m".into(),
            request_id: None,
            status,
        })
    }

    #[test]
    fn dispositions() {
        let cases = [
            ("Client.InvalidParameterNotFound.Instance", 400, Disposition::NotFound),
            (
                "Client.InvalidParameterDuplicate.LoadBalancer",
                400,
                Disposition::AlreadyExists,
            ),
            (
                "Server.ResourceIncorrectState.SecurityGroup.Processing",
                400,
                Disposition::Retry,
            ),
            ("Server.InternalError", 503, Disposition::Retry),
            ("Server.InternalError", 500, Disposition::Retry),
            ("Client.InvalidParameter.Foo", 400, Disposition::Permanent),
            ("Client.AuthFailure", 401, Disposition::Permanent),
            (
                "Client.Inoperable.LoadBalancer.HavingRegisteredInstance",
                400,
                Disposition::Permanent,
            ),
        ];
        for (code, status, want) in cases {
            assert_eq!(Disposition::of(&api(code, status)), want, "{code}");
        }
        let e = CloudError::new(
            "DescribeInstances",
            "instance web1",
            api("Client.InvalidParameterNotFound.Instance", 400),
        );
        assert!(e.is_not_found());
        assert_eq!(e.code(), Some("Client.InvalidParameterNotFound.Instance"));
        assert_eq!(e.to_string(), "DescribeInstances instance web1");
    }
}
