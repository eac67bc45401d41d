//! The facade's builder picks the storage driver: with `vfs`, containers
//! run from plain copies (no overlay mount), keep their writes across a
//! stop and start, and removal frees their copy.

mod common;

use engine::image::StorageDriver;
use engine::{ContainerBuilder, Engine};
use std::time::Duration;

const IMAGE: &str = "busybox:storage";

async fn engine_in(root: &std::path::Path, driver: StorageDriver) -> Engine {
    let e = common::builder(root).storage_driver(driver).build().await.unwrap();
    e.busybox_image(IMAGE).await.unwrap();
    e
}

fn overlay_mounts_under(dir: &std::path::Path) -> usize {
    let d = dir.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(" - overlay ") && l.contains(d.as_ref()))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn vfs_containers_keep_writes_and_free_their_copy() {
    let root = tempfile::Builder::new().prefix("fs").tempdir_in("/tmp").unwrap();
    let engine = engine_in(root.path(), StorageDriver::Vfs).await;
    assert_eq!(engine.images().snapshotter().map(|s| s.name().to_string()).as_deref(), Some("vfs"));
    let c = engine.run(ContainerBuilder::new(IMAGE).cmd(["sleep", "1000"])).await.unwrap();
    let out = c.exec(["sh", "-c", "echo kept > /kept.txt && rm /etc/group && echo ok"]).await.unwrap();
    assert_eq!(out.stdout_str(), "ok\n", "{out:?}");
    assert_eq!(overlay_mounts_under(root.path()), 0, "vfs made an overlay mount");
    c.stop(Some(Duration::from_secs(1))).await.unwrap();
    c.start().await.unwrap();
    let out = c.exec(["sh", "-c", "cat /kept.txt; ls /etc/group 2>&1 || true"]).await.unwrap();
    let s = out.stdout_str() + &out.stderr_str();
    assert!(s.starts_with("kept\n") && s.contains("No such file"), "{out:?}");
    c.remove().await.unwrap();
    let rootfs = root.path().join("images/rootfs");
    let left: Vec<_> = std::fs::read_dir(&rootfs).unwrap().collect();
    assert!(left.is_empty(), "root filesystems left in {}: {left:?}", rootfs.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_storage_driver_with_a_custom_image_store_is_refused() {
    let root = tempfile::Builder::new().prefix("fs").tempdir_in("/tmp").unwrap();
    let store = std::sync::Arc::new(engine::image::Store::open(root.path().join("own")).unwrap());
    let built = Engine::builder().root(root.path()).image_store(store).storage_driver(StorageDriver::Vfs).build().await;
    let Err(err) = built else { panic!("a storage driver with a custom store was accepted") };
    assert!(err.is_invalid_input() && err.to_string().contains("storage_driver"), "{err}");
}
