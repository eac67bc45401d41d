//! The facade's scenarios, each a function of the runtime's name: the same
//! bodies run on the default runtime (`engine-runc`, tests/facade.rs) and in a
//! VM per container (`vm`, tests/facade_vm.rs). [`scenario_tests!`] makes one
//! `#[tokio::test]` per scenario for a runtime.
#![allow(dead_code)]

use super::common;
use engine::image::StorageDriver;
use engine::{ContainerBuilder, Engine, Error, RestartPolicy, WaitFor};
use engine_core::{ListFilter, Signal, VolumeCreate};
use std::time::{Duration, Instant};

pub const IMAGE: &str = "busybox:facade";

/// An engine rooted at `root` whose containers run on `runtime`.
pub async fn engine_in(root: &std::path::Path, runtime: &str) -> Engine {
    engine_with(root, runtime, |b| b).await
}

/// [`engine_in`] with the builder adjusted by `f`.
pub async fn engine_with(
    root: &std::path::Path,
    runtime: &str,
    f: impl FnOnce(engine::EngineBuilder) -> engine::EngineBuilder,
) -> Engine {
    let mut b = common::builder(root).runtime(runtime);
    if let Some(p) = engine::lifecycle::find_in_path("runc") {
        b = b.add_runtime("runc", p);
    }
    if runtime == "vm" {
        // A VM boots under emulation where the host has no KVM: seconds
        // per container, more with others booting beside it.
        b = b.startup_timeout(Duration::from_secs(120));
    }
    let e = f(b).build().await.unwrap();
    e.busybox_image(IMAGE).await.unwrap();
    e
}

/// How long a step that starts a container may take: `secs` for
/// `engine-runc`; for `vm` (a VM boots, under emulation here), the bound
/// the engine itself gives a VM's create: a boot goes on as long as the
/// guest makes progress, however loaded the host (the test command runs
/// many test binaries at once on few cores).
pub fn boot_bound(runtime: &str, secs: u64) -> Duration {
    if runtime == "vm" {
        engine::lifecycle::VM_CREATE_TIMEOUT
    } else {
        Duration::from_secs(secs)
    }
}

pub fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("fa").tempdir_in("/tmp").unwrap()
}

pub fn mounts_under(p: &std::path::Path) -> usize {
    let p = p.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines().filter(|l| l.contains(&p)).count()
}

pub async fn all(engine: &Engine) -> usize {
    engine.containers().list(ListFilter::default().all(true)).await.unwrap().len()
}

/// One `#[tokio::test]` per shared scenario, on runtime `$rt`.
macro_rules! scenario_tests {
    ($rt:expr) => {
        #[tokio::test(flavor = "multi_thread")]
        async fn run_in_three_lines() {
            scenarios::run_in_three_lines($rt).await
        }
        #[tokio::test(flavor = "multi_thread")]
        async fn every_wait_strategy() {
            scenarios::every_wait_strategy($rt).await
        }
        #[tokio::test(flavor = "multi_thread")]
        async fn exec_and_copy() {
            scenarios::exec_and_copy($rt).await
        }
        #[tokio::test(flavor = "multi_thread")]
        async fn copies_see_the_containers_mounts_and_stay_in_its_root() {
            scenarios::copies_see_the_containers_mounts_and_stay_in_its_root($rt).await
        }
        #[tokio::test(flavor = "multi_thread")]
        async fn dropping_the_handle_removes_the_container() {
            scenarios::dropping_the_handle_removes_the_container($rt).await
        }
        #[tokio::test]
        async fn dropping_in_a_current_thread_runtime_removes_too() {
            scenarios::dropping_in_a_current_thread_runtime_removes_too($rt).await
        }
        #[tokio::test(flavor = "multi_thread")]
        async fn kill_and_start_again() {
            scenarios::kill_and_start_again($rt).await
        }
        #[tokio::test(flavor = "multi_thread")]
        async fn stdin_restart_policy_and_limits() {
            scenarios::stdin_restart_policy_and_limits($rt).await
        }
        #[tokio::test(flavor = "multi_thread")]
        async fn log_driver_per_container() {
            scenarios::log_driver_per_container($rt).await
        }
        #[tokio::test(flavor = "multi_thread")]
        async fn vfs_containers_keep_writes_and_free_their_copy() {
            scenarios::vfs_containers_keep_writes_and_free_their_copy($rt).await
        }
        #[tokio::test(flavor = "multi_thread")]
        async fn named_volume_through_the_facade() {
            scenarios::named_volume_through_the_facade($rt).await
        }
    };
}

pub async fn run_in_three_lines(runtime: &str) {
    let dir = tmp();
    let engine = engine_in(dir.path(), runtime).await;
    let c = engine.run(ContainerBuilder::new(IMAGE).cmd(["echo", "hi"]).wait_for(WaitFor::stdout("hi"))).await.unwrap();
    assert_eq!(c.inspect().await.unwrap().runtime, runtime);
    assert_eq!(c.wait().await.unwrap().code, 0);
    assert_eq!(c.stdout().await.unwrap(), "hi\n");
    let id = c.id().to_string();
    c.remove().await.unwrap();
    assert!(engine.containers().inspect(&id).await.unwrap_err().is_not_found());
    assert_eq!(mounts_under(dir.path()), 0);
}

pub async fn every_wait_strategy(runtime: &str) {
    let dir = tmp();
    let engine = engine_in(dir.path(), runtime).await;
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

    // A clear timeout, and nothing left behind (under `vm`, the VM's boot
    // comes before the wait's second).
    let t = Instant::now();
    let e = engine
        .run(sh("exec sleep 60").wait_for(WaitFor::stdout("never")).startup_timeout(Duration::from_secs(1)))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("never"), "{e}");
    assert!(t.elapsed() < boot_bound(runtime, 10));
    // Exited before the line: an error at once, not a timeout.
    let e = engine.run(sh("echo other").wait_for(WaitFor::stdout("never"))).await.unwrap_err();
    assert!(matches!(e, Error::UnexpectedExit { code: Some(0), .. }), "{e}");
    assert_eq!(all(&engine).await, 0);
    assert_eq!(mounts_under(dir.path()), 0);
}

pub async fn exec_and_copy(runtime: &str) {
    let dir = tmp();
    let engine = engine_in(dir.path(), runtime).await;
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

pub async fn copies_see_the_containers_mounts_and_stay_in_its_root(runtime: &str) {
    let dir = tmp();
    let engine = engine_in(dir.path(), runtime).await;
    let vol = dir.path().join("vol");
    std::fs::create_dir_all(&vol).unwrap();
    let c = engine.run(ContainerBuilder::new(IMAGE).cmd(["sleep", "60"]).bind(&vol, "/mnt/vol")).await.unwrap();
    // Into the bind mount, as the container sees it.
    c.copy_file_in("/mnt/vol/from-facade", b"via the mount").await.unwrap();
    assert_eq!(std::fs::read(vol.join("from-facade")).unwrap(), b"via the mount");
    assert_eq!(c.exec(["cat", "/mnt/vol/from-facade"]).await.unwrap().stdout_str(), "via the mount");
    // A link to a host file resolves inside the container's root.
    let secret = dir.path().join("host-secret");
    std::fs::write(&secret, "HOST-SECRET").unwrap();
    c.exec(["ln", "-s", secret.to_str().unwrap(), "/leak"]).await.unwrap();
    assert!(c.copy_file_out("/leak").await.unwrap_err().is_not_found());
    c.copy_file_in("/leak", b"overwritten?").await.unwrap();
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "HOST-SECRET");
    c.remove().await.unwrap();
}

pub async fn dropping_the_handle_removes_the_container(runtime: &str) {
    let dir = tmp();
    let engine = engine_in(dir.path(), runtime).await;
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

pub async fn dropping_in_a_current_thread_runtime_removes_too(runtime: &str) {
    let dir = tmp();
    let engine = engine_in(dir.path(), runtime).await;
    let c = engine.run(ContainerBuilder::new(IMAGE).cmd(["sleep", "60"])).await.unwrap();
    drop(c);
    engine.settle().await;
    assert_eq!(all(&engine).await, 0);
    assert_eq!(mounts_under(dir.path()), 0);
}

/// Kill, then start the same container again: its log keeps both runs.
pub async fn kill_and_start_again(runtime: &str) {
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
        assert!(t.elapsed() < boot_bound(runtime, 120), "no second line: {:?}", c.stdout().await.unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.stop(Some(Duration::from_millis(200))).await.unwrap();
    assert_eq!(c.stdout().await.unwrap(), "up\nup\n");
    c.remove().await.unwrap();
    assert_eq!(mounts_under(dir.path()), 0);
}

/// Stdin reaches an exec'd process and its end is seen; a restart policy
/// restarts a failing container as many times as it says; memory, pids and
/// CPU limits are the container's cgroup (for `vm`, inside the guest).
pub async fn stdin_restart_policy_and_limits(runtime: &str) {
    let dir = tmp();
    let engine = engine_in(dir.path(), runtime).await;
    let c = engine
        .run(ContainerBuilder::new(IMAGE).cmd(["sleep", "60"]).memory(48 << 20).pids_limit(50).cpus(1.0))
        .await
        .unwrap();
    let cfg = engine::core::ExecConfig::new(["sh", "-c", "cat; echo end"]);
    let out = c.exec_with(cfg, Some(b"line one\nline two\n".to_vec())).await.unwrap();
    assert_eq!((out.exit_code, out.stdout_str()), (0, "line one\nline two\nend\n".to_string()), "{out:?}");
    // cgroup v1 (engine-runc on a hybrid host) or v2 (the guest's, a v2 host's).
    let limits = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; \
                  cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; \
                  q=/sys/fs/cgroup/cpu/cpu.cfs_quota_us; p=/sys/fs/cgroup/cpu/cpu.cfs_period_us; \
                  if [ -e $q ]; then echo $(cat $q) $(cat $p); else cat /sys/fs/cgroup/cpu.max; fi";
    let out = c.exec(["sh", "-c", limits]).await.unwrap();
    assert_eq!(out.stdout_str(), format!("{}\n50\n100000 100000\n", 48 << 20), "{out:?}");
    // Past the memory limit, the process is OOM-killed.
    let out = c.exec(["sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; echo $?"]).await.unwrap();
    assert_eq!(out.stdout_str(), "137\n", "{out:?}");
    c.remove().await.unwrap();

    // on-failure:2: the first run and two restarts, then it stays exited.
    let c = engine
        .create(
            ContainerBuilder::new(IMAGE)
                .cmd(["sh", "-c", "echo run; exit 3"])
                .restart(RestartPolicy::OnFailure { max_retries: 2 }),
        )
        .await
        .unwrap();
    c.start().await.unwrap();
    let t = Instant::now();
    loop {
        let info = c.inspect().await.unwrap();
        if info.restart_count == 2 && info.state == engine::ContainerState::Exited {
            assert_eq!(info.exit_code, Some(3));
            break;
        }
        assert!(t.elapsed() < 3 * boot_bound(runtime, 60), "restarts: {info:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(c.stdout().await.unwrap(), "run\nrun\nrun\n");
    c.remove().await.unwrap();
    assert_eq!(all(&engine).await, 0);
    assert_eq!(mounts_under(dir.path()), 0);
}

pub async fn log_driver_per_container(runtime: &str) {
    let dir = tmp();
    let engine = engine_in(dir.path(), runtime).await;
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

fn overlay_mounts_under(dir: &std::path::Path) -> usize {
    let d = dir.to_string_lossy();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(" - overlay ") && l.contains(d.as_ref()))
        .count()
}

/// The facade's builder picks the storage driver: with `vfs`, containers
/// run from plain copies (no overlay mount), keep their writes across a
/// stop and start, and removal frees their copy.
pub async fn vfs_containers_keep_writes_and_free_their_copy(runtime: &str) {
    let root = tempfile::Builder::new().prefix("fs").tempdir_in("/tmp").unwrap();
    let engine = engine_with(root.path(), runtime, |b| b.storage_driver(StorageDriver::Vfs)).await;
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

/// `Engine::volumes()` and `ContainerBuilder::volume`.
pub async fn named_volume_through_the_facade(runtime: &str) {
    let dir = tmp();
    let engine = engine_in(dir.path(), runtime).await;
    let v = engine.volumes().create(VolumeCreate::named("facade-data").label("k", "v")).await.unwrap();
    assert_eq!(v.mountpoint, dir.path().join("volumes/facade-data/_data"));

    let c = engine
        .create(ContainerBuilder::new(IMAGE).cmd(["sh", "-c", "echo kept > /d/f"]).volume("facade-data", "/d"))
        .await
        .unwrap();
    // In use while the container exists.
    assert!(engine.volumes().remove("facade-data").await.unwrap_err().is_conflict());
    c.start().await.unwrap();
    assert_eq!(c.wait().await.unwrap().code, 0);
    c.remove().await.unwrap();
    assert_eq!(std::fs::read_to_string(v.mountpoint.join("f")).unwrap(), "kept\n");
    // Created on first use by the builder.
    let c = engine.create(ContainerBuilder::new(IMAGE).cmd(["true"]).volume("facade-new", "/n")).await.unwrap();
    let names: Vec<String> = engine.volumes().list().await.unwrap().into_iter().map(|v| v.name).collect();
    assert_eq!(names, vec!["facade-data".to_string(), "facade-new".to_string()]);
    c.remove().await.unwrap();
    engine.volumes().remove("facade-data").await.unwrap();
    engine.volumes().remove("facade-new").await.unwrap();
    assert!(engine.volumes().list().await.unwrap().is_empty());
}
