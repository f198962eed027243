//! NIFCLOUD pieces shared by the cloud-controller-manager and the CSI driver, free of Kubernetes and CSI types.
//!
//! - [`provider_id`]: `nifcloud:///<zone>/<instanceUniqueId>` and the legacy forms;
//! - [`instance`]: the server model (name, unique id, zone, type, state, every address of every interface) read
//!   from `DescribeInstances`;
//! - [`cache`]: [`CoalescingCache`], a short-lived cache of one describe call that makes concurrent callers share
//!   one request (usable for `DescribeLoadBalancers`, `DescribeVolumes`, …);
//! - [`view`]: [`InstanceView`], the shared view of all servers, and node-to-server matching (providerID, then
//!   name, then address), with "not found" only on a definite answer;
//! - [`error`]: [`CloudError`] (operation + resource + SDK error) and [`Disposition`] (what to do about an error).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use nifcloud_cloud::{InstanceView, NodeRef, cache::DEFAULT_TTL};
//! let client = nifcloud_sdk::Client::new(nifcloud_sdk::Config::from_env()?)?;
//! let view = InstanceView::new(client, DEFAULT_TTL);
//! let node = NodeRef { provider_id: Some("nifcloud:///east-11/i-0abc"), name: "node1", addresses: &[] };
//! if let Some(server) = view.find(&node).await? {
//!     println!("{} is {:?} in {}", server.name, server.state, server.zone);
//! }
//! # Ok(()) }
//! ```

pub mod cache;
pub mod error;
pub mod instance;
pub mod provider_id;
pub mod view;

pub use cache::CoalescingCache;
pub use error::{CloudError, Disposition};
pub use instance::{AddressKind, Instance, InstanceAddress, InstanceState};
pub use provider_id::{PROVIDER_NAME, ProviderId, ProviderIdError};
pub use view::{InstanceIndex, InstanceView, LookupError, NodeRef};
