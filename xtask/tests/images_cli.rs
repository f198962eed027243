//! `cargo xtask images --prebuilt DIR` end to end, with a tiny static stand-in binary (no cargo build): the
//! layouts and archives it writes, and `--push` to a real registry (Debian's `docker-registry`, the CNCF
//! distribution registry, on 127.0.0.1 with basic auth over plain HTTP) read back with skopeo.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use common::{PASSWORD, REGISTRY_BIN, Registry, USER, host_has_tools, on_path, skopeo, stand_in_binaries};

const NAMES: [&str; 3] = ["ccm", "csi", "emulator"];

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
