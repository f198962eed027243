//! `--push`: uploads the built images with the OCI distribution API (the `oci-client` crate), byte for byte.
//!
//! Per image: authenticate (oci-client answers the registry's challenge, with a bearer token from its realm or
//! HTTP basic, using `REGISTRY_USERNAME`/`REGISTRY_PASSWORD` when both are set), upload each layer and the config
//! the registry does not have yet, `PUT` our manifest bytes unchanged under the tag, then ask the registry which
//! digest the tag has now: it must be the one we built. `tests/images_cli.rs` pushes to a real registry (Debian's
//! docker-registry) and reads the images back with skopeo; `push/tests.rs` covers auth and errors with wiremock.

use http::HeaderValue;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use super::Built;
use crate::oci::Image;

/// Errors of a push, each naming the image (and blob) it was about.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The `--push` value is not a registry.
    #[error("registry {value:?}: {reason}")]
    Target {
        /// What was given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The HTTP client could not be set up.
    #[error("set up the registry client")]
    Client {
        /// oci-client's error.
        source: OciDistributionError,
    },
    /// The registry refused the credentials, or its token service failed.
    #[error("authenticate to {registry} for pushing {reference}")]
    Authenticate {
        /// `host[:port]`.
        registry: String,
        /// The image.
        reference: String,
        /// oci-client's error.
        source: OciDistributionError,
    },
    /// Checking or uploading a layer or config blob failed.
    #[error("push blob {digest} of {reference}")]
    Blob {
        /// The image.
        reference: String,
        /// The blob.
        digest: String,
        /// oci-client's error.
        source: OciDistributionError,
    },
    /// The registry did not take the manifest.
    #[error("push the manifest of {reference}")]
    Manifest {
        /// The image.
        reference: String,
        /// oci-client's error.
        source: OciDistributionError,
    },
    /// The tag's digest could not be read back.
    #[error("read back the digest of {reference}")]
    ReadBack {
        /// The image.
        reference: String,
        /// oci-client's error.
        source: OciDistributionError,
    },
    /// The tag points at a manifest other than the one we pushed.
    #[error("the registry says {reference} is {registry}, but we built {built}")]
    DigestMismatch {
        /// The image.
        reference: String,
        /// What the registry reports.
        registry: String,
        /// What we built and pushed.
        built: String,
    },
}

/// Where to push: the registry and the repository path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `host[:port]`, used in image references.
    pub host: String,
    /// Repository prefix inside the registry (may be empty), e.g. `nk`.
    pub prefix: String,
    /// Plain HTTP instead of HTTPS.
    pub plain_http: bool,
}

impl Target {
    /// Parses `host[:port][/prefix]`, optionally with `http://` or `https://`. Without a scheme, localhost and
    /// 127.0.0.1 use plain HTTP and everything else HTTPS.
    pub fn parse(s: &str) -> Result<Self, PushError> {
        let bad = |reason| PushError::Target {
            value: s.to_owned(),
            reason,
        };
        let (scheme, rest) = match s.split_once("://") {
            Some((sch @ ("http" | "https"), rest)) => (Some(sch), rest),
            Some(_) => return Err(bad("unsupported scheme (http and https are)")),
            None => (None, s),
        };
        let rest = rest.trim_end_matches('/');
        let (host, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let local = host.starts_with("localhost") || host.starts_with("127.0.0.1") || host.starts_with("[::1]");
        Ok(Self {
            host: host.to_owned(),
            prefix: prefix.to_owned(),
            plain_http: scheme.map_or(local, |s| s == "http"),
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

    /// The reference of image `name` at `tag` in this registry.
    pub fn reference(&self, name: &str, tag: &str) -> Reference {
        Reference::with_tag(self.host.clone(), self.repository(name), tag.to_owned())
    }
}

/// Credentials from `REGISTRY_USERNAME` / `REGISTRY_PASSWORD` when both are set, else anonymous.
pub fn auth_from_env() -> RegistryAuth {
    match (std::env::var("REGISTRY_USERNAME"), std::env::var("REGISTRY_PASSWORD")) {
        (Ok(user), Ok(password)) => RegistryAuth::Basic(user, password),
        _ => RegistryAuth::Anonymous,
    }
}

/// A registry client for one target.
pub struct Pusher {
    client: Client,
    auth: RegistryAuth,
}

impl Pusher {
    /// A client speaking HTTP or HTTPS (rustls with the ring provider) as `target` says.
    pub fn new(target: &Target, auth: RegistryAuth) -> Result<Self, PushError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = ClientConfig {
            protocol: if target.plain_http {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            // the blobs are in memory already: one PUT each (POST, PUT ?digest=) rather than 4 MiB PATCHes
            use_monolithic_push: true,
            ..ClientConfig::default()
        };
        let client = Client::try_from(config).map_err(|source| PushError::Client { source })?;
        Ok(Self { client, auth })
    }

    /// Pushes `image` as `reference`; returns the manifest digest the registry confirmed.
    pub async fn push_image(&self, reference: &Reference, image: &Image) -> Result<String, PushError> {
        let whole = || reference.whole();
        self.client
            .auth(reference, &self.auth, RegistryOperation::Push)
            .await
            .map_err(|source| PushError::Authenticate {
                registry: reference.registry().to_owned(),
                reference: whole(),
                source,
            })?;
        for blob in image.layers.iter().chain(std::iter::once(&image.config)) {
            let digest = blob.digest.as_ref();
            let blob_error = |source| PushError::Blob {
                reference: whole(),
                digest: digest.to_owned(),
                source,
            };
            if !self.client.blob_exists(reference, digest).await.map_err(blob_error)? {
                self.client
                    .push_blob(reference, blob.data.clone(), digest)
                    .await
                    .map_err(blob_error)?;
            }
        }
        let media_type =
            HeaderValue::from_str(image.manifest.media_type.as_ref()).expect("OCI media types are valid header values");
        self.client
            .push_manifest_raw(reference, image.manifest.data.clone(), media_type)
            .await
            .map_err(|source| PushError::Manifest {
                reference: whole(),
                source,
            })?;
        let registry = self
            .client
            .fetch_manifest_digest(reference, &self.auth)
            .await
            .map_err(|source| PushError::ReadBack {
                reference: whole(),
                source,
            })?;
        let built = image.manifest.digest.to_string();
        if registry != built {
            return Err(PushError::DigestMismatch {
                reference: whole(),
                registry,
                built,
            });
        }
        Ok(built)
    }
}

/// Pushes every built image under `tag`; returns `reference@digest` lines.
pub async fn push_all(target: &Target, tag: &str, built: &[Built]) -> Result<Vec<String>, PushError> {
    let pusher = Pusher::new(target, auth_from_env())?;
    let mut lines = Vec::new();
    for b in built {
        let digest = pusher.push_image(&target.reference(b.name, tag), &b.image).await?;
        lines.push(format!("{}/{}:{tag}@{digest}", target.reference_prefix(), b.name));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests;
