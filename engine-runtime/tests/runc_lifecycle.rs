//! engine-runc lifecycle end to end: create/start/state/kill/delete, run and
//! its exit status, exec, pause/resume, ps, list, events, spec, features, and
//! the containerd-shim style command line with a JSON log.

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn wait_status(runc: &Runc, id: &str, want: &str) -> Value {
    let t = Instant::now();
    loop {
        let st = runc.state(id);
        if st["status"] == want || t.elapsed() > Duration::from_secs(10) {
            return st;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn create_start_kill_delete() {
    let mut b = Bundle::new(&["sleep", "300"]);
    let id = unique_id("life");
    let cg = b.cgroup_for(&id);
    let runc = Runc::new();
    runc.create(&b, &id);

    // created: the init waits, and the create process has exited (its only trace is the init).
    let st = runc.state(&id);
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["bundle"], b.path().canonicalize().unwrap().to_str().unwrap());
    assert!(st["ociVersion"].is_string());
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert!(pid_alive(pid));
    let ps: Vec<i32> = serde_json::from_str(&runc.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(ps, vec![pid], "only the init is in the cgroup after create");
    let root = runc.root.path().to_string_lossy().into_owned();
    assert_eq!(procs_mentioning(&root), vec![pid], "no engine-runc process but the container's init after create");
    // The init between create and start stays small.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kb: u64 =
        status.lines().find(|l| l.starts_with("VmRSS:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(rss_kb < 16 * 1024, "init RSS {rss_kb} kB");

    runc.ok(&["start", &id]);
    let st = runc.state(&id);
    assert_eq!(st["status"], "running");
    assert!(!runc.state_dir(&id).join("exec.fifo").exists());
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(String::from_utf8_lossy(&cmdline).starts_with("sleep\x00300"), "the init exec'd the user process");
    // A second start is refused.
    assert!(!runc.exec(&["start", &id]).status.success());
    // delete without --force refuses a running container.
    let o = runc.exec(&["delete", &id]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("running"), "{}", stderr(&o));

    runc.ok(&["kill", &id, "KILL"]);
    let st = wait_status(&runc, &id, "stopped");
    assert_eq!(st["status"], "stopped");
    runc.ok(&["delete", &id]);
    assert_no_leftovers(&runc, &id, &b, Some(&cg));
    assert!(!runc.exec(&["state", &id]).status.success());
    // containerd always deletes again with --force: that must succeed.
    runc.ok(&["delete", "--force", &id]);
}

#[test]
fn run_returns_exit_status_and_cleans_up() {
    let mut b = Bundle::new(&["sh", "-c", "echo out; echo err >&2; exit 7"]);
    let id = unique_id("exit");
    let cg = b.cgroup_for(&id);
    let runc = Runc::new();
    let (code, out, err) = runc.run(&b, &id);
    assert_eq!(code, 7, "{err}");
    assert_eq!(out, "out\n");
    assert!(err.contains("err"));
    assert_no_leftovers(&runc, &id, &b, Some(&cg));

    // Killed by a signal (from the host: pid 1 ignores it from inside): 128 + n.
    let id2 = unique_id("sig");
    b.args(&["sleep", "300"]);
    runc.track(&id2);
    let child = runc.cmd().args(["run", "--bundle", b.path().to_str().unwrap(), &id2]).spawn().unwrap();
    let t = Instant::now();
    while runc.exec(&["state", &id2]).status.code() != Some(0) && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    wait_status(&runc, &id2, "running");
    runc.ok(&["kill", &id2, "KILL"]);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(137));
    assert!(!runc.state_dir(&id2).exists(), "run removes the container after it exits");
}

#[test]
fn pid_one_and_stdin_passthrough() {
    let b = Bundle::new(&["sh", "-c", "echo pid=$$; grep -E 'SigIgn|SigBlk' /proc/self/status; cat"]);
    let id = unique_id("stdin");
    let runc = Runc::new();
    runc.track(&id);
    let mut child = runc
        .cmd()
        .args(["run", "--bundle", b.path().to_str().unwrap(), &id])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"through the pipe\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    // Default signal dispositions and mask (engine-runc itself ignores SIGPIPE, as Rust programs do).
    assert_eq!(stdout(&o), "pid=1\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\nthrough the pipe\n");
}

#[test]
fn run_detached_exec_pause_resume_events_list() {
    let mut b = Bundle::new(&["sleep", "300"]);
    let id = unique_id("ops");
    let cg = b.cgroup_for(&id);
    let runc = Runc::new();
    runc.track(&id);
    let o = runc.cmd().args(["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]).output_files();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(runc.state(&id)["status"], "running");

    // exec with args: output, exit code, pid namespace of the container.
    let o = runc.exec(&["exec", &id, "sh", "-c", "echo in $(hostname); ls /proc | grep -c '^[0-9]' ; exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("in testhost\n"), "{out}");
    // exec with --process, detached, with a pid file (containerd's form).
    let dir = tempfile::tempdir().unwrap();
    let p = serde_json::json!({
        "args": ["sleep", "200"], "cwd": "/tmp", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}, "terminal": false
    });
    std::fs::write(dir.path().join("process.json"), p.to_string()).unwrap();
    let pidfile = dir.path().join("exec.pid");
    runc.ok(&[
        "exec",
        "--process",
        dir.path().join("process.json").to_str().unwrap(),
        "--detach",
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
    ]);
    let epid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert!(pid_alive(epid));
    assert_eq!(std::fs::read_link(format!("/proc/{epid}/cwd")).unwrap(), std::path::Path::new("/tmp"));
    let ps: Vec<i32> = serde_json::from_str(&runc.ok(&["ps", "--format", "json", &id])).unwrap();
    assert!(ps.contains(&epid), "exec'd process joined the cgroup: {ps:?}");
    let init = runc.state(&id)["pid"].as_i64().unwrap();
    for ns in ["pid", "mnt", "uts", "ipc", "net"] {
        assert_eq!(
            std::fs::read_link(format!("/proc/{epid}/ns/{ns}")).unwrap(),
            std::fs::read_link(format!("/proc/{init}/ns/{ns}")).unwrap(),
            "{ns} namespace"
        );
    }

    runc.ok(&["pause", &id]);
    assert_eq!(runc.state(&id)["status"], "paused");
    let list: Vec<Value> = serde_json::from_str(&runc.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["status"], "paused");
    assert_eq!(runc.ok(&["list", "-q"]).trim(), id);
    runc.ok(&["resume", &id]);
    assert_eq!(runc.state(&id)["status"], "running");

    let ev: Value = serde_json::from_str(runc.ok(&["events", "--stats", &id]).lines().next().unwrap()).unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], id.as_str());
    assert!(ev["data"]["pids"]["current"].as_u64().unwrap() >= 2, "{ev}");
    assert!(ev["data"]["cpu"]["usage"]["total"].as_u64().unwrap() > 0, "{ev}");
    assert!(ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0, "{ev}");

    // kill --all reaches the exec'd process too.
    runc.ok(&["kill", "--all", &id, "9"]);
    wait_status(&runc, &id, "stopped");
    let t = Instant::now();
    while pid_alive(epid) && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!pid_alive(epid));
    runc.ok(&["delete", &id]);
    assert_no_leftovers(&runc, &id, &b, Some(&cg));
}

#[test]
fn delete_force_kills_running_and_created() {
    let mut b = Bundle::new(&["sleep", "300"]);
    let runc = Runc::new();
    for (start, pause) in [(false, false), (true, false), (true, true)] {
        let id = unique_id("force");
        let cg = b.cgroup_for(&id);
        runc.create(&b, &id);
        if start {
            runc.ok(&["start", &id]);
        }
        if pause {
            runc.ok(&["pause", &id]);
            assert_eq!(runc.state(&id)["status"], "paused");
        }
        let pid = runc.state(&id)["pid"].as_i64().unwrap() as i32;
        runc.ok(&["delete", "--force", &id]);
        assert!(!pid_alive(pid));
        assert_no_leftovers(&runc, &id, &b, Some(&cg));
    }
    // A create killed before it wrote its state leaves a bare directory: --force removes it.
    std::fs::create_dir(runc.state_dir("half-made")).unwrap();
    runc.ok(&["delete", "--force", "half-made"]);
    assert!(!runc.state_dir("half-made").exists());
    // A missing container: plain delete fails, --force succeeds.
    assert!(!runc.exec(&["delete", "nonexistent"]).status.success());
    runc.ok(&["delete", "--force", "nonexistent"]);
}

#[test]
fn containerd_shim_command_line_and_json_log() {
    let b = Bundle::new(&["sleep", "300"]);
    let id = unique_id("shim");
    let runc = Runc::new();
    runc.track(&id);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.json");
    let pidf = dir.path().join("init.pid");
    let root = runc.root.path().to_str().unwrap().to_string();
    let base = ["--root", &root, "--log", log.to_str().unwrap(), "--log-format", "json"];
    let o = std::process::Command::new(bin())
        .args(base)
        .args(["create", "--bundle", b.path().to_str().unwrap(), "--pid-file", pidf.to_str().unwrap(), &id])
        .output_files();
    assert!(o.status.success(), "{}", stderr(&o));
    let pid: i64 = std::fs::read_to_string(&pidf).unwrap().parse().unwrap();
    assert_eq!(runc.state(&id)["pid"].as_i64().unwrap(), pid);
    // SIGTERM is delivered (pid 1 without a handler ignores it, as under runc), then SIGKILL.
    for args in [vec!["start", &id], vec!["kill", &id, "15"], vec!["kill", &id, "9"]] {
        let o = std::process::Command::new(bin()).args(base).args(&args).output_files();
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    }
    wait_status(&runc, &id, "stopped");
    let o = std::process::Command::new(bin()).args(base).args(["kill", &id, "9"]).output_files();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("container not running"), "{}", stderr(&o));
    for args in [vec!["delete", &id], vec!["delete", "--force", &id]] {
        let o = std::process::Command::new(bin()).args(base).args(&args).output_files();
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    }
    // A failure is written to the log as a JSON line containerd can read.
    let o = std::process::Command::new(bin()).args(base).args(["start", "no-such-ctr"]).output_files();
    assert!(!o.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    let line: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    assert!(line["msg"].as_str().unwrap().contains("no-such-ctr"), "{line}");
    // containerd recognises runc's wording for a missing container and a stopped one.
    assert!(line["msg"].as_str().unwrap().contains("does not exist"), "{line}");
    assert!(line["time"].is_string());
    // --systemd-cgroup is refused clearly.
    let o = std::process::Command::new(bin()).args(["--root", &root, "--systemd-cgroup", "list"]).output_files();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("systemd"));
}

#[test]
fn spec_features_version() {
    let dir = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(bin()).args(["spec", "--bundle", dir.path().to_str().unwrap()]).output_files();
    assert!(o.status.success());
    let spec: Value = serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["root"]["path"], "rootfs");
    assert!(spec["linux"]["namespaces"].as_array().unwrap().len() >= 5);
    // A second spec refuses to overwrite.
    let o = std::process::Command::new(bin()).args(["spec", "-b", dir.path().to_str().unwrap()]).output_files();
    assert!(!o.status.success());
    let f: Value =
        serde_json::from_slice(&std::process::Command::new(bin()).arg("features").output_files().stdout).unwrap();
    assert!(f["linux"]["namespaces"].as_array().unwrap().iter().any(|n| n == "user"));
    assert_eq!(f["linux"]["seccomp"]["enabled"], true);
    let v = std::process::Command::new(bin()).arg("--version").output_files();
    assert!(stdout(&v).starts_with("engine-runc version ") && stdout(&v).contains("spec: 1.2"), "{}", stdout(&v));
    let v = std::process::Command::new(bin()).arg("-v").output_files();
    assert!(stdout(&v).starts_with("engine-runc version "));
}

#[test]
fn foreground_run_forwards_signals() {
    let b =
        Bundle::new(&["sh", "-c", "trap 'echo got TERM; exit 5' TERM; echo ready; while true; do sleep 0.05; done"]);
    let id = unique_id("fwd");
    let runc = Runc::new();
    runc.track(&id);
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut child = runc
        .cmd()
        .args(["run", "--bundle", b.path().to_str().unwrap(), &id])
        .stdout(out.reopen().unwrap())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !std::fs::read_to_string(out.path()).unwrap().contains("ready") && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(5));
    assert!(std::fs::read_to_string(out.path()).unwrap().contains("got TERM"));
    assert!(!runc.state_dir(&id).exists());
}

#[test]
fn preserve_fds_and_exec_env_cwd_user() {
    use std::os::fd::AsRawFd;
    let b = Bundle::new(&["sh", "-c", "cat <&3; sleep 300"]);
    let id = unique_id("fds");
    let runc = Runc::new();
    runc.track(&id);
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), "via fd 3\n").unwrap();
    let file = std::fs::File::open(f.path()).unwrap();
    let out = tempfile::NamedTempFile::new().unwrap();
    let raw = file.as_raw_fd();
    let mut cmd = runc.cmd();
    cmd.args(["run", "-d", "--preserve-fds", "1", "--bundle", b.path().to_str().unwrap(), &id])
        .stdout(out.reopen().unwrap())
        .stderr(std::process::Stdio::null());
    // SAFETY: dup2 in the child before exec, async-signal-safe.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            // dup2(3, 3) is a no-op that keeps FD_CLOEXEC, so when the file
            // already is fd 3 clear the flag instead.
            let rc = if raw == 3 { libc::fcntl(3, libc::F_SETFD, 0) } else { libc::dup2(raw, 3) };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    assert!(cmd.status().unwrap().success());
    let t = Instant::now();
    while !std::fs::read_to_string(out.path()).unwrap().contains("via fd 3") && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(std::fs::read_to_string(out.path()).unwrap(), "via fd 3\n");
    let o = runc.exec(&[
        "exec",
        "--env",
        "X=1",
        "--cwd",
        "/tmp",
        "--user",
        "1000:1000",
        &id,
        "sh",
        "-c",
        "echo $X $(pwd) $(id -u):$(id -g)",
    ]);
    assert_eq!(stdout(&o), "1 /tmp 1000:1000\n", "{}", stderr(&o));
    runc.ok(&["delete", "--force", &id]);
}

#[test]
fn delete_force_cleans_up_after_a_killed_create() {
    // engine-runc is SIGKILLed while a createRuntime hook runs: the cgroup and
    // the init exist, state.json does not. delete --force must remove it all.
    let out = tempfile::tempdir().unwrap();
    let o = out.path().display().to_string();
    let mut b = Bundle::new(&["sleep", "300"]);
    let id = unique_id("killed");
    let cg = b.cgroup_for(&id);
    b.config["hooks"] = json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c",
        format!("echo $$ > {o}/hookpid; cat > {o}/state.tmp; mv {o}/state.tmp {o}/state; exec sleep 60")]}]});
    b.write();
    let runc = Runc::new();
    runc.track(&id);
    let mut child = runc
        .cmd()
        .args(["create", "--bundle", b.path().to_str().unwrap(), &id])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !out.path().join("state").exists() {
        assert!(t.elapsed() < Duration::from_secs(20), "the createRuntime hook never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
    let st: Value = serde_json::from_str(&std::fs::read_to_string(out.path().join("state")).unwrap()).unwrap();
    let init = st["pid"].as_i64().unwrap() as i32;
    child.kill().unwrap();
    child.wait().unwrap();
    // The hook outlives engine-runc (as it would under runc): end it, by its pid.
    let hook: i32 = std::fs::read_to_string(out.path().join("hookpid")).unwrap().trim().parse().unwrap();
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(hook), nix::sys::signal::Signal::SIGKILL);
    // The half-made container: a state dir without state.json, and its cgroup.
    assert!(runc.state_dir(&id).exists());
    assert!(!runc.state_dir(&id).join("state.json").exists());
    let dirs = cgroup_dirs(&cg);
    assert!(dirs.iter().any(|d| d.exists()), "the killed create made no cgroup: {dirs:?}");
    // Not listed, not a container for `state`.
    assert!(!runc.ok(&["list", "-q"]).lines().any(|l| l == id));
    runc.ok(&["delete", "--force", &id]);
    assert!(!pid_alive(init), "the init {init} of the killed create survived delete --force");
    assert_no_leftovers(&runc, &id, &b, Some(&cg));
}
