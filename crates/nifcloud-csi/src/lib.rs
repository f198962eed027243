//! The NIFCLOUD additional-storage CSI driver (`additional-storage.csi.nifcloud.com`): the
//! controller's cloud side and the node's identity.
//!
//! - [`controller::NifcloudController`]: the CSI Controller service over [`cloud::Cloud`] and the
//!   shared [`poller::VolumeWatch`]; [`reaper::Reaper`] removes abandoned half-created disks.
//! - [`plan`]: the pure decisions behind every controller RPC, table-tested.
//! - [`params`], [`topology`], [`disk`]: StorageClass parameters, zones, the disk model and the
//!   naming scheme.
//! - [`node::NifcloudNode`]: csi-core's `NodePlatform` for NIFCLOUD servers (node id, zone,
//!   volume limit, `SCSI (0:N)` devices).
//! - [`driver`]: assembling and serving the services; [`metrics`]: Prometheus metrics.
//!
//! # Choices
//! - **Sizes** are decimal GB as the API counts them: requests round up to 100 GB steps within
//!   100-4000 GB (10Gi -> 100 GB, 100Gi -> 200 GB); `limit_bytes` is checked after rounding;
//!   capacities are reported as GB x 10^9 bytes.
//! - **Disk type** default: `standard-flash-a` (code 6), as the original driver. The short names
//!   `high-speed`, `standard-flash`, `high-speed-flash` mean the A variant (never random).
//!   `accountingType` defaults to pay-per-use (2).
//! - **Creation** needs a server: one of this cluster's servers (`--cluster-instances` patterns;
//!   never any other) in the zone with a free slot, spread by rendezvous hashing and in-flight
//!   reservations. The disk is created under a deterministic *creating* id, detached, then renamed
//!   to its final id, so a retry always knows whether an attachment it finds is the helper one.
//! - **Waiting**: one DescribeVolumes per poll tick for every waiter and reader; every wait is
//!   bounded and ends when its RPC is cancelled.
//! - **Volume limit** on a node: the 14 additional-disk SCSI slots minus those held by disks this
//!   driver does not manage (from the API, or from local devices with `--node-local-limits`).

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
