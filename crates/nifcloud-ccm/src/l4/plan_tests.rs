use super::*;

fn want(port: i64, iport: i64) -> WantListener {
    WantListener {
        port,
        instance_port: iport,
        balancing_type: 1,
        hc_target: format!("TCP:{iport}"),
        hc_interval: 10,
        hc_unhealthy: 1,
    }
}

fn names(n: &[&str]) -> BTreeSet<String> {
    n.iter().map(|s| s.to_string()).collect()
}

fn desired(listeners: Vec<WantListener>) -> DesiredL4 {
    DesiredL4 {
        name: "k1234abcdef0123".into(),
        network_volume: None,
        accounting_type: None,
        policy_type: None,
        listeners,
        instances: names(&["node1", "node2"]),
        filter: [ANY_SOURCE.to_owned()].into(),
    }
}

/// The observed state that exactly matches `d`.
fn converged(d: &DesiredL4) -> ObservedL4 {
    ObservedL4 {
        name: d.name.clone(),
        vip: "198.51.100.1".into(),
        network_volume: Some(10),
        accounting_type: Some("1".into()),
        next_month_accounting_type: Some("1".into()),
        policy_type: Some("standard".into()),
        listeners: d
            .listeners
            .iter()
            .map(|w| ObservedListener {
                port: w.port,
                instance_port: w.instance_port,
                balancing_type: w.balancing_type,
                hc_target: w.hc_target.clone(),
                hc_interval: w.hc_interval,
                hc_unhealthy: w.hc_unhealthy,
                instances: d.instances.clone(),
                filter_type: "1".into(),
                filter: [ANY_SOURCE.to_owned()].into(),
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
            listeners: vec![(80, 30080, 1), (443, 30443, 1)],
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
    assert_eq!(p, L4Plan::default());
    // An implicit "any" filter (empty list) equals an explicit one.
    let mut o = converged(&d);
    o.listeners[0].filter.clear();
    assert_eq!(plan(&d, Some(&o)), L4Plan::default());
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
            |d, _| d.accounting_type = Some(2),
            vec![L4Action::SetAccountingType(2)],
        ),
        (
            "accounting change already pending",
            |d, o| {
                d.accounting_type = Some(2);
                o.next_month_accounting_type = Some("2".into());
            },
            vec![],
        ),
        (
            "balancing type",
            |d, _| d.listeners[0].balancing_type = 2,
            vec![L4Action::UpdateListener {
                from: (80, 30080),
                to: (80, 30080, 2),
            }],
        ),
        (
            "health check",
            |d, _| {
                d.listeners[0].hc_interval = 30;
                d.listeners[0].hc_unhealthy = 3;
            },
            vec![L4Action::ConfigureHealthCheck {
                listener: (80, 30080),
                target: "TCP:30080".into(),
                interval: 30,
                unhealthy: 3,
            }],
        ),
        (
            "members",
            |d, _| d.instances = names(&["node2", "node3"]),
            vec![
                L4Action::RegisterInstances {
                    listener: (80, 30080),
                    names: vec!["node3".into()],
                },
                L4Action::DeregisterInstances {
                    listener: (80, 30080),
                    names: vec!["node1".into()],
                },
            ],
        ),
        (
            "filter from any to a list",
            |d, _| d.filter = names(&["10.0.0.0/8", "1.2.3.4"]),
            vec![L4Action::SetFilter {
                listener: (80, 30080),
                add: vec!["1.2.3.4".into(), "10.0.0.0/8".into()],
                remove: vec![ANY_SOURCE.into()],
                set_allow: false,
            }],
        ),
        (
            "filter from a list back to any, and a deny filter becomes allow",
            |_, o| {
                o.listeners[0].filter = names(&["1.2.3.4"]);
                o.listeners[0].filter_type = "2".into();
            },
            vec![L4Action::SetFilter {
                listener: (80, 30080),
                add: vec![ANY_SOURCE.into()],
                remove: vec!["1.2.3.4".into()],
                set_allow: true,
            }],
        ),
        (
            "node port changed: updated in place",
            |d, _| {
                d.listeners[0].instance_port = 31000;
                d.listeners[0].hc_target = "TCP:31000".into();
            },
            vec![
                L4Action::UpdateListener {
                    from: (80, 30080),
                    to: (80, 31000, 1),
                },
                L4Action::ConfigureHealthCheck {
                    listener: (80, 31000),
                    target: "TCP:31000".into(),
                    interval: 10,
                    unhealthy: 1,
                },
            ],
        ),
        (
            "port changed with the same count: updated in place, never deleted",
            |d, _| {
                d.listeners[0].port = 8080;
            },
            vec![L4Action::UpdateListener {
                from: (80, 30080),
                to: (8080, 30080, 1),
            }],
        ),
        (
            "port added",
            |d, _| d.listeners.push(want(443, 30443)),
            vec![L4Action::RegisterPort {
                listener: (443, 30443, 1),
            }],
        ),
        (
            "port removed: deleted last",
            |d, o| {
                o.listeners.push(ObservedListener {
                    port: 443,
                    instance_port: 30443,
                    ..o.listeners[0].clone()
                });
                d.instances = names(&["node1"]);
            },
            vec![
                L4Action::DeregisterInstances {
                    listener: (80, 30080),
                    names: vec!["node2".into()],
                },
                L4Action::DeletePort { listener: (443, 30443) },
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
    d.policy_type = Some("ats");
    let p = plan(&d, Some(&o));
    assert!(p.actions.is_empty());
    assert!(p.warnings[0].contains("cannot be changed"), "{:?}", p.warnings);
}

#[test]
fn structural_actions() {
    assert!(L4Action::RegisterPort { listener: (1, 2, 1) }.is_structural());
    assert!(!L4Action::DeletePort { listener: (1, 2) }.is_structural());
    assert!(!L4Action::SetNetworkVolume(10).is_structural());
}
