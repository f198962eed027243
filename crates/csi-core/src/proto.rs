//! Generated CSI v1 types (package `csi.v1`), compiled from `proto/csi.proto` at build time.
//!
//! Every request message that carries a `secrets` map has a hand-written `Debug` (below) that
//! prints only the secret *keys*, so `tracing` or `{:?}` can never leak a secret value.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("csi.v1");

use std::collections::HashMap;
use std::fmt;

/// Debug helper that shows only the keys of a secrets map.
struct SecretKeys<'a>(&'a HashMap<String, String>);

impl fmt::Debug for SecretKeys<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<&str> = self.0.keys().map(String::as_str).collect();
        keys.sort_unstable();
        f.debug_map()
            .entries(keys.into_iter().map(|k| (k, "<redacted>")))
            .finish()
    }
}

macro_rules! redacted_debug {
    ($ty:ident { $($field:ident),* $(,)? } secrets: $secrets:ident) => {
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($field), &self.$field))*
                    .field(stringify!($secrets), &SecretKeys(&self.$secrets))
                    .finish()
            }
        }
    };
}

redacted_debug!(CreateVolumeRequest { name, capacity_range, volume_capabilities, parameters,
    volume_content_source, accessibility_requirements, mutable_parameters } secrets: secrets);
redacted_debug!(DeleteVolumeRequest { volume_id } secrets: secrets);
redacted_debug!(ControllerPublishVolumeRequest { volume_id, node_id, volume_capability, readonly,
    volume_context } secrets: secrets);
redacted_debug!(ControllerUnpublishVolumeRequest { volume_id, node_id } secrets: secrets);
redacted_debug!(ValidateVolumeCapabilitiesRequest { volume_id, volume_context, volume_capabilities,
    parameters, mutable_parameters } secrets: secrets);
redacted_debug!(ListSnapshotsRequest { max_entries, starting_token, source_volume_id, snapshot_id }
    secrets: secrets);
redacted_debug!(CreateSnapshotRequest { source_volume_id, name, parameters } secrets: secrets);
redacted_debug!(DeleteSnapshotRequest { snapshot_id } secrets: secrets);
redacted_debug!(GetSnapshotRequest { snapshot_id } secrets: secrets);
redacted_debug!(ControllerExpandVolumeRequest { volume_id, capacity_range, volume_capability }
    secrets: secrets);
redacted_debug!(ControllerModifyVolumeRequest { volume_id, mutable_parameters } secrets: secrets);
redacted_debug!(NodeStageVolumeRequest { volume_id, publish_context, staging_target_path,
    volume_capability, volume_context } secrets: secrets);
redacted_debug!(NodePublishVolumeRequest { volume_id, publish_context, staging_target_path,
    target_path, volume_capability, readonly, volume_context } secrets: secrets);
redacted_debug!(NodeExpandVolumeRequest { volume_id, volume_path, capacity_range,
    staging_target_path, volume_capability } secrets: secrets);
redacted_debug!(CreateVolumeGroupSnapshotRequest { name, source_volume_ids, parameters }
    secrets: secrets);
redacted_debug!(DeleteVolumeGroupSnapshotRequest { group_snapshot_id, snapshot_ids } secrets: secrets);
redacted_debug!(GetVolumeGroupSnapshotRequest { group_snapshot_id, snapshot_ids } secrets: secrets);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_secret_values() {
        let mut req = NodeStageVolumeRequest {
            volume_id: "vol-1".into(),
            ..Default::default()
        };
        req.secrets.insert("password".into(), "hunter2-very-secret".into());
        let printed = format!("{req:?}");
        assert!(printed.contains("vol-1"), "{printed}");
        assert!(printed.contains("password"), "{printed}");
        assert!(!printed.contains("hunter2"), "{printed}");

        let mut create = CreateVolumeRequest::default();
        create.secrets.insert("token".into(), "s3cr3t".into());
        assert!(!format!("{create:?}").contains("s3cr3t"));
        assert!(!format!("{create:#?}").contains("s3cr3t"));
    }
}
