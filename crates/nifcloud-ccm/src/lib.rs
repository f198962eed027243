//! The NIFCLOUD cloud provider: load balancers and instances for the cloud-controller-manager.
//!
//! [`NifcloudProvider`] implements the `cloudprovider` framework's traits:
//! - **load balancers** ([`LoadBalancers`]): L4 (`lb`, default) and elastic (`elb`) load balancers per
//!   `service.beta.kubernetes.io/nifcloud-load-balancer-type`, configured by the annotations in [`annotations`]
//!   (validated up front: an invalid Service gets a Warning Event and is left untouched), every attribute
//!   reconciled by a pure planner ([`l4::plan`], [`elb::plan`]) that issues no call when nothing differs,
//!   `loadBalancerSourceRanges` as filters, `externalTrafficPolicy: Local` health checks, names and ownership
//!   per [`naming`], and opt-in security-group rules ([`sg`]);
//! - **instances** ([`Instances`]): providerID `nifcloud:///<zone>/<instanceUniqueId>`, nodes matched by
//!   providerID, then name, then address; addresses of every interface; "exists" false only on a definite
//!   not-found; shutdown = stopped.
//!
//! Describe calls go through shared, short-lived, coalescing views ([`nifcloud_cloud::InstanceView`],
//! [`lbview::LbView`]), so their number does not grow with Services or nodes. Configuration: [`config`].
//!
//! RBAC this provider needs beyond the framework's: `patch` on `services` (the ownership annotation of
//! load balancers with an overridden name).

pub mod annotations;
pub mod cli;
pub mod config;
pub mod elb;
pub mod l4;
pub mod lbview;
pub mod naming;
pub mod provider;
pub mod reconcile;
pub mod sg;
pub mod spec;

pub use config::{ConfigError, NifcloudArgs, Settings};
pub use provider::{Instances, LoadBalancers, NifcloudProvider};

/// Builds the provider from the process environment and `args` at start-up. `framework` is the result of the
/// framework's own argument validation, so that every problem is reported in one message.
pub fn startup(args: &NifcloudArgs, framework: Result<(), String>) -> Result<NifcloudProvider, String> {
    let mut problems: Vec<String> = framework.err().into_iter().collect();
    match Settings::from_env(args) {
        Ok(settings) if problems.is_empty() => {
            return NifcloudProvider::new(settings).map_err(|e| cloudprovider::error_chain(&e));
        }
        Ok(_) => {}
        Err(e) => problems.extend(e.problems),
    }
    Err(format!("invalid configuration:\n  - {}", problems.join("\n  - ")))
}
