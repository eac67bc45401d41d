//! The typed container config and the container handle.

use crate::WaitFor;
pub use engine_build::CommitOptions;
use engine_core::{
    AttachOptions, CgroupnsMode, ContainerConfig, ContainerInfo, ContainerState, DeviceMapping, Error, ExecConfig,
    ExitStatus, LifecycleManager, LogEntry, LogOptions, MountSpec, NetworkMode, RestartPolicy, Result, SeccompProfile,
    Signal, StdStream, WaitCondition,
};
use futures::stream::BoxStream;
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// A typed container config for [`crate::Engine::run`]: what a test harness
/// or a worker pool writes.
///
/// ```
/// use engine::{ContainerBuilder, WaitFor};
/// let b = ContainerBuilder::new("busybox:latest")
///     .cmd(["sh", "-c", "echo ready; sleep 60"])
///     .env("MODE", "test")
///     .memory(64 << 20)
///     .tmpfs("/scratch")
///     .label("suite", "e2e")
///     .wait_for(WaitFor::stdout("ready"));
/// assert_eq!(b.config().env, vec!["MODE=test".to_string()]);
/// ```
#[derive(Clone, Debug)]
pub struct ContainerBuilder {
    config: ContainerConfig,
    pub(crate) waits: Vec<WaitFor>,
    pub(crate) startup_timeout: Option<Duration>,
    keep: bool,
}

impl ContainerBuilder {
    /// A container of `image` (reference or id) with the image's defaults.
    pub fn new(image: impl Into<String>) -> Self {
        ContainerBuilder {
            config: ContainerConfig::default().image(image.into()),
            waits: Vec::new(),
            startup_timeout: None,
            keep: false,
        }
    }
    /// Start from a full [`ContainerConfig`].
    pub fn from_config(config: ContainerConfig) -> Self {
        ContainerBuilder { config, waits: Vec::new(), startup_timeout: None, keep: false }
    }
    /// Its name (default: a generated one).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = Some(name.into());
        self
    }
    /// The command (replaces the image's Cmd).
    pub fn cmd<I: IntoIterator<Item = S>, S: Into<String>>(mut self, cmd: I) -> Self {
        self.config.cmd = Some(cmd.into_iter().map(Into::into).collect());
        self
    }
    /// The entrypoint (replaces the image's Entrypoint and resets its Cmd).
    pub fn entrypoint<I: IntoIterator<Item = S>, S: Into<String>>(mut self, ep: I) -> Self {
        self.config.entrypoint = Some(ep.into_iter().map(Into::into).collect());
        self
    }
    /// An environment variable.
    pub fn env(mut self, key: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        self.config.env.push(format!("{}={}", key.as_ref(), value.as_ref()));
        self
    }
    /// The user (`name`, `uid`, `user:group`, `uid:gid`).
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.config.user = Some(user.into());
        self
    }
    /// The working directory.
    pub fn workdir(mut self, dir: impl Into<String>) -> Self {
        self.config.working_dir = Some(dir.into());
        self
    }
    /// The hostname.
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.config.hostname = Some(name.into());
        self
    }
    /// Allocate a terminal.
    pub fn tty(mut self, tty: bool) -> Self {
        self.config.tty = tty;
        self
    }
    /// Keep stdin open for attach.
    pub fn open_stdin(mut self, open: bool) -> Self {
        self.config.open_stdin = open;
        self
    }
    /// Bind-mount a host path (read-write).
    pub fn bind(mut self, source: impl Into<PathBuf>, target: impl Into<String>) -> Self {
        self.config.mounts.push(MountSpec::Bind { source: source.into(), target: target.into(), read_only: false });
        self
    }
    /// Bind-mount a host path read-only.
    pub fn bind_ro(mut self, source: impl Into<PathBuf>, target: impl Into<String>) -> Self {
        self.config.mounts.push(MountSpec::Bind { source: source.into(), target: target.into(), read_only: true });
        self
    }
    /// Mount a fresh tmpfs.
    pub fn tmpfs(mut self, target: impl Into<String>) -> Self {
        self.config.mounts.push(MountSpec::Tmpfs { target: target.into(), size: None });
        self
    }
    /// Mount a named volume (created on first use).
    pub fn volume(mut self, name: impl Into<String>, target: impl Into<String>) -> Self {
        self.config.mounts.push(MountSpec::Volume {
            name: name.into(),
            target: target.into(),
            read_only: false,
            no_copy: false,
        });
        self
    }
    /// Memory limit in bytes.
    pub fn memory(mut self, bytes: i64) -> Self {
        self.config.resources.memory = Some(bytes);
        self
    }
    /// CPU limit (1.5 = one and a half CPUs).
    pub fn cpus(mut self, cpus: f64) -> Self {
        self.config.resources.cpus = Some(cpus);
        self
    }
    /// Maximum number of processes.
    pub fn pids_limit(mut self, n: i64) -> Self {
        self.config.resources.pids_limit = Some(n);
        self
    }
    /// A label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.labels.insert(key.into(), value.into());
        self
    }
    /// The runtime, by name (`"engine-runc"`, `"runc"`, `"crun"`) or absolute path.
    pub fn runtime(mut self, runtime: impl Into<String>) -> Self {
        self.config.runtime = Some(runtime.into());
        self
    }
    /// Network mode (default: its own namespace with loopback only).
    pub fn network(mut self, mode: NetworkMode) -> Self {
        self.config.network = mode;
        self
    }
    /// Publish `container_port`/tcp on a free host port (read it back with
    /// [`Container::host_port`]). A container still in the default mode goes
    /// on the default bridge network; the engine needs a network driver
    /// ([`crate::EngineBuilder::network_driver`]).
    pub fn publish(self, container_port: u16) -> Self {
        self.publish_binding(engine_core::network::PortBinding::new(
            engine_core::network::Protocol::Tcp,
            container_port,
        ))
    }
    /// Publish a port as docker's `-p` does (parse one with
    /// [`engine_core::network::PortBinding::parse`]).
    pub fn publish_binding(mut self, binding: engine_core::network::PortBinding) -> Self {
        if self.config.network == NetworkMode::None {
            self.config.network = NetworkMode::Bridge;
        }
        self.config.ports.push(binding);
        self
    }
    /// Restart policy.
    pub fn restart(mut self, policy: RestartPolicy) -> Self {
        self.config.restart = policy;
        self
    }
    /// Remove the container once it exits.
    pub fn auto_remove(mut self, yes: bool) -> Self {
        self.config.auto_remove = yes;
        self
    }
    /// The log driver (`json-file`, `local`, `none`, or a log plugin's name;
    /// docker's `--log-driver`). Its options are checked at create.
    pub fn log_driver(mut self, driver: impl Into<String>) -> Self {
        self.config.log.driver = driver.into();
        self
    }
    /// A log driver option (docker's `--log-opt`), such as `max-size=10m`
    /// or `max-file=3`.
    pub fn log_opt(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.log.opts.insert(key.into(), value.into());
        self
    }
    /// Mount the root filesystem read-only.
    pub fn read_only_rootfs(mut self, yes: bool) -> Self {
        self.config.read_only_rootfs = yes;
        self
    }
    // ---- Confinement. The default is docker's: its 14 capabilities, its
    // seccomp profile, masked and read-only paths, only the default devices.
    /// Privileged: every capability the engine holds, all host devices, no
    /// seccomp, no masked or read-only paths, writable `/sys` and `/proc/sys`.
    pub fn privileged(mut self, yes: bool) -> Self {
        self.config.security.privileged = yes;
        self
    }
    /// Add a capability to the default set (`"NET_ADMIN"`, `"CAP_NET_ADMIN"`,
    /// `"ALL"`; case-insensitive; an unknown name fails `run`/`create`).
    pub fn cap_add(mut self, cap: impl Into<String>) -> Self {
        self.config.security.cap_add.push(cap.into());
        self
    }
    /// Drop a capability from the default set (`"ALL"` drops every one).
    pub fn cap_drop(mut self, cap: impl Into<String>) -> Self {
        self.config.security.cap_drop.push(cap.into());
        self
    }
    /// The seccomp profile (default: docker's default profile).
    pub fn seccomp(mut self, profile: SeccompProfile) -> Self {
        self.config.security.seccomp = profile;
        self
    }
    /// Set `no_new_privs`: setuid binaries and file capabilities grant nothing.
    pub fn no_new_privileges(mut self, yes: bool) -> Self {
        self.config.security.no_new_privileges = yes;
        self
    }
    /// Add a host device (see [`DeviceMapping`], or parse `"/dev/x:/dev/y:rw"`).
    pub fn device(mut self, device: DeviceMapping) -> Self {
        self.config.security.devices.push(device);
        self
    }
    /// Add a supplementary group (a name in the image's `/etc/group`, or a number).
    pub fn group_add(mut self, group: impl Into<String>) -> Self {
        self.config.security.group_add.push(group.into());
        self
    }
    /// Set a namespaced sysctl (`kernel.shm*`, `kernel.msg*`, `kernel.sem`,
    /// `fs.mqueue.*`, `net.*` with its own network namespace).
    pub fn sysctl(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.security.sysctls.insert(key.into(), value.into());
        self
    }
    /// Its cgroup namespace (docker's `--cgroupns`). The default is
    /// docker's: a namespace of its own on a cgroup v2 host, the host's on a
    /// v1 or hybrid one.
    ///
    /// ```no_run
    /// # async fn f(engine: &engine::Engine) -> engine::Result<()> {
    /// use engine::{CgroupnsMode, ContainerBuilder};
    /// let c = engine
    ///     .run(ContainerBuilder::new("busybox:latest").cmd(["cat", "/proc/self/cgroup"]).cgroupns(CgroupnsMode::Private))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn cgroupns(mut self, mode: CgroupnsMode) -> Self {
        self.config.cgroupns = mode;
        self
    }
    /// Run a small init as pid 1 that forwards signals and reaps zombies.
    pub fn init(mut self, yes: bool) -> Self {
        self.config.init = yes;
        self
    }
    /// Add a readiness strategy (several run in order).
    pub fn wait_for(mut self, w: WaitFor) -> Self {
        self.waits.push(w);
        self
    }
    /// Startup timeout for this container (default: the engine's).
    pub fn startup_timeout(mut self, t: Duration) -> Self {
        self.startup_timeout = Some(t);
        self
    }
    /// Keep the container when the handle is dropped (it is still bound to
    /// this process unless the engine was built `unbound`).
    pub fn keep_on_drop(mut self) -> Self {
        self.keep = true;
        self
    }
    /// The config built so far.
    pub fn config(&self) -> &ContainerConfig {
        &self.config
    }
    pub(crate) fn into_parts(self) -> (ContainerConfig, Vec<WaitFor>, Option<Duration>, bool) {
        (self.config, self.waits, self.startup_timeout, self.keep)
    }
}

/// What an exec printed and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecOutput {
    /// Its exit code (a value, not an error).
    pub exit_code: i32,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr.
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// stdout as (lossy) UTF-8.
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    /// stderr as (lossy) UTF-8.
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// A handle on one container. Dropping it removes the container (in a
/// multi-threaded runtime before `drop` returns; in a current-thread runtime
/// in a spawned task, see [`crate::Engine::settle`]), unless it was built
/// with [`ContainerBuilder::keep_on_drop`] or removed already.
pub struct Container {
    info: ContainerInfo,
    mgr: Arc<dyn LifecycleManager>,
    keep: bool,
    removed: bool,
    pending: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    /// Where its published ports are reachable (the network driver's host
    /// namespace; `None`: this process's).
    pub(crate) host_netns: Option<std::path::PathBuf>,
    /// The image store its root filesystem lives in (for commit).
    pub(crate) images: Option<Arc<dyn engine_core::ImageStore>>,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container").field("id", &self.info.id).field("name", &self.info.name).finish()
    }
}

impl Container {
    pub(crate) fn new(
        info: ContainerInfo,
        mgr: Arc<dyn LifecycleManager>,
        keep: bool,
        pending: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    ) -> Self {
        Container { info, mgr, keep, removed: false, pending, host_netns: None, images: None }
    }

    /// Make an image of the container's changes on top of its image, with
    /// its run config and `options.changes` applied (`docker commit`).
    pub async fn commit(&self, options: CommitOptions) -> Result<engine_core::ImageInfo> {
        let images = self
            .images
            .clone()
            .ok_or_else(|| engine_core::Error::Unsupported("this handle has no image store to commit to".into()))?;
        engine_build::commit_container(self.mgr.as_ref(), images.as_ref(), &self.info.id, options).await
    }

    /// Its id.
    pub fn id(&self) -> &str {
        &self.info.id
    }
    /// Its name.
    pub fn name(&self) -> &str {
        &self.info.name
    }
    /// What the manager said at create.
    pub fn created_info(&self) -> &ContainerInfo {
        &self.info
    }
    pub(crate) fn manager(&self) -> &Arc<dyn LifecycleManager> {
        &self.mgr
    }
    /// The host port `container_port`/tcp was published on (the first
    /// network's), as testcontainers' `get_host_port_ipv4`.
    pub fn host_port(&self, container_port: u16) -> Option<u16> {
        self.published(engine_core::network::Protocol::Tcp, container_port)
    }
    /// The host port of `container_port` over `protocol`.
    pub fn published(&self, protocol: engine_core::network::Protocol, container_port: u16) -> Option<u16> {
        self.info
            .networks
            .values()
            .flat_map(|e| e.ports.iter())
            .find(|p| p.protocol == protocol && p.container_port == container_port)
            .map(|p| p.host_port)
    }
    /// Its IPv4 address on its (first) network, reachable from the host.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        self.info.networks.values().find_map(|e| e.ipv4.map(|p| p.addr()))
    }
    /// Its current state.
    pub async fn inspect(&self) -> Result<ContainerInfo> {
        self.mgr.inspect(&self.info.id).await
    }
    /// Start it.
    pub async fn start(&self) -> Result<()> {
        self.mgr.start(&self.info.id).await
    }
    /// Stop it (stop signal, SIGKILL after `grace`).
    pub async fn stop(&self, grace: Option<Duration>) -> Result<()> {
        self.mgr.stop(&self.info.id, grace).await
    }
    /// Send a signal.
    pub async fn kill(&self, signal: Signal) -> Result<()> {
        self.mgr.kill(&self.info.id, signal).await
    }
    /// Wait until it is not running; its exit status.
    pub async fn wait(&self) -> Result<ExitStatus> {
        self.mgr.wait(&self.info.id, WaitCondition::NotRunning).await
    }
    /// Its log (stored lines; with `follow`, live ones until it exits).
    pub async fn logs(&self, opts: LogOptions) -> Result<BoxStream<'static, Result<LogEntry>>> {
        self.mgr.logs(&self.info.id, opts).await
    }
    /// Everything it wrote to stdout so far.
    pub async fn stdout(&self) -> Result<String> {
        self.log_text(true).await
    }
    /// Everything it wrote to stderr so far.
    pub async fn stderr(&self) -> Result<String> {
        self.log_text(false).await
    }
    async fn log_text(&self, stdout: bool) -> Result<String> {
        let mut s = self.logs(LogOptions::default().stdout(stdout).stderr(!stdout)).await?;
        let mut out = String::new();
        while let Some(e) = s.next().await {
            out.push_str(&String::from_utf8_lossy(&e?.line));
        }
        Ok(out)
    }

    /// Run a command in the container; its output and exit code.
    pub async fn exec<I: IntoIterator<Item = S>, S: Into<String>>(&self, cmd: I) -> Result<ExecOutput> {
        self.exec_with(ExecConfig::default().cmd(cmd.into_iter().map(Into::into).collect()), None).await
    }

    /// Run a process with full control and, optionally, bytes for its stdin.
    pub async fn exec_with(&self, mut config: ExecConfig, stdin: Option<Vec<u8>>) -> Result<ExecOutput> {
        config.open_stdin = stdin.is_some();
        let exec_id = self.mgr.exec(&self.info.id, config).await?;
        let att = self
            .mgr
            .exec_attach(&exec_id, AttachOptions::default().stdin(stdin.is_some()).stdout(true).stderr(true))
            .await?;
        let feeder = match (att.stdin, stdin) {
            (Some(mut w), Some(data)) => Some(tokio::spawn(async move {
                let _ = w.write_all(&data).await;
                let _ = w.shutdown().await;
            })),
            _ => None,
        };
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let mut output = att.output;
        while let Some(o) = output.next().await {
            let o = o?;
            match o.stream {
                StdStream::Stderr => stderr.extend_from_slice(&o.data),
                _ => stdout.extend_from_slice(&o.data),
            }
        }
        if let Some(f) = feeder {
            let _ = f.await;
        }
        let st = self.mgr.exec_wait(&exec_id).await?;
        Ok(ExecOutput { exit_code: st.code, stdout, stderr })
    }

    /// The container's root as its processes see it (mounts included)
    /// while it runs, else its root filesystem.
    async fn root(&self) -> Result<engine_archive::ContainerRoot> {
        let info = self.mgr.inspect(&self.info.id).await?;
        let rootfs = info.bundle.join("rootfs");
        let pid = if matches!(info.state, ContainerState::Running | ContainerState::Paused) { info.pid } else { None };
        blocking(move || engine_archive::ContainerRoot::open(pid, &rootfs)).await
    }

    /// Copy a host file or directory into the container, under the
    /// container directory `dest_dir` (made if missing). Every path in the
    /// container is resolved inside its root (no tool is needed in the
    /// image, and a link in the container never leads to the host).
    pub async fn copy_in(&self, host_path: impl AsRef<Path>, dest_dir: &str) -> Result<()> {
        let src = host_path.as_ref().to_path_buf();
        let prefix = dest_dir.trim_matches('/').to_string();
        let tar = blocking(move || -> Result<Vec<u8>> {
            let mut b = tar::Builder::new(Vec::new());
            b.follow_symlinks(false);
            let name = src
                .file_name()
                .ok_or_else(|| Error::invalid("copy source", format!("{} has no file name", src.display())))?;
            let name = Path::new(&prefix).join(name);
            let meta = std::fs::metadata(&src).map_err(|e| Error::io(format!("copy source {}", src.display()), e))?;
            let r = if meta.is_dir() { b.append_dir_all(&name, &src) } else { b.append_path_with_name(&src, &name) };
            r.map_err(|e| Error::io(format!("packing {}", src.display()), e))?;
            b.into_inner().map_err(|e| Error::io("finishing the tar stream", e))
        })
        .await?;
        self.untar_in(tar).await
    }

    /// Write `data` as the file `path` in the container (mode 0644; missing
    /// directories are made).
    pub async fn copy_file_in(&self, path: &str, data: &[u8]) -> Result<()> {
        let rel = path.trim_start_matches('/');
        if !path.starts_with('/') || rel.is_empty() || path.ends_with('/') {
            return Err(Error::invalid("container path", format!("{path:?} is not an absolute file path")));
        }
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        );
        b.append_data(&mut h, rel, data).map_err(|e| Error::io("packing the file", e))?;
        let tar = b.into_inner().map_err(|e| Error::io("finishing the tar stream", e))?;
        self.untar_in(tar).await
    }

    /// Extract `tar` (names relative to the container's `/`).
    async fn untar_in(&self, tar: Vec<u8>) -> Result<()> {
        let root = self.root().await?;
        let name = self.name().to_string();
        blocking(move || {
            root.extract_tar("/", std::io::Cursor::new(tar), &engine_archive::ExtractOptions::default())
                .map_err(|e| in_container(e, &name))
        })
        .await
    }

    /// The contents of the file `path` in the container.
    pub async fn copy_file_out(&self, path: &str) -> Result<Vec<u8>> {
        let root = self.root().await?;
        let (p, name) = (path.to_string(), self.name().to_string());
        blocking(move || root.read_file(&p).map_err(|e| in_container(e, &name))).await
    }

    /// Copy the file or directory `path` out of the container into the host
    /// directory `host_dir` (unpacked safely: nothing lands outside
    /// `host_dir`; a link is copied as a link).
    pub async fn copy_out(&self, path: &str, host_dir: impl AsRef<Path>) -> Result<()> {
        let root = self.root().await?;
        let (p, name) = (path.to_string(), self.name().to_string());
        let dest = host_dir.as_ref().to_path_buf();
        blocking(move || {
            let mut tar = Vec::new();
            root.write_tar(&p, &mut tar).map_err(|e| in_container(e, &name))?;
            std::fs::create_dir_all(&dest).map_err(|e| Error::io(format!("creating {}", dest.display()), e))?;
            let mut a = tar::Archive::new(std::io::Cursor::new(tar));
            a.set_preserve_permissions(true);
            for entry in a.entries().map_err(|e| Error::io("reading the tar stream", e))? {
                let mut entry = entry.map_err(|e| Error::io("reading the tar stream", e))?;
                // unpack_in refuses paths that would leave `dest`.
                entry.unpack_in(&dest).map_err(|e| Error::io(format!("unpacking into {}", dest.display()), e))?;
            }
            Ok(())
        })
        .await
    }

    /// Remove the container now (killing it if it runs).
    pub async fn remove(mut self) -> Result<()> {
        self.removed = true;
        match self.mgr.remove(&self.info.id, true).await {
            Err(e) if e.is_not_found() => Ok(()),
            r => r,
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.removed || self.keep {
            return;
        }
        let mgr = self.mgr.clone();
        let id = self.info.id.clone();
        let removal = async move {
            if let Err(e) = mgr.remove(&id, true).await {
                if !e.is_not_found() {
                    tracing::warn!(id, "removing a dropped container: {e}");
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| h.block_on(removal));
            }
            Ok(h) => {
                let j = h.spawn(removal);
                self.pending.lock().unwrap().push(j);
            }
            Err(_) => tracing::warn!(
                id = %self.info.id,
                "container handle dropped outside a tokio runtime; its shim removes it when this process exits"
            ),
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Other(format!("copy task: {e}")))?
}

/// Name the container in a path error ("no such path: /x in the container").
fn in_container(e: Error, name: &str) -> Error {
    match e {
        Error::NotFound { kind, id } => {
            Error::NotFound { kind, id: id.replace("the container", &format!("container {name}")) }
        }
        e => e,
    }
}
