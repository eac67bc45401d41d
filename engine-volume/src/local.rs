//! Docker's `local` volume driver.

use crate::mountinfo::is_mountpoint;
use async_trait::async_trait;
use engine_core::volume::{validate_volume_name, ANONYMOUS_LABEL};
use engine_core::{Error, IoContext, Result, Volume, VolumeCreate, VolumeDriver};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

const DRIVER: &str = "local";
const RECORD: &str = "volume.json";
const DATA: &str = "_data";
/// Prefixes of the directories a create or a remove is working in; swept at open.
const CREATING: &str = ".creating-";
const REMOVING: &str = ".removing-";

/// Docker's `local` driver: directories under a root, optionally with a
/// device (`type`, `device`, `o`) mounted on them while they are in use.
///
/// Cheap to clone (an `Arc` inside).
#[derive(Clone, Debug)]
pub struct LocalDriver {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    /// Volume name -> container ids using it. One lock serializes all
    /// changes, so a remove never races a mount.
    users: Mutex<HashMap<String, BTreeSet<String>>>,
}

/// The record on disk.
#[derive(Serialize, Deserialize)]
struct Record {
    name: String,
    #[serde(with = "engine_core::time::serde_system_time")]
    created: SystemTime,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    options: BTreeMap<String, String>,
}

impl LocalDriver {
    /// Open (creating it if needed) a volume root, and finish what a crash
    /// interrupted: half-made creates and half-done removes are deleted.
    pub fn open(root: impl Into<PathBuf>) -> Result<LocalDriver> {
        let root = root.into();
        std::fs::create_dir_all(&root).context(|| format!("creating volume root {}", root.display()))?;
        for e in std::fs::read_dir(&root).context(|| format!("reading {}", root.display()))?.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(CREATING) || n.starts_with(REMOVING) {
                let p = e.path();
                let data = p.join(DATA);
                if is_mountpoint(&data) {
                    let _ = nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH);
                }
                if let Err(e) = std::fs::remove_dir_all(&p) {
                    tracing::warn!(path = %p.display(), "removing a half-made or half-removed volume: {e}");
                }
            }
        }
        Ok(LocalDriver { inner: Arc::new(Inner { root, users: Mutex::new(HashMap::new()) }) })
    }

    /// The root the volumes live under.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    async fn blocking<T: Send + 'static>(&self, f: impl FnOnce(&Inner) -> Result<T> + Send + 'static) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| Error::Other(format!("volume driver task: {e}")))?
    }
}

/// The mount a volume's options ask for.
#[derive(Debug, PartialEq, Eq)]
struct DeviceMount {
    fstype: String,
    device: String,
    flags: nix::mount::MsFlags,
    data: String,
}

/// Check docker's local options and turn them into a mount (`None`: a plain directory).
fn device_mount(opts: &BTreeMap<String, String>) -> Result<Option<DeviceMount>> {
    use nix::mount::MsFlags;
    for k in opts.keys() {
        if !matches!(k.as_str(), "type" | "device" | "o") {
            return Err(Error::invalid(
                "volume option",
                format!("invalid option key: {k:?} (the local driver takes \"type\", \"device\" and \"o\")"),
            ));
        }
    }
    if opts.is_empty() {
        return Ok(None);
    }
    let fstype = opts.get("type").filter(|t| !t.is_empty());
    let device = opts.get("device").filter(|t| !t.is_empty());
    let (Some(fstype), Some(device)) = (fstype, device) else {
        let missing = if fstype.is_none() { "type" } else { "device" };
        return Err(Error::invalid("volume option", format!("missing required option: {missing:?}")));
    };
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in opts.get("o").map(String::as_str).unwrap_or("").split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => flags &= !MsFlags::MS_RDONLY,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            other => data.push(other.to_string()),
        }
    }
    if flags.contains(MsFlags::MS_BIND) {
        let p = Path::new(device);
        if !p.is_absolute() {
            return Err(Error::invalid("volume option", format!("bind device {device:?} is not an absolute path")));
        }
        if !p.is_dir() {
            return Err(Error::invalid("volume option", format!("bind device {device:?} is not a directory")));
        }
    }
    Ok(Some(DeviceMount { fstype: fstype.clone(), device: device.clone(), flags, data: data.join(",") }))
}

impl DeviceMount {
    fn mount(&self, on: &Path) -> Result<()> {
        let data = (!self.data.is_empty()).then_some(self.data.as_str());
        let fstype = (!self.flags.contains(nix::mount::MsFlags::MS_BIND)).then_some(self.fstype.as_str());
        nix::mount::mount(Some(self.device.as_str()), on, fstype, self.flags, data).map_err(|e| {
            Error::invalid(
                "volume option",
                format!(
                    "mounting {} (type {}, options {:?}) on {}: {e}",
                    self.device,
                    self.fstype,
                    self.data,
                    on.display()
                ),
            )
        })?;
        if self.flags.contains(nix::mount::MsFlags::MS_BIND) && self.flags.contains(nix::mount::MsFlags::MS_RDONLY) {
            // A bind ignores MS_RDONLY until remounted.
            let f = self.flags | nix::mount::MsFlags::MS_REMOUNT;
            if let Err(e) = nix::mount::mount(None::<&str>, on, None::<&str>, f, None::<&str>) {
                let _ = nix::mount::umount2(on, nix::mount::MntFlags::MNT_DETACH);
                return Err(Error::io(format!("remounting {} read-only", on.display()), e.into()));
            }
        }
        Ok(())
    }
}

fn unmount(data: &Path) -> Result<()> {
    if is_mountpoint(data) {
        nix::mount::umount2(data, nix::mount::MntFlags::MNT_DETACH)
            .map_err(|e| Error::io(format!("unmounting {}", data.display()), e.into()))?;
    }
    Ok(())
}

impl Inner {
    fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn load(&self, name: &str, users: &HashMap<String, BTreeSet<String>>) -> Result<Volume> {
        validate_volume_name(name).map_err(|_| Error::not_found("volume", name))?;
        let dir = self.dir(name);
        let bytes = match std::fs::read(dir.join(RECORD)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::not_found("volume", name)),
            Err(e) => return Err(Error::io(format!("reading volume record of {name}"), e)),
        };
        let rec: Record = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Other(format!("volume record {}: {e}", dir.join(RECORD).display())))?;
        let mut v = Volume::new(name, DRIVER, dir.join(DATA));
        v.created = rec.created;
        v.labels = rec.labels;
        v.options = rec.options;
        v.users = users.get(name).map(|u| u.iter().cloned().collect()).unwrap_or_default();
        Ok(v)
    }

    fn create(&self, req: VolumeCreate) -> Result<Volume> {
        if let Some(d) = req.driver.as_deref().filter(|d| !d.is_empty() && *d != DRIVER) {
            return Err(Error::not_found("plugin", d));
        }
        let mut labels = req.labels;
        let name = match req.name.filter(|n| !n.is_empty()) {
            Some(n) => n,
            None => {
                labels.insert(ANONYMOUS_LABEL.into(), String::new());
                engine_core::random_hex64()
            }
        };
        validate_volume_name(&name)?;
        device_mount(&req.driver_opts)?;
        let users = self.users.lock().unwrap();
        match self.load(&name, &users) {
            Ok(v) => {
                if !req.driver_opts.is_empty() && req.driver_opts != v.options {
                    return Err(Error::conflict(
                        "volume",
                        &name,
                        format!("volume {name} already exists with other options ({:?})", v.options),
                    ));
                }
                return Ok(v);
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        // Made aside, then renamed into place: the volume exists whole or not at all.
        let tmp = self.root.join(format!("{CREATING}{}", &engine_core::random_hex64()[..16]));
        let rec = Record { name: name.clone(), created: SystemTime::now(), labels, options: req.driver_opts };
        let made = (|| {
            std::fs::create_dir_all(tmp.join(DATA)).context(|| format!("creating {}", tmp.display()))?;
            let json = serde_json::to_vec_pretty(&rec).map_err(|e| Error::Other(format!("volume record: {e}")))?;
            engine_core::fs::write_atomic(&tmp.join(RECORD), &json)?;
            std::fs::rename(&tmp, self.dir(&name)).context(|| format!("creating volume {name}"))?;
            std::fs::File::open(&self.root)
                .and_then(|d| d.sync_all())
                .context(|| format!("syncing {}", self.root.display()))
        })();
        if let Err(e) = made {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        tracing::info!(volume = %name, "volume created");
        self.load(&name, &users)
    }

    fn remove(&self, name: &str) -> Result<()> {
        let users = self.users.lock().unwrap();
        let v = self.load(name, &users)?;
        if !v.users.is_empty() {
            let ids = &v.users;
            return Err(Error::conflict(
                "volume",
                name,
                format!("remove {name}: volume is in use - [{}]", ids.join(", ")),
            ));
        }
        unmount(&v.mountpoint)?;
        // Out of sight first (one rename), then deleted: a crash in between
        // leaves a `.removing-` directory that the next open deletes.
        let gone = self.root.join(format!("{REMOVING}{}", &engine_core::random_hex64()[..16]));
        std::fs::rename(self.dir(name), &gone).context(|| format!("removing volume {name}"))?;
        if let Err(e) = std::fs::remove_dir_all(&gone) {
            tracing::warn!(volume = name, path = %gone.display(), "deleting a removed volume's data: {e}");
        }
        tracing::info!(volume = name, "volume removed");
        Ok(())
    }

    fn list(&self) -> Result<Vec<Volume>> {
        let users = self.users.lock().unwrap();
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.root).context(|| format!("reading {}", self.root.display()))?.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with('.') {
                continue;
            }
            match self.load(&n, &users) {
                Ok(v) => out.push(v),
                Err(e) if e.is_not_found() => {}
                Err(e) => tracing::warn!(volume = n, "skipping an unreadable volume: {e}"),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn mount(&self, name: &str, caller: &str) -> Result<PathBuf> {
        let mut users = self.users.lock().unwrap();
        let v = self.load(name, &users)?;
        let first = users.get(name).is_none_or(|u| u.is_empty());
        // After a restart the device may still be mounted from before.
        if first && !is_mountpoint(&v.mountpoint) {
            if let Some(m) = device_mount(&v.options)? {
                m.mount(&v.mountpoint)?;
            }
        }
        users.entry(name.to_string()).or_default().insert(caller.to_string());
        Ok(v.mountpoint)
    }

    fn unmount(&self, name: &str, caller: &str) -> Result<()> {
        let mut users = self.users.lock().unwrap();
        let Some(set) = users.get_mut(name) else { return Ok(()) };
        if !set.remove(caller) {
            return Ok(());
        }
        if set.is_empty() {
            users.remove(name);
            unmount(&self.dir(name).join(DATA))?;
        }
        Ok(())
    }
}

#[async_trait]
impl VolumeDriver for LocalDriver {
    fn name(&self) -> &str {
        DRIVER
    }
    async fn create(&self, req: VolumeCreate) -> Result<Volume> {
        self.blocking(move |i| i.create(req)).await
    }
    async fn get(&self, name: &str) -> Result<Volume> {
        let name = name.to_string();
        self.blocking(move |i| i.load(&name, &i.users.lock().unwrap())).await
    }
    async fn list(&self) -> Result<Vec<Volume>> {
        self.blocking(|i| i.list()).await
    }
    async fn remove(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.blocking(move |i| i.remove(&name)).await
    }
    async fn mount(&self, name: &str, caller: &str) -> Result<PathBuf> {
        let (name, caller) = (name.to_string(), caller.to_string());
        self.blocking(move |i| i.mount(&name, &caller)).await
    }
    async fn unmount(&self, name: &str, caller: &str) -> Result<()> {
        let (name, caller) = (name.to_string(), caller.to_string());
        self.blocking(move |i| i.unmount(&name, &caller)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn options_are_checked() {
        assert_eq!(device_mount(&opts(&[])).unwrap(), None);
        let e = device_mount(&opts(&[("foo", "bar")])).unwrap_err();
        assert!(e.is_invalid_input() && e.to_string().contains("\"foo\""), "{e}");
        let e = device_mount(&opts(&[("type", "tmpfs")])).unwrap_err();
        assert!(e.to_string().contains("\"device\""), "{e}");
        let m =
            device_mount(&opts(&[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=1m,nodev")])).unwrap().unwrap();
        assert_eq!(m.data, "size=1m");
        assert!(m.flags.contains(nix::mount::MsFlags::MS_NODEV));
        let e = device_mount(&opts(&[("type", "none"), ("device", "rel/dir"), ("o", "bind")])).unwrap_err();
        assert!(e.to_string().contains("absolute"), "{e}");
    }

    #[tokio::test]
    async fn open_finishes_interrupted_creates_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("volumes");
        LocalDriver::open(&root).unwrap().create(VolumeCreate::named("kept")).await.unwrap();
        // What a crash leaves: a create before its rename, a remove after its rename.
        std::fs::create_dir_all(root.join(".creating-0123/_data")).unwrap();
        std::fs::create_dir_all(root.join(".removing-4567/_data/sub")).unwrap();
        std::fs::write(root.join(".removing-4567/_data/sub/f"), "x").unwrap();
        let d = LocalDriver::open(&root).unwrap();
        let names: Vec<_> = std::fs::read_dir(&root).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("kept")]);
        assert_eq!(d.list().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn create_get_list_remove_and_users() {
        let dir = tempfile::tempdir().unwrap();
        let d = LocalDriver::open(dir.path().join("volumes")).unwrap();
        let v = d.create(VolumeCreate::named("data1").label("a", "b")).await.unwrap();
        assert_eq!(v.mountpoint, dir.path().join("volumes/data1/_data"));
        assert!(v.mountpoint.is_dir());
        // Idempotent create; other options conflict.
        assert_eq!(d.create(VolumeCreate::named("data1")).await.unwrap().created, v.created);
        assert!(d
            .create(VolumeCreate::named("data1").opt("type", "tmpfs").opt("device", "x"))
            .await
            .unwrap_err()
            .is_conflict());
        assert!(d.create(VolumeCreate::named("bad/name")).await.unwrap_err().is_invalid_input());
        assert!(d.create(VolumeCreate::named("p1").driver("nosuch")).await.unwrap_err().is_not_found());
        assert!(d.create(VolumeCreate::named("p1").driver("local")).await.is_ok());
        d.remove("p1").await.unwrap();
        let anon = d.create(VolumeCreate::anonymous()).await.unwrap();
        assert!(anon.is_anonymous() && anon.name.len() == 64);
        assert_eq!(d.list().await.unwrap().len(), 2);

        assert_eq!(d.mount("data1", "c1").await.unwrap(), v.mountpoint);
        d.mount("data1", "c1").await.unwrap();
        let e = d.remove("data1").await.unwrap_err();
        assert!(e.is_conflict() && e.to_string().contains("in use"), "{e}");
        assert_eq!(d.get("data1").await.unwrap().users, vec!["c1".to_string()]);
        d.unmount("data1", "c1").await.unwrap();
        d.remove("data1").await.unwrap();
        assert!(d.get("data1").await.unwrap_err().is_not_found());
        assert!(!dir.path().join("volumes/data1").exists());
        // Nothing but the anonymous volume is left, no temp dirs.
        let names: Vec<_> =
            std::fs::read_dir(dir.path().join("volumes")).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from(&anon.name)]);
    }
}
