//! Checks the rendered RBAC against `deploy/rbac-needs.yaml`: what each component's code calls.
//!
//! Both are expanded to single grants `(serviceAccount, scope, apiGroup, resource, verb)` and compared as sets, so a
//! rule may be split or merged across roles freely, but nothing may be missing and nothing may be extra.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::kustomize::str_at;

/// One permission of one ServiceAccount.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    /// `namespace/name` of the ServiceAccount.
    pub service_account: String,
    /// `cluster` or `namespace` (a Role in the ServiceAccount's namespace).
    pub scope: String,
    /// API group (`""` for core).
    pub api_group: String,
    /// Resource, with subresource (`nodes/status`).
    pub resource: String,
    /// Verb.
    pub verb: String,
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = if self.api_group.is_empty() {
            "core"
        } else {
            &self.api_group
        };
        write!(
            f,
            "{} [{}] {}/{} {}",
            self.service_account, self.scope, g, self.resource, self.verb
        )
    }
}

/// Errors reading the needs file or the RBAC objects.
#[derive(Debug, thiserror::Error)]
pub enum RbacError {
    /// The needs file could not be read or parsed.
    #[error("{path}: {message}")]
    Needs {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// A binding refers to a role that is not rendered, or uses a form we do not model.
    #[error("binding {binding}: {message}")]
    Binding {
        /// The binding's id.
        binding: String,
        /// Why.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NeedsFile {
    components: Vec<Component>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Component {
    #[allow(dead_code)]
    name: String,
    service_account: String,
    rules: Vec<NeedRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NeedRule {
    api_group: String,
    resource: String,
    verbs: Vec<String>,
    scope: String,
    #[serde(default)]
    #[allow(dead_code)]
    by: Vec<String>,
}

/// Reads the needs file into grants, and the list of ServiceAccounts it covers.
pub fn load_needs(path: &Path) -> Result<(BTreeSet<Grant>, BTreeSet<String>), RbacError> {
    let err = |message: String| RbacError::Needs {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let file: NeedsFile = serde_saphyr::from_str(&text).map_err(|e| err(e.to_string()))?;
    let mut grants = BTreeSet::new();
    let mut accounts = BTreeSet::new();
    for c in file.components {
        accounts.insert(c.service_account.clone());
        for r in c.rules {
            if r.scope != "cluster" && r.scope != "namespace" {
                return Err(err(format!("scope {:?} is neither cluster nor namespace", r.scope)));
            }
            for verb in r.verbs {
                grants.insert(Grant {
                    service_account: c.service_account.clone(),
                    scope: r.scope.clone(),
                    api_group: r.api_group.clone(),
                    resource: r.resource.clone(),
                    verb,
                });
            }
        }
    }
    Ok((grants, accounts))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Expands the ClusterRoleBindings and RoleBindings in `objs` into grants per ServiceAccount subject.
/// Wildcards (`*`) are kept literally, so they can never match a need and always show up as extra.
pub fn effective_grants(objs: &[Value]) -> Result<BTreeSet<Grant>, RbacError> {
    let role = |kind: &str, ns: &str, name: &str| {
        objs.iter().find(|o| {
            str_at(o, &["kind"]) == kind
                && str_at(o, &["metadata", "name"]) == name
                && (kind == "ClusterRole" || str_at(o, &["metadata", "namespace"]) == ns)
        })
    };
    let mut out = BTreeSet::new();
    for b in objs {
        let kind = str_at(b, &["kind"]);
        if kind != "ClusterRoleBinding" && kind != "RoleBinding" {
            continue;
        }
        let binding = super::kustomize::object_id(b);
        let ns = str_at(b, &["metadata", "namespace"]);
        let (ref_kind, ref_name) = (str_at(b, &["roleRef", "kind"]), str_at(b, &["roleRef", "name"]));
        let r = role(ref_kind, ns, ref_name).ok_or_else(|| RbacError::Binding {
            binding: binding.clone(),
            message: format!("{ref_kind} {ref_name} is not rendered"),
        })?;
        if kind == "RoleBinding" && ref_kind == "ClusterRole" {
            return Err(RbacError::Binding {
                binding,
                message: "RoleBinding to a ClusterRole is not modelled".into(),
            });
        }
        let scope = if kind == "ClusterRoleBinding" {
            "cluster"
        } else {
            "namespace"
        };
        for s in b.get("subjects").and_then(Value::as_array).into_iter().flatten() {
            if str_at(s, &["kind"]) != "ServiceAccount" {
                return Err(RbacError::Binding {
                    binding: binding.clone(),
                    message: "only ServiceAccount subjects are expected".into(),
                });
            }
            let sa_ns = str_at(s, &["namespace"]);
            if scope == "namespace" && sa_ns != ns {
                return Err(RbacError::Binding {
                    binding: binding.clone(),
                    message: format!("grants namespace {ns} to an account of namespace {sa_ns}"),
                });
            }
            let sa = format!("{sa_ns}/{}", str_at(s, &["name"]));
            for rule in r.get("rules").and_then(Value::as_array).into_iter().flatten() {
                if rule.get("resourceNames").is_some() || rule.get("nonResourceURLs").is_some() {
                    return Err(RbacError::Binding {
                        binding: binding.clone(),
                        message: "resourceNames / nonResourceURLs are not modelled".into(),
                    });
                }
                for g in strings(rule.get("apiGroups")) {
                    for res in strings(rule.get("resources")) {
                        for verb in strings(rule.get("verbs")) {
                            out.insert(Grant {
                                service_account: sa.clone(),
                                scope: scope.into(),
                                api_group: g.clone(),
                                resource: res.clone(),
                                verb,
                            });
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The difference between what is needed and what is granted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RbacDiff {
    /// Needed but not granted.
    pub missing: Vec<Grant>,
    /// Granted but not needed (or granted to an account the needs file does not know).
    pub extra: Vec<Grant>,
    /// ServiceAccounts used by rendered pods that the needs file does not list.
    pub unlisted_accounts: Vec<String>,
}

impl RbacDiff {
    /// Whether grants and needs agree exactly.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty() && self.unlisted_accounts.is_empty()
    }
}

/// The ServiceAccounts the rendered pod templates run as (`default` when unset).
pub fn pod_accounts(objs: &[Value]) -> BTreeSet<String> {
    objs.iter()
        .filter(|o| o.pointer("/spec/template/spec").is_some())
        .map(|o| {
            let sa = o
                .pointer("/spec/template/spec/serviceAccountName")
                .and_then(Value::as_str)
                .unwrap_or("default");
            format!("{}/{sa}", str_at(o, &["metadata", "namespace"]))
        })
        .collect()
}

/// Compares the needs with the rendered objects.
pub fn compare(needs: &BTreeSet<Grant>, accounts: &BTreeSet<String>, objs: &[Value]) -> Result<RbacDiff, RbacError> {
    let granted = effective_grants(objs)?;
    Ok(RbacDiff {
        missing: needs.difference(&granted).cloned().collect(),
        extra: granted.difference(needs).cloned().collect(),
        unlisted_accounts: pod_accounts(objs).difference(accounts).cloned().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn objs() -> Vec<Value> {
        vec![
            json!({"kind": "ClusterRole", "metadata": {"name": "r"},
                   "rules": [{"apiGroups": [""], "resources": ["nodes", "nodes/status"], "verbs": ["get", "patch"]}]}),
            json!({"kind": "ClusterRoleBinding", "metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "r"},
                   "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}]}),
            json!({"kind": "Role", "metadata": {"name": "l", "namespace": "ns"},
                   "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get"]}]}),
            json!({"kind": "RoleBinding", "metadata": {"name": "lb", "namespace": "ns"}, "roleRef": {"kind": "Role", "name": "l"},
                   "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}]}),
            json!({"kind": "Deployment", "metadata": {"name": "d", "namespace": "ns"},
                   "spec": {"template": {"spec": {"serviceAccountName": "sa"}}}}),
        ]
    }

    fn g(scope: &str, group: &str, res: &str, verb: &str) -> Grant {
        Grant {
            service_account: "ns/sa".into(),
            scope: scope.into(),
            api_group: group.into(),
            resource: res.into(),
            verb: verb.into(),
        }
    }

    #[test]
    fn expands_rules_and_finds_missing_and_extra() {
        let granted = effective_grants(&objs()).unwrap();
        assert_eq!(granted.len(), 5);
        let accounts = BTreeSet::from(["ns/sa".to_owned()]);
        let needs: BTreeSet<Grant> = [
            g("cluster", "", "nodes", "get"),
            g("cluster", "", "nodes", "patch"),
            g("cluster", "", "nodes/status", "patch"),
            g("namespace", "coordination.k8s.io", "leases", "get"),
            g("namespace", "coordination.k8s.io", "leases", "create"),
        ]
        .into();
        let diff = compare(&needs, &accounts, &objs()).unwrap();
        assert_eq!(
            diff.missing,
            vec![g("namespace", "coordination.k8s.io", "leases", "create")]
        );
        assert_eq!(diff.extra, vec![g("cluster", "", "nodes/status", "get")]);
        assert!(diff.unlisted_accounts.is_empty());
        let diff = compare(&needs, &BTreeSet::new(), &objs()).unwrap();
        assert_eq!(diff.unlisted_accounts, vec!["ns/sa".to_owned()]);
    }

    #[test]
    fn dangling_role_refs_are_errors() {
        let mut o = objs();
        o.remove(0);
        assert!(effective_grants(&o).unwrap_err().to_string().contains("not rendered"));
    }
}
