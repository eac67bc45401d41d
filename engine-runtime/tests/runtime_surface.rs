//! The runtime's own attack surface (issue 10): the in-process create path
//! refuses a multi-threaded caller; a process in a container cannot open the
//! runtime binary that joins it (CVE-2019-5736 class); a `process.cwd` through
//! `/proc/self/fd/N` never reaches the host (CVE-2024-21626 class).

mod common;
use common::*;
use engine_core::ContainerId;
use engine_runtime::linux::{CreateOpts, ExecOpts, Runc as Lib};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// A second thread parked for the test's duration, so the process is
/// multi-threaded however the harness runs tests.
fn with_extra_thread<T>(f: impl FnOnce() -> T) -> T {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        let _ = rx.recv();
    });
    let r = f();
    drop(tx);
    t.join().unwrap();
    r
}

#[test]
fn in_process_create_and_exec_refuse_a_multi_threaded_process() {
    let b = Bundle::new(&["true"]);
    let root = tempfile::tempdir().unwrap();
    let lib = Lib::new(root.path());
    let id = ContainerId::new(unique_id("threads")).unwrap();
    let opts = CreateOpts::default().bundle(b.path().to_path_buf());
    let err = with_extra_thread(|| lib.create(&id, &opts)).expect_err("create ran in a multi-threaded process");
    let msg = err.to_string();
    assert!(msg.contains("threads") && msg.contains("single-threaded"), "unclear error: {msg}");
    assert!(!root.path().join(id.as_str()).exists(), "create left a state dir behind");
    let err = with_extra_thread(|| lib.run(&id, &opts, true)).expect_err("run ran in a multi-threaded process");
    assert!(err.to_string().contains("threads"), "{err}");
    let mut process = oci_spec::runtime::Process::default();
    process.set_args(Some(vec!["true".into()]));
    let err = with_extra_thread(|| lib.exec(&id, &process, &ExecOpts::default()))
        .expect_err("exec ran in a multi-threaded process");
    assert!(err.to_string().contains("threads"), "{err}");
    assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0, "something was left in the state root");
}

fn sha256(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

/// `engine-runc` copied into a temp dir: the attack test must not be able to
/// damage the binary other tests run, even if the defence is gone.
fn private_engine_runc() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new().prefix("runc-bin-").tempdir().unwrap();
    let p = dir.path().join("engine-runc");
    std::fs::copy(bin(), &p).unwrap();
    (dir, p)
}

#[test]
fn a_container_cannot_open_the_binary_that_joins_it() {
    let (_bin_dir, runc_bin) = private_engine_runc();
    let before = sha256(&runc_bin);
    let mut b = Bundle::new(&["sleep", "1000"]);
    b.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETUID", "CAP_SETGID"],
        "effective": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETUID", "CAP_SETGID"],
        "permitted": ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETUID", "CAP_SETGID"],
    });
    b.write();
    let runc = Runc::new();
    let id = unique_id("exe");
    runc.track(&id);
    let cmd = |args: &[&str]| {
        let mut c = std::process::Command::new(&runc_bin);
        c.arg("--root").arg(runc.root.path()).args(args).stdin(std::process::Stdio::null());
        c.output_files()
    };
    // Created, not started: pid 1 in the container is the runtime's clone,
    // whose /proc/1/exe is the host binary until `start` execs the program.
    let o = cmd(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(o.status.success(), "create: {}", stderr(&o));
    // A process joined by `exec` tries every way in: read, append, reopen of a
    // read descriptor for writing, and the same on its own joining parent's
    // siblings (every runtime process it can see).
    let attack = r#"
        for p in $(ls /proc | grep -E '^[0-9]+$'); do
            [ "$p" = "$$" ] && continue
            c=$(cat /proc/$p/comm 2>/dev/null) || continue
            case "$c" in engine-*) ;; *) continue ;; esac
            echo "seen $p $c"
            if cat /proc/$p/exe >/dev/null 2>&1; then echo "OPENED-READ $p"; fi
            if (echo pwned >> /proc/$p/exe) 2>/dev/null; then echo "OPENED-WRITE $p"; fi
            if (exec 3</proc/$p/exe; echo pwned >> /proc/self/fd/3) 2>/dev/null; then echo "REOPENED $p"; fi
            if readlink /proc/$p/exe >/dev/null 2>&1; then echo "READLINK $p"; fi
        done
        echo done"#;
    let o = cmd(&["exec", &id, "sh", "-c", attack]);
    let out = stdout(&o);
    assert!(o.status.success(), "exec: {} {out}", stderr(&o));
    assert!(out.contains("seen 1 engine-init"), "the attacker never saw the waiting init:\n{out}");
    assert!(!out.contains("OPENED") && !out.contains("REOPENED") && !out.contains("READLINK"), "{out}");
    assert!(out.contains("done"), "{out}");
    // Racing: while execs join the running container, a process inside keeps
    // trying to open each joining engine-runc's exe.
    let o = cmd(&["start", &id]);
    assert!(o.status.success(), "start: {}", stderr(&o));
    let racer = r#"
        while [ ! -e /tmp/stop ]; do
            for p in $(ls /proc | grep -E '^[0-9]+$'); do
                c=$(cat /proc/$p/comm 2>/dev/null) || continue
                case "$c" in engine-*) ;; *) continue ;; esac
                echo "seen $p"
                # A joining process may have exec'd the container's own program
                # between the comm check and the open: reading that (busybox)
                # is no breach; reading anything else is.
                if cat /proc/$p/exe >/tmp/exe.copy 2>/dev/null && ! cmp -s /tmp/exe.copy /bin/busybox; then
                    echo "OPENED-READ $p"
                fi
                if (echo pwned >> /proc/$p/exe) 2>/dev/null; then echo "OPENED-WRITE $p"; fi
                if (exec 3</proc/$p/exe; echo pwned >> /proc/self/fd/3) 2>/dev/null; then echo "REOPENED $p"; fi
            done
        done > /tmp/race.log 2>&1
        echo END >> /tmp/race.log"#;
    let mut racer_cmd = std::process::Command::new(&runc_bin);
    racer_cmd.arg("--root").arg(runc.root.path()).args(["exec", "--detach", &id, "sh", "-c", racer]);
    let o = racer_cmd.stdin(std::process::Stdio::null()).output_files();
    assert!(o.status.success(), "racer: {}", stderr(&o));
    for _ in 0..30 {
        let o = cmd(&["exec", &id, "true"]);
        assert!(o.status.success(), "exec true: {}", stderr(&o));
    }
    let o = cmd(&[
        "exec",
        &id,
        "sh",
        "-c",
        "touch /tmp/stop; until grep -q END /tmp/race.log 2>/dev/null; do :; done; cat /tmp/race.log",
    ]);
    let log = stdout(&o);
    assert!(o.status.success(), "stop racer: {}", stderr(&o));
    assert!(!log.contains("OPENED") && !log.contains("REOPENED") && !log.contains("READLINK"), "{log}");
    let o = cmd(&["delete", "--force", &id]);
    assert!(o.status.success(), "delete: {}", stderr(&o));
    assert_eq!(sha256(&runc_bin), before, "the host's engine-runc was modified from inside the container");
}

/// Where `pid`'s working directory is, seen from the host.
fn host_cwd(pid: i32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap()
}

/// An `engine-runc` command whose descriptors 3..=9 are a host directory
/// (as a careless caller passing `--preserve-fds 7` would leave them), so
/// that `/proc/self/fd/N` names a host directory while the process is set up.
fn with_host_dir_fds(runc: &Runc, host_dir: &Path, args: &[&str]) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let dir = std::fs::File::open(host_dir).unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&dir);
    let mut c = runc.cmd();
    c.args(args);
    // SAFETY: only dup2 (async-signal-safe) between fork and exec.
    unsafe {
        c.pre_exec(move || {
            for n in 3..=9 {
                if n != fd && libc::dup2(fd, n) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if !(3..=9).contains(&fd) {
                libc::close(fd);
            } else {
                libc::fcntl(fd, libc::F_SETFD, 0);
            }
            Ok(())
        })
    };
    c.output_files()
}

#[test]
fn a_cwd_through_proc_self_fd_never_reaches_the_host() {
    let host = tempfile::Builder::new().prefix("host-dir-").tempdir().unwrap();
    std::fs::write(host.path().join("host-secret"), "host").unwrap();
    let host_dir = std::fs::canonicalize(host.path()).unwrap();
    for n in 3..=9 {
        let fd_path = format!("/proc/self/fd/{n}");
        // run (create): the init's cwd.
        let mut b = Bundle::new(&["sleep", "1000"]);
        let id = unique_id("cwd");
        let cg = b.cgroup_for(&id);
        b.config["process"]["cwd"] = json!(fd_path);
        b.write();
        let rootfs = std::fs::canonicalize(b.rootfs()).unwrap();
        let runc = Runc::new();
        runc.track(&id);
        let o = with_host_dir_fds(
            &runc,
            &host_dir,
            &["create", "--preserve-fds", "7", "--bundle", b.path().to_str().unwrap(), &id],
        );
        if o.status.success() {
            let pid = runc.state(&id)["pid"].as_i64().unwrap() as i32;
            let cwd = host_cwd(pid);
            assert!(cwd.starts_with(&rootfs), "create with cwd {fd_path}: the init's cwd is {}", cwd.display());
            runc.ok(&["delete", "--force", &id]);
        } else {
            assert!(stderr(&o).contains("process.cwd"), "create with cwd {fd_path}: unclear error {}", stderr(&o));
        }
        assert_no_leftovers(&runc, &id, &b, Some(&cg));

        // exec into a running container.
        let mut b = Bundle::new(&["sleep", "1000"]);
        let id = unique_id("cwdx");
        let cg = b.cgroup_for(&id);
        let rootfs = std::fs::canonicalize(b.rootfs()).unwrap();
        let runc = Runc::new();
        runc.create(&b, &id);
        runc.ok(&["start", &id]);
        let pid_file = b.path().join("exec.pid");
        let args = [
            "exec",
            "--detach",
            "--preserve-fds",
            "7",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--cwd",
            &fd_path,
            &id,
            "sleep",
            "1000",
        ];
        let o = with_host_dir_fds(&runc, &host_dir, &args);
        if o.status.success() {
            let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
            let cwd = host_cwd(pid);
            assert!(cwd.starts_with(&rootfs), "exec with cwd {fd_path}: the process's cwd is {}", cwd.display());
        } else {
            assert!(stderr(&o).contains("process.cwd"), "exec with cwd {fd_path}: unclear error {}", stderr(&o));
        }
        runc.ok(&["delete", "--force", &id]);
        assert_no_leftovers(&runc, &id, &b, Some(&cg));
    }
    assert_eq!(std::fs::read_dir(&host_dir).unwrap().count(), 1, "something was written in the host directory");
}
