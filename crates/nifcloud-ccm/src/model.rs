//! The vocabulary both load-balancer kinds share: listeners, health checks, and the codes NIFCLOUD sends as
//! strings or integers, turned into enums where they come in (the SDK's replies, the annotations, the cloud config)
//! so that nothing later compares `"1"` or `"in-use"` (pure).

use std::collections::BTreeSet;
use std::fmt;

/// The two ports that identify a listener of an L4 load balancer (its "port pair"): NIFCLOUD addresses every
/// per-listener call by both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortPair {
    /// `LoadBalancerPort`: the port clients connect to on the VIP (the Service port).
    pub port: i64,
    /// `InstancePort`: the port traffic is sent to on each server (the Service's NodePort).
    pub instance_port: i64,
}

/// What identifies a listener of an elastic load balancer: both ports and the protocol. Every per-listener call
/// sends all three.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListenerKey {
    /// `ElasticLoadBalancerPort`, the port on the VIP.
    pub port: i64,
    /// `InstancePort`, the NodePort on each server.
    pub instance_port: i64,
    /// `Protocol`: TCP or UDP for the listeners of Services.
    pub protocol: Protocol,
}

/// A listener's protocol. L4 load balancers only carry TCP; elastic ones TCP or UDP for Services (HTTP and
/// HTTPS can be seen on load balancers made by other tools).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// `TCP`.
    Tcp,
    /// `UDP`.
    Udp,
    /// `HTTP` (elastic only, never created here).
    Http,
    /// `HTTPS` (elastic only, never created here).
    Https,
    /// Any other value the API reported, upper-cased.
    Other(String),
}

impl Protocol {
    /// Reads a protocol name, ignoring case (Kubernetes and NIFCLOUD both write upper case).
    pub fn parse(value: &str) -> Self {
        match value.trim().to_ascii_uppercase().as_str() {
            "TCP" => Self::Tcp,
            "UDP" => Self::Udp,
            "HTTP" => Self::Http,
            "HTTPS" => Self::Https,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The wire value (`TCP`, `UDP`, …).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Http => "HTTP",
            Self::Https => "HTTPS",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a listener spreads connections over its servers (`BalancingType` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BalancingType {
    /// `1`: round-robin, the API's default.
    #[default]
    RoundRobin,
    /// `2`: least connection.
    LeastConnection,
    /// A code this provider does not know, as the API reported it.
    Other(i64),
}

impl BalancingType {
    /// Reads the wire code; a missing one is the API's default, round-robin.
    pub fn from_code(code: Option<i64>) -> Self {
        match code {
            None | Some(1) => Self::RoundRobin,
            Some(2) => Self::LeastConnection,
            Some(other) => Self::Other(other),
        }
    }

    /// Reads the annotation value `1` or `2`; `None` for anything else.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "1" => Some(Self::RoundRobin),
            "2" => Some(Self::LeastConnection),
            _ => None,
        }
    }

    /// The wire code.
    pub fn code(self) -> i64 {
        match self {
            Self::RoundRobin => 1,
            Self::LeastConnection => 2,
            Self::Other(c) => c,
        }
    }
}

/// How a load balancer is billed (`AccountingType`: `1` or `2` on the wire). A change applies from next month,
/// which the API reports as `NextMonthAccountingType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountingType {
    /// `1`: a monthly flat rate.
    Monthly,
    /// `2`: pay per use.
    PayPerUse,
}

impl AccountingType {
    /// Reads `1` or `2`; `None` for anything else (a missing or unknown value in a reply).
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "1" => Some(Self::Monthly),
            "2" => Some(Self::PayPerUse),
            _ => None,
        }
    }

    /// The wire code.
    pub fn code(self) -> i64 {
        match self {
            Self::Monthly => 1,
            Self::PayPerUse => 2,
        }
    }
}

/// How a load balancer is billed, as observed: a change of accounting type applies from next month.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Billing {
    /// `AccountingType`: this month.
    pub current: Option<AccountingType>,
    /// `NextMonthAccountingType`: from next month (differs from `current` while a change is pending).
    pub next_month: Option<AccountingType>,
}

impl Billing {
    /// Reads the two wire values (a missing or unknown one is `None`).
    pub fn from_wire(current: Option<&str>, next_month: Option<&str>) -> Self {
        Self {
            current: current.and_then(AccountingType::parse),
            next_month: next_month.and_then(AccountingType::parse),
        }
    }

    /// The accounting type to request, if any: `desired` unless the load balancer already bills by it, or will
    /// from next month (a change already pending is not sent again).
    pub fn change_to(&self, desired: Option<AccountingType>) -> Option<AccountingType> {
        desired.filter(|want| self.next_month.or(self.current) != Some(*want))
    }
}

/// The traffic policy of an L4 load balancer (`PolicyType`); chosen at creation, never changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyType {
    /// `standard`.
    Standard,
    /// `ats`: keeps client IP addresses for the servers.
    Ats,
}

impl PolicyType {
    /// Reads `standard` or `ats`; `None` for anything else.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "standard" => Some(Self::Standard),
            "ats" => Some(Self::Ats),
            _ => None,
        }
    }

    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Ats => "ats",
        }
    }
}

/// Whether an L4 listener's source filter lists the addresses that may connect or those that may not
/// (`FilterType`: `1` or `2` on the wire).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum FilterType {
    /// `1` (and the API's default when none is reported): only the listed addresses may connect.
    #[default]
    Allow,
    /// `2`: the listed addresses may not connect.
    Deny,
    /// A value this provider does not know, as the API reported it.
    Other(String),
}

impl FilterType {
    /// Reads the wire value; a missing one is the API's default, allow.
    pub fn from_wire(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            None | Some("1") => Self::Allow,
            Some("2") => Self::Deny,
            Some(other) => Self::Other(other.to_owned()),
        }
    }

    /// The wire value.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Allow => "1",
            Self::Deny => "2",
            Self::Other(s) => s,
        }
    }
}

/// What a health check probes, as NIFCLOUD writes it: `TCP:<port>`, `ICMP` or `HTTP:<port>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthCheckTarget {
    /// `TCP:<port>`: a TCP connection to this port of each server.
    Tcp(i64),
    /// `ICMP`: a ping of each server.
    Icmp,
    /// `HTTP:<port>`: an HTTP request to this port (elastic load balancers only); the path is separate.
    Http(i64),
    /// A target this provider does not write, as reported, or empty when none was reported.
    Other(String),
}

impl Default for HealthCheckTarget {
    fn default() -> Self {
        Self::Other(String::new())
    }
}

impl HealthCheckTarget {
    /// Reads a wire target.
    pub fn parse(value: &str) -> Self {
        let value = value.trim();
        let port = |p: &str| p.parse::<i64>().ok();
        match value.split_once(':') {
            None if value.eq_ignore_ascii_case("ICMP") => Self::Icmp,
            Some((proto, p)) if proto.eq_ignore_ascii_case("TCP") && port(p).is_some() => {
                Self::Tcp(port(p).unwrap_or_default())
            }
            Some((proto, p)) if proto.eq_ignore_ascii_case("HTTP") && port(p).is_some() => {
                Self::Http(port(p).unwrap_or_default())
            }
            _ => Self::Other(value.to_owned()),
        }
    }

    /// The port probed, for TCP and HTTP checks.
    pub fn port(&self) -> Option<i64> {
        match self {
            Self::Tcp(p) | Self::Http(p) => Some(*p),
            Self::Icmp | Self::Other(_) => None,
        }
    }
}

impl fmt::Display for HealthCheckTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(p) => write!(f, "TCP:{p}"),
            Self::Icmp => f.write_str("ICMP"),
            Self::Http(p) => write!(f, "HTTP:{p}"),
            Self::Other(s) => f.write_str(s),
        }
    }
}

/// A listener's health check: how the load balancer decides which servers get traffic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthCheck {
    /// What is probed.
    pub target: HealthCheckTarget,
    /// Seconds between two probes of a server (`Interval`, 5-300).
    pub interval: i64,
    /// How many failed probes in a row take a server out of rotation (`UnhealthyThreshold`, 1-10).
    pub unhealthy_threshold: i64,
    /// The request path of an HTTP check; `None` for other checks (and when the API reports an empty one).
    pub path: Option<String>,
}

/// One listener: a port on the VIP forwarded to a port of every member server. The same model describes what a
/// Service asks for and, inside the observed models, what a load balancer has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    /// The port on the VIP (the Service port).
    pub port: i64,
    /// The port on each server (the Service's NodePort).
    pub instance_port: i64,
    /// TCP (the only one of L4 load balancers), or UDP on an elastic one.
    pub protocol: Protocol,
    /// How connections are spread over the servers.
    pub balancing: BalancingType,
    /// How servers are checked.
    pub health_check: HealthCheck,
}

impl Listener {
    /// The L4 identity of this listener.
    pub fn ports(&self) -> PortPair {
        PortPair {
            port: self.port,
            instance_port: self.instance_port,
        }
    }

    /// The elastic identity of this listener.
    pub fn key(&self) -> ListenerKey {
        ListenerKey {
            port: self.port,
            instance_port: self.instance_port,
            protocol: self.protocol.clone(),
        }
    }
}

/// Desired listeners paired with observed ones (see [`pair_listeners`]).
#[derive(Debug)]
pub struct Pairing<'a, O> {
    /// Every desired listener in the desired order, with the observed listener that becomes it (`None`: a new one
    /// must be added).
    pub pairs: Vec<(&'a Listener, Option<&'a O>)>,
    /// Observed listeners nothing desired maps to: to be deleted (last, so a load balancer never loses its last
    /// listener while others are still to come).
    pub surplus: Vec<&'a O>,
}

/// Pairs desired listeners with observed ones so that as few as possible are deleted and re-added: first those
/// with the same ports and protocol, then those with the same VIP port and protocol (changed in place), then any
/// remaining one in order (also changed in place).
pub fn pair_listeners<'a, O: AsRef<Listener>>(desired: &'a [Listener], observed: &'a [O]) -> Pairing<'a, O> {
    let mut surplus: Vec<&O> = observed.iter().collect();
    let mut pairs: Vec<(usize, &Listener, Option<&O>)> = Vec::new();
    let mut take = |rule: &dyn Fn(&Listener, &Listener) -> bool, open: Vec<(usize, &'a Listener)>| {
        let mut rest = Vec::new();
        for (i, w) in open {
            match surplus.iter().position(|o| rule(w, o.as_ref())) {
                Some(at) => pairs.push((i, w, Some(surplus.remove(at)))),
                None => rest.push((i, w)),
            }
        }
        rest
    };
    let open: Vec<(usize, &Listener)> = desired.iter().enumerate().collect();
    let open = take(&|w, o| w.key() == o.key(), open);
    let open = take(&|w, o| w.port == o.port && w.protocol == o.protocol, open);
    let open = take(&|_, _| true, open);
    pairs.extend(open.into_iter().map(|(i, w)| (i, w, None)));
    pairs.sort_by_key(|(i, _, _)| *i);
    Pairing {
        pairs: pairs.into_iter().map(|(_, w, o)| (w, o)).collect(),
        surplus,
    }
}

/// The member servers to register and to deregister to turn `observed` into `desired`.
pub fn member_changes<T: Ord + AsRef<str>>(
    desired: &BTreeSet<T>,
    observed: &BTreeSet<T>,
) -> (Vec<String>, Vec<String>) {
    (
        desired.difference(observed).map(|m| m.as_ref().to_owned()).collect(),
        observed.difference(desired).map(|m| m.as_ref().to_owned()).collect(),
    )
}

/// Listeners for the planners' table tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A TCP health check of `port`.
    pub(crate) fn tcp_check(port: i64, interval: i64, unhealthy_threshold: i64) -> HealthCheck {
        HealthCheck {
            target: HealthCheckTarget::Tcp(port),
            interval,
            unhealthy_threshold,
            path: None,
        }
    }

    /// A round-robin TCP listener from `port` to `instance_port`, checked every 10 s on `instance_port`.
    pub(crate) fn tcp_listener(port: i64, instance_port: i64) -> Listener {
        Listener {
            port,
            instance_port,
            protocol: Protocol::Tcp,
            balancing: BalancingType::RoundRobin,
            health_check: tcp_check(instance_port, 10, 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(port: i64, instance_port: i64, protocol: Protocol) -> Listener {
        Listener {
            protocol,
            ..tests_support::tcp_listener(port, instance_port)
        }
    }

    impl AsRef<Listener> for Listener {
        fn as_ref(&self) -> &Listener {
            self
        }
    }

    #[test]
    fn wire_values_parse_and_print_back() {
        for (wire, want) in [
            ("TCP:30080", HealthCheckTarget::Tcp(30080)),
            ("icmp", HealthCheckTarget::Icmp),
            ("HTTP:80", HealthCheckTarget::Http(80)),
            ("", HealthCheckTarget::Other(String::new())),
            ("TCP:x", HealthCheckTarget::Other("TCP:x".into())),
        ] {
            assert_eq!(HealthCheckTarget::parse(wire), want, "{wire}");
        }
        assert_eq!(HealthCheckTarget::Tcp(1).to_string(), "TCP:1");
        assert_eq!(Protocol::parse("udp"), Protocol::Udp);
        assert_eq!(Protocol::parse("sctp"), Protocol::Other("SCTP".into()));
        assert_eq!(BalancingType::from_code(None), BalancingType::RoundRobin);
        assert_eq!(BalancingType::from_code(Some(7)).code(), 7);
        assert_eq!(FilterType::from_wire(None), FilterType::Allow);
        assert_eq!(FilterType::from_wire(Some("2")), FilterType::Deny);
        assert_eq!(AccountingType::parse("2"), Some(AccountingType::PayPerUse));
        assert_eq!(AccountingType::parse(""), None);
    }

    #[test]
    fn accounting_changes_are_not_repeated() {
        use AccountingType::{Monthly, PayPerUse};
        let cases = [
            (None, Some(Monthly), None, None),
            (Some(PayPerUse), Some(Monthly), None, Some(PayPerUse)),
            (Some(PayPerUse), Some(Monthly), Some(PayPerUse), None),
            (Some(Monthly), Some(Monthly), Some(PayPerUse), Some(Monthly)),
            (Some(Monthly), None, None, Some(Monthly)),
        ];
        for (want, current, next_month, change) in cases {
            let billing = Billing { current, next_month };
            assert_eq!(billing.change_to(want), change, "{want:?} {billing:?}");
        }
        assert_eq!(
            Billing::from_wire(Some("1"), Some("")),
            Billing {
                current: Some(Monthly),
                next_month: None
            }
        );
    }

    #[test]
    fn listeners_pair_by_identity_then_port_then_order() {
        let tcp = |p, i| listener(p, i, Protocol::Tcp);
        let have = vec![tcp(80, 30080), tcp(443, 30443), tcp(8080, 30880)];
        let want = vec![tcp(22, 30022), tcp(80, 31080), tcp(443, 30443)];
        let p = pair_listeners(&want, &have);
        let got: Vec<(i64, Option<i64>)> = p.pairs.iter().map(|(w, o)| (w.port, o.map(|o| o.port))).collect();
        assert_eq!(got, vec![(22, Some(8080)), (80, Some(80)), (443, Some(443))]);
        assert!(p.surplus.is_empty());
        let p = pair_listeners(&want[..1], &have[..0]);
        assert_eq!(p.pairs[0].1, None);
        let p = pair_listeners(&want[..0], &have);
        assert_eq!(p.surplus.len(), 3);
        // The protocol is part of the identity.
        let udp = [listener(80, 30080, Protocol::Udp)];
        let p = pair_listeners(&udp, &have[..1]);
        assert_eq!(
            p.pairs[0].1.map(|o| &o.protocol),
            Some(&Protocol::Tcp),
            "changed in place"
        );
    }
}
