//! InstancesV2 against the emulator: metadata, matching, exists and shutdown, with call counts.

mod common;

use cloudprovider::InstancesV2;
use common::*;
use nifcloud_ccm::Error;
use nifcloud_cloud::LookupError;
use nifcloud_emulator::{EmulatorConfig, InstanceConfig, NetworkInterfaceConfig};

#[tokio::test]
async fn metadata_by_name_with_every_address() {
    let mut cfg = EmulatorConfig::sample();
    let mut multi = InstanceConfig::new("web7", "east-12").with_ips("203.0.113.77", "10.0.0.77");
    multi.instance_type = "h2-large16".into();
    multi.network_interfaces.push(NetworkInterfaceConfig {
        network_id: "net-lan01".into(),
        private_ip: Some("192.168.10.7".into()),
        ipv6: Some("fd00::7".into()),
        ..Default::default()
    });
    cfg.instances.push(multi);
    let emu = emulator(cfg).await;
    let p = nifcloud_ccm::NifcloudProvider::new(settings(&emu, None)).unwrap();
    let md = p.instances().instance_metadata(&node("web7", None, &[])).await.unwrap();
    let uid = emu.with_state(|st| st.instances["web7"].unique_id.clone());
    assert_eq!(md.provider_id, format!("nifcloud:///east-12/{uid}"));
    assert_eq!((md.zone.as_str(), md.region.as_str()), ("east-12", "jp-east-1"));
    assert_eq!(md.instance_type, "h2-large16");
    let addrs: Vec<(String, String)> = md
        .node_addresses
        .iter()
        .map(|a| (a.type_.clone(), a.address.clone()))
        .collect();
    assert_eq!(
        addrs,
        vec![
            ("InternalIP".into(), "10.0.0.77".into()),
            ("InternalIP".into(), "192.168.10.7".into()),
            ("InternalIP".into(), "fd00::7".into()),
            ("ExternalIP".into(), "203.0.113.77".into()),
            ("Hostname".into(), "web7".into()),
        ]
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn node_names_need_not_equal_server_names() {
    let (emu, p) = setup().await;
    let inst = p.instances();
    // By providerID (canonical and legacy), whatever the node is called.
    let uid2 = emu.with_state(|st| st.instances["node2"].unique_id.clone());
    for pid in [
        format!("nifcloud:///east-11/{uid2}"),
        format!("nifcloud:////{uid2}"),
        uid2.clone(),
    ] {
        let md = inst
            .instance_metadata(&node("k8s-worker-a", Some(&pid), &[]))
            .await
            .unwrap();
        assert_eq!(md.provider_id, format!("nifcloud:///east-11/{uid2}"), "{pid}");
    }
    // By address when neither providerID nor name match.
    let md = inst
        .instance_metadata(&node("k8s-worker-b", None, &["10.0.0.13"]))
        .await
        .unwrap();
    assert!(
        md.provider_id
            .ends_with(&emu.with_state(|st| st.instances["node3"].unique_id.clone()))
    );
    // A node that matches nothing is an error for metadata, and "gone" for exists.
    let err = inst
        .instance_metadata(&node("ghost", None, &["10.9.9.9"]))
        .await
        .unwrap_err();
    assert!(
        matches!(ccm_error(&err), Error::NoServer { node } if node == "ghost"),
        "{err:?}"
    );
    assert!(!inst.instance_exists(&node("ghost", None, &["10.9.9.9"])).await.unwrap());
    // A foreign providerID is an error, never "gone".
    let err = inst
        .instance_exists(&node("x", Some("aws:///us-east-1a/i-1"), &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            ccm_error(&err),
            Error::FindServer { node, source: LookupError::ProviderId { .. } } if node == "x"
        ),
        "{err:?}"
    );
    // Everything above came from one listing, plus one fresh re-check for each miss.
    assert!(emu.call_count("DescribeInstances") <= 3, "{:?}", emu.calls());
    emu.shutdown().await;
}

#[tokio::test]
async fn terminated_means_gone_and_stopped_means_shutdown() {
    let (emu, p) = setup().await;
    let inst = p.instances();
    let uid4 = emu.with_state(|st| st.instances["node4"].unique_id.clone());
    let pid = format!("nifcloud:///east-11/{uid4}");
    let n4 = node("node4", Some(&pid), &[]);
    assert!(inst.instance_exists(&n4).await.unwrap());
    assert!(!inst.instance_shutdown(&n4).await.unwrap());
    emu.stop_instance("node4").unwrap();
    // Wait out the emulator's stopping phase, then read a fresh listing.
    let mut stopped = false;
    for _ in 0..50 {
        p.context().instances.invalidate().await;
        if inst.instance_shutdown(&n4).await.unwrap() {
            stopped = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(stopped, "a stopped server is shut down");
    assert!(inst.instance_exists(&n4).await.unwrap(), "and still exists");
    emu.terminate_instance("node4").unwrap();
    // The cached listing still has it; a miss is only believed from a listing newer than the question.
    p.context().instances.invalidate().await;
    emu.reset_calls();
    assert!(!inst.instance_exists(&n4).await.unwrap());
    assert_eq!(emu.call_count("DescribeInstances"), 1);
    // A new server reusing the name is not the old node's server.
    emu.add_instance(&InstanceConfig::new("node4", "east-11")).unwrap();
    p.context().instances.invalidate().await;
    assert!(!inst.instance_exists(&n4).await.unwrap());
    emu.shutdown().await;
}

#[tokio::test]
async fn api_errors_never_mean_gone() {
    let (emu, p) = setup().await;
    emu.set_faults(
        nifcloud_emulator::FaultConfig::none().with(nifcloud_emulator::FaultRule::always(
            "DescribeInstances",
            "Server.InternalError",
        )),
    );
    let err = p
        .instances()
        .instance_exists(&node("node1", None, &[]))
        .await
        .unwrap_err();
    assert_eq!(
        failure(&err),
        (
            "cannot find the NIFCLOUD server of node node1".to_owned(),
            "DescribeInstances",
            Some("Server.InternalError")
        )
    );
    emu.shutdown().await;
}
