//! `LinuxRuntime` creating a container in-process, as the single-threaded
//! shim does (no `engine-runc` process): the container process gets only its
//! stdio, none of the caller's other descriptors, and `lo` is up in its new
//! network namespace. A plain `main` (no test harness threads), since the
//! in-process path is only taken by a single-threaded caller.

mod common;
use common::*;
use engine_core::{ContainerId, CreateOptions, Runtime, StdioSpec};
use std::io::Read;
use std::os::fd::AsRawFd;

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(in_process_create_keeps_fds_and_brings_lo_up());
    println!("test in_process_create_keeps_fds_and_brings_lo_up ... ok");
}

async fn in_process_create_keeps_fds_and_brings_lo_up() {
    let mut b = Bundle::new(&["sh", "-c", "ls -l /proc/$$/fd; cat /sys/class/net/lo/flags; exit 0"]);
    let id = unique_id("inproc");
    let cg = b.cgroup_for(&id);
    let runc = Runc::new();
    runc.track(&id);
    // A descriptor of the caller's that is not close-on-exec (as a careless
    // embedder might hold): it must not reach the container.
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("callers-own"), "x").unwrap();
    let leak = std::fs::File::open(files.path().join("callers-own")).unwrap();
    // SAFETY: fcntl on a descriptor we own.
    assert_eq!(unsafe { libc::fcntl(leak.as_raw_fd(), libc::F_SETFD, 0) }, 0);
    let (mut out_r, out_w) = std::io::pipe().unwrap();
    let runtime = engine_runtime::LinuxRuntime::with_binary(bin()).root(runc.root.path());
    let cid = ContainerId::new(&id).unwrap();
    let opts = CreateOptions::default().stdio(StdioSpec { stdout: Some(out_w.into()), ..Default::default() });
    let pid = runtime.create(&cid, b.path(), opts).await.unwrap();
    // In-process: the init is this process's child, not a (gone) engine-runc's.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ppid: u32 = stat.rsplit_once(')').unwrap().1.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(ppid, std::process::id(), "the container was not created in-process");
    // The waiting init is a clone of this process (as it is of the shim):
    // a process joined into the container cannot open its binary.
    let o = runc.exec(&["exec", &id, "sh", "-c", "cat /proc/1/comm; cat /proc/1/exe >/dev/null && echo OPENED; true"]);
    let seen = stdout(&o);
    assert!(o.status.success() && seen.starts_with("engine-init"), "exec: {seen} {}", stderr(&o));
    assert!(!seen.contains("OPENED"), "a process in the container opened the creating binary: {seen}");
    runtime.start(&cid).await.unwrap();
    let mut out = String::new();
    out_r.read_to_string(&mut out).unwrap();
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
    assert!(matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0)), "{status:?}: {out}");
    let fds: Vec<u32> = out
        .lines()
        .filter_map(|l| l.split_once(" -> ").and_then(|(left, _)| left.split_whitespace().last()?.parse().ok()))
        .collect();
    assert_eq!(fds, vec![0, 1, 2], "descriptors in the container:\n{out}");
    assert!(!out.contains("callers-own"), "{out}");
    let flags = out.lines().last().unwrap();
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & libc::IFF_UP as u32, libc::IFF_UP as u32, "lo is down:\n{out}");
    runtime.delete(&cid, true).await.unwrap();
    assert_no_leftovers(&runc, &id, &b, Some(&cg));
}
