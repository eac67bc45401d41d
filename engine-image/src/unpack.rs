//! Safe layer unpacking: a (compressed) layer tar into one snapshot
//! directory, with whiteouts in overlayfs form.
//!
//! Every entry path is cleaned lexically (`..` cannot climb above the root,
//! a leading `/` is dropped), its parent directory is opened with
//! `openat2(RESOLVE_IN_ROOT)` so symlinks in the path resolve *inside* the
//! snapshot, and the last component is created with `*at` calls that never
//! follow a symlink. Hostile tars therefore never write outside the root.

use crate::digest::HashingReader;
use crate::sys;
use engine_core::{Error, Result};
use std::ffi::CString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

/// The whiteout prefix of the layer format.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The opaque-directory marker of the layer format.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The xattr overlayfs reads to make a directory opaque.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// How to unpack.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct UnpackOptions {
    /// Create character and block device nodes (else they are skipped with a
    /// warning). Default: true when running as root.
    pub allow_devices: bool,
    /// Apply the owners recorded in the tar. Default: true when running as root.
    pub chown: bool,
    /// The expected digest of the uncompressed tar (the layer's diff id).
    pub expected_diff_id: Option<String>,
}

engine_core::__setters!(UnpackOptions { allow_devices: bool, chown: bool, expected_diff_id: Option<String> });

impl Default for UnpackOptions {
    fn default() -> Self {
        let root = rustix::process::geteuid().is_root();
        UnpackOptions { allow_devices: root, chown: root, expected_diff_id: None }
    }
}

/// What an unpack found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnpackStats {
    /// sha256 of the uncompressed tar.
    pub diff_id: String,
    /// Bytes of file content unpacked.
    pub size: u64,
    /// Entries unpacked.
    pub entries: u64,
}

engine_core::__setters!(UnpackStats { diff_id: String, size: u64, entries: u64 });

/// Compression of a layer blob, detected from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// Detect the compression of a buffered stream without consuming it.
pub fn detect<R: BufRead>(r: &mut R) -> io::Result<Compression> {
    let head = r.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    })
}

/// Wrap `r` in the decompressor its magic bytes call for.
pub fn decompress<'a, R: Read + 'a>(r: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut br = BufReader::with_capacity(256 * 1024, r);
    Ok(match detect(&mut br)? {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(br)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(br)?),
        Compression::None => Box::new(br),
    })
}

/// Split a tar path into clean components: empty and `.` dropped, `..`
/// removes the previous component but never climbs above the root.
pub fn clean_path(path: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    for c in path.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

fn join(comps: &[&[u8]]) -> Vec<u8> {
    comps.join(&b'/')
}

struct Unpacker {
    root: OwnedFd,
    opts: UnpackOptions,
    cache: Option<(Vec<u8>, Arc<OwnedFd>)>,
    dir_times: Vec<(Vec<u8>, i64)>,
    buf: Vec<u8>,
}

fn ioerr(what: &str, path: &[u8], e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {:?}: {e}", String::from_utf8_lossy(path)))
}

impl Unpacker {
    /// Open (creating missing directories) `parent` inside the root.
    fn parent(&mut self, parent: &[&[u8]]) -> io::Result<Arc<OwnedFd>> {
        let key = join(parent);
        if let Some((k, fd)) = &self.cache {
            if *k == key {
                return Ok(fd.clone());
            }
        }
        let fd = match sys::open_dir_in_root(self.root.as_fd(), &key) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let mut cur = sys::open_dir_in_root(self.root.as_fd(), b".")?;
                for i in 0..parent.len() {
                    match sys::open_dir_in_root(self.root.as_fd(), &join(&parent[..=i])) {
                        Ok(fd) => cur = fd,
                        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                            let name = sys::cstr(parent[i])?;
                            sys::mkdir_at(cur.as_fd(), &name, 0o755)
                                .map_err(|e| ioerr("create directory", &join(&parent[..=i]), e))?;
                            cur = sys::open_dir_at(cur.as_fd(), &name)?;
                        }
                        Err(e) => return Err(ioerr("open directory", &join(&parent[..=i]), e)),
                    }
                }
                cur
            }
            Err(e) => return Err(ioerr("open directory", &key, e)),
        };
        let fd = Arc::new(fd);
        self.cache = Some((key, fd.clone()));
        Ok(fd)
    }

    fn remove_existing(&mut self, dir: BorrowedFd<'_>, name: &CString, keep_dir: bool) -> io::Result<bool> {
        match sys::lstat_at(dir, name)? {
            None => Ok(false),
            Some(st) if sys::is_dir(&st) && keep_dir => Ok(true),
            Some(st) => {
                if sys::is_dir(&st) {
                    self.cache = None;
                }
                sys::remove_at(dir, name)?;
                Ok(false)
            }
        }
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> io::Result<u64> {
        let path = entry.path_bytes().into_owned();
        let comps = clean_path(&path);
        let Some((&last, parent)) = comps.split_last() else {
            return Ok(0); // the root itself
        };
        let last = last.to_vec();
        let parent: Vec<Vec<u8>> = parent.iter().map(|c| c.to_vec()).collect();
        let parent_refs: Vec<&[u8]> = parent.iter().map(|c| c.as_slice()).collect();
        let header = entry.header().clone();
        let kind = header.entry_type();

        // Whiteouts.
        if last == OPAQUE_MARKER.as_bytes() {
            let dir_fd = self.parent(&parent_refs)?;
            let dir = dir_fd.as_fd();
            let p = sys::fd_path(dir, b".");
            sys::lsetxattr(&p, OVERLAY_OPAQUE_XATTR.as_bytes(), b"y")
                .map_err(|e| ioerr("mark opaque", &join(&parent_refs), e))?;
            return Ok(0);
        }
        if let Some(hidden) = last.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "whiteout without a name"));
            }
            let dir_fd = self.parent(&parent_refs)?;
            let dir = dir_fd.as_fd();
            let name = sys::cstr(hidden)?;
            self.remove_existing(dir, &name, false)?;
            sys::mknod_at(dir, &name, libc::S_IFCHR, sys::makedev(0, 0)).map_err(|e| ioerr("whiteout", &path, e))?;
            return Ok(0);
        }

        let mut xattrs = Vec::new();
        if let Some(exts) = entry.pax_extensions()? {
            for ext in exts {
                let ext = ext?;
                if let Some(k) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                    if !k.starts_with(b"trusted.overlay.") {
                        xattrs.push((k.to_vec(), ext.value_bytes().to_vec()));
                    }
                }
            }
        }
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let uid = header.uid().unwrap_or(0) as u32;
        let gid = header.gid().unwrap_or(0) as u32;
        let mtime = header.mtime().unwrap_or(0) as i64;
        let name = sys::cstr(&last)?;
        let dir_fd = self.parent(&parent_refs)?;
        let dir = dir_fd.as_fd();
        let mut size = 0;
        use tar::EntryType as T;
        match kind {
            T::Directory => {
                let exists = self.remove_existing(dir, &name, true)?;
                if !exists {
                    sys::mkdir_at(dir, &name, 0o700).map_err(|e| ioerr("create directory", &path, e))?;
                }
                let fd = sys::open_dir_at(dir, &name)?;
                if self.opts.chown {
                    sys::chown_at(dir, &name, uid, gid).map_err(|e| ioerr("chown", &path, e))?;
                }
                sys::fchmod(fd.as_fd(), mode).map_err(|e| ioerr("chmod", &path, e))?;
                self.dir_times.push((join(&comps), mtime));
            }
            T::Regular | T::Continuous | T::GNUSparse => {
                self.remove_existing(dir, &name, false)?;
                let mut f = sys::open_file_excl(dir, &name).map_err(|e| ioerr("create", &path, e))?;
                loop {
                    let n = match entry.read(&mut self.buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(ioerr("read", &path, e)),
                    };
                    f.write_all(&self.buf[..n]).map_err(|e| ioerr("write", &path, e))?;
                    size += n as u64;
                }
                if self.opts.chown {
                    sys::chown_at(dir, &name, uid, gid).map_err(|e| ioerr("chown", &path, e))?;
                }
                sys::fchmod(f.as_fd(), mode).map_err(|e| ioerr("chmod", &path, e))?;
            }
            T::Symlink => {
                let target = entry.link_name_bytes().map(|c| c.into_owned()).unwrap_or_default();
                self.remove_existing(dir, &name, false)?;
                self.cache = None;
                let dir_fd = self.parent(&parent_refs)?;
                let dir = dir_fd.as_fd();
                let t = sys::cstr(&target)?;
                sys::symlink_at(&t, dir, &name).map_err(|e| ioerr("symlink", &path, e))?;
                if self.opts.chown {
                    sys::chown_at(dir, &name, uid, gid).map_err(|e| ioerr("chown", &path, e))?;
                }
            }
            T::Link => {
                let target = entry.link_name_bytes().map(|c| c.into_owned()).unwrap_or_default();
                let tcomps = clean_path(&target);
                let Some((&tlast, tparent)) = tcomps.split_last() else {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "hardlink to the root"));
                };
                let tname = sys::cstr(tlast)?;
                let tdir = sys::open_dir_in_root(self.root.as_fd(), &join(tparent))
                    .map_err(|e| ioerr("hardlink target", &target, e))?;
                match sys::lstat_at(tdir.as_fd(), &tname)? {
                    None => {
                        return Err(ioerr(
                            "hardlink target",
                            &target,
                            io::Error::new(io::ErrorKind::NotFound, "not in this layer"),
                        ))
                    }
                    Some(st) if sys::is_dir(&st) => {
                        return Err(ioerr(
                            "hardlink target",
                            &target,
                            io::Error::new(io::ErrorKind::InvalidData, "is a directory"),
                        ))
                    }
                    Some(_) => {}
                }
                if join(&tcomps) == join(&comps) {
                    return Ok(0);
                }
                let dir_fd = self.parent(&parent_refs)?;
                let dir = dir_fd.as_fd();
                self.remove_existing(dir, &name, false)?;
                let dir_fd = self.parent(&parent_refs)?;
                let dir = dir_fd.as_fd();
                sys::link_at(tdir.as_fd(), &tname, dir, &name).map_err(|e| ioerr("hardlink", &path, e))?;
                return Ok(0);
            }
            T::Char | T::Block | T::Fifo => {
                let fmt = match kind {
                    T::Char => libc::S_IFCHR,
                    T::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                if fmt != libc::S_IFIFO && !self.opts.allow_devices {
                    tracing::warn!(path = %String::from_utf8_lossy(&path), "device node skipped: devices not allowed");
                    return Ok(0);
                }
                let dev = if fmt == libc::S_IFIFO {
                    0
                } else {
                    sys::makedev(
                        header.device_major().ok().flatten().unwrap_or(0),
                        header.device_minor().ok().flatten().unwrap_or(0),
                    )
                };
                self.remove_existing(dir, &name, false)?;
                sys::mknod_at(dir, &name, fmt | 0o600, dev).map_err(|e| ioerr("mknod", &path, e))?;
                if self.opts.chown {
                    sys::chown_at(dir, &name, uid, gid).map_err(|e| ioerr("chown", &path, e))?;
                }
                sys::chmod_at(dir, &name, mode).map_err(|e| ioerr("chmod", &path, e))?;
            }
            other => {
                tracing::debug!(?other, path = %String::from_utf8_lossy(&path), "tar entry type skipped");
                return Ok(0);
            }
        }
        let dir_fd = self.parent(&parent_refs)?;
        let dir = dir_fd.as_fd();
        if !xattrs.is_empty() && kind != T::Symlink {
            let p = sys::fd_path(dir, &last);
            for (k, v) in &xattrs {
                if let Err(e) = sys::lsetxattr(&p, k, v) {
                    tracing::warn!(path = %String::from_utf8_lossy(&path), key = %String::from_utf8_lossy(k), "xattr not set: {e}");
                }
            }
        }
        if kind != T::Directory {
            sys::utimes_at(dir, &name, mtime).map_err(|e| ioerr("set times", &path, e))?;
        }
        Ok(size)
    }

    fn finish_dir_times(&mut self) -> io::Result<()> {
        self.cache = None;
        let times = std::mem::take(&mut self.dir_times);
        for (path, mtime) in times.iter().rev() {
            let comps = clean_path(path);
            if let Some((last, parent)) = comps.split_last() {
                if let Ok(dir) = sys::open_dir_in_root(self.root.as_fd(), &join(parent)) {
                    let name = sys::cstr(last)?;
                    let _ = sys::utimes_at(dir.as_fd(), &name, *mtime);
                }
            }
        }
        Ok(())
    }
}

/// Unpack a layer (plain, gzip or zstd tar, detected) into `dest`, an
/// existing directory. Checks the uncompressed digest against
/// `opts.expected_diff_id` once the whole stream is read.
pub fn unpack_layer<R: Read>(reader: R, dest: &Path, opts: &UnpackOptions) -> Result<UnpackStats> {
    let what = || format!("unpack layer into {}", dest.display());
    let root = sys::open_dir(dest).map_err(|e| Error::io(what(), e))?;
    let plain = decompress(reader).map_err(|e| Error::io(what(), e))?;
    let hashing = HashingReader::new(plain);
    let mut archive = tar::Archive::new(hashing);
    let mut u = Unpacker { root, opts: opts.clone(), cache: None, dir_times: Vec::new(), buf: vec![0u8; 1 << 20] };
    let mut size = 0;
    let mut entries = 0;
    {
        let iter = archive.entries().map_err(|e| Error::io(what(), e))?;
        for entry in iter {
            let mut entry = entry.map_err(|e| Error::invalid(what(), format!("corrupt or truncated layer: {e}")))?;
            size += u.entry(&mut entry).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof || e.kind() == io::ErrorKind::InvalidData {
                    Error::invalid(what(), format!("corrupt or truncated layer: {e}"))
                } else {
                    Error::io(what(), e)
                }
            })?;
            entries += 1;
        }
    }
    u.finish_dir_times().map_err(|e| Error::io(what(), e))?;
    let (diff_id, _) = archive
        .into_inner()
        .finish()
        .map_err(|e| Error::invalid(what(), format!("corrupt or truncated layer: {e}")))?;
    if let Some(exp) = &opts.expected_diff_id {
        if *exp != diff_id {
            return Err(Error::invalid(
                what(),
                format!("uncompressed layer digest {diff_id} does not match the image's diff id {exp}"),
            ));
        }
    }
    Ok(UnpackStats { diff_id, size, entries })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn clean() {
        let c = |p: &str| {
            clean_path(p.as_bytes())
                .iter()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("/")
        };
        assert_eq!(c("../../etc/passwd"), "etc/passwd");
        assert_eq!(c("/abs/./x"), "abs/x");
        assert_eq!(c("a/../../b"), "b");
        assert_eq!(c("./"), "");
    }
}
