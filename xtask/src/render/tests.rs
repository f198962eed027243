//! Tests of the rendered manifests: typed parsing, RBAC against the needs list, kubectl agreement, policies.

use std::collections::BTreeSet;
use std::path::PathBuf;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::api::storage::v1::{CSIDriver, StorageClass};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::kustomize::{object_id, str_at};
use super::*;

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn opts(overlay: Overlay) -> RenderOptions {
    RenderOptions {
        overlay,
        ..RenderOptions::default()
    }
}

fn both() -> Vec<(Overlay, Vec<Value>)> {
    [Overlay::Production, Overlay::Emulator]
        .into_iter()
        .map(|o| (o, render(&deploy(), &opts(o)).unwrap()))
        .collect()
}

/// Deserializes into the typed struct and back; any field the type does not know would be dropped, so the
/// round trip must give back exactly the source object.
fn round_trip<T: DeserializeOwned + Serialize>(obj: &Value) -> Result<(), String> {
    let typed: T = serde_json::from_value(obj.clone()).map_err(|e| format!("{}: {e}", object_id(obj)))?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    if &back != obj {
        return Err(format!(
            "{}: typed round trip differs (unknown or mistyped field?)\nsource: {obj}\ntyped:  {back}",
            object_id(obj)
        ));
    }
    Ok(())
}

fn check_typed(obj: &Value) -> Result<(), String> {
    match str_at(obj, &["kind"]) {
        "Deployment" => round_trip::<Deployment>(obj),
        "DaemonSet" => round_trip::<DaemonSet>(obj),
        "ServiceAccount" => round_trip::<ServiceAccount>(obj),
        "Secret" => round_trip::<Secret>(obj),
        "ConfigMap" => round_trip::<ConfigMap>(obj),
        "Service" => round_trip::<Service>(obj),
        "ClusterRole" => round_trip::<ClusterRole>(obj),
        "ClusterRoleBinding" => round_trip::<ClusterRoleBinding>(obj),
        "Role" => round_trip::<Role>(obj),
        "RoleBinding" => round_trip::<RoleBinding>(obj),
        "CSIDriver" => round_trip::<CSIDriver>(obj),
        "StorageClass" => round_trip::<StorageClass>(obj),
        "PodDisruptionBudget" => round_trip::<PodDisruptionBudget>(obj),
        "PriorityClass" => round_trip::<PriorityClass>(obj),
        other => Err(format!("{}: no typed check for kind {other}", object_id(obj))),
    }
}

#[test]
fn every_rendered_object_parses_into_its_kubernetes_type() {
    let with_options = RenderOptions {
        registry: Some("localhost:5000/nk".into()),
        tag: Some("dev".into()),
        region: Some("jp-east-1".into()),
        secret: Some("my-creds".into()),
        ccm_replicas: Some(3),
        overlay: Overlay::Emulator,
        check_rbac: false,
        cluster_instances: Some("k8sworker*,k8smaster1".into()),
        security_group_rules: true,
        security_group_name: Some("k8snodes".into()),
    };
    let mut all = both();
    all.push((Overlay::Emulator, render(&deploy(), &with_options).unwrap()));
    let mut kinds = BTreeSet::new();
    for (overlay, objs) in &all {
        assert!(objs.len() > 20, "{overlay:?}: only {} objects", objs.len());
        for obj in objs {
            kinds.insert(str_at(obj, &["kind"]).to_owned());
            if let Err(e) = check_typed(obj) {
                panic!("{overlay:?}: {e}");
            }
        }
    }
    for k in [
        "Deployment",
        "DaemonSet",
        "CSIDriver",
        "StorageClass",
        "PodDisruptionBudget",
        "Secret",
        "Service",
        "ConfigMap",
    ] {
        assert!(kinds.contains(k), "no {k} rendered");
    }
}

#[test]
fn rbac_matches_the_needs_list_both_ways() {
    let (needs, accounts) = rbac::load_needs(&deploy().join("rbac-needs.yaml")).unwrap();
    assert!(needs.len() > 30, "needs list too short: {}", needs.len());
    for (overlay, objs) in both() {
        let diff = rbac::compare(&needs, &accounts, &objs).unwrap();
        let show = |v: &[rbac::Grant]| v.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  ");
        assert!(
            diff.is_empty(),
            "{overlay:?}:\nmissing:\n  {}\nextra:\n  {}\nunlisted accounts: {:?}",
            show(&diff.missing),
            show(&diff.extra),
            diff.unlisted_accounts
        );
    }
}

#[test]
fn no_role_grants_wildcards_or_binds_cluster_admin() {
    for (overlay, objs) in both() {
        for o in &objs {
            let kind = str_at(o, &["kind"]);
            if kind.ends_with("Binding") {
                assert_ne!(
                    str_at(o, &["roleRef", "name"]),
                    "cluster-admin",
                    "{overlay:?} {}",
                    object_id(o)
                );
            }
            if kind == "ClusterRole" || kind == "Role" {
                let text = o["rules"].to_string();
                assert!(!text.contains("\"*\""), "{overlay:?} {} has a wildcard", object_id(o));
            }
        }
    }
}

#[test]
fn kubectl_kustomize_agrees_with_the_rust_renderer() {
    let Ok(out) = std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
    else {
        eprintln!("skipping: kubectl is not installed");
        return;
    };
    if !out.status.success() {
        eprintln!("skipping: kubectl does not run");
        return;
    }
    for overlay in [Overlay::Production, Overlay::Emulator] {
        let dir = deploy().join("overlays").join(overlay.dir_name());
        let out = std::process::Command::new("kubectl")
            .arg("kustomize")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl kustomize {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs = kustomize::parse_documents(&dir, &String::from_utf8_lossy(&out.stdout)).unwrap();
        let mut theirs = theirs;
        let mut ours = render(&deploy(), &opts(overlay)).unwrap();
        sort_for_apply(&mut theirs);
        sort_for_apply(&mut ours);
        assert_eq!(theirs.len(), ours.len(), "{overlay:?}: object count");
        for (a, b) in theirs.iter().zip(&ours) {
            assert_eq!(a, b, "{overlay:?}: {} differs", object_id(a));
        }
    }
}

fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| str_at(o, &["kind"]) == kind && str_at(o, &["metadata", "name"]) == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn pod_spec(obj: &Value) -> PodSpec {
    serde_json::from_value(obj.pointer("/spec/template/spec").cloned().unwrap()).unwrap()
}

fn env_of(c: &Container, name: &str) -> Option<k8s_openapi::api::core::v1::EnvVar> {
    c.env.as_ref()?.iter().find(|e| e.name == name).cloned()
}

#[test]
fn options_substitute_images_region_secret_and_replicas() {
    let o = RenderOptions {
        registry: Some("localhost:5000/nk/".into()),
        tag: Some("dev".into()),
        region: Some("jp-west-1".into()),
        secret: Some("my-creds".into()),
        ccm_replicas: Some(3),
        overlay: Overlay::Production,
        check_rbac: false,
        cluster_instances: Some("k8sworker*,k8smaster1".into()),
        security_group_rules: true,
        security_group_name: Some("k8snodes".into()),
    };
    let mut objs = render(&deploy(), &o).unwrap();
    let images = our_image_refs(&mut objs);
    assert_eq!(
        images,
        vec![
            "localhost:5000/nk/ccm:dev".to_owned(),
            "localhost:5000/nk/csi:dev".to_owned()
        ]
    );
    let ccm = find(&objs, "Deployment", CCM_DEPLOYMENT);
    assert_eq!(ccm.pointer("/spec/replicas"), Some(&Value::from(3)));
    assert_eq!(
        env_values(&objs, CLUSTER_INSTANCES_ENV),
        vec![(
            "Deployment/kube-system/nifcloud-csi-controller".to_owned(),
            "k8sworker*,k8smaster1".to_owned()
        )]
    );
    for (kind, name) in [
        ("Deployment", CCM_DEPLOYMENT),
        ("Deployment", "nifcloud-csi-controller"),
        ("DaemonSet", "nifcloud-csi-node"),
    ] {
        let spec = pod_spec(find(&objs, kind, name));
        let c = &spec.containers[0];
        assert_eq!(
            env_of(c, "NIFCLOUD_REGION").and_then(|e| e.value).as_deref(),
            Some("jp-west-1"),
            "{name}"
        );
        for key in CREDENTIAL_ENV {
            let r = env_of(c, key)
                .and_then(|e| e.value_from)
                .and_then(|v| v.secret_key_ref)
                .unwrap();
            assert_eq!(r.name, "my-creds", "{name} {key}");
        }
    }
    // sidecar images are never rewritten
    let ctrl = pod_spec(find(&objs, "Deployment", "nifcloud-csi-controller"));
    assert!(
        ctrl.containers
            .iter()
            .any(|c| c.image.as_deref() == Some("registry.k8s.io/sig-storage/csi-provisioner:v5.3.0"))
    );

    let bad = [
        RenderOptions {
            ccm_replicas: Some(0),
            ..RenderOptions::default()
        },
        RenderOptions {
            region: Some("jp east".into()),
            ..RenderOptions::default()
        },
        RenderOptions {
            region: Some("jp-west-1".into()),
            overlay: Overlay::Emulator,
            ..RenderOptions::default()
        },
        RenderOptions {
            secret: Some(String::new()),
            ..RenderOptions::default()
        },
    ];
    for b in bad {
        assert!(
            matches!(render(&deploy(), &b), Err(RenderError::Option { .. })),
            "{b:?} accepted"
        );
    }
}

fn ccm_args(objs: &[Value]) -> Vec<String> {
    pod_spec(find(objs, "Deployment", CCM_DEPLOYMENT)).containers[0]
        .args
        .clone()
        .unwrap_or_default()
}

#[test]
fn security_group_options_become_ccm_flags() {
    for overlay in [Overlay::Production, Overlay::Emulator] {
        let plain = render(&deploy(), &opts(overlay)).unwrap();
        assert!(
            !ccm_args(&plain).iter().any(|a| a.starts_with("--security-group")),
            "{overlay:?}: off unless asked for (the cloud config decides)"
        );
        let o = RenderOptions {
            security_group_rules: true,
            security_group_name: Some("k8snodes".into()),
            ..opts(overlay)
        };
        let mut objs = render(&deploy(), &o).unwrap();
        let args = ccm_args(&objs);
        assert_eq!(
            args[args.len() - 2..],
            ["--security-group-rules=true", "--security-group-name=k8snodes"],
            "{overlay:?}"
        );
        // applied again, a flag replaces itself; only the CCM gets them
        apply_options(&mut objs, &o).unwrap();
        assert_eq!(ccm_args(&objs), args);
        let others = objs
            .iter()
            .filter(|o| str_at(o, &["metadata", "name"]) != CCM_DEPLOYMENT)
            .map(Value::to_string)
            .collect::<String>();
        assert!(!others.contains("--security-group"));
        // the name alone (the cloud config may switch the rules on)
        let name_only = RenderOptions {
            security_group_name: Some("fw1".into()),
            ..opts(overlay)
        };
        let args = ccm_args(&render(&deploy(), &name_only).unwrap());
        assert_eq!(args.last().map(String::as_str), Some("--security-group-name=fw1"));
        assert!(!args.iter().any(|a| a.starts_with("--security-group-rules")));
    }
    for bad in ["", "k8s-nodes", "k8s_nodes", "abcdefghijklmnop"] {
        let o = RenderOptions {
            security_group_rules: true,
            security_group_name: Some(bad.into()),
            ..RenderOptions::default()
        };
        assert!(
            matches!(
                render(&deploy(), &o),
                Err(RenderError::Option {
                    option: "--security-group-name",
                    ..
                })
            ),
            "{bad:?} accepted"
        );
    }
}

/// The CCM's placement works on one control-plane node and spreads over several: replicas that the port keeps
/// apart, preferred (never required) anti-affinity, an update strategy that does not need two nodes, and a
/// disruption budget that never blocks a drain.
#[test]
fn ccm_fits_one_or_several_control_plane_nodes() {
    for (overlay, objs) in both() {
        let dep: Deployment = serde_json::from_value(find(&objs, "Deployment", CCM_DEPLOYMENT).clone()).unwrap();
        let spec = dep.spec.unwrap();
        let want = if overlay == Overlay::Production { 2 } else { 1 };
        assert_eq!(spec.replicas, Some(want), "{overlay:?}");
        assert_eq!(
            spec.strategy.and_then(|s| s.type_).as_deref(),
            Some("Recreate"),
            "{overlay:?}: a rolling update cannot progress on one node when the old pod holds the port"
        );
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.host_network, Some(true));
        let port = &pod.containers[0].ports.as_ref().unwrap()[0];
        assert_eq!(
            port.container_port, 10258,
            "the port that keeps replicas on different nodes"
        );
        let anti = pod.affinity.unwrap().pod_anti_affinity.unwrap();
        assert!(
            anti.required_during_scheduling_ignored_during_execution.is_none(),
            "required anti-affinity is not needed"
        );
        let preferred = anti.preferred_during_scheduling_ignored_during_execution.unwrap();
        assert_eq!(preferred[0].pod_affinity_term.topology_key, "kubernetes.io/hostname");

        let pdb: PodDisruptionBudget =
            serde_json::from_value(find(&objs, "PodDisruptionBudget", CCM_DEPLOYMENT).clone()).unwrap();
        let pdb = pdb.spec.unwrap();
        assert_eq!(pdb.min_available, None);
        assert_eq!(
            pdb.max_unavailable,
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
                "100%".into()
            )),
            "{overlay:?}: a budget below 100% blocks draining a single control-plane node"
        );
    }
}

#[test]
fn ccm_mounts_the_cloud_config_it_is_given() {
    for (overlay, objs) in both() {
        let pod = pod_spec(find(&objs, "Deployment", CCM_DEPLOYMENT));
        let c = &pod.containers[0];
        let path = c
            .args
            .iter()
            .flatten()
            .find_map(|a| a.strip_prefix("--cloud-config="))
            .expect("--cloud-config");
        let (dir, file) = path.rsplit_once('/').unwrap();
        let mount = c
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path == dir)
            .unwrap_or_else(|| panic!("{overlay:?}: nothing mounted at {dir}"));
        assert_eq!(mount.read_only, Some(true));
        let volume = pod.volumes.iter().flatten().find(|v| v.name == mount.name).unwrap();
        let cm_name = volume.config_map.as_ref().unwrap().name.clone();
        let cm = find(&objs, "ConfigMap", &cm_name);
        assert!(
            str_at(cm, &["data", file]).contains("manageRules: false"),
            "{overlay:?}: ConfigMap {cm_name} has no {file} with the defaults"
        );
    }
}

#[test]
fn production_ships_no_secret_and_emulator_uses_its_own() {
    let prod = render(&deploy(), &opts(Overlay::Production)).unwrap();
    assert!(
        prod.iter().all(|o| str_at(o, &["kind"]) != "Secret"),
        "production must not overwrite user credentials"
    );
    assert!(prod.iter().all(|o| !o.to_string().contains("NIFCLOUD_ENDPOINT_URL")));

    let emu = render(&deploy(), &opts(Overlay::Emulator)).unwrap();
    let secret = find(&emu, "Secret", "nifcloud-emulator-credentials");
    assert_ne!(str_at(secret, &["metadata", "name"]), DEFAULT_SECRET);
    for (kind, name) in [
        ("Deployment", CCM_DEPLOYMENT),
        ("Deployment", "nifcloud-csi-controller"),
        ("DaemonSet", "nifcloud-csi-node"),
    ] {
        let c = pod_spec(find(&emu, kind, name)).containers.remove(0);
        assert_eq!(
            env_of(&c, "NIFCLOUD_ENDPOINT_URL").and_then(|e| e.value).as_deref(),
            Some("http://nifcloud-emulator.kube-system.svc:8080"),
            "{name}"
        );
        for key in CREDENTIAL_ENV {
            let r = env_of(&c, key)
                .and_then(|e| e.value_from)
                .and_then(|v| v.secret_key_ref)
                .unwrap();
            assert_eq!(r.name, "nifcloud-emulator-credentials", "{name} {key}");
        }
    }
    let ccm = pod_spec(find(&emu, "Deployment", CCM_DEPLOYMENT));
    assert_eq!(ccm.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));
    // the emulator's config and its Secret carry the same keys
    let cfg: Value = serde_saphyr::from_str_with_options(
        str_at(
            find(&emu, "ConfigMap", "nifcloud-emulator-config"),
            &["data", "config.yaml"],
        ),
        kustomize::yaml_options(),
    )
    .unwrap();
    let key = str_at(secret, &["stringData", "access-key-id"]);
    assert_eq!(
        cfg["credentials"][key].as_str(),
        Some(str_at(secret, &["stringData", "secret-access-key"]))
    );
}

#[test]
fn workloads_follow_the_deployment_policy() {
    let objs = render(&deploy(), &opts(Overlay::Production)).unwrap();
    // CCM: 2 replicas, control plane, hostNetwork, tolerations, critical, hardened.
    let ccm_obj = find(&objs, "Deployment", CCM_DEPLOYMENT);
    assert_eq!(ccm_obj.pointer("/spec/replicas"), Some(&Value::from(2)));
    let ccm = pod_spec(ccm_obj);
    assert_eq!(ccm.host_network, Some(true));
    assert_eq!(ccm.priority_class_name.as_deref(), Some("system-cluster-critical"));
    assert!(
        ccm.node_selector
            .as_ref()
            .unwrap()
            .contains_key("node-role.kubernetes.io/control-plane")
    );
    let tol: Vec<String> = ccm.tolerations.iter().flatten().filter_map(|t| t.key.clone()).collect();
    for t in [
        "node.cloudprovider.kubernetes.io/uninitialized",
        "node-role.kubernetes.io/control-plane",
        "node.kubernetes.io/not-ready",
    ] {
        assert!(tol.iter().any(|k| k == t), "CCM does not tolerate {t}");
    }
    assert!(
        ccm.affinity
            .as_ref()
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .is_some()
    );
    let args = ccm.containers[0].args.clone().unwrap_or_default();
    for a in ["--leader-elect=true", "--metrics-bind-address=0.0.0.0:10258"] {
        assert!(args.iter().any(|x| x == a), "CCM args lack {a}");
    }
    // CSI controller sidecars with the required flags.
    let ctrl = pod_spec(find(&objs, "Deployment", "nifcloud-csi-controller"));
    let sidecar = |name: &str| {
        ctrl.containers
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .clone()
    };
    let prov = sidecar("csi-provisioner").args.unwrap();
    for a in [
        "--feature-gates=Topology=true",
        "--extra-create-metadata",
        "--leader-election",
        "--default-fstype=ext4",
    ] {
        assert!(prov.iter().any(|x| x == a), "provisioner lacks {a}");
    }
    assert!(prov.iter().any(|x| x.starts_with("--timeout=")));
    for s in ["csi-attacher", "csi-resizer"] {
        assert!(
            sidecar(s).args.unwrap().iter().any(|x| x == "--leader-election"),
            "{s} without leader election"
        );
    }
    assert!(sidecar("liveness-probe").image.unwrap().contains("livenessprobe:v2."));
    // Node plugin: the only privileged container, Bidirectional kubelet mount, /dev and /sys, NODE_NAME.
    let node = pod_spec(find(&objs, "DaemonSet", "nifcloud-csi-node"));
    let driver = &node.containers[0];
    let mounts = driver.volume_mounts.clone().unwrap();
    let kubelet = mounts.iter().find(|m| m.mount_path == "/var/lib/kubelet").unwrap();
    assert_eq!(kubelet.mount_propagation.as_deref(), Some("Bidirectional"));
    assert!(mounts.iter().any(|m| m.mount_path == "/dev") && mounts.iter().any(|m| m.mount_path == "/sys"));
    let nn = env_of(driver, "NODE_NAME")
        .and_then(|e| e.value_from)
        .and_then(|v| v.field_ref)
        .unwrap();
    assert_eq!(nn.field_path, "spec.nodeName");
    assert!(node.containers.iter().any(|c| c.name == "node-driver-registrar"));
    let csidriver: CSIDriver =
        serde_json::from_value(find(&objs, "CSIDriver", "additional-storage.csi.nifcloud.com").clone()).unwrap();
    assert_eq!(csidriver.spec.attach_required, Some(true));
    assert_eq!(csidriver.spec.fs_group_policy.as_deref(), Some("File"));

    for o in objs.iter().filter(|o| o.pointer("/spec/template/spec").is_some()) {
        let spec = pod_spec(o);
        for c in &spec.containers {
            let id = format!("{} {}", object_id(o), c.name);
            let res = c.resources.clone().unwrap_or_default();
            assert!(
                res.requests
                    .as_ref()
                    .is_some_and(|r| r.contains_key("cpu") && r.contains_key("memory")),
                "{id}: requests"
            );
            assert!(
                res.limits.as_ref().is_some_and(|r| r.contains_key("memory")),
                "{id}: memory limit"
            );
            let sc = c.security_context.clone().unwrap_or_default();
            let privileged = sc.privileged == Some(true);
            let is_node_plugin = str_at(o, &["metadata", "name"]) == "nifcloud-csi-node" && c.name == "csi-driver";
            assert_eq!(privileged, is_node_plugin, "{id}: privileged only for the node plugin");
            if !privileged {
                assert_eq!(sc.read_only_root_filesystem, Some(true), "{id}: read-only root");
                assert_eq!(
                    sc.allow_privilege_escalation,
                    Some(false),
                    "{id}: no privilege escalation"
                );
            }
            if c.image
                .as_deref()
                .is_some_and(|i| i.starts_with("ghcr.io/nifcloud-k8s/"))
            {
                assert!(
                    c.liveness_probe.is_some() && c.readiness_probe.is_some(),
                    "{id}: probes"
                );
            }
        }
        assert!(spec.priority_class_name.is_some(), "{}: priority class", object_id(o));
    }
    for sc in objs.iter().filter(|o| str_at(o, &["kind"]) == "StorageClass") {
        let sc: StorageClass = serde_json::from_value(sc.clone()).unwrap();
        assert_eq!(sc.volume_binding_mode.as_deref(), Some("WaitForFirstConsumer"));
        assert_eq!(sc.allow_volume_expansion, Some(true));
        let p = sc.parameters.unwrap();
        assert!(
            p.contains_key("type") && p.contains_key("accountingType") && p.contains_key("csi.storage.k8s.io/fstype")
        );
    }
}

#[test]
fn yaml_output_reparses_to_the_same_objects() {
    for (overlay, objs) in both() {
        let text = to_yaml(&objs).unwrap();
        let back = kustomize::parse_documents(std::path::Path::new("render"), &text).unwrap();
        assert_eq!(back, objs, "{overlay:?}");
    }
}
