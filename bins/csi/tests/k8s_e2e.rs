//! The CSI controller binary behind the real Kubernetes storage stack: csi-provisioner, csi-attacher and
//! csi-resizer (from `../shared/harness`) on a real kube-apiserver with the kube-controller-manager's volume
//! binding, and the emulator as NIFCLOUD. The test plays the parts the harness lacks: the scheduler (the
//! `volume.kubernetes.io/selected-node` annotation), the kubelet's registration (Node labels and the CSINode
//! object with the driver's topology keys) and the attach-detach controller (VolumeAttachment objects).
//!
//! The sidecars run as the controller's ServiceAccount with the RBAC the project ships
//! (`deploy/base/csi/rbac-controller.yaml`, applied as it is): a permission missing there fails here.
//!
//! Checks, as a new user's claims would meet them:
//! - a ReadWriteOnce and a ReadWriteOncePod claim of 10Gi (the article's) are Bound to PVs of `100Gi` in the
//!   selected node's zone, backed by 100 GB disks there;
//! - attaching sets `attached: true` with the disk's SCSI device in the attachment metadata;
//! - a resize to 150Gi ends at `200Gi` (one NIFCLOUD step, not two);
//! - a StorageClass with a bad parameter gets a ProvisioningFailed Event naming the parameter, and no disk;
//! - a claim created with VolumeAttributesClass `payg` (pay-per-use) and switched to class `monthly` gets its
//!   `status.currentVolumeAttributesClassName` updated by csi-resizer, and its disk monthly billing from next month;
//! - detaching and deleting the claims leave no disk in the emulator.
//!
//! Needs the harness; says why it skips without it (fails instead under `NIFCLOUD_REQUIRE_HARNESS=1`, as in CI).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use k8s_harness::eventually;
use k8s_openapi::api::core::v1::{
    Event, Namespace, Node, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    VolumeResourceRequirements,
};
use k8s_openapi::api::storage::v1::{
    CSIDriver, CSIDriverSpec, CSINode, CSINodeDriver, CSINodeSpec, StorageClass, VolumeAttachment,
    VolumeAttachmentSource, VolumeAttachmentSpec, VolumeNodeResources,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use nifcloud_csi::DRIVER_NAME;
use nifcloud_csi::topology::{DRIVER_ZONE_KEY, ZONE_KEY};
use nifcloud_emulator::{Emulator, EmulatorConfig, InstanceConfig};

const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// Label on every object this test creates, so a run can remove what an interrupted one left behind.
const OWNER_LABEL: (&str, &str) = ("app.kubernetes.io/managed-by", "nifcloud-csi-k8s-e2e");
/// Prefix of this test's StorageClasses (the PVs provisioned from them are this test's too).
const CLASS_PREFIX: &str = "nifcloud-e2e-";
const WAIT: Duration = Duration::from_secs(120);

/// The sidecars and the driver, with their logs; the logs' tails are printed when the test fails.
struct Stack {
    procs: Vec<(Proc, PathBuf)>,
}

impl Stack {
    fn check_running(&mut self) {
        for (p, log) in &mut self.procs {
            p.assert_running(log);
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (p, log) in &self.procs {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                eprintln!(
                    "--- {} (last lines of {}) ---\n{}",
                    p.name,
                    log.display(),
                    lines[lines.len().saturating_sub(25)..].join("\n")
                );
            }
        }
    }
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        labels: Some(BTreeMap::from([(OWNER_LABEL.0.to_string(), OWNER_LABEL.1.to_string())])),
        ..Default::default()
    }
}

/// `storage.k8s.io/v1` VolumeAttributesClass (GA in Kubernetes 1.34; newer than the API types this workspace
/// builds with, so handled as a dynamic object).
fn vac_resource() -> ApiResource {
    ApiResource {
        group: "storage.k8s.io".into(),
        version: "v1".into(),
        api_version: "storage.k8s.io/v1".into(),
        kind: "VolumeAttributesClass".into(),
        plural: "volumeattributesclasses".into(),
    }
}

fn attributes_class(name: &str, accounting: &str) -> DynamicObject {
    let mut vac = DynamicObject::new(name, &vac_resource()).data(serde_json::json!({
        "driverName": DRIVER_NAME,
        "parameters": {"accountingType": accounting},
    }));
    vac.metadata.labels = meta(name).labels;
    vac
}

/// (accountingType, nextMonthAccountingType) of emulated disk `id`.
fn billing(emu: &Emulator, id: &str) -> (String, String) {
    emu.with_state(|st| {
        let v = &st.volumes[id];
        (v.accounting_type.clone(), v.next_month_accounting_type.clone())
    })
}

/// A claim's `status.currentVolumeAttributesClassName` and `status.modifyVolumeStatus`, as printed.
fn vac_status(c: &PersistentVolumeClaim) -> (Option<String>, String) {
    let status = c.status.clone().unwrap_or_default();
    let modify = status
        .modify_volume_status
        .map(|m| format!("{} -> {:?}", m.status, m.target_volume_attributes_class_name))
        .unwrap_or_else(|| "none".into());
    (status.current_volume_attributes_class_name, modify)
}

/// Waits until claim `name`'s current VolumeAttributesClass is `class`; returns its [`vac_status`].
async fn current_class(claims: &Api<PersistentVolumeClaim>, name: &str, class: &str) -> (Option<String>, String) {
    eventually(&format!("claim {name}'s current class {class}"), WAIT, || async {
        let c = claims
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("get claim {name}: {e}"));
        (vac_status(&c).0.as_deref() == Some(class)).then(|| vac_status(&c))
    })
    .await
}

/// Deletes every object of this test (labelled, or a PV of one of its classes), finalizers included: the
/// sidecars that would remove them may be gone when a run was interrupted.
async fn remove_test_objects(client: &Client) {
    let labelled = ListParams::default().labels(&format!("{}={}", OWNER_LABEL.0, OWNER_LABEL.1));
    let unfinalize = Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}}));
    let (pp, dp) = (PatchParams::default(), DeleteParams::default());
    let attachments: Api<VolumeAttachment> = Api::all(client.clone());
    for va in attachments.list(&labelled).await.map(|l| l.items).unwrap_or_default() {
        let name = va.metadata.name.unwrap_or_default();
        let _ = attachments.patch(&name, &pp, &unfinalize).await;
        let _ = attachments.delete(&name, &dp).await;
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in namespaces.list(&labelled).await.map(|l| l.items).unwrap_or_default() {
        let name = ns.metadata.name.unwrap_or_default();
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &name);
        for c in claims
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
        {
            let claim = c.metadata.name.unwrap_or_default();
            let _ = claims.patch(&claim, &pp, &unfinalize).await;
            let _ = claims.delete(&claim, &dp).await;
        }
        let _ = namespaces.delete(&name, &dp).await;
    }
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    for pv in pvs
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        let ours = pv
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.as_deref())
            .is_some_and(|c| c.starts_with(CLASS_PREFIX));
        if ours {
            let name = pv.metadata.name.unwrap_or_default();
            let _ = pvs.patch(&name, &pp, &unfinalize).await;
            let _ = pvs.delete(&name, &dp).await;
        }
    }
    let classes: Api<StorageClass> = Api::all(client.clone());
    let _ = classes.delete_collection(&dp, &labelled).await;
    let csinodes: Api<CSINode> = Api::all(client.clone());
    let _ = csinodes.delete_collection(&dp, &labelled).await;
    let nodes: Api<Node> = Api::all(client.clone());
    let _ = nodes.delete_collection(&dp, &labelled).await;
    let drivers: Api<CSIDriver> = Api::all(client.clone());
    let _ = drivers.delete_collection(&dp, &labelled).await;
    let vacs: Api<DynamicObject> = Api::all_with(client.clone(), &vac_resource());
    let _ = vacs.delete_collection(&dp, &labelled).await;
    for (group, version, kind, ns) in [
        ("", "v1", "ServiceAccount", Some("kube-system")),
        ("rbac.authorization.k8s.io", "v1", "ClusterRole", None),
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", None),
        ("rbac.authorization.k8s.io", "v1", "Role", Some("kube-system")),
        ("rbac.authorization.k8s.io", "v1", "RoleBinding", Some("kube-system")),
    ] {
        let resource = ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(group, version, kind));
        let api: Api<DynamicObject> = match ns {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let _ = api.delete_collection(&dp, &labelled).await;
    }
}

fn node(name: &str, zone: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            labels: Some(BTreeMap::from([
                (OWNER_LABEL.0.to_string(), OWNER_LABEL.1.to_string()),
                ("kubernetes.io/hostname".to_string(), name.to_string()),
                (ZONE_KEY.to_string(), zone.to_string()),
                (DRIVER_ZONE_KEY.to_string(), zone.to_string()),
            ])),
            ..meta(name)
        },
        ..Default::default()
    }
}

/// What the kubelet registers for the driver on `node` (NodeGetInfo: node id = server name, both zone keys).
fn csinode(name: &str) -> CSINode {
    CSINode {
        metadata: meta(name),
        spec: CSINodeSpec {
            drivers: vec![CSINodeDriver {
                name: DRIVER_NAME.into(),
                node_id: name.into(),
                topology_keys: Some(vec![ZONE_KEY.into(), DRIVER_ZONE_KEY.into()]),
                allocatable: Some(VolumeNodeResources { count: Some(14) }),
            }],
        },
    }
}

fn storage_class(name: &str, params: &[(&str, &str)]) -> StorageClass {
    StorageClass {
        metadata: meta(name),
        provisioner: DRIVER_NAME.into(),
        parameters: Some(params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        reclaim_policy: Some("Delete".into()),
        volume_binding_mode: Some("WaitForFirstConsumer".into()),
        allow_volume_expansion: Some(true),
        ..Default::default()
    }
}

fn claim(name: &str, class: &str, mode: &str, size: &str, selected_node: &str) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            // The scheduler's choice for the claim's first consumer.
            annotations: Some(BTreeMap::from([(SELECTED_NODE.to_string(), selected_node.to_string())])),
            ..meta(name)
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec![mode.into()]),
            storage_class_name: Some(class.into()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity(size.into()))])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The controller's ServiceAccount and RBAC as shipped.
const RBAC_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/base/csi/rbac-controller.yaml"
);

/// Applies the shipped RBAC of the CSI controller (labelled as this test's) and returns a kubeconfig that
/// authenticates as its ServiceAccount, for the sidecars.
async fn controller_identity(client: &Client, admin_kubeconfig: &Path, dir: &Path) -> PathBuf {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let text = std::fs::read_to_string(RBAC_FILE).expect("read the shipped RBAC");
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).expect("parse the shipped RBAC");
    let mut account = None;
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let mut obj: DynamicObject = serde_json::from_value(doc).expect("a Kubernetes object");
        let types = obj.types.clone().expect("apiVersion and kind");
        let gvk = kube::api::GroupVersionKind::try_from(&types).expect("group/version/kind");
        let resource = ApiResource::from_gvk(&gvk);
        obj.metadata
            .labels
            .get_or_insert_default()
            .insert(OWNER_LABEL.0.into(), OWNER_LABEL.1.into());
        let name = obj.metadata.name.clone().unwrap_or_default();
        let api: Api<DynamicObject> = match obj.metadata.namespace.as_deref() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        api.patch(
            &name,
            &PatchParams::apply("nifcloud-csi-k8s-e2e").force(),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {} {name}: {e}", types.kind));
        if types.kind == "ServiceAccount" {
            account = Some((obj.metadata.namespace.clone().unwrap_or_default(), name));
        }
    }
    let (ns, name) = account.expect("the shipped RBAC has the controller's ServiceAccount");
    let token = Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .create_token_request(
            &name,
            &PostParams::default(),
            &TokenRequest {
                spec: TokenRequestSpec {
                    audiences: vec![],
                    expiration_seconds: Some(3600),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("a token of the controller's ServiceAccount")
        .status
        .expect("token")
        .token;
    let mut kubeconfig = kube::config::Kubeconfig::read_from(admin_kubeconfig).expect("admin kubeconfig");
    for user in &mut kubeconfig.auth_infos {
        if let Some(auth) = user.auth_info.as_mut() {
            auth.token = Some(token.clone().into());
        }
    }
    let path = dir.join("controller.kubeconfig");
    std::fs::write(&path, serde_json::to_vec(&kubeconfig).expect("kubeconfig JSON")).expect("write kubeconfig");
    path
}

fn sidecar(
    kubeconfig: &Path,
    harness: &k8s_harness::Harness,
    name: &str,
    sock: &Path,
    dir: &Path,
    extra: &[&str],
) -> (Proc, PathBuf) {
    let log = dir.join(format!("{name}.log"));
    let mut cmd = Command::new(harness.tool(name));
    cmd.arg(format!("--csi-address={}", sock.display()))
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args(["--leader-election=false", "--v=4"])
        .args(extra);
    (Proc::spawn(name, &mut cmd, &log), log)
}

/// The PV a claim is bound to, once Bound.
async fn bound_pv(claims: &Api<PersistentVolumeClaim>, pvs: &Api<PersistentVolume>, name: &str) -> PersistentVolume {
    let pv_name = eventually(&format!("claim {name} Bound"), WAIT, || async move {
        let c = claims
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("get claim {name}: {e}"));
        (c.status.as_ref()?.phase.as_deref() == Some("Bound"))
            .then(|| c.spec?.volume_name)
            .flatten()
    })
    .await;
    pvs.get(&pv_name).await.expect("the bound PV")
}

fn capacity(pv: &PersistentVolume) -> String {
    pv.spec
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .map(|q| q.0.clone())
        .unwrap_or_default()
}

/// The zone values of the PV's required node affinity.
fn affinity_zones(pv: &PersistentVolume) -> Vec<String> {
    pv.spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
        .map(|r| {
            r.node_selector_terms
                .iter()
                .flat_map(|t| t.match_expressions.iter().flatten())
                .filter(|e| e.key == ZONE_KEY || e.key == DRIVER_ZONE_KEY)
                .flat_map(|e| e.values.iter().flatten().cloned())
                .collect()
        })
        .unwrap_or_default()
}

fn volume_handle(pv: &PersistentVolume) -> String {
    pv.spec
        .as_ref()
        .and_then(|s| s.csi.as_ref())
        .map(|c| c.volume_handle.clone())
        .unwrap_or_default()
}

/// (zone, size GB, attached server) of emulated disk `id`.
fn disk(emu: &Emulator, id: &str) -> Option<(String, u32, Option<String>)> {
    emu.with_state(|st| {
        st.volumes.get(id).map(|v| {
            let server = v.attachment.as_ref().map(|a| st.instance_name(&a.instance_unique_id));
            (v.zone.clone(), v.size_gb, server)
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_provision_attach_resize_and_delete_through_the_real_sidecars() {
    const TEST: &str = "claims_provision_attach_resize_and_delete_through_the_real_sidecars";
    let Some(harness) = k8s_harness::harness(TEST, false) else {
        return;
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(&harness.kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("kube config");
    let client = Client::try_from(config).expect("kube client");
    remove_test_objects(&client).await;

    // Two servers of this cluster in two zones; nodes carry the servers' names (as kubeadm on NIFCLOUD does).
    let sfx = format!("{:06x}", std::process::id() & 0xff_ffff);
    let (node_a, node_b) = (format!("csie2e{sfx}a"), format!("csie2e{sfx}b"));
    let emu = Emulator::builder()
        .config(EmulatorConfig {
            instances: vec![
                InstanceConfig::new(&node_a, "east-11"),
                InstanceConfig::new(&node_b, "east-12"),
            ],
            ..EmulatorConfig::default()
        })
        .start()
        .await
        .unwrap();

    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let sock = dir.join("csi.sock");
    let driver_log = dir.join("nifcloud-csi-driver.log");
    let mut drv = Proc::spawn(
        "nifcloud-csi-driver",
        driver(&emu)
            .args(["--mode", "controller", "--poll-interval-ms", "200"])
            .arg(format!("--cluster-instances=csie2e{sfx}*"))
            .arg(format!("--endpoint=unix://{}", sock.display())),
        &driver_log,
    );
    wait_for_socket(&sock, &mut drv, &driver_log).await;
    let identity = controller_identity(&client, &harness.kubeconfig, dir).await;
    // The deployed sidecars' flags (deploy/base/csi/controller.yaml), without leader election and with short
    // retries for a test.
    let mut stack = Stack {
        procs: vec![
            (drv, driver_log),
            sidecar(
                &identity,
                &harness,
                "csi-provisioner",
                &sock,
                dir,
                &[
                    "--feature-gates=Topology=true",
                    "--extra-create-metadata",
                    "--default-fstype=ext4",
                    "--timeout=60s",
                    "--retry-interval-start=500ms",
                    "--retry-interval-max=5s",
                ],
            ),
            sidecar(&identity, &harness, "csi-attacher", &sock, dir, &["--timeout=60s"]),
            sidecar(&identity, &harness, "csi-resizer", &sock, dir, &["--timeout=60s"]),
        ],
    };

    // The kubelet's registration and the driver object.
    let nodes: Api<Node> = Api::all(client.clone());
    let csinodes: Api<CSINode> = Api::all(client.clone());
    let drivers: Api<CSIDriver> = Api::all(client.clone());
    let classes: Api<StorageClass> = Api::all(client.clone());
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let attachments: Api<VolumeAttachment> = Api::all(client.clone());
    let pp = PostParams::default();
    match drivers
        .create(
            &pp,
            &CSIDriver {
                metadata: meta(DRIVER_NAME),
                spec: CSIDriverSpec {
                    attach_required: Some(true),
                    ..Default::default()
                },
            },
        )
        .await
    {
        Ok(_) => {}
        // Another suite's: left alone (only this test's labelled objects are removed).
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("create CSIDriver: {e}"),
    }
    for (name, zone) in [(&node_a, "east-11"), (&node_b, "east-12")] {
        nodes.create(&pp, &node(name, zone)).await.expect("create Node");
        csinodes.create(&pp, &csinode(name)).await.expect("create CSINode");
    }
    let ns_name = format!("csi-e2e-{sfx}");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &pp,
            &Namespace {
                metadata: meta(&ns_name),
                ..Default::default()
            },
        )
        .await
        .expect("create Namespace");
    let (good_class, bad_class) = (format!("nifcloud-e2e-{sfx}"), format!("nifcloud-e2e-bad-{sfx}"));
    classes
        .create(
            &pp,
            &storage_class(
                &good_class,
                &[("type", "standard-flash-a"), ("csi.storage.k8s.io/fstype", "ext4")],
            ),
        )
        .await
        .expect("create StorageClass");
    classes
        .create(&pp, &storage_class(&bad_class, &[("type", "gp3")]))
        .await
        .expect("create bad StorageClass");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns_name);

    // 1. The article's claim (ReadWriteOnce, 10Gi) on node B (east-12) and a ReadWriteOncePod one on node A (east-11).
    claims
        .create(&pp, &claim("www", &good_class, "ReadWriteOnce", "10Gi", &node_b))
        .await
        .unwrap();
    claims
        .create(&pp, &claim("db", &good_class, "ReadWriteOncePod", "10Gi", &node_a))
        .await
        .unwrap();
    let mut observed = Vec::new();
    let mut handles = BTreeMap::new();
    for (name, zone, mode) in [
        ("www", "east-12", "ReadWriteOnce"),
        ("db", "east-11", "ReadWriteOncePod"),
    ] {
        let pv = bound_pv(&claims, &pvs, name).await;
        stack.check_running();
        let handle = volume_handle(&pv);
        let (disk_zone, size_gb, attached) = disk(&emu, &handle).expect("the PV's disk exists in the emulator");
        let line = format!(
            "claim {name} ({mode}, 10Gi) -> PV {} capacity {} zone {:?}; disk {handle}: {size_gb} GB in {disk_zone}",
            pv.metadata.name.as_deref().unwrap_or_default(),
            capacity(&pv),
            affinity_zones(&pv)
        );
        println!("{line}");
        observed.push(line);
        assert_eq!(
            capacity(&pv),
            "100Gi",
            "{name}: a 10Gi claim gets one 100 GB step, shown as 100Gi"
        );
        assert_eq!(
            pv.spec.as_ref().and_then(|s| s.access_modes.clone()),
            Some(vec![mode.to_string()])
        );
        assert!(
            affinity_zones(&pv).iter().all(|z| z == zone) && !affinity_zones(&pv).is_empty(),
            "{name}: the PV must be pinned to the selected node's zone {zone}: {:?}",
            affinity_zones(&pv)
        );
        assert_eq!((disk_zone.as_str(), size_gb, attached), (zone, 100, None));
        handles.insert(name, (handle, pv.metadata.name.clone().unwrap_or_default()));
    }

    // 2. Attach (the attach-detach controller's part): www to node B.
    let (www_disk, www_pv) = handles["www"].clone();
    let va_name = format!("csi-e2e-{sfx}-www");
    attachments
        .create(
            &pp,
            &VolumeAttachment {
                metadata: meta(&va_name),
                spec: VolumeAttachmentSpec {
                    attacher: DRIVER_NAME.into(),
                    node_name: node_b.clone(),
                    source: VolumeAttachmentSource {
                        persistent_volume_name: Some(www_pv.clone()),
                        ..Default::default()
                    },
                },
                status: None,
            },
        )
        .await
        .expect("create VolumeAttachment");
    let device = eventually("the VolumeAttachment attached", WAIT, || async {
        let status = attachments
            .get(&va_name)
            .await
            .unwrap_or_else(|e| panic!("get VolumeAttachment {va_name}: {e}"))
            .status?;
        status
            .attached
            .then(|| {
                status
                    .attachment_metadata
                    .unwrap_or_default()
                    .get("devicePath")
                    .cloned()
            })
            .flatten()
    })
    .await;
    println!("VolumeAttachment {va_name}: attached=true devicePath={device:?}");
    assert!(device.starts_with("SCSI (0:") && device.ends_with(')'), "{device}");
    assert_eq!(disk(&emu, &www_disk).unwrap().2.as_deref(), Some(node_b.as_str()));
    observed.push(format!("attach www to {node_b}: attached=true devicePath={device}"));

    // 3. Resize to 150Gi: one ExtendVolumeSize step, 100 GB -> 200 GB, shown as 200Gi.
    claims
        .patch(
            "www",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"resources": {"requests": {"storage": "150Gi"}}}})),
        )
        .await
        .expect("resize the claim");
    let grown = eventually("the PV grown to 200Gi", WAIT, || async {
        let pv = pvs
            .get(&www_pv)
            .await
            .unwrap_or_else(|e| panic!("get PV {www_pv}: {e}"));
        (capacity(&pv) == "200Gi").then_some(pv)
    })
    .await;
    assert_eq!(disk(&emu, &www_disk).unwrap().1, 200, "one step, never two");
    let conditions: Vec<String> = claims
        .get("www")
        .await
        .unwrap()
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.type_)
        .collect();
    println!(
        "resize www to 150Gi -> PV capacity {} (claim conditions {conditions:?})",
        capacity(&grown)
    );
    observed.push(format!("resize www to 150Gi -> PV {}", capacity(&grown)));

    // 4. A StorageClass with a bad parameter: a ProvisioningFailed Event naming it, no disk.
    let disks_before = emu.with_state(|st| st.volumes.len());
    claims
        .create(&pp, &claim("bad", &bad_class, "ReadWriteOnce", "10Gi", &node_a))
        .await
        .unwrap();
    let events: Api<Event> = Api::namespaced(client.clone(), &ns_name);
    let message = eventually("a ProvisioningFailed Event on the bad claim", WAIT, || async {
        let list = events
            .list(&ListParams::default().fields("involvedObject.name=bad"))
            .await
            .unwrap_or_else(|e| panic!("list the bad claim's Events: {e}"));
        list.items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("ProvisioningFailed"))
            .and_then(|e| e.message)
    })
    .await;
    println!("bad StorageClass -> ProvisioningFailed: {message}");
    assert!(
        message.contains("\"type\"") && message.contains("gp3") && message.contains("InvalidArgument"),
        "the Event must name the parameter: {message}"
    );
    assert_eq!(
        emu.with_state(|st| st.volumes.len()),
        disks_before,
        "no disk for a bad claim"
    );
    observed.push(format!("bad StorageClass -> ProvisioningFailed: {message}"));

    // 5. VolumeAttributesClass: created pay-per-use, switched to monthly (from next month, as NIFCLOUD bills).
    let (payg, monthly) = (format!("payg-{sfx}"), format!("monthly-{sfx}"));
    let vacs: Api<DynamicObject> = Api::all_with(client.clone(), &vac_resource());
    for (name, accounting) in [(&payg, "pay-per-use"), (&monthly, "monthly")] {
        vacs.create(&pp, &attributes_class(name, accounting))
            .await
            .expect("create VolumeAttributesClass");
    }
    let mut billed = claim("billing", &good_class, "ReadWriteOnce", "10Gi", &node_a);
    if let Some(spec) = billed.spec.as_mut() {
        spec.volume_attributes_class_name = Some(payg.clone());
    }
    claims.create(&pp, &billed).await.unwrap();
    let billing_pv = bound_pv(&claims, &pvs, "billing").await;
    let billing_disk = volume_handle(&billing_pv);
    let before = current_class(&claims, "billing", &payg).await;
    assert_eq!(
        billing(&emu, &billing_disk),
        ("2".to_string(), "2".to_string()),
        "pay-per-use"
    );
    claims
        .patch(
            "billing",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"volumeAttributesClassName": monthly}})),
        )
        .await
        .expect("switch the claim's class");
    let after = current_class(&claims, "billing", &monthly).await;
    assert_eq!(
        billing(&emu, &billing_disk),
        ("2".to_string(), "1".to_string()),
        "billed pay-per-use this month, monthly from next month"
    );
    let line = format!(
        "claim billing: status.currentVolumeAttributesClassName {:?} (modifyVolumeStatus {}) -> {:?} \
         (modifyVolumeStatus {}); disk {billing_disk} accountingType 2, nextMonthAccountingType 1",
        before.0, before.1, after.0, after.1
    );
    println!("{line}");
    observed.push(line);
    handles.insert(
        "billing",
        (billing_disk, billing_pv.metadata.name.clone().unwrap_or_default()),
    );

    // 6. Detach, delete the claims: every disk is gone.
    attachments.delete(&va_name, &DeleteParams::default()).await.unwrap();
    eventually("the VolumeAttachment removed after detach", WAIT, || async {
        let attachment = attachments.get_opt(&va_name).await;
        attachment
            .unwrap_or_else(|e| panic!("get VolumeAttachment {va_name}: {e}"))
            .is_none()
            .then_some(())
    })
    .await;
    assert_eq!(disk(&emu, &www_disk).unwrap().2, None, "detached");
    for name in ["www", "db", "bad", "billing"] {
        claims.delete(name, &DeleteParams::default()).await.unwrap();
    }
    eventually("every disk deleted", WAIT, || async {
        (emu.with_state(|st| st.volumes.len()) == 0).then_some(())
    })
    .await;
    for (_, pv) in handles.values() {
        let pv = pv.clone();
        let pvs = pvs.clone();
        eventually(&format!("PV {pv} deleted"), WAIT, move || {
            let (pvs, pv) = (pvs.clone(), pv.clone());
            async move {
                let found = pvs.get_opt(&pv).await.unwrap_or_else(|e| panic!("get PV {pv}: {e}"));
                found.is_none().then_some(())
            }
        })
        .await;
    }
    stack.check_running();
    println!(
        "detach and delete: no disk left in the emulator\nobserved:\n  {}",
        observed.join("\n  ")
    );

    // Clean-up of what this test created (the harness' API server is shared by every suite).
    remove_test_objects(&client).await;
    drop(stack);
    emu.shutdown().await;
}
