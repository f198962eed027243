//! Running external tools (mkfs, blkid, mount, ...) with an explicit argv, no shell, a timeout,
//! and stderr kept for the error message.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The program could not be started (missing binary, permissions).
    #[error("could not run `{command}`: {source}")]
    Spawn {
        /// The command line (mount options hidden).
        command: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The program did not finish in time and was killed.
    #[error("`{command}` did not finish within {timeout:?} and was killed")]
    Timeout {
        /// The command line (mount options hidden).
        command: String,
        /// The limit.
        timeout: Duration,
    },
    /// The program exited unsuccessfully.
    #[error("`{command}` failed with exit code {code:?}: {stderr}")]
    Failed {
        /// The command line (mount options hidden).
        command: String,
        /// Exit code (`None` if killed by a signal).
        code: Option<i32>,
        /// Trimmed standard error (or standard output when stderr is empty).
        stderr: String,
    },
}

/// What a finished command printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output, as text (invalid UTF-8 replaced).
    pub stdout: String,
    /// Standard error, as text (invalid UTF-8 replaced).
    pub stderr: String,
}

/// The command line for messages. The value after `-o` (mount options, which the CSI spec says
/// may be sensitive) is hidden.
pub fn display_command(program: &str, args: &[String]) -> String {
    let mut out = String::from(program);
    let mut hide_next = false;
    for a in args {
        out.push(' ');
        if hide_next {
            out.push_str("<options>");
            hide_next = false;
        } else {
            out.push_str(a);
            hide_next = program == "mount" && a == "-o";
        }
    }
    out
}

/// Runs `program args...` and returns its output whatever the exit code.
pub async fn run_raw(program: &str, args: &[String], timeout: Duration) -> Result<CommandOutput, ExecError> {
    let command = display_command(program, args);
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ExecError::Spawn {
            command: command.clone(),
            source,
        })?;
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(result) => result.map_err(|source| ExecError::Spawn {
            command: command.clone(),
            source,
        })?,
        // Dropping the future drops the child, which kill_on_drop kills.
        Err(_) => return Err(ExecError::Timeout { command, timeout }),
    };
    Ok(CommandOutput {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Runs `program args...` and fails unless it exits with 0.
pub async fn run(program: &str, args: &[String], timeout: Duration) -> Result<CommandOutput, ExecError> {
    let out = run_raw(program, args, timeout).await?;
    if out.code == Some(0) {
        Ok(out)
    } else {
        let detail = if out.stderr.trim().is_empty() {
            out.stdout.trim()
        } else {
            out.stderr.trim()
        };
        Err(ExecError::Failed {
            command: display_command(program, args),
            code: out.code,
            stderr: detail.to_string(),
        })
    }
}

/// `args!["a", x, ...]`: an array of `String`s from anything `Display`.
macro_rules! args {
    ($($a:expr),* $(,)?) => { [$(::std::string::ToString::to_string(&$a)),*] };
}
pub(crate) use args;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_mount_options() {
        let args = args!["-t", "ext4", "-o", "user=bob,password=x", "/dev/sdb", "/mnt"];
        let shown = display_command("mount", &args);
        assert_eq!(shown, "mount -t ext4 -o <options> /dev/sdb /mnt");
        assert_eq!(display_command("mkfs.xfs", &args!["-o", "x"]), "mkfs.xfs -o x");
    }

    #[tokio::test]
    async fn stderr_reaches_the_error_and_timeouts_kill() {
        let err = run("sh", &args!["-c", "echo boom >&2; exit 3"], Duration::from_secs(5))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("boom") && text.contains("Some(3)"), "{text}");
        let err = run("sleep", &args!["5"], Duration::from_millis(100)).await.unwrap_err();
        assert!(matches!(err, ExecError::Timeout { .. }), "{err}");
        let err = run("/nonexistent/tool", &[], Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(err, ExecError::Spawn { .. }), "{err}");
        let ok = run_raw("sh", &args!["-c", "echo out; exit 2"], Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!((ok.code, ok.stdout.as_str()), (Some(2), "out\n"));
    }
}
