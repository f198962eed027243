//! The CCM's side of the demo: the article's nginx Service gets a NIFCLOUD L4 load balancer.
//!
//! Without a cluster there is no service controller to call the provider, so the demo calls the NIFCLOUD
//! provider's `LoadBalancer` methods itself, exactly as the controller would (ensure, then ensure-deleted), with the
//! Service and Node objects the cluster would hold.

use std::time::Duration;

use cloudprovider::provider::{LoadBalancer as _, TargetNode};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use nifcloud_ccm::annotations::LbDefaults;
use nifcloud_ccm::config::Settings;
use nifcloud_ccm::provider::NifcloudProvider;
use nifcloud_emulator::Emulator;
use nifcloud_sdk::Client;
use nifcloud_sdk::types::DescribeLoadBalancersRequest;

use super::{say, step};

const CLUSTER: &str = "demo";

/// The article's Service: `nginx`, port 80, `type: LoadBalancer`.
fn nginx_service() -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some("nginx".into()),
            namespace: Some("default".into()),
            uid: Some("5d1c9e6a-2f41-4c7e-9a55-0b7d3c2e8f10".into()),
            annotations: Some(
                [(
                    "service.beta.kubernetes.io/nifcloud-load-balancer-accounting-type".to_owned(),
                    "2".to_owned(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            selector: Some([("app".to_owned(), "nginx".to_owned())].into()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                protocol: Some("TCP".into()),
                port: 80,
                target_port: Some(IntOrString::Int(80)),
                node_port: Some(30080),
                ..Default::default()
            }]),
            external_traffic_policy: Some("Cluster".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Runs the load-balancer part of the demo.
pub async fn load_balancer(n: &mut u32, emu: &Emulator, client: &Client) -> anyhow::Result<()> {
    step(
        n,
        "The CCM's side, without a cluster: the NIFCLOUD provider's load-balancer logic called directly",
    );
    say("(no API server here, so the demo plays the service controller: the same calls, the same objects)");
    let (access_key, secret_key) = emu.credentials();
    let settings = Settings {
        region: emu.region(),
        endpoint: Some(emu.endpoint()),
        access_key_id: access_key,
        secret_access_key: nifcloud_sdk::credentials::Secret::new(secret_key),
        cache_ttl: Duration::from_secs(5),
        lb_defaults: LbDefaults::default(),
        elb_wait_timeout: Duration::from_secs(60),
        security_group: None,
    };
    let provider = NifcloudProvider::with_client(settings, client.clone());
    let nodes: Vec<TargetNode> = emu.with_state(|st| {
        let mut nodes: Vec<TargetNode> = st
            .instances
            .values()
            .filter(|i| i.zone == super::ZONE && i.phase == nifcloud_emulator::state::instances::InstancePhase::Running)
            .map(|i| TargetNode {
                name: i.name.clone(),
                provider_id: Some(format!("nifcloud:///{}/{}", i.zone, i.unique_id)),
                ..Default::default()
            })
            .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        nodes.truncate(3);
        nodes
    });
    let service = nginx_service();

    step(
        n,
        "kubectl expose deployment nginx --type=LoadBalancer --port=80 -> EnsureLoadBalancer",
    );
    let lbs = provider.load_balancers();
    emu.reset_calls();
    let status = lbs.ensure_load_balancer(CLUSTER, &service, &nodes).await?;
    let ip = status
        .ingress
        .iter()
        .flatten()
        .filter_map(|i| i.ip.clone())
        .collect::<Vec<_>>()
        .join(", ");
    say(format!("Service nginx: EXTERNAL-IP {ip}"));
    let name = lbs.load_balancer_name(CLUSTER, &service);
    let out = client
        .describe_load_balancers(DescribeLoadBalancersRequest::default())
        .await?;
    for d in out
        .describe_load_balancers_result
        .iter()
        .flat_map(|r| r.load_balancer_descriptions.iter())
    {
        if d.load_balancer_name.as_deref() != Some(name.as_str()) {
            continue;
        }
        let ports: Vec<String> = d
            .listener_descriptions
            .iter()
            .filter_map(|l| l.listener.as_ref())
            .map(|l| {
                format!(
                    "{}->{}",
                    l.load_balancer_port.unwrap_or_default(),
                    l.instance_port.unwrap_or_default()
                )
            })
            .collect();
        let members: Vec<&str> = d.instances.iter().filter_map(|i| i.instance_id.as_deref()).collect();
        say(format!(
            "NIFCLOUD load balancer {name}: VIP {}, ports {}, health check {}, servers {}",
            d.dns_name.clone().unwrap_or_default(),
            ports.join(","),
            d.health_check
                .as_ref()
                .and_then(|h| h.target.clone())
                .unwrap_or_default(),
            members.join(", ")
        ));
    }

    let behind = super::cluster::registered_behind(&emu.state_dump(), &ip);
    say(format!(
        "the emulator's own state agrees: servers behind {ip}: {}",
        behind.join(", ")
    ));
    if behind.len() != nodes.len() {
        anyhow::bail!(
            "{} servers registered behind {ip}, expected {}",
            behind.len(),
            nodes.len()
        );
    }
    super::say_calls("calls of the first ensure", emu);
    step(n, "A second ensure with nothing changed makes no mutating call");
    emu.reset_calls();
    lbs.ensure_load_balancer(CLUSTER, &service, &nodes).await?;
    super::say_calls("calls of the second ensure", emu);
    let mutating: Vec<String> = emu
        .calls()
        .into_keys()
        .filter(|a| !nifcloud_sdk::retry::is_read_only(a))
        .collect();
    if !mutating.is_empty() {
        anyhow::bail!("an ensure with nothing to change made mutating calls: {mutating:?}");
    }
    emu.reset_calls();

    step(n, "kubectl delete service nginx -> EnsureLoadBalancerDeleted");
    lbs.ensure_load_balancer_deleted(CLUSTER, &service).await?;
    let left = lbs.get_load_balancer(CLUSTER, &service).await?;
    say(format!(
        "load balancer {name}: {}",
        if left.is_none() { "deleted" } else { "still present" }
    ));
    if left.is_some() {
        anyhow::bail!("load balancer {name} still exists after EnsureLoadBalancerDeleted");
    }
    super::say_calls("calls of the deletion", emu);
    Ok(())
}
