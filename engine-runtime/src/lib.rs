//! # engine-runtime
//!
//! runc's role in the engine: turn an OCI bundle (`config.json` + rootfs)
//! into a running, isolated process, then get out of the way.
//!
//! | part | what it is |
//! |---|---|
//! | [`LinuxRuntime`] | the default [`engine_core::Runtime`]: this crate's runtime, in the caller's process where that is safe, through `engine-runc` otherwise (below) |
//! | [`OciRuntime`] | the same trait over any runc-compatible binary: `engine-runc`, runc, crun, youki, a Kata-style runtime |
//! | `engine-runc` | a runc-compatible command line (`create`, `start`, `run`, `state`, `kill`, `delete`, `exec`, `pause`, `resume`, `ps`, `events`, `spec`, `features`), usable by containerd's runc shim, podman `--runtime` and docker `--add-runtime` |
//! | [`linux`] | the container builder behind `engine-runc`: namespaces, mounts, pivot_root, devices, capabilities, rlimits, console, hooks |
//! | [`cgroups`] | container cgroups on v1, v2 and hybrid hosts, `linux.resources`, freezer, stats |
//! | [`seccomp`] | `linux.seccomp` compiled with libseccomp, loaded right before `execve` |
//!
//! Code that clones into a container (`create`, `run`, `exec`) needs a
//! single-threaded process. [`LinuxRuntime`] therefore splits the work:
//!
//! - the operations that clone nothing (`start`, `state`, `kill`, `delete`,
//!   `pause`, `resume`, `stats`, `ps`, `update`) only read the state
//!   directory, signal and touch cgroup files: they run in the caller's
//!   process, on a blocking thread, through [`linux::Runc`], and start no
//!   process;
//! - `create` runs in the caller's process too when the caller has a single
//!   thread (the shim, which then is the init's parent directly) and the
//!   config joins no existing namespace;
//! - `exec`, and `create` from a multi-threaded caller (the lifecycle
//!   manager, an application embedding the engine) or into existing
//!   namespaces, run the single-threaded `engine-runc` command line, one
//!   short-lived process per call (with `tokio::process`).
//!
//! A [`LinuxRuntime`] given global arguments (`--debug`, `--log`, ...,
//! through [`engine_core::RuntimeBinary::args`]) runs `engine-runc` for every
//! operation, so the binary handles them.
//!
//! [`OciRuntime`] runs its binary (runc, crun, ...) for every operation. The
//! command line is [`cli::main`] (feature `cli`), which an application can
//! also serve itself, busybox-style (the `engine` facade's `single-binary`
//! feature).
//!
//! ## The runtime's own attack surface
//!
//! - **Single-threaded only.** [`linux::Runc::create`], [`linux::Runc::run`]
//!   and [`linux::Runc::exec`] clone without exec and then allocate; they
//!   count this process's threads (`/proc/self/status`) at the entry point
//!   and refuse with [`engine_core::Error::Unavailable`] ("this process has N
//!   threads...") when there is more than one. [`LinuxRuntime`] checks first
//!   and runs `engine-runc` for a multi-threaded caller.
//! - **The joining binary cannot be reopened (CVE-2019-5736 class).** Every
//!   process the runtime clones into a container (the init waiting for
//!   `start`, a process joining for `exec`) is a copy of the host's
//!   `engine-runc` (or of the shim, for the shim's in-process create), visible
//!   in the container's pid namespace until it execs the container's program.
//!   Before cloning, the runtime makes itself non-dumpable
//!   (`PR_SET_DUMPABLE 0`, inherited by the clone). The kernel then allows
//!   `/proc/<pid>/exe` (and `mem`, `fd/*`, `map_files/*`) of that process only
//!   to a holder of `CAP_SYS_PTRACE` in the host user namespace. For that
//!   holder (`--cap-add SYS_PTRACE`, `--privileged`, a privileged exec), the
//!   commands that clone into a container (`create`, `run`, `exec`) first
//!   re-execute `engine-runc` from a detached read-only bind mount of its own
//!   binary ([`sealed`]), so every descriptor of the binary a container can
//!   get lies on a read-only mount nobody can reach to remount: opening it or
//!   re-opening it through `/proc/self/fd` for writing fails (`EROFS`), during
//!   and after the run. runc did the same with a sealed memfd copy (1.0-rc7 to
//!   1.1) and a private read-only overlayfs (1.2); ours costs one `execve` and
//!   no copy (measured: +6 ms on a 15 ms `engine-runc exec`, against +30 ms
//!   for the memfd copy of the 13 MiB debug binary, which remains the fallback
//!   where `mount_setattr` is missing). The shim's in-process create needs no
//!   seal: its clone lives in a new pid namespace of its own until it execs
//!   the container's program, so no container process ever sees it.
//! - **The joining process is born inside.** `exec` enters the container's
//!   namespaces (all but pid, joined for children, and user, which cannot be
//!   left) in the runtime process just for the clone, so the process that
//!   appears in the container's pid namespace already has the container's
//!   root, working directory and mounts: a container process holding
//!   `CAP_SYS_PTRACE` that opens its `/proc/<pid>/root` or `cwd` reaches only
//!   the container (joining in the child showed it the host's root for a
//!   moment). It holds no descriptor of a cgroupfs directory either: we move
//!   it into the container's cgroup by path before it does anything, rather
//!   than cloning it there with `CLONE_INTO_CGROUP` (whose directory
//!   descriptor it would inherit, and through `/proc/<pid>/fd` lead such a
//!   process to every cgroup's files); measured cost: +2 to 7 ms per
//!   `engine-runc exec` on a loaded host.
//! - **No leaked working directory (CVE-2024-21626 class).** `process.cwd` is
//!   entered inside the container's root, then checked with the kernel's
//!   `getcwd`, which names a directory not reachable from the current root
//!   `(unreachable)...`: a cwd such as `/proc/self/fd/7` that resolves to a
//!   host directory descriptor (a runtime's, or one a caller passed with
//!   `--preserve-fds`) is refused with an error naming `process.cwd`. The
//!   container's process gets only descriptors 0-2 and those asked for.
//!
//! ```no_run
//! use engine_core::{ContainerId, ContainerStatus, CreateOptions, Runtime, Signal, StdioSpec};
//! use engine_runtime::{LinuxRuntime, OciRuntime};
//!
//! # async fn demo() -> engine_core::Result<()> {
//! // The default runtime (engine-runc, found next to the executable or in PATH)...
//! let rt: Box<dyn Runtime> = Box::new(LinuxRuntime::new()?.root("/run/my-engine"));
//! // ...or any runc-compatible one, with the same create-flow:
//! let _runc: Box<dyn Runtime> = Box::new(OciRuntime::runc()?.root("/run/my-engine-runc"));
//!
//! let id = ContainerId::new("hello")?;
//! let (out_r, out_w) = nix::unistd::pipe().map_err(|e| engine_core::Error::io("pipe", e.into()))?;
//! let stdio = StdioSpec { stdout: Some(out_w), ..StdioSpec::null() };
//! let pid = rt.create(&id, "/srv/bundles/hello".as_ref(), CreateOptions::default().stdio(stdio)).await?;
//! assert_eq!(rt.state(&id).await?.status, ContainerStatus::Created); // the init waits for start
//! rt.start(&id).await?; // the user process execs; its output arrives on out_r
//! rt.kill(&id, Signal::TERM, false).await?;
//! rt.delete(&id, true).await?;
//! # drop((out_r, pid)); Ok(()) }
//! ```
#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod cgroups;
#[cfg(feature = "cli")]
pub mod cli;
pub mod linux;
mod linux_runtime;
pub mod oci;
pub mod sealed;
pub mod seccomp;

pub use linux_runtime::LinuxRuntime;
pub use oci::OciRuntime;
