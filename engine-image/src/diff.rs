//! Directory to layer tar: the inverse of unpacking. Walks a directory (an
//! overlay upper dir, or any rootfs) and writes a layer tar with overlay
//! whiteouts (char device 0:0) turned into `.wh.` entries and opaque
//! directories into `.wh..wh..opq`, keeping hardlinks, symlinks, devices,
//! owners, modes, xattrs and mtimes.

use crate::sys;
use crate::unpack::{OPAQUE_MARKER, OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX};
use engine_core::{Error, Result};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

struct Walker<W: Write> {
    tar: tar::Builder<W>,
    links: HashMap<(u64, u64), Vec<u8>>,
}

fn header_for(st: &sys::Stat, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(size);
    h
}

impl<W: Write> Walker<W> {
    fn xattrs(&mut self, dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
        let p = sys::fd_path(dir, name);
        let attrs: Vec<(String, Vec<u8>)> = sys::llistxattr(&p)?
            .into_iter()
            .filter(|(k, _)| !k.starts_with(b"trusted.overlay."))
            .map(|(k, v)| (format!("SCHILY.xattr.{}", String::from_utf8_lossy(&k)), v))
            .collect();
        if !attrs.is_empty() {
            self.tar.append_pax_extensions(attrs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
        }
        Ok(())
    }

    fn dir(&mut self, fd: BorrowedFd<'_>, rel: &[u8]) -> io::Result<()> {
        let mut names = sys::list_dir(fd)?;
        names.sort();
        for n in names {
            let nb = n.as_bytes();
            let c = sys::cstr(nb)?;
            let Some(st) = sys::lstat_at(fd, &c)? else { continue };
            let mut path = rel.to_vec();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(nb);
            let fmt = st.st_mode & libc::S_IFMT;
            let p = Path::new(OsStr::from_bytes(&path));
            match fmt {
                libc::S_IFCHR if st.st_rdev == 0 => {
                    let mut wpath = rel.to_vec();
                    if !wpath.is_empty() {
                        wpath.push(b'/');
                    }
                    wpath.extend_from_slice(WHITEOUT_PREFIX.as_bytes());
                    wpath.extend_from_slice(nb);
                    let mut h = header_for(&st, tar::EntryType::Regular, 0);
                    h.set_mode(0o644);
                    self.tar.append_data(&mut h, Path::new(OsStr::from_bytes(&wpath)), io::empty())?;
                }
                libc::S_IFDIR => {
                    self.xattrs(fd, nb)?;
                    let mut h = header_for(&st, tar::EntryType::Directory, 0);
                    self.tar.append_data(&mut h, p, io::empty())?;
                    let opaque = sys::lgetxattr(&sys::fd_path(fd, nb), OVERLAY_OPAQUE_XATTR.as_bytes())?;
                    if opaque.as_deref() == Some(b"y") {
                        let mut op = path.clone();
                        op.push(b'/');
                        op.extend_from_slice(OPAQUE_MARKER.as_bytes());
                        let mut h = header_for(&st, tar::EntryType::Regular, 0);
                        h.set_mode(0o644);
                        self.tar.append_data(&mut h, Path::new(OsStr::from_bytes(&op)), io::empty())?;
                    }
                    let sub = sys::open_dir_at(fd, &c)?;
                    self.dir(sub.as_fd(), &path)?;
                }
                libc::S_IFREG => {
                    if st.st_nlink > 1 {
                        let key = (st.st_dev, st.st_ino);
                        if let Some(first) = self.links.get(&key) {
                            let mut h = header_for(&st, tar::EntryType::Link, 0);
                            let first = first.clone();
                            self.tar.append_link(&mut h, p, Path::new(OsStr::from_bytes(&first)))?;
                            continue;
                        }
                        self.links.insert(key, path.clone());
                    }
                    self.xattrs(fd, nb)?;
                    let f = sys::open_file_at(fd, &c)?;
                    let mut h = header_for(&st, tar::EntryType::Regular, st.st_size as u64);
                    self.tar.append_data(&mut h, p, f)?;
                }
                libc::S_IFLNK => {
                    let buf = sys::readlink_at(fd, &c)?;
                    let mut h = header_for(&st, tar::EntryType::Symlink, 0);
                    self.tar.append_link(&mut h, p, Path::new(OsStr::from_bytes(&buf)))?;
                }
                libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
                    let kind = match fmt {
                        libc::S_IFCHR => tar::EntryType::Char,
                        libc::S_IFBLK => tar::EntryType::Block,
                        _ => tar::EntryType::Fifo,
                    };
                    let mut h = header_for(&st, kind, 0);
                    h.set_device_major(rustix::fs::major(st.st_rdev))?;
                    h.set_device_minor(rustix::fs::minor(st.st_rdev))?;
                    self.tar.append_data(&mut h, p, io::empty())?;
                }
                _ => {} // sockets are not archived
            }
        }
        Ok(())
    }
}

/// Write the contents of `dir` as a layer tar to `w`; returns `w`.
///
/// ```no_run
/// let mut out = Vec::new();
/// engine_image::diff::write_layer_tar(std::path::Path::new("/tmp/upper"), &mut out)?;
/// # Ok::<(), engine_core::Error>(())
/// ```
pub fn write_layer_tar<W: Write>(dir: &Path, w: W) -> Result<W> {
    let what = || format!("archive {}", dir.display());
    let fd = sys::open_dir(dir).map_err(|e| Error::io(what(), e))?;
    let mut tar = tar::Builder::new(w);
    tar.follow_symlinks(false);
    let mut walker = Walker { tar, links: HashMap::new() };
    walker.dir(fd.as_fd(), b"").map_err(|e| Error::io(what(), e))?;
    walker.tar.into_inner().map_err(|e| Error::io(what(), e))
}
