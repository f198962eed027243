//! Command-line flags (each with an environment fallback).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use nifcloud_csi::driver::{DriverOptions, Mode};
use nifcloud_csi::plan::Membership;

/// Which services to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Identity + Controller (the Deployment).
    Controller,
    /// Identity + Node (the DaemonSet).
    Node,
    /// Everything in one process.
    All,
}

/// NIFCLOUD additional-storage CSI driver (additional-storage.csi.nifcloud.com).
///
/// NIFCLOUD credentials and region come from the SDK's usual sources: NIFCLOUD_ACCESS_KEY_ID,
/// NIFCLOUD_SECRET_ACCESS_KEY, NIFCLOUD_DEFAULT_REGION (or NIFCLOUD_REGION), optionally
/// NIFCLOUD_ENDPOINT_URL, or the official CLI's profile files.
#[derive(Debug, Parser)]
#[command(name = "nifcloud-csi-driver", version)]
pub struct Args {
    /// Services to serve.
    #[arg(long, value_enum, env = "CSI_MODE", default_value = "all")]
    pub mode: ModeArg,
    /// CSI endpoint (unix:///path/to/csi.sock).
    #[arg(long, env = "CSI_ENDPOINT", default_value = "unix:///csi/csi.sock")]
    pub endpoint: String,
    /// Node: this server's name (default: NODE_NAME, then VMware guestinfo.hostname).
    #[arg(long, env = "NODE_NAME")]
    pub node_id: Option<String>,
    /// Node: this server's zone (default: asked from DescribeInstances).
    #[arg(long, env = "NIFCLOUD_ZONE")]
    pub zone: Option<String>,
    /// Node: compute the volume limit from local SCSI devices instead of the API (no credentials
    /// needed on nodes then; set --zone too).
    #[arg(long, env = "CSI_NODE_LOCAL_LIMITS")]
    pub node_local_limits: bool,
    /// Node: sysfs root.
    #[arg(long, default_value = "/sys")]
    pub sys_root: PathBuf,
    /// Node: /dev root.
    #[arg(long, default_value = "/dev")]
    pub dev_root: PathBuf,
    /// Node: seconds to wait for an attached disk to appear.
    #[arg(long, default_value_t = 60)]
    pub device_timeout_secs: u64,
    /// Controller: the servers of this cluster, as comma-separated shell patterns on server
    /// names (e.g. "k8sworker*,k8smaster1"). New disks are created on one of them and detached;
    /// no other server is ever used. Required in controller mode.
    #[arg(long, env = "NIFCLOUD_CLUSTER_INSTANCES", value_delimiter = ',')]
    pub cluster_instances: Vec<String>,
    /// Controller: milliseconds between one waiting request's looks at its disk; a look is one DescribeVolumes
    /// shared by every waiter, and the shared poller makes at most 8 per interval.
    #[arg(long, default_value_t = 2000)]
    pub poll_interval_ms: u64,
    /// Controller: longest wait, in seconds, for one volume state change.
    #[arg(long, default_value_t = 300)]
    pub wait_timeout_secs: u64,
    /// Controller: seconds the server list is cached.
    #[arg(long, default_value_t = 10)]
    pub server_cache_secs: u64,
    /// Controller: delete a disk left half-created (never returned to Kubernetes, e.g. its PVC
    /// was deleted mid-creation) after this many seconds; 0 never deletes.
    #[arg(long, default_value_t = 1800)]
    pub reap_abandoned_after_secs: u64,
    /// Serve Prometheus metrics (CSI RPCs, NIFCLOUD API calls) at /metrics on this address, over plain HTTP
    /// without authentication; `0` turns it off. The default listens on loopback only (read it through
    /// `kubectl port-forward`); an address others can reach (e.g. 0.0.0.0:9809) exposes the metrics to them.
    #[arg(long, env = "CSI_METRICS_ADDRESS", default_value = "127.0.0.1:9809", value_parser = parse_metrics_address)]
    pub metrics_address: MetricsAddress,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
}

/// Where metrics are served, or nowhere (`0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsAddress(pub Option<SocketAddr>);

fn parse_metrics_address(value: &str) -> Result<MetricsAddress, String> {
    match value.trim() {
        "" | "0" => Ok(MetricsAddress(None)),
        address => address
            .parse()
            .map(|a| MetricsAddress(Some(a)))
            .map_err(|e| format!("{value:?}: {e} (use HOST:PORT, e.g. 127.0.0.1:9809, or 0 to turn metrics off)")),
    }
}

impl Args {
    /// Installs the tracing subscriber (RUST_LOG, default info).
    pub fn init_logging(&self) {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt().with_env_filter(filter);
        if self.log_format == "json" {
            builder.json().init();
        } else {
            builder.init();
        }
    }

    /// The driver options and, when configured, the NIFCLOUD client.
    pub fn into_driver(self) -> anyhow::Result<(DriverOptions, Option<nifcloud_sdk::Client>)> {
        let mode = match self.mode {
            ModeArg::Controller => Mode::Controller,
            ModeArg::Node => Mode::Node,
            ModeArg::All => Mode::All,
        };
        let membership = Membership::patterns(self.cluster_instances.iter().map(|s| s.trim().to_string()));
        if mode != Mode::Node && membership.is_empty() {
            anyhow::bail!(
                "--cluster-instances (NIFCLOUD_CLUSTER_INSTANCES) is required in controller mode: \
                 new disks are created on a server of this cluster and no other"
            );
        }
        let needs_client = mode != Mode::Node || !self.node_local_limits || self.zone.is_none();
        let client = if needs_client {
            let config = nifcloud_sdk::Config::from_env().context("NIFCLOUD configuration")?;
            Some(nifcloud_sdk::Client::new(config).context("NIFCLOUD client")?)
        } else {
            None
        };
        let options = DriverOptions {
            mode,
            endpoint: self.endpoint,
            node_id: self.node_id,
            zone: self.zone,
            node_api_limits: !self.node_local_limits,
            sys_root: self.sys_root,
            dev_root: self.dev_root,
            device_timeout: Duration::from_secs(self.device_timeout_secs),
            membership,
            poll_interval: Duration::from_millis(self.poll_interval_ms.max(100)),
            wait_timeout: Duration::from_secs(self.wait_timeout_secs.max(1)),
            server_cache_ttl: Duration::from_secs(self.server_cache_secs),
            metrics_address: self.metrics_address.0,
            reap_abandoned_after: (self.reap_abandoned_after_secs > 0)
                .then(|| Duration::from_secs(self.reap_abandoned_after_secs)),
            ..DriverOptions::default()
        };
        Ok((options, client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_are_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn node_mode_without_api() {
        let args = Args::parse_from([
            "csi",
            "--mode",
            "node",
            "--node-local-limits",
            "--zone",
            "east-11",
            "--node-id",
            "node1",
        ]);
        let (opts, client) = args.into_driver().unwrap();
        assert!(client.is_none());
        assert_eq!(opts.mode, Mode::Node);
        assert!(!opts.node_api_limits);
    }

    #[test]
    fn metrics_listen_on_loopback_unless_told_otherwise() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["csi", "--mode", "node", "--node-local-limits", "--zone", "east-11"];
            argv.extend_from_slice(extra);
            Args::parse_from(argv).into_driver().unwrap().0.metrics_address
        };
        assert_eq!(parse(&[]), Some("127.0.0.1:9809".parse().unwrap()));
        assert_eq!(parse(&["--metrics-address=0"]), None);
        assert_eq!(
            parse(&["--metrics-address=0.0.0.0:9809"]),
            Some("0.0.0.0:9809".parse().unwrap())
        );
        let err = Args::try_parse_from(["csi", "--metrics-address=9809"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("HOST:PORT"), "{err}");
    }

    #[test]
    fn controller_needs_membership() {
        let args = Args::parse_from(["csi", "--mode", "controller", "--cluster-instances", ""]);
        let err = args.into_driver().unwrap_err().to_string();
        assert!(err.contains("--cluster-instances"), "{err}");
        let args = Args::parse_from(["csi", "--mode", "controller", "--cluster-instances", "k8s*, node1"]);
        assert_eq!(args.cluster_instances, ["k8s*", " node1"]);
    }
}
