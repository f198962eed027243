//! The plain-HTTP server: `/healthz`, `/readyz` and Prometheus `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

/// What `/readyz` reports: ready when this process leads (or leader election is off) and the informers the
/// running controllers need have synced.
#[derive(Debug, Default)]
pub struct Readiness {
    leading: AtomicBool,
    synced: AtomicBool,
}

impl Readiness {
    /// Records whether we lead (or leader election is off).
    pub fn set_leading(&self, v: bool) {
        self.leading.store(v, Ordering::SeqCst);
    }

    /// Records whether the informers have synced.
    pub fn set_synced(&self, v: bool) {
        self.synced.store(v, Ordering::SeqCst);
    }

    /// What `/readyz` answers: both [`Self::set_leading`] and [`Self::set_synced`] were last told `true`.
    pub fn is_ready(&self) -> bool {
        self.leading.load(Ordering::SeqCst) && self.synced.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct AppState {
    registry: Arc<Registry>,
    readiness: Arc<Readiness>,
}

/// The router (exposed for tests).
pub fn router(registry: Arc<Registry>, readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(s): State<AppState>| async move {
                if s.readiness.is_ready() {
                    (StatusCode::OK, "ok")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not leading or informers not synced")
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(s): State<AppState>| async move {
                match crate::metrics::render(&s.registry) {
                    Ok(text) => (
                        StatusCode::OK,
                        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                        text,
                    ),
                    Err(_) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        [("content-type", "text/plain")],
                        String::new(),
                    ),
                }
            }),
        )
        .with_state(AppState { registry, readiness })
}

/// Binds `addr` and serves until `shutdown` fires. Returns the bound address (useful with port 0).
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    readiness: Arc<Readiness>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = router(registry, readiness);
    let handle = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(error) = result {
            tracing::error!(%error, "http server failed");
        }
    });
    tracing::info!(address = %local, "serving /healthz, /readyz, /metrics");
    Ok((local, handle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn health_ready_metrics() {
        let metrics = crate::metrics::Metrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.set_leader(true);
        let readiness = Arc::new(Readiness::default());
        let shutdown = CancellationToken::new();
        let (addr, handle) = serve(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(registry),
            readiness.clone(),
            shutdown.clone(),
        )
        .await
        .unwrap();
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        readiness.set_leading(true);
        assert!(
            get(addr, "/readyz").await.starts_with("HTTP/1.1 503"),
            "leading but not synced"
        );
        readiness.set_synced(true);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        let m = get(addr, "/metrics").await;
        assert!(m.contains("leader_election_master_status 1"), "{m}");
        shutdown.cancel();
        handle.await.unwrap();
    }
}
