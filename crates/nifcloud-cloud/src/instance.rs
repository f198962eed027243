//! The instance (server) model: what the CCM and the CSI driver need to know about a NIFCLOUD server, read from
//! `DescribeInstances`.

use std::collections::BTreeSet;
use std::net::IpAddr;

use nifcloud_sdk::types::{DescribeInstancesResult, InstancesSet, ReservationSet};

use crate::provider_id::ProviderId;

/// The lifecycle state of a server.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum InstanceState {
    /// `pending` (code 0).
    Pending,
    /// `running` (code 16).
    Running,
    /// `stopping` (code 64).
    Stopping,
    /// `stopped` (code 80).
    Stopped,
    /// `terminated` (code 48).
    Terminated,
    /// Any other state name (`waiting`, `warning`, `suspending`, `import_error`, …).
    Other(String),
}

impl InstanceState {
    /// Reads the state from its wire name, falling back to its code when the name is missing.
    pub fn from_wire(name: Option<&str>, code: Option<i64>) -> Self {
        match name.map(str::trim).filter(|n| !n.is_empty()) {
            Some(n) => match n.to_ascii_lowercase().as_str() {
                "pending" => Self::Pending,
                "running" => Self::Running,
                "stopping" => Self::Stopping,
                "stopped" => Self::Stopped,
                "terminated" => Self::Terminated,
                other => Self::Other(other.to_owned()),
            },
            None => match code {
                Some(0) => Self::Pending,
                Some(16) => Self::Running,
                Some(64) => Self::Stopping,
                Some(80) => Self::Stopped,
                Some(48) => Self::Terminated,
                Some(c) => Self::Other(format!("code {c}")),
                None => Self::Other("unknown".into()),
            },
        }
    }

    /// The wire name of the state (`running`, `stopped`, …).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Terminated => "terminated",
            Self::Other(name) => name,
        }
    }

    /// Whether the server is shut down but still exists (the Kubernetes "shutdown" notion).
    pub fn is_shut_down(&self) -> bool {
        matches!(self, Self::Stopped)
    }
}

/// The kind of an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddressKind {
    /// A private IPv4 address (`net-COMMON_PRIVATE` or a private LAN).
    PrivateV4,
    /// A public (global) IPv4 address.
    PublicV4,
    /// A private IPv6 address.
    PrivateV6,
    /// A public IPv6 address.
    PublicV6,
}

/// One address of a server.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InstanceAddress {
    /// What kind of address it is.
    pub kind: AddressKind,
    /// The address.
    pub ip: IpAddr,
    /// The network it belongs to (`net-COMMON_GLOBAL`, `net-COMMON_PRIVATE`, `net-…`), when known.
    pub network_id: Option<String>,
}

/// A NIFCLOUD server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// The server name (`instanceId`), user-chosen and mutable.
    pub name: String,
    /// The immutable `instanceUniqueId` (`i-…`).
    pub unique_id: String,
    /// The availability zone (`east-11`).
    pub zone: String,
    /// The instance type (`e-large`).
    pub instance_type: String,
    /// Where the server is in its life (`instanceState`): running, stopped, …
    pub state: InstanceState,
    /// Every address of every network interface, deduplicated, in a stable order (interfaces in order, then the
    /// top-level fields).
    pub addresses: Vec<InstanceAddress>,
    /// The security groups (firewalls) the server belongs to.
    pub security_groups: Vec<String>,
}

impl Instance {
    /// Converts one `instancesSet` item; `None` when it lacks a name or unique id (then it cannot be addressed).
    pub fn from_sdk(item: &InstancesSet, reservation_groups: &[String]) -> Option<Self> {
        let name = non_empty(item.instance_id.as_deref())?;
        let unique_id = non_empty(item.instance_unique_id.as_deref())?;
        let state = item
            .instance_state
            .as_ref()
            .map(|s| InstanceState::from_wire(s.name.as_deref(), s.code))
            .unwrap_or_else(|| InstanceState::Other("unknown".into()));
        let mut addresses: Vec<InstanceAddress> = Vec::new();
        let mut push = |kind: AddressKind, value: Option<&str>, network: Option<&str>| {
            let Some(ip) = value.map(str::trim).and_then(|v| v.parse::<IpAddr>().ok()) else {
                return;
            };
            // An address parsed as the other family is classified by what it is.
            let kind = match (kind, ip) {
                (AddressKind::PrivateV4 | AddressKind::PrivateV6, IpAddr::V4(_)) => AddressKind::PrivateV4,
                (AddressKind::PrivateV4 | AddressKind::PrivateV6, IpAddr::V6(_)) => AddressKind::PrivateV6,
                (AddressKind::PublicV4 | AddressKind::PublicV6, IpAddr::V4(_)) => AddressKind::PublicV4,
                (AddressKind::PublicV4 | AddressKind::PublicV6, IpAddr::V6(_)) => AddressKind::PublicV6,
            };
            if ip.is_unspecified() || addresses.iter().any(|a| a.ip == ip) {
                return;
            }
            addresses.push(InstanceAddress {
                kind,
                ip,
                network_id: network.map(str::to_owned),
            });
        };
        for nic in &item.network_interface_set {
            let net = non_empty(nic.nifty_network_id.as_deref());
            let net = net.as_deref();
            // A global interface carries its public address in privateIpAddress on some replies and in
            // association/publicIp on others; classify by the network.
            let global = net == Some("net-COMMON_GLOBAL");
            let (v4, v6) = if global {
                (AddressKind::PublicV4, AddressKind::PublicV6)
            } else {
                (AddressKind::PrivateV4, AddressKind::PrivateV6)
            };
            push(v4, nic.private_ip_address.as_deref(), net);
            push(v6, nic.private_ip_address_v6.as_deref(), net);
            for extra in &nic.private_ip_addresses_set {
                push(v4, extra.private_ip_address.as_deref(), net);
            }
            if let Some(assoc) = &nic.association {
                push(AddressKind::PublicV4, assoc.public_ip.as_deref(), net);
                push(AddressKind::PublicV6, assoc.public_ip_v6.as_deref(), net);
            }
        }
        push(AddressKind::PrivateV4, item.private_ip_address.as_deref(), None);
        push(AddressKind::PublicV4, item.ip_address.as_deref(), None);
        push(AddressKind::PrivateV6, item.private_ip_address_v6.as_deref(), None);
        push(AddressKind::PublicV6, item.ip_address_v6.as_deref(), None);
        let groups: BTreeSet<String> = reservation_groups.iter().cloned().collect();
        Some(Self {
            name,
            unique_id,
            zone: non_empty(item.placement.as_ref().and_then(|p| p.availability_zone.as_deref())).unwrap_or_default(),
            instance_type: non_empty(item.instance_type.as_deref()).unwrap_or_default(),
            state,
            addresses,
            security_groups: groups.into_iter().collect(),
        })
    }

    /// Every server in a `DescribeInstances` reply; items without a name or unique id are skipped.
    pub fn all_from_describe(result: &DescribeInstancesResult) -> Vec<Self> {
        result.reservation_set.iter().flat_map(Self::from_reservation).collect()
    }

    /// Every server of one reservation (one entry of a `DescribeInstances` reply's `reservationSet`).
    pub fn from_reservation(reservation: &ReservationSet) -> Vec<Self> {
        let groups: Vec<String> = reservation
            .group_set
            .iter()
            .filter_map(|g| non_empty(g.group_id.as_deref()))
            .collect();
        reservation
            .instances_set
            .iter()
            .filter_map(|i| Self::from_sdk(i, &groups))
            .collect()
    }

    /// The server's provider ID.
    pub fn provider_id(&self) -> ProviderId {
        ProviderId::new(self.zone.clone(), self.unique_id.clone())
    }

    /// The addresses of one kind, in order.
    pub fn addresses_of(&self, kind: AddressKind) -> impl Iterator<Item = IpAddr> + '_ {
        self.addresses.iter().filter(move |a| a.kind == kind).map(|a| a.ip)
    }

    /// The first private IPv4 address, the one load balancers and NodePorts use.
    pub fn private_ipv4(&self) -> Option<IpAddr> {
        self.addresses_of(AddressKind::PrivateV4).next()
    }

    /// Whether the server has `ip` on any interface.
    pub fn has_address(&self, ip: IpAddr) -> bool {
        self.addresses.iter().any(|a| a.ip == ip)
    }
}

fn non_empty(value: Option<&str>) -> Option<String> {
    value.map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nifcloud_sdk::types::{
        Association, GroupSet, InstanceState as WireState, NetworkInterfaceSetOfDescribeInstances, Placement,
    };

    fn nic(
        net: &str,
        private: Option<&str>,
        v6: Option<&str>,
        public: Option<&str>,
    ) -> NetworkInterfaceSetOfDescribeInstances {
        NetworkInterfaceSetOfDescribeInstances {
            nifty_network_id: Some(net.into()),
            private_ip_address: private.map(Into::into),
            private_ip_address_v6: v6.map(Into::into),
            association: public.map(|p| Association {
                public_ip: Some(p.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn item() -> InstancesSet {
        InstancesSet {
            instance_id: Some("web1".into()),
            instance_unique_id: Some("i-0abc".into()),
            instance_type: Some("e-large".into()),
            placement: Some(Placement {
                availability_zone: Some("east-11".into()),
            }),
            instance_state: Some(WireState {
                code: Some(16),
                name: Some("running".into()),
            }),
            ip_address: Some("203.0.113.5".into()),
            private_ip_address: Some("10.0.0.5".into()),
            network_interface_set: vec![
                nic("net-COMMON_GLOBAL", None, None, Some("203.0.113.5")),
                nic("net-COMMON_PRIVATE", Some("10.0.0.5"), None, None),
                nic("net-abcd", Some("192.168.1.5"), Some("fd00::5"), None),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn converts_every_interface_and_dedups() {
        let inst = Instance::from_sdk(&item(), &["fw1".into(), "fw1".into()]).unwrap();
        assert_eq!(inst.name, "web1");
        assert_eq!(inst.unique_id, "i-0abc");
        assert_eq!(inst.zone, "east-11");
        assert_eq!(inst.instance_type, "e-large");
        assert_eq!(inst.state, InstanceState::Running);
        assert_eq!(inst.security_groups, vec!["fw1".to_string()]);
        let got: Vec<(AddressKind, String)> = inst.addresses.iter().map(|a| (a.kind, a.ip.to_string())).collect();
        assert_eq!(
            got,
            vec![
                (AddressKind::PublicV4, "203.0.113.5".into()),
                (AddressKind::PrivateV4, "10.0.0.5".into()),
                (AddressKind::PrivateV4, "192.168.1.5".into()),
                (AddressKind::PrivateV6, "fd00::5".into()),
            ]
        );
        assert_eq!(inst.private_ipv4().unwrap().to_string(), "10.0.0.5");
        assert_eq!(inst.provider_id().to_string(), "nifcloud:///east-11/i-0abc");
    }

    #[test]
    fn a_global_interface_reporting_its_address_as_private_is_public() {
        let mut it = item();
        it.network_interface_set = vec![nic("net-COMMON_GLOBAL", Some("203.0.113.9"), Some("2001:db8::9"), None)];
        it.ip_address = None;
        it.private_ip_address = None;
        let inst = Instance::from_sdk(&it, &[]).unwrap();
        let kinds: Vec<AddressKind> = inst.addresses.iter().map(|a| a.kind).collect();
        assert_eq!(kinds, vec![AddressKind::PublicV4, AddressKind::PublicV6]);
    }

    #[test]
    fn tolerates_garbage_and_missing_fields() {
        let mut it = item();
        it.private_ip_address = Some("not-an-ip".into());
        it.ip_address = Some("".into());
        it.network_interface_set.clear();
        it.instance_state = None;
        it.placement = None;
        let inst = Instance::from_sdk(&it, &[]).unwrap();
        assert!(inst.addresses.is_empty());
        assert_eq!(inst.zone, "");
        assert_eq!(inst.state, InstanceState::Other("unknown".into()));
        let mut nameless = item();
        nameless.instance_id = Some("  ".into());
        assert!(Instance::from_sdk(&nameless, &[]).is_none());
        let mut idless = item();
        idless.instance_unique_id = None;
        assert!(Instance::from_sdk(&idless, &[]).is_none());
    }

    #[test]
    fn states_from_name_or_code() {
        let cases = [
            (Some("running"), None, InstanceState::Running),
            (Some("STOPPED"), Some(16), InstanceState::Stopped),
            (None, Some(80), InstanceState::Stopped),
            (None, Some(48), InstanceState::Terminated),
            (Some(""), Some(0), InstanceState::Pending),
            (Some("warning"), None, InstanceState::Other("warning".into())),
            (None, Some(7), InstanceState::Other("code 7".into())),
        ];
        for (name, code, want) in cases {
            assert_eq!(InstanceState::from_wire(name, code), want, "{name:?} {code:?}");
        }
        assert!(InstanceState::Stopped.is_shut_down());
        assert!(!InstanceState::Stopping.is_shut_down() && !InstanceState::Running.is_shut_down());
    }

    #[test]
    fn reads_a_whole_reply() {
        let result = DescribeInstancesResult {
            reservation_set: vec![ReservationSet {
                group_set: vec![GroupSet {
                    group_id: Some("fwk8s".into()),
                }],
                instances_set: vec![item(), InstancesSet::default()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let all = Instance::all_from_describe(&result);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].security_groups, vec!["fwk8s".to_string()]);
    }
}
