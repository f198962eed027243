//! L4 load balancers behind the [`Backend`] seam: reading them and carrying out [`plan::L4Action`]s.

pub mod plan;

use nifcloud_cloud::{CloudError, Instance};
use nifcloud_sdk::types::{
    ConfigureHealthCheckRequest, CreateLoadBalancerRequest, DeleteLoadBalancerRequest,
    DeregisterInstancesFromLoadBalancerRequest, DescribeLoadBalancersRequest, RegisterInstancesWithLoadBalancerRequest,
    RegisterPortWithLoadBalancerRequest, RequestHealthCheck, RequestIPAddresses, RequestInstances, RequestListener,
    RequestListenerUpdate, RequestListeners, RequestListenersOfRegisterPortWithLoadBalancer, RequestLoadBalancerNames,
    SetFilterForLoadBalancerRequest, UpdateLoadBalancerRequest,
};
use nifcloud_sdk::{Client, CompactString, ToCompactString};

use crate::annotations::LbKind;
use crate::backend::{Backend, Outcome, Plan, Subject};
use crate::call::{AlreadyDone, answer, applied};
use crate::context::Context;
use crate::lbview::Named;
use crate::model::{FilterType, PortPair};
use crate::spec::ServiceLb;
use plan::{DesiredL4, L4Action, L4Listing, ObservedL4};

/// Where a `DescribeLoadBalancers` reply lists the load balancers (one entry per port pair).
const LISTING: [&str; 2] = ["DescribeLoadBalancersResult", "LoadBalancerDescriptions"];

impl Named for ObservedL4 {
    fn name(&self) -> &str {
        &self.name
    }
}

/// The L4 kind of load balancer.
#[derive(Debug)]
pub struct L4Backend;

impl Backend for L4Backend {
    type Desired = DesiredL4;
    type Observed = ObservedL4;
    type Action = L4Action;

    const KIND: LbKind = LbKind::L4;
    /// Its checks are TCP or ICMP only, which pass on every node (kube-proxy listens on `healthCheckNodePort`
    /// everywhere): under `externalTrafficPolicy: Local` only the nodes with a ready endpoint are members.
    const FOLLOWS_ENDPOINTS: bool = true;

    fn assumed_after_create(desired: &DesiredL4, vip: &str) -> Option<ObservedL4> {
        Some(desired.as_created(vip))
    }

    fn desired(&self, _: &Context, subject: &Subject<'_>, spec: &ServiceLb, members: &[Instance]) -> DesiredL4 {
        DesiredL4::new(subject.name, spec, members)
    }

    async fn describe(&self, client: &Client, name: Option<&str>) -> Result<Vec<ObservedL4>, CloudError> {
        let names = name.iter().map(|n| RequestLoadBalancerNames {
            load_balancer_name: Some((*n).into()),
            ..Default::default()
        });
        let req = DescribeLoadBalancersRequest {
            load_balancer_names: names.collect(),
            ..Default::default()
        };
        let which = name.map_or_else(|| "all load balancers".to_owned(), |n| format!("load balancer {n}"));
        // Read entry by entry as the reply arrives: the region-wide listing is large, and little of it is kept.
        let listing = client
            .send_folded(&req, &LISTING, L4Listing::default, |l, d| l.add(d))
            .await;
        listing
            .map(L4Listing::finish)
            .map_err(CloudError::wrap("DescribeLoadBalancers", which))
    }

    fn plan(desired: &DesiredL4, observed: Option<&ObservedL4>) -> Plan<L4Action> {
        plan::plan(desired, observed)
    }

    async fn execute(&self, ctx: &Context, name: &str, action: &L4Action) -> Result<Outcome, CloudError> {
        execute(&ctx.client, name, action).await
    }

    fn vip(observed: &ObservedL4) -> &str {
        &observed.vip
    }

    fn teardown(observed: &ObservedL4) -> Vec<L4Action> {
        plan::teardown(observed)
    }
}

fn update(name: &str) -> UpdateLoadBalancerRequest {
    UpdateLoadBalancerRequest {
        load_balancer_name: Some(name.into()),
        ..Default::default()
    }
}

fn instances(names: &[String]) -> Vec<RequestInstances> {
    names
        .iter()
        .map(|n| RequestInstances {
            instance_id: Some(n.as_str().into()),
        })
        .collect()
}

/// Carries out one action on the load balancer `name`. Answers that mean "already done" (a port or member that
/// is already there, one that is already gone) count as success.
async fn execute(client: &Client, name: &str, action: &L4Action) -> Result<Outcome, CloudError> {
    use AlreadyDone::{IfCode, IfExists, IfNotFound, Never};
    let lb = || Some(CompactString::from(name));
    let resource = format!("load balancer {name}");
    let pair = |p: &PortPair| (lb(), Some(p.port), Some(p.instance_port));
    let outcome = match action {
        L4Action::Create {
            listeners,
            network_volume,
            accounting_type,
            policy_type,
        } => {
            let req = CreateLoadBalancerRequest {
                load_balancer_name: lb(),
                listeners: listeners
                    .iter()
                    .map(|l| RequestListeners {
                        load_balancer_port: Some(l.port),
                        instance_port: Some(l.instance_port),
                        balancing_type: Some(l.balancing.code()),
                        ..Default::default()
                    })
                    .collect(),
                network_volume: *network_volume,
                accounting_type: accounting_type.map(|a| a.code().to_compact_string()),
                policy_type: policy_type.map(|p| p.as_str().into()),
                ..Default::default()
            };
            let reply = client.create_load_balancer(req).await;
            match answer("CreateLoadBalancer", &resource, reply, IfExists)? {
                Some(r) => Outcome::Created {
                    vip: r.create_load_balancer_result.and_then(|r| r.dns_name).map(Into::into),
                },
                None => Outcome::NameTaken,
            }
        }
        L4Action::SetNetworkVolume(v) => {
            let req = UpdateLoadBalancerRequest {
                network_volume_update: Some(*v),
                ..update(name)
            };
            applied(
                "UpdateLoadBalancer",
                &resource,
                client.update_load_balancer(req).await,
                Never,
            )?
        }
        L4Action::SetAccountingType(a) => {
            let req = UpdateLoadBalancerRequest {
                accounting_type_update: Some(a.code()),
                ..update(name)
            };
            applied(
                "UpdateLoadBalancer",
                &resource,
                client.update_load_balancer(req).await,
                Never,
            )?
        }
        L4Action::UpdateListener { from, to, balancing } => {
            let req = UpdateLoadBalancerRequest {
                listener_update: Some(RequestListenerUpdate {
                    load_balancer_port: Some(from.port),
                    instance_port: Some(from.instance_port),
                    listener: Some(RequestListener {
                        load_balancer_port: Some(to.port),
                        instance_port: Some(to.instance_port),
                        balancing_type: Some(balancing.code()),
                        ..Default::default()
                    }),
                }),
                ..update(name)
            };
            applied(
                "UpdateLoadBalancer",
                &resource,
                client.update_load_balancer(req).await,
                Never,
            )?
        }
        L4Action::RegisterPort { ports, balancing } => {
            let req = RegisterPortWithLoadBalancerRequest {
                load_balancer_name: lb(),
                listeners: vec![RequestListenersOfRegisterPortWithLoadBalancer {
                    load_balancer_port: Some(ports.port),
                    instance_port: Some(ports.instance_port),
                    balancing_type: Some(balancing.code()),
                    ..Default::default()
                }],
            };
            let reply = client.register_port_with_load_balancer(req).await;
            let taken = IfCode("Client.Inoperable.LoadBalancerPort.AlreadyExists");
            applied("RegisterPortWithLoadBalancer", &resource, reply, taken)?
        }
        L4Action::DeletePort { ports } => {
            let (load_balancer_name, load_balancer_port, instance_port) = pair(ports);
            let req = DeleteLoadBalancerRequest {
                load_balancer_name,
                load_balancer_port,
                instance_port,
            };
            let reply = client.delete_load_balancer(req).await;
            applied("DeleteLoadBalancer", &resource, reply, IfNotFound)?
        }
        L4Action::ConfigureHealthCheck { ports, health_check } => {
            let (load_balancer_name, load_balancer_port, instance_port) = pair(ports);
            let req = ConfigureHealthCheckRequest {
                load_balancer_name,
                load_balancer_port,
                instance_port,
                health_check: Some(RequestHealthCheck {
                    target: Some(health_check.target.to_compact_string()),
                    interval: Some(health_check.interval),
                    unhealthy_threshold: Some(health_check.unhealthy_threshold),
                    ..Default::default()
                }),
            };
            let reply = client.configure_health_check(req).await;
            applied("ConfigureHealthCheck", &resource, reply, Never)?
        }
        L4Action::RegisterInstances { ports, names } => {
            let (load_balancer_name, load_balancer_port, instance_port) = pair(ports);
            let req = RegisterInstancesWithLoadBalancerRequest {
                load_balancer_name,
                load_balancer_port,
                instance_port,
                instances: instances(names),
            };
            let reply = client.register_instances_with_load_balancer(req).await;
            let registered = IfCode("Client.Inoperable.LoadBalancer.HavingRegisteredInstance");
            applied("RegisterInstancesWithLoadBalancer", &resource, reply, registered)?
        }
        L4Action::DeregisterInstances { ports, names } => {
            let (load_balancer_name, load_balancer_port, instance_port) = pair(ports);
            let req = DeregisterInstancesFromLoadBalancerRequest {
                load_balancer_name,
                load_balancer_port,
                instance_port,
                instances: instances(names),
            };
            let reply = client.deregister_instances_from_load_balancer(req).await;
            applied("DeregisterInstancesFromLoadBalancer", &resource, reply, IfNotFound)?
        }
        L4Action::SetFilter {
            ports,
            add,
            remove,
            set_allow,
        } => {
            let entry = |on: bool| {
                move |ip: &String| RequestIPAddresses {
                    ip_address: Some(ip.as_str().into()),
                    add_on_filter: Some(on),
                }
            };
            let (load_balancer_name, load_balancer_port, instance_port) = pair(ports);
            let req = SetFilterForLoadBalancerRequest {
                load_balancer_name,
                load_balancer_port,
                instance_port,
                filter_type: set_allow.then(|| FilterType::Allow.as_str().into()),
                ip_addresses: add
                    .iter()
                    .map(entry(true))
                    .chain(remove.iter().map(entry(false)))
                    .collect(),
            };
            let reply = client.set_filter_for_load_balancer(req).await;
            applied("SetFilterForLoadBalancer", &resource, reply, Never)?
        }
    };
    Ok(outcome)
}
