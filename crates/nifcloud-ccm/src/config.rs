//! Configuration: flags, environment (compatible with the original CCM) and the `--cloud-config` YAML file.
//!
//! | Setting | Flag / environment | File key | Default |
//! |---|---|---|---|
//! | access key | `NIFCLOUD_ACCESS_KEY_ID` | — | required |
//! | secret key | `NIFCLOUD_SECRET_ACCESS_KEY` | — | required |
//! | region | `NIFCLOUD_REGION` or `NIFCLOUD_DEFAULT_REGION` (wins over the file) | `region` | required |
//! | endpoint | `--nifcloud-endpoint`, `NIFCLOUD_ENDPOINT_URL` | `endpoint` | the region's |
//! | describe cache TTL | — | `cacheTTL` (a Go duration: `8s`, `500ms`, `1m30s`) | `8s` |
//! | default LB type | — | `loadBalancer.defaultType` (`lb`/`elb`) | `lb` |
//! | default accounting type | — | `loadBalancer.accountingType` (`1` monthly / `2` pay-per-use) | API default |
//! | default network volume | — | `loadBalancer.networkVolume` (Mbps) | API default |
//! | ELB wait timeout | — | `loadBalancer.elbWaitTimeout` (a Go duration) | `10m` |
//! | security-group rules | `--security-group-rules`, `NIFCLOUD_SECURITY_GROUP_RULES` (wins over the file) | `securityGroup.manageRules` (bool) | off |
//! | the nodes' security group | `--security-group-name`, `NIFCLOUD_SECURITY_GROUP_NAME` (wins over the file) | `securityGroup.groupName` | the one group of the backend servers |
//! | the file itself | `--cloud-config`, `NIFCLOUD_CLOUD_CONFIG` | — | none |
//!
//! Credentials are never read from the file (keep them in a Secret). Durations use Go syntax, as the framework's
//! flags do ([`cloudprovider::args::parse_duration`]). Booleans from the command line or the environment accept
//! `true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0`. Every problem is collected and reported at once.
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
use crate::error::Error;
use crate::model::AccountingType;

/// The provider's own command-line flags (flatten into the binary's parser).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct NifcloudArgs {
    /// The cloud config: `--cloud-config` and the flags that set its keys directly. `None` when none of them is
    /// given (on the command line or in the environment).
    #[command(flatten)]
    pub cloud_config: Option<CloudConfigArgs>,
    /// NIFCLOUD API endpoint override (for example an emulator); wins over NIFCLOUD_ENDPOINT_URL and the file.
    #[arg(long = "nifcloud-endpoint")]
    pub endpoint: Option<String>,
}

/// `--cloud-config` and the flags that set cloud-config keys directly; a flag (or its environment variable) wins
/// over the file's key, so a setting can be switched without mounting or editing a file.
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct CloudConfigArgs {
    /// Path of the NIFCLOUD cloud-config YAML file.
    #[arg(long = "cloud-config", env = "NIFCLOUD_CLOUD_CONFIG")]
    pub file: Option<PathBuf>,
    /// Write security-group rules that admit each load balancer to the NodePorts (`securityGroup.manageRules`);
    /// `--security-group-rules` alone means true.
    #[arg(
        long = "security-group-rules",
        env = "NIFCLOUD_SECURITY_GROUP_RULES",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub security_group_rules: Option<bool>,
    /// The nodes' security group, for the rules (`securityGroup.groupName`).
    #[arg(
        long = "security-group-name",
        env = "NIFCLOUD_SECURITY_GROUP_NAME",
        value_name = "NAME"
    )]
    pub security_group_name: Option<String>,
}

impl CloudConfigArgs {
    /// Only a file.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self {
            file: Some(path.into()),
            ..Self::default()
        }
    }
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

/// Security-group rule management (`securityGroup` in the cloud config, present when `manageRules: true`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityGroupSettings {
    /// `securityGroup.groupName`: the security group the nodes are in. `None`: the one group every backend server
    /// of a Service is in (when they are in several, no rule is written and the Service gets a Warning Event).
    pub group_name: Option<String>,
}

/// The resolved settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The NIFCLOUD region, such as `jp-east-1`: the API endpoint and the region label of every Node.
    pub region: String,
    /// An API endpoint URL instead of the region's (an emulator, a proxy).
    pub endpoint: Option<String>,
    /// The API access key id (`NIFCLOUD_ACCESS_KEY_ID`).
    pub access_key_id: String,
    /// The API secret key (`NIFCLOUD_SECRET_ACCESS_KEY`); never printed.
    pub secret_access_key: nifcloud_sdk::credentials::Secret,
    /// How long a region-wide describe (servers, load balancers) is reused by every Service and Node before the
    /// next one.
    pub cache_ttl: Duration,
    /// What a Service gets when its annotations do not say.
    pub lb_defaults: LbDefaults,
    /// How long a change to an elastic load balancer may wait for it to be `available` (the API refuses changes
    /// meanwhile) before the reconcile fails and is retried.
    pub elb_wait_timeout: Duration,
    /// Security-group rule management; `None`: off (rules are neither written nor removed).
    pub security_group: Option<SecurityGroupSettings>,
}

impl Settings {
    /// Resolves flags, environment (through `env`) and the file; reports every problem at once
    /// ([`Error::Configuration`]).
    pub fn resolve(args: &NifcloudArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, Error> {
        let mut problems = Vec::new();
        let env = |k: &str| env(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let overrides = args.cloud_config.clone().unwrap_or_default();
        let file = match &overrides.file {
            None => File::default(),
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) if text.trim().is_empty() => File::default(),
                // A document with nothing in it (only comments, a bare `---`) sets nothing.
                Ok(text) => serde_saphyr::from_str::<Option<File>>(&text)
                    .map(Option::unwrap_or_default)
                    .unwrap_or_else(|e| {
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
            Some(s) => cloudprovider::args::parse_duration(&s).unwrap_or_else(|e| {
                problems.push(format!("{what}: {e}"));
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
        let accounting_type = lb.accounting_type.as_deref().and_then(|v| {
            AccountingType::parse(v).or_else(|| {
                problems.push(format!("loadBalancer.accountingType: {v:?} is not 1 or 2"));
                None
            })
        });
        if let Some(v) = lb.network_volume
            && !(matches!(v, 10 | 20 | 30 | 40) || ((100..=2000).contains(&v) && v % 100 == 0))
        {
            problems.push(format!(
                "loadBalancer.networkVolume: {v} is not 10, 20, 30, 40 or 100-2000 step 100"
            ));
        }
        // A flag (or its environment variable) wins over the file's key.
        let manage_rules = overrides
            .security_group_rules
            .unwrap_or(file.security_group.manage_rules);
        let (group_name, group_source) = match overrides.security_group_name.as_deref().map(str::trim) {
            Some(g) if !g.is_empty() => (
                Some(g.to_owned()),
                "--security-group-name (NIFCLOUD_SECURITY_GROUP_NAME)",
            ),
            _ => (file.security_group.group_name.clone(), "securityGroup.groupName"),
        };
        if let Some(g) = &group_name
            && !crate::annotations::valid_lb_name(g)
        {
            problems.push(format!("{group_source}: {g:?} must be 1-15 ASCII letters or digits"));
        }
        let security_group = manage_rules.then_some(SecurityGroupSettings { group_name });
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
            _ => Err(Error::Configuration { problems }),
        }
    }

    /// Resolves with the process environment.
    pub fn from_env(args: &NifcloudArgs) -> Result<Settings, Error> {
        Self::resolve(args, &|k| std::env::var(k).ok())
    }

    /// The SDK configuration: region, endpoint, credentials and this binary's user agent.
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

    fn problems(result: Result<Settings, Error>) -> Vec<String> {
        match result {
            Err(Error::Configuration { problems }) => problems,
            other => panic!("not a configuration error: {other:?}"),
        }
    }

    fn with_file(yaml: &str) -> (tempfile::TempDir, NifcloudArgs) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cloud.yaml");
        std::fs::write(&path, yaml).unwrap();
        let args = NifcloudArgs {
            cloud_config: Some(CloudConfigArgs::file(path)),
            endpoint: None,
        };
        (dir, args)
    }

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
            cloud_config: Some(CloudConfigArgs::file(path)),
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
            (Some(AccountingType::PayPerUse), Some(100))
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
            cloud_config: Some(CloudConfigArgs::file(path)),
            endpoint: Some("ftp://x".into()),
        };
        let err = problems(Settings::resolve(&args, &env_of(&[("NIFCLOUD_REGION", "mars-1")])));
        let text = err.join("\n");
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
        assert_eq!(err.len(), 7, "{text}");
        let (_dir, unknown) = with_file("regoin: jp-east-1\n");
        let err = problems(Settings::resolve(&unknown, &env_of(&CREDS)));
        assert!(err.iter().any(|p| p.contains("regoin")), "{err:?}");
        let missing = Settings::resolve(
            &NifcloudArgs {
                cloud_config: Some(CloudConfigArgs::file("/nonexistent/cloud.yaml")),
                endpoint: None,
            },
            &env_of(&CREDS),
        )
        .unwrap_err();
        // One line, every problem: the missing file and the missing region.
        assert_eq!(
            missing.to_string(),
            "invalid configuration: cloud config /nonexistent/cloud.yaml: No such file or directory (os error 2); \
             no region: set NIFCLOUD_REGION or `region` in the cloud config"
        );
    }

    #[test]
    fn durations_use_go_syntax_like_the_framework_flags() {
        let env = env_of(&[CREDS[0], CREDS[1], ("NIFCLOUD_REGION", "jp-east-1")]);
        let (_dir, args) = with_file("cacheTTL: 1m30s\nloadBalancer:\n  elbWaitTimeout: 1.5s\n");
        let s = Settings::resolve(&args, &env).unwrap();
        assert_eq!(
            (s.cache_ttl, s.elb_wait_timeout),
            (Duration::from_secs(90), Duration::from_millis(1500))
        );
        for bad in ["7", "5d", "x"] {
            let (_dir, args) = with_file(&format!("cacheTTL: \"{bad}\"\n"));
            let err = problems(Settings::resolve(&args, &env));
            assert_eq!(
                err,
                vec![format!(
                    "cacheTTL: invalid duration {bad:?}: use Go syntax such as 500ms, 15s, 5m or 1h30m"
                )]
            );
        }
    }

    #[test]
    fn security_group_flags_win_over_the_file() {
        let env = env_of(&[CREDS[0], CREDS[1], ("NIFCLOUD_REGION", "jp-east-1")]);
        let on_in_file = "securityGroup:\n  manageRules: true\n  groupName: fwk8s\n";
        let sg = |name: Option<&str>| {
            Some(SecurityGroupSettings {
                group_name: name.map(str::to_owned),
            })
        };
        // (file, --security-group-rules, --security-group-name, resolved)
        let table = [
            ("", None, None, None),
            ("", Some(true), None, sg(None)),
            ("", Some(true), Some("k8snodes"), sg(Some("k8snodes"))),
            ("", None, Some("k8snodes"), None),
            (on_in_file, None, None, sg(Some("fwk8s"))),
            (on_in_file, Some(false), None, None),
            (on_in_file, None, Some("k8snodes"), sg(Some("k8snodes"))),
            (on_in_file, Some(true), Some("  "), sg(Some("fwk8s"))),
            ("securityGroup:\n  manageRules: false\n", Some(true), None, sg(None)),
        ];
        for (i, (yaml, rules, name, want)) in table.into_iter().enumerate() {
            let (_dir, mut args) = with_file(yaml);
            let cc = args.cloud_config.as_mut().unwrap();
            cc.security_group_rules = rules;
            cc.security_group_name = name.map(str::to_owned);
            let s = Settings::resolve(&args, &env).unwrap();
            assert_eq!(s.security_group, want, "row {i}");
        }
        // the flags work without a file
        let args = NifcloudArgs {
            cloud_config: Some(CloudConfigArgs {
                file: None,
                security_group_rules: Some(true),
                security_group_name: Some("k8snodes".into()),
            }),
            endpoint: None,
        };
        assert_eq!(
            Settings::resolve(&args, &env).unwrap().security_group,
            sg(Some("k8snodes"))
        );
        // the name that wins is checked, and the message says where it came from
        let (_dir, mut args) = with_file(on_in_file);
        args.cloud_config.as_mut().unwrap().security_group_name = Some("k8s-nodes".into());
        assert_eq!(
            problems(Settings::resolve(&args, &env)),
            vec![
                "--security-group-name (NIFCLOUD_SECURITY_GROUP_NAME): \"k8s-nodes\" must be 1-15 ASCII letters or digits"
                    .to_owned()
            ]
        );
        let (_dir, args) = with_file("securityGroup:\n  groupName: k8s_nodes\n");
        assert_eq!(
            problems(Settings::resolve(&args, &env)),
            vec!["securityGroup.groupName: \"k8s_nodes\" must be 1-15 ASCII letters or digits".to_owned()]
        );
    }

    /// The cloud config the manifests ship (`deploy/base/ccm/cloud-config.yaml`, mounted with `--cloud-config`)
    /// parses and changes nothing: every setting is the default.
    #[test]
    fn the_shipped_cloud_config_is_the_defaults() {
        let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/base/ccm/cloud-config.yaml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        let cm: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(cm["kind"], "ConfigMap");
        let yaml = cm["data"]["cloud.yaml"].as_str().expect("data.cloud.yaml");
        let env = env_of(&[CREDS[0], CREDS[1], ("NIFCLOUD_REGION", "jp-east-1")]);
        let (_dir, args) = with_file(yaml);
        let shipped = Settings::resolve(&args, &env).unwrap();
        let none = Settings::resolve(&NifcloudArgs::default(), &env).unwrap();
        assert_eq!(
            (
                shipped.cache_ttl,
                &shipped.lb_defaults,
                shipped.elb_wait_timeout,
                &shipped.security_group,
                &shipped.endpoint
            ),
            (
                none.cache_ttl,
                &none.lb_defaults,
                none.elb_wait_timeout,
                &none.security_group,
                &none.endpoint
            )
        );
    }

    #[test]
    fn a_file_of_comments_only_is_the_defaults() {
        let env = env_of(&[CREDS[0], CREDS[1], ("NIFCLOUD_REGION", "jp-east-1")]);
        for yaml in ["# nothing set\n", "", "{}\n", "---\n# only a comment\n"] {
            let (_dir, args) = with_file(yaml);
            let s = Settings::resolve(&args, &env).unwrap_or_else(|e| panic!("{yaml:?}: {e}"));
            assert!(s.security_group.is_none(), "{yaml:?}");
        }
    }

    #[test]
    fn unquoted_numbers_are_read_as_the_strings_they_spell() {
        let env = env_of(&[CREDS[0], CREDS[1], ("NIFCLOUD_REGION", "jp-east-1")]);
        let (_dir, args) = with_file("loadBalancer:\n  accountingType: 1\n");
        let s = Settings::resolve(&args, &env).unwrap();
        assert_eq!(s.lb_defaults.accounting_type, Some(AccountingType::Monthly));
    }
}
