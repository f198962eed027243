//! Configuration: flags, environment (compatible with the original CCM) and the `--cloud-config` YAML file.
//!
//! | Setting | Flag / environment | File key | Default |
//! |---|---|---|---|
//! | access key | `NIFCLOUD_ACCESS_KEY_ID` | — | required |
//! | secret key | `NIFCLOUD_SECRET_ACCESS_KEY` | — | required |
//! | region | `NIFCLOUD_REGION` or `NIFCLOUD_DEFAULT_REGION` (wins over the file) | `region` | required |
//! | endpoint | `--nifcloud-endpoint`, `NIFCLOUD_ENDPOINT_URL` | `endpoint` | the region's |
//! | describe cache TTL | — | `cacheTTL` (`8s`, `500ms`) | `8s` |
//! | default LB type | — | `loadBalancer.defaultType` (`lb`/`elb`) | `lb` |
//! | default accounting type | — | `loadBalancer.accountingType` (`1`/`2`) | API default |
//! | default network volume | — | `loadBalancer.networkVolume` | API default |
//! | ELB wait timeout | — | `loadBalancer.elbWaitTimeout` | `10m` |
//! | security-group rules | — | `securityGroup.manageRules` (bool), `securityGroup.groupName` | off |
//!
//! Credentials are never read from the file (keep them in a Secret). Every problem is collected and reported at
//! once.
//!
//! ```yaml
//! region: jp-east-1
//! cacheTTL: 8s
//! loadBalancer:
//!   defaultType: lb
//!   networkVolume: 100
//! securityGroup:
//!   manageRules: true
//!   groupName: k8snodes
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::annotations::{LbDefaults, LbKind};

/// The provider's own command-line flags (flatten into the binary's parser).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct NifcloudArgs {
    /// Path of the NIFCLOUD cloud-config YAML file.
    #[arg(long = "cloud-config", env = "NIFCLOUD_CLOUD_CONFIG")]
    pub cloud_config: Option<PathBuf>,
    /// NIFCLOUD API endpoint override (for example an emulator); wins over NIFCLOUD_ENDPOINT_URL and the file.
    #[arg(long = "nifcloud-endpoint")]
    pub endpoint: Option<String>,
}

/// Everything wrong with the configuration.
#[derive(Debug, thiserror::Error)]
#[error("invalid NIFCLOUD cloud-provider configuration:\n  - {}", problems.join("\n  - "))]
pub struct ConfigError {
    /// One sentence per problem.
    pub problems: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct File {
    region: Option<String>,
    endpoint: Option<String>,
    #[serde(rename = "cacheTTL")]
    cache_ttl: Option<String>,
    #[serde(rename = "loadBalancer")]
    load_balancer: LbSection,
    #[serde(rename = "securityGroup")]
    security_group: SgSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct LbSection {
    #[serde(rename = "defaultType")]
    default_type: Option<String>,
    #[serde(rename = "accountingType")]
    accounting_type: Option<String>,
    #[serde(rename = "networkVolume")]
    network_volume: Option<i64>,
    #[serde(rename = "elbWaitTimeout")]
    elb_wait_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SgSection {
    #[serde(rename = "manageRules")]
    manage_rules: bool,
    #[serde(rename = "groupName")]
    group_name: Option<String>,
}

/// Security-group rule management.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityGroupSettings {
    /// The group the nodes are in; `None`: the group of the backend servers (they must agree).
    pub group_name: Option<String>,
}

/// The resolved settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The region.
    pub region: String,
    /// The endpoint override.
    pub endpoint: Option<String>,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: nifcloud_sdk::credentials::Secret,
    /// TTL of the shared describe views.
    pub cache_ttl: Duration,
    /// Defaults for Services.
    pub lb_defaults: LbDefaults,
    /// How long to wait for an elastic load balancer to become available after a change.
    pub elb_wait_timeout: Duration,
    /// Security-group rule management, when enabled.
    pub security_group: Option<SecurityGroupSettings>,
}

/// Parses `8s`, `500ms`, `10m`, `1h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit()).map_or((s, ""), |i| s.split_at(i));
    let n: u64 = num.parse().ok()?;
    match unit {
        "" | "s" => Some(Duration::from_secs(n)),
        "ms" => Some(Duration::from_millis(n)),
        "m" => Some(Duration::from_secs(n * 60)),
        "h" => Some(Duration::from_secs(n * 3600)),
        _ => None,
    }
}

impl Settings {
    /// Resolves flags, environment (through `env`) and the file; reports every problem at once.
    pub fn resolve(args: &NifcloudArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let mut problems = Vec::new();
        let env = |k: &str| env(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let file = match &args.cloud_config {
            None => File::default(),
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) if text.trim().is_empty() => File::default(),
                Ok(text) => serde_yaml::from_str::<File>(&text).unwrap_or_else(|e| {
                    problems.push(format!("cloud config {}: {e}", path.display()));
                    File::default()
                }),
                Err(e) => {
                    problems.push(format!("cloud config {}: {e}", path.display()));
                    File::default()
                }
            },
        };
        let access_key_id = env(nifcloud_sdk::credentials::ENV_ACCESS_KEY_ID);
        if access_key_id.is_none() {
            problems.push("NIFCLOUD_ACCESS_KEY_ID is not set".into());
        }
        let secret = env(nifcloud_sdk::credentials::ENV_SECRET_ACCESS_KEY);
        if secret.is_none() {
            problems.push("NIFCLOUD_SECRET_ACCESS_KEY is not set".into());
        }
        let region = env("NIFCLOUD_REGION")
            .or_else(|| env("NIFCLOUD_DEFAULT_REGION"))
            .or(file.region.clone());
        match &region {
            None => problems.push("no region: set NIFCLOUD_REGION or `region` in the cloud config".into()),
            Some(r) => {
                if let Err(e) = nifcloud_sdk::Region::new(r) {
                    problems.push(format!("region {r:?}: {e}"));
                }
            }
        }
        let endpoint = args
            .endpoint
            .clone()
            .or_else(|| env("NIFCLOUD_ENDPOINT_URL"))
            .or(file.endpoint);
        if let Some(e) = &endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            problems.push(format!("endpoint {e:?} is not an http(s) URL"));
        }
        let mut duration = |what: &str, v: Option<String>, default: Duration| match v {
            None => default,
            Some(s) => parse_duration(&s).unwrap_or_else(|| {
                problems.push(format!("{what}: {s:?} is not a duration (like 8s, 500ms, 10m)"));
                default
            }),
        };
        let cache_ttl = duration("cacheTTL", file.cache_ttl, nifcloud_cloud::cache::DEFAULT_TTL);
        let lb = file.load_balancer;
        let elb_wait_timeout = duration(
            "loadBalancer.elbWaitTimeout",
            lb.elb_wait_timeout.clone(),
            Duration::from_secs(600),
        );
        let kind = match lb.default_type.as_deref() {
            None => LbKind::L4,
            Some(t) => LbKind::parse(t).unwrap_or_else(|| {
                problems.push(format!("loadBalancer.defaultType: {t:?} is not lb or elb"));
                LbKind::L4
            }),
        };
        let accounting_type = match lb.accounting_type.as_deref() {
            None => None,
            Some("1") => Some(1),
            Some("2") => Some(2),
            Some(v) => {
                problems.push(format!("loadBalancer.accountingType: {v:?} is not 1 or 2"));
                None
            }
        };
        if let Some(v) = lb.network_volume
            && !(matches!(v, 10 | 20 | 30 | 40) || ((100..=2000).contains(&v) && v % 100 == 0))
        {
            problems.push(format!(
                "loadBalancer.networkVolume: {v} is not 10, 20, 30, 40 or 100-2000 step 100"
            ));
        }
        let security_group = file.security_group.manage_rules.then(|| SecurityGroupSettings {
            group_name: file.security_group.group_name.clone(),
        });
        if let Some(g) = &file.security_group.group_name
            && !crate::annotations::valid_lb_name(g)
        {
            problems.push(format!(
                "securityGroup.groupName: {g:?} must be 1-15 ASCII letters or digits"
            ));
        }
        match (region, access_key_id, secret) {
            (Some(region), Some(access_key_id), Some(secret)) if problems.is_empty() => Ok(Settings {
                region,
                endpoint,
                access_key_id,
                secret_access_key: nifcloud_sdk::credentials::Secret::new(secret),
                cache_ttl,
                lb_defaults: LbDefaults {
                    kind,
                    accounting_type,
                    network_volume: lb.network_volume,
                },
                elb_wait_timeout,
                security_group,
            }),
            _ => Err(ConfigError { problems }),
        }
    }

    /// Resolves with the process environment.
    pub fn from_env(args: &NifcloudArgs) -> Result<Settings, ConfigError> {
        Self::resolve(args, &|k| std::env::var(k).ok())
    }

    /// The SDK configuration.
    pub fn sdk_config(&self) -> Result<nifcloud_sdk::Config, nifcloud_sdk::config::ConfigError> {
        let mut b = nifcloud_sdk::Config::builder()
            .region_name(&self.region)
            .credentials(nifcloud_sdk::Credentials::new(
                self.access_key_id.clone(),
                self.secret_access_key.expose().to_owned(),
            ))
            .user_agent(concat!("nifcloud-cloud-controller-manager/", env!("CARGO_PKG_VERSION")));
        if let Some(e) = &self.endpoint {
            b = b.endpoint(e.clone());
        }
        b.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    const CREDS: [(&str, &str); 2] = [("NIFCLOUD_ACCESS_KEY_ID", "AK"), ("NIFCLOUD_SECRET_ACCESS_KEY", "SK")];

    #[test]
    fn env_like_the_original() {
        let env = env_of(&[CREDS[0], CREDS[1], ("NIFCLOUD_REGION", "jp-east-1")]);
        let s = Settings::resolve(&NifcloudArgs::default(), &env).unwrap();
        assert_eq!(s.region, "jp-east-1");
        assert_eq!(s.cache_ttl, nifcloud_cloud::cache::DEFAULT_TTL);
        assert_eq!(s.lb_defaults, LbDefaults::default());
        assert!(s.security_group.is_none());
        assert!(!format!("{s:?}").contains("SK\""), "the secret is not printed: {s:?}");
        assert_eq!(
            s.sdk_config().unwrap().endpoint(),
            "https://jp-east-1.computing.api.nifcloud.com/api/"
        );
    }

    #[test]
    fn file_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cloud.yaml");
        std::fs::write(
            &path,
            "region: jp-west-1\nendpoint: http://file/api/\ncacheTTL: 500ms\nloadBalancer:\n  defaultType: elb\n  \
             accountingType: \"2\"\n  networkVolume: 100\n  elbWaitTimeout: 2m\nsecurityGroup:\n  manageRules: true\n  \
             groupName: fwk8s\n",
        )
        .unwrap();
        let args = NifcloudArgs {
            cloud_config: Some(path),
            endpoint: Some("http://127.0.0.1:1/api/".into()),
        };
        let s = Settings::resolve(&args, &env_of(&CREDS)).unwrap();
        assert_eq!(s.region, "jp-west-1");
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:1/api/"), "the flag wins");
        assert_eq!(s.cache_ttl, Duration::from_millis(500));
        assert_eq!(s.elb_wait_timeout, Duration::from_secs(120));
        assert_eq!(s.lb_defaults.kind, LbKind::Elastic);
        assert_eq!(
            (s.lb_defaults.accounting_type, s.lb_defaults.network_volume),
            (Some(2), Some(100))
        );
        assert_eq!(s.security_group.unwrap().group_name.as_deref(), Some("fwk8s"));
        // The environment's region wins over the file's.
        let args = NifcloudArgs {
            cloud_config: args.cloud_config,
            endpoint: None,
        };
        let s = Settings::resolve(&args, &env_of(&[CREDS[0], CREDS[1], ("NIFCLOUD_REGION", "jp-east-2")])).unwrap();
        assert_eq!(
            (s.region.as_str(), s.endpoint.as_deref()),
            ("jp-east-2", Some("http://file/api/"))
        );
    }

    #[test]
    fn all_problems_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cloud.yaml");
        std::fs::write(
            &path,
            "cacheTTL: soon\nloadBalancer:\n  defaultType: alb\n  networkVolume: 55\n",
        )
        .unwrap();
        let args = NifcloudArgs {
            cloud_config: Some(path),
            endpoint: Some("ftp://x".into()),
        };
        let err = Settings::resolve(&args, &env_of(&[("NIFCLOUD_REGION", "mars-1")])).unwrap_err();
        let text = err.to_string();
        for needle in [
            "NIFCLOUD_ACCESS_KEY_ID",
            "NIFCLOUD_SECRET_ACCESS_KEY",
            "mars-1",
            "ftp://x",
            "cacheTTL",
            "defaultType",
            "networkVolume",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        assert_eq!(err.problems.len(), 7, "{text}");
        let unknown = dir.path().join("bad.yaml");
        std::fs::write(&unknown, "regoin: jp-east-1\n").unwrap();
        let err = Settings::resolve(
            &NifcloudArgs {
                cloud_config: Some(unknown),
                endpoint: None,
            },
            &env_of(&CREDS),
        )
        .unwrap_err();
        assert!(err.to_string().contains("regoin"), "{err}");
        let missing = Settings::resolve(
            &NifcloudArgs {
                cloud_config: Some("/nonexistent/cloud.yaml".into()),
                endpoint: None,
            },
            &env_of(&CREDS),
        )
        .unwrap_err();
        assert_eq!(missing.problems.len(), 2, "{missing}");
    }

    #[test]
    fn durations() {
        let cases = [
            ("8s", Some(8_000)),
            ("500ms", Some(500)),
            ("2m", Some(120_000)),
            ("1h", Some(3_600_000)),
            ("7", Some(7_000)),
            ("x", None),
            ("5d", None),
        ];
        for (s, ms) in cases {
            assert_eq!(parse_duration(s).map(|d| d.as_millis() as u64), ms, "{s}");
        }
    }
}
