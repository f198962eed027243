use std::collections::BTreeMap;

use super::*;
use crate::disk::{Attachment, final_id};

fn server(name: &str, zone: &str) -> Server {
    Server {
        name: name.into(),
        zone: zone.into(),
        state: "running".into(),
    }
}

fn disk(id: &str, desc: &str, size: i64, status: &str, att: Option<(&str, &str)>) -> Disk {
    Disk {
        id: id.into(),
        unique_id: format!("vol-{id}"),
        size_gb: size,
        disk_type: Some(DiskType::StandardFlashA),
        zone: "east-11".into(),
        description: desc.into(),
        status: DiskStatus::from_wire(status),
        accounting: Some(AccountingType::PayPerUse),
        next_month_accounting: Some(AccountingType::PayPerUse),
        attachments: att
            .map(|(i, s)| Attachment {
                instance_id: i.into(),
                device: Some("SCSI (0:1)".into()),
                status: AttachState::from_wire(s),
            })
            .into_iter()
            .collect(),
    }
}

fn spec(name: &str) -> CreateSpec {
    CreateSpec {
        name: name.into(),
        size_gb: 100,
        min_gb: 1,
        max_gb: i64::MAX,
        disk_type: DiskType::StandardFlashA,
    }
}

#[test]
fn globs() {
    for (p, t, want) in [
        ("*", "node1", true),
        ("node?", "node1", true),
        ("node?", "node10", false),
        ("k8s-*-worker*", "k8s-a-worker3", true),
        ("k8s*", "k9s", false),
        ("exact", "exact", true),
        ("exact", "exactly", false),
        ("", "", true),
        ("a*b*c", "aXbYc", true),
        ("a*b*c", "aXbY", false),
    ] {
        assert_eq!(glob_match(p, t), want, "{p} {t}");
    }
    let m = Membership::patterns(["node*", ""]);
    assert!(m.contains("node7") && !m.contains("db1"));
    assert!(Membership::default().is_empty() && !Membership::default().contains("node1"));
}

#[test]
fn helper_server_choice() {
    let servers = vec![
        server("node2", "east-11"),
        server("node1", "east-11"),
        server("db1", "east-11"),
        Server {
            state: "pending".into(),
            ..server("node3", "east-11")
        },
        server("node5", "east-12"),
    ];
    let members = Membership::patterns(["node*"]);
    let none = BTreeMap::new();
    let busy = vec![disk("a", "x", 100, "in-use", Some(("node1", "attached")))];
    let first = pick_server(&servers, &[], "east-11", &members, "pvc-1", &none)
        .unwrap()
        .name
        .clone();
    assert!(first == "node1" || first == "node2", "{first}");
    assert_eq!(
        pick_server(&servers, &[], "east-11", &members, "pvc-1", &none)
            .unwrap()
            .name,
        first,
        "stable"
    );
    assert_eq!(
        pick_server(&servers, &busy, "east-11", &members, "pvc-1", &none)
            .unwrap()
            .name,
        "node2",
        "fewest disks"
    );
    assert!(pick_server(&servers, &[], "east-13", &members, "pvc-1", &none).is_none());
    let outside = Membership::patterns(["db*x"]);
    assert!(
        pick_server(&servers, &[], "east-11", &outside, "pvc-1", &none).is_none(),
        "never outside"
    );
    let many: Vec<Server> = (0..10).map(|i| server(&format!("node{i:02}"), "east-11")).collect();
    let mut used = std::collections::BTreeSet::new();
    for v in 0..100 {
        used.insert(
            pick_server(&many, &[], "east-11", &members, &format!("pvc-{v}"), &none)
                .unwrap()
                .name
                .clone(),
        );
    }
    assert!(used.len() >= 8, "concurrent creations spread: {used:?}");
    let full: Vec<Disk> = (0..14)
        .map(|i| disk(&format!("d{i}"), "x", 100, "in-use", Some(("node5", "attached"))))
        .collect();
    assert!(
        pick_server(&servers, &full, "east-12", &members, "pvc-1", &none).is_none(),
        "full server"
    );
    assert_eq!(
        pick_zone(&["east-13".into(), "east-12".into()], &servers, &[], &members, &none).as_deref(),
        Some("east-12")
    );
    assert_eq!(
        pick_zone(&[], &servers, &[], &members, &none).as_deref(),
        Some("east-11")
    );
    assert_eq!(pick_zone(&["east-12".into()], &servers, &full, &members, &none), None);
}

#[test]
fn name_lookup_is_exact() {
    let disks = vec![
        disk("other", "pvc-12", 100, "available", None),
        disk(&final_id("pvc-1"), "pvc-1", 100, "available", None),
        disk(&creating_id("pvc-1"), "pvc-1", 100, "available", None),
    ];
    assert_eq!(find_by_name(&disks, "pvc-1").unwrap().id, final_id("pvc-1"));
    assert_eq!(find_by_name(&disks, "pvc-12").unwrap().id, "other");
    assert!(find_by_name(&disks, "pvc").is_none());
}

#[test]
fn create_steps() {
    let s = spec("pvc-1");
    let c = creating_id("pvc-1");
    let cases: Vec<(&str, Option<Disk>, CreateStep)> = vec![
        ("nothing", None, CreateStep::Create),
        (
            "creating",
            Some(disk(&c, "pvc-1", 100, "creating", Some(("node1", "attaching")))),
            CreateStep::WaitAttached,
        ),
        (
            "attaching",
            Some(disk(&c, "pvc-1", 100, "in-use", Some(("node1", "attaching")))),
            CreateStep::WaitAttached,
        ),
        (
            "attached",
            Some(disk(&c, "pvc-1", 100, "in-use", Some(("node1", "attached")))),
            CreateStep::Detach("node1".into()),
        ),
        (
            "detaching",
            Some(disk(&c, "pvc-1", 100, "in-use", Some(("node1", "detaching")))),
            CreateStep::WaitAvailable,
        ),
        (
            "available",
            Some(disk(&c, "pvc-1", 100, "available", None)),
            CreateStep::Finish,
        ),
        (
            "creating, no attachment",
            Some(disk(&c, "pvc-1", 100, "creating", None)),
            CreateStep::WaitAttached,
        ),
    ];
    for (name, found, want) in cases {
        assert_eq!(next_create_step(found.as_ref(), &s), want, "{name}");
    }
    // A finished disk is returned as it is, even when published to a node: never detached.
    let published = disk(&final_id("pvc-1"), "pvc-1", 100, "in-use", Some(("node2", "attached")));
    assert_eq!(
        next_create_step(Some(&published), &s),
        CreateStep::Done(published.clone())
    );
    let big = disk(&final_id("pvc-1"), "pvc-1", 300, "available", None);
    let small = CreateSpec {
        max_gb: 200,
        ..s.clone()
    };
    assert!(matches!(
        next_create_step(Some(&big), &small),
        CreateStep::Incompatible(_)
    ));
    let tiny = CreateSpec {
        min_gb: 400,
        ..s.clone()
    };
    assert!(matches!(
        next_create_step(Some(&big), &tiny),
        CreateStep::Incompatible(_)
    ));
    let other_type = CreateSpec {
        disk_type: DiskType::Flash,
        ..s
    };
    assert!(matches!(
        next_create_step(Some(&big), &other_type),
        CreateStep::Incompatible(_)
    ));
}

#[test]
fn publish_steps() {
    let node = server("node1", "east-11");
    let free = disk("v", "pvc-1", 100, "available", None);
    assert_eq!(next_publish_step(&free, &node, 0, 0), PublishStep::Attach);
    assert_eq!(next_publish_step(&free, &node, 14, 0), PublishStep::NodeFull);
    let mine = disk("v", "pvc-1", 100, "in-use", Some(("node1", "attached")));
    assert_eq!(
        next_publish_step(&mine, &node, 14, 0),
        PublishStep::Done(Some("SCSI (0:1)".into()))
    );
    let coming = disk("v", "pvc-1", 100, "in-use", Some(("node1", "attaching")));
    assert_eq!(next_publish_step(&coming, &node, 1, 0), PublishStep::Wait);
    let elsewhere = disk("v", "pvc-1", 100, "in-use", Some(("node2", "attached")));
    assert_eq!(
        next_publish_step(&elsewhere, &node, 0, 0),
        PublishStep::AttachedElsewhere("node2".into())
    );
    let reserved = BTreeMap::from([("node1".to_string(), 14usize)]);
    let servers = vec![server("node1", "east-11"), server("node2", "east-11")];
    assert_eq!(
        pick_server(&servers, &[], "east-11", &Membership::patterns(["*"]), "v", &reserved)
            .unwrap()
            .name,
        "node2"
    );
    assert_eq!(
        next_publish_step(&free, &node, 14, 1),
        PublishStep::Wait,
        "helper disks leave soon"
    );
    let far = server("node5", "east-12");
    assert_eq!(
        next_publish_step(&free, &far, 0, 0),
        PublishStep::WrongZone("east-11".into())
    );
}

#[test]
fn expand_steps_never_overshoot() {
    let d = |size, att: Option<(&str, &str)>| {
        disk(
            "v",
            "pvc-1",
            size,
            if att.is_some() { "in-use" } else { "available" },
            att,
        )
    };
    assert_eq!(
        next_expand_step(&d(300, None), 300),
        ExpandStep::Done,
        "equal: no call (original bug)"
    );
    assert_eq!(next_expand_step(&d(400, None), 300), ExpandStep::Done);
    assert_eq!(next_expand_step(&d(200, None), 300), ExpandStep::Extend, "offline");
    assert_eq!(
        next_expand_step(&d(200, Some(("n", "attached"))), 300),
        ExpandStep::Extend,
        "online"
    );
    assert_eq!(
        next_expand_step(&d(200, Some(("n", "attaching"))), 300),
        ExpandStep::Wait
    );
}

#[test]
fn modify_decides_from_next_months_accounting() {
    use AccountingType::{Monthly, PayPerUse};
    let with = |now, next| Disk {
        accounting: now,
        next_month_accounting: next,
        ..disk(&final_id("pvc-m"), "pvc-m", 100, "in-use", None)
    };
    let cases = [
        (
            "already billed so",
            Some(PayPerUse),
            Some(PayPerUse),
            PayPerUse,
            ModifyStep::Done,
        ),
        (
            "a change",
            Some(PayPerUse),
            Some(PayPerUse),
            Monthly,
            ModifyStep::Modify,
        ),
        (
            "pending for next month",
            Some(PayPerUse),
            Some(Monthly),
            Monthly,
            ModifyStep::Pending,
        ),
        (
            "back before the month turns",
            Some(PayPerUse),
            Some(Monthly),
            PayPerUse,
            ModifyStep::Modify,
        ),
        (
            "no next-month field: this month's",
            Some(Monthly),
            None,
            Monthly,
            ModifyStep::Done,
        ),
        ("nothing known", None, None, Monthly, ModifyStep::Modify),
    ];
    for (name, now, next, wanted, want) in cases {
        assert_eq!(next_modify_step(&with(now, next), wanted), want, "{name}");
    }
}
