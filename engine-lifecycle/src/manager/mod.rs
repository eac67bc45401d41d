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

mod create;
mod exec;
mod monitor;
mod network;
mod recover;
mod remove;
mod shim;

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
        let _ = self.events.send(Event::new(id, name, kind).labels(labels));
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
        let mut entries: Vec<Arc<Entry>> = self.inner.containers.read().unwrap().values().cloned().collect();
        // Newest first; sorted before the infos are cloned (moving thousands
        // of infos around in a sort cost as much as cloning them).
        entries.sort_by_cached_key(|e| std::cmp::Reverse(e.rec.lock().unwrap().info.created));
        let out: Vec<ContainerInfo> = entries
            .iter()
            .filter(|e| filter.all || is_running(e.state()))
            .map(|e| e.info())
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
    LogConfig::default()
        .path(path.to_path_buf())
        .max_size(f.max_size)
        .max_files(f.rotated_files())
        .format(f.format)
        .fifo(fifo)
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

/// Detach container `id` (as recorded: a full id) from `network`; an `id`
/// that is no container id (a stray file name found by recovery) is refused.
async fn detach(driver: &dyn NetworkDriver, network: &str, id: &str) -> Result<()> {
    driver.detach(network, &ContainerId::new(id)?).await
}
