//! Wiring: client, logging, signals, HTTP server, leader election and the controllers.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use prometheus_client::registry::Registry;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::args::{ArgsError, ControllerManagerArgs, LogFormat};
use crate::events::EventSink;
use crate::leader::{LeaderElectionConfig, LeaderElector, LeaderError, default_identity};
use crate::metrics::Metrics;
use crate::node::{self, NodeContext, lifecycle};
use crate::provider::{CloudProvider, ProviderContext, ProviderError};
use crate::server::{self, Readiness};
use crate::service::{self, ServiceContext};

/// Why the controller manager stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag is invalid.
    #[error("invalid arguments")]
    Args(#[from] ArgsError),
    /// The kubeconfig cannot be read.
    #[error("read kubeconfig {path}")]
    Kubeconfig {
        /// The path given.
        path: String,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// No usable client configuration.
    #[error("infer kubernetes client configuration")]
    InferConfig(#[source] kube::config::InferConfigError),
    /// The client cannot be built.
    #[error("build kubernetes client")]
    Client(#[source] kube::Error),
    /// The HTTPS server of /healthz, /readyz and /metrics cannot start.
    #[error("serve /healthz, /readyz and /metrics")]
    Serve(#[from] server::ServeError),
    /// The provider failed to initialize.
    #[error("initialize cloud provider {provider}")]
    ProviderInit {
        /// Provider name.
        provider: String,
        /// Why.
        #[source]
        source: ProviderError,
    },
    /// Leadership was lost: the controllers were stopped.
    #[error("leader election")]
    LeadershipLost(#[from] LeaderError),
}

/// Installs a `tracing` subscriber (text or JSON, filtered by `RUST_LOG`, default `info`). Does nothing if one is
/// already installed.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

async fn build_client(args: &ControllerManagerArgs) -> Result<Client, Error> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|source| Error::Kubeconfig {
                path: path.display().to_string(),
                source,
            })?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|source| Error::Kubeconfig {
                    path: path.display().to_string(),
                    source,
                })?
        }
        None => kube::Config::infer().await.map_err(Error::InferConfig)?,
    };
    Client::try_from(config).map_err(Error::Client)
}

/// Runs the cloud controller manager until SIGTERM/SIGINT (returns `Ok`) or until leadership is lost (returns
/// `Err`, so the process exits non-zero and restarts as a candidate).
pub async fn run<P: CloudProvider>(args: ControllerManagerArgs, provider: Arc<P>) -> Result<(), Error> {
    init_logging(args.log_format);
    args.validate()?;
    let client = build_client(&args).await?;
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received, shutting down");
        on_signal.cancel();
    });
    run_with_client(client, args, provider, shutdown).await
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only SIGINT stops the process");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Like [`run`] with a given client and a shutdown token instead of signal handling (for tests and embedding).
pub async fn run_with_client(
    client: Client,
    args: ControllerManagerArgs,
    provider: Arc<dyn CloudProvider>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    args.validate()?;
    let identity = default_identity();
    let metrics = Arc::new(Metrics::default());
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let readiness = Arc::new(Readiness::default());
    let server = match args.serving.serving_config(server::tls::self_signed_hosts) {
        Some(config) => Some(
            server::serve(
                config,
                client.clone(),
                Arc::new(registry),
                readiness.clone(),
                shutdown.clone(),
            )
            .await?,
        ),
        None => None,
    };
    let events = EventSink::new(client.clone(), "cloud-controller-manager", Some(identity.clone()));
    let provider_events = EventSink::new(client.clone(), provider.provider_name(), Some(identity.clone()));
    provider
        .initialize(ProviderContext {
            client: client.clone(),
            cluster_name: args.cluster_name.clone(),
            events: provider_events,
        })
        .await
        .map_err(|source| Error::ProviderInit {
            provider: provider.provider_name().to_owned(),
            source,
        })?;

    let mut elector = args.leader_election.enabled.then(|| {
        let le = &args.leader_election;
        LeaderElector::new(
            client.clone(),
            LeaderElectionConfig {
                namespace: le.resource_namespace.clone(),
                name: le.resource_name.clone(),
                identity: identity.clone(),
                lease_duration: le.lease_duration,
                renew_deadline: le.renew_deadline,
                retry_period: le.retry_period,
            },
        )
    });
    if let Some(elector) = elector.as_mut() {
        tracing::info!(identity = %identity, "waiting for leader lease");
        if !elector.acquire(&shutdown).await {
            return Ok(());
        }
    }
    metrics.set_leader(true);
    readiness.set_leading(true);

    let controllers = shutdown.child_token();
    let mut tasks = start_controllers(&client, &args, &provider, &events, &metrics, &readiness, &controllers).await;

    let result = match elector.as_mut() {
        Some(elector) => tokio::select! {
            held = elector.hold(&shutdown) => held.map_err(Error::from),
            () = drain_first(&mut tasks) => Ok(()),
        },
        None => {
            shutdown.cancelled().await;
            Ok(())
        }
    };
    if let Err(error) = &result {
        tracing::error!(error = %crate::error_chain(error), "stopping controllers");
    }
    metrics.set_leader(false);
    readiness.set_leading(false);
    controllers.cancel();
    if tokio::time::timeout(Duration::from_secs(20), async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!("controllers did not stop within 20 s");
        tasks.abort_all();
    }
    if result.is_ok()
        && let Some(elector) = elector.as_mut()
    {
        elector.release().await;
    }
    shutdown.cancel();
    if let Some(server) = server {
        let _ = server.task.await;
    }
    result
}

/// Resolves when any controller task ends (they only end on shutdown).
async fn drain_first(tasks: &mut JoinSet<()>) {
    if tasks.join_next().await.is_none() {
        std::future::pending::<()>().await;
    }
}

async fn start_controllers(
    client: &Client,
    args: &ControllerManagerArgs,
    provider: &Arc<dyn CloudProvider>,
    events: &EventSink,
    metrics: &Arc<Metrics>,
    readiness: &Arc<Readiness>,
    token: &CancellationToken,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    let want_service = args.controller_enabled("service") && provider.load_balancer().is_some();
    let want_node = args.controller_enabled("cloud-node") && provider.instances_v2().is_some();
    let want_lifecycle = args.controller_enabled("cloud-node-lifecycle") && provider.instances_v2().is_some();
    for (name, enabled, wanted) in [
        ("service", args.controller_enabled("service"), want_service),
        ("cloud-node", args.controller_enabled("cloud-node"), want_node),
        (
            "cloud-node-lifecycle",
            args.controller_enabled("cloud-node-lifecycle"),
            want_lifecycle,
        ),
    ] {
        if enabled && !wanted {
            tracing::warn!(controller = name, "not started: the provider does not support it");
        } else if wanted {
            tracing::info!(controller = name, "starting");
        }
    }

    // One node informer for the three controllers, its objects slimmed to what they read.
    let (store, writer) = reflector::store::<Node>();
    let (tick_tx, tick_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (node_tx, node_rx) = tokio::sync::mpsc::unbounded_channel::<Node>();
    if want_service || want_node || want_lifecycle {
        let api: Api<Node> = Api::all(client.clone());
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()).modify(slim_node))
            .default_backoff()
            .touched_objects();
        tasks.spawn(forward_watch(stream, token.clone(), "node watch", move |node| {
            if want_service {
                let _ = tick_tx.send(());
            }
            if want_node {
                let _ = node_tx.send(node);
            }
        }));
        tokio::select! {
            () = token.cancelled() => return tasks,
            _ = store.wait_until_ready() => {}
        }
    }
    // One EndpointSlice informer (slices of Services only) for the service controller: the backends of
    // `externalTrafficPolicy: Local` Services follow their endpoints for a provider that wants it.
    let (slices, slice_writer) = reflector::store::<EndpointSlice>();
    let (slice_tx, slice_rx) = tokio::sync::mpsc::unbounded_channel::<EndpointSlice>();
    if want_service {
        let api: Api<EndpointSlice> = Api::all(client.clone());
        let config = watcher::Config::default().labels(service::SERVICE_NAME_LABEL);
        let stream = reflector::reflector(slice_writer, watcher(api, config).modify(slim_slice))
            .default_backoff()
            .touched_objects();
        tasks.spawn(forward_watch(
            stream,
            token.clone(),
            "endpointslice watch",
            move |slice| {
                let _ = slice_tx.send(slice);
            },
        ));
        tokio::select! {
            () = token.cancelled() => return tasks,
            _ = slices.wait_until_ready() => {}
        }
    }
    readiness.set_synced(true);

    if want_service {
        let ctx = ServiceContext::new(
            client.clone(),
            provider.clone(),
            args.cluster_name.clone(),
            store.clone(),
            events.clone(),
            args.service_resync(),
            metrics.clone(),
        )
        .with_endpoint_slices(slices);
        let ticks = tokio_stream_from(tick_rx);
        let changes = service::node_set_changes(store.clone(), ticks);
        let slice_changes = tokio_stream_from(slice_rx);
        tasks.spawn(service::run(
            Arc::new(ctx),
            args.concurrent_service_syncs,
            changes,
            slice_changes,
            token.clone(),
        ));
    }
    if want_node {
        let ctx = Arc::new(NodeContext::new(
            client.clone(),
            provider.clone(),
            events.clone(),
            args.node_status_update_frequency,
            metrics.clone(),
        ));
        tasks.spawn(node::run(ctx, store.clone(), tokio_stream_from(node_rx), token.clone()));
    }
    if want_lifecycle {
        tasks.spawn(lifecycle::run(
            client.clone(),
            provider.clone(),
            store.clone(),
            events.clone(),
            args.node_monitor_period,
            metrics.clone(),
            token.clone(),
        ));
    }
    tasks
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Drives an informer's event stream until `token` is cancelled or the stream ends, handing each touched object
/// to `on_object`; watch errors are logged as `what` (the reflector backs off and retries by itself).
async fn forward_watch<K, S, F>(stream: S, token: CancellationToken, what: &'static str, mut on_object: F)
where
    S: futures::Stream<Item = Result<K, watcher::Error>>,
    F: FnMut(K),
{
    let mut stream = std::pin::pin!(stream);
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            item = stream.next() => match item {
                Some(Ok(object)) => on_object(object),
                Some(Err(error)) => tracing::warn!(%error, "{what}"),
                None => return,
            }
        }
    }
}

/// What no controller (nor a provider, which is handed these Nodes) reads of a Node, dropped before the store keeps
/// it: the field-manager records, the last `kubectl apply`, and the kubelet's lists of images and volumes (together
/// most of a real Node's size, tens of kilobytes on a busy one). Labels, annotations, taints, providerID, addresses,
/// conditions and node info stay.
pub(crate) fn slim_node(node: &mut Node) {
    node.metadata.managed_fields = None;
    if let Some(annotations) = node.metadata.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
    if let Some(status) = node.status.as_mut() {
        status.images = None;
        status.volumes_attached = None;
        status.volumes_in_use = None;
    }
}

/// The annotation `kubectl apply` keeps the whole applied object in.
pub(crate) const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What the service controller does not read of an EndpointSlice, dropped before the store keeps it.
fn slim_slice(slice: &mut EndpointSlice) {
    slice.metadata.managed_fields = None;
    slice.metadata.annotations = None;
    slice.ports = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeProvider;
    use crate::testing::mock::{ApiMock, json_response, status_response};
    use clap::Parser;
    use http::Method;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ControllerManagerArgs,
    }

    fn args(extra: &[&str]) -> ControllerManagerArgs {
        let mut argv = vec![
            "ccm",
            "--metrics-bind-address=0",
            "--controllers=-service,-cloud-node,-cloud-node-lifecycle",
        ];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).unwrap().args
    }

    const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases";

    #[tokio::test]
    async fn leader_acquires_then_releases_on_graceful_shutdown() {
        let (client, mut mock) = ApiMock::new();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_with_client(
            client,
            args(&[]),
            Arc::new(FakeProvider::new()),
            shutdown.clone(),
        ));

        let (req, _) = mock.next().await;
        assert_eq!(
            (req.method(), req.uri().path()),
            (&Method::GET, format!("{LEASES}/cloud-controller-manager").as_str())
        );
        mock.respond(status_response(404, "NotFound"));
        let (req, mut lease) = mock.next().await;
        assert_eq!((req.method(), req.uri().path()), (&Method::POST, LEASES));
        let identity = lease["spec"]["holderIdentity"].as_str().unwrap().to_owned();
        lease["metadata"]["resourceVersion"] = "1".into();
        mock.respond(json_response(201, &lease));

        shutdown.cancel();
        let (req, _) = mock.next().await;
        assert_eq!(req.method(), Method::GET, "release reads the lease");
        mock.respond(json_response(200, &lease));
        let (req, body) = mock.next().await;
        assert_eq!(req.method(), Method::PUT);
        assert_eq!(body["metadata"]["resourceVersion"], "1");
        assert!(
            body["spec"].get("holderIdentity").is_none(),
            "released: {body} (was {identity})"
        );
        assert_eq!(body["spec"]["leaseDurationSeconds"], 1);
        mock.respond(json_response(200, &body));
        assert!(task.await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn without_leader_election_runs_until_shutdown() {
        let (client, mut mock) = ApiMock::new();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_with_client(
            client,
            args(&["--leader-elect=false"]),
            Arc::new(FakeProvider::new()),
            shutdown.clone(),
        ));
        mock.assert_idle().await;
        assert!(!task.is_finished());
        shutdown.cancel();
        assert!(task.await.unwrap().is_ok());
    }

    #[test]
    fn a_slim_node_keeps_what_the_controllers_and_providers_read() {
        let full: Node = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "w1", "uid": "u1", "resourceVersion": "7",
                "labels": {"node.kubernetes.io/exclude-from-external-load-balancers": "false"},
                "annotations": {LAST_APPLIED: "{}", "alpha.kubernetes.io/provided-node-ip": "10.0.0.1"},
                "managedFields": [{"manager": "kubelet", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {}}],
            },
            "spec": {"providerID": "cloud:///z/i-1", "taints": [{"key": "k", "effect": "NoSchedule"}]},
            "status": {
                "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "nodeInfo": {"machineID": "m", "systemUUID": "s", "bootID": "b", "kernelVersion": "k",
                    "osImage": "o", "containerRuntimeVersion": "c", "kubeletVersion": "v", "kubeProxyVersion": "",
                    "operatingSystem": "linux", "architecture": "amd64"},
                "images": [{"names": ["registry.example/app:1"], "sizeBytes": 1}],
                "volumesInUse": ["v1"],
                "volumesAttached": [{"name": "v1", "devicePath": "/dev/x"}],
            },
        }))
        .unwrap();
        let mut slim = full.clone();
        slim_node(&mut slim);
        let mut expected = full;
        expected.metadata.managed_fields = None;
        expected.metadata.annotations.as_mut().unwrap().remove(LAST_APPLIED);
        let status = expected.status.as_mut().unwrap();
        status.images = None;
        status.volumes_in_use = None;
        status.volumes_attached = None;
        assert_eq!(slim, expected);
        assert!(slim.status.unwrap().node_info.is_some());
    }

    #[tokio::test]
    async fn invalid_args_are_refused() {
        let (client, _mock) = ApiMock::new();
        let bad = args(&["--leader-elect-retry-period=20s"]);
        let result = run_with_client(client, bad, Arc::new(FakeProvider::new()), CancellationToken::new()).await;
        assert!(matches!(result, Err(Error::Args(_))), "{result:?}");
    }
}
