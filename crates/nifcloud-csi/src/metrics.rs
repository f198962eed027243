//! Prometheus metrics of the NIFCLOUD API calls the driver makes, and the `/metrics` endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use nifcloud_sdk::metrics::{MetricsHook, Outcome};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of one API call record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ApiLabels {
    /// The action, e.g. `DescribeVolumes`.
    pub action: String,
    /// `success`, the NIFCLOUD error code, or `failure`.
    pub outcome: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
}

/// Counts NIFCLOUD API calls by action and outcome, with latency (an SDK [`MetricsHook`]).
#[derive(Debug, Clone)]
pub struct ApiMetrics {
    calls: Family<ApiLabels, Counter>,
    latency: Family<ApiLabels, Histogram, fn() -> Histogram>,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self {
            calls: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
        }
    }
}

impl ApiMetrics {
    /// Registers the families.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "nifcloud_api_calls",
            "NIFCLOUD API calls by action and outcome (after SDK retries)",
            self.calls.clone(),
        );
        registry.register(
            "nifcloud_api_call_duration_seconds",
            "NIFCLOUD API call latency including retries",
            self.latency.clone(),
        );
    }

    /// Calls of `action` that ended with `outcome` so far.
    pub fn count(&self, action: &str, outcome: &str) -> u64 {
        self.calls
            .get_or_create(&ApiLabels {
                action: action.to_string(),
                outcome: outcome.to_string(),
            })
            .get()
    }
}

impl MetricsHook for ApiMetrics {
    fn record(&self, action: &str, outcome: Outcome<'_>, _attempts: u32, latency: Duration) {
        let labels = ApiLabels {
            action: action.to_string(),
            outcome: outcome.label().to_string(),
        };
        self.calls.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(latency.as_secs_f64());
    }
}

/// The same client configuration with `hook` recording every call.
pub fn instrument_client(client: &nifcloud_sdk::Client, hook: Arc<dyn MetricsHook>) -> nifcloud_sdk::Client {
    client.with_metrics(hook)
}

/// Whether metrics served on `addr` can be read from elsewhere than this host (or pod): anything but loopback.
pub fn reachable_from_outside(addr: SocketAddr) -> bool {
    !addr.ip().is_loopback()
}

/// Serves `GET /metrics` (OpenMetrics text) on `addr` until the task is dropped: plain HTTP without
/// authentication, so keep `addr` on loopback (the binary's default) unless whoever can reach it may read them.
pub async fn serve_metrics(addr: SocketAddr, registry: Arc<Registry>) -> std::io::Result<()> {
    use axum::response::IntoResponse;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = Arc::clone(&registry);
            async move {
                match csi_core::metrics::encode_text(&registry) {
                    Ok(text) => (
                        [(
                            "content-type",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        text,
                    )
                        .into_response(),
                    Err(_) => (
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        "metrics encoding failed\n",
                    )
                        .into_response(),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    if reachable_from_outside(addr) {
        tracing::warn!(
            %addr,
            "serving /metrics over plain HTTP without authentication to anyone who can reach this address"
        );
    } else {
        tracing::info!(%addr, "serving /metrics on loopback");
    }
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_encodes() {
        let m = ApiMetrics::default();
        let mut registry = Registry::default();
        m.register(&mut registry);
        m.record("DescribeVolumes", Outcome::Success, 1, Duration::from_millis(30));
        m.record(
            "AttachVolume",
            Outcome::ApiError("Server.Inoperable.Volume.AlreadyAttached"),
            1,
            Duration::ZERO,
        );
        assert_eq!(m.count("DescribeVolumes", "success"), 1);
        let text = csi_core::metrics::encode_text(&registry).unwrap();
        assert!(text.contains("nifcloud_api_calls_total{action=\"AttachVolume\",outcome=\"Server.Inoperable.Volume.AlreadyAttached\"} 1"), "{text}");
    }

    #[test]
    fn only_loopback_is_private() {
        for (addr, outside) in [
            ("127.0.0.1:9809", false),
            ("[::1]:9809", false),
            ("0.0.0.0:9809", true),
            ("[::]:9809", true),
            ("10.0.0.5:9809", true),
        ] {
            assert_eq!(reachable_from_outside(addr.parse().unwrap()), outside, "{addr}");
        }
    }
}
