//! Instances, regions and zones: DescribeInstances, DescribeInstanceAttribute, Stop/StartInstances,
//! DescribeRegions, DescribeAvailabilityZones, and the admin operations stop/start/terminate.

use serde::{Deserialize, Serialize};

use super::{State, after, jst};
use crate::config::{InitialState, InstanceConfig, NetworkInterfaceConfig};
use crate::error::ApiError;
use crate::wire::Params;
use crate::xml::Xml;

/// Lifecycle phase of an instance.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum InstancePhase {
    /// `pending` (code 0), on the way to running.
    Pending,
    /// `running` (code 16).
    Running,
    /// `stopping` (code 64), on the way to stopped.
    Stopping,
    /// `stopped` (code 80).
    Stopped,
}

impl InstancePhase {
    /// Wire code and name.
    pub fn code_name(self) -> (u8, &'static str) {
        match self {
            Self::Pending => (0, "pending"),
            Self::Running => (16, "running"),
            Self::Stopping => (64, "stopping"),
            Self::Stopped => (80, "stopped"),
        }
    }
}

/// One instance (server).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Instance {
    /// Server name (`instanceId`).
    pub name: String,
    /// `instanceUniqueId` (`i-…`): immutable, what load balancers and attachments refer to.
    pub unique_id: String,
    /// The availability zone it runs in (`placement.availabilityZone`).
    pub zone: String,
    /// `instanceType`, e.g. `e-large`.
    pub instance_type: String,
    /// Where it is in its life (`instanceState`).
    pub phase: InstancePhase,
    /// When a `pending`/`stopping` phase ends (epoch ms).
    pub phase_until: i64,
    /// Network interfaces as configured (the first with a public IP gives `ipAddress`, the first with a
    /// private IP `privateIpAddress`).
    pub network_interfaces: Vec<NetworkInterfaceConfig>,
    /// The security group (firewall) it belongs to, if any.
    pub security_group: Option<String>,
    /// The server's free-text `description`.
    pub description: String,
    /// Launch time (epoch ms).
    pub launch_time: i64,
}

impl Instance {
    /// Public IPv4 (`ipAddress`).
    pub fn public_ip(&self) -> &str {
        self.network_interfaces
            .iter()
            .find_map(|n| n.public_ip.as_deref())
            .unwrap_or("")
    }
    /// Private IPv4 (`privateIpAddress`).
    pub fn private_ip(&self) -> &str {
        self.network_interfaces
            .iter()
            .find_map(|n| n.private_ip.as_deref())
            .unwrap_or("")
    }
    /// IPv6 (`ipAddressV6`).
    pub fn ipv6(&self) -> &str {
        self.network_interfaces
            .iter()
            .find_map(|n| n.ipv6.as_deref())
            .unwrap_or("")
    }
    /// Whether volumes may be created on / attached to it (running or stopped).
    pub fn accepts_disks(&self) -> bool {
        matches!(self.phase, InstancePhase::Running | InstancePhase::Stopped)
    }
}

impl State {
    /// Adds an instance from its configuration (a missing unique id is generated).
    pub fn add_instance(&mut self, ic: &InstanceConfig, now: i64) -> &Instance {
        let unique_id = ic.unique_id.clone().unwrap_or_else(|| self.new_id("i"));
        let phase = match ic.state {
            InitialState::Running => InstancePhase::Running,
            InitialState::Stopped => InstancePhase::Stopped,
        };
        let inst = Instance {
            name: ic.name.clone(),
            unique_id,
            zone: ic.zone.clone(),
            instance_type: ic.instance_type.clone(),
            phase,
            phase_until: 0,
            network_interfaces: ic.network_interfaces.clone(),
            security_group: ic.security_group.clone(),
            description: ic.description.clone(),
            launch_time: now,
        };
        self.instances.insert(ic.name.clone(), inst);
        &self.instances[&ic.name]
    }

    /// Admin: sets an instance's phase immediately.
    pub fn admin_set_phase(&mut self, name: &str, phase: InstancePhase) -> Result<(), ApiError> {
        let inst = self
            .instances
            .get_mut(name)
            .ok_or_else(|| ApiError::not_found("Instance", name))?;
        inst.phase = phase;
        inst.phase_until = 0;
        Ok(())
    }

    /// Admin: terminates an instance: it disappears, its volumes are detached (kept), and it is
    /// removed from load balancers and security groups.
    pub fn admin_terminate(&mut self, name: &str) -> Result<(), ApiError> {
        let inst = self
            .instances
            .remove(name)
            .ok_or_else(|| ApiError::not_found("Instance", name))?;
        let uid = inst.unique_id;
        for vol in self.volumes.values_mut() {
            if vol.attachment.as_ref().is_some_and(|a| a.instance_unique_id == uid) {
                if let (Some(block), Some(a)) = (self.block.as_mut(), vol.attachment.as_ref()) {
                    block.detach(&vol.unique_id, name, a.device_index);
                }
                vol.attachment = None;
            }
        }
        for lb in self.load_balancers.values_mut() {
            for p in &mut lb.ports {
                p.instances.retain(|u| *u != uid);
            }
        }
        for e in self.elastic_load_balancers.values_mut() {
            for l in &mut e.listeners {
                l.instances.retain(|u| *u != uid);
            }
        }
        for g in self.security_groups.values_mut() {
            g.instances.retain(|u| *u != uid);
        }
        Ok(())
    }
}

pub(super) fn settle(st: &mut State, now: i64) {
    for inst in st.instances.values_mut() {
        if inst.phase_until <= now {
            inst.phase = match inst.phase {
                InstancePhase::Pending => InstancePhase::Running,
                InstancePhase::Stopping => InstancePhase::Stopped,
                p => p,
            };
        }
    }
}

fn selected<'a>(st: &'a State, p: &Params) -> Result<Vec<&'a Instance>, ApiError> {
    let ids = p.list("InstanceId");
    if ids.is_empty() {
        return Ok(st.instances.values().collect());
    }
    ids.iter().map(|id| st.instance(id)).collect()
}

/// A stable MAC address derived from the instance's unique id and the interface index.
fn mac_address(unique_id: &str, index: usize) -> String {
    let hex: Vec<u8> = unique_id.bytes().filter(u8::is_ascii_hexdigit).collect();
    let pair = |k: usize| {
        hex.get(2 * k..2 * k + 2)
            .and_then(|p| std::str::from_utf8(p).ok())
            .unwrap_or("00")
            .to_owned()
    };
    format!("00:50:56:{}:{}:{:02x}", pair(0), pair(1), index)
}

/// Whether an interface is on the common global network (it then carries its address as `association/publicIp`,
/// not as `privateIpAddress`).
fn is_global(n: &NetworkInterfaceConfig) -> bool {
    n.network_id == "net-COMMON_GLOBAL" || (n.public_ip.is_some() && n.private_ip.is_none())
}

/// `networkInterfaceSet`, as the service writes it: a global interface has `association` and no
/// `privateIpAddress`/`privateIpAddressV6`; a private one the reverse. No `networkInterfaceId`,
/// `niftyNetworkName` or `attachment/attachmentId` (the service sends none); the address sets and `groupSet`
/// are present and empty.
fn write_interfaces(x: &mut Xml, inst: &Instance) {
    x.list(
        "networkInterfaceSet",
        "item",
        inst.network_interfaces.iter().enumerate(),
        |x, (i, n)| {
            let global = is_global(n);
            x.leaf("subnetId", "")
                .leaf("vpcId", "")
                .leaf("description", "")
                .leaf("ownerId", "")
                .leaf("niftyNetworkId", &n.network_id)
                .leaf("status", "in-use")
                .leaf("macAddress", mac_address(&inst.unique_id, i));
            if !global {
                x.leaf("privateIpAddress", n.private_ip.as_deref().unwrap_or(""))
                    .leaf("privateIpAddressV6", n.ipv6.as_deref().unwrap_or(""));
            }
            x.leaf("privateDnsName", "").leaf("sourceDestCheck", "");
            x.list("groupSet", "item", std::iter::empty::<()>(), |_, _| {});
            x.el("attachment", |x| {
                x.leaf("deviceIndex", i)
                    .leaf("status", "attached")
                    .leaf("deleteOnTermination", "true");
            });
            if global {
                x.el("association", |x| {
                    x.leaf("publicIp", n.public_ip.as_deref().unwrap_or(""))
                        .leaf("publicIpV6", n.ipv6.as_deref().unwrap_or(""))
                        .leaf("publicDnsName", "")
                        .leaf("ipOwnerId", "");
                });
            }
            x.list("privateIpAddressesSet", "item", std::iter::empty::<()>(), |_, _| {});
            x.list("multiIpAddressesSet", "item", std::iter::empty::<()>(), |_, _| {});
        },
    );
}

fn write_block_devices(st: &State, x: &mut Xml, inst: &Instance, with_names: bool, now: i64) {
    let mut vols: Vec<_> = st
        .volumes
        .values()
        .filter_map(|v| v.attachment.as_ref().map(|a| (v, a)))
        .filter(|(_, a)| a.instance_unique_id == inst.unique_id)
        .collect();
    vols.sort_by_key(|(_, a)| a.device_index);
    x.list("blockDeviceMapping", "item", vols, |x, (v, a)| {
        x.leaf(
            "deviceName",
            if with_names {
                super::volumes::device_name(a.device_index)
            } else {
                String::new()
            },
        );
        x.el("ebs", |x| {
            x.leaf("volumeId", &v.name)
                .leaf("volumeUniqueId", &v.unique_id)
                .leaf("status", v.attachment_status(now))
                .leaf("attachTime", jst(a.attach_time))
                .leaf("deleteOnTermination", "false");
        });
    });
}

/// `loadbalancing`: the L4 port pairs the instance is registered with.
fn write_lb_membership(st: &State, x: &mut Xml, inst: &Instance) {
    let lbs: Vec<_> = st
        .load_balancers
        .values()
        .flat_map(|lb| lb.ports.iter().map(move |p| (lb, p)))
        .filter(|(_, p)| p.instances.contains(&inst.unique_id))
        .collect();
    x.list("loadbalancing", "item", lbs, |x, (lb, p)| {
        x.leaf("loadBalancerName", &lb.name)
            .leaf("loadBalancerPort", p.lb_port)
            .leaf("instancePort", p.instance_port);
        x.leaf(
            "State",
            if inst.phase == InstancePhase::Running {
                "InService"
            } else {
                "OutOfService"
            },
        );
    });
}

/// `niftyElasticLoadBalancing`: the elastic load balancer listeners the instance is registered with.
fn write_elb_membership(st: &State, x: &mut Xml, inst: &Instance) {
    let elbs: Vec<_> = st
        .elastic_load_balancers
        .values()
        .flat_map(|e| e.listeners.iter().map(move |l| (e, l)))
        .filter(|(_, l)| l.instances.contains(&inst.unique_id))
        .collect();
    x.list("niftyElasticLoadBalancing", "item", elbs, |x, (e, l)| {
        x.leaf("elasticLoadBalancerId", &e.id)
            .leaf("elasticLoadBalancerName", &e.name)
            .leaf("elasticLoadBalancerPort", l.elb_port)
            .leaf("instancePort", l.instance_port)
            .leaf("protocol", &l.protocol);
    });
}

/// `DescribeInstances`: `InstanceId.N` (unknown -> `Client.InvalidParameterNotFound.Instance`).
///
/// Element for element as the service replies, in its order: `AccountingType` and `NextMonthAccountingType`
/// capitalised (the model says `accountingType`), `reservationId` and `ownerId` empty, one empty `productCodes`
/// entry, `stateReason`, `vmTools`, `hotAdd`, `niftyPrivateNetworkType`, `isGpuConfigurable` and the empty
/// `instanceBackupRule`, `isoImageSet` and `multiIpAddressGroup`. Emulator choices for values no capture shows:
/// `vmTools/state` is `notRunning` unless the instance runs; every instance is image `221`, pay-per-use.
pub fn describe_instances(st: &mut State, p: &Params, x: &mut Xml, now: i64) -> Result<(), ApiError> {
    let insts = selected(st, p)?;
    x.list("reservationSet", "item", insts, |x, inst| {
        x.leaf("reservationId", "").leaf("ownerId", "");
        x.list("groupSet", "item", inst.security_group.iter(), |x, g| {
            x.leaf("groupId", g);
        });
        x.list("instancesSet", "item", [inst], |x, inst| {
            let (code, name) = inst.phase.code_name();
            x.leaf("instanceId", &inst.name)
                .leaf("instanceUniqueId", &inst.unique_id)
                .leaf("imageId", "221");
            x.el("instanceState", |x| {
                x.leaf("code", code).leaf("name", name);
            });
            x.leaf("privateDnsName", inst.private_ip())
                .leaf("dnsName", inst.public_ip())
                .leaf("reason", "")
                .leaf("keyName", "")
                .leaf("amiLaunchIndex", "");
            x.list("productCodes", "item", [()], |x, ()| {
                x.leaf("productCode", "");
            });
            x.leaf("instanceType", &inst.instance_type)
                .leaf("launchTime", jst(inst.launch_time));
            x.el("placement", |x| {
                x.leaf("availabilityZone", &inst.zone);
            });
            x.leaf("kernelId", "")
                .leaf("ramdiskId", "")
                .leaf("platform", "ubuntu")
                .leaf("imageName", "Ubuntu Server 22.04 LTS");
            x.el("monitoring", |x| {
                x.leaf("state", "disabled");
            });
            x.leaf("subnetId", "")
                .leaf("vpcId", "")
                .leaf("privateIpAddress", inst.private_ip())
                .leaf("ipAddress", inst.public_ip())
                .leaf("privateIpAddressV6", "")
                .leaf("ipAddressV6", inst.ipv6());
            x.el("stateReason", |x| {
                x.leaf("code", "").leaf("message", "");
            });
            x.leaf("architecture", "x86_64")
                .leaf("rootDeviceType", "disk")
                .leaf("rootDeviceName", "");
            write_block_devices(st, x, inst, false, now);
            x.leaf("instanceLifecycle", "")
                .leaf("spotInstanceRequestId", "")
                .leaf("AccountingType", "2")
                .leaf("NextMonthAccountingType", "2");
            write_lb_membership(st, x, inst);
            x.leaf("ipType", "static")
                .leaf("niftyPrivateIpType", "static")
                .leaf("description", &inst.description)
                .leaf("hotAdd", "2")
                .leaf("niftyPrivateNetworkType", "STANDARD")
                .leaf("tenancy", "default");
            write_interfaces(x, inst);
            x.el("vmTools", |x| {
                let running = inst.phase == InstancePhase::Running;
                x.leaf("state", if running { "running" } else { "notRunning" })
                    .leaf("version", "11.3.5");
            });
            write_elb_membership(st, x, inst);
            x.el("instanceBackupRule", |_| {});
            x.list("isoImageSet", "item", std::iter::empty::<()>(), |_, _| {});
            x.el("multiIpAddressGroup", |_| {});
            x.leaf("isGpuConfigurable", "false");
        });
    });
    Ok(())
}

/// `DescribeInstanceAttribute`: `InstanceId` and `Attribute`.
pub fn describe_instance_attribute(st: &mut State, p: &Params, x: &mut Xml, now: i64) -> Result<(), ApiError> {
    let inst = st.instance(p.req("InstanceId")?)?;
    let attr = p.req("Attribute")?;
    x.leaf("instanceId", &inst.name)
        .leaf("instanceUniqueId", &inst.unique_id);
    let value = |x: &mut Xml, tag: &str, v: &str| {
        x.el(tag, |x| {
            x.leaf("value", v);
        });
    };
    match attr {
        "instanceType" => value(x, "instanceType", &inst.instance_type),
        "disableApiTermination" => value(x, "disableApiTermination", "false"),
        "blockDeviceMapping" => write_block_devices(st, x, inst, true, now),
        "accountingType" => value(x, "accountingType", "2"),
        "nextMonthAccountingType" => value(x, "nextMonthAccountingType", "2"),
        "loadbalancing" => write_lb_membership(st, x, inst),
        "elasticloadbalancing" => write_elb_membership(st, x, inst),
        "copyInfo" => value(x, "copyInfo", ""),
        "autoscaling" => {
            x.el("autoscaling", |x| {
                x.leaf("autoScalingGroupName", "");
            });
        }
        "ipType" => value(x, "ipType", "static"),
        "niftyPrivateIpType" => value(x, "niftyPrivateIpType", "static"),
        "groupId" => value(x, "groupId", inst.security_group.as_deref().unwrap_or("")),
        "description" => value(x, "description", &inst.description),
        "networkInterfaceSet" => write_interfaces(x, inst),
        other => return Err(ApiError::invalid("Attribute", other)),
    }
    Ok(())
}

fn state_change(x: &mut Xml, changes: Vec<(String, String, InstancePhase, InstancePhase)>) {
    x.list("instancesSet", "item", changes, |x, (name, uid, prev, cur)| {
        x.leaf("instanceId", name).leaf("instanceUniqueId", uid);
        for (tag, ph) in [("currentState", cur), ("previousState", prev)] {
            let (code, n) = ph.code_name();
            x.el(tag, |x| {
                x.leaf("code", code).leaf("name", n);
            });
        }
        x.leaf("tenancy", "default");
    });
}

fn transition(st: &mut State, p: &Params, x: &mut Xml, now: i64, stop: bool) -> Result<(), ApiError> {
    let names: Vec<String> = p.list("InstanceId").into_iter().map(str::to_owned).collect();
    if names.is_empty() {
        return Err(ApiError::missing("InstanceId"));
    }
    for n in &names {
        let inst = st.instance(n)?;
        if matches!(inst.phase, InstancePhase::Pending | InstancePhase::Stopping) {
            return Err(if stop {
                ApiError::new(
                    "Server.ProcessingFailure.Instance.Stop",
                    format!("The instance {n:?} is changing state."),
                )
            } else {
                ApiError::processing("Instance", n)
            });
        }
    }
    let delay = st.delays.instance_ms;
    let mut changes = Vec::new();
    for n in &names {
        let Some(inst) = st.instances.get_mut(n) else { continue };
        let prev = inst.phase;
        let target = if stop {
            InstancePhase::Stopped
        } else {
            InstancePhase::Running
        };
        if prev != target {
            inst.phase = match (delay, stop) {
                (0, _) => target,
                (_, true) => InstancePhase::Stopping,
                (_, false) => InstancePhase::Pending,
            };
            inst.phase_until = after(now, delay);
            if !stop {
                inst.launch_time = now;
            }
        }
        changes.push((inst.name.clone(), inst.unique_id.clone(), prev, inst.phase));
    }
    state_change(x, changes);
    Ok(())
}

/// `StopInstances`: `InstanceId.N` (`Force` accepted); running -> stopping -> stopped.
pub fn stop_instances(st: &mut State, p: &Params, x: &mut Xml, now: i64) -> Result<(), ApiError> {
    p.bool("Force")?;
    transition(st, p, x, now, true)
}

/// `StartInstances`: `InstanceId.N`; stopped -> pending -> running.
pub fn start_instances(st: &mut State, p: &Params, x: &mut Xml, now: i64) -> Result<(), ApiError> {
    transition(st, p, x, now, false)
}

/// `DescribeRegions`: the configured region (`RegionName.N` filters; unknown -> NotFound.RegionName).
pub fn describe_regions(st: &mut State, p: &Params, x: &mut Xml, _now: i64) -> Result<(), ApiError> {
    for r in p.list("RegionName") {
        if r != st.region {
            return Err(ApiError::not_found("RegionName", r));
        }
    }
    let region = st.region.clone();
    x.list("regionInfo", "item", [region], |x, r| {
        x.leaf("regionName", &r)
            .leaf("regionEndpoint", format!("{r}.computing.api.nifcloud.com"))
            .leaf("isDefault", "true");
        x.list("messageSet", "item", std::iter::empty::<&str>(), |_, _| {});
    });
    Ok(())
}

/// `DescribeAvailabilityZones`: the configured zones (`ZoneName.N` filters).
pub fn describe_availability_zones(st: &mut State, p: &Params, x: &mut Xml, _now: i64) -> Result<(), ApiError> {
    let wanted = p.list("ZoneName");
    for z in &wanted {
        st.check_zone(z)?;
    }
    let zones: Vec<&String> = st
        .zones
        .iter()
        .filter(|z| wanted.is_empty() || wanted.contains(&z.as_str()))
        .collect();
    x.list(
        "availabilityZoneInfo",
        "item",
        zones.into_iter().enumerate(),
        |x, (i, z)| {
            x.leaf("zoneName", z)
                .leaf("zoneState", "available")
                .leaf("regionName", &st.region)
                .leaf("messageSet", "")
                .leaf("securityGroupSupported", "true")
                .leaf("isDefault", i == 0);
        },
    );
    Ok(())
}
