//! The Linux container builder behind `engine-runc`: namespaces, rootfs and
//! mounts, devices, capabilities, rlimits, console, hooks and the OCI
//! lifecycle (create, start, state, kill, delete, exec, pause, resume).
//!
//! Everything here forks or clones, so it must run in a **single-threaded**
//! process (the `engine-runc` binary). Async code drives it through the
//! runc-compatible command line, never by calling it in-process.
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
pub mod state;
pub mod sync;
pub mod syscall;
pub mod users;

/// `engine-runc`'s state root when none is given (`--root`).
pub const DEFAULT_ROOT: &str = "/run/engine-runc";

pub use container::{load_spec, CreateOpts, ExecOpts, ListEntry, Runc};
pub use exec::ExecOutcome;
pub use state::State;
