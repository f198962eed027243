//! The CSI Identity service: plugin name and version, capabilities, and a Probe that asks the
//! driver whether it is ready.

use std::collections::HashMap;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::proto;
use crate::proto::plugin_capability;

/// Answers Probe. Implemented by the driver (for example: cloud credentials checked, node tools
/// present).
#[tonic::async_trait]
pub trait Readiness: Send + Sync + 'static {
    /// `Ok(true)`: ready; `Ok(false)`: healthy but still starting; `Err(reason)`: unhealthy
    /// (reported as `FAILED_PRECONDITION`).
    async fn ready(&self) -> Result<bool, String>;
}

/// A [`Readiness`] that is always ready (for drivers without start-up work).
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysReady;

#[tonic::async_trait]
impl Readiness for AlwaysReady {
    async fn ready(&self) -> Result<bool, String> {
        Ok(true)
    }
}

/// The plugin name is not a valid CSI driver name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid plugin name {name:?}: {reason}")]
pub struct InvalidPluginName {
    /// The rejected name.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Checks the CSI rules for a plugin name: at most 63 characters, alphanumerics with `-` and `.`
/// inside, alphanumeric at both ends.
pub fn validate_plugin_name(name: &str) -> Result<(), InvalidPluginName> {
    let err = |reason| InvalidPluginName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() || name.len() > 63 {
        return Err(err("must be 1 to 63 characters"));
    }
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !ends_ok(name.chars().next()) || !ends_ok(name.chars().last()) {
        return Err(err("must begin and end with an alphanumeric character"));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
        return Err(err("may contain only alphanumerics, '-' and '.'"));
    }
    Ok(())
}

/// The CSI Identity service: GetPluginInfo (name, version, manifest), GetPluginCapabilities (the services added
/// with [`Self::with_service`] and the expansion mode) and Probe (asks its [`Readiness`]).
#[derive(Clone)]
pub struct IdentityService {
    name: String,
    version: String,
    manifest: HashMap<String, String>,
    capabilities: Vec<proto::PluginCapability>,
    readiness: Arc<dyn Readiness>,
}

impl std::fmt::Debug for IdentityService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityService")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("capabilities", &self.capabilities)
            .finish_non_exhaustive()
    }
}

impl IdentityService {
    /// A service named `name` (validated) at `version`, with no capabilities yet.
    pub fn new(name: &str, version: &str, readiness: Arc<dyn Readiness>) -> Result<Self, InvalidPluginName> {
        validate_plugin_name(name)?;
        Ok(Self {
            name: name.to_string(),
            version: version.to_string(),
            manifest: HashMap::new(),
            capabilities: Vec::new(),
            readiness,
        })
    }

    /// Adds a service capability (CONTROLLER_SERVICE, VOLUME_ACCESSIBILITY_CONSTRAINTS, ...).
    pub fn with_service(mut self, t: plugin_capability::service::Type) -> Self {
        self.capabilities.push(proto::PluginCapability {
            r#type: Some(plugin_capability::Type::Service(plugin_capability::Service {
                r#type: t as i32,
            })),
        });
        self
    }

    /// Adds a volume-expansion capability (ONLINE or OFFLINE).
    pub fn with_expansion(mut self, t: plugin_capability::volume_expansion::Type) -> Self {
        self.capabilities.push(proto::PluginCapability {
            r#type: Some(plugin_capability::Type::VolumeExpansion(
                plugin_capability::VolumeExpansion { r#type: t as i32 },
            )),
        });
        self
    }

    /// Adds a manifest entry (opaque to the CO).
    pub fn with_manifest(mut self, key: &str, value: &str) -> Self {
        self.manifest.insert(key.to_string(), value.to_string());
        self
    }
}

#[tonic::async_trait]
impl proto::identity_server::Identity for IdentityService {
    async fn get_plugin_info(
        &self,
        _request: Request<proto::GetPluginInfoRequest>,
    ) -> Result<Response<proto::GetPluginInfoResponse>, Status> {
        Ok(Response::new(proto::GetPluginInfoResponse {
            name: self.name.clone(),
            vendor_version: self.version.clone(),
            manifest: self.manifest.clone(),
        }))
    }

    async fn get_plugin_capabilities(
        &self,
        _request: Request<proto::GetPluginCapabilitiesRequest>,
    ) -> Result<Response<proto::GetPluginCapabilitiesResponse>, Status> {
        Ok(Response::new(proto::GetPluginCapabilitiesResponse {
            capabilities: self.capabilities.clone(),
        }))
    }

    async fn probe(&self, _request: Request<proto::ProbeRequest>) -> Result<Response<proto::ProbeResponse>, Status> {
        match self.readiness.ready().await {
            Ok(ready) => Ok(Response::new(proto::ProbeResponse { ready: Some(ready) })),
            Err(reason) => Err(Status::failed_precondition(format!("plugin is not healthy: {reason}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::identity_server::Identity;

    struct Sick;
    #[tonic::async_trait]
    impl Readiness for Sick {
        async fn ready(&self) -> Result<bool, String> {
            Err("mkfs.xfs missing".into())
        }
    }

    #[test]
    fn plugin_names() {
        for ok in ["additional-storage.csi.nifcloud.com", "a", "x1.y-2"] {
            assert!(validate_plugin_name(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(64);
        for (bad, reason) in [
            ("", "must be 1 to 63 characters"),
            (long.as_str(), "must be 1 to 63 characters"),
            ("-a", "must begin and end with an alphanumeric character"),
            ("a-", "must begin and end with an alphanumeric character"),
            ("a_b", "may contain only alphanumerics, '-' and '.'"),
            ("a b", "may contain only alphanumerics, '-' and '.'"),
        ] {
            assert_eq!(
                validate_plugin_name(bad),
                Err(InvalidPluginName {
                    name: bad.to_string(),
                    reason
                }),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn probe_asks_readiness() {
        let ok = IdentityService::new("x.example.com", "1", Arc::new(AlwaysReady)).unwrap();
        let r = ok.probe(Request::new(proto::ProbeRequest {})).await.unwrap();
        assert_eq!(r.into_inner().ready, Some(true));
        let sick = IdentityService::new("x.example.com", "1", Arc::new(Sick)).unwrap();
        let e = sick.probe(Request::new(proto::ProbeRequest {})).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        assert!(e.message().contains("mkfs.xfs"));
    }
}
