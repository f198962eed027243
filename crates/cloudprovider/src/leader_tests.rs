use super::*;
use crate::testing::mock::{ApiMock, json_response, status_response};
use http::Method;

fn spec(holder: Option<&str>, secs: Option<i32>) -> LeaseSpec {
    LeaseSpec {
        holder_identity: holder.map(Into::into),
        lease_duration_seconds: secs,
        lease_transitions: Some(3),
        acquire_time: Some(MicroTime(Timestamp::UNIX_EPOCH)),
        ..LeaseSpec::default()
    }
}

#[test]
fn decide_table() {
    let t0 = Instant::now();
    let later = |s| t0 + Duration::from_secs(s);
    let d15 = Duration::from_secs(15);
    let other = spec(Some("other"), Some(15));
    let mine = spec(Some("me"), Some(15));
    let released = spec(None, Some(1));
    let empty_holder = spec(Some(""), Some(15));
    let no_duration = spec(Some("other"), None);
    let table: [(&str, Option<&LeaseSpec>, Instant, Decision); 9] = [
        ("no lease", None, t0, Decision::Create),
        ("we hold it", Some(&mine), later(100), Decision::Renew),
        ("released", Some(&released), t0, Decision::TakeOver),
        ("empty holder", Some(&empty_holder), t0, Decision::TakeOver),
        ("other holder, fresh", Some(&other), later(5), Decision::Wait),
        (
            "other holder, just before expiry",
            Some(&other),
            later(14),
            Decision::Wait,
        ),
        (
            "other holder, expired on our clock",
            Some(&other),
            later(15),
            Decision::TakeOver,
        ),
        (
            "no duration in lease: use ours (fresh)",
            Some(&no_duration),
            later(10),
            Decision::Wait,
        ),
        (
            "no duration in lease: use ours (expired)",
            Some(&no_duration),
            later(16),
            Decision::TakeOver,
        ),
    ];
    for (what, s, now, expected) in table {
        assert_eq!(decide(s, t0, now, "me", d15), expected, "{what}");
    }
}

#[test]
fn observer_moves_only_on_change() {
    let t0 = Instant::now();
    let mut o = Observer::default();
    let a = spec(Some("other"), Some(15));
    o.observe(Some(&a), t0);
    o.observe(Some(&a), t0 + Duration::from_secs(10));
    assert_eq!(
        o.observed_at(),
        Some(t0),
        "same record: a holder that stopped renewing keeps aging"
    );
    let mut renewed = a.clone();
    renewed.renew_time = Some(MicroTime(Timestamp::UNIX_EPOCH));
    o.observe(Some(&renewed), t0 + Duration::from_secs(12));
    assert_eq!(
        o.observed_at(),
        Some(t0 + Duration::from_secs(12)),
        "renewed: the clock restarts"
    );
}

#[test]
fn renew_verdict_table() {
    let t0 = Instant::now();
    let d = Duration::from_secs(10);
    for (after, expected) in [
        (0, RenewVerdict::Keep),
        (9, RenewVerdict::Keep),
        (10, RenewVerdict::Lost),
        (30, RenewVerdict::Lost),
    ] {
        assert_eq!(
            renew_verdict(t0, t0 + Duration::from_secs(after), d),
            expected,
            "{after}s"
        );
    }
}

#[test]
fn next_spec_keeps_or_bumps_transitions() {
    let now = Timestamp::UNIX_EPOCH + k8s_openapi::jiff::SignedDuration::from_secs(1000);
    let old = spec(Some("me"), Some(15));
    let renew = next_spec(Decision::Renew, Some(&old), "me", Duration::from_secs(15), now);
    assert_eq!(renew.lease_transitions, Some(3));
    assert_eq!(renew.acquire_time, old.acquire_time, "renew keeps acquireTime");
    assert_eq!(renew.renew_time, Some(MicroTime(now)));
    let take = next_spec(
        Decision::TakeOver,
        Some(&spec(Some("other"), Some(15))),
        "me",
        Duration::from_secs(15),
        now,
    );
    assert_eq!(take.lease_transitions, Some(4));
    assert_eq!(take.holder_identity.as_deref(), Some("me"));
    assert_eq!(take.acquire_time, Some(MicroTime(now)));
    let create = next_spec(Decision::Create, None, "me", Duration::from_secs(15), now);
    assert_eq!(create.lease_transitions, Some(0));
    assert_eq!(create.lease_duration_seconds, Some(15));
}

#[test]
fn identity_has_host_and_suffix() {
    let id = default_identity();
    let (host, suffix) = id.rsplit_once('_').unwrap();
    assert!(!host.is_empty());
    assert_eq!(suffix.len(), 16);
    assert_ne!(default_identity(), id, "two processes on one host differ");
}

fn config() -> LeaderElectionConfig {
    LeaderElectionConfig {
        namespace: "kube-system".into(),
        name: "cloud-controller-manager".into(),
        identity: "me".into(),
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_secs(2),
    }
}

const LEASE_PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/cloud-controller-manager";

fn lease_json(holder: &str, rv: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "cloud-controller-manager", "namespace": "kube-system", "resourceVersion": rv},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "leaseTransitions": 2,
                 "renewTime": "2026-01-01T00:00:00.000000Z"}
    })
}

#[tokio::test]
async fn creates_missing_lease() {
    let (client, mut mock) = ApiMock::new();
    let task = tokio::spawn(async move {
        let mut e = LeaderElector::new(client, config());
        e.try_acquire_or_renew().await
    });
    let (req, body) = mock.next().await;
    assert_eq!((req.method().clone(), req.uri().path()), (Method::GET, LEASE_PATH));
    mock.respond(status_response(404, "NotFound"));
    let _ = body;
    let (req, body) = mock.next().await;
    assert_eq!(req.method(), Method::POST);
    assert_eq!(
        req.uri().path(),
        "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"
    );
    assert_eq!(body["spec"]["holderIdentity"], "me");
    assert_eq!(body["spec"]["leaseTransitions"], 0);
    mock.respond(json_response(201, &body));
    assert!(task.await.unwrap());
}

#[tokio::test]
async fn waits_for_valid_foreign_lease_then_takes_over_with_resource_version() {
    tokio::time::pause();
    let (client, mut mock) = ApiMock::new();
    let mut elector = LeaderElector::new(client, config());
    // First look: held by another, freshly observed → wait, no write.
    let first = tokio::spawn(async move {
        let r = elector.try_acquire_or_renew().await;
        (elector, r)
    });
    let (req, _) = mock.next().await;
    assert_eq!(req.method(), Method::GET);
    mock.respond(json_response(200, &lease_json("other", "41")));
    let (mut elector, acquired) = first.await.unwrap();
    assert!(!acquired);
    mock.assert_idle().await;

    // The holder has not renewed (same record) for longer than the lease duration: take over.
    let observed = elector.observer.observed_at().unwrap();
    elector.observer.at = Some(observed.checked_sub(Duration::from_secs(16)).unwrap_or(observed));
    let second = tokio::spawn(async move { elector.try_acquire_or_renew().await });
    let (req, _) = mock.next().await;
    assert_eq!(req.method(), Method::GET);
    mock.respond(json_response(200, &lease_json("other", "41")));
    let (req, body) = mock.next().await;
    assert_eq!((req.method().clone(), req.uri().path()), (Method::PUT, LEASE_PATH));
    assert_eq!(
        body["metadata"]["resourceVersion"], "41",
        "the write is guarded by the version we read"
    );
    assert_eq!(body["spec"]["holderIdentity"], "me");
    assert_eq!(body["spec"]["leaseTransitions"], 3);
    mock.respond(json_response(200, &body));
    assert!(second.await.unwrap());
}

#[tokio::test]
async fn conflict_means_not_leader() {
    let (client, mut mock) = ApiMock::new();
    let task = tokio::spawn(async move {
        let mut e = LeaderElector::new(client, config());
        e.try_acquire_or_renew().await
    });
    let (_, _) = mock.next().await;
    mock.respond(json_response(200, &lease_json("", "7")));
    let (req, _) = mock.next().await;
    assert_eq!(req.method(), Method::PUT);
    mock.respond(status_response(409, "Conflict"));
    assert!(!task.await.unwrap());
}

#[tokio::test]
async fn leader_that_cannot_renew_loses_after_deadline() {
    tokio::time::pause();
    let (client, mut mock) = ApiMock::new();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(async move {
        let mut e = LeaderElector::new(client, config());
        e.hold(&shutdown).await
    });
    // Every renewal attempt fails with a server error until the deadline.
    let mut attempts = 0;
    while !task.is_finished() {
        if let Some((req, _)) = mock.try_next(Duration::from_secs(3)).await {
            assert_eq!(req.method(), Method::GET);
            mock.respond(status_response(500, "InternalError"));
            attempts += 1;
        }
    }
    let result = task.await.unwrap();
    assert!(matches!(result, Err(LeaderError::Lost { .. })), "{result:?}");
    assert!(
        (4..=6).contains(&attempts),
        "renewed every 2 s for 10 s: {attempts} attempts"
    );
}
