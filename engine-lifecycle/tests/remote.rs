//! `engine-lifecycled` + `RemoteManager` with real containers: the same
//! trait over gRPC, typed errors across the wire, streaming logs/attach/events,
//! and recovery after the daemon is SIGKILLed.

mod common;
use common::*;
use engine_core::{
    AttachOptions, ContainerState, EventKind, ExecConfig, LifecycleManager, ListFilter, LogOptions, Resources,
    WaitCondition,
};
use engine_lifecycle::RemoteManager;
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Daemon {
    child: Child,
    socket: PathBuf,
}

impl Daemon {
    fn spawn(root: &Path) -> Daemon {
        Self::spawn_with(root, &[])
    }

    fn spawn_with(root: &Path, extra: &[&str]) -> Daemon {
        let socket = root.join("lc.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_engine-lifecycled"))
            .args(extra)
            .arg("--root")
            .arg(root.join("state"))
            .arg("--socket")
            .arg(&socket)
            .arg("--images")
            .arg(root.join("images"))
            .arg("--shim")
            .arg(bin_dir().join("engine-shim"))
            .arg("--runtime")
            .arg(format!("engine-runc={}", bin_dir().join("engine-runc").display()))
            .arg("--log-level")
            .arg("warn")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Daemon { child, socket }
    }

    async fn client(&self) -> RemoteManager {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.socket.exists() {
                if let Ok(c) = RemoteManager::connect(&self.socket).await {
                    if c.list(ListFilter::default()).await.is_ok() {
                        return c;
                    }
                }
            }
            assert!(Instant::now() < deadline, "engine-lifecycled did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn sigkill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `engine-lifecycled --network-driver bridge` with its host side in a
/// namespace of the test's own: a bridge container published over gRPC.
#[tokio::test(flavor = "multi_thread")]
async fn remote_manager_with_bridge_networking() {
    use engine_core::network::PortBinding;
    let env = Env::new().await;
    let hostns = engine_network::NetnsFile::create(&env.dir.path().join("hostns")).await.unwrap();
    let ns = hostns.path().display().to_string();
    let _daemon = Daemon::spawn_with(env.dir.path(), &["--network-driver", "bridge", "--network-host-netns", &ns]);
    let mgr = _daemon.client().await;
    let c = mgr
        .create(
            sh("true").network(engine_core::NetworkMode::Bridge).ports(PortBinding::parse("127.0.0.1:0:80").unwrap()),
        )
        .await
        .unwrap();
    let ep = &c.networks["bridge"];
    assert!(ep.ipv4.is_some_and(|a| a.addr().to_string().starts_with("172.17.")), "{ep:?}");
    assert_ne!(ep.ports[0].host_port, 0);
    assert_eq!(mgr.inspect(&c.id).await.unwrap().networks, c.networks);
    mgr.remove(&c.id, true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_lifecycle_and_typed_errors() {
    let env = Env::new().await;
    let mut daemon = Daemon::spawn(env.dir.path());
    let mgr = daemon.client().await;
    let mut events = mgr.events().await.unwrap();

    let e = mgr.create(sh("true").image("nosuch:img".into())).await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    let e = mgr.create(sh("true").resources(Resources::default().memory(Some(-1)))).await.unwrap_err();
    assert!(e.is_invalid_input(), "{e}");
    assert!(mgr.inspect("nosuch").await.unwrap_err().is_not_found());

    let c = mgr.create(sh("echo one; read x; echo got $x; exit 2").name(Some("remote1".into()))).await.unwrap();
    let e = mgr.create(sh("true").name(Some("remote1".into()))).await.unwrap_err();
    assert!(e.is_conflict(), "{e}");
    let c2 = mgr.create(sh("echo one; read x; echo got $x; exit 2").open_stdin(true)).await.unwrap();
    // Attach with stdin through the service.
    let mut att = mgr.attach(&c2.id, AttachOptions::default().stdin(true).stdout(true).stderr(true)).await.unwrap();
    mgr.start(&c2.id).await.unwrap();
    use tokio::io::AsyncWriteExt;
    let mut stdin = att.stdin.take().unwrap();
    stdin.write_all(b"ping\n").await.unwrap();
    stdin.flush().await.unwrap();
    let mut text = String::new();
    while !text.contains("got ping") {
        let o = tokio::time::timeout(Duration::from_secs(10), att.output.next()).await.unwrap().unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(&o.data));
    }
    assert_eq!(mgr.wait(&c2.id, WaitCondition::NotRunning).await.unwrap().code, 2);
    assert_eq!(log_text(&mgr, &c2.id).await.unwrap(), "one\ngot ping\n");

    // exec + follow logs over the wire.
    mgr.remove(&c.id, false).await.unwrap();
    let s = mgr.create(sh("i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done")).await.unwrap();
    mgr.start(&s.id).await.unwrap();
    let x = mgr.exec(&s.id, ExecConfig::default().cmd(vec!["sh".into(), "-c".into(), "exit 9".into()])).await.unwrap();
    assert_eq!(mgr.exec_wait(&x).await.unwrap().code, 9);
    let mut logs = mgr.logs(&s.id, LogOptions::default().follow(true).tail(Some(1))).await.unwrap();
    let first = logs.next().await.unwrap().unwrap();
    let second = logs.next().await.unwrap().unwrap();
    assert!(first.time <= second.time);
    assert!(String::from_utf8_lossy(&second.line).starts_with("tick "));
    mgr.stop(&s.id, Some(Duration::from_millis(300))).await.unwrap();
    // The follow ends once the container stopped.
    let rest = tokio::time::timeout(Duration::from_secs(10), logs.collect::<Vec<_>>()).await.unwrap();
    assert!(rest.iter().all(|r| r.is_ok()));
    assert!(mgr.top(&s.id).await.unwrap_err().is_conflict());
    mgr.remove(&s.id, false).await.unwrap();
    mgr.remove(&c2.id, false).await.unwrap();

    let mut kinds = Vec::new();
    while let Ok(Some(Ok(e))) = tokio::time::timeout(Duration::from_millis(200), events.next()).await {
        kinds.push(e.kind);
    }
    assert!(kinds.contains(&EventKind::Exited { code: 2 }), "{kinds:?}");
    assert!(kinds.contains(&EventKind::ExecExited { exec_id: x.clone(), code: 9 }), "{kinds:?}");
    assert!(kinds.iter().filter(|k| **k == EventKind::Removed).count() >= 3, "{kinds:?}");
    daemon.sigkill();
    assert!(mounts_under(env.dir.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn recovery_after_sigkill_of_the_daemon() {
    let env = Env::new().await;
    let mut daemon = Daemon::spawn(env.dir.path());
    let mgr = daemon.client().await;
    let ticker = mgr.create(sh("i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done")).await.unwrap();
    mgr.start(&ticker.id).await.unwrap();
    let exits = mgr.create(sh("sleep 1; exit 7")).await.unwrap();
    mgr.start(&exits.id).await.unwrap();
    let created = mgr.create(sh("echo late start")).await.unwrap();
    let always = mgr.create(sh("sleep 1.2; exit 1").restart(engine_core::RestartPolicy::Always)).await.unwrap();
    mgr.start(&always.id).await.unwrap();
    let pid = mgr.inspect(&ticker.id).await.unwrap().pid.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = log_text(&mgr, &ticker.id).await.unwrap().lines().count();

    daemon.sigkill();
    drop(mgr);
    // While no manager runs: the container keeps running and logging, the other exits.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "container died with its manager");

    let mut daemon = Daemon::spawn(env.dir.path());
    let mgr = daemon.client().await;
    let t = mgr.inspect(&ticker.id).await.unwrap();
    assert_eq!((t.state, t.pid), (ContainerState::Running, Some(pid)));
    let e = mgr.inspect(&exits.id).await.unwrap();
    assert_eq!((e.state, e.exit_code), (ContainerState::Exited, Some(7)));
    assert_eq!(mgr.wait(&exits.id, WaitCondition::NotRunning).await.unwrap().code, 7);
    assert_eq!(mgr.inspect(&created.id).await.unwrap().state, ContainerState::Created);
    // The restart policy applies to an exit that happened while away.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let a = mgr.inspect(&always.id).await.unwrap();
        if a.restart_count >= 1 && a.state == ContainerState::Running {
            break;
        }
        assert!(Instant::now() < deadline, "not restarted: {a:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    mgr.stop(&always.id, Some(Duration::ZERO)).await.unwrap();
    let running = mgr.list(ListFilter::default()).await.unwrap();
    assert_eq!(running.len(), 1);

    // No line lost while the manager was away: ticks are consecutive.
    let text = log_text(&mgr, &ticker.id).await.unwrap();
    let ticks: Vec<u64> = text.lines().map(|l| l.trim_start_matches("tick ").parse().unwrap()).collect();
    assert!(ticks.len() > before, "{} ticks, {before} before the manager was killed", ticks.len());
    assert!(ticks.windows(2).all(|w| w[1] == w[0] + 1), "gap in {ticks:?}");

    // wait, stop and start work on the recovered containers.
    let waiter = {
        let m = mgr.clone();
        let id = ticker.id.clone();
        tokio::spawn(async move { m.wait(&id, WaitCondition::NotRunning).await })
    };
    mgr.stop(&ticker.id, Some(Duration::from_millis(300))).await.unwrap();
    assert_eq!(waiter.await.unwrap().unwrap().code, 137);
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    mgr.start(&created.id).await.unwrap();
    assert_eq!(mgr.wait(&created.id, WaitCondition::NotRunning).await.unwrap().code, 0);
    assert_eq!(log_text(&mgr, &created.id).await.unwrap(), "late start\n");
    cleanup(&mgr).await;
    daemon.sigkill();
    assert!(mounts_under(env.dir.path()).is_empty());
}
