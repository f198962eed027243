use super::*;
use k8s_openapi::api::core::v1::{NodeSpec, ServicePort, ServiceSpec, Taint};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeSet;

fn svc(type_: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("11111111-2222-3333-4444-555555555555".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some(type_.into()),
            ports: Some(vec![ServicePort {
                port: 80,
                node_port: Some(30080),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn with_finalizer(mut s: Service) -> Service {
    s.metadata.finalizers = Some(vec![LB_CLEANUP_FINALIZER.into()]);
    s
}

fn deleting(mut s: Service) -> Service {
    s.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
    s
}

fn with_class(mut s: Service) -> Service {
    s.spec.as_mut().unwrap().load_balancer_class = Some("example.com/other".into());
    s
}

fn node(name: &str, pid: Option<&str>) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            provider_id: pid.map(Into::into),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn labelled(mut n: Node, value: &str) -> Node {
    n.metadata.labels = Some([(EXCLUDE_LB_LABEL.to_owned(), value.to_owned())].into());
    n
}

fn tainted(mut n: Node, key: &str) -> Node {
    n.spec.as_mut().unwrap().taints = Some(vec![Taint {
        key: key.into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    }]);
    n
}

#[test]
fn node_predicates_table() {
    let mut being_deleted = node("n", Some("p"));
    being_deleted.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
    let table: Vec<(&str, Node, bool)> = vec![
        ("plain node", node("n", Some("p")), true),
        ("no providerID still a target", node("n", None), true),
        ("being deleted", being_deleted, false),
        ("exclude=true", labelled(node("n", None), "true"), false),
        ("exclude=True", labelled(node("n", None), "True"), false),
        ("exclude=1", labelled(node("n", None), "1"), false),
        ("exclude=false", labelled(node("n", None), "false"), true),
        ("exclude=0", labelled(node("n", None), "0"), true),
        ("exclude=empty does not parse", labelled(node("n", None), ""), false),
        ("exclude=yes does not parse", labelled(node("n", None), "yes"), false),
        ("autoscaler taint", tainted(node("n", None), TO_BE_DELETED_TAINT), false),
        ("other taint", tainted(node("n", None), "dedicated"), true),
    ];
    for (what, n, expected) in table {
        assert_eq!(node_is_lb_target(&n), expected, "{what}");
    }
}

#[test]
fn target_nodes_filters_and_sorts() {
    let nodes = [
        node("b", Some("p-b")),
        labelled(node("x", None), "true"),
        node("a", Some("p-a")),
    ];
    let targets = target_nodes(nodes.iter());
    let names: Vec<_> = targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(
        node_set_key(&targets),
        vec![
            ("a".to_owned(), Some("p-a".to_owned())),
            ("b".to_owned(), Some("p-b".to_owned()))
        ]
    );
}

#[test]
fn node_set_change_detection() {
    let base = target_nodes([node("a", Some("p-a")), node("b", Some("p-b"))].iter());
    let same_other_order = target_nodes([node("b", Some("p-b")), node("a", Some("p-a"))].iter());
    let mut relabelled_node = node("a", Some("p-a"));
    relabelled_node.metadata.labels = Some([("team".to_owned(), "x".to_owned())].into());
    let relabelled = target_nodes([relabelled_node, node("b", Some("p-b"))].iter());
    let pid_changed = target_nodes([node("a", Some("p-a2")), node("b", Some("p-b"))].iter());
    let removed = target_nodes([node("a", Some("p-a"))].iter());
    let excluded = target_nodes([node("a", Some("p-a")), labelled(node("b", Some("p-b")), "true")].iter());
    let table = [
        ("same set, other order", &same_other_order, false),
        ("unrelated label change", &relabelled, false),
        ("providerID changed", &pid_changed, true),
        ("node removed", &removed, true),
        ("node excluded", &excluded, true),
    ];
    for (what, other, changed) in table {
        assert_eq!(node_set_key(&base) != node_set_key(other), changed, "{what}");
    }
}

#[test]
fn wants_and_cleanup_table() {
    let table = [
        ("LB", svc("LoadBalancer"), true, false),
        ("ClusterIP", svc("ClusterIP"), false, false),
        ("LB with class", with_class(svc("LoadBalancer")), false, false),
        ("LB with finalizer", with_finalizer(svc("LoadBalancer")), true, false),
        (
            "LB deleting with finalizer",
            deleting(with_finalizer(svc("LoadBalancer"))),
            true,
            true,
        ),
        (
            "changed to NodePort with finalizer",
            with_finalizer(svc("NodePort")),
            false,
            true,
        ),
        (
            "ClusterIP deleting without finalizer",
            deleting(svc("ClusterIP")),
            false,
            false,
        ),
    ];
    for (what, s, wants, cleanup) in table {
        assert_eq!(wants_load_balancer(&s), wants, "wants: {what}");
        assert_eq!(needs_cleanup(&s), cleanup, "cleanup: {what}");
    }
}

fn synced(s: &Service, nodes: NodeSetKey, at: Instant) -> SyncedState {
    SyncedState {
        spec: LbSpecView::of(s),
        nodes: Arc::new(nodes),
        endpoint_nodes: None,
        ensured_at: at,
    }
}

#[test]
fn decide_service_table() {
    let now = Instant::now();
    let nodes = vec![("a".to_owned(), Some("p-a".to_owned()))];
    let other_nodes = vec![("b".to_owned(), Some("p-b".to_owned()))];
    let lb = with_finalizer(svc("LoadBalancer"));
    let mut port_changed = lb.clone();
    port_changed.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].port = 8080;
    let mut annotated = lb.clone();
    annotated.metadata.annotations = Some([("example.com/lb-size".to_owned(), "large".to_owned())].into());
    let mut labelled_only = lb.clone();
    labelled_only.metadata.labels = Some([("app".to_owned(), "web".to_owned())].into());
    let fresh = synced(&lb, nodes.clone(), now);
    let old = synced(
        &lb,
        nodes.clone(),
        now.checked_sub(Duration::from_secs(700)).unwrap_or(now),
    );
    // Rounds every ten minutes, the last one started 400 s ago: `old` (700 s ago) is due, `fresh` is not.
    let ten_min = ResyncRounds::new(
        now.checked_sub(Duration::from_secs(1000)).unwrap_or(now),
        Duration::from_secs(600),
    );

    use EnsureReason::*;
    use ServiceAction::*;
    type Row<'a> = (
        &'a str,
        Service,
        Option<&'a SyncedState>,
        &'a NodeSetKey,
        Option<ResyncRounds>,
        ServiceAction,
    );
    let table: Vec<Row<'_>> = vec![
        (
            "new LB service",
            svc("LoadBalancer"),
            None,
            &nodes,
            None,
            Ensure {
                add_finalizer: true,
                reason: NotSynced,
            },
        ),
        (
            "restart: has finalizer, no memory",
            lb.clone(),
            None,
            &nodes,
            None,
            Ensure {
                add_finalizer: false,
                reason: NotSynced,
            },
        ),
        (
            "finalizer removed by someone",
            svc("LoadBalancer"),
            Some(&fresh),
            &nodes,
            None,
            Ensure {
                add_finalizer: true,
                reason: NotSynced,
            },
        ),
        ("in sync", lb.clone(), Some(&fresh), &nodes, None, Skip("in sync")),
        (
            "label change is not relevant",
            labelled_only,
            Some(&fresh),
            &nodes,
            None,
            Skip("in sync"),
        ),
        (
            "port changed",
            port_changed,
            Some(&fresh),
            &nodes,
            None,
            Ensure {
                add_finalizer: false,
                reason: SpecChanged,
            },
        ),
        (
            "annotation changed",
            annotated,
            Some(&fresh),
            &nodes,
            None,
            Ensure {
                add_finalizer: false,
                reason: SpecChanged,
            },
        ),
        (
            "node set changed",
            lb.clone(),
            Some(&fresh),
            &other_nodes,
            None,
            UpdateHosts,
        ),
        (
            "resync off: old sync stays",
            lb.clone(),
            Some(&old),
            &nodes,
            None,
            Skip("in sync"),
        ),
        (
            "resync due",
            lb.clone(),
            Some(&old),
            &other_nodes,
            ten_min,
            Ensure {
                add_finalizer: false,
                reason: Resync,
            },
        ),
        (
            "resync not due",
            lb.clone(),
            Some(&fresh),
            &nodes,
            ten_min,
            Skip("in sync"),
        ),
        ("deleting", deleting(lb.clone()), Some(&fresh), &nodes, None, Cleanup),
        (
            "type changed away",
            with_finalizer(svc("ClusterIP")),
            Some(&fresh),
            &nodes,
            None,
            Cleanup,
        ),
        (
            "class with finalizer",
            with_class(lb.clone()),
            None,
            &nodes,
            None,
            Cleanup,
        ),
        (
            "class without finalizer",
            with_class(svc("LoadBalancer")),
            None,
            &nodes,
            None,
            Skip("spec.loadBalancerClass is set: another controller owns it"),
        ),
        (
            "ClusterIP",
            svc("ClusterIP"),
            None,
            &nodes,
            None,
            Skip("not type LoadBalancer"),
        ),
        (
            "deleting without finalizer",
            deleting(svc("LoadBalancer")),
            None,
            &nodes,
            None,
            Skip("being deleted and has no load-balancer finalizer"),
        ),
    ];
    for (what, s, state, n, resync, expected) in table {
        assert_eq!(decide_service(&s, state, n, None, now, resync), expected, "{what}");
    }
}

#[test]
fn next_resync_counts_down_to_the_next_round() {
    let now = Instant::now();
    let s = with_finalizer(svc("LoadBalancer"));
    let state = synced(&s, vec![], now.checked_sub(Duration::from_secs(100)).unwrap_or(now));
    assert_eq!(next_resync(&state, now, None), None);
    // Rounds start 250 s ago and every 600 s: the next one after the last ensure is in 350 s.
    let rounds = ResyncRounds::new(
        now.checked_sub(Duration::from_secs(250)).unwrap_or(now),
        Duration::from_secs(600),
    );
    assert_eq!(next_resync(&state, now, rounds), Some(Duration::from_secs(350)));
}

#[test]
fn every_service_falls_due_at_the_start_of_the_same_round() {
    let epoch = Instant::now();
    let period = Duration::from_secs(600);
    let rounds = ResyncRounds::new(epoch, period).unwrap();
    let at = |secs: u64| epoch + Duration::from_secs(secs);
    // Ensured early or late in round 0, or for another reason in between: all due at the start of round 1.
    for ensured in [0, 10, 300, 599] {
        assert_eq!(rounds.next_after(at(ensured)), at(600), "ensured at {ensured} s");
        assert!(
            !rounds.due(at(ensured), at(599)),
            "ensured at {ensured} s, not due before the round"
        );
        assert!(
            rounds.due(at(ensured), at(600)),
            "ensured at {ensured} s, due when the round starts"
        );
    }
    // Ensured as round 1 starts (its own resync): due at the start of round 2, one period later at most.
    assert_eq!(rounds.next_after(at(600)), at(1200));
    assert_eq!(rounds.next_after(at(601)), at(1200));
    // Ensured before round 0 (not by this controller): due as round 0 starts.
    if let Some(before) = epoch.checked_sub(Duration::from_secs(5)) {
        assert_eq!(rounds.next_after(before), epoch);
    }
    assert_eq!(ResyncRounds::new(epoch, Duration::ZERO), None, "period 0: resync off");
}

fn slice(namespace: &str, service: Option<&str>, endpoints: &[(Option<&str>, Option<bool>)]) -> EndpointSlice {
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("{}-x1", service.unwrap_or("orphan"))),
            namespace: Some(namespace.into()),
            labels: service.map(|s| [(SERVICE_NAME_LABEL.to_owned(), s.to_owned())].into()),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: endpoints
            .iter()
            .map(|(node, ready)| Endpoint {
                addresses: vec!["10.0.0.1".into()],
                node_name: node.map(Into::into),
                conditions: Some(EndpointConditions {
                    ready: *ready,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn ready_endpoint_nodes_table() {
    let table: Vec<(&str, Vec<EndpointSlice>, Vec<&str>)> = vec![
        (
            "ready endpoint",
            vec![slice("default", Some("web"), &[(Some("a"), Some(true))])],
            vec!["a"],
        ),
        (
            "ready unset means ready",
            vec![slice("default", Some("web"), &[(Some("a"), None)])],
            vec!["a"],
        ),
        (
            "not ready (or terminating)",
            vec![slice("default", Some("web"), &[(Some("a"), Some(false))])],
            vec![],
        ),
        (
            "no nodeName",
            vec![slice("default", Some("web"), &[(None, Some(true))])],
            vec![],
        ),
        (
            "empty nodeName",
            vec![slice("default", Some("web"), &[(Some(""), Some(true))])],
            vec![],
        ),
        (
            "another Service's slice",
            vec![slice("default", Some("api"), &[(Some("a"), Some(true))])],
            vec![],
        ),
        (
            "same name, other namespace",
            vec![slice("other", Some("web"), &[(Some("a"), Some(true))])],
            vec![],
        ),
        (
            "slice without the label",
            vec![slice("default", None, &[(Some("a"), Some(true))])],
            vec![],
        ),
        (
            "several slices and pods: each node once",
            vec![
                slice(
                    "default",
                    Some("web"),
                    &[(Some("b"), Some(true)), (Some("a"), Some(true))],
                ),
                slice(
                    "default",
                    Some("web"),
                    &[(Some("a"), Some(true)), (Some("c"), Some(false))],
                ),
            ],
            vec!["a", "b"],
        ),
    ];
    for (what, slices, want) in table {
        let got = ready_endpoint_nodes(slices.iter(), "default", "web");
        let want: BTreeSet<String> = want.into_iter().map(Into::into).collect();
        assert_eq!(got, want, "{what}");
    }
    assert_eq!(
        slice_service(&slice("default", Some("web"), &[])),
        Some(("default".to_owned(), "web".to_owned()))
    );
    assert_eq!(slice_service(&slice("default", None, &[])), None);
}

#[test]
fn marking_ready_endpoints_counts_only_eligible_targets() {
    let mut targets = target_nodes([node("a", Some("p-a")), node("b", Some("p-b"))].iter());
    let ready: BTreeSet<String> = ["b".to_owned(), "excluded".to_owned()].into();
    let marked = mark_ready_endpoints(&mut targets, &ready);
    assert_eq!(marked, ["b".to_owned()].into());
    let flags: Vec<_> = targets
        .iter()
        .map(|t| (t.name.as_str(), t.has_ready_endpoint))
        .collect();
    assert_eq!(flags, [("a", Some(false)), ("b", Some(true))]);
    assert!(!targets[0].can_serve_local_traffic() && targets[1].can_serve_local_traffic());
    assert!(
        TargetNode::from_node(&node("c", None)).can_serve_local_traffic(),
        "unmarked"
    );
}

#[test]
fn external_traffic_policy_table() {
    let with_policy = |p: Option<&str>| {
        let mut s = svc("LoadBalancer");
        s.spec.as_mut().unwrap().external_traffic_policy = p.map(Into::into);
        s
    };
    assert!(external_traffic_local(&with_policy(Some("Local"))));
    assert!(!external_traffic_local(&with_policy(Some("Cluster"))));
    assert!(!external_traffic_local(&with_policy(None)));
    assert!(!external_traffic_local(&Service::default()));
}

#[test]
fn decide_endpoint_changes_table() {
    let now = Instant::now();
    let nodes = vec![
        ("a".to_owned(), Some("p-a".to_owned())),
        ("b".to_owned(), Some("p-b".to_owned())),
    ];
    let set = |n: &[&str]| -> BTreeSet<String> { n.iter().map(|s| s.to_string()).collect() };
    let mut local = with_finalizer(svc("LoadBalancer"));
    local.spec.as_mut().unwrap().external_traffic_policy = Some("Local".into());
    let on_a = SyncedState {
        endpoint_nodes: Some(set(&["a"])),
        ..synced(&local, nodes.clone(), now)
    };
    let on_none = SyncedState {
        endpoint_nodes: Some(set(&[])),
        ..synced(&local, nodes.clone(), now)
    };
    let untracked = synced(&local, nodes.clone(), now);
    let (a, b, ab, none) = (set(&["a"]), set(&["b"]), set(&["a", "b"]), set(&[]));
    use ServiceAction::*;
    let table: Vec<(&str, &SyncedState, Option<&BTreeSet<String>>, ServiceAction)> = vec![
        ("same endpoint nodes", &on_a, Some(&a), Skip("in sync")),
        ("endpoint moved to another node", &on_a, Some(&b), UpdateHosts),
        ("endpoint added on another node", &on_a, Some(&ab), UpdateHosts),
        ("last ready endpoint gone", &on_a, Some(&none), UpdateHosts),
        ("still none", &on_none, Some(&none), Skip("in sync")),
        ("first endpoint ready", &on_none, Some(&a), UpdateHosts),
        (
            "tracking started (provider now wants endpoint nodes)",
            &untracked,
            Some(&a),
            UpdateHosts,
        ),
        ("tracking stopped", &on_a, None, UpdateHosts),
        ("not tracked, not tracked", &untracked, None, Skip("in sync")),
    ];
    for (what, state, endpoints, expected) in table {
        assert_eq!(
            decide_service(&local, Some(state), &nodes, endpoints, now, None),
            expected,
            "{what}"
        );
    }
    // A spec change still wins over a backend change: one ensure carries both.
    let mut port_changed = local.clone();
    port_changed.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].port = 8080;
    assert_eq!(
        decide_service(&port_changed, Some(&on_a), &nodes, Some(&b), now, None),
        Ensure {
            add_finalizer: false,
            reason: EnsureReason::SpecChanged
        }
    );
}
