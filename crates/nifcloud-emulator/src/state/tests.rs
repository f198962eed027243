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
        .chain(st.elastic_load_balancers.values().flat_map(|e| e.addresses()))
        .collect();
    let n = vips.len();
    vips.sort_unstable();
    vips.dedup();
    assert_eq!(vips.len(), n, "VIP or system address handed out twice");
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

/// The text of every `<tag>…</tag>` in `body`, in order.
fn all(body: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(after[..j].to_owned());
        rest = &after[j + close.len()..];
    }
    out
}

#[test]
fn instances_reply_as_the_service_does() {
    let mut st = world();
    let b = call(
        &mut st,
        0,
        &[("Action", "DescribeInstances"), ("InstanceId.1", "node1")],
    )
    .unwrap();
    assert!(b.starts_with(r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><DescribeInstancesResponse"#));
    assert_eq!(all(&b, "AccountingType"), ["2"]);
    assert_eq!(all(&b, "NextMonthAccountingType"), ["2"]);
    assert!(
        !b.contains("<accountingType>") && !b.contains("<networkInterfaceId>") && !b.contains("<niftyNetworkName>")
    );
    assert!(!b.contains("<attachmentId>"), "{b}");
    assert_eq!(all(&b, "reservationId"), [""]);
    // The global interface carries its address as association/publicIp, the private one as privateIpAddress.
    assert_eq!(all(&b, "publicIp"), ["203.0.113.11"]);
    assert_eq!(
        all(&b, "privateIpAddress"),
        ["10.0.0.11", "10.0.0.11"],
        "the private interface, then the top level"
    );
    assert_eq!(all(&b, "niftyNetworkId"), ["net-COMMON_GLOBAL", "net-COMMON_PRIVATE"]);
    assert_eq!(all(&b, "version"), ["11.3.5"]);
    assert_eq!(all(&b, "isGpuConfigurable"), ["false"]);
}

#[test]
fn elastic_load_balancers_reply_as_the_service_does() {
    let mut st = world();
    let b = call(
        &mut st,
        0,
        &[
            ("Action", "NiftyCreateElasticLoadBalancer"),
            ("ElasticLoadBalancerName", "elb1"),
            ("AvailabilityZones.member.1", "east-11"),
            ("Listeners.member.1.Protocol", "TCP"),
            ("Listeners.member.1.ElasticLoadBalancerPort", "80"),
            ("Listeners.member.1.InstancePort", "30080"),
            ("Listeners.member.1.Description", "owner]]>x"),
            ("Listeners.member.1.Instances.member.1.InstanceId", "node1"),
            ("NetworkInterface.1.NetworkId", "net-lan01"),
            ("NetworkInterface.1.NetworkName", "lan01"),
            ("NetworkInterface.1.IpAddress", "192.168.10.100"),
            (
                "NetworkInterface.1.SystemIpAddresses.1.SystemIpAddress",
                "192.168.10.101",
            ),
            (
                "NetworkInterface.1.SystemIpAddresses.2.SystemIpAddress",
                "192.168.10.102",
            ),
        ],
    )
    .unwrap();
    assert_eq!(all(&b, "DNSName"), [""], "the create answers an empty DNSName");
    let b = call(&mut st, 0, &[("Action", "NiftyDescribeElasticLoadBalancers")]).unwrap();
    // The given interface keeps its system addresses; the VIP interface added in front gets the VIP and two
    // addresses of the range.
    assert_eq!(all(&b, "NetworkId"), ["net-COMMON_GLOBAL", "net-lan01"]);
    assert_eq!(all(&b, "DeviceIndex"), ["1", "2"]);
    assert_eq!(all(&b, "DNSName"), ["198.51.100.1"]);
    assert_eq!(all(&b, "IpAddress"), ["198.51.100.1", "192.168.10.100"]);
    assert_eq!(
        all(&b, "SystemIpAddress"),
        ["198.51.100.2", "198.51.100.3", "192.168.10.101", "192.168.10.102"]
    );
    assert_eq!(all(&b, "NetworkName"), ["", "lan01"]);
    assert_eq!(all(&b, "Version"), ["v2.0"]);
    assert_eq!(
        all(&b, "State"),
        ["available", ""],
        "the ELB's, then the member's (empty)"
    );
    assert!(
        b.contains("<Description><![CDATA[owner]]]]><![CDATA[>x]]></Description>"),
        "{b}"
    );
    let created = &all(&b, "CreatedTime")[0];
    assert!(
        created.ends_with("+09:00") && created.len() == 25 && !created.contains('.'),
        "{created}"
    );
    assert!(
        !b.contains("<Path>") && !b.contains("<Method>") && !b.contains("<RedirectUrl>"),
        "{b}"
    );
    // The next load balancer's VIP skips the addresses the first one holds.
    let b = call(
        &mut st,
        0,
        &[
            ("Action", "CreateLoadBalancer"),
            ("LoadBalancerName", "lb2"),
            ("Listeners.member.1.LoadBalancerPort", "80"),
            ("Listeners.member.1.InstancePort", "30080"),
        ],
    )
    .unwrap();
    assert_eq!(all(&b, "DNSName"), ["198.51.100.4"]);
    // The health itself is told by the health action.
    let b = call(
        &mut st,
        0,
        &[
            ("Action", "NiftyDescribeInstanceElasticLoadBalancerHealth"),
            ("ElasticLoadBalancerName", "elb1"),
            ("ElasticLoadBalancerPort", "80"),
            ("InstancePort", "30080"),
            ("Protocol", "TCP"),
        ],
    )
    .unwrap();
    assert_eq!(all(&b, "State"), ["InService"]);
}

fn filter_after(st: &mut State, changes: &[(&str, &str)]) -> Vec<String> {
    let mut p = vec![
        ("Action", "SetFilterForLoadBalancer"),
        ("LoadBalancerName", "lb1"),
        ("LoadBalancerPort", "80"),
        ("InstancePort", "30080"),
    ];
    let keys: Vec<(String, String)> = changes
        .iter()
        .enumerate()
        .flat_map(|(i, (ip, add))| {
            [
                (format!("IPAddresses.member.{}.IPAddress", i + 1), (*ip).to_owned()),
                (format!("IPAddresses.member.{}.AddOnFilter", i + 1), (*add).to_owned()),
            ]
        })
        .collect();
    p.extend(keys.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let set = all(&call(st, 0, &p).unwrap(), "IPAddress");
    let described = all(
        &call(
            st,
            0,
            &[
                ("Action", "DescribeLoadBalancers"),
                ("LoadBalancerNames.member.1", "lb1"),
            ],
        )
        .unwrap(),
        "IPAddress",
    );
    assert_eq!(set, described, "the reply shows the filter as described");
    described
}

#[test]
fn the_allow_any_filter_entry_is_replaced_by_addresses_or_kept_beside_them() {
    for mode in [AllowAnyEntry::Replaced, AllowAnyEntry::Kept] {
        let mut st = world();
        st.lb_filter_any = mode;
        call(
            &mut st,
            0,
            &[
                ("Action", "CreateLoadBalancer"),
                ("LoadBalancerName", "lb1"),
                ("Listeners.member.1.LoadBalancerPort", "80"),
                ("Listeners.member.1.InstancePort", "30080"),
            ],
        )
        .unwrap();
        let two = filter_after(&mut st, &[("203.0.113.6", "true"), ("203.0.113.7", "true")]);
        let one_gone = filter_after(&mut st, &[("203.0.113.6", "false")]);
        let none = filter_after(&mut st, &[("203.0.113.7", "false")]);
        match mode {
            // As the captured reply: the two addresses only; without addresses, "any" again.
            AllowAnyEntry::Replaced => {
                assert_eq!(two, ["203.0.113.6", "203.0.113.7"]);
                assert_eq!(one_gone, ["203.0.113.7"]);
                assert_eq!(none, ["*.*.*.*"]);
                // "*.*.*.*" itself is no entry: adding or removing it changes nothing.
                assert_eq!(filter_after(&mut st, &[("*.*.*.*", "false")]), ["*.*.*.*"]);
                filter_after(&mut st, &[("192.0.2.1", "true")]);
                assert_eq!(filter_after(&mut st, &[("*.*.*.*", "true")]), ["192.0.2.1"]);
                assert_eq!(
                    filter_after(&mut st, &[("*.*.*.*", "false"), ("192.0.2.2", "true")]),
                    ["192.0.2.1", "192.0.2.2"]
                );
            }
            AllowAnyEntry::Kept => {
                assert_eq!(two, ["*.*.*.*", "203.0.113.6", "203.0.113.7"]);
                assert_eq!(one_gone, ["*.*.*.*", "203.0.113.7"]);
                assert_eq!(none, ["*.*.*.*"]);
                assert_eq!(filter_after(&mut st, &[("*.*.*.*", "false")]), Vec::<String>::new());
            }
        }
    }
}
