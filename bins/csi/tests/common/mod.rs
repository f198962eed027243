//! Shared by the binary's tests: the built driver started as its own process against an in-process emulator.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nifcloud_emulator::Emulator;

/// A child process killed (and reaped) when dropped, so a failing test leaves nothing running.
pub struct Proc {
    /// What it is, for messages.
    pub name: String,
    child: Child,
}

impl Proc {
    /// Starts `cmd` (its output goes to `log`).
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Proc {
        let out = std::fs::File::create(log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let err = out.try_clone().expect("dup log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Proc {
            name: name.into(),
            child,
        }
    }

    /// Panics (with its log) if it has exited.
    pub fn assert_running(&mut self, log: &Path) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited ({status}):\n{}",
                self.name,
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("wait")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The driver binary with the emulator's credentials, region and endpoint in its environment (nothing else).
pub fn driver(emu: &Emulator) -> Command {
    let (ak, sk) = emu.credentials();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nifcloud-csi-driver"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NIFCLOUD_ACCESS_KEY_ID", ak)
        .env("NIFCLOUD_SECRET_ACCESS_KEY", sk)
        .env("NIFCLOUD_DEFAULT_REGION", emu.region())
        .env("NIFCLOUD_ENDPOINT_URL", emu.endpoint())
        .env("RUST_LOG", "info");
    cmd
}

/// A sysfs root for the node plugin on a test machine: the real device tree (`dev/block`, `class/block`: sizes,
/// kernel names of the emulator's loop devices) and an empty `class/scsi_host`, so no SCSI host of the machine
/// is ever rescanned.
pub fn test_sysfs(dir: &Path) -> PathBuf {
    let sys = dir.join("sys");
    std::fs::create_dir_all(sys.join("class/scsi_host")).unwrap();
    std::os::unix::fs::symlink("/sys/dev", sys.join("dev")).unwrap();
    std::os::unix::fs::symlink("/sys/class/block", sys.join("class/block")).unwrap();
    sys
}

/// Waits until `path` exists (a driver's socket), or panics with `proc`'s log.
pub async fn wait_for_socket(path: &Path, proc: &mut Proc, log: &Path) {
    for _ in 0..400 {
        if path.exists() {
            return;
        }
        proc.assert_running(log);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{} did not create {}", proc.name, path.display());
}

/// Mount points below `dir` (the tests must leave none).
pub fn mounts_below(dir: &Path) -> Vec<String> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(&dir))
        .map(str::to_string)
        .collect()
}
