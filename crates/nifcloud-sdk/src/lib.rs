//! A client for the NIFCLOUD (FJcloud-V) computing API.
//!
//! The runtime (configuration, credentials, Signature Version 2, retries, waiters, errors) is written by hand;
//! the typed input and output of every operation in `model/computing/3.0/service-2.json` is produced by
//! `cargo xtask codegen` into [`types`] and the operation methods on [`Client`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), nifcloud_sdk::Error> {
//! use nifcloud_sdk::{Client, Config, types::DescribeVolumesRequest};
//! let client = Client::new(Config::from_env()?)?;
//! let volumes = client.describe_volumes(DescribeVolumesRequest::default()).await?;
//! # let _ = volumes; Ok(()) }
//! ```

pub mod client;
pub mod config;
pub mod credentials;
pub mod error;
pub mod listing;
pub mod metrics;
pub mod operation;
pub mod region;
pub mod retry;
pub mod signing;
pub mod waiters;
pub mod wire;
pub mod xml;

mod generated;

/// Typed inputs and outputs of every operation, generated from the official API model.
pub mod types {
    pub use crate::generated::types::*;
}

/// The string type of every text member of the generated types. Values of up to 24 bytes (identifiers, states,
/// zones, addresses: nearly every value the API returns) are kept inline, with no allocation of their own; with
/// `String`s, the output's own strings were most of the allocations of reading a reply. It dereferences to `str`,
/// compares with `&str` and `String`, and converts from and into `String`; re-exported so that users need no
/// dependency of their own.
pub use compact_str::{CompactString, ToCompactString, format_compact};

pub use client::Client;
pub use config::Config;
pub use credentials::Credentials;
pub use error::{Error, ErrorKind};
pub use region::Region;
