//! The NIFCLOUD additional-storage CSI driver (`additional-storage.csi.nifcloud.com`): the
//! controller's cloud side and the node's identity.
//!
//! - [`controller::NifcloudController`]: the CSI Controller service over [`cloud::Cloud`] and the
//!   shared [`poller::VolumeWatch`]; [`reaper::Reaper`] removes abandoned half-created disks.
//! - [`plan`]: the pure decisions behind every controller RPC, table-tested.
//! - [`params`], [`topology`], [`disk`]: StorageClass parameters, zones, the disk model and the
//!   naming scheme; [`device`]: the `SCSI (C:U)` device names and the publish-context key that carries them.
//! - [`node::NifcloudNode`]: csi-core's `NodePlatform` for NIFCLOUD servers (node id, zone,
//!   volume limit, `SCSI (0:N)` devices).
//! - [`driver`]: assembling and serving the services; [`metrics`]: Prometheus metrics.
//!
//! # Choices
//! - **Sizes**: a NIFCLOUD "GB" is a GiB (2^30 bytes; NIFCLOUD runs on VMware), as the original
//!   driver and its 2024 successor count it. Requests round up to 100 GB steps within 100-4000 GB
//!   (10Gi -> 100 GB shown as `100Gi`, 100Gi -> 100 GB, 150Gi -> 200 GB); `limit_bytes` is checked
//!   after rounding; capacities are reported as Size x 2^30 bytes, so a disk of the original driver
//!   expands to exactly the next step.
//! - **Access modes**: every single-node mode, from one policy ([`controller::capability_policy`])
//!   that validates every request and from which the controller and the node advertise
//!   `SINGLE_NODE_MULTI_WRITER`: ReadWriteOnce arrives as `SINGLE_NODE_MULTI_WRITER` (several pods
//!   of one node), ReadWriteOncePod as `SINGLE_NODE_SINGLE_WRITER` (the node refuses a second
//!   target path). Filesystems: ext4 and xfs, whose tools ship in the node image.
//! - **Zones**: with preferred topologies (WaitForFirstConsumer) a disk is created only in the first
//!   preferred zone, the selected node's; without a helper server there the answer is
//!   ResourceExhausted, and the provisioner retries.
//! - **Billing** (`accountingType`) is the one mutable parameter (VolumeAttributesClass): CreateVolume's
//!   `mutable_parameters` win over the StorageClass's; ControllerModifyVolume calls
//!   ModifyVolumeAttribute once (NIFCLOUD applies it from next month; a pending change is not repeated)
//!   and waits until DescribeVolumes shows it; the disk type cannot change.
//! - **Disk type** default: `standard-flash-a` (code 6), as the original driver. The short names
//!   `high-speed`, `standard-flash`, `high-speed-flash` mean the A variant (never random).
//!   `accountingType` defaults to pay-per-use (2).
//! - **Creation** needs a server: one of this cluster's servers (`--cluster-instances` patterns;
//!   never any other) in the zone with a free slot, spread by rendezvous hashing and in-flight
//!   reservations. The disk is created under a deterministic *creating* id, detached, then renamed
//!   to its final id, so a retry always knows whether an attachment it finds is the helper one.
//!   Server names match node names as in the CCM (exactly, else without regard to case).
//! - **Waiting**: one DescribeVolumes serves every waiter and reader due at the time; a waiter looks
//!   right after its change returns, then on per-request polling's schedule, and calls are capped
//!   per poll interval; every wait is bounded and ends when its RPC is cancelled.
//! - **Volume limit** on a node: the 14 additional-disk SCSI slots minus those held by disks this
//!   driver does not manage (from the API, or from local devices with `--node-local-limits`).

pub mod cloud;
pub mod controller;
pub mod device;
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
