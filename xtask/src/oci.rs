//! A reproducible OCI image writer (no Docker): gzip'd tar layers, config, manifest, image layout and archive.
//!
//! The documents are oci-spec's types ([`ImageConfiguration`], [`ImageManifest`], [`ImageIndex`]); the layers are
//! ours, written so that the same inputs always give the same bytes, hence the same digests: tar entries are
//! sorted, parents are created explicitly, every entry has uid/gid 0, empty user/group names and mtime [`MTIME`];
//! gzip has no name and mtime 0; JSON documents have every object's keys sorted ([`canonical_json`]).

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::Path;
use std::str::FromStr;

use oci_spec::OciSpecError;
use oci_spec::image::{
    ANNOTATION_REF_NAME, Arch, Config, Descriptor, Digest, HistoryBuilder, ImageConfiguration,
    ImageConfigurationBuilder, ImageIndex, ImageIndexBuilder, ImageManifest, ImageManifestBuilder, MediaType,
    OciLayout, OciLayoutBuilder, Os, PlatformBuilder, RootFsBuilder, SCHEMA_VERSION, Sha256Digest,
};
use serde::Serialize;
use sha2::Digest as _;

/// mtime of every tar entry (the epoch, like `SOURCE_DATE_EPOCH=0`).
pub const MTIME: u64 = 0;
/// `created` of every image config (matches [`MTIME`]).
pub const CREATED: &str = "1970-01-01T00:00:00Z";
/// The `imageLayoutVersion` of the layouts we write and accept.
pub const LAYOUT_VERSION: &str = "1.0.0";
/// Annotation that names the image for `ctr import` and `kind load` (containerd).
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Errors of the writer.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// Two entries of one layer want the same path with different content.
    #[error("layer {layer}: conflicting entries for {path}")]
    Conflict {
        /// Layer name.
        layer: String,
        /// The path.
        path: String,
    },
    /// A path is not a clean relative path.
    #[error("layer {layer}: bad path {path:?}")]
    BadPath {
        /// Layer name.
        layer: String,
        /// The path.
        path: String,
    },
    /// IO while writing or reading.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// oci-spec refused to build a document (a required field is missing).
    #[error("build the {document}: {source}")]
    Build {
        /// Which document (`image config`, `manifest`, ...).
        document: &'static str,
        /// oci-spec's error.
        source: OciSpecError,
    },
    /// A document could not be encoded as JSON.
    #[error("encode the {document}: {source}")]
    Encode {
        /// Which document.
        document: &'static str,
        /// serde_json's error.
        source: serde_json::Error,
    },
    /// A layout does not verify.
    #[error("layout {dir}: {message}")]
    Invalid {
        /// The layout directory.
        dir: String,
        /// What is wrong.
        message: String,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> OciError {
    let what = what.into();
    move |source| OciError::Io { what, source }
}

fn build(document: &'static str) -> impl FnOnce(OciSpecError) -> OciError {
    move |source| OciError::Build { document, source }
}

/// The `sha256:<hex>` digest of `data`.
pub fn sha256_digest(data: &[u8]) -> Digest {
    let hex: String = sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect();
    Sha256Digest::from_str(&hex)
        .expect("a sha256 is 64 lowercase hex digits")
        .into()
}

/// `value` as compact JSON with the keys of every object sorted. oci-spec keeps labels and annotations in
/// `HashMap`s, whose order changes from run to run; sorted keys make the bytes depend on the content only (and
/// are the canonical form the image spec recommends).
pub fn canonical_json(document: &'static str, value: &impl Serialize) -> Result<Vec<u8>, OciError> {
    let encode = |source| OciError::Encode { document, source };
    let mut value = serde_json::to_value(value).map_err(encode)?;
    value.sort_all_objects();
    serde_json::to_vec(&value).map_err(encode)
}

/// What a tar entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file with this content.
    File(Vec<u8>),
    /// A symbolic link to this target.
    Symlink(String),
}

/// One entry of a layer: a path relative to `/` (no leading slash), permission bits and content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the image, e.g. `usr/local/bin/x`.
    pub path: String,
    /// Permission bits, e.g. `0o755`.
    pub mode: u32,
    /// Content.
    pub kind: EntryKind,
}

impl Entry {
    /// A regular file.
    pub fn file(path: &str, mode: u32, data: Vec<u8>) -> Self {
        Self {
            path: path.trim_start_matches('/').to_owned(),
            mode,
            kind: EntryKind::File(data),
        }
    }
    /// A directory.
    pub fn dir(path: &str, mode: u32) -> Self {
        Self {
            path: path.trim_matches('/').to_owned(),
            mode,
            kind: EntryKind::Dir,
        }
    }
    /// A symlink.
    pub fn symlink(path: &str, target: &str) -> Self {
        Self {
            path: path.trim_start_matches('/').to_owned(),
            mode: 0o777,
            kind: EntryKind::Symlink(target.to_owned()),
        }
    }
}

/// A finished layer.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Name, for history and messages.
    pub name: String,
    /// The gzip'd tar.
    pub gz: Vec<u8>,
    /// `sha256:` of the uncompressed tar (the config's diff_id).
    pub diff_id: Digest,
}

/// Normalises, completes (parent directories, mode 0755) and sorts entries; rejects conflicts.
pub fn normalize(layer: &str, entries: Vec<Entry>) -> Result<Vec<Entry>, OciError> {
    let mut map: BTreeMap<String, Entry> = BTreeMap::new();
    for e in entries {
        if e.path.is_empty() || e.path.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
            return Err(OciError::BadPath {
                layer: layer.into(),
                path: e.path,
            });
        }
        let comps: Vec<&str> = e.path.split('/').collect();
        for i in 1..comps.len() {
            let parent = comps[..i].join("/");
            match map.get(&parent) {
                Some(p) if p.kind != EntryKind::Dir => {
                    return Err(OciError::Conflict {
                        layer: layer.into(),
                        path: parent,
                    });
                }
                Some(_) => {}
                None => {
                    map.insert(parent.clone(), Entry::dir(&parent, 0o755));
                }
            }
        }
        match map.get(&e.path) {
            Some(old) if old == &e => {}
            // an implicit parent may be replaced by the explicit directory entry (its mode wins)
            Some(old) if old.kind == EntryKind::Dir && e.kind == EntryKind::Dir => {
                map.insert(e.path.clone(), e);
            }
            Some(_) => {
                return Err(OciError::Conflict {
                    layer: layer.into(),
                    path: e.path,
                });
            }
            None => {
                map.insert(e.path.clone(), e);
            }
        }
    }
    Ok(map.into_values().collect())
}

/// Writes the (normalised) entries as an uncompressed tar.
pub fn tar_bytes(layer: &str, entries: &[Entry]) -> Result<Vec<u8>, OciError> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h.set_mode(e.mode);
        let what = || format!("layer {layer}: tar entry {}", e.path);
        match &e.kind {
            EntryKind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, format!("{}/", e.path), std::io::empty())
                    .map_err(io(what()))?;
            }
            EntryKind::File(data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, &e.path, data.as_slice()).map_err(io(what()))?;
            }
            EntryKind::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, &e.path, target).map_err(io(what()))?;
            }
        }
    }
    b.into_inner().map_err(io(format!("layer {layer}: finish tar")))
}

/// gzip with no file name and mtime 0 (deterministic).
pub fn gzip(data: &[u8]) -> Result<Vec<u8>, OciError> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    enc.write_all(data).map_err(io("gzip"))?;
    enc.finish().map_err(io("gzip"))
}

/// Builds one layer from entries.
pub fn build_layer(name: &str, entries: Vec<Entry>) -> Result<Layer, OciError> {
    let entries = normalize(name, entries)?;
    let tar = tar_bytes(name, &entries)?;
    let gz = gzip(&tar)?;
    Ok(Layer {
        name: name.into(),
        diff_id: sha256_digest(&tar),
        gz,
    })
}

/// A content-addressed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// Media type.
    pub media_type: MediaType,
    /// `sha256:<hex>` of `data`.
    pub digest: Digest,
    /// The bytes.
    pub data: Vec<u8>,
}

impl Blob {
    fn new(media_type: MediaType, data: Vec<u8>) -> Self {
        Self {
            media_type,
            digest: sha256_digest(&data),
            data,
        }
    }

    /// The descriptor that points at this blob.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(self.media_type.clone(), self.data.len() as u64, self.digest.clone())
    }
}

/// A complete image: config, manifest and layer blobs.
#[derive(Debug, Clone)]
pub struct Image {
    /// Config blob.
    pub config: Blob,
    /// Manifest blob.
    pub manifest: Blob,
    /// Layer blobs (gzip), bottom first.
    pub layers: Vec<Blob>,
}

impl Image {
    /// Sum of the compressed layer sizes plus config and manifest: what a registry stores.
    pub fn compressed_size(&self) -> u64 {
        self.layers.iter().map(|l| l.data.len() as u64).sum::<u64>()
            + self.config.data.len() as u64
            + self.manifest.data.len() as u64
    }
}

/// Assembles the linux/amd64 config (running `runtime`) and the manifest for `layers` (bottom first).
pub fn assemble(runtime: &Config, layers: &[Layer]) -> Result<Image, OciError> {
    let history = layers
        .iter()
        .map(|l| {
            HistoryBuilder::default()
                .created(CREATED)
                .created_by(format!("cargo xtask images: {}", l.name))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(build("image history"))?;
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(build("rootfs"))?;
    let config: ImageConfiguration = ImageConfigurationBuilder::default()
        .created(CREATED)
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .config(runtime.clone())
        .rootfs(rootfs)
        .history(history)
        .build()
        .map_err(build("image config"))?;
    let config = Blob::new(MediaType::ImageConfig, canonical_json("image config", &config)?);
    let layers: Vec<Blob> = layers
        .iter()
        .map(|l| Blob::new(MediaType::ImageLayerGzip, l.gz.clone()))
        .collect();
    let manifest: ImageManifest = ImageManifestBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageManifest)
        .config(config.descriptor())
        .layers(layers.iter().map(Blob::descriptor).collect::<Vec<_>>())
        .build()
        .map_err(build("manifest"))?;
    let manifest = Blob::new(MediaType::ImageManifest, canonical_json("manifest", &manifest)?);
    Ok(Image {
        config,
        manifest,
        layers,
    })
}

/// Every file of an OCI layout holding `image` under tag `tag`, plus a Docker-style `manifest.json` so the
/// tarred layout also loads with `docker load`. `full_name` (e.g. `ghcr.io/org/ccm:0.1.0`) goes into the
/// `io.containerd.image.name` annotation (containerd/kind import) and `RepoTags` (docker load).
pub fn layout_files(image: &Image, tag: &str, full_name: &str) -> Result<Vec<(String, Vec<u8>)>, OciError> {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let blob_path = |d: &Digest| format!("blobs/sha256/{}", d.digest());
    for b in std::iter::once(&image.config)
        .chain(std::iter::once(&image.manifest))
        .chain(&image.layers)
    {
        files.insert(blob_path(&b.digest), b.data.clone());
    }
    let mut entry = image.manifest.descriptor();
    entry.set_platform(Some(
        PlatformBuilder::default()
            .architecture(Arch::Amd64)
            .os(Os::Linux)
            .build()
            .map_err(build("platform"))?,
    ));
    entry.set_annotations(Some(HashMap::from([
        (ANNOTATION_CONTAINERD_NAME.to_owned(), full_name.to_owned()),
        (ANNOTATION_REF_NAME.to_owned(), tag.to_owned()),
    ])));
    let index: ImageIndex = ImageIndexBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![entry])
        .build()
        .map_err(build("index"))?;
    files.insert("index.json".into(), canonical_json("index", &index)?);
    let layout: OciLayout = OciLayoutBuilder::default()
        .image_layout_version(LAYOUT_VERSION)
        .build()
        .map_err(build("oci-layout"))?;
    files.insert("oci-layout".into(), canonical_json("oci-layout", &layout)?);
    // Docker's `docker save` format has no type in oci-spec.
    let docker = serde_json::json!([{
        "Config": blob_path(&image.config.digest),
        "RepoTags": [full_name],
        "Layers": image.layers.iter().map(|l| blob_path(&l.digest)).collect::<Vec<_>>(),
    }]);
    files.insert("manifest.json".into(), canonical_json("docker manifest", &docker)?);
    Ok(files.into_iter().collect())
}

/// Writes the layout files into `dir` (replacing a previous layout there).
pub fn write_layout(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<(), OciError> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(format!("remove old {}", dir.display())))?;
    }
    for (path, data) in files {
        let p = dir.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(io(format!("create {}", parent.display())))?;
        }
        std::fs::write(&p, data).map_err(io(format!("write {}", p.display())))?;
    }
    Ok(())
}

/// The layout files as one deterministic tar (an OCI archive that `podman load`, `docker load` and
/// `kind load image-archive` accept).
pub fn archive_bytes(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, OciError> {
    let entries = files.iter().map(|(p, d)| Entry::file(p, 0o644, d.clone())).collect();
    tar_bytes("archive", &normalize("archive", entries)?)
}

/// One image found and checked by [`verify_layout`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedImage {
    /// `org.opencontainers.image.ref.name`.
    pub tag: String,
    /// Manifest digest.
    pub manifest_digest: Digest,
    /// Layer digests.
    pub layers: Vec<Digest>,
    /// diff_ids from the config (each checked against the decompressed layer).
    pub diff_ids: Vec<String>,
    /// Paths in each layer.
    pub paths: Vec<Vec<String>>,
}

/// Reads a layout back and checks it: `oci-layout`, index → manifest → config → layers, media types, sizes,
/// digests, and each diff_id against the sha256 of the decompressed layer.
pub fn verify_layout(dir: &Path) -> Result<Vec<VerifiedImage>, OciError> {
    let bad = |message: String| OciError::Invalid {
        dir: dir.display().to_string(),
        message,
    };
    let read = |rel: &str| std::fs::read(dir.join(rel)).map_err(io(format!("read {}/{rel}", dir.display())));
    let layout: OciLayout =
        serde_json::from_slice(&read("oci-layout")?).map_err(|e| bad(format!("oci-layout: {e}")))?;
    if layout.image_layout_version() != LAYOUT_VERSION {
        return Err(bad(format!("oci-layout: imageLayoutVersion is not {LAYOUT_VERSION}")));
    }
    let blob = |d: &Descriptor, want: &MediaType| -> Result<Vec<u8>, OciError> {
        let digest = d.digest();
        if d.media_type() != want {
            return Err(bad(format!(
                "{digest}: media type {} instead of {want}",
                d.media_type()
            )));
        }
        let hex = d
            .as_digest_sha256()
            .ok_or_else(|| bad(format!("{digest}: not sha256")))?;
        let data = read(&format!("blobs/sha256/{hex}"))?;
        if data.len() as u64 != d.size() {
            return Err(bad(format!(
                "{digest}: size {} but descriptor says {}",
                data.len(),
                d.size()
            )));
        }
        if &sha256_digest(&data) != digest {
            return Err(bad(format!("{digest}: content does not match its digest")));
        }
        Ok(data)
    };
    let index: ImageIndex =
        serde_json::from_slice(&read("index.json")?).map_err(|e| bad(format!("index.json: {e}")))?;
    if index.schema_version() != SCHEMA_VERSION {
        return Err(bad("index.json: schemaVersion is not 2".into()));
    }
    let mut out = Vec::new();
    for m in index.manifests() {
        let tag = m
            .annotations()
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_REF_NAME))
            .cloned()
            .ok_or_else(|| bad(format!("{}: no ref.name annotation", m.digest())))?;
        let manifest: ImageManifest =
            serde_json::from_slice(&blob(m, &MediaType::ImageManifest)?).map_err(|e| bad(format!("manifest: {e}")))?;
        if manifest.schema_version() != SCHEMA_VERSION || manifest.media_type() != &Some(MediaType::ImageManifest) {
            return Err(bad(format!("{}: bad schemaVersion or mediaType", m.digest())));
        }
        let config: ImageConfiguration = serde_json::from_slice(&blob(manifest.config(), &MediaType::ImageConfig)?)
            .map_err(|e| bad(format!("config: {e}")))?;
        let diff_ids = config.rootfs().diff_ids().clone();
        if diff_ids.len() != manifest.layers().len() {
            return Err(bad(format!(
                "{} diff_ids for {} layers",
                diff_ids.len(),
                manifest.layers().len()
            )));
        }
        if config.architecture() != &Arch::Amd64 || config.os() != &Os::Linux {
            return Err(bad("config: platform is not linux/amd64".into()));
        }
        let mut paths = Vec::new();
        for (l, diff_id) in manifest.layers().iter().zip(&diff_ids) {
            let gz = blob(l, &MediaType::ImageLayerGzip)?;
            let mut tar = Vec::new();
            flate2::read::GzDecoder::new(gz.as_slice())
                .read_to_end(&mut tar)
                .map_err(io(format!("gunzip {}", l.digest())))?;
            if sha256_digest(&tar).as_ref() != diff_id {
                return Err(bad(format!(
                    "{}: diff_id {diff_id} does not match the uncompressed layer",
                    l.digest()
                )));
            }
            let mut names = Vec::new();
            let mut ar = tar::Archive::new(tar.as_slice());
            for e in ar.entries().map_err(io(format!("read tar {}", l.digest())))? {
                let e = e.map_err(io(format!("read tar {}", l.digest())))?;
                let h = e.header();
                if h.uid().ok() != Some(0) || h.gid().ok() != Some(0) || h.mtime().ok() != Some(MTIME) {
                    return Err(bad(format!("{}: entry with non-zero uid/gid or mtime", l.digest())));
                }
                names.push(e.path().map_err(io("tar path"))?.to_string_lossy().into_owned());
            }
            paths.push(names);
        }
        out.push(VerifiedImage {
            tag,
            manifest_digest: m.digest().clone(),
            layers: manifest.layers().iter().map(|l| l.digest().clone()).collect(),
            diff_ids,
            paths,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
