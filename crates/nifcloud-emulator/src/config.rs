//! Emulator configuration: region, zones, credentials, instances, VIP range, delays, faults.
//!
//! Loaded from YAML or JSON (`EmulatorConfig::from_file`); every field has a default, so a
//! config file only needs what differs from [`EmulatorConfig::default`].

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::EmulatorError;
use crate::faults::FaultConfig;
use crate::state::AllowAnyEntry;

/// The access key of the default test credentials.
pub const TEST_ACCESS_KEY: &str = "EMULATORTESTACCESSKEY";
/// The secret key of the default test credentials.
pub const TEST_SECRET_KEY: &str = "emulator/Test+Secret/Key0123456789";

/// Everything an emulator starts from (a config file's top level); any field left out takes its default.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EmulatorConfig {
    /// Region name, e.g. `jp-east-1`.
    pub region: String,
    /// Availability zones of the region, e.g. `east-11`.
    pub zones: Vec<String>,
    /// Access key -> secret key.
    pub credentials: BTreeMap<String, String>,
    /// Instances that exist at start.
    pub instances: Vec<InstanceConfig>,
    /// Addresses handed out as load balancer VIPs.
    pub vip_range: VipRange,
    /// Maximum allowed distance between a request's `Timestamp` and the server clock.
    pub max_clock_skew_secs: i64,
    /// Artificial response latency.
    pub latency: LatencyConfig,
    /// Durations of asynchronous state transitions.
    pub delays: DelayConfig,
    /// Errors to inject, checked in order on every authenticated call.
    pub faults: FaultConfig,
    /// Seed for every random choice (fault draws, generated names and IDs).
    pub seed: u64,
    /// Optional loop-device backing of attached volumes (Linux, root only).
    pub block_devices: Option<BlockDeviceConfig>,
    /// How L4 load balancer filters report their allow-any entry `*.*.*.*` once addresses are set
    /// (`replaced`, as the service does, or `kept`).
    pub lb_filter_any: AllowAnyEntry,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            region: "jp-east-1".into(),
            zones: vec!["east-11".into(), "east-12".into()],
            credentials: BTreeMap::from([(TEST_ACCESS_KEY.to_owned(), TEST_SECRET_KEY.to_owned())]),
            instances: Vec::new(),
            vip_range: VipRange::default(),
            max_clock_skew_secs: 900,
            latency: LatencyConfig::default(),
            delays: DelayConfig::default(),
            faults: FaultConfig::default(),
            seed: 1,
            block_devices: None,
            lb_filter_any: AllowAnyEntry::default(),
        }
    }
}

impl EmulatorConfig {
    /// A ready-made test world: region `jp-east-1`, zones `east-11`/`east-12`, default test
    /// credentials, four running instances in `east-11` (`node1`..`node4`) and two in `east-12`
    /// (`node5`, `node6`), each with a global (203.0.113.x) and a private (10.0.0.x) interface.
    /// All delays are zero.
    pub fn sample() -> Self {
        let mut cfg = Self::default();
        for i in 1..=6u8 {
            let zone = if i <= 4 { "east-11" } else { "east-12" };
            cfg.instances.push(
                InstanceConfig::new(&format!("node{i}"), zone)
                    .with_ips(&format!("203.0.113.{}", 10 + i), &format!("10.0.0.{}", 10 + i)),
            );
        }
        cfg
    }

    /// Reads YAML (`.yaml`/`.yml`) or JSON (anything else) from `path`.
    pub fn from_file(path: &Path) -> Result<Self, EmulatorError> {
        let text = std::fs::read_to_string(path).map_err(|source| EmulatorError::ReadConfig {
            path: path.display().to_string(),
            source,
        })?;
        let is_yaml = matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
        let parsed = if is_yaml {
            serde_saphyr::from_str(&text).map_err(|e| e.to_string())
        } else {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        };
        let cfg: Self = parsed.map_err(|message| EmulatorError::ParseConfig {
            path: path.display().to_string(),
            message,
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks cross-field consistency (unique instance names, known zones, a non-empty VIP range).
    pub fn validate(&self) -> Result<(), EmulatorError> {
        let mut names = std::collections::BTreeSet::new();
        for inst in &self.instances {
            if !crate::state::valid_name(&inst.name, 15) {
                return Err(EmulatorError::Config(format!(
                    "instance name {:?} must be 1-15 alphanumerics",
                    inst.name
                )));
            }
            if !names.insert(inst.name.as_str()) {
                return Err(EmulatorError::Config(format!(
                    "instance name {:?} is duplicated",
                    inst.name
                )));
            }
            if !self.zones.contains(&inst.zone) {
                return Err(EmulatorError::Config(format!(
                    "instance {:?} is in unknown zone {:?}",
                    inst.name, inst.zone
                )));
            }
        }
        if u32::from(self.vip_range.first) > u32::from(self.vip_range.last) {
            return Err(EmulatorError::Config("vip_range.first is after vip_range.last".into()));
        }
        Ok(())
    }
}

/// Instance state at start.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum InitialState {
    /// `running` (code 16).
    #[default]
    Running,
    /// `stopped` (code 80).
    Stopped,
}

/// One instance (server).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct InstanceConfig {
    /// Server name (`instanceId`), 1-15 alphanumerics; the Kubernetes node name.
    pub name: String,
    /// Immutable `instanceUniqueId` (`i-…`); generated from the seed when absent.
    pub unique_id: Option<String>,
    /// Availability zone; must be one of [`EmulatorConfig::zones`].
    pub zone: String,
    /// Instance type, e.g. `e-large`.
    pub instance_type: String,
    /// State at start.
    pub state: InitialState,
    /// Network interfaces (the first with a public IP gives `ipAddress`, the first with a
    /// private IP gives `privateIpAddress`).
    pub network_interfaces: Vec<NetworkInterfaceConfig>,
    /// Security group (firewall) the instance belongs to, if any.
    pub security_group: Option<String>,
    /// The server's free-text `description`.
    pub description: String,
}

impl Default for InstanceConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            unique_id: None,
            zone: "east-11".into(),
            instance_type: "e-large".into(),
            state: InitialState::Running,
            network_interfaces: Vec::new(),
            security_group: None,
            description: String::new(),
        }
    }
}

impl InstanceConfig {
    /// A running `e-large` instance with no interfaces.
    pub fn new(name: &str, zone: &str) -> Self {
        Self {
            name: name.into(),
            zone: zone.into(),
            ..Self::default()
        }
    }

    /// Adds a `net-COMMON_GLOBAL` interface with `public_ip` and a `net-COMMON_PRIVATE` one with `private_ip`.
    pub fn with_ips(mut self, public_ip: &str, private_ip: &str) -> Self {
        self.network_interfaces.push(NetworkInterfaceConfig {
            network_id: "net-COMMON_GLOBAL".into(),
            public_ip: Some(public_ip.into()),
            ..NetworkInterfaceConfig::default()
        });
        self.network_interfaces.push(NetworkInterfaceConfig {
            network_id: "net-COMMON_PRIVATE".into(),
            private_ip: Some(private_ip.into()),
            ..NetworkInterfaceConfig::default()
        });
        self
    }
}

/// One network interface of an instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkInterfaceConfig {
    /// `net-COMMON_GLOBAL`, `net-COMMON_PRIVATE` or a private LAN id `net-…`.
    pub network_id: String,
    /// Private IPv4 address.
    pub private_ip: Option<String>,
    /// Public IPv4 address.
    pub public_ip: Option<String>,
    /// IPv6 address.
    pub ipv6: Option<String>,
}

/// Inclusive IPv4 range for load balancer VIPs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VipRange {
    /// First address of the pool (handed out first).
    pub first: Ipv4Addr,
    /// Last address of the pool, included; not before `first`.
    pub last: Ipv4Addr,
}

impl Default for VipRange {
    fn default() -> Self {
        Self {
            first: Ipv4Addr::new(198, 51, 100, 1),
            last: Ipv4Addr::new(198, 51, 100, 254),
        }
    }
}

/// Artificial latency added before each reply.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct LatencyConfig {
    /// Milliseconds for every action.
    pub default_ms: u64,
    /// Milliseconds for specific actions (replaces `default_ms`).
    pub per_action: BTreeMap<String, u64>,
}

impl LatencyConfig {
    /// The latency of `action` in milliseconds.
    pub fn for_action(&self, action: &str) -> u64 {
        self.per_action.get(action).copied().unwrap_or(self.default_ms)
    }
}

/// Durations of asynchronous transitions, in milliseconds (0 = immediate).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DelayConfig {
    /// Volume status `creating` before `in-use`.
    pub volume_create_ms: u64,
    /// Attachment status `attaching` before `attached`.
    pub volume_attach_ms: u64,
    /// Attachment status `detaching` before the attachment disappears.
    pub volume_detach_ms: u64,
    /// ExtendVolumeSize: attachment `attaching` before `attached` and the size grows.
    pub volume_extend_ms: u64,
    /// Elastic load balancer `State` `processing` after each change.
    pub elb_ms: u64,
    /// Security group `groupStatus` `processing` after each change.
    pub security_group_ms: u64,
    /// Instance `stopping` before `stopped`, and `pending` before `running`.
    pub instance_ms: u64,
}

impl DelayConfig {
    /// The same delay for every transition.
    pub fn uniform(ms: u64) -> Self {
        Self {
            volume_create_ms: ms,
            volume_attach_ms: ms,
            volume_detach_ms: ms,
            volume_extend_ms: ms,
            elb_ms: ms,
            security_group_ms: ms,
            instance_ms: ms,
        }
    }
}

/// Loop-device backing of attached volumes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BlockDeviceConfig {
    /// Root of the per-instance views: `<dir>/<instanceId>/disk/by-path/pci-0000:0b:00.0-scsi-0:0:N:0`.
    pub dir: PathBuf,
    /// Where the sparse backing files live (`<backing_dir>/<volumeUniqueId>.img`).
    pub backing_dir: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_is_valid_and_yaml_round_trips() {
        let cfg = EmulatorConfig::sample();
        cfg.validate().unwrap();
        assert_eq!(cfg.instances.iter().filter(|i| i.zone == "east-11").count(), 4);
        let yaml = serde_saphyr::to_string(&cfg).unwrap();
        let back: EmulatorConfig = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back, cfg);
    }

    #[test]
    fn shipped_sample_yaml_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sample.yaml");
        let cfg = EmulatorConfig::from_file(&path).unwrap();
        assert_eq!(cfg.instances.len(), 3);
        assert_eq!(cfg.instances[2].state, InitialState::Stopped);
        assert_eq!(cfg.faults.rules[0].status, 503);
    }

    #[test]
    fn latency_per_action_overrides_default() {
        let mut l = LatencyConfig {
            default_ms: 5,
            ..LatencyConfig::default()
        };
        l.per_action.insert("DescribeVolumes".into(), 50);
        assert_eq!((l.for_action("DescribeVolumes"), l.for_action("AttachVolume")), (50, 5));
    }

    #[test]
    fn minimal_yaml_uses_defaults_and_rejects_bad_zone() {
        let cfg: EmulatorConfig = serde_saphyr::from_str("instances:\n  - name: a1\n    zone: east-12\n").unwrap();
        assert_eq!(cfg.region, "jp-east-1");
        cfg.validate().unwrap();
        let bad: EmulatorConfig = serde_saphyr::from_str("instances:\n  - name: a1\n    zone: west-99\n").unwrap();
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            r#"invalid config: instance "a1" is in unknown zone "west-99""#
        );
    }

    #[test]
    fn unknown_fields_are_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [
            ("c.yaml", "nonsense_field: 1\n"),
            ("c.json", r#"{"nonsense_field": 1}"#),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            match EmulatorConfig::from_file(&path) {
                Err(EmulatorError::ParseConfig { path: p, message }) => {
                    assert_eq!(p, path.display().to_string());
                    assert!(message.contains("unknown field `nonsense_field`"), "{name}: {message}");
                }
                other => panic!("{name}: expected ParseConfig, got {other:?}"),
            }
        }
    }
}
