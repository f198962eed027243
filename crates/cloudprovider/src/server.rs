//! The secure server, as kube-controller-manager's: `/healthz`, `/readyz`, `/livez` and Prometheus `/metrics` over
//! HTTPS. `/metrics` (and any path outside [`AuthConfig::always_allow_paths`]) needs a bearer token that the API
//! server accepts (`TokenReview`) for a user allowed to `get` that non-resource URL (`SubjectAccessReview`), both
//! answers cached briefly ([`auth`]); the probes' paths need nothing. The certificate is read from files or
//! generated and self-signed at start ([`tls`]).

pub mod auth;
#[cfg(any(test, feature = "testing"))]
pub mod test_client;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use prometheus_client::registry::Registry;
use rustls::pki_types::CertificateDer;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use auth::{AuthConfig, AuthError, DelegatedAuth, User, Verdict};
pub use tls::{CertificateSource, ServingCertificate, TlsError};

/// Longest TLS handshake, and longest wait for a request's headers.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long open connections may finish their request after shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

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

/// How and where to serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServingConfig {
    /// The address to listen on (`--bind-address`:`--secure-port`).
    pub address: SocketAddr,
    /// The certificate.
    pub certificate: CertificateSource,
    /// Delegated authentication and authorization.
    pub auth: AuthConfig,
}

/// The server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The serving certificate cannot be read, generated or used.
    #[error("serving certificate")]
    Certificate(#[from] TlsError),
    /// The address cannot be bound.
    #[error("bind {address}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A running server.
#[derive(Debug)]
pub struct Serving {
    /// The bound address (useful with port 0).
    pub address: SocketAddr,
    /// The certificate it presents (trust it in tests when it is self-signed).
    pub certificate: CertificateDer<'static>,
    /// The accept loop; it ends after `shutdown` fires and open connections have finished (at most 5 s).
    pub task: tokio::task::JoinHandle<()>,
}

/// The router with its delegated authentication and authorization (exposed for tests).
pub fn router(registry: Arc<Registry>, readiness: Arc<Readiness>, auth: Arc<DelegatedAuth>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
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
        .layer(middleware::from_fn_with_state(auth, check))
}

/// Lets a request through, or answers 401, 403 or 500 as kube-apiserver's filters do.
async fn check(State(auth): State<Arc<DelegatedAuth>>, request: Request, next: Next) -> Response {
    match auth
        .check(request.method(), request.uri().path(), request.headers())
        .await
    {
        Verdict::Allowed => next.run(request).await,
        Verdict::Unauthenticated => unauthorized(),
        Verdict::Forbidden { user, verb, path } => {
            tracing::debug!(%user, %verb, %path, "forbidden");
            (
                StatusCode::FORBIDDEN,
                format!("forbidden: user {user:?} cannot {verb} path {path:?}\n"),
            )
                .into_response()
        }
        Verdict::Failed(error @ AuthError::TokenReview(_)) => {
            tracing::warn!(error = %crate::error_chain(&error), "cannot authenticate a request");
            unauthorized()
        }
        Verdict::Failed(error) => {
            tracing::warn!(error = %crate::error_chain(&error), "cannot authorize a request");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error: authorization failed\n",
            )
                .into_response()
        }
    }
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(http::header::WWW_AUTHENTICATE, "Bearer")],
        "unauthorized: a bearer token the API server accepts is needed\n",
    )
        .into_response()
}

/// Loads or generates the certificate, binds `config.address` and serves over HTTPS until `shutdown` fires.
/// `client` reviews tokens and access (it needs `create` on `tokenreviews` and `subjectaccessreviews`).
pub async fn serve(
    config: ServingConfig,
    client: kube::Client,
    registry: Arc<Registry>,
    readiness: Arc<Readiness>,
    shutdown: CancellationToken,
) -> Result<Serving, ServeError> {
    let certificate = ServingCertificate::load(&config.certificate)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(certificate.server_config()?);
    let bind_error = |source| ServeError::Bind {
        address: config.address,
        source,
    };
    let listener = tokio::net::TcpListener::bind(config.address)
        .await
        .map_err(bind_error)?;
    let address = listener.local_addr().map_err(bind_error)?;
    let app = router(registry, readiness, Arc::new(DelegatedAuth::new(client, config.auth)));
    tracing::info!(
        %address,
        self_signed = certificate.is_self_signed(),
        sha256 = %certificate.fingerprint(),
        "serving /healthz, /readyz, /livez and /metrics over HTTPS; /metrics needs a token allowed to get it"
    );
    let task = tokio::spawn(accept_loop(listener, acceptor, app, shutdown));
    Ok(Serving {
        address,
        certificate: certificate.leaf().clone(),
        task,
    })
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    app: Router,
    shutdown: CancellationToken,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    connections.spawn(connection(tcp, peer, acceptor.clone(), app.clone(), shutdown.clone()));
                }
                Err(error) => {
                    // Out of file descriptors, for example: wait instead of spinning.
                    tracing::warn!(%error, "accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        connections.abort_all();
    }
}

async fn connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    app: Router,
    shutdown: CancellationToken,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let mut conn = std::pin::pin!(builder.serve_connection(TokioIo::new(tls), TowerToHyperService::new(app)));
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "connection ended");
            }
            return;
        }
        () = shutdown.cancelled() => conn.as_mut().graceful_shutdown(),
    }
    let _ = conn.await;
}

#[cfg(test)]
mod tests;
