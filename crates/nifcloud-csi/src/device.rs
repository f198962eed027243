//! NIFCLOUD's name for where a disk is attached, `SCSI (C:U)`, and what the node makes of it.
//!
//! NIFCLOUD names an attachment `SCSI (C:U)`: unit U of the server's SCSI controller C. DescribeVolumes shows it
//! (`attachmentSet.device`), DescribeInstanceAttribute too (`blockDeviceMapping.deviceName`), and
//! ControllerPublishVolume hands it to the node in the publish context under [`DEVICE_PATH_KEY`]. Additional
//! disks go on controller 0, the controller of the boot disk `SCSI (0:0)`. The node turns the name into the
//! unit ([`published_unit`]) and asks csi-core's `ScsiLocator::locate_unit` for the disk at that unit on the
//! SCSI host serving the disks already visible, i.e. the boot disk's host: so only controller 0 can be found
//! there, and another controller is refused rather than looked for on the wrong host.

use std::collections::HashMap;
use std::str::FromStr;

use csi_core::node::PlatformError;

/// Publish-context key under which ControllerPublishVolume reports the device name (`SCSI (0:N)`) for the node.
pub const DEVICE_PATH_KEY: &str = "devicePath";

/// A parsed `SCSI (C:U)` device name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScsiDevice {
    /// The server's SCSI controller, C (0 for every additional disk this driver attaches).
    pub controller: u8,
    /// The unit on that controller, U: 0 for the boot disk, 1–15 except 7 for additional disks.
    pub unit: u8,
}

/// A device name the node cannot resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceNameError {
    /// The publish context has no [`DEVICE_PATH_KEY`] entry.
    #[error("publish context has no {DEVICE_PATH_KEY:?} entry (was the volume ControllerPublished?)")]
    Missing,
    /// The name is not `SCSI (C:U)` with numbers of 0–255.
    #[error("device path {0:?} is not of the form \"SCSI (C:U)\"")]
    Malformed(String),
    /// The name is on a controller other than 0, which the node cannot locate.
    #[error("device path {device:?} names SCSI controller {controller}; only controller 0 is supported")]
    UnsupportedController {
        /// The name as published.
        device: String,
        /// Its controller number.
        controller: u8,
    },
}

impl From<DeviceNameError> for PlatformError {
    fn from(e: DeviceNameError) -> Self {
        PlatformError::InvalidArgument(e.to_string())
    }
}

impl FromStr for ScsiDevice {
    type Err = DeviceNameError;

    /// Parses `SCSI (C:U)`: the prefix in any case, spaces allowed around every part.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || DeviceNameError::Malformed(s.to_string());
        let t = s.trim();
        let rest = t
            .get(..4)
            .filter(|p| p.eq_ignore_ascii_case("scsi"))
            .and_then(|_| t.get(4..))
            .ok_or_else(malformed)?;
        let inner = rest
            .trim()
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(malformed)?;
        let (c, u) = inner.split_once(':').ok_or_else(malformed)?;
        Ok(ScsiDevice {
            controller: c.trim().parse().map_err(|_| malformed())?,
            unit: u.trim().parse().map_err(|_| malformed())?,
        })
    }
}

/// The SCSI unit to look for on this node: the publish context's [`DEVICE_PATH_KEY`] entry, which must name
/// controller 0.
pub fn published_unit(publish_context: &HashMap<String, String>) -> Result<u8, DeviceNameError> {
    let name = publish_context.get(DEVICE_PATH_KEY).ok_or(DeviceNameError::Missing)?;
    let device: ScsiDevice = name.parse()?;
    if device.controller != 0 {
        return Err(DeviceNameError::UnsupportedController {
            device: name.clone(),
            controller: device.controller,
        });
    }
    Ok(device.unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_name_table() {
        let ok = |s: &str, controller, unit| assert_eq!(s.parse(), Ok(ScsiDevice { controller, unit }), "{s}");
        ok("SCSI (0:1)", 0, 1);
        ok("SCSI (0:15)", 0, 15);
        ok("SCSI(0:15)", 0, 15);
        ok(" SCSI(0:3) ", 0, 3);
        ok(" scsi ( 1 : 2 ) ", 1, 2);
        for bad in [
            "",
            "SCSI",
            "SCSI (0-1)",
            "SCSI (a:1)",
            "SCSI (0:x)",
            "SCSI (0:300)",
            "IDE (0:1)",
            "SCSI 0:1",
            "SCSI (0:1",
            "/dev/sdb",
            "SCS\u{e9} (0:1)",
        ] {
            assert_eq!(
                bad.parse::<ScsiDevice>(),
                Err(DeviceNameError::Malformed(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_node_takes_the_unit_of_controller_0_only() {
        let ctx = |name: &str| HashMap::from([(DEVICE_PATH_KEY.to_string(), name.to_string())]);
        assert_eq!(published_unit(&ctx("SCSI (0:3)")), Ok(3));
        assert_eq!(published_unit(&HashMap::new()), Err(DeviceNameError::Missing));
        assert_eq!(
            published_unit(&ctx("SCSI (1:5)")),
            Err(DeviceNameError::UnsupportedController {
                device: "SCSI (1:5)".into(),
                controller: 1
            })
        );
        assert_eq!(
            published_unit(&ctx("sdb")),
            Err(DeviceNameError::Malformed("sdb".into()))
        );
        let status = tonic::Status::from(PlatformError::from(DeviceNameError::Missing));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "publish context has no \"devicePath\" entry (was the volume ControllerPublished?)"
        );
    }
}
