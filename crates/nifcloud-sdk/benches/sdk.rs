//! SDK throughput, next to the official Python SDK doing the same work.
//!
//! - parse a `DescribeInstances` reply with 1,000 instances, a `DescribeVolumes` reply with 1,000 volumes and a
//!   `DescribeLoadBalancers` reply with 500 load balancers (XML to typed output, in one pass), with the
//!   throughput in MB/s (and, for reference, the time to build the tree alone);
//! - build, validate, serialize, sign (Signature Version 2, HmacSHA256) and form-encode 10,000 requests
//!   (a rotation of `DescribeVolumes`, `CreateVolume` and `RegisterInstancesWithLoadBalancer`).
//!
//! When the official SDK's virtualenv exists (`$NIFCLOUD_PYTHON`, else `<workspace>/.venv/bin/python`), the
//! companion `benches/python_baseline.py` times the same work on the same replies in the same run (and counts
//! the entries it read, which must match ours); the ratios are printed next to the goals (parsing >= 50x,
//! requests >= 25x, DescribeInstances >= 300 MB/s). Run with `cargo bench -p nifcloud-sdk --bench sdk`.

use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use nifcloud_sdk::Credentials;
use nifcloud_sdk::operation::Operation;
use nifcloud_sdk::signing::{SignatureMethod, sign_request};
use nifcloud_sdk::types::{
    CreateVolumeRequest, DescribeInstancesResult, DescribeLoadBalancersResultWrapper, DescribeVolumesRequest,
    DescribeVolumesResult, RegisterInstancesWithLoadBalancerRequest, RequestInstances,
};
use nifcloud_sdk::wire::Params;
use nifcloud_sdk::xml::FromXml;

const ITEMS: usize = 1_000;
const LOAD_BALANCERS: usize = 500;
const REQUESTS: usize = 10_000;
const HOST: &str = "jp-east-1.computing.api.nifcloud.com";
/// The least stretch of time over which each of our best times is taken.
const WINDOW: Duration = Duration::from_secs(2);

fn instance_item(i: usize) -> String {
    let zone = ["east-11", "east-12", "east-13", "east-14"][i % 4];
    format!(
        r#"<item><reservationId></reservationId><ownerId></ownerId><groupSet><item><groupId>fw{g}</groupId></item></groupSet><instancesSet><item>
<instanceId>node{i:04}</instanceId><instanceUniqueId>i-{i:08x}</instanceUniqueId><imageId>221</imageId><imageName>Ubuntu Server 22.04 LTS</imageName>
<instanceState><code>16</code><name>running</name></instanceState><privateDnsName>10.0.{a}.{b}</privateDnsName><dnsName>203.0.113.{b}</dnsName>
<reason/><keyName>k8skey</keyName><amiLaunchIndex/><productCodes/><instanceType>e-large8</instanceType><launchTime>2024-06-25T16:21:47.000+09:00</launchTime>
<placement><availabilityZone>{zone}</availabilityZone></placement><kernelId/><ramdiskId/><platform>ubuntu</platform><monitoring><state>disabled</state></monitoring>
<subnetId/><vpcId/><privateIpAddress>10.0.{a}.{b}</privateIpAddress><ipAddress>203.0.113.{b}</ipAddress><privateIpAddressV6/><ipAddressV6/>
<architecture>x86_64</architecture><rootDeviceType>disk</rootDeviceType><rootDeviceName/><blockDeviceMapping><item><deviceName>SCSI (0:0)</deviceName>
<ebs><volumeId>node{i:04}</volumeId><volumeUniqueId>vol-{i:08x}</volumeUniqueId><status>attached</status><attachTime>2024-06-25T16:21:47.000+09:00</attachTime>
<deleteOnTermination>true</deleteOnTermination></ebs></item><item><deviceName>SCSI (0:1)</deviceName><ebs><volumeId>pvc{i:04}</volumeId>
<volumeUniqueId>vol-{j:08x}</volumeUniqueId><status>attached</status><attachTime>2024-06-26T10:00:00.000+09:00</attachTime><deleteOnTermination>false</deleteOnTermination></ebs></item></blockDeviceMapping>
<instanceLifecycle/><spotInstanceRequestId/><accountingType>2</accountingType><nextMonthAccountingType>2</nextMonthAccountingType>
<loadbalancing><item><loadBalancerName>lb{g}</loadBalancerName><loadBalancerPort>80</loadBalancerPort><instancePort>30080</instancePort><State>InService</State></item></loadbalancing>
<copyInfo/><autoscaling/><ipType>static</ipType><niftyPrivateIpType>static</niftyPrivateIpType><hotAdd>1</hotAdd><niftySnapshotting/><niftyPrivateNetworkType>STANDARD</niftyPrivateNetworkType>
<description>kubernetes node {i}</description><tenancy>default</tenancy><isGpuConfigurable>false</isGpuConfigurable>
<networkInterfaceSet><item><networkInterfaceId>eni-{i:08x}</networkInterfaceId><subnetId/><vpcId/><description/><ownerId/><status>in-use</status>
<macAddress>00:50:56:00:{a:02x}:{b:02x}</macAddress><privateIpAddress>203.0.113.{b}</privateIpAddress><privateDnsName/><sourceDestCheck/><groupSet/>
<attachment><attachmentId/><deviceIndex>0</deviceIndex><status>attached</status><attachTime/><deleteOnTermination>true</deleteOnTermination></attachment>
<association><publicIp>203.0.113.{b}</publicIp><publicDnsName/><ipOwnerId/></association><niftyNetworkId>net-COMMON_GLOBAL</niftyNetworkId><niftyNetworkName/></item>
<item><networkInterfaceId>eni-{j:08x}</networkInterfaceId><status>in-use</status><macAddress>00:50:56:01:{a:02x}:{b:02x}</macAddress>
<privateIpAddress>10.0.{a}.{b}</privateIpAddress><attachment><deviceIndex>1</deviceIndex><status>attached</status></attachment>
<niftyNetworkId>net-COMMON_PRIVATE</niftyNetworkId></item></networkInterfaceSet></item></instancesSet></item>"#,
        g = i % 7,
        a = (i / 250) % 256,
        b = i % 250 + 1,
        j = i + 0x1000_0000,
    )
}

fn volume_item(i: usize) -> String {
    format!(
        r#"<item><volumeId>pvc{i:04}</volumeId><volumeUniqueId>vol-{i:08x}</volumeUniqueId><size>100</size><diskType>Standard Flash Storage A</diskType>
<snapshotId/><availabilityZone>east-1{z}</availabilityZone><status>in-use</status><createTime>2024-06-25T16:21:47.000+09:00</createTime>
<accountingType>2</accountingType><nextMonthAccountingType>2</nextMonthAccountingType><description>pvc-0b9c{i:04}-5b0e-4d6f-8e0f-2a5b7c9d1e3f</description>
<attachmentSet><item><volumeId>pvc{i:04}</volumeId><volumeUniqueId>vol-{i:08x}</volumeUniqueId><instanceId>node{n:04}</instanceId>
<instanceUniqueId>i-{n:08x}</instanceUniqueId><device>SCSI (0:1)</device><status>attached</status><attachTime>2024-06-26T10:00:00.000+09:00</attachTime>
<deleteOnTermination>false</deleteOnTermination></item></attachmentSet></item>"#,
        z = i % 4 + 1,
        n = i % 300,
    )
}

fn load_balancer_item(i: usize) -> String {
    let mut instances = String::new();
    let mut states = String::new();
    for n in 0..8 {
        let node = (i * 8 + n) % 200;
        instances.push_str(&format!(
            "<member><InstanceId>node{node:04}</InstanceId><InstanceUniqueId>i-{node:08x}</InstanceUniqueId></member>"
        ));
        states.push_str(&format!(
            "<member><InstanceId>node{node:04}</InstanceId><InstanceUniqueId>i-{node:08x}</InstanceUniqueId><State>InService</State>\
             <ReasonCode>N/A</ReasonCode><Description>N/A</Description></member>"
        ));
    }
    format!(
        r#"<member><LoadBalancerName>k8s{i:05}</LoadBalancerName><DNSName>203.0.113.{b}</DNSName><NetworkVolume>10</NetworkVolume>
<ListenerDescriptions><member><Listener><Protocol>TCP</Protocol><LoadBalancerPort>{port}</LoadBalancerPort><InstancePort>{np}</InstancePort><BalancingType>1</BalancingType>
<SSLCertificateId/></Listener></member></ListenerDescriptions><PolicyType>standard</PolicyType>
<Policies><AppCookieStickinessPolicies/><LBCookieStickinessPolicies/></Policies><AvailabilityZones><member>east-11</member></AvailabilityZones>
<Instances>{instances}</Instances><HealthCheck><Target>TCP:{np}</Target><Interval>10</Interval><Timeout>5</Timeout><UnhealthyThreshold>3</UnhealthyThreshold>
<HealthyThreshold>1</HealthyThreshold><InstanceStates>{states}</InstanceStates></HealthCheck>
<Filter><FilterType>1</FilterType><IPAddresses><member><IPAddress>*.*.*.*</IPAddress></member></IPAddresses></Filter>
<CreatedTime>2024-06-25T07:21:47.000Z</CreatedTime><AccountingType>2</AccountingType><NextMonthAccountingType>2</NextMonthAccountingType>
<Option><SessionStickinessPolicy><Enabled>false</Enabled><ExpirationPeriod/></SessionStickinessPolicy><SorryPage><Enabled>false</Enabled><StatusCode/></SorryPage></Option>
<Description>kubernetes service default/svc-{i}</Description></member>"#,
        b = i % 250 + 1,
        port = 80 + i % 3,
        np = 30000 + i % 2000,
    )
}

fn elb_reply(root: &str, result: &str, list: &str, items: impl Iterator<Item = String>) -> String {
    let mut body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{root}Response xmlns=\"https://computing.api.nifcloud.com/api/\">\n<{result}><{list}>"
    );
    for item in items {
        body.push_str(&item);
    }
    body.push_str(&format!(
        "</{list}></{result}>\n<ResponseMetadata><RequestId>5ec8a1b2-bench</RequestId></ResponseMetadata>\n</{root}Response>\n"
    ));
    body
}

fn reply(root: &str, list: &str, items: impl Iterator<Item = String>) -> String {
    let mut body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{root} xmlns=\"https://computing.api.nifcloud.com/api/\">\n<requestId>5ec8a1b2-bench</requestId>\n<{list}>"
    );
    for item in items {
        body.push_str(&item);
    }
    body.push_str(&format!("</{list}>\n</{root}>\n"));
    body
}

/// The shortest of at least `runs` runs of `f`, repeated until they span [`WINDOW`] too: the Python script takes its
/// best runs over the same stretch of this (shared, noisy) machine.
fn time_best<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    let mut best = Duration::MAX;
    let began = Instant::now();
    let mut done = 0;
    while done < runs || began.elapsed() < WINDOW {
        let start = Instant::now();
        black_box(f());
        best = best.min(start.elapsed());
        done += 1;
    }
    best
}

fn parse<T: FromXml>(body: &str) -> T {
    nifcloud_sdk::xml::from_str(body).expect("bench reply parses")
}

fn signed_body<O: Operation>(op: &O, creds: &Credentials, now: time::OffsetDateTime) -> String {
    op.validate().expect("bench input is valid");
    let mut params = Params::with_capacity(16);
    params.push("Action", O::ACTION);
    params.push("Version", "3.0");
    op.serialize(&mut params);
    sign_request(&params, creds, SignatureMethod::HmacSha256, HOST, "/api/", now)
}

fn requests(creds: &Credentials) -> usize {
    let now = time::OffsetDateTime::now_utc();
    let mut bytes = 0;
    for i in 0..REQUESTS {
        let body = match i % 3 {
            0 => signed_body(
                &DescribeVolumesRequest::default().volume_id([format!("pvc{i:04}"), "vol 02/日本".to_owned()]),
                creds,
                now,
            ),
            1 => signed_body(
                &CreateVolumeRequest::default()
                    .size(100)
                    .disk_type("8")
                    .instance_id(format!("node{:04}", i % 300))
                    .accounting_type("2")
                    .description(format!("pvc-{i:08x}")),
                creds,
                now,
            ),
            _ => signed_body(
                &RegisterInstancesWithLoadBalancerRequest::default()
                    .load_balancer_name("lb1")
                    .load_balancer_port(80)
                    .instance_port(30080)
                    .instances((0..3).map(|n| RequestInstances::default().instance_id(format!("node{n:04}")))),
                creds,
                now,
            ),
        };
        bytes += body.len();
    }
    bytes
}

fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NIFCLOUD_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    venv.exists().then_some(venv)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One reply parsed by both SDKs.
struct ParseCase {
    /// The operation (also the key the Python script prints).
    op: &'static str,
    /// What the reply lists, for the report.
    unit: &'static str,
    body: String,
    /// Entries the typed output holds (checked against the Python SDK's count).
    count: usize,
    /// Best time of our typed parse.
    rust: Duration,
}

/// Parses `body` into `T` once to count its entries with `count`, then times it.
fn parse_case<T: FromXml>(
    op: &'static str,
    unit: &'static str,
    body: String,
    count: impl Fn(&T) -> usize,
) -> ParseCase {
    let count = count(&parse::<T>(&body));
    let rust = time_best(20, || parse::<T>(&body));
    ParseCase {
        op,
        unit,
        body,
        count,
        rust,
    }
}

fn mb_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn main() {
    let creds = Credentials::new("AKIDEXAMPLE", "secret-for-benchmarks-only");
    let cases = [
        parse_case::<DescribeInstancesResult>(
            "DescribeInstances",
            "instances",
            reply(
                "DescribeInstancesResponse",
                "reservationSet",
                (0..ITEMS).map(instance_item),
            ),
            |out| out.reservation_set.iter().map(|r| r.instances_set.len()).sum(),
        ),
        parse_case::<DescribeVolumesResult>(
            "DescribeVolumes",
            "volumes",
            reply("DescribeVolumesResponse", "volumeSet", (0..ITEMS).map(volume_item)),
            |out| out.volume_set.len(),
        ),
        parse_case::<DescribeLoadBalancersResultWrapper>(
            "DescribeLoadBalancers",
            "load balancers",
            elb_reply(
                "DescribeLoadBalancers",
                "DescribeLoadBalancersResult",
                "LoadBalancerDescriptions",
                (0..LOAD_BALANCERS).map(load_balancer_item),
            ),
            |out| {
                out.describe_load_balancers_result
                    .as_ref()
                    .map_or(0, |r| r.load_balancer_descriptions.len())
            },
        ),
    ];
    assert_eq!(cases[0].count, ITEMS, "every instance parsed");
    assert_eq!(cases[1].count, ITEMS, "every volume parsed");
    assert_eq!(cases[2].count, LOAD_BALANCERS, "every load balancer parsed");
    // For reference: the tree alone (what error documents and `call_raw` use), without the typed output.
    let tree = time_best(20, || nifcloud_sdk::xml::parse(&cases[0].body).expect("well-formed"));
    let t_req = time_best(5, || requests(&creds));

    println!(
        "nifcloud-sdk benchmark (best run of at least {} s of runs)",
        WINDOW.as_secs()
    );
    // Timings, and the ratios to a Python run made later, move with what else the machine is doing.
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let averages: Vec<&str> = load.split_whitespace().take(3).collect();
        println!("  machine load (1, 5, 15-minute averages): {}", averages.join(", "));
    }
    for c in &cases {
        println!(
            "  parse {:<22} {:>5} {:<15} ({:>5} KiB): {:>8.2} ms, {:>6.0} MB/s",
            c.op,
            c.count,
            c.unit,
            c.body.len() / 1024,
            millis(c.rust),
            mb_per_s(c.body.len(), c.rust)
        );
    }
    println!(
        "  (tree only, DescribeInstances, no typed output:             {:>8.2} ms, {:>6.0} MB/s)",
        millis(tree),
        mb_per_s(cases[0].body.len(), tree)
    );
    println!(
        "  serialize+sign+encode {REQUESTS} requests: {:>8.2} ms ({:.2} us/request)",
        millis(t_req),
        t_req.as_secs_f64() * 1e6 / REQUESTS as f64
    );
    let inst = &cases[0];
    let inst_mb = mb_per_s(inst.body.len(), inst.rust);
    println!(
        "  goal: DescribeInstances at >= 300 MB/s: {inst_mb:.0} MB/s, {}",
        if inst_mb >= 300.0 { "met" } else { "NOT met" }
    );

    let Some(py) = python() else {
        println!("python baseline skipped: no official SDK virtualenv (set NIFCLOUD_PYTHON)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("nifcloud-sdk-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/python_baseline.py");
    let mut cmd = Command::new(&py);
    cmd.arg(&script).arg(REQUESTS.to_string());
    for c in &cases {
        let path = dir.join(format!("{}.xml", c.op));
        std::fs::write(&path, &c.body).expect("write reply");
        cmd.arg(format!("{}={}", c.op, path.display()));
    }
    let out = cmd.output();
    let _ = std::fs::remove_dir_all(&dir);
    let out = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => {
            println!("python baseline failed: {}", String::from_utf8_lossy(&o.stderr).trim());
            return;
        }
        Err(e) => {
            println!("python baseline could not run ({}): {e}", py.display());
            return;
        }
    };
    let field = |name: &str| -> Option<f64> {
        out.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('=')?.trim().parse().ok())
    };
    println!(
        "official Python SDK (nifcloud 1.17.0, same replies and requests, best run of at least {} s of runs)",
        WINDOW.as_secs()
    );
    let mut all_met = true;
    for c in &cases {
        let (Some(ms), Some(count)) = (field(&format!("parse_{}_ms", c.op)), field(&format!("count_{}", c.op))) else {
            println!("python baseline printed nothing usable for {}:\n{out}", c.op);
            return;
        };
        assert_eq!(
            count as usize, c.count,
            "{}: both SDKs read the same number of entries",
            c.op
        );
        let ratio = ms / millis(c.rust);
        all_met &= ratio >= 50.0;
        println!(
            "  parse {:<22} {ms:>9.2} ms ({} {}) -> Rust is {ratio:.1}x faster (goal >= 50x: {})",
            c.op,
            count,
            c.unit,
            if ratio >= 50.0 { "met" } else { "NOT met" }
        );
    }
    let Some(p_req) = field("requests_ms") else {
        println!("python baseline printed no requests_ms:\n{out}");
        return;
    };
    let req_ratio = p_req / millis(t_req);
    println!(
        "  {REQUESTS} requests:                  {p_req:>9.2} ms -> Rust is {req_ratio:.1}x faster (goal >= 25x: {})",
        if req_ratio >= 25.0 { "met" } else { "NOT met" }
    );
    println!(
        "goals: {}",
        if all_met && req_ratio >= 25.0 && inst_mb >= 300.0 {
            "all met"
        } else {
            "NOT all met"
        }
    );
}
