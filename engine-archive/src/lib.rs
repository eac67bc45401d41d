//! A container's filesystem as tar streams: what `docker cp` (`HEAD/GET/PUT
//! /containers/{id}/archive`), `docker export` and the facade's copy methods
//! do, in one place, with no tool needed inside the image.
//!
//! Every path is resolved inside the container's root with
//! `openat2(RESOLVE_IN_ROOT)`, and every step after that works on file
//! descriptors (`*at` calls relative to a directory already opened, with
//! `O_NOFOLLOW`), never on a host path built from names. So a container that
//! swaps a directory for a symlink while a copy runs (`/data -> /`, or to any
//! host path) redirects nothing outside its own root: an absolute link is
//! read as the container reads it, and `..` stops at its root.
//!
//! The root is the container's own view while it runs (`/proc/<pid>/root`,
//! with the mounts it has inside, checked to be the container's root
//! filesystem so a reused pid is never trusted), else its root filesystem
//! directory on the host.
//!
//! ```no_run
//! use engine_archive::{ContainerRoot, ExtractOptions};
//! # fn f() -> engine_core::Result<()> {
//! let root = ContainerRoot::open(Some(4242), "/var/lib/engine/containers/abc/rootfs".as_ref())?;
//! let mut tar = Vec::new();
//! let st = root.write_tar("/etc/hostname", &mut tar)?;
//! assert!(!st.is_dir());
//! root.extract_tar("/tmp", std::io::Cursor::new(tar), &ExtractOptions::default())?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use engine_core::{Error, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat, Timespec, Timestamps};
use rustix::io::Errno;
use std::ffi::{CStr, OsStr};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What `stat` tells of a path in a container (docker's
/// `X-Docker-Container-Path-Stat`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PathStat {
    /// The base name of the path as asked for.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// `st_mode`: the file type and permission bits.
    pub mode: u32,
    /// Last modification.
    pub mtime: SystemTime,
    /// The target of a symbolic link.
    pub link_target: Option<String>,
}

impl PathStat {
    /// A directory?
    pub fn is_dir(&self) -> bool {
        FileType::from_raw_mode(self.mode) == FileType::Directory
    }

    /// A symbolic link?
    pub fn is_symlink(&self) -> bool {
        FileType::from_raw_mode(self.mode) == FileType::Symlink
    }

    /// The mode as Go's `os.FileMode` writes it (what docker clients decode):
    /// permission bits, `1<<31` for a directory, `1<<27` for a symbolic link.
    pub fn go_mode(&self) -> u32 {
        let perm = self.mode & 0o7777;
        match FileType::from_raw_mode(self.mode) {
            FileType::Directory => perm | 1 << 31,
            FileType::Symlink => 0o777 | 1 << 27,
            FileType::Fifo => perm | 1 << 25,
            FileType::Socket => perm | 1 << 24,
            FileType::CharacterDevice => perm | 1 << 26 | 1 << 21,
            FileType::BlockDevice => perm | 1 << 26,
            _ => perm,
        }
    }
}

/// How [`ContainerRoot::extract_tar`] writes.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ExtractOptions {
    /// Keep the archive's owners (`docker cp -a`); else everything belongs
    /// to the container's root user.
    pub copy_uid_gid: bool,
    /// Refuse to replace a directory with a non-directory or the reverse.
    pub no_overwrite_dir_non_dir: bool,
}

impl ExtractOptions {
    /// Keep the archive's owners.
    pub fn copy_uid_gid(mut self, yes: bool) -> Self {
        self.copy_uid_gid = yes;
        self
    }

    /// Refuse to replace a directory with a non-directory or the reverse.
    pub fn no_overwrite_dir_non_dir(mut self, yes: bool) -> Self {
        self.no_overwrite_dir_non_dir = yes;
        self
    }
}

/// A container's root directory, held open: every operation resolves its
/// paths inside it.
#[derive(Debug)]
pub struct ContainerRoot {
    fd: OwnedFd,
}

fn io_err(context: impl Into<String>, e: Errno) -> Error {
    Error::io(context, std::io::Error::from(e))
}

/// A container path ("/etc/x", "etc/x", "/") as a path relative to the root.
fn rel(path: &str) -> &str {
    let r = path.trim_start_matches('/');
    if r.is_empty() {
        "."
    } else {
        r
    }
}

fn base_name(path: &str) -> String {
    Path::new(path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| ".".into())
}

fn mtime_of(st: &Stat) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(st.st_mtime.max(0) as u64)
}

fn same_file(a: &Stat, b: &Stat) -> bool {
    a.st_dev == b.st_dev && a.st_ino == b.st_ino
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

impl ContainerRoot {
    /// The root directory `dir` on the host (a stopped container's root
    /// filesystem, or any directory used as a root).
    pub fn open_dir(dir: &Path) -> Result<ContainerRoot> {
        let fd = rustix::fs::open(dir, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| io_err(format!("opening the root {}", dir.display()), e))?;
        Ok(ContainerRoot { fd })
    }

    /// The root that process `pid` sees (`/proc/<pid>/root`: its mounts
    /// included), provided it is the directory `rootfs` (so a pid reused by
    /// another process, or a runtime whose processes do not run on the host,
    /// is refused with [`Error::Conflict`]).
    pub fn open_process(pid: i32, rootfs: &Path) -> Result<ContainerRoot> {
        let proc_root = format!("/proc/{pid}/root");
        let fd =
            rustix::fs::open(proc_root.as_str(), OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| io_err(format!("opening {proc_root}"), e))?;
        let want = rustix::fs::stat(rootfs).map_err(|e| io_err(format!("stat {}", rootfs.display()), e))?;
        let got = rustix::fs::fstat(&fd).map_err(|e| io_err(format!("stat {proc_root}"), e))?;
        if !same_file(&want, &got) {
            return Err(Error::conflict(
                "process",
                pid.to_string(),
                format!("its root is not the container's root filesystem {}", rootfs.display()),
            ));
        }
        Ok(ContainerRoot { fd })
    }

    /// The container's view while process `pid` runs in it, else its root
    /// filesystem directory `rootfs`.
    pub fn open(pid: Option<i32>, rootfs: &Path) -> Result<ContainerRoot> {
        if let Some(pid) = pid {
            if let Ok(r) = ContainerRoot::open_process(pid, rootfs) {
                return Ok(r);
            }
        }
        ContainerRoot::open_dir(rootfs)
    }

    /// Open `path` (`O_PATH`), resolved in the root; the last component is
    /// not followed when it is a symbolic link.
    fn resolve(&self, path: &str, follow_last: bool) -> Result<(OwnedFd, Stat)> {
        let mut flags = OFlags::PATH | OFlags::CLOEXEC;
        if !follow_last {
            flags |= OFlags::NOFOLLOW;
        }
        let fd = engine_core::fs::retry_on(rustix::io::Errno::AGAIN, || {
            rustix::fs::openat2(&self.fd, rel(path), flags, Mode::empty(), RESOLVE)
        })
        .map_err(|e| match e {
            Errno::NOENT | Errno::NOTDIR => Error::not_found("path", format!("{path} in the container")),
            e => io_err(format!("resolving {path} in the container"), e),
        })?;
        let st = rustix::fs::fstat(&fd).map_err(|e| io_err(format!("stat {path}"), e))?;
        Ok((fd, st))
    }

    /// Stat `path` (a symbolic link itself, not its target).
    pub fn stat(&self, path: &str) -> Result<PathStat> {
        let (fd, st) = self.resolve(path, false)?;
        let link_target = if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
            let t = rustix::fs::readlinkat(&fd, "", Vec::new()).map_err(|e| io_err(format!("readlink {path}"), e))?;
            Some(String::from_utf8_lossy(t.as_bytes()).into_owned())
        } else {
            None
        };
        Ok(PathStat {
            name: base_name(path),
            size: st.st_size as u64,
            mode: st.st_mode,
            mtime: mtime_of(&st),
            link_target,
        })
    }

    /// The contents of the regular file `path` (symbolic links followed
    /// inside the root).
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        let (_, st) = self.resolve(path, true)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(Error::invalid("path", format!("{path} in the container is not a regular file")));
        }
        let mut f = self.open_regular(path, &st, true)?;
        let mut out = Vec::with_capacity(st.st_size as usize);
        f.read_to_end(&mut out).map_err(|e| Error::io(format!("reading {path}"), e))?;
        Ok(out)
    }

    /// Open the regular file `path` for reading, checked to be the file
    /// `st` describes (no swap in between).
    fn open_regular(&self, path: &str, st: &Stat, follow_last: bool) -> Result<std::fs::File> {
        let mut flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        if !follow_last {
            flags |= OFlags::NOFOLLOW;
        }
        let fd = engine_core::fs::retry_on(rustix::io::Errno::AGAIN, || {
            rustix::fs::openat2(&self.fd, rel(path), flags, Mode::empty(), RESOLVE)
        })
        .map_err(|e| io_err(format!("opening {path} in the container"), e))?;
        let now = rustix::fs::fstat(&fd).map_err(|e| io_err(format!("stat {path}"), e))?;
        if !same_file(st, &now) {
            return Err(Error::conflict("path", path, "it changed while being copied"));
        }
        Ok(std::fs::File::from(fd))
    }

    /// Write a tar of `path` to `out`, as `GET /containers/{id}/archive`
    /// does: a directory's tree under its base name, a file or a symbolic
    /// link (not followed) as one entry. Returns the path's stat.
    pub fn write_tar(&self, path: &str, out: impl Write) -> Result<PathStat> {
        let stat = self.stat(path)?;
        let (fd, st) = self.resolve(path, false)?;
        let mut b = tar::Builder::new(out);
        let name = if rel(path) == "." { ".".to_string() } else { stat.name.clone() };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => walk(&mut b, &fd, &st, &name)?,
            FileType::RegularFile => {
                let f = self.open_regular(path, &st, false)?;
                append_file(&mut b, &st, &name, f)?;
            }
            FileType::Symlink => {
                let t = stat.link_target.clone().unwrap_or_default();
                append_link(&mut b, &st, &name, t.as_bytes())?;
            }
            _ => append_special(&mut b, &st, &name)?,
        }
        finish(b)?;
        Ok(stat)
    }

    /// Write a tar of the whole root (its contents at the top), as `docker
    /// export` does.
    pub fn write_tar_of_root(&self, out: impl Write) -> Result<()> {
        let (fd, st) = self.resolve("/", false)?;
        let mut b = tar::Builder::new(out);
        walk_children(&mut b, &fd, &st, "")?;
        finish(b)
    }

    /// Extract the tar `input` into the directory `dest_dir` (symbolic links
    /// on the way followed inside the root), as `PUT
    /// /containers/{id}/archive` does. Entries that climb out with `..`,
    /// device nodes and unknown entry types are refused with an error naming
    /// the entry; absolute entry names are taken as relative to `dest_dir`.
    pub fn extract_tar(&self, dest_dir: &str, input: impl Read, opts: &ExtractOptions) -> Result<()> {
        let (dest, st) = self.resolve(dest_dir, true)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return Err(Error::invalid("destination", format!("{dest_dir} in the container is not a directory")));
        }
        drop(dest);
        let mut ar = tar::Archive::new(input);
        let mut dir_times: Vec<(OwnedFd, i64)> = Vec::new();
        let entries = ar.entries().map_err(|e| Error::invalid("archive", e.to_string()))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| Error::invalid("archive", e.to_string()))?;
            let raw = entry.path().map_err(|e| Error::invalid("archive", e.to_string()))?.into_owned();
            let shown = raw.display().to_string();
            let mut parts = Vec::new();
            for c in raw.components() {
                match c {
                    Component::Normal(s) => parts.push(s.to_os_string()),
                    Component::ParentDir => {
                        return Err(Error::invalid("archive", format!("entry {shown:?} climbs out with '..'")))
                    }
                    Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
                }
            }
            let Some(name) = parts.pop() else { continue };
            let parent = self.make_parents(dest_dir, &parts)?;
            let h = entry.header();
            let kind = h.entry_type();
            let mode = h.mode().map_err(|e| Error::invalid("archive", format!("entry {shown:?}: {e}")))? & 0o7777;
            let (uid, gid) =
                if opts.copy_uid_gid { (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32) } else { (0, 0) };
            let mtime = h.mtime().unwrap_or(0) as i64;
            let name = name.as_os_str();
            let existing = match rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(s) => Some(s),
                Err(Errno::NOENT) => None,
                Err(e) => return Err(io_err(format!("stat {shown}"), e)),
            };
            let new_is_dir = kind.is_dir();
            if let Some(old) = existing {
                let old_is_dir = FileType::from_raw_mode(old.st_mode) == FileType::Directory;
                if opts.no_overwrite_dir_non_dir && old_is_dir != new_is_dir {
                    return Err(Error::invalid(
                        "archive",
                        format!(
                            "entry {shown:?} would replace a {} with a {}",
                            if old_is_dir { "directory" } else { "non-directory" },
                            if new_is_dir { "directory" } else { "non-directory" }
                        ),
                    ));
                }
                if !(old_is_dir && new_is_dir) {
                    remove_at(parent.as_fd(), name).map_err(|e| io_err(format!("replacing {shown}"), e))?;
                }
            }
            let owner = (Some(rustix::fs::Uid::from_raw(uid)), Some(rustix::fs::Gid::from_raw(gid)));
            let ctx = |what: &str| format!("{what} {shown}");
            if kind.is_dir() {
                if existing.is_none() {
                    rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o700))
                        .map_err(|e| io_err(ctx("mkdir"), e))?;
                }
                let fd = rustix::fs::openat(
                    &parent,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| io_err(ctx("opening"), e))?;
                rustix::fs::fchown(&fd, owner.0, owner.1).map_err(|e| io_err(ctx("chown"), e))?;
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(|e| io_err(ctx("chmod"), e))?;
                dir_times.push((fd, mtime));
            } else if kind.is_file() || kind == tar::EntryType::Continuous {
                let fd = rustix::fs::openat(
                    &parent,
                    name,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| io_err(ctx("creating"), e))?;
                let mut f = std::fs::File::from(fd);
                std::io::copy(&mut entry, &mut f).map_err(|e| Error::io(ctx("writing"), e))?;
                rustix::fs::fchown(&f, owner.0, owner.1).map_err(|e| io_err(ctx("chown"), e))?;
                rustix::fs::fchmod(&f, Mode::from_raw_mode(mode)).map_err(|e| io_err(ctx("chmod"), e))?;
                rustix::fs::futimens(&f, &times(mtime)).map_err(|e| io_err(ctx("setting the times of"), e))?;
            } else if kind.is_symlink() {
                let target = entry
                    .link_name()
                    .map_err(|e| Error::invalid("archive", format!("entry {shown:?}: {e}")))?
                    .ok_or_else(|| Error::invalid("archive", format!("symbolic link {shown:?} has no target")))?
                    .into_owned();
                rustix::fs::symlinkat(target.as_os_str(), &parent, name).map_err(|e| io_err(ctx("symlink"), e))?;
                rustix::fs::chownat(&parent, name, owner.0, owner.1, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| io_err(ctx("chown"), e))?;
                rustix::fs::utimensat(&parent, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| io_err(ctx("setting the times of"), e))?;
            } else if kind.is_hard_link() {
                let target = entry
                    .link_name()
                    .map_err(|e| Error::invalid("archive", format!("entry {shown:?}: {e}")))?
                    .ok_or_else(|| Error::invalid("archive", format!("hard link {shown:?} has no target")))?
                    .into_owned();
                if target.components().any(|c| matches!(c, Component::ParentDir)) {
                    return Err(Error::invalid(
                        "archive",
                        format!("hard link {shown:?} to {:?} climbs out with '..'", target.display()),
                    ));
                }
                let in_root = format!("{}/{}", dest_dir.trim_end_matches('/'), target.to_string_lossy());
                let (src, _) = self.resolve(&in_root, false).map_err(|e| {
                    if e.is_not_found() {
                        Error::invalid("archive", format!("hard link {shown:?}: no {:?} to link to", target.display()))
                    } else {
                        e
                    }
                })?;
                rustix::fs::linkat(&src, "", &parent, name, AtFlags::EMPTY_PATH).map_err(|e| io_err(ctx("link"), e))?;
            } else if kind == tar::EntryType::Fifo {
                rustix::fs::mknodat(&parent, name, FileType::Fifo, Mode::from_raw_mode(mode), 0)
                    .map_err(|e| io_err(ctx("mkfifo"), e))?;
                rustix::fs::chownat(&parent, name, owner.0, owner.1, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| io_err(ctx("chown"), e))?;
            } else {
                return Err(Error::invalid(
                    "archive",
                    format!("entry {shown:?}: only files, directories, links and fifos are accepted (got {kind:?})"),
                ));
            }
        }
        for (fd, mtime) in dir_times.iter().rev() {
            let _ = rustix::fs::futimens(fd, &times(*mtime));
        }
        Ok(())
    }

    /// Open (and make, as the container's root user with mode 0755, where
    /// missing) the directory `dest_dir/parts...`, every step resolved in the root.
    fn make_parents(&self, dest_dir: &str, parts: &[std::ffi::OsString]) -> Result<OwnedFd> {
        let mut path = dest_dir.trim_end_matches('/').to_string();
        let (mut cur, _) = self.resolve(&path, true)?;
        let open_dir = |path: &str| {
            let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
            engine_core::fs::retry_on(rustix::io::Errno::AGAIN, || {
                rustix::fs::openat2(&self.fd, rel(path), flags, Mode::empty(), RESOLVE)
            })
        };
        for p in parts {
            let name = p.to_string_lossy();
            path = format!("{path}/{name}");
            let next = match open_dir(&path) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(&cur, p.as_os_str(), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(io_err(format!("mkdir {path} in the container"), e)),
                    }
                    open_dir(&path).map_err(|e| io_err(format!("opening {path} in the container"), e))?
                }
                Err(Errno::NOTDIR) => {
                    return Err(Error::invalid("archive", format!("{path} in the container is not a directory")))
                }
                Err(e) => return Err(io_err(format!("opening {path} in the container"), e)),
            };
            cur = next;
        }
        Ok(cur)
    }
}

fn times(mtime: i64) -> Timestamps {
    let t = Timespec { tv_sec: mtime, tv_nsec: 0 };
    Timestamps { last_access: t, last_modification: t }
}

/// Remove `name` in `dir`: a file or link, or a directory tree (never
/// following a link).
fn remove_at(dir: BorrowedFd<'_>, name: &OsStr) -> rustix::io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        r => return r,
    }
    let sub = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for e in list_dir(&sub)? {
        let n = OsStr::from_bytes(e?.file_name().to_bytes()).to_os_string();
        if n != "." && n != ".." {
            names.push(n);
        }
    }
    for n in names {
        remove_at(sub.as_fd(), &n)?;
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}

/// The entries of the directory `dir` (which may be an `O_PATH` descriptor).
fn list_dir(dir: impl AsFd) -> rustix::io::Result<rustix::fs::Dir> {
    let fd = rustix::fs::openat(dir, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    rustix::fs::Dir::new(fd)
}

fn header(st: &Stat, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    h
}

fn tar_err(name: &str, e: std::io::Error) -> Error {
    Error::io(format!("writing the tar entry {name}"), e)
}

fn finish<W: Write>(b: tar::Builder<W>) -> Result<()> {
    let mut w = b.into_inner().map_err(|e| Error::io("finishing the tar stream", e))?;
    w.flush().map_err(|e| Error::io("finishing the tar stream", e))
}

fn append_file<W: Write>(b: &mut tar::Builder<W>, st: &Stat, name: &str, f: std::fs::File) -> Result<()> {
    let mut h = header(st, tar::EntryType::Regular);
    let size = st.st_size as u64;
    h.set_size(size);
    // Exactly `size` bytes whatever the file does meanwhile (a tar entry's
    // length is fixed by its header): cut short or padded with zeros.
    let data = f.take(size).chain(std::io::repeat(0)).take(size);
    b.append_data(&mut h, name, data).map_err(|e| tar_err(name, e))
}

fn append_link<W: Write>(b: &mut tar::Builder<W>, st: &Stat, name: &str, target: &[u8]) -> Result<()> {
    let mut h = header(st, tar::EntryType::Symlink);
    b.append_link(&mut h, name, OsStr::from_bytes(target)).map_err(|e| tar_err(name, e))
}

fn append_special<W: Write>(b: &mut tar::Builder<W>, st: &Stat, name: &str) -> Result<()> {
    let kind = match FileType::from_raw_mode(st.st_mode) {
        FileType::Fifo => tar::EntryType::Fifo,
        FileType::CharacterDevice => tar::EntryType::Char,
        FileType::BlockDevice => tar::EntryType::Block,
        // Sockets have no tar form.
        _ => return Ok(()),
    };
    let mut h = header(st, kind);
    let _ = h.set_device_major(rustix::fs::major(st.st_rdev));
    let _ = h.set_device_minor(rustix::fs::minor(st.st_rdev));
    b.append_data(&mut h, name, std::io::empty()).map_err(|e| tar_err(name, e))
}

/// A directory entry and its tree, under `name`.
fn walk<W: Write>(b: &mut tar::Builder<W>, dir: &OwnedFd, st: &Stat, name: &str) -> Result<()> {
    let mut h = header(st, tar::EntryType::Directory);
    b.append_data(&mut h, format!("{name}/"), std::io::empty()).map_err(|e| tar_err(name, e))?;
    walk_children(b, dir, st, &format!("{name}/"))
}

/// The entries of a directory (opened `O_PATH`), each under `prefix`, in
/// name order; nothing is opened by a path that a link could redirect.
fn walk_children<W: Write>(b: &mut tar::Builder<W>, dir: &OwnedFd, _st: &Stat, prefix: &str) -> Result<()> {
    let mut names = Vec::new();
    for e in list_dir(dir).map_err(|e| io_err(format!("listing {prefix}"), e))? {
        let e = e.map_err(|e| io_err(format!("listing {prefix}"), e))?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    names.sort();
    for raw in names {
        let n = OsStr::from_bytes(&raw);
        let name = format!("{prefix}{}", n.to_string_lossy());
        let st = match rustix::fs::statat(dir, n, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(s) => s,
            // Gone meanwhile: nothing to copy.
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(io_err(format!("stat {name}"), e)),
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let sub = match rustix::fs::openat(
                    dir,
                    n,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(fd) => fd,
                    // Replaced by something else (a link) meanwhile: not followed.
                    Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                    Err(e) => return Err(io_err(format!("opening {name}"), e)),
                };
                let sst = rustix::fs::fstat(&sub).map_err(|e| io_err(format!("stat {name}"), e))?;
                walk(b, &sub, &sst, &name)?;
            }
            FileType::RegularFile => {
                let fd = match rustix::fs::openat(
                    dir,
                    n,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(fd) => fd,
                    Err(Errno::NOENT | Errno::LOOP) => continue,
                    Err(e) => return Err(io_err(format!("opening {name}"), e)),
                };
                let fst = rustix::fs::fstat(&fd).map_err(|e| io_err(format!("stat {name}"), e))?;
                if FileType::from_raw_mode(fst.st_mode) == FileType::RegularFile {
                    append_file(b, &fst, &name, std::fs::File::from(fd))?;
                } else {
                    append_special(b, &fst, &name)?;
                }
            }
            FileType::Symlink => {
                let t = match rustix::fs::readlinkat(dir, n, Vec::new()) {
                    Ok(t) => t,
                    Err(Errno::NOENT | Errno::INVAL) => continue,
                    Err(e) => return Err(io_err(format!("readlink {name}"), e)),
                };
                append_link(b, &st, &name, CStr::to_bytes(&t))?;
            }
            _ => append_special(b, &st, &name)?,
        }
    }
    Ok(())
}
