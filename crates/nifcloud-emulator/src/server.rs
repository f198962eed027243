//! HTTP front end (`POST /api/`, JSON `/admin/*`) and the in-process [`Emulator`] handle.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::api::{self, Reply};
use crate::config::{DelayConfig, EmulatorConfig, InstanceConfig, LatencyConfig, TEST_ACCESS_KEY, TEST_SECRET_KEY};
use crate::error::{ApiError, EmulatorError};
use crate::faults::FaultConfig;
use crate::state::instances::InstancePhase;
use crate::state::{self, State, now_ms};
use crate::wire::{self, Params};

/// How many recent calls [`Emulator::call_log`] keeps.
pub const CALL_LOG_CAPACITY: usize = 10_000;

/// Signing parameters left out of [`CallRecord::params`].
const SIGNING_KEYS: &[&str] = &[
    "AccessKeyId",
    "Signature",
    "SignatureMethod",
    "SignatureVersion",
    "Timestamp",
];

/// One authenticated API call, as recorded for tests.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CallRecord {
    /// The `Action` called (also when it is unknown).
    pub action: String,
    /// Request parameters without the signing ones.
    pub params: BTreeMap<String, String>,
    /// HTTP status sent.
    pub status: u16,
    /// Error code sent, if any.
    pub error_code: Option<String>,
}

#[derive(Debug, Default)]
struct Calls {
    counts: BTreeMap<String, u64>,
    log: VecDeque<CallRecord>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    config: Mutex<EmulatorConfig>,
    latency: Mutex<LatencyConfig>,
    calls: Mutex<Calls>,
    state_file: Option<PathBuf>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn persist(&self, st: &State) {
        let Some(path) = &self.state_file else { return };
        let json = match serde_json::to_vec_pretty(st) {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, "serialising state");
                return;
            }
        };
        let tmp = path.with_extension("tmp");
        if let Err(e) = std::fs::write(&tmp, json).and_then(|()| std::fs::rename(&tmp, path)) {
            tracing::warn!(path = %path.display(), error = %e, "writing state file");
        }
    }

    fn record(&self, params: &Params, reply: &Reply) {
        let action = params.get("Action").unwrap_or("").to_owned();
        let rec = CallRecord {
            action: action.clone(),
            params: params
                .iter()
                .filter(|(k, _)| !SIGNING_KEYS.contains(k))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            status: reply.status,
            error_code: reply.error_code.clone(),
        };
        let mut c = lock(&self.calls);
        *c.counts.entry(action).or_default() += 1;
        if c.log.len() >= CALL_LOG_CAPACITY {
            c.log.pop_front();
        }
        c.log.push_back(rec);
    }
}

fn xml_response(status: u16, body: String) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, [(header::CONTENT_TYPE, "text/xml;charset=UTF-8")], body).into_response()
}

async fn api_handler(AxState(sh): AxState<Arc<Shared>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let params = Params::parse(&body);
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let (creds, skew) = {
        let cfg = lock(&sh.config);
        (cfg.credentials.clone(), cfg.max_clock_skew_secs)
    };
    let now_dt = time::OffsetDateTime::now_utc();
    if let Err(e) = wire::verify(
        &params,
        host,
        uri.path(),
        |k| creds.get(k).map(String::as_str),
        now_dt,
        skew,
    ) {
        let request_id = lock(&sh.state).request_id();
        tracing::debug!(error = %e, "authentication failed");
        let reply = Reply::error(&ApiError::from(e), &request_id);
        return xml_response(reply.status, reply.body);
    }
    let action = params.get("Action").unwrap_or("");
    let delay = lock(&sh.latency).for_action(action);
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let reply = {
        let mut st = lock(&sh.state);
        let reply = api::process(&mut st, &params, now_ms());
        if reply.mutated {
            sh.persist(&st);
        }
        reply
    };
    sh.record(&params, &reply);
    xml_response(reply.status, reply.body)
}

fn json_error(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    (status, axum::Json(serde_json::json!({ "error": msg.to_string() }))).into_response()
}

async fn admin_calls(AxState(sh): AxState<Arc<Shared>>) -> Response {
    axum::Json(lock(&sh.calls).counts.clone()).into_response()
}

async fn admin_reset_calls(AxState(sh): AxState<Arc<Shared>>) -> Response {
    *lock(&sh.calls) = Calls::default();
    StatusCode::NO_CONTENT.into_response()
}

async fn admin_call_log(AxState(sh): AxState<Arc<Shared>>) -> Response {
    axum::Json(lock(&sh.calls).log.iter().cloned().collect::<Vec<_>>()).into_response()
}

async fn admin_state(AxState(sh): AxState<Arc<Shared>>) -> Response {
    let mut st = lock(&sh.state);
    st.settle(now_ms());
    axum::Json(serde_json::to_value(&*st).unwrap_or_default()).into_response()
}

async fn admin_reset(AxState(sh): AxState<Arc<Shared>>) -> Response {
    reset_state(&sh);
    StatusCode::NO_CONTENT.into_response()
}

async fn admin_get_faults(AxState(sh): AxState<Arc<Shared>>) -> Response {
    axum::Json(lock(&sh.state).faults.clone()).into_response()
}

async fn admin_put_faults(AxState(sh): AxState<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<FaultConfig>(&body) {
        Ok(f) => {
            lock(&sh.state).faults = f;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => json_error(StatusCode::BAD_REQUEST, e),
    }
}

async fn admin_put_latency(AxState(sh): AxState<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<LatencyConfig>(&body) {
        Ok(l) => {
            *lock(&sh.latency) = l;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => json_error(StatusCode::BAD_REQUEST, e),
    }
}

async fn admin_put_delays(AxState(sh): AxState<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<DelayConfig>(&body) {
        Ok(d) => {
            lock(&sh.state).delays = d;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => json_error(StatusCode::BAD_REQUEST, e),
    }
}

async fn admin_add_instance(AxState(sh): AxState<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<InstanceConfig>(&body) {
        Ok(ic) => match add_instance(&sh, &ic) {
            Ok(uid) => axum::Json(serde_json::json!({ "instanceUniqueId": uid })).into_response(),
            Err(e) => json_error(StatusCode::BAD_REQUEST, e),
        },
        Err(e) => json_error(StatusCode::BAD_REQUEST, e),
    }
}

async fn admin_instance_op(AxState(sh): AxState<Arc<Shared>>, Path((name, op)): Path<(String, String)>) -> Response {
    let r = match op.as_str() {
        "stop" => set_phase(&sh, &name, InstancePhase::Stopped),
        "start" => set_phase(&sh, &name, InstancePhase::Running),
        "terminate" => terminate(&sh, &name),
        _ => return json_error(StatusCode::NOT_FOUND, format!("unknown instance operation {op:?}")),
    };
    match r {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => json_error(StatusCode::NOT_FOUND, e),
    }
}

fn reset_state(sh: &Shared) {
    let cfg = lock(&sh.config).clone();
    let mut st = lock(&sh.state);
    if let Some(b) = st.block.as_mut() {
        b.detach_all();
    }
    *st = State::from_config(&cfg, now_ms());
    sh.persist(&st);
    drop(st);
    *lock(&sh.calls) = Calls::default();
}

fn add_instance(sh: &Shared, ic: &InstanceConfig) -> Result<String, EmulatorError> {
    let mut st = lock(&sh.state);
    if !state::valid_name(&ic.name, 15) || st.instances.contains_key(&ic.name) {
        return Err(EmulatorError::Config(format!(
            "instance name {:?} is invalid or taken",
            ic.name
        )));
    }
    st.check_zone(&ic.zone)?;
    let uid = st.add_instance(ic, now_ms()).unique_id.clone();
    sh.persist(&st);
    Ok(uid)
}

fn set_phase(sh: &Shared, name: &str, phase: InstancePhase) -> Result<(), EmulatorError> {
    let mut st = lock(&sh.state);
    st.admin_set_phase(name, phase)
        .map_err(|_| EmulatorError::UnknownInstance(name.to_owned()))?;
    sh.persist(&st);
    Ok(())
}

fn terminate(sh: &Shared, name: &str) -> Result<(), EmulatorError> {
    let mut st = lock(&sh.state);
    st.admin_terminate(name)
        .map_err(|_| EmulatorError::UnknownInstance(name.to_owned()))?;
    sh.persist(&st);
    Ok(())
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/", post(api_handler))
        .route("/api", post(api_handler))
        .route("/admin/calls", get(admin_calls).delete(admin_reset_calls))
        .route("/admin/calls/log", get(admin_call_log))
        .route("/admin/state", get(admin_state))
        .route("/admin/reset", post(admin_reset))
        .route("/admin/faults", get(admin_get_faults).put(admin_put_faults))
        .route("/admin/latency", put(admin_put_latency))
        .route("/admin/delays", put(admin_put_delays))
        .route("/admin/instances", post(admin_add_instance))
        .route("/admin/instances/{name}/{op}", post(admin_instance_op))
        .fallback(not_found)
        .with_state(shared)
}

async fn not_found(uri: Uri) -> Response {
    let e = ApiError::with_status(
        "Client.InvalidAction",
        format!(
            "No API at {:?}: the computing API is POST /api/ and the admin API lives under /admin/.",
            uri.path()
        ),
        404,
    );
    let reply = Reply::error(&e, "");
    xml_response(reply.status, reply.body)
}

/// Builds and starts an [`Emulator`].
#[derive(Debug, Clone)]
pub struct EmulatorBuilder {
    config: EmulatorConfig,
    listen: SocketAddr,
    state_file: Option<PathBuf>,
}

impl Default for EmulatorBuilder {
    fn default() -> Self {
        Self {
            config: EmulatorConfig::sample(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            state_file: None,
        }
    }
}

impl EmulatorBuilder {
    /// Uses `config` instead of [`EmulatorConfig::sample`].
    pub fn config(mut self, config: EmulatorConfig) -> Self {
        self.config = config;
        self
    }

    /// Listens on `addr` instead of `127.0.0.1:0`.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Keeps state in `path` (loaded at start if it exists, rewritten after every change).
    pub fn state_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.state_file = Some(path.into());
        self
    }

    /// Binds and serves in a background task.
    pub async fn start(self) -> Result<Emulator, EmulatorError> {
        self.config.validate()?;
        let mut st = State::from_config(&self.config, now_ms());
        if let Some(path) = self.state_file.as_ref().filter(|p| p.exists()) {
            let text = std::fs::read(path).map_err(|e| EmulatorError::StateFile {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            let mut loaded: State = serde_json::from_slice(&text).map_err(|e| EmulatorError::StateFile {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            loaded.block = st.block.take();
            if let Some(block) = loaded.block.as_mut() {
                for v in loaded.volumes.values() {
                    if let Some(a) = &v.attachment {
                        let iname = loaded
                            .instances
                            .values()
                            .find(|i| i.unique_id == a.instance_unique_id)
                            .map(|i| i.name.clone());
                        if let Some(iname) = iname {
                            block.attach(&v.unique_id, &iname, a.device_index, v.size_gb)?;
                        }
                    }
                }
            }
            st = loaded;
        }
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .map_err(|source| EmulatorError::Bind {
                addr: self.listen.to_string(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| EmulatorError::Bind {
            addr: self.listen.to_string(),
            source,
        })?;
        let shared = Arc::new(Shared {
            state: Mutex::new(st),
            latency: Mutex::new(self.config.latency.clone()),
            config: Mutex::new(self.config),
            calls: Mutex::new(Calls::default()),
            state_file: self.state_file,
        });
        let (tx, rx) = oneshot::channel::<()>();
        let app = router(shared.clone());
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = served.await {
                tracing::error!(error = %e, "emulator server failed");
            }
        });
        Ok(Emulator {
            shared,
            addr,
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

/// A running emulator. Dropping it stops the server (use [`Emulator::shutdown`] to wait for it).
#[derive(Debug)]
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Emulator {
    /// A builder with [`EmulatorConfig::sample`] on `127.0.0.1:0`.
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }

    /// The socket address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API endpoint, `http://127.0.0.1:PORT/api/`.
    pub fn endpoint(&self) -> String {
        format!("http://{}/api/", self.addr)
    }

    /// The base URL without the path, `http://127.0.0.1:PORT` (what botocore-style clients take as
    /// `endpoint_url`; they append the model's `/api/` themselves).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The admin base URL, `http://127.0.0.1:PORT/admin/`.
    pub fn admin_url(&self) -> String {
        format!("http://{}/admin/", self.addr)
    }

    /// The first configured (access key, secret key) pair; the test pair by default.
    pub fn credentials(&self) -> (String, String) {
        lock(&self.shared.config)
            .credentials
            .iter()
            .next()
            .map(|(a, s)| (a.clone(), s.clone()))
            .unwrap_or_else(|| (TEST_ACCESS_KEY.to_owned(), TEST_SECRET_KEY.to_owned()))
    }

    /// The configured region.
    pub fn region(&self) -> String {
        lock(&self.shared.config).region.clone()
    }

    /// How many authenticated calls of `action` arrived (including failed ones).
    pub fn call_count(&self, action: &str) -> u64 {
        lock(&self.shared.calls).counts.get(action).copied().unwrap_or(0)
    }

    /// Authenticated call counts per action.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        lock(&self.shared.calls).counts.clone()
    }

    /// The last [`CALL_LOG_CAPACITY`] authenticated calls, oldest first.
    pub fn call_log(&self) -> Vec<CallRecord> {
        lock(&self.shared.calls).log.iter().cloned().collect()
    }

    /// The logged calls of one action, oldest first (for asserting on the parameters sent).
    pub fn calls_of(&self, action: &str) -> Vec<CallRecord> {
        lock(&self.shared.calls)
            .log
            .iter()
            .filter(|r| r.action == action)
            .cloned()
            .collect()
    }

    /// Clears call counts and the call log.
    pub fn reset_calls(&self) {
        *lock(&self.shared.calls) = Calls::default();
    }

    /// Restores the initial state from the configuration and clears calls.
    pub fn reset(&self) {
        reset_state(&self.shared);
    }

    /// Replaces the fault rules.
    pub fn set_faults(&self, faults: FaultConfig) {
        lock(&self.shared.state).faults = faults;
    }

    /// Replaces the latency settings.
    pub fn set_latency(&self, latency: LatencyConfig) {
        *lock(&self.shared.latency) = latency;
    }

    /// Replaces the transition delays (affects transitions started afterwards).
    pub fn set_delays(&self, delays: DelayConfig) {
        lock(&self.shared.state).delays = delays;
    }

    /// Changes how L4 load balancer filters report their allow-any entry from now on.
    pub fn set_lb_filter_any(&self, mode: crate::state::AllowAnyEntry) {
        lock(&self.shared.state).lb_filter_any = mode;
    }

    /// Adds an instance; returns its unique id.
    pub fn add_instance(&self, instance: &InstanceConfig) -> Result<String, EmulatorError> {
        add_instance(&self.shared, instance)
    }

    /// Stops an instance immediately.
    pub fn stop_instance(&self, name: &str) -> Result<(), EmulatorError> {
        set_phase(&self.shared, name, InstancePhase::Stopped)
    }

    /// Starts an instance immediately.
    pub fn start_instance(&self, name: &str) -> Result<(), EmulatorError> {
        set_phase(&self.shared, name, InstancePhase::Running)
    }

    /// Terminates an instance: it disappears from DescribeInstances (NotFound), its volumes are
    /// detached, and it leaves load balancers and security groups.
    pub fn terminate_instance(&self, name: &str) -> Result<(), EmulatorError> {
        terminate(&self.shared, name)
    }

    /// Runs `f` on the settled state (read-only inspection for tests).
    pub fn with_state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        let mut st = lock(&self.shared.state);
        st.settle(now_ms());
        f(&st)
    }

    /// The whole state as JSON (same as `GET /admin/state`).
    pub fn state_dump(&self) -> serde_json::Value {
        self.with_state(|st| serde_json::to_value(st).unwrap_or_default())
    }

    /// Stops serving and waits for the server task; detaches loop devices.
    pub async fn shutdown(mut self) {
        self.stop();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(b) = lock(&self.shared.state).block.as_mut() {
            b.detach_all();
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}
