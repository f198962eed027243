use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method};
use serde_json::json;

use super::*;
use crate::testing::mock::{ApiMock, json_response};

#[test]
fn bearer_token_table() {
    let table: [(&[&str], Option<&str>); 8] = [
        (&["Bearer abc"], Some("abc")),
        (&["bearer abc"], Some("abc")),
        (&["  Bearer   abc  "], Some("abc")),
        (&[], None),
        (&["Basic dXNlcjpwdw=="], None),
        (&["Bearer "], None),
        (&["Bearer a b"], None),
        (&["Bearer a", "Bearer b"], None),
    ];
    for (values, expected) in table {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(http::header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        assert_eq!(bearer_token(&headers), expected, "{values:?}");
    }
}

#[test]
fn always_allowed_paths_table() {
    let config = AuthConfig {
        always_allow_paths: vec!["/healthz".into(), "/debug/*".into()],
        ..AuthConfig::default()
    };
    for (path, open) in [
        ("/healthz", true),
        ("/healthz/ping", false),
        ("/debug/pprof", true),
        ("/debug", false),
        ("/metrics", false),
    ] {
        assert_eq!(config.always_allowed(path), open, "{path}");
    }
    let defaults = AuthConfig::default();
    assert!(
        ["/healthz", "/readyz", "/livez"]
            .iter()
            .all(|p| defaults.always_allowed(p))
    );
    assert!(!defaults.always_allowed("/metrics"));
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    headers
}

async fn answer_token_review(mock: &mut ApiMock, user: &str) {
    let (req, mut body) = mock.next().await;
    assert_eq!(req.uri().path(), "/apis/authentication.k8s.io/v1/tokenreviews");
    body["status"] = json!({"authenticated": true, "user": {"username": user}});
    mock.respond(json_response(201, &body));
}

async fn answer_access_review(mock: &mut ApiMock, allowed: bool) {
    let (req, mut body) = mock.next().await;
    assert_eq!(req.uri().path(), "/apis/authorization.k8s.io/v1/subjectaccessreviews");
    body["status"] = json!({ "allowed": allowed });
    mock.respond(json_response(201, &body));
}

#[tokio::test(start_paused = true)]
async fn answers_are_reused_until_their_ttl_and_asked_again_after() {
    let (client, mut mock) = ApiMock::new();
    let auth = std::sync::Arc::new(DelegatedAuth::new(
        client,
        AuthConfig {
            token_ttl: Duration::from_secs(10),
            authorized_ttl: Duration::from_secs(30),
            unauthorized_ttl: Duration::from_secs(5),
            ..AuthConfig::default()
        },
    ));
    let check = |token: &'static str| {
        let auth = auth.clone();
        tokio::spawn(async move { auth.check(&Method::GET, "/metrics", &bearer(token)).await })
    };

    let first = check("t");
    answer_token_review(&mut mock, "carol").await;
    answer_access_review(&mut mock, true).await;
    assert!(matches!(first.await.unwrap(), Verdict::Allowed));

    tokio::time::advance(Duration::from_secs(9)).await;
    let cached = check("t");
    mock.assert_idle().await;
    assert!(matches!(cached.await.unwrap(), Verdict::Allowed));

    // 11 s: the token is reviewed again, the (30 s) decision is still cached.
    tokio::time::advance(Duration::from_secs(2)).await;
    let again = check("t");
    answer_token_review(&mut mock, "carol").await;
    assert!(matches!(again.await.unwrap(), Verdict::Allowed));

    // A denial lasts 5 s.
    let denied = auth.clone();
    let first_denial = tokio::spawn(async move { denied.authorize(&user("dave"), "get", "/metrics").await });
    answer_access_review(&mut mock, false).await;
    assert!(!first_denial.await.unwrap().unwrap());
    assert!(!auth.authorize(&user("dave"), "get", "/metrics").await.unwrap());
    tokio::time::advance(Duration::from_secs(6)).await;
    let denied = auth.clone();
    let after = tokio::spawn(async move { denied.authorize(&user("dave"), "get", "/metrics").await });
    answer_access_review(&mut mock, true).await;
    assert!(after.await.unwrap().unwrap());
}

fn user(name: &str) -> User {
    User {
        name: name.into(),
        ..User::default()
    }
}

#[tokio::test]
async fn zero_ttls_cache_nothing() {
    let (client, mut mock) = ApiMock::new();
    let auth = std::sync::Arc::new(DelegatedAuth::new(
        client,
        AuthConfig {
            token_ttl: Duration::ZERO,
            authorized_ttl: Duration::ZERO,
            unauthorized_ttl: Duration::ZERO,
            ..AuthConfig::default()
        },
    ));
    for _ in 0..2 {
        let a = auth.clone();
        let task = tokio::spawn(async move { a.check(&Method::GET, "/metrics", &bearer("t")).await });
        answer_token_review(&mut mock, "erin").await;
        answer_access_review(&mut mock, true).await;
        assert!(matches!(task.await.unwrap(), Verdict::Allowed));
    }
}

#[test]
fn the_cache_stays_bounded() {
    let now = Instant::now();
    let mut cache = TtlCache::new();
    for i in 0..CACHE_CAPACITY {
        cache.insert(i, (), Duration::from_secs(1), now);
    }
    // Full of live answers: they are dropped rather than letting the map grow.
    cache.insert(CACHE_CAPACITY, (), Duration::from_secs(1), now);
    assert_eq!(cache.entries.len(), 1);
    assert_eq!(cache.get(&CACHE_CAPACITY, now), Some(()));
    assert_eq!(cache.get(&CACHE_CAPACITY, now + Duration::from_secs(1)), None);
    assert!(cache.entries.is_empty(), "expired entries are removed when read");
}
