//! Elastic load balancers and security-group rules against the emulator.

mod common;

use std::collections::BTreeSet;

use cloudprovider::LoadBalancer;
use common::*;
use nifcloud_ccm::annotations as a;
use nifcloud_ccm::config::SecurityGroupSettings;
use nifcloud_ccm::naming;
use nifcloud_emulator::{Emulator, EmulatorConfig};

/// (port, instance port, protocol, balancing, description, hc target, interval, members)
type ElbListenerState = (i64, i64, String, i64, String, String, i64, BTreeSet<String>);

fn elb_state(emu: &Emulator, name: &str) -> Option<(String, i64, Vec<ElbListenerState>, Vec<String>)> {
    emu.with_state(|st| {
        let names = |ids: &[String]| -> BTreeSet<String> {
            st.instances
                .values()
                .filter(|i| ids.contains(&i.unique_id))
                .map(|i| i.name.clone())
                .collect()
        };
        st.elastic_load_balancers.values().find(|e| e.name == name).map(|e| {
            let mut ls: Vec<ElbListenerState> = e
                .listeners
                .iter()
                .map(|l| {
                    (
                        l.elb_port,
                        l.instance_port,
                        l.protocol.clone(),
                        l.balancing_type,
                        l.description.clone(),
                        l.hc_target.clone(),
                        l.hc_interval,
                        names(&l.instances),
                    )
                })
                .collect();
            ls.sort();
            (
                e.vip.clone(),
                e.network_volume,
                ls,
                e.network_interfaces.iter().map(|n| n.network_id.clone()).collect(),
            )
        })
    })
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn elastic_load_balancer_lifecycle() {
    let (emu, p) = setup().await;
    let lbs = p.load_balancers();
    let svc = service(
        &uid(20),
        &[(80, 30080)],
        &[(a::TYPE, "elb"), (a::NETWORK_VOLUME, "100")],
    );
    let name = naming::generated_name(CLUSTER, &uid(20)).unwrap();
    let marker = naming::elb_marker(CLUSTER, &name);
    let status = lbs
        .ensure_load_balancer(CLUSTER, &svc, &targets(&["node1", "node2", "node3"]))
        .await
        .unwrap();
    let (vip, volume, listeners, nets) = elb_state(&emu, &name).expect("created");
    assert_eq!(status.ingress.unwrap()[0].ip.as_deref(), Some(vip.as_str()));
    assert_eq!(volume, 100);
    assert_eq!(nets, vec!["net-COMMON_GLOBAL".to_string()]);
    assert_eq!(
        listeners,
        vec![(
            80,
            30080,
            "TCP".into(),
            1,
            marker.clone(),
            "TCP:30080".into(),
            10,
            set(&["node1", "node2", "node3"])
        )]
    );
    assert_eq!(emu.call_count("NiftyCreateElasticLoadBalancer"), 1);
    // Converged: no mutation.
    emu.reset_calls();
    lbs.ensure_load_balancer(CLUSTER, &svc, &targets(&["node1", "node2", "node3"]))
        .await
        .unwrap();
    assert_eq!(mutations(&emu), 0, "{:?}", emu.calls());
    // NodePort, balancing type, health check, members and bandwidth change; a UDP port is added.
    let mut changed = service(
        &uid(20),
        &[(80, 31080)],
        &[
            (a::TYPE, "elb"),
            (a::NETWORK_VOLUME, "200"),
            (a::BALANCING_TYPE, "2"),
            (a::HC_INTERVAL, "30"),
        ],
    );
    changed.spec.as_mut().unwrap().ports.as_mut().unwrap().push(
        cloudprovider::k8s_openapi::api::core::v1::ServicePort {
            port: 53,
            node_port: Some(30053),
            protocol: Some("UDP".into()),
            ..Default::default()
        },
    );
    lbs.ensure_load_balancer(CLUSTER, &changed, &targets(&["node2", "node4"]))
        .await
        .unwrap();
    let (vip2, volume, listeners, _) = elb_state(&emu, &name).unwrap();
    assert_eq!(vip2, vip);
    assert_eq!(volume, 200);
    assert_eq!(
        listeners,
        vec![
            (
                53,
                30053,
                "UDP".into(),
                2,
                marker.clone(),
                "TCP:30053".into(),
                30,
                set(&["node2", "node4"])
            ),
            (
                80,
                31080,
                "TCP".into(),
                2,
                marker.clone(),
                "TCP:31080".into(),
                30,
                set(&["node2", "node4"])
            ),
        ]
    );
    emu.reset_calls();
    lbs.ensure_load_balancer(CLUSTER, &changed, &targets(&["node2", "node4"]))
        .await
        .unwrap();
    assert_eq!(mutations(&emu), 0, "{:?}", emu.calls());
    // Deleted with its listeners.
    lbs.ensure_load_balancer_deleted(CLUSTER, &changed).await.unwrap();
    assert!(elb_state(&emu, &name).is_none());
    lbs.ensure_load_balancer_deleted(CLUSTER, &changed).await.unwrap();
    emu.shutdown().await;
}

#[tokio::test]
async fn every_elb_change_waits_for_available_and_survives_faults() {
    let (emu, p) = setup().await;
    // Each change keeps the ELB "processing" for 300 ms; a change meanwhile would be refused as busy.
    emu.set_delays(nifcloud_emulator::DelayConfig {
        elb_ms: 300,
        ..Default::default()
    });
    let lbs = p.load_balancers();
    let svc = service(&uid(23), &[(80, 30080), (443, 30443)], &[(a::TYPE, "elb")]);
    let name = naming::generated_name(CLUSTER, &uid(23)).unwrap();
    lbs.ensure_load_balancer(CLUSTER, &svc, &targets(&["node1"]))
        .await
        .unwrap();
    let changed = service(
        &uid(23),
        &[(80, 31080), (443, 30443)],
        &[(a::TYPE, "elb"), (a::HC_INTERVAL, "20"), (a::NETWORK_VOLUME, "20")],
    );
    // A 500 in the middle of the multi-call change surfaces; the retry converges.
    emu.set_faults(
        nifcloud_emulator::FaultConfig::none().with(nifcloud_emulator::FaultRule::fail_next(
            "NiftyConfigureElasticLoadBalancerHealthCheck",
            1,
            "Server.InternalError",
            500,
        )),
    );
    let err = lbs
        .ensure_load_balancer(CLUSTER, &changed, &targets(&["node1", "node2"]))
        .await
        .unwrap_err();
    assert_eq!(
        failure(&err),
        (
            format!("cannot change elastic load balancer {name}"),
            "NiftyConfigureElasticLoadBalancerHealthCheck",
            Some("Server.InternalError")
        )
    );
    lbs.ensure_load_balancer(CLUSTER, &changed, &targets(&["node1", "node2"]))
        .await
        .unwrap();
    let (_, volume, listeners, _) = elb_state(&emu, &name).unwrap();
    assert_eq!(volume, 20);
    assert_eq!(listeners.len(), 2);
    for l in &listeners {
        assert_eq!((l.6, &l.7), (20, &set(&["node1", "node2"])), "{l:?}");
    }
    assert_eq!((listeners[0].0, listeners[0].1), (80, 31080));
    let busy: Vec<_> = emu
        .call_log()
        .into_iter()
        .filter(|c| c.error_code.as_deref().is_some_and(|e| e.contains("Processing")))
        .collect();
    assert!(busy.is_empty(), "no change was sent while processing: {busy:?}");
    assert_eq!(emu.with_state(|st| st.elastic_load_balancers.len()), 1);
    lbs.ensure_load_balancer_deleted(CLUSTER, &changed).await.unwrap();
    assert!(elb_state(&emu, &name).is_none());
    emu.shutdown().await;
}

#[tokio::test]
async fn switching_type_replaces_the_load_balancer() {
    let (emu, p) = setup().await;
    let lbs = p.load_balancers();
    let name = naming::generated_name(CLUSTER, &uid(21)).unwrap();
    let l4 = service(&uid(21), &[(80, 30080)], &[]);
    lbs.ensure_load_balancer(CLUSTER, &l4, &targets(&["node1"]))
        .await
        .unwrap();
    assert!(emu.with_state(|st| st.load_balancers.contains_key(&name)));
    let elb = service(&uid(21), &[(80, 30080)], &[(a::TYPE, "elb")]);
    lbs.ensure_load_balancer(CLUSTER, &elb, &targets(&["node1"]))
        .await
        .unwrap();
    assert!(elb_state(&emu, &name).is_some());
    assert!(
        !emu.with_state(|st| st.load_balancers.contains_key(&name)),
        "the L4 one is gone"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn security_group_rules_follow_the_service() {
    let mut cfg = EmulatorConfig::sample();
    for i in &mut cfg.instances {
        i.security_group = Some("fwk8s".into());
    }
    let emu = emulator(cfg).await;
    let p =
        nifcloud_ccm::NifcloudProvider::new(settings(&emu, Some(SecurityGroupSettings { group_name: None }))).unwrap();
    let lbs = p.load_balancers();
    let svc = service(&uid(22), &[(80, 30080), (443, 30443)], &[]);
    let name = naming::generated_name(CLUSTER, &uid(22)).unwrap();
    let status = lbs
        .ensure_load_balancer(CLUSTER, &svc, &targets(&["node1", "node2"]))
        .await
        .unwrap();
    let vip = status.ingress.unwrap()[0].ip.clone().unwrap();
    let rules = |emu: &Emulator| -> BTreeSet<(Option<i64>, Option<String>, String)> {
        emu.with_state(|st| {
            st.security_groups["fwk8s"]
                .rules
                .iter()
                .map(|r| (r.from_port, r.cidr.clone(), r.description.clone()))
                .collect()
        })
    };
    let desc = format!("k8s lb {name}");
    let cidr = Some(format!("{vip}/32"));
    assert_eq!(
        rules(&emu),
        [
            (Some(30080), cidr.clone(), desc.clone()),
            (Some(30443), cidr.clone(), desc.clone())
        ]
        .into()
    );
    // Unchanged: one read, no change. A port change swaps its rule.
    emu.reset_calls();
    lbs.ensure_load_balancer(CLUSTER, &svc, &targets(&["node1", "node2"]))
        .await
        .unwrap();
    assert_eq!(mutations(&emu), 0, "{:?}", emu.calls());
    let svc2 = service(&uid(22), &[(80, 30080)], &[]);
    lbs.ensure_load_balancer(CLUSTER, &svc2, &targets(&["node1", "node2"]))
        .await
        .unwrap();
    assert_eq!(rules(&emu), [(Some(30080), cidr.clone(), desc.clone())].into());
    lbs.ensure_load_balancer_deleted(CLUSTER, &svc2).await.unwrap();
    assert!(rules(&emu).is_empty());
    emu.shutdown().await;
}

/// One rule of the emulated group `fwk8s`: (protocol, from port, to port, source CIDR).
type SgRule = (String, Option<i64>, Option<i64>, String);

/// The emulator and a provider with security-group rules on, every server in the group `fwk8s`.
async fn with_rules() -> (Emulator, nifcloud_ccm::NifcloudProvider) {
    let mut cfg = EmulatorConfig::sample();
    for i in &mut cfg.instances {
        i.security_group = Some("fwk8s".into());
    }
    let emu = emulator(cfg).await;
    let p =
        nifcloud_ccm::NifcloudProvider::new(settings(&emu, Some(SecurityGroupSettings { group_name: None }))).unwrap();
    (emu, p)
}

/// The rules of load balancer `name` in `fwk8s` (by their description); each is an `IN` rule from an address range.
fn sg_rules(emu: &Emulator, name: &str) -> BTreeSet<SgRule> {
    let desc = format!("k8s lb {name}");
    emu.with_state(|st| {
        st.security_groups["fwk8s"]
            .rules
            .iter()
            .filter(|r| r.description == desc)
            .map(|r| {
                assert_eq!((r.in_out.as_str(), &r.group), ("IN", &None), "{r:?}");
                (
                    r.protocol.clone(),
                    r.from_port,
                    r.to_port,
                    r.cidr.clone().unwrap_or_default(),
                )
            })
            .collect()
    })
}

fn rule_count(emu: &Emulator) -> usize {
    emu.with_state(|st| st.security_groups["fwk8s"].rules.len())
}

fn tcp_rule(port: i64, ip: &str) -> SgRule {
    ("TCP".into(), Some(port), Some(port), format!("{ip}/32"))
}

fn icmp_rule(ip: &str) -> SgRule {
    ("ICMP".into(), None, None, format!("{ip}/32"))
}

/// The system IP addresses of the elastic load balancer `name`, as the emulator holds them.
fn system_ips(emu: &Emulator, name: &str) -> Vec<String> {
    emu.with_state(|st| {
        let e = st
            .elastic_load_balancers
            .values()
            .find(|e| e.name == name)
            .expect("exists");
        e.network_interfaces.iter().flat_map(|n| n.system_ips.clone()).collect()
    })
}

/// (AuthorizeSecurityGroupIngress, RevokeSecurityGroupIngress, DescribeSecurityGroups) calls since the last reset.
fn sg_calls(emu: &Emulator) -> (u64, u64, u64) {
    (
        emu.call_count("AuthorizeSecurityGroupIngress"),
        emu.call_count("RevokeSecurityGroupIngress"),
        emu.call_count("DescribeSecurityGroups"),
    )
}

#[tokio::test]
async fn elastic_lb_rules_admit_health_checks_from_its_system_addresses() {
    let (emu, p) = with_rules().await;
    let lbs = p.load_balancers();
    let mut svc = service(&uid(24), &[(80, 30080), (443, 30443)], &[(a::TYPE, "elb")]);
    let spec = svc.spec.as_mut().unwrap();
    spec.external_traffic_policy = Some("Local".into());
    spec.health_check_node_port = Some(32000);
    let name = naming::generated_name(CLUSTER, &uid(24)).unwrap();
    let nodes = targets(&["node1", "node2"]);
    emu.reset_calls();
    let status = lbs.ensure_load_balancer(CLUSTER, &svc, &nodes).await.unwrap();
    let vip = status.ingress.unwrap()[0].ip.clone().unwrap();
    // No annotation gives them: NIFCLOUD (the emulator) assigned two on the global interface.
    let sys = system_ips(&emu, &name);
    assert_eq!(sys.len(), 2, "{sys:?}");
    assert!(!sys.contains(&vip));
    let (_, _, listeners, _) = elb_state(&emu, &name).unwrap();
    assert!(listeners.iter().all(|l| l.5 == "HTTP:32000"), "{listeners:?}");
    // Traffic from the VIP to the NodePorts; the HTTP checks of healthCheckNodePort from the VIP and both system
    // addresses, which get nothing else.
    let want: BTreeSet<SgRule> = [
        tcp_rule(30080, &vip),
        tcp_rule(30443, &vip),
        tcp_rule(32000, &vip),
        tcp_rule(32000, &sys[0]),
        tcp_rule(32000, &sys[1]),
    ]
    .into();
    assert_eq!(sg_rules(&emu, &name), want);
    assert_eq!(rule_count(&emu), want.len(), "nothing else in the group");
    assert_eq!(sg_calls(&emu), (1, 0, 1), "{:?}", emu.calls());
    // Converged: one read of the group, no change anywhere.
    emu.reset_calls();
    lbs.ensure_load_balancer(CLUSTER, &svc, &nodes).await.unwrap();
    assert_eq!(mutations(&emu), 0, "{:?}", emu.calls());
    assert_eq!(sg_calls(&emu), (0, 0, 1), "{:?}", emu.calls());
    assert_eq!(sg_rules(&emu, &name), want);
    // Deleted: every rule revoked, in one call.
    emu.reset_calls();
    lbs.ensure_load_balancer_deleted(CLUSTER, &svc).await.unwrap();
    assert!(elb_state(&emu, &name).is_none());
    assert_eq!(rule_count(&emu), 0);
    assert_eq!(sg_calls(&emu).0, 0);
    assert_eq!(sg_calls(&emu).1, 1, "{:?}", emu.calls());
    emu.reset_calls();
    lbs.ensure_load_balancer_deleted(CLUSTER, &svc).await.unwrap();
    assert_eq!(mutations(&emu), 0, "{:?}", emu.calls());
    emu.shutdown().await;
}

#[tokio::test]
async fn system_addresses_given_by_annotation_are_admitted_as_read() {
    let (emu, p) = with_rules().await;
    let lbs = p.load_balancers();
    let iface = |n: u8, f: &str| format!("{}network-interface-{n}-{f}", a::PREFIX);
    let (net1, net2, sys2) = (
        iface(1, "network-id"),
        iface(2, "network-id"),
        iface(2, "system-ip-addresses"),
    );
    let svc = service(
        &uid(27),
        &[(80, 30080)],
        &[
            (a::TYPE, "elb"),
            (net1.as_str(), "net-COMMON_GLOBAL"),
            (net2.as_str(), "net-abc123"),
            (sys2.as_str(), "192.168.0.2, 192.168.0.3"),
        ],
    );
    let name = naming::generated_name(CLUSTER, &uid(27)).unwrap();
    let nodes = targets(&["node1"]);
    let status = lbs.ensure_load_balancer(CLUSTER, &svc, &nodes).await.unwrap();
    let vip = status.ingress.unwrap()[0].ip.clone().unwrap();
    // The two given on the private LAN and the two NIFCLOUD assigned on the global (VIP) interface: all four as
    // the load balancer reports them.
    let sys = system_ips(&emu, &name);
    assert_eq!(sys.len(), 4, "{sys:?}");
    assert_eq!(&sys[2..], ["192.168.0.2", "192.168.0.3"]);
    let mut want: BTreeSet<SgRule> = sys.iter().map(|ip| tcp_rule(30080, ip)).collect();
    want.insert(tcp_rule(30080, &vip));
    assert_eq!(sg_rules(&emu, &name), want);
    emu.reset_calls();
    lbs.ensure_load_balancer(CLUSTER, &svc, &nodes).await.unwrap();
    assert_eq!(mutations(&emu), 0, "{:?}", emu.calls());
    lbs.ensure_load_balancer_deleted(CLUSTER, &svc).await.unwrap();
    assert_eq!(rule_count(&emu), 0);
    emu.shutdown().await;
}

#[tokio::test]
async fn icmp_health_checks_get_icmp_rules() {
    let (emu, p) = with_rules().await;
    let lbs = p.load_balancers();
    let l4 = service(&uid(25), &[(80, 30080)], &[(a::HC_PROTOCOL, "ICMP")]);
    let elb = service(
        &uid(26),
        &[(8080, 30880)],
        &[(a::TYPE, "elb"), (a::HC_PROTOCOL, "ICMP")],
    );
    let l4_name = naming::generated_name(CLUSTER, &uid(25)).unwrap();
    let elb_name = naming::generated_name(CLUSTER, &uid(26)).unwrap();
    let nodes = targets(&["node1", "node2"]);
    emu.reset_calls();
    let vip =
        |s: cloudprovider::k8s_openapi::api::core::v1::LoadBalancerStatus| s.ingress.unwrap()[0].ip.clone().unwrap();
    let l4_vip = vip(lbs.ensure_load_balancer(CLUSTER, &l4, &nodes).await.unwrap());
    let elb_vip = vip(lbs.ensure_load_balancer(CLUSTER, &elb, &nodes).await.unwrap());
    assert_eq!(sg_calls(&emu), (2, 0, 2), "{:?}", emu.calls());
    // L4: traffic and ICMP from the VIP.
    let l4_want: BTreeSet<SgRule> = [tcp_rule(30080, &l4_vip), icmp_rule(&l4_vip)].into();
    assert_eq!(sg_rules(&emu, &l4_name), l4_want);
    // Elastic: traffic from the VIP, ICMP from the VIP and both system addresses (no TCP port for them).
    let sys = system_ips(&emu, &elb_name);
    assert_eq!(sys.len(), 2, "{sys:?}");
    let elb_want: BTreeSet<SgRule> = [
        tcp_rule(30880, &elb_vip),
        icmp_rule(&elb_vip),
        icmp_rule(&sys[0]),
        icmp_rule(&sys[1]),
    ]
    .into();
    assert_eq!(sg_rules(&emu, &elb_name), elb_want);
    assert_eq!(rule_count(&emu), l4_want.len() + elb_want.len());
    // Converged: ICMP rules read back without ports match; nothing is changed.
    emu.reset_calls();
    lbs.ensure_load_balancer(CLUSTER, &l4, &nodes).await.unwrap();
    lbs.ensure_load_balancer(CLUSTER, &elb, &nodes).await.unwrap();
    assert_eq!(mutations(&emu), 0, "{:?}", emu.calls());
    assert_eq!(sg_calls(&emu), (0, 0, 2), "{:?}", emu.calls());
    // Back to TCP checks: the ICMP rules go, the TCP traffic rule stays, the system addresses get the NodePort.
    let elb_tcp = service(&uid(26), &[(8080, 30880)], &[(a::TYPE, "elb")]);
    emu.reset_calls();
    lbs.ensure_load_balancer(CLUSTER, &elb_tcp, &nodes).await.unwrap();
    assert_eq!(sg_calls(&emu), (1, 1, 1), "{:?}", emu.calls());
    let tcp_want: BTreeSet<SgRule> = [
        tcp_rule(30880, &elb_vip),
        tcp_rule(30880, &sys[0]),
        tcp_rule(30880, &sys[1]),
    ]
    .into();
    assert_eq!(sg_rules(&emu, &elb_name), tcp_want);
    // Deleted: every rule of each revoked in one call, the other's left alone.
    emu.reset_calls();
    lbs.ensure_load_balancer_deleted(CLUSTER, &l4).await.unwrap();
    assert_eq!(sg_calls(&emu).1, 1, "{:?}", emu.calls());
    assert!(sg_rules(&emu, &l4_name).is_empty());
    assert_eq!(sg_rules(&emu, &elb_name), tcp_want);
    lbs.ensure_load_balancer_deleted(CLUSTER, &elb_tcp).await.unwrap();
    assert_eq!(rule_count(&emu), 0);
    emu.shutdown().await;
}
