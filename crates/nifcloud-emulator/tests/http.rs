//! End-to-end tests over HTTP: signatures, fault injection, concurrency, admin API, robustness.

mod common;

use std::collections::BTreeMap;

use common::{Client, http};
use nifcloud_emulator::wire::SignatureMethod;
use nifcloud_emulator::{Emulator, EmulatorConfig, FaultConfig, FaultRule};

async fn emu() -> Emulator {
    Emulator::builder().start().await.expect("emulator starts")
}

#[tokio::test]
async fn signature_good_sha256_and_sha1() {
    let emu = emu().await;
    let mut c = Client::new(&emu);
    let r = c.call(&[("Action", "DescribeRegions")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.first("regionName").as_deref(), Some("jp-east-1"));
    c.method = SignatureMethod::HmacSha1;
    let r = c.call(&[("Action", "DescribeRegions")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(emu.call_count("DescribeRegions"), 2);
}

#[tokio::test]
async fn signature_bad_unknown_and_stale_are_rejected_and_not_counted() {
    let emu = emu().await;
    let good = Client::new(&emu);
    let mut bad = good.clone();
    bad.secret_key = "not-the-secret".into();
    let r = bad.call(&[("Action", "DescribeVolumes")]).await;
    assert_eq!(
        (r.status, r.code().as_deref()),
        (403, Some("Client.SignatureDoesNotMatch"))
    );
    assert!(r.body.contains("<RequestID>"), "{}", r.body);

    let mut unknown = good.clone();
    unknown.access_key = "NOBODY".into();
    let r = unknown.call(&[("Action", "DescribeVolumes")]).await;
    assert_eq!((r.status, r.code().as_deref()), (401, Some("Client.AuthFailure")));

    let mut stale = good.clone();
    stale.clock_offset_secs = -16 * 60;
    let r = stale.call(&[("Action", "DescribeVolumes")]).await;
    assert_eq!((r.status, r.code().as_deref()), (403, Some("Client.RequestExpired")));
    let mut fine = good.clone();
    fine.clock_offset_secs = -14 * 60;
    assert_eq!(fine.call(&[("Action", "DescribeVolumes")]).await.status, 200);

    // A tampered body (signed for one volume, sent for another) fails.
    let body = good
        .body(&[("Action", "DescribeVolumes"), ("VolumeId.1", "a")])
        .replace("VolumeId.1=a", "VolumeId.1=b");
    assert_eq!(
        good.raw(body).await.code().as_deref(),
        Some("Client.SignatureDoesNotMatch")
    );
    // No signature at all.
    assert_eq!(good.raw("Action=DescribeVolumes&Version=3.0".into()).await.status, 401);
    assert_eq!(emu.call_count("DescribeVolumes"), 1);
}

#[tokio::test]
async fn both_describe_load_balancers_encodings_are_accepted() {
    let emu = emu().await;
    let c = Client::new(&emu);
    let r = c
        .call(&[
            ("Action", "CreateLoadBalancer"),
            ("LoadBalancerName", "lb1"),
            ("Listeners.member.1.LoadBalancerPort", "80"),
            ("Listeners.member.1.InstancePort", "30080"),
            ("Listeners.member.2.LoadBalancerPort", "443"),
            ("Listeners.member.2.InstancePort", "30443"),
        ])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let vip = r.first("DNSName").expect("vip");
    let python = c
        .call(&[
            ("Action", "DescribeLoadBalancers"),
            ("LoadBalancerNames.member.1", "lb1"),
            ("LoadBalancerNames.LoadBalancerPort.1", "443"),
            ("LoadBalancerNames.InstancePort.1", "30443"),
        ])
        .await;
    let go = c
        .call(&[
            ("Action", "DescribeLoadBalancers"),
            ("LoadBalancerNames.member.1.LoadBalancerName", "lb1"),
            ("LoadBalancerNames.member.1.LoadBalancerPort", "443"),
            ("LoadBalancerNames.member.1.InstancePort", "30443"),
            ("Owner", "self"),
        ])
        .await;
    for r in [&python, &go] {
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body.matches("<LoadBalancerName>").count(), 1, "{}", r.body);
        assert!(
            r.body.contains("<LoadBalancerPort>443</LoadBalancerPort>")
                && r.body.contains(&format!("<DNSName>{vip}</DNSName>"))
        );
    }
    let name_only = c
        .call(&[
            ("Action", "DescribeLoadBalancers"),
            ("LoadBalancerNames.member.1.LoadBalancerName", "lb1"),
        ])
        .await;
    assert_eq!(
        name_only.body.matches("<LoadBalancerName>").count(),
        2,
        "{}",
        name_only.body
    );
}

#[tokio::test]
async fn fail_next_n_and_throttling_faults() {
    let emu = emu().await;
    let c = Client::new(&emu);
    emu.set_faults(FaultConfig::none().with(FaultRule::fail_next(
        "DescribeVolumes",
        2,
        "Server.ServiceUnavailable",
        503,
    )));
    let codes: Vec<u16> = futures::future::join_all((0..3).map(|_| c.call(&[("Action", "DescribeVolumes")])))
        .await
        .iter()
        .map(|r| r.status)
        .collect();
    let mut sorted = codes.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![200, 503, 503]);
    assert_eq!(c.call(&[("Action", "DescribeInstances")]).await.status, 200);
    emu.set_faults(FaultConfig::none().with(FaultRule::throttle(1.0)));
    let r = c.call(&[("Action", "DescribeInstances")]).await;
    assert_eq!(
        (r.status, r.code().as_deref()),
        (429, Some("Client.RequestLimitExceeded"))
    );
    emu.set_faults(FaultConfig::none().with(FaultRule::always(
        "AttachVolume",
        "Server.Inoperable.Volume.AlreadyAttached",
    )));
    let r = c
        .call(&[("Action", "AttachVolume"), ("VolumeId", "x"), ("InstanceId", "node1")])
        .await;
    assert_eq!(
        (r.status, r.code().as_deref()),
        (500, Some("Server.Inoperable.Volume.AlreadyAttached"))
    );
}

async fn fault_pattern(seed: u64) -> Vec<u16> {
    let mut cfg = EmulatorConfig::sample();
    cfg.seed = seed;
    cfg.faults = FaultConfig::none().with(FaultRule::random(0.4));
    let emu = Emulator::builder().config(cfg).start().await.expect("start");
    let c = Client::new(&emu);
    let mut out = Vec::new();
    for _ in 0..60 {
        out.push(c.call(&[("Action", "DescribeAvailabilityZones")]).await.status);
    }
    emu.shutdown().await;
    out
}

#[tokio::test]
async fn random_faults_are_deterministic_under_a_seed() {
    let a = fault_pattern(42).await;
    let b = fault_pattern(42).await;
    let c = fault_pattern(43).await;
    assert_eq!(a, b);
    assert_ne!(a, c);
    let failures = a.iter().filter(|s| **s == 503).count();
    assert!((10..=40).contains(&failures), "{failures} of 60 failed at rate 0.4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_on_one_volume() {
    let emu = emu().await;
    let c = Client::new(&emu);
    let r = c
        .call(&[
            ("Action", "CreateVolume"),
            ("Size", "100"),
            ("InstanceId", "node1"),
            ("VolumeId", "shared"),
        ])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .call(&[
            ("Action", "DetachVolume"),
            ("VolumeId", "shared"),
            ("Agreement", "true"),
        ])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // 16 clients race to attach the same volume to four instances: exactly one wins.
    let attempts = (0..16).map(|i| {
        let c = c.clone();
        let inst = format!("node{}", 1 + i % 4);
        tokio::spawn(async move {
            c.call(&[
                ("Action", "AttachVolume"),
                ("VolumeId", "shared"),
                ("InstanceId", &inst),
            ])
            .await
        })
    });
    let replies: Vec<_> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let already = replies
        .iter()
        .filter(|r| r.code().as_deref() == Some("Server.Inoperable.Volume.AlreadyAttached"))
        .count();
    assert_eq!((ok, already), (1, 15));
    // 16 concurrent detaches: one succeeds, the rest see it detached.
    let detaches = (0..16).map(|_| {
        let c = c.clone();
        tokio::spawn(async move {
            c.call(&[
                ("Action", "DetachVolume"),
                ("VolumeId", "shared"),
                ("Agreement", "true"),
            ])
            .await
        })
    });
    let replies: Vec<_> = futures::future::join_all(detaches)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let detached = replies
        .iter()
        .filter(|r| r.code().as_deref() == Some("Client.Inoperable.Volume.DetachedFromInstance"))
        .count();
    assert_eq!((ok, detached), (1, 15));
    assert!(emu.with_state(|st| st.volumes["shared"].attachment.is_none()));
}

#[tokio::test]
async fn admin_api_counts_resets_and_manages_instances() {
    let emu = emu().await;
    let c = Client::new(&emu);
    let admin = emu.admin_url();
    let h = http();
    c.call(&[("Action", "DescribeInstances")]).await;
    c.call(&[("Action", "DescribeInstances")]).await;
    let counts: BTreeMap<String, u64> = h
        .get(format!("{admin}calls"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap();
    assert_eq!(counts.get("DescribeInstances"), Some(&2));
    let log: serde_json::Value = h
        .get(format!("{admin}calls/log"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap();
    assert_eq!(log[0]["action"], "DescribeInstances");
    assert!(log[0]["params"].get("Signature").is_none());
    assert_eq!(emu.calls_of("DescribeInstances").len(), 2);
    assert_eq!(
        emu.calls_of("DescribeInstances")[0]
            .params
            .get("Version")
            .map(String::as_str),
        Some("3.0")
    );

    assert_eq!(
        h.post(format!("{admin}instances/node2/stop"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let r = c
        .call(&[("Action", "DescribeInstances"), ("InstanceId.1", "node2")])
        .await;
    assert!(r.body.contains("<name>stopped</name>"), "{}", r.body);
    assert_eq!(
        h.post(format!("{admin}instances/node2/terminate"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let r = c
        .call(&[("Action", "DescribeInstances"), ("InstanceId.1", "node2")])
        .await;
    assert_eq!(r.code().as_deref(), Some("Client.InvalidParameterNotFound.Instance"));
    assert_eq!(
        h.post(format!("{admin}instances/ghost/stop"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    let add = serde_json::json!({"name": "extra1", "zone": "east-12", "network_interfaces": [{"network_id": "net-COMMON_PRIVATE", "private_ip": "10.1.0.5"}]});
    let r = h
        .post(format!("{admin}instances"))
        .body(serde_json::to_vec(&add).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .call(&[("Action", "DescribeInstances"), ("InstanceId.1", "extra1")])
        .await;
    assert_eq!(r.first("privateIpAddress").as_deref(), Some("10.1.0.5"));

    let faults = serde_json::json!({"rules": [{"action": "DescribeRegions", "code": "Server.Busy", "status": 503, "remaining": 1}]});
    assert_eq!(
        h.put(format!("{admin}faults"))
            .body(serde_json::to_vec(&faults).unwrap())
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(c.call(&[("Action", "DescribeRegions")]).await.status, 503);
    assert_eq!(c.call(&[("Action", "DescribeRegions")]).await.status, 200);

    let state: serde_json::Value = h
        .get(format!("{admin}state"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap();
    assert!(state["instances"]["extra1"].is_object());
    assert_eq!(h.post(format!("{admin}reset")).send().await.unwrap().status(), 204);
    assert_eq!(emu.call_count("DescribeInstances"), 0);
    let r = c
        .call(&[("Action", "DescribeInstances"), ("InstanceId.1", "node2")])
        .await;
    assert_eq!(r.status, 200, "reset brings node2 back: {}", r.body);
    assert_eq!(h.delete(format!("{admin}calls")).send().await.unwrap().status(), 204);
    assert!(emu.calls().is_empty());
}

#[tokio::test]
async fn garbage_input_never_breaks_the_server() {
    let emu = emu().await;
    let c = Client::new(&emu);
    let nasty = [
        "",
        "&&&",
        "=",
        "%",
        "%zz=%",
        "Action",
        "Action=",
        "\u{0}\u{1}",
        "a=b&a=c&Signature=%%%",
        "Action=DescribeVolumes&VolumeId.99999999999999999999=x",
    ];
    for body in nasty {
        let r = c.raw(body.to_owned()).await;
        assert!(r.status == 401 || r.status == 400, "{body:?}: {}", r.status);
    }
    // Signed but malformed parameters.
    let cases: &[&[(&str, &str)]] = &[
        &[("Action", "CreateVolume"), ("Size", "1e9"), ("InstanceId", "node1")],
        &[("Action", "CreateVolume"), ("Size", "-100"), ("InstanceId", "node1")],
        &[
            ("Action", "CreateVolume"),
            ("Size", "99999999999999999999999"),
            ("InstanceId", "node1"),
        ],
        &[
            ("Action", "CreateLoadBalancer"),
            ("LoadBalancerName", "bad name!"),
            ("Listeners.member.1.LoadBalancerPort", "80"),
            ("Listeners.member.1.InstancePort", "1"),
        ],
        &[
            ("Action", "CreateLoadBalancer"),
            ("LoadBalancerName", "lb"),
            ("Listeners.member.1.LoadBalancerPort", "70000"),
            ("Listeners.member.1.InstancePort", "1"),
        ],
        &[("Action", "DetachVolume"), ("VolumeId", "x"), ("Agreement", "maybe")],
        &[
            ("Action", "SetFilterForLoadBalancer"),
            ("LoadBalancerName", "x"),
            ("LoadBalancerPort", "a"),
            ("InstancePort", "1"),
        ],
        &[
            ("Action", "NiftyDescribeElasticLoadBalancers"),
            ("Filter.1.Value.1", "x"),
        ],
        &[("Action", "AuthorizeSecurityGroupIngress"), ("GroupName", "x")],
        &[
            ("Action", "DescribeInstanceAttribute"),
            ("InstanceId", "node1"),
            ("Attribute", "nonsense"),
        ],
        &[("Action", "NoSuchThing")],
    ];
    for case in cases {
        let r = c.call(case).await;
        assert_eq!(r.status, 400, "{case:?}: {}", r.body);
        let code = r.code().unwrap_or_default();
        assert!(code.starts_with("Client."), "{case:?}: {code}");
    }
    let r = http().post(format!("{}nowhere", emu.admin_url())).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(c.call(&[("Action", "DescribeRegions")]).await.status, 200);
}

#[tokio::test]
async fn state_file_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.json");
    let emu = Emulator::builder().state_file(&file).start().await.unwrap();
    let c = Client::new(&emu);
    let r = c
        .call(&[
            ("Action", "CreateVolume"),
            ("Size", "200"),
            ("InstanceId", "node5"),
            ("VolumeId", "keep"),
        ])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    emu.shutdown().await;
    let emu = Emulator::builder().state_file(&file).start().await.unwrap();
    let c = Client::new(&emu);
    let r = c.call(&[("Action", "DescribeVolumes"), ("VolumeId.1", "keep")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.first("size").as_deref(), Some("200"));
    assert_eq!(r.first("availabilityZone").as_deref(), Some("east-12"));
}
