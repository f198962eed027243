//! `cargo xtask deploy` / `undeploy`: server-side apply of the rendered manifests to the cluster in `KUBECONFIG`
//! (field manager `nifcloud-xtask`), then wait for the rollouts. The decisions live in [`plan`]; this file is IO.
//!
//! What "rolled out" means: every replica of a workload updated and available (ready, for a DaemonSet), except
//! for the leader-elected CCM, which needs one available replica and accepts the others being unschedulable
//! ([`plan::Readiness::OneAvailable`]): on a single control-plane node its second replica never fits.
//!
//! The pure parts are tested in [`plan`]; the IO against a mocked API server in `api_tests` and, through the
//! binary, in `xtask/tests/deploy_cli.rs`.

pub mod plan;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use serde_json::Value;

use crate::render::{self, Overlay, RenderOptions};
use plan::{Change, Planned, Rollout};

/// Server-side apply field manager.
pub const FIELD_MANAGER: &str = "nifcloud-xtask";

/// Flags of `cargo xtask deploy`.
#[derive(Debug, Clone, clap::Args)]
pub struct DeployArgs {
    /// Print what would change (server-side dry-run apply, compared with the live objects); change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also deploy the NIFCLOUD emulator and point the CCM and CSI at it (overlay `emulator`).
    #[arg(long)]
    pub emulator: bool,
    /// Registry (and path) for our images.
    #[arg(long)]
    pub registry: Option<String>,
    /// Tag of our images.
    #[arg(long)]
    pub tag: Option<String>,
    /// NIFCLOUD region.
    #[arg(long)]
    pub region: Option<String>,
    /// Credentials Secret in kube-system.
    #[arg(long)]
    pub secret: Option<String>,
    /// Replicas of the CCM.
    #[arg(long)]
    pub ccm_replicas: Option<u16>,
    /// NIFCLOUD_CLUSTER_INSTANCES of the CSI controller (required for production unless set in the YAML).
    #[arg(long)]
    pub cluster_instances: Option<String>,
    /// Let the CCM add security-group rules that admit each load balancer to the NodePorts.
    #[arg(long)]
    pub security_group_rules: bool,
    /// The nodes' security group for those rules (default: the one group all backend servers of a Service are in).
    #[arg(long, value_name = "NAME")]
    pub security_group_name: Option<String>,
    /// Seconds to wait for the rollouts.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

impl DeployArgs {
    fn render_options(&self) -> RenderOptions {
        RenderOptions {
            registry: self.registry.clone(),
            tag: self.tag.clone(),
            region: self.region.clone(),
            secret: self.secret.clone(),
            ccm_replicas: self.ccm_replicas,
            check_rbac: false,
            cluster_instances: self.cluster_instances.clone(),
            security_group_rules: self.security_group_rules,
            security_group_name: self.security_group_name.clone(),
            overlay: if self.emulator {
                Overlay::Emulator
            } else {
                Overlay::Production
            },
        }
    }
}

/// Flags of `cargo xtask undeploy`.
#[derive(Debug, Clone, clap::Args)]
pub struct UndeployArgs {
    /// Also remove the emulator (what `deploy --emulator` created).
    #[arg(long)]
    pub emulator: bool,
    /// Remove even though PersistentVolumes of the driver still exist (their disks can then not be detached).
    #[arg(long)]
    pub force: bool,
}

fn api_for(client: &Client, p: &Planned) -> Api<DynamicObject> {
    let (group, version) = p.kind.api_version.rsplit_once('/').unwrap_or(("", p.kind.api_version));
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, p.kind.kind), p.kind.plural);
    match &p.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    }
}

async fn client() -> anyhow::Result<Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::try_default()
        .await
        .context("connect to the cluster in KUBECONFIG (no cluster, no deploy)")
}

fn planned(root: &Path, opts: &RenderOptions) -> anyhow::Result<Vec<Planned>> {
    let objs = render::render(&render::deploy_dir(root), opts)?;
    Ok(plan::plan(&objs)?)
}

/// The first Secret the rendered workloads read env vars from that the render does not create itself.
fn external_secret(planned: &[Planned]) -> Option<String> {
    let rendered = |n: &str| planned.iter().any(|p| p.kind.kind == "Secret" && p.name == n);
    planned
        .iter()
        .filter_map(|p| {
            p.object
                .pointer("/spec/template/spec/containers")
                .and_then(Value::as_array)
        })
        .flatten()
        .filter_map(|c| c.get("env").and_then(Value::as_array))
        .flatten()
        .filter_map(|e| e.pointer("/valueFrom/secretKeyRef/name").and_then(Value::as_str))
        .find(|name| !rendered(name))
        .map(str::to_owned)
}

/// A setting the rendered objects leave empty that the components refuse to start without.
fn missing_settings(planned: &[Planned]) -> Option<String> {
    let objs: Vec<Value> = planned.iter().map(|p| p.object.clone()).collect();
    render::env_values(&objs, render::CLUSTER_INSTANCES_ENV)
        .into_iter()
        .find(|(_, v)| v.trim().is_empty())
        .map(|(id, _)| {
            format!(
                "{id}: {} is empty; pass --cluster-instances with this cluster's server name patterns",
                render::CLUSTER_INSTANCES_ENV
            )
        })
}

/// Entry point of `cargo xtask deploy`.
pub fn run(root: &Path, args: &DeployArgs) -> anyhow::Result<()> {
    let planned = planned(root, &args.render_options())?;
    if let Some(problem) = missing_settings(&planned) {
        anyhow::bail!("{problem}");
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let client = client().await?;
        if let Some(secret) = external_secret(&planned) {
            let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), plan::DEFAULT_NAMESPACE);
            if secrets.get_opt(&secret).await?.is_none() {
                anyhow::bail!(
                    "Secret {}/{secret} does not exist: create it first (deploy/secret-template.yaml) or use --emulator",
                    plan::DEFAULT_NAMESPACE
                );
            }
        }
        let results = apply_all(&client, &planned, args.dry_run).await?;
        if args.dry_run {
            let mut counts = [0usize; 3];
            for (p, change) in planned.iter().zip(&results) {
                match change {
                    Some(Change::Create) | None => {
                        counts[0] += 1;
                        println!("create    {}", p.label());
                    }
                    Some(Change::Unchanged) => {
                        counts[1] += 1;
                        println!("unchanged {}", p.label());
                    }
                    Some(Change::Update(paths)) => {
                        counts[2] += 1;
                        println!("update    {}: {}", p.label(), paths.join(", "));
                    }
                }
            }
            println!("dry run: {} to create, {} unchanged, {} to update; nothing was changed", counts[0], counts[1], counts[2]);
            return Ok(());
        }
        wait_for_rollouts(&client, &planned, Duration::from_secs(args.timeout), Duration::from_secs(2)).await
    })
}

/// Server-side applies every object in order (field manager [`FIELD_MANAGER`], forcing conflicts: these objects
/// are ours). With `dry_run` the server only validates, and each result is compared with the live object.
pub async fn apply_all(client: &Client, planned: &[Planned], dry_run: bool) -> anyhow::Result<Vec<Option<Change>>> {
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    params.dry_run = dry_run;
    let mut out = Vec::new();
    for p in planned {
        let api = api_for(client, p);
        let live = if dry_run {
            api.get_opt(&p.name).await?.map(serde_json::to_value).transpose()?
        } else {
            None
        };
        let applied = api
            .patch(&p.name, &params, &Patch::Apply(&p.object))
            .await
            .with_context(|| format!("apply {}", p.label()))?;
        if dry_run {
            out.push(Some(plan::classify(live.as_ref(), &serde_json::to_value(applied)?)));
        } else {
            println!("applied {}", p.label());
            out.push(None);
        }
    }
    Ok(out)
}

/// Polls the Deployments and DaemonSets every `poll` until all are rolled out (per [`plan::readiness`]), or fails
/// after `timeout` naming what is still waiting.
pub async fn wait_for_rollouts(
    client: &Client,
    planned: &[Planned],
    timeout: Duration,
    poll: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let workloads: Vec<&Planned> = planned
        .iter()
        .filter(|p| matches!(p.kind.kind, "Deployment" | "DaemonSet"))
        .collect();
    let mut last: Vec<String> = vec![String::new(); workloads.len()];
    loop {
        let mut waiting = Vec::new();
        for (i, p) in workloads.iter().enumerate() {
            let live = serde_json::to_value(api_for(client, p).get(&p.name).await?)?;
            let mut state = plan::rollout(p.kind.kind, &live).unwrap_or(Rollout::Waiting("unknown kind".into()));
            if matches!(state, Rollout::Waiting(_)) && plan::readiness(p) == plan::Readiness::OneAvailable {
                let pods = pods_of(client, p, &live).await?;
                state = plan::rollout_one_available(&live, &pods);
            }
            let text = match &state {
                Rollout::Ready(t) => format!("ready    {}: {t}", p.label()),
                Rollout::Waiting(t) => format!("waiting  {}: {t}", p.label()),
            };
            if text != last[i] {
                println!("{text}");
                last[i] = text;
            }
            if let Rollout::Waiting(t) = state {
                waiting.push(format!("{}: {t}", p.label()));
            }
        }
        if waiting.is_empty() {
            println!("all {} workloads rolled out", workloads.len());
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "timed out after {}s waiting for: {}",
                timeout.as_secs(),
                waiting.join("; ")
            );
        }
        tokio::time::sleep(poll).await;
    }
}

/// The pods a Deployment selects (by its `matchLabels`), as JSON.
async fn pods_of(client: &Client, p: &Planned, live: &Value) -> anyhow::Result<Vec<Value>> {
    let Some(selector) = plan::label_selector(live) else {
        return Ok(Vec::new());
    };
    let ns = p.namespace.as_deref().unwrap_or(plan::DEFAULT_NAMESPACE);
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), ns);
    let list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .with_context(|| format!("list the pods of {}", p.label()))?;
    list.items
        .into_iter()
        .map(|pod| serde_json::to_value(pod).map_err(Into::into))
        .collect()
}

/// Entry point of `cargo xtask undeploy`.
pub fn run_undeploy(root: &Path, args: &UndeployArgs) -> anyhow::Result<()> {
    let overlay = if args.emulator {
        Overlay::Emulator
    } else {
        Overlay::Production
    };
    let planned = planned(
        root,
        &RenderOptions {
            overlay,
            ..RenderOptions::default()
        },
    )?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let client = client().await?;
        let pvs: Api<k8s_openapi::api::core::v1::PersistentVolume> = Api::all(client.clone());
        let items: Vec<Value> = pvs
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()?;
        let ours = plan::volumes_of_driver(&items);
        if !ours.is_empty() && !args.force {
            anyhow::bail!(
                "{} PersistentVolume(s) of {} still exist ({}): delete them first, or pass --force",
                ours.len(),
                plan::DRIVER_NAME,
                ours.join(", ")
            );
        }
        delete_all(&client, &planned).await
    })
}

/// Deletes every object in reverse apply order; absent objects are fine.
pub async fn delete_all(client: &Client, planned: &[Planned]) -> anyhow::Result<()> {
    for p in plan::undeploy_order(planned) {
        match api_for(client, p).delete(&p.name, &DeleteParams::background()).await {
            Ok(_) => println!("deleted {}", p.label()),
            Err(kube::Error::Api(s)) if s.is_not_found() => println!("absent  {}", p.label()),
            Err(e) => return Err(anyhow::Error::new(e).context(format!("delete {}", p.label()))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod api_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_deploy_requires_cluster_instances() {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let prod = planned(&root, &RenderOptions::default()).unwrap();
        let msg = missing_settings(&prod).unwrap();
        assert!(
            msg.contains("Deployment/kube-system/nifcloud-csi-controller") && msg.contains("--cluster-instances"),
            "{msg}"
        );
        let set = RenderOptions {
            cluster_instances: Some("k8sworker*,k8smaster1".into()),
            ..RenderOptions::default()
        };
        assert_eq!(missing_settings(&planned(&root, &set).unwrap()), None);
        let emu = planned(
            &root,
            &RenderOptions {
                overlay: Overlay::Emulator,
                ..RenderOptions::default()
            },
        )
        .unwrap();
        assert_eq!(missing_settings(&emu), None, "the emulator overlay sets it");
    }

    #[test]
    fn production_deploy_requires_the_external_secret_and_emulator_does_not() {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let prod = planned(&root, &RenderOptions::default()).unwrap();
        assert_eq!(external_secret(&prod).as_deref(), Some(render::DEFAULT_SECRET));
        let emu = planned(
            &root,
            &RenderOptions {
                overlay: Overlay::Emulator,
                ..RenderOptions::default()
            },
        )
        .unwrap();
        assert_eq!(external_secret(&emu), None);
        let custom = planned(
            &root,
            &RenderOptions {
                secret: Some("s2".into()),
                ..RenderOptions::default()
            },
        )
        .unwrap();
        assert_eq!(external_secret(&custom).as_deref(), Some("s2"));
    }

    #[test]
    fn e2e_deploy_against_a_real_cluster() {
        let Ok(kubeconfig) = std::env::var("NIFCLOUD_E2E_KUBECONFIG") else {
            eprintln!("skipping: NIFCLOUD_E2E_KUBECONFIG is not set (needs a cluster with our images loaded)");
            return;
        };
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let status = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&root)
            .env("KUBECONFIG", kubeconfig)
            .args(["xtask", "deploy", "--emulator", "--timeout", "600"])
            .status()
            .unwrap();
        assert!(status.success(), "cargo xtask deploy --emulator failed");
    }
}
