//! The Linux container builder behind `engine-runc`: namespaces, rootfs and
//! mounts, devices, capabilities, rlimits, console, hooks and the OCI
//! lifecycle (create, start, state, kill, delete, exec, pause, resume).
//!
//! `create`, `run` and `exec` clone without exec, so they must run in a
//! **single-threaded** process (the `engine-runc` binary, or a single-threaded
//! shim); they refuse in a multi-threaded one. The other operations (`start`,
//! `state`, `kill`, `delete`, `pause`, `resume`, `stats`, `ps`, `update`) clone nothing
//! and are safe from any thread: [`crate::LinuxRuntime`] calls [`Runc`] for
//! them in the caller's process (on a blocking thread), calls
//! [`Runc::create`] in-process from a single-threaded caller whose config
//! joins no existing namespace, and runs the `engine-runc` command line for
//! the rest (`exec`, creates from multi-threaded callers or into existing
//! namespaces).
//!
//! ## How `create` works
//!
//! 1. The parent (`engine-runc create`) parses `config.json` once into plans
//!    ([`rootfs::RootfsPlan`], [`namespaces::NsPlan`], [`process::ProcPlan`],
//!    capabilities, rlimits, a compiled seccomp filter), so bad input fails
//!    before anything exists. Then it makes the state dir, `exec.fifo` and
//!    the cgroup.
//! 2. It clones the init straight into the new namespaces (`clone3`, no
//!    re-exec). Parent and init talk over a `SOCK_SEQPACKET` pair
//!    ([`sync`]): the parent writes the id maps and says *go*, joins the init
//!    to its cgroup while the init mounts (the first cgroup migration is the
//!    slowest step on this host), and runs the runtime-side hooks when asked.
//! 3. The init joins and creates namespaces, builds the rootfs, pivots,
//!    applies sysctls, masked and readonly paths, console, rlimits, user,
//!    capabilities and seccomp, resolves `args[0]`, and says *ready* — or
//!    sends its error, which `create` reports after removing everything.
//!    A seccomp profile with `SCMP_ACT_NOTIFY` is loaded before *ready* and
//!    its listener fd comes back over the socket (`SCM_RIGHTS`); the parent
//!    hands it, with the state, to the agent at `listenerPath`, as runc does.
//! 4. The parent writes `state.json`, tells the init *saved* and exits; the
//!    init (which exits instead if the parent dies before that) blocks opening
//!    `exec.fifo` for writing until `start` opens it for reading, then execs.
//!    The cgroup is recorded in the state dir before it is made, so
//!    `delete --force` also cleans up after a `create` killed midway.
//!
//! `run` uses the sync socket instead of the fifo, and waits (forwarding
//! signals, or proxying a pty it keeps itself). `exec` clones a process that
//! joins the init's namespaces and cgroup the same way.
//!
//! ## Where it follows runc (and where not)
//!
//! - Mount destinations are resolved by the kernel inside the rootfs
//!   (`openat2` with `RESOLVE_IN_ROOT`) and mounted on the opened descriptor
//!   (`/proc/self/fd/N`); `proc` and `sysfs` must go on an ordinary directory
//!   (a symlink there is refused, as runc refuses it). The recursive options
//!   (`rro`, `rnosuid`, `rnodev`, `rnoexec`, `rnodiratime`, `rnoatime`,
//!   `rstrictatime`, `rnosymfollow`, and their clearing forms) are set with
//!   `mount_setattr(AT_RECURSIVE)`, so they reach submounts.
//! - Only stdio, the `LISTEN_FDS` descriptors (systemd's socket activation,
//!   when `LISTEN_PID` is the runtime's pid) and the `--preserve-fds` ones
//!   after them reach the container process; every descriptor of the
//!   runtime's own is close-on-exec. A preserved number the caller does not
//!   hold is skipped (runc refuses the command).
//! - In a network namespace of its own (not one joined by path) `lo` is up.
//! - Masked directories show one empty, root-owned, mode 0555 directory of
//!   the state root (`@empty`), and a read-only cgroup v1 `/sys/fs/cgroup`
//!   is a skeleton directory there (`@cgroup-skel-<hash>`, one per layout of
//!   the hierarchies) with the hierarchies mounted on it: read-only,
//!   nosuid, nodev, noexec binds attached with `open_tree`/`move_mount`,
//!   where runc mounts a tmpfs for each. Every superblock costs kernel
//!   memory in every memory cgroup of the machine, so a container holds
//!   none of its own for these. A state root whose `@empty` is not empty or
//!   not root's is refused, naming it. Where the kernel cannot clone mounts
//!   (`ENOSYS`, `EPERM`) the tmpfs is used, as is a writable cgroup mount.
//! - Without `linux.cgroupsPath` the cgroup is `<id>` below the runtime's own
//!   cgroup in each hierarchy, where runc's cgroupfs driver puts it.
//! - A config without a mount namespace shares the host's mount table. runc
//!   then makes the config's mounts on the host (where they outlive the
//!   container) and makes the host's `/` a slave; here such a config runs only
//!   when it asks for no mount (`mounts`, masked and readonly paths,
//!   `root.readonly`, `rootfsPropagation`, `linux.devices` empty): the process
//!   (and every exec'd one) is chrooted into the rootfs and nothing is mounted
//!   or created. Otherwise create fails and says why.
//! - Errors are written to stderr as runc's are (`time="…" level=error
//!   msg="…"`, or a JSON line under `--log-format json`), and to `--log`.
//!
//! The entry point is [`Runc`], one state root (`--root`) holding one
//! directory per container:
//!
//! ```no_run
//! use engine_runtime::linux::{CreateOpts, Runc};
//! # fn demo() -> engine_core::Result<()> {
//! let runc = Runc::new("/run/engine-runc");
//! let id = engine_core::ContainerId::new("demo")?;
//! let pid = runc.create(&id, &CreateOpts::new("/tmp/bundle"))?;
//! runc.start(&id)?;
//! println!("{}", runc.state(&id)?.status);
//! # let _ = pid; Ok(()) }
//! ```

pub mod capabilities;
pub mod console;
mod container;
pub mod devices;
mod exec;
pub mod hooks;
mod init;
pub mod mounts;
pub mod namespaces;
pub mod process;
pub mod rlimits;
pub mod rootfs;
mod shared;
pub mod state;
pub mod sync;
pub mod syscall;
pub mod users;

/// `engine-runc`'s state root when none is given (`--root`).
pub const DEFAULT_ROOT: &str = "/run/engine-runc";

pub use container::{load_spec, CreateOpts, ExecOpts, ListEntry, Runc};
pub use exec::ExecOutcome;
pub use state::State;
