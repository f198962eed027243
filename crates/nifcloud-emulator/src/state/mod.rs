//! The emulated world: instances, volumes, load balancers, elastic load balancers and security
//! groups, plus the operations on them.
//!
//! Every operation is a plain function `(&mut State, &Params, &mut Xml, now_ms) -> Result<(), ApiError>`:
//! it validates first, then mutates, then writes the reply body. Asynchronous transitions are
//! stored as deadlines (epoch milliseconds) and resolved by [`State::settle`] at the start of
//! every request, so there are no background tasks and tests can reason about time directly.

pub mod elb;
pub mod instances;
pub mod lb;
pub mod sg;
pub mod volumes;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::blockdev::BlockBackend;
use crate::config::{DelayConfig, EmulatorConfig, VipRange};
use crate::error::ApiError;
use crate::faults::{ALNUM_LOWER, FaultConfig, HEX_LOWER, Rng};

pub use elb::{ElasticLoadBalancer, ElbInterface};
pub use instances::Instance;
pub use lb::{AllowAnyEntry, LoadBalancer};
pub use sg::SecurityGroup;
pub use volumes::Volume;

/// The whole mutable world of one emulator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// Region name, e.g. `jp-east-1`.
    pub region: String,
    /// Zones of the region.
    pub zones: Vec<String>,
    /// The addresses load balancers get their VIPs from (the lowest free one first).
    pub vip_range: VipRange,
    /// How long each asynchronous transition lasts (milliseconds; changed at runtime through the admin API).
    pub delays: DelayConfig,
    /// Fault rules (with their live `remaining` counters).
    pub faults: FaultConfig,
    /// Seeded generator for names, IDs and fault draws.
    pub rng: Rng,
    /// Instances by name.
    pub instances: BTreeMap<String, Instance>,
    /// Volumes by name.
    pub volumes: BTreeMap<String, Volume>,
    /// L4 load balancers by name.
    pub load_balancers: BTreeMap<String, LoadBalancer>,
    /// Elastic load balancers by id (`elb-…`).
    pub elastic_load_balancers: BTreeMap<String, ElasticLoadBalancer>,
    /// Security groups by name.
    pub security_groups: BTreeMap<String, SecurityGroup>,
    /// How load balancer filters report their allow-any entry once addresses are set.
    #[serde(default)]
    pub lb_filter_any: AllowAnyEntry,
    /// Loop-device backing, when configured (not persisted).
    #[serde(skip)]
    pub block: Option<BlockBackend>,
}

impl State {
    /// Builds the initial world from a configuration.
    pub fn from_config(cfg: &EmulatorConfig, now: i64) -> Self {
        let mut st = Self {
            region: cfg.region.clone(),
            zones: cfg.zones.clone(),
            vip_range: cfg.vip_range,
            delays: cfg.delays.clone(),
            faults: cfg.faults.clone(),
            rng: Rng::new(cfg.seed),
            instances: BTreeMap::new(),
            volumes: BTreeMap::new(),
            load_balancers: BTreeMap::new(),
            elastic_load_balancers: BTreeMap::new(),
            security_groups: BTreeMap::new(),
            lb_filter_any: cfg.lb_filter_any,
            block: cfg.block_devices.clone().map(BlockBackend::new),
        };
        for ic in &cfg.instances {
            st.add_instance(ic, now);
        }
        for inst in st.instances.values() {
            if let Some(g) = &inst.security_group {
                st.security_groups
                    .entry(g.clone())
                    .or_insert_with(|| SecurityGroup::new(g, "", &inst.zone, now))
                    .instances
                    .push(inst.unique_id.clone());
            }
        }
        st
    }

    /// Resolves every transition whose deadline has passed.
    pub fn settle(&mut self, now: i64) {
        instances::settle(self, now);
        volumes::settle(self, now);
        elb::settle(self, now);
        sg::settle(self, now);
    }

    /// A fresh unique id `<prefix>-xxxxxxxx` (8 lower-case hex digits).
    pub fn new_id(&mut self, prefix: &str) -> String {
        format!("{prefix}-{}", self.rng.string(HEX_LOWER, 8))
    }

    /// A fresh system-issued 8-character name.
    pub fn new_name(&mut self) -> String {
        self.rng.string(ALNUM_LOWER, 8)
    }

    /// A fresh request id (UUID-shaped, from the seeded generator).
    pub fn request_id(&mut self) -> String {
        let s = self.rng.string(HEX_LOWER, 32);
        format!(
            "{}-{}-{}-{}-{}",
            &s[0..8],
            &s[8..12],
            &s[12..16],
            &s[16..20],
            &s[20..32]
        )
    }

    /// The instance named `name`, or `Client.InvalidParameterNotFound.Instance`.
    pub fn instance(&self, name: &str) -> Result<&Instance, ApiError> {
        self.instances
            .get(name)
            .ok_or_else(|| ApiError::not_found("Instance", name))
    }

    /// The instance with unique id `uid`.
    pub fn instance_by_uid(&self, uid: &str) -> Option<&Instance> {
        self.instances.values().find(|i| i.unique_id == uid)
    }

    /// The name of the instance with unique id `uid` (empty if it no longer exists).
    pub fn instance_name(&self, uid: &str) -> String {
        self.instance_by_uid(uid).map(|i| i.name.clone()).unwrap_or_default()
    }

    /// Allocates the lowest free VIP.
    pub fn allocate_vip(&self) -> Result<String, ApiError> {
        let mut one = self.allocate_addresses(1)?;
        Ok(one.remove(0))
    }

    /// Allocates the `n` lowest free addresses of the VIP range (free: no load balancer's VIP and no elastic
    /// load balancer's system address).
    pub fn allocate_addresses(&self, n: usize) -> Result<Vec<String>, ApiError> {
        let used: std::collections::BTreeSet<&str> = self
            .load_balancers
            .values()
            .map(|l| l.vip.as_str())
            .chain(self.elastic_load_balancers.values().flat_map(|e| e.addresses()))
            .collect();
        let (a, b) = (u32::from(self.vip_range.first), u32::from(self.vip_range.last));
        let free: Vec<String> = (a..=b)
            .map(|n| std::net::Ipv4Addr::from(n).to_string())
            .filter(|ip| !used.contains(ip.as_str()))
            .take(n)
            .collect();
        if free.len() < n {
            return Err(ApiError::new(
                "Server.ResourceLimitExceeded.IpAddress",
                "The VIP range is exhausted.",
            ));
        }
        Ok(free)
    }

    /// Checks that `zone` is one of the region's zones.
    pub fn check_zone(&self, zone: &str) -> Result<(), ApiError> {
        if self.zones.iter().any(|z| z == zone) {
            Ok(())
        } else {
            Err(ApiError::not_found("AvailabilityZone", zone))
        }
    }
}

/// Whether `s` is 1..=`max` ASCII alphanumerics.
pub fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Current time in epoch milliseconds.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Formats epoch milliseconds as `YYYY-MM-DDThh:mm:ss.mmm+09:00` (Japan time, as the API does).
pub fn jst(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let t = time::OffsetDateTime::from_unix_timestamp(secs + 9 * 3600).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+09:00",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        milli
    )
}

/// Formats epoch milliseconds as `YYYY-MM-DDThh:mm:ss+09:00` (whole seconds, as elastic load balancers'
/// `CreatedTime`).
pub fn jst_seconds(ms: i64) -> String {
    let mut s = jst(ms);
    s.replace_range(19..23, "");
    s
}

/// Adds a delay to `now`.
pub fn after(now: i64, ms: u64) -> i64 {
    now.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
