//! The CCM's side of the demo on a real cluster (`KUBECONFIG` set): the article's nginx Deployment and
//! `type: LoadBalancer` Service are applied, and the demo waits for the CCM to give the Service its external IP.
//!
//! It expects the stack deployed with `cargo xtask deploy --emulator` (CCM and CSI pointed at an in-cluster
//! emulator); the nodes registered behind the load balancer are then read from that emulator through the API
//! server's service proxy.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{Patch, PatchParams};

use super::{say, step};
use crate::render::kustomize::yaml_options;

const MANAGER: &str = "nifcloud-xtask-demo";
const CCM_NAMESPACE: &str = "kube-system";
const CCM_DEPLOYMENT: &str = "nifcloud-cloud-controller-manager";
const EMULATOR_PROXY: &str = "/api/v1/namespaces/kube-system/services/nifcloud-emulator:api/proxy/admin/state";
const EXAMPLE: &str = include_str!("../../../deploy/examples/nginx.yaml");

/// Runs the cluster part; `Ok(false)` when the cluster has no CCM of ours (the caller then runs the local part).
pub async fn nginx_on_cluster(n: &mut u32) -> anyhow::Result<bool> {
    step(
        n,
        "KUBECONFIG is set: the article's nginx LoadBalancer Service on your cluster",
    );
    let client = kube::Client::try_default()
        .await
        .context("connect to the cluster in KUBECONFIG")?;
    let ccm: Api<Deployment> = Api::namespaced(client.clone(), CCM_NAMESPACE);
    if ccm
        .get_opt(CCM_DEPLOYMENT)
        .await
        .context("look up the CCM Deployment")?
        .is_none()
    {
        say(format!(
            "no {CCM_NAMESPACE}/{CCM_DEPLOYMENT} on this cluster: run `cargo xtask deploy --emulator` first"
        ));
        say("falling back to the local walk-through");
        return Ok(false);
    }
    let params = PatchParams::apply(MANAGER).force();
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple_with_options(EXAMPLE, yaml_options()).context("parse the nginx example")?;
    for value in docs {
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default()
            .to_owned();
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        match (kind.as_str(), name.as_str()) {
            ("Deployment", "nginx") => {
                let d: Deployment = serde_json::from_value(value)?;
                Api::<Deployment>::namespaced(client.clone(), "default")
                    .patch("nginx", &params, &Patch::Apply(&d))
                    .await?;
            }
            ("Service", "nginx") => {
                let s: Service = serde_json::from_value(value)?;
                Api::<Service>::namespaced(client.clone(), "default")
                    .patch("nginx", &params, &Patch::Apply(&s))
                    .await?;
            }
            _ => continue,
        }
        say(format!("applied {kind} default/{name}"));
    }

    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let deadline = Instant::now() + Duration::from_secs(300);
    let ip = loop {
        let svc = services.get("nginx").await?;
        let ip = svc
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|lb| lb.ingress)
            .and_then(|i| i.into_iter().find_map(|i| i.ip));
        if let Some(ip) = ip {
            break ip;
        }
        if Instant::now() > deadline {
            bail!("Service default/nginx got no external IP within 5 minutes: see `kubectl describe svc nginx`");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    say(format!("Service nginx: EXTERNAL-IP {ip}"));

    let request = http::Request::get(EMULATOR_PROXY).body(Vec::new())?;
    match client.request_text(request).await {
        Ok(text) => {
            let state: serde_json::Value = serde_json::from_str(&text).context("the emulator's state")?;
            say(format!(
                "servers registered behind {ip}: {}",
                registered_behind(&state, &ip).join(", ")
            ));
        }
        Err(e) => say(format!(
            "could not read the in-cluster emulator ({e}); the NIFCLOUD console shows the servers"
        )),
    }
    say("remove it with: kubectl delete -f deploy/examples/nginx.yaml");
    Ok(true)
}

/// The names of the servers registered on any port of the load balancer whose VIP is `ip`.
pub(super) fn registered_behind(state: &serde_json::Value, ip: &str) -> Vec<String> {
    let name_of = |id: &str| {
        state["instances"]
            .as_object()
            .and_then(|all| all.values().find(|i| i["unique_id"] == id || i["name"] == id))
            .and_then(|i| i["name"].as_str())
            .unwrap_or(id)
            .to_owned()
    };
    let mut names: Vec<String> = state["load_balancers"]
        .as_object()
        .into_iter()
        .flat_map(|lbs| lbs.values())
        .filter(|lb| lb["vip"] == ip)
        .flat_map(|lb| lb["ports"].as_array().cloned().unwrap_or_default())
        .flat_map(|port| port["instances"].as_array().cloned().unwrap_or_default())
        .filter_map(|id| id.as_str().map(name_of))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_behind_a_vip_are_named() {
        let state = serde_json::json!({
            "instances": {"i-1": {"name": "node1", "unique_id": "i-1"}, "i-2": {"name": "node2", "unique_id": "i-2"}},
            "load_balancers": {
                "a": {"vip": "198.51.100.1", "ports": [{"instances": ["i-2", "i-1"]}, {"instances": ["i-1"]}]},
                "b": {"vip": "198.51.100.2", "ports": [{"instances": ["i-9"]}]}
            }
        });
        assert_eq!(registered_behind(&state, "198.51.100.1"), vec!["node1", "node2"]);
        assert_eq!(registered_behind(&state, "198.51.100.2"), vec!["i-9"]);
        assert!(registered_behind(&state, "203.0.113.9").is_empty());
    }

    #[test]
    fn the_example_holds_the_article_objects() {
        let kinds: Vec<String> = serde_saphyr::from_multiple_with_options::<serde_json::Value>(EXAMPLE, yaml_options())
            .unwrap()
            .iter()
            .map(|d| d["kind"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(kinds, ["Deployment", "Service", "PersistentVolumeClaim", "Deployment"]);
    }
}
