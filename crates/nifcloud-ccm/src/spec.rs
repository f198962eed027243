//! From a Service to what its load balancer should look like (pure).
//!
//! Health checks by kind and `externalTrafficPolicy`:
//!
//! | kind | policy | `healthcheck-protocol` | check |
//! |---|---|---|---|
//! | any | Cluster | unset or `TCP` / `ICMP` / `HTTP` (ELB) | `TCP:<NodePort>` / `ICMP` / `HTTP:<NodePort>` `/` |
//! | L4 | Local | unset or `TCP` / `ICMP` | `TCP:<healthCheckNodePort>` / `ICMP`; only nodes with a ready endpoint are members |
//! | ELB | Local | unset or `HTTP` | `HTTP:<healthCheckNodePort>` `/healthz`, 2xx expected |
//! | ELB | Local | `TCP` / `ICMP` | as asked, with a Warning Event: such a check passes on every node |
//!
//! kube-proxy listens on `healthCheckNodePort` on every node and answers `/healthz` with 200 where the Service has
//! a ready endpoint, 503 elsewhere. An L4 load balancer can only check TCP or ICMP, which pass on every node, so
//! its members are the nodes with a ready endpoint ([`crate::backend::members`]); an elastic one keeps every node
//! and lets its HTTP check tell them apart.
//!
//! Without a `healthCheckNodePort` (the API server always allocates one for a Local LoadBalancer Service) the
//! traffic NodePort is checked instead, with a Warning Event.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;

use crate::annotations::{self, HealthCheckProtocol, LbDefaults, LbKind, LbOptions};
use crate::model::{HealthCheck, HealthCheckTarget, Listener, Protocol};

/// The standard annotation that lists source ranges when `spec.loadBalancerSourceRanges` is empty.
pub const SOURCE_RANGES_ANNOTATION: &str = "service.beta.kubernetes.io/load-balancer-source-ranges";

/// The filter address meaning "any source".
pub const ANY_SOURCE: &str = "*.*.*.*";

/// The Event reason of warnings about source ranges.
pub const SOURCE_RANGES_REASON: &str = "LoadBalancerSourceRanges";
/// The Event reason of warnings about a health check that does not serve `externalTrafficPolicy: Local`.
pub const LOCAL_HEALTH_CHECK_REASON: &str = "LocalTrafficPolicyHealthCheck";

/// Something the load balancer cannot do as asked, but that does not stop it: a Warning Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The Event reason (CamelCase).
    pub reason: &'static str,
    /// What the user should know, one sentence or two.
    pub message: String,
}

impl Warning {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// What a Service asks of its load balancer, before the backends are known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceLb {
    /// What the annotations (and the cloud config's defaults) say.
    pub options: LbOptions,
    /// `externalTrafficPolicy: Local`: external traffic must only reach nodes with a ready endpoint (kube-proxy
    /// drops it on the others, and keeps the client's source address).
    pub local_traffic_policy: bool,
    /// One listener per Service port, ordered by port and protocol; every listener carries the balancing type and
    /// health check of the options.
    pub listeners: Vec<Listener>,
    /// The allowed sources in NIFCLOUD filter syntax (`a.b.c.d`, `a.b.c.d/n`), or `{"*.*.*.*"}` for any.
    pub filter: BTreeSet<String>,
    /// Things the load balancer cannot express but that do not stop it (each becomes a Warning Event).
    pub warnings: Vec<Warning>,
}

/// The health check protocol of a load balancer of `kind`: what the Service `asked`, else HTTP for an elastic
/// load balancer of a Service with `externalTrafficPolicy: Local` and a `healthCheckNodePort`, else TCP.
pub fn health_check_protocol(
    kind: LbKind,
    local_with_hc_port: bool,
    asked: Option<HealthCheckProtocol>,
) -> HealthCheckProtocol {
    asked.unwrap_or(if kind == LbKind::Elastic && local_with_hc_port {
        HealthCheckProtocol::Http
    } else {
        HealthCheckProtocol::Tcp
    })
}

/// The warning for an elastic load balancer of a Local Service whose annotation asks for a check that passes on
/// every node (TCP or ICMP), if that is the case.
fn ineffective_local_check(kind: LbKind, hc_node_port: i64, asked: Option<HealthCheckProtocol>) -> Option<Warning> {
    let why = match (kind, asked?) {
        (LbKind::Elastic, HealthCheckProtocol::Tcp) => format!(
            "a TCP check connects on every node (kube-proxy listens on healthCheckNodePort {hc_node_port} everywhere)"
        ),
        (LbKind::Elastic, HealthCheckProtocol::Icmp) => "an ICMP check only asks whether a node answers pings".into(),
        _ => return None,
    };
    Some(Warning::new(
        LOCAL_HEALTH_CHECK_REASON,
        format!(
            "externalTrafficPolicy is Local but {} asks for a {} check: {why}, so every node looks healthy and \
             connections reaching a node without a ready endpoint are dropped; remove the annotation (the default \
             is HTTP /healthz on healthCheckNodePort) or set it to HTTP",
            annotations::HC_PROTOCOL,
            if asked == Some(HealthCheckProtocol::Tcp) {
                "TCP"
            } else {
                "ICMP"
            },
        ),
    ))
}

/// Reads the Service. Every problem is reported, one sentence each.
pub fn service_lb(service: &Service, defaults: &LbDefaults) -> Result<ServiceLb, Vec<String>> {
    let empty = BTreeMap::new();
    let ann = service.metadata.annotations.as_ref().unwrap_or(&empty);
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let options = match annotations::parse(ann, defaults) {
        Ok(o) => Some(o),
        Err(p) => {
            problems.extend(p);
            None
        }
    };
    let kind = options.as_ref().map(|o| o.kind).unwrap_or(defaults.kind);
    let spec = service.spec.clone().unwrap_or_default();
    if spec.load_balancer_ip.as_deref().is_some_and(|ip| !ip.is_empty()) {
        problems.push("spec.loadBalancerIP is not supported: NIFCLOUD assigns the VIP".to_owned());
    }
    let local = spec.external_traffic_policy.as_deref() == Some("Local");
    let hc_node_port = spec.health_check_node_port.filter(|p| *p > 0).map(i64::from);
    let asked = options.as_ref().and_then(|o| o.hc_protocol);
    let hc_protocol = health_check_protocol(kind, local && hc_node_port.is_some(), asked);
    match (local, hc_node_port) {
        (true, None) => warnings.push(Warning::new(
            LOCAL_HEALTH_CHECK_REASON,
            "externalTrafficPolicy is Local but healthCheckNodePort is not set: checking the traffic NodePort",
        )),
        (true, Some(port)) => warnings.extend(ineffective_local_check(kind, port, asked)),
        (false, _) => {}
    }
    let ports = spec.ports.unwrap_or_default();
    if ports.is_empty() {
        problems.push("the Service has no ports".to_owned());
    }
    let mut listeners: Vec<Listener> = Vec::new();
    for p in &ports {
        let label = p
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| p.port.to_string());
        let protocol = Protocol::parse(p.protocol.as_deref().unwrap_or("TCP"));
        let allowed = match kind {
            LbKind::L4 => protocol == Protocol::Tcp,
            LbKind::Elastic => matches!(protocol, Protocol::Tcp | Protocol::Udp),
        };
        if !allowed {
            let which = if kind == LbKind::L4 { "TCP" } else { "TCP and UDP" };
            problems.push(format!(
                "port {label}: protocol {protocol} is not supported (only {which})"
            ));
            continue;
        }
        let Some(node_port) = p.node_port.filter(|n| *n > 0).map(i64::from) else {
            problems.push(format!(
                "port {label}: no NodePort (allocateLoadBalancerNodePorts=false is not supported)"
            ));
            continue;
        };
        if listeners
            .iter()
            .any(|l| l.port == i64::from(p.port) && l.protocol == protocol)
        {
            problems.push(format!("port {label}: port {} is listed twice", p.port));
            continue;
        }
        let hc_port = if local {
            hc_node_port.unwrap_or(node_port)
        } else {
            node_port
        };
        let defaults = options.as_ref();
        let (target, path) = match hc_protocol {
            HealthCheckProtocol::Tcp => (HealthCheckTarget::Tcp(hc_port), None),
            HealthCheckProtocol::Icmp => (HealthCheckTarget::Icmp, None),
            HealthCheckProtocol::Http => (
                HealthCheckTarget::Http(hc_port),
                Some(
                    if local && hc_node_port.is_some() {
                        "/healthz"
                    } else {
                        "/"
                    }
                    .to_owned(),
                ),
            ),
        };
        listeners.push(Listener {
            port: i64::from(p.port),
            instance_port: node_port,
            protocol,
            balancing: defaults.map(|o| o.balancing).unwrap_or_default(),
            health_check: HealthCheck {
                target,
                interval: defaults.map_or(10, |o| o.hc_interval),
                unhealthy_threshold: defaults.map_or(1, |o| o.hc_unhealthy_threshold),
                path,
            },
        });
    }
    listeners.sort_by(|a, b| (a.port, &a.protocol).cmp(&(b.port, &b.protocol)));
    let mut ranges: Vec<String> = spec.load_balancer_source_ranges.unwrap_or_default();
    if ranges.is_empty()
        && let Some(v) = ann.get(SOURCE_RANGES_ANNOTATION)
    {
        ranges = v
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
    }
    let filter = source_filter(&ranges, kind, &mut problems, &mut warnings);
    match (options, problems.is_empty()) {
        (Some(options), true) => Ok(ServiceLb {
            options,
            local_traffic_policy: local,
            listeners,
            filter,
            warnings,
        }),
        _ => Err(problems),
    }
}

/// Turns source ranges into NIFCLOUD filter addresses.
fn source_filter(
    ranges: &[String],
    kind: LbKind,
    problems: &mut Vec<String>,
    warnings: &mut Vec<Warning>,
) -> BTreeSet<String> {
    let any: BTreeSet<String> = [ANY_SOURCE.to_owned()].into();
    if ranges.is_empty() {
        return any;
    }
    if kind == LbKind::Elastic {
        problems.push(
            "loadBalancerSourceRanges cannot be enforced by an elastic load balancer (it has no filter); \
             use type lb or remove them"
                .to_owned(),
        );
        return any;
    }
    let mut out = BTreeSet::new();
    let mut ipv6 = Vec::new();
    for r in ranges {
        match parse_cidr(r) {
            Some((IpAddr::V4(ip), prefix)) => {
                if prefix == 0 {
                    return any;
                }
                let bits = u32::from(ip) & (u32::MAX << (32 - u32::from(prefix)));
                let net = std::net::Ipv4Addr::from(bits);
                if net != ip {
                    warnings.push(Warning::new(
                        SOURCE_RANGES_REASON,
                        format!("source range {r}: host bits set, using {net}/{prefix}"),
                    ));
                }
                out.insert(if prefix == 32 {
                    net.to_string()
                } else {
                    format!("{net}/{prefix}")
                });
            }
            Some((IpAddr::V6(_), _)) => ipv6.push(r.clone()),
            None => problems.push(format!("source range {r:?} is not a CIDR")),
        }
    }
    if !ipv6.is_empty() {
        if out.is_empty() {
            problems.push(format!(
                "source ranges {ipv6:?} are IPv6, which the load balancer filter cannot express; \
                 with no IPv4 range left the filter would allow everyone"
            ));
        } else {
            warnings.push(Warning::new(
                SOURCE_RANGES_REASON,
                format!("source ranges {ipv6:?} are IPv6, which the load balancer filter cannot express; ignored"),
            ));
        }
    }
    out
}

fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, prefix) = match s.trim().split_once('/') {
        Some((ip, p)) => (ip.parse::<IpAddr>().ok()?, p.parse::<u8>().ok()?),
        None => {
            let ip = s.trim().parse::<IpAddr>().ok()?;
            (ip, if ip.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some((ip, prefix))
}

/// Test helpers shared by this crate's unit tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};

    pub(crate) fn svc(ports: &[(i32, i32)], ann: &[(&str, &str)]) -> Service {
        let mut s = Service::default();
        s.metadata.name = Some("web".into());
        s.metadata.namespace = Some("default".into());
        s.metadata.uid = Some("0f3c1d2e-aaaa-bbbb-cccc-1234567890ab".into());
        s.metadata.annotations = Some(ann.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        s.spec = Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ports: Some(
                ports
                    .iter()
                    .map(|(p, np)| ServicePort {
                        port: *p,
                        node_port: Some(*np),
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        });
        s
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::svc;
    use super::*;
    use crate::annotations as a;
    use k8s_openapi::api::core::v1::ServicePort;

    #[test]
    fn listeners_and_health_checks() {
        let s = svc(&[(443, 30443), (80, 30080)], &[]);
        let lb = service_lb(&s, &LbDefaults::default()).unwrap();
        let got: Vec<(i64, i64, String)> = lb
            .listeners
            .iter()
            .map(|l| (l.port, l.instance_port, l.health_check.target.to_string()))
            .collect();
        assert_eq!(
            got,
            vec![(80, 30080, "TCP:30080".into()), (443, 30443, "TCP:30443".into())]
        );
        let hc = &lb.listeners[0].health_check;
        assert_eq!((hc.interval, hc.unhealthy_threshold, hc.path.as_deref()), (10, 1, None));
        assert_eq!(lb.filter, [ANY_SOURCE.to_owned()].into());

        let mut local = svc(&[(80, 30080)], &[(a::HC_PROTOCOL, "TCP")]);
        let spec = local.spec.as_mut().unwrap();
        spec.external_traffic_policy = Some("Local".into());
        spec.health_check_node_port = Some(32000);
        let lb = service_lb(&local, &LbDefaults::default()).unwrap();
        assert_eq!(lb.listeners[0].health_check.target, HealthCheckTarget::Tcp(32000));

        let icmp = svc(&[(80, 30080)], &[(a::HC_PROTOCOL, "ICMP")]);
        assert_eq!(
            service_lb(&icmp, &LbDefaults::default()).unwrap().listeners[0]
                .health_check
                .target,
            HealthCheckTarget::Icmp
        );

        let mut http = svc(&[(80, 30080)], &[(a::TYPE, "elb"), (a::HC_PROTOCOL, "HTTP")]);
        let spec = http.spec.as_mut().unwrap();
        spec.external_traffic_policy = Some("Local".into());
        spec.health_check_node_port = Some(32001);
        let hc = &service_lb(&http, &LbDefaults::default()).unwrap().listeners[0].health_check;
        assert_eq!(
            (&hc.target, hc.path.as_deref()),
            (&HealthCheckTarget::Http(32001), Some("/healthz"))
        );
    }

    #[test]
    fn health_checks_by_kind_and_traffic_policy_table() {
        // (what, kind, policy, healthCheckNodePort, healthcheck-protocol, target, path, warning reasons)
        type Row<'a> = (
            &'a str,
            &'a str,
            &'a str,
            Option<i32>,
            Option<&'a str>,
            &'a str,
            Option<&'a str>,
            &'a [&'a str],
        );
        let table: Vec<Row<'_>> = vec![
            ("L4 Cluster", "lb", "Cluster", None, None, "TCP:30080", None, &[]),
            (
                "L4 Cluster ICMP",
                "lb",
                "Cluster",
                None,
                Some("ICMP"),
                "ICMP",
                None,
                &[],
            ),
            (
                "L4 Local: TCP on healthCheckNodePort",
                "lb",
                "Local",
                Some(32000),
                None,
                "TCP:32000",
                None,
                &[],
            ),
            (
                "L4 Local, TCP asked: members do the filtering",
                "lb",
                "Local",
                Some(32000),
                Some("TCP"),
                "TCP:32000",
                None,
                &[],
            ),
            (
                "L4 Local ICMP",
                "lb",
                "Local",
                Some(32000),
                Some("ICMP"),
                "ICMP",
                None,
                &[],
            ),
            (
                "L4 Local without healthCheckNodePort",
                "lb",
                "Local",
                None,
                None,
                "TCP:30080",
                None,
                &[LOCAL_HEALTH_CHECK_REASON],
            ),
            ("ELB Cluster", "elb", "Cluster", None, None, "TCP:30080", None, &[]),
            (
                "ELB Cluster HTTP asked",
                "elb",
                "Cluster",
                None,
                Some("HTTP"),
                "HTTP:30080",
                Some("/"),
                &[],
            ),
            (
                "ELB Local: HTTP /healthz by default",
                "elb",
                "Local",
                Some(32000),
                None,
                "HTTP:32000",
                Some("/healthz"),
                &[],
            ),
            (
                "ELB Local, HTTP asked",
                "elb",
                "Local",
                Some(32000),
                Some("http"),
                "HTTP:32000",
                Some("/healthz"),
                &[],
            ),
            (
                "ELB Local, TCP asked: it wins, warned",
                "elb",
                "Local",
                Some(32000),
                Some("TCP"),
                "TCP:32000",
                None,
                &[LOCAL_HEALTH_CHECK_REASON],
            ),
            (
                "ELB Local, ICMP asked: it wins, warned",
                "elb",
                "Local",
                Some(32000),
                Some("ICMP"),
                "ICMP",
                None,
                &[LOCAL_HEALTH_CHECK_REASON],
            ),
            (
                "ELB Local without healthCheckNodePort",
                "elb",
                "Local",
                None,
                None,
                "TCP:30080",
                None,
                &[LOCAL_HEALTH_CHECK_REASON],
            ),
        ];
        for (what, kind, policy, hc_port, asked, target, path, reasons) in table {
            let mut ann = vec![(a::TYPE, kind)];
            ann.extend(asked.map(|p| (a::HC_PROTOCOL, p)));
            let mut s = svc(&[(80, 30080)], &ann);
            let spec = s.spec.as_mut().unwrap();
            spec.external_traffic_policy = Some(policy.into());
            spec.health_check_node_port = hc_port;
            let lb = service_lb(&s, &LbDefaults::default()).unwrap();
            let hc = &lb.listeners[0].health_check;
            assert_eq!(
                (hc.target.to_string().as_str(), hc.path.as_deref()),
                (target, path),
                "{what}"
            );
            let got: Vec<&str> = lb.warnings.iter().map(|w| w.reason).collect();
            assert_eq!(got, reasons, "{what}: {:?}", lb.warnings);
            assert_eq!(lb.local_traffic_policy, policy == "Local", "{what}");
        }
        let mut tcp = svc(&[(80, 30080)], &[(a::TYPE, "elb"), (a::HC_PROTOCOL, "TCP")]);
        let spec = tcp.spec.as_mut().unwrap();
        spec.external_traffic_policy = Some("Local".into());
        spec.health_check_node_port = Some(32000);
        let warning = &service_lb(&tcp, &LbDefaults::default()).unwrap().warnings[0].message;
        for needle in ["TCP check", "32000", "every node looks healthy", "HTTP"] {
            assert!(warning.contains(needle), "{needle}: {warning}");
        }
    }

    #[test]
    fn source_ranges_become_filters() {
        let cases: &[(&[&str], &[&str], usize)] = &[
            (&["10.0.0.5/32"], &["10.0.0.5"], 0),
            (&["10.0.0.0/8", "192.168.1.7"], &["10.0.0.0/8", "192.168.1.7"], 0),
            (&["10.1.2.3/16"], &["10.1.0.0/16"], 1),
            (&["0.0.0.0/0", "10.0.0.0/8"], &[ANY_SOURCE], 0),
            (&["10.0.0.0/8", "2001:db8::/32"], &["10.0.0.0/8"], 1),
        ];
        for (ranges, want, nwarn) in cases {
            let mut s = svc(&[(80, 30080)], &[]);
            s.spec.as_mut().unwrap().load_balancer_source_ranges = Some(ranges.iter().map(|r| r.to_string()).collect());
            let lb = service_lb(&s, &LbDefaults::default()).unwrap();
            let want: BTreeSet<String> = want.iter().map(|w| w.to_string()).collect();
            assert_eq!(lb.filter, want, "{ranges:?}");
            assert_eq!(lb.warnings.len(), *nwarn, "{ranges:?}: {:?}", lb.warnings);
        }
        // The annotation form.
        let s = svc(&[(80, 30080)], &[(SOURCE_RANGES_ANNOTATION, "1.2.3.4/32, 5.6.7.0/24")]);
        let lb = service_lb(&s, &LbDefaults::default()).unwrap();
        assert_eq!(lb.filter, ["1.2.3.4".to_owned(), "5.6.7.0/24".to_owned()].into());
    }

    #[test]
    fn problems_are_reported_together() {
        let mut s = svc(&[(80, 30080), (80, 30081)], &[(a::HC_INTERVAL, "1")]);
        let spec = s.spec.as_mut().unwrap();
        spec.load_balancer_ip = Some("1.2.3.4".into());
        spec.load_balancer_source_ranges = Some(vec!["2001:db8::/32".into(), "bogus".into()]);
        spec.ports.as_mut().unwrap().push(ServicePort {
            port: 53,
            protocol: Some("UDP".into()),
            node_port: Some(30053),
            ..Default::default()
        });
        spec.ports.as_mut().unwrap().push(ServicePort {
            port: 81,
            node_port: None,
            ..Default::default()
        });
        let problems = service_lb(&s, &LbDefaults::default()).unwrap_err().join("\n");
        for needle in [
            "from 5 to 300",
            "loadBalancerIP",
            "listed twice",
            "UDP is not supported",
            "no NodePort",
            "is not a CIDR",
            "allow everyone",
        ] {
            assert!(problems.contains(needle), "{needle}: {problems}");
        }
        let mut elb = svc(&[(80, 30080)], &[(a::TYPE, "elb")]);
        elb.spec.as_mut().unwrap().load_balancer_source_ranges = Some(vec!["10.0.0.0/8".into()]);
        assert!(service_lb(&elb, &LbDefaults::default()).unwrap_err()[0].contains("elastic"));
        let empty = svc(&[], &[]);
        assert!(service_lb(&empty, &LbDefaults::default()).unwrap_err()[0].contains("no ports"));
    }
}
