//! Applying `linux.resources` to a cgroup v2 directory.

use super::convert::{blkio_weight_to_io_weight, cpu_max, memory_swap_to_v2, shares_to_weight, v2_limit};
use super::fs::{read_opt, write};
use engine_core::{Error, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory};
use std::collections::HashMap;
use std::path::Path;

pub(crate) fn memory(dir: &Path, m: &LinuxMemory) -> Result<()> {
    let limit = m.limit().unwrap_or(0);
    let swap = m.swap().unwrap_or(0);
    let swap_v2 = memory_swap_to_v2(swap, limit)?;
    // memory.swap.max is missing without swap accounting; "unlimited" then needs nothing.
    if swap_v2 != 0 {
        if dir.join("memory.swap.max").exists() {
            write(dir, "memory.swap.max", v2_limit(swap_v2))?;
        } else if swap_v2 > 0 {
            return Err(Error::Unsupported(format!(
                "linux.resources.memory.swap: {} has no memory.swap.max (swap accounting is off)",
                dir.display()
            )));
        }
    }
    if limit != 0 {
        write(dir, "memory.max", v2_limit(limit))?;
    }
    if let Some(r) = m.reservation().filter(|v| *v != 0) {
        write(dir, "memory.low", v2_limit(r))?;
    }
    if m.swappiness().is_some() {
        tracing::warn!("linux.resources.memory.swappiness has no cgroup v2 equivalent; ignored");
    }
    if m.disable_oom_killer() == Some(true) {
        tracing::warn!("linux.resources.memory.disableOOMKiller has no cgroup v2 equivalent; ignored");
    }
    #[allow(deprecated)]
    if m.kernel().is_some_and(|v| v != 0) || m.kernel_tcp().is_some_and(|v| v != 0) {
        tracing::warn!("linux.resources.memory.kernel/kernelTCP have no cgroup v2 equivalent; ignored");
    }
    Ok(())
}

pub(crate) fn cpu(dir: &Path, c: &LinuxCpu) -> Result<()> {
    if let Some(s) = c.shares().filter(|v| *v != 0) {
        write(dir, "cpu.weight", shares_to_weight(s))?;
    }
    if let Some(v) = cpu_max(c.quota(), c.period()) {
        write(dir, "cpu.max", v)?;
    }
    if let Some(b) = c.burst() {
        write(dir, "cpu.max.burst", b)?;
    }
    if let Some(i) = c.idle() {
        write(dir, "cpu.idle", i)?;
    }
    if c.realtime_period().is_some_and(|v| v != 0) || c.realtime_runtime().is_some_and(|v| v != 0) {
        return Err(Error::Unsupported(
            "linux.resources.cpu.realtimePeriod/realtimeRuntime: cgroup v2 has no real-time CPU controller".into(),
        ));
    }
    if let Some(s) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        write(dir, "cpuset.cpus", s)?;
    }
    if let Some(s) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        write(dir, "cpuset.mems", s)?;
    }
    Ok(())
}

pub(crate) fn pids(dir: &Path, limit: i64) -> Result<()> {
    if limit == 0 {
        return Ok(());
    }
    write(dir, "pids.max", v2_limit(limit))
}

pub(crate) fn io(dir: &Path, b: &LinuxBlockIo) -> Result<()> {
    // With BFQ, io.bfq.weight takes the v1 range (1-1000) as is.
    let bfq = dir.join("io.bfq.weight").exists();
    if let Some(w) = b.weight().filter(|v| *v != 0) {
        if bfq {
            write(dir, "io.bfq.weight", format!("default {w}"))?;
        } else {
            write(dir, "io.weight", format!("default {}", blkio_weight_to_io_weight(w as u64)))?;
        }
    }
    if b.leaf_weight().is_some_and(|v| v != 0) {
        tracing::warn!("linux.resources.blockIO.leafWeight has no cgroup v2 equivalent; ignored");
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            if bfq {
                write(dir, "io.bfq.weight", format!("{}:{} {w}", d.major(), d.minor()))?;
            } else {
                write(
                    dir,
                    "io.weight",
                    format!("{}:{} {}", d.major(), d.minor(), blkio_weight_to_io_weight(w as u64)),
                )?;
            }
        }
    }
    for (list, key) in [
        (b.throttle_read_bps_device(), "rbps"),
        (b.throttle_write_bps_device(), "wbps"),
        (b.throttle_read_iops_device(), "riops"),
        (b.throttle_write_iops_device(), "wiops"),
    ] {
        for d in list.iter().flatten() {
            let rate = if d.rate() == 0 { "max".to_string() } else { d.rate().to_string() };
            write(dir, "io.max", format!("{}:{} {key}={rate}", d.major(), d.minor()))?;
        }
    }
    Ok(())
}

/// `linux.resources.unified`: v2 interface files written as given.
pub(crate) fn unified(dir: &Path, map: &HashMap<String, String>) -> Result<()> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for k in keys {
        if k.contains('/') || k.starts_with('.') || !k.contains('.') || k.starts_with("cgroup.") {
            return Err(Error::invalid(
                "linux.resources.unified",
                format!("{k:?} is not a controller interface file name (like \"memory.high\")"),
            ));
        }
        write(dir, k, &map[k])?;
    }
    Ok(())
}

/// The controllers `dir`'s children may enable (its `cgroup.controllers`).
pub(crate) fn available(dir: &Path) -> Result<Vec<String>> {
    Ok(read_opt(dir, "cgroup.controllers")?.unwrap_or_default().split_whitespace().map(String::from).collect())
}

/// Enable `controllers` for every cgroup from `root` (the hierarchy's mount)
/// down to `leaf`'s parent, so that `leaf` gets their interface files.
/// Failures are logged, not returned: a missing file is reported precisely when
/// a limit is written to it.
pub(crate) fn enable(root: &Path, leaf: &Path, controllers: &[String]) {
    let Ok(rel) = leaf.strip_prefix(root) else { return };
    let mut dir = root.to_path_buf();
    for comp in rel.components() {
        let avail = available(&dir).unwrap_or_default();
        let enabled = read_opt(&dir, "cgroup.subtree_control").ok().flatten().unwrap_or_default();
        for c in controllers {
            if avail.iter().any(|a| a == c) && !enabled.split_whitespace().any(|e| e == c) {
                if let Err(e) = write(&dir, "cgroup.subtree_control", format!("+{c}")) {
                    tracing::debug!(dir = %dir.display(), controller = %c, error = %e, "cannot enable controller");
                }
            }
        }
        dir.push(comp);
    }
}
