//! The OCI lifecycle on one state root: create, start, run, state, list,
//! kill, delete, pause, resume, ps, stats. `exec` is in `exec.rs`.

use super::init::{self, InitCtx, StartGate};
use super::namespaces::NsPlan;
use super::process::ProcPlan;
use super::rootfs::RootfsPlan;
use super::state::{alive, proc_stat, State, StateDir};
use super::sync::{self, Msg, SyncSocket};
use crate::cgroups::Cgroup;
use engine_core::{ContainerId, ContainerStatus, Error, Result, RuntimeState};
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde::Serialize;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// Options of `create` and `run`.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CreateOpts {
    /// The bundle directory (holds `config.json`).
    pub bundle: PathBuf,
    /// Where to write the init's pid.
    pub pid_file: Option<PathBuf>,
    /// Where to send the pty master when `process.terminal` is set.
    pub console_socket: Option<PathBuf>,
    /// Use `MS_MOVE` + chroot instead of pivot_root.
    pub no_pivot: bool,
    /// Do not create a new session keyring.
    pub no_new_keyring: bool,
    /// Pass this many extra fds (after the `listen_fds` ones) to the process.
    pub preserve_fds: u32,
    /// Socket-activation descriptors (systemd's `LISTEN_FDS`, from fd 3) to
    /// pass first, as runc does: the process gets them and `LISTEN_FDS=n`,
    /// `LISTEN_PID=1` in its environment.
    pub listen_fds: u32,
    /// The init's stdin, stdout and stderr (`None`: `/dev/null`) when they
    /// are not this process's own 0, 1 and 2 (a caller creating containers
    /// in-process, such as a shim).
    pub stdio: Option<[Option<RawFd>; 3]>,
}

engine_core::__setters!(CreateOpts { bundle: PathBuf, pid_file: Option<PathBuf>, console_socket: Option<PathBuf>, no_pivot: bool, no_new_keyring: bool, preserve_fds: u32, listen_fds: u32, stdio: Option<[Option<RawFd>; 3]> });

impl CreateOpts {
    /// Options with only the bundle set.
    pub fn new(bundle: impl Into<PathBuf>) -> Self {
        CreateOpts { bundle: bundle.into(), ..Default::default() }
    }
}

/// Options of `exec`.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ExecOpts {
    /// Where to write the process's pid.
    pub pid_file: Option<PathBuf>,
    /// Where to send the pty master when `process.terminal` is set.
    pub console_socket: Option<PathBuf>,
    /// Return once the process runs instead of waiting for its exit.
    pub detach: bool,
    /// Pass this many extra fds (from fd 3) to the process.
    pub preserve_fds: u32,
    /// Allow exec in a paused container (`--ignore-paused`).
    pub ignore_paused: bool,
}

engine_core::__setters!(ExecOpts { pid_file: Option<PathBuf>, console_socket: Option<PathBuf>, detach: bool, preserve_fds: u32, ignore_paused: bool });

/// One row of `list`, in runc's JSON shape.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ListEntry {
    /// Runtime-spec version.
    pub oci_version: String,
    /// Container id.
    pub id: String,
    /// Init pid (0 once stopped).
    pub pid: i32,
    /// Status.
    pub status: ContainerStatus,
    /// Bundle directory.
    pub bundle: PathBuf,
    /// Rootfs directory.
    pub rootfs: PathBuf,
    /// Creation time (RFC 3339).
    pub created: String,
    /// Owner (always "" here, as runc prints for root).
    pub owner: String,
    /// Annotations.
    #[serde(skip_serializing_if = "std::collections::HashMap::is_empty")]
    pub annotations: std::collections::HashMap<String, String>,
}

/// A state root (`--root`) and the operations on its containers.
#[derive(Debug, Clone)]
pub struct Runc {
    pub(crate) root: PathBuf,
}

/// Removes what a failed create made: the init, the cgroup, the state dir.
struct Cleanup<'a> {
    dir: Option<&'a StateDir>,
    cgroup: Option<Cgroup>,
    child: Option<i32>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Some(pid) = self.child.take() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        }
        if let Some(cg) = self.cgroup.take() {
            let _ = cg.destroy();
        }
        if let Some(d) = self.dir.take() {
            let _ = d.remove();
        }
    }
}

impl Cleanup<'_> {
    fn disarm(mut self) {
        self.child = None;
        self.cgroup = None;
        self.dir = None;
    }
}

/// A container whose init waits (the result of `create_inner`).
struct Launched {
    pid: i32,
    sync: SyncSocket,
    state: State,
    /// Our end of the console pair when `run` keeps the pty itself.
    console: Option<OwnedFd>,
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Refuse container-building work (`op`: create, run, exec) in a process
/// with more than one thread: it clones without exec and then allocates, which
/// is undefined behaviour when another thread may hold an allocator lock. The
/// count is read from `/proc/self/status` at the entry point; an unreadable
/// count is refused too.
pub fn ensure_single_threaded(op: &str) -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| Error::io(format!("{op}: read /proc/self/status to count this process's threads"), e))?;
    let threads: Option<usize> =
        status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|v| v.trim().parse().ok());
    match threads {
        Some(1) => Ok(()),
        Some(n) => Err(Error::unavailable(
            format!("in-process container {op}"),
            format!(
                "this process has {n} threads; container-building code runs only in a single-threaded process \
                 (use LinuxRuntime, which runs engine-runc for a multi-threaded caller)"
            ),
        )),
        None => Err(Error::unavailable(
            format!("in-process container {op}"),
            "no Threads: line in /proc/self/status, so this process cannot be shown to be single-threaded",
        )),
    }
}

/// Make this process (and so every child it clones) non-dumpable before a
/// clone whose child can be seen from inside a container (CVE-2019-5736
/// class): the kernel then lets only a holder of CAP_SYS_PTRACE in the
/// *host* user namespace open `/proc/<pid>/exe`, `/proc/<pid>/mem`,
/// `/proc/<pid>/fd/*`, `/proc/<pid>/map_files/*` of the child, so a process
/// in the container cannot get a descriptor of this runtime's binary to
/// overwrite, neither while it runs nor after it exits. `execve` of the
/// container's program resets the flag for that program.
pub(crate) fn make_non_dumpable() -> Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(Error::io("prctl(PR_SET_DUMPABLE, 0)", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Fork-like clone into new namespaces: returns 0 in the child, the child's pid
/// in the parent, and whether the child was created in the cgroup2 directory
/// `cgroup` (`CLONE_INTO_CGROUP`; kernels before 5.7, or a cgroup that cannot
/// take processes, fall back to a plain clone and the caller moves the child).
pub(crate) fn clone_process(flags: CloneFlags, cgroup: Option<std::os::fd::RawFd>) -> Result<(i32, bool)> {
    make_non_dumpable()?;
    let mut args =
        CloneArgs { flags: flags.bits() as u32 as u64, exit_signal: libc::SIGCHLD as u64, ..Default::default() };
    if let Some(fd) = cgroup {
        let mut into = CloneArgs { flags: args.flags | CLONE_INTO_CGROUP, cgroup: fd as u64, ..args };
        // SAFETY: clone3 without CLONE_VM and without a stack behaves like fork; we are single-threaded.
        let r =
            unsafe { libc::syscall(libc::SYS_clone3, &mut into as *mut CloneArgs, std::mem::size_of::<CloneArgs>()) };
        if r >= 0 {
            return Ok((r as i32, true));
        }
        tracing::debug!("clone3 into the cgroup failed ({}); cloning plainly", std::io::Error::last_os_error());
    }
    args.cgroup = 0;
    // SAFETY: as above.
    let r = unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>()) };
    if r >= 0 {
        return Ok((r as i32, false));
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::ENOSYS) {
        return Err(Error::io(format!("clone with namespaces {flags:?}"), e));
    }
    // SAFETY: as above, through the older clone entry point.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags.bits() as u32 as libc::c_ulong) | libc::SIGCHLD as libc::c_ulong,
            0,
            0,
            0,
            0,
        )
    };
    if r < 0 {
        return Err(Error::io(format!("clone with namespaces {flags:?}"), std::io::Error::last_os_error()));
    }
    Ok((r as i32, false))
}

/// Load and parse `<bundle>/config.json`.
pub fn load_spec(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let data = std::fs::read(&path).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    serde_json::from_slice(&data).map_err(|e| Error::invalid(format!("config {}", path.display()), e.to_string()))
}

/// Write a pid file atomically.
pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_file_name(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("pid")));
    std::fs::write(&tmp, pid.to_string()).map_err(|e| Error::io(format!("write pid file {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("write pid file {}", path.display()), e))
}

/// A pidfd for `pid` (None if the kernel refuses).
pub(crate) fn pidfd(pid: i32) -> Option<OwnedFd> {
    rustix::process::pidfd_open(rustix::process::Pid::from_raw(pid)?, rustix::process::PidfdFlags::empty()).ok()
}

/// Wait up to `ms` for `pid` to exit; true when it did.
pub(crate) fn wait_exit(pid: i32, ms: i32) -> bool {
    let Some(fd) = pidfd(pid) else { return true };
    let mut fds = [nix::poll::PollFd::new(fd.as_fd(), nix::poll::PollFlags::POLLIN)];
    matches!(nix::poll::poll(&mut fds, nix::poll::PollTimeout::try_from(ms).unwrap_or(nix::poll::PollTimeout::MAX)), Ok(n) if n > 0)
}

/// `waitpid` until `pid` ends; its exit code (`128 + signal` when killed).
pub(crate) fn wait_code(pid: i32) -> Result<i32> {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, c)) => return Ok(c),
            Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32),
            Ok(_) => continue,
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(Error::io(format!("wait for pid {pid}"), e.into())),
        }
    }
}

/// The signals a foreground `run` forwards to the container.
fn forwarded_signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
    ] {
        set.add(s);
    }
    set
}

/// Wait for `pid` like `wait_code`, forwarding the signals a user sends to a
/// foreground `run` (INT, TERM, HUP, QUIT, USR1, USR2, WINCH) to it, as runc does.
pub(crate) fn wait_forwarding_signals(pid: i32, console: Option<OwnedFd>) -> Result<i32> {
    use nix::poll::{PollFd, PollFlags};
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    let set = forwarded_signals();
    let (Some(pfd), Ok(())) =
        (pidfd(pid), nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_BLOCK, Some(&set), None))
    else {
        return wait_code(pid);
    };
    let Ok(sfd) = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK) else {
        return wait_code(pid);
    };
    let mut proxy = console.map(super::console::Proxy::new);
    let stdin = std::io::stdin();
    loop {
        let (exited, out_ready, in_ready) = {
            let mut fds =
                vec![PollFd::new(pfd.as_fd(), PollFlags::POLLIN), PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
            let (mut out_at, mut in_at) = (usize::MAX, usize::MAX);
            if let Some(p) = &proxy {
                if p.master_open() {
                    out_at = fds.len();
                    fds.push(PollFd::new(p.master(), PollFlags::POLLIN));
                }
                if p.stdin_open() {
                    in_at = fds.len();
                    fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
                }
            }
            match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(Error::io("poll the container's pidfd", e.into())),
                Ok(_) => {}
            }
            let ready = |i: usize| fds.get(i).and_then(|f| f.revents()).is_some_and(|r| !r.is_empty());
            (ready(0), ready(out_at), ready(in_at))
        };
        while let Ok(Some(info)) = sfd.read_signal() {
            let Ok(sig) = nix::sys::signal::Signal::try_from(info.ssi_signo as i32) else { continue };
            match &proxy {
                Some(p) if sig == nix::sys::signal::Signal::SIGWINCH => p.resize(),
                _ => {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
                }
            }
        }
        if let Some(p) = &mut proxy {
            if out_ready {
                // A closed pty (the process let go of its terminal) is simply no longer polled.
                p.pump_out();
            }
            if in_ready {
                p.pump_in();
            }
        }
        if exited {
            if let Some(p) = &mut proxy {
                p.pump_out();
            }
            return wait_code(pid);
        }
    }
}

fn now_rfc3339() -> String {
    engine_core::time::format_rfc3339(std::time::SystemTime::now())
}

impl Runc {
    /// Operate on the state root `root` (made on first create).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Runc { root: root.into() }
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, id: &str) -> StateDir {
        StateDir::new(&self.root, id)
    }

    /// Create the container `id` from `opts.bundle`: its init waits for [`Runc::start`].
    /// Returns the init's host pid. On error nothing is left behind. Refused
    /// (`Unavailable`, naming the thread count) in a multi-threaded process.
    pub fn create(&self, id: &ContainerId, opts: &CreateOpts) -> Result<i32> {
        let l = self.create_inner(id, opts, Launch::Create)?;
        Ok(l.pid)
    }

    /// `run`: create, start, and (unless `detach`) wait for the exit and
    /// remove the container. Returns the exit code (0 when detached).
    /// Refused in a multi-threaded process, as [`Runc::create`] is.
    pub fn run(&self, id: &ContainerId, opts: &CreateOpts, detach: bool) -> Result<i32> {
        ensure_single_threaded("run")?;
        if !detach {
            // Block the forwarded signals before the container exists, so none is lost
            // (the init unblocks everything before it execs).
            let _ = nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_BLOCK,
                Some(&forwarded_signals()),
                None,
            );
        }
        let l = self.create_inner(id, opts, Launch::Run { foreground: !detach })?;
        let dir = self.dir(id.as_str());
        if let Err(e) = l.sync.send(&Msg::Start) {
            let _ = self.destroy(&l.state, &dir);
            return Err(e);
        }
        drop(l.sync);
        self.poststart(&l.state);
        if detach {
            return Ok(0);
        }
        let code = wait_forwarding_signals(l.pid, l.console)?;
        self.destroy(&l.state, &dir)?;
        Ok(code)
    }

    /// Create in two stages: [`CreatePlan::new`] reads and checks the bundle
    /// (nothing is made), then [`Runc::launch`] makes the container (each step
    /// undone on failure).
    fn create_inner(&self, id: &ContainerId, opts: &CreateOpts, launch: Launch) -> Result<Launched> {
        ensure_single_threaded("create")?;
        let plan = CreatePlan::new(&self.root, opts, launch)?;
        self.launch(id, opts, launch, plan)
    }
}

/// How a container is launched, the difference between `create` and `run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Launch {
    /// `create`: the init waits on the exec fifo for `start`, which any
    /// process may send later; a terminal goes to the console socket.
    Create,
    /// `run`: this process releases the init over the sync socket.
    /// `foreground`: a terminal with no console socket stays here (proxied).
    Run {
        /// `run` without `--detach`.
        foreground: bool,
    },
}

/// Where the container's terminal goes, decided before anything is made.
struct Terminal {
    /// The socket end the init receives (its pty master is sent over it).
    theirs: Option<OwnedFd>,
    /// Our end of a local pair when the pty is kept here (foreground `run`).
    ours: Option<OwnedFd>,
}

/// Stage one of create: the bundle read and checked, and everything derived
/// from it. Nothing on disk, no cgroup, no process exists yet.
struct CreatePlan {
    bundle: PathBuf,
    spec: Spec,
    process: oci_spec::runtime::Process,
    proc: ProcPlan,
    ns: NsPlan,
    rootfs: RootfsPlan,
    /// The id maps to write for a new user namespace.
    id_maps: Option<(Vec<oci_spec::runtime::LinuxIdMapping>, Vec<oci_spec::runtime::LinuxIdMapping>)>,
    seccomp: Option<crate::seccomp::Filter>,
    sysctl: Vec<(String, String)>,
    personality: Option<libc::c_ulong>,
    /// Hooks the runtime runs before pivot_root (prestart, createRuntime...).
    runtime_hooks: bool,
    terminal: Terminal,
    /// Clones of the runtime's shared directories (empty, cgroup skeleton).
    trees: super::shared::SharedTrees,
}

impl CreatePlan {
    fn new(root: &Path, opts: &CreateOpts, launch: Launch) -> Result<CreatePlan> {
        let bundle = std::fs::canonicalize(&opts.bundle)
            .map_err(|e| Error::io(format!("bundle {}", opts.bundle.display()), e))?;
        let spec = load_spec(&bundle)?;
        let process = spec.process().as_ref().ok_or_else(|| Error::invalid("config.json", "has no process"))?;
        let mut process = process.clone();
        if opts.listen_fds > 0 {
            let mut env: Vec<String> = process.env().clone().unwrap_or_default();
            env.retain(|e| !e.starts_with("LISTEN_FDS=") && !e.starts_with("LISTEN_PID="));
            env.push(format!("LISTEN_FDS={}", opts.listen_fds));
            env.push("LISTEN_PID=1".into());
            process.set_env(Some(env));
        }
        let process = &process;
        let proc = ProcPlan::new(process)?;
        let linux = spec.linux().as_ref();
        let ns = NsPlan::new(linux.and_then(|l| l.namespaces().as_deref()).unwrap_or(&[]))?;
        let mut rootfs = RootfsPlan::new(&spec, &bundle, opts.no_pivot)?;
        if !ns.has(LinuxNamespaceType::Mount) {
            rootfs = rootfs.without_mount_namespace(&spec)?;
        }
        let hostname = spec.hostname().as_deref().filter(|h| !h.is_empty());
        let domainname = spec.domainname().as_deref().filter(|h| !h.is_empty());
        if (hostname.is_some() || domainname.is_some()) && !ns.has(LinuxNamespaceType::Uts) {
            return Err(Error::invalid("hostname", "setting a hostname or domainname needs a uts namespace"));
        }
        let userns = ns.new.contains(CloneFlags::CLONE_NEWUSER);
        let (uid_maps, gid_maps) = (
            linux.and_then(|l| l.uid_mappings().clone()).unwrap_or_default(),
            linux.and_then(|l| l.gid_mappings().clone()).unwrap_or_default(),
        );
        if userns && (uid_maps.is_empty() || gid_maps.is_empty()) {
            return Err(Error::invalid("linux.uidMappings", "a new user namespace needs uidMappings and gidMappings"));
        }
        let id_maps = userns.then_some((uid_maps, gid_maps));
        let seccomp = match linux.and_then(|l| l.seccomp().as_ref()) {
            Some(s) => Some(compile_seccomp(s, Some(&root.join(crate::seccomp::CACHE_DIR)))?),
            None => None,
        };
        let mut sysctl: Vec<(String, String)> =
            linux.and_then(|l| l.sysctl().clone()).unwrap_or_default().into_iter().collect();
        sysctl.sort();
        for (k, _) in &sysctl {
            super::rootfs::validate_sysctl(k, |t| {
                // A namespace joined by path may be the host's own: only count it when it differs.
                ns.new.contains(super::namespaces::flag(t))
                    || ns.joined(t).is_some_and(|j| !super::namespaces::is_host(t, &j.path))
            })?;
        }
        let personality = linux.and_then(|l| l.personality().as_ref()).map(super::process::personality).transpose()?;
        let hooks = spec.hooks().as_ref();
        #[allow(deprecated)]
        let runtime_hooks = hooks.is_some_and(|h| {
            [h.prestart(), h.create_runtime(), h.create_container(), h.start_container()]
                .iter()
                .any(|v| v.as_ref().is_some_and(|v| !v.is_empty()))
        });
        let terminal = match (proc.terminal, &opts.console_socket) {
            (true, Some(p)) => Terminal { theirs: Some(super::console::connect(p)?), ours: None },
            (true, None) if launch == (Launch::Run { foreground: true }) => {
                let (ours, theirs) = super::console::local_pair()?;
                Terminal { theirs: Some(theirs), ours: Some(ours) }
            }
            (true, None) => {
                return Err(Error::invalid(
                    "process.terminal",
                    "a terminal needs --console-socket (where to send the pty master)",
                ))
            }
            (false, _) => Terminal { theirs: None, ours: None },
        };
        let trees = super::shared::SharedTrees::prepare(root, &rootfs)?;
        let process = process.clone();
        Ok(CreatePlan {
            bundle,
            process,
            proc,
            ns,
            rootfs,
            id_maps,
            seccomp,
            sysctl,
            personality,
            runtime_hooks,
            terminal,
            spec,
            trees,
        })
    }
}

impl Runc {
    /// Stage two of create: the state dir, the exec fifo (`Launch::Create`),
    /// the cgroup, the init; on error the guard removes what was made.
    fn launch(&self, id: &ContainerId, opts: &CreateOpts, launch: Launch, plan: CreatePlan) -> Result<Launched> {
        let CreatePlan {
            bundle,
            spec,
            process,
            proc,
            ns,
            rootfs,
            id_maps,
            seccomp,
            sysctl,
            personality,
            runtime_hooks,
            terminal,
            trees,
        } = plan;
        let linux = spec.linux().as_ref();
        let hooks = spec.hooks().as_ref();
        let hostname = spec.hostname().as_deref().filter(|h| !h.is_empty());
        let domainname = spec.domainname().as_deref().filter(|h| !h.is_empty());
        let Terminal { theirs: console, ours: local_console } = terminal;
        super::shared::ensure_root(&self.root)?;
        let dir = self.dir(id.as_str());
        match std::fs::create_dir(&dir.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::conflict("container", id.as_str(), "a container with this id already exists"))
            }
            Err(e) => return Err(Error::io(format!("create state dir {}", dir.dir.display()), e)),
        }
        let mut guard = Cleanup { dir: Some(&dir), cgroup: None, child: None };
        let fifo_fd = if launch == Launch::Create {
            let p = dir.fifo();
            nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o622))
                .map_err(|e| Error::io(format!("mkfifo {}", p.display()), e.into()))?;
            // Writable by anyone (not only after the umask): the init may run as any user by then.
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o622))
                .map_err(|e| Error::io(format!("chmod {}", p.display()), e))?;
            let fd = nix::fcntl::open(
                &p,
                nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| Error::io(format!("open {}", p.display()), e.into()))?;
            Some(fd)
        } else {
            None
        };
        let mut resources = linux.and_then(|l| l.resources().clone()).unwrap_or_default();
        if !rootfs.devices.is_empty() {
            let mut rules = resources.devices().clone().unwrap_or_default();
            if !rules.is_empty() {
                // Only the default devices are allowed on top of the config's
                // rules (runc's behaviour): a `linux.devices` node gets what
                // `resources.devices` grants it, e.g. read-only, not `rwm`.
                rules.extend(super::devices::cgroup_rules(&super::devices::defaults()));
                resources.set_devices(Some(rules));
            }
        }
        // Without `cgroupsPath` the cgroup is `<id>` under this process's own
        // cgroup in each hierarchy, where runc (cgroupfs driver) puts it.
        let cgroups_path = linux
            .and_then(|l| l.cgroups_path().as_ref())
            .map(|p| p.to_string_lossy().into_owned())
            .filter(|p| !p.trim().is_empty())
            .unwrap_or_else(|| id.as_str().to_string());
        // The cgroup is recorded in the state dir before it is made: a create killed
        // before it writes state.json leaves a cgroup that `delete --force` can find.
        let cgroup = crate::cgroups::Hierarchies::detect()?.create_recorded(
            Some(&cgroups_path),
            id.as_str(),
            Some(&resources),
            |cg| dir.save_cgroup(cg),
        )?;
        guard.cgroup = Some(cgroup.clone());
        let (parent_sock, child_sock) = sync::pair()?;
        if let Some(j) = ns.joined(LinuxNamespaceType::Pid) {
            super::namespaces::setns(j)?;
        }
        let clone_flags = ns.new - CloneFlags::CLONE_NEWCGROUP;
        let parent_joins = ns.parent_joins();
        let (saved_ns, cwd) = if parent_joins {
            let cwd = std::fs::File::open(".").map_err(|e| Error::io("open the current directory", e))?;
            (ns.join_in_parent()?, Some(cwd))
        } else {
            (Vec::new(), None)
        };
        let start_hooks = hooks.and_then(|h| h.start_container().as_ref());
        let create_hooks = hooks.and_then(|h| h.create_container().as_ref());
        let self_join = cgroup.open_self_join()?;
        let cloned = clone_process(clone_flags, self_join.unified.as_ref().map(|f| f.as_raw_fd()));
        if parent_joins && cloned.as_ref().is_ok_and(|(p, _)| *p != 0) {
            super::namespaces::NsPlan::restore(&saved_ns)?;
            if let Some(c) = &cwd {
                nix::unistd::fchdir(c).map_err(|e| Error::io("return to the current directory", e.into()))?;
            }
        }
        let (pid, into_unified) = cloned?;
        if pid == 0 {
            drop(parent_sock);
            let ctx = InitCtx {
                cgroup: Some(&self_join),
                joined_by_parent: parent_joins,
                ns: &ns,
                exec_joins: &[],
                exec_root: None,
                rootfs: Some(&rootfs),
                proc: &proc,
                hostname,
                domainname,
                sysctl: &sysctl,
                seccomp: seccomp.as_ref(),
                gate: match &fifo_fd {
                    Some(fd) => StartGate::Fifo(fd.as_raw_fd()),
                    None => StartGate::Sync,
                },
                console: console.as_ref().map(|c| c.as_raw_fd()),
                stdio: opts.stdio,
                runtime_hooks,
                create_container_hooks: create_hooks,
                start_container_hooks: start_hooks,
                preserve_fds: opts.listen_fds + opts.preserve_fds,
                personality,
                keyring: !opts.no_new_keyring,
                id: id.as_str(),
                trees: trees.raw(),
            };
            init::main(&ctx, &child_sock);
        }
        // The init has its own copies of the clones.
        drop(trees);
        guard.child = Some(pid);
        drop(child_sock);
        drop(console);
        if let Some((uid_maps, gid_maps)) = &id_maps {
            let fmt = |m: &[oci_spec::runtime::LinuxIdMapping]| {
                m.iter().map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size())).collect::<String>()
            };
            std::fs::write(format!("/proc/{pid}/uid_map"), fmt(uid_maps))
                .map_err(|e| Error::io(format!("write uid_map of the init {pid}"), e))?;
            std::fs::write(format!("/proc/{pid}/gid_map"), fmt(gid_maps))
                .map_err(|e| Error::io(format!("write gid_map of the init {pid}"), e))?;
        }
        parent_sock.send(&Msg::Go)?;
        if let Err(e) = cgroup.add_pid_rest(pid, &self_join, into_unified) {
            // The init may have failed (and exited) meanwhile: its message says why.
            if let Some(Msg::Error(m)) = parent_sock.try_recv() {
                return Err(Error::Other(format!("container {id}: {m}")));
            }
            return Err(e);
        }
        // The init may already have failed; then this send fails and the loop below reports it.
        drop(self_join);
        let _ = parent_sock.send(&Msg::CgroupJoined);
        let mut state = State {
            oci_version: spec.version().clone(),
            id: id.to_string(),
            pid,
            pid_start: 0,
            bundle: bundle.clone(),
            rootfs: rootfs.rootfs.clone(),
            annotations: spec.annotations().clone().unwrap_or_default(),
            created: now_rfc3339(),
            cgroup: Some(cgroup),
            hooks: hooks.cloned(),
            seccomp: linux.and_then(|l| l.seccomp().clone()),
            no_new_privileges: proc.no_new_privileges,
            process: Some(process.clone()),
        };
        loop {
            let (msg, fd) = parent_sock.recv_with_fd()?;
            match msg {
                Some(Msg::Ready) => break,
                Some(Msg::SeccompListener) => {
                    let json = hook_state(&state, ContainerStatus::Creating);
                    if let Err(e) = to_seccomp_agent(linux.and_then(|l| l.seccomp().as_ref()), fd, pid, &json) {
                        let _ = parent_sock.send(&Msg::Error(e.to_string()));
                        return Err(e);
                    }
                }
                Some(Msg::RunHooks) => {
                    let json = hook_state(&state, ContainerStatus::Creating);
                    #[allow(deprecated)]
                    let r = super::hooks::run("prestart", hooks.and_then(|h| h.prestart().as_ref()), &json).and_then(
                        |_| super::hooks::run("createRuntime", hooks.and_then(|h| h.create_runtime().as_ref()), &json),
                    );
                    match r {
                        Ok(()) => parent_sock.send(&Msg::HooksDone(json))?,
                        Err(e) => {
                            let _ = parent_sock.send(&Msg::Error(e.to_string()));
                            return Err(e);
                        }
                    }
                }
                Some(Msg::Error(m)) => return Err(Error::Other(format!("container {id}: {m}"))),
                Some(other) => return Err(Error::Other(format!("container {id}: unexpected sync message {other:?}"))),
                None => {
                    let code = wait_code(pid).unwrap_or(-1);
                    guard.child = None;
                    return Err(Error::Other(format!("container {id}: the init exited during setup (status {code})")));
                }
            }
        }
        state.pid_start = proc_stat(pid).map(|(s, _)| s).unwrap_or(0);
        dir.save(&state)?;
        if let Some(p) = &opts.pid_file {
            write_pid_file(p, pid)?;
        }
        if launch == Launch::Create {
            // The state is on disk: the init may now wait for start. Until this
            // message it exits if we die (its end of the socket reads EOF), so a
            // killed create leaves no init behind. It may have died already:
            // then the container is simply stopped.
            let _ = parent_sock.send(&Msg::Saved);
        }
        let console = match local_console {
            Some(sock) => Some(super::console::recv_fd(sock.as_raw_fd())?),
            None => None,
        };
        guard.disarm();
        Ok(Launched { pid, sync: parent_sock, state, console })
    }

    /// Load a container's state and compute its status.
    pub fn load(&self, id: &str) -> Result<(State, ContainerStatus)> {
        let dir = self.dir(id);
        let st = dir.load(id)?;
        let status = self.status(&st, &dir);
        Ok((st, status))
    }

    fn status(&self, st: &State, dir: &StateDir) -> ContainerStatus {
        if !alive(st.pid, st.pid_start) {
            ContainerStatus::Stopped
        } else if dir.fifo().exists() {
            ContainerStatus::Created
        } else if st.cgroup.as_ref().and_then(|c| c.is_frozen().ok()).unwrap_or(false) {
            ContainerStatus::Paused
        } else {
            ContainerStatus::Running
        }
    }

    /// The OCI state of a container.
    pub fn state(&self, id: &ContainerId) -> Result<RuntimeState> {
        let (st, status) = self.load(id.as_str())?;
        Ok(st.oci(status))
    }

    /// Release a created container's init.
    pub fn start(&self, id: &ContainerId) -> Result<()> {
        let dir = self.dir(id.as_str());
        let (st, status) = self.load(id.as_str())?;
        if status != ContainerStatus::Created {
            return Err(Error::conflict(
                "container",
                id.as_str(),
                format!("cannot start a container that is {status}"),
            ));
        }
        let fifo = dir.fifo();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .map_err(|e| Error::io(format!("open {}", fifo.display()), e))?;
        let pfd = pidfd(st.pid);
        loop {
            let mut fds = vec![nix::poll::PollFd::new(f.as_fd(), nix::poll::PollFlags::POLLIN)];
            if let Some(p) = &pfd {
                fds.push(nix::poll::PollFd::new(p.as_fd(), nix::poll::PollFlags::POLLIN));
            }
            match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(Error::io("poll exec.fifo", e.into())),
                Ok(_) => {}
            }
            let fifo_ready = fds[0].revents().is_some_and(|r| r.contains(nix::poll::PollFlags::POLLIN));
            if fifo_ready {
                let mut b = [0u8; 1];
                let n = nix::unistd::read(&f, &mut b).map_err(|e| Error::io("read exec.fifo", e.into()))?;
                if n == 1 {
                    break;
                }
            }
            if fds.get(1).and_then(|p| p.revents()).is_some_and(|r| !r.is_empty()) {
                return Err(Error::Other(format!("container {id}: the init exited before start")));
            }
        }
        let _ = std::fs::remove_file(&fifo);
        self.poststart(&st);
        Ok(())
    }

    fn poststart(&self, st: &State) {
        if let Some(h) = st.hooks.as_ref().and_then(|h| h.poststart().as_ref()) {
            if let Err(e) = super::hooks::run("poststart", Some(h), &hook_state(st, ContainerStatus::Running)) {
                tracing::warn!("container {}: {e}", st.id);
            }
        }
    }

    /// Send `signal` to the init, or with `all` to every process of the container.
    pub fn kill(&self, id: &ContainerId, signal: i32, all: bool) -> Result<()> {
        let (st, status) = self.load(id.as_str())?;
        if all {
            if let Some(cg) = &st.cgroup {
                return cg.kill_all(signal);
            }
        }
        if status == ContainerStatus::Stopped {
            // containerd matches "container not running" (runc's words) to treat it as already gone.
            return Err(Error::conflict("container", id.as_str(), "container not running"));
        }
        let sig = nix::sys::signal::Signal::try_from(signal)
            .map_err(|_| Error::invalid("signal", format!("{signal} is not a signal")))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(st.pid), sig)
            .map_err(|e| Error::io(format!("kill container {id} init {} with {sig}", st.pid), e.into()))
    }

    /// Remove a container. Running or paused ones need `force` (they are killed).
    /// `force` on a missing container succeeds.
    pub fn delete(&self, id: &ContainerId, force: bool) -> Result<()> {
        let dir = self.dir(id.as_str());
        let (st, status) = match self.load(id.as_str()) {
            Ok(x) => x,
            Err(e) if e.is_not_found() && force => {
                // A create that was killed before it wrote its state leaves the
                // directory, and maybe the cgroup it recorded there.
                return self.remove_partial(&dir);
            }
            Err(e) if e.is_not_found() => return Err(e),
            Err(e) if force => {
                // A corrupt state file: remove what we can.
                let _ = dir.remove();
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        match status {
            ContainerStatus::Running | ContainerStatus::Paused if !force => {
                return Err(Error::conflict(
                    "container",
                    id.as_str(),
                    format!("cannot delete a container that is {status} (stop it or use --force)"),
                ))
            }
            _ => {}
        }
        self.destroy(&st, &dir)
    }

    /// What a `create` killed before `state.json` left: its recorded cgroup
    /// (any process still in it is killed: an init that did not see its
    /// parent go yet, a createContainer hook) and the state directory.
    fn remove_partial(&self, dir: &StateDir) -> Result<()> {
        if let Some(cg) = dir.load_cgroup() {
            if cg.dirs().iter().any(|d| d.exists()) {
                let _ = cg.kill_all(libc::SIGKILL);
                cg.destroy()?;
            }
        }
        dir.remove()
    }

    /// Kill whatever still runs, remove the cgroup, run poststop hooks, remove the state.
    fn destroy(&self, st: &State, dir: &StateDir) -> Result<()> {
        if alive(st.pid, st.pid_start) {
            if let Some(cg) = &st.cgroup {
                let _ = cg.kill_all(libc::SIGKILL);
            }
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(st.pid), nix::sys::signal::Signal::SIGKILL);
            if let Some(cg) = &st.cgroup {
                let _ = cg.thaw();
            }
            if !wait_exit(st.pid, 10_000) {
                return Err(Error::Timeout {
                    what: format!("container {} init {} to exit", st.id, st.pid),
                    after: std::time::Duration::from_secs(10),
                });
            }
        }
        if let Some(cg) = &st.cgroup {
            cg.destroy()?;
        }
        if let Some(h) = st.hooks.as_ref().and_then(|h| h.poststop().as_ref()) {
            if let Err(e) = super::hooks::run("poststop", Some(h), &hook_state(st, ContainerStatus::Stopped)) {
                tracing::warn!("container {}: {e}", st.id);
            }
        }
        dir.remove()
    }

    /// Freeze a running container.
    pub fn pause(&self, id: &ContainerId) -> Result<()> {
        let (st, status) = self.load(id.as_str())?;
        if status != ContainerStatus::Running {
            return Err(Error::conflict(
                "container",
                id.as_str(),
                format!("cannot pause a container that is {status}"),
            ));
        }
        self.cgroup_of(&st)?.freeze()
    }

    /// Thaw a paused container.
    pub fn resume(&self, id: &ContainerId) -> Result<()> {
        let (st, status) = self.load(id.as_str())?;
        if status != ContainerStatus::Paused {
            return Err(Error::conflict(
                "container",
                id.as_str(),
                format!("cannot resume a container that is {status}"),
            ));
        }
        self.cgroup_of(&st)?.thaw()
    }

    fn cgroup_of<'a>(&self, st: &'a State) -> Result<&'a Cgroup> {
        st.cgroup.as_ref().ok_or_else(|| Error::Unsupported(format!("container {} has no cgroup", st.id)))
    }

    /// Change the resources of a running (or created, or paused) container's cgroup.
    pub fn update(&self, id: &ContainerId, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        let (st, status) = self.load(id.as_str())?;
        if status == ContainerStatus::Stopped {
            return Err(Error::conflict("container", id.as_str(), "container not running"));
        }
        self.cgroup_of(&st)?.apply(resources)
    }

    /// Host pids of the container's processes.
    pub fn ps(&self, id: &ContainerId) -> Result<Vec<i32>> {
        let (st, _) = self.load(id.as_str())?;
        self.cgroup_of(&st)?.pids()
    }

    /// Resource usage from the container's cgroup.
    pub fn stats(&self, id: &ContainerId) -> Result<engine_core::Stats> {
        let (st, _) = self.load(id.as_str())?;
        self.cgroup_of(&st)?.stats()
    }

    /// Every container under the root.
    pub fn list(&self) -> Result<Vec<ListEntry>> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io(format!("read {}", self.root.display()), e)),
        };
        for ent in rd.flatten() {
            let name = ent.file_name().to_string_lossy().into_owned();
            if let Ok((st, status)) = self.load(&name) {
                out.push(self.entry(&st, status));
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// The `state`/`list` JSON row of a container.
    pub fn entry(&self, st: &State, status: ContainerStatus) -> ListEntry {
        ListEntry {
            oci_version: st.oci_version.clone(),
            id: st.id.clone(),
            pid: if status == ContainerStatus::Stopped { 0 } else { st.pid },
            status,
            bundle: st.bundle.clone(),
            rootfs: st.rootfs.clone(),
            created: st.created.clone(),
            owner: String::new(),
            annotations: st.annotations.clone(),
        }
    }
}

use std::os::unix::fs::OpenOptionsExt;

/// Compile a seccomp profile; a notifying one needs `listenerPath`.
pub(crate) fn compile_seccomp(
    s: &oci_spec::runtime::LinuxSeccomp,
    cache: Option<&Path>,
) -> Result<crate::seccomp::Filter> {
    let f = match cache {
        Some(dir) => crate::seccomp::compile_cached(s, dir)?,
        None => crate::seccomp::compile(s)?,
    };
    if f.needs_listener() && s.listener_path().is_none() {
        return Err(Error::invalid(
            "linux.seccomp.listenerPath",
            "SCMP_ACT_NOTIFY needs a listenerPath (the seccomp agent's unix socket)",
        ));
    }
    Ok(f)
}

/// Hand the init's seccomp listener `fd` to the agent at `listenerPath`, with
/// the process's pid, `listenerMetadata` and the container state `state_json`.
pub(crate) fn to_seccomp_agent(
    profile: Option<&oci_spec::runtime::LinuxSeccomp>,
    fd: Option<OwnedFd>,
    pid: i32,
    state_json: &str,
) -> Result<()> {
    let fd = fd.ok_or_else(|| Error::Other("seccomp: the init sent no listener fd".into()))?;
    let path = profile.and_then(|p| p.listener_path().as_ref()).ok_or_else(|| {
        Error::invalid(
            "linux.seccomp.listenerPath",
            "SCMP_ACT_NOTIFY needs a listenerPath (the seccomp agent's unix socket)",
        )
    })?;
    let meta = profile.and_then(|p| p.listener_metadata().clone()).unwrap_or_default();
    let state: serde_json::Value =
        serde_json::from_str(state_json).map_err(|e| Error::Other(format!("seccomp: encode the state: {e}")))?;
    crate::seccomp::send_to_agent(path, &fd, pid, &meta, &state)
}

/// The state JSON handed to hooks on stdin.
pub(crate) fn hook_state(st: &State, status: ContainerStatus) -> String {
    serde_json::to_string(&st.oci(status)).unwrap_or_default()
}
