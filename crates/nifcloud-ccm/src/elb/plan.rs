//! Elastic load balancers: observed and desired models, and the diff (pure).
//!
//! A listener is identified by (ElasticLoadBalancerPort, InstancePort, Protocol). Ports, protocol, balancing
//! type and description are changed in place with `NiftyModifyElasticLoadBalancerAttributes`; health check and
//! members per listener; network volume and accounting type with `NiftyUpdateElasticLoadBalancer`. Network
//! interfaces can only be chosen at creation: a difference is a warning. Surplus listeners are deleted last.

use std::collections::BTreeSet;

use nifcloud_cloud::Instance;
use nifcloud_sdk::types::ElasticLoadBalancerDescriptions;

use crate::annotations::ElbInterface;
use crate::backend::Plan;
use crate::model::{
    AccountingType, BalancingType, Billing, HealthCheck, HealthCheckTarget, Listener, ListenerKey, Protocol,
    member_changes, pair_listeners,
};
use crate::naming;
use crate::spec::ServiceLb;

/// The lifecycle state of an elastic load balancer (`State`); the API refuses changes unless it is available.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElbState {
    /// `available`: changes are accepted.
    Available,
    /// A transient state (`processing`, …) or an unknown one, as reported.
    Other(String),
}

impl ElbState {
    /// Reads the wire state.
    pub fn from_wire(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            Some("available") => Self::Available,
            other => Self::Other(other.unwrap_or_default().to_owned()),
        }
    }
}

/// One listener of an elastic load balancer as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedElbListener {
    /// Its ports, protocol, balancing type and health check.
    pub listener: Listener,
    /// Its free-text description; this provider writes its ownership marker there.
    pub description: String,
    /// Names of the servers registered on it.
    pub members: BTreeSet<String>,
}

impl AsRef<Listener> for ObservedElbListener {
    fn as_ref(&self) -> &Listener {
        &self.listener
    }
}

/// An elastic load balancer as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedElb {
    /// Its name on NIFCLOUD (unique per kind in the region).
    pub name: String,
    /// The VIP (`DNSName` on the wire); empty while it has none.
    pub vip: String,
    /// Whether it accepts changes now.
    pub state: ElbState,
    /// Bandwidth in Mbps.
    pub network_volume: Option<i64>,
    /// How it is billed, this month and from next month.
    pub billing: Billing,
    /// The network id of each interface, in order.
    pub networks: Vec<String>,
    /// The system IP addresses of its interfaces (`SystemIpAddresses`, in order), given by annotation or
    /// assigned by NIFCLOUD: it sends its health checks from these and from its VIP.
    pub system_ips: Vec<String>,
    /// The listeners, ordered by key.
    pub listeners: Vec<ObservedElbListener>,
}

impl ObservedElb {
    /// Reads the load balancers of a `NiftyDescribeElasticLoadBalancers` reply.
    pub fn from_descriptions(items: &[ElasticLoadBalancerDescriptions]) -> Vec<ObservedElb> {
        items.iter().filter_map(Self::from_description).collect()
    }

    /// Reads one load balancer of a `NiftyDescribeElasticLoadBalancers` reply (`None` without a name): the
    /// listing is read entry by entry as it arrives, keeping only this of each entry.
    pub fn from_description(d: &ElasticLoadBalancerDescriptions) -> Option<ObservedElb> {
        let name = d.elastic_load_balancer_name.as_deref().filter(|n| !n.is_empty())?;
        let mut listeners: Vec<ObservedElbListener> = d
            .elastic_load_balancer_listener_descriptions
            .iter()
            .filter_map(|ld| ld.listener.as_ref())
            .map(|l| {
                let hc = l.health_check.clone().unwrap_or_default();
                let target = HealthCheckTarget::parse(hc.target.as_deref().unwrap_or_default());
                // A path only means something to an HTTP check; one left over from an earlier HTTP
                // check is not a difference.
                let http = matches!(target, HealthCheckTarget::Http(_));
                ObservedElbListener {
                    listener: Listener {
                        port: l.elastic_load_balancer_port.unwrap_or_default(),
                        instance_port: l.instance_port.unwrap_or_default(),
                        protocol: Protocol::parse(l.protocol.as_deref().unwrap_or_default()),
                        balancing: BalancingType::from_code(l.balancing_type),
                        health_check: HealthCheck {
                            target,
                            interval: hc.interval.unwrap_or_default(),
                            unhealthy_threshold: hc.unhealthy_threshold.unwrap_or_default(),
                            path: hc.path.filter(|p| http && !p.is_empty()).map(Into::into),
                        },
                    },
                    description: l.description.as_deref().unwrap_or_default().to_owned(),
                    members: l
                        .instances
                        .iter()
                        .filter_map(|i| i.instance_id.as_deref().map(String::from))
                        .collect(),
                }
            })
            .collect();
        listeners.sort_by_key(|l| l.listener.key());
        Some(ObservedElb {
            name: name.to_owned(),
            vip: d.dns_name.as_deref().unwrap_or_default().to_owned(),
            state: ElbState::from_wire(d.state.as_deref()),
            network_volume: d.network_volume.as_deref().and_then(|v| v.trim().parse().ok()),
            billing: Billing::from_wire(d.accounting_type.as_deref(), d.next_month_accounting_type.as_deref()),
            networks: d
                .network_interfaces
                .iter()
                .filter_map(|n| n.network_id.as_deref().map(String::from))
                .collect(),
            system_ips: d
                .network_interfaces
                .iter()
                .flat_map(|n| &n.system_ip_addresses)
                .filter_map(|a| a.system_ip_address.as_deref().map(str::trim))
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect(),
            listeners,
        })
    }

    /// Whether any listener carries `marker` as its description.
    pub fn has_marker(&self, marker: &str) -> bool {
        self.listeners.iter().any(|l| l.description == marker)
    }
}

/// An elastic load balancer as desired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredElb {
    /// Its name on NIFCLOUD (unique per kind in the region).
    pub name: String,
    /// The ownership marker written as every listener's description.
    pub marker: String,
    /// The zone to create it in (that of the first member server, else the region's first).
    pub zone: String,
    /// Bandwidth in Mbps, if the Service says.
    pub network_volume: Option<i64>,
    /// Billing, if the Service says.
    pub accounting_type: Option<AccountingType>,
    /// The network interfaces (applied at creation only).
    pub interfaces: Vec<ElbInterface>,
    /// The index into `interfaces` of the one that carries the VIP.
    pub vip_interface: usize,
    /// The listeners, ordered by port and protocol.
    pub listeners: Vec<Listener>,
    /// Names of the member servers (the same on every listener).
    pub members: BTreeSet<String>,
}

impl DesiredElb {
    /// The elastic load balancer `name` of `cluster` the Service `spec` asks for, with these member servers, to be
    /// created in `zone`.
    pub fn new(cluster: &str, name: &str, spec: &ServiceLb, members: &[Instance], zone: String) -> Self {
        let o = &spec.options;
        Self {
            name: name.to_owned(),
            marker: naming::elb_marker(cluster, name),
            zone,
            network_volume: o.network_volume,
            accounting_type: o.accounting_type,
            interfaces: o.elb_interfaces.clone(),
            vip_interface: o.elb_vip_interface,
            listeners: spec.listeners.clone(),
            members: members.iter().map(|m| m.name.clone()).collect(),
        }
    }
}

/// One listener setting changed in place by `NiftyModifyElasticLoadBalancerAttributes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElbAttribute {
    /// `protocol`: TCP or UDP.
    Protocol(Protocol),
    /// `elasticLoadBalancerPort`: the port on the VIP.
    Port(i64),
    /// `instancePort`: the NodePort on each server.
    InstancePort(i64),
    /// `balancingType`.
    Balancing(BalancingType),
    /// The description (this provider's ownership marker).
    Description(String),
}

/// One call on an elastic load balancer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElbAction {
    /// `NiftyCreateElasticLoadBalancer` of all of it: listeners with their health checks and members, interfaces.
    Create(Box<DesiredElb>),
    /// `NiftyUpdateElasticLoadBalancer`: bandwidth and billing of the whole load balancer.
    Update {
        /// New bandwidth in Mbps, if it changes.
        network_volume: Option<i64>,
        /// New billing (from next month), if it changes.
        accounting_type: Option<AccountingType>,
    },
    /// `NiftyModifyElasticLoadBalancerAttributes` of one listener.
    Modify {
        /// The listener as it is now.
        listener: ListenerKey,
        /// The settings that change, each sent as one `AdditionalAttributes` key and value.
        attributes: Vec<ElbAttribute>,
    },
    /// `NiftyRegisterPortWithElasticLoadBalancer`: a new listener.
    RegisterPort {
        /// The listener (its health check follows as its own call).
        listener: Listener,
        /// Its description (the ownership marker).
        description: String,
    },
    /// `NiftyDeleteElasticLoadBalancer` of one listener (of the last one: the whole load balancer).
    DeleteListener {
        /// The listener to delete.
        listener: ListenerKey,
    },
    /// `NiftyConfigureElasticLoadBalancerHealthCheck` of one listener.
    HealthCheck {
        /// The listener (after any Modify).
        listener: ListenerKey,
        /// The health check to set.
        health_check: HealthCheck,
    },
    /// `NiftyRegisterInstancesWithElasticLoadBalancer` on one listener.
    Register {
        /// The listener (after any Modify).
        listener: ListenerKey,
        /// The servers to add, by name (`InstanceId` on the wire).
        names: Vec<String>,
    },
    /// `NiftyDeregisterInstancesFromElasticLoadBalancer` from one listener.
    Deregister {
        /// The listener (after any Modify).
        listener: ListenerKey,
        /// The servers to remove, by name.
        names: Vec<String>,
    },
}

/// The calls that delete `observed`: each listener, the last one taking the load balancer along.
pub fn teardown(observed: &ObservedElb) -> Vec<ElbAction> {
    let keys = observed.listeners.iter().map(|l| l.listener.key());
    keys.map(|listener| ElbAction::DeleteListener { listener }).collect()
}

/// The in-place changes that turn the listener `have` into `want` with `marker` as its description.
fn attribute_changes(want: &Listener, have: &ObservedElbListener, marker: &str) -> Vec<ElbAttribute> {
    let o = &have.listener;
    let mut out = Vec::new();
    if o.protocol != want.protocol {
        out.push(ElbAttribute::Protocol(want.protocol.clone()));
    }
    if o.port != want.port {
        out.push(ElbAttribute::Port(want.port));
    }
    if o.instance_port != want.instance_port {
        out.push(ElbAttribute::InstancePort(want.instance_port));
    }
    if o.balancing != want.balancing {
        out.push(ElbAttribute::Balancing(want.balancing));
    }
    if have.description != marker {
        out.push(ElbAttribute::Description(marker.to_owned()));
    }
    out
}

/// The calls that turn `observed` into `desired`.
pub fn plan(desired: &DesiredElb, observed: Option<&ObservedElb>) -> Plan<ElbAction> {
    let mut p = Plan::default();
    let Some(obs) = observed else {
        p.actions.push(ElbAction::Create(Box::new(desired.clone())));
        p.reshapes = true;
        return p;
    };
    let network_volume = desired.network_volume.filter(|v| obs.network_volume != Some(*v));
    let accounting_type = obs.billing.change_to(desired.accounting_type);
    if network_volume.is_some() || accounting_type.is_some() {
        p.actions.push(ElbAction::Update {
            network_volume,
            accounting_type,
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
    let pairing = pair_listeners(&desired.listeners, &obs.listeners);
    let mut settings = Vec::new();
    for (w, o) in pairing.pairs {
        let Some(o) = o else {
            p.actions.push(ElbAction::RegisterPort {
                listener: w.clone(),
                description: desired.marker.clone(),
            });
            p.reshapes = true;
            continue;
        };
        let attributes = attribute_changes(w, o, &desired.marker);
        if !attributes.is_empty() {
            p.actions.push(ElbAction::Modify {
                listener: o.listener.key(),
                attributes,
            });
        }
        let key = w.key();
        if o.listener.health_check != w.health_check {
            settings.push(ElbAction::HealthCheck {
                listener: key.clone(),
                health_check: w.health_check.clone(),
            });
        }
        let (add, remove) = member_changes(&desired.members, &o.members);
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
    for o in pairing.surplus {
        p.actions.push(ElbAction::DeleteListener {
            listener: o.listener.key(),
        });
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests_support::{tcp_check, tcp_listener as want};

    fn key(port: i64, instance_port: i64) -> ListenerKey {
        ListenerKey {
            port,
            instance_port,
            protocol: Protocol::Tcp,
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
            members: ["node1".to_string(), "node2".to_string()].into(),
        }
    }

    fn converged(d: &DesiredElb) -> ObservedElb {
        ObservedElb {
            name: d.name.clone(),
            vip: "198.51.100.9".into(),
            state: ElbState::Available,
            network_volume: Some(10),
            billing: Billing {
                current: Some(AccountingType::Monthly),
                next_month: Some(AccountingType::Monthly),
            },
            networks: vec!["net-COMMON_GLOBAL".into()],
            system_ips: vec!["198.51.100.21".into(), "198.51.100.22".into()],
            listeners: d
                .listeners
                .iter()
                .map(|w| ObservedElbListener {
                    listener: w.clone(),
                    description: d.marker.clone(),
                    members: d.members.clone(),
                })
                .collect(),
        }
    }

    #[test]
    fn create_then_nothing() {
        let d = desired();
        let create = plan(&d, None);
        assert_eq!(create.actions, vec![ElbAction::Create(Box::new(d.clone()))]);
        assert!(create.reshapes);
        assert_eq!(plan(&d, Some(&converged(&d))), Plan::default());
    }

    #[test]
    fn attributes_and_members() {
        let mut d = desired();
        let o = converged(&d);
        d.network_volume = Some(100);
        d.accounting_type = Some(AccountingType::PayPerUse);
        d.listeners[0].instance_port = 31000;
        d.listeners[0].health_check.target = HealthCheckTarget::Tcp(31000);
        d.listeners[0].balancing = BalancingType::LeastConnection;
        d.members = ["node1".to_string(), "node3".to_string()].into();
        d.listeners.push(want(443, 30443));
        let p = plan(&d, Some(&o));
        assert!(p.reshapes, "a listener is added");
        let k = key(80, 31000);
        assert_eq!(
            p.actions,
            vec![
                ElbAction::Update {
                    network_volume: Some(100),
                    accounting_type: Some(AccountingType::PayPerUse)
                },
                ElbAction::Modify {
                    listener: key(80, 30080),
                    attributes: vec![
                        ElbAttribute::InstancePort(31000),
                        ElbAttribute::Balancing(BalancingType::LeastConnection)
                    ],
                },
                ElbAction::RegisterPort {
                    listener: want(443, 30443),
                    description: "k8s abcd web".into(),
                },
                ElbAction::HealthCheck {
                    listener: k.clone(),
                    health_check: tcp_check(31000, 10, 1),
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
    fn a_foreign_description_and_an_empty_path_are_read_as_such() {
        let d = desired();
        let mut o = converged(&d);
        o.listeners[0].description = "made by hand".into();
        let p = plan(&d, Some(&o));
        assert_eq!(
            p.actions,
            vec![ElbAction::Modify {
                listener: key(80, 30080),
                attributes: vec![ElbAttribute::Description("k8s abcd web".into())],
            }]
        );
        assert!(!o.has_marker(&d.marker));
        assert_eq!(
            ElbState::from_wire(Some("processing")),
            ElbState::Other("processing".into())
        );
    }

    #[test]
    fn a_path_left_over_from_an_http_check_is_not_a_difference() {
        use nifcloud_sdk::types::{
            ElasticLoadBalancerListenerDescriptions, HealthCheckOfNiftyDescribeElasticLoadBalancers,
            ListenerOfNiftyDescribeElasticLoadBalancers,
        };
        let reply = |target: &str| ElasticLoadBalancerDescriptions {
            elastic_load_balancer_name: Some("web".into()),
            elastic_load_balancer_listener_descriptions: vec![ElasticLoadBalancerListenerDescriptions {
                listener: Some(ListenerOfNiftyDescribeElasticLoadBalancers {
                    elastic_load_balancer_port: Some(80),
                    instance_port: Some(30080),
                    protocol: Some("TCP".into()),
                    health_check: Some(HealthCheckOfNiftyDescribeElasticLoadBalancers {
                        target: Some(target.into()),
                        path: Some("/healthz".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }],
            ..Default::default()
        };
        let path = |target: &str| {
            ObservedElb::from_descriptions(&[reply(target)])[0].listeners[0]
                .listener
                .health_check
                .path
                .clone()
        };
        assert_eq!(path("HTTP:32000"), Some("/healthz".into()));
        assert_eq!(path("TCP:30080"), None);
        assert_eq!(path("ICMP"), None);
    }

    #[test]
    fn system_addresses_are_read_from_every_interface() {
        use nifcloud_sdk::types::{NetworkInterfaces, SystemIpAddresses};
        let nic = |net: &str, ips: &[&str]| NetworkInterfaces {
            network_id: Some(net.into()),
            system_ip_addresses: ips
                .iter()
                .map(|a| SystemIpAddresses {
                    system_ip_address: Some((*a).into()),
                })
                .collect(),
            ..Default::default()
        };
        let reply = ElasticLoadBalancerDescriptions {
            elastic_load_balancer_name: Some("web".into()),
            network_interfaces: vec![
                nic("net-COMMON_GLOBAL", &["198.51.100.21", "198.51.100.22"]),
                nic("net-abc", &["192.168.0.2", "", "192.168.0.3"]),
            ],
            ..Default::default()
        };
        let o = &ObservedElb::from_descriptions(&[reply])[0];
        assert_eq!(o.networks, vec!["net-COMMON_GLOBAL".to_owned(), "net-abc".into()]);
        assert_eq!(
            o.system_ips,
            vec!["198.51.100.21", "198.51.100.22", "192.168.0.2", "192.168.0.3"]
        );
    }

    #[test]
    fn surplus_listener_deleted_last_and_interfaces_warned() {
        let d = desired();
        let mut o = converged(&d);
        let mut extra = o.listeners[0].clone();
        extra.listener.port = 8080;
        extra.listener.instance_port = 30880;
        o.listeners.push(extra);
        o.networks = vec!["net-COMMON_PRIVATE".into()];
        let p = plan(&d, Some(&o));
        assert_eq!(
            p.actions,
            vec![ElbAction::DeleteListener {
                listener: key(8080, 30880)
            }]
        );
        assert_eq!(p.warnings.len(), 1);
        assert!(!p.reshapes, "deleting a listener needs no re-read");
    }

    #[test]
    fn teardown_deletes_every_listener() {
        let mut d = desired();
        d.listeners.push(want(443, 30443));
        assert_eq!(
            teardown(&converged(&d)),
            vec![
                ElbAction::DeleteListener {
                    listener: key(80, 30080)
                },
                ElbAction::DeleteListener {
                    listener: key(443, 30443)
                },
            ]
        );
    }
}
