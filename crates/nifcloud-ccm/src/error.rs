//! [`Error`]: everything that can go wrong in this provider, one variant per failing step.
//!
//! NIFCLOUD calls fail with a [`CloudError`] (shared with the CSI driver through `nifcloud-cloud`: the operation,
//! the resource and the SDK error); each variant here says which step of the provider it broke and wraps it. The
//! provider adapter ([`crate::provider`]) turns an `Error` into what the framework acts on (retry soon, Warning
//! Event, backoff).

use nifcloud_cloud::{CloudError, LookupError};

use crate::annotations::LbKind;

/// A load balancer named in an error: its kind and its name on NIFCLOUD (shown as `L4 load balancer k1a2b…`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LbRef {
    /// L4 or elastic: the same name can exist once per kind.
    pub kind: LbKind,
    /// The name on NIFCLOUD.
    pub name: String,
}

impl std::fmt::Display for LbRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

/// What went wrong, named after the step that failed. Messages are lowercase and do not repeat their source:
/// print the chain (`{:#}` with anyhow, or [`cloudprovider::error_chain`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The flags (the framework's and this provider's), environment and cloud config do not make a usable
    /// configuration.
    #[error("invalid configuration: {}", problems.join("; "))]
    Configuration {
        /// Every problem found, one sentence each (all are reported at once, on one line).
        problems: Vec<String>,
    },
    /// The SDK refused the resolved settings.
    #[error("cannot configure the NIFCLOUD SDK")]
    ConfigureSdk {
        /// What the SDK found wrong (region, endpoint, credentials).
        #[source]
        source: nifcloud_sdk::config::ConfigError,
    },
    /// The SDK client could not be built.
    #[error("cannot build the NIFCLOUD SDK client")]
    BuildClient {
        /// Why the SDK could not build its HTTP client.
        #[source]
        source: nifcloud_sdk::Error,
    },
    /// The Service's annotations or spec ask for something the load balancer cannot do; nothing was called.
    #[error("{}", problems.join("; "))]
    InvalidService {
        /// Every problem found, one sentence each.
        problems: Vec<String>,
    },
    /// The Service has no UID yet (it was never stored by the API server), so no load balancer name derives from
    /// it.
    #[error("service {service} has no UID yet")]
    ServiceWithoutUid {
        /// `namespace/name`.
        service: String,
    },
    /// Listing the servers (to find the load balancer's members) failed.
    #[error("cannot list the NIFCLOUD servers")]
    ListServers {
        /// The failed `DescribeInstances`.
        #[source]
        source: CloudError,
    },
    /// Finding the server behind a Node failed (the listing failed, or the Node's providerID or name is unusable).
    #[error("cannot find the NIFCLOUD server of node {node}")]
    FindServer {
        /// The Node's name.
        node: String,
        /// The failed listing, or why the Node's providerID or name matches no single server.
        #[source]
        source: LookupError,
    },
    /// No server matches the Node.
    #[error("no NIFCLOUD server matches node {node} (by providerID, name or address)")]
    NoServer {
        /// The Node's name.
        node: String,
    },
    /// Reading a load balancer failed.
    #[error("cannot read {lb}")]
    ReadLoadBalancer {
        /// The load balancer.
        lb: LbRef,
        /// The failed describe call.
        #[source]
        source: CloudError,
    },
    /// A load balancer with the Service's name exists and nothing proves this cluster created it: it is left
    /// untouched.
    #[error(
        "{lb} exists but was not created by this cluster; it is left untouched (choose another name with \
         the name annotation)"
    )]
    NotOwned {
        /// The load balancer.
        lb: LbRef,
    },
    /// A change to a load balancer (create, update, listener, health check, members, filter) failed.
    #[error("cannot change {lb}")]
    ChangeLoadBalancer {
        /// The load balancer.
        lb: LbRef,
        /// The failed call (its operation says which change).
        #[source]
        source: CloudError,
    },
    /// Waiting for a load balancer to accept changes (an elastic one's `State=available`) failed or timed out.
    #[error("{lb} did not become ready for changes")]
    WaitForLoadBalancer {
        /// The load balancer.
        lb: LbRef,
        /// The failed or timed-out wait.
        #[source]
        source: CloudError,
    },
    /// A load balancer was just created but a read does not show it yet (retry soon).
    #[error("{lb} was created but is not visible yet")]
    NotVisibleYet {
        /// The load balancer.
        lb: LbRef,
    },
    /// The load balancer exists but has no VIP yet (retry soon).
    #[error("{lb} has no VIP yet")]
    NoVipYet {
        /// The load balancer.
        lb: LbRef,
    },
    /// Deleting a load balancer (one listener at a time) failed; the next attempt continues where it stopped.
    #[error("cannot delete {lb}")]
    DeleteLoadBalancer {
        /// The load balancer.
        lb: LbRef,
        /// The failed call.
        #[source]
        source: CloudError,
    },
    /// Reading the security groups (to find this load balancer's rules) failed.
    #[error("cannot read the security-group rules of load balancer {name}")]
    ReadSecurityGroups {
        /// The load balancer whose rules were looked for.
        name: String,
        /// The failed `DescribeSecurityGroups`.
        #[source]
        source: CloudError,
    },
    /// Adding or revoking the rules of a load balancer in a security group failed.
    #[error("cannot update the rules of load balancer {name} in security group {group}")]
    ChangeSecurityGroup {
        /// The load balancer.
        name: String,
        /// The security group.
        group: String,
        /// The failed authorize or revoke call.
        #[source]
        source: CloudError,
    },
}

impl Error {
    /// The NIFCLOUD call behind this error, when one failed (its operation, resource and SDK error).
    pub fn failed_call(&self) -> Option<&CloudError> {
        match self {
            Self::ListServers { source }
            | Self::ReadLoadBalancer { source, .. }
            | Self::ChangeLoadBalancer { source, .. }
            | Self::WaitForLoadBalancer { source, .. }
            | Self::DeleteLoadBalancer { source, .. }
            | Self::ReadSecurityGroups { source, .. }
            | Self::ChangeSecurityGroup { source, .. }
            | Self::FindServer {
                source: LookupError::Cloud(source),
                ..
            } => Some(source),
            _ => None,
        }
    }

    /// The NIFCLOUD error code behind this error (`Server.InternalError`, …), when the API sent one.
    pub fn api_code(&self) -> Option<&str> {
        self.failed_call().and_then(CloudError::code)
    }
}
