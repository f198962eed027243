//! Traits and controllers for Kubernetes cloud providers: the Rust counterpart of `k8s.io/cloud-provider`.
//!
//! A provider implements [`CloudProvider`] (and optionally [`LoadBalancer`] and [`InstancesV2`]); its binary
//! parses [`ControllerManagerArgs`] and calls [`run`]:
//!
//! ```no_run
//! use std::sync::Arc;
//! use clap::Parser;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     ccm: cloudprovider::ControllerManagerArgs,
//! }
//!
//! # async fn doc(provider: Arc<impl cloudprovider::CloudProvider>) -> Result<(), cloudprovider::Error> {
//! let cli = Cli::parse();
//! cloudprovider::run(cli.ccm, provider).await
//! # }
//! ```
//!
//! Controllers (enable with `--controllers`):
//! - `service` ([`service`]): load balancers for `type: LoadBalancer` Services without `loadBalancerClass`, with
//!   the `service.kubernetes.io/load-balancer-cleanup` finalizer, upstream's node-set predicates, Events and
//!   5 s → 300 s per-Service backoff. Beyond upstream: optional drift repair (`--service-resync-period`, off by
//!   default; every Service in one round per period, [`service::ResyncRounds`]), a [`ProviderError::InvalidConfiguration`] kind that becomes a Warning Event and a slow retry, the
//!   finalizer removed even when the provider says "implemented elsewhere", status equality that ignores
//!   absent-vs-empty, and, for a provider that [wants endpoint nodes](LoadBalancer::wants_endpoint_nodes), backends
//!   of `externalTrafficPolicy: Local` Services that follow their ready endpoints (an EndpointSlice watch; the
//!   backends are re-synced only when the set of nodes with a ready endpoint changes).
//! - `cloud-node` ([`node`]): initializes Nodes tainted `node.cloudprovider.kubernetes.io/uninitialized`, and
//!   refreshes addresses every `--node-status-update-frequency`.
//! - `cloud-node-lifecycle` ([`node::lifecycle`]): deletes Nodes whose instance is gone and manages the shutdown
//!   taint every `--node-monitor-period`. Beyond upstream: the shutdown taint is also removed from a not-Ready
//!   Node whose instance runs again, and the delete carries a UID precondition.
//!
//! Leader election ([`leader`]) follows client-go; `/healthz`, `/readyz` and `/livez` (open) and `/metrics`
//! (behind the API server's TokenReview and SubjectAccessReview) are served over HTTPS on
//! `--bind-address`:`--secure-port` ([`server`]).

pub mod args;
pub mod backoff;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod node;
pub mod provider;
pub mod server;
pub mod service;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

mod runtime;

pub use args::{ControllerManagerArgs, LeaderElectionArgs, LogFormat};
pub use events::{EventSink, Severity};
pub use provider::{
    CloudProvider, InstanceMetadata, InstancesV2, LoadBalancer, ProviderContext, ProviderError, TargetNode,
    default_load_balancer_name,
};
pub use runtime::{Error, init_logging, run, run_with_client};

/// Formats an error with all its sources: `outer: inner: innermost`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}

// Re-exported so that providers use the same versions as the framework.
pub use async_trait::async_trait;
pub use k8s_openapi;
pub use kube;
