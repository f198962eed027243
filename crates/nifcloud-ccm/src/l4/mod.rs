//! L4 load balancers: reading them and carrying out [`plan::L4Action`]s.

pub mod plan;

use nifcloud_cloud::{CloudError, Disposition};
use nifcloud_sdk::Client;
use nifcloud_sdk::types::{
    ConfigureHealthCheckRequest, CreateLoadBalancerRequest, DeleteLoadBalancerRequest,
    DeregisterInstancesFromLoadBalancerRequest, DescribeLoadBalancersRequest, RegisterInstancesWithLoadBalancerRequest,
    RegisterPortWithLoadBalancerRequest, RequestHealthCheck, RequestIPAddresses, RequestInstances, RequestListener,
    RequestListenerUpdate, RequestListeners, RequestListenersOfRegisterPortWithLoadBalancer, RequestLoadBalancerNames,
    SetFilterForLoadBalancerRequest, UpdateLoadBalancerRequest,
};

use crate::lbview::Named;
use plan::{L4Action, ObservedL4};

impl Named for ObservedL4 {
    fn name(&self) -> &str {
        &self.name
    }
}

/// Every L4 load balancer in the region (one call).
pub async fn list(client: &Client) -> Result<Vec<ObservedL4>, CloudError> {
    let reply = client
        .describe_load_balancers(DescribeLoadBalancersRequest::default())
        .await
        .map_err(CloudError::wrap("DescribeLoadBalancers", "all load balancers"))?;
    let items = reply
        .describe_load_balancers_result
        .map(|r| r.load_balancer_descriptions)
        .unwrap_or_default();
    Ok(ObservedL4::from_descriptions(&items))
}

/// One L4 load balancer by name; `None` when it does not exist.
pub async fn describe(client: &Client, name: &str) -> Result<Option<ObservedL4>, CloudError> {
    let req = DescribeLoadBalancersRequest {
        load_balancer_names: vec![RequestLoadBalancerNames {
            load_balancer_name: Some(name.to_owned()),
            ..Default::default()
        }],
        ..Default::default()
    };
    match client.describe_load_balancers(req).await {
        Ok(reply) => {
            let items = reply
                .describe_load_balancers_result
                .map(|r| r.load_balancer_descriptions)
                .unwrap_or_default();
            Ok(ObservedL4::from_descriptions(&items)
                .into_iter()
                .find(|o| o.name == name))
        }
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(CloudError::new(
            "DescribeLoadBalancers",
            format!("load balancer {name}"),
            e,
        )),
    }
}

/// What an executed action produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The VIP, when the action created the load balancer.
    pub created_vip: Option<String>,
    /// Whether the create found the name taken.
    pub already_existed: bool,
}

/// Carries out one action on the load balancer `name`. Answers that mean "already done" (a port or member that
/// is already there, one that is already gone) count as success.
pub async fn execute(client: &Client, name: &str, action: &L4Action) -> Result<Outcome, CloudError> {
    let lb = || Some(name.to_owned());
    let resource = format!("load balancer {name}");
    let mut outcome = Outcome::default();
    let result = match action {
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
                    .map(|(p, ip, b)| RequestListeners {
                        load_balancer_port: Some(*p),
                        instance_port: Some(*ip),
                        balancing_type: Some(*b),
                        ..Default::default()
                    })
                    .collect(),
                network_volume: *network_volume,
                accounting_type: accounting_type.map(|a| a.to_string()),
                policy_type: policy_type.map(str::to_owned),
                ..Default::default()
            };
            match client.create_load_balancer(req).await {
                Ok(r) => {
                    outcome.created_vip = r.create_load_balancer_result.and_then(|r| r.dns_name);
                    Ok(())
                }
                Err(e) if Disposition::of(&e) == Disposition::AlreadyExists => {
                    outcome.already_existed = true;
                    Ok(())
                }
                Err(e) => Err(("CreateLoadBalancer", e)),
            }
        }
        L4Action::SetNetworkVolume(v) => client
            .update_load_balancer(UpdateLoadBalancerRequest {
                load_balancer_name: lb(),
                network_volume_update: Some(*v),
                ..Default::default()
            })
            .await
            .map(drop)
            .map_err(|e| ("UpdateLoadBalancer", e)),
        L4Action::SetAccountingType(a) => client
            .update_load_balancer(UpdateLoadBalancerRequest {
                load_balancer_name: lb(),
                accounting_type_update: Some(i64::from(*a)),
                ..Default::default()
            })
            .await
            .map(drop)
            .map_err(|e| ("UpdateLoadBalancer", e)),
        L4Action::UpdateListener { from, to } => client
            .update_load_balancer(UpdateLoadBalancerRequest {
                load_balancer_name: lb(),
                listener_update: Some(RequestListenerUpdate {
                    load_balancer_port: Some(from.0),
                    instance_port: Some(from.1),
                    listener: Some(RequestListener {
                        load_balancer_port: Some(to.0),
                        instance_port: Some(to.1),
                        balancing_type: Some(to.2),
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            })
            .await
            .map(drop)
            .map_err(|e| ("UpdateLoadBalancer", e)),
        L4Action::RegisterPort { listener } => {
            let req = RegisterPortWithLoadBalancerRequest {
                load_balancer_name: lb(),
                listeners: vec![RequestListenersOfRegisterPortWithLoadBalancer {
                    load_balancer_port: Some(listener.0),
                    instance_port: Some(listener.1),
                    balancing_type: Some(listener.2),
                    ..Default::default()
                }],
            };
            match client.register_port_with_load_balancer(req).await {
                Ok(_) => Ok(()),
                Err(e) if e.has_code("Client.Inoperable.LoadBalancerPort.AlreadyExists") => Ok(()),
                Err(e) => Err(("RegisterPortWithLoadBalancer", e)),
            }
        }
        L4Action::DeletePort { listener } => {
            let req = DeleteLoadBalancerRequest {
                load_balancer_name: lb(),
                load_balancer_port: Some(listener.0),
                instance_port: Some(listener.1),
            };
            match client.delete_load_balancer(req).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_not_found() => Ok(()),
                Err(e) => Err(("DeleteLoadBalancer", e)),
            }
        }
        L4Action::ConfigureHealthCheck {
            listener,
            target,
            interval,
            unhealthy,
        } => client
            .configure_health_check(ConfigureHealthCheckRequest {
                load_balancer_name: lb(),
                load_balancer_port: Some(listener.0),
                instance_port: Some(listener.1),
                health_check: Some(RequestHealthCheck {
                    target: Some(target.clone()),
                    interval: Some(*interval),
                    unhealthy_threshold: Some(*unhealthy),
                    ..Default::default()
                }),
            })
            .await
            .map(drop)
            .map_err(|e| ("ConfigureHealthCheck", e)),
        L4Action::RegisterInstances { listener, names } => {
            let req = RegisterInstancesWithLoadBalancerRequest {
                load_balancer_name: lb(),
                load_balancer_port: Some(listener.0),
                instance_port: Some(listener.1),
                instances: instances(names),
            };
            match client.register_instances_with_load_balancer(req).await {
                Ok(_) => Ok(()),
                Err(e) if e.has_code("Client.Inoperable.LoadBalancer.HavingRegisteredInstance") => Ok(()),
                Err(e) => Err(("RegisterInstancesWithLoadBalancer", e)),
            }
        }
        L4Action::DeregisterInstances { listener, names } => {
            let req = DeregisterInstancesFromLoadBalancerRequest {
                load_balancer_name: lb(),
                load_balancer_port: Some(listener.0),
                instance_port: Some(listener.1),
                instances: instances(names),
            };
            match client.deregister_instances_from_load_balancer(req).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_not_found() => Ok(()),
                Err(e) => Err(("DeregisterInstancesFromLoadBalancer", e)),
            }
        }
        L4Action::SetFilter {
            listener,
            add,
            remove,
            set_allow,
        } => {
            let mut members: Vec<RequestIPAddresses> = add
                .iter()
                .map(|ip| RequestIPAddresses {
                    ip_address: Some(ip.clone()),
                    add_on_filter: Some(true),
                })
                .collect();
            members.extend(remove.iter().map(|ip| RequestIPAddresses {
                ip_address: Some(ip.clone()),
                add_on_filter: Some(false),
            }));
            client
                .set_filter_for_load_balancer(SetFilterForLoadBalancerRequest {
                    load_balancer_name: lb(),
                    load_balancer_port: Some(listener.0),
                    instance_port: Some(listener.1),
                    filter_type: set_allow.then(|| "1".to_owned()),
                    ip_addresses: members,
                })
                .await
                .map(drop)
                .map_err(|e| ("SetFilterForLoadBalancer", e))
        }
    };
    result.map_err(|(op, e)| CloudError::new(op, resource, e))?;
    Ok(outcome)
}

fn instances(names: &[String]) -> Vec<RequestInstances> {
    names
        .iter()
        .map(|n| RequestInstances {
            instance_id: Some(n.clone()),
        })
        .collect()
}
