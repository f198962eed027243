//! `externalTrafficPolicy: Local` against the emulator: the members of an L4 load balancer follow the nodes that
//! host a ready endpoint (as the framework marks them), with exact call counts; an elastic load balancer keeps
//! every node and checks HTTP `/healthz` on `healthCheckNodePort`.

mod common;

use std::collections::BTreeSet;

use cloudprovider::k8s_openapi::api::core::v1::Service;
use cloudprovider::{LoadBalancer, TargetNode};
use common::*;
use nifcloud_ccm::annotations as a;
use nifcloud_ccm::naming;
use nifcloud_emulator::Emulator;

/// An `externalTrafficPolicy: Local` Service with `healthCheckNodePort` 32123.
fn local_service(uid: &str, ports: &[(i32, i32)], ann: &[(&str, &str)]) -> Service {
    let mut svc = service(uid, ports, ann);
    let spec = svc.spec.as_mut().unwrap();
    spec.external_traffic_policy = Some("Local".into());
    spec.health_check_node_port = Some(32123);
    svc
}

/// `node1`..`node4` as the framework hands them for a Local Service: marked with whether they host a ready
/// endpoint (those in `ready`).
fn marked(ready: &[&str]) -> Vec<TargetNode> {
    ["node1", "node2", "node3", "node4"]
        .iter()
        .map(|n| TargetNode {
            has_ready_endpoint: Some(ready.contains(n)),
            ..target(n)
        })
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Per port pair of the L4 load balancer `name`: (lb port, health-check target, member names).
fn l4_ports(emu: &Emulator, name: &str) -> Option<Vec<(i64, String, BTreeSet<String>)>> {
    emu.with_state(|st| {
        st.load_balancers.get(name).map(|lb| {
            let mut ports: Vec<_> = lb
                .ports
                .iter()
                .map(|p| {
                    let members = st
                        .instances
                        .values()
                        .filter(|i| p.instances.contains(&i.unique_id))
                        .map(|i| i.name.clone())
                        .collect();
                    (p.lb_port, p.hc_target.clone(), members)
                })
                .collect();
            ports.sort();
            ports
        })
    })
}

/// Per listener of the elastic load balancer `name`: (port, health-check target, path, expected codes, members).
type ElbListenerHealth = (i64, String, String, Vec<String>, BTreeSet<String>);

fn elb_listeners(emu: &Emulator, name: &str) -> Option<Vec<ElbListenerHealth>> {
    emu.with_state(|st| {
        st.elastic_load_balancers.values().find(|e| e.name == name).map(|e| {
            let mut ls: Vec<_> = e
                .listeners
                .iter()
                .map(|l| {
                    let members = st
                        .instances
                        .values()
                        .filter(|i| l.instances.contains(&i.unique_id))
                        .map(|i| i.name.clone())
                        .collect();
                    (
                        l.elb_port,
                        l.hc_target.clone(),
                        l.hc_path.clone(),
                        l.hc_expect.clone(),
                        members,
                    )
                })
                .collect();
            ls.sort();
            ls
        })
    })
}

#[tokio::test]
async fn l4_members_follow_the_nodes_with_a_ready_endpoint() {
    let (emu, p) = setup().await;
    let lbs = p.load_balancers();
    let svc = local_service(&uid(40), &[(80, 30080), (443, 30443)], &[]);
    let name = naming::generated_name(CLUSTER, &uid(40)).unwrap();
    assert!(
        lbs.wants_endpoint_nodes(CLUSTER, &svc),
        "an L4 load balancer follows endpoints"
    );

    // Created with the one node that hosts a ready endpoint; the check is TCP on healthCheckNodePort.
    lbs.ensure_load_balancer(CLUSTER, &svc, &marked(&["node1"]))
        .await
        .unwrap();
    let hc = "TCP:32123".to_string();
    assert_eq!(
        l4_ports(&emu, &name).unwrap(),
        vec![(80, hc.clone(), set(&["node1"])), (443, hc.clone(), set(&["node1"]))]
    );

    // Unchanged (read once: it changed since the listing), then nothing at all.
    emu.reset_calls();
    lbs.update_load_balancer(CLUSTER, &svc, &marked(&["node1"]))
        .await
        .unwrap();
    assert_eq!(mutations(&emu), 0, "{:?}", emu.calls());
    emu.reset_calls();
    lbs.update_load_balancer(CLUSTER, &svc, &marked(&["node1"]))
        .await
        .unwrap();
    assert_eq!(emu.calls().values().sum::<u64>(), 0, "{:?}", emu.calls());

    // The endpoint moves from node1 to node2: per port pair, one registration and one deregistration.
    emu.reset_calls();
    lbs.update_load_balancer(CLUSTER, &svc, &marked(&["node2"]))
        .await
        .unwrap();
    assert_eq!(emu.call_count("RegisterInstancesWithLoadBalancer"), 2);
    assert_eq!(emu.call_count("DeregisterInstancesFromLoadBalancer"), 2);
    assert_eq!(mutations(&emu), 4, "{:?}", emu.calls());
    assert_eq!(
        emu.call_count("DescribeInstances"),
        0,
        "the server listing is shared and still fresh"
    );
    let members: Vec<_> = l4_ports(&emu, &name).unwrap().into_iter().map(|p| p.2).collect();
    assert_eq!(members, vec![set(&["node2"]), set(&["node2"])]);

    // Scaled out to node3 as well: registrations only.
    emu.reset_calls();
    lbs.update_load_balancer(CLUSTER, &svc, &marked(&["node2", "node3"]))
        .await
        .unwrap();
    assert_eq!(emu.call_count("RegisterInstancesWithLoadBalancer"), 2);
    assert_eq!(mutations(&emu), 2, "{:?}", emu.calls());

    // No ready endpoint left: no member (nothing could serve the traffic); the load balancer and its VIP stay.
    let vip = lbs.get_load_balancer(CLUSTER, &svc).await.unwrap().unwrap();
    emu.reset_calls();
    lbs.update_load_balancer(CLUSTER, &svc, &marked(&[])).await.unwrap();
    assert_eq!(emu.call_count("DeregisterInstancesFromLoadBalancer"), 2);
    assert_eq!(mutations(&emu), 2, "{:?}", emu.calls());
    let members: Vec<_> = l4_ports(&emu, &name).unwrap().into_iter().map(|p| p.2).collect();
    assert_eq!(members, vec![set(&[]), set(&[])]);
    assert_eq!(lbs.get_load_balancer(CLUSTER, &svc).await.unwrap(), Some(vip));
    emu.reset_calls();
    lbs.update_load_balancer(CLUSTER, &svc, &marked(&[])).await.unwrap();
    assert_eq!(mutations(&emu), 0, "{:?}", emu.calls());

    // An endpoint is ready again on node4.
    emu.reset_calls();
    lbs.update_load_balancer(CLUSTER, &svc, &marked(&["node4"]))
        .await
        .unwrap();
    assert_eq!(emu.call_count("RegisterInstancesWithLoadBalancer"), 2);
    assert_eq!(mutations(&emu), 2, "{:?}", emu.calls());
    let members: Vec<_> = l4_ports(&emu, &name).unwrap().into_iter().map(|p| p.2).collect();
    assert_eq!(members, vec![set(&["node4"]), set(&["node4"])]);
    emu.shutdown().await;
}

#[tokio::test]
async fn l4_without_endpoint_marks_or_with_cluster_policy_keeps_every_node() {
    let (emu, p) = setup().await;
    let lbs = p.load_balancers();
    let all = set(&["node1", "node2", "node3", "node4"]);
    // A Local Service handed unmarked nodes (a caller that knows no endpoints): every node.
    let unmarked = local_service(&uid(41), &[(80, 30080)], &[]);
    lbs.ensure_load_balancer(CLUSTER, &unmarked, &targets(&["node1", "node2", "node3", "node4"]))
        .await
        .unwrap();
    let name = naming::generated_name(CLUSTER, &uid(41)).unwrap();
    assert_eq!(l4_ports(&emu, &name).unwrap()[0].2, all);
    // A Cluster Service: the marks are ignored, every node, health check on the traffic NodePort.
    let cluster = service(&uid(42), &[(80, 30081)], &[]);
    lbs.ensure_load_balancer(CLUSTER, &cluster, &marked(&["node1"]))
        .await
        .unwrap();
    let name = naming::generated_name(CLUSTER, &uid(42)).unwrap();
    assert_eq!(l4_ports(&emu, &name).unwrap(), vec![(80, "TCP:30081".into(), all)]);
    emu.shutdown().await;
}

#[tokio::test]
async fn elb_keeps_every_node_and_checks_healthz_on_the_health_check_node_port() {
    let (emu, p) = setup().await;
    let lbs = p.load_balancers();
    let svc = local_service(&uid(43), &[(80, 30080)], &[(a::TYPE, "elb")]);
    let name = naming::generated_name(CLUSTER, &uid(43)).unwrap();
    assert!(
        !lbs.wants_endpoint_nodes(CLUSTER, &svc),
        "its HTTP check finds the nodes itself"
    );
    lbs.ensure_load_balancer(CLUSTER, &svc, &marked(&["node1"]))
        .await
        .unwrap();
    let all = set(&["node1", "node2", "node3", "node4"]);
    assert_eq!(
        elb_listeners(&emu, &name).unwrap(),
        vec![(
            80,
            "HTTP:32123".into(),
            "/healthz".into(),
            vec!["2xx".to_string()],
            all.clone()
        )]
    );
    // Converged: no call changes it, whichever nodes are marked.
    emu.reset_calls();
    lbs.ensure_load_balancer(CLUSTER, &svc, &marked(&["node2"]))
        .await
        .unwrap();
    assert_eq!(mutations(&emu), 0, "{:?}", emu.calls());

    // The user's annotation wins (with a Warning Event, see spec): a TCP check of healthCheckNodePort.
    let tcp = local_service(&uid(43), &[(80, 30080)], &[(a::TYPE, "elb"), (a::HC_PROTOCOL, "TCP")]);
    emu.reset_calls();
    lbs.ensure_load_balancer(CLUSTER, &tcp, &marked(&["node2"]))
        .await
        .unwrap();
    assert_eq!(emu.call_count("NiftyConfigureElasticLoadBalancerHealthCheck"), 1);
    assert_eq!(mutations(&emu), 1, "{:?}", emu.calls());
    assert_eq!(elb_listeners(&emu, &name).unwrap()[0].1, "TCP:32123");

    // Back to Cluster: TCP on the traffic NodePort, and converged although the API still reports the old path.
    let cluster = service(&uid(43), &[(80, 30080)], &[(a::TYPE, "elb")]);
    lbs.ensure_load_balancer(CLUSTER, &cluster, &targets(&["node1", "node2", "node3", "node4"]))
        .await
        .unwrap();
    assert_eq!(elb_listeners(&emu, &name).unwrap()[0].1, "TCP:30080");
    emu.reset_calls();
    lbs.ensure_load_balancer(CLUSTER, &cluster, &targets(&["node1", "node2", "node3", "node4"]))
        .await
        .unwrap();
    assert_eq!(mutations(&emu), 0, "{:?}", emu.calls());
    emu.shutdown().await;
}

/// The Warning Events of Local Services: a check the user asked for that passes on every node, and an L4 load
/// balancer left without a member because no node hosts a ready endpoint.
#[tokio::test]
async fn local_policy_warnings_are_events() {
    use cloudprovider::testing::mock::{ApiMock, json_response};
    use cloudprovider::{CloudProvider, EventSink, ProviderContext};
    let (emu, p) = setup().await;
    let (client, mut mock) = ApiMock::new();
    let events = EventSink::new(client.clone(), "nifcloud", None);
    p.initialize(ProviderContext {
        client,
        cluster_name: CLUSTER.into(),
        events,
    })
    .await
    .unwrap();
    let p = std::sync::Arc::new(p);
    let mut expect_warning = async |reason: &str| {
        let (req, body) = mock.next().await;
        assert_eq!(
            req.uri().path(),
            "/apis/events.k8s.io/v1/namespaces/default/events",
            "{body}"
        );
        assert_eq!(
            (body["type"].as_str(), body["reason"].as_str()),
            (Some("Warning"), Some(reason)),
            "{body}"
        );
        mock.respond(json_response(201, &body));
        body["note"].as_str().unwrap_or_default().to_owned()
    };

    let tcp = local_service(&uid(44), &[(80, 30080)], &[(a::TYPE, "elb"), (a::HC_PROTOCOL, "TCP")]);
    let task = tokio::spawn({
        let p = p.clone();
        async move {
            p.load_balancers()
                .ensure_load_balancer(CLUSTER, &tcp, &marked(&["node1"]))
                .await
        }
    });
    let note = expect_warning("LocalTrafficPolicyHealthCheck").await;
    assert!(note.contains("every node looks healthy"), "{note}");
    task.await.unwrap().unwrap();

    let empty = local_service(&uid(45), &[(80, 30080)], &[]);
    let task = tokio::spawn({
        let p = p.clone();
        async move {
            p.load_balancers()
                .ensure_load_balancer(CLUSTER, &empty, &marked(&[]))
                .await
        }
    });
    let note = expect_warning("NoReadyEndpoints").await;
    assert!(note.contains("no member until one does"), "{note}");
    task.await.unwrap().unwrap();
    let name = naming::generated_name(CLUSTER, &uid(45)).unwrap();
    assert_eq!(l4_ports(&emu, &name).unwrap(), vec![(80, "TCP:32123".into(), set(&[]))]);
    mock.assert_idle().await;
    emu.shutdown().await;
}
