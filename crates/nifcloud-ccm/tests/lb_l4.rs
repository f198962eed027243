//! L4 load balancers against the emulator: creation, reconciliation of every attribute, no-op economy,
//! ownership, deletion and fault injection, with exact call counts.

mod common;

use std::collections::BTreeSet;

use cloudprovider::{LoadBalancer, ProviderError};
use common::*;
use nifcloud_ccm::annotations as a;
use nifcloud_ccm::naming;
use nifcloud_emulator::{AllowAnyEntry, Emulator, EmulatorConfig, FaultConfig, FaultRule};

/// (lb port, instance port, balancing, hc target, interval, unhealthy, member names, filter type, filter ips)
type PortState = (
    i64,
    i64,
    i64,
    String,
    i64,
    i64,
    BTreeSet<String>,
    String,
    BTreeSet<String>,
);

fn lb_state(emu: &Emulator, name: &str) -> Option<(String, i64, String, Vec<PortState>)> {
    emu.with_state(|st| {
        let names = |ids: &[String]| -> BTreeSet<String> {
            st.instances
                .values()
                .filter(|i| ids.contains(&i.unique_id))
                .map(|i| i.name.clone())
                .collect()
        };
        st.load_balancers.get(name).map(|lb| {
            let mut ports: Vec<PortState> = lb
                .ports
                .iter()
                .map(|p| {
                    (
                        p.lb_port,
                        p.instance_port,
                        p.balancing_type,
                        p.hc_target.clone(),
                        p.hc_interval,
                        p.hc_unhealthy,
                        names(&p.instances),
                        p.filter_type.clone(),
                        p.filter_ips.iter().cloned().collect(),
                    )
                })
                .collect();
            ports.sort();
            (
                lb.vip.clone(),
                lb.network_volume,
                lb.next_month_accounting_type.clone(),
                ports,
            )
        })
    })
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn creates_an_l4_load_balancer_with_every_node_and_reports_its_vip() {
    let (emu, p) = setup().await;
    let lbs = p.load_balancers();
    let svc = service(&uid(1), &[(80, 30080)], &[]);
    let name = naming::generated_name(CLUSTER, &uid(1)).unwrap();
    assert_eq!(lbs.load_balancer_name(CLUSTER, &svc), name);
    let status = lbs
        .ensure_load_balancer(CLUSTER, &svc, &targets(&["node1", "node2", "node3"]))
        .await
        .unwrap();
    let (vip, volume, _, ports) = lb_state(&emu, &name).expect("created");
    assert_eq!(status.ingress.unwrap()[0].ip.as_deref(), Some(vip.as_str()));
    assert_eq!(volume, 10);
    assert_eq!(
        ports,
        vec![(
            80,
            30080,
            1,
            "TCP:30080".to_string(),
            10,
            1,
            set(&["node1", "node2", "node3"]),
            "1".to_string(),
            set(&["*.*.*.*"])
        )]
    );
    // Exactly: one listing of servers, one of load balancers (none re-read after the create: its state is
    // known), and the create, health check and registration. The default filter allows everyone: no SetFilter.
    let calls = emu.calls();
    let count = |a: &str| calls.get(a).copied().unwrap_or(0);
    assert_eq!(count("DescribeInstances"), 1);
    assert_eq!(count("DescribeLoadBalancers"), 1);
    assert_eq!(count("CreateLoadBalancer"), 1);
    assert_eq!(count("ConfigureHealthCheck"), 1);
    assert_eq!(count("RegisterInstancesWithLoadBalancer"), 1);
    assert_eq!(count("SetFilterForLoadBalancer"), 0);
    assert_eq!(mutations(&emu), 3);

    // A second ensure reads the load balancer once (it changed since the listing) and changes nothing; a
    // third reads nothing at all.
    emu.reset_calls();
    lbs.ensure_load_balancer(CLUSTER, &svc, &targets(&["node1", "node2", "node3"]))
        .await
        .unwrap();
    assert_eq!(mutations(&emu), 0);
    assert_eq!(emu.call_count("DescribeLoadBalancers"), 1);
    assert_eq!(emu.call_count("DescribeInstances"), 0);
    emu.reset_calls();
    lbs.ensure_load_balancer(CLUSTER, &svc, &targets(&["node1", "node2", "node3"]))
        .await
        .unwrap();
    assert_eq!(emu.calls().values().sum::<u64>(), 0, "{:?}", emu.calls());
    let got = lbs.get_load_balancer(CLUSTER, &svc).await.unwrap().unwrap();
    assert_eq!(got.ingress.unwrap()[0].ip.as_deref(), Some(vip.as_str()));
    emu.shutdown().await;
}

#[tokio::test]
async fn every_attribute_is_reconciled_after_creation() {
    let (emu, p) = setup().await;
    let lbs = p.load_balancers();
    let svc = service(&uid(2), &[(80, 30080)], &[]);
    let name = naming::generated_name(CLUSTER, &uid(2)).unwrap();
    lbs.ensure_load_balancer(CLUSTER, &svc, &targets(&["node1", "node2"]))
        .await
        .unwrap();
    let vip = lb_state(&emu, &name).unwrap().0;

    // Annotations, ports (80 -> 8080 with a new NodePort, plus 443), nodes and source ranges all change.
    let mut changed = service(
        &uid(2),
        &[(8080, 31080), (443, 30443)],
        &[
            (a::NETWORK_VOLUME, "100"),
            (a::ACCOUNTING_TYPE, "2"),
            (a::BALANCING_TYPE, "2"),
            (a::HC_INTERVAL, "30"),
            (a::HC_UNHEALTHY_THRESHOLD, "3"),
        ],
    );
    changed.spec.as_mut().unwrap().load_balancer_source_ranges = Some(vec!["10.0.0.0/8".into(), "192.0.2.7/32".into()]);
    emu.reset_calls();
    let status = lbs
        .ensure_load_balancer(CLUSTER, &changed, &targets(&["node2", "node3"]))
        .await
        .unwrap();
    assert_eq!(
        status.ingress.unwrap()[0].ip.as_deref(),
        Some(vip.as_str()),
        "the VIP survives"
    );
    let (_, volume, accounting, ports) = lb_state(&emu, &name).unwrap();
    assert_eq!(volume, 100);
    assert_eq!(accounting, "2");
    let filter = set(&["10.0.0.0/8", "192.0.2.7"]);
    let members = set(&["node2", "node3"]);
    assert_eq!(
        ports,
        vec![
            (
                443,
                30443,
                2,
                "TCP:30443".into(),
                30,
                3,
                members.clone(),
                "1".into(),
                filter.clone()
            ),
            (
                8080,
                31080,
                2,
                "TCP:31080".into(),
                30,
                3,
                members.clone(),
                "1".into(),
                filter.clone()
            ),
        ]
    );
    assert_eq!(emu.call_count("CreateLoadBalancer"), 0);
    assert_eq!(
        emu.call_count("DeleteLoadBalancer"),
        0,
        "the changed port was updated in place"
    );

    // Converged: nothing more to do.
    emu.reset_calls();
    lbs.ensure_load_balancer(CLUSTER, &changed, &targets(&["node2", "node3"]))
        .await
        .unwrap();
    assert_eq!(mutations(&emu), 0, "{:?}", emu.calls());

    // A port removed, the ranges dropped: the listener goes, the filter opens again.
    let back = service(
        &uid(2),
        &[(443, 30443)],
        &[(a::NETWORK_VOLUME, "100"), (a::ACCOUNTING_TYPE, "2")],
    );
    lbs.ensure_load_balancer(CLUSTER, &back, &targets(&["node2", "node3"]))
        .await
        .unwrap();
    let (_, _, _, ports) = lb_state(&emu, &name).unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!((ports[0].0, ports[0].2, ports[0].4), (443, 1, 10));
    assert_eq!(ports[0].8, set(&["*.*.*.*"]));
    emu.shutdown().await;
}

#[tokio::test]
async fn local_traffic_policy_checks_the_health_check_node_port() {
    let (emu, p) = setup().await;
    let mut svc = service(&uid(3), &[(80, 30080)], &[]);
    let spec = svc.spec.as_mut().unwrap();
    spec.external_traffic_policy = Some("Local".into());
    spec.health_check_node_port = Some(32123);
    p.load_balancers()
        .ensure_load_balancer(CLUSTER, &svc, &targets(&["node1"]))
        .await
        .unwrap();
    let name = naming::generated_name(CLUSTER, &uid(3)).unwrap();
    assert_eq!(lb_state(&emu, &name).unwrap().3[0].3, "TCP:32123");
    emu.shutdown().await;
}

#[tokio::test]
async fn source_ranges_at_creation_replace_the_allow_any_filter() {
    let (emu, p) = setup().await;
    let mut svc = service(&uid(12), &[(80, 30080)], &[]);
    svc.spec.as_mut().unwrap().load_balancer_source_ranges = Some(vec!["192.0.2.0/24".into()]);
    p.load_balancers()
        .ensure_load_balancer(CLUSTER, &svc, &targets(&["node1"]))
        .await
        .unwrap();
    let name = naming::generated_name(CLUSTER, &uid(12)).unwrap();
    let port = &lb_state(&emu, &name).unwrap().3[0];
    assert_eq!((port.7.as_str(), &port.8), ("1", &set(&["192.0.2.0/24"])));
    emu.reset_calls();
    p.load_balancers()
        .ensure_load_balancer(CLUSTER, &svc, &targets(&["node1"]))
        .await
        .unwrap();
    assert_eq!(mutations(&emu), 0);
    emu.shutdown().await;
}

/// The address changes of every `SetFilterForLoadBalancer` call since the last reset: (address, added?).
fn filter_calls(emu: &Emulator) -> Vec<Vec<(String, bool)>> {
    emu.calls_of("SetFilterForLoadBalancer")
        .iter()
        .map(|c| {
            (1..)
                .map_while(|n| {
                    let ip = c.params.get(&format!("IPAddresses.member.{n}.IPAddress"))?;
                    let add = c.params.get(&format!("IPAddresses.member.{n}.AddOnFilter"));
                    Some((ip.clone(), add.map(String::as_str) != Some("false")))
                })
                .collect()
        })
        .collect()
}

fn change(ip: &str, add: bool) -> (String, bool) {
    (ip.to_owned(), add)
}

/// Source ranges set at creation, changed, dropped and set again, against a service that replaces `*.*.*.*`
/// with the addresses (as the real one does) and one that keeps it listed beside them: the filter ends as
/// wanted after one reconcile each time, the next reconcile changes nothing, and `*.*.*.*` is never added and
/// removed at most once.
#[tokio::test]
async fn the_filter_converges_whether_the_service_replaces_or_keeps_allow_any() {
    for mode in [AllowAnyEntry::Replaced, AllowAnyEntry::Kept] {
        let cfg = EmulatorConfig {
            lb_filter_any: mode,
            ..EmulatorConfig::sample()
        };
        let emu = emulator(cfg).await;
        let p = nifcloud_ccm::NifcloudProvider::new(settings(&emu, None)).unwrap();
        let lbs = p.load_balancers();
        let name = naming::generated_name(CLUSTER, &uid(13)).unwrap();
        let nodes = targets(&["node1"]);
        let with_ranges = |ranges: &[&str]| {
            let mut svc = service(&uid(13), &[(80, 30080)], &[]);
            svc.spec.as_mut().unwrap().load_balancer_source_ranges =
                Some(ranges.iter().map(|r| r.to_string()).collect());
            svc
        };
        let filter = |emu: &Emulator| lb_state(emu, &name).unwrap().3[0].8.clone();
        let any = set(&["*.*.*.*"]);
        let kept = mode == AllowAnyEntry::Kept;

        // Closed at creation: the addresses are added; a service that keeps "*.*.*.*" beside them gets one more
        // call removing it, in the same reconcile.
        let closed = with_ranges(&["192.0.2.0/24", "198.51.100.7/32"]);
        lbs.ensure_load_balancer(CLUSTER, &closed, &nodes).await.unwrap();
        assert_eq!(filter(&emu), set(&["192.0.2.0/24", "198.51.100.7"]), "{mode:?}");
        let mut expected = vec![vec![change("192.0.2.0/24", true), change("198.51.100.7", true)]];
        if kept {
            expected.push(vec![change("*.*.*.*", false)]);
        }
        assert_eq!(filter_calls(&emu), expected, "{mode:?}");
        emu.reset_calls();
        lbs.ensure_load_balancer(CLUSTER, &closed, &nodes).await.unwrap();
        assert_eq!(mutations(&emu), 0, "{mode:?}: converged");

        // Another address: one call swapping them.
        let moved = with_ranges(&["203.0.113.0/24"]);
        lbs.ensure_load_balancer(CLUSTER, &moved, &nodes).await.unwrap();
        assert_eq!(filter(&emu), set(&["203.0.113.0/24"]), "{mode:?}");
        assert_eq!(
            filter_calls(&emu),
            vec![vec![
                change("203.0.113.0/24", true),
                change("192.0.2.0/24", false),
                change("198.51.100.7", false)
            ]],
            "{mode:?}"
        );

        // Open again: only the addresses are removed. The service shows "*.*.*.*" again, or an empty filter.
        emu.reset_calls();
        let open = service(&uid(13), &[(80, 30080)], &[]);
        lbs.ensure_load_balancer(CLUSTER, &open, &nodes).await.unwrap();
        assert_eq!(filter(&emu), if kept { set(&[]) } else { any.clone() }, "{mode:?}");
        assert_eq!(
            filter_calls(&emu),
            vec![vec![change("203.0.113.0/24", false)]],
            "{mode:?}"
        );
        emu.reset_calls();
        lbs.ensure_load_balancer(CLUSTER, &open, &nodes).await.unwrap();
        assert_eq!(
            mutations(&emu),
            0,
            "{mode:?}: an open filter is open however it is shown"
        );

        // And closed again from there.
        lbs.ensure_load_balancer(CLUSTER, &closed, &nodes).await.unwrap();
        assert_eq!(filter(&emu), set(&["192.0.2.0/24", "198.51.100.7"]), "{mode:?}");
        emu.reset_calls();
        lbs.ensure_load_balancer(CLUSTER, &closed, &nodes).await.unwrap();
        assert_eq!(mutations(&emu), 0, "{mode:?}");
        emu.shutdown().await;
    }
}

#[tokio::test]
async fn invalid_services_are_rejected_before_any_call() {
    let (emu, p) = setup().await;
    let svc = service(
        &uid(4),
        &[(80, 30080)],
        &[(a::NETWORK_VOLUME, "15"), (a::HC_PROTOCOL, "UDP")],
    );
    let err = p
        .load_balancers()
        .ensure_load_balancer(CLUSTER, &svc, &targets(&["node1"]))
        .await
        .unwrap_err();
    match err {
        ProviderError::InvalidConfiguration { reason, message } => {
            assert_eq!(reason, "InvalidLoadBalancerConfiguration");
            assert!(
                message.contains("network-volume") && message.contains("healthcheck-protocol"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(emu.calls().values().sum::<u64>(), 0);
    emu.shutdown().await;
}

#[tokio::test]
async fn a_load_balancer_this_cluster_did_not_create_is_never_touched() {
    let (emu, p) = setup().await;
    let other = NifcloudProviderFixture::foreign_lb(&emu, "web01").await;
    let svc = service(&uid(5), &[(80, 30080)], &[(a::NAME, "web01")]);
    let lbs = p.load_balancers();
    let err = lbs
        .ensure_load_balancer(CLUSTER, &svc, &targets(&["node1", "node2"]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::InvalidConfiguration { ref reason, .. } if reason == "LoadBalancerNotOwned"),
        "{err:?}"
    );
    assert_eq!(lb_state(&emu, "web01").unwrap(), other, "untouched");
    assert_eq!(lbs.get_load_balancer(CLUSTER, &svc).await.unwrap(), None);
    lbs.ensure_load_balancer_deleted(CLUSTER, &svc).await.unwrap();
    assert_eq!(lb_state(&emu, "web01").unwrap(), other, "not deleted");
    assert_eq!(mutations(&emu), 1, "only the fixture's own create");
    emu.shutdown().await;
}

#[tokio::test]
async fn an_overridden_name_is_owned_once_created_here() {
    let (emu, p) = setup().await;
    let svc = service(&uid(6), &[(80, 30080)], &[(a::NAME, "myweb")]);
    let lbs = p.load_balancers();
    lbs.ensure_load_balancer(CLUSTER, &svc, &targets(&["node1"]))
        .await
        .unwrap();
    assert!(lb_state(&emu, "myweb").is_some());
    // The next reconcile (in-memory record) and another process (annotation record) both own it.
    lbs.ensure_load_balancer(CLUSTER, &svc, &targets(&["node1", "node2"]))
        .await
        .unwrap();
    let mut recorded = svc.clone();
    recorded
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(a::OWNER.into(), naming::owner_record(CLUSTER, "myweb"));
    let fresh = nifcloud_ccm::NifcloudProvider::new(settings(&emu, None)).unwrap();
    fresh
        .load_balancers()
        .ensure_load_balancer_deleted(CLUSTER, &recorded)
        .await
        .unwrap();
    assert!(lb_state(&emu, "myweb").is_none());
    emu.shutdown().await;
}

#[tokio::test]
async fn deletion_removes_every_listener_and_is_idempotent() {
    let (emu, p) = setup().await;
    let lbs = p.load_balancers();
    let svc = service(&uid(7), &[(80, 30080), (443, 30443)], &[]);
    let name = naming::generated_name(CLUSTER, &uid(7)).unwrap();
    lbs.ensure_load_balancer(CLUSTER, &svc, &targets(&["node1"]))
        .await
        .unwrap();
    assert!(lb_state(&emu, &name).is_some());
    lbs.ensure_load_balancer_deleted(CLUSTER, &svc).await.unwrap();
    assert!(lb_state(&emu, &name).is_none());
    assert_eq!(lbs.get_load_balancer(CLUSTER, &svc).await.unwrap(), None);
    lbs.ensure_load_balancer_deleted(CLUSTER, &svc).await.unwrap();
    // A Service whose load balancer never existed is deleted without error (original bug 2).
    let never = service(&uid(8), &[(80, 30080)], &[]);
    lbs.ensure_load_balancer_deleted(CLUSTER, &never).await.unwrap();
    emu.shutdown().await;
}

#[tokio::test]
async fn unknown_nodes_are_skipped_not_fatal() {
    let (emu, p) = setup().await;
    let svc = service(&uid(9), &[(80, 30080)], &[]);
    p.load_balancers()
        .ensure_load_balancer(CLUSTER, &svc, &targets(&["node1", "not-a-server"]))
        .await
        .unwrap();
    let name = naming::generated_name(CLUSTER, &uid(9)).unwrap();
    assert_eq!(lb_state(&emu, &name).unwrap().3[0].6, set(&["node1"]));
    // The listing started after the question, so it is already fresh: the unknown node costs no second call.
    assert_eq!(emu.call_count("DescribeInstances"), 1);
    // With a warm cache, a new unknown node triggers exactly one fresh re-check; a node already known to be
    // unmatched is not re-checked within the TTL.
    let svc2 = service(&uid(90), &[(80, 30090)], &[]);
    emu.reset_calls();
    p.load_balancers()
        .ensure_load_balancer(CLUSTER, &svc2, &targets(&["node1", "not-a-server", "also-not"]))
        .await
        .unwrap();
    assert_eq!(emu.call_count("DescribeInstances"), 1);
    let svc3 = service(&uid(91), &[(80, 30091)], &[]);
    emu.reset_calls();
    p.load_balancers()
        .ensure_load_balancer(CLUSTER, &svc3, &targets(&["node1", "not-a-server", "also-not"]))
        .await
        .unwrap();
    assert_eq!(emu.call_count("DescribeInstances"), 0);
    emu.shutdown().await;
}

#[tokio::test]
async fn faults_mid_reconcile_end_in_the_right_state_with_nothing_leaked() {
    let (emu, p) = setup().await;
    let lbs = p.load_balancers();
    let svc = service(&uid(10), &[(80, 30080), (443, 30443)], &[(a::HC_INTERVAL, "20")]);
    let nodes = targets(&["node1", "node2", "node3"]);
    let name = naming::generated_name(CLUSTER, &uid(10)).unwrap();
    // A 500 (not retried for a mutation) on the second health-check call, then busy replies the SDK waits out.
    emu.set_faults(
        FaultConfig::none()
            .with(FaultRule::fail_next(
                "ConfigureHealthCheck",
                1,
                "Server.InternalError",
                500,
            ))
            .with(FaultRule::fail_next(
                "RegisterInstancesWithLoadBalancer",
                2,
                "Server.ResourceIncorrectState.LoadBalancer.Processing",
                400,
            )),
    );
    let first = lbs.ensure_load_balancer(CLUSTER, &svc, &nodes).await.unwrap_err();
    assert_eq!(
        failure(&first),
        (
            format!("cannot change L4 load balancer {name}"),
            "ConfigureHealthCheck",
            Some("Server.InternalError")
        ),
        "the 500 surfaces"
    );
    // The retry (as the framework would) converges.
    lbs.ensure_load_balancer(CLUSTER, &svc, &nodes).await.unwrap();
    let (_, _, _, ports) = lb_state(&emu, &name).unwrap();
    assert_eq!(ports.len(), 2);
    for port in &ports {
        assert_eq!((port.4, &port.6), (20, &set(&["node1", "node2", "node3"])), "{port:?}");
    }
    assert_eq!(
        emu.with_state(|st| st.load_balancers.len()),
        1,
        "no duplicate or orphan"
    );
    assert_eq!(emu.call_count("CreateLoadBalancer"), 1);
    // 503 on the create itself (a mutation the SDK may repeat for 503) and on the listing.
    emu.set_faults(
        FaultConfig::none()
            .with(FaultRule::fail_next("CreateLoadBalancer", 1, "Server.Unavailable", 503))
            .with(FaultRule::fail_next(
                "DescribeLoadBalancers",
                1,
                "Server.Unavailable",
                503,
            )),
    );
    let svc2 = service(&uid(11), &[(80, 30081)], &[]);
    // The SDK repeats a call answered 503 (the server did not act on it), so the first ensure succeeds: the
    // create is sent twice.
    lbs.ensure_load_balancer(CLUSTER, &svc2, &nodes).await.unwrap();
    let statuses = |action: &str| -> Vec<u16> {
        emu.call_log()
            .into_iter()
            .filter(|c| c.action == action)
            .map(|c| c.status)
            .collect()
    };
    assert_eq!(statuses("CreateLoadBalancer"), vec![200, 503, 200]);
    assert_eq!(emu.with_state(|st| st.load_balancers.len()), 2);
    // Deletion interrupted by a 500 finishes on retry.
    emu.set_faults(FaultConfig::none().with(FaultRule::fail_next(
        "DeleteLoadBalancer",
        1,
        "Server.InternalError",
        500,
    )));
    let err = lbs.ensure_load_balancer_deleted(CLUSTER, &svc).await.unwrap_err();
    assert_eq!(
        failure(&err),
        (
            format!("cannot delete L4 load balancer {name}"),
            "DeleteLoadBalancer",
            Some("Server.InternalError")
        )
    );
    lbs.ensure_load_balancer_deleted(CLUSTER, &svc).await.unwrap();
    assert!(lb_state(&emu, &name).is_none());
    emu.shutdown().await;
}

#[tokio::test]
async fn describe_calls_do_not_grow_with_services() {
    let (emu, p) = setup().await;
    let p = std::sync::Arc::new(p);
    // Create 20 load balancers, then reset the counters and resync all of them concurrently.
    for i in 0..20 {
        let svc = service(&uid(100 + i), &[(80, 30000 + i as i32)], &[]);
        p.load_balancers()
            .ensure_load_balancer(CLUSTER, &svc, &targets(&["node1", "node2"]))
            .await
            .unwrap();
    }
    // A fresh provider (as after a restart): one listing of each kind serves every Service; the elastic one
    // because a fresh process does not know yet that no Service left one behind.
    let fresh = std::sync::Arc::new(nifcloud_ccm::NifcloudProvider::new(settings(&emu, None)).unwrap());
    emu.reset_calls();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let fresh = fresh.clone();
        tasks.push(tokio::spawn(async move {
            let svc = service(&uid(100 + i), &[(80, 30000 + i as i32)], &[]);
            fresh
                .load_balancers()
                .ensure_load_balancer(CLUSTER, &svc, &targets(&["node1", "node2"]))
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(emu.call_count("DescribeInstances"), 1);
    assert_eq!(emu.call_count("DescribeLoadBalancers"), 1);
    assert_eq!(emu.call_count("NiftyDescribeElasticLoadBalancers"), 1);
    assert_eq!(mutations(&emu), 0);
    emu.shutdown().await;
}

/// The describe calls of one resync of `services` (every Service ensured at once, as the framework's workers do,
/// after the cache TTL is over), by action.
async fn resync(
    emu: &Emulator,
    p: &std::sync::Arc<nifcloud_ccm::NifcloudProvider>,
    services: &[cloudprovider::k8s_openapi::api::core::v1::Service],
) -> std::collections::BTreeMap<String, u64> {
    tokio::time::sleep(p.context().settings.cache_ttl + std::time::Duration::from_millis(50)).await;
    emu.reset_calls();
    let nodes = [target("node1"), target("node2")];
    let ensures = services
        .iter()
        .map(|svc| p.load_balancers().ensure_load_balancer(CLUSTER, svc, &nodes));
    for result in futures::future::join_all(ensures).await {
        result.unwrap();
    }
    emu.calls()
        .into_iter()
        .filter(|(a, _)| a.trim_start_matches("Nifty").starts_with("Describe"))
        .collect()
}

#[tokio::test]
async fn a_steady_resync_makes_two_describe_calls_and_still_repairs_drift() {
    let emu = emulator(EmulatorConfig::sample()).await;
    let mut st = settings(&emu, None);
    st.cache_ttl = std::time::Duration::from_millis(300);
    let p = std::sync::Arc::new(nifcloud_ccm::NifcloudProvider::new(st).unwrap());
    let services: Vec<_> = (0..10)
        .map(|i| service(&uid(200 + i), &[(80, 30100 + i as i32)], &[]))
        .collect();
    let first = resync(&emu, &p, &services).await;
    let describes = |list: &[(&str, u64)]| -> std::collections::BTreeMap<String, u64> {
        list.iter().map(|(a, n)| ((*a).to_owned(), *n)).collect()
    };
    // The first sync of this process also looks for load balancers of the other kind, once for every Service.
    assert_eq!(
        first,
        describes(&[
            ("DescribeInstances", 1),
            ("DescribeLoadBalancers", 1),
            ("NiftyDescribeElasticLoadBalancers", 1)
        ])
    );

    // Steady state: one server listing and one load-balancer listing serve every Service; nothing changes.
    let steady = resync(&emu, &p, &services).await;
    assert_eq!(
        steady,
        describes(&[("DescribeInstances", 1), ("DescribeLoadBalancers", 1)])
    );
    assert_eq!(mutations(&emu), 0, "{:?}", emu.calls());

    // Drift made outside the cluster (a member deregistered) is seen by the next resync, within the same two
    // describe calls, and repaired.
    let name = naming::generated_name(CLUSTER, &uid(203)).unwrap();
    let (k, s) = emu.credentials();
    let client = nifcloud_sdk::Client::new(
        nifcloud_sdk::Config::builder()
            .region_name("jp-east-1")
            .endpoint(emu.endpoint())
            .credentials(nifcloud_sdk::Credentials::new(k, s))
            .build()
            .unwrap(),
    )
    .unwrap();
    client
        .deregister_instances_from_load_balancer(nifcloud_sdk::types::DeregisterInstancesFromLoadBalancerRequest {
            load_balancer_name: Some(name.as_str().into()),
            load_balancer_port: Some(80),
            instance_port: Some(30103),
            instances: vec![nifcloud_sdk::types::RequestInstances::default().instance_id("node2")],
        })
        .await
        .unwrap();
    assert_eq!(lb_state(&emu, &name).unwrap().3[0].6, set(&["node1"]));
    let repaired = resync(&emu, &p, &services).await;
    assert_eq!(
        repaired,
        describes(&[("DescribeInstances", 1), ("DescribeLoadBalancers", 1)])
    );
    assert_eq!(emu.call_count("RegisterInstancesWithLoadBalancer"), 1);
    assert_eq!(mutations(&emu), 1, "{:?}", emu.calls());
    assert_eq!(lb_state(&emu, &name).unwrap().3[0].6, set(&["node1", "node2"]));

    // A re-initialized provider (before a new leader term) looks for the other kind again, once.
    let (kube, _api) = cloudprovider::testing::mock::ApiMock::new();
    let context = cloudprovider::ProviderContext {
        client: kube,
        cluster_name: CLUSTER.into(),
        events: cloudprovider::EventSink::discard(),
    };
    cloudprovider::CloudProvider::initialize(&*p, context).await.unwrap();
    assert_eq!(resync(&emu, &p, &services).await, first);
    assert_eq!(resync(&emu, &p, &services).await, steady);
    assert_eq!(mutations(&emu), 0, "{:?}", emu.calls());

    // A Service that switches kinds: the load balancer of its old kind is looked for and removed.
    let mut switched = services.clone();
    switched[5] = service(&uid(205), &[(80, 30105)], &[(a::TYPE, "elb")]);
    let old = naming::generated_name(CLUSTER, &uid(205)).unwrap();
    resync(&emu, &p, &switched).await;
    assert!(
        lb_state(&emu, &old).is_none(),
        "the L4 load balancer of the switched Service is gone"
    );
    assert_eq!(emu.with_state(|st| st.elastic_load_balancers.len()), 1);
    assert_eq!(emu.call_count("DeleteLoadBalancer"), 1);
    emu.shutdown().await;
}

/// Creates load balancers the way another tool would.
struct NifcloudProviderFixture;

impl NifcloudProviderFixture {
    async fn foreign_lb(emu: &Emulator, name: &str) -> (String, i64, String, Vec<PortState>) {
        let (k, s) = emu.credentials();
        let client = nifcloud_sdk::Client::new(
            nifcloud_sdk::Config::builder()
                .region_name("jp-east-1")
                .endpoint(emu.endpoint())
                .credentials(nifcloud_sdk::Credentials::new(k, s))
                .build()
                .unwrap(),
        )
        .unwrap();
        client
            .create_load_balancer(nifcloud_sdk::types::CreateLoadBalancerRequest {
                load_balancer_name: Some(name.into()),
                listeners: vec![nifcloud_sdk::types::RequestListeners {
                    load_balancer_port: Some(80),
                    instance_port: Some(8080),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .await
            .unwrap();
        lb_state(emu, name).unwrap()
    }
}
