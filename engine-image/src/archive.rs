//! Import and export: docker-archive (legacy and Docker 25+ layouts), OCI
//! image layout (tar or directory), and plain rootfs tars. Archives are read
//! once, as they arrive: every large member goes straight into the content
//! store and, if it is a layer, into a snapshot on the way.

use crate::blobs::Blobs;
use crate::build::add_file;
use crate::digest::hex_of;
use crate::ingest::{ingest_layer, with_stream_reader, Ingested, TmpSnapshot, Unpack};
use crate::media::{self, Descriptor, Index, Manifest};
use crate::reference::Reference;
use crate::store::{blocking, layer_records, parse_config, progress, short, Store};
use crate::unpack::{detect, Compression, UnpackOptions};
use engine_core::{ArchiveFormat, ByteStream, Error, ImageInfo, IoContext, ProgressSender, Result};
use futures::StreamExt;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

const SMALL: u64 = 1 << 20;

/// Where an import reads from and writes to.
struct Sink {
    blobs: Blobs,
    /// The store's `snapshots` directory.
    snapshots: PathBuf,
    unpack: UnpackOptions,
}

/// What a scan of an archive found: small files in memory, every other
/// file already in the content store, and the layers among those already
/// unpacked (by diff id).
#[derive(Default)]
struct Scan {
    small: HashMap<String, Vec<u8>>,
    stored: HashMap<String, String>,
    aliases: HashMap<String, String>,
    unpacked: HashMap<String, TmpSnapshot>,
}

fn clean_name(name: &[u8]) -> String {
    crate::unpack::clean_path(name)
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

impl Scan {
    fn ingest(&mut self, sink: &Sink, name: String, mut r: impl Read, size: u64) -> Result<()> {
        if size <= SMALL {
            let mut v = Vec::with_capacity(size as usize);
            r.read_to_end(&mut v).context(|| format!("read {name} from archive"))?;
            self.small.insert(name, v);
        } else {
            let got = ingest_layer(&sink.blobs, &sink.snapshots, r, None, Unpack::Try(&sink.unpack)).map_err(|e| {
                Error::invalid(format!("archive member {name}"), format!("truncated or unreadable: {e}"))
            })?;
            if let Some(snap) = got.snapshot {
                self.unpacked.insert(snap.stats.diff_id.clone(), snap);
            }
            self.stored.insert(name, got.digest);
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

    fn scan_reader(sink: &Sink, r: impl Read, what: &str) -> Result<Scan> {
        let plain = crate::unpack::decompress(r).context(|| format!("read {what}"))?;
        let mut ar = tar::Archive::new(plain);
        let mut scan = Scan::default();
        let bad = |e: std::io::Error| Error::invalid(format!("archive {what}"), format!("not a readable tar: {e}"));
        for entry in ar.entries().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            let name = clean_name(&entry.path_bytes());
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let size = entry.header().size().unwrap_or(0);
                    scan.ingest(sink, name, entry, size)?;
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

    fn scan_dir(sink: &Sink, root: &Path) -> Result<Scan> {
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
                    scan.ingest(sink, r.to_string_lossy().into_owned(), f, size)?;
                }
            }
        }
        Ok(scan)
    }

    /// Move the layers unpacked while scanning into place as the snapshots
    /// of the images found (the rest are removed when the scan is dropped).
    fn place_snapshots(&mut self, blobs: &Blobs, snapshots: &Path, found: &[Found]) -> Result<()> {
        if self.unpacked.is_empty() {
            return Ok(());
        }
        for f in found {
            let what = format!("manifest {}", f.manifest);
            let manifest: Manifest = serde_json::from_slice(&blobs.read(&f.manifest)?)
                .map_err(|e| Error::invalid(what.clone(), e.to_string()))?;
            let (_, diff_ids) = parse_config(&blobs.read(&manifest.config.digest)?, &manifest.config.digest)?;
            for l in layer_records(&manifest, &diff_ids, &what)? {
                let snap = snapshots.join(hex_of(&l.chain_id)?);
                if let Some(t) = self.unpacked.remove(&l.diff_id) {
                    if !snap.join("fs").is_dir() {
                        t.finish(&snap)?;
                    }
                }
            }
        }
        Ok(())
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

/// Store a plain rootfs tar read from `r` as a layer with a fresh config,
/// unpacked into its snapshot as it is stored; returns the manifest digest.
fn rootfs_tar(sink: &Sink, r: impl Read, what: &str) -> Result<String> {
    let bad = |e: Error| match e {
        Error::InvalidInput { reason, .. } => Error::invalid(format!("rootfs tar {what}"), reason),
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::invalid(format!("rootfs tar {what}"), format!("truncated: {source}"))
        }
        e => e,
    };
    let Ingested { digest, size, compression, snapshot } =
        ingest_layer(&sink.blobs, &sink.snapshots, r, None, Unpack::Must(&sink.unpack)).map_err(bad)?;
    let Some(snapshot) = snapshot else { return Err(Error::Other("rootfs tar: no snapshot unpacked".into())) };
    let diff_id = snapshot.stats.diff_id.clone();
    // One layer: its chain id is its diff id.
    snapshot.finish(&sink.snapshots.join(hex_of(&diff_id)?))?;
    let mt = match compression {
        Compression::Gzip => media::OCI_LAYER_GZIP,
        Compression::Zstd => media::OCI_LAYER_ZSTD,
        Compression::None => media::OCI_LAYER_TAR,
    };
    let opts = crate::build::ImageOptions { cmd: None, env: vec![], ..Default::default() };
    crate::build::store_manifest(&sink.blobs, &opts, vec![(Descriptor::new(mt, &digest, size), diff_id)], &["import"])
}

/// Where an archive comes from.
enum Source {
    /// A file or (OCI layout) directory.
    Path(PathBuf),
    /// An upload, read as it arrives.
    Stream(ByteStream),
}

/// What an archive read from `input` (a directory only for OCI layouts)
/// holds, with its blobs stored and the layers it carried unpacked.
fn find_images(sink: &Sink, input: Input, format: ArchiveFormat, tag: Option<&str>, what: &str) -> Result<Vec<Found>> {
    if format == ArchiveFormat::RootfsTar {
        let Input::Reader(r) = input else {
            return Err(Error::invalid(format!("rootfs tar {what}"), "a directory, not a tar"));
        };
        return Ok(vec![Found { manifest: rootfs_tar(sink, r, what)?, tags: vec![], extra: vec![] }]);
    }
    let mut scan = match input {
        Input::Dir(d) => Scan::scan_dir(sink, &d)?,
        Input::Reader(r) => Scan::scan_reader(sink, r, what)?,
    };
    let has_docker = scan.small.contains_key("manifest.json") || scan.stored.contains_key("manifest.json");
    let has_index = scan.small.contains_key("index.json");
    let found = if has_docker && (format == ArchiveFormat::DockerArchive || !has_index) {
        from_docker_manifest(&sink.blobs, &scan)?
    } else if has_index {
        from_oci_index(&sink.blobs, &scan, tag)?
    } else {
        return Err(Error::invalid(
            format!("archive {what}"),
            "neither a docker archive (manifest.json) nor an OCI layout (index.json)",
        ));
    };
    scan.place_snapshots(&sink.blobs, &sink.snapshots, &found)?;
    Ok(found)
}

enum Input {
    Dir(PathBuf),
    Reader(Box<dyn Read + Send>),
}

fn open_input(path: &Path) -> Result<Input> {
    if path.is_dir() {
        return Ok(Input::Dir(path.to_path_buf()));
    }
    let f = std::fs::File::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::not_found("archive", path.display().to_string())
        } else {
            Error::io(format!("open {}", path.display()), e)
        }
    })?;
    Ok(Input::Reader(Box::new(f)))
}

impl Store {
    pub(crate) async fn import_archive(
        &self,
        archive: &Path,
        format: ArchiveFormat,
        tag: Option<&str>,
        progress_tx: Option<ProgressSender>,
    ) -> Result<Vec<ImageInfo>> {
        self.import_source(Source::Path(archive.to_path_buf()), format, tag, progress_tx).await
    }

    /// [`engine_core::ImageStore::import_stream`]: the body is read once,
    /// as it arrives, into the content store and the snapshots.
    pub(crate) async fn import_archive_stream(
        &self,
        body: ByteStream,
        format: ArchiveFormat,
        tag: Option<&str>,
        progress_tx: Option<ProgressSender>,
    ) -> Result<Vec<ImageInfo>> {
        self.import_source(Source::Stream(body), format, tag, progress_tx).await
    }

    async fn import_source(
        &self,
        source: Source,
        format: ArchiveFormat,
        tag: Option<&str>,
        progress_tx: Option<ProgressSender>,
    ) -> Result<Vec<ImageInfo>> {
        let tagged = match tag {
            Some(t) => Some(Reference::parse(t)?.tagged().ok_or_else(|| Error::invalid("tag", t.to_string()))?),
            None => None,
        };
        let guard = self.lease().await?;
        let sink = Sink {
            blobs: self.inner.blobs.clone(),
            snapshots: self.inner.root.join("snapshots"),
            unpack: self.inner.unpack.clone(),
        };
        let tag2 = tag.map(str::to_string);
        progress(&progress_tx, "", "Loading", None, None);
        let found = match source {
            Source::Path(path) => {
                blocking(move || {
                    find_images(&sink, open_input(&path)?, format, tag2.as_deref(), &path.display().to_string())
                })
                .await
            }
            Source::Stream(body) => {
                with_stream_reader(body, move |r| {
                    find_images(&sink, Input::Reader(Box::new(r)), format, tag2.as_deref(), "upload")
                })
                .await
            }
        };
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

    /// The images `references` name, with the tags to record for each.
    async fn export_records(&self, references: &[String]) -> Result<Vec<(crate::store::ImageRecord, Vec<String>)>> {
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
        Ok(images)
    }

    /// [`engine_core::ImageStore::export_stream`]: a docker archive or OCI
    /// layout tar written as the stream is read (a few chunks ahead), never
    /// staged on disk. The blobs are opened before the first byte, so an
    /// image removed meanwhile still streams whole.
    pub(crate) async fn export_archive_stream(
        &self,
        references: &[String],
        format: ArchiveFormat,
    ) -> Result<ByteStream> {
        let docker = match format {
            ArchiveFormat::DockerArchive => true,
            ArchiveFormat::OciArchive => false,
            _ => return Err(Error::Unsupported(format!("streaming an export as {format:?}"))),
        };
        let lease = self.lease().await?;
        let images = self.export_records(references).await?;
        let blobs = self.inner.blobs.clone();
        let (files, docs) = blocking(move || {
            let files =
                all_blobs(&images).into_iter().map(|d| Ok((blobs.open_blob(&d)?, d))).collect::<Result<Vec<_>>>()?;
            Ok((files, layout_docs(&blobs, &images, docker)?))
        })
        .await?;
        drop(lease);
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
        tokio::task::spawn_blocking(move || {
            let w = std::io::BufWriter::with_capacity(256 * 1024, ChannelWriter(tx.clone()));
            if let Err(e) = write_layout(files, docs, w) {
                // Ends the stream with the error (nobody listens if the reader went away).
                let _ = tx.blocking_send(Err(e));
            }
        });
        Ok(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) }).boxed())
    }

    pub(crate) async fn export_archive(&self, references: &[String], format: ArchiveFormat, dest: &Path) -> Result<()> {
        let _lease = self.lease().await?;
        let images = self.export_records(references).await?;
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

/// A writer that hands each write to an async reader as one chunk.
struct ChannelWriter(tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(bytes::Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the archive's reader went away"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Write a layout tar of `files` (open blobs and their digests) and `docs`
/// (the small JSON files) to `w`; returns `w`, flushed.
fn write_layout<W: Write>(
    files: Vec<(std::fs::File, String)>,
    docs: Vec<(String, Vec<u8>)>,
    w: W,
) -> std::io::Result<W> {
    let mut tar = tar::Builder::new(w);
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        tar.append_data(&mut h, dir, std::io::empty())?;
    }
    for (f, d) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(f.metadata()?.len());
        tar.append_data(&mut h, format!("blobs/sha256/{}", &d[7..]), f)?;
    }
    for (p, b) in docs {
        add_file(&mut tar, &p, &b)?;
    }
    let mut w = tar.into_inner()?;
    w.flush()?;
    Ok(w)
}

fn write_layout_tar(blobs: &Blobs, images: &Images, dest: &Path, docker: bool) -> Result<()> {
    let what = || format!("write {}", dest.display());
    let files = all_blobs(images).into_iter().map(|d| Ok((blobs.open_blob(&d)?, d))).collect::<Result<Vec<_>>>()?;
    let docs = layout_docs(blobs, images, docker)?;
    let f = std::fs::File::create(dest).context(what)?;
    let w = write_layout(files, docs, std::io::BufWriter::with_capacity(1 << 20, f)).context(what)?;
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
