//! The shim tier: one small process per container that parents it, holds
//! its stdio, writes its log, records its exit, and outlives its launcher.

use crate::{ConsoleSize, ContainerId, ContainerStatus, ExitStatus, Pid, Result, Signal, Stats, StdStream};
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::pin::Pin;

/// Which OCI runtime binary a shim drives, and how.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RuntimeBinary {
    /// Name for messages (`"engine-runc"`, `"runc"`, `"crun"`).
    pub name: String,
    /// Path of the binary.
    pub path: PathBuf,
    /// Its state root (`--root`); `None` uses the runtime's default.
    pub root: Option<PathBuf>,
    /// Extra global arguments placed before the command.
    #[serde(default)]
    pub args: Vec<String>,
    /// How long a launch (the shim's start and this runtime's `create`) may
    /// take; `None`: the launcher's default (120 s). A runtime whose create
    /// bounds itself by its own, longer rule (the `vm` runtime's boot goes on
    /// while the guest makes progress on a loaded host) sets a longer one,
    /// so that its own error, not the launcher's timeout, reaches the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_timeout: Option<std::time::Duration>,
}
impl RuntimeBinary {
    /// The runtime `name` at `path`, default root, no extra args.
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        RuntimeBinary { name: name.into(), path: path.into(), root: None, args: Vec::new(), create_timeout: None }
    }
}

crate::setters::setters!(RuntimeBinary { name: String, path: PathBuf, root: Option<PathBuf>, args: Vec<String>, create_timeout: Option<std::time::Duration> });

/// Log settings for the shim's log writer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LogConfig {
    /// The log file (`<id>-json.log`).
    pub path: PathBuf,
    /// Rotate when the file reaches this many bytes (`None`: never).
    pub max_size: Option<u64>,
    /// How many rotated files to keep besides the live one.
    pub max_files: u32,
    /// The file's encoding (json-file unless told).
    #[serde(default)]
    pub format: crate::logs::LogFormat,
    /// A log plugin's FIFO: every entry is also written there, framed as
    /// Docker's plugin protocol has it.
    #[serde(default)]
    pub fifo: Option<PathBuf>,
}

crate::setters::setters!(LogConfig { path: PathBuf, max_size: Option<u64>, max_files: u32, format: crate::logs::LogFormat, fifo: Option<PathBuf> });

impl LogConfig {
    /// A json-file log at `path`, never rotated.
    pub fn json_file(path: impl Into<PathBuf>) -> Self {
        LogConfig { path: path.into(), max_size: None, max_files: 0, format: Default::default(), fifo: None }
    }
}

/// Everything a launcher tells a new shim.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LaunchRequest {
    /// The container id.
    pub id: ContainerId,
    /// The OCI bundle (`config.json` and the rootfs).
    pub bundle: PathBuf,
    /// The shim's own directory: its socket, pid file and exit record live here.
    pub state_dir: PathBuf,
    /// The runtime to drive.
    pub runtime: RuntimeBinary,
    /// Where the container's output is logged.
    pub log: Option<LogConfig>,
    /// Keep the container's stdin open for attach clients.
    pub open_stdin: bool,
    /// When set, the shim kills and deletes the container once this process
    /// dies (a test binary killed by SIGKILL leaks nothing).
    pub owner_pid: Option<Pid>,
}
impl LaunchRequest {
    /// Launch a shim for container `id` from `bundle`, keeping its state in
    /// `state_dir` and running `runtime`; no log, stdin closed, no owner.
    pub fn new(
        id: ContainerId,
        bundle: impl Into<PathBuf>,
        state_dir: impl Into<PathBuf>,
        runtime: RuntimeBinary,
    ) -> Self {
        LaunchRequest {
            id,
            bundle: bundle.into(),
            state_dir: state_dir.into(),
            runtime,
            log: None,
            open_stdin: false,
            owner_pid: None,
        }
    }
}

crate::setters::setters!(LaunchRequest { id: ContainerId, bundle: PathBuf, state_dir: PathBuf, runtime: RuntimeBinary, log: Option<LogConfig>, open_stdin: bool, owner_pid: Option<Pid> });

/// Which process of the container an operation is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProcessRef {
    /// The container's init.
    Init,
    /// An exec'd process, by its exec id.
    Exec(String),
}

impl ProcessRef {
    /// The exec id, or `None` for the init.
    pub fn exec_id(&self) -> Option<&str> {
        match self {
            ProcessRef::Init => None,
            ProcessRef::Exec(s) => Some(s),
        }
    }
}

/// A process's state as the shim sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProcessState {
    /// Status (`Created` until started, `Stopped` after exit).
    pub status: ContainerStatus,
    /// Host pid (0 before create).
    pub pid: Pid,
    /// Exit status once it exited.
    pub exit: Option<ExitStatus>,
}
impl ProcessState {
    /// A process with `status` and host `pid`, no exit yet.
    pub fn new(status: ContainerStatus, pid: Pid) -> Self {
        ProcessState { status, pid, exit: None }
    }
}

crate::setters::setters!(ProcessState { status: ContainerStatus, pid: Pid, exit: Option<ExitStatus> });

/// A chunk of output from an attached process.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    /// stdout or stderr (a terminal's output is stdout).
    pub stream: StdStream,
    /// The bytes.
    pub data: Bytes,
}

/// What to attach to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AttachOptions {
    /// Forward the client's input to the process's stdin.
    pub stdin: bool,
    /// Receive stdout.
    pub stdout: bool,
    /// Receive stderr.
    pub stderr: bool,
}

crate::setters::setters!(AttachOptions { stdin: bool, stdout: bool, stderr: bool });

/// A live attachment: input toward the process, output from it. Several
/// clients may be attached at once; dropping this detaches without
/// affecting the process.
pub struct Attach {
    /// Writes go to the process's stdin; shutting it down closes that stdin
    /// (when the process was started with open stdin). `None` unless asked.
    pub stdin: Option<Pin<Box<dyn tokio::io::AsyncWrite + Send>>>,
    /// Output chunks as they are read; ends when the process's output closes.
    pub output: BoxStream<'static, Result<Output>>,
}

impl std::fmt::Debug for Attach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attach").field("stdin", &self.stdin.is_some()).finish_non_exhaustive()
    }
}

/// What a shim reports as it happens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ShimEvent {
    /// The init was started.
    Started {
        /// Host pid.
        pid: Pid,
    },
    /// A process exited (its status is on disk before this is sent).
    Exited {
        /// Which process.
        process: ProcessRef,
        /// How it ended.
        status: ExitStatus,
    },
    /// The kernel's OOM killer acted in the container's cgroup.
    Oom,
    /// Frozen.
    Paused,
    /// Thawed.
    Resumed,
    /// An exec process was started.
    ExecStarted {
        /// Its exec id.
        exec_id: String,
        /// Its host pid.
        pid: Pid,
    },
}

/// Specification of an extra process for [`Shim::exec`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExecRequest {
    /// A caller-chosen id, unique within the container.
    pub exec_id: String,
    /// The OCI process (args, env, cwd, user, terminal, ...).
    pub process: oci_spec::runtime::Process,
    /// Keep stdin open for attach.
    pub open_stdin: bool,
}

crate::setters::setters!(ExecRequest { exec_id: String, process: oci_spec::runtime::Process, open_stdin: bool });

/// One running shim, as its launcher sees it. Implemented by the gRPC client
/// in `engine-shim`; any other transport can implement it too.
#[async_trait]
pub trait Shim: Send + Sync {
    /// The container this shim owns.
    fn id(&self) -> &ContainerId;
    /// The shim process's pid.
    async fn shim_pid(&self) -> Result<Pid>;
    /// Start the init (after the runtime's create); returns its pid.
    async fn start(&self) -> Result<Pid>;
    /// State of the init or an exec.
    async fn state(&self, process: &ProcessRef) -> Result<ProcessState>;
    /// Send a signal to a process, or with `all` to every process of the container.
    async fn kill(&self, process: &ProcessRef, signal: Signal, all: bool) -> Result<()>;
    /// Wait for a process to exit; returns at once if it already has.
    async fn wait(&self, process: &ProcessRef) -> Result<ExitStatus>;
    /// Start an extra process in the running container; returns its pid.
    ///
    /// Optional: the default refuses with [`Error::Unsupported`](crate::Error::Unsupported).
    async fn exec(&self, req: ExecRequest) -> Result<Pid> {
        let _ = req;
        Err(shim_unsupported(self.id(), "exec"))
    }
    /// Attach to a process's live stdio.
    async fn attach(&self, process: &ProcessRef, opts: AttachOptions) -> Result<Attach>;
    /// Resize a process's terminal.
    ///
    /// Optional: the default refuses with [`Error::Unsupported`](crate::Error::Unsupported).
    async fn resize(&self, process: &ProcessRef, size: ConsoleSize) -> Result<()> {
        let _ = (process, size);
        Err(shim_unsupported(self.id(), "resize"))
    }
    /// Close a process's stdin (EOF for the process).
    async fn close_stdin(&self, process: &ProcessRef) -> Result<()>;
    /// Freeze the container.
    ///
    /// Optional: the default refuses with [`Error::Unsupported`](crate::Error::Unsupported).
    async fn pause(&self) -> Result<()> {
        Err(shim_unsupported(self.id(), "pause"))
    }
    /// Thaw the container.
    ///
    /// Optional: the default refuses with [`Error::Unsupported`](crate::Error::Unsupported).
    async fn resume(&self) -> Result<()> {
        Err(shim_unsupported(self.id(), "resume"))
    }
    /// Resource usage.
    ///
    /// Optional: the default refuses with [`Error::Unsupported`](crate::Error::Unsupported).
    async fn stats(&self) -> Result<Stats> {
        Err(shim_unsupported(self.id(), "stats"))
    }
    /// Change the container's cgroup resources through the runtime
    /// ([`Runtime::update`](crate::Runtime::update)).
    ///
    /// Optional: the default refuses with [`Error::Unsupported`](crate::Error::Unsupported).
    async fn update(&self, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        let _ = resources;
        Err(shim_unsupported(self.id(), "update"))
    }
    /// Reopen the init's log file at the same path (after whoever rotates
    /// it renamed it: kubelet, logrotate); later lines go to the new file.
    ///
    /// Optional: the default refuses with [`Error::Unsupported`](crate::Error::Unsupported).
    async fn reopen_log(&self) -> Result<()> {
        Err(shim_unsupported(self.id(), "reopen_log"))
    }
    /// Delete the container through the runtime (it must have exited, or be
    /// killed first); the shim exits afterwards. Returns the init's exit.
    async fn delete(&self) -> Result<Option<ExitStatus>>;
    /// Ask the shim to exit (only once the container is deleted).
    async fn shutdown(&self) -> Result<()>;
    /// Events from now on.
    async fn events(&self) -> Result<BoxStream<'static, Result<ShimEvent>>>;
}

/// Starts shims, or reconnects to running ones.
#[async_trait]
pub trait ShimLauncher: Send + Sync {
    /// Launch a shim that creates the container (runtime `create`); returns
    /// once the container is created, with a client for it.
    async fn launch(&self, req: LaunchRequest) -> Result<Box<dyn Shim>>;
    /// Reconnect to the shim whose state dir is `state_dir`. A shim that is
    /// gone gives [`crate::Error::Unavailable`]; its recorded exit, if any, is
    /// readable with [`ShimLauncher::recorded_exit`].
    async fn connect(&self, id: &ContainerId, state_dir: &std::path::Path) -> Result<Box<dyn Shim>>;
    /// The exit status a shim wrote to `state_dir` before reporting it, if any.
    async fn recorded_exit(&self, state_dir: &std::path::Path) -> Result<Option<ExitStatus>>;
}

/// The error an optional [`Shim`] method's default body returns.
fn shim_unsupported(id: &ContainerId, op: &str) -> crate::Error {
    crate::Error::Unsupported(format!("the shim of container {id} does not support {op}"))
}
