//! Errors of the SDK and their classification.
//!
//! Every API error keeps the code, message, request id and HTTP status the server sent, so callers can act on codes
//! the SDK does not model. [`ErrorKind`] sorts codes into the classes callers act on.

use std::time::Duration;

use crate::operation::MissingParameter;
use crate::xml::{self, XmlError};

/// An error document returned by the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// The operation that failed, for example `CreateVolume`.
    pub action: String,
    /// The hierarchical error code, for example `Client.InvalidParameterNotFound.Volume`.
    pub code: String,
    /// The server's message.
    pub message: String,
    /// The request id, when the server sent one.
    pub request_id: Option<String>,
    /// The HTTP status of the reply.
    pub status: u16,
}

impl ApiError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::classify(&self.code, self.status)
    }
}

/// What a caller can do about an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The resource does not exist (`Client.InvalidParameterNotFound.*`).
    NotFound,
    /// The resource already exists (`Client.InvalidParameterDuplicate.*`).
    Duplicate,
    /// The resource is in a state that forbids the operation, such as in use or already attached
    /// (`*.Inoperable.*`).
    Inoperable,
    /// The resource is busy with another change; the same request may succeed later
    /// (`Server.ResourceIncorrectState.*.Processing` and similar).
    Busy,
    /// The service is throttling or unavailable (HTTP 429, 502, 503, 504, 509); retry later.
    Unavailable,
    /// Authentication or signature failure.
    Auth,
    /// The request itself is invalid.
    InvalidRequest,
    /// The request could not be sent or its reply not read.
    Transport,
    /// The server answered something the SDK cannot read.
    Protocol,
    /// A code this SDK does not classify, such as `Server.InternalError`: the call may have acted, so it is
    /// not retried.
    Other,
}

impl ErrorKind {
    /// Classifies an API error code and HTTP status.
    pub fn classify(code: &str, status: u16) -> ErrorKind {
        let has = |part: &str| code.split('.').any(|p| p == part);
        if code.starts_with("Client.InvalidParameterNotFound") || code.ends_with(".NotFound") {
            ErrorKind::NotFound
        } else if code.starts_with("Client.InvalidParameterDuplicate") {
            ErrorKind::Duplicate
        } else if (code.starts_with("Server.ResourceIncorrectState") && code.ends_with(".Processing"))
            || code.starts_with("Server.ProcessingFailure")
            || code == "Server.Busy"
        {
            ErrorKind::Busy
        } else if matches!(status, 429 | 502 | 503 | 504 | 509) || code.starts_with("Server.Unavailable") {
            ErrorKind::Unavailable
        } else if has("Inoperable") || code.starts_with("Client.ResourceIncorrectState") {
            ErrorKind::Inoperable
        } else if has("AuthFailure") || has("SignatureDoesNotMatch") || code.contains("Signature") || status == 401 {
            ErrorKind::Auth
        } else if code.starts_with("Client.") {
            ErrorKind::InvalidRequest
        } else {
            ErrorKind::Other
        }
    }

    /// Whether waiting and sending the same request again may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Busy | ErrorKind::Unavailable | ErrorKind::Transport)
    }
}

/// An error of an SDK call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The API answered with an error document.
    #[error("{}: NIFCLOUD error {} (HTTP {}, request id {}): {}", .0.action, .0.code, .0.status, .0.request_id.as_deref().unwrap_or("-"), .0.message)]
    Api(ApiError),
    /// The request could not be sent, or the reply not received.
    #[error("{action}: request to {endpoint} failed")]
    Transport {
        /// The operation.
        action: String,
        /// The endpoint URL.
        endpoint: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// The reply was not an XML document the SDK can read.
    #[error("{action}: cannot read the reply (HTTP {status})")]
    Parse {
        /// The operation.
        action: String,
        /// The HTTP status of the reply.
        status: u16,
        /// What failed.
        #[source]
        source: XmlError,
    },
    /// A required input parameter was not set; nothing was sent.
    #[error(transparent)]
    MissingParameter(#[from] MissingParameter),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A waiter gave up.
    #[error("{what}: still {last_state:?} after {waited:?}")]
    WaitTimeout {
        /// What was awaited, for example `volume vol01 available`.
        what: String,
        /// The last observed state.
        last_state: String,
        /// How long it waited.
        waited: Duration,
    },
    /// A waiter saw a state from which the awaited one cannot be reached.
    #[error("{what}: reached the failure state {state:?}")]
    WaitFailed {
        /// What was awaited.
        what: String,
        /// The state observed.
        state: String,
    },
}

impl Error {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Api(e) => e.kind(),
            Error::Transport { .. } => ErrorKind::Transport,
            Error::Parse { .. } => ErrorKind::Protocol,
            Error::MissingParameter(_) | Error::Config(_) => ErrorKind::InvalidRequest,
            Error::WaitTimeout { .. } | Error::WaitFailed { .. } => ErrorKind::Other,
        }
    }

    /// The API error, if the server sent one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }

    /// The API error code, if the server sent one.
    pub fn code(&self) -> Option<&str> {
        self.api().map(|e| e.code.as_str())
    }

    /// The request id of the failed call, if known.
    pub fn request_id(&self) -> Option<&str> {
        self.api().and_then(|e| e.request_id.as_deref())
    }

    /// Whether the resource was not found.
    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }

    /// Whether the error code is exactly `code`.
    pub fn has_code(&self, code: &str) -> bool {
        self.code() == Some(code)
    }
}

/// Reads an error document: `<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>`.
///
/// A document cut short is read as far as it goes ([`xml::parse_partial`]): its code counts when `</Code>`
/// arrived; the message and request id are kept when they did too. Returns `None` when `body` holds no readable
/// error code (see [`unreadable_error_reply`]).
pub fn parse_error_document(action: &str, status: u16, body: &str) -> Option<ApiError> {
    let root = xml::parse(body).ok().or_else(|| xml::parse_partial(body))?;
    let error = root.find_path(&["Errors", "Error"]).or_else(|| root.child("Error"))?;
    let text = |name: &str| {
        error
            .child(name)
            .map(|n| n.text().trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    Some(ApiError {
        action: action.to_owned(),
        code: text("Code")?,
        message: text("Message").unwrap_or_default(),
        request_id: xml::request_id(&root),
        status,
    })
}

/// How many characters of an unreadable reply an error quotes.
pub const QUOTED_BODY_CHARS: usize = 200;

/// The error for a failed call whose body holds no readable error code ([`parse_error_document`] gave `None`):
/// code `HTTP.<status>` (so the status still classifies it), and a message that names the status and quotes the
/// start of the body.
pub fn unreadable_error_reply(action: &str, status: u16, body: &str) -> ApiError {
    let start: String = body.trim_start().chars().take(QUOTED_BODY_CHARS).collect();
    let message = if start.is_empty() {
        format!("HTTP {status} with an empty body (no error document)")
    } else {
        let more = if body.trim_start().chars().nth(QUOTED_BODY_CHARS).is_some() {
            "…"
        } else {
            ""
        };
        format!("HTTP {status} without a readable error document; the body starts: {start:?}{more}")
    };
    ApiError {
        action: action.to_owned(),
        code: format!("HTTP.{status}"),
        message,
        request_id: None,
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified() {
        let cases = [
            ("Client.InvalidParameterNotFound.Volume", 400, ErrorKind::NotFound),
            (
                "Client.InvalidParameterNotFound.LoadBalancerPort",
                400,
                ErrorKind::NotFound,
            ),
            (
                "Client.InvalidParameterDuplicate.LoadBalancer",
                400,
                ErrorKind::Duplicate,
            ),
            ("Server.Inoperable.Volume.AlreadyAttached", 400, ErrorKind::Inoperable),
            (
                "Client.Inoperable.Volume.DetachedFromInstance",
                400,
                ErrorKind::Inoperable,
            ),
            ("Client.Inoperable.SecurityGroup.InUse", 400, ErrorKind::Inoperable),
            (
                "Server.ResourceIncorrectState.SecurityGroup.Processing",
                400,
                ErrorKind::Busy,
            ),
            ("Server.ResourceIncorrectState.Network.Processing", 500, ErrorKind::Busy),
            ("Server.ProcessingFailure.Instance.Stop", 500, ErrorKind::Busy),
            ("Server.InternalError", 503, ErrorKind::Unavailable),
            ("Client.RequestLimitExceeded", 429, ErrorKind::Unavailable),
            ("Client.SignatureDoesNotMatch", 403, ErrorKind::Auth),
            ("Client.AuthFailure", 403, ErrorKind::Auth),
            ("Client.InvalidParameter.Size", 400, ErrorKind::InvalidRequest),
            ("Server.InternalError", 500, ErrorKind::Other),
        ];
        for (code, status, kind) in cases {
            assert_eq!(ErrorKind::classify(code, status), kind, "{code} {status}");
        }
        assert!(ErrorKind::Busy.is_retryable() && ErrorKind::Unavailable.is_retryable());
        assert!(!ErrorKind::NotFound.is_retryable() && !ErrorKind::Inoperable.is_retryable());
    }

    #[test]
    fn error_documents_keep_code_message_and_request_id() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>Client.InvalidParameterNotFound.Volume</Code><Message>The VolumeId 'x' does not exist.</Message></Error></Errors><RequestID>req-1</RequestID></Response>"#;
        let e = parse_error_document("DescribeVolumes", 400, body).unwrap();
        assert_eq!(e.code, "Client.InvalidParameterNotFound.Volume");
        assert_eq!(e.message, "The VolumeId 'x' does not exist.");
        assert_eq!(e.request_id.as_deref(), Some("req-1"));
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let shown = Error::Api(e).to_string();
        assert!(
            shown.contains("DescribeVolumes") && shown.contains("req-1") && shown.contains("HTTP 400"),
            "{shown}"
        );
        assert!(parse_error_document("X", 500, "<html>oops</html>").is_none());
        assert!(parse_error_document("X", 500, "not xml at all <<<").is_none());
    }

    #[test]
    fn a_truncated_error_document_still_yields_its_code() {
        let full = "<Response><Errors><Error><Code>Server.ResourceIncorrectState.SecurityGroup.Processing</Code>\
                    <Message>The security group is being processed.</Message></Error></Errors>\
                    <RequestID>req-9</RequestID></Response>";
        for cut_after in [
            "</Code>",
            "<Message>The security",
            "</Message>",
            "</Errors><Requ",
            "req-9</Request",
        ] {
            let body = &full[..full.find(cut_after).unwrap() + cut_after.len()];
            let e = parse_error_document("AuthorizeSecurityGroupIngress", 400, body)
                .unwrap_or_else(|| panic!("no code from {body:?}"));
            assert_eq!(
                e.code, "Server.ResourceIncorrectState.SecurityGroup.Processing",
                "{body}"
            );
            assert_eq!(e.kind(), ErrorKind::Busy);
            assert_eq!(e.request_id, None, "a cut request id is not kept: {body}");
        }
        let body = &full[..full.find("</RequestID>").unwrap() + "</RequestID>".len()];
        let e = parse_error_document("X", 400, body).unwrap();
        assert_eq!(
            (e.message.as_str(), e.request_id.as_deref()),
            ("The security group is being processed.", Some("req-9"))
        );
        // Cut before the code ends: nothing to classify.
        let body = &full[..full.find(".Processing").unwrap()];
        assert_eq!(parse_error_document("X", 400, body), None);
    }

    #[test]
    fn an_unreadable_error_reply_names_the_status_and_quotes_the_body() {
        let e = unreadable_error_reply("DescribeVolumes", 502, "<html><body>Bad Gateway</body></html>");
        assert_eq!(
            (e.code.as_str(), e.status, e.kind()),
            ("HTTP.502", 502, ErrorKind::Unavailable)
        );
        assert_eq!(
            e.message,
            "HTTP 502 without a readable error document; the body starts: \"<html><body>Bad Gateway</body></html>\""
        );
        let cut = "<Response><Errors><Error><Code>Client.Inval";
        let e = unreadable_error_reply("DeleteVolume", 400, cut);
        assert!(
            e.message.starts_with("HTTP 400 without") && e.message.contains(cut),
            "{}",
            e.message
        );
        let long = "x".repeat(500);
        let e = unreadable_error_reply("X", 500, &long);
        assert!(
            e.message.ends_with(&format!("{:?}…", "x".repeat(QUOTED_BODY_CHARS))),
            "{}",
            e.message
        );
        assert_eq!(
            unreadable_error_reply("X", 503, " \n").message,
            "HTTP 503 with an empty body (no error document)"
        );
        let shown = Error::Api(unreadable_error_reply("CreateVolume", 504, "gateway timeout")).to_string();
        assert_eq!(
            shown,
            "CreateVolume: NIFCLOUD error HTTP.504 (HTTP 504, request id -): HTTP 504 without a readable error \
             document; the body starts: \"gateway timeout\""
        );
    }
}
