//! Shared setup for the manager's end-to-end tests: a temp root, an image
//! store with a busybox-static image, a shim launcher, and the runtimes.
#![allow(dead_code)]

use engine_core::{ContainerConfig, ImageStore, LifecycleManager, ListFilter, Result, ShimLauncher};
use engine_lifecycle::{Manager, ManagerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const IMAGE: &str = "busybox:e2e";

/// The directory holding the workspace's binaries.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ENGINE_BIN_DIR") {
        return d.into();
    }
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub images: Arc<dyn ImageStore>,
    pub shims: Arc<dyn ShimLauncher>,
}

impl Env {
    pub async fn new() -> Env {
        let _ = tracing_subscriber_init();
        let dir = tempfile::Builder::new().prefix("lc").tempdir_in("/tmp").unwrap();
        let store = engine_image::Store::open(dir.path().join("images")).unwrap();
        let rootfs = dir.path().join("bb-rootfs");
        engine_image::build::busybox_rootfs(&rootfs).unwrap();
        store.import_dir(&rootfs, IMAGE).await.unwrap();
        std::fs::remove_dir_all(&rootfs).unwrap();
        let shims = Arc::new(engine_shim::Launcher::new(bin_dir().join("engine-shim")));
        Env { dir, images: Arc::new(store), shims }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn config(&self, runtime: &str) -> ManagerConfig {
        let mut cfg = ManagerConfig::new(self.root(), self.images.clone(), self.shims.clone())
            .runtime("engine-runc", bin_dir().join("engine-runc"));
        if let Some(p) = engine_lifecycle::find_in_path("runc") {
            cfg = cfg.runtime("runc", p);
        }
        cfg.default_runtime(runtime)
    }

    pub async fn manager(&self, runtime: &str) -> Manager {
        Manager::new(self.config(runtime)).await.unwrap()
    }
}

fn tracing_subscriber_init() -> Option<()> {
    None
}

/// A config running `sh -c script` in the test image, bound to this test
/// process: if a test fails and leaves it, its shim kills and deletes it (and
/// unmounts its rootfs) when the test binary exits.
pub fn sh(script: &str) -> ContainerConfig {
    ContainerConfig::default()
        .image(IMAGE.into())
        .cmd(Some(vec!["sh".into(), "-c".into(), script.into()]))
        .owner_pid(Some(std::process::id() as i32))
}

/// Remove every container (force), so a failed test leaks nothing.
pub async fn cleanup(mgr: &dyn LifecycleManager) {
    if let Ok(all) = mgr.list(ListFilter::default().all(true)).await {
        for c in all {
            let _ = mgr.remove(&c.id, true).await;
        }
    }
}

/// Collected stdout of a container's log.
pub async fn log_text(mgr: &dyn LifecycleManager, id: &str) -> Result<String> {
    use futures::StreamExt;
    let mut s = mgr.logs(id, Default::default()).await?;
    let mut out = String::new();
    while let Some(e) = s.next().await {
        out.push_str(&String::from_utf8_lossy(&e?.line));
    }
    Ok(out)
}

pub fn mounts_under(p: &Path) -> Vec<String> {
    let m = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = p.to_string_lossy().to_string();
    m.lines().filter(|l| l.contains(&p)).map(String::from).collect()
}

pub fn runtimes() -> Vec<&'static str> {
    let mut v = vec!["engine-runc"];
    if engine_lifecycle::find_in_path("runc").is_some() {
        v.push("runc");
    }
    v
}

/// Collected stdout only.
pub async fn stdout_text(mgr: &dyn LifecycleManager, id: &str) -> Result<String> {
    use futures::StreamExt;
    let mut s = mgr.logs(id, engine_core::LogOptions::default().stderr(false)).await?;
    let mut out = String::new();
    while let Some(e) = s.next().await {
        out.push_str(&String::from_utf8_lossy(&e?.line));
    }
    Ok(out)
}
