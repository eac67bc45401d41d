//! `Engine::build` and `Container::commit` in-process, with real
//! containers, through the default runtime, through runc and in a VM per
//! step (a swapped runtime builds the same way).

use engine::{BuildEvent, BuildOptions, CommitOptions, ContainerBuilder, Engine, WaitFor};
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const IMAGE: &str = "busybox:facade-build";

fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ENGINE_BIN_DIR") {
        return d.into();
    }
    std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf()
}

async fn engine_in(root: &Path, runtime: &str, runtime_path: PathBuf) -> Engine {
    let e = Engine::builder()
        .root(root)
        .add_runtime(runtime, runtime_path)
        .shim_launcher(std::sync::Arc::new(engine::shim::Launcher::new(bin_dir().join("engine-shim"))))
        .runtime(runtime)
        .startup_timeout(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    e.busybox_image(IMAGE).await.unwrap();
    e
}

fn mounts_under(p: &Path) -> usize {
    let p = p.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines().filter(|l| l.contains(&p)).count()
}

async fn build_and_commit(runtime: &str, runtime_path: PathBuf) {
    let dir = tempfile::Builder::new().prefix("fb").tempdir_in("/tmp").unwrap();
    let engine = engine_in(&dir.path().join("root"), runtime, runtime_path).await;
    let ctx = dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("in.txt"), "copied\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {IMAGE}\nCOPY in.txt /in.txt\nRUN echo ran-in-$(cat /in.txt) > /out.txt && echo step-output\n\
             HEALTHCHECK --interval=5s --retries=2 CMD test -f /out.txt\nCMD [\"cat\", \"/out.txt\"]\n"
        ),
    )
    .unwrap();
    let opts = BuildOptions::default().tags(vec![format!("built-{runtime}:1")]);
    let mut b = engine.build(&ctx, opts.clone()).await.unwrap();
    let mut events = Vec::new();
    while let Some(e) = b.events.next().await {
        events.push(e);
    }
    let out = b.finish().await.unwrap();
    assert!(
        events.contains(&BuildEvent::Step {
            number: 3,
            total: 5,
            instruction: "RUN echo ran-in-$(cat /in.txt) > /out.txt && echo step-output".into()
        }),
        "{events:?}"
    );
    assert!(events.contains(&BuildEvent::Output("step-output\n".into())), "{events:?}");
    assert_eq!((out.steps, out.cached_steps), (5, 0));
    // The config as dockerd writes it, Healthcheck included.
    let cfg = engine.images().config_json(&out.image.id).await.unwrap();
    assert_eq!(cfg["config"]["Healthcheck"]["Test"], serde_json::json!(["CMD-SHELL", "test -f /out.txt"]));
    assert_eq!(cfg["config"]["Healthcheck"]["Interval"], 5_000_000_000u64);
    assert_eq!(cfg["config"]["Healthcheck"]["Retries"], 2);
    assert_eq!(cfg["history"].as_array().unwrap().len(), 5, "{cfg}");
    let c =
        engine.run(ContainerBuilder::new(format!("built-{runtime}:1")).wait_for(WaitFor::exit_code(0))).await.unwrap();
    assert_eq!(c.stdout().await.unwrap(), "ran-in-copied\n");
    c.remove().await.unwrap();
    // Again: every step from the cache.
    let out = engine.build(&ctx, opts).await.unwrap().finish().await.unwrap();
    assert_eq!((out.steps, out.cached_steps), (5, 4));

    // Commit a container's changes with a new command.
    let c = engine
        .run(ContainerBuilder::new(IMAGE).cmd(["sh", "-c", "echo mine > /mine"]).wait_for(WaitFor::exit_code(0)))
        .await
        .unwrap();
    let img = c
        .commit(
            CommitOptions::default()
                .tag(Some(format!("mine-{runtime}:1")))
                .changes(vec!["CMD [\"cat\", \"/mine\"]".into()]),
        )
        .await
        .unwrap();
    c.remove().await.unwrap();
    let c = engine.run(ContainerBuilder::new(img.id.clone()).wait_for(WaitFor::exit_code(0))).await.unwrap();
    assert_eq!(c.stdout().await.unwrap(), "mine\n");
    c.remove().await.unwrap();
    engine.settle().await;
    assert_eq!(mounts_under(dir.path()), 0);
    let left = std::fs::read_dir(dir.path().join("root/build/work")).unwrap().count();
    assert_eq!(left, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn build_and_commit_with_engine_runc() {
    build_and_commit("engine-runc", bin_dir().join("engine-runc")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn build_and_commit_with_runc() {
    let Some(runc) = engine::lifecycle::find_in_path("runc") else {
        panic!("runc is not installed (scripts/install-deps.sh installs it)");
    };
    build_and_commit("runc", runc).await;
}

/// The RUN steps in a VM each (crate `engine-vm`): a swapped runtime builds too.
#[tokio::test(flavor = "multi_thread")]
async fn build_and_commit_with_vm() {
    build_and_commit("vm", bin_dir().join("engine-vm")).await;
}
