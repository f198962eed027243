//! The load-balancer seam: [`Backend`], which the L4 ([`crate::l4`]) and elastic ([`crate::elb`]) kinds
//! implement, and [`Fleet`], which holds the shared view of every load balancer of one kind and runs the one loop
//! that converges a load balancer ([`Fleet::converge`]), deletes it ([`Fleet::delete`]) or reads its VIP
//! ([`Fleet::vip`]) for either kind.
//!
//! The members of a load balancer are the servers of the eligible nodes; for an `externalTrafficPolicy: Local`
//! Service of a kind whose health check cannot tell which nodes host a ready endpoint
//! ([`Backend::FOLLOWS_ENDPOINTS`]), only the servers of the nodes that do ([`members`]).
//!
//! Converging is: check ownership, then up to [`Backend::MAX_ROUNDS`] rounds of plan (pure) → execute each action
//! (marking the load balancer dirty in the shared view) → re-read when the plan changed the listener set, because
//! the settings of a new listener can only be planned once it exists. A load balancer this process has just
//! created may skip that re-read when its backend knows what it looks like ([`Backend::assumed_after_create`]).

use std::fmt::Debug;
use std::time::Duration;

use cloudprovider::k8s_openapi::api::core::v1::Service;
use nifcloud_cloud::{CloudError, Instance};
use nifcloud_sdk::Client;

use crate::annotations::LbKind;
use crate::context::{Context, NodeServer};
use crate::error::{Error, LbRef};
use crate::lbview::{LbView, Named};
use crate::spec::ServiceLb;

/// Whose load balancer is being worked on.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// `--cluster-name`: part of generated names and ownership records.
    pub cluster: &'a str,
    /// The Service (Events, ownership annotation).
    pub service: &'a Service,
    /// The load balancer's name on NIFCLOUD.
    pub name: &'a str,
}

impl<'a> Subject<'a> {
    /// The load balancer `name` of `service` in `cluster`.
    pub fn new(cluster: &'a str, service: &'a Service, name: &'a str) -> Self {
        Self { cluster, service, name }
    }
}

/// The calls that turn an observed load balancer into the desired one, in order, and what no call can fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan<A> {
    /// The calls, in the order to make them.
    pub actions: Vec<A>,
    /// Differences no call can fix (settings chosen at creation only); each becomes a Warning Event.
    pub warnings: Vec<String>,
    /// Whether the actions create the load balancer or change its listener set, or leave a result only the
    /// service decides (whether an L4 filter still lists `*.*.*.*` beside the addresses added), so that it must be
    /// read again before the rest can be planned.
    pub reshapes: bool,
}

impl<A> Default for Plan<A> {
    fn default() -> Self {
        Self {
            actions: Vec::new(),
            warnings: Vec::new(),
            reshapes: false,
        }
    }
}

/// What one executed action did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The change was made, or the API answered that it already was.
    Applied,
    /// The load balancer was created; the API reported this VIP, if any.
    Created {
        /// The VIP from the create reply.
        vip: Option<String>,
    },
    /// The create found the name taken: someone created it meanwhile (maybe this process, before a retry).
    NameTaken,
}

/// One kind of NIFCLOUD load balancer, as [`Fleet`] drives it. Implementations do the IO (`describe`, `execute`,
/// `settle`); the rest is pure.
///
/// The provided methods come first: they are what sets a kind apart (an ownership marker, a state known right
/// after creation, a wait between changes), and an implementation overrides only those its kind needs.
pub trait Backend: Send + Sync {
    /// What a Service asks of a load balancer of this kind.
    type Desired: Send + Sync;
    /// What a load balancer of this kind looks like, as read from the API.
    type Observed: Clone + Named + Send + Sync + 'static;
    /// One API call that changes a load balancer of this kind.
    type Action: Debug + Send + Sync;

    /// The kind (errors, logs).
    const KIND: LbKind;
    /// At most this many plan-execute rounds per converge: a create, then the settings of its listeners, then a
    /// safety margin.
    const MAX_ROUNDS: usize = 4;
    /// Whether, for a Service with `externalTrafficPolicy: Local`, only the servers of nodes hosting a ready
    /// endpoint are members ([`members`]). The default, `false`: every eligible node's server is a member and the
    /// health check tells them apart (kube-proxy answers an HTTP check of `healthCheckNodePort` with 200 only
    /// where an endpoint is ready). A kind whose checks are only TCP or ICMP, which pass on every node, sets it.
    const FOLLOWS_ENDPOINTS: bool = false;

    /// Whether `observed` carries `cluster`'s ownership marker. The default: this kind has no marker.
    fn marked(_observed: &Self::Observed, _cluster: &str) -> bool {
        false
    }

    /// What a load balancer just created from `desired` with `vip` is known to look like, when that is known
    /// without reading it; `None` (the default): read it. A kind whose [`Backend::health_check_sources`] are
    /// assigned by NIFCLOUD must read it.
    fn assumed_after_create(_desired: &Self::Desired, _vip: &str) -> Option<Self::Observed> {
        None
    }

    /// The addresses, besides the VIP, that `observed` sends its health checks from, which the members'
    /// security group must admit ([`crate::sg`]). The default: none, its checks come from the VIP.
    fn health_check_sources(_observed: &Self::Observed) -> Vec<String> {
        Vec::new()
    }

    /// Waits until the load balancer `name` accepts changes again; called after each round of changes, so that
    /// a converged load balancer is left ready. The default returns at once.
    fn settle(&self, _ctx: &Context, _name: &str) -> impl Future<Output = Result<(), CloudError>> + Send {
        async { Ok(()) }
    }

    /// Whether this cluster may change and delete `observed` (`None`: not read), the load balancer of `subject`.
    fn owned(&self, ctx: &Context, subject: &Subject<'_>, observed: Option<&Self::Observed>) -> bool {
        let marked = observed.is_some_and(|o| Self::marked(o, subject.cluster));
        ctx.ownership(subject.cluster, subject.service, subject.name, marked)
            .is_owned()
    }

    /// What the Service `spec` asks of its load balancer with these member servers.
    fn desired(&self, ctx: &Context, subject: &Subject<'_>, spec: &ServiceLb, members: &[Instance]) -> Self::Desired;

    /// Reads the load balancer `name`, or every one of this kind when `None`, in one call.
    fn describe(
        &self,
        client: &Client,
        name: Option<&str>,
    ) -> impl Future<Output = Result<Vec<Self::Observed>, CloudError>> + Send;

    /// The calls that turn `observed` (`None`: it does not exist) into `desired`.
    fn plan(desired: &Self::Desired, observed: Option<&Self::Observed>) -> Plan<Self::Action>;

    /// Makes one call on the load balancer `name` (waiting first if the kind needs it). Answers that mean
    /// "already done" count as success.
    fn execute(
        &self,
        ctx: &Context,
        name: &str,
        action: &Self::Action,
    ) -> impl Future<Output = Result<Outcome, CloudError>> + Send;

    /// The VIP of `observed` (empty while it has none).
    fn vip(observed: &Self::Observed) -> &str;

    /// The calls that delete `observed` entirely.
    fn teardown(observed: &Self::Observed) -> Vec<Self::Action>;
}

/// The Event reason of the warning that a load balancer following its Service's endpoints has no member.
pub const NO_READY_ENDPOINTS_REASON: &str = "NoReadyEndpoints";

/// The member servers of a load balancer of a kind that does (`follows_endpoints`) or does not follow endpoints:
/// every server in `servers`, except, for an `externalTrafficPolicy: Local` Service of a kind that follows its
/// endpoints, the servers of nodes known to host no ready endpoint. With no ready endpoint anywhere that is none:
/// kube-proxy would drop the traffic on every node anyway.
pub fn members(spec: &ServiceLb, follows_endpoints: bool, servers: &[NodeServer]) -> Vec<Instance> {
    let only_ready = follows_endpoints && spec.local_traffic_policy;
    servers
        .iter()
        .filter(|s| !only_ready || s.has_ready_endpoint != Some(false))
        .map(|s| s.server.clone())
        .collect()
}

/// A converged load balancer: where clients reach it, and where it checks its members from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Converged {
    /// The VIP.
    pub vip: String,
    /// [`Backend::health_check_sources`] of the load balancer as last read (or assumed) by [`Fleet::converge`].
    pub health_check_sources: Vec<String>,
}

/// Which read a deletion decides on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// The shared listing (cheap; for the clean-up of the other kind after a Service switched kinds).
    Listing,
    /// A read of that one name (for Service deletion, which must not miss a load balancer).
    Fresh,
}

/// Every load balancer of one kind: its [`Backend`] and the shared, coalescing view of them all.
#[derive(Debug)]
pub struct Fleet<B: Backend> {
    backend: B,
    view: LbView<B::Observed>,
}

impl<B: Backend> Fleet<B> {
    /// The load balancers `backend` drives, the shared listing living for `ttl`.
    pub fn new(backend: B, ttl: Duration) -> Self {
        Self {
            backend,
            view: LbView::new(ttl),
        }
    }

    /// The load balancer `name` through the shared view: the region-wide listing, or a read of that name when
    /// this process changed it after the listing started.
    pub async fn observed(&self, ctx: &Context, name: &str) -> Result<Option<B::Observed>, Error> {
        let all = || self.backend.describe(&ctx.client, None);
        let one = || async {
            match self.backend.describe(&ctx.client, Some(name)).await {
                Ok(found) => Ok(found.into_iter().find(|o| o.name() == name)),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e),
            }
        };
        self.view
            .get(name, all, one)
            .await
            .map_err(|source| Error::ReadLoadBalancer {
                lb: Self::lb(name),
                source,
            })
    }

    /// The load balancer `name` of this kind, for errors.
    fn lb(name: &str) -> LbRef {
        LbRef {
            kind: B::KIND,
            name: name.to_owned(),
        }
    }

    async fn settle(&self, ctx: &Context, name: &str) -> Result<(), Error> {
        let settled = self.backend.settle(ctx, name).await;
        settled.map_err(|source| Error::WaitForLoadBalancer {
            lb: Self::lb(name),
            source,
        })
    }

    /// Executes `action` and marks the load balancer dirty in the view whatever the answer, since a failed call
    /// may still have changed it.
    async fn step(
        &self,
        ctx: &Context,
        name: &str,
        action: &B::Action,
        failed: impl FnOnce(CloudError) -> Error,
    ) -> Result<Outcome, Error> {
        tracing::info!(kind = %B::KIND, lb = name, ?action, "load balancer change");
        let result = self.backend.execute(ctx, name, action).await;
        self.view.mark_dirty(name);
        result.map_err(failed)
    }

    /// Brings the load balancer of `subject` in line with `spec`, with the [`members`] of `servers` (the servers
    /// of the eligible nodes), creating it if needed, and returns its VIP and health-check sources. A load
    /// balancer this cluster does not own is left untouched ([`Error::NotOwned`]).
    pub async fn converge(
        &self,
        ctx: &Context,
        subject: &Subject<'_>,
        spec: &ServiceLb,
        servers: &[NodeServer],
    ) -> Result<Converged, Error> {
        let name = subject.name;
        let members = members(spec, B::FOLLOWS_ENDPOINTS, servers);
        if members.is_empty() && !servers.is_empty() {
            let note = format!(
                "externalTrafficPolicy is Local and no node hosts a ready endpoint of the Service: {} {name} has \
                 no member until one does",
                B::KIND
            );
            ctx.warn(subject.service, NO_READY_ENDPOINTS_REASON, note).await;
        }
        let desired = self.backend.desired(ctx, subject, spec, &members);
        let mut observed = self.observed(ctx, name).await?;
        if observed.is_some() && !self.backend.owned(ctx, subject, observed.as_ref()) {
            return Err(Error::NotOwned { lb: Self::lb(name) });
        }
        let mut vip = observed.as_ref().map(|o| B::vip(o).to_owned()).unwrap_or_default();
        for round in 0..B::MAX_ROUNDS {
            let plan = B::plan(&desired, observed.as_ref());
            if round == 0 {
                for w in &plan.warnings {
                    ctx.warn(subject.service, "LoadBalancerSettingNotApplied", w.clone())
                        .await;
                }
            }
            if plan.actions.is_empty() {
                break;
            }
            let mut assumed = None;
            for action in &plan.actions {
                let failed = |source| Error::ChangeLoadBalancer {
                    lb: Self::lb(name),
                    source,
                };
                match self.step(ctx, name, action, failed).await? {
                    Outcome::Applied => {}
                    Outcome::NameTaken if self.backend.owned(ctx, subject, None) => {}
                    Outcome::NameTaken => return Err(Error::NotOwned { lb: Self::lb(name) }),
                    Outcome::Created { vip: created } => {
                        ctx.record_created(subject.cluster, subject.service, name).await;
                        if let Some(v) = created {
                            assumed = B::assumed_after_create(&desired, &v);
                            vip = v;
                        }
                    }
                }
            }
            self.settle(ctx, name).await?;
            if !plan.reshapes {
                break;
            }
            if assumed.is_some() {
                // Just created by this call: its state is what was sent, so the next round plans the rest
                // without reading it.
                observed = assumed;
                continue;
            }
            observed = self.observed(ctx, name).await?;
            match &observed {
                Some(o) => vip = B::vip(o).to_owned(),
                None => {
                    return Err(Error::NotVisibleYet { lb: Self::lb(name) });
                }
            }
        }
        if vip.is_empty() {
            return Err(Error::NoVipYet { lb: Self::lb(name) });
        }
        // The last read (or assumed) state: no change a plan makes after it moves the addresses checks come from.
        let health_check_sources = observed.as_ref().map(B::health_check_sources).unwrap_or_default();
        Ok(Converged {
            vip,
            health_check_sources,
        })
    }

    /// Deletes the load balancer of `subject` if it exists and this cluster owns it; one it does not own gets a
    /// Warning Event and is left alone.
    pub async fn delete(&self, ctx: &Context, subject: &Subject<'_>, read: Read) -> Result<(), Error> {
        let name = subject.name;
        if read == Read::Fresh {
            self.view.mark_dirty(name);
        }
        let Some(observed) = self.observed(ctx, name).await? else {
            return Ok(());
        };
        if !self.backend.owned(ctx, subject, Some(&observed)) {
            let note = format!("{} {name} was not created by this cluster; not deleting it", B::KIND);
            ctx.warn(subject.service, "LoadBalancerNotOwned", note).await;
            return Ok(());
        }
        for action in B::teardown(&observed) {
            let failed = |source| Error::DeleteLoadBalancer {
                lb: Self::lb(name),
                source,
            };
            self.step(ctx, name, &action, failed).await?;
        }
        Ok(())
    }

    /// The VIP of the load balancer of `subject`, if it exists, this cluster owns it and it has one.
    pub async fn vip(&self, ctx: &Context, subject: &Subject<'_>) -> Result<Option<String>, Error> {
        let observed = self.observed(ctx, subject.name).await?;
        Ok(observed
            .filter(|o| self.backend.owned(ctx, subject, Some(o)))
            .map(|o| B::vip(&o).to_owned())
            .filter(|v| !v.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::LbDefaults;
    use crate::spec::tests_support::svc;

    fn server(name: &str, has_ready_endpoint: Option<bool>) -> NodeServer {
        NodeServer {
            server: Instance {
                name: name.into(),
                unique_id: format!("i-{name}"),
                zone: "east-11".into(),
                instance_type: "e-small".into(),
                state: nifcloud_cloud::InstanceState::Running,
                addresses: Vec::new(),
                security_groups: Vec::new(),
            },
            has_ready_endpoint,
        }
    }

    #[test]
    fn members_follow_endpoints_only_for_local_services_of_kinds_that_need_it() {
        let marked = [
            server("n1", Some(true)),
            server("n2", Some(false)),
            server("n3", Some(true)),
        ];
        let none_ready = [server("n1", Some(false)), server("n2", Some(false))];
        let unmarked = [server("n1", None), server("n2", None)];
        /// (what, policy, follows endpoints, servers, members)
        type Row<'a> = (&'a str, &'a str, bool, &'a [NodeServer], &'a [&'a str]);
        let table: Vec<Row<'_>> = vec![
            (
                "Local, following: nodes with a ready endpoint",
                "Local",
                true,
                &marked,
                &["n1", "n3"],
            ),
            (
                "Local, following, no ready endpoint: none",
                "Local",
                true,
                &none_ready,
                &[],
            ),
            (
                "Local, following, nothing marked (unknown): all",
                "Local",
                true,
                &unmarked,
                &["n1", "n2"],
            ),
            (
                "Local, not following (elastic): all",
                "Local",
                false,
                &marked,
                &["n1", "n2", "n3"],
            ),
            (
                "Cluster, following: all, marks ignored",
                "Cluster",
                true,
                &marked,
                &["n1", "n2", "n3"],
            ),
            (
                "Cluster, not following: all",
                "Cluster",
                false,
                &none_ready,
                &["n1", "n2"],
            ),
        ];
        for (what, policy, follows, servers, want) in table {
            let mut s = svc(&[(80, 30080)], &[]);
            s.spec.as_mut().unwrap().external_traffic_policy = Some(policy.into());
            let spec = crate::spec::service_lb(&s, &LbDefaults::default()).unwrap();
            let got: Vec<String> = members(&spec, follows, servers).into_iter().map(|m| m.name).collect();
            assert_eq!(got, want, "{what}");
        }
    }
}
