//! Conformance of the generated serializer and parser with the official Python SDK (nifcloud 1.17.0).
//!
//! `tests/vectors/computing.json` is produced by `conformance/gen_vectors.py` from the official SDK: for each of
//! the model's operations, a fully-filled sample input with the form parameters the official serializer sends,
//! and a sample XML reply with what the official parser returns. This test feeds the same input and reply to the
//! Rust SDK and compares.
//!
//! Known, deliberate differences (asserted as such below):
//! - `DescribeLoadBalancers`: the official SDK silently drops `Owner`; the API documents it, so we send it.
//! - Element names whose case differs from the model: the official parser loses them, ours matches names
//!   case-insensitively (the real API sends e.g. `<AccountingType>` where the model says `accountingType`).

use std::collections::BTreeMap;

use nifcloud_sdk::operation::Operation;
use nifcloud_sdk::xml::Timestamp;
use serde_json::Value;

#[path = "vectors/operations.rs"]
mod operations;

/// Something to do with an operation's input type (the generated table calls `visit::<Input>()`).
pub trait Visitor {
    /// The result.
    type Out;
    /// Runs with `O` as the operation's input type.
    fn visit<O>(self) -> Self::Out
    where
        O: Operation + serde::de::DeserializeOwned,
        O::Output: serde::Serialize;
}

fn vectors() -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/computing.json");
    let text = std::fs::read_to_string(path).expect("vectors file (run conformance/gen_vectors.py)");
    let doc: Value = serde_json::from_str(&text).expect("vectors are JSON");
    doc["operations"].as_array().expect("operations array").clone()
}

fn name(v: &Value) -> &str {
    v["operation"].as_str().expect("operation name")
}

/// Serializes the vector's input with our code: sorted `key=value` pairs, and the result of `validate`.
struct Serialize<'a>(&'a Value);

impl Visitor for Serialize<'_> {
    type Out = Result<(Vec<(String, String)>, Result<(), String>), String>;
    fn visit<O>(self) -> Self::Out
    where
        O: Operation + serde::de::DeserializeOwned,
        O::Output: serde::Serialize,
    {
        let input: O =
            serde_json::from_value(self.0.clone()).map_err(|e| format!("input does not deserialize: {e}"))?;
        let mut pairs = input.to_params().into_inner();
        pairs.sort();
        Ok((pairs, input.validate().map_err(|e| e.to_string())))
    }
}

/// Validates the operation's default (empty) input.
struct ValidateEmpty;

impl Visitor for ValidateEmpty {
    type Out = Option<String>;
    fn visit<O>(self) -> Self::Out
    where
        O: Operation + serde::de::DeserializeOwned,
        O::Output: serde::Serialize,
    {
        let empty: O = serde_json::from_value(Value::Object(Default::default())).ok()?;
        empty.validate().err().map(|e| e.parameter)
    }
}

/// Parses a reply with our code and turns the output into JSON with the model's member names.
struct Parse<'a>(&'a str);

impl Visitor for Parse<'_> {
    type Out = Result<Value, String>;
    fn visit<O>(self) -> Self::Out
    where
        O: Operation + serde::de::DeserializeOwned,
        O::Output: serde::Serialize,
    {
        let out: O::Output = nifcloud_sdk::xml::from_str(self.0).map_err(|e| e.to_string())?;
        serde_json::to_value(&out).map_err(|e| e.to_string())
    }
}

/// Drops nulls, empty lists and empty objects (absent and empty are the same to both SDKs' callers).
fn normalize(v: &Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Array(a) => {
            let items: Vec<Value> = a.iter().filter_map(normalize).collect();
            (!items.is_empty()).then_some(Value::Array(items))
        }
        Value::Object(o) => {
            let map: serde_json::Map<String, Value> = o
                .iter()
                .filter_map(|(k, v)| normalize(v).map(|v| (k.clone(), v)))
                .collect();
            (!map.is_empty()).then_some(Value::Object(map))
        }
        other => Some(other.clone()),
    }
}

/// Compares two normalized values; timestamps (Python `isoformat()` vs our RFC 3339) by instant and offset.
/// Returns the path of the first difference.
fn diff(ours: &Value, theirs: &Value, path: &str) -> Option<String> {
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => {
            for k in a.keys().chain(b.keys()) {
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => {
                        if let Some(d) = diff(x, y, &format!("{path}/{k}")) {
                            return Some(d);
                        }
                    }
                    (x, y) => return Some(format!("{path}/{k}: ours {x:?}, official {y:?}")),
                }
            }
            None
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                return Some(format!("{path}: ours has {} entries, official {}", a.len(), b.len()));
            }
            a.iter()
                .zip(b)
                .enumerate()
                .find_map(|(i, (x, y))| diff(x, y, &format!("{path}[{i}]")))
        }
        (Value::String(a), Value::String(b)) if a != b => {
            let same_instant = match (Timestamp::parse(a), Timestamp::parse(b)) {
                (Ok(x), Ok(y)) => x.0 == y.0 && x.0.offset() == y.0.offset(),
                _ => false,
            };
            (!same_instant).then(|| format!("{path}: ours {a:?}, official {b:?}"))
        }
        (a, b) if a == b => None,
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => None,
        (a, b) => Some(format!("{path}: ours {a}, official {b}")),
    }
}

fn report(what: &str, total: usize, failures: &[String]) {
    eprintln!(
        "{what}: {}/{total} operations match the official SDK",
        total - failures.len()
    );
    assert!(
        failures.is_empty(),
        "{what}: {} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_operation_is_covered() {
    let vectors = vectors();
    assert_eq!(vectors.len(), operations::OPERATION_COUNT);
    assert_eq!(vectors.len(), 239, "the vendored model has 239 operations");
    for v in &vectors {
        assert!(
            operations::dispatch(name(v), ValidateEmpty).is_some(),
            "no Rust type for {}",
            name(v)
        );
        assert_eq!(v["url_path"], "/api/", "{}", name(v));
    }
    assert!(operations::dispatch("NoSuchOperation", ValidateEmpty).is_none());
}

#[test]
fn every_operation_serializes_like_the_official_sdk() {
    let vectors = vectors();
    let mut failures = Vec::new();
    for v in &vectors {
        let op = name(v);
        let (ours, validation) = match operations::dispatch(op, Serialize(&v["input"])) {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                failures.push(format!("{op}: {e}"));
                continue;
            }
            None => {
                failures.push(format!("{op}: unknown operation"));
                continue;
            }
        };
        let mut expected: Vec<(String, String)> = v["params"]
            .as_array()
            .expect("params")
            .iter()
            .map(|p| {
                (
                    p[0].as_str().expect("key").to_owned(),
                    p[1].as_str().expect("value").to_owned(),
                )
            })
            .collect();
        if op == "DescribeLoadBalancers" {
            // The official SDK drops `Owner` (a bug); the API takes it, and so do we.
            let owner = v["input"]["Owner"].as_str().expect("sample input sets Owner");
            assert!(
                !expected.iter().any(|(k, _)| k == "Owner"),
                "the official SDK started sending Owner"
            );
            expected.push(("Owner".to_owned(), owner.to_owned()));
        }
        expected.sort();
        if ours != expected {
            let missing: Vec<_> = expected.iter().filter(|p| !ours.contains(p)).take(5).collect();
            let extra: Vec<_> = ours.iter().filter(|p| !expected.contains(p)).take(5).collect();
            failures.push(format!("{op}: missing {missing:?}, unexpected {extra:?}"));
        }
        if let Err(e) = validation {
            failures.push(format!("{op}: a fully-filled input fails validation: {e}"));
        }
    }
    report("request parameters", vectors.len(), &failures);
}

#[test]
fn validation_reports_a_required_parameter_of_the_model() {
    let vectors = vectors();
    let mut failures = Vec::new();
    let mut with_required = 0;
    for v in &vectors {
        let op = name(v);
        let required: Vec<&str> = v["required_wire_names"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let got = operations::dispatch(op, ValidateEmpty).flatten();
        match (&got, required.is_empty()) {
            (None, true) => {}
            (Some(p), false) if required.contains(&p.as_str()) => with_required += 1,
            _ => failures.push(format!("{op}: empty input gave {got:?}, model requires {required:?}")),
        }
    }
    eprintln!("{with_required} operations have required parameters and reject an empty input");
    report("validation of empty inputs", vectors.len(), &failures);
}

#[test]
fn every_operation_parses_like_the_official_sdk() {
    let vectors = vectors();
    let mut failures = Vec::new();
    for v in &vectors {
        let op = name(v);
        let body = v["reply"].as_str().expect("reply");
        match operations::dispatch(op, Parse(body)) {
            Some(Ok(ours)) => {
                let (ours, theirs) = (normalize(&ours), normalize(&v["parsed"]));
                let (ours, theirs) = (ours.unwrap_or(Value::Null), theirs.unwrap_or(Value::Null));
                if theirs == Value::Null {
                    failures.push(format!("{op}: the official parse is empty; the vector tests nothing"));
                } else if let Some(d) = diff(&ours, &theirs, "") {
                    failures.push(format!("{op}: {d}"));
                }
            }
            Some(Err(e)) => failures.push(format!("{op}: our parser failed: {e}")),
            None => failures.push(format!("{op}: unknown operation")),
        }
    }
    report("reply parsing", vectors.len(), &failures);
}

#[test]
fn element_names_in_another_case_parse_like_the_model_names() {
    let vectors = vectors();
    let mut failures = Vec::new();
    let mut official_lost = BTreeMap::new();
    let mut mangled = 0;
    for v in &vectors {
        let op = name(v);
        let body = v["reply_case_mangled"].as_str().expect("mangled reply");
        if body != v["reply"].as_str().expect("reply") {
            mangled += 1;
        }
        let expected = normalize(&v["parsed"]).unwrap_or(Value::Null);
        match operations::dispatch(op, Parse(body)) {
            Some(Ok(ours)) => {
                if let Some(d) = diff(&normalize(&ours).unwrap_or(Value::Null), &expected, "") {
                    failures.push(format!("{op}: {d}"));
                }
            }
            Some(Err(e)) => failures.push(format!("{op}: our parser failed: {e}")),
            None => failures.push(format!("{op}: unknown operation")),
        }
        let official = normalize(&v["parsed_case_mangled_by_python"]).unwrap_or(Value::Null);
        if official != expected {
            official_lost.insert(op.to_owned(), ());
        }
    }
    eprintln!(
        "case-mangled replies: {mangled} of {} operations have renamed elements; the official parser loses members in {}",
        vectors.len(),
        official_lost.len(),
    );
    assert!(
        mangled * 10 > vectors.len() * 9,
        "most replies should have renamed elements"
    );
    assert!(
        official_lost.len() * 10 >= mangled * 9,
        "the renamed elements should trip the official parser"
    );
    report("case-mangled reply parsing", vectors.len(), &failures);
}
