//! Tests of the OCI writer with small stand-in files.

use std::process::Command;

use oci_spec::image::ConfigBuilder;

use super::*;

fn stand_in_image(payload: &[u8]) -> (Image, Vec<(String, Vec<u8>)>) {
    let base = build_layer(
        "base",
        vec![
            Entry::file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/sbin/nologin\n".to_vec()),
            Entry::dir("tmp", 0o1777),
            Entry::symlink("bin", "usr/bin"),
        ],
    )
    .unwrap();
    let app = build_layer(
        "app",
        vec![Entry::file("/usr/local/bin/stand-in", 0o755, payload.to_vec())],
    )
    .unwrap();
    let rt = ConfigBuilder::default()
        .entrypoint(vec!["/usr/local/bin/stand-in".to_owned()])
        .env(vec!["PATH=/usr/local/bin:/usr/bin".to_owned()])
        .user("65532:65532")
        .labels(HashMap::from([
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned()),
            ("c".to_owned(), "3".to_owned()),
        ]))
        .build()
        .unwrap();
    let image = assemble(&rt, &[base, app]).unwrap();
    let files = layout_files(&image, "0.1.0", "example.test/stand-in:0.1.0").unwrap();
    (image, files)
}

#[test]
fn normalize_adds_parents_sorts_and_rejects_conflicts() {
    let n = normalize(
        "t",
        vec![
            Entry::file("b/c/f", 0o644, vec![1]),
            Entry::file("a", 0o600, vec![]),
            Entry::dir("b", 0o700),
        ],
    )
    .unwrap();
    let paths: Vec<_> = n.iter().map(|e| (e.path.as_str(), e.mode)).collect();
    assert_eq!(
        paths,
        vec![("a", 0o600), ("b", 0o700), ("b/c", 0o755), ("b/c/f", 0o644)]
    );
    assert!(matches!(
        normalize(
            "t",
            vec![Entry::file("x", 0o644, vec![1]), Entry::file("x", 0o644, vec![2])]
        ),
        Err(OciError::Conflict { .. })
    ));
    assert!(matches!(
        normalize(
            "t",
            vec![Entry::file("x", 0o644, vec![1]), Entry::file("x/y", 0o644, vec![2])]
        ),
        Err(OciError::Conflict { .. })
    ));
    for bad in ["", "a//b", "a/../b", "./a"] {
        assert!(
            matches!(
                normalize("t", vec![Entry::file(bad, 0o644, vec![])]),
                Err(OciError::BadPath { .. })
            ),
            "{bad:?}"
        );
    }
    // identical duplicates are fine
    assert_eq!(
        normalize(
            "t",
            vec![Entry::file("x", 0o644, vec![1]), Entry::file("x", 0o644, vec![1])]
        )
        .unwrap()
        .len(),
        1
    );
}

#[test]
fn two_builds_are_byte_identical_and_inputs_change_digests() {
    let (a, fa) = stand_in_image(b"payload");
    let (b, fb) = stand_in_image(b"payload");
    assert_eq!(fa, fb);
    assert_eq!(archive_bytes(&fa).unwrap(), archive_bytes(&fb).unwrap());
    assert_eq!(a.manifest.digest, b.manifest.digest);
    let (c, _) = stand_in_image(b"payload2");
    assert_ne!(a.manifest.digest, c.manifest.digest);
    assert_eq!(
        a.layers[0].digest, c.layers[0].digest,
        "an unchanged layer keeps its digest"
    );
}

#[test]
fn documents_are_canonical_json_whatever_the_hashmap_order() {
    // oci-spec keeps labels and annotations in HashMaps, each iterating in its own random order: every build must
    // still give the same bytes, with sorted keys.
    let (first, files) = stand_in_image(b"p");
    for _ in 0..16 {
        let (again, again_files) = stand_in_image(b"p");
        assert_eq!(again.config.data, first.config.data);
        assert_eq!(again_files, files);
    }
    let config = String::from_utf8(first.config.data.clone()).unwrap();
    assert!(config.contains(r#""Labels":{"a":"1","b":"2","c":"3"}"#), "{config}");
    let index = &files.iter().find(|(p, _)| p == "index.json").unwrap().1;
    let index = String::from_utf8(index.clone()).unwrap();
    assert!(
        index.contains(r#""annotations":{"io.containerd.image.name":"example.test/stand-in:0.1.0","org.opencontainers.image.ref.name":"0.1.0"}"#),
        "{index}"
    );
}

#[test]
fn layout_verifies_digests_sizes_media_types_and_diff_ids() {
    let (image, files) = stand_in_image(b"hello");
    let dir = tempfile::tempdir().unwrap();
    write_layout(dir.path(), &files).unwrap();
    let v = verify_layout(dir.path()).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].tag, "0.1.0");
    assert_eq!(v[0].manifest_digest, image.manifest.digest);
    // recompute independently: digest = sha256(blob), diff_id = sha256(gunzip(blob))
    for (layer, diff_id) in image.layers.iter().zip(&v[0].diff_ids) {
        assert_eq!(
            sha256_digest(&std::fs::read(dir.path().join("blobs/sha256").join(layer.digest.digest())).unwrap()),
            layer.digest
        );
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(layer.data.as_slice())
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(sha256_digest(&raw).as_ref(), diff_id);
    }
    assert_eq!(v[0].paths[0], vec!["bin", "etc/", "etc/passwd", "tmp/"]);
    assert_eq!(
        v[0].paths[1],
        vec!["usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/stand-in"]
    );
    let config: serde_json::Value = serde_json::from_slice(&image.config.data).unwrap();
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(config["history"].as_array().unwrap().len(), 2);
    let index: ImageIndex = serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(index.manifests()[0].media_type(), &MediaType::ImageManifest);
    assert_eq!(index.manifests()[0].size(), image.manifest.data.len() as u64);

    // tampering is detected
    let layer_path = dir.path().join("blobs/sha256").join(image.layers[1].digest.digest());
    let mut data = std::fs::read(&layer_path).unwrap();
    let last = data.len() - 1;
    data[last] ^= 1;
    std::fs::write(&layer_path, &data).unwrap();
    let err = verify_layout(dir.path()).unwrap_err().to_string();
    assert!(err.contains("does not match its digest"), "{err}");
}

#[test]
fn archive_holds_the_layout_and_a_docker_manifest() {
    let (image, files) = stand_in_image(b"x");
    let tar = archive_bytes(&files).unwrap();
    let mut names = Vec::new();
    let mut docker = Vec::new();
    for e in tar::Archive::new(tar.as_slice()).entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().to_string_lossy().into_owned();
        if p == "manifest.json" {
            e.read_to_end(&mut docker).unwrap();
        }
        names.push(p);
    }
    for want in ["oci-layout", "index.json", "manifest.json", "blobs/", "blobs/sha256/"] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
    let docker: serde_json::Value = serde_json::from_slice(&docker).unwrap();
    assert_eq!(docker[0]["RepoTags"][0], "example.test/stand-in:0.1.0");
    assert_eq!(
        docker[0]["Config"],
        format!("blobs/sha256/{}", image.config.digest.digest())
    );
    assert_eq!(docker[0]["Layers"].as_array().unwrap().len(), 2);
}

fn tool(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn umoci_unpacks_the_layout() {
    if !tool("umoci") {
        eprintln!("skipping: umoci is not installed (apt-get install -y umoci)");
        return;
    }
    let (_, files) = stand_in_image(b"#!/bin/sh\necho hi\n");
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    write_layout(&layout, &files).unwrap();
    let bundle = dir.path().join("bundle");
    let mut cmd = Command::new("umoci");
    cmd.arg("unpack")
        .arg("--image")
        .arg(format!("{}:0.1.0", layout.display()))
        .arg(&bundle);
    if !nix_is_root() {
        cmd.arg("--rootless");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = bundle.join("rootfs/usr/local/bin/stand-in");
    assert_eq!(std::fs::read(&bin).unwrap(), b"#!/bin/sh\necho hi\n");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&bin).unwrap().permissions().mode() & 0o7777, 0o755);
    assert_eq!(
        std::fs::read_link(bundle.join("rootfs/bin")).unwrap(),
        std::path::PathBuf::from("usr/bin")
    );
    let runtime: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(runtime["process"]["args"][0], "/usr/local/bin/stand-in");
    assert_eq!(runtime["process"]["user"]["uid"], 65532);
}

#[test]
fn skopeo_inspects_the_layout() {
    if !tool("skopeo") {
        eprintln!("skipping: skopeo is not installed");
        return;
    }
    let (image, files) = stand_in_image(b"y");
    let dir = tempfile::tempdir().unwrap();
    write_layout(dir.path(), &files).unwrap();
    let out = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:0.1.0", dir.path().display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Digest"], image.manifest.digest.as_ref());
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2);
    assert_eq!(v["Architecture"], "amd64");
    // and the archive form
    let ar = dir.path().join("image.tar");
    std::fs::write(&ar, archive_bytes(&files).unwrap()).unwrap();
    let out = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci-archive:{}:0.1.0", ar.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect archive: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}
