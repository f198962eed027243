//! The secure server against the scripted API server: every TokenReview and SubjectAccessReview it makes is
//! asserted and answered here.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::test_client::{Answer, get};
use super::*;
use crate::testing::mock::{ApiMock, json_response, status_response};

const TOKEN_REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
const ACCESS_REVIEWS: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

struct Server {
    serving: Serving,
    mock: ApiMock,
    readiness: Arc<Readiness>,
    shutdown: CancellationToken,
}

impl Server {
    async fn start() -> Self {
        let (client, mock) = ApiMock::new();
        let metrics = crate::metrics::Metrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.set_leader(true);
        let readiness = Arc::new(Readiness::default());
        let shutdown = CancellationToken::new();
        let config = ServingConfig {
            address: "127.0.0.1:0".parse().unwrap(),
            certificate: CertificateSource::SelfSigned {
                hosts: vec!["localhost".into()],
            },
            auth: AuthConfig::default(),
        };
        let serving = serve(config, client, Arc::new(registry), readiness.clone(), shutdown.clone())
            .await
            .unwrap();
        Self {
            serving,
            mock,
            readiness,
            shutdown,
        }
    }

    /// Sends `GET path` in a task (the test answers the API server meanwhile).
    fn get(&self, path: &'static str, token: Option<&'static str>) -> tokio::task::JoinHandle<Answer> {
        let (address, cert) = (self.serving.address, self.serving.certificate.clone());
        tokio::spawn(async move { get(address, &cert, path, token).await })
    }

    /// Expects a TokenReview of `token` and answers it: authenticated as `user`, or not when `None`.
    async fn token_review(&mut self, token: &str, user: Option<&str>) {
        let (req, body) = self.mock.next().await;
        assert_eq!((req.method(), req.uri().path()), (&Method::POST, TOKEN_REVIEWS));
        assert_eq!(body["spec"]["token"], token, "{body}");
        let status = match user {
            Some(name) => json!({
                "authenticated": true,
                "user": {"username": name, "uid": format!("uid-{name}"), "groups": ["system:authenticated"]}
            }),
            None => json!({"authenticated": false, "error": "invalid bearer token"}),
        };
        let mut answer = body.clone();
        answer["status"] = status;
        self.mock.respond(json_response(201, &answer));
    }

    /// Expects a SubjectAccessReview of `user` for `get /metrics` and answers `allowed`.
    async fn access_review(&mut self, user: &str, allowed: bool) {
        let (req, body) = self.mock.next().await;
        assert_eq!((req.method(), req.uri().path()), (&Method::POST, ACCESS_REVIEWS));
        let spec = &body["spec"];
        assert_eq!(spec["user"], user, "{body}");
        assert_eq!(spec["uid"], format!("uid-{user}"), "{body}");
        assert_eq!(spec["groups"], json!(["system:authenticated"]), "{body}");
        assert_eq!(
            spec["nonResourceAttributes"],
            json!({"path": "/metrics", "verb": "get"}),
            "{body}"
        );
        assert_eq!(spec.get("resourceAttributes"), None, "{body}");
        let mut answer: Value = body.clone();
        answer["status"] = if allowed {
            json!({"allowed": true, "reason": "RBAC: allowed"})
        } else {
            json!({"allowed": false})
        };
        self.mock.respond(json_response(201, &answer));
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.serving.task)
            .await
            .expect("the server stops")
            .unwrap();
    }
}

#[tokio::test]
async fn metrics_without_a_token_is_401_and_asks_the_api_server_nothing() {
    let mut server = Server::start().await;
    let answer = server.get("/metrics", None).await.unwrap();
    assert_eq!(answer.status, 401, "{answer:?}");
    assert!(!answer.body.contains("leader_election"), "{answer:?}");
    server.mock.assert_idle().await;
    server.stop().await;
}

#[tokio::test]
async fn metrics_with_a_token_the_token_review_rejects_is_401() {
    let mut server = Server::start().await;
    let request = server.get("/metrics", Some("garbage"));
    server.token_review("garbage", None).await;
    let answer = request.await.unwrap();
    assert_eq!(answer.status, 401, "{answer:?}");
    // The rejection is cached too: no second TokenReview for the same token.
    assert_eq!(server.get("/metrics", Some("garbage")).await.unwrap().status, 401);
    server.mock.assert_idle().await;
    server.stop().await;
}

#[tokio::test]
async fn metrics_for_a_user_the_subject_access_review_denies_is_403() {
    let mut server = Server::start().await;
    let request = server.get("/metrics", Some("alice-token"));
    server.token_review("alice-token", Some("alice")).await;
    server.access_review("alice", false).await;
    let answer = request.await.unwrap();
    assert_eq!(answer.status, 403, "{answer:?}");
    assert_eq!(answer.body, "forbidden: user \"alice\" cannot get path \"/metrics\"\n");
    server.stop().await;
}

#[tokio::test]
async fn metrics_for_an_allowed_user_is_200_and_the_answers_are_cached() {
    let mut server = Server::start().await;
    let request = server.get("/metrics", Some("prometheus-token"));
    server.token_review("prometheus-token", Some("prometheus")).await;
    server.access_review("prometheus", true).await;
    let answer = request.await.unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(answer.body.contains("leader_election_master_status 1"), "{answer:?}");

    // Within the 10 s TTLs the same token needs neither a TokenReview nor a SubjectAccessReview.
    let again = server.get("/metrics", Some("prometheus-token"));
    server.mock.assert_idle().await;
    assert_eq!(again.await.unwrap().status, 200);
    server.stop().await;
}

#[tokio::test]
async fn health_and_readiness_need_no_token() {
    let mut server = Server::start().await;
    for path in ["/healthz", "/livez"] {
        let answer = server.get(path, None).await.unwrap();
        assert_eq!(
            answer,
            Answer {
                status: 200,
                body: "ok".into()
            },
            "{path}"
        );
    }
    assert_eq!(server.get("/readyz", None).await.unwrap().status, 503);
    server.readiness.set_leading(true);
    assert_eq!(
        server.get("/readyz", None).await.unwrap().status,
        503,
        "leading but not synced"
    );
    server.readiness.set_synced(true);
    assert_eq!(server.get("/readyz", None).await.unwrap().status, 200);
    // A token on an open path is not even looked at.
    assert_eq!(server.get("/healthz", Some("whatever")).await.unwrap().status, 200);
    server.mock.assert_idle().await;
    server.stop().await;
}

#[tokio::test]
async fn review_failures_are_401_and_500_and_not_cached() {
    let mut server = Server::start().await;
    // The API server refuses the TokenReview (no RBAC for it): 401, and the next request asks again.
    let request = server.get("/metrics", Some("t"));
    let (req, _) = server.mock.next().await;
    assert_eq!(req.uri().path(), TOKEN_REVIEWS);
    server.mock.respond(status_response(403, "Forbidden"));
    assert_eq!(request.await.unwrap().status, 401);

    let request = server.get("/metrics", Some("t"));
    server.token_review("t", Some("bob")).await;
    let (req, _) = server.mock.next().await;
    assert_eq!(req.uri().path(), ACCESS_REVIEWS);
    server.mock.respond(status_response(500, "InternalError"));
    assert_eq!(request.await.unwrap().status, 500);

    // The user is cached now, the failed decision is not.
    let request = server.get("/metrics", Some("t"));
    server.access_review("bob", true).await;
    assert_eq!(request.await.unwrap().status, 200);
    server.stop().await;
}

#[tokio::test]
async fn plain_http_is_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start().await;
    let mut tcp = tokio::net::TcpStream::connect(server.serving.address).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tcp.read_to_end(&mut out).await;
    assert!(!String::from_utf8_lossy(&out).contains("leader_election"), "{out:?}");
    server.stop().await;
}
