//! Test support shared by the binary's tests: a tiny static stand-in for our binaries (so `cargo xtask images
//! --prebuilt` needs no musl build), and a real OCI registry (Debian's `docker-registry`, the CNCF distribution
//! registry) on 127.0.0.1 with basic auth over plain HTTP, read with skopeo.
//!
//! Each test binary uses part of it.
#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REGISTRY_BIN: &str = "docker-registry";
pub const USER: &str = "xtask";
pub const PASSWORD: &str = "xtask-push-test";
/// bcrypt of [`PASSWORD`] (cost 4), for the registry's htpasswd file.
pub const PASSWORD_BCRYPT: &str = "$2b$04$TJGTGHYjWD8XBDNMuKUYUOqczyH3v.cwIZDKBlokoQZrd5BwjUAsG";

/// A minimal static x86-64 Linux executable: one PT_LOAD segment whose code is `exit(0)`.
pub fn tiny_static_elf() -> Vec<u8> {
    let code: [u8; 9] = [0xb8, 0x3c, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05]; // mov eax,60; xor edi,edi; syscall
    let total = (64 + 56 + code.len()) as u64;
    let mut e = Vec::new();
    e.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    e.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    e.extend_from_slice(&0x3eu16.to_le_bytes()); // x86-64
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&(0x400000u64 + 120).to_le_bytes()); // entry
    e.extend_from_slice(&64u64.to_le_bytes()); // phoff
    e.extend_from_slice(&0u64.to_le_bytes()); // shoff
    e.extend_from_slice(&0u32.to_le_bytes());
    for v in [64u16, 56, 1, 0, 0, 0] {
        e.extend_from_slice(&v.to_le_bytes());
    }
    e.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    e.extend_from_slice(&5u32.to_le_bytes()); // R+X
    for v in [0u64, 0x400000, 0x400000, total, total, 0x1000] {
        e.extend_from_slice(&v.to_le_bytes());
    }
    e.extend_from_slice(&code);
    e
}

pub fn host_has_tools() -> bool {
    [
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
    ]
    .iter()
    .all(|t| {
        ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|d| Path::new(d).join(t).exists())
    })
}

pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// Writes the stand-in binaries of the three images into `dir/bins`.
pub fn stand_in_binaries(dir: &Path) -> PathBuf {
    let bins = dir.join("bins");
    std::fs::create_dir(&bins).unwrap();
    for name in [
        "nifcloud-cloud-controller-manager",
        "nifcloud-csi-driver",
        "nifcloud-emulator",
    ] {
        let p = bins.join(name);
        std::fs::write(&p, tiny_static_elf()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // A process another test forks at the same moment may still hold the file open for writing until it execs
    // (ETXTBSY, "text file busy"): try again shortly, as the kernel will let go.
    let mut attempts = 0;
    let status = loop {
        match Command::new(bins.join("nifcloud-emulator")).status() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other.unwrap(),
        }
    };
    assert!(status.success(), "the stand-in runs");
    bins
}

/// A `docker-registry` process on 127.0.0.1 with storage and config in a temporary directory; killed on drop.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    log: PathBuf,
}

impl Registry {
    /// Starts the registry with htpasswd basic auth for [`USER`] (over plain HTTP, on loopback only).
    pub fn start(dir: &Path) -> Registry {
        std::fs::write(dir.join("htpasswd"), format!("{USER}:{PASSWORD_BCRYPT}\n")).unwrap();
        let mut last_log = String::new();
        for _ in 0..3 {
            // a free port: bound, released, then given to the registry (retried if someone takes it meanwhile)
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let addr = format!("127.0.0.1:{port}");
            let config = dir.join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog: {{level: info, accesslog: {{disabled: true}}}}\n\
                     storage: {{filesystem: {{rootdirectory: {storage}}}}}\n\
                     http: {{addr: \"{addr}\", secret: xtask-test}}\n\
                     auth: {{htpasswd: {{realm: xtask-test, path: {htpasswd}}}}}\n",
                    storage = dir.join("storage").display(),
                    htpasswd = dir.join("htpasswd").display(),
                ),
            )
            .unwrap();
            let log = dir.join("registry.log");
            let log_file = std::fs::File::create(&log).unwrap();
            let child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file)
                .spawn()
                .unwrap();
            let mut registry = Registry { child, addr, log };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                // `/v2/` answers 401 (auth required) once the registry serves
                if http_status(&registry.addr, "/v2/") == Some(401) {
                    return registry;
                }
                if registry.child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            last_log = registry.log_text();
            let _ = registry.child.kill();
        }
        panic!("docker-registry did not start:\n{last_log}");
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status code of a plain HTTP/1.0 GET, or None if nothing answers.
pub fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

/// Runs skopeo with the registry's credentials; panics with its stderr (and the registry's log) on failure.
pub fn skopeo(registry: &Registry, args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}\nregistry log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        registry.log_text()
    );
    out.stdout
}
