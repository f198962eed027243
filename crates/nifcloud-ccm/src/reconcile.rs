//! The L4 reconcile loop: observe, plan, act, and re-observe after structural changes.

use cloudprovider::ProviderError;
use cloudprovider::k8s_openapi::api::core::v1::Service;
use nifcloud_cloud::Instance;

use crate::l4::plan::{self, DesiredL4, L4Action, ObservedL4, ObservedListener, WantListener};
use crate::l4::{self};
use crate::provider::{NOT_VISIBLE_RETRY, Shared, cloud_error, member_names};
use crate::spec::ServiceLb;

/// At most this many plan-act rounds per reconcile (create, then settings, then a safety margin).
const MAX_ROUNDS: usize = 4;

/// The desired L4 load balancer of a Service.
pub fn desired_l4(name: &str, lb: &ServiceLb, members: &[Instance]) -> DesiredL4 {
    let o = &lb.options;
    DesiredL4 {
        name: name.to_owned(),
        network_volume: o.network_volume,
        accounting_type: o.accounting_type,
        policy_type: o.policy_type.map(|p| p.as_str()),
        listeners: lb
            .listeners
            .iter()
            .map(|l| WantListener {
                port: l.port,
                instance_port: l.node_port,
                balancing_type: o.balancing_type,
                hc_target: l.hc_target.clone(),
                hc_interval: o.hc_interval,
                hc_unhealthy: o.hc_unhealthy_threshold,
            })
            .collect(),
        instances: member_names(members),
        filter: lb.filter.clone(),
    }
}

/// What a load balancer just created from `desired` is known to look like: its listeners, bandwidth, accounting
/// and policy as sent, the API's default allow-any filter, no members and an unknown health check.
pub fn assumed_after_create(desired: &DesiredL4, vip: &str) -> ObservedL4 {
    ObservedL4 {
        name: desired.name.clone(),
        vip: vip.to_owned(),
        network_volume: desired.network_volume,
        accounting_type: desired.accounting_type.map(|a| a.to_string()),
        next_month_accounting_type: None,
        policy_type: desired.policy_type.map(str::to_owned),
        listeners: desired
            .listeners
            .iter()
            .map(|l| ObservedListener {
                port: l.port,
                instance_port: l.instance_port,
                balancing_type: l.balancing_type,
                filter_type: "1".into(),
                filter: [crate::spec::ANY_SOURCE.to_owned()].into(),
                ..Default::default()
            })
            .collect(),
    }
}

/// Brings the Service's L4 load balancer `name` in line and returns its VIP.
pub async fn ensure_l4(
    sh: &Shared,
    cluster: &str,
    svc: &Service,
    name: &str,
    lb: &ServiceLb,
    members: &[Instance],
) -> Result<String, ProviderError> {
    let desired = desired_l4(name, lb, members);
    let mut observed = sh.get_l4(name).await?;
    if observed.is_some() && !sh.ownership(cluster, svc, name, false).is_owned() {
        let note = format!(
            "load balancer {name} exists but was not created by this cluster; it is left untouched \
             (choose another name with the name annotation)"
        );
        sh.warn(svc, "LoadBalancerNotOwned", note.clone()).await;
        return Err(ProviderError::invalid("LoadBalancerNotOwned", note));
    }
    let mut vip = observed.as_ref().map(|o| o.vip.clone()).unwrap_or_default();
    let mut freshly_created: Option<ObservedL4> = None;
    for round in 0..MAX_ROUNDS {
        let p = plan::plan(&desired, observed.as_ref());
        if round == 0 {
            for w in &p.warnings {
                sh.warn(svc, "LoadBalancerSettingNotApplied", w.clone()).await;
            }
        }
        if p.actions.is_empty() {
            break;
        }
        let structural = p.actions.iter().any(L4Action::is_structural);
        for action in &p.actions {
            tracing::info!(lb = name, ?action, "L4 load balancer change");
            let result = l4::execute(&sh.client, name, action).await;
            sh.l4.mark_dirty(name);
            let outcome = result.map_err(cloud_error)?;
            if matches!(action, L4Action::Create { .. }) {
                if outcome.already_existed {
                    if !sh.ownership(cluster, svc, name, false).is_owned() {
                        let note = format!("load balancer {name} already exists and was not created by this cluster");
                        sh.warn(svc, "LoadBalancerNotOwned", note.clone()).await;
                        return Err(ProviderError::invalid("LoadBalancerNotOwned", note));
                    }
                } else {
                    sh.record_created(cluster, svc, name).await;
                }
                if let Some(v) = outcome.created_vip {
                    if !outcome.already_existed && p.actions.len() == 1 {
                        freshly_created = Some(assumed_after_create(&desired, &v));
                    }
                    vip = v;
                }
            }
        }
        if !structural {
            break;
        }
        if let Some(assumed) = freshly_created.take() {
            // Just created by this call: its listeners and load-balancer settings are what was sent, and its
            // per-listener settings are unknown, so the next round sets them all without re-reading.
            observed = Some(assumed);
            continue;
        }
        observed = sh.get_l4(name).await?;
        match &observed {
            Some(o) => vip = o.vip.clone(),
            None => {
                return Err(ProviderError::retry_after(
                    NOT_VISIBLE_RETRY,
                    format!("load balancer {name} was created but is not visible yet"),
                ));
            }
        }
    }
    if vip.is_empty() {
        return Err(ProviderError::retry_after(
            NOT_VISIBLE_RETRY,
            format!("load balancer {name} has no VIP yet"),
        ));
    }
    Ok(vip)
}

/// Deletes the L4 load balancer `name` if it exists and this cluster owns it; a foreign one gets an Event and
/// is left alone. With `fresh`, the decision rests on a read of that name rather than the shared listing (for
/// Service deletion; the type-switch clean-up uses the listing).
pub async fn delete_l4_if_owned(
    sh: &Shared,
    cluster: &str,
    svc: &Service,
    name: &str,
    fresh: bool,
) -> Result<(), ProviderError> {
    if fresh {
        sh.l4.mark_dirty(name);
    }
    let Some(observed) = sh.get_l4(name).await? else {
        return Ok(());
    };
    if !sh.ownership(cluster, svc, name, false).is_owned() {
        sh.warn(
            svc,
            "LoadBalancerNotOwned",
            format!("load balancer {name} was not created by this cluster; not deleting it"),
        )
        .await;
        return Ok(());
    }
    for l in &observed.listeners {
        let action = L4Action::DeletePort {
            listener: (l.port, l.instance_port),
        };
        tracing::info!(lb = name, ?action, "L4 load balancer delete");
        let result = l4::execute(&sh.client, name, &action).await;
        sh.l4.mark_dirty(name);
        result.map_err(cloud_error)?;
    }
    Ok(())
}
