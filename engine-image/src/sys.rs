//! Small wrappers over the *at syscalls the unpacker needs (through rustix:
//! no unsafe code here). Every path handed to the kernel is either a single
//! component relative to a directory fd, or resolved with
//! `openat2(RESOLVE_IN_ROOT)` so that no symlink or `..` can lead outside the
//! root.

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What `lstat_at` returns.
pub(crate) type Stat = rustix::fs::Stat;

pub(crate) fn cstr(s: &[u8]) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

const DIR_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC).union(OFlags::NOFOLLOW);

/// Open a directory (following nothing at the last component).
pub(crate) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(path, DIR_FLAGS, Mode::empty())?)
}

fn in_root() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

/// Open `rel` (relative, may contain symlinks) as a directory inside `root`,
/// resolving every component as if `root` were `/`.
pub(crate) fn open_dir_in_root(root: BorrowedFd<'_>, rel: &[u8]) -> io::Result<OwnedFd> {
    let rel = if rel.is_empty() { b".".as_slice() } else { rel };
    let c = cstr(rel)?;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    match engine_core::fs::retry_on(rustix::io::Errno::AGAIN, || {
        rustix::fs::openat2(root, c.as_c_str(), flags, Mode::empty(), in_root())
    }) {
        Ok(fd) => Ok(fd),
        Err(Errno::NOSYS) => open_dir_walk(root, rel),
        Err(e) => Err(e.into()),
    }
}

/// Fallback for kernels without openat2: walk components, never following
/// a symlink (a symlinked parent is refused with ELOOP).
fn open_dir_walk(root: BorrowedFd<'_>, rel: &[u8]) -> io::Result<OwnedFd> {
    let mut cur = root.try_clone_to_owned()?;
    for comp in rel.split(|b| *b == b'/').filter(|c| !c.is_empty() && *c != b".") {
        if comp == b".." {
            return Err(io::Error::from_raw_os_error(libc::EXDEV));
        }
        let c = cstr(comp)?;
        cur = rustix::fs::openat(&cur, c.as_c_str(), DIR_FLAGS, Mode::empty())?;
    }
    Ok(cur)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`; `None` if it does not exist.
pub(crate) fn lstat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn is_dir(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

pub(crate) fn mkdir_at(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::mkdirat(dir, name, Mode::from_bits_truncate(mode))?)
}

pub(crate) fn unlink_at(dir: BorrowedFd<'_>, name: &CStr, is_dir: bool) -> io::Result<()> {
    Ok(rustix::fs::unlinkat(dir, name, if is_dir { AtFlags::REMOVEDIR } else { AtFlags::empty() })?)
}

/// Remove whatever is at `dir/name` (a whole tree for a directory), never
/// following symlinks.
pub(crate) fn remove_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let Some(st) = lstat_at(dir, name)? else { return Ok(()) };
    if !is_dir(&st) {
        return unlink_at(dir, name, false);
    }
    let sub = open_dir_at(dir, name)?;
    for n in list_dir(sub.as_fd())? {
        let c = cstr(n.as_bytes())?;
        remove_at(sub.as_fd(), &c)?;
    }
    drop(sub);
    unlink_at(dir, name, true)
}

/// Names in a directory (not `.`/`..`), read from the start whatever the
/// fd's position.
pub(crate) fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<std::ffi::OsString>> {
    let mut out = Vec::new();
    for ent in rustix::fs::Dir::read_from(dir)? {
        let ent = ent?;
        let b = ent.file_name().to_bytes();
        if b != b"." && b != b".." {
            out.push(OsStr::from_bytes(b).to_os_string());
        }
    }
    Ok(out)
}

pub(crate) fn open_file_excl(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<std::fs::File> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rustix::fs::openat(dir, name, flags, Mode::from_bits_truncate(0o600))?.into())
}

/// Open `dir/name` for reading, not following a final symlink.
pub(crate) fn open_file_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<std::fs::File> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rustix::fs::openat(dir, name, flags, Mode::empty())?.into())
}

pub(crate) fn open_dir_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty())?)
}

/// The target of the symlink `dir/name`.
pub(crate) fn readlink_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Vec<u8>> {
    Ok(rustix::fs::readlinkat(dir, name, Vec::new())?.into_bytes())
}

pub(crate) fn symlink_at(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    Ok(rustix::fs::symlinkat(target, dir, name)?)
}

pub(crate) fn link_at(odir: BorrowedFd<'_>, oname: &CStr, ndir: BorrowedFd<'_>, nname: &CStr) -> io::Result<()> {
    Ok(rustix::fs::linkat(odir, oname, ndir, nname, AtFlags::empty())?)
}

/// `mknodat`; `mode` carries the file type bits (`S_IFCHR`...) and the
/// permissions.
pub(crate) fn mknod_at(dir: BorrowedFd<'_>, name: &CStr, mode: u32, dev: u64) -> io::Result<()> {
    let kind = FileType::from_raw_mode(mode);
    Ok(rustix::fs::mknodat(dir, name, kind, Mode::from_bits_truncate(mode & 0o7777), dev)?)
}

pub(crate) fn chown_at(dir: BorrowedFd<'_>, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    let (uid, gid) = (rustix::fs::Uid::from_raw(uid), rustix::fs::Gid::from_raw(gid));
    Ok(rustix::fs::chownat(dir, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)?)
}

/// `fchmodat(dir, name, mode)` (follows a final symlink, as chmod does).
pub(crate) fn chmod_at(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::chmodat(dir, name, Mode::from_bits_truncate(mode), AtFlags::empty())?)
}

pub(crate) fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::fchmod(fd, Mode::from_bits_truncate(mode))?)
}

/// Set atime and mtime (seconds) without following a final symlink.
pub(crate) fn utimes_at(dir: BorrowedFd<'_>, name: &CStr, mtime: i64) -> io::Result<()> {
    let t = Timespec { tv_sec: mtime, tv_nsec: 0 };
    let times = Timestamps { last_access: t, last_modification: t };
    Ok(rustix::fs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW)?)
}

/// The `/proc/self/fd/N/name` path of an entry of an open directory: the
/// directory is pinned by the fd, the last component is used with l* calls.
pub(crate) fn fd_path(dir: BorrowedFd<'_>, name: &[u8]) -> CString {
    use std::os::fd::AsRawFd;
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    CString::new(p).unwrap_or_default()
}

pub(crate) fn lsetxattr(path: &CStr, key: &[u8], value: &[u8]) -> io::Result<()> {
    let k = cstr(key)?;
    Ok(rustix::fs::lsetxattr(path, k.as_c_str(), value, XattrFlags::empty())?)
}

pub(crate) fn lgetxattr(path: &CStr, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let k = cstr(key)?;
    let mut buf = vec![0u8; 4096];
    match rustix::fs::lgetxattr(path, k.as_c_str(), &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Ok(Some(buf))
        }
        Err(Errno::NODATA) | Err(Errno::NOTSUP) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// All xattrs of a path (not following a final symlink).
pub(crate) fn llistxattr(path: &CStr) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut buf = vec![0u8; 8192];
    let n = match rustix::fs::llistxattr(path, &mut buf[..]) {
        Ok(n) => n,
        Err(Errno::NOTSUP) => return Ok(vec![]),
        Err(e) => return Err(e.into()),
    };
    buf.truncate(n);
    let mut out = Vec::new();
    for k in buf.split(|b| *b == 0).filter(|k| !k.is_empty()) {
        if let Some(v) = lgetxattr(path, k)? {
            out.push((k.to_vec(), v));
        }
    }
    Ok(out)
}

pub(crate) fn fsync_dir(path: &Path) -> io::Result<()> {
    std::fs::File::open(path)?.sync_all()
}

pub(crate) fn makedev(major: u32, minor: u32) -> u64 {
    rustix::fs::makedev(major, minor)
}

/// Open a file for reading inside `root` (symlinks resolved in the root).
pub(crate) fn open_file_in_root(root: &Path, rel: &str) -> io::Result<std::fs::File> {
    let rootfd = open_dir(root)?;
    let c = cstr(rel.trim_start_matches('/').as_bytes())?;
    let flags = OFlags::RDONLY | OFlags::CLOEXEC;
    Ok(engine_core::fs::retry_on(rustix::io::Errno::AGAIN, || {
        rustix::fs::openat2(&rootfd, c.as_c_str(), flags, Mode::empty(), in_root())
    })?
    .into())
}

/// `flock(fd, op)`, blocking.
pub(crate) fn flock(fd: BorrowedFd<'_>, op: rustix::fs::FlockOperation) -> io::Result<()> {
    Ok(rustix::fs::flock(fd, op)?)
}
