//! A stateful emulator of the NIFCLOUD computing API, for tests and demos.
//!
//! It speaks the wire protocol by itself (form-encoded `POST /api/`, Signature Version 2 with
//! HmacSHA256 or HmacSHA1, EC2-style and ELB-style XML replies, the `<Response><Errors>` error
//! document) and never uses `nifcloud-sdk`, so the two can catch each other's mistakes. The
//! official Python SDK and CLI are run against it in `tests/official_client.rs`.
//!
//! # Usage from a test
//!
//! ```no_run
//! use nifcloud_emulator::{Emulator, EmulatorConfig, FaultConfig, FaultRule};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // Sample world: jp-east-1, zones east-11 (node1..node4) and east-12 (node5, node6).
//! let emu = Emulator::builder().config(EmulatorConfig::sample()).start().await?;
//! let endpoint = emu.endpoint();                 // http://127.0.0.1:PORT/api/
//! let (access_key, secret_key) = emu.credentials();
//! // ... point the code under test at `endpoint` with these credentials ...
//! assert_eq!(emu.call_count("DescribeVolumes"), 0);
//! emu.set_faults(FaultConfig::none().with(FaultRule::fail_next("AttachVolume", 2, "Server.InternalError", 503)));
//! emu.terminate_instance("node3")?;            // DescribeInstances now says NotFound for it
//! let volumes = emu.with_state(|st| st.volumes.len());
//! emu.shutdown().await;
//! # let _ = (endpoint, access_key, secret_key, volumes); Ok(()) }
//! ```
//!
//! # Command line
//!
//! `nifcloud-emulator --listen 127.0.0.1:8080 --config world.yaml [--state-file state.json]`
//! (without `--config` it serves [`EmulatorConfig::sample`]).
//!
//! # Admin API (JSON, unauthenticated, same port)
//!
//! | Request | Effect |
//! |---|---|
//! | `GET /admin/calls` | `{"DescribeVolumes": 3, ...}` |
//! | `DELETE /admin/calls` | reset counts and log |
//! | `GET /admin/calls/log` | recent calls with parameters, status and error code |
//! | `GET /admin/state` | the whole state |
//! | `POST /admin/reset` | back to the configured initial state |
//! | `GET`/`PUT /admin/faults` | [`FaultConfig`] |
//! | `PUT /admin/latency`, `PUT /admin/delays` | [`LatencyConfig`], [`DelayConfig`] |
//! | `POST /admin/instances` | add an [`InstanceConfig`] |
//! | `POST /admin/instances/{name}/{stop,start,terminate}` | instance admin |
//!
//! # Documented choices
//!
//! - Authentication: unknown key or missing signing fields -> `Client.AuthFailure` (401); bad
//!   signature -> `Client.SignatureDoesNotMatch` (403); `Timestamp` further than
//!   `max_clock_skew_secs` (default 900) from the server clock -> `Client.RequestExpired` (403).
//! - Status: `Client.*` 400, `Server.*` 500, injected faults their own (e.g. 503/429).
//! - Unknown action: `Client.InvalidAction`. Missing or malformed parameter:
//!   `Client.InvalidParameter.<Name>`.
//! - Call counts include every authenticated call, failed or not.
//! - Replies are shaped as the real service's: a success reply starts
//!   `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>`, an error document has no declaration; every
//!   action's element paths are held against a written reference (`tests/reply_structure/<Action>.paths`) by
//!   `tests/reply_structure.rs`. Where the real service departs from the official model, the emulator follows
//!   the service (`AccountingType` capitalised in DescribeInstances, no `Option` in DescribeLoadBalancers, an
//!   empty `DNSName` from NiftyCreateElasticLoadBalancer, …), so clients are tested against what they will meet.
//! - An L4 filter's allow-any entry `*.*.*.*` is replaced by the first address added, as on the service; with
//!   [`EmulatorConfig::lb_filter_any`] = [`AllowAnyEntry::Kept`] it stays listed beside them instead, so that
//!   clients can be tested against both.
//! - See the module docs of [`state::volumes`], [`state::lb`], [`state::elb`], [`state::sg`]
//!   for per-resource rules (SCSI slot allocation, busy codes, defaults).

pub mod api;
pub mod blockdev;
pub mod config;
pub mod error;
pub mod faults;
pub mod server;
pub mod state;
pub mod wire;
pub mod xml;

pub use config::{
    BlockDeviceConfig, DelayConfig, EmulatorConfig, InitialState, InstanceConfig, LatencyConfig,
    NetworkInterfaceConfig, TEST_ACCESS_KEY, TEST_SECRET_KEY, VipRange,
};
pub use error::{ApiError, EmulatorError};
pub use faults::{FaultConfig, FaultRule};
pub use server::{CallRecord, Emulator, EmulatorBuilder};
pub use state::AllowAnyEntry;
