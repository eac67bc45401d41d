//! Volume plugins: [`PluginVolumeDriver`] speaks the `VolumeDriver`
//! interface of one plugin; [`VolumeRouter`] puts plugins beside the
//! engine's own driver and remembers which driver owns each volume.

use crate::{PluginError, Plugins};
use async_trait::async_trait;
use engine_core::volume::{validate_volume_name, ANONYMOUS_LABEL};
use engine_core::{Error, Result, Volume, VolumeCreate, VolumeDriver};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The interface name volume plugins announce in `Plugin.Activate`.
pub const VOLUME_INTERFACE: &str = "VolumeDriver";

/// One volume as a plugin describes it.
#[derive(Deserialize, Default)]
struct WireVolume {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Mountpoint", default)]
    mountpoint: String,
}

#[derive(Deserialize)]
struct MountAnswer {
    #[serde(rename = "Mountpoint", default)]
    mountpoint: String,
}

#[derive(Deserialize)]
struct GetAnswer {
    #[serde(rename = "Volume")]
    volume: Option<WireVolume>,
}

#[derive(Deserialize)]
struct ListAnswer {
    #[serde(rename = "Volumes", default)]
    volumes: Vec<WireVolume>,
}

#[derive(Deserialize)]
struct CapabilitiesAnswer {
    #[serde(rename = "Capabilities", default)]
    capabilities: Capabilities,
}

/// A volume plugin's `Capabilities`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Capabilities {
    /// `local` or `global`.
    #[serde(rename = "Scope", default)]
    pub scope: String,
}

/// An answer that carries nothing but `Err` (checked by the client).
#[derive(Deserialize)]
struct Empty {}

/// A plugin's `VolumeDriver` interface (`VolumeDriver.Create`, `.Remove`,
/// `.Mount`, `.Unmount`, `.Path`, `.Get`, `.List`, `.Capabilities`) as an
/// [`engine_core::VolumeDriver`].
///
/// Plugins keep no labels and no creation time: volumes this driver
/// reports carry none (the [`VolumeRouter`] records them). The plugin is
/// activated on first use.
#[derive(Clone, Debug)]
pub struct PluginVolumeDriver {
    plugins: Arc<Plugins>,
    name: String,
}

impl PluginVolumeDriver {
    /// The volume driver of plugin `name`, found through `plugins`.
    pub fn new(plugins: Arc<Plugins>, name: impl Into<String>) -> Self {
        PluginVolumeDriver { plugins, name: name.into() }
    }

    async fn call<T: serde::de::DeserializeOwned>(&self, method: &str, req: serde_json::Value) -> Result<T> {
        let p = self.plugins.get(&self.name, VOLUME_INTERFACE).await?;
        Ok(p.client().call(&format!("VolumeDriver.{method}"), &req).await?)
    }

    /// `VolumeDriver.Capabilities`.
    pub async fn capabilities(&self) -> Result<Capabilities> {
        Ok(self.call::<CapabilitiesAnswer>("Capabilities", json!({})).await?.capabilities)
    }

    /// `VolumeDriver.Path`: where the volume is mounted now (empty if not).
    pub async fn path(&self, name: &str) -> Result<PathBuf> {
        let a: MountAnswer = self.call("Path", json!({"Name": name})).await?;
        Ok(PathBuf::from(a.mountpoint))
    }

    fn volume(&self, name: String, mountpoint: String) -> Volume {
        let mut v = Volume::new(name, self.name.clone(), mountpoint);
        v.created = SystemTime::UNIX_EPOCH;
        v
    }

    fn bad(&self, method: &str, reason: String) -> Error {
        PluginError::BadAnswer { name: self.name.clone(), method: format!("VolumeDriver.{method}"), reason }.into()
    }
}

#[async_trait]
impl VolumeDriver for PluginVolumeDriver {
    fn name(&self) -> &str {
        &self.name
    }

    async fn create(&self, req: VolumeCreate) -> Result<Volume> {
        let name = req.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(engine_core::random_hex64);
        validate_volume_name(&name)?;
        let _: Empty = self.call("Create", json!({"Name": name, "Opts": req.driver_opts})).await?;
        let mut v = self.volume(name, String::new());
        v.options = req.driver_opts;
        v.labels = req.labels;
        if req.name.is_none_or(|n| n.is_empty()) {
            v.labels.insert(ANONYMOUS_LABEL.into(), String::new());
        }
        Ok(v)
    }

    async fn get(&self, name: &str) -> Result<Volume> {
        let a: GetAnswer = self.call("Get", json!({"Name": name})).await?;
        let w = a.volume.ok_or_else(|| Error::not_found("volume", name))?;
        Ok(self.volume(name.to_string(), w.mountpoint))
    }

    async fn list(&self) -> Result<Vec<Volume>> {
        let a: ListAnswer = self.call("List", json!({})).await?;
        let mut out: Vec<Volume> = a.volumes.into_iter().map(|w| self.volume(w.name, w.mountpoint)).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn remove(&self, name: &str) -> Result<()> {
        let _: Empty = self.call("Remove", json!({"Name": name})).await?;
        Ok(())
    }

    async fn mount(&self, name: &str, caller: &str) -> Result<PathBuf> {
        let a: MountAnswer = self.call("Mount", json!({"Name": name, "ID": caller})).await?;
        let p = PathBuf::from(&a.mountpoint);
        if !p.is_absolute() {
            return Err(self.bad("Mount", format!("Mountpoint {:?} is not an absolute path", a.mountpoint)));
        }
        Ok(p)
    }

    async fn unmount(&self, name: &str, caller: &str) -> Result<()> {
        let _: Empty = self.call("Unmount", json!({"Name": name, "ID": caller})).await?;
        Ok(())
    }
}

/// What the engine remembers of a plugin's volume (plugins keep no labels).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Owned {
    driver: String,
    #[serde(with = "engine_core::time::serde_system_time")]
    created: SystemTime,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    options: BTreeMap<String, String>,
}

#[derive(Default, Serialize, Deserialize)]
struct Records {
    volumes: BTreeMap<String, Owned>,
}

/// The engine's volume driver when plugins may own volumes: the default
/// driver (docker's `local`) for volumes asked of no other driver, and a
/// [`PluginVolumeDriver`] for each volume made with
/// [`VolumeCreate::driver`] naming a plugin.
///
/// Which driver owns each plugin volume, with its labels, options and
/// creation time, is recorded in `<state dir>/volumes.json` (written
/// atomically), so the engine finds the right plugin again after a
/// restart. A name is owned by one driver: asking another for it is a
/// [`Error::Conflict`]. Using an existing volume without naming a driver
/// (`docker run -v x:/data`) uses whichever driver owns it.
pub struct VolumeRouter {
    default: Arc<dyn VolumeDriver>,
    plugins: Arc<Plugins>,
    path: PathBuf,
    records: tokio::sync::Mutex<Records>,
    users: Mutex<BTreeMap<String, BTreeSet<String>>>,
}

impl std::fmt::Debug for VolumeRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeRouter").field("default", &self.default.name()).field("path", &self.path).finish()
    }
}

impl VolumeRouter {
    /// A router over `default` and the plugins `plugins` finds, recording
    /// plugin volumes under `state_dir` (created if missing).
    pub fn open(default: Arc<dyn VolumeDriver>, plugins: Arc<Plugins>, state_dir: impl AsRef<Path>) -> Result<Self> {
        use engine_core::IoContext;
        let dir = state_dir.as_ref();
        std::fs::create_dir_all(dir).context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("volumes.json");
        let records = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                Error::Other(format!(
                    "{} is corrupt ({e}): move it away to start without plugin volumes",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Records::default(),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        Ok(VolumeRouter {
            default,
            plugins,
            path,
            records: tokio::sync::Mutex::new(records),
            users: Mutex::new(BTreeMap::new()),
        })
    }

    /// The plugin registry.
    pub fn plugins(&self) -> &Arc<Plugins> {
        &self.plugins
    }

    fn plugin(&self, name: &str) -> PluginVolumeDriver {
        PluginVolumeDriver::new(self.plugins.clone(), name)
    }

    async fn owner(&self, name: &str) -> Option<Owned> {
        self.records.lock().await.volumes.get(name).cloned()
    }

    async fn save(&self, records: &Records) -> Result<()> {
        let data = serde_json::to_vec_pretty(records).map_err(|e| Error::Other(e.to_string()))?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || engine_core::fs::write_atomic(&path, &data))
            .await
            .map_err(|e| Error::Other(format!("volume record task: {e}")))?
    }

    fn users_of(&self, name: &str) -> Vec<String> {
        self.users.lock().unwrap().get(name).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    fn with_record(&self, mut v: Volume, o: &Owned) -> Volume {
        v.driver = o.driver.clone();
        v.created = o.created;
        v.labels = o.labels.clone();
        v.options = o.options.clone();
        v.users = self.users_of(&v.name);
        v
    }
}

#[async_trait]
impl VolumeDriver for VolumeRouter {
    fn name(&self) -> &str {
        self.default.name()
    }

    async fn create(&self, req: VolumeCreate) -> Result<Volume> {
        let wanted = req.driver.clone().filter(|d| !d.is_empty() && d != self.default.name());
        let named = req.name.clone().filter(|n| !n.is_empty());
        if let Some(n) = &named {
            if let Some(o) = self.owner(n).await {
                if wanted.as_ref().is_some_and(|w| *w != o.driver)
                    || (req.driver.as_deref() == Some(self.default.name()))
                {
                    return Err(Error::conflict(
                        "volume",
                        n,
                        format!("volume {n} already exists with driver {} (another driver was asked for)", o.driver),
                    ));
                }
                let v = self.plugin(&o.driver).get(n).await?;
                return Ok(self.with_record(v, &o));
            }
        }
        let Some(driver) = wanted else {
            let mut req = req;
            req.driver = None;
            return self.default.create(req).await;
        };
        let name = named.clone().unwrap_or_else(engine_core::random_hex64);
        validate_volume_name(&name)?;
        match self.default.get(&name).await {
            Ok(v) => {
                return Err(Error::conflict(
                    "volume",
                    &name,
                    format!("volume {name} already exists with driver {}", v.driver),
                ))
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let plugin = self.plugin(&driver);
        let mut req = req;
        req.name = Some(name.clone());
        let mut labels = std::mem::take(&mut req.labels);
        if named.is_none() {
            labels.insert(ANONYMOUS_LABEL.into(), String::new());
        }
        let v = plugin.create(req.clone()).await?;
        let owned = Owned { driver: driver.clone(), created: SystemTime::now(), labels, options: req.driver_opts };
        let mut records = self.records.lock().await;
        records.volumes.insert(name.clone(), owned.clone());
        if let Err(e) = self.save(&records).await {
            records.volumes.remove(&name);
            drop(records);
            if let Err(e2) = plugin.remove(&name).await {
                tracing::warn!(volume = %name, plugin = %driver, "removing a volume whose record failed: {e2}");
            }
            return Err(e);
        }
        tracing::info!(volume = %name, plugin = %driver, "plugin volume created");
        Ok(self.with_record(v, &owned))
    }

    async fn get(&self, name: &str) -> Result<Volume> {
        match self.owner(name).await {
            Some(o) => {
                let v = self.plugin(&o.driver).get(name).await?;
                Ok(self.with_record(v, &o))
            }
            None => self.default.get(name).await,
        }
    }

    async fn list(&self) -> Result<Vec<Volume>> {
        let mut out = self.default.list().await?;
        let owned = self.records.lock().await.volumes.clone();
        let drivers: BTreeSet<&String> = owned.values().map(|o| &o.driver).collect();
        let mut mountpoints = BTreeMap::new();
        for d in drivers {
            match self.plugin(d).list().await {
                Ok(vs) => mountpoints.extend(vs.into_iter().map(|v| (v.name, v.mountpoint))),
                // A plugin that is down hides no volume: its volumes are
                // listed from the records, without a mountpoint.
                Err(e) => tracing::warn!(plugin = %d, "listing the plugin's volumes: {e}"),
            }
        }
        for (n, o) in &owned {
            let mp = mountpoints.remove(n).unwrap_or_default();
            out.push(self.with_record(Volume::new(n.clone(), o.driver.clone(), mp), o));
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn remove(&self, name: &str) -> Result<()> {
        let Some(o) = self.owner(name).await else { return self.default.remove(name).await };
        if !self.users_of(name).is_empty() {
            return Err(Error::conflict("volume", name, format!("remove {name}: volume is in use")));
        }
        self.plugin(&o.driver).remove(name).await?;
        let mut records = self.records.lock().await;
        records.volumes.remove(name);
        self.save(&records).await
    }

    async fn mount(&self, name: &str, caller: &str) -> Result<PathBuf> {
        let Some(o) = self.owner(name).await else { return self.default.mount(name, caller).await };
        let p = self.plugin(&o.driver).mount(name, caller).await?;
        self.users.lock().unwrap().entry(name.to_string()).or_default().insert(caller.to_string());
        Ok(p)
    }

    async fn unmount(&self, name: &str, caller: &str) -> Result<()> {
        let Some(o) = self.owner(name).await else { return self.default.unmount(name, caller).await };
        self.plugin(&o.driver).unmount(name, caller).await?;
        let mut users = self.users.lock().unwrap();
        if let Some(s) = users.get_mut(name) {
            s.remove(caller);
            if s.is_empty() {
                users.remove(name);
            }
        }
        Ok(())
    }
}

/// A volume driver that serves only `default`'s volumes and refuses
/// every other driver with [`Error::Unsupported`] and `why`: what an
/// engine whose volumes cannot come from plugins (engined with a separate
/// engine-lifecycled, which mounts volumes itself) answers instead of a
/// plugin said to be missing.
pub struct VolumePluginsRefused {
    default: Arc<dyn VolumeDriver>,
    why: String,
}

impl std::fmt::Debug for VolumePluginsRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumePluginsRefused").field("default", &self.default.name()).finish()
    }
}

impl VolumePluginsRefused {
    /// `default`, refusing plugin drivers because `why`.
    pub fn new(default: Arc<dyn VolumeDriver>, why: impl Into<String>) -> Self {
        VolumePluginsRefused { default, why: why.into() }
    }
}

#[async_trait]
impl VolumeDriver for VolumePluginsRefused {
    fn name(&self) -> &str {
        self.default.name()
    }
    async fn create(&self, req: VolumeCreate) -> Result<Volume> {
        if let Some(d) = req.driver.as_deref().filter(|d| !d.is_empty() && *d != self.default.name()) {
            return Err(Error::Unsupported(format!("volume driver {d:?}: {}", self.why)));
        }
        self.default.create(req).await
    }
    async fn get(&self, name: &str) -> Result<Volume> {
        self.default.get(name).await
    }
    async fn list(&self) -> Result<Vec<Volume>> {
        self.default.list().await
    }
    async fn remove(&self, name: &str) -> Result<()> {
        self.default.remove(name).await
    }
    async fn mount(&self, name: &str, caller: &str) -> Result<PathBuf> {
        self.default.mount(name, caller).await
    }
    async fn unmount(&self, name: &str, caller: &str) -> Result<()> {
        self.default.unmount(name, caller).await
    }
}
