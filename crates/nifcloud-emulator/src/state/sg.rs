//! Security groups (firewalls): Create/Delete/DescribeSecurityGroups, Authorize/RevokeSecurityGroupIngress,
//! RegisterInstancesWithSecurityGroup. Each change puts the group in `groupStatus` `processing` for
//! `delays.security_group_ms` (then `applied`); changes meanwhile get
//! `Server.ResourceIncorrectState.SecurityGroup.Processing`.

use serde::{Deserialize, Serialize};

use super::{State, after, jst, valid_name};
use crate::error::ApiError;
use crate::wire::Params;
use crate::xml::Xml;

/// One security group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SecurityGroup {
    /// `GroupName` (1-15 alphanumerics), unique in the account.
    pub name: String,
    /// `GroupDescription`, free text.
    pub description: String,
    /// `Placement.AvailabilityZone` given at creation, else the region's first zone.
    pub zone: String,
    /// `processing` until this time (epoch ms).
    pub processing_until: i64,
    /// Member instance unique ids.
    pub instances: Vec<String>,
    /// Its ingress and egress rules, in the order added (a rule equal to an existing one is refused).
    pub rules: Vec<Rule>,
    /// Creation time (epoch ms).
    pub created: i64,
}

/// One ingress/egress rule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rule {
    /// Protocol (TCP, UDP, ICMP, ANY, ...).
    pub protocol: String,
    /// From port (TCP/UDP).
    pub from_port: Option<i64>,
    /// To port (TCP/UDP).
    pub to_port: Option<i64>,
    /// IN or OUT.
    pub in_out: String,
    /// The peer as an address range (`IpRanges.N.CidrIp`); exactly one of `cidr` and `group` is set.
    pub cidr: Option<String>,
    /// The peer as the members of another security group (`Groups.N.GroupName`).
    pub group: Option<String>,
    /// The rule's free-text `Description`.
    pub description: String,
    /// When added (epoch ms).
    pub added: i64,
}

impl Rule {
    fn same(&self, o: &Rule) -> bool {
        self.protocol == o.protocol
            && self.from_port == o.from_port
            && self.to_port == o.to_port
            && self.in_out == o.in_out
            && self.cidr == o.cidr
            && self.group == o.group
    }
}

impl SecurityGroup {
    /// A new, applied, empty group.
    pub fn new(name: &str, description: &str, zone: &str, now: i64) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            zone: zone.into(),
            processing_until: 0,
            instances: Vec::new(),
            rules: Vec::new(),
            created: now,
        }
    }

    /// `processing` or `applied`.
    pub fn status(&self, now: i64) -> &'static str {
        if now < self.processing_until {
            "processing"
        } else {
            "applied"
        }
    }
}

pub(super) fn settle(_st: &mut State, _now: i64) {}

const PROTOCOLS: &[&str] = &[
    "ANY",
    "TCP",
    "UDP",
    "ICMP",
    "SSH",
    "HTTP",
    "HTTPS",
    "RDP",
    "GRE",
    "ESP",
    "AH",
    "VRRP",
    "L2TP",
    "ICMPv6-all",
];

fn idle<'a>(st: &'a State, name: &str, now: i64) -> Result<&'a SecurityGroup, ApiError> {
    let g = st
        .security_groups
        .get(name)
        .ok_or_else(|| ApiError::not_found("SecurityGroup", name))?;
    if g.status(now) == "processing" {
        return Err(ApiError::processing("SecurityGroup", name));
    }
    Ok(g)
}

fn touch(st: &mut State, name: &str, now: i64) {
    let until = after(now, st.delays.security_group_ms);
    if let Some(g) = st.security_groups.get_mut(name) {
        g.processing_until = until;
    }
}

fn rules(st: &State, p: &Params, now: i64) -> Result<Vec<Rule>, ApiError> {
    let mut out = Vec::new();
    for m in p.items("IpPermissions") {
        let pk = format!("{m}.IpProtocol");
        let protocol = p.req(&pk)?;
        if !PROTOCOLS.contains(&protocol) {
            return Err(ApiError::invalid(&pk, protocol));
        }
        let from_port = p.int(&format!("{m}.FromPort"))?;
        let to_port = p.int(&format!("{m}.ToPort"))?.or(from_port);
        for (k, v) in [("FromPort", from_port), ("ToPort", to_port)] {
            if let Some(v) = v
                && !(0..=65535).contains(&v)
            {
                return Err(ApiError::invalid(&format!("{m}.{k}"), &v.to_string()));
            }
        }
        let in_out = match p.opt(&format!("{m}.InOut")) {
            None => "IN",
            Some(v @ ("IN" | "OUT")) => v,
            Some(v) => return Err(ApiError::invalid(&format!("{m}.InOut"), v)),
        };
        let description = p.opt(&format!("{m}.Description")).unwrap_or("").to_owned();
        let base = Rule {
            protocol: protocol.into(),
            from_port,
            to_port,
            in_out: in_out.into(),
            cidr: None,
            group: None,
            description,
            added: now,
        };
        let cidrs = p.items(&format!("{m}.IpRanges"));
        let groups = p.items(&format!("{m}.Groups"));
        if cidrs.is_empty() && groups.is_empty() {
            return Err(ApiError::missing(&format!("{m}.IpRanges")));
        }
        for c in cidrs {
            let key = format!("{c}.CidrIp");
            let v = p.req(&key)?;
            let (ip, pre) = v.split_once('/').unwrap_or((v, "32"));
            if ip.parse::<std::net::Ipv4Addr>().is_err() || pre.parse::<u8>().map_or(true, |n| n > 32) {
                return Err(ApiError::invalid(&key, v));
            }
            out.push(Rule {
                cidr: Some(v.to_owned()),
                ..base.clone()
            });
        }
        for g in groups {
            let name = p.req(&format!("{g}.GroupName"))?;
            if !st.security_groups.contains_key(name) {
                return Err(ApiError::not_found("SecurityGroup", name));
            }
            out.push(Rule {
                group: Some(name.to_owned()),
                ..base.clone()
            });
        }
    }
    if out.is_empty() {
        return Err(ApiError::missing("IpPermissions"));
    }
    Ok(out)
}

/// `CreateSecurityGroup`: GroupName (1-15 alphanumerics), GroupDescription, Placement.AvailabilityZone.
pub fn create(st: &mut State, p: &Params, x: &mut Xml, now: i64) -> Result<(), ApiError> {
    let name = p.req("GroupName")?;
    if !valid_name(name, 15) {
        return Err(ApiError::invalid("GroupName", name));
    }
    if st.security_groups.contains_key(name) {
        return Err(ApiError::duplicate("SecurityGroup", name));
    }
    let zone = match p.opt("Placement.AvailabilityZone") {
        Some(z) => {
            st.check_zone(z)?;
            z.to_owned()
        }
        None => st.zones.first().cloned().unwrap_or_default(),
    };
    let g = SecurityGroup::new(name, p.opt("GroupDescription").unwrap_or(""), &zone, now);
    st.security_groups.insert(name.to_owned(), g);
    touch(st, name, now);
    x.leaf("return", "true");
    Ok(())
}

/// `DeleteSecurityGroup` (`Client.Inoperable.SecurityGroup.InUse` while instances belong to it).
pub fn delete(st: &mut State, p: &Params, x: &mut Xml, now: i64) -> Result<(), ApiError> {
    let name = p.req("GroupName")?;
    let g = idle(st, name, now)?;
    if !g.instances.is_empty() {
        return Err(ApiError::inoperable(
            "Client.Inoperable.SecurityGroup.InUse",
            format!("The security group {name:?} has instances."),
        ));
    }
    st.security_groups.remove(name);
    x.leaf("return", "true");
    Ok(())
}

/// `AuthorizeSecurityGroupIngress` (a rule already present -> `Client.InvalidParameterDuplicate.CidrIp.or.SecurityGroupName`).
pub fn authorize(st: &mut State, p: &Params, x: &mut Xml, now: i64) -> Result<(), ApiError> {
    let name = p.req("GroupName")?;
    let g = idle(st, name, now)?;
    let new = rules(st, p, now)?;
    for (i, r) in new.iter().enumerate() {
        if g.rules.iter().chain(&new[..i]).any(|o| o.same(r)) {
            let what = r.cidr.clone().or_else(|| r.group.clone()).unwrap_or_default();
            return Err(ApiError::duplicate("CidrIp.or.SecurityGroupName", &what));
        }
    }
    if let Some(g) = st.security_groups.get_mut(name) {
        g.rules.extend(new);
    }
    touch(st, name, now);
    x.leaf("return", "true");
    Ok(())
}

/// `RevokeSecurityGroupIngress` (an absent rule -> `Client.InvalidParameterNotFound.SecurityGroupIngress`).
pub fn revoke(st: &mut State, p: &Params, x: &mut Xml, now: i64) -> Result<(), ApiError> {
    let name = p.req("GroupName")?;
    let g = idle(st, name, now)?;
    let gone = rules(st, p, now)?;
    for r in &gone {
        if !g.rules.iter().any(|o| o.same(r)) {
            let what = r.cidr.clone().or_else(|| r.group.clone()).unwrap_or_default();
            return Err(ApiError::not_found("SecurityGroupIngress", &what));
        }
    }
    if let Some(g) = st.security_groups.get_mut(name) {
        g.rules.retain(|o| !gone.iter().any(|r| r.same(o)));
    }
    touch(st, name, now);
    x.leaf("return", "true");
    Ok(())
}

/// `RegisterInstancesWithSecurityGroup`: InstanceId.N join the group (leaving any previous group).
pub fn register_instances(st: &mut State, p: &Params, x: &mut Xml, now: i64) -> Result<(), ApiError> {
    let name = p.req("GroupName")?.to_owned();
    idle(st, &name, now)?;
    let ids = p.list("InstanceId");
    if ids.is_empty() {
        return Err(ApiError::missing("InstanceId"));
    }
    let insts: Vec<(String, String)> = ids
        .iter()
        .map(|n| st.instance(n).map(|i| (i.name.clone(), i.unique_id.clone())))
        .collect::<Result<_, _>>()?;
    for (_, uid) in &insts {
        for g in st.security_groups.values_mut() {
            g.instances.retain(|u| u != uid);
        }
    }
    for (n, uid) in &insts {
        if let Some(g) = st.security_groups.get_mut(&name) {
            g.instances.push(uid.clone());
        }
        if let Some(i) = st.instances.get_mut(n) {
            i.security_group = Some(name.clone());
        }
    }
    touch(st, &name, now);
    x.list("instancesSet", "item", &insts, |x, (n, _)| {
        x.leaf("instanceId", n);
    });
    Ok(())
}

/// `DescribeSecurityGroups`: GroupName.N (unknown -> NotFound.SecurityGroup), Filter.N (group-name, description).
pub fn describe(st: &mut State, p: &Params, x: &mut Xml, now: i64) -> Result<(), ApiError> {
    let names = p.list("GroupName");
    for n in &names {
        if !st.security_groups.contains_key(*n) {
            return Err(ApiError::not_found("SecurityGroup", n));
        }
    }
    let mut filters = Vec::new();
    for f in p.items("Filter") {
        let fname = p.req(&format!("{f}.Name"))?.to_owned();
        if !matches!(fname.as_str(), "group-name" | "description") {
            return Err(ApiError::invalid(&format!("{f}.Name"), &fname));
        }
        filters.push((
            fname,
            p.list(&format!("{f}.Value"))
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        ));
    }
    let groups: Vec<&SecurityGroup> = st
        .security_groups
        .values()
        .filter(|g| names.is_empty() || names.contains(&g.name.as_str()))
        .filter(|g| {
            filters.iter().all(|(n, vs)| match n.as_str() {
                "group-name" => vs.contains(&g.name),
                _ => vs.contains(&g.description),
            })
        })
        .collect();
    x.list("securityGroupInfo", "item", groups, |x, g| {
        x.leaf("ownerId", "")
            .leaf("groupName", &g.name)
            .leaf("groupDescription", &g.description)
            .leaf("groupStatus", g.status(now));
        x.list("ipPermissions", "item", &g.rules, |x, r| {
            x.leaf("ipProtocol", &r.protocol);
            if let Some(f) = r.from_port {
                x.leaf("fromPort", f);
            }
            if let Some(t) = r.to_port {
                x.leaf("toPort", t);
            }
            x.leaf("inOut", &r.in_out);
            // As the service: a rule lists its peer either as `groups` or as `ipRanges`, not both.
            if r.group.is_some() {
                x.list("groups", "item", r.group.iter(), |x, gname| {
                    x.leaf("userId", "").leaf("groupName", gname);
                });
            }
            if r.cidr.is_some() {
                x.list("ipRanges", "item", r.cidr.iter(), |x, c| {
                    x.leaf("cidrIp", c);
                });
            }
            x.leaf("description", &r.description).leaf("addDatetime", jst(r.added));
        });
        x.list("instancesSet", "item", &g.instances, |x, u| {
            x.leaf("instanceId", st.instance_name(u));
        });
        x.list("instanceUniqueIdsSet", "item", &g.instances, |x, u| {
            x.leaf("instanceUniqueId", u);
        });
        x.leaf("groupRuleLimit", 100)
            .leaf("groupLogLimit", 1000)
            .leaf("groupLogFilterNetBios", "false")
            .leaf("groupLogFilterBroadcast", "false")
            .leaf("availabilityZone", &g.zone);
    });
    Ok(())
}
