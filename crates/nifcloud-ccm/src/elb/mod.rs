//! Elastic load balancers behind the [`Backend`] seam: reading them and carrying out [`plan::ElbAction`]s,
//! waiting for `State=available` before every change, as the API requires.

pub mod plan;

use std::time::Duration;

use nifcloud_cloud::{CloudError, Instance};
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
use nifcloud_sdk::{Client, CompactString, ToCompactString};

use crate::annotations::LbKind;
use crate::backend::{Backend, Outcome, Plan, Subject};
use crate::call::{AlreadyDone, answer, applied};
use crate::context::Context;
use crate::lbview::Named;
use crate::model::{HealthCheckTarget, ListenerKey};
use crate::naming;
use crate::spec::ServiceLb;
pub use plan::ObservedElb;
use plan::{DesiredElb, ElbAction, ElbAttribute};

/// Where a `NiftyDescribeElasticLoadBalancers` reply lists the load balancers.
const LISTING: [&str; 2] = [
    "NiftyDescribeElasticLoadBalancersResult",
    "ElasticLoadBalancerDescriptions",
];

impl Named for ObservedElb {
    fn name(&self) -> &str {
        &self.name
    }
}

/// The elastic kind of load balancer.
#[derive(Debug)]
pub struct ElbBackend;

/// The zone to create an elastic load balancer in: that of the first member server, else the region's first.
fn zone(ctx: &Context, members: &[Instance]) -> String {
    members
        .iter()
        .map(|m| m.zone.clone())
        .find(|z| !z.is_empty())
        .or_else(|| {
            nifcloud_sdk::Region::new(&ctx.settings.region)
                .ok()
                .and_then(|r| r.zones().first().map(|z| (*z).to_owned()))
        })
        .unwrap_or_default()
}

impl Backend for ElbBackend {
    type Desired = DesiredElb;
    type Observed = ObservedElb;
    type Action = ElbAction;

    const KIND: LbKind = LbKind::Elastic;

    fn marked(observed: &ObservedElb, cluster: &str) -> bool {
        observed.has_marker(&naming::elb_marker(cluster, &observed.name))
    }

    /// Its system IP addresses: NIFCLOUD's documentation says an elastic load balancer checks its servers from
    /// its IP address and these two.
    fn health_check_sources(observed: &ObservedElb) -> Vec<String> {
        observed.system_ips.clone()
    }

    async fn settle(&self, ctx: &Context, name: &str) -> Result<(), CloudError> {
        wait_available(ctx, name).await
    }

    fn desired(&self, ctx: &Context, subject: &Subject<'_>, spec: &ServiceLb, members: &[Instance]) -> DesiredElb {
        DesiredElb::new(subject.cluster, subject.name, spec, members, zone(ctx, members))
    }

    async fn describe(&self, client: &Client, name: Option<&str>) -> Result<Vec<ObservedElb>, CloudError> {
        let req = NiftyDescribeElasticLoadBalancersRequest {
            elastic_load_balancers: name.map(|n| RequestElasticLoadBalancers {
                elastic_load_balancer_name: vec![n.into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let which = match name {
            Some(n) => format!("elastic load balancer {n}"),
            None => "all elastic load balancers".to_owned(),
        };
        // Read entry by entry as the reply arrives, as the L4 listing is.
        let listing = client
            .send_folded(&req, &LISTING, Vec::new, |all: &mut Vec<ObservedElb>, d| {
                all.extend(ObservedElb::from_description(&d));
            })
            .await;
        listing.map_err(|e| CloudError::new("NiftyDescribeElasticLoadBalancers", which, e))
    }

    fn plan(desired: &DesiredElb, observed: Option<&ObservedElb>) -> Plan<ElbAction> {
        plan::plan(desired, observed)
    }

    async fn execute(&self, ctx: &Context, name: &str, action: &ElbAction) -> Result<Outcome, CloudError> {
        // The API refuses every change but a create while the load balancer is not available.
        if !matches!(action, ElbAction::Create(_)) {
            wait_available(ctx, name).await?;
        }
        execute(&ctx.client, name, action).await
    }

    fn vip(observed: &ObservedElb) -> &str {
        &observed.vip
    }

    fn teardown(observed: &ObservedElb) -> Vec<ElbAction> {
        plan::teardown(observed)
    }
}

/// Waits until the elastic load balancer `name` is `available` (or gone), polling within the configured timeout.
async fn wait_available(ctx: &Context, name: &str) -> Result<(), CloudError> {
    let timeout = ctx.settings.elb_wait_timeout;
    let opts = WaitOptions {
        interval: (timeout / 60).clamp(Duration::from_millis(200), Duration::from_secs(2)),
        timeout,
    };
    let waited = ctx.client.wait_for_elastic_load_balancer(name, opts).await;
    let resource = format!("elastic load balancer {name} (waiting for available)");
    answer(
        "NiftyDescribeElasticLoadBalancers",
        &resource,
        waited,
        AlreadyDone::IfNotFound,
    )
    .map(drop)
}

/// The HTTP status codes an HTTP health check accepts (none for other checks).
fn expectation(target: &HealthCheckTarget) -> Vec<String> {
    match target {
        HealthCheckTarget::Http(_) => vec!["2xx".to_owned()],
        _ => Vec::new(),
    }
}

/// (port, instance port, protocol) as the requests carry them.
fn key_parts(k: &ListenerKey) -> (Option<i64>, Option<i64>, Option<CompactString>) {
    (
        Some(k.port),
        Some(k.instance_port),
        Some(k.protocol.to_compact_string()),
    )
}

/// (key, value) of an attribute in `AdditionalAttributes`.
fn attribute(a: &ElbAttribute) -> RequestAdditionalAttributes {
    let (key, value) = match a {
        ElbAttribute::Protocol(p) => ("protocol", p.to_string()),
        ElbAttribute::Port(p) => ("elasticLoadBalancerPort", p.to_string()),
        ElbAttribute::InstancePort(p) => ("instancePort", p.to_string()),
        ElbAttribute::Balancing(b) => ("balancingType", b.code().to_string()),
        ElbAttribute::Description(d) => ("description", d.clone()),
    };
    RequestAdditionalAttributes {
        key: Some(key.into()),
        value: Some(value.into()),
    }
}

fn create_request(d: &DesiredElb) -> NiftyCreateElasticLoadBalancerRequest {
    let listeners = d
        .listeners
        .iter()
        .map(|w| RequestListenersOfNiftyCreateElasticLoadBalancer {
            elastic_load_balancer_port: Some(w.port),
            instance_port: Some(w.instance_port),
            protocol: Some(w.protocol.to_compact_string()),
            balancing_type: Some(w.balancing.code()),
            description: Some(d.marker.as_str().into()),
            instances: d
                .members
                .iter()
                .map(|n| RequestInstancesOfNiftyCreateElasticLoadBalancer {
                    instance_id: Some(n.as_str().into()),
                    ..Default::default()
                })
                .collect(),
            health_check: Some(RequestHealthCheckOfNiftyCreateElasticLoadBalancer {
                target: Some(w.health_check.target.to_compact_string()),
                interval: Some(w.health_check.interval),
                unhealthy_threshold: Some(w.health_check.unhealthy_threshold),
                path: w.health_check.path.as_deref().map(Into::into),
                expectation: expectation(&w.health_check.target)
                    .into_iter()
                    .map(|c| RequestExpectationOfNiftyCreateElasticLoadBalancer {
                        http_code: Some(c.into()),
                    })
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
            network_id: Some(n.network_id.as_str().into()),
            ip_address: n.ip_address.map(|a| a.to_compact_string()),
            is_vip_network: Some(i == d.vip_interface),
            system_ip_addresses: n
                .system_ip_addresses
                .iter()
                .map(|a| RequestSystemIpAddresses {
                    system_ip_address: Some(a.to_compact_string()),
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    NiftyCreateElasticLoadBalancerRequest {
        elastic_load_balancer_name: Some(d.name.as_str().into()),
        availability_zones: vec![d.zone.as_str().into()],
        listeners,
        network_interface: interfaces,
        network_volume: d.network_volume,
        accounting_type: d.accounting_type.map(|a| a.code().to_compact_string()),
    }
}

/// Carries out one action on the elastic load balancer `name`; "already done" answers count as success.
async fn execute(client: &Client, name: &str, action: &ElbAction) -> Result<Outcome, CloudError> {
    use AlreadyDone::{IfExists, IfNotFound, Never};
    let lb = || Some(CompactString::from(name));
    let resource = format!("elastic load balancer {name}");
    let outcome = match action {
        ElbAction::Create(desired) => {
            let reply = client.nifty_create_elastic_load_balancer(create_request(desired)).await;
            match answer("NiftyCreateElasticLoadBalancer", &resource, reply, IfExists)? {
                Some(r) => Outcome::Created {
                    vip: r
                        .nifty_create_elastic_load_balancer_result
                        .and_then(|r| r.dns_name)
                        .map(Into::into),
                },
                None => Outcome::NameTaken,
            }
        }
        ElbAction::Update {
            network_volume,
            accounting_type,
        } => {
            let req = NiftyUpdateElasticLoadBalancerRequest {
                elastic_load_balancer_name: lb(),
                network_volume_update: *network_volume,
                accounting_type_update: accounting_type.map(|a| a.code()),
                ..Default::default()
            };
            let reply = client.nifty_update_elastic_load_balancer(req).await;
            applied("NiftyUpdateElasticLoadBalancer", &resource, reply, Never)?
        }
        ElbAction::Modify { listener, attributes } => {
            let (port, iport, proto) = key_parts(listener);
            let req = NiftyModifyElasticLoadBalancerAttributesRequest {
                elastic_load_balancer_name: lb(),
                elastic_load_balancer_port: port,
                instance_port: iport,
                protocol: proto,
                load_balancer_attributes: Some(RequestLoadBalancerAttributes {
                    additional_attributes: attributes.iter().map(attribute).collect(),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let reply = client.nifty_modify_elastic_load_balancer_attributes(req).await;
            applied("NiftyModifyElasticLoadBalancerAttributes", &resource, reply, Never)?
        }
        ElbAction::RegisterPort { listener, description } => {
            let req = NiftyRegisterPortWithElasticLoadBalancerRequest {
                elastic_load_balancer_name: lb(),
                listeners: vec![RequestListenersOfNiftyRegisterPortWithElasticLoadBalancer {
                    elastic_load_balancer_port: Some(listener.port),
                    instance_port: Some(listener.instance_port),
                    protocol: Some(listener.protocol.to_compact_string()),
                    balancing_type: Some(listener.balancing.code()),
                    description: Some(description.as_str().into()),
                    ..Default::default()
                }],
                ..Default::default()
            };
            let reply = client.nifty_register_port_with_elastic_load_balancer(req).await;
            applied("NiftyRegisterPortWithElasticLoadBalancer", &resource, reply, IfExists)?
        }
        ElbAction::DeleteListener { listener } => {
            let (port, iport, proto) = key_parts(listener);
            let req = NiftyDeleteElasticLoadBalancerRequest {
                elastic_load_balancer_name: lb(),
                elastic_load_balancer_port: port,
                instance_port: iport,
                protocol: proto,
                ..Default::default()
            };
            let reply = client.nifty_delete_elastic_load_balancer(req).await;
            applied("NiftyDeleteElasticLoadBalancer", &resource, reply, IfNotFound)?
        }
        ElbAction::HealthCheck { listener, health_check } => {
            let (port, iport, proto) = key_parts(listener);
            let req = NiftyConfigureElasticLoadBalancerHealthCheckRequest {
                elastic_load_balancer_name: lb(),
                elastic_load_balancer_port: port,
                instance_port: iport,
                protocol: proto,
                health_check: Some(RequestHealthCheckOfNiftyConfigureElasticLoadBalancerHealthCheck {
                    target: Some(health_check.target.to_compact_string()),
                    interval: Some(health_check.interval),
                    unhealthy_threshold: Some(health_check.unhealthy_threshold),
                    path: health_check.path.as_deref().map(Into::into),
                    expectation: expectation(&health_check.target)
                        .into_iter()
                        .map(|c| RequestExpectation {
                            http_code: Some(c.into()),
                        })
                        .collect(),
                }),
                ..Default::default()
            };
            let reply = client.nifty_configure_elastic_load_balancer_health_check(req).await;
            applied("NiftyConfigureElasticLoadBalancerHealthCheck", &resource, reply, Never)?
        }
        ElbAction::Register { listener, names } => {
            let (port, iport, proto) = key_parts(listener);
            let req = NiftyRegisterInstancesWithElasticLoadBalancerRequest {
                elastic_load_balancer_name: lb(),
                elastic_load_balancer_port: port,
                instance_port: iport,
                protocol: proto,
                instances: names
                    .iter()
                    .map(|n| RequestInstancesOfNiftyRegisterInstancesWithElasticLoadBalancer {
                        instance_id: Some(n.as_str().into()),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            };
            let reply = client.nifty_register_instances_with_elastic_load_balancer(req).await;
            applied(
                "NiftyRegisterInstancesWithElasticLoadBalancer",
                &resource,
                reply,
                IfExists,
            )?
        }
        ElbAction::Deregister { listener, names } => {
            let (port, iport, proto) = key_parts(listener);
            let req = NiftyDeregisterInstancesFromElasticLoadBalancerRequest {
                elastic_load_balancer_name: lb(),
                elastic_load_balancer_port: port,
                instance_port: iport,
                protocol: proto,
                instances: names
                    .iter()
                    .map(|n| RequestInstancesOfNiftyDeregisterInstancesFromElasticLoadBalancer {
                        instance_id: Some(n.as_str().into()),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            };
            let reply = client.nifty_deregister_instances_from_elastic_load_balancer(req).await;
            applied(
                "NiftyDeregisterInstancesFromElasticLoadBalancer",
                &resource,
                reply,
                IfNotFound,
            )?
        }
    };
    Ok(outcome)
}
