//! `cargo xtask images`: static musl binaries and OCI images of `ccm`, `csi` and `emulator`, without Docker.
//!
//! For each image it writes an OCI image layout `OUT/<name>/` (tag = `--tag`) and the same layout tarred as
//! `OUT/<name>.oci.tar` (loads with `podman load`, `docker load`, `kind load image-archive`). Layers, bottom first:
//! `base` (passwd, group, /tmp, CA certificates), for `csi` a separate `tools` layer (the host's mkfs/mount/...
//! binaries with the libraries `ldd` lists), then the binary. `--push REGISTRY` uploads with the OCI distribution
//! API and writes `OUT/pushed.txt`. What the build machine needs (the musl target, a C compiler for musl, the
//! host's filesystem tools) is checked first, in [`prereq`].

pub mod prereq;
pub mod push;
pub mod tools;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use oci_spec::image::{ANNOTATION_LICENSES, ANNOTATION_SOURCE, ANNOTATION_TITLE, ANNOTATION_VERSION, Config};

use crate::oci::{self, Entry, Layer};

/// The musl target the images are built for.
pub const TARGET: &str = "x86_64-unknown-linux-musl";
/// The Cargo profile the images' binaries are built with (the workspace manifest's `[profile.image]`: built for
/// size).
pub const PROFILE: &str = "image";

/// One image: its short name, cargo package, binary, and who it runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSpec {
    /// Short name (`ccm`), also the repository's last path component.
    pub name: &'static str,
    /// Cargo package.
    pub package: &'static str,
    /// Binary name (installed as `/usr/local/bin/<binary>`).
    pub binary: &'static str,
    /// `uid:gid`, or None for root (the CSI node plugin needs root; its controller pods set runAsUser).
    pub user: Option<&'static str>,
    /// Whether the filesystem tools layer is included.
    pub tools: bool,
    /// Default arguments.
    pub cmd: &'static [&'static str],
}

/// The three images.
pub const IMAGES: &[ImageSpec] = &[
    ImageSpec {
        name: "ccm",
        package: "nifcloud-cloud-controller-manager",
        binary: "nifcloud-cloud-controller-manager",
        user: Some("65532:65532"),
        tools: false,
        cmd: &[],
    },
    ImageSpec {
        name: "csi",
        package: "nifcloud-csi-driver",
        binary: "nifcloud-csi-driver",
        user: None,
        tools: true,
        cmd: &[],
    },
    ImageSpec {
        name: "emulator",
        package: "nifcloud-emulator",
        binary: "nifcloud-emulator",
        user: Some("65532:65532"),
        tools: false,
        cmd: &["--listen", "0.0.0.0:8080"],
    },
];

/// Default repository prefix (matches `deploy/base`).
pub const DEFAULT_REPOSITORY: &str = "ghcr.io/nifcloud-k8s";

/// Flags of `cargo xtask images`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Output directory (default: target/images).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Push to this registry (and path), e.g. `localhost:5000/nk` (plain HTTP for localhost) or `https://r.example/x`.
    /// Credentials, if needed: REGISTRY_USERNAME / REGISTRY_PASSWORD.
    #[arg(long)]
    pub push: Option<String>,
    /// Image tag (default: the workspace version).
    #[arg(long)]
    pub tag: Option<String>,
    /// Use already built static binaries from this directory instead of running cargo.
    #[arg(long)]
    pub prebuilt: Option<PathBuf>,
    /// Build only these images (ccm, csi, emulator); default all.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

/// Whether an ELF file needs a dynamic loader (has a PT_INTERP program header). `None` if not ELF64 LE.
pub fn needs_interpreter(elf: &[u8]) -> Option<bool> {
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return None;
    }
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    for i in 0..phnum {
        let p_type = u32_at(phoff.checked_add(i.checked_mul(phentsize)?)?)?;
        if p_type == 3 {
            return Some(true);
        }
    }
    Some(false)
}

/// The `base` layer shared by all images.
pub fn base_entries() -> anyhow::Result<Vec<Entry>> {
    let mut e = vec![
        Entry::file(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
                .to_vec(),
        ),
        Entry::file("etc/group", 0o644, b"root:x:0:\nnonroot:x:65532:\n".to_vec()),
        Entry::file("etc/nsswitch.conf", 0o644, b"hosts: files dns\n".to_vec()),
        Entry::dir("tmp", 0o1777),
        // usr-merged layout, like the Debian host the tools come from
        Entry::symlink("bin", "usr/bin"),
        Entry::symlink("sbin", "usr/sbin"),
        Entry::dir("home/nonroot", 0o755),
        Entry::dir("root", 0o700),
    ];
    let ca = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if ca.exists() {
        e.push(Entry::file(
            "etc/ssl/certs/ca-certificates.crt",
            0o644,
            std::fs::read(ca).context("read CA bundle")?,
        ));
    } else {
        eprintln!(
            "images: warning: {} not found; images carry no CA certificates (apt-get install ca-certificates)",
            ca.display()
        );
    }
    Ok(e)
}

/// The runtime part of the image config of `spec` at `version` (what the container runs, as whom).
pub fn runtime_config(spec: &ImageSpec, version: &str) -> Config {
    let mut config = Config::default();
    config.set_entrypoint(Some(vec![format!("/usr/local/bin/{}", spec.binary)]));
    config.set_cmd((!spec.cmd.is_empty()).then(|| spec.cmd.iter().map(|s| (*s).to_owned()).collect()));
    config.set_env(Some(vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
    ]));
    config.set_user(spec.user.map(str::to_owned));
    config.set_working_dir(Some("/".into()));
    let labels = [
        (ANNOTATION_TITLE, spec.package),
        (ANNOTATION_VERSION, version),
        (ANNOTATION_SOURCE, "https://github.com/nifcloud-k8s/nifcloud-k8s"),
        (ANNOTATION_LICENSES, "Apache-2.0"),
    ];
    config.set_labels(Some(HashMap::from(labels.map(|(k, v)| (k.to_owned(), v.to_owned())))));
    config
}

/// Builds the image of `spec` from a binary's bytes; `base` and `tools` are prebuilt layers.
pub fn build_image(
    spec: &ImageSpec,
    version: &str,
    binary: Vec<u8>,
    base: &Layer,
    tools: Option<&Layer>,
) -> anyhow::Result<oci::Image> {
    let app = oci::build_layer(
        spec.name,
        vec![Entry::file(&format!("usr/local/bin/{}", spec.binary), 0o755, binary)],
    )?;
    let mut layers = vec![base.clone()];
    if spec.tools {
        layers.push(tools.context("the csi image needs the tools layer")?.clone());
    }
    layers.push(app);
    Ok(oci::assemble(&runtime_config(spec, version), &layers)?)
}

/// Runs `cargo build --profile image --target x86_64-unknown-linux-musl` for the given packages with the C
/// compiler `cc` for musl; returns the directory of the binaries.
fn cargo_build(root: &Path, specs: &[&ImageSpec], cc: &str) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--profile", PROFILE, "--locked", "--target", TARGET]);
    for s in specs {
        cmd.args(["-p", s.package]);
    }
    cmd.env(prereq::CC_ENV, cc);
    eprintln!(
        "images: cargo build --profile {PROFILE} --target {TARGET} ({}) with CC={cc}",
        specs.iter().map(|s| s.package).collect::<Vec<_>>().join(", ")
    );
    let status = cmd.status().context("run cargo build")?;
    if !status.success() {
        anyhow::bail!("cargo build --profile {PROFILE} --target {TARGET} failed ({status}); its errors are above");
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target_dir.join(TARGET).join(PROFILE))
}

/// One built image, for the summary.
#[derive(Debug, Clone)]
pub struct Built {
    /// Short name.
    pub name: &'static str,
    /// Full reference `repo:tag`.
    pub reference: String,
    /// Manifest digest.
    pub digest: String,
    /// Compressed size (registry storage).
    pub compressed: u64,
    /// Size of the binary.
    pub binary: u64,
    /// The image.
    pub image: oci::Image,
}

/// Entry point of `cargo xtask images`.
pub fn run(root: &Path, args: &Args) -> anyhow::Result<()> {
    let version = env!("CARGO_PKG_VERSION");
    let tag = args.tag.clone().unwrap_or_else(|| version.to_owned());
    let out = args.out.clone().unwrap_or_else(|| root.join("target/images"));
    let specs: Vec<&ImageSpec> = IMAGES
        .iter()
        .filter(|s| args.only.is_empty() || args.only.iter().any(|o| o == s.name))
        .collect();
    if let Some(unknown) = args.only.iter().find(|o| !IMAGES.iter().any(|s| s.name == o.as_str())) {
        anyhow::bail!("unknown image {unknown:?} (ccm, csi, emulator)");
    }
    // everything the build needs, checked before compiling anything (all of it named at once)
    let host = prereq::Host::probe(root);
    let cc = prereq::check(&host, args.prebuilt.is_none(), specs.iter().any(|s| s.tools))?;
    let bin_dir = match &args.prebuilt {
        Some(d) => d.clone(),
        None => cargo_build(root, &specs, &cc.context("no C compiler for musl")?)?,
    };
    let repository = match &args.push {
        Some(r) => push::Target::parse(r)?.reference_prefix(),
        None => DEFAULT_REPOSITORY.to_owned(),
    };
    let base = oci::build_layer("base", base_entries()?)?;
    let tools = if specs.iter().any(|s| s.tools) {
        let (entries, taken) = tools::collect(tools::CSI_TOOLS)?;
        eprintln!("images: tools layer from the host: {}", taken.join(" "));
        Some(oci::build_layer("tools", entries)?)
    } else {
        None
    };
    std::fs::create_dir_all(&out).with_context(|| format!("create {}", out.display()))?;
    let mut built = Vec::new();
    for spec in specs {
        let bin_path = bin_dir.join(spec.binary);
        let binary = std::fs::read(&bin_path).with_context(|| format!("read {}", bin_path.display()))?;
        match needs_interpreter(&binary) {
            Some(false) => {}
            Some(true) => anyhow::bail!(
                "{} is dynamically linked; the images need static binaries",
                bin_path.display()
            ),
            None => anyhow::bail!("{} is not an x86-64 ELF binary", bin_path.display()),
        }
        let bin_size = binary.len() as u64;
        let image = build_image(spec, version, binary, &base, tools.as_ref())?;
        let reference = format!("{repository}/{}:{tag}", spec.name);
        let files = oci::layout_files(&image, &tag, &reference)?;
        let dir = out.join(spec.name);
        oci::write_layout(&dir, &files)?;
        let verified = oci::verify_layout(&dir)?;
        anyhow::ensure!(
            verified.len() == 1 && verified[0].manifest_digest == image.manifest.digest,
            "{}: layout self-check",
            spec.name
        );
        let archive = out.join(format!("{}.oci.tar", spec.name));
        std::fs::write(&archive, oci::archive_bytes(&files)?)
            .with_context(|| format!("write {}", archive.display()))?;
        built.push(Built {
            name: spec.name,
            reference,
            digest: image.manifest.digest.to_string(),
            compressed: image.compressed_size(),
            binary: bin_size,
            image,
        });
    }
    let mut summary = String::new();
    for b in &built {
        let line = format!(
            "{:<9} {}@{}  compressed {:.1} MiB, binary {:.1} MiB, layers {}\n",
            b.name,
            b.reference,
            b.digest,
            b.compressed as f64 / 1048576.0,
            b.binary as f64 / 1048576.0,
            b.image
                .layers
                .iter()
                .map(|l| format!("{:.1}", l.data.len() as f64 / 1048576.0))
                .collect::<Vec<_>>()
                .join("+")
        );
        summary.push_str(&line);
    }
    std::fs::write(out.join("images.txt"), &summary)?;
    print!("{summary}");
    println!("layouts and archives in {}", out.display());
    if let Some(registry) = &args.push {
        let target = push::Target::parse(registry)?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let lines = rt.block_on(push::push_all(&target, &tag, &built))?;
        std::fs::write(out.join("pushed.txt"), lines.join("\n") + "\n")?;
        for l in lines {
            println!("pushed {l}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_interpreter_detection() {
        let ls = std::fs::read("/bin/ls").unwrap();
        assert_eq!(needs_interpreter(&ls), Some(true), "/bin/ls is dynamic on Debian");
        assert_eq!(needs_interpreter(b"#!/bin/sh\n"), None);
        // a minimal static ELF header with no program headers
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        assert_eq!(needs_interpreter(&elf), Some(false));
        // a PT_INTERP entry at phoff 64
        elf.resize(64 + 56, 0);
        elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        elf[64..68].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(needs_interpreter(&elf), Some(true));
        // truncated program headers are not a panic
        elf.truncate(66);
        assert_eq!(needs_interpreter(&elf), None);
    }

    #[test]
    fn images_use_the_names_the_manifests_use() {
        let mut objs = crate::render::render(
            &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy"),
            &crate::render::RenderOptions {
                overlay: crate::render::Overlay::Emulator,
                ..Default::default()
            },
        )
        .unwrap();
        let refs = crate::render::our_image_refs(&mut objs);
        for spec in IMAGES {
            let want = format!("{DEFAULT_REPOSITORY}/{}:{}", spec.name, env!("CARGO_PKG_VERSION"));
            assert!(refs.contains(&want), "{want} not referenced by the manifests: {refs:?}");
            let text = serde_json::to_string(&objs).unwrap();
            assert!(
                text.contains(&format!("/usr/local/bin/{}", spec.binary)),
                "{} not run by the manifests",
                spec.binary
            );
        }
    }

    #[test]
    fn stand_in_images_are_reproducible_and_carry_the_binary() {
        let base = oci::build_layer("base", base_entries().unwrap()).unwrap();
        let tools = oci::build_layer(
            "tools",
            vec![Entry::file("usr/sbin/mkfs.ext4", 0o755, b"stand-in".to_vec())],
        )
        .unwrap();
        let spec = &IMAGES[1];
        let a = build_image(spec, "0.1.0", b"binary".to_vec(), &base, Some(&tools)).unwrap();
        let b = build_image(spec, "0.1.0", b"binary".to_vec(), &base, Some(&tools)).unwrap();
        assert_eq!(a.manifest, b.manifest);
        assert_eq!(a.layers.len(), 3, "base + tools + binary");
        let ccm = build_image(&IMAGES[0], "0.1.0", b"binary".to_vec(), &base, None).unwrap();
        assert_eq!(ccm.layers.len(), 2);
        assert_eq!(ccm.layers[0].digest, a.layers[0].digest, "the base layer is shared");
        let cfg: serde_json::Value = serde_json::from_slice(&ccm.config.data).unwrap();
        assert_eq!(
            cfg["config"]["Entrypoint"][0],
            "/usr/local/bin/nifcloud-cloud-controller-manager"
        );
        assert_eq!(cfg["config"]["User"], "65532:65532");
        assert!(
            build_image(spec, "0.1.0", vec![], &base, None).is_err(),
            "csi without tools is refused"
        );
    }

    /// Builds the real release images (slow: a full musl release build). Runs only with XTASK_REAL_IMAGES=1.
    #[test]
    fn real_images_build_and_unpack() {
        if std::env::var("XTASK_REAL_IMAGES").as_deref() != Ok("1") {
            eprintln!("skipping: set XTASK_REAL_IMAGES=1 to build the real musl images");
            return;
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let out = tempfile::tempdir().unwrap();
        let args = Args {
            out: Some(out.path().to_path_buf()),
            push: None,
            tag: Some("test".into()),
            prebuilt: None,
            only: vec![],
        };
        run(&root, &args).unwrap();
        for spec in IMAGES {
            let v = oci::verify_layout(&out.path().join(spec.name)).unwrap();
            assert_eq!(v[0].tag, "test");
            let meta = std::fs::metadata(out.path().join(format!("{}.oci.tar", spec.name))).unwrap();
            eprintln!("{}: archive {:.1} MiB", spec.name, meta.len() as f64 / 1048576.0);
        }
        // the static emulator binary runs from the unpacked image (root + umoci only)
        let umoci = Command::new("umoci")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if umoci && Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout == b"0\n") {
            let bundle = out.path().join("bundle");
            let st = Command::new("umoci")
                .arg("unpack")
                .arg("--image")
                .arg(format!("{}:test", out.path().join("emulator").display()))
                .arg(&bundle)
                .status()
                .unwrap();
            assert!(st.success());
            let help = Command::new("chroot")
                .arg(bundle.join("rootfs"))
                .args(["/usr/local/bin/nifcloud-emulator", "--help"])
                .output()
                .unwrap();
            assert!(
                help.status.success(),
                "emulator --help in the image: {}",
                String::from_utf8_lossy(&help.stderr)
            );
            assert!(String::from_utf8_lossy(&help.stdout).contains("--listen"));
        }
        let again = tempfile::tempdir().unwrap();
        run(
            &root,
            &Args {
                out: Some(again.path().to_path_buf()),
                ..args
            },
        )
        .unwrap();
        for spec in IMAGES {
            let a = std::fs::read(out.path().join(format!("{}.oci.tar", spec.name))).unwrap();
            let b = std::fs::read(again.path().join(format!("{}.oci.tar", spec.name))).unwrap();
            assert!(a == b, "{}: two builds differ", spec.name);
        }
    }
}
