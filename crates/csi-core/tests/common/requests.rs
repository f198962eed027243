//! Request builders and small probes shared by the node tests.

use std::collections::HashMap;
use std::path::Path;

use csi_core::proto::volume_usage::Unit;
use csi_core::proto::*;

/// The publish context the test controller returns for a volume at SCSI unit `unit`.
pub fn ctx(unit: u32) -> HashMap<String, String> {
    HashMap::from([(super::UNIT_KEY.to_string(), unit.to_string())])
}

pub fn stage_req(vol: &str, unit: u32, staging: &Path, cap: VolumeCapability) -> NodeStageVolumeRequest {
    NodeStageVolumeRequest {
        volume_id: vol.into(),
        publish_context: ctx(unit),
        staging_target_path: staging.display().to_string(),
        volume_capability: Some(cap),
        ..Default::default()
    }
}

pub fn publish_req(
    vol: &str,
    unit: u32,
    staging: &Path,
    target: &Path,
    cap: VolumeCapability,
    ro: bool,
) -> NodePublishVolumeRequest {
    NodePublishVolumeRequest {
        volume_id: vol.into(),
        publish_context: ctx(unit),
        staging_target_path: staging.display().to_string(),
        target_path: target.display().to_string(),
        volume_capability: Some(cap),
        readonly: ro,
        ..Default::default()
    }
}

pub fn unpublish_req(vol: &str, target: &Path) -> NodeUnpublishVolumeRequest {
    NodeUnpublishVolumeRequest {
        volume_id: vol.into(),
        target_path: target.display().to_string(),
    }
}

pub fn unstage_req(vol: &str, staging: &Path) -> NodeUnstageVolumeRequest {
    NodeUnstageVolumeRequest {
        volume_id: vol.into(),
        staging_target_path: staging.display().to_string(),
    }
}

pub fn stats_req(vol: &str, path: &Path) -> NodeGetVolumeStatsRequest {
    NodeGetVolumeStatsRequest {
        volume_id: vol.into(),
        volume_path: path.display().to_string(),
        ..Default::default()
    }
}

pub fn is_mounted(path: &Path) -> bool {
    let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    csi_core::node::mountinfo::mount_at(&csi_core::node::mountinfo::parse_mountinfo(&text), &canon).is_some()
}

pub fn blkid_type(dev: &Path) -> String {
    let out = std::process::Command::new("blkid")
        .args(["-p", "-o", "value", "-s", "TYPE"])
        .arg(dev)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn usage(resp: &NodeGetVolumeStatsResponse, unit: Unit) -> VolumeUsage {
    resp.usage
        .iter()
        .find(|u| u.unit == unit as i32)
        .cloned()
        .unwrap_or_else(|| panic!("no {unit:?} usage in {resp:?}"))
}
