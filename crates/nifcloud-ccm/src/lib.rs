//! The NIFCLOUD cloud provider: load balancers and instances for the cloud-controller-manager.
//!
//! [`NifcloudProvider`] implements the `cloudprovider` framework's traits:
//! - **load balancers** ([`LoadBalancers`]): L4 (`lb`, default) and elastic (`elb`) load balancers per
//!   `service.beta.kubernetes.io/nifcloud-load-balancer-type`, configured by the annotations in [`annotations`]
//!   (validated up front: an invalid Service gets a Warning Event and is left untouched), every attribute
//!   reconciled by a pure planner ([`l4::plan`], [`elb::plan`]) that issues no call when nothing differs,
//!   `loadBalancerSourceRanges` as filters, names and ownership per [`naming`], and opt-in security-group rules
//!   ([`sg`]); `externalTrafficPolicy: Local` keeps the client's address and sends traffic only to nodes with a
//!   ready endpoint: an L4 load balancer registers only those nodes' servers (the framework marks them from the
//!   Service's EndpointSlices and re-syncs when they change; with no ready endpoint, no server is registered and
//!   a `NoReadyEndpoints` Warning Event says so), an elastic one keeps every node and checks HTTP `/healthz` on
//!   `healthCheckNodePort` (see [`spec`]);
//! - **instances** ([`Instances`]): providerID `nifcloud:///<zone>/<instanceUniqueId>`, nodes matched by
//!   providerID, then name, then address; addresses of every interface; "exists" false only on a definite
//!   not-found; shutdown = stopped.
//!
//! Layers, bottom up (nothing imports a layer above it):
//! - [`model`], [`annotations`], [`spec`], [`naming`], [`config`], [`error`]: pure types and parsing;
//! - [`context`]: the client, settings, shared server view, Events, ownership records, Node-to-server matching;
//! - [`backend`]: the [`backend::Backend`] trait and [`backend::Fleet`], the one converge and delete loop over
//!   the shared listing of one kind ([`lbview`]); [`call`]: "already done" answers of NIFCLOUD calls;
//! - [`l4`] and [`elb`]: the two kinds behind that trait; [`sg`]: security-group rules;
//! - [`lb`]: a Service's load balancer over both kinds;
//! - [`provider`]: the adapter implementing the framework's traits.
//!
//! Describe calls go through shared, short-lived, coalescing views ([`nifcloud_cloud::InstanceView`],
//! [`lbview::LbView`]), so their number does not grow with Services or nodes. Configuration: [`config`].
//!
//! RBAC this provider needs beyond the framework's (which includes `list`/`watch` on `discovery.k8s.io`
//! `endpointslices`): `patch` on `services` (the ownership annotation of load balancers with an overridden name).

pub mod annotations;
pub mod backend;
pub mod call;
pub mod cli;
pub mod config;
pub mod context;
pub mod elb;
pub mod error;
pub mod l4;
pub mod lb;
pub mod lbview;
pub mod model;
pub mod naming;
pub mod provider;
pub mod sg;
pub mod spec;

pub use config::{NifcloudArgs, Settings};
pub use error::Error;
pub use provider::{Instances, LoadBalancers, NifcloudProvider};

/// Builds the provider at start-up from the command line and the process environment. The framework's flag
/// problems and this provider's configuration problems are reported together, in one [`Error::Configuration`].
pub fn startup(cli: &cli::Cli) -> Result<NifcloudProvider, Error> {
    let mut problems: Vec<String> = cli.ccm.validate().err().map(|e| e.to_string()).into_iter().collect();
    match Settings::from_env(&cli.nifcloud) {
        Ok(settings) if problems.is_empty() => return NifcloudProvider::new(settings),
        Ok(_) => {}
        Err(Error::Configuration { problems: more }) => problems.extend(more),
        Err(other) => return Err(other),
    }
    Err(Error::Configuration { problems })
}
