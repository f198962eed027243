//! The push client against wiremock registries that assert each request: the paths a real registry cannot easily
//! produce (bearer-token auth with credentials, refused credentials, a tag that reads back another digest). The
//! happy path against a real registry is in `tests/images_cli.rs`.

use oci_spec::image::ConfigBuilder;
use wiremock::matchers::{body_bytes, header, method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::*;
use crate::oci::{self, Entry};

fn image() -> Image {
    let l1 = oci::build_layer(
        "base",
        vec![Entry::file("etc/passwd", 0o644, b"root:x:0:0::/:/x\n".to_vec())],
    )
    .unwrap();
    let l2 = oci::build_layer("app", vec![Entry::file("usr/local/bin/a", 0o755, b"app".to_vec())]).unwrap();
    let runtime = ConfigBuilder::default()
        .entrypoint(vec!["/usr/local/bin/a".to_owned()])
        .build()
        .unwrap();
    oci::assemble(&runtime, &[l1, l2]).unwrap()
}

fn target(server: &MockServer) -> Target {
    Target::parse(&server.uri()).unwrap()
}

/// Matches a blob PUT whose body hashes to its `digest` query parameter.
struct BodyMatchesDigest;
impl wiremock::Match for BodyMatchesDigest {
    fn matches(&self, req: &Request) -> bool {
        let digest = oci::sha256_digest(&req.body);
        req.url
            .query_pairs()
            .any(|(k, v)| k == "digest" && v == digest.as_ref())
    }
}

#[test]
fn targets_parse() {
    let t = Target::parse("localhost:5000/nk").unwrap();
    assert_eq!(
        (t.host.as_str(), t.prefix.as_str(), t.plain_http),
        ("localhost:5000", "nk", true)
    );
    assert_eq!(t.repository("ccm"), "nk/ccm");
    assert_eq!(t.reference_prefix(), "localhost:5000/nk");
    assert_eq!(t.reference("ccm", "v1").whole(), "localhost:5000/nk/ccm:v1");
    let t = Target::parse("ghcr.io/org/sub/").unwrap();
    assert_eq!(
        (t.host.as_str(), t.prefix.as_str(), t.plain_http),
        ("ghcr.io", "org/sub", false)
    );
    let t = Target::parse("http://r.test:8080").unwrap();
    assert_eq!(
        (t.plain_http, t.prefix.as_str(), t.repository("csi").as_str()),
        (true, "", "csi")
    );
    assert!(!Target::parse("https://127.0.0.1:5000").unwrap().plain_http);
    assert!(matches!(Target::parse("ftp://x"), Err(PushError::Target { .. })));
    assert!(matches!(Target::parse(""), Err(PushError::Target { .. })));
}

#[tokio::test]
async fn pushes_missing_blobs_then_the_manifest_and_reads_the_digest_back() {
    let server = MockServer::start().await;
    let img = image();
    let manifest_digest = img.manifest.digest.to_string();
    Mock::given(method("GET"))
        .and(path("/v2/"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    // the base layer already exists, the app layer and config do not
    Mock::given(method("HEAD"))
        .and(path(format!("/v2/nk/ccm/blobs/{}", img.layers[0].digest)))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    for blob in [&img.layers[1], &img.config] {
        Mock::given(method("HEAD"))
            .and(path(format!("/v2/nk/ccm/blobs/{}", blob.digest)))
            .respond_with(ResponseTemplate::new(404))
            .expect(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/v2/nk/ccm/blobs/uploads/"))
        .respond_with(
            ResponseTemplate::new(202).insert_header("Location", "/v2/nk/ccm/blobs/uploads/session-1?state=x"),
        )
        .expect(2)
        .mount(&server)
        .await;
    for blob in [&img.layers[1], &img.config] {
        Mock::given(method("PUT"))
            .and(path("/v2/nk/ccm/blobs/uploads/session-1"))
            .and(query_param("state", "x"))
            .and(query_param("digest", blob.digest.as_ref()))
            .and(header("content-type", "application/octet-stream"))
            .and(BodyMatchesDigest)
            .respond_with(
                ResponseTemplate::new(201).insert_header("Location", format!("/v2/nk/ccm/blobs/{}", blob.digest)),
            )
            .expect(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("PUT"))
        .and(path("/v2/nk/ccm/manifests/v1"))
        .and(header("content-type", "application/vnd.oci.image.manifest.v1+json"))
        .and(body_bytes(img.manifest.data.clone()))
        .respond_with(
            ResponseTemplate::new(201).insert_header("Location", format!("/v2/nk/ccm/manifests/{manifest_digest}")),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("HEAD"))
        .and(path("/v2/nk/ccm/manifests/v1"))
        .respond_with(ResponseTemplate::new(200).insert_header("Docker-Content-Digest", manifest_digest.as_str()))
        .expect(1)
        .mount(&server)
        .await;
    let t = Target::parse(&format!("{}/nk", server.uri())).unwrap();
    let pusher = Pusher::new(&t, RegistryAuth::Anonymous).unwrap();
    let digest = pusher.push_image(&t.reference("ccm", "v1"), &img).await.unwrap();
    assert_eq!(digest, manifest_digest);
    // expectations are verified when the server drops; the order is checked here (GET /v2/ pings aside)
    let calls: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() != "/v2/")
        .map(|r| format!("{} {}", r.method, r.url.path()))
        .collect();
    let manifest_put = calls.iter().position(|c| c == "PUT /v2/nk/ccm/manifests/v1").unwrap();
    assert_eq!(manifest_put, calls.len() - 2, "{calls:#?}");
    assert_eq!(calls.last().unwrap(), "HEAD /v2/nk/ccm/manifests/v1", "{calls:#?}");
}

/// A registry whose `/v2/` asks for a bearer token from `/token`.
async fn bearer_registry() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/"))
        .respond_with(ResponseTemplate::new(401).insert_header(
            "WWW-Authenticate",
            format!(r#"Bearer realm="{}/token",service="reg.test""#, server.uri()).as_str(),
        ))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn answers_a_bearer_challenge_with_the_credentials_and_rejects_another_digest() {
    let server = bearer_registry().await;
    let img = image();
    Mock::given(method("GET"))
        .and(path("/token"))
        .and(query_param("service", "reg.test"))
        .and(query_param("scope", "repository:r:pull,push"))
        .and(header("authorization", "Basic dTpw"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"token": "tok-push"})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/token"))
        .and(query_param("scope", "repository:r:pull"))
        .and(header("authorization", "Basic dTpw"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"token": "tok-pull"})))
        .mount(&server)
        .await;
    // every blob is there already: nothing is uploaded
    Mock::given(method("HEAD"))
        .and(path_regex("^/v2/r/blobs/sha256:[0-9a-f]{64}$"))
        .and(header("authorization", "Bearer tok-pull"))
        .respond_with(ResponseTemplate::new(200))
        .expect(3)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v2/r/manifests/t"))
        .and(header("authorization", "Bearer tok-push"))
        .respond_with(ResponseTemplate::new(201).insert_header("Location", "/v2/r/manifests/t"))
        .expect(1)
        .mount(&server)
        .await;
    let other = format!("sha256:{}", "0".repeat(64));
    Mock::given(method("HEAD"))
        .and(path("/v2/r/manifests/t"))
        .and(header("authorization", "Bearer tok-pull"))
        .respond_with(ResponseTemplate::new(200).insert_header("Docker-Content-Digest", other.as_str()))
        .expect(1)
        .mount(&server)
        .await;
    let t = target(&server);
    let pusher = Pusher::new(&t, RegistryAuth::Basic("u".into(), "p".into())).unwrap();
    let err = pusher.push_image(&t.reference("r", "t"), &img).await.unwrap_err();
    match &err {
        PushError::DigestMismatch { registry, built, .. } => {
            assert_eq!((registry, built), (&other, &img.manifest.digest.to_string()));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("/r:t is sha256:0000"), "{err}");
    assert_eq!(
        server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.method.as_str() == "POST")
            .count(),
        0
    );
}

#[tokio::test]
async fn refused_credentials_and_a_refused_upload_name_what_failed() {
    let server = bearer_registry().await;
    Mock::given(method("GET"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(401).set_body_string("bad credentials"))
        .mount(&server)
        .await;
    let t = target(&server);
    let pusher = Pusher::new(&t, RegistryAuth::Basic("u".into(), "wrong".into())).unwrap();
    let err = pusher.push_image(&t.reference("r", "t"), &image()).await.unwrap_err();
    assert!(matches!(err, PushError::Authenticate { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!("authenticate to {}", t.host)),
        "{err}"
    );

    // an anonymous registry that refuses uploads
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(method("HEAD"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(403).set_body_string(r#"{"errors":[{"code":"DENIED"}]}"#))
        .mount(&server)
        .await;
    let t = target(&server);
    let img = image();
    let pusher = Pusher::new(&t, RegistryAuth::Anonymous).unwrap();
    let err = pusher.push_image(&t.reference("r", "t"), &img).await.unwrap_err();
    match &err {
        PushError::Blob { digest, source, .. } => {
            assert_eq!(digest, img.layers[0].digest.as_ref());
            assert!(format!("{source}").contains("DENIED"), "{source}");
        }
        other => panic!("{other:?}"),
    }
}
