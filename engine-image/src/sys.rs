//! Small safe wrappers over the *at syscalls the unpacker needs. Every path
//! handed to the kernel here is either a single component relative to a
//! directory fd, or resolved with `openat2(RESOLVE_IN_ROOT)` so that no
//! symlink or `..` can lead outside the root.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub(crate) fn cstr(s: &[u8]) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Open a directory (following nothing at the last component).
pub(crate) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let c = cstr(path.as_os_str().as_bytes())?;
    let fd = check(unsafe {
        libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW)
    })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// Open `rel` (relative, may contain symlinks) as a directory inside `root`,
/// resolving every component as if `root` were `/`.
pub(crate) fn open_dir_in_root(root: RawFd, rel: &[u8]) -> io::Result<OwnedFd> {
    let rel = if rel.is_empty() { b".".as_slice() } else { rel };
    let c = cstr(rel)?;
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    let r = unsafe {
        libc::syscall(libc::SYS_openat2, root, c.as_ptr(), &how as *const OpenHow, std::mem::size_of::<OpenHow>())
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOSYS) {
            return open_dir_walk(root, rel);
        }
        return Err(e);
    }
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// Fallback for kernels without openat2: walk components, never following
/// a symlink (a symlinked parent is refused with ELOOP).
fn open_dir_walk(root: RawFd, rel: &[u8]) -> io::Result<OwnedFd> {
    let mut cur = unsafe { OwnedFd::from_raw_fd(check(libc::fcntl(root, libc::F_DUPFD_CLOEXEC, 0))?) };
    for comp in rel.split(|b| *b == b'/').filter(|c| !c.is_empty() && *c != b".") {
        if comp == b".." {
            return Err(io::Error::from_raw_os_error(libc::EXDEV));
        }
        let c = cstr(comp)?;
        let fd = check(unsafe {
            libc::openat(
                cur.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        })?;
        cur = unsafe { OwnedFd::from_raw_fd(fd) };
    }
    Ok(cur)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`; `None` if it does not exist.
pub(crate) fn lstat_at(dir: RawFd, name: &CStr) -> io::Result<Option<libc::stat>> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOENT) {
            return Ok(None);
        }
        return Err(e);
    }
    Ok(Some(st))
}

pub(crate) fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

pub(crate) fn mkdir_at(dir: RawFd, name: &CStr, mode: u32) -> io::Result<()> {
    check(unsafe { libc::mkdirat(dir, name.as_ptr(), mode as libc::mode_t) }).map(drop)
}

pub(crate) fn unlink_at(dir: RawFd, name: &CStr, is_dir: bool) -> io::Result<()> {
    check(unsafe { libc::unlinkat(dir, name.as_ptr(), if is_dir { libc::AT_REMOVEDIR } else { 0 }) }).map(drop)
}

/// Remove whatever is at `dir/name` (a whole tree for a directory), never
/// following symlinks.
pub(crate) fn remove_at(dir: RawFd, name: &CStr) -> io::Result<()> {
    let Some(st) = lstat_at(dir, name)? else { return Ok(()) };
    if !is_dir(&st) {
        return unlink_at(dir, name, false);
    }
    let fd = check(unsafe {
        libc::openat(dir, name.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
    })?;
    let sub = unsafe { OwnedFd::from_raw_fd(fd) };
    for n in list_dir(sub.as_raw_fd())? {
        let c = cstr(n.as_bytes())?;
        remove_at(sub.as_raw_fd(), &c)?;
    }
    drop(sub);
    unlink_at(dir, name, true)
}

/// Names in a directory (not `.`/`..`).
pub(crate) fn list_dir(dir: RawFd) -> io::Result<Vec<std::ffi::OsString>> {
    let dup = check(unsafe { libc::fcntl(dir, libc::F_DUPFD_CLOEXEC, 0) })?;
    let dp = unsafe { libc::fdopendir(dup) };
    if dp.is_null() {
        let e = io::Error::last_os_error();
        unsafe { libc::close(dup) };
        return Err(e);
    }
    unsafe { libc::rewinddir(dp) };
    let mut out = Vec::new();
    loop {
        let ent = unsafe { libc::readdir(dp) };
        if ent.is_null() {
            break;
        }
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
        let b = name.to_bytes();
        if b != b"." && b != b".." {
            out.push(OsStr::from_bytes(b).to_os_string());
        }
    }
    unsafe { libc::closedir(dp) };
    Ok(out)
}

pub(crate) fn open_file_excl(dir: RawFd, name: &CStr) -> io::Result<std::fs::File> {
    let fd = check(unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600 as libc::c_uint,
        )
    })?;
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

pub(crate) fn open_dir_at(dir: RawFd, name: &CStr) -> io::Result<OwnedFd> {
    let fd = check(unsafe {
        libc::openat(dir, name.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
    })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn symlink_at(target: &CStr, dir: RawFd, name: &CStr) -> io::Result<()> {
    check(unsafe { libc::symlinkat(target.as_ptr(), dir, name.as_ptr()) }).map(drop)
}

pub(crate) fn link_at(odir: RawFd, oname: &CStr, ndir: RawFd, nname: &CStr) -> io::Result<()> {
    check(unsafe { libc::linkat(odir, oname.as_ptr(), ndir, nname.as_ptr(), 0) }).map(drop)
}

pub(crate) fn mknod_at(dir: RawFd, name: &CStr, mode: u32, dev: u64) -> io::Result<()> {
    check(unsafe { libc::mknodat(dir, name.as_ptr(), mode as libc::mode_t, dev as libc::dev_t) }).map(drop)
}

pub(crate) fn chown_at(dir: RawFd, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    check(unsafe { libc::fchownat(dir, name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) }).map(drop)
}

pub(crate) fn fchmod(fd: RawFd, mode: u32) -> io::Result<()> {
    check(unsafe { libc::fchmod(fd, mode as libc::mode_t) }).map(drop)
}

/// Set atime and mtime (seconds) without following a final symlink.
pub(crate) fn utimes_at(dir: RawFd, name: &CStr, mtime: i64) -> io::Result<()> {
    let ts = [
        libc::timespec { tv_sec: mtime as libc::time_t, tv_nsec: 0 },
        libc::timespec { tv_sec: mtime as libc::time_t, tv_nsec: 0 },
    ];
    check(unsafe { libc::utimensat(dir, name.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) }).map(drop)
}

/// The `/proc/self/fd/N/name` path of an entry of an open directory: the
/// directory is pinned by the fd, the last component is used with l* calls.
pub(crate) fn fd_path(dir: RawFd, name: &[u8]) -> CString {
    let mut p = format!("/proc/self/fd/{dir}/").into_bytes();
    p.extend_from_slice(name);
    CString::new(p).unwrap_or_default()
}

pub(crate) fn lsetxattr(path: &CStr, key: &[u8], value: &[u8]) -> io::Result<()> {
    let k = cstr(key)?;
    check(unsafe { libc::lsetxattr(path.as_ptr(), k.as_ptr(), value.as_ptr() as *const _, value.len(), 0) }).map(drop)
}

pub(crate) fn lgetxattr(path: &CStr, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let k = cstr(key)?;
    let mut buf = vec![0u8; 4096];
    let r = unsafe { libc::lgetxattr(path.as_ptr(), k.as_ptr(), buf.as_mut_ptr() as *mut _, buf.len()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::ENOTSUP) => Ok(None),
            _ => Err(e),
        };
    }
    buf.truncate(r as usize);
    Ok(Some(buf))
}

/// All xattrs of a path (not following a final symlink).
pub(crate) fn llistxattr(path: &CStr) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut buf = vec![0u8; 8192];
    let r = unsafe { libc::llistxattr(path.as_ptr(), buf.as_mut_ptr() as *mut _, buf.len()) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOTSUP) => Ok(vec![]),
            _ => Err(e),
        };
    }
    buf.truncate(r as usize);
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
    libc::makedev(major, minor)
}

/// Open a file for reading inside `root` (symlinks resolved in the root).
pub(crate) fn open_file_in_root(root: &Path, rel: &str) -> io::Result<std::fs::File> {
    let rootfd = open_dir(root)?;
    let c = cstr(rel.trim_start_matches('/').as_bytes())?;
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    let r = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            rootfd.as_raw_fd(),
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { std::fs::File::from_raw_fd(r as RawFd) })
}
