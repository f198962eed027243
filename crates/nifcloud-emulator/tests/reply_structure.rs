//! The shape of every emulated reply, held against a written reference so that it cannot drift from the real
//! service's again.
//!
//! `tests/reply_structure/<Action>.paths` lists, for each emulated action, every element path of its success
//! reply below the root element (`reservationSet/item/instancesSet/item/AccountingType`), case-sensitive, as the
//! real service sends them. They were written from replies captured from the real service (anonymised, as test
//! data of the 2024 successor CCM: DescribeInstances, DescribeLoadBalancers, NiftyDescribeElasticLoadBalancers,
//! DescribeSecurityGroups, the load-balancer, elastic-load-balancer and security-group mutations) and, for the
//! actions no capture shows, from the official model's reply paths.
//!
//! One scenario drives every action through states that bring out every optional element (disks attached,
//! members registered, HTTP and TCP checks, stickiness on and off, both kinds of security-group rule, every
//! `DescribeInstanceAttribute` attribute); for each action the union of the paths of its replies must equal
//! the reference exactly: nothing missing, nothing the service does not send. Every reference path must also be
//! one the official model knows (names compared without case, `item`/`member` alike), and where its case
//! differs from the model's it must be a case the real service is known to use.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use nifcloud_emulator::api::{action_names, process};
use nifcloud_emulator::state::State;
use nifcloud_emulator::wire::Params;
use nifcloud_emulator::xml::{DECLARATION, NAMESPACE};
use nifcloud_emulator::{EmulatorConfig, InstanceConfig, NetworkInterfaceConfig};
use quick_xml::events::Event;
use quick_xml::reader::Reader;

fn reference_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reply_structure")
}

/// The reference of `action`: its non-empty lines that are not `#` comments.
fn reference(action: &str) -> BTreeSet<String> {
    let path = reference_dir().join(format!("{action}.paths"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// The root element's name and xmlns, and every element path below it, of an XML document.
fn shape(body: &str) -> (String, Option<String>, BTreeSet<String>) {
    let mut reader = Reader::from_str(body);
    let mut stack: Vec<String> = Vec::new();
    let mut root = (String::new(), None);
    let mut paths = BTreeSet::new();
    loop {
        let (e, empty) = match reader.read_event().expect("well-formed reply") {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(_) => {
                stack.pop();
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let name = String::from_utf8(e.local_name().into_inner().to_vec()).expect("UTF-8 name");
        if stack.is_empty() {
            let xmlns = e
                .attributes()
                .filter_map(Result::ok)
                .find(|a| a.key.as_ref() == b"xmlns")
                .map(|a| String::from_utf8_lossy(&a.value).into_owned());
            root = (name.clone(), xmlns);
        } else {
            let mut path = stack[1..].join("/");
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(&name);
            paths.insert(path);
        }
        if !empty {
            stack.push(name);
        }
    }
    (root.0, root.1, paths)
}

/// Runs actions against one state and keeps every reply body per action.
struct Scenario {
    st: State,
    now: i64,
    replies: BTreeMap<String, Vec<String>>,
    errors: Vec<String>,
}

impl Scenario {
    fn new() -> Self {
        let mut cfg = EmulatorConfig::sample();
        let mut lan = InstanceConfig::new("lan1", "east-11").with_ips("203.0.113.31", "10.0.0.31");
        lan.network_interfaces.push(NetworkInterfaceConfig {
            network_id: "net-lan01".into(),
            private_ip: Some("192.168.10.31".into()),
            ipv6: Some("fd00::31".into()),
            ..Default::default()
        });
        lan.security_group = Some("nodes".into());
        lan.description = "worker & friends".into();
        cfg.instances.push(lan);
        Self {
            st: State::from_config(&cfg, 1_719_300_107_000),
            now: 1_719_300_107_000,
            replies: BTreeMap::new(),
            errors: Vec::new(),
        }
    }

    /// Calls `action`; it must succeed.
    fn ok(&mut self, action: &str, pairs: &[(&str, &str)]) -> String {
        self.now += 1000;
        let mut params = Params::from_pairs(pairs.iter().copied());
        params.insert("Action", action);
        let reply = process(&mut self.st, &params, self.now);
        assert_eq!(reply.status, 200, "{action} {pairs:?}: {}", reply.body);
        self.replies
            .entry(action.to_owned())
            .or_default()
            .push(reply.body.clone());
        reply.body
    }

    /// Calls `action`; it must fail (its error document is kept).
    fn fails(&mut self, action: &str, pairs: &[(&str, &str)]) {
        let mut params = Params::from_pairs(pairs.iter().copied());
        params.insert("Action", action);
        let reply = process(&mut self.st, &params, self.now);
        assert_ne!(reply.status, 200, "{action} {pairs:?} should fail");
        self.errors.push(reply.body);
    }
}

/// Every emulated action, through states that bring out every element its reply can hold.
fn scenario() -> Scenario {
    let mut s = Scenario::new();
    let lb = |extra: &[(&'static str, &'static str)]| {
        let mut p = vec![
            ("LoadBalancerName", "web"),
            ("LoadBalancerPort", "80"),
            ("InstancePort", "30080"),
        ];
        p.extend_from_slice(extra);
        p
    };
    let elb_key = |port: &'static str, proto: &'static str| {
        vec![
            ("ElasticLoadBalancerName", "elb1"),
            ("ElasticLoadBalancerPort", port),
            ("InstancePort", if port == "80" { "30080" } else { "30443" }),
            ("Protocol", proto),
        ]
    };
    let with = |mut base: Vec<(&'static str, &'static str)>, extra: &[(&'static str, &'static str)]| {
        base.extend_from_slice(extra);
        base
    };

    // Volumes: one stays attached to node1, one is detached, one is created and deleted.
    s.ok(
        "CreateVolume",
        &[
            ("Size", "100"),
            ("InstanceId", "node1"),
            ("VolumeId", "disk1"),
            ("DiskType", "6"),
            ("AccountingType", "2"),
            ("Description", "pvc-1"),
        ],
    );
    s.ok(
        "CreateVolume",
        &[("Size", "200"), ("InstanceId", "node1"), ("VolumeId", "disk2")],
    );
    s.ok("DetachVolume", &[("VolumeId", "disk2"), ("Agreement", "true")]);
    s.ok("AttachVolume", &[("VolumeId", "disk2"), ("InstanceId", "node2")]);
    s.ok(
        "DetachVolume",
        &[("VolumeId", "disk2"), ("InstanceId", "node2"), ("Agreement", "true")],
    );
    s.ok("ExtendVolumeSize", &[("VolumeId", "disk1"), ("NiftyReboot", "false")]);
    s.ok(
        "ModifyVolumeAttribute",
        &[("VolumeId", "disk2"), ("Attribute", "accountingType"), ("Value", "1")],
    );
    s.ok("DescribeVolumes", &[]);
    s.ok("DescribeVolumes", &[("VolumeId.1", "disk2")]);
    s.ok(
        "CreateVolume",
        &[("Size", "100"), ("InstanceId", "node3"), ("VolumeId", "gone")],
    );
    s.ok("DetachVolume", &[("VolumeId", "gone"), ("Agreement", "true")]);
    s.ok("DeleteVolume", &[("VolumeId", "gone")]);

    // An L4 load balancer with two port pairs, members, a filter and stickiness on one pair.
    s.ok(
        "CreateLoadBalancer",
        &[
            ("LoadBalancerName", "web"),
            ("Listeners.member.1.LoadBalancerPort", "80"),
            ("Listeners.member.1.InstancePort", "30080"),
            ("NetworkVolume", "10"),
            ("AccountingType", "2"),
        ],
    );
    s.ok(
        "RegisterPortWithLoadBalancer",
        &[
            ("LoadBalancerName", "web"),
            ("Listeners.member.1.LoadBalancerPort", "443"),
            ("Listeners.member.1.InstancePort", "30443"),
        ],
    );
    s.ok(
        "ConfigureHealthCheck",
        &lb(&[
            ("HealthCheck.Target", "TCP:30080"),
            ("HealthCheck.Interval", "10"),
            ("HealthCheck.UnhealthyThreshold", "1"),
        ]),
    );
    s.ok(
        "RegisterInstancesWithLoadBalancer",
        &lb(&[
            ("Instances.member.1.InstanceId", "node1"),
            ("Instances.member.2.InstanceId", "node2"),
            ("Instances.member.3.InstanceId", "lan1"),
        ]),
    );
    s.ok(
        "DeregisterInstancesFromLoadBalancer",
        &lb(&[("Instances.member.1.InstanceId", "node2")]),
    );
    s.ok(
        "SetFilterForLoadBalancer",
        &lb(&[
            ("FilterType", "1"),
            ("IPAddresses.member.1.IPAddress", "203.0.113.6"),
            ("IPAddresses.member.1.AddOnFilter", "true"),
            ("IPAddresses.member.2.IPAddress", "203.0.113.7"),
        ]),
    );
    s.ok(
        "UpdateLoadBalancerOption",
        &lb(&[
            ("SessionStickinessPolicyUpdate.Enable", "true"),
            ("SessionStickinessPolicyUpdate.ExpirationPeriod", "10"),
        ]),
    );
    s.ok(
        "UpdateLoadBalancer",
        &[("LoadBalancerName", "web"), ("NetworkVolumeUpdate", "20")],
    );
    s.ok("ClearLoadBalancerSession", &lb(&[]));
    s.ok("DescribeInstanceHealth", &lb(&[]));
    s.ok("DescribeLoadBalancers", &[]);
    s.ok(
        "DescribeLoadBalancers",
        &[
            ("LoadBalancerNames.member.1", "web"),
            ("LoadBalancerNames.LoadBalancerPort.1", "443"),
            ("LoadBalancerNames.InstancePort.1", "30443"),
        ],
    );

    // An elastic load balancer: a TCP listener with stickiness and a sorry page, an HTTP listener with an HTTP
    // check, a private LAN interface with its system addresses.
    s.ok(
        "NiftyCreateElasticLoadBalancer",
        &[
            ("ElasticLoadBalancerName", "elb1"),
            ("AvailabilityZones.member.1", "east-11"),
            ("NetworkVolume", "10"),
            ("Listeners.member.1.Protocol", "TCP"),
            ("Listeners.member.1.ElasticLoadBalancerPort", "80"),
            ("Listeners.member.1.InstancePort", "30080"),
            ("Listeners.member.1.Description", "kubernetes/web"),
            ("Listeners.member.1.Instances.member.1.InstanceId", "node1"),
            ("Listeners.member.1.Session.StickinessPolicy.Enable", "true"),
            ("Listeners.member.1.Session.StickinessPolicy.Method", "1"),
            ("Listeners.member.1.Session.StickinessPolicy.ExpirationPeriod", "5"),
            ("Listeners.member.1.SorryPage.Enable", "true"),
            ("Listeners.member.1.SorryPage.RedirectUrl", "https://example.com/sorry"),
            ("NetworkInterface.1.NetworkId", "net-COMMON_GLOBAL"),
            ("NetworkInterface.1.IsVipNetwork", "true"),
            ("NetworkInterface.2.NetworkId", "net-lan01"),
            ("NetworkInterface.2.NetworkName", "lan01"),
            ("NetworkInterface.2.IpAddress", "192.168.10.100"),
            (
                "NetworkInterface.2.SystemIpAddresses.1.SystemIpAddress",
                "192.168.10.101",
            ),
            (
                "NetworkInterface.2.SystemIpAddresses.2.SystemIpAddress",
                "192.168.10.102",
            ),
        ],
    );
    s.ok(
        "NiftyRegisterPortWithElasticLoadBalancer",
        &[
            ("ElasticLoadBalancerName", "elb1"),
            ("Listeners.member.1.Protocol", "HTTP"),
            ("Listeners.member.1.ElasticLoadBalancerPort", "443"),
            ("Listeners.member.1.InstancePort", "30443"),
        ],
    );
    s.ok(
        "NiftyConfigureElasticLoadBalancerHealthCheck",
        &with(
            elb_key("443", "HTTP"),
            &[
                ("HealthCheck.Target", "HTTP:30443"),
                ("HealthCheck.Path", "/healthz"),
                ("HealthCheck.Expectation.member.1.HttpCode", "2xx"),
            ],
        ),
    );
    s.ok(
        "NiftyConfigureElasticLoadBalancerHealthCheck",
        &with(elb_key("80", "TCP"), &[("HealthCheck.Target", "TCP:30080")]),
    );
    s.ok(
        "NiftyRegisterInstancesWithElasticLoadBalancer",
        &with(elb_key("443", "HTTP"), &[("Instances.member.1.InstanceId", "node2")]),
    );
    s.ok(
        "NiftyRegisterInstancesWithElasticLoadBalancer",
        &with(elb_key("443", "HTTP"), &[("Instances.member.1.InstanceId", "node3")]),
    );
    s.ok(
        "NiftyDeregisterInstancesFromElasticLoadBalancer",
        &with(elb_key("443", "HTTP"), &[("Instances.member.1.InstanceId", "node3")]),
    );
    s.ok(
        "NiftyModifyElasticLoadBalancerAttributes",
        &with(
            elb_key("443", "HTTP"),
            &[
                (
                    "LoadBalancerAttributes.AdditionalAttributes.member.1.Key",
                    "description",
                ),
                (
                    "LoadBalancerAttributes.AdditionalAttributes.member.1.Value",
                    "kubernetes/web",
                ),
            ],
        ),
    );
    s.ok(
        "NiftyUpdateElasticLoadBalancer",
        &[("ElasticLoadBalancerName", "elb1"), ("NetworkVolumeUpdate", "20")],
    );
    s.ok(
        "NiftyDescribeInstanceElasticLoadBalancerHealth",
        &elb_key("443", "HTTP"),
    );
    s.ok("NiftyDescribeElasticLoadBalancers", &[]);

    // Security groups: one with a range rule and a group rule and members, one empty.
    s.ok("CreateSecurityGroup", &[("GroupName", "lbpeers")]);
    s.ok(
        "CreateSecurityGroup",
        &[("GroupName", "web"), ("GroupDescription", "k8s lb")],
    );
    s.ok(
        "AuthorizeSecurityGroupIngress",
        &[
            ("GroupName", "web"),
            ("IpPermissions.1.IpProtocol", "TCP"),
            ("IpPermissions.1.FromPort", "30000"),
            ("IpPermissions.1.ToPort", "32767"),
            ("IpPermissions.1.InOut", "IN"),
            ("IpPermissions.1.IpRanges.1.CidrIp", "198.51.100.0/24"),
            ("IpPermissions.2.IpProtocol", "ICMP"),
            ("IpPermissions.2.Groups.1.GroupName", "lbpeers"),
        ],
    );
    s.ok(
        "AuthorizeSecurityGroupIngress",
        &[
            ("GroupName", "web"),
            ("IpPermissions.1.IpProtocol", "TCP"),
            ("IpPermissions.1.FromPort", "80"),
            ("IpPermissions.1.IpRanges.1.CidrIp", "192.0.2.1"),
        ],
    );
    s.ok(
        "RevokeSecurityGroupIngress",
        &[
            ("GroupName", "web"),
            ("IpPermissions.1.IpProtocol", "TCP"),
            ("IpPermissions.1.FromPort", "80"),
            ("IpPermissions.1.IpRanges.1.CidrIp", "192.0.2.1"),
        ],
    );
    s.ok(
        "RegisterInstancesWithSecurityGroup",
        &[
            ("GroupName", "web"),
            ("InstanceId.1", "node3"),
            ("InstanceId.2", "node4"),
        ],
    );
    s.ok("DescribeSecurityGroups", &[]);
    s.ok("CreateSecurityGroup", &[("GroupName", "spare")]);
    s.ok("DeleteSecurityGroup", &[("GroupName", "spare")]);

    // Instances, with the disks, memberships and groups above.
    s.ok("DescribeInstances", &[]);
    s.ok("DescribeInstances", &[("InstanceId.1", "lan1")]);
    for attribute in [
        "instanceType",
        "disableApiTermination",
        "blockDeviceMapping",
        "accountingType",
        "nextMonthAccountingType",
        "loadbalancing",
        "copyInfo",
        "autoscaling",
        "ipType",
        "niftyPrivateIpType",
        "groupId",
        "description",
        "networkInterfaceSet",
        "elasticloadbalancing",
    ] {
        s.ok(
            "DescribeInstanceAttribute",
            &[("InstanceId", "node1"), ("Attribute", attribute)],
        );
    }
    s.ok("StopInstances", &[("InstanceId.1", "node4")]);
    s.ok("StartInstances", &[("InstanceId.1", "node4")]);
    s.ok("DescribeRegions", &[]);
    s.ok("DescribeAvailabilityZones", &[]);

    // Tear down what the scenario built last, so deletions are seen too.
    s.ok("NiftyDeleteElasticLoadBalancer", &elb_key("443", "HTTP"));
    s.ok("DeleteLoadBalancer", &lb(&[]));

    // Some errors, for the error document's shape.
    s.fails("DescribeVolumes", &[("VolumeId.1", "nosuch")]);
    s.fails("DescribeLoadBalancers", &[("LoadBalancerNames.member.1", "nosuch")]);
    s.fails("NoSuchAction", &[]);
    s
}

#[test]
fn every_reply_has_exactly_the_reference_structure() {
    let s = scenario();
    let mut problems = Vec::new();
    for action in action_names() {
        let Some(bodies) = s.replies.get(action) else {
            problems.push(format!("{action}: the scenario never called it"));
            continue;
        };
        let want = reference(action);
        let mut got = BTreeSet::new();
        for body in bodies {
            assert!(
                body.starts_with(&format!("{DECLARATION}<{action}Response ")),
                "{action}: the reply does not start as the service's do: {}",
                &body[..body.len().min(120)]
            );
            assert!(!body.contains(">\n<"), "{action}: whitespace between elements");
            let (root, xmlns, paths) = shape(body);
            assert_eq!(root, format!("{action}Response"));
            assert_eq!(xmlns.as_deref(), Some(NAMESPACE), "{action}");
            got.extend(paths);
        }
        let missing: Vec<_> = want.difference(&got).collect();
        let extra: Vec<_> = got.difference(&want).collect();
        if !missing.is_empty() || !extra.is_empty() {
            problems.push(format!(
                "{action}:\n  missing (in the reference, never sent): {missing:#?}\n  extra (sent, not in the reference): {extra:#?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let files: BTreeSet<String> = std::fs::read_dir(reference_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> = action_names().iter().map(|a| format!("{a}.paths")).collect();
    assert_eq!(files, expected, "one reference per emulated action, and no other");
}

#[test]
fn error_documents_have_the_service_shape() {
    let s = scenario();
    assert_eq!(s.errors.len(), 3);
    for body in &s.errors {
        assert!(body.starts_with("<Response><Errors><Error><Code>"), "{body}");
        let (root, xmlns, paths) = shape(body);
        assert_eq!((root.as_str(), xmlns), ("Response", None));
        let want: BTreeSet<String> = [
            "Errors",
            "Errors/Error",
            "Errors/Error/Code",
            "Errors/Error/Message",
            "RequestID",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        assert_eq!(paths, want, "{body}");
    }
}

/// Element paths of the official model's reply to each operation, every `item`/`member` written `*`.
fn model_paths() -> BTreeMap<String, BTreeSet<String>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../nifcloud-sdk/model/computing/3.0/service-2.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let model: serde_json::Value = serde_json::from_str(&text).unwrap();
    fn walk(model: &serde_json::Value, shape: &str, prefix: &str, depth: usize, out: &mut BTreeSet<String>) {
        let s = &model["shapes"][shape];
        let join = |name: &str| {
            if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}/{name}")
            }
        };
        if depth > 12 {
            return;
        }
        match s["type"].as_str() {
            Some("structure") => {
                for (name, m) in s["members"].as_object().into_iter().flatten() {
                    let path = join(m["locationName"].as_str().unwrap_or(name));
                    out.insert(path.clone());
                    walk(model, m["shape"].as_str().unwrap(), &path, depth + 1, out);
                }
            }
            Some("list") => {
                let path = join("*");
                out.insert(path.clone());
                walk(model, s["member"]["shape"].as_str().unwrap(), &path, depth + 1, out);
            }
            _ => {}
        }
    }
    let mut all = BTreeMap::new();
    for action in action_names() {
        let op = &model["operations"][action];
        let mut out = BTreeSet::new();
        if let Some(shape) = op["output"]["shape"].as_str() {
            walk(&model, shape, "", 0, &mut out);
        }
        all.insert(action.to_owned(), out);
    }
    all
}

/// Reference paths whose case differs from the model's: the real service sends them so.
const REAL_CASE: &[(&str, &str)] = &[
    (
        "DescribeInstances",
        "reservationSet/item/instancesSet/item/AccountingType",
    ),
    (
        "DescribeInstances",
        "reservationSet/item/instancesSet/item/NextMonthAccountingType",
    ),
];

#[test]
fn every_reference_path_is_one_the_model_knows() {
    let model = model_paths();
    let mut problems = Vec::new();
    for action in action_names() {
        let known = &model[action];
        let by_lower: BTreeMap<String, &String> = known.iter().map(|p| (p.to_ascii_lowercase(), p)).collect();
        for path in reference(action) {
            let generic: String = path
                .split('/')
                .map(|seg| if seg == "item" || seg == "member" { "*" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            if known.contains(&generic) {
                continue;
            }
            match by_lower.get(&generic.to_ascii_lowercase()) {
                Some(_) if REAL_CASE.contains(&(action, path.as_str())) => {}
                Some(model_case) => problems.push(format!("{action}: {path} is {model_case} in the model")),
                None => problems.push(format!("{action}: {path} is not in the model")),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for (action, path) in REAL_CASE {
        assert!(
            reference(action).contains(*path),
            "{action}: {path} is no longer referenced"
        );
    }
}
