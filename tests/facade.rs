//! End-to-end tests of the facade with real containers: run in three lines,
//! every wait strategy, exec, copy in and out, the drop guard, stdin,
//! restart policies, limits, log drivers, storage drivers, volumes (the
//! scenarios in tests/scenarios, here on `engine-runc`), the owner-process
//! binding, runtime swap, the facade over engine-lifecycled.

mod common;
#[macro_use]
mod scenarios;

use common::bin_dir;
use engine::{ContainerBuilder, Engine, WaitFor};
use engine_core::ListFilter;
use scenarios::{engine_in, mounts_under, tmp, IMAGE};
use std::path::PathBuf;
use std::time::{Duration, Instant};

// The scenarios shared with tests/facade_vm.rs, on the default runtime.
scenario_tests!("engine-runc");

/// Run as a child process by `a_killed_owner_leaks_no_process`: make a
/// container, record its pid, then hang until killed.
#[tokio::test(flavor = "multi_thread")]
async fn owner_child() {
    let Some(root) = std::env::var_os("ENGINE_OWNER_CHILD_ROOT") else { return };
    let root = PathBuf::from(root);
    let engine = engine_in(&root, "engine-runc").await;
    let c = engine.run(ContainerBuilder::new(IMAGE).cmd(["sleep", "600"]).keep_on_drop()).await.unwrap();
    let pid = c.inspect().await.unwrap().pid.unwrap();
    std::fs::write(root.join("pid.tmp"), pid.to_string()).unwrap();
    std::fs::rename(root.join("pid.tmp"), root.join("pid")).unwrap();
    tokio::time::sleep(Duration::from_secs(600)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_owner_leaks_no_process() {
    let dir = tmp();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "owner_child", "--nocapture"])
        .env("ENGINE_OWNER_CHILD_ROOT", dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid_file = dir.path().join("pid");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pid_file.exists() {
        assert!(Instant::now() < deadline, "the child never started its container");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    let shim_pids: Vec<i32> = std::fs::read_dir(dir.path().join("shims"))
        .unwrap()
        .flatten()
        .filter_map(|d| engine::shim::read_address(&d.path()).ok().flatten())
        .map(|a| a.pid)
        .collect();
    assert_eq!(shim_pids.len(), 1);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "container init {pid} outlived its owner");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Its shim is gone too.
    for sp in shim_pids {
        while std::path::Path::new(&format!("/proc/{sp}")).exists() {
            assert!(Instant::now() < deadline, "shim {sp} outlived the owner");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Its rootfs is unmounted (by the shim, after its delete).
    assert_eq!(mounts_under(dir.path()), 0);
    // A new engine on the root finds nothing of it: no record, no bundle.
    let engine = engine_in(dir.path(), "engine-runc").await;
    let left = engine.containers().list(ListFilter::default().all(true)).await.unwrap();
    assert!(left.is_empty(), "records outlived their owner: {left:?}");
    let bundles = dir.path().join("containers");
    let n = std::fs::read_dir(&bundles).map(|d| d.count()).unwrap_or(0);
    assert_eq!(n, 0, "bundles left in {}", bundles.display());
    assert_eq!(mounts_under(dir.path()), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn runtime_swap_runc() {
    if engine::lifecycle::find_in_path("runc").is_none() {
        return;
    }
    scenarios::kill_and_start_again("runc").await;
}

/// The facade over `engine-lifecycled`: the same conveniences through the
/// gRPC client (exec and copy go through the remote attach, stdin included).
#[tokio::test(flavor = "multi_thread")]
async fn the_facade_over_engine_lifecycled() {
    let dir = tmp();
    let images: std::sync::Arc<dyn engine::ImageStore> =
        std::sync::Arc::new(engine::image::Store::open(dir.path().join("images")).unwrap());
    let local = Engine::builder()
        .root(dir.path().join("local"))
        .image_store(images.clone())
        .add_runtime("engine-runc", bin_dir().join("engine-runc"))
        .build()
        .await
        .unwrap();
    local.busybox_image(IMAGE).await.unwrap();
    drop(local);
    let socket = dir.path().join("lc.sock");
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let daemon = std::process::Command::new(bin_dir().join("engine-lifecycled"))
        .arg("--root")
        .arg(dir.path().join("state"))
        .arg("--socket")
        .arg(&socket)
        .arg("--images")
        .arg(dir.path().join("images"))
        .arg("--shim")
        .arg(bin_dir().join("engine-shim"))
        .arg("--runtime")
        .arg(format!("engine-runc={}", bin_dir().join("engine-runc").display()))
        .arg("--log-level")
        .arg("warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let daemon = Reap(daemon);
    let deadline = Instant::now() + Duration::from_secs(30);
    let remote = loop {
        if let Ok(r) = engine::lifecycle::RemoteManager::connect(&socket).await {
            if engine::LifecycleManager::list(&r, ListFilter::default()).await.is_ok() {
                break r;
            }
        }
        assert!(Instant::now() < deadline, "engine-lifecycled did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let engine = Engine::builder()
        .root(dir.path().join("local"))
        .image_store(images)
        .manager(std::sync::Arc::new(remote))
        .build()
        .await
        .unwrap();
    let c = engine
        .run(
            ContainerBuilder::new(IMAGE)
                .cmd(["sh", "-c", "echo remote-ready; exec sleep 60"])
                .wait_for(WaitFor::stdout("remote-ready")),
        )
        .await
        .unwrap();
    let out = c.exec(["sh", "-c", "echo out; echo err >&2; exit 6"]).await.unwrap();
    assert_eq!((out.exit_code, out.stdout_str(), out.stderr_str()), (6, "out\n".into(), "err\n".into()));
    c.copy_file_in("/tmp/over-grpc", &vec![b'x'; 200_000]).await.unwrap();
    assert_eq!(c.copy_file_out("/tmp/over-grpc").await.unwrap().len(), 200_000);
    let id = c.id().to_string();
    drop(c);
    assert!(engine.containers().inspect(&id).await.unwrap_err().is_not_found());
    drop(daemon);
    assert_eq!(mounts_under(dir.path()), 0);
}
