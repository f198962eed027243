//! Prometheus metrics per CSI method and gRPC status code.
//!
//! `csi_rpc_requests_total{method,code}` counts finished calls and
//! `csi_rpc_duration_seconds{method,code}` records their latency. A call whose future is dropped
//! (the client went away) is recorded with code `Cancelled`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of every CSI RPC metric.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// The RPC name, e.g. `NodeStageVolume`.
    pub method: String,
    /// The gRPC status code name, e.g. `Ok` or `InvalidArgument`.
    pub code: String,
}

/// Latency buckets in seconds: from 5 ms to 5 minutes (cloud attach waits are long).
const BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

fn new_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The CSI RPC metric families. Share one instance (in an `Arc`) between services.
#[derive(Debug, Clone)]
pub struct CsiMetrics {
    requests: Family<RpcLabels, Counter>,
    duration: Family<RpcLabels, Histogram, fn() -> Histogram>,
}

impl Default for CsiMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl CsiMetrics {
    /// Fresh, unregistered families.
    pub fn new() -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(new_histogram as fn() -> Histogram),
        }
    }

    /// Registers the families into `registry` (the binary serves it on `/metrics`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "csi_rpc_requests",
            "CSI RPCs handled, by method and gRPC status code",
            self.requests.clone(),
        );
        registry.register(
            "csi_rpc_duration_seconds",
            "CSI RPC latency in seconds, by method and gRPC status code",
            self.duration.clone(),
        );
    }

    /// New families already registered in a new registry.
    pub fn with_registry() -> (Self, Registry) {
        let metrics = Self::new();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        (metrics, registry)
    }

    /// Records one finished call.
    pub fn observe(&self, method: &str, code: tonic::Code, elapsed: Duration) {
        let labels = RpcLabels {
            method: method.to_string(),
            code: format!("{code:?}"),
        };
        self.requests.get_or_create(&labels).inc();
        self.duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    /// How many calls of `method` ended with `code` (for tests and diagnostics).
    pub fn count(&self, method: &str, code: tonic::Code) -> u64 {
        let labels = RpcLabels {
            method: method.to_string(),
            code: format!("{code:?}"),
        };
        self.requests.get_or_create(&labels).get()
    }
}

/// Renders `registry` in the OpenMetrics text format.
pub fn encode_text(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_encodes() {
        let (m, registry) = CsiMetrics::with_registry();
        m.observe("CreateVolume", tonic::Code::Ok, Duration::from_millis(3));
        m.observe("CreateVolume", tonic::Code::Ok, Duration::from_millis(30));
        m.observe("CreateVolume", tonic::Code::Aborted, Duration::from_millis(1));
        assert_eq!(m.count("CreateVolume", tonic::Code::Ok), 2);
        assert_eq!(m.count("CreateVolume", tonic::Code::Aborted), 1);
        let text = encode_text(&registry).unwrap();
        assert!(
            text.contains(r#"csi_rpc_requests_total{method="CreateVolume",code="Ok"} 2"#),
            "{text}"
        );
        assert!(text.contains("csi_rpc_duration_seconds_bucket"), "{text}");
    }
}
