//! The CVE-2019-5736 class through the docker CLI, for a container given
//! `--cap-add SYS_PTRACE` (which lets it open `/proc/<pid>/exe`, `root` and
//! `cwd` of the non-dumpable runtime processes that join it for `exec`): a
//! process inside loops over `/proc` while `docker exec` runs, holds a
//! descriptor of every joining process's binary, and tries to write it, at
//! once and after the process is gone, and to reach a host directory
//! through the joining processes' `root` and `cwd`, or a cgroupfs directory
//! through their descriptors. The container runs on a
//! private copy of `engine-runc` (`--add-runtime`), so a breach damages only
//! the copy, whose bytes are checked.

mod common;
use common::*;

#[test]
fn a_ptrace_capable_container_cannot_write_or_escape_through_docker_exec() {
    let bin = tempfile::Builder::new().prefix("runc-bin-").tempdir().unwrap();
    let runc = bin.path().join("engine-runc");
    std::fs::copy(bin_dir().join("engine-runc"), &runc).unwrap();
    let before = std::fs::read(&runc).unwrap();
    let host = tempfile::Builder::new().prefix("host-dir-").tempdir().unwrap();
    std::fs::write(host.path().join("host-secret"), "host").unwrap();
    let host_dir = std::fs::canonicalize(host.path()).unwrap();

    let e = Engined::start_with(&["--add-runtime", &format!("privrunc={}", runc.display())]);
    e.load_busybox();
    e.ok(&["run", "-d", "--name", "atk", "--runtime", "privrunc", "--cap-add", "SYS_PTRACE", "bb", "sleep", "1000"]);
    let racer = include_str!("../../engine-runtime/tests/support/ptrace_racer.sh");
    e.ok(&["exec", "-d", "atk", "sh", "-c", racer, "racer", host_dir.to_str().unwrap()]);
    for _ in 0..30 {
        e.ok(&["exec", "atk", "true"]);
    }
    e.ok(&["exec", "atk", "touch", "/tmp/stop"]);
    let mut log = String::new();
    assert!(
        eventually(60, || {
            let o = e.docker(&["exec", "atk", "cat", "/tmp/race.log"]);
            log = String::from_utf8_lossy(&o.stdout).into_owned();
            log.contains("END")
        }),
        "the racer did not stop within 60 s: {log}"
    );
    for breach in ["ROOT-READ", "ROOT-WRITE", "CWD-READ", "FD-DIR", "OPENED-WRITE", "OPENED-RDWR", "REOPENED-WRITE"] {
        assert!(!log.contains(breach), "{breach}: a container reached the host through docker exec:\n{log}");
    }
    e.ok(&["rm", "-f", "atk"]);
    assert!(std::fs::read(&runc).unwrap() == before, "the runtime binary was modified from inside the container");
    let left: Vec<_> = std::fs::read_dir(&host_dir).unwrap().map(|x| x.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("host-secret")], "something was written in the host directory");
}
