//! # engine-runtime
//!
//! runc's role in the engine: turn an OCI bundle (`config.json` + rootfs)
//! into a running, isolated process, then get out of the way.
//!
//! | part | what it is |
//! |---|---|
//! | [`LinuxRuntime`] | the default [`engine_core::Runtime`]: drives this crate's `engine-runc` binary |
//! | [`OciRuntime`] | the same trait over any runc-compatible binary: `engine-runc`, runc, crun, youki, a Kata-style runtime |
//! | `engine-runc` | a runc-compatible command line (`create`, `start`, `run`, `state`, `kill`, `delete`, `exec`, `pause`, `resume`, `ps`, `events`, `spec`, `features`), usable by containerd's runc shim, podman `--runtime` and docker `--add-runtime` |
//! | [`linux`] | the container builder behind `engine-runc`: namespaces, mounts, pivot_root, devices, capabilities, rlimits, console, hooks |
//! | [`cgroups`] | container cgroups on v1, v2 and hybrid hosts, `linux.resources`, freezer, stats |
//! | [`seccomp`] | `linux.seccomp` compiled with libseccomp, loaded right before `execve` |
//!
//! Container-building code forks and clones, so it runs only in the
//! single-threaded `engine-runc` process; async callers (shims, the lifecycle
//! manager, an application embedding the engine) reach it through
//! [`LinuxRuntime`] / [`OciRuntime`], which start one short-lived runtime
//! process per operation with `tokio::process`.
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
//! let pid = rt.create(&id, "/srv/bundles/hello".as_ref(), CreateOptions { stdio, ..Default::default() }).await?;
//! assert_eq!(rt.state(&id).await?.status, ContainerStatus::Created); // the init waits for start
//! rt.start(&id).await?; // the user process execs; its output arrives on out_r
//! rt.kill(&id, Signal::TERM, false).await?;
//! rt.delete(&id, true).await?;
//! # drop((out_r, pid)); Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod cgroups;
pub mod linux;
pub mod oci;
pub mod seccomp;

pub use oci::{LinuxRuntime, OciRuntime};
