//! The manager's configuration and runtime discovery.

use engine_core::{
    Error, ImageStore, LogPlugins, LogSpec, NetworkDriver, Result, RuntimeBinary, ShimLauncher, VolumeDriver,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The name of the default runtime (this project's own `engine-runc`).
pub const DEFAULT_RUNTIME: &str = "engine-runc";

/// The name of the VM-isolated runtime (the `engine-vm` binary, crate `engine-vm`).
pub const VM_RUNTIME: &str = "vm";

/// How long the shim launcher lets a [`VM_RUNTIME`] container's create
/// take: longer than `engine-vm`'s own bounds on a boot (60 s of the time
/// its QEMU had a CPU, 600 s in all, `engine_vm::monitor::BOOT_LIMIT`), so
/// that a VM booting slowly on a loaded host is not cut short and a hung
/// one fails with the monitor's error naming what the guest was doing.
pub const VM_CREATE_TIMEOUT: Duration = Duration::from_secs(900);

/// Everything a [`crate::Manager`] needs.
///
/// ```no_run
/// # fn demo(images: std::sync::Arc<dyn engine_core::ImageStore>,
/// #         shims: std::sync::Arc<dyn engine_core::ShimLauncher>) {
/// use engine_lifecycle::ManagerConfig;
/// let cfg = ManagerConfig::new("/var/lib/engine", images, shims)
///     .runtime("runc", "/usr/sbin/runc")
///     .default_runtime("runc");
/// # }
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct ManagerConfig {
    /// State root: the database, bundles, shim state dirs, volumes and
    /// runtime state live under it.
    pub root: PathBuf,
    /// The image store containers are created from.
    pub images: Arc<dyn ImageStore>,
    /// Launches (and reconnects to) shims.
    pub shims: Arc<dyn ShimLauncher>,
    /// Runtimes by name. A container may also name a runtime by absolute path.
    pub runtimes: BTreeMap<String, RuntimeBinary>,
    /// Name of the runtime used when a container names none.
    pub default_runtime: String,
    /// First delay of the restart policy's back-off (doubled per restart, at most 64x).
    pub restart_delay: Duration,
    /// The network driver for `bridge` and user networks (none: only the
    /// `none`, `host` and path modes are available).
    pub network: Option<Arc<dyn NetworkDriver>>,
    /// The volume driver for [`engine_core::MountSpec::Volume`] mounts and
    /// the image's `VOLUME`s (none: a volume is a plain directory
    /// `<root>/volumes/<name>` and image `VOLUME`s are not made).
    pub volumes: Option<Arc<dyn VolumeDriver>>,
    /// The cgroup every container's cgroup is made under (`/engine`: each
    /// container's is `/engine/<id>`), as dockerd's `--cgroup-parent`.
    pub cgroup_parent: String,
    /// The log driver and options of containers that name none, merged as
    /// dockerd merges its `--log-driver`/`--log-opt` (json-file by default).
    pub default_log: LogSpec,
    /// Log plugins: a container whose log driver is no built-in one
    /// (`json-file`, `local`, `none`) is logged through these (none:
    /// such a driver is refused at create).
    pub log_plugins: Option<Arc<dyn LogPlugins>>,
    /// Machine memory a create leaves free, in bytes: when the kernel's
    /// `MemAvailable` is under it, a create is refused with
    /// [`Error::Unavailable`](engine_core::Error) naming both figures, before
    /// anything is made (rather than the kernel's OOM killer choosing a
    /// victim, the daemon itself perhaps, once containers have used it up).
    /// 0 turns the check off. Default [`DEFAULT_MEMORY_RESERVE`].
    pub memory_reserve: u64,
}

/// The default [`ManagerConfig::memory_reserve`]: 64 MiB.
pub const DEFAULT_MEMORY_RESERVE: u64 = 64 << 20;

impl std::fmt::Debug for ManagerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagerConfig")
            .field("root", &self.root)
            .field("runtimes", &self.runtimes)
            .field("default_runtime", &self.default_runtime)
            .finish_non_exhaustive()
    }
}

impl ManagerConfig {
    /// A configuration with the runtimes found on this host: `engine-runc`
    /// (see [`find_engine_binary`]), [`VM_RUNTIME`] (`engine-vm`, a VM per
    /// container) when its binary is found the same way, and `runc`, `crun` and
    /// `youki` when they are on `PATH`. The default runtime is `engine-runc`.
    pub fn new(root: impl Into<PathBuf>, images: Arc<dyn ImageStore>, shims: Arc<dyn ShimLauncher>) -> Self {
        let mut runtimes = BTreeMap::new();
        if let Some(p) = find_engine_binary(DEFAULT_RUNTIME) {
            runtimes.insert(DEFAULT_RUNTIME.to_string(), binary(DEFAULT_RUNTIME, p));
        }
        if let Some(p) = find_engine_binary("engine-vm") {
            runtimes.insert(VM_RUNTIME.to_string(), binary(VM_RUNTIME, p));
        }
        for name in ["runc", "crun", "youki"] {
            if let Some(p) = find_in_path(name) {
                runtimes.insert(name.to_string(), binary(name, p));
            }
        }
        ManagerConfig {
            root: root.into(),
            images,
            shims,
            runtimes,
            default_runtime: DEFAULT_RUNTIME.to_string(),
            restart_delay: Duration::from_millis(100),
            network: None,
            volumes: None,
            cgroup_parent: "/engine".to_string(),
            default_log: LogSpec::new(engine_core::logs::JSON_FILE),
            log_plugins: None,
            memory_reserve: DEFAULT_MEMORY_RESERVE,
        }
    }

    /// Make every container's cgroup under `parent` (an absolute cgroup
    /// path such as `/engine` or `/services/workers`).
    pub fn cgroup_parent(mut self, parent: impl Into<String>) -> Result<Self> {
        let parent = parent.into();
        check_cgroup_parent(&parent)?;
        self.cgroup_parent = parent;
        Ok(self)
    }

    /// Refuse creates while the machine has less than `bytes` of memory
    /// available (0: never); see [`ManagerConfig::memory_reserve`].
    pub fn memory_reserve(mut self, bytes: u64) -> Self {
        self.memory_reserve = bytes;
        self
    }

    /// Add (or replace) a runtime by name and binary path.
    pub fn runtime(mut self, name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        let name = name.into();
        self.runtimes.insert(name.clone(), binary(&name, path.into()));
        self
    }

    /// Add (or replace) a runtime with full control over its arguments.
    pub fn runtime_binary(mut self, runtime: RuntimeBinary) -> Self {
        self.runtimes.insert(runtime.name.clone(), runtime);
        self
    }

    /// Attach `bridge`-mode and user-network containers through `driver`.
    pub fn network_driver(mut self, driver: Arc<dyn NetworkDriver>) -> Self {
        self.network = Some(driver);
        self
    }

    /// Create and mount volumes through `driver`.
    pub fn volume_driver(mut self, driver: Arc<dyn VolumeDriver>) -> Self {
        self.volumes = Some(driver);
        self
    }

    /// The log driver and options of containers that name none. Refused
    /// when the spec is invalid.
    pub fn default_log(mut self, spec: LogSpec) -> Result<Self> {
        let spec = spec.with_default(&LogSpec::new(engine_core::logs::JSON_FILE));
        spec.resolve()?;
        self.default_log = spec;
        Ok(self)
    }

    /// Log containers whose driver is a plugin's name through `plugins`.
    pub fn log_plugins(mut self, plugins: Arc<dyn LogPlugins>) -> Self {
        self.log_plugins = Some(plugins);
        self
    }

    /// Choose the default runtime by name.
    pub fn default_runtime(mut self, name: impl Into<String>) -> Self {
        self.default_runtime = name.into();
        self
    }
}

fn binary(name: &str, path: PathBuf) -> RuntimeBinary {
    // The VM runtime's create bounds its boot itself (see VM_CREATE_TIMEOUT).
    let timeout = (name == VM_RUNTIME).then_some(VM_CREATE_TIMEOUT);
    RuntimeBinary::new(name, path).create_timeout(timeout)
}

use engine_core::binary::is_executable;
pub use engine_core::binary::{find_engine_binary, find_in_path};

/// Resolve a container's runtime choice (a name from the table, or an absolute
/// path to a runtime binary) to the binary with its state root under `root`.
pub(crate) fn resolve_runtime(cfg: &ManagerConfig, choice: Option<&str>) -> Result<RuntimeBinary> {
    let choice = choice.unwrap_or(&cfg.default_runtime);
    let mut rt = if let Some(rt) = cfg.runtimes.get(choice) {
        rt.clone()
    } else if choice.starts_with('/') {
        let p = PathBuf::from(choice);
        if !is_executable(&p) {
            return Err(Error::invalid("runtime", format!("{choice} is not an executable file")));
        }
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| choice.to_string());
        binary(&name, p)
    } else {
        let known: Vec<&str> = cfg.runtimes.keys().map(|s| s.as_str()).collect();
        return Err(Error::invalid(
            "runtime",
            format!("unknown runtime {choice:?} (known: {}; or give an absolute path)", known.join(", ")),
        ));
    };
    if !is_executable(&rt.path) {
        return Err(Error::invalid("runtime", format!("{}: {} is not an executable file", rt.name, rt.path.display())));
    }
    if rt.root.is_none() {
        rt.root = Some(cfg.root.join("runtime").join(&rt.name));
    }
    Ok(rt)
}

/// A cgroup parent must be an absolute cgroupfs path (`/engine`,
/// `/kubepods/burstable/pod<uid>`), without empty, `.` or `..` parts.
pub(crate) fn check_cgroup_parent(parent: &str) -> Result<()> {
    let bad = parent.split('/').skip(1).any(|c| c.is_empty() || c == "." || c == "..");
    if !parent.starts_with('/') || parent.len() < 2 || bad {
        return Err(Error::invalid("cgroup parent", format!("{parent:?} is not an absolute cgroup path like /engine")));
    }
    Ok(())
}
