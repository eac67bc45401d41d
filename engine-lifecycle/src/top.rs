//! The host pids of a container's processes: from its cgroup, else by pid
//! namespace.

use engine_core::{Error, Pid, Result};
use std::path::{Path, PathBuf};

fn read_procs(file: &Path) -> Option<Vec<Pid>> {
    let s = std::fs::read_to_string(file).ok()?;
    Some(s.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// The cgroup of `pid` (its v2 path, or the `pids`/`memory` v1 path), as a directory.
fn cgroup_dirs(pid: Pid) -> Vec<PathBuf> {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else { return Vec::new() };
    let mut dirs = Vec::new();
    for line in s.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => continue,
        };
        let rel = path.trim_start_matches('/');
        if ctrls.is_empty() {
            let base = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
                "/sys/fs/cgroup"
            } else {
                "/sys/fs/cgroup/unified"
            };
            dirs.push(Path::new(base).join(rel));
        } else if ctrls.split(',').any(|c| c == "pids" || c == "memory") {
            dirs.push(Path::new("/sys/fs/cgroup").join(ctrls).join(rel));
        }
    }
    dirs
}

/// Pids of the container whose init is `init`.
pub(crate) fn pids(id: &str, init: Pid) -> Result<Vec<Pid>> {
    if !Path::new(&format!("/proc/{init}")).exists() {
        return Err(Error::conflict("container", id, format!("init pid {init} is gone")));
    }
    for dir in cgroup_dirs(init) {
        // Only a cgroup of the container's own (its path names the id).
        if !dir.to_string_lossy().contains(id) {
            continue;
        }
        if let Some(mut p) = read_procs(&dir.join("cgroup.procs")) {
            if !p.is_empty() {
                p.sort_unstable();
                return Ok(p);
            }
        }
    }
    // Fallback: every process in the init's pid namespace.
    let ns = std::fs::read_link(format!("/proc/{init}/ns/pid"))
        .map_err(|e| Error::io(format!("reading pid namespace of {init}"), e))?;
    let mut out = Vec::new();
    for d in std::fs::read_dir("/proc").map_err(|e| Error::io("listing /proc", e))?.flatten() {
        let Some(pid) = d.file_name().to_str().and_then(|s| s.parse::<Pid>().ok()) else { continue };
        if std::fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|l| l == ns) {
            out.push(pid);
        }
    }
    out.sort_unstable();
    Ok(out)
}
