//! The code that runs in the cloned child: the container's init (after
//! `create`) or an exec'd process. Every error goes back to the parent over
//! the sync socket, with its message, before anything is reported created.

use super::namespaces::{self, NsPlan};
use super::process::ProcPlan;
use super::rootfs::{self, RootfsPlan};
use super::sync::{Msg, SyncSocket};
use super::syscall::LinuxSyscall;
use crate::seccomp::Filter;
use engine_core::Error;
use nix::sched::CloneFlags;
use oci_spec::runtime::{Hook, LinuxNamespaceType};
use std::os::fd::{AsRawFd, RawFd};

/// How the init waits for `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartGate {
    /// Open `exec.fifo` (an `O_PATH` fd) for writing: blocks until `start` reads it.
    Fifo(RawFd),
    /// Wait for [`Msg::Start`] on the sync socket (`run`).
    Sync,
    /// Exec right after `Ready` (exec'd processes).
    None,
}

/// Everything the child needs; built by the parent before clone.
pub(crate) struct InitCtx<'a> {
    /// The cgroup's v1 `tasks` files to join by writing `0` (see [`crate::cgroups::SelfJoin`]).
    pub cgroup: Option<&'a crate::cgroups::SelfJoin>,
    pub ns: &'a NsPlan,
    /// The parent already joined `ns.join` (all but pid and user) before clone.
    pub joined_by_parent: bool,
    /// Namespaces to join by fd (exec), in order; user first, mount last.
    pub exec_joins: &'a [namespaces::Join],
    /// The container's root to chroot into after the joins (exec into a
    /// container without a mount namespace of its own, whose init is chrooted).
    pub exec_root: Option<RawFd>,
    pub rootfs: Option<&'a RootfsPlan>,
    pub proc: &'a ProcPlan,
    pub hostname: Option<&'a str>,
    pub domainname: Option<&'a str>,
    pub sysctl: &'a [(String, String)],
    pub seccomp: Option<&'a Filter>,
    pub gate: StartGate,
    pub console: Option<RawFd>,
    /// Descriptors to make our 0, 1, 2 (`None`: `/dev/null`), see `CreateOpts::stdio`.
    pub stdio: Option<[Option<RawFd>; 3]>,
    /// Runtime-side hooks exist: stop before pivot_root and let the parent run them.
    pub runtime_hooks: bool,
    pub create_container_hooks: Option<&'a Vec<Hook>>,
    pub start_container_hooks: Option<&'a Vec<Hook>>,
    pub preserve_fds: u32,
    /// `linux.personality`, as the value for personality(2).
    pub personality: Option<libc::c_ulong>,
    /// Join a new session keyring named after the container.
    pub keyring: bool,
    /// The container id (for the keyring name).
    pub id: &'a str,
    /// Detached clones of the runtime's shared directories to attach (closed after use).
    pub trees: super::shared::RawTrees,
}

/// The child's entry point: never returns.
pub(crate) fn main(ctx: &InitCtx<'_>, sync: &SyncSocket) -> ! {
    let code = match run(ctx, sync) {
        Ok(never) => match never {},
        Err(Stop::Quiet) => 1,
        Err(Stop::Failed(e)) => {
            // If the parent is gone there is nobody to tell; stderr is the best left.
            if sync.send(&Msg::Error(e.to_string())).is_err() {
                eprintln!("engine-runc init: error: {e}");
            }
            1
        }
        Err(Stop::AfterReady(e)) => {
            eprintln!("engine-runc init: error: {e}");
            127
        }
    };
    // SAFETY: leaving the child without running the parent's atexit handlers.
    unsafe { libc::_exit(code) }
}

enum Stop {
    /// The parent told us to stop (or went away).
    Quiet,
    /// A setup error to report.
    Failed(Error),
    /// An error after `Ready`: the parent is gone, only stderr is left.
    AfterReady(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Failed(e)
    }
}

/// Make `fds` our stdin, stdout and stderr. Each is first copied above 2,
/// so that a source that already is one of 0-2 is not overwritten early.
fn set_stdio(fds: [Option<RawFd>; 3]) -> Result<(), Error> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| Error::io("open /dev/null for the init's stdio", e))?;
    let mut high = [-1; 3];
    for (i, fd) in fds.iter().enumerate() {
        let src = fd.unwrap_or(null.as_raw_fd());
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) on a descriptor we hold.
        high[i] = unsafe { libc::fcntl(src, libc::F_DUPFD_CLOEXEC, 3) };
        if high[i] < 0 {
            return Err(Error::io("copy the init's stdio", std::io::Error::last_os_error()));
        }
    }
    for (target, src) in high.iter().enumerate() {
        // SAFETY: dup2 of a descriptor we just made onto 0, 1 or 2 (the copy is not CLOEXEC).
        if unsafe { libc::dup2(*src, target as RawFd) } < 0 {
            return Err(Error::io("set the init's stdio", std::io::Error::last_os_error()));
        }
        // SAFETY: closing our own temporary copy.
        unsafe { libc::close(*src) };
    }
    Ok(())
}

fn errno(what: &str, e: nix::Error) -> Error {
    Error::io(what.to_string(), e.into())
}

fn run(ctx: &InitCtx<'_>, sync: &SyncSocket) -> std::result::Result<std::convert::Infallible, Stop> {
    // Name the waiting init so `ps` tells it from a runtime process.
    // SAFETY: PR_SET_NAME with a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"engine-init".as_ptr(), 0, 0, 0) };
    if let Some(fds) = ctx.stdio {
        set_stdio(fds)?;
    }
    // A caller's blocked signals must not leak into the container.
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
    // 1. Wait until the parent has joined us to the cgroup and written the id maps.
    match sync.recv()? {
        Some(Msg::Go) => {}
        _ => return Err(Stop::Quiet),
    }
    // Join the v1 hierarchies ourselves: cheaper than being moved (no wait
    // for an RCU grace period), and we are single-threaded.
    if let Some(join) = ctx.cgroup {
        join.join_v1()?;
    }
    let sys = LinuxSyscall;
    let proc = ctx.proc;

    // 2. Namespaces: join by path (user first), become root in a new user ns, then a new cgroup ns.
    for j in ctx.ns.join.iter().filter(|j| j.typ == LinuxNamespaceType::User) {
        namespaces::setns(j)?;
    }
    if !ctx.joined_by_parent {
        for j in ctx.ns.join.iter().filter(|j| !matches!(j.typ, LinuxNamespaceType::User | LinuxNamespaceType::Pid)) {
            namespaces::setns(j)?;
        }
    }
    for j in ctx.exec_joins.iter().filter(|j| j.typ != LinuxNamespaceType::Pid) {
        namespaces::setns(j)?;
    }
    if let Some(fd) = ctx.exec_root {
        // SAFETY: fd is an open O_PATH directory descriptor the parent holds for us.
        let dir = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        nix::unistd::fchdir(dir).map_err(|e| errno("enter the container's root", e))?;
        nix::unistd::chroot(".").map_err(|e| errno("chroot into the container's root", e))?;
    }
    let userns = ctx.ns.new.contains(CloneFlags::CLONE_NEWUSER)
        || ctx.exec_joins.iter().any(|j| j.typ == LinuxNamespaceType::User);
    if userns {
        let root_g = nix::unistd::Gid::from_raw(0);
        let root_u = nix::unistd::Uid::from_raw(0);
        nix::unistd::setresgid(root_g, root_g, root_g).map_err(|e| errno("setgid 0 in the user namespace", e))?;
        nix::unistd::setresuid(root_u, root_u, root_u).map_err(|e| errno("setuid 0 in the user namespace", e))?;
    }
    // The parent joins us to the cgroup while we set up; wait for that before
    // anything that depends on it (cgroup namespace, cgroup mounts, hooks, exec).
    let mut joined = false;
    let mut join_cgroup = || -> Result<(), Error> {
        if joined {
            return Ok(());
        }
        match sync.recv()? {
            Some(Msg::CgroupJoined) => {}
            other => return Err(Error::Other(format!("sync: expected the cgroup join, got {other:?}"))),
        }
        joined = true;
        if ctx.ns.new.contains(CloneFlags::CLONE_NEWCGROUP) {
            nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).map_err(|e| errno("unshare the cgroup namespace", e))?;
        }
        Ok(())
    };
    // A network namespace of our own (not one joined by path) starts with lo down.
    if ctx.ns.new.contains(CloneFlags::CLONE_NEWNET) {
        namespaces::loopback_up()?;
    }
    nix::unistd::setsid().map_err(|e| errno("setsid", e))?;
    if ctx.keyring {
        join_session_keyring(ctx.id);
    }
    if let Some(h) = ctx.hostname {
        nix::unistd::sethostname(h).map_err(|e| errno(&format!("set hostname {h:?}"), e))?;
    }
    if let Some(d) = ctx.domainname {
        // SAFETY: pointer and length of a live string.
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
            return Err(Error::io(format!("set domainname {d:?}"), std::io::Error::last_os_error()).into());
        }
    }
    super::rlimits::apply(&proc.rlimits)?;

    // 3. The root filesystem.
    let mut trees = ctx.trees.clone();
    if let Some(plan) = ctx.rootfs {
        rootfs::prepare(&sys, plan)?;
        let cgroupns = ctx.ns.new.contains(CloneFlags::CLONE_NEWCGROUP);
        rootfs::mount_all(&sys, plan, userns, cgroupns, &mut join_cgroup, &mut trees)?;
    }
    join_cgroup()?;
    let mut state_json = String::new();
    if ctx.runtime_hooks {
        sync.send(&Msg::RunHooks)?;
        match sync.recv()? {
            Some(Msg::HooksDone(s)) => state_json = s,
            _ => return Err(Stop::Quiet),
        }
        super::hooks::run("createContainer", ctx.create_container_hooks, &state_json)?;
    }
    if let Some(plan) = ctx.rootfs {
        rootfs::pivot(&sys, plan)?;
        rootfs::write_sysctls(ctx.sysctl)?;
        rootfs::protect_paths(&sys, plan, &mut trees.empty)?;
    }
    // Unused clones (no masked directory, no cgroup mount) go now, not at exec.
    super::shared::close_raw(&mut trees.empty);
    super::shared::close_raw(&mut trees.cgroup.take().map(|c| c.0));
    if let Some(sock) = ctx.console {
        let (slave, name) = super::console::create_pty(sock, proc.console_size)?;
        // Without a mount namespace the bind would land on the host.
        if ctx.rootfs.is_some_and(|p| p.mount_ns) {
            rootfs::bind_console(&sys, std::path::Path::new("/"), &name)?;
        }
        super::console::make_stdio(&slave)?;
    }
    if let Some(plan) = ctx.rootfs {
        rootfs::finalize(&sys, plan)?;
    }
    if let Some(v) = proc.oom_score_adj {
        super::process::set_oom_score_adj(v)?;
    }

    if let Some(p) = ctx.personality {
        // SAFETY: personality(2) with a plain value.
        if unsafe { libc::personality(p) } < 0 {
            return Err(Error::io(format!("personality {p:#x}"), std::io::Error::last_os_error()).into());
        }
    }
    // 4. The process: cwd, program, user, capabilities, seccomp.
    // SAFETY: umask is always safe.
    unsafe { libc::umask(proc.umask as libc::mode_t) };
    proc.chdir()?;
    let exe = proc.resolve_exe()?;
    if let (Some(f), false) = (ctx.seccomp, proc.no_new_privileges) {
        // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it while
        // we still have it, before the capabilities are dropped (as runc does).
        load_seccomp(f, sync)?;
    }
    proc.caps.apply_bounding()?;
    proc.set_user()?;
    proc.caps.apply_sets()?;
    if proc.no_new_privileges {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(Error::io("set no_new_privs", std::io::Error::last_os_error()).into());
        }
        if let Some(f) = ctx.seccomp.filter(|f| f.needs_listener()) {
            // The listener must reach the parent, which is gone after start:
            // load a notifying filter now (runc does the same).
            load_seccomp(f, sync)?;
        }
    }
    super::process::cloexec_from(3 + ctx.preserve_fds);
    sync.send(&Msg::Ready)?;

    // 5. Wait for start.
    let after = |e: Error| Stop::AfterReady(e);
    match ctx.gate {
        StartGate::Fifo(fd) => {
            // Wait until the parent has saved the state: if it dies first, so do we.
            match sync.recv().map_err(after)? {
                Some(Msg::Saved) => {}
                _ => return Err(Stop::Quiet),
            }
            let path = format!("/proc/self/fd/{fd}");
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| after(Error::io("open exec.fifo to wait for start", e)))?;
            use std::io::Write;
            (&f).write_all(b"0").map_err(|e| after(Error::io("write exec.fifo", e)))?;
        }
        StartGate::Sync => match sync.recv().map_err(after)? {
            Some(Msg::Start) => {}
            _ => return Err(Stop::Quiet),
        },
        StartGate::None => {}
    }
    if ctx.start_container_hooks.is_some_and(|h| !h.is_empty()) {
        // A startContainer hook without its own env sees the container process's.
        let env: Vec<String> = proc.env.iter().map(|e| e.to_string_lossy().into_owned()).collect();
        super::hooks::run_with_default_env("startContainer", ctx.start_container_hooks, &state_json, Some(&env))
            .map_err(after)?;
    }
    if let (Some(f), true) = (ctx.seccomp, proc.no_new_privileges) {
        if !f.needs_listener() {
            f.load().map_err(after)?;
        }
    }
    reset_signal_dispositions();
    Err(after(proc.exec(&exe)))
}

/// Load the seccomp filter; a notifying one's listener goes to the parent
/// (which hands it to the agent at `listenerPath`), and our copy is closed.
fn load_seccomp(f: &Filter, sync: &SyncSocket) -> Result<(), Error> {
    if let Some(fd) = f.load_with_listener()? {
        sync.send_with_fd(&Msg::SeccompListener, std::os::fd::AsRawFd::as_raw_fd(&fd))?;
    }
    Ok(())
}

/// Give the process default signal dispositions: `engine-runc`, like every
/// Rust program, ignores SIGPIPE, and ignored signals survive execve.
/// The raw syscall, because glibc refuses its reserved real-time signals.
fn reset_signal_dispositions() {
    // The kernel's `struct sigaction` (handler, flags, restorer, mask).
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }
    let act = KernelSigaction { handler: libc::SIG_DFL, flags: 0, restorer: 0, mask: 0 };
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: rt_sigaction with a valid struct and the kernel's sigset size (8).
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    &act as *const KernelSigaction,
                    std::ptr::null::<u8>(),
                    8usize,
                )
            };
        }
    }
}

/// A new session keyring, so containers do not share the host's (failures are not fatal).
fn join_session_keyring(id: &str) {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    if let Ok(name) = std::ffi::CString::new(format!("_ses.{id}")) {
        // SAFETY: keyctl with a valid NUL-terminated name.
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    }
}
