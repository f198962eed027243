//! The pure part of deploy/undeploy: addressing objects, rollout readiness, change summaries, safety checks.

use serde_json::Value;

use crate::render::kinds::{self, KindInfo};
use crate::render::kustomize::{object_id, str_at};

/// The namespace our namespaced objects default to when the YAML names none.
pub const DEFAULT_NAMESPACE: &str = "kube-system";
/// Our CSI driver's name.
pub const DRIVER_NAME: &str = "additional-storage.csi.nifcloud.com";

/// Errors of planning.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// A kind outside the closed list (no CRDs).
    #[error("{id}: kind {api_version} {kind} is not a known built-in kind")]
    UnknownKind {
        /// The object.
        id: String,
        /// Its apiVersion.
        api_version: String,
        /// Its kind.
        kind: String,
    },
    /// A cluster-scoped object carries a namespace.
    #[error("{id}: {kind} is cluster-scoped but has namespace {namespace}")]
    NamespaceOnClusterScoped {
        /// The object.
        id: String,
        /// Its kind.
        kind: String,
        /// The namespace it has.
        namespace: String,
    },
    /// An object has no name.
    #[error("an object of kind {kind} has no metadata.name")]
    NoName {
        /// Its kind.
        kind: String,
    },
}

/// One object to apply, with how to address it.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// What the kind is.
    pub kind: &'static KindInfo,
    /// Namespace (None for cluster-scoped).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// The object (namespace filled in).
    pub object: Value,
}

impl Planned {
    /// `Kind namespace/name` for messages.
    pub fn label(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind.kind, self.name),
            None => format!("{} {}", self.kind.kind, self.name),
        }
    }
}

/// Addresses every object: known kind, a name, the namespace defaulted to [`DEFAULT_NAMESPACE`] for namespaced
/// kinds, and no namespace on cluster-scoped ones. Keeps the given (apply) order.
pub fn plan(objs: &[Value]) -> Result<Vec<Planned>, PlanError> {
    let mut out = Vec::new();
    for obj in objs {
        let (api_version, kind) = (str_at(obj, &["apiVersion"]), str_at(obj, &["kind"]));
        let info = kinds::lookup(api_version, kind).ok_or_else(|| PlanError::UnknownKind {
            id: object_id(obj),
            api_version: api_version.into(),
            kind: kind.into(),
        })?;
        let name = str_at(obj, &["metadata", "name"]).to_owned();
        if name.is_empty() {
            return Err(PlanError::NoName { kind: kind.into() });
        }
        let ns = str_at(obj, &["metadata", "namespace"]).to_owned();
        let mut object = obj.clone();
        let namespace = if info.namespaced {
            let ns = if ns.is_empty() {
                DEFAULT_NAMESPACE.to_owned()
            } else {
                ns
            };
            object["metadata"]["namespace"] = Value::String(ns.clone());
            Some(ns)
        } else {
            if !ns.is_empty() {
                return Err(PlanError::NamespaceOnClusterScoped {
                    id: object_id(obj),
                    kind: kind.into(),
                    namespace: ns,
                });
            }
            None
        };
        out.push(Planned {
            kind: info,
            namespace,
            name,
            object,
        });
    }
    Ok(out)
}

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    /// Every replica is updated and available (Deployment) / ready (DaemonSet).
    Ready(String),
    /// Not yet; the text says what is missing.
    Waiting(String),
}

fn int_at(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// Rollout state of a Deployment or DaemonSet as read from the API (None for other kinds).
pub fn rollout(kind: &str, live: &Value) -> Option<Rollout> {
    let generation = int_at(live, "/metadata/generation");
    let observed = int_at(live, "/status/observedGeneration");
    if kind != "Deployment" && kind != "DaemonSet" {
        return None;
    }
    if observed < generation {
        return Some(Rollout::Waiting(format!(
            "controller has not observed generation {generation} yet"
        )));
    }
    Some(match kind {
        "Deployment" => {
            let want = live.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
            let updated = int_at(live, "/status/updatedReplicas");
            let available = int_at(live, "/status/availableReplicas");
            let total = int_at(live, "/status/replicas");
            let text = format!("{available}/{want} available, {updated}/{want} updated");
            if updated >= want && available >= want && total <= want {
                Rollout::Ready(text)
            } else {
                Rollout::Waiting(text)
            }
        }
        _ => {
            let desired = int_at(live, "/status/desiredNumberScheduled");
            let ready = int_at(live, "/status/numberReady");
            let updated = int_at(live, "/status/updatedNumberScheduled");
            let text = format!("{ready}/{desired} ready, {updated}/{desired} updated");
            if ready == desired && updated == desired {
                Rollout::Ready(text)
            } else {
                Rollout::Waiting(text)
            }
        }
    })
}

/// What it takes for a workload to count as rolled out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Every replica updated and available (Deployment) / ready (DaemonSet): [`rollout`].
    All,
    /// Leader-elected replicas, of which one does the work: rolled out when no pod of an older template is left,
    /// every replica of the new one exists, at least one is available and each of the others is one the scheduler
    /// found no node for (`PodScheduled=False`, reason `Unschedulable`): [`rollout_one_available`]. A replica that
    /// is scheduled but not (yet) available is waited for.
    OneAvailable,
}

/// The readiness rule of a planned workload: [`Readiness::OneAvailable`] for the CCM's Deployment (hostNetwork
/// and leader election: with one control-plane node its second replica never fits, and need not), otherwise
/// [`Readiness::All`].
pub fn readiness(p: &Planned) -> Readiness {
    if p.kind.kind == "Deployment" && p.name == crate::render::CCM_DEPLOYMENT {
        Readiness::OneAvailable
    } else {
        Readiness::All
    }
}

/// The label selector (`k=v,k2=v2`) of a workload's `spec.selector.matchLabels`; `None` when it has none.
pub fn label_selector(obj: &Value) -> Option<String> {
    let labels = obj.pointer("/spec/selector/matchLabels")?.as_object()?;
    let parts: Vec<String> = labels
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
        .collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

/// Why the scheduler could not place `pod`, if that is where it stands: a live, pending pod whose `PodScheduled`
/// condition is `False` with reason `Unschedulable` (the message, or the reason when there is none).
pub fn unschedulable(pod: &Value) -> Option<String> {
    if pod.pointer("/metadata/deletionTimestamp").is_some() || str_at(pod, &["status", "phase"]) != "Pending" {
        return None;
    }
    pod.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| {
            str_at(c, &["type"]) == "PodScheduled"
                && str_at(c, &["status"]) == "False"
                && str_at(c, &["reason"]) == "Unschedulable"
        })
        .map(|c| match str_at(c, &["message"]).trim() {
            "" => "Unschedulable".to_owned(),
            m => m.to_owned(),
        })
}

/// Rollout state of a Deployment under [`Readiness::OneAvailable`], from the live object and the pods it selects.
pub fn rollout_one_available(live: &Value, pods: &[Value]) -> Rollout {
    let generation = int_at(live, "/metadata/generation");
    let observed = int_at(live, "/status/observedGeneration");
    if observed < generation {
        return Rollout::Waiting(format!("controller has not observed generation {generation} yet"));
    }
    let want = live.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
    let updated = int_at(live, "/status/updatedReplicas");
    let available = int_at(live, "/status/availableReplicas");
    let total = int_at(live, "/status/replicas");
    let mut reasons: Vec<String> = pods.iter().filter_map(unschedulable).collect();
    let stuck = reasons.len() as i64;
    reasons.sort();
    reasons.dedup();
    let mut text = format!("{available}/{want} available, {updated}/{want} updated");
    if stuck > 0 {
        text.push_str(&format!(", {stuck} unschedulable ({})", reasons.join("; ")));
    }
    let new_template_complete = updated >= want && total <= updated;
    if new_template_complete && (want == 0 || (available >= 1 && available + stuck >= want)) {
        Rollout::Ready(text)
    } else {
        Rollout::Waiting(text)
    }
}

/// Drops server-managed fields so a live object and an applied one compare by content.
pub fn strip_server_fields(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
        if let Some(Value::Object(meta)) = m.get_mut("metadata") {
            for k in [
                "managedFields",
                "resourceVersion",
                "generation",
                "uid",
                "creationTimestamp",
                "selfLink",
            ] {
                meta.remove(k);
            }
            if let Some(Value::Object(ann)) = meta.get_mut("annotations") {
                ann.remove("deployment.kubernetes.io/revision");
                ann.remove("kubectl.kubernetes.io/last-applied-configuration");
                if ann.is_empty() {
                    meta.remove("annotations");
                }
            }
        }
    }
    v
}

/// JSON pointers where `before` and `after` differ (leaves only), after stripping server-managed fields.
pub fn changed_paths(before: &Value, after: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff(
        &strip_server_fields(before),
        &strip_server_fields(after),
        String::new(),
        &mut out,
    );
    out
}

fn diff(a: &Value, b: &Value, at: String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                match (x.get(k), y.get(k)) {
                    (Some(l), Some(r)) => diff(l, r, p, out),
                    _ => out.push(p),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (l, r)) in x.iter().zip(y).enumerate() {
                diff(l, r, format!("{at}/{i}"), out);
            }
        }
        _ if a == b => {}
        _ => out.push(if at.is_empty() { "/".into() } else { at }),
    }
}

/// What a dry run found for one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The object does not exist yet.
    Create,
    /// Applying changes nothing.
    Unchanged,
    /// Applying changes these paths.
    Update(Vec<String>),
}

/// Classifies an object from its live state (None if absent) and the server's dry-run result.
pub fn classify(live: Option<&Value>, dry_run_result: &Value) -> Change {
    match live {
        None => Change::Create,
        Some(l) => {
            let paths = changed_paths(l, dry_run_result);
            if paths.is_empty() {
                Change::Unchanged
            } else {
                Change::Update(paths)
            }
        }
    }
}

/// Undeploy order: the reverse of apply order (workloads first, then roles, accounts, the CSIDriver last-ish).
pub fn undeploy_order(planned: &[Planned]) -> Vec<&Planned> {
    planned.iter().rev().collect()
}

/// PersistentVolumes (from a PV list's `items`) provisioned by our driver: undeploy refuses while any exist,
/// because their disks could no longer be detached or deleted.
pub fn volumes_of_driver(pv_items: &[Value]) -> Vec<String> {
    pv_items
        .iter()
        .filter(|pv| str_at(pv, &["spec", "csi", "driver"]) == DRIVER_NAME)
        .map(|pv| str_at(pv, &["metadata", "name"]).to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plan_defaults_namespaces_and_rejects_bad_objects() {
        let objs = vec![
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "a"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "other"}}),
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "c"}}),
        ];
        let p = plan(&objs).unwrap();
        assert_eq!(p[0].namespace.as_deref(), Some("kube-system"));
        assert_eq!(p[0].object["metadata"]["namespace"], "kube-system");
        assert_eq!(p[1].namespace.as_deref(), Some("other"));
        assert_eq!(p[2].namespace, None);
        assert_eq!(p[2].label(), "StorageClass c");
        assert_eq!(p[0].kind.plural, "serviceaccounts");

        let crd = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
        assert!(matches!(plan(&[crd]), Err(PlanError::UnknownKind { .. })));
        let scoped = json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": {"name": "d", "namespace": "x"}});
        assert!(matches!(
            plan(&[scoped]),
            Err(PlanError::NamespaceOnClusterScoped { .. })
        ));
        let unnamed = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {}});
        assert!(matches!(plan(&[unnamed]), Err(PlanError::NoName { .. })));
    }

    #[test]
    fn rollout_readiness_table() {
        let dep = |generation: i64, obs: i64, want: i64, upd: i64, avail: i64, total: i64| {
            json!({"metadata": {"generation": generation}, "spec": {"replicas": want},
                   "status": {"observedGeneration": obs, "updatedReplicas": upd, "availableReplicas": avail, "replicas": total}})
        };
        let table = [
            (dep(2, 2, 2, 2, 2, 2), true),
            (dep(2, 1, 2, 2, 2, 2), false), // not observed yet
            (dep(2, 2, 2, 1, 2, 3), false), // old pod still around
            (dep(2, 2, 2, 2, 1, 2), false), // one not available
            (dep(1, 1, 0, 0, 0, 0), true),  // scaled to zero
        ];
        for (i, (obj, ready)) in table.iter().enumerate() {
            assert_eq!(
                matches!(rollout("Deployment", obj), Some(Rollout::Ready(_))),
                *ready,
                "row {i}: {obj}"
            );
        }
        let ds = |desired: i64, ready: i64, updated: i64| json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "desiredNumberScheduled": desired, "numberReady": ready, "updatedNumberScheduled": updated}});
        assert_eq!(
            rollout("DaemonSet", &ds(3, 3, 3)),
            Some(Rollout::Ready("3/3 ready, 3/3 updated".into()))
        );
        assert!(matches!(rollout("DaemonSet", &ds(3, 2, 3)), Some(Rollout::Waiting(_))));
        assert!(matches!(rollout("DaemonSet", &ds(3, 3, 2)), Some(Rollout::Waiting(_))));
        assert_eq!(rollout("Service", &json!({})), None);
    }

    fn pod(phase: &str, scheduled: Option<(&str, &str, &str)>) -> Value {
        let conditions: Vec<Value> = scheduled
            .map(|(status, reason, message)| {
                json!({"type": "PodScheduled", "status": status, "reason": reason, "message": message})
            })
            .into_iter()
            .collect();
        json!({"metadata": {"name": "p"}, "status": {"phase": phase, "conditions": conditions}})
    }

    const NO_PORT: &str = "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports.";

    #[test]
    fn unschedulable_pods_are_pending_ones_the_scheduler_gave_up_on() {
        assert_eq!(
            unschedulable(&pod("Pending", Some(("False", "Unschedulable", NO_PORT)))).as_deref(),
            Some(NO_PORT)
        );
        assert_eq!(
            unschedulable(&pod("Pending", Some(("False", "Unschedulable", "")))).as_deref(),
            Some("Unschedulable")
        );
        // not yet tried, scheduled, or going away: not unschedulable
        assert_eq!(unschedulable(&pod("Pending", None)), None);
        assert_eq!(unschedulable(&pod("Pending", Some(("True", "", "")))), None);
        assert_eq!(
            unschedulable(&pod("Pending", Some(("False", "SchedulerError", "x")))),
            None
        );
        assert_eq!(unschedulable(&pod("Running", Some(("True", "", "")))), None);
        let mut going = pod("Pending", Some(("False", "Unschedulable", NO_PORT)));
        going["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
        assert_eq!(unschedulable(&going), None);
    }

    #[test]
    fn leader_elected_rollout_needs_one_available_and_the_rest_unschedulable() {
        let dep = |generation: i64, obs: i64, want: i64, upd: i64, avail: i64, total: i64| {
            json!({"metadata": {"generation": generation}, "spec": {"replicas": want},
                   "status": {"observedGeneration": obs, "updatedReplicas": upd, "availableReplicas": avail, "replicas": total}})
        };
        let running = pod("Running", Some(("True", "", "")));
        let stuck = pod("Pending", Some(("False", "Unschedulable", NO_PORT)));
        let not_tried = pod("Pending", None);
        let starting = pod("Running", Some(("True", "", "")));
        let one_node = [running.clone(), stuck.clone()];
        let table: [(Value, &[Value], bool); 9] = [
            // one control-plane node: one replica runs, the other cannot fit
            (dep(1, 1, 2, 2, 1, 2), &one_node, true),
            // three nodes: both run
            (dep(1, 1, 2, 2, 2, 2), &[], true),
            // three nodes, the second replica scheduled but not ready yet: wait for it
            (dep(1, 1, 2, 2, 1, 2), &[running.clone(), starting], false),
            // the scheduler has not looked at it yet
            (dep(1, 1, 2, 2, 1, 2), &[running.clone(), not_tried], false),
            // nothing available, even if the rest is unschedulable
            (dep(1, 1, 2, 2, 0, 2), &[stuck.clone(), stuck.clone()], false),
            // not observed yet
            (dep(2, 1, 2, 2, 1, 2), &one_node, false),
            // a pod of the old template is still there (Recreate: before the new ones)
            (dep(2, 2, 2, 1, 1, 2), &one_node, false),
            // more pods than replicas
            (dep(2, 2, 2, 2, 1, 3), &one_node, false),
            // scaled to zero
            (dep(1, 1, 0, 0, 0, 0), &[], true),
        ];
        for (i, (obj, pods, ready)) in table.iter().enumerate() {
            assert_eq!(
                matches!(rollout_one_available(obj, pods), Rollout::Ready(_)),
                *ready,
                "row {i}: {obj} {pods:?}"
            );
        }
        assert_eq!(
            rollout_one_available(&dep(1, 1, 2, 2, 1, 2), &one_node),
            Rollout::Ready(format!("1/2 available, 2/2 updated, 1 unschedulable ({NO_PORT})"))
        );
        assert_eq!(
            rollout_one_available(&dep(1, 1, 2, 2, 0, 2), &[stuck.clone(), stuck]),
            Rollout::Waiting(format!("0/2 available, 2/2 updated, 2 unschedulable ({NO_PORT})"))
        );
    }

    #[test]
    fn only_the_ccm_is_leader_elected_and_selectors_come_from_match_labels() {
        for overlay in [crate::render::Overlay::Production, crate::render::Overlay::Emulator] {
            let deploy = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy");
            let objs = crate::render::render(
                &deploy,
                &crate::render::RenderOptions {
                    overlay,
                    ..Default::default()
                },
            )
            .unwrap();
            let relaxed: Vec<String> = plan(&objs)
                .unwrap()
                .iter()
                .filter(|p| readiness(p) == Readiness::OneAvailable)
                .map(Planned::label)
                .collect();
            assert_eq!(
                relaxed,
                vec!["Deployment kube-system/nifcloud-cloud-controller-manager".to_owned()]
            );
        }
        let d = json!({"spec": {"selector": {"matchLabels": {"a.io/name": "x", "b": "y"}}}});
        assert_eq!(label_selector(&d).as_deref(), Some("a.io/name=x,b=y"));
        assert_eq!(label_selector(&json!({"spec": {}})), None);
    }

    #[test]
    fn classify_ignores_server_fields() {
        let live = json!({"metadata": {"name": "a", "resourceVersion": "5", "managedFields": [{}], "uid": "u",
                                       "annotations": {"deployment.kubernetes.io/revision": "3"}},
                          "spec": {"replicas": 2, "template": {"x": [1, 2]}}, "status": {"ready": 1}});
        let same = json!({"metadata": {"name": "a", "resourceVersion": "6"}, "spec": {"replicas": 2, "template": {"x": [1, 2]}}});
        assert_eq!(classify(Some(&live), &same), Change::Unchanged);
        let changed = json!({"metadata": {"name": "a", "labels": {"k/v": "1"}}, "spec": {"replicas": 3, "template": {"x": [1, 3]}}});
        assert_eq!(
            classify(Some(&live), &changed),
            Change::Update(vec![
                "/metadata/labels".into(),
                "/spec/replicas".into(),
                "/spec/template/x/1".into()
            ])
        );
        assert_eq!(classify(None, &changed), Change::Create);
    }

    #[test]
    fn undeploy_reverses_and_guards_volumes() {
        let objs = vec![
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "a"}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}}),
        ];
        let p = plan(&objs).unwrap();
        let order: Vec<_> = undeploy_order(&p).iter().map(|x| x.name.clone()).collect();
        assert_eq!(order, vec!["d", "a"]);
        let pvs = vec![
            json!({"metadata": {"name": "pv-ours"}, "spec": {"csi": {"driver": DRIVER_NAME}}}),
            json!({"metadata": {"name": "pv-other"}, "spec": {"csi": {"driver": "ebs.csi.aws.com"}}}),
            json!({"metadata": {"name": "pv-local"}, "spec": {"hostPath": {"path": "/x"}}}),
        ];
        assert_eq!(volumes_of_driver(&pvs), vec!["pv-ours".to_owned()]);
    }

    #[test]
    fn rendered_overlays_plan_cleanly() {
        for overlay in [crate::render::Overlay::Production, crate::render::Overlay::Emulator] {
            let deploy = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy");
            let objs = crate::render::render(
                &deploy,
                &crate::render::RenderOptions {
                    overlay,
                    ..Default::default()
                },
            )
            .unwrap();
            let p = plan(&objs).unwrap();
            assert_eq!(p.len(), objs.len());
            assert!(
                p.iter()
                    .all(|x| x.namespace.as_deref().is_none_or(|ns| ns == "kube-system"))
            );
            // workloads come after everything they reference
            let first_workload = p
                .iter()
                .position(|x| x.kind.kind == "Deployment" || x.kind.kind == "DaemonSet")
                .unwrap();
            assert!(
                p[first_workload..]
                    .iter()
                    .all(|x| matches!(x.kind.kind, "Deployment" | "DaemonSet" | "PodDisruptionBudget"))
            );
        }
    }
}
