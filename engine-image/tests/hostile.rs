//! Hostile layer tars never write outside the snapshot dir.

use engine_image::unpack::{unpack_layer, UnpackOptions};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use tar::EntryType as T;

struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Self {
        Tar(tar::Builder::new(Vec::new()))
    }
    /// Append an entry with the raw path and link name (no sanitizing).
    fn raw(&mut self, path: &str, kind: T, link: &str, data: &[u8], dev: Option<(u32, u32)>) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        let old = h.as_old_mut();
        old.name[..path.len()].copy_from_slice(path.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(if kind == T::Directory { 0o755 } else { 0o644 });
        h.set_mtime(1_600_000_000);
        if let Some((ma, mi)) = dev {
            h.set_device_major(ma).unwrap();
            h.set_device_minor(mi).unwrap();
        }
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }
    fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        self.raw(path, T::Regular, "", data, None)
    }
    fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.raw(path, T::Symlink, target, b"", None)
    }
    fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.raw(path, T::Link, target, b"", None)
    }
    fn bytes(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.0, tar::Builder::new(Vec::new())).into_inner().unwrap()
    }
}

/// outer/ holds the snapshot dir `snap` and a `victim` file that must survive.
struct Case {
    outer: tempfile::TempDir,
}

impl Case {
    fn new() -> Self {
        let outer = tempfile::tempdir().unwrap();
        std::fs::create_dir(outer.path().join("snap")).unwrap();
        std::fs::write(outer.path().join("victim"), "original").unwrap();
        Case { outer }
    }
    fn snap(&self) -> PathBuf {
        self.outer.path().join("snap")
    }
    fn outer(&self) -> &Path {
        self.outer.path()
    }
    fn unpack(&self, tar: Vec<u8>, opts: &UnpackOptions) -> engine_core::Result<engine_image::unpack::UnpackStats> {
        unpack_layer(&tar[..], &self.snap(), opts)
    }
    /// Nothing outside the snapshot changed.
    fn check_outside(&self) {
        let mut names: Vec<_> =
            std::fs::read_dir(self.outer()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, vec!["snap".to_string(), "victim".to_string()]);
        assert_eq!(std::fs::read_to_string(self.outer().join("victim")).unwrap(), "original");
        assert_eq!(std::fs::metadata(self.outer().join("victim")).unwrap().nlink(), 1);
    }
}

#[test]
fn dotdot_and_absolute_paths_stay_inside() {
    let c = Case::new();
    let t = Tar::new().file("../../escape1", b"x").file("/escape2", b"y").file("a/../../../escape3", b"z").bytes();
    c.unpack(t, &Default::default()).unwrap();
    assert!(c.snap().join("escape1").is_file());
    assert!(c.snap().join("escape2").is_file());
    assert!(c.snap().join("escape3").is_file());
    c.check_outside();
}

#[test]
fn absolute_symlink_parent_resolves_inside() {
    let c = Case::new();
    let outer = c.outer().display().to_string();
    // a symlink to the real outer dir, then a write through it
    let t = Tar::new().symlink("evil", &outer).file("evil/victim", b"pwned").bytes();
    let _ = c.unpack(t, &Default::default()); // may fail: the path does not exist inside
    c.check_outside();
    assert_eq!(std::fs::read_link(c.snap().join("evil")).unwrap(), PathBuf::from(&outer), "symlink kept as is");
    // a symlink to / then a write through it lands at the snapshot's root
    let c = Case::new();
    let t = Tar::new().symlink("rootlink", "/").file("rootlink/escape4", b"w").bytes();
    c.unpack(t, &Default::default()).unwrap();
    assert!(c.snap().join("escape4").is_file());
    c.check_outside();
}

#[test]
fn relative_and_chained_symlink_parents_stay_inside() {
    let c = Case::new();
    let outer = c.outer().display().to_string();
    let t = Tar::new()
        .symlink("up", "../../../../..")
        .file("up/escape5", b"1")
        .symlink("b", &outer)
        .symlink("a", "b")
        .file("a/victim", b"pwned")
        .bytes();
    let _ = c.unpack(t, &Default::default());
    c.check_outside();
    assert!(c.snap().join("escape5").is_file(), "../ through a symlink is clamped at the root");
}

#[test]
fn hardlinks_pointing_out_are_refused_or_kept_inside() {
    let c = Case::new();
    let host_passwd_links = std::fs::metadata("/etc/passwd").unwrap().nlink();
    let victim = c.outer().join("victim").display().to_string();
    for target in ["/etc/passwd", "../../../../etc/passwd", victim.as_str(), "../victim"] {
        let t = Tar::new().hardlink("hl", target).bytes();
        let e = c.unpack(t, &Default::default()).unwrap_err();
        assert!(e.to_string().contains("hardlink target"), "{target}: {e}");
    }
    // through a symlinked dir pointing out
    let t = Tar::new().symlink("etcdir", "/etc").hardlink("hl2", "etcdir/passwd").bytes();
    assert!(c.unpack(t, &Default::default()).is_err());
    assert_eq!(std::fs::metadata("/etc/passwd").unwrap().nlink(), host_passwd_links);
    c.check_outside();
    // an in-layer target works, even written as an absolute path
    let c = Case::new();
    let t = Tar::new().file("etc/passwd", b"root:x:0:0::/:/bin/sh\n").hardlink("hl", "/etc/passwd").bytes();
    c.unpack(t, &Default::default()).unwrap();
    let a = std::fs::metadata(c.snap().join("etc/passwd")).unwrap();
    let b = std::fs::metadata(c.snap().join("hl")).unwrap();
    assert_eq!(a.ino(), b.ino());
    c.check_outside();
}

#[test]
fn file_over_symlink_replaces_the_link() {
    let c = Case::new();
    let victim = c.outer().join("victim").display().to_string();
    let t = Tar::new().symlink("link", &victim).file("link", b"pwned").bytes();
    c.unpack(t, &Default::default()).unwrap();
    assert_eq!(std::fs::read_to_string(c.snap().join("link")).unwrap(), "pwned");
    assert!(std::fs::symlink_metadata(c.snap().join("link")).unwrap().is_file());
    c.check_outside();
}

#[test]
fn devices_only_where_allowed_and_only_inside() {
    let c = Case::new();
    let no = UnpackOptions::default().allow_devices(false);
    let t = Tar::new()
        .raw("dev/sda", T::Block, "", b"", Some((8, 0)))
        .raw("../../dev/null2", T::Char, "", b"", Some((1, 3)))
        .raw("fifo", T::Fifo, "", b"", None)
        .bytes();
    c.unpack(t.clone(), &no).unwrap();
    assert!(std::fs::symlink_metadata(c.snap().join("dev/sda")).is_err(), "block device skipped");
    assert!(std::fs::symlink_metadata(c.snap().join("dev/null2")).is_err(), "char device skipped");
    assert!(std::fs::symlink_metadata(c.snap().join("fifo")).unwrap().file_type().is_fifo());
    c.check_outside();
    // allowed: created, inside
    let c = Case::new();
    c.unpack(t, &UnpackOptions::default().allow_devices(true)).unwrap();
    let m = std::fs::symlink_metadata(c.snap().join("dev/null2")).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), libc::makedev(1, 3));
    assert!(std::fs::symlink_metadata(c.snap().join("dev/sda")).unwrap().file_type().is_block_device());
    c.check_outside();
}

#[test]
fn hostile_whiteouts_stay_inside() {
    let c = Case::new();
    let outer = c.outer().display().to_string();
    let t = Tar::new().symlink("o", &outer).file("o/.wh.victim", b"").bytes();
    let _ = c.unpack(t, &Default::default());
    let t = Tar::new().file("../../.wh.victim", b"").bytes();
    c.unpack(t, &Default::default()).unwrap();
    let m = std::fs::symlink_metadata(c.snap().join("victim")).unwrap();
    assert!(m.file_type().is_char_device() && m.rdev() == 0, "whiteout made inside");
    let t = Tar::new().file(".wh...", b"").bytes();
    assert!(c.unpack(t, &Default::default()).is_err());
    let t = Tar::new().symlink("p", &outer).file("p/.wh..wh..opq", b"").bytes();
    let _ = c.unpack(t, &Default::default());
    let cpath = std::ffi::CString::new(outer.as_bytes()).unwrap();
    let key = std::ffi::CString::new("trusted.overlay.opaque").unwrap();
    let mut buf = [0u8; 8];
    let r = unsafe { libc::lgetxattr(cpath.as_ptr(), key.as_ptr(), buf.as_mut_ptr() as *mut _, buf.len()) };
    assert!(r < 0, "outer dir not marked opaque");
    c.check_outside();
}

#[test]
fn metadata_is_applied() {
    let c = Case::new();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(T::Regular);
    h.set_size(3);
    h.set_mode(0o4750);
    h.set_uid(1234);
    h.set_gid(4321);
    h.set_mtime(1_234_567_890);
    b.append_pax_extensions([
        ("SCHILY.xattr.user.test", b"val".as_slice()),
        ("SCHILY.xattr.trusted.overlay.redirect", b"/etc".as_slice()),
    ])
    .unwrap();
    b.append_data(&mut h, "bin/tool", &b"abc"[..]).unwrap();
    let t = b.into_inner().unwrap();
    c.unpack(t, &Default::default()).unwrap();
    let m = std::fs::symlink_metadata(c.snap().join("bin/tool")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid(), m.mtime()), (0o4750, 1234, 4321, 1_234_567_890));
    let p = std::ffi::CString::new(c.snap().join("bin/tool").to_string_lossy().as_bytes()).unwrap();
    let mut buf = [0u8; 16];
    let k = std::ffi::CString::new("user.test").unwrap();
    let n = unsafe { libc::lgetxattr(p.as_ptr(), k.as_ptr(), buf.as_mut_ptr() as *mut _, buf.len()) };
    assert_eq!(&buf[..n.max(0) as usize], b"val");
    let k = std::ffi::CString::new("trusted.overlay.redirect").unwrap();
    assert!(
        unsafe { libc::lgetxattr(p.as_ptr(), k.as_ptr(), buf.as_mut_ptr() as *mut _, buf.len()) } < 0,
        "overlay xattrs from a tar are dropped"
    );
}

#[test]
fn corrupt_and_mismatched_layers_fail_clearly() {
    let c = Case::new();
    let t = Tar::new().file("a", &vec![1u8; 10_000]).file("b", b"x").bytes();
    let e = c.unpack(t[..3000].to_vec(), &Default::default()).unwrap_err();
    assert!(e.to_string().contains("corrupt or truncated"), "{e}");
    let opts = UnpackOptions::default().expected_diff_id(Some(engine_image::digest::sha256(b"other")));
    let e = c.unpack(t, &opts).unwrap_err();
    assert!(e.to_string().contains("does not match"), "{e}");
    c.check_outside();
}
