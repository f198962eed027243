//! `cargo xtask images --prebuilt DIR` end to end, with a tiny static stand-in binary (no cargo build): the
//! layouts and archives it writes, and `--push` to a real registry (Debian's `docker-registry`, the CNCF
//! distribution registry, on 127.0.0.1 with basic auth over plain HTTP) read back with skopeo.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const NAMES: [&str; 3] = ["ccm", "csi", "emulator"];
const REGISTRY_BIN: &str = "docker-registry";
const USER: &str = "xtask";
const PASSWORD: &str = "xtask-push-test";
/// bcrypt of [`PASSWORD`] (cost 4), for the registry's htpasswd file.
const PASSWORD_BCRYPT: &str = "$2b$04$TJGTGHYjWD8XBDNMuKUYUOqczyH3v.cwIZDKBlokoQZrd5BwjUAsG";

/// A minimal static x86-64 Linux executable: one PT_LOAD segment whose code is `exit(0)`.
fn tiny_static_elf() -> Vec<u8> {
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

fn host_has_tools() -> bool {
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

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// Writes the stand-in binaries of the three images into `dir/bins`.
fn stand_in_binaries(dir: &Path) -> PathBuf {
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
    assert!(
        Command::new(bins.join("nifcloud-emulator")).status().unwrap().success(),
        "the stand-in runs"
    );
    bins
}

fn xtask(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env_remove("REGISTRY_USERNAME")
        .env_remove("REGISTRY_PASSWORD")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn json_file(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The manifest digest in the layout `dir` (its index.json has one entry).
fn layout_digest(dir: &Path) -> String {
    json_file(&dir.join("index.json"))["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The file names under `dir/blobs/sha256` (the hex digests).
fn blob_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn images_from_prebuilt_binaries_are_written_and_dynamic_binaries_refused() {
    if !host_has_tools() {
        eprintln!("skipping: the csi image needs the host's filesystem tools (e2fsprogs, xfsprogs, util-linux)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bins = stand_in_binaries(dir.path());
    let out = dir.path().join("out");
    let (bins_arg, out_arg) = (bins.to_str().unwrap(), out.to_str().unwrap());
    let result = xtask(
        &["images", "--prebuilt", bins_arg, "--out", out_arg, "--tag", "t1"],
        &[],
    );
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
    let summary = std::fs::read_to_string(out.join("images.txt")).unwrap();
    for name in NAMES {
        assert!(out.join(format!("{name}.oci.tar")).exists(), "{name}");
        let digest = layout_digest(&out.join(name));
        assert!(
            summary.contains(&format!("ghcr.io/nifcloud-k8s/{name}:t1@{digest}")),
            "{summary}"
        );
        let index = json_file(&out.join(name).join("index.json"));
        assert_eq!(
            index["manifests"][0]["annotations"]["io.containerd.image.name"],
            format!("ghcr.io/nifcloud-k8s/{name}:t1")
        );
    }
    assert!(!out.join("pushed.txt").exists());

    std::fs::copy("/bin/ls", bins.join("nifcloud-emulator")).unwrap();
    let out2 = dir.path().join("out2");
    let args = [
        "images",
        "--prebuilt",
        bins_arg,
        "--out",
        out2.to_str().unwrap(),
        "--only",
        "emulator",
    ];
    let refused = xtask(&args, &[]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("dynamically linked"), "{stderr}");
}

/// A `docker-registry` process on 127.0.0.1 with storage and config in a temporary directory; killed on drop.
struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    addr: String,
    log: PathBuf,
}

impl Registry {
    /// Starts the registry with htpasswd basic auth for [`USER`] (over plain HTTP, on loopback only).
    fn start(dir: &Path) -> Registry {
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

    fn log_text(&self) -> String {
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
fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

/// Runs skopeo with the registry's credentials; panics with its stderr (and the registry's log) on failure.
fn skopeo(registry: &Registry, args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}\nregistry log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        registry.log_text()
    );
    out.stdout
}

#[test]
fn images_are_pushed_to_a_real_registry_and_read_back_with_skopeo() {
    for (tool, why) in [
        (
            REGISTRY_BIN,
            "the real registry (apt-get install -y docker-registry; CI installs it)",
        ),
        (
            "skopeo",
            "the registry client that reads the pushed images back (apt-get install -y skopeo)",
        ),
    ] {
        if !on_path(tool) {
            eprintln!("skipping: {tool} is not installed, and it is {why}");
            return;
        }
    }
    if !host_has_tools() {
        eprintln!("skipping: the csi image needs the host's filesystem tools (e2fsprogs, xfsprogs, util-linux)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(dir.path());
    let bins = stand_in_binaries(dir.path());
    let out = dir.path().join("out");
    let target = format!("{}/nk", registry.addr);
    let push = |out: &Path, tag: &str, only: &str, password: &str| {
        let mut args = vec![
            "images",
            "--prebuilt",
            bins.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(["--tag", tag, "--only", only, "--push", &target]);
        xtask(&args, &[("REGISTRY_USERNAME", USER), ("REGISTRY_PASSWORD", password)])
    };

    let result = push(&out, "t1", "ccm,csi,emulator", PASSWORD);
    assert!(
        result.status.success(),
        "xtask images --push: {}\nregistry log:\n{}",
        String::from_utf8_lossy(&result.stderr),
        registry.log_text()
    );
    let pushed = std::fs::read_to_string(out.join("pushed.txt")).unwrap();
    let creds = format!("{USER}:{PASSWORD}");
    for name in NAMES {
        let layout = out.join(name);
        let built = layout_digest(&layout);
        assert!(
            pushed.lines().any(|l| l == format!("{target}/{name}:t1@{built}")),
            "{name}: {pushed}"
        );
        let image = format!("docker://{target}/{name}:t1");
        let remote: Value = serde_json::from_slice(&skopeo(
            &registry,
            &["inspect", "--tls-verify=false", "--creds", &creds, &image],
        ))
        .unwrap();
        assert_eq!(
            remote["Digest"],
            built.as_str(),
            "{name}: skopeo sees the digest we built"
        );
        assert_eq!(
            (remote["Os"].as_str(), remote["Architecture"].as_str()),
            (Some("linux"), Some("amd64"))
        );
        let ours = json_file(&layout.join("blobs/sha256").join(&built[7..]));
        let layers: Vec<&Value> = ours["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| &l["digest"])
            .collect();
        assert_eq!(
            remote["Layers"].as_array().unwrap().iter().collect::<Vec<_>>(),
            layers,
            "{name}"
        );
        // the registry serves our manifest byte for byte
        let raw = skopeo(
            &registry,
            &["inspect", "--raw", "--tls-verify=false", "--creds", &creds, &image],
        );
        assert_eq!(
            raw,
            std::fs::read(layout.join("blobs/sha256").join(&built[7..])).unwrap(),
            "{name}"
        );
        // and a copy back into an OCI layout holds exactly our blobs
        let copy = dir.path().join(format!("copy-{name}"));
        let dest = format!("oci:{}:t1", copy.display());
        skopeo(
            &registry,
            &[
                "copy",
                "--insecure-policy",
                "--src-tls-verify=false",
                "--src-creds",
                &creds,
                &image,
                &dest,
            ],
        );
        assert_eq!(blob_names(&copy), blob_names(&layout), "{name}");
        for blob in blob_names(&copy) {
            let (a, b) = (
                copy.join("blobs/sha256").join(&blob),
                layout.join("blobs/sha256").join(&blob),
            );
            assert!(
                std::fs::read(a).unwrap() == std::fs::read(b).unwrap(),
                "{name}: blob {blob} differs"
            );
        }
        assert_eq!(layout_digest(&copy), built, "{name}");
    }

    // pushing again finds every blob in place and confirms the same digest
    let again = dir.path().join("again");
    let result = push(&again, "t1", "emulator", PASSWORD);
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
    assert_eq!(
        layout_digest(&again.join("emulator")),
        layout_digest(&out.join("emulator"))
    );
    assert!(
        std::fs::read_to_string(again.join("pushed.txt"))
            .unwrap()
            .contains(&layout_digest(&out.join("emulator")))
    );

    // a wrong password is refused, and the error says what was being pushed
    let refused = push(&dir.path().join("refused"), "t2", "ccm", "wrong");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains(&format!("{target}/ccm:t2")), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
}
