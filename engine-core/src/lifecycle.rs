//! The lifecycle tier (containerd's role): containers from create to remove.

use crate::{Attach, AttachOptions, ConsoleSize, ExitStatus, LogEntry, Pid, Result, Signal, Stats};
use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Validate a container name by Docker's rule, `[a-zA-Z0-9][a-zA-Z0-9_.-]+`
/// (2 to 255 characters, one leading `/` allowed), and return it without the `/`.
/// The error text is Docker's, so the docker CLI shows what it always showed.
///
/// ```
/// use engine_core::lifecycle::validate_container_name;
/// assert_eq!(validate_container_name("/web-1").unwrap(), "web-1");
/// assert!(validate_container_name("bad name").unwrap_err().is_invalid_input());
/// assert!(validate_container_name("a").is_err());
/// ```
pub fn validate_container_name(name: &str) -> Result<String> {
    let n = name.strip_prefix('/').unwrap_or(name);
    let ok = n.len() >= 2
        && n.len() <= 255
        && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(n.to_string())
    } else {
        Err(crate::Error::invalid(
            "container name",
            format!("Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"),
        ))
    }
}

/// A mount into the container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[non_exhaustive]
pub enum MountSpec {
    /// A host path bind-mounted in.
    Bind {
        /// Host path (must exist).
        source: PathBuf,
        /// Path in the container.
        target: String,
        /// Mount read-only.
        #[serde(default)]
        read_only: bool,
    },
    /// A fresh tmpfs.
    Tmpfs {
        /// Path in the container.
        target: String,
        /// Size limit in bytes.
        #[serde(default)]
        size: Option<u64>,
    },
    /// A volume of the manager's [`VolumeDriver`](crate::VolumeDriver),
    /// created on first use. An empty name asks for an anonymous volume
    /// (docker's `-v /path`); the manager records the name it chose.
    Volume {
        /// Volume name (empty: a new anonymous volume).
        name: String,
        /// Path in the container.
        target: String,
        /// Mount read-only.
        #[serde(default)]
        read_only: bool,
        /// Do not copy the image's content at `target` into the volume
        /// when it is empty (docker's `nocopy`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        no_copy: bool,
    },
}

impl MountSpec {
    /// The path in the container.
    pub fn target(&self) -> &str {
        match self {
            MountSpec::Bind { target, .. } | MountSpec::Tmpfs { target, .. } | MountSpec::Volume { target, .. } => {
                target
            }
        }
    }
}

/// Resource limits. `None` leaves a resource unlimited.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Resources {
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// Memory + swap limit in bytes (-1 unlimited swap).
    pub memory_swap: Option<i64>,
    /// CPUs, as a fraction (1.5 = one and a half CPUs).
    pub cpus: Option<f64>,
    /// Relative CPU weight (Docker's cpu-shares, 2-262144).
    pub cpu_shares: Option<u64>,
    /// CPUs allowed (`"0-1"`).
    pub cpuset_cpus: Option<String>,
    /// Maximum number of processes.
    pub pids_limit: Option<i64>,
}

crate::setters::setters!(Resources { memory: Option<i64>, memory_swap: Option<i64>, cpus: Option<f64>, cpu_shares: Option<u64>, cpuset_cpus: Option<String>, pids_limit: Option<i64> });

/// When to restart a container that exited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never (the default).
    #[default]
    No,
    /// When it exits non-zero, at most `max_retries` times (0 = no limit).
    OnFailure {
        /// Retry limit, 0 for none.
        #[serde(default)]
        max_retries: u32,
    },
    /// Always, also after the manager restarts.
    Always,
    /// Always, unless it was stopped by the user.
    UnlessStopped,
}

/// Network mode of a container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum NetworkMode {
    /// Its own network namespace with loopback only.
    #[default]
    None,
    /// The host's network namespace.
    Host,
    /// Join the network namespace at this path.
    Path(PathBuf),
    /// Its own namespace on the default network (docker's `bridge`), through
    /// the manager's [`NetworkDriver`](crate::NetworkDriver).
    Bridge,
    /// Its own namespace on this user-defined network (a name or id).
    Network(String),
    /// The network namespace of another container (an id, id prefix or
    /// name), which must be running (docker's `container:<id|name>`).
    Container(String),
}

/// The cgroup namespace of a container (docker's `--cgroupns`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum CgroupnsMode {
    /// Docker's default: [`Private`](CgroupnsMode::Private) on a host with
    /// only cgroup v2, [`Host`](CgroupnsMode::Host) on a v1 or hybrid one.
    #[default]
    Default,
    /// A cgroup namespace of its own: the container sees its cgroup as the
    /// root, and `/sys/fs/cgroup` holds its own cgroup mounts.
    Private,
    /// The host's cgroup namespace: `/proc/self/cgroup` shows the host's
    /// paths, and `/sys/fs/cgroup` is bound from the container's cgroups on
    /// the host (read-only unless privileged).
    Host,
}

impl CgroupnsMode {
    /// Docker's `HostConfig.CgroupnsMode`: `""` (the default), `"private"` or `"host"`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "" => Ok(CgroupnsMode::Default),
            "private" => Ok(CgroupnsMode::Private),
            "host" => Ok(CgroupnsMode::Host),
            other => Err(crate::Error::invalid(
                "cgroup namespace mode",
                format!("{other:?}: expected \"private\" or \"host\""),
            )),
        }
    }

    /// The mode this host gives [`Default`](CgroupnsMode::Default):
    /// [`Private`](CgroupnsMode::Private) when `/sys/fs/cgroup` is a cgroup v2
    /// mount, [`Host`](CgroupnsMode::Host) otherwise; any other mode as is.
    pub fn resolve(self) -> Self {
        static UNIFIED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        match self {
            CgroupnsMode::Default => {
                // Only a cgroup2 root has `cgroup.controllers` at its top.
                if *UNIFIED.get_or_init(|| std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()) {
                    CgroupnsMode::Private
                } else {
                    CgroupnsMode::Host
                }
            }
            m => m,
        }
    }
}

/// Everything needed to create a container. Built by the facade's builder or
/// decoded from Docker's create JSON by the daemon.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ContainerConfig {
    /// Image reference or id.
    pub image: String,
    /// Unique name (`None`: a generated one).
    pub name: Option<String>,
    /// Replaces the image's Cmd when set.
    pub cmd: Option<Vec<String>>,
    /// Replaces the image's Entrypoint when set.
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=value` pairs added to (and overriding) the image's.
    pub env: Vec<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`; resolved in the image.
    pub user: Option<String>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// Hostname (default: the first 12 characters of the id).
    pub hostname: Option<String>,
    /// Allocate a terminal.
    pub tty: bool,
    /// Keep stdin open for attach.
    pub open_stdin: bool,
    /// Labels.
    pub labels: HashMap<String, String>,
    /// Mounts.
    pub mounts: Vec<MountSpec>,
    /// Resource limits.
    pub resources: Resources,
    /// Network mode.
    pub network: NetworkMode,
    /// Restart policy.
    pub restart: RestartPolicy,
    /// Remove the container once it exits.
    pub auto_remove: bool,
    /// Runtime by name (`"engine-runc"`, `"runc"`, `"crun"`) or path; `None` for the default.
    pub runtime: Option<String>,
    /// Signal for stop (default SIGTERM, or the image's StopSignal).
    pub stop_signal: Option<Signal>,
    /// Grace period for stop before SIGKILL (default 10 s).
    pub stop_timeout: Option<Duration>,
    /// Mount the root filesystem read-only.
    pub read_only_rootfs: bool,
    /// Kill and remove the container when this process dies.
    pub owner_pid: Option<Pid>,
    /// Log driver and options (`--log-driver`, `--log-opt`); an empty
    /// driver takes the manager's default (json-file unless configured).
    #[serde(default)]
    pub log: crate::logs::LogSpec,
    // ---- Confinement (docker's --privileged, --cap-add/--cap-drop,
    // --security-opt, --device, --group-add, --sysctl, --init).
    /// Capabilities, seccomp, privileged mode, devices, groups, sysctls; the
    /// default is docker's default confinement.
    #[serde(default)]
    pub security: crate::security::SecurityOptions,
    /// Run a small init as pid 1 that forwards signals to the command and
    /// reaps zombies (`docker run --init`).
    #[serde(default)]
    pub init: bool,
    /// The OOM score adjustment of the container's processes (-1000 to
    /// 1000, docker's `--oom-score-adj`); `None` inherits the engine's.
    /// Lowering it below the engine's own needs `CAP_SYS_RESOURCE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    /// Ports to publish (`-p`); needs [`NetworkMode::Bridge`] or
    /// [`NetworkMode::Network`].
    #[serde(default)]
    pub ports: Vec<crate::network::PortBinding>,
    /// Extra names the container answers to on its network
    /// (`--network-alias`); needs a network.
    #[serde(default)]
    pub network_aliases: Vec<String>,
    /// A fixed IPv4 address on its network (`--ip`); needs a network.
    #[serde(default)]
    pub ipv4: Option<std::net::Ipv4Addr>,
    /// Name servers for `/etc/resolv.conf` (`--dns`); empty: the host's,
    /// without loopback ones.
    #[serde(default)]
    pub dns: Vec<std::net::IpAddr>,
    /// Search domains for `/etc/resolv.conf` (`--dns-search`).
    #[serde(default)]
    pub dns_search: Vec<String>,
    /// Options for `/etc/resolv.conf` (`--dns-option`).
    #[serde(default)]
    pub dns_options: Vec<String>,
    /// Extra `/etc/hosts` lines as (name, address) (`--add-host`).
    #[serde(default)]
    pub extra_hosts: Vec<(String, std::net::IpAddr)>,
    /// The cgroup the container's cgroup is made under (an absolute
    /// cgroupfs path such as `/kubepods/burstable/pod<uid>`, docker's
    /// `--cgroup-parent`); `None`: the manager's. Made when missing, left
    /// in place when the container goes (its owner removes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<String>,
    /// Its cgroup namespace (docker's `--cgroupns`); the default is
    /// docker's: private on a cgroup v2 host, the host's on v1.
    #[serde(default)]
    pub cgroupns: CgroupnsMode,
}
impl ContainerConfig {
    /// A container of `image` (a reference or id), everything else default.
    pub fn new(image: impl Into<String>) -> Self {
        ContainerConfig { image: image.into(), ..Default::default() }
    }
}

crate::setters::setters!(ContainerConfig { image: String, name: Option<String>, cmd: Option<Vec<String>>, entrypoint: Option<Vec<String>>, env: Vec<String>, user: Option<String>, working_dir: Option<String>, hostname: Option<String>, tty: bool, open_stdin: bool, labels: HashMap<String, String>, mounts: Vec<MountSpec>, resources: Resources, network: NetworkMode, restart: RestartPolicy, auto_remove: bool, runtime: Option<String>, stop_signal: Option<Signal>, stop_timeout: Option<Duration>, read_only_rootfs: bool, owner_pid: Option<Pid>, log: crate::logs::LogSpec, security: crate::security::SecurityOptions, init: bool, oom_score_adj: Option<i32>, ports: Vec<crate::network::PortBinding>, network_aliases: Vec<String>, ipv4: Option<std::net::Ipv4Addr>, dns: Vec<std::net::IpAddr>, dns_search: Vec<String>, dns_options: Vec<String>, extra_hosts: Vec<(String, std::net::IpAddr)>, cgroup_parent: Option<String>, cgroupns: CgroupnsMode });

/// The state of a container as the manager tracks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ContainerState {
    /// Created, not started.
    Created,
    /// Running.
    Running,
    /// Paused.
    Paused,
    /// Being restarted by its policy.
    Restarting,
    /// Exited.
    Exited,
    /// Being removed.
    Removing,
    /// Its shim vanished without recording an exit.
    Dead,
}

/// What the manager knows of one container (`docker inspect`'s core).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ContainerInfo {
    /// 64-hex id.
    pub id: String,
    /// Name (without Docker's leading `/`).
    pub name: String,
    /// The config it was created with.
    pub config: ContainerConfig,
    /// The image id it was created from.
    pub image_id: String,
    /// State.
    pub state: ContainerState,
    /// Init pid while running.
    pub pid: Option<Pid>,
    /// Exit code once exited.
    pub exit_code: Option<i32>,
    /// Killed by the OOM killer.
    pub oom_killed: bool,
    /// Created at.
    #[serde(with = "crate::time::serde_system_time")]
    pub created: SystemTime,
    /// Last started at.
    #[serde(with = "crate::time::serde_opt_system_time")]
    pub started_at: Option<SystemTime>,
    /// Last exited at.
    #[serde(with = "crate::time::serde_opt_system_time")]
    pub finished_at: Option<SystemTime>,
    /// Restarts done by the restart policy.
    pub restart_count: u32,
    /// The resolved process args (entrypoint + cmd).
    pub args: Vec<String>,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The log file `docker logs` reads (json-file, local, or a plugin's
    /// local cache); empty with the `none` driver.
    pub log_path: PathBuf,
    /// Runtime name.
    pub runtime: String,
    /// Its endpoints, by network name (bridge and user networks).
    #[serde(default)]
    pub networks: std::collections::BTreeMap<String, crate::network::EndpointInfo>,
}
impl Default for ContainerInfo {
    /// An empty report (times at the epoch, state [`ContainerState::Created`]),
    /// for filling in with the setters.
    fn default() -> Self {
        ContainerInfo {
            id: String::new(),
            name: String::new(),
            config: ContainerConfig::default(),
            image_id: String::new(),
            state: ContainerState::Created,
            pid: None,
            exit_code: None,
            oom_killed: false,
            created: SystemTime::UNIX_EPOCH,
            started_at: None,
            finished_at: None,
            restart_count: 0,
            args: Vec::new(),
            bundle: PathBuf::new(),
            log_path: PathBuf::new(),
            runtime: String::new(),
            networks: Default::default(),
        }
    }
}

crate::setters::setters!(ContainerInfo { id: String, name: String, config: ContainerConfig, image_id: String, state: ContainerState, pid: Option<Pid>, exit_code: Option<i32>, oom_killed: bool, created: SystemTime, started_at: Option<SystemTime>, finished_at: Option<SystemTime>, restart_count: u32, args: Vec<String>, bundle: PathBuf, log_path: PathBuf, runtime: String, networks: std::collections::BTreeMap<String, crate::network::EndpointInfo> });

/// A process to run in a running container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExecConfig {
    /// Args (required).
    pub cmd: Vec<String>,
    /// Extra `KEY=value` pairs.
    pub env: Vec<String>,
    /// User (default: the container's).
    pub user: Option<String>,
    /// Working directory (default: the container's).
    pub working_dir: Option<String>,
    /// Allocate a terminal.
    pub tty: bool,
    /// Keep stdin open for attach.
    pub open_stdin: bool,
    /// `docker exec --privileged`: the process gets every capability the
    /// engine holds (the set a `--privileged` container gets), whatever the
    /// container's own set. As under dockerd, the container's seccomp
    /// profile, masked paths, read-only paths and devices still apply.
    #[serde(default)]
    pub privileged: bool,
}
impl ExecConfig {
    /// A process running `cmd` (program and args), everything else default.
    pub fn new(cmd: impl IntoIterator<Item = impl Into<String>>) -> Self {
        ExecConfig { cmd: cmd.into_iter().map(Into::into).collect(), ..Default::default() }
    }
}

crate::setters::setters!(ExecConfig { cmd: Vec<String>, env: Vec<String>, user: Option<String>, working_dir: Option<String>, tty: bool, open_stdin: bool, privileged: bool });

/// An exec'd process's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExecInfo {
    /// Exec id.
    pub id: String,
    /// Container id.
    pub container_id: String,
    /// Its config.
    pub config: ExecConfig,
    /// Host pid once started.
    pub pid: Option<Pid>,
    /// Running.
    pub running: bool,
    /// Exit code once exited.
    pub exit_code: Option<i32>,
}

crate::setters::setters!(ExecInfo { id: String, container_id: String, config: ExecConfig, pid: Option<Pid>, running: bool, exit_code: Option<i32> });

/// Which condition `wait` waits for (Docker's `condition=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaitCondition {
    /// Returns at once if not running, else at exit.
    #[default]
    NotRunning,
    /// The next exit, even if not running now.
    NextExit,
    /// Removal (returns the exit status it had).
    Removed,
}

/// Options for `logs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LogOptions {
    /// Include stdout.
    pub stdout: bool,
    /// Include stderr.
    pub stderr: bool,
    /// Keep streaming new lines until the container exits.
    pub follow: bool,
    /// Only lines captured at or after this time.
    #[serde(with = "crate::time::serde_opt_system_time")]
    pub since: Option<SystemTime>,
    /// Only lines captured before this time.
    #[serde(with = "crate::time::serde_opt_system_time")]
    pub until: Option<SystemTime>,
    /// Only the last N lines (`None`: all).
    pub tail: Option<usize>,
}

crate::setters::setters!(LogOptions { stdout: bool, stderr: bool, follow: bool, since: Option<SystemTime>, until: Option<SystemTime>, tail: Option<usize> });

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions { stdout: true, stderr: true, follow: false, since: None, until: None, tail: None }
    }
}

/// Filters for `list`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ListFilter {
    /// Include exited and created containers (`docker ps -a`).
    pub all: bool,
    /// `key` or `key=value` label filters; all must match.
    pub labels: Vec<String>,
    /// Name substrings; any may match.
    pub names: Vec<String>,
    /// Id prefixes; any may match.
    pub ids: Vec<String>,
}

crate::setters::setters!(ListFilter { all: bool, labels: Vec<String>, names: Vec<String>, ids: Vec<String> });

/// Something that happened to a container.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Event {
    /// Container id.
    pub id: String,
    /// Container name.
    pub name: String,
    /// What happened.
    pub kind: EventKind,
    /// When.
    #[serde(with = "crate::time::serde_system_time")]
    pub time: SystemTime,
    /// The container's labels.
    #[serde(default)]
    pub labels: HashMap<String, String>,
}
impl Event {
    /// An event of `kind` for container `id` named `name`, happening now,
    /// without labels.
    pub fn new(id: impl Into<String>, name: impl Into<String>, kind: EventKind) -> Self {
        Event { id: id.into(), name: name.into(), kind, time: SystemTime::now(), labels: HashMap::new() }
    }
}

crate::setters::setters!(Event { id: String, name: String, kind: EventKind, time: SystemTime, labels: HashMap<String, String> });

/// Kinds of [`Event`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// Created.
    Created,
    /// Started.
    Started,
    /// Exited with a code.
    Exited {
        /// Exit code.
        code: i32,
    },
    /// OOM killed.
    Oom,
    /// Paused.
    Paused,
    /// Resumed.
    Resumed,
    /// Killed with a signal.
    Killed {
        /// Signal number.
        signal: i32,
    },
    /// Restarted by its policy.
    Restarted,
    /// An exec was started.
    ExecStarted {
        /// Exec id.
        exec_id: String,
    },
    /// An exec exited.
    ExecExited {
        /// Exec id.
        exec_id: String,
        /// Exit code.
        code: i32,
    },
    /// Removed.
    Removed,
}

/// A container manager. The default is `engine-lifecycle`'s; a gRPC client
/// for `engine-lifecycled` implements it too, so the daemon uses either.
///
/// Containers are named by id, id prefix or name wherever `id` appears, as
/// docker's references are: that is why these methods take `&str` and not
/// [`ContainerId`](crate::ContainerId), which is an exact id (the tiers below,
/// [`Runtime`](crate::Runtime) and [`Shim`](crate::Shim), take exact ids and
/// take `&ContainerId`). A `ContainerId` is passed with
/// [`as_str`](crate::ContainerId::as_str). An ambiguous prefix is refused
/// ([`Error::InvalidInput`](crate::Error::InvalidInput)), an unknown one is
/// [`Error::NotFound`](crate::Error::NotFound); the returned
/// [`ContainerInfo::id`] is the full id. Exec ids (`exec_*`) are exact.
#[async_trait]
pub trait LifecycleManager: Send + Sync {
    /// Resolve the image, derive the spec, prepare the rootfs, write the
    /// bundle, launch a shim. Nothing is left behind on error.
    async fn create(&self, config: ContainerConfig) -> Result<ContainerInfo>;
    /// Start a created or exited container.
    async fn start(&self, id: &str) -> Result<()>;
    /// Send the stop signal, then SIGKILL after `grace` (default: the
    /// container's stop timeout); returns once it exited.
    async fn stop(&self, id: &str, grace: Option<Duration>) -> Result<()>;
    /// Send a signal to the init.
    async fn kill(&self, id: &str, signal: Signal) -> Result<()>;
    /// Freeze.
    async fn pause(&self, id: &str) -> Result<()>;
    /// Thaw.
    async fn resume(&self, id: &str) -> Result<()>;
    /// Create and start an extra process; returns its exec id.
    async fn exec(&self, id: &str, config: ExecConfig) -> Result<String>;
    /// State of an exec.
    async fn exec_inspect(&self, exec_id: &str) -> Result<ExecInfo>;
    /// Wait for an exec to exit.
    async fn exec_wait(&self, exec_id: &str) -> Result<ExitStatus>;
    /// Attach to an exec's stdio.
    async fn exec_attach(&self, exec_id: &str, opts: AttachOptions) -> Result<Attach>;
    /// Resize an exec's terminal.
    async fn exec_resize(&self, exec_id: &str, size: ConsoleSize) -> Result<()>;
    /// Wait for a condition; returns the exit status.
    async fn wait(&self, id: &str, condition: WaitCondition) -> Result<ExitStatus>;
    /// Stored (and with `follow`, live) log lines.
    async fn logs(&self, id: &str, opts: LogOptions) -> Result<BoxStream<'static, Result<LogEntry>>>;
    /// Attach to the init's live stdio.
    async fn attach(&self, id: &str, opts: AttachOptions) -> Result<Attach>;
    /// Resize the init's terminal.
    async fn resize(&self, id: &str, size: ConsoleSize) -> Result<()>;
    /// Resource usage.
    async fn stats(&self, id: &str) -> Result<Stats>;
    /// Host pids of the container's processes.
    async fn top(&self, id: &str) -> Result<Vec<Pid>>;
    /// Containers matching the filter.
    async fn list(&self, filter: ListFilter) -> Result<Vec<ContainerInfo>>;
    /// One container.
    async fn inspect(&self, id: &str) -> Result<ContainerInfo>;
    /// Remove; a running container is a conflict unless `force` (which kills it).
    async fn remove(&self, id: &str, force: bool) -> Result<()>;
    /// Events from now on.
    async fn events(&self) -> Result<BoxStream<'static, Result<Event>>>;
    /// Plug a created or running container (on the bridge or a user
    /// network) into one more network (`docker network connect`): a new
    /// interface in its namespace (`eth1`, ...), and the hosts files of the
    /// containers on that network updated. The default refuses
    /// ([`Error::Unsupported`](crate::Error::Unsupported)).
    async fn connect_network(
        &self,
        id: &str,
        network: &str,
        options: crate::network::ConnectOptions,
    ) -> Result<crate::network::EndpointInfo> {
        let _ = (network, options);
        Err(crate::Error::Unsupported(format!("connecting container {id} to a network: not supported by this manager")))
    }
    /// Unplug a container from a network (`docker network disconnect`):
    /// its interface, address and published ports on it go. The default
    /// refuses ([`Error::Unsupported`](crate::Error::Unsupported)).
    async fn disconnect_network(&self, id: &str, network: &str) -> Result<()> {
        let _ = network;
        Err(crate::Error::Unsupported(format!(
            "disconnecting container {id} from a network: not supported by this manager"
        )))
    }
    /// Change a created, running or paused container's resource limits
    /// (`docker update`): the limits set in `resources` replace the
    /// container's (`None` fields are left as they are), in its cgroup and
    /// in its recorded config. The default refuses
    /// ([`Error::Unsupported`](crate::Error::Unsupported)).
    async fn update(&self, id: &str, resources: Resources) -> Result<()> {
        let _ = resources;
        Err(crate::Error::Unsupported(format!("updating container {id}: not supported by this manager")))
    }
    /// Reopen a running container's log file at its path (after a rotator
    /// renamed it; kubelet's `ReopenContainerLog`). The default refuses
    /// ([`Error::Unsupported`](crate::Error::Unsupported)).
    async fn reopen_log(&self, id: &str) -> Result<()> {
        Err(crate::Error::Unsupported(format!("reopening the log of container {id}: not supported by this manager")))
    }
}
