//! Elastic load balancers: observed and desired models, and the diff (pure).
//!
//! A listener is identified by (ElasticLoadBalancerPort, InstancePort, Protocol). Ports, protocol, balancing
//! type and description are changed in place with `NiftyModifyElasticLoadBalancerAttributes`; health check and
//! members per listener; network volume and accounting type with `NiftyUpdateElasticLoadBalancer`. Network
//! interfaces can only be chosen at creation: a difference is a warning. Surplus listeners are deleted last.

use std::collections::BTreeSet;

use nifcloud_sdk::types::ElasticLoadBalancerDescriptions;

use crate::annotations::ElbInterface;

/// (port, instance port, protocol).
pub type ListenerKey = (i64, i64, String);

/// One listener as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedElbListener {
    /// ElasticLoadBalancerPort.
    pub port: i64,
    /// InstancePort.
    pub instance_port: i64,
    /// TCP, UDP, HTTP, HTTPS.
    pub protocol: String,
    /// 1 or 2.
    pub balancing_type: i64,
    /// Description.
    pub description: String,
    /// Health-check target.
    pub hc_target: String,
    /// Health-check interval.
    pub hc_interval: i64,
    /// Unhealthy threshold.
    pub hc_unhealthy: i64,
    /// Health-check path.
    pub hc_path: String,
    /// Member server names.
    pub instances: BTreeSet<String>,
}

impl ObservedElbListener {
    /// The identity.
    pub fn key(&self) -> ListenerKey {
        (self.port, self.instance_port, self.protocol.clone())
    }
}

/// An elastic load balancer as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedElb {
    /// Name.
    pub name: String,
    /// `elb-…`.
    pub id: String,
    /// VIP.
    pub vip: String,
    /// `available` or a transient state.
    pub state: String,
    /// Mbps.
    pub network_volume: Option<i64>,
    /// `1` or `2`.
    pub accounting_type: Option<String>,
    /// Pending accounting type.
    pub next_month_accounting_type: Option<String>,
    /// Network ids of the interfaces, in order.
    pub networks: Vec<String>,
    /// Listeners.
    pub listeners: Vec<ObservedElbListener>,
}

impl ObservedElb {
    /// Reads a `NiftyDescribeElasticLoadBalancers` reply.
    pub fn from_descriptions(items: &[ElasticLoadBalancerDescriptions]) -> Vec<ObservedElb> {
        items
            .iter()
            .filter_map(|d| {
                let name = d.elastic_load_balancer_name.clone().filter(|n| !n.is_empty())?;
                let mut listeners: Vec<ObservedElbListener> = d
                    .elastic_load_balancer_listener_descriptions
                    .iter()
                    .filter_map(|ld| ld.listener.as_ref())
                    .map(|l| {
                        let hc = l.health_check.clone().unwrap_or_default();
                        ObservedElbListener {
                            port: l.elastic_load_balancer_port.unwrap_or_default(),
                            instance_port: l.instance_port.unwrap_or_default(),
                            protocol: l.protocol.clone().unwrap_or_default().to_ascii_uppercase(),
                            balancing_type: l.balancing_type.unwrap_or(1),
                            description: l.description.clone().unwrap_or_default(),
                            hc_target: hc.target.unwrap_or_default(),
                            hc_interval: hc.interval.unwrap_or_default(),
                            hc_unhealthy: hc.unhealthy_threshold.unwrap_or_default(),
                            hc_path: hc.path.unwrap_or_default(),
                            instances: l.instances.iter().filter_map(|i| i.instance_id.clone()).collect(),
                        }
                    })
                    .collect();
                listeners.sort_by_key(ObservedElbListener::key);
                Some(ObservedElb {
                    name,
                    id: d.elastic_load_balancer_id.clone().unwrap_or_default(),
                    vip: d.dns_name.clone().unwrap_or_default(),
                    state: d.state.clone().unwrap_or_default(),
                    network_volume: d.network_volume.as_deref().and_then(|v| v.trim().parse().ok()),
                    accounting_type: d.accounting_type.clone().filter(|s| !s.is_empty()),
                    next_month_accounting_type: d.next_month_accounting_type.clone().filter(|s| !s.is_empty()),
                    networks: d
                        .network_interfaces
                        .iter()
                        .filter_map(|n| n.network_id.clone())
                        .collect(),
                    listeners,
                })
            })
            .collect()
    }

    /// Whether any listener carries `marker` as its description.
    pub fn has_marker(&self, marker: &str) -> bool {
        self.listeners.iter().any(|l| l.description == marker)
    }
}

/// One listener as desired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantElbListener {
    /// ElasticLoadBalancerPort.
    pub port: i64,
    /// InstancePort.
    pub instance_port: i64,
    /// TCP or UDP.
    pub protocol: String,
    /// 1 or 2.
    pub balancing_type: i64,
    /// Health-check target.
    pub hc_target: String,
    /// Health-check interval.
    pub hc_interval: i64,
    /// Unhealthy threshold.
    pub hc_unhealthy: i64,
    /// Health-check path (HTTP checks).
    pub hc_path: Option<String>,
}

impl WantElbListener {
    /// The identity.
    pub fn key(&self) -> ListenerKey {
        (self.port, self.instance_port, self.protocol.clone())
    }
}

/// An elastic load balancer as desired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredElb {
    /// Name.
    pub name: String,
    /// The ownership marker written as every listener's description.
    pub marker: String,
    /// The zone to create it in.
    pub zone: String,
    /// Mbps.
    pub network_volume: Option<i64>,
    /// 1 or 2.
    pub accounting_type: Option<u8>,
    /// Interfaces (creation only).
    pub interfaces: Vec<ElbInterface>,
    /// Index of the VIP interface.
    pub vip_interface: usize,
    /// Listeners.
    pub listeners: Vec<WantElbListener>,
    /// Member server names.
    pub instances: BTreeSet<String>,
}

/// One call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElbAction {
    /// `NiftyCreateElasticLoadBalancer` with every listener, its health check and members.
    Create,
    /// `NiftyUpdateElasticLoadBalancer`.
    Update {
        /// New network volume.
        network_volume: Option<i64>,
        /// New accounting type.
        accounting_type: Option<u8>,
    },
    /// `NiftyModifyElasticLoadBalancerAttributes` with `AdditionalAttributes`.
    Modify {
        /// The listener as it is now.
        listener: ListenerKey,
        /// (key, value) pairs.
        attributes: Vec<(&'static str, String)>,
    },
    /// `NiftyRegisterPortWithElasticLoadBalancer`.
    RegisterPort {
        /// The desired listener.
        listener: WantElbListener,
    },
    /// `NiftyDeleteElasticLoadBalancer` of one listener.
    DeleteListener {
        /// The listener.
        listener: ListenerKey,
    },
    /// `NiftyConfigureElasticLoadBalancerHealthCheck`.
    HealthCheck {
        /// The listener (after any Modify).
        listener: ListenerKey,
        /// Target.
        target: String,
        /// Interval.
        interval: i64,
        /// Unhealthy threshold.
        unhealthy: i64,
        /// Path.
        path: Option<String>,
    },
    /// `NiftyRegisterInstancesWithElasticLoadBalancer`.
    Register {
        /// The listener.
        listener: ListenerKey,
        /// Names.
        names: Vec<String>,
    },
    /// `NiftyDeregisterInstancesFromElasticLoadBalancer`.
    Deregister {
        /// The listener.
        listener: ListenerKey,
        /// Names.
        names: Vec<String>,
    },
}

impl ElbAction {
    /// Whether listeners appear or change identity (re-read before planning their settings).
    pub fn is_structural(&self) -> bool {
        matches!(self, Self::Create | Self::RegisterPort { .. })
    }
}

/// The plan and what it cannot do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ElbPlan {
    /// Calls, in order.
    pub actions: Vec<ElbAction>,
    /// Differences no call can fix.
    pub warnings: Vec<String>,
}

/// The calls that turn `observed` into `desired`.
pub fn plan(desired: &DesiredElb, observed: Option<&ObservedElb>) -> ElbPlan {
    let mut p = ElbPlan::default();
    let Some(obs) = observed else {
        p.actions.push(ElbAction::Create);
        return p;
    };
    let nv = desired.network_volume.filter(|v| obs.network_volume != Some(*v));
    let at = desired.accounting_type.filter(|a| {
        let want = a.to_string();
        obs.next_month_accounting_type
            .as_deref()
            .or(obs.accounting_type.as_deref())
            != Some(want.as_str())
    });
    if nv.is_some() || at.is_some() {
        p.actions.push(ElbAction::Update {
            network_volume: nv,
            accounting_type: at,
        });
    }
    let want_nets: Vec<&str> = desired.interfaces.iter().map(|i| i.network_id.as_str()).collect();
    let have_nets: Vec<&str> = obs.networks.iter().map(String::as_str).collect();
    if !have_nets.is_empty() && want_nets != have_nets {
        p.warnings.push(format!(
            "elastic load balancer {}: network interfaces {have_nets:?} differ from {want_nets:?} and can only be \
             chosen at creation; delete and re-create the Service to change them",
            obs.name
        ));
    }
    let mut unmatched: Vec<&ObservedElbListener> = obs.listeners.iter().collect();
    let mut pairs: Vec<(&WantElbListener, Option<&ObservedElbListener>)> = Vec::new();
    let mut rest = Vec::new();
    for w in &desired.listeners {
        match unmatched.iter().position(|o| o.key() == w.key()) {
            Some(i) => pairs.push((w, Some(unmatched.remove(i)))),
            None => rest.push(w),
        }
    }
    let mut rest2 = Vec::new();
    for w in rest {
        match unmatched
            .iter()
            .position(|o| o.port == w.port && o.protocol == w.protocol)
        {
            Some(i) => pairs.push((w, Some(unmatched.remove(i)))),
            None => rest2.push(w),
        }
    }
    for w in rest2 {
        if unmatched.is_empty() {
            pairs.push((w, None));
        } else {
            pairs.push((w, Some(unmatched.remove(0))));
        }
    }
    let mut settings = Vec::new();
    for (w, o) in pairs {
        let Some(o) = o else {
            p.actions.push(ElbAction::RegisterPort { listener: w.clone() });
            continue;
        };
        let mut attributes = Vec::new();
        if o.protocol != w.protocol {
            attributes.push(("protocol", w.protocol.clone()));
        }
        if o.port != w.port {
            attributes.push(("elasticLoadBalancerPort", w.port.to_string()));
        }
        if o.instance_port != w.instance_port {
            attributes.push(("instancePort", w.instance_port.to_string()));
        }
        if o.balancing_type != w.balancing_type {
            attributes.push(("balancingType", w.balancing_type.to_string()));
        }
        if o.description != desired.marker {
            attributes.push(("description", desired.marker.clone()));
        }
        if !attributes.is_empty() {
            p.actions.push(ElbAction::Modify {
                listener: o.key(),
                attributes,
            });
        }
        let key = w.key();
        let path = w.hc_path.clone().unwrap_or_default();
        if (o.hc_target.as_str(), o.hc_interval, o.hc_unhealthy, o.hc_path.as_str())
            != (w.hc_target.as_str(), w.hc_interval, w.hc_unhealthy, path.as_str())
        {
            settings.push(ElbAction::HealthCheck {
                listener: key.clone(),
                target: w.hc_target.clone(),
                interval: w.hc_interval,
                unhealthy: w.hc_unhealthy,
                path: w.hc_path.clone(),
            });
        }
        let add: Vec<String> = desired.instances.difference(&o.instances).cloned().collect();
        let remove: Vec<String> = o.instances.difference(&desired.instances).cloned().collect();
        if !add.is_empty() {
            settings.push(ElbAction::Register {
                listener: key.clone(),
                names: add,
            });
        }
        if !remove.is_empty() {
            settings.push(ElbAction::Deregister {
                listener: key,
                names: remove,
            });
        }
    }
    p.actions.extend(settings);
    for o in unmatched {
        p.actions.push(ElbAction::DeleteListener { listener: o.key() });
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(port: i64, iport: i64) -> WantElbListener {
        WantElbListener {
            port,
            instance_port: iport,
            protocol: "TCP".into(),
            balancing_type: 1,
            hc_target: format!("TCP:{iport}"),
            hc_interval: 10,
            hc_unhealthy: 1,
            hc_path: None,
        }
    }

    fn desired() -> DesiredElb {
        DesiredElb {
            name: "web".into(),
            marker: "k8s abcd web".into(),
            zone: "east-11".into(),
            network_volume: None,
            accounting_type: None,
            interfaces: vec![ElbInterface {
                network_id: "net-COMMON_GLOBAL".into(),
                ip_address: None,
                system_ip_addresses: vec![],
            }],
            vip_interface: 0,
            listeners: vec![want(80, 30080)],
            instances: ["node1".to_string(), "node2".to_string()].into(),
        }
    }

    fn converged(d: &DesiredElb) -> ObservedElb {
        ObservedElb {
            name: d.name.clone(),
            id: "elb-1".into(),
            vip: "198.51.100.9".into(),
            state: "available".into(),
            network_volume: Some(10),
            accounting_type: Some("1".into()),
            next_month_accounting_type: Some("1".into()),
            networks: vec!["net-COMMON_GLOBAL".into()],
            listeners: d
                .listeners
                .iter()
                .map(|w| ObservedElbListener {
                    port: w.port,
                    instance_port: w.instance_port,
                    protocol: w.protocol.clone(),
                    balancing_type: w.balancing_type,
                    description: d.marker.clone(),
                    hc_target: w.hc_target.clone(),
                    hc_interval: w.hc_interval,
                    hc_unhealthy: w.hc_unhealthy,
                    hc_path: String::new(),
                    instances: d.instances.clone(),
                })
                .collect(),
        }
    }

    #[test]
    fn create_then_nothing() {
        let d = desired();
        assert_eq!(plan(&d, None).actions, vec![ElbAction::Create]);
        assert_eq!(plan(&d, Some(&converged(&d))), ElbPlan::default());
    }

    #[test]
    fn attributes_and_members() {
        let mut d = desired();
        let o = converged(&d);
        d.network_volume = Some(100);
        d.accounting_type = Some(2);
        d.listeners[0].instance_port = 31000;
        d.listeners[0].hc_target = "TCP:31000".into();
        d.listeners[0].balancing_type = 2;
        d.instances = ["node1".to_string(), "node3".to_string()].into();
        d.listeners.push(want(443, 30443));
        let p = plan(&d, Some(&o));
        let k = (80, 31000, "TCP".to_string());
        assert_eq!(
            p.actions,
            vec![
                ElbAction::Update {
                    network_volume: Some(100),
                    accounting_type: Some(2)
                },
                ElbAction::Modify {
                    listener: (80, 30080, "TCP".into()),
                    attributes: vec![("instancePort", "31000".into()), ("balancingType", "2".into())],
                },
                ElbAction::RegisterPort {
                    listener: want(443, 30443)
                },
                ElbAction::HealthCheck {
                    listener: k.clone(),
                    target: "TCP:31000".into(),
                    interval: 10,
                    unhealthy: 1,
                    path: None
                },
                ElbAction::Register {
                    listener: k.clone(),
                    names: vec!["node3".into()]
                },
                ElbAction::Deregister {
                    listener: k,
                    names: vec!["node2".into()]
                },
            ]
        );
    }

    #[test]
    fn surplus_listener_deleted_last_and_interfaces_warned() {
        let d = desired();
        let mut o = converged(&d);
        let mut extra = o.listeners[0].clone();
        extra.port = 8080;
        extra.instance_port = 30880;
        o.listeners.push(extra);
        o.networks = vec!["net-COMMON_PRIVATE".into()];
        let p = plan(&d, Some(&o));
        assert_eq!(
            p.actions,
            vec![ElbAction::DeleteListener {
                listener: (8080, 30880, "TCP".into())
            }]
        );
        assert_eq!(p.warnings.len(), 1);
        assert!(
            !ElbAction::DeleteListener {
                listener: (1, 2, "TCP".into())
            }
            .is_structural()
        );
    }
}
