//! engine-runc `process`: user, groups, umask, cwd, env, capabilities,
//! rlimits, noNewPrivileges, oomScoreAdj, seccomp and the console socket,
//! judged from inside the container.

mod common;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn user_groups_umask_cwd_env() {
    let mut b = Bundle::new(&["sh", "-c", "id; umask; pwd; echo $FOO"]);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1001, "additionalGids": [5, 65534], "umask": 63});
    b.config["process"]["cwd"] = json!("/work/dir");
    b.config["process"]["env"] = json!(["PATH=/bin", "FOO=bar baz"]);
    b.write();
    let runc = Runc::new();
    let out = runc.run_ok(&b, &unique_id("user"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "uid=1000 gid=1001 groups=5(tty),65534(nogroup)", "{out}");
    assert_eq!(lines[1], "0077");
    assert_eq!(lines[2], "/work/dir");
    assert_eq!(lines[3], "bar baz");
}

fn cap_eff(out: &str, key: &str) -> u64 {
    let l = out.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("{key} in {out}"));
    u64::from_str_radix(l.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn capability_sets() {
    let mut b = Bundle::new(&["grep", "^Cap", "/proc/self/status"]);
    let set = json!(["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"]);
    b.config["process"]["capabilities"] = json!({"bounding": set, "effective": ["CAP_KILL"], "permitted": set, "inheritable": ["CAP_CHOWN"], "ambient": []});
    b.write();
    let runc = Runc::new();
    let out = runc.run_ok(&b, &unique_id("caps"));
    let (kill, nbs, chown) = (1u64 << 5, 1u64 << 10, 1u64 << 0);
    assert_eq!(cap_eff(&out, "CapBnd"), kill | nbs | chown, "{out}");
    // As root, exec makes the effective set the permitted one (runc behaves the same).
    assert_eq!(cap_eff(&out, "CapPrm"), kill | nbs | chown, "{out}");
    assert_eq!(cap_eff(&out, "CapInh"), chown, "{out}");

    // A non-root user keeps exactly what the config grants through ambient.
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.config["process"]["capabilities"] = json!({"bounding": set, "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"], "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]});
    b.write();
    let out = runc.run_ok(&b, &unique_id("caps"));
    assert_eq!(cap_eff(&out, "CapEff"), kill, "{out}");
    assert_eq!(cap_eff(&out, "CapAmb"), kill, "{out}");
}

#[test]
fn rlimits_and_oom_score_and_no_new_privs() {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "ulimit -n; ulimit -Hn; cat /proc/self/oom_score_adj; grep NoNewPrivs /proc/self/status",
    ]);
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654}]);
    b.config["process"]["oomScoreAdj"] = json!(500);
    b.config["process"]["noNewPrivileges"] = json!(true);
    b.write();
    let runc = Runc::new();
    let out = runc.run_ok(&b, &unique_id("rlim"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..3], ["321", "654", "500"], "{out}");
    assert!(lines[3].ends_with("\t1"), "{out}");
}

#[test]
fn seccomp_errno_and_args() {
    let mut b = Bundle::new(&["sh", "-c", "mkdir /tmp/x; echo mkdir=$?; touch /tmp/f && echo touched"]);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
        ]
    });
    b.write();
    let runc = Runc::new();
    let (code, out, err) = runc.run(&b, &unique_id("secc"));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Permission denied"), "mkdir fails with errno 13 (EACCES): {err}");
    assert!(out.contains("mkdir=1") && out.contains("touched"), "{out}");

    // Without noNewPrivileges (podman's and Docker's default) the filter is loaded
    // while the init still has CAP_SYS_ADMIN, and it applies to exec'd processes too.
    b.config["process"]["noNewPrivileges"] = json!(false);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    b.args(&["sleep", "300"]);
    let id = unique_id("secc");
    runc.create(&b, &id);
    runc.ok(&["start", &id]);
    let o = runc.exec(&["exec", &id, "sh", "-c", "mkdir /tmp/y; grep -E 'NoNewPrivs|Seccomp:' /proc/self/status"]);
    assert!(stderr(&o).contains("Permission denied"), "{}", stderr(&o));
    assert!(stdout(&o).contains("NoNewPrivs:\t0") && stdout(&o).contains("Seccomp:\t2"), "{}", stdout(&o));
    runc.ok(&["delete", "--force", &id]);
}

#[test]
fn console_socket_gets_the_pty_master() {
    use std::os::unix::net::UnixListener;
    let mut b = Bundle::new(&["sh", "-c", "tty; echo size=$(stty size)"]);
    b.config["process"]["terminal"] = json!(true);
    b.config["process"]["consoleSize"] = json!({"height": 33, "width": 111});
    b.write();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let runc = Runc::new();
    let id = unique_id("tty");
    runc.track(&id);
    let o = runc
        .cmd()
        .args(["create", "--bundle", b.path().to_str().unwrap(), "--console-socket", sock.to_str().unwrap(), &id])
        .output_files();
    assert!(o.status.success(), "{}", stderr(&o));
    let master = receive_master(&listener);
    runc.ok(&["start", &id]);
    let out = read_pty(&master, "size=");
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("/dev/pts/0") || text.contains("/dev/console"), "{text}");
    assert!(text.contains("size=33 111"), "{text}");
    runc.ok(&["delete", "--force", &id]);
}

fn receive_master(listener: &std::os::unix::net::UnixListener) -> std::fs::File {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let (conn, _) = listener.accept().unwrap();
    let mut buf = [0u8; 64];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        nix::sys::socket::MsgFlags::empty(),
    )
    .unwrap();
    for c in msg.cmsgs().unwrap() {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: a received fd we now own.
            return std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fds[0]) });
        }
    }
    panic!("no pty master received");
}

/// Read the pty until `marker` and a newline after it, or until the slave side closes.
fn read_pty(master: &std::fs::File, marker: &str) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    let mut chunk = [0u8; 1024];
    while let Ok(n) = (&*master).read(&mut chunk) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&out);
        if text.split_once(marker).is_some_and(|(_, rest)| rest.contains('\n')) {
            break;
        }
    }
    out
}

#[test]
fn exec_with_tty_over_console_socket() {
    use std::os::unix::net::UnixListener;
    let b = Bundle::new(&["sleep", "300"]);
    let runc = Runc::new();
    let id = unique_id("exectty");
    runc.create(&b, &id);
    runc.ok(&["start", &id]);
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("c.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let pidf = dir.path().join("p");
    runc.ok(&[
        "exec",
        "-t",
        "-d",
        "--console-socket",
        sock.to_str().unwrap(),
        "--pid-file",
        pidf.to_str().unwrap(),
        &id,
        "sh",
        "-c",
        "echo tty=$(tty) pid=$$",
    ]);
    let master = receive_master(&listener);
    let text = String::from_utf8_lossy(&read_pty(&master, "tty=")).into_owned();
    assert!(text.contains("tty=/dev/pts/"), "{text}");
    assert!(std::fs::read_to_string(&pidf).unwrap().trim().parse::<i32>().unwrap() > 0);
    runc.ok(&["delete", "--force", &id]);
}

#[test]
fn personality_linux32() {
    let mut b = Bundle::new(&["uname", "-m"]);
    b.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    b.write();
    let out = Runc::new().run_ok(&b, &unique_id("pers"));
    assert!(matches!(out.trim(), "i686" | "i386" | "armv7l" | "armv8l"), "{out}");
}

#[test]
fn foreground_terminal_without_console_socket() {
    // Like `runc run` at a shell: engine-runc keeps the pty and copies stdio through it.
    let mut b = Bundle::new(&["sh", "-c", "tty; read x; echo got=$x; exit 6"]);
    b.config["process"]["terminal"] = json!(true);
    b.write();
    let runc = Runc::new();
    let id = unique_id("fgtty");
    runc.track(&id);
    let mut child = runc
        .cmd()
        .args(["run", "--bundle", b.path().to_str().unwrap(), &id])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(6));
    let out = stdout(&o);
    assert!(out.contains("/dev/pts/0") && out.contains("got=hello"), "{out:?}");
    // A detached create still needs a console socket.
    let o = runc.exec(&["create", "--bundle", b.path().to_str().unwrap(), &unique_id("fgtty")]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("console-socket"), "{}", stderr(&o));
}

#[test]
fn exec_user_by_name_through_the_containers_passwd() {
    let b = Bundle::new(&["sleep", "300"]);
    let rootfs = b.rootfs();
    std::fs::create_dir_all(rootfs.join("home/app")).unwrap();
    std::fs::create_dir_all(rootfs.join("usr/lib")).unwrap();
    // /etc/passwd is an absolute symlink: it must resolve inside the container's root.
    std::fs::remove_file(rootfs.join("etc/passwd")).unwrap();
    std::fs::write(
        rootfs.join("usr/lib/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345:App:/home/app:/bin/sh\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("/usr/lib/passwd", rootfs.join("etc/passwd")).unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nwheel:x:10:app\nstaff:x:50:\napp:x:2345:\n").unwrap();
    let id = unique_id("execuser");
    let runc = Runc::new();
    runc.create(&b, &id);
    runc.ok(&["start", &id]);
    let ids = |user: &str| -> String {
        let o = runc.exec(&["exec", "--user", user, &id, "sh", "-c", "echo $(id -u):$(id -g):$(id -G):$HOME"]);
        assert!(o.status.success(), "exec --user {user}: {}", stderr(&o));
        stdout(&o).trim().to_string()
    };
    assert_eq!(ids("app"), "1234:2345:2345 10:/home/app");
    assert_eq!(ids("app:staff"), "1234:50:50:/home/app");
    assert_eq!(ids("1234"), "1234:2345:2345 10:/home/app");
    assert_eq!(ids("4321:wheel"), "4321:10:10:");
    assert_eq!(ids("77:88"), "77:88:88:");
    for (bad, needle) in [("ghost", "ghost"), ("app:nogroup", "nogroup")] {
        let o = runc.exec(&["exec", "--user", bad, &id, "true"]);
        assert!(!o.status.success(), "exec --user {bad} succeeded");
        assert!(stderr(&o).contains(needle), "exec --user {bad}: {}", stderr(&o));
    }
    // Relative symlinks climbing out of the rootfs resolve inside it: `..` stops
    // at the container's root, so this one finds the container's /etc/real-passwd...
    std::fs::rename(rootfs.join("usr/lib/passwd"), rootfs.join("etc/real-passwd")).unwrap();
    std::fs::remove_file(rootfs.join("etc/passwd")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../../etc/real-passwd", rootfs.join("etc/passwd")).unwrap();
    assert_eq!(ids("app"), "1234:2345:2345 10:/home/app");
    // ...and this one never reaches the host's /etc/passwd (which has "daemon").
    std::fs::remove_file(rootfs.join("etc/passwd")).unwrap();
    std::os::unix::fs::symlink("../../../../../../../../etc/passwd", rootfs.join("etc/passwd")).unwrap();
    assert!(std::fs::read_to_string("/etc/passwd").unwrap().contains("\ndaemon:"));
    let o = runc.exec(&["exec", "--user", "daemon", &id, "true"]);
    assert!(!o.status.success(), "the host's /etc/passwd was read through a symlink");
    runc.ok(&["delete", "--force", &id]);
}

/// A tiny seccomp agent: accepts connections on `listener` until `deadline`
/// (or until `want` connections came), takes each listener fd and state, and
/// answers every notification with success without running the syscall.
fn seccomp_agent(
    listener: std::os::unix::net::UnixListener,
    want: usize,
) -> std::thread::JoinHandle<Vec<(serde_json::Value, Vec<String>)>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        listener.set_nonblocking(true).unwrap();
        let mut served: Vec<(serde_json::Value, OwnedFd)> = Vec::new();
        let mut seen: Vec<Vec<String>> = Vec::new();
        let mut open: Vec<bool> = Vec::new();
        // Until `want` listeners came and each has no process left.
        while (served.len() < want || open.iter().any(|o| *o)) && Instant::now() < deadline {
            if let Ok((conn, _)) = listener.accept() {
                conn.set_nonblocking(false).unwrap();
                let mut buf = vec![0u8; 65536];
                let mut iov = [std::io::IoSliceMut::new(&mut buf)];
                let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
                let msg = recvmsg::<()>(conn.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::empty()).unwrap();
                let n = msg.bytes;
                let fd = msg
                    .cmsgs()
                    .unwrap()
                    .find_map(|c| match c {
                        // SAFETY: the kernel installed this fd for us.
                        ControlMessageOwned::ScmRights(f) => Some(unsafe { OwnedFd::from_raw_fd(f[0]) }),
                        _ => None,
                    })
                    .expect("the runtime sent the listener fd");
                served.push((serde_json::from_slice(&buf[..n]).unwrap(), fd));
                seen.push(Vec::new());
                open.push(true);
            }
            if served.is_empty() {
                std::thread::sleep(Duration::from_millis(10));
            }
            for (i, (_, fd)) in served.iter().enumerate() {
                if !open[i] {
                    continue;
                }
                let mut p = [libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
                // SAFETY: poll on one valid pollfd.
                unsafe { libc::poll(p.as_mut_ptr(), 1, 10) };
                if p[0].revents & libc::POLLIN != 0 {
                    if let Ok(req) = libseccomp::ScmpNotifReq::receive(fd.as_raw_fd()) {
                        seen[i].push(req.data.syscall.get_name().unwrap_or_default());
                        let _ = libseccomp::ScmpNotifResp::new_val(req.id, 0, libseccomp::ScmpNotifRespFlags::empty())
                            .respond(fd.as_raw_fd());
                    }
                } else if p[0].revents & libc::POLLHUP != 0 {
                    open[i] = false;
                }
            }
        }
        served.into_iter().map(|(b, _)| b).zip(seen).collect()
    })
}

#[test]
fn seccomp_notify_goes_to_the_agent() {
    // With no_new_privs the filter is loaded after the capabilities are
    // dropped; without, before (it needs CAP_SYS_ADMIN): both hand the listener over.
    notify_through_agent(true);
    notify_through_agent(false);
}

fn notify_through_agent(no_new_privs: bool) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let agent = seccomp_agent(std::os::unix::net::UnixListener::bind(&sock).unwrap(), 2);
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "mkdir /from-init && echo made > /status; [ -d /from-init ] && echo exists >> /status || echo absent >> /status; sleep 300",
    ]);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "listenerMetadata": "meta-42",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
    });
    b.config["process"]["noNewPrivileges"] = json!(no_new_privs);
    b.write();
    let id = unique_id("notify");
    let runc = Runc::new();
    runc.create(&b, &id);
    let pid = runc.state(&id)["pid"].as_i64().unwrap();
    runc.ok(&["start", &id]);
    let status = b.rootfs().join("status");
    let t = Instant::now();
    while std::fs::read_to_string(&status).map(|s| s.lines().count() < 2).unwrap_or(true) {
        assert!(t.elapsed() < Duration::from_secs(20), "the container never finished its mkdir");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The agent said "done" without running mkdir: it succeeded, yet made nothing.
    assert_eq!(std::fs::read_to_string(&status).unwrap(), "made\nabsent\n");
    assert!(!b.rootfs().join("from-init").exists());
    // An exec'd process gets its own listener, handed over the same way.
    let o = runc.exec(&["exec", &id, "sh", "-c", "mkdir /from-exec && echo made; [ -d /from-exec ] || echo absent"]);
    assert_eq!(stdout(&o), "made\nabsent\n", "{}", stderr(&o));
    runc.ok(&["delete", "--force", &id]);
    let served = agent.join().unwrap();
    assert_eq!(served.len(), 2);
    let (init, exec) = (&served[0], &served[1]);
    assert_eq!(init.0["fds"], json!(["seccompFd"]));
    assert_eq!(init.0["metadata"], "meta-42");
    assert_eq!(init.0["pid"], pid);
    assert_eq!(init.0["state"]["id"], id.as_str());
    assert_eq!(init.0["state"]["status"], "creating");
    assert_eq!(init.0["state"]["pid"], pid);
    assert!(init.1.iter().any(|s| s.starts_with("mkdir")), "init notifications: {:?}", init.1);
    assert_ne!(exec.0["pid"], pid);
    assert_eq!(exec.0["state"]["status"], "running");
    assert!(exec.1.iter().any(|s| s.starts_with("mkdir")), "exec notifications: {:?}", exec.1);
}

#[test]
fn seccomp_notify_without_listener_path_is_refused() {
    let mut b = Bundle::new(&["true"]);
    b.config["linux"]["seccomp"] =
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]});
    b.write();
    let id = unique_id("nolistener");
    let runc = Runc::new();
    let o = runc.exec(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("listenerPath"), "{}", stderr(&o));
    assert_no_leftovers(&runc, &id, &b, None);
    // An agent that is not listening fails create, and nothing is left.
    let dir = tempfile::tempdir().unwrap();
    b.config["linux"]["seccomp"]["listenerPath"] = json!(dir.path().join("nobody.sock"));
    b.write();
    let cg = b.cgroup_for(&id);
    let o = runc.exec(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("nobody.sock"), "{}", stderr(&o));
    assert_no_leftovers(&runc, &id, &b, Some(&cg));
}
