//! Kubernetes provider IDs of NIFCLOUD servers: `nifcloud:///<zone>/<instanceUniqueId>`.
//!
//! The canonical form carries the zone and the immutable `instanceUniqueId` (`i-…`), never the mutable server
//! name. For compatibility with the original CCM, [`ProviderId::parse`] also accepts `nifcloud:////<id>` and
//! `nifcloud:///<id>` (no zone) and a bare `i-…` id.

use std::fmt;
use std::str::FromStr;

/// The provider name, also the providerID scheme.
pub const PROVIDER_NAME: &str = "nifcloud";

/// The providerID prefix, `nifcloud://`.
pub const PROVIDER_ID_PREFIX: &str = "nifcloud://";

/// A parsed provider ID.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProviderId {
    /// The zone, when the ID carries one (`east-11`).
    pub zone: Option<String>,
    /// The server's `instanceUniqueId` (`i-…`).
    pub unique_id: String,
}

/// Why a string is not a NIFCLOUD provider ID.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProviderIdError {
    /// The string is empty.
    #[error("empty provider ID")]
    Empty,
    /// The string belongs to another cloud provider (another scheme).
    #[error("provider ID {value:?} belongs to another provider (scheme {scheme:?})")]
    ForeignScheme {
        /// The whole value.
        value: String,
        /// Its scheme.
        scheme: String,
    },
    /// The string has the NIFCLOUD scheme but not a form this crate knows.
    #[error("provider ID {value:?} is malformed: {reason}")]
    Malformed {
        /// The whole value.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
}

impl ProviderId {
    /// A provider ID for the server `unique_id` in `zone`.
    pub fn new(zone: impl Into<String>, unique_id: impl Into<String>) -> Self {
        let zone = zone.into();
        Self {
            zone: (!zone.is_empty()).then_some(zone),
            unique_id: unique_id.into(),
        }
    }

    /// Parses the canonical form and the legacy forms (see the module documentation).
    pub fn parse(value: &str) -> Result<Self, ProviderIdError> {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(ProviderIdError::Empty);
        }
        let malformed = |reason| ProviderIdError::Malformed {
            value: value.to_owned(),
            reason,
        };
        let Some(rest) = trimmed.strip_prefix(PROVIDER_ID_PREFIX) else {
            if let Some((scheme, _)) = trimmed.split_once("://") {
                return Err(ProviderIdError::ForeignScheme {
                    value: value.to_owned(),
                    scheme: scheme.to_owned(),
                });
            }
            // A bare id, as the original CCM accepted: `^i-[^/]*$`.
            return if trimmed.starts_with("i-") && valid_id(trimmed) {
                Ok(Self {
                    zone: None,
                    unique_id: trimmed.to_owned(),
                })
            } else {
                Err(malformed(
                    "expected nifcloud:///<zone>/<instanceUniqueId> or a bare i-… id",
                ))
            };
        };
        // rest is "/<zone>/<id>", "//<id>" or "/<id>".
        let Some(path) = rest.strip_prefix('/') else {
            return Err(malformed("expected three slashes after the scheme"));
        };
        let parts: Vec<&str> = path.split('/').collect();
        let (zone, id) = match parts.as_slice() {
            [id] => (None, *id),
            ["", id] => (None, *id),
            [zone, id] => (Some(*zone), *id),
            _ => return Err(malformed("too many path segments")),
        };
        if !valid_id(id) {
            return Err(malformed("the instance id is empty or contains invalid characters"));
        }
        if let Some(z) = zone
            && !valid_zone(z)
        {
            return Err(malformed("the zone contains invalid characters"));
        }
        Ok(Self {
            zone: zone.map(str::to_owned),
            unique_id: id.to_owned(),
        })
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn valid_zone(zone: &str) -> bool {
    !zone.is_empty() && zone.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl fmt::Display for ProviderId {
    /// Always the canonical form; without a zone, `nifcloud:////<id>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PROVIDER_ID_PREFIX}/{}/{}",
            self.zone.as_deref().unwrap_or(""),
            self.unique_id
        )
    }
}

impl FromStr for ProviderId {
    type Err = ProviderIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_known_form() {
        let cases: [(&str, Option<&str>, &str); 6] = [
            ("nifcloud:///east-11/i-abc123", Some("east-11"), "i-abc123"),
            ("nifcloud:///jp-east-41/i-0a1b", Some("jp-east-41"), "i-0a1b"),
            ("nifcloud:////i-legacy", None, "i-legacy"),
            ("nifcloud:///i-nozone", None, "i-nozone"),
            ("i-bare9", None, "i-bare9"),
            ("  nifcloud:///east-12/i-x  ", Some("east-12"), "i-x"),
        ];
        for (input, zone, id) in cases {
            let parsed = ProviderId::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(parsed.zone.as_deref(), zone, "{input}");
            assert_eq!(parsed.unique_id, id, "{input}");
        }
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        let cases = [
            ("", "empty"),
            ("aws:///us-east-1a/i-123", "another provider"),
            ("hcloud://123", "another provider"),
            ("nifcloud://i-x", "three slashes"),
            ("nifcloud:///east-11/", "instance id"),
            ("nifcloud:///a/b/c", "too many"),
            ("nifcloud:///east 11/i-x", "zone"),
            ("node1", "expected"),
            ("i-has/slash", "expected"),
        ];
        for (input, needle) in cases {
            let err = ProviderId::parse(input).expect_err(input).to_string();
            assert!(err.contains(needle), "{input}: {err}");
        }
    }

    #[test]
    fn formats_canonically_and_round_trips() {
        let id = ProviderId::new("east-11", "i-abc");
        assert_eq!(id.to_string(), "nifcloud:///east-11/i-abc");
        assert_eq!(ProviderId::parse(&id.to_string()).unwrap(), id);
        let no_zone = ProviderId::new("", "i-abc");
        assert_eq!(no_zone.to_string(), "nifcloud:////i-abc");
        assert_eq!(ProviderId::parse(&no_zone.to_string()).unwrap(), no_zone);
        assert_eq!("i-q".parse::<ProviderId>().unwrap().unique_id, "i-q");
    }
}
