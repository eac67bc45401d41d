//! Exec instances: create, start, inspect (`/containers/{id}/exec`, `/exec/...`).

use super::StrSlice;
use serde::{Deserialize, Serialize};

/// `POST /containers/{id}/exec` body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecCreateBody {
    /// User.
    #[serde(default)]
    pub user: Option<String>,
    /// Privileged (not supported).
    #[serde(default)]
    pub privileged: Option<bool>,
    /// Terminal.
    #[serde(default)]
    pub tty: Option<bool>,
    /// Attach stdin.
    #[serde(default)]
    pub attach_stdin: Option<bool>,
    /// Attach stderr.
    #[serde(default)]
    pub attach_stderr: Option<bool>,
    /// Attach stdout.
    #[serde(default)]
    pub attach_stdout: Option<bool>,
    /// Detach.
    #[serde(default)]
    pub detach: Option<bool>,
    /// Detach keys.
    #[serde(default)]
    pub detach_keys: Option<String>,
    /// Extra env.
    #[serde(default)]
    pub env: Option<Vec<String>>,
    /// Working directory.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// Command.
    #[serde(default)]
    pub cmd: Option<StrSlice>,
    /// Terminal size `[height, width]`.
    #[serde(default)]
    pub console_size: Option<Vec<u16>>,
}

/// `POST /exec/{id}/start` body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecStartBody {
    /// Start and return at once.
    #[serde(default)]
    pub detach: Option<bool>,
    /// Terminal.
    #[serde(default)]
    pub tty: Option<bool>,
    /// Terminal size `[height, width]`.
    #[serde(default)]
    pub console_size: Option<Vec<u16>>,
}

/// `ProcessConfig` in exec inspect.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecProcessConfig {
    /// Terminal.
    pub tty: bool,
    /// The program.
    pub entrypoint: String,
    /// Its arguments.
    pub arguments: Vec<String>,
    /// Privileged.
    pub privileged: bool,
    /// User.
    #[serde(default)]
    pub user: String,
}

/// `GET /exec/{id}/json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecInspect {
    /// Exec id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Running.
    pub running: bool,
    /// Exit code once exited (null before).
    pub exit_code: Option<i64>,
    /// Process config.
    pub process_config: ExecProcessConfig,
    /// Stdin open.
    pub open_stdin: bool,
    /// Stderr attached.
    pub open_stderr: bool,
    /// Stdout attached.
    pub open_stdout: bool,
    /// Removable.
    pub can_remove: bool,
    /// Container id.
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    /// Detach keys.
    pub detach_keys: String,
    /// Host pid (0 before start).
    pub pid: i64,
}
