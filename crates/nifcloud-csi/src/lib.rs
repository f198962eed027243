//! The NIFCLOUD additional-storage CSI driver: the controller's cloud side and the node's identity.
//!
//! - [`controller::NifcloudController`]: the CSI Controller service (create with a helper
//!   server, crash-safe; publish, expand, list), over [`cloud::Cloud`] and the shared
//!   [`poller::VolumeWatch`].
//! - [`plan`]: the pure decisions behind every controller RPC, table-tested.
//! - [`params`], [`topology`], [`disk`]: StorageClass parameters, zones, the disk model and the
//!   naming scheme.
//! - [`node`]: the NIFCLOUD side of the node service (node id, zone, volume limit).

pub mod cloud;
pub mod controller;
pub mod disk;
pub mod driver;
pub mod metrics;
pub mod node;
pub mod params;
pub mod plan;
pub mod poller;
pub mod reaper;
pub mod topology;

/// The CSI driver name.
pub const DRIVER_NAME: &str = "additional-storage.csi.nifcloud.com";
