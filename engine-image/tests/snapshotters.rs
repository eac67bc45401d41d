//! The storage seam: the same root filesystem work through both
//! snapshotters, `overlay2` and `vfs`. Each prepares a container's root
//! filesystem, lets it change files, commits it into an image that a new
//! root filesystem shows exactly, and removes everything it made.

mod common;
use common::*;
use engine_core::ImageStore;
use engine_image::{StorageDriver, Store, StoreOptions};
use std::path::Path;

fn open(root: &Path, driver: StorageDriver) -> Store {
    Store::open_with(root, StoreOptions::default().storage_driver(driver)).unwrap()
}

/// The entries of a layer tar, as `tar` lists them.
fn tar_entries(path: &Path) -> Vec<String> {
    let mut a = tar::Archive::new(std::fs::File::open(path).unwrap());
    let mut out: Vec<String> = a
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().trim_end_matches('/').to_string())
        .collect();
    out.sort();
    out
}

async fn prepare_change_commit_remove(driver: StorageDriver) {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path(), driver);
    assert_eq!(store.snapshotter().unwrap().name(), driver.name());
    let bb = busybox_dir();
    store.import_dir(bb.path(), "seam/bb:1").await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let t = work.path().join("rootfs");
    let r = store.prepare_rootfs("seam/bb:1", "ctr1", &t).await.unwrap();
    let _u = Unmount(t.clone());
    assert_eq!(r.path, t);
    assert_eq!(is_mounted(&t), driver == StorageDriver::Overlay2, "{driver:?}");
    assert_eq!(tree(&t), tree(bb.path()), "{driver:?}: the root filesystem is not the image");

    // The container adds, changes and deletes.
    std::fs::write(t.join("tmp/added"), "new").unwrap();
    std::fs::create_dir_all(t.join("srv/data")).unwrap();
    std::fs::write(t.join("srv/data/f"), "f").unwrap();
    std::fs::write(t.join("etc/passwd"), "changed\n").unwrap();
    std::fs::remove_file(t.join("etc/group")).unwrap();

    // Its diff holds the changes only, with a whiteout for the deletion.
    let layer = work.path().join("diff.tar");
    store.diff_rootfs("ctr1", &layer).await.unwrap();
    let entries = tar_entries(&layer);
    for want in ["tmp/added", "srv/data/f", "etc/passwd", "etc/.wh.group"] {
        assert!(entries.iter().any(|e| e == want), "{driver:?}: {want} missing from the diff: {entries:?}");
    }
    assert!(!entries.iter().any(|e| e.starts_with("bin/")), "{driver:?}: unchanged files in the diff: {entries:?}");

    // Committed, then prepared again: exactly what the container had.
    let img = store.commit_rootfs("ctr1", Some("seam/bb:2"), None, "test").await.unwrap();
    assert_eq!(img.repo_tags, vec!["docker.io/seam/bb:2".to_string()]);
    let t2 = work.path().join("rootfs2");
    store.prepare_rootfs("seam/bb:2", "ctr2", &t2).await.unwrap();
    let _u2 = Unmount(t2.clone());
    assert_eq!(tree(&t2), tree(&t), "{driver:?}: the committed image differs from the container");
    assert!(!t2.join("etc/group").exists());
    assert_eq!(std::fs::read_to_string(t2.join("etc/passwd")).unwrap(), "changed\n");

    // Removal leaves nothing: no mount, no files, no scratch space.
    for (key, target) in [("ctr1", &t), ("ctr2", &t2)] {
        store.remove_rootfs(key).await.unwrap();
        assert!(!is_mounted(target));
        let left = std::fs::read_dir(target).map(|d| d.count()).unwrap_or(0);
        assert_eq!(left, 0, "{driver:?}: {} not emptied", target.display());
        assert!(!root.path().join("rootfs").join(key).exists(), "{driver:?}: rootfs/{key} left behind");
    }
    assert_eq!(std::fs::read_dir(root.path().join("tmp")).unwrap().count(), 0, "{driver:?}: scratch space left");
    assert!(store.remove_rootfs("ctr1").await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn overlay2_prepares_commits_and_removes() {
    prepare_change_commit_remove(StorageDriver::Overlay2).await;
}

#[tokio::test]
async fn vfs_prepares_commits_and_removes() {
    prepare_change_commit_remove(StorageDriver::Vfs).await;
}

/// A store reopened with the other driver still removes what the first made.
#[tokio::test]
async fn switching_drivers_keeps_removal_right() {
    let root = tempfile::tempdir().unwrap();
    let bb = busybox_dir();
    let work = tempfile::tempdir().unwrap();
    let t = work.path().join("rootfs");
    {
        let store = open(root.path(), StorageDriver::Overlay2);
        store.import_dir(bb.path(), "seam/bb:1").await.unwrap();
        store.prepare_rootfs("seam/bb:1", "ctr1", &t).await.unwrap();
    }
    let _u = Unmount(t.clone());
    assert!(is_mounted(&t));
    let store = open(root.path(), StorageDriver::Vfs);
    store.remove_rootfs("ctr1").await.unwrap();
    assert!(!is_mounted(&t));
}

#[test]
fn driver_names_parse_as_dockers() {
    assert_eq!("overlay2".parse::<StorageDriver>().unwrap(), StorageDriver::Overlay2);
    assert_eq!("vfs".parse::<StorageDriver>().unwrap(), StorageDriver::Vfs);
    let e = "devicemapper".parse::<StorageDriver>().unwrap_err();
    assert!(e.is_invalid_input() && e.to_string().contains("devicemapper"), "{e}");
}
