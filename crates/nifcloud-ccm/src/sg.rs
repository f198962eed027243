//! Opt-in security-group (firewall) rules that admit load-balancer traffic and health checks to the NodePorts.
//!
//! With `securityGroup.manageRules: true`, every Service's load balancer gets, in the nodes' security group
//! (`securityGroup.groupName`, else the one group all its backend servers share), these `IN` rules
//! ([`desired_rules`]):
//! - traffic: per listener, its protocol (TCP/UDP) to its NodePort (from = to) from the VIP `/32`, where
//!   NIFCLOUD's documentation says client traffic comes from;
//! - health checks: per listener, from the VIP and every other address the load balancer checks from
//!   ([`crate::backend::Backend::health_check_sources`]: an elastic load balancer's system IP addresses, as read
//!   from it, whether given by annotation or assigned by NIFCLOUD), each `/32`: TCP to the port a `TCP:` or
//!   `HTTP:` check probes (the NodePort, or `healthCheckNodePort` under `externalTrafficPolicy: Local`), or ICMP
//!   (no port) for an `ICMP` check.
//!
//! The system IP addresses get only the health-check rules: what the checks probe (with a `TCP:<NodePort>` check,
//! that NodePort over TCP), never a listener's traffic as such. Each rule's description is
//! `k8s lb <load balancer name>`, which is how this provider finds its own rules; rules with any other description
//! are never touched. When the Service goes, its rules are revoked.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

use cloudprovider::k8s_openapi::api::core::v1::Service;
use nifcloud_cloud::{CloudError, Instance};
use nifcloud_sdk::ToCompactString;
use nifcloud_sdk::types::{
    AuthorizeSecurityGroupIngressRequest, DescribeSecurityGroupsRequest, RequestIpPermissions,
    RequestIpPermissionsOfRevokeSecurityGroupIngress, RequestIpRanges, RevokeSecurityGroupIngressRequest,
};

use crate::call::{AlreadyDone, answer};
use crate::context::Context;
use crate::error::Error;
use crate::model::{HealthCheckTarget, Protocol};
use crate::spec::ServiceLb;

/// The protocol of a rule (`IpProtocol`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RuleProtocol {
    /// `TCP`: a listener's traffic, a TCP or HTTP health check.
    Tcp,
    /// `UDP`: a listener's traffic.
    Udp,
    /// `ICMP`: an ICMP health check; such a rule has no port.
    Icmp,
    /// Any other value the API reported on a rule with our description, upper-cased (only ever revoked).
    Other(String),
}

impl RuleProtocol {
    /// Reads a wire value, ignoring case.
    pub fn parse(value: &str) -> Self {
        match value.trim().to_ascii_uppercase().as_str() {
            "TCP" => Self::Tcp,
            "UDP" => Self::Udp,
            "ICMP" => Self::Icmp,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The wire value.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
            Self::Icmp => "ICMP",
            Self::Other(s) => s,
        }
    }
}

impl From<&Protocol> for RuleProtocol {
    fn from(p: &Protocol) -> Self {
        Self::parse(p.as_str())
    }
}

impl fmt::Display for RuleProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `IN` rule: traffic of `protocol` (to `port`) of the nodes from `source`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rule {
    /// TCP or UDP (a listener), TCP (a TCP or HTTP health check) or ICMP (an ICMP health check).
    pub protocol: RuleProtocol,
    /// The port (from = to): a NodePort or the health-check port; `None` for ICMP, which has none on the wire.
    pub port: Option<i64>,
    /// The source CIDR: the VIP's or a system IP address's `/32`.
    pub source: String,
}

impl Rule {
    /// A TCP or UDP rule to `port`.
    fn on_port(protocol: RuleProtocol, port: i64, source: &str) -> Self {
        Self {
            protocol,
            port: Some(port),
            source: source.to_owned(),
        }
    }

    /// An ICMP rule.
    fn icmp(source: &str) -> Self {
        Self {
            protocol: RuleProtocol::Icmp,
            port: None,
            source: source.to_owned(),
        }
    }
}

/// The description marking the rules of load balancer `name`.
pub fn rule_description(name: &str) -> String {
    format!("k8s lb {name}")
}

/// The rules a Service's load balancer with `vip` needs, its health checks coming from the VIP and
/// `health_check_sources` (IPv4 addresses; anything else is skipped: a rule's source is a `/32`).
pub fn desired_rules(lb: &ServiceLb, vip: &str, health_check_sources: &[String]) -> BTreeSet<Rule> {
    let traffic = format!("{vip}/32");
    let checkers: BTreeSet<String> = std::iter::once(traffic.clone())
        .chain(
            health_check_sources
                .iter()
                .filter_map(|a| a.trim().parse::<Ipv4Addr>().ok())
                .map(|a| format!("{a}/32")),
        )
        .collect();
    let mut out = BTreeSet::new();
    for l in &lb.listeners {
        out.insert(Rule::on_port(
            RuleProtocol::from(&l.protocol),
            l.instance_port,
            &traffic,
        ));
        for source in &checkers {
            match &l.health_check.target {
                HealthCheckTarget::Tcp(port) | HealthCheckTarget::Http(port) => {
                    out.insert(Rule::on_port(RuleProtocol::Tcp, *port, source));
                }
                HealthCheckTarget::Icmp => {
                    out.insert(Rule::icmp(source));
                }
                HealthCheckTarget::Other(_) => {}
            }
        }
    }
    out
}

/// (rules to add, rules to remove).
pub fn diff(desired: &BTreeSet<Rule>, observed: &BTreeSet<Rule>) -> (Vec<Rule>, Vec<Rule>) {
    (
        desired.difference(observed).cloned().collect(),
        observed.difference(desired).cloned().collect(),
    )
}

/// Our rules in each group: (group, rules with our description).
async fn observe(ctx: &Context, groups: Vec<String>, name: &str) -> Result<Vec<(String, BTreeSet<Rule>)>, Error> {
    let desc = rule_description(name);
    let reply = ctx
        .client
        .describe_security_groups(DescribeSecurityGroupsRequest {
            group_name: groups.into_iter().map(Into::into).collect(),
            ..Default::default()
        })
        .await
        .map_err(CloudError::wrap("DescribeSecurityGroups", "security groups"))
        .map_err(|source| Error::ReadSecurityGroups {
            name: name.to_owned(),
            source,
        })?;
    Ok(reply
        .security_group_info
        .iter()
        .filter_map(|g| {
            let group = String::from(g.group_name.as_deref()?);
            let rules = g
                .ip_permissions
                .iter()
                .filter(|p| p.description.as_deref() == Some(desc.as_str()))
                .filter(|p| p.in_out.as_deref().is_none_or(|d| d == "IN"))
                .flat_map(|p| {
                    let protocol = RuleProtocol::parse(p.ip_protocol.as_deref().unwrap_or_default());
                    // An ICMP rule has no port, whatever a reply may say.
                    let port = p.from_port.filter(|_| protocol != RuleProtocol::Icmp);
                    p.ip_ranges.iter().filter_map(move |r| {
                        r.cidr_ip.as_deref().map(|c| Rule {
                            protocol: protocol.clone(),
                            port,
                            source: c.to_owned(),
                        })
                    })
                })
                .collect();
            Some((group, rules))
        })
        .collect())
}

async fn apply(ctx: &Context, group: &str, name: &str, add: &[Rule], remove: &[Rule]) -> Result<(), Error> {
    let resource = format!("security group {group}");
    let ranges = |r: &Rule| {
        vec![RequestIpRanges {
            cidr_ip: Some(r.source.as_str().into()),
        }]
    };
    let failed = |source| Error::ChangeSecurityGroup {
        name: name.to_owned(),
        group: group.to_owned(),
        source,
    };
    if !add.is_empty() {
        let req = AuthorizeSecurityGroupIngressRequest {
            group_name: Some(group.into()),
            ip_permissions: add
                .iter()
                .map(|r| RequestIpPermissions {
                    ip_protocol: Some(r.protocol.to_compact_string()),
                    from_port: r.port,
                    to_port: r.port,
                    in_out: Some("IN".into()),
                    ip_ranges: ranges(r),
                    description: Some(rule_description(name).into()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let reply = ctx.client.authorize_security_group_ingress(req).await;
        answer("AuthorizeSecurityGroupIngress", &resource, reply, AlreadyDone::IfExists).map_err(failed)?;
    }
    if !remove.is_empty() {
        let req = RevokeSecurityGroupIngressRequest {
            group_name: Some(group.into()),
            ip_permissions: remove
                .iter()
                .map(|r| RequestIpPermissionsOfRevokeSecurityGroupIngress {
                    ip_protocol: Some(r.protocol.to_compact_string()),
                    from_port: r.port,
                    to_port: r.port,
                    in_out: Some("IN".into()),
                    ip_ranges: ranges(r),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let reply = ctx.client.revoke_security_group_ingress(req).await;
        answer("RevokeSecurityGroupIngress", &resource, reply, AlreadyDone::IfNotFound).map_err(failed)?;
    }
    Ok(())
}

/// Makes the nodes' security group admit the load balancer `name` (VIP `vip`, checking its members also from
/// `health_check_sources`) to the Service's NodePorts: [`desired_rules`].
pub async fn ensure_rules(
    ctx: &Context,
    svc: &Service,
    name: &str,
    lb: &ServiceLb,
    members: &[Instance],
    vip: &str,
    health_check_sources: &[String],
) -> Result<(), Error> {
    let Some(cfg) = &ctx.settings.security_group else {
        return Ok(());
    };
    let group = match &cfg.group_name {
        Some(g) => g.clone(),
        None => {
            let groups: BTreeSet<&String> = members.iter().flat_map(|m| m.security_groups.iter()).collect();
            match groups.into_iter().collect::<Vec<_>>().as_slice() {
                [one] => (*one).clone(),
                [] => {
                    ctx.warn(
                        svc,
                        "SecurityGroupRulesSkipped",
                        "no backend server is in a security group; no rules added".to_owned(),
                    )
                    .await;
                    return Ok(());
                }
                many => {
                    ctx.warn(
                        svc,
                        "SecurityGroupRulesSkipped",
                        format!("backend servers are in several security groups {many:?}; set securityGroup.groupName"),
                    )
                    .await;
                    return Ok(());
                }
            }
        }
    };
    let desired = desired_rules(lb, vip, health_check_sources);
    let observed = observe(ctx, vec![group.clone()], name).await?;
    let have = observed
        .into_iter()
        .find(|(g, _)| *g == group)
        .map(|(_, r)| r)
        .unwrap_or_default();
    let (add, remove) = diff(&desired, &have);
    if !add.is_empty() || !remove.is_empty() {
        tracing::info!(lb = name, group, ?add, ?remove, "security group rules");
        apply(ctx, &group, name, &add, &remove).await?;
    }
    Ok(())
}

/// Revokes every rule of load balancer `name` in any security group.
pub async fn remove_rules(ctx: &Context, name: &str) -> Result<(), Error> {
    let groups = ctx
        .settings
        .security_group
        .as_ref()
        .and_then(|c| c.group_name.clone())
        .into_iter()
        .collect();
    for (group, rules) in observe(ctx, groups, name).await? {
        if !rules.is_empty() {
            let remove: Vec<Rule> = rules.into_iter().collect();
            apply(ctx, &group, name, &[], &remove).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::{self as a, LbDefaults};

    const VIP: &str = "198.51.100.7";
    const SYS: [&str; 2] = ["198.51.100.21", "198.51.100.22"];

    fn tcp(port: i64, source: &str) -> Rule {
        Rule::on_port(RuleProtocol::Tcp, port, &format!("{source}/32"))
    }

    fn udp(port: i64, source: &str) -> Rule {
        Rule::on_port(RuleProtocol::Udp, port, &format!("{source}/32"))
    }

    fn icmp(source: &str) -> Rule {
        Rule::icmp(&format!("{source}/32"))
    }

    /// Ports (80 -> 30080, 443 -> 30443, TCP), `policy`, these annotations; Local gets healthCheckNodePort 32000.
    fn lb(policy: &str, ann: &[(&str, &str)]) -> ServiceLb {
        let mut s = crate::spec::tests_support::svc(&[(80, 30080), (443, 30443)], ann);
        let spec = s.spec.as_mut().unwrap();
        spec.external_traffic_policy = Some(policy.into());
        if policy == "Local" {
            spec.health_check_node_port = Some(32000);
        }
        crate::spec::service_lb(&s, &LbDefaults::default()).unwrap()
    }

    #[test]
    fn rules_by_kind_health_check_and_sources_table() {
        let sys: Vec<String> = SYS.iter().map(|s| s.to_string()).collect();
        let traffic = [tcp(30080, VIP), tcp(30443, VIP)];
        let on = |port| [tcp(port, VIP), tcp(port, SYS[0]), tcp(port, SYS[1])];
        let pings = [icmp(VIP), icmp(SYS[0]), icmp(SYS[1])];
        /// (what, policy, annotations, health-check sources, rules beside the traffic rules)
        type Row<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a [String], Vec<Rule>);
        let table: Vec<Row<'_>> = vec![
            (
                "L4 Cluster: checks on the NodePorts, from the VIP",
                "Cluster",
                vec![],
                &[],
                vec![],
            ),
            (
                "L4 Local: TCP on healthCheckNodePort",
                "Local",
                vec![],
                &[],
                vec![tcp(32000, VIP)],
            ),
            (
                "L4 ICMP: ICMP from the VIP, no port",
                "Cluster",
                vec![(a::HC_PROTOCOL, "ICMP")],
                &[],
                vec![icmp(VIP)],
            ),
            (
                "ELB Cluster: TCP checks on the NodePorts from the system addresses too",
                "Cluster",
                vec![(a::TYPE, "elb")],
                &sys,
                [on(30080), on(30443)].concat(),
            ),
            (
                "ELB Local: HTTP on healthCheckNodePort, from the VIP and the system addresses only",
                "Local",
                vec![(a::TYPE, "elb")],
                &sys,
                on(32000).to_vec(),
            ),
            (
                "ELB ICMP: ICMP from all three, the system addresses get no NodePort",
                "Cluster",
                vec![(a::TYPE, "elb"), (a::HC_PROTOCOL, "ICMP")],
                &sys,
                pings.to_vec(),
            ),
            (
                "ELB without system addresses read (yet): the VIP only",
                "Local",
                vec![(a::TYPE, "elb")],
                &[],
                vec![tcp(32000, VIP)],
            ),
        ];
        for (what, policy, ann, sources, extra) in table {
            let got = desired_rules(&lb(policy, &ann), VIP, sources);
            let want: BTreeSet<Rule> = traffic.iter().cloned().chain(extra).collect();
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn sources_that_are_not_ipv4_addresses_are_skipped_and_duplicates_merged() {
        let sources = ["".to_owned(), "2001:db8::1".into(), VIP.into(), format!(" {} ", SYS[0])];
        let got = desired_rules(&lb("Local", &[(a::TYPE, "elb")]), VIP, &sources);
        let want: BTreeSet<Rule> = [tcp(30080, VIP), tcp(30443, VIP), tcp(32000, VIP), tcp(32000, SYS[0])].into();
        assert_eq!(got, want);
    }

    #[test]
    fn a_udp_listener_gets_its_traffic_rule_and_its_tcp_check() {
        let mut s = crate::spec::tests_support::svc(&[(53, 30053)], &[(a::TYPE, "elb")]);
        s.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].protocol = Some("UDP".into());
        let lb = crate::spec::service_lb(&s, &LbDefaults::default()).unwrap();
        let got = desired_rules(&lb, VIP, &[SYS[0].to_owned()]);
        let want: BTreeSet<Rule> = [udp(30053, VIP), tcp(30053, VIP), tcp(30053, SYS[0])].into();
        assert_eq!(got, want);
    }

    #[test]
    fn diff_adds_and_removes() {
        let rules = desired_rules(&lb("Local", &[]), VIP, &[]);
        let have: BTreeSet<Rule> = [tcp(30080, VIP), tcp(31111, VIP), icmp(VIP)].into();
        let (add, remove) = diff(&rules, &have);
        assert_eq!(add, vec![tcp(30443, VIP), tcp(32000, VIP)]);
        assert_eq!(remove, vec![tcp(31111, VIP), icmp(VIP)]);
        assert_eq!(diff(&rules, &rules), (vec![], vec![]));
        assert_eq!(RuleProtocol::parse("icmp"), RuleProtocol::Icmp);
        assert_eq!(RuleProtocol::parse("any"), RuleProtocol::Other("ANY".into()));
        assert_eq!(RuleProtocol::from(&Protocol::Udp).to_string(), "UDP");
    }
}
