//! Directories under the state root that containers share read-only, so that
//! masked directories and a cgroup v1 `/sys/fs/cgroup` add no superblock to a
//! container: every superblock registers a memcg-aware shrinker, and each
//! memory cgroup of the machine holds memory per shrinker id ever used.
//!
//! The parent clones each directory as a detached mount (`open_tree` with
//! `OPEN_TREE_CLONE`) before the init is cloned; the init attaches the
//! clone with `move_mount` (it needs no path on the host, so this works
//! after pivot_root and in a user namespace that cannot search the state
//! root). A detached clone vanishes with its last descriptor, so a failed
//! create leaves nothing.

use engine_core::{Error, Result};
use rustix::mount::{MoveMountFlags, OpenTreeFlags};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The empty directory shown at masked directories (`@` is not allowed in a
/// container id, so it never collides with a container's state dir).
pub const EMPTY_DIR: &str = "@empty";
/// The prefix of the cgroup v1 skeletons, `@cgroup-skel-<hash of the layout>`.
pub const CGROUP_SKEL_PREFIX: &str = "@cgroup-skel-";

/// `MS_PRIVATE` as `struct mount_attr`'s `propagation` takes it.
const MS_PRIVATE: u64 = 0x4_0000;

/// The mount flags a shared directory is always attached with.
pub const SHARED_FLAGS: nix::mount::MsFlags = nix::mount::MsFlags::MS_RDONLY
    .union(nix::mount::MsFlags::MS_NOSUID)
    .union(nix::mount::MsFlags::MS_NODEV)
    .union(nix::mount::MsFlags::MS_NOEXEC);

/// Detached clones of the shared directories a container's init attaches.
/// `None` where the kernel cannot clone (`ENOSYS`, `EPERM`): the init then
/// mounts a tmpfs as before.
#[derive(Debug, Default)]
pub struct SharedTrees {
    /// A clone of `<root>/@empty`, for masked directories.
    pub empty: Option<OwnedFd>,
    /// A clone of the cgroup v1 skeleton and the hierarchy directory names it holds.
    pub cgroup: Option<(OwnedFd, Vec<String>)>,
}

impl SharedTrees {
    /// The clones a container built from `plan` uses, made in the runtime's
    /// state `root`: the empty directory when it masks paths, the cgroup v1
    /// skeleton when it has a read-only cgroup mount on a v1 (or hybrid)
    /// host and the state root is on a tmpfs (as `/run` usually is; elsewhere
    /// /sys/fs/cgroup stays a tmpfs of its own). The directories are made on first use and checked every time
    /// (a bad one is refused, naming it); the clones are read-only.
    pub fn prepare(root: &Path, plan: &super::rootfs::RootfsPlan) -> Result<SharedTrees> {
        let mut t = SharedTrees::default();
        if !plan.mount_ns {
            return Ok(t);
        }
        if !plan.masked.is_empty() {
            let dir = empty_dir(root)?;
            t.empty = clone_tree(&dir, &root.join(EMPTY_DIR))?;
        }
        let ro_cgroup = plan.mounts.iter().any(|m| {
            (m.fstype == "cgroup" || m.fstype == "cgroup2") && m.flags.contains(nix::mount::MsFlags::MS_RDONLY)
        });
        // Only from a tmpfs: /sys/fs/cgroup must still look like one to
        // `statfs` (systemd in a container tells v1 from v2 by it).
        if ro_cgroup && on_tmpfs(root) {
            let own =
                std::fs::read_to_string("/proc/self/cgroup").map_err(|e| Error::io("read /proc/self/cgroup", e))?;
            let lines = parse_proc_cgroup(&own);
            if lines.iter().any(|(c, _)| !c.is_empty()) {
                let names: Vec<String> = lines.iter().map(|(c, _)| hierarchy_name(c).0).collect();
                let (dir, path) = cgroup_skeleton(root, &names)?;
                t.cgroup = clone_tree(&dir, &path)?.map(|fd| (fd, names));
            }
        }
        Ok(t)
    }

    /// The descriptors as the init sees them (its copies, closed by the init after use).
    pub fn raw(&self) -> RawTrees {
        RawTrees {
            empty: self.empty.as_ref().map(|f| f.as_raw_fd()),
            cgroup: self.cgroup.as_ref().map(|(f, names)| (f.as_raw_fd(), names.clone())),
        }
    }
}

/// [`SharedTrees`] in the init: descriptor numbers of its copies.
#[derive(Debug, Default, Clone)]
pub struct RawTrees {
    /// See [`SharedTrees::empty`].
    pub empty: Option<RawFd>,
    /// See [`SharedTrees::cgroup`].
    pub cgroup: Option<(RawFd, Vec<String>)>,
}

/// Is `path` on a tmpfs?
fn on_tmpfs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
}

/// Close a descriptor of [`RawTrees`] in the init (the parent closes its own).
pub fn close_raw(fd: &mut Option<RawFd>) {
    if let Some(fd) = fd.take() {
        // SAFETY: the init's copy of a descriptor the parent opened before the
        // clone; nothing else in the init uses it, and `take` prevents a second close.
        unsafe { libc::close(fd) };
    }
}

/// A detached clone of the directory open at `dir`, made read-only, nosuid,
/// nodev, noexec and private (so nothing mounted under it in a container
/// propagates to the host's peer group), or `None` when the kernel has no
/// `open_tree`/`mount_setattr` or refuses them (`EPERM`, e.g. without
/// `CAP_SYS_ADMIN`).
pub fn clone_tree(dir: &OwnedFd, path: &Path) -> Result<Option<OwnedFd>> {
    let fallback = |what: &str, e: rustix::io::Errno| -> Result<Option<OwnedFd>> {
        if e == rustix::io::Errno::NOSYS || e == rustix::io::Errno::PERM {
            tracing::debug!(path = %path.display(), "{what} unavailable ({e}): a tmpfs instead");
            return Ok(None);
        }
        Err(Error::io(format!("{what} {}", path.display()), e.into()))
    };
    let flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_EMPTY_PATH;
    let tree = match rustix::mount::open_tree(dir, "", flags) {
        Ok(fd) => fd,
        Err(e) => return fallback("open_tree (clone)", e),
    };
    use super::mounts::attr;
    let ro = super::mounts::MountAttr { set: attr::RDONLY | attr::NOSUID | attr::NODEV | attr::NOEXEC, clear: 0 };
    match super::syscall::mount_setattr_fd(tree.as_fd(), libc::AT_EMPTY_PATH as libc::c_uint, ro, MS_PRIVATE) {
        Ok(()) => Ok(Some(tree)),
        Err(e) => fallback(
            "mount_setattr (read-only, private)",
            rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO),
        ),
    }
}

/// Attach a detached clone at `to` (relative to `to_dir`, or `to_dir` itself
/// when `to` is empty), following a final symlink as `mount(2)` does.
pub fn attach(tree: RawFd, to_dir: BorrowedFd<'_>, to: &Path) -> std::io::Result<()> {
    // SAFETY: the init's copy of a descriptor the parent opened, valid until `close_raw`.
    let tree = unsafe { BorrowedFd::borrow_raw(tree) };
    let mut flags = MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_SYMLINKS;
    if to.as_os_str().is_empty() {
        flags |= MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH;
    }
    rustix::mount::move_mount(tree, "", to_dir, to, flags).map_err(Into::into)
}

/// Open the directory `path`, refusing a symlink.
fn open_dir_nofollow(path: &Path) -> std::io::Result<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map(OwnedFd::from)
}

/// A temp name beside `final_name` under `root`, unique to this process and moment.
fn temp_name(root: &Path, final_name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    root.join(format!("{final_name}.tmp-{}-{nanos}", std::process::id()))
}

/// Rename `tmp` to `path` unless `path` exists; true when renamed. `tmp` is
/// removed when it was not renamed.
fn publish(tmp: &Path, path: &Path) -> Result<bool> {
    let r = rustix::fs::renameat_with(rustix::fs::CWD, tmp, rustix::fs::CWD, path, rustix::fs::RenameFlags::NOREPLACE);
    match r {
        Ok(()) => Ok(true),
        Err(e) => {
            let _ = std::fs::remove_dir_all(tmp);
            if e == rustix::io::Errno::EXIST {
                Ok(false)
            } else {
                Err(Error::io(format!("rename {} to {}", tmp.display(), path.display()), e.into()))
            }
        }
    }
}

/// Make the state root (mode 0700) if it is missing.
pub fn ensure_root(root: &Path) -> Result<()> {
    if !root.exists() {
        std::fs::create_dir_all(root).map_err(|e| Error::io(format!("create {}", root.display()), e))?;
        let _ = std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

fn refuse(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::conflict(
        "runtime directory",
        path.display().to_string(),
        format!("{why}; containers would see it, so it is not used: remove it and it is made again"),
    )
}

/// The directory's entries, `.` and `..` left out.
fn entries(dir: &OwnedFd, path: &Path) -> Result<Vec<(String, nix::dir::Type)>> {
    let mut d = nix::dir::Dir::openat(
        dir.as_fd(),
        ".",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::io(format!("read {}", path.display()), e.into()))?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e.map_err(|e| Error::io(format!("read {}", path.display()), e.into()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name != "." && name != ".." {
            out.push((name, e.file_type().unwrap_or(nix::dir::Type::File)));
        }
    }
    Ok(out)
}

/// Check that `dir` is a directory owned by this (root) user with mode `mode`.
fn check_owner_mode(dir: &OwnedFd, path: &Path, mode: u32) -> Result<()> {
    let f = std::fs::File::from(dir.try_clone().map_err(|e| Error::io(format!("dup {}", path.display()), e))?);
    let meta = f.metadata().map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
    let euid = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() {
        return Err(refuse(path, "it is not a directory"));
    }
    if meta.uid() != euid {
        return Err(refuse(path, format!("it is owned by uid {}, not {euid}", meta.uid())));
    }
    if meta.mode() & 0o7777 != mode {
        return Err(refuse(path, format!("its mode is {:o}, not {mode:o}", meta.mode() & 0o7777)));
    }
    Ok(())
}

/// `<root>/<name>` opened, first made (if missing) by `build` in a temp dir
/// renamed into place, so that concurrent creators agree on one; the caller
/// checks what it finds. Ensures the root exists.
fn open_or_make(
    root: &Path,
    name: &str,
    build: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<(OwnedFd, PathBuf)> {
    ensure_root(root)?;
    let path = root.join(name);
    let dir = match open_dir_nofollow(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let tmp = temp_name(root, name);
            if let Err(e) = build(&tmp) {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(Error::io(format!("create {}", tmp.display()), e));
            }
            publish(&tmp, &path)?;
            open_dir_nofollow(&path).map_err(|e| Error::io(format!("open {}", path.display()), e))?
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) || e.raw_os_error() == Some(libc::ENOTDIR) => {
            return Err(refuse(&path, "it is not a directory"))
        }
        Err(e) => return Err(Error::io(format!("open {}", path.display()), e)),
    };
    Ok((dir, path))
}

/// `<root>/@empty`, made once (mode 0555, owned by root) and checked on every
/// use: a directory that is not empty or not root's is refused, naming it.
/// Returns it opened.
pub fn empty_dir(root: &Path) -> Result<OwnedFd> {
    let (dir, path) = open_or_make(root, EMPTY_DIR, |tmp| {
        std::fs::create_dir(tmp)?;
        std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o555))
    })?;
    check_owner_mode(&dir, &path, 0o555)?;
    let found = entries(&dir, &path)?;
    if let Some((name, _)) = found.first() {
        return Err(refuse(&path, format!("it is not empty (it holds {name:?})")));
    }
    Ok(dir)
}

/// The `(controllers, path)` of each line `id:controllers:path` of
/// `/proc/<pid>/cgroup` (empty controllers: the v2 hierarchy).
pub fn parse_proc_cgroup(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _ = it.next()?;
            Some((it.next()?, it.next()?))
        })
        .collect()
}

/// The directory name of a cgroup v1 hierarchy (a line `id:controllers:path`
/// of `/proc/self/cgroup`) under `/sys/fs/cgroup`, and its mount options:
/// `unified` for cgroup2, `systemd` for `name=systemd`, else the controllers.
pub fn hierarchy_name(ctrls: &str) -> (String, Option<String>) {
    if ctrls.is_empty() {
        ("unified".to_string(), None)
    } else if let Some(n) = ctrls.strip_prefix("name=") {
        (n.to_string(), Some(format!("none,{ctrls}")))
    } else {
        (ctrls.to_string(), Some(ctrls.to_string()))
    }
}

/// The entries of a skeleton for hierarchy directories `names`: each
/// directory, and a symlink per controller of a combined name (`cpu ->
/// cpu,cpuacct`), as `(name, Some(link target))`.
fn skeleton_entries(names: &[String]) -> Vec<(String, Option<String>)> {
    let mut out: Vec<(String, Option<String>)> = names.iter().map(|n| (n.clone(), None)).collect();
    for n in names.iter().filter(|n| n.contains(',')) {
        for c in n.split(',') {
            if !out.iter().any(|(e, _)| e == c) {
                out.push((c.to_string(), Some(n.clone())));
            }
        }
    }
    out.sort();
    out
}

/// The skeleton of `/sys/fs/cgroup` for the v1 (or hybrid) hierarchies
/// `names`: `<root>/@cgroup-skel-<hash>`, one empty directory (mode 0755) per
/// hierarchy and the controller symlinks, made once per layout (in a temp dir
/// renamed into place) and checked on every use. Returns it opened, and its path.
pub fn cgroup_skeleton(root: &Path, names: &[String]) -> Result<(OwnedFd, PathBuf)> {
    use sha2::Digest;
    let want = skeleton_entries(names);
    let digest = sha2::Sha256::digest(names.join("\n").as_bytes());
    let hash: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let (dir, path) = open_or_make(root, &format!("{CGROUP_SKEL_PREFIX}{hash}"), |tmp| {
        std::fs::create_dir(tmp)?;
        for (e, link) in &want {
            match link {
                None => {
                    std::fs::create_dir(tmp.join(e))?;
                    std::fs::set_permissions(tmp.join(e), std::fs::Permissions::from_mode(0o755))?;
                }
                Some(t) => std::os::unix::fs::symlink(t, tmp.join(e))?,
            }
        }
        std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o755))
    })?;
    check_owner_mode(&dir, &path, 0o755)?;
    let mut found = entries(&dir, &path)?;
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let same = found.len() == want.len()
        && found.iter().zip(&want).all(|((n, t), (w, link))| {
            n == w
                && match link {
                    None => *t == nix::dir::Type::Directory,
                    Some(target) => {
                        *t == nix::dir::Type::Symlink
                            && std::fs::read_link(path.join(n)).is_ok_and(|l| l == Path::new(target))
                    }
                }
        });
    if !same {
        let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
        return Err(refuse(&path, format!("it holds {names:?}, not the cgroup hierarchies of this host")));
    }
    for (n, link) in &want {
        if link.is_none() {
            let sub =
                open_dir_nofollow(&path.join(n)).map_err(|e| Error::io(format!("open {}/{n}", path.display()), e))?;
            if let Some((x, _)) = entries(&sub, &path.join(n))?.first() {
                return Err(refuse(&path.join(n), format!("it is not empty (it holds {x:?})")));
            }
        }
    }
    Ok((dir, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_dir_made_once_and_checked() {
        let root = tempfile::tempdir().unwrap();
        let a = empty_dir(root.path()).unwrap();
        drop(a);
        let b = empty_dir(root.path()).unwrap();
        drop(b);
        let p = root.path().join(EMPTY_DIR);
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o7777, 0o555);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(p.join("planted"), "x").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o555)).unwrap();
        let e = empty_dir(root.path()).unwrap_err().to_string();
        assert!(e.contains(&p.display().to_string()) && e.contains("planted"), "{e}");
        // Nothing else was made beside it.
        let left: Vec<_> = std::fs::read_dir(root.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from(EMPTY_DIR)]);
    }

    #[test]
    fn skeleton_layout() {
        let root = tempfile::tempdir().unwrap();
        let names: Vec<String> =
            ["cpu,cpuacct", "memory", "systemd", "unified"].iter().map(|s| s.to_string()).collect();
        drop(cgroup_skeleton(root.path(), &names).unwrap());
        drop(cgroup_skeleton(root.path(), &names).unwrap());
        let dirs: Vec<_> = std::fs::read_dir(root.path()).unwrap().flatten().map(|e| e.path()).collect();
        assert_eq!(dirs.len(), 1, "{dirs:?}");
        let skel = &dirs[0];
        assert_eq!(std::fs::read_link(skel.join("cpu")).unwrap(), Path::new("cpu,cpuacct"));
        assert!(skel.join("memory").is_dir() && skel.join("unified").is_dir());
        std::fs::create_dir(skel.join("memory/x")).unwrap();
        let e = cgroup_skeleton(root.path(), &names).unwrap_err().to_string();
        assert!(e.contains("memory") && e.contains("\"x\""), "{e}");
        // Another layout gets its own skeleton.
        drop(cgroup_skeleton(root.path(), &names[1..]).unwrap());
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 2);
    }
}
