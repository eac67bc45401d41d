//! Container states and exit statuses.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

/// A process id on the host.
pub type Pid = i32;

/// The OCI runtime status of a container (runtime-spec `runtime.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStatus {
    /// Being created; `create` has not returned yet.
    Creating,
    /// Created: the init waits for `start`.
    Created,
    /// The user process runs.
    Running,
    /// Frozen by `pause`.
    Paused,
    /// The process has exited.
    Stopped,
}

impl std::fmt::Display for ContainerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ContainerStatus::Creating => "creating",
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Paused => "paused",
            ContainerStatus::Stopped => "stopped",
        })
    }
}

/// The state JSON a runtime reports (`runc state`), per the OCI runtime spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RuntimeState {
    /// The runtime-spec version the container was created with.
    pub oci_version: String,
    /// The container id.
    pub id: String,
    /// Its status.
    pub status: ContainerStatus,
    /// The init's host pid (0 once stopped, for runtimes that report it so).
    #[serde(default)]
    pub pid: Pid,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The config's annotations.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}
impl RuntimeState {
    /// The runtime-spec version this crate's runtimes report.
    pub const OCI_VERSION: &'static str = "1.2.0";
    /// The state of container `id` in `bundle`: `status`, init `pid`, no
    /// annotations, written for runtime-spec [`OCI_VERSION`](Self::OCI_VERSION).
    pub fn new(id: impl Into<String>, status: ContainerStatus, pid: Pid, bundle: impl Into<PathBuf>) -> Self {
        RuntimeState {
            oci_version: Self::OCI_VERSION.to_string(),
            id: id.into(),
            status,
            pid,
            bundle: bundle.into(),
            annotations: HashMap::new(),
        }
    }
}

crate::setters::setters!(RuntimeState { oci_version: String, id: String, status: ContainerStatus, pid: Pid, bundle: PathBuf, annotations: HashMap<String, String> });

/// How a process ended: an exit code, or a signal reported as `128 + signal`
/// the way shells and Docker do. An exit code is a value, never an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// The exit code (`128 + n` when killed by signal `n`).
    pub code: i32,
    /// When the exit was observed.
    #[serde(with = "crate::time::serde_system_time")]
    pub at: SystemTime,
}

impl ExitStatus {
    /// An exit status observed now.
    pub fn now(code: i32) -> Self {
        ExitStatus { code, at: SystemTime::now() }
    }
    /// True when the code is 0.
    pub fn success(&self) -> bool {
        self.code == 0
    }
    /// The signal that killed the process, if `code > 128`.
    pub fn signal(&self) -> Option<i32> {
        (self.code > 128 && self.code < 128 + 65).then_some(self.code - 128)
    }
}
