//! End-to-end tests of the facade with real containers: run in three lines,
//! every wait strategy, exec, copy in and out, the drop guard, the
//! owner-process binding, runtime swap.

use engine::{ContainerBuilder, Engine, Error, WaitFor};
use engine_core::{ListFilter, Signal};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const IMAGE: &str = "busybox:facade";

fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ENGINE_BIN_DIR") {
        return d.into();
    }
    std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf()
}

async fn engine_in(root: &std::path::Path, runtime: &str) -> Engine {
    let mut b = Engine::builder()
        .root(root)
        .add_runtime("engine-runc", bin_dir().join("engine-runc"))
        .shim_launcher(std::sync::Arc::new(engine::shim::Launcher::new(bin_dir().join("engine-shim"))))
        .runtime(runtime)
        .startup_timeout(Duration::from_secs(30));
    if let Some(p) = engine::lifecycle::find_in_path("runc") {
        b = b.add_runtime("runc", p);
    }
    let e = b.build().await.unwrap();
    e.busybox_image(IMAGE).await.unwrap();
    e
}

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("fa").tempdir_in("/tmp").unwrap()
}

fn mounts_under(p: &std::path::Path) -> usize {
    let p = p.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines().filter(|l| l.contains(&p)).count()
}

async fn all(engine: &Engine) -> usize {
    engine.containers().list(ListFilter::default().all(true)).await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn run_in_three_lines() {
    let dir = tmp();
    let engine = engine_in(dir.path(), "engine-runc").await;
    let c = engine.run(ContainerBuilder::new(IMAGE).cmd(["echo", "hi"]).wait_for(WaitFor::stdout("hi"))).await.unwrap();
    assert_eq!(c.wait().await.unwrap().code, 0);
    assert_eq!(c.stdout().await.unwrap(), "hi\n");
    let id = c.id().to_string();
    c.remove().await.unwrap();
    assert!(engine.containers().inspect(&id).await.unwrap_err().is_not_found());
    assert_eq!(mounts_under(dir.path()), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_wait_strategy() {
    let dir = tmp();
    let engine = engine_in(dir.path(), "engine-runc").await;
    let sh = |s: &str| ContainerBuilder::new(IMAGE).cmd(["sh", "-c", s]);

    let c =
        engine.run(sh("sleep 0.3; echo server ready; exec sleep 60").wait_for(WaitFor::stdout("ready"))).await.unwrap();
    assert_eq!(c.inspect().await.unwrap().state, engine::ContainerState::Running);
    assert!(c.stdout().await.unwrap().contains("server ready"));
    c.remove().await.unwrap();

    let c =
        engine.run(sh("echo warming >&2; echo up >&2; exec sleep 60").wait_for(WaitFor::stderr("up"))).await.unwrap();
    assert_eq!(c.stderr().await.unwrap(), "warming\nup\n");
    c.remove().await.unwrap();

    let c = engine.run(sh("exit 4").wait_for(WaitFor::exit_code(4))).await.unwrap();
    assert_eq!(c.inspect().await.unwrap().exit_code, Some(4));
    c.remove().await.unwrap();
    let e = engine.run(sh("exit 5").wait_for(WaitFor::exit_code(0))).await.unwrap_err();
    assert!(matches!(e, Error::UnexpectedExit { code: Some(5), .. }) && e.to_string().contains("code 5"), "{e}");

    let t = Instant::now();
    let c = engine
        .run(sh("sleep 0.5; touch /tmp/ready; exec sleep 60").wait_for(WaitFor::command(["test", "-f", "/tmp/ready"])))
        .await
        .unwrap();
    assert!(t.elapsed() >= Duration::from_millis(500));
    assert_eq!(c.exec(["test", "-f", "/tmp/ready"]).await.unwrap().exit_code, 0);
    c.remove().await.unwrap();

    let t = Instant::now();
    let c = engine.run(sh("exec sleep 60").wait_for(WaitFor::duration(Duration::from_millis(300)))).await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300));
    c.remove().await.unwrap();

    // A clear timeout, and nothing left behind.
    let t = Instant::now();
    let e = engine
        .run(sh("exec sleep 60").wait_for(WaitFor::stdout("never")).startup_timeout(Duration::from_secs(1)))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("never"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10));
    // Exited before the line: an error at once, not a timeout.
    let e = engine.run(sh("echo other").wait_for(WaitFor::stdout("never"))).await.unwrap_err();
    assert!(matches!(e, Error::UnexpectedExit { code: Some(0), .. }), "{e}");
    assert_eq!(all(&engine).await, 0);
    assert_eq!(mounts_under(dir.path()), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_and_copy() {
    let dir = tmp();
    let engine = engine_in(dir.path(), "engine-runc").await;
    let c = engine
        .run(ContainerBuilder::new(IMAGE).cmd(["sleep", "60"]).env("WHO", "tester").workdir("/tmp"))
        .await
        .unwrap();
    let out = c.exec(["sh", "-c", "echo $WHO in $(pwd); echo problem >&2; exit 3"]).await.unwrap();
    assert_eq!(out.exit_code, 3);
    assert_eq!(out.stdout_str(), "tester in /tmp\n");
    assert_eq!(out.stderr_str(), "problem\n");

    c.copy_file_in("/etc/greeting", b"hello from the host\n").await.unwrap();
    assert_eq!(c.exec(["cat", "/etc/greeting"]).await.unwrap().stdout_str(), "hello from the host\n");
    assert_eq!(c.copy_file_out("/etc/greeting").await.unwrap(), b"hello from the host\n");
    assert!(c.copy_file_out("/no/such/file").await.unwrap_err().is_not_found());

    let src = dir.path().join("payload");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), "A").unwrap();
    std::fs::write(src.join("sub/b.bin"), vec![7u8; 100_000]).unwrap();
    c.copy_in(&src, "/srv").await.unwrap();
    let ls = c.exec(["sh", "-c", "cat /srv/payload/a.txt; wc -c < /srv/payload/sub/b.bin"]).await.unwrap();
    assert_eq!(ls.stdout_str().split_whitespace().collect::<Vec<_>>(), ["A100000"]);
    c.exec(["sh", "-c", "mkdir -p /out/d && echo made-inside > /out/d/f"]).await.unwrap();
    let back = dir.path().join("back");
    c.copy_out("/out/d", &back).await.unwrap();
    assert_eq!(std::fs::read_to_string(back.join("d/f")).unwrap(), "made-inside\n");
    // No tool inside the image is needed.
    c.exec(["rm", "/bin/tar", "/bin/cat"]).await.unwrap();
    c.copy_file_in("/srv/no-tools", b"still works").await.unwrap();
    assert_eq!(c.copy_file_out("/srv/no-tools").await.unwrap(), b"still works");
    let back2 = dir.path().join("back2");
    c.copy_out("/srv/payload", &back2).await.unwrap();
    assert_eq!(std::fs::read(back2.join("payload/sub/b.bin")).unwrap().len(), 100_000);
    c.remove().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_see_the_containers_mounts_and_stay_in_its_root() {
    let dir = tmp();
    let engine = engine_in(dir.path(), "engine-runc").await;
    let vol = dir.path().join("vol");
    std::fs::create_dir_all(&vol).unwrap();
    let c = engine.run(ContainerBuilder::new(IMAGE).cmd(["sleep", "60"]).bind(&vol, "/mnt/vol")).await.unwrap();
    // Into the bind mount, as the container sees it.
    c.copy_file_in("/mnt/vol/from-facade", b"via the mount").await.unwrap();
    assert_eq!(std::fs::read(vol.join("from-facade")).unwrap(), b"via the mount");
    // A link to a host file resolves inside the container's root.
    let secret = dir.path().join("host-secret");
    std::fs::write(&secret, "HOST-SECRET").unwrap();
    c.exec(["ln", "-s", secret.to_str().unwrap(), "/leak"]).await.unwrap();
    assert!(c.copy_file_out("/leak").await.unwrap_err().is_not_found());
    c.copy_file_in("/leak", b"overwritten?").await.unwrap();
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "HOST-SECRET");
    c.remove().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_the_handle_removes_the_container() {
    let dir = tmp();
    let engine = engine_in(dir.path(), "engine-runc").await;
    let c = engine.run(ContainerBuilder::new(IMAGE).cmd(["sleep", "60"])).await.unwrap();
    let pid = c.inspect().await.unwrap().pid.unwrap();
    let id = c.id().to_string();
    drop(c);
    assert!(engine.containers().inspect(&id).await.unwrap_err().is_not_found());
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(mounts_under(dir.path()), 0);
    // keep_on_drop keeps it.
    let k = engine.run(ContainerBuilder::new(IMAGE).cmd(["sleep", "60"]).keep_on_drop()).await.unwrap();
    let kid = k.id().to_string();
    drop(k);
    assert!(engine.containers().inspect(&kid).await.is_ok());
    engine.containers().remove(&kid, true).await.unwrap();
}

#[tokio::test]
async fn dropping_in_a_current_thread_runtime_removes_too() {
    let dir = tmp();
    let engine = engine_in(dir.path(), "engine-runc").await;
    let c = engine.run(ContainerBuilder::new(IMAGE).cmd(["sleep", "60"])).await.unwrap();
    drop(c);
    engine.settle().await;
    assert_eq!(all(&engine).await, 0);
    assert_eq!(mounts_under(dir.path()), 0);
}

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
    // Its rootfs is unmounted (the owner-bound poststop hook).
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

async fn runtime_scenario(runtime: &str) {
    let dir = tmp();
    let engine = engine_in(dir.path(), runtime).await;
    let c = engine
        .run(ContainerBuilder::new(IMAGE).cmd(["sh", "-c", "echo up; exec sleep 60"]).wait_for(WaitFor::stdout("up")))
        .await
        .unwrap();
    assert_eq!(c.inspect().await.unwrap().runtime, runtime);
    assert_eq!(c.exec(["sh", "-c", "echo $((6*7))"]).await.unwrap().stdout_str(), "42\n");
    c.kill(Signal::KILL).await.unwrap();
    assert_eq!(c.wait().await.unwrap().code, 137);
    c.start().await.unwrap();
    // The restarted process's line first (under `vm`, a process in a freshly
    // booted emulated VM takes a moment to get there).
    let t = Instant::now();
    while c.stdout().await.unwrap() != "up\nup\n" {
        assert!(t.elapsed() < Duration::from_secs(120), "no second line: {:?}", c.stdout().await.unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.stop(Some(Duration::from_millis(200))).await.unwrap();
    assert_eq!(c.stdout().await.unwrap(), "up\nup\n");
    c.remove().await.unwrap();
    assert_eq!(mounts_under(dir.path()), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn runtime_swap_engine_runc() {
    runtime_scenario("engine-runc").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn runtime_swap_runc() {
    if engine::lifecycle::find_in_path("runc").is_none() {
        return;
    }
    runtime_scenario("runc").await;
}

/// The same scenario in a VM per container (crate `engine-vm`, the runtime
/// `vm`): QEMU emulation where the host has no KVM, so boots take seconds.
#[tokio::test(flavor = "multi_thread")]
async fn runtime_swap_vm() {
    runtime_scenario("vm").await;
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

#[tokio::test(flavor = "multi_thread")]
async fn log_driver_per_container() {
    let dir = tmp();
    let engine = engine_in(dir.path(), "engine-runc").await;
    let count = "i=0; while [ $i -lt 100 ]; do echo l-$i; i=$((i+1)); done";
    // local, rotated small: the newest lines, in order, across the files.
    let b = ContainerBuilder::new(IMAGE)
        .cmd(["sh", "-c", count])
        .log_driver("local")
        .log_opt("max-size", "1k")
        .log_opt("max-file", "2")
        .wait_for(WaitFor::exit_code(0));
    let c = engine.run(b).await.unwrap();
    let info = c.inspect().await.unwrap();
    assert_eq!(info.config.log.driver, "local");
    let out = c.stdout().await.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    let first: usize = lines[0].strip_prefix("l-").unwrap().parse().unwrap();
    assert!(first > 0, "rotation dropped the oldest lines");
    assert_eq!(lines, (first..100).map(|i| format!("l-{i}")).collect::<Vec<_>>());
    c.remove().await.unwrap();
    // none: output is not kept, and reading it says so.
    let b = ContainerBuilder::new(IMAGE).cmd(["echo", "gone"]).log_driver("none").wait_for(WaitFor::exit_code(0));
    let c = engine.run(b).await.unwrap();
    let e = c.stdout().await.unwrap_err();
    assert!(e.to_string().contains("configured logging driver does not support reading"), "{e}");
    c.remove().await.unwrap();
    // Bad options and unknown drivers are refused at create, nothing made.
    let before = all(&engine).await;
    for b in [
        ContainerBuilder::new(IMAGE).cmd(["true"]).log_opt("max-file", "0"),
        ContainerBuilder::new(IMAGE).cmd(["true"]).log_driver("nosuch"),
    ] {
        let e = engine.containers().create(b.config().clone()).await.unwrap_err();
        assert!(e.is_invalid_input(), "{e}");
    }
    assert_eq!(all(&engine).await, before);
}
