//! The in-process manager with real containers: the whole lifecycle on each
//! runtime, bad input, exits, restart policies, auto-remove.

mod common;
use common::*;
use engine_core::{
    AttachOptions, ContainerState, EventKind, ExecConfig, LifecycleManager, ListFilter, LogOptions, MountSpec,
    Resources, RestartPolicy, WaitCondition,
};
use futures::StreamExt;
use std::time::{Duration, Instant};

async fn whole_lifecycle(runtime: &str) {
    let env = Env::new().await;
    let mgr = env.manager(runtime).await;
    let mut events = mgr.events().await.unwrap();
    let name = format!("web-{}", &engine_core::random_hex64()[..8]);
    let mut cfg = sh("echo hello; echo oops >&2; exec sleep 60");
    cfg.name = Some(name.clone());
    cfg.labels.insert("app".into(), "web".into());
    let info = mgr.create(cfg).await.unwrap();
    assert_eq!(info.state, ContainerState::Created);
    assert_eq!(info.runtime, runtime);
    assert!(info.bundle.join("config.json").is_file());
    // By name, by id prefix.
    assert_eq!(mgr.inspect(&name).await.unwrap().id, info.id);
    assert_eq!(mgr.inspect(&info.id[..10]).await.unwrap().name, name);

    mgr.start(&name).await.unwrap();
    let running = mgr.inspect(&info.id).await.unwrap();
    assert_eq!(running.state, ContainerState::Running);
    let pid = running.pid.unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    let top = mgr.top(&info.id).await.unwrap();
    assert!(top.contains(&pid), "top {top:?} lacks init {pid}");
    let listed = mgr.list(ListFilter::default().labels(vec!["app=web".into()])).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(mgr.list(ListFilter::default().labels(vec!["app=db".into()])).await.unwrap().is_empty());

    // Logs, following until the line shows up.
    let mut logs = mgr.logs(&info.id, LogOptions::default().follow(true)).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let e = tokio::time::timeout(Duration::from_secs(10), logs.next()).await.unwrap().unwrap().unwrap();
        seen.push((e.stream, String::from_utf8_lossy(&e.line).to_string()));
    }
    drop(logs);
    assert!(seen.iter().any(|(s, l)| *s == engine_core::StdStream::Stdout && l == "hello\n"), "{seen:?}");
    assert!(seen.iter().any(|(s, l)| *s == engine_core::StdStream::Stderr && l == "oops\n"), "{seen:?}");
    let only_err = mgr.logs(&info.id, LogOptions::default().stdout(false)).await.unwrap();
    let only_err: Vec<_> = only_err.collect().await;
    assert_eq!(only_err.len(), 1);
    // since / until select by the time the shim read each line.
    let all: Vec<_> = mgr.logs(&info.id, LogOptions::default()).await.unwrap().map(|e| e.unwrap()).collect().await;
    let latest = all.iter().map(|e| e.time).max().unwrap();
    let since: Vec<_> = mgr.logs(&info.id, LogOptions::default().since(Some(latest))).await.unwrap().collect().await;
    assert!(!since.is_empty() && since.len() <= all.len());
    let until: Vec<_> = mgr.logs(&info.id, LogOptions::default().until(Some(latest))).await.unwrap().collect().await;
    assert_eq!(since.len() + until.len(), all.len());
    let tail: Vec<_> = mgr.logs(&info.id, LogOptions::default().tail(Some(1))).await.unwrap().collect().await;
    assert_eq!(tail.len(), 1);

    // Exec with its own output and exit code.
    let exec = mgr
        .exec(
            &info.id,
            ExecConfig::default().cmd(vec!["sh".into(), "-c".into(), "echo in-exec $HOSTNAME; exit 3".into()]),
        )
        .await
        .unwrap();
    let att = mgr.exec_attach(&exec, AttachOptions::default().stdin(false).stdout(true).stderr(true)).await.unwrap();
    let out: Vec<_> = att.output.collect().await;
    let text: String = out.into_iter().map(|o| String::from_utf8_lossy(&o.unwrap().data).to_string()).collect();
    assert_eq!(text, format!("in-exec {}\n", &info.id[..12]));
    assert_eq!(mgr.exec_wait(&exec).await.unwrap().code, 3);
    assert_eq!(mgr.exec_inspect(&exec).await.unwrap().exit_code, Some(3));

    // Pause / resume, stats.
    mgr.pause(&info.id).await.unwrap();
    assert_eq!(mgr.inspect(&info.id).await.unwrap().state, ContainerState::Paused);
    mgr.resume(&info.id).await.unwrap();
    assert_eq!(mgr.inspect(&info.id).await.unwrap().state, ContainerState::Running);
    let stats = mgr.stats(&info.id).await.unwrap();
    // Both runtimes read the container's cgroup: a sleeping shell uses memory and one pid.
    assert!(stats.memory_usage.unwrap_or(0) > 0, "{runtime}: {stats:?}");
    assert!(stats.pids_current.unwrap_or(0) >= 1, "{runtime}: {stats:?}");

    // Stop: sleep as pid 1 ignores SIGTERM, so SIGKILL after the grace period.
    let t = Instant::now();
    mgr.stop(&info.id, Some(Duration::from_millis(500))).await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(500));
    let stopped = mgr.inspect(&info.id).await.unwrap();
    assert_eq!(stopped.state, ContainerState::Exited);
    assert_eq!(stopped.exit_code, Some(137));
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(mgr.wait(&info.id, WaitCondition::NotRunning).await.unwrap().code, 137);

    // Start again after exit; output appends to the same log.
    mgr.start(&info.id).await.unwrap();
    let pid2 = mgr.inspect(&info.id).await.unwrap().pid.unwrap();
    assert_ne!(pid, pid2);
    // The second run has written its line before it is killed.
    let deadline = Instant::now() + Duration::from_secs(20);
    while log_text(&mgr, &info.id).await.unwrap().matches("hello\n").count() < 2 {
        assert!(Instant::now() < deadline, "the second run never wrote its line");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A next-exit wait counts from its first poll: poll it once before the kill.
    {
        let waiter = mgr.wait(&info.id, WaitCondition::NextExit);
        tokio::pin!(waiter);
        assert!(futures::poll!(&mut waiter).is_pending());
        mgr.kill(&info.id, engine_core::Signal::KILL).await.unwrap();
        assert_eq!(waiter.await.unwrap().code, 137);
    }
    assert_eq!(log_text(&mgr, &info.id).await.unwrap().matches("hello\n").count(), 2);

    // Remove: nothing left.
    mgr.remove(&info.id, false).await.unwrap();
    assert!(mgr.inspect(&info.id).await.unwrap_err().is_not_found());
    assert!(!info.bundle.exists());
    assert!(mounts_under(&env.root()).is_empty(), "{:?}", mounts_under(&env.root()));
    assert!(std::fs::read_dir(env.root().join("shims")).unwrap().next().is_none());

    let mut kinds = Vec::new();
    while let Ok(Some(Ok(e))) = tokio::time::timeout(Duration::from_millis(100), events.next()).await {
        kinds.push(e.kind);
    }
    for k in [
        EventKind::Created,
        EventKind::Started,
        EventKind::Paused,
        EventKind::Resumed,
        EventKind::Exited { code: 137 },
        EventKind::Removed,
    ] {
        assert!(kinds.contains(&k), "no {k:?} in {kinds:?}");
    }
    // A new manager on the same root has no record of it.
    drop(mgr);
    let again = env.manager(runtime).await;
    assert!(again.list(ListFilter::default().all(true)).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn whole_lifecycle_engine_runc() {
    whole_lifecycle("engine-runc").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn whole_lifecycle_runc() {
    if engine_lifecycle::find_in_path("runc").is_none() {
        eprintln!("runc not installed; skipped");
        return;
    }
    whole_lifecycle("runc").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_typed_and_leaves_nothing() {
    let env = Env::new().await;
    let mgr = env.manager("engine-runc").await;
    let taken = mgr.create(sh("true").name(Some("taken".into()))).await.unwrap();

    let e = mgr.create(sh("true").image("nosuch:image".into())).await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    let e = mgr.create(sh("true").resources(Resources::default().memory(Some(-5)))).await.unwrap_err();
    assert!(e.is_invalid_input() && e.to_string().contains("memory"), "{e}");
    let e = mgr.create(sh("true").runtime(Some("nosuch-rt".into()))).await.unwrap_err();
    assert!(e.is_invalid_input() && e.to_string().contains("nosuch-rt"), "{e}");
    let e = mgr.create(sh("true").name(Some("taken".into()))).await.unwrap_err();
    assert!(e.is_conflict(), "{e}");
    let bad_mount = MountSpec::Bind { source: "/no/such/dir".into(), target: "/data".into(), read_only: false };
    let e = mgr.create(sh("true").mounts(vec![bad_mount])).await.unwrap_err();
    assert!(e.is_invalid_input() && e.to_string().contains("/no/such/dir"), "{e}");
    let e = mgr.create(sh("true").cmd(None).entrypoint(Some(vec![]))).await.unwrap_err();
    assert!(e.is_invalid_input(), "{e}");

    // Only the one good container exists, on disk and in the database.
    let all = mgr.list(ListFilter::default().all(true)).await.unwrap();
    assert_eq!(all.len(), 1);
    let bundles: Vec<_> = std::fs::read_dir(env.root().join("containers")).unwrap().collect();
    assert_eq!(bundles.len(), 1);
    assert_eq!(mounts_under(&env.root()).len(), 1);
    mgr.remove(&taken.id, false).await.unwrap();
    assert!(mounts_under(&env.root()).is_empty());
    assert!(std::fs::read_dir(env.root().join("containers")).unwrap().next().is_none());
    // The name is free again.
    let again = mgr.create(sh("true").name(Some("taken".into()))).await.unwrap();
    mgr.remove(&again.id, true).await.unwrap();
    // Unknown containers.
    assert!(mgr.start("nosuch").await.unwrap_err().is_not_found());
    assert!(mgr.remove("nosuch", true).await.unwrap_err().is_not_found());
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_codes_restart_policies_and_auto_remove() {
    let env = Env::new().await;
    let mgr = env.manager("engine-runc").await;
    // Exit code as a value, and wait after the fact.
    let c = mgr.create(sh("exit 7")).await.unwrap();
    mgr.start(&c.id).await.unwrap();
    assert_eq!(mgr.wait(&c.id, WaitCondition::NotRunning).await.unwrap().code, 7);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(mgr.wait(&c.id, WaitCondition::NotRunning).await.unwrap().code, 7);
    assert_eq!(mgr.inspect(&c.id).await.unwrap().exit_code, Some(7));
    // Removing a running container is a conflict without force.
    let r = mgr.create(sh("exec sleep 60")).await.unwrap();
    mgr.start(&r.id).await.unwrap();
    assert!(mgr.remove(&r.id, false).await.unwrap_err().is_conflict());
    mgr.remove(&r.id, true).await.unwrap();

    // on-failure:2 restarts twice, then stays exited.
    let f = mgr.create(sh("echo run; exit 1").restart(RestartPolicy::OnFailure { max_retries: 2 })).await.unwrap();
    mgr.start(&f.id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let i = mgr.inspect(&f.id).await.unwrap();
        if i.restart_count == 2 && i.state == ContainerState::Exited {
            break;
        }
        assert!(Instant::now() < deadline, "restarts: {i:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let i = mgr.inspect(&f.id).await.unwrap();
    assert_eq!((i.restart_count, i.state, i.exit_code), (2, ContainerState::Exited, Some(1)));
    assert_eq!(log_text(&mgr, &f.id).await.unwrap(), "run\nrun\nrun\n");

    // always: restarted after exit 0, but not after a user stop.
    let a = mgr.create(sh("sleep 0.2").restart(RestartPolicy::Always)).await.unwrap();
    mgr.start(&a.id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while mgr.inspect(&a.id).await.unwrap().restart_count < 2 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    mgr.stop(&a.id, Some(Duration::from_secs(5))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(mgr.inspect(&a.id).await.unwrap().state, ContainerState::Exited);

    // auto-remove: gone after exit.
    let ar = mgr.create(sh("exit 0").auto_remove(true)).await.unwrap();
    mgr.start(&ar.id).await.unwrap();
    let st = mgr.wait(&ar.id, WaitCondition::Removed).await.unwrap();
    assert_eq!(st.code, 0);
    assert!(mgr.inspect(&ar.id).await.unwrap_err().is_not_found());
    assert!(!ar.bundle.exists());
    cleanup(&mgr).await;
    assert!(mounts_under(&env.root()).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn config_reaches_the_container() {
    let env = Env::new().await;
    let mgr = env.manager("engine-runc").await;
    let host_dir = env.dir.path().join("shared");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("in.txt"), "from-host").unwrap();
    let cfg = sh("echo \"$GREETING|$(pwd)|$(id -u)|$(hostname)|$(cat /shared/in.txt)\"; \
              touch /shared/x 2>/dev/null && echo rw || echo ro; \
              grep -q ' /scratch tmpfs' /proc/mounts && echo tmpfs; echo data > /vol/f 2>/dev/null; true")
    .env(vec!["GREETING=hi there".into()])
    .working_dir(Some("/tmp".into()))
    .user(Some("nobody".into()))
    .hostname(Some("box1".into()))
    .mounts(vec![
        MountSpec::Bind { source: host_dir.clone(), target: "/shared".into(), read_only: true },
        MountSpec::Tmpfs { target: "/scratch".into(), size: Some(1 << 20) },
        MountSpec::Volume { name: "vol1".into(), target: "/vol".into(), read_only: false, no_copy: false },
    ])
    .resources(Resources::default().memory(Some(64 << 20)).pids_limit(Some(50)));
    let c = mgr.create(cfg.clone().user(None)).await.unwrap();
    mgr.start(&c.id).await.unwrap();
    assert_eq!(mgr.wait(&c.id, WaitCondition::NotRunning).await.unwrap().code, 0);
    let out = log_text(&mgr, &c.id).await.unwrap();
    assert_eq!(out, "hi there|/tmp|0|box1|from-host\nro\ntmpfs\n");
    assert_eq!(std::fs::read_to_string(env.root().join("volumes/vol1/f")).unwrap(), "data\n");
    mgr.remove(&c.id, false).await.unwrap();
    // The user is resolved in the image's /etc/passwd.
    let c = mgr.create(cfg.mounts(vec![])).await.unwrap();
    mgr.start(&c.id).await.unwrap();
    mgr.wait(&c.id, WaitCondition::NotRunning).await.unwrap();
    let out = stdout_text(&mgr, &c.id).await.unwrap();
    assert!(out.starts_with("hi there|/tmp|65534|box1|"), "{out}");
    mgr.remove(&c.id, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn tty_resize_and_exec_in_a_terminal() {
    let env = Env::new().await;
    let mgr = env.manager("engine-runc").await;
    let c = mgr
        .create(sh("for i in $(seq 100); do [ \"$(stty size 2>/dev/null)\" = \"40 100\" ] && break; sleep 0.1; done; stty size; tty; exec sleep 60").tty(true))
        .await
        .unwrap();
    mgr.start(&c.id).await.unwrap();
    mgr.resize(&c.id, engine_core::ConsoleSize { height: 40, width: 100 }).await.unwrap();
    let mut logs = mgr.logs(&c.id, LogOptions::default().follow(true)).await.unwrap();
    let mut text = String::new();
    while !text.contains("/dev/") {
        let e = tokio::time::timeout(Duration::from_secs(10), logs.next()).await.unwrap().unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(&e.line));
    }
    assert!(text.contains("40 100\r\n"), "{text:?}");
    assert!(text.contains("/dev/pts/") || text.contains("/dev/console"), "{text:?}");
    let x = mgr.exec(&c.id, ExecConfig::default().cmd(vec!["tty".into()]).tty(true)).await.unwrap();
    let att = mgr.exec_attach(&x, AttachOptions::default().stdin(false).stdout(true).stderr(true)).await.unwrap();
    let out: String = att.output.map(|o| String::from_utf8_lossy(&o.unwrap().data).to_string()).collect().await;
    assert!(out.contains("/dev/pts/"), "{out:?}");
    assert_eq!(mgr.exec_wait(&x).await.unwrap().code, 0);
    mgr.remove(&c.id, true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_interrupted_by_a_crash_is_swept_on_start() {
    let env = Env::new().await;
    let mgr = env.manager("engine-runc").await;
    let kept = mgr.create(sh("true")).await.unwrap();
    drop(mgr);
    // What a crash after the rootfs was prepared, before the record was written, leaves.
    let id = engine_core::random_hex64();
    let bundle = env.root().join("containers").join(&id);
    std::fs::create_dir_all(&bundle).unwrap();
    env.images.prepare_rootfs(IMAGE, &id, &bundle.join("rootfs")).await.unwrap();
    assert_eq!(mounts_under(&env.root()).len(), 2);
    let mgr = env.manager("engine-runc").await;
    assert!(!bundle.exists());
    assert_eq!(mounts_under(&env.root()).len(), 1);
    assert_eq!(mgr.inspect(&kept.id).await.unwrap().state, ContainerState::Created);
    mgr.remove(&kept.id, true).await.unwrap();
    assert!(mounts_under(&env.root()).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_shim_is_recorded_and_cleaned_up() {
    let env = Env::new().await;
    let mgr = env.manager("engine-runc").await;
    let c = mgr.create(sh("exec sleep 600")).await.unwrap();
    mgr.start(&c.id).await.unwrap();
    let pid = mgr.inspect(&c.id).await.unwrap().pid.unwrap();
    let shims: Vec<i32> = std::fs::read_dir(env.root().join("shims"))
        .unwrap()
        .flatten()
        .filter_map(|d| engine_shim::read_address(&d.path()).ok().flatten())
        .filter(|a| a.id == c.id)
        .map(|a| a.pid)
        .collect();
    assert_eq!(shims.len(), 1, "{shims:?}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(shims[0]), nix::sys::signal::Signal::SIGKILL).unwrap();
    // The manager notices, records the container as dead and stops what the shim held.
    let st = tokio::time::timeout(Duration::from_secs(20), mgr.wait(&c.id, WaitCondition::NotRunning))
        .await
        .expect("the manager never noticed the shim's death")
        .unwrap();
    assert_ne!(st.code, 0);
    let info = mgr.inspect(&c.id).await.unwrap();
    assert!(matches!(info.state, ContainerState::Dead | ContainerState::Exited), "{:?}", info.state);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "container init {pid} outlived its killed shim");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Removal leaves nothing; the manager serves other containers as before.
    mgr.remove(&c.id, false).await.unwrap();
    assert!(mounts_under(&env.root()).is_empty());
    let d = mgr.create(sh("echo after")).await.unwrap();
    mgr.start(&d.id).await.unwrap();
    assert_eq!(mgr.wait(&d.id, WaitCondition::NotRunning).await.unwrap().code, 0);
    assert_eq!(log_text(&mgr, &d.id).await.unwrap(), "after\n");
    cleanup(&mgr).await;
}

/// `update` changes a running container's limits in its cgroup, its
/// recorded config and its bundle (kept for the next start); what is
/// invalid is refused and changes nothing.
async fn update_resources(runtime: &str) {
    let env = Env::new().await;
    let mgr = env.manager(runtime).await;
    let mut cfg = sh("exec sleep 60");
    cfg.resources = Resources::default().memory(Some(64 << 20));
    let info = mgr.create(cfg).await.unwrap();
    mgr.start(&info.id).await.unwrap();
    assert_eq!(mgr.stats(&info.id).await.unwrap().memory_limit, Some(64 << 20), "{runtime}");
    mgr.update(&info.id, Resources::default().memory(Some(96 << 20)).cpus(Some(0.5))).await.unwrap();
    assert_eq!(mgr.stats(&info.id).await.unwrap().memory_limit, Some(96 << 20), "{runtime}");
    let r = mgr.inspect(&info.id).await.unwrap().config.resources;
    assert_eq!((r.memory, r.cpus), (Some(96 << 20), Some(0.5)));
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(info.bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["linux"]["resources"]["memory"]["limit"], 96 << 20);
    assert_eq!(spec["linux"]["resources"]["cpu"]["quota"], 50_000);
    let e = mgr.update(&info.id, Resources::default().memory(Some(1))).await.unwrap_err();
    assert!(e.is_invalid_input(), "{e}");
    assert_eq!(mgr.stats(&info.id).await.unwrap().memory_limit, Some(96 << 20));
    assert!(mgr.update("no-such-container", Resources::default()).await.unwrap_err().is_not_found());
    mgr.remove(&info.id, true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn update_resources_engine_runc() {
    update_resources("engine-runc").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn update_resources_runc() {
    update_resources("runc").await;
}

/// Below the memory reserve a create is refused, naming the figures, and
/// nothing is made; with the reserve off the same create works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_refused_under_the_memory_reserve() {
    let env = Env::new().await;
    let mgr = engine_lifecycle::Manager::new(env.config("engine-runc").memory_reserve(u64::MAX >> 1)).await.unwrap();
    let mut cfg = sh("true");
    cfg.name = Some(format!("reserve-{}", &engine_core::random_hex64()[..8]));
    match mgr.create(cfg.clone()).await {
        Err(engine_core::Error::Unavailable { what, reason }) => {
            assert_eq!(what, "machine memory");
            assert!(reason.contains("MemAvailable is") && reason.contains("memory reserve"), "{reason}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(mgr.list(ListFilter::default().all(true)).await.unwrap().is_empty(), "no container was made");
    let bundles = env.root().join("containers");
    let left = std::fs::read_dir(&bundles).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "nothing under {}", bundles.display());
    drop(mgr);

    let mgr = engine_lifecycle::Manager::new(env.config("engine-runc").memory_reserve(0)).await.unwrap();
    let info = mgr.create(cfg).await.unwrap();
    mgr.remove(&info.id, true).await.unwrap();
}
