//! Import and export: docker-archive (legacy and Docker 25+ layouts), OCI
//! image layout (tar or directory), and plain rootfs tars.

use crate::blobs::{Blobs, TeeReader};
use crate::build::add_file;
use crate::digest::{hex_of, HashingReader};
use crate::media::{self, Descriptor, Index, Manifest};
use crate::reference::Reference;
use crate::store::{blocking, progress, short, Store};
use crate::unpack::{detect, Compression};
use engine_core::{ArchiveFormat, Error, ImageInfo, IoContext, ProgressSender, Result};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

const SMALL: u64 = 1 << 20;

/// What a scan of an archive found: small files in memory, every other
/// file already in the content store.
#[derive(Default)]
struct Scan {
    small: HashMap<String, Vec<u8>>,
    stored: HashMap<String, String>,
    aliases: HashMap<String, String>,
}

fn clean_name(name: &[u8]) -> String {
    crate::unpack::clean_path(name)
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

impl Scan {
    fn ingest(&mut self, blobs: &Blobs, name: String, mut r: impl Read, size: u64) -> Result<()> {
        if size <= SMALL {
            let mut v = Vec::with_capacity(size as usize);
            r.read_to_end(&mut v).context(|| format!("read {name} from archive"))?;
            self.small.insert(name, v);
        } else {
            let mut w = blobs.writer()?;
            std::io::copy(&mut r, &mut w).map_err(|e| {
                Error::invalid(format!("archive member {name}"), format!("truncated or unreadable: {e}"))
            })?;
            let (d, _) = w.commit(None)?;
            self.stored.insert(name, d);
        }
        Ok(())
    }

    fn resolve_name<'a>(&'a self, name: &'a str) -> String {
        let mut n = clean_name(name.as_bytes());
        for _ in 0..16 {
            match self.aliases.get(&n) {
                Some(t) => n = t.clone(),
                None => break,
            }
        }
        n
    }

    fn bytes(&self, blobs: &Blobs, name: &str) -> Result<Vec<u8>> {
        let n = self.resolve_name(name);
        if let Some(b) = self.small.get(&n) {
            return Ok(b.clone());
        }
        if let Some(d) = self.stored.get(&n) {
            return blobs.read(d);
        }
        Err(Error::invalid("archive", format!("{name} is referenced but not in the archive")))
    }

    /// Put the member `name` in the content store; returns its digest.
    fn blob(&self, blobs: &Blobs, name: &str) -> Result<String> {
        let n = self.resolve_name(name);
        let d = if let Some(b) = self.small.get(&n) {
            blobs.write_bytes(b, None)?
        } else if let Some(d) = self.stored.get(&n) {
            d.clone()
        } else {
            return Err(Error::invalid("archive", format!("{name} is referenced but not in the archive")));
        };
        if let Some(hex) = n.strip_prefix("blobs/sha256/") {
            if d[7..] != *hex {
                return Err(Error::invalid(
                    format!("archive blob sha256:{hex}"),
                    format!("content has digest {d}: digest mismatch"),
                ));
            }
        }
        Ok(d)
    }

    fn scan_tar(blobs: &Blobs, path: &Path) -> Result<Scan> {
        let f = std::fs::File::open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::not_found("archive", path.display().to_string())
            } else {
                Error::io(format!("open {}", path.display()), e)
            }
        })?;
        let plain = crate::unpack::decompress(f).context(|| format!("read {}", path.display()))?;
        let mut ar = tar::Archive::new(plain);
        let mut scan = Scan::default();
        let bad = |e: std::io::Error| {
            Error::invalid(format!("archive {}", path.display()), format!("not a readable tar: {e}"))
        };
        for entry in ar.entries().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            let name = clean_name(&entry.path_bytes());
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let size = entry.header().size().unwrap_or(0);
                    scan.ingest(blobs, name, entry, size)?;
                }
                tar::EntryType::Symlink => {
                    let target = entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
                    let parent = name.rsplit_once('/').map(|(p, _)| p.to_string()).unwrap_or_default();
                    let t = if target.starts_with(b"/") {
                        clean_name(&target)
                    } else {
                        clean_name(format!("{parent}/{}", String::from_utf8_lossy(&target)).as_bytes())
                    };
                    scan.aliases.insert(name, t);
                }
                tar::EntryType::Link => {
                    let target = entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
                    scan.aliases.insert(name, clean_name(&target));
                }
                _ => {}
            }
        }
        Ok(scan)
    }

    fn scan_dir(blobs: &Blobs, root: &Path) -> Result<Scan> {
        let mut scan = Scan::default();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let dir = root.join(&rel);
            for e in std::fs::read_dir(&dir).context(|| format!("read {}", dir.display()))? {
                let e = e.context(|| format!("read {}", dir.display()))?;
                let ft = e.file_type().context(|| format!("stat {}", e.path().display()))?;
                let r = rel.join(e.file_name());
                if ft.is_dir() {
                    stack.push(r);
                } else if ft.is_file() {
                    let f = std::fs::File::open(e.path()).context(|| format!("open {}", e.path().display()))?;
                    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
                    scan.ingest(blobs, r.to_string_lossy().into_owned(), f, size)?;
                }
            }
        }
        Ok(scan)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn layer_media_type(blobs: &Blobs, digest: &str) -> Result<&'static str> {
    let f = blobs.open_blob(digest)?;
    let mut br = BufReader::new(f);
    Ok(match detect(&mut br).context(|| format!("read blob {digest}"))? {
        Compression::Gzip => media::OCI_LAYER_GZIP,
        Compression::Zstd => media::OCI_LAYER_ZSTD,
        Compression::None => media::OCI_LAYER_TAR,
    })
}

/// An image found in an archive, ready to register.
struct Found {
    manifest: String,
    tags: Vec<String>,
    extra: Vec<String>,
}

fn normalize_tag(t: &str) -> Option<String> {
    Reference::parse(t).ok().and_then(|r| r.tagged())
}

fn from_docker_manifest(blobs: &Blobs, scan: &Scan) -> Result<Vec<Found>> {
    let bytes = scan.bytes(blobs, "manifest.json")?;
    let entries: Vec<DockerManifestEntry> =
        serde_json::from_slice(&bytes).map_err(|e| Error::invalid("docker archive manifest.json", e.to_string()))?;
    // Docker 25+ archives carry the original manifests: keep their digests.
    let mut originals: HashMap<String, String> = HashMap::new();
    if let Ok(ib) = scan.bytes(blobs, "index.json") {
        if let Ok(index) = serde_json::from_slice::<Index>(&ib) {
            for d in index.manifests.iter().filter(|d| media::is_manifest(&d.media_type)) {
                let name = format!("blobs/sha256/{}", &d.digest[7..]);
                if let Ok(mb) = scan.bytes(blobs, &name) {
                    if let Ok(m) = serde_json::from_slice::<Manifest>(&mb) {
                        originals.insert(m.config.digest.clone(), name);
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    for e in entries {
        let config = scan.blob(blobs, &e.config)?;
        let tags = e.repo_tags.unwrap_or_default().iter().filter_map(|t| normalize_tag(t)).collect();
        if let Some(name) = originals.get(&config) {
            let m = scan.blob(blobs, name)?;
            let man: Manifest =
                serde_json::from_slice(&blobs.read(&m)?).map_err(|e| Error::invalid("manifest", e.to_string()))?;
            if man.layers.len() == e.layers.len() {
                for l in &man.layers {
                    scan.blob(blobs, &format!("blobs/sha256/{}", &l.digest[7..]))?;
                }
                out.push(Found { manifest: m, tags, extra: vec![] });
                continue;
            }
        }
        let mut layers = Vec::new();
        for l in &e.layers {
            let d = scan.blob(blobs, l)?;
            let mt = layer_media_type(blobs, &d)?;
            layers.push(Descriptor::new(mt, &d, blobs.size(&d)?));
        }
        let m = Manifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.into()),
            config: Descriptor::new(media::OCI_CONFIG, &config, blobs.size(&config)?),
            layers,
            annotations: None,
        };
        let md = blobs.write_bytes(&serde_json::to_vec(&m).map_err(|e| Error::Other(e.to_string()))?, None)?;
        out.push(Found { manifest: md, tags, extra: vec![] });
    }
    Ok(out)
}

fn from_oci_index(blobs: &Blobs, scan: &Scan, tag: Option<&str>) -> Result<Vec<Found>> {
    let bytes = scan.bytes(blobs, "index.json")?;
    let index: Index =
        serde_json::from_slice(&bytes).map_err(|e| Error::invalid("OCI layout index.json", e.to_string()))?;
    let mut out = Vec::new();
    for d in &index.manifests {
        hex_of(&d.digest)?;
        let ann = d.annotations.clone().unwrap_or_default();
        let mut tags = Vec::new();
        if let Some(n) = ann.get("io.containerd.image.name").and_then(|n| normalize_tag(n)) {
            tags.push(n);
        } else if let Some(rn) = ann.get("org.opencontainers.image.ref.name") {
            if rn.contains('/') || rn.contains(':') {
                tags.extend(normalize_tag(rn));
            } else if let Some(t) = tag.and_then(|t| Reference::parse(t).ok()) {
                tags.extend(normalize_tag(&format!("{}:{rn}", t.name())));
            }
        }
        let mut extra = Vec::new();
        let mut desc = d.clone();
        if media::is_index(&desc.media_type) {
            let idx_digest = scan.blob(blobs, &format!("blobs/sha256/{}", &desc.digest[7..]))?;
            let sub: Index = serde_json::from_slice(&blobs.read(&idx_digest)?)
                .map_err(|e| Error::invalid(format!("index {}", desc.digest), e.to_string()))?;
            let host = media::host_platform();
            desc = media::select_platform(&sub, &host)
                .cloned()
                .ok_or_else(|| Error::invalid(format!("index {}", d.digest), format!("no manifest for {host}")))?;
            extra.push(idx_digest);
        } else if !media::is_manifest(&desc.media_type) {
            return Err(Error::invalid(
                format!("manifest {}", desc.digest),
                format!("unsupported media type {:?}", desc.media_type),
            ));
        }
        let md = scan.blob(blobs, &format!("blobs/sha256/{}", &desc.digest[7..]))?;
        let man: Manifest = serde_json::from_slice(&blobs.read(&md)?)
            .map_err(|e| Error::invalid(format!("manifest {md}"), e.to_string()))?;
        scan.blob(blobs, &format!("blobs/sha256/{}", &man.config.digest[7..]))?;
        for l in &man.layers {
            if !media::is_layer(&l.media_type) {
                return Err(Error::invalid(
                    format!("manifest {md}"),
                    format!("layer {} has unsupported media type {:?}", l.digest, l.media_type),
                ));
            }
            scan.blob(blobs, &format!("blobs/sha256/{}", &l.digest[7..]))?;
        }
        out.push(Found { manifest: md, tags, extra });
    }
    Ok(out)
}

/// Store a plain rootfs tar as a layer with a fresh config; returns the manifest digest.
fn rootfs_tar(blobs: &Blobs, path: &Path) -> Result<String> {
    let f = std::fs::File::open(path).context(|| format!("open {}", path.display()))?;
    let w = blobs.writer()?;
    let mut tee = TeeReader { r: f, w };
    let mut head = BufReader::new(&mut tee);
    let comp = detect(&mut head).context(|| format!("read {}", path.display()))?;
    let plain: Box<dyn Read> = match comp {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(head)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(head).context(|| format!("read {}", path.display()))?)
        }
        Compression::None => Box::new(head),
    };
    let bad = |e: std::io::Error| {
        Error::invalid(format!("rootfs tar {}", path.display()), format!("not a readable tar: {e}"))
    };
    let mut hr = HashingReader::new(plain);
    {
        let mut ar = tar::Archive::new(&mut hr);
        for e in ar.entries().map_err(bad)? {
            e.map_err(bad)?;
        }
    }
    let (diff_id, _) = hr.finish().map_err(bad)?;
    let TeeReader { r, w } = tee;
    drop(r);
    let (digest, size) = w.commit(None)?;
    let mt = match comp {
        Compression::Gzip => media::OCI_LAYER_GZIP,
        Compression::Zstd => media::OCI_LAYER_ZSTD,
        Compression::None => media::OCI_LAYER_TAR,
    };
    let opts = crate::build::ImageOptions { cmd: None, env: vec![], ..Default::default() };
    crate::build::store_manifest(blobs, &opts, vec![(Descriptor::new(mt, &digest, size), diff_id)], &["import"])
}

impl Store {
    pub(crate) async fn import_archive(
        &self,
        archive: &Path,
        format: ArchiveFormat,
        tag: Option<&str>,
        progress_tx: Option<ProgressSender>,
    ) -> Result<Vec<ImageInfo>> {
        let tagged = match tag {
            Some(t) => Some(Reference::parse(t)?.tagged().ok_or_else(|| Error::invalid("tag", t.to_string()))?),
            None => None,
        };
        let guard = self.lease().await?;
        let blobs = self.inner.blobs.clone();
        let path = archive.to_path_buf();
        let tag2 = tag.map(str::to_string);
        progress(&progress_tx, "", "Loading", None, None);
        let found = blocking(move || -> Result<Vec<Found>> {
            if format == ArchiveFormat::RootfsTar {
                return Ok(vec![Found { manifest: rootfs_tar(&blobs, &path)?, tags: vec![], extra: vec![] }]);
            }
            let scan = if path.is_dir() { Scan::scan_dir(&blobs, &path)? } else { Scan::scan_tar(&blobs, &path)? };
            let has_docker = scan.small.contains_key("manifest.json") || scan.stored.contains_key("manifest.json");
            let has_index = scan.small.contains_key("index.json");
            if has_docker && (format == ArchiveFormat::DockerArchive || !has_index) {
                from_docker_manifest(&blobs, &scan)
            } else if has_index {
                from_oci_index(&blobs, &scan, tag2.as_deref())
            } else {
                Err(Error::invalid(
                    format!("archive {}", path.display()),
                    "neither a docker archive (manifest.json) nor an OCI layout (index.json)",
                ))
            }
        })
        .await;
        let result = match found {
            Ok(found) => {
                let mut out = Vec::new();
                let mut err = None;
                for (i, f) in found.into_iter().enumerate() {
                    let mut tags = f.tags;
                    if i == 0 {
                        tags.extend(tagged.clone());
                    }
                    match self.register(&f.manifest, tags, vec![], f.extra, &progress_tx).await {
                        Ok(info) => {
                            progress(&progress_tx, &short(&info.id), "Loaded image", None, None);
                            out.push(info)
                        }
                        Err(e) => {
                            err = Some(e);
                            break;
                        }
                    }
                }
                match err {
                    Some(e) => Err(e),
                    None => Ok(out),
                }
            }
            Err(e) => Err(e),
        };
        drop(guard);
        if result.is_err() {
            let _ = self.gc().await;
        }
        result
    }

    pub(crate) async fn export_archive(&self, references: &[String], format: ArchiveFormat, dest: &Path) -> Result<()> {
        let _lease = self.lease().await?;
        let s = self.state().await?;
        let mut images = Vec::new();
        for r in references {
            let rec = s.resolve(r)?.clone();
            let tags: Vec<String> = match Reference::parse(r).ok().and_then(|p| p.tagged()) {
                Some(t) if s.tags.get(&t) == Some(&rec.id) => vec![t],
                _ => s.tags.iter().filter(|(_, v)| **v == rec.id).map(|(k, _)| k.clone()).collect(),
            };
            images.push((rec, tags));
        }
        if images.is_empty() {
            return Err(Error::invalid("export", "no images named"));
        }
        let blobs = self.inner.blobs.clone();
        let dest = dest.to_path_buf();
        let snaps: Vec<PathBuf> = if format == ArchiveFormat::RootfsTar {
            images[0].0.layers.iter().map(|l| self.snapshot_dir(&l.chain_id)).collect::<Result<_>>()?
        } else {
            vec![]
        };
        blocking(move || {
            if format == ArchiveFormat::RootfsTar {
                let tmp = blobs.tmp_dir().join(format!("export-{}", &engine_core::random_hex64()[..12]));
                std::fs::create_dir_all(&tmp).context(|| format!("create {}", tmp.display()))?;
                let r = crate::snapshot::copy_layers(&snaps, &tmp).and_then(|_| {
                    let f = std::fs::File::create(&dest).context(|| format!("create {}", dest.display()))?;
                    let mut w = crate::diff::write_layer_tar(&tmp, std::io::BufWriter::new(f))?;
                    w.flush().context(|| format!("write {}", dest.display()))
                });
                let _ = std::fs::remove_dir_all(&tmp);
                return r;
            }
            if dest.is_dir() {
                write_layout_dir(&blobs, &images, &dest, format == ArchiveFormat::DockerArchive)
            } else {
                let tmp = dest.with_extension(format!("tmp-{}", &engine_core::random_hex64()[..8]));
                let r = write_layout_tar(&blobs, &images, &tmp, format == ArchiveFormat::DockerArchive)
                    .and_then(|_| std::fs::rename(&tmp, &dest).context(|| format!("rename to {}", dest.display())));
                if r.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
                r
            }
        })
        .await
    }
}

type Images = [(crate::store::ImageRecord, Vec<String>)];

/// The small JSON files of a layout: (path, bytes).
fn layout_docs(blobs: &Blobs, images: &Images, docker: bool) -> Result<Vec<(String, Vec<u8>)>> {
    let mut index =
        Index { schema_version: 2, media_type: Some(media::OCI_INDEX.into()), manifests: vec![], annotations: None };
    let mut dm = Vec::new();
    let mut repos: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (rec, tags) in images {
        let size = blobs.size(&rec.manifest)?;
        let names: Vec<Option<&String>> = if tags.is_empty() { vec![None] } else { tags.iter().map(Some).collect() };
        for t in names {
            let mut d = Descriptor::new(&rec.manifest_media_type, &rec.manifest, size);
            if let Some(t) = t {
                let mut ann = BTreeMap::new();
                ann.insert("io.containerd.image.name".to_string(), t.clone());
                if let Ok(r) = Reference::parse(t) {
                    ann.insert(
                        "org.opencontainers.image.ref.name".to_string(),
                        r.tag().unwrap_or("latest").to_string(),
                    );
                    repos.entry(r.name()).or_default().insert(r.tag().unwrap_or("latest").into(), rec.id[7..].into());
                }
                d.annotations = Some(ann);
            }
            index.manifests.push(d);
        }
        dm.push(serde_json::json!({
            "Config": format!("blobs/sha256/{}", &rec.id[7..]),
            "RepoTags": tags,
            "Layers": rec.layers.iter().map(|l| format!("blobs/sha256/{}", &l.digest[7..])).collect::<Vec<_>>(),
        }));
    }
    let mut docs = vec![
        ("oci-layout".to_string(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        ("index.json".to_string(), serde_json::to_vec(&index).map_err(|e| Error::Other(e.to_string()))?),
    ];
    if docker {
        docs.push(("manifest.json".into(), serde_json::to_vec(&dm).map_err(|e| Error::Other(e.to_string()))?));
        docs.push(("repositories".into(), serde_json::to_vec(&repos).map_err(|e| Error::Other(e.to_string()))?));
    }
    Ok(docs)
}

fn all_blobs(images: &Images) -> Vec<String> {
    let mut v = Vec::new();
    for (rec, _) in images {
        for d in
            std::iter::once(&rec.manifest).chain(std::iter::once(&rec.id)).chain(rec.layers.iter().map(|l| &l.digest))
        {
            if !v.contains(d) {
                v.push(d.clone());
            }
        }
    }
    v
}

fn write_layout_tar(blobs: &Blobs, images: &Images, dest: &Path, docker: bool) -> Result<()> {
    let what = || format!("write {}", dest.display());
    let f = std::fs::File::create(dest).context(what)?;
    let mut tar = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, f));
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        tar.append_data(&mut h, dir, std::io::empty()).context(what)?;
    }
    for d in all_blobs(images) {
        let f = blobs.open_blob(&d)?;
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(f.metadata().context(what)?.len());
        tar.append_data(&mut h, format!("blobs/sha256/{}", &d[7..]), f).context(what)?;
    }
    for (p, b) in layout_docs(blobs, images, docker)? {
        add_file(&mut tar, &p, &b).context(what)?;
    }
    let mut w = tar.into_inner().context(what)?;
    w.flush().context(what)?;
    w.get_ref().sync_all().context(what)?;
    Ok(())
}

fn write_layout_dir(blobs: &Blobs, images: &Images, dest: &Path, docker: bool) -> Result<()> {
    let bdir = dest.join("blobs/sha256");
    std::fs::create_dir_all(&bdir).context(|| format!("create {}", bdir.display()))?;
    for d in all_blobs(images) {
        let to = bdir.join(&d[7..]);
        if !to.exists() {
            std::fs::copy(blobs.path(&d)?, &to).context(|| format!("copy blob {d} to {}", to.display()))?;
        }
    }
    for (p, b) in layout_docs(blobs, images, docker)? {
        crate::blobs::write_atomic(&dest.join(p), &b)?;
    }
    Ok(())
}
