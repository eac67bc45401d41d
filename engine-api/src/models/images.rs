//! Images: list, inspect, history (`/images/...`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// One entry of `GET /images/json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageSummary {
    /// Containers using it (-1: not computed).
    pub containers: i64,
    /// Creation time, Unix seconds.
    pub created: i64,
    /// `sha256:...`.
    pub id: String,
    /// Labels.
    #[serde(default)]
    pub labels: Option<HashMap<String, String>>,
    /// Parent id (empty).
    pub parent_id: String,
    /// `repo@sha256:...`.
    #[serde(default)]
    pub repo_digests: Option<Vec<String>>,
    /// `repo:tag`.
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    /// Shared size (-1: not computed).
    pub shared_size: i64,
    /// Size in bytes.
    pub size: i64,
    /// Size in bytes (old API).
    #[serde(default)]
    pub virtual_size: i64,
}

/// `RootFS` in image inspect.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootFsBody {
    /// `layers`.
    pub r#type: String,
    /// Diff ids.
    #[serde(default)]
    pub layers: Vec<String>,
}

/// `GET /images/{name}/json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    /// `sha256:...`.
    pub id: String,
    /// Tags.
    #[serde(default)]
    pub repo_tags: Vec<String>,
    /// Digests.
    #[serde(default)]
    pub repo_digests: Vec<String>,
    /// Parent.
    #[serde(default)]
    pub parent: String,
    /// Comment.
    #[serde(default)]
    pub comment: String,
    /// RFC 3339.
    #[serde(default)]
    pub created: String,
    /// Container it was committed from.
    #[serde(default)]
    pub container: String,
    /// Container config at commit.
    #[serde(default)]
    pub container_config: Value,
    /// Docker version that built it.
    #[serde(default)]
    pub docker_version: String,
    /// Author.
    #[serde(default)]
    pub author: String,
    /// Its config (Cmd, Entrypoint, Env, ...), Docker-shaped.
    #[serde(default)]
    pub config: Value,
    /// Architecture.
    #[serde(default)]
    pub architecture: String,
    /// OS.
    #[serde(default)]
    pub os: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: i64,
    /// Size in bytes (old API).
    #[serde(default)]
    pub virtual_size: i64,
    /// Storage driver.
    #[serde(default)]
    pub graph_driver: Value,
    /// Layers.
    #[serde(rename = "RootFS")]
    pub root_fs: RootFsBody,
    /// `{"LastTagTime": ...}`.
    #[serde(default)]
    pub metadata: Value,
}

/// One entry of `GET /images/{name}/history`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryEntry {
    /// Image id for the top entry, `<missing>` below.
    pub id: String,
    /// Unix seconds.
    pub created: i64,
    /// The command that made the layer.
    pub created_by: String,
    /// Tags (top entry).
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Layer size.
    pub size: i64,
    /// Comment.
    #[serde(default)]
    pub comment: String,
}
