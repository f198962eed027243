//! Elastic load balancers: reading them, carrying out [`plan::ElbAction`]s (waiting for `State=available`
//! before every change, as the API requires), and the reconcile loop.

pub mod plan;

use std::time::Duration;

use cloudprovider::ProviderError;
use cloudprovider::k8s_openapi::api::core::v1::Service;
use nifcloud_cloud::{CloudError, Disposition, Instance};
use nifcloud_sdk::Client;
use nifcloud_sdk::types::{
    NiftyConfigureElasticLoadBalancerHealthCheckRequest, NiftyCreateElasticLoadBalancerRequest,
    NiftyDeleteElasticLoadBalancerRequest, NiftyDeregisterInstancesFromElasticLoadBalancerRequest,
    NiftyDescribeElasticLoadBalancersRequest, NiftyModifyElasticLoadBalancerAttributesRequest,
    NiftyRegisterInstancesWithElasticLoadBalancerRequest, NiftyRegisterPortWithElasticLoadBalancerRequest,
    NiftyUpdateElasticLoadBalancerRequest, RequestAdditionalAttributes, RequestElasticLoadBalancers,
    RequestExpectation, RequestExpectationOfNiftyCreateElasticLoadBalancer,
    RequestHealthCheckOfNiftyConfigureElasticLoadBalancerHealthCheck,
    RequestHealthCheckOfNiftyCreateElasticLoadBalancer, RequestInstancesOfNiftyCreateElasticLoadBalancer,
    RequestInstancesOfNiftyDeregisterInstancesFromElasticLoadBalancer,
    RequestInstancesOfNiftyRegisterInstancesWithElasticLoadBalancer, RequestListenersOfNiftyCreateElasticLoadBalancer,
    RequestListenersOfNiftyRegisterPortWithElasticLoadBalancer, RequestLoadBalancerAttributes,
    RequestNetworkInterfaceOfNiftyCreateElasticLoadBalancer, RequestSystemIpAddresses,
};
use nifcloud_sdk::waiters::WaitOptions;

use crate::lbview::Named;
use crate::naming;
use crate::provider::{NOT_VISIBLE_RETRY, Shared, cloud_error, member_names};
use crate::spec::ServiceLb;
pub use plan::ObservedElb;
use plan::{DesiredElb, ElbAction, ListenerKey, WantElbListener};

impl Named for ObservedElb {
    fn name(&self) -> &str {
        &self.name
    }
}

impl ObservedElb {
    /// Whether this load balancer carries `cluster`'s ownership marker.
    pub fn marked(&self, cluster: &str) -> bool {
        self.has_marker(&naming::elb_marker(cluster, &self.name))
    }
}

fn descriptions(r: nifcloud_sdk::types::NiftyDescribeElasticLoadBalancersResultWrapper) -> Vec<ObservedElb> {
    let items = r
        .nifty_describe_elastic_load_balancers_result
        .map(|r| r.elastic_load_balancer_descriptions)
        .unwrap_or_default();
    ObservedElb::from_descriptions(&items)
}

/// Every elastic load balancer (one call).
pub async fn list(client: &Client) -> Result<Vec<ObservedElb>, CloudError> {
    client
        .nifty_describe_elastic_load_balancers(NiftyDescribeElasticLoadBalancersRequest::default())
        .await
        .map(descriptions)
        .map_err(CloudError::wrap(
            "NiftyDescribeElasticLoadBalancers",
            "all elastic load balancers",
        ))
}

/// One elastic load balancer by name.
pub async fn describe(client: &Client, name: &str) -> Result<Option<ObservedElb>, CloudError> {
    let req = NiftyDescribeElasticLoadBalancersRequest {
        elastic_load_balancers: Some(RequestElasticLoadBalancers {
            elastic_load_balancer_name: vec![name.to_owned()],
            ..Default::default()
        }),
        ..Default::default()
    };
    match client.nifty_describe_elastic_load_balancers(req).await {
        Ok(r) => Ok(descriptions(r).into_iter().find(|o| o.name == name)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(CloudError::new(
            "NiftyDescribeElasticLoadBalancers",
            format!("elastic load balancer {name}"),
            e,
        )),
    }
}

async fn wait_available(sh: &Shared, name: &str) -> Result<(), CloudError> {
    let opts = WaitOptions {
        interval: (sh.settings.elb_wait_timeout / 60).clamp(Duration::from_millis(200), Duration::from_secs(2)),
        timeout: sh.settings.elb_wait_timeout,
    };
    match sh.client.wait_for_elastic_load_balancer(name, opts).await {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(CloudError::new(
            "NiftyDescribeElasticLoadBalancers",
            format!("elastic load balancer {name} (waiting for available)"),
            e,
        )),
    }
}

fn health_expectation(target: &str) -> Vec<String> {
    if target.starts_with("HTTP") {
        vec!["2xx".to_owned()]
    } else {
        Vec::new()
    }
}

/// Carries out one action; "already done" answers count as success. Returns the VIP of a create.
pub async fn execute(sh: &Shared, d: &DesiredElb, action: &ElbAction) -> Result<Option<String>, CloudError> {
    let client = &sh.client;
    let name = || Some(d.name.clone());
    let resource = format!("elastic load balancer {}", d.name);
    let key_parts = |k: &ListenerKey| (Some(k.0), Some(k.1), Some(k.2.clone()));
    let r: Result<Option<String>, (&'static str, nifcloud_sdk::Error)> = match action {
        ElbAction::Create => {
            let listeners = d
                .listeners
                .iter()
                .map(|w| RequestListenersOfNiftyCreateElasticLoadBalancer {
                    elastic_load_balancer_port: Some(w.port),
                    instance_port: Some(w.instance_port),
                    protocol: Some(w.protocol.clone()),
                    balancing_type: Some(w.balancing_type),
                    description: Some(d.marker.clone()),
                    instances: d
                        .instances
                        .iter()
                        .map(|n| RequestInstancesOfNiftyCreateElasticLoadBalancer {
                            instance_id: Some(n.clone()),
                            ..Default::default()
                        })
                        .collect(),
                    health_check: Some(RequestHealthCheckOfNiftyCreateElasticLoadBalancer {
                        target: Some(w.hc_target.clone()),
                        interval: Some(w.hc_interval),
                        unhealthy_threshold: Some(w.hc_unhealthy),
                        path: w.hc_path.clone(),
                        expectation: health_expectation(&w.hc_target)
                            .into_iter()
                            .map(|c| RequestExpectationOfNiftyCreateElasticLoadBalancer { http_code: Some(c) })
                            .collect(),
                    }),
                    ..Default::default()
                })
                .collect();
            let interfaces = d
                .interfaces
                .iter()
                .enumerate()
                .map(|(i, n)| RequestNetworkInterfaceOfNiftyCreateElasticLoadBalancer {
                    network_id: Some(n.network_id.clone()),
                    ip_address: n.ip_address.clone(),
                    is_vip_network: Some(i == d.vip_interface),
                    system_ip_addresses: n
                        .system_ip_addresses
                        .iter()
                        .map(|a| RequestSystemIpAddresses {
                            system_ip_address: Some(a.to_string()),
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect();
            let req = NiftyCreateElasticLoadBalancerRequest {
                elastic_load_balancer_name: name(),
                availability_zones: vec![d.zone.clone()],
                listeners,
                network_interface: interfaces,
                network_volume: d.network_volume,
                accounting_type: d.accounting_type.map(|a| a.to_string()),
            };
            match client.nifty_create_elastic_load_balancer(req).await {
                Ok(r) => Ok(r.nifty_create_elastic_load_balancer_result.and_then(|r| r.dns_name)),
                Err(e) if Disposition::of(&e) == Disposition::AlreadyExists => Ok(None),
                Err(e) => Err(("NiftyCreateElasticLoadBalancer", e)),
            }
        }
        ElbAction::Update {
            network_volume,
            accounting_type,
        } => client
            .nifty_update_elastic_load_balancer(NiftyUpdateElasticLoadBalancerRequest {
                elastic_load_balancer_name: name(),
                network_volume_update: *network_volume,
                accounting_type_update: accounting_type.map(i64::from),
                ..Default::default()
            })
            .await
            .map(|_| None)
            .map_err(|e| ("NiftyUpdateElasticLoadBalancer", e)),
        ElbAction::Modify { listener, attributes } => {
            let (port, iport, proto) = key_parts(listener);
            client
                .nifty_modify_elastic_load_balancer_attributes(NiftyModifyElasticLoadBalancerAttributesRequest {
                    elastic_load_balancer_name: name(),
                    elastic_load_balancer_port: port,
                    instance_port: iport,
                    protocol: proto,
                    load_balancer_attributes: Some(RequestLoadBalancerAttributes {
                        additional_attributes: attributes
                            .iter()
                            .map(|(k, v)| RequestAdditionalAttributes {
                                key: Some((*k).to_owned()),
                                value: Some(v.clone()),
                            })
                            .collect(),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await
                .map(|_| None)
                .map_err(|e| ("NiftyModifyElasticLoadBalancerAttributes", e))
        }
        ElbAction::RegisterPort { listener } => {
            let req = NiftyRegisterPortWithElasticLoadBalancerRequest {
                elastic_load_balancer_name: name(),
                listeners: vec![RequestListenersOfNiftyRegisterPortWithElasticLoadBalancer {
                    elastic_load_balancer_port: Some(listener.port),
                    instance_port: Some(listener.instance_port),
                    protocol: Some(listener.protocol.clone()),
                    balancing_type: Some(listener.balancing_type),
                    description: Some(d.marker.clone()),
                    ..Default::default()
                }],
                ..Default::default()
            };
            match client.nifty_register_port_with_elastic_load_balancer(req).await {
                Ok(_) => Ok(None),
                Err(e) if Disposition::of(&e) == Disposition::AlreadyExists => Ok(None),
                Err(e) => Err(("NiftyRegisterPortWithElasticLoadBalancer", e)),
            }
        }
        ElbAction::DeleteListener { listener } => {
            let (port, iport, proto) = key_parts(listener);
            let req = NiftyDeleteElasticLoadBalancerRequest {
                elastic_load_balancer_name: name(),
                elastic_load_balancer_port: port,
                instance_port: iport,
                protocol: proto,
                ..Default::default()
            };
            match client.nifty_delete_elastic_load_balancer(req).await {
                Ok(_) => Ok(None),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(("NiftyDeleteElasticLoadBalancer", e)),
            }
        }
        ElbAction::HealthCheck {
            listener,
            target,
            interval,
            unhealthy,
            path,
        } => {
            let (port, iport, proto) = key_parts(listener);
            client
                .nifty_configure_elastic_load_balancer_health_check(
                    NiftyConfigureElasticLoadBalancerHealthCheckRequest {
                        elastic_load_balancer_name: name(),
                        elastic_load_balancer_port: port,
                        instance_port: iport,
                        protocol: proto,
                        health_check: Some(RequestHealthCheckOfNiftyConfigureElasticLoadBalancerHealthCheck {
                            target: Some(target.clone()),
                            interval: Some(*interval),
                            unhealthy_threshold: Some(*unhealthy),
                            path: path.clone(),
                            expectation: health_expectation(target)
                                .into_iter()
                                .map(|c| RequestExpectation { http_code: Some(c) })
                                .collect(),
                        }),
                        ..Default::default()
                    },
                )
                .await
                .map(|_| None)
                .map_err(|e| ("NiftyConfigureElasticLoadBalancerHealthCheck", e))
        }
        ElbAction::Register { listener, names } => {
            let (port, iport, proto) = key_parts(listener);
            let req = NiftyRegisterInstancesWithElasticLoadBalancerRequest {
                elastic_load_balancer_name: name(),
                elastic_load_balancer_port: port,
                instance_port: iport,
                protocol: proto,
                instances: names
                    .iter()
                    .map(|n| RequestInstancesOfNiftyRegisterInstancesWithElasticLoadBalancer {
                        instance_id: Some(n.clone()),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            };
            match client.nifty_register_instances_with_elastic_load_balancer(req).await {
                Ok(_) => Ok(None),
                Err(e) if Disposition::of(&e) == Disposition::AlreadyExists => Ok(None),
                Err(e) => Err(("NiftyRegisterInstancesWithElasticLoadBalancer", e)),
            }
        }
        ElbAction::Deregister { listener, names } => {
            let (port, iport, proto) = key_parts(listener);
            let req = NiftyDeregisterInstancesFromElasticLoadBalancerRequest {
                elastic_load_balancer_name: name(),
                elastic_load_balancer_port: port,
                instance_port: iport,
                protocol: proto,
                instances: names
                    .iter()
                    .map(|n| RequestInstancesOfNiftyDeregisterInstancesFromElasticLoadBalancer {
                        instance_id: Some(n.clone()),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            };
            match client.nifty_deregister_instances_from_elastic_load_balancer(req).await {
                Ok(_) => Ok(None),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(("NiftyDeregisterInstancesFromElasticLoadBalancer", e)),
            }
        }
    };
    r.map_err(|(op, e)| CloudError::new(op, resource, e))
}

/// The desired elastic load balancer of a Service.
pub fn desired_elb(cluster: &str, name: &str, lb: &ServiceLb, members: &[Instance], zone: String) -> DesiredElb {
    let o = &lb.options;
    DesiredElb {
        name: name.to_owned(),
        marker: naming::elb_marker(cluster, name),
        zone,
        network_volume: o.network_volume,
        accounting_type: o.accounting_type,
        interfaces: o.elb_interfaces.clone(),
        vip_interface: o.elb_vip_interface,
        listeners: lb
            .listeners
            .iter()
            .map(|l| WantElbListener {
                port: l.port,
                instance_port: l.node_port,
                protocol: l.protocol.clone(),
                balancing_type: o.balancing_type,
                hc_target: l.hc_target.clone(),
                hc_interval: o.hc_interval,
                hc_unhealthy: o.hc_unhealthy_threshold,
                hc_path: l.hc_path.clone(),
            })
            .collect(),
        instances: member_names(members),
    }
}

/// Brings the Service's elastic load balancer `name` in line and returns its VIP.
pub async fn ensure(
    sh: &Shared,
    cluster: &str,
    svc: &Service,
    name: &str,
    lb: &ServiceLb,
    members: &[Instance],
) -> Result<String, ProviderError> {
    let zone = members
        .iter()
        .map(|m| m.zone.clone())
        .find(|z| !z.is_empty())
        .or_else(|| {
            nifcloud_sdk::Region::new(&sh.settings.region)
                .ok()
                .and_then(|r| r.zones().first().map(|z| (*z).to_owned()))
        })
        .unwrap_or_default();
    let desired = desired_elb(cluster, name, lb, members, zone);
    let mut observed = sh.get_elb(name).await?;
    if let Some(o) = &observed
        && !sh.ownership(cluster, svc, name, o.marked(cluster)).is_owned()
    {
        let note = format!("elastic load balancer {name} exists but was not created by this cluster; left untouched");
        sh.warn(svc, "LoadBalancerNotOwned", note.clone()).await;
        return Err(ProviderError::invalid("LoadBalancerNotOwned", note));
    }
    let mut vip = observed.as_ref().map(|o| o.vip.clone()).unwrap_or_default();
    for round in 0..4 {
        let p = plan::plan(&desired, observed.as_ref());
        if round == 0 {
            for w in &p.warnings {
                sh.warn(svc, "LoadBalancerSettingNotApplied", w.clone()).await;
            }
        }
        if p.actions.is_empty() {
            break;
        }
        let structural = p.actions.iter().any(ElbAction::is_structural);
        for action in &p.actions {
            if !matches!(action, ElbAction::Create) {
                wait_available(sh, name).await.map_err(cloud_error)?;
            }
            tracing::info!(lb = name, ?action, "elastic load balancer change");
            let result = execute(sh, &desired, action).await;
            sh.elb.mark_dirty(name);
            if let Some(v) = result.map_err(cloud_error)? {
                vip = v;
            }
            if matches!(action, ElbAction::Create) {
                sh.record_created(cluster, svc, name).await;
            }
        }
        wait_available(sh, name).await.map_err(cloud_error)?;
        if !structural {
            break;
        }
        observed = sh.get_elb(name).await?;
        match &observed {
            Some(o) => vip = o.vip.clone(),
            None => {
                return Err(ProviderError::retry_after(
                    NOT_VISIBLE_RETRY,
                    format!("elastic load balancer {name} was created but is not visible yet"),
                ));
            }
        }
    }
    if vip.is_empty() {
        return Err(ProviderError::retry_after(
            NOT_VISIBLE_RETRY,
            format!("elastic load balancer {name} has no VIP yet"),
        ));
    }
    Ok(vip)
}

/// Deletes the elastic load balancer `name` if it exists and this cluster owns it (`fresh`: decide on a read of
/// that name rather than the shared listing).
pub async fn delete_if_owned(
    sh: &Shared,
    cluster: &str,
    svc: &Service,
    name: &str,
    fresh: bool,
) -> Result<(), ProviderError> {
    if fresh {
        sh.elb.mark_dirty(name);
    }
    let Some(observed) = sh.get_elb(name).await? else {
        return Ok(());
    };
    if !sh.ownership(cluster, svc, name, observed.marked(cluster)).is_owned() {
        sh.warn(
            svc,
            "LoadBalancerNotOwned",
            format!("elastic load balancer {name} was not created by this cluster; not deleting it"),
        )
        .await;
        return Ok(());
    }
    let d = DesiredElb {
        name: name.to_owned(),
        marker: String::new(),
        zone: String::new(),
        network_volume: None,
        accounting_type: None,
        interfaces: Vec::new(),
        vip_interface: 0,
        listeners: Vec::new(),
        instances: Default::default(),
    };
    for l in &observed.listeners {
        wait_available(sh, name).await.map_err(cloud_error)?;
        let action = ElbAction::DeleteListener { listener: l.key() };
        tracing::info!(lb = name, ?action, "elastic load balancer delete");
        let result = execute(sh, &d, &action).await;
        sh.elb.mark_dirty(name);
        result.map_err(cloud_error)?;
    }
    Ok(())
}
