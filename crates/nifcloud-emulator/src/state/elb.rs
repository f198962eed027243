//! Elastic load balancers (`Nifty*ElasticLoadBalancer*`). Every change puts the ELB in `State`
//! `processing` for `delays.elb_ms`; a change while it is processing gets
//! `Server.ResourceIncorrectState.ElasticLoadBalancer.Processing`* (busy, retry). A listener is
//! identified by (ElasticLoadBalancerPort, InstancePort, Protocol); deleting the last one deletes
//! the ELB. (* = emulator choice; the real code is not documented.)
//!
//! Replies as the service's: `NiftyCreateElasticLoadBalancer` answers an empty `DNSName` (the VIP shows in
//! `NiftyDescribeElasticLoadBalancers`); there, network interfaces count `DeviceIndex` from 1 and list the
//! system IP addresses given at creation (an interface on `net-COMMON_GLOBAL` given none gets the two lowest
//! free addresses of the VIP range*), `VersionInformation/Version` is `v2.0`, the health-check `InstanceStates`
//! carry an empty `State` (`NiftyDescribeInstanceElasticLoadBalancerHealth` tells `InService` or
//! `OutOfService`), descriptions are CDATA, `CreatedTime` has whole seconds, and a listener shows
//! `SessionStickinessPolicy/{Method,ExpirationPeriod}`, `SorryPage/RedirectUrl` and
//! `HealthCheck/{Path,Expectation}` only when stickiness or the sorry page is enabled or the check is HTTP(S)*.

use serde::{Deserialize, Serialize};

use super::{State, after, jst_seconds, valid_name};
use crate::error::ApiError;
use crate::wire::Params;
use crate::xml::Xml;

/// One elastic load balancer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ElasticLoadBalancer {
    /// `elb-…`.
    pub id: String,
    /// `ElasticLoadBalancerName` (1-15 alphanumerics), unique in the account.
    pub name: String,
    /// VIP (`DNSName`).
    pub vip: String,
    /// `processing` until this time (epoch ms), then `available`.
    pub processing_until: i64,
    /// Bandwidth in Mbps.
    pub network_volume: i64,
    /// `AccountingType` in force: `1` monthly, `2` pay-per-use (default `1`).
    pub accounting_type: String,
    /// `NextMonthAccountingType`: what `accounting_type` becomes next month (`1` or `2`).
    pub next_month_accounting_type: String,
    /// `AvailabilityZones` given at creation (at least one, each a zone of the region).
    pub zones: Vec<String>,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Listeners, each identified by (`elb_port`, `instance_port`, `protocol`); never empty (the last one's
    /// deletion deletes the ELB).
    pub listeners: Vec<ElbListener>,
    /// Network interfaces, in the order given (`DeviceIndex` 1, 2, …).
    pub network_interfaces: Vec<ElbInterface>,
}

/// One network interface of an elastic load balancer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ElbInterface {
    /// `NetworkId`: `net-COMMON_GLOBAL`, `net-COMMON_PRIVATE` or a private LAN `net-…`.
    pub network_id: String,
    /// `NetworkName` as given (empty otherwise).
    pub network_name: String,
    /// `IpAddress`: the VIP on the VIP network, else the address given.
    pub ip_address: String,
    /// `IsVipNetwork`: whether clients connect through this interface.
    pub is_vip: bool,
    /// `SystemIpAddresses`: the addresses the load balancer itself uses on this network (health checks).
    pub system_ips: Vec<String>,
}

/// One ELB listener.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ElbListener {
    /// TCP, UDP, HTTP or HTTPS.
    pub protocol: String,
    /// `ElasticLoadBalancerPort`: the port clients connect to on the VIP.
    pub elb_port: i64,
    /// `InstancePort`: the port traffic is forwarded to on each registered instance.
    pub instance_port: i64,
    /// `BalancingType`: 1 round-robin (default), 2 least-connection.
    pub balancing_type: i64,
    /// The listener's free-text `Description`.
    pub description: String,
    /// Health check target: `TCP:<InstancePort>` by default, `ICMP`, or `HTTP:<port>`/`HTTPS:<port>`.
    pub hc_target: String,
    /// Health check interval in seconds, 5-300 (default 10).
    pub hc_interval: i64,
    /// `UnhealthyThreshold`: failed checks in a row that make an instance unhealthy, 1-10 (default 3; stored and
    /// reported, health is not simulated).
    pub hc_unhealthy: i64,
    /// Path an HTTP(S) health check requests (empty for TCP and ICMP checks).
    pub hc_path: String,
    /// Expected HTTP codes.
    pub hc_expect: Vec<String>,
    /// Registered instance unique ids.
    pub instances: Vec<String>,
    /// Whether a client keeps going to the same instance (`Session.StickinessPolicy.Enable`).
    pub sticky: bool,
    /// `Session.StickinessPolicy.ExpirationPeriod` as given (0 when not given).
    pub sticky_period: i64,
    /// Stickiness method (1 source IP, 2 cookie).
    pub sticky_method: i64,
    /// Sorry page enabled.
    pub sorry: bool,
    /// Sorry page URL.
    pub sorry_url: String,
    /// `SSLCertificateId` of an HTTPS listener (empty otherwise).
    pub ssl_certificate_id: String,
}

impl ElasticLoadBalancer {
    /// Every address it holds: its VIP and the system addresses of its interfaces.
    pub fn addresses(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.vip.as_str()).chain(
            self.network_interfaces
                .iter()
                .flat_map(|n| n.system_ips.iter().map(String::as_str)),
        )
    }

    /// `processing` or `available`.
    pub fn state(&self, now: i64) -> &'static str {
        if now < self.processing_until {
            "processing"
        } else {
            "available"
        }
    }
}

pub(super) fn settle(_st: &mut State, _now: i64) {}

impl ElbListener {
    /// Whether its health check is HTTP or HTTPS (which has a path and expected codes).
    pub fn http_check(&self) -> bool {
        self.hc_target.starts_with("HTTP:") || self.hc_target.starts_with("HTTPS:")
    }
}

fn protocol(p: &Params, key: &str) -> Result<String, ApiError> {
    match p.req(key)? {
        v @ ("TCP" | "UDP" | "HTTP" | "HTTPS") => Ok(v.to_owned()),
        v => Err(ApiError::invalid(key, v)),
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

fn instance_refs(st: &State, p: &Params, prefix: &str) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for m in p.members(prefix) {
        let uid = if let Some(n) = p.opt(&format!("{m}.InstanceId")) {
            st.instance(n)?.unique_id.clone()
        } else if let Some(u) = p.opt(&format!("{m}.InstanceUniqueId")) {
            st.instance_by_uid(u)
                .ok_or_else(|| ApiError::not_found("Instance", u))?
                .unique_id
                .clone()
        } else {
            continue;
        };
        out.push(uid);
    }
    Ok(out)
}

fn listener(st: &State, p: &Params, m: &str) -> Result<ElbListener, ApiError> {
    let protocol = protocol(p, &format!("{m}.Protocol"))?;
    let elb_port = port(p, &format!("{m}.ElasticLoadBalancerPort"))?;
    let instance_port = port(p, &format!("{m}.InstancePort"))?;
    let bt_key = format!("{m}.BalancingType");
    let balancing_type = p.int(&bt_key)?.unwrap_or(1);
    if !matches!(balancing_type, 1 | 2) {
        return Err(ApiError::invalid(&bt_key, &balancing_type.to_string()));
    }
    let mut l = ElbListener {
        protocol,
        elb_port,
        instance_port,
        balancing_type,
        description: p.opt(&format!("{m}.Description")).unwrap_or("").to_owned(),
        hc_target: format!("TCP:{instance_port}"),
        hc_interval: 10,
        hc_unhealthy: 3,
        hc_path: String::new(),
        hc_expect: Vec::new(),
        instances: instance_refs(st, p, &format!("{m}.Instances"))?,
        sticky: p
            .bool(&format!("{m}.Session.StickinessPolicy.Enable"))?
            .unwrap_or(false),
        sticky_period: p
            .int(&format!("{m}.Session.StickinessPolicy.ExpirationPeriod"))?
            .unwrap_or(0),
        sticky_method: p.int(&format!("{m}.Session.StickinessPolicy.Method"))?.unwrap_or(1),
        sorry: p.bool(&format!("{m}.SorryPage.Enable"))?.unwrap_or(false),
        sorry_url: p.opt(&format!("{m}.SorryPage.RedirectUrl")).unwrap_or("").to_owned(),
        ssl_certificate_id: p.opt(&format!("{m}.SSLCertificateId")).unwrap_or("").to_owned(),
    };
    apply_health_check(p, &format!("{m}.HealthCheck"), &mut l)?;
    Ok(l)
}

fn apply_health_check(p: &Params, prefix: &str, l: &mut ElbListener) -> Result<(), ApiError> {
    if let Some(t) = p.opt(&format!("{prefix}.Target")) {
        let ok = t == "ICMP"
            || ["TCP:", "HTTP:", "HTTPS:"].iter().any(|pre| {
                t.strip_prefix(pre)
                    .and_then(|n| n.parse::<u16>().ok())
                    .is_some_and(|n| n > 0)
            });
        if !ok {
            return Err(ApiError::invalid(&format!("{prefix}.Target"), t));
        }
        l.hc_target = t.to_owned();
    }
    if let Some(i) = p.int(&format!("{prefix}.Interval"))? {
        if !(5..=300).contains(&i) {
            return Err(ApiError::invalid(&format!("{prefix}.Interval"), &i.to_string()));
        }
        l.hc_interval = i;
    }
    if let Some(u) = p.int(&format!("{prefix}.UnhealthyThreshold"))? {
        if !(1..=10).contains(&u) {
            return Err(ApiError::invalid(
                &format!("{prefix}.UnhealthyThreshold"),
                &u.to_string(),
            ));
        }
        l.hc_unhealthy = u;
    }
    if let Some(path) = p.opt(&format!("{prefix}.Path")) {
        l.hc_path = path.to_owned();
    }
    let codes: Vec<String> = p
        .members(&format!("{prefix}.Expectation"))
        .iter()
        .filter_map(|m| p.opt(&format!("{m}.HttpCode")).map(str::to_owned))
        .collect();
    if !codes.is_empty() {
        l.hc_expect = codes;
    }
    Ok(())
}

/// Finds the ELB by ElasticLoadBalancerId or ElasticLoadBalancerName; returns its id.
fn find(st: &State, p: &Params) -> Result<String, ApiError> {
    if let Some(id) = p.opt("ElasticLoadBalancerId") {
        return st
            .elastic_load_balancers
            .contains_key(id)
            .then(|| id.to_owned())
            .ok_or_else(|| ApiError::not_found("ElasticLoadBalancerId", id));
    }
    let name = p.req("ElasticLoadBalancerName")?;
    st.elastic_load_balancers
        .values()
        .find(|e| e.name == name)
        .map(|e| e.id.clone())
        .ok_or_else(|| ApiError::not_found("ElasticLoadBalancer", name))
}

/// Finds the ELB and checks it is not processing (for mutations).
fn find_idle(st: &State, p: &Params, now: i64) -> Result<String, ApiError> {
    let id = find(st, p)?;
    let e = &st.elastic_load_balancers[&id];
    if e.state(now) != "available" {
        return Err(ApiError::processing("ElasticLoadBalancer", &e.name));
    }
    Ok(id)
}

/// Finds the listener (ElasticLoadBalancerPort, InstancePort, Protocol) of an ELB.
fn find_listener(st: &State, id: &str, p: &Params) -> Result<usize, ApiError> {
    let proto = protocol(p, "Protocol")?;
    let ep = p.req_int("ElasticLoadBalancerPort")?;
    let ip = p.req_int("InstancePort")?;
    st.elastic_load_balancers[id]
        .listeners
        .iter()
        .position(|l| l.protocol == proto && l.elb_port == ep && l.instance_port == ip)
        .ok_or_else(|| ApiError::not_found("Protocol.or.ElasticLoadBalancerPort", &format!("{proto}:{ep}->{ip}")))
}

fn touch(st: &mut State, id: &str, now: i64) {
    let until = after(now, st.delays.elb_ms);
    if let Some(e) = st.elastic_load_balancers.get_mut(id) {
        e.processing_until = until;
    }
}

fn check_network_volume(key: &str, v: i64) -> Result<i64, ApiError> {
    if matches!(v, 10 | 20 | 30 | 40 | 100 | 200 | 300 | 400 | 500) {
        Ok(v)
    } else {
        Err(ApiError::invalid(key, &v.to_string()))
    }
}

fn port_conflict(listeners: &[ElbListener], l: &ElbListener) -> bool {
    listeners
        .iter()
        .any(|o| o.elb_port == l.elb_port && (o.protocol == "UDP") == (l.protocol == "UDP"))
}

fn already_exists(l: &ElbListener) -> ApiError {
    ApiError::inoperable(
        "Client.Inoperable.ElasticLoadBalancerPort.AlreadyExists",
        format!("The ElasticLoadBalancerPort {} is already in use.", l.elb_port),
    )
}

/// `NiftyCreateElasticLoadBalancer`.
pub fn create(st: &mut State, p: &Params, x: &mut Xml, now: i64) -> Result<(), ApiError> {
    let zones: Vec<String> = p
        .list("AvailabilityZones.member")
        .into_iter()
        .map(str::to_owned)
        .collect();
    if zones.is_empty() {
        return Err(ApiError::missing("AvailabilityZones"));
    }
    for z in &zones {
        st.check_zone(z)?;
    }
    let name = match p.opt("ElasticLoadBalancerName") {
        Some(n) if !valid_name(n, 15) => return Err(ApiError::invalid("ElasticLoadBalancerName", n)),
        Some(n) if st.elastic_load_balancers.values().any(|e| e.name == n) => {
            return Err(ApiError::duplicate("ElasticLoadBalancer", n));
        }
        Some(n) => n.to_owned(),
        None => String::new(),
    };
    let mut listeners: Vec<ElbListener> = Vec::new();
    for m in p.members("Listeners") {
        let l = listener(st, p, &m)?;
        if port_conflict(&listeners, &l) {
            return Err(already_exists(&l));
        }
        listeners.push(l);
    }
    if listeners.is_empty() {
        return Err(ApiError::missing("Listeners"));
    }
    let network_volume = check_network_volume("NetworkVolume", p.int("NetworkVolume")?.unwrap_or(10))?;
    let acct = match p.opt("AccountingType") {
        None => "1".to_owned(),
        Some(v @ ("1" | "2")) => v.to_owned(),
        Some(v) => return Err(ApiError::invalid("AccountingType", v)),
    };
    let mut nics = Vec::new();
    for m in p.items("NetworkInterface") {
        let system_ips = p
            .items(&format!("{m}.SystemIpAddresses"))
            .iter()
            .filter_map(|s| p.opt(&format!("{s}.SystemIpAddress")).map(str::to_owned))
            .collect();
        nics.push(ElbInterface {
            network_id: p.req(&format!("{m}.NetworkId"))?.to_owned(),
            network_name: p.opt(&format!("{m}.NetworkName")).unwrap_or("").to_owned(),
            ip_address: p.opt(&format!("{m}.IpAddress")).unwrap_or("").to_owned(),
            is_vip: p.bool(&format!("{m}.IsVipNetwork"))?.unwrap_or(false),
            system_ips,
        });
    }
    if !nics.iter().any(|n| n.is_vip) {
        nics.insert(
            0,
            ElbInterface {
                network_id: "net-COMMON_GLOBAL".into(),
                network_name: String::new(),
                ip_address: String::new(),
                is_vip: true,
                system_ips: Vec::new(),
            },
        );
    }
    let needs_vip = nics.iter().any(|n| n.is_vip && n.ip_address.is_empty());
    let global_without_system = nics
        .iter()
        .filter(|n| n.network_id == "net-COMMON_GLOBAL" && n.system_ips.is_empty())
        .count();
    let mut pool = st
        .allocate_addresses(usize::from(needs_vip) + 2 * global_without_system)?
        .into_iter();
    let vip = if needs_vip {
        pool.next().unwrap_or_default()
    } else {
        String::new()
    };
    for n in &mut nics {
        if n.is_vip && n.ip_address.is_empty() {
            n.ip_address.clone_from(&vip);
        }
        if n.network_id == "net-COMMON_GLOBAL" && n.system_ips.is_empty() {
            n.system_ips = pool.by_ref().take(2).collect();
        }
    }
    let id = loop {
        let id = st.new_id("elb");
        if !st.elastic_load_balancers.contains_key(&id) {
            break id;
        }
    };
    let name = if name.is_empty() { id.replace('-', "") } else { name };
    let dns = nics
        .iter()
        .find(|n| n.is_vip)
        .map(|n| n.ip_address.clone())
        .unwrap_or_default();
    // The service answers the create with an empty DNSName: the VIP shows once described.
    x.leaf("DNSName", "");
    st.elastic_load_balancers.insert(
        id.clone(),
        ElasticLoadBalancer {
            id: id.clone(),
            name,
            vip: dns,
            processing_until: 0,
            network_volume,
            accounting_type: acct.clone(),
            next_month_accounting_type: acct,
            zones,
            created: now,
            listeners,
            network_interfaces: nics,
        },
    );
    touch(st, &id, now);
    Ok(())
}

/// `NiftyDeleteElasticLoadBalancer`: deletes one listener; the last one deletes the ELB.
pub fn delete(st: &mut State, p: &Params, _x: &mut Xml, now: i64) -> Result<(), ApiError> {
    let id = find_idle(st, p, now)?;
    let idx = find_listener(st, &id, p)?;
    let Some(e) = st.elastic_load_balancers.get_mut(&id) else {
        return Ok(());
    };
    e.listeners.remove(idx);
    if e.listeners.is_empty() {
        st.elastic_load_balancers.remove(&id);
    } else {
        touch(st, &id, now);
    }
    Ok(())
}

/// `NiftyRegisterPortWithElasticLoadBalancer`.
pub fn register_port(st: &mut State, p: &Params, x: &mut Xml, now: i64) -> Result<(), ApiError> {
    let id = find_idle(st, p, now)?;
    let mut all = st.elastic_load_balancers[&id].listeners.clone();
    let mut new = Vec::new();
    for m in p.members("Listeners") {
        let l = listener(st, p, &m)?;
        if port_conflict(&all, &l) {
            return Err(already_exists(&l));
        }
        all.push(l.clone());
        new.push(l);
    }
    if new.is_empty() {
        return Err(ApiError::missing("Listeners"));
    }
    x.list("Listeners", "member", &new, |x, l| {
        x.leaf("Protocol", &l.protocol)
            .leaf("ElasticLoadBalancerPort", l.elb_port)
            .leaf("InstancePort", l.instance_port)
            .leaf("BalancingType", l.balancing_type);
    });
    if let Some(e) = st.elastic_load_balancers.get_mut(&id) {
        e.listeners = all;
    }
    touch(st, &id, now);
    Ok(())
}

fn register_impl(st: &mut State, p: &Params, now: i64, register: bool) -> Result<(), ApiError> {
    let id = find_idle(st, p, now)?;
    let idx = find_listener(st, &id, p)?;
    let uids = instance_refs(st, p, "Instances")?;
    if uids.is_empty() {
        return Err(ApiError::missing("Instances"));
    }
    let current = &st.elastic_load_balancers[&id].listeners[idx].instances;
    for u in &uids {
        if register && current.contains(u) {
            return Err(ApiError::inoperable(
                "Client.Inoperable.ElasticLoadBalancer.HavingRegisteredInstance",
                format!("The instance {:?} is already registered.", st.instance_name(u)),
            ));
        }
        if !register && !current.contains(u) {
            return Err(ApiError::not_found("Instance", &st.instance_name(u)));
        }
    }
    if let Some(l) = st
        .elastic_load_balancers
        .get_mut(&id)
        .and_then(|e| e.listeners.get_mut(idx))
    {
        if register {
            l.instances.extend(uids);
        } else {
            l.instances.retain(|u| !uids.contains(u));
        }
    }
    touch(st, &id, now);
    Ok(())
}

/// `NiftyRegisterInstancesWithElasticLoadBalancer`.
pub fn register_instances(st: &mut State, p: &Params, _x: &mut Xml, now: i64) -> Result<(), ApiError> {
    register_impl(st, p, now, true)
}

/// `NiftyDeregisterInstancesFromElasticLoadBalancer`.
pub fn deregister_instances(st: &mut State, p: &Params, _x: &mut Xml, now: i64) -> Result<(), ApiError> {
    register_impl(st, p, now, false)
}

/// `NiftyConfigureElasticLoadBalancerHealthCheck`.
pub fn configure_health_check(st: &mut State, p: &Params, x: &mut Xml, now: i64) -> Result<(), ApiError> {
    let id = find_idle(st, p, now)?;
    let idx = find_listener(st, &id, p)?;
    let mut l = st.elastic_load_balancers[&id].listeners[idx].clone();
    p.req("HealthCheck.Target")?;
    apply_health_check(p, "HealthCheck", &mut l)?;
    x.el("HealthCheck", |x| {
        x.leaf("Target", &l.hc_target)
            .leaf("Interval", l.hc_interval)
            .leaf("UnhealthyThreshold", l.hc_unhealthy);
        if l.http_check() {
            x.leaf("Path", &l.hc_path);
        }
        x.list("Expectation", "member", &l.hc_expect, |x, c| {
            x.leaf("HttpCode", c);
        });
    });
    if let Some(slot) = st
        .elastic_load_balancers
        .get_mut(&id)
        .and_then(|e| e.listeners.get_mut(idx))
    {
        *slot = l;
    }
    touch(st, &id, now);
    Ok(())
}

/// `NiftyModifyElasticLoadBalancerAttributes`: stickiness, sorry page and AdditionalAttributes
/// (protocol, elasticLoadBalancerPort, instancePort, description, balancingType, sslCertificateId).
pub fn modify_attributes(st: &mut State, p: &Params, _x: &mut Xml, now: i64) -> Result<(), ApiError> {
    let id = find_idle(st, p, now)?;
    let idx = find_listener(st, &id, p)?;
    let e = &st.elastic_load_balancers[&id];
    let mut l = e.listeners[idx].clone();
    let pre = "LoadBalancerAttributes";
    if let Some(b) = p.bool(&format!("{pre}.Session.StickinessPolicy.Enable"))? {
        l.sticky = b;
    }
    if let Some(v) = p.int(&format!("{pre}.Session.StickinessPolicy.ExpirationPeriod"))? {
        l.sticky_period = v;
    }
    if let Some(v) = p.int(&format!("{pre}.Session.StickinessPolicy.Method"))? {
        if !matches!(v, 1 | 2) {
            return Err(ApiError::invalid("Method", &v.to_string()));
        }
        l.sticky_method = v;
    }
    if let Some(b) = p.bool(&format!("{pre}.SorryPage.Enable"))? {
        l.sorry = b;
    }
    if let Some(u) = p.opt(&format!("{pre}.SorryPage.RedirectUrl")) {
        l.sorry_url = u.to_owned();
    }
    for m in p.members(&format!("{pre}.AdditionalAttributes")) {
        let key = p.req(&format!("{m}.Key"))?;
        let vkey = format!("{m}.Value");
        let val = p.get(&vkey).unwrap_or("");
        let num = || {
            val.parse::<i64>()
                .ok()
                .filter(|n| (1..=65535).contains(n))
                .ok_or_else(|| ApiError::invalid(&vkey, val))
        };
        match key {
            "protocol" if matches!(val, "TCP" | "UDP" | "HTTP" | "HTTPS") => l.protocol = val.to_owned(),
            "elasticLoadBalancerPort" => l.elb_port = num()?,
            "instancePort" => l.instance_port = num()?,
            "description" => l.description = val.to_owned(),
            "balancingType" if matches!(val, "1" | "2") => l.balancing_type = num()?,
            "sslCertificateId" => l.ssl_certificate_id = val.to_owned(),
            _ => return Err(ApiError::invalid(&vkey, val)),
        }
    }
    let others: Vec<ElbListener> = e
        .listeners
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != idx)
        .map(|(_, o)| o.clone())
        .collect();
    if port_conflict(&others, &l) {
        return Err(already_exists(&l));
    }
    if let Some(slot) = st
        .elastic_load_balancers
        .get_mut(&id)
        .and_then(|e| e.listeners.get_mut(idx))
    {
        *slot = l;
    }
    touch(st, &id, now);
    Ok(())
}

/// `NiftyUpdateElasticLoadBalancer`: ElasticLoadBalancerNameUpdate, NetworkVolumeUpdate, AccountingTypeUpdate.
pub fn update(st: &mut State, p: &Params, _x: &mut Xml, now: i64) -> Result<(), ApiError> {
    let id = find_idle(st, p, now)?;
    let new_name = match p.opt("ElasticLoadBalancerNameUpdate") {
        Some(n) if !valid_name(n, 15) => return Err(ApiError::invalid("ElasticLoadBalancerNameUpdate", n)),
        Some(n) if st.elastic_load_balancers.values().any(|e| e.name == n && e.id != id) => {
            return Err(ApiError::duplicate("ElasticLoadBalancer", n));
        }
        other => other.map(str::to_owned),
    };
    let nv = p
        .int("NetworkVolumeUpdate")?
        .map(|v| check_network_volume("NetworkVolumeUpdate", v))
        .transpose()?;
    let acct = p.int("AccountingTypeUpdate")?;
    if let Some(a) = acct
        && !matches!(a, 1 | 2)
    {
        return Err(ApiError::invalid("AccountingTypeUpdate", &a.to_string()));
    }
    if let Some(e) = st.elastic_load_balancers.get_mut(&id) {
        if let Some(n) = new_name {
            e.name = n;
        }
        if let Some(v) = nv {
            e.network_volume = v;
        }
        if let Some(a) = acct {
            e.next_month_accounting_type = a.to_string();
        }
    }
    touch(st, &id, now);
    Ok(())
}

/// `InstanceStates` inside `NiftyDescribeElasticLoadBalancers`: the service leaves `State`, `ReasonCode` and
/// `Description` empty there.
fn write_listed_states(st: &State, x: &mut Xml, uids: &[String]) {
    x.list("InstanceStates", "member", uids, |x, u| {
        x.leaf("InstanceUniqueId", u)
            .leaf("InstanceId", st.instance_name(u))
            .leaf("State", "")
            .leaf("ReasonCode", "")
            .leaf("Description", "");
    });
}

/// `InstanceStates` of `NiftyDescribeInstanceElasticLoadBalancerHealth`: `InService` for a running instance.
fn write_states(st: &State, x: &mut Xml, uids: &[String]) {
    x.list("InstanceStates", "member", uids, |x, u| {
        let running = st
            .instance_by_uid(u)
            .is_some_and(|i| i.phase == super::instances::InstancePhase::Running);
        x.leaf("InstanceId", st.instance_name(u))
            .leaf("InstanceUniqueId", u)
            .leaf("State", if running { "InService" } else { "OutOfService" })
            .leaf("ReasonCode", if running { "" } else { "Instance" })
            .leaf("Description", if running { "" } else { "Instance is not running." });
    });
}

/// `NiftyDescribeInstanceElasticLoadBalancerHealth`.
pub fn describe_instance_health(st: &mut State, p: &Params, x: &mut Xml, _now: i64) -> Result<(), ApiError> {
    let id = find(st, p)?;
    let idx = find_listener(st, &id, p)?;
    let registered = &st.elastic_load_balancers[&id].listeners[idx].instances;
    let wanted = instance_refs(st, p, "Instances")?;
    for w in &wanted {
        if !registered.contains(w) {
            return Err(ApiError::not_found("Instance", &st.instance_name(w)));
        }
    }
    let uids = if wanted.is_empty() { registered.clone() } else { wanted };
    write_states(st, x, &uids);
    Ok(())
}

/// `NiftyDescribeElasticLoadBalancers`: ElasticLoadBalancers.{ElasticLoadBalancerName,ElasticLoadBalancerId}.N
/// and Filter.N (elastic-loadbalancer-name, elastic-loadbalancer-id, state, availability-zone).
pub fn describe(st: &mut State, p: &Params, x: &mut Xml, now: i64) -> Result<(), ApiError> {
    let names = p.list("ElasticLoadBalancers.ElasticLoadBalancerName");
    let ids = p.list("ElasticLoadBalancers.ElasticLoadBalancerId");
    for n in &names {
        if !st.elastic_load_balancers.values().any(|e| e.name == *n) {
            return Err(ApiError::not_found("ElasticLoadBalancer", n));
        }
    }
    for i in &ids {
        if !st.elastic_load_balancers.contains_key(*i) {
            return Err(ApiError::not_found("ElasticLoadBalancerId", i));
        }
    }
    let mut filters = Vec::new();
    for f in p.items("Filter") {
        let name = p.req(&format!("{f}.Name"))?.to_owned();
        let values: Vec<String> = p.list(&format!("{f}.Value")).into_iter().map(str::to_owned).collect();
        filters.push((name, values));
    }
    let elbs: Vec<&ElasticLoadBalancer> = st
        .elastic_load_balancers
        .values()
        .filter(|e| {
            (names.is_empty() && ids.is_empty()) || names.contains(&e.name.as_str()) || ids.contains(&e.id.as_str())
        })
        .filter(|e| {
            filters.iter().all(|(n, vs)| match n.as_str() {
                "elastic-loadbalancer-name" => vs.contains(&e.name),
                "elastic-loadbalancer-id" => vs.contains(&e.id),
                "state" => vs.iter().any(|v| v == e.state(now)),
                "availability-zone" => e.zones.iter().any(|z| vs.contains(z)),
                "ip-address" => vs.contains(&e.vip),
                _ => true,
            })
        })
        .collect();
    x.list("ElasticLoadBalancerDescriptions", "member", elbs, |x, e| {
        x.leaf("ElasticLoadBalancerId", &e.id)
            .leaf("ElasticLoadBalancerName", &e.name)
            .leaf("DNSName", &e.vip)
            .leaf("NetworkVolume", e.network_volume)
            .leaf("State", e.state(now))
            .leaf("AccountingType", &e.accounting_type)
            .leaf("NextMonthAccountingType", &e.next_month_accounting_type);
        x.list(
            "ElasticLoadBalancerListenerDescriptions",
            "member",
            &e.listeners,
            |x, l| {
                x.el("Listener", |x| write_listener_description(st, x, l));
            },
        );
        x.list("AvailabilityZones", "member", &e.zones, |x, z| {
            x.text(z);
        });
        x.list(
            "NetworkInterfaces",
            "member",
            e.network_interfaces.iter().enumerate(),
            |x, (i, n)| {
                x.leaf("NetworkId", &n.network_id)
                    .leaf("NetworkName", &n.network_name)
                    .leaf("DeviceIndex", i + 1)
                    .leaf("IpAddress", &n.ip_address)
                    .leaf("IsVipNetwork", n.is_vip)
                    .cdata("Description", "");
                x.list("SystemIpAddresses", "member", &n.system_ips, |x, ip| {
                    x.leaf("SystemIpAddress", ip);
                });
            },
        );
        x.el("VersionInformation", |x| {
            x.leaf("IsLatest", "true").leaf("Version", "v2.0");
        });
        x.leaf("CreatedTime", jst_seconds(e.created));
    });
    Ok(())
}

/// One listener inside `NiftyDescribeElasticLoadBalancers`, in the service's order.
fn write_listener_description(st: &State, x: &mut Xml, l: &ElbListener) {
    x.leaf("Protocol", &l.protocol)
        .leaf("ElasticLoadBalancerPort", l.elb_port)
        .leaf("InstancePort", l.instance_port)
        .leaf("BalancingType", l.balancing_type)
        .cdata("Description", &l.description)
        .leaf("SSLCertificateId", &l.ssl_certificate_id);
    x.el("SessionStickinessPolicy", |x| {
        x.leaf("Enabled", l.sticky);
        if l.sticky {
            x.leaf("Method", l.sticky_method)
                .leaf("ExpirationPeriod", l.sticky_period);
        }
    });
    x.el("SorryPage", |x| {
        x.leaf("Enabled", l.sorry);
        if l.sorry {
            x.leaf("RedirectUrl", &l.sorry_url);
        }
    });
    x.list("Instances", "member", &l.instances, |x, u| {
        x.leaf("InstanceUniqueId", u).leaf("InstanceId", st.instance_name(u));
    });
    x.el("HealthCheck", |x| {
        x.leaf("Target", &l.hc_target)
            .leaf("Interval", l.hc_interval)
            .leaf("UnhealthyThreshold", l.hc_unhealthy);
        if l.http_check() {
            x.leaf("Path", &l.hc_path);
            x.list("Expectation", "member", &l.hc_expect, |x, c| {
                x.leaf("HttpCode", c);
            });
        }
        write_listed_states(st, x, &l.instances);
    });
}
