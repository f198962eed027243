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
