//! A small, strict kustomize: enough of `kustomization.yaml` to build `deploy/` without kubectl.
//!
//! Supported fields: `resources` (files or directories with their own kustomization), `images` (`name`, `newName`,
//! `newTag`, `digest`), `replicas` (`name`, `count`) and `patches` whose content is a JSON 6902 operation list
//! selected by `target` (applied by the `json-patch` crate: every RFC 6902 op, all or nothing per object). Any
//! other field is an error naming the field, so a kustomization that `kubectl kustomize` would treat differently
//! is refused rather than rendered wrongly.
//! The `kubectl_kustomize_agrees` test checks the result against kubectl's on our overlays.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// Errors while building a kustomization.
#[derive(Debug, thiserror::Error)]
pub enum KustomizeError {
    /// A file could not be read.
    #[error("read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// A file is not the YAML we expect (this includes unsupported kustomization fields).
    #[error("parse {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A JSON 6902 operation failed on an object (which is then left unpatched).
    #[error("{path}: patch op {index} ({op} {pointer}) on {object}: {kind}")]
    Patch {
        /// The patch file (or kustomization for inline patches).
        path: PathBuf,
        /// `kind/namespace/name` of the object.
        object: String,
        /// Index of the operation in the patch.
        index: usize,
        /// The operation name.
        op: &'static str,
        /// Its JSON pointer.
        pointer: String,
        /// What went wrong.
        kind: json_patch::PatchErrorKind,
    },
    /// A patch selected no object.
    #[error("{path}: patch target {target} matches no object")]
    NoTarget {
        /// The kustomization.
        path: PathBuf,
        /// The target, for the message.
        target: String,
    },
    /// Two resources have the same identity.
    #[error("{path}: object {id} appears twice")]
    Duplicate {
        /// The kustomization.
        path: PathBuf,
        /// `kind/namespace/name`.
        id: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Kustomization {
    #[serde(default)]
    #[allow(dead_code)]
    api_version: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    kind: Option<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    images: Vec<ImageOverride>,
    #[serde(default)]
    replicas: Vec<ReplicaOverride>,
    #[serde(default)]
    patches: Vec<PatchSpec>,
}

/// One `images:` entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImageOverride {
    /// Image name to match (without tag or digest).
    pub name: String,
    /// Replacement name.
    #[serde(default)]
    pub new_name: Option<String>,
    /// Replacement tag.
    #[serde(default)]
    pub new_tag: Option<String>,
    /// Replacement digest (wins over the tag).
    #[serde(default)]
    pub digest: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplicaOverride {
    name: String,
    count: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchSpec {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    patch: Option<String>,
    #[serde(default)]
    target: Option<Target>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Target {
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

impl Target {
    fn matches(&self, obj: &Value) -> bool {
        let api_version = str_at(obj, &["apiVersion"]);
        let (group, version) = match api_version.rsplit_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let want = |field: &Option<String>, have: &str| field.as_deref().is_none_or(|w| w == have);
        want(&self.group, group)
            && want(&self.version, version)
            && want(&self.kind, str_at(obj, &["kind"]))
            && want(&self.name, str_at(obj, &["metadata", "name"]))
            && want(&self.namespace, str_at(obj, &["metadata", "namespace"]))
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |o: &Option<String>| o.clone().unwrap_or_else(|| "*".into());
        write!(
            f,
            "{}/{} {} {}/{}",
            s(&self.group),
            s(&self.version),
            s(&self.kind),
            s(&self.namespace),
            s(&self.name)
        )
    }
}

/// Reads a string at `path` in `obj`, `""` when absent.
pub fn str_at<'a>(obj: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = obj;
    for key in path {
        match cur.get(key) {
            Some(v) => cur = v,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

/// `kind/namespace/name` of an object.
pub fn object_id(obj: &Value) -> String {
    format!(
        "{}/{}/{}",
        str_at(obj, &["kind"]),
        str_at(obj, &["metadata", "namespace"]),
        str_at(obj, &["metadata", "name"])
    )
}

/// How we read manifests into untyped values, the way kustomize (yaml.v3) reads them: only `true` and `false`
/// are booleans, so YAML 1.1's `y`, `n`, `yes`, `no`, `on` and `off` stay strings (`namespace: n` is a name).
pub fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! { strict_booleans: true }
}

/// Parses a multi-document YAML stream into JSON values (empty documents are skipped).
pub fn parse_documents(path: &Path, text: &str) -> Result<Vec<Value>, KustomizeError> {
    let mut out = Vec::new();
    let docs: Vec<Value> =
        serde_saphyr::from_multiple_with_options(text, yaml_options()).map_err(|e| KustomizeError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    for value in docs {
        match value {
            Value::Null => {}
            Value::Object(_) => out.push(value),
            other => {
                return Err(KustomizeError::Parse {
                    path: path.to_path_buf(),
                    message: format!("a document is not a mapping: {other}"),
                });
            }
        }
    }
    Ok(out)
}

fn read(path: &Path) -> Result<String, KustomizeError> {
    std::fs::read_to_string(path).map_err(|source| KustomizeError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Builds the kustomization in `dir` (which holds `kustomization.yaml`) into a list of objects.
pub fn build(dir: &Path) -> Result<Vec<Value>, KustomizeError> {
    let kpath = dir.join("kustomization.yaml");
    let text = read(&kpath)?;
    let k: Kustomization =
        serde_saphyr::from_str_with_options(&text, yaml_options()).map_err(|e| KustomizeError::Parse {
            path: kpath.clone(),
            message: e.to_string(),
        })?;

    let mut objects: Vec<Value> = Vec::new();
    for res in &k.resources {
        let p = dir.join(res);
        let loaded = if p.is_dir() {
            build(&p)?
        } else {
            parse_documents(&p, &read(&p)?)?
        };
        for obj in loaded {
            let id = object_id(&obj);
            if objects.iter().any(|o| object_id(o) == id) {
                return Err(KustomizeError::Duplicate {
                    path: kpath.clone(),
                    id,
                });
            }
            objects.push(obj);
        }
    }

    for spec in &k.patches {
        let (ppath, ptext) = match (&spec.path, &spec.patch) {
            (Some(p), None) => (dir.join(p), read(&dir.join(p))?),
            (None, Some(inline)) => (kpath.clone(), inline.clone()),
            _ => {
                return Err(KustomizeError::Parse {
                    path: kpath.clone(),
                    message: "a patch needs exactly one of `path` and `patch`".into(),
                });
            }
        };
        let ops = parse_json6902(&ppath, &ptext)?;
        let target = spec.target.as_ref().ok_or_else(|| KustomizeError::Parse {
            path: kpath.clone(),
            message: "a JSON 6902 patch needs a `target`".into(),
        })?;
        let mut hit = false;
        for obj in objects.iter_mut().filter(|o| target.matches(o)) {
            hit = true;
            json_patch::patch(obj, &ops).map_err(|e| KustomizeError::Patch {
                path: ppath.clone(),
                object: object_id(obj),
                index: e.operation,
                op: ops.get(e.operation).map_or("?", op_name),
                pointer: e.path.to_string(),
                kind: e.kind,
            })?;
        }
        if !hit {
            return Err(KustomizeError::NoTarget {
                path: kpath.clone(),
                target: target.to_string(),
            });
        }
    }

    for obj in &mut objects {
        for img in &k.images {
            apply_image_override(obj, img);
        }
    }
    for r in &k.replicas {
        let scalable = |o: &Value| {
            matches!(
                str_at(o, &["kind"]),
                "Deployment" | "ReplicaSet" | "ReplicationController" | "StatefulSet"
            )
        };
        for obj in objects
            .iter_mut()
            .filter(|o| scalable(o) && str_at(o, &["metadata", "name"]) == r.name)
        {
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("replicas".into(), Value::from(r.count));
            }
        }
    }
    Ok(objects)
}

/// Reads a patch file: a YAML list of RFC 6902 operations (a strategic-merge patch, a mapping, is refused).
fn parse_json6902(path: &Path, text: &str) -> Result<json_patch::Patch, KustomizeError> {
    let parse = |message: String| KustomizeError::Parse {
        path: path.to_path_buf(),
        message,
    };
    let value: Value = serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|e| parse(e.to_string()))?;
    if !value.is_array() {
        return Err(parse(
            "only JSON 6902 patches (a list of operations) are supported, not strategic-merge patches".into(),
        ));
    }
    serde_json::from_value(value).map_err(|e| parse(e.to_string()))
}

fn op_name(op: &json_patch::PatchOperation) -> &'static str {
    use json_patch::PatchOperation as Op;
    match op {
        Op::Add(_) => "add",
        Op::Remove(_) => "remove",
        Op::Replace(_) => "replace",
        Op::Move(_) => "move",
        Op::Copy(_) => "copy",
        Op::Test(_) => "test",
    }
}

/// Splits an image reference into (name, tag, digest); a registry port is not mistaken for a tag.
pub fn split_image(image: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..]), digest),
        None => (rest, None, digest),
    }
}

/// The containers and init containers of a workload or pod (mutable).
pub fn containers_mut(obj: &mut Value) -> Vec<&mut Value> {
    let mut out = Vec::new();
    let spec = match obj.pointer("/spec/template/spec").is_some() {
        true => obj.pointer_mut("/spec/template/spec"),
        false => obj.pointer_mut("/spec"),
    };
    if let Some(Value::Object(spec)) = spec {
        for (key, list) in spec.iter_mut() {
            if let (true, Value::Array(items)) = (key == "containers" || key == "initContainers", list) {
                out.extend(items.iter_mut());
            }
        }
    }
    out
}

/// Applies one `images:` override to every container of `obj` whose image name matches.
pub fn apply_image_override(obj: &mut Value, ov: &ImageOverride) {
    for c in containers_mut(obj) {
        let Some(image) = c.get("image").and_then(Value::as_str) else {
            continue;
        };
        let (name, tag, digest) = split_image(image);
        if name != ov.name {
            continue;
        }
        let new_name = ov.new_name.as_deref().unwrap_or(name);
        let new = match (&ov.digest, &ov.new_tag) {
            (Some(d), _) => format!("{new_name}@{d}"),
            (None, Some(t)) => format!("{new_name}:{t}"),
            (None, None) => match (tag, digest) {
                (_, Some(d)) => format!("{new_name}@{d}"),
                (Some(t), None) => format!("{new_name}:{t}"),
                (None, None) => new_name.to_owned(),
            },
        };
        c["image"] = Value::String(new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Builds a kustomization of one ConfigMap `n/c` patched by `patch` (the content of `p.yaml`).
    fn patched_config_map(dir: &Path, patch: &str) -> Result<Vec<Value>, KustomizeError> {
        std::fs::write(
            dir.join("cm.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: n}\ndata: {x: old, k/e~y: '1'}\n",
        )
        .unwrap();
        std::fs::write(dir.join("p.yaml"), patch).unwrap();
        std::fs::write(
            dir.join("kustomization.yaml"),
            "resources: [cm.yaml]\npatches:\n  - path: p.yaml\n    target: {version: v1, kind: ConfigMap}\n",
        )
        .unwrap();
        build(dir)
    }

    #[test]
    fn json6902_patches_apply_every_op_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let objs = patched_config_map(
            dir.path(),
            "- {op: add, path: /data/list, value: [1, 2]}
- {op: add, path: /data/list/-, value: 3}
- {op: add, path: /data/list/0, value: 0}
- {op: replace, path: /data/x, value: new}
- {op: remove, path: /data/list/1}
- {op: replace, path: /data/k~1e~0y, value: '2'}
- {op: copy, from: /data/x, path: /data/y}
- {op: move, from: /data/y, path: /data/z}
- {op: test, path: /data/z, value: new}
",
        )
        .unwrap();
        assert_eq!(
            objs[0]["data"],
            json!({"list": [0, 2, 3], "x": "new", "z": "new", "k/e~y": "2"})
        );
    }

    #[test]
    fn json6902_errors_name_the_file_the_op_and_the_object() {
        let dir = tempfile::tempdir().unwrap();
        let table = [
            (
                "- {op: replace, path: /data/nope, value: 1}",
                0,
                "replace",
                "/data/nope",
            ),
            (
                "- {op: add, path: /data/list, value: [1]}\n- {op: add, path: /data/list/5, value: 1}",
                1,
                "add",
                "/data/list/5",
            ),
            ("- {op: remove, path: /data/x/y}", 0, "remove", "/data/x/y"),
            ("- {op: test, path: /data/x, value: other}", 0, "test", "/data/x"),
        ];
        for (patch, index, op, pointer) in table {
            let err = patched_config_map(dir.path(), patch).unwrap_err();
            match &err {
                KustomizeError::Patch {
                    path,
                    object,
                    index: i,
                    op: o,
                    pointer: p,
                    ..
                } => {
                    assert!(path.ends_with("p.yaml"), "{err}");
                    assert_eq!(
                        (object.as_str(), *i, *o, p.as_str()),
                        ("ConfigMap/n/c", index, op, pointer)
                    );
                }
                other => panic!("{patch}: {other:?}"),
            }
        }
        // malformed operations are refused when the patch is read
        for patch in [
            "- {op: frobnicate, path: /data/x}",
            "- {op: add, path: /data/x}",
            "- {op: add, path: data/x, value: 1}",
        ] {
            let err = patched_config_map(dir.path(), patch).unwrap_err();
            assert!(
                matches!(&err, KustomizeError::Parse { path, .. } if path.ends_with("p.yaml")),
                "{patch}: {err:?}"
            );
        }
    }

    #[test]
    fn split_image_handles_ports_tags_and_digests() {
        assert_eq!(split_image("ghcr.io/x/ccm:1.0"), ("ghcr.io/x/ccm", Some("1.0"), None));
        assert_eq!(split_image("localhost:5000/ccm"), ("localhost:5000/ccm", None, None));
        assert_eq!(
            split_image("localhost:5000/ccm:v2"),
            ("localhost:5000/ccm", Some("v2"), None)
        );
        assert_eq!(split_image("a/b@sha256:ab"), ("a/b", None, Some("sha256:ab")));
        assert_eq!(split_image("a/b:t@sha256:ab"), ("a/b", Some("t"), Some("sha256:ab")));
    }

    #[test]
    fn image_override_rewrites_matching_containers_only() {
        let mut obj = json!({"kind": "Deployment", "spec": {"template": {"spec": {
            "initContainers": [{"name": "i", "image": "reg/ccm:old"}],
            "containers": [{"name": "a", "image": "reg/ccm:old"}, {"name": "b", "image": "other/img:1"}]}}}});
        let ov = ImageOverride {
            name: "reg/ccm".into(),
            new_name: Some("local:5000/ccm".into()),
            new_tag: Some("dev".into()),
            digest: None,
        };
        apply_image_override(&mut obj, &ov);
        assert_eq!(
            obj.pointer("/spec/template/spec/containers/0/image"),
            Some(&json!("local:5000/ccm:dev"))
        );
        assert_eq!(
            obj.pointer("/spec/template/spec/initContainers/0/image"),
            Some(&json!("local:5000/ccm:dev"))
        );
        assert_eq!(
            obj.pointer("/spec/template/spec/containers/1/image"),
            Some(&json!("other/img:1"))
        );
        let pin = ImageOverride {
            name: "local:5000/ccm".into(),
            new_name: None,
            new_tag: None,
            digest: Some("sha256:00".into()),
        };
        apply_image_override(&mut obj, &pin);
        assert_eq!(
            obj.pointer("/spec/template/spec/containers/0/image"),
            Some(&json!("local:5000/ccm@sha256:00"))
        );
    }

    #[test]
    fn unsupported_fields_and_strategic_patches_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kustomization.yaml"), "namePrefix: x-\nresources: []\n").unwrap();
        let err = build(dir.path()).unwrap_err().to_string();
        assert!(err.contains("namePrefix"), "{err}");

        std::fs::write(
            dir.path().join("cm.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: n}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("p.yaml"), "metadata: {labels: {a: b}}\n").unwrap();
        std::fs::write(
            dir.path().join("kustomization.yaml"),
            "resources: [cm.yaml]\npatches:\n  - path: p.yaml\n    target: {kind: ConfigMap}\n",
        )
        .unwrap();
        let err = build(dir.path()).unwrap_err().to_string();
        assert!(err.contains("strategic-merge"), "{err}");

        std::fs::write(dir.path().join("p.yaml"), "- {op: add, path: /data, value: {k: v}}\n").unwrap();
        std::fs::write(
            dir.path().join("kustomization.yaml"),
            "resources: [cm.yaml]\npatches:\n  - path: p.yaml\n    target: {kind: Secret}\n",
        )
        .unwrap();
        let err = build(dir.path()).unwrap_err().to_string();
        assert!(err.contains("matches no object"), "{err}");

        std::fs::write(dir.path().join("kustomization.yaml"), "resources: [cm.yaml, cm.yaml]\n").unwrap();
        let err = build(dir.path()).unwrap_err().to_string();
        assert!(err.contains("appears twice"), "{err}");
    }

    #[test]
    fn nested_kustomizations_patches_replicas_and_images_compose() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base");
        std::fs::create_dir(&base).unwrap();
        std::fs::write(base.join("kustomization.yaml"), "resources: [d.yaml]\n").unwrap();
        std::fs::write(
            base.join("d.yaml"),
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: n}\nspec:\n  replicas: 2\n  template:\n    spec:\n      containers: [{name: c, image: 'r/img:1', env: []}]\n---\n",
        )
        .unwrap();
        let over = dir.path().join("over");
        std::fs::create_dir(&over).unwrap();
        std::fs::write(
            over.join("kustomization.yaml"),
            "resources: [../base]\nimages: [{name: r/img, newTag: '2'}]\nreplicas: [{name: d, count: 1}]\npatches:\n  - patch: |\n      - {op: add, path: /spec/template/spec/containers/0/env/-, value: {name: E, value: v}}\n    target: {group: apps, version: v1, kind: Deployment, name: d}\n",
        )
        .unwrap();
        let objs = build(&over).unwrap();
        assert_eq!(objs.len(), 1);
        assert_eq!(objs[0].pointer("/spec/replicas"), Some(&json!(1)));
        assert_eq!(
            objs[0].pointer("/spec/template/spec/containers/0/image"),
            Some(&json!("r/img:2"))
        );
        assert_eq!(
            objs[0].pointer("/spec/template/spec/containers/0/env/0/name"),
            Some(&json!("E"))
        );
    }
}
