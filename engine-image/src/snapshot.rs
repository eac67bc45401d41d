//! Container root filesystems: an overlay mount of the image's layer
//! snapshots plus a writable upper dir, or a copy where overlay is not
//! available; and the way back, upper dir to layer.

use crate::store::{blocking, RootfsRecord, Store};
use crate::sys;
use crate::unpack::OVERLAY_OPAQUE_XATTR;
use engine_core::{Error, ImageInfo, IoContext, Result, Rootfs};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The record of a prepared root filesystem, inside its own directory.
const RECORD_FILE: &str = "rootfs.json";

/// Every root filesystem record under the store `root` (directories without
/// one, a prepare or removal cut short, are skipped).
pub(crate) fn read_records(root: &Path) -> Result<Vec<RootfsRecord>> {
    let dir = root.join("rootfs");
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("list {}", dir.display()), e)),
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        if let Some(r) = read_record(&e.path())? {
            out.push(r);
        }
    }
    Ok(out)
}

/// The record in a rootfs directory; `None` when there is none.
fn read_record(dir: &Path) -> Result<Option<RootfsRecord>> {
    let p = dir.join(RECORD_FILE);
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::Other(format!("corrupt rootfs record {}: {e}", p.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("read {}", p.display()), e)),
    }
}

fn validate_key(key: &str) -> Result<()> {
    engine_core::ContainerId::new(key).map_err(|e| Error::invalid(format!("snapshot key {key:?}"), e.to_string()))?;
    Ok(())
}

fn mount_overlay(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> std::io::Result<()> {
    let lower = lowers.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":");
    let base = format!("lowerdir={lower},upperdir={},workdir={}", upper.display(), work.display());
    let src = sys::cstr(b"overlay")?;
    let tgt = sys::cstr(target.as_os_str().as_bytes())?;
    let mut last = None;
    for extra in [",index=off,redirect_dir=off", ""] {
        let data = sys::cstr(format!("{base}{extra}").as_bytes())?;
        let r = unsafe { libc::mount(src.as_ptr(), tgt.as_ptr(), src.as_ptr(), 0, data.as_ptr() as *const _) };
        if r == 0 {
            return Ok(());
        }
        last = Some(std::io::Error::last_os_error());
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("mount failed")))
}

pub(crate) async fn prepare(store: &Store, image: &str, key: &str, target: &Path) -> Result<Rootfs> {
    validate_key(key)?;
    let lock = store.key_lock(&format!("rootfs:{key}"));
    let _k = lock.lock().await;
    let _g = store.lease().await?;
    let s = store.state().await?;
    let rec = s.resolve(image)?.clone();
    let root = store.root().to_path_buf();
    let dir = root.join("rootfs").join(key);
    if dir.join(RECORD_FILE).exists() {
        return Err(Error::conflict("rootfs", key, "a root filesystem with this key already exists"));
    }
    for l in &rec.layers {
        store.ensure_snapshot(l, &None).await?;
    }
    let lowers: Vec<PathBuf> = rec
        .layers
        .iter()
        .rev()
        .map(|l| {
            let hex = &l.chain_id[7..];
            let short = root.join("l").join(&hex[..16]);
            if std::fs::symlink_metadata(&short).is_err() {
                let _ = std::os::unix::fs::symlink(format!("../snapshots/{hex}/fs"), &short);
            }
            short
        })
        .collect();
    let target = target.to_path_buf();
    let layer_dirs: Vec<PathBuf> = rec.layers.iter().map(|l| store.snapshot_dir(&l.chain_id)).collect::<Result<_>>()?;
    let (dir2, target2) = (dir.clone(), target.clone());
    let force_copy = store.inner.force_copy;
    let made = blocking(move || {
        let (dir, target) = (dir2, target2);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).context(|| format!("remove stale {}", dir.display()))?;
        }
        let upper = dir.join("upper");
        let work = dir.join("work");
        let empty = dir.join("empty");
        for d in [&upper, &work, &empty] {
            std::fs::create_dir_all(d).context(|| format!("create {}", d.display()))?;
        }
        let created_target = !target.exists();
        std::fs::create_dir_all(&target).context(|| format!("create {}", target.display()))?;
        let lowers = if lowers.is_empty() { vec![empty] } else { lowers };
        let mounted = if force_copy {
            Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "copying asked for"))
        } else {
            mount_overlay(&lowers, &upper, &work, &target)
        };
        match mounted {
            Ok(()) => Ok((true, upper)),
            Err(e) => {
                tracing::warn!(target = %target.display(), "overlay mount failed ({e}); copying the layers instead");
                let r = copy_layers(&layer_dirs, &target);
                if r.is_err() {
                    let _ = std::fs::remove_dir_all(&dir);
                    if created_target {
                        let _ = std::fs::remove_dir_all(&target);
                    }
                }
                r.map(|_| (false, target.clone()))
            }
        }
    })
    .await;
    let (overlay, upper) = match made {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    let record = RootfsRecord {
        key: key.to_string(),
        image_id: rec.id.clone(),
        chain_ids: rec.layers.iter().map(|l| l.chain_id.clone()).collect(),
        target: target.clone(),
        upper: upper.clone(),
        overlay,
    };
    let json = serde_json::to_vec(&record).map_err(|e| Error::Other(format!("encode rootfs record: {e}")))?;
    let path = dir.join(RECORD_FILE);
    let saved = blocking(move || crate::blobs::write_atomic(&path, &json)).await;
    if let Err(e) = saved {
        let _ = teardown(&record, &dir);
        return Err(e);
    }
    Ok(Rootfs { key: key.to_string(), path: target, upper })
}

fn teardown(rec: &RootfsRecord, dir: &Path) -> Result<()> {
    if rec.overlay {
        let t = sys::cstr(rec.target.as_os_str().as_bytes()).map_err(|e| Error::io("unmount", e))?;
        let r = unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) {
                return Err(Error::io(format!("unmount {}", rec.target.display()), e));
            }
        }
    } else if let Ok(fd) = sys::open_dir(&rec.target) {
        for n in sys::list_dir(fd.as_raw_fd()).context(|| format!("list {}", rec.target.display()))? {
            let c = sys::cstr(n.as_bytes()).map_err(|e| Error::io("remove", e))?;
            sys::remove_at(fd.as_raw_fd(), &c).context(|| format!("clear {}", rec.target.display()))?;
        }
    }
    // The record goes last: until then a retry knows what to undo.
    let gone = |r: std::io::Result<()>| match r {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    };
    let res = (|| {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.file_name() != RECORD_FILE {
                    let p = e.path();
                    gone(if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) })?;
                }
            }
        }
        gone(std::fs::remove_file(dir.join(RECORD_FILE)))?;
        gone(std::fs::remove_dir(dir))
    })();
    res.map_err(|e| Error::io(format!("remove {}", dir.display()), e))
}

pub(crate) async fn remove(store: &Store, key: &str) -> Result<()> {
    validate_key(key)?;
    let lock = store.key_lock(&format!("rootfs:{key}"));
    let _k = lock.lock().await;
    let dir = store.root().join("rootfs").join(key);
    let d2 = dir.clone();
    let rec = match blocking(move || read_record(&d2)).await? {
        Some(r) => r,
        None => {
            // A prepare cut short before its record: nothing is mounted.
            if dir.exists() {
                std::fs::remove_dir_all(&dir).context(|| format!("remove {}", dir.display()))?;
            }
            return Err(Error::not_found("rootfs", key));
        }
    };
    let r2 = rec.clone();
    blocking(move || teardown(&r2, &dir)).await?;
    // The image may have been removed (forced) while this rootfs used it.
    if !store.state().await?.images.contains_key(&rec.image_id) {
        store.gc().await?;
    }
    Ok(())
}

/// Copy layer dirs (base first) into `target`, applying whiteouts and
/// opaque dirs: the fallback when overlay cannot be mounted.
pub fn copy_layers(layers: &[PathBuf], target: &Path) -> Result<()> {
    let dst = sys::open_dir(target).context(|| format!("open {}", target.display()))?;
    for l in layers {
        let src = sys::open_dir(l).context(|| format!("open {}", l.display()))?;
        let mut links = HashMap::new();
        copy_dir(src.as_raw_fd(), dst.as_raw_fd(), dst.as_raw_fd(), b"", &mut links)
            .context(|| format!("copy layer {} into {}", l.display(), target.display()))?;
    }
    Ok(())
}

fn copy_meta(dir: RawFd, name: &std::ffi::CStr, st: &libc::stat, symlink: bool) -> std::io::Result<()> {
    sys::chown_at(dir, name, st.st_uid, st.st_gid)?;
    if !symlink {
        let r = unsafe { libc::fchmodat(dir, name.as_ptr(), st.st_mode & 0o7777, 0) };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    sys::utimes_at(dir, name, st.st_mtime)
}

fn copy_xattrs(sdir: RawFd, ddir: RawFd, name: &[u8]) -> std::io::Result<()> {
    let dp = sys::fd_path(ddir, name);
    for (k, v) in sys::llistxattr(&sys::fd_path(sdir, name))? {
        if !k.starts_with(b"trusted.overlay.") {
            let _ = sys::lsetxattr(&dp, &k, &v);
        }
    }
    Ok(())
}

fn copy_dir(
    src: RawFd,
    dst: RawFd,
    root: RawFd,
    rel: &[u8],
    links: &mut HashMap<(u64, u64), Vec<u8>>,
) -> std::io::Result<()> {
    for n in sys::list_dir(src)? {
        let nb = n.as_bytes();
        let c = sys::cstr(nb)?;
        let Some(st) = sys::lstat_at(src, &c)? else { continue };
        let mut path = rel.to_vec();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(nb);
        let fmt = st.st_mode & libc::S_IFMT;
        if fmt == libc::S_IFCHR && st.st_rdev == 0 {
            sys::remove_at(dst, &c)?;
            continue;
        }
        if fmt == libc::S_IFDIR {
            let opaque = sys::lgetxattr(&sys::fd_path(src, nb), OVERLAY_OPAQUE_XATTR.as_bytes())?;
            match sys::lstat_at(dst, &c)? {
                Some(d) if sys::is_dir(&d) => {
                    if opaque.as_deref() == Some(b"y") {
                        let sub = sys::open_dir_at(dst, &c)?;
                        for child in sys::list_dir(sub.as_raw_fd())? {
                            sys::remove_at(sub.as_raw_fd(), &sys::cstr(child.as_bytes())?)?;
                        }
                    }
                }
                Some(_) => {
                    sys::remove_at(dst, &c)?;
                    sys::mkdir_at(dst, &c, 0o700)?;
                }
                None => sys::mkdir_at(dst, &c, 0o700)?,
            }
            let s2 = sys::open_dir_at(src, &c)?;
            let d2 = sys::open_dir_at(dst, &c)?;
            copy_dir(s2.as_raw_fd(), d2.as_raw_fd(), root, &path, links)?;
            copy_xattrs(src, dst, nb)?;
            copy_meta(dst, &c, &st, false)?;
            continue;
        }
        sys::remove_at(dst, &c)?;
        match fmt {
            libc::S_IFREG => {
                if st.st_nlink > 1 {
                    if let Some(first) = links.get(&(st.st_dev, st.st_ino)) {
                        let comps = crate::unpack::clean_path(first);
                        if let Some((last, parent)) = comps.split_last() {
                            let pd = sys::open_dir_in_root(root, &parent.join(&b'/'))?;
                            sys::link_at(pd.as_raw_fd(), &sys::cstr(last)?, dst, &c)?;
                            continue;
                        }
                    }
                    links.insert((st.st_dev, st.st_ino), path.clone());
                }
                let raw = unsafe { libc::openat(src, c.as_ptr(), libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
                if raw < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let mut sf = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(raw) };
                let mut df = sys::open_file_excl(dst, &c)?;
                std::io::copy(&mut sf, &mut df)?;
            }
            libc::S_IFLNK => {
                let mut buf = vec![0u8; 4096];
                let n = unsafe { libc::readlinkat(src, c.as_ptr(), buf.as_mut_ptr() as *mut _, buf.len()) };
                if n < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                buf.truncate(n as usize);
                sys::symlink_at(&sys::cstr(&buf)?, dst, &c)?;
                sys::chown_at(dst, &c, st.st_uid, st.st_gid)?;
                sys::utimes_at(dst, &c, st.st_mtime)?;
                continue;
            }
            libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
                sys::mknod_at(dst, &c, fmt | 0o600, st.st_rdev)?;
            }
            _ => continue,
        }
        copy_xattrs(src, dst, nb)?;
        copy_meta(dst, &c, &st, false)?;
    }
    Ok(())
}

impl Store {
    /// The prepared root filesystem recorded under `key`.
    pub async fn rootfs(&self, key: &str) -> Result<RootfsRecord> {
        validate_key(key)?;
        let dir = self.root().join("rootfs").join(key);
        blocking(move || read_record(&dir)).await?.ok_or_else(|| Error::not_found("rootfs", key))
    }

    /// Write the changes a container made (its upper dir) as a layer tar to
    /// `dest`. For a copied (non-overlay) rootfs the whole tree is written.
    pub async fn diff_rootfs(&self, key: &str, dest: &Path) -> Result<String> {
        let rec = self.rootfs(key).await?;
        let dest = dest.to_path_buf();
        blocking(move || {
            let f = std::fs::File::create(&dest).context(|| format!("create {}", dest.display()))?;
            let w = crate::diff::write_layer_tar(
                &rec.upper,
                crate::digest::HashingWriter::new(std::io::BufWriter::new(f)),
            )?;
            let (mut bw, digest, _) = w.finish();
            std::io::Write::flush(&mut bw).context(|| format!("write {}", dest.display()))?;
            Ok(digest)
        })
        .await
    }

    /// Make a new image from a container's root filesystem: the image it was
    /// prepared from plus one layer holding the container's changes, tagged
    /// `tag` if given. `config` replaces the parent's run config when given.
    pub async fn commit_rootfs(
        &self,
        key: &str,
        tag: Option<&str>,
        config: Option<oci_spec::image::Config>,
        comment: &str,
    ) -> Result<ImageInfo> {
        let config = match config {
            Some(c) => Some(serde_json::to_value(c).map_err(|e| Error::Other(e.to_string()))?),
            None => None,
        };
        self.commit_image(engine_core::CommitRequest {
            rootfs: Some(key.to_string()),
            config,
            created_by: comment.to_string(),
            tag: tag.map(str::to_string),
            ..Default::default()
        })
        .await
    }

    /// [`engine_core::ImageStore::commit`]: a new image from a parent (or
    /// nothing) plus, with a root filesystem, its upper dir as a layer.
    pub async fn commit_image(&self, req: engine_core::CommitRequest) -> Result<ImageInfo> {
        let upper = match &req.rootfs {
            Some(key) => Some(self.rootfs(key).await?),
            None => None,
        };
        let tagged = match &req.tag {
            Some(t) => Some(crate::Reference::parse(t)?.tagged().ok_or_else(|| Error::invalid("tag", t.to_string()))?),
            None => None,
        };
        let _g = self.lease().await?;
        let parent_ref = upper.as_ref().map(|r| r.image_id.clone()).or_else(|| req.parent.clone());
        let parent = match &parent_ref {
            Some(p) => Some(self.state().await?.resolve(p)?.clone()),
            None => None,
        };
        let blobs = self.inner.blobs.clone();
        let manifest = blocking(move || {
            let layer = match &upper {
                Some(rec) => {
                    Some(crate::build::store_layer_from_dir(&blobs, &rec.upper, crate::unpack::Compression::Gzip)?)
                }
                None => None,
            };
            let (mut cfg, mut layers) = match &parent {
                Some(p) => {
                    let cfg: serde_json::Value = serde_json::from_slice(&blobs.read(&p.id)?)
                        .map_err(|e| Error::invalid("image config", e.to_string()))?;
                    let pm: crate::media::Manifest = serde_json::from_slice(&blobs.read(&p.manifest)?)
                        .map_err(|e| Error::invalid("manifest", e.to_string()))?;
                    (cfg, pm.layers)
                }
                None => {
                    let p = crate::media::host_platform();
                    let cfg = serde_json::json!({
                        "architecture": p.architecture, "os": p.os, "config": {},
                        "rootfs": {"type": "layers", "diff_ids": []}, "history": [],
                    });
                    (cfg, Vec::new())
                }
            };
            let now = engine_core::time::format_rfc3339(std::time::SystemTime::now());
            cfg["created"] = serde_json::json!(now);
            if let Some(c) = req.config {
                cfg["config"] = c;
            }
            let mut entry = serde_json::json!({"created": now, "created_by": req.created_by});
            if let Some(a) = &req.author {
                cfg["author"] = serde_json::json!(a);
                entry["author"] = serde_json::json!(a);
            }
            if let Some(c) = &req.comment {
                entry["comment"] = serde_json::json!(c);
            }
            match layer {
                Some((desc, diff_id)) => {
                    if !cfg["rootfs"]["diff_ids"].is_array() {
                        cfg["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": []});
                    }
                    if let Some(ids) = cfg["rootfs"]["diff_ids"].as_array_mut() {
                        ids.push(serde_json::json!(diff_id));
                    }
                    layers.push(desc);
                }
                None => entry["empty_layer"] = serde_json::json!(true),
            }
            if !cfg["history"].is_array() {
                cfg["history"] = serde_json::json!([]);
            }
            if let Some(h) = cfg["history"].as_array_mut() {
                h.push(entry);
            }
            let cbytes = serde_json::to_vec(&cfg).map_err(|e| Error::Other(e.to_string()))?;
            let cdigest = blobs.write_bytes(&cbytes, None)?;
            let m = crate::media::Manifest {
                schema_version: 2,
                media_type: Some(crate::media::OCI_MANIFEST.into()),
                config: crate::media::Descriptor::new(crate::media::OCI_CONFIG, &cdigest, cbytes.len() as u64),
                layers,
                annotations: None,
            };
            blobs.write_bytes(&serde_json::to_vec(&m).map_err(|e| Error::Other(e.to_string()))?, None)
        })
        .await?;
        self.register(&manifest, tagged.into_iter().collect(), vec![], vec![], &None).await
    }
}
