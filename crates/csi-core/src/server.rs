//! Serving CSI services on a unix socket, and connecting to one.

use std::future::Future;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::service::{Routes, RoutesBuilder};
use tonic::transport::{Channel, Endpoint, Server};

use crate::identity::IdentityService;
use crate::instrument::Instrumented;
use crate::metrics::CsiMetrics;
use crate::proto;

/// Errors of serving or connecting.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The endpoint is not `unix:///path` or `/path`.
    #[error("unsupported CSI endpoint {0:?}: expected unix:///absolute/path or /absolute/path")]
    BadEndpoint(String),
    /// Something that is not a socket sits where the socket should go; it is left alone.
    #[error("refusing to replace {path}: it exists and is not a unix socket")]
    NotASocket {
        /// The endpoint path.
        path: PathBuf,
    },
    /// A filesystem step (creating the directory, removing a stale socket, binding) failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("gRPC server on {path}: {source}")]
    Transport {
        /// The endpoint path.
        path: PathBuf,
        /// The transport error.
        source: tonic::transport::Error,
    },
}

/// Parses a CSI endpoint: `unix:///abs/path`, `unix:/abs/path` or a bare `/abs/path`.
pub fn parse_endpoint(endpoint: &str) -> Result<PathBuf, ServerError> {
    let path = endpoint
        .strip_prefix("unix://")
        .or_else(|| endpoint.strip_prefix("unix:"))
        .unwrap_or(endpoint);
    if path.starts_with('/') && path.len() > 1 {
        Ok(PathBuf::from(path))
    } else {
        Err(ServerError::BadEndpoint(endpoint.to_string()))
    }
}

/// Binds a unix listener at `path`, creating the directory and removing a stale socket first.
pub fn bind_unix(path: &Path) -> Result<UnixListener, ServerError> {
    let io = |action, source| ServerError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io("create directory for", e))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(|e| io("remove stale socket", e))?;
        }
        Ok(_) => {
            return Err(ServerError::NotASocket {
                path: path.to_path_buf(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("inspect", e)),
    }
    UnixListener::bind(path).map_err(|e| io("bind", e))
}

/// A CSI gRPC server under construction: Identity always, Controller and Node optionally.
/// Every service is wrapped in [`Instrumented`] (logging with secrets redacted, metrics).
pub struct CsiServer {
    routes: RoutesBuilder,
    metrics: Arc<CsiMetrics>,
}

impl std::fmt::Debug for CsiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsiServer").finish_non_exhaustive()
    }
}

impl CsiServer {
    /// A server with the Identity service.
    pub fn new(identity: IdentityService, metrics: Arc<CsiMetrics>) -> Self {
        let mut routes = Routes::builder();
        routes.add_service(proto::identity_server::IdentityServer::new(Instrumented::new(
            identity,
            Arc::clone(&metrics),
        )));
        Self { routes, metrics }
    }

    /// Adds a Controller service.
    pub fn with_controller<C: proto::controller_server::Controller>(mut self, controller: C) -> Self {
        self.routes
            .add_service(proto::controller_server::ControllerServer::new(Instrumented::new(
                controller,
                Arc::clone(&self.metrics),
            )));
        self
    }

    /// Adds a Node service.
    pub fn with_node<N: proto::node_server::Node>(mut self, node: N) -> Self {
        self.routes
            .add_service(proto::node_server::NodeServer::new(Instrumented::new(
                node,
                Arc::clone(&self.metrics),
            )));
        self
    }

    /// Adds a GroupController service.
    pub fn with_group_controller<G: proto::group_controller_server::GroupController>(mut self, group: G) -> Self {
        self.routes
            .add_service(proto::group_controller_server::GroupControllerServer::new(
                Instrumented::new(group, Arc::clone(&self.metrics)),
            ));
        self
    }

    /// Serves on `endpoint` until `shutdown` completes, then removes the socket file.
    pub async fn serve(self, endpoint: &str, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServerError> {
        let path = parse_endpoint(endpoint)?;
        let listener = bind_unix(&path)?;
        tracing::info!(endpoint = %path.display(), "serving CSI");
        let result = self.serve_listener(listener, &path, shutdown).await;
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "could not remove CSI socket");
        }
        result
    }

    /// Serves on an already-bound listener (whose path is `path`, for error messages).
    pub async fn serve_listener(
        self,
        listener: UnixListener,
        path: &Path,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServerError> {
        Server::builder()
            .add_routes(self.routes.routes())
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
            .await
            .map_err(|source| ServerError::Transport {
                path: path.to_path_buf(),
                source,
            })
    }
}

/// Completes when the process is asked to stop: on SIGTERM (what the kubelet sends a plugin's container) or
/// SIGINT (Ctrl-C), logging "shutting down". Pass it as the `shutdown` of [`CsiServer::serve`]: in-flight calls
/// finish, then the socket file is removed. Where SIGTERM cannot be watched (no signal handler could be
/// installed), it warns and completes on SIGINT only.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let sigterm = async {
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM; stopping on Ctrl-C only");
                std::future::pending().await
            }
        }
    };
    tokio::select! {
        () = sigterm => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
}

/// Connects a gRPC channel to a CSI unix-socket endpoint (used by the sanity suite and tests).
pub async fn connect(endpoint: &str) -> Result<Channel, ServerError> {
    let path = parse_endpoint(endpoint)?;
    let socket = path.clone();
    Endpoint::from_static("http://[::1]:50051")
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|source| ServerError::Transport { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("unix:///csi/csi.sock").unwrap(),
            PathBuf::from("/csi/csi.sock")
        );
        assert_eq!(
            parse_endpoint("unix:/csi/csi.sock").unwrap(),
            PathBuf::from("/csi/csi.sock")
        );
        assert_eq!(parse_endpoint("/csi/csi.sock").unwrap(), PathBuf::from("/csi/csi.sock"));
        for bad in ["tcp://1.2.3.4:5", "unix://relative", "csi.sock", "", "unix://"] {
            assert!(
                matches!(parse_endpoint(bad), Err(ServerError::BadEndpoint(e)) if e == bad),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn stale_socket_is_replaced_but_regular_file_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("sub/csi.sock");
        let first = bind_unix(&sock).unwrap();
        drop(first); // leaves the socket file behind, like a crashed plugin
        assert!(sock.exists());
        let _second = bind_unix(&sock).unwrap();
        let file = dir.path().join("data");
        std::fs::write(&file, b"keep me").unwrap();
        assert!(matches!(bind_unix(&file), Err(ServerError::NotASocket { .. })));
        assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    }
}
