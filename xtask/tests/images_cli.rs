//! `cargo xtask images --prebuilt DIR --push REGISTRY` end to end, with a tiny static stand-in binary (no cargo
//! build) and a wiremock registry.

use std::path::Path;
use std::process::Command;

use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

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

#[tokio::test]
async fn images_from_prebuilt_binaries_are_written_and_pushed() {
    if !host_has_tools() {
        eprintln!("skipping: the csi image needs the host's filesystem tools (e2fsprogs, xfsprogs, util-linux)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bins = dir.path().join("bins");
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

    let server = MockServer::start().await;
    Mock::given(method("HEAD"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("^/v2/nk/(ccm|csi|emulator)/blobs/uploads/$"))
        .respond_with(ResponseTemplate::new(202).insert_header("Location", "/upload/1"))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path_regex("^/upload/1$"))
        .respond_with(ResponseTemplate::new(201))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path_regex("^/v2/nk/(ccm|csi|emulator)/manifests/t1$"))
        .respond_with(ResponseTemplate::new(201))
        .expect(3)
        .mount(&server)
        .await;

    let out = dir.path().join("out");
    let registry = format!("{}/nk", server.uri());
    let xtask = env!("CARGO_BIN_EXE_xtask").to_owned();
    let args: Vec<String> = [
        "images",
        "--prebuilt",
        bins.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--tag",
        "t1",
        "--push",
        &registry,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let result = tokio::task::spawn_blocking(move || Command::new(xtask).args(args).output().unwrap())
        .await
        .unwrap();
    assert!(
        result.status.success(),
        "xtask images: {}",
        String::from_utf8_lossy(&result.stderr)
    );

    let host = registry.trim_start_matches("http://");
    let pushed = std::fs::read_to_string(out.join("pushed.txt")).unwrap();
    let summary = std::fs::read_to_string(out.join("images.txt")).unwrap();
    for name in ["ccm", "csi", "emulator"] {
        assert!(
            out.join(name).join("index.json").exists() && out.join(format!("{name}.oci.tar")).exists(),
            "{name}"
        );
        let line = pushed
            .lines()
            .find(|l| l.starts_with(&format!("{host}/{name}:t1@sha256:")))
            .unwrap_or_else(|| panic!("{pushed}"));
        let digest = line.rsplit('@').next().unwrap();
        assert!(
            summary.contains(digest),
            "{name}: pushed digest {digest} is the built one"
        );
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join(name).join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"][0]["digest"], digest);
        assert_eq!(
            index["manifests"][0]["annotations"]["io.containerd.image.name"],
            format!("{host}/{name}:t1")
        );
    }
    // the POSTs and blob PUTs match up, and every manifest came after its blobs
    let reqs = server.received_requests().await.unwrap();
    let count = |m: &str, p: &str| {
        reqs.iter()
            .filter(|r| r.method.as_str() == m && r.url.path().starts_with(p))
            .count()
    };
    assert_eq!(count("POST", "/v2/"), count("PUT", "/upload/"));
    assert_eq!(count("PUT", "/v2/nk/"), 3);

    // a dynamic binary is refused
    std::fs::copy("/bin/ls", bins.join("nifcloud-emulator")).unwrap();
    let out2 = dir.path().join("out2");
    let st = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "images",
            "--prebuilt",
            bins.to_str().unwrap(),
            "--out",
            out2.to_str().unwrap(),
            "--only",
            "emulator",
        ])
        .output()
        .unwrap();
    assert!(!st.status.success());
    assert!(
        String::from_utf8_lossy(&st.stderr).contains("dynamically linked"),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
}
