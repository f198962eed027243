//! Opt-in security-group (firewall) rules that admit load-balancer traffic to the NodePorts.
//!
//! With `securityGroup.manageRules: true`, every Service's load balancer gets, in the nodes' security group
//! (`securityGroup.groupName`, else the one group all its backend servers share), one `IN` rule per listener:
//! protocol TCP/UDP, from = to = the NodePort (and the health-check NodePort), source = the VIP `/32`. Each rule's
//! description is `k8s lb <load balancer name>`, which is how this provider finds its own rules; rules with any
//! other description are never touched. When the Service goes, its rules are revoked.

use std::collections::BTreeSet;

use cloudprovider::k8s_openapi::api::core::v1::Service;
use nifcloud_cloud::{CloudError, Instance};
use nifcloud_sdk::types::{
    AuthorizeSecurityGroupIngressRequest, DescribeSecurityGroupsRequest, RequestIpPermissions,
    RequestIpPermissionsOfRevokeSecurityGroupIngress, RequestIpRanges, RevokeSecurityGroupIngressRequest,
};

use crate::call::{AlreadyDone, answer};
use crate::context::Context;
use crate::error::Error;
use crate::model::Protocol;
use crate::spec::ServiceLb;

/// One `IN` rule: traffic of `protocol` to `port` of the nodes from `source`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rule {
    /// The listener's protocol: TCP or UDP (health checks are TCP).
    pub protocol: Protocol,
    /// The NodePort (from = to).
    pub port: i64,
    /// The source CIDR: the load balancer's VIP `/32`.
    pub source: String,
}

impl Rule {
    fn new(protocol: Protocol, port: i64, source: &str) -> Self {
        Self {
            protocol,
            port,
            source: source.to_owned(),
        }
    }
}

/// The description marking the rules of load balancer `name`.
pub fn rule_description(name: &str) -> String {
    format!("k8s lb {name}")
}

/// The rules a Service's load balancer needs.
pub fn desired_rules(lb: &ServiceLb, vip: &str) -> BTreeSet<Rule> {
    let source = format!("{vip}/32");
    let mut out = BTreeSet::new();
    for l in &lb.listeners {
        out.insert(Rule::new(l.protocol.clone(), l.instance_port, &source));
        if let Some(port) = l.health_check.target.port()
            && port != l.instance_port
        {
            out.insert(Rule::new(Protocol::Tcp, port, &source));
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
            group_name: groups,
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
            let group = g.group_name.clone()?;
            let rules = g
                .ip_permissions
                .iter()
                .filter(|p| p.description.as_deref() == Some(desc.as_str()))
                .filter(|p| p.in_out.as_deref().is_none_or(|d| d == "IN"))
                .flat_map(|p| {
                    let proto = Protocol::parse(p.ip_protocol.as_deref().unwrap_or_default());
                    let port = p.from_port.unwrap_or_default();
                    p.ip_ranges
                        .iter()
                        .filter_map(move |r| r.cidr_ip.as_deref().map(|c| Rule::new(proto.clone(), port, c)))
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
            cidr_ip: Some(r.source.clone()),
        }]
    };
    let failed = |source| Error::ChangeSecurityGroup {
        name: name.to_owned(),
        group: group.to_owned(),
        source,
    };
    if !add.is_empty() {
        let req = AuthorizeSecurityGroupIngressRequest {
            group_name: Some(group.to_owned()),
            ip_permissions: add
                .iter()
                .map(|r| RequestIpPermissions {
                    ip_protocol: Some(r.protocol.to_string()),
                    from_port: Some(r.port),
                    to_port: Some(r.port),
                    in_out: Some("IN".into()),
                    ip_ranges: ranges(r),
                    description: Some(rule_description(name)),
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
            group_name: Some(group.to_owned()),
            ip_permissions: remove
                .iter()
                .map(|r| RequestIpPermissionsOfRevokeSecurityGroupIngress {
                    ip_protocol: Some(r.protocol.to_string()),
                    from_port: Some(r.port),
                    to_port: Some(r.port),
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

/// Makes the nodes' security group admit the load balancer `name` (VIP `vip`) to the Service's NodePorts.
pub async fn ensure_rules(
    ctx: &Context,
    svc: &Service,
    name: &str,
    lb: &ServiceLb,
    members: &[Instance],
    vip: &str,
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
    let desired = desired_rules(lb, vip);
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
    use crate::annotations::LbDefaults;

    #[test]
    fn rules_per_listener_and_health_port() {
        let mut s = crate::spec::tests_support::svc(&[(80, 30080), (443, 30443)], &[]);
        let spec = s.spec.as_mut().unwrap();
        spec.external_traffic_policy = Some("Local".into());
        spec.health_check_node_port = Some(32000);
        let lb = crate::spec::service_lb(&s, &LbDefaults::default()).unwrap();
        let rules = desired_rules(&lb, "198.51.100.7");
        let tcp = |port| Rule::new(Protocol::Tcp, port, "198.51.100.7/32");
        let want: BTreeSet<Rule> = [tcp(30080), tcp(30443), tcp(32000)].into();
        assert_eq!(rules, want);
        let have: BTreeSet<Rule> = [tcp(30080), tcp(31111)].into();
        let (add, remove) = diff(&rules, &have);
        assert_eq!(add, vec![tcp(30443), tcp(32000)]);
        assert_eq!(remove, vec![tcp(31111)]);
        assert_eq!(diff(&rules, &rules), (vec![], vec![]));
    }
}
