//! Test support for the suites that talk to real Kubernetes parts: a kube-apiserver with a
//! kube-controller-manager, csi-sanity and the CSI sidecars, from the project's shared harness
//! (`../shared/harness` beside the workspace; see its README).
//!
//! [`harness`] starts the control plane once (its `up.sh` is idempotent; a file lock keeps
//! concurrent test processes from starting it twice) and hands back the kubeconfig and the
//! directory of the tools. When the harness cannot be used (a user's clone without `../shared`,
//! not root where root is needed), the caller is told why and the test skips by returning, unless
//! `NIFCLOUD_REQUIRE_HARNESS=1` (set by `.ci/run`): then it fails, so CI can never skip these
//! suites silently.
//!
//! [`cluster`] is for suites that can also run against a real cluster: `NIFCLOUD_E2E_KUBECONFIG`
//! wins when set, the harness otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment variable that turns every skip into a failure.
pub const REQUIRE_ENV: &str = "NIFCLOUD_REQUIRE_HARNESS";
/// Environment variable naming another harness directory (default: `../shared/harness` beside the workspace).
pub const DIR_ENV: &str = "NIFCLOUD_HARNESS_DIR";
/// Environment variable naming the kubeconfig of a real, disposable cluster.
pub const E2E_KUBECONFIG_ENV: &str = "NIFCLOUD_E2E_KUBECONFIG";

/// A running harness control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Harness {
    /// Admin kubeconfig of the kube-apiserver.
    pub kubeconfig: PathBuf,
    /// Directory holding csi-sanity, csi-provisioner, csi-attacher and csi-resizer.
    pub bin: PathBuf,
}

impl Harness {
    /// The path of harness tool `name` (e.g. `csi-sanity`).
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }
}

/// A cluster to run end-to-end suites against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// Its kubeconfig.
    pub kubeconfig: PathBuf,
    /// Whether it is a real cluster named by `NIFCLOUD_E2E_KUBECONFIG` (with kubelets and nodes of its own)
    /// rather than the harness' bare control plane.
    pub real: bool,
}

/// Whether skips must fail (`NIFCLOUD_REQUIRE_HARNESS=1`).
pub fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}

/// Reports that `test` cannot run for `reason`: prints why and returns (the caller then returns),
/// or panics when [`required`].
pub fn skip(test: &str, reason: &str) {
    assert!(!required(), "{REQUIRE_ENV}=1 but {test} cannot run: {reason}");
    eprintln!("skipping {test}: {reason}");
}

/// The harness directory (`NIFCLOUD_HARNESS_DIR`, else `../shared/harness` beside the workspace), if present.
pub fn dir() -> Result<PathBuf, String> {
    let dir = std::env::var_os(DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/harness"));
    check_dir(dir)
}

fn check_dir(dir: PathBuf) -> Result<PathBuf, String> {
    if dir.join("up.sh").is_file() {
        Ok(std::fs::canonicalize(&dir).unwrap_or(dir))
    } else {
        Err(format!(
            "no Kubernetes test harness at {} (a clone without ../shared/harness; set {DIR_ENV} to use one elsewhere)",
            dir.display()
        ))
    }
}

/// Whether this process runs as root (loop devices and mounts need it).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Starts (or reuses) the harness control plane with the kube-controller-manager; `Err` says why it
/// cannot be used.
pub fn start() -> Result<Harness, String> {
    let dir = dir()?;
    // One starter at a time across processes (test binaries may run in parallel under nextest).
    let home = home();
    std::fs::create_dir_all(&home).map_err(|e| format!("cannot create {}: {e}", home.display()))?;
    let lock_path = home.join("up.lock");
    let lock = std::fs::File::create(&lock_path).map_err(|e| format!("cannot create {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    let out = Command::new("bash")
        .arg(dir.join("up.sh"))
        .arg("--kcm")
        .output()
        .map_err(|e| format!("cannot run {}/up.sh: {e}", dir.display()))?;
    drop(lock);
    if !out.status.success() {
        return Err(format!(
            "{}/up.sh --kcm failed ({}): {}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse_exports(&String::from_utf8_lossy(&out.stdout))
}

/// The harness' state directory (`HARNESS_HOME`, default `$TMPDIR/nifcloud-k8s-harness`, as `up.sh` has it).
pub fn home() -> PathBuf {
    std::env::var_os("HARNESS_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("nifcloud-k8s-harness"))
}

/// Whether the harness' kube-apiserver is running (its pid file names a live process).
pub fn running() -> bool {
    std::fs::read_to_string(home().join("run/kube-apiserver.pid"))
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

/// Stops the harness (`down.sh`; with `wipe`, its cluster state is forgotten too).
pub fn stop(wipe: bool) -> Result<(), String> {
    let dir = dir()?;
    let mut cmd = Command::new("bash");
    cmd.arg(dir.join("down.sh"));
    if wipe {
        cmd.arg("--wipe");
    }
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {}/down.sh: {e}", dir.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{}/down.sh failed ({status})", dir.display()))
    }
}

/// Reads `up.sh`'s `export KUBECONFIG=...` and `export HARNESS_BIN=...` lines.
pub fn parse_exports(stdout: &str) -> Result<Harness, String> {
    let value = |key: &str| {
        stdout
            .lines()
            .filter_map(|l| l.trim().strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| PathBuf::from(v.trim().trim_matches('"')))
            .ok_or_else(|| format!("up.sh printed no {key}: {stdout:?}"))
    };
    Ok(Harness {
        kubeconfig: value("KUBECONFIG")?,
        bin: value("HARNESS_BIN")?,
    })
}

/// The harness for `test`, started if needed; `None` (after saying why) when it cannot be used.
/// With `needs_root`, also skips when not root.
pub fn harness(test: &str, needs_root: bool) -> Option<Harness> {
    if needs_root && !is_root() {
        skip(test, "needs root (loop devices, mounts)");
        return None;
    }
    match start() {
        Ok(h) => Some(h),
        Err(reason) => {
            skip(test, &reason);
            None
        }
    }
}

/// The cluster for an end-to-end suite: `NIFCLOUD_E2E_KUBECONFIG` when set (a real, disposable cluster),
/// else the harness; `None` (after saying why) when neither is available.
pub fn cluster(test: &str) -> Option<Cluster> {
    if let Some(path) = std::env::var_os(E2E_KUBECONFIG_ENV) {
        return Some(Cluster {
            kubeconfig: PathBuf::from(path),
            real: true,
        });
    }
    harness(test, false).map(|h| Cluster {
        kubeconfig: h.kubeconfig,
        real: false,
    })
}

/// Polls `check` every 500 ms until it returns `Some`, and returns that; panics naming `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: std::time::Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_are_parsed() {
        let h = parse_exports("export KUBECONFIG=/tmp/h/kubeconfig\nexport HARNESS_BIN=/tmp/h/bin\n").unwrap();
        assert_eq!(h.kubeconfig, PathBuf::from("/tmp/h/kubeconfig"));
        assert_eq!(h.tool("csi-sanity"), PathBuf::from("/tmp/h/bin/csi-sanity"));
        let err = parse_exports("export KUBECONFIG=/k\n").unwrap_err();
        assert!(err.contains("HARNESS_BIN"), "{err}");
    }

    #[test]
    fn a_missing_harness_directory_is_explained() {
        let err = check_dir(PathBuf::from("/nonexistent/harness")).unwrap_err();
        assert!(err.contains("/nonexistent/harness") && err.contains(DIR_ENV), "{err}");
        let here = tempfile_dir();
        std::fs::write(here.join("up.sh"), "").unwrap();
        assert_eq!(check_dir(here.clone()).unwrap(), std::fs::canonicalize(&here).unwrap());
        std::fs::remove_dir_all(&here).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("k8s-harness-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
