//! The default [`LifecycleManager`].

use crate::config::{resolve_runtime, ManagerConfig};
use crate::spec;
use crate::store::{Record, Store};
use async_trait::async_trait;
use engine_core::logs::{FileLog, LogFormat, LogTarget};
use engine_core::network::AttachRequest;
use engine_core::{
    Attach, AttachOptions, ConsoleSize, ContainerConfig, ContainerId, ContainerInfo, ContainerState, Error, Event,
    EventKind, ExecConfig, ExecInfo, ExecRequest, ExitStatus, IoContext, LaunchRequest, LifecycleManager, ListFilter,
    LogConfig, LogEntry, LogOptions, NetworkDriver, NetworkMode, Pid, ProcessRef, Resources, RestartPolicy, Result,
    RuntimeBinary, Shim, Signal, Stats, WaitCondition,
};
use futures::stream::BoxStream;
use futures::StreamExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use tokio::sync::{broadcast, watch};

/// How long stop and remove wait for an exit after SIGKILL before giving up.
const KILL_WAIT: Duration = Duration::from_secs(30);

/// The default lifecycle manager (containerd's role): records in redb under
/// its root, one shim per container, a monitor task per running container,
/// restart policies, recovery of running containers on start.
///
/// Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Manager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager").field("root", &self.inner.cfg.root).finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    cfg: ManagerConfig,
    store: Store,
    containers: RwLock<HashMap<String, Arc<Entry>>>,
    /// name -> id, including names reserved by creates in progress.
    names: Mutex<HashMap<String, String>>,
    execs: Mutex<HashMap<String, Arc<ExecEntry>>>,
    events: broadcast::Sender<Event>,
    /// Ids whose record could not be read at recovery, and why: named in the
    /// error of every operation on them; `remove` deletes the record.
    corrupt: Mutex<HashMap<String, String>>,
}

/// What waiters watch: counters bumped by the monitor.
#[derive(Clone, Debug, Default)]
struct Observed {
    /// Exits recorded (state and record updated).
    exits: u64,
    /// Exits whose shim has also been cleaned up.
    settled: u64,
    last_exit: Option<ExitStatus>,
    removed: bool,
}

struct Entry {
    id: String,
    rec: Mutex<Record>,
    shim: Mutex<Option<Arc<dyn Shim>>>,
    /// Serializes lifecycle operations (start, stop, remove, restart) on one container.
    op: tokio::sync::Mutex<()>,
    obs: watch::Sender<Observed>,
}

impl Entry {
    fn new(rec: Record, shim: Option<Arc<dyn Shim>>) -> Arc<Entry> {
        Arc::new(Entry {
            id: rec.info.id.clone(),
            rec: Mutex::new(rec),
            shim: Mutex::new(shim),
            op: tokio::sync::Mutex::new(()),
            obs: watch::Sender::new(Observed::default()),
        })
    }
    fn info(&self) -> ContainerInfo {
        self.rec.lock().unwrap().info.clone()
    }
    fn state(&self) -> ContainerState {
        self.rec.lock().unwrap().info.state
    }
    fn shim(&self) -> Option<Arc<dyn Shim>> {
        self.shim.lock().unwrap().clone()
    }
    fn running_shim(&self) -> Result<Arc<dyn Shim>> {
        let st = self.state();
        if !matches!(st, ContainerState::Running | ContainerState::Paused) {
            return Err(Error::conflict("container", &self.id, format!("is not running (state {st:?})")));
        }
        self.shim().ok_or_else(|| Error::unavailable(format!("shim of container {}", self.id), "not connected"))
    }
}

struct ExecEntry {
    info: Mutex<ExecInfo>,
    shim: Arc<dyn Shim>,
    done: watch::Sender<Option<ExitStatus>>,
}

fn is_running(st: ContainerState) -> bool {
    matches!(st, ContainerState::Running | ContainerState::Paused | ContainerState::Restarting)
}

impl Manager {
    /// Open (or create) the manager's state under `config.root`, and recover:
    /// reconnect to the shims of running containers, record the exits that
    /// happened while no manager was running, finish interrupted removals,
    /// and apply restart policies.
    pub async fn new(config: ManagerConfig) -> Result<Manager> {
        let root = config.root.clone();
        for d in ["containers", "shims", "volumes", "runtime"] {
            std::fs::create_dir_all(root.join(d)).context(|| format!("creating {}", root.join(d).display()))?;
        }
        let db = root.join("containers.redb");
        let store = tokio::task::spawn_blocking(move || Store::open(&db))
            .await
            .map_err(|e| Error::Other(format!("opening database: {e}")))??;
        let (events, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            cfg: config,
            store,
            containers: RwLock::new(HashMap::new()),
            names: Mutex::new(HashMap::new()),
            execs: Mutex::new(HashMap::new()),
            events,
            corrupt: Mutex::new(HashMap::new()),
        });
        inner.recover().await?;
        Ok(Manager { inner })
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        &self.inner.cfg.root
    }

    /// The configuration in use.
    pub fn config(&self) -> &ManagerConfig {
        &self.inner.cfg
    }
}

impl Inner {
    fn emit(&self, entry: &Entry, kind: EventKind) {
        let (id, name, labels) = {
            let r = entry.rec.lock().unwrap();
            (r.info.id.clone(), r.info.name.clone(), r.info.config.labels.clone())
        };
        let _ = self.events.send(Event { id, name, kind, time: SystemTime::now(), labels });
    }

    fn lookup(&self, key: &str) -> Result<Arc<Entry>> {
        let map = self.containers.read().unwrap();
        if let Some(e) = map.get(key) {
            return Ok(e.clone());
        }
        let name = key.strip_prefix('/').unwrap_or(key);
        if let Some(id) = self.names.lock().unwrap().get(name) {
            if let Some(e) = map.get(id) {
                return Ok(e.clone());
            }
        }
        if !key.is_empty() && key.chars().all(|c| c.is_ascii_hexdigit()) {
            let mut found = map.iter().filter(|(id, _)| id.starts_with(key));
            if let Some((_, e)) = found.next() {
                if found.next().is_some() {
                    return Err(Error::invalid("container id prefix", format!("{key} matches several containers")));
                }
                return Ok(e.clone());
            }
        }
        if let Some(why) = self.corrupt.lock().unwrap().get(key) {
            return Err(Error::unavailable(
                format!("container {key}"),
                format!("its record in the container database is corrupt ({why}); remove it to delete the record"),
            ));
        }
        Err(Error::not_found("container", key))
    }

    async fn persist(&self, entry: &Entry) -> Result<()> {
        let rec = entry.rec.lock().unwrap().clone();
        self.store.put(&rec).await
    }

    /// The state dir of a container's `gen`-th shim: `<root>/shims/<id16>-<gen>`,
    /// or, when the root is too long for a unix socket path in it,
    /// `/run/engine-lifecycle/<hash of root>/<id16>-<gen>`.
    fn shim_dir(&self, id: &str, gen: u32) -> PathBuf {
        let leaf = format!("{}-{gen}", &id[..id.len().min(16)]);
        let dir = self.cfg.root.join("shims").join(&leaf);
        if dir.join("shim.sock").as_os_str().len() < 104 {
            return dir;
        }
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.cfg.root.hash(&mut h);
        PathBuf::from("/run/engine-lifecycle").join(format!("{:016x}", h.finish())).join(leaf)
    }

    fn launch_request(&self, rec: &Record) -> Result<LaunchRequest> {
        Ok(LaunchRequest {
            id: ContainerId::new(rec.info.id.clone())?,
            bundle: rec.info.bundle.clone(),
            state_dir: rec.shim_dir.clone(),
            runtime: rec.runtime.clone(),
            log: match rec.info.config.log.resolve()? {
                LogTarget::None => None,
                LogTarget::File(f) => Some(file_log(&rec.info.log_path, &f, None)),
                LogTarget::Plugin { cache, .. } => {
                    Some(file_log(&rec.info.log_path, &cache, Some(log_fifo(&rec.info.bundle))))
                }
            },
            open_stdin: rec.info.config.open_stdin,
            owner_pid: rec.info.config.owner_pid,
        })
    }

    /// Tell a container's log plugin (if its driver is one) to start reading
    /// a fresh FIFO, before a shim is launched to write into it.
    async fn start_log_plugin(&self, rec: &Record) -> Result<()> {
        let LogTarget::Plugin { name, opts, .. } = rec.info.config.log.resolve()? else { return Ok(()) };
        let plugins = self.log_plugins(&name)?;
        let fifo = log_fifo(&rec.info.bundle);
        let f = fifo.clone();
        tokio::task::spawn_blocking(move || {
            let _ = std::fs::remove_file(&f);
            nix::unistd::mkfifo(&f, nix::sys::stat::Mode::from_bits_truncate(0o600))
        })
        .await
        .map_err(|e| Error::Other(format!("making the log FIFO: {e}")))?
        .map_err(|e| Error::io(format!("making the log FIFO {}", fifo.display()), e.into()))?;
        let mut info = engine_core::logs::LogStart::new(&rec.info.id, &rec.info.name);
        info.image = rec.info.config.image.clone();
        info.opts = opts;
        info.labels = rec.info.config.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        if let Err(e) = plugins.start(&name, &fifo, &info).await {
            let _ = std::fs::remove_file(&fifo);
            return Err(e);
        }
        Ok(())
    }

    /// Launch a shim for `rec`, its log plugin (if any) told first.
    async fn launch_shim(&self, rec: &Record) -> Result<Arc<dyn Shim>> {
        self.start_log_plugin(rec).await?;
        let launched = match self.launch_request(rec) {
            Ok(req) => self.cfg.shims.launch(req).await,
            Err(e) => Err(e),
        };
        match launched {
            Ok(s) => Ok(Arc::from(s)),
            Err(e) => {
                self.stop_log_plugin(rec).await;
                Err(e)
            }
        }
    }

    /// The container's shim is done: its log plugin (if any) lets go of the FIFO.
    async fn stop_log_plugin(&self, rec: &Record) {
        let Ok(LogTarget::Plugin { name, .. }) = rec.info.config.log.resolve() else { return };
        let fifo = log_fifo(&rec.info.bundle);
        if !fifo.exists() {
            return;
        }
        if let Ok(p) = self.log_plugins(&name) {
            if let Err(e) = p.stop(&name, &fifo).await {
                tracing::warn!(id = %rec.info.id, "stopping log plugin {name}: {e}");
            }
        }
        let _ = std::fs::remove_file(&fifo);
    }

    fn log_plugins(&self, name: &str) -> Result<Arc<dyn engine_core::LogPlugins>> {
        self.cfg.log_plugins.clone().ok_or_else(|| no_log_driver(name))
    }

    // ---------------------------------------------------------------- create

    async fn create(self: &Arc<Self>, config: ContainerConfig) -> Result<ContainerInfo> {
        spec::validate(&config)?;
        let mut config = config;
        config.log = std::mem::take(&mut config.log).with_default(&self.cfg.default_log);
        if let LogTarget::Plugin { name, .. } = config.log.resolve()? {
            self.log_plugins(&name)?.check(&name).await?;
        }
        let runtime = resolve_runtime(&self.cfg, config.runtime.as_deref())?;
        let image = self.cfg.images.inspect(&config.image).await?;
        // A container with nothing to run fails before anything is made.
        engine_image::spec::resolve_args(&image.config, &config)?;
        let id = engine_core::random_hex64();
        let name = self.reserve_name(config.name.as_deref(), &id)?;
        let mut undo = Undo { inner: Some(self.clone()), id: id.clone(), name: name.clone(), ..Default::default() };
        match self.create_inner(&config, &runtime, &image, &id, &name, &mut undo).await {
            Ok(info) => {
                undo.disarm();
                self.refresh_hosts(&info, None).await;
                Ok(info)
            }
            Err(e) => {
                undo.run().await;
                Err(e)
            }
        }
    }

    /// The driver and network a container attaches to (`None`: none, host
    /// or a namespace path), checked before anything is made.
    async fn network_for(&self, config: &ContainerConfig) -> Result<Option<(Arc<dyn NetworkDriver>, String)>> {
        let wanted = match &config.network {
            NetworkMode::Bridge => None,
            NetworkMode::Network(n) => Some(n.as_str()),
            other => {
                // A setting that cannot be honoured is refused, never dropped.
                let what = if !config.ports.is_empty() {
                    Some("published ports")
                } else if !config.network_aliases.is_empty() {
                    Some("network aliases")
                } else if config.ipv4.is_some() {
                    Some("a fixed IP address")
                } else {
                    None
                };
                if let Some(what) = what {
                    return Err(Error::invalid(
                        "network mode",
                        format!("{what} need the bridge or a user-defined network, not {other:?}"),
                    ));
                }
                return Ok(None);
            }
        };
        let driver = self.cfg.network.clone().ok_or_else(|| {
            Error::Unsupported(format!("network mode {:?}: this manager has no network driver", config.network))
        })?;
        let net = match wanted {
            None => driver.default_network().await?,
            Some(n) => driver.inspect_network(n).await?,
        };
        Ok(Some((driver, net.id)))
    }

    /// `docker network connect`: attach the container's namespace to one
    /// more network on the next free `ethN`, record it, update hosts files.
    async fn connect_network(
        &self,
        key: &str,
        network: &str,
        opts: engine_core::network::ConnectOptions,
    ) -> Result<engine_core::network::EndpointInfo> {
        let entry = self.lookup(key)?;
        let _op = entry.op.lock().await;
        let info = entry.info();
        if !matches!(info.config.network, NetworkMode::Bridge | NetworkMode::Network(_)) {
            return Err(Error::invalid(
                "network connect",
                format!(
                    "container {} uses {:?} networking; only a container on the bridge or a user network can join another",
                    info.name, info.config.network
                ),
            ));
        }
        let driver =
            self.cfg.network.clone().ok_or_else(|| {
                Error::Unsupported("connecting to a network: this manager has no network driver".into())
            })?;
        let net = driver.inspect_network(network).await?;
        if info.networks.values().any(|e| e.network_id == net.id) {
            return Err(Error::conflict(
                "container",
                &info.name,
                format!("endpoint with name {} already exists in network {}", info.name, net.name),
            ));
        }
        let ns = self.netns_path(&info.id);
        if !ns.exists() {
            return Err(Error::conflict("container", &info.name, "has no network namespace"));
        }
        let used: Vec<&str> = info.networks.values().map(|e| e.interface.as_str()).collect();
        let ifname = (0..).map(|i| format!("eth{i}")).find(|n| !used.contains(&n.as_str())).expect("a free name");
        let mut req = AttachRequest::new(&info.id, &ns).interface(ifname);
        req.aliases = opts.aliases;
        req.ipv4 = opts.ipv4;
        req.dns = info.config.dns.clone();
        let ep = driver.attach(&net.id, req).await?;
        entry.rec.lock().unwrap().info.networks.insert(ep.network.clone(), ep.clone());
        if let Err(e) = self.persist(&entry).await {
            entry.rec.lock().unwrap().info.networks.remove(&ep.network);
            let _ = driver.detach(&net.id, &info.id).await;
            return Err(e);
        }
        let info = entry.info();
        self.rewrite_hosts(&info).await;
        self.refresh_hosts(&info, None).await;
        tracing::info!(id = %info.id, network = %net.name, "connected");
        Ok(ep)
    }

    /// `docker network disconnect`: detach the container from a network.
    async fn disconnect_network(&self, key: &str, network: &str) -> Result<()> {
        let entry = self.lookup(key)?;
        let _op = entry.op.lock().await;
        let info = entry.info();
        let driver = self.cfg.network.clone().ok_or_else(|| {
            Error::Unsupported("disconnecting from a network: this manager has no network driver".into())
        })?;
        let net = driver.inspect_network(network).await?;
        let Some(ep) = info.networks.values().find(|e| e.network_id == net.id).cloned() else {
            return Err(Error::conflict(
                "container",
                &info.name,
                format!("container {} is not connected to network {}", info.name, net.name),
            ));
        };
        // Neighbours forget it first (as on removal), then it goes.
        let only: ContainerInfo =
            ContainerInfo { networks: std::iter::once((ep.network.clone(), ep.clone())).collect(), ..info.clone() };
        driver.detach(&net.id, &info.id).await?;
        entry.rec.lock().unwrap().info.networks.remove(&ep.network);
        self.persist(&entry).await?;
        self.refresh_hosts(&only, None).await;
        self.rewrite_hosts(&entry.info()).await;
        tracing::info!(id = %info.id, network = %net.name, "disconnected");
        Ok(())
    }

    /// Rewrite a container's own `/etc/hosts` from its current networks.
    async fn rewrite_hosts(&self, info: &ContainerInfo) {
        if !crate::etc::wanted(&info.config).contains(&"/etc/hosts") {
            return;
        }
        let all = self.network_peers(&info.networks);
        let host_hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        let me = crate::etc::Me { id: &info.id, config: &info.config, networks: &info.networks };
        let text = crate::etc::hosts(&me, &all, &host_hosts);
        let file = crate::etc::bundle_file(&info.bundle, "/etc/hosts");
        let r =
            tokio::task::spawn_blocking(
                move || {
                    if file.exists() {
                        crate::etc::write_in_place(&file, &text)
                    } else {
                        Ok(())
                    }
                },
            )
            .await;
        if let Ok(Err(e)) | Err(e) = r.map_err(|e| Error::Other(e.to_string())) {
            tracing::warn!(id = %info.id, "updating /etc/hosts: {e}");
        }
    }

    /// Detach a container from its networks and remove its namespace file.
    async fn release_network(&self, info: &ContainerInfo) -> Result<()> {
        self.refresh_hosts(info, Some(&info.id)).await;
        if let Some(driver) = &self.cfg.network {
            for ep in info.networks.values() {
                match driver.detach(&ep.network_id, &info.id).await {
                    Err(e) if !e.is_not_found() => return Err(e),
                    _ => {}
                }
            }
        }
        let ns = self.netns_path(&info.id);
        tokio::task::spawn_blocking(move || crate::netns::remove(&ns))
            .await
            .map_err(|e| Error::Other(format!("network namespace removal: {e}")))?
    }

    /// Every recorded container.
    fn all_infos(&self) -> Vec<ContainerInfo> {
        self.containers.read().unwrap().values().map(|e| e.info()).collect()
    }

    /// The containers on a user-defined network of `networks`: the only ones
    /// a hosts file names. None without one (no network, the default
    /// bridge), so such a create copies no other container's record.
    fn network_peers(
        &self,
        networks: &std::collections::BTreeMap<String, engine_core::network::EndpointInfo>,
    ) -> Vec<ContainerInfo> {
        let nets: Vec<&str> =
            networks.values().filter(|e| e.network != "bridge").map(|e| e.network_id.as_str()).collect();
        if nets.is_empty() {
            return Vec::new();
        }
        let map = self.containers.read().unwrap();
        map.values()
            .filter_map(|e| {
                let r = e.rec.lock().unwrap();
                r.info.networks.values().any(|p| nets.contains(&p.network_id.as_str())).then(|| r.info.clone())
            })
            .collect()
    }

    /// Write a new container's `/etc/hosts`, `/etc/hostname` and
    /// `/etc/resolv.conf` into its bundle; returns the bind mounts. In
    /// `container:` mode it shares the other container's files.
    async fn write_etc_files(
        &self,
        id: &str,
        config: &ContainerConfig,
        networks: &std::collections::BTreeMap<String, engine_core::network::EndpointInfo>,
        bundle: &Path,
    ) -> Result<Vec<(String, PathBuf)>> {
        let wanted = crate::etc::wanted(config);
        if let NetworkMode::Container(other) = &config.network {
            let target = self.lookup(other)?.info();
            return Ok(wanted
                .into_iter()
                .map(|d| (d.to_string(), crate::etc::bundle_file(&target.bundle, d)))
                .filter(|(_, p)| p.exists())
                .collect());
        }
        let host_hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let hostname = if config.network == NetworkMode::Host {
            nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default()
        } else {
            crate::etc::hostname(id, config)
        };
        let me = crate::etc::Me { id, config, networks };
        let all = self.network_peers(networks);
        let mut out = Vec::new();
        for dest in wanted {
            let text = match dest {
                "/etc/hosts" => crate::etc::hosts(&me, &all, &host_hosts),
                "/etc/hostname" => format!("{hostname}\n"),
                _ => crate::etc::resolv_conf(config, &host_resolv),
            };
            let file = crate::etc::bundle_file(bundle, dest);
            let f = file.clone();
            tokio::task::spawn_blocking(move || crate::etc::write_in_place(&f, &text))
                .await
                .map_err(|e| Error::Other(format!("writing {dest}: {e}")))??;
            out.push((dest.to_string(), file));
        }
        Ok(out)
    }

    /// Rewrite the hosts files of the containers sharing a user-defined
    /// network with `changed` (which joined, or is leaving when `leaving`
    /// names it), so they resolve each other by name and alias.
    async fn refresh_hosts(&self, changed: &ContainerInfo, leaving: Option<&str>) {
        let nets: Vec<&str> =
            changed.networks.values().filter(|e| e.network != "bridge").map(|e| e.network_id.as_str()).collect();
        if nets.is_empty() {
            return;
        }
        let mut all = self.all_infos();
        if let Some(gone) = leaving {
            all.retain(|c| c.id != gone);
        }
        let host_hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        for c in all.iter().filter(|c| c.id != changed.id) {
            if !c.networks.values().any(|e| nets.contains(&e.network_id.as_str())) {
                continue;
            }
            if !crate::etc::wanted(&c.config).contains(&"/etc/hosts") {
                continue;
            }
            let me = crate::etc::Me { id: &c.id, config: &c.config, networks: &c.networks };
            let text = crate::etc::hosts(&me, &all, &host_hosts);
            let file = crate::etc::bundle_file(&c.bundle, "/etc/hosts");
            let id = c.id.clone();
            let r = tokio::task::spawn_blocking(move || {
                if file.exists() {
                    crate::etc::write_in_place(&file, &text)
                } else {
                    Ok(())
                }
            })
            .await;
            if let Ok(Err(e)) | Err(e) = r.map_err(|e| Error::Other(e.to_string())) {
                tracing::warn!(id = %id, "updating /etc/hosts: {e}");
            }
        }
    }

    /// The network namespace of running container `other`, for
    /// `container:<other>` mode: its namespace file when it has one, else
    /// its process's.
    async fn shared_netns(&self, other: &str) -> Result<PathBuf> {
        let target = self.lookup(other)?.info();
        let pid = match (target.state, target.pid) {
            (ContainerState::Running | ContainerState::Paused, Some(pid)) => pid,
            _ => {
                return Err(Error::conflict(
                    "container",
                    &target.name,
                    format!("cannot join the network namespace of container {} (it is not running)", target.name),
                ))
            }
        };
        if let NetworkMode::Container(_) = &target.config.network {
            // Its spec joined a namespace by path: that process's is the same.
            return Ok(PathBuf::from(format!("/proc/{pid}/ns/net")));
        }
        let file = self.netns_path(&target.id);
        if file.exists() {
            return Ok(file);
        }
        if target.config.network == NetworkMode::Host {
            return Err(Error::invalid(
                "network mode",
                format!("container {} uses the host's network; use --network host instead", target.name),
            ));
        }
        Ok(PathBuf::from(format!("/proc/{pid}/ns/net")))
    }

    fn netns_path(&self, id: &str) -> PathBuf {
        self.cfg.root.join("netns").join(id)
    }

    fn reserve_name(&self, wanted: Option<&str>, id: &str) -> Result<String> {
        let mut names = self.names.lock().unwrap();
        if let Some(w) = wanted {
            let n = crate::names::validate(w)?;
            if let Some(other) = names.get(&n) {
                return Err(Error::conflict(
                    "container name",
                    &n,
                    format!("already in use by container {}", &other[..other.len().min(12)]),
                ));
            }
            names.insert(n.clone(), id.to_string());
            return Ok(n);
        }
        for retry in 0..100 {
            let n = crate::names::generate(retry);
            if !names.contains_key(&n) {
                names.insert(n.clone(), id.to_string());
                return Ok(n);
            }
        }
        Err(Error::Other("could not generate a unique container name".into()))
    }

    async fn create_inner(
        self: &Arc<Self>,
        config: &ContainerConfig,
        runtime: &RuntimeBinary,
        image: &engine_core::ImageInfo,
        id: &str,
        name: &str,
        undo: &mut Undo,
    ) -> Result<ContainerInfo> {
        let network = self.network_for(config).await?;
        let bundle = self.cfg.root.join("containers").join(id);
        let shim_dir = self.shim_dir(id, 0);
        std::fs::create_dir_all(&bundle).context(|| format!("creating bundle {}", bundle.display()))?;
        undo.bundle = Some(bundle.clone());
        let rootfs_path = bundle.join("rootfs");
        let rootfs = self.cfg.images.prepare_rootfs(&image.id, id, &rootfs_path).await?;
        undo.rootfs_key = Some(rootfs.key.clone());
        // Volumes: through the driver (the image's VOLUMEs as anonymous ones),
        // or, without one, plain directories created on first use.
        let mut with_volumes = config.clone();
        let volume_paths = match &self.cfg.volumes {
            Some(driver) => {
                crate::volumes::add_image_volumes(&mut with_volumes, &engine_image::spec::volumes(&image.config));
                crate::volumes::prepare(driver, &mut with_volumes, &rootfs.path, id, &mut undo.vols).await?
            }
            None => {
                for m in with_volumes.mounts.iter_mut() {
                    if let engine_core::MountSpec::Volume { name, .. } = m {
                        if name.is_empty() {
                            *name = engine_core::random_hex64();
                        }
                        let dir = self.cfg.root.join("volumes").join(&*name);
                        if !dir.exists() {
                            std::fs::create_dir_all(&dir).context(|| format!("creating volume {}", dir.display()))?;
                            undo.volumes.push(dir);
                        }
                    }
                }
                Default::default()
            }
        };
        let config = &with_volumes;

        let init_path = if config.init {
            let dir = self.cfg.root.join("bin");
            let p = tokio::task::spawn_blocking(move || engine_init::install(&dir))
                .await
                .map_err(|e| Error::Other(format!("installing engine-init: {e}")))?
                .map_err(|e| Error::io(format!("installing engine-init under {}", self.cfg.root.display()), e))?;
            Some(p)
        } else {
            None
        };
        // The container's network namespace: made here, configured by the
        // driver, joined by the runtime by path.
        let mut networks = std::collections::BTreeMap::new();
        let mut spec_config = None;
        if let Some((driver, net)) = network {
            let ns = self.netns_path(id);
            crate::netns::create(&ns).await?;
            undo.netns = Some(ns.clone());
            let mut req = AttachRequest::new(id, &ns);
            req.ports = config.ports.clone();
            req.aliases = config.network_aliases.clone();
            req.ipv4 = config.ipv4;
            req.dns = config.dns.clone();
            let ep = driver.attach(&net, req).await?;
            undo.endpoint = Some((driver, net));
            networks.insert(ep.network.clone(), ep);
            spec_config = Some(ContainerConfig { network: NetworkMode::Path(ns), ..config.clone() });
        }
        if let NetworkMode::Container(other) = &config.network {
            spec_config =
                Some(ContainerConfig { network: NetworkMode::Path(self.shared_netns(other).await?), ..config.clone() });
        }
        let spec_config = spec_config.as_ref().unwrap_or(config);
        let etc_files = self.write_etc_files(id, config, &networks, &bundle).await?;

        let mut oci = oci_spec::runtime::Spec::default();
        crate::image_config::apply(&mut oci, &image.config, &rootfs.path, spec_config)?;
        let oci = spec::finish(
            oci,
            &spec::SpecContext {
                id,
                name,
                config: spec_config,
                rootfs: &rootfs.path,
                volumes: &self.cfg.root.join("volumes"),
                volume_paths: &volume_paths,
                cgroup_parent: config.cgroup_parent.as_deref().unwrap_or(&self.cfg.cgroup_parent),
                init_path: init_path.as_deref(),
                etc_files: &etc_files,
            },
        )?;
        let mut args = oci.process().as_ref().and_then(|p| p.args().clone()).unwrap_or_default();
        if config.init {
            // The container's command, as inspect shows it: without the init.
            args.drain(..2.min(args.len()));
        }
        if args.is_empty() {
            return Err(Error::invalid(
                "command",
                format!("image {} has no Entrypoint or Cmd and none was given", config.image),
            ));
        }
        let log_path = match config.log.resolve()? {
            LogTarget::None => PathBuf::new(),
            LogTarget::File(FileLog { format: LogFormat::JsonFile, .. }) => bundle.join(format!("{id}-json.log")),
            // The CRI format goes where the caller (kubelet, through a CRI server) says.
            LogTarget::File(FileLog { format: LogFormat::Cri, .. }) => config.log.cri_path()?.to_path_buf(),
            _ => bundle.join("local-logs").join("container.log"),
        };
        let mut config = config.clone();
        config.name = Some(name.to_string());
        if config.stop_signal.is_none() {
            config.stop_signal = engine_image::spec::stop_signal(&image.config).ok().flatten();
        }
        let info = ContainerInfo {
            id: id.to_string(),
            name: name.to_string(),
            config,
            image_id: image.id.clone(),
            state: ContainerState::Created,
            pid: None,
            exit_code: None,
            oom_killed: false,
            created: SystemTime::now(),
            started_at: None,
            finished_at: None,
            restart_count: 0,
            args,
            bundle: bundle.clone(),
            log_path,
            runtime: runtime.name.clone(),
            networks,
        };
        let rec = Record {
            info: info.clone(),
            runtime: runtime.clone(),
            shim_dir: shim_dir.clone(),
            rootfs_key: rootfs.key.clone(),
            shim_gen: 0,
            stopped_by_user: false,
        };
        // The bundle's config.json and the record are made durable together.
        undo.record = true;
        let b = bundle.clone();
        let write = tokio::task::spawn_blocking(move || spec::write_bundle_config(&b, &oci));
        let (w, p) = tokio::join!(write, self.store.put(&rec));
        w.map_err(|e| Error::Other(format!("config.json writer: {e}")))??;
        p?;
        undo.shim_dir = Some(shim_dir);
        if let Some(dir) = info.log_path.parent().filter(|_| !info.log_path.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
        }
        let shim = self.launch_shim(&rec).await?;
        let entry = Entry::new(rec, Some(shim));
        self.containers.write().unwrap().insert(id.to_string(), entry.clone());
        self.emit(&entry, EventKind::Created);
        tracing::info!(id, name, image = %info.config.image, runtime = %runtime.name, "container created");
        Ok(info)
    }

    // ----------------------------------------------------------------- start

    /// Start with the op lock held.
    async fn start_locked(self: &Arc<Self>, entry: &Arc<Entry>) -> Result<()> {
        let st = entry.state();
        match st {
            ContainerState::Running | ContainerState::Paused => return Ok(()),
            ContainerState::Removing => {
                return Err(Error::conflict("container", &entry.id, "is being removed"));
            }
            _ => {}
        }
        // A previous run's monitor may still be cleaning up its shim.
        wait_settled(entry, KILL_WAIT).await?;
        let shim = match entry.shim() {
            Some(s) if st == ContainerState::Created => s,
            _ => {
                let old = entry.shim.lock().unwrap().take();
                if let Some(old) = old {
                    // A shim exits after a successful delete.
                    if old.delete().await.is_err() {
                        let _ = old.shutdown().await;
                    }
                }
                let rec = {
                    let mut r = entry.rec.lock().unwrap();
                    let _ = std::fs::remove_dir_all(&r.shim_dir);
                    r.shim_gen += 1;
                    r.shim_dir = self.shim_dir(&r.info.id, r.shim_gen);
                    r.clone()
                };
                self.store.put(&rec).await?;
                let shim = self.launch_shim(&rec).await?;
                *entry.shim.lock().unwrap() = Some(shim.clone());
                shim
            }
        };
        let pid = shim.start().await?;
        {
            let mut r = entry.rec.lock().unwrap();
            r.info.state = ContainerState::Running;
            r.info.pid = Some(pid);
            r.info.started_at = Some(SystemTime::now());
            r.info.exit_code = None;
            r.info.oom_killed = false;
            r.stopped_by_user = false;
        }
        self.persist(entry).await?;
        self.spawn_monitor(entry.clone(), shim);
        self.emit(entry, EventKind::Started);
        Ok(())
    }

    fn spawn_monitor(self: &Arc<Self>, entry: Arc<Entry>, shim: Arc<dyn Shim>) {
        let inner = self.clone();
        tokio::spawn(async move {
            let status = match shim.wait(&ProcessRef::Init).await {
                Ok(s) => Some(s),
                Err(e) => {
                    let dir = entry.rec.lock().unwrap().shim_dir.clone();
                    tracing::warn!(id = %entry.id, "lost the shim while waiting: {e}");
                    inner.cfg.shims.recorded_exit(&dir).await.ok().flatten()
                }
            };
            inner.on_exit(&entry, &shim, status).await;
        });
    }

    /// Record an exit, clean up its shim, apply the restart policy.
    async fn on_exit(self: &Arc<Self>, entry: &Arc<Entry>, shim: &Arc<dyn Shim>, status: Option<ExitStatus>) {
        let current = entry.shim().is_some_and(|s| Arc::ptr_eq(&s, shim));
        if !current {
            return;
        }
        let oom = if entry.rec.lock().unwrap().info.config.resources.memory.is_some() {
            shim.stats().await.ok().and_then(|s| s.oom_kills).is_some_and(|n| n > 0)
        } else {
            false
        };
        let code = status.map(|s| s.code);
        {
            let mut r = entry.rec.lock().unwrap();
            r.info.state = if status.is_some() { ContainerState::Exited } else { ContainerState::Dead };
            r.info.exit_code = code.or(Some(-1));
            r.info.finished_at = Some(status.map(|s| s.at).unwrap_or_else(SystemTime::now));
            r.info.pid = None;
            r.info.oom_killed = oom;
        }
        if let Err(e) = self.persist(entry).await {
            tracing::error!(id = %entry.id, "recording exit: {e}");
        }
        let exit = status.unwrap_or_else(|| ExitStatus::now(-1));
        entry.obs.send_modify(|o| {
            o.exits += 1;
            o.last_exit = Some(exit);
        });
        if oom {
            self.emit(entry, EventKind::Oom);
        }
        self.emit(entry, EventKind::Exited { code: exit.code });
        tracing::info!(id = %entry.id, code = exit.code, "container exited");
        // The shim's work is done: runtime delete, shim exits.
        let taken = {
            let mut s = entry.shim.lock().unwrap();
            if s.as_ref().is_some_and(|x| Arc::ptr_eq(x, shim)) {
                s.take()
            } else {
                None
            }
        };
        if let Some(s) = taken {
            // A shim exits after a successful delete.
            if let Err(e) = s.delete().await {
                tracing::debug!(id = %entry.id, "shim delete: {e}");
                let rec = entry.rec.lock().unwrap().clone();
                self.runtime_delete(&rec).await;
                let _ = s.shutdown().await;
            }
            let rec = entry.rec.lock().unwrap().clone();
            self.stop_log_plugin(&rec).await;
        }
        entry.obs.send_modify(|o| o.settled += 1);
        self.after_exit(entry, exit.code);
    }

    /// Auto-remove or restart per policy.
    fn after_exit(self: &Arc<Self>, entry: &Arc<Entry>, code: i32) {
        let (policy, auto_remove, stopped, count, state, owner) = {
            let r = entry.rec.lock().unwrap();
            let c = &r.info.config;
            (c.restart, c.auto_remove, r.stopped_by_user, r.info.restart_count, r.info.state, c.owner_pid)
        };
        if state == ContainerState::Removing {
            return;
        }
        // A container whose owner died goes with it (its shim already killed it).
        let owner_gone = owner_gone(owner);
        let auto_remove = auto_remove || owner_gone;
        let restart = !stopped
            && !owner_gone
            && match policy {
                RestartPolicy::No => false,
                RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
                RestartPolicy::OnFailure { max_retries } => code != 0 && (max_retries == 0 || count < max_retries),
            };
        let inner = self.clone();
        let entry = entry.clone();
        if restart {
            let delay = self.cfg.restart_delay * 2u32.pow(count.min(6));
            tokio::spawn(async move {
                entry.rec.lock().unwrap().info.state = ContainerState::Restarting;
                tokio::time::sleep(delay).await;
                let _op = entry.op.lock().await;
                let go = {
                    let r = entry.rec.lock().unwrap();
                    r.info.state == ContainerState::Restarting && !r.stopped_by_user
                };
                if !go || !inner.containers.read().unwrap().contains_key(&entry.id) {
                    return;
                }
                entry.rec.lock().unwrap().info.restart_count += 1;
                match inner.start_locked(&entry).await {
                    Ok(()) => inner.emit(&entry, EventKind::Restarted),
                    Err(e) => {
                        tracing::warn!(id = %entry.id, "restart failed: {e}");
                        entry.rec.lock().unwrap().info.state = ContainerState::Exited;
                        let _ = inner.persist(&entry).await;
                    }
                }
            });
        } else if auto_remove {
            tokio::spawn(async move {
                if let Err(e) = inner.remove(&entry.id, true).await {
                    if !e.is_not_found() {
                        tracing::warn!(id = %entry.id, "auto-remove failed: {e}");
                    }
                }
            });
        }
    }

    /// Delete the container in its runtime directly (when its shim is gone).
    async fn runtime_delete(&self, rec: &Record) {
        let rt = &rec.runtime;
        let mut cmd = tokio::process::Command::new(&rt.path);
        cmd.args(&rt.args);
        if let Some(root) = &rt.root {
            cmd.arg("--root").arg(root);
        }
        cmd.args(["delete", "--force", &rec.info.id]);
        cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        match cmd.status().await {
            Ok(s) if !s.success() => tracing::debug!(id = %rec.info.id, "{} delete --force: {s}", rt.name),
            Err(e) => tracing::debug!(id = %rec.info.id, "running {} delete: {e}", rt.name),
            _ => {}
        }
    }

    // ------------------------------------------------------------------ stop

    async fn stop(self: &Arc<Self>, key: &str, grace: Option<Duration>) -> Result<()> {
        let entry = self.lookup(key)?;
        let _op = entry.op.lock().await;
        let settled0 = entry.obs.borrow().settled;
        let (state, sig, timeout) = {
            let mut r = entry.rec.lock().unwrap();
            r.stopped_by_user = true;
            let c = &r.info.config;
            (
                r.info.state,
                c.stop_signal.unwrap_or(Signal::TERM),
                grace.or(c.stop_timeout).unwrap_or(Duration::from_secs(10)),
            )
        };
        if state == ContainerState::Restarting {
            let mut r = entry.rec.lock().unwrap();
            r.info.state = ContainerState::Exited;
        }
        self.persist(&entry).await?;
        if !matches!(state, ContainerState::Running | ContainerState::Paused) {
            return Ok(());
        }
        let Some(shim) = entry.shim() else { return Ok(()) };
        if state == ContainerState::Paused {
            let _ = shim.resume().await;
        }
        if !timeout.is_zero() {
            if let Err(e) = shim.kill(&ProcessRef::Init, sig, false).await {
                tracing::debug!(id = %entry.id, "stop signal: {e}");
            }
            if wait_settled_after(&entry, settled0, timeout).await.is_ok() {
                return Ok(());
            }
        }
        tracing::info!(id = %entry.id, "no exit after {timeout:?}; sending SIGKILL");
        let _ = shim.kill(&ProcessRef::Init, Signal::KILL, true).await;
        wait_settled_after(&entry, settled0, KILL_WAIT).await
    }

    // ---------------------------------------------------------------- remove

    async fn remove(self: &Arc<Self>, key: &str, force: bool) -> Result<()> {
        if self.corrupt.lock().unwrap().contains_key(key) && !self.containers.read().unwrap().contains_key(key) {
            // Nothing of it can be trusted but its id: drop the record only.
            self.store.delete(key).await?;
            self.corrupt.lock().unwrap().remove(key);
            tracing::warn!(id = key, "removed the corrupt record of container {key}");
            return Ok(());
        }
        let entry = self.lookup(key)?;
        let _op = entry.op.lock().await;
        if !self.containers.read().unwrap().contains_key(&entry.id) {
            return Err(Error::not_found("container", key));
        }
        let settled0 = entry.obs.borrow().settled;
        let state = entry.state();
        if is_running(state) {
            if !force {
                return Err(Error::conflict(
                    "container",
                    &entry.id,
                    format!("is {state:?}; stop it first or remove with force"),
                ));
            }
            entry.rec.lock().unwrap().stopped_by_user = true;
            if state == ContainerState::Restarting {
                entry.rec.lock().unwrap().info.state = ContainerState::Exited;
            } else if let Some(shim) = entry.shim() {
                let _ = shim.kill(&ProcessRef::Init, Signal::KILL, true).await;
                if state == ContainerState::Paused {
                    let _ = shim.resume().await;
                }
                wait_settled_after(&entry, settled0, KILL_WAIT).await?;
            }
        }
        wait_settled(&entry, KILL_WAIT).await?;
        let before = std::mem::replace(&mut entry.rec.lock().unwrap().info.state, ContainerState::Removing);
        // A created (never started) container still has its shim.
        let shim = entry.shim.lock().unwrap().take();
        if let Some(shim) = shim {
            let _ = shim.kill(&ProcessRef::Init, Signal::KILL, true).await;
            if shim.delete().await.is_err() {
                let rec = entry.rec.lock().unwrap().clone();
                self.runtime_delete(&rec).await;
                let _ = shim.shutdown().await;
            }
            let rec = entry.rec.lock().unwrap().clone();
            self.stop_log_plugin(&rec).await;
        }
        let rec = entry.rec.lock().unwrap().clone();
        // The record goes first, durably: a crash after it leaves only files,
        // which the next manager on this root sweeps (`sweep_orphans`).
        if let Err(e) = self.store.delete(&rec.info.id).await {
            entry.rec.lock().unwrap().info.state = before;
            return Err(e);
        }
        if let Err(e) = self.remove_files(&rec).await {
            // Keep the container listed (dead) so that a later remove retries.
            entry.rec.lock().unwrap().info.state = ContainerState::Dead;
            let _ = self.persist(&entry).await;
            return Err(e);
        }
        self.containers.write().unwrap().remove(&entry.id);
        self.names.lock().unwrap().retain(|_, id| *id != entry.id);
        self.execs.lock().unwrap().retain(|_, x| x.info.lock().unwrap().container_id != entry.id);
        entry.obs.send_modify(|o| o.removed = true);
        self.emit(&entry, EventKind::Removed);
        tracing::info!(id = %entry.id, "container removed");
        Ok(())
    }

    /// Remove what a container has on disk, then its record (a removal that
    /// a crash interrupted, found by recovery).
    async fn finish_removal(&self, rec: &Record) -> Result<()> {
        self.remove_files(rec).await?;
        self.store.delete(&rec.info.id).await
    }

    /// Remove a container's files: rootfs (unmounted first), then bundle; the
    /// shim's state dir meanwhile.
    async fn remove_files(&self, rec: &Record) -> Result<()> {
        let rm = |dir: PathBuf| async move {
            match tokio::fs::remove_dir_all(&dir).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io(format!("removing {}", dir.display()), e)),
            }
        };
        self.release_network(&rec.info).await?;
        crate::volumes::release(&self.cfg.volumes, &rec.info.config, &rec.info.id).await?;
        let bundle = async {
            if let Err(e) = self.cfg.images.remove_rootfs(&rec.rootfs_key).await {
                if !e.is_not_found() {
                    return Err(e);
                }
            }
            rm(rec.info.bundle.clone()).await
        };
        let (b, s) = tokio::join!(bundle, rm(rec.shim_dir.clone()));
        b.and(s)
    }

    // -------------------------------------------------------------- recovery

    async fn recover(self: &Arc<Self>) -> Result<()> {
        let store = self.store.clone();
        let (records, corrupt) = tokio::task::spawn_blocking(move || store.load_all())
            .await
            .map_err(|e| Error::Other(format!("loading records: {e}")))??;
        self.corrupt.lock().unwrap().extend(corrupt);
        let mut restarts = Vec::new();
        for rec in records {
            let id = rec.info.id.clone();
            if rec.info.state == ContainerState::Removing {
                if let Err(e) = self.finish_removal(&rec).await {
                    tracing::warn!(id, "finishing an interrupted removal: {e}");
                }
                continue;
            }
            if owner_gone(rec.info.config.owner_pid) {
                // Its owner died, and with it the container (its shim killed and
                // deleted it): nothing of it stays, not even the record.
                self.runtime_delete(&rec).await;
                match self.finish_removal(&rec).await {
                    Ok(()) => tracing::info!(id, "removed a container whose owner died"),
                    Err(e) => tracing::warn!(id, "removing a container whose owner died: {e}"),
                }
                continue;
            }
            self.names.lock().unwrap().insert(rec.info.name.clone(), id.clone());
            crate::volumes::reacquire(&self.cfg.volumes, &rec.info.config, &id).await;
            let cid = ContainerId::new(id.clone())?;
            let state = rec.info.state;
            let shim = if rec.shim_dir.exists() {
                match self.cfg.shims.connect(&cid, &rec.shim_dir).await {
                    Ok(s) => Some(Arc::<dyn Shim>::from(s)),
                    Err(e) => {
                        tracing::info!(id, "shim not reachable: {e}");
                        None
                    }
                }
            } else {
                None
            };
            let entry = Entry::new(rec.clone(), shim.clone());
            self.containers.write().unwrap().insert(id.clone(), entry.clone());
            match (state, shim) {
                (ContainerState::Running | ContainerState::Paused | ContainerState::Restarting, Some(shim)) => {
                    match shim.state(&ProcessRef::Init).await {
                        Ok(ps) if ps.exit.is_some() => {
                            self.on_exit(&entry, &shim, ps.exit).await;
                        }
                        Ok(ps) => {
                            {
                                let mut r = entry.rec.lock().unwrap();
                                r.info.pid = Some(ps.pid);
                                r.info.state = if ps.status == engine_core::ContainerStatus::Paused {
                                    ContainerState::Paused
                                } else {
                                    ContainerState::Running
                                };
                            }
                            let _ = self.persist(&entry).await;
                            self.spawn_monitor(entry.clone(), shim);
                            tracing::info!(id, pid = ps.pid, "reconnected to a running container");
                        }
                        Err(e) => {
                            tracing::warn!(id, "shim state: {e}");
                            self.spawn_monitor(entry.clone(), shim);
                        }
                    }
                }
                (ContainerState::Running | ContainerState::Paused | ContainerState::Restarting, None) => {
                    // The shim is gone: its recorded exit is the truth.
                    let exit = self.cfg.shims.recorded_exit(&rec.shim_dir).await.ok().flatten();
                    self.runtime_delete(&rec).await;
                    let _ = std::fs::remove_dir_all(&rec.shim_dir);
                    let dummy = self.detached_exit(&entry, exit).await;
                    tracing::info!(id, code = dummy, "container exited while the manager was away");
                }
                (ContainerState::Created, Some(_)) => {}
                (ContainerState::Created, None) => {
                    // Its runtime container went with the shim; start launches a new one.
                    self.runtime_delete(&rec).await;
                }
                (_, Some(shim)) => {
                    // An exited container whose shim was not cleaned up.
                    entry.shim.lock().unwrap().take();
                    if shim.delete().await.is_err() {
                        let _ = shim.shutdown().await;
                    }
                }
                (_, None) => {}
            }
            let r = entry.rec.lock().unwrap().clone();
            if r.info.state == ContainerState::Exited || r.info.state == ContainerState::Dead {
                let wanted = match r.info.config.restart {
                    RestartPolicy::Always => true,
                    RestartPolicy::UnlessStopped => !r.stopped_by_user,
                    _ => false,
                };
                if wanted {
                    restarts.push(entry.clone());
                }
            }
        }
        self.sweep_orphans().await;
        for entry in restarts {
            let inner = self.clone();
            tokio::spawn(async move {
                let _op = entry.op.lock().await;
                if let Err(e) = inner.start_locked(&entry).await {
                    tracing::warn!(id = %entry.id, "restart on recovery failed: {e}");
                }
            });
        }
        Ok(())
    }

    /// Remove what a crash in the middle of a create or removal left without
    /// a record: bundles (and their rootfs snapshots) and old shim state dirs.
    async fn sweep_orphans(&self) {
        let (ids, shim_dirs): (std::collections::HashSet<String>, std::collections::HashSet<PathBuf>) = {
            let map = self.containers.read().unwrap();
            (map.keys().cloned().collect(), map.values().map(|e| e.rec.lock().unwrap().shim_dir.clone()).collect())
        };
        if let Ok(rd) = std::fs::read_dir(self.cfg.root.join("containers")) {
            for d in rd.flatten() {
                let name = d.file_name().to_string_lossy().into_owned();
                if ids.contains(&name) {
                    continue;
                }
                tracing::info!(id = %name, "removing the leftovers of an interrupted create or removal");
                if let Err(e) = self.cfg.images.remove_rootfs(&name).await {
                    if !e.is_not_found() {
                        tracing::warn!(id = %name, "removing leftover rootfs: {e}");
                        continue;
                    }
                }
                let _ = tokio::fs::remove_dir_all(d.path()).await;
            }
        }
        // A namespace file without a record: a create cut short after the
        // attach. Detach it wherever it is attached, then remove the file.
        if let Ok(rd) = std::fs::read_dir(self.cfg.root.join("netns")) {
            let nets = match &self.cfg.network {
                Some(d) => d.list_networks().await.unwrap_or_default(),
                None => Vec::new(),
            };
            for d in rd.flatten() {
                let id = d.file_name().to_string_lossy().into_owned();
                if ids.contains(&id) {
                    continue;
                }
                tracing::info!(id = %id, "releasing the network of an interrupted create");
                if let Some(driver) = &self.cfg.network {
                    for n in nets.iter().filter(|n| n.endpoints.contains_key(&id)) {
                        if let Err(e) = driver.detach(&n.id, &id).await {
                            tracing::warn!(id = %id, network = %n.name, "detaching a leftover endpoint: {e}");
                        }
                    }
                }
                let p = d.path();
                let _ = tokio::task::spawn_blocking(move || crate::netns::remove(&p)).await;
            }
        }
        if let Ok(rd) = std::fs::read_dir(self.cfg.root.join("shims")) {
            for d in rd.flatten() {
                let p = d.path();
                // A live shim keeps its socket; leave those alone.
                if !shim_dirs.contains(&p) && !p.join("shim.sock").exists() {
                    let _ = tokio::fs::remove_dir_all(&p).await;
                }
            }
        }
    }

    /// Record an exit learned without a shim (recovery); returns the code.
    async fn detached_exit(self: &Arc<Self>, entry: &Arc<Entry>, exit: Option<ExitStatus>) -> i32 {
        let code = exit.map(|e| e.code).unwrap_or(-1);
        {
            let mut r = entry.rec.lock().unwrap();
            r.info.state = if exit.is_some() { ContainerState::Exited } else { ContainerState::Dead };
            r.info.exit_code = Some(code);
            r.info.finished_at = Some(exit.map(|e| e.at).unwrap_or_else(SystemTime::now));
            r.info.pid = None;
        }
        let _ = self.persist(entry).await;
        // It ended while no manager ran: its log plugin hears of it now.
        let rec = entry.rec.lock().unwrap().clone();
        self.stop_log_plugin(&rec).await;
        let st = exit.unwrap_or_else(|| ExitStatus::now(code));
        entry.obs.send_modify(|o| {
            o.exits += 1;
            o.settled += 1;
            o.last_exit = Some(st);
        });
        self.emit(entry, EventKind::Exited { code });
        let auto_remove = entry.rec.lock().unwrap().info.config.auto_remove;
        if auto_remove {
            self.after_exit(entry, code);
        }
        code
    }

    // ------------------------------------------------------------------ exec

    async fn exec(self: &Arc<Self>, key: &str, config: ExecConfig) -> Result<String> {
        if config.cmd.is_empty() {
            return Err(Error::invalid("exec command", "must not be empty"));
        }
        let entry = self.lookup(key)?;
        let shim = entry.running_shim()?;
        let rec = entry.rec.lock().unwrap().clone();
        let process = crate::image_config::exec_process(&rec.info.bundle, &config)?;
        let exec_id = engine_core::random_hex64();
        let pid = shim.exec(ExecRequest { exec_id: exec_id.clone(), process, open_stdin: config.open_stdin }).await?;
        let x = Arc::new(ExecEntry {
            info: Mutex::new(ExecInfo {
                id: exec_id.clone(),
                container_id: entry.id.clone(),
                config,
                pid: Some(pid),
                running: true,
                exit_code: None,
            }),
            shim: shim.clone(),
            done: watch::Sender::new(None),
        });
        self.execs.lock().unwrap().insert(exec_id.clone(), x.clone());
        self.emit(&entry, EventKind::ExecStarted { exec_id: exec_id.clone() });
        let inner = self.clone();
        let pref = ProcessRef::Exec(exec_id.clone());
        tokio::spawn(async move {
            let st = shim.wait(&pref).await.unwrap_or_else(|e| {
                tracing::debug!("exec wait: {e}");
                ExitStatus::now(-1)
            });
            {
                let mut i = x.info.lock().unwrap();
                i.running = false;
                i.exit_code = Some(st.code);
            }
            x.done.send_replace(Some(st));
            let exec_id = x.info.lock().unwrap().id.clone();
            inner.emit(&entry, EventKind::ExecExited { exec_id, code: st.code });
        });
        Ok(exec_id)
    }

    fn exec_entry(&self, exec_id: &str) -> Result<Arc<ExecEntry>> {
        self.execs.lock().unwrap().get(exec_id).cloned().ok_or_else(|| Error::not_found("exec", exec_id))
    }

    // ------------------------------------------------------------------ wait

    async fn wait(&self, key: &str, cond: WaitCondition) -> Result<ExitStatus> {
        let entry = self.lookup(key)?;
        let mut rx = entry.obs.subscribe();
        let snap = rx.borrow_and_update().clone();
        let last = |o: &Observed, e: &Entry| {
            o.last_exit.unwrap_or_else(|| {
                let r = e.rec.lock().unwrap();
                ExitStatus { code: r.info.exit_code.unwrap_or(0), at: r.info.finished_at.unwrap_or(r.info.created) }
            })
        };
        match cond {
            WaitCondition::NotRunning | WaitCondition::NextExit => {
                // not-running returns at once for a container that isn't running;
                // next-exit always waits for an exit after this call.
                if cond == WaitCondition::NotRunning
                    && !matches!(entry.state(), ContainerState::Running | ContainerState::Paused)
                {
                    return Ok(last(&snap, &entry));
                }
                let o = rx
                    .wait_for(|o| o.exits > snap.exits || o.removed)
                    .await
                    .map_err(|_| Error::not_found("container", key))?
                    .clone();
                Ok(last(&o, &entry))
            }
            WaitCondition::Removed => {
                let o = rx.wait_for(|o| o.removed).await.map_err(|_| Error::not_found("container", key))?.clone();
                Ok(last(&o, &entry))
            }
        }
    }

    async fn top(&self, key: &str) -> Result<Vec<Pid>> {
        let entry = self.lookup(key)?;
        let (pid, id) = {
            let r = entry.rec.lock().unwrap();
            (r.info.pid, r.info.id.clone())
        };
        let Some(pid) = pid.filter(|_| matches!(entry.state(), ContainerState::Running | ContainerState::Paused))
        else {
            return Err(Error::conflict("container", &id, "is not running"));
        };
        tokio::task::spawn_blocking(move || crate::top::pids(&id, pid))
            .await
            .map_err(|e| Error::Other(format!("top: {e}")))?
    }
}

/// Wait until every recorded exit has been settled.
async fn wait_settled(entry: &Entry, timeout: Duration) -> Result<()> {
    let mut rx = entry.obs.subscribe();
    let r = tokio::time::timeout(timeout, rx.wait_for(|o| o.settled >= o.exits)).await;
    match r {
        Ok(_) => Ok(()),
        Err(_) => Err(Error::Timeout { what: format!("cleanup of container {}", entry.id), after: timeout }),
    }
}

/// Wait until an exit after `settled0` has been settled.
async fn wait_settled_after(entry: &Entry, settled0: u64, timeout: Duration) -> Result<()> {
    let mut rx = entry.obs.subscribe();
    let r = tokio::time::timeout(timeout, rx.wait_for(|o| o.settled > settled0 || o.removed)).await;
    match r {
        Ok(_) => Ok(()),
        Err(_) => Err(Error::Timeout { what: format!("exit of container {}", entry.id), after: timeout }),
    }
}

/// Undoes a failed create, newest step first.
#[derive(Default)]
struct Undo {
    inner: Option<Arc<Inner>>,
    id: String,
    name: String,
    bundle: Option<PathBuf>,
    volumes: Vec<PathBuf>,
    vols: crate::volumes::VolumeUndo,
    rootfs_key: Option<String>,
    record: bool,
    shim_dir: Option<PathBuf>,
    netns: Option<PathBuf>,
    endpoint: Option<(Arc<dyn NetworkDriver>, String)>,
    armed_off: bool,
}

impl Undo {
    fn disarm(&mut self) {
        self.armed_off = true;
    }
    async fn run(self) {
        let Some(inner) = self.inner.clone() else { return };
        if self.armed_off {
            return;
        }
        tracing::debug!(id = %self.id, "undoing a failed create");
        if let Some(d) = &self.shim_dir {
            let _ = tokio::fs::remove_dir_all(d).await;
        }
        if self.record {
            if let Err(e) = inner.store.delete(&self.id).await {
                tracing::warn!(id = %self.id, "removing record after failed create: {e}");
            }
        }
        if let Some(k) = &self.rootfs_key {
            if let Err(e) = inner.cfg.images.remove_rootfs(k).await {
                tracing::warn!(id = %self.id, "removing rootfs after failed create: {e}");
            }
        }
        if let Some((driver, net)) = &self.endpoint {
            if let Err(e) = driver.detach(net, &self.id).await {
                tracing::warn!(id = %self.id, "detaching after failed create: {e}");
            }
        }
        if let Some(ns) = self.netns.clone() {
            let _ = tokio::task::spawn_blocking(move || crate::netns::remove(&ns)).await;
        }
        self.vols.run(&self.id).await;
        if let Some(b) = &self.bundle {
            let _ = tokio::fs::remove_dir_all(b).await;
        }
        for v in &self.volumes {
            let _ = tokio::fs::remove_dir_all(v).await;
        }
        let mut names = inner.names.lock().unwrap();
        if names.get(&self.name).is_some_and(|id| *id == self.id) {
            names.remove(&self.name);
        }
    }
}

#[async_trait]
impl LifecycleManager for Manager {
    async fn create(&self, config: ContainerConfig) -> Result<ContainerInfo> {
        self.inner.create(config).await
    }

    async fn connect_network(
        &self,
        id: &str,
        network: &str,
        options: engine_core::network::ConnectOptions,
    ) -> Result<engine_core::network::EndpointInfo> {
        self.inner.connect_network(id, network, options).await
    }

    async fn disconnect_network(&self, id: &str, network: &str) -> Result<()> {
        self.inner.disconnect_network(id, network).await
    }

    async fn start(&self, id: &str) -> Result<()> {
        let entry = self.inner.lookup(id)?;
        let _op = entry.op.lock().await;
        self.inner.start_locked(&entry).await
    }

    async fn stop(&self, id: &str, grace: Option<Duration>) -> Result<()> {
        self.inner.stop(id, grace).await
    }

    async fn kill(&self, id: &str, signal: Signal) -> Result<()> {
        let entry = self.inner.lookup(id)?;
        let shim = entry.running_shim()?;
        shim.kill(&ProcessRef::Init, signal, false).await?;
        self.inner.emit(&entry, EventKind::Killed { signal: signal.number() });
        Ok(())
    }

    async fn pause(&self, id: &str) -> Result<()> {
        let entry = self.inner.lookup(id)?;
        let _op = entry.op.lock().await;
        if entry.state() == ContainerState::Paused {
            return Err(Error::conflict("container", &entry.id, "is already paused"));
        }
        let shim = entry.running_shim()?;
        shim.pause().await?;
        entry.rec.lock().unwrap().info.state = ContainerState::Paused;
        self.inner.persist(&entry).await?;
        self.inner.emit(&entry, EventKind::Paused);
        Ok(())
    }

    async fn resume(&self, id: &str) -> Result<()> {
        let entry = self.inner.lookup(id)?;
        let _op = entry.op.lock().await;
        if entry.state() != ContainerState::Paused {
            return Err(Error::conflict("container", &entry.id, "is not paused"));
        }
        let shim = entry.running_shim()?;
        shim.resume().await?;
        entry.rec.lock().unwrap().info.state = ContainerState::Running;
        self.inner.persist(&entry).await?;
        self.inner.emit(&entry, EventKind::Resumed);
        Ok(())
    }

    async fn exec(&self, id: &str, config: ExecConfig) -> Result<String> {
        self.inner.exec(id, config).await
    }

    async fn exec_inspect(&self, exec_id: &str) -> Result<ExecInfo> {
        Ok(self.inner.exec_entry(exec_id)?.info.lock().unwrap().clone())
    }

    async fn exec_wait(&self, exec_id: &str) -> Result<ExitStatus> {
        let x = self.inner.exec_entry(exec_id)?;
        let mut rx = x.done.subscribe();
        let st = rx.wait_for(|d| d.is_some()).await.map_err(|_| Error::not_found("exec", exec_id))?;
        Ok(st.expect("checked"))
    }

    async fn exec_attach(&self, exec_id: &str, opts: AttachOptions) -> Result<Attach> {
        let x = self.inner.exec_entry(exec_id)?;
        x.shim.attach(&ProcessRef::Exec(exec_id.to_string()), opts).await
    }

    async fn exec_resize(&self, exec_id: &str, size: ConsoleSize) -> Result<()> {
        let x = self.inner.exec_entry(exec_id)?;
        x.shim.resize(&ProcessRef::Exec(exec_id.to_string()), size).await
    }

    async fn wait(&self, id: &str, condition: WaitCondition) -> Result<ExitStatus> {
        self.inner.wait(id, condition).await
    }

    async fn logs(&self, id: &str, opts: LogOptions) -> Result<BoxStream<'static, Result<LogEntry>>> {
        let entry = self.inner.lookup(id)?;
        let (path, spec) = {
            let r = entry.rec.lock().unwrap();
            (r.info.log_path.clone(), r.info.config.log.clone())
        };
        let format = match spec.resolve()? {
            LogTarget::None => return Err(Error::Unsupported(engine_core::logs::READ_NOT_SUPPORTED.into())),
            LogTarget::File(f) => f.format,
            LogTarget::Plugin { cache, .. } => cache.format,
        };
        let e = entry.clone();
        let running: crate::logs::Running = Box::new(move || {
            is_running(e.state()) || e.state() == ContainerState::Created || {
                // Exited but the shim may still be flushing: wait for the settle.
                let o = e.obs.borrow();
                o.settled < o.exits
            }
        });
        Ok(crate::logs::stream(path, format, opts, running))
    }

    async fn attach(&self, id: &str, opts: AttachOptions) -> Result<Attach> {
        let entry = self.inner.lookup(id)?;
        let shim = entry
            .shim()
            .filter(|_| {
                matches!(entry.state(), ContainerState::Created | ContainerState::Running | ContainerState::Paused)
            })
            .ok_or_else(|| Error::conflict("container", &entry.id, "is not running"))?;
        shim.attach(&ProcessRef::Init, opts).await
    }

    async fn resize(&self, id: &str, size: ConsoleSize) -> Result<()> {
        let entry = self.inner.lookup(id)?;
        let shim = entry.running_shim()?;
        shim.resize(&ProcessRef::Init, size).await
    }

    async fn stats(&self, id: &str) -> Result<Stats> {
        let entry = self.inner.lookup(id)?;
        let shim = entry.running_shim()?;
        shim.stats().await
    }

    async fn update(&self, id: &str, resources: Resources) -> Result<()> {
        let entry = self.inner.lookup(id)?;
        let _op = entry.op.lock().await;
        let info = entry.info();
        if matches!(info.state, ContainerState::Removing | ContainerState::Dead) {
            return Err(Error::conflict("container", &entry.id, format!("cannot be updated (state {:?})", info.state)));
        }
        let mut merged = info.config.clone();
        let (r, n) = (&mut merged.resources, resources);
        r.memory = n.memory.or(r.memory);
        r.memory_swap = n.memory_swap.or(r.memory_swap);
        r.cpus = n.cpus.or(r.cpus);
        r.cpu_shares = n.cpu_shares.or(r.cpu_shares);
        r.cpuset_cpus = n.cpuset_cpus.or(r.cpuset_cpus.take());
        r.pids_limit = n.pids_limit.or(r.pids_limit);
        spec::validate(&merged)?;
        let res_json = spec::resources_json(&merged.resources);
        if matches!(info.state, ContainerState::Running | ContainerState::Paused) {
            let res: oci_spec::runtime::LinuxResources = serde_json::from_value(res_json.clone())
                .map_err(|e| Error::Other(format!("derived resources are invalid: {e}")))?;
            entry.running_shim()?.update(&res).await?;
        }
        // The bundle keeps them for the next start.
        let bundle = info.bundle.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let path = bundle.join("config.json");
            let data = std::fs::read(&path).context(|| format!("reading {}", path.display()))?;
            let mut v: serde_json::Value = serde_json::from_slice(&data)
                .map_err(|e| Error::Other(format!("{} is not JSON: {e}", path.display())))?;
            let res = &mut v["linux"]["resources"];
            for k in ["memory", "cpu", "pids"] {
                match res_json.get(k) {
                    Some(x) => res[k] = x.clone(),
                    None => {
                        if let Some(o) = res.as_object_mut() {
                            o.remove(k);
                        }
                    }
                }
            }
            let spec: oci_spec::runtime::Spec =
                serde_json::from_value(v).map_err(|e| Error::Other(format!("updated runtime spec is invalid: {e}")))?;
            spec::write_bundle_config(&bundle, &spec)
        })
        .await
        .map_err(|e| Error::Other(format!("config.json writer: {e}")))??;
        entry.rec.lock().unwrap().info.config.resources = merged.resources;
        self.inner.persist(&entry).await
    }

    async fn reopen_log(&self, id: &str) -> Result<()> {
        let entry = self.inner.lookup(id)?;
        entry.running_shim()?.reopen_log().await
    }

    async fn top(&self, id: &str) -> Result<Vec<Pid>> {
        self.inner.top(id).await
    }

    async fn list(&self, filter: ListFilter) -> Result<Vec<ContainerInfo>> {
        let entries: Vec<Arc<Entry>> = self.inner.containers.read().unwrap().values().cloned().collect();
        let mut out: Vec<ContainerInfo> = entries
            .iter()
            .map(|e| e.info())
            .filter(|i| filter.all || is_running(i.state))
            .filter(|i| {
                filter.labels.iter().all(|l| match l.split_once('=') {
                    Some((k, v)) => i.config.labels.get(k).is_some_and(|x| x == v),
                    None => i.config.labels.contains_key(l.as_str()),
                })
            })
            .filter(|i| {
                filter.names.is_empty() || filter.names.iter().any(|n| i.name.contains(n.trim_start_matches('/')))
            })
            .filter(|i| filter.ids.is_empty() || filter.ids.iter().any(|p| i.id.starts_with(p.as_str())))
            .collect();
        out.sort_by_key(|c| std::cmp::Reverse(c.created));
        Ok(out)
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInfo> {
        Ok(self.inner.lookup(id)?.info())
    }

    async fn remove(&self, id: &str, force: bool) -> Result<()> {
        self.inner.remove(id, force).await
    }

    async fn events(&self) -> Result<BoxStream<'static, Result<Event>>> {
        let rx = self.inner.events.subscribe();
        Ok(tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(|r| async move { r.ok().map(Ok) }).boxed())
    }
}

/// docker's error for a log driver nobody provides.
fn no_log_driver(name: &str) -> Error {
    Error::invalid("log driver", format!("logger: no log driver named '{name}' is registered"))
}

/// Where a log plugin reads a container's entries.
fn log_fifo(bundle: &Path) -> PathBuf {
    bundle.join("log.fifo")
}

/// The shim's log settings for a log file.
fn file_log(path: &Path, f: &FileLog, fifo: Option<PathBuf>) -> LogConfig {
    LogConfig { path: path.to_path_buf(), max_size: f.max_size, max_files: f.rotated_files(), format: f.format, fifo }
}

/// Is the container's owner (`ContainerConfig::owner_pid`) a process that no
/// longer runs? Never true of this process itself, nor without an owner.
fn owner_gone(owner: Option<Pid>) -> bool {
    let Some(pid) = owner else { return false };
    if pid as u32 == std::process::id() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // A zombie has died already.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}
