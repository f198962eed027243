//! Client configuration: region, endpoint, credentials, signing, retries and timeouts.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::credentials::{Credentials, ProfileFiles};
use crate::metrics::MetricsHook;
use crate::region::Region;
use crate::retry::RetryConfig;
use crate::signing::SignatureMethod;

/// Environment variables that name the region, in order of precedence. `NIFCLOUD_REGION` is what the original
/// Kubernetes integrations read; `NIFCLOUD_DEFAULT_REGION` is the official SDKs' name.
pub const ENV_REGION: [&str; 2] = ["NIFCLOUD_DEFAULT_REGION", "NIFCLOUD_REGION"];
/// Environment variable that overrides the endpoint URL (for the emulator or a proxy).
pub const ENV_ENDPOINT: &str = "NIFCLOUD_ENDPOINT_URL";

/// Everything that was wrong with a configuration, reported together.
#[derive(Debug, thiserror::Error)]
#[error("invalid NIFCLOUD configuration: {}", problems.join("; "))]
pub struct ConfigError {
    /// One sentence per problem.
    pub problems: Vec<String>,
}

/// The configuration of a [`crate::Client`].
#[derive(Clone)]
pub struct Config {
    pub(crate) region: Region,
    pub(crate) endpoint: reqwest::Url,
    pub(crate) credentials: Credentials,
    pub(crate) signature_method: SignatureMethod,
    pub(crate) retry: RetryConfig,
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) user_agent: String,
    pub(crate) metrics: Option<Arc<dyn MetricsHook>>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint.as_str())
            .field("credentials", &self.credentials)
            .field("signature_method", &self.signature_method)
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// A builder for a configuration.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    /// The region, endpoint and credentials from the environment and the official CLI's profile files.
    ///
    /// Region: `NIFCLOUD_DEFAULT_REGION`, `NIFCLOUD_REGION`, then the profile's `region`. Endpoint:
    /// `NIFCLOUD_ENDPOINT_URL`, else the region's. Credentials: see [`Credentials::from_default_chain`].
    pub fn from_env() -> Result<Config, ConfigError> {
        let mut builder = Config::builder();
        let mut problems = Vec::new();
        let profile = ProfileFiles::profile_from_env();
        let region = ENV_REGION
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()));
        let region = match region {
            Some(r) => Some(r),
            None => ProfileFiles::from_env().region(&profile).unwrap_or_else(|e| {
                problems.push(e.to_string());
                None
            }),
        };
        if let Some(r) = region {
            builder = builder.region_name(&r);
        }
        if let Some(endpoint) = std::env::var(ENV_ENDPOINT).ok().filter(|s| !s.is_empty()) {
            builder = builder.endpoint(endpoint);
        }
        match Credentials::from_default_chain() {
            Ok(c) => builder = builder.credentials(c),
            Err(e) => problems.push(e.to_string()),
        }
        builder.build_with(problems)
    }

    /// The region (`jp-east-1`, …): requests go to its computing endpoint unless an endpoint was set explicitly.
    pub fn region(&self) -> &Region {
        &self.region
    }
    /// The endpoint URL requests are sent to.
    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }
    /// The access key pair every request is signed with.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }
    /// How often and how patiently calls are retried (which failures are retried: [`crate::retry::should_retry`]).
    pub fn retry(&self) -> &RetryConfig {
        &self.retry
    }
}

/// Builds a [`Config`]; [`ConfigBuilder::build`] reports every problem at once.
#[derive(Default)]
pub struct ConfigBuilder {
    region: Option<Result<Region, String>>,
    endpoint: Option<String>,
    credentials: Option<Credentials>,
    signature_method: SignatureMethod,
    retry: Option<RetryConfig>,
    timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    user_agent: Option<String>,
    metrics: Option<Arc<dyn MetricsHook>>,
}

impl ConfigBuilder {
    /// Sets the region.
    pub fn region(mut self, region: Region) -> Self {
        self.region = Some(Ok(region));
        self
    }
    /// Sets the region by name; an unknown or short name is reported by `build`.
    pub fn region_name(mut self, name: &str) -> Self {
        self.region = Some(Region::new(name).map_err(|e| e.to_string()));
        self
    }
    /// Sends requests to this URL instead of the region's endpoint (the emulator, a proxy).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }
    /// Sets the credentials.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }
    /// Chooses the signature HMAC (default HmacSHA256).
    pub fn signature_method(mut self, method: SignatureMethod) -> Self {
        self.signature_method = method;
        self
    }
    /// Sets the retry policy.
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = Some(retry);
        self
    }
    /// Sets the timeout of one HTTP attempt (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// Sets the connect timeout (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }
    /// Sets the user agent (default `nifcloud-sdk-rust/<version>`).
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = Some(ua.into());
        self
    }
    /// Installs a metrics hook.
    pub fn metrics(mut self, hook: Arc<dyn MetricsHook>) -> Self {
        self.metrics = Some(hook);
        self
    }

    /// Builds the configuration, or reports every problem together.
    pub fn build(self) -> Result<Config, ConfigError> {
        self.build_with(Vec::new())
    }

    fn build_with(self, mut problems: Vec<String>) -> Result<Config, ConfigError> {
        let region = match self.region {
            Some(Ok(r)) => Some(r),
            Some(Err(e)) => {
                problems.push(e);
                None
            }
            None if self.endpoint.is_some() => Region::new("jp-east-1").ok(),
            None => {
                problems.push(format!(
                    "no region: set {} (for example jp-east-1)",
                    ENV_REGION.join(" or ")
                ));
                None
            }
        };
        let endpoint_text = self
            .endpoint
            .clone()
            .or_else(|| region.as_ref().map(Region::computing_endpoint));
        let endpoint = match endpoint_text.as_deref().map(reqwest::Url::parse) {
            Some(Ok(url)) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => Some(url),
            Some(Ok(url)) => {
                problems.push(format!("endpoint {url} is not an http(s) URL with a host"));
                None
            }
            Some(Err(e)) => {
                problems.push(format!(
                    "endpoint {:?} is not a URL: {e}",
                    endpoint_text.unwrap_or_default()
                ));
                None
            }
            None => None,
        };
        if self.credentials.is_none() && !problems.iter().any(|p| p.contains("credentials")) {
            problems.push("no credentials given".to_owned());
        }
        match (region, endpoint, self.credentials) {
            (Some(region), Some(endpoint), Some(credentials)) if problems.is_empty() => Ok(Config {
                region,
                endpoint,
                credentials,
                signature_method: self.signature_method,
                retry: self.retry.unwrap_or_default(),
                timeout: self.timeout.unwrap_or(Duration::from_secs(60)),
                connect_timeout: self.connect_timeout.unwrap_or(Duration::from_secs(10)),
                user_agent: self
                    .user_agent
                    .unwrap_or_else(|| concat!("nifcloud-sdk-rust/", env!("CARGO_PKG_VERSION")).to_owned()),
                metrics: self.metrics,
            }),
            _ => Err(ConfigError { problems }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_gives_the_endpoint_and_override_wins() {
        let creds = Credentials::new("A", "B");
        let c = Config::builder()
            .region_name("jp-west-1")
            .credentials(creds.clone())
            .build()
            .unwrap();
        assert_eq!(c.endpoint(), "https://jp-west-1.computing.api.nifcloud.com/api/");
        let c = Config::builder()
            .region_name("jp-west-1")
            .endpoint("http://127.0.0.1:9/api/")
            .credentials(creds)
            .build()
            .unwrap();
        assert_eq!(c.endpoint(), "http://127.0.0.1:9/api/");
    }

    #[test]
    fn every_problem_is_reported_together() {
        let err = Config::builder()
            .region_name("east-1")
            .endpoint("ftp://x")
            .build()
            .unwrap_err();
        assert_eq!(err.problems.len(), 3, "{err}");
        let text = err.to_string();
        assert!(
            text.contains("jp-east-1") && text.contains("ftp://x") && text.contains("credentials"),
            "{text}"
        );
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let c = Config::builder()
            .region_name("jp-east-1")
            .credentials(Credentials::new("AKID", "topsecret"))
            .build()
            .unwrap();
        let shown = format!("{c:?}");
        assert!(shown.contains("AKID") && !shown.contains("topsecret"), "{shown}");
    }
}
