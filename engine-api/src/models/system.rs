//! The daemon itself: `/version` and `/info`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// A component in `GET /version`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VersionComponent {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Details.
    #[serde(default)]
    pub details: Option<HashMap<String, String>>,
}

/// `Platform` in `GET /version`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PlatformBody {
    /// Name.
    pub name: String,
}

/// `GET /version`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VersionResponse {
    /// Platform.
    #[serde(default)]
    pub platform: PlatformBody,
    /// Components.
    #[serde(default)]
    pub components: Vec<VersionComponent>,
    /// Server version.
    pub version: String,
    /// API version.
    pub api_version: String,
    /// Lowest API version served.
    #[serde(rename = "MinAPIVersion", default)]
    pub min_api_version: String,
    /// Git commit.
    #[serde(default)]
    pub git_commit: String,
    /// Toolchain version.
    #[serde(default)]
    pub go_version: String,
    /// OS.
    #[serde(default)]
    pub os: String,
    /// Architecture.
    #[serde(default)]
    pub arch: String,
    /// Kernel version.
    #[serde(default)]
    pub kernel_version: String,
    /// Build time.
    #[serde(default)]
    pub build_time: String,
}

/// The parts of `GET /info` the client uses; the full answer is also kept in `raw`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InfoResponse {
    /// Daemon id.
    #[serde(rename = "ID", default)]
    pub id: String,
    /// Containers in all.
    #[serde(default)]
    pub containers: i64,
    /// Running.
    #[serde(default)]
    pub containers_running: i64,
    /// Paused.
    #[serde(default)]
    pub containers_paused: i64,
    /// Stopped.
    #[serde(default)]
    pub containers_stopped: i64,
    /// Images.
    #[serde(default)]
    pub images: i64,
    /// Storage driver.
    #[serde(default)]
    pub driver: String,
    /// Root dir.
    #[serde(default)]
    pub docker_root_dir: String,
    /// Server version.
    #[serde(default)]
    pub server_version: String,
    /// Default runtime.
    #[serde(default)]
    pub default_runtime: String,
    /// Runtimes by name.
    #[serde(default)]
    pub runtimes: HashMap<String, Value>,
    /// Kernel.
    #[serde(default)]
    pub kernel_version: String,
    /// OS.
    #[serde(default)]
    pub operating_system: String,
    /// CPUs.
    #[serde(rename = "NCPU", default)]
    pub ncpu: i64,
    /// Memory.
    #[serde(default)]
    pub mem_total: i64,
    /// Cgroup driver.
    #[serde(default)]
    pub cgroup_driver: String,
    /// Cgroup version.
    #[serde(default)]
    pub cgroup_version: String,
    /// Host name.
    #[serde(default)]
    pub name: String,
}
