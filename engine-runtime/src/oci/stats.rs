//! runc's `events --stats` record ([`StatsEvent`]), the format
//! `engine-runc` emits too, and the parser that also reads the engine's own
//! flat [`Stats`].

use engine_core::Stats;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Parse one `events --stats` line: runc's record ([`StatsEvent`]), or a
/// record whose `data` is the engine's own [`Stats`] (as older `engine-runc`
/// builds printed it).
pub fn parse_stats_record(line: &str) -> std::result::Result<Stats, serde_json::Error> {
    let v: serde_json::Value = serde_json::from_str(line)?;
    let flat = v.get("data").and_then(|d| d.as_object()).is_some_and(|d| {
        d.contains_key("cpu_usage_ns") || d.contains_key("memory_usage") || d.contains_key("pids_current")
    });
    if flat {
        return serde_json::from_value(v["data"].clone());
    }
    Ok(serde_json::from_value::<StatsEvent>(v)?.to_stats())
}

/// runc's `events --stats` record: `{"type":"stats","id":..,"data":{..}}`.
/// `engine-runc` emits the same, so any runc-compatible consumer reads it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsEvent {
    /// `"stats"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The container id.
    pub id: String,
    /// The figures.
    #[serde(default)]
    pub data: StatsData,
}

/// The `data` of a [`StatsEvent`] (the parts this engine uses; others are ignored).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsData {
    /// CPU usage.
    #[serde(default)]
    pub cpu: CpuStats,
    /// Memory usage.
    #[serde(default)]
    pub memory: MemoryStats,
    /// Process counts.
    #[serde(default)]
    pub pids: PidsStats,
    /// Block I/O.
    #[serde(default)]
    pub blkio: BlkioStats,
}

/// `data.cpu`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuStats {
    /// `data.cpu.usage`.
    #[serde(default)]
    pub usage: CpuUsage,
}

/// `data.cpu.usage`, in nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUsage {
    /// Total CPU time.
    #[serde(default)]
    pub total: u64,
    /// In kernel mode.
    #[serde(default)]
    pub kernel: u64,
    /// In user mode.
    #[serde(default)]
    pub user: u64,
}

/// `data.memory`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// `data.memory.usage`.
    #[serde(default)]
    pub usage: MemoryEntry,
    /// `data.memory.raw`: counters by name (memory.stat; `oom_kill` where known).
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub raw: HashMap<String, u64>,
}

/// One memory counter set, in bytes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryEntry {
    /// Limit (a huge value when unlimited).
    #[serde(default)]
    pub limit: u64,
    /// Current usage.
    #[serde(default)]
    pub usage: u64,
    /// Peak usage.
    #[serde(default)]
    pub max: u64,
    /// Times the limit was hit.
    #[serde(default)]
    pub failcnt: u64,
}

/// `data.pids`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PidsStats {
    /// Tasks in the cgroup.
    #[serde(default)]
    pub current: u64,
    /// Limit (0 when unlimited).
    #[serde(default)]
    pub limit: u64,
}

/// `data.blkio`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BlkioStats {
    /// Bytes per device and operation.
    #[serde(rename = "ioServiceBytesRecursive", default)]
    pub io_service_bytes_recursive: Option<Vec<BlkioEntry>>,
}

/// One blkio counter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BlkioEntry {
    /// Device major.
    #[serde(default)]
    pub major: u64,
    /// Device minor.
    #[serde(default)]
    pub minor: u64,
    /// `Read`, `Write`, `Total`, ... (runc writes them capitalised).
    #[serde(default)]
    pub op: String,
    /// The count.
    #[serde(default)]
    pub value: u64,
}

const UNLIMITED: u64 = 1 << 62;

impl StatsEvent {
    /// The record for `stats` of container `id` (what `engine-runc events --stats` prints).
    pub fn from_stats(id: &str, s: &Stats) -> Self {
        let mut raw = HashMap::new();
        if let Some(k) = s.oom_kills {
            raw.insert("oom_kill".to_string(), k);
        }
        let mut blk = Vec::new();
        if let Some(r) = s.io_read_bytes {
            blk.push(BlkioEntry { op: "Read".into(), value: r, ..Default::default() });
        }
        if let Some(w) = s.io_write_bytes {
            blk.push(BlkioEntry { op: "Write".into(), value: w, ..Default::default() });
        }
        StatsEvent {
            kind: "stats".into(),
            id: id.into(),
            data: StatsData {
                cpu: CpuStats {
                    usage: CpuUsage {
                        total: s.cpu_usage_ns.unwrap_or(0),
                        kernel: s.cpu_system_ns.unwrap_or(0),
                        user: s.cpu_user_ns.unwrap_or(0),
                    },
                },
                memory: MemoryStats {
                    usage: MemoryEntry {
                        limit: s.memory_limit.unwrap_or(u64::MAX),
                        usage: s.memory_usage.unwrap_or(0),
                        max: s.memory_max_usage.unwrap_or(0),
                        failcnt: 0,
                    },
                    raw,
                },
                pids: PidsStats { current: s.pids_current.unwrap_or(0), limit: s.pids_limit.unwrap_or(0) },
                blkio: BlkioStats { io_service_bytes_recursive: (!blk.is_empty()).then_some(blk) },
            },
        }
    }

    /// The engine's [`Stats`] from this record.
    pub fn to_stats(&self) -> Stats {
        let d = &self.data;
        let nz = |v: u64| (v != 0).then_some(v);
        let (mut r, mut w) = (None, None);
        for e in d.blkio.io_service_bytes_recursive.iter().flatten() {
            match e.op.to_ascii_lowercase().as_str() {
                "read" => *r.get_or_insert(0) += e.value,
                "write" => *w.get_or_insert(0) += e.value,
                _ => {}
            }
        }
        Stats::default()
            .cpu_usage_ns(Some(d.cpu.usage.total))
            .cpu_user_ns(Some(d.cpu.usage.user))
            .cpu_system_ns(Some(d.cpu.usage.kernel))
            .memory_usage(Some(d.memory.usage.usage))
            .memory_limit(
                (d.memory.usage.limit != 0 && d.memory.usage.limit < UNLIMITED).then_some(d.memory.usage.limit),
            )
            .memory_max_usage(nz(d.memory.usage.max))
            .oom_kills(d.memory.raw.get("oom_kill").copied())
            .pids_current(Some(d.pids.current))
            .pids_limit(nz(d.pids.limit))
            .io_read_bytes(r)
            .io_write_bytes(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_stats_record() {
        let line = r#"{"type":"stats","id":"c1","data":{"cpu":{"usage":{"percpu":[1,2],"total":3000,"kernel":1000,"user":2000},"throttling":{}},
            "memory":{"usage":{"limit":9223372036854771712,"usage":4096,"max":8192,"failcnt":0},"swap":{"limit":0,"failcnt":0},"raw":{"cache":0}},
            "pids":{"current":2},"blkio":{"ioServiceBytesRecursive":[{"major":8,"op":"Read","value":10},{"major":8,"op":"Write","value":4},{"op":"Total","value":14}]},
            "hugetlb":{"2MB":{"failcnt":0}}}}"#;
        let ev: StatsEvent = serde_json::from_str(line).unwrap();
        let s = ev.to_stats();
        assert_eq!(s.cpu_usage_ns, Some(3000));
        assert_eq!((s.cpu_user_ns, s.cpu_system_ns), (Some(2000), Some(1000)));
        assert_eq!((s.memory_usage, s.memory_limit, s.memory_max_usage), (Some(4096), None, Some(8192)));
        assert_eq!((s.pids_current, s.pids_limit), (Some(2), None));
        assert_eq!((s.io_read_bytes, s.io_write_bytes), (Some(10), Some(4)));
        assert_eq!(s.oom_kills, None);
        // What engine-runc emits reads back to the same figures.
        let mine = s
            .clone()
            .memory_limit(Some(1 << 20))
            .oom_kills(Some(2))
            .pids_limit(Some(5))
            .io_read_bytes(Some(1))
            .io_write_bytes(Some(0));
        let back = StatsEvent::from_stats("c1", &mine);
        let json = serde_json::to_string(&back).unwrap();
        assert!(json.starts_with(r#"{"type":"stats","id":"c1","data":"#), "{json}");
        let again: StatsEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(again.to_stats(), mine);
        assert_eq!(parse_stats_record(&json).unwrap(), mine);
        // The engine's flat Stats as data is understood too.
        let flat = serde_json::json!({"type": "stats", "id": "c1", "data": mine}).to_string();
        assert_eq!(parse_stats_record(&flat).unwrap(), mine);
        assert!(parse_stats_record("not json").is_err());
    }
}
