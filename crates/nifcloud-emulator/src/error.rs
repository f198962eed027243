//! API errors as the emulator sends them, and the crate's own error type.
//!
//! HTTP status policy (documented choice; the real service's statuses are not published):
//! - `Client.*` -> 400, except authentication: `Client.AuthFailure` -> 401,
//!   `Client.SignatureDoesNotMatch` and `Client.RequestExpired` -> 403.
//! - `Server.*` -> 500 (botocore does not retry 500, so state errors stay deterministic).
//! - Injected faults carry whatever status the fault names (typically 503 or 429, which the
//!   official SDK retries).

use std::fmt;

/// One API error reply: code, message and HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// Hierarchical code, e.g. `Client.InvalidParameterNotFound.Volume`.
    pub code: String,
    /// Human-readable message, sent as `Message` in the error document.
    pub message: String,
    /// HTTP status to send.
    pub status: u16,
}

impl ApiError {
    /// An error whose status follows the code prefix (`Client.*` 400, anything else 500).
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        let code = code.into();
        let status = if code.starts_with("Client.") { 400 } else { 500 };
        Self {
            code,
            message: message.into(),
            status,
        }
    }

    /// An error with an explicit HTTP status.
    pub fn with_status(code: impl Into<String>, message: impl Into<String>, status: u16) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            status,
        }
    }

    /// `Client.InvalidParameter.<key>` for a missing required parameter.
    pub fn missing(key: &str) -> Self {
        Self::new(
            format!("Client.InvalidParameter.{}", leaf(key)),
            format!("The parameter {key} is required."),
        )
    }

    /// `Client.InvalidParameter.<key>` for a malformed value.
    pub fn invalid(key: &str, value: &str) -> Self {
        let shown: String = value.chars().take(64).collect();
        Self::new(
            format!("Client.InvalidParameter.{}", leaf(key)),
            format!("The value {shown:?} of parameter {key} is invalid."),
        )
    }

    /// `Client.InvalidParameterNotFound.<what>`.
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            format!("Client.InvalidParameterNotFound.{what}"),
            format!("The {what} {id:?} does not exist."),
        )
    }

    /// `Client.InvalidParameterDuplicate.<what>`.
    pub fn duplicate(what: &str, id: &str) -> Self {
        Self::new(
            format!("Client.InvalidParameterDuplicate.{what}"),
            format!("The {what} {id:?} already exists."),
        )
    }

    /// `Server.ResourceIncorrectState.<what>.Processing`: the resource is busy; retry later.
    pub fn processing(what: &str, id: &str) -> Self {
        Self::new(
            format!("Server.ResourceIncorrectState.{what}.Processing"),
            format!("The {what} {id:?} is being processed; retry later."),
        )
    }

    /// Any `Client.Inoperable.*` / `Server.Inoperable.*` error.
    pub fn inoperable(code: &str, message: impl Into<String>) -> Self {
        Self::new(code, message)
    }
}

/// Strips list indices and structure prefixes so `Listeners.member.1.InstancePort` -> `InstancePort`.
fn leaf(key: &str) -> &str {
    key.rsplit('.')
        .find(|p| !p.is_empty() && !p.chars().all(|c| c.is_ascii_digit()) && *p != "member")
        .unwrap_or(key)
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (HTTP {}): {}", self.code, self.status, self.message)
    }
}

impl std::error::Error for ApiError {}

/// Errors of the emulator's Rust API (start-up, configuration, admin operations).
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The configuration file could not be read.
    #[error("reading config {path}: {source}")]
    ReadConfig {
        /// File path.
        path: String,
        /// Underlying IO error.
        source: std::io::Error,
    },
    /// The configuration file is not valid YAML or JSON, or does not fit [`crate::config::EmulatorConfig`]
    /// (an unknown field, a wrong type).
    #[error("parsing config {path}: {message}")]
    ParseConfig {
        /// File path.
        path: String,
        /// What the YAML or JSON parser reported, with line and column.
        message: String,
    },
    /// The configuration is inconsistent (see [`crate::config::EmulatorConfig::validate`]).
    #[error("invalid config: {0}")]
    Config(String),
    /// The state file could not be read or written.
    #[error("state file {path}: {message}")]
    StateFile {
        /// File path.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// Binding the listen address failed.
    #[error("binding {addr}: {source}")]
    Bind {
        /// Address asked for.
        addr: String,
        /// Underlying IO error.
        source: std::io::Error,
    },
    /// An admin operation named an unknown instance.
    #[error("no instance named {0:?}")]
    UnknownInstance(String),
    /// An admin operation was rejected by the emulated API rules.
    #[error("admin operation failed: {0}")]
    Api(#[from] ApiError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_prefix_and_leaf_strips_indices() {
        assert_eq!(ApiError::new("Client.X", "m").status, 400);
        assert_eq!(ApiError::new("Server.X", "m").status, 500);
        assert_eq!(
            ApiError::missing("Listeners.member.1.InstancePort").code,
            "Client.InvalidParameter.InstancePort"
        );
        assert_eq!(
            ApiError::missing("InstanceId.1").code,
            "Client.InvalidParameter.InstanceId"
        );
    }
}
