//! Zones in CSI topology: the two keys, and choosing a zone from a CreateVolume's requirements.

use std::collections::HashMap;

use csi_core::proto::{Topology, TopologyRequirement};

/// The well-known Kubernetes zone key.
pub const ZONE_KEY: &str = "topology.kubernetes.io/zone";
/// The original driver's zone key (kept so existing PVs keep matching).
pub const DRIVER_ZONE_KEY: &str = "topology.additional-storage.csi.nifcloud.com/zone";

/// A topology segment set naming `zone` under both keys.
pub fn zone_topology(zone: &str) -> Topology {
    Topology {
        segments: HashMap::from([
            (ZONE_KEY.to_string(), zone.to_string()),
            (DRIVER_ZONE_KEY.to_string(), zone.to_string()),
        ]),
    }
}

/// Why no zone could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// A topology names a zone differently under the two keys.
    #[error("topology names zone {a:?} and {b:?} under its two zone keys")]
    Conflict {
        /// Zone under one key.
        a: String,
        /// Zone under the other.
        b: String,
    },
    /// A topology segment uses a key this driver does not know.
    #[error("topology key {0:?} is not supported (use {ZONE_KEY} or {DRIVER_ZONE_KEY})")]
    UnknownKey(String),
}

impl From<TopologyError> for tonic::Status {
    fn from(e: TopologyError) -> Self {
        tonic::Status::invalid_argument(e.to_string())
    }
}

/// The zone a topology names (`None` when it names none).
pub fn zone_of(t: &Topology) -> Result<Option<String>, TopologyError> {
    let mut zone: Option<&String> = None;
    for (k, v) in &t.segments {
        if k != ZONE_KEY && k != DRIVER_ZONE_KEY {
            return Err(TopologyError::UnknownKey(k.clone()));
        }
        match zone {
            Some(z) if z != v => {
                return Err(TopologyError::Conflict {
                    a: z.clone(),
                    b: v.clone(),
                });
            }
            _ => zone = Some(v),
        }
    }
    Ok(zone.cloned())
}

/// The zones a request allows, best first: preferred topologies in order, then requisite ones
/// in order (duplicates removed). Empty means "any zone".
pub fn candidate_zones(req: Option<&TopologyRequirement>) -> Result<Vec<String>, TopologyError> {
    let mut out: Vec<String> = Vec::new();
    let Some(req) = req else { return Ok(out) };
    for t in req.preferred.iter().chain(req.requisite.iter()) {
        if let Some(z) = zone_of(t)?
            && !out.contains(&z)
        {
            out.push(z);
        }
    }
    Ok(out)
}

/// The zones CreateVolume may create a disk in, best first (empty: any zone).
///
/// With preferred topologies, only the first one's zone: under WaitForFirstConsumer it is the selected node's
/// zone, and a disk created anywhere else could never be attached to the pod's node. Without, every zone of
/// [`candidate_zones`].
pub fn creation_zones(req: Option<&TopologyRequirement>) -> Result<Vec<String>, TopologyError> {
    if let Some(first) = req.and_then(|r| r.preferred.first())
        && let Some(zone) = zone_of(first)?
    {
        return Ok(vec![zone]);
    }
    candidate_zones(req)
}

/// Whether `zone` satisfies the request's requisite topologies (vacuously true without any).
pub fn zone_allowed(req: Option<&TopologyRequirement>, zone: &str) -> Result<bool, TopologyError> {
    let Some(req) = req else { return Ok(true) };
    if req.requisite.is_empty() && req.preferred.is_empty() {
        return Ok(true);
    }
    let zones = candidate_zones(Some(req))?;
    Ok(zones.is_empty() || zones.iter().any(|z| z == zone))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(pairs: &[(&str, &str)]) -> Topology {
        Topology {
            segments: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn preferred_then_requisite() {
        let req = TopologyRequirement {
            requisite: vec![t(&[(ZONE_KEY, "east-11")]), t(&[(DRIVER_ZONE_KEY, "east-12")])],
            preferred: vec![t(&[(ZONE_KEY, "east-12"), (DRIVER_ZONE_KEY, "east-12")])],
        };
        assert_eq!(candidate_zones(Some(&req)).unwrap(), ["east-12", "east-11"]);
        assert!(zone_allowed(Some(&req), "east-11").unwrap());
        assert!(!zone_allowed(Some(&req), "east-13").unwrap());
        assert!(candidate_zones(None).unwrap().is_empty());
        assert!(zone_allowed(None, "x").unwrap());
    }

    #[test]
    fn a_preferred_zone_pins_the_creation() {
        let wffc = TopologyRequirement {
            requisite: vec![t(&[(ZONE_KEY, "east-11")]), t(&[(ZONE_KEY, "east-12")])],
            preferred: vec![t(&[(ZONE_KEY, "east-12")]), t(&[(ZONE_KEY, "east-11")])],
        };
        assert_eq!(creation_zones(Some(&wffc)).unwrap(), ["east-12"]);
        let requisite_only = TopologyRequirement {
            requisite: wffc.requisite.clone(),
            preferred: vec![],
        };
        assert_eq!(creation_zones(Some(&requisite_only)).unwrap(), ["east-11", "east-12"]);
        let empty_preferred = TopologyRequirement {
            requisite: wffc.requisite.clone(),
            preferred: vec![t(&[])],
        };
        assert_eq!(creation_zones(Some(&empty_preferred)).unwrap(), ["east-11", "east-12"]);
        assert!(creation_zones(None).unwrap().is_empty());
    }

    #[test]
    fn bad_topologies() {
        let conflict = TopologyRequirement {
            requisite: vec![t(&[(ZONE_KEY, "east-11"), (DRIVER_ZONE_KEY, "east-12")])],
            preferred: vec![],
        };
        assert!(matches!(
            candidate_zones(Some(&conflict)),
            Err(TopologyError::Conflict { .. })
        ));
        let unknown = TopologyRequirement {
            requisite: vec![t(&[("topology.ebs.csi.aws.com/zone", "a")])],
            preferred: vec![],
        };
        assert!(matches!(
            candidate_zones(Some(&unknown)),
            Err(TopologyError::UnknownKey(_))
        ));
        let z = zone_topology("east-13");
        assert_eq!(zone_of(&z).unwrap().as_deref(), Some("east-13"));
    }
}
