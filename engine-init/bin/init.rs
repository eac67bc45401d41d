//! engine-init: a tiny pid 1 for containers (`docker run --init`).
//!
//! It starts the command as its child, forwards every signal it receives to
//! that child, reaps every zombie that is reparented to it, and exits with
//! the child's status (128 + signal when the child was killed). It is built
//! as a static executable (glibc, std only) by this crate's build script, so
//! it runs in any image, and is bind-mounted read-only into the container.
//!
//! Usage: `engine-init [--] command [args...]`.

use std::os::raw::c_int;
use std::os::unix::process::CommandExt;
use std::process::{exit, Command};

/// glibc's `sigset_t` (1024 bits).
#[repr(C)]
struct SigSet([u64; 16]);

/// Large enough for `siginfo_t` (128 bytes); `si_signo` is the first int.
#[repr(C)]
struct SigInfo([c_int; 32]);

extern "C" {
    fn sigfillset(set: *mut SigSet) -> c_int;
    fn sigprocmask(how: c_int, set: *const SigSet, old: *mut SigSet) -> c_int;
    fn sigwaitinfo(set: *const SigSet, info: *mut SigInfo) -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn kill(pid: c_int, sig: c_int) -> c_int;
    fn __errno_location() -> *mut c_int;
    fn prctl(option: c_int, arg2: std::os::raw::c_ulong, ...) -> c_int;
    fn setpgid(pid: c_int, pgid: c_int) -> c_int;
    fn tcsetpgrp(fd: c_int, pgrp: c_int) -> c_int;
    fn getpid() -> c_int;
}

const PR_SET_CHILD_SUBREAPER: c_int = 36;

const SIG_SETMASK: c_int = 2;
const WNOHANG: c_int = 1;
const EINTR: c_int = 4;
const ECHILD: c_int = 10;
// SIGCHLD on x86, x86-64, arm, arm64, riscv, s390, ppc.
const SIGCHLD: c_int = 17;

fn status_code(status: c_int) -> i32 {
    let sig = status & 0x7f;
    if sig == 0 {
        (status >> 8) & 0xff
    } else {
        128 + sig
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--") {
        args.remove(0);
    }
    if args.is_empty() {
        eprintln!("engine-init: usage: engine-init [--] command [args...]");
        exit(2);
    }
    // Block every signal: they are taken with sigwaitinfo below, so pid 1
    // receives them even with no handlers. The child gets an empty mask back.
    // As pid 1 orphans come to it anyway; elsewhere (tests, nested) too.
    unsafe { prctl(PR_SET_CHILD_SUBREAPER, 1) };
    let mut all = SigSet([0; 16]);
    unsafe {
        sigfillset(&mut all);
        if sigprocmask(SIG_SETMASK, &all, std::ptr::null_mut()) != 0 {
            eprintln!("engine-init: sigprocmask: {}", std::io::Error::last_os_error());
            exit(1);
        }
    }
    let mut cmd = Command::new(&args[0]);
    cmd.args(&args[1..]);
    // SAFETY: setpgid, tcsetpgrp, getpid and sigprocmask are async-signal-safe;
    // the closure allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            // Its own process group, in the foreground of the terminal if
            // there is one (SIGTTOU is still blocked here), so a ctrl-c from
            // the terminal reaches it once, not once directly and once forwarded.
            setpgid(0, 0);
            tcsetpgrp(0, getpid());
            let empty = SigSet([0; 16]);
            if sigprocmask(SIG_SETMASK, &empty, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = match cmd.spawn() {
        Ok(c) => c.id() as c_int,
        Err(e) => {
            eprintln!("engine-init: {}: {e}", args[0]);
            exit(if e.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 });
        }
    };
    loop {
        let mut info = SigInfo([0; 32]);
        let sig = unsafe { sigwaitinfo(&all, &mut info) };
        if sig < 0 {
            if unsafe { *__errno_location() } == EINTR {
                continue;
            }
            eprintln!("engine-init: sigwaitinfo: {}", std::io::Error::last_os_error());
            exit(1);
        }
        if sig != SIGCHLD {
            unsafe { kill(child, sig) };
            continue;
        }
        // Reap every exited process; leave once the command itself is gone.
        loop {
            let mut status = 0;
            let pid = unsafe { waitpid(-1, &mut status, WNOHANG) };
            if pid == child {
                exit(status_code(status));
            }
            if pid == 0 {
                break;
            }
            if pid < 0 {
                if unsafe { *__errno_location() } == ECHILD {
                    exit(1);
                }
                break;
            }
        }
    }
}
