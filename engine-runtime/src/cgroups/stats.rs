//! Resource usage read from cgroup files, v1 and v2.

use super::fs::{keyed, parse_limit, read_opt, read_u64};
use engine_core::{Result, Stats};
use std::path::Path;

/// Sum the `Read` and `Write` lines of a v1 `blkio.*io_service_bytes*` file.
pub(crate) fn parse_blkio_service_bytes(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0u64, 0u64);
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() == 3 {
            let v: u64 = f[2].parse().unwrap_or(0);
            match f[1] {
                "Read" => r += v,
                "Write" => w += v,
                _ => {}
            }
        }
    }
    (r, w)
}

/// Sum `rbytes=` and `wbytes=` of a v2 `io.stat`.
pub(crate) fn parse_io_stat(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0u64, 0u64);
    for line in text.lines() {
        for kv in line.split_whitespace().skip(1) {
            if let Some(v) = kv.strip_prefix("rbytes=") {
                r += v.parse::<u64>().unwrap_or(0);
            } else if let Some(v) = kv.strip_prefix("wbytes=") {
                w += v.parse::<u64>().unwrap_or(0);
            }
        }
    }
    (r, w)
}

fn clock_ticks() -> u64 {
    use nix::unistd::{sysconf, SysconfVar};
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as u64,
        _ => 100,
    }
}

/// Memory figures from a v1 memory cgroup.
pub(crate) fn v1_memory(dir: &Path, s: &mut Stats) -> Result<()> {
    s.memory_usage = read_u64(dir, "memory.usage_in_bytes")?;
    s.memory_limit = read_opt(dir, "memory.limit_in_bytes")?.and_then(|v| parse_limit(&v));
    s.memory_max_usage = read_u64(dir, "memory.max_usage_in_bytes")?;
    s.oom_kills = read_opt(dir, "memory.oom_control")?.map(|t| keyed(&t, "oom_kill").unwrap_or(0));
    Ok(())
}

/// CPU figures from a v1 cpuacct cgroup.
pub(crate) fn v1_cpuacct(dir: &Path, s: &mut Stats) -> Result<()> {
    s.cpu_usage_ns = read_u64(dir, "cpuacct.usage")?;
    let user = read_u64(dir, "cpuacct.usage_user")?;
    let sys = read_u64(dir, "cpuacct.usage_sys")?;
    if user.is_some() || sys.is_some() {
        s.cpu_user_ns = user;
        s.cpu_system_ns = sys;
    } else if let Some(t) = read_opt(dir, "cpuacct.stat")? {
        let ns_per_tick = 1_000_000_000 / clock_ticks();
        s.cpu_user_ns = keyed(&t, "user").map(|v| v * ns_per_tick);
        s.cpu_system_ns = keyed(&t, "system").map(|v| v * ns_per_tick);
    }
    Ok(())
}

/// Pids figures (same files in v1 and v2).
pub(crate) fn pids(dir: &Path, s: &mut Stats) -> Result<()> {
    s.pids_current = read_u64(dir, "pids.current")?;
    s.pids_limit = read_opt(dir, "pids.max")?.and_then(|v| parse_limit(&v));
    Ok(())
}

/// Block I/O figures from a v1 blkio cgroup.
pub(crate) fn v1_blkio(dir: &Path, s: &mut Stats) -> Result<()> {
    for f in [
        "blkio.throttle.io_service_bytes_recursive",
        "blkio.throttle.io_service_bytes",
        "blkio.io_service_bytes_recursive",
        "blkio.bfq.io_service_bytes_recursive",
    ] {
        if let Some(t) = read_opt(dir, f)? {
            let (r, w) = parse_blkio_service_bytes(&t);
            s.io_read_bytes = Some(r);
            s.io_write_bytes = Some(w);
            return Ok(());
        }
    }
    Ok(())
}

/// Memory figures from a v2 cgroup.
pub(crate) fn v2_memory(dir: &Path, s: &mut Stats) -> Result<()> {
    s.memory_usage = read_u64(dir, "memory.current")?;
    s.memory_limit = read_opt(dir, "memory.max")?.and_then(|v| parse_limit(&v));
    s.memory_max_usage = read_u64(dir, "memory.peak")?;
    s.oom_kills = read_opt(dir, "memory.events")?.map(|t| keyed(&t, "oom_kill").unwrap_or(0));
    Ok(())
}

/// CPU figures from a v2 `cpu.stat` (present even without the cpu controller).
pub(crate) fn v2_cpu(dir: &Path, s: &mut Stats) -> Result<()> {
    if let Some(t) = read_opt(dir, "cpu.stat")? {
        s.cpu_usage_ns = keyed(&t, "usage_usec").map(|v| v * 1000);
        s.cpu_user_ns = keyed(&t, "user_usec").map(|v| v * 1000);
        s.cpu_system_ns = keyed(&t, "system_usec").map(|v| v * 1000);
    }
    Ok(())
}

/// Block I/O figures from a v2 `io.stat`.
pub(crate) fn v2_io(dir: &Path, s: &mut Stats) -> Result<()> {
    if let Some(t) = read_opt(dir, "io.stat")? {
        let (r, w) = parse_io_stat(&t);
        s.io_read_bytes = Some(r);
        s.io_write_bytes = Some(w);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(dir: &Path, f: &str, v: &str) {
        std::fs::write(dir.join(f), v).unwrap();
    }

    #[test]
    fn blkio_and_io_stat() {
        let t = "8:0 Read 4096\n8:0 Write 512\n8:0 Sync 1\n8:16 Read 4\nTotal 4613\n";
        assert_eq!(parse_blkio_service_bytes(t), (4100, 512));
        let t = "8:0 rbytes=100 wbytes=20 rios=1 wios=1\n253:0 rbytes=5 wbytes=0 rios=1 wios=0\n";
        assert_eq!(parse_io_stat(t), (105, 20));
    }

    #[test]
    fn v1_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        put(p, "memory.usage_in_bytes", "1000\n");
        put(p, "memory.limit_in_bytes", "9223372036854771712\n");
        put(p, "memory.max_usage_in_bytes", "2000\n");
        put(p, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
        put(p, "cpuacct.usage", "5000\n");
        put(p, "cpuacct.stat", "user 2\nsystem 1\n");
        put(p, "pids.current", "4\n");
        put(p, "pids.max", "max\n");
        let mut s = Stats::default();
        v1_memory(p, &mut s).unwrap();
        v1_cpuacct(p, &mut s).unwrap();
        pids(p, &mut s).unwrap();
        v1_blkio(p, &mut s).unwrap();
        assert_eq!(s.memory_usage, Some(1000));
        assert_eq!(s.memory_limit, None);
        assert_eq!(s.memory_max_usage, Some(2000));
        assert_eq!(s.oom_kills, Some(3));
        assert_eq!(s.cpu_usage_ns, Some(5000));
        assert_eq!(s.cpu_user_ns, Some(2 * 1_000_000_000 / clock_ticks()));
        assert_eq!(s.pids_current, Some(4));
        assert_eq!(s.pids_limit, None);
        assert_eq!(s.io_read_bytes, None);
    }

    #[test]
    fn v2_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        put(p, "memory.current", "4096\n");
        put(p, "memory.max", "8192\n");
        put(p, "memory.events", "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n");
        put(p, "cpu.stat", "usage_usec 10\nuser_usec 7\nsystem_usec 3\n");
        put(p, "pids.max", "20\n");
        put(p, "io.stat", "8:0 rbytes=1 wbytes=2 rios=1 wios=1\n");
        let mut s = Stats::default();
        v2_memory(p, &mut s).unwrap();
        v2_cpu(p, &mut s).unwrap();
        pids(p, &mut s).unwrap();
        v2_io(p, &mut s).unwrap();
        assert_eq!(s.memory_usage, Some(4096));
        assert_eq!(s.memory_limit, Some(8192));
        assert_eq!(s.memory_max_usage, None);
        assert_eq!(s.oom_kills, Some(1));
        assert_eq!((s.cpu_usage_ns, s.cpu_user_ns, s.cpu_system_ns), (Some(10_000), Some(7_000), Some(3_000)));
        assert_eq!(s.pids_limit, Some(20));
        assert_eq!((s.io_read_bytes, s.io_write_bytes), (Some(1), Some(2)));
    }
}
