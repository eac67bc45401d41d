//! [`LinuxRuntime`], the default [`Runtime`]: [`OciRuntime`] driving this
//! crate's `engine-runc`, with the operations that are safe in the caller's
//! process done there.

use crate::oci::OciRuntime;
use async_trait::async_trait;
use engine_core::{
    ContainerId, CreateOptions, Error, ExecOptions, Pid, Result, Runtime, RuntimeBinary, RuntimeState, Signal, Stats,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default runtime: this crate's `engine-runc`.
///
/// The container-building code (`create`, `exec`: clone into namespaces) runs
/// in the single-threaded `engine-runc` process, never in a multi-threaded
/// caller's. A single-threaded caller (a shim, which then becomes the init's
/// parent directly) creates containers whose namespaces are all new
/// in-process, which saves starting `engine-runc`. The other operations
/// (`start`, `state`, `kill`, `delete`, `pause`, `resume`, `stats`, `ps`,
/// `update`) only read the state directory, signal and touch cgroup files:
/// they run in the caller's process, on a blocking thread, through
/// [`Runc`](crate::linux::Runc), which saves a process start each. With
/// global arguments (`RuntimeBinary::args`) every operation runs the binary.
/// The binary is found, in order: set
/// explicitly ([`LinuxRuntime::with_binary`]), `$ENGINE_BIN_DIR/engine-runc`,
/// next to the current executable (or one directory up, for test binaries in
/// `target/*/deps`), then `PATH`.
#[derive(Clone, Debug)]
pub struct LinuxRuntime {
    inner: OciRuntime,
}

impl LinuxRuntime {
    /// Find `engine-runc` and drive it.
    pub fn new() -> Result<Self> {
        Ok(Self::with_binary(Self::locate()?))
    }

    /// Drive the `engine-runc` at `binary`.
    pub fn with_binary(binary: impl Into<PathBuf>) -> Self {
        LinuxRuntime { inner: OciRuntime::new(binary).name("engine-runc") }
    }

    /// The `engine-runc` a shim was told to use (binary, name, root, global arguments).
    pub fn from_binary(b: &RuntimeBinary) -> Self {
        LinuxRuntime { inner: OciRuntime::from_binary(b) }
    }

    /// The in-process driver, unless global arguments (`--debug`, `--log`...)
    /// ask for the binary's own handling.
    fn lib(&self) -> Option<crate::linux::Runc> {
        if !self.inner.args.is_empty() {
            return None;
        }
        Some(crate::linux::Runc::new(
            self.inner.root.clone().unwrap_or_else(|| PathBuf::from(crate::linux::DEFAULT_ROOT)),
        ))
    }

    /// Create in this process when that is safe: the driver is in-process,
    /// this process has one thread (clone without exec), and the config joins
    /// no existing namespace (which would move this process into it).
    fn create_here(&self, id: &ContainerId, bundle: &Path, opts: &CreateOptions) -> Option<Result<Pid>> {
        let runc = self.lib()?;
        if threads() != Some(1) || joins_namespaces(bundle) {
            return None;
        }
        let fd = |f: &Option<std::os::fd::OwnedFd>| f.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
        let copts = crate::linux::CreateOpts {
            bundle: bundle.to_path_buf(),
            pid_file: opts.pid_file.clone(),
            console_socket: opts.stdio.console_socket.clone(),
            no_pivot: opts.no_pivot,
            stdio: Some([fd(&opts.stdio.stdin), fd(&opts.stdio.stdout), fd(&opts.stdio.stderr)]),
            ..Default::default()
        };
        Some(runc.create(id, &copts).map_err(|e| {
            if e.is_conflict() {
                e
            } else {
                Error::Runtime { runtime: Runtime::name(self).to_string(), message: format!("create {id}: {e}") }
            }
        }))
    }

    /// Run `op` on the in-process driver on a blocking thread, or, when the
    /// binary must be used, await `binary` (not started otherwise).
    async fn lib_or<T: Send + 'static>(
        &self,
        id: &ContainerId,
        op: impl FnOnce(&crate::linux::Runc, &ContainerId) -> Result<T> + Send + 'static,
        binary: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let Some(runc) = self.lib() else { return binary.await };
        let id = id.clone();
        tokio::task::spawn_blocking(move || op(&runc, &id))
            .await
            .map_err(|e| Error::Other(format!("engine-runc operation panicked: {e}")))?
    }

    /// Where `engine-runc` would be found.
    pub fn locate() -> Result<PathBuf> {
        engine_core::binary::find_engine_binary("engine-runc").ok_or_else(|| {
            Error::not_found(
                "runtime binary",
                "engine-runc (not in $ENGINE_BIN_DIR, next to the current executable, nor in PATH)",
            )
        })
    }

    /// Set the state root (`--root`); `engine-runc`'s default otherwise.
    pub fn root(mut self, root: impl Into<PathBuf>) -> Self {
        self.inner = self.inner.root(root);
        self
    }

    /// How long one runtime command may take.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.inner = self.inner.timeout(timeout);
        self
    }

    /// The underlying command-line driver.
    pub fn oci(&self) -> &OciRuntime {
        &self.inner
    }
}

#[async_trait]
impl Runtime for LinuxRuntime {
    fn name(&self) -> &str {
        Runtime::name(&self.inner)
    }
    async fn create(&self, id: &ContainerId, bundle: &Path, opts: CreateOptions) -> Result<Pid> {
        if let Some(r) = self.create_here(id, bundle, &opts) {
            return r;
        }
        self.inner.create(id, bundle, opts).await
    }
    async fn start(&self, id: &ContainerId) -> Result<()> {
        self.lib_or(id, |r, id| r.start(id), self.inner.start(id)).await
    }
    async fn state(&self, id: &ContainerId) -> Result<RuntimeState> {
        self.lib_or(id, |r, id| r.state(id), self.inner.state(id)).await
    }
    async fn kill(&self, id: &ContainerId, signal: Signal, all: bool) -> Result<()> {
        self.lib_or(id, move |r, id| r.kill(id, signal.number(), all), self.inner.kill(id, signal, all)).await
    }
    async fn delete(&self, id: &ContainerId, force: bool) -> Result<()> {
        match self.lib_or(id, move |r, id| r.delete(id, force), self.inner.delete(id, force)).await {
            Err(e) if force && e.is_not_found() => Ok(()),
            res => res,
        }
    }
    async fn exec(&self, id: &ContainerId, process: &oci_spec::runtime::Process, opts: ExecOptions) -> Result<Pid> {
        self.inner.exec(id, process, opts).await
    }
    async fn pause(&self, id: &ContainerId) -> Result<()> {
        self.lib_or(id, |r, id| r.pause(id), self.inner.pause(id)).await
    }
    async fn resume(&self, id: &ContainerId) -> Result<()> {
        self.lib_or(id, |r, id| r.resume(id), self.inner.resume(id)).await
    }
    async fn stats(&self, id: &ContainerId) -> Result<Stats> {
        self.lib_or(id, |r, id| r.stats(id), self.inner.stats(id)).await
    }
    async fn ps(&self, id: &ContainerId) -> Result<Vec<Pid>> {
        self.lib_or(id, |r, id| r.ps(id), self.inner.ps(id)).await
    }
    async fn update(&self, id: &ContainerId, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        let res = resources.clone();
        self.lib_or(id, move |r, id| r.update(id, &res), self.inner.update(id, resources)).await
    }
}

/// The number of threads of this process.
fn threads() -> Option<usize> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|v| v.trim().parse().ok())
}

/// Whether the bundle's config joins an existing namespace (by path). An
/// unreadable config counts as joining: the binary then reports the problem.
fn joins_namespaces(bundle: &Path) -> bool {
    let Ok(data) = std::fs::read(bundle.join("config.json")) else { return true };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&data) else { return true };
    v["linux"]["namespaces"]
        .as_array()
        .is_some_and(|a| a.iter().any(|n| n.get("path").and_then(|p| p.as_str()).is_some_and(|p| !p.is_empty())))
}
