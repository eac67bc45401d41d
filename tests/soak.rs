//! Soak through the facade: a thousand run-to-exit-and-remove cycles, then
//! 50 at once, then creates racing for one name. Nothing may be left.

#[path = "../engine-daemon/tests/common/leftovers.rs"]
mod leftovers;
use engine::{ContainerBuilder, Engine, WaitFor};
use leftovers::{remove_cgroup_parent, rss_kib, Leftovers};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const IMAGE: &str = "busybox:soak";
const RUNS: usize = 1000;

fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ENGINE_BIN_DIR") {
        return d.into();
    }
    std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_runs_then_fifty_at_once_leave_nothing() {
    let dir = tempfile::Builder::new().prefix("soak").tempdir_in("/tmp").unwrap();
    let parent = format!("/engine-fsoak-{}", std::process::id());
    let engine = Engine::builder()
        .root(dir.path())
        .add_runtime("engine-runc", bin_dir().join("engine-runc"))
        .shim_launcher(std::sync::Arc::new(engine::shim::Launcher::new(bin_dir().join("engine-shim"))))
        .cgroup_parent(&parent)
        .startup_timeout(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    engine.busybox_image(IMAGE).await.unwrap();
    let me = std::process::id() as i32;
    let run_once = |engine: Engine, i: usize| async move {
        let c = engine
            .run(ContainerBuilder::new(IMAGE).cmd(["sh", "-c", &format!("echo soak-{i}")]).wait_for(WaitFor::exit()))
            .await
            .unwrap_or_else(|e| panic!("run {i}: {e}"));
        assert_eq!(c.stdout().await.unwrap(), format!("soak-{i}\n"));
        c.remove().await.unwrap();
    };
    for i in 0..20 {
        run_once(engine.clone(), i).await;
    }
    let root = dir.path().to_path_buf();
    let count = || Leftovers::count(&root, &parent, &[me]);
    let before = count();
    assert_eq!((before.mounts, before.cgroups, before.container_dirs), (0, 0, 0), "{before:?}");
    let rss0 = rss_kib(me);
    let t0 = Instant::now();
    for i in 0..RUNS {
        run_once(engine.clone(), i).await;
    }
    let took = t0.elapsed();
    settle(&count, &before).await;
    let rss1 = rss_kib(me);
    eprintln!("{RUNS} runs in {took:?}; RSS {rss0} KiB before, {rss1} KiB after");
    assert!(rss1 < rss0 + 16 * 1024, "the process grew from {rss0} to {rss1} KiB over {RUNS} runs");

    let tasks: Vec<_> = (0..50).map(|i| tokio::spawn(run_once(engine.clone(), 10_000 + i))).collect();
    for t in tasks {
        t.await.unwrap();
    }
    settle(&count, &before).await;

    for round in 0..10 {
        let name = format!("same-{round}");
        let create = |engine: Engine, name: String| async move {
            engine.create(ContainerBuilder::new(IMAGE).name(name).cmd(["true"])).await
        };
        let (a, b) = tokio::join!(create(engine.clone(), name.clone()), create(engine.clone(), name.clone()));
        let (ok, err) = match (a, b) {
            (Ok(c), Err(e)) | (Err(e), Ok(c)) => (c, e),
            (a, b) => panic!(
                "round {round}: want one container and one conflict, got {:?} and {:?}",
                a.map(|c| c.id().to_string()),
                b.map(|c| c.id().to_string())
            ),
        };
        assert!(err.is_conflict(), "round {round}: {err}");
        ok.remove().await.unwrap();
    }
    settle(&count, &before).await;
    remove_cgroup_parent(&parent);
}

/// Wait (up to 20 s) until the count is back to `want`.
async fn settle(count: &impl Fn() -> Leftovers, want: &Leftovers) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = count();
        if now.back_to(want) {
            return;
        }
        assert!(Instant::now() < deadline, "left behind: {now:?}, before: {want:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
