use super::*;
use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn addr(t: &str, a: &str) -> NodeAddress {
    NodeAddress {
        type_: t.into(),
        address: a.into(),
    }
}

fn taint(key: &str) -> Taint {
    Taint {
        key: key.into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    }
}

fn node() -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some("w1".into()),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: Some(vec![taint(UNINITIALIZED_TAINT), taint("dedicated")]),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            addresses: Some(vec![addr("Hostname", "w1")]),
            ..Default::default()
        }),
    }
}

fn meta() -> InstanceMetadata {
    InstanceMetadata {
        provider_id: "fake://i-1".into(),
        instance_type: "large".into(),
        node_addresses: vec![addr("InternalIP", "10.0.0.5"), addr("ExternalIP", "198.51.100.5")],
        zone: "east-11".into(),
        region: "jp-east-1".into(),
        additional_labels: [
            ("example.com/rack".to_owned(), "r1".to_owned()),
            ("node.kubernetes.io/evil".to_owned(), "x".to_owned()),
            ("sub.k8s.io/evil".to_owned(), "x".to_owned()),
            ("team".to_owned(), "cloud".to_owned()),
        ]
        .into(),
    }
}

#[test]
fn restricted_labels_table() {
    let table = [
        ("kubernetes.io/hostname", true),
        ("node.kubernetes.io/x", true),
        ("k8s.io/x", true),
        ("foo.k8s.io/x", true),
        ("KUBERNETES.IO/x", true),
        ("example.com/x", false),
        ("notkubernetes.io/x", false),
        ("plain", false),
    ];
    for (key, restricted) in table {
        assert_eq!(is_restricted_label(key), restricted, "{key}");
    }
}

#[test]
fn initialization_sets_everything_and_drops_taint() {
    let mut n = node();
    n.metadata.labels = Some([("team".to_owned(), "mine".to_owned())].into());
    let plan = plan_initialization(&n, &meta()).unwrap();
    assert_eq!(plan.provider_id.as_deref(), Some("fake://i-1"));
    let expected: BTreeMap<String, String> = [
        (LABEL_INSTANCE_TYPE, "large"),
        (LABEL_INSTANCE_TYPE_BETA, "large"),
        (LABEL_ZONE, "east-11"),
        (LABEL_ZONE_BETA, "east-11"),
        (LABEL_REGION, "jp-east-1"),
        (LABEL_REGION_BETA, "jp-east-1"),
        ("example.com/rack", "r1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(
        plan.labels, expected,
        "restricted and already-present extra labels are dropped"
    );
    n.metadata.resource_version = Some("42".into());
    assert_eq!(
        init_patch(&n, &plan),
        serde_json::json!({
            "metadata": {"labels": expected, "resourceVersion": "42"},
            "spec": {"providerID": "fake://i-1", "taints": [{"key": "dedicated", "effect": "NoSchedule"}]}
        }),
        "the whole taint list (atomic) without the uninitialized taint, guarded by resourceVersion"
    );
    assert_eq!(
        plan.addresses,
        Some(vec![
            addr("InternalIP", "10.0.0.5"),
            addr("ExternalIP", "198.51.100.5"),
            addr("Hostname", "w1")
        ]),
        "kubelet's hostname is kept when the cloud has none"
    );
}

#[test]
fn provider_id_only_if_empty() {
    let mut n = node();
    n.spec.as_mut().unwrap().provider_id = Some("fake://kept".into());
    assert_eq!(plan_initialization(&n, &meta()).unwrap().provider_id, None);
    let no_pid = InstanceMetadata {
        provider_id: String::new(),
        ..meta()
    };
    assert_eq!(plan_initialization(&n, &no_pid).unwrap().provider_id, None);
    assert_eq!(
        plan_initialization(&node(), &no_pid),
        Err(NodeDecisionError::NoProviderId { node: "w1".into() })
    );
}

#[test]
fn empty_metadata_fields_set_no_labels() {
    let m = InstanceMetadata {
        provider_id: "fake://i".into(),
        ..Default::default()
    };
    let plan = plan_initialization(&node(), &m).unwrap();
    assert!(plan.labels.is_empty());
    assert_eq!(plan.addresses, None, "no cloud addresses: leave the node's alone");
}

fn with_ip(value: &str) -> Node {
    let mut n = node();
    n.metadata.annotations = Some([(PROVIDED_NODE_IP_ANNOTATION.to_owned(), value.to_owned())].into());
    n
}

#[test]
fn provided_node_ip_table() {
    let cloud = vec![
        addr("InternalIP", "10.0.0.5"),
        addr("InternalIP", "10.0.1.5"),
        addr("ExternalIP", "198.51.100.5"),
        addr("Hostname", "w1.cloud"),
    ];
    type Expect = Result<Option<Vec<NodeAddress>>, NodeDecisionError>;
    let table: Vec<(&str, Node, Expect)> = vec![
        (
            "no annotation: all cloud addresses in order",
            node(),
            Ok(Some(cloud.clone())),
        ),
        (
            "second internal IP is moved first, other internal dropped",
            with_ip("10.0.1.5"),
            Ok(Some(vec![
                addr("InternalIP", "10.0.1.5"),
                addr("ExternalIP", "198.51.100.5"),
                addr("Hostname", "w1.cloud"),
            ])),
        ),
        (
            "external IP chosen",
            with_ip("198.51.100.5"),
            Ok(Some(vec![
                addr("ExternalIP", "198.51.100.5"),
                addr("InternalIP", "10.0.0.5"),
                addr("InternalIP", "10.0.1.5"),
                addr("Hostname", "w1.cloud"),
            ])),
        ),
        (
            "IP not in the cloud",
            with_ip("10.9.9.9"),
            Err(NodeDecisionError::ProvidedNodeIpNotFound {
                node: "w1".into(),
                ip: "10.9.9.9".into(),
            }),
        ),
        (
            "garbage",
            with_ip("not-an-ip"),
            Err(NodeDecisionError::InvalidProvidedNodeIp {
                node: "w1".into(),
                value: "not-an-ip".into(),
            }),
        ),
    ];
    for (what, n, expected) in table {
        assert_eq!(plan_addresses(&n, &cloud), expected, "{what}");
    }
}

#[test]
fn addresses_patched_only_when_different() {
    let mut n = node();
    n.status.as_mut().unwrap().addresses = Some(vec![
        addr("ExternalIP", "198.51.100.5"),
        addr("InternalIP", "10.0.0.5"),
        addr("Hostname", "w1"),
    ]);
    let cloud = vec![addr("InternalIP", "10.0.0.5"), addr("ExternalIP", "198.51.100.5")];
    assert_eq!(
        plan_addresses(&n, &cloud),
        Ok(None),
        "same set in another order is no change"
    );
    let moved = vec![addr("InternalIP", "10.0.0.6"), addr("ExternalIP", "198.51.100.5")];
    assert_eq!(
        plan_addresses(&n, &moved),
        Ok(Some(vec![
            addr("InternalIP", "10.0.0.6"),
            addr("ExternalIP", "198.51.100.5"),
            addr("Hostname", "w1")
        ]))
    );
    assert_eq!(plan_addresses(&n, &[]), Ok(None), "cloud returned nothing: keep");
}

#[test]
fn beta_labels_follow_ga() {
    let mut n = node();
    n.metadata.labels = Some(
        [
            (LABEL_ZONE, "z1"),
            (LABEL_ZONE_BETA, "old"),
            (LABEL_REGION, "r1"),
            (LABEL_REGION_BETA, "r1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
    );
    let sync = beta_label_sync(&n);
    assert_eq!(sync, [(LABEL_ZONE_BETA.to_owned(), "z1".to_owned())].into());
}

#[test]
fn taint_edits_table() {
    let n = node(); // uninitialized + dedicated
    assert_eq!(with_taint(&n, &taint("dedicated")), None, "already there");
    assert_eq!(
        with_taint(&n, &taint("x")),
        Some(vec![taint(UNINITIALIZED_TAINT), taint("dedicated"), taint("x")])
    );
    assert_eq!(without_taint(&n, "x"), None, "absent");
    assert_eq!(without_taint(&n, UNINITIALIZED_TAINT), Some(vec![taint("dedicated")]));
    let mut bare = node();
    bare.spec = None;
    assert_eq!(with_taint(&bare, &taint("x")), Some(vec![taint("x")]));
    let mut versioned = node();
    versioned.metadata.resource_version = Some("7".into());
    assert_eq!(
        taints_patch(&versioned, &[]),
        serde_json::json!({"metadata": {"resourceVersion": "7"}, "spec": {"taints": []}})
    );
}
