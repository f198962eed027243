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

/// Where the tools are looked for on the build host.
pub const TOOL_DIRS: &[&str] = &["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// The Debian package that installs `tool` (one of [`CSI_TOOLS`]).
pub fn package_of(tool: &str) -> &'static str {
    match tool {
        "mkfs.ext4" | "e2fsck" | "resize2fs" => "e2fsprogs",
        "mkfs.xfs" | "xfs_growfs" => "xfsprogs",
        "blkid" | "findmnt" => "util-linux",
        _ => "mount",
    }
}

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
    for dir in TOOL_DIRS {
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
    fn the_image_ships_every_tool_the_node_plugin_checks_for() {
        // The node's Probe checks for these, derived from the filesystems the driver accepts: a filesystem the
        // driver accepts but the image cannot format would fail every claim that asks for it.
        let node = csi_core::node::NodeConfig {
            policy: nifcloud_csi::controller::capability_policy(),
            ..Default::default()
        };
        for tool in node.required_tools() {
            assert!(CSI_TOOLS.contains(&tool), "the csi image lacks {tool}");
        }
    }

    #[test]
    fn every_tool_has_its_debian_package() {
        let packages: Vec<&str> = CSI_TOOLS.iter().map(|t| package_of(t)).collect();
        assert_eq!(
            packages,
            [
                "e2fsprogs",
                "xfsprogs",
                "util-linux",
                "e2fsprogs",
                "e2fsprogs",
                "xfsprogs",
                "mount",
                "mount",
                "mount",
                "util-linux"
            ]
        );
    }

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

    fn is_root() -> bool {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .map(|l| l.split_whitespace().nth(1) == Some("0"))
            })
            .unwrap_or(false)
    }

    /// Builds base + tools layers, unpacks them with umoci and runs the tools in a chroot of the rootfs:
    /// proves the copied libraries and loader are complete. Needs root, umoci and the host tools.
    #[test]
    fn tools_run_inside_the_unpacked_image() {
        let umoci = Command::new("umoci")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !umoci || !is_root() || CSI_TOOLS.iter().any(|t| locate(t).is_err()) {
            eprintln!("skipping: needs root, umoci and every CSI tool on the host");
            return;
        }
        let base = crate::oci::build_layer("base", crate::images::base_entries().unwrap()).unwrap();
        let (entries, _) = collect(CSI_TOOLS).unwrap();
        let tools = crate::oci::build_layer("tools", entries).unwrap();
        let image = crate::oci::assemble(&oci_spec::image::Config::default(), &[base, tools]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("layout");
        let files = crate::oci::layout_files(&image, "t", "example.test/csi:t").unwrap();
        crate::oci::write_layout(&layout, &files).unwrap();
        let bundle = dir.path().join("bundle");
        let out = Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:t", layout.display()))
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "umoci unpack: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rootfs = bundle.join("rootfs");
        let run = |args: &[&str]| {
            let out = Command::new("chroot").arg(&rootfs).args(args).output().unwrap();
            assert!(
                out.status.success(),
                "{args:?} in the image: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        for tool in CSI_TOOLS {
            let path = locate(tool).unwrap();
            let flag = if tool.starts_with("mkfs.ext4")
                || *tool == "e2fsck"
                || *tool == "resize2fs"
                || tool.starts_with("mkfs.xfs")
                || *tool == "xfs_growfs"
            {
                "-V"
            } else {
                "--version"
            };
            let out = Command::new("chroot")
                .arg(&rootfs)
                .arg(&path)
                .arg(flag)
                .output()
                .unwrap();
            // e2fsck/resize2fs print their version on stderr and may exit non-zero for -V without a device;
            // what matters is that the loader found every library (exit 127 or "error while loading" otherwise)
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.code() != Some(127) && !err.contains("error while loading"),
                "{tool}: {err}"
            );
        }
        // a real filesystem: create, identify and check an ext4 image inside the chroot
        std::fs::write(rootfs.join("tmp/disk.img"), vec![0u8; 16 << 20]).unwrap();
        run(&["/usr/sbin/mkfs.ext4", "-q", "-F", "/tmp/disk.img"]);
        assert_eq!(
            run(&["/usr/sbin/blkid", "-o", "value", "-s", "TYPE", "/tmp/disk.img"]).trim(),
            "ext4"
        );
        run(&["/usr/sbin/e2fsck", "-n", "-f", "/tmp/disk.img"]);
    }
}
