//! Decisions taken once for the whole model: Rust names, field types, which file owns each structure.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, bail};

use super::model::{Member, Mode, Model, Scalar, Shape};
use super::naming::{field_ident, setter_name, snake_case, type_name};

/// Where a structure is used.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// Operations whose input reaches it.
    pub input_of: BTreeSet<String>,
    /// Operations whose output reaches it.
    pub output_of: BTreeSet<String>,
    /// Encoding modes it is reached in as an input.
    pub modes: BTreeSet<Mode>,
}

/// The Rust type of a field.
#[derive(Debug, Clone)]
pub enum FieldType {
    /// `Option<scalar>`.
    Scalar(Scalar),
    /// `Option<Struct>`.
    Struct(String),
    /// `Vec<scalar>`.
    ScalarList(Scalar),
    /// `Vec<Struct>`.
    StructList(String),
}

/// One field of a generated structure.
#[derive(Debug, Clone)]
pub struct Field {
    /// The model member.
    pub member: Member,
    /// Snake-case name without `r#`.
    pub snake: String,
    /// Field identifier (`r#type` for keywords).
    pub ident: String,
    /// Fluent setter name.
    pub setter: String,
    /// Rust type.
    pub ty: FieldType,
    /// Allowed values of an enum string.
    pub allowed: Vec<String>,
    /// The list member's `locationName`, for lists.
    pub list_item: Option<String>,
    /// For structures and lists of structures: whether anything below is required.
    pub required_below: bool,
}

/// One generated structure.
#[derive(Debug, Clone)]
pub struct StructPlan {
    /// Model shape name.
    pub shape: String,
    /// Rust type name.
    pub rust: String,
    /// Fields in model order.
    pub fields: Vec<Field>,
    /// Where it is used.
    pub usage: Usage,
    /// Output file group.
    pub group: String,
}

/// The whole plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Structures by shape name.
    pub structs: BTreeMap<String, StructPlan>,
}

/// Rust spelling of a scalar.
pub fn scalar_rust(s: Scalar) -> &'static str {
    match s {
        Scalar::String => "crate::CompactString",
        Scalar::Integer => "i64",
        Scalar::Boolean => "bool",
        Scalar::Double => "f64",
        Scalar::Timestamp => "crate::xml::Timestamp",
    }
}

impl Plan {
    /// Builds the plan for every structure reachable from an operation.
    pub fn build(model: &Model) -> Result<Self> {
        let mut usage: BTreeMap<String, Usage> = BTreeMap::new();
        for op in &model.operations {
            for (name, modes) in model.reachable_structures(&[&op.input])? {
                let u = usage.entry(name).or_default();
                u.input_of.insert(op.name.clone());
                u.modes.extend(modes);
            }
            for name in model.reachable_structures(&[&op.output])?.into_keys() {
                usage.entry(name).or_default().output_of.insert(op.name.clone());
            }
        }
        let shape_names: BTreeSet<&str> = model.shapes.keys().map(String::as_str).collect();
        let taken = |n: &str| shape_names.contains(n);
        let mut structs = BTreeMap::new();
        for (name, u) in usage {
            if !u.input_of.is_empty() && !u.output_of.is_empty() {
                bail!("structure {name} is used by both inputs and outputs; the generator assumes it is not");
            }
            let mut fields = Vec::new();
            let mut seen = BTreeSet::new();
            for m in &model.structure(&name)?.members {
                let snake = snake_case(&m.location);
                if !seen.insert(snake.clone()) {
                    bail!("{name}: two members map to field {snake}");
                }
                let (ty, allowed, list_item, required_below) = match model.shape(&m.shape)? {
                    Shape::Scalar(s, allowed) => (FieldType::Scalar(*s), allowed.clone(), None, false),
                    Shape::Structure(_) => (
                        FieldType::Struct(m.shape.clone()),
                        vec![],
                        None,
                        model.has_required_below(&m.shape)?,
                    ),
                    Shape::List {
                        member,
                        member_location,
                    } => match model.shape(member)? {
                        Shape::Scalar(s, allowed) => (
                            FieldType::ScalarList(*s),
                            allowed.clone(),
                            member_location.clone(),
                            false,
                        ),
                        Shape::Structure(_) => (
                            FieldType::StructList(member.clone()),
                            vec![],
                            member_location.clone(),
                            model.has_required_below(member)?,
                        ),
                        Shape::List { .. } => bail!("{name}.{}: list of lists", m.name),
                    },
                };
                fields.push(Field {
                    member: m.clone(),
                    ident: field_ident(&snake),
                    setter: setter_name(&snake),
                    snake,
                    ty,
                    allowed,
                    list_item,
                    required_below,
                });
            }
            if u.modes.len() > 1 {
                let ambiguous = fields.iter().any(|f| {
                    matches!(f.ty, FieldType::ScalarList(_) | FieldType::StructList(_))
                        || !f.member.location.starts_with(|c: char| c.is_ascii_uppercase())
                });
                if ambiguous {
                    bail!("{name} is serialized both EC2- and query-style and its wire names would differ");
                }
            }
            let groups: BTreeSet<&str> = u
                .input_of
                .iter()
                .chain(&u.output_of)
                .map(|op| super::model::operation_group(op))
                .collect();
            let group = if groups.len() == 1 {
                groups.iter().next().copied().unwrap_or("common")
            } else {
                "common"
            };
            structs.insert(
                name.clone(),
                StructPlan {
                    rust: type_name(&name, &taken),
                    shape: name,
                    fields,
                    usage: u,
                    group: group.to_owned(),
                },
            );
        }
        Ok(Plan { structs })
    }

    /// The Rust type name of structure shape `shape`.
    pub fn rust_name<'a>(&'a self, shape: &'a str) -> &'a str {
        self.structs.get(shape).map(|s| s.rust.as_str()).unwrap_or(shape)
    }

    /// The Rust spelling of a field's type.
    pub fn field_type(&self, f: &Field) -> String {
        match &f.ty {
            FieldType::Scalar(s) => format!("Option<{}>", scalar_rust(*s)),
            FieldType::Struct(n) => format!("Option<{}>", self.rust_name(n)),
            FieldType::ScalarList(s) => format!("Vec<{}>", scalar_rust(*s)),
            FieldType::StructList(n) => format!("Vec<{}>", self.rust_name(n)),
        }
    }

    /// Groups that own at least one structure, sorted.
    pub fn groups(&self) -> BTreeSet<&str> {
        self.structs.values().map(|s| s.group.as_str()).collect()
    }
}

/// The wire name of a member in `mode`.
pub fn wire_name(m: &Member, mode: Mode) -> String {
    match mode {
        Mode::Query => m.location.clone(),
        Mode::Ec2 => {
            let mut c = m.location.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        }
    }
}

/// serde's `PascalCase` spelling of a snake-case field name.
pub fn serde_pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}
