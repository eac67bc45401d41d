//! Store tests without a registry: import, prepare, whiteouts, archives, gc.

mod common;
use common::*;
use engine_core::{ArchiveFormat, ImageStore};
use engine_image::build::{self, ImageOptions};
use engine_image::Store;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test]
async fn import_dir_prepare_run_ready_and_gc() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let bb = busybox_dir();
    let img = store.import_dir(bb.path(), "bb-local:v1").await.unwrap();
    assert_eq!(img.repo_tags, vec!["docker.io/library/bb-local:v1".to_string()]);
    assert!(img.size > 500_000, "size {}", img.size);
    assert_eq!(store.inspect("bb-local:v1").await.unwrap().id, img.id);
    assert_eq!(store.inspect(&img.id[7..19]).await.unwrap().id, img.id);
    let e = store.inspect("nope:v1").await.unwrap_err();
    assert!(e.is_not_found() && e.to_string().contains("nope:v1"), "{e}");

    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("rootfs");
    let rootfs = store.prepare_rootfs("bb-local:v1", "c1", &target).await.unwrap();
    let _g = Unmount(target.clone());
    assert!(is_mounted(&target), "overlay mounted at {}", target.display());
    assert_eq!(tree(&target), tree(bb.path()));
    std::fs::write(target.join("tmp/hello"), b"hi").unwrap();
    assert_eq!(std::fs::read(rootfs.upper.join("tmp/hello")).unwrap(), b"hi");
    // in use: removal is a conflict
    let e = store.remove("bb-local:v1", false).await.unwrap_err();
    assert!(e.is_conflict(), "{e}");
    // the diff holds only the change
    let diff = work.path().join("diff.tar");
    store.diff_rootfs("c1", &diff).await.unwrap();
    let mut ar = tar::Archive::new(std::fs::File::open(&diff).unwrap());
    let names: Vec<String> =
        ar.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, vec!["tmp".to_string(), "tmp/hello".to_string()]);

    // The rootfs record is on disk: another store on the same root knows it.
    let again = Store::open(root.path()).unwrap();
    assert_eq!(again.rootfs("c1").await.unwrap().upper, rootfs.upper);
    drop(again);
    store.remove_rootfs("c1").await.unwrap();
    assert!(!is_mounted(&target));
    assert!(!root.path().join("rootfs/c1").exists(), "rootfs dir left behind");
    let e = store.remove_rootfs("c1").await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    // A prepare cut short (a directory, no record) is cleared by a removal.
    std::fs::create_dir_all(root.path().join("rootfs/cut/upper/x")).unwrap();
    assert!(store.remove_rootfs("cut").await.unwrap_err().is_not_found());
    assert!(!root.path().join("rootfs/cut").exists());
    // two tags: removing by id is a conflict, by tag only untags
    store.tag("bb-local:v1", "bb-local:v2").await.unwrap();
    let e = store.remove(&img.id, false).await.unwrap_err();
    assert!(e.is_conflict() && e.to_string().contains("multiple repositories"), "{e}");
    let removed = store.remove("bb-local:v2", false).await.unwrap();
    assert_eq!(removed, vec![engine_core::Removed::Untagged("docker.io/library/bb-local:v2".into())]);
    assert_eq!(store.inspect("bb-local:v1").await.unwrap().id, img.id);
    let removed = store.remove("bb-local:v1", false).await.unwrap();
    assert!(removed.contains(&engine_core::Removed::Deleted(img.id.clone())), "{removed:?}");
    assert_eq!(count(&root.path().join("blobs/sha256")), 0, "blobs collected");
    assert_eq!(count(&root.path().join("snapshots")), 0, "snapshots collected");
    assert!(store.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn docker_archive_and_oci_round_trips() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let bb = busybox_dir();
    std::fs::create_dir(bb.path().join("data")).unwrap();
    std::fs::write(bb.path().join("data/f"), b"content").unwrap();
    std::fs::hard_link(bb.path().join("data/f"), bb.path().join("data/hl")).unwrap();
    std::os::unix::fs::chown(bb.path().join("data/f"), Some(1234), Some(5678)).unwrap();
    let work = tempfile::tempdir().unwrap();
    let legacy = work.path().join("legacy.tar");
    let opts = ImageOptions::default()
        .entrypoint(Some(vec!["/bin/sh".into()]))
        .labels([("k".to_string(), "v".to_string())].into());
    build::image_from_dir(bb.path(), "rt/app:1", &legacy, &opts).unwrap();
    let imgs = store.import(&legacy, ArchiveFormat::DockerArchive, None, None).await.unwrap();
    assert_eq!(imgs.len(), 1);
    let id = imgs[0].id.clone();
    assert_eq!(imgs[0].repo_tags, vec!["docker.io/rt/app:1".to_string()]);
    assert_eq!(store.labels("rt/app:1").await.unwrap().get("k").map(String::as_str), Some("v"));

    // export both formats, re-import into fresh stores: same id, same tree
    for (fmt, name) in [(ArchiveFormat::DockerArchive, "out-docker.tar"), (ArchiveFormat::OciArchive, "out-oci.tar")] {
        let out = work.path().join(name);
        store.export(&["rt/app:1".to_string()], fmt, &out).await.unwrap();
        let root2 = tempfile::tempdir().unwrap();
        let s2 = Store::open(root2.path()).unwrap();
        let got = s2.import(&out, fmt, None, None).await.unwrap();
        assert_eq!(got[0].id, id, "{name}");
        assert_eq!(got[0].repo_tags, vec!["docker.io/rt/app:1".to_string()], "{name}");
        let t = work.path().join(format!("{name}.rootfs"));
        s2.prepare_rootfs(&id, "k1", &t).await.unwrap();
        let _g = Unmount(t.clone());
        assert_eq!(tree(&t), tree(bb.path()), "{name}");
        let a = std::fs::metadata(t.join("data/f")).unwrap();
        let b = std::fs::metadata(t.join("data/hl")).unwrap();
        assert_eq!(a.ino(), b.ino(), "hardlink kept");
        s2.remove_rootfs("k1").await.unwrap();
    }
    // OCI layout as a directory
    let dir = work.path().join("layout");
    std::fs::create_dir(&dir).unwrap();
    store.export(&["rt/app:1".to_string()], ArchiveFormat::OciArchive, &dir).await.unwrap();
    assert!(dir.join("oci-layout").is_file() && dir.join("index.json").is_file());
    let root3 = tempfile::tempdir().unwrap();
    let s3 = Store::open(root3.path()).unwrap();
    assert_eq!(s3.import(&dir, ArchiveFormat::OciArchive, None, None).await.unwrap()[0].id, id);
    // skopeo reads our OCI layout
    let st =
        std::process::Command::new("skopeo").args(["inspect", &format!("oci:{}:1", dir.display())]).output().unwrap();
    assert!(st.status.success(), "skopeo: {}", String::from_utf8_lossy(&st.stderr));

    // rootfs tar import (docker import)
    let flat = work.path().join("flat.tar");
    store.export(&["rt/app:1".to_string()], ArchiveFormat::RootfsTar, &flat).await.unwrap();
    let imp = store.import(&flat, ArchiveFormat::RootfsTar, Some("flat:1"), None).await.unwrap();
    assert_eq!(imp[0].repo_tags, vec!["docker.io/library/flat:1".to_string()]);
    let t = work.path().join("flatroot");
    store.prepare_rootfs("flat:1", "k2", &t).await.unwrap();
    let _g = Unmount(t.clone());
    assert_eq!(tree(&t), tree(bb.path()));
    store.remove_rootfs("k2").await.unwrap();
}

fn whiteout(p: &Path) {
    let c = std::ffi::CString::new(p.to_string_lossy().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, 0) }, 0);
}

fn opaque(p: &Path) {
    let c = std::ffi::CString::new(p.to_string_lossy().as_bytes()).unwrap();
    let k = std::ffi::CString::new("trusted.overlay.opaque").unwrap();
    assert_eq!(unsafe { libc::lsetxattr(c.as_ptr(), k.as_ptr(), b"y".as_ptr() as *const _, 1, 0) }, 0);
}

#[tokio::test]
async fn whiteouts_multi_layer_overlay_and_copy() {
    let work = tempfile::tempdir().unwrap();
    let l1 = work.path().join("l1");
    let bb = busybox_dir();
    std::fs::rename(bb.path(), &l1).unwrap();
    for d in ["a", "d/sub", "e"] {
        std::fs::create_dir_all(l1.join(d)).unwrap();
    }
    std::fs::write(l1.join("a/file1"), "1").unwrap();
    std::fs::write(l1.join("a/file2"), "2").unwrap();
    std::fs::write(l1.join("d/x"), "x").unwrap();
    std::fs::write(l1.join("d/sub/y"), "y").unwrap();
    std::fs::write(l1.join("e/p"), "p").unwrap();
    std::fs::write(l1.join("f"), "file f").unwrap();
    // layer 2: delete a/file1, replace d by an opaque dir, delete dir e, replace file f by a dir
    let l2 = work.path().join("l2");
    std::fs::create_dir_all(l2.join("a")).unwrap();
    whiteout(&l2.join("a/file1"));
    std::fs::create_dir_all(l2.join("d")).unwrap();
    opaque(&l2.join("d"));
    std::fs::write(l2.join("d/z"), "z").unwrap();
    whiteout(&l2.join("e"));
    std::fs::create_dir_all(l2.join("f")).unwrap();
    std::fs::write(l2.join("f/inner"), "inner").unwrap();
    std::fs::write(l2.join("g"), "g").unwrap();
    // layer 3: bring e back as a file
    let l3 = work.path().join("l3");
    std::fs::create_dir_all(&l3).unwrap();
    std::fs::write(l3.join("e"), "e is a file now").unwrap();

    let archive = work.path().join("wh.tar");
    build::image_from_dirs(&[&l1, &l2, &l3], "wh:1", &archive, &Default::default()).unwrap();
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let img = store.import(&archive, ArchiveFormat::DockerArchive, None, None).await.unwrap().remove(0);
    let rec = store.record(&img.id).await.unwrap();
    assert_eq!(rec.layers.len(), 3);

    let t = work.path().join("merged");
    store.prepare_rootfs("wh:1", "wh1", &t).await.unwrap();
    let _g = Unmount(t.clone());
    assert!(!t.join("a/file1").exists());
    assert_eq!(std::fs::read_to_string(t.join("a/file2")).unwrap(), "2");
    let d: Vec<_> = std::fs::read_dir(t.join("d")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(d, vec![std::ffi::OsString::from("z")], "opaque dir hides lower content");
    assert_eq!(std::fs::read_to_string(t.join("e")).unwrap(), "e is a file now");
    assert_eq!(std::fs::read_to_string(t.join("f/inner")).unwrap(), "inner");
    assert_eq!(std::fs::read_to_string(t.join("g")).unwrap(), "g");
    assert!(t.join("bin/busybox").is_file());

    // the copying fallback gives the same tree
    let copy = work.path().join("copy");
    std::fs::create_dir(&copy).unwrap();
    let dirs: Vec<_> = rec.layers.iter().map(|l| store.snapshot_dir(&l.chain_id).unwrap()).collect();
    engine_image::copy_layers(&dirs, &copy).unwrap();
    assert_eq!(tree(&copy), tree(&t));

    // a container deletes and adds; its diff is a layer with whiteouts
    std::fs::remove_file(t.join("a/file2")).unwrap();
    std::fs::remove_dir_all(t.join("d")).unwrap();
    std::fs::write(t.join("new"), "new").unwrap();
    let info = store.commit_rootfs("wh1", Some("wh:2"), None, "test commit").await.unwrap();
    let t2 = work.path().join("merged2");
    store.prepare_rootfs(&info.id, "wh2", &t2).await.unwrap();
    let _g2 = Unmount(t2.clone());
    assert!(!t2.join("a/file2").exists());
    assert!(!t2.join("d").exists());
    assert_eq!(std::fs::read_to_string(t2.join("new")).unwrap(), "new");
    assert_eq!(std::fs::read_to_string(t2.join("g")).unwrap(), "g");
    store.remove_rootfs("wh2").await.unwrap();
    store.remove_rootfs("wh1").await.unwrap();
}

#[tokio::test]
async fn bad_archives_leave_store_unchanged() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let bb = busybox_dir();
    let good = work.path().join("good.tar");
    build::image_from_dir(bb.path(), "good:1", &good, &Default::default()).unwrap();
    // truncated
    let bytes = std::fs::read(&good).unwrap();
    let trunc = work.path().join("trunc.tar");
    std::fs::write(&trunc, &bytes[..bytes.len() / 2]).unwrap();
    let e = store.import(&trunc, ArchiveFormat::DockerArchive, None, None).await.unwrap_err();
    assert!(e.to_string().contains("trunc.tar") || e.to_string().contains("archive"), "{e}");
    // not an archive
    let junk = work.path().join("junk.tar");
    std::fs::write(&junk, b"hello world, this is not a tar").unwrap();
    assert!(store.import(&junk, ArchiveFormat::OciArchive, None, None).await.is_err());
    assert!(store.list().await.unwrap().is_empty());
    assert_eq!(count(&root.path().join("blobs/sha256")), 0);
    assert_eq!(count(&root.path().join("snapshots")), 0);
    assert_eq!(count(&root.path().join("tmp")), 0);
    // a later import works
    store.import(&good, ArchiveFormat::DockerArchive, None, None).await.unwrap();
}

#[tokio::test]
async fn archives_interoperate_with_skopeo() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let bb = busybox_dir();
    let opts = ImageOptions::default().compression(engine_image::unpack::Compression::Zstd);
    store.import_dir_with(bb.path(), "interop/bb:1", &opts).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    // our docker-archive, read by skopeo
    let ours = work.path().join("ours.tar");
    store.export(&["interop/bb:1".to_string()], ArchiveFormat::DockerArchive, &ours).await.unwrap();
    let out = std::process::Command::new("skopeo")
        .args(["inspect", &format!("docker-archive:{}", ours.display())])
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo: {}", String::from_utf8_lossy(&out.stderr));
    // skopeo's docker-archive and OCI archive, read by us
    for (dst, fmt) in [
        (format!("docker-archive:{}:sk/bb:2", work.path().join("sk.tar").display()), ArchiveFormat::DockerArchive),
        (format!("oci-archive:{}:2", work.path().join("sk-oci.tar").display()), ArchiveFormat::OciArchive),
    ] {
        let out = std::process::Command::new("skopeo")
            .args(["copy", "--quiet", &format!("docker-archive:{}", ours.display()), &dst])
            .output()
            .unwrap();
        assert!(out.status.success(), "skopeo copy: {}", String::from_utf8_lossy(&out.stderr));
        let path = dst.split(':').nth(1).unwrap().to_string();
        let imgs = store.import(Path::new(&path), fmt, Some("sk/bb:2"), None).await.unwrap();
        let t = work.path().join(format!("r-{}", imgs[0].id));
        store.prepare_rootfs(&imgs[0].id, "sk", &t).await.unwrap();
        let _g = Unmount(t.clone());
        assert_eq!(tree(&t), tree(bb.path()), "{dst}");
        store.remove_rootfs("sk").await.unwrap();
    }
}

#[tokio::test]
async fn copying_fallback_rootfs() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        root.path(),
        engine_image::StoreOptions::default().storage_driver(engine_image::StorageDriver::Vfs),
    )
    .unwrap();
    let bb = busybox_dir();
    store.import_dir(bb.path(), "copy/bb:1").await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let t = work.path().join("rootfs");
    let r = store.prepare_rootfs("copy/bb:1", "cp1", &t).await.unwrap();
    assert!(!is_mounted(&t));
    assert_eq!(r.upper, t);
    assert_eq!(tree(&t), tree(bb.path()));
    std::fs::write(t.join("tmp/x"), "x").unwrap();
    assert!(store.remove("copy/bb:1", false).await.unwrap_err().is_conflict());
    store.remove_rootfs("cp1").await.unwrap();
    assert_eq!(count(&t), 0, "copied rootfs cleared");
    store.remove("copy/bb:1", false).await.unwrap();
    assert_eq!(count(&root.path().join("snapshots")), 0);
}

#[tokio::test]
async fn import_stream_reads_once_and_a_cut_off_body_leaves_nothing() {
    use futures::StreamExt;
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let bb = busybox_dir();
    let tar = work.path().join("rootfs.tar.gz");
    let st =
        std::process::Command::new("tar").arg("-C").arg(bb.path()).arg("-czf").arg(&tar).arg(".").status().unwrap();
    assert!(st.success());
    let bytes = std::fs::read(&tar).unwrap();
    let chunks: Vec<std::io::Result<bytes::Bytes>> =
        bytes.chunks(7000).map(|c| Ok(bytes::Bytes::copy_from_slice(c))).collect();
    let stream = |v: Vec<std::io::Result<bytes::Bytes>>| futures::stream::iter(v).boxed();
    let empty = || {
        for d in ["blobs/sha256", "snapshots", "tmp"] {
            assert_eq!(count(&root.path().join(d)), 0, "{d} not empty");
        }
    };
    // A body that breaks off half-way: an error, and nothing stored.
    let mut cut: Vec<_> = chunks.iter().take(chunks.len() / 2).map(|c| Ok(c.as_ref().unwrap().clone())).collect();
    cut.push(Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the body broke off")));
    let e = store.import_stream(stream(cut), ArchiveFormat::RootfsTar, Some("s:1"), None).await.unwrap_err();
    assert!(e.to_string().contains("broke off"), "{e}");
    assert!(store.list().await.unwrap().is_empty());
    empty();
    // Not a tar at all.
    let junk = vec![Ok(bytes::Bytes::from_static(&[b'x'; 4096]))];
    assert!(store
        .import_stream(stream(junk), ArchiveFormat::RootfsTar, None, None)
        .await
        .unwrap_err()
        .is_invalid_input());
    empty();
    // The whole body: the upload itself is the layer blob (stored once, still gzip), one snapshot.
    let img = store.import_stream(stream(chunks), ArchiveFormat::RootfsTar, Some("s:1"), None).await.unwrap().remove(0);
    let rec = store.record(&img.id).await.unwrap();
    assert_eq!(rec.layers.len(), 1);
    assert_eq!(rec.layers[0].media_type, engine_image::media::OCI_LAYER_GZIP);
    assert_eq!(rec.layers[0].size, bytes.len() as u64);
    assert_eq!(rec.layers[0].digest, engine_image::digest::sha256(&bytes));
    assert_eq!(count(&root.path().join("blobs/sha256")), 3, "layer, config, manifest");
    assert_eq!(count(&root.path().join("snapshots")), 1);
    assert_eq!(count(&root.path().join("tmp")), 0);
    let target = work.path().join("root");
    store.prepare_rootfs("s:1", "k", &target).await.unwrap();
    let _g = Unmount(target.clone());
    assert_eq!(tree(&target), tree(bb.path()));
    store.remove_rootfs("k").await.unwrap();
}
