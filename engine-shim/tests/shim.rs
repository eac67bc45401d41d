//! End-to-end tests: real containers from a busybox rootfs, created through
//! the shim with runc and with engine-runc (same tests for both).

mod common;

use common::*;
use engine_core::{
    AttachOptions, ConsoleSize, ContainerStatus, Error, ExecRequest, ProcessRef, ShimEvent, ShimLauncher, Signal,
    StdStream,
};
use engine_shim::Launcher;
use futures::StreamExt;
use std::time::{Duration, SystemTime};
use tokio::io::AsyncWriteExt;

const T: Duration = Duration::from_secs(60);

fn launcher() -> Launcher {
    Launcher::new(shim_binary())
}

async fn collect_output(
    mut out: futures::stream::BoxStream<'static, engine_core::Result<engine_core::Output>>,
) -> String {
    let mut s = Vec::new();
    while let Some(Ok(o)) = out.next().await {
        s.extend_from_slice(&o.data);
    }
    String::from_utf8_lossy(&s).into_owned()
}

/// Read `out` until `needle` shows up (or time runs out); everything read.
async fn read_until(
    out: &mut futures::stream::BoxStream<'static, engine_core::Result<engine_core::Output>>,
    needle: &str,
) -> String {
    let mut s = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while !s.contains(needle) {
            match out.next().await {
                Some(Ok(o)) => s.push_str(&String::from_utf8_lossy(&o.data)),
                _ => break,
            }
        }
    })
    .await;
    s
}

async fn output_logged_with_timestamps(rt: Rt) {
    let c = TestContainer::new(rt, "log", &["sh", "-c", "echo out1; echo err1 >&2; echo out2"], false);
    let shim = launcher().launch(c.request()).await.unwrap();
    c.shim_pid.set(Some(shim.shim_pid().await.unwrap()));
    let before = SystemTime::now();
    shim.start().await.unwrap();
    let exit = shim.wait(&ProcessRef::Init).await.unwrap();
    let after = SystemTime::now();
    assert_eq!(exit.code, 0);
    let entries = c.log_entries();
    let mut lines: Vec<(String, StdStream)> =
        entries.iter().map(|e| (String::from_utf8_lossy(&e.line).into_owned(), e.stream)).collect();
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        lines,
        vec![
            ("err1\n".to_string(), StdStream::Stderr),
            ("out1\n".to_string(), StdStream::Stdout),
            ("out2\n".to_string(), StdStream::Stdout)
        ]
    );
    for e in &entries {
        assert!(e.time >= before && e.time <= after, "log time {:?} outside the run", e.time);
        assert!(!e.partial);
    }
    let outs: Vec<_> = entries.iter().filter(|e| e.stream == StdStream::Stdout).map(|e| e.line.clone()).collect();
    assert_eq!(outs, vec!["out1\n", "out2\n"], "stdout order kept");
    assert!(shim.delete().await.unwrap().is_some());
    assert!(!c.runtime_knows());
}

async fn exit_code_for_a_late_waiter(rt: Rt) {
    let c = TestContainer::new(rt, "exit", &["sh", "-c", "exit 7"], false);
    let l = launcher();
    let shim = l.launch(c.request()).await.unwrap();
    c.shim_pid.set(Some(shim.shim_pid().await.unwrap()));
    assert_eq!(shim.state(&ProcessRef::Init).await.unwrap().status, ContainerStatus::Created);
    let pid = shim.start().await.unwrap();
    assert!(pid > 0);
    // Nobody waits while it runs and exits.
    let st = c.state_dir();
    assert!(eventually(Duration::from_secs(10), || engine_shim::read_exit(&st, None).unwrap().is_some()).await);
    let state = shim.state(&ProcessRef::Init).await.unwrap();
    assert_eq!(state.status, ContainerStatus::Stopped);
    assert_eq!(state.exit.map(|e| e.code), Some(7));
    // Two waiters after the fact, on two connections.
    let other = l.connect(&c.id, &c.state_dir()).await.unwrap();
    let (a, b) = tokio::join!(shim.wait(&ProcessRef::Init), other.wait(&ProcessRef::Init));
    assert_eq!(a.unwrap().code, 7);
    assert_eq!(b.unwrap().code, 7);
    assert_eq!(l.recorded_exit(&c.state_dir()).await.unwrap().map(|e| e.code), Some(7));
    shim.delete().await.unwrap();
}

async fn kill_reports_128_plus_signal_and_events(rt: Rt) {
    let c = TestContainer::new(rt, "kill", &["sleep", "1000"], false);
    let shim = launcher().launch(c.request()).await.unwrap();
    c.shim_pid.set(Some(shim.shim_pid().await.unwrap()));
    let mut events = shim.events().await.unwrap();
    let pid = shim.start().await.unwrap();
    assert_eq!(events.next().await.unwrap().unwrap(), ShimEvent::Started { pid });
    shim.pause().await.unwrap();
    assert_eq!(shim.state(&ProcessRef::Init).await.unwrap().status, ContainerStatus::Paused);
    assert_eq!(events.next().await.unwrap().unwrap(), ShimEvent::Paused);
    shim.resume().await.unwrap();
    assert_eq!(events.next().await.unwrap().unwrap(), ShimEvent::Resumed);
    let stats = shim.stats().await.unwrap();
    assert!(stats.pids_current.unwrap_or(0) >= 1, "{stats:?}");
    assert!(stats.memory_usage.unwrap_or(0) > 0, "{stats:?}");
    // A running container cannot be deleted.
    assert!(shim.delete().await.unwrap_err().is_conflict());
    shim.kill(&ProcessRef::Init, Signal::KILL, false).await.unwrap();
    let exit = shim.wait(&ProcessRef::Init).await.unwrap();
    assert_eq!(exit.code, 137);
    assert_eq!(exit.signal(), Some(9));
    match events.next().await.unwrap().unwrap() {
        ShimEvent::Exited { process: ProcessRef::Init, status } => assert_eq!(status.code, 137),
        e => panic!("unexpected event {e:?}"),
    }
    assert_eq!(shim.delete().await.unwrap().map(|e| e.code), Some(137));
    let sock = c.state_dir().join(engine_shim::SOCKET_FILE);
    assert!(eventually(Duration::from_secs(5), || !sock.exists()).await, "socket removed after delete");
    let spid = c.shim_pid.get().unwrap();
    assert!(eventually(Duration::from_secs(5), || !alive(spid)).await, "shim exits after delete");
}

async fn exec_with_its_own_exit_code(rt: Rt) {
    let c = TestContainer::new(rt, "exec", &["sleep", "1000"], false);
    let shim = launcher().launch(c.request()).await.unwrap();
    c.shim_pid.set(Some(shim.shim_pid().await.unwrap()));
    shim.start().await.unwrap();
    let mut process = oci_spec::runtime::Process::default();
    process.set_args(Some(vec!["sh".into(), "-c".into(), "echo from-exec; echo exec-err >&2; exit 3".into()]));
    process.set_env(Some(vec!["PATH=/bin".into()]));
    process.set_terminal(Some(false));
    let pid = shim
        .exec(ExecRequest::default().exec_id("e1".into()).process(process.clone()).open_stdin(false))
        .await
        .unwrap();
    assert!(pid > 0);
    let a = shim
        .attach(&ProcessRef::Exec("e1".into()), AttachOptions::default().stdin(false).stdout(true).stderr(true))
        .await
        .unwrap();
    let out = collect_output(a.output).await;
    assert!(out.contains("from-exec\n") && out.contains("exec-err\n"), "exec output: {out:?}");
    let e = shim.wait(&ProcessRef::Exec("e1".into())).await.unwrap();
    assert_eq!(e.code, 3);
    // The same id again is refused; an unknown one is not found.
    let dup = shim.exec(ExecRequest::default().exec_id("e1".into()).process(process.clone()).open_stdin(false)).await;
    assert!(dup.unwrap_err().is_conflict());
    assert!(shim.wait(&ProcessRef::Exec("nope".into())).await.unwrap_err().is_not_found());
    // An exec killed by a signal; the init is untouched.
    process.set_args(Some(vec!["sleep".into(), "1000".into()]));
    shim.exec(ExecRequest::default().exec_id("e2".into()).process(process).open_stdin(false)).await.unwrap();
    shim.kill(&ProcessRef::Exec("e2".into()), Signal::TERM, false).await.unwrap();
    assert_eq!(shim.wait(&ProcessRef::Exec("e2".into())).await.unwrap().code, 143);
    assert_eq!(shim.state(&ProcessRef::Init).await.unwrap().status, ContainerStatus::Running);
    // Exec output is not in the container's log.
    assert!(c.log_entries().iter().all(|e| !String::from_utf8_lossy(&e.line).contains("exec")));
    shim.kill(&ProcessRef::Init, Signal::KILL, true).await.unwrap();
    assert_eq!(shim.wait(&ProcessRef::Init).await.unwrap().code, 137);
    shim.delete().await.unwrap();
}

async fn attach_with_stdin(rt: Rt) {
    let c = TestContainer::new(rt, "cat", &["cat"], false);
    let mut req = c.request();
    req.open_stdin = true;
    let shim = launcher().launch(req).await.unwrap();
    c.shim_pid.set(Some(shim.shim_pid().await.unwrap()));
    let both = AttachOptions::default().stdin(true).stdout(true).stderr(true);
    let mut a = shim.attach(&ProcessRef::Init, both).await.unwrap();
    let mut watcher =
        shim.attach(&ProcessRef::Init, AttachOptions::default().stdin(false).stdout(true).stderr(false)).await.unwrap();
    shim.start().await.unwrap();
    // Resizing a process without a terminal is refused.
    let err = shim.resize(&ProcessRef::Init, ConsoleSize { height: 10, width: 10 }).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    let mut stdin = a.stdin.take().unwrap();
    stdin.write_all(b"hello shim\n").await.unwrap();
    stdin.flush().await.unwrap();
    let got = read_until(&mut a.output, "hello shim\n").await;
    assert_eq!(got, "hello shim\n");
    // The second client sees the same output.
    assert_eq!(read_until(&mut watcher.output, "hello shim\n").await, "hello shim\n");
    // A client that detaches does not close stdin.
    drop(watcher);
    stdin.write_all(b"second\n").await.unwrap();
    assert_eq!(read_until(&mut a.output, "second\n").await, "second\n");
    // Closing stdin ends cat.
    stdin.shutdown().await.unwrap();
    let exit = shim.wait(&ProcessRef::Init).await.unwrap();
    assert_eq!(exit.code, 0);
    assert_eq!(collect_output(a.output).await, "", "output ends after exit");
    let lines: Vec<_> = c.log_entries().into_iter().map(|e| e.line).collect();
    assert_eq!(lines, vec!["hello shim\n", "second\n"]);
    shim.delete().await.unwrap();
}

async fn tty_mode(rt: Rt) {
    let c = TestContainer::new(rt, "tty", &["sh", "-c", "stty size; read line; echo got:$line; exit 4"], true);
    let mut req = c.request();
    req.open_stdin = true;
    let shim = launcher().launch(req).await.unwrap();
    c.shim_pid.set(Some(shim.shim_pid().await.unwrap()));
    shim.resize(&ProcessRef::Init, ConsoleSize { height: 33, width: 101 }).await.unwrap();
    let mut a =
        shim.attach(&ProcessRef::Init, AttachOptions::default().stdin(true).stdout(true).stderr(true)).await.unwrap();
    shim.start().await.unwrap();
    let first = read_until(&mut a.output, "33 101").await;
    assert!(first.contains("33 101"), "stty size on the pty: {first:?}");
    let mut stdin = a.stdin.take().unwrap();
    stdin.write_all(b"abc\n").await.unwrap();
    let rest = read_until(&mut a.output, "got:abc").await;
    assert!(rest.contains("got:abc"), "{rest:?}");
    assert_eq!(shim.wait(&ProcessRef::Init).await.unwrap().code, 4);
    shim.delete().await.unwrap();
    let log: String = c.log_entries().iter().map(|e| String::from_utf8_lossy(&e.line).into_owned()).collect();
    assert!(log.contains("33 101") && log.contains("got:abc"), "tty output logged: {log:?}");
    assert!(c.log_entries().iter().all(|e| e.stream == StdStream::Stdout));
}

async fn launcher_killed_while_printing(rt: Rt) {
    const N: usize = 200;
    let script = format!("i=0; while [ $i -lt {N} ]; do echo line $i; i=$((i+1)); usleep 10000; done; exit 5");
    let c = TestContainer::new(rt, "orphan", &["sh", "-c", &script], false);
    // The launcher is another process (this test binary, re-invoked).
    let req = serde_json::to_string(&c.request()).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "helper_launcher_process", "--nocapture", "--test-threads=1"])
        .env("ENGINE_SHIM_TEST_LAUNCH", req)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for "started", then SIGKILL the launcher while the container prints.
    let stdout = child.stdout.take().unwrap();
    let line = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || {
            let mut out = std::io::BufReader::new(stdout);
            let mut line = String::new();
            loop {
                line.clear();
                let n = std::io::BufRead::read_line(&mut out, &mut line).unwrap();
                assert!(n > 0, "launcher process ended before starting the container");
                if line.contains("started ") {
                    return line;
                }
            }
        }),
    )
    .await
    .expect("launcher process reports the start")
    .unwrap();
    // libtest prints "test helper_launcher_process ... " before it.
    let shim_pid: i32 = line.trim().rsplit(' ').next().unwrap().parse().unwrap();
    c.shim_pid.set(Some(shim_pid));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(alive(shim_pid), "the shim survives its launcher");
    assert_ne!(ppid(shim_pid), Some(std::process::id() as i32));
    // Mid-run: a new launcher reconnects and sees it running.
    let l = launcher();
    let shim = l.connect(&c.id, &c.state_dir()).await.unwrap();
    assert_eq!(shim.shim_pid().await.unwrap(), shim_pid);
    assert_eq!(shim.state(&ProcessRef::Init).await.unwrap().status, ContainerStatus::Running);
    drop(shim);
    // The container exits while nobody is connected.
    let st = c.state_dir();
    assert!(eventually(Duration::from_secs(20), || engine_shim::read_exit(&st, None).unwrap().is_some()).await);
    assert_eq!(l.recorded_exit(&c.state_dir()).await.unwrap().map(|e| e.code), Some(5));
    let shim = l.connect(&c.id, &c.state_dir()).await.unwrap();
    let state = shim.state(&ProcessRef::Init).await.unwrap();
    assert_eq!((state.status, state.exit.map(|e| e.code)), (ContainerStatus::Stopped, Some(5)));
    assert_eq!(shim.wait(&ProcessRef::Init).await.unwrap().code, 5);
    // Every line is in the log, in order, with non-decreasing times.
    let entries = c.log_entries();
    let lines: Vec<String> = entries.iter().map(|e| String::from_utf8_lossy(&e.line).into_owned()).collect();
    let want: Vec<String> = (0..N).map(|i| format!("line {i}\n")).collect();
    assert_eq!(lines, want);
    assert!(entries.windows(2).all(|w| w[0].time <= w[1].time));
    shim.delete().await.unwrap();
}

/// Not a test on its own: the launcher process of
/// `launcher_killed_while_printing` (does nothing unless asked).
#[test]
fn helper_launcher_process() {
    let Ok(req) = std::env::var("ENGINE_SHIM_TEST_LAUNCH") else { return };
    let req: engine_core::LaunchRequest = serde_json::from_str(&req).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let shim = launcher().launch(req).await.unwrap();
        shim.start().await.unwrap();
        println!("started {}", shim.shim_pid().await.unwrap());
        tokio::time::sleep(Duration::from_secs(600)).await;
    });
}

async fn owner_binding(rt: Rt) {
    let c = TestContainer::new(rt, "owner", &["sleep", "1000"], false);
    let mut owner = std::process::Command::new("sleep").arg("1000").spawn().unwrap();
    let mut req = c.request();
    req.owner_pid = Some(owner.id() as i32);
    let shim = launcher().launch(req).await.unwrap();
    let shim_pid = shim.shim_pid().await.unwrap();
    c.shim_pid.set(Some(shim_pid));
    let init = shim.start().await.unwrap();
    let cgroups = std::fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap();
    let cg_dirs: Vec<std::path::PathBuf> = cgroups
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
            let ctrl = if ctrl.is_empty() { "unified" } else { ctrl.split(',').next()? };
            let ctrl = ctrl.strip_prefix("name=").unwrap_or(ctrl);
            (path.contains(c.id.as_str()))
                .then(|| std::path::Path::new("/sys/fs/cgroup").join(ctrl).join(path.trim_start_matches('/')))
        })
        .filter(|p| p.exists())
        .collect();
    assert!(!cg_dirs.is_empty(), "container cgroup found in {cgroups}");
    assert!(alive(init));
    owner.kill().unwrap();
    owner.wait().unwrap();
    assert!(eventually(Duration::from_secs(15), || !alive(shim_pid)).await, "shim exits after its owner");
    assert!(!alive(init), "container init gone");
    assert!(!c.runtime_knows(), "runtime state removed");
    assert!(!c.state_dir().exists(), "state dir removed");
    for d in &cg_dirs {
        assert!(!d.exists(), "cgroup {} removed", d.display());
    }
    match shim.state(&ProcessRef::Init).await {
        Err(Error::Unavailable { .. }) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

async fn shim_killed_gives_honest_state(rt: Rt) {
    let c = TestContainer::new(rt, "shimkill", &["sleep", "1000"], false);
    let l = launcher();
    let shim = l.launch(c.request()).await.unwrap();
    let shim_pid = shim.shim_pid().await.unwrap();
    c.shim_pid.set(Some(shim_pid));
    shim.start().await.unwrap();
    unsafe { libc::kill(shim_pid, libc::SIGKILL) };
    assert!(eventually(Duration::from_secs(5), || !alive(shim_pid)).await);
    let t0 = std::time::Instant::now();
    match shim.state(&ProcessRef::Init).await {
        Err(Error::Unavailable { reason, .. }) => assert!(!reason.is_empty()),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    match l.connect(&c.id, &c.state_dir()).await {
        Err(Error::Unavailable { .. }) => {}
        Err(e) => panic!("expected Unavailable, got {e}"),
        Ok(_) => panic!("connected to a dead shim"),
    }
    assert!(t0.elapsed() < Duration::from_secs(5), "no hang: {:?}", t0.elapsed());
    assert_eq!(l.recorded_exit(&c.state_dir()).await.unwrap(), None, "no exit was recorded");

    // A shim killed after recording an exit: the record tells.
    let c2 = TestContainer::new(rt, "shimkill2", &["sh", "-c", "exit 9"], false);
    let shim2 = l.launch(c2.request()).await.unwrap();
    let pid2 = shim2.shim_pid().await.unwrap();
    c2.shim_pid.set(Some(pid2));
    shim2.start().await.unwrap();
    assert_eq!(shim2.wait(&ProcessRef::Init).await.unwrap().code, 9);
    unsafe { libc::kill(pid2, libc::SIGKILL) };
    assert!(eventually(Duration::from_secs(5), || !alive(pid2)).await);
    assert!(matches!(shim2.wait(&ProcessRef::Init).await, Err(Error::Unavailable { .. })));
    assert_eq!(l.recorded_exit(&c2.state_dir()).await.unwrap().map(|e| e.code), Some(9));
}

async fn create_failure_leaves_nothing(rt: Rt) {
    let c = TestContainer::new(rt, "bad", &["true"], false);
    // A rootfs that does not exist: the runtime refuses it.
    let cfg = c.bundle().join("config.json");
    let mut spec = oci_spec::runtime::Spec::load(&cfg).unwrap();
    let mut root = spec.root().clone().unwrap();
    root.set_path("no-such-rootfs".into());
    spec.set_root(Some(root));
    spec.save(&cfg).unwrap();
    let err = match launcher().launch(c.request()).await {
        Err(e) => e,
        Ok(_) => panic!("launch with a missing rootfs succeeded"),
    };
    match &err {
        Error::Runtime { runtime, message } => {
            assert_eq!(runtime, &c.runtime.name);
            assert!(
                !message.is_empty() && message.contains("rootfs") || message.contains("no such file"),
                "runtime message: {message}"
            );
        }
        e => panic!("expected the runtime's error, got {e:?}"),
    }
    assert!(!c.state_dir().exists(), "no state dir left");
    assert!(!c.runtime_knows(), "no runtime state left");
    let cgroup_left = std::fs::read_dir("/sys/fs/cgroup/memory")
        .map(|rd| rd.flatten().any(|e| e.file_name().to_string_lossy().contains(c.id.as_str())))
        .unwrap_or(false);
    assert!(!cgroup_left, "no cgroup left");
    // No process holds anything under the test's directory (log file, sockets).
    let holders = holders_of(c.dir.path());
    assert!(holders.is_empty(), "processes still hold files of the failed container: {holders:?}");
    // An id the runtime already has (with a bundle the runtime would refuse
    // anyway): refused, and the existing container is untouched.
    let first = TestContainer::new(rt, "dup", &["sleep", "1000"], false);
    let shim = launcher().launch(first.request()).await.unwrap();
    first.shim_pid.set(Some(shim.shim_pid().await.unwrap()));
    shim.start().await.unwrap();
    let mut dup = c.request();
    dup.id = first.id.clone();
    dup.runtime = first.runtime.clone();
    let err = launcher().launch(dup).await.err().expect("a duplicate id is refused");
    assert!(err.is_conflict(), "{err}");
    assert!(!c.state_dir().exists());
    assert_eq!(shim.state(&ProcessRef::Init).await.unwrap().status, ContainerStatus::Running);
    assert!(first.runtime_knows());
    shim.kill(&ProcessRef::Init, Signal::KILL, false).await.unwrap();
    shim.wait(&ProcessRef::Init).await.unwrap();
    shim.delete().await.unwrap();
    // Bad input in the request itself.
    let mut req = c.request();
    req.owner_pid = Some(i32::MAX - 7);
    let err = launcher().launch(req).await.err().expect("dead owner refused");
    assert!(err.is_invalid_input(), "{err}");
    assert!(!c.state_dir().exists());
}

/// Processes with an open file under `dir`.
fn holders_of(dir: &std::path::Path) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(fds) = std::fs::read_dir(e.path().join("fd")) else { continue };
        if fds.flatten().any(|f| std::fs::read_link(f.path()).map(|t| t.starts_with(dir)).unwrap_or(false)) {
            out.push(pid);
        }
    }
    out
}

async fn one_shim_per_container_and_no_runtime_process(rt: Rt) {
    let cs: Vec<TestContainer> =
        (0..3).map(|i| TestContainer::new(rt, &format!("ps{i}"), &["sleep", "1000"], false)).collect();
    let mut shims = Vec::new();
    for c in &cs {
        let shim = launcher().launch(c.request()).await.unwrap();
        let pid = shim.shim_pid().await.unwrap();
        c.shim_pid.set(Some(pid));
        let init = shim.start().await.unwrap();
        shims.push((shim, pid, init));
    }
    let me = std::process::id() as i32;
    let mut seen = std::collections::HashSet::new();
    for (_, spid, init) in &shims {
        assert!(seen.insert(*spid), "one shim per container");
        assert!(is_shim(*spid));
        assert_ne!(ppid(*spid), Some(me), "the shim is not the launcher's child");
        assert_eq!(ppid(*init), Some(*spid), "the shim parents the container's init");
        assert_eq!(children(*spid), vec![*init], "the shim's only child is the init (no runtime process)");
    }
    for (shim, _, _) in &shims {
        shim.kill(&ProcessRef::Init, Signal::KILL, true).await.unwrap();
        shim.wait(&ProcessRef::Init).await.unwrap();
        shim.delete().await.unwrap();
    }
}

async fn oom_kill_is_reported(rt: Rt) {
    let c = TestContainer::new(rt, "oom", &["sh", "-c", "x=0123456789abcdef; while true; do x=$x$x; done"], false);
    let cfg = c.bundle().join("config.json");
    let mut spec = oci_spec::runtime::Spec::load(&cfg).unwrap();
    let mut linux = spec.linux().clone().unwrap();
    let mem = oci_spec::runtime::LinuxMemoryBuilder::default().limit(32 * 1024 * 1024i64).build().unwrap();
    let res = oci_spec::runtime::LinuxResourcesBuilder::default().memory(mem).build().unwrap();
    linux.set_resources(Some(res));
    spec.set_linux(Some(linux));
    spec.save(&cfg).unwrap();
    let shim = launcher().launch(c.request()).await.unwrap();
    c.shim_pid.set(Some(shim.shim_pid().await.unwrap()));
    let mut events = shim.events().await.unwrap();
    shim.start().await.unwrap();
    let exit = shim.wait(&ProcessRef::Init).await.unwrap();
    assert_eq!(exit.code, 137, "killed by the OOM killer");
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(e)) = events.next().await {
            let done = matches!(e, ShimEvent::Exited { .. });
            seen.push(e);
            if done {
                break;
            }
        }
    })
    .await;
    assert!(seen.contains(&ShimEvent::Oom), "events: {seen:?}");
    shim.delete().await.unwrap();
}

async fn exec_with_a_terminal(rt: Rt) {
    let c = TestContainer::new(rt, "exectty", &["sleep", "1000"], false);
    let shim = launcher().launch(c.request()).await.unwrap();
    c.shim_pid.set(Some(shim.shim_pid().await.unwrap()));
    shim.start().await.unwrap();
    let mut process = oci_spec::runtime::Process::default();
    process.set_args(Some(vec!["sh".into(), "-c".into(), "tty; read x; echo x=$x; exit 2".into()]));
    process.set_env(Some(vec!["PATH=/bin".into(), "TERM=xterm".into()]));
    process.set_terminal(Some(true));
    let p = ProcessRef::Exec("t1".into());
    shim.exec(ExecRequest::default().exec_id("t1".into()).process(process).open_stdin(true)).await.unwrap();
    shim.resize(&p, ConsoleSize { height: 20, width: 70 }).await.unwrap();
    let mut a = shim.attach(&p, AttachOptions::default().stdin(true).stdout(true).stderr(true)).await.unwrap();
    let first = read_until(&mut a.output, "/dev/pts/").await;
    assert!(first.contains("/dev/pts/"), "the exec has a terminal: {first:?}");
    a.stdin.as_mut().unwrap().write_all(b"yes\n").await.unwrap();
    let rest = read_until(&mut a.output, "x=yes").await;
    assert!(rest.contains("x=yes"), "{rest:?}");
    assert_eq!(shim.wait(&p).await.unwrap().code, 2);
    shim.kill(&ProcessRef::Init, Signal::KILL, false).await.unwrap();
    shim.wait(&ProcessRef::Init).await.unwrap();
    shim.delete().await.unwrap();
}

async fn log_rotation_by_size(rt: Rt) {
    let c = TestContainer::new(
        rt,
        "rotate",
        &["sh", "-c", "i=0; while [ $i -lt 300 ]; do echo rotating-line-$i; i=$((i+1)); done"],
        false,
    );
    let mut req = c.request();
    req.log = Some(
        engine_core::LogConfig::default()
            .path(c.log_path())
            .max_size(Some(4096))
            .max_files(2)
            .format(Default::default())
            .fifo(None),
    );
    let shim = launcher().launch(req).await.unwrap();
    c.shim_pid.set(Some(shim.shim_pid().await.unwrap()));
    shim.start().await.unwrap();
    assert_eq!(shim.wait(&ProcessRef::Init).await.unwrap().code, 0);
    let rotated = |n: u32| std::path::PathBuf::from(format!("{}.{n}", c.log_path().display()));
    for p in [c.log_path(), rotated(1), rotated(2)] {
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0 && len <= 4096, "{} is {len} bytes", p.display());
    }
    assert!(!rotated(3).exists(), "only max_files rotated files are kept");
    // The newest lines are in the live file, in order, ending with the last one.
    let live: Vec<String> = c.log_entries().iter().map(|e| String::from_utf8_lossy(&e.line).into_owned()).collect();
    assert_eq!(live.last().map(String::as_str), Some("rotating-line-299\n"));
    let older = std::fs::read_to_string(rotated(1)).unwrap();
    let last_older = engine_core::LogEntry::from_json_line(older.lines().last().unwrap().as_bytes()).unwrap();
    let first_live: usize = live[0].trim().rsplit('-').next().unwrap().parse().unwrap();
    assert_eq!(last_older.line, format!("rotating-line-{}\n", first_live - 1), "no line lost at the rotation");
    shim.delete().await.unwrap();
}

async fn delete_a_created_container(rt: Rt) {
    let c = TestContainer::new(rt, "created", &["sleep", "1000"], false);
    let shim = launcher().launch(c.request()).await.unwrap();
    let spid = shim.shim_pid().await.unwrap();
    c.shim_pid.set(Some(spid));
    let init = shim.state(&ProcessRef::Init).await.unwrap();
    assert_eq!(init.status, ContainerStatus::Created);
    assert!(alive(init.pid), "the created init waits for start");
    // Shutdown is refused while the container exists.
    assert!(shim.shutdown().await.unwrap_err().is_conflict());
    shim.delete().await.unwrap();
    assert!(!c.runtime_knows());
    assert!(eventually(Duration::from_secs(5), || !alive(spid) && !alive(init.pid)).await);
    assert!(!c.state_dir().join(engine_shim::SOCKET_FILE).exists());
}

async fn launcher_gone_before_the_reply(rt: Rt) {
    let c = TestContainer::new(rt, "noreply", &["sh", "-c", "echo still-here; exit 3"], false);
    // Play a launcher that dies right after handing over the request: its end
    // of the reply pipe is closed before the shim answers.
    let mut child = std::process::Command::new(shim_binary())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, serde_json::to_string(&c.request()).unwrap().as_bytes()).unwrap();
    drop(stdin);
    drop(child.stdout.take());
    child.wait().unwrap();
    // A new launcher finds the shim through the state dir and carries on.
    let st = c.state_dir();
    assert!(eventually(Duration::from_secs(20), || engine_shim::read_address(&st).ok().flatten().is_some()).await);
    let shim = launcher().connect(&c.id, &c.state_dir()).await.unwrap();
    c.shim_pid.set(Some(shim.shim_pid().await.unwrap()));
    assert_eq!(shim.state(&ProcessRef::Init).await.unwrap().status, ContainerStatus::Created);
    shim.start().await.unwrap();
    assert_eq!(shim.wait(&ProcessRef::Init).await.unwrap().code, 3);
    assert_eq!(c.log_entries().first().map(|e| e.line.clone()), Some("still-here\n".into()));
    shim.delete().await.unwrap();
}

async fn a_stalled_attach_client_never_blocks_output(rt: Rt) {
    // ~3.5 MB: more than the HTTP/2 windows and the fan-out buffer hold.
    const N: usize = 40000;
    let script = format!(
        "i=0; while [ $i -lt {N} ]; do echo line-$i-0123456789012345678901234567890123456789012345678901234567890123456789; i=$((i+1)); done"
    );
    let c = TestContainer::new(rt, "stall", &["sh", "-c", &script], false);
    let shim = launcher().launch(c.request()).await.unwrap();
    c.shim_pid.set(Some(shim.shim_pid().await.unwrap()));
    // Attached, but never reads its output.
    let stalled =
        shim.attach(&ProcessRef::Init, AttachOptions::default().stdin(false).stdout(true).stderr(true)).await.unwrap();
    shim.start().await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(30), shim.wait(&ProcessRef::Init)).await;
    assert_eq!(exit.expect("the container is not blocked by a stalled client").unwrap().code, 0);
    let entries = c.log_entries();
    assert_eq!(entries.len(), N, "every line logged");
    assert!(String::from_utf8_lossy(&entries[N - 1].line).starts_with(&format!("line-{}-", N - 1)));
    drop(stalled);
    shim.delete().await.unwrap();
}

/// The shim holds its attach and events channels only while a client
/// listens: clients that come after every earlier one left still get the
/// live output and the events.
async fn clients_that_come_back_after_all_left(rt: Rt) {
    let script = "i=0; while true; do echo tick-$i; i=$((i+1)); usleep 20000; done";
    let c = TestContainer::new(rt, "comeback", &["sh", "-c", script], false);
    let shim = launcher().launch(c.request()).await.unwrap();
    c.shim_pid.set(Some(shim.shim_pid().await.unwrap()));
    shim.start().await.unwrap();
    // Lines in the log so far (counted, not parsed: the log is being written).
    let logged = || std::fs::read(c.log_path()).map(|d| d.iter().filter(|b| **b == b'\n').count()).unwrap_or(0);
    let out = AttachOptions::default().stdin(false).stdout(true).stderr(true);
    for round in 0..3 {
        let mut a = shim.attach(&ProcessRef::Init, out).await.unwrap();
        let got = read_until(&mut a.output, "\n").await;
        assert!(got.contains("tick-"), "attach {round} gets live output: {got:?}");
        drop(a);
        // Output goes on with nobody attached (and all of it is logged).
        let before = logged();
        assert!(eventually(Duration::from_secs(10), || logged() >= before + 5).await);
    }
    for round in 0..2 {
        let mut events = shim.events().await.unwrap();
        shim.pause().await.unwrap();
        let ev = tokio::time::timeout(Duration::from_secs(10), events.next()).await;
        assert!(matches!(ev, Ok(Some(Ok(ShimEvent::Paused)))), "events client {round}: {ev:?}");
        drop(events);
        // The client has left: no one may be listening to this one.
        shim.resume().await.unwrap();
    }
    shim.kill(&ProcessRef::Init, Signal::KILL, true).await.unwrap();
    assert_eq!(shim.wait(&ProcessRef::Init).await.unwrap().code, 137);
    let entries = c.log_entries();
    assert!(entries.len() >= 15, "{} lines logged", entries.len());
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(String::from_utf8_lossy(&e.line), format!("tick-{i}\n"), "every line logged, in order");
    }
    shim.delete().await.unwrap();
}

/// Resident pages of the shim binary's own code in process `pid`, KiB (the
/// `Rss` of its executable mappings of that file, from `/proc/<pid>/smaps`).
fn resident_code_kib(pid: i32) -> u64 {
    let exe = std::fs::canonicalize(shim_binary()).unwrap();
    let exe = exe.to_string_lossy();
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let (mut ours, mut kib) = (false, 0);
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            let perms = f.next().unwrap_or("");
            ours = perms.contains('x') && line.trim_end().ends_with(exe.as_ref());
        } else if ours && first == "Rss:" {
            kib += f.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    kib
}

/// With a client connected and a `Wait` in flight (as the lifecycle manager
/// keeps every running container's shim), a quiet shim still gives back its
/// code pages, and serves the next request and the exit afterwards.
async fn memory_given_back_while_a_client_waits(rt: Rt) {
    let c = TestContainer::new(rt, "trim", &["sleep", "600"], false);
    let l = launcher();
    let shim: std::sync::Arc<dyn engine_core::Shim> = l.launch(c.request()).await.unwrap().into();
    let pid = shim.shim_pid().await.unwrap();
    c.shim_pid.set(Some(pid));
    shim.start().await.unwrap();
    let waiter = {
        let s = shim.clone();
        tokio::spawn(async move { s.wait(&ProcessRef::Init).await })
    };
    // Busy: requests every 20 ms (the shim trims only after 200 ms of quiet).
    let mut busy = 0;
    for _ in 0..20 {
        shim.state(&ProcessRef::Init).await.unwrap();
        busy = busy.max(resident_code_kib(pid));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Quiet, the connection and the `Wait` still open: most of it goes.
    assert!(
        eventually(Duration::from_secs(20), || resident_code_kib(pid) < busy / 2).await,
        "the shim kept {} of {busy} KiB of its code resident while idle with a client connected",
        resident_code_kib(pid)
    );
    assert_eq!(shim.state(&ProcessRef::Init).await.unwrap().status, ContainerStatus::Running);
    shim.kill(&ProcessRef::Init, Signal::KILL, false).await.unwrap();
    assert_eq!(waiter.await.unwrap().unwrap().code, 137);
    shim.delete().await.unwrap();
}

/// Connections accepted on `socket` (server side), from /proc/net/unix:
/// entries bound to that path and connected (state 03).
fn connections_to(socket: &std::path::Path) -> usize {
    let want = socket.to_str().unwrap();
    std::fs::read_to_string("/proc/net/unix")
        .unwrap()
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 8 && f[7] == want && f[5] == "03"
        })
        .count()
}

async fn an_idle_wait_holds_no_connection(rt: Rt) {
    let l = launcher();
    let c = TestContainer::new(rt, "idlewait", &["sleep", "600"], false);
    let shim: std::sync::Arc<dyn engine_core::Shim> = l.launch(c.request()).await.unwrap().into();
    c.shim_pid.set(Some(shim.shim_pid().await.unwrap()));
    let sock = c.state_dir().join("shim.sock");
    shim.start().await.unwrap();
    assert_eq!(connections_to(&sock), 1, "the launch's connection is kept until a wait goes idle");
    let waiter = {
        let s = shim.clone();
        tokio::spawn(async move { s.wait(&ProcessRef::Init).await })
    };
    // The waiter lets its gRPC connection go and keeps one bare socket (its
    // exit watch): an observer sees its own gRPC connection alone, beside one
    // more socket.
    let observer = engine_shim::Client::connect(&c.id, &c.state_dir()).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut served = observer.connections().await.unwrap();
    while served != 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        served = observer.connections().await.unwrap();
    }
    assert_eq!(served, 1, "gRPC connections the shim serves while a client waits, the observer's included");
    assert_eq!(connections_to(&sock), 2, "the observer's connection and the waiter's exit watch");
    drop(observer);
    // A call reconnects, and its connection goes when the call is done.
    assert_eq!(shim.state(&ProcessRef::Init).await.unwrap().status, ContainerStatus::Running);
    assert!(eventually(Duration::from_secs(10), || connections_to(&sock) == 1).await, "the call's connection closed");
    assert!(!waiter.is_finished(), "the wait goes on while the container runs");
    shim.kill(&ProcessRef::Init, Signal::KILL, false).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), waiter).await.expect("wait answers").unwrap().unwrap();
    assert_eq!(exit.code, 137, "the exit the shim recorded");
    shim.delete().await.unwrap();

    // A shim killed while a client waits without a connection: the wait
    // hears of it at once.
    let c2 = TestContainer::new(rt, "idlewait2", &["sleep", "600"], false);
    let shim2: std::sync::Arc<dyn engine_core::Shim> = l.launch(c2.request()).await.unwrap().into();
    let pid2 = shim2.shim_pid().await.unwrap();
    c2.shim_pid.set(Some(pid2));
    shim2.start().await.unwrap();
    let waiter = {
        let s = shim2.clone();
        tokio::spawn(async move { s.wait(&ProcessRef::Init).await })
    };
    let sock2 = c2.state_dir().join("shim.sock");
    assert!(eventually(Duration::from_secs(10), || connections_to(&sock2) == 1).await);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid2), nix::sys::signal::Signal::SIGKILL).unwrap();
    match tokio::time::timeout(Duration::from_secs(10), waiter).await.expect("wait answers").unwrap() {
        Err(Error::Unavailable { .. }) => {}
        other => panic!("expected Unavailable from a wait on a killed shim, got {other:?}"),
    }
}

macro_rules! for_each_runtime {
    ($($name:ident),* $(,)?) => {
        mod runc {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    tokio::time::timeout(super::T, super::$name(super::Rt::Runc)).await.expect("test timed out");
                }
            )*
        }
        mod engine_runc {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    tokio::time::timeout(super::T, super::$name(super::Rt::EngineRunc)).await.expect("test timed out");
                }
            )*
        }
    };
}

for_each_runtime!(
    output_logged_with_timestamps,
    exit_code_for_a_late_waiter,
    memory_given_back_while_a_client_waits,
    kill_reports_128_plus_signal_and_events,
    exec_with_its_own_exit_code,
    attach_with_stdin,
    tty_mode,
    launcher_killed_while_printing,
    owner_binding,
    shim_killed_gives_honest_state,
    create_failure_leaves_nothing,
    one_shim_per_container_and_no_runtime_process,
    oom_kill_is_reported,
    exec_with_a_terminal,
    log_rotation_by_size,
    delete_a_created_container,
    launcher_gone_before_the_reply,
    a_stalled_attach_client_never_blocks_output,
    clients_that_come_back_after_all_left,
    an_idle_wait_holds_no_connection,
);

/// Processes whose command line is exactly `args`.
fn pids_with_cmdline(args: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = args.iter().flat_map(|a| a.bytes().chain([0])).collect();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        // A shim forked from the server blanks its arguments: trailing NULs.
        let Ok(mut cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        while cmd.ends_with(&[0, 0]) {
            cmd.pop();
        }
        if cmd == want && alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// Physical frames of the anonymous (written) pages `pid` has in its
/// read-only mappings of `exe`: the data the dynamic loader relocated.
fn relocated_frames(pid: i32, exe: &str) -> std::collections::HashSet<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut pagemap = std::fs::File::open(format!("/proc/{pid}/pagemap")).unwrap();
    let mut frames = std::collections::HashSet::new();
    for line in maps.lines().filter(|l| l.contains(" r--p ") && l.trim_end().ends_with(exe)) {
        let (a, b) = line.split_whitespace().next().unwrap().split_once('-').unwrap();
        let (a, b) = (u64::from_str_radix(a, 16).unwrap(), u64::from_str_radix(b, 16).unwrap());
        for page in (a..b).step_by(4096) {
            let mut e = [0u8; 8];
            pagemap.seek(SeekFrom::Start(page / 4096 * 8)).unwrap();
            pagemap.read_exact(&mut e).unwrap();
            let e = u64::from_le_bytes(e);
            // Present, and not a page of the file (bit 61): a written copy.
            if e >> 63 == 1 && (e >> 61) & 1 == 0 {
                frames.insert(e & ((1 << 55) - 1));
            }
        }
    }
    frames
}

/// Shims come from one fork server per launcher: detached, showing no
/// server argument, sharing the pages the loader wrote; a killed server is
/// replaced at the next launch; the server ends with its launcher and the
/// shims carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shims_are_forked_from_one_server() {
    // The launcher runs the shim through a link of its own, so this test's
    // server is told apart from those of the tests running alongside.
    let links = tempfile::tempdir().unwrap();
    let bin = links.path().join("engine-shim");
    std::os::unix::fs::symlink(shim_binary(), &bin).unwrap();
    let bin_s = bin.to_str().unwrap().to_string();
    let l = Launcher::new(&bin);
    let mut cs: Vec<TestContainer> =
        (0..3).map(|i| TestContainer::new(Rt::Runc, &format!("fork{i}"), &["sleep", "600"], false)).collect();
    // The runtime the shim runs sees the launcher's environment, nothing the shim set for itself.
    let wrapper = links.path().join("runc-wrapper");
    let env_file = links.path().join("runtime-env");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nenv > {}\nexec {} \"$@\"\n", env_file.display(), which("runc").unwrap().display()),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    cs[0].runtime = cs[0].runtime.clone().path(wrapper);
    let mut shims = Vec::new();
    for c in &cs[..2] {
        let shim = l.launch(c.request()).await.unwrap();
        c.shim_pid.set(Some(shim.shim_pid().await.unwrap()));
        shim.start().await.unwrap();
        shims.push(shim);
    }
    let servers = pids_with_cmdline(&[&bin_s, "--fork-server"]);
    assert_eq!(servers.len(), 1, "one fork server for two launches: {servers:?}");
    let env = std::fs::read_to_string(&env_file).unwrap();
    assert!(
        env.contains("PATH=") && !env.contains("GLIBC_TUNABLES") && !env.contains("ENGINE_SHIM_MALLOC_TUNED"),
        "{env}"
    );
    let server = servers[0];
    assert_eq!(ppid(server), Some(std::process::id() as i32));
    let (a, b) = (cs[0].shim_pid.get().unwrap(), cs[1].shim_pid.get().unwrap());
    for pid in [a, b] {
        assert_ne!(ppid(pid), Some(server), "a shim is detached from the server");
        assert!(pids_with_cmdline(&[&bin_s]).contains(&pid), "shim {pid} shows only the program name");
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        assert_eq!(comm.trim(), "engine-shim", "the process name ps and pgrep show");
    }
    let exe = std::fs::canonicalize(shim_binary()).unwrap();
    let exe = exe.to_str().unwrap();
    let shared = relocated_frames(a, exe).intersection(&relocated_frames(b, exe)).count();
    assert!(shared >= 4, "the two shims share {shared} pages of the binary's relocated data");

    // A killed server is replaced.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(server), nix::sys::signal::Signal::SIGKILL).unwrap();
    assert!(eventually(Duration::from_secs(10), || !alive(server)).await);
    let shim = l.launch(cs[2].request()).await.unwrap();
    cs[2].shim_pid.set(Some(shim.shim_pid().await.unwrap()));
    shim.start().await.unwrap();
    shims.push(shim);
    let servers = pids_with_cmdline(&[&bin_s, "--fork-server"]);
    assert!(servers.len() == 1 && servers[0] != server, "a new server: {servers:?}");

    // The launcher gone, its server ends; the shims and containers carry on.
    drop(l);
    assert!(eventually(Duration::from_secs(10), || pids_with_cmdline(&[&bin_s, "--fork-server"]).is_empty()).await);
    for (c, shim) in cs.iter().zip(&shims) {
        assert!(alive(c.shim_pid.get().unwrap()));
        assert_eq!(shim.state(&ProcessRef::Init).await.unwrap().status, ContainerStatus::Running);
        shim.kill(&ProcessRef::Init, Signal::KILL, false).await.unwrap();
        assert_eq!(shim.wait(&ProcessRef::Init).await.unwrap().code, 137);
        shim.delete().await.unwrap();
    }
}
