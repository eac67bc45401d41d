//! The `Runtime` trait through `OciRuntime`, with real containers built from a
//! busybox-static rootfs, against runc (`/usr/sbin/runc`, from Debian) and
//! against this crate's `engine-runc`. Each test judges what a user would see:
//! state JSON, the init's pid, output on a pipe, exit codes, the freezer, the
//! cgroup, and that nothing is left after delete. Needs root.

use engine_core::{ContainerId, ContainerStatus, CreateOptions, ExecOptions, Runtime, Signal, StdioSpec};
use engine_runtime::cgroups::Cgroup;
use engine_runtime::OciRuntime;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Which runtime binary a test drives.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Runc,
    EngineRunc,
}

/// A container under test: its bundle, its runtime (with a private state
/// root) and a guard that force-deletes it and removes its cgroup.
struct Fixture {
    dir: tempfile::TempDir,
    rt: OciRuntime,
    id: ContainerId,
    cgroups_path: String,
}

fn busybox_rootfs(rootfs: &Path) {
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("busybox-static is installed (/bin/busybox)");
    let list = std::process::Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
    }
    for d in ["proc", "sys", "dev", "tmp", "etc", "root"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
}

fn subreaper() {
    // Orphaned container processes become ours, as they become a shim's, so tests can reap them.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

impl Fixture {
    fn new(kind: Kind, name: &str, args: &[&str]) -> Fixture {
        subreaper();
        let dir = tempfile::tempdir().unwrap();
        busybox_rootfs(&dir.path().join("rootfs"));
        let rand = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let id = ContainerId::new(format!("libtest-{name}-{:?}-{}-{rand:x}", kind, std::process::id()).to_lowercase())
            .unwrap();
        // A top-level cgroup of its own: with a parent shared between tests,
        // one test's cleanup could remove the (empty) parent between runc's
        // mkdir of it and of the leaf, failing another test's create.
        let cgroups_path = format!("/engine-libtest-oci-{id}");
        let mut spec = oci_spec::runtime::Spec::default();
        let mut process = spec.process().clone().unwrap();
        process.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
        process.set_terminal(Some(false));
        spec.set_process(Some(process));
        let mut root = spec.root().clone().unwrap();
        root.set_path(PathBuf::from("rootfs"));
        spec.set_root(Some(root));
        spec.set_hostname(Some("libtest".into()));
        let mut linux = spec.linux().clone().unwrap();
        linux.set_cgroups_path(Some(PathBuf::from(&cgroups_path)));
        let resources: oci_spec::runtime::LinuxResources =
            serde_json::from_str(r#"{"memory": {"limit": 67108864}, "pids": {"limit": 64}}"#).unwrap();
        linux.set_resources(Some(resources));
        spec.set_linux(Some(linux));
        spec.save(dir.path().join("config.json")).unwrap();
        let state_root = dir.path().join("state");
        let rt = match kind {
            Kind::Runc => OciRuntime::new("/usr/sbin/runc"),
            Kind::EngineRunc => OciRuntime::new(env!("CARGO_BIN_EXE_engine-runc")),
        }
        .root(&state_root)
        .timeout(Duration::from_secs(30));
        Fixture { dir, rt, id, cgroups_path }
    }

    fn bundle(&self) -> &Path {
        self.dir.path()
    }

    fn cgroup(&self) -> Cgroup {
        Cgroup::open(Some(&self.cgroups_path), self.id.as_str()).unwrap()
    }

    /// Edit config.json before create.
    fn edit(&self, f: impl FnOnce(&mut serde_json::Value)) {
        let p = self.bundle().join("config.json");
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let mut cmd = std::process::Command::new(self.rt.binary());
        if let Some(r) = self.rt.root_dir() {
            cmd.arg("--root").arg(r);
        }
        let _ = cmd.args(["delete", "--force", self.id.as_str()]).output();
        if let Ok(cg) = Cgroup::open(Some(&self.cgroups_path), self.id.as_str()) {
            let _ = cg.kill_all(libc::SIGKILL);
            let _ = cg.destroy();
        }
    }
}

fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap()
}

/// Read from `fd` until `want` appears or EOF (at most 10 s); returns what was read.
async fn read_until(fd: OwnedFd, want: &'static str) -> String {
    let task = tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::from(fd);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match f.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
            if String::from_utf8_lossy(&out).contains(want) {
                break;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    });
    tokio::time::timeout(Duration::from_secs(10), task).await.expect("output within 10 s").unwrap()
}

/// Wait for our (subreaped) child `pid`; its exit code, or 128+signal.
/// Polls, so a process that never exits fails the test instead of hanging it.
async fn reap(pid: i32) -> i32 {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, c)) => return c,
            Ok(WaitStatus::Signaled(_, s, _)) => return 128 + s as i32,
            Ok(WaitStatus::StillAlive) => {}
            other => panic!("waiting for pid {pid}: {other:?}"),
        }
        assert!(Instant::now() < deadline, "pid {pid} did not exit within 10 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn wait_status(rt: &OciRuntime, id: &ContainerId, want: ContainerStatus) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = rt.state(id).await.unwrap();
        if s.status == want {
            return;
        }
        assert!(Instant::now() < deadline, "{id} stayed {} (want {want})", s.status);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Processes whose command line mentions `needle` (other than this test).
fn processes_mentioning(needle: &str) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for ent in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = ent.file_name().to_string_lossy().parse::<i32>() else { continue };
        if pid == me {
            continue;
        }
        let Ok(cmd) = std::fs::read(ent.path().join("cmdline")) else { continue };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) {
            out.push((pid, cmd));
        }
    }
    out
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit(')').next().map(|r| !r.trim_start().starts_with('Z')).unwrap_or(false))
        .unwrap_or(false)
}

async fn lifecycle(kind: Kind) {
    let fx = Fixture::new(kind, "life", &["sh", "-c", "echo hello from $(hostname); exec sleep 60"]);
    let (r, w) = pipe();
    let opts = CreateOptions::default().stdio(StdioSpec { stdout: Some(w), ..Default::default() });
    let pid = fx.rt.create(&fx.id, fx.bundle(), opts).await.unwrap();

    let st = fx.rt.state(&fx.id).await.unwrap();
    assert_eq!(st.status, ContainerStatus::Created);
    assert_eq!(st.pid, pid);
    assert_eq!(st.id, fx.id.as_str());
    assert_eq!(std::fs::canonicalize(&st.bundle).unwrap(), std::fs::canonicalize(fx.bundle()).unwrap());
    assert!(alive(pid), "init {pid} is waiting for start");
    // The runtime process is gone: nothing but the test mentions the id.
    // (The init itself may be a fork of the runtime, still showing its command line.)
    let left: Vec<_> = processes_mentioning(fx.id.as_str()).into_iter().filter(|(p, _)| *p != pid).collect();
    assert_eq!(left, vec![], "runtime process left after create");
    // The init is in the container's cgroup, with its limits.
    assert!(fx.cgroup().pids().unwrap().contains(&pid));
    assert_eq!(fx.cgroup().stats().unwrap().memory_limit, Some(67108864));

    fx.rt.start(&fx.id).await.unwrap();
    let out = read_until(r, "hello from libtest").await;
    assert!(out.contains("hello from libtest"), "{out:?}");
    assert_eq!(fx.rt.state(&fx.id).await.unwrap().status, ContainerStatus::Running);
    assert_eq!(fx.rt.ps(&fx.id).await.unwrap(), vec![pid]);

    fx.rt.kill(&fx.id, Signal::KILL, false).await.unwrap();
    assert_eq!(reap(pid).await, 128 + libc::SIGKILL);
    wait_status(&fx.rt, &fx.id, ContainerStatus::Stopped).await;

    fx.rt.delete(&fx.id, false).await.unwrap();
    let e = fx.rt.state(&fx.id).await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    let root = fx.rt.root_dir().unwrap();
    assert!(!root.join(fx.id.as_str()).exists(), "state dir left");
    for d in fx.cgroup().dirs() {
        assert!(!d.exists(), "cgroup {} left", d.display());
    }
    // Deleting what is gone: an error without force, fine with it.
    assert!(fx.rt.delete(&fx.id, false).await.unwrap_err().is_not_found());
    fx.rt.delete(&fx.id, true).await.unwrap();
}

async fn exec_exit_code(kind: Kind) {
    let fx = Fixture::new(kind, "exec", &["sleep", "60"]);
    let init = fx.rt.create(&fx.id, fx.bundle(), CreateOptions::default()).await.unwrap();
    fx.rt.start(&fx.id).await.unwrap();

    let mut process = oci_spec::runtime::Spec::default().process().clone().unwrap();
    process.set_args(Some(vec!["sh".into(), "-c".into(), "echo exec in $(hostname); exit 3".into()]));
    process.set_terminal(Some(false));
    let (r, w) = pipe();
    let opts = ExecOptions::default().stdio(StdioSpec { stdout: Some(w), ..Default::default() });
    let pid = fx.rt.exec(&fx.id, &process, opts).await.unwrap();
    assert_ne!(pid, init);
    assert_eq!(reap(pid).await, 3);
    assert_eq!(read_until(r, "\n").await, "exec in libtest\n");

    // An exec of a missing binary fails with the runtime's message, naming it.
    process.set_args(Some(vec!["/no/such/binary".into()]));
    let e = fx.rt.exec(&fx.id, &process, ExecOptions::default()).await.unwrap_err();
    assert!(e.to_string().contains("/no/such/binary"), "{e}");

    fx.rt.delete(&fx.id, true).await.unwrap();
    assert_eq!(reap(init).await, 128 + libc::SIGKILL);
    assert!(fx.rt.state(&fx.id).await.unwrap_err().is_not_found());
}

async fn pause_resume_stats(kind: Kind) {
    let fx = Fixture::new(kind, "pause", &["sh", "-c", "while true; do sleep 0.05; done"]);
    let init = fx.rt.create(&fx.id, fx.bundle(), CreateOptions::default()).await.unwrap();
    fx.rt.start(&fx.id).await.unwrap();

    fx.rt.pause(&fx.id).await.unwrap();
    assert_eq!(fx.rt.state(&fx.id).await.unwrap().status, ContainerStatus::Paused);
    assert!(fx.cgroup().is_frozen().unwrap());
    fx.rt.resume(&fx.id).await.unwrap();
    assert_eq!(fx.rt.state(&fx.id).await.unwrap().status, ContainerStatus::Running);
    assert!(!fx.cgroup().is_frozen().unwrap());

    let s = fx.rt.stats(&fx.id).await.unwrap();
    assert!(s.pids_current.unwrap_or(0) >= 1, "{s:?}");
    assert_eq!(s.pids_limit, Some(64), "{s:?}");
    assert_eq!(s.memory_limit, Some(67108864), "{s:?}");
    assert!(s.memory_usage.unwrap_or(0) > 0, "{s:?}");
    assert!(s.cpu_usage_ns.unwrap_or(0) > 0, "{s:?}");

    // kill --all reaches every process (the init, a shell, ignores SIGTERM as pid 1).
    fx.rt.kill(&fx.id, Signal::KILL, true).await.unwrap();
    assert_eq!(reap(init).await, 128 + libc::SIGKILL);
    wait_status(&fx.rt, &fx.id, ContainerStatus::Stopped).await;
    fx.rt.delete(&fx.id, false).await.unwrap();
}

async fn bad_config_message(kind: Kind) {
    let fx = Fixture::new(kind, "bad", &["/no/such/entrypoint"]);
    let e = fx.rt.create(&fx.id, fx.bundle(), CreateOptions::default()).await.unwrap_err();
    assert!(matches!(e, engine_core::Error::Runtime { .. }), "{e:?}");
    assert!(e.to_string().contains("/no/such/entrypoint"), "the runtime's own message: {e}");
    // Nothing left: no container, no cgroup.
    assert!(fx.rt.state(&fx.id).await.unwrap_err().is_not_found());
    for d in fx.cgroup().dirs() {
        assert!(!d.exists(), "cgroup {} left", d.display());
    }

    // A malformed config.json.
    let fx = Fixture::new(kind, "badjson", &["true"]);
    fx.edit(|v| v["process"]["args"] = serde_json::json!("not-a-list"));
    let e = fx.rt.create(&fx.id, fx.bundle(), CreateOptions::default()).await.unwrap_err();
    assert!(matches!(e, engine_core::Error::Runtime { .. }), "{e:?}");
    assert!(fx.rt.state(&fx.id).await.unwrap_err().is_not_found());

    // An id in use.
    let fx = Fixture::new(kind, "twice", &["sleep", "60"]);
    let init = fx.rt.create(&fx.id, fx.bundle(), CreateOptions::default()).await.unwrap();
    let e = fx.rt.create(&fx.id, fx.bundle(), CreateOptions::default()).await.unwrap_err();
    assert!(e.is_conflict(), "{e:?}");
    fx.rt.delete(&fx.id, true).await.unwrap();
    reap(init).await;
}

/// Accept one connection on `sock` and receive the pty master sent over it (SCM_RIGHTS).
fn receive_pty(listener: std::os::unix::net::UnixListener) -> OwnedFd {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::{AsRawFd, FromRawFd};
    let (conn, _) = listener.accept().unwrap();
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(conn.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::empty()).unwrap();
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the fd arrived with SCM_RIGHTS and is ours now.
            return unsafe { OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("no fd received on the console socket");
}

async fn terminal_console_socket(kind: Kind) {
    let fx = Fixture::new(kind, "tty", &["sh", "-c", "tty; echo term-ok; exec sleep 60"]);
    fx.edit(|v| v["process"]["terminal"] = serde_json::json!(true));
    let sock = fx.bundle().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let receiver = std::thread::spawn(move || receive_pty(listener));
    let opts = CreateOptions::default().stdio(StdioSpec { console_socket: Some(sock), ..Default::default() });
    let pid = fx.rt.create(&fx.id, fx.bundle(), opts).await.unwrap();
    let master = receiver.join().unwrap();
    fx.rt.start(&fx.id).await.unwrap();
    let out = read_until(master, "term-ok").await;
    assert!(out.contains("/dev/pts/") && out.contains("term-ok"), "{out:?}");
    fx.rt.delete(&fx.id, true).await.unwrap();
    assert_eq!(reap(pid).await, 128 + libc::SIGKILL);
}

macro_rules! against {
    ($kind:ident, $modname:ident) => {
        mod $modname {
            use super::*;
            #[tokio::test]
            async fn lifecycle() {
                super::lifecycle(Kind::$kind).await
            }
            #[tokio::test]
            async fn exec_exit_code() {
                super::exec_exit_code(Kind::$kind).await
            }
            #[tokio::test]
            async fn pause_resume_stats() {
                super::pause_resume_stats(Kind::$kind).await
            }
            #[tokio::test]
            async fn terminal_console_socket() {
                super::terminal_console_socket(Kind::$kind).await
            }
            #[tokio::test]
            async fn bad_config_message() {
                super::bad_config_message(Kind::$kind).await
            }
        }
    };
}

against!(Runc, runc);
against!(EngineRunc, engine_runc);
