//! Resource usage figures read from a container's cgroup.

use serde::{Deserialize, Serialize};

/// A snapshot of a container's resource usage. Fields a host cannot report
/// are `None` rather than zero.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Stats {
    /// Total CPU time, in nanoseconds.
    pub cpu_usage_ns: Option<u64>,
    /// CPU time in user mode, in nanoseconds.
    pub cpu_user_ns: Option<u64>,
    /// CPU time in kernel mode, in nanoseconds.
    pub cpu_system_ns: Option<u64>,
    /// Memory in use, in bytes.
    pub memory_usage: Option<u64>,
    /// Memory limit, in bytes (`None` when unlimited).
    pub memory_limit: Option<u64>,
    /// Peak memory use, in bytes.
    pub memory_max_usage: Option<u64>,
    /// Number of times the OOM killer acted in this cgroup.
    pub oom_kills: Option<u64>,
    /// Processes and threads in the cgroup.
    pub pids_current: Option<u64>,
    /// Pids limit.
    pub pids_limit: Option<u64>,
    /// Bytes read from block devices.
    pub io_read_bytes: Option<u64>,
    /// Bytes written to block devices.
    pub io_write_bytes: Option<u64>,
}

crate::setters::setters!(Stats { cpu_usage_ns: Option<u64>, cpu_user_ns: Option<u64>, cpu_system_ns: Option<u64>, memory_usage: Option<u64>, memory_limit: Option<u64>, memory_max_usage: Option<u64>, oom_kills: Option<u64>, pids_current: Option<u64>, pids_limit: Option<u64>, io_read_bytes: Option<u64>, io_write_bytes: Option<u64> });
