//! Service annotations: names, allowed values, and validation of all of them at once.
//!
//! Every key starts with `service.beta.kubernetes.io/nifcloud-load-balancer-`. A key with that prefix that this
//! provider does not know is an error too (a typo must not be silently ignored).
//!
//! | Suffix | Values | Default |
//! |---|---|---|
//! | `type` | `lb` (L4) or `elb` (elastic) | `lb` (or `loadBalancer.defaultType` in the cloud config) |
//! | `name` | 1-15 ASCII letters/digits | derived from the cluster name and the Service UID |
//! | `accounting-type` | `1` monthly, `2` pay-per-use | left as the API creates it |
//! | `network-volume` | Mbps; L4: 10, 20, 30, 40, 100…2000 step 100; ELB: 10, 20, 30, 40, 100…500 step 100 | API default |
//! | `policy-type` | `standard` or `ats` (L4 only) | API default |
//! | `balancing-type` | `1` round-robin, `2` least-connection | `1` |
//! | `healthcheck-protocol` | `TCP` or `ICMP` (L4); `TCP`, `ICMP` or `HTTP` (ELB) | `TCP`; ELB with `externalTrafficPolicy: Local`: `HTTP` (`/healthz` on `healthCheckNodePort`) |
//! | `healthcheck-unhealthy-threshold` | 1-10 | `1` |
//! | `healthcheck-interval` | 5-300 seconds | `10` |
//! | `network-interface-{1,2}-network-id` | `net-COMMON_GLOBAL`, `net-COMMON_PRIVATE` or a private LAN `net-…` (ELB) | interface 1 = `net-COMMON_GLOBAL` |
//! | `network-interface-{1,2}-ip-address` | an IPv4 address, or `static` (ELB; private LAN only) | DHCP |
//! | `network-interface-{1,2}-system-ip-addresses` | two comma-separated IPv4 addresses (ELB; private LAN) | none |
//! | `vip-network` | `1` or `2`: which interface carries the VIP (ELB) | `1` |

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::model::{AccountingType, BalancingType, PolicyType};

/// The common prefix of every annotation of this provider; an unknown key with this prefix is an error.
pub const PREFIX: &str = "service.beta.kubernetes.io/nifcloud-load-balancer-";
/// Which kind of load balancer serves the Service: `lb` (L4) or `elb` (elastic). Changing it replaces the load
/// balancer (the new one gets a new VIP).
pub const TYPE: &str = "service.beta.kubernetes.io/nifcloud-load-balancer-type";
/// The load balancer's name on NIFCLOUD (1-15 ASCII letters or digits) instead of the generated one; see
/// [`crate::naming`] for how ownership of such a name is proven.
pub const NAME: &str = "service.beta.kubernetes.io/nifcloud-load-balancer-name";
/// Billing: `1` monthly, `2` pay-per-use (a change applies from next month).
pub const ACCOUNTING_TYPE: &str = "service.beta.kubernetes.io/nifcloud-load-balancer-accounting-type";
/// Bandwidth of the load balancer in Mbps (allowed values depend on the kind; see the module table).
pub const NETWORK_VOLUME: &str = "service.beta.kubernetes.io/nifcloud-load-balancer-network-volume";
/// L4 only, fixed at creation: `standard`, or `ats` to pass client addresses through.
pub const POLICY_TYPE: &str = "service.beta.kubernetes.io/nifcloud-load-balancer-policy-type";
/// How connections are spread: `1` round-robin, `2` least-connection.
pub const BALANCING_TYPE: &str = "service.beta.kubernetes.io/nifcloud-load-balancer-balancing-type";
/// What the health check probes on each node: `TCP` (the NodePort), `ICMP`, or `HTTP` (elastic only). Unset, an
/// elastic load balancer of an `externalTrafficPolicy: Local` Service checks `HTTP` `/healthz` on the
/// `healthCheckNodePort` (see [`crate::spec`]); anything else checks `TCP`.
pub const HC_PROTOCOL: &str = "service.beta.kubernetes.io/nifcloud-load-balancer-healthcheck-protocol";
/// How many failed probes in a row take a node out of rotation: 1-10.
pub const HC_UNHEALTHY_THRESHOLD: &str =
    "service.beta.kubernetes.io/nifcloud-load-balancer-healthcheck-unhealthy-threshold";
/// Seconds between two probes of a node: 5-300.
pub const HC_INTERVAL: &str = "service.beta.kubernetes.io/nifcloud-load-balancer-healthcheck-interval";
/// Elastic only: `1` or `2`, the network interface that carries the VIP.
pub const VIP_NETWORK: &str = "service.beta.kubernetes.io/nifcloud-load-balancer-vip-network";
/// Written by this provider: which load balancer it created for the Service (`<cluster tag>:<name>`). Not for
/// users.
pub const OWNER: &str = "service.beta.kubernetes.io/nifcloud-load-balancer-owner";

/// The ELB network-interface annotation for interface `n` (1 or 2) and `field` (`network-id`, `ip-address`,
/// `system-ip-addresses`).
pub fn network_interface(n: u8, field: &str) -> String {
    format!("{PREFIX}network-interface-{n}-{field}")
}

/// The kind of NIFCLOUD load balancer behind a Service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LbKind {
    /// The classic L4 load balancer (`lb`).
    #[default]
    L4,
    /// The elastic ("multi") load balancer (`elb`).
    Elastic,
}

impl LbKind {
    /// Parses `lb` / `elb`.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "lb" => Some(Self::L4),
            "elb" => Some(Self::Elastic),
            _ => None,
        }
    }
}

impl std::fmt::Display for LbKind {
    /// How messages name this kind: `L4 load balancer` or `elastic load balancer`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::L4 => "L4 load balancer",
            Self::Elastic => "elastic load balancer",
        })
    }
}

/// What the health check probes on each node, from [`HC_PROTOCOL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HealthCheckProtocol {
    /// A TCP connection to the NodePort (or `healthCheckNodePort`).
    #[default]
    Tcp,
    /// A ping.
    Icmp,
    /// An HTTP request (elastic only): `/` on the NodePort, or `/healthz` on `healthCheckNodePort`.
    Http,
}

/// One network interface of an elastic load balancer, from the `network-interface-N-*` annotations; chosen at
/// creation only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElbInterface {
    /// The network: `net-COMMON_GLOBAL` (internet), `net-COMMON_PRIVATE` (the shared private network) or the id
    /// of a private LAN (`net-…`).
    pub network_id: String,
    /// On a private LAN: how the interface gets its address; `None` lets DHCP choose.
    pub ip_address: Option<ElbAddress>,
    /// On a private LAN: the two addresses the load balancer's redundant pair uses for itself.
    pub system_ip_addresses: Vec<Ipv4Addr>,
}

/// How an elastic load balancer's interface on a private LAN gets its address (`IpAddress` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElbAddress {
    /// `static`: NIFCLOUD assigns a fixed address from the LAN.
    Static,
    /// This address.
    Fixed(Ipv4Addr),
}

impl std::fmt::Display for ElbAddress {
    /// The wire value: `static` or the address.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Static => f.write_str("static"),
            Self::Fixed(ip) => write!(f, "{ip}"),
        }
    }
}

/// Everything the annotations say, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LbOptions {
    /// Which kind of load balancer.
    pub kind: LbKind,
    /// The name from [`NAME`]; `None`: the generated one.
    pub name: Option<String>,
    /// Billing; `None`: whatever the API chooses at creation, never changed afterwards.
    pub accounting_type: Option<AccountingType>,
    /// Bandwidth in Mbps; `None`: the API's default at creation, never changed afterwards.
    pub network_volume: Option<i64>,
    /// L4 only, fixed at creation; `None`: the API's default.
    pub policy_type: Option<PolicyType>,
    /// How connections are spread, on every listener.
    pub balancing: BalancingType,
    /// What the health check probes, if the Service says ([`HC_PROTOCOL`]); `None`: the default of its kind and
    /// traffic policy (see [`crate::spec`]).
    pub hc_protocol: Option<HealthCheckProtocol>,
    /// Failed probes in a row before a node is taken out (1-10).
    pub hc_unhealthy_threshold: i64,
    /// Seconds between probes (5-300).
    pub hc_interval: i64,
    /// Elastic only: the interfaces, in order (at least one); empty for L4.
    pub elb_interfaces: Vec<ElbInterface>,
    /// Elastic only: the index into `elb_interfaces` of the interface that carries the VIP.
    pub elb_vip_interface: usize,
}

/// What the cloud config's `loadBalancer` section sets for Services whose annotations do not say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LbDefaults {
    /// `loadBalancer.defaultType`.
    pub kind: LbKind,
    /// `loadBalancer.accountingType`.
    pub accounting_type: Option<AccountingType>,
    /// `loadBalancer.networkVolume`, in Mbps (ignored for a kind that does not allow the value).
    pub network_volume: Option<i64>,
}

fn l4_volume_ok(v: i64) -> bool {
    matches!(v, 10 | 20 | 30 | 40) || ((100..=2000).contains(&v) && v % 100 == 0)
}

fn elb_volume_ok(v: i64) -> bool {
    matches!(v, 10 | 20 | 30 | 40) || ((100..=500).contains(&v) && v % 100 == 0)
}

/// Whether `name` is a valid NIFCLOUD load balancer name (1-15 ASCII letters/digits).
pub fn valid_lb_name(name: &str) -> bool {
    (1..=15).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Reads and validates the annotations. Every problem is reported, one sentence each.
pub fn parse(annotations: &BTreeMap<String, String>, defaults: &LbDefaults) -> Result<LbOptions, Vec<String>> {
    let mut problems = Vec::new();
    let get = |k: &str| annotations.get(k).map(|v| v.trim());
    let kind = match get(TYPE) {
        None => defaults.kind,
        Some(v) => LbKind::parse(v).unwrap_or_else(|| {
            problems.push(format!("{TYPE}: {v:?} is not one of lb, elb"));
            defaults.kind
        }),
    };
    let name = match get(NAME) {
        None => None,
        Some(v) if valid_lb_name(v) => Some(v.to_owned()),
        Some(v) => {
            problems.push(format!("{NAME}: {v:?} must be 1-15 ASCII letters or digits"));
            None
        }
    };
    let accounting_type = match get(ACCOUNTING_TYPE) {
        None => defaults.accounting_type,
        Some(v) => AccountingType::parse(v).or_else(|| {
            problems.push(format!(
                "{ACCOUNTING_TYPE}: {v:?} is not 1 (monthly) or 2 (pay-per-use)"
            ));
            None
        }),
    };
    let volume_ok: fn(i64) -> bool = match kind {
        LbKind::L4 => l4_volume_ok,
        LbKind::Elastic => elb_volume_ok,
    };
    let volume_allowed = match kind {
        LbKind::L4 => "10, 20, 30, 40 or 100-2000 in steps of 100",
        LbKind::Elastic => "10, 20, 30, 40 or 100-500 in steps of 100",
    };
    let network_volume = match get(NETWORK_VOLUME) {
        None => defaults.network_volume.filter(|v| volume_ok(*v)),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if volume_ok(n) => Some(n),
            _ => {
                problems.push(format!("{NETWORK_VOLUME}: {v:?} is not {volume_allowed}"));
                None
            }
        },
    };
    let policy_type = get(POLICY_TYPE).and_then(|v| {
        PolicyType::parse(v).or_else(|| {
            problems.push(format!("{POLICY_TYPE}: {v:?} is not standard or ats"));
            None
        })
    });
    if policy_type.is_some() && kind == LbKind::Elastic {
        problems.push(format!(
            "{POLICY_TYPE}: only L4 load balancers (type lb) have a policy type"
        ));
    }
    let balancing = match get(BALANCING_TYPE) {
        None => BalancingType::RoundRobin,
        Some(v) => BalancingType::parse(v).unwrap_or_else(|| {
            problems.push(format!(
                "{BALANCING_TYPE}: {v:?} is not 1 (round-robin) or 2 (least-connection)"
            ));
            BalancingType::RoundRobin
        }),
    };
    let hc_protocol = match get(HC_PROTOCOL).map(str::to_ascii_uppercase).as_deref() {
        None => None,
        Some("TCP") => Some(HealthCheckProtocol::Tcp),
        Some("ICMP") => Some(HealthCheckProtocol::Icmp),
        Some("HTTP") if kind == LbKind::Elastic => Some(HealthCheckProtocol::Http),
        Some(_) => {
            let allowed = if kind == LbKind::Elastic {
                "TCP, ICMP or HTTP"
            } else {
                "TCP or ICMP"
            };
            problems.push(format!(
                "{HC_PROTOCOL}: {:?} is not {allowed}",
                get(HC_PROTOCOL).unwrap_or_default()
            ));
            None
        }
    };
    let mut int_in = |key: &str, lo: i64, hi: i64, default: i64| match get(key) {
        None => default,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (lo..=hi).contains(&n) => n,
            _ => {
                problems.push(format!("{key}: {v:?} is not an integer from {lo} to {hi}"));
                default
            }
        },
    };
    let hc_unhealthy_threshold = int_in(HC_UNHEALTHY_THRESHOLD, 1, 10, 1);
    let hc_interval = int_in(HC_INTERVAL, 5, 300, 10);
    let (elb_interfaces, elb_vip_interface) = parse_elb_interfaces(annotations, kind, &mut problems);
    for key in annotations.keys() {
        if let Some(suffix) = key.strip_prefix(PREFIX)
            && !known_suffix(suffix)
        {
            problems.push(format!("{key}: unknown annotation"));
        }
    }
    if problems.is_empty() {
        Ok(LbOptions {
            kind,
            name,
            accounting_type,
            network_volume,
            policy_type,
            balancing,
            hc_protocol,
            hc_unhealthy_threshold,
            hc_interval,
            elb_interfaces,
            elb_vip_interface,
        })
    } else {
        Err(problems)
    }
}

fn known_suffix(suffix: &str) -> bool {
    const KNOWN: [&str; 11] = [
        "type",
        "name",
        "accounting-type",
        "network-volume",
        "policy-type",
        "balancing-type",
        "healthcheck-protocol",
        "healthcheck-unhealthy-threshold",
        "healthcheck-interval",
        "vip-network",
        "owner",
    ];
    if KNOWN.contains(&suffix) {
        return true;
    }
    ["1", "2"].iter().any(|n| {
        ["network-id", "ip-address", "system-ip-addresses"]
            .iter()
            .any(|f| suffix == format!("network-interface-{n}-{f}"))
    })
}

fn parse_elb_interfaces(
    annotations: &BTreeMap<String, String>,
    kind: LbKind,
    problems: &mut Vec<String>,
) -> (Vec<ElbInterface>, usize) {
    let get = |k: &str| annotations.get(k).map(|v| v.trim().to_owned());
    let mut interfaces = Vec::new();
    for n in [1u8, 2] {
        let id_key = network_interface(n, "network-id");
        let ip_key = network_interface(n, "ip-address");
        let sys_key = network_interface(n, "system-ip-addresses");
        let (id, ip, sys) = (get(&id_key), get(&ip_key), get(&sys_key));
        if kind == LbKind::L4 {
            for (k, v) in [(&id_key, &id), (&ip_key, &ip), (&sys_key, &sys)] {
                if v.is_some() {
                    problems.push(format!(
                        "{k}: only elastic load balancers (type elb) have network interfaces"
                    ));
                }
            }
            continue;
        }
        let Some(network_id) = id else {
            if ip.is_some() || sys.is_some() {
                problems.push(format!("{id_key}: required when {ip_key} or {sys_key} is set"));
            }
            continue;
        };
        let valid_net = network_id == "net-COMMON_GLOBAL"
            || network_id == "net-COMMON_PRIVATE"
            || (network_id.starts_with("net-")
                && network_id.len() > 4
                && network_id[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
        if !valid_net {
            problems.push(format!("{id_key}: {network_id:?} is not a network id (net-…)"));
        }
        let private_lan = !matches!(network_id.as_str(), "net-COMMON_GLOBAL" | "net-COMMON_PRIVATE");
        let ip_address = ip.as_deref().and_then(|ip| {
            let address = match ip {
                "static" => Some(ElbAddress::Static),
                other => other.parse::<Ipv4Addr>().ok().map(ElbAddress::Fixed),
            };
            if !private_lan {
                problems.push(format!("{ip_key}: only interfaces on a private LAN take an address"));
            } else if address.is_none() {
                problems.push(format!("{ip_key}: {ip:?} is not an IPv4 address or \"static\""));
            }
            address
        });
        let mut system_ip_addresses = Vec::new();
        if let Some(sys) = &sys {
            if !private_lan {
                problems.push(format!(
                    "{sys_key}: only interfaces on a private LAN take system addresses"
                ));
            }
            for part in sys.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                match part.parse::<Ipv4Addr>() {
                    Ok(a) => system_ip_addresses.push(a),
                    Err(_) => problems.push(format!("{sys_key}: {part:?} is not an IPv4 address")),
                }
            }
            if system_ip_addresses.len() != 2 {
                problems.push(format!("{sys_key}: exactly two addresses are needed"));
            }
        }
        interfaces.push(ElbInterface {
            network_id,
            ip_address,
            system_ip_addresses,
        });
    }
    let vip = match annotations.get(VIP_NETWORK).map(|v| v.trim()) {
        None | Some("1") => 0,
        Some("2") => 1,
        Some(v) => {
            problems.push(format!("{VIP_NETWORK}: {v:?} is not 1 or 2"));
            0
        }
    };
    if kind == LbKind::L4 && annotations.contains_key(VIP_NETWORK) {
        problems.push(format!(
            "{VIP_NETWORK}: only elastic load balancers (type elb) have a VIP network"
        ));
    }
    if kind == LbKind::Elastic {
        if interfaces.is_empty() {
            interfaces.push(ElbInterface {
                network_id: "net-COMMON_GLOBAL".into(),
                ip_address: None,
                system_ip_addresses: Vec::new(),
            });
        }
        if vip >= interfaces.len() {
            problems.push(format!("{VIP_NETWORK}: interface {} is not configured", vip + 1));
        }
    }
    let vip = vip.min(interfaces.len().saturating_sub(1));
    (interfaces, vip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_without_annotations() {
        let o = parse(&BTreeMap::new(), &LbDefaults::default()).unwrap();
        assert_eq!(o.kind, LbKind::L4);
        assert_eq!(
            (o.balancing, o.hc_unhealthy_threshold, o.hc_interval),
            (BalancingType::RoundRobin, 1, 10)
        );
        assert_eq!(o.hc_protocol, None);
        assert_eq!((o.accounting_type, o.network_volume, o.policy_type), (None, None, None));
        assert!(o.elb_interfaces.is_empty());
        let d = LbDefaults {
            kind: LbKind::Elastic,
            accounting_type: Some(AccountingType::PayPerUse),
            network_volume: Some(100),
        };
        let o = parse(&BTreeMap::new(), &d).unwrap();
        assert_eq!(
            (o.kind, o.accounting_type, o.network_volume),
            (LbKind::Elastic, Some(AccountingType::PayPerUse), Some(100))
        );
        assert_eq!(o.elb_interfaces[0].network_id, "net-COMMON_GLOBAL");
    }

    #[test]
    fn valid_values() {
        let o = parse(
            &ann(&[
                (TYPE, "lb"),
                (NAME, "web01"),
                (ACCOUNTING_TYPE, "2"),
                (NETWORK_VOLUME, "2000"),
                (POLICY_TYPE, "ats"),
                (BALANCING_TYPE, "2"),
                (HC_PROTOCOL, "icmp"),
                (HC_UNHEALTHY_THRESHOLD, "10"),
                (HC_INTERVAL, "300"),
                ("service.beta.kubernetes.io/aws-load-balancer-type", "nlb"),
            ]),
            &LbDefaults::default(),
        )
        .unwrap();
        assert_eq!(o.name.as_deref(), Some("web01"));
        assert_eq!(o.accounting_type, Some(AccountingType::PayPerUse));
        assert_eq!(o.network_volume, Some(2000));
        assert_eq!(o.policy_type, Some(PolicyType::Ats));
        assert_eq!(o.balancing, BalancingType::LeastConnection);
        assert_eq!(o.hc_protocol, Some(HealthCheckProtocol::Icmp));
        assert_eq!((o.hc_unhealthy_threshold, o.hc_interval), (10, 300));
    }

    #[test]
    fn every_invalid_value_is_reported_together() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
        let cases: &[Case<'_>] = &[
            (&[(TYPE, "nlb")], &["is not one of lb, elb"]),
            (&[(NAME, "my-lb")], &["1-15 ASCII"]),
            (&[(NAME, "abcdefghijklmnop")], &["1-15 ASCII"]),
            (&[(ACCOUNTING_TYPE, "3")], &["not 1 (monthly)"]),
            (&[(NETWORK_VOLUME, "50")], &["100-2000"]),
            (&[(NETWORK_VOLUME, "2100")], &["100-2000"]),
            (&[(TYPE, "elb"), (NETWORK_VOLUME, "1000")], &["100-500"]),
            (&[(POLICY_TYPE, "fast")], &["standard or ats"]),
            (&[(TYPE, "elb"), (POLICY_TYPE, "ats")], &["only L4"]),
            (&[(BALANCING_TYPE, "0")], &["round-robin"]),
            (&[(HC_PROTOCOL, "HTTP")], &["TCP or ICMP"]),
            (&[(HC_UNHEALTHY_THRESHOLD, "11")], &["from 1 to 10"]),
            (&[(HC_INTERVAL, "4")], &["from 5 to 300"]),
            (&[(HC_INTERVAL, "ten")], &["from 5 to 300"]),
            (
                &[("service.beta.kubernetes.io/nifcloud-load-balancer-netwrok-volume", "10")],
                &["unknown annotation"],
            ),
            (&[(VIP_NETWORK, "1")], &["only elastic"]),
            (&[(TYPE, "elb"), (VIP_NETWORK, "3")], &["not 1 or 2"]),
            (&[(TYPE, "elb"), (VIP_NETWORK, "2")], &["interface 2 is not configured"]),
            (
                &[
                    (TYPE, "elb"),
                    (
                        "service.beta.kubernetes.io/nifcloud-load-balancer-network-interface-1-network-id",
                        "vpc-1",
                    ),
                ],
                &["not a network id"],
            ),
            (
                &[
                    (TYPE, "elb"),
                    (
                        "service.beta.kubernetes.io/nifcloud-load-balancer-network-interface-1-network-id",
                        "net-COMMON_GLOBAL",
                    ),
                    (
                        "service.beta.kubernetes.io/nifcloud-load-balancer-network-interface-1-ip-address",
                        "10.0.0.1",
                    ),
                ],
                &["only interfaces on a private LAN"],
            ),
            (
                &[
                    (TYPE, "elb"),
                    (
                        "service.beta.kubernetes.io/nifcloud-load-balancer-network-interface-2-network-id",
                        "net-abc",
                    ),
                    (
                        "service.beta.kubernetes.io/nifcloud-load-balancer-network-interface-2-system-ip-addresses",
                        "10.0.0.1,x",
                    ),
                ],
                &["\"x\" is not an IPv4", "exactly two"],
            ),
            (
                &[(
                    "service.beta.kubernetes.io/nifcloud-load-balancer-network-interface-1-network-id",
                    "net-abc",
                )],
                &["only elastic"],
            ),
            // Several at once.
            (
                &[(TYPE, "x"), (HC_INTERVAL, "1"), (BALANCING_TYPE, "9")],
                &["lb, elb", "5 to 300", "round-robin"],
            ),
        ];
        for (pairs, needles) in cases {
            let problems = parse(&ann(pairs), &LbDefaults::default()).expect_err(&format!("{pairs:?}"));
            let text = problems.join("\n");
            for n in *needles {
                assert!(text.contains(n), "{pairs:?}: {text}");
            }
            assert!(problems.len() >= needles.len(), "{pairs:?}: {text}");
        }
    }

    #[test]
    fn elb_interfaces() {
        let o = parse(
            &ann(&[
                (TYPE, "elb"),
                (&network_interface(1, "network-id"), "net-COMMON_GLOBAL"),
                (&network_interface(2, "network-id"), "net-lan01"),
                (&network_interface(2, "ip-address"), "static"),
                (&network_interface(2, "system-ip-addresses"), "192.168.0.2, 192.168.0.3"),
                (VIP_NETWORK, "2"),
            ]),
            &LbDefaults::default(),
        )
        .unwrap();
        assert_eq!(o.elb_interfaces.len(), 2);
        assert_eq!(o.elb_vip_interface, 1);
        assert_eq!(o.elb_interfaces[1].ip_address, Some(ElbAddress::Static));
        assert_eq!(o.elb_interfaces[1].system_ip_addresses.len(), 2);
    }
}
