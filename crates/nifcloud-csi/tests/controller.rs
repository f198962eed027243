//! The controller over a real unix-socket gRPC connection, backed by the emulator: the CSI rules
//! (idempotency, required arguments, not-found cases, capacity, topology, pagination) and the
//! NIFCLOUD specifics, asserting on the emulator's state.

mod common;

use std::collections::HashMap;

use common::*;
use csi_core::capability::{block_capability, mount_capability};
use csi_core::proto::volume_capability::access_mode::Mode;
use csi_core::proto::{self as csi};
use nifcloud_csi::topology::{DRIVER_ZONE_KEY, ZONE_KEY};
use tonic::Code;

/// One NIFCLOUD "GB": a GiB.
const GB: i64 = 1 << 30;
const GI: i64 = 1 << 30;

fn topo(zone: &str) -> csi::Topology {
    csi::Topology {
        segments: HashMap::from([(ZONE_KEY.to_string(), zone.to_string())]),
    }
}

#[tokio::test]
async fn mkfs_options_reach_the_node_through_the_volume_context() {
    let emu = emulator().await;
    let mut s = serve(controller(&emu)).await;
    let mut req = create_req("pvc-mkfs", 10 * GI);
    req.parameters.insert("mkfsOptions".into(), " -m 0  -L data ".into());
    let v = s
        .client
        .create_volume(req.clone())
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    assert_eq!(
        v.volume_context
            .get(csi_core::node::MKFS_OPTIONS_KEY)
            .map(String::as_str),
        Some("-m 0 -L data")
    );
    req.parameters.insert("mkfsOptions".into(), "-m\u{7}0".into());
    let err = s.client.create_volume(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    s.stop().await;
}

#[tokio::test]
async fn create_is_idempotent_rounds_to_100_gb_and_leaves_the_disk_detached() {
    let emu = emulator().await;
    let mut s = serve(controller(&emu)).await;
    let req = create_req("pvc-aaaa", 10 * GI);
    let v1 = s
        .client
        .create_volume(req.clone())
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let v2 = s.client.create_volume(req).await.unwrap().into_inner().volume.unwrap();
    assert_eq!(v1.volume_id, v2.volume_id);
    assert_eq!(v1.capacity_bytes, 100 * GI, "10Gi -> 100 GB, shown as exactly 100Gi");
    let seg = &v1.accessible_topology[0].segments;
    assert_eq!(seg.get(ZONE_KEY), seg.get(DRIVER_ZONE_KEY));
    assert!(seg.get(ZONE_KEY).is_some());
    let vols = volumes_named(&emu, "pvc-aaaa");
    assert_eq!(vols.len(), 1, "exactly one disk: {vols:?}");
    assert_eq!(vols[0].name, v1.volume_id);
    assert_eq!(vols[0].size_gb, 100);
    assert_eq!(vols[0].attached_to, None, "helper attachment undone");
    let disk_type = emu.with_state(|st| st.volumes[&v1.volume_id].disk_type);
    assert_eq!(disk_type, 6, "default standard-flash-a");
    // A NIFCLOUD GB is a GiB: 100Gi fits a 100 GB disk, 101Gi needs 200 GB.
    for (name, gi, want_gb) in [("pvc-bbbb", 100, 100), ("pvc-cccc", 101, 200)] {
        let v = s
            .client
            .create_volume(create_req(name, gi * GI))
            .await
            .unwrap()
            .into_inner()
            .volume
            .unwrap();
        assert_eq!(v.capacity_bytes, want_gb * GI, "{gi}Gi");
        assert_eq!(i64::from(volumes_named(&emu, name)[0].size_gb), want_gb, "{gi}Gi");
    }
    s.stop().await;
}

#[tokio::test]
async fn create_argument_and_capacity_errors() {
    let emu = emulator().await;
    let mut s = serve(controller(&emu)).await;
    let code = |r: Result<tonic::Response<csi::CreateVolumeResponse>, tonic::Status>| r.unwrap_err().code();
    assert_eq!(
        code(s.client.create_volume(create_req("", GB)).await),
        Code::InvalidArgument
    );
    let mut no_caps = create_req("pvc-nocaps", GB);
    no_caps.volume_capabilities.clear();
    assert_eq!(code(s.client.create_volume(no_caps).await), Code::InvalidArgument);
    let mut multi = create_req("pvc-multi", GB);
    multi.volume_capabilities = vec![mount_capability("ext4", Mode::MultiNodeMultiWriter)];
    assert_eq!(code(s.client.create_volume(multi).await), Code::InvalidArgument);
    let mut unknown = create_req("pvc-param", GB);
    unknown.parameters.insert("iops".into(), "100".into());
    assert_eq!(code(s.client.create_volume(unknown).await), Code::InvalidArgument);
    let mut bad_type = create_req("pvc-type", GB);
    bad_type.parameters.insert("type".into(), "nvme".into());
    assert_eq!(code(s.client.create_volume(bad_type).await), Code::InvalidArgument);
    let mut limited = create_req("pvc-limit", 150 * GB);
    limited.capacity_range.as_mut().unwrap().limit_bytes = 199 * GB;
    assert_eq!(
        code(s.client.create_volume(limited).await),
        Code::OutOfRange,
        "limit after rounding"
    );
    assert_eq!(
        code(s.client.create_volume(create_req("pvc-huge", 4001 * GB)).await),
        Code::OutOfRange
    );
    let mut clone = create_req("pvc-clone", GB);
    clone.volume_content_source = Some(csi::VolumeContentSource::default());
    assert_eq!(code(s.client.create_volume(clone).await), Code::Unimplemented);
    assert!(volumes(&emu).is_empty(), "no disk for any rejected request");

    // Same name, incompatible size.
    s.client.create_volume(create_req("pvc-size", 100 * GB)).await.unwrap();
    assert_eq!(
        code(s.client.create_volume(create_req("pvc-size", 300 * GB)).await),
        Code::AlreadyExists
    );
    let mut other_type = create_req("pvc-size", 100 * GB);
    other_type.parameters.insert("type".into(), "high-speed-flash-b".into());
    assert_eq!(code(s.client.create_volume(other_type).await), Code::AlreadyExists);
    // Parameters the provisioner adds are accepted; the type code is honoured.
    let mut params = create_req("pvc-params", 100 * GB);
    params.parameters = HashMap::from([
        ("type".to_string(), "high-speed-flash-b".to_string()),
        ("accountingType".to_string(), "monthly".to_string()),
        ("csi.storage.k8s.io/fstype".to_string(), "xfs".to_string()),
        ("csi.storage.k8s.io/pvc/name".to_string(), "data".to_string()),
        ("csi.storage.k8s.io/pvc/namespace".to_string(), "default".to_string()),
        ("csi.storage.k8s.io/pv/name".to_string(), "pvc-params".to_string()),
    ]);
    let v = s
        .client
        .create_volume(params)
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let (dt, acct) = emu.with_state(|st| {
        let v = &st.volumes[&v.volume_id];
        (v.disk_type, v.accounting_type.clone())
    });
    assert_eq!((dt, acct.as_str()), (9, "1"));
    s.stop().await;
}

#[tokio::test]
async fn topology_preferred_then_requisite_and_cluster_membership() {
    let emu = emulator().await;
    let mut s = serve(controller(&emu)).await;
    let mut req = create_req("pvc-topo", GB);
    req.accessibility_requirements = Some(csi::TopologyRequirement {
        requisite: vec![topo("east-11"), topo("east-12")],
        preferred: vec![topo("east-12")],
    });
    let v = s.client.create_volume(req).await.unwrap().into_inner().volume.unwrap();
    assert_eq!(v.accessible_topology[0].segments[ZONE_KEY], "east-12");
    assert_eq!(v.accessible_topology[0].segments[DRIVER_ZONE_KEY], "east-12");
    let zone = emu.with_state(|st| st.volumes[&v.volume_id].zone.clone());
    assert_eq!(zone, "east-12");
    let mut only = create_req("pvc-requisite", GB);
    only.accessibility_requirements = Some(csi::TopologyRequirement {
        requisite: vec![csi::Topology {
            segments: HashMap::from([(DRIVER_ZONE_KEY.to_string(), "east-12".to_string())]),
        }],
        preferred: vec![],
    });
    let v = s.client.create_volume(only).await.unwrap().into_inner().volume.unwrap();
    assert_eq!(v.accessible_topology[0].segments[ZONE_KEY], "east-12");
    s.stop().await;

    // A cluster made only of node1 (east-11) never borrows a server in east-12.
    let mut opts = options();
    opts.membership = nifcloud_csi::plan::Membership::patterns(["node1"]);
    let ctl = nifcloud_csi::driver::build_controller(sdk_client(&emu), &opts, nifcloud_csi::poller::PollMode::Shared);
    let mut s = serve(ctl).await;
    let mut far = create_req("pvc-far", GB);
    far.accessibility_requirements = Some(csi::TopologyRequirement {
        requisite: vec![topo("east-12")],
        preferred: vec![],
    });
    let before = volumes(&emu).len();
    let err = s.client.create_volume(far).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(volumes(&emu).len(), before);
    // WaitForFirstConsumer picked a node in east-12: the disk is never created in east-11 instead, where the
    // pod could not reach it; the provisioner retries on ResourceExhausted.
    let mut selected = create_req("pvc-selected", GB);
    selected.accessibility_requirements = Some(csi::TopologyRequirement {
        requisite: vec![topo("east-11"), topo("east-12")],
        preferred: vec![topo("east-12"), topo("east-11")],
    });
    let err = s.client.create_volume(selected).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("east-12") && err.message().contains("first preferred zone"),
        "{err:?}"
    );
    assert_eq!(volumes(&emu).len(), before);
    s.stop().await;
}

#[tokio::test]
async fn advertised_access_modes_are_accepted_and_node_names_match_without_case() {
    use csi_core::capability::block_capability;
    use csi_core::proto::controller_service_capability::rpc::Type as Cap;
    let emu = emulator().await;
    let mut s = serve(controller(&emu)).await;
    let caps = s
        .client
        .controller_get_capabilities(csi::ControllerGetCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner()
        .capabilities;
    let policy = nifcloud_csi::controller::capability_policy();
    let advertised = caps.iter().any(|c| {
        matches!(&c.r#type, Some(csi::controller_service_capability::Type::Rpc(r)) if r.r#type == Cap::SingleNodeMultiWriter as i32)
    });
    assert_eq!(advertised, policy.single_node_multi_writer());
    assert!(advertised, "ReadWriteOncePod needs SINGLE_NODE_MULTI_WRITER advertised");
    // What the provisioner and attacher send for each claim mode, given what was advertised, is accepted by
    // CreateVolume, ValidateVolumeCapabilities and ControllerPublishVolume.
    for (i, claim) in ["ReadWriteOnce", "ReadWriteOncePod"].into_iter().enumerate() {
        let mode = policy.co_mode_for(claim).unwrap();
        for (j, capability) in [mount_capability("ext4", mode), block_capability(mode)]
            .into_iter()
            .enumerate()
        {
            let name = format!("pvc-mode-{i}-{j}");
            let mut req = create_req(&name, 10 * GI);
            req.volume_capabilities = vec![capability.clone()];
            let v = s.client.create_volume(req).await.unwrap().into_inner().volume.unwrap();
            let confirmed = s
                .client
                .validate_volume_capabilities(csi::ValidateVolumeCapabilitiesRequest {
                    volume_id: v.volume_id.clone(),
                    volume_capabilities: vec![capability.clone()],
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert!(confirmed.confirmed.is_some(), "{claim}: {}", confirmed.message);
            let mut publish = publish_req(&v.volume_id, "node1");
            publish.volume_capability = Some(capability);
            s.client.controller_publish_volume(publish.clone()).await.unwrap();
            s.client
                .controller_unpublish_volume(csi::ControllerUnpublishVolumeRequest {
                    volume_id: v.volume_id.clone(),
                    node_id: "node1".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
    }
    // A node whose name differs from its server's only in case (Kubernetes lower-cases node names) is that server,
    // as in the CCM.
    let v = s
        .client
        .create_volume(create_req("pvc-case", GB))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let ctx = s
        .client
        .controller_publish_volume(publish_req(&v.volume_id, "NODE2"))
        .await
        .unwrap()
        .into_inner()
        .publish_context;
    assert!(ctx["devicePath"].starts_with("SCSI (0:"), "{ctx:?}");
    assert_eq!(volumes_named(&emu, "pvc-case")[0].attached_to.as_deref(), Some("node2"));
    s.client
        .controller_unpublish_volume(csi::ControllerUnpublishVolumeRequest {
            volume_id: v.volume_id.clone(),
            node_id: "Node2".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(volumes_named(&emu, "pvc-case")[0].attached_to, None);
    s.stop().await;
}

#[tokio::test]
async fn publish_unpublish_rules() {
    let emu = emulator().await;
    let mut s = serve(controller(&emu)).await;
    let v = s
        .client
        .create_volume(create_req("pvc-pub", GB))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let id = v.volume_id.clone();
    let zone = v.accessible_topology[0].segments[ZONE_KEY].clone();
    assert_eq!(zone, "east-11");
    let p1 = s
        .client
        .controller_publish_volume(publish_req(&id, "node2"))
        .await
        .unwrap()
        .into_inner();
    let p2 = s
        .client
        .controller_publish_volume(publish_req(&id, "node2"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p1.publish_context, p2.publish_context, "idempotent");
    assert_eq!(p1.publish_context["devicePath"], "SCSI (0:1)");
    assert_eq!(volumes_named(&emu, "pvc-pub")[0].attached_to.as_deref(), Some("node2"));
    let code = |r: Result<tonic::Response<csi::ControllerPublishVolumeResponse>, tonic::Status>| r.unwrap_err().code();
    assert_eq!(
        code(s.client.controller_publish_volume(publish_req(&id, "node3")).await),
        Code::FailedPrecondition
    );
    assert_eq!(
        code(s.client.controller_publish_volume(publish_req(&id, "nosuchnode")).await),
        Code::NotFound
    );
    assert_eq!(
        code(
            s.client
                .controller_publish_volume(publish_req("csinosuchvolume", "node2"))
                .await
        ),
        Code::NotFound
    );
    assert_eq!(
        code(s.client.controller_publish_volume(publish_req("", "node2")).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(s.client.controller_publish_volume(publish_req(&id, "")).await),
        Code::InvalidArgument
    );
    let mut no_cap = publish_req(&id, "node2");
    no_cap.volume_capability = None;
    assert_eq!(
        code(s.client.controller_publish_volume(no_cap).await),
        Code::InvalidArgument
    );

    let unpub = |vol: &str, node: &str| csi::ControllerUnpublishVolumeRequest {
        volume_id: vol.into(),
        node_id: node.into(),
        ..Default::default()
    };
    // Unpublishing from a node it is not attached to changes nothing.
    s.client.controller_unpublish_volume(unpub(&id, "node3")).await.unwrap();
    assert_eq!(volumes_named(&emu, "pvc-pub")[0].attached_to.as_deref(), Some("node2"));
    s.client.controller_unpublish_volume(unpub(&id, "node2")).await.unwrap();
    s.client.controller_unpublish_volume(unpub(&id, "node2")).await.unwrap();
    s.client
        .controller_unpublish_volume(unpub("csinosuchvolume", "node2"))
        .await
        .unwrap();
    assert_eq!(volumes_named(&emu, "pvc-pub")[0].attached_to, None);
    // Another zone.
    assert_eq!(
        code(s.client.controller_publish_volume(publish_req(&id, "node5")).await),
        Code::FailedPrecondition
    );
    // Delete while attached is refused; after detach it goes, and again is fine.
    s.client
        .controller_publish_volume(publish_req(&id, "node1"))
        .await
        .unwrap();
    let del = csi::DeleteVolumeRequest {
        volume_id: id.clone(),
        ..Default::default()
    };
    assert_eq!(
        s.client.delete_volume(del.clone()).await.unwrap_err().code(),
        Code::FailedPrecondition
    );
    s.client.controller_unpublish_volume(unpub(&id, "")).await.unwrap();
    s.client.delete_volume(del.clone()).await.unwrap();
    s.client.delete_volume(del).await.unwrap();
    assert!(volumes_named(&emu, "pvc-pub").is_empty());
    s.stop().await;
}

#[tokio::test]
async fn full_node_is_resource_exhausted_and_foreign_disks_are_never_deleted() {
    let emu = emulator().await;
    let client = sdk_client(&emu);
    // 14 disks that are not ours fill node4.
    for i in 0..14 {
        client
            .create_volume(
                nifcloud_sdk::types::CreateVolumeRequest::default()
                    .size(100)
                    .instance_id("node4")
                    .description(format!("database {i}")),
            )
            .await
            .unwrap();
    }
    let mut opts = options();
    opts.membership = nifcloud_csi::plan::Membership::patterns(["node1"]);
    let ctl = nifcloud_csi::driver::build_controller(client, &opts, nifcloud_csi::poller::PollMode::Shared);
    let mut s = serve(ctl).await;
    let v = s
        .client
        .create_volume(create_req("pvc-full", GB))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let err = s
        .client
        .controller_publish_volume(publish_req(&v.volume_id, "node4"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!(volumes_named(&emu, "pvc-full")[0].attached_to, None);
    // A foreign disk: never deleted, never listed.
    let foreign = volumes(&emu)
        .into_iter()
        .find(|v| v.description == "database 0")
        .unwrap();
    s.client
        .controller_unpublish_volume(csi::ControllerUnpublishVolumeRequest {
            volume_id: foreign.name.clone(),
            node_id: "node4".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let err = s
        .client
        .delete_volume(csi::DeleteVolumeRequest {
            volume_id: foreign.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(volumes(&emu).iter().any(|v| v.name == foreign.name));
    let listed = s
        .client
        .list_volumes(csi::ListVolumesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.entries.len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn expand_is_exact_online_and_offline() {
    let emu = emulator().await;
    let mut s = serve(controller(&emu)).await;
    let v = s
        .client
        .create_volume(create_req("pvc-grow", GB))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap();
    let id = v.volume_id.clone();
    let expand = |bytes: i64, block: bool| csi::ControllerExpandVolumeRequest {
        volume_id: id.clone(),
        capacity_range: Some(csi::CapacityRange {
            required_bytes: bytes,
            limit_bytes: 0,
        }),
        volume_capability: Some(if block {
            block_capability(Mode::SingleNodeWriter)
        } else {
            cap()
        }),
        ..Default::default()
    };
    emu.reset_calls();
    let r = s
        .client
        .controller_expand_volume(expand(100 * GB, false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.capacity_bytes, emu.call_count("ExtendVolumeSize")),
        (100 * GB, 0),
        "equal size: no call"
    );
    // A PV of the original driver (Size x 2^30 bytes) resized to 150Gi ends at exactly the next step, 200Gi.
    let r = s
        .client
        .controller_expand_volume(expand(150 * GI, false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.capacity_bytes, emu.call_count("ExtendVolumeSize")), (200 * GI, 1));
    assert_eq!(volumes_named(&emu, "pvc-grow")[0].size_gb, 200, "one step, never two");
    let r = s
        .client
        .controller_expand_volume(expand(250 * GB, false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.capacity_bytes, 300 * GB);
    assert!(r.node_expansion_required);
    assert_eq!(emu.call_count("ExtendVolumeSize"), 2);
    assert_eq!(volumes_named(&emu, "pvc-grow")[0].size_gb, 300, "offline, exact");
    s.client
        .controller_publish_volume(publish_req(&id, "node1"))
        .await
        .unwrap();
    let r = s
        .client
        .controller_expand_volume(expand(500 * GB, true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.capacity_bytes, 500 * GB);
    assert!(!r.node_expansion_required, "block volumes need no node step");
    assert_eq!(volumes_named(&emu, "pvc-grow")[0].size_gb, 500, "online, exact");
    assert_eq!(emu.call_count("ExtendVolumeSize"), 4);
    let err = s
        .client
        .controller_expand_volume(expand(4001 * GB, false))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);
    let mut missing = expand(GB, false);
    missing.volume_id = "csinosuchvolume".into();
    assert_eq!(
        s.client.controller_expand_volume(missing).await.unwrap_err().code(),
        Code::NotFound
    );
    let mut no_range = expand(GB, false);
    no_range.capacity_range = None;
    assert_eq!(
        s.client.controller_expand_volume(no_range).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    s.stop().await;
}

#[tokio::test]
async fn list_get_validate_and_unimplemented() {
    let emu = emulator().await;
    let mut s = serve(controller(&emu)).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let v = s
            .client
            .create_volume(create_req(&format!("pvc-list-{i}"), GB))
            .await
            .unwrap();
        ids.push(v.into_inner().volume.unwrap().volume_id);
    }
    s.client
        .controller_publish_volume(publish_req(&ids[0], "node3"))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = s
            .client
            .list_volumes(csi::ListVolumesRequest {
                max_entries: 2,
                starting_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.entries.len() <= 2);
        for e in page.entries {
            let vol = e.volume.unwrap();
            let nodes = e.status.unwrap().published_node_ids;
            if vol.volume_id == ids[0] {
                assert_eq!(nodes, ["node3"]);
            } else {
                assert!(nodes.is_empty());
            }
            seen.push(vol.volume_id);
        }
        if page.next_token.is_empty() {
            break;
        }
        token = page.next_token;
    }
    let mut want = ids.clone();
    want.sort();
    assert_eq!(seen, want);
    let bad = s
        .client
        .list_volumes(csi::ListVolumesRequest {
            max_entries: 1,
            starting_token: "garbage".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::Aborted);

    let got = s
        .client
        .controller_get_volume(csi::ControllerGetVolumeRequest {
            volume_id: ids[0].clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let st = got.status.unwrap();
    assert_eq!(st.published_node_ids, ["node3"]);
    assert!(!st.volume_condition.unwrap().abnormal);
    let missing = s
        .client
        .controller_get_volume(csi::ControllerGetVolumeRequest {
            volume_id: "csinosuch".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let validate = |id: &str, caps: Vec<csi::VolumeCapability>| csi::ValidateVolumeCapabilitiesRequest {
        volume_id: id.into(),
        volume_capabilities: caps,
        ..Default::default()
    };
    let ok = s
        .client
        .validate_volume_capabilities(validate(&ids[1], vec![cap()]))
        .await
        .unwrap()
        .into_inner();
    assert!(ok.confirmed.is_some());
    let rwop = mount_capability("xfs", Mode::SingleNodeSingleWriter);
    let ok = s
        .client
        .validate_volume_capabilities(validate(&ids[1], vec![rwop]))
        .await
        .unwrap()
        .into_inner();
    assert!(ok.confirmed.is_some());
    let rwx = mount_capability("ext4", Mode::MultiNodeMultiWriter);
    let no = s
        .client
        .validate_volume_capabilities(validate(&ids[1], vec![rwx]))
        .await
        .unwrap()
        .into_inner();
    assert!(no.confirmed.is_none() && !no.message.is_empty());
    let e = s
        .client
        .validate_volume_capabilities(validate("csinosuch", vec![cap()]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = s
        .client
        .validate_volume_capabilities(validate(&ids[1], vec![]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    let snap = s
        .client
        .create_snapshot(csi::CreateSnapshotRequest::default())
        .await
        .unwrap_err();
    assert_eq!(snap.code(), Code::Unimplemented);
    let cap_resp = s
        .client
        .controller_get_capabilities(csi::ControllerGetCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner();
    use csi::controller_service_capability::rpc::Type as Cap;
    let caps: Vec<i32> = cap_resp
        .capabilities
        .iter()
        .filter_map(|c| {
            c.r#type
                .as_ref()
                .map(|csi::controller_service_capability::Type::Rpc(r)| r.r#type)
        })
        .collect();
    for want in [
        Cap::CreateDeleteVolume,
        Cap::PublishUnpublishVolume,
        Cap::ExpandVolume,
        Cap::ListVolumes,
    ] {
        assert!(caps.contains(&(want as i32)), "{want:?}");
    }
    assert!(!caps.contains(&(Cap::CreateDeleteSnapshot as i32)));
    assert!(!caps.contains(&(Cap::CloneVolume as i32)));
    s.stop().await;
}

#[tokio::test]
async fn modify_switches_billing_from_next_month_once() {
    let emu = emulator().await;
    let mut s = serve(controller(&emu)).await;
    let billing = |id: &str| {
        emu.with_state(|st| {
            let v = &st.volumes[id];
            (v.accounting_type.clone(), v.next_month_accounting_type.clone())
        })
    };
    let mutable = |value: &str| HashMap::from([("accountingType".to_string(), value.to_string())]);
    // A VolumeAttributesClass at creation wins over the StorageClass's accountingType.
    let mut req = create_req("pvc-vac", GB);
    req.parameters.insert("accountingType".into(), "pay-per-use".into());
    req.mutable_parameters = mutable("monthly");
    let v = s.client.create_volume(req).await.unwrap().into_inner().volume.unwrap();
    assert_eq!(billing(&v.volume_id), ("1".to_string(), "1".to_string()));

    let id = s
        .client
        .create_volume(create_req("pvc-bill", GB))
        .await
        .unwrap()
        .into_inner()
        .volume
        .unwrap()
        .volume_id;
    assert_eq!(
        billing(&id),
        ("2".to_string(), "2".to_string()),
        "pay-per-use by default"
    );
    let modify = |value: &str| csi::ControllerModifyVolumeRequest {
        volume_id: id.clone(),
        mutable_parameters: mutable(value),
        ..Default::default()
    };
    emu.reset_calls();
    s.client.controller_modify_volume(modify("monthly")).await.unwrap();
    assert_eq!(
        billing(&id),
        ("2".to_string(), "1".to_string()),
        "monthly from next month"
    );
    assert_eq!(emu.call_count("ModifyVolumeAttribute"), 1);
    let got = s
        .client
        .controller_get_volume(csi::ControllerGetVolumeRequest { volume_id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    let ctx = &got.volume.as_ref().unwrap().volume_context;
    assert_eq!(
        (ctx["accountingType"].as_str(), ctx["nextMonthAccountingType"].as_str()),
        ("pay-per-use", "monthly")
    );
    let message = got.status.unwrap().volume_condition.unwrap().message;
    assert!(
        message.contains("billed pay-per-use (monthly from next month)"),
        "{message}"
    );
    // Already pending: reported, not repeated.
    s.client.controller_modify_volume(modify("1")).await.unwrap();
    assert_eq!(
        emu.call_count("ModifyVolumeAttribute"),
        1,
        "a pending change is not repeated"
    );
    // Back before the month turns: one call cancels it.
    s.client.controller_modify_volume(modify("pay-per-use")).await.unwrap();
    assert_eq!(billing(&id), ("2".to_string(), "2".to_string()));
    assert_eq!(emu.call_count("ModifyVolumeAttribute"), 2);
    s.client.controller_modify_volume(modify("2")).await.unwrap();
    assert_eq!(emu.call_count("ModifyVolumeAttribute"), 2, "nothing to change");

    // What cannot change on a live disk, and what does not exist.
    for (key, value) in [
        ("type", "high-speed-flash-a"),
        ("iops", "3000"),
        ("accountingType", "yearly"),
    ] {
        let mut bad = modify("1");
        bad.mutable_parameters = HashMap::from([(key.to_string(), value.to_string())]);
        let err = s.client.controller_modify_volume(bad).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{key}: {err:?}");
        assert!(err.message().contains(key), "{key}: {err:?}");
    }
    let mut bad_create = create_req("pvc-vac-bad", GB);
    bad_create.mutable_parameters = HashMap::from([("type".to_string(), "flash".to_string())]);
    let err = s.client.create_volume(bad_create).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("cannot change a disk's type"), "{err:?}");
    let mut missing = modify("1");
    missing.volume_id = "csinosuchdisk".into();
    assert_eq!(
        s.client.controller_modify_volume(missing).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        emu.call_count("ModifyVolumeAttribute"),
        2,
        "no call for a refused request"
    );
    s.stop().await;
}
