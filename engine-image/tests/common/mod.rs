//! Shared test helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A description of every entry in a tree: type, mode, owner, content hash
/// or link target or device, keyed by relative path.
pub fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    let mut names: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    for p in names {
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let m = std::fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let what = if ft.is_symlink() {
            format!("link->{}", std::fs::read_link(&p).unwrap().display())
        } else if ft.is_dir() {
            "dir".to_string()
        } else if ft.is_file() {
            let data = std::fs::read(&p).unwrap();
            format!("file:{}:{}", data.len(), engine_image::digest::sha256(&data))
        } else if ft.is_char_device() {
            format!("chr:{}", m.rdev())
        } else if ft.is_block_device() {
            format!("blk:{}", m.rdev())
        } else if ft.is_fifo() {
            "fifo".to_string()
        } else {
            "other".to_string()
        };
        let mode = if ft.is_symlink() { 0 } else { m.mode() & 0o7777 };
        out.insert(rel, format!("{what} mode={mode:o} uid={} gid={}", m.uid(), m.gid()));
        if ft.is_dir() {
            walk(root, &p, out);
        }
    }
}

/// A fresh busybox rootfs in a temp dir.
pub fn busybox_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    engine_image::build::busybox_rootfs(d.path()).unwrap();
    d
}

/// Unmounts a path on drop (tests clean up even when they fail).
pub struct Unmount(pub PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(self.0.as_os_str().to_string_lossy().as_bytes()).unwrap();
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

pub fn is_mounted(p: &Path) -> bool {
    let s = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let want = p.to_string_lossy();
    s.lines().any(|l| l.split(' ').nth(4) == Some(&want))
}
