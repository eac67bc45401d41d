//! The runtime tier (runc's role): turns an OCI bundle into a running,
//! isolated process and gets out of the way.

use crate::{ContainerId, Pid, Result, RuntimeState, Signal, Stats, StdioSpec};
use async_trait::async_trait;
use std::path::{Path, PathBuf};

/// Options for [`Runtime::create`].
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct CreateOptions {
    /// The init's stdio, or the console socket when `process.terminal` is set.
    pub stdio: StdioSpec,
    /// Use `MS_MOVE` + `chroot` instead of `pivot_root` (for ramfs roots).
    pub no_pivot: bool,
    /// Where the runtime writes the init's pid, if anywhere.
    pub pid_file: Option<PathBuf>,
}

crate::setters::setters!(CreateOptions { stdio: StdioSpec, no_pivot: bool, pid_file: Option<PathBuf> });

/// Options for [`Runtime::exec`].
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ExecOptions {
    /// The process's stdio, or the console socket when `process.terminal` is set.
    pub stdio: StdioSpec,
    /// Where the runtime writes the process's pid, if anywhere.
    pub pid_file: Option<PathBuf>,
}

crate::setters::setters!(ExecOptions { stdio: StdioSpec, pid_file: Option<PathBuf> });

/// An OCI runtime: the lowest tier. Implementations: `LinuxRuntime` (this
/// project's runtime: the operations that clone nothing run in the caller's
/// process; `create` too when the caller is single-threaded, as the shim is,
/// and joins no existing namespace; `exec`, and `create` from multi-threaded
/// callers or into existing namespaces, through the single-threaded
/// `engine-runc` command line) and `OciRuntime` (any runc-compatible binary,
/// run for every operation: `engine-runc`, runc, crun, youki, a Kata-style
/// runtime).
///
/// `create` returns once the container's init waits for `start`; no runtime
/// process stays behind, so the caller (the shim) is the init's parent when it
/// set itself child subreaper.
///
/// `create`, `start`, `state`, `kill` and `delete` are required; `exec`,
/// `pause`, `resume`, `stats` and `ps` have default bodies that refuse with
/// [`Error::Unsupported`](crate::Error::Unsupported), so a minimal runtime (a
/// VM-isolated one, say) writes only what it supports.
///
/// ```no_run
/// # async fn demo(rt: &dyn engine_core::Runtime) -> engine_core::Result<()> {
/// use engine_core::{ContainerId, CreateOptions};
/// let id = ContainerId::new("demo")?;
/// let pid = rt.create(&id, "/tmp/bundle".as_ref(), CreateOptions::default()).await?;
/// rt.start(&id).await?;
/// println!("init is pid {pid}");
/// # Ok(()) }
/// ```
#[async_trait]
pub trait Runtime: Send + Sync {
    /// A short name for messages and logs (`"engine-runc"`, `"runc"`, ...).
    fn name(&self) -> &str;
    /// Create the container from `bundle`; its init waits for [`Runtime::start`].
    async fn create(&self, id: &ContainerId, bundle: &Path, opts: CreateOptions) -> Result<Pid>;
    /// Release the init: the user process execs.
    async fn start(&self, id: &ContainerId) -> Result<()>;
    /// The OCI state.
    async fn state(&self, id: &ContainerId) -> Result<RuntimeState>;
    /// Send `signal` to the init, or to every process of the container with `all`.
    async fn kill(&self, id: &ContainerId, signal: Signal, all: bool) -> Result<()>;
    /// Remove the container's runtime state and cgroup. `force` kills it first
    /// if it still runs, and succeeds on a container that is already gone.
    async fn delete(&self, id: &ContainerId, force: bool) -> Result<()>;
    /// Run an extra process in the running container; returns its host pid.
    ///
    /// Optional: the default refuses with [`Error::Unsupported`](crate::Error::Unsupported).
    async fn exec(&self, id: &ContainerId, process: &oci_spec::runtime::Process, opts: ExecOptions) -> Result<Pid> {
        let _ = (process, opts);
        Err(unsupported(self.name(), "exec", id))
    }
    /// Freeze every process of the container.
    ///
    /// Optional: the default refuses with [`Error::Unsupported`](crate::Error::Unsupported).
    async fn pause(&self, id: &ContainerId) -> Result<()> {
        Err(unsupported(self.name(), "pause", id))
    }
    /// Thaw a paused container.
    ///
    /// Optional: the default refuses with [`Error::Unsupported`](crate::Error::Unsupported).
    async fn resume(&self, id: &ContainerId) -> Result<()> {
        Err(unsupported(self.name(), "resume", id))
    }
    /// Resource usage from the container's cgroup.
    ///
    /// Optional: the default refuses with [`Error::Unsupported`](crate::Error::Unsupported).
    async fn stats(&self, id: &ContainerId) -> Result<Stats> {
        Err(unsupported(self.name(), "stats", id))
    }
    /// Change the resources (CPU, memory, cpuset, pids) of a created,
    /// running or paused container's cgroup (`runc update --resources`).
    ///
    /// Optional: the default refuses with [`Error::Unsupported`](crate::Error::Unsupported).
    async fn update(&self, id: &ContainerId, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        let _ = resources;
        Err(unsupported(self.name(), "update", id))
    }
    /// Host pids of the container's processes.
    ///
    /// Optional: the default refuses with [`Error::Unsupported`](crate::Error::Unsupported).
    async fn ps(&self, id: &ContainerId) -> Result<Vec<Pid>> {
        Err(unsupported(self.name(), "ps", id))
    }
}

/// The error an optional [`Runtime`] method's default body returns.
fn unsupported(runtime: &str, op: &str, id: &ContainerId) -> crate::Error {
    crate::Error::Unsupported(format!("runtime {runtime} does not support {op} (container {id})"))
}
