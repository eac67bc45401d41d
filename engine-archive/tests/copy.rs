//! Copies in and out of a root directory, with hostile archives and a tree
//! that changes under the copy: nothing outside the root is ever read or
//! written (the host files the links point at are checked themselves).

use engine_archive::{ContainerRoot, ExtractOptions};
use std::io::Cursor;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

/// A host directory outside the root, with a secret file: what a hostile
/// container tries to reach.
struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::Builder::new().prefix("archive-host-").tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "HOST-SECRET").unwrap();
        Host { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    /// Only the secret is there, unchanged.
    fn untouched(&self) {
        let names: Vec<_> = std::fs::read_dir(self.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("secret")],
            "written into the host dir {}",
            self.path().display()
        );
        assert_eq!(std::fs::read_to_string(self.path().join("secret")).unwrap(), "HOST-SECRET");
    }
}

fn entries(tar: &[u8]) -> Vec<(String, tar::EntryType, Vec<u8>)> {
    let mut a = tar::Archive::new(Cursor::new(tar));
    a.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            (e.path().unwrap().display().to_string(), e.header().entry_type(), data)
        })
        .collect()
}

fn tar_of(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    build(&mut b);
    b.into_inner().unwrap()
}

fn file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o640);
    h.set_uid(1234);
    h.set_gid(5678);
    h.set_mtime(1_600_000_000);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, data).unwrap();
}

/// A raw header whose name is written as is (the tar crate refuses `..` and
/// absolute names when it builds one, so hostile names are set by hand).
fn raw_entry(b: &mut tar::Builder<Vec<u8>>, name: &str, kind: tar::EntryType, link: &str, data: &[u8]) {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

#[test]
fn a_tree_goes_out_and_back_with_modes_owners_links() {
    let src = tempfile::tempdir().unwrap();
    let d = src.path().join("data");
    std::fs::create_dir_all(d.join("sub")).unwrap();
    std::fs::write(d.join("sub/a.txt"), "alpha").unwrap();
    std::fs::set_permissions(d.join("sub/a.txt"), std::fs::Permissions::from_mode(0o751)).unwrap();
    std::os::unix::fs::chown(d.join("sub/a.txt"), Some(1001), Some(1002)).unwrap();
    symlink("sub/a.txt", d.join("link")).unwrap();
    std::fs::hard_link(d.join("sub/a.txt"), d.join("hard")).unwrap();
    let root = ContainerRoot::open_dir(src.path()).unwrap();
    let mut tar = Vec::new();
    let st = root.write_tar("/data", &mut tar).unwrap();
    assert!(st.is_dir());
    assert_eq!(st.name, "data");
    let names: Vec<String> = entries(&tar).into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(names, ["data/", "data/hard", "data/link", "data/sub/", "data/sub/a.txt"]);

    let dst = tempfile::tempdir().unwrap();
    std::fs::create_dir(dst.path().join("in")).unwrap();
    let droot = ContainerRoot::open_dir(dst.path()).unwrap();
    droot.extract_tar("/in", Cursor::new(&tar), &ExtractOptions::default().copy_uid_gid(true)).unwrap();
    let a = dst.path().join("in/data/sub/a.txt");
    assert_eq!(std::fs::read_to_string(&a).unwrap(), "alpha");
    let m = std::fs::metadata(&a).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o751, 1001, 1002));
    assert_eq!(std::fs::read_link(dst.path().join("in/data/link")).unwrap(), Path::new("sub/a.txt"));
    assert_eq!(std::fs::read_to_string(dst.path().join("in/data/hard")).unwrap(), "alpha");
    // Without copy_uid_gid everything belongs to root.
    let dst2 = tempfile::tempdir().unwrap();
    ContainerRoot::open_dir(dst2.path())
        .unwrap()
        .extract_tar("/", Cursor::new(&tar), &ExtractOptions::default())
        .unwrap();
    let m = std::fs::metadata(dst2.path().join("data/sub/a.txt")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (0, 0, 0o751));
    // A single file comes out under its base name; stat sees a link as a link.
    let mut one = Vec::new();
    root.write_tar("/data/sub/a.txt", &mut one).unwrap();
    assert_eq!(entries(&one), vec![("a.txt".to_string(), tar::EntryType::Regular, b"alpha".to_vec())]);
    let ls = root.stat("/data/link").unwrap();
    assert!(ls.is_symlink());
    assert_eq!(ls.link_target.as_deref(), Some("sub/a.txt"));
    assert_eq!(root.read_file("/data/link").unwrap(), b"alpha");
    assert!(root.stat("/data/nope").unwrap_err().is_not_found());
}

#[test]
fn links_out_of_the_root_are_read_inside_it() {
    let host = Host::new();
    let r = tempfile::tempdir().unwrap();
    symlink(host.path().join("secret"), r.path().join("abs")).unwrap();
    symlink("../../../../../../../../".to_string() + host.path().to_str().unwrap(), r.path().join("up")).unwrap();
    std::fs::create_dir(r.path().join("d")).unwrap();
    symlink(host.path(), r.path().join("d/hostdir")).unwrap();
    let root = ContainerRoot::open_dir(r.path()).unwrap();
    // Reading through either link resolves inside the root, where no such file is.
    assert!(root.read_file("/abs").unwrap_err().is_not_found());
    assert!(root.read_file("/up/secret").unwrap_err().is_not_found());
    assert!(root.read_file("/d/hostdir/secret").unwrap_err().is_not_found());
    // A tar of the directory holds the link, never the file behind it.
    let mut tar = Vec::new();
    root.write_tar("/d", &mut tar).unwrap();
    for (n, _, data) in entries(&tar) {
        assert!(!String::from_utf8_lossy(&data).contains("HOST-SECRET"), "{n} carried the host's file");
    }
    // Through the link (a trailing slash follows it): inside the root, nothing there.
    assert!(root.write_tar("/d/hostdir/", &mut Vec::new()).unwrap_err().is_not_found());
    host.untouched();
}

#[test]
fn hostile_archives_write_nothing_outside() {
    let host = Host::new();
    let r = tempfile::tempdir().unwrap();
    std::fs::create_dir(r.path().join("dest")).unwrap();
    let root = ContainerRoot::open_dir(r.path()).unwrap();
    let opts = ExtractOptions::default();
    // `..` is refused, naming the entry.
    let t = tar_of(|b| raw_entry(b, "../escape", tar::EntryType::Regular, "", b"x"));
    let e = root.extract_tar("/dest", Cursor::new(t), &opts).unwrap_err();
    assert!(e.to_string().contains("../escape"), "{e}");
    assert!(!r.path().join("escape").exists());
    // An absolute name lands under the destination.
    let abs = format!("{}/abs-file", host.path().display());
    let t = tar_of(|b| raw_entry(b, &abs, tar::EntryType::Regular, "", b"x"));
    root.extract_tar("/dest", Cursor::new(t), &opts).unwrap();
    assert!(r.path().join("dest").join(abs.trim_start_matches('/')).exists());
    // A link to a host directory, then a file written through it: the link
    // is followed inside the root (where that directory does not exist: an
    // error; where it does: the file lands there).
    let hp = host.path().to_str().unwrap().to_string();
    let t = tar_of(|b| {
        raw_entry(b, "evil", tar::EntryType::Symlink, &hp, b"");
        raw_entry(b, "evil/pwned", tar::EntryType::Regular, "", b"x");
    });
    let e = root.extract_tar("/dest", Cursor::new(t.clone()), &opts).unwrap_err();
    assert!(e.to_string().contains("/dest/evil"), "{e}");
    std::fs::create_dir_all(r.path().join(hp.trim_start_matches('/'))).unwrap();
    root.extract_tar("/dest", Cursor::new(t), &opts).unwrap();
    assert!(r.path().join(hp.trim_start_matches('/')).join("pwned").exists());
    let t = tar_of(|b| {
        raw_entry(b, "up", tar::EntryType::Symlink, "../../../../../../../..", b"");
        raw_entry(b, "up/pwned2", tar::EntryType::Regular, "", b"x");
    });
    root.extract_tar("/dest", Cursor::new(t), &opts).unwrap();
    assert!(r.path().join("pwned2").exists());
    // A destination that is itself a link to the host resolves inside too.
    symlink(host.path(), r.path().join("dest/tohost")).unwrap();
    let t = tar_of(|b| file(b, "through-dest", b"x"));
    root.extract_tar("/dest/tohost", Cursor::new(t), &opts).unwrap();
    // Hard links: out with `..` refused; to a host file through a link, not found in the root.
    let t = tar_of(|b| raw_entry(b, "hl", tar::EntryType::Link, "../../etc/hostname", b""));
    let e = root.extract_tar("/dest", Cursor::new(t), &opts).unwrap_err();
    assert!(e.to_string().contains("hl"), "{e}");
    let secret = host.path().join("secret");
    let t = tar_of(|b| raw_entry(b, "hl2", tar::EntryType::Link, secret.to_str().unwrap(), b""));
    let e = root.extract_tar("/dest", Cursor::new(t), &opts).unwrap_err();
    assert!(e.to_string().contains("hl2"), "{e}");
    // Device nodes are refused.
    let t = tar_of(|b| raw_entry(b, "dev", tar::EntryType::Block, "", b""));
    let e = root.extract_tar("/dest", Cursor::new(t), &opts).unwrap_err();
    assert!(e.to_string().contains("\"dev\""), "{e}");
    // Long names (GNU long name and PAX) land where they say.
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(150));
    let t = tar_of(|b| file(b, &long, b"long"));
    root.extract_tar("/dest", Cursor::new(t), &opts).unwrap();
    assert_eq!(std::fs::read(r.path().join("dest").join(&long)).unwrap(), b"long");
    let pax_name = format!("{}/pax", "p".repeat(200));
    let t = tar_of(|b| {
        b.append_pax_extensions([("path", pax_name.as_bytes())]).unwrap();
        file(b, "short", b"pax");
    });
    root.extract_tar("/dest", Cursor::new(t), &opts).unwrap();
    assert_eq!(std::fs::read(r.path().join("dest").join(&pax_name)).unwrap(), b"pax");
    host.untouched();
}

#[test]
fn a_tree_swapped_for_a_link_during_copies_never_reaches_the_host() {
    // A "container" swaps /swap between a real directory and a link to the
    // host's directory as fast as it can while copies run both ways.
    let host = Host::new();
    let r = tempfile::tempdir().unwrap();
    let rp = r.path().to_path_buf();
    std::fs::create_dir(rp.join("swap")).unwrap();
    std::fs::write(rp.join("swap/secret"), "container-file").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Swaps made so far: the copies go on until the swapper has really run
    // (on a loaded machine 400 copies can end before it is first scheduled).
    let swapped = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let swapper = {
        let (rp, hp, stop, swapped) = (rp.clone(), host.path().to_path_buf(), stop.clone(), swapped.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 2_000_000 {
                let _ = std::fs::rename(rp.join("swap"), rp.join("swap.dir"));
                let _ = symlink(&hp, rp.join("swap"));
                let _ = std::fs::remove_file(rp.join("swap"));
                let _ = std::fs::rename(rp.join("swap.dir"), rp.join("swap"));
                n += 1;
                swapped.store(n, std::sync::atomic::Ordering::Relaxed);
            }
            n
        })
    };
    let root = ContainerRoot::open_dir(&rp).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut copies = 0;
    while (copies < 400 || swapped.load(std::sync::atomic::Ordering::Relaxed) < 200)
        && std::time::Instant::now() < deadline
    {
        let mut tar = Vec::new();
        if root.write_tar("/swap", &mut tar).is_ok() {
            for (n, _, data) in entries(&tar) {
                assert!(!String::from_utf8_lossy(&data).contains("HOST-SECRET"), "{n} carried the host's file");
            }
        }
        if let Ok(d) = root.read_file("/swap/secret") {
            assert_eq!(d, b"container-file");
        }
        let t = tar_of(|b| file(b, "dropped", b"x"));
        let _ = root.extract_tar("/swap", Cursor::new(t), &ExtractOptions::default());
        copies += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(copies > 10 && swaps > 10, "{copies} copies against {swaps} swaps");
    host.untouched();
}
