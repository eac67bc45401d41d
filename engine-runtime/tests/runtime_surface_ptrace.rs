//! The CVE-2019-5736 class for a container that holds `CAP_SYS_PTRACE`
//! (`--cap-add SYS_PTRACE`, `--privileged`): the kernel lets such a process
//! open `/proc/<pid>/exe` of a non-dumpable runtime clone, so the
//! non-dumpable flag alone no longer protects the runtime's binary. These
//! tests give the attacker that capability and check that every descriptor it
//! gets leads only to a sealed copy (a read-only mount) and that the host
//! binary is unchanged.

mod common;
use common::*;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn sha256(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).unwrap()))
}

/// `engine-runc` copied into a temp dir, so that the attack can only ever
/// damage this test's own copy, with a state root of its own.
struct PrivateRunc {
    _dir: tempfile::TempDir,
    bin: PathBuf,
    root: tempfile::TempDir,
    ids: Vec<String>,
}

impl PrivateRunc {
    fn new() -> PrivateRunc {
        let dir = tempfile::Builder::new().prefix("runc-bin-").tempdir().unwrap();
        let bin = dir.path().join("engine-runc");
        std::fs::copy(common::bin(), &bin).unwrap();
        let root = tempfile::Builder::new().prefix("runc-root-").tempdir().unwrap();
        PrivateRunc { _dir: dir, bin, root, ids: Vec::new() }
    }
    fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(self.root.path()).args(args).stdin(Stdio::null());
        c.output_files()
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "engine-runc {args:?}: {}{}", stderr(&o), stdout(&o));
        stdout(&o)
    }
    fn create(&mut self, b: &Bundle, id: &str) {
        self.ids.push(id.to_string());
        self.ok(&["create", "--bundle", b.path().to_str().unwrap(), id]);
    }
    fn pid(&self, id: &str) -> i32 {
        let st: serde_json::Value = serde_json::from_str(&self.ok(&["state", id])).unwrap();
        st["pid"].as_i64().unwrap() as i32
    }
}

impl Drop for PrivateRunc {
    fn drop(&mut self) {
        for id in self.ids.iter().rev() {
            let _ = self.run(&["delete", "--force", id]);
        }
    }
}

/// A busybox bundle whose process holds the default capabilities plus `CAP_SYS_PTRACE`.
fn ptrace_bundle(args: &[&str]) -> Bundle {
    let mut b = Bundle::new(args);
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_PTRACE"]);
    b.config["process"]["capabilities"] = json!({ "bounding": caps, "effective": caps, "permitted": caps });
    b.write();
    b
}

/// Wait (bounded) until `path` contains `marker`; its content.
fn wait_for(path: &Path, marker: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = std::fs::read_to_string(path).unwrap_or_default();
        if s.contains(marker) {
            return s;
        }
        assert!(Instant::now() < deadline, "no {marker:?} in {} within 60s: {s}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the process `pid`'s binary (`/proc/<pid>/exe`) is on a read-only
/// mount, from the host's view.
fn exe_on_read_only_mount(pid: i32) -> bool {
    let f = std::fs::File::open(format!("/proc/{pid}/exe")).unwrap();
    let st = nix::sys::statvfs::fstatvfs(&f).unwrap();
    st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY)
}

/// Deterministic: container A (the attacker, with `CAP_SYS_PTRACE`) shares
/// its pid namespace with container B, whose init waits for `start` as a
/// clone of `engine-runc`. The attacker takes a read descriptor of that
/// init's `/proc/<pid>/exe` (which the capability allows), tries to open it
/// for writing directly and through `/proc/self/fd`, and tries again after
/// B's init is gone, when no process runs the binary any more (no `ETXTBSY`
/// to hide behind: the classic attack). Every write must fail and the host
/// binary must be unchanged.
#[test]
fn a_ptrace_capable_container_cannot_write_the_runtime_binary_through_a_clone() {
    let mut runc = PrivateRunc::new();
    let before = sha256(&runc.bin);
    let attacker = r#"
        until [ -e /tmp/go ]; do sleep 0.05; done
        t=$(cat /tmp/go)
        command exec 3</proc/$t/exe 2>/dev/null && echo "READ-FD $t"
        if (echo pwned >> /proc/$t/exe) 2>/dev/null; then echo "OPENED-WRITE"; fi
        if (exec 4<>/proc/$t/exe) 2>/dev/null; then echo "OPENED-RDWR"; fi
        if (echo pwned >> /proc/self/fd/3) 2>/dev/null; then echo "REOPENED-WRITE"; fi
        echo "phase1" > /tmp/log.1; mv /tmp/log.1 /tmp/phase1
        until [ -e /tmp/gone ]; do sleep 0.05; done
        if (echo pwned >> /proc/self/fd/3) 2>/dev/null; then echo "REOPENED-WRITE-AFTER-EXIT"; fi
        if (exec 4<>/proc/self/fd/3) 2>/dev/null; then echo "REOPENED-RDWR-AFTER-EXIT"; fi
        if cat /proc/self/fd/3 > /tmp/copy 2>/dev/null; then echo "READ $(wc -c < /tmp/copy)"; fi
        echo END
    "#;
    let mut a = ptrace_bundle(&["sh", "-c", &format!("( {attacker} ) > /tmp/log 2>&1; sleep 1000")]);
    let id_a = unique_id("ptrace-a");
    let _cg_a = a.cgroup_for(&id_a);
    runc.create(&a, &id_a);
    runc.ok(&["start", &id_a]);
    let pid_a = runc.pid(&id_a);

    let mut b = Bundle::new(&["sleep", "1000"]);
    let id_b = unique_id("ptrace-b");
    let _cg_b = b.cgroup_for(&id_b);
    let ns = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    ns.retain(|n| n["type"] != "pid");
    ns.push(json!({ "type": "pid", "path": format!("/proc/{pid_a}/ns/pid") }));
    b.write();
    runc.create(&b, &id_b);
    let init_b = runc.pid(&id_b);
    assert!(exe_on_read_only_mount(init_b), "B's waiting init does not run from a read-only copy of engine-runc");
    // B's init, as seen in A's pid namespace.
    let status = std::fs::read_to_string(format!("/proc/{init_b}/status")).unwrap();
    let ns_pid = status.lines().find_map(|l| l.strip_prefix("NSpid:")).unwrap();
    let inner: i32 = ns_pid.split_whitespace().last().unwrap().parse().unwrap();
    let rootfs_a = a.rootfs();
    // Written whole before it appears (the attacker reads it as soon as it exists).
    std::fs::write(rootfs_a.join("tmp/go.part"), inner.to_string()).unwrap();
    std::fs::rename(rootfs_a.join("tmp/go.part"), rootfs_a.join("tmp/go")).unwrap();
    wait_for(&rootfs_a.join("tmp/phase1"), "phase1");
    runc.ok(&["delete", "--force", &id_b]);
    runc.ids.retain(|i| i != &id_b);
    assert!(!pid_alive(init_b), "B's init outlived delete --force");
    std::fs::write(rootfs_a.join("tmp/gone"), "").unwrap();
    let log = wait_for(&rootfs_a.join("tmp/log"), "END");
    assert!(log.contains(&format!("READ-FD {inner}")), "the attacker never got the descriptor to attack:\n{log}");
    for breach in ["OPENED-WRITE", "OPENED-RDWR", "REOPENED-WRITE", "REOPENED-RDWR"] {
        assert!(!log.contains(breach), "{breach}: the runtime binary was opened for writing:\n{log}");
    }
    let size = std::fs::metadata(&runc.bin).unwrap().len();
    assert!(log.contains(&format!("READ {size}")), "the descriptor was not the runtime binary:\n{log}");
    assert_eq!(sha256(&runc.bin), before, "the host's engine-runc was modified from inside the container");
}

/// Every command that clones into a container runs from the sealed copy; the
/// others run the host binary unchanged.
#[test]
fn container_building_commands_run_from_a_read_only_copy() {
    let mut runc = PrivateRunc::new();
    let mut b = Bundle::new(&["sleep", "1000"]);
    let id = unique_id("sealed");
    let _cg = b.cgroup_for(&id);
    runc.create(&b, &id);
    let init = runc.pid(&id);
    assert!(exe_on_read_only_mount(init), "the init of `create` runs the writable host binary");
    // The copy is the same file, seen through a mount nobody can reach:
    // the host path is untouched and still writable by its owner.
    assert!(!nix::sys::statvfs::statvfs(runc.bin.as_path())
        .unwrap()
        .flags()
        .contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = runc.bin.parent().unwrap().to_str().unwrap();
    assert!(!mounts.contains(dir), "the sealed copy appears in the host's mount table:\n{mounts}");
    runc.ok(&["delete", "--force", &id]);
    runc.ids.clear();
}

/// The racer the test below runs inside the container (shared by path with
/// engined's `docker exec` attack test).
const RACER: &str = include_str!("support/ptrace_racer.sh");

/// Racing, as `docker exec` runs: a process with `CAP_SYS_PTRACE` loops over
/// `/proc` while 100 `exec`s join the container. It takes a descriptor of
/// every joining process's binary and tries to write it directly, through
/// `/proc/<pid>/exe` opened read-write, and through `/proc/self/fd` both at
/// once and after the joining process has gone; it tries to read and write
/// a host directory through each joining process's `/proc/<pid>/root` and
/// `/proc/<pid>/cwd` (the runtime runs with its working directory there), and
/// looks for host or cgroupfs directories among its descriptors. The binary
/// is a read-only copy, and the joining process is born inside the
/// container's mount namespace holding no host directory: no write may
/// succeed, no host file may be read, the binary and the directory stay as
/// they were.
#[test]
fn a_ptrace_capable_container_never_reaches_the_host_through_a_joining_process() {
    let mut runc = PrivateRunc::new();
    let before = sha256(&runc.bin);
    let host = tempfile::Builder::new().prefix("host-dir-").tempdir().unwrap();
    std::fs::write(host.path().join("host-secret"), "host").unwrap();
    let host_dir = std::fs::canonicalize(host.path()).unwrap();
    let mut b = ptrace_bundle(&["sleep", "1000"]);
    let id = unique_id("ptrace-r");
    let _cg = b.cgroup_for(&id);
    runc.create(&b, &id);
    runc.ok(&["start", &id]);
    runc.ok(&["exec", "--detach", &id, "sh", "-c", RACER, "racer", host_dir.to_str().unwrap()]);
    for _ in 0..100 {
        let mut c = Command::new(&runc.bin);
        c.arg("--root").arg(runc.root.path()).args(["exec", &id, "true"]).current_dir(&host_dir);
        let o = c.stdin(Stdio::null()).output_files();
        assert!(o.status.success(), "exec true: {}", stderr(&o));
    }
    std::fs::write(b.rootfs().join("tmp/stop"), "").unwrap();
    let log = wait_for(&b.rootfs().join("tmp/race.log"), "END");
    for breach in ["ROOT-READ", "ROOT-WRITE", "CWD-READ", "FD-DIR", "OPENED-WRITE", "OPENED-RDWR", "REOPENED-WRITE"] {
        assert!(!log.contains(breach), "{breach}: the host was reached through a joining process:\n{log}");
    }
    assert_eq!(sha256(&runc.bin), before, "the host's engine-runc was modified from inside the container");
    let left: Vec<_> = std::fs::read_dir(&host_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("host-secret")], "something was written in the host directory");
}
