//! Pushing images with the OCI distribution API: for each blob `HEAD` (skip if present), else `POST` an upload
//! session and `PUT` the bytes with `?digest=`; then `PUT` the manifest under the tag.
//!
//! Authentication: `REGISTRY_USERNAME`/`REGISTRY_PASSWORD` as HTTP basic credentials; a `401` with a
//! `WWW-Authenticate: Bearer realm=..,service=..,scope=..` challenge is answered by fetching a token from the realm
//! (with those credentials if set) and retrying once. Never tested against a real registry here (no network):
//! the tests drive it against a wiremock registry that asserts each request.

use std::sync::Mutex;

use anyhow::Context as _;
use reqwest::{Method, StatusCode};

use super::Built;
use crate::oci::{Blob, Image, media};

/// Where to push: the registry's base URL and the repository path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `http://host:port` or `https://host`.
    pub base_url: String,
    /// `host[:port]`, used in image references.
    pub host: String,
    /// Repository prefix inside the registry (may be empty), e.g. `nk`.
    pub prefix: String,
}

impl Target {
    /// Parses `host[:port][/prefix]`, optionally with `http://` or `https://`. Without a scheme, localhost and
    /// 127.0.0.1 use plain HTTP and everything else HTTPS.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        let (scheme, rest) = match s.split_once("://") {
            Some((sch @ ("http" | "https"), rest)) => (Some(sch), rest),
            Some((other, _)) => anyhow::bail!("registry {s:?}: unsupported scheme {other:?}"),
            None => (None, s),
        };
        let rest = rest.trim_end_matches('/');
        let (host, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        anyhow::ensure!(!host.is_empty(), "registry {s:?}: no host");
        let local = host.starts_with("localhost") || host.starts_with("127.0.0.1") || host.starts_with("[::1]");
        let scheme = scheme.unwrap_or(if local { "http" } else { "https" });
        Ok(Self {
            base_url: format!("{scheme}://{host}"),
            host: host.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// `host[/prefix]`: what image references start with.
    pub fn reference_prefix(&self) -> String {
        if self.prefix.is_empty() {
            self.host.clone()
        } else {
            format!("{}/{}", self.host, self.prefix)
        }
    }

    /// Repository name of image `name` inside the registry.
    pub fn repository(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }
}

/// An HTTP client with optional credentials and a cached bearer token.
pub struct Session {
    client: reqwest::Client,
    basic: Option<(String, String)>,
    token: Mutex<Option<String>>,
}

impl Session {
    /// A session with credentials from `REGISTRY_USERNAME` / `REGISTRY_PASSWORD` when set.
    pub fn from_env() -> anyhow::Result<Self> {
        let basic = match (std::env::var("REGISTRY_USERNAME"), std::env::var("REGISTRY_PASSWORD")) {
            (Ok(u), Ok(p)) => Some((u, p)),
            _ => None,
        };
        Self::new(basic)
    }

    /// A session with the given basic credentials.
    pub fn new(basic: Option<(String, String)>) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder().build().context("build HTTP client")?;
        Ok(Self {
            client,
            basic,
            token: Mutex::new(None),
        })
    }

    fn authorize(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let token = self.token.lock().ok().and_then(|t| t.clone());
        match (token, &self.basic) {
            (Some(t), _) => rb.bearer_auth(t),
            (None, Some((u, p))) => rb.basic_auth(u, Some(p)),
            (None, None) => rb,
        }
    }

    /// Sends a request (built fresh for a retry), answering one bearer challenge.
    async fn send(&self, build: impl Fn() -> reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let resp = self.authorize(build()).send().await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let Some(params) = parse_bearer_challenge(&challenge) else {
            anyhow::bail!("registry refused the credentials (401, challenge {challenge:?})");
        };
        let realm = params
            .iter()
            .find(|(k, _)| k == "realm")
            .map(|(_, v)| v.clone())
            .context("bearer challenge without realm")?;
        let query: Vec<(String, String)> = params.into_iter().filter(|(k, _)| k != "realm").collect();
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&query)
            .finish();
        let sep = if realm.contains('?') { '&' } else { '?' };
        let mut rb = self.client.get(format!("{realm}{sep}{query}"));
        if let Some((u, p)) = &self.basic {
            rb = rb.basic_auth(u, Some(p));
        }
        let bytes = rb.send().await?.error_for_status()?.bytes().await?;
        let body: serde_json::Value = serde_json::from_slice(&bytes).context("token response")?;
        let token = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .context("token response without a token")?;
        if let Ok(mut t) = self.token.lock() {
            *t = Some(token.to_owned());
        }
        Ok(self.authorize(build()).send().await?)
    }
}

/// Parses `Bearer realm="..",service="..",scope=".."` into key/value pairs.
pub fn parse_bearer_challenge(header: &str) -> Option<Vec<(String, String)>> {
    let rest = header.trim().strip_prefix("Bearer ")?;
    let mut out = Vec::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let (key, after) = s.split_once('=')?;
        let after = after.trim_start();
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], &q[end + 1..])
        } else {
            after.split_once(',').map_or((after, ""), |(v, t)| (v, t))
        };
        out.push((key.trim().to_owned(), value.to_owned()));
        s = tail.trim_start_matches([',', ' ']);
    }
    Some(out)
}

async fn push_blob(session: &Session, target: &Target, repo: &str, blob: &Blob) -> anyhow::Result<bool> {
    let base = &target.base_url;
    let head_url = format!("{base}/v2/{repo}/blobs/{}", blob.digest);
    let head = session.send(|| session.client.request(Method::HEAD, &head_url)).await?;
    if head.status() == StatusCode::OK {
        return Ok(false);
    }
    let start_url = format!("{base}/v2/{repo}/blobs/uploads/");
    let start = session.send(|| session.client.post(&start_url)).await?;
    anyhow::ensure!(
        start.status() == StatusCode::ACCEPTED,
        "POST {start_url}: {}",
        start.status()
    );
    let location = start
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .context("upload session without Location")?;
    let mut url = if location.starts_with("http://") || location.starts_with("https://") {
        location.to_owned()
    } else {
        format!("{base}{location}")
    };
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str("digest=");
    url.push_str(&blob.digest);
    let put = session
        .send(|| {
            session
                .client
                .put(&url)
                .header("content-type", "application/octet-stream")
                .body(blob.data.clone())
        })
        .await?;
    anyhow::ensure!(
        put.status() == StatusCode::CREATED,
        "PUT blob {}: {}",
        blob.digest,
        put.status()
    );
    Ok(true)
}

/// Pushes one image as `repo:tag`; returns the manifest digest the registry confirmed.
pub async fn push_image(
    session: &Session,
    target: &Target,
    repo: &str,
    tag: &str,
    image: &Image,
) -> anyhow::Result<String> {
    for blob in image.layers.iter().chain(std::iter::once(&image.config)) {
        push_blob(session, target, repo, blob)
            .await
            .with_context(|| format!("push {repo} blob {}", blob.digest))?;
    }
    let url = format!("{}/v2/{repo}/manifests/{tag}", target.base_url);
    let resp = session
        .send(|| {
            session
                .client
                .put(&url)
                .header("content-type", media::MANIFEST)
                .body(image.manifest.data.clone())
        })
        .await?;
    anyhow::ensure!(
        resp.status() == StatusCode::CREATED,
        "PUT manifest {repo}:{tag}: {}",
        resp.status()
    );
    if let Some(d) = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
    {
        anyhow::ensure!(
            d == image.manifest.digest,
            "registry says the manifest is {d}, we computed {}",
            image.manifest.digest
        );
    }
    Ok(image.manifest.digest.clone())
}

/// Pushes every built image; returns `reference@digest` lines.
pub async fn push_all(target: &Target, tag: &str, built: &[Built]) -> anyhow::Result<Vec<String>> {
    let session = Session::from_env()?;
    let mut lines = Vec::new();
    for b in built {
        let repo = target.repository(b.name);
        let digest = push_image(&session, target, &repo, tag, &b.image).await?;
        lines.push(format!("{}/{}:{tag}@{digest}", target.reference_prefix(), b.name));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests;
