use super::*;
use crate::model::tests_support::{tcp_check, tcp_listener as want};

fn pp(port: i64, instance_port: i64) -> PortPair {
    PortPair { port, instance_port }
}

fn names(n: &[&str]) -> BTreeSet<String> {
    n.iter().map(|s| s.to_string()).collect()
}

fn servers(n: &[&str]) -> BTreeSet<Arc<str>> {
    n.iter().map(|s| Arc::from(*s)).collect()
}

fn desired(listeners: Vec<Listener>) -> DesiredL4 {
    DesiredL4 {
        name: "k1234abcdef0123".into(),
        network_volume: None,
        accounting_type: None,
        policy_type: None,
        listeners,
        members: servers(&["node1", "node2"]),
        filter: [ANY_SOURCE.to_owned()].into(),
    }
}

/// The observed state that exactly matches `d`.
fn converged(d: &DesiredL4) -> ObservedL4 {
    ObservedL4 {
        name: d.name.clone(),
        vip: "198.51.100.1".into(),
        network_volume: Some(10),
        billing: Billing {
            current: Some(AccountingType::Monthly),
            next_month: Some(AccountingType::Monthly),
        },
        policy_type: Some(PolicyType::Standard),
        ports: d
            .listeners
            .iter()
            .map(|w| ObservedPort {
                listener: w.clone(),
                members: Arc::new(d.members.clone()),
                filter_type: FilterType::Allow,
                filter: Arc::new([ANY_SOURCE.to_owned()].into()),
            })
            .collect(),
    }
}

#[test]
fn creates_when_missing() {
    let d = desired(vec![want(80, 30080), want(443, 30443)]);
    let p = plan(&d, None);
    assert_eq!(
        p.actions,
        vec![L4Action::Create {
            listeners: vec![want(80, 30080), want(443, 30443)],
            network_volume: None,
            accounting_type: None,
            policy_type: None,
        }]
    );
}

#[test]
fn nothing_to_do_when_converged() {
    let d = desired(vec![want(80, 30080), want(443, 30443)]);
    let p = plan(&d, Some(&converged(&d)));
    assert_eq!(p, Plan::default());
    // An implicit "any" filter (empty list) equals an explicit one.
    let mut o = converged(&d);
    o.ports[0].filter = Arc::default();
    assert_eq!(plan(&d, Some(&o)), Plan::default());
}

#[test]
fn every_attribute_is_reconciled() {
    let d = desired(vec![want(80, 30080)]);
    let base = converged(&d);
    type Mutate = fn(&mut DesiredL4, &mut ObservedL4);
    let cases: Vec<(&str, Mutate, Vec<L4Action>)> = vec![
        (
            "network volume",
            |d, _| d.network_volume = Some(100),
            vec![L4Action::SetNetworkVolume(100)],
        ),
        (
            "accounting type",
            |d, _| d.accounting_type = Some(AccountingType::PayPerUse),
            vec![L4Action::SetAccountingType(AccountingType::PayPerUse)],
        ),
        (
            "accounting change already pending",
            |d, o| {
                d.accounting_type = Some(AccountingType::PayPerUse);
                o.billing.next_month = Some(AccountingType::PayPerUse);
            },
            vec![],
        ),
        (
            "balancing type",
            |d, _| d.listeners[0].balancing = BalancingType::LeastConnection,
            vec![L4Action::UpdateListener {
                from: pp(80, 30080),
                to: pp(80, 30080),
                balancing: BalancingType::LeastConnection,
            }],
        ),
        (
            "health check",
            |d, _| {
                d.listeners[0].health_check.interval = 30;
                d.listeners[0].health_check.unhealthy_threshold = 3;
            },
            vec![L4Action::ConfigureHealthCheck {
                ports: pp(80, 30080),
                health_check: tcp_check(30080, 30, 3),
            }],
        ),
        (
            "members",
            |d, _| d.members = servers(&["node2", "node3"]),
            vec![
                L4Action::RegisterInstances {
                    ports: pp(80, 30080),
                    names: vec!["node3".into()],
                },
                L4Action::DeregisterInstances {
                    ports: pp(80, 30080),
                    names: vec!["node1".into()],
                },
            ],
        ),
        (
            "filter from any to a list: the addresses are added, *.*.*.* is left to the service",
            |d, _| d.filter = names(&["10.0.0.0/8", "1.2.3.4"]),
            vec![L4Action::SetFilter {
                ports: pp(80, 30080),
                add: vec!["1.2.3.4".into(), "10.0.0.0/8".into()],
                remove: vec![],
                set_allow: false,
            }],
        ),
        (
            "filter from a list back to any, and a deny filter becomes allow: *.*.*.* is not added",
            |_, o| {
                o.ports[0].filter = Arc::new(names(&["1.2.3.4"]));
                o.ports[0].filter_type = FilterType::Deny;
            },
            vec![L4Action::SetFilter {
                ports: pp(80, 30080),
                add: vec![],
                remove: vec!["1.2.3.4".into()],
                set_allow: true,
            }],
        ),
        (
            "node port changed: updated in place",
            |d, _| {
                d.listeners[0].instance_port = 31000;
                d.listeners[0].health_check.target = HealthCheckTarget::Tcp(31000);
            },
            vec![
                L4Action::UpdateListener {
                    from: pp(80, 30080),
                    to: pp(80, 31000),
                    balancing: BalancingType::RoundRobin,
                },
                L4Action::ConfigureHealthCheck {
                    ports: pp(80, 31000),
                    health_check: tcp_check(31000, 10, 1),
                },
            ],
        ),
        (
            "port changed with the same count: updated in place, never deleted",
            |d, _| {
                d.listeners[0].port = 8080;
            },
            vec![L4Action::UpdateListener {
                from: pp(80, 30080),
                to: pp(8080, 30080),
                balancing: BalancingType::RoundRobin,
            }],
        ),
        (
            "port added",
            |d, _| d.listeners.push(want(443, 30443)),
            vec![L4Action::RegisterPort {
                ports: pp(443, 30443),
                balancing: BalancingType::RoundRobin,
            }],
        ),
        (
            "port removed: deleted last",
            |d, o| {
                let mut extra = o.ports[0].clone();
                extra.listener.port = 443;
                extra.listener.instance_port = 30443;
                o.ports.push(extra);
                d.members = servers(&["node1"]);
            },
            vec![
                L4Action::DeregisterInstances {
                    ports: pp(80, 30080),
                    names: vec!["node2".into()],
                },
                L4Action::DeletePort { ports: pp(443, 30443) },
            ],
        ),
    ];
    for (what, mutate, want_actions) in cases {
        let mut d2 = d.clone();
        let mut o2 = base.clone();
        mutate(&mut d2, &mut o2);
        let p = plan(&d2, Some(&o2));
        assert_eq!(p.actions, want_actions, "{what}");
        assert!(p.warnings.is_empty(), "{what}");
    }
}

#[test]
fn policy_type_change_is_a_warning_not_a_call() {
    let mut d = desired(vec![want(80, 30080)]);
    let o = converged(&d);
    d.policy_type = Some(PolicyType::Ats);
    let p = plan(&d, Some(&o));
    assert!(p.actions.is_empty());
    assert!(p.warnings[0].contains("cannot be changed"), "{:?}", p.warnings);
}

#[test]
fn only_new_or_moved_listeners_call_for_a_re_read() {
    let d = desired(vec![want(80, 30080)]);
    assert!(plan(&d, None).reshapes, "a create");
    let o = converged(&d);
    let mut added = d.clone();
    added.listeners.push(want(443, 30443));
    let mut moved = d.clone();
    moved.listeners[0].instance_port = 31000;
    let mut members = d.clone();
    members.members = servers(&["node9"]);
    let mut removed = d.clone();
    removed.listeners.clear();
    let cases = [
        ("a listener added", added, true),
        ("a listener moved", moved, true),
        ("members changed", members, false),
        ("a listener removed", removed, false),
    ];
    for (what, d2, reshapes) in cases {
        let p = plan(&d2, Some(&o));
        assert!(!p.actions.is_empty(), "{what}");
        assert_eq!(p.reshapes, reshapes, "{what}");
    }
}

#[test]
fn a_created_load_balancer_needs_its_settings_and_nothing_else() {
    let mut d = desired(vec![want(80, 30080)]);
    d.network_volume = Some(100);
    d.accounting_type = Some(AccountingType::PayPerUse);
    let p = plan(&d, Some(&d.as_created("198.51.100.1")));
    assert_eq!(
        p.actions,
        vec![
            L4Action::ConfigureHealthCheck {
                ports: pp(80, 30080),
                health_check: tcp_check(30080, 10, 1),
            },
            L4Action::RegisterInstances {
                ports: pp(80, 30080),
                names: vec!["node1".into(), "node2".into()],
            },
        ],
        "the default allow-any filter stays"
    );
}

#[test]
fn teardown_deletes_every_port_pair() {
    let d = desired(vec![want(80, 30080), want(443, 30443)]);
    assert_eq!(
        teardown(&converged(&d)),
        vec![
            L4Action::DeletePort { ports: pp(80, 30080) },
            L4Action::DeletePort { ports: pp(443, 30443) },
        ]
    );
}

#[test]
fn members_follow_the_endpoint_nodes_on_every_port_pair() {
    // The members are the servers of the nodes with a ready endpoint (externalTrafficPolicy: Local); as the
    // endpoints move, each port pair registers the new ones and deregisters the old ones, and nothing else.
    let mut d = desired(vec![want(80, 30080), want(443, 30443)]);
    d.members = servers(&["node1"]);
    let on_node1 = converged(&d);
    let register = |port, node_port, n: &[&str]| L4Action::RegisterInstances {
        ports: pp(port, node_port),
        names: n.iter().map(|s| s.to_string()).collect(),
    };
    let deregister = |port, node_port, n: &[&str]| L4Action::DeregisterInstances {
        ports: pp(port, node_port),
        names: n.iter().map(|s| s.to_string()).collect(),
    };
    let table: Vec<(&str, &[&str], Vec<L4Action>)> = vec![
        ("unchanged: no call", &["node1"], vec![]),
        (
            "moved from node1 to node2",
            &["node2"],
            vec![
                register(80, 30080, &["node2"]),
                deregister(80, 30080, &["node1"]),
                register(443, 30443, &["node2"]),
                deregister(443, 30443, &["node1"]),
            ],
        ),
        (
            "scaled out to node3 too",
            &["node1", "node3"],
            vec![register(80, 30080, &["node3"]), register(443, 30443, &["node3"])],
        ),
        (
            "no ready endpoint left: no member, the listeners stay",
            &[],
            vec![deregister(80, 30080, &["node1"]), deregister(443, 30443, &["node1"])],
        ),
    ];
    for (what, endpoint_nodes, want_actions) in table {
        let mut d2 = d.clone();
        d2.members = servers(endpoint_nodes);
        let p = plan(&d2, Some(&on_node1));
        assert_eq!(p.actions, want_actions, "{what}");
        assert!(!p.reshapes && p.warnings.is_empty(), "{what}");
    }
    // From no member back to one.
    let mut empty = d.clone();
    empty.members = servers(&[]);
    assert_eq!(
        plan(&d, Some(&converged(&empty))).actions,
        vec![register(80, 30080, &["node1"]), register(443, 30443, &["node1"])]
    );
}

/// The filter of one port pair as observed, and the plan for it: its actions and whether it re-reads.
fn filter_plan(wanted: &[&str], have: &[&str]) -> (Vec<L4Action>, bool) {
    let mut d = desired(vec![want(80, 30080)]);
    d.filter = names(wanted);
    let mut o = converged(&d);
    o.ports[0].filter = Arc::new(names(have));
    let p = plan(&d, Some(&o));
    (p.actions, p.reshapes)
}

fn set_filter(add: &[&str], remove: &[&str]) -> Vec<L4Action> {
    vec![L4Action::SetFilter {
        ports: pp(80, 30080),
        add: add.iter().map(|s| s.to_string()).collect(),
        remove: remove.iter().map(|s| s.to_string()).collect(),
        set_allow: false,
    }]
}

#[test]
fn the_filter_converges_whichever_way_the_service_reports_allow_any() {
    const ANY: &str = ANY_SOURCE;
    let (a, b) = ("192.0.2.1", "192.0.2.2");
    /// (what, wanted, observed, calls, re-read)
    type Row<'a> = (&'a str, Vec<&'a str>, Vec<&'a str>, Vec<L4Action>, bool);
    let table: Vec<Row<'_>> = vec![
        ("open, shown as *.*.*.*", vec![ANY], vec![ANY], vec![], false),
        ("open, shown empty", vec![ANY], vec![], vec![], false),
        (
            "closing an open filter: only adds, then reads what the service made of *.*.*.*",
            vec![a, b],
            vec![ANY],
            set_filter(&[a, b], &[]),
            true,
        ),
        (
            "closing an empty-shown filter: the same",
            vec![a, b],
            vec![],
            set_filter(&[a, b], &[]),
            true,
        ),
        // A service that replaces *.*.*.* reports just the addresses: converged.
        ("replaced: converged", vec![a, b], vec![a, b], vec![], false),
        // A service that keeps *.*.*.* listed beside them: it is removed by itself, with no re-read.
        (
            "kept beside the addresses: removed",
            vec![a, b],
            vec![ANY, a, b],
            set_filter(&[], &[ANY]),
            false,
        ),
        (
            "kept beside other addresses: swapped in one call",
            vec![b],
            vec![ANY, a],
            set_filter(&[b], &[ANY, a]),
            false,
        ),
        // Opening again: only the addresses go; *.*.*.* is what an empty filter shows, or stays.
        (
            "opening a replaced filter",
            vec![ANY],
            vec![a, b],
            set_filter(&[], &[a, b]),
            false,
        ),
        (
            "opening a kept filter",
            vec![ANY],
            vec![ANY, a],
            set_filter(&[], &[a]),
            false,
        ),
    ];
    for (what, wanted, have, calls, reread) in table {
        let (actions, reshapes) = filter_plan(&wanted, &have);
        assert_eq!(actions, calls, "{what}");
        assert_eq!(reshapes, reread, "{what}");
        for action in &actions {
            if let L4Action::SetFilter { add, .. } = action {
                assert!(!add.iter().any(|x| x == ANY), "{what}: never adds {ANY}");
            }
        }
    }
}

#[test]
fn the_filter_plan_has_a_fixed_point_under_both_behaviours() {
    // Apply each plan as a service of each kind would and plan again: the filter reaches what is wanted, and the
    // second plan is empty.
    fn apply(filter: &mut BTreeSet<String>, action: &L4Action, keeps_any: bool) {
        let L4Action::SetFilter { add, remove, .. } = action else {
            return;
        };
        for r in remove {
            filter.remove(r);
        }
        filter.extend(add.iter().cloned());
        if !keeps_any {
            filter.remove(ANY_SOURCE);
            if filter.is_empty() {
                filter.insert(ANY_SOURCE.to_owned());
            }
        }
    }
    let any = [ANY_SOURCE];
    let steps: [&[&str]; 4] = [&["10.0.0.0/8", "192.0.2.7"], &["192.0.2.7"], &any, &["198.51.100.0/24"]];
    for keeps_any in [false, true] {
        let mut filter: BTreeSet<String> = names(&any);
        for wanted in steps {
            let mut rounds = 0;
            loop {
                let have: Vec<&str> = filter.iter().map(String::as_str).collect();
                let (actions, _) = filter_plan(wanted, &have);
                if actions.is_empty() {
                    break;
                }
                for a in &actions {
                    apply(&mut filter, a, keeps_any);
                }
                rounds += 1;
                assert!(
                    rounds <= 2,
                    "keeps *.*.*.*: {keeps_any}, wanting {wanted:?}: still {filter:?}"
                );
            }
            let open = filter.is_empty() || filter.contains(ANY_SOURCE);
            if wanted == any {
                assert!(open, "keeps *.*.*.*: {keeps_any}: {filter:?}");
            } else {
                assert_eq!(filter, names(wanted), "keeps *.*.*.*: {keeps_any}");
            }
        }
    }
}

#[test]
fn a_listing_groups_port_pairs_by_name_and_keeps_one_copy_of_each_name_member_set_and_filter() {
    let entry = |name: &str, port: i64, members: &[&str]| -> LoadBalancerDescriptions {
        let members: String = members
            .iter()
            .map(|m| format!("<member><InstanceId>{m}</InstanceId></member>"))
            .collect();
        nifcloud_sdk::xml::from_str(&format!(
            "<member><LoadBalancerName>{name}</LoadBalancerName><DNSName>203.0.113.9</DNSName>\
             <ListenerDescriptions><member><Listener><Protocol>TCP</Protocol><LoadBalancerPort>{port}</LoadBalancerPort>\
             <InstancePort>3{port}</InstancePort></Listener></member></ListenerDescriptions>\
             <Instances>{members}</Instances><HealthCheck><Target>TCP:3{port}</Target></HealthCheck>\
             <Filter><FilterType>1</FilterType><IPAddresses><member><IPAddress>*.*.*.*</IPAddress></member></IPAddresses></Filter></member>"
        ))
        .expect("entry parses")
    };
    let listed = ObservedL4::from_descriptions([
        entry("a", 443, &["node1", "node2"]),
        entry("b", 80, &["node2"]),
        entry("", 81, &["node3"]),
        entry("a", 80, &["node1", "node2"]),
    ]);
    let listed_names: Vec<&str> = listed.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(
        listed_names,
        ["a", "b"],
        "in the order first listed; an entry without a name is left out"
    );
    let a = &listed[0];
    let ports: Vec<i64> = a.ports.iter().map(|p| p.listener.port).collect();
    assert_eq!(ports, [80, 443], "port pairs ordered by ports");
    assert_eq!(a.vip, "203.0.113.9");
    assert_eq!(*a.ports[1].members, servers(&["node1", "node2"]));
    assert!(
        Arc::ptr_eq(&a.ports[0].members, &a.ports[1].members),
        "one copy of each set of members"
    );
    assert_eq!(*a.ports[0].filter, names(&[ANY_SOURCE]));
    assert!(
        Arc::ptr_eq(&a.ports[0].filter, &listed[1].ports[0].filter),
        "one copy of each filter for the whole listing"
    );
    assert!(
        a.ports.capacity() < 4,
        "room for the port pairs listed, not a growing Vec's four"
    );
    let node2 = |o: &ObservedL4, port: usize| o.ports[port].members.iter().find(|m| &***m == "node2").cloned();
    let (in_a, in_b) = (node2(a, 0).expect("member"), node2(&listed[1], 0).expect("member"));
    assert!(
        Arc::ptr_eq(&in_a, &in_b),
        "one copy of a member's name for the whole listing"
    );
}
