//! `cargo xtask render`: builds `deploy/overlays/<overlay>` in Rust (no kubectl) and applies the command-line
//! substitutions (registry, tag, region, credentials Secret, CCM replicas, the CSI controller's cluster servers,
//! the CCM's security-group rules), then prints multi-document YAML in apply order.

pub mod kinds;
pub mod kustomize;
pub mod rbac;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde_json::Value;

use kustomize::{ImageOverride, KustomizeError, apply_image_override, containers_mut, str_at};

/// Repository part of our three images in `deploy/base` (short name, repository).
pub const OUR_IMAGES: &[(&str, &str)] = &[
    ("ccm", "ghcr.io/nifcloud-k8s/ccm"),
    ("csi", "ghcr.io/nifcloud-k8s/csi"),
    ("emulator", "ghcr.io/nifcloud-k8s/emulator"),
];

/// The credentials Secret the bases refer to.
#[cfg(test)]
pub const DEFAULT_SECRET: &str = "nifcloud-credentials";
/// Name of the CCM Deployment.
pub const CCM_DEPLOYMENT: &str = "nifcloud-cloud-controller-manager";
/// Name of the CCM's container in that Deployment.
const CCM_CONTAINER: &str = "cloud-controller-manager";
/// The CSI controller's list of this cluster's servers.
pub const CLUSTER_INSTANCES_ENV: &str = "NIFCLOUD_CLUSTER_INSTANCES";
/// Environment variables that carry credentials from the Secret.
const CREDENTIAL_ENV: &[&str] = &["NIFCLOUD_ACCESS_KEY_ID", "NIFCLOUD_SECRET_ACCESS_KEY"];

/// Which overlay to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Overlay {
    /// CCM + CSI against the real NIFCLOUD API.
    Production,
    /// CCM + CSI + the in-cluster emulator.
    Emulator,
}

impl Overlay {
    /// Directory name under `deploy/overlays`.
    pub fn dir_name(self) -> &'static str {
        match self {
            Overlay::Production => "production",
            Overlay::Emulator => "emulator",
        }
    }
}

/// Substitutions on top of the overlay. `None` keeps what the YAML says.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct RenderOptions {
    /// Registry (and path) for our images: `R/ccm`, `R/csi`, `R/emulator`.
    #[arg(long)]
    pub registry: Option<String>,
    /// Tag for our images.
    #[arg(long)]
    pub tag: Option<String>,
    /// NIFCLOUD region (NIFCLOUD_REGION of every container), e.g. jp-east-1.
    #[arg(long)]
    pub region: Option<String>,
    /// Name of the credentials Secret in kube-system (keys access-key-id, secret-access-key).
    #[arg(long)]
    pub secret: Option<String>,
    /// Replicas of the CCM Deployment.
    #[arg(long)]
    pub ccm_replicas: Option<u16>,
    /// NIFCLOUD_CLUSTER_INSTANCES of the CSI controller: comma-separated shell patterns of this cluster's servers.
    #[arg(long)]
    pub cluster_instances: Option<String>,
    /// Let the CCM add security-group rules that admit each load balancer to the NodePorts
    /// (`--security-group-rules=true` on the CCM; without it the cloud config's `securityGroup.manageRules` decides).
    #[arg(long)]
    pub security_group_rules: bool,
    /// The nodes' security group for those rules (`--security-group-name` on the CCM); default: the one group all
    /// backend servers of a Service are in.
    #[arg(long, value_name = "NAME")]
    pub security_group_name: Option<String>,
    /// Which overlay to build.
    #[arg(long, value_enum, default_value_t = Overlay::Production)]
    pub overlay: Overlay,
    /// Instead of printing, compare the rendered RBAC with deploy/rbac-needs.yaml (fails on any difference).
    #[arg(long)]
    pub check_rbac: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            registry: None,
            tag: None,
            region: None,
            secret: None,
            ccm_replicas: None,
            cluster_instances: None,
            security_group_rules: false,
            security_group_name: None,
            overlay: Overlay::Production,
            check_rbac: false,
        }
    }
}

/// Errors of `render`.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The overlay could not be built.
    #[error(transparent)]
    Kustomize(#[from] KustomizeError),
    /// An option cannot be applied.
    #[error("option {option}: {message}")]
    Option {
        /// The flag.
        option: &'static str,
        /// Why.
        message: String,
    },
    /// An object has a kind the tooling does not know (the manifests must stay CRD-free).
    #[error("object {id}: kind {api_version} {kind} is not one of the known built-in kinds")]
    UnknownKind {
        /// `kind/namespace/name`.
        id: String,
        /// Its apiVersion.
        api_version: String,
        /// Its kind.
        kind: String,
    },
    /// Output could not be serialized.
    #[error("serialize {id}: {message}")]
    Serialize {
        /// The object.
        id: String,
        /// Why.
        message: String,
    },
}

/// `deploy/` under the workspace root.
pub fn deploy_dir(root: &Path) -> PathBuf {
    root.join("deploy")
}

/// Builds the overlay and applies `opts`; the result is sorted in apply order.
pub fn render(deploy: &Path, opts: &RenderOptions) -> Result<Vec<Value>, RenderError> {
    let mut objs = kustomize::build(&deploy.join("overlays").join(opts.overlay.dir_name()))?;
    apply_options(&mut objs, opts)?;
    for obj in &objs {
        let (api_version, kind) = (str_at(obj, &["apiVersion"]), str_at(obj, &["kind"]));
        if kinds::lookup(api_version, kind).is_none() {
            return Err(RenderError::UnknownKind {
                id: kustomize::object_id(obj),
                api_version: api_version.into(),
                kind: kind.into(),
            });
        }
    }
    sort_for_apply(&mut objs);
    Ok(objs)
}

/// Sorts objects into apply order: by kind rank, then namespace, then name.
pub fn sort_for_apply(objs: &mut [Value]) {
    objs.sort_by_key(|o| {
        (
            kinds::apply_rank(str_at(o, &["apiVersion"]), str_at(o, &["kind"])),
            str_at(o, &["metadata", "namespace"]).to_owned(),
            str_at(o, &["metadata", "name"]).to_owned(),
        )
    });
}

/// Applies the command-line substitutions.
pub fn apply_options(objs: &mut [Value], opts: &RenderOptions) -> Result<(), RenderError> {
    if opts.registry.is_some() || opts.tag.is_some() {
        for (short, repo) in OUR_IMAGES {
            let new_name = opts
                .registry
                .as_ref()
                .map(|r| format!("{}/{short}", r.trim_end_matches('/')));
            let ov = ImageOverride {
                name: (*repo).into(),
                new_name,
                new_tag: opts.tag.clone(),
                digest: None,
            };
            for obj in objs.iter_mut() {
                apply_image_override(obj, &ov);
            }
        }
    }
    if let Some(region) = &opts.region {
        if region.is_empty() || !region.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(RenderError::Option {
                option: "--region",
                message: format!("{region:?} is not a region name"),
            });
        }
        if let Some(emulated) = emulator_region(objs).filter(|e| e != region) {
            return Err(RenderError::Option {
                option: "--region",
                message: format!("the emulator overlay emulates {emulated}; edit its ConfigMap to use {region}"),
            });
        }
        set_env(objs, "NIFCLOUD_REGION", region);
    }
    if let Some(secret) = &opts.secret {
        if secret.is_empty() || secret.len() > 253 {
            return Err(RenderError::Option {
                option: "--secret",
                message: "not a valid object name".into(),
            });
        }
        let mut old_names = Vec::new();
        for obj in objs.iter_mut() {
            for c in containers_mut(obj) {
                for e in env_mut(c) {
                    let is_cred = e
                        .get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| CREDENTIAL_ENV.contains(&n));
                    if let Some(Value::Object(r)) = e.pointer_mut("/valueFrom/secretKeyRef").filter(|_| is_cred)
                        && let Some(Value::String(old)) = r.insert("name".into(), Value::String(secret.clone()))
                    {
                        old_names.push(old);
                    }
                }
            }
        }
        for obj in objs.iter_mut() {
            let name = str_at(obj, &["metadata", "name"]).to_owned();
            if str_at(obj, &["kind"]) == "Secret" && old_names.contains(&name) {
                obj["metadata"]["name"] = Value::String(secret.clone());
            }
        }
    }
    if let Some(patterns) = &opts.cluster_instances {
        if patterns.split(',').all(|p| p.trim().is_empty()) {
            return Err(RenderError::Option {
                option: "--cluster-instances",
                message: "no server name pattern given".into(),
            });
        }
        let n = set_env(objs, CLUSTER_INSTANCES_ENV, patterns);
        if n == 0 {
            return Err(RenderError::Option {
                option: "--cluster-instances",
                message: "no CSI controller rendered".into(),
            });
        }
    }
    if let Some(name) = &opts.security_group_name
        && !((1..=15).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return Err(RenderError::Option {
            option: "--security-group-name",
            message: format!("{name:?} is not a security group name (1-15 ASCII letters or digits)"),
        });
    }
    let ccm_args = [
        (
            "--security-group-rules",
            opts.security_group_rules.then(|| "true".to_owned()),
        ),
        ("--security-group-name", opts.security_group_name.clone()),
    ];
    for (option, value) in ccm_args {
        if let Some(value) = value
            && add_ccm_arg(objs, option, &value) == 0
        {
            return Err(RenderError::Option {
                option,
                message: "no CCM Deployment rendered".into(),
            });
        }
    }
    if let Some(n) = opts.ccm_replicas {
        if n == 0 {
            return Err(RenderError::Option {
                option: "--ccm-replicas",
                message: "must be at least 1".into(),
            });
        }
        let mut found = false;
        for obj in objs.iter_mut() {
            if str_at(obj, &["kind"]) == "Deployment" && str_at(obj, &["metadata", "name"]) == CCM_DEPLOYMENT {
                obj["spec"]["replicas"] = Value::from(n);
                found = true;
            }
        }
        if !found {
            return Err(RenderError::Option {
                option: "--ccm-replicas",
                message: "no CCM Deployment rendered".into(),
            });
        }
    }
    Ok(())
}

/// Sets `flag=value` in the CCM container's args (replacing that flag if present); returns how many containers got
/// it.
fn add_ccm_arg(objs: &mut [Value], flag: &str, value: &str) -> usize {
    let same_flag = |a: &Value| {
        a.as_str()
            .is_some_and(|a| a == flag || a.strip_prefix(flag).is_some_and(|rest| rest.starts_with('=')))
    };
    let mut n = 0;
    for obj in objs.iter_mut() {
        if str_at(obj, &["kind"]) != "Deployment" || str_at(obj, &["metadata", "name"]) != CCM_DEPLOYMENT {
            continue;
        }
        for c in containers_mut(obj) {
            if c.get("name").and_then(Value::as_str) != Some(CCM_CONTAINER) {
                continue;
            }
            if let Some(c) = c.as_object_mut()
                && let Value::Array(args) = c.entry("args").or_insert_with(|| Value::Array(Vec::new()))
            {
                args.retain(|a| !same_flag(a));
                args.push(Value::String(format!("{flag}={value}")));
                n += 1;
            }
        }
    }
    n
}

/// Sets the value of env var `name` wherever a container declares it; returns how many were set.
fn set_env(objs: &mut [Value], name: &str, value: &str) -> usize {
    let mut n = 0;
    for obj in objs.iter_mut() {
        for c in containers_mut(obj) {
            for e in env_mut(c) {
                if e.get("name").and_then(Value::as_str) == Some(name) {
                    e["value"] = Value::String(value.to_owned());
                    n += 1;
                }
            }
        }
    }
    n
}

/// Values of env var `name` across the rendered containers (`(object id, value)`), for deploy's checks.
pub fn env_values(objs: &[Value], name: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for obj in objs {
        for list in ["/spec/template/spec/containers", "/spec/template/spec/initContainers"] {
            for c in obj.pointer(list).and_then(Value::as_array).into_iter().flatten() {
                for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
                    if e.get("name").and_then(Value::as_str) == Some(name) {
                        let v = e.get("value").and_then(Value::as_str).unwrap_or("").to_owned();
                        out.push((kustomize::object_id(obj), v));
                    }
                }
            }
        }
    }
    out
}

fn env_mut(container: &mut Value) -> Vec<&mut Value> {
    match container.get_mut("env") {
        Some(Value::Array(list)) => list.iter_mut().collect(),
        _ => Vec::new(),
    }
}

/// The region in the emulator's ConfigMap, if the emulator is part of the rendered set.
fn emulator_region(objs: &[Value]) -> Option<String> {
    let cm = objs.iter().find(|o| {
        str_at(o, &["kind"]) == "ConfigMap" && str_at(o, &["metadata", "name"]) == "nifcloud-emulator-config"
    })?;
    let text = str_at(cm, &["data", "config.yaml"]);
    let cfg: Value = serde_saphyr::from_str_with_options(text, kustomize::yaml_options()).ok()?;
    Some(
        cfg.get("region")
            .and_then(Value::as_str)
            .unwrap_or("jp-east-1")
            .to_owned(),
    )
}

/// The images of our own components referenced by `objs`.
#[cfg(test)]
pub fn our_image_refs(objs: &mut [Value]) -> Vec<String> {
    let mut out = Vec::new();
    for obj in objs.iter_mut() {
        for c in containers_mut(obj) {
            if let Some(img) = c.get("image").and_then(Value::as_str) {
                let (name, _, _) = kustomize::split_image(img);
                if OUR_IMAGES.iter().any(|(short, _)| name.ends_with(&format!("/{short}")))
                    && !out.contains(&img.to_owned())
                {
                    out.push(img.to_owned());
                }
            }
        }
    }
    out
}

/// Serializes objects as a multi-document YAML stream.
pub fn to_yaml(objs: &[Value]) -> Result<String, RenderError> {
    let mut out = String::new();
    for obj in objs {
        out.push_str("---\n");
        let doc = serde_saphyr::to_string(obj).map_err(|e| RenderError::Serialize {
            id: kustomize::object_id(obj),
            message: e.to_string(),
        })?;
        out.push_str(&doc);
    }
    Ok(out)
}

/// Entry point of `cargo xtask render`.
pub fn run(root: &Path, opts: &RenderOptions) -> anyhow::Result<()> {
    let objs = render(&deploy_dir(root), opts)?;
    if opts.check_rbac {
        let (needs, accounts) = rbac::load_needs(&deploy_dir(root).join("rbac-needs.yaml"))?;
        let diff = rbac::compare(&needs, &accounts, &objs)?;
        for g in &diff.missing {
            println!("missing: {g}");
        }
        for g in &diff.extra {
            println!("extra:   {g}");
        }
        for a in &diff.unlisted_accounts {
            println!("account not in rbac-needs.yaml: {a}");
        }
        anyhow::ensure!(
            diff.is_empty(),
            "RBAC of overlay {} differs from deploy/rbac-needs.yaml",
            opts.overlay.dir_name()
        );
        println!(
            "RBAC of overlay {} matches deploy/rbac-needs.yaml ({} grants)",
            opts.overlay.dir_name(),
            needs.len()
        );
        return Ok(());
    }
    print!("{}", to_yaml(&objs)?);
    Ok(())
}
