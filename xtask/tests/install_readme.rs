//! The README's "Install on a cluster", walked end to end against the real parts we have: the images built from
//! stand-in static binaries (`cargo xtask images --prebuilt`: the same layouts and push, without a musl build) and
//! pushed to a real registry (Debian's `docker-registry`, started here), then `cargo xtask deploy --emulator`
//! server-side applied to the real kube-apiserver + kube-controller-manager of `../shared/harness`, and
//! `cargo xtask undeploy --emulator`.
//!
//! The harness has no kubelet and no scheduler, so no rollout ever finishes: each deploy is run with `--timeout 1`
//! and must fail with the one line that says which workloads are still waiting (with `RUST_BACKTRACE=1`, as on
//! many developer machines). What is checked is what was applied: every rendered object is live with the rendered
//! content and references the pushed images by the digests the registry holds; a second deploy changes nothing
//! (its dry run says so, and the live objects stay as they were); a tag change changes exactly the image fields
//! of our containers (in the dry run and in the live objects); `undeploy` leaves nothing of ours behind (the
//! objects, and the ReplicaSets, Pods, ControllerRevisions and EndpointSlices the controllers made for them).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod, Secret};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde_json::Value;

use common::{PASSWORD, REGISTRY_BIN, Registry, USER, host_has_tools, on_path, skopeo, stand_in_binaries};

const TEST: &str = "the README install (images --push, deploy --emulator, undeploy) against the harness";
const NS: &str = "kube-system";
const FIELD_MANAGER: &str = "nifcloud-xtask";
/// The label every object and pod template of ours carries.
const PART_OF: &str = "app.kubernetes.io/part-of=nifcloud-k8s";
/// The emulator's Service (its EndpointSlices are the controller's, labelled with the Service's name).
const EMULATOR_SERVICE: &str = "nifcloud-emulator";

/// Runs the xtask binary against the harness, with registry credentials and backtraces switched on.
fn xtask(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("REGISTRY_USERNAME", USER)
        .env("REGISTRY_PASSWORD", PASSWORD)
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LIB_BACKTRACE", "1")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("NO_PROXY", "*")
        .env("no_proxy", "*")
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs xtask and requires success; returns stdout.
fn xtask_ok(kubeconfig: &Path, args: &[&str]) -> String {
    let out = xtask(kubeconfig, args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "xtask {args:?} failed:\n{stdout}\n{stderr}");
    stdout
}

/// Runs `cargo xtask deploy` for real: the objects are applied, and the rollout wait fails after a second (no
/// kubelet) with one line naming the Deployments still waiting. Returns stdout.
fn deploy(kubeconfig: &Path, registry: &str, tag: &str) -> String {
    let args = [
        "deploy",
        "--emulator",
        "--registry",
        registry,
        "--tag",
        tag,
        "--timeout",
        "1",
    ];
    let out = xtask(kubeconfig, &args);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "no kubelet, yet the rollout finished:\n{stdout}");
    assert_eq!(stderr.lines().count(), 1, "one line, no backtrace:\n{stderr}");
    assert!(
        stderr.starts_with("error: timed out after 1s waiting for: Deployment kube-system/"),
        "{stderr}"
    );
    for name in [
        "nifcloud-cloud-controller-manager",
        "nifcloud-csi-controller",
        "nifcloud-emulator",
    ] {
        assert!(
            stderr.contains(&format!("Deployment {NS}/{name}: 0/")),
            "{name}: {stderr}"
        );
    }
    stdout
}

/// The objects `cargo xtask render` gives for the emulator overlay with our images at `registry`/`tag`.
fn render(kubeconfig: &Path, registry: &str, tag: &str) -> Vec<Value> {
    let yaml = xtask_ok(
        kubeconfig,
        &["render", "--overlay", "emulator", "--registry", registry, "--tag", tag],
    );
    serde_saphyr::from_multiple_with_options(&yaml, serde_saphyr::options! { strict_booleans: true }).unwrap()
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

/// `Kind namespace/name` (or `Kind name`), as xtask prints it.
fn label(obj: &Value) -> String {
    let (kind, name) = (str_at(obj, "/kind"), str_at(obj, "/metadata/name"));
    match obj.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// The API of a rendered object, found through discovery (so the plural is the server's).
async fn api_of(client: &Client, obj: &Value) -> Api<DynamicObject> {
    let (group, version) = str_at(obj, "/apiVersion")
        .rsplit_once('/')
        .unwrap_or(("", str_at(obj, "/apiVersion")));
    let gvk = GroupVersionKind::gvk(group, version, str_at(obj, "/kind"));
    let (resource, _): (ApiResource, _) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .unwrap_or_else(|e| panic!("discover {gvk:?}: {e}"));
    match obj.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

async fn get_live(client: &Client, obj: &Value) -> Option<Value> {
    api_of(client, obj)
        .await
        .get_opt(str_at(obj, "/metadata/name"))
        .await
        .unwrap()
        .map(|o| serde_json::to_value(o).unwrap())
}

/// Where `want` is not contained in `have` (maps: every key of `want`; lists: element by element, same length;
/// scalars: equal). The server adds defaults and metadata; it must not change or drop what we applied.
fn not_contained(want: &Value, have: &Value, at: String, out: &mut Vec<String>) {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => {
            for (k, v) in w {
                match h.get(k) {
                    Some(hv) => not_contained(v, hv, format!("{at}/{k}"), out),
                    None => out.push(format!("{at}/{k} missing")),
                }
            }
        }
        (Value::Array(w), Value::Array(h)) if w.len() == h.len() => {
            for (i, (wv, hv)) in w.iter().zip(h).enumerate() {
                not_contained(wv, hv, format!("{at}/{i}"), out);
            }
        }
        _ if want == have => {}
        _ => out.push(format!("{at}: applied {want}, live {have}")),
    }
}

/// A live object as far as the apply decides it: without status, the server's counters and records, and the
/// annotations the API server and controllers write.
fn applied_view(obj: &Value) -> Value {
    let mut v = obj.clone();
    let m = v.as_object_mut().unwrap();
    m.remove("status");
    let meta = m.get_mut("metadata").and_then(Value::as_object_mut).unwrap();
    for k in ["managedFields", "resourceVersion", "generation"] {
        meta.remove(k);
    }
    if let Some(Value::Object(ann)) = meta.get_mut("annotations") {
        ann.remove("deployment.kubernetes.io/revision");
        ann.remove("deprecated.daemonset.template.generation");
    }
    v
}

/// Leaf paths where `a` and `b` differ.
fn diff(a: &Value, b: &Value, at: String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
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
        _ => out.push(at),
    }
}

/// The paths of our images in a rendered workload: `/spec/template/spec/containers/N/image` of each container
/// whose image is in `registry`.
fn our_image_paths(obj: &Value, registry: &str) -> Vec<String> {
    obj.pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, c)| str_at(c, "/image").starts_with(&format!("{registry}/")))
        .map(|(i, _)| format!("/spec/template/spec/containers/{i}/image"))
        .collect()
}

/// `reference -> digest` from `pushed.txt` (`REGISTRY/NAME:TAG@DIGEST` lines).
fn pushed(out: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(out.join("pushed.txt"))
        .unwrap()
        .lines()
        .map(|l| {
            let (reference, digest) = l.split_once('@').unwrap();
            (reference.to_owned(), digest.to_owned())
        })
        .collect()
}

/// What of ours is in the cluster: the rendered objects that exist, and the controllers' objects made for them.
async fn leftovers(client: &Client, rendered: &[Value]) -> Vec<String> {
    let mut left = Vec::new();
    for obj in rendered {
        if get_live(client, obj).await.is_some() {
            left.push(label(obj));
        }
    }
    let ours = ListParams::default().labels(PART_OF);
    let of_emulator = ListParams::default().labels(&format!("kubernetes.io/service-name={EMULATOR_SERVICE}"));
    left.extend(names::<Pod>(client, &ours).await);
    left.extend(names::<ReplicaSet>(client, &ours).await);
    left.extend(names::<ControllerRevision>(client, &ours).await);
    left.extend(names::<EndpointSlice>(client, &of_emulator).await);
    left
}

/// `Kind kube-system/name` of the objects of kind `K` in kube-system that `params` selects.
async fn names<K>(client: &Client, params: &ListParams) -> Vec<String>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), NS);
    api.list(params)
        .await
        .unwrap()
        .items
        .iter()
        .map(|o| format!("{} {NS}/{}", K::kind(&()), o.meta().name.clone().unwrap_or_default()))
        .collect()
}

/// Deletes the Events the controllers recorded in kube-system about our objects and what they made (ReplicaSets
/// `NAME-HASH`, Pods `NAME-HASH-ID`); returns how many there were. Run once the rest is gone: they would expire
/// in an hour, but the shared cluster is better left as it was found.
async fn forget_events(client: &Client, rendered: &[Value]) -> usize {
    let ours: Vec<&str> = rendered
        .iter()
        .filter(|o| o.pointer("/metadata/namespace").is_some())
        .map(|o| str_at(o, "/metadata/name"))
        .collect();
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    let mut n = 0;
    for e in events.list(&ListParams::default()).await.unwrap().items {
        let about = e.involved_object.name.as_deref().unwrap_or_default();
        if ours
            .iter()
            .any(|name| about == *name || about.starts_with(&format!("{name}-")))
        {
            let name = e.metadata.name.clone().unwrap_or_default();
            match events.delete(&name, &Default::default()).await {
                Ok(_) => n += 1,
                Err(kube::Error::Api(status)) if status.is_not_found() => n += 1,
                Err(err) => panic!("delete Event {name}: {err}"),
            }
        }
    }
    n
}

/// Removes what a failed run left (also run before the test, for an interrupted earlier run).
fn undeploy(kubeconfig: &Path) {
    let out = xtask(kubeconfig, &["undeploy", "--emulator", "--force"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "undeploy:\n{stdout}\n{stderr}");
}

/// Undeploys when the test ends early (a failed assertion), so the shared cluster keeps nothing of ours.
struct Cleanup<'a> {
    kubeconfig: &'a Path,
    armed: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if self.armed {
            let out = xtask(self.kubeconfig, &["undeploy", "--emulator", "--force"]);
            eprintln!("cleanup after a failure: undeploy exited {}", out.status);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_install_applies_changes_and_removes_exactly_our_objects() {
    let Some(harness) = k8s_harness::harness(TEST, false) else {
        return;
    };
    for (tool, why) in [
        (
            REGISTRY_BIN,
            "the registry the images are pushed to (apt-get install -y docker-registry)",
        ),
        ("skopeo", "reads the pushed images back (apt-get install -y skopeo)"),
    ] {
        if !on_path(tool) {
            k8s_harness::skip(TEST, &format!("{tool} is not installed: {why}; .ci/run installs it"));
            return;
        }
    }
    if !host_has_tools() {
        k8s_harness::skip(
            TEST,
            "the csi image needs the host's filesystem tools (e2fsprogs, xfsprogs, util-linux)",
        );
        return;
    }
    let started = std::time::Instant::now();
    let kubeconfig = harness.kubeconfig.as_path();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let client = Client::try_from(config).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(dir.path());
    let bins = stand_in_binaries(dir.path());
    let target = format!("{}/nk", registry.addr);
    let creds = format!("{USER}:{PASSWORD}");
    let (rendered1, rendered2) = (render(kubeconfig, &target, "it1"), render(kubeconfig, &target, "it2"));
    let total = rendered1.len();

    // a clean start: an interrupted earlier run is removed first
    if !leftovers(&client, &rendered1).await.is_empty() {
        undeploy(kubeconfig);
    }
    let mut cleanup = Cleanup {
        kubeconfig,
        armed: true,
    };

    // 1. cargo xtask images --push REGISTRY --tag TAG
    let push = |tag: &str| {
        let out = dir.path().join(format!("images-{tag}"));
        let args = [
            "images",
            "--prebuilt",
            bins.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--push",
            &target,
            "--tag",
            tag,
        ];
        xtask_ok(kubeconfig, &args);
        pushed(&out)
    };
    let pushed1 = push("it1");
    assert_eq!(pushed1.len(), 3, "{pushed1:?}");

    // 2. cargo xtask deploy --emulator --registry REGISTRY --tag TAG: every object applied, in render order
    let stdout = deploy(kubeconfig, &target, "it1");
    let applied: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("applied ")).collect();
    let want: Vec<String> = rendered1.iter().map(label).collect();
    assert_eq!(applied, want, "{stdout}");

    // what was applied: each rendered object is live, owned by our field manager, with the rendered content
    let mut snapshot1 = Vec::new();
    for obj in &rendered1 {
        let live = get_live(&client, obj)
            .await
            .unwrap_or_else(|| panic!("{} is not there", label(obj)));
        let managers: Vec<&str> = live["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["operation"] == "Apply")
            .map(|e| str_at(e, "/manager"))
            .collect();
        assert_eq!(managers, [FIELD_MANAGER], "{}", label(obj));
        let mut differences = Vec::new();
        let mut want = obj.clone();
        // a Secret's stringData is stored as (base64) data
        if let Some(Value::Object(strings)) = want.as_object_mut().unwrap().remove("stringData") {
            let secret: Secret = serde_json::from_value(live.clone()).unwrap();
            let data = secret.data.unwrap_or_default();
            for (k, v) in strings {
                if data.get(&k).map(|b| b.0.as_slice()) != Some(v.as_str().unwrap().as_bytes()) {
                    differences.push(format!("/stringData/{k}: not stored as data"));
                }
            }
        }
        not_contained(&want, &live, String::new(), &mut differences);
        assert!(differences.is_empty(), "{}: {differences:?}", label(obj));
        snapshot1.push(live);
    }
    // and the images it runs are the ones pushed, by the digests the registry serves
    let mut images: BTreeSet<String> = BTreeSet::new();
    for live in &snapshot1 {
        for path in our_image_paths(live, &target) {
            images.insert(str_at(live, &path).to_owned());
        }
    }
    let expected: BTreeSet<String> = pushed1.iter().map(|(r, _)| r.clone()).collect();
    assert_eq!(images, expected);
    for (reference, digest) in &pushed1 {
        let inspect: Value = serde_json::from_slice(&skopeo(
            &registry,
            &[
                "inspect",
                "--tls-verify=false",
                "--creds",
                &creds,
                &format!("docker://{reference}"),
            ],
        ))
        .unwrap();
        assert_eq!(inspect["Digest"], digest.as_str(), "{reference}");
    }

    // 3. a second deploy changes nothing: the dry run says so, and the live objects stay as they were
    let dry = xtask_ok(
        kubeconfig,
        &[
            "deploy",
            "--emulator",
            "--registry",
            &target,
            "--tag",
            "it1",
            "--dry-run",
        ],
    );
    assert!(
        dry.contains(&format!(
            "dry run: 0 to create, {total} unchanged, 0 to update; nothing was changed"
        )),
        "{dry}"
    );
    deploy(kubeconfig, &target, "it1");
    for (obj, before) in rendered1.iter().zip(&snapshot1) {
        let after = get_live(&client, obj).await.unwrap();
        assert_eq!(
            after["metadata"]["generation"],
            before["metadata"]["generation"],
            "{}",
            label(obj)
        );
        let mut changed = Vec::new();
        diff(
            &applied_view(before),
            &applied_view(&after),
            String::new(),
            &mut changed,
        );
        assert!(changed.is_empty(), "{} changed: {changed:?}", label(obj));
    }

    // 4. a tag change changes exactly the image fields of our containers: in the dry run ...
    let pushed2 = push("it2");
    let dry = xtask_ok(
        kubeconfig,
        &[
            "deploy",
            "--emulator",
            "--registry",
            &target,
            "--tag",
            "it2",
            "--dry-run",
        ],
    );
    let updates: BTreeSet<&str> = dry.lines().filter(|l| l.starts_with("update ")).collect();
    let expected_updates: Vec<String> = rendered2
        .iter()
        .filter_map(|obj| {
            let paths = our_image_paths(obj, &target);
            (!paths.is_empty()).then(|| format!("update    {}: {}", label(obj), paths.join(", ")))
        })
        .collect();
    assert_eq!(
        updates,
        expected_updates.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        "{dry}"
    );
    assert_eq!(
        expected_updates.len(),
        4,
        "three Deployments and the DaemonSet run our images"
    );
    assert!(
        dry.contains(&format!(
            "dry run: 0 to create, {} unchanged, 4 to update; nothing was changed",
            total - 4
        )),
        "{dry}"
    );
    // ... and in the cluster
    deploy(kubeconfig, &target, "it2");
    for ((obj, before), new) in rendered1.iter().zip(&snapshot1).zip(&rendered2) {
        let after = get_live(&client, obj).await.unwrap();
        let mut changed = Vec::new();
        diff(
            &applied_view(before),
            &applied_view(&after),
            String::new(),
            &mut changed,
        );
        assert_eq!(changed, our_image_paths(new, &target), "{}", label(obj));
        for path in &changed {
            let image = str_at(&after, path);
            assert!(
                pushed2.iter().any(|(r, _)| r == image),
                "{}: {image} was not pushed",
                label(obj)
            );
        }
    }

    // 5. cargo xtask undeploy --emulator: nothing of ours is left (the controllers' objects go with their owners)
    let stdout = xtask_ok(kubeconfig, &["undeploy", "--emulator"]);
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("deleted ")).count(),
        total,
        "{stdout}"
    );
    k8s_harness::eventually(
        "nothing of ours left in the cluster",
        Duration::from_secs(60),
        || async {
            let left = leftovers(&client, &rendered1).await;
            if !left.is_empty() {
                eprintln!("still there: {left:?}");
                return None;
            }
            // the controllers' Events about them, once nothing is left to report on
            (forget_events(&client, &rendered1).await == 0).then_some(())
        },
    )
    .await;
    cleanup.armed = false;
    eprintln!("install test took {:.1} s", started.elapsed().as_secs_f64());
}
