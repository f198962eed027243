//! The secure server's delegated authentication and authorization against a real kube-apiserver (the project's
//! test harness, `../shared/harness`, started or reused by [`k8s_harness::harness`]; the test says why it skips
//! without it, and fails instead under `NIFCLOUD_REQUIRE_HARNESS=1`, as in CI).
//!
//! Two ServiceAccounts get tokens through the TokenRequest API; a ClusterRole granting `get` on the non-resource URL
//! `/metrics` is bound to one of them. The server under test reviews with the harness' admin kubeconfig, so the
//! real TokenReview and SubjectAccessReview (RBAC) decide: 200 for the bound account, 403 for the other, 401 for a
//! made-up token. Everything the test creates carries a random suffix and is deleted at the end, also on failure.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cloudprovider::server::test_client::get;
use cloudprovider::server::{self, AuthConfig, CertificateSource, Readiness, ServingConfig};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, Client};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

const TEST: &str = "metrics_access_is_decided_by_the_real_api_server";

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(
            [(
                "app.kubernetes.io/managed-by".to_owned(),
                "cloudprovider-secure-metrics-test".to_owned(),
            )]
            .into(),
        ),
        ..ObjectMeta::default()
    }
}

async fn admin_client(kubeconfig: &std::path::Path) -> Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig)
        .unwrap_or_else(|e| panic!("read kubeconfig {}: {e}", kubeconfig.display()));
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    Client::try_from(config).expect("client")
}

/// Runs `scenario` in a task, then `cleanup` whether it passed or panicked, then passes the panic on.
async fn with_cleanup(scenario: impl Future<Output = ()> + Send + 'static, cleanup: impl Future<Output = ()>) {
    let outcome = tokio::spawn(scenario).await;
    cleanup.await;
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("test scenario did not finish: {error}"),
        }
    }
}

async fn token_for(client: &Client, namespace: &str, account: &str) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    accounts
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: meta(account, Some(namespace)),
                ..ServiceAccount::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("create ServiceAccount {namespace}/{account}: {e}"));
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(600),
            bound_object_ref: None,
        },
        ..TokenRequest::default()
    };
    accounts
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("TokenRequest for {namespace}/{account}: {e}"))
        .status
        .map(|s| s.token)
        .expect("a token")
}

async fn scenario(client: Client, namespace: String, role: String) {
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: meta(&namespace, None),
                ..Namespace::default()
            },
        )
        .await
        .expect("create the namespace");
    Api::<ClusterRole>::all(client.clone())
        .create(
            &PostParams::default(),
            &ClusterRole {
                metadata: meta(&role, None),
                rules: Some(vec![PolicyRule {
                    non_resource_urls: Some(vec!["/metrics".into()]),
                    verbs: vec!["get".into()],
                    ..PolicyRule::default()
                }]),
                ..ClusterRole::default()
            },
        )
        .await
        .expect("create the ClusterRole");
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(
            &PostParams::default(),
            &ClusterRoleBinding {
                metadata: meta(&role, None),
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "ClusterRole".into(),
                    name: role.clone(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: "reader".into(),
                    namespace: Some(namespace.clone()),
                    ..Subject::default()
                }]),
            },
        )
        .await
        .expect("create the ClusterRoleBinding");
    let reader = token_for(&client, &namespace, "reader").await;
    let stranger = token_for(&client, &namespace, "stranger").await;

    let metrics = cloudprovider::metrics::Metrics::default();
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    metrics.set_leader(true);
    let shutdown = CancellationToken::new();
    let config = ServingConfig {
        address: "127.0.0.1:0".parse().unwrap(),
        certificate: CertificateSource::SelfSigned {
            hosts: vec!["localhost".into()],
        },
        // Denials are not cached, so that the wait for RBAC to see the new binding is not stretched by them.
        auth: AuthConfig {
            unauthorized_ttl: Duration::ZERO,
            ..AuthConfig::default()
        },
    };
    let serving = server::serve(
        config,
        client.clone(),
        Arc::new(registry),
        Arc::new(Readiness::default()),
        shutdown.clone(),
    )
    .await
    .expect("serve");
    let (address, cert) = (serving.address, serving.certificate.clone());

    let allowed = k8s_harness::eventually(
        "the bound ServiceAccount gets /metrics",
        Duration::from_secs(30),
        || {
            let (cert, reader) = (cert.clone(), reader.clone());
            async move {
                let answer = get(address, &cert, "/metrics", Some(&reader)).await;
                (answer.status == 200).then_some(answer)
            }
        },
    )
    .await;
    assert!(allowed.body.contains("leader_election_master_status 1"), "{allowed:?}");

    let denied = get(address, &cert, "/metrics", Some(&stranger)).await;
    assert_eq!(denied.status, 403, "{denied:?}");
    assert_eq!(
        denied.body,
        format!("forbidden: user \"system:serviceaccount:{namespace}:stranger\" cannot get path \"/metrics\"\n")
    );
    let garbage = get(address, &cert, "/metrics", Some("not-a-token")).await;
    assert_eq!(garbage.status, 401, "{garbage:?}");
    let anonymous = get(address, &cert, "/metrics", None).await;
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    let health = get(address, &cert, "/healthz", None).await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));

    shutdown.cancel();
    serving.task.await.expect("server task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_access_is_decided_by_the_real_api_server() {
    let Some(harness) = k8s_harness::harness(TEST, false) else {
        return;
    };
    let client = admin_client(&harness.kubeconfig).await;
    let suffix = format!("{:08x}", rand::random::<u32>());
    let namespace = format!("secure-metrics-{suffix}");
    let role = format!("secure-metrics-test:{suffix}");
    let cleanup = {
        let (client, namespace, role) = (client.clone(), namespace.clone(), role.clone());
        async move {
            let dp = DeleteParams::default();
            for result in [
                Api::<ClusterRoleBinding>::all(client.clone())
                    .delete(&role, &dp)
                    .await
                    .err(),
                Api::<ClusterRole>::all(client.clone()).delete(&role, &dp).await.err(),
                Api::<Namespace>::all(client.clone())
                    .delete(&namespace, &dp)
                    .await
                    .err(),
            ]
            .into_iter()
            .flatten()
            {
                if !matches!(&result, kube::Error::Api(s) if s.is_not_found()) {
                    eprintln!("cleanup: {result}");
                }
            }
        }
    };
    with_cleanup(scenario(client, namespace, role), cleanup).await;
}
