//! Prometheus metrics of the controllers and the leader elector, served at `/metrics`.

use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

fn histogram() -> Histogram {
    // 5 ms .. ~80 s
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

/// Every metric this crate exports.
#[derive(Debug)]
pub struct Metrics {
    reconciles: Family<Labels, Counter<u64, AtomicU64>>,
    errors: Family<Labels, Counter<u64, AtomicU64>>,
    duration: Family<Labels, Histogram, fn() -> Histogram>,
    in_flight: Family<Labels, Gauge<i64, AtomicI64>>,
    retrying: Family<Labels, Gauge<i64, AtomicI64>>,
    lb_sync: Counter<u64, AtomicU64>,
    nodesync_errors: Counter<u64, AtomicU64>,
    update_hosts_latency: Histogram,
    leader: Gauge<i64, AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            reconciles: Family::default(),
            errors: Family::default(),
            duration: Family::new_with_constructor(histogram),
            in_flight: Family::default(),
            retrying: Family::default(),
            lb_sync: Counter::default(),
            nodesync_errors: Counter::default(),
            update_hosts_latency: histogram(),
            leader: Gauge::default(),
        }
    }
}

fn labels(controller: &str) -> Labels {
    vec![("controller".to_owned(), controller.to_owned())]
}

impl Metrics {
    /// Registers every metric in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "cloudprovider_reconcile",
            "Reconciles run, by controller and result (ok, error, retry_after, invalid)",
            self.reconciles.clone(),
        );
        registry.register(
            "cloudprovider_reconcile_errors",
            "Reconciles that failed, by controller",
            self.errors.clone(),
        );
        registry.register(
            "cloudprovider_reconcile_duration_seconds",
            "Reconcile latency, by controller",
            self.duration.clone(),
        );
        registry.register(
            "cloudprovider_queue_in_flight",
            "Reconciles running now, by controller (part of the work queue depth)",
            self.in_flight.clone(),
        );
        registry.register(
            "cloudprovider_queue_retrying",
            "Objects waiting for a retry after a failure, by controller (the rest of the work queue depth)",
            self.retrying.clone(),
        );
        registry.register(
            "service_controller_loadbalancer_sync",
            "Load balancer ensures and updates attempted",
            self.lb_sync.clone(),
        );
        registry.register(
            "service_controller_nodesync_error",
            "Load balancer backend updates that failed",
            self.nodesync_errors.clone(),
        );
        registry.register(
            "service_controller_update_loadbalancer_host_latency_seconds",
            "Latency of load balancer backend updates",
            self.update_hosts_latency.clone(),
        );
        registry.register(
            "leader_election_master_status",
            "1 while this process holds the leader lease, 0 otherwise",
            self.leader.clone(),
        );
    }

    /// Counts one reconcile of `controller` with `result`, taking `elapsed`.
    pub fn reconciled(&self, controller: &str, result: &str, elapsed: Duration) {
        let mut l = labels(controller);
        self.duration.get_or_create(&l).observe(elapsed.as_secs_f64());
        if result == "error" {
            self.errors.get_or_create(&l).inc();
        }
        l.push(("result".to_owned(), result.to_owned()));
        self.reconciles.get_or_create(&l).inc();
    }

    /// Marks a reconcile of `controller` as started (`+1`) or finished (`-1`).
    pub fn in_flight(&self, controller: &str, delta: i64) {
        self.in_flight.get_or_create(&labels(controller)).inc_by(delta);
    }

    /// Sets how many objects of `controller` wait for a retry.
    pub fn set_retrying(&self, controller: &str, n: usize) {
        self.retrying
            .get_or_create(&labels(controller))
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts a load balancer sync.
    pub fn lb_synced(&self) {
        self.lb_sync.inc();
    }

    /// Records a backend update and whether it failed.
    pub fn hosts_updated(&self, elapsed: Duration, failed: bool) {
        self.update_hosts_latency.observe(elapsed.as_secs_f64());
        if failed {
            self.nodesync_errors.inc();
        }
    }

    /// Sets the leader gauge.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }
}

/// Renders `registry` in the Prometheus text format.
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_by_controller_and_result() {
        let m = Metrics::default();
        let mut r = Registry::default();
        m.register(&mut r);
        m.reconciled("service", "ok", Duration::from_millis(12));
        m.reconciled("service", "error", Duration::from_millis(40));
        m.set_leader(true);
        let text = render(&r).unwrap();
        assert!(
            text.contains(r#"cloudprovider_reconcile_total{controller="service",result="ok"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"cloudprovider_reconcile_errors_total{controller="service"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"cloudprovider_reconcile_duration_seconds_count{controller="service"} 2"#),
            "{text}"
        );
        assert!(text.contains("leader_election_master_status 1"), "{text}");
    }
}
