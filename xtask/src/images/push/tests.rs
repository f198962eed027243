//! The push client against a wiremock registry that asserts the exact requests.

use wiremock::matchers::{body_bytes, header, method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::*;
use crate::oci::{self, Entry, RuntimeConfig};

fn image() -> Image {
    let l1 = oci::build_layer(
        "base",
        vec![Entry::file("etc/passwd", 0o644, b"root:x:0:0::/:/x\n".to_vec())],
    )
    .unwrap();
    let l2 = oci::build_layer("app", vec![Entry::file("usr/local/bin/a", 0o755, b"app".to_vec())]).unwrap();
    oci::assemble(
        &RuntimeConfig {
            entrypoint: vec!["/usr/local/bin/a".into()],
            ..Default::default()
        },
        &[l1, l2],
    )
}

/// Matches a blob PUT whose body hashes to its `digest` query parameter.
struct BodyMatchesDigest;
impl wiremock::Match for BodyMatchesDigest {
    fn matches(&self, req: &Request) -> bool {
        req.url
            .query_pairs()
            .any(|(k, v)| k == "digest" && v == crate::oci::sha256_digest(&req.body))
    }
}

#[test]
fn targets_parse() {
    let t = Target::parse("localhost:5000/nk").unwrap();
    assert_eq!(
        (t.base_url.as_str(), t.host.as_str(), t.prefix.as_str()),
        ("http://localhost:5000", "localhost:5000", "nk")
    );
    assert_eq!(t.repository("ccm"), "nk/ccm");
    assert_eq!(t.reference_prefix(), "localhost:5000/nk");
    let t = Target::parse("ghcr.io/org/sub/").unwrap();
    assert_eq!((t.base_url.as_str(), t.prefix.as_str()), ("https://ghcr.io", "org/sub"));
    let t = Target::parse("http://r.test:8080").unwrap();
    assert_eq!(
        (t.base_url.as_str(), t.prefix.as_str(), t.repository("csi").as_str()),
        ("http://r.test:8080", "", "csi")
    );
    assert!(Target::parse("ftp://x").is_err());
    assert!(Target::parse("").is_err());
}

#[test]
fn bearer_challenges_parse() {
    let p = parse_bearer_challenge(
        r#"Bearer realm="https://auth.test/token",service="reg.test",scope="repository:nk/ccm:pull,push""#,
    )
    .unwrap();
    assert_eq!(
        p,
        vec![
            ("realm".into(), "https://auth.test/token".into()),
            ("service".into(), "reg.test".into()),
            ("scope".into(), "repository:nk/ccm:pull,push".into())
        ]
    );
    assert!(parse_bearer_challenge("Basic realm=x").is_none());
}

#[tokio::test]
async fn pushes_missing_blobs_then_the_manifest() {
    let server = MockServer::start().await;
    let img = image();
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
            .and(query_param("digest", blob.digest.as_str()))
            .and(header("content-type", "application/octet-stream"))
            .and(BodyMatchesDigest)
            .respond_with(ResponseTemplate::new(201))
            .expect(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("PUT"))
        .and(path("/v2/nk/ccm/manifests/v1"))
        .and(header("content-type", media::MANIFEST))
        .and(body_bytes(img.manifest.data.clone()))
        .respond_with(ResponseTemplate::new(201).insert_header("Docker-Content-Digest", img.manifest.digest.as_str()))
        .expect(1)
        .mount(&server)
        .await;
    let target = Target::parse(&format!("{}/nk", server.uri())).unwrap();
    let session = Session::new(None).unwrap();
    let digest = push_image(&session, &target, "nk/ccm", "v1", &img).await.unwrap();
    assert_eq!(digest, img.manifest.digest);
    // expectations are verified when the server drops; also check nothing else was called
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(
        reqs.len(),
        3 + 2 + 2 + 1,
        "{:?}",
        reqs.iter()
            .map(|r| format!("{} {}", r.method, r.url))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        reqs.last().map(|r| r.method.as_str()),
        Some("PUT"),
        "the manifest goes last"
    );
}

#[tokio::test]
async fn answers_a_bearer_challenge_and_rejects_a_wrong_digest() {
    let server = MockServer::start().await;
    let img = image();
    Mock::given(method("HEAD"))
        .and(path_regex("^/v2/r/blobs/sha256:[0-9a-f]{64}$"))
        .and(header("authorization", "Bearer tok-1"))
        .respond_with(ResponseTemplate::new(200))
        .expect(3)
        .mount(&server)
        .await;
    Mock::given(method("HEAD"))
        .and(path_regex("^/v2/r/blobs/"))
        .respond_with(
            ResponseTemplate::new(401).insert_header(
                "WWW-Authenticate",
                format!(
                    r#"Bearer realm="{}/token",service="reg.test",scope="repository:r:pull,push""#,
                    server.uri()
                )
                .as_str(),
            ),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/token"))
        .and(query_param("service", "reg.test"))
        .and(query_param("scope", "repository:r:pull,push"))
        .and(header("authorization", "Basic dTpw"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"token": "tok-1"})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v2/r/manifests/t"))
        .and(header("authorization", "Bearer tok-1"))
        .respond_with(ResponseTemplate::new(201).insert_header("Docker-Content-Digest", "sha256:0000"))
        .expect(1)
        .mount(&server)
        .await;
    let target = Target::parse(&server.uri()).unwrap();
    let session = Session::new(Some(("u".into(), "p".into()))).unwrap();
    let err = push_image(&session, &target, "r", "t", &img)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("registry says the manifest is sha256:0000"), "{err}");
}
