//! L4 load balancers: the observed model, the desired model, and the diff between them (pure).
//!
//! A NIFCLOUD L4 load balancer is a set of port pairs (listeners) under one name and VIP; health check,
//! members and filter are per port pair. [`plan`] compares every attribute and returns the calls that bring the
//! observed load balancer to the desired one, in a safe order:
//! 1. load-balancer-wide updates (network volume, accounting type);
//! 2. listener changes: a listener whose ports changed is *updated in place* (`UpdateLoadBalancer` /
//!    `ListenerUpdate`), new ones are registered, and surplus ones deleted **last**, so the load balancer never
//!    loses its last listener (which would delete it and its VIP);
//! 3. per listener: health check, members (register, deregister), filter (one call adding and removing).
//!
//! When nothing differs the plan is empty. Structural changes (create, register, update ports) are followed by
//! a re-read and a second plan, because the settings of a new listener are only known once it exists.

use std::collections::BTreeSet;

use nifcloud_sdk::types::LoadBalancerDescriptions;

use crate::spec::ANY_SOURCE;

/// One listener as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedListener {
    /// LoadBalancerPort.
    pub port: i64,
    /// InstancePort.
    pub instance_port: i64,
    /// 1 or 2.
    pub balancing_type: i64,
    /// Health-check target.
    pub hc_target: String,
    /// Health-check interval.
    pub hc_interval: i64,
    /// Unhealthy threshold.
    pub hc_unhealthy: i64,
    /// Member server names.
    pub instances: BTreeSet<String>,
    /// `1` allow, `2` deny.
    pub filter_type: String,
    /// Filter addresses; empty means any.
    pub filter: BTreeSet<String>,
}

/// An L4 load balancer as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedL4 {
    /// Name.
    pub name: String,
    /// VIP.
    pub vip: String,
    /// Mbps.
    pub network_volume: Option<i64>,
    /// `1` or `2`.
    pub accounting_type: Option<String>,
    /// The accounting type from next month (a pending change).
    pub next_month_accounting_type: Option<String>,
    /// `standard` or `ats`.
    pub policy_type: Option<String>,
    /// Listeners.
    pub listeners: Vec<ObservedListener>,
}

impl ObservedL4 {
    /// Groups `DescribeLoadBalancers` members (one per port pair) by name.
    pub fn from_descriptions(items: &[LoadBalancerDescriptions]) -> Vec<ObservedL4> {
        let mut out: Vec<ObservedL4> = Vec::new();
        for d in items {
            let Some(name) = d.load_balancer_name.clone().filter(|n| !n.is_empty()) else {
                continue;
            };
            let idx = match out.iter().position(|o| o.name == name) {
                Some(i) => i,
                None => {
                    out.push(ObservedL4 {
                        name: name.clone(),
                        vip: d.dns_name.clone().unwrap_or_default(),
                        network_volume: d.network_volume,
                        accounting_type: d.accounting_type.clone().filter(|s| !s.is_empty()),
                        next_month_accounting_type: d.next_month_accounting_type.clone().filter(|s| !s.is_empty()),
                        policy_type: d.policy_type.clone().filter(|s| !s.is_empty()),
                        listeners: Vec::new(),
                    });
                    out.len() - 1
                }
            };
            let hc = d.health_check.clone().unwrap_or_default();
            let filter = d.filter.clone().unwrap_or_default();
            for ld in &d.listener_descriptions {
                let Some(l) = &ld.listener else { continue };
                out[idx].listeners.push(ObservedListener {
                    port: l.load_balancer_port.unwrap_or_default(),
                    instance_port: l.instance_port.unwrap_or_default(),
                    balancing_type: l.balancing_type.unwrap_or(1),
                    hc_target: hc.target.clone().unwrap_or_default(),
                    hc_interval: hc.interval.unwrap_or_default(),
                    hc_unhealthy: hc.unhealthy_threshold.unwrap_or_default(),
                    instances: d.instances.iter().filter_map(|i| i.instance_id.clone()).collect(),
                    filter_type: filter.filter_type.clone().unwrap_or_else(|| "1".into()),
                    filter: filter
                        .ip_addresses
                        .iter()
                        .filter_map(|i| i.ip_address.clone())
                        .collect(),
                });
            }
        }
        for o in &mut out {
            o.listeners.sort_by_key(|l| (l.port, l.instance_port));
        }
        out
    }
}

/// One listener as desired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantListener {
    /// LoadBalancerPort.
    pub port: i64,
    /// InstancePort.
    pub instance_port: i64,
    /// 1 or 2.
    pub balancing_type: i64,
    /// Health-check target.
    pub hc_target: String,
    /// Health-check interval.
    pub hc_interval: i64,
    /// Unhealthy threshold.
    pub hc_unhealthy: i64,
}

/// An L4 load balancer as desired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredL4 {
    /// Name.
    pub name: String,
    /// Mbps, if the Service says.
    pub network_volume: Option<i64>,
    /// `1` or `2`, if the Service says.
    pub accounting_type: Option<u8>,
    /// `standard` or `ats`, if the Service says.
    pub policy_type: Option<&'static str>,
    /// Listeners, ordered by port.
    pub listeners: Vec<WantListener>,
    /// Member server names (the same for every listener).
    pub instances: BTreeSet<String>,
    /// Allowed sources; `{"*.*.*.*"}` for any.
    pub filter: BTreeSet<String>,
}

/// One call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum L4Action {
    /// `CreateLoadBalancer` with every listener.
    Create {
        /// (port, instance port, balancing type).
        listeners: Vec<(i64, i64, i64)>,
        /// Mbps.
        network_volume: Option<i64>,
        /// 1 or 2.
        accounting_type: Option<u8>,
        /// standard or ats.
        policy_type: Option<&'static str>,
    },
    /// `UpdateLoadBalancer` with `NetworkVolumeUpdate`.
    SetNetworkVolume(i64),
    /// `UpdateLoadBalancer` with `AccountingTypeUpdate`.
    SetAccountingType(u8),
    /// `UpdateLoadBalancer` with `ListenerUpdate`: change a listener's ports and balancing type in place.
    UpdateListener {
        /// The current (port, instance port).
        from: (i64, i64),
        /// The new (port, instance port, balancing type).
        to: (i64, i64, i64),
    },
    /// `RegisterPortWithLoadBalancer`.
    RegisterPort {
        /// (port, instance port, balancing type).
        listener: (i64, i64, i64),
    },
    /// `DeleteLoadBalancer` of one port pair.
    DeletePort {
        /// (port, instance port).
        listener: (i64, i64),
    },
    /// `ConfigureHealthCheck`.
    ConfigureHealthCheck {
        /// (port, instance port).
        listener: (i64, i64),
        /// Target.
        target: String,
        /// Interval.
        interval: i64,
        /// Unhealthy threshold.
        unhealthy: i64,
    },
    /// `RegisterInstancesWithLoadBalancer`.
    RegisterInstances {
        /// (port, instance port).
        listener: (i64, i64),
        /// Server names.
        names: Vec<String>,
    },
    /// `DeregisterInstancesFromLoadBalancer`.
    DeregisterInstances {
        /// (port, instance port).
        listener: (i64, i64),
        /// Server names.
        names: Vec<String>,
    },
    /// `SetFilterForLoadBalancer` (FilterType 1).
    SetFilter {
        /// (port, instance port).
        listener: (i64, i64),
        /// Addresses to add.
        add: Vec<String>,
        /// Addresses to remove.
        remove: Vec<String>,
        /// Whether the filter type must change to 1 (allow).
        set_allow: bool,
    },
}

impl L4Action {
    /// Whether the load balancer's listener set changes, so that it must be re-read before planning settings.
    pub fn is_structural(&self) -> bool {
        matches!(
            self,
            Self::Create { .. } | Self::UpdateListener { .. } | Self::RegisterPort { .. }
        )
    }
}

/// The plan and what it cannot do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct L4Plan {
    /// Calls, in order.
    pub actions: Vec<L4Action>,
    /// Differences no call can fix (each becomes a Warning Event).
    pub warnings: Vec<String>,
}

fn normalize_filter(set: &BTreeSet<String>) -> BTreeSet<String> {
    if set.is_empty() || set.contains(ANY_SOURCE) {
        [ANY_SOURCE.to_owned()].into()
    } else {
        set.clone()
    }
}

/// The calls that turn `observed` into `desired` (see the module documentation).
pub fn plan(desired: &DesiredL4, observed: Option<&ObservedL4>) -> L4Plan {
    let mut p = L4Plan::default();
    let Some(obs) = observed else {
        p.actions.push(L4Action::Create {
            listeners: desired
                .listeners
                .iter()
                .map(|l| (l.port, l.instance_port, l.balancing_type))
                .collect(),
            network_volume: desired.network_volume,
            accounting_type: desired.accounting_type,
            policy_type: desired.policy_type,
        });
        return p;
    };
    if let Some(v) = desired.network_volume
        && obs.network_volume != Some(v)
    {
        p.actions.push(L4Action::SetNetworkVolume(v));
    }
    if let Some(a) = desired.accounting_type {
        let want = a.to_string();
        let pending = obs
            .next_month_accounting_type
            .as_deref()
            .or(obs.accounting_type.as_deref());
        if pending != Some(want.as_str()) {
            p.actions.push(L4Action::SetAccountingType(a));
        }
    }
    if let Some(pt) = desired.policy_type
        && obs.policy_type.as_deref().is_some_and(|o| o != pt)
    {
        p.warnings.push(format!(
            "load balancer {}: policy type is {} and cannot be changed to {pt} after creation; \
             delete and re-create the Service to change it",
            obs.name,
            obs.policy_type.as_deref().unwrap_or("?")
        ));
    }
    // Match listeners: same ports first, then same LB port, then any (in order).
    let mut unmatched_obs: Vec<&ObservedListener> = obs.listeners.iter().collect();
    let mut pairs: Vec<(&WantListener, Option<&ObservedListener>)> = Vec::new();
    let mut pending: Vec<&WantListener> = Vec::new();
    for w in &desired.listeners {
        if let Some(i) = unmatched_obs
            .iter()
            .position(|o| o.port == w.port && o.instance_port == w.instance_port)
        {
            pairs.push((w, Some(unmatched_obs.remove(i))));
        } else {
            pending.push(w);
        }
    }
    let mut still: Vec<&WantListener> = Vec::new();
    for w in pending {
        if let Some(i) = unmatched_obs.iter().position(|o| o.port == w.port) {
            pairs.push((w, Some(unmatched_obs.remove(i))));
        } else {
            still.push(w);
        }
    }
    for w in still {
        if unmatched_obs.is_empty() {
            pairs.push((w, None));
        } else {
            pairs.push((w, Some(unmatched_obs.remove(0))));
        }
    }
    pairs.sort_by_key(|(w, _)| (w.port, w.instance_port));
    let want_filter = normalize_filter(&desired.filter);
    let mut settings = Vec::new();
    for (w, o) in pairs {
        let key = (w.port, w.instance_port);
        let Some(o) = o else {
            p.actions.push(L4Action::RegisterPort {
                listener: (w.port, w.instance_port, w.balancing_type),
            });
            continue;
        };
        if (o.port, o.instance_port, o.balancing_type) != (w.port, w.instance_port, w.balancing_type) {
            p.actions.push(L4Action::UpdateListener {
                from: (o.port, o.instance_port),
                to: (w.port, w.instance_port, w.balancing_type),
            });
        }
        if (o.hc_target.as_str(), o.hc_interval, o.hc_unhealthy)
            != (w.hc_target.as_str(), w.hc_interval, w.hc_unhealthy)
        {
            settings.push(L4Action::ConfigureHealthCheck {
                listener: key,
                target: w.hc_target.clone(),
                interval: w.hc_interval,
                unhealthy: w.hc_unhealthy,
            });
        }
        let add: Vec<String> = desired.instances.difference(&o.instances).cloned().collect();
        let remove: Vec<String> = o.instances.difference(&desired.instances).cloned().collect();
        if !add.is_empty() {
            settings.push(L4Action::RegisterInstances {
                listener: key,
                names: add,
            });
        }
        if !remove.is_empty() {
            settings.push(L4Action::DeregisterInstances {
                listener: key,
                names: remove,
            });
        }
        let have = normalize_filter(&o.filter);
        let set_allow = o.filter_type != "1";
        let add: Vec<String> = want_filter.difference(&have).cloned().collect();
        let mut remove: Vec<String> = have.difference(&want_filter).cloned().collect();
        // The emulator and the API report an implicit "any" as an empty list: nothing to remove then.
        if o.filter.is_empty() {
            remove.retain(|r| r != ANY_SOURCE);
        }
        if set_allow || !add.is_empty() || !remove.is_empty() {
            settings.push(L4Action::SetFilter {
                listener: key,
                add,
                remove,
                set_allow,
            });
        }
    }
    p.actions.extend(settings);
    for o in unmatched_obs {
        p.actions.push(L4Action::DeletePort {
            listener: (o.port, o.instance_port),
        });
    }
    p
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
