//! SIGKILL during a pull (from a real registry on loopback), a load (`docker
//! load` of an archive) and a commit leaves a consistent store, and the retry
//! works. The operation runs in a child process (this test binary re-invoked
//! on `crash_child`), killed at a random point within the operation's usual
//! duration; the test then opens the store and checks: temp files removed
//! on open, every blob's bytes match its digest, every image listed is
//! complete (its layers' blobs and snapshots present), and the operation
//! succeeds when retried.

mod common;
use common::*;
use engine_core::{ArchiveFormat, ImageStore};
use engine_image::{RegistryOptions, Store};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn quick() -> RegistryOptions {
    RegistryOptions::default().retry_delay(Duration::from_millis(20))
}

/// Run as a child process by the tests below: one store operation, named by
/// `ENGINE_CRASH_OP`, on the store at `ENGINE_CRASH_ROOT`.
#[tokio::test(flavor = "multi_thread")]
async fn crash_child() {
    let Some(root) = std::env::var_os("ENGINE_CRASH_ROOT") else { return };
    let arg = std::env::var("ENGINE_CRASH_ARG").unwrap();
    run_op(&PathBuf::from(root), &std::env::var("ENGINE_CRASH_OP").unwrap(), &arg).await;
}

async fn run_op(root: &Path, op: &str, arg: &str) {
    let store = Store::open_with(root, quick()).unwrap();
    match op {
        "pull" => {
            store.pull(arg, None, None).await.unwrap();
        }
        "load" => {
            store.import(Path::new(arg), ArchiveFormat::DockerArchive, None, None).await.unwrap();
        }
        "commit" => {
            let (key, tag) = arg.split_once(' ').unwrap();
            store.commit_rootfs(key, Some(tag), None, "crash test").await.unwrap();
        }
        _ => panic!("unknown op {op}"),
    }
}

fn spawn_child(root: &Path, op: &str, arg: &str) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads", "1"])
        .env("ENGINE_CRASH_ROOT", root)
        .env("ENGINE_CRASH_OP", op)
        .env("ENGINE_CRASH_ARG", arg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// How long the operation takes uninterrupted, in a child (so the kill
/// points fall within it).
fn timed(root: &Path, op: &str, arg: &str) -> Duration {
    let t = Instant::now();
    let st = spawn_child(root, op, arg).wait().unwrap();
    assert!(st.success(), "{op} failed in the child");
    t.elapsed()
}

/// What a user could observe of a consistent store.
async fn assert_consistent(root: &Path, expect: Option<&str>) {
    let store = Store::open_with(root, quick()).unwrap();
    let tmp: Vec<_> = std::fs::read_dir(root.join("tmp")).unwrap().flatten().map(|e| e.path()).collect();
    assert!(tmp.is_empty(), "temp files left after open: {tmp:?}");
    for e in std::fs::read_dir(root.join("snapshots")).unwrap().flatten() {
        assert!(!e.file_name().to_string_lossy().starts_with("tmp-"), "temp snapshot left: {:?}", e.path());
    }
    for e in std::fs::read_dir(root.join("blobs/sha256")).unwrap().flatten() {
        let data = std::fs::read(e.path()).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&data)),
            e.file_name().to_string_lossy(),
            "a half-written blob is visible under its digest"
        );
    }
    let images = store.list().await.unwrap();
    for img in &images {
        let rec = store.record(&img.id).await.unwrap();
        for d in [&rec.id, &rec.manifest] {
            assert!(store.blobs().path(d).unwrap().exists(), "image {} lacks blob {d}", img.id);
        }
        for l in &rec.layers {
            assert!(store.blobs().path(&l.digest).unwrap().exists(), "image {} lacks layer {}", img.id, l.digest);
            assert!(
                store.snapshot_dir(&l.chain_id).unwrap().is_dir(),
                "image {} lacks snapshot {}",
                img.id,
                l.chain_id
            );
        }
    }
    if let Some(r) = expect {
        store.inspect(r).await.unwrap();
    }
}

/// Kill `op` at `rounds` random points within its duration; after each, the
/// store is consistent and the retry (in this process) works.
async fn kill_and_retry(root: &Path, op: &str, arg: &str, reference: &str, undo: impl AsyncUndo) {
    let took = timed(root, op, arg);
    for round in 0..3 {
        undo.undo(root).await;
        let at = Duration::from_micros(rand::random_range(0..=took.as_micros() as u64));
        let mut child = spawn_child(root, op, arg);
        std::thread::sleep(at); // the kill point (fault injection, not synchronisation)
        let _ = child.kill();
        child.wait().unwrap();
        assert_consistent(root, None).await;
        run_op(root, op, arg).await;
        assert_consistent(root, Some(reference)).await;
        eprintln!("{op}: round {round} killed after {at:?} of {took:?}");
    }
}

/// Put the store back to before the operation, so the next kill interrupts it again.
trait AsyncUndo {
    async fn undo(&self, root: &Path);
}

struct RemoveImage(String);
impl AsyncUndo for RemoveImage {
    async fn undo(&self, root: &Path) {
        let store = Store::open_with(root, quick()).unwrap();
        let _ = store.remove(&self.0, true).await;
        store.gc().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_a_pull_leaves_a_consistent_store() {
    let reg = Registry::start(RegAuth::None).await;
    let src = tempfile::tempdir().unwrap();
    let source = Store::open_with(src.path(), quick()).unwrap();
    let name = format!("{}/crash/bb:1", reg.host());
    let bb = busybox_dir();
    source.import_dir(bb.path(), &name).await.unwrap();
    source.push(&name, None, None).await.unwrap();
    let root = tempfile::tempdir().unwrap();
    kill_and_retry(root.path(), "pull", &name, &name, RemoveImage(name.clone())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_a_load_leaves_a_consistent_store() {
    let src = tempfile::tempdir().unwrap();
    let source = Store::open(src.path()).unwrap();
    let name = "crash/load:1";
    let bb = busybox_dir();
    source.import_dir(bb.path(), name).await.unwrap();
    let archive = src.path().join("image.tar");
    source.export(&[name.to_string()], ArchiveFormat::DockerArchive, &archive).await.unwrap();
    let root = tempfile::tempdir().unwrap();
    kill_and_retry(root.path(), "load", archive.to_str().unwrap(), name, RemoveImage(name.into())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_a_commit_leaves_a_consistent_store() {
    let root = tempfile::tempdir().unwrap();
    let store = Store::open(root.path()).unwrap();
    let bb = busybox_dir();
    store.import_dir(bb.path(), "crash/base:1").await.unwrap();
    let target = root.path().join("ctr-rootfs");
    std::fs::create_dir(&target).unwrap();
    store.prepare_rootfs("crash/base:1", "ctr", &target).await.unwrap();
    let _unmount = Unmount(target.clone());
    // Changes worth committing: a few MiB of new files.
    for i in 0..32 {
        std::fs::write(target.join(format!("file-{i}")), vec![i as u8; 128 * 1024]).unwrap();
    }
    drop(store);
    let tag = "crash/committed:1";
    kill_and_retry(root.path(), "commit", &format!("ctr {tag}"), tag, RemoveImage(tag.into())).await;
    let store = Store::open(root.path()).unwrap();
    store.remove_rootfs("ctr").await.unwrap();
}
