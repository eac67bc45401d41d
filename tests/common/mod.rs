//! Shared fixtures of the facade's end-to-end tests.
#![allow(dead_code)]

use engine::{Engine, EngineBuilder};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the workspace's binaries are: `$ENGINE_BIN_DIR`, else target/debug.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ENGINE_BIN_DIR") {
        return d.into();
    }
    std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf()
}

/// An engine builder rooted at `root` that runs this workspace's
/// `engine-runc` through this workspace's `engine-shim`.
pub fn builder(root: &Path) -> EngineBuilder {
    Engine::builder()
        .root(root)
        .add_runtime("engine-runc", bin_dir().join("engine-runc"))
        .shim_launcher(std::sync::Arc::new(engine::shim::Launcher::new(bin_dir().join("engine-shim"))))
        .runtime("engine-runc")
        .startup_timeout(Duration::from_secs(30))
}
