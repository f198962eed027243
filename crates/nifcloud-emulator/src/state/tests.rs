//! State-machine tests driving the operation handlers directly.

use super::*;
use crate::api::process;
use crate::config::{DelayConfig, EmulatorConfig};
use crate::wire::Params;

fn world() -> State {
    State::from_config(&EmulatorConfig::sample(), 0)
}

fn call(st: &mut State, now: i64, pairs: &[(&str, &str)]) -> Result<String, String> {
    let r = process(st, &Params::from_pairs(pairs.iter().copied()), now);
    if r.status == 200 {
        Ok(r.body)
    } else {
        Err(r.error_code.unwrap_or_default())
    }
}

#[test]
fn fourteen_disks_per_instance_with_scsi_numbering() {
    let mut st = world();
    for i in 0..14 {
        let name = format!("d{i}");
        call(
            &mut st,
            0,
            &[
                ("Action", "CreateVolume"),
                ("Size", "100"),
                ("InstanceId", "node1"),
                ("VolumeId", &name),
            ],
        )
        .unwrap();
    }
    let units: Vec<u8> = st
        .volumes
        .values()
        .filter_map(|v| v.attachment.as_ref())
        .map(|a| a.device_index)
        .collect();
    let mut sorted = units.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15]);
    let err = call(
        &mut st,
        0,
        &[("Action", "CreateVolume"), ("Size", "100"), ("InstanceId", "node1")],
    )
    .unwrap_err();
    assert_eq!(err, "Client.Inoperable.Instance.VolumeLimitExceeded");
    // Detach one: its unit becomes the lowest free one again.
    call(
        &mut st,
        0,
        &[("Action", "DetachVolume"), ("VolumeId", "d2"), ("Agreement", "true")],
    )
    .unwrap();
    let body = call(
        &mut st,
        0,
        &[
            ("Action", "CreateVolume"),
            ("Size", "200"),
            ("InstanceId", "node1"),
            ("VolumeId", "again"),
        ],
    )
    .unwrap();
    assert!(body.contains("<volumeId>again</volumeId>"));
    assert_eq!(st.volumes["again"].attachment.as_ref().unwrap().device_index, 3);
}

#[test]
fn volume_lifecycle_with_delays() {
    let mut st = world();
    st.delays = DelayConfig::uniform(1000);
    call(
        &mut st,
        0,
        &[
            ("Action", "CreateVolume"),
            ("Size", "100"),
            ("InstanceId", "node1"),
            ("VolumeId", "v1"),
            ("DiskType", "6"),
        ],
    )
    .unwrap();
    let d = |st: &mut State, t| call(st, t, &[("Action", "DescribeVolumes"), ("VolumeId.1", "v1")]).unwrap();
    let b = d(&mut st, 500);
    assert!(
        b.contains("<status>creating</status>") && b.contains("<status>attaching</status>"),
        "{b}"
    );
    assert!(b.contains("<diskType>Standard Flash Storage A</diskType>"));
    // Busy while creating.
    assert_eq!(
        call(
            &mut st,
            500,
            &[("Action", "DetachVolume"), ("VolumeId", "v1"), ("Agreement", "true")]
        )
        .unwrap_err(),
        "Server.ResourceIncorrectState.Volume.Processing"
    );
    let b = d(&mut st, 1500);
    assert!(
        b.contains("<status>in-use</status>") && b.contains("<status>attaching</status>"),
        "{b}"
    );
    let b = d(&mut st, 2000);
    assert!(
        b.contains("<status>attached</status>") && b.contains("<device>SCSI (0:1)</device>"),
        "{b}"
    );
    // Extend: attaching while it works, size grows at the end.
    call(&mut st, 2000, &[("Action", "ExtendVolumeSize"), ("VolumeId", "v1")]).unwrap();
    let b = d(&mut st, 2500);
    assert!(
        b.contains("<size>100</size>") && b.contains("<status>attaching</status>"),
        "{b}"
    );
    let b = d(&mut st, 3000);
    assert!(
        b.contains("<size>200</size>") && b.contains("<status>attached</status>"),
        "{b}"
    );
    // Delete while attached is refused; detach, wait, delete.
    assert_eq!(
        call(&mut st, 3000, &[("Action", "DeleteVolume"), ("VolumeId", "v1")]).unwrap_err(),
        "Client.Inoperable.Volume.InUse"
    );
    assert_eq!(
        call(&mut st, 3000, &[("Action", "DetachVolume"), ("VolumeId", "v1")]).unwrap_err(),
        "Client.InvalidParameter.Agreement"
    );
    call(
        &mut st,
        3000,
        &[("Action", "DetachVolume"), ("VolumeId", "v1"), ("Agreement", "true")],
    )
    .unwrap();
    assert!(d(&mut st, 3500).contains("<status>detaching</status>"));
    let b = d(&mut st, 4000);
    assert!(
        b.contains("<status>available</status>") && b.contains("<attachmentSet></attachmentSet>"),
        "{b}"
    );
    assert_eq!(
        call(
            &mut st,
            4000,
            &[("Action", "DetachVolume"), ("VolumeId", "v1"), ("Agreement", "true")]
        )
        .unwrap_err(),
        "Client.Inoperable.Volume.DetachedFromInstance"
    );
    call(&mut st, 4000, &[("Action", "DeleteVolume"), ("VolumeId", "v1")]).unwrap();
    assert_eq!(
        call(&mut st, 4000, &[("Action", "DescribeVolumes"), ("VolumeId.1", "v1")]).unwrap_err(),
        "Client.InvalidParameterNotFound.Volume"
    );
}

#[test]
fn illegal_volume_transitions() {
    let mut st = world();
    let c = |st: &mut State, p: &[(&str, &str)]| call(st, 0, p);
    assert_eq!(
        c(
            &mut st,
            &[("Action", "CreateVolume"), ("Size", "150"), ("InstanceId", "node1")]
        )
        .unwrap_err(),
        "Client.InvalidParameter.Size"
    );
    assert_eq!(
        c(
            &mut st,
            &[("Action", "CreateVolume"), ("Size", "4100"), ("InstanceId", "node1")]
        )
        .unwrap_err(),
        "Client.InvalidParameter.Size"
    );
    assert_eq!(
        c(
            &mut st,
            &[
                ("Action", "CreateVolume"),
                ("Size", "100"),
                ("InstanceId", "node1"),
                ("DiskType", "1")
            ]
        )
        .unwrap_err(),
        "Client.InvalidParameter.DiskType"
    );
    assert_eq!(
        c(
            &mut st,
            &[("Action", "CreateVolume"), ("Size", "100"), ("InstanceId", "ghost")]
        )
        .unwrap_err(),
        "Client.InvalidParameterNotFound.Instance"
    );
    assert_eq!(
        c(&mut st, &[("Action", "CreateVolume"), ("Size", "100")]).unwrap_err(),
        "Client.InvalidParameter.InstanceId"
    );
    let uid = st.instances["node5"].unique_id.clone();
    c(
        &mut st,
        &[
            ("Action", "CreateVolume"),
            ("Size", "100"),
            ("InstanceUniqueId", &uid),
            ("VolumeId", "z12"),
        ],
    )
    .unwrap();
    assert_eq!(st.volumes["z12"].zone, "east-12");
    assert_eq!(
        c(
            &mut st,
            &[
                ("Action", "CreateVolume"),
                ("Size", "100"),
                ("InstanceId", "node1"),
                ("VolumeId", "z12")
            ]
        )
        .unwrap_err(),
        "Client.InvalidParameterDuplicate.Volume"
    );
    assert_eq!(
        c(
            &mut st,
            &[("Action", "AttachVolume"), ("VolumeId", "z12"), ("InstanceId", "node6")]
        )
        .unwrap_err(),
        "Server.Inoperable.Volume.AlreadyAttached"
    );
    c(
        &mut st,
        &[("Action", "DetachVolume"), ("VolumeId", "z12"), ("Agreement", "true")],
    )
    .unwrap();
    assert_eq!(
        c(
            &mut st,
            &[("Action", "AttachVolume"), ("VolumeId", "z12"), ("InstanceId", "node1")]
        )
        .unwrap_err(),
        "Client.Inoperable.Volume.DifferentAvailabilityZone"
    );
    let b = c(
        &mut st,
        &[("Action", "AttachVolume"), ("VolumeId", "z12"), ("InstanceId", "node6")],
    )
    .unwrap();
    assert!(
        b.contains("<device>SCSI (0:1)</device>") && b.contains("<instanceId>node6</instanceId>"),
        "{b}"
    );
    for _ in 0..39 {
        c(&mut st, &[("Action", "ExtendVolumeSize"), ("VolumeId", "z12")]).unwrap();
    }
    assert_eq!(st.volumes["z12"].size_gb, 4000);
    assert_eq!(
        c(&mut st, &[("Action", "ExtendVolumeSize"), ("VolumeId", "z12")]).unwrap_err(),
        "Client.InvalidParameter.Size"
    );
    assert_eq!(
        c(&mut st, &[("Action", "FrobnicateVolume")]).unwrap_err(),
        "Client.InvalidAction"
    );
}

#[test]
fn terminated_instance_releases_its_volumes() {
    let mut st = world();
    call(
        &mut st,
        0,
        &[
            ("Action", "CreateVolume"),
            ("Size", "100"),
            ("InstanceId", "node2"),
            ("VolumeId", "t1"),
        ],
    )
    .unwrap();
    st.admin_terminate("node2").unwrap();
    assert!(st.volumes["t1"].attachment.is_none());
    assert_eq!(
        call(
            &mut st,
            0,
            &[("Action", "DescribeInstances"), ("InstanceId.1", "node2")]
        )
        .unwrap_err(),
        "Client.InvalidParameterNotFound.Instance"
    );
}

#[test]
fn elb_is_busy_while_processing() {
    let mut st = world();
    st.delays.elb_ms = 1000;
    let create = [
        ("Action", "NiftyCreateElasticLoadBalancer"),
        ("ElasticLoadBalancerName", "elb1"),
        ("AvailabilityZones.member.1", "east-11"),
        ("Listeners.member.1.Protocol", "TCP"),
        ("Listeners.member.1.ElasticLoadBalancerPort", "80"),
        ("Listeners.member.1.InstancePort", "30080"),
    ];
    call(&mut st, 0, &create).unwrap();
    let reg = [
        ("Action", "NiftyRegisterInstancesWithElasticLoadBalancer"),
        ("ElasticLoadBalancerName", "elb1"),
        ("Protocol", "TCP"),
        ("ElasticLoadBalancerPort", "80"),
        ("InstancePort", "30080"),
        ("Instances.member.1.InstanceId", "node1"),
    ];
    assert_eq!(
        call(&mut st, 500, &reg).unwrap_err(),
        "Server.ResourceIncorrectState.ElasticLoadBalancer.Processing"
    );
    let b = call(&mut st, 500, &[("Action", "NiftyDescribeElasticLoadBalancers")]).unwrap();
    assert!(b.contains("<State>processing</State>"));
    call(&mut st, 1000, &reg).unwrap();
    assert_eq!(
        call(&mut st, 2000, &reg).unwrap_err(),
        "Client.Inoperable.ElasticLoadBalancer.HavingRegisteredInstance"
    );
}

#[test]
fn same_seed_same_ids() {
    let run = || {
        let mut st = world();
        call(
            &mut st,
            0,
            &[("Action", "CreateVolume"), ("Size", "100"), ("InstanceId", "node1")],
        )
        .unwrap();
        st.volumes
            .values()
            .map(|v| (v.name.clone(), v.unique_id.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

/// Random requests against every operation (seeded): nothing panics, every reply is 200, a
/// `Client.*` 400 or a `Server.*` 500, and the state invariants hold throughout.
#[test]
fn random_requests_keep_invariants() {
    const KEYS: &[&str] = &[
        "VolumeId",
        "VolumeId.1",
        "InstanceId",
        "InstanceId.1",
        "InstanceUniqueId",
        "Size",
        "DiskType",
        "Agreement",
        "Attribute",
        "Value",
        "NiftyReboot",
        "AccountingType",
        "Description",
        "LoadBalancerName",
        "LoadBalancerPort",
        "InstancePort",
        "Listeners.member.1.LoadBalancerPort",
        "Listeners.member.1.InstancePort",
        "Listeners.member.1.Protocol",
        "Listeners.member.1.ElasticLoadBalancerPort",
        "Listeners.member.2.LoadBalancerPort",
        "Listeners.member.2.InstancePort",
        "Instances.member.1.InstanceId",
        "Instances.member.2.InstanceUniqueId",
        "HealthCheck.Target",
        "HealthCheck.Interval",
        "FilterType",
        "IPAddresses.member.1.IPAddress",
        "IPAddresses.member.1.AddOnFilter",
        "LoadBalancerNameUpdate",
        "ListenerUpdate.LoadBalancerPort",
        "ListenerUpdate.InstancePort",
        "ListenerUpdate.Listener.LoadBalancerPort",
        "NetworkVolume",
        "NetworkVolumeUpdate",
        "LoadBalancerNames.member.1",
        "LoadBalancerNames.LoadBalancerPort.1",
        "LoadBalancerNames.member.1.LoadBalancerName",
        "ElasticLoadBalancerName",
        "ElasticLoadBalancerId",
        "ElasticLoadBalancerPort",
        "Protocol",
        "AvailabilityZones.member.1",
        "ElasticLoadBalancerNameUpdate",
        "NetworkInterface.1.NetworkId",
        "NetworkInterface.1.IsVipNetwork",
        "LoadBalancerAttributes.AdditionalAttributes.member.1.Key",
        "LoadBalancerAttributes.AdditionalAttributes.member.1.Value",
        "GroupName",
        "GroupName.1",
        "GroupDescription",
        "IpPermissions.1.IpProtocol",
        "IpPermissions.1.FromPort",
        "IpPermissions.1.IpRanges.1.CidrIp",
        "IpPermissions.1.Groups.1.GroupName",
        "Filter.1.Name",
        "Filter.1.Value.1",
        "ZoneName.1",
        "RegionName.1",
        "SessionStickinessPolicyUpdate.Enable",
        "SorryPageUpdate.StatusCode",
        "ElasticLoadBalancers.ElasticLoadBalancerName.1",
    ];
    const VALUES: &[&str] = &[
        "",
        "0",
        "1",
        "2",
        "6",
        "-1",
        "100",
        "200",
        "4000",
        "99999999999999999999",
        "true",
        "false",
        "node1",
        "node2",
        "node5",
        "ghost",
        "v1",
        "v2",
        "lb1",
        "lb2",
        "elb1",
        "sg1",
        "sg2",
        "TCP",
        "HTTP",
        "UDP",
        "*.*.*.*",
        "10.0.0.0/8",
        "east-11",
        "east-12",
        "TCP:80",
        "ICMP",
        "日本",
        "<&>",
        "80",
        "443",
        "30080",
        "net-COMMON_GLOBAL",
        "description",
        "volumeName",
        "accountingType",
        "instanceType",
        "blockDeviceMapping",
        "state",
        "available",
        "IN",
        "10",
    ];
    let ops = crate::api::action_names();
    let mut st = world();
    let mut rng = crate::faults::Rng::new(99);
    let mut now = 0i64;
    let pick =
        |rng: &mut crate::faults::Rng, list: &[&'static str]| list[(rng.next_u64() % list.len() as u64) as usize];
    let mut ok = 0;
    for i in 0..20_000 {
        if i % 500 == 0 {
            st.delays = DelayConfig::uniform(rng.next_u64() % 3 * 100);
        }
        now += (rng.next_u64() % 150) as i64;
        let mut p = Params::from_pairs([("Action", pick(&mut rng, &ops))]);
        for _ in 0..(rng.next_u64() % 9) {
            p.insert(pick(&mut rng, KEYS), pick(&mut rng, VALUES));
        }
        let r = process(&mut st, &p, now);
        match (r.status, r.error_code.as_deref()) {
            (200, None) => ok += 1,
            (400, Some(c)) => assert!(c.starts_with("Client."), "{c} for {p:?}"),
            (500, Some(c)) => assert!(c.starts_with("Server."), "{c} for {p:?}"),
            other => panic!("unexpected reply {other:?} for {p:?}"),
        }
        check_invariants(&st);
    }
    assert!(
        ok > 1000,
        "only {ok} of 20000 random requests succeeded; the generator is too weak"
    );
}

fn check_invariants(st: &State) {
    let mut per_instance: std::collections::BTreeMap<&str, Vec<u8>> = std::collections::BTreeMap::new();
    for v in st.volumes.values() {
        assert!(
            (100..=4000).contains(&v.size_gb) && v.size_gb % 100 == 0,
            "size {}",
            v.size_gb
        );
        if let Some(a) = &v.attachment {
            assert!(
                st.instance_by_uid(&a.instance_unique_id).is_some(),
                "attached to a missing instance"
            );
            per_instance
                .entry(a.instance_unique_id.as_str())
                .or_default()
                .push(a.device_index);
        }
    }
    for units in per_instance.values() {
        assert!(units.len() <= volumes::MAX_DISKS_PER_INSTANCE);
        let mut u = units.clone();
        u.sort_unstable();
        u.dedup();
        assert_eq!(u.len(), units.len(), "duplicate SCSI unit");
        assert!(u.iter().all(|n| *n != 0 && *n != 7 && *n <= 15));
    }
    let mut vips: Vec<&str> = st
        .load_balancers
        .values()
        .map(|l| l.vip.as_str())
        .chain(st.elastic_load_balancers.values().map(|e| e.vip.as_str()))
        .collect();
    let n = vips.len();
    vips.sort_unstable();
    vips.dedup();
    assert_eq!(vips.len(), n, "VIP handed out twice");
    for lb in st.load_balancers.values() {
        assert!(!lb.ports.is_empty(), "LB without ports");
        let mut ports: Vec<i64> = lb.ports.iter().map(|p| p.lb_port).collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), lb.ports.len(), "duplicate LoadBalancerPort on {}", lb.name);
    }
    for e in st.elastic_load_balancers.values() {
        assert!(!e.listeners.is_empty(), "ELB without listeners");
    }
    for (name, v) in &st.volumes {
        assert_eq!(name, &v.name);
    }
    for (name, l) in &st.load_balancers {
        assert_eq!(name, &l.name);
    }
}
