//! Applying `linux.resources` to cgroup v1 controllers.

use super::fs::{read, read_opt, write, Writer};
use super::{devices, Cgroup};
use engine_core::{Error, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxNetwork, LinuxResources};
use std::path::Path;

/// The directory of a v1 controller, or an error saying what needed it.
fn need<'a>(cg: &'a Cgroup, controller: &str, for_what: &str) -> Result<&'a Path> {
    cg.v1_dir(controller).ok_or_else(|| {
        Error::Unsupported(format!(
            "linux.resources.{for_what} needs the cgroup v1 {controller} controller, which is not mounted on this host"
        ))
    })
}

/// True when any memory setting is present.
fn memory_set(m: &LinuxMemory) -> bool {
    #[allow(deprecated)]
    let kernel = m.kernel();
    m.limit().is_some_and(|v| v != 0)
        || m.reservation().is_some_and(|v| v != 0)
        || m.swap().is_some_and(|v| v != 0)
        || m.swappiness().is_some()
        || m.disable_oom_killer() == Some(true)
        || kernel.is_some_and(|v| v != 0)
        || m.kernel_tcp().is_some_and(|v| v != 0)
}

pub(crate) fn memory(cg: &Cgroup, m: &LinuxMemory) -> Result<()> {
    if !memory_set(m) {
        return Ok(());
    }
    let dir = need(cg, "memory", "memory")?;
    let limit = m.limit().filter(|v| *v != 0);
    let swap = m.swap().filter(|v| *v != 0);
    match (limit, swap) {
        (Some(limit), Some(swap)) => {
            // memsw must stay >= limit at every step: raise memsw first when it grows.
            let current: i64 = read(dir, "memory.memsw.limit_in_bytes")
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .map(|v| v.min(i64::MAX as u64) as i64)
                .unwrap_or(-1);
            if swap == -1 || current < swap || current == i64::MAX {
                write(dir, "memory.memsw.limit_in_bytes", swap)?;
                write(dir, "memory.limit_in_bytes", limit)?;
            } else {
                write(dir, "memory.limit_in_bytes", limit)?;
                write(dir, "memory.memsw.limit_in_bytes", swap)?;
            }
        }
        (Some(limit), None) => write(dir, "memory.limit_in_bytes", limit)?,
        (None, Some(swap)) => write(dir, "memory.memsw.limit_in_bytes", swap)?,
        (None, None) => {}
    }
    if let Some(r) = m.reservation().filter(|v| *v != 0) {
        write(dir, "memory.soft_limit_in_bytes", r)?;
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(Error::invalid("linux.resources.memory.swappiness", format!("{s} is above 100")));
        }
        write(dir, "memory.swappiness", s)?;
    }
    if m.disable_oom_killer() == Some(true) {
        write(dir, "memory.oom_control", 1)?;
    }
    #[allow(deprecated)]
    if m.kernel().is_some_and(|v| v != 0) {
        // Kernel memory limits were removed from the kernel (5.4 deprecated, 6.x gone); runc ignores them too.
        tracing::warn!("linux.resources.memory.kernel is obsolete and ignored");
    }
    if let Some(t) = m.kernel_tcp().filter(|v| *v != 0) {
        write(dir, "memory.kmem.tcp.limit_in_bytes", t)?;
    }
    Ok(())
}

pub(crate) fn cpu(cg: &Cgroup, c: &LinuxCpu) -> Result<()> {
    let cpu_set = c.shares().is_some_and(|v| v != 0)
        || c.quota().is_some_and(|v| v != 0)
        || c.period().is_some_and(|v| v != 0)
        || c.burst().is_some()
        || c.idle().is_some()
        || c.realtime_period().is_some_and(|v| v != 0)
        || c.realtime_runtime().is_some_and(|v| v != 0);
    if cpu_set {
        let dir = need(cg, "cpu", "cpu")?;
        if let Some(s) = c.shares().filter(|v| *v != 0) {
            write(dir, "cpu.shares", s)?;
        }
        let period = c.period().filter(|v| *v != 0);
        let quota = c.quota().filter(|v| *v != 0);
        if let Some(p) = period {
            // A smaller period can be refused while the old quota exceeds it; set the quota first then.
            if let Err(e) = write(dir, "cpu.cfs_period_us", p) {
                match quota {
                    Some(q) => {
                        write(dir, "cpu.cfs_quota_us", q)?;
                        write(dir, "cpu.cfs_period_us", p)?;
                    }
                    None => return Err(e),
                }
            } else if let Some(q) = quota {
                write(dir, "cpu.cfs_quota_us", q)?;
            }
        } else if let Some(q) = quota {
            write(dir, "cpu.cfs_quota_us", q)?;
        }
        if let Some(b) = c.burst() {
            write(dir, "cpu.cfs_burst_us", b)?;
        }
        if let Some(i) = c.idle() {
            write(dir, "cpu.idle", i)?;
        }
        if let Some(p) = c.realtime_period().filter(|v| *v != 0) {
            write(dir, "cpu.rt_period_us", p)?;
        }
        if let Some(r) = c.realtime_runtime().filter(|v| *v != 0) {
            write(dir, "cpu.rt_runtime_us", r)?;
        }
    }
    let cpus = c.cpus().as_deref().filter(|s| !s.is_empty());
    let mems = c.mems().as_deref().filter(|s| !s.is_empty());
    if cpus.is_some() || mems.is_some() {
        let dir = need(cg, "cpuset", "cpu.cpus/mems")?;
        if let Some(s) = cpus {
            write(dir, "cpuset.cpus", s)?;
        }
        if let Some(s) = mems {
            write(dir, "cpuset.mems", s)?;
        }
    }
    Ok(())
}

pub(crate) fn pids(cg: &Cgroup, limit: i64) -> Result<()> {
    if limit == 0 {
        return Ok(());
    }
    let dir = need(cg, "pids", "pids")?;
    write(dir, "pids.max", if limit > 0 { limit.to_string() } else { "max".into() })
}

pub(crate) fn blkio(cg: &Cgroup, b: &LinuxBlockIo) -> Result<()> {
    let any = b.weight().is_some_and(|v| v != 0)
        || b.leaf_weight().is_some_and(|v| v != 0)
        || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
        || b.throttle_read_bps_device().as_ref().is_some_and(|v| !v.is_empty())
        || b.throttle_write_bps_device().as_ref().is_some_and(|v| !v.is_empty())
        || b.throttle_read_iops_device().as_ref().is_some_and(|v| !v.is_empty())
        || b.throttle_write_iops_device().as_ref().is_some_and(|v| !v.is_empty());
    if !any {
        return Ok(());
    }
    let dir = need(cg, "blkio", "blockIO")?;
    // CFQ is gone from current kernels; BFQ offers the same knobs under blkio.bfq.*.
    let weight_file = |f: &str| -> String {
        if dir.join(format!("blkio.{f}")).exists() {
            format!("blkio.{f}")
        } else {
            format!("blkio.bfq.{f}")
        }
    };
    if let Some(w) = b.weight().filter(|v| *v != 0) {
        write(dir, &weight_file("weight"), w)?;
    }
    if let Some(w) = b.leaf_weight().filter(|v| *v != 0) {
        write(dir, "blkio.leaf_weight", w)?;
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            write(dir, &weight_file("weight_device"), format!("{}:{} {w}", d.major(), d.minor()))?;
        }
        if let Some(w) = d.leaf_weight() {
            write(dir, "blkio.leaf_weight_device", format!("{}:{} {w}", d.major(), d.minor()))?;
        }
    }
    for (list, file) in [
        (b.throttle_read_bps_device(), "blkio.throttle.read_bps_device"),
        (b.throttle_write_bps_device(), "blkio.throttle.write_bps_device"),
        (b.throttle_read_iops_device(), "blkio.throttle.read_iops_device"),
        (b.throttle_write_iops_device(), "blkio.throttle.write_iops_device"),
    ] {
        for d in list.iter().flatten() {
            write(dir, file, format!("{}:{} {}", d.major(), d.minor(), d.rate()))?;
        }
    }
    Ok(())
}

pub(crate) fn network(cg: &Cgroup, n: &LinuxNetwork) -> Result<()> {
    if let Some(id) = n.class_id() {
        write(need(cg, "net_cls", "network.classID")?, "net_cls.classid", id)?;
    }
    for p in n.priorities().iter().flatten() {
        write(
            need(cg, "net_prio", "network.priorities")?,
            "net_prio.ifpriomap",
            format!("{} {}", p.name(), p.priority()),
        )?;
    }
    Ok(())
}

pub(crate) fn devices(cg: &Cgroup, r: &LinuxResources) -> Result<()> {
    let Some(rules) = r.devices().as_ref().filter(|v| !v.is_empty()) else { return Ok(()) };
    let dir = need(cg, "devices", "devices")?;
    // One descriptor per file, each rule its own write, in the config's order.
    let (mut allow, mut deny) = (Writer::new(dir, "devices.allow"), Writer::new(dir, "devices.deny"));
    for rule in rules {
        let file = if rule.allow() { &mut allow } else { &mut deny };
        file.write(devices::v1_rule(rule)?)?;
    }
    Ok(())
}

/// Initialise `dir` and every empty cpuset above it (up to the first one
/// with both cpus and mems), top down, each from its parent: the kernel
/// leaves a new v1 cpuset's `cpuset.cpus` and `cpuset.mems` empty, and an
/// empty cpuset takes no task. `fresh`: `dir` was made just now, so it is
/// known to be empty and is not read.
pub(crate) fn cpuset_init_chain(dir: &Path, fresh: bool) -> Result<()> {
    const FILES: [&str; 2] = ["cpuset.cpus", "cpuset.mems"];
    // Walking up: each cgroup with an empty file, and which of its files are
    // empty, until one has both (whose values are then the source).
    let mut chain: Vec<(&Path, [bool; 2])> = Vec::new();
    let mut source: Option<[String; 2]> = None;
    let mut d = Some(dir);
    while let Some(cur) = d {
        let values = if fresh && cur == dir {
            [Some(String::new()), Some(String::new())]
        } else {
            [read_opt(cur, FILES[0])?, read_opt(cur, FILES[1])?]
        };
        let empty = [values[0].as_deref() == Some(""), values[1].as_deref() == Some("")];
        if !empty[0] && !empty[1] {
            if let [Some(c), Some(m)] = values {
                source = Some([c, m]);
            }
            break;
        }
        chain.push((cur, empty));
        d = cur.parent();
    }
    let Some(mut values) = source else {
        // No initialised cpuset above (the root is always initialised, so
        // the files are missing): as before, copy parent by parent.
        for (d, _) in chain.into_iter().rev() {
            cpuset_init(d)?;
        }
        return Ok(());
    };
    for (d, empty) in chain.into_iter().rev() {
        for (i, f) in FILES.iter().enumerate() {
            if empty[i] {
                write(d, f, &values[i])?;
            } else if let Some(v) = read_opt(d, f)? {
                // Set by someone else: what its children inherit.
                values[i] = v;
            }
        }
    }
    Ok(())
}

/// Initialise a new v1 cpuset cgroup from its parent: the kernel leaves
/// `cpuset.cpus` and `cpuset.mems` empty, and an empty cpuset takes no task.
pub(crate) fn cpuset_init(dir: &Path) -> Result<()> {
    let Some(parent) = dir.parent() else { return Ok(()) };
    for f in ["cpuset.cpus", "cpuset.mems"] {
        if read_opt(dir, f)?.is_some_and(|v| v.is_empty()) {
            let v = read(parent, f)?;
            write(dir, f, v)?;
        }
    }
    Ok(())
}
