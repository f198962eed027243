//! A CSI conformance ("sanity") suite written from the CSI spec.
//!
//! [`run`] connects to a plugin's unix socket and drives Identity, Controller and optionally
//! Node over real gRPC: required-argument errors, not-found cases, idempotency of every RPC,
//! capacity ranges, topology in replies, ListVolumes pagination, and `UNIMPLEMENTED` for RPCs
//! whose capability is not advertised. It returns a [`SanityReport`] of named checks so a test
//! in any crate can assert that all passed:
//!
//! ```no_run
//! # async fn demo() {
//! use csi_core::sanity::{SanityConfig, run};
//! let report = run(&SanityConfig::new("unix:///tmp/csi.sock")).await;
//! assert!(report.all_passed(), "{report}");
//! # }
//! ```

mod controller;
mod node;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;

use crate::capability::mount_capability;
use crate::proto::VolumeCapability;
use crate::proto::volume_capability::access_mode::Mode;

/// What to test and how.
#[derive(Debug, Clone)]
pub struct SanityConfig {
    /// The plugin's controller endpoint (`unix:///path`).
    pub endpoint: String,
    /// StorageClass-style parameters for CreateVolume.
    pub parameters: HashMap<String, String>,
    /// Secrets sent with every call that takes them.
    pub secrets: HashMap<String, String>,
    /// `required_bytes` of test volumes.
    pub volume_size_bytes: i64,
    /// Capability used for test volumes.
    pub capability: VolumeCapability,
    /// Node ID for ControllerPublishVolume; when unset, taken from NodeGetInfo (if a node is
    /// configured), else the publish checks are skipped.
    pub node_id: Option<String>,
    /// Prefix of the volume names the suite creates (all are deleted at the end).
    pub name_prefix: String,
    /// Run the node checks, too.
    pub node: Option<NodeSanityConfig>,
}

/// Where and how to exercise the Node service (the node checks run only when [`SanityConfig::node`] is set).
#[derive(Debug, Clone)]
pub struct NodeSanityConfig {
    /// The node plugin's endpoint (may equal the controller's).
    pub endpoint: String,
    /// Directory under which staging paths are created.
    pub staging_root: PathBuf,
    /// Directory under which target paths are created.
    pub target_root: PathBuf,
    /// Also run the full create → publish → stage → publish → write → unwind flow (needs real
    /// devices behind the controller).
    pub full_lifecycle: bool,
}

impl SanityConfig {
    /// Defaults: 1 GiB ext4 single-node-writer volumes, no parameters, no node checks.
    pub fn new(endpoint: &str) -> Self {
        Self {
            endpoint: endpoint.to_string(),
            parameters: HashMap::new(),
            secrets: HashMap::new(),
            volume_size_bytes: 1 << 30,
            capability: mount_capability("ext4", Mode::SingleNodeWriter),
            node_id: None,
            name_prefix: "sanity".to_string(),
            node: None,
        }
    }
}

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The plugin behaved as the spec requires.
    Pass,
    /// It did not; the reason says how.
    Fail(String),
    /// Not applicable (capability not advertised, prerequisite failed).
    Skip(String),
}

/// One named check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// `area/what`, e.g. `create/idempotent`.
    pub name: String,
    /// Whether it passed, failed (with why) or was skipped (with why).
    pub outcome: Outcome,
}

/// All checks of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SanityReport {
    /// In execution order.
    pub checks: Vec<Check>,
}

impl SanityReport {
    /// True when no check failed (skips are allowed) and at least one ran.
    pub fn all_passed(&self) -> bool {
        !self.checks.is_empty() && self.failures().is_empty()
    }

    /// The failed checks.
    pub fn failures(&self) -> Vec<&Check> {
        self.checks
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Fail(_)))
            .collect()
    }

    /// Names of passed checks.
    pub fn passed(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|c| c.outcome == Outcome::Pass)
            .map(|c| c.name.as_str())
            .collect()
    }

    /// The outcome of the check called `name`.
    pub fn outcome(&self, name: &str) -> Option<&Outcome> {
        self.checks.iter().find(|c| c.name == name).map(|c| &c.outcome)
    }

    fn record(&mut self, name: &str, outcome: Outcome) {
        if let Outcome::Fail(why) = &outcome {
            tracing::warn!(check = name, reason = %why, "sanity check failed");
        }
        self.checks.push(Check {
            name: name.to_string(),
            outcome,
        });
    }

    async fn check(&mut self, name: &str, f: impl Future<Output = Result<(), String>>) -> bool {
        let outcome = match f.await {
            Ok(()) => Outcome::Pass,
            Err(why) => Outcome::Fail(why),
        };
        let ok = outcome == Outcome::Pass;
        self.record(name, outcome);
        ok
    }

    fn skip(&mut self, name: &str, why: &str) {
        self.record(name, Outcome::Skip(why.to_string()));
    }
}

impl fmt::Display for SanityReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (mut p, mut s, mut x) = (0, 0, 0);
        for c in &self.checks {
            match &c.outcome {
                Outcome::Pass => {
                    p += 1;
                    writeln!(f, "PASS {}", c.name)?;
                }
                Outcome::Skip(why) => {
                    s += 1;
                    writeln!(f, "SKIP {} ({why})", c.name)?;
                }
                Outcome::Fail(why) => {
                    x += 1;
                    writeln!(f, "FAIL {}: {why}", c.name)?;
                }
            }
        }
        write!(f, "{p} passed, {x} failed, {s} skipped")
    }
}

/// Asserts `result` is an error with `code`.
fn expect_code<T: fmt::Debug>(result: Result<T, tonic::Status>, codes: &[tonic::Code]) -> Result<(), String> {
    match result {
        Ok(v) => Err(format!("expected {codes:?}, got success: {v:?}")),
        Err(s) if codes.contains(&s.code()) => Ok(()),
        Err(s) => Err(format!("expected {codes:?}, got {:?}: {}", s.code(), s.message())),
    }
}

/// Runs the suite; never panics on plugin misbehaviour (it records failures).
pub async fn run(config: &SanityConfig) -> SanityReport {
    let mut report = SanityReport::default();
    let channel = match crate::server::connect(&config.endpoint).await {
        Ok(c) => c,
        Err(e) => {
            report.record("connect", Outcome::Fail(e.to_string()));
            return report;
        }
    };
    let mut suite = controller::ControllerSuite::new(channel, config);
    suite.identity(&mut report).await;
    let node_channel = match &config.node {
        Some(n) => match crate::server::connect(&n.endpoint).await {
            Ok(c) => Some(c),
            Err(e) => {
                report.record("node/connect", Outcome::Fail(e.to_string()));
                None
            }
        },
        None => None,
    };
    let mut node_suite = match (node_channel, &config.node) {
        (Some(ch), Some(n)) => Some(node::NodeSuite::new(ch, config, n)),
        _ => None,
    };
    let node_id = match (&config.node_id, node_suite.as_mut()) {
        (Some(id), _) => Some(id.clone()),
        (None, Some(ns)) => ns.node_id(&mut report, suite.has_topology).await,
        (None, None) => None,
    };
    suite.run(&mut report, node_id.as_deref()).await;
    if let Some(ns) = node_suite.as_mut() {
        ns.run(&mut report, &mut suite, node_id.as_deref()).await;
    }
    suite.cleanup(&mut report).await;
    report
}
