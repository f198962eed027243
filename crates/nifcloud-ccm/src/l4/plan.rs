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
//! When nothing differs the plan is empty. Structural changes (create, register, update ports) mark the plan as
//! reshaping: a re-read and a second plan follow, because the settings of a new listener are only known once it
//! exists.
//!
//! The filter's allow-any entry `*.*.*.*` is never sent. A filter without addresses allows any source, however
//! the service shows it (`*.*.*.*` or an empty list), so opening a filter only removes its addresses. Addresses
//! added to an open filter replace `*.*.*.*` on the real service, but a service may also keep it listed beside
//! them: so that call is followed by a re-read ([`Plan::reshapes`]), and `*.*.*.*` still listed beside
//! addresses is removed then (by itself, once addresses are there to keep the filter closed). Either way the
//! filter converges within one reconcile, and no plan adds or removes `*.*.*.*` again and again.

use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

use nifcloud_cloud::Instance;
use nifcloud_sdk::types::LoadBalancerDescriptions;

use crate::backend::Plan;
use crate::model::{
    AccountingType, BalancingType, Billing, FilterType, HealthCheck, HealthCheckTarget, Listener, PolicyType, PortPair,
    Protocol, member_changes, pair_listeners,
};
use crate::spec::{ANY_SOURCE, ServiceLb};

/// One port pair of an L4 load balancer as observed, with its members and source filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedPort {
    /// The listener (always TCP; no health-check path).
    pub listener: Listener,
    /// Names of the servers registered on this port pair. A listing keeps one copy of each name and of each
    /// distinct set of names (most load balancers of a cluster have the same members).
    pub members: Arc<BTreeSet<Arc<str>>>,
    /// Whether `filter` lists who may connect or who may not.
    pub filter_type: FilterType,
    /// The filter's addresses (`a.b.c.d`, `a.b.c.d/n`); empty, like `*.*.*.*`, means any source. A listing keeps
    /// one copy of each distinct filter (most are `*.*.*.*`).
    pub filter: Arc<BTreeSet<String>>,
}

impl AsRef<Listener> for ObservedPort {
    fn as_ref(&self) -> &Listener {
        &self.listener
    }
}

/// An L4 load balancer as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedL4 {
    /// Its name on NIFCLOUD (unique per kind in the region).
    pub name: String,
    /// The VIP (`DNSName` on the wire); empty while it has none.
    pub vip: String,
    /// Bandwidth in Mbps.
    pub network_volume: Option<i64>,
    /// How it is billed, this month and from next month.
    pub billing: Billing,
    /// The traffic policy chosen at creation.
    pub policy_type: Option<PolicyType>,
    /// The port pairs, ordered by ports.
    pub ports: Vec<ObservedPort>,
}

impl ObservedL4 {
    /// Groups `DescribeLoadBalancers` entries (one per port pair) by name.
    pub fn from_descriptions(items: impl IntoIterator<Item = LoadBalancerDescriptions>) -> Vec<ObservedL4> {
        let mut listing = L4Listing::default();
        for d in items {
            listing.add(d);
        }
        listing.finish()
    }
}

/// The L4 load balancers of a `DescribeLoadBalancers` reply, built entry by entry as the entries are read (one
/// entry per port pair; see [`nifcloud_sdk::listing`]), keeping only what [`plan`] compares: a region-wide
/// listing is large (500 load balancers with 200 members each, with the members' health states, are about 14 MB
/// of XML), and each member server's name, each distinct set of members and each distinct filter is kept once for
/// the whole listing, however many load balancers list it.
#[derive(Debug, Default)]
pub struct L4Listing {
    balancers: Vec<ObservedL4>,
    /// Load-balancer name -> its index in `balancers`.
    index: HashMap<String, usize>,
    /// Every member server's name met so far.
    servers: HashSet<Arc<str>>,
    /// Every set of members met so far.
    member_sets: HashSet<Arc<BTreeSet<Arc<str>>>>,
    /// Every filter met so far.
    filters: HashSet<Arc<BTreeSet<String>>>,
}

impl L4Listing {
    /// Adds one entry of the reply: one port pair of a load balancer (entries without a name are left out).
    pub fn add(&mut self, d: LoadBalancerDescriptions) {
        let Some(name) = d.load_balancer_name.filter(|n| !n.is_empty()) else {
            return;
        };
        let idx = match self.index.get(name.as_str()) {
            Some(&i) => i,
            None => {
                self.balancers.push(ObservedL4 {
                    name: name.as_str().into(),
                    vip: d.dns_name.unwrap_or_default().into(),
                    network_volume: d.network_volume,
                    billing: Billing::from_wire(d.accounting_type.as_deref(), d.next_month_accounting_type.as_deref()),
                    policy_type: d.policy_type.as_deref().and_then(PolicyType::parse),
                    ports: Vec::new(),
                });
                self.index.insert(name.into(), self.balancers.len() - 1);
                self.balancers.len() - 1
            }
        };
        let hc = d.health_check.unwrap_or_default();
        let filter = d.filter.unwrap_or_default();
        let servers = &mut self.servers;
        let members: BTreeSet<Arc<str>> = d
            .instances
            .into_iter()
            .filter_map(|i| i.instance_id)
            .map(|id| shared(servers, id.as_str()))
            .collect();
        let members = shared(&mut self.member_sets, members);
        let filter_type = FilterType::from_wire(filter.filter_type.as_deref());
        let sources: BTreeSet<String> = filter
            .ip_addresses
            .into_iter()
            .filter_map(|i| i.ip_address)
            .map(String::from)
            .collect();
        let sources = shared(&mut self.filters, sources);
        let ports = &mut self.balancers[idx].ports;
        // Most load balancers have one or two port pairs: room for exactly these, not a growing Vec's four.
        ports.reserve_exact(d.listener_descriptions.len());
        for ld in &d.listener_descriptions {
            let Some(l) = &ld.listener else { continue };
            ports.push(ObservedPort {
                listener: Listener {
                    port: l.load_balancer_port.unwrap_or_default(),
                    instance_port: l.instance_port.unwrap_or_default(),
                    protocol: Protocol::Tcp,
                    balancing: BalancingType::from_code(l.balancing_type),
                    health_check: HealthCheck {
                        target: HealthCheckTarget::parse(hc.target.as_deref().unwrap_or_default()),
                        interval: hc.interval.unwrap_or_default(),
                        unhealthy_threshold: hc.unhealthy_threshold.unwrap_or_default(),
                        path: None,
                    },
                },
                members: members.clone(),
                filter_type: filter_type.clone(),
                filter: sources.clone(),
            });
        }
    }

    /// The load balancers read, in the order first listed, their port pairs ordered by ports.
    pub fn finish(mut self) -> Vec<ObservedL4> {
        for o in &mut self.balancers {
            o.ports.sort_by_key(|p| p.listener.ports());
        }
        self.balancers
    }
}

/// The copy of `value` kept in `known` (kept there first when new): one copy of each member name, member set and
/// filter for the whole listing.
fn shared<T, V>(known: &mut HashSet<Arc<T>>, value: V) -> Arc<T>
where
    T: ?Sized + Eq + Hash,
    V: Borrow<T>,
    Arc<T>: From<V>,
{
    if let Some(k) = known.get(value.borrow()) {
        return k.clone();
    }
    let value = Arc::from(value);
    known.insert(value.clone());
    value
}

/// An L4 load balancer as desired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredL4 {
    /// Its name on NIFCLOUD (unique per kind in the region).
    pub name: String,
    /// Bandwidth in Mbps, if the Service says.
    pub network_volume: Option<i64>,
    /// Billing, if the Service says.
    pub accounting_type: Option<AccountingType>,
    /// The traffic policy, if the Service says (applied at creation only).
    pub policy_type: Option<PolicyType>,
    /// The listeners, ordered by port.
    pub listeners: Vec<Listener>,
    /// Names of the member servers (the same on every port pair).
    pub members: BTreeSet<Arc<str>>,
    /// Allowed sources; `{"*.*.*.*"}` for any.
    pub filter: BTreeSet<String>,
}

impl DesiredL4 {
    /// The L4 load balancer `name` the Service `spec` asks for, with these member servers.
    pub fn new(name: &str, spec: &ServiceLb, members: &[Instance]) -> Self {
        let o = &spec.options;
        Self {
            name: name.to_owned(),
            network_volume: o.network_volume,
            accounting_type: o.accounting_type,
            policy_type: o.policy_type,
            listeners: spec.listeners.clone(),
            members: members.iter().map(|m| Arc::from(m.name.as_str())).collect(),
            filter: spec.filter.clone(),
        }
    }

    /// What a load balancer just created from this is known to look like: its listeners, bandwidth, accounting
    /// and policy as sent, the API's default allow-any filter, no members and an unknown health check.
    pub fn as_created(&self, vip: &str) -> ObservedL4 {
        ObservedL4 {
            name: self.name.clone(),
            vip: vip.to_owned(),
            network_volume: self.network_volume,
            billing: Billing {
                current: self.accounting_type,
                next_month: None,
            },
            policy_type: self.policy_type,
            ports: self
                .listeners
                .iter()
                .map(|l| ObservedPort {
                    listener: Listener {
                        health_check: HealthCheck::default(),
                        ..l.clone()
                    },
                    members: Arc::default(),
                    filter_type: FilterType::Allow,
                    filter: Arc::new([ANY_SOURCE.to_owned()].into()),
                })
                .collect(),
        }
    }
}

/// One call on an L4 load balancer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum L4Action {
    /// `CreateLoadBalancer` with every listener's ports and balancing type (their other settings follow).
    Create {
        /// Every listener: their ports and balancing types are sent; health checks, members and filters follow as
        /// their own calls.
        listeners: Vec<Listener>,
        /// Bandwidth in Mbps; `None`: the API's default.
        network_volume: Option<i64>,
        /// Billing; `None`: the API's default.
        accounting_type: Option<AccountingType>,
        /// Traffic policy; `None`: the API's default.
        policy_type: Option<PolicyType>,
    },
    /// `UpdateLoadBalancer` with `NetworkVolumeUpdate`, in Mbps.
    SetNetworkVolume(i64),
    /// `UpdateLoadBalancer` with `AccountingTypeUpdate` (applies from next month).
    SetAccountingType(AccountingType),
    /// `UpdateLoadBalancer` with `ListenerUpdate`: a listener's ports and balancing type changed in place.
    UpdateListener {
        /// Its current ports.
        from: PortPair,
        /// Its new ports.
        to: PortPair,
        /// Its new balancing type.
        balancing: BalancingType,
    },
    /// `RegisterPortWithLoadBalancer`: a new listener.
    RegisterPort {
        /// Its ports.
        ports: PortPair,
        /// Its balancing type.
        balancing: BalancingType,
    },
    /// `DeleteLoadBalancer` of one port pair (of the last one: the whole load balancer and its VIP).
    DeletePort {
        /// The listener.
        ports: PortPair,
    },
    /// `ConfigureHealthCheck` of one port pair.
    ConfigureHealthCheck {
        /// The listener.
        ports: PortPair,
        /// The health check to set (no path: L4 checks are TCP or ICMP).
        health_check: HealthCheck,
    },
    /// `RegisterInstancesWithLoadBalancer` on one port pair.
    RegisterInstances {
        /// The listener.
        ports: PortPair,
        /// The servers to add, by name (`InstanceId` on the wire).
        names: Vec<String>,
    },
    /// `DeregisterInstancesFromLoadBalancer` from one port pair.
    DeregisterInstances {
        /// The listener.
        ports: PortPair,
        /// The servers to remove, by name.
        names: Vec<String>,
    },
    /// `SetFilterForLoadBalancer` on one port pair: addresses added and removed in one call.
    SetFilter {
        /// The listener.
        ports: PortPair,
        /// Addresses (`a.b.c.d`, `a.b.c.d/n`) to add to the filter; never `*.*.*.*`.
        add: Vec<String>,
        /// Addresses to remove from the filter; `*.*.*.*` only when it is listed beside addresses that stay.
        remove: Vec<String>,
        /// Whether the filter type must change to allow.
        set_allow: bool,
    },
}

/// The calls that delete `observed`: each port pair, the last one taking the load balancer and its VIP along.
pub fn teardown(observed: &ObservedL4) -> Vec<L4Action> {
    let ports = observed.ports.iter().map(|p| p.listener.ports());
    ports.map(|ports| L4Action::DeletePort { ports }).collect()
}

fn normalize_filter(set: &BTreeSet<String>) -> BTreeSet<String> {
    if set.is_empty() || set.contains(ANY_SOURCE) {
        [ANY_SOURCE.to_owned()].into()
    } else {
        set.clone()
    }
}

/// The filter call one port pair needs, if any, and whether its result must be read back before the plan goes
/// on (addresses added to an open filter: the service decides whether `*.*.*.*` stays listed beside them).
///
/// `want` is normalized: `{*.*.*.*}` for any source, else the addresses.
fn filter_change(ports: PortPair, want: &BTreeSet<String>, have: &ObservedPort) -> (Option<L4Action>, bool) {
    let set_allow = have.filter_type != FilterType::Allow;
    let addresses =
        |set: &BTreeSet<String>| -> BTreeSet<String> { set.iter().filter(|a| *a != ANY_SOURCE).cloned().collect() };
    let (want_addrs, have_addrs) = (addresses(want), addresses(&have.filter));
    let add: Vec<String> = want_addrs.difference(&have_addrs).cloned().collect();
    let mut remove: BTreeSet<String> = have_addrs.difference(&want_addrs).cloned().collect();
    // `*.*.*.*` listed beside addresses (a service that keeps it): removed once addresses are wanted, and only
    // while some are already there, so that the filter never stands empty.
    if have.filter.contains(ANY_SOURCE) && !have_addrs.is_empty() && !want_addrs.is_empty() {
        remove.insert(ANY_SOURCE.to_owned());
    }
    let reread = have_addrs.is_empty() && !add.is_empty();
    let action = (set_allow || !add.is_empty() || !remove.is_empty()).then(|| L4Action::SetFilter {
        ports,
        add,
        remove: remove.into_iter().collect(),
        set_allow,
    });
    (action, reread)
}

/// The calls that turn `observed` into `desired` (see the module documentation).
pub fn plan(desired: &DesiredL4, observed: Option<&ObservedL4>) -> Plan<L4Action> {
    let mut p = Plan::default();
    let Some(obs) = observed else {
        p.actions.push(L4Action::Create {
            listeners: desired.listeners.clone(),
            network_volume: desired.network_volume,
            accounting_type: desired.accounting_type,
            policy_type: desired.policy_type,
        });
        p.reshapes = true;
        return p;
    };
    if let Some(v) = desired.network_volume
        && obs.network_volume != Some(v)
    {
        p.actions.push(L4Action::SetNetworkVolume(v));
    }
    if let Some(a) = obs.billing.change_to(desired.accounting_type) {
        p.actions.push(L4Action::SetAccountingType(a));
    }
    if let (Some(want), Some(have)) = (desired.policy_type, obs.policy_type)
        && want != have
    {
        p.warnings.push(format!(
            "load balancer {}: policy type is {} and cannot be changed to {} after creation; \
             delete and re-create the Service to change it",
            obs.name,
            have.as_str(),
            want.as_str()
        ));
    }
    let pairing = pair_listeners(&desired.listeners, &obs.ports);
    let want_filter = normalize_filter(&desired.filter);
    let mut settings = Vec::new();
    for (w, o) in pairing.pairs {
        let ports = w.ports();
        let Some(o) = o else {
            p.actions.push(L4Action::RegisterPort {
                ports,
                balancing: w.balancing,
            });
            p.reshapes = true;
            continue;
        };
        if (o.listener.ports(), o.listener.balancing) != (ports, w.balancing) {
            p.actions.push(L4Action::UpdateListener {
                from: o.listener.ports(),
                to: ports,
                balancing: w.balancing,
            });
            p.reshapes = true;
        }
        if o.listener.health_check != w.health_check {
            settings.push(L4Action::ConfigureHealthCheck {
                ports,
                health_check: w.health_check.clone(),
            });
        }
        let (add, remove) = member_changes(&desired.members, &o.members);
        if !add.is_empty() {
            settings.push(L4Action::RegisterInstances { ports, names: add });
        }
        if !remove.is_empty() {
            settings.push(L4Action::DeregisterInstances { ports, names: remove });
        }
        let (filter, reread) = filter_change(ports, &want_filter, o);
        settings.extend(filter);
        p.reshapes |= reread;
    }
    p.actions.extend(settings);
    for o in pairing.surplus {
        p.actions.push(L4Action::DeletePort {
            ports: o.listener.ports(),
        });
    }
    p
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
