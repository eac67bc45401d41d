//! engine-runc against runc's behaviour where they used to differ (issue 11):
//! proc/sysfs on a symlink, descriptors reaching the container, loopback in a
//! new network namespace, recursive mount attributes, `exec --ignore-paused`
//! and `--env`, startContainer hooks' environment, a config without a mount
//! namespace, the word "error" in failure messages, the default cgroup path.
//! Each test drives the `engine-runc` command line with real containers.

mod common;
use common::*;
use serde_json::json;
use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

// ---------------------------------------------------------------------------
// 1. proc and sysfs must be mounted on ordinary directories inside the rootfs.

#[test]
fn proc_or_sysfs_on_a_symlink_is_refused_and_nothing_is_mounted_on_the_host() {
    let runc = Runc::new();
    let host = tempfile::Builder::new().prefix("runc-symlink-target-").tempdir().unwrap();
    for (dir, fstype) in [("proc", "proc"), ("sys", "sysfs")] {
        // Absolute and relative links, the relative one climbing out of the rootfs.
        let rel = format!("../../../../../../../..{}", host.path().display());
        for target in [host.path().to_str().unwrap(), rel.as_str()] {
            let b = Bundle::new(&["true"]);
            std::fs::remove_dir(b.rootfs().join(dir)).unwrap();
            std::os::unix::fs::symlink(target, b.rootfs().join(dir)).unwrap();
            let id = unique_id("symlink");
            let o = runc.exec(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
            assert!(!o.status.success(), "{fstype} on a symlink ({target}) must be refused");
            let err = stderr(&o);
            assert!(err.contains("must be mounted on ordinary directory"), "{err}");
            assert!(err.contains(fstype) && err.contains("error"), "{err}");
            assert!(mounts_under(host.path()).is_empty(), "mounted on the host: {:?}", mounts_under(host.path()));
            assert_eq!(std::fs::read_dir(host.path()).unwrap().count(), 0, "nothing made on the host");
            assert_no_leftovers(&runc, &id, &b, None);
        }
    }
}

#[test]
fn mount_destinations_through_symlinks_stay_inside_the_rootfs() {
    let host = tempfile::Builder::new().prefix("runc-symlink-host-").tempdir().unwrap();
    let host_dev = tempfile::Builder::new().prefix("runc-symlink-dev-").tempdir().unwrap();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "echo inside > /data/x/marker && stat -f -c %T /data/x && echo ok > /dev/null && readlink /dev/stdin",
    ]);
    // /data points at a host directory: resolved in the rootfs, it is <rootfs><host path>.
    std::os::unix::fs::symlink(host.path(), b.rootfs().join("data")).unwrap();
    // So does /dev: its tmpfs, device nodes and symlinks go inside the rootfs too.
    std::fs::remove_dir(b.rootfs().join("dev")).unwrap();
    std::os::unix::fs::symlink(host_dev.path(), b.rootfs().join("dev")).unwrap();
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data/x", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=1m"]
    }));
    b.write();
    let runc = Runc::new();
    let out = runc.run_ok(&b, &unique_id("inroot"));
    assert!(out.contains("tmpfs") && out.contains("/proc/self/fd/0"), "{out}");
    assert_eq!(std::fs::read_dir(host_dev.path()).unwrap().count(), 0, "devices made on the host");
    assert!(!host.path().join("x").exists(), "the mount point was made on the host");
    let inside = b.rootfs().join(host.path().strip_prefix("/").unwrap()).join("x");
    assert!(inside.is_dir(), "{} should be the mount point", inside.display());
    assert!(mounts_under(b.path()).is_empty() && mounts_under(host.path()).is_empty());
    assert!(mounts_under(host_dev.path()).is_empty());
}

// ---------------------------------------------------------------------------
// 2. Descriptors: only stdio and the caller's fds named by --preserve-fds
//    (after the LISTEN_FDS ones) reach the container process.

/// Make the command's process hold exactly `files` at fds 3, 4, ... (not
/// close-on-exec) besides its stdio, and nothing else.
fn holding(cmd: &mut Command, files: &[&std::fs::File]) {
    let raws: Vec<RawFd> = files.iter().map(|f| f.as_raw_fd()).collect();
    // SAFETY: only async-signal-safe calls (dup2, close_range) between fork and exec;
    // `raws` was allocated before the fork and is only read.
    unsafe {
        cmd.pre_exec(move || {
            // Copy above the targets first, so that no source is overwritten early.
            for (i, fd) in raws.iter().enumerate() {
                if libc::dup2(*fd, 200 + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for i in 0..raws.len() as RawFd {
                if libc::dup2(200 + i, 3 + i) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            libc::syscall(libc::SYS_close_range, 3 + raws.len() as u32, u32::MAX, 0u32);
            Ok(())
        });
    }
}

/// A file with known contents, to recognise it in `ls -l` output.
fn named_file(dir: &Path, name: &str) -> std::fs::File {
    let p = dir.join(name);
    std::fs::write(&p, name).unwrap();
    std::fs::File::open(p).unwrap()
}

/// The shell's (the container process's) descriptors, listed by a child `ls`:
/// `fd -> target` for every line of `ls -l /proc/$$/fd`.
const LIST_FDS: &str = "ls -l /proc/$$/fd; exit 0";

fn fds_in(out: &str) -> Vec<(u32, String)> {
    let mut v: Vec<(u32, String)> = out
        .lines()
        .filter_map(|l| {
            let (left, target) = l.split_once(" -> ")?;
            let fd = left.split_whitespace().last()?.parse().ok()?;
            Some((fd, target.trim().to_string()))
        })
        .collect();
    v.sort();
    v
}

fn fd_numbers(out: &str) -> Vec<u32> {
    fds_in(out).into_iter().map(|(fd, _)| fd).collect()
}

#[test]
fn run_passes_only_stdio_and_the_preserved_fds() {
    let files = tempfile::tempdir().unwrap();
    let (a, b_) = (named_file(files.path(), "fd-a"), named_file(files.path(), "fd-b"));
    let b = Bundle::new(&["sh", "-c", LIST_FDS]);
    let runc = Runc::new();
    let log = files.path().join("runtime.log");
    for (preserve, want) in [(None, vec![0, 1, 2]), (Some("1"), vec![0, 1, 2, 3]), (Some("100"), vec![0, 1, 2, 3, 4])] {
        let id = unique_id("fds-run");
        runc.track(&id);
        let mut cmd = runc.cmd();
        // --log: a descriptor of the runtime's own, opened early (it must not leak).
        cmd.arg("--log").arg(&log).args(["run", "--bundle", b.path().to_str().unwrap()]);
        if let Some(n) = preserve {
            cmd.args(["--preserve-fds", n]);
        }
        cmd.arg(&id);
        holding(&mut cmd, &[&a, &b_]);
        let o = cmd.output_files();
        assert!(o.status.success(), "{}", stderr(&o));
        let out = stdout(&o);
        assert_eq!(fd_numbers(&out), want, "--preserve-fds {preserve:?}:\n{out}");
        let seen = fds_in(&out);
        if want.len() > 3 {
            assert!(seen[3].1.ends_with("/fd-a"), "{out}");
        }
        if want.len() > 4 {
            assert!(seen[4].1.ends_with("/fd-b"), "{out}");
        }
        assert!(!out.contains("runtime.log"), "the runtime's log file reached the container:\n{out}");
    }
}

#[test]
fn create_start_passes_only_stdio_and_the_preserved_fds() {
    let files = tempfile::tempdir().unwrap();
    let (a, b_) = (named_file(files.path(), "fd-a"), named_file(files.path(), "fd-b"));
    let b = Bundle::new(&["sh", "-c", LIST_FDS]);
    let runc = Runc::new();
    for (preserve, want) in [("0", vec![0, 1, 2]), ("1", vec![0, 1, 2, 3])] {
        let id = unique_id("fds-create");
        runc.track(&id);
        // The container's stdout is a pipe: reading it to EOF waits for the process.
        let (mut r, w) = std::io::pipe().unwrap();
        let mut cmd = runc.cmd();
        cmd.args(["create", "--preserve-fds", preserve, "--bundle", b.path().to_str().unwrap(), &id])
            .stdout(w)
            .stderr(Stdio::null());
        holding(&mut cmd, &[&a, &b_]);
        assert!(cmd.status().unwrap().success(), "create {id}");
        drop(cmd);
        runc.ok(&["start", &id]);
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        assert_eq!(fd_numbers(&out), want, "--preserve-fds {preserve}:\n{out}");
        runc.ok(&["delete", "--force", &id]);
    }
}

#[test]
fn exec_passes_only_stdio_and_the_preserved_fds() {
    let files = tempfile::tempdir().unwrap();
    let (a, b_) = (named_file(files.path(), "fd-a"), named_file(files.path(), "fd-b"));
    let b = Bundle::new(&["sleep", "300"]);
    let runc = Runc::new();
    let id = unique_id("fds-exec");
    runc.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    for (preserve, want) in [("0", vec![0, 1, 2]), ("1", vec![0, 1, 2, 3])] {
        let mut cmd = runc.cmd();
        cmd.args(["exec", "--preserve-fds", preserve, &id, "sh", "-c", LIST_FDS]);
        holding(&mut cmd, &[&a, &b_]);
        let o = cmd.output_files();
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(fd_numbers(&stdout(&o)), want, "exec --preserve-fds {preserve}:\n{}", stdout(&o));
    }
    runc.ok(&["delete", "--force", &id]);
}

#[test]
fn listen_fds_come_first_then_the_preserved_ones() {
    let files = tempfile::tempdir().unwrap();
    let (l, p, extra) =
        (named_file(files.path(), "listen"), named_file(files.path(), "preserved"), named_file(files.path(), "extra"));
    let b = Bundle::new(&["sh", "-c", "ls -l /proc/$$/fd; echo LISTEN=$LISTEN_FDS:$LISTEN_PID"]);
    let runc = Runc::new();
    let id = unique_id("listen");
    runc.track(&id);
    // LISTEN_PID must be the runtime's pid: the shell sets it and execs the runtime.
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", "export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$0\" \"$@\"", bin()])
        .arg("--root")
        .arg(runc.root.path())
        .args(["run", "--preserve-fds", "1", "--bundle", b.path().to_str().unwrap(), &id])
        .stdin(Stdio::null());
    holding(&mut cmd, &[&l, &p, &extra]);
    let o = cmd.output_files();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let seen = fds_in(&out);
    assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4], "{out}");
    assert!(seen[3].1.ends_with("/listen") && seen[4].1.ends_with("/preserved"), "{out}");
    assert!(out.contains("LISTEN=1:1"), "{out}");
}

#[test]
fn hooks_get_only_stdio() {
    let files = tempfile::tempdir().unwrap();
    let a = named_file(files.path(), "fd-a");
    let mut b = Bundle::new(&["true"]);
    // The hook fails on purpose: its output (the listing) is then in the error.
    b.config["hooks"] = json!({"prestart": [
        {"path": "/bin/sh", "args": ["sh", "-c", "echo BEGIN; ls -l /proc/$$/fd; exit 3"]}
    ]});
    b.write();
    let runc = Runc::new();
    let id = unique_id("hookfds");
    runc.track(&id);
    let mut cmd = runc.cmd();
    cmd.args(["run", "--preserve-fds", "1", "--bundle", b.path().to_str().unwrap(), &id]);
    holding(&mut cmd, &[&a]);
    let o = cmd.output_files();
    assert!(!o.status.success());
    // The message is quoted on one line: undo the escaped newlines.
    let err = stderr(&o).replace("\\n", "\n");
    let listing = err.split_once("BEGIN").unwrap_or_else(|| panic!("{err}")).1;
    assert_eq!(fd_numbers(listing), vec![0, 1, 2], "{listing}");
}

// ---------------------------------------------------------------------------
// 3. Loopback: up in a new network namespace, untouched in a joined one.

/// `lo`'s flags and what connecting to a closed port on 127.0.0.1 says.
const LO_PROBE: &str = "cat /sys/class/net/lo/flags; nc 127.0.0.1 1 </dev/null; exit 0";

#[test]
fn loopback_is_up_in_a_new_network_namespace() {
    let b = Bundle::new(&["sh", "-c", LO_PROBE]);
    let runc = Runc::new();
    let (code, out, err) = runc.run(&b, &unique_id("lo"));
    assert_eq!(code, 0, "{err}");
    let flags = u32::from_str_radix(out.trim().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & libc::IFF_UP as u32, libc::IFF_UP as u32, "lo is down: {out}");
    // A closed port answers (refused) instead of "Network is unreachable".
    assert!(err.contains("refused") && !err.contains("unreachable"), "{err}");
}

#[test]
fn loopback_of_a_joined_network_namespace_is_left_alone() {
    // A network namespace of our own, held by a process we start (and end, even on failure).
    let mut holder = KillOnDrop(
        Command::new("unshare")
            .args(["--net", "sh", "-c", "echo ready; exec sleep 300"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = [0u8; 6];
    holder.0.stdout.as_mut().unwrap().read_exact(&mut line).unwrap();
    assert_eq!(&line, b"ready\n");
    let path = format!("/proc/{}/ns/net", holder.0.id());
    let mut b = Bundle::new(&["sh", "-c", LO_PROBE]);
    for ns in b.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if ns["type"] == "network" {
            ns["path"] = json!(path);
        }
    }
    b.write();
    let runc = Runc::new();
    let (code, out, err) = runc.run(&b, &unique_id("lojoin"));
    drop(holder);
    assert_eq!(code, 0, "{err}");
    let flags = u32::from_str_radix(out.trim().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & libc::IFF_UP as u32, 0, "a joined namespace's lo was changed: {out}");
    assert!(err.contains("unreachable"), "{err}");
}

/// A child process killed (by its pid) and reaped when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------
// 4. Recursive mount attributes reach the submounts of an rbind.

/// A tmpfs mounted on the host for one test, unmounted when dropped.
struct HostMount(std::path::PathBuf);

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn recursive_mount_attributes_reach_submounts() {
    let src = tempfile::Builder::new().prefix("runc-rattr-").tempdir().unwrap();
    let sub = src.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    nix::mount::mount(Some("tmpfs"), &sub, Some("tmpfs"), nix::mount::MsFlags::empty(), Some("size=1m")).unwrap();
    let _guard = HostMount(sub.clone());
    std::fs::write(sub.join("exe"), "#!/bin/sh\necho ran\n").unwrap();
    std::fs::set_permissions(sub.join("exe"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("exe", sub.join("link")).unwrap();
    let opts = ["rro", "rnosuid", "rnodev", "rnoexec", "rnodiratime", "rnoatime", "rstrictatime", "rnosymfollow"];
    let script = "grep ' /m/' /proc/self/mountinfo; \
                  touch /m/rro/sub/new 2>&1 || echo ro-refused; \
                  /m/rnoexec/sub/exe 2>&1 || echo exec-refused; \
                  cat /m/rnosymfollow/sub/link >/dev/null 2>&1 || echo symlink-refused; \
                  cat /m/rstrictatime/sub/link >/dev/null && echo plain-symlink-ok";
    let mut b = Bundle::new(&["sh", "-c", script]);
    for o in opts {
        b.config["mounts"].as_array_mut().unwrap().push(json!({
            "destination": format!("/m/{o}"), "type": "bind", "source": src.path(), "options": ["rbind", o]
        }));
    }
    b.write();
    let runc = Runc::new();
    let out = runc.run_ok(&b, &unique_id("rattr"));
    // The per-mount options (field 6) of the submount under each destination.
    let sub_opts = |o: &str| -> Vec<String> {
        let line = out
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(&format!("/m/{o}/sub")))
            .unwrap_or_else(|| panic!("/m/{o}/sub not mounted:\n{out}"));
        line.split(' ').nth(5).unwrap().split(',').map(String::from).collect()
    };
    let has = |o: &str, flag: &str| sub_opts(o).iter().any(|f| f == flag);
    assert!(has("rro", "ro"), "{:?}", sub_opts("rro"));
    assert!(has("rnosuid", "nosuid"), "{:?}", sub_opts("rnosuid"));
    assert!(has("rnodev", "nodev"), "{:?}", sub_opts("rnodev"));
    assert!(has("rnoexec", "noexec"), "{:?}", sub_opts("rnoexec"));
    assert!(has("rnodiratime", "nodiratime"), "{:?}", sub_opts("rnodiratime"));
    assert!(has("rnoatime", "noatime"), "{:?}", sub_opts("rnoatime"));
    assert!(has("rnosymfollow", "nosymfollow"), "{:?}", sub_opts("rnosymfollow"));
    // strictatime shows as neither relatime nor noatime (the tmpfs started relatime).
    assert!(!has("rstrictatime", "relatime") && !has("rstrictatime", "noatime"), "{:?}", sub_opts("rstrictatime"));
    // Each attribute is on its own mount only: the rro one is not nosuid, etc.
    assert!(!has("rnosuid", "ro") && !has("rro", "nosuid") && has("rro", "relatime"), "{out}");
    // And they hold for what the container does.
    for want in ["ro-refused", "exec-refused", "symlink-refused", "plain-symlink-ok"] {
        assert!(out.contains(want), "{want}:\n{out}");
    }
    // The host's own submount is unchanged.
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = host.lines().find(|l| l.split(' ').nth(4) == sub.to_str()).unwrap();
    assert!(line.split(' ').nth(5).unwrap().starts_with("rw,relatime"), "{line}");
    assert!(mounts_under(b.path()).is_empty());
}

// ---------------------------------------------------------------------------
// 5. exec --ignore-paused and exec --env overriding the process's env.

#[test]
fn exec_env_overrides_the_process_env() {
    let mut b = Bundle::new(&["sleep", "300"]);
    b.config["process"]["env"].as_array_mut().unwrap().push(json!("FOO=from-spec"));
    b.write();
    let runc = Runc::new();
    let id = unique_id("execenv");
    runc.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    // The environment exactly as the process got it (no shell in between, which
    // would keep only the last of two FOO entries).
    let out = runc.ok(&["exec", "--env", "FOO=from-cli", "-e", "BAR=new", &id, "cat", "/proc/self/environ"]);
    let env: Vec<&str> = out.split('\0').filter(|v| !v.is_empty()).collect();
    let foo: Vec<&&str> = env.iter().filter(|v| v.starts_with("FOO=")).collect();
    assert_eq!(foo, [&"FOO=from-cli"], "{env:?}");
    assert!(env.contains(&"BAR=new"), "{env:?}");
    runc.ok(&["delete", "--force", &id]);
}

#[test]
fn exec_ignore_paused_runs_once_resumed() {
    let b = Bundle::new(&["sleep", "300"]);
    let runc = Runc::new();
    let id = unique_id("paused");
    runc.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    // Accepted on a running container.
    assert_eq!(runc.ok(&["exec", "--ignore-paused", &id, "echo", "running"]), "running\n");
    runc.ok(&["pause", &id]);
    let o = runc.exec(&["exec", &id, "true"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--ignore-paused") && stderr(&o).contains("error"), "{}", stderr(&o));
    let pid_file = b.path().join("exec.pid");
    runc.ok(&[
        "exec",
        "--ignore-paused",
        "--detach",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
        "sh",
        "-c",
        "echo done > /tmp/paused-exec",
    ]);
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    let pidfd = nix::unistd::Pid::from_raw(pid);
    // Frozen with the container: it has not run yet.
    assert!(!b.rootfs().join("tmp/paused-exec").exists(), "the process ran in a paused container");
    assert!(pid_alive(pidfd.as_raw()));
    runc.ok(&["resume", &id]);
    assert!(wait_pid_exit(pid, Duration::from_secs(20)), "exec'd process {pid} did not finish after resume");
    assert_eq!(std::fs::read_to_string(b.rootfs().join("tmp/paused-exec")).unwrap(), "done\n");
    runc.ok(&["delete", "--force", &id]);
}

/// Wait (poll on a pidfd, no sleeps) until `pid` exits; false after `limit`.
fn wait_pid_exit(pid: i32, limit: Duration) -> bool {
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};
    // SAFETY: pidfd_open with a pid and no flags.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return !pid_alive(pid);
    }
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut fds = [nix::poll::PollFd::new(fd.as_fd(), nix::poll::PollFlags::POLLIN)];
    let ms = nix::poll::PollTimeout::try_from(limit.as_millis() as i32).unwrap();
    matches!(nix::poll::poll(&mut fds, ms), Ok(n) if n > 0)
}

// ---------------------------------------------------------------------------
// 6. startContainer hooks without an env of their own see the process's env.

#[test]
fn start_container_hook_sees_the_process_env() {
    let mut b = Bundle::new(&["true"]);
    b.config["process"]["env"].as_array_mut().unwrap().push(json!("FOO=from-process"));
    b.config["hooks"] = json!({"startContainer": [
        {"path": "/bin/sh", "args": ["sh", "-c", "echo \"FOO=$FOO PATH=$PATH\" > /hook-default"]},
        {"path": "/bin/sh", "args": ["sh", "-c", "echo \"FOO=$FOO BAR=$BAR\" > /hook-own"], "env": ["BAR=own"]}
    ]});
    b.write();
    let runc = Runc::new();
    runc.run_ok(&b, &unique_id("hookenv"));
    let default = std::fs::read_to_string(b.rootfs().join("hook-default")).unwrap();
    assert!(default.starts_with("FOO=from-process PATH=/"), "{default}");
    assert_eq!(std::fs::read_to_string(b.rootfs().join("hook-own")).unwrap(), "FOO= BAR=own\n");
}

// ---------------------------------------------------------------------------
// 7. A config without a mount namespace.

fn without_mount_namespace(b: &mut Bundle) {
    b.config["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "mount");
}

#[test]
fn no_mount_namespace_runs_chrooted_in_the_hosts_mount_table() {
    let mut b = Bundle::new(&["sleep", "300"]);
    without_mount_namespace(&mut b);
    b.config["mounts"] = json!([]);
    b.config["linux"]["maskedPaths"] = json!([]);
    b.config["linux"]["readonlyPaths"] = json!([]);
    b.write();
    std::fs::write(b.rootfs().join("marker"), "in the rootfs\n").unwrap();
    let runc = Runc::new();
    let id = unique_id("nomntns");
    let cg = b.cgroup_for(&id);
    runc.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    let pid = runc.state(&id)["pid"].as_i64().unwrap();
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap(),
        std::fs::read_link("/proc/self/ns/mnt").unwrap(),
        "shares the host's mount namespace"
    );
    assert_eq!(std::fs::read_link(format!("/proc/{pid}/root")).unwrap(), b.rootfs().canonicalize().unwrap());
    // exec'd processes are chrooted the same way.
    assert_eq!(runc.ok(&["exec", &id, "cat", "/marker"]), "in the rootfs\n");
    assert!(mounts_under(b.path()).is_empty(), "mounted on the host: {:?}", mounts_under(b.path()));
    runc.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&runc, &id, &b, Some(&cg));
}

#[test]
fn no_mount_namespace_with_mounts_is_refused_with_the_reason() {
    let mut b = Bundle::new(&["true"]);
    without_mount_namespace(&mut b);
    b.write();
    let runc = Runc::new();
    let id = unique_id("nomntns-bad");
    let cg = b.cgroup_for(&id);
    let o = runc.exec(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("mount namespace") && err.contains("mounts") && err.contains("maskedPaths"), "{err}");
    assert!(err.contains("error"), "{err}");
    assert_no_leftovers(&runc, &id, &b, Some(&cg));
}

// ---------------------------------------------------------------------------
// 8. Every failing command says "error" on stderr, as runc does.

#[test]
fn failing_commands_say_error_in_every_log_format() {
    let runc = Runc::new();
    let b = Bundle::new(&["true"]);
    std::fs::write(b.path().join("config.json"), "{ not json").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let failing: Vec<Vec<&str>> = vec![
        vec!["state", "nope"],
        vec!["start", "nope"],
        vec!["kill", "nope", "KILL"],
        vec!["delete", "nope"],
        vec!["pause", "nope"],
        vec!["exec", "nope", "true"],
        vec!["create", "--bundle", b.path().to_str().unwrap(), "badcfg"],
        vec!["exec", "--no-such-flag", "nope", "true"],
    ];
    for (i, args) in failing.iter().enumerate() {
        let log = dir.path().join(format!("log-{i}.json"));
        let log = log.to_str().unwrap();
        for global in [vec![], vec!["--log-format", "json"], vec!["--log", log, "--log-format", "json"]] {
            let all: Vec<&str> = global.iter().chain(args.iter()).copied().collect();
            let o = runc.exec(&all);
            assert!(!o.status.success(), "{all:?}");
            let err = stderr(&o);
            assert!(err.contains("error"), "{all:?}: stderr {err:?}");
        }
        if !args.contains(&"--no-such-flag") {
            let logged = std::fs::read_to_string(log).unwrap();
            let rec: serde_json::Value = serde_json::from_str(logged.lines().last().unwrap()).unwrap();
            assert_eq!(rec["level"], "error", "{logged}");
        }
    }
    // Text form on stderr, as runc's: time="..." level=error msg="...".
    let err = stderr(&runc.exec(&["state", "nope"]));
    assert!(err.starts_with("time=\"") && err.contains(" level=error msg=\"container does not exist"), "{err}");
    // JSON form with --log-format json.
    let err = stderr(&runc.exec(&["--log-format", "json", "state", "nope"]));
    let rec: serde_json::Value = serde_json::from_str(err.trim()).unwrap();
    assert_eq!(rec["level"], "error");
    assert!(rec["msg"].as_str().unwrap().contains("does not exist"), "{rec}");
}

// ---------------------------------------------------------------------------
// 9. Without cgroupsPath the cgroup is where runc puts it: <own cgroup>/<id>.

/// `/proc/<pid>/cgroup` as (hierarchy controllers, path).
fn cgroups_of(pid: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _ = it.next()?;
            Some((it.next()?.to_string(), it.next()?.to_string()))
        })
        .collect()
}

/// Deletes a runc container when dropped.
struct RuncContainer<'a> {
    root: &'a Path,
    id: String,
}

impl Drop for RuncContainer<'_> {
    fn drop(&mut self) {
        let _ = Command::new("/usr/sbin/runc")
            .arg("--root")
            .arg(self.root)
            .args(["delete", "--force", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn default_cgroup_path_is_runcs() {
    let mut b = Bundle::new(&["sleep", "300"]);
    if let Some(l) = b.config["linux"].as_object_mut() {
        l.remove("cgroupsPath");
    }
    b.write();
    let own = cgroups_of("self");
    let runc = Runc::new();
    let id = unique_id("defcg");
    runc.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    let pid = runc.state(&id)["pid"].as_i64().unwrap().to_string();
    let ours = cgroups_of(&pid);
    // runc 1.1.5 on the same bundle, for comparison.
    let runc_root = tempfile::tempdir().unwrap();
    let rid = unique_id("defcg-runc");
    let _guard = RuncContainer { root: runc_root.path(), id: rid.clone() };
    let o = Command::new("/usr/sbin/runc")
        .arg("--root")
        .arg(runc_root.path())
        .args(["run", "-d", "--bundle", b.path().to_str().unwrap(), &rid])
        .stdin(Stdio::null())
        .output_files();
    assert!(o.status.success(), "runc: {}", stderr(&o));
    let state: serde_json::Value = serde_json::from_slice(
        &Command::new("/usr/sbin/runc")
            .arg("--root")
            .arg(runc_root.path())
            .args(["state", &rid])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let theirs = cgroups_of(&state["pid"].as_i64().unwrap().to_string());
    for (ctrl, path) in &ours {
        let base = &own.iter().find(|(c, _)| c == ctrl).unwrap().1;
        assert_eq!(path, &format!("{}/{id}", base.trim_end_matches('/')), "{ctrl}");
        let runcs = &theirs.iter().find(|(c, _)| c == ctrl).unwrap().1;
        assert_eq!(path.replace(&id, "ID"), runcs.replace(&rid, "ID"), "{ctrl}: runc puts it at {runcs}");
    }
    runc.ok(&["delete", "--force", &id]);
    for (ctrl, path) in &ours {
        let dirs = cgroup_dirs(path);
        assert!(dirs.iter().all(|d| !d.exists()), "{ctrl}: cgroup {path} left behind");
    }
}
