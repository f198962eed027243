//! The instance view against the emulator: conversion of real replies, coalescing and exact call counts.

use std::sync::Arc;
use std::time::Duration;

use nifcloud_cloud::{AddressKind, InstanceState, InstanceView, NodeRef};
use nifcloud_emulator::{Emulator, EmulatorConfig, LatencyConfig};
use nifcloud_sdk::{Client, Config, Credentials};

async fn start() -> (Emulator, Client) {
    let emu = Emulator::builder()
        .config(EmulatorConfig::sample())
        .start()
        .await
        .unwrap();
    let (k, s) = emu.credentials();
    let config = Config::builder()
        .region_name("jp-east-1")
        .endpoint(emu.endpoint())
        .credentials(Credentials::new(k, s))
        .build()
        .unwrap();
    (emu, Client::new(config).unwrap())
}

fn by_name(name: &str) -> NodeRef<'_> {
    NodeRef {
        provider_id: None,
        name,
        addresses: &[],
    }
}

#[tokio::test]
async fn reads_servers_with_all_addresses() {
    let (emu, client) = start().await;
    let view = InstanceView::new(client, Duration::from_secs(10));
    let node1 = view.find(&by_name("node1")).await.unwrap().unwrap();
    assert_eq!(node1.zone, "east-11");
    assert_eq!(node1.state, InstanceState::Running);
    assert!(node1.unique_id.starts_with("i-"), "{}", node1.unique_id);
    assert_eq!(
        node1
            .addresses_of(AddressKind::PublicV4)
            .map(|i| i.to_string())
            .collect::<Vec<_>>(),
        vec!["203.0.113.11"]
    );
    assert_eq!(node1.private_ipv4().unwrap().to_string(), "10.0.0.11");
    // By providerID (canonical and legacy) and by address.
    let pid = node1.provider_id().to_string();
    let again = view
        .find(&NodeRef {
            provider_id: Some(&pid),
            name: "renamed-node",
            addresses: &[],
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.name, "node1");
    let ip = ["10.0.0.15".parse().unwrap()];
    let by_ip = view
        .find(&NodeRef {
            provider_id: None,
            name: "k8s-worker-x",
            addresses: &ip,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_ip.name, "node5");
    assert_eq!(
        emu.call_count("DescribeInstances"),
        1,
        "all lookups served by one listing"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn concurrent_lookups_share_one_call() {
    let (emu, client) = start().await;
    emu.set_latency(LatencyConfig {
        default_ms: 100,
        ..Default::default()
    });
    let view = Arc::new(InstanceView::new(client, Duration::from_secs(10)));
    let mut tasks = Vec::new();
    for i in 0..60 {
        let view = view.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("node{}", i % 6 + 1);
            view.find(&by_name(&name)).await.unwrap().unwrap().name
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap(), format!("node{}", i % 6 + 1));
    }
    assert_eq!(emu.call_count("DescribeInstances"), 1);
    assert_eq!(view.fetch_count(), 1);
    emu.shutdown().await;
}

#[tokio::test]
async fn not_found_only_after_a_fresh_listing() {
    let (emu, client) = start().await;
    let view = InstanceView::new(client, Duration::from_secs(60));
    let node3 = view.find(&by_name("node3")).await.unwrap().unwrap();
    let pid = node3.provider_id().to_string();
    let node = NodeRef {
        provider_id: Some(&pid),
        name: "node3",
        addresses: &[],
    };
    assert!(view.exists(&node).await.unwrap());
    assert_eq!(emu.call_count("DescribeInstances"), 1);
    emu.terminate_instance("node3").unwrap();
    // Still in the cached listing: exists answers from the cache (a positive answer is safe).
    assert!(view.exists(&node).await.unwrap());
    assert_eq!(emu.call_count("DescribeInstances"), 1);
    view.invalidate().await;
    assert!(!view.exists(&node).await.unwrap());
    // A miss in a fresh listing needs no second call.
    assert_eq!(emu.call_count("DescribeInstances"), 2);
    // A node unknown to a cached listing is re-checked once before the answer is "gone".
    assert!(!view.exists(&by_name("nosuch")).await.unwrap());
    assert_eq!(emu.call_count("DescribeInstances"), 3);
    emu.shutdown().await;
}

#[tokio::test]
async fn errors_are_errors_not_absence() {
    let (emu, client) = start().await;
    emu.set_faults(
        nifcloud_emulator::FaultConfig::none().with(nifcloud_emulator::FaultRule::always(
            "DescribeInstances",
            "Client.AuthFailure",
        )),
    );
    let view = InstanceView::new(client, Duration::from_secs(10));
    let err = view.exists(&by_name("node1")).await.unwrap_err();
    assert!(matches!(err, nifcloud_cloud::LookupError::Cloud(_)), "{err}");
    emu.shutdown().await;
}
