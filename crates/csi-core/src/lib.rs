//! CSI v1 gRPC services and Linux node machinery, independent of any cloud.
//!
//! - [`proto`]: the CSI v1 types and service traits, compiled from `proto/csi.proto`.
//! - [`server::CsiServer`]: serves Identity + Controller/Node on a unix socket with request
//!   logging (secrets redacted) and Prometheus metrics ([`metrics::CsiMetrics`]).
//! - [`identity::IdentityService`] with a real Probe through [`identity::Readiness`].
//! - Controller helpers: [`capability`], [`capacity`], [`pagination`], [`locks`].
//! - [`node::NodeService`]: the whole CSI Node service on real block devices, generic over a
//!   cloud's [`node::NodePlatform`]; [`node::scsi::ScsiLocator`] finds SCSI disks.
//! - [`sanity`]: a CSI conformance suite that drives a plugin over its socket.

pub mod capability;
pub mod capacity;
pub mod identity;
pub mod instrument;
pub mod locks;
pub mod metrics;
pub mod node;
pub mod pagination;
pub mod proto;
#[cfg(feature = "sanity")]
pub mod sanity;
pub mod server;
