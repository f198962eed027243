//! `mount` / `umount` invocations (explicit argv, timeout, stderr in errors).

use std::path::Path;
use std::time::Duration;

use super::exec::args;
use super::exec::{self, ExecError};

/// Mounts the filesystem of type `fs_type` on `device` at `target` with `options`.
pub async fn mount_fs(
    device: &Path,
    target: &Path,
    fs_type: &str,
    options: &[String],
    timeout: Duration,
) -> Result<(), ExecError> {
    let mut argv = args!["-t", fs_type].to_vec();
    if !options.is_empty() {
        argv.push("-o".into());
        argv.push(options.join(","));
    }
    argv.push(device.display().to_string());
    argv.push(target.display().to_string());
    exec::run("mount", &argv, timeout).await.map(|_| ())
}

/// Bind-mounts `source` (directory or device node) onto `target`; with `read_only` the bind is
/// then remounted read-only (a bind mount ignores `ro` on the first call). If the remount
/// fails the bind is undone so nothing is left writable by mistake.
pub async fn bind(
    source: &Path,
    target: &Path,
    read_only: bool,
    extra_options: &[String],
    timeout: Duration,
) -> Result<(), ExecError> {
    exec::run("mount", &args!["--bind", source.display(), target.display()], timeout).await?;
    if read_only || !extra_options.is_empty() {
        let mut opts = vec!["remount".to_string(), "bind".to_string()];
        if read_only {
            opts.push("ro".into());
        }
        opts.extend(extra_options.iter().cloned());
        let remount = exec::run("mount", &args!["-o", opts.join(","), target.display()], timeout).await;
        if let Err(e) = remount {
            if let Err(undo) = unmount(target, timeout).await {
                tracing::error!(target = %target.display(), error = %undo, "could not undo bind mount after failed remount");
            }
            return Err(e);
        }
    }
    Ok(())
}

/// Unmounts `target` once.
pub async fn unmount(target: &Path, timeout: Duration) -> Result<(), ExecError> {
    exec::run("umount", &args![target.display()], timeout).await.map(|_| ())
}
