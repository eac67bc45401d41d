//! `exec`: run an extra process in a container's namespaces and cgroup.

use super::container::{clone_process, wait_code, write_pid_file, Runc};
use super::init::{self, InitCtx, StartGate};
use super::namespaces::{self, NsPlan};
use super::process::ProcPlan;
use super::sync::{self, Msg};
use super::ExecOpts;
use engine_core::{ContainerId, ContainerStatus, Error, Result};
use nix::sched::CloneFlags;
use oci_spec::runtime::LinuxNamespaceType;
use std::os::fd::AsRawFd;

/// What `exec` ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecOutcome {
    /// Detached: the process's host pid.
    Started(i32),
    /// Waited: its exit code (`128 + signal` when killed).
    Exited(i32),
}

impl Runc {
    /// Run `process` inside the running container `id`. Refused in a
    /// multi-threaded process, as [`Runc::create`] is.
    pub fn exec(&self, id: &ContainerId, process: &oci_spec::runtime::Process, opts: &ExecOpts) -> Result<ExecOutcome> {
        super::container::ensure_single_threaded("exec")?;
        let (st, status) = self.load(id.as_str())?;
        match status {
            ContainerStatus::Running | ContainerStatus::Created => {}
            ContainerStatus::Paused if opts.ignore_paused => {}
            ContainerStatus::Paused => {
                return Err(Error::conflict(
                    "container",
                    id.as_str(),
                    "cannot exec in a paused container (use --ignore-paused to override)",
                ))
            }
            s => {
                return Err(Error::conflict(
                    "container",
                    id.as_str(),
                    format!("cannot exec in a container that is {s}"),
                ))
            }
        }
        let proc = ProcPlan::new(process)?;
        let joins = namespaces::of_process(st.pid)?;
        let seccomp = match &st.seccomp {
            Some(s) => Some(super::container::compile_seccomp(s, Some(&self.root.join(crate::seccomp::CACHE_DIR)))?),
            None => None,
        };
        let mut local_console = None;
        let console = match (proc.terminal, &opts.console_socket) {
            (true, Some(p)) => Some(super::console::connect(p)?),
            (true, None) if !opts.detach => {
                let (ours, theirs) = super::console::local_pair()?;
                local_console = Some(ours);
                Some(theirs)
            }
            (true, None) => {
                return Err(Error::invalid(
                    "process.terminal",
                    "a terminal needs --console-socket (where to send the pty master)",
                ))
            }
            (false, _) => None,
        };
        // Without a mount namespace of its own the init is only chrooted: so is this process.
        let root = if joins.iter().any(|j| j.typ == LinuxNamespaceType::Mount) {
            None
        } else {
            let p = format!("/proc/{}/root", st.pid);
            Some(
                nix::fcntl::open(
                    p.as_str(),
                    nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
                    nix::sys::stat::Mode::empty(),
                )
                .map_err(|e| Error::io(format!("open the container's root {p}"), e.into()))?,
            )
        };
        let (parent_sock, child_sock) = sync::pair()?;
        if let Some(j) = joins.iter().find(|j| j.typ == LinuxNamespaceType::Pid) {
            namespaces::setns(j)?;
        }
        let ns = NsPlan::default();
        // In a paused (frozen) container the process would freeze as soon as it
        // joined the cgroup, before it reports ready: it joins only after that,
        // moved by us, and execs once the container is resumed.
        let paused = status == ContainerStatus::Paused;
        // The process is moved into the container's cgroup by us, by path,
        // before it does anything: it holds no descriptor of a cgroupfs
        // directory or `tasks` file (a container process with CAP_SYS_PTRACE
        // could reopen one through /proc/<pid>/fd, and from a directory reach
        // every cgroup's files), which CLONE_INTO_CGROUP or joining by itself
        // would need while it is already visible in the container.
        // The child is born inside the container's namespaces (all but user,
        // which cannot be left again, and pid, joined above for children):
        // from the moment it appears in the container's pid namespace, its
        // `/proc/<pid>/root`, `cwd` and mounts are the container's. A process
        // in the container holding CAP_SYS_PTRACE can open those links of the
        // non-dumpable child; joining only in the child would show it the
        // host's root for a moment.
        // The way back is a path, not a descriptor the child would hold.
        let cwd = std::env::current_dir().map_err(|e| Error::io("read the current directory", e))?;
        let saved_ns = namespaces::join_in_parent(&joins)?;
        let cloned = clone_process(CloneFlags::empty(), None);
        if !cloned.as_ref().is_ok_and(|(p, _)| *p == 0) {
            NsPlan::restore(&saved_ns)?;
            std::env::set_current_dir(&cwd)
                .map_err(|e| Error::io(format!("return to the current directory {}", cwd.display()), e))?;
        }
        let (pid, _) = cloned?;
        if pid == 0 {
            drop(saved_ns);
            drop(parent_sock);
            let ctx = InitCtx {
                cgroup: None,
                joined_by_parent: false,
                ns: &ns,
                exec_joins: &joins,
                exec_root: root.as_ref().map(|r| r.as_raw_fd()),
                rootfs: None,
                proc: &proc,
                hostname: None,
                domainname: None,
                sysctl: &[],
                seccomp: seccomp.as_ref(),
                gate: if paused { StartGate::Sync } else { StartGate::None },
                console: console.as_ref().map(|c| c.as_raw_fd()),
                stdio: None,
                runtime_hooks: false,
                create_container_hooks: None,
                start_container_hooks: None,
                preserve_fds: opts.preserve_fds,
                personality: None,
                keyring: false,
                id: id.as_str(),
                trees: Default::default(),
            };
            init::main(&ctx, &child_sock);
        }
        drop(child_sock);
        drop(console);
        let kill = |e: Error| {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            // A process in a frozen cgroup dies only when thawed: do not wait for it then
            // (it is reaped by whoever inherits it).
            if !paused {
                let _ = wait_code(pid);
            }
            e
        };
        if let Some(cg) = st.cgroup.as_ref().filter(|_| !paused) {
            cg.add_pid(pid).map_err(kill)?;
        }
        parent_sock.send(&Msg::Go).map_err(kill)?;
        parent_sock.send(&Msg::CgroupJoined).map_err(kill)?;
        let mut msg = parent_sock.recv_with_fd().map_err(kill)?;
        if let (Some(Msg::SeccompListener), fd) = msg {
            let json = super::container::hook_state(&st, status);
            super::container::to_seccomp_agent(st.seccomp.as_ref(), fd, pid, &json).map_err(kill)?;
            msg = parent_sock.recv_with_fd().map_err(kill)?;
        }
        match msg.0 {
            Some(Msg::Ready) => {}
            Some(Msg::Error(m)) => return Err(kill(Error::Other(format!("exec in container {id}: {m}")))),
            other => {
                return Err(kill(Error::Other(format!(
                    "exec in container {id}: the process ended during setup ({other:?})"
                ))))
            }
        }
        if let Some(p) = &opts.pid_file {
            write_pid_file(p, pid).map_err(kill)?;
        }
        if paused {
            // Last, so that no error path has to kill (and wait for) a frozen process.
            if let Some(cg) = &st.cgroup {
                cg.add_pid(pid).map_err(kill)?;
            }
            parent_sock.send(&Msg::Start).map_err(kill)?;
        }
        if opts.detach {
            return Ok(ExecOutcome::Started(pid));
        }
        drop(parent_sock);
        let master = match local_console {
            Some(sock) => Some(super::console::recv_fd(sock.as_raw_fd()).map_err(kill)?),
            None => None,
        };
        Ok(ExecOutcome::Exited(super::container::wait_forwarding_signals(pid, master)?))
    }
}
