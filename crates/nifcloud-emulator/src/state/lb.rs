//! L4 load balancers. Identity of a port pair: (LoadBalancerName, LoadBalancerPort, InstancePort).
//!
//! Emulator choices: a missing listener protocol is reported as HTTP for port 80, HTTPS for 443,
//! FTP for 21 and `custom` otherwise; the default health check is `TCP:<InstancePort>`, interval 5,
//! timeout 5, thresholds 1; the default filter allows `*.*.*.*`. Instance health is `InService` for
//! running instances and `OutOfService` otherwise. Deleting the last port pair deletes the LB.
//!
//! The filter's allow-any entry `*.*.*.*` behaves as [`AllowAnyEntry`] says: by default as the service
//! reports it (the first address added replaces it, removing the last brings it back).
//!
//! `DescribeLoadBalancers` replies as the service does: no `Option` element; `Policies` holds one
//! `AppCookieStickinessPolicies` and one `LBCookieStickinessPolicies` entry with empty values. Session
//! stickiness set by `UpdateLoadBalancerOption` shows as that entry's `CookieExpirationPeriod` (in minutes)*;
//! the sorry page is stored but shown nowhere (* = emulator choice: the captured replies show only the
//! disabled form).

use serde::{Deserialize, Serialize};

use super::{State, jst, valid_name};
use crate::error::ApiError;
use crate::wire::Params;
use crate::xml::Xml;

/// The filter entry that allows any source.
pub const ANY_SOURCE: &str = "*.*.*.*";

/// How a port pair's filter reports its allow-any entry `*.*.*.*` once addresses are set.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AllowAnyEntry {
    /// As the service reports it: `*.*.*.*` stands for a filter without addresses. The first address added
    /// replaces it and removing the last brings it back; adding or removing `*.*.*.*` itself changes nothing.
    #[default]
    Replaced,
    /// `*.*.*.*` is an entry like any other: it stays listed beside the addresses added until it is removed,
    /// and a filter whose every entry was removed is reported empty. (The emulator's earlier behaviour: clients
    /// must converge against either.)
    Kept,
}

/// One L4 load balancer (all port pairs under one name and VIP).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoadBalancer {
    /// Name (1-15 alphanumerics).
    pub name: String,
    /// VIP (`DNSName`).
    pub vip: String,
    /// Bandwidth in Mbps.
    pub network_volume: i64,
    /// `AccountingType` in force: `1` monthly, `2` pay-per-use (default `1`).
    pub accounting_type: String,
    /// `NextMonthAccountingType`: what `accounting_type` becomes next month (`1` or `2`).
    pub next_month_accounting_type: String,
    /// `v4` or `v6`.
    pub ip_version: String,
    /// `standard` or `ats`.
    pub policy_type: String,
    /// `AvailabilityZones`: the zones given at creation, else the region's first zone.
    pub zones: Vec<String>,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Port pairs, each identified by (`lb_port`, `instance_port`); never empty (the last one's deletion
    /// deletes the load balancer).
    pub ports: Vec<LbPort>,
}

/// One port pair with its per-pair settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LbPort {
    /// `LoadBalancerPort`: the port clients connect to on the VIP.
    pub lb_port: i64,
    /// `InstancePort`: the port traffic is forwarded to on each registered instance.
    pub instance_port: i64,
    /// `Protocol` as reported: the one given, else `HTTP` for port 80, `HTTPS` for 443, `FTP` for 21, else
    /// `custom`.
    pub protocol: String,
    /// 1 round-robin, 2 least-connection.
    pub balancing_type: i64,
    /// Health check target, `TCP:<port>` or `ICMP`.
    pub hc_target: String,
    /// Health check interval (s).
    pub hc_interval: i64,
    /// Health check timeout (s).
    pub hc_timeout: i64,
    /// `UnhealthyThreshold`: failed checks in a row that make an instance unhealthy (default 1; stored and
    /// reported: health follows the instance's state).
    pub hc_unhealthy: i64,
    /// `HealthyThreshold`: passed checks in a row that make it healthy again (default 1; stored and reported).
    pub hc_healthy: i64,
    /// Registered instance unique ids.
    pub instances: Vec<String>,
    /// 1 allow-list, 2 deny-list.
    pub filter_type: String,
    /// The filter's addresses (`*.*.*.*` by default: everyone), read as `filter_type` says.
    pub filter_ips: Vec<String>,
    /// Session stickiness enabled.
    pub sticky: bool,
    /// Stickiness period (min).
    pub sticky_period: i64,
    /// Sorry page enabled.
    pub sorry: bool,
    /// Sorry page status code.
    pub sorry_status: i64,
}

fn default_protocol(lb_port: i64) -> &'static str {
    match lb_port {
        80 => "HTTP",
        443 => "HTTPS",
        21 => "FTP",
        _ => "custom",
    }
}

fn port(p: &Params, key: &str) -> Result<i64, ApiError> {
    let v = p.req_int(key)?;
    if (1..=65535).contains(&v) {
        Ok(v)
    } else {
        Err(ApiError::invalid(key, &v.to_string()))
    }
}

fn listener(p: &Params, prefix: &str) -> Result<LbPort, ApiError> {
    let lb_port = port(p, &format!("{prefix}.LoadBalancerPort"))?;
    let instance_port = port(p, &format!("{prefix}.InstancePort"))?;
    let bt_key = format!("{prefix}.BalancingType");
    let balancing_type = p.int(&bt_key)?.unwrap_or(1);
    if !matches!(balancing_type, 1 | 2) {
        return Err(ApiError::invalid(&bt_key, &balancing_type.to_string()));
    }
    let pr_key = format!("{prefix}.Protocol");
    let protocol = match p.opt(&pr_key) {
        None => default_protocol(lb_port).to_owned(),
        Some(v @ ("HTTP" | "HTTPS" | "FTP" | "custom")) => v.to_owned(),
        Some(v) => return Err(ApiError::invalid(&pr_key, v)),
    };
    Ok(LbPort {
        lb_port,
        instance_port,
        protocol,
        balancing_type,
        hc_target: format!("TCP:{instance_port}"),
        hc_interval: 5,
        hc_timeout: 5,
        hc_unhealthy: 1,
        hc_healthy: 1,
        instances: Vec::new(),
        filter_type: "1".into(),
        filter_ips: vec![ANY_SOURCE.into()],
        sticky: false,
        sticky_period: 10,
        sorry: false,
        sorry_status: 200,
    })
}

fn listeners(p: &Params) -> Result<Vec<LbPort>, ApiError> {
    let ls: Vec<LbPort> = p
        .members("Listeners")
        .iter()
        .map(|m| listener(p, m))
        .collect::<Result<_, _>>()?;
    if ls.is_empty() {
        return Err(ApiError::missing("Listeners"));
    }
    for (i, l) in ls.iter().enumerate() {
        if ls[..i].iter().any(|o| o.lb_port == l.lb_port) {
            return Err(already_exists(l.lb_port));
        }
    }
    Ok(ls)
}

fn already_exists(lb_port: i64) -> ApiError {
    ApiError::inoperable(
        "Client.Inoperable.LoadBalancerPort.AlreadyExists",
        format!("The LoadBalancerPort {lb_port} is already in use."),
    )
}

fn lb<'a>(st: &'a State, name: &str) -> Result<&'a LoadBalancer, ApiError> {
    st.load_balancers
        .get(name)
        .ok_or_else(|| ApiError::not_found("LoadBalancer", name))
}

/// The (name, LoadBalancerPort, InstancePort) triple from top-level keys; checks it exists.
fn pair(st: &State, p: &Params) -> Result<(String, usize), ApiError> {
    let name = p.req("LoadBalancerName")?;
    let lbp = p.req_int("LoadBalancerPort")?;
    let ip = p.req_int("InstancePort")?;
    let l = lb(st, name)?;
    let idx = l
        .ports
        .iter()
        .position(|x| x.lb_port == lbp && x.instance_port == ip)
        .ok_or_else(|| ApiError::not_found("LoadBalancerPort", &format!("{name}:{lbp}->{ip}")))?;
    Ok((name.to_owned(), idx))
}

fn port_mut<'a>(st: &'a mut State, name: &str, idx: usize) -> Result<&'a mut LbPort, ApiError> {
    st.load_balancers
        .get_mut(name)
        .and_then(|l| l.ports.get_mut(idx))
        .ok_or_else(|| ApiError::not_found("LoadBalancer", name))
}

fn write_listener(x: &mut Xml, l: &LbPort) {
    x.leaf("Protocol", &l.protocol)
        .leaf("LoadBalancerPort", l.lb_port)
        .leaf("InstancePort", l.instance_port)
        .leaf("BalancingType", l.balancing_type);
}

/// `CreateLoadBalancer`: name, Listeners.member.N, NetworkVolume, AccountingType, IpVersion, PolicyType,
/// AvailabilityZones.member.N. Replies with the VIP as `DNSName`.
pub fn create_load_balancer(st: &mut State, p: &Params, x: &mut Xml, now: i64) -> Result<(), ApiError> {
    let name = p.req("LoadBalancerName")?;
    if !valid_name(name, 15) {
        return Err(ApiError::invalid("LoadBalancerName", name));
    }
    if st.load_balancers.contains_key(name) {
        return Err(ApiError::duplicate("LoadBalancer", name));
    }
    let ports = listeners(p)?;
    let network_volume = p.int("NetworkVolume")?.unwrap_or(10);
    if !(matches!(network_volume, 10 | 20 | 30 | 40)
        || (100..=2000).contains(&network_volume) && network_volume % 100 == 0)
    {
        return Err(ApiError::invalid("NetworkVolume", &network_volume.to_string()));
    }
    let acct = match p.opt("AccountingType") {
        None => "1".to_owned(),
        Some(v @ ("1" | "2")) => v.to_owned(),
        Some(v) => return Err(ApiError::invalid("AccountingType", v)),
    };
    let ip_version = match p.opt("IpVersion") {
        None => "v4",
        Some(v @ ("v4" | "v6")) => v,
        Some(v) => return Err(ApiError::invalid("IpVersion", v)),
    };
    let policy_type = match p.opt("PolicyType") {
        None => "standard",
        Some(v @ ("standard" | "ats")) => v,
        Some(v) => return Err(ApiError::invalid("PolicyType", v)),
    };
    let mut zones: Vec<String> = p
        .list("AvailabilityZones.member")
        .into_iter()
        .map(str::to_owned)
        .collect();
    for z in &zones {
        st.check_zone(z)?;
    }
    if zones.is_empty() {
        zones.push(st.zones.first().cloned().unwrap_or_default());
    }
    let vip = st.allocate_vip()?;
    x.leaf("DNSName", &vip);
    st.load_balancers.insert(
        name.to_owned(),
        LoadBalancer {
            name: name.to_owned(),
            vip,
            network_volume,
            accounting_type: acct.clone(),
            next_month_accounting_type: acct,
            ip_version: ip_version.into(),
            policy_type: policy_type.into(),
            zones,
            created: now,
            ports,
        },
    );
    Ok(())
}

/// `RegisterPortWithLoadBalancer`: adds port pairs (`Client.Inoperable.LoadBalancerPort.AlreadyExists`
/// when the LoadBalancerPort is taken).
pub fn register_port(st: &mut State, p: &Params, x: &mut Xml, _now: i64) -> Result<(), ApiError> {
    let name = p.req("LoadBalancerName")?;
    let existing = lb(st, name)?;
    let new = listeners(p)?;
    for l in &new {
        if existing.ports.iter().any(|e| e.lb_port == l.lb_port) {
            return Err(already_exists(l.lb_port));
        }
    }
    x.list("Listeners", "member", &new, write_listener);
    if let Some(l) = st.load_balancers.get_mut(name) {
        l.ports.extend(new);
    }
    Ok(())
}

/// `DeleteLoadBalancer`: deletes one port pair; the last one takes the LB (and its VIP) with it.
pub fn delete_load_balancer(st: &mut State, p: &Params, _x: &mut Xml, _now: i64) -> Result<(), ApiError> {
    let (name, idx) = pair(st, p)?;
    if let Some(l) = st.load_balancers.get_mut(&name) {
        l.ports.remove(idx);
        if l.ports.is_empty() {
            st.load_balancers.remove(&name);
        }
    }
    Ok(())
}

/// `ConfigureHealthCheck`: HealthCheck.{Target,Interval,Timeout,UnhealthyThreshold,HealthyThreshold}.
pub fn configure_health_check(st: &mut State, p: &Params, x: &mut Xml, _now: i64) -> Result<(), ApiError> {
    let (name, idx) = pair(st, p)?;
    let target = p.req("HealthCheck.Target")?;
    let ok_target = target == "ICMP"
        || target
            .strip_prefix("TCP:")
            .and_then(|n| n.parse::<u16>().ok())
            .is_some_and(|n| n > 0);
    if !ok_target {
        return Err(ApiError::invalid("HealthCheck.Target", target));
    }
    let range = |key: &str, lo: i64, hi: i64, default: i64| -> Result<i64, ApiError> {
        let v = p.int(key)?.unwrap_or(default);
        if (lo..=hi).contains(&v) {
            Ok(v)
        } else {
            Err(ApiError::invalid(key, &v.to_string()))
        }
    };
    let interval = range("HealthCheck.Interval", 5, 300, 5)?;
    let timeout = range("HealthCheck.Timeout", 1, 300, 5)?;
    let unhealthy = range("HealthCheck.UnhealthyThreshold", 1, 10, 1)?;
    let healthy = range("HealthCheck.HealthyThreshold", 1, 10, 1)?;
    let port = port_mut(st, &name, idx)?;
    port.hc_target = target.to_owned();
    port.hc_interval = interval;
    port.hc_timeout = timeout;
    port.hc_unhealthy = unhealthy;
    port.hc_healthy = healthy;
    x.el("HealthCheck", |x| {
        x.leaf("Target", target)
            .leaf("Interval", interval)
            .leaf("UnhealthyThreshold", unhealthy)
            .leaf("HealthyThreshold", healthy);
    });
    Ok(())
}

fn instances_param(st: &State, p: &Params) -> Result<Vec<(String, String)>, ApiError> {
    let ids: Vec<String> = p
        .members("Instances")
        .iter()
        .filter_map(|m| p.opt(&format!("{m}.InstanceId")).map(str::to_owned))
        .collect();
    if ids.is_empty() {
        return Err(ApiError::missing("Instances"));
    }
    ids.iter()
        .map(|n| st.instance(n).map(|i| (i.name.clone(), i.unique_id.clone())))
        .collect()
}

fn write_instances(x: &mut Xml, insts: &[(String, String)]) {
    x.list("Instances", "member", insts, |x, (n, u)| {
        x.leaf("InstanceId", n).leaf("InstanceUniqueId", u);
    });
}

/// `RegisterInstancesWithLoadBalancer` (`Client.Inoperable.LoadBalancer.HavingRegisteredInstance` if
/// an instance is already registered with that port pair).
pub fn register_instances(st: &mut State, p: &Params, x: &mut Xml, _now: i64) -> Result<(), ApiError> {
    let (name, idx) = pair(st, p)?;
    let insts = instances_param(st, p)?;
    let port = port_mut(st, &name, idx)?;
    for (n, u) in &insts {
        if port.instances.contains(u) {
            return Err(ApiError::inoperable(
                "Client.Inoperable.LoadBalancer.HavingRegisteredInstance",
                format!("The instance {n:?} is already registered."),
            ));
        }
    }
    port.instances.extend(insts.iter().map(|(_, u)| u.clone()));
    write_instances(x, &insts);
    Ok(())
}

/// `DeregisterInstancesFromLoadBalancer` (an instance not registered -> NotFound.Instance).
pub fn deregister_instances(st: &mut State, p: &Params, x: &mut Xml, _now: i64) -> Result<(), ApiError> {
    let (name, idx) = pair(st, p)?;
    let insts = instances_param(st, p)?;
    let port = port_mut(st, &name, idx)?;
    for (n, u) in &insts {
        if !port.instances.contains(u) {
            return Err(ApiError::not_found("Instance", n));
        }
    }
    port.instances.retain(|u| !insts.iter().any(|(_, x)| x == u));
    write_instances(x, &insts);
    Ok(())
}

fn valid_filter_ip(s: &str) -> bool {
    if s == ANY_SOURCE {
        return true;
    }
    let (ip, prefix) = match s.split_once('/') {
        Some((ip, pre)) => (ip, Some(pre)),
        None => (s, None),
    };
    ip.parse::<std::net::Ipv4Addr>().is_ok() && prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|n| n <= 32))
}

/// `SetFilterForLoadBalancer`: FilterType 1|2; IPAddresses.member.N.{IPAddress,AddOnFilter}
/// (AddOnFilter true or absent adds, false removes); `*.*.*.*` as [`AllowAnyEntry`] says.
pub fn set_filter(st: &mut State, p: &Params, x: &mut Xml, _now: i64) -> Result<(), ApiError> {
    let any_entry = st.lb_filter_any;
    let (name, idx) = pair(st, p)?;
    let ftype = match p.opt("FilterType") {
        None => None,
        Some(v @ ("1" | "2")) => Some(v.to_owned()),
        Some(v) => return Err(ApiError::invalid("FilterType", v)),
    };
    let mut changes = Vec::new();
    for m in p.members("IPAddresses") {
        let key = format!("{m}.IPAddress");
        let ip = p.req(&key)?;
        if !valid_filter_ip(ip) {
            return Err(ApiError::invalid(&key, ip));
        }
        let add = p.bool(&format!("{m}.AddOnFilter"))?.unwrap_or(true);
        changes.push((ip.to_owned(), add));
    }
    let port = port_mut(st, &name, idx)?;
    if let Some(t) = ftype {
        port.filter_type = t;
    }
    for (ip, add) in changes {
        if any_entry == AllowAnyEntry::Replaced && ip == ANY_SOURCE {
            continue;
        }
        if add {
            if !port.filter_ips.contains(&ip) {
                port.filter_ips.push(ip);
            }
        } else {
            port.filter_ips.retain(|x| *x != ip);
        }
    }
    if any_entry == AllowAnyEntry::Replaced {
        port.filter_ips.retain(|x| x != ANY_SOURCE);
        if port.filter_ips.is_empty() {
            port.filter_ips.push(ANY_SOURCE.into());
        }
    }
    let (t, ips) = (port.filter_type.clone(), port.filter_ips.clone());
    x.el("Filter", |x| {
        x.leaf("FilterType", &t);
        x.list("IPAddresses", "member", &ips, |x, ip| {
            x.leaf("IPAddress", ip);
        });
    });
    Ok(())
}

/// `UpdateLoadBalancer`: LoadBalancerNameUpdate, NetworkVolumeUpdate, AccountingTypeUpdate and
/// ListenerUpdate.{LoadBalancerPort,InstancePort} -> ListenerUpdate.Listener.{...}.
pub fn update_load_balancer(st: &mut State, p: &Params, _x: &mut Xml, _now: i64) -> Result<(), ApiError> {
    let name = p.req("LoadBalancerName")?.to_owned();
    let cur = lb(st, &name)?.clone();
    let mut next = cur.clone();
    if let Some(nv) = p.int("NetworkVolumeUpdate")? {
        if !(matches!(nv, 10 | 20 | 30 | 40) || (100..=2000).contains(&nv) && nv % 100 == 0) {
            return Err(ApiError::invalid("NetworkVolumeUpdate", &nv.to_string()));
        }
        next.network_volume = nv;
    }
    if let Some(a) = p.int("AccountingTypeUpdate")? {
        if !matches!(a, 1 | 2) {
            return Err(ApiError::invalid("AccountingTypeUpdate", &a.to_string()));
        }
        next.next_month_accounting_type = a.to_string();
    }
    if p.opt("ListenerUpdate.LoadBalancerPort").is_some() || p.opt("ListenerUpdate.InstancePort").is_some() {
        let lbp = p.req_int("ListenerUpdate.LoadBalancerPort")?;
        let ip = p.req_int("ListenerUpdate.InstancePort")?;
        let idx = next
            .ports
            .iter()
            .position(|x| x.lb_port == lbp && x.instance_port == ip)
            .ok_or_else(|| ApiError::not_found("LoadBalancerPort", &format!("{name}:{lbp}->{ip}")))?;
        let new_lbp = p.int("ListenerUpdate.Listener.LoadBalancerPort")?.unwrap_or(lbp);
        if new_lbp != lbp && next.ports.iter().any(|x| x.lb_port == new_lbp) {
            return Err(already_exists(new_lbp));
        }
        let l = &mut next.ports[idx];
        l.lb_port = new_lbp;
        l.instance_port = p.int("ListenerUpdate.Listener.InstancePort")?.unwrap_or(ip);
        if let Some(b) = p.int("ListenerUpdate.Listener.BalancingType")? {
            if !matches!(b, 1 | 2) {
                return Err(ApiError::invalid(
                    "ListenerUpdate.Listener.BalancingType",
                    &b.to_string(),
                ));
            }
            l.balancing_type = b;
        }
        if let Some(pr) = p.opt("ListenerUpdate.Listener.Protocol") {
            if !matches!(pr, "HTTP" | "HTTPS" | "FTP" | "custom") {
                return Err(ApiError::invalid("ListenerUpdate.Listener.Protocol", pr));
            }
            l.protocol = pr.to_owned();
        }
    }
    if let Some(new_name) = p.opt("LoadBalancerNameUpdate")
        && new_name != name
    {
        if !valid_name(new_name, 15) {
            return Err(ApiError::invalid("LoadBalancerNameUpdate", new_name));
        }
        if st.load_balancers.contains_key(new_name) {
            return Err(ApiError::duplicate("LoadBalancer", new_name));
        }
        next.name = new_name.to_owned();
    }
    st.load_balancers.remove(&name);
    st.load_balancers.insert(next.name.clone(), next);
    Ok(())
}

/// `UpdateLoadBalancerOption`: SessionStickinessPolicyUpdate.{Enable,ExpirationPeriod},
/// SorryPageUpdate.{Enable,StatusCode}.
pub fn update_load_balancer_option(st: &mut State, p: &Params, _x: &mut Xml, _now: i64) -> Result<(), ApiError> {
    let (name, idx) = pair(st, p)?;
    let sticky = p.bool("SessionStickinessPolicyUpdate.Enable")?;
    let period = p.int("SessionStickinessPolicyUpdate.ExpirationPeriod")?;
    if let Some(v) = period
        && !(3..=60).contains(&v)
    {
        return Err(ApiError::invalid(
            "SessionStickinessPolicyUpdate.ExpirationPeriod",
            &v.to_string(),
        ));
    }
    let sorry = p.bool("SorryPageUpdate.Enable")?;
    let code = p.int("SorryPageUpdate.StatusCode")?;
    if let Some(c) = code
        && !matches!(c, 200 | 503)
    {
        return Err(ApiError::invalid("SorryPageUpdate.StatusCode", &c.to_string()));
    }
    let port = port_mut(st, &name, idx)?;
    if let Some(s) = sticky {
        port.sticky = s;
    }
    if let Some(v) = period {
        port.sticky_period = v;
    }
    if let Some(s) = sorry {
        port.sorry = s;
    }
    if let Some(c) = code {
        port.sorry_status = c;
    }
    Ok(())
}

/// `ClearLoadBalancerSession`: checks the port pair exists.
pub fn clear_session(st: &mut State, p: &Params, _x: &mut Xml, _now: i64) -> Result<(), ApiError> {
    pair(st, p)?;
    Ok(())
}

fn health_state(st: &State, uid: &str) -> (&'static str, &'static str, &'static str) {
    match st.instance_by_uid(uid).map(|i| i.phase) {
        Some(super::instances::InstancePhase::Running) => ("InService", "", ""),
        _ => ("OutOfService", "Instance", "Instance is not running."),
    }
}

fn write_instance_states(st: &State, x: &mut Xml, uids: &[String]) {
    x.list("InstanceStates", "member", uids, |x, u| {
        let (state, reason, desc) = health_state(st, u);
        x.leaf("InstanceId", st.instance_name(u))
            .leaf("InstanceUniqueId", u)
            .leaf("State", state)
            .leaf("ReasonCode", reason)
            .leaf("Description", desc);
    });
}

/// `DescribeInstanceHealth`: per registered instance of the port pair (`Instances.member.N` filters).
pub fn describe_instance_health(st: &mut State, p: &Params, x: &mut Xml, _now: i64) -> Result<(), ApiError> {
    let (name, idx) = pair(st, p)?;
    let port = &lb(st, &name)?.ports[idx];
    let wanted: Vec<&str> = p
        .members("Instances")
        .iter()
        .filter_map(|m| p.opt(&format!("{m}.InstanceId")))
        .collect();
    let mut uids = Vec::new();
    for w in &wanted {
        let inst = st.instance(w)?;
        if !port.instances.contains(&inst.unique_id) {
            return Err(ApiError::not_found("Instance", w));
        }
        uids.push(inst.unique_id.clone());
    }
    if wanted.is_empty() {
        uids = port.instances.clone();
    }
    write_instance_states(st, x, &uids);
    Ok(())
}

/// One DescribeLoadBalancers filter: name, optional LoadBalancerPort, optional InstancePort.
type LbFilter = (String, Option<i64>, Option<i64>);

/// Name/port filters of DescribeLoadBalancers in both encodings.
///
/// Python sends `LoadBalancerNames.member.N` plus `LoadBalancerNames.LoadBalancerPort.N` and
/// `LoadBalancerNames.InstancePort.N`; Go sends `LoadBalancerNames.member.N.LoadBalancerName`,
/// `.LoadBalancerPort` and `.InstancePort`.
fn lb_filters(p: &Params) -> Result<Vec<LbFilter>, ApiError> {
    let mut out = Vec::new();
    for n in p.indices("LoadBalancerNames.member") {
        let base = format!("LoadBalancerNames.member.{n}");
        let (name, lbp, ip) = if let Some(v) = p.opt(&base) {
            (
                v.to_owned(),
                p.int(&format!("LoadBalancerNames.LoadBalancerPort.{n}"))?,
                p.int(&format!("LoadBalancerNames.InstancePort.{n}"))?,
            )
        } else if let Some(v) = p.opt(&format!("{base}.LoadBalancerName")) {
            (
                v.to_owned(),
                p.int(&format!("{base}.LoadBalancerPort"))?,
                p.int(&format!("{base}.InstancePort"))?,
            )
        } else {
            continue;
        };
        out.push((name, lbp, ip));
    }
    Ok(out)
}

/// `DescribeLoadBalancers`: one `member` per port pair.
pub fn describe_load_balancers(st: &mut State, p: &Params, x: &mut Xml, _now: i64) -> Result<(), ApiError> {
    let filters = lb_filters(p)?;
    let mut rows: Vec<(&LoadBalancer, &LbPort)> = Vec::new();
    if filters.is_empty() {
        rows = st
            .load_balancers
            .values()
            .flat_map(|l| l.ports.iter().map(move |p| (l, p)))
            .collect();
    }
    for (name, lbp, ip) in &filters {
        let l = lb(st, name)?;
        let matched: Vec<&LbPort> = l
            .ports
            .iter()
            .filter(|port| lbp.is_none_or(|v| v == port.lb_port) && ip.is_none_or(|v| v == port.instance_port))
            .collect();
        if matched.is_empty() {
            return Err(ApiError::not_found(
                "LoadBalancerPort",
                &format!("{name}:{lbp:?}->{ip:?}"),
            ));
        }
        for port in matched {
            if !rows.iter().any(|(a, b)| std::ptr::eq(*a, l) && std::ptr::eq(*b, port)) {
                rows.push((l, port));
            }
        }
    }
    x.list("LoadBalancerDescriptions", "member", rows, |x, (l, port)| {
        x.leaf("LoadBalancerName", &l.name)
            .leaf("DNSName", &l.vip)
            .leaf("NetworkVolume", l.network_volume)
            .leaf("PolicyType", &l.policy_type);
        x.list("ListenerDescriptions", "member", [port], |x, port| {
            x.el("Listener", |x| write_listener(x, port));
        });
        x.el("Policies", |x| {
            x.list("AppCookieStickinessPolicies", "member", [()], |x, ()| {
                x.leaf("PolicyName", "").leaf("CookieName", "");
            });
            x.list("LBCookieStickinessPolicies", "member", [()], |x, ()| {
                x.leaf("PolicyName", "");
                if port.sticky {
                    x.leaf("CookieExpirationPeriod", port.sticky_period);
                } else {
                    x.leaf("CookieExpirationPeriod", "");
                }
            });
        });
        x.list("AvailabilityZones", "member", &l.zones, |x, z| {
            x.text(z);
        });
        write_instances_uids(st, x, &port.instances);
        x.el("HealthCheck", |x| {
            x.leaf("Target", &port.hc_target)
                .leaf("Interval", port.hc_interval)
                .leaf("Timeout", port.hc_timeout)
                .leaf("UnhealthyThreshold", port.hc_unhealthy)
                .leaf("HealthyThreshold", port.hc_healthy);
            write_instance_states(st, x, &port.instances);
        });
        x.el("Filter", |x| {
            x.leaf("FilterType", &port.filter_type);
            x.list("IPAddresses", "member", &port.filter_ips, |x, ip| {
                x.leaf("IPAddress", ip);
            });
        });
        x.leaf("CreatedTime", jst(l.created))
            .leaf("AccountingType", &l.accounting_type)
            .leaf("NextMonthAccountingType", &l.next_month_accounting_type)
            .leaf("Description", "");
    });
    Ok(())
}

fn write_instances_uids(st: &State, x: &mut Xml, uids: &[String]) {
    x.list("Instances", "member", uids, |x, u| {
        x.leaf("InstanceId", st.instance_name(u)).leaf("InstanceUniqueId", u);
    });
}
