//! [`Balancers`]: a Service's load balancer over both kinds. Ensuring validates the Service, converges the load
//! balancer of its kind, removes one of the other kind it may have left behind, and keeps the security-group rules
//! (from its VIP and the addresses it checks from); deleting removes both kinds and the rules.
//!
//! A load balancer of the other kind can only be left behind by a Service that switched kinds, so it is looked for
//! until it is known gone: once per load-balancer name and kind in a leader term, not at every resync. A steady
//! resync of every Service then costs one server listing and one listing of its own kind, however many Services
//! there are (the listing of the other kind is made again only when some Service's kind or name is new to the
//! process). What "known gone" rests on, and why it is enough:
//! - only the leader creates load balancers, and the kind a name is ensured as only changes through the Service,
//!   which the leader sees (a switch ensures the name as a kind it was not cleared for: the other kind is looked
//!   for again);
//! - the record is emptied whenever the provider is initialized, which the framework does before it competes for
//!   the lease (the binary exits when it loses the lease, so a new term is a new process anyway): whatever another
//!   leader did meanwhile is looked for again;
//! - a failed clean-up records nothing, so the next sync looks again; deleting a Service forgets its name. (One of
//!   the other kind that this cluster does not own is left alone, as before; its Warning Event now comes once per
//!   term instead of at every resync.)
//!
//! Drift of the Service's own load balancer made outside the cluster is still seen at every resync: its kind's
//! listing is read again once the cache TTL is over.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cloudprovider::TargetNode;
use cloudprovider::k8s_openapi::api::core::v1::Service;
use nifcloud_cloud::Instance;

use crate::annotations::LbKind;
use crate::backend::{Backend, Converged, Fleet, Read, Subject};
use crate::context::Context;
use crate::elb::ElbBackend;
use crate::error::Error;
use crate::l4::L4Backend;
use crate::{sg, spec};

/// The load balancers of every Service, of both kinds.
#[derive(Debug)]
pub struct Balancers {
    /// Client, settings, server view and ownership records, shared with the instance half.
    pub context: Arc<Context>,
    /// The L4 load balancers and their shared listing.
    pub l4: Fleet<L4Backend>,
    /// The elastic load balancers and their shared listing.
    pub elb: Fleet<ElbBackend>,
    /// Load-balancer name -> the kind it was last ensured as, once no load balancer of the other kind was left
    /// under that name (see the module documentation).
    cleared: Mutex<HashMap<String, LbKind>>,
}

impl Balancers {
    /// Both kinds over `context`, their shared listings living for the configured cache TTL.
    pub fn new(context: Arc<Context>) -> Self {
        let ttl = context.settings.cache_ttl;
        Self {
            context,
            l4: Fleet::new(L4Backend, ttl),
            elb: Fleet::new(ElbBackend, ttl),
            cleared: Mutex::new(HashMap::new()),
        }
    }

    /// Whether no load balancer of the other kind than `kind` is left under `name` (as far as this leader term
    /// knows): it was looked for after `name` was last ensured as `kind`.
    fn other_kind_cleared(&self, name: &str, kind: LbKind) -> bool {
        let cleared = self.cleared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cleared.get(name) == Some(&kind)
    }

    /// Records whether `name` is now cleared of the other kind than `kind` (`None`: forget the name).
    fn set_cleared(&self, name: &str, kind: Option<LbKind>) {
        let mut cleared = self.cleared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match kind {
            Some(k) => cleared.insert(name.to_owned(), k),
            None => cleared.remove(name),
        };
    }

    /// Forgets which names are cleared of the other kind, so that the next ensure of each looks again: called when
    /// the provider is (re)initialized, before its process competes for the lease.
    pub fn forget_cleared(&self) {
        self.cleared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// Creates the Service's load balancer or brings it in line, with the servers behind `nodes` as members, and
    /// returns its VIP.
    pub async fn ensure(&self, cluster: &str, svc: &Service, nodes: &[TargetNode]) -> Result<String, Error> {
        let ctx = &*self.context;
        let spec =
            spec::service_lb(svc, &ctx.settings.lb_defaults).map_err(|problems| Error::InvalidService { problems })?;
        for w in &spec.warnings {
            ctx.warn(svc, w.reason, w.message.clone()).await;
        }
        let name = ctx.lb_name(cluster, svc, Some(&spec.options))?;
        let servers = ctx.servers(nodes).await?;
        let subject = Subject::new(cluster, svc, &name);
        // A Service that switched kinds leaves the other kind behind: remove it once the new one works, and look
        // for it only until it is known gone (see the module documentation).
        let kind = spec.options.kind;
        let look = !self.other_kind_cleared(&name, kind);
        let converged = match kind {
            LbKind::L4 => {
                let converged = self.l4.converge(ctx, &subject, &spec, &servers).await?;
                if look {
                    self.elb.delete(ctx, &subject, Read::Listing).await?;
                }
                converged
            }
            LbKind::Elastic => {
                let converged = self.elb.converge(ctx, &subject, &spec, &servers).await?;
                if look {
                    self.l4.delete(ctx, &subject, Read::Listing).await?;
                }
                converged
            }
        };
        if look {
            self.set_cleared(&name, Some(kind));
        }
        if ctx.settings.security_group.is_some() {
            // Every eligible node's server, members or not: the group is theirs, and endpoints move.
            let all: Vec<Instance> = servers.into_iter().map(|s| s.server).collect();
            let Converged {
                vip,
                health_check_sources,
            } = &converged;
            sg::ensure_rules(ctx, svc, &name, &spec, &all, vip, health_check_sources).await?;
        }
        Ok(converged.vip)
    }

    /// Whether the members of the Service's load balancer follow its endpoints under `externalTrafficPolicy:
    /// Local` ([`crate::backend::Backend::FOLLOWS_ENDPOINTS`] of its kind), so that the framework marks the nodes
    /// hosting a ready endpoint and re-syncs when they change.
    pub fn wants_endpoint_nodes(&self, cluster: &str, svc: &Service) -> bool {
        match self.context.lookup(cluster, svc) {
            Ok((_, LbKind::L4)) => L4Backend::FOLLOWS_ENDPOINTS,
            Ok((_, LbKind::Elastic)) => ElbBackend::FOLLOWS_ENDPOINTS,
            Err(_) => false,
        }
    }

    /// The VIP of the Service's load balancer, if it exists, this cluster owns it and it has one.
    pub async fn vip(&self, cluster: &str, svc: &Service) -> Result<Option<String>, Error> {
        let ctx = &*self.context;
        let (name, kind) = ctx.lookup(cluster, svc)?;
        let subject = Subject::new(cluster, svc, &name);
        match kind {
            LbKind::L4 => self.l4.vip(ctx, &subject).await,
            LbKind::Elastic => self.elb.vip(ctx, &subject).await,
        }
    }

    /// Deletes the Service's load balancer (of either kind, if this cluster owns it) and its security-group rules.
    pub async fn delete(&self, cluster: &str, svc: &Service) -> Result<(), Error> {
        let ctx = &*self.context;
        let (name, _) = ctx.lookup(cluster, svc)?;
        let subject = Subject::new(cluster, svc, &name);
        self.set_cleared(&name, None);
        self.l4.delete(ctx, &subject, Read::Fresh).await?;
        self.elb.delete(ctx, &subject, Read::Fresh).await?;
        if ctx.settings.security_group.is_some() {
            sg::remove_rules(ctx, &name).await?;
        }
        Ok(())
    }
}
