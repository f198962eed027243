//! Helpers for the provider's tests against the emulator.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use cloudprovider::k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeSpec, NodeStatus, Service, ServicePort, ServiceSpec,
};
use cloudprovider::{ProviderError, TargetNode};
use nifcloud_ccm::config::SecurityGroupSettings;
use nifcloud_ccm::{NifcloudArgs, NifcloudProvider, Settings};
use nifcloud_emulator::{Emulator, EmulatorConfig};

pub const CLUSTER: &str = "kubernetes";

pub async fn emulator(cfg: EmulatorConfig) -> Emulator {
    Emulator::builder().config(cfg).start().await.unwrap()
}

pub fn settings(emu: &Emulator, sg: Option<SecurityGroupSettings>) -> Settings {
    let (k, s) = emu.credentials();
    let endpoint = emu.endpoint();
    let env = move |name: &str| match name {
        "NIFCLOUD_ACCESS_KEY_ID" => Some(k.clone()),
        "NIFCLOUD_SECRET_ACCESS_KEY" => Some(s.clone()),
        "NIFCLOUD_REGION" => Some("jp-east-1".to_owned()),
        _ => None,
    };
    let args = NifcloudArgs {
        cloud_config: None,
        endpoint: Some(endpoint),
    };
    let mut st = Settings::resolve(&args, &env).unwrap();
    st.cache_ttl = Duration::from_secs(30);
    st.elb_wait_timeout = Duration::from_secs(12);
    st.security_group = sg;
    st
}

pub async fn setup() -> (Emulator, NifcloudProvider) {
    let emu = emulator(EmulatorConfig::sample()).await;
    let p = NifcloudProvider::new(settings(&emu, None)).unwrap();
    (emu, p)
}

pub fn service(uid: &str, ports: &[(i32, i32)], ann: &[(&str, &str)]) -> Service {
    let mut s = Service::default();
    s.metadata.name = Some(format!("svc-{}", &uid[..4]));
    s.metadata.namespace = Some("default".into());
    s.metadata.uid = Some(uid.into());
    s.metadata.annotations = Some(
        ann.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    );
    s.spec = Some(ServiceSpec {
        type_: Some("LoadBalancer".into()),
        ports: Some(
            ports
                .iter()
                .map(|(p, np)| ServicePort {
                    port: *p,
                    node_port: Some(*np),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    });
    s
}

pub fn uid(n: u32) -> String {
    format!("{n:08x}-1111-2222-3333-444455556666")
}

pub fn target(name: &str) -> TargetNode {
    TargetNode {
        name: name.into(),
        ..Default::default()
    }
}

pub fn targets(names: &[&str]) -> Vec<TargetNode> {
    names.iter().map(|n| target(n)).collect()
}

pub fn node(name: &str, provider_id: Option<&str>, ips: &[&str]) -> Node {
    let mut n = Node::default();
    n.metadata.name = Some(name.into());
    n.spec = Some(NodeSpec {
        provider_id: provider_id.map(Into::into),
        ..Default::default()
    });
    n.status = Some(NodeStatus {
        addresses: Some(
            ips.iter()
                .map(|ip| NodeAddress {
                    type_: "InternalIP".into(),
                    address: ip.to_string(),
                })
                .collect(),
        ),
        ..Default::default()
    });
    n
}

/// Counts of mutating calls (everything not Describe*).
pub fn mutations(emu: &Emulator) -> u64 {
    emu.calls()
        .iter()
        .filter(|(a, _)| !a.trim_start_matches("Nifty").starts_with("Describe"))
        .map(|(_, n)| *n)
        .sum()
}

/// The provider's own error behind a framework error: a failed call reaches the framework as
/// `ProviderError::Cloud` with the provider's [`nifcloud_ccm::Error`] as its source.
pub fn ccm_error(e: &ProviderError) -> &nifcloud_ccm::Error {
    match e {
        ProviderError::Cloud { source: Some(s), .. } => s
            .downcast_ref::<nifcloud_ccm::Error>()
            .unwrap_or_else(|| panic!("not a provider error: {s:?}")),
        other => panic!("not a failed call: {other:?}"),
    }
}

/// What failed, for exact assertions: the provider's message for the failed step (it names the step and the
/// load balancer or node), the NIFCLOUD operation that failed, and its error code.
pub fn failure(e: &ProviderError) -> (String, &'static str, Option<&str>) {
    let step = ccm_error(e);
    let call = step.failed_call().unwrap_or_else(|| panic!("no failed call: {step:?}"));
    (step.to_string(), call.operation, call.code())
}
