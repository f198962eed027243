//! The parts of a botocore `service-2.json` model the SDK generator uses, and the analysis it needs:
//! which shapes are inputs, how each input structure's lists are encoded, and which file group owns a shape.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

/// The scalar types of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    /// `string` (enums included).
    String,
    /// `integer` or `long`.
    Integer,
    /// `boolean`.
    Boolean,
    /// `double` or `float`.
    Double,
    /// `timestamp`.
    Timestamp,
}

/// One shape of the model.
#[derive(Debug, Clone)]
pub enum Shape {
    /// A scalar, with its allowed values for enums.
    Scalar(Scalar, Vec<String>),
    /// A list; `member_location` is the list member's `locationName` (`item`, `member`) if it has one.
    List {
        member: String,
        member_location: Option<String>,
    },
    /// A structure.
    Structure(Structure),
}

/// A structure shape.
#[derive(Debug, Clone)]
pub struct Structure {
    /// Members in model order.
    pub members: Vec<Member>,
}

/// One member of a structure.
#[derive(Debug, Clone)]
pub struct Member {
    /// The member name (the key of the Python SDK's dictionaries).
    pub name: String,
    /// The wire name (`locationName`).
    pub location: String,
    /// The target shape.
    pub shape: String,
    /// Whether the model marks it required.
    pub required: bool,
}

/// One operation.
#[derive(Debug, Clone)]
pub struct Operation {
    /// `DescribeVolumes`.
    pub name: String,
    /// Input structure shape.
    pub input: String,
    /// Output structure shape.
    pub output: String,
}

/// The loaded model.
#[derive(Debug, Clone)]
pub struct Model {
    /// `3.0`.
    pub api_version: String,
    /// Operations sorted by name.
    pub operations: Vec<Operation>,
    /// Shapes by name.
    pub shapes: BTreeMap<String, Shape>,
}

/// How a structure's members are named and its lists encoded on the wire (botocore's serializer switches from
/// the EC2 rules to the query rules inside any list whose member has a `locationName`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// Capitalised `locationName`s, lists as `Name.N` unless the list member has a `locationName`.
    Ec2,
    /// `locationName`s as written, lists as `Name.<member locationName or "member">.N`.
    Query,
}

fn str_field<'a>(v: &'a Value, key: &str, ctx: &str) -> Result<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("{ctx}: missing string field {key:?}"))
}

impl Model {
    /// Parses the JSON text of `service-2.json`.
    pub fn parse(text: &str) -> Result<Self> {
        let root: Value = serde_json::from_str(text).context("service-2.json is not JSON")?;
        let api_version = str_field(&root["metadata"], "apiVersion", "metadata")?.to_owned();
        let mut operations = Vec::new();
        for (name, op) in root["operations"].as_object().context("no operations")? {
            let input = str_field(&op["input"], "shape", name)?.to_owned();
            let output = str_field(&op["output"], "shape", name)?.to_owned();
            operations.push(Operation {
                name: name.clone(),
                input,
                output,
            });
        }
        operations.sort_by(|a, b| a.name.cmp(&b.name));
        let mut shapes = BTreeMap::new();
        for (name, s) in root["shapes"].as_object().context("no shapes")? {
            let ty = str_field(s, "type", name)?;
            let shape = match ty {
                "string" | "blob" => Shape::Scalar(Scalar::String, enum_values(s)),
                "integer" | "long" => Shape::Scalar(Scalar::Integer, vec![]),
                "boolean" => Shape::Scalar(Scalar::Boolean, vec![]),
                "double" | "float" => Shape::Scalar(Scalar::Double, vec![]),
                "timestamp" => Shape::Scalar(Scalar::Timestamp, vec![]),
                "list" => Shape::List {
                    member: str_field(&s["member"], "shape", name)?.to_owned(),
                    member_location: s["member"]
                        .get("locationName")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                },
                "structure" => {
                    let required: BTreeSet<&str> = s["required"]
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let mut members = Vec::new();
                    for (mname, m) in s["members"].as_object().context("structure without members")? {
                        let location = m
                            .get("locationName")
                            .and_then(Value::as_str)
                            .unwrap_or(mname)
                            .to_owned();
                        members.push(Member {
                            name: mname.clone(),
                            location,
                            shape: str_field(m, "shape", mname)?.to_owned(),
                            required: required.contains(mname.as_str()),
                        });
                    }
                    Shape::Structure(Structure { members })
                }
                other => bail!("shape {name}: unsupported type {other}"),
            };
            shapes.insert(name.clone(), shape);
        }
        let model = Model {
            api_version,
            operations,
            shapes,
        };
        model.check()?;
        Ok(model)
    }

    fn check(&self) -> Result<()> {
        for (name, shape) in &self.shapes {
            match shape {
                Shape::List { member, .. } => {
                    if matches!(self.shape(member)?, Shape::List { .. }) {
                        bail!("list {name} of lists is not supported");
                    }
                }
                Shape::Structure(s) => {
                    for m in &s.members {
                        self.shape(&m.shape)?;
                        if !m.location.bytes().all(|b| b.is_ascii_alphanumeric()) || m.location.len() > 64 {
                            bail!("{name}.{}: wire name {:?} is not supported", m.name, m.location);
                        }
                    }
                }
                Shape::Scalar(..) => {}
            }
        }
        Ok(())
    }

    /// The shape called `name`.
    pub fn shape(&self, name: &str) -> Result<&Shape> {
        self.shapes.get(name).ok_or_else(|| anyhow!("unknown shape {name}"))
    }

    /// The structure called `name`.
    pub fn structure(&self, name: &str) -> Result<&Structure> {
        match self.shape(name)? {
            Shape::Structure(s) => Ok(s),
            _ => bail!("shape {name} is not a structure"),
        }
    }

    /// Every structure reachable from `roots`, with the encoding modes it is reached in (inputs only matter).
    pub fn reachable_structures(&self, roots: &[&str]) -> Result<BTreeMap<String, BTreeSet<Mode>>> {
        let mut out: BTreeMap<String, BTreeSet<Mode>> = BTreeMap::new();
        let mut stack: Vec<(String, Mode)> = roots.iter().map(|r| ((*r).to_owned(), Mode::Ec2)).collect();
        while let Some((name, mode)) = stack.pop() {
            if !out.entry(name.clone()).or_default().insert(mode) {
                continue;
            }
            for m in &self.structure(&name)?.members {
                match self.shape(&m.shape)? {
                    Shape::Structure(_) => stack.push((m.shape.clone(), mode)),
                    Shape::List {
                        member,
                        member_location,
                    } => {
                        if let Shape::Structure(_) = self.shape(member)? {
                            let inner = if mode == Mode::Query || member_location.is_some() {
                                Mode::Query
                            } else {
                                Mode::Ec2
                            };
                            stack.push((member.clone(), inner));
                        }
                    }
                    Shape::Scalar(..) => {}
                }
            }
        }
        Ok(out)
    }

    /// Whether the structure `name`, or any structure below it, has a required member.
    pub fn has_required_below(&self, name: &str) -> Result<bool> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![name.to_owned()];
        while let Some(n) = stack.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            for m in &self.structure(&n)?.members {
                if m.required {
                    return Ok(true);
                }
                match self.shape(&m.shape)? {
                    Shape::Structure(_) => stack.push(m.shape.clone()),
                    Shape::List { member, .. } if matches!(self.shape(member)?, Shape::Structure(_)) => {
                        stack.push(member.clone());
                    }
                    _ => {}
                }
            }
        }
        Ok(false)
    }
}

fn enum_values(s: &Value) -> Vec<String> {
    s["enum"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The file group of an operation: shapes used by operations of one group only are written to that group's file.
pub fn operation_group(op: &str) -> &'static str {
    const RULES: &[(&str, &str)] = &[
        ("ElasticLoadBalancer", "elastic_load_balancers"),
        ("LoadBalancer", "load_balancers"),
        ("ConfigureHealthCheck", "load_balancers"),
        ("DescribeInstanceHealth", "load_balancers"),
        ("Volume", "volumes"),
        ("SecurityGroup", "security_groups"),
        ("SecurityActivities", "security_groups"),
        ("Regions", "regions"),
        ("AvailabilityZones", "regions"),
        ("Instance", "instances"),
        ("Router", "network"),
        ("Vpn", "vpn"),
        ("Dhcp", "network"),
        ("Nat", "network"),
        ("PrivateLan", "network"),
        ("Address", "network"),
        ("NetworkInterface", "network"),
        ("RouteTable", "network"),
        ("CustomerGateway", "vpn"),
        ("WebProxy", "network"),
    ];
    RULES
        .iter()
        .find(|(needle, _)| op.contains(needle))
        .map(|(_, g)| *g)
        .unwrap_or("misc")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_follow_the_operation_name() {
        assert_eq!(
            operation_group("NiftyDescribeElasticLoadBalancers"),
            "elastic_load_balancers"
        );
        assert_eq!(operation_group("DescribeLoadBalancers"), "load_balancers");
        assert_eq!(operation_group("AttachVolume"), "volumes");
        assert_eq!(operation_group("DescribeInstances"), "instances");
        assert_eq!(operation_group("DescribeRegions"), "regions");
        assert_eq!(operation_group("DescribeKeyPairs"), "misc");
    }

    #[test]
    fn modes_switch_inside_member_lists() {
        let text = r#"{"metadata":{"apiVersion":"3.0"},"operations":{"Op":{"input":{"shape":"In"},"output":{"shape":"Out"}}},
          "shapes":{"In":{"type":"structure","required":["L"],"members":{"L":{"locationName":"L","shape":"LL"}}},
                    "LL":{"type":"list","member":{"locationName":"member","shape":"E"}},
                    "E":{"type":"structure","members":{"S":{"locationName":"S","shape":"Str"}}},
                    "Out":{"type":"structure","members":{}},"Str":{"type":"string"}}}"#;
        let m = Model::parse(text).unwrap();
        let r = m.reachable_structures(&["In"]).unwrap();
        assert_eq!(r["E"], BTreeSet::from([Mode::Query]));
        assert_eq!(r["In"], BTreeSet::from([Mode::Ec2]));
        assert!(m.has_required_below("In").unwrap());
        assert!(!m.has_required_below("E").unwrap());
    }
}
