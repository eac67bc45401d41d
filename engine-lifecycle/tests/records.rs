//! A corrupt container record (garbage bytes in the redb table for one id):
//! the manager opens, names the container in a warning and in the error of
//! every operation on it, removes the record on request, and every other
//! container still works. Records of concurrent creates, acknowledged
//! together, all survive the end of the process that made them.

mod common;
use common::*;
use engine_core::{ContainerState, LifecycleManager, ListFilter, WaitCondition};
use engine_lifecycle::{Manager, ManagerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CONTAINERS: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("containers");

fn child_config(dir: &Path) -> ManagerConfig {
    let images = Arc::new(engine_image::Store::open(dir.join("images")).unwrap());
    let shims = Arc::new(engine_shim::Launcher::new(bin_dir().join("engine-shim")));
    ManagerConfig::new(dir.join("state"), images, shims)
        .runtime("engine-runc", bin_dir().join("engine-runc"))
        .default_runtime("engine-runc")
}

/// Run as a child process by `a_corrupt_record_is_named_and_the_others_still_work`:
/// make a running container that outlives this process (no owner) and one
/// bound to it, write their ids, and exit (so the database is closed).
#[tokio::test(flavor = "multi_thread")]
async fn records_child() {
    let Some(dir) = std::env::var_os("ENGINE_RECORDS_CHILD_DIR") else { return };
    let dir = PathBuf::from(dir);
    let mgr = Manager::new(child_config(&dir)).await.unwrap();
    let good = mgr.create(sh("exec sleep 600").owner_pid(None)).await.unwrap();
    mgr.start(&good.id).await.unwrap();
    let bad = mgr.create(sh("exec sleep 600")).await.unwrap();
    mgr.start(&bad.id).await.unwrap();
    std::fs::write(dir.join("ids.tmp"), format!("{} {}", good.id, bad.id)).unwrap();
    std::fs::rename(dir.join("ids.tmp"), dir.join("ids")).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_record_is_named_and_the_others_still_work() {
    let env = Env::new().await;
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "records_child", "--nocapture"])
        .env("ENGINE_RECORDS_CHILD_DIR", env.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success(), "child: {}", String::from_utf8_lossy(&out.stderr));
    let ids = std::fs::read_to_string(env.dir.path().join("ids")).unwrap();
    let (good, bad) = ids.split_once(' ').unwrap();
    let (good, bad) = (good.to_string(), bad.to_string());
    // The owner-bound container's shim cleans it up now that its owner is
    // gone; wait for its shim to exit so the test leaks nothing.
    let shim_of = |id: &str| {
        std::fs::read_dir(env.root().join("shims"))
            .unwrap()
            .flatten()
            .filter_map(|d| engine_shim::read_address(&d.path()).ok().flatten())
            .filter(|a| a.id == id)
            .map(|a| a.pid)
            .collect::<Vec<i32>>()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    for pid in shim_of(&bad) {
        while Path::new(&format!("/proc/{pid}")).exists() {
            assert!(Instant::now() < deadline, "the shim of {bad} outlived its owner");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Garbage in the table for one id.
    {
        let db = redb::Database::open(env.root().join("containers.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut t = tx.open_table(CONTAINERS).unwrap();
            t.insert(bad.as_str(), &b"\x00\xffnot a record{{"[..]).unwrap();
        }
        tx.commit().unwrap();
    }

    let mgr = env.manager("engine-runc").await;
    let err = mgr.inspect(&bad).await.expect_err("a corrupt record was served");
    let msg = err.to_string();
    assert!(msg.contains(&bad) && msg.contains("corrupt"), "the error does not name the corrupt record: {msg}");
    let err = mgr.start(&bad).await.expect_err("started a container with a corrupt record");
    assert!(err.to_string().contains(&bad), "{err}");
    let all = mgr.list(ListFilter::default().all(true)).await.unwrap();
    assert_eq!(all.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), vec![good.as_str()], "{all:?}");

    // The other container still works: running, stoppable, removable; new ones run.
    let info = mgr.inspect(&good).await.unwrap();
    assert_eq!(info.state, ContainerState::Running);
    mgr.stop(&good, Some(Duration::from_secs(1))).await.unwrap();
    assert_ne!(mgr.wait(&good, WaitCondition::NotRunning).await.unwrap().code, 0);
    mgr.remove(&good, false).await.unwrap();
    let d = mgr.create(sh("echo after")).await.unwrap();
    mgr.start(&d.id).await.unwrap();
    assert_eq!(mgr.wait(&d.id, WaitCondition::NotRunning).await.unwrap().code, 0);
    assert_eq!(log_text(&mgr, &d.id).await.unwrap(), "after\n");
    mgr.remove(&d.id, false).await.unwrap();

    // Removing the corrupt one deletes its record; nothing of it stays.
    mgr.remove(&bad, false).await.unwrap();
    assert!(mgr.inspect(&bad).await.unwrap_err().is_not_found());
    assert!(!env.root().join("containers").join(&bad).exists(), "the corrupt container's bundle stayed");
    assert!(mounts_under(&env.root()).is_empty(), "{:?}", mounts_under(&env.root()));
    cleanup(&mgr).await;
}

/// Run as a child process by `concurrent_creates_are_all_durable`: create
/// containers concurrently (their record writes share commits), write their
/// ids once every create is acknowledged, and end the process at once, with
/// no destructor run.
#[tokio::test(flavor = "multi_thread")]
async fn records_concurrent_child() {
    let Some(dir) = std::env::var_os("ENGINE_RECORDS_CONCURRENT_DIR") else { return };
    let dir = PathBuf::from(dir);
    let mgr = Manager::new(child_config(&dir)).await.unwrap();
    let made =
        futures::future::try_join_all((0..16).map(|_| mgr.create(sh("exec sleep 600").owner_pid(None)))).await.unwrap();
    let ids: Vec<String> = made.into_iter().map(|c| c.id).collect();
    std::fs::write(dir.join("ids.tmp"), ids.join(" ")).unwrap();
    std::fs::rename(dir.join("ids.tmp"), dir.join("ids")).unwrap();
    std::process::exit(0);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_creates_are_all_durable() {
    let env = Env::new().await;
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "records_concurrent_child", "--nocapture"])
        .env("ENGINE_RECORDS_CONCURRENT_DIR", env.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success(), "child: {}", String::from_utf8_lossy(&out.stderr));
    let ids = std::fs::read_to_string(env.dir.path().join("ids")).unwrap();
    let mut acknowledged: Vec<&str> = ids.split(' ').collect();
    acknowledged.sort();
    assert_eq!(acknowledged.len(), 16);

    // A new manager on the same root finds every acknowledged container.
    let mgr = env.manager("engine-runc").await;
    let all = mgr.list(ListFilter::default().all(true)).await.unwrap();
    let mut found: Vec<&str> = all.iter().map(|c| c.id.as_str()).collect();
    found.sort();
    assert_eq!(found, acknowledged, "records of acknowledged creates were lost");
    assert!(all.iter().all(|c| c.state == ContainerState::Created), "{all:?}");
    for id in &acknowledged {
        mgr.remove(id, true).await.unwrap();
    }
    assert!(mgr.list(ListFilter::default().all(true)).await.unwrap().is_empty());
    assert!(mounts_under(&env.root()).is_empty(), "{:?}", mounts_under(&env.root()));
    cleanup(&mgr).await;
}
