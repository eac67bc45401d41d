//! Counting what an engine leaves on the machine (shared with the facade's
//! soak test, which includes this file by path).

use std::path::Path;

/// What an engine leaves on the machine, counted so that a test can compare
/// before and after: mounts under its root, cgroup directories under its
/// cgroup parent (every hierarchy), state entries, processes holding files
/// under its root (shims: container logs), and the open descriptors of the
/// given engine processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftovers {
    pub mounts: usize,
    pub cgroups: usize,
    pub container_dirs: usize,
    pub shim_dirs: usize,
    pub holders: Vec<i32>,
    pub fds: Vec<usize>,
}

impl Leftovers {
    pub fn count(root: &Path, cgroup_parent: &str, engine_pids: &[i32]) -> Leftovers {
        let root_s = root.to_string_lossy().into_owned();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&root_s)))
            .count();
        let mut cgroups = 0;
        for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let dir = h.path().join(cgroup_parent.trim_start_matches('/'));
            cgroups += count_dirs(&dir);
        }
        let entries = |d: &str| std::fs::read_dir(root.join(d)).map(|r| r.count()).unwrap_or(0);
        let mut holders = Vec::new();
        for p in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else { continue };
            if engine_pids.contains(&pid) || pid == std::process::id() as i32 {
                continue;
            }
            let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else { continue };
            if fds.flatten().any(|f| std::fs::read_link(f.path()).is_ok_and(|t| t.starts_with(root))) {
                holders.push(pid);
            }
        }
        let fds = engine_pids
            .iter()
            .map(|p| std::fs::read_dir(format!("/proc/{p}/fd")).map(|d| d.count()).unwrap_or(0))
            .collect();
        Leftovers { mounts, cgroups, container_dirs: entries("containers"), shim_dirs: entries("shims"), holders, fds }
    }
}

impl Leftovers {
    /// Nothing more than `before` is left: the same mounts, cgroups, state
    /// entries, no holder that was not there before, and no more open descriptors than before plus a
    /// few (the launcher's shim fork server holds a socket, and it may or may not
    /// exist at the moment of a count; a leak over many runs grows far beyond).
    pub fn back_to(&self, before: &Leftovers) -> bool {
        self.mounts == before.mounts
            && self.cgroups == before.cgroups
            && self.container_dirs == before.container_dirs
            && self.shim_dirs == before.shim_dirs
            // No new holder: one counted before may still be exiting then
            // (a removed container's shim exits by itself after its delete).
            && self.holders.iter().all(|p| before.holders.contains(p))
            && self.fds.len() == before.fds.len()
            && self.fds.iter().zip(&before.fds).all(|(now, was)| *now <= was + 4)
    }
}

/// Directories below `dir` (not counting it).
fn count_dirs(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| 1 + count_dirs(&e.path())).sum()
}

/// Resident memory of `pid` in KiB.
pub fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()))
        .unwrap_or(0)
}

/// Remove the (empty) cgroup `parent` from every hierarchy: what a test made
/// for its engine, gone with it.
pub fn remove_cgroup_parent(parent: &str) {
    for h in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        let dir = h.path().join(parent.trim_start_matches('/'));
        remove_tree(&dir);
    }
}

fn remove_tree(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
}
