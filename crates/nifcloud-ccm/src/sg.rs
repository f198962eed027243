//! Opt-in security-group (firewall) rules that admit load-balancer traffic to the NodePorts.
//!
//! With `securityGroup.manageRules: true`, every Service's load balancer gets, in the nodes' security group
//! (`securityGroup.groupName`, else the one group all its backend servers share), one `IN` rule per listener:
//! protocol TCP/UDP, from = to = the NodePort (and the health-check NodePort), source = the VIP `/32`. Each rule's
//! description is `k8s lb <load balancer name>`, which is how this provider finds its own rules; rules with any
//! other description are never touched. When the Service goes, its rules are revoked.

use std::collections::BTreeSet;

use cloudprovider::ProviderError;
use cloudprovider::k8s_openapi::api::core::v1::Service;
use nifcloud_cloud::{CloudError, Instance};
use nifcloud_sdk::types::{
    AuthorizeSecurityGroupIngressRequest, DescribeSecurityGroupsRequest, RequestIpPermissions,
    RequestIpPermissionsOfRevokeSecurityGroupIngress, RequestIpRanges, RevokeSecurityGroupIngressRequest,
};

use crate::provider::{Shared, cloud_error};
use crate::spec::ServiceLb;

/// One ingress rule: (protocol, port, source CIDR).
pub type Rule = (String, i64, String);

/// The description marking the rules of load balancer `name`.
pub fn rule_description(name: &str) -> String {
    format!("k8s lb {name}")
}

/// The rules a Service's load balancer needs.
pub fn desired_rules(lb: &ServiceLb, vip: &str) -> BTreeSet<Rule> {
    let source = format!("{vip}/32");
    let mut out = BTreeSet::new();
    for l in &lb.listeners {
        out.insert((l.protocol.clone(), l.node_port, source.clone()));
        if let Some(port) = l.hc_target.split_once(':').and_then(|(_, p)| p.parse::<i64>().ok())
            && port != l.node_port
        {
            out.insert(("TCP".to_owned(), port, source.clone()));
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
async fn observe(sh: &Shared, groups: Vec<String>, name: &str) -> Result<Vec<(String, BTreeSet<Rule>)>, CloudError> {
    let desc = rule_description(name);
    let reply = sh
        .client
        .describe_security_groups(DescribeSecurityGroupsRequest {
            group_name: groups,
            ..Default::default()
        })
        .await
        .map_err(CloudError::wrap("DescribeSecurityGroups", "security groups"))?;
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
                    let proto = p.ip_protocol.clone().unwrap_or_default();
                    let port = p.from_port.unwrap_or_default();
                    p.ip_ranges
                        .iter()
                        .filter_map(move |r| r.cidr_ip.clone().map(|c| (proto.clone(), port, c)))
                })
                .collect();
            Some((group, rules))
        })
        .collect())
}

async fn apply(sh: &Shared, group: &str, name: &str, add: &[Rule], remove: &[Rule]) -> Result<(), CloudError> {
    if !add.is_empty() {
        let req = AuthorizeSecurityGroupIngressRequest {
            group_name: Some(group.to_owned()),
            ip_permissions: add
                .iter()
                .map(|(proto, port, cidr)| RequestIpPermissions {
                    ip_protocol: Some(proto.clone()),
                    from_port: Some(*port),
                    to_port: Some(*port),
                    in_out: Some("IN".into()),
                    ip_ranges: vec![RequestIpRanges {
                        cidr_ip: Some(cidr.clone()),
                    }],
                    description: Some(rule_description(name)),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        match sh.client.authorize_security_group_ingress(req).await {
            Ok(_) => {}
            Err(e) if e.kind() == nifcloud_sdk::ErrorKind::Duplicate => {}
            Err(e) => {
                return Err(CloudError::new(
                    "AuthorizeSecurityGroupIngress",
                    format!("security group {group}"),
                    e,
                ));
            }
        }
    }
    if !remove.is_empty() {
        let req = RevokeSecurityGroupIngressRequest {
            group_name: Some(group.to_owned()),
            ip_permissions: remove
                .iter()
                .map(|(proto, port, cidr)| RequestIpPermissionsOfRevokeSecurityGroupIngress {
                    ip_protocol: Some(proto.clone()),
                    from_port: Some(*port),
                    to_port: Some(*port),
                    in_out: Some("IN".into()),
                    ip_ranges: vec![RequestIpRanges {
                        cidr_ip: Some(cidr.clone()),
                    }],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        match sh.client.revoke_security_group_ingress(req).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => {
                return Err(CloudError::new(
                    "RevokeSecurityGroupIngress",
                    format!("security group {group}"),
                    e,
                ));
            }
        }
    }
    Ok(())
}

/// Makes the nodes' security group admit the load balancer `name` (VIP `vip`) to the Service's NodePorts.
pub async fn ensure_rules(
    sh: &Shared,
    svc: &Service,
    name: &str,
    lb: &ServiceLb,
    members: &[Instance],
    vip: &str,
) -> Result<(), ProviderError> {
    let Some(cfg) = &sh.settings.security_group else {
        return Ok(());
    };
    let group = match &cfg.group_name {
        Some(g) => g.clone(),
        None => {
            let groups: BTreeSet<&String> = members.iter().flat_map(|m| m.security_groups.iter()).collect();
            match groups.into_iter().collect::<Vec<_>>().as_slice() {
                [one] => (*one).clone(),
                [] => {
                    sh.warn(
                        svc,
                        "SecurityGroupRulesSkipped",
                        "no backend server is in a security group; no rules added".to_owned(),
                    )
                    .await;
                    return Ok(());
                }
                many => {
                    sh.warn(
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
    let observed = observe(sh, vec![group.clone()], name).await.map_err(cloud_error)?;
    let have = observed
        .into_iter()
        .find(|(g, _)| *g == group)
        .map(|(_, r)| r)
        .unwrap_or_default();
    let (add, remove) = diff(&desired, &have);
    if !add.is_empty() || !remove.is_empty() {
        tracing::info!(lb = name, group, ?add, ?remove, "security group rules");
        apply(sh, &group, name, &add, &remove).await.map_err(cloud_error)?;
    }
    Ok(())
}

/// Revokes every rule of load balancer `name` in any security group.
pub async fn remove_rules(sh: &Shared, name: &str) -> Result<(), ProviderError> {
    let groups = sh
        .settings
        .security_group
        .as_ref()
        .and_then(|c| c.group_name.clone())
        .into_iter()
        .collect();
    for (group, rules) in observe(sh, groups, name).await.map_err(cloud_error)? {
        if !rules.is_empty() {
            let remove: Vec<Rule> = rules.into_iter().collect();
            apply(sh, &group, name, &[], &remove).await.map_err(cloud_error)?;
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
        let want: BTreeSet<Rule> = [
            ("TCP".to_string(), 30080, "198.51.100.7/32".to_string()),
            ("TCP".to_string(), 30443, "198.51.100.7/32".to_string()),
            ("TCP".to_string(), 32000, "198.51.100.7/32".to_string()),
        ]
        .into();
        assert_eq!(rules, want);
        let have: BTreeSet<Rule> = [
            ("TCP".to_string(), 30080, "198.51.100.7/32".to_string()),
            ("TCP".to_string(), 31111, "198.51.100.7/32".to_string()),
        ]
        .into();
        let (add, remove) = diff(&rules, &have);
        assert_eq!(add.len(), 2);
        assert_eq!(remove, vec![("TCP".to_string(), 31111, "198.51.100.7/32".to_string())]);
        assert_eq!(diff(&rules, &rules), (vec![], vec![]));
    }
}
