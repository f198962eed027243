//! SDK throughput, next to the official Python SDK doing the same work.
//!
//! - parse a `DescribeInstances` reply with 1,000 instances and a `DescribeVolumes` reply with 1,000 volumes
//!   (XML to typed output);
//! - build, validate, serialize, sign (Signature Version 2, HmacSHA256) and form-encode 10,000 requests
//!   (a rotation of `DescribeVolumes`, `CreateVolume` and `RegisterInstancesWithLoadBalancer`).
//!
//! When the official SDK's virtualenv exists (`$NIFCLOUD_PYTHON`, else `<workspace>/.venv/bin/python`), the
//! companion `benches/python_baseline.py` times the same work on the same replies in the same run and the
//! ratios are printed. Run with `cargo bench -p nifcloud-sdk --bench sdk`.

use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use nifcloud_sdk::Credentials;
use nifcloud_sdk::operation::Operation;
use nifcloud_sdk::signing::{SignatureMethod, sign_request};
use nifcloud_sdk::types::{
    CreateVolumeRequest, DescribeInstancesResult, DescribeVolumesRequest, DescribeVolumesResult,
    RegisterInstancesWithLoadBalancerRequest, RequestInstances,
};
use nifcloud_sdk::wire::Params;
use nifcloud_sdk::xml::FromXml;

const ITEMS: usize = 1_000;
const REQUESTS: usize = 10_000;
const HOST: &str = "jp-east-1.computing.api.nifcloud.com";

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

fn time_best<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let start = Instant::now();
        black_box(f());
        best = best.min(start.elapsed());
    }
    best
}

fn parse<T: FromXml>(body: &str) -> T {
    let root = nifcloud_sdk::xml::parse(body).expect("bench reply is well-formed");
    T::from_xml(&root).expect("bench reply parses")
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

fn main() {
    let instances = reply(
        "DescribeInstancesResponse",
        "reservationSet",
        (0..ITEMS).map(instance_item),
    );
    let volumes = reply("DescribeVolumesResponse", "volumeSet", (0..ITEMS).map(volume_item));
    let creds = Credentials::new("AKIDEXAMPLE", "secret-for-benchmarks-only");

    let parsed: DescribeInstancesResult = parse(&instances);
    let count: usize = parsed.reservation_set.iter().map(|r| r.instances_set.len()).sum();
    assert_eq!(count, ITEMS, "every instance parsed");
    let parsed: DescribeVolumesResult = parse(&volumes);
    assert_eq!(parsed.volume_set.len(), ITEMS, "every volume parsed");

    let t_inst = time_best(10, || parse::<DescribeInstancesResult>(&instances));
    let t_vol = time_best(10, || parse::<DescribeVolumesResult>(&volumes));
    let t_req = time_best(5, || requests(&creds));
    println!("nifcloud-sdk benchmark (best of several runs)");
    println!(
        "  parse DescribeInstances, {ITEMS} instances ({} KiB): {:>9.2} ms",
        instances.len() / 1024,
        millis(t_inst)
    );
    println!(
        "  parse DescribeVolumes, {ITEMS} volumes ({} KiB):     {:>9.2} ms",
        volumes.len() / 1024,
        millis(t_vol)
    );
    println!(
        "  serialize+sign+encode {REQUESTS} requests:          {:>9.2} ms ({:.2} us/request)",
        millis(t_req),
        t_req.as_secs_f64() * 1e6 / REQUESTS as f64
    );

    let Some(py) = python() else {
        println!("python baseline skipped: no official SDK virtualenv (set NIFCLOUD_PYTHON)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("nifcloud-sdk-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (inst_path, vol_path) = (dir.join("instances.xml"), dir.join("volumes.xml"));
    std::fs::write(&inst_path, &instances).expect("write reply");
    std::fs::write(&vol_path, &volumes).expect("write reply");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/python_baseline.py");
    let out = Command::new(&py)
        .arg(&script)
        .arg(&inst_path)
        .arg(&vol_path)
        .arg(REQUESTS.to_string())
        .output();
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
            .find_map(|l| l.strip_prefix(name)?.trim().strip_prefix('=')?.trim().parse().ok())
    };
    let (Some(p_inst), Some(p_vol), Some(p_req)) = (field("instances_ms"), field("volumes_ms"), field("requests_ms"))
    else {
        println!("python baseline printed nothing usable:\n{out}");
        return;
    };
    println!("official Python SDK (nifcloud 1.17.0, same replies and requests, best of several runs)");
    println!(
        "  parse DescribeInstances: {p_inst:>9.2} ms  -> Rust is {:.1}x faster",
        p_inst / millis(t_inst)
    );
    println!(
        "  parse DescribeVolumes:   {p_vol:>9.2} ms  -> Rust is {:.1}x faster",
        p_vol / millis(t_vol)
    );
    println!(
        "  {REQUESTS} requests:         {p_req:>9.2} ms  -> Rust is {:.1}x faster",
        p_req / millis(t_req)
    );
}
