//! The Linux container builder behind `engine-runc`: namespaces, rootfs and
//! mounts, devices, capabilities, rlimits, console, hooks and the OCI
//! lifecycle (create, start, state, kill, delete, exec, pause, resume).
//!
//! Everything here forks or clones, so it must run in a **single-threaded**
//! process (the `engine-runc` binary). Async code drives it through the
//! runc-compatible command line, never by calling it in-process.
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

pub use container::{load_spec, CreateOpts, ExecOpts, ListEntry, Runc};
pub use exec::ExecOutcome;
pub use state::State;
