//! The store: image records, tags, snapshots, root filesystems and garbage
//! collection, on top of the content store.

use crate::blobs::{write_atomic, Blobs};
use crate::digest::{chain_ids, hex_of};
use crate::media::{self, Manifest};
use crate::reference::Reference;
use crate::unpack::{unpack_layer, UnpackOptions};
use engine_core::{
    ArchiveFormat, Error, ImageInfo, ImageStore, IoContext, Progress, ProgressSender, RegistryAuth, Removed, Result,
    Rootfs,
};
use rustix::fs::FlockOperation;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One layer of a stored image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// Digest of the blob as stored (compressed or not).
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Blob size.
    pub size: u64,
    /// Digest of the uncompressed tar.
    pub diff_id: String,
    /// Chain id: the snapshot key.
    pub chain_id: String,
}

/// A stored image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Config digest.
    pub id: String,
    /// Manifest digest.
    pub manifest: String,
    /// Manifest media type.
    pub manifest_media_type: String,
    /// Layers, base first.
    pub layers: Vec<LayerRecord>,
    /// `name@digest` forms it is known by.
    #[serde(default)]
    pub repo_digests: Vec<String>,
    /// Other blobs kept for it (the index it was pulled through).
    #[serde(default)]
    pub extra_blobs: Vec<String>,
    /// Unpacked size.
    #[serde(default)]
    pub size: u64,
}

/// A prepared container root filesystem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootfsRecord {
    /// Snapshot key.
    pub key: String,
    /// Image id it came from.
    pub image_id: String,
    /// Chain ids of the snapshots it uses.
    pub chain_ids: Vec<String>,
    /// Mount point.
    pub target: PathBuf,
    /// Writable dir.
    pub upper: PathBuf,
    /// True for a mount (`overlay2`), false for a copy (`vfs`, or the
    /// `overlay2` fallback).
    pub overlay: bool,
}

impl RootfsRecord {
    /// What the snapshotter made, as [`engine_core::Snapshotter::remove`] takes it.
    pub fn snapshot(&self) -> engine_core::PreparedSnapshot {
        engine_core::PreparedSnapshot::default()
            .target(self.target.clone())
            .upper(self.upper.clone())
            .mounted(self.overlay)
    }
}

/// Images and tags, in one atomically written JSON file (`state.json`).
/// Container root filesystems are recorded one file each, next to their
/// upper dir (`rootfs/<key>/rootfs.json`), so that creating and removing
/// containers never rewrites (nor waits on) the image records.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    /// Images by id.
    #[serde(default)]
    pub images: BTreeMap<String, ImageRecord>,
    /// Normalized `registry/repo:tag` to image id.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl State {
    /// Find an image by reference, `name@digest`, id or id prefix.
    pub fn resolve(&self, reference: &str) -> Result<&ImageRecord> {
        let r = reference.trim();
        if let Some(img) = self.images.get(r) {
            return Ok(img);
        }
        if let Ok(parsed) = Reference::parse(r) {
            if let Some(d) = parsed.digest() {
                let want = format!("{}@{}", parsed.name(), d);
                if let Some(img) = self.images.values().find(|i| i.repo_digests.contains(&want) || i.id == d) {
                    return Ok(img);
                }
            } else if let Some(t) = parsed.tagged() {
                if let Some(img) = self.tags.get(&t).and_then(|id| self.images.get(id)) {
                    return Ok(img);
                }
            }
        }
        let bare = r.strip_prefix("sha256:").unwrap_or(r);
        if bare.len() >= 4 && bare.chars().all(|c| c.is_ascii_hexdigit()) {
            let m: Vec<_> = self.images.values().filter(|i| i.id[7..].starts_with(bare)).collect();
            if m.len() == 1 {
                return Ok(m[0]);
            }
            if m.len() > 1 {
                return Err(Error::invalid("image id", format!("{r} is ambiguous ({} images match)", m.len())));
            }
        }
        Err(Error::not_found("image", r))
    }
    fn tags_of(&self, id: &str) -> Vec<String> {
        self.tags.iter().filter(|(_, v)| v.as_str() == id).map(|(k, _)| k.clone()).collect()
    }
}

pub(crate) struct Inner {
    pub(crate) root: PathBuf,
    pub(crate) blobs: Blobs,
    state_lock: tokio::sync::Mutex<()>,
    /// Held shared by anything that writes content not yet referenced by
    /// the state (pull, import); held exclusively by garbage collection.
    pub(crate) gc_lock: tokio::sync::RwLock<()>,
    inflight: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub(crate) http: reqwest::Client,
    pub(crate) unpack: UnpackOptions,
    pub(crate) registry: crate::RegistryOptions,
    pub(crate) snapshotter: Arc<dyn engine_core::Snapshotter>,
    /// The state as last read, with the stamp of the file it came from.
    state_cache: std::sync::Mutex<Option<(StateStamp, State)>>,
}

/// What tells one `state.json` from another without reading it: every write
/// renames a new file into place, so a change shows in the inode, size or
/// times. A file is trusted by its stamp only once it is [`STATE_SETTLED`]
/// old, so a new file that got a freed inode number back within one tick of
/// the file-system clock is still read (as git treats a "racily clean"
/// index entry).
#[derive(Clone, Copy, PartialEq, Eq)]
struct StateStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// How old `state.json` must be before its stamp alone is trusted.
const STATE_SETTLED: std::time::Duration = std::time::Duration::from_secs(1);

impl StateStamp {
    /// The stamp of `md`, when the file is settled.
    fn of_settled(md: &std::fs::Metadata) -> Option<StateStamp> {
        use std::os::unix::fs::MetadataExt;
        let age = md.modified().ok().and_then(|m| std::time::SystemTime::now().duration_since(m).ok())?;
        (age >= STATE_SETTLED).then(|| StateStamp {
            dev: md.dev(),
            ino: md.ino(),
            len: md.len(),
            mtime: (md.mtime(), md.mtime_nsec()),
            ctime: (md.ctime(), md.ctime_nsec()),
        })
    }
}

/// How a [`Store`] works: registry options, unpack policy, snapshotter.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Registry client options.
    pub registry: crate::RegistryOptions,
    /// Layer unpack policy (devices, owners).
    pub unpack: UnpackOptions,
    /// The storage driver that makes containers' root filesystems.
    pub storage_driver: StorageDriver,
}

engine_core::__setters!(StoreOptions {
    registry: crate::RegistryOptions,
    unpack: UnpackOptions,
    storage_driver: StorageDriver
});

/// Which [`engine_core::Snapshotter`] a [`Store`] makes containers' root
/// filesystems with (`engined --storage-driver`, docker's names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageDriver {
    /// `overlay2`: overlay mounts ([`crate::OverlaySnapshotter`]), the default.
    #[default]
    Overlay2,
    /// `vfs`: plain copies ([`crate::VfsSnapshotter`]), for hosts without overlayfs.
    Vfs,
}

impl StorageDriver {
    /// Docker's name for it.
    pub fn name(self) -> &'static str {
        match self {
            StorageDriver::Overlay2 => "overlay2",
            StorageDriver::Vfs => "vfs",
        }
    }
}

impl std::str::FromStr for StorageDriver {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "overlay2" | "overlay" => Ok(StorageDriver::Overlay2),
            "vfs" => Ok(StorageDriver::Vfs),
            other => Err(Error::invalid("storage driver", format!("{other:?} is not supported (overlay2 or vfs)"))),
        }
    }
}

impl From<crate::RegistryOptions> for StoreOptions {
    fn from(registry: crate::RegistryOptions) -> Self {
        StoreOptions { registry, ..Default::default() }
    }
}

/// The default [`ImageStore`]: content-addressed blobs, image records, layer
/// snapshots and container root filesystems under one directory.
///
/// Cheap to clone (an `Arc` inside); clones share locks, so concurrent pulls
/// of the same image through clones are safe. Another process using the same
/// root is serialized by a file lock on metadata updates.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("root", &self.inner.root).finish()
    }
}

pub(crate) fn progress(p: &Option<ProgressSender>, id: &str, status: &str, current: Option<u64>, total: Option<u64>) {
    if let Some(tx) = p {
        let _ =
            tx.send(Progress::default().id(id.to_string()).status(status.to_string()).current(current).total(total));
    }
}

/// The 12-hex short form of a digest, as progress ids.
pub fn short(digest: &str) -> String {
    digest.strip_prefix("sha256:").unwrap_or(digest).chars().take(12).collect()
}

pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Other(format!("blocking task failed: {e}")))?
}

impl Store {
    /// Open (creating if needed) a store rooted at `root`. Synchronous: it
    /// only creates directories and the HTTP client, and removes the
    /// temporary files a killed writer left (a pull, load or commit cut
    /// short), unless another process is writing to the store right now.
    /// Content is renamed into place only once complete and verified, so a
    /// crash never leaves a half-written blob or image visible.
    pub fn open(root: impl AsRef<Path>) -> Result<Store> {
        Self::open_with(root, crate::RegistryOptions::default())
    }

    /// [`Store::open`] with options: [`StoreOptions`], or just
    /// [`crate::RegistryOptions`] (concurrency, retries, the docker config
    /// file, insecure registries).
    pub fn open_with(root: impl AsRef<Path>, options: impl Into<StoreOptions>) -> Result<Store> {
        let options = options.into();
        let root = root.as_ref().to_path_buf();
        let blobs = Blobs::open(&root)?;
        for d in ["snapshots", "rootfs", "l"] {
            let p = root.join(d);
            std::fs::create_dir_all(&p).context(|| format!("create {}", p.display()))?;
        }
        remove_crash_leftovers(&root, &blobs)?;
        let snapshotter: Arc<dyn engine_core::Snapshotter> = match options.storage_driver {
            StorageDriver::Overlay2 => Arc::new(crate::OverlaySnapshotter::new(root.join("l"))),
            StorageDriver::Vfs => Arc::new(crate::VfsSnapshotter),
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("engine-image/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(15))
            .read_timeout(std::time::Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::limited(10))
            .build()
            .map_err(|e| Error::Other(format!("build HTTP client: {e}")))?;
        Ok(Store {
            inner: Arc::new(Inner {
                root,
                blobs,
                state_lock: tokio::sync::Mutex::new(()),
                gc_lock: tokio::sync::RwLock::new(()),
                inflight: std::sync::Mutex::new(HashMap::new()),
                http,
                unpack: UnpackOptions { expected_diff_id: None, ..options.unpack },
                registry: options.registry,
                snapshotter,
                state_cache: std::sync::Mutex::new(None),
            }),
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The content store.
    pub fn blobs(&self) -> &Blobs {
        &self.inner.blobs
    }

    /// The directory holding the unpacked snapshot with `chain_id`.
    pub fn snapshot_dir(&self, chain_id: &str) -> Result<PathBuf> {
        Ok(self.inner.root.join("snapshots").join(hex_of(chain_id)?).join("fs"))
    }

    /// A copy of the current state.
    ///
    /// Read from `state.json` when it changed since the last read (by this
    /// process or another using the same root), else from memory: every
    /// container create and removal looks its image up here.
    pub async fn state(&self) -> Result<State> {
        let path = self.inner.root.join("state.json");
        if let Some(now) = std::fs::metadata(&path).ok().as_ref().and_then(StateStamp::of_settled) {
            let cache = self.inner.state_cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((_, state)) = cache.as_ref().filter(|(stamp, _)| *stamp == now) {
                return Ok(state.clone());
            }
        }
        let inner = self.inner.clone();
        blocking(move || {
            let (state, stamp) = read_state_stamped(&path)?;
            if let Some(stamp) = stamp {
                *inner.state_cache.lock().unwrap_or_else(|e| e.into_inner()) = Some((stamp, state.clone()));
            }
            Ok(state)
        })
        .await
    }

    /// Apply `f` to the state under the store's locks and write it back atomically.
    pub(crate) async fn update<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut State) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let _g = self.inner.state_lock.lock().await;
        let root = self.inner.root.clone();
        blocking(move || {
            let lock_path = root.join("lock");
            let lock = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .context(|| format!("open {}", lock_path.display()))?;
            crate::sys::flock(lock.as_fd(), FlockOperation::LockExclusive)
                .context(|| format!("lock {}", lock_path.display()))?;
            let path = root.join("state.json");
            let mut state = read_state(&path)?;
            let out = f(&mut state)?;
            let bytes = serde_json::to_vec_pretty(&state).map_err(|e| Error::Other(format!("encode state: {e}")))?;
            write_atomic(&path, &bytes)?;
            Ok(out)
        })
        .await
    }

    /// Hold off garbage collection (in this process and others using the
    /// same root) while content not yet referenced is being written.
    pub(crate) async fn lease(&self) -> Result<Lease<'_>> {
        let g = self.inner.gc_lock.read().await;
        let f = self.file_lock(FlockOperation::LockShared).await?;
        Ok(Lease { _g: g, _f: f })
    }

    async fn file_lock(&self, op: FlockOperation) -> Result<std::fs::File> {
        let path = self.inner.root.join("gc.lock");
        blocking(move || {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .context(|| format!("open {}", path.display()))?;
            crate::sys::flock(f.as_fd(), op).context(|| format!("lock {}", path.display()))?;
            Ok(f)
        })
        .await
    }

    pub(crate) fn key_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.inner.inflight.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|_, v| Arc::strong_count(v) > 1);
        m.entry(key.to_string()).or_default().clone()
    }

    /// Unpack the layer blob `digest` into the snapshot `chain_id` unless it
    /// is there already; returns the unpacked size.
    pub(crate) async fn ensure_snapshot(
        &self,
        layer: &LayerRecord,
        progress_tx: &Option<ProgressSender>,
    ) -> Result<u64> {
        let lock = self.key_lock(&layer.chain_id);
        let _g = lock.lock().await;
        let snap = self.inner.root.join("snapshots").join(hex_of(&layer.chain_id)?);
        if snap.join("fs").is_dir() {
            return Ok(read_snapshot_size(&snap));
        }
        progress(progress_tx, &short(&layer.digest), "Extracting", None, Some(layer.size));
        let blob = self.inner.blobs.open_blob(&layer.digest)?;
        let tmp = self.inner.root.join("snapshots").join(format!("tmp-{}", &engine_core::random_hex64()[..16]));
        let mut opts = self.inner.unpack.clone();
        opts.expected_diff_id = Some(layer.diff_id.clone());
        let digest = layer.digest.clone();
        let snap2 = snap.clone();
        let r = blocking(move || {
            let fs = tmp.join("fs");
            std::fs::create_dir_all(&fs).context(|| format!("create {}", fs.display()))?;
            let res = unpack_layer(std::io::BufReader::with_capacity(1 << 20, blob), &fs, &opts)
                .map_err(|e| Error::invalid(format!("layer {digest}"), e.to_string()))
                .and_then(|stats| finish_snapshot(&tmp, &snap2, stats.size).map(|_| stats.size));
            if res.is_err() {
                let _ = std::fs::remove_dir_all(&tmp);
            }
            res
        })
        .await;
        if r.is_ok() {
            progress(progress_tx, &short(&layer.digest), "Pull complete", None, None);
        }
        r
    }

    /// Record an image whose manifest, config and layer blobs are all in the
    /// content store: unpack missing snapshots, then point `tags` at it.
    pub(crate) async fn register(
        &self,
        manifest_digest: &str,
        tags: Vec<String>,
        repo_digests: Vec<String>,
        extra_blobs: Vec<String>,
        progress_tx: &Option<ProgressSender>,
    ) -> Result<ImageInfo> {
        let bytes = self.inner.blobs.read(manifest_digest)?;
        let what = format!("manifest {manifest_digest}");
        let mt = media::sniff(None, &bytes, &what)?;
        if !media::is_manifest(&mt) {
            return Err(Error::invalid(what, format!("{mt} is not an image manifest")));
        }
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| Error::invalid(what.clone(), e.to_string()))?;
        let (_, diff_ids) = self.read_config(&manifest.config.digest)?;
        let layers = layer_records(&manifest, &diff_ids, &what)?;
        let futs = layers.iter().map(|l| self.ensure_snapshot(l, progress_tx));
        let sizes = futures::future::try_join_all(futs).await?;
        let rec = ImageRecord {
            id: manifest.config.digest.clone(),
            manifest: manifest_digest.to_string(),
            manifest_media_type: mt,
            layers,
            repo_digests,
            extra_blobs,
            size: sizes.iter().sum(),
        };
        let id = rec.id.clone();
        self.update(move |s| {
            let entry = s.images.entry(rec.id.clone()).or_insert_with(|| rec.clone());
            entry.manifest = rec.manifest.clone();
            entry.manifest_media_type = rec.manifest_media_type.clone();
            entry.layers = rec.layers.clone();
            entry.size = rec.size;
            for d in rec.repo_digests {
                if !entry.repo_digests.contains(&d) {
                    entry.repo_digests.push(d);
                }
            }
            for d in rec.extra_blobs {
                if !entry.extra_blobs.contains(&d) {
                    entry.extra_blobs.push(d);
                }
            }
            for t in tags {
                s.tags.insert(t, rec.id.clone());
            }
            Ok(())
        })
        .await?;
        self.inspect_id(&id).await
    }

    /// Parse a config blob; returns it and its diff ids.
    pub(crate) fn read_config(&self, digest: &str) -> Result<(oci_spec::image::ImageConfiguration, Vec<String>)> {
        let bytes = self.inner.blobs.read(digest)?;
        parse_config(&bytes, digest)
    }

    async fn inspect_id(&self, id: &str) -> Result<ImageInfo> {
        let s = self.state().await?;
        let rec = s.images.get(id).ok_or_else(|| Error::not_found("image", id))?;
        self.info(&s, rec)
    }

    pub(crate) fn info(&self, s: &State, rec: &ImageRecord) -> Result<ImageInfo> {
        let (config, _) = self.read_config(&rec.id)?;
        Ok(ImageInfo::default()
            .id(rec.id.clone())
            .repo_tags(s.tags_of(&rec.id))
            .repo_digests(rec.repo_digests.clone())
            .created(config.created().as_deref().and_then(engine_core::time::parse_rfc3339))
            .size(rec.size)
            .config(config))
    }

    /// The config of an image (by reference or id).
    pub async fn image_config(&self, reference: &str) -> Result<oci_spec::image::ImageConfiguration> {
        Ok(self.inspect(reference).await?.config)
    }

    /// The stored record of an image (by reference or id).
    pub async fn record(&self, reference: &str) -> Result<ImageRecord> {
        self.state().await?.resolve(reference).cloned()
    }

    /// Delete blobs and snapshots no image and no root filesystem uses.
    /// Returns what was deleted.
    pub async fn gc(&self) -> Result<Vec<String>> {
        let _g = self.inner.gc_lock.write().await;
        let _f = self.file_lock(FlockOperation::LockExclusive).await?;
        let s = self.state().await?;
        let blobs = self.inner.blobs.clone();
        let root = self.inner.root.clone();
        blocking(move || {
            let mut keep_blobs = BTreeSet::new();
            let mut keep_snaps = BTreeSet::new();
            for i in s.images.values() {
                keep_blobs.insert(i.id.clone());
                keep_blobs.insert(i.manifest.clone());
                keep_blobs.extend(i.extra_blobs.iter().cloned());
                for l in &i.layers {
                    keep_blobs.insert(l.digest.clone());
                    keep_snaps.insert(l.chain_id[7..].to_string());
                }
            }
            for r in crate::snapshot::read_records(&root)? {
                keep_snaps.extend(r.chain_ids.iter().map(|c| c[7..].to_string()));
            }
            let mut removed = Vec::new();
            if let Ok(rd) = std::fs::read_dir(blobs.tmp_dir()) {
                for e in rd.flatten() {
                    let _ = std::fs::remove_file(e.path()).or_else(|_| std::fs::remove_dir_all(e.path()));
                }
            }
            for d in blobs.list()? {
                if !keep_blobs.contains(&d) {
                    blobs.remove(&d)?;
                    removed.push(d);
                }
            }
            let sdir = root.join("snapshots");
            for e in std::fs::read_dir(&sdir).context(|| format!("read {}", sdir.display()))? {
                let e = e.context(|| format!("read {}", sdir.display()))?;
                let name = e.file_name().to_string_lossy().into_owned();
                if keep_snaps.contains(&name) {
                    continue;
                }
                if name.starts_with("tmp-") {
                    // Nothing writes while gc holds the lock: a leftover of a crash.
                    let _ = std::fs::remove_dir_all(e.path());
                    continue;
                }
                std::fs::remove_dir_all(e.path()).context(|| format!("remove snapshot {}", e.path().display()))?;
                let _ = std::fs::remove_file(root.join("l").join(&name[..name.len().min(16)]));
                removed.push(format!("snapshot sha256:{name}"));
            }
            Ok(removed)
        })
        .await
    }

    /// Import a directory as a one-layer image tagged `tag` (`docker import`
    /// of a directory). The quickest way to make a runnable test image:
    ///
    /// ```no_run
    /// # async fn f() -> engine_core::Result<()> {
    /// let store = engine_image::Store::open("/var/lib/engine/image")?;
    /// let rootfs = tempfile::tempdir().unwrap();
    /// engine_image::build::busybox_rootfs(rootfs.path())?;
    /// let img = store.import_dir(rootfs.path(), "busybox:test").await?;
    /// assert_eq!(img.repo_tags, vec!["docker.io/library/busybox:test".to_string()]);
    /// # Ok(()) }
    /// ```
    pub async fn import_dir(&self, dir: &Path, tag: &str) -> Result<ImageInfo> {
        self.import_dir_with(dir, tag, &crate::build::ImageOptions::default()).await
    }

    /// [`Store::import_dir`] with an image config and layer compression.
    pub async fn import_dir_with(&self, dir: &Path, tag: &str, opts: &crate::build::ImageOptions) -> Result<ImageInfo> {
        self.import_dirs_with(&[dir], tag, opts).await
    }

    /// Make an image with one layer per directory in `dirs` (base first),
    /// compressed as `opts` says, tagged `tag`. Whiteouts in overlay form in
    /// the directories (char device 0:0, opaque xattr) become layer whiteouts.
    pub async fn import_dirs_with(
        &self,
        dirs: &[&Path],
        tag: &str,
        opts: &crate::build::ImageOptions,
    ) -> Result<ImageInfo> {
        let r = Reference::parse(tag)?;
        let tagged = r.tagged().ok_or_else(|| Error::invalid("tag", format!("{tag:?} has no tag")))?;
        let guard = self.lease().await?;
        let blobs = self.inner.blobs.clone();
        let dirs: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
        let opts = opts.clone();
        let manifest = blocking(move || {
            let layers = dirs
                .iter()
                .map(|d| crate::build::store_layer_from_dir(&blobs, d, opts.compression))
                .collect::<Result<Vec<_>>>()?;
            crate::build::store_manifest(&blobs, &opts, layers, &[])
        })
        .await;
        let res = match manifest {
            Ok(m) => self.register(&m, vec![tagged], vec![], vec![], &None).await,
            Err(e) => Err(e),
        };
        drop(guard);
        if res.is_err() {
            let _ = self.gc().await;
        }
        res
    }
}

/// A shared hold on the store's content against garbage collection; the
/// file lock is released when the file is closed.
pub(crate) struct Lease<'a> {
    _g: tokio::sync::RwLockReadGuard<'a, ()>,
    _f: std::fs::File,
}

pub(crate) fn parse_config(bytes: &[u8], digest: &str) -> Result<(oci_spec::image::ImageConfiguration, Vec<String>)> {
    let what = format!("image config {digest}");
    let config: oci_spec::image::ImageConfiguration =
        serde_json::from_slice(bytes).map_err(|e| Error::invalid(what.clone(), format!("not an image config: {e}")))?;
    let diff_ids = config.rootfs().diff_ids().clone();
    for d in &diff_ids {
        hex_of(d).map_err(|e| Error::invalid(what.clone(), e.to_string()))?;
    }
    Ok((config, diff_ids))
}

/// Pair a manifest's layers with the config's diff ids.
pub(crate) fn layer_records(manifest: &Manifest, diff_ids: &[String], what: &str) -> Result<Vec<LayerRecord>> {
    if manifest.layers.len() != diff_ids.len() {
        return Err(Error::invalid(
            what.to_string(),
            format!("{} layers but the config lists {} diff ids", manifest.layers.len(), diff_ids.len()),
        ));
    }
    let chains = chain_ids(diff_ids);
    manifest
        .layers
        .iter()
        .zip(diff_ids.iter().zip(chains))
        .map(|(l, (d, c))| {
            if !media::is_layer(&l.media_type) {
                return Err(Error::invalid(
                    what.to_string(),
                    format!("layer {} has unsupported media type {:?}", l.digest, l.media_type),
                ));
            }
            hex_of(&l.digest)?;
            Ok(LayerRecord {
                digest: l.digest.clone(),
                media_type: l.media_type.clone(),
                size: l.size,
                diff_id: d.clone(),
                chain_id: c,
            })
        })
        .collect()
}

/// The state in `path`, and the stamp of the file it was read from when that
/// file is settled (see [`StateStamp`]).
fn read_state_stamped(path: &Path) -> Result<(State, Option<StateStamp>)> {
    use std::io::Read;
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((State::default(), None)),
        Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
    };
    let stamp = f.metadata().ok().as_ref().and_then(StateStamp::of_settled);
    let mut b = Vec::new();
    f.read_to_end(&mut b).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    let state = serde_json::from_slice(&b).map_err(|e| Error::Other(format!("corrupt {}: {e}", path.display())))?;
    Ok((state, stamp))
}

fn read_state(path: &Path) -> Result<State> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::Other(format!("corrupt {}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
    }
}

fn read_snapshot_size(snap: &Path) -> u64 {
    std::fs::read_to_string(snap.join("size")).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// Remove the temporary files and snapshots a killed writer left (a blob
/// being downloaded or imported, a layer being unpacked or committed). Only
/// when no process holds a lease on the store (`gc.lock` taken exclusively
/// without waiting): a live writer's temp files are left alone. Content is
/// only ever renamed into place once complete and verified, so nothing else
/// needs repair.
fn remove_crash_leftovers(root: &Path, blobs: &Blobs) -> Result<()> {
    let path = root.join("gc.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .context(|| format!("open {}", path.display()))?;
    // Released when `f` is dropped.
    if crate::sys::flock(f.as_fd(), FlockOperation::NonBlockingLockExclusive).is_err() {
        return Ok(());
    }
    let mut removed = 0;
    if let Ok(rd) = std::fs::read_dir(blobs.tmp_dir()) {
        for e in rd.flatten() {
            if std::fs::remove_file(e.path()).or_else(|_| std::fs::remove_dir_all(e.path())).is_ok() {
                removed += 1;
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(root.join("snapshots")) {
        for e in rd.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("tmp-")) {
            if std::fs::remove_dir_all(e.path()).is_ok() {
                removed += 1;
            }
        }
    }
    if removed > 0 {
        tracing::info!(root = %root.display(), removed, "removed the temporary files of an interrupted write");
    }
    Ok(())
}

/// Move an unpacked temp snapshot into place (someone else may have won the race).
pub(crate) fn finish_snapshot(tmp: &Path, snap: &Path, size: u64) -> Result<()> {
    std::fs::write(tmp.join("size"), size.to_string()).context(|| format!("write {}", tmp.display()))?;
    crate::sys::fsync_dir(tmp).context(|| format!("fsync {}", tmp.display()))?;
    match std::fs::rename(tmp, snap) {
        Ok(()) => {}
        Err(_) if snap.join("fs").is_dir() => {
            let _ = std::fs::remove_dir_all(tmp);
        }
        Err(e) => return Err(Error::io(format!("rename snapshot into {}", snap.display()), e)),
    }
    if let Some(p) = snap.parent() {
        let _ = crate::sys::fsync_dir(p);
    }
    Ok(())
}

#[async_trait::async_trait]
impl ImageStore for Store {
    fn snapshotter(&self) -> Option<&dyn engine_core::Snapshotter> {
        Some(self.inner.snapshotter.as_ref())
    }
    async fn pull(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
        progress: Option<ProgressSender>,
    ) -> Result<ImageInfo> {
        self.pull_image(reference, auth, progress).await
    }

    async fn push(
        &self,
        reference: &str,
        auth: Option<&RegistryAuth>,
        progress: Option<ProgressSender>,
    ) -> Result<String> {
        self.push_image(reference, auth, progress).await
    }

    async fn import(
        &self,
        archive: &Path,
        format: ArchiveFormat,
        tag: Option<&str>,
        progress: Option<ProgressSender>,
    ) -> Result<Vec<ImageInfo>> {
        self.import_archive(archive, format, tag, progress).await
    }

    async fn import_stream(
        &self,
        body: engine_core::ByteStream,
        format: ArchiveFormat,
        tag: Option<&str>,
        progress: Option<ProgressSender>,
    ) -> Result<Vec<ImageInfo>> {
        self.import_archive_stream(body, format, tag, progress).await
    }

    async fn export(&self, references: &[String], format: ArchiveFormat, dest: &Path) -> Result<()> {
        self.export_archive(references, format, dest).await
    }

    async fn export_stream(&self, references: &[String], format: ArchiveFormat) -> Result<engine_core::ByteStream> {
        self.export_archive_stream(references, format).await
    }

    async fn list(&self) -> Result<Vec<ImageInfo>> {
        let s = self.state().await?;
        s.images.values().map(|r| self.info(&s, r)).collect()
    }

    async fn inspect(&self, reference: &str) -> Result<ImageInfo> {
        let s = self.state().await?;
        let rec = s.resolve(reference)?;
        self.info(&s, rec)
    }

    async fn tag(&self, source: &str, target: &str) -> Result<()> {
        let t = Reference::parse(target)?;
        let tagged =
            t.tagged().ok_or_else(|| Error::invalid(format!("tag {target:?}"), "a tag cannot carry a digest only"))?;
        let source = source.to_string();
        self.update(move |s| {
            let id = s.resolve(&source)?.id.clone();
            s.tags.insert(tagged, id);
            Ok(())
        })
        .await
    }

    async fn remove(&self, reference: &str, force: bool) -> Result<Vec<Removed>> {
        let reference = reference.to_string();
        let root = self.inner.root.clone();
        let removed = self
            .update(move |s| {
                let rec = s.resolve(&reference)?.clone();
                let tags = s.tags_of(&rec.id);
                let mut out = Vec::new();
                // A tag that is not the only one: just untag.
                if let Ok(parsed) = Reference::parse(&reference) {
                    if let Some(t) = parsed.tagged().filter(|t| s.tags.get(t) == Some(&rec.id)) {
                        if tags.len() > 1 && parsed.digest().is_none() {
                            s.tags.remove(&t);
                            return Ok(vec![Removed::Untagged(t)]);
                        }
                    }
                }
                let by_id = Reference::parse(&reference)
                    .ok()
                    .and_then(|p| p.tagged())
                    .is_none_or(|t| s.tags.get(&t) != Some(&rec.id));
                if by_id && tags.len() > 1 && !force {
                    return Err(Error::conflict(
                        "image",
                        reference.clone(),
                        format!(
                            "image {} is referenced in multiple repositories ({}); remove the tags or force",
                            rec.id,
                            tags.join(", ")
                        ),
                    ));
                }
                let users: Vec<_> = crate::snapshot::read_records(&root)?
                    .into_iter()
                    .filter(|r| r.image_id == rec.id)
                    .map(|r| r.key)
                    .collect();
                if !users.is_empty() && !force {
                    return Err(Error::conflict(
                        "image",
                        reference.clone(),
                        format!("image {} is in use by container rootfs {}", rec.id, users.join(", ")),
                    ));
                }
                for t in tags {
                    s.tags.remove(&t);
                    out.push(Removed::Untagged(t));
                }
                for d in &rec.repo_digests {
                    out.push(Removed::Untagged(d.clone()));
                }
                s.images.remove(&rec.id);
                out.push(Removed::Deleted(rec.id.clone()));
                Ok(out)
            })
            .await?;
        if removed.iter().any(|r| matches!(r, Removed::Deleted(_))) {
            self.gc().await?;
        }
        Ok(removed)
    }

    async fn prepare_rootfs(&self, image: &str, key: &str, target: &Path) -> Result<Rootfs> {
        crate::snapshot::prepare(self, image, key, target).await
    }

    async fn remove_rootfs(&self, key: &str) -> Result<()> {
        crate::snapshot::remove(self, key).await
    }

    async fn commit(&self, request: engine_core::CommitRequest) -> Result<ImageInfo> {
        self.commit_image(request).await
    }

    async fn config_json(&self, reference: &str) -> Result<serde_json::Value> {
        let id = self.state().await?.resolve(reference)?.id.clone();
        let bytes = self.inner.blobs.read(&id)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::invalid(format!("image config {id}"), e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replace `state.json` under `root` as another process would (a new file
    /// renamed into place), with `tag` pointing at an image, `age` old.
    fn replace_state(root: &Path, tag: &str, age: std::time::Duration) {
        let mut state = State::default();
        state.tags.insert(tag.to_string(), "sha256:".to_string() + &"a".repeat(64));
        let tmp = root.join("state.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&state).unwrap()).unwrap();
        let f = std::fs::File::options().write(true).open(&tmp).unwrap();
        f.set_modified(std::time::SystemTime::now() - age).unwrap();
        drop(f);
        std::fs::rename(&tmp, root.join("state.json")).unwrap();
    }

    #[tokio::test]
    async fn state_follows_every_replacement_of_the_file() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        assert!(store.state().await.unwrap().tags.is_empty());
        let old = std::time::Duration::from_secs(30);
        // Settled files (trusted by their stamp once read), one after another.
        for tag in ["one:latest", "two:latest", "three:latest"] {
            replace_state(d.path(), tag, old);
            for _ in 0..2 {
                let tags: Vec<String> = store.state().await.unwrap().tags.into_keys().collect();
                assert_eq!(tags, [tag]);
            }
        }
        // A file written just now, then one with the same size at once.
        replace_state(d.path(), "four:latest", std::time::Duration::ZERO);
        assert!(store.state().await.unwrap().tags.contains_key("four:latest"));
        replace_state(d.path(), "five:latest", std::time::Duration::ZERO);
        assert!(store.state().await.unwrap().tags.contains_key("five:latest"));
        // Gone: an empty store again.
        std::fs::remove_file(d.path().join("state.json")).unwrap();
        assert!(store.state().await.unwrap().tags.is_empty());
    }
}
