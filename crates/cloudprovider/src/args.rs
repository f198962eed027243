//! Command-line flags in kube-controller-manager style. Each group is a clap `Args` struct a binary can flatten
//! into its own; every flag also reads an environment variable (`CCM_*`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, ValueEnum};

use crate::server::{AuthConfig, CertificateSource, ServingConfig};

/// The controllers this crate runs.
pub const ALL_CONTROLLERS: [&str; 3] = ["service", "cloud-node", "cloud-node-lifecycle"];

/// A flag value that is not valid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    /// A duration does not parse.
    #[error("invalid duration {value:?}: use Go syntax such as 500ms, 15s, 5m or 1h30m")]
    Duration {
        /// The value given.
        value: String,
    },
    /// `--controllers` names a controller that does not exist.
    #[error("unknown controller {name:?} in --controllers (known: service, cloud-node, cloud-node-lifecycle, *)")]
    UnknownController {
        /// The name given.
        name: String,
    },
    /// Leader election timings that cannot work.
    #[error(
        "leader election needs lease-duration > renew-deadline > retry-period > 0 (got {lease:?}, {renew:?}, {retry:?})"
    )]
    LeaderTimings {
        /// `--leader-elect-lease-duration`.
        lease: Duration,
        /// `--leader-elect-renew-deadline`.
        renew: Duration,
        /// `--leader-elect-retry-period`.
        retry: Duration,
    },
}

/// Parses a Go duration (`300ms`, `15s`, `5m`, `1h30m`, `1.5s`). A bare `0` is zero.
pub fn parse_duration(value: &str) -> Result<Duration, ArgsError> {
    let err = || ArgsError::Duration {
        value: value.to_owned(),
    };
    let s = value.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(err());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(err)?;
        if num_len == 0 {
            return Err(err());
        }
        let number: f64 = rest[..num_len].parse().map_err(|_| err())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(err()),
        };
        total += number * factor;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| err())
}

fn duration_arg(value: &str) -> Result<Duration, String> {
    parse_duration(value).map_err(|e| e.to_string())
}

/// Lease-based leader election flags.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
pub struct LeaderElectionArgs {
    /// Run only while holding the leader lease (several replicas can run; one is active).
    #[arg(long = "leader-elect", env = "CCM_LEADER_ELECT", default_value_t = true, action = ArgAction::Set)]
    pub enabled: bool,
    /// How long a lease stays valid after its last renewal, as seen by the other candidates.
    #[arg(long = "leader-elect-lease-duration", env = "CCM_LEADER_ELECT_LEASE_DURATION", default_value = "15s", value_parser = duration_arg)]
    pub lease_duration: Duration,
    /// A leader that cannot renew within this time stops its controllers and exits.
    #[arg(long = "leader-elect-renew-deadline", env = "CCM_LEADER_ELECT_RENEW_DEADLINE", default_value = "10s", value_parser = duration_arg)]
    pub renew_deadline: Duration,
    /// How often candidates try to acquire and the leader renews.
    #[arg(long = "leader-elect-retry-period", env = "CCM_LEADER_ELECT_RETRY_PERIOD", default_value = "2s", value_parser = duration_arg)]
    pub retry_period: Duration,
    /// The Lease name.
    #[arg(
        long = "leader-elect-resource-name",
        env = "CCM_LEADER_ELECT_RESOURCE_NAME",
        default_value = "cloud-controller-manager"
    )]
    pub resource_name: String,
    /// The Lease namespace.
    #[arg(
        long = "leader-elect-resource-namespace",
        env = "CCM_LEADER_ELECT_RESOURCE_NAMESPACE",
        default_value = "kube-system"
    )]
    pub resource_namespace: String,
}

impl LeaderElectionArgs {
    /// Checks lease > renew > retry > 0 (client-go's rule).
    pub fn validate(&self) -> Result<(), ArgsError> {
        if !self.enabled {
            return Ok(());
        }
        let ok = self.lease_duration > self.renew_deadline
            && self.renew_deadline > self.retry_period
            && self.retry_period > Duration::ZERO;
        if ok {
            Ok(())
        } else {
            Err(ArgsError::LeaderTimings {
                lease: self.lease_duration,
                renew: self.renew_deadline,
                retry: self.retry_period,
            })
        }
    }
}

/// Log output format.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Every flag of the cloud controller manager.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
pub struct ControllerManagerArgs {
    /// Path to a kubeconfig. Empty: in-cluster config, then `$KUBECONFIG` / `~/.kube/config`.
    #[arg(long, env = "CCM_KUBECONFIG")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Leader election.
    #[command(flatten)]
    pub leader_election: LeaderElectionArgs,
    /// Services synced at once.
    #[arg(long, env = "CCM_CONCURRENT_SERVICE_SYNCS", default_value_t = 1)]
    pub concurrent_service_syncs: u16,
    /// How often each Node's addresses are refreshed from the cloud.
    #[arg(long, env = "CCM_NODE_STATUS_UPDATE_FREQUENCY", default_value = "5m", value_parser = duration_arg)]
    pub node_status_update_frequency: Duration,
    /// How often the node lifecycle controller checks Nodes.
    #[arg(long, env = "CCM_NODE_MONITOR_PERIOD", default_value = "5s", value_parser = duration_arg)]
    pub node_monitor_period: Duration,
    /// Re-ensure every LoadBalancer Service this often to repair drift made outside Kubernetes, all of them in
    /// one round at the same instants (so that a provider can serve a round from one listing of its cloud); 0
    /// (the default, as upstream) turns it off.
    #[arg(long, env = "CCM_SERVICE_RESYNC_PERIOD", default_value = "0", value_parser = duration_arg)]
    pub service_resync_period: Duration,
    /// Controllers to run: `*` for all, `name` to enable, `-name` to disable
    /// (service, cloud-node, cloud-node-lifecycle).
    #[arg(long, env = "CCM_CONTROLLERS", value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,
    /// The cluster name given to the provider (for tagging what it creates).
    #[arg(long, env = "CCM_CLUSTER_NAME", default_value = "kubernetes")]
    pub cluster_name: String,
    /// The HTTPS server of /healthz, /readyz, /livez and /metrics.
    #[command(flatten)]
    pub serving: SecureServingArgs,
    /// Log format.
    #[arg(long, env = "CCM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The secure port, in kube-controller-manager's terms: `/healthz`, `/readyz`, `/livez` and `/metrics` over HTTPS,
/// `/metrics` only for bearer tokens the API server accepts and allows to `get` it (TokenReview and
/// SubjectAccessReview, cached briefly).
#[derive(Args, Clone, Debug, PartialEq, Eq)]
pub struct SecureServingArgs {
    /// The IP address to serve on (`0.0.0.0` or `::`: every interface).
    #[arg(long, env = "CCM_BIND_ADDRESS", default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// The HTTPS port; `0` turns the server off.
    #[arg(long, env = "CCM_SECURE_PORT", default_value_t = 10258)]
    pub secure_port: u16,
    /// Shorthand kept from earlier releases: ADDRESS:PORT sets --bind-address and --secure-port together (still
    /// HTTPS with authentication), `0` turns the server off.
    #[arg(
        long,
        env = "CCM_METRICS_BIND_ADDRESS",
        value_parser = parse_bind,
        conflicts_with_all = ["bind_address", "secure_port"]
    )]
    pub metrics_bind_address: Option<BindAddress>,
    /// PEM certificate chain to serve (leaf first). Without it (and --tls-private-key-file), a self-signed
    /// certificate is generated at every start.
    #[arg(long, env = "CCM_TLS_CERT_FILE", requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file.
    #[arg(long, env = "CCM_TLS_PRIVATE_KEY_FILE", requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// How long TokenReview answers (accepted or rejected) are reused for the same token; 0 disables the cache.
    #[arg(long, env = "CCM_AUTHENTICATION_TOKEN_WEBHOOK_CACHE_TTL", default_value = "10s", value_parser = duration_arg)]
    pub authentication_token_webhook_cache_ttl: Duration,
    /// How long allowing SubjectAccessReview answers are reused; 0 disables the cache.
    #[arg(long, env = "CCM_AUTHORIZATION_WEBHOOK_CACHE_AUTHORIZED_TTL", default_value = "10s", value_parser = duration_arg)]
    pub authorization_webhook_cache_authorized_ttl: Duration,
    /// How long denying SubjectAccessReview answers are reused; 0 disables the cache.
    #[arg(long, env = "CCM_AUTHORIZATION_WEBHOOK_CACHE_UNAUTHORIZED_TTL", default_value = "10s", value_parser = duration_arg)]
    pub authorization_webhook_cache_unauthorized_ttl: Duration,
    /// Paths served without credentials (a trailing `*` matches a prefix). Adding /metrics opens it to anyone
    /// who can reach the port.
    #[arg(
        long,
        env = "CCM_AUTHORIZATION_ALWAYS_ALLOW_PATHS",
        value_delimiter = ',',
        default_value = "/healthz,/readyz,/livez"
    )]
    pub authorization_always_allow_paths: Vec<String>,
}

impl SecureServingArgs {
    /// Where to serve, `None` when the server is off (`--secure-port=0` or `--metrics-bind-address=0`).
    pub fn address(&self) -> Option<SocketAddr> {
        match self.metrics_bind_address {
            Some(BindAddress(address)) => address,
            None => (self.secure_port != 0).then(|| SocketAddr::new(self.bind_address, self.secure_port)),
        }
    }

    /// The server's configuration, `None` when it is off. A self-signed certificate covers `hosts` (see
    /// [`crate::server::tls::self_signed_hosts`]).
    pub fn serving_config(&self, self_signed_hosts: impl FnOnce(IpAddr) -> Vec<String>) -> Option<ServingConfig> {
        let address = self.address()?;
        let certificate = match (&self.tls_cert_file, &self.tls_private_key_file) {
            (Some(cert), Some(key)) => CertificateSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ => CertificateSource::SelfSigned {
                hosts: self_signed_hosts(address.ip()),
            },
        };
        Some(ServingConfig {
            address,
            certificate,
            auth: AuthConfig {
                token_ttl: self.authentication_token_webhook_cache_ttl,
                authorized_ttl: self.authorization_webhook_cache_authorized_ttl,
                unauthorized_ttl: self.authorization_webhook_cache_unauthorized_ttl,
                always_allow_paths: self
                    .authorization_always_allow_paths
                    .iter()
                    .map(|p| p.trim().to_owned())
                    .filter(|p| !p.is_empty())
                    .collect(),
            },
        })
    }
}

/// A listen address, or none (`0`) to turn the listener off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindAddress(pub Option<SocketAddr>);

fn parse_bind(value: &str) -> Result<BindAddress, String> {
    if value == "0" || value.is_empty() {
        return Ok(BindAddress(None));
    }
    value
        .parse()
        .map(|a| BindAddress(Some(a)))
        .map_err(|e| format!("{value:?}: {e}"))
}

impl ControllerManagerArgs {
    /// Whether controller `name` is enabled by `--controllers`. The last matching entry wins, so
    /// `*,-service` runs everything but the service controller.
    pub fn controller_enabled(&self, name: &str) -> bool {
        let mut enabled = false;
        for entry in &self.controllers {
            let entry = entry.trim();
            if entry == "*" || entry == name {
                enabled = true;
            } else if entry.strip_prefix('-') == Some(name) {
                enabled = false;
            }
        }
        enabled
    }

    /// Checks the flags that clap cannot check alone.
    pub fn validate(&self) -> Result<(), ArgsError> {
        for entry in &self.controllers {
            let name = entry.trim().trim_start_matches('-');
            if name != "*" && !ALL_CONTROLLERS.contains(&name) {
                return Err(ArgsError::UnknownController { name: entry.clone() });
            }
        }
        self.leader_election.validate()
    }

    /// `--service-resync-period` as an option (`None` when 0).
    pub fn service_resync(&self) -> Option<Duration> {
        (!self.service_resync_period.is_zero()).then_some(self.service_resync_period)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: ControllerManagerArgs,
    }

    #[test]
    fn command_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_match_kube_controller_manager() {
        let cli = Cli::try_parse_from(["ccm"]).unwrap();
        let a = cli.args;
        assert!(a.leader_election.enabled);
        assert_eq!(a.leader_election.lease_duration, Duration::from_secs(15));
        assert_eq!(a.leader_election.renew_deadline, Duration::from_secs(10));
        assert_eq!(a.leader_election.retry_period, Duration::from_secs(2));
        assert_eq!(a.leader_election.resource_name, "cloud-controller-manager");
        assert_eq!(a.leader_election.resource_namespace, "kube-system");
        assert_eq!(a.concurrent_service_syncs, 1);
        assert_eq!(a.node_status_update_frequency, Duration::from_secs(300));
        assert_eq!(a.node_monitor_period, Duration::from_secs(5));
        assert_eq!(a.service_resync(), None);
        assert_eq!(a.cluster_name, "kubernetes");
        assert_eq!(a.serving.address(), Some("0.0.0.0:10258".parse().unwrap()));
        let serving = a.serving.serving_config(|_| vec!["localhost".into()]).unwrap();
        assert_eq!(
            serving.certificate,
            CertificateSource::SelfSigned {
                hosts: vec!["localhost".into()]
            }
        );
        assert_eq!(serving.auth, AuthConfig::default());
        assert!(ALL_CONTROLLERS.iter().all(|c| a.controller_enabled(c)));
        a.validate().unwrap();
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "ccm",
            "--leader-elect=false",
            "--controllers=*,-service",
            "--service-resync-period=10m",
            "--metrics-bind-address=0",
            "--log-format=json",
        ])
        .unwrap();
        let a = cli.args;
        assert!(!a.leader_election.enabled);
        assert!(!a.controller_enabled("service"));
        assert!(a.controller_enabled("cloud-node"));
        assert_eq!(a.service_resync(), Some(Duration::from_secs(600)));
        assert_eq!(a.serving.address(), None);
        assert_eq!(a.serving.serving_config(|_| Vec::new()), None);
        assert_eq!(a.log_format, LogFormat::Json);
    }

    #[test]
    fn controllers_selection_table() {
        let table: [(&[&str], &str, bool); 6] = [
            (&["*"], "service", true),
            (&["service"], "service", true),
            (&["service"], "cloud-node", false),
            (&["*", "-cloud-node"], "cloud-node", false),
            (&["-cloud-node", "*"], "cloud-node", true),
            (&["cloud-node-lifecycle"], "cloud-node", false),
        ];
        let cli = Cli::try_parse_from(["ccm"]).unwrap();
        for (list, name, expected) in table {
            let a = ControllerManagerArgs {
                controllers: list.iter().map(|s| (*s).to_owned()).collect(),
                ..cli.args.clone()
            };
            assert_eq!(a.controller_enabled(name), expected, "{list:?} {name}");
        }
        let bad = ControllerManagerArgs {
            controllers: vec!["route".into()],
            ..cli.args.clone()
        };
        assert_eq!(
            bad.validate(),
            Err(ArgsError::UnknownController { name: "route".into() })
        );
    }

    #[test]
    fn secure_serving_flags() {
        let cli = Cli::try_parse_from([
            "ccm",
            "--bind-address=10.0.0.5",
            "--secure-port=9443",
            "--tls-cert-file=/etc/ccm/tls.crt",
            "--tls-private-key-file=/etc/ccm/tls.key",
            "--authentication-token-webhook-cache-ttl=1m",
            "--authorization-webhook-cache-authorized-ttl=30s",
            "--authorization-webhook-cache-unauthorized-ttl=0",
            "--authorization-always-allow-paths=/healthz,/metrics",
        ])
        .unwrap();
        let serving = cli.args.serving.serving_config(|_| unreachable!()).unwrap();
        assert_eq!(serving.address, "10.0.0.5:9443".parse().unwrap());
        assert_eq!(
            serving.certificate,
            CertificateSource::Files {
                cert: "/etc/ccm/tls.crt".into(),
                key: "/etc/ccm/tls.key".into()
            }
        );
        assert_eq!(
            serving.auth,
            AuthConfig {
                token_ttl: Duration::from_secs(60),
                authorized_ttl: Duration::from_secs(30),
                unauthorized_ttl: Duration::ZERO,
                always_allow_paths: vec!["/healthz".into(), "/metrics".into()],
            }
        );
        let off = Cli::try_parse_from(["ccm", "--secure-port=0"]).unwrap();
        assert_eq!(off.args.serving.address(), None);
        let old = Cli::try_parse_from(["ccm", "--metrics-bind-address=127.0.0.1:10258"]).unwrap();
        assert_eq!(old.args.serving.address(), Some("127.0.0.1:10258".parse().unwrap()));
        for bad in [
            &["ccm", "--metrics-bind-address=0", "--secure-port=1"][..],
            &["ccm", "--tls-cert-file=/c"],
            &["ccm", "--tls-private-key-file=/k"],
            &["ccm", "--bind-address=example.com"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn leader_timings_are_checked() {
        let cli = Cli::try_parse_from(["ccm", "--leader-elect-renew-deadline=20s"]).unwrap();
        assert!(matches!(cli.args.validate(), Err(ArgsError::LeaderTimings { .. })));
    }

    #[test]
    fn go_durations() {
        let ok = [
            ("0", 0.0),
            ("15s", 15.0),
            ("5m", 300.0),
            ("1h30m", 5400.0),
            ("500ms", 0.5),
            ("1.5s", 1.5),
            ("2m3s", 123.0),
        ];
        for (s, secs) in ok {
            assert_eq!(parse_duration(s), Ok(Duration::from_secs_f64(secs)), "{s}");
        }
        for bad in ["", "15", "s", "5x", "-1s", "1..2s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
