//! The filesystem tools layer of the `csi` image: the host's binaries plus the shared libraries `ldd` reports.
//!
//! The node plugin formats, checks, grows and mounts filesystems with these tools. They come from the build
//! host (Debian's e2fsprogs, xfsprogs, util-linux, mount), so the layer is reproducible for a given host, and
//! its content changes only when the host's packages do.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::oci::Entry;

/// Tools the node plugin runs.
pub const CSI_TOOLS: &[&str] = &[
    "mkfs.ext4",
    "mkfs.xfs",
    "blkid",
    "e2fsck",
    "resize2fs",
    "xfs_growfs",
    "mount",
    "umount",
    "losetup",
    "findmnt",
];

/// Configuration files the tools read when present (copied if the host has them).
const TOOL_CONFIG: &[&str] = &["etc/mke2fs.conf", "etc/e2fsck.conf"];

/// Errors while collecting tools.
#[derive(Debug, thiserror::Error)]
pub enum ToolsError {
    /// A tool is not installed on the build host.
    #[error("{tool} not found in /usr/sbin, /usr/bin, /sbin or /bin (install e2fsprogs, xfsprogs, util-linux, mount)")]
    NotFound {
        /// The tool.
        tool: String,
    },
    /// `ldd` failed or reported a missing library.
    #[error("ldd {path}: {message}")]
    Ldd {
        /// The binary.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// Reading a file failed.
    #[error("read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
}

/// Parses `ldd` output into the absolute paths of the libraries (and the dynamic loader) a binary needs.
/// `linux-vdso` has no file and is skipped; `not found` is an error; a static binary gives an empty list.
pub fn parse_ldd(output: &str) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for line in output.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.contains("not a dynamic executable") || line.contains("statically linked") {
            return Ok(Vec::new());
        }
        let path = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    return Err(format!("{} not found", name.trim()));
                }
                rest.split_whitespace().next().unwrap_or("")
            }
            None => line.split_whitespace().next().unwrap_or(""),
        };
        if path.starts_with('/') {
            let p = PathBuf::from(path);
            if !out.contains(&p) {
                out.push(p);
            }
        } else if !path.starts_with("linux-vdso") && !path.starts_with("linux-gate") && !path.is_empty() {
            return Err(format!("unexpected ldd line {line:?}"));
        }
    }
    Ok(out)
}

/// Finds `tool` on the host; returns the path it will have in the image (its directory with symlinked
/// directories resolved, e.g. `/sbin` → `/usr/sbin`).
pub fn locate(tool: &str) -> Result<PathBuf, ToolsError> {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(tool);
        if p.exists() {
            let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| PathBuf::from(dir));
            return Ok(dir.join(tool));
        }
    }
    Err(ToolsError::NotFound { tool: tool.into() })
}

fn read(path: &Path) -> Result<Vec<u8>, ToolsError> {
    std::fs::read(path).map_err(|source| ToolsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Collects the tools, their libraries and config files as layer entries, plus a list of what was taken.
pub fn collect(tools: &[&str]) -> Result<(Vec<Entry>, Vec<String>), ToolsError> {
    let mut entries = Vec::new();
    let mut libs: Vec<PathBuf> = Vec::new();
    let mut taken = Vec::new();
    for tool in tools {
        let path = locate(tool)?;
        // read through symlinks (mkfs.ext4 -> mke2fs): the image gets a regular file at the tool's name
        entries.push(Entry::file(&path.to_string_lossy(), 0o755, read(&path)?));
        taken.push(path.display().to_string());
        let out = Command::new("ldd").arg(&path).output().map_err(|e| ToolsError::Ldd {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        // ldd exits 1 for static binaries; the text says so and parse_ldd handles it
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for lib in parse_ldd(&text).map_err(|message| ToolsError::Ldd {
            path: path.display().to_string(),
            message,
        })? {
            if !libs.contains(&lib) {
                libs.push(lib);
            }
        }
    }
    for lib in libs {
        entries.push(Entry::file(&lib.to_string_lossy(), 0o755, read(&lib)?));
        taken.push(lib.display().to_string());
    }
    for cfg in TOOL_CONFIG {
        let p = Path::new("/").join(cfg);
        if p.exists() {
            entries.push(Entry::file(cfg, 0o644, read(&p)?));
            taken.push(p.display().to_string());
        }
    }
    Ok((entries, taken))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd3c5f2000)\n\
                    \tlibext2fs.so.2 => /lib/x86_64-linux-gnu/libext2fs.so.2 (0x00007f0b2a000000)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0b29e00000)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f0b2a1d5000)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libext2fs.so.2"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        assert_eq!(
            parse_ldd("\tnot a dynamic executable\n").unwrap(),
            Vec::<PathBuf>::new()
        );
        assert_eq!(parse_ldd("\tstatically linked\n").unwrap(), Vec::<PathBuf>::new());
        assert!(
            parse_ldd("\tlibfoo.so.1 => not found\n")
                .unwrap_err()
                .contains("libfoo")
        );
    }

    #[test]
    fn collects_the_host_tools_with_their_libraries() {
        if CSI_TOOLS.iter().any(|t| locate(t).is_err()) {
            eprintln!("skipping: not every CSI tool is installed on this host");
            return;
        }
        let (entries, taken) = collect(CSI_TOOLS).unwrap();
        assert!(taken.iter().any(|t| t.ends_with("/mkfs.ext4")));
        assert!(
            taken.iter().any(|t| t.contains("libc.so")),
            "glibc missing from {taken:?}"
        );
        assert!(
            taken.iter().any(|t| t.contains("ld-linux")),
            "dynamic loader missing from {taken:?}"
        );
        assert!(entries.iter().all(|e| !e.path.starts_with('/')));
    }
}
