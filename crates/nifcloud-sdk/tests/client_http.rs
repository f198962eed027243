//! The client's HTTP behaviour against a scripted server (wiremock): signing on the wire, retries and backoff,
//! error classification, and cancellation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use nifcloud_sdk::metrics::{MetricsHook, Outcome};
use nifcloud_sdk::retry::RetryConfig;
use nifcloud_sdk::signing::{SignatureMethod, canonical_query, signature, string_to_sign};
use nifcloud_sdk::wire::Params;
use nifcloud_sdk::{Client, Config, Credentials, ErrorKind};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const OK: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeVolumesResponse xmlns="https://computing.api.nifcloud.com/api/"><requestId>rid-ok</requestId><volumeSet/></DescribeVolumesResponse>"#;

fn error_doc(code: &str) -> String {
    format!(
        "<Response><Errors><Error><Code>{code}</Code><Message>m</Message></Error></Errors><RequestID>rid-err</RequestID></Response>"
    )
}

fn client(server: &MockServer, attempts: u32) -> Client {
    let config = Config::builder()
        .region_name("jp-east-1")
        .endpoint(format!("{}/api/", server.uri()))
        .credentials(Credentials::new("AKID", "SECRET"))
        .retry(RetryConfig {
            max_attempts: attempts,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(40),
        })
        .build()
        .unwrap();
    Client::new(config).unwrap()
}

/// Answers with the given replies in order, then repeats the last one.
struct Script(Vec<ResponseTemplate>, AtomicU32);
impl Respond for Script {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let i = self.1.fetch_add(1, Ordering::SeqCst) as usize;
        self.0[i.min(self.0.len() - 1)].clone()
    }
}
fn script(replies: Vec<ResponseTemplate>) -> Script {
    Script(replies, AtomicU32::new(0))
}

#[tokio::test]
async fn the_request_is_signed_form_post_that_the_server_can_verify() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/"))
        .respond_with(ResponseTemplate::new(200).set_body_string(OK))
        .mount(&server)
        .await;
    let mut params = Params::new();
    params.push("VolumeId.1", "vol 01");
    let (_, rid) = client(&server, 1).call_raw("DescribeVolumes", params).await.unwrap();
    assert_eq!(rid.as_deref(), Some("rid-ok"));

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let req = &requests[0];
    assert_eq!(
        req.headers.get("content-type").unwrap(),
        "application/x-www-form-urlencoded; charset=utf-8"
    );
    let fields: Vec<(String, String)> = form_urlencoded::parse(&req.body).into_owned().collect();
    let get = |k: &str| fields.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(get("Action"), "DescribeVolumes");
    assert_eq!(get("Version"), "3.0");
    assert_eq!(get("VolumeId.1"), "vol 01");
    assert_eq!(get("SignatureVersion"), "2");
    assert_eq!(get("SignatureMethod"), "HmacSHA256");
    // Verify as a server would: decode, re-encode, sort, sign with the shared secret.
    let host = server.address().to_string();
    let query = canonical_query(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let expected = signature(
        SignatureMethod::HmacSha256,
        "SECRET",
        &string_to_sign(&host, "/api/", &query),
    );
    assert_eq!(get("Signature"), expected);
}

#[tokio::test]
async fn busy_replies_are_retried_until_success() {
    let server = MockServer::start().await;
    let replies = vec![
        ResponseTemplate::new(400).set_body_string(error_doc("Server.ResourceIncorrectState.SecurityGroup.Processing")),
        ResponseTemplate::new(503).set_body_string("Service Unavailable"),
        ResponseTemplate::new(200).set_body_string(OK),
    ];
    Mock::given(method("POST"))
        .respond_with(script(replies))
        .expect(3)
        .mount(&server)
        .await;
    client(&server, 5)
        .call_raw("AuthorizeSecurityGroupIngress", Params::new())
        .await
        .unwrap();
}

#[tokio::test]
async fn retries_stop_after_max_attempts_and_keep_the_last_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string(error_doc("Server.ServiceUnavailable")))
        .expect(3)
        .mount(&server)
        .await;
    let err = client(&server, 3)
        .call_raw("DescribeVolumes", Params::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(err.code(), Some("Server.ServiceUnavailable"));
    assert_eq!(err.request_id(), Some("rid-err"));
}

#[tokio::test]
async fn ambiguous_failures_of_mutating_calls_are_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(504).set_body_string("gateway timeout"))
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server, 5)
        .call_raw("CreateVolume", Params::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(err.code(), Some("HTTP.504"));
}

#[tokio::test]
async fn client_errors_are_classified_and_never_retried() {
    let server = MockServer::start().await;
    let cases = [
        (
            "DeleteVolume",
            "Client.InvalidParameterNotFound.Volume",
            ErrorKind::NotFound,
        ),
        (
            "CreateLoadBalancer",
            "Client.InvalidParameterDuplicate.LoadBalancer",
            ErrorKind::Duplicate,
        ),
        (
            "AttachVolume",
            "Server.Inoperable.Volume.AlreadyAttached",
            ErrorKind::Inoperable,
        ),
    ];
    for (action, code, kind) in cases {
        server.reset().await;
        Mock::given(method("POST"))
            .and(body_string_contains(format!("Action={action}")))
            .respond_with(ResponseTemplate::new(400).set_body_string(error_doc(code)))
            .expect(1)
            .mount(&server)
            .await;
        let err = client(&server, 5).call_raw(action, Params::new()).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{action}");
        assert_eq!(err.api().unwrap().status, 400);
        assert!(err.to_string().contains(code));
        server.verify().await;
    }
}

#[tokio::test]
async fn dropping_a_call_cancels_it_during_backoff() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("busy"))
        .mount(&server)
        .await;
    let config = Config::builder()
        .region_name("jp-east-1")
        .endpoint(format!("{}/api/", server.uri()))
        .credentials(Credentials::new("AKID", "SECRET"))
        .retry(RetryConfig {
            max_attempts: 10,
            initial_backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(30),
        })
        .build()
        .unwrap();
    let client = Client::new(config).unwrap();
    let started = std::time::Instant::now();
    let r = tokio::time::timeout(
        Duration::from_millis(500),
        client.call_raw("DescribeVolumes", Params::new()),
    )
    .await;
    r.expect_err("the caller's 500 ms timeout ends the call while it backs off for 30 s");
    assert!(started.elapsed() < Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1,
        "no request after the drop"
    );
}

#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<(String, String, u32)>>);
impl MetricsHook for Recorder {
    fn record(&self, action: &str, outcome: Outcome<'_>, attempts: u32, _latency: Duration) {
        self.0
            .lock()
            .unwrap()
            .push((action.to_owned(), outcome.label().to_owned(), attempts));
    }
}

#[tokio::test]
async fn the_metrics_hook_sees_each_call_once_with_its_attempts() {
    let server = MockServer::start().await;
    let replies = vec![
        ResponseTemplate::new(429).set_body_string("slow down"),
        ResponseTemplate::new(200).set_body_string(OK),
    ];
    Mock::given(method("POST"))
        .respond_with(script(replies))
        .mount(&server)
        .await;
    let recorder = Arc::new(Recorder::default());
    let config = Config::builder()
        .region_name("jp-east-1")
        .endpoint(format!("{}/api/", server.uri()))
        .credentials(Credentials::new("AKID", "SECRET"))
        .retry(RetryConfig {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(5),
        })
        .metrics(recorder.clone())
        .build()
        .unwrap();
    Client::new(config)
        .unwrap()
        .call_raw("DescribeInstances", Params::new())
        .await
        .unwrap();
    assert_eq!(
        *recorder.0.lock().unwrap(),
        vec![("DescribeInstances".to_owned(), "success".to_owned(), 2)]
    );
}

#[tokio::test]
async fn derived_clients_change_only_their_policy() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("busy"))
        .mount(&server)
        .await;
    let base = client(&server, 4);
    let once = base.with_retry(RetryConfig::disabled());
    let err = once.call_raw("DescribeVolumes", Params::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1,
        "no retry on the derived client"
    );
    base.call_raw("DescribeVolumes", Params::new()).await.unwrap_err();
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        5,
        "the original still retries 3 more times"
    );

    let recorder = Arc::new(Recorder::default());
    let measured = once.with_metrics(recorder.clone());
    measured.call_raw("DescribeInstances", Params::new()).await.unwrap_err();
    assert_eq!(
        *recorder.0.lock().unwrap(),
        vec![("DescribeInstances".to_owned(), "HTTP.503".to_owned(), 1)]
    );
    assert_eq!(measured.config().endpoint(), base.config().endpoint());
}

#[tokio::test]
async fn a_truncated_error_document_keeps_its_code_or_names_the_status_and_the_body() {
    let server = MockServer::start().await;
    let full = error_doc("Client.InvalidParameterNotFound.Volume");
    let cut_after_code = full[..full.find("<Message>").unwrap() + 3].to_owned();
    let cut_in_code = full[..full.find("NotFound").unwrap()].to_owned();
    Mock::given(method("POST"))
        .respond_with(script(vec![
            ResponseTemplate::new(400).set_body_string(cut_after_code),
            ResponseTemplate::new(400).set_body_string(cut_in_code.clone()),
        ]))
        .mount(&server)
        .await;
    let c = client(&server, 1);
    let err = c.call_raw("DeleteVolume", Params::new()).await.unwrap_err();
    assert_eq!(err.code(), Some("Client.InvalidParameterNotFound.Volume"));
    assert!(err.is_not_found());
    let err = c.call_raw("DeleteVolume", Params::new()).await.unwrap_err();
    assert_eq!(err.code(), Some("HTTP.400"));
    assert_eq!(
        err.api().unwrap().message,
        format!("HTTP 400 without a readable error document; the body starts: {cut_in_code:?}")
    );
}

fn lb_listing(names: &[&str]) -> String {
    let members: String = names
        .iter()
        .map(|n| {
            format!(
                "<member><LoadBalancerName>{n}</LoadBalancerName><Instances><member><InstanceId>web1</InstanceId></member>\
                 </Instances></member>"
            )
        })
        .collect();
    format!(
        "<DescribeLoadBalancersResponse><DescribeLoadBalancersResult><LoadBalancerDescriptions>{members}\
         </LoadBalancerDescriptions></DescribeLoadBalancersResult><ResponseMetadata><RequestId>rid-lb</RequestId>\
         </ResponseMetadata></DescribeLoadBalancersResponse>"
    )
}

#[tokio::test]
async fn a_folded_listing_hands_over_the_same_entries_as_the_whole_reply_once_per_successful_attempt() {
    use nifcloud_sdk::types::{DescribeLoadBalancersRequest, LoadBalancerDescriptions};
    let server = MockServer::start().await;
    let listing = lb_listing(&["a", "b", "c"]);
    let replies = vec![
        ResponseTemplate::new(503).set_body_string("Service Unavailable"),
        ResponseTemplate::new(200).set_body_string(listing.clone()),
    ];
    Mock::given(method("POST"))
        .respond_with(script(replies))
        .expect(3)
        .mount(&server)
        .await;
    let client = client(&server, 3);
    let op = DescribeLoadBalancersRequest::default();
    let whole = client.send(&op).await.unwrap();
    let inits = AtomicU32::new(0);
    let folded = client
        .send_folded(
            &op,
            &["DescribeLoadBalancersResult", "LoadBalancerDescriptions"],
            || {
                inits.fetch_add(1, Ordering::SeqCst);
                Vec::new()
            },
            |all: &mut Vec<LoadBalancerDescriptions>, lb| all.push(lb),
        )
        .await
        .unwrap();
    let names: Vec<_> = folded.iter().filter_map(|l| l.load_balancer_name.as_deref()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(
        Some(folded),
        whole
            .describe_load_balancers_result
            .map(|r| r.load_balancer_descriptions)
    );
    assert_eq!(
        inits.load(Ordering::SeqCst),
        1,
        "one accumulator for the one reply read"
    );
}

#[tokio::test]
async fn a_folded_listing_cut_short_is_a_parse_error_not_a_shorter_list() {
    use nifcloud_sdk::types::{DescribeLoadBalancersRequest, LoadBalancerDescriptions};
    let server = MockServer::start().await;
    let listing = lb_listing(&["a", "b"]);
    let cut = listing[..listing.find("</LoadBalancerDescriptions>").unwrap()].to_owned();
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string(cut))
        .mount(&server)
        .await;
    let err = client(&server, 1)
        .send_folded(
            &DescribeLoadBalancersRequest::default(),
            &["DescribeLoadBalancersResult", "LoadBalancerDescriptions"],
            Vec::new,
            |all: &mut Vec<LoadBalancerDescriptions>, lb| all.push(lb),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, nifcloud_sdk::Error::Parse { source: nifcloud_sdk::xml::XmlError::Syntax { message, .. }, .. }
            if message.contains("end of document")),
        "{err:?}"
    );
}
