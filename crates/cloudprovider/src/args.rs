//! Command-line flags in kube-controller-manager style. Each group is a clap `Args` struct a binary can flatten
//! into its own; every flag also reads an environment variable (`CCM_*`).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{ArgAction, Args, ValueEnum};

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
    /// Re-ensure every LoadBalancer Service this often to repair drift made outside Kubernetes; 0 (the default,
    /// as upstream) turns it off.
    #[arg(long, env = "CCM_SERVICE_RESYNC_PERIOD", default_value = "0", value_parser = duration_arg)]
    pub service_resync_period: Duration,
    /// Controllers to run: `*` for all, `name` to enable, `-name` to disable
    /// (service, cloud-node, cloud-node-lifecycle).
    #[arg(long, env = "CCM_CONTROLLERS", value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,
    /// The cluster name given to the provider (for tagging what it creates).
    #[arg(long, env = "CCM_CLUSTER_NAME", default_value = "kubernetes")]
    pub cluster_name: String,
    /// Plain-HTTP address for /healthz, /readyz and /metrics; `0` turns the server off.
    #[arg(long, env = "CCM_METRICS_BIND_ADDRESS", default_value = "0.0.0.0:10258", value_parser = parse_bind)]
    pub metrics_bind_address: BindAddress,
    /// Log format.
    #[arg(long, env = "CCM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
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
        assert_eq!(
            a.metrics_bind_address,
            BindAddress(Some("0.0.0.0:10258".parse().unwrap()))
        );
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
        assert_eq!(a.metrics_bind_address, BindAddress(None));
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
