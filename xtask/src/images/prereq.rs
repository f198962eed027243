//! What `cargo xtask images` needs from the build machine, checked before anything is compiled: the musl target
//! of the Rust toolchain (`rust-toolchain.toml` lists it, so rustup installs it with the toolchain), a C compiler
//! for musl (ring compiles C code), and the filesystem tools the `csi` image carries. Everything that is missing
//! is named in one line, with the commands that install it, instead of failing one at a time after a long build.
//!
//! [`Host`] is what the checks look at; [`Host::probe`] reads it from this machine, tests build one by hand.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::TARGET;
use super::tools::{self, CSI_TOOLS};

/// The environment variable the `cc` crate reads for the musl target's C compiler (also accepted with dashes).
pub const CC_ENV: &str = "CC_x86_64_unknown_linux_musl";
/// C compilers for musl looked for on PATH, in order: Debian's `musl-tools` wrapper, then a musl-cross toolchain.
pub const MUSL_CCS: &[&str] = &["musl-gcc", "x86_64-linux-musl-gcc"];
/// The Debian package with `musl-gcc`.
pub const MUSL_PACKAGE: &str = "musl-tools";

/// The build machine as the checks see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    /// `CC_x86_64_unknown_linux_musl` (or `CC_x86_64-unknown-linux-musl`) when set.
    pub cc_override: Option<String>,
    /// The directories of PATH.
    pub path: Vec<PathBuf>,
    /// Where the workspace's toolchain keeps the musl target's libraries (`rustc --print target-libdir --target
    /// x86_64-unknown-linux-musl`); `None` when rustc did not answer.
    pub musl_libdir: Option<PathBuf>,
    /// Directories the filesystem tools are looked for in.
    pub tool_dirs: Vec<PathBuf>,
}

impl Host {
    /// Reads this machine: the environment, PATH, and the rustc that cargo uses in `root` (rustup picks the
    /// toolchain of `root/rust-toolchain.toml`).
    pub fn probe(root: &Path) -> Self {
        let cc_override = [CC_ENV, "CC_x86_64-unknown-linux-musl"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()));
        let path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let musl_libdir = Command::new(rustc)
            .current_dir(root)
            .args(["--print", "target-libdir", "--target", TARGET])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
            .filter(|p| !p.as_os_str().is_empty());
        Self {
            cc_override,
            path,
            musl_libdir,
            tool_dirs: tools::TOOL_DIRS.iter().map(PathBuf::from).collect(),
        }
    }

    /// Whether the musl target's standard library is installed.
    pub fn has_musl_target(&self) -> bool {
        self.musl_libdir
            .as_deref()
            .and_then(|d| std::fs::read_dir(d).ok())
            .is_some_and(|mut entries| {
                entries.any(|e| {
                    e.ok().is_some_and(|e| {
                        let name = e.file_name();
                        let name = name.to_string_lossy();
                        name.starts_with("libstd-") && name.ends_with(".rlib")
                    })
                })
            })
    }

    /// `program` as an executable file: a path as given, a bare name from PATH.
    fn executable(&self, program: &str) -> Option<PathBuf> {
        let is_exe = |p: &Path| {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        };
        if program.contains('/') {
            let p = PathBuf::from(program);
            return is_exe(&p).then_some(p);
        }
        self.path.iter().map(|d| d.join(program)).find(|p| is_exe(p))
    }

    /// The C compiler for musl: the override when it names an executable (its first word: `cc` accepts
    /// `ccache musl-gcc`), else the first of [`MUSL_CCS`] on PATH.
    pub fn musl_cc(&self) -> Option<String> {
        match &self.cc_override {
            Some(cc) => {
                let program = cc.split_whitespace().next().unwrap_or_default();
                self.executable(program).map(|_| cc.clone())
            }
            None => MUSL_CCS
                .iter()
                .find(|cc| self.executable(cc).is_some())
                .map(|cc| (*cc).to_owned()),
        }
    }

    /// The filesystem tools of the `csi` image that are in none of the tool directories.
    pub fn missing_tools(&self) -> Vec<&'static str> {
        CSI_TOOLS
            .iter()
            .copied()
            .filter(|t| !self.tool_dirs.iter().any(|d| d.join(t).exists()))
            .collect()
    }
}

/// What the build needs and the host lacks, with how to install it; displays as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// What is missing, in words.
    pub what: Vec<String>,
    /// Commands that install it (one `rustup`, one `apt-get`).
    pub install: Vec<String>,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot build the images on this machine, it lacks {}; install with: {}",
            self.what.join(", "),
            self.install.join(" && ")
        )
    }
}

impl std::error::Error for Missing {}

/// Checks `host` for a build: with `compile`, the musl target and a C compiler for musl (not needed for
/// `--prebuilt`); with `csi`, the tools the `csi` image carries. Returns the C compiler to build with (`None`
/// without `compile`), or everything missing at once.
pub fn check(host: &Host, compile: bool, csi: bool) -> Result<Option<String>, Missing> {
    let mut what = Vec::new();
    let mut install = Vec::new();
    let mut apt: Vec<&'static str> = Vec::new();
    let mut cc = None;
    if compile {
        if !host.has_musl_target() {
            what.push(format!("the Rust target {TARGET} (rust-toolchain.toml lists it)"));
            install.push(format!("rustup target add {TARGET}"));
        }
        cc = host.musl_cc();
        match (&cc, &host.cc_override) {
            (Some(_), _) => {}
            (None, Some(bad)) => what.push(format!(
                "the C compiler {CC_ENV}={bad} names (not an executable on PATH)"
            )),
            (None, None) => {
                what.push("a C compiler for musl (ring compiles C code), such as musl-gcc".into());
                apt.push(MUSL_PACKAGE);
            }
        }
    }
    if csi {
        let tools = host.missing_tools();
        if !tools.is_empty() {
            what.push(format!("{} (the csi image carries them)", tools.join(", ")));
            for t in tools {
                let package = tools::package_of(t);
                if !apt.contains(&package) {
                    apt.push(package);
                }
            }
        }
    }
    if !apt.is_empty() {
        install.push(format!("apt-get install -y {}", apt.join(" ")));
    }
    if what.is_empty() {
        Ok(cc)
    } else {
        Err(Missing { what, install })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host in a temporary directory: `bin/` on PATH, `sbin/` for the tools, `libdir/` as the musl libdir.
    struct Fake {
        dir: tempfile::TempDir,
    }

    impl Fake {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            for d in ["bin", "sbin", "libdir"] {
                std::fs::create_dir(dir.path().join(d)).unwrap();
            }
            Self { dir }
        }

        fn path(&self, p: &str) -> PathBuf {
            self.dir.path().join(p)
        }

        fn with_exe(self, p: &str) -> Self {
            use std::os::unix::fs::PermissionsExt as _;
            let f = self.path(p);
            std::fs::write(&f, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
            self
        }

        fn with_musl_std(self) -> Self {
            std::fs::write(self.path("libdir/libstd-0123abcd.rlib"), b"").unwrap();
            self
        }

        fn with_all_tools(mut self) -> Self {
            for t in CSI_TOOLS {
                self = self.with_exe(&format!("sbin/{t}"));
            }
            self
        }

        fn host(&self) -> Host {
            Host {
                cc_override: None,
                path: vec![self.path("bin")],
                musl_libdir: Some(self.path("libdir")),
                tool_dirs: vec![self.path("sbin")],
            }
        }
    }

    #[test]
    fn a_fresh_machine_is_told_everything_it_lacks_in_one_line() {
        let fake = Fake::new();
        let err = check(&fake.host(), true, true).unwrap_err();
        let msg = err.to_string();
        assert!(!msg.contains('\n'), "{msg}");
        assert_eq!(
            err.install,
            vec![
                format!("rustup target add {TARGET}"),
                "apt-get install -y musl-tools e2fsprogs xfsprogs util-linux mount".to_owned(),
            ]
        );
        assert!(msg.starts_with("cannot build the images on this machine, it lacks the Rust target x86_64-unknown-linux-musl (rust-toolchain.toml lists it), a C compiler for musl (ring compiles C code), such as musl-gcc, mkfs.ext4, "), "{msg}");
        assert!(msg.ends_with("; install with: rustup target add x86_64-unknown-linux-musl && apt-get install -y musl-tools e2fsprogs xfsprogs util-linux mount"), "{msg}");
    }

    #[test]
    fn the_c_compiler_for_musl_is_named_with_its_package() {
        let fake = Fake::new().with_musl_std().with_all_tools();
        let err = check(&fake.host(), true, true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot build the images on this machine, it lacks a C compiler for musl (ring compiles C code), \
             such as musl-gcc; install with: apt-get install -y musl-tools"
        );
        // musl-tools installed: found on PATH, and that is what the build uses
        let fake = fake.with_exe("bin/musl-gcc");
        assert_eq!(check(&fake.host(), true, true), Ok(Some("musl-gcc".to_owned())));
    }

    #[test]
    fn the_musl_target_is_named_with_the_rustup_command() {
        let fake = Fake::new().with_exe("bin/musl-gcc").with_all_tools();
        let err = check(&fake.host(), true, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot build the images on this machine, it lacks the Rust target x86_64-unknown-linux-musl \
             (rust-toolchain.toml lists it); install with: rustup target add x86_64-unknown-linux-musl"
        );
        // rustc that does not answer counts as no target
        let host = Host {
            musl_libdir: None,
            ..fake.host()
        };
        assert!(check(&host, true, false).is_err());
        let fake = fake.with_musl_std();
        assert_eq!(check(&fake.host(), true, false), Ok(Some("musl-gcc".to_owned())));
    }

    #[test]
    fn a_compiler_from_the_environment_wins_and_must_exist() {
        let fake = Fake::new()
            .with_musl_std()
            .with_exe("bin/musl-gcc")
            .with_exe("bin/cross-cc");
        let host = Host {
            cc_override: Some("cross-cc".into()),
            ..fake.host()
        };
        assert_eq!(check(&host, true, false), Ok(Some("cross-cc".to_owned())));
        let by_path = Host {
            cc_override: Some(format!("{} -static", fake.path("bin/cross-cc").display())),
            ..fake.host()
        };
        assert!(
            check(&by_path, true, false)
                .unwrap()
                .unwrap()
                .ends_with("bin/cross-cc -static")
        );
        let bad = Host {
            cc_override: Some("no-such-cc".into()),
            ..fake.host()
        };
        let err = check(&bad, true, false).unwrap_err();
        assert_eq!(
            err.what,
            vec!["the C compiler CC_x86_64_unknown_linux_musl=no-such-cc names (not an executable on PATH)".to_owned()]
        );
        // the other cross toolchain's name is found too
        let cross = Fake::new().with_musl_std().with_exe("bin/x86_64-linux-musl-gcc");
        assert_eq!(
            check(&cross.host(), true, false),
            Ok(Some("x86_64-linux-musl-gcc".to_owned()))
        );
    }

    #[test]
    fn prebuilt_binaries_need_only_the_tools_and_only_for_csi() {
        let fake = Fake::new();
        assert_eq!(check(&fake.host(), false, false), Ok(None));
        let err = check(&fake.host(), false, true).unwrap_err();
        assert!(!err.to_string().contains("musl"), "{err}");
        let fake = Fake::new()
            .with_exe("sbin/mkfs.ext4")
            .with_exe("sbin/e2fsck")
            .with_exe("sbin/resize2fs")
            .with_exe("sbin/blkid")
            .with_exe("sbin/findmnt")
            .with_exe("sbin/mount")
            .with_exe("sbin/umount")
            .with_exe("sbin/losetup");
        assert_eq!(
            check(&fake.host(), false, true).unwrap_err().to_string(),
            "cannot build the images on this machine, it lacks mkfs.xfs, xfs_growfs (the csi image carries them); \
             install with: apt-get install -y xfsprogs"
        );
        assert_eq!(fake.with_all_tools().host().missing_tools(), Vec::<&str>::new());
    }

    #[test]
    fn this_machine_is_probed_without_panicking() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let host = Host::probe(&root);
        assert!(!host.path.is_empty());
        // what this machine has is its own business; the check must answer either way, in one line
        match check(&host, true, true) {
            Ok(cc) => assert!(cc.is_some()),
            Err(e) => assert!(!e.to_string().contains('\n'), "{e}"),
        }
    }
}
