//! Container root filesystems, behind the [`Snapshotter`] seam: the
//! `overlay2` snapshotter (an overlay mount of the image's layer snapshots
//! plus a writable upper dir, falling back to a copy where the mount fails)
//! and the `vfs` snapshotter (always a plain copy); and the way back, upper
//! dir to layer.

use crate::store::{blocking, RootfsRecord, Store};
use crate::sys;
use crate::unpack::OVERLAY_OPAQUE_XATTR;
use engine_core::{Error, ImageInfo, IoContext, PreparedSnapshot, Result, Rootfs, Snapshotter};
use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd};
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
    let mut last = None;
    for extra in [",index=off,redirect_dir=off", ""] {
        let data = sys::cstr(format!("{base}{extra}").as_bytes())?;
        match rustix::mount::mount("overlay", target, "overlay", rustix::mount::MountFlags::empty(), data.as_c_str()) {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e.into()),
        }
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
    let target = target.to_path_buf();
    let layer_dirs: Vec<PathBuf> = rec.layers.iter().map(|l| store.snapshot_dir(&l.chain_id)).collect::<Result<_>>()?;
    let (dir2, target2) = (dir.clone(), target.clone());
    let snapshotter = store.inner.snapshotter.clone();
    let made = blocking(move || {
        let (dir, target) = (dir2, target2);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).context(|| format!("remove stale {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).context(|| format!("create {}", dir.display()))?;
        snapshotter.prepare(&layer_dirs, &dir, &target)
    })
    .await;
    let snap = match made {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    let upper = snap.upper.clone();
    let overlay = snap.mounted;
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
    Ok(Rootfs::default().key(key.to_string()).path(target).upper(upper))
}

fn teardown(rec: &RootfsRecord, dir: &Path) -> Result<()> {
    unmount_or_clear(
        &PreparedSnapshot::default().target(rec.target.clone()).upper(rec.upper.clone()).mounted(rec.overlay),
    )?;
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

/// Unmount a mounted snapshot's target, or empty a copied one: the removal
/// shared by both snapshotters, so that a store reopened with the other
/// driver still removes what the first one made.
fn unmount_or_clear(snap: &PreparedSnapshot) -> Result<()> {
    if snap.mounted {
        use rustix::io::Errno;
        match rustix::mount::unmount(&snap.target, rustix::mount::UnmountFlags::DETACH) {
            Ok(()) | Err(Errno::INVAL) | Err(Errno::NOENT) => {}
            Err(e) => return Err(Error::io(format!("unmount {}", snap.target.display()), e.into())),
        }
    } else if let Ok(fd) = sys::open_dir(&snap.target) {
        for n in sys::list_dir(fd.as_fd()).context(|| format!("list {}", snap.target.display()))? {
            let c = sys::cstr(n.as_bytes()).map_err(|e| Error::io("remove", e))?;
            sys::remove_at(fd.as_fd(), &c).context(|| format!("clear {}", snap.target.display()))?;
        }
    }
    Ok(())
}

/// Create `target` and copy `layers` into it; on error, undo what was made.
fn prepare_copy(layers: &[PathBuf], target: &Path) -> Result<PreparedSnapshot> {
    let created_target = !target.exists();
    std::fs::create_dir_all(target).context(|| format!("create {}", target.display()))?;
    let snap = PreparedSnapshot::default().target(target.to_path_buf()).upper(target.to_path_buf()).mounted(false);
    if let Err(e) = copy_layers(layers, target) {
        let _ = unmount_or_clear(&snap);
        if created_target {
            let _ = std::fs::remove_dir(target);
        }
        return Err(e);
    }
    Ok(snap)
}

/// The name of the filesystem `path` is on, for `docker info`.
fn backing_filesystem(path: &Path) -> String {
    let Ok(st) = rustix::fs::statfs(path) else { return "unknown".into() };
    match st.f_type {
        0xef53 => "extfs".into(),
        0x5846_5342 => "xfs".into(),
        0x0102_1994 => "tmpfs".into(),
        0x9123_683e => "btrfs".into(),
        0x794c_7630 => "overlayfs".into(),
        m => format!("{m:#x}"),
    }
}

/// The default [`Snapshotter`], docker's `overlay2`: an overlay mount of the
/// layer directories (through short links in the store's `l/`, so that many
/// layers fit in one mount's options) with a private upper and work dir; a
/// commit takes the upper dir, the container's changes only. Where the
/// kernel refuses the mount (no overlayfs, an unsupported backing
/// filesystem) it copies the layers instead, as [`VfsSnapshotter`] does, and
/// says so in the log.
#[derive(Debug, Clone)]
pub struct OverlaySnapshotter {
    links: PathBuf,
}

impl OverlaySnapshotter {
    /// An overlay snapshotter making its short layer links in `links`.
    pub fn new(links: impl Into<PathBuf>) -> Self {
        OverlaySnapshotter { links: links.into() }
    }
}

impl Snapshotter for OverlaySnapshotter {
    fn name(&self) -> &str {
        "overlay2"
    }

    fn status(&self) -> Vec<(String, String)> {
        vec![
            ("Backing Filesystem".into(), backing_filesystem(&self.links)),
            ("Supports d_type".into(), "true".into()),
            ("Using metacopy".into(), "false".into()),
            ("Native Overlay Diff".into(), "true".into()),
        ]
    }

    fn prepare(&self, layers: &[PathBuf], dir: &Path, target: &Path) -> Result<PreparedSnapshot> {
        let mut lowers = Vec::new();
        for l in layers.iter().rev() {
            let name = l.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
            match name {
                Some(hex) if hex.len() >= 16 => {
                    let short = self.links.join(&hex[..16]);
                    if std::fs::symlink_metadata(&short).is_err() {
                        let _ = std::os::unix::fs::symlink(l, &short);
                    }
                    lowers.push(short);
                }
                _ => lowers.push(l.clone()),
            }
        }
        let upper = dir.join("upper");
        let work = dir.join("work");
        let empty = dir.join("empty");
        for d in [&upper, &work, &empty] {
            std::fs::create_dir_all(d).context(|| format!("create {}", d.display()))?;
        }
        let created_target = !target.exists();
        std::fs::create_dir_all(target).context(|| format!("create {}", target.display()))?;
        let lowers = if lowers.is_empty() { vec![empty] } else { lowers };
        match mount_overlay(&lowers, &upper, &work, target) {
            Ok(()) => Ok(PreparedSnapshot::default().target(target.to_path_buf()).upper(upper).mounted(true)),
            Err(e) => {
                tracing::warn!(target = %target.display(), "overlay mount failed ({e}); copying the layers instead");
                if created_target {
                    let _ = std::fs::remove_dir(target);
                }
                prepare_copy(layers, target)
            }
        }
    }

    fn remove(&self, snapshot: &PreparedSnapshot) -> Result<()> {
        unmount_or_clear(snapshot)
    }
}

/// Docker's `vfs` [`Snapshotter`], for hosts without overlayfs (or where a
/// container's root filesystem must be a plain directory): `prepare` copies
/// the layers, base first, into the root filesystem, applying their
/// whiteouts; removal deletes the copy. Nothing is mounted, so nothing needs
/// unmounting. A commit writes the whole root filesystem as one full-copy
/// layer over the image's (correct, larger than overlay's diff: docker's
/// vfs computes a naive diff instead). Costs a full copy per container, in
/// time and disk.
#[derive(Debug, Clone, Default)]
pub struct VfsSnapshotter;

impl Snapshotter for VfsSnapshotter {
    fn name(&self) -> &str {
        "vfs"
    }

    fn prepare(&self, layers: &[PathBuf], _dir: &Path, target: &Path) -> Result<PreparedSnapshot> {
        prepare_copy(layers, target)
    }

    fn remove(&self, snapshot: &PreparedSnapshot) -> Result<()> {
        unmount_or_clear(snapshot)
    }
}

/// Whether a non-directory entry differs between the parent and the
/// container: type, mode, owner, size, mtime, device number or link target.
fn entry_differs(
    pdir: BorrowedFd<'_>,
    cdir: BorrowedFd<'_>,
    c: &std::ffi::CStr,
    p: &sys::Stat,
    n: &sys::Stat,
) -> std::io::Result<bool> {
    let fmt = n.st_mode & libc::S_IFMT;
    if fmt != p.st_mode & libc::S_IFMT
        || n.st_mode != p.st_mode
        || (n.st_uid, n.st_gid) != (p.st_uid, p.st_gid)
        || n.st_size != p.st_size
        || (n.st_mtime, n.st_mtime_nsec) != (p.st_mtime, p.st_mtime_nsec)
        || n.st_rdev != p.st_rdev
    {
        return Ok(true);
    }
    if fmt == libc::S_IFLNK {
        return Ok(sys::readlink_at(pdir, c)? != sys::readlink_at(cdir, c)?);
    }
    Ok(false)
}

/// Write into `out` (an empty directory) what turns the tree `parent` into
/// the tree `cur`, in overlayfs whiteout form: added and changed entries
/// copied (a new directory whole), deleted ones as character devices 0:0,
/// directories whose own metadata changed recreated with it. Docker's
/// "naive diff", for snapshotters without an upper dir.
fn naive_diff(
    pdir: BorrowedFd<'_>,
    cdir: BorrowedFd<'_>,
    odir: BorrowedFd<'_>,
    root: BorrowedFd<'_>,
    rel: &[u8],
) -> std::io::Result<()> {
    let mut links = HashMap::new();
    for n in sys::list_dir(cdir)? {
        let nb = n.as_bytes();
        let c = sys::cstr(nb)?;
        let Some(st) = sys::lstat_at(cdir, &c)? else { continue };
        let before = sys::lstat_at(pdir, &c)?;
        match before {
            Some(p) if sys::is_dir(&st) && sys::is_dir(&p) => {
                let mut path = rel.to_vec();
                if !path.is_empty() {
                    path.push(b'/');
                }
                path.extend_from_slice(nb);
                sys::mkdir_at(odir, &c, 0o700)?;
                let (ps, cs, os) =
                    (sys::open_dir_at(pdir, &c)?, sys::open_dir_at(cdir, &c)?, sys::open_dir_at(odir, &c)?);
                naive_diff(ps.as_fd(), cs.as_fd(), os.as_fd(), root, &path)?;
                let meta_changed = (st.st_mode, st.st_uid, st.st_gid) != (p.st_mode, p.st_uid, p.st_gid);
                if !meta_changed && sys::list_dir(os.as_fd())?.is_empty() {
                    sys::unlink_at(odir, &c, true)?;
                } else {
                    copy_meta(odir, &c, &st, false)?;
                }
            }
            Some(p) if !sys::is_dir(&st) && !sys::is_dir(&p) && !entry_differs(pdir, cdir, &c, &p, &st)? => {}
            _ => copy_entry(cdir, odir, root, rel, nb, &mut links)?,
        }
    }
    for n in sys::list_dir(pdir)? {
        let c = sys::cstr(n.as_bytes())?;
        if sys::lstat_at(cdir, &c)?.is_none() {
            sys::mknod_at(odir, &c, libc::S_IFCHR | 0o600, 0)?;
        }
    }
    Ok(())
}

/// The container's changes against its image, as a directory in overlayfs
/// whiteout form: the upper dir of a mounted snapshot as it is; for a copy,
/// a naive diff against a fresh copy of the image's layers written under
/// `scratch` (which the caller removes).
fn changes(layers: &[PathBuf], snap: &PreparedSnapshot, scratch: &Path) -> Result<PathBuf> {
    if snap.mounted {
        return Ok(snap.upper.clone());
    }
    let parent = scratch.join("parent");
    let out = scratch.join("diff");
    for d in [&parent, &out] {
        std::fs::create_dir_all(d).context(|| format!("create {}", d.display()))?;
    }
    copy_layers(layers, &parent)?;
    let (p, c, o) = (
        sys::open_dir(&parent).context(|| format!("open {}", parent.display()))?,
        sys::open_dir(&snap.upper).context(|| format!("open {}", snap.upper.display()))?,
        sys::open_dir(&out).context(|| format!("open {}", out.display()))?,
    );
    naive_diff(p.as_fd(), c.as_fd(), o.as_fd(), o.as_fd(), b"")
        .context(|| format!("compare {} with its image", snap.upper.display()))?;
    Ok(out)
}

/// Copy layer dirs (base first) into `target`, applying whiteouts and
/// opaque dirs: the fallback when overlay cannot be mounted.
pub fn copy_layers(layers: &[PathBuf], target: &Path) -> Result<()> {
    let dst = sys::open_dir(target).context(|| format!("open {}", target.display()))?;
    for l in layers {
        let src = sys::open_dir(l).context(|| format!("open {}", l.display()))?;
        let mut links = HashMap::new();
        copy_dir(src.as_fd(), dst.as_fd(), dst.as_fd(), b"", &mut links)
            .context(|| format!("copy layer {} into {}", l.display(), target.display()))?;
    }
    Ok(())
}

fn copy_meta(dir: BorrowedFd<'_>, name: &std::ffi::CStr, st: &sys::Stat, symlink: bool) -> std::io::Result<()> {
    sys::chown_at(dir, name, st.st_uid, st.st_gid)?;
    if !symlink {
        sys::chmod_at(dir, name, st.st_mode & 0o7777)?;
    }
    sys::utimes_at(dir, name, st.st_mtime)
}

fn copy_xattrs(sdir: BorrowedFd<'_>, ddir: BorrowedFd<'_>, name: &[u8]) -> std::io::Result<()> {
    let dp = sys::fd_path(ddir, name);
    for (k, v) in sys::llistxattr(&sys::fd_path(sdir, name))? {
        if !k.starts_with(b"trusted.overlay.") {
            let _ = sys::lsetxattr(&dp, &k, &v);
        }
    }
    Ok(())
}

fn copy_dir(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    root: BorrowedFd<'_>,
    rel: &[u8],
    links: &mut HashMap<(u64, u64), Vec<u8>>,
) -> std::io::Result<()> {
    for n in sys::list_dir(src)? {
        copy_entry(src, dst, root, rel, n.as_bytes(), links)?;
    }
    Ok(())
}

/// Copy the entry `nb` of `src` (at `rel` under the copy's root) into `dst`,
/// a whole subtree for a directory.
fn copy_entry(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    root: BorrowedFd<'_>,
    rel: &[u8],
    nb: &[u8],
    links: &mut HashMap<(u64, u64), Vec<u8>>,
) -> std::io::Result<()> {
    {
        let c = sys::cstr(nb)?;
        let Some(st) = sys::lstat_at(src, &c)? else { return Ok(()) };
        let mut path = rel.to_vec();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(nb);
        let fmt = st.st_mode & libc::S_IFMT;
        if fmt == libc::S_IFCHR && st.st_rdev == 0 {
            sys::remove_at(dst, &c)?;
            return Ok(());
        }
        if fmt == libc::S_IFDIR {
            let opaque = sys::lgetxattr(&sys::fd_path(src, nb), OVERLAY_OPAQUE_XATTR.as_bytes())?;
            match sys::lstat_at(dst, &c)? {
                Some(d) if sys::is_dir(&d) => {
                    if opaque.as_deref() == Some(b"y") {
                        let sub = sys::open_dir_at(dst, &c)?;
                        for child in sys::list_dir(sub.as_fd())? {
                            sys::remove_at(sub.as_fd(), &sys::cstr(child.as_bytes())?)?;
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
            copy_dir(s2.as_fd(), d2.as_fd(), root, &path, links)?;
            copy_xattrs(src, dst, nb)?;
            copy_meta(dst, &c, &st, false)?;
            return Ok(());
        }
        sys::remove_at(dst, &c)?;
        match fmt {
            libc::S_IFREG => {
                if st.st_nlink > 1 {
                    if let Some(first) = links.get(&(st.st_dev, st.st_ino)) {
                        let comps = crate::unpack::clean_path(first);
                        if let Some((last, parent)) = comps.split_last() {
                            let pd = sys::open_dir_in_root(root, &parent.join(&b'/'))?;
                            sys::link_at(pd.as_fd(), &sys::cstr(last)?, dst, &c)?;
                            return Ok(());
                        }
                    }
                    links.insert((st.st_dev, st.st_ino), path.clone());
                }
                let mut sf = sys::open_file_at(src, &c)?;
                let mut df = sys::open_file_excl(dst, &c)?;
                std::io::copy(&mut sf, &mut df)?;
            }
            libc::S_IFLNK => {
                let buf = sys::readlink_at(src, &c)?;
                sys::symlink_at(&sys::cstr(&buf)?, dst, &c)?;
                sys::chown_at(dst, &c, st.st_uid, st.st_gid)?;
                sys::utimes_at(dst, &c, st.st_mtime)?;
                return Ok(());
            }
            libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
                sys::mknod_at(dst, &c, fmt | 0o600, st.st_rdev)?;
            }
            _ => return Ok(()),
        }
        copy_xattrs(src, dst, nb)?;
        copy_meta(dst, &c, &st, false)?;
    }
    Ok(())
}

/// A directory removed with everything in it when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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
        let layers = self.rootfs_layers(&rec)?;
        let scratch = self.scratch_dir(key)?;
        let dest = dest.to_path_buf();
        blocking(move || {
            let r = (|| {
                let dir = changes(&layers, &rec.snapshot(), scratch.path())?;
                let f = std::fs::File::create(&dest).context(|| format!("create {}", dest.display()))?;
                let w =
                    crate::diff::write_layer_tar(&dir, crate::digest::HashingWriter::new(std::io::BufWriter::new(f)))?;
                let (mut bw, digest, _) = w.finish();
                std::io::Write::flush(&mut bw).context(|| format!("write {}", dest.display()))?;
                Ok(digest)
            })();
            drop(scratch);
            r
        })
        .await
    }

    /// The unpacked layer directories of a root filesystem's image, base first.
    fn rootfs_layers(&self, rec: &RootfsRecord) -> Result<Vec<PathBuf>> {
        rec.chain_ids.iter().map(|c| self.snapshot_dir(c)).collect()
    }

    /// A temporary directory in the store for a commit's naive diff
    /// (removed on drop; a crash leaves it to the next open's cleanup of `tmp/`).
    fn scratch_dir(&self, key: &str) -> Result<Scratch> {
        let dir = self.blobs().tmp_dir().join(format!("diff-{key}-{}", &engine_core::random_hex64()[..12]));
        std::fs::create_dir_all(&dir).context(|| format!("create {}", dir.display()))?;
        Ok(Scratch(dir))
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
        self.commit_image(
            engine_core::CommitRequest::default()
                .rootfs(Some(key.to_string()))
                .config(config)
                .created_by(comment.to_string())
                .tag(tag.map(str::to_string)),
        )
        .await
    }

    /// [`engine_core::ImageStore::commit`]: a new image from a parent (or
    /// nothing) plus, with a root filesystem, its upper dir as a layer.
    pub async fn commit_image(&self, req: engine_core::CommitRequest) -> Result<ImageInfo> {
        // The container's changes: its upper dir when overlay was mounted,
        // else a diff against a fresh copy of its image's layers (vfs, or the
        // overlay driver's copy fallback), so deletions become whiteouts.
        let upper = match &req.rootfs {
            Some(key) => {
                let rec = self.rootfs(key).await?;
                let layers = self.rootfs_layers(&rec)?;
                Some((rec, layers, self.scratch_dir(key)?))
            }
            None => None,
        };
        let tagged = match &req.tag {
            Some(t) => Some(crate::Reference::parse(t)?.tagged().ok_or_else(|| Error::invalid("tag", t.to_string()))?),
            None => None,
        };
        let _g = self.lease().await?;
        let parent_ref = upper.as_ref().map(|(r, _, _)| r.image_id.clone()).or_else(|| req.parent.clone());
        let parent = match &parent_ref {
            Some(p) => Some(self.state().await?.resolve(p)?.clone()),
            None => None,
        };
        let blobs = self.inner.blobs.clone();
        let manifest = blocking(move || {
            let layer = match &upper {
                Some((rec, layers, scratch)) => {
                    let dir = changes(layers, &rec.snapshot(), scratch.path())?;
                    Some(crate::build::store_layer_from_dir(&blobs, &dir, crate::unpack::Compression::Gzip)?)
                }
                None => None,
            };
            drop(upper);
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
            cfg["container_config"] =
                step_container_config(&cfg["config"], &req.created_by, parent.as_ref().map(|p| p.id.as_str()));
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

/// The `container_config` dockerd writes for a committed step: the new
/// image's run config with the command the step ran (`["/bin/sh", "-c",
/// "#(nop) ", "CMD [\"sh\"]"]` for a metadata step) and its parent image.
fn step_container_config(config: &serde_json::Value, created_by: &str, parent: Option<&str>) -> serde_json::Value {
    let mut cc = if config.is_object() { config.clone() } else { serde_json::json!({}) };
    if let Some(rest) = created_by.strip_prefix("/bin/sh -c ") {
        cc["Cmd"] = match rest.strip_prefix("#(nop) ") {
            Some(nop) => serde_json::json!(["/bin/sh", "-c", "#(nop) ", nop.trim_start()]),
            None => serde_json::json!(["/bin/sh", "-c", rest]),
        };
    }
    cc["Image"] = serde_json::json!(parent.unwrap_or(""));
    cc
}
