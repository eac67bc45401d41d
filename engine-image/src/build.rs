//! Make images without a registry: from a directory, into the store or into
//! a docker-archive tar. Tests and other crates use this to make a runnable
//! busybox image.
//!
//! ```no_run
//! use engine_image::build;
//! let dir = tempfile::tempdir().unwrap();
//! build::busybox_rootfs(dir.path())?;
//! build::image_from_dir(dir.path(), "busybox:test", std::path::Path::new("/tmp/bb.tar"), &Default::default())?;
//! # Ok::<(), engine_core::Error>(())
//! ```

use crate::blobs::Blobs;
use crate::digest::{sha256, HashingWriter};
use crate::media::{self, Descriptor, Manifest};
use crate::reference::Reference;
use crate::unpack::Compression;
use engine_core::{Error, IoContext, Result};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{Seek, Write};
use std::path::Path;

/// The config of an image made from a directory.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ImageOptions {
    /// Cmd (default `["/bin/sh"]`).
    pub cmd: Option<Vec<String>>,
    /// Entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Env (default a PATH).
    pub env: Vec<String>,
    /// WorkingDir.
    pub working_dir: Option<String>,
    /// User.
    pub user: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// ExposedPorts (`80/tcp`).
    pub exposed_ports: Vec<String>,
    /// Volumes.
    pub volumes: Vec<String>,
    /// StopSignal.
    pub stop_signal: Option<String>,
    /// Layer compression in the store (archives always hold plain tars).
    pub compression: Compression,
}

engine_core::__setters!(ImageOptions { cmd: Option<Vec<String>>, entrypoint: Option<Vec<String>>, env: Vec<String>, working_dir: Option<String>, user: Option<String>, labels: BTreeMap<String, String>, exposed_ports: Vec<String>, volumes: Vec<String>, stop_signal: Option<String>, compression: Compression });

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions {
            cmd: Some(vec!["/bin/sh".into()]),
            entrypoint: None,
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            working_dir: None,
            user: None,
            labels: BTreeMap::new(),
            exposed_ports: vec![],
            volumes: vec![],
            stop_signal: None,
            compression: Compression::Gzip,
        }
    }
}

/// The config JSON for an image with these layers' diff ids.
pub fn config_json(opts: &ImageOptions, diff_ids: &[String], history: &[&str]) -> serde_json::Value {
    let p = media::host_platform();
    let mut cfg = serde_json::Map::new();
    if let Some(c) = &opts.cmd {
        cfg.insert("Cmd".into(), json!(c));
    }
    if let Some(e) = &opts.entrypoint {
        cfg.insert("Entrypoint".into(), json!(e));
    }
    if !opts.env.is_empty() {
        cfg.insert("Env".into(), json!(opts.env));
    }
    if let Some(w) = &opts.working_dir {
        cfg.insert("WorkingDir".into(), json!(w));
    }
    if let Some(u) = &opts.user {
        cfg.insert("User".into(), json!(u));
    }
    if !opts.labels.is_empty() {
        cfg.insert("Labels".into(), json!(opts.labels));
    }
    if !opts.exposed_ports.is_empty() {
        cfg.insert("ExposedPorts".into(), opts.exposed_ports.iter().map(|p| (p.clone(), json!({}))).collect());
    }
    if !opts.volumes.is_empty() {
        cfg.insert("Volumes".into(), opts.volumes.iter().map(|p| (p.clone(), json!({}))).collect());
    }
    if let Some(s) = &opts.stop_signal {
        cfg.insert("StopSignal".into(), json!(s));
    }
    let now = engine_core::time::format_rfc3339(std::time::SystemTime::now());
    let hist: Vec<_> = diff_ids
        .iter()
        .enumerate()
        .map(|(i, _)| json!({"created": now, "created_by": history.get(i).copied().unwrap_or("engine-image build")}))
        .collect();
    json!({
        "architecture": p.architecture,
        "os": p.os,
        "created": now,
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": hist,
    })
}

/// Write a layer tar of `dir` into the store, compressed as asked.
/// Returns the layer descriptor and its diff id.
pub fn store_layer_from_dir(blobs: &Blobs, dir: &Path, compression: Compression) -> Result<(Descriptor, String)> {
    let w = blobs.writer()?;
    let what = || format!("write layer of {}", dir.display());
    let (w, diff_id, mt) = match compression {
        Compression::None => {
            let (w, d, _) = crate::diff::write_layer_tar(dir, HashingWriter::new(w))?.finish();
            (w, d, media::OCI_LAYER_TAR)
        }
        Compression::Gzip => {
            let enc = flate2::write::GzEncoder::new(w, flate2::Compression::fast());
            let (enc, d, _) = crate::diff::write_layer_tar(dir, HashingWriter::new(enc))?.finish();
            (enc.finish().context(what)?, d, media::OCI_LAYER_GZIP)
        }
        Compression::Zstd => {
            let enc = zstd::stream::write::Encoder::new(w, 3).context(what)?;
            let (enc, d, _) = crate::diff::write_layer_tar(dir, HashingWriter::new(enc))?.finish();
            (enc.finish().context(what)?, d, media::OCI_LAYER_ZSTD)
        }
    };
    let (digest, size) = w.commit(None)?;
    Ok((Descriptor::new(mt, &digest, size), diff_id))
}

/// Store config and manifest blobs for `layers`; returns the manifest digest.
pub fn store_manifest(
    blobs: &Blobs,
    opts: &ImageOptions,
    layers: Vec<(Descriptor, String)>,
    history: &[&str],
) -> Result<String> {
    let diff_ids: Vec<String> = layers.iter().map(|(_, d)| d.clone()).collect();
    let config = serde_json::to_vec(&config_json(opts, &diff_ids, history)).map_err(|e| Error::Other(e.to_string()))?;
    let cdigest = blobs.write_bytes(&config, None)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.into()),
        config: Descriptor::new(media::OCI_CONFIG, &cdigest, config.len() as u64),
        layers: layers.into_iter().map(|(d, _)| d).collect(),
        annotations: None,
    };
    let bytes = serde_json::to_vec(&manifest).map_err(|e| Error::Other(e.to_string()))?;
    blobs.write_bytes(&bytes, None)
}

/// Store a one-layer image made from `dir`; returns its manifest digest.
pub fn store_image_from_dir(blobs: &Blobs, dir: &Path, opts: &ImageOptions) -> Result<String> {
    let layer = store_layer_from_dir(blobs, dir, opts.compression)?;
    store_manifest(blobs, opts, vec![layer], &[])
}

/// Write a docker-archive (the legacy `docker save` layout: `manifest.json`,
/// `repositories`, `<id>/layer.tar`, `<config>.json`) holding one image
/// made from the directories in `layers` (base first), tagged `reference`.
pub fn image_from_dirs(layers: &[&Path], reference: &str, dest: &Path, opts: &ImageOptions) -> Result<()> {
    let r = Reference::parse(reference)?;
    let what = || format!("write docker archive {}", dest.display());
    let out = std::fs::File::create(dest).context(what)?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(out));
    let mut diff_ids = Vec::new();
    let mut paths = Vec::new();
    for dir in layers {
        let mut tmp = tempfile_in(dest)?;
        let (f, diff_id, size) = crate::diff::write_layer_tar(dir, HashingWriter::new(&mut tmp))?.finish();
        let _ = f;
        tmp.rewind().context(what)?;
        let id = diff_id[7..].to_string();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        tar.append_data(&mut h, format!("{id}/"), std::io::empty()).context(what)?;
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(size);
        tar.append_data(&mut h, format!("{id}/layer.tar"), &mut tmp).context(what)?;
        add_file(&mut tar, &format!("{id}/VERSION"), b"1.0").context(what)?;
        add_file(&mut tar, &format!("{id}/json"), format!("{{\"id\":\"{id}\"}}").as_bytes()).context(what)?;
        paths.push(format!("{id}/layer.tar"));
        diff_ids.push(diff_id);
    }
    let config = serde_json::to_vec(&config_json(opts, &diff_ids, &[])).map_err(|e| Error::Other(e.to_string()))?;
    let chex = sha256(&config)[7..].to_string();
    add_file(&mut tar, &format!("{chex}.json"), &config).context(what)?;
    let tag = r.tagged().unwrap_or_else(|| r.name());
    let manifest = json!([{"Config": format!("{chex}.json"), "RepoTags": [tag], "Layers": paths}]);
    add_file(&mut tar, "manifest.json", manifest.to_string().as_bytes()).context(what)?;
    let last = diff_ids.last().map(|d| d[7..].to_string()).unwrap_or_default();
    let repos = json!({ r.name(): { r.tag().unwrap_or("latest"): last } });
    add_file(&mut tar, "repositories", repos.to_string().as_bytes()).context(what)?;
    let mut w = tar.into_inner().context(what)?;
    w.flush().context(what)?;
    Ok(())
}

/// [`image_from_dirs`] with one layer.
pub fn image_from_dir(dir: &Path, reference: &str, dest: &Path, opts: &ImageOptions) -> Result<()> {
    image_from_dirs(&[dir], reference, dest, opts)
}

fn tempfile_in(dest: &Path) -> Result<std::fs::File> {
    let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let p = dir.join(format!(".layer-{}", &engine_core::random_hex64()[..16]));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&p)
        .context(|| format!("create {}", p.display()))?;
    let _ = std::fs::remove_file(&p);
    Ok(f)
}

pub(crate) fn add_file<W: Write>(tar: &mut tar::Builder<W>, path: &str, data: &[u8]) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_mtime(0);
    tar.append_data(&mut h, path, data)
}

/// Make a busybox root filesystem in `dir`: `/bin/busybox` (Debian's
/// busybox-static, or `$BUSYBOX`), a symlink per applet, `/etc/passwd` and
/// `/etc/group` with root and nobody, and empty `/proc`, `/sys`, `/dev`,
/// `/tmp`.
pub fn busybox_rootfs(dir: &Path) -> Result<()> {
    let src = std::env::var_os("BUSYBOX").map(std::path::PathBuf::from).unwrap_or_else(|| "/bin/busybox".into());
    let what = || format!("make busybox rootfs in {}", dir.display());
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "root"] {
        std::fs::create_dir_all(dir.join(d)).context(what)?;
    }
    std::fs::copy(&src, dir.join("bin/busybox")).context(|| format!("copy {}", src.display()))?;
    let out =
        std::process::Command::new(&src).arg("--list").output().context(|| format!("run {} --list", src.display()))?;
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let a = applet.trim();
        if a.is_empty() || a == "busybox" || a.contains('/') {
            continue;
        }
        let link = dir.join("bin").join(a);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink("busybox", &link).context(what)?;
        }
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .context(what)?;
    std::fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").context(what)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("tmp"), std::fs::Permissions::from_mode(0o1777)).context(what)?;
    Ok(())
}
