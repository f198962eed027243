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

/// Annotations the API server and the controllers write on our objects (never in our manifests).
pub const SERVER_ANNOTATIONS: &[&str] = &[
    // the Deployment controller's revision counter
    "deployment.kubernetes.io/revision",
    // the DaemonSet registry strategy's copy of the generation, bumped with every template change
    "deprecated.daemonset.template.generation",
    // client-side apply's record (a server-side apply neither reads nor writes it)
    "kubectl.kubernetes.io/last-applied-configuration",
];

/// Drops server-managed fields so a live object and an applied one compare by content: `status`, the metadata
/// the API server maintains, and [`SERVER_ANNOTATIONS`].
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
                for k in SERVER_ANNOTATIONS {
                    ann.remove(*k);
                }
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

fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn diff(a: &Value, b: &Value, at: String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = format!("{at}/{}", pointer_token(k));
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

/// The fields `manager` owns in `obj` by server-side apply: the `fieldsV1` sets of its `Apply` entries in
/// `metadata.managedFields` (not those of a subresource), merged. `None` when it owns nothing there.
pub fn applied_fields(obj: &Value, manager: &str) -> Option<Value> {
    let mut set: Option<Value> = None;
    for entry in obj.pointer("/metadata/managedFields")?.as_array()? {
        let ours = str_at(entry, &["manager"]) == manager
            && str_at(entry, &["operation"]) == "Apply"
            && str_at(entry, &["subresource"]).is_empty();
        if let (true, Some(fields)) = (ours, entry.get("fieldsV1")) {
            match &mut set {
                Some(s) => merge_field_sets(s, fields),
                None => set = Some(fields.clone()),
            }
        }
    }
    set
}

/// Adds the fields of `more` to the field set `into`.
fn merge_field_sets(into: &mut Value, more: &Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, more) {
        for (k, v) in b {
            match a.get_mut(k) {
                Some(existing) => merge_field_sets(existing, v),
                None => {
                    a.insert(k.clone(), v.clone());
                }
            }
        }
    }
}

/// The element of `list` that the field-set key `key` (`k:{"name":"x"}`, `v:"value"`, `i:3`) names, with its index.
fn list_element<'a>(list: &'a [Value], key: &str) -> Option<(usize, &'a Value)> {
    if let Some(fields) = key.strip_prefix("k:") {
        let fields: serde_json::Map<String, Value> = serde_json::from_str(fields).ok()?;
        list.iter()
            .enumerate()
            .find(|(_, e)| fields.iter().all(|(k, v)| e.get(k) == Some(v)))
    } else if let Some(value) = key.strip_prefix("v:") {
        let value: Value = serde_json::from_str(value).ok()?;
        list.iter().enumerate().find(|(_, e)| **e == value)
    } else {
        let i: usize = key.strip_prefix("i:")?.parse().ok()?;
        list.get(i).map(|e| (i, e))
    }
}

/// Like [`diff`], but only where the field set `set` (a managedFields `fieldsV1` node) reaches: a field nobody
/// in `set` applied is skipped, however it differs. A leaf of the set (no children) is compared whole; a list
/// whose set names its elements by key (`k:`), value (`v:`) or index (`i:`) is compared element by element,
/// matched by that key (a path names the element's index after the apply, or before it when it goes away).
fn diff_owned(a: &Value, b: &Value, set: &Value, at: String, out: &mut Vec<String>) {
    let children: Vec<(&String, &Value)> = set
        .as_object()
        .map(|m| m.iter().filter(|(k, _)| k.as_str() != ".").collect())
        .unwrap_or_default();
    let here = |at: &String| if at.is_empty() { "/".to_owned() } else { at.clone() };
    if children.is_empty() {
        if a != b {
            out.push(here(&at));
        }
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (key, sub) in children {
                let Some(name) = key.strip_prefix("f:") else {
                    continue;
                };
                let p = format!("{at}/{}", pointer_token(name));
                match (x.get(name), y.get(name)) {
                    (Some(l), Some(r)) => diff_owned(l, r, sub, p, out),
                    (None, None) => {}
                    _ => out.push(p),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for (key, sub) in children {
                match (list_element(x, key), list_element(y, key)) {
                    (Some((_, l)), Some((i, r))) => diff_owned(l, r, sub, format!("{at}/{i}"), out),
                    (None, Some((i, _))) | (Some((i, _)), None) => out.push(format!("{at}/{i}")),
                    (None, None) => {}
                }
            }
        }
        _ if a == b => {}
        _ => out.push(here(&at)),
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
///
/// What counts as a change is what our apply sets: the fields our field manager ([`super::FIELD_MANAGER`]) owns
/// after the apply (what the manifests say) or owned before it (what they said and no longer do: the apply
/// removes those), as both objects' `managedFields` record. Everything else the server writes is not ours to
/// report: the generation and `deprecated.daemonset.template.generation` it bumps with a template change, the
/// defaults it fills in, what controllers and other managers set. Without such records (an API server that
/// keeps none) every field is compared, less `status`, server metadata and [`SERVER_ANNOTATIONS`].
pub fn classify(live: Option<&Value>, dry_run_result: &Value) -> Change {
    let Some(live) = live else {
        return Change::Create;
    };
    let manager = super::FIELD_MANAGER;
    let owned = match (applied_fields(live, manager), applied_fields(dry_run_result, manager)) {
        (Some(mut before), Some(after)) => {
            merge_field_sets(&mut before, &after);
            Some(before)
        }
        (before, after) => before.or(after),
    };
    let mut paths = match owned {
        Some(set) => {
            let mut out = Vec::new();
            diff_owned(
                &strip_server_fields(live),
                &strip_server_fields(dry_run_result),
                &set,
                String::new(),
                &mut out,
            );
            out
        }
        None => changed_paths(live, dry_run_result),
    };
    paths.sort();
    paths.dedup();
    if paths.is_empty() {
        Change::Unchanged
    } else {
        Change::Update(paths)
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

    /// The repository's manifests of `overlay`, rendered with default options.
    fn rendered(overlay: crate::render::Overlay) -> Vec<Value> {
        let deploy = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy");
        let options = crate::render::RenderOptions {
            overlay,
            ..Default::default()
        };
        crate::render::render(&deploy, &options).unwrap()
    }

    #[test]
    fn only_the_ccm_is_leader_elected_and_selectors_come_from_match_labels() {
        for overlay in [crate::render::Overlay::Production, crate::render::Overlay::Emulator] {
            let objs = rendered(overlay);
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

    /// A DaemonSet as the API server returns it: our manager's `Apply` entry (`fields`), the controller's status
    /// entry, the server's generation annotation and a defaulted field.
    fn live_daemonset(image: &str, template_generation: &str, pull: &str, fields: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
               "metadata": {"name": "nifcloud-csi-node", "namespace": "kube-system", "generation": 1,
                            "resourceVersion": "100",
                            "annotations": {"deprecated.daemonset.template.generation": template_generation},
                            "labels": {"app.kubernetes.io/name": "nifcloud-csi-driver"},
                            "managedFields": [
                                {"manager": "nifcloud-xtask", "operation": "Apply", "apiVersion": "apps/v1",
                                 "fieldsType": "FieldsV1", "fieldsV1": fields},
                                {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
                                 "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:observedGeneration": {}}}}]},
               "spec": {"template": {"spec": {"containers": [
                   {"name": "csi-driver", "image": image, "imagePullPolicy": pull,
                    "terminationMessagePath": "/dev/termination-log", "args": ["--v=2"],
                    "ports": [{"containerPort": 9808, "protocol": "TCP", "name": "healthz"}]},
                   {"name": "node-driver-registrar", "image": "registry.k8s.io/sig-storage/registrar:v2",
                    "imagePullPolicy": pull, "terminationMessagePath": "/dev/termination-log"}]}}},
               "status": {"observedGeneration": 1, "numberReady": 0}})
    }

    fn ours(with_args: bool) -> Value {
        let mut driver = json!({".": {}, "f:name": {}, "f:image": {},
                                "f:ports": {"k:{\"containerPort\":9808,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}, "f:name": {}}}});
        if with_args {
            driver["f:args"] = json!({});
        }
        json!({"f:metadata": {"f:labels": {"f:app.kubernetes.io/name": {}}},
               "f:spec": {"f:template": {"f:spec": {"f:containers": {
                   "k:{\"name\":\"csi-driver\"}": driver,
                   "k:{\"name\":\"node-driver-registrar\"}": {".": {}, "f:name": {}, "f:image": {}}}}}}})
    }

    #[test]
    fn a_dry_run_reports_only_the_fields_our_manager_applies() {
        let live = live_daemonset("r/csi:t1", "1", "IfNotPresent", ours(true));
        // a tag change: the server bumps the generation and its annotation; neither is ours
        let mut tag = live_daemonset("r/csi:t2", "2", "IfNotPresent", ours(true));
        tag["metadata"]["generation"] = json!(2);
        tag["metadata"]["resourceVersion"] = json!("101");
        assert_eq!(
            classify(Some(&live), &tag),
            Change::Update(vec!["/spec/template/spec/containers/0/image".into()])
        );
        // without managedFields the annotation is still known as the server's
        let bare = |v: &Value| {
            let mut v = v.clone();
            v["metadata"].as_object_mut().unwrap().remove("managedFields");
            v
        };
        assert_eq!(
            classify(Some(&bare(&live)), &bare(&tag)),
            Change::Update(vec!["/spec/template/spec/containers/0/image".into()])
        );
        // the same objects again: unchanged, whatever the server's counters say
        let mut same = live.clone();
        same["metadata"]["resourceVersion"] = json!("102");
        same["status"]["numberReady"] = json!(3);
        assert_eq!(classify(Some(&live), &same), Change::Unchanged);
        // a defaulted field nobody applied differs (a default that changed): not ours to report
        let defaulted = live_daemonset("r/csi:t1", "1", "Always", ours(true));
        assert_eq!(classify(Some(&live), &defaulted), Change::Unchanged);
        // a field we applied before and no longer do goes away: reported, from the live object's record
        let mut dropped = live_daemonset("r/csi:t1", "2", "IfNotPresent", ours(false));
        dropped["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("args");
        assert_eq!(
            classify(Some(&live), &dropped),
            Change::Update(vec!["/spec/template/spec/containers/0/args".into()])
        );
        // list elements are matched by their key, not their position
        let mut reordered = live.clone();
        reordered["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .reverse();
        reordered["spec"]["template"]["spec"]["containers"][0]["image"] =
            json!("registry.k8s.io/sig-storage/registrar:v3");
        assert_eq!(
            classify(Some(&live), &reordered),
            Change::Update(vec!["/spec/template/spec/containers/0/image".into()])
        );
        // a new element of a keyed list is one path
        let mut port = live.clone();
        port["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(9809);
        let mut fields = ours(true);
        let ports =
            &mut fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"csi-driver\"}"]["f:ports"];
        *ports =
            json!({"k:{\"containerPort\":9809,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}, "f:name": {}}});
        port["metadata"]["managedFields"][0]["fieldsV1"] = fields;
        assert_eq!(
            classify(Some(&live), &port),
            Change::Update(vec!["/spec/template/spec/containers/0/ports/0".into()])
        );
    }

    #[test]
    fn applied_fields_are_those_of_our_apply_entries_only() {
        let live = live_daemonset("i", "1", "IfNotPresent", ours(true));
        assert_eq!(applied_fields(&live, "nifcloud-xtask"), Some(ours(true)));
        assert_eq!(
            applied_fields(&live, "kube-controller-manager"),
            None,
            "an Update of status"
        );
        assert_eq!(applied_fields(&json!({"metadata": {}}), "nifcloud-xtask"), None);
        let set_elem = [json!("a"), json!("b")];
        assert_eq!(list_element(&set_elem, "v:\"b\""), Some((1, &set_elem[1])));
        assert_eq!(list_element(&set_elem, "i:0"), Some((0, &set_elem[0])));
        assert_eq!(list_element(&set_elem, "k:not json"), None);
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
            let objs = rendered(overlay);
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
