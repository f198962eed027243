//! The generated API as callers use it: fluent inputs, wire parameters of the operations the CCM and the CSI
//! driver send, validation paths, and parsing of replies shaped like the real API's (case drift, empty numbers,
//! offsets, ELB-style wrappers). The exhaustive comparison with the official SDK is in `conformance.rs`.

use nifcloud_sdk::operation::Operation;
use nifcloud_sdk::types::*;
use nifcloud_sdk::xml::{self, FromXml};

fn pairs<O: Operation>(op: &O) -> Vec<(String, String)> {
    let mut p = op.to_params().into_inner();
    p.sort();
    p
}

fn kv(k: &str, v: &str) -> (String, String) {
    (k.to_owned(), v.to_owned())
}

#[test]
fn fluent_inputs_serialize_to_the_documented_wire_keys() {
    let req = DescribeVolumesRequest::default().volume_id(["vol1", "vol 2"]);
    assert_eq!(pairs(&req), vec![kv("VolumeId.1", "vol1"), kv("VolumeId.2", "vol 2")]);
    assert_eq!(DescribeVolumesRequest::ACTION, "DescribeVolumes");

    let req = CreateVolumeRequest::default()
        .size(100)
        .disk_type("8")
        .instance_id("node1")
        .accounting_type("2");
    assert_eq!(
        pairs(&req),
        vec![
            kv("AccountingType", "2"),
            kv("DiskType", "8"),
            kv("InstanceId", "node1"),
            kv("Size", "100")
        ]
    );

    let req = RegisterInstancesWithLoadBalancerRequest::default()
        .load_balancer_name("lb1")
        .load_balancer_port(80)
        .instance_port(30080)
        .instances([
            RequestInstances::default().instance_id("a"),
            RequestInstances::default().instance_id("b"),
        ]);
    assert_eq!(
        pairs(&req),
        vec![
            kv("InstancePort", "30080"),
            kv("Instances.member.1.InstanceId", "a"),
            kv("Instances.member.2.InstanceId", "b"),
            kv("LoadBalancerName", "lb1"),
            kv("LoadBalancerPort", "80"),
        ]
    );
    assert_eq!(req.validate(), Ok(()));
}

#[test]
fn describe_load_balancers_uses_the_api_form_and_keeps_owner() {
    let req = DescribeLoadBalancersRequest::default()
        .load_balancer_names([RequestLoadBalancerNames::default()
            .load_balancer_name("lb1")
            .load_balancer_port(80)
            .instance_port(30080)])
        .owner("self");
    assert_eq!(
        pairs(&req),
        vec![
            kv("LoadBalancerNames.InstancePort.1", "30080"),
            kv("LoadBalancerNames.LoadBalancerPort.1", "80"),
            kv("LoadBalancerNames.member.1", "lb1"),
            kv("Owner", "self"),
        ]
    );
}

#[test]
fn user_data_content_is_sent_as_user_data() {
    let req =
        RunInstancesRequest::default().user_data(RequestUserData::default().content("IyEvYmluL3No").encoding("base64"));
    let p = pairs(&req);
    assert!(p.contains(&kv("UserData", "IyEvYmluL3No")), "{p:?}");
    assert!(p.contains(&kv("UserData.Encoding", "base64")), "{p:?}");
    assert!(!p.iter().any(|(k, _)| k == "UserData.Content"), "{p:?}");
}

#[test]
fn validation_names_the_missing_parameter_with_its_wire_path() {
    let err = CreateVolumeRequest::default().instance_id("n").validate().unwrap_err();
    assert_eq!((err.action, err.parameter.as_str()), ("CreateVolume", "Size"));

    let err = RegisterInstancesWithLoadBalancerRequest::default()
        .load_balancer_name("lb1")
        .load_balancer_port(80)
        .instance_port(30080)
        .instances([
            RequestInstances::default().instance_id("a"),
            RequestInstances::default(),
        ])
        .validate()
        .unwrap_err();
    assert_eq!(err.parameter, "Instances.member.2.InstanceId");
    assert_eq!(
        err.to_string(),
        "RegisterInstancesWithLoadBalancer: required parameter Instances.member.2.InstanceId is not set"
    );
    assert_eq!(DescribeInstancesRequest::default().validate(), Ok(()));
}

const DESCRIBE_INSTANCES: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="https://computing.api.nifcloud.com/api/">
  <requestId>req-1</requestId>
  <reservationSet>
    <item>
      <instancesSet>
        <item>
          <instanceId>node1</instanceId>
          <instanceUniqueId>i-0abc1234</instanceUniqueId>
          <instanceState><code> 16 </code><name>running</name></instanceState>
          <placement><availabilityZone>east-11</availabilityZone></placement>
          <privateIpAddress>10.0.0.5</privateIpAddress>
          <launchTime>2024-06-25T16:21:47.000+09:00</launchTime>
          <AccountingType>2</AccountingType>
          <NextMonthAccountingType>1</NextMonthAccountingType>
          <amiLaunchIndex/>
          <unknownFutureElement><x>1</x></unknownFutureElement>
          <networkInterfaceSet>
            <item><niftyNetworkId>net-COMMON_PRIVATE</niftyNetworkId><privateIpAddress>10.0.0.5</privateIpAddress></item>
            <item><niftyNetworkId>net-COMMON_GLOBAL</niftyNetworkId><association><publicIp>203.0.113.5</publicIp></association></item>
          </networkInterfaceSet>
        </item>
      </instancesSet>
    </item>
  </reservationSet>
</DescribeInstancesResponse>"#;

#[test]
fn instances_reply_with_case_drift_and_empty_elements() {
    let out: DescribeInstancesResult = xml::from_str(DESCRIBE_INSTANCES).unwrap();
    assert_eq!(out.request_id(), Some("req-1"));
    assert_eq!(out.request_id.as_deref(), Some("req-1"));
    let inst = &out.reservation_set[0].instances_set[0];
    assert_eq!(inst.instance_unique_id.as_deref(), Some("i-0abc1234"));
    assert_eq!(
        inst.accounting_type.as_deref(),
        Some("2"),
        "<AccountingType> matches accountingType"
    );
    assert_eq!(inst.next_month_accounting_type.as_deref(), Some("1"));
    let state = inst.instance_state.as_ref().unwrap();
    assert_eq!((state.code, state.name.as_deref()), (Some(16), Some("running")));
    assert_eq!(
        inst.placement.as_ref().unwrap().availability_zone.as_deref(),
        Some("east-11")
    );
    assert_eq!(inst.launch_time.unwrap().to_string(), "2024-06-25T16:21:47+09:00");
    assert_eq!(
        inst.ami_launch_index.as_deref(),
        Some(""),
        "a string element stays an (empty) string"
    );
    let nets: Vec<_> = inst
        .network_interface_set
        .iter()
        .filter_map(|n| n.nifty_network_id.as_deref())
        .collect();
    assert_eq!(nets, ["net-COMMON_PRIVATE", "net-COMMON_GLOBAL"]);
    let public = inst.network_interface_set[1]
        .association
        .as_ref()
        .unwrap()
        .public_ip
        .as_deref();
    assert_eq!(public, Some("203.0.113.5"));
}

#[test]
fn elb_style_reply_with_result_wrapper() {
    let body = r#"<DescribeLoadBalancersResponse xmlns="https://computing.api.nifcloud.com/api/">
      <DescribeLoadBalancersResult><LoadBalancerDescriptions><member>
        <LoadBalancerName>lb1</LoadBalancerName><DNSName>203.0.113.9</DNSName><NetworkVolume>10</NetworkVolume>
        <ListenerDescriptions><member><Listener><LoadBalancerPort>80</LoadBalancerPort><InstancePort>30080</InstancePort></Listener></member></ListenerDescriptions>
        <HealthCheck><Target>TCP:30080</Target><Interval>10</Interval><Timeout/></HealthCheck>
        <CreatedTime>2024-06-25T07:21:47Z</CreatedTime>
      </member></LoadBalancerDescriptions></DescribeLoadBalancersResult>
      <ResponseMetadata><RequestId>req-2</RequestId></ResponseMetadata>
    </DescribeLoadBalancersResponse>"#;
    let out: <DescribeLoadBalancersRequest as Operation>::Output = xml::from_str(body).unwrap();
    assert_eq!(out.request_id(), Some("req-2"));
    let lb = &out
        .describe_load_balancers_result
        .as_ref()
        .unwrap()
        .load_balancer_descriptions[0];
    assert_eq!(lb.dns_name.as_deref(), Some("203.0.113.9"));
    assert_eq!(lb.network_volume, Some(10));
    let hc = lb.health_check.as_ref().unwrap();
    assert_eq!((hc.interval, hc.timeout), (Some(10), None));
    let listener = lb.listener_descriptions[0].listener.as_ref().unwrap();
    assert_eq!(
        (listener.load_balancer_port, listener.instance_port),
        (Some(80), Some(30080))
    );
    assert_eq!(
        out.response_metadata.as_ref().unwrap().request_id.as_deref(),
        Some("req-2")
    );
}

#[test]
fn invalid_numbers_fail_with_the_element_path() {
    let body = "<DescribeVolumesResponse><volumeSet><item><attachmentSet><item><attachTime>yesterday</attachTime></item></attachmentSet></item></volumeSet></DescribeVolumesResponse>";
    // attachTime is a string in the model: no error.
    let out: DescribeVolumesResult = xml::from_str(body).unwrap();
    assert_eq!(
        out.volume_set[0].attachment_set[0].attach_time.as_deref(),
        Some("yesterday")
    );
    let body = "<DescribeInstancesResponse><reservationSet><item><instancesSet><item><instanceState><code>x</code></instanceState></item></instancesSet></item></reservationSet></DescribeInstancesResponse>";
    let err = xml::from_str::<DescribeInstancesResult>(body).unwrap_err();
    assert_eq!(
        err.to_string(),
        "element DescribeInstancesResponse/reservationSet/item/instancesSet/item/instanceState/code: \"x\" is not a valid integer"
    );
}

#[test]
fn a_stray_sibling_in_a_list_is_never_a_phantom_entry() {
    // A `<description>` beside the entries of `<attachmentSet>` is not an attachment (read as one, it would be an
    // attachment to no server, every field empty).
    let body = r#"<DescribeVolumesResponse><requestId>r</requestId><volumeSet><item>
        <volumeId>pvc1</volumeId><status>available</status>
        <attachmentSet><description>detached</description></attachmentSet>
      </item><item>
        <volumeId>pvc2</volumeId><status>in-use</status>
        <attachmentSet><item><instanceId>node1</instanceId><device>SCSI (0:1)</device><status>attached</status></item>
          <description/></attachmentSet>
      </item><note>not a volume</note></volumeSet></DescribeVolumesResponse>"#;
    let out = xml::from_str::<DescribeVolumesResult>(body).unwrap();
    let ids: Vec<_> = out.volume_set.iter().filter_map(|v| v.volume_id.as_deref()).collect();
    assert_eq!(ids, ["pvc1", "pvc2"], "the <note> is not a volume");
    assert!(out.volume_set[0].attachment_set.is_empty(), "{:?}", out.volume_set[0]);
    let attached: Vec<_> = out.volume_set[1]
        .attachment_set
        .iter()
        .map(|a| (a.instance_id.as_deref(), a.status.as_deref()))
        .collect();
    assert_eq!(attached, [(Some("node1"), Some("attached"))]);
}

#[test]
fn a_repeated_scalar_in_a_reply_is_an_error_naming_its_path() {
    let body = "<DescribeVolumesResponse><volumeSet><item><volumeId>pvc1</volumeId>\
                <attachmentSet><item><instanceId>node1</instanceId><instanceId>node2</instanceId></item></attachmentSet>\
                </item></volumeSet></DescribeVolumesResponse>";
    let err = xml::from_str::<DescribeVolumesResult>(body).unwrap_err();
    assert_eq!(
        err.to_string(),
        "element DescribeVolumesResponse/volumeSet/item/attachmentSet/item/instanceId appears more than once with \
         different contents: \"node1\", then \"node2\""
    );
    // The same value repeated is read once.
    let body = "<DescribeVolumesResponse><volumeSet><item><volumeId>pvc1</volumeId><size>100</size><size>100</size>\
                </item></volumeSet></DescribeVolumesResponse>";
    let out = xml::from_str::<DescribeVolumesResult>(body).unwrap();
    assert_eq!(out.volume_set[0].size.as_deref(), Some("100"));
}
