//! Control groups for containers, on cgroup v1, v2 and hybrid hosts.
//!
//! The layout is detected at run time ([`Layout::detect`]): the file system
//! type of `/sys/fs/cgroup` tells a pure v2 host (cgroup2) from a v1 or hybrid
//! one (a tmpfs with one mount per v1 controller, plus a cgroup2 `unified`
//! mount on hybrid hosts). [`Hierarchies`] reads the mounts and this process's
//! own cgroups; [`Cgroup::create`] makes the container's cgroup in every
//! hierarchy and applies `linux.resources`:
//!
//! | resource | v1 file | v2 file |
//! |---|---|---|
//! | memory limit / reservation / swap | `memory.limit_in_bytes`, `memory.soft_limit_in_bytes`, `memory.memsw.limit_in_bytes` | `memory.max`, `memory.low`, `memory.swap.max` (= swap − limit) |
//! | swappiness, disableOOMKiller | `memory.swappiness`, `memory.oom_control` | none (warned and ignored) |
//! | cpu shares, quota/period, burst, idle | `cpu.shares`, `cpu.cfs_quota_us`/`cpu.cfs_period_us`, `cpu.cfs_burst_us`, `cpu.idle` | `cpu.weight` (runc's formula), `cpu.max`, `cpu.max.burst`, `cpu.idle` |
//! | realtime runtime/period | `cpu.rt_runtime_us`, `cpu.rt_period_us` | refused (no v2 controller) |
//! | cpus, mems | `cpuset.cpus`, `cpuset.mems` | same |
//! | pids | `pids.max` | same |
//! | blockIO weight, throttles | `blkio.weight` (or `blkio.bfq.weight`), `blkio.throttle.*` | `io.weight` (or `io.bfq.weight`), `io.max` |
//! | hugepageLimits | `hugetlb.<size>.limit_in_bytes` | `hugetlb.<size>.max` |
//! | devices | `devices.allow` / `devices.deny` | an eBPF device program ([`attach_device_filter`]) |
//! | network classID / priorities | `net_cls.classid`, `net_prio.ifpriomap` | none |
//! | unified | refused | written as given |
//!
//! On a hybrid host, each resource goes to its v1 controller when that
//! controller is mounted as v1, and otherwise to the unified hierarchy (this
//! is how `hugetlb`, available only in v2 on such hosts, is limited). The
//! process joins every hierarchy, unified included.
//!
//! A resource that is asked for but cannot be applied (controller missing,
//! value refused by the kernel) fails [`Cgroup::create`] with an error naming
//! the file and the value, and the cgroup directories made so far are removed.
//!
//! ```no_run
//! use engine_runtime::cgroups::Cgroup;
//! let resources: oci_spec::runtime::LinuxResources =
//!     serde_json::from_str(r#"{"memory":{"limit":67108864},"pids":{"limit":64}}"#).unwrap();
//! let cg = Cgroup::create(None, "demo", Some(&resources))?; // /engine/demo in every hierarchy
//! cg.add_pid(std::process::id() as i32)?;
//! println!("{:?}", cg.stats()?);
//! # Ok::<(), engine_core::Error>(())
//! ```

mod convert;
mod devices;
mod fs;
mod hierarchy;
mod stats;
mod v1;
mod v2;

pub use convert::{blkio_weight_to_io_weight, cpu_max, memory_swap_to_v2, shares_to_weight};
pub use devices::attach_device_filter;
pub use hierarchy::Hierarchies;

use engine_core::{Error, Result, Stats};
pub(crate) use hierarchy::conventional_mount;
use hierarchy::CgroupPath;
use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
const TMPFS_MAGIC: i64 = 0x0102_1994;
const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;

/// How long freezing, thawing and removing wait for the kernel.
const WAIT: Duration = Duration::from_secs(5);

/// The cgroup layout of a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Only v1 hierarchies, one per controller (or co-mounted group).
    V1,
    /// One cgroup2 hierarchy at `/sys/fs/cgroup`.
    V2,
    /// v1 controllers plus a cgroup2 mount at `/sys/fs/cgroup/unified`.
    Hybrid,
}

fn statfs_type(path: &str) -> Result<i64> {
    let st = nix::sys::statfs::statfs(path).map_err(|e| Error::io(format!("statfs {path}"), e.into()))?;
    Ok(st.filesystem_type().0 as i64)
}

impl Layout {
    /// Detect the layout from the file system type of `/sys/fs/cgroup`
    /// (and of `/sys/fs/cgroup/unified` when that is a tmpfs).
    pub fn detect() -> Result<Layout> {
        match statfs_type("/sys/fs/cgroup")? {
            CGROUP2_SUPER_MAGIC => Ok(Layout::V2),
            TMPFS_MAGIC => match statfs_type("/sys/fs/cgroup/unified") {
                Ok(CGROUP2_SUPER_MAGIC) => Ok(Layout::Hybrid),
                _ => Ok(Layout::V1),
            },
            CGROUP_SUPER_MAGIC => Ok(Layout::V1),
            other => Err(Error::Unsupported(format!(
                "/sys/fs/cgroup is neither cgroup2 nor a tmpfs of v1 hierarchies (file system magic {other:#x})"
            ))),
        }
    }
}

/// A container's cgroup: one directory per hierarchy. Serializable, so the
/// runtime can keep it in its state file and find it again for `pause`,
/// `kill --all`, `events --stats` and `delete`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    layout: Layout,
    /// The cgroup path as resolved (`/engine/<id>`, or relative to the creator's cgroup).
    path: String,
    /// v1 controller → its directory.
    #[serde(default)]
    v1: BTreeMap<String, PathBuf>,
    /// The directory in the cgroup2 hierarchy.
    #[serde(default)]
    unified: Option<PathBuf>,
    /// The cgroup2 mount point.
    #[serde(default)]
    unified_root: Option<PathBuf>,
}

/// What a new process needs to join a [`Cgroup`] without the parent moving
/// it: moving another process in takes the kernel's global
/// threadgroup lock for writing, which waits for an RCU grace period (5-15 ms
/// here, per container), while a single-threaded process moving itself by
/// writing `0` to a v1 `tasks` file, or created straight in its cgroup2
/// directory with `clone3(CLONE_INTO_CGROUP)`, does not.
#[derive(Debug, Default)]
pub struct SelfJoin {
    /// The `tasks` file of each v1 hierarchy, open for writing: the new
    /// process writes `0` to each.
    pub tasks: Vec<(PathBuf, std::os::fd::OwnedFd)>,
    /// The cgroup2 directory, for `CLONE_INTO_CGROUP`.
    pub unified: Option<std::os::fd::OwnedFd>,
}

impl SelfJoin {
    /// In the new process: join every v1 hierarchy by writing `0` to its
    /// `tasks` file. Only right for a single-threaded process.
    pub fn join_v1(&self) -> Result<()> {
        use std::os::fd::AsRawFd;
        for (path, fd) in &self.tasks {
            // SAFETY: write(2) of one byte from a static buffer to an open fd.
            let n = unsafe { libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1) };
            if n < 0 {
                return Err(fs::write_error(path, "0", std::io::Error::last_os_error()));
            }
        }
        Ok(())
    }
}

impl Hierarchies {
    /// Resolve a container's cgroup directories without creating anything.
    pub fn resolve(&self, cgroups_path: Option<&str>, id: &str) -> Result<Cgroup> {
        let path = CgroupPath::parse(cgroups_path, id)?;
        let v1 = self.v1.iter().map(|(c, m)| (c.clone(), self.dir(m, c, &path))).collect();
        let unified = self.unified.as_ref().map(|m| self.dir(m, "", &path));
        Ok(Cgroup {
            layout: self.layout,
            path: path.as_str().to_string(),
            v1,
            unified,
            unified_root: self.unified.as_ref().map(|m| m.mountpoint.clone()),
        })
    }

    /// [`Cgroup::create`] on these hierarchies.
    pub fn create(&self, cgroups_path: Option<&str>, id: &str, resources: Option<&LinuxResources>) -> Result<Cgroup> {
        self.create_recorded(cgroups_path, id, resources, |_| Ok(()))
    }

    /// [`Hierarchies::create`], calling `record` with the resolved cgroup
    /// after the in-use check and before any directory is made (the runtime
    /// writes it to the container's state dir, so that `delete --force` finds a
    /// cgroup left by a `create` that was killed before it saved its state).
    pub(crate) fn create_recorded(
        &self,
        cgroups_path: Option<&str>,
        id: &str,
        resources: Option<&LinuxResources>,
        record: impl FnOnce(&Cgroup) -> Result<()>,
    ) -> Result<Cgroup> {
        let cg = self.resolve(cgroups_path, id)?;
        for dir in cg.dirs() {
            if dir.exists() {
                let procs = fs::procs(&dir).unwrap_or_default();
                if !procs.is_empty() {
                    return Err(Error::conflict(
                        "cgroup",
                        dir.display().to_string(),
                        format!("already in use by processes {procs:?}"),
                    ));
                }
            }
        }
        record(&cg)?;
        let mut created = Vec::new();
        let res =
            cg.make_dirs(&mut created, resources).and_then(|_| cg.thaw_if_reused(&created)).and_then(
                |_| match resources {
                    Some(r) => cg.apply(r),
                    None => Ok(()),
                },
            );
        if let Err(e) = res {
            for d in created.iter().rev() {
                let _ = std::fs::remove_dir(d);
            }
            return Err(e);
        }
        tracing::debug!(path = %cg.path, layout = ?cg.layout, "cgroup created");
        Ok(cg)
    }
}

/// `mkdir -p`, recording the directories it made (top-down). A parent removed
/// under us (another container's cleanup of a shared, empty parent) is retried.
fn mkdir_p(dir: &Path, created: &mut Vec<PathBuf>) -> Result<Vec<PathBuf>> {
    let mut made = Vec::new();
    for attempt in 0.. {
        match mkdir_p_once(dir, created, &mut made) {
            Err(e) if e.kind() == ErrorKind::NotFound && attempt < 10 => continue,
            Err(e) => return Err(Error::io(format!("creating cgroup {}", dir.display()), e)),
            Ok(()) => break,
        }
    }
    Ok(made)
}

fn mkdir_p_once(dir: &Path, created: &mut Vec<PathBuf>, made: &mut Vec<PathBuf>) -> std::io::Result<()> {
    // Usually only the last component is missing: one mkdir, no lookups.
    match std::fs::create_dir(dir) {
        Ok(()) => {
            created.push(dir.to_path_buf());
            made.push(dir.to_path_buf());
            return Ok(());
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut missing = Vec::new();
    let mut cur = dir;
    while !cur.exists() {
        missing.push(cur.to_path_buf());
        match cur.parent() {
            Some(p) => cur = p,
            None => break,
        }
    }
    for d in missing.into_iter().rev() {
        match std::fs::create_dir(&d) {
            Ok(()) => {
                created.push(d.clone());
                made.push(d);
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Cgroup {
    /// Create the container's cgroup in every hierarchy of this host and apply
    /// `resources`.
    ///
    /// `cgroups_path` follows runc: an absolute path is taken from each
    /// hierarchy's root, a relative one from the caller's own cgroup, and
    /// `None` means `/engine/<id>`. An existing cgroup that already has
    /// processes is refused ([`Error::Conflict`]); an existing empty one is
    /// reused (and thawed if it was left frozen). On error, the directories
    /// this call made are removed.
    pub fn create(cgroups_path: Option<&str>, id: &str, resources: Option<&LinuxResources>) -> Result<Cgroup> {
        Hierarchies::detect()?.create(cgroups_path, id, resources)
    }

    /// The container's cgroup as `create` would place it, without creating it
    /// (to find the cgroup of a container whose runtime kept only its path).
    pub fn open(cgroups_path: Option<&str>, id: &str) -> Result<Cgroup> {
        Hierarchies::detect()?.resolve(cgroups_path, id)
    }

    /// The layout of the host it was made on.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The cgroup path as resolved (`/engine/<id>`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Every directory of this cgroup (one per hierarchy), without duplicates.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for d in self.v1.values().chain(self.unified.iter()) {
            if !out.contains(d) {
                out.push(d.clone());
            }
        }
        out
    }

    /// The directory of a v1 controller (`memory`, `cpu`, ...), if mounted as v1.
    pub fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.v1.get(controller).map(|p| p.as_path())
    }

    /// The directory in the cgroup2 hierarchy (v2 and hybrid hosts).
    pub fn unified_dir(&self) -> Option<&Path> {
        self.unified.as_deref()
    }

    fn make_dirs(&self, created: &mut Vec<PathBuf>, resources: Option<&LinuxResources>) -> Result<()> {
        for (ctrl, dir) in &self.v1 {
            let made = mkdir_p(dir, created)?;
            if ctrl == "cpuset" {
                // New cpusets start empty, and so may a parent another
                // creator made a moment ago and has not filled yet.
                v1::cpuset_init_chain(dir, made.last() == Some(dir))?;
            }
        }
        if let (Some(dir), Some(root)) = (&self.unified, &self.unified_root) {
            mkdir_p(dir, created)?;
            let wanted: Vec<String> = match self.layout {
                // Pure v2: every controller the root offers, as runc does.
                Layout::V2 => v2::available(root)?,
                // Hybrid: only what the spec needs from the unified side.
                _ => self.hybrid_v2_controllers(resources),
            };
            if !wanted.is_empty() {
                v2::enable(root, dir, &wanted);
            }
        }
        Ok(())
    }

    /// A reused (pre-existing, empty) cgroup left frozen would freeze the new
    /// container: thaw it.
    fn thaw_if_reused(&self, created: &[PathBuf]) -> Result<()> {
        let reused = self.dirs().iter().any(|d| !created.contains(d));
        if reused && self.is_frozen().unwrap_or(false) {
            tracing::debug!(path = %self.path, "thawing a reused frozen cgroup");
            self.thaw()?;
        }
        Ok(())
    }

    /// Controllers a hybrid host must enable in the unified hierarchy for `r`.
    fn hybrid_v2_controllers(&self, r: Option<&LinuxResources>) -> Vec<String> {
        let Some(r) = r else { return Vec::new() };
        let mut out = Vec::new();
        if r.hugepage_limits().as_ref().is_some_and(|v| !v.is_empty()) && !self.v1.contains_key("hugetlb") {
            out.push("hugetlb".to_string());
        }
        if r.rdma().as_ref().is_some_and(|v| !v.is_empty()) && !self.v1.contains_key("rdma") {
            out.push("rdma".to_string());
        }
        for k in r.unified().iter().flat_map(|m| m.keys()) {
            if let Some((c, _)) = k.split_once('.') {
                if !out.iter().any(|o| o == c) {
                    out.push(c.to_string());
                }
            }
        }
        out
    }

    /// Apply (or update) `linux.resources`.
    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        match self.layout {
            Layout::V2 => self.apply_v2(r),
            Layout::V1 | Layout::Hybrid => self.apply_v1(r),
        }
    }

    fn need_unified(&self, what: &str) -> Result<&Path> {
        self.unified.as_deref().ok_or_else(|| {
            Error::Unsupported(format!("linux.resources.{what} needs cgroup v2, which this host does not mount"))
        })
    }

    fn apply_v2(&self, r: &LinuxResources) -> Result<()> {
        let dir = self.need_unified("*")?;
        if let Some(m) = r.memory() {
            v2::memory(dir, m)?;
        }
        if let Some(c) = r.cpu() {
            v2::cpu(dir, c)?;
        }
        if let Some(p) = r.pids() {
            v2::pids(dir, p.limit())?;
        }
        if let Some(b) = r.block_io() {
            v2::io(dir, b)?;
        }
        self.hugetlb(r, false)?;
        self.rdma(r, false)?;
        if let Some(rules) = r.devices().as_ref().filter(|d| !d.is_empty()) {
            devices::attach_device_filter(dir, rules)?;
        }
        if let Some(n) = r.network() {
            if n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
                tracing::warn!("linux.resources.network has no cgroup v2 equivalent; ignored");
            }
        }
        if let Some(u) = r.unified().as_ref().filter(|u| !u.is_empty()) {
            v2::unified(dir, u)?;
        }
        Ok(())
    }

    fn apply_v1(&self, r: &LinuxResources) -> Result<()> {
        if let Some(m) = r.memory() {
            v1::memory(self, m)?;
        }
        if let Some(c) = r.cpu() {
            v1::cpu(self, c)?;
        }
        if let Some(p) = r.pids() {
            v1::pids(self, p.limit())?;
        }
        if let Some(b) = r.block_io() {
            v1::blkio(self, b)?;
        }
        self.hugetlb(r, true)?;
        self.rdma(r, true)?;
        if let Some(n) = r.network() {
            v1::network(self, n)?;
        }
        if let Some(u) = r.unified().as_ref().filter(|u| !u.is_empty()) {
            if self.layout == Layout::V1 {
                return Err(Error::Unsupported("linux.resources.unified needs cgroup v2 (this host is v1)".into()));
            }
            v2::unified(self.need_unified("unified")?, u)?;
        }
        v1::devices(self, r)?;
        Ok(())
    }

    fn hugetlb(&self, r: &LinuxResources, prefer_v1: bool) -> Result<()> {
        let Some(limits) = r.hugepage_limits().as_ref().filter(|l| !l.is_empty()) else { return Ok(()) };
        let sizes = convert::host_hugepage_sizes();
        let (dir, v1) = match (prefer_v1.then(|| self.v1_dir("hugetlb")).flatten(), self.unified.as_deref()) {
            (Some(d), _) => (d, true),
            (None, Some(u)) => (u, false),
            (None, None) => {
                return Err(Error::Unsupported(
                    "linux.resources.hugepageLimits: no hugetlb controller on this host".into(),
                ))
            }
        };
        for l in limits {
            let size = l.page_size();
            if !sizes.iter().any(|s| s == size) {
                return Err(Error::invalid(
                    "linux.resources.hugepageLimits",
                    format!("page size {size:?} is not one of this host's hugepage sizes {sizes:?}"),
                ));
            }
            if v1 {
                fs::write(dir, &format!("hugetlb.{size}.limit_in_bytes"), l.limit())?;
            } else {
                fs::write(dir, &format!("hugetlb.{size}.max"), convert::v2_limit(l.limit()))?;
            }
        }
        Ok(())
    }

    fn rdma(&self, r: &LinuxResources, prefer_v1: bool) -> Result<()> {
        let Some(map) = r.rdma().as_ref().filter(|m| !m.is_empty()) else { return Ok(()) };
        let dir = match prefer_v1.then(|| self.v1_dir("rdma")).flatten().or(self.unified.as_deref()) {
            Some(d) => d,
            None => return Err(Error::Unsupported("linux.resources.rdma: no rdma controller on this host".into())),
        };
        for (dev, l) in map {
            let mut line = dev.clone();
            if let Some(h) = l.hca_handles() {
                line.push_str(&format!(" hca_handle={h}"));
            }
            if let Some(o) = l.hca_objects() {
                line.push_str(&format!(" hca_object={o}"));
            }
            fs::write(dir, "rdma.max", line)?;
        }
        Ok(())
    }

    /// Move process `pid` into this cgroup in every hierarchy (v1 controllers
    /// and the unified one).
    pub fn add_pid(&self, pid: i32) -> Result<()> {
        for dir in self.dirs() {
            fs::write(&dir, "cgroup.procs", pid)?;
        }
        Ok(())
    }

    /// Open what a process about to be cloned needs to join this cgroup by
    /// itself, see [`SelfJoin`].
    pub fn open_self_join(&self) -> Result<SelfJoin> {
        use std::os::fd::{FromRawFd, OwnedFd};
        let open = |path: &Path, flags: libc::c_int| -> Result<OwnedFd> {
            let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
                .map_err(|_| Error::invalid("cgroup path", path.display().to_string()))?;
            // SAFETY: open(2) of a NUL-terminated path; the fd is owned below.
            let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
            if fd < 0 {
                return Err(Error::io(format!("open {}", path.display()), std::io::Error::last_os_error()));
            }
            // SAFETY: a fresh fd nobody else owns.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        };
        let mut join = SelfJoin::default();
        for dir in self.v1.values() {
            if Some(dir) == self.unified.as_ref() || join.tasks.iter().any(|(p, _)| p.parent() == Some(dir)) {
                continue;
            }
            let tasks = dir.join("tasks");
            let fd = open(&tasks, libc::O_WRONLY)?;
            join.tasks.push((tasks, fd));
        }
        if let Some(u) = &self.unified {
            join.unified = Some(open(u, libc::O_RDONLY | libc::O_DIRECTORY)?);
        }
        Ok(join)
    }

    /// After a clone that used `join`: move `pid` into the hierarchies the new
    /// process does not join by itself (the unified one when the clone could
    /// not place it there, `into_unified == false`).
    pub fn add_pid_rest(&self, pid: i32, join: &SelfJoin, into_unified: bool) -> Result<()> {
        for dir in self.dirs() {
            let covered = join.tasks.iter().any(|(p, _)| p.parent() == Some(dir.as_path()))
                || (into_unified && Some(&dir) == self.unified.as_ref());
            if !covered {
                fs::write(&dir, "cgroup.procs", pid)?;
            }
        }
        Ok(())
    }

    /// The directory whose `cgroup.procs` lists the container's processes.
    fn procs_dir(&self) -> Result<&Path> {
        ["freezer", "pids", "memory", "cpu"]
            .iter()
            .find_map(|c| self.v1_dir(c))
            .or(self.unified.as_deref())
            .or_else(|| self.v1.values().next().map(|p| p.as_path()))
            .ok_or_else(|| Error::not_found("cgroup", self.path.clone()))
    }

    fn check_exists(&self, dir: &Path) -> Result<()> {
        if dir.exists() {
            Ok(())
        } else {
            Err(Error::not_found("cgroup", dir.display().to_string()))
        }
    }

    /// Host pids of every process in the cgroup and the cgroups below it.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let dir = self.procs_dir()?;
        self.check_exists(dir)?;
        let mut pids = fs::procs_recursive(dir)?;
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// Freeze every process (v1 `freezer.state`, else v2 `cgroup.freeze`), and
    /// wait until the kernel reports the cgroup frozen.
    pub fn freeze(&self) -> Result<()> {
        self.set_frozen(true)
    }

    /// Thaw a frozen cgroup, and wait until it is thawed.
    pub fn thaw(&self) -> Result<()> {
        self.set_frozen(false)
    }

    fn set_frozen(&self, frozen: bool) -> Result<()> {
        if let Some(dir) = self.v1_dir("freezer") {
            self.check_exists(dir)?;
            let want = if frozen { "FROZEN" } else { "THAWED" };
            let mut tries = 0u32;
            fs::write(dir, "freezer.state", want)?;
            let ok = fs::wait_until(WAIT, || {
                tries += 1;
                // A freeze can stall on a task in an uninterruptible sleep; asking again helps.
                if tries.is_multiple_of(50) {
                    fs::write(dir, "freezer.state", want)?;
                }
                Ok(fs::read(dir, "freezer.state")? == want)
            })?;
            if !ok {
                if frozen {
                    let _ = fs::write(dir, "freezer.state", "THAWED");
                }
                return Err(Error::Timeout { what: format!("{} to become {want}", dir.display()), after: WAIT });
            }
            return Ok(());
        }
        let Some(dir) = self.unified.as_deref() else {
            return Err(Error::Unsupported(format!("cgroup {}: no freezer on this host", self.path)));
        };
        self.check_exists(dir)?;
        fs::write(dir, "cgroup.freeze", if frozen { 1 } else { 0 })?;
        let ok = fs::wait_until(WAIT, || self.v2_frozen(dir).map(|f| f == frozen))?;
        if !ok {
            if frozen {
                let _ = fs::write(dir, "cgroup.freeze", 0);
            }
            return Err(Error::Timeout {
                what: format!("{} to become {}", dir.display(), if frozen { "frozen" } else { "thawed" }),
                after: WAIT,
            });
        }
        Ok(())
    }

    fn v2_frozen(&self, dir: &Path) -> Result<bool> {
        let events = fs::read(dir, "cgroup.events")?;
        Ok(fs::keyed(&events, "frozen") == Some(1))
    }

    /// True when the cgroup is frozen or being frozen: v1's `FREEZING` (a
    /// process just joined a frozen cgroup, as `exec --ignore-paused` does)
    /// and v2's `cgroup.freeze` set count as paused.
    pub fn is_frozen(&self) -> Result<bool> {
        if let Some(dir) = self.v1_dir("freezer") {
            self.check_exists(dir)?;
            return Ok(fs::read(dir, "freezer.state")? != "THAWED");
        }
        match self.unified.as_deref() {
            Some(dir) => {
                self.check_exists(dir)?;
                let requested = fs::read(dir, "cgroup.freeze").map(|v| v == "1").unwrap_or(false);
                Ok(requested || self.v2_frozen(dir)?)
            }
            None => Ok(false),
        }
    }

    /// Resource usage: memory, CPU, pids and block I/O, from whichever
    /// hierarchy holds each controller.
    pub fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        self.check_exists(self.procs_dir()?)?;
        let uni = self.unified.as_deref().filter(|d| d.exists());
        match self.v1_dir("memory") {
            Some(d) => stats::v1_memory(d, &mut s)?,
            None => {
                if let Some(u) = uni {
                    stats::v2_memory(u, &mut s)?
                }
            }
        }
        match self.v1_dir("cpuacct") {
            Some(d) => stats::v1_cpuacct(d, &mut s)?,
            None => {
                if let Some(u) = uni {
                    stats::v2_cpu(u, &mut s)?
                }
            }
        }
        if let Some(d) = self.v1_dir("pids").or(uni) {
            stats::pids(d, &mut s)?;
        }
        match self.v1_dir("blkio") {
            Some(d) => stats::v1_blkio(d, &mut s)?,
            None => {
                if let Some(u) = uni {
                    stats::v2_io(u, &mut s)?
                }
            }
        }
        Ok(s)
    }

    /// How many times the kernel's OOM killer killed a process of this cgroup.
    pub fn oom_kill_count(&self) -> Result<u64> {
        if let Some(d) = self.v1_dir("memory") {
            self.check_exists(d)?;
            return Ok(fs::read_opt(d, "memory.oom_control")?.and_then(|t| fs::keyed(&t, "oom_kill")).unwrap_or(0));
        }
        if let Some(d) = self.unified.as_deref() {
            self.check_exists(d)?;
            return Ok(fs::read_opt(d, "memory.events")?.and_then(|t| fs::keyed(&t, "oom_kill")).unwrap_or(0));
        }
        Err(Error::Unsupported(format!("cgroup {}: no memory controller on this host", self.path)))
    }

    /// Send `signal` to every process of the cgroup. The cgroup is frozen while
    /// the signals go out, so no process forks away from them; with `SIGKILL`
    /// on a kernel that has `cgroup.kill`, the kernel kills them all at once.
    pub fn kill_all(&self, signal: i32) -> Result<()> {
        if signal == libc::SIGKILL {
            if let Some(u) = self.unified.as_deref().filter(|u| u.join("cgroup.kill").exists()) {
                fs::write(u, "cgroup.kill", 1)?;
            }
        }
        let pids = self.pids()?;
        if pids.is_empty() {
            return Ok(());
        }
        let was_frozen = self.is_frozen().unwrap_or(false);
        let can_freeze = self.v1_dir("freezer").is_some() || self.unified.is_some();
        let froze = !was_frozen && can_freeze && self.freeze().is_ok();
        let pids = if froze { self.pids()? } else { pids };
        let mut first_err = None;
        for pid in pids {
            // SAFETY: kill(2) on a pid from the cgroup; no memory is touched.
            if unsafe { libc::kill(pid, signal) } < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::ESRCH) && first_err.is_none() {
                    first_err =
                        Some(Error::io(format!("sending signal {signal} to pid {pid} of cgroup {}", self.path), e));
                }
            }
        }
        if froze || (was_frozen && signal == libc::SIGKILL) {
            self.thaw()?;
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Remove the cgroup (and any cgroup below it) from every hierarchy. A
    /// cgroup that is already gone is fine; one that still has processes is
    /// an error after a short wait for exiting tasks.
    pub fn destroy(&self) -> Result<()> {
        let mut first_err = None;
        for dir in self.dirs() {
            if let Err(e) = fs::remove_tree(&dir, WAIT) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests;
