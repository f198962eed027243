//! A reproducible OCI image writer (no Docker): gzip'd tar layers, config, manifest, image layout and archive.
//!
//! Reproducibility: tar entries are sorted, parents are created explicitly, every entry has uid/gid 0, empty
//! user/group names and mtime [`MTIME`]; gzip has no name and mtime 0; JSON objects have a fixed key order.
//! So the same inputs always give the same bytes, hence the same digests.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// mtime of every tar entry (the epoch, like `SOURCE_DATE_EPOCH=0`).
pub const MTIME: u64 = 0;
/// `created` of every image config (matches [`MTIME`]).
pub const CREATED: &str = "1970-01-01T00:00:00Z";
/// OCI media types.
pub mod media {
    /// Image index.
    pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// Image manifest.
    pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// Image config.
    pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// gzip'd tar layer.
    pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
}

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

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    let hash = Sha256::digest(data);
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in hash {
        s.push_str(&format!("{b:02x}"));
    }
    s
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
    pub diff_id: String,
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

/// The runtime part of an image config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Entrypoint.
    pub entrypoint: Vec<String>,
    /// Default arguments.
    pub cmd: Vec<String>,
    /// `KEY=value` environment.
    pub env: Vec<String>,
    /// `uid:gid`, or None for root.
    pub user: Option<String>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// A content-addressed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// Media type.
    pub media_type: &'static str,
    /// `sha256:<hex>`.
    pub digest: String,
    /// The bytes.
    pub data: Vec<u8>,
}

impl Blob {
    fn new(media_type: &'static str, data: Vec<u8>) -> Self {
        Self {
            media_type,
            digest: sha256_digest(&data),
            data,
        }
    }
    fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.into(),
            digest: self.digest.clone(),
            size: self.data.len() as u64,
            platform: None,
            annotations: None,
        }
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

/// OCI descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// Media type.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// Digest.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Platform (index entries).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub platform: Option<Platform>,
    /// Annotations.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// OCI platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture.
    pub architecture: String,
    /// Operating system.
    pub os: String,
}

/// Image manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// The manifest media type.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// The config.
    pub config: Descriptor,
    /// The layers.
    pub layers: Vec<Descriptor>,
}

/// Image index (`index.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// The index media type.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// The manifests.
    pub manifests: Vec<Descriptor>,
}

/// Assembles config and manifest for `layers` (bottom first).
pub fn assemble(runtime: &RuntimeConfig, layers: &[Layer]) -> Image {
    let mut cfg = serde_json::Map::new();
    let strings = |v: &[String]| serde_json::Value::from(v.to_vec());
    if !runtime.entrypoint.is_empty() {
        cfg.insert("Entrypoint".into(), strings(&runtime.entrypoint));
    }
    if !runtime.cmd.is_empty() {
        cfg.insert("Cmd".into(), strings(&runtime.cmd));
    }
    if !runtime.env.is_empty() {
        cfg.insert("Env".into(), strings(&runtime.env));
    }
    if let Some(u) = &runtime.user {
        cfg.insert("User".into(), u.clone().into());
    }
    if let Some(w) = &runtime.working_dir {
        cfg.insert("WorkingDir".into(), w.clone().into());
    }
    if !runtime.labels.is_empty() {
        cfg.insert(
            "Labels".into(),
            serde_json::to_value(&runtime.labels).unwrap_or_default(),
        );
    }
    let config = serde_json::json!({
        "created": CREATED,
        "architecture": "amd64",
        "os": "linux",
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
        "history": layers.iter().map(|l| serde_json::json!({"created": CREATED, "created_by": format!("cargo xtask images: {}", l.name)})).collect::<Vec<_>>(),
    });
    // serde_json's Map is ordered (BTreeMap without preserve_order), so the bytes are stable.
    let config = Blob::new(media::CONFIG, serde_json::to_vec(&config).unwrap_or_default());
    let layer_blobs: Vec<Blob> = layers
        .iter()
        .map(|l| Blob::new(media::LAYER_GZIP, l.gz.clone()))
        .collect();
    let manifest = Manifest {
        schema_version: 2,
        media_type: media::MANIFEST.into(),
        config: config.descriptor(),
        layers: layer_blobs.iter().map(Blob::descriptor).collect(),
    };
    let manifest = Blob::new(media::MANIFEST, serde_json::to_vec(&manifest).unwrap_or_default());
    Image {
        config,
        manifest,
        layers: layer_blobs,
    }
}

/// Every file of an OCI layout holding `image` under tag `tag`, plus a Docker-style `manifest.json` so the
/// tarred layout also loads with `docker load`. `full_name` (e.g. `ghcr.io/org/ccm:0.1.0`) goes into the
/// `io.containerd.image.name` annotation (containerd/kind import) and `RepoTags` (docker load).
pub fn layout_files(image: &Image, tag: &str, full_name: &str) -> Vec<(String, Vec<u8>)> {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let blob_path = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    for b in std::iter::once(&image.config)
        .chain(std::iter::once(&image.manifest))
        .chain(&image.layers)
    {
        files.insert(blob_path(&b.digest), b.data.clone());
    }
    let mut desc = image.manifest.descriptor();
    desc.platform = Some(Platform {
        architecture: "amd64".into(),
        os: "linux".into(),
    });
    desc.annotations = Some(BTreeMap::from([
        ("io.containerd.image.name".to_owned(), full_name.to_owned()),
        ("org.opencontainers.image.ref.name".to_owned(), tag.to_owned()),
    ]));
    let index = Index {
        schema_version: 2,
        media_type: media::INDEX.into(),
        manifests: vec![desc],
    };
    files.insert("index.json".into(), serde_json::to_vec(&index).unwrap_or_default());
    files.insert("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec());
    let docker = serde_json::json!([{
        "Config": blob_path(&image.config.digest),
        "RepoTags": [full_name],
        "Layers": image.layers.iter().map(|l| blob_path(&l.digest)).collect::<Vec<_>>(),
    }]);
    files.insert("manifest.json".into(), serde_json::to_vec(&docker).unwrap_or_default());
    files.into_iter().collect()
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
    pub manifest_digest: String,
    /// Layer digests.
    pub layers: Vec<String>,
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
    let layout: serde_json::Value = serde_json::from_slice(&read("oci-layout")?).map_err(|e| bad(e.to_string()))?;
    if layout["imageLayoutVersion"] != "1.0.0" {
        return Err(bad("oci-layout: imageLayoutVersion is not 1.0.0".into()));
    }
    let blob = |d: &Descriptor, want: &str| -> Result<Vec<u8>, OciError> {
        if d.media_type != want {
            return Err(bad(format!(
                "{}: media type {} instead of {want}",
                d.digest, d.media_type
            )));
        }
        let hex = d
            .digest
            .strip_prefix("sha256:")
            .ok_or_else(|| bad(format!("{}: not sha256", d.digest)))?;
        let data = read(&format!("blobs/sha256/{hex}"))?;
        if data.len() as u64 != d.size {
            return Err(bad(format!(
                "{}: size {} but descriptor says {}",
                d.digest,
                data.len(),
                d.size
            )));
        }
        if sha256_digest(&data) != d.digest {
            return Err(bad(format!("{}: content does not match its digest", d.digest)));
        }
        Ok(data)
    };
    let index: Index = serde_json::from_slice(&read("index.json")?).map_err(|e| bad(format!("index.json: {e}")))?;
    if index.schema_version != 2 {
        return Err(bad("index.json: schemaVersion is not 2".into()));
    }
    let mut out = Vec::new();
    for m in &index.manifests {
        let tag = m
            .annotations
            .as_ref()
            .and_then(|a| a.get("org.opencontainers.image.ref.name"))
            .cloned()
            .ok_or_else(|| bad(format!("{}: no ref.name annotation", m.digest)))?;
        let manifest: Manifest =
            serde_json::from_slice(&blob(m, media::MANIFEST)?).map_err(|e| bad(format!("manifest: {e}")))?;
        if manifest.schema_version != 2 || manifest.media_type != media::MANIFEST {
            return Err(bad(format!("{}: bad schemaVersion or mediaType", m.digest)));
        }
        let config: serde_json::Value =
            serde_json::from_slice(&blob(&manifest.config, media::CONFIG)?).map_err(|e| bad(format!("config: {e}")))?;
        let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        if diff_ids.len() != manifest.layers.len() {
            return Err(bad(format!(
                "{} diff_ids for {} layers",
                diff_ids.len(),
                manifest.layers.len()
            )));
        }
        if config["architecture"] != "amd64" || config["os"] != "linux" {
            return Err(bad("config: platform is not linux/amd64".into()));
        }
        let mut paths = Vec::new();
        for (l, diff_id) in manifest.layers.iter().zip(&diff_ids) {
            let gz = blob(l, media::LAYER_GZIP)?;
            let mut tar = Vec::new();
            flate2::read::GzDecoder::new(gz.as_slice())
                .read_to_end(&mut tar)
                .map_err(io(format!("gunzip {}", l.digest)))?;
            if &sha256_digest(&tar) != diff_id {
                return Err(bad(format!(
                    "{}: diff_id {diff_id} does not match the uncompressed layer",
                    l.digest
                )));
            }
            let mut names = Vec::new();
            let mut ar = tar::Archive::new(tar.as_slice());
            for e in ar.entries().map_err(io(format!("read tar {}", l.digest)))? {
                let e = e.map_err(io(format!("read tar {}", l.digest)))?;
                let h = e.header();
                if h.uid().ok() != Some(0) || h.gid().ok() != Some(0) || h.mtime().ok() != Some(MTIME) {
                    return Err(bad(format!("{}: entry with non-zero uid/gid or mtime", l.digest)));
                }
                names.push(e.path().map_err(io("tar path"))?.to_string_lossy().into_owned());
            }
            paths.push(names);
        }
        out.push(VerifiedImage {
            tag,
            manifest_digest: m.digest.clone(),
            layers: manifest.layers.iter().map(|l| l.digest.clone()).collect(),
            diff_ids,
            paths,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
